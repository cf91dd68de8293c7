//! The fixed-width SIMD operators (the `simd` proposal, part of Wasm 2.0).
//!
//! Wasm has one `v128` type; CLIF has one vector type per lane shape. A v128
//! crosses blocks, locals, globals and calls as `I8X16` (its canonical type,
//! see `Translator::canonical`), and each operator bitcasts its operands to the
//! shape it works on (`Translator::as_vector`; a no-op in machine code), leaving
//! its result in that shape until something needs it canonical. Most
//! operators are one Cranelift instruction with wasm's semantics; the others
//! are composed as in Wasmtime's translator: extended multiplies and
//! pairwise additions from widening, the dot product from widened products
//! added pairwise, `trunc_sat_f64x2_*_zero` from a 64-bit saturating
//! conversion narrowed against zero, `pmin`/`pmax` from a compare and select.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{Type, F32X4, F64X2, I16X8, I32, I32X4, I64X2, I8X16};
use cranelift_codegen::ir::{ConstantData, InstBuilder, Opcode, Value};
use cranelift_frontend::FunctionBuilder;
use wasmparser::Operator;

use super::memory::Access;
use super::Translator;

type Unary = fn(&mut FunctionBuilder<'_>, Value) -> Value;
type Binary = fn(&mut FunctionBuilder<'_>, Value, Value) -> Value;

impl Translator<'_, '_> {
    /// Operators of this part; false if `op` belongs to another part.
    pub(super) fn simd_operator(&mut self, op: &Operator<'_>) -> Result<bool, String> {
        use Operator as O;
        if self.simd_memory_operator(op)? {
            return Ok(true);
        }
        match *op {
            O::V128Const { value } => {
                let c = self.b.func.dfg.constants.insert(value.bytes().to_vec().into());
                let v = self.b.ins().vconst(I8X16, c);
                self.push(v);
            }
            O::I8x16Shuffle { lanes } => {
                let (a, b) = self.pop2_as(I8X16);
                let mask = self.b.func.dfg.immediates.push(ConstantData::from(&lanes[..]));
                let v = self.b.ins().shuffle(a, b, mask);
                self.push(v);
            }
            O::I8x16Swizzle => self.v_binary(I8X16, |b, x, y| b.ins().swizzle(x, y)),

            O::I8x16Splat => self.splat(I8X16, true),
            O::I16x8Splat => self.splat(I16X8, true),
            O::I32x4Splat => self.splat(I32X4, false),
            O::I64x2Splat => self.splat(I64X2, false),
            O::F32x4Splat => self.splat(F32X4, false),
            O::F64x2Splat => self.splat(F64X2, false),

            O::I8x16ExtractLaneS { lane } => self.extract_lane(I8X16, lane, Some(true)),
            O::I8x16ExtractLaneU { lane } => self.extract_lane(I8X16, lane, Some(false)),
            O::I16x8ExtractLaneS { lane } => self.extract_lane(I16X8, lane, Some(true)),
            O::I16x8ExtractLaneU { lane } => self.extract_lane(I16X8, lane, Some(false)),
            O::I32x4ExtractLane { lane } => self.extract_lane(I32X4, lane, None),
            O::I64x2ExtractLane { lane } => self.extract_lane(I64X2, lane, None),
            O::F32x4ExtractLane { lane } => self.extract_lane(F32X4, lane, None),
            O::F64x2ExtractLane { lane } => self.extract_lane(F64X2, lane, None),
            O::I8x16ReplaceLane { lane } => self.replace_lane(I8X16, lane),
            O::I16x8ReplaceLane { lane } => self.replace_lane(I16X8, lane),
            O::I32x4ReplaceLane { lane } => self.replace_lane(I32X4, lane),
            O::I64x2ReplaceLane { lane } => self.replace_lane(I64X2, lane),
            O::F32x4ReplaceLane { lane } => self.replace_lane(F32X4, lane),
            O::F64x2ReplaceLane { lane } => self.replace_lane(F64X2, lane),

            O::I8x16Eq => self.v_icmp(I8X16, IntCC::Equal),
            O::I8x16Ne => self.v_icmp(I8X16, IntCC::NotEqual),
            O::I8x16LtS => self.v_icmp(I8X16, IntCC::SignedLessThan),
            O::I8x16LtU => self.v_icmp(I8X16, IntCC::UnsignedLessThan),
            O::I8x16GtS => self.v_icmp(I8X16, IntCC::SignedGreaterThan),
            O::I8x16GtU => self.v_icmp(I8X16, IntCC::UnsignedGreaterThan),
            O::I8x16LeS => self.v_icmp(I8X16, IntCC::SignedLessThanOrEqual),
            O::I8x16LeU => self.v_icmp(I8X16, IntCC::UnsignedLessThanOrEqual),
            O::I8x16GeS => self.v_icmp(I8X16, IntCC::SignedGreaterThanOrEqual),
            O::I8x16GeU => self.v_icmp(I8X16, IntCC::UnsignedGreaterThanOrEqual),
            O::I16x8Eq => self.v_icmp(I16X8, IntCC::Equal),
            O::I16x8Ne => self.v_icmp(I16X8, IntCC::NotEqual),
            O::I16x8LtS => self.v_icmp(I16X8, IntCC::SignedLessThan),
            O::I16x8LtU => self.v_icmp(I16X8, IntCC::UnsignedLessThan),
            O::I16x8GtS => self.v_icmp(I16X8, IntCC::SignedGreaterThan),
            O::I16x8GtU => self.v_icmp(I16X8, IntCC::UnsignedGreaterThan),
            O::I16x8LeS => self.v_icmp(I16X8, IntCC::SignedLessThanOrEqual),
            O::I16x8LeU => self.v_icmp(I16X8, IntCC::UnsignedLessThanOrEqual),
            O::I16x8GeS => self.v_icmp(I16X8, IntCC::SignedGreaterThanOrEqual),
            O::I16x8GeU => self.v_icmp(I16X8, IntCC::UnsignedGreaterThanOrEqual),
            O::I32x4Eq => self.v_icmp(I32X4, IntCC::Equal),
            O::I32x4Ne => self.v_icmp(I32X4, IntCC::NotEqual),
            O::I32x4LtS => self.v_icmp(I32X4, IntCC::SignedLessThan),
            O::I32x4LtU => self.v_icmp(I32X4, IntCC::UnsignedLessThan),
            O::I32x4GtS => self.v_icmp(I32X4, IntCC::SignedGreaterThan),
            O::I32x4GtU => self.v_icmp(I32X4, IntCC::UnsignedGreaterThan),
            O::I32x4LeS => self.v_icmp(I32X4, IntCC::SignedLessThanOrEqual),
            O::I32x4LeU => self.v_icmp(I32X4, IntCC::UnsignedLessThanOrEqual),
            O::I32x4GeS => self.v_icmp(I32X4, IntCC::SignedGreaterThanOrEqual),
            O::I32x4GeU => self.v_icmp(I32X4, IntCC::UnsignedGreaterThanOrEqual),
            O::I64x2Eq => self.v_icmp(I64X2, IntCC::Equal),
            O::I64x2Ne => self.v_icmp(I64X2, IntCC::NotEqual),
            O::I64x2LtS => self.v_icmp(I64X2, IntCC::SignedLessThan),
            O::I64x2GtS => self.v_icmp(I64X2, IntCC::SignedGreaterThan),
            O::I64x2LeS => self.v_icmp(I64X2, IntCC::SignedLessThanOrEqual),
            O::I64x2GeS => self.v_icmp(I64X2, IntCC::SignedGreaterThanOrEqual),
            O::F32x4Eq => self.v_fcmp(F32X4, FloatCC::Equal),
            O::F32x4Ne => self.v_fcmp(F32X4, FloatCC::NotEqual),
            O::F32x4Lt => self.v_fcmp(F32X4, FloatCC::LessThan),
            O::F32x4Gt => self.v_fcmp(F32X4, FloatCC::GreaterThan),
            O::F32x4Le => self.v_fcmp(F32X4, FloatCC::LessThanOrEqual),
            O::F32x4Ge => self.v_fcmp(F32X4, FloatCC::GreaterThanOrEqual),
            O::F64x2Eq => self.v_fcmp(F64X2, FloatCC::Equal),
            O::F64x2Ne => self.v_fcmp(F64X2, FloatCC::NotEqual),
            O::F64x2Lt => self.v_fcmp(F64X2, FloatCC::LessThan),
            O::F64x2Gt => self.v_fcmp(F64X2, FloatCC::GreaterThan),
            O::F64x2Le => self.v_fcmp(F64X2, FloatCC::LessThanOrEqual),
            O::F64x2Ge => self.v_fcmp(F64X2, FloatCC::GreaterThanOrEqual),

            O::V128Not => self.v_unary(I8X16, |b, x| b.ins().bnot(x)),
            O::V128And => self.v_binary(I8X16, |b, x, y| b.ins().band(x, y)),
            O::V128AndNot => self.v_binary(I8X16, |b, x, y| b.ins().band_not(x, y)),
            O::V128Or => self.v_binary(I8X16, |b, x, y| b.ins().bor(x, y)),
            O::V128Xor => self.v_binary(I8X16, |b, x, y| b.ins().bxor(x, y)),
            O::V128Bitselect => {
                let c = self.pop_as(I8X16);
                let (x, y) = self.pop2_as(I8X16);
                let v = self.b.ins().bitselect(c, x, y);
                self.push(v);
            }
            O::V128AnyTrue => self.v_to_i32(I8X16, |b, x| b.ins().vany_true(x)),
            O::I8x16AllTrue => self.v_to_i32(I8X16, |b, x| b.ins().vall_true(x)),
            O::I16x8AllTrue => self.v_to_i32(I16X8, |b, x| b.ins().vall_true(x)),
            O::I32x4AllTrue => self.v_to_i32(I32X4, |b, x| b.ins().vall_true(x)),
            O::I64x2AllTrue => self.v_to_i32(I64X2, |b, x| b.ins().vall_true(x)),
            O::I8x16Bitmask => self.bitmask(I8X16),
            O::I16x8Bitmask => self.bitmask(I16X8),
            O::I32x4Bitmask => self.bitmask(I32X4),
            O::I64x2Bitmask => self.bitmask(I64X2),

            O::I8x16Abs => self.v_unary(I8X16, |b, x| b.ins().iabs(x)),
            O::I16x8Abs => self.v_unary(I16X8, |b, x| b.ins().iabs(x)),
            O::I32x4Abs => self.v_unary(I32X4, |b, x| b.ins().iabs(x)),
            O::I64x2Abs => self.v_unary(I64X2, |b, x| b.ins().iabs(x)),
            O::I8x16Neg => self.v_unary(I8X16, |b, x| b.ins().ineg(x)),
            O::I16x8Neg => self.v_unary(I16X8, |b, x| b.ins().ineg(x)),
            O::I32x4Neg => self.v_unary(I32X4, |b, x| b.ins().ineg(x)),
            O::I64x2Neg => self.v_unary(I64X2, |b, x| b.ins().ineg(x)),
            O::I8x16Popcnt => self.v_unary(I8X16, |b, x| b.ins().popcnt(x)),

            O::I8x16Shl => self.v_shift(I8X16, |b, x, y| b.ins().ishl(x, y)),
            O::I16x8Shl => self.v_shift(I16X8, |b, x, y| b.ins().ishl(x, y)),
            O::I32x4Shl => self.v_shift(I32X4, |b, x, y| b.ins().ishl(x, y)),
            O::I64x2Shl => self.v_shift(I64X2, |b, x, y| b.ins().ishl(x, y)),
            O::I8x16ShrS => self.v_shift(I8X16, |b, x, y| b.ins().sshr(x, y)),
            O::I16x8ShrS => self.v_shift(I16X8, |b, x, y| b.ins().sshr(x, y)),
            O::I32x4ShrS => self.v_shift(I32X4, |b, x, y| b.ins().sshr(x, y)),
            O::I64x2ShrS => self.v_shift(I64X2, |b, x, y| b.ins().sshr(x, y)),
            O::I8x16ShrU => self.v_shift(I8X16, |b, x, y| b.ins().ushr(x, y)),
            O::I16x8ShrU => self.v_shift(I16X8, |b, x, y| b.ins().ushr(x, y)),
            O::I32x4ShrU => self.v_shift(I32X4, |b, x, y| b.ins().ushr(x, y)),
            O::I64x2ShrU => self.v_shift(I64X2, |b, x, y| b.ins().ushr(x, y)),

            O::I8x16Add => self.v_binary(I8X16, |b, x, y| b.ins().iadd(x, y)),
            O::I16x8Add => self.v_binary(I16X8, |b, x, y| b.ins().iadd(x, y)),
            O::I32x4Add => self.v_binary(I32X4, |b, x, y| b.ins().iadd(x, y)),
            O::I64x2Add => self.v_binary(I64X2, |b, x, y| b.ins().iadd(x, y)),
            O::I8x16Sub => self.v_binary(I8X16, |b, x, y| b.ins().isub(x, y)),
            O::I16x8Sub => self.v_binary(I16X8, |b, x, y| b.ins().isub(x, y)),
            O::I32x4Sub => self.v_binary(I32X4, |b, x, y| b.ins().isub(x, y)),
            O::I64x2Sub => self.v_binary(I64X2, |b, x, y| b.ins().isub(x, y)),
            O::I16x8Mul => self.v_binary(I16X8, |b, x, y| b.ins().imul(x, y)),
            O::I32x4Mul => self.v_binary(I32X4, |b, x, y| b.ins().imul(x, y)),
            O::I64x2Mul => self.v_binary(I64X2, |b, x, y| b.ins().imul(x, y)),
            O::I8x16AddSatS => self.v_binary(I8X16, |b, x, y| b.ins().sadd_sat(x, y)),
            O::I16x8AddSatS => self.v_binary(I16X8, |b, x, y| b.ins().sadd_sat(x, y)),
            O::I8x16AddSatU => self.v_binary(I8X16, |b, x, y| b.ins().uadd_sat(x, y)),
            O::I16x8AddSatU => self.v_binary(I16X8, |b, x, y| b.ins().uadd_sat(x, y)),
            O::I8x16SubSatS => self.v_binary(I8X16, |b, x, y| b.ins().ssub_sat(x, y)),
            O::I16x8SubSatS => self.v_binary(I16X8, |b, x, y| b.ins().ssub_sat(x, y)),
            O::I8x16SubSatU => self.v_binary(I8X16, |b, x, y| b.ins().usub_sat(x, y)),
            O::I16x8SubSatU => self.v_binary(I16X8, |b, x, y| b.ins().usub_sat(x, y)),
            O::I8x16MinS => self.v_binary(I8X16, |b, x, y| b.ins().smin(x, y)),
            O::I16x8MinS => self.v_binary(I16X8, |b, x, y| b.ins().smin(x, y)),
            O::I32x4MinS => self.v_binary(I32X4, |b, x, y| b.ins().smin(x, y)),
            O::I8x16MinU => self.v_binary(I8X16, |b, x, y| b.ins().umin(x, y)),
            O::I16x8MinU => self.v_binary(I16X8, |b, x, y| b.ins().umin(x, y)),
            O::I32x4MinU => self.v_binary(I32X4, |b, x, y| b.ins().umin(x, y)),
            O::I8x16MaxS => self.v_binary(I8X16, |b, x, y| b.ins().smax(x, y)),
            O::I16x8MaxS => self.v_binary(I16X8, |b, x, y| b.ins().smax(x, y)),
            O::I32x4MaxS => self.v_binary(I32X4, |b, x, y| b.ins().smax(x, y)),
            O::I8x16MaxU => self.v_binary(I8X16, |b, x, y| b.ins().umax(x, y)),
            O::I16x8MaxU => self.v_binary(I16X8, |b, x, y| b.ins().umax(x, y)),
            O::I32x4MaxU => self.v_binary(I32X4, |b, x, y| b.ins().umax(x, y)),
            O::I8x16AvgrU => self.v_binary(I8X16, |b, x, y| b.ins().avg_round(x, y)),
            O::I16x8AvgrU => self.v_binary(I16X8, |b, x, y| b.ins().avg_round(x, y)),
            O::I16x8Q15MulrSatS => self.v_binary(I16X8, |b, x, y| b.ins().sqmul_round_sat(x, y)),

            O::I8x16NarrowI16x8S => self.v_binary(I16X8, |b, x, y| b.ins().snarrow(x, y)),
            O::I8x16NarrowI16x8U => self.v_binary(I16X8, |b, x, y| b.ins().unarrow(x, y)),
            O::I16x8NarrowI32x4S => self.v_binary(I32X4, |b, x, y| b.ins().snarrow(x, y)),
            O::I16x8NarrowI32x4U => self.v_binary(I32X4, |b, x, y| b.ins().unarrow(x, y)),
            O::I16x8ExtendLowI8x16S => self.v_unary(I8X16, |b, x| b.ins().swiden_low(x)),
            O::I16x8ExtendHighI8x16S => self.v_unary(I8X16, |b, x| b.ins().swiden_high(x)),
            O::I16x8ExtendLowI8x16U => self.v_unary(I8X16, |b, x| b.ins().uwiden_low(x)),
            O::I16x8ExtendHighI8x16U => self.v_unary(I8X16, |b, x| b.ins().uwiden_high(x)),
            O::I32x4ExtendLowI16x8S => self.v_unary(I16X8, |b, x| b.ins().swiden_low(x)),
            O::I32x4ExtendHighI16x8S => self.v_unary(I16X8, |b, x| b.ins().swiden_high(x)),
            O::I32x4ExtendLowI16x8U => self.v_unary(I16X8, |b, x| b.ins().uwiden_low(x)),
            O::I32x4ExtendHighI16x8U => self.v_unary(I16X8, |b, x| b.ins().uwiden_high(x)),
            O::I64x2ExtendLowI32x4S => self.v_unary(I32X4, |b, x| b.ins().swiden_low(x)),
            O::I64x2ExtendHighI32x4S => self.v_unary(I32X4, |b, x| b.ins().swiden_high(x)),
            O::I64x2ExtendLowI32x4U => self.v_unary(I32X4, |b, x| b.ins().uwiden_low(x)),
            O::I64x2ExtendHighI32x4U => self.v_unary(I32X4, |b, x| b.ins().uwiden_high(x)),

            O::I16x8ExtAddPairwiseI8x16S => self.ext_add_pairwise(I8X16, true),
            O::I16x8ExtAddPairwiseI8x16U => self.ext_add_pairwise(I8X16, false),
            O::I32x4ExtAddPairwiseI16x8S => self.ext_add_pairwise(I16X8, true),
            O::I32x4ExtAddPairwiseI16x8U => self.ext_add_pairwise(I16X8, false),
            O::I16x8ExtMulLowI8x16S => self.ext_mul(I8X16, true, false),
            O::I16x8ExtMulHighI8x16S => self.ext_mul(I8X16, true, true),
            O::I16x8ExtMulLowI8x16U => self.ext_mul(I8X16, false, false),
            O::I16x8ExtMulHighI8x16U => self.ext_mul(I8X16, false, true),
            O::I32x4ExtMulLowI16x8S => self.ext_mul(I16X8, true, false),
            O::I32x4ExtMulHighI16x8S => self.ext_mul(I16X8, true, true),
            O::I32x4ExtMulLowI16x8U => self.ext_mul(I16X8, false, false),
            O::I32x4ExtMulHighI16x8U => self.ext_mul(I16X8, false, true),
            O::I64x2ExtMulLowI32x4S => self.ext_mul(I32X4, true, false),
            O::I64x2ExtMulHighI32x4S => self.ext_mul(I32X4, true, true),
            O::I64x2ExtMulLowI32x4U => self.ext_mul(I32X4, false, false),
            O::I64x2ExtMulHighI32x4U => self.ext_mul(I32X4, false, true),
            O::I32x4DotI16x8S => {
                // Widened products, added pairwise.
                let (x, y) = self.pop2_as(I16X8);
                let b = &mut *self.b;
                let (xl, yl) = (b.ins().swiden_low(x), b.ins().swiden_low(y));
                let low = b.ins().imul(xl, yl);
                let (xh, yh) = (b.ins().swiden_high(x), b.ins().swiden_high(y));
                let high = b.ins().imul(xh, yh);
                let v = b.ins().iadd_pairwise(low, high);
                self.push(v);
            }

            // Relaxed SIMD, deterministic (`module::relaxed`; the others are
            // translated as the instructions whose results they give).
            O::I16x8RelaxedDotI8x16I7x16S => {
                let (x, y) = self.pop2_as(I8X16);
                let v = relaxed_dot_i8x16(self.b, x, y);
                self.push(v);
            }
            O::I32x4RelaxedDotI8x16I7x16AddS => {
                let acc = self.pop_as(I32X4);
                let (x, y) = self.pop2_as(I8X16);
                let b = &mut *self.b;
                let dot = relaxed_dot_i8x16(b, x, y);
                let (low, high) = (b.ins().swiden_low(dot), b.ins().swiden_high(dot));
                let sums = b.ins().iadd_pairwise(low, high);
                let v = b.ins().iadd(sums, acc);
                self.push(v);
            }
            O::F32x4RelaxedMadd => self.relaxed_madd(F32X4, false),
            O::F32x4RelaxedNmadd => self.relaxed_madd(F32X4, true),
            O::F64x2RelaxedMadd => self.relaxed_madd(F64X2, false),
            O::F64x2RelaxedNmadd => self.relaxed_madd(F64X2, true),

            O::F32x4Ceil => self.v_unary(F32X4, |b, x| b.ins().ceil(x)),
            O::F64x2Ceil => self.v_unary(F64X2, |b, x| b.ins().ceil(x)),
            O::F32x4Floor => self.v_unary(F32X4, |b, x| b.ins().floor(x)),
            O::F64x2Floor => self.v_unary(F64X2, |b, x| b.ins().floor(x)),
            O::F32x4Trunc => self.v_unary(F32X4, |b, x| b.ins().trunc(x)),
            O::F64x2Trunc => self.v_unary(F64X2, |b, x| b.ins().trunc(x)),
            O::F32x4Nearest => self.v_unary(F32X4, |b, x| b.ins().nearest(x)),
            O::F64x2Nearest => self.v_unary(F64X2, |b, x| b.ins().nearest(x)),
            O::F32x4Abs => self.v_unary(F32X4, |b, x| b.ins().fabs(x)),
            O::F64x2Abs => self.v_unary(F64X2, |b, x| b.ins().fabs(x)),
            O::F32x4Neg => self.v_unary(F32X4, |b, x| b.ins().fneg(x)),
            O::F64x2Neg => self.v_unary(F64X2, |b, x| b.ins().fneg(x)),
            O::F32x4Sqrt => self.v_unary(F32X4, |b, x| b.ins().sqrt(x)),
            O::F64x2Sqrt => self.v_unary(F64X2, |b, x| b.ins().sqrt(x)),
            O::F32x4Add => self.v_binary(F32X4, |b, x, y| b.ins().fadd(x, y)),
            O::F64x2Add => self.v_binary(F64X2, |b, x, y| b.ins().fadd(x, y)),
            O::F32x4Sub => self.v_binary(F32X4, |b, x, y| b.ins().fsub(x, y)),
            O::F64x2Sub => self.v_binary(F64X2, |b, x, y| b.ins().fsub(x, y)),
            O::F32x4Mul => self.v_binary(F32X4, |b, x, y| b.ins().fmul(x, y)),
            O::F64x2Mul => self.v_binary(F64X2, |b, x, y| b.ins().fmul(x, y)),
            O::F32x4Div => self.v_binary(F32X4, |b, x, y| b.ins().fdiv(x, y)),
            O::F64x2Div => self.v_binary(F64X2, |b, x, y| b.ins().fdiv(x, y)),
            O::F32x4Min => self.v_binary(F32X4, |b, x, y| b.ins().fmin(x, y)),
            O::F64x2Min => self.v_binary(F64X2, |b, x, y| b.ins().fmin(x, y)),
            O::F32x4Max => self.v_binary(F32X4, |b, x, y| b.ins().fmax(x, y)),
            O::F64x2Max => self.v_binary(F64X2, |b, x, y| b.ins().fmax(x, y)),
            O::F32x4PMin => self.pseudo_min_max(F32X4, true),
            O::F64x2PMin => self.pseudo_min_max(F64X2, true),
            O::F32x4PMax => self.pseudo_min_max(F32X4, false),
            O::F64x2PMax => self.pseudo_min_max(F64X2, false),

            O::I32x4TruncSatF32x4S => self.v_unary(F32X4, |b, x| b.ins().fcvt_to_sint_sat(I32X4, x)),
            O::I32x4TruncSatF32x4U => self.v_unary(F32X4, |b, x| b.ins().fcvt_to_uint_sat(I32X4, x)),
            O::I32x4TruncSatF64x2SZero => self.trunc_sat_f64x2_zero(true),
            O::I32x4TruncSatF64x2UZero => self.trunc_sat_f64x2_zero(false),
            O::F32x4ConvertI32x4S => self.v_unary(I32X4, |b, x| b.ins().fcvt_from_sint(F32X4, x)),
            O::F32x4ConvertI32x4U => self.v_unary(I32X4, |b, x| b.ins().fcvt_from_uint(F32X4, x)),
            O::F64x2ConvertLowI32x4S => self.v_unary(I32X4, |b, x| {
                let wide = b.ins().swiden_low(x);
                b.ins().fcvt_from_sint(F64X2, wide)
            }),
            O::F64x2ConvertLowI32x4U => self.v_unary(I32X4, |b, x| {
                let wide = b.ins().uwiden_low(x);
                b.ins().fcvt_from_uint(F64X2, wide)
            }),
            O::F32x4DemoteF64x2Zero => self.v_unary(F64X2, |b, x| b.ins().fvdemote(x)),
            O::F64x2PromoteLowF32x4 => self.v_unary(F32X4, |b, x| b.ins().fvpromote_low(x)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Loads and stores of vectors and their lanes.
    fn simd_memory_operator(&mut self, op: &Operator<'_>) -> Result<bool, String> {
        use Operator as O;
        match *op {
            O::V128Load { memarg } => self.load(&memarg, Opcode::Load, I8X16)?,
            O::V128Store { memarg } => self.store(&memarg, Opcode::Store)?,
            O::V128Load8x8S { memarg } => self.extending_load(&memarg, |b, f, p, o| b.ins().sload8x8(f, p, o))?,
            O::V128Load8x8U { memarg } => self.extending_load(&memarg, |b, f, p, o| b.ins().uload8x8(f, p, o))?,
            O::V128Load16x4S { memarg } => self.extending_load(&memarg, |b, f, p, o| b.ins().sload16x4(f, p, o))?,
            O::V128Load16x4U { memarg } => self.extending_load(&memarg, |b, f, p, o| b.ins().uload16x4(f, p, o))?,
            O::V128Load32x2S { memarg } => self.extending_load(&memarg, |b, f, p, o| b.ins().sload32x2(f, p, o))?,
            O::V128Load32x2U { memarg } => self.extending_load(&memarg, |b, f, p, o| b.ins().uload32x2(f, p, o))?,
            O::V128Load8Splat { memarg } => self.load_splat(&memarg, I8X16)?,
            O::V128Load16Splat { memarg } => self.load_splat(&memarg, I16X8)?,
            O::V128Load32Splat { memarg } => self.load_splat(&memarg, I32X4)?,
            O::V128Load64Splat { memarg } => self.load_splat(&memarg, I64X2)?,
            O::V128Load32Zero { memarg } => self.load_zero(&memarg, I32X4)?,
            O::V128Load64Zero { memarg } => self.load_zero(&memarg, I64X2)?,
            O::V128Load8Lane { memarg, lane } => self.load_lane(&memarg, I8X16, lane)?,
            O::V128Load16Lane { memarg, lane } => self.load_lane(&memarg, I16X8, lane)?,
            O::V128Load32Lane { memarg, lane } => self.load_lane(&memarg, I32X4, lane)?,
            O::V128Load64Lane { memarg, lane } => self.load_lane(&memarg, I64X2, lane)?,
            O::V128Store8Lane { memarg, lane } => self.store_lane(&memarg, I8X16, lane)?,
            O::V128Store16Lane { memarg, lane } => self.store_lane(&memarg, I16X8, lane)?,
            O::V128Store32Lane { memarg, lane } => self.store_lane(&memarg, I32X4, lane)?,
            O::V128Store64Lane { memarg, lane } => self.store_lane(&memarg, I64X2, lane)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    // ---- helpers ----

    /// `relaxed_madd` (`a * b + c`) or `relaxed_nmadd` (`-(a * b) + c`) in
    /// shape `ty`, unfused (rounded twice) as in the interpreter, whatever the
    /// host's FMA support.
    fn relaxed_madd(&mut self, ty: Type, negate: bool) {
        let z = self.pop_as(ty);
        let (x, y) = self.pop2_as(ty);
        let b = &mut *self.b;
        let mut p = b.ins().fmul(x, y);
        if negate {
            p = b.ins().fneg(p);
        }
        let v = b.ins().fadd(p, z);
        self.push(v);
    }

    fn pop_as(&mut self, ty: Type) -> Value {
        let v = self.pop();
        self.as_vector(v, ty)
    }

    fn pop2_as(&mut self, ty: Type) -> (Value, Value) {
        let (x, y) = self.pop2();
        (self.as_vector(x, ty), self.as_vector(y, ty))
    }

    fn v_unary(&mut self, ty: Type, f: impl FnOnce(&mut FunctionBuilder<'_>, Value) -> Value) {
        let x = self.pop_as(ty);
        let v = f(self.b, x);
        self.push(v);
    }

    fn v_binary(&mut self, ty: Type, f: Binary) {
        let (x, y) = self.pop2_as(ty);
        let v = f(self.b, x, y);
        self.push(v);
    }

    /// A lane-wise shift by a scalar count (Cranelift takes it modulo the lane width, as wasm does).
    fn v_shift(&mut self, ty: Type, f: Binary) {
        let count = self.pop();
        let x = self.pop_as(ty);
        let v = f(self.b, x, count);
        self.push(v);
    }

    /// A vector test (`any_true`, `all_true`) as wasm's i32 0 or 1.
    fn v_to_i32(&mut self, ty: Type, f: Unary) {
        let x = self.pop_as(ty);
        let t = f(self.b, x);
        let v = self.b.ins().uextend(I32, t);
        self.push(v);
    }

    fn v_icmp(&mut self, ty: Type, cc: IntCC) {
        let (x, y) = self.pop2_as(ty);
        let v = self.b.ins().icmp(cc, x, y);
        self.push(v);
    }

    fn v_fcmp(&mut self, ty: Type, cc: FloatCC) {
        let (x, y) = self.pop2_as(ty);
        let v = self.b.ins().fcmp(cc, x, y);
        self.push(v);
    }

    /// The high bit of each lane, gathered into an i32.
    fn bitmask(&mut self, ty: Type) {
        let x = self.pop_as(ty);
        let v = self.b.ins().vhigh_bits(I32, x);
        self.push(v);
    }

    /// A scalar in every lane; an i32 narrowed first for 8- and 16-bit lanes.
    fn splat(&mut self, ty: Type, narrow: bool) {
        let mut x = self.pop();
        if narrow {
            x = self.b.ins().ireduce(ty.lane_type(), x);
        }
        let v = self.b.ins().splat(ty, x);
        self.push(v);
    }

    /// A lane as a scalar; 8- and 16-bit lanes extended to i32 (signed or not).
    fn extract_lane(&mut self, ty: Type, lane: u8, extend_signed: Option<bool>) {
        let x = self.pop_as(ty);
        let mut v = self.b.ins().extractlane(x, lane);
        v = match extend_signed {
            Some(true) => self.b.ins().sextend(I32, v),
            Some(false) => self.b.ins().uextend(I32, v),
            None => v,
        };
        self.push(v);
    }

    fn replace_lane(&mut self, ty: Type, lane: u8) {
        let mut scalar = self.pop();
        let x = self.pop_as(ty);
        if ty.lane_bits() < 32 {
            scalar = self.b.ins().ireduce(ty.lane_type(), scalar);
        }
        let v = self.b.ins().insertlane(x, scalar, lane);
        self.push(v);
    }

    /// `extadd_pairwise`: lanes widened (from `ty`), then adjacent pairs added.
    fn ext_add_pairwise(&mut self, ty: Type, signed: bool) {
        let x = self.pop_as(ty);
        let b = &mut *self.b;
        let (low, high) = if signed {
            (b.ins().swiden_low(x), b.ins().swiden_high(x))
        } else {
            (b.ins().uwiden_low(x), b.ins().uwiden_high(x))
        };
        let v = b.ins().iadd_pairwise(low, high);
        self.push(v);
    }

    /// `extmul_{low,high}`: the chosen halves widened (from `ty`), then multiplied.
    fn ext_mul(&mut self, ty: Type, signed: bool, high: bool) {
        let (x, y) = self.pop2_as(ty);
        let b = &mut *self.b;
        let (x, y) = match (signed, high) {
            (true, false) => (b.ins().swiden_low(x), b.ins().swiden_low(y)),
            (true, true) => (b.ins().swiden_high(x), b.ins().swiden_high(y)),
            (false, false) => (b.ins().uwiden_low(x), b.ins().uwiden_low(y)),
            (false, true) => (b.ins().uwiden_high(x), b.ins().uwiden_high(y)),
        };
        let v = b.ins().imul(x, y);
        self.push(v);
    }

    /// `pmin`: `y < x ? y : x`; `pmax`: `x < y ? y : x` (wasm's definitions,
    /// which the x86 backend turns into `minps`/`maxps`).
    fn pseudo_min_max(&mut self, ty: Type, min: bool) {
        let (x, y) = self.pop2_as(ty);
        let take_y =
            if min { self.b.ins().fcmp(FloatCC::LessThan, y, x) } else { self.b.ins().fcmp(FloatCC::LessThan, x, y) };
        let take_y = self.as_vector(take_y, ty);
        let v = self.b.ins().bitselect(take_y, y, x);
        self.push(v);
    }

    /// `i32x4.trunc_sat_f64x2_{s,u}_zero`: two saturated 64-bit lanes narrowed
    /// (saturating) into the low half, zeros above.
    fn trunc_sat_f64x2_zero(&mut self, signed: bool) {
        let x = self.pop_as(F64X2);
        let c = self.b.func.dfg.constants.insert(vec![0u8; 16].into());
        let zero = self.b.ins().vconst(I64X2, c);
        let v = if signed {
            let wide = self.b.ins().fcvt_to_sint_sat(I64X2, x);
            self.b.ins().snarrow(wide, zero)
        } else {
            let wide = self.b.ins().fcvt_to_uint_sat(I64X2, x);
            self.b.ins().uunarrow(wide, zero)
        };
        self.push(v);
    }

    // ---- memory ----

    /// `v128.loadNxM_{s,u}`: 8 bytes, each lane extended.
    fn extending_load(
        &mut self,
        memarg: &wasmparser::MemArg,
        f: fn(&mut FunctionBuilder<'_>, cranelift_codegen::ir::MemFlagsData, Value, i32) -> Value,
    ) -> Result<(), String> {
        let Access { flags, addr, offset, .. } = self.memory_access(memarg, 8)?;
        let v = f(self.b, flags, addr, offset);
        self.push(v);
        Ok(())
    }

    /// `v128.loadN_splat`: one lane's worth of bytes, in every lane of `ty`.
    fn load_splat(&mut self, memarg: &wasmparser::MemArg, ty: Type) -> Result<(), String> {
        let lane = ty.lane_type();
        let Access { flags, addr, offset, .. } = self.memory_access(memarg, lane.bytes() as u64)?;
        let x = self.b.ins().load(lane, flags, addr, offset);
        let v = self.b.ins().splat(ty, x);
        self.push(v);
        Ok(())
    }

    /// `v128.loadN_zero`: one lane's worth of bytes into lane 0, zeros elsewhere.
    fn load_zero(&mut self, memarg: &wasmparser::MemArg, ty: Type) -> Result<(), String> {
        let lane = ty.lane_type();
        let Access { flags, addr, offset, .. } = self.memory_access(memarg, lane.bytes() as u64)?;
        let x = self.b.ins().load(lane, flags, addr, offset);
        let v = self.b.ins().scalar_to_vector(ty, x);
        self.push(v);
        Ok(())
    }

    /// `v128.loadN_lane`: `[addr, vector] -> [vector]` with one lane loaded.
    fn load_lane(&mut self, memarg: &wasmparser::MemArg, ty: Type, lane: u8) -> Result<(), String> {
        let x = self.pop_as(ty);
        let lane_ty = ty.lane_type();
        let Access { flags, addr, offset, .. } = self.memory_access(memarg, lane_ty.bytes() as u64)?;
        let scalar = self.b.ins().load(lane_ty, flags, addr, offset);
        let v = self.b.ins().insertlane(x, scalar, lane);
        self.push(v);
        Ok(())
    }

    /// `v128.storeN_lane`: `[addr, vector] -> []`, one lane stored.
    fn store_lane(&mut self, memarg: &wasmparser::MemArg, ty: Type, lane: u8) -> Result<(), String> {
        let x = self.pop_as(ty);
        let scalar = self.b.ins().extractlane(x, lane);
        let access = self.memory_access(memarg, ty.lane_type().bytes() as u64)?;
        self.b.ins().store(access.flags, scalar, access.addr, access.offset);
        self.mark_written(&access);
        Ok(())
    }
}

/// `i16x8.relaxed_dot_i8x16_i7x16_s` as Carnac defines it (both operands
/// signed, adjacent products added with 16-bit wrapping): widened products,
/// added pairwise.
fn relaxed_dot_i8x16(b: &mut FunctionBuilder<'_>, x: Value, y: Value) -> Value {
    let (xl, yl) = (b.ins().swiden_low(x), b.ins().swiden_low(y));
    let low = b.ins().imul(xl, yl);
    let (xh, yh) = (b.ins().swiden_high(x), b.ins().swiden_high(y));
    let high = b.ins().imul(xh, yh);
    b.ins().iadd_pairwise(low, high)
}
