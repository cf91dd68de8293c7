//! The instance's storage: linear memories, globals, tables and references.
//!
//! Memories are reached through their `VMMemoryDef` (a pointer in the context
//! block): the base never changes, so its load is `readonly` and Cranelift
//! loads it once; the length changes only in calls (`memory.grow`, host
//! functions), and is reloaded after them. Bounds are checked per
//! [`BoundsChecks`]: explicitly (the access's end against the length, in 64
//! bits, so nothing wraps), or not at all when the memory's guard region
//! covers the access's static offset, the access itself then carrying the
//! `HEAP_OUT_OF_BOUNDS` trap code for the signal handler. A 64-bit memory
//! (memory64) is always checked explicitly (no guard region covers a 64-bit
//! address): index plus offset plus size with an overflow trap, then against
//! the length ([`Translator::memory_access64`]); its bulk operators and
//! `memory.grow` call builtins of their own, and a table64's i64 operands are
//! narrowed (trapping past 2^32) before the 32-bit table code, so that 32-bit
//! memories and tables compile to the same CLIF as without memory64. A shared memory's
//! length may change at any time (another thread grows it): every explicit
//! check and `memory.size` loads it afresh (see [`Translator::memory_len`]);
//! its `memory.grow` goes through the same builtin as any memory's.
//!
//! Globals are cells (`*mut u128`) the context block points to; tables are
//! `VMTableDef`s of raw `u64` elements (store index + 1, 0 for null). Bulk
//! operations and growth go through the runtime's builtins.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{self, types, InstBuilder, MemFlagsData, TrapCode, Value};
use wasmparser::{MemArg, Operator};

use super::vm::Builtin;
use super::{BoundsChecks, Lazy, Translator};
use crate::compile::trap_codes::clif::TABLE_OUT_OF_BOUNDS;
use crate::runtime::vmctx::{field, header};
use crate::types::{Mutability, ValType};

/// A linear-memory access, once its address is known.
pub(super) struct Access {
    pub flags: MemFlagsData,
    pub addr: Value,
    pub offset: i32,
    /// The memory's base and the access's first byte as an offset from it
    /// (for [`Translator::mark_written`]).
    pub base: Value,
    pub index: Value,
    pub static_offset: u64,
}

