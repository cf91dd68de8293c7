//! Scalar numeric operators: constants, integer and float arithmetic,
//! comparisons, conversions.
//!
//! Most map to one Cranelift instruction with wasm's exact semantics: shift
//! counts are taken modulo the width, `fmin`/`fmax` propagate NaN and order
//! -0 below +0, `nearest` rounds ties to even. The traps wasm requires are
//! Cranelift's own: `sdiv`/`udiv`/`srem`/`urem` trap `INTEGER_DIVISION_BY_ZERO`
//! on a zero divisor, `sdiv` traps `INTEGER_OVERFLOW` on `MIN / -1` (while
//! `srem` gives 0 there, as wasm wants), and `fcvt_to_sint`/`fcvt_to_uint`
//! trap `BAD_CONVERSION_TO_INTEGER` on NaN and `INTEGER_OVERFLOW` out of range.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Value};
use wasmparser::Operator;

use super::{Lazy, Translator};

impl Translator<'_, '_> {
    /// Operators of this part; false if `op` belongs to another part.
    pub(super) fn numeric_operator(&mut self, op: &Operator<'_>) -> bool {
        use types::{F32, F64, I16, I32, I64, I8};
        match *op {
            Operator::I32Const { value } => {
                let v = self.iconst(I32, value as u32 as i64);
                self.push_lazy(v, Lazy::Const);
            }
            Operator::I64Const { value } => {
                let v = self.iconst(I64, value);
                self.push_lazy(v, Lazy::Const);
            }
            Operator::F32Const { value } => {
                let v = self.b.ins().f32const(Ieee32::with_bits(value.bits()));
                self.push_lazy(v, Lazy::Const);
            }
            Operator::F64Const { value } => {
                let v = self.b.ins().f64const(Ieee64::with_bits(value.bits()));
                self.push_lazy(v, Lazy::Const);
            }

            Operator::I32Eqz | Operator::I64Eqz => {
                let x = self.pop();
                let c = self.b.ins().icmp_imm_u(IntCC::Equal, x, 0);
                self.push_bool(c);
            }
            Operator::I32Eq | Operator::I64Eq => self.icmp(IntCC::Equal),
            Operator::I32Ne | Operator::I64Ne => self.icmp(IntCC::NotEqual),
            Operator::I32LtS | Operator::I64LtS => self.icmp(IntCC::SignedLessThan),
            Operator::I32LtU | Operator::I64LtU => self.icmp(IntCC::UnsignedLessThan),
            Operator::I32GtS | Operator::I64GtS => self.icmp(IntCC::SignedGreaterThan),
            Operator::I32GtU | Operator::I64GtU => self.icmp(IntCC::UnsignedGreaterThan),
            Operator::I32LeS | Operator::I64LeS => self.icmp(IntCC::SignedLessThanOrEqual),
            Operator::I32LeU | Operator::I64LeU => self.icmp(IntCC::UnsignedLessThanOrEqual),
            Operator::I32GeS | Operator::I64GeS => self.icmp(IntCC::SignedGreaterThanOrEqual),
            Operator::I32GeU | Operator::I64GeU => self.icmp(IntCC::UnsignedGreaterThanOrEqual),
            Operator::F32Eq | Operator::F64Eq => self.fcmp(FloatCC::Equal),
            Operator::F32Ne | Operator::F64Ne => self.fcmp(FloatCC::NotEqual),
            Operator::F32Lt | Operator::F64Lt => self.fcmp(FloatCC::LessThan),
            Operator::F32Gt | Operator::F64Gt => self.fcmp(FloatCC::GreaterThan),
            Operator::F32Le | Operator::F64Le => self.fcmp(FloatCC::LessThanOrEqual),
            Operator::F32Ge | Operator::F64Ge => self.fcmp(FloatCC::GreaterThanOrEqual),

            Operator::I32Clz | Operator::I64Clz => self.unary(|b, x| b.ins().clz(x)),
            Operator::I32Ctz | Operator::I64Ctz => self.unary(|b, x| b.ins().ctz(x)),
            Operator::I32Popcnt | Operator::I64Popcnt => self.unary(|b, x| b.ins().popcnt(x)),
            Operator::I32Add | Operator::I64Add => self.binary(|b, x, y| b.ins().iadd(x, y)),
            Operator::I32Sub | Operator::I64Sub => self.binary(|b, x, y| b.ins().isub(x, y)),
            Operator::I32Mul | Operator::I64Mul => self.binary(|b, x, y| b.ins().imul(x, y)),
            Operator::I32DivS | Operator::I64DivS => self.binary(|b, x, y| b.ins().sdiv(x, y)),
            Operator::I32DivU | Operator::I64DivU => self.binary(|b, x, y| b.ins().udiv(x, y)),
            Operator::I32RemS | Operator::I64RemS => self.binary(|b, x, y| b.ins().srem(x, y)),
            Operator::I32RemU | Operator::I64RemU => self.binary(|b, x, y| b.ins().urem(x, y)),
            Operator::I32And | Operator::I64And => self.binary(|b, x, y| b.ins().band(x, y)),
            Operator::I32Or | Operator::I64Or => self.binary(|b, x, y| b.ins().bor(x, y)),
            Operator::I32Xor | Operator::I64Xor => self.binary(|b, x, y| b.ins().bxor(x, y)),
            Operator::I32Shl | Operator::I64Shl => self.binary(|b, x, y| b.ins().ishl(x, y)),
            Operator::I32ShrS | Operator::I64ShrS => self.binary(|b, x, y| b.ins().sshr(x, y)),
            Operator::I32ShrU | Operator::I64ShrU => self.binary(|b, x, y| b.ins().ushr(x, y)),
            Operator::I32Rotl | Operator::I64Rotl => self.binary(|b, x, y| b.ins().rotl(x, y)),
            Operator::I32Rotr | Operator::I64Rotr => self.binary(|b, x, y| b.ins().rotr(x, y)),

            Operator::F32Abs | Operator::F64Abs => self.unary(|b, x| b.ins().fabs(x)),
            Operator::F32Neg | Operator::F64Neg => self.unary(|b, x| b.ins().fneg(x)),
            Operator::F32Ceil | Operator::F64Ceil => self.unary(|b, x| b.ins().ceil(x)),
            Operator::F32Floor | Operator::F64Floor => self.unary(|b, x| b.ins().floor(x)),
            Operator::F32Trunc | Operator::F64Trunc => self.unary(|b, x| b.ins().trunc(x)),
            Operator::F32Nearest | Operator::F64Nearest => self.unary(|b, x| b.ins().nearest(x)),
            Operator::F32Sqrt | Operator::F64Sqrt => self.unary(|b, x| b.ins().sqrt(x)),
            Operator::F32Add | Operator::F64Add => self.binary(|b, x, y| b.ins().fadd(x, y)),
            Operator::F32Sub | Operator::F64Sub => self.binary(|b, x, y| b.ins().fsub(x, y)),
            Operator::F32Mul | Operator::F64Mul => self.binary(|b, x, y| b.ins().fmul(x, y)),
            Operator::F32Div | Operator::F64Div => self.binary(|b, x, y| b.ins().fdiv(x, y)),
            Operator::F32Min | Operator::F64Min => self.binary(|b, x, y| b.ins().fmin(x, y)),
            Operator::F32Max | Operator::F64Max => self.binary(|b, x, y| b.ins().fmax(x, y)),
            Operator::F32Copysign | Operator::F64Copysign => self.binary(|b, x, y| b.ins().fcopysign(x, y)),

            Operator::I32WrapI64 => self.free_unary(|b, x| b.ins().ireduce(I32, x)),
            Operator::I64ExtendI32S => self.unary(|b, x| b.ins().sextend(I64, x)),
            Operator::I64ExtendI32U => self.unary(|b, x| b.ins().uextend(I64, x)),
            Operator::I32Extend8S => self.sign_extend(I8, I32),
            Operator::I32Extend16S => self.sign_extend(I16, I32),
            Operator::I64Extend8S => self.sign_extend(I8, I64),
            Operator::I64Extend16S => self.sign_extend(I16, I64),
            Operator::I64Extend32S => self.sign_extend(I32, I64),

            Operator::I32TruncF32S | Operator::I32TruncF64S => self.unary(|b, x| b.ins().fcvt_to_sint(I32, x)),
            Operator::I32TruncF32U | Operator::I32TruncF64U => self.unary(|b, x| b.ins().fcvt_to_uint(I32, x)),
            Operator::I64TruncF32S | Operator::I64TruncF64S => self.unary(|b, x| b.ins().fcvt_to_sint(I64, x)),
            Operator::I64TruncF32U | Operator::I64TruncF64U => self.unary(|b, x| b.ins().fcvt_to_uint(I64, x)),
            Operator::I32TruncSatF32S | Operator::I32TruncSatF64S => {
                self.unary(|b, x| b.ins().fcvt_to_sint_sat(I32, x))
            }
            Operator::I32TruncSatF32U | Operator::I32TruncSatF64U => {
                self.unary(|b, x| b.ins().fcvt_to_uint_sat(I32, x))
            }
            Operator::I64TruncSatF32S | Operator::I64TruncSatF64S => {
                self.unary(|b, x| b.ins().fcvt_to_sint_sat(I64, x))
            }
            Operator::I64TruncSatF32U | Operator::I64TruncSatF64U => {
                self.unary(|b, x| b.ins().fcvt_to_uint_sat(I64, x))
            }
            Operator::F32ConvertI32S | Operator::F32ConvertI64S => self.unary(|b, x| b.ins().fcvt_from_sint(F32, x)),
            Operator::F32ConvertI32U | Operator::F32ConvertI64U => self.unary(|b, x| b.ins().fcvt_from_uint(F32, x)),
            Operator::F64ConvertI32S | Operator::F64ConvertI64S => self.unary(|b, x| b.ins().fcvt_from_sint(F64, x)),
            Operator::F64ConvertI32U | Operator::F64ConvertI64U => self.unary(|b, x| b.ins().fcvt_from_uint(F64, x)),
            Operator::F32DemoteF64 => self.unary(|b, x| b.ins().fdemote(F32, x)),
            Operator::F64PromoteF32 => self.unary(|b, x| b.ins().fpromote(F64, x)),
            Operator::I32ReinterpretF32 => self.free_unary(|b, x| b.ins().bitcast(I32, MemFlagsData::new(), x)),
            Operator::I64ReinterpretF64 => self.free_unary(|b, x| b.ins().bitcast(I64, MemFlagsData::new(), x)),
            Operator::F32ReinterpretI32 => self.free_unary(|b, x| b.ins().bitcast(F32, MemFlagsData::new(), x)),
            Operator::F64ReinterpretI64 => self.free_unary(|b, x| b.ins().bitcast(F64, MemFlagsData::new(), x)),
            _ => return false,
        }
        true
    }

