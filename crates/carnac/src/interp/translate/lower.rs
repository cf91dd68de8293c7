//! Lowering: one wasm operator at a time into interpreter instructions
//! (`op`), with the numeric, load/store and SIMD operators generated from the
//! instruction lists of `code` (`for_each_numeric!`, `for_each_simd!`). The
//! fused forms are tried first (`fuse`); anything else becomes the plain
//! instruction.
//!
//! Must not touch: code already emitted, except through the fusions,
//! `replace_last` and `retarget_last`.

use wasmparser::Operator;

use super::fuse::fuse_producer_into_imm;
use super::{err, Cond, Ctrl, CtrlKind, Entry, Operand, Source, Translator};
use crate::error::Error;
use crate::interp::code::{for_each_numeric, for_each_simd, Instr, SimdOp, Slot};
use crate::module::{invalid, ModuleInfo};
use crate::types::ValType;

macro_rules! translate_numeric {
    (
        unary { $($un:ident),* $(,)? }
        binary { $($bin:ident),* $(,)? }
        load { $($load:ident),* $(,)? }
        store { $($store:ident),* $(,)? }
    ) => {
        impl Translator {
            /// Translates a numeric, load or store operator; false for any other operator.
            fn numeric(&mut self, op: &Operator<'_>) -> bool {
                match op {
                    $( Operator::$un => {
                        let src = self.pop();
                        let dst = self.push_temp();
                        self.emit(Instr::$un { dst, src });
                    } )*
                    $( Operator::$bin => {
                        self.binary(Instr::$bin { dst: 0, lhs: 0, rhs: 0 }, |dst, lhs, rhs| {
                            Instr::$bin { dst, lhs, rhs }
                        });
                    } )*
                    $( Operator::$load { memarg } => {
                        let addr = self.pop();
                        let dst = self.push_temp();
                        self.emit(Instr::$load { dst, addr, offset: memarg.offset as u32 });
                    } )*
                    $( Operator::$store { memarg } => {
                        let value = self.pop();
                        let addr = self.pop();
                        self.emit(Instr::$store { addr, value, offset: memarg.offset as u32 });
                    } )*
                    _ => return false,
                }
                true
            }
        }
    };
}
for_each_numeric!(translate_numeric);

