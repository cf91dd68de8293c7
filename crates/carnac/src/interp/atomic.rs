//! The threads proposal's operators in the interpreter: atomic loads, stores,
//! read-modify-writes and compare-exchanges at 8, 16, 32 and 64 bits,
//! `memory.atomic.notify`, `memory.atomic.wait32/64` and `atomic.fence`.
//!
//! Every one of them is a single [`Instr::Atomic`](super::code::Instr)
//! executed out of line by `exec` (as SIMD is), so the threaded handlers and
//! the dispatch of WebAssembly 2.0 code are unchanged. The instruction names
//! its memory by index (no `UseMemory` bracket) and reads its operands from
//! consecutive slots at `base`; a result goes to `base`.
//!
//! The i32 and i64 forms of an operator of one access size behave alike on the
//! interpreter's 64-bit slots: an operand is truncated to the access size and
//! a result is the accessed value zero-extended (what the `_u` forms and the
//! full-width forms both specify), so an operator is its kind and its size.
//!
//! Must not touch: the wait queues (`runtime::parking`, reached through
//! `runtime::shared`) and the store, which `exec` handles for waits.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

use wasmparser::{MemArg, MemArgTarget, Operator};

use crate::runtime::memory::mark_written_range;
use crate::runtime::shared::atomic_cell;
use crate::runtime::trap::TrapKind;
use crate::runtime::vmctx::VMMemoryDef;

/// What an [`Instr::Atomic`](super::code::Instr) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum AtomicOp {
    /// `addr` → loaded value.
    Load,
    /// `addr, value`.
    Store,
    /// `addr, value` → old value, for each read-modify-write.
    Add,
    Sub,
    And,
    Or,
    Xor,
    Xchg,
    /// `addr, expected, replacement` → old value.
    Cmpxchg,
    /// `addr, count` → woken waiters.
    Notify,
    /// `addr, expected, timeout` → 0, 1 or 2 (size 4: wait32, 8: wait64).
    Wait,
    /// No operands.
    Fence,
}

const OPS: [AtomicOp; 12] = [
    AtomicOp::Load,
    AtomicOp::Store,
    AtomicOp::Add,
    AtomicOp::Sub,
    AtomicOp::And,
    AtomicOp::Or,
    AtomicOp::Xor,
    AtomicOp::Xchg,
    AtomicOp::Cmpxchg,
    AtomicOp::Notify,
    AtomicOp::Wait,
    AtomicOp::Fence,
];

impl AtomicOp {
    /// Operand slots it reads, and whether it writes a result.
    pub(crate) fn arity(self) -> (usize, bool) {
        match self {
            AtomicOp::Load => (1, true),
            AtomicOp::Store => (2, false),
            AtomicOp::Cmpxchg | AtomicOp::Wait => (3, true),
            AtomicOp::Fence => (0, false),
            _ => (2, true),
        }
    }
}

/// `Instr::Atomic`'s `head`: the operator (bits 0..4), log2 of the access size
/// (bits 4..6) and the memory index (bits 8..).
pub(crate) fn pack(op: AtomicOp, size: u32, memory: u32) -> Option<u32> {
    (memory < 1 << 24).then(|| op as u32 | size.trailing_zeros() << 4 | memory << 8)
}

/// The inverse of [`pack`]: operator, access size in bytes, memory index.
pub(crate) fn unpack(head: u32) -> (AtomicOp, u32, u32) {
    (OPS[(head & 0xf) as usize], 1 << ((head >> 4) & 3), head >> 8)
}

/// The operator, access size, memory index and offset of a threads-proposal
/// operator on a linear memory; `None` for any other operator.
pub(crate) fn decode(op: &Operator<'_>) -> Option<(AtomicOp, u32, u32, u64)> {
    let (op, size, memarg) = decode_memarg(op)?;
    match memarg {
        None => Some((op, size, 0, 0)),
        Some(MemArg { target: MemArgTarget::Memory(mem), offset, .. }) => Some((op, size, mem, offset)),
        Some(_) => None,
    }
}

