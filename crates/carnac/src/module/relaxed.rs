//! Relaxed SIMD (WebAssembly 3.0), made deterministic.
//!
//! The specification lets each `relaxed_*` instruction return one of a few
//! results (whatever the host's vector unit does fastest). Carnac picks one of
//! them per instruction and gives exactly that result on every host and in
//! both tiers, so a module's results do not depend on the CPU or on whether a
//! function was interpreted or compiled:
//!
//! | instruction                                   | result, on every host and tier                                   |
//! |-----------------------------------------------|------------------------------------------------------------------|
//! | `i8x16.relaxed_swizzle`                       | `i8x16.swizzle` (an index >= 16 selects 0)                       |
//! | `i32x4.relaxed_trunc_f32x4_s`/`_u`            | `i32x4.trunc_sat_f32x4_s`/`_u` (saturating, NaN to 0)            |
//! | `i32x4.relaxed_trunc_f64x2_s`/`_u_zero`       | `i32x4.trunc_sat_f64x2_s`/`_u_zero`                              |
//! | `f32x4`/`f64x2.relaxed_madd`                  | unfused: `add(mul(a, b), c)`, rounded twice                      |
//! | `f32x4`/`f64x2.relaxed_nmadd`                 | unfused: `add(neg(mul(a, b)), c)`, rounded twice                 |
//! | `i8x16`/`i16x8`/`i32x4`/`i64x2.relaxed_laneselect` | `v128.bitselect` (bit by bit, whatever the mask)            |
//! | `f32x4`/`f64x2.relaxed_min`/`relaxed_max`     | `f32x4`/`f64x2.min`/`max` (NaN propagating, -0 < +0)             |
//! | `i16x8.relaxed_q15mulr_s`                     | `i16x8.q15mulr_sat_s` (saturating)                               |
//! | `i16x8.relaxed_dot_i8x16_i7x16_s`             | both operands signed; each pair of products added, wrapping to 16 bits |
//! | `i32x4.relaxed_dot_i8x16_i7x16_add_s`         | the i16x8 dot above, then `i32x4.extadd_pairwise_i16x8_s`, then `i32x4.add` of the accumulator |
//!
//! The multiply-adds are unfused because the compiled tier must not depend on
//! the host having an FMA unit (without one Cranelift would need a libcall,
//! which its code memory does not link). The dot products differ from the
//! mandatory choices only when the second operand has a lane of -128 (not a
//! 7-bit value), where the specification allows several results anyway.
//!
//! The instructions whose result is an existing instruction's are translated
//! as that instruction by both tiers ([`deterministic`]); the multiply-adds
//! and the dot products have their own implementations (the interpreter's
//! `SimdOp::F32x4RelaxedMadd` & co., and the compiled tier's CLIF sequences).

use wasmparser::Operator;

/// The existing instruction that `op`, a relaxed SIMD instruction, is
/// translated as; `None` for any other instruction, and for the relaxed ones
/// that have no such equivalent (the multiply-adds and the dot products).
pub(crate) fn deterministic<'a>(op: &Operator<'a>) -> Option<Operator<'a>> {
    use Operator as O;
    Some(match op {
        O::I8x16RelaxedSwizzle => O::I8x16Swizzle,
        O::I32x4RelaxedTruncF32x4S => O::I32x4TruncSatF32x4S,
        O::I32x4RelaxedTruncF32x4U => O::I32x4TruncSatF32x4U,
        O::I32x4RelaxedTruncF64x2SZero => O::I32x4TruncSatF64x2SZero,
        O::I32x4RelaxedTruncF64x2UZero => O::I32x4TruncSatF64x2UZero,
        O::I8x16RelaxedLaneselect
        | O::I16x8RelaxedLaneselect
        | O::I32x4RelaxedLaneselect
        | O::I64x2RelaxedLaneselect => O::V128Bitselect,
        O::F32x4RelaxedMin => O::F32x4Min,
        O::F32x4RelaxedMax => O::F32x4Max,
        O::F64x2RelaxedMin => O::F64x2Min,
        O::F64x2RelaxedMax => O::F64x2Max,
        O::I16x8RelaxedQ15mulrS => O::I16x8Q15MulrSatS,
        _ => return None,
    })
}
