//! SSE2 versions of the SIMD operators that dominate real programs (integer
//! add/sub, compare, bitmask, widen, narrow, dot product, shifts), used by
//! `simd.rs` on x86_64 instead of its portable lane loops, which the compiler
//! leaves scalar for these operators. Each is one or two SSE2 instructions.
//!
//! SSE2 is part of the x86_64 baseline: every x86_64 processor has it, so no
//! runtime detection is needed. The only `unsafe` is calling the
//! `#[target_feature(enable = "sse2")]` bodies, which Rust requires even when
//! the feature is enabled for the whole build.

use std::arch::x86_64::*;

#[target_feature(enable = "sse2")]
fn to_m(v: u128) -> __m128i {
    _mm_set_epi64x((v >> 64) as i64, v as i64)
}

#[target_feature(enable = "sse2")]
fn from_m(m: __m128i) -> u128 {
    let lo = _mm_cvtsi128_si64(m) as u64;
    let hi = _mm_cvtsi128_si64(_mm_unpackhi_epi64(m, m)) as u64;
    lo as u128 | (hi as u128) << 64
}

macro_rules! binary {
    ($($name:ident => |$a:ident, $b:ident| $e:expr;)*) => {$(
        #[inline(always)]
        pub(super) fn $name(a: u128, b: u128) -> u128 {
            #[target_feature(enable = "sse2")]
            fn imp(a: u128, b: u128) -> u128 {
                let ($a, $b) = (to_m(a), to_m(b));
                from_m($e)
            }
            // SAFETY: SSE2 is part of the x86_64 baseline (see the module docs).
            unsafe { imp(a, b) }
        }
    )*};
}

macro_rules! unary {
    ($($name:ident => |$a:ident| $e:expr;)*) => {$(
        #[inline(always)]
        pub(super) fn $name(a: u128) -> u128 {
            #[target_feature(enable = "sse2")]
            fn imp(a: u128) -> u128 {
                let $a = to_m(a);
                from_m($e)
            }
            // SAFETY: SSE2 is part of the x86_64 baseline (see the module docs).
            unsafe { imp(a) }
        }
    )*};
}

macro_rules! shift {
    ($($name:ident => |$a:ident, $n:ident| $e:expr, $mask:expr;)*) => {$(
        #[inline(always)]
        pub(super) fn $name(a: u128, count: u32) -> u128 {
            #[target_feature(enable = "sse2")]
            fn imp(a: u128, count: u32) -> u128 {
                let ($a, $n) = (to_m(a), _mm_cvtsi32_si128((count & $mask) as i32));
                from_m($e)
            }
            // SAFETY: SSE2 is part of the x86_64 baseline (see the module docs).
            unsafe { imp(a, count) }
        }
    )*};
}

binary! {
    i8x16_add => |a, b| _mm_add_epi8(a, b);
    i16x8_add => |a, b| _mm_add_epi16(a, b);
    i32x4_add => |a, b| _mm_add_epi32(a, b);
    i64x2_add => |a, b| _mm_add_epi64(a, b);
    i8x16_sub => |a, b| _mm_sub_epi8(a, b);
    i16x8_sub => |a, b| _mm_sub_epi16(a, b);
    i32x4_sub => |a, b| _mm_sub_epi32(a, b);
    i64x2_sub => |a, b| _mm_sub_epi64(a, b);
    i16x8_mul => |a, b| _mm_mullo_epi16(a, b);
    i8x16_eq => |a, b| _mm_cmpeq_epi8(a, b);
    i16x8_eq => |a, b| _mm_cmpeq_epi16(a, b);
    i32x4_eq => |a, b| _mm_cmpeq_epi32(a, b);
    i32x4_dot_i16x8_s => |a, b| _mm_madd_epi16(a, b);
    i8x16_narrow_i16x8_s => |a, b| _mm_packs_epi16(a, b);
    i8x16_narrow_i16x8_u => |a, b| _mm_packus_epi16(a, b);
    i16x8_narrow_i32x4_s => |a, b| _mm_packs_epi32(a, b);
    i8x16_add_sat_u => |a, b| _mm_adds_epu8(a, b);
    i8x16_avgr_u => |a, b| _mm_avg_epu8(a, b);
    i16x8_avgr_u => |a, b| _mm_avg_epu16(a, b);
    i8x16_min_u => |a, b| _mm_min_epu8(a, b);
    i8x16_max_u => |a, b| _mm_max_epu8(a, b);
    i16x8_min_s => |a, b| _mm_min_epi16(a, b);
    i16x8_max_s => |a, b| _mm_max_epi16(a, b);
}

unary! {
    i16x8_extend_low_i8x16_u => |a| _mm_unpacklo_epi8(a, _mm_setzero_si128());
    i16x8_extend_high_i8x16_u => |a| _mm_unpackhi_epi8(a, _mm_setzero_si128());
    i32x4_extend_low_i16x8_u => |a| _mm_unpacklo_epi16(a, _mm_setzero_si128());
    i32x4_extend_high_i16x8_u => |a| _mm_unpackhi_epi16(a, _mm_setzero_si128());
}

shift! {
    i16x8_shl => |a, n| _mm_sll_epi16(a, n), 15;
    i16x8_shr_u => |a, n| _mm_srl_epi16(a, n), 15;
    i16x8_shr_s => |a, n| _mm_sra_epi16(a, n), 15;
    i32x4_shl => |a, n| _mm_sll_epi32(a, n), 31;
    i32x4_shr_u => |a, n| _mm_srl_epi32(a, n), 31;
    i32x4_shr_s => |a, n| _mm_sra_epi32(a, n), 31;
    i64x2_shl => |a, n| _mm_sll_epi64(a, n), 63;
    i64x2_shr_u => |a, n| _mm_srl_epi64(a, n), 63;
}

/// `i8x16.bitmask`: the top bit of each byte.
#[inline(always)]
pub(super) fn i8x16_bitmask(a: u128) -> u32 {
    #[target_feature(enable = "sse2")]
    fn imp(a: u128) -> u32 {
        _mm_movemask_epi8(to_m(a)) as u32
    }
    // SAFETY: SSE2 is part of the x86_64 baseline (see the module docs).
    unsafe { imp(a) }
}
