//! Linear memory: a reserved virtual region whose base never moves.
//!
//! The whole region the memory may ever need (its declared maximum, at most the
//! 4 GiB of a 32-bit index space) is reserved up front with no access rights;
//! growing only changes protection of the next pages. Dropped regions go to a
//! process-wide pool, their pages released, and are reused by the next memory
//! of the same reserved size. Compiled code can therefore
//! hold the base pointer across calls, and memory grown by a callee needs no
//! pointer refresh. This is the only module of the runtime that calls `mmap`.
//!
//! **Written-chunk map.** Just below every memory's base lies a byte map with one
//! byte per 4 KiB chunk of the memory: every write to the memory (interpreter
//! stores and bulk operations, SIMD stores, data segments, host writes through
//! [`MemoryMut`] or [`crate::Memory::write`]) sets the bytes of the chunks it
//! touches. A pooled memory is then reset by zeroing exactly the marked chunks,
//! with no system call (asking the kernel which pages are resident with `mincore`
//! cost more than the whole rest of an instantiation). Code that takes the whole
//! memory as a plain `&mut [u8]` ([`LinearMemory::data_mut`]) cannot be tracked:
//! it marks the memory *untracked*, and its reset falls back to `mincore`.
//! The map sits at a fixed distance below the base, so the interpreter marks a
//! store with one shift and one byte store. Marking is only done by engines
//! with `Config::track_memory_writes` (memories of other engines start
//! untracked): it costs store-heavy guest code a few percent.
//!
//! **Copy-on-write images.** A memory may start from a [`MemoryImage`]: its
//! initial contents (a module's data segments, or a snapshot of a warmed
//! instance) laid out once in a memory file and mapped *private* over the
//! region, so that an instance with megabytes of initialised heap costs one
//! `mmap`, not a copy, and pages the guest never writes stay shared between all
//! its instances. A pooled region keeps its image mapped: its reset restores
//! the written chunks from the image (or, past the keep-resident bound, drops
//! its private pages, which then read as the image again), and the next
//! memory with the same image takes that region with no system call at all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::runtime::vmctx::VMMemoryDef;
use crate::types::MemoryType;

/// Bytes in a WebAssembly page, the unit of memory sizes ([`crate::Memory::size`]).
pub const WASM_PAGE: usize = 65536;
/// 32-bit memories address at most 2^16 pages.
pub const MAX_PAGES: u64 = 65536;

/// Reserved regions kept for reuse, by size: dropping a memory returns its
/// region here (its pages released and made inaccessible again) instead of
/// unmapping it, so the next instantiation skips `mmap` and page-table setup.
/// This is what makes a fresh instance per request cheap in the function host.
static POOL: std::sync::Mutex<Vec<PooledRegion>> = std::sync::Mutex::new(Vec::new());

/// A reserved region waiting in [`POOL`], reset to zeros (or to its image).
struct PooledRegion {
    reserved: usize,
    base: usize,
    /// Bytes from `base` left read-write.
    accessible: usize,
    /// The image still mapped over part of it, if any.
    image: Option<Arc<MemoryImage>>,
}
/// The most regions the pool keeps.
const POOL_MAX: usize = 128;
/// A region whose resident pages add up to at most this is reset by zeroing
/// those pages in place (they stay resident for the next instance: no page
/// faults, and no `madvise` with its cross-core TLB shootdown); a larger one
/// has its pages released. Bounds what the pool keeps resident to
/// `POOL_MAX * KEEP_RESIDENT_MAX`.
const KEEP_RESIDENT_MAX: usize = 512 << 10;

/// Chunks of memory that the written-chunk map tracks: 4 KiB, whatever the host page size.
pub(crate) const CHUNK_SHIFT: u32 = 12;
const CHUNK: usize = 1 << CHUNK_SHIFT;
/// Distance from a memory's base down to its written-chunk map: room for the map
/// of the largest 32-bit memory (4 GiB / 4 KiB bytes), so it is the same for every
/// memory. Only the map bytes a memory's size reaches are ever touched.
pub(crate) const CHUNK_MAP_OFFSET: usize = (MAX_PAGES as usize * WASM_PAGE) >> CHUNK_SHIFT;
/// The longest single access (a v128 store): a store marks the chunk of its first
/// byte, so a reset also zeroes this many bytes at the start of the next chunk.
const SPILL: usize = 15;

