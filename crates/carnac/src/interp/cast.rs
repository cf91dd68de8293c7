//! The GC proposal's reference instructions that need no heap, in the
//! interpreter: `ref.i31`, `i31.get_s`, `i31.get_u`, `ref.eq`, `ref.test`,
//! `ref.cast` (and the tests of `br_on_cast` / `br_on_cast_fail`, which then
//! branch with the ordinary conditional branch).
//!
//! Every one is a single out-of-line [`Instr::Cast`](super::code::Instr)
//! executed by `exec` (as atomics and the struct/array operators are), so the
//! threaded handlers and WebAssembly 2.0 code are unchanged. `head` packs the
//! operator ([`CastOp`]) in its low 4 bits and, above, a cast's target
//! ([`CastTarget::pack`]: nullability, heap kind, module type index).
//! The compiled tier leaves a function using one of these to the interpreter
//! ([`is_cast_operator`]). `any.convert_extern` and `extern.convert_any` are
//! no instructions at all:
//! `anyref` and `externref` share one encoding (`runtime::gc_ref`).
//!
//! Must not touch: the encoding of references and what a cast decides
//! (`runtime::gc_ref`), the struct and array operators (`interp::gc`).

use crate::module::ModuleInner;
use crate::runtime::gc_ref::{self, unpack_cast, CastHeap, CastTarget};
use crate::runtime::store::StoreInner;
use crate::runtime::trap::TrapKind;

/// What an [`Instr::Cast`](super::code::Instr) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum CastOp {
    /// `dst = ref.i31 src`.
    RefI31,
    /// `dst = i31.get_s src` (a null reference traps).
    I31GetS,
    /// `dst = i31.get_u src` (a null reference traps).
    I31GetU,
    /// `dst = ref.eq src (src + 1)`.
    RefEq,
    /// `dst = ref.test src`.
    RefTest,
    /// `ref.cast src`: traps unless the test holds (`dst` is `src`).
    RefCast,
}

const OPS: [CastOp; 6] =
    [CastOp::RefI31, CastOp::I31GetS, CastOp::I31GetU, CastOp::RefEq, CastOp::RefTest, CastOp::RefCast];

/// Whether `op` is one of this module's operators (the compiled tier leaves
/// functions using one to the interpreter: `module::interpreted_only`).
#[cfg(carnac_native_code)]
pub(crate) fn is_cast_operator(op: &wasmparser::Operator<'_>) -> bool {
    use wasmparser::Operator as O;
    matches!(
        op,
        O::RefI31
            | O::I31GetS
            | O::I31GetU
            | O::RefEq
            | O::RefTestNonNull { .. }
            | O::RefTestNullable { .. }
            | O::RefCastNonNull { .. }
            | O::RefCastNullable { .. }
            | O::BrOnCast { .. }
            | O::BrOnCastFail { .. }
            | O::AnyConvertExtern
            | O::ExternConvertAny
    )
}

/// The instruction's `head`: the operator and the packed cast target (0 for
/// the operators without one).
pub(crate) fn pack(op: CastOp, target: u32) -> u32 {
    (target << 4) | op as u32
}

/// Whether the instruction of `head` is `ref.eq` (it reads two operands).
pub(crate) fn is_ref_eq(head: u32) -> bool {
    head & 0xf == CastOp::RefEq as u32
}

/// The cast target of a packed one, with its canonical type id from module `m`.
fn target(m: &ModuleInner, packed: u32) -> CastTarget {
    let (nullable, heap, type_index) = unpack_cast(packed);
    let type_id = match heap {
        CastHeap::ConcreteFunc | CastHeap::ConcreteStruct | CastHeap::ConcreteArray => {
            m.info.type_ids[type_index as usize]
        }
        _ => 0,
    };
    CastTarget { nullable, heap, type_id }
}

/// Runs the instruction of `head` on its operand `src` (and `ref.eq`'s second,
/// `src2`) in store `s`, code of module `m`: its result, or a trap's kind.
pub(crate) fn execute(s: &StoreInner, m: &ModuleInner, head: u32, src: u64, src2: u64) -> Result<u64, TrapKind> {
    let op = OPS[(head & 0xf) as usize % OPS.len()];
    Ok(match op {
        CastOp::RefI31 => gc_ref::encode_i31(src as u32),
        CastOp::I31GetS | CastOp::I31GetU if src == 0 => return Err(TrapKind::NullI31Reference),
        CastOp::I31GetS => gc_ref::i31_s(src) as u32 as u64,
        CastOp::I31GetU => gc_ref::i31_u(src) as u64,
        CastOp::RefEq => (src == src2) as u64,
        CastOp::RefTest => gc_ref::ref_test(s, src, target(m, head >> 4)) as u64,
        CastOp::RefCast => {
            if !gc_ref::ref_test(s, src, target(m, head >> 4)) {
                return Err(TrapKind::CastFailure);
            }
            src
        }
    })
}
