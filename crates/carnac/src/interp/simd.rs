//! The semantics of every SIMD operator, over lanes, in portable safe Rust.
//!
//! The executor hands each [`Instr::Simd`](super::code::Instr::Simd) to
//! [`execute`] together with the current frame and linear memory as slices, so
//! this module needs no `unsafe`: every slot and memory access is bounds-checked
//! here (memory accesses trap; slot indices were validated by the translator).
//! A v128 lives in two adjacent 64-bit slots, low half first; lane 0 is the least
//! significant, as in memory.
//!
//! Floats follow the scalar operators' rules (`ops.rs`): min/max with NaN
//! propagation and signed zeros, rounding that quiets NaNs, saturating casts for
//! `trunc_sat`.

use super::code::{for_each_simd, SimdOp, ALL_SIMD_OPS};
use super::ops;
#[cfg(target_arch = "x86_64")]
use super::simd_x86;
use crate::runtime::memory::MemoryMut;
#[cfg(test)]
use crate::runtime::memory::WASM_PAGE;
use crate::runtime::trap::TrapKind;

#[inline(always)]
fn get(frame: &[u64], s: u32) -> u128 {
    let s = s as usize;
    frame[s] as u128 | (frame[s + 1] as u128) << 64
}

#[inline(always)]
fn set(frame: &mut [u64], s: u32, v: u128) {
    let s = s as usize;
    frame[s] = v as u64;
    frame[s + 1] = (v >> 64) as u64;
}

/// Conversions between a v128 and its lanes of one shape (shifts and casts,
/// which the compiler turns into register moves).
macro_rules! lanes {
    ($($get:ident $put:ident $t:ty, $u:ty, $n:literal;)*) => {$(
        #[inline(always)]
        fn $get(v: u128) -> [$t; $n] {
            const BITS: usize = 128 / $n;
            std::array::from_fn(|i| <$t>::from_bits_of((v >> (i * BITS)) as $u))
        }
        #[inline(always)]
        fn $put(l: [$t; $n]) -> u128 {
            const BITS: usize = 128 / $n;
            let mut v = 0u128;
            for (i, x) in l.iter().enumerate() {
                v |= (x.bits_of() as u128) << (i * BITS);
            }
            v
        }
    )*};
}

/// A lane type's bits as the unsigned integer of the same width.
trait LaneBits<U> {
    fn from_bits_of(u: U) -> Self;
    fn bits_of(self) -> U;
}
macro_rules! lane_bits {
    ($($t:ty, $u:ty, |$x:ident| $from:expr, |$y:ident| $to:expr;)*) => {$(
        impl LaneBits<$u> for $t {
            #[inline(always)]
            fn from_bits_of($x: $u) -> Self { $from }
            #[inline(always)]
            fn bits_of(self) -> $u { let $y = self; $to }
        }
    )*};
}
lane_bits! {
    i8, u8, |x| x as i8, |y| y as u8;
    u8, u8, |x| x, |y| y;
    i16, u16, |x| x as i16, |y| y as u16;
    u16, u16, |x| x, |y| y;
    i32, u32, |x| x as i32, |y| y as u32;
    u32, u32, |x| x, |y| y;
    i64, u64, |x| x as i64, |y| y as u64;
    u64, u64, |x| x, |y| y;
    f32, u32, |x| f32::from_bits(x), |y| y.to_bits();
    f64, u64, |x| f64::from_bits(x), |y| y.to_bits();
}
lanes! {
    i8x16 from_i8x16 i8, u8, 16;
    u8x16 from_u8x16 u8, u8, 16;
    i16x8 from_i16x8 i16, u16, 8;
    u16x8 from_u16x8 u16, u16, 8;
    i32x4 from_i32x4 i32, u32, 4;
    u32x4 from_u32x4 u32, u32, 4;
    i64x2 from_i64x2 i64, u64, 2;
    u64x2 from_u64x2 u64, u64, 2;
    f32x4 from_f32x4 f32, u32, 4;
    f64x2 from_f64x2 f64, u64, 2;
}

/// The SSE2 form of an operator on x86_64, the portable one elsewhere. Debug
/// builds on x86_64 compute both and check they agree, so the test suites
/// (the spec's SIMD files above all) keep the portable code honest too.
macro_rules! x86_or {
    ($fast:expr, $portable:expr) => {{
        #[cfg(target_arch = "x86_64")]
        let r = $fast;
        #[cfg(all(target_arch = "x86_64", debug_assertions))]
        debug_assert_eq!(r, $portable, "SSE2 and portable results differ");
        #[cfg(not(target_arch = "x86_64"))]
        let r = $portable;
        r
    }};
}

/// Lane-wise unary operation.
macro_rules! map1 {
    ($get:ident $put:ident, $v:expr, |$x:ident| $e:expr) => {
        $put($get($v).map(|$x| $e))
    };
}

/// Lane-wise binary operation.
macro_rules! map2 {
    ($get:ident $put:ident, $a:expr, $b:expr, |$x:ident, $y:ident| $e:expr) => {{
        let (l, r) = ($get($a), $get($b));
        $put(std::array::from_fn(|i| {
            let ($x, $y) = (l[i], r[i]);
            $e
        }))
    }};
}

/// Lane-wise comparison: all ones where it holds.
macro_rules! cmp {
    ($get:ident $put:ident $mask:ty, $a:expr, $b:expr, |$x:ident, $y:ident| $e:expr) => {{
        let (l, r) = ($get($a), $get($b));
        $put(std::array::from_fn(|i| {
            let ($x, $y) = (l[i], r[i]);
            if $e {
                -1 as $mask
            } else {
                0
            }
        }))
    }};
}

/// Widening of half the lanes (`$half` 0 = low, 1 = high).
macro_rules! extend {
    ($get:ident $put:ident $wide:ty, $n:literal, $v:expr, $half:expr) => {{
        let l = $get($v);
        $put(std::array::from_fn(|i| l[i + $half * $n] as $wide))
    }};
}

