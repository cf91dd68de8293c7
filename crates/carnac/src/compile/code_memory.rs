//! Executable memory for compiled code, mapped W^X.
//!
//! Compiled code must be written somewhere and then run from there, and the two
//! must never be possible at once: a page that is both writable and executable
//! turns any guest-controlled write bug in the host into arbitrary code
//! execution. So a module's machine code lives in its own anonymous mapping that
//! is first read-write ([`WritableCode`]), where the caller copies the code in
//! and applies its relocations (it needs the final address for those, and has it:
//! [`WritableCode::base`] is where the code will run), and is then *published*
//! ([`WritableCode::publish`]): made read+execute, never writable again, with the
//! instruction cache made coherent with what was written (needed on aarch64,
//! whose instruction and data caches are not kept coherent by the hardware).
//! The two states are two types, so writing to published code does not compile.
//!
//! The mapping is the unit: one per module (all its functions, trampolines and
//! read-only data), unmapped when the [`CodeMemory`] drops. Whoever runs code
//! from it must keep it alive for as long as the code may run, and unregister the
//! range from the trap registry ([`super::traps::register`]) before it is
//! unmapped. Failure to map or protect the memory is an [`std::io::Error`],
//! never a panic.

// Used by the translator and the runtime integration, which land separately.
#![cfg_attr(not(test), allow(dead_code, unused_imports))]

use std::io;
use std::ops::Range;
use std::ptr::NonNull;

/// The host's page size: the granule of `mmap` and `mprotect`.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size <= 0 {
        4096
    } else {
        size as usize
    }
}

/// A private mapping (anonymous, or of a file), unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    /// Bytes mapped: the requested length rounded up to whole pages (at least one).
    mapped: usize,
}

impl Mapping {
    /// `len` bytes of zeroed read-write anonymous memory; with `populate`, its
    /// pages allocated at once (cheaper than a fault per page when every page
    /// is written next).
    fn new(len: usize) -> io::Result<Mapping> {
        Self::anonymous(len, false)
    }

    fn anonymous(len: usize, populate: bool) -> io::Result<Mapping> {
        let mapped = Self::round(len)?;
        let populate = if populate { libc::MAP_POPULATE } else { 0 };
        // SAFETY: a new anonymous private mapping at an address of the kernel's
        // choosing: it aliases nothing. The result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | populate,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let err = io::Error::last_os_error();
            return Err(io::Error::new(err.kind(), format!("cannot map {mapped} bytes for compiled code: {err}")));
        }
        let ptr = NonNull::new(p.cast::<u8>()).expect("mmap returned a null mapping");
        Ok(Mapping { ptr, mapped })
    }

    /// The first `len` bytes of `file` (`len` > 0), private (our writes, if
    /// any, are never written back) and read-only, every page mapped at once.
    fn file(file: &std::fs::File, len: usize) -> io::Result<Mapping> {
        use std::os::fd::AsRawFd;
        let mapped = Self::round(len)?;
        // SAFETY: a new private mapping of an open file at an address of the
        // kernel's choosing: it aliases nothing of ours. The result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_POPULATE,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).expect("mmap returned a null mapping");
        Ok(Mapping { ptr, mapped })
    }

    /// `len` rounded up to whole pages (at least one).
    fn round(len: usize) -> io::Result<usize> {
        len.max(1).checked_next_multiple_of(page_size()).ok_or_else(|| {
            io::Error::new(io::ErrorKind::OutOfMemory, format!("{len} bytes do not fit the address space"))
        })
    }

    /// Sets the protection of the whole pages from `start` (page-aligned) that
    /// hold `len` bytes.
    fn protect(&self, start: usize, len: usize, prot: libc::c_int) -> io::Result<()> {
        let len = Self::round(len)?;
        assert!(start.is_multiple_of(page_size()) && start + len <= self.mapped, "protecting outside the mapping");
        // SAFETY: whole pages inside the mapping, which only `self` owns; callers
        // hold no reference into pages they make unreadable or not writable.
        let rc = unsafe { libc::mprotect(self.ptr.as_ptr().add(start).cast(), len, prot) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: exactly the region mapped by `Mapping::anonymous` or `Mapping::file`,
        // which only this value owns.
        // Nothing can fail that matters here: the range is valid by construction.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.mapped) };
    }
}

