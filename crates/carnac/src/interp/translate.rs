//! Translation of validated function bodies into interpreter code.
//!
//! Runs once per function: at module compile time in lock-step with
//! wasmparser's function validator (each operator is validated before it is
//! translated), or, with lazy translation, on the function's first call, of a
//! body validated when the module was compiled. Either way the translator may
//! assume well-typed input.
//!
//! The translator simulates the wasm operand stack. Each stack position `p` owns
//! the frame slot `L + p` (`L` = params + locals). An entry is either a *temp*
//! living in its own slot, or a deferred `local.get` that still names the local's
//! slot: operators read locals directly, and the copy happens only when it must
//! (before the local is overwritten, at block boundaries, for call arguments).
//! A `local.set` right after the instruction that produced its value retargets
//! that instruction's destination to the local instead of copying.

use wasmparser::{BlockType, FuncValidator, FunctionBody, Operator, ValidatorResources};

use super::assign::Assignment;
use super::code::{for_each_numeric, for_each_simd, pack_simd, unpack_simd, Cell, CompiledFunc, Instr, SimdOp, Slot};
use super::threaded;
use crate::engine::Config;
use crate::error::Error;
use crate::module::{invalid, ModuleInfo};
use crate::types::ValType;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Operand {
    /// The value lives in the stack position's own slot.
    Temp,
    /// The value is (still) the current value of this local.
    Local(u32),
    /// A constant not yet written anywhere (it may become an immediate).
    Const(u64),
}

/// One entry of the simulated operand stack.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Entry {
    op: Operand,
    /// The entry's own slot (its value lives there once it is a temp).
    slot: Slot,
    /// A v128, taking `slot` and `slot + 1`.
    wide: bool,
}

/// Where a value to move comes from.
#[derive(Clone, Copy, Debug)]
enum Source {
    Slot(Slot),
    Const(u64),
}

