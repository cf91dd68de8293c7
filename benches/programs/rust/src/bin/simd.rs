//! SIMD workload: integer dot products, a 3x3 box blur of a greyscale image and a
//! byte search, the kernels of media and text processing. Built twice by
//! benches/bench.py: with `-C target-feature=+simd128` the kernels use
//! `core::arch::wasm32` intrinsics; without it, the same source falls back to
//! plain scalar loops. Both builds print the same checksum.

#[cfg(target_feature = "simd128")]
use core::arch::wasm32::*;

const W: usize = 512;
const H: usize = 512;

fn gen_bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

// ---- dot product of i16 vectors into an i32 (wrapping) ----

#[cfg(target_feature = "simd128")]
fn dot(a: &[i16], b: &[i16]) -> i32 {
    assert_eq!(a.len(), b.len());
    let mut acc = i32x4_splat(0);
    let chunks = a.len() / 8;
    for i in 0..chunks {
        // SAFETY: i * 8 + 8 <= len, and v128 loads need no alignment.
        let (x, y) = unsafe {
            (v128_load(a.as_ptr().add(i * 8) as *const v128), v128_load(b.as_ptr().add(i * 8) as *const v128))
        };
        acc = i32x4_add(acc, i32x4_dot_i16x8(x, y));
    }
    let mut sum = i32x4_extract_lane::<0>(acc)
        .wrapping_add(i32x4_extract_lane::<1>(acc))
        .wrapping_add(i32x4_extract_lane::<2>(acc))
        .wrapping_add(i32x4_extract_lane::<3>(acc));
    for i in chunks * 8..a.len() {
        sum = sum.wrapping_add(a[i] as i32 * b[i] as i32);
    }
    sum
}

#[cfg(not(target_feature = "simd128"))]
fn dot(a: &[i16], b: &[i16]) -> i32 {
    a.iter().zip(b).fold(0i32, |s, (x, y)| s.wrapping_add(*x as i32 * *y as i32))
}

// ---- 3x3 box blur (sum of the 9 neighbours / 9, as (sum * 7282) >> 16) ----

#[cfg(target_feature = "simd128")]
fn blur_row(src: &[u8], dst: &mut [u8], y: usize) {
    let rows = [&src[(y - 1) * W..y * W], &src[y * W..(y + 1) * W], &src[(y + 1) * W..(y + 2) * W]];
    let mut x = 1;
    while x + 8 < W {
        let mut sum = u16x8_splat(0);
        for r in rows {
            for dx in 0..3 {
                // SAFETY: x - 1 + dx + 8 <= W, inside the row.
                let v = unsafe { v128_load64_zero(r.as_ptr().add(x - 1 + dx) as *const u64) };
                sum = u16x8_add(sum, u16x8_extend_low_u8x16(v));
            }
        }
        let q = div9(sum);
        let out = u8x16_narrow_i16x8(q, q);
        // SAFETY: x + 8 <= W: eight bytes inside the destination row.
        unsafe { v128_store64_lane::<0>(out, dst.as_mut_ptr().add(y * W + x) as *mut u64) };
        x += 8;
    }
    for x in x..W - 1 {
        dst[y * W + x] = blur_px(src, x, y);
    }
}

/// (sum * 7282) >> 16 on eight u16 lanes: the high half of the 32-bit products.
#[cfg(target_feature = "simd128")]
fn div9(sum: v128) -> v128 {
    let k = u32x4_splat(7282);
    let lo = u32x4_shr(i32x4_mul(u32x4_extend_low_u16x8(sum), k), 16);
    let hi = u32x4_shr(i32x4_mul(u32x4_extend_high_u16x8(sum), k), 16);
    u16x8_narrow_i32x4(lo, hi)
}

fn blur_px(src: &[u8], x: usize, y: usize) -> u8 {
    let mut s = 0u32;
    for dy in 0..3 {
        for dx in 0..3 {
            s += src[(y + dy - 1) * W + x + dx - 1] as u32;
        }
    }
    ((s * 7282) >> 16) as u8
}

#[cfg(not(target_feature = "simd128"))]
fn blur_row(src: &[u8], dst: &mut [u8], y: usize) {
    for x in 1..W - 1 {
        dst[y * W + x] = blur_px(src, x, y);
    }
}

fn blur(src: &[u8], dst: &mut [u8]) {
    for y in 1..H - 1 {
        blur_row(src, dst, y);
    }
}

// ---- count the bytes equal to `needle` ----

#[cfg(target_feature = "simd128")]
fn count(hay: &[u8], needle: u8) -> usize {
    let n = u8x16_splat(needle);
    let chunks = hay.len() / 16;
    let mut total = 0usize;
    for i in 0..chunks {
        // SAFETY: i * 16 + 16 <= len.
        let v = unsafe { v128_load(hay.as_ptr().add(i * 16) as *const v128) };
        total += u8x16_bitmask(u8x16_eq(v, n)).count_ones() as usize;
    }
    total + hay[chunks * 16..].iter().filter(|b| **b == needle).count()
}

#[cfg(not(target_feature = "simd128"))]
fn count(hay: &[u8], needle: u8) -> usize {
    hay.iter().filter(|b| **b == needle).count()
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let bytes = gen_bytes(1 << 16, 7);
    let a: Vec<i16> = bytes.chunks(2).map(|c| i16::from_le_bytes([c[0], c[1]]) >> 4).collect();
    let b: Vec<i16> = a.iter().rev().copied().collect();
    let mut image = gen_bytes(W * H, 11);
    let mut out = vec![0u8; W * H];
    let hay = gen_bytes(1 << 20, 13);
    let mut check: u64 = 0;
    for r in 0..rounds {
        for _ in 0..40 {
            check = check.wrapping_mul(31).wrapping_add(dot(&a, &b) as u32 as u64);
        }
        blur(&image, &mut out);
        std::mem::swap(&mut image, &mut out);
        check = check.wrapping_mul(31).wrapping_add(image[(r * 977) % (W * H)] as u64);
        check = check.wrapping_mul(31).wrapping_add(count(&hay, r as u8) as u64);
    }
    let img_sum: u64 = image.iter().map(|b| *b as u64).sum();
    println!("{}", check ^ img_sum);
}
