//! Fusions: an operator that absorbs the instruction just emitted (its
//! operand's producer) into one instruction (immediate forms, multiply-add,
//! indexed and displaced loads, copying stores, a loop step fused into its
//! branch...), and, once the body is translated, the merge of adjacent pairs
//! (`merge_pairs`). Each checks `label`: nothing is rewritten across a branch
//! target.
//!
//! Must not touch: accumulator marks (a fusion replaces an instruction with
//! `replace_last` or pops it, and `acc` rechecks the marks at the end).

use wasmparser::Operator;

use super::{branch_targets, Entry, Operand, Source, Translator};
use crate::interp::code::{Instr, Slot};

/// An immediate-form operator (`instr`) whose left operand `producer` computed,
/// as one instruction: a rotate of an xor, an add to a global just read.
pub(super) fn fuse_producer_into_imm(producer: Instr, instr: Instr) -> Option<Instr> {
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

impl Translator {
    /// Once the body is translated: merges pairs of adjacent instructions that
    /// no branch separates into one (two loads or two stores in a row, an
    /// argument copy and the call), and renumbers the
    /// branch targets. Done here, not as each instruction is emitted, so that
    /// the emit-time rewrites (a `local.set` retargeting a load) see the plain
    /// instructions.
    pub(super) fn merge_pairs(&mut self) {
        self.rotate_loops();
        let n = self.code.len();
        if !self.code.windows(2).any(|w| merge_pair(&w[0], &w[1]).is_some()) {
            return;
        }
        let mut is_target = branch_targets(&mut self.code);
        // Where exceptions land, and where `try_table`s start and end, stay apart.
        for h in &self.handlers {
            for at in [h.start, h.end, h.pad] {
                is_target[at as usize] = true;
            }
        }
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
        for h in &mut self.handlers {
            (h.start, h.end, h.pad) = (map[h.start as usize], map[h.end as usize], map[h.pad as usize]);
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

    /// The last instruction, if it computed the temp at stack position `pos`
    /// and may be rewritten (no branch lands after it). Nothing else reads that
    /// temp (temps are used once), so the consumer may absorb the producer.
    pub(super) fn producer_of(&self, pos: usize) -> Option<Instr> {
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
    pub(super) fn fuse_producer_into_binary(&mut self, base: &Instr) -> bool {
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
    pub(super) fn displaced_load(&mut self, op: &Operator<'_>) -> bool {
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
    pub(super) fn copying_store(&mut self, op: &Operator<'_>) -> bool {
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
    pub(super) fn fuse_into_global_set(&mut self, src: Slot, global: u32) -> bool {
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
    pub(super) fn fuse_add_into_branch(&mut self, branch: Instr) -> Instr {
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

    /// A load whose address is an `i32.add` just computed (and used by nothing
    /// else) takes the add's operands itself: `I32LoadIdx` and friends.
    pub(super) fn indexed_load(&mut self, op: &Operator<'_>) -> bool {
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
    pub(super) fn merge_add_imm(&mut self, next: Instr) -> bool {
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
    pub(super) fn float_const_operand(&mut self, base: &Instr) -> bool {
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
    pub(super) fn fused_multiply_add(&mut self, op: &Operator<'_>) -> bool {
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
    pub(super) fn constant_memory_access(&mut self, op: &Operator<'_>) -> bool {
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
}
