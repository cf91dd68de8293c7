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

/// An anonymous private mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    /// Bytes mapped: the requested length rounded up to whole pages (at least one).
    mapped: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        let page = page_size();
        let mapped = len.max(1).checked_next_multiple_of(page).ok_or_else(|| {
            io::Error::new(io::ErrorKind::OutOfMemory, format!("{len} bytes of code do not fit the address space"))
        })?;
        // SAFETY: a new anonymous private mapping at an address of the kernel's
        // choosing: it aliases nothing. The result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
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
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: exactly the region mapped in `Mapping::new`, which only this value owns.
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

/// Published code memory: read+execute, never writable again. Unmapped on drop.
pub(crate) struct CodeMemory {
    map: Mapping,
    len: usize,
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
        self.map.ptr.as_ptr() as usize
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
        // SAFETY: [ptr, ptr+len) lies in the mapping (len <= mapped), readable
        // (read+execute) and never written again, for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.map.ptr.as_ptr(), self.len) }
    }

    /// A pointer to the code at `offset`, to be cast to a function pointer.
    ///
    /// # Panics
    /// If `offset` is not inside the code.
    pub(crate) fn ptr_at(&self, offset: usize) -> *const u8 {
        assert!(offset < self.len, "code offset {offset} outside {} bytes of code", self.len);
        // SAFETY: offset < len <= mapped: in bounds of the mapping.
        unsafe { self.map.ptr.as_ptr().add(offset) }
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
        Ok(CodeMemory { map, len })
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
}
