//! The trap codes compiled code carries, and what each means to Carnac.
//!
//! Why this exists: a trap in compiled code is a machine instruction (an
//! explicit `ud2`/`brk`, or a load that faults on a guard page); all the
//! runtime learns when it fires is the faulting pc. The compiler records a
//! trap code for each such pc, and this module turns it into the same
//! [`TrapKind`] the interpreter reports, so both tiers fail with the same kind
//! and message. Cranelift's own codes cover what Cranelift detects itself
//! (division, conversions, stack limit, heap accesses flagged with a trap code);
//! the user codes below cover the checks the translator emits.
//!
//! A code is a byte, Cranelift's raw encoding of its `TrapCode`, never 0 (so 0
//! can mean "no trap"): what the signal handler stores, artifacts record and
//! the loader checks. The bytes are written out here so that a build without
//! Cranelift (the `loader` feature) reads them the same way; [`clif`] gives
//! the translator the same codes as Cranelift's type, and a test checks that
//! the two agree.

use crate::runtime::trap::TrapKind;

/// Cranelift's `TrapCode::STACK_OVERFLOW`.
pub(crate) const STACK_OVERFLOW: u8 = 251;
/// Cranelift's `TrapCode::INTEGER_OVERFLOW`.
pub(crate) const INTEGER_OVERFLOW: u8 = 252;
/// Cranelift's `TrapCode::HEAP_OUT_OF_BOUNDS`.
pub(crate) const HEAP_OUT_OF_BOUNDS: u8 = 253;
/// Cranelift's `TrapCode::INTEGER_DIVISION_BY_ZERO`.
pub(crate) const INTEGER_DIVISION_BY_ZERO: u8 = 254;
/// Cranelift's `TrapCode::BAD_CONVERSION_TO_INTEGER`.
pub(crate) const BAD_CONVERSION_TO_INTEGER: u8 = 255;
/// `unreachable` was executed.
pub(crate) const UNREACHABLE: u8 = 1;
/// `table.get`/`table.set`/`call_indirect` with an index out of the table's bounds.
pub(crate) const TABLE_OUT_OF_BOUNDS: u8 = 2;
/// `call_indirect` found a null element.
pub(crate) const INDIRECT_CALL_TO_NULL: u8 = 3;
/// `call_indirect` found a function of another type.
pub(crate) const BAD_SIGNATURE: u8 = 4;
/// A builtin (or a host function called through one) recorded a trap in the
/// current activation; the unwinder takes the kind from there.
pub(crate) const TRAP_PENDING: u8 = 5;
/// An atomic access at an address that is not a multiple of its size.
///
/// (A new code changes no persisted layout: an artifact records trap sites as
/// these bytes, which the loader checks with [`is_known`]; the builtins it calls
/// are reached through the runtime's own table. So adding one, or a builtin,
/// leaves `artifact::FORMAT_VERSION` as it is: an artifact of an older build is
/// refused for its build id anyway.)
pub(crate) const UNALIGNED_ATOMIC: u8 = 6;
/// As [`TRAP_PENDING`], at a tail call made as an ordinary call (through
/// the `call_store_func` builtin, to a host or interpreted function): the
/// trapping frame made the tail call, which replaced it, so the backtrace
/// leaves it out (as the interpreter's and Wasmtime's do).
pub(crate) const TRAP_PENDING_TAIL: u8 = 7;
/// `call_ref`/`return_call_ref` through a null function reference.
pub(crate) const NULL_FUNCTION_REFERENCE: u8 = 8;
/// `ref.as_non_null` of a null reference.
pub(crate) const NULL_REFERENCE: u8 = 9;

/// The trap kind a trap code stands for; `None` for [`TRAP_PENDING`] and
/// [`TRAP_PENDING_TAIL`] (the kind is the one the builtin recorded) and for
/// codes Carnac never emits.
pub(crate) fn trap_kind(code: u8) -> Option<TrapKind> {
    Some(match code {
        HEAP_OUT_OF_BOUNDS => TrapKind::MemoryOutOfBounds,
        INTEGER_OVERFLOW => TrapKind::IntegerOverflow,
        INTEGER_DIVISION_BY_ZERO => TrapKind::IntegerDivisionByZero,
        BAD_CONVERSION_TO_INTEGER => TrapKind::BadConversionToInteger,
        STACK_OVERFLOW => TrapKind::StackExhausted,
        UNREACHABLE => TrapKind::Unreachable,
        TABLE_OUT_OF_BOUNDS => TrapKind::TableOutOfBounds,
        INDIRECT_CALL_TO_NULL => TrapKind::IndirectCallToNull,
        BAD_SIGNATURE => TrapKind::BadSignature,
        UNALIGNED_ATOMIC => TrapKind::UnalignedAtomic,
        NULL_FUNCTION_REFERENCE => TrapKind::NullFunctionReference,
        NULL_REFERENCE => TrapKind::NullReference,
        _ => return None,
    })
}