macro_rules! translate_simd {
    (
        load { $($load:ident),* $(,)? }
        store { $($store:ident),* $(,)? }
        load_lane { $($ll:ident),* $(,)? }
        store_lane { $($sl:ident),* $(,)? }
        extract { $($ex:ident),* $(,)? }
        replace { $($rp:ident),* $(,)? }
        splat { $($sp:ident),* $(,)? }
        unary { $($un:ident),* $(,)? }
        test { $($te:ident),* $(,)? }
        binary { $($bin:ident),* $(,)? }
        shift { $($sh:ident),* $(,)? }
        ternary { $($tern:ident),* $(,)? }
    ) => {
        impl Translator {
            /// Translates a SIMD operator (see `for_each_simd` for the operand
            /// conventions); false for any other operator.
            fn simd(&mut self, op: &Operator<'_>) -> bool {
                let simd = |op, lane, a, b, c| (op, lane, a, b, c);
                let instr = match *op {
                    $( Operator::$load { memarg } => {
                        let addr = self.pop();
                        let dst = self.push_temp_wide();
                        simd(SimdOp::$load, 0, dst, addr, memarg.offset as u32)
                    } )*
                    $( Operator::$store { memarg } => {
                        let v = self.pop();
                        let addr = self.pop();
                        simd(SimdOp::$store, 0, addr, v, memarg.offset as u32)
                    } )*
                    $( Operator::$ll { memarg, lane } => {
                        // The lane is loaded into v's own temp, which then moves
                        // down to the result position (where the address was).
                        let top = self.stack.len() - 1;
                        self.materialize_at(top);
                        let v = self.pop();
                        let addr = self.pop();
                        self.emit_simd(simd(SimdOp::$ll, lane, v, addr, memarg.offset as u32));
                        let dst = self.push_temp_wide();
                        self.emit_move(Source::Slot(v), dst, true);
                        return true;
                    } )*
                    $( Operator::$sl { memarg, lane } => {
                        let v = self.pop();
                        let addr = self.pop();
                        simd(SimdOp::$sl, lane, addr, v, memarg.offset as u32)
                    } )*
                    $( Operator::$ex { lane } => {
                        let v = self.pop();
                        let dst = self.push_temp();
                        simd(SimdOp::$ex, lane, dst, v, 0)
                    } )*
                    $( Operator::$rp { lane } => {
                        // In place, in v's own temp.
                        let below = self.stack.len() - 2;
                        self.materialize_at(below);
                        let x = self.pop();
                        self.pop();
                        let dst = self.push_temp_wide();
                        simd(SimdOp::$rp, lane, dst, x, 0)
                    } )*
                    $( Operator::$sp => {
                        let x = self.pop();
                        let dst = self.push_temp_wide();
                        simd(SimdOp::$sp, 0, dst, x, 0)
                    } )*
                    $( Operator::$un => {
                        let v = self.pop();
                        let dst = self.push_temp_wide();
                        simd(SimdOp::$un, 0, dst, v, 0)
                    } )*
                    $( Operator::$te => {
                        let v = self.pop();
                        let dst = self.push_temp();
                        simd(SimdOp::$te, 0, dst, v, 0)
                    } )*
                    $( Operator::$bin => {
                        let rhs = self.pop();
                        let lhs = self.pop();
                        let dst = self.push_temp_wide();
                        simd(SimdOp::$bin, 0, dst, lhs, rhs)
                    } )*
                    $( Operator::$sh => {
                        let count = self.pop();
                        let v = self.pop();
                        let dst = self.push_temp_wide();
                        simd(SimdOp::$sh, 0, dst, v, count)
                    } )*
                    Operator::V128Bitselect
                    | Operator::F32x4RelaxedMadd
                    | Operator::F32x4RelaxedNmadd
                    | Operator::F64x2RelaxedMadd
                    | Operator::F64x2RelaxedNmadd
                    | Operator::I32x4RelaxedDotI8x16I7x16AddS => {
                        let op = match *op {
                            Operator::F32x4RelaxedMadd => SimdOp::F32x4RelaxedMadd,
                            Operator::F32x4RelaxedNmadd => SimdOp::F32x4RelaxedNmadd,
                            Operator::F64x2RelaxedMadd => SimdOp::F64x2RelaxedMadd,
                            Operator::F64x2RelaxedNmadd => SimdOp::F64x2RelaxedNmadd,
                            Operator::I32x4RelaxedDotI8x16I7x16AddS => SimdOp::I32x4RelaxedDotI8x16I7x16AddS,
                            _ => SimdOp::V128Bitselect,
                        };
                        // In place, in the first operand's own temp.
                        let v3 = self.pop();
                        let v2 = self.pop();
                        let pos = self.stack.len() - 1;
                        self.materialize_at(pos);
                        simd(op, 0, self.slot_of(pos), v2, v3)
                    }
                    Operator::I8x16Shuffle { lanes } => {
                        self.v128_const(u128::from_le_bytes(lanes));
                        let mask = self.pop();
                        let v2 = self.pop();
                        let pos = self.stack.len() - 1;
                        self.materialize_at(pos);
                        simd(SimdOp::I8x16Shuffle, 0, self.slot_of(pos), v2, mask)
                    }
                    Operator::V128Const { value } => {
                        self.v128_const(value.i128() as u128);
                        return true;
                    }
                    _ => return false,
                };
                self.emit_simd(instr);
                true
            }
        }
    };
}
for_each_simd!(translate_simd);

impl Translator {
    /// Translates a threads-proposal operator into one `Atomic` instruction
    /// (see `interp::atomic`); false for any other operator.
    fn atomic(&mut self, op: &Operator<'_>) -> bool {
        let Some((kind, size, memory, offset)) = crate::interp::atomic::decode(op) else { return false };
        // Validation bounds memory indices far below the 2^24 a head holds.
        let head = crate::interp::atomic::pack(kind, size, memory).expect("a validated memory index");
        let (operands, result) = kind.arity();
        let base = if operands == 0 { 0 } else { self.take_consecutive(operands) };
        if result {
            self.push_temp();
        }
        // A 32-bit memory's offsets are below 2^32 (validated).
        self.emit(Instr::Atomic { head, base, offset: offset as u32 });
        true
    }

    /// A binary operator, in its immediate form when the right operand is a
    /// constant that fits.
    fn binary(&mut self, base: Instr, make: fn(Slot, Slot, Slot) -> Instr) {
        if self.float_const_operand(&base) {
            return;
        }
        let top = self.stack.len() - 1;
        if let Operand::Const(v) = self.stack[top].op {
            let imm = if Instr::imm_is_64(&base) { i32::try_from(v as i64).ok() } else { Some(v as u32 as i32) };
            if let Some(imm) = imm.filter(|i| Instr::with_imm(&base, 0, 0, *i).is_some()) {
                let producer = self.producer_of(top - 1);
                self.stack.pop();
                let lhs = self.pop();
                let dst = self.push_temp();
                let instr = Instr::with_imm(&base, dst, lhs, imm).expect("checked above");
                if let Some(fused) = producer.and_then(|p| fuse_producer_into_imm(p, instr)) {
                    self.replace_last(fused);
                } else if !self.merge_add_imm(instr) {
                    self.emit(instr);
                }
                return;
            }
        }
        if self.fuse_producer_into_binary(&base) {
            return;
        }
        let rhs = self.pop();
        let lhs = self.pop();
        let dst = self.push_temp();
        self.emit(make(dst, lhs, rhs));
    }