/// Code memory before it is published: read-write, not executable.
///
/// Derefs to the `len` bytes the caller asked for, zero-filled to start with.
pub(crate) struct WritableCode {
    map: Mapping,
    len: usize,
}

/// Published code memory: read+execute, never writable again. Unmapped on drop
/// (its own mapping, or the artifact image it lies in once nothing else holds it).
pub(crate) struct CodeMemory {
    _owner: CodeOwner,
    /// The first byte of code, in the owner's mapping.
    ptr: NonNull<u8>,
    len: usize,
}

/// What keeps a [`CodeMemory`]'s pages mapped.
enum CodeOwner {
    Own(#[allow(dead_code)] Mapping),
    Image(#[allow(dead_code)] std::sync::Arc<ArtifactImage>),
}

// SAFETY: both own their mapping exclusively (no other value points into it), so
// moving them to another thread moves the only access. Shared references only
// read (`WritableCode` is written only through `&mut`; `CodeMemory` never).
unsafe impl Send for WritableCode {}
// SAFETY: see above.
unsafe impl Sync for WritableCode {}
// SAFETY: see above.
unsafe impl Send for CodeMemory {}
// SAFETY: see above.
unsafe impl Sync for CodeMemory {}

impl CodeMemory {
    /// The address of the first byte of code.
    pub(crate) fn base(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// The code of `image` made executable by [`ArtifactImage::make_executable`].
    ///
    /// # Panics
    /// If no code of `image` was made executable.
    pub(crate) fn in_image(image: std::sync::Arc<ArtifactImage>) -> CodeMemory {
        let code = image.exec.clone().expect("no code of the artifact was made executable");
        // SAFETY: `code` lies in the image's mapping (checked by `make_executable`).
        let ptr = unsafe { NonNull::new_unchecked(image.map.ptr.as_ptr().add(code.start)) };
        CodeMemory { _owner: CodeOwner::Image(image), ptr, len: code.len() }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The addresses the code occupies: what to register with the trap registry.
    pub(crate) fn range(&self) -> Range<usize> {
        self.base()..self.base() + self.len
    }

    /// The code's bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: [ptr, ptr+len) lies in the owner's mapping, readable
        // (read+execute) and never written again, for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// A pointer to the code at `offset`, to be cast to a function pointer.
    ///
    /// # Panics
    /// If `offset` is not inside the code.
    pub(crate) fn ptr_at(&self, offset: usize) -> *const u8 {
        assert!(offset < self.len, "code offset {offset} outside {} bytes of code", self.len);
        // SAFETY: offset < len: in bounds of the code, inside the owner's mapping.
        unsafe { self.ptr.as_ptr().add(offset) }
    }
}

impl WritableCode {
    /// Maps `len` bytes of zeroed, writable (not executable) memory for code.
    /// `len` may be 0 (one page is mapped all the same).
    pub(crate) fn new(len: usize) -> io::Result<WritableCode> {
        Ok(WritableCode { map: Mapping::new(len)?, len })
    }

    /// Maps a copy of `image`, ready to be relocated and published.
    pub(crate) fn from_image(image: &[u8]) -> io::Result<WritableCode> {
        let mut code = WritableCode::new(image.len())?;
        code.copy_from_slice(image);
        Ok(code)
    }

    /// Where the code will run once published: the address relocations are computed against.
    pub(crate) fn base(&self) -> usize {
        self.map.ptr.as_ptr() as usize
    }

    /// Makes the code read+execute (and never writable again) and the instruction
    /// cache coherent with what was written. On failure the memory is unmapped.
    pub(crate) fn publish(self) -> io::Result<CodeMemory> {
        let WritableCode { map, len } = self;
        // SAFETY: the whole mapping, which only `map` owns; no reference into it outlives
        // `self` (consumed above), so nothing writes to it from now on.
        let rc = unsafe { libc::mprotect(map.ptr.as_ptr().cast(), map.mapped, libc::PROT_READ | libc::PROT_EXEC) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            return Err(io::Error::new(err.kind(), format!("cannot make compiled code executable: {err}")));
        }
        // SAFETY: [ptr, ptr+len) is mapped readable; the caches are only cleaned and invalidated.
        unsafe { icache::make_coherent(map.ptr.as_ptr() as usize, len) };
        Ok(CodeMemory { ptr: map.ptr, _owner: CodeOwner::Own(map), len })
    }
}

impl std::ops::Deref for WritableCode {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: [ptr, ptr+len) lies in the mapping, read-write until publish (which consumes `self`).
        unsafe { std::slice::from_raw_parts(self.map.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for WritableCode {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.map.ptr.as_ptr(), self.len) }
    }
}

/// A whole compiled artifact (`super::artifact`) in memory of its own, so that
/// its code can run where it lies instead of being copied: a private
/// read-only mapping of its file ([`ArtifactImage::map_file`]), or a copy of
/// its bytes, made read-only ([`ArtifactImage::copy_of`]). Either starts on a
/// page boundary, so code at a page-aligned offset of the artifact starts on
/// a page of its own, which [`ArtifactImage::make_executable`] makes
/// read+execute (and [`CodeMemory::in_image`] then runs). Nothing in it is
/// ever writable and executable at once, and after `make_executable` nothing
/// in it is writable at all.
///
/// A mapped file must not be modified or truncated in place while mapped:
/// its pages are the file's (page cache) pages until written, so changes
/// would show through, and reading past a truncated end raises SIGBUS.
/// Replace such files by renaming a new file over them instead (as `carnac
/// compile` and the code cache do), which leaves a mapped file intact.
pub(crate) struct ArtifactImage {
    map: Mapping,
    len: usize,
    /// The range made executable, if any.
    exec: Option<Range<usize>>,
    /// The file mapped, when there is one: memories map their data from it too
    /// (`MemoryImage::in_file`).
    file: Option<std::sync::Arc<std::fs::File>>,
}

// SAFETY: the image owns its mapping exclusively; it is written only through
// `&mut self` (`make_executable`), so shared references only read.
unsafe impl Send for ArtifactImage {}
// SAFETY: see above.
unsafe impl Sync for ArtifactImage {}

impl ArtifactImage {
    /// Maps the whole of `file` (read-only, private, every page at once).
    pub(crate) fn map_file(file: &std::fs::File) -> io::Result<ArtifactImage> {
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "the file does not fit the address space"))?;
        if len == 0 {
            // mmap refuses empty mappings.
            return Self::copy_of(&[]);
        }
        let map = Mapping::file(file, len)?;
        Ok(ArtifactImage { map, len, exec: None, file: file.try_clone().ok().map(std::sync::Arc::new) })
    }

    /// A copy of `bytes`, read-only.
    pub(crate) fn copy_of(bytes: &[u8]) -> io::Result<ArtifactImage> {
        let map = Mapping::anonymous(bytes.len(), true)?;
        // SAFETY: the new mapping is read-write, at least `bytes.len()` long, and
        // no other reference into it exists yet.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), map.ptr.as_ptr(), bytes.len()) };
        map.protect(0, map.mapped, libc::PROT_READ)?;
        Ok(ArtifactImage { map, len: bytes.len(), exec: None, file: None })
    }

    /// The file the artifact is mapped from (its byte 0 at `bytes()`'s start), if any.
    pub(crate) fn file(&self) -> Option<&std::sync::Arc<std::fs::File>> {
        self.file.as_ref()
    }

    /// The artifact's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: [ptr, ptr+len) lies in the mapping and stays readable (read-only,
        // or read+execute once `make_executable` ran, which needs `&mut self`).
        unsafe { std::slice::from_raw_parts(self.map.ptr.as_ptr(), self.len) }
    }

    /// Makes `range` of the artifact (its code) read+execute, first applying
    /// `patch(code, address where it runs)` if given (relocations: the pages
    /// are made writable for it, private copies of the file's, then read+execute,
    /// never both at once), and makes the instruction cache coherent with it.
    ///
    /// Fails if `range` does not start on a page boundary of this host (an
    /// artifact aligns its code for pages up to 16 KiB) or the system refuses
    /// (a file on a `noexec` mount, a security policy): the caller then copies
    /// the code instead. The pages up to the next page boundary after the code
    /// become executable along with it (the artifact's bytes after its code
    /// are data, never written).
    pub(crate) fn make_executable(&mut self, range: Range<usize>, patch: Option<Patch<'_>>) -> io::Result<()> {
        if !range.start.is_multiple_of(page_size()) || range.start > range.end || range.end > self.len {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("code at {range:#x?} does not start on a page of this host"),
            ));
        }
        if self.exec.is_some() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "the artifact's code is already executable"));
        }
        let base = self.map.ptr.as_ptr() as usize + range.start;
        if range.is_empty() {
            self.exec = Some(range);
            return Ok(());
        }
        if let Some(patch) = patch {
            self.map.protect(range.start, range.len(), libc::PROT_READ | libc::PROT_WRITE)?;
            // SAFETY: the range lies in the mapping (checked above), now writable, and
            // `&mut self` makes this the only reference into it.
            let code = unsafe { std::slice::from_raw_parts_mut(base as *mut u8, range.len()) };
            patch(code, base);
        }
        self.map.protect(range.start, range.len(), libc::PROT_READ | libc::PROT_EXEC)?;
        // SAFETY: the range is mapped readable; the caches are only cleaned and invalidated.
        unsafe { icache::make_coherent(base, range.len()) };
        self.exec = Some(range);
        Ok(())
    }
}