    fn unary(&mut self, f: impl FnOnce(&mut cranelift_frontend::FunctionBuilder<'_>, Value) -> Value) {
        let x = self.pop();
        let v = f(self.b, x);
        self.push(v);
    }

    /// An operator the interpreter executes nothing for (a wrap or a reinterpretation: the operand
    /// stays where it is, a local, a constant or a slot), so the result is held as the operand was.
    fn free_unary(&mut self, f: impl FnOnce(&mut cranelift_frontend::FunctionBuilder<'_>, Value) -> Value) {
        let lazy = *self.lazy.last().expect("validated: operand stack underflow");
        let x = self.pop();
        let v = f(self.b, x);
        self.push_lazy(v, lazy);
    }

    fn binary(&mut self, f: impl FnOnce(&mut cranelift_frontend::FunctionBuilder<'_>, Value, Value) -> Value) {
        let (x, y) = self.pop2();
        let v = f(self.b, x, y);
        self.push(v);
    }

    /// A comparison's `i8` truth value as wasm's `i32` 0 or 1.
    fn push_bool(&mut self, c: Value) {
        let v = self.b.ins().uextend(types::I32, c);
        self.push(v);
    }

    fn icmp(&mut self, cc: IntCC) {
        let (x, y) = self.pop2();
        let c = self.b.ins().icmp(cc, x, y);
        self.push_bool(c);
    }

    fn fcmp(&mut self, cc: FloatCC) {
        let (x, y) = self.pop2();
        let c = self.b.ins().fcmp(cc, x, y);
        self.push_bool(c);
    }

    /// `extendN_s`: the low `from` bits, sign-extended.
    fn sign_extend(&mut self, from: types::Type, to: types::Type) {
        let x = self.pop();
        let low = self.b.ins().ireduce(from, x);
        let v = self.b.ins().sextend(to, low);
        self.push(v);
    }
}
