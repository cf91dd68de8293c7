//! The accumulator's encoding in instructions: which fields name it (`ACC |
//! slot`, by field name: `acc_bit`), its forms (`ACC_*` bits), and its marks in
//! the halves of packed fields (`PACKED_ACC`). The translator reads and writes
//! marks through these (and through `acc_form`, `mark_acc`... which
//! `handlers!` generates from the handler list); `handler_for` picks the
//! handler of an instruction's form.
//!
//! Must not touch: handler code. This is the translator's side of the
//! accumulator; the handlers' side is the `rd!`/`wr!` of `handlers!`.

use super::ACC_FORMS;
use crate::interp::code::Instr;

/// The accumulator: a value passed from one handler to the next in a register
/// (the `acc` argument) instead of through a frame slot. The translator marks a
/// result that only the next instruction reads (`translate`, `mark_acc`): the
/// producer's result field and the consumer's operand field then hold
/// `ACC | slot` (slots are below 2^31), and `handler_for` picks the handler
/// built for that form, in which those fields are the accumulator: the store
/// and the load between the two, and the latency of a store forwarded to a
/// load, are gone. Nothing else sees the accumulator: `exec` runs no marked
/// instruction, and a run starts and ends at unmarked ones.
pub(in crate::interp) const ACC: u32 = 1 << 31;
/// Form bits: the result goes to the accumulator (`dst`); the first operand
/// (`lhs`, `src`, `addr`, `cond`) or the second (`rhs`, `value`) comes from it.
pub(in crate::interp) const ACC_DST: u8 = 1;
pub(in crate::interp) const ACC_A: u8 = 2;
pub(in crate::interp) const ACC_B: u8 = 4;
/// Forms 0 (no accumulator) to `ACC_DST | ACC_B`; at most one operand is the
/// accumulator.
const NUM_FORMS: usize = 6;