/// Widening multiply of half the lanes.
macro_rules! ext_mul {
    ($get:ident $put:ident $wide:ty, $n:literal, $a:expr, $b:expr, $half:expr) => {{
        let (l, r) = ($get($a), $get($b));
        $put(std::array::from_fn(|i| (l[i + $half * $n] as $wide).wrapping_mul(r[i + $half * $n] as $wide)))
    }};
}

/// Pairwise widening add.
macro_rules! ext_add_pairwise {
    ($get:ident $put:ident $wide:ty, $v:expr) => {{
        let l = $get($v);
        $put(std::array::from_fn(|i| (l[2 * i] as $wide).wrapping_add(l[2 * i + 1] as $wide)))
    }};
}

/// Saturating narrowing of two vectors into one.
macro_rules! narrow {
    ($get:ident $put:ident $narrow:ty, $n:literal, $a:expr, $b:expr) => {{
        let (l, r) = ($get($a), $get($b));
        $put(std::array::from_fn(|i| {
            let x = if i < $n { l[i] } else { r[i - $n] };
            x.clamp(<$narrow>::MIN as _, <$narrow>::MAX as _) as $narrow
        }))
    }};
}

/// Bit `i` of the result is the top bit of lane `i`.
macro_rules! bitmask {
    ($get:ident, $v:expr) => {
        $get($v).iter().enumerate().fold(0u32, |m, (i, x)| m | ((*x < 0) as u32) << i)
    };
}

/// The ten comparisons of each integer lane shape but i64x2 (which has no
/// unsigned ones): all ones in a lane where the comparison holds.
macro_rules! int_comparisons {
    ($($s:ident $u:ident $put:ident $t:ty: $eq:ident $ne:ident $lts:ident $ltu:ident $gts:ident
       $gtu:ident $les:ident $leu:ident $ges:ident $geu:ident;)*) => {
        #[inline(always)]
        fn int_compare(op: SimdOp, v: u128, w: u128) -> u128 {
            match op {
                $(
                    SimdOp::$eq => cmp!($s $put $t, v, w, |x, y| x == y),
                    SimdOp::$ne => cmp!($s $put $t, v, w, |x, y| x != y),
                    SimdOp::$lts => cmp!($s $put $t, v, w, |x, y| x < y),
                    SimdOp::$ltu => cmp!($u $put $t, v, w, |x, y| x < y),
                    SimdOp::$gts => cmp!($s $put $t, v, w, |x, y| x > y),
                    SimdOp::$gtu => cmp!($u $put $t, v, w, |x, y| x > y),
                    SimdOp::$les => cmp!($s $put $t, v, w, |x, y| x <= y),
                    SimdOp::$leu => cmp!($u $put $t, v, w, |x, y| x <= y),
                    SimdOp::$ges => cmp!($s $put $t, v, w, |x, y| x >= y),
                    SimdOp::$geu => cmp!($u $put $t, v, w, |x, y| x >= y),
                )*
                _ => unreachable!("{op:?} is not an integer comparison"),
            }
        }
    };
}
int_comparisons! {
    i8x16 u8x16 from_i8x16 i8: I8x16Eq I8x16Ne I8x16LtS I8x16LtU I8x16GtS I8x16GtU I8x16LeS I8x16LeU I8x16GeS I8x16GeU;
    i16x8 u16x8 from_i16x8 i16: I16x8Eq I16x8Ne I16x8LtS I16x8LtU I16x8GtS I16x8GtU I16x8LeS I16x8LeU I16x8GeS I16x8GeU;
    i32x4 u32x4 from_i32x4 i32: I32x4Eq I32x4Ne I32x4LtS I32x4LtU I32x4GtS I32x4GtU I32x4LeS I32x4LeU I32x4GeS I32x4GeU;
}

fn abs_f32(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0x7fff_ffff)
}
fn neg_f32(x: f32) -> f32 {
    f32::from_bits(x.to_bits() ^ 0x8000_0000)
}
fn abs_f64(x: f64) -> f64 {
    f64::from_bits(x.to_bits() & 0x7fff_ffff_ffff_ffff)
}
fn neg_f64(x: f64) -> f64 {
    f64::from_bits(x.to_bits() ^ 0x8000_0000_0000_0000)
}

/// Reads `N` bytes of memory at `addr + offset`, or traps.
#[inline(always)]
fn read<const N: usize>(mem: &MemoryMut<'_>, addr: u64, offset: u32) -> Result<[u8; N], TrapKind> {
    let ea = (addr as u32 as u64 + offset as u64) as usize;
    match mem.get(ea..ea + N) {
        Some(b) => Ok(b.try_into().expect("N bytes")),
        None => Err(TrapKind::MemoryOutOfBounds),
    }
}

/// Writes `bytes` to memory at `addr + offset`, or traps (writing nothing).
#[inline(always)]
fn write(mem: &mut MemoryMut<'_>, addr: u64, offset: u32, bytes: &[u8]) -> Result<(), TrapKind> {
    let ea = (addr as u32 as u64 + offset as u64) as usize;
    match mem.get_mut(ea..ea + bytes.len()) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            Ok(())
        }
        None => Err(TrapKind::MemoryOutOfBounds),
    }
}

/// Reads 16 bytes at `addr + offset` as two little-endian halves, or traps.
#[inline(always)]
fn read_halves(mem: &MemoryMut<'_>, addr: u64, offset: u32) -> Result<[u64; 2], TrapKind> {
    let ea = (addr as u32 as u64 + offset as u64) as usize;
    match mem.get(ea..ea + 16) {
        Some(b) => {
            let (lo, hi) = b.split_at(8);
            Ok([
                u64::from_le_bytes(lo.try_into().expect("8 bytes")),
                u64::from_le_bytes(hi.try_into().expect("8 bytes")),
            ])
        }
        None => Err(TrapKind::MemoryOutOfBounds),
    }
}