/// What patches code before it is made executable: `patch(code, address
/// where it runs)` (see [`ArtifactImage::make_executable`]).
pub(crate) type Patch<'a> = &'a dyn Fn(&mut [u8], usize);

impl AsRef<[u8]> for ArtifactImage {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

#[cfg(target_arch = "aarch64")]
mod icache {
    use std::arch::asm;

    /// Makes instruction fetches of `[start, start+len)` see the bytes just written.
    ///
    /// aarch64 caches instructions separately from data and does not keep them
    /// coherent: the written lines are cleaned from the data cache to the point of
    /// unification, then invalidated in the instruction cache (both broadcast to
    /// every core of the inner-shareable domain), then each core must discard what
    /// it may have prefetched: this one with `isb`, the others through
    /// `membarrier(SYNC_CORE)`, which makes every thread of the process execute a
    /// context synchronization event. This is the sequence of the Arm ARM's
    /// "Concurrent modification and execution of instructions" (and of libgcc's
    /// `__clear_cache` plus Wasmtime's `pipeline_flush_mt`).
    ///
    /// # Safety
    /// The range must be mapped readable.
    pub(super) unsafe fn make_coherent(start: usize, len: usize) {
        let ctr: u64;
        // SAFETY: reading CTR_EL0 is allowed at EL0 on Linux (the kernel enables or emulates it).
        unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
        let end = start + len;
        // IDC (bit 28): cleaning the data cache is not needed for coherence.
        if ctr & (1 << 28) == 0 {
            let line = 4usize << ((ctr >> 16) & 0xf);
            let mut addr = start & !(line - 1);
            while addr < end {
                // SAFETY: the line is in the readable range given by the caller.
                unsafe { asm!("dc cvau, {}", in(reg) addr, options(nostack, preserves_flags)) };
                addr += line;
            }
        }
        // SAFETY: a barrier, no memory operands.
        unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
        // DIC (bit 29): invalidating the instruction cache is not needed for coherence.
        if ctr & (1 << 29) == 0 {
            let line = 4usize << (ctr & 0xf);
            let mut addr = start & !(line - 1);
            while addr < end {
                // SAFETY: the line is in the readable range given by the caller.
                unsafe { asm!("ic ivau, {}", in(reg) addr, options(nostack, preserves_flags)) };
                addr += line;
            }
            // SAFETY: a barrier, no memory operands.
            unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
        }
        // SAFETY: a barrier, no memory operands.
        unsafe { asm!("isb", options(nostack, preserves_flags)) };
        sync_other_cores();
    }

