//! Translation of the GC proposal's struct and array operators into one
//! out-of-line `Instr::Gc` each (see `interp::gc`): the operands are taken
//! into consecutive slots, and the result takes the first of them.
//!
//! Must not touch: what the instructions do (`interp::gc`).

use wasmparser::Operator;

use super::Translator;
use crate::interp::code::Instr;
use crate::interp::gc::{decode, pack, GcOp};
use crate::module::ModuleInfo;
use crate::runtime::gc_heap::{layout_of, GcLayout, Storage};

impl Translator {
    /// Translates `op` if it is a struct or array operator.
    pub(super) fn gc(&mut self, info: &ModuleInfo, op: &Operator<'_>) -> bool {
        let Some((kind, type_index, imm)) = decode(op) else { return false };
        let layout = || layout_of(info, type_index);
        let array_storage = || match layout() {
            GcLayout::Array { storage, .. } => storage,
            _ => unreachable!("validated: an array type"),
        };
        // Operands (stack entries) taken, and whether the result is a v128
        // (`None`: no result).
        let (operands, result): (usize, Option<bool>) = match kind {
            GcOp::StructNew => match layout() {
                GcLayout::Struct(l) => (l.fields.len(), Some(false)),
                _ => unreachable!("validated: a struct type"),
            },
            GcOp::StructNewDefault => (0, Some(false)),
            GcOp::StructGet | GcOp::StructGetS | GcOp::StructGetU => match layout() {
                GcLayout::Struct(l) => (1, Some(l.fields[imm as usize].0 == Storage::V128)),
                _ => unreachable!("validated: a struct type"),
            },
            GcOp::StructSet => (2, None),
            GcOp::ArrayNew => (2, Some(false)),
            GcOp::ArrayNewDefault => (1, Some(false)),
            GcOp::ArrayNewFixed => (imm as usize, Some(false)),
            GcOp::ArrayNewData | GcOp::ArrayNewElem => (2, Some(false)),
            GcOp::ArrayGet | GcOp::ArrayGetS | GcOp::ArrayGetU => (2, Some(array_storage() == Storage::V128)),
            GcOp::ArraySet => (3, None),
            GcOp::ArrayLen => (1, Some(false)),
            GcOp::ArrayFill => (4, None),
            GcOp::ArrayCopy => (5, None),
            GcOp::ArrayInitData | GcOp::ArrayInitElem => (4, None),
        };
        let base = self.take_consecutive(operands);
        match result {
            Some(true) => {
                self.push_temp_wide();
            }
            Some(false) => {
                self.push_temp();
            }
            None => {}
        }
        self.emit(Instr::Gc { head: pack(kind, type_index), base, imm });
        true
    }
}