/// Records that bytes `[start, start + n)` of the memory based at `base` may have been written.
///
/// # Safety
/// `base` is the base of a live [`LinearMemory`] and `start + n` is at most its length.
#[inline]
pub(crate) unsafe fn mark_written_range(base: *mut u8, start: usize, n: usize) {
    if n == 0 {
        return;
    }
    let (first, last) = (start >> CHUNK_SHIFT, (start + n - 1) >> CHUNK_SHIFT);
    // SAFETY: the map lies CHUNK_MAP_OFFSET bytes below the base of every memory
    // with a nonzero length and is mapped read-write; `start + n <= len <= 4 GiB`
    // keeps chunks `first..=last` inside it (see `LinearMemory::new`).
    unsafe { std::ptr::write_bytes(base.sub(CHUNK_MAP_OFFSET).add(first), 1, last - first + 1) }
}

/// Mutable access to a memory's bytes that records what is written, for host
/// functions: reading is free, and [`MemoryMut::get_mut`] marks the chunks it
/// hands out, so the memory can still be reset cheaply when its store is dropped
/// (see [`crate::Memory::data_and_store_tracked`]). Prefer it to a plain
/// `&mut [u8]` of the whole memory in host functions that write a few bytes.
pub struct MemoryMut<'a> {
    base: *mut u8,
    len: usize,
    _memory: std::marker::PhantomData<&'a mut [u8]>,
}

impl<'a> MemoryMut<'a> {
    /// A view of the memory based at `base`, `len` bytes long.
    ///
    /// # Safety
    /// `base` and `len` describe a live [`LinearMemory`] (or `len` is 0 and `base`
    /// is non-null and aligned), and nothing else accesses it during `'a`.
    pub(crate) unsafe fn from_raw(base: *mut u8, len: usize) -> MemoryMut<'a> {
        MemoryMut { base, len, _memory: std::marker::PhantomData }
    }

    /// The memory's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the memory has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All of the memory, to read.
    pub fn data(&self) -> &[u8] {
        // SAFETY: [base, base+len) is the memory's read-write part (or len is 0 with
        // a well-aligned base); the exclusive borrow this view was made from keeps it
        // alive and unaliased for 'a.
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }

    /// Bytes `[start, end)`, or `None` when out of bounds.
    pub fn get(&self, range: std::ops::Range<usize>) -> Option<&[u8]> {
        self.data().get(range)
    }

    /// Bytes `[start, end)` to write (marked as written), or `None` when out of bounds.
    pub fn get_mut(&mut self, range: std::ops::Range<usize>) -> Option<&mut [u8]> {
        if range.start > range.end || range.end > self.len {
            return None;
        }
        let n = range.end - range.start;
        // SAFETY: the range lies inside the memory (checked above); as in `data`, and
        // `&mut self` makes the returned slice the only access while it lives.
        unsafe {
            mark_written_range(self.base, range.start, n);
            Some(std::slice::from_raw_parts_mut(self.base.add(range.start), n))
        }
    }
}

fn host_page_size() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *SIZE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    })
}

/// A pooled region of `reserved` bytes: one that already holds `image` if there
/// is one (nothing to map), else one with no image, else any.
fn take_pooled(reserved: usize, image: Option<&Arc<MemoryImage>>) -> Option<PooledRegion> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let i = pool
        .iter()
        .rposition(|r| r.reserved == reserved && same_image(r.image.as_ref(), image))
        .or_else(|| pool.iter().rposition(|r| r.reserved == reserved && r.image.is_none()))
        .or_else(|| pool.iter().rposition(|r| r.reserved == reserved))?;
    Some(pool.swap_remove(i))
}

/// Whether two regions' images are the same one (or both absent).
fn same_image(a: Option<&Arc<MemoryImage>>, b: Option<&Arc<MemoryImage>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// A memory's initial contents (see the module docs), as parts: runs of whole
/// host pages, each at a page-aligned offset of the memory, mapped from a file
/// (an anonymous memory file written once, or the compiled artifact the module
/// was loaded from, where its data lies page-aligned); every byte outside the
/// parts starts as zero. Cheap to share: instances map it, they never copy it.
pub(crate) struct MemoryImage {
    fd: std::os::fd::OwnedFd,
    /// Sorted by offset, disjoint.
    parts: Vec<ImagePart>,
    /// A memory file's own read-only mapping (address, length), unmapped on drop.
    own_map: Option<(usize, usize)>,
    /// What keeps the parts' `source` bytes mapped when they are not `own_map`'s.
    _source_owner: Option<crate::module::SharedBytes>,
}

#[derive(Debug, Clone, Copy)]
struct ImagePart {
    /// Where the part starts in the memory, and its length (whole pages).
    offset: usize,
    len: usize,
    /// Where it starts in the file.
    file_offset: u64,
    /// Its bytes, readable: what resets copy written chunks back from.
    source: *const u8,
}

// SAFETY: the parts' `source` bytes are read-only mappings kept alive by the
// image (`own_map`, `_source_owner`); nothing writes through them, so any thread
// may read them.
unsafe impl Send for MemoryImage {}
unsafe impl Sync for MemoryImage {}

impl std::fmt::Debug for MemoryImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryImage").field("parts", &self.parts.len()).field("end", &self.end()).finish()
    }
}

