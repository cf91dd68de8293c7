//! The threads proposal's operators: atomic loads, stores, read-modify-writes
//! and compare-exchanges on linear memory, `atomic.fence`, and
//! `memory.atomic.wait32/64` / `memory.atomic.notify` (through builtins, so
//! that a wait in compiled code is woken by a notify from any tier or thread).
//!
//! What this part owns: the order of the checks and the atomic instructions.
//! An access is checked as the spec executes it, bounds first
//! ([`Translator::memory_access`], per [`super::BoundsChecks`]: explicitly, or
//! by the guard region) and then alignment, which is always an explicit test
//! (an unaligned atomic is no fault on x86-64): a misaligned address branches
//! to a cold block that checks the bounds explicitly (in guard mode the access
//! itself would have been the bounds check, so an address both out of bounds
//! and misaligned must still report out of bounds) and then traps with
//! `UNALIGNED_ATOMIC` ("unaligned atomic", the interpreter's kind). Narrow
//! accesses work on the narrow type and zero-extend their result (the `_u`
//! forms); compare-exchange compares the expected value wrapped to the width.
//!
//! What it must not touch: the code of plain (non-atomic) accesses and of
//! unshared memories, which `memory` translates unchanged; a shared memory's
//! length is loaded live there (see [`Translator::memory_len`]).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{self, types, AtomicRmwOp, InstBuilder, Value};
use wasmparser::{MemArg, Operator};

use super::memory::Access;
use super::vm::Builtin;
use super::Translator;
use crate::compile::trap_codes::clif::UNALIGNED_ATOMIC;

/// The memory type of an access of `bytes` bytes.
fn access_type(bytes: u64) -> ir::Type {
    match bytes {
        1 => types::I8,
        2 => types::I16,
        4 => types::I32,
        _ => types::I64,
    }
}