    /// Every other thread of the process executes a context synchronization event
    /// before it runs user code again. Best effort: kernels before 4.16 lack the
    /// command, and there the code is still correct in practice, since freshly
    /// mapped pages cannot be in any core's instruction pipeline.
    fn sync_other_cores() {
        const MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_long = 32;
        const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_long = 64;
        let membarrier = |cmd: libc::c_long| {
            // SAFETY: membarrier takes two integers and touches no memory of ours.
            unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long) == 0 }
        };
        if !membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) {
            // The process must register once before the first use.
            let _ = membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE)
                && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE);
        }
    }
}

#[cfg(not(target_arch = "aarch64"))]
mod icache {
    /// x86_64 keeps instruction fetches coherent with stores by itself (and
    /// `mprotect` has already serialized this core); nothing to do.
    ///
    /// # Safety
    /// None needed; kept `unsafe` to match the aarch64 version.
    pub(super) unsafe fn make_coherent(_start: usize, _len: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mov eax/w0, 42; ret` for the host.
    fn return_42() -> &'static [u8] {
        if cfg!(target_arch = "x86_64") {
            &[0xb8, 42, 0, 0, 0, 0xc3]
        } else if cfg!(target_arch = "aarch64") {
            &[0x40, 0x05, 0x80, 0x52, 0xc0, 0x03, 0x5f, 0xd6]
        } else {
            unimplemented!("no test code for this architecture")
        }
    }

    /// The protection of the page at `addr` as `/proc/self/maps` shows it (`r-xp`, ...).
    fn protection(addr: usize) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for line in maps.lines() {
            let mut fields = line.split_whitespace();
            let (range, perms) = (fields.next().unwrap(), fields.next().unwrap());
            let (lo, hi) = range.split_once('-').unwrap();
            let (lo, hi) = (usize::from_str_radix(lo, 16).unwrap(), usize::from_str_radix(hi, 16).unwrap());
            if (lo..hi).contains(&addr) {
                return perms.to_string();
            }
        }
        panic!("{addr:#x} is not mapped")
    }

    #[test]
    fn code_runs_after_publish_and_is_never_writable_and_executable() {
        let mut code = WritableCode::new(return_42().len()).unwrap();
        let base = code.base();
        assert!(code.iter().all(|&b| b == 0));
        code.copy_from_slice(return_42());
        assert_eq!(protection(base), "rw-p");
        let code = code.publish().unwrap();
        assert_eq!(code.base(), base, "the code runs where it was written");
        assert_eq!(code.range(), base..base + return_42().len());
        assert_eq!(code.as_slice(), return_42());
        assert_eq!(protection(base), "r-xp");
        // SAFETY: the bytes are a complete function returning 42 in the C ABI.
        let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(code.ptr_at(0)) };
        assert_eq!(f(), 42);
        drop(code);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(!maps.lines().any(|l| l.starts_with(&format!("{base:x}-"))), "dropped code memory is unmapped");
    }

    #[test]
    fn from_image_copies_and_sizes() {
        let code = WritableCode::from_image(&[1, 2, 3]).unwrap();
        assert_eq!(&code[..], &[1, 2, 3]);
        let code = code.publish().unwrap();
        assert_eq!(code.len(), 3);
        let empty = WritableCode::new(0).unwrap().publish().unwrap();
        assert_eq!(empty.len(), 0);
        assert!(empty.range().is_empty());
    }

    #[test]
    fn impossible_sizes_are_errors() {
        assert!(WritableCode::new(usize::MAX).is_err());
        assert!(WritableCode::new(usize::MAX / 2).is_err());
    }

    /// Code returning its own address plus the 8-byte value at `RETURN_SELF_IMM`:
    /// `movabs rax, imm64; ret` or `ldr x0, #8; ret; .quad imm64`.
    fn return_imm() -> &'static [u8] {
        if cfg!(target_arch = "x86_64") {
            &[0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xc3]
        } else if cfg!(target_arch = "aarch64") {
            &[0x40, 0x00, 0x00, 0x58, 0xc0, 0x03, 0x5f, 0xd6, 0, 0, 0, 0, 0, 0, 0, 0]
        } else {
            unimplemented!("no test code for this architecture")
        }
    }

