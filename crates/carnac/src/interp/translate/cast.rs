//! Translation of the GC proposal's heap-free reference operators (see
//! `interp::cast`): `ref.i31`, `i31.get_*`, `ref.eq`, `ref.test`, `ref.cast`,
//! `br_on_cast`, `br_on_cast_fail`, and the conversions `any.convert_extern`
//! / `extern.convert_any`, which leave the operand as it is.
//!
//! Must not touch: what the instructions do (`interp::cast`).

use wasmparser::Operator;

use super::{Cond, Translator};
use crate::interp::cast::{pack, CastOp};
use crate::interp::code::Instr;
use crate::module::ModuleInfo;
use crate::runtime::gc_ref::CastTarget;

impl Translator {
    /// Translates `op` if it is one of `interp::cast`'s operators.
    pub(super) fn cast(&mut self, info: &ModuleInfo, op: &Operator<'_>) -> bool {
        let target = |r: wasmparser::RefType| {
            let t = CastTarget::of(r, info).expect("validated: a heap type of an enabled proposal");
            let index = match r.heap_type() {
                wasmparser::HeapType::Concrete(i) => i.as_module_index().unwrap_or(0),
                _ => 0,
            };
            t.pack(index)
        };
        match *op {
            Operator::AnyConvertExtern | Operator::ExternConvertAny => {}
            Operator::RefI31 => self.unary(pack(CastOp::RefI31, 0)),
            Operator::I31GetS => self.unary(pack(CastOp::I31GetS, 0)),
            Operator::I31GetU => self.unary(pack(CastOp::I31GetU, 0)),
            Operator::RefEq => {
                let base = self.take_consecutive(2);
                let dst = self.push_temp();
                self.emit(Instr::Cast { head: pack(CastOp::RefEq, 0), src: base, dst });
            }
            Operator::RefTestNonNull { hty } => self.unary(pack(CastOp::RefTest, target(ref_of(false, hty)))),
            Operator::RefTestNullable { hty } => self.unary(pack(CastOp::RefTest, target(ref_of(true, hty)))),
            Operator::RefCastNonNull { hty } | Operator::RefCastNullable { hty } => {
                let nullable = matches!(op, Operator::RefCastNullable { .. });
                let pos = self.stack.len() - 1;
                self.materialize_const_at(pos);
                let operand = self.stack[pos].op;
                let src = self.pop();
                self.emit(Instr::Cast { head: pack(CastOp::RefCast, target(ref_of(nullable, hty))), src, dst: src });
                self.push(operand);
            }
            Operator::BrOnCast { relative_depth, to_ref_type, .. }
            | Operator::BrOnCastFail { relative_depth, to_ref_type, .. } => {
                // The test into a temporary, then a conditional branch on it
                // with the reference still on the stack.
                let pos = self.stack.len() - 1;
                self.materialize_const_at(pos);
                let operand = self.stack[pos].op;
                let src = self.pop();
                self.push(operand);
                let dst = self.push_temp();
                self.emit(Instr::Cast { head: pack(CastOp::RefTest, target(to_ref_type)), src, dst });
                let slot = self.pop();
                let inverted = matches!(op, Operator::BrOnCastFail { .. });
                self.br_if(Cond::Slot { slot, inverted }, relative_depth);
            }
            _ => return false,
        }
        true
    }

    /// An operator of one operand and one result.
    fn unary(&mut self, head: u32) {
        let src = self.pop();
        let dst = self.push_temp();
        self.emit(Instr::Cast { head, src, dst });
    }
}

/// The reference type `(ref null? hty)`.
fn ref_of(nullable: bool, hty: wasmparser::HeapType) -> wasmparser::RefType {
    wasmparser::RefType::new(nullable, hty).expect("validated: an encodable reference type")
}