impl MemoryImage {
    /// The image of a memory whose only non-zero bytes are `parts` (offset, bytes),
    /// written in order (a later part overwrites an earlier one), laid out in a
    /// new memory file. `None` when there is nothing to map (all parts empty), or
    /// when the system gives no memory file (the caller then copies the bytes).
    pub fn new<'a>(parts: impl Iterator<Item = (usize, &'a [u8])> + Clone) -> Option<MemoryImage> {
        let page = host_page_size();
        let nonempty = parts.clone().filter(|(_, b)| !b.is_empty());
        let start = nonempty.clone().map(|(o, _)| o).min()? / page * page;
        let end = nonempty.map(|(o, b)| o + b.len()).max()?.next_multiple_of(page);
        let len = end - start;
        let fd = memory_file(len)?;
        for (offset, bytes) in parts {
            let mut done = 0;
            while done < bytes.len() {
                let rest = &bytes[done..];
                // SAFETY: writes from a live slice to a file descriptor this function owns.
                let n = unsafe {
                    libc::pwrite(
                        std::os::fd::AsRawFd::as_raw_fd(&fd),
                        rest.as_ptr() as *const libc::c_void,
                        rest.len(),
                        (offset - start + done) as libc::off_t,
                    )
                };
                if n <= 0 {
                    return None;
                }
                done += n as usize;
            }
        }
        // SAFETY: maps the whole file (just sized to `len`), shared and read-only;
        // the result is checked below and unmapped in `Drop`.
        let source = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                0,
            )
        };
        if source == libc::MAP_FAILED {
            return None;
        }
        let part = ImagePart { offset: start, len, file_offset: 0, source: source as *const u8 };
        Some(MemoryImage { fd, parts: vec![part], own_map: Some((source as usize, len)), _source_owner: None })
    }

    /// The image whose parts lie in `file` already: each (offset in the memory,
    /// bytes) is a run of whole host pages inside `bytes` (which `file` holds from
    /// file offset 0 at address `file_base`), at a page-aligned place in it. The
    /// memory maps them straight from the file, which must never change while
    /// mapped (a compiled artifact: trusted, written once). `None` where a part is
    /// not aligned so, or the parts overlap: the caller lays out a memory file.
    #[cfg(carnac_native_code)]
    pub fn in_file<'a>(
        file: &std::fs::File,
        file_base: usize,
        bytes: &crate::module::SharedBytes,
        parts: impl Iterator<Item = (usize, &'a [u8])>,
    ) -> Option<MemoryImage> {
        let page = host_page_size();
        let mut out: Vec<ImagePart> = Vec::new();
        for (offset, b) in parts.filter(|(_, b)| !b.is_empty()) {
            let at = (b.as_ptr() as usize).checked_sub(file_base)?;
            if offset % page != 0 || b.len() % page != 0 || at % page != 0 {
                return None;
            }
            out.push(ImagePart { offset, len: b.len(), file_offset: at as u64, source: b.as_ptr() });
        }
        out.sort_by_key(|p| p.offset);
        if out.is_empty() || out.windows(2).any(|w| w[0].offset + w[0].len > w[1].offset) {
            return None;
        }
        let fd = std::os::fd::OwnedFd::from(file.try_clone().ok()?);
        Some(MemoryImage { fd, parts: out, own_map: None, _source_owner: Some(bytes.clone()) })
    }

    /// Where the image ends in the memory: the memory must be at least this long.
    pub fn end(&self) -> usize {
        self.parts.last().map_or(0, |p| p.offset + p.len)
    }

    /// Where the image starts in the memory (its first part).
    fn start(&self) -> usize {
        self.parts.first().map_or(0, |p| p.offset)
    }

    /// The parts: (offset in the memory, bytes), in order.
    pub fn parts(&self) -> impl Iterator<Item = (usize, &[u8])> {
        // SAFETY: each part's `source` maps `len` readable bytes for as long as
        // `self` lives (see the fields).
        self.parts.iter().map(|p| (p.offset, unsafe { std::slice::from_raw_parts(p.source, p.len) }))
    }

    /// What bytes `[start, start + out.len())` of a memory holding this image
    /// start as: copies them into `out` (zeros outside the image).
    fn initial_bytes(&self, start: usize, out: &mut [u8]) {
        out.fill(0);
        let end = start + out.len();
        // The first part that ends after `start`.
        let first = self.parts.partition_point(|p| p.offset + p.len <= start);
        for (offset, bytes) in self.parts().skip(first) {
            if offset >= end {
                break;
            }
            let (lo, hi) = (start.max(offset), end.min(offset + bytes.len()));
            if lo < hi {
                out[lo - start..hi - start].copy_from_slice(&bytes[lo - offset..hi - offset]);
            }
        }
    }
}

