//! Checked access to guest memory for host functions: every pointer and length
//! from the guest is validated against the memory's size, and a bad one becomes
//! `EFAULT`, never a host panic or an access outside the guest's memory.

use crate::types::Errno;

/// Writes go through [`carnac::MemoryMut`], which records the ranges written, so
/// the instance's memory can be reset cheaply when its store is dropped.
pub(crate) struct GuestMemory<'a>(pub carnac::MemoryMut<'a>);

impl GuestMemory<'_> {
    pub fn slice(&self, ptr: u32, len: u32) -> Result<&[u8], Errno> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(Errno::FAULT)?;
        self.0.get(start..end).ok_or(Errno::FAULT)
    }

    pub fn slice_mut(&mut self, ptr: u32, len: u32) -> Result<&mut [u8], Errno> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(Errno::FAULT)?;
        self.0.get_mut(start..end).ok_or(Errno::FAULT)
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

    /// A UTF-8 string (paths): invalid UTF-8 is `EILSEQ`.
    pub fn str(&self, ptr: u32, len: u32) -> Result<&str, Errno> {
        std::str::from_utf8(self.slice(ptr, len)?).map_err(|_| Errno(25))
    }

    /// An array of `(buf, len)` iovecs, each checked to lie inside memory.
    pub fn iovecs(&self, ptr: u32, count: u32) -> Result<Vec<(u32, u32)>, Errno> {
        // The array itself must be in memory, which also bounds the allocation.
        self.slice(ptr, count.checked_mul(8).ok_or(Errno::FAULT)?)?;
        let mut v = Vec::with_capacity(count as usize);
        for i in 0..count {
            let base = ptr + i * 8;
            let (buf, len) = (self.u32(base)?, self.u32(base + 4)?);
            self.slice(buf, len)?;
            v.push((buf, len));
        }
        Ok(v)
    }

    /// Copies the bytes the iovecs describe into one buffer (for writes).
    pub fn gather(&self, iovs: &[(u32, u32)]) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        for &(buf, len) in iovs {
            out.extend_from_slice(self.slice(buf, len)?);
        }
        Ok(out)
    }

    /// Spreads `data` over the iovecs (for reads); returns the bytes placed.
    pub fn scatter(&mut self, iovs: &[(u32, u32)], mut data: &[u8]) -> Result<usize, Errno> {
        let mut total = 0;
        for &(buf, len) in iovs {
            if data.is_empty() {
                break;
            }
            let n = (len as usize).min(data.len());
            self.slice_mut(buf, n as u32)?.copy_from_slice(&data[..n]);
            data = &data[n..];
            total += n;
        }
        Ok(total)
    }
}

/// Total length the iovecs ask for, capped to keep host buffers bounded.
pub(crate) fn iov_total(iovs: &[(u32, u32)]) -> usize {
    iovs.iter().map(|(_, l)| *l as usize).sum::<usize>().min(16 << 20)
}
