//! Table and segment operations shared by the tiers: `table.fill`,
//! `table.copy`, `table.init`, `elem.drop`, `data.drop` and `memory.init`,
//! addressed as the instruction addresses them (an instance and its own table,
//! segment and memory indices). The interpreter's executor and the compiled
//! tier's builtins both call these, so the bounds rules live in one place.
//!
//! Nothing here runs guest code or touches the limiter.

use crate::runtime::memory::mark_written_range;
use crate::runtime::store::StoreInner;
use crate::runtime::trap::TrapKind;

/// Whether `[start, start + n)` fits in `len` (without overflow).
fn fits(start: usize, n: usize, len: usize) -> bool {
    start.checked_add(n).is_some_and(|end| end <= len)
}

impl StoreInner {
    /// `table.fill`: elements `[i, i + n)` of the instance's table `table` set to `val`.
    pub fn table_fill(&mut self, instance: u32, table: u32, i: usize, val: u64, n: usize) -> Result<(), TrapKind> {
        let t = self.instances[instance as usize].tables[table as usize];
        let elems = &mut self.tables[t as usize].elems;
        if !fits(i, n, elems.len()) {
            return Err(TrapKind::TableOutOfBounds);
        }
        elems[i..i + n].fill(val);
        Ok(())
    }

    /// `table.copy`: `n` elements from `src` of table `src_table` to `dst` of `dst_table`.
    pub fn table_copy(
        &mut self,
        instance: u32,
        dst_table: u32,
        src_table: u32,
        d: usize,
        s: usize,
        n: usize,
    ) -> Result<(), TrapKind> {
        let inst = &self.instances[instance as usize];
        let (td, ts) = (inst.tables[dst_table as usize] as usize, inst.tables[src_table as usize] as usize);
        let tables = &mut self.tables;
        if !fits(d, n, tables[td].elems.len()) || !fits(s, n, tables[ts].elems.len()) {
            return Err(TrapKind::TableOutOfBounds);
        }
        if td == ts {
            tables[td].elems.copy_within(s..s + n, d);
        } else {
            let (src, dst) = if ts < td {
                let (a, b) = tables.split_at_mut(td);
                (&a[ts], &mut b[0])
            } else {
                let (a, b) = tables.split_at_mut(ts);
                (&b[0], &mut a[td])
            };
            dst.elems[d..d + n].copy_from_slice(&src.elems[s..s + n]);
        }
        Ok(())
    }

    /// `table.init`: `n` elements from `s` of element segment `segment` to `d` of table `table`.
    pub fn table_init(
        &mut self,
        instance: u32,
        table: u32,
        segment: u32,
        d: usize,
        s: usize,
        n: usize,
    ) -> Result<(), TrapKind> {
        let inst = &self.instances[instance as usize];
        let t = inst.tables[table as usize];
        let seg = &inst.elems[segment as usize];
        let elems = &mut self.tables[t as usize].elems;
        if !fits(s, n, seg.len()) || !fits(d, n, elems.len()) {
            return Err(TrapKind::TableOutOfBounds);
        }
        elems[d..d + n].copy_from_slice(&seg[s..s + n]);
        Ok(())
    }

    /// `elem.drop`.
    pub fn elem_drop(&mut self, instance: u32, segment: u32) {
        self.instances[instance as usize].elems[segment as usize] = Box::new([]);
    }

    /// `data.drop`.
    pub fn data_drop(&mut self, instance: u32, segment: u32) {
        self.instances[instance as usize].data_dropped[segment as usize] = true;
    }

    // The interpreter runs its own, which mark the chunk map only when tracking.
    #[cfg_attr(not(carnac_native_code), allow(dead_code))]
    /// `memory.init`: `n` bytes from `s` of data segment `segment` to `d` of the
    /// instance's memory `memory` (marked written).
    pub fn memory_init(
        &mut self,
        instance: u32,
        memory: u32,
        segment: u32,
        d: usize,
        s: usize,
        n: usize,
    ) -> Result<(), TrapKind> {
        let inst = &self.instances[instance as usize];
        let bytes: &[u8] =
            if inst.data_dropped[segment as usize] { &[] } else { inst.module.data_bytes(segment as usize) };
        let mem = &self.memories[inst.memories[memory as usize] as usize];
        if !fits(s, n, bytes.len()) || !fits(d, n, mem.len()) {
            return Err(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: the source lies inside the segment and the destination inside
        // the memory (checked above); module data and linear memory never overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr().add(s), mem.base().add(d), n);
            if !mem.is_shared() {
                mark_written_range(mem.base(), d, n);
            }
        }
        Ok(())
    }

    // The interpreter runs its own, which mark the chunk map only when tracking.
    #[cfg_attr(not(carnac_native_code), allow(dead_code))]
    /// `memory.fill`: bytes `[d, d + n)` of memory `memory` set to `val`.
    pub fn memory_fill(&mut self, instance: u32, memory: u32, d: usize, val: u8, n: usize) -> Result<(), TrapKind> {
        let m = self.instances[instance as usize].memories[memory as usize];
        let mem = &self.memories[m as usize];
        if !fits(d, n, mem.len()) {
            return Err(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: inside the memory's accessible bytes (checked above).
        unsafe {
            std::ptr::write_bytes(mem.base().add(d), val, n);
            if !mem.is_shared() {
                mark_written_range(mem.base(), d, n);
            }
        }
        Ok(())
    }

    // The interpreter runs its own within one memory (marking the chunk map
    // only when tracking), and this one between two memories.
    /// `memory.copy`: `n` bytes from `s` of memory `src_memory` to `d` of `dst_memory`.
    pub fn memory_copy(
        &mut self,
        instance: u32,
        dst_memory: u32,
        src_memory: u32,
        d: usize,
        s: usize,
        n: usize,
    ) -> Result<(), TrapKind> {
        let inst = &self.instances[instance as usize];
        let dst = &self.memories[inst.memories[dst_memory as usize] as usize];
        let src = &self.memories[inst.memories[src_memory as usize] as usize];
        if !fits(d, n, dst.len()) || !fits(s, n, src.len()) {
            return Err(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: both ranges lie inside their memories (checked above); `copy`
        // allows them to overlap.
        unsafe {
            std::ptr::copy(src.base().add(s), dst.base().add(d), n);
            if !dst.is_shared() {
                mark_written_range(dst.base(), d, n);
            }
        }
        Ok(())
    }
}