    pub(super) fn op(&mut self, info: &ModuleInfo, op: &Operator<'_>, offset: u64) -> Result<(), Error> {
        self.op_offset = offset as u32;
        if self.dead {
            self.dead_op(op);
            return Ok(());
        }
        self.charge();
        // Memory 0 is the one the instructions access; an access to another
        // memory is bracketed by `UseMemory` (its fusions then see those, not
        // their neighbours, as the instructions before and after). Consecutive
        // accesses to the same memory share one bracket: the first one's
        // closing `UseMemory { mem: 0 }` is taken back (it cannot be a branch
        // target: a label after it would be at a later index).
        match memory_used(op) {
            Some(mem) if mem != 0 => {
                let last = self.code.len().wrapping_sub(1);
                if self.other_memory == Some((last, mem)) && last > self.label {
                    debug_assert_eq!(self.code[last], Instr::UseMemory { mem: 0 });
                    self.pop_instr();
                } else {
                    self.emit(Instr::UseMemory { mem });
                }
                let r = self.lower(info, op, offset);
                let end = self.emit(Instr::UseMemory { mem: 0 });
                self.other_memory = Some((end, mem));
                r
            }
            _ => self.lower(info, op, offset),
        }
    }

    /// `op` after its fuel charge, on memory 0 (see `op`).
    fn lower(&mut self, info: &ModuleInfo, op: &Operator<'_>, offset: u64) -> Result<(), Error> {
        if self.has64 {
            if let Some(r) = self.lower64(info, op, offset) {
                return r;
            }
        }
        self.lower32(info, op, offset)
    }