impl Translator<'_, '_> {
    /// Operators of this part; false if `op` belongs to another part.
    pub(super) fn memory_operator(&mut self, op: &Operator<'_>) -> Result<bool, String> {
        use types::{I32, I64};
        // 64-bit memories and tables (memory64) first, in arms of their own,
        // so that the 32-bit operators emit the same CLIF as without memory64;
        // a table64 operator narrows its operands, then is the 32-bit one.
        match *op {
            Operator::MemorySize { mem } if self.mem64(mem) => {
                let len = self.memory_len(mem);
                let pages = self.b.ins().ushr_imm_u(len, 16);
                self.push(pages);
            }
            Operator::MemoryGrow { mem } if self.mem64(mem) => {
                let delta = self.pop();
                let mem = self.iconst(I32, mem as i64);
                let old = self.call_builtin_grow64(Builtin::MemoryGrow64, &[mem, delta]);
                self.push(old);
            }
            Operator::MemoryFill { mem } if self.mem64(mem) => {
                let (dst, val, len) = self.pop3();
                let mem = self.iconst(I32, mem as i64);
                self.call_builtin_checked(Builtin::MemoryFill64, &[mem, dst, val, len]);
            }
            Operator::MemoryCopy { dst_mem, src_mem } if self.mem64(dst_mem) || self.mem64(src_mem) => {
                let (dst, src, len) = self.pop3();
                // Each operand zero-extended from its index type (the length's
                // is i64 only when both memories are 64-bit).
                let (d64, s64) = (self.mem64(dst_mem), self.mem64(src_mem));
                let dst = if d64 { dst } else { self.b.ins().uextend(I64, dst) };
                let src = if s64 { src } else { self.b.ins().uextend(I64, src) };
                let len = if d64 && s64 { len } else { self.b.ins().uextend(I64, len) };
                let dst_mem = self.iconst(I32, dst_mem as i64);
                let src_mem = self.iconst(I32, src_mem as i64);
                self.call_builtin_checked(Builtin::MemoryCopy64, &[dst_mem, dst, src_mem, src, len]);
            }
            Operator::MemoryInit { data_index, mem } if self.mem64(mem) => {
                let (dst, src, len) = self.pop3();
                let mem = self.iconst(I32, mem as i64);
                let data = self.iconst(I32, data_index as i64);
                self.call_builtin_checked(Builtin::MemoryInit64, &[mem, data, dst, src, len]);
            }
            Operator::TableGet { table } if self.table64(table) => {
                self.narrow_table_operand(0, false);
                return self.memory_operator32(&Operator::TableGet { table });
            }
            Operator::TableSet { table } if self.table64(table) => {
                self.narrow_table_operand(1, false);
                return self.memory_operator32(&Operator::TableSet { table });
            }
            Operator::TableSize { table } if self.table64(table) => {
                self.memory_operator32(&Operator::TableSize { table })?;
                let len = self.pop();
                let len = self.b.ins().uextend(I64, len);
                self.push(len);
            }
            Operator::TableGrow { table } if self.table64(table) => {
                self.narrow_table_operand(0, true);
                self.memory_operator32(&Operator::TableGrow { table })?;
                let old = self.pop();
                let old = self.b.ins().sextend(I64, old);
                self.push(old);
            }
            Operator::TableFill { table } if self.table64(table) => {
                self.narrow_table_operand(2, false);
                self.narrow_table_operand(0, false);
                return self.memory_operator32(&Operator::TableFill { table });
            }
            Operator::TableCopy { dst_table, src_table } if self.table64(dst_table) || self.table64(src_table) => {
                let (d64, s64) = (self.table64(dst_table), self.table64(src_table));
                if d64 {
                    self.narrow_table_operand(2, false);
                }
                if s64 {
                    self.narrow_table_operand(1, false);
                }
                if d64 && s64 {
                    self.narrow_table_operand(0, false);
                }
                return self.memory_operator32(&Operator::TableCopy { dst_table, src_table });
            }
            Operator::TableInit { elem_index, table } if self.table64(table) => {
                self.narrow_table_operand(2, false);
                return self.memory_operator32(&Operator::TableInit { elem_index, table });
            }

            _ => return self.memory_operator32(op),
        }
        Ok(true)
    }