impl Drop for MemoryImage {
    fn drop(&mut self) {
        if let Some((addr, len)) = self.own_map {
            // SAFETY: unmaps exactly the mapping made in `new`; no slice of it outlives `self`.
            unsafe { libc::munmap(addr as *mut libc::c_void, len) };
        }
    }
}

/// An anonymous memory file of `len` bytes (zeros), or `None` where there is none.
fn memory_file(len: usize) -> Option<std::os::fd::OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::FromRawFd;
        // SAFETY: the name is a NUL-terminated string; the result is checked.
        let fd = unsafe { libc::memfd_create(c"carnac-memory-image".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: sizes the file this function owns.
        if unsafe { libc::ftruncate(std::os::fd::AsRawFd::as_raw_fd(&fd), len as libc::off_t) } != 0 {
            return None;
        }
        Some(fd)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = len;
        None
    }
}

pub(crate) struct LinearMemory {
    /// Base and length, boxed so that compiled code and the interpreter can
    /// hold a pointer to them (`VMContext`'s memory entries) that stays valid
    /// however the store's vector of memories moves.
    def: Box<VMMemoryDef>,
    reserved: usize,
    /// Bytes from `base` that are mapped read-write (≥ `len`). A region reused
    /// from the pool keeps its earlier size read-write (its pages released, so
    /// they read as zero): the interpreter bounds-checks every access against
    /// `len`, so nothing past `len` is reachable by the guest, and skipping the
    /// `mprotect` calls halves the cost of a fresh instance.
    accessible: usize,
    max_pages: u64,
    /// Set once code took the whole memory as a plain `&mut [u8]`: the written-chunk
    /// map is then incomplete, and the reset asks the kernel what is resident.
    untracked: bool,
    /// The image mapped copy-on-write over part of the region, which the memory
    /// started as (and which its reset restores).
    image: Option<Arc<MemoryImage>>,
    /// A shared memory (see `runtime::shared`): its length is published with
    /// `Release` and read with `Acquire`.
    shared: bool,
    pub(crate) ty: MemoryType,
}

// SAFETY: the region is owned exclusively by this value; access goes through
// `&self`/`&mut self`, so the usual borrow rules make sharing across threads sound.
unsafe impl Send for LinearMemory {}
unsafe impl Sync for LinearMemory {}