    /// `lower` for everything but the operators of 64-bit memories and tables.
    fn lower32(&mut self, info: &ModuleInfo, op: &Operator<'_>, offset: u64) -> Result<(), Error> {
        if self.constant_memory_access(op)
            || self.fused_multiply_add(op)
            || self.indexed_load(op)
            || self.displaced_load(op)
            || self.copying_store(op)
            || self.numeric(op)
        {
            return Ok(());
        }
        match *op {
            Operator::Nop => {}
            Operator::Unreachable => {
                self.emit(Instr::Unreachable);
                self.dead = true;
            }
            Operator::Block { blockty } | Operator::Loop { blockty } => {
                let (params, results, params_wide, results_wide) = Self::block_sig(info, blockty);
                self.materialize_all();
                let is_loop = matches!(op, Operator::Loop { .. });
                // A loop's branch target is its header, including the header's fuel charge.
                let start = self.pc();
                if is_loop {
                    self.set_label();
                    // On-stack replacement enters only loops whose state is the
                    // locals alone, and not with fuel (the entry would charge
                    // the header's block again). Before the interruption check:
                    // the compiled header makes that iteration's check.
                    if self.tiering && !self.fuel && params == 0 && self.stack.is_empty() {
                        self.emit(Instr::OsrPoint { def_index: self.def_index, offset: self.op_offset });
                    }
                    if let Some(check) = self.check {
                        self.emit(check);
                    }
                }
                let height = self.stack.len() - params as usize;
                self.ctrl.push(Ctrl {
                    kind: if is_loop { CtrlKind::Loop } else { CtrlKind::Block },
                    height,
                    base_slot: self.slot_at(height),
                    params,
                    results,
                    params_wide,
                    results_wide,
                    start,
                    fixups: Vec::new(),
                    else_fixup: None,
                    dead_entry: false,
                });
            }
            Operator::If { blockty } => {
                let (params, results, params_wide, results_wide) = Self::block_sig(info, blockty);
                let cond = self.pop_cond();
                self.materialize_all();
                let at = self.emit_cond_branch(cond, true, 0);
                self.new_fuel_block();
                let height = self.stack.len() - params as usize;
                self.ctrl.push(Ctrl {
                    kind: CtrlKind::If,
                    height,
                    base_slot: self.slot_at(height),
                    params,
                    results,
                    params_wide,
                    results_wide,
                    start: 0,
                    fixups: Vec::new(),
                    else_fixup: Some(at),
                    dead_entry: false,
                });
            }
            Operator::TryTable { ref try_table } => self.try_table(info, try_table),
            Operator::Throw { tag_index } => {
                let n = info.tag_type(tag_index).params().len();
                self.materialize_top(n);
                let base = self.slot_at(self.stack.len() - n);
                self.stack.truncate(self.stack.len() - n);
                self.emit(Instr::Throw { tag: tag_index, base });
                self.dead = true;
            }
            Operator::ThrowRef => {
                let src = self.pop();
                self.emit(Instr::ThrowRef { src });
                self.dead = true;
            }
            Operator::Else => self.else_(),
            Operator::End => self.end(),
            Operator::Br { relative_depth } => {
                let c = self.ctrl_index(relative_depth);
                if c == 0 {
                    // A branch to the function body's end is a return.
                    self.emit_return(self.ctrl[0].results as usize);
                } else {
                    self.emit_branch_moves(c);
                    self.emit_jump(c);
                }
                self.dead = true;
            }
            Operator::BrIf { relative_depth } => {
                let cond = self.pop_cond();
                self.br_if(cond, relative_depth);
            }
            // Typed function references: a null reference is 0.
            Operator::BrOnNull { relative_depth } => {
                // Branch (without the reference) when it is null; it stays on the stack otherwise.
                let pos = self.stack.len() - 1;
                self.materialize_const_at(pos);
                let op = self.stack[pos].op;
                let slot = self.pop();
                self.br_if(Cond::Slot { slot, inverted: true }, relative_depth);
                self.push(op);
            }
            Operator::BrOnNonNull { relative_depth } => {
                // Branch with the reference when it is not null; dropped otherwise.
                let pos = self.stack.len() - 1;
                self.materialize_const_at(pos);
                let slot = match self.source(pos) {
                    Source::Slot(s) => s,
                    Source::Const(_) => unreachable!("materialized above"),
                };
                self.br_if(Cond::Slot { slot, inverted: false }, relative_depth);
                self.stack.pop();
            }
            Operator::RefAsNonNull => {
                let pos = self.stack.len() - 1;
                self.materialize_const_at(pos);
                let op = self.stack[pos].op;
                let src = self.pop();
                self.emit(Instr::RefAsNonNull { src });
                self.push(op);
            }
            Operator::CallRef { type_index } => {
                let ty = &info.types[type_index as usize];
                let np = ty.params().len();
                self.materialize_top(np + 1);
                let base = self.slot_at(self.stack.len() - np - 1);
                self.stack.truncate(self.stack.len() - np - 1);
                self.emit(Instr::CallRef { type_index, base });
                for r in ty.results() {
                    self.push_temp_of(r);
                }
            }
            Operator::ReturnCallRef { type_index } => {
                let np = info.types[type_index as usize].params().len();
                self.materialize_top(np + 1);
                let base = self.slot_at(self.stack.len() - np - 1);
                self.stack.truncate(self.stack.len() - np - 1);
                self.emit(Instr::ReturnCallRef { type_index, base });
                self.dead = true;
            }
            Operator::BrTable { ref targets } => {
                let index = self.pop();
                let mut depths = Vec::new();
                for t in targets.targets() {
                    depths.push(t.map_err(invalid)?);
                }
                depths.push(targets.default());
                let len = depths.len() as u32 - 1;
                self.emit(Instr::BrTable { index, len });
                let first = self.code.len();
                for _ in 0..depths.len() {
                    self.emit(Instr::Br { target: 0 });
                }
                let mut stubs: Vec<(u32, u32)> = Vec::new();
                for (i, depth) in depths.into_iter().enumerate() {
                    let at = first + i;
                    let c = self.ctrl_index(depth);
                    if self.branch_moves(c).next().is_none() {
                        if self.ctrl[c].kind == CtrlKind::Loop {
                            let start = self.ctrl[c].start;
                            self.patch(at, start);
                        } else {
                            self.ctrl[c].fixups.push(at);
                        }
                    } else if let Some(&(_, pc)) = stubs.iter().find(|(d, _)| *d == depth) {
                        self.patch(at, pc);
                    } else {
                        let pc = self.pc();
                        self.patch(at, pc);
                        stubs.push((depth, pc));
                        self.emit_branch_moves(c);
                        self.emit_jump(c);
                    }
                }
                self.dead = true;
            }
            Operator::Return => {
                let n = self.ctrl[0].results as usize;
                self.emit_return(n);
                self.dead = true;
            }
            Operator::Call { function_index } => {
                let ty = info.func_type(function_index);
                let np = ty.params().len();
                self.materialize_top(np);
                let base = self.slot_at(self.stack.len() - np);
                self.stack.truncate(self.stack.len() - np);
                if function_index >= info.num_imported_funcs {
                    let def_index = function_index - info.num_imported_funcs;
                    self.emit(Instr::CallInternal { def_index, base });
                } else {
                    self.emit(Instr::Call { func: function_index, base });
                }
                for r in ty.results() {
                    self.push_temp_of(r);
                }
            }
            Operator::CallIndirect { type_index, table_index } => {
                let ty = &info.types[type_index as usize];
                let np = ty.params().len();
                self.materialize_top(np + 1);
                let base = self.slot_at(self.stack.len() - np - 1);
                self.stack.truncate(self.stack.len() - np - 1);
                self.emit(Instr::CallIndirect { type_index, table: table_index, base });
                for r in ty.results() {
                    self.push_temp_of(r);
                }
            }
            // Tail calls (WebAssembly 3.0): the arguments in consecutive slots
            // as for a call; `exec` moves them to the frame's base and replaces
            // the frame (see `Instr::ReturnCall`).
            Operator::ReturnCall { function_index } => {
                let np = info.func_type(function_index).params().len();
                self.materialize_top(np);
                let base = self.slot_at(self.stack.len() - np);
                self.stack.truncate(self.stack.len() - np);
                self.emit(Instr::ReturnCall { func: function_index, base });
                self.dead = true;
            }
            Operator::ReturnCallIndirect { type_index, table_index } => {
                let np = info.types[type_index as usize].params().len();
                self.materialize_top(np + 1);
                let base = self.slot_at(self.stack.len() - np - 1);
                self.stack.truncate(self.stack.len() - np - 1);
                self.emit(Instr::ReturnCallIndirect { type_index, table: table_index, base });
                self.dead = true;
            }
            Operator::Drop => {
                self.stack.pop();
            }
            Operator::Select | Operator::TypedSelect { .. } if self.select_packed() => {}
            Operator::Select | Operator::TypedSelect { .. } => {
                let cond = self.pop();
                let src = self.pop();
                let pos = self.stack.len() - 1;
                self.materialize_at(pos);
                let dst = self.slot_of(pos);
                if self.stack[pos].wide {
                    self.emit(Instr::SelectTo2 { dst, cond, src });
                } else {
                    self.emit(Instr::SelectTo { dst, cond, src });
                }
            }
            Operator::LocalGet { local_index } => self.push(Operand::Local(local_index)),
            Operator::LocalSet { local_index } => self.local_set(local_index),
            Operator::LocalTee { local_index } => {
                self.local_set(local_index);
                self.push(Operand::Local(local_index));
            }
            Operator::GlobalGet { global_index } => {
                if info.globals[global_index as usize].content == ValType::V128 {
                    let dst = self.push_temp_wide();
                    self.emit(Instr::GlobalGet2 { dst, global: global_index });
                } else {
                    let dst = self.push_temp();
                    self.emit(Instr::GlobalGet { dst, global: global_index });
                }
            }
            Operator::GlobalSet { global_index } => {
                let src = self.pop();
                if self.fuse_into_global_set(src, global_index) {
                    return Ok(());
                }
                if info.globals[global_index as usize].content == ValType::V128 {
                    self.emit(Instr::GlobalSet2 { src, global: global_index });
                } else {
                    self.emit(Instr::GlobalSet { src, global: global_index });
                }
            }
            Operator::I32Const { value } => self.constant(value as u32 as u64),
            Operator::I64Const { value } => self.constant(value as u64),
            Operator::F32Const { value } => self.constant(value.bits() as u64),
            Operator::F64Const { value } => self.constant(value.bits()),
            // Free: i32 readers only look at the low 32 bits, floats are kept as bits.
            Operator::I32WrapI64
            | Operator::I32ReinterpretF32
            | Operator::F32ReinterpretI32
            | Operator::I64ReinterpretF64
            | Operator::F64ReinterpretI64 => {}
            Operator::MemorySize { .. } => {
                let dst = self.push_temp();
                self.emit(Instr::MemorySize { dst });
            }
            Operator::MemoryGrow { mem } => {
                let delta = self.pop();
                let dst = self.push_temp();
                self.emit(Instr::MemoryGrow { dst, delta, mem });
            }
            Operator::MemoryFill { .. } => {
                let base = self.take_consecutive(3);
                self.emit(Instr::MemoryFill { base });
            }
            Operator::MemoryCopy { dst_mem, src_mem } if dst_mem != src_mem => {
                let base = self.take_consecutive(3);
                self.emit(Instr::MemoryCopyAcross { base, dst_mem, src_mem });
            }
            Operator::MemoryCopy { .. } => {
                let base = self.take_consecutive(3);
                self.emit(Instr::MemoryCopy { base });
            }
            Operator::MemoryInit { data_index, .. } => {
                let base = self.take_consecutive(3);
                self.emit(Instr::MemoryInit { segment: data_index, base });
            }
            Operator::DataDrop { data_index } => {
                self.emit(Instr::DataDrop { segment: data_index });
            }
            Operator::TableGet { table } => {
                let index = self.pop();
                let dst = self.push_temp();
                self.emit(Instr::TableGet { dst, table, index });
            }
            Operator::TableSet { table } => {
                let value = self.pop();
                let index = self.pop();
                self.emit(Instr::TableSet { table, index, value });
            }
            Operator::TableSize { table } => {
                let dst = self.push_temp();
                self.emit(Instr::TableSize { dst, table });
            }
            Operator::TableGrow { table } => {
                let base = self.take_consecutive(2);
                self.push_temp();
                self.emit(Instr::TableGrow { table, base });
            }
            Operator::TableFill { table } => {
                let base = self.take_consecutive(3);
                self.emit(Instr::TableFill { table, base });
            }
            Operator::TableCopy { dst_table, src_table } => {
                let base = self.take_consecutive(3);
                self.emit(Instr::TableCopy { dst_table, src_table, base });
            }
            Operator::TableInit { elem_index, table } => {
                let base = self.take_consecutive(3);
                self.emit(Instr::TableInit { table, segment: elem_index, base });
            }
            Operator::ElemDrop { elem_index } => {
                self.emit(Instr::ElemDrop { segment: elem_index });
            }
            Operator::RefNull { .. } => self.constant(0),
            Operator::RefIsNull => {
                let src = self.pop();
                let dst = self.push_temp();
                self.emit(Instr::I64Eqz { dst, src });
            }
            Operator::RefFunc { function_index } => {
                let dst = self.push_temp();
                self.emit(Instr::RefFunc { dst, func: function_index });
            }
            // SIMD and then the threads proposal last: scalar operators never pay for their match.
            ref other if self.simd(other) => {}
            ref other if self.atomic(other) => {}
            ref other if self.gc(info, other) => {}
            ref other if self.cast(info, other) => {}
            ref other => {
                return Err(err(offset, format!("unsupported operator {}", crate::module::operator_text(other))));
            }
        }
        Ok(())
    }