/// A branch condition: a slot tested against zero, or a comparison fused into the branch.
#[derive(Clone, Copy, Debug)]
enum Cond {
    /// Branch when the slot is non-zero (or, if `inverted`, when it is zero).
    Slot { slot: Slot, inverted: bool },
    /// An integer comparison whose result only feeds the branch.
    Compare(Instr),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CtrlKind {
    Block,
    Loop,
    If,
    Else,
}

#[derive(Debug)]
struct Ctrl {
    kind: CtrlKind,
    /// Operand stack height at entry, below the block's parameters.
    height: usize,
    /// The slot of stack position `height`: where the block's values start.
    base_slot: Slot,
    params: u32,
    results: u32,
    /// Which parameters / results are v128 (empty when none is).
    params_wide: Vec<bool>,
    results_wide: Vec<bool>,
    /// Loop header (branch target of a loop).
    start: u32,
    /// Branches to patch with the end position.
    fixups: Vec<usize>,
    /// The `if`'s conditional jump to its `else` (or end).
    else_fixup: Option<usize>,
    /// Entered in unreachable code: the whole construct is skipped.
    dead_entry: bool,
}

pub(crate) struct Translator {
    fuel: bool,
    /// Whether the engine tracks memory writes (which handler set the code uses).
    track: bool,
    /// The interrupt check emitted at function entries and loop headers, if any.
    check: Option<Instr>,
    /// Slots taken by parameters and locals (the operand stack starts here).
    locals: u32,
    /// Slot and width of every local (parameters first).
    local_slots: Vec<(Slot, bool)>,
    /// Declared locals of a reference type (always zeroed on entry: null).
    ref_locals: Vec<u32>,
    /// Which locals may be read before written (only those are zeroed on entry).
    assignment: Assignment,
    stack: Vec<Entry>,
    /// Highest slot (exclusive) any operand-stack entry used.
    max_slot: u32,
    code: Vec<Instr>,
    /// The wasm offset (in the module's bytes) of the operator each instruction
    /// of `code` came from, for backtraces; kept in step with `code`.
    offsets: Vec<u32>,
    /// The offset of the operator being translated.
    op_offset: u32,
    ctrl: Vec<Ctrl>,
    dead: bool,
    /// No instruction before this index may be rewritten (a branch may land here).
    label: usize,
    fuel_at: Option<usize>,
    /// A producer and consumer to link through the accumulator (`link_acc`):
    /// the producer's index, both instructions as found, the slot, the
    /// consumer's operand bit.
    pending_acc: Option<(usize, [Instr; 2], Slot, u8, bool)>,
    /// Producer-consumer pairs linked through the accumulator whose result and
    /// operand are both halves of packed fields (nothing to mark until
    /// `check_acc`): the producer's index, both instructions, the slot.
    packed_pairs: Vec<(usize, [Instr; 2], Slot)>,
    /// A SIMD instruction needed a slot its packed form cannot hold.
    frame_too_large: bool,
}

/// An immediate-form operator (`instr`) whose left operand `producer` computed,
/// as one instruction: a rotate of an xor, an add to a global just read.
fn fuse_producer_into_imm(producer: Instr, instr: Instr) -> Option<Instr> {
    let ab = |a: Slot, b: Slot| (a <= 0xffff && b <= 0xffff).then_some(a | b << 16);
    Some(match (producer, instr) {
        (Instr::I32Xor { lhs, rhs, .. }, Instr::I32RotlImm { dst, imm, .. }) => {
            Instr::I32XorRotl { dst, ab: ab(lhs, rhs)?, k: imm as u32 & 31 }
        }
        (Instr::I32Xor { lhs, rhs, .. }, Instr::I32RotrImm { dst, imm, .. }) => {
            Instr::I32XorRotl { dst, ab: ab(lhs, rhs)?, k: (imm as u32).wrapping_neg() & 31 }
        }
        (Instr::I64Xor { lhs, rhs, .. }, Instr::I64RotlImm { dst, imm, .. }) => {
            Instr::I64XorRotl { dst, ab: ab(lhs, rhs)?, k: imm as u32 & 63 }
        }
        (Instr::I64Xor { lhs, rhs, .. }, Instr::I64RotrImm { dst, imm, .. }) => {
            Instr::I64XorRotl { dst, ab: ab(lhs, rhs)?, k: (imm as u32).wrapping_neg() & 63 }
        }
        (Instr::GlobalGet { global, .. }, Instr::I32AddImm { dst, imm, .. }) => {
            Instr::GlobalGetAddImm { dst, global, k: imm }
        }
        (Instr::GlobalGet { global, .. }, Instr::I32SubImm { dst, imm, .. }) => {
            Instr::GlobalGetAddImm { dst, global, k: imm.wrapping_neg() }
        }
        _ => return None,
    })
}

/// A 4- or 8-byte load (or, with `store`, store) of any type: whether it is 8
/// bytes, and its memory argument.
fn word_access(op: &Operator<'_>, store: bool) -> Option<(bool, wasmparser::MemArg)> {
    match *op {
        Operator::I32Load { memarg } | Operator::F32Load { memarg } if !store => Some((false, memarg)),
        Operator::I64Load { memarg } | Operator::F64Load { memarg } if !store => Some((true, memarg)),
        Operator::I32Store { memarg } | Operator::F32Store { memarg } if store => Some((false, memarg)),
        Operator::I64Store { memarg } | Operator::F64Store { memarg } if store => Some((true, memarg)),
        _ => None,
    }
}

/// Which indices of `code` (and the one past its end) a branch targets.
fn branch_targets(code: &mut [Instr]) -> Vec<bool> {
    let mut is_target = vec![false; code.len() + 1];
    for instr in code {
        if let Some(&mut t) = instr.branch_target_mut() {
            is_target[t as usize] = true;
        }
    }
    is_target
}

/// `a` then `b` as one instruction, if there is one for the pair.
fn merge_pair(a: &Instr, b: &Instr) -> Option<Instr> {
    let pack = |lo: Slot, hi: u32| (lo <= 0xffff && hi <= 0xffff).then_some(lo | hi << 16);
    let load = |i: &Instr| match *i {
        Instr::I32Load { dst, addr, offset } | Instr::F32Load { dst, addr, offset } => Some((false, dst, addr, offset)),
        Instr::I64Load { dst, addr, offset } | Instr::F64Load { dst, addr, offset } => Some((true, dst, addr, offset)),
        _ => None,
    };
    let store = |i: &Instr| match *i {
        Instr::I32Store { addr, value, offset } | Instr::F32Store { addr, value, offset } => {
            Some((false, addr, value, offset))
        }
        Instr::I64Store { addr, value, offset } | Instr::F64Store { addr, value, offset } => {
            Some((true, addr, value, offset))
        }
        _ => None,
    };
    // A loop step and the test after it (as `fuse_step_into_branch` does when
    // emitting; here for the tests `rotate_loops` moved to the bottom).
    if let Some(fused) = fuse_step_constant_test(a, b) {
        return Some(fused);
    }
    if let Instr::I32AddImm { dst, lhs: src, imm } = *a {
        let step = |rhs: Slot| {
            let fits = [dst, src, rhs].iter().all(|s| *s <= 0xffff) && i16::try_from(imm).is_ok();
            fits.then_some((dst | src << 16, rhs | (imm as u16 as u32) << 16))
        };
        return match *b {
            Instr::BrI32LtU { lhs, rhs, target } if lhs == dst => {
                step(rhs).map(|(ds, ki)| Instr::BrI32AddImmLtU { ds, ki, target })
            }
            Instr::BrI32GeU { lhs, rhs, target } if lhs == dst => {
                step(rhs).map(|(ds, ki)| Instr::BrI32AddImmGeU { ds, ki, target })
            }
            Instr::BrI32LtS { lhs, rhs, target } if lhs == dst => {
                step(rhs).map(|(ds, ki)| Instr::BrI32AddImmLtS { ds, ki, target })
            }
            Instr::BrI32GeS { lhs, rhs, target } if lhs == dst => {
                step(rhs).map(|(ds, ki)| Instr::BrI32AddImmGeS { ds, ki, target })
            }
            _ => None,
        };
    }
    // A fill loop's byte store and the pointer's advance (`*p = k; p += step`).
    if let (Instr::I32Store8Imm { addr, value, offset }, Instr::I32Add { dst, lhs, rhs }) = (*a, *b) {
        let step = match () {
            _ if dst == addr && lhs == addr => rhs,
            _ if dst == addr && rhs == addr => lhs,
            _ => return None,
        };
        return Some(Instr::I32Store8ImmStep { at_step: pack(addr, step)?, value, offset });
    }
    if let (Instr::Copy { dst, src }, Instr::CallInternal { def_index, base }) = (*a, *b) {
        return Some(Instr::CallInternalCopy { def_index, base, copy: pack(dst, src)? });
    }
    if let (Some((w1, a1, v1, o1)), Some((w2, a2, v2, o2))) = (store(a), store(b)) {
        if w1 != w2 {
            return None;
        }
        let (first, second, offsets) = (pack(a1, v1)?, pack(a2, v2)?, pack(o1, o2)?);
        return Some(if w1 {
            Instr::I64Store2 { first, second, offsets }
        } else {
            Instr::I32Store2 { first, second, offsets }
        });
    }
    let ((w1, d1, a1, o1), (w2, d2, a2, o2)) = (load(a)?, load(b)?);
    if w1 != w2 {
        return None;
    }
    let (first, second, offsets) = (pack(d1, a1)?, pack(d2, a2)?, pack(o1, o2)?);
    Some(if w1 { Instr::I64Load2 { first, second, offsets } } else { Instr::I32Load2 { first, second, offsets } })
}

/// A loop step `x = x + k` and a test of x against zero or a constant right
/// after it (`x != 0`, `x == 256`...), as one branch that still writes x.
fn fuse_step_constant_test(step: &Instr, branch: &Instr) -> Option<Instr> {
    let Instr::I32AddImm { dst: x, lhs, imm: k } = *step else { return None };
    if lhs != x {
        return None;
    }
    let xk = || (x <= 0xffff && i16::try_from(k).is_ok()).then_some(x | (k as u16 as u32) << 16);
    Some(match *branch {
        Instr::BrIfNez { cond, target } if cond == x => Instr::BrI32AddImmNez { x, imm: k, target },
        Instr::BrIfEqz { cond, target } if cond == x => Instr::BrI32AddImmEqz { x, imm: k, target },
        Instr::BrI32NeImm { lhs, imm: n, target } if lhs == x => Instr::BrI32AddImmNeImm { xk: xk()?, n, target },
        Instr::BrI32EqImm { lhs, imm: n, target } if lhs == x => Instr::BrI32AddImmEqImm { xk: xk()?, n, target },
        _ => return None,
    })
}

/// Which of `types` are v128; empty when none is (the common case, no allocation).
fn wide_flags(types: &[ValType]) -> Vec<bool> {
    if types.contains(&ValType::V128) {
        types.iter().map(|t| *t == ValType::V128).collect()
    } else {
        Vec::new()
    }
}

fn err(offset: u64, message: impl Into<String>) -> Error {
    Error::Invalid { offset, message: message.into() }
}

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
                    Operator::V128Bitselect => {
                        let mask = self.pop();
                        let v2 = self.pop();
                        let pos = self.stack.len() - 1;
                        self.materialize_at(pos);
                        simd(SimdOp::V128Bitselect, 0, self.slot_of(pos), v2, mask)
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
    pub fn new(config: &Config) -> Translator {
        Translator {
            fuel: config.consume_fuel,
            track: config.track_memory_writes,
            check: if config.epoch_interruption {
                Some(Instr::CheckEpoch)
            } else if config.interruptible {
                Some(Instr::CheckInterrupt)
            } else {
                None
            },
            locals: 0,
            local_slots: Vec::new(),
            ref_locals: Vec::new(),
            assignment: Assignment::default(),
            stack: Vec::new(),
            max_slot: 0,
            code: Vec::new(),
            offsets: Vec::new(),
            op_offset: 0,
            ctrl: Vec::new(),
            dead: false,
            label: 0,
            pending_acc: None,
            packed_pairs: Vec::new(),
            fuel_at: None,
            frame_too_large: false,
        }
    }

    pub fn translate(
        &mut self,
        info: &ModuleInfo,
        func_index: u32,
        body: &FunctionBody<'_>,
        mut fv: Option<&mut FuncValidator<ValidatorResources>>,
    ) -> Result<CompiledFunc, Error> {
        let ty = info.func_type(func_index);
        let num_results = ty.results().len() as u32;
        self.local_slots.clear();
        self.ref_locals.clear();
        let mut next: u32 = 0;
        for p in ty.params() {
            let wide = *p == ValType::V128;
            self.local_slots.push((next, wide));
            next += 1 + wide as u32;
        }
        let mut locals = body.get_locals_reader().map_err(invalid)?;
        for _ in 0..locals.get_count() {
            let offset = locals.original_position();
            let (count, ty) = locals.read().map_err(invalid)?;
            if let Some(fv) = fv.as_deref_mut() {
                fv.define_locals(offset, count, ty).map_err(invalid)?;
            }
            // The validator bounds the number of locals (50,000), so this stays small.
            let wide = ty == wasmparser::ValType::V128;
            if ty.is_reference_type() {
                let first = self.local_slots.len() as u32;
                self.ref_locals.extend(first..first + count);
            }
            for _ in 0..count {
                self.local_slots.push((next, wide));
                next = next.checked_add(1 + wide as u32).ok_or_else(|| err(offset, "too many locals"))?;
            }
        }
        let num_param_locals = ty.params().len() as u32;
        self.assignment.start(num_param_locals, self.local_slots.len() as u32);
        self.locals = next;
        self.stack.clear();
        self.ctrl.clear();
        self.code.clear();
        self.offsets.clear();
        self.max_slot = next;
        self.dead = false;
        self.label = 0;
        self.pending_acc = None;
        self.packed_pairs.clear();
        self.fuel_at = None;
        self.frame_too_large = false;
        // Filled in at the end, once `assignment` has seen the whole body.
        self.emit(Instr::ZeroLocals { start: 0, count: 0 });
        self.label = self.code.len();
        self.new_fuel_block();
        if let Some(check) = self.check {
            self.emit(check);
        }
        let results_wide = wide_flags(ty.results());
        self.ctrl.push(Ctrl {
            kind: CtrlKind::Block,
            height: 0,
            base_slot: self.locals,
            params: 0,
            results: num_results,
            params_wide: Vec::new(),
            results_wide,
            start: 0,
            fixups: Vec::new(),
            else_fixup: None,
            dead_entry: false,
        });
        let mut reader = body.get_operators_reader().map_err(invalid)?;
        while !reader.eof() {
            let (op, offset) = reader.read_with_offset().map_err(invalid)?;
            if let Some(fv) = fv.as_deref_mut() {
                fv.op(offset, &op).map_err(invalid)?;
            }
            self.op(info, &op, offset)?;
            self.assignment.op(&op);
        }
        reader.finish().map_err(invalid)?;
        self.apply_pending_acc();
        let frame_size = self.max_slot;
        if frame_size >= u32::MAX / 2 || self.frame_too_large {
            return Err(err(0, "function frame too large"));
        }
        self.merge_pairs();
        // No slot is `PACKED_ACC` in a frame smaller than that.
        let packed = frame_size < threaded::PACKED_ACC;
        self.check_acc(packed);
        if self.code.len() > i32::MAX as usize / std::mem::size_of::<Cell>() {
            return Err(err(0, "function too large for the interpreter"));
        }
        let (start, count) = self.zeroed_slots(num_param_locals);
        self.code[0] = Instr::ZeroLocals { start, count };
        debug_assert_eq!(self.offsets.len(), self.code.len(), "an instruction without its offset");
        // Without one offset per instruction (a bug), backtraces show none.
        let offsets =
            if self.offsets.len() == self.code.len() { self.offsets.as_slice().into() } else { Box::default() };
        Ok(CompiledFunc {
            entry: (count == 0) as u32,
            code: self.code.iter().enumerate().map(|(i, &instr)| self.cell(i, instr, packed)).collect(),
            offsets,
            frame_size,
        })
    }

    /// An instruction as it is stored for execution: beside its handler, its
    /// branch target (an index into the code until now) as the distance in bytes
    /// from the branch, so that a taken branch is one add to `ip` and no handler
    /// needs the code's start (the length check in `translate` keeps it an `i32`).
    fn cell(&self, i: usize, mut instr: Instr, packed: bool) -> Cell {
        if let Some(target) = instr.branch_target_mut() {
            *target = ((*target as i64 - i as i64) * std::mem::size_of::<Cell>() as i64) as i32 as u32;
        }
        Cell { handler: super::threaded::handler_for(&instr, self.track, packed), instr }
    }

    /// Once the body is translated: merges pairs of adjacent instructions that
    /// no branch separates into one (two loads or two stores in a row, an
    /// argument copy and the call), and renumbers the
    /// branch targets. Done here, not as each instruction is emitted, so that
    /// the emit-time rewrites (a `local.set` retargeting a load) see the plain
    /// instructions.
    fn merge_pairs(&mut self) {
        self.rotate_loops();
        let n = self.code.len();
        if !self.code.windows(2).any(|w| merge_pair(&w[0], &w[1]).is_some()) {
            return;
        }
        let is_target = branch_targets(&mut self.code);
        let mut map = Vec::with_capacity(n + 1);
        let mut out = Vec::with_capacity(n);
        let mut offsets = Vec::with_capacity(n);
        let mut i = 0;
        while i < n {
            map.push(out.len() as u32);
            offsets.push(self.offsets.get(i).copied().unwrap_or(0));
            let merged =
                if i + 1 < n && !is_target[i + 1] { merge_pair(&self.code[i], &self.code[i + 1]) } else { None };
            match merged {
                Some(m) => {
                    // A merged call keeps the call's offset (where its frame is).
                    if matches!(self.code[i + 1], Instr::CallInternal { .. }) {
                        *offsets.last_mut().unwrap_or(&mut 0) = self.offsets.get(i + 1).copied().unwrap_or(0);
                    }
                    map.push(out.len() as u32);
                    out.push(m);
                    i += 2;
                }
                None => {
                    out.push(self.code[i]);
                    i += 1;
                }
            }
        }
        map.push(out.len() as u32);
        if out.len() == n {
            return;
        }
        for instr in &mut out {
            if let Some(t) = instr.branch_target_mut() {
                *t = map[*t as usize];
            }
        }
        self.packed_pairs.retain_mut(|(at, pair, _)| {
            let i = map[*at] as usize;
            let kept = map[*at + 1] as usize == i + 1 && out.get(i..i + 2) == Some(&pair[..]);
            *at = i;
            kept
        });
        self.code = out;
        self.offsets = offsets;
    }

    /// A loop tested at the top (`t: if exit-condition goto e; body; goto t`,
    /// `e` right after the `goto`) gets its test at the bottom too: the `goto t`
    /// becomes `if !exit-condition goto t + 1`, falling through to `e`. The
    /// test at `t` still runs on entry; each round then takes one dispatch
    /// fewer (and the test may fuse with the step before it). The test's own
    /// effect, if it has one (a fused step), runs once either way: the new
    /// branch skips the one at `t`. Entries of a `br_table` stay as they are.
    fn rotate_loops(&mut self) {
        let n = self.code.len();
        let mut table_entries = 0;
        for i in 0..n {
            if table_entries > 0 {
                table_entries -= 1;
                continue;
            }
            match self.code[i] {
                Instr::BrTable { len, .. } => table_entries = len as usize + 1,
                // Backward only: `t < i` also keeps the index inside the code.
                Instr::Br { target } if (target as usize) < i => {
                    let t = target as usize;
                    let test = self.code[t];
                    let mut exit = test;
                    let exits_here = exit.branch_target_mut().is_some_and(|e| *e as usize == i + 1);
                    if exits_here {
                        if let Some(back) = test.negated_branch(t as u32 + 1) {
                            self.code[i] = back;
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The slots to zero on entry: the span of the declared locals that may be
    /// read before written, and of those of a reference type (null, never a
    /// stale value, whatever the analysis says).
    fn zeroed_slots(&self, num_param_locals: u32) -> (u32, u32) {
        let (mut lo, mut hi) = (u32::MAX, 0);
        let declared = num_param_locals..self.local_slots.len() as u32;
        let zeroed = declared.filter(|&l| self.assignment.read_first(l)).chain(self.ref_locals.iter().copied());
        for l in zeroed {
            let (slot, wide) = self.local_slots[l as usize];
            lo = lo.min(slot);
            hi = hi.max(slot + 1 + wide as u32);
        }
        if lo >= hi {
            (0, 0)
        } else {
            (lo, hi - lo)
        }
    }

    // ---- operand stack ----

    fn slot_of(&self, pos: usize) -> Slot {
        self.stack[pos].slot
    }

    /// The slot a value pushed now would take.
    fn next_slot(&self) -> Slot {
        self.stack.last().map_or(self.locals, |e| e.slot + 1 + e.wide as u32)
    }

    /// The slot of stack position `pos`, which may be the next free position.
    fn slot_at(&self, pos: usize) -> Slot {
        if pos < self.stack.len() {
            self.stack[pos].slot
        } else {
            self.next_slot()
        }
    }

    fn local_slot(&self, local: u32) -> Slot {
        self.local_slots[local as usize].0
    }

    fn source(&self, pos: usize) -> Source {
        match self.stack[pos].op {
            Operand::Temp => Source::Slot(self.slot_of(pos)),
            Operand::Local(l) => Source::Slot(self.local_slot(l)),
            Operand::Const(v) => Source::Const(v),
        }
    }

    /// Pops an operand and returns the slot holding it (writing a constant to
    /// the position's own slot first).
    fn pop(&mut self) -> Slot {
        let pos = self.stack.len() - 1;
        self.materialize_const(pos);
        let slot = match self.source(pos) {
            Source::Slot(s) => s,
            Source::Const(_) => unreachable!("materialized above"),
        };
        self.stack.pop();
        slot
    }

    fn materialize_const(&mut self, pos: usize) {
        if let Operand::Const(value) = self.stack[pos].op {
            let dst = self.slot_of(pos);
            self.emit(Instr::Const { dst, value });
            self.stack[pos].op = Operand::Temp;
        }
    }

    /// Moves a value of one slot, or two if `wide`.
    fn emit_move(&mut self, src: Source, dst: Slot, wide: bool) {
        match src {
            Source::Slot(s) if s == dst => {}
            Source::Slot(src) if wide => {
                self.emit(Instr::Copy2 { dst, src });
            }
            Source::Slot(src) => {
                // A copy right after another (argument and branch moves) joins it.
                if let Some(&Instr::Copy { dst: d1, src: s1 }) = self.code.last() {
                    if self.code.len() > self.label && [d1, s1, dst, src].iter().all(|s| *s <= 0xffff) {
                        let last = self.code.last_mut().expect("checked above");
                        *last = Instr::CopyPair { first: d1 | s1 << 16, second: dst | src << 16 };
                        return;
                    }
                }
                self.emit(Instr::Copy { dst, src });
            }
            Source::Const(value) => {
                self.emit(Instr::Const { dst, value });
            }
        }
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

    /// The last instruction, if it computed the temp at stack position `pos`
    /// and may be rewritten (no branch lands after it). Nothing else reads that
    /// temp (temps are used once), so the consumer may absorb the producer.
    fn producer_of(&self, pos: usize) -> Option<Instr> {
        if self.code.len() <= self.label {
            return None;
        }
        let entry = self.stack.get(pos)?;
        let mut last = *self.code.last()?;
        (entry.op == Operand::Temp && last.result_slot_mut().is_some_and(|d| *d == entry.slot)).then_some(last)
    }

    /// A binary operator (register form) whose operand the last instruction
    /// computed, as one instruction: an xor of a rotate (`I32RotlXor`), an add of
    /// a shift (`I32AddShl`).
    fn fuse_producer_into_binary(&mut self, base: &Instr) -> bool {
        let n = self.stack.len();
        let (produced, other) = match (self.producer_of(n - 1), self.producer_of(n - 2)) {
            (Some(p), _) => (p, n - 2),
            (_, Some(p)) => (p, n - 1),
            _ => return false,
        };
        // The other operand must not need writing first (that would emit code).
        let Source::Slot(b) = self.source(other) else { return false };
        let fused = |dst: Slot| -> Option<Instr> {
            let ab = |a: Slot| (a <= 0xffff && b <= 0xffff).then_some(a | b << 16);
            let pack = |x: Slot, y: Slot| (x <= 0xffff && y <= 0xffff).then_some(x | y << 16);
            Some(match (base, produced) {
                (Instr::I32Xor { .. }, Instr::I32RotlImm { lhs, imm, .. }) => {
                    Instr::I32RotlXor { dst, ab: ab(lhs)?, k: imm as u32 & 31 }
                }
                (Instr::I32Xor { .. }, Instr::I32RotrImm { lhs, imm, .. }) => {
                    Instr::I32RotlXor { dst, ab: ab(lhs)?, k: (imm as u32).wrapping_neg() & 31 }
                }
                (Instr::I64Xor { .. }, Instr::I64RotlImm { lhs, imm, .. }) => {
                    Instr::I64RotlXor { dst, ab: ab(lhs)?, k: imm as u32 & 63 }
                }
                (Instr::I64Xor { .. }, Instr::I64RotrImm { lhs, imm, .. }) => {
                    Instr::I64RotlXor { dst, ab: ab(lhs)?, k: (imm as u32).wrapping_neg() & 63 }
                }
                (Instr::I32Add { .. }, Instr::I32ShlImm { lhs, imm, .. }) => {
                    // a + (x << k): `ab` packs the other operand first.
                    let ab = (lhs <= 0xffff && b <= 0xffff).then_some(b | lhs << 16)?;
                    Instr::I32AddShl { dst, ab, k: imm as u32 & 31 }
                }
                (Instr::I32Add { .. }, Instr::I32LtS { lhs, rhs, .. }) => {
                    Instr::I32AddI32LtS { dst, a: b, xy: pack(lhs, rhs)? }
                }
                (Instr::I32Add { .. }, Instr::I32LtU { lhs, rhs, .. }) => {
                    Instr::I32AddI32LtU { dst, a: b, xy: pack(lhs, rhs)? }
                }
                (Instr::I32Add { .. }, Instr::I64LtS { lhs, rhs, .. }) => {
                    Instr::I32AddI64LtS { dst, a: b, xy: pack(lhs, rhs)? }
                }
                (Instr::I32Add { .. }, Instr::I64LtU { lhs, rhs, .. }) => {
                    Instr::I32AddI64LtU { dst, a: b, xy: pack(lhs, rhs)? }
                }
                (Instr::I32Add { .. }, Instr::I32ShrUImm { lhs, imm, .. }) => {
                    let ab = (lhs <= 0xffff && b <= 0xffff).then_some(b | lhs << 16)?;
                    Instr::I32AddShrU { dst, ab, k: imm as u32 & 31 }
                }
                _ => return None,
            })
        };
        // The result takes the lower position's slot.
        let dst = self.slot_of(n - 2);
        let Some(instr) = fused(dst) else { return false };
        self.stack.truncate(n - 2);
        let pushed = self.push_temp();
        debug_assert_eq!(pushed, dst);
        self.replace_last(instr);
        true
    }

    /// A load without offset from an address the last instruction computed as
    /// `x + k`, as one `I32LoadAddImm` / `I64LoadAddImm`.
    fn displaced_load(&mut self, op: &Operator<'_>) -> bool {
        let Some((wide, memarg)) = word_access(op, false) else { return false };
        if memarg.offset != 0 || self.stack.is_empty() {
            return false;
        }
        let (src, k) = match self.producer_of(self.stack.len() - 1) {
            Some(Instr::I32AddImm { lhs, imm, .. }) => (lhs, imm),
            Some(Instr::I32SubImm { lhs, imm, .. }) => (lhs, imm.wrapping_neg()),
            _ => return false,
        };
        self.pop_instr();
        self.stack.pop();
        let dst = self.push_temp();
        self.emit(if wide { Instr::I64LoadAddImm { dst, src, k } } else { Instr::I32LoadAddImm { dst, src, k } });
        true
    }

    /// A store of a value the last instruction loaded, same width (4 or 8 bytes):
    /// one `I32MemCopyWord` / `I64MemCopyWord`.
    fn copying_store(&mut self, op: &Operator<'_>) -> bool {
        let Some((wide, memarg)) = word_access(op, true) else { return false };
        let n = self.stack.len();
        if n < 2 || self.code.len() <= self.label {
            return false;
        }
        let loaded = match *self.code.last().expect("checked above") {
            Instr::I32Load { dst, addr, offset } | Instr::F32Load { dst, addr, offset } if !wide => (dst, addr, offset),
            Instr::I64Load { dst, addr, offset } | Instr::F64Load { dst, addr, offset } if wide => (dst, addr, offset),
            _ => return false,
        };
        let (loaded_to, from, src_offset) = loaded;
        let (Source::Slot(value), Source::Slot(to)) = (self.source(n - 1), self.source(n - 2)) else { return false };
        let Ok(dst_offset) = u32::try_from(memarg.offset) else { return false };
        if value != loaded_to || from > 0xffff || to > 0xffff {
            return false;
        }
        if self.stack[n - 1].op != Operand::Temp {
            // The loaded value stays in a local for later: the load keeps writing it.
            let fits = loaded_to <= 0xffff && src_offset <= 0xffff && dst_offset <= 0xffff;
            if !fits {
                return false;
            }
            let (addrs, offsets) = (from | to << 16, src_offset | dst_offset << 16);
            *self.code.last_mut().expect("checked above") = if wide {
                Instr::I64LoadThenStore { dst: loaded_to, addrs, offsets }
            } else {
                Instr::I32LoadThenStore { dst: loaded_to, addrs, offsets }
            };
            self.stack.truncate(n - 2);
            return true;
        }
        self.pop_instr();
        self.stack.truncate(n - 2);
        let addrs = from | to << 16;
        self.emit(if wide {
            Instr::I64MemCopyWord { addrs, src_offset, dst_offset }
        } else {
            Instr::I32MemCopyWord { addrs, src_offset, dst_offset }
        });
        true
    }

    /// `global.set` of a value the last instruction computed as `global + k`
    /// (the same global) or `x + k`: one `GlobalAddImm` / `GlobalSetAddImm`,
    /// which still write the value's slot (it may be a local, via `local.tee`).
    fn fuse_into_global_set(&mut self, src: Slot, global: u32) -> bool {
        if self.code.len() <= self.label {
            return false;
        }
        let fused = match *self.code.last().expect("checked above") {
            Instr::GlobalGetAddImm { dst, global: g, k } if dst == src && g == global => {
                Instr::GlobalAddImm { dst, global, k }
            }
            Instr::I32AddImm { dst, lhs, imm } if dst == src && dst <= 0xffff && lhs <= 0xffff => {
                Instr::GlobalSetAddImm { ds: dst | lhs << 16, global, k: imm }
            }
            _ => return false,
        };
        *self.code.last_mut().expect("checked above") = fused;
        true
    }

    /// Pops a branch condition, fusing it with the comparison that produced it
    /// when that comparison was the last instruction and feeds nothing else.
    fn pop_cond(&mut self) -> Cond {
        let pos = self.stack.len() - 1;
        if self.stack[pos].op == Operand::Temp && self.code.len() > self.label {
            let temp = self.slot_of(pos);
            let last = *self.code.last().expect("code after the label");
            let mut last_mut = last;
            if last_mut.result_slot_mut().is_some_and(|d| *d == temp) {
                if last.to_branch(false, 0).is_some() {
                    self.pop_instr();
                    self.stack.pop();
                    return Cond::Compare(last);
                }
                if let Instr::I32Eqz { src, .. } = last {
                    self.pop_instr();
                    self.stack.pop();
                    return Cond::Slot { slot: src, inverted: true };
                }
            }
        }
        Cond::Slot { slot: self.pop(), inverted: false }
    }

    /// Emits a jump taken when `cond` holds (or, with `negate`, when it does not).
    fn emit_cond_branch(&mut self, cond: Cond, negate: bool, target: u32) -> usize {
        let instr = match cond {
            Cond::Slot { slot, inverted } => {
                if inverted != negate {
                    Instr::BrIfEqz { cond: slot, target }
                } else {
                    Instr::BrIfNez { cond: slot, target }
                }
            }
            Cond::Compare(cmp) => cmp.to_branch(negate, target).expect("an integer comparison"),
        };
        let instr = self.fuse_add_into_branch(instr);
        self.emit(instr)
    }

    /// A loop's step and exit test, `x = y + k` then `x != n` (or `==`, either
    /// operand order; the add is the last instruction): one `BrI32AddImmNe` /
    /// `BrI32AddImmEq`, which still writes x.
    fn fuse_step_into_branch(&mut self, branch: Instr, lhs: Slot, rhs: Slot, target: u32) -> Instr {
        if self.code.len() <= self.label {
            return branch;
        }
        let Some(&Instr::I32AddImm { dst, lhs: src, imm }) = self.code.last() else { return branch };
        let other = if lhs == dst {
            rhs
        } else if rhs == dst {
            lhs
        } else {
            return branch;
        };
        if [dst, src, other].iter().any(|s| *s > 0xffff) || i16::try_from(imm).is_err() {
            return branch;
        }
        self.pop_instr();
        let (ds, ki) = (dst | src << 16, other | (imm as u16 as u32) << 16);
        match branch {
            Instr::BrI32Ne { .. } => Instr::BrI32AddImmNe { ds, ki, target },
            _ => Instr::BrI32AddImmEq { ds, ki, target },
        }
    }

    /// An unsigned bounds check on a sum just computed (`a + b`, written to
    /// `dst`, then `dst` compared with `rhs`; the add is the last instruction):
    /// one `BrI32AddGeU`/`BrI32AddLtU`, which still writes the sum.
    fn fuse_add_into_branch(&mut self, branch: Instr) -> Instr {
        if let Instr::BrI32Ne { lhs, rhs, target } | Instr::BrI32Eq { lhs, rhs, target } = branch {
            return self.fuse_step_into_branch(branch, lhs, rhs, target);
        }
        if self.code.len() <= self.label {
            return branch;
        }
        if let Some(fused) = self.code.last().and_then(|step| fuse_step_constant_test(step, &branch)) {
            self.pop_instr();
            return fused;
        }
        // `x = y + k` then `x < n` (a loop's step and exit test, `<` or `>=`).
        if let Instr::BrI32LtU { lhs, rhs, target }
        | Instr::BrI32GeU { lhs, rhs, target }
        | Instr::BrI32LtS { lhs, rhs, target }
        | Instr::BrI32GeS { lhs, rhs, target } = branch
        {
            if let Some(&Instr::I32AddImm { dst, lhs: src, imm }) = self.code.last() {
                if dst == lhs && [dst, src, rhs].iter().all(|s| *s <= 0xffff) && i16::try_from(imm).is_ok() {
                    self.pop_instr();
                    let (ds, ki) = (dst | src << 16, rhs | (imm as u16 as u32) << 16);
                    return match branch {
                        Instr::BrI32LtU { .. } => Instr::BrI32AddImmLtU { ds, ki, target },
                        Instr::BrI32GeU { .. } => Instr::BrI32AddImmGeU { ds, ki, target },
                        Instr::BrI32LtS { .. } => Instr::BrI32AddImmLtS { ds, ki, target },
                        _ => Instr::BrI32AddImmGeS { ds, ki, target },
                    };
                }
            }
        }
        let (Instr::BrI32GeU { lhs, rhs, target } | Instr::BrI32LtU { lhs, rhs, target }) = branch else {
            return branch;
        };
        let Some(&Instr::I32Add { dst, lhs: a, rhs: b }) = self.code.last() else { return branch };
        if dst != lhs || [a, b, dst, rhs].iter().any(|s| *s > 0xffff) {
            return branch;
        }
        self.pop_instr();
        let (ab, dr) = (a | b << 16, dst | rhs << 16);
        match branch {
            Instr::BrI32GeU { .. } => Instr::BrI32AddGeU { ab, dr, target },
            _ => Instr::BrI32AddLtU { ab, dr, target },
        }
    }

    fn push_entry(&mut self, op: Operand, wide: bool) -> Slot {
        let slot = self.next_slot();
        self.stack.push(Entry { op, slot, wide });
        self.max_slot = self.max_slot.max(slot + 1 + wide as u32);
        slot
    }

    fn push(&mut self, operand: Operand) {
        let wide = match operand {
            Operand::Local(l) => self.local_slots[l as usize].1,
            _ => false,
        };
        self.push_entry(operand, wide);
    }

    fn push_temp(&mut self) -> Slot {
        self.push_entry(Operand::Temp, false)
    }

    /// Pushes a v128 temp (two slots).
    fn push_temp_wide(&mut self) -> Slot {
        self.push_entry(Operand::Temp, true)
    }

    fn push_temp_of(&mut self, ty: ValType) -> Slot {
        self.push_entry(Operand::Temp, ty == ValType::V128)
    }

    fn materialize_at(&mut self, pos: usize) {
        match self.stack[pos].op {
            Operand::Local(l) => {
                let dst = self.slot_of(pos);
                let src = self.local_slot(l);
                self.emit_move(Source::Slot(src), dst, self.stack[pos].wide);
                self.stack[pos].op = Operand::Temp;
            }
            Operand::Const(_) => self.materialize_const(pos),
            Operand::Temp => {}
        }
    }

    /// Makes the top `n` entries temps (e.g. call arguments, which must be consecutive).
    fn materialize_top(&mut self, n: usize) {
        let len = self.stack.len();
        for pos in len - n..len {
            self.materialize_at(pos);
        }
    }

    fn materialize_all(&mut self) {
        self.materialize_top(self.stack.len());
    }

    fn materialize_local(&mut self, local: u32) {
        for pos in 0..self.stack.len() {
            if self.stack[pos].op == Operand::Local(local) {
                self.materialize_at(pos);
            }
        }
    }

    // ---- code emission ----

    /// Makes the last instruction (if after the label, and if `from` is the only
    /// slot it writes) write `to` instead. SIMD instructions pack their result
    /// slot, so they are retargeted through `pack_simd`.
    fn retarget_last(&mut self, from: Slot, to: Slot) -> bool {
        if self.code.len() <= self.label {
            return false;
        }
        let Some(last) = self.code.last_mut() else { return false };
        if let Instr::Simd { head, .. } = last {
            let (op, lane, a) = unpack_simd(*head);
            if op.a_is_result() && a == from {
                if let Some(h) = pack_simd(op, lane, to) {
                    *head = h;
                    return true;
                }
            }
            return false;
        }
        if let Some(ds) = last.packed_result_mut() {
            if *ds & 0xffff == from && to <= 0xffff {
                *ds = (*ds & !0xffff) | to;
                return true;
            }
            return false;
        }
        match last.result_slot_mut() {
            Some(dst) if *dst == from => {
                *dst = to;
                true
            }
            _ => false,
        }
    }

    /// Emits a SIMD instruction (see `pack_simd`); a slot beyond what the packed
    /// form holds makes the function fail to translate.
    fn emit_simd(&mut self, (op, lane, a, b, c): (SimdOp, u8, Slot, Slot, u32)) {
        match pack_simd(op, lane, a) {
            Some(head) => {
                self.emit(Instr::Simd { head, b, c });
            }
            None => self.frame_too_large = true,
        }
    }

    fn emit(&mut self, instr: Instr) -> usize {
        self.code.push(instr);
        self.offsets.push(self.op_offset);
        self.link_acc();
        self.code.len() - 1
    }

    /// Removes the last instruction (a fusion replaces it), and its offset.
    fn pop_instr(&mut self) -> Option<Instr> {
        self.offsets.pop();
        self.code.pop()
    }

    /// If the instruction just emitted reads, as an operand, the temp that the
    /// one before computed, and nothing reads that temp afterwards (no stack
    /// entry holds it but, possibly, the new instruction's own result), and no
    /// branch lands between the two: the pair will pass it in the accumulator
    /// (the producer's result and the consumer's operand marked, `threaded::ACC`).
    /// Marked once the next instruction is emitted, so that the fusions that
    /// rewrite the last instruction with the operands of the one before still
    /// see plain slots; a pair they rewrote is left alone. Later rewrites may
    /// still separate or change a marked pair: `check_acc` then undoes it.
    fn link_acc(&mut self) {
        self.apply_pending_acc();
        self.link_last();
    }

    /// Replaces the last instruction (a fusion that took the operator after it
    /// in) and considers the new one for the accumulator as if just emitted.
    fn replace_last(&mut self, instr: Instr) {
        let last = self.code.len() - 1;
        if self.pending_acc.is_some_and(|(at, ..)| at + 1 == last) {
            // The pair ends at the replaced instruction: found again below.
            self.pending_acc = None;
        }
        self.apply_pending_acc();
        self.code[last] = instr;
        self.link_last();
    }

    /// `link_acc` for the last two instructions.
    fn link_last(&mut self) {
        let n = self.code.len();
        if n < 2 || n - 1 <= self.label {
            return;
        }
        let mut producer = self.code[n - 2];
        // The result in a named field, or in the low half of a packed `ds`.
        let (d, packed_result) = match producer.result_slot_mut() {
            Some(&mut d) => (d, false),
            None => match threaded::packed_result(&producer) {
                Some(d) => (d, true),
                None => return,
            },
        };
        if d < self.locals || d & threaded::ACC != 0 || !threaded::has_acc_form(&producer, threaded::ACC_DST) {
            return;
        }
        let consumer = &mut self.code[n - 1];
        let bit = threaded::operands_reading(consumer, d);
        // `bit` 0: read in a half of a packed field; only the producer is marked
        // now, the half by `check_acc` (`PACKED_ACC`).
        let form_bit = if bit == 0 { threaded::packed_reads(consumer, d) } else { bit };
        if form_bit != threaded::ACC_A && form_bit != threaded::ACC_B
            || !threaded::has_acc_form(consumer, threaded::acc_form(consumer) | form_bit)
        {
            return;
        }
        let own = consumer.result_slot_mut().map(|r| *r).or(threaded::packed_result(consumer));
        // Entries' own slots increase along the stack: only the entry covering
        // `d`, if any, can hold it (a search, not a scan: the stack may be deep).
        let at = self.stack.partition_point(|e| e.slot + u32::from(e.wide) < d);
        let live = self.stack.get(at).is_some_and(|e| {
            e.op == Operand::Temp && (e.slot == d || e.wide && e.slot + 1 == d) && own != Some(e.slot)
        });
        debug_assert_eq!(
            live,
            self.stack
                .iter()
                .any(|e| e.op == Operand::Temp && (e.slot == d || e.wide && e.slot + 1 == d) && own != Some(e.slot)),
            "stack slots increase along the stack"
        );
        if live {
            return;
        }
        self.pending_acc = Some((n - 2, [self.code[n - 2], self.code[n - 1]], d, bit, packed_result));
    }

    /// Marks the pair `link_acc` found, if both instructions are still there as
    /// they were.
    fn apply_pending_acc(&mut self) {
        let Some((at, pair, d, bit, packed_result)) = self.pending_acc.take() else { return };
        // The consumer's branch target may have been patched in the meantime (a
        // forward branch), and its result retargeted (`local.set`, a return).
        let operands = |mut instr: Instr| {
            if let Some(t) = instr.branch_target_mut() {
                *t = 0;
            }
            if let Some(r) = instr.result_slot_mut() {
                *r = 0;
            }
            threaded::clear_packed_result(&mut instr);
            instr
        };
        match self.code.get(at..at + 2) {
            Some(&[p, c]) if p == pair[0] && operands(c) == operands(pair[1]) => {}
            _ => return,
        }
        // Only named fields can hold `ACC | slot`; a packed half is marked by
        // `check_acc`, from the named mark of the other side of the pair, or
        // (both sides packed) from `packed_pairs`.
        match (packed_result, bit != 0) {
            (false, true) => {
                threaded::mark_acc(&mut self.code[at + 1], bit, d);
                *self.code[at].result_slot_mut().expect("checked by link_acc") = threaded::ACC | d;
            }
            (false, false) => *self.code[at].result_slot_mut().expect("checked by link_acc") = threaded::ACC | d,
            (true, true) => threaded::mark_acc(&mut self.code[at + 1], bit, d),
            (true, false) => self.packed_pairs.push((at, [self.code[at], self.code[at + 1]], d)),
        }
    }

    /// Keeps only accumulator marks that pair a producer with the consumer right
    /// after it, with no branch landing between, in forms both have handlers for;
    /// any other mark of a slot (left by a rewrite that moved, merged or copied
    /// an instruction) clears every mark of that slot, which then goes through
    /// the frame as before. Then marks the packed halves (`threaded::PACKED_ACC`,
    /// if `packed`) that read a marked producer's result: a consumer that has
    /// no operand marked and reads the slot once, in such a half.
    fn check_acc(&mut self, packed: bool) {
        if self.packed_pairs.is_empty() && self.code.iter().all(|instr| threaded::acc_form(instr) == 0) {
            return;
        }
        let n = self.code.len();
        let is_target = branch_targets(&mut self.code);
        // The marked result slot, and the marked operand slots (with their count:
        // a form reads at most one).
        let marks = |instr: &Instr| {
            let (mut dst, mut ops, mut n_ops) = (None, [u32::MAX; 2], 0);
            threaded::acc_marks(instr, |bit, slot| {
                if bit == threaded::ACC_DST {
                    dst = Some(slot);
                } else {
                    ops[n_ops.min(1)] = slot;
                    n_ops += 1;
                }
            });
            (dst, ops, n_ops)
        };
        let mut bad: Vec<Slot> = Vec::new();
        let mut halves: Vec<(usize, u8, Slot)> = Vec::new();
        // Producers whose packed result half is to be marked, with the slot.
        let mut results: Vec<(usize, Slot)> = Vec::new();
        for i in 0..n {
            let instr = &self.code[i];
            let form = threaded::acc_form(instr);
            if form == 0 {
                continue;
            }
            let (dst, ops, n_ops) = marks(instr);
            let form_ok = threaded::has_acc_form(instr, form) && n_ops <= 1;
            if let Some(d) = dst {
                let ok = form_ok && i + 1 < n && !is_target[i + 1] && {
                    let next = &self.code[i + 1];
                    let (_, next_ops, next_n) = marks(next);
                    if next_n == 1 {
                        next_ops[0] == d && threaded::has_acc_form(next, threaded::acc_form(next))
                    } else {
                        let half = if next_n == 0 && packed { threaded::packed_reads(next, d) } else { 0 };
                        let fits = half != 0 && threaded::has_acc_form(next, threaded::acc_form(next) | half);
                        if fits {
                            halves.push((i + 1, half, d));
                        }
                        fits
                    }
                };
                if !ok {
                    bad.push(d);
                }
            }
            for &d in &ops[..n_ops.min(2)] {
                let ok = form_ok && i > 0 && !is_target[i] && {
                    let prev = &self.code[i - 1];
                    match marks(prev).0 {
                        Some(p) => p == d,
                        // A result in a packed half (named producers always carry the mark).
                        None => {
                            let fits = packed
                                && threaded::packed_result(prev) == Some(d)
                                && threaded::has_acc_form(prev, threaded::ACC_DST | threaded::ACC_A);
                            if fits {
                                results.push((i - 1, d));
                            }
                            fits
                        }
                    }
                };
                if !ok {
                    bad.push(d);
                }
            }
        }
        // Pairs packed on both sides: still adjacent and unchanged since linked.
        for &(at, pair, d) in &self.packed_pairs {
            if !packed || at + 1 >= n || is_target[at + 1] || self.code[at..at + 2] != pair[..] {
                continue;
            }
            let consumer = &self.code[at + 1];
            let half = threaded::packed_reads(consumer, d);
            if threaded::packed_result(&self.code[at]) == Some(d)
                && half != 0
                && marks(consumer).2 == 0
                && threaded::has_acc_form(consumer, threaded::acc_form(consumer) | half)
            {
                results.push((at, d));
                halves.push((at + 1, half, d));
            }
        }
        bad.sort_unstable();
        bad.dedup();
        if !bad.is_empty() {
            // One pass whatever the number of bad slots (hostile code may have many).
            for instr in &mut self.code {
                let mut marked = [u32::MAX; 3];
                let mut k = 0;
                threaded::acc_marks(instr, |_, slot| {
                    if k < marked.len() {
                        marked[k] = slot;
                        k += 1;
                    }
                });
                for &d in &marked[..k] {
                    if bad.binary_search(&d).is_ok() {
                        threaded::clear_acc(instr, d);
                    }
                }
            }
        }
        for (at, half, d) in halves {
            if bad.binary_search(&d).is_err() {
                threaded::mark_packed(&mut self.code[at], half);
            }
        }
        for (at, d) in results {
            if bad.binary_search(&d).is_err() {
                threaded::mark_packed_result(&mut self.code[at]);
            }
        }
    }

    fn pc(&self) -> u32 {
        self.code.len() as u32
    }

    /// Marks the current position as a branch target.
    fn set_label(&mut self) {
        self.label = self.code.len();
        self.new_fuel_block();
    }

    fn new_fuel_block(&mut self) {
        if self.fuel {
            self.fuel_at = Some(self.emit(Instr::ConsumeFuel { amount: 0 }));
            self.label = self.code.len();
        }
    }

    fn charge(&mut self) {
        if let Some(at) = self.fuel_at {
            if let Instr::ConsumeFuel { amount } = &mut self.code[at] {
                *amount = amount.saturating_add(1);
            }
        }
    }

    fn patch(&mut self, at: usize, to: u32) {
        let target = self.code[at].branch_target_mut().expect("patching a branch");
        *target = to;
    }

    /// A block's parameter and result counts, and which of them are v128.
    fn block_sig(info: &ModuleInfo, bt: BlockType) -> (u32, u32, Vec<bool>, Vec<bool>) {
        match bt {
            BlockType::Empty => (0, 0, Vec::new(), Vec::new()),
            BlockType::Type(t) => {
                let wide = if t == wasmparser::ValType::V128 { vec![true] } else { Vec::new() };
                (0, 1, Vec::new(), wide)
            }
            BlockType::FuncType(i) => {
                let t = &info.types[i as usize];
                let (p, r) = (t.params(), t.results());
                (p.len() as u32, r.len() as u32, wide_flags(p), wide_flags(r))
            }
        }
    }

    /// Pushes temps for `n` values whose v128 flags are `wide` (empty: none is).
    fn push_temps(&mut self, n: u32, wide: &[bool]) {
        for i in 0..n as usize {
            self.push_entry(Operand::Temp, wide.get(i).copied().unwrap_or(false));
        }
    }

    // ---- branches ----

    fn ctrl_index(&self, depth: u32) -> usize {
        self.ctrl.len() - 1 - depth as usize
    }

    /// (source, destination, wide) moving the branch values into the target's
    /// slots (the values have the target's types, so their widths lay them out).
    fn branch_moves(&self, ctrl: usize) -> impl Iterator<Item = (Source, Slot, bool)> + '_ {
        let c = &self.ctrl[ctrl];
        let arity = if c.kind == CtrlKind::Loop { c.params } else { c.results } as usize;
        let len = self.stack.len();
        let mut dst = c.base_slot;
        (0..arity).filter_map(move |i| {
            let pos = len - arity + i;
            let src = self.source(pos);
            let wide = self.stack[pos].wide;
            let d = dst;
            dst += 1 + wide as u32;
            (!matches!(src, Source::Slot(s) if s == d)).then_some((src, d, wide))
        })
    }

    fn emit_branch_moves(&mut self, ctrl: usize) {
        let moves: Vec<(Source, Slot, bool)> = self.branch_moves(ctrl).collect();
        for (src, dst, wide) in moves {
            self.emit_move(src, dst, wide);
        }
    }

    /// Emits the jump itself (after the moves).
    fn emit_jump(&mut self, ctrl: usize) {
        if self.ctrl[ctrl].kind == CtrlKind::Loop {
            let target = self.ctrl[ctrl].start;
            if !self.invert_exit_before_back_edge(target) {
                self.emit(Instr::Br { target });
            }
        } else {
            let at = self.emit(Instr::Br { target: 0 });
            self.ctrl[ctrl].fixups.push(at);
        }
    }

    /// A loop's back edge right after a conditional exit (`br_if $out (c); br
    /// $loop`): the conditional becomes the back edge, taken when `!c`, and the
    /// jump after it goes where the exit went. One dispatch per iteration instead
    /// of two; the way out takes the extra one.
    fn invert_exit_before_back_edge(&mut self, loop_start: u32) -> bool {
        if self.code.len() <= self.label {
            return false;
        }
        let at = self.code.len() - 1;
        let mut exit = self.code[at];
        let Some(&mut out) = exit.branch_target_mut() else { return false };
        // Not a jump, and not a branch that skips to where the back edge goes (the
        // jump would then target itself).
        if matches!(exit, Instr::Br { .. }) || out as usize == self.code.len() {
            return false;
        }
        // An `if`'s branch to its else/end stays as it is (it is patched as such).
        if self.ctrl.iter().any(|c| c.else_fixup == Some(at)) {
            return false;
        }
        let Some(back) = exit.negated_branch(loop_start) else { return false };
        self.code[at] = back;
        let jump = self.emit(Instr::Br { target: out });
        // If the exit still waits for its block's end, the jump waits instead.
        if let Some(fixup) = self.ctrl.iter_mut().rev().find_map(|c| c.fixups.iter_mut().find(|f| **f == at)) {
            *fixup = jump;
        }
        true
    }

    fn emit_return(&mut self, num_results: usize) {
        let len = self.stack.len();
        // A single result just computed into its temp is computed into slot 0 instead.
        if num_results == 1 && self.stack[len - 1].op == Operand::Temp && self.code.len() > self.label {
            let temp = self.slot_of(len - 1);
            if self.retarget_last(temp, 0) {
                self.emit(Instr::Return);
                return;
            }
        }
        // Results go to slots 0.. in order. Copying in ascending order is safe from
        // temps (their slots are above every destination) but not from low locals.
        let result_slots: u32 = (len - num_results..len).map(|p| 1 + self.stack[p].wide as u32).sum();
        if (len - num_results..len)
            .any(|p| matches!(self.stack[p].op, Operand::Local(l) if self.local_slot(l) < result_slots))
        {
            self.materialize_top(num_results);
        }
        // One result in a slot: copied by the return itself.
        if num_results == 1 && !self.stack[len - 1].wide {
            if let Source::Slot(src) = self.source(len - 1) {
                self.emit(if src == 0 { Instr::Return } else { Instr::ReturnSlot { src } });
                return;
            }
        }
        let mut dst = 0;
        for pos in len - num_results..len {
            let src = self.source(pos);
            let wide = self.stack[pos].wide;
            self.emit_move(src, dst, wide);
            dst += 1 + wide as u32;
        }
        self.emit(Instr::Return);
    }

    // ---- operators ----

    fn op(&mut self, info: &ModuleInfo, op: &Operator<'_>, offset: u64) -> Result<(), Error> {
        self.op_offset = offset as u32;
        if self.dead {
            self.dead_op(op);
            return Ok(());
        }
        self.charge();
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
                let c = self.ctrl_index(relative_depth);
                if self.branch_moves(c).next().is_none() {
                    if self.ctrl[c].kind == CtrlKind::Loop {
                        let target = self.ctrl[c].start;
                        self.emit_cond_branch(cond, false, target);
                    } else {
                        let at = self.emit_cond_branch(cond, false, 0);
                        self.ctrl[c].fixups.push(at);
                    }
                } else {
                    let skip = self.emit_cond_branch(cond, true, 0);
                    self.emit_branch_moves(c);
                    self.emit_jump(c);
                    let here = self.pc();
                    self.patch(skip, here);
                    self.set_label();
                }
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
                for &r in ty.results() {
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
                for &r in ty.results() {
                    self.push_temp_of(r);
                }
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
            Operator::MemoryGrow { .. } => {
                let delta = self.pop();
                let dst = self.push_temp();
                self.emit(Instr::MemoryGrow { dst, delta });
            }
            Operator::MemoryFill { .. } => {
                let base = self.take_consecutive(3);
                self.emit(Instr::MemoryFill { base });
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
            // SIMD last: scalar operators never pay for its match.
            ref other if self.simd(other) => {}
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

    /// The value of the operand `depth` places below the top, if it is a constant.
    fn const_at(&self, depth: usize) -> Option<u64> {
        match self.stack.get(self.stack.len().checked_sub(depth + 1)?)?.op {
            Operand::Const(v) => Some(v),
            _ => None,
        }
    }

    /// A load whose address is an `i32.add` just computed (and used by nothing
    /// else) takes the add's operands itself: `I32LoadIdx` and friends.
    fn indexed_load(&mut self, op: &Operator<'_>) -> bool {
        let (width, memarg) = match *op {
            Operator::I32Load { memarg } | Operator::F32Load { memarg } => (4, memarg),
            Operator::I64Load { memarg } | Operator::F64Load { memarg } => (8, memarg),
            Operator::I32Load8U { memarg } => (1, memarg),
            _ => return false,
        };
        if self.code.len() <= self.label || self.stack.is_empty() {
            return false;
        }
        let Some(&Instr::I32Add { dst: sum, lhs, rhs }) = self.code.last() else { return false };
        let top = self.stack.len() - 1;
        if self.stack[top].op != Operand::Temp || self.stack[top].slot != sum || lhs > 0xffff || rhs > 0xffff {
            return false;
        }
        let Ok(offset) = u32::try_from(memarg.offset) else { return false };
        self.pop_instr();
        self.stack.pop();
        let dst = self.push_temp();
        let bi = lhs | rhs << 16;
        self.emit(match width {
            4 => Instr::I32LoadIdx { dst, bi, offset },
            8 => Instr::I64LoadIdx { dst, bi, offset },
            _ => Instr::I32Load8UIdx { dst, bi, offset },
        });
        true
    }

    /// Merges an `I32AddImm` into an `I32AddImm` just emitted (same block, both
    /// fitting the packed form) as one `I32AddImm2`; they still run in order.
    fn merge_add_imm(&mut self, next: Instr) -> bool {
        let Instr::I32AddImm { dst: d2, lhs: s2, imm: i2 } = next else { return false };
        if self.code.len() <= self.label {
            return false;
        }
        let Some(&Instr::I32AddImm { dst: d1, lhs: s1, imm: i1 }) = self.code.last() else { return false };
        let fits = |i: i32| i16::try_from(i).is_ok();
        if !fits(i1) || !fits(i2) || [d1, s1, d2, s2].iter().any(|s| *s > 0xffff) {
            return false;
        }
        let last = self.code.last_mut().expect("checked above");
        *last = Instr::I32AddImm2 {
            first: d1 | s1 << 16,
            second: d2 | s2 << 16,
            imms: (i1 as u16 as u32) | (i2 as u16 as u32) << 16,
        };
        true
    }

    /// An f64 `+ - * /` with one constant operand (e.g. `1.0 / x`, `x * 0.5`) as
    /// one instruction carrying the constant, instead of a `Const` and the operator.
    fn float_const_operand(&mut self, base: &Instr) -> bool {
        let n = self.stack.len();
        let (lhs_k, rhs_k) = (self.const_at(1), self.const_at(0));
        let (k, k_is_rhs) = match (lhs_k, rhs_k) {
            (None, Some(k)) => (k, true),
            (Some(k), None) => (k, false),
            _ => return false,
        };
        if !matches!(base, Instr::F64Add { .. } | Instr::F64Sub { .. } | Instr::F64Mul { .. } | Instr::F64Div { .. }) {
            return false;
        }
        let x = if k_is_rhs { n - 2 } else { n - 1 };
        let src = match self.source(x) {
            Source::Slot(s) => s,
            Source::Const(_) => return false,
        };
        // `k / f64(u32 y)` with the conversion just computed: one instruction.
        let converted = match self.producer_of(x) {
            Some(Instr::F64ConvertI32U { src, .. }) if matches!(base, Instr::F64Div { .. }) && !k_is_rhs => Some(src),
            _ => None,
        };
        // The result takes the slot of the lower operand's position.
        let dst = self.slot_of(n - 2);
        if src > 0xffff || dst > 0xffff || converted.is_some_and(|y| y > 0xffff) {
            return false;
        }
        self.stack.truncate(n - 2);
        let pushed = self.push_temp();
        debug_assert_eq!(pushed, dst);
        if let Some(y) = converted {
            self.replace_last(Instr::F64KDivU32 { ds: dst | y << 16, k });
            return true;
        }
        let ds = dst | src << 16;
        self.emit(match (base, k_is_rhs) {
            (Instr::F64Add { .. }, _) => Instr::F64AddK { ds, k },
            (Instr::F64Mul { .. }, _) => Instr::F64MulK { ds, k },
            (Instr::F64Sub { .. }, true) => Instr::F64SubK { ds, k },
            (Instr::F64Sub { .. }, false) => Instr::F64KSub { ds, k },
            (Instr::F64Div { .. }, true) => Instr::F64DivK { ds, k },
            _ => Instr::F64KDiv { ds, k },
        });
        true
    }

    /// `f64.add` or `f64.sub` of an `f64.mul` just computed and another value
    /// becomes one `F64MulAdd`, `F64MulSub` or `F64SubMul` (the product's temp
    /// feeds nothing else: temps are used once).
    fn fused_multiply_add(&mut self, op: &Operator<'_>) -> bool {
        if !matches!(op, Operator::F64Add | Operator::F64Sub) || self.code.len() <= self.label || self.stack.len() < 2 {
            return false;
        }
        let Some(&Instr::F64Mul { dst: product, lhs: a, rhs: b }) = self.code.last() else { return false };
        let n = self.stack.len();
        // Which operand is the product (a temp in the mul's result slot)?
        let is_product = |e: &Entry| e.op == Operand::Temp && e.slot == product;
        let other = if is_product(&self.stack[n - 1]) {
            n - 2
        } else if is_product(&self.stack[n - 2]) {
            n - 1
        } else {
            return false;
        };
        if matches!(self.stack[other].op, Operand::Const(_)) || a > 0xffff || b > 0xffff {
            return false;
        }
        let c = match self.source(other) {
            Source::Slot(s) => s,
            Source::Const(_) => return false,
        };
        self.pop_instr();
        self.stack.truncate(n - 2);
        let dst = self.push_temp();
        let ab = a | b << 16;
        self.emit(match (op, other == n - 1) {
            (Operator::F64Add, _) => Instr::F64MulAdd { dst, ab, c },
            // The product is the left operand: a * b - c.
            (_, true) => Instr::F64MulSub { dst, ab, c },
            // The product is the right operand: c - a * b.
            (_, false) => Instr::F64SubMul { dst, ab, c },
        });
        true
    }

    /// Loads from a constant address and stores of a constant value, the common
    /// cases of compiled code's static data and initialisation, as one instruction.
    fn constant_memory_access(&mut self, op: &Operator<'_>) -> bool {
        match *op {
            Operator::I32Load { memarg }
            | Operator::F32Load { memarg }
            | Operator::I64Load { memarg }
            | Operator::F64Load { memarg }
            | Operator::I32Load8U { memarg } => {
                let Some(addr) = self.const_at(0) else { return false };
                let Ok(ea) = u32::try_from(addr as u32 as u64 + memarg.offset) else { return false };
                self.stack.pop();
                let dst = self.push_temp();
                self.emit(match op {
                    Operator::I32Load { .. } | Operator::F32Load { .. } => Instr::I32LoadAt { dst, ea },
                    Operator::I64Load { .. } | Operator::F64Load { .. } => Instr::I64LoadAt { dst, ea },
                    _ => Instr::I32Load8UAt { dst, ea },
                });
                true
            }
            // A constant address and a value in a slot.
            Operator::I32Store { memarg }
            | Operator::F32Store { memarg }
            | Operator::I64Store { memarg }
            | Operator::F64Store { memarg }
            | Operator::I32Store8 { memarg }
                if self.const_at(0).is_none() && self.const_at(1).is_some() =>
            {
                let addr = self.const_at(1).expect("checked above");
                let Ok(ea) = u32::try_from(addr as u32 as u64 + memarg.offset) else { return false };
                let value = self.pop();
                self.stack.pop();
                self.emit(match op {
                    Operator::I32Store { .. } | Operator::F32Store { .. } => Instr::I32StoreAt { value, ea },
                    Operator::I64Store { .. } | Operator::F64Store { .. } => Instr::I64StoreAt { value, ea },
                    _ => Instr::I32Store8At { value, ea },
                });
                true
            }
            Operator::I32Store { memarg } | Operator::I64Store { memarg } | Operator::I32Store8 { memarg } => {
                let Some(v) = self.const_at(0) else { return false };
                let value = match op {
                    Operator::I64Store { .. } => match i32::try_from(v as i64) {
                        Ok(x) => x,
                        Err(_) => return false,
                    },
                    _ => v as u32 as i32,
                };
                self.stack.pop();
                let addr = self.pop();
                let offset = memarg.offset as u32;
                self.emit(match op {
                    Operator::I32Store { .. } => Instr::I32StoreImm { addr, value, offset },
                    Operator::I64Store { .. } => Instr::I64StoreImm { addr, value, offset },
                    _ => Instr::I32Store8Imm { addr, value, offset },
                });
                true
            }
            _ => false,
        }
    }

    fn constant(&mut self, value: u64) {
        self.push(Operand::Const(value));
    }

    /// Pushes a v128 constant, written to its temp right away (two `Const`s).
    fn v128_const(&mut self, value: u128) {
        let dst = self.push_temp_wide();
        self.emit(Instr::Const { dst, value: value as u64 });
        self.emit(Instr::Const { dst: dst + 1, value: (value >> 64) as u64 });
    }

    /// Pops `n` operands into consecutive slots and returns the first slot.
    fn take_consecutive(&mut self, n: usize) -> Slot {
        self.materialize_top(n);
        let base = self.slot_at(self.stack.len() - n);
        self.stack.truncate(self.stack.len() - n);
        base
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

    fn else_(&mut self) {
        let c = self.ctrl.len() - 1;
        if !self.dead {
            let n = self.ctrl[c].results as usize;
            self.materialize_top(n);
            let at = self.emit(Instr::Br { target: 0 });
            self.ctrl[c].fixups.push(at);
        }
        if let Some(at) = self.ctrl[c].else_fixup.take() {
            let here = self.pc();
            self.patch(at, here);
        }
        self.set_label();
        let ctrl = &mut self.ctrl[c];
        ctrl.kind = CtrlKind::Else;
        let (height, params) = (ctrl.height, ctrl.params);
        let params_wide = std::mem::take(&mut ctrl.params_wide);
        self.stack.truncate(height);
        self.push_temps(params, &params_wide);
        self.dead = false;
    }

    fn end(&mut self) {
        if self.ctrl.len() == 1 {
            return self.end_function();
        }
        if !self.dead {
            let n = self.ctrl.last().map_or(0, |c| c.results) as usize;
            self.materialize_top(n);
        }
        let ctrl = self.ctrl.pop().expect("validated: end matches a block");
        let here = self.pc();
        if let Some(at) = ctrl.else_fixup {
            self.patch(at, here);
        }
        for &at in &ctrl.fixups {
            self.patch(at, here);
        }
        self.set_label();
        self.stack.truncate(ctrl.height);
        self.push_temps(ctrl.results, &ctrl.results_wide);
        self.dead = false;
    }

    /// The function body's `end`: return straight from the operands on the
    /// fall-through path; branches to the end land on a return from the
    /// canonical result slots.
    fn end_function(&mut self) {
        let ctrl = self.ctrl.pop().expect("the function block");
        let n = ctrl.results as usize;
        if !self.dead {
            self.emit_return(n);
        }
        if !ctrl.fixups.is_empty() {
            let here = self.pc();
            for &at in &ctrl.fixups {
                self.patch(at, here);
            }
            self.set_label();
            self.stack.truncate(ctrl.height);
            self.push_temps(ctrl.results, &ctrl.results_wide);
            self.emit_return(n);
        }
        self.dead = true;
    }

    /// Operators in unreachable code: only the block structure matters.
    fn dead_op(&mut self, op: &Operator<'_>) {
        match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                self.ctrl.push(Ctrl {
                    kind: CtrlKind::Block,
                    height: self.stack.len(),
                    base_slot: 0,
                    params: 0,
                    results: 0,
                    params_wide: Vec::new(),
                    results_wide: Vec::new(),
                    start: 0,
                    fixups: Vec::new(),
                    else_fixup: None,
                    dead_entry: true,
                });
            }
            Operator::Else if !self.ctrl.last().is_some_and(|c| c.dead_entry) => self.else_(),
            Operator::End => {
                if self.ctrl.last().is_some_and(|c| c.dead_entry) {
                    self.ctrl.pop();
                } else {
                    self.end();
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::code::Instr;
    use super::threaded;
    use crate::{Engine, Module};

    fn code(wat: &str) -> Vec<Instr> {
        code_of(wat, 0)
    }

    /// The code of defined function `index`.
    fn code_of(wat: &str, index: u32) -> Vec<Instr> {
        let m = Module::new(&Engine::default(), wat).unwrap();
        m.inner.func_code(index).unwrap().instrs()
    }

    /// A store and an instance of `wat`, to call its exports.
    fn instantiate(wat: &str) -> (crate::Store<()>, crate::Instance) {
        let engine = Engine::default();
        let module = Module::new(&engine, wat).unwrap();
        let mut store = crate::Store::new(&engine, ());
        let instance = crate::Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        (store, instance)
    }

    #[test]
    #[ignore]
    fn dump() {
        // DUMP_WAT=path (text or binary): prints every function's code.
        let path = std::env::var("DUMP_WAT").unwrap();
        let m = Module::new(&Engine::default(), std::fs::read(path).unwrap()).unwrap();
        for f in 0..m.inner.code.len() {
            let func = m.inner.func_code(f as u32).unwrap();
            println!("func {f}: frame {} entry {}", func.frame_size, func.entry);
            // Branch targets as indices; the accumulator's marks spelled out.
            for (i, x) in func.instrs().iter().enumerate() {
                let mut acc = String::new();
                threaded::acc_marks(x, |bit, slot| {
                    let what = if bit == threaded::ACC_DST { "result" } else { "operand" };
                    acc += &format!("  [{what} {slot} in the accumulator]");
                });
                println!("{:4} {x:?}{acc}", i + func.entry as usize);
            }
        }
    }

    #[test]
    fn local_get_is_folded_and_local_set_retargets() {
        let c = code(
            r#"(module (func (param i32 i32) (result i32) (local i32)
                (local.set 2 (i32.add (local.get 0) (local.get 1)))
                (local.get 2)))"#,
        );
        // add writes the local directly; the return copies it to slot 0.
        assert!(matches!(c[0], Instr::I32Add { dst: 2, lhs: 0, rhs: 1 }), "{c:?}");
        assert!(matches!(c[1], Instr::ReturnSlot { src: 2 }), "{c:?}");
        assert_eq!(c.len(), 2, "{c:?}");
    }

    #[test]
    fn multiply_then_add_or_subtract_is_one_instruction_with_two_roundings() {
        let c = code(
            r#"(module (func (param f64 f64 f64) (result f64)
                (f64.add (local.get 2) (f64.mul (local.get 0) (local.get 1)))))"#,
        );
        assert!(matches!(c[0], Instr::F64MulAdd { ab: 0x1_0000, c: 2, .. }), "{c:?}");
        // Executed: two roundings, as f64.mul then f64.add (a fused multiply-add
        // would give 5.55e-17 for 0.1 * 10 - 1), in every operand order.
        let wat = r#"(module
            (func (export "add_r") (param f64 f64 f64) (result f64) (f64.add (local.get 2) (f64.mul (local.get 0) (local.get 1))))
            (func (export "add_l") (param f64 f64 f64) (result f64) (f64.add (f64.mul (local.get 0) (local.get 1)) (local.get 2)))
            (func (export "mul_sub") (param f64 f64 f64) (result f64) (f64.sub (f64.mul (local.get 0) (local.get 1)) (local.get 2)))
            (func (export "sub_mul") (param f64 f64 f64) (result f64) (f64.sub (local.get 2) (f64.mul (local.get 0) (local.get 1)))))"#;
        let (mut store, instance) = instantiate(wat);
        let call = |store: &mut crate::Store<()>, name: &str, x: f64, y: f64, z: f64| {
            instance.get_typed_func::<(f64, f64, f64), f64>(&*store, name).unwrap().call(store, (x, y, z)).unwrap()
        };
        assert_eq!(call(&mut store, "add_r", 0.1, 10.0, -1.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(call(&mut store, "add_l", 0.1, 10.0, -1.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(call(&mut store, "mul_sub", 0.1, 10.0, 1.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(call(&mut store, "sub_mul", 0.1, 10.0, 1.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(call(&mut store, "mul_sub", 3.0, 4.0, 2.0), 10.0);
        assert_eq!(call(&mut store, "sub_mul", 3.0, 4.0, 2.0), -10.0);
        assert!(call(&mut store, "add_l", f64::INFINITY, 0.0, 1.0).is_nan());
    }

    #[test]
    fn a_bounds_check_on_a_sum_is_one_branch() {
        let wat = r#"(module
            (func (export "ge") (param i32 i32 i32) (result i32)
                (block (br_if 0 (i32.ge_u (i32.add (local.get 0) (local.get 1)) (local.get 2)))
                    (return (i32.const 0)))
                (i32.const 1))
            (func (export "lt") (param i32 i32 i32) (result i32)
                (if (result i32) (i32.ge_u (i32.add (local.get 0) (local.get 1)) (local.get 2))
                    (then (i32.const 1)) (else (i32.const 0))))
            (func (export "kept") (param i32 i32 i32) (result i32) (local i32)
                (block (br_if 0 (i32.ge_u (local.tee 3 (i32.add (local.get 0) (local.get 1))) (local.get 2))))
                (local.get 3)))"#;
        let c = code(wat);
        assert!(matches!(c[0], Instr::BrI32AddGeU { ab: 0x1_0000, .. }), "{c:?}");
        // `if` branches to its else arm when the condition fails: the negated form.
        let lt = code_of(wat, 1);
        assert!(matches!(lt[0], Instr::BrI32AddLtU { ab: 0x1_0000, .. }), "{lt:?}");
        // A sum that is also kept in a local (the common shape: an index checked,
        // then used) is written there by the same instruction.
        let kept = code_of(wat, 2);
        assert!(matches!(kept[0], Instr::BrI32AddGeU { ab: 0x1_0000, dr: 0x2_0003, .. }), "{kept:?}");
        let (mut store, instance) = instantiate(wat);
        for name in ["ge", "lt"] {
            let f = instance.get_typed_func::<(i32, i32, i32), i32>(&store, name).unwrap();
            assert_eq!(f.call(&mut store, (2, 3, 5)).unwrap(), 1, "{name}: 2 + 3 >= 5");
            assert_eq!(f.call(&mut store, (2, 2, 5)).unwrap(), 0, "{name}: 2 + 2 < 5");
            // The sum wraps at 32 bits: (2^32 - 1) + 2 = 1.
            assert_eq!(f.call(&mut store, (-1, 2, 5)).unwrap(), 0, "{name}: wrapped sum 1 < 5");
            assert_eq!(f.call(&mut store, (-1, 2, 1)).unwrap(), 1, "{name}: wrapped sum 1 >= 1");
        }
        let kept = instance.get_typed_func::<(i32, i32, i32), i32>(&store, "kept").unwrap();
        assert_eq!(kept.call(&mut store, (2, 3, 0)).unwrap(), 5);
    }

    /// Locals written before any read start with whatever the stack held (no
    /// zeroing); those some path reads first must still read zero, however dirty
    /// the stack is from earlier calls, whether called by wasm or by the host.
    #[test]
    fn only_locals_read_before_written_are_zeroed_and_they_read_zero() {
        let wat = r#"(module
            (func $dirty (param i64) (local i64 i64 i64 i64 i64 i64)
                (local.set 1 (local.get 0)) (local.set 2 (local.get 0)) (local.set 3 (local.get 0))
                (local.set 4 (local.get 0)) (local.set 5 (local.get 0)) (local.set 6 (local.get 0)))
            ;; local 1 is written first; local 2 only on one path; local 3 first read in a loop.
            (func $reads (export "reads") (param i32) (result i64) (local i64 i64 i64)
                (local.set 1 (i64.const 5))
                (if (local.get 0) (then (local.set 2 (i64.const 7))))
                (loop $l (if (i64.eqz (local.get 3)) (then (local.set 3 (i64.const 1)) (br $l))))
                (i64.add (i64.add (local.get 1) (local.get 2)) (local.get 3)))
            (func (export "dirty_then_reads") (param i32) (result i64)
                (call $dirty (i64.const -1))
                (call $reads (local.get 0)))
            (func (export "dirty") (call $dirty (i64.const -1))))"#;
        let reads = code_of(wat, 1);
        assert!(matches!(reads[0], Instr::ZeroLocals { start: 2, count: 2 }), "{reads:?}");
        assert!(!code_of(wat, 0).iter().any(|i| matches!(i, Instr::ZeroLocals { .. })));
        let (mut store, instance) = instantiate(wat);
        let f = instance.get_typed_func::<i32, i64>(&store, "dirty_then_reads").unwrap();
        assert_eq!(f.call(&mut store, 0).unwrap(), 6);
        assert_eq!(f.call(&mut store, 1).unwrap(), 13);
        let dirty = instance.get_typed_func::<(), ()>(&store, "dirty").unwrap();
        let reads = instance.get_typed_func::<i32, i64>(&store, "reads").unwrap();
        dirty.call(&mut store, ()).unwrap();
        assert_eq!(reads.call(&mut store, 0).unwrap(), 6);
    }

    /// An operator whose operand the instruction just before computed (into a
    /// temp nothing else reads) takes over that instruction: one dispatch instead
    /// of two, with the same results, wrapping and traps.
    #[test]
    fn a_consumer_absorbs_the_instruction_that_computed_its_operand() {
        let wat = r#"(module (memory 1) (global $sp (mut i32) (i32.const 1024))
            (data (i32.const 0) "\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\10\11\12\13\14\15\16\17\18")
            (func (export "rotl_xor") (param i32 i32) (result i32)
                (i32.xor (i32.rotl (local.get 0) (i32.const 7)) (local.get 1)))
            (func (export "rotr_xor64") (param i64 i64) (result i64)
                (i64.xor (local.get 1) (i64.rotr (local.get 0) (i64.const 13))))
            (func (export "xor_rotr") (param i32 i32) (result i32)
                (i32.rotr (i32.xor (local.get 0) (local.get 1)) (i32.const 5)))
            (func (export "xor_rotl64") (param i64 i64) (result i64)
                (i64.rotl (i64.xor (local.get 0) (local.get 1)) (i64.const 32)))
            (func (export "add_shl") (param i32 i32) (result i32)
                (i32.add (local.get 0) (i32.shl (local.get 1) (i32.const 3))))
            (func (export "load") (param i32) (result i64)
                (i64.load (i32.add (local.get 0) (i32.const 16))))
            (func (export "copy") (param i32 i32)
                (i64.store offset=8 (local.get 1) (i64.load offset=16 (local.get 0))))
            (func (export "frame") (param i32) (result i32) (local i32)
                (global.set $sp (local.tee 1 (i32.sub (global.get $sp) (i32.const 32))))
                (i32.store (local.get 1) (local.get 0))
                (global.set $sp (i32.add (local.get 1) (i32.const 32)))
                (i32.add (i32.load (local.get 1)) (global.get $sp)))
            (func (export "add_shr_u") (param i32 i32) (result i32)
                (i32.add (i32.shr_u (local.get 1) (i32.const 4)) (local.get 0)))
            (func (export "inverse") (param i32) (result f64)
                (f64.div (f64.const 1) (f64.convert_i32_u (local.get 0))))
            (func (export "count_lt_u64") (param i32 i64 i64) (result i32)
                (i32.add (local.get 0) (i64.lt_u (local.get 1) (local.get 2))))
            (func (export "count_lt_s32") (param i32 i32 i32) (result i32)
                (i32.add (i32.lt_s (local.get 1) (local.get 2)) (local.get 0)))
            (func (export "copy_keep") (param i32 i32) (result i64) (local i64)
                (local.set 2 (i64.load offset=16 (local.get 0)))
                (i64.store offset=8 (local.get 1) (local.get 2))
                (local.get 2))
            (func (export "store_at_itself") (param i32) (result i32) (local i32)
                (local.set 1 (i32.load (local.get 0)))
                (i32.store (local.get 1) (local.get 1))
                (i32.load (local.get 1))))"#;
        let has = |f: u32, what: fn(&Instr) -> bool| {
            let c = code_of(wat, f);
            assert!(c.iter().any(what), "function {f}: {c:?}");
        };
        has(0, |i| matches!(i, Instr::I32RotlXor { k: 7, .. }));
        has(1, |i| matches!(i, Instr::I64RotlXor { k: 51, .. }));
        has(2, |i| matches!(i, Instr::I32XorRotl { k: 27, .. }));
        has(3, |i| matches!(i, Instr::I64XorRotl { k: 32, .. }));
        has(4, |i| matches!(i, Instr::I32AddShl { k: 3, .. }));
        has(5, |i| matches!(i, Instr::I64LoadAddImm { k: 16, .. }));
        has(6, |i| matches!(i, Instr::I64MemCopyWord { src_offset: 16, dst_offset: 8, .. }));
        has(7, |i| matches!(i, Instr::GlobalAddImm { k: -32, .. }));
        has(7, |i| matches!(i, Instr::GlobalSetAddImm { k: 32, .. }));
        has(8, |i| matches!(i, Instr::I32AddShrU { k: 4, .. }));
        has(9, |i| matches!(i, Instr::F64KDivU32 { .. }));
        has(10, |i| matches!(i, Instr::I32AddI64LtU { .. }));
        has(11, |i| matches!(i, Instr::I32AddI32LtS { .. }));
        has(12, |i| matches!(i, Instr::I64LoadThenStore { offsets: 0x8_0010, .. }));
        has(13, |i| matches!(i, Instr::I32LoadThenStore { .. }));

        let (mut store, instance) = instantiate(wat);
        let f32s = |store: &crate::Store<()>, name| instance.get_typed_func::<(i32, i32), i32>(store, name).unwrap();
        let f64s = |store: &crate::Store<()>, name| instance.get_typed_func::<(i64, i64), i64>(store, name).unwrap();
        let (a, b) = (0x8765_4321u32 as i32, 0x0f0f_1234);
        assert_eq!(f32s(&store, "rotl_xor").call(&mut store, (a, b)).unwrap(), (a as u32).rotate_left(7) as i32 ^ b);
        assert_eq!(f32s(&store, "xor_rotr").call(&mut store, (a, b)).unwrap(), ((a ^ b) as u32).rotate_right(5) as i32);
        let (x, y) = (0x0123_4567_89ab_cdef_i64, -77_i64);
        assert_eq!(
            f64s(&store, "rotr_xor64").call(&mut store, (x, y)).unwrap(),
            y ^ (x as u64).rotate_right(13) as i64
        );
        assert_eq!(
            f64s(&store, "xor_rotl64").call(&mut store, (x, y)).unwrap(),
            ((x ^ y) as u64).rotate_left(32) as i64
        );
        // Wraps at 32 bits.
        let add_shl = f32s(&store, "add_shl").call(&mut store, (-16, 0x2000_0003)).unwrap();
        assert_eq!(add_shl, (-16i32).wrapping_add(0x2000_0003 << 3));
        let add_shr_u = f32s(&store, "add_shr_u").call(&mut store, (-1, -16)).unwrap();
        assert_eq!(add_shr_u, (-1i32).wrapping_add(((-16i32) as u32 >> 4) as i32));
        let inverse = instance.get_typed_func::<i32, f64>(&store, "inverse").unwrap();
        // Unsigned: -1 converts to 2^32 - 1.
        assert_eq!(inverse.call(&mut store, -1).unwrap(), 1.0 / 4294967295.0);
        assert_eq!(inverse.call(&mut store, 0).unwrap(), f64::INFINITY);
        let count_lt_u64 = instance.get_typed_func::<(i32, i64, i64), i32>(&store, "count_lt_u64").unwrap();
        assert_eq!(count_lt_u64.call(&mut store, (-1, 1, -1)).unwrap(), 0, "unsigned: 1 < 2^64 - 1, and -1 + 1 wraps");
        assert_eq!(count_lt_u64.call(&mut store, (5, -1, 1)).unwrap(), 5);
        let count_lt_s32 = instance.get_typed_func::<(i32, i32, i32), i32>(&store, "count_lt_s32").unwrap();
        assert_eq!(count_lt_s32.call(&mut store, (5, -1, 1)).unwrap(), 6, "signed: -1 < 1");
        assert_eq!(count_lt_s32.call(&mut store, (5, 1, -1)).unwrap(), 5);
        let load = instance.get_typed_func::<i32, i64>(&store, "load").unwrap();
        assert_eq!(load.call(&mut store, 0).unwrap(), 0x1817_1615_1413_1211);
        // The address wraps before the bounds check: -8 + 16 is 8.
        assert_eq!(load.call(&mut store, -8).unwrap(), 0x100f_0e0d_0c0b_0a09);
        let oob = load.call(&mut store, 65536 - 16 - 7).unwrap_err();
        assert_eq!(oob.as_trap().map(|t| t.kind()), Some(crate::TrapKind::MemoryOutOfBounds));
        let copy_keep = instance.get_typed_func::<(i32, i32), i64>(&store, "copy_keep").unwrap();
        assert_eq!(copy_keep.call(&mut store, (0, 300)).unwrap(), 0x1817_1615_1413_1211);
        assert_eq!(load.call(&mut store, 308 - 16).unwrap(), 0x1817_1615_1413_1211);
        assert!(copy_keep.call(&mut store, (0, 65536 - 15)).is_err());
        // The store's address is the value just loaded: `frame` leaves 500 at 992.
        let store_at_itself = instance.get_typed_func::<i32, i32>(&store, "store_at_itself").unwrap();
        let frame = instance.get_typed_func::<i32, i32>(&store, "frame").unwrap();
        frame.call(&mut store, 500).unwrap();
        assert_eq!(store_at_itself.call(&mut store, 1024 - 32).unwrap(), 500);
        let copy = instance.get_typed_func::<(i32, i32), ()>(&store, "copy").unwrap();
        copy.call(&mut store, (0, 100)).unwrap();
        assert_eq!(load.call(&mut store, 108 - 16).unwrap(), 0x1817_1615_1413_1211);
        // A load out of bounds traps before the store writes anything.
        let before = load.call(&mut store, 200 - 16).unwrap();
        assert!(copy.call(&mut store, (65536, 192)).is_err());
        assert_eq!(load.call(&mut store, 200 - 16).unwrap(), before);
        assert!(copy.call(&mut store, (0, 65536 - 12)).is_err());
        // The frame's local and the stack pointer both move; the pointer is restored.
        let frame = instance.get_typed_func::<i32, i32>(&store, "frame").unwrap();
        assert_eq!(frame.call(&mut store, 5).unwrap(), 5 + 1024);
        assert_eq!(frame.call(&mut store, 6).unwrap(), 6 + 1024);
    }

    /// Constants that would each take an instruction to write to a slot ride
    /// along instead: a store's constant address, one constant arm of a select.
    #[test]
    fn constant_addresses_and_select_arms_are_carried_by_the_instruction() {
        let wat = r#"(module (memory 1)
            (func (export "put") (param i32 i64 f64)
                (i32.store offset=100 (i32.const 4) (local.get 0))
                (i64.store (i32.const 200) (local.get 1))
                (f64.store offset=8 (i32.const 200) (local.get 2))
                (i32.store8 (i32.const 300) (local.get 0)))
            (func (export "get") (param i32) (result i64)
                (i64.load (local.get 0)))
            (func (export "pick_a") (param i32 i64) (result i64)
                (select (i64.const -5) (local.get 1) (local.get 0)))
            (func (export "pick_b") (param i32 i32) (result i32)
                (select (local.get 1) (i32.const 7) (local.get 0)))
            (func (export "big") (param i32) (result i64)
                (select (i64.const 0x1_0000_0000) (i64.const 1) (local.get 0)))
            (func (export "far") (param i32)
                (i32.store offset=0xffff_fff0 (i32.const 0x20) (local.get 0))))"#;
        let put = code_of(wat, 0);
        let stores_at = put
            .iter()
            .filter(|i| matches!(i, Instr::I32StoreAt { .. } | Instr::I64StoreAt { .. } | Instr::I32Store8At { .. }));
        assert_eq!(stores_at.count(), 4, "{put:?}");
        assert!(!put.iter().any(|i| matches!(i, Instr::Const { .. })), "{put:?}");
        assert!(matches!(code_of(wat, 2)[0], Instr::SelectKA { k: -5, .. }));
        assert!(matches!(code_of(wat, 3)[0], Instr::SelectKB { k: 7, .. }));
        // Constants that do not fit an i32 (both arms constant here) stay in slots.
        assert!(code_of(wat, 4).iter().any(|i| matches!(i, Instr::Select { .. })));
        // Address + offset beyond 32 bits stays a plain store (it always traps).
        assert!(code_of(wat, 5).iter().any(|i| matches!(i, Instr::I32Store { .. })));

        let (mut store, instance) = instantiate(wat);
        let put = instance.get_typed_func::<(i32, i64, f64), ()>(&store, "put").unwrap();
        let get = instance.get_typed_func::<i32, i64>(&store, "get").unwrap();
        put.call(&mut store, (0x1234_5678, -2, 1.5)).unwrap();
        assert_eq!(get.call(&mut store, 104).unwrap() as u32, 0x1234_5678);
        assert_eq!(get.call(&mut store, 200).unwrap(), -2);
        assert_eq!(get.call(&mut store, 208).unwrap(), 1.5f64.to_bits() as i64);
        assert_eq!(get.call(&mut store, 300).unwrap() & 0xffff, 0x78);
        let pick_a = instance.get_typed_func::<(i32, i64), i64>(&store, "pick_a").unwrap();
        assert_eq!(pick_a.call(&mut store, (1, 9)).unwrap(), -5);
        assert_eq!(pick_a.call(&mut store, (0, 9)).unwrap(), 9);
        let pick_b = instance.get_typed_func::<(i32, i32), i32>(&store, "pick_b").unwrap();
        assert_eq!(pick_b.call(&mut store, (1, 9)).unwrap(), 9);
        assert_eq!(pick_b.call(&mut store, (0, 9)).unwrap(), 7);
        let big = instance.get_typed_func::<i32, i64>(&store, "big").unwrap();
        assert_eq!(big.call(&mut store, 1).unwrap(), 1 << 32);
        let far = instance.get_typed_func::<i32, ()>(&store, "far").unwrap();
        let trap = far.call(&mut store, 1).unwrap_err();
        assert_eq!(trap.as_trap().map(|t| t.kind()), Some(crate::TrapKind::MemoryOutOfBounds));
    }

    /// Two loads in a row become one instruction, unless a branch lands on the
    /// second; branch targets after a merge are renumbered; the second load's
    /// address may be the first one's result.
    #[test]
    fn adjacent_loads_merge_unless_a_branch_lands_between_them() {
        let wat = r#"(module (memory 1)
            (data (i32.const 0) "\08\00\00\00\00\00\00\00\2a\00\00\00\00\00\00\00")
            (func (export "sum_loop") (param i32 i32) (result i64) (local i64 i64)
                (loop $l
                    (local.set 2 (i64.load (local.get 0)))
                    (local.set 3 (i64.load offset=8 (local.get 0)))
                    (local.set 1 (i32.sub (local.get 1) (i32.const 1)))
                    (br_if $l (local.get 1)))
                (i64.add (local.get 2) (local.get 3)))
            (func (export "chase") (param i32) (result i32) (local i32)
                (local.set 1 (i32.load (local.get 0)))
                (i32.load (local.get 1)))
            (func (export "split") (param i32 i32) (result i32) (local i32 i32)
                (local.set 2 (i32.load (local.get 0)))
                (block $b (br_if $b (local.get 1)) (local.set 2 (i32.const 0)))
                (local.set 3 (i32.load offset=8 (local.get 0)))
                (i32.add (local.get 2) (local.get 3)))
            (func (export "store2") (param i32 i64 f64)
                (i64.store offset=16 (local.get 0) (local.get 1))
                (f64.store offset=24 (local.get 0) (local.get 2)))
            (func $neg (param i32) (result i32) (i32.sub (i32.const 0) (local.get 0)))
            (func (export "neg_of") (param i32 i32) (result i32)
                (i32.add (local.get 0) (call $neg (local.get 1)))))"#;
        let sum = code(wat);
        let merged = sum.iter().position(|i| matches!(i, Instr::I64Load2 { offsets: 0x8_0000, .. })).expect("merged");
        // The loop's back edge still lands on the loop's first instruction, the
        // merged load (targets count from the code's start, before the skipped
        // `ZeroLocals`: this function zeroes nothing).
        let lands = |i: &Instr| i.clone().branch_target_mut().is_some_and(|t| *t as usize == merged + 1);
        assert!(sum.iter().any(lands), "{sum:?}");
        assert!(code_of(wat, 1).iter().any(|i| matches!(i, Instr::I32Load2 { .. })));
        // The block's end is a branch target: the loads around it stay apart.
        let split = code_of(wat, 2);
        assert!(!split.iter().any(|i| matches!(i, Instr::I32Load2 { .. })), "{split:?}");

        assert!(code_of(wat, 3).iter().any(|i| matches!(i, Instr::I64Store2 { offsets: 0x18_0010, .. })));
        assert!(code_of(wat, 5).iter().any(|i| matches!(i, Instr::CallInternalCopy { def_index: 4, .. })));

        let (mut store, instance) = instantiate(wat);
        let store2 = instance.get_typed_func::<(i32, i64, f64), ()>(&store, "store2").unwrap();
        let load64 = instance.get_typed_func::<(i32, i32), i64>(&store, "sum_loop").unwrap();
        store2.call(&mut store, (100, 5, 2.0)).unwrap();
        assert_eq!(load64.call(&mut store, (116, 1)).unwrap(), 5 + 2f64.to_bits() as i64);
        // The first store happens even when the second traps.
        assert!(store2.call(&mut store, (65536 - 28, 6, 0.0)).is_err());
        assert_eq!(load64.call(&mut store, (65536 - 20, 1)).unwrap(), 6);
        let neg_of = instance.get_typed_func::<(i32, i32), i32>(&store, "neg_of").unwrap();
        assert_eq!(neg_of.call(&mut store, (10, 3)).unwrap(), 7);
        let sum = instance.get_typed_func::<(i32, i32), i64>(&store, "sum_loop").unwrap();
        assert_eq!(sum.call(&mut store, (0, 3)).unwrap(), 8 + 42);
        let trap = sum.call(&mut store, (65536 - 12, 3)).unwrap_err();
        assert_eq!(trap.as_trap().map(|t| t.kind()), Some(crate::TrapKind::MemoryOutOfBounds));
        let chase = instance.get_typed_func::<i32, i32>(&store, "chase").unwrap();
        assert_eq!(chase.call(&mut store, 0).unwrap(), 42);
        let split = instance.get_typed_func::<(i32, i32), i32>(&store, "split").unwrap();
        assert_eq!(split.call(&mut store, (0, 1)).unwrap(), 8 + 42);
        assert_eq!(split.call(&mut store, (0, 0)).unwrap(), 42);
    }

    /// A loop's step and a less-than exit test (either signedness, either
    /// polarity once the translator inverts the exit) are one branch too.
    #[test]
    fn a_loop_step_and_a_less_than_test_are_one_branch() {
        let wat = r#"(module
            (func (export "up_u") (param i32 i32) (result i32) (local i32)
                (local.set 2 (local.get 0))
                (loop $l
                    (local.set 2 (i32.add (local.get 2) (i32.const 3)))
                    (br_if $l (i32.lt_u (local.get 2) (local.get 1))))
                (local.get 2))
            (func (export "up_s") (param i32 i32) (result i32) (local i32)
                (local.set 2 (local.get 0))
                (block $out (loop $l
                    (local.set 2 (i32.add (local.get 2) (i32.const -2)))
                    (br_if $out (i32.ge_s (local.get 2) (local.get 1)))
                    (local.set 2 (i32.add (local.get 2) (i32.const 5)))
                    (br $l)))
                (local.get 2)))"#;
        let up_u = code_of(wat, 0);
        assert!(up_u.iter().any(|i| matches!(i, Instr::BrI32AddImmLtU { .. })), "{up_u:?}");
        let up_s = code_of(wat, 1);
        assert!(
            up_s.iter().any(|i| matches!(i, Instr::BrI32AddImmGeS { .. } | Instr::BrI32AddImmLtS { .. })),
            "{up_s:?}"
        );
        let (mut store, instance) = instantiate(wat);
        let up_u = instance.get_typed_func::<(i32, i32), i32>(&store, "up_u").unwrap();
        assert_eq!(up_u.call(&mut store, (0, 10)).unwrap(), 12);
        // Unsigned: -4 + 3 = -1 is not below 10, so one step only.
        assert_eq!(up_u.call(&mut store, (-4, 10)).unwrap(), -1);
        let up_s = instance.get_typed_func::<(i32, i32), i32>(&store, "up_s").unwrap();
        // Signed: -10 -> -12, -7 -> -9, -4 -> -6, -1 -> -3, 2 -> 0, 5 -> 3 (>= 1: out).
        assert_eq!(up_s.call(&mut store, (-10, 1)).unwrap(), 3);
        assert_eq!(up_s.call(&mut store, (100, 1)).unwrap(), 98);
    }

    /// The marks of the accumulator in `instr`: `(result slot, operand slot)`.
    fn acc_of(instr: &Instr) -> (Option<u32>, Option<u32>) {
        let (mut dst, mut op) = (None, None);
        threaded::acc_marks(instr, |bit, slot| {
            if bit == threaded::ACC_DST {
                dst = Some(slot);
            } else {
                op = Some(slot);
            }
        });
        (dst, op)
    }

    /// A temp that only the next instruction reads goes from one handler to the
    /// next in the accumulator (its producer and its consumer marked), as either
    /// operand, through chains, into branches and stores; results as before.
    #[test]
    fn a_temp_only_the_next_instruction_reads_goes_through_the_accumulator() {
        let wat = r#"(module (memory 1)
            (func (export "lhs") (param i32 i32 i32) (result i32)
                (i32.sub (i32.mul (local.get 0) (local.get 1)) (local.get 2)))
            (func (export "rhs") (param i32 i32 i32) (result i32)
                (i32.sub (local.get 2) (i32.mul (local.get 0) (local.get 1))))
            (func (export "chain") (param i32 i32 i32) (result i32)
                (i32.xor (i32.sub (i32.mul (local.get 0) (local.get 1)) (local.get 2)) (local.get 0)))
            (func (export "f64") (param f64 f64) (result f64)
                (f64.div (f64.sqrt (local.get 0)) (local.get 1)))
            (func (export "branch") (param i32) (result i32)
                (i32.store (i32.const 8) (i32.add (local.get 0) (i32.const 5)))
                (if (result i32) (i32.load (i32.and (local.get 0) (i32.const 0xfff8)))
                    (then (i32.const 1)) (else (i32.const 2)))))"#;
        let c = code_of(wat, 0);
        let t = acc_of(&c[0]).0.expect("the product goes to the accumulator");
        assert_eq!(acc_of(&c[1]), (None, Some(t)), "{c:?}");
        assert!(matches!(c[1], Instr::I32Sub { rhs: 2, .. }), "{c:?}");
        let c = code_of(wat, 1);
        assert!(matches!(c[1], Instr::I32Sub { lhs: 2, .. }) && acc_of(&c[1]).1.is_some(), "{c:?}");
        let c = code_of(wat, 2);
        assert!(acc_of(&c[1]).0.is_some() && acc_of(&c[1]).1.is_some(), "the middle of a chain: {c:?}");
        let c = code_of(wat, 4);
        assert!(
            c.iter().any(|i| matches!(i, Instr::BrIfEqz { .. } | Instr::BrIfNez { .. }) && acc_of(i).1.is_some()),
            "{c:?}"
        );

        let (mut store, instance) = instantiate(wat);
        let i3 = |store: &mut crate::Store<()>, name: &str, a: i32, b: i32, c: i32| {
            instance.get_typed_func::<(i32, i32, i32), i32>(&*store, name).unwrap().call(store, (a, b, c)).unwrap()
        };
        assert_eq!(i3(&mut store, "lhs", 6, 7, 2), 40);
        assert_eq!(i3(&mut store, "rhs", 6, 7, 2), -40);
        assert_eq!(i3(&mut store, "lhs", i32::MAX, 3, 0), i32::MAX.wrapping_mul(3));
        assert_eq!(i3(&mut store, "chain", 6, 7, 2), 40 ^ 6);
        let f = instance.get_typed_func::<(f64, f64), f64>(&store, "f64").unwrap();
        assert_eq!(f.call(&mut store, (16.0, 8.0)).unwrap(), 0.5);
        let branch = instance.get_typed_func::<i32, i32>(&store, "branch").unwrap();
        // Memory is zero but for the store to 8 (x + 5), read back when x & !7 is 8.
        assert_eq!(branch.call(&mut store, 3).unwrap(), 2);
        assert_eq!(branch.call(&mut store, 8).unwrap(), 1);
        assert_eq!(branch.call(&mut store, 9).unwrap(), 1);
        assert_eq!(branch.call(&mut store, 16).unwrap(), 2);
    }

    /// No accumulator where a branch lands between producer and consumer (a
    /// branch may land on the producer: the loop's head).
    #[test]
    fn the_accumulator_never_crosses_a_branch_target() {
        let wat = r#"(module (memory 1)
            (func (export "joined") (param i32 i32 i32) (result i32)
                (i32.sub (block (result i32)
                    (br_if 0 (i32.mul (local.get 0) (local.get 1)) (local.get 2))
                    (drop) (i32.const 100)) (local.get 2)))
            (data (i32.const 0) "\05")
            (func (export "loop") (param i32) (result i32) (local i32)
                (block $d (loop $l
                    (br_if $d (i32.ge_u (local.get 1) (i32.load (local.get 0))))
                    (local.set 1 (i32.add (local.get 1) (i32.const 1)))
                    (br $l)))
                (local.get 1)))"#;
        let c = code_of(wat, 0);
        let sub = c.iter().find(|i| matches!(i, Instr::I32Sub { .. })).expect("the subtraction");
        assert_eq!(acc_of(sub).1, None, "{c:?}");
        // The loop's head is a branch target: its load may still feed the test.
        let c = code_of(wat, 1);
        let test = c.iter().find(|i| matches!(i, Instr::BrI32GeU { .. })).expect("the loop test");
        assert!(acc_of(test).1.is_some(), "{c:?}");
        let (mut store, instance) = instantiate(wat);
        let joined = instance.get_typed_func::<(i32, i32, i32), i32>(&store, "joined").unwrap();
        assert_eq!(joined.call(&mut store, (6, 7, 1)).unwrap(), 41);
        assert_eq!(joined.call(&mut store, (6, 7, 0)).unwrap(), 100);
        let looped = instance.get_typed_func::<i32, i32>(&store, "loop").unwrap();
        // Counts up to the word at the address: 5 at 0, 0 at 4.
        assert_eq!(looped.call(&mut store, 0).unwrap(), 5);
        assert_eq!(looped.call(&mut store, 4).unwrap(), 0);
    }

    /// A fused consumer reads the accumulator in a half of its packed operand
    /// field; results as before.
    #[test]
    fn a_fused_consumer_reads_the_accumulator_in_a_packed_half() {
        let wat = r#"(module
            (func (export "kdiv") (param i32 i32) (result f64)
                (f64.div (f64.const 1) (f64.convert_i32_u (i32.mul (local.get 0) (local.get 1)))))
            (func (export "rotxor") (param i32 i32 i32) (result i32)
                (i32.xor (i32.rotl (i32.mul (local.get 0) (local.get 1)) (i32.const 5)) (local.get 2))))"#;
        for index in [0, 1] {
            let c = code_of(wat, index);
            let (p, f) = (&c[0], &c[1]);
            assert!(acc_of(p).0.is_some(), "{c:?}");
            assert_ne!(threaded::packed_form(f), 0, "{c:?}");
        }
        let (mut store, instance) = instantiate(wat);
        let kdiv = instance.get_typed_func::<(i32, i32), f64>(&store, "kdiv").unwrap();
        assert_eq!(kdiv.call(&mut store, (4, 2)).unwrap(), 0.125);
        // The product wraps, then converts as unsigned.
        assert_eq!(kdiv.call(&mut store, (-1, 1)).unwrap(), 1.0 / 4294967295.0);
        let rotxor = instance.get_typed_func::<(i32, i32, i32), i32>(&store, "rotxor").unwrap();
        let want = |a: i32, b: i32, c: i32| (a.wrapping_mul(b) as u32).rotate_left(5) as i32 ^ c;
        for (a, b, c) in [(3, 5, 7), (-1, 0x1234_5678, 0x0f0f), (i32::MIN, 3, -1)] {
            assert_eq!(rotxor.call(&mut store, (a, b, c)).unwrap(), want(a, b, c));
        }
    }

    /// An instruction that writes its result in a packed half passes it in the
    /// accumulator too: to a named operand, or to another packed half (the
    /// spectral-norm chain `1 / f64(u32 x)` then multiply-add).
    #[test]
    fn a_packed_result_goes_through_the_accumulator() {
        let wat = r#"(module
            (func (export "named") (param i32 f64) (result f64)
                (f64.sub (f64.div (f64.const 3) (f64.convert_i32_u (local.get 0))) (local.get 1)))
            (func (export "packed") (param i32 f64 f64) (result f64)
                (f64.add (local.get 2) (f64.mul (local.get 1) (f64.div (f64.const 1) (f64.convert_i32_u (local.get 0)))))))"#;
        for index in [0, 1] {
            let c = code_of(wat, index);
            let k = c.iter().find(|i| matches!(i, Instr::F64KDivU32 { .. })).expect("k / f64(u32 x)");
            assert_eq!(threaded::packed_form(k) & threaded::ACC_DST, threaded::ACC_DST, "{c:?}");
        }
        let (mut store, instance) = instantiate(wat);
        let named = instance.get_typed_func::<(i32, f64), f64>(&store, "named").unwrap();
        assert_eq!(named.call(&mut store, (4, 0.25)).unwrap(), 0.5);
        assert_eq!(named.call(&mut store, (-1, 0.0)).unwrap(), 3.0 / 4294967295.0);
        let packed = instance.get_typed_func::<(i32, f64, f64), f64>(&store, "packed").unwrap();
        assert_eq!(packed.call(&mut store, (4, 2.0, 1.0)).unwrap(), 1.5);
        assert!(packed.call(&mut store, (0, 2.0, 1.0)).unwrap().is_infinite());
    }

    /// Packed halves are marked only where no slot can be `0xffff`; elsewhere
    /// the producer's mark is undone too.
    #[test]
    fn packed_halves_are_marked_only_in_small_frames() {
        use threaded::ACC;
        let mut t = super::Translator::new(&crate::engine::Config::default());
        let pair =
            [Instr::I32Mul { dst: ACC | 6, lhs: 0, rhs: 1 }, Instr::I32AddShrU { dst: 7, ab: 2 | 6 << 16, k: 1 }];
        t.code = vec![pair[0], pair[1], Instr::Return];
        t.check_acc(true);
        assert_eq!(t.code[1], Instr::I32AddShrU { dst: 7, ab: 2 | threaded::PACKED_ACC << 16, k: 1 });
        assert_eq!(t.code[0], pair[0]);
        t.code = vec![pair[0], pair[1], Instr::Return];
        t.check_acc(false);
        assert_eq!(t.code[1], pair[1]);
        assert_eq!(t.code[0], Instr::I32Mul { dst: 6, lhs: 0, rhs: 1 });
        // Read twice (both halves): no mark.
        let twice = Instr::I32AddShrU { dst: 7, ab: 6 | 6 << 16, k: 1 };
        t.code = vec![pair[0], twice, Instr::Return];
        t.check_acc(true);
        assert_eq!(t.code[1], twice);
        assert_eq!(t.code[0], Instr::I32Mul { dst: 6, lhs: 0, rhs: 1 });
    }

    /// `check_acc` keeps a producer and its consumer, and unmarks a slot whose
    /// marks do not pair up (consumer not right after, or a branch target).
    #[test]
    fn unpaired_accumulator_marks_are_undone() {
        use threaded::ACC;
        let mut t = super::Translator::new(&crate::engine::Config::default());
        let kept = [Instr::I32Mul { dst: ACC | 5, lhs: 0, rhs: 1 }, Instr::I32Sub { dst: 6, lhs: ACC | 5, rhs: 2 }];
        t.code = vec![Instr::ZeroLocals { start: 0, count: 0 }, kept[0], kept[1], Instr::Return];
        t.check_acc(true);
        assert_eq!(&t.code[1..3], &kept[..]);
        // Separated by a copy: both become slot 5 again.
        t.code = vec![kept[0], Instr::Copy { dst: 7, src: 0 }, kept[1], Instr::Return];
        t.check_acc(true);
        assert_eq!(t.code[0], Instr::I32Mul { dst: 5, lhs: 0, rhs: 1 });
        assert_eq!(t.code[2], Instr::I32Sub { dst: 6, lhs: 5, rhs: 2 });
        // A branch lands on the consumer.
        t.code = vec![kept[0], kept[1], Instr::Br { target: 1 }, Instr::Return];
        t.check_acc(true);
        assert_eq!(t.code[1], Instr::I32Sub { dst: 6, lhs: 5, rhs: 2 });
        assert_eq!(t.code[0], Instr::I32Mul { dst: 5, lhs: 0, rhs: 1 });
    }

    /// A loop tested at the top gets its test at the bottom too (fused with the
    /// step): one dispatch fewer per round, same results, however many rounds.
    #[test]
    fn a_loop_tested_at_the_top_is_also_tested_at_the_bottom() {
        let wat = r#"(module
            (func (export "sum") (param i32) (result i32) (local i32 i32)
                (block $d (loop $l
                    (br_if $d (i32.ge_u (local.get 1) (local.get 0)))
                    (local.set 2 (i32.add (local.get 2) (local.get 1)))
                    (local.set 1 (i32.add (local.get 1) (i32.const 1)))
                    (br $l)))
                (local.get 2))
            (func (export "table") (param i32) (result i32) (local i32)
                (block $d (loop $l
                    (br_if $d (i32.ge_u (local.get 1) (local.get 0)))
                    (local.set 1 (i32.add (local.get 1) (i32.const 1)))
                    (block $a (block $b
                        (br_table $a $b $l (i32.rem_u (local.get 1) (i32.const 3))))
                      (local.set 1 (i32.add (local.get 1) (i32.const 10))))
                    (br $l)))
                (local.get 1)))"#;
        let sum = code(wat);
        assert!(!sum.iter().any(|i| matches!(i, Instr::Br { .. })), "{sum:?}");
        assert!(sum.iter().any(|i| matches!(i, Instr::BrI32AddImmLtU { .. })), "{sum:?}");
        let (mut store, instance) = instantiate(wat);
        let sum = instance.get_typed_func::<i32, i32>(&store, "sum").unwrap();
        for n in [0, 1, 2, 10] {
            assert_eq!(sum.call(&mut store, n).unwrap(), (0..n).sum::<i32>(), "n = {n}");
        }
        let table = instance.get_typed_func::<i32, i32>(&store, "table").unwrap();
        // The same loop in Rust: x % 3 == 0 leaves the inner blocks, 1 adds 10, 2 loops.
        for n in [0, 5, 40] {
            let mut x = 0i32;
            while x < n {
                x += 1;
                if x % 3 == 1 {
                    x += 10;
                }
            }
            assert_eq!(table.call(&mut store, n).unwrap(), x, "n = {n}");
        }
    }

    #[test]
    fn a_loop_step_and_its_exit_test_are_one_branch() {
        let wat = r#"(module
            (func (export "count") (param i32 i32) (result i32) (local i32)
                (loop $l
                    (local.set 2 (i32.add (local.get 2) (i32.const 1)))
                    (br_if $l (i32.ne (local.get 0) (local.get 2))))
                (local.get 2))
            (func (export "down") (param i32) (result i32) (local i32)
                (local.set 1 (i32.const 100))
                (loop $l
                    (local.set 1 (i32.add (local.get 1) (i32.const -3)))
                    (br_if $l (i32.ne (local.get 1) (local.get 0))))
                (local.get 1)))"#;
        let c = code(wat);
        // Local 2 is read before it is written: the function starts by zeroing it.
        assert!(matches!(c[0], Instr::ZeroLocals { start: 2, count: 1 }), "{c:?}");
        assert!(matches!(c[1], Instr::BrI32AddImmNe { ds: 0x2_0002, ki: 0x1_0000, target: 1 }), "{c:?}");
        let down = code_of(wat, 1);
        assert!(down.iter().any(|i| matches!(i, Instr::BrI32AddImmNe { ki, .. } if *ki == 0xfffd_0000)), "{down:?}");
        let (mut store, instance) = instantiate(wat);
        let count = instance.get_typed_func::<(i32, i32), i32>(&store, "count").unwrap();
        assert_eq!(count.call(&mut store, (1000, 0)).unwrap(), 1000);
        // Wraps at 32 bits like i32.add: counting to 0 goes all the way round.
        let down = instance.get_typed_func::<i32, i32>(&store, "down").unwrap();
        assert_eq!(down.call(&mut store, 1).unwrap(), 1);
        assert_eq!(down.call(&mut store, 97).unwrap(), 97);
    }

    #[test]
    fn f64_arithmetic_with_a_constant_carries_it() {
        let c = code(
            r#"(module (func (param f64) (result f64) (local f64)
                (local.set 1 (f64.div (f64.const 1) (local.get 0)))
                (f64.mul (local.get 1) (f64.const 0.5))))"#,
        );
        // 1/x retargeted into local 1, then local 1 * 0.5 straight into the result
        // slot: no Const instruction.
        assert!(matches!(c[0], Instr::F64KDiv { ds: 0x0_0001, k } if k == 1f64.to_bits()), "{c:?}");
        assert!(matches!(c[1], Instr::F64MulK { ds: 0x1_0000, .. }), "{c:?}");
        let wat = r#"(module
            (func (export "add") (param f64) (result f64) (f64.add (f64.const 0.25) (local.get 0)))
            (func (export "sub") (param f64) (result f64) (f64.sub (local.get 0) (f64.const 0.25)))
            (func (export "ksub") (param f64) (result f64) (f64.sub (f64.const 0.25) (local.get 0)))
            (func (export "mul") (param f64) (result f64) (f64.mul (local.get 0) (f64.const -3)))
            (func (export "div") (param f64) (result f64) (f64.div (local.get 0) (f64.const 4)))
            (func (export "kdiv") (param f64) (result f64) (f64.div (f64.const 1) (local.get 0))))"#;
        let (mut store, instance) = instantiate(wat);
        let mut call = |name: &str, x: f64| {
            instance.get_typed_func::<f64, f64>(&store, name).unwrap().call(&mut store, x).unwrap()
        };
        assert_eq!(call("add", 1.0), 1.25);
        assert_eq!(call("sub", 1.0), 0.75);
        assert_eq!(call("ksub", 1.0), -0.75);
        assert_eq!(call("mul", 2.0), -6.0);
        assert_eq!(call("div", 2.0), 0.5);
        assert_eq!(call("kdiv", 4.0), 0.25);
        assert_eq!(call("kdiv", -0.0), f64::NEG_INFINITY);
        assert_eq!(call("ksub", 0.25).to_bits(), 0.0f64.to_bits());
    }

    #[test]
    fn loop_steps_tested_against_zero_or_a_constant_are_one_branch() {
        let wat = r#"(module
            (func (export "down") (param $n i32) (result i32) (local $s i32)
                (loop $l
                    (local.set $s (i32.add (local.get $s) (local.get $n)))
                    (br_if $l (local.tee $n (i32.add (local.get $n) (i32.const -1)))))
                (local.get $s))
            (func (export "up") (param $i i32) (result i32) (local $s i32)
                (loop $l
                    (local.set $s (i32.add (local.get $s) (local.get $i)))
                    (local.set $i (i32.add (local.get $i) (i32.const 4)))
                    (br_if $l (i32.ne (local.get $i) (i32.const 256))))
                (local.get $s))
            (func (export "until") (param $i i32) (result i32)
                (block $b (loop $l
                    (local.set $i (i32.add (local.get $i) (i32.const 3)))
                    (br_if $b (i32.eq (local.get $i) (i32.const 30)))
                    (br_if $b (i32.eqz (local.get $i)))
                    (br $l)))
                (local.get $i)))"#;
        let down = code_of(wat, 0);
        assert!(down.iter().any(|i| matches!(i, Instr::BrI32AddImmNez { x: 0, imm: -1, .. })), "{down:?}");
        let up = code_of(wat, 1);
        assert!(up.iter().any(|i| matches!(i, Instr::BrI32AddImmNeImm { xk: 0x4_0000, n: 256, .. })), "{up:?}");
        let until = code_of(wat, 2);
        assert!(until.iter().any(|i| matches!(i, Instr::BrI32AddImmEqImm { xk: 0x3_0000, n: 30, .. })), "{until:?}");
        let (mut store, instance) = instantiate(wat);
        let call = |store: &mut crate::Store<()>, name: &str, x: i32| {
            instance.get_typed_func::<i32, i32>(&*store, name).unwrap().call(store, x).unwrap()
        };
        assert_eq!(call(&mut store, "down", 10), 55);
        assert_eq!(call(&mut store, "up", 0), (0..64).map(|i| i * 4).sum::<i32>());
        assert_eq!(call(&mut store, "until", 0), 30);
        // Wraps around 2^32 to stop at 0: -9 -> -6 -> -3 -> 0.
        assert_eq!(call(&mut store, "until", -9), 0);
    }