impl LinearMemory {
    /// A memory of type `ty`; `tracked` when every write to it will mark the
    /// written-chunk map (see the module docs), otherwise its reset asks the kernel.
    ///
    /// `guard`: for compiled code that relies on faults instead of bounds checks
    /// (`Config::signals_based_traps`), reserve the whole 4 GiB index space plus
    /// this many bytes, and keep everything past the length inaccessible, so
    /// that any 32-bit address plus a static offset below `guard` either lies
    /// inside the memory or faults.
    ///
    /// `image`: the memory starts as this image instead of zeros (mapped, not
    /// copied); it must lie within the memory's minimum size.
    ///
    /// A shared type (`ty.shared`) must have a maximum: its region is reserved for
    /// it here and never moves. A shared memory is always untracked: several
    /// threads write it, and it is reset through the kernel when its last owner
    /// drops it (see `runtime::shared`).
    pub fn new(
        ty: MemoryType,
        tracked: bool,
        guard: Option<u64>,
        image: Option<&Arc<MemoryImage>>,
    ) -> Result<LinearMemory, String> {
        let min = ty.limits.min;
        if ty.shared && ty.limits.max.is_none() {
            return Err("a shared memory must have a maximum size".into());
        }
        let tracked = tracked && !ty.shared;
        let max_pages = ty.limits.max.unwrap_or(MAX_PAGES).min(MAX_PAGES);
        if min > max_pages {
            let (min, max) = (crate::types::count(min, "page"), crate::types::count(max_pages, "page"));
            return Err(format!("memory minimum of {min} exceeds its maximum of {max}"));
        }
        let reserved = match guard {
            Some(guard) => (MAX_PAGES as usize * WASM_PAGE).saturating_add(guard as usize).next_multiple_of(WASM_PAGE),
            None => max_pages as usize * WASM_PAGE,
        };
        if image.is_some_and(|i| i.end() as u64 > min * WASM_PAGE as u64) {
            return Err("a memory image is larger than the memory's minimum size".into());
        }
        let mut accessible = 0;
        let mut mapped = None;
        let base = if reserved == 0 {
            std::ptr::NonNull::<u8>::dangling().as_ptr()
        } else if let Some(region) = take_pooled(reserved, image) {
            accessible = region.accessible;
            mapped = region.image;
            region.base as *mut u8
        } else {
            // SAFETY: an anonymous private mapping with no access rights; it touches no
            // existing memory. The result is checked for failure below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    CHUNK_MAP_OFFSET + reserved,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(format!("cannot reserve {reserved} bytes of address space for a memory"));
            }
            // The written-chunk map: the bytes below the memory (pages of it are only
            // populated when written, and they read as zero until then).
            // SAFETY: the first CHUNK_MAP_OFFSET bytes of the region just mapped.
            if unsafe { libc::mprotect(p, CHUNK_MAP_OFFSET, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
                // SAFETY: unmaps exactly the region mapped above, which nothing uses.
                unsafe { libc::munmap(p, CHUNK_MAP_OFFSET + reserved) };
                return Err("cannot map the written-chunk map of a memory".into());
            }
            // SAFETY: CHUNK_MAP_OFFSET < CHUNK_MAP_OFFSET + reserved, the region's size.
            unsafe { (p as *mut u8).add(CHUNK_MAP_OFFSET) }
        };
        let def = Box::new(VMMemoryDef { base, len: AtomicUsize::new(0) });
        let shared = ty.shared;
        let mut mem =
            LinearMemory { def, reserved, accessible, max_pages, untracked: !tracked, image: mapped, shared, ty };
        let keeps_image = same_image(mem.image.as_ref(), image);
        if !keeps_image {
            mem.unmap_image()?;
        }
        if guard.is_some() {
            // A reused region may have more read-write bytes than this memory's
            // length: take them back, so accesses past the length fault.
            mem.protect_from(min as usize * WASM_PAGE)?;
        }
        if mem.grow(min).is_none() {
            return Err(format!("cannot commit {} of memory", crate::types::count(min, "page")));
        }
        if let (Some(image), false) = (image, keeps_image) {
            mem.map_image(image)?;
        }
        Ok(mem)
    }

    /// Maps `image` copy-on-write over its place in the memory (which is zero,
    /// read-write and at least `image.end()` long).
    fn map_image(&mut self, image: &Arc<MemoryImage>) -> Result<(), String> {
        debug_assert!(self.image.is_none() && image.end() <= self.len());
        for part in &image.parts {
            // SAFETY: the part lies inside the memory's read-write part (checked in
            // `new`) and holds only zeros that nothing refers to; MAP_FIXED replaces
            // exactly those pages with a private mapping of the image's file.
            let p = unsafe {
                libc::mmap(
                    self.def.base.add(part.offset) as *mut libc::c_void,
                    part.len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_FIXED,
                    std::os::fd::AsRawFd::as_raw_fd(&image.fd),
                    part.file_offset as libc::off_t,
                )
            };
            if p == libc::MAP_FAILED {
                // What was mapped is replaced by zeros again when the region is reset.
                self.image = Some(image.clone());
                let _ = self.unmap_image();
                return Err("cannot map a memory image".into());
            }
        }
        self.image = Some(image.clone());
        Ok(())
    }