    /// `select` as one instruction when both operands are (or become, for
    /// constants) narrow values in slots below 2^16; false to use the general form.
    fn select_packed(&mut self) -> bool {
        let len = self.stack.len();
        // The slot each operand will be read from (constants are written to their own).
        let slot_for = |t: &Self, pos: usize| match t.stack[pos].op {
            Operand::Local(l) => t.local_slot(l),
            _ => t.stack[pos].slot,
        };
        if self.stack[len - 2].wide || slot_for(self, len - 3) >= 1 << 16 || slot_for(self, len - 2) >= 1 << 16 {
            return false;
        }
        let cond = self.pop();
        // One constant operand that fits an i32 (sign-extended) is carried along.
        let narrow = |v: Option<u64>| v.and_then(|v| i32::try_from(v as i64).ok());
        let (ka, kb) = (narrow(self.const_at(1)), narrow(self.const_at(0)));
        if cond <= 0xffff && ka.is_some() != kb.is_some() {
            let (k, other_is_b) = match (ka, kb) {
                (Some(k), None) => (k, true),
                (None, Some(k)) => (k, false),
                _ => unreachable!("exactly one"),
            };
            let n = self.stack.len();
            let other = if other_is_b { n - 1 } else { n - 2 };
            if let Source::Slot(o) = self.source(other) {
                self.stack.truncate(n - 2);
                let dst = self.push_temp();
                let packed = cond | o << 16;
                self.emit(if other_is_b {
                    Instr::SelectKA { dst, cb: packed, k }
                } else {
                    Instr::SelectKB { dst, ca: packed, k }
                });
                return true;
            }
        }
        let b = self.pop();
        let a = self.pop();
        let dst = self.push_temp();
        self.emit(Instr::Select { dst, cond, ab: a | b << 16 });
        true
    }