    #[test]
    fn a_byte_fill_loop_stores_and_advances_in_one_instruction() {
        // A sieve's inner loop: `*p = 7; p += step; j += step` while j < end.
        let wat = r#"(module (memory 1) (func (export "fill") (param $p i32) (param $end i32) (param $step i32) (local $j i32)
            (local.set $j (local.get $p))
            (loop $l
                (i32.store8 (local.get $p) (i32.const 7))
                (local.set $p (i32.add (local.get $step) (local.get $p)))
                (local.set $j (i32.add (local.get $j) (local.get $step)))
                (br_if $l (i32.lt_u (local.get $j) (local.get $end)))))
            (func (export "get") (param i32) (result i32) (i32.load8_u (local.get 0))))"#;
        let c = code(wat);
        assert!(c.contains(&Instr::I32Store8ImmStep { at_step: 0x2_0000, value: 7, offset: 0 }), "{c:?}");
        let (mut store, instance) = instantiate(wat);
        let fill = instance.get_typed_func::<(i32, i32, i32), ()>(&store, "fill").unwrap();
        let get = instance.get_typed_func::<i32, i32>(&store, "get").unwrap();
        fill.call(&mut store, (10, 40, 3)).unwrap();
        let bytes: Vec<i32> = (9..42).map(|a| get.call(&mut store, a).unwrap()).collect();
        let expected: Vec<i32> =
            (9..42).map(|a| if (10..40).contains(&a) && (a - 10) % 3 == 0 { 7 } else { 0 }).collect();
        assert_eq!(bytes, expected);
        // A store out of bounds traps before the pointer moves: nothing else written.
        let err = fill.call(&mut store, (65535, 65540, 1)).unwrap_err();
        assert_eq!(err.as_trap().map(|t| t.kind()), Some(crate::TrapKind::MemoryOutOfBounds));
        assert_eq!(get.call(&mut store, 65535).unwrap(), 7);
    }

    #[test]
    fn consecutive_add_immediates_merge_and_keep_their_order() {
        let wat = r#"(module (func (export "f") (param i32 i32) (result i32)
            (local.set 0 (i32.add (local.get 0) (i32.const 8)))
            (local.set 1 (i32.add (local.get 0) (i32.const -3)))
            (i32.add (local.get 1) (i32.const 70000))))"#;
        let c = code(wat);
        // The second reads what the first wrote; the third's immediate does not fit i16.
        assert!(matches!(c[0], Instr::I32AddImm2 { first: 0, second: 1, .. }), "{c:?}");
        assert!(matches!(c[1], Instr::I32AddImm { imm: 70000, .. }), "{c:?}");
        let (mut store, instance) = instantiate(wat);
        let f = instance.get_typed_func::<(i32, i32), i32>(&store, "f").unwrap();
        assert_eq!(f.call(&mut store, (1, 100)).unwrap(), 1 + 8 - 3 + 70000);
    }

    #[test]
    fn a_load_takes_the_add_that_computes_its_address() {
        let wat = r#"(module (memory 1) (data (i32.const 8) "\01\02\03\04\05\06\07\08\09")
            (func (export "f") (param i32 i32) (result i64)
                (i64.add
                  (i64.load offset=1 (i32.add (local.get 0) (local.get 1)))
                  (i64.extend_i32_u (i32.load8_u (i32.add (local.get 1) (i32.const 0)))))))"#;
        let c = code(wat);
        assert!(matches!(c[0], Instr::I64LoadIdx { bi: 0x1_0000, offset: 1, .. }), "{c:?}");
        let (mut store, instance) = instantiate(wat);
        let f = instance.get_typed_func::<(i32, i32), i64>(&store, "f").unwrap();
        assert_eq!(f.call(&mut store, (4, 3)).unwrap(), 0x0807060504030201);
        // The sum wraps at 32 bits before the offset is added, as i32.add does.
        assert_eq!(f.call(&mut store, (-1, 8)).unwrap(), 0x0807060504030201 + 1);
        assert!(f.call(&mut store, (65530, 0)).is_err(), "out of bounds traps");
    }

    #[test]
    fn consecutive_copies_merge_and_keep_their_order() {
        // A swap through a third local: three copies, the first two merged; run in
        // order, so the swap is right.
        let wat = r#"(module (func (export "f") (param i32 i32) (result i32) (local i32)
            (local.set 2 (local.get 0))
            (local.set 0 (local.get 1))
            (local.set 1 (local.get 2))
            (i32.sub (local.get 0) (local.get 1))))"#;
        let c = code(wat);
        assert!(matches!(c[0], Instr::CopyPair { .. }), "{c:?}");
        let (mut store, instance) = instantiate(wat);
        let f = instance.get_typed_func::<(i32, i32), i32>(&store, "f").unwrap();
        assert_eq!(f.call(&mut store, (10, 3)).unwrap(), 3 - 10);
    }

    #[test]
    fn a_loop_exit_before_the_back_edge_becomes_the_back_edge() {
        // Sums 1..=n with the exit test at the bottom, followed by more code; the
        // second loop ends in an `if` with an empty body (its branch must stay).
        let wat = r#"(module (func (export "f") (param i32) (result i32) (local i32 i32)
            (block $out
              (loop $l
                (local.set 1 (i32.add (local.get 1) (i32.const 1)))
                (local.set 2 (i32.add (local.get 2) (local.get 1)))
                (br_if $out (i32.ge_u (local.get 1) (local.get 0)))
                (br $l)))
            (block $done
              (loop $m
                (local.set 1 (i32.sub (local.get 1) (i32.const 1)))
                (br_if $done (i32.eqz (local.get 1)))
                (if (i32.const 0) (then))
                (br $m)))
            (i32.add (i32.mul (local.get 2) (i32.const 2)) (local.get 1))))"#;
        let c = code(wat);
        let back = c.iter().position(|i| matches!(i, Instr::BrI32LtU { target: 1, .. })).expect("inverted exit");
        assert!(matches!(c[back + 1], Instr::Br { target } if target as usize == back + 2), "{c:?}");
        let (mut store, instance) = instantiate(wat);
        let f = instance.get_typed_func::<i32, i32>(&store, "f").unwrap();
        assert_eq!(f.call(&mut store, 10).unwrap(), 2 * 55);
        assert_eq!(f.call(&mut store, 0).unwrap(), 2);
    }

    #[test]
    fn overwritten_local_is_copied_before_the_write() {
        let c = code(
            r#"(module (func (param i32) (result i32)
                (local.get 0)
                (local.set 0 (i32.const 7))
                (local.get 0)
                (i32.add)))"#,
        );
        // The pending read of local 0 is materialized before local 0 changes.
        let copy = c.iter().position(|i| matches!(i, Instr::Copy { dst: 1, src: 0 })).expect("copy");
        let set =
            c.iter().position(|i| matches!(i, Instr::Copy { dst: 0, .. } | Instr::Const { dst: 0, .. })).expect("set");
        assert!(copy < set, "{c:?}");
    }
}
