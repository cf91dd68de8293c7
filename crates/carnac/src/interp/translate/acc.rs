//! The accumulator: pairs a producer with the consumer right after it that
//! alone reads its temp (`link_acc` as each instruction is emitted, marked
//! one instruction later), and the final check (`check_acc`) that keeps only
//! marks whose pair survived every rewrite, in forms the handlers have
//! (`threaded::has_acc_form`), and marks the packed halves.
//!
//! Must not touch: what instructions compute; a mark changes only where a
//! value travels (a register instead of a frame slot).

use super::{branch_targets, Operand, Translator};
use crate::interp::code::{Instr, Slot};
use crate::interp::threaded;

impl Translator {
    /// If the instruction just emitted reads, as an operand, the temp that the
    /// one before computed, and nothing reads that temp afterwards (no stack
    /// entry holds it but, possibly, the new instruction's own result), and no
    /// branch lands between the two: the pair will pass it in the accumulator
    /// (the producer's result and the consumer's operand marked, `threaded::ACC`).
    /// Marked once the next instruction is emitted, so that the fusions that
    /// rewrite the last instruction with the operands of the one before still
    /// see plain slots; a pair they rewrote is left alone. Later rewrites may
    /// still separate or change a marked pair: `check_acc` then undoes it.
    pub(super) fn link_acc(&mut self) {
        self.apply_pending_acc();
        self.link_last();
    }

    /// Replaces the last instruction (a fusion that took the operator after it
    /// in) and considers the new one for the accumulator as if just emitted.
    pub(super) fn replace_last(&mut self, instr: Instr) {
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
    pub(super) fn apply_pending_acc(&mut self) {
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
    pub(super) fn check_acc(&mut self, packed: bool) {
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
}