fn decode_memarg(op: &Operator<'_>) -> Option<(AtomicOp, u32, Option<MemArg>)> {
    use AtomicOp as A;
    use Operator as O;
    let (op, size, memarg) = match *op {
        O::AtomicFence { .. } => return Some((A::Fence, 1, None)),
        O::MemoryAtomicNotify { memarg } => (A::Notify, 4, memarg),
        O::MemoryAtomicWait32 { memarg } => (A::Wait, 4, memarg),
        O::MemoryAtomicWait64 { memarg } => (A::Wait, 8, memarg),
        O::I32AtomicLoad { memarg } | O::I64AtomicLoad32U { memarg } => (A::Load, 4, memarg),
        O::I64AtomicLoad { memarg } => (A::Load, 8, memarg),
        O::I32AtomicLoad8U { memarg } | O::I64AtomicLoad8U { memarg } => (A::Load, 1, memarg),
        O::I32AtomicLoad16U { memarg } | O::I64AtomicLoad16U { memarg } => (A::Load, 2, memarg),
        O::I32AtomicStore { memarg } | O::I64AtomicStore32 { memarg } => (A::Store, 4, memarg),
        O::I64AtomicStore { memarg } => (A::Store, 8, memarg),
        O::I32AtomicStore8 { memarg } | O::I64AtomicStore8 { memarg } => (A::Store, 1, memarg),
        O::I32AtomicStore16 { memarg } | O::I64AtomicStore16 { memarg } => (A::Store, 2, memarg),
        O::I32AtomicRmwAdd { memarg } | O::I64AtomicRmw32AddU { memarg } => (A::Add, 4, memarg),
        O::I64AtomicRmwAdd { memarg } => (A::Add, 8, memarg),
        O::I32AtomicRmw8AddU { memarg } | O::I64AtomicRmw8AddU { memarg } => (A::Add, 1, memarg),
        O::I32AtomicRmw16AddU { memarg } | O::I64AtomicRmw16AddU { memarg } => (A::Add, 2, memarg),
        O::I32AtomicRmwSub { memarg } | O::I64AtomicRmw32SubU { memarg } => (A::Sub, 4, memarg),
        O::I64AtomicRmwSub { memarg } => (A::Sub, 8, memarg),
        O::I32AtomicRmw8SubU { memarg } | O::I64AtomicRmw8SubU { memarg } => (A::Sub, 1, memarg),
        O::I32AtomicRmw16SubU { memarg } | O::I64AtomicRmw16SubU { memarg } => (A::Sub, 2, memarg),
        O::I32AtomicRmwAnd { memarg } | O::I64AtomicRmw32AndU { memarg } => (A::And, 4, memarg),
        O::I64AtomicRmwAnd { memarg } => (A::And, 8, memarg),
        O::I32AtomicRmw8AndU { memarg } | O::I64AtomicRmw8AndU { memarg } => (A::And, 1, memarg),
        O::I32AtomicRmw16AndU { memarg } | O::I64AtomicRmw16AndU { memarg } => (A::And, 2, memarg),
        O::I32AtomicRmwOr { memarg } | O::I64AtomicRmw32OrU { memarg } => (A::Or, 4, memarg),
        O::I64AtomicRmwOr { memarg } => (A::Or, 8, memarg),
        O::I32AtomicRmw8OrU { memarg } | O::I64AtomicRmw8OrU { memarg } => (A::Or, 1, memarg),
        O::I32AtomicRmw16OrU { memarg } | O::I64AtomicRmw16OrU { memarg } => (A::Or, 2, memarg),
        O::I32AtomicRmwXor { memarg } | O::I64AtomicRmw32XorU { memarg } => (A::Xor, 4, memarg),
        O::I64AtomicRmwXor { memarg } => (A::Xor, 8, memarg),
        O::I32AtomicRmw8XorU { memarg } | O::I64AtomicRmw8XorU { memarg } => (A::Xor, 1, memarg),
        O::I32AtomicRmw16XorU { memarg } | O::I64AtomicRmw16XorU { memarg } => (A::Xor, 2, memarg),
        O::I32AtomicRmwXchg { memarg } | O::I64AtomicRmw32XchgU { memarg } => (A::Xchg, 4, memarg),
        O::I64AtomicRmwXchg { memarg } => (A::Xchg, 8, memarg),
        O::I32AtomicRmw8XchgU { memarg } | O::I64AtomicRmw8XchgU { memarg } => (A::Xchg, 1, memarg),
        O::I32AtomicRmw16XchgU { memarg } | O::I64AtomicRmw16XchgU { memarg } => (A::Xchg, 2, memarg),
        O::I32AtomicRmwCmpxchg { memarg } | O::I64AtomicRmw32CmpxchgU { memarg } => (A::Cmpxchg, 4, memarg),
        O::I64AtomicRmwCmpxchg { memarg } => (A::Cmpxchg, 8, memarg),
        O::I32AtomicRmw8CmpxchgU { memarg } | O::I64AtomicRmw8CmpxchgU { memarg } => (A::Cmpxchg, 1, memarg),
        O::I32AtomicRmw16CmpxchgU { memarg } | O::I64AtomicRmw16CmpxchgU { memarg } => (A::Cmpxchg, 2, memarg),
        _ => return None,
    };
    Some((op, size, Some(memarg)))
}

/// One atomic access of `size` bytes at `cell` (aligned, inside a mapped memory).
macro_rules! with_cell {
    ($size:expr, $cell:expr, |$a:ident, $t:ident| $body:expr) => {
        match $size {
            1 => {
                type $t = u8;
                // SAFETY: the caller's guarantee: `cell` is an aligned address inside a
                // mapped memory, which stays mapped during the access.
                let $a = unsafe { AtomicU8::from_ptr($cell) };
                $body
            }
            2 => {
                type $t = u16;
                // SAFETY: as above, 2-byte aligned.
                let $a = unsafe { AtomicU16::from_ptr($cell as *mut u16) };
                $body
            }
            4 => {
                type $t = u32;
                // SAFETY: as above, 4-byte aligned.
                let $a = unsafe { AtomicU32::from_ptr($cell as *mut u32) };
                $body
            }
            _ => {
                type $t = u64;
                // SAFETY: as above, 8-byte aligned.
                let $a = unsafe { AtomicU64::from_ptr($cell as *mut u64) };
                $body
            }
        }
    };
}

