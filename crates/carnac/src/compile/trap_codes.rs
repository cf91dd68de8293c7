//! The trap codes compiled code carries, and what each means to Carnac.
//!
//! Why this exists: a trap in compiled code is a machine instruction (an
//! explicit `ud2`/`brk`, or a load that faults on a guard page); all the
//! runtime learns when it fires is the faulting pc. Cranelift records a
//! [`TrapCode`] for each such pc, and this module turns it into the same
//! [`TrapKind`] the interpreter reports, so both tiers fail with the same kind
//! and message. Cranelift's own codes cover what Cranelift detects itself
//! (division, conversions, stack limit, heap accesses flagged with a trap code);
//! the user codes below cover the checks the translator emits.
//!
//! The signal handler stores codes as bytes ([`to_u8`], [`from_u8`]): a code's
//! byte is Cranelift's raw encoding, nonzero, so 0 can mean "no trap".

use cranelift_codegen::ir::TrapCode;

use crate::runtime::trap::TrapKind;

/// `unreachable` was executed.
pub(crate) const UNREACHABLE: TrapCode = TrapCode::unwrap_user(1);
/// `table.get`/`table.set`/`call_indirect` with an index out of the table's bounds.
pub(crate) const TABLE_OUT_OF_BOUNDS: TrapCode = TrapCode::unwrap_user(2);
/// `call_indirect` found a null element.
pub(crate) const INDIRECT_CALL_TO_NULL: TrapCode = TrapCode::unwrap_user(3);
/// `call_indirect` found a function of another type.
pub(crate) const BAD_SIGNATURE: TrapCode = TrapCode::unwrap_user(4);
/// A builtin (or a host function called through one) recorded a trap in the
/// current activation; the unwinder takes the kind from there.
pub(crate) const TRAP_PENDING: TrapCode = TrapCode::unwrap_user(5);

/// The trap kind a trap code stands for; `None` for [`TRAP_PENDING`] (the kind
/// is the one the builtin recorded) and for codes Carnac never emits.
pub(crate) fn trap_kind(code: TrapCode) -> Option<TrapKind> {
    Some(match code {
        TrapCode::HEAP_OUT_OF_BOUNDS => TrapKind::MemoryOutOfBounds,
        TrapCode::INTEGER_OVERFLOW => TrapKind::IntegerOverflow,
        TrapCode::INTEGER_DIVISION_BY_ZERO => TrapKind::IntegerDivisionByZero,
        TrapCode::BAD_CONVERSION_TO_INTEGER => TrapKind::BadConversionToInteger,
        TrapCode::STACK_OVERFLOW => TrapKind::StackExhausted,
        UNREACHABLE => TrapKind::Unreachable,
        TABLE_OUT_OF_BOUNDS => TrapKind::TableOutOfBounds,
        INDIRECT_CALL_TO_NULL => TrapKind::IndirectCallToNull,
        BAD_SIGNATURE => TrapKind::BadSignature,
        _ => return None,
    })
}

/// A trap code as the byte the signal handler stores (never 0).
pub(crate) fn to_u8(code: TrapCode) -> u8 {
    code.as_raw().get()
}

/// The trap code a byte from [`to_u8`] stands for; `None` for 0.
pub(crate) fn from_u8(byte: u8) -> Option<TrapCode> {
    std::num::NonZeroU8::new(byte).map(TrapCode::from_raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_bytes_and_name_their_kinds() {
        let all = [
            TrapCode::HEAP_OUT_OF_BOUNDS,
            TrapCode::INTEGER_OVERFLOW,
            TrapCode::INTEGER_DIVISION_BY_ZERO,
            TrapCode::BAD_CONVERSION_TO_INTEGER,
            TrapCode::STACK_OVERFLOW,
            UNREACHABLE,
            TABLE_OUT_OF_BOUNDS,
            INDIRECT_CALL_TO_NULL,
            BAD_SIGNATURE,
            TRAP_PENDING,
        ];
        for code in all {
            assert_eq!(from_u8(to_u8(code)), Some(code));
            assert_eq!(trap_kind(code).is_none(), code == TRAP_PENDING, "{code}");
        }
        assert_eq!(from_u8(0), None);
        assert_eq!(trap_kind(TrapCode::STACK_OVERFLOW), Some(TrapKind::StackExhausted));
    }
}