/// The form bit of an instruction field, by name (0: not an operand or result).
pub(super) const fn acc_bit(name: &str) -> u8 {
    const fn is(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    if is(name, "dst") {
        ACC_DST
    } else if is(name, "lhs") || is(name, "src") || is(name, "addr") || is(name, "cond") {
        ACC_A
    } else if is(name, "rhs") || is(name, "value") {
        ACC_B
    } else {
        0
    }
}

/// An instruction field: only a slot field (`u32`) can name the accumulator.
/// (`bit` is the form bit of the field's name, 0 for fields that are neither
/// an operand nor the result.)
pub(super) trait AccField {
    /// `bit` if this field names the accumulator.
    fn acc_bits(&self, bit: u8) -> u8;
    /// Back from `ACC | slot` to `slot`.
    fn clear_acc(&mut self, bit: u8, slot: u32);
    fn visit_acc(&self, bit: u8, visit: &mut dyn FnMut(u8, u32));
    /// `bit` if this is an operand field that names `slot`.
    fn reads(&self, bit: u8, slot: u32) -> u8;
    /// From `slot` to `ACC | slot`, if this field's bit is `want`.
    fn mark(&mut self, bit: u8, want: u8, slot: u32);
}

impl AccField for u32 {
    fn acc_bits(&self, bit: u8) -> u8 {
        if bit != 0 && *self & ACC != 0 {
            bit
        } else {
            0
        }
    }
    fn clear_acc(&mut self, bit: u8, slot: u32) {
        if bit != 0 && *self == ACC | slot {
            *self = slot;
        }
    }
    fn visit_acc(&self, bit: u8, visit: &mut dyn FnMut(u8, u32)) {
        if bit != 0 && *self & ACC != 0 {
            visit(bit, *self & !ACC);
        }
    }
    fn reads(&self, bit: u8, slot: u32) -> u8 {
        if bit & (ACC_A | ACC_B) != 0 && *self == slot {
            bit
        } else {
            0
        }
    }
    fn mark(&mut self, bit: u8, want: u8, slot: u32) {
        if bit != 0 && bit == want && *self == slot {
            *self = ACC | slot;
        }
    }
}

macro_rules! not_acc_fields {
    ($($t:ty),*) => {$(
        impl AccField for $t {
            fn acc_bits(&self, _: u8) -> u8 {
                0
            }
            fn clear_acc(&mut self, _: u8, _: u32) {}
            fn visit_acc(&self, _: u8, _: &mut dyn FnMut(u8, u32)) {}
            fn reads(&self, _: u8, _: u32) -> u8 {
                0
            }
            fn mark(&mut self, _: u8, _: u8, _: u32) {}
        }
    )*};
}
not_acc_fields!(u64, i32, bool);

/// The form bit of one half of a packed operand field, by the field's name:
/// `ab`, `xy` and `bi` pack two operands (low, high); `ds` a result and an
/// operand. Halves are marked by [`PACKED_ACC`].
pub(super) const fn packed_bit(name: &str, high: bool) -> u8 {
    let n = name.as_bytes();
    match (n, high) {
        (b"ab" | b"xy" | b"bi", false) => ACC_A,
        (b"ab" | b"xy" | b"bi", true) => ACC_B,
        (b"ds", false) => ACC_DST,
        (b"ds", true) => ACC_A,
        _ => 0,
    }
}

/// The mark of an operand in the accumulator in one half of a packed field
/// (which holds 16-bit slots, so it cannot carry [`ACC`]): `0xffff`. Used only
/// in functions whose frame is smaller than that (no slot is `0xffff`), set
/// only by the translator's last pass (`check_acc`: no rewrite comes after it),
/// and only in the consumer: its producer's result field holds `ACC | slot`.
pub(in crate::interp) const PACKED_ACC: u32 = 0xffff;

/// An instruction's packed operand field, for those that may read the
/// accumulator in a half of it: the field, the form bits of its low and high
/// halves (0: not an operand), and the instruction's other operand slot.
fn packed_operands(instr: &mut Instr) -> Option<(&mut u32, u8, u8, Option<u32>)> {
    Some(match instr {
        Instr::F64KDivU32 { ds, .. }
        | Instr::F64AddK { ds, .. }
        | Instr::F64SubK { ds, .. }
        | Instr::F64KSub { ds, .. }
        | Instr::F64MulK { ds, .. }
        | Instr::F64DivK { ds, .. }
        | Instr::F64KDiv { ds, .. } => (ds, 0, ACC_A, None),
        Instr::F64MulAdd { ab, c, .. } | Instr::F64MulSub { ab, c, .. } | Instr::F64SubMul { ab, c, .. } => {
            (ab, ACC_A, ACC_B, Some(*c))
        }
        Instr::I32AddI32LtS { xy, a, .. }
        | Instr::I32AddI32LtU { xy, a, .. }
        | Instr::I32AddI64LtS { xy, a, .. }
        | Instr::I32AddI64LtU { xy, a, .. } => (xy, ACC_A, ACC_B, Some(*a)),
        Instr::I32RotlXor { ab, .. }
        | Instr::I64RotlXor { ab, .. }
        | Instr::I32XorRotl { ab, .. }
        | Instr::I64XorRotl { ab, .. }
        | Instr::I32AddShrU { ab, .. }
        | Instr::I32AddShl { ab, .. } => (ab, ACC_A, ACC_B, None),
        Instr::I32LoadIdx { bi, .. } | Instr::I64LoadIdx { bi, .. } | Instr::I32Load8UIdx { bi, .. } => {
            (bi, ACC_A, ACC_B, None)
        }
        _ => return None,
    })
}

/// Sets the result half of a packed `ds` field to 0 (for comparing two
/// instructions but for where their result goes).
pub(in crate::interp) fn clear_packed_result(instr: &mut Instr) {
    if let Some((field, 0, ACC_A, _)) = packed_operands(instr) {
        *field &= !0xffff;
    }
}

/// The result slot of an instruction that writes it in the low half of a
/// packed `ds` field.
pub(in crate::interp) fn packed_result(instr: &Instr) -> Option<u32> {
    let mut instr = *instr;
    match packed_operands(&mut instr) {
        Some((field, 0, ACC_A, _)) => Some(*field & 0xffff),
        _ => None,
    }
}

/// Marks the packed result half as written to the accumulator.
pub(in crate::interp) fn mark_packed_result(instr: &mut Instr) {
    if let Some((field, 0, ACC_A, _)) = packed_operands(instr) {
        *field = (*field & !0xffff) | PACKED_ACC;
    }
}

/// The form bits of the packed halves marked [`PACKED_ACC`].
#[inline] // into `handler_for`, in another module
pub(in crate::interp) fn packed_form(instr: &Instr) -> u8 {
    let mut instr = *instr;
    let Some((field, lo, hi, _)) = packed_operands(&mut instr) else { return 0 };
    let mut form = 0;
    if *field & 0xffff == PACKED_ACC {
        // The low half of `ds` is the result.
        form |= if lo == 0 { ACC_DST } else { lo };
    }
    if *field >> 16 == PACKED_ACC {
        form |= hi;
    }
    form
}

/// The form bit of the one packed half that reads `slot`, if `slot` is read
/// exactly once by the instruction and that read is a packed half (else 0).
pub(in crate::interp) fn packed_reads(instr: &Instr, slot: u32) -> u8 {
    let mut instr = *instr;
    let Some((field, lo, hi, other)) = packed_operands(&mut instr) else { return 0 };
    let lo_reads = lo != 0 && *field & 0xffff == slot;
    let hi_reads = hi != 0 && *field >> 16 == slot;
    match (lo_reads, hi_reads, other == Some(slot)) {
        (true, false, false) => lo,
        (false, true, false) => hi,
        _ => 0,
    }
}

/// Marks the packed half whose form bit is `bit` as read from the accumulator.
pub(in crate::interp) fn mark_packed(instr: &mut Instr, bit: u8) {
    if let Some((field, lo, hi, _)) = packed_operands(instr) {
        if bit == lo {
            *field = (*field & !0xffff) | PACKED_ACC;
        } else if bit == hi {
            *field = (*field & 0xffff) | PACKED_ACC << 16;
        }
    }
}

/// Whether `instr` has accumulator form `form` (0 always).
pub(in crate::interp) fn has_acc_form(instr: &Instr, form: u8) -> bool {
    form == 0 || (form as usize) < NUM_FORMS && ACC_FORMS[instr.tag()] & (1 << form) != 0
}