/// Runs a load, store, read-modify-write, compare-exchange or fence on memory
/// `def` (`shared` or not; `track`: mark written chunks) with its operands in
/// `args` (the result replaces `args[0]`). Notify and wait are `exec`'s (see
/// `runtime::shared::memory_atomic_notify` and `..._wait32/64`).
///
/// # Safety
/// `def` is the live definition of a memory that stays mapped during the call.
// `with_cell!` expands each arm for every width, the 64-bit one included, where
// the casts to and from `u64` are the identity.
#[allow(clippy::unnecessary_cast)]
pub(crate) unsafe fn execute(
    def: *const VMMemoryDef,
    shared: bool,
    track: bool,
    op: AtomicOp,
    size: u32,
    offset: u32,
    args: &mut [u64],
) -> Result<(), TrapKind> {
    if op == AtomicOp::Fence {
        std::sync::atomic::fence(Ordering::SeqCst);
        return Ok(());
    }
    let ea = args[0] as u32 as u64 + offset as u64;
    // SAFETY: the caller's guarantee.
    let def = unsafe { &*def };
    let cell = atomic_cell(def, shared, ea, size as u64)?;
    let sc = Ordering::SeqCst;
    let result = with_cell!(size, cell, |a, T| match op {
        AtomicOp::Load => a.load(sc) as u64,
        AtomicOp::Store => {
            a.store(args[1] as T, sc);
            0
        }
        AtomicOp::Add => a.fetch_add(args[1] as T, sc) as u64,
        AtomicOp::Sub => a.fetch_sub(args[1] as T, sc) as u64,
        AtomicOp::And => a.fetch_and(args[1] as T, sc) as u64,
        AtomicOp::Or => a.fetch_or(args[1] as T, sc) as u64,
        AtomicOp::Xor => a.fetch_xor(args[1] as T, sc) as u64,
        AtomicOp::Xchg => a.swap(args[1] as T, sc) as u64,
        // The expected value is wrapped to the access size, as the spec says.
        AtomicOp::Cmpxchg => match a.compare_exchange(args[1] as T, args[2] as T, sc, sc) {
            Ok(old) | Err(old) => old as u64,
        },
        AtomicOp::Notify | AtomicOp::Wait | AtomicOp::Fence => unreachable!("not executed here"),
    });
    if track && op != AtomicOp::Load {
        // SAFETY: the cell lies inside the memory (checked by `atomic_cell`).
        unsafe { mark_written_range(def.base, ea as usize, size as usize) };
    }
    if op.arity().1 {
        args[0] = result;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip() {
        for (i, op) in OPS.iter().enumerate() {
            assert_eq!(*op as usize, i);
            for size in [1, 2, 4, 8] {
                let head = pack(*op, size, 77).unwrap();
                assert_eq!(unpack(head), (*op, size, 77));
            }
        }
        assert!(pack(AtomicOp::Load, 4, 1 << 24).is_none());
    }

    #[test]
    fn operations_truncate_operands_and_zero_extend_results() {
        let mut bytes = [0u64; 2];
        let def = VMMemoryDef { base: bytes.as_mut_ptr() as *mut u8, len: 16.into() };
        let run = |op, size, args: &mut [u64]| unsafe { execute(&def, false, false, op, size, 0, args) };
        let mut a = [8, 0x1_0000_00ff];
        run(AtomicOp::Store, 4, &mut a).unwrap();
        let mut a = [8, 0x1_0000_0001];
        run(AtomicOp::Add, 1, &mut a).unwrap();
        assert_eq!(a[0], 0xff, "the old byte");
        let mut a = [8];
        run(AtomicOp::Load, 4, &mut a).unwrap();
        assert_eq!(a[0], 0, "0xff + 1 wraps in 8 bits");
        let mut a = [8, 0xffff_ff00, 7];
        run(AtomicOp::Cmpxchg, 1, &mut a).unwrap();
        assert_eq!((a[0], bytes[1]), (0, 7), "the expected value is wrapped to 8 bits");
        let mut a = [8, 5];
        run(AtomicOp::Sub, 8, &mut a).unwrap();
        assert_eq!((a[0], bytes[1]), (7, 2));
        assert_eq!(run(AtomicOp::Load, 8, &mut [9]), Err(TrapKind::MemoryOutOfBounds));
        assert_eq!(run(AtomicOp::Load, 4, &mut [6]), Err(TrapKind::UnalignedAtomic));
    }
}