/// Whether compiled code may carry `code` (what the loader accepts in an artifact).
pub(crate) fn is_known(code: u8) -> bool {
    trap_kind(code).is_some() || code == TRAP_PENDING || code == TRAP_PENDING_TAIL
}

/// The same codes as Cranelift's type, for the translator.
#[cfg(carnac_compiled)]
pub(crate) mod clif {
    use cranelift_codegen::ir::TrapCode;

    /// One of this module's bytes as Cranelift's code.
    const fn code(byte: u8) -> TrapCode {
        match std::num::NonZeroU8::new(byte) {
            Some(b) => TrapCode::from_raw(b),
            None => panic!("trap code 0"),
        }
    }

    pub(crate) const UNREACHABLE: TrapCode = code(super::UNREACHABLE);
    pub(crate) const TABLE_OUT_OF_BOUNDS: TrapCode = code(super::TABLE_OUT_OF_BOUNDS);
    pub(crate) const INDIRECT_CALL_TO_NULL: TrapCode = code(super::INDIRECT_CALL_TO_NULL);
    pub(crate) const BAD_SIGNATURE: TrapCode = code(super::BAD_SIGNATURE);
    pub(crate) const TRAP_PENDING: TrapCode = code(super::TRAP_PENDING);
    pub(crate) const UNALIGNED_ATOMIC: TrapCode = code(super::UNALIGNED_ATOMIC);
    pub(crate) const TRAP_PENDING_TAIL: TrapCode = code(super::TRAP_PENDING_TAIL);
    pub(crate) const NULL_FUNCTION_REFERENCE: TrapCode = code(super::NULL_FUNCTION_REFERENCE);
    pub(crate) const NULL_REFERENCE: TrapCode = code(super::NULL_REFERENCE);

    /// A Cranelift trap code as the byte the runtime stores (never 0).
    pub(crate) fn to_u8(code: TrapCode) -> u8 {
        code.as_raw().get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_name_their_kinds() {
        let all = [
            HEAP_OUT_OF_BOUNDS,
            INTEGER_OVERFLOW,
            INTEGER_DIVISION_BY_ZERO,
            BAD_CONVERSION_TO_INTEGER,
            STACK_OVERFLOW,
            UNREACHABLE,
            TABLE_OUT_OF_BOUNDS,
            INDIRECT_CALL_TO_NULL,
            BAD_SIGNATURE,
            TRAP_PENDING,
            UNALIGNED_ATOMIC,
            TRAP_PENDING_TAIL,
            NULL_FUNCTION_REFERENCE,
            NULL_REFERENCE,
        ];
        for code in all {
            assert!(is_known(code));
            assert_eq!(trap_kind(code).is_none(), code == TRAP_PENDING || code == TRAP_PENDING_TAIL, "{code}");
        }
        assert!(!is_known(0) && !is_known(10));
        assert_eq!(trap_kind(UNALIGNED_ATOMIC), Some(TrapKind::UnalignedAtomic));
        assert_eq!(trap_kind(STACK_OVERFLOW), Some(TrapKind::StackExhausted));
    }

    /// The bytes are Cranelift's encoding (artifacts and the loader-only
    /// build depend on it).
    #[cfg(carnac_compiled)]
    #[test]
    fn the_bytes_are_cranelifts_codes() {
        use cranelift_codegen::ir::TrapCode;
        let pairs = [
            (HEAP_OUT_OF_BOUNDS, TrapCode::HEAP_OUT_OF_BOUNDS),
            (INTEGER_OVERFLOW, TrapCode::INTEGER_OVERFLOW),
            (INTEGER_DIVISION_BY_ZERO, TrapCode::INTEGER_DIVISION_BY_ZERO),
            (BAD_CONVERSION_TO_INTEGER, TrapCode::BAD_CONVERSION_TO_INTEGER),
            (STACK_OVERFLOW, TrapCode::STACK_OVERFLOW),
            (UNREACHABLE, TrapCode::unwrap_user(1)),
            (TABLE_OUT_OF_BOUNDS, TrapCode::unwrap_user(2)),
            (INDIRECT_CALL_TO_NULL, TrapCode::unwrap_user(3)),
            (BAD_SIGNATURE, TrapCode::unwrap_user(4)),
            (TRAP_PENDING, TrapCode::unwrap_user(5)),
            (UNALIGNED_ATOMIC, TrapCode::unwrap_user(6)),
        ];
        for (byte, code) in pairs {
            assert_eq!(clif::to_u8(code), byte, "{code}");
        }
        assert_eq!(clif::to_u8(clif::UNREACHABLE), UNREACHABLE);
        assert_eq!(clif::to_u8(clif::TRAP_PENDING), TRAP_PENDING);
    }
}
