//! Control structure: blocks, loops, `if`/`else`, `try_table` (its catch
//! clauses as landing pads and the function's handler table), `end`, branches (their value
//! moves, conditions fused with the comparison that produced them, the
//! inverted exit before a loop's back edge), returns, fuel blocks and labels
//! (where no rewrite may cross), unreachable code, and the loop rotation run
//! before the pairs are merged.
//!
//! Must not touch: accumulator marks (`acc`). It rewrites the last instruction
//! (a comparison a branch takes over, an exit inverted into a back edge) only
//! after `label`: no branch may land between the two.

use wasmparser::{BlockType, Operator};

use super::{wide_flags, Cond, Ctrl, CtrlKind, Operand, Source, Translator};
use crate::interp::code::{Handler, Instr, Slot, CATCH_ALL};
use crate::module::ModuleInfo;

impl Translator {
    /// A loop tested at the top (`t: if exit-condition goto e; body; goto t`,
    /// `e` right after the `goto`) gets its test at the bottom too: the `goto t`
    /// becomes `if !exit-condition goto t + 1`, falling through to `e`. The
    /// test at `t` still runs on entry; each round then takes one dispatch
    /// fewer (and the test may fuse with the step before it). The test's own
    /// effect, if it has one (a fused step), runs once either way: the new
    /// branch skips the one at `t`. Entries of a `br_table` stay as they are.
    pub(super) fn rotate_loops(&mut self) {
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

    /// Pops a branch condition, fusing it with the comparison that produced it
    /// when that comparison was the last instruction and feeds nothing else.
    pub(super) fn pop_cond(&mut self) -> Cond {
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

    /// `br_if` to `relative_depth` on `cond` (also `br_on_null`/`br_on_non_null`).
    pub(super) fn br_if(&mut self, cond: Cond, relative_depth: u32) {
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

    /// Emits a jump taken when `cond` holds (or, with `negate`, when it does not).
    pub(super) fn emit_cond_branch(&mut self, cond: Cond, negate: bool, target: u32) -> usize {
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

    /// Marks the current position as a branch target.
    pub(super) fn set_label(&mut self) {
        self.label = self.code.len();
        self.new_fuel_block();
    }

    pub(super) fn new_fuel_block(&mut self) {
        if self.fuel {
            self.fuel_at = Some(self.emit(Instr::ConsumeFuel { amount: 0 }));
            self.label = self.code.len();
        }
    }

    pub(super) fn charge(&mut self) {
        if let Some(at) = self.fuel_at {
            if let Instr::ConsumeFuel { amount } = &mut self.code[at] {
                *amount = amount.saturating_add(1);
            }
        }
    }

    /// A block's parameter and result counts, and which of them are v128.
    pub(super) fn block_sig(info: &ModuleInfo, bt: BlockType) -> (u32, u32, Vec<bool>, Vec<bool>) {
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

    pub(super) fn ctrl_index(&self, depth: u32) -> usize {
        self.ctrl.len() - 1 - depth as usize
    }

    /// (source, destination, wide) moving the branch values into the target's
    /// slots (the values have the target's types, so their widths lay them out).
    pub(super) fn branch_moves(&self, ctrl: usize) -> impl Iterator<Item = (Source, Slot, bool)> + '_ {
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

    pub(super) fn emit_branch_moves(&mut self, ctrl: usize) {
        let moves: Vec<(Source, Slot, bool)> = self.branch_moves(ctrl).collect();
        for (src, dst, wide) in moves {
            self.emit_move(src, dst, wide);
        }
    }

    /// Emits the jump itself (after the moves).
    pub(super) fn emit_jump(&mut self, ctrl: usize) {
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

    pub(super) fn emit_return(&mut self, num_results: usize) {
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

    pub(super) fn else_(&mut self) {
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

    /// `try_table`: a block whose catch clauses are landing pads placed
    /// before its body (jumped over on entry): each moves the values a catch
    /// wrote at the `try_table`'s height (the fields, then the reference) to
    /// its label, as a branch does. The clauses become the function's
    /// handlers (`CompiledFunc::handlers`) when the block ends.
    pub(super) fn try_table(&mut self, info: &ModuleInfo, try_table: &wasmparser::TryTable) {
        let (params, results, params_wide, results_wide) = Self::block_sig(info, try_table.ty);
        self.materialize_all();
        let height = self.stack.len() - params as usize;
        let slot = self.slot_at(height);
        let skip = self.emit(Instr::Br { target: 0 });
        let saved = self.stack.clone();
        let mut clauses = Vec::with_capacity(try_table.catches.len());
        for catch in &try_table.catches {
            use wasmparser::Catch;
            let (tag, label, with_ref) = match *catch {
                Catch::One { tag, label } => (tag, label, false),
                Catch::OneRef { tag, label } => (tag, label, true),
                Catch::All { label } => (CATCH_ALL, label, false),
                Catch::AllRef { label } => (CATCH_ALL, label, true),
            };
            self.set_label();
            let pad = self.pc();
            self.stack.truncate(height);
            if tag != CATCH_ALL {
                for t in info.tag_type(tag).params() {
                    self.push_temp_of(t);
                }
            }
            if with_ref {
                self.push_temp();
            }
            // The label is outside the `try_table` (its block is not pushed yet).
            let c = self.ctrl_index(label);
            if c == 0 {
                self.emit_return(self.ctrl[0].results as usize);
            } else {
                self.emit_branch_moves(c);
                self.emit_jump(c);
            }
            clauses.push(Handler { start: 0, end: 0, tag, with_ref, pad, slot });
            self.stack.clone_from(&saved);
        }
        let here = self.pc();
        self.patch(skip, here);
        self.set_label();
        let start = self.pc();
        for h in &mut clauses {
            h.start = start;
        }
        self.ctrl.push(Ctrl {
            kind: CtrlKind::Block,
            height,
            base_slot: slot,
            params,
            results,
            params_wide,
            results_wide,
            start,
            fixups: Vec::new(),
            else_fixup: None,
            dead_entry: false,
        });
        self.open_handlers.push((self.ctrl.len(), clauses));
    }

    pub(super) fn end(&mut self) {
        if self.ctrl.len() == 1 {
            return self.end_function();
        }
        // A `try_table`'s end: its clauses cover the body.
        if self.open_handlers.last().is_some_and(|(depth, _)| *depth == self.ctrl.len()) {
            let (_, mut clauses) = self.open_handlers.pop().expect("checked above");
            let end = self.pc();
            for h in &mut clauses {
                h.end = end;
            }
            self.handlers.extend(clauses);
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
    pub(super) fn dead_op(&mut self, op: &Operator<'_>) {
        match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } | Operator::TryTable { .. } => {
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
