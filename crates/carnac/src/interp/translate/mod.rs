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
//!
//! Layout: this module holds the translator's state and the driver
//! (`translate`: locals, the operator loop, the final passes, the cells) and
//! the emission of code; `stack` the simulated operand stack; `control` blocks,
//! branches and returns; `lower` each operator's translation; `fuse` the
//! rewrites that fuse instructions; `acc` the accumulator's pairing and checks.

mod acc;
mod cast;
mod control;
mod fuse;
mod gc;
mod lower;
mod stack;
#[cfg(test)]
mod tests;

use wasmparser::{FuncValidator, FunctionBody, ValidatorResources};

use super::assign::Assignment;
use super::code::{pack_simd, unpack_simd, Cell, CompiledFunc, Handler, Instr, SimdOp, Slot};
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
    /// Emit `OsrPoint`s (`Strategy::Auto`), and the function they count for.
    tiering: bool,
    def_index: u32,
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
    /// The last access to a memory other than 0: the index of the
    /// `UseMemory { mem: 0 }` that ends it, and the memory (see `op`).
    other_memory: Option<(usize, u32)>,
    /// Whether the module has a 64-bit memory or table (memory64): only then
    /// does `lower` look for their operators (`lower64`).
    has64: bool,
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
    /// The catch clauses of the `try_table`s ended so far (innermost first),
    /// and those of the open ones, each with its `end` still 0 (see
    /// `CompiledFunc::handlers`).
    handlers: Vec<Handler>,
    open_handlers: Vec<(usize, Vec<Handler>)>,
}

/// Which indices of `code` (and the one past its end) a branch targets.
pub(super) fn branch_targets(code: &mut [Instr]) -> Vec<bool> {
    let mut is_target = vec![false; code.len() + 1];
    for instr in code {
        if let Some(&mut t) = instr.branch_target_mut() {
            is_target[t as usize] = true;
        }
    }
    is_target
}

/// Which of `types` are v128; empty when none is (the common case, no allocation).
pub(super) fn wide_flags(types: &[ValType]) -> Vec<bool> {
    if types.contains(&ValType::V128) {
        types.iter().map(|t| *t == ValType::V128).collect()
    } else {
        Vec::new()
    }
}

pub(super) fn err(offset: u64, message: impl Into<String>) -> Error {
    Error::Invalid { offset, message: message.into() }
}

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
            tiering: cfg!(carnac_compiled) && config.strategy == crate::Strategy::Auto,
            def_index: 0,
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
            other_memory: None,
            has64: false,
            pending_acc: None,
            packed_pairs: Vec::new(),
            fuel_at: None,
            frame_too_large: false,
            handlers: Vec::new(),
            open_handlers: Vec::new(),
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
        self.other_memory = None;
        self.has64 = info.memories.iter().any(|m| m.memory64) || info.tables.iter().any(|t| t.table64);
        self.pending_acc = None;
        self.packed_pairs.clear();
        self.fuel_at = None;
        self.frame_too_large = false;
        self.handlers.clear();
        self.open_handlers.clear();
        // Filled in at the end, once `assignment` has seen the whole body.
        self.emit(Instr::ZeroLocals { start: 0, count: 0 });
        self.label = self.code.len();
        self.new_fuel_block();
        if let Some(check) = self.check {
            self.emit(check);
        }
        self.def_index = func_index - info.num_imported_funcs;
        if self.tiering {
            self.emit(Instr::OsrPoint { def_index: self.def_index, offset: u32::MAX });
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
            // A relaxed SIMD instruction is translated as the instruction whose
            // result Carnac gives for it (`module::relaxed`).
            let op = crate::module::relaxed::deterministic(&op).unwrap_or(op);
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
            handlers: self.handlers.as_slice().into(),
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

    /// Makes the last instruction (if after the label, and if `from` is the only
    /// slot it writes) write `to` instead. SIMD instructions pack their result
    /// slot, so they are retargeted through `pack_simd`.
    pub(super) fn retarget_last(&mut self, from: Slot, to: Slot) -> bool {
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
    pub(super) fn emit_simd(&mut self, (op, lane, a, b, c): (SimdOp, u8, Slot, Slot, u32)) {
        match pack_simd(op, lane, a) {
            Some(head) => {
                self.emit(Instr::Simd { head, b, c });
            }
            None => self.frame_too_large = true,
        }
    }

    pub(super) fn emit(&mut self, instr: Instr) -> usize {
        self.code.push(instr);
        self.offsets.push(self.op_offset);
        self.link_acc();
        self.code.len() - 1
    }

    /// Removes the last instruction (a fusion replaces it), and its offset.
    pub(super) fn pop_instr(&mut self) -> Option<Instr> {
        self.offsets.pop();
        self.code.pop()
    }

    pub(super) fn pc(&self) -> u32 {
        self.code.len() as u32
    }

    pub(super) fn patch(&mut self, at: usize, to: u32) {
        let target = self.code[at].branch_target_mut().expect("patching a branch");
        *target = to;
    }
}