/// Writes two little-endian halves as 16 bytes at `addr + offset`, or traps.
#[inline(always)]
fn write_halves(mem: &mut MemoryMut<'_>, addr: u64, offset: u32, lo: u64, hi: u64) -> Result<(), TrapKind> {
    let ea = (addr as u32 as u64 + offset as u64) as usize;
    match mem.get_mut(ea..ea + 16) {
        Some(b) => {
            let (l, h) = b.split_at_mut(8);
            l.copy_from_slice(&lo.to_le_bytes());
            h.copy_from_slice(&hi.to_le_bytes());
            Ok(())
        }
        None => Err(TrapKind::MemoryOutOfBounds),
    }
}

/// Replaces lane `lane` (of `width` bytes) of `v` with the low bytes of `x`.
#[inline(always)]
fn with_lane(v: u128, lane: u8, width: usize, x: u64) -> u128 {
    let mut b = v.to_le_bytes();
    let at = lane as usize * width;
    b[at..at + width].copy_from_slice(&x.to_le_bytes()[..width]);
    u128::from_le_bytes(b)
}

/// Lane `lane` (of `width` bytes) of `v`, zero-extended.
#[inline(always)]
fn lane_of(v: u128, lane: u8, width: usize) -> u64 {
    let b = v.to_le_bytes();
    let at = lane as usize * width;
    let mut out = [0u8; 8];
    out[..width].copy_from_slice(&b[at..at + width]);
    u64::from_le_bytes(out)
}

#[inline(always)]
fn splat(x: u64, width: usize) -> u128 {
    let mut b = [0u8; 16];
    for chunk in b.chunks_mut(width) {
        chunk.copy_from_slice(&x.to_le_bytes()[..width]);
    }
    u128::from_le_bytes(b)
}

/// `i16x8.relaxed_dot_i8x16_i7x16_s` as Carnac defines it: both operands
/// signed, each lane the sum of two adjacent products, wrapping to 16 bits.
#[inline(always)]
fn relaxed_dot_i8x16(x: u128, y: u128) -> [i16; 8] {
    let (l, r) = (i8x16(x), i8x16(y));
    std::array::from_fn(|i| (l[2 * i] as i16 * r[2 * i] as i16).wrapping_add(l[2 * i + 1] as i16 * r[2 * i + 1] as i16))
}

