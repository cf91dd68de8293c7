//! Linear memory: a reserved virtual region whose base never moves.
//!
//! The whole region the memory may ever need (its declared maximum, at most the
//! 4 GiB of a 32-bit index space) is reserved up front with no access rights;
//! growing only changes protection of the next pages. Compiled code can therefore
//! hold the base pointer across calls, and memory grown by a callee needs no
//! pointer refresh. This is the only module of the runtime that calls `mmap`.

use crate::types::MemoryType;

pub const WASM_PAGE: usize = 65536;
/// 32-bit memories address at most 2^16 pages.
pub const MAX_PAGES: u64 = 65536;

pub(crate) struct LinearMemory {
    base: *mut u8,
    reserved: usize,
    len: usize,
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
        let base = if reserved == 0 {
            std::ptr::NonNull::<u8>::dangling().as_ptr()
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
        let mut mem = LinearMemory { base, reserved, len: 0, max_pages, ty };
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
        // SAFETY: [base+len, base+new_len) lies inside the region reserved in `new`
        // (new_len <= reserved, checked through max_pages above).
        let rc = unsafe {
            libc::mprotect(
                self.base.add(self.len) as *mut libc::c_void,
                new_len - self.len,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return None;
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

impl Drop for LinearMemory {
    fn drop(&mut self) {
        if self.reserved != 0 {
            // SAFETY: unmaps exactly the region mapped in `new`; nothing refers to it
            // after the memory is dropped (the store owns all memories).
            unsafe {
                libc::munmap(self.base as *mut libc::c_void, self.reserved);
            }
        }
    }
}