    /// `memory_operator` for everything but the bulk, size and grow operators
    /// of 64-bit memories and the operators of 64-bit tables.
    fn memory_operator32(&mut self, op: &Operator<'_>) -> Result<bool, String> {
        use types::{F32, F64, I32, I64};
        match *op {
            Operator::LocalGet { local_index } => {
                let v = self.b.use_var(self.locals[local_index as usize].0);
                self.push_lazy(v, Lazy::Local(local_index));
            }
            Operator::LocalSet { local_index } => {
                self.materialize_local(local_index);
                let v = self.pop();
                let v = self.canonical(v);
                self.b.def_var(self.locals[local_index as usize].0, v);
            }
            Operator::LocalTee { local_index } => {
                self.materialize_local(local_index);
                let v = self.pop();
                let v = self.canonical(v);
                self.b.def_var(self.locals[local_index as usize].0, v);
                // The interpreter reads the local for the value it leaves.
                self.push_lazy(v, Lazy::Local(local_index));
            }
            Operator::GlobalGet { global_index } => {
                let v = self.global_get(global_index);
                self.push(v);
            }
            Operator::GlobalSet { global_index } => {
                let v = self.pop();
                self.global_set(global_index, v);
            }
            Operator::Drop => {
                self.pop();
            }
            Operator::Select | Operator::TypedSelect { .. } => {
                let (a, b, cond) = self.pop3();
                let (a, b) = (self.canonical(a), self.canonical(b));
                let v = self.b.ins().select(cond, a, b);
                self.push(v);
            }

            Operator::I32Load { memarg } => self.load(&memarg, ir::Opcode::Load, I32)?,
            Operator::I64Load { memarg } => self.load(&memarg, ir::Opcode::Load, I64)?,
            Operator::F32Load { memarg } => self.load(&memarg, ir::Opcode::Load, F32)?,
            Operator::F64Load { memarg } => self.load(&memarg, ir::Opcode::Load, F64)?,
            Operator::I32Load8S { memarg } => self.load(&memarg, ir::Opcode::Sload8, I32)?,
            Operator::I32Load8U { memarg } => self.load(&memarg, ir::Opcode::Uload8, I32)?,
            Operator::I32Load16S { memarg } => self.load(&memarg, ir::Opcode::Sload16, I32)?,
            Operator::I32Load16U { memarg } => self.load(&memarg, ir::Opcode::Uload16, I32)?,
            Operator::I64Load8S { memarg } => self.load(&memarg, ir::Opcode::Sload8, I64)?,
            Operator::I64Load8U { memarg } => self.load(&memarg, ir::Opcode::Uload8, I64)?,
            Operator::I64Load16S { memarg } => self.load(&memarg, ir::Opcode::Sload16, I64)?,
            Operator::I64Load16U { memarg } => self.load(&memarg, ir::Opcode::Uload16, I64)?,
            Operator::I64Load32S { memarg } => self.load(&memarg, ir::Opcode::Sload32, I64)?,
            Operator::I64Load32U { memarg } => self.load(&memarg, ir::Opcode::Uload32, I64)?,
            Operator::I32Store { memarg }
            | Operator::I64Store { memarg }
            | Operator::F32Store { memarg }
            | Operator::F64Store { memarg } => self.store(&memarg, ir::Opcode::Store)?,
            Operator::I32Store8 { memarg } | Operator::I64Store8 { memarg } => {
                self.store(&memarg, ir::Opcode::Istore8)?
            }
            Operator::I32Store16 { memarg } | Operator::I64Store16 { memarg } => {
                self.store(&memarg, ir::Opcode::Istore16)?
            }
            Operator::I64Store32 { memarg } => self.store(&memarg, ir::Opcode::Istore32)?,

            Operator::MemorySize { mem } => {
                let len = self.memory_len(mem);
                let pages = self.b.ins().ushr_imm_u(len, 16);
                let pages = self.b.ins().ireduce(I32, pages);
                self.push(pages);
            }
            Operator::MemoryGrow { mem } => {
                let delta = self.pop();
                let mem = self.iconst(I32, mem as i64);
                let old = self.call_builtin_grow(Builtin::MemoryGrow, &[mem, delta]);
                self.push(old);
            }
            Operator::MemoryFill { mem } => {
                let (dst, val, len) = self.pop3();
                let mem = self.iconst(I32, mem as i64);
                self.call_builtin_checked(Builtin::MemoryFill, &[mem, dst, val, len]);
            }
            Operator::MemoryCopy { dst_mem, src_mem } => {
                let (dst, src, len) = self.pop3();
                let dst_mem = self.iconst(I32, dst_mem as i64);
                let src_mem = self.iconst(I32, src_mem as i64);
                self.call_builtin_checked(Builtin::MemoryCopy, &[dst_mem, dst, src_mem, src, len]);
            }
            Operator::MemoryInit { data_index, mem } => {
                let (dst, src, len) = self.pop3();
                let mem = self.iconst(I32, mem as i64);
                let data = self.iconst(I32, data_index as i64);
                self.call_builtin_checked(Builtin::MemoryInit, &[mem, data, dst, src, len]);
            }
            Operator::DataDrop { data_index } => {
                let data = self.iconst(I32, data_index as i64);
                self.call_builtin(Builtin::DataDrop, &[data]);
            }

            Operator::TableGet { table } => {
                let index = self.pop();
                let addr = self.table_element(table, index);
                let flags = self.table_flags();
                let v = self.b.ins().load(I64, flags, addr, 0);
                self.push(v);
            }
            Operator::TableSet { table } => {
                let (index, v) = self.pop2();
                let addr = self.table_element(table, index);
                let flags = self.table_flags();
                self.b.ins().store(flags, v, addr, 0);
            }
            Operator::TableSize { table } => {
                let def = self.vmctx_ptr(self.offsets.table(table));
                let mutable = self.mutable();
                let len = self.load_ptr(def, field::TABLE_LEN, mutable);
                let len = self.b.ins().ireduce(I32, len);
                self.push(len);
            }
            Operator::TableGrow { table } => {
                let (init, delta) = self.pop2();
                let table = self.iconst(I32, table as i64);
                let old = self.call_builtin_grow(Builtin::TableGrow, &[table, init, delta]);
                self.push(old);
            }
            Operator::TableFill { table } => {
                let (dst, val, len) = self.pop3();
                let table = self.iconst(I32, table as i64);
                self.call_builtin_checked(Builtin::TableFill, &[table, dst, val, len]);
            }
            Operator::TableCopy { dst_table, src_table } => {
                let (dst, src, len) = self.pop3();
                let dst_table = self.iconst(I32, dst_table as i64);
                let src_table = self.iconst(I32, src_table as i64);
                self.call_builtin_checked(Builtin::TableCopy, &[dst_table, dst, src_table, src, len]);
            }
            Operator::TableInit { elem_index, table } => {
                let (dst, src, len) = self.pop3();
                let table = self.iconst(I32, table as i64);
                let elem = self.iconst(I32, elem_index as i64);
                self.call_builtin_checked(Builtin::TableInit, &[table, elem, dst, src, len]);
            }
            Operator::ElemDrop { elem_index } => {
                let elem = self.iconst(I32, elem_index as i64);
                self.call_builtin(Builtin::ElemDrop, &[elem]);
            }

            Operator::RefNull { .. } => {
                let v = self.iconst(I64, 0);
                self.push_lazy(v, Lazy::Const);
            }
            Operator::RefIsNull => {
                let v = self.pop();
                let is_null = self.b.ins().icmp_imm_u(IntCC::Equal, v, 0);
                let is_null = self.b.ins().uextend(I32, is_null);
                self.push(is_null);
            }
            Operator::RefFunc { function_index } => {
                let indices = self.vmctx_ptr(header::FUNC_INDICES as u32);
                let flags = self.readonly();
                let index = self.b.ins().uload32(flags, indices, (function_index * 4) as i32);
                let raw = self.b.ins().iadd_imm_u(index, 1);
                self.push(raw);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    // ---- linear memory ----

    /// Whether memory `mem` is 64-bit (memory64).
    pub(super) fn mem64(&self, mem: u32) -> bool {
        self.info.memories[mem as usize].memory64
    }

    /// Whether table `table` is 64-bit (table64).
    pub(super) fn table64(&self, table: u32) -> bool {
        self.info.tables[table as usize].table64
    }

    /// Narrows the i64 operand of a table64 instruction `depth` places below
    /// the top of the stack to the i32 the 32-bit table code takes: a value
    /// of 2^32 or more is out of any table's bounds and traps (as the table
    /// instruction would), or, with `saturate` (a `table.grow` delta),
    /// becomes `u32::MAX`, which then fails to grow.
    pub(super) fn narrow_table_operand(&mut self, depth: usize, saturate: bool) {
        let at = self.stack.len() - 1 - depth;
        let v = self.stack[at];
        let high = self.b.ins().ushr_imm_u(v, 32);
        let low = self.b.ins().ireduce(types::I32, v);
        let narrow = if saturate {
            let max = self.b.ins().iconst(types::I32, u32::MAX as i64);
            self.b.ins().select(high, max, low)
        } else {
            self.b.ins().trapnz(high, TABLE_OUT_OF_BOUNDS);
            low
        };
        self.stack[at] = narrow;
        self.lazy[at] = Lazy::No;
    }

    /// The memory's `*mut VMMemoryDef`.
    fn memory_def(&mut self, mem: u32) -> Value {
        self.vmctx_ptr(self.offsets.memory(mem))
    }

    /// The memory's current length in bytes: for an unshared memory, a load
    /// Cranelift may reuse until the next call (only calls change it); for a
    /// shared memory, which another thread may grow at any time, an atomic
    /// (acquire) load at every use, never merged or hoisted, pairing with the
    /// grower's release store of the new length.
    pub(super) fn memory_len(&mut self, mem: u32) -> Value {
        let def = self.memory_def(mem);
        if self.info.memories[mem as usize].is_shared() {
            let at = self.b.ins().iadd_imm_u(def, field::MEMORY_LEN as i64);
            let flags = MemFlagsData::trusted().with_alias_region(Some(self.vm.regions.vm));
            return self.b.ins().atomic_load(self.ptr, flags, at);
        }
        let flags = self.mutable();
        self.load_ptr(def, field::MEMORY_LEN, flags)
    }

    /// Checks an access of `size` bytes at the address on top of the stack
    /// (popped) plus `memarg.offset`, and returns where it goes.
    pub(super) fn memory_access(&mut self, memarg: &MemArg, size: u64) -> Result<Access, String> {
        let index = self.pop();
        let wasmparser::MemArgTarget::Memory(mem) = memarg.target else {
            return Err("a memory access to a GC array".into());
        };
        let offset = memarg.offset;
        if self.mem64(mem) {
            return Ok(self.memory_access64(mem, index, memarg.offset, size));
        }
        let index = self.b.ins().uextend(types::I64, index);
        let heap =
            MemFlagsData::new().with_endianness(ir::Endianness::Little).with_alias_region(Some(self.vm.regions.heap));
        let guarded = match self.settings.bounds {
            BoundsChecks::Guard { guard_bytes } => offset.checked_add(size).is_some_and(|end| end <= guard_bytes),
            BoundsChecks::Explicit => false,
        };
        let flags = if guarded {
            heap.with_trap_code(Some(TrapCode::HEAP_OUT_OF_BOUNDS))
        } else {
            // `offset` is below 2^32 (a 32-bit memory), so this cannot wrap.
            let end = self.b.ins().iadd_imm_u(index, (offset + size) as i64);
            let len = self.memory_len(mem);
            let oob = self.b.ins().icmp(IntCC::UnsignedGreaterThan, end, len);
            self.b.ins().trapnz(oob, TrapCode::HEAP_OUT_OF_BOUNDS);
            heap.with_notrap()
        };
        let def = self.memory_def(mem);
        let readonly = self.readonly();
        let base = self.load_ptr(def, field::MEMORY_BASE, readonly);
        let mut addr = self.b.ins().iadd(base, index);
        let offset = match i32::try_from(offset) {
            Ok(offset) => offset,
            Err(_) => {
                addr = self.b.ins().iadd_imm_u(addr, offset as i64);
                0
            }
        };
        Ok(Access { flags, addr, offset, base, index, static_offset: memarg.offset })
    }

    /// `memory_access` for a 64-bit memory: always an explicit check (no
    /// guard region covers a 64-bit address), computed so that nothing
    /// wraps: `index + (offset + size)` with an overflow trap (an `offset +
    /// size` past 2^64 - 1 saturates, which keeps every such access out of
    /// bounds), then against the length.
    fn memory_access64(&mut self, mem: u32, index: Value, offset: u64, size: u64) -> Access {
        let heap =
            MemFlagsData::new().with_endianness(ir::Endianness::Little).with_alias_region(Some(self.vm.regions.heap));
        let end_offset = self.b.ins().iconst(types::I64, offset.saturating_add(size) as i64);
        let end = self.b.ins().uadd_overflow_trap(index, end_offset, TrapCode::HEAP_OUT_OF_BOUNDS);
        let len = self.memory_len(mem);
        let oob = self.b.ins().icmp(IntCC::UnsignedGreaterThan, end, len);
        self.b.ins().trapnz(oob, TrapCode::HEAP_OUT_OF_BOUNDS);
        let def = self.memory_def(mem);
        let readonly = self.readonly();
        let base = self.load_ptr(def, field::MEMORY_BASE, readonly);
        let mut addr = self.b.ins().iadd(base, index);
        let offset32 = match i32::try_from(offset) {
            Ok(offset) => offset,
            Err(_) => {
                // In bounds (checked above), so below the memory's length.
                addr = self.b.ins().iadd_imm_u(addr, offset as i64);
                0
            }
        };
        Access { flags: heap.with_notrap(), addr, offset: offset32, base, index, static_offset: offset }
    }

    /// After a store through `access` (which did not trap, so its first byte
    /// lies inside the memory): marks the byte's chunk in the memory's
    /// written-chunk map, one byte store `CHUNK_MAP_OFFSET` below the base, as
    /// the interpreter's stores do (a store of up to 16 bytes may cross into the
    /// next chunk: resets zero that spill too). Nothing without
    /// `track_writes`.
    pub(super) fn mark_written(&mut self, access: &Access) {
        use crate::runtime::memory::{CHUNK_MAP_OFFSET, CHUNK_SHIFT};
        if !self.settings.track_writes {
            return;
        }
        let at = self.b.ins().iadd_imm_u(access.index, access.static_offset as i64);
        let chunk = self.b.ins().ushr_imm_u(at, CHUNK_SHIFT as i64);
        let map = self.b.ins().iadd_imm_s(access.base, -(CHUNK_MAP_OFFSET as i64));
        let byte = self.b.ins().iadd(map, chunk);
        let one = self.b.ins().iconst(types::I8, 1);
        self.b.ins().store(MemFlagsData::trusted(), one, byte, 0);
    }

    pub(super) fn load(&mut self, memarg: &MemArg, opcode: ir::Opcode, ty: ir::Type) -> Result<(), String> {
        use ir::Opcode as O;
        let size = match opcode {
            O::Sload8 | O::Uload8 => 1,
            O::Sload16 | O::Uload16 => 2,
            O::Sload32 | O::Uload32 => 4,
            _ => ty.bytes() as u64,
        };
        let Access { flags, addr, offset, .. } = self.memory_access(memarg, size)?;
        let ins = self.b.ins();
        let v = match opcode {
            O::Load => ins.load(ty, flags, addr, offset),
            O::Sload8 => ins.sload8(ty, flags, addr, offset),
            O::Uload8 => ins.uload8(ty, flags, addr, offset),
            O::Sload16 => ins.sload16(ty, flags, addr, offset),
            O::Uload16 => ins.uload16(ty, flags, addr, offset),
            O::Sload32 => ins.sload32(flags, addr, offset),
            O::Uload32 => ins.uload32(flags, addr, offset),
            _ => unreachable!("a load opcode"),
        };
        self.push(v);
        Ok(())
    }

    pub(super) fn store(&mut self, memarg: &MemArg, opcode: ir::Opcode) -> Result<(), String> {
        use ir::Opcode as O;
        let v = self.pop();
        let v = self.canonical(v);
        let size = match opcode {
            O::Istore8 => 1,
            O::Istore16 => 2,
            O::Istore32 => 4,
            _ => self.b.func.dfg.value_type(v).bytes() as u64,
        };
        let access = self.memory_access(memarg, size)?;
        let Access { flags, addr, offset, .. } = access;
        let ins = self.b.ins();
        match opcode {
            O::Store => ins.store(flags, v, addr, offset),
            O::Istore8 => ins.istore8(flags, v, addr, offset),
            O::Istore16 => ins.istore16(flags, v, addr, offset),
            O::Istore32 => ins.istore32(flags, v, addr, offset),
            _ => unreachable!("a store opcode"),
        };
        self.mark_written(&access);
        Ok(())
    }

    // ---- globals ----

    fn global_flags(&self, global: u32) -> MemFlagsData {
        let flags = MemFlagsData::trusted().with_alias_region(Some(self.vm.regions.global));
        match self.info.globals[global as usize].mutability {
            // An immutable global's cell never changes once the instance is initialised.
            Mutability::Const => flags.with_readonly().with_can_move(),
            Mutability::Var => flags,
        }
    }

    fn global_get(&mut self, global: u32) -> Value {
        let cell = self.vmctx_ptr(self.offsets.global(global));
        let flags = self.global_flags(global);
        let ty = super::clif_type(&self.info.globals[global as usize].content);
        self.b.ins().load(ty, flags, cell, 0)
    }

    /// Writes a global's cell as the runtime keeps it: i32 and f32 bits
    /// zero-extended to 64 bits, v128 all 16 bytes.
    fn global_set(&mut self, global: u32, v: Value) {
        let cell = self.vmctx_ptr(self.offsets.global(global));
        let flags = self.global_flags(global);
        let v = match self.info.globals[global as usize].content {
            ValType::I32 => self.b.ins().uextend(types::I64, v),
            ValType::F32 => {
                let bits = self.b.ins().bitcast(types::I32, MemFlagsData::new(), v);
                self.b.ins().uextend(types::I64, bits)
            }
            _ => self.canonical(v),
        };
        self.b.ins().store(flags, v, cell, 0);
    }

    // ---- tables ----

    fn table_flags(&self) -> MemFlagsData {
        MemFlagsData::trusted().with_alias_region(Some(self.vm.regions.table))
    }

    /// The address of element `index` of `table`, checked against its length.
    pub(super) fn table_element(&mut self, table: u32, index: Value) -> Value {
        let def = self.vmctx_ptr(self.offsets.table(table));
        let mutable = self.mutable();
        let len = self.load_ptr(def, field::TABLE_LEN, mutable);
        let index = self.b.ins().uextend(types::I64, index);
        let oob = self.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, index, len);
        self.b.ins().trapnz(oob, TABLE_OUT_OF_BOUNDS);
        let base = self.load_ptr(def, field::TABLE_BASE, mutable);
        let at = self.b.ins().ishl_imm_u(index, 3);
        self.b.ins().iadd(base, at)
    }
}