/// The handler of one SIMD operator: `(lane, a, b, c, frame, memory)`.
pub(crate) type Handler = fn(u8, u32, u32, u32, &mut [u64], &mut MemoryMut<'_>) -> Result<(), TrapKind>;

/// `execute` specialised to one operator: with `OP` a constant, the compiler
/// keeps only that operator's arm, so each handler is small and the executor
/// reaches it with one indexed call.
fn handler<const OP: u8>(
    lane: u8,
    a: u32,
    b: u32,
    c: u32,
    frame: &mut [u64],
    mem: &mut MemoryMut<'_>,
) -> Result<(), TrapKind> {
    execute(const { ALL_SIMD_OPS[OP as usize] }, lane, a, b, c, frame, mem)
}

macro_rules! handlers {
    ($($shape:ident { $($op:ident),* $(,)? })*) => {
        /// Handlers indexed by `SimdOp as usize`.
        pub(crate) static HANDLERS: &[Handler] = &[$($(handler::<{ SimdOp::$op as u8 }>,)*)*];
    };
}
for_each_simd!(handlers);

/// Runs one SIMD instruction; see `for_each_simd` for the operand conventions.
#[inline(always)]
pub(crate) fn execute(
    op: SimdOp,
    lane: u8,
    a: u32,
    b: u32,
    c: u32,
    frame: &mut [u64],
    mem: &mut MemoryMut<'_>,
) -> Result<(), TrapKind> {
    use SimdOp::*;
    let scalar = |frame: &[u64], s: u32| frame[s as usize];
    // One dispatch: each arm either finishes (memory, scalar results) or yields
    // the v128 written to `a`. `v` is the v128 in `b` for the shapes that have one
    // (read defensively, since for the others `b` may be the frame's last slot).
    let v = if (b as usize) + 1 < frame.len() { get(frame, b) } else { 0 };
    let w = || get(frame, c);
    let count = || scalar(frame, c) as u32;
    let r = match op {
        // The plain 16-byte load and store move two 64-bit halves straight
        // between memory and the slots.
        V128Load => {
            let [lo, hi] = read_halves(mem, scalar(frame, b), c)?;
            frame[a as usize] = lo;
            frame[a as usize + 1] = hi;
            return Ok(());
        }
        V128Store => {
            let (lo, hi) = (frame[b as usize], frame[b as usize + 1]);
            return write_halves(mem, scalar(frame, a), c, lo, hi);
        }
        V128Load8x8S | V128Load8x8U | V128Load16x4S | V128Load16x4U | V128Load32x2S | V128Load32x2U
        | V128Load8Splat | V128Load16Splat | V128Load32Splat | V128Load64Splat | V128Load32Zero | V128Load64Zero => {
            let addr = scalar(frame, b);
            let v = match op {
                V128Load8x8S => {
                    let l = read::<8>(mem, addr, c)?;
                    from_i16x8(std::array::from_fn(|i| l[i] as i8 as i16))
                }
                V128Load8x8U => {
                    let l = read::<8>(mem, addr, c)?;
                    from_u16x8(std::array::from_fn(|i| l[i] as u16))
                }
                V128Load16x4S => {
                    let l = read::<8>(mem, addr, c)?;
                    from_i32x4(std::array::from_fn(|i| i16::from_le_bytes([l[2 * i], l[2 * i + 1]]) as i32))
                }
                V128Load16x4U => {
                    let l = read::<8>(mem, addr, c)?;
                    from_u32x4(std::array::from_fn(|i| u16::from_le_bytes([l[2 * i], l[2 * i + 1]]) as u32))
                }
                V128Load32x2S => {
                    let l = read::<8>(mem, addr, c)?;
                    from_i64x2(std::array::from_fn(|i| {
                        i32::from_le_bytes(l[4 * i..4 * i + 4].try_into().expect("4 bytes")) as i64
                    }))
                }
                V128Load32x2U => {
                    let l = read::<8>(mem, addr, c)?;
                    from_u64x2(std::array::from_fn(|i| {
                        u32::from_le_bytes(l[4 * i..4 * i + 4].try_into().expect("4 bytes")) as u64
                    }))
                }
                V128Load8Splat => splat(read::<1>(mem, addr, c)?[0] as u64, 1),
                V128Load16Splat => splat(u16::from_le_bytes(read::<2>(mem, addr, c)?) as u64, 2),
                V128Load32Splat => splat(u32::from_le_bytes(read::<4>(mem, addr, c)?) as u64, 4),
                V128Load64Splat => splat(u64::from_le_bytes(read::<8>(mem, addr, c)?), 8),
                V128Load32Zero => u32::from_le_bytes(read::<4>(mem, addr, c)?) as u128,
                _ => u64::from_le_bytes(read::<8>(mem, addr, c)?) as u128,
            };
            set(frame, a, v);
            return Ok(());
        }
        V128Load8Lane | V128Load16Lane | V128Load32Lane | V128Load64Lane => {
            let addr = scalar(frame, b);
            let v = get(frame, a);
            let v = match op {
                V128Load8Lane => with_lane(v, lane, 1, read::<1>(mem, addr, c)?[0] as u64),
                V128Load16Lane => with_lane(v, lane, 2, u16::from_le_bytes(read::<2>(mem, addr, c)?) as u64),
                V128Load32Lane => with_lane(v, lane, 4, u32::from_le_bytes(read::<4>(mem, addr, c)?) as u64),
                _ => with_lane(v, lane, 8, u64::from_le_bytes(read::<8>(mem, addr, c)?)),
            };
            set(frame, a, v);
            return Ok(());
        }
        V128Store8Lane | V128Store16Lane | V128Store32Lane | V128Store64Lane => {
            let width = match op {
                V128Store8Lane => 1,
                V128Store16Lane => 2,
                V128Store32Lane => 4,
                _ => 8,
            };
            let x = lane_of(get(frame, b), lane, width);
            return write(mem, scalar(frame, a), c, &x.to_le_bytes()[..width]);
        }
        I8x16ExtractLaneS | I8x16ExtractLaneU | I16x8ExtractLaneS | I16x8ExtractLaneU | I32x4ExtractLane
        | I64x2ExtractLane | F32x4ExtractLane | F64x2ExtractLane => {
            let v = get(frame, b);
            frame[a as usize] = match op {
                I8x16ExtractLaneS => lane_of(v, lane, 1) as i8 as i32 as u32 as u64,
                I8x16ExtractLaneU => lane_of(v, lane, 1),
                I16x8ExtractLaneS => lane_of(v, lane, 2) as i16 as i32 as u32 as u64,
                I16x8ExtractLaneU => lane_of(v, lane, 2),
                I32x4ExtractLane | F32x4ExtractLane => lane_of(v, lane, 4),
                _ => lane_of(v, lane, 8),
            };
            return Ok(());
        }
        V128AnyTrue | I8x16AllTrue | I8x16Bitmask | I16x8AllTrue | I16x8Bitmask | I32x4AllTrue | I32x4Bitmask
        | I64x2AllTrue | I64x2Bitmask => {
            let v = get(frame, b);
            frame[a as usize] = match op {
                V128AnyTrue => (v != 0) as u64,
                I8x16AllTrue => u8x16(v).iter().all(|x| *x != 0) as u64,
                I16x8AllTrue => u16x8(v).iter().all(|x| *x != 0) as u64,
                I32x4AllTrue => u32x4(v).iter().all(|x| *x != 0) as u64,
                I64x2AllTrue => u64x2(v).iter().all(|x| *x != 0) as u64,
                I8x16Bitmask => x86_or!(simd_x86::i8x16_bitmask(v), bitmask!(i8x16, v)) as u64,
                I16x8Bitmask => bitmask!(i16x8, v) as u64,
                I32x4Bitmask => bitmask!(i32x4, v) as u64,
                _ => bitmask!(i64x2, v) as u64,
            };
            return Ok(());
        }
        // ---- lanes and splats (`b` is a scalar) ----
        I8x16ReplaceLane => with_lane(get(frame, a), lane, 1, scalar(frame, b)),
        I16x8ReplaceLane => with_lane(get(frame, a), lane, 2, scalar(frame, b)),
        I32x4ReplaceLane | F32x4ReplaceLane => with_lane(get(frame, a), lane, 4, scalar(frame, b)),
        I64x2ReplaceLane | F64x2ReplaceLane => with_lane(get(frame, a), lane, 8, scalar(frame, b)),
        I8x16Splat => splat(scalar(frame, b), 1),
        I16x8Splat => splat(scalar(frame, b), 2),
        I32x4Splat | F32x4Splat => splat(scalar(frame, b), 4),
        I64x2Splat | F64x2Splat => splat(scalar(frame, b), 8),
        // ---- shuffles and select ----
        I8x16Swizzle => {
            let (l, s) = (u8x16(v), u8x16(w()));
            from_u8x16(std::array::from_fn(|i| if s[i] < 16 { l[s[i] as usize] } else { 0 }))
        }
        I8x16Shuffle => {
            let (l, r, s) = (u8x16(get(frame, a)), u8x16(v), u8x16(w()));
            from_u8x16(std::array::from_fn(|i| {
                let k = s[i] as usize;
                if k < 16 {
                    l[k]
                } else {
                    r[k - 16]
                }
            }))
        }
        V128Bitselect => {
            let (v1, mask) = (get(frame, a), w());
            (v1 & mask) | (v & !mask)
        }

        // ---- bitwise ----
        V128Not => !v,
        V128And => v & w(),
        V128AndNot => v & !w(),
        V128Or => v | w(),
        V128Xor => v ^ w(),

        // ---- comparisons ----
        I8x16Eq => x86_or!(simd_x86::i8x16_eq(v, w()), int_compare(op, v, w())),
        I16x8Eq => x86_or!(simd_x86::i16x8_eq(v, w()), int_compare(op, v, w())),
        I32x4Eq => x86_or!(simd_x86::i32x4_eq(v, w()), int_compare(op, v, w())),
        I8x16Ne | I8x16LtS | I8x16LtU | I8x16GtS | I8x16GtU | I8x16LeS | I8x16LeU | I8x16GeS | I8x16GeU | I16x8Ne
        | I16x8LtS | I16x8LtU | I16x8GtS | I16x8GtU | I16x8LeS | I16x8LeU | I16x8GeS | I16x8GeU | I32x4Ne
        | I32x4LtS | I32x4LtU | I32x4GtS | I32x4GtU | I32x4LeS | I32x4LeU | I32x4GeS | I32x4GeU => {
            int_compare(op, v, w())
        }
        I64x2Eq => cmp!(i64x2 from_i64x2 i64, v, w(), |x, y| x == y),
        I64x2Ne => cmp!(i64x2 from_i64x2 i64, v, w(), |x, y| x != y),
        I64x2LtS => cmp!(i64x2 from_i64x2 i64, v, w(), |x, y| x < y),
        I64x2GtS => cmp!(i64x2 from_i64x2 i64, v, w(), |x, y| x > y),
        I64x2LeS => cmp!(i64x2 from_i64x2 i64, v, w(), |x, y| x <= y),
        I64x2GeS => cmp!(i64x2 from_i64x2 i64, v, w(), |x, y| x >= y),
        F32x4Eq => cmp!(f32x4 from_i32x4 i32, v, w(), |x, y| x == y),
        F32x4Ne => cmp!(f32x4 from_i32x4 i32, v, w(), |x, y| x != y),
        F32x4Lt => cmp!(f32x4 from_i32x4 i32, v, w(), |x, y| x < y),
        F32x4Gt => cmp!(f32x4 from_i32x4 i32, v, w(), |x, y| x > y),
        F32x4Le => cmp!(f32x4 from_i32x4 i32, v, w(), |x, y| x <= y),
        F32x4Ge => cmp!(f32x4 from_i32x4 i32, v, w(), |x, y| x >= y),
        F64x2Eq => cmp!(f64x2 from_i64x2 i64, v, w(), |x, y| x == y),
        F64x2Ne => cmp!(f64x2 from_i64x2 i64, v, w(), |x, y| x != y),
        F64x2Lt => cmp!(f64x2 from_i64x2 i64, v, w(), |x, y| x < y),
        F64x2Gt => cmp!(f64x2 from_i64x2 i64, v, w(), |x, y| x > y),
        F64x2Le => cmp!(f64x2 from_i64x2 i64, v, w(), |x, y| x <= y),
        F64x2Ge => cmp!(f64x2 from_i64x2 i64, v, w(), |x, y| x >= y),

        // ---- i8x16 ----
        I8x16Abs => map1!(i8x16 from_i8x16, v, |x| x.wrapping_abs()),
        I8x16Neg => map1!(i8x16 from_i8x16, v, |x| x.wrapping_neg()),
        I8x16Popcnt => map1!(u8x16 from_u8x16, v, |x| x.count_ones() as u8),
        I8x16NarrowI16x8S => x86_or!(simd_x86::i8x16_narrow_i16x8_s(v, w()), narrow!(i16x8 from_i8x16 i8, 8, v, w())),
        I8x16NarrowI16x8U => x86_or!(simd_x86::i8x16_narrow_i16x8_u(v, w()), narrow!(i16x8 from_u8x16 u8, 8, v, w())),
        I8x16Shl => map1!(u8x16 from_u8x16, v, |x| x.wrapping_shl(count())),
        I8x16ShrS => map1!(i8x16 from_i8x16, v, |x| x.wrapping_shr(count())),
        I8x16ShrU => map1!(u8x16 from_u8x16, v, |x| x.wrapping_shr(count())),
        I8x16Add => x86_or!(simd_x86::i8x16_add(v, w()), map2!(u8x16 from_u8x16, v, w(), |x, y| x.wrapping_add(y))),
        I8x16AddSatS => map2!(i8x16 from_i8x16, v, w(), |x, y| x.saturating_add(y)),
        I8x16AddSatU => {
            x86_or!(simd_x86::i8x16_add_sat_u(v, w()), map2!(u8x16 from_u8x16, v, w(), |x, y| x.saturating_add(y)))
        }
        I8x16Sub => x86_or!(simd_x86::i8x16_sub(v, w()), map2!(u8x16 from_u8x16, v, w(), |x, y| x.wrapping_sub(y))),
        I8x16SubSatS => map2!(i8x16 from_i8x16, v, w(), |x, y| x.saturating_sub(y)),
        I8x16SubSatU => map2!(u8x16 from_u8x16, v, w(), |x, y| x.saturating_sub(y)),
        I8x16MinS => map2!(i8x16 from_i8x16, v, w(), |x, y| x.min(y)),
        I8x16MinU => x86_or!(simd_x86::i8x16_min_u(v, w()), map2!(u8x16 from_u8x16, v, w(), |x, y| x.min(y))),
        I8x16MaxS => map2!(i8x16 from_i8x16, v, w(), |x, y| x.max(y)),
        I8x16MaxU => x86_or!(simd_x86::i8x16_max_u(v, w()), map2!(u8x16 from_u8x16, v, w(), |x, y| x.max(y))),
        I8x16AvgrU => x86_or!(
            simd_x86::i8x16_avgr_u(v, w()),
            map2!(u8x16 from_u8x16, v, w(), |x, y| ((x as u16 + y as u16 + 1) >> 1) as u8)
        ),

        // ---- i16x8 ----
        I16x8ExtAddPairwiseI8x16S => ext_add_pairwise!(i8x16 from_i16x8 i16, v),
        I16x8ExtAddPairwiseI8x16U => ext_add_pairwise!(u8x16 from_u16x8 u16, v),
        I16x8Abs => map1!(i16x8 from_i16x8, v, |x| x.wrapping_abs()),
        I16x8Neg => map1!(i16x8 from_i16x8, v, |x| x.wrapping_neg()),
        I16x8Q15MulrSatS => map2!(i16x8 from_i16x8, v, w(), |x, y| {
            ((x as i32 * y as i32 + 0x4000) >> 15).clamp(i16::MIN as i32, i16::MAX as i32) as i16
        }),
        I16x8NarrowI32x4S => x86_or!(simd_x86::i16x8_narrow_i32x4_s(v, w()), narrow!(i32x4 from_i16x8 i16, 4, v, w())),
        I16x8NarrowI32x4U => narrow!(i32x4 from_u16x8 u16, 4, v, w()),
        I16x8ExtendLowI8x16S => extend!(i8x16 from_i16x8 i16, 8, v, 0),
        I16x8ExtendHighI8x16S => extend!(i8x16 from_i16x8 i16, 8, v, 1),
        I16x8ExtendLowI8x16U => x86_or!(simd_x86::i16x8_extend_low_i8x16_u(v), extend!(u8x16 from_u16x8 u16, 8, v, 0)),
        I16x8ExtendHighI8x16U => {
            x86_or!(simd_x86::i16x8_extend_high_i8x16_u(v), extend!(u8x16 from_u16x8 u16, 8, v, 1))
        }
        I16x8Shl => x86_or!(simd_x86::i16x8_shl(v, count()), map1!(u16x8 from_u16x8, v, |x| x.wrapping_shl(count()))),
        I16x8ShrS => {
            x86_or!(simd_x86::i16x8_shr_s(v, count()), map1!(i16x8 from_i16x8, v, |x| x.wrapping_shr(count())))
        }
        I16x8ShrU => {
            x86_or!(simd_x86::i16x8_shr_u(v, count()), map1!(u16x8 from_u16x8, v, |x| x.wrapping_shr(count())))
        }
        I16x8Add => x86_or!(simd_x86::i16x8_add(v, w()), map2!(u16x8 from_u16x8, v, w(), |x, y| x.wrapping_add(y))),
        I16x8AddSatS => map2!(i16x8 from_i16x8, v, w(), |x, y| x.saturating_add(y)),
        I16x8AddSatU => map2!(u16x8 from_u16x8, v, w(), |x, y| x.saturating_add(y)),
        I16x8Sub => x86_or!(simd_x86::i16x8_sub(v, w()), map2!(u16x8 from_u16x8, v, w(), |x, y| x.wrapping_sub(y))),
        I16x8SubSatS => map2!(i16x8 from_i16x8, v, w(), |x, y| x.saturating_sub(y)),
        I16x8SubSatU => map2!(u16x8 from_u16x8, v, w(), |x, y| x.saturating_sub(y)),
        I16x8Mul => x86_or!(simd_x86::i16x8_mul(v, w()), map2!(u16x8 from_u16x8, v, w(), |x, y| x.wrapping_mul(y))),
        I16x8MinS => x86_or!(simd_x86::i16x8_min_s(v, w()), map2!(i16x8 from_i16x8, v, w(), |x, y| x.min(y))),
        I16x8MinU => map2!(u16x8 from_u16x8, v, w(), |x, y| x.min(y)),
        I16x8MaxS => x86_or!(simd_x86::i16x8_max_s(v, w()), map2!(i16x8 from_i16x8, v, w(), |x, y| x.max(y))),
        I16x8MaxU => map2!(u16x8 from_u16x8, v, w(), |x, y| x.max(y)),
        I16x8AvgrU => x86_or!(
            simd_x86::i16x8_avgr_u(v, w()),
            map2!(u16x8 from_u16x8, v, w(), |x, y| ((x as u32 + y as u32 + 1) >> 1) as u16)
        ),
        I16x8ExtMulLowI8x16S => ext_mul!(i8x16 from_i16x8 i16, 8, v, w(), 0),
        I16x8ExtMulHighI8x16S => ext_mul!(i8x16 from_i16x8 i16, 8, v, w(), 1),
        I16x8ExtMulLowI8x16U => ext_mul!(u8x16 from_u16x8 u16, 8, v, w(), 0),
        I16x8ExtMulHighI8x16U => ext_mul!(u8x16 from_u16x8 u16, 8, v, w(), 1),

        // ---- i32x4 ----
        I32x4ExtAddPairwiseI16x8S => ext_add_pairwise!(i16x8 from_i32x4 i32, v),
        I32x4ExtAddPairwiseI16x8U => ext_add_pairwise!(u16x8 from_u32x4 u32, v),
        I32x4Abs => map1!(i32x4 from_i32x4, v, |x| x.wrapping_abs()),
        I32x4Neg => map1!(i32x4 from_i32x4, v, |x| x.wrapping_neg()),
        I32x4ExtendLowI16x8S => extend!(i16x8 from_i32x4 i32, 4, v, 0),
        I32x4ExtendHighI16x8S => extend!(i16x8 from_i32x4 i32, 4, v, 1),
        I32x4ExtendLowI16x8U => x86_or!(simd_x86::i32x4_extend_low_i16x8_u(v), extend!(u16x8 from_u32x4 u32, 4, v, 0)),
        I32x4ExtendHighI16x8U => {
            x86_or!(simd_x86::i32x4_extend_high_i16x8_u(v), extend!(u16x8 from_u32x4 u32, 4, v, 1))
        }
        I32x4Shl => x86_or!(simd_x86::i32x4_shl(v, count()), map1!(u32x4 from_u32x4, v, |x| x.wrapping_shl(count()))),
        I32x4ShrS => {
            x86_or!(simd_x86::i32x4_shr_s(v, count()), map1!(i32x4 from_i32x4, v, |x| x.wrapping_shr(count())))
        }
        I32x4ShrU => {
            x86_or!(simd_x86::i32x4_shr_u(v, count()), map1!(u32x4 from_u32x4, v, |x| x.wrapping_shr(count())))
        }
        I32x4Add => x86_or!(simd_x86::i32x4_add(v, w()), map2!(u32x4 from_u32x4, v, w(), |x, y| x.wrapping_add(y))),
        I32x4Sub => x86_or!(simd_x86::i32x4_sub(v, w()), map2!(u32x4 from_u32x4, v, w(), |x, y| x.wrapping_sub(y))),
        I32x4Mul => map2!(u32x4 from_u32x4, v, w(), |x, y| x.wrapping_mul(y)),
        I32x4MinS => map2!(i32x4 from_i32x4, v, w(), |x, y| x.min(y)),
        I32x4MinU => map2!(u32x4 from_u32x4, v, w(), |x, y| x.min(y)),
        I32x4MaxS => map2!(i32x4 from_i32x4, v, w(), |x, y| x.max(y)),
        I32x4MaxU => map2!(u32x4 from_u32x4, v, w(), |x, y| x.max(y)),
        I32x4DotI16x8S => x86_or!(simd_x86::i32x4_dot_i16x8_s(v, w()), {
            let (l, r) = (i16x8(v), i16x8(w()));
            from_i32x4(std::array::from_fn(|i| {
                (l[2 * i] as i32 * r[2 * i] as i32).wrapping_add(l[2 * i + 1] as i32 * r[2 * i + 1] as i32)
            }))
        }),
        I32x4ExtMulLowI16x8S => ext_mul!(i16x8 from_i32x4 i32, 4, v, w(), 0),
        I32x4ExtMulHighI16x8S => ext_mul!(i16x8 from_i32x4 i32, 4, v, w(), 1),
        I32x4ExtMulLowI16x8U => ext_mul!(u16x8 from_u32x4 u32, 4, v, w(), 0),
        I32x4ExtMulHighI16x8U => ext_mul!(u16x8 from_u32x4 u32, 4, v, w(), 1),

        // ---- i64x2 ----
        I64x2Abs => map1!(i64x2 from_i64x2, v, |x| x.wrapping_abs()),
        I64x2Neg => map1!(i64x2 from_i64x2, v, |x| x.wrapping_neg()),
        I64x2ExtendLowI32x4S => extend!(i32x4 from_i64x2 i64, 2, v, 0),
        I64x2ExtendHighI32x4S => extend!(i32x4 from_i64x2 i64, 2, v, 1),
        I64x2ExtendLowI32x4U => extend!(u32x4 from_u64x2 u64, 2, v, 0),
        I64x2ExtendHighI32x4U => extend!(u32x4 from_u64x2 u64, 2, v, 1),
        I64x2Shl => x86_or!(simd_x86::i64x2_shl(v, count()), map1!(u64x2 from_u64x2, v, |x| x.wrapping_shl(count()))),
        I64x2ShrS => map1!(i64x2 from_i64x2, v, |x| x.wrapping_shr(count())),
        I64x2ShrU => {
            x86_or!(simd_x86::i64x2_shr_u(v, count()), map1!(u64x2 from_u64x2, v, |x| x.wrapping_shr(count())))
        }
        I64x2Add => x86_or!(simd_x86::i64x2_add(v, w()), map2!(u64x2 from_u64x2, v, w(), |x, y| x.wrapping_add(y))),
        I64x2Sub => x86_or!(simd_x86::i64x2_sub(v, w()), map2!(u64x2 from_u64x2, v, w(), |x, y| x.wrapping_sub(y))),
        I64x2Mul => map2!(u64x2 from_u64x2, v, w(), |x, y| x.wrapping_mul(y)),
        I64x2ExtMulLowI32x4S => ext_mul!(i32x4 from_i64x2 i64, 2, v, w(), 0),
        I64x2ExtMulHighI32x4S => ext_mul!(i32x4 from_i64x2 i64, 2, v, w(), 1),
        I64x2ExtMulLowI32x4U => ext_mul!(u32x4 from_u64x2 u64, 2, v, w(), 0),
        I64x2ExtMulHighI32x4U => ext_mul!(u32x4 from_u64x2 u64, 2, v, w(), 1),

        // ---- f32x4 ----
        F32x4Ceil => map1!(f32x4 from_f32x4, v, |x| ops::f32_ceil(x)),
        F32x4Floor => map1!(f32x4 from_f32x4, v, |x| ops::f32_floor(x)),
        F32x4Trunc => map1!(f32x4 from_f32x4, v, |x| ops::f32_trunc(x)),
        F32x4Nearest => map1!(f32x4 from_f32x4, v, |x| ops::f32_nearest(x)),
        F32x4Abs => map1!(f32x4 from_f32x4, v, |x| abs_f32(x)),
        F32x4Neg => map1!(f32x4 from_f32x4, v, |x| neg_f32(x)),
        F32x4Sqrt => map1!(f32x4 from_f32x4, v, |x| x.sqrt()),
        F32x4Add => map2!(f32x4 from_f32x4, v, w(), |x, y| x + y),
        F32x4Sub => map2!(f32x4 from_f32x4, v, w(), |x, y| x - y),
        F32x4Mul => map2!(f32x4 from_f32x4, v, w(), |x, y| x * y),
        F32x4Div => map2!(f32x4 from_f32x4, v, w(), |x, y| x / y),
        F32x4Min => map2!(f32x4 from_f32x4, v, w(), |x, y| ops::f32_min(x, y)),
        F32x4Max => map2!(f32x4 from_f32x4, v, w(), |x, y| ops::f32_max(x, y)),
        F32x4PMin => map2!(f32x4 from_f32x4, v, w(), |x, y| if y < x { y } else { x }),
        F32x4PMax => map2!(f32x4 from_f32x4, v, w(), |x, y| if x < y { y } else { x }),

        // ---- f64x2 ----
        F64x2Ceil => map1!(f64x2 from_f64x2, v, |x| ops::f64_ceil(x)),
        F64x2Floor => map1!(f64x2 from_f64x2, v, |x| ops::f64_floor(x)),
        F64x2Trunc => map1!(f64x2 from_f64x2, v, |x| ops::f64_trunc(x)),
        F64x2Nearest => map1!(f64x2 from_f64x2, v, |x| ops::f64_nearest(x)),
        F64x2Abs => map1!(f64x2 from_f64x2, v, |x| abs_f64(x)),
        F64x2Neg => map1!(f64x2 from_f64x2, v, |x| neg_f64(x)),
        F64x2Sqrt => map1!(f64x2 from_f64x2, v, |x| x.sqrt()),
        F64x2Add => map2!(f64x2 from_f64x2, v, w(), |x, y| x + y),
        F64x2Sub => map2!(f64x2 from_f64x2, v, w(), |x, y| x - y),
        F64x2Mul => map2!(f64x2 from_f64x2, v, w(), |x, y| x * y),
        F64x2Div => map2!(f64x2 from_f64x2, v, w(), |x, y| x / y),
        F64x2Min => map2!(f64x2 from_f64x2, v, w(), |x, y| ops::f64_min(x, y)),
        F64x2Max => map2!(f64x2 from_f64x2, v, w(), |x, y| ops::f64_max(x, y)),
        F64x2PMin => map2!(f64x2 from_f64x2, v, w(), |x, y| if y < x { y } else { x }),
        F64x2PMax => map2!(f64x2 from_f64x2, v, w(), |x, y| if x < y { y } else { x }),

        // ---- relaxed SIMD (deterministic: see `module::relaxed`) ----
        // Unfused multiply-adds: Rust never contracts `x * y + z` into an FMA.
        F32x4RelaxedMadd => {
            let (x, y, z) = (f32x4(get(frame, a)), f32x4(v), f32x4(w()));
            from_f32x4(std::array::from_fn(|i| x[i] * y[i] + z[i]))
        }
        F32x4RelaxedNmadd => {
            let (x, y, z) = (f32x4(get(frame, a)), f32x4(v), f32x4(w()));
            from_f32x4(std::array::from_fn(|i| -(x[i] * y[i]) + z[i]))
        }
        F64x2RelaxedMadd => {
            let (x, y, z) = (f64x2(get(frame, a)), f64x2(v), f64x2(w()));
            from_f64x2(std::array::from_fn(|i| x[i] * y[i] + z[i]))
        }
        F64x2RelaxedNmadd => {
            let (x, y, z) = (f64x2(get(frame, a)), f64x2(v), f64x2(w()));
            from_f64x2(std::array::from_fn(|i| -(x[i] * y[i]) + z[i]))
        }
        I16x8RelaxedDotI8x16I7x16S => from_i16x8(relaxed_dot_i8x16(v, w())),
        I32x4RelaxedDotI8x16I7x16AddS => {
            let (d, acc) = (relaxed_dot_i8x16(get(frame, a), v), i32x4(w()));
            from_i32x4(std::array::from_fn(|i| (d[2 * i] as i32 + d[2 * i + 1] as i32).wrapping_add(acc[i])))
        }

        // ---- conversions (Rust's float-to-int `as` saturates and maps NaN to 0) ----
        I32x4TruncSatF32x4S => from_i32x4(f32x4(v).map(|x| x as i32)),
        I32x4TruncSatF32x4U => from_u32x4(f32x4(v).map(|x| x as u32)),
        F32x4ConvertI32x4S => from_f32x4(i32x4(v).map(|x| x as f32)),
        F32x4ConvertI32x4U => from_f32x4(u32x4(v).map(|x| x as f32)),
        I32x4TruncSatF64x2SZero => {
            let l = f64x2(v);
            from_i32x4([l[0] as i32, l[1] as i32, 0, 0])
        }
        I32x4TruncSatF64x2UZero => {
            let l = f64x2(v);
            from_u32x4([l[0] as u32, l[1] as u32, 0, 0])
        }
        F64x2ConvertLowI32x4S => {
            let l = i32x4(v);
            from_f64x2([l[0] as f64, l[1] as f64])
        }
        F64x2ConvertLowI32x4U => {
            let l = u32x4(v);
            from_f64x2([l[0] as f64, l[1] as f64])
        }
        F32x4DemoteF64x2Zero => {
            let l = f64x2(v);
            from_f32x4([l[0] as f32, l[1] as f32, 0.0, 0.0])
        }
        F64x2PromoteLowF32x4 => {
            let l = f32x4(v);
            from_f64x2([l[0] as f64, l[1] as f64])
        }
    };
    set(frame, a, r);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_round_trip_and_order() {
        let v: u128 = 0x0f0e0d0c_0b0a0908_07060504_03020100;
        assert_eq!(u8x16(v)[0], 0);
        assert_eq!(u8x16(v)[15], 15);
        assert_eq!(u32x4(v)[1], 0x07060504);
        assert_eq!(from_u16x8(u16x8(v)), v);
        assert_eq!(with_lane(v, 3, 4, 0xaabbccdd), 0xaabbccdd_0b0a0908_07060504_03020100);
        assert_eq!(lane_of(v, 1, 8), 0x0f0e0d0c_0b0a0908);
    }

    #[test]
    fn out_of_bounds_store_writes_nothing() {
        let ty = crate::types::MemoryType::new(1, Some(1));
        let mut memory = crate::runtime::memory::LinearMemory::new(ty, true, None, None).unwrap();
        let mut mem = memory.tracked();
        let end = WASM_PAGE as u64;
        assert_eq!(write(&mut mem, end - 10, 0, &[1; 16]), Err(TrapKind::MemoryOutOfBounds));
        assert!(mem.data().iter().all(|b| *b == 0));
        assert_eq!(read::<16>(&mem, u32::MAX as u64, 1), Err(TrapKind::MemoryOutOfBounds));
        assert_eq!(write_halves(&mut mem, end - 16, 0, 1, 2), Ok(()));
        assert_eq!(read_halves(&mem, end - 16, 0), Ok([1, 2]));
    }
}