    fn local_set(&mut self, local: u32) {
        let pos = self.stack.len() - 1;
        let Entry { op: operand, wide, slot: temp } = self.stack[pos];
        let local_slot = self.local_slot(local);
        if operand == Operand::Local(local) {
            self.stack.pop();
            return;
        }
        if let Operand::Const(value) = operand {
            self.stack.pop();
            self.materialize_local(local);
            self.emit(Instr::Const { dst: local_slot, value });
            return;
        }
        let src = self.pop();
        let pending = self.stack.iter().any(|e| e.op == Operand::Local(local));
        if !pending && operand == Operand::Temp && self.code.len() > self.label && self.retarget_last(temp, local_slot)
        {
            return;
        }
        if pending {
            self.materialize_local(local);
        }
        self.emit_move(Source::Slot(src), local_slot, wide);
    }
}

impl Translator {
    /// The operators of a 64-bit memory or table (memory64), in a module that
    /// has one; `None` for any other operator (and for those of 32-bit
    /// memories and tables), which `lower` translates as usual.
    ///
    /// An access to a 64-bit memory becomes `Addr64` (the 64-bit address
    /// plus the static offset, checked against the memory's length, into the
    /// address's own slot) and then the 32-bit access with a zero offset:
    /// no 2.0 instruction changes. Bulk operators and `memory.grow` have
    /// 64-bit forms. A table64's i64 operands are checked by `TableIndex64`
    /// before the 32-bit table instruction.
    fn lower64(&mut self, info: &ModuleInfo, op: &Operator<'_>, offset: u64) -> Option<Result<(), Error>> {
        use Operator as O;
        let mem64 = |m: u32| info.memories.get(m as usize).is_some_and(|m| m.memory64);
        let table64 = |t: u32| info.tables.get(t as usize).is_some_and(|t| t.table64);
        match *op {
            O::MemoryGrow { mem } if mem64(mem) => {
                let delta = self.pop();
                let dst = self.push_temp();
                self.emit(Instr::MemoryGrow64 { dst, delta, mem });
            }
            O::MemoryFill { mem } if mem64(mem) => {
                let base = self.take_consecutive(3);
                self.emit(Instr::MemoryFill64 { base, mem });
            }
            O::MemoryCopy { dst_mem, src_mem } if mem64(dst_mem) || mem64(src_mem) => {
                let base = self.take_consecutive(3);
                self.emit(Instr::MemoryCopy64 { base, dst_mem, src_mem });
            }
            O::MemoryInit { data_index, mem } if mem64(mem) => {
                let base = self.take_consecutive(3);
                self.emit(Instr::MemoryInit64 { segment: data_index, base, mem });
            }
            O::TableGet { table }
            | O::CallIndirect { table_index: table, .. }
            | O::ReturnCallIndirect { table_index: table, .. }
                if table64(table) =>
            {
                self.table_index64(0, false);
                return Some(self.lower32(info, op, offset));
            }
            O::TableSet { table } if table64(table) => {
                self.table_index64(1, false);
                return Some(self.lower32(info, op, offset));
            }
            O::TableFill { table } if table64(table) => {
                self.table_index64(2, false);
                self.table_index64(0, false);
                return Some(self.lower32(info, op, offset));
            }
            O::TableInit { table, .. } if table64(table) => {
                self.table_index64(2, false);
                return Some(self.lower32(info, op, offset));
            }
            O::TableCopy { dst_table, src_table } if table64(dst_table) || table64(src_table) => {
                if table64(dst_table) {
                    self.table_index64(2, false);
                }
                if table64(src_table) {
                    self.table_index64(1, false);
                }
                if table64(dst_table) && table64(src_table) {
                    self.table_index64(0, false);
                }
                return Some(self.lower32(info, op, offset));
            }
            O::TableGrow { table } if table64(table) => {
                self.table_index64(0, true);
                if let Err(e) = self.lower32(info, op, offset) {
                    return Some(Err(e));
                }
                let slot = self.slot_of(self.stack.len() - 1);
                self.emit(Instr::Widen32 { slot });
            }
            _ => {
                let (mem, depth, static_offset) = access64(op)?;
                if !mem64(mem) {
                    return None;
                }
                let pos = self.stack.len() - 1 - depth;
                self.materialize_const(pos);
                let dst = self.slot_of(pos);
                let Source::Slot(addr) = self.source(pos) else { unreachable!("materialized above") };
                match u32::try_from(static_offset) {
                    Ok(offset) => self.emit(Instr::Addr64 { dst, addr, offset }),
                    Err(_) => self.emit(Instr::MemoryOutOfBounds),
                };
                self.stack[pos].op = Operand::Temp;
                let mut op = op.clone();
                if let Some(memarg) = memarg_mut(&mut op) {
                    memarg.offset = 0;
                }
                // The 32-bit access, on the address now in `dst` (a temp: no
                // constant-address fusion applies).
                return Some(self.lower32(info, &op, offset));
            }
        }
        Some(Ok(()))
    }