impl Translator<'_, '_> {
    /// Operators of this part; false if `op` belongs to another part.
    pub(super) fn atomic_operator(&mut self, op: &Operator<'_>) -> Result<bool, String> {
        use types::{I32, I64};
        use AtomicRmwOp::{Add, And, Or, Sub, Xchg, Xor};
        match *op {
            Operator::AtomicFence { .. } => {
                self.b.ins().fence();
            }
            Operator::MemoryAtomicNotify { memarg } => {
                let count = self.pop();
                let (mem, addr) = self.effective_address(&memarg)?;
                let r = self.call_builtin(Builtin::MemoryAtomicNotify, &[mem, addr, count]);
                let r = self.status_result(r);
                self.push(r);
            }
            Operator::MemoryAtomicWait32 { memarg } | Operator::MemoryAtomicWait64 { memarg } => {
                let (expected, timeout) = self.pop2();
                let (mem, addr) = self.effective_address(&memarg)?;
                let builtin = match op {
                    Operator::MemoryAtomicWait32 { .. } => Builtin::MemoryAtomicWait32,
                    _ => Builtin::MemoryAtomicWait64,
                };
                let r = self.call_builtin(builtin, &[mem, addr, expected, timeout]);
                let r = self.status_result(r);
                self.push(r);
            }

            Operator::I32AtomicLoad { memarg } => self.atomic_load(&memarg, 4, I32)?,
            Operator::I64AtomicLoad { memarg } => self.atomic_load(&memarg, 8, I64)?,
            Operator::I32AtomicLoad8U { memarg } => self.atomic_load(&memarg, 1, I32)?,
            Operator::I32AtomicLoad16U { memarg } => self.atomic_load(&memarg, 2, I32)?,
            Operator::I64AtomicLoad8U { memarg } => self.atomic_load(&memarg, 1, I64)?,
            Operator::I64AtomicLoad16U { memarg } => self.atomic_load(&memarg, 2, I64)?,
            Operator::I64AtomicLoad32U { memarg } => self.atomic_load(&memarg, 4, I64)?,

            Operator::I32AtomicStore { memarg } => self.atomic_store(&memarg, 4)?,
            Operator::I64AtomicStore { memarg } => self.atomic_store(&memarg, 8)?,
            Operator::I32AtomicStore8 { memarg } | Operator::I64AtomicStore8 { memarg } => {
                self.atomic_store(&memarg, 1)?
            }
            Operator::I32AtomicStore16 { memarg } | Operator::I64AtomicStore16 { memarg } => {
                self.atomic_store(&memarg, 2)?
            }
            Operator::I64AtomicStore32 { memarg } => self.atomic_store(&memarg, 4)?,

            Operator::I32AtomicRmwAdd { memarg } => self.atomic_rmw(&memarg, 4, I32, Add)?,
            Operator::I64AtomicRmwAdd { memarg } => self.atomic_rmw(&memarg, 8, I64, Add)?,
            Operator::I32AtomicRmw8AddU { memarg } => self.atomic_rmw(&memarg, 1, I32, Add)?,
            Operator::I32AtomicRmw16AddU { memarg } => self.atomic_rmw(&memarg, 2, I32, Add)?,
            Operator::I64AtomicRmw8AddU { memarg } => self.atomic_rmw(&memarg, 1, I64, Add)?,
            Operator::I64AtomicRmw16AddU { memarg } => self.atomic_rmw(&memarg, 2, I64, Add)?,
            Operator::I64AtomicRmw32AddU { memarg } => self.atomic_rmw(&memarg, 4, I64, Add)?,

            Operator::I32AtomicRmwSub { memarg } => self.atomic_rmw(&memarg, 4, I32, Sub)?,
            Operator::I64AtomicRmwSub { memarg } => self.atomic_rmw(&memarg, 8, I64, Sub)?,
            Operator::I32AtomicRmw8SubU { memarg } => self.atomic_rmw(&memarg, 1, I32, Sub)?,
            Operator::I32AtomicRmw16SubU { memarg } => self.atomic_rmw(&memarg, 2, I32, Sub)?,
            Operator::I64AtomicRmw8SubU { memarg } => self.atomic_rmw(&memarg, 1, I64, Sub)?,
            Operator::I64AtomicRmw16SubU { memarg } => self.atomic_rmw(&memarg, 2, I64, Sub)?,
            Operator::I64AtomicRmw32SubU { memarg } => self.atomic_rmw(&memarg, 4, I64, Sub)?,

            Operator::I32AtomicRmwAnd { memarg } => self.atomic_rmw(&memarg, 4, I32, And)?,
            Operator::I64AtomicRmwAnd { memarg } => self.atomic_rmw(&memarg, 8, I64, And)?,
            Operator::I32AtomicRmw8AndU { memarg } => self.atomic_rmw(&memarg, 1, I32, And)?,
            Operator::I32AtomicRmw16AndU { memarg } => self.atomic_rmw(&memarg, 2, I32, And)?,
            Operator::I64AtomicRmw8AndU { memarg } => self.atomic_rmw(&memarg, 1, I64, And)?,
            Operator::I64AtomicRmw16AndU { memarg } => self.atomic_rmw(&memarg, 2, I64, And)?,
            Operator::I64AtomicRmw32AndU { memarg } => self.atomic_rmw(&memarg, 4, I64, And)?,

            Operator::I32AtomicRmwOr { memarg } => self.atomic_rmw(&memarg, 4, I32, Or)?,
            Operator::I64AtomicRmwOr { memarg } => self.atomic_rmw(&memarg, 8, I64, Or)?,
            Operator::I32AtomicRmw8OrU { memarg } => self.atomic_rmw(&memarg, 1, I32, Or)?,
            Operator::I32AtomicRmw16OrU { memarg } => self.atomic_rmw(&memarg, 2, I32, Or)?,
            Operator::I64AtomicRmw8OrU { memarg } => self.atomic_rmw(&memarg, 1, I64, Or)?,
            Operator::I64AtomicRmw16OrU { memarg } => self.atomic_rmw(&memarg, 2, I64, Or)?,
            Operator::I64AtomicRmw32OrU { memarg } => self.atomic_rmw(&memarg, 4, I64, Or)?,

            Operator::I32AtomicRmwXor { memarg } => self.atomic_rmw(&memarg, 4, I32, Xor)?,
            Operator::I64AtomicRmwXor { memarg } => self.atomic_rmw(&memarg, 8, I64, Xor)?,
            Operator::I32AtomicRmw8XorU { memarg } => self.atomic_rmw(&memarg, 1, I32, Xor)?,
            Operator::I32AtomicRmw16XorU { memarg } => self.atomic_rmw(&memarg, 2, I32, Xor)?,
            Operator::I64AtomicRmw8XorU { memarg } => self.atomic_rmw(&memarg, 1, I64, Xor)?,
            Operator::I64AtomicRmw16XorU { memarg } => self.atomic_rmw(&memarg, 2, I64, Xor)?,
            Operator::I64AtomicRmw32XorU { memarg } => self.atomic_rmw(&memarg, 4, I64, Xor)?,

            Operator::I32AtomicRmwXchg { memarg } => self.atomic_rmw(&memarg, 4, I32, Xchg)?,
            Operator::I64AtomicRmwXchg { memarg } => self.atomic_rmw(&memarg, 8, I64, Xchg)?,
            Operator::I32AtomicRmw8XchgU { memarg } => self.atomic_rmw(&memarg, 1, I32, Xchg)?,
            Operator::I32AtomicRmw16XchgU { memarg } => self.atomic_rmw(&memarg, 2, I32, Xchg)?,
            Operator::I64AtomicRmw8XchgU { memarg } => self.atomic_rmw(&memarg, 1, I64, Xchg)?,
            Operator::I64AtomicRmw16XchgU { memarg } => self.atomic_rmw(&memarg, 2, I64, Xchg)?,
            Operator::I64AtomicRmw32XchgU { memarg } => self.atomic_rmw(&memarg, 4, I64, Xchg)?,

            Operator::I32AtomicRmwCmpxchg { memarg } => self.atomic_cmpxchg(&memarg, 4, I32)?,
            Operator::I64AtomicRmwCmpxchg { memarg } => self.atomic_cmpxchg(&memarg, 8, I64)?,
            Operator::I32AtomicRmw8CmpxchgU { memarg } => self.atomic_cmpxchg(&memarg, 1, I32)?,
            Operator::I32AtomicRmw16CmpxchgU { memarg } => self.atomic_cmpxchg(&memarg, 2, I32)?,
            Operator::I64AtomicRmw8CmpxchgU { memarg } => self.atomic_cmpxchg(&memarg, 1, I64)?,
            Operator::I64AtomicRmw16CmpxchgU { memarg } => self.atomic_cmpxchg(&memarg, 2, I64)?,
            Operator::I64AtomicRmw32CmpxchgU { memarg } => self.atomic_cmpxchg(&memarg, 4, I64)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The memory index (an I32 constant) and the effective address (I64:
    /// the index popped from the stack plus the static offset) of a
    /// wait/notify, whose builtin checks bounds, alignment and shared-ness.
    fn effective_address(&mut self, memarg: &MemArg) -> Result<(Value, Value), String> {
        let index = self.pop();
        let wasmparser::MemArgTarget::Memory(mem) = memarg.target else {
            return Err("an atomic wait or notify on a GC array".into());
        };
        let index = self.b.ins().uextend(types::I64, index);
        // `offset` is below 2^32 (a 32-bit memory), so this cannot wrap.
        let addr = self.b.ins().iadd_imm_u(index, memarg.offset as i64);
        let mem = self.iconst(types::I32, mem as i64);
        Ok((mem, addr))
    }

    /// A wait/notify builtin's result: negative when it recorded a trap
    /// (then `TRAP_PENDING`), else the instruction's i32 result.
    fn status_result(&mut self, r: Option<Value>) -> Value {
        let r = r.expect("the wait and notify builtins return a value");
        let pending = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, r, 0);
        self.b.ins().trapnz(pending, crate::compile::trap_codes::clif::TRAP_PENDING);
        self.b.ins().ireduce(types::I32, r)
    }

    /// Checks an atomic access of `size` bytes (bounds, then alignment) at the
    /// address on top of the stack (popped) and returns it with the access's
    /// full address (atomic instructions take no offset).
    fn atomic_access(&mut self, memarg: &MemArg, size: u64) -> Result<(Access, Value), String> {
        let access = self.memory_access(memarg, size)?;
        let wasmparser::MemArgTarget::Memory(mem) = memarg.target else {
            unreachable!("memory_access refused a GC array")
        };
        if size > 1 {
            let at = self.b.ins().iadd_imm_u(access.index, access.static_offset as i64);
            let low = self.b.ins().band_imm_u(at, (size - 1) as i64);
            let misaligned = self.b.create_block();
            let aligned = self.b.create_block();
            self.b.set_cold_block(misaligned);
            self.b.ins().brif(low, misaligned, &[], aligned, &[]);
            self.b.switch_to_block(misaligned);
            self.b.seal_block(misaligned);
            if matches!(self.settings.bounds, super::BoundsChecks::Guard { .. }) {
                // Bounds first, as the spec orders the checks (in explicit
                // mode `memory_access` checked them already).
                let end = self.b.ins().iadd_imm_u(at, size as i64);
                let len = self.memory_len(mem);
                let oob = self.b.ins().icmp(IntCC::UnsignedGreaterThan, end, len);
                self.b.ins().trapnz(oob, ir::TrapCode::HEAP_OUT_OF_BOUNDS);
            }
            self.b.ins().trap(UNALIGNED_ATOMIC);
            self.b.switch_to_block(aligned);
            self.b.seal_block(aligned);
        }
        let addr =
            if access.offset == 0 { access.addr } else { self.b.ins().iadd_imm_s(access.addr, access.offset as i64) };
        Ok((access, addr))
    }

    fn atomic_load(&mut self, memarg: &MemArg, size: u64, ty: ir::Type) -> Result<(), String> {
        let (access, addr) = self.atomic_access(memarg, size)?;
        let mem_ty = access_type(size);
        let v = self.b.ins().atomic_load(mem_ty, access.flags, addr);
        let v = if mem_ty == ty { v } else { self.b.ins().uextend(ty, v) };
        self.push(v);
        Ok(())
    }

    fn atomic_store(&mut self, memarg: &MemArg, size: u64) -> Result<(), String> {
        let v = self.pop();
        let (access, addr) = self.atomic_access(memarg, size)?;
        let v = self.narrow(v, size);
        self.b.ins().atomic_store(access.flags, v, addr);
        self.mark_written(&access);
        Ok(())
    }

    fn atomic_rmw(&mut self, memarg: &MemArg, size: u64, ty: ir::Type, op: AtomicRmwOp) -> Result<(), String> {
        let v = self.pop();
        let (access, addr) = self.atomic_access(memarg, size)?;
        let mem_ty = access_type(size);
        let v = self.narrow(v, size);
        let old = self.b.ins().atomic_rmw(mem_ty, access.flags, op, addr, v);
        let old = if mem_ty == ty { old } else { self.b.ins().uextend(ty, old) };
        self.mark_written(&access);
        self.push(old);
        Ok(())
    }

    fn atomic_cmpxchg(&mut self, memarg: &MemArg, size: u64, ty: ir::Type) -> Result<(), String> {
        let (expected, replacement) = self.pop2();
        let (access, addr) = self.atomic_access(memarg, size)?;
        let expected = self.narrow(expected, size);
        let replacement = self.narrow(replacement, size);
        let old = self.b.ins().atomic_cas(access.flags, addr, expected, replacement);
        let old = if access_type(size) == ty { old } else { self.b.ins().uextend(ty, old) };
        self.mark_written(&access);
        self.push(old);
        Ok(())
    }

    /// An operand wrapped to an access of `size` bytes.
    fn narrow(&mut self, v: Value, size: u64) -> Value {
        let mem_ty = access_type(size);
        if self.b.func.dfg.value_type(v) == mem_ty {
            v
        } else {
            self.b.ins().ireduce(mem_ty, v)
        }
    }
}