    /// Replaces the image mapped in a (reset) region by zeros again.
    fn unmap_image(&mut self) -> Result<(), String> {
        let Some(image) = self.image.take() else { return Ok(()) };
        let (start, end) = (image.start(), image.end());
        // SAFETY: the image lies inside the region's read-write part (it was mapped
        // within the length of a memory, and a pooled region keeps at least that
        // read-write); MAP_FIXED replaces exactly its pages (and the zero pages
        // between its parts) with fresh zero pages.
        let p = unsafe {
            libc::mmap(
                self.def.base.add(start) as *mut libc::c_void,
                end - start,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            // The image is still there: keep it, so the reset restores it.
            self.image = Some(image);
            return Err("cannot unmap a memory image".into());
        }
        Ok(())
    }

    /// Makes the bytes from `len` up to what is read-write inaccessible again.
    fn protect_from(&mut self, len: usize) -> Result<(), String> {
        if self.accessible <= len {
            return Ok(());
        }
        // SAFETY: [base+len, base+accessible) is inside the region reserved in `new`
        // and holds no live data (a pooled region is zeroed, and `len` is the new length).
        let rc = unsafe {
            libc::mprotect(self.def.base.add(len) as *mut libc::c_void, self.accessible - len, libc::PROT_NONE)
        };
        if rc != 0 {
            return Err("cannot protect a reused memory region".into());
        }
        self.accessible = len;
        Ok(())
    }

    /// The most pages the memory may have: its type's maximum, within the index space.
    pub fn max_pages(&self) -> u64 {
        self.max_pages
    }

    pub fn size_pages(&self) -> u64 {
        (self.len() / WASM_PAGE) as u64
    }

    /// The length in bytes (an `Acquire` load for a shared memory, see [`VMMemoryDef`]).
    pub fn len(&self) -> usize {
        self.def.len_for(self.shared)
    }

    /// The memory's definition (base and length) at its stable address. Nothing
    /// writes through it but atomic stores of the length (`len` is atomic, the
    /// base never changes), so a pointer from a shared borrow serves every tier.
    pub(crate) fn def_ptr(&self) -> *mut VMMemoryDef {
        &*self.def as *const VMMemoryDef as *mut VMMemoryDef
    }

    #[cfg(test)]
    pub fn base(&self) -> *mut u8 {
        self.def.base
    }

    /// Grows by `delta` pages; returns the old size in pages, or `None` if the
    /// maximum would be exceeded or the host refuses the memory.
    pub fn grow(&mut self, delta: u64) -> Option<u64> {
        let old = self.size_pages();
        let new = old.checked_add(delta)?;
        if new > self.max_pages {
            return None;
        }
        if delta == 0 {
            return Some(old);
        }
        let new_len = new as usize * WASM_PAGE;
        debug_assert!(new_len <= self.reserved);
        if new_len > self.accessible {
            // SAFETY: [base+accessible, base+new_len) lies inside the region reserved in
            // `new` (new_len <= reserved, checked through max_pages above).
            let rc = unsafe {
                libc::mprotect(
                    self.def.base.add(self.accessible) as *mut libc::c_void,
                    new_len - self.accessible,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            if rc != 0 {
                return None;
            }
            self.accessible = new_len;
        }
        // A shared memory's readers on other threads load the length with
        // `Acquire`: they see the pages made accessible above.
        self.def.len.store(new_len, if self.shared { Ordering::Release } else { Ordering::Relaxed });
        Some(old)
    }

    pub fn data(&self) -> &[u8] {
        // SAFETY: [base, base+len) is mapped read-write (or len is 0 with a dangling,
        // well-aligned base), and stays so for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.def.base, self.len()) }
    }

    /// The whole memory as a plain slice: what is written through it cannot be
    /// tracked, so the memory's reset falls back to asking the kernel (see the
    /// module docs). Prefer [`LinearMemory::tracked`] or [`LinearMemory::write`].
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.untracked = true;
        // SAFETY: as in `data`, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.def.base, self.len()) }
    }

    /// A view that marks what it hands out for writing.
    pub fn tracked(&mut self) -> MemoryMut<'_> {
        MemoryMut { base: self.def.base, len: self.len(), _memory: std::marker::PhantomData }
    }

    /// Copies `bytes` to `offset`; `false` (nothing written) when out of bounds.
    pub fn write(&mut self, offset: usize, bytes: &[u8]) -> bool {
        let end = match offset.checked_add(bytes.len()) {
            Some(end) => end,
            None => return false,
        };
        match self.tracked().get_mut(offset..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

impl LinearMemory {
    /// The written-chunk map entries of the read-write part.
    fn chunk_map(&mut self) -> &mut [u8] {
        // SAFETY: the map lies CHUNK_MAP_OFFSET bytes below the base of every mapped
        // memory (reserved > 0, checked by the callers), read-write, with one byte per
        // chunk of up to 4 GiB; `accessible` is at most the reservation.
        unsafe { std::slice::from_raw_parts_mut(self.def.base.sub(CHUNK_MAP_OFFSET), self.accessible >> CHUNK_SHIFT) }
    }

    /// Resets bytes `[start, start + n)` (inside the read-write part) to what the
    /// memory started as: the image's bytes where it has them, zeros elsewhere.
    fn reset_range(&mut self, start: usize, n: usize) {
        let base = self.def.base;
        // SAFETY: the callers pass ranges inside the read-write part, which nothing
        // else refers to while the memory is being reset.
        let bytes = unsafe { std::slice::from_raw_parts_mut(base.add(start), n) };
        match &self.image {
            Some(image) => image.initial_bytes(start, bytes),
            None => bytes.fill(0),
        }
    }

    /// Resets the chunks the map marks as written (and the few bytes a store at a
    /// chunk's end may have spilled into the next) to their initial contents, then
    /// clears the map. Returns `false`, having done nothing, when they are too many
    /// to keep resident.
    fn reset_written_chunks(&mut self) -> bool {
        // The map is read eight entries at a time: most of it is clean, and a
        // large memory's map (8,000 entries for 32 MiB) is scanned in a few hundred
        // loads.
        let map = self.chunk_map();
        let chunks = map.len();
        let word = |map: &[u8], w: usize| u64::from_ne_bytes(map[w * 8..w * 8 + 8].try_into().expect("8 bytes"));
        let words = chunks / 8;
        let mut written = map[words * 8..].iter().filter(|b| **b != 0).count();
        for w in 0..words {
            let v = word(map, w);
            if v != 0 {
                written += v.to_ne_bytes().iter().filter(|b| **b != 0).count();
            }
        }
        if written * CHUNK > KEEP_RESIDENT_MAX {
            return false;
        }
        let mut i = 0;
        while i < chunks {
            let map = self.chunk_map();
            // Skip eight clean chunks at a time.
            if i % 8 == 0 && i + 8 <= chunks && word(map, i / 8) == 0 {
                i += 8;
                continue;
            }
            if map[i] != 0 {
                map[i] = 0;
                let spill = i + 1 < chunks && map[i + 1] == 0;
                // Chunk i lies inside the read-write part (i < accessible / CHUNK), and
                // so do the first bytes of chunk i + 1 when it exists.
                self.reset_range(i * CHUNK, CHUNK);
                if spill {
                    self.reset_range((i + 1) * CHUNK, SPILL);
                }
            }
            i += 1;
        }
        true
    }

    /// Debug builds check the tracking itself: every byte outside the chunks the
    /// map marks (and their spill) must still be as the memory started.
    #[cfg(debug_assertions)]
    fn check_unmarked_chunks_are_initial(&mut self) {
        let base = self.def.base;
        let map = self.chunk_map().to_vec();
        let mut expected = vec![0u8; CHUNK];
        for (i, marked) in map.iter().enumerate() {
            let spill = if i > 0 && map[i - 1] != 0 { SPILL } else { 0 };
            if *marked == 0 {
                // SAFETY: chunk i lies inside the read-write part.
                let chunk = unsafe { std::slice::from_raw_parts(base.add(i * CHUNK + spill), CHUNK - spill) };
                let expected = &mut expected[..CHUNK - spill];
                match &self.image {
                    Some(image) => image.initial_bytes(i * CHUNK + spill, expected),
                    None => expected.fill(0),
                }
                assert!(chunk == expected, "memory chunk {i} was written without being marked");
            }
        }
    }

    /// Zeroes the resident pages of the read-write part in place, if they are
    /// few enough (pages that are not resident already read as zero).
    fn zero_resident_pages(&mut self) -> bool {
        if self.image.is_some() {
            // Pages of the image read as resident: they must be dropped, not zeroed.
            return false;
        }
        let page = host_page_size();
        let pages = self.accessible.div_ceil(page);
        if pages > (64 << 20) / page {
            return false;
        }
        let mut resident = vec![0u8; pages];
        // SAFETY: [base, base+accessible) is mapped (read-write) and page-aligned;
        // `resident` has one byte per page, as mincore requires.
        let rc = unsafe { libc::mincore(self.def.base as *mut libc::c_void, self.accessible, resident.as_mut_ptr()) };
        if rc != 0 || resident.iter().filter(|r| **r & 1 != 0).count() * page > KEEP_RESIDENT_MAX {
            return false;
        }
        for (i, r) in resident.iter().enumerate() {
            if r & 1 != 0 {
                let len = page.min(self.accessible - i * page);
                // SAFETY: page i lies inside the read-write part (checked by the bound above).
                unsafe { std::ptr::write_bytes(self.def.base.add(i * page), 0, len) };
            }
        }
        true
    }

    /// Releases the pages of the read-write part: they read as zero afterwards
    /// (or as the image, where one is mapped).
    fn release_pages(&mut self) -> bool {
        // SAFETY: [base, base+accessible) is the read-write part of the region mapped
        // in `new`; nothing refers to it after the memory is dropped (the store owns
        // all memories). MADV_DONTNEED on a private anonymous mapping drops the
        // pages, so every byte reads as zero when the region is used again; on the
        // private file mapping of an image it drops the private copies, and the
        // pages read as the image again.
        unsafe { libc::madvise(self.def.base as *mut libc::c_void, self.accessible, libc::MADV_DONTNEED) == 0 }
    }
}

impl Drop for LinearMemory {
    fn drop(&mut self) {
        if self.reserved == 0 {
            return;
        }
        #[cfg(debug_assertions)]
        if !self.untracked && self.accessible <= 4 << 20 {
            self.check_unmarked_chunks_are_initial();
        }
        let reset = self.accessible == 0
            || (!self.untracked && self.reset_written_chunks())
            || ((self.zero_resident_pages() || self.release_pages()) && {
                self.chunk_map().fill(0);
                true
            });
        if reset {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOL_MAX {
                pool.push(PooledRegion {
                    reserved: self.reserved,
                    base: self.def.base as usize,
                    accessible: self.accessible,
                    image: self.image.take(),
                });
                return;
            }
        }
        // SAFETY: unmaps exactly the region mapped in `new` (the map below the base
        // and the reservation), which nothing uses any more.
        unsafe {
            libc::munmap(self.def.base.sub(CHUNK_MAP_OFFSET) as *mut libc::c_void, CHUNK_MAP_OFFSET + self.reserved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_dirty_regions_are_released_and_come_back_zeroed() {
        let ty = MemoryType::new(32, Some(32));
        for _ in 0..3 {
            let mut m = LinearMemory::new(ty, true, None, None).unwrap();
            assert!(m.data().iter().all(|b| *b == 0));
            m.data_mut().fill(0x5A); // 2 MiB resident: over the keep-resident bound
        }
    }

    #[test]
    fn tracked_writes_are_reset_without_asking_the_kernel() {
        let ty = MemoryType::new(3, Some(3));
        for round in 0..4u8 {
            let mut m = LinearMemory::new(ty, true, None, None).unwrap();
            assert!(m.data().iter().all(|b| *b == 0), "round {round}: memory not zeroed");
            assert!(m.chunk_map().iter().all(|b| *b == 0), "round {round}: chunk map not cleared");
            // A host write, a data-segment-style write across chunks, and a store at
            // the end of a chunk that spills into the next (marked by its first byte).
            m.tracked().get_mut(100..164).unwrap().fill(round + 1);
            assert!(m.write(WASM_PAGE - 10, &[round + 1; 5000]));
            let ea = 2 * WASM_PAGE + CHUNK - 8;
            let base = m.base();
            // SAFETY: ea + 16 <= len (3 pages), as the interpreter checks before a store.
            unsafe {
                std::ptr::write_unaligned(base.add(ea) as *mut [u8; 16], [round + 1; 16]);
                mark_written_range(base, ea, 1); // what a store marks: its first byte
            }
            assert!(!m.untracked);
            assert!(!m.write(3 * WASM_PAGE - 4, &[1; 8]), "out of bounds writes nothing");
        }
    }

    /// The debug-build check that backs the tracking: a write that bypasses the
    /// map is caught when the memory is reset.
    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "without being marked")]
    fn an_unmarked_write_is_caught_in_debug_builds() {
        let ty = MemoryType::new(1, Some(1));
        let m = LinearMemory::new(ty, true, None, None).unwrap();
        // SAFETY: byte 5000 is inside the 1-page memory.
        unsafe { *m.base().add(5000) = 7 };
        drop(m);
    }

    #[test]
    fn reused_regions_come_back_zeroed_and_bounded() {
        let ty = MemoryType::new(2, Some(3));
        for round in 0..4 {
            let mut m = LinearMemory::new(ty, true, None, None).unwrap();
            assert_eq!(m.len(), 2 * WASM_PAGE);
            assert!(m.data().iter().all(|b| *b == 0), "round {round}: memory not zeroed");
            m.data_mut().fill(0xAB);
            assert_eq!(m.grow(1), Some(2));
            assert!(m.data()[2 * WASM_PAGE..].iter().all(|b| *b == 0));
            m.data_mut().fill(0xCD);
            assert_eq!(m.grow(1), None);
        }
    }
}