    /// Checks the i64 table operand `depth` places below the top (see
    /// `Instr::TableIndex64`); with `saturate`, in its own slot.
    fn table_index64(&mut self, depth: usize, saturate: bool) {
        let pos = self.stack.len() - 1 - depth;
        if saturate {
            self.materialize_at(pos);
        } else {
            self.materialize_const(pos);
        }
        let Source::Slot(slot) = self.source(pos) else { unreachable!("materialized above") };
        self.emit(Instr::TableIndex64 { slot, saturate: saturate as u32 });
    }
}

/// The memory, the depth of the address below the top of the stack, and the
/// static offset of an operator that accesses memory through a memarg.
fn access64(op: &Operator<'_>) -> Option<(u32, usize, u64)> {
    use Operator as O;
    if let Some((kind, _, mem, offset)) = crate::interp::atomic::decode(op) {
        let operands = kind.arity().0;
        return (operands > 0).then(|| (mem, operands - 1, offset));
    }
    let depth = match *op {
        O::I32Store { .. }
        | O::I64Store { .. }
        | O::F32Store { .. }
        | O::F64Store { .. }
        | O::I32Store8 { .. }
        | O::I32Store16 { .. }
        | O::I64Store8 { .. }
        | O::I64Store16 { .. }
        | O::I64Store32 { .. }
        | O::V128Store { .. }
        | O::V128Load8Lane { .. }
        | O::V128Load16Lane { .. }
        | O::V128Load32Lane { .. }
        | O::V128Load64Lane { .. }
        | O::V128Store8Lane { .. }
        | O::V128Store16Lane { .. }
        | O::V128Store32Lane { .. }
        | O::V128Store64Lane { .. } => 1,
        _ => 0,
    };
    let mut op = op.clone();
    let memarg = memarg_mut(&mut op)?;
    match memarg.target {
        wasmparser::MemArgTarget::Memory(mem) => Some((mem, depth, memarg.offset)),
        _ => None,
    }
}

