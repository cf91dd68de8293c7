//! The simulated operand stack: each position's slot, pushing and popping
//! entries (temps, deferred `local.get`s, constants not yet written), and
//! materialising them (the copies and constant writes that make a value live in
//! its own slot) when an operator, a block boundary or a call needs it there.
//!
//! Must not touch: control structure (`control`) and rewrites of emitted code
//! (`fuse`, `acc`); what it emits is plain copies and constants.

use super::{Entry, Operand, Source, Translator};
use crate::interp::code::{Instr, Slot};
use crate::types::ValType;

impl Translator {
    pub(super) fn slot_of(&self, pos: usize) -> Slot {
        self.stack[pos].slot
    }

    /// The slot a value pushed now would take.
    fn next_slot(&self) -> Slot {
        self.stack.last().map_or(self.locals, |e| e.slot + 1 + e.wide as u32)
    }

    /// The slot of stack position `pos`, which may be the next free position.
    pub(super) fn slot_at(&self, pos: usize) -> Slot {
        if pos < self.stack.len() {
            self.stack[pos].slot
        } else {
            self.next_slot()
        }
    }

    pub(super) fn local_slot(&self, local: u32) -> Slot {
        self.local_slots[local as usize].0
    }

    pub(super) fn source(&self, pos: usize) -> Source {
        match self.stack[pos].op {
            Operand::Temp => Source::Slot(self.slot_of(pos)),
            Operand::Local(l) => Source::Slot(self.local_slot(l)),
            Operand::Const(v) => Source::Const(v),
        }
    }

    /// Pops an operand and returns the slot holding it (writing a constant to
    /// the position's own slot first).
    pub(super) fn pop(&mut self) -> Slot {
        let pos = self.stack.len() - 1;
        self.materialize_const(pos);
        let slot = match self.source(pos) {
            Source::Slot(s) => s,
            Source::Const(_) => unreachable!("materialized above"),
        };
        self.stack.pop();
        slot
    }

    /// Writes the entry at `pos` to its own slot if it is a constant.
    pub(super) fn materialize_const_at(&mut self, pos: usize) {
        self.materialize_const(pos);
    }

    pub(super) fn materialize_const(&mut self, pos: usize) {
        if let Operand::Const(value) = self.stack[pos].op {
            let dst = self.slot_of(pos);
            self.emit(Instr::Const { dst, value });
            self.stack[pos].op = Operand::Temp;
        }
    }

    /// Moves a value of one slot, or two if `wide`.
    pub(super) fn emit_move(&mut self, src: Source, dst: Slot, wide: bool) {
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

    fn push_entry(&mut self, op: Operand, wide: bool) -> Slot {
        let slot = self.next_slot();
        self.stack.push(Entry { op, slot, wide });
        self.max_slot = self.max_slot.max(slot + 1 + wide as u32);
        slot
    }

    pub(super) fn push(&mut self, operand: Operand) {
        let wide = match operand {
            Operand::Local(l) => self.local_slots[l as usize].1,
            _ => false,
        };
        self.push_entry(operand, wide);
    }

    pub(super) fn push_temp(&mut self) -> Slot {
        self.push_entry(Operand::Temp, false)
    }

    /// Pushes a v128 temp (two slots).
    pub(super) fn push_temp_wide(&mut self) -> Slot {
        self.push_entry(Operand::Temp, true)
    }

    pub(super) fn push_temp_of(&mut self, ty: &ValType) -> Slot {
        self.push_entry(Operand::Temp, *ty == ValType::V128)
    }

    pub(super) fn materialize_at(&mut self, pos: usize) {
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
    pub(super) fn materialize_top(&mut self, n: usize) {
        let len = self.stack.len();
        for pos in len - n..len {
            self.materialize_at(pos);
        }
    }

    pub(super) fn materialize_all(&mut self) {
        self.materialize_top(self.stack.len());
    }

    pub(super) fn materialize_local(&mut self, local: u32) {
        for pos in 0..self.stack.len() {
            if self.stack[pos].op == Operand::Local(local) {
                self.materialize_at(pos);
            }
        }
    }

    /// Pushes temps for `n` values whose v128 flags are `wide` (empty: none is).
    pub(super) fn push_temps(&mut self, n: u32, wide: &[bool]) {
        for i in 0..n as usize {
            self.push_entry(Operand::Temp, wide.get(i).copied().unwrap_or(false));
        }
    }

    /// The value of the operand `depth` places below the top, if it is a constant.
    pub(super) fn const_at(&self, depth: usize) -> Option<u64> {
        match self.stack.get(self.stack.len().checked_sub(depth + 1)?)?.op {
            Operand::Const(v) => Some(v),
            _ => None,
        }
    }

    pub(super) fn constant(&mut self, value: u64) {
        self.push(Operand::Const(value));
    }

    /// Pushes a v128 constant, written to its temp right away (two `Const`s).
    pub(super) fn v128_const(&mut self, value: u128) {
        let dst = self.push_temp_wide();
        self.emit(Instr::Const { dst, value: value as u64 });
        self.emit(Instr::Const { dst: dst + 1, value: (value >> 64) as u64 });
    }

    /// Pops `n` operands into consecutive slots and returns the first slot.
    pub(super) fn take_consecutive(&mut self, n: usize) -> Slot {
        self.materialize_top(n);
        let base = self.slot_at(self.stack.len() - n);
        self.stack.truncate(self.stack.len() - n);
        base
    }
}
