//! Linear memory: a reserved virtual region whose base never moves.
//!
//! The whole region the memory may ever need (its declared maximum, at most the
//! 4 GiB of a 32-bit index space) is reserved up front with no access rights;
//! growing only changes protection of the next pages. Dropped regions go to a
//! process-wide pool, their pages released, and are reused by the next memory
//! of the same reserved size. Compiled code can therefore
//! hold the base pointer across calls, and memory grown by a callee needs no
//! pointer refresh. This is the only module of the runtime that calls `mmap`.

use crate::types::MemoryType;

pub const WASM_PAGE: usize = 65536;
/// 32-bit memories address at most 2^16 pages.
pub const MAX_PAGES: u64 = 65536;

/// Reserved regions kept for reuse, by size: dropping a memory returns its
/// region here (its pages released and made inaccessible again) instead of
/// unmapping it, so the next instantiation skips `mmap` and page-table setup.
/// This is what makes a fresh instance per request cheap in the function host.
/// Entries: (reserved size, base address, bytes left read-write).
static POOL: std::sync::Mutex<Vec<(usize, usize, usize)>> = std::sync::Mutex::new(Vec::new());
/// The most regions the pool keeps.
const POOL_MAX: usize = 128;
/// A region whose resident pages add up to at most this is reset by zeroing
/// those pages in place (they stay resident for the next instance: no page
/// faults, and no `madvise` with its cross-core TLB shootdown); a larger one
/// has its pages released. Bounds what the pool keeps resident to
/// `POOL_MAX * KEEP_RESIDENT_MAX`.
const KEEP_RESIDENT_MAX: usize = 512 << 10;

fn host_page_size() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *SIZE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    })
}

fn take_pooled(reserved: usize) -> Option<(*mut u8, usize)> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let i = pool.iter().rposition(|(size, _, _)| *size == reserved)?;
    let (_, base, accessible) = pool.swap_remove(i);
    Some((base as *mut u8, accessible))
}

pub(crate) struct LinearMemory {
    base: *mut u8,
    reserved: usize,
    len: usize,
    /// Bytes from `base` that are mapped read-write (≥ `len`). A region reused
    /// from the pool keeps its earlier size read-write (its pages released, so
    /// they read as zero): the interpreter bounds-checks every access against
    /// `len`, so nothing past `len` is reachable by the guest, and skipping the
    /// `mprotect` calls halves the cost of a fresh instance.
    accessible: usize,
    max_pages: u64,
    pub(crate) ty: MemoryType,
}

// SAFETY: the region is owned exclusively by this value; access goes through
// `&self`/`&mut self`, so the usual borrow rules make sharing across threads sound.
unsafe impl Send for LinearMemory {}
unsafe impl Sync for LinearMemory {}

impl LinearMemory {
    pub fn new(ty: MemoryType) -> Result<LinearMemory, String> {
        let min = ty.limits.min;
        let max_pages = ty.limits.max.unwrap_or(MAX_PAGES).min(MAX_PAGES);
        if min > max_pages {
            return Err(format!("memory minimum of {min} pages exceeds the maximum"));
        }
        let reserved = max_pages as usize * WASM_PAGE;
        let mut accessible = 0;
        let base = if reserved == 0 {
            std::ptr::NonNull::<u8>::dangling().as_ptr()
        } else if let Some((base, acc)) = take_pooled(reserved) {
            accessible = acc;
            base
        } else {
            // SAFETY: an anonymous private mapping with no access rights; it touches no
            // existing memory. The result is checked for failure below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    reserved,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(format!("cannot reserve {reserved} bytes of address space for a memory"));
            }
            p as *mut u8
        };
        let mut mem = LinearMemory { base, reserved, len: 0, accessible, max_pages, ty };
        if mem.grow(min).is_none() {
            return Err(format!("cannot commit {min} pages of memory"));
        }
        Ok(mem)
    }

    pub fn size_pages(&self) -> u64 {
        (self.len / WASM_PAGE) as u64
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Where the length is kept, for the interpreter to re-read after calls.
    pub(crate) fn len_ptr(&self) -> *const usize {
        &self.len
    }

    pub fn base(&self) -> *mut u8 {
        self.base
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
                    self.base.add(self.accessible) as *mut libc::c_void,
                    new_len - self.accessible,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            if rc != 0 {
                return None;
            }
            self.accessible = new_len;
        }
        self.len = new_len;
        Some(old)
    }

    pub fn data(&self) -> &[u8] {
        // SAFETY: [base, base+len) is mapped read-write (or len is 0 with a dangling,
        // well-aligned base), and stays so for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.base, self.len) }
    }
}

impl LinearMemory {
    /// Zeroes the resident pages of the read-write part in place, if they are
    /// few enough (pages that are not resident already read as zero).
    fn zero_resident_pages(&mut self) -> bool {
        let page = host_page_size();
        let pages = self.accessible.div_ceil(page);
        if pages > (64 << 20) / page {
            return false;
        }
        let mut resident = vec![0u8; pages];
        // SAFETY: [base, base+accessible) is mapped (read-write) and page-aligned;
        // `resident` has one byte per page, as mincore requires.
        let rc = unsafe { libc::mincore(self.base as *mut libc::c_void, self.accessible, resident.as_mut_ptr()) };
        if rc != 0 || resident.iter().filter(|r| **r & 1 != 0).count() * page > KEEP_RESIDENT_MAX {
            return false;
        }
        for (i, r) in resident.iter().enumerate() {
            if r & 1 != 0 {
                let len = page.min(self.accessible - i * page);
                // SAFETY: page i lies inside the read-write part (checked by the bound above).
                unsafe { std::ptr::write_bytes(self.base.add(i * page), 0, len) };
            }
        }
        true
    }

    /// Releases the pages of the read-write part: they read as zero afterwards.
    fn release_pages(&mut self) -> bool {
        // SAFETY: [base, base+accessible) is the read-write part of the region mapped
        // in `new`; nothing refers to it after the memory is dropped (the store owns
        // all memories). MADV_DONTNEED on a private anonymous mapping drops the
        // pages, so every byte reads as zero when the region is used again.
        unsafe { libc::madvise(self.base as *mut libc::c_void, self.accessible, libc::MADV_DONTNEED) == 0 }
    }
}

impl Drop for LinearMemory {
    fn drop(&mut self) {
        if self.reserved == 0 {
            return;
        }
        let reset = self.accessible == 0 || self.zero_resident_pages() || self.release_pages();
        if reset {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOL_MAX {
                pool.push((self.reserved, self.base as usize, self.accessible));
                return;
            }
        }
        // SAFETY: unmaps exactly the region mapped in `new`, which nothing uses any more.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.reserved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Limits;

    #[test]
    fn large_dirty_regions_are_released_and_come_back_zeroed() {
        let ty = MemoryType { limits: Limits { min: 32, max: Some(32) } };
        for _ in 0..3 {
            let mut m = LinearMemory::new(ty).unwrap();
            assert!(m.data().iter().all(|b| *b == 0));
            m.data_mut().fill(0x5A); // 2 MiB resident: over the keep-resident bound
        }
    }

    #[test]
    fn reused_regions_come_back_zeroed_and_bounded() {
        let ty = MemoryType { limits: Limits { min: 2, max: Some(3) } };
        for round in 0..4 {
            let mut m = LinearMemory::new(ty).unwrap();
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
