//! Handlers of the current memory (`mem_base`/`mem_len`: memory 0, or for one
//! access the memory a `UseMemory` selected, see `exec`): bulk fills and
//! copies, loads and stores (plain, immediate, constant-address, indexed and
//! paired forms). Every access is checked against `mem_len` first; with
//! `TRACK`, stores mark the memory's written-chunk map.
//!
//! Must not touch: `memory.grow` and anything that may move or resize the
//! memory (those end the run: `exec` runs them with the store at hand).
//!
//! The arms are not compiled here: this file holds a macro that hands them to
//! `handlers!`, which `threaded` (mod.rs) expands, so the handlers are
//! functions of `threaded` itself (one module, as before the split: the same
//! code and symbol names) and the names the arms use (`ptr`, `TrapKind`,
//! `ops`...) resolve there. Each arm is written as in a `match` over the
//! instruction, with the helper macros of `handlers!` (`rd!`, `wr!`, `jump!`,
//! `trap!`, `load!`, `store!`...) and the handler's arguments (`ip`, `fp`,
//! `mem_base`, `mem_len`, `acc`, `cx`) in scope.

/// The memory handlers' arms, as a group for `collect_handlers!` (see [`super::macros`]).
macro_rules! memory_handlers {
    ($d:tt $todo:tt $($done:tt)*) => {
        collect_handlers! { $d $todo $($done)* group $d (ip, fp, mem_base, mem_len, acc, chunk_map, cx) {
    // Bulk memory on the current memory (the one the handlers see; the store is not needed).
    MemoryFill { base } => {
        let (d, val, n) = (u32_!(base) as usize, rd!(base + 1) as u8, u32_!(base + 2) as usize);
        if d + n > mem_len {
            trap!(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: d + n <= mem_len.
        unsafe {
            ptr::write_bytes(mem_base.add(d), val, n);
            if TRACK {
                mark_written_range(mem_base, d, n);
            }
        }
    },
    MemoryCopy { base } => {
        let (d, s, n) = (u32_!(base) as usize, u32_!(base + 1) as usize, u32_!(base + 2) as usize);
        if d + n > mem_len || s + n > mem_len {
            trap!(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: both ranges are inside the memory; `copy` allows overlap.
        unsafe {
            ptr::copy(mem_base.add(s), mem_base.add(d), n);
            if TRACK {
                mark_written_range(mem_base, d, n);
            }
        }
    },
    // ---- memory ----
    // The address of an access to a 64-bit memory (memory64, see `Instr::Addr64`);
    // the 32-bit access after it checks the length.
    Addr64 { dst, addr, offset } => {
        match rd!(addr).checked_add(offset as u64) {
            Some(ea) if ea <= u32::MAX as u64 => wr!(dst, ea),
            _ => trap!(TrapKind::MemoryOutOfBounds),
        }
    },
    [2, 4] I32StoreImm { addr, value, offset } => {
        let ea = effective!(addr, offset, 4);
        // SAFETY: ea + 4 <= mem_len, checked by `effective!`.
        // Every mapped memory has its chunk map CHUNK_MAP_OFFSET below its base
        // (`runtime::memory`), one byte per 4 KiB: ea's byte is in it.
        unsafe {
            ptr::write_unaligned(mem_base.add(ea) as *mut [u8; 4], (value as u32).to_le_bytes());
            if TRACK {
                *chunk_map.add(ea >> CHUNK_SHIFT) = 1;
            }
        }
    },
    [2, 4] I64StoreImm { addr, value, offset } => {
        let ea = effective!(addr, offset, 8);
        // SAFETY: ea + 8 <= mem_len, checked by `effective!`.
        // Every mapped memory has its chunk map CHUNK_MAP_OFFSET below its base
        // (`runtime::memory`), one byte per 4 KiB: ea's byte is in it.
        unsafe {
            ptr::write_unaligned(mem_base.add(ea) as *mut [u8; 8], (value as i64).to_le_bytes());
            if TRACK {
                *chunk_map.add(ea >> CHUNK_SHIFT) = 1;
            }
        }
    },
    [2, 4] I32Store8Imm { addr, value, offset } => {
        let ea = effective!(addr, offset, 1);
        // SAFETY: ea + 1 <= mem_len, checked by `effective!`.
        // Every mapped memory has its chunk map CHUNK_MAP_OFFSET below its base
        // (`runtime::memory`), one byte per 4 KiB: ea's byte is in it.
        unsafe {
            *mem_base.add(ea) = value as u8;
            if TRACK {
                *chunk_map.add(ea >> CHUNK_SHIFT) = 1;
            }
        }
    },
    I32Store8ImmStep { at_step, value, offset } => {
        let at = at_step & 0xffff;
        let ea = effective!(at, offset, 1);
        // SAFETY: as in `I32Store8Imm`.
        unsafe {
            *mem_base.add(ea) = value as u8;
            if TRACK {
                *chunk_map.add(ea >> CHUNK_SHIFT) = 1;
            }
        }
        w32!(at, u32_!(at).wrapping_add(u32_!(at_step >> 16)));
    },
    I32StoreAt { value, ea } => store_at!(value, ea, 4, |v| (v as u32).to_le_bytes()),
    I64StoreAt { value, ea } => store_at!(value, ea, 8, |v| v.to_le_bytes()),
    I32Store8At { value, ea } => store_at!(value, ea, 1, |v| [v as u8]),
    [1] I32LoadAt { dst, ea } => {
        let ea = ea as usize;
        if ea + 4 > mem_len {
            trap!(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: ea + 4 <= mem_len, checked just above.
        wr!(dst, u32::from_le_bytes(unsafe { ptr::read_unaligned(mem_base.add(ea) as *const [u8; 4]) }) as u64);
    },
    [1] I64LoadAt { dst, ea } => {
        let ea = ea as usize;
        if ea + 8 > mem_len {
            trap!(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: ea + 8 <= mem_len, checked just above.
        wr!(dst, u64::from_le_bytes(unsafe { ptr::read_unaligned(mem_base.add(ea) as *const [u8; 8]) }));
    },
    [1] I32Load8UAt { dst, ea } => {
        let ea = ea as usize;
        if ea + 1 > mem_len {
            trap!(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: ea < mem_len, checked just above.
        wr!(dst, unsafe { *mem_base.add(ea) } as u64);
    },
    [1, 2, 3] I32Load { dst, addr, offset } => load!(dst, addr, offset, 4, |b| u32::from_le_bytes(b) as u64),
    [1, 2, 3] I64Load { dst, addr, offset } => load!(dst, addr, offset, 8, |b| u64::from_le_bytes(b)),
    [1, 2, 3] F32Load { dst, addr, offset } => load!(dst, addr, offset, 4, |b| u32::from_le_bytes(b) as u64),
    [1, 2, 3] F64Load { dst, addr, offset } => load!(dst, addr, offset, 8, |b| u64::from_le_bytes(b)),
    [1, 2, 3] I32Load8S { dst, addr, offset } => load!(dst, addr, offset, 1, |b| b[0] as i8 as i32 as u32 as u64),
    [1, 2, 3] I32Load8U { dst, addr, offset } => load!(dst, addr, offset, 1, |b| b[0] as u64),
    [1, 2, 3] I32LoadAddImm { dst, src, k } => {
        let ea = u32_!(src).wrapping_add(k as u32) as usize;
        if ea + 4 > mem_len {
            trap!(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: ea + 4 <= mem_len, checked just above.
        let b: [u8; 4] = unsafe { ptr::read_unaligned(mem_base.add(ea) as *const [u8; 4]) };
        wr!(dst, u32::from_le_bytes(b) as u64)
    },
    [1, 2, 3] I64LoadAddImm { dst, src, k } => {
        let ea = u32_!(src).wrapping_add(k as u32) as usize;
        if ea + 8 > mem_len {
            trap!(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: ea + 8 <= mem_len, checked just above.
        let b: [u8; 8] = unsafe { ptr::read_unaligned(mem_base.add(ea) as *const [u8; 8]) };
        wr!(dst, u64::from_le_bytes(b))
    },
    I32Store2 { first, second, offsets } => {
        store!((first & 0xffff), (first >> 16), offsets & 0xffff, 4, |v| (v as u32).to_le_bytes());
        store!((second & 0xffff), (second >> 16), offsets >> 16, 4, |v| (v as u32).to_le_bytes())
    },
    I64Store2 { first, second, offsets } => {
        store!((first & 0xffff), (first >> 16), offsets & 0xffff, 8, |v| v.to_le_bytes());
        store!((second & 0xffff), (second >> 16), offsets >> 16, 8, |v| v.to_le_bytes())
    },
    I32Load2 { first, second, offsets } => {
        load!((first & 0xffff), (first >> 16), offsets & 0xffff, 4, |b| u32::from_le_bytes(b) as u64);
        load!((second & 0xffff), (second >> 16), offsets >> 16, 4, |b| u32::from_le_bytes(b) as u64)
    },
    I64Load2 { first, second, offsets } => {
        load!((first & 0xffff), (first >> 16), offsets & 0xffff, 8, |b| u64::from_le_bytes(b));
        load!((second & 0xffff), (second >> 16), offsets >> 16, 8, |b| u64::from_le_bytes(b))
    },
    I32LoadThenStore { dst, addrs, offsets } => {
        load!(dst, (addrs & 0xffff), offsets & 0xffff, 4, |b| u32::from_le_bytes(b) as u64);
        store!((addrs >> 16), dst, offsets >> 16, 4, |v| (v as u32).to_le_bytes())
    },
    I64LoadThenStore { dst, addrs, offsets } => {
        load!(dst, (addrs & 0xffff), offsets & 0xffff, 8, |b| u64::from_le_bytes(b));
        store!((addrs >> 16), dst, offsets >> 16, 8, |v| v.to_le_bytes())
    },
    I32MemCopyWord { addrs, src_offset, dst_offset } => copy_word!(addrs, src_offset, dst_offset, 4),
    I64MemCopyWord { addrs, src_offset, dst_offset } => copy_word!(addrs, src_offset, dst_offset, 8),
    [1, 2, 3, 4, 5] I32LoadIdx { dst, bi, offset } => load_idx!(dst, bi, offset, 4, |b| u32::from_le_bytes(b) as u64),
    [1, 2, 3, 4, 5] I64LoadIdx { dst, bi, offset } => load_idx!(dst, bi, offset, 8, |b| u64::from_le_bytes(b)),
    [1, 2, 3, 4, 5] I32Load8UIdx { dst, bi, offset } => load_idx!(dst, bi, offset, 1, |b| b[0] as u64),
    [1, 2, 3] I32Load16S { dst, addr, offset } => load!(dst, addr, offset, 2, |b| i16::from_le_bytes(b) as i32 as u32 as u64),
    [1, 2, 3] I32Load16U { dst, addr, offset } => load!(dst, addr, offset, 2, |b| u16::from_le_bytes(b) as u64),
    [1, 2, 3] I64Load8S { dst, addr, offset } => load!(dst, addr, offset, 1, |b| b[0] as i8 as i64 as u64),
    [1, 2, 3] I64Load8U { dst, addr, offset } => load!(dst, addr, offset, 1, |b| b[0] as u64),
    [1, 2, 3] I64Load16S { dst, addr, offset } => load!(dst, addr, offset, 2, |b| i16::from_le_bytes(b) as i64 as u64),
    [1, 2, 3] I64Load16U { dst, addr, offset } => load!(dst, addr, offset, 2, |b| u16::from_le_bytes(b) as u64),
    [1, 2, 3] I64Load32S { dst, addr, offset } => load!(dst, addr, offset, 4, |b| i32::from_le_bytes(b) as i64 as u64),
    [1, 2, 3] I64Load32U { dst, addr, offset } => load!(dst, addr, offset, 4, |b| u32::from_le_bytes(b) as u64),
    [2, 4] I32Store { addr, value, offset } => store!(addr, value, offset, 4, |v| (v as u32).to_le_bytes()),
    [2, 4] I64Store { addr, value, offset } => store!(addr, value, offset, 8, |v| v.to_le_bytes()),
    [2, 4] F32Store { addr, value, offset } => store!(addr, value, offset, 4, |v| (v as u32).to_le_bytes()),
    [2, 4] F64Store { addr, value, offset } => store!(addr, value, offset, 8, |v| v.to_le_bytes()),
    [2, 4] I32Store8 { addr, value, offset } => store!(addr, value, offset, 1, |v| [v as u8]),
    [2, 4] I32Store16 { addr, value, offset } => store!(addr, value, offset, 2, |v| (v as u16).to_le_bytes()),
    [2, 4] I64Store8 { addr, value, offset } => store!(addr, value, offset, 1, |v| [v as u8]),
    [2, 4] I64Store16 { addr, value, offset } => store!(addr, value, offset, 2, |v| (v as u16).to_le_bytes()),
    [2, 4] I64Store32 { addr, value, offset } => store!(addr, value, offset, 4, |v| (v as u32).to_le_bytes()),
        } }
    };
}
pub(super) use memory_handlers;