/// A pattern for every (non-atomic) load and store, scalar or SIMD, binding
/// its memarg to `$m`: the one list of them that `memarg_mut` and
/// `memory_used` share.
macro_rules! plain_access {
    ($m:ident) => {
        wasmparser::Operator::I32Load { memarg: $m }
            | wasmparser::Operator::I64Load { memarg: $m }
            | wasmparser::Operator::F32Load { memarg: $m }
            | wasmparser::Operator::F64Load { memarg: $m }
            | wasmparser::Operator::I32Load8S { memarg: $m }
            | wasmparser::Operator::I32Load8U { memarg: $m }
            | wasmparser::Operator::I32Load16S { memarg: $m }
            | wasmparser::Operator::I32Load16U { memarg: $m }
            | wasmparser::Operator::I64Load8S { memarg: $m }
            | wasmparser::Operator::I64Load8U { memarg: $m }
            | wasmparser::Operator::I64Load16S { memarg: $m }
            | wasmparser::Operator::I64Load16U { memarg: $m }
            | wasmparser::Operator::I64Load32S { memarg: $m }
            | wasmparser::Operator::I64Load32U { memarg: $m }
            | wasmparser::Operator::I32Store { memarg: $m }
            | wasmparser::Operator::I64Store { memarg: $m }
            | wasmparser::Operator::F32Store { memarg: $m }
            | wasmparser::Operator::F64Store { memarg: $m }
            | wasmparser::Operator::I32Store8 { memarg: $m }
            | wasmparser::Operator::I32Store16 { memarg: $m }
            | wasmparser::Operator::I64Store8 { memarg: $m }
            | wasmparser::Operator::I64Store16 { memarg: $m }
            | wasmparser::Operator::I64Store32 { memarg: $m }
            | wasmparser::Operator::V128Load { memarg: $m }
            | wasmparser::Operator::V128Load8x8S { memarg: $m }
            | wasmparser::Operator::V128Load8x8U { memarg: $m }
            | wasmparser::Operator::V128Load16x4S { memarg: $m }
            | wasmparser::Operator::V128Load16x4U { memarg: $m }
            | wasmparser::Operator::V128Load32x2S { memarg: $m }
            | wasmparser::Operator::V128Load32x2U { memarg: $m }
            | wasmparser::Operator::V128Load8Splat { memarg: $m }
            | wasmparser::Operator::V128Load16Splat { memarg: $m }
            | wasmparser::Operator::V128Load32Splat { memarg: $m }
            | wasmparser::Operator::V128Load64Splat { memarg: $m }
            | wasmparser::Operator::V128Load32Zero { memarg: $m }
            | wasmparser::Operator::V128Load64Zero { memarg: $m }
            | wasmparser::Operator::V128Store { memarg: $m }
            | wasmparser::Operator::V128Load8Lane { memarg: $m, .. }
            | wasmparser::Operator::V128Load16Lane { memarg: $m, .. }
            | wasmparser::Operator::V128Load32Lane { memarg: $m, .. }
            | wasmparser::Operator::V128Load64Lane { memarg: $m, .. }
            | wasmparser::Operator::V128Store8Lane { memarg: $m, .. }
            | wasmparser::Operator::V128Store16Lane { memarg: $m, .. }
            | wasmparser::Operator::V128Store32Lane { memarg: $m, .. }
            | wasmparser::Operator::V128Store64Lane { memarg: $m, .. }
    };
}

/// The memarg of a load or store, scalar, SIMD or atomic.
fn memarg_mut<'a, 'b>(op: &'b mut Operator<'a>) -> Option<&'b mut wasmparser::MemArg> {
    match op {
        plain_access!(memarg) => Some(memarg),
        _ => crate::interp::atomic::memarg_mut(op),
    }
}

/// The memory an operator accesses through the executor's current memory
/// (loads, stores, SIMD memory operators, `memory.size`, `memory.fill`,
/// `memory.init`, `memory.copy` within one memory); `None` for any other
/// (`memory.grow` and `memory.copy` across memories name theirs).
fn memory_used(op: &Operator<'_>) -> Option<u32> {
    use Operator as O;
    match *op {
        plain_access!(memarg) => match memarg.target {
            wasmparser::MemArgTarget::Memory(mem) => Some(mem),
            _ => None,
        },
        O::MemorySize { mem } | O::MemoryFill { mem } | O::MemoryInit { mem, .. } => Some(mem),
        O::MemoryCopy { dst_mem, src_mem } if dst_mem == src_mem => Some(dst_mem),
        _ => None,
    }
}