    /// Where `return_imm`'s immediate is.
    const RETURN_IMM_AT: usize = if cfg!(target_arch = "x86_64") { 2 } else { 8 };

    /// `bytes` written to a new file (removed on drop), and the file open.
    struct TempFile(std::path::PathBuf);
    impl TempFile {
        fn new(name: &str, bytes: &[u8]) -> (TempFile, std::fs::File) {
            let path = std::env::temp_dir().join(format!("carnac-code-memory-{name}-{}", std::process::id()));
            std::fs::write(&path, bytes).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            (TempFile(path), file)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Makes `range` of `image` executable, or `None` if this file system
    /// forbids executing files (`noexec`): loading then copies the code.
    fn executable(image: &mut ArtifactImage, range: Range<usize>, patch: Option<Patch<'_>>) -> bool {
        match image.make_executable(range, patch) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => false,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn artifact_code_runs_where_its_file_is_mapped() {
        let page = page_size();
        // A page of data, then the code on a page of its own, then more data.
        let mut bytes = vec![0xaa; page];
        bytes.extend(return_42());
        bytes.extend([0xbb; 100]);
        let code = page..page + return_42().len();
        let (tmp, file) = TempFile::new("run", &bytes);
        let mut image = ArtifactImage::map_file(&file).unwrap();
        drop(file);
        assert_eq!(image.bytes(), &bytes[..]);
        let base = image.bytes().as_ptr() as usize;
        assert_eq!(protection(base), "r--p");
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(maps.lines().any(|l| l.starts_with(&format!("{base:x}-")) && l.ends_with(&*tmp.0.to_string_lossy())));
        // Code not at a page boundary is refused (loading copies it instead).
        assert_eq!(image.make_executable(1..code.end, None).unwrap_err().kind(), io::ErrorKind::Unsupported);
        assert_eq!(protection(base + page), "r--p");
        if !executable(&mut image, code.clone(), None) {
            return;
        }
        assert!(image.make_executable(code.clone(), None).is_err(), "only once");
        assert_eq!(protection(base), "r--p", "the data stays data");
        assert_eq!(protection(base + page), "r-xp");
        assert_eq!(image.bytes(), &bytes[..], "the code is still readable");
        let image = std::sync::Arc::new(image);
        let code = CodeMemory::in_image(image.clone());
        assert_eq!((code.base(), code.len()), (base + page, return_42().len()));
        // SAFETY: the bytes are a complete function returning 42 in the C ABI.
        let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(code.ptr_at(0)) };
        assert_eq!(f(), 42);
        drop(image);
        assert_eq!(f(), 42, "the code keeps the image mapped");
        drop(code);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(!maps.lines().any(|l| l.starts_with(&format!("{base:x}-"))), "unmapped with its last user");
    }

    #[test]
    fn artifact_code_is_patched_in_a_private_copy_never_writable_and_executable() {
        let page = page_size();
        let mut bytes = vec![0; page];
        bytes.extend(return_imm());
        let (_tmp, file) = TempFile::new("patch", &bytes);
        let mut image = ArtifactImage::map_file(&file).unwrap();
        let base = image.bytes().as_ptr() as usize;
        let patched = std::cell::Cell::new(None);
        let patch = |code: &mut [u8], at: usize| {
            // Writable, not executable, while patched.
            patched.set(Some(protection(at)));
            code[RETURN_IMM_AT..RETURN_IMM_AT + 8].copy_from_slice(&(at as u64 + 0x1234).to_le_bytes());
        };
        if !executable(&mut image, page..bytes.len(), Some(&patch)) {
            return;
        }
        assert_eq!(patched.take().as_deref(), Some("rw-p"));
        assert_eq!(protection(base + page), "r-xp");
        let code = CodeMemory::in_image(std::sync::Arc::new(image));
        // SAFETY: the bytes are a complete function returning a u64 in the C ABI.
        let f: extern "C" fn() -> u64 = unsafe { std::mem::transmute(code.ptr_at(0)) };
        assert_eq!(f(), code.base() as u64 + 0x1234);
        let mut on_disk = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut on_disk).unwrap();
        assert_eq!(on_disk, bytes, "the file is never written");
    }

    #[test]
    fn artifact_copies_are_read_only_and_run_too() {
        let page = page_size();
        let mut bytes = vec![7; 2 * page];
        bytes.extend(return_42());
        let mut image = ArtifactImage::copy_of(&bytes).unwrap();
        assert_eq!(image.bytes(), &bytes[..]);
        let base = image.bytes().as_ptr() as usize;
        assert_eq!(protection(base), "r--p");
        image.make_executable(2 * page..bytes.len(), None).unwrap();
        assert_eq!(protection(base + 2 * page), "r-xp");
        let code = CodeMemory::in_image(std::sync::Arc::new(image));
        // SAFETY: the bytes are a complete function returning 42 in the C ABI.
        let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(code.ptr_at(0)) };
        assert_eq!(f(), 42);
        // Empty files and artifacts map too (as nothing).
        let (_tmp, file) = TempFile::new("empty", &[]);
        assert!(ArtifactImage::map_file(&file).unwrap().bytes().is_empty());
        assert!(ArtifactImage::copy_of(&[]).unwrap().bytes().is_empty());
    }
}
