//! Checked access to guest memory for host functions: every pointer and length
//! from the guest is validated against the memory's size, and a bad one becomes
//! `EFAULT`, never a host panic or an access outside the guest's memory.

use crate::types::Errno;

/// The memory a WASI call reads and writes.
pub(crate) enum GuestMemory<'a> {
    /// The store's own memory. Writes go through [`carnac::MemoryMut`], which
    /// records the ranges written, so the instance's memory can be reset cheaply
    /// when its store is dropped.
    Owned(carnac::MemoryMut<'a>),
    /// A shared memory (a wasi-threads program): other threads of the program
    /// may read and write it while the call runs.
    Shared(&'a [std::cell::UnsafeCell<u8>]),
}

impl GuestMemory<'_> {
    #[inline]
    pub fn slice(&self, ptr: u32, len: u32) -> Result<&[u8], Errno> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(Errno::FAULT)?;
        match self {
            GuestMemory::Owned(m) => m.get(start..end).ok_or(Errno::FAULT),
            GuestMemory::Shared(cells) => {
                let cells = cells.get(start..end).ok_or(Errno::FAULT)?;
                // SAFETY: the range lies inside the shared memory, whose region
                // stays mapped while the `SharedMemory` behind `cells` lives and
                // whose length only grows. Other guest threads may write these
                // bytes during the call: that is a race of the guest's own making
                // (as a POSIX `write` from a buffer another thread changes), the
                // host reads whatever bytes are there, and nothing the host does
                // depends on them staying the same (each value is read once).
                Ok(unsafe { std::slice::from_raw_parts(std::cell::UnsafeCell::raw_get(cells.as_ptr()), cells.len()) })
            }
        }
    }

    #[inline]
    pub fn slice_mut(&mut self, ptr: u32, len: u32) -> Result<&mut [u8], Errno> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(Errno::FAULT)?;
        match self {
            GuestMemory::Owned(m) => m.get_mut(start..end).ok_or(Errno::FAULT),
            GuestMemory::Shared(cells) => {
                let cells = cells.get(start..end).ok_or(Errno::FAULT)?;
                // SAFETY: as in `slice`; the bytes are writable through the
                // `UnsafeCell`s, and this `&mut self` borrow keeps the call from
                // holding two overlapping slices of its own. A guest thread that
                // touches the same bytes during the call races with the call, as
                // with a POSIX `read` into a buffer another thread uses.
                Ok(unsafe {
                    std::slice::from_raw_parts_mut(std::cell::UnsafeCell::raw_get(cells.as_ptr()), cells.len())
                })
            }
        }
    }

    pub fn read<const N: usize>(&self, ptr: u32) -> Result<[u8; N], Errno> {
        Ok(self.slice(ptr, N as u32)?.try_into().expect("slice of length N"))
    }

    pub fn write(&mut self, ptr: u32, bytes: &[u8]) -> Result<(), Errno> {
        self.slice_mut(ptr, bytes.len() as u32)?.copy_from_slice(bytes);
        Ok(())
    }

    pub fn u8(&self, ptr: u32) -> Result<u8, Errno> {
        Ok(self.read::<1>(ptr)?[0])
    }
    pub fn u16(&self, ptr: u32) -> Result<u16, Errno> {
        Ok(u16::from_le_bytes(self.read(ptr)?))
    }
    pub fn u32(&self, ptr: u32) -> Result<u32, Errno> {
        Ok(u32::from_le_bytes(self.read(ptr)?))
    }
    pub fn u64(&self, ptr: u32) -> Result<u64, Errno> {
        Ok(u64::from_le_bytes(self.read(ptr)?))
    }
    pub fn put_u8(&mut self, ptr: u32, v: u8) -> Result<(), Errno> {
        self.write(ptr, &[v])
    }
    pub fn put_u16(&mut self, ptr: u32, v: u16) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }
    pub fn put_u32(&mut self, ptr: u32, v: u32) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }
    pub fn put_u64(&mut self, ptr: u32, v: u64) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    /// A path: UTF-8 (invalid is `EILSEQ`), and no longer than the host's
    /// `PATH_MAX` (longer is `ENAMETOOLONG`, what the host would answer), so a
    /// guest cannot make the host copy a path as long as its memory.
    pub fn str(&self, ptr: u32, len: u32) -> Result<&str, Errno> {
        if len > PATH_MAX {
            return Err(Errno::NAMETOOLONG);
        }
        std::str::from_utf8(self.slice(ptr, len)?).map_err(|_| Errno(25))
    }

    /// An array of `(buf, len)` iovecs, each checked to lie inside memory. More
    /// than [`IOV_MAX`] is `EINVAL`, as `readv`/`writev` answer on Linux.
    pub fn iovecs(&self, ptr: u32, count: u32) -> Result<Vec<(u32, u32)>, Errno> {
        if count > IOV_MAX {
            return Err(Errno::INVAL);
        }
        self.slice(ptr, count * 8)?;
        let mut v = Vec::with_capacity(count as usize);
        for i in 0..count {
            let base = ptr + i * 8;
            let (buf, len) = (self.u32(base)?, self.u32(base + 4)?);
            self.slice(buf, len)?;
            v.push((buf, len));
        }
        Ok(v)
    }

    /// The iovecs as slices of guest memory, for a vectored write straight from
    /// it (no host copy, whatever the lengths add up to).
    pub fn io_slices(&self, iovs: &[(u32, u32)]) -> Result<Vec<std::io::IoSlice<'_>>, Errno> {
        iovs.iter().map(|&(buf, len)| Ok(std::io::IoSlice::new(self.slice(buf, len)?))).collect()
    }

    /// Fills the iovecs in order, each straight from `read(slice, bytes so far)`
    /// (no host buffer), and returns the bytes placed. Like `readv`, it stops at
    /// a short read and after [`MAX_RW`] bytes; with `once` (streams, which must
    /// not block for more) after the first non-empty iovec. An error after some
    /// bytes were placed ends the call with those bytes.
    pub fn read_into(
        &mut self,
        iovs: &[(u32, u32)],
        once: bool,
        mut read: impl FnMut(&mut [u8], usize) -> Result<usize, Errno>,
    ) -> Result<usize, Errno> {
        let mut total = 0;
        for &(buf, len) in iovs {
            let len = (len as usize).min(MAX_RW - total);
            if len == 0 {
                if total == MAX_RW {
                    break;
                }
                continue;
            }
            let n = match read(self.slice_mut(buf, len as u32)?, total) {
                Ok(n) => n,
                Err(_) if total > 0 => break,
                Err(e) => return Err(e),
            };
            total += n;
            if once || n < len {
                break;
            }
        }
        Ok(total)
    }
}

/// The most iovecs one call takes: Linux's `IOV_MAX` (`UIO_MAXIOV`).
pub(crate) const IOV_MAX: u32 = 1024;

/// The most bytes one read or write moves: Linux's `MAX_RW_COUNT`. More is a
/// short transfer, and counts stay within the `u32` the guest receives.
pub(crate) const MAX_RW: usize = i32::MAX as usize & !4095;

/// The longest path the host accepts (Linux's `PATH_MAX`, NUL included).
const PATH_MAX: u32 = 4096;
