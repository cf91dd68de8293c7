//! Numeric semantics that Rust's operators do not give directly: WebAssembly's
//! float min/max, and float-to-int truncation with its traps. Pure functions.

use crate::runtime::trap::TrapKind;

#[inline]
pub(crate) fn f32_min(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        return a + b;
    }
    if a == b {
        // min(-0, +0) = -0: the sign bits are or-ed.
        return f32::from_bits(a.to_bits() | b.to_bits());
    }
    if a < b {
        a
    } else {
        b
    }
}

#[inline]
pub(crate) fn f32_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        return a + b;
    }
    if a == b {
        return f32::from_bits(a.to_bits() & b.to_bits());
    }
    if a > b {
        a
    } else {
        b
    }
}

#[inline]
pub(crate) fn f64_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        return a + b;
    }
    if a == b {
        return f64::from_bits(a.to_bits() | b.to_bits());
    }
    if a < b {
        a
    } else {
        b
    }
}

#[inline]
pub(crate) fn f64_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        return a + b;
    }
    if a == b {
        return f64::from_bits(a.to_bits() & b.to_bits());
    }
    if a > b {
        a
    } else {
        b
    }
}

/// Rounding that returns a quiet NaN for any NaN input (the library functions
/// behind `floor` and friends may return a signalling NaN unchanged, which
/// WebAssembly does not allow).
macro_rules! round {
    ($name:ident, $f:ty, $quiet:expr, $op:ident) => {
        #[inline]
        pub(crate) fn $name(x: $f) -> $f {
            if x.is_nan() {
                return <$f>::from_bits(x.to_bits() | $quiet);
            }
            x.$op()
        }
    };
}
round!(f32_ceil, f32, 0x0040_0000, ceil);
round!(f32_floor, f32, 0x0040_0000, floor);
round!(f32_trunc, f32, 0x0040_0000, trunc);
round!(f32_nearest, f32, 0x0040_0000, round_ties_even);
round!(f64_ceil, f64, 0x0008_0000_0000_0000, ceil);
round!(f64_floor, f64, 0x0008_0000_0000_0000, floor);
round!(f64_trunc, f64, 0x0008_0000_0000_0000, trunc);
round!(f64_nearest, f64, 0x0008_0000_0000_0000, round_ties_even);

/// Checked truncation: NaN is an invalid conversion; a value outside the open
/// interval (lo, hi) overflows.
macro_rules! trunc {
    ($name:ident, $f:ty, $i:ty, $lo:expr, $hi:expr) => {
        #[inline]
        pub(crate) fn $name(x: $f) -> Result<$i, TrapKind> {
            if x.is_nan() {
                return Err(TrapKind::BadConversionToInteger);
            }
            if !(x > $lo && x < $hi) {
                return Err(TrapKind::IntegerOverflow);
            }
            Ok(x as $i)
        }
    };
}
trunc!(i32_trunc_f32_s, f32, i32, -2147483904.0f32, 2147483648.0f32);
trunc!(i32_trunc_f32_u, f32, u32, -1.0f32, 4294967296.0f32);
trunc!(i32_trunc_f64_s, f64, i32, -2147483649.0f64, 2147483648.0f64);
trunc!(i32_trunc_f64_u, f64, u32, -1.0f64, 4294967296.0f64);
trunc!(i64_trunc_f32_s, f32, i64, -9223373136366403584.0f32, 9223372036854775808.0f32);
trunc!(i64_trunc_f32_u, f32, u64, -1.0f32, 18446744073709551616.0f32);
trunc!(i64_trunc_f64_s, f64, i64, -9223372036854777856.0f64, 9223372036854775808.0f64);
trunc!(i64_trunc_f64_u, f64, u64, -1.0f64, 18446744073709551616.0f64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_signed_zero_and_nan() {
        assert!(f32_min(0.0, -0.0).is_sign_negative());
        assert!(f32_max(-0.0, 0.0).is_sign_positive());
        assert!(f64_min(f64::NAN, 1.0).is_nan());
        assert_eq!(f64_max(1.0, 2.0), 2.0);
    }

    #[test]
    fn truncation_bounds() {
        assert_eq!(i32_trunc_f32_s(-2147483648.0), Ok(i32::MIN));
        assert_eq!(i32_trunc_f32_s(2147483648.0), Err(TrapKind::IntegerOverflow));
        assert_eq!(i32_trunc_f64_u(-0.9), Ok(0));
        assert_eq!(i64_trunc_f64_s(f64::NAN), Err(TrapKind::BadConversionToInteger));
        assert_eq!(i64_trunc_f32_s(-9223372036854775808.0), Ok(i64::MIN));
        assert_eq!(i64_trunc_f64_u(18446744073709549568.0), Ok(18446744073709549568));
    }
}
