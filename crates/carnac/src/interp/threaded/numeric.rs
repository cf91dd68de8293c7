//! Handlers of the numeric instructions as wasm defines them: integer and float
//! arithmetic, comparisons, and conversions (each in its accumulator forms).
//! Their immediate and fused forms are in `fused`.
//!
//! The arms are not compiled here: this file holds a macro that hands them to
//! `handlers!`, which `threaded` (mod.rs) expands, so the handlers are
//! functions of `threaded` itself (one module, as before the split: the same
//! code and symbol names) and the names the arms use (`ptr`, `TrapKind`,
//! `ops`...) resolve there. Each arm is written as in a `match` over the
//! instruction, with the helper macros of `handlers!` (`rd!`, `wr!`, `jump!`,
//! `trap!`, `load!`, `store!`...) and the handler's arguments (`ip`, `fp`,
//! `mem_base`, `mem_len`, `acc`, `cx`) in scope.

/// The numeric handlers' arms, as a group for `collect_handlers!` (see [`super::macros`]).
macro_rules! numeric_handlers {
    ($d:tt $todo:tt $($done:tt)*) => {
        collect_handlers! { $d $todo $($done)* group $d (ip, fp, mem_base, mem_len, acc, chunk_map, cx) {
    // ---- integer ----
    [1, 2, 3] I32Eqz { dst, src } => wbool!(dst, u32_!(src) == 0),
    [1, 2, 3] I32Clz { dst, src } => w32!(dst, u32_!(src).leading_zeros()),
    [1, 2, 3] I32Ctz { dst, src } => w32!(dst, u32_!(src).trailing_zeros()),
    [1, 2, 3] I32Popcnt { dst, src } => w32!(dst, u32_!(src).count_ones()),
    [1, 2, 3] I32Extend8S { dst, src } => w32!(dst, rd!(src) as i8 as i32),
    [1, 2, 3] I32Extend16S { dst, src } => w32!(dst, rd!(src) as i16 as i32),
    [1, 2, 3] I64Eqz { dst, src } => wbool!(dst, rd!(src) == 0),
    [1, 2, 3] I64Clz { dst, src } => w64!(dst, rd!(src).leading_zeros()),
    [1, 2, 3] I64Ctz { dst, src } => w64!(dst, rd!(src).trailing_zeros()),
    [1, 2, 3] I64Popcnt { dst, src } => w64!(dst, rd!(src).count_ones()),
    [1, 2, 3] I64Extend8S { dst, src } => w64!(dst, rd!(src) as i8 as i64),
    [1, 2, 3] I64Extend16S { dst, src } => w64!(dst, rd!(src) as i16 as i64),
    [1, 2, 3] I64Extend32S { dst, src } => w64!(dst, rd!(src) as i32 as i64),
    [1, 2, 3] I64ExtendI32S { dst, src } => w64!(dst, i32_!(src) as i64),
    [1, 2, 3] I64ExtendI32U { dst, src } => w64!(dst, u32_!(src)),

    [1, 2, 3, 4, 5] I32Eq { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) == u32_!(rhs)),
    [1, 2, 3, 4, 5] I32Ne { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) != u32_!(rhs)),
    [1, 2, 3, 4, 5] I32LtS { dst, lhs, rhs } => wbool!(dst, i32_!(lhs) < i32_!(rhs)),
    [1, 2, 3, 4, 5] I32LtU { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) < u32_!(rhs)),
    [1, 2, 3, 4, 5] I32GtS { dst, lhs, rhs } => wbool!(dst, i32_!(lhs) > i32_!(rhs)),
    [1, 2, 3, 4, 5] I32GtU { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) > u32_!(rhs)),
    [1, 2, 3, 4, 5] I32LeS { dst, lhs, rhs } => wbool!(dst, i32_!(lhs) <= i32_!(rhs)),
    [1, 2, 3, 4, 5] I32LeU { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) <= u32_!(rhs)),
    [1, 2, 3, 4, 5] I32GeS { dst, lhs, rhs } => wbool!(dst, i32_!(lhs) >= i32_!(rhs)),
    [1, 2, 3, 4, 5] I32GeU { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) >= u32_!(rhs)),
    [1, 2, 3, 4, 5] I64Eq { dst, lhs, rhs } => wbool!(dst, rd!(lhs) == rd!(rhs)),
    [1, 2, 3, 4, 5] I64Ne { dst, lhs, rhs } => wbool!(dst, rd!(lhs) != rd!(rhs)),
    [1, 2, 3, 4, 5] I64LtS { dst, lhs, rhs } => wbool!(dst, i64_!(lhs) < i64_!(rhs)),
    [1, 2, 3, 4, 5] I64LtU { dst, lhs, rhs } => wbool!(dst, rd!(lhs) < rd!(rhs)),
    [1, 2, 3, 4, 5] I64GtS { dst, lhs, rhs } => wbool!(dst, i64_!(lhs) > i64_!(rhs)),
    [1, 2, 3, 4, 5] I64GtU { dst, lhs, rhs } => wbool!(dst, rd!(lhs) > rd!(rhs)),
    [1, 2, 3, 4, 5] I64LeS { dst, lhs, rhs } => wbool!(dst, i64_!(lhs) <= i64_!(rhs)),
    [1, 2, 3, 4, 5] I64LeU { dst, lhs, rhs } => wbool!(dst, rd!(lhs) <= rd!(rhs)),
    [1, 2, 3, 4, 5] I64GeS { dst, lhs, rhs } => wbool!(dst, i64_!(lhs) >= i64_!(rhs)),
    [1, 2, 3, 4, 5] I64GeU { dst, lhs, rhs } => wbool!(dst, rd!(lhs) >= rd!(rhs)),

    [1, 2, 3, 4, 5] I32Add { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_add(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32Sub { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_sub(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32Mul { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_mul(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32DivS { dst, lhs, rhs } => {
        let (a, b) = (i32_!(lhs), divisor!(i32_!(rhs)));
        if a == i32::MIN && b == -1 {
            trap!(TrapKind::IntegerOverflow);
        }
        w32!(dst, a / b);
    },
    [1, 2, 3, 4, 5] I32DivU { dst, lhs, rhs } => w32!(dst, u32_!(lhs) / divisor!(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32RemS { dst, lhs, rhs } => w32!(dst, i32_!(lhs).wrapping_rem(divisor!(i32_!(rhs)))),
    [1, 2, 3, 4, 5] I32RemU { dst, lhs, rhs } => w32!(dst, u32_!(lhs) % divisor!(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32And { dst, lhs, rhs } => w32!(dst, u32_!(lhs) & u32_!(rhs)),
    [1, 2, 3, 4, 5] I32Or { dst, lhs, rhs } => w32!(dst, u32_!(lhs) | u32_!(rhs)),
    [1, 2, 3, 4, 5] I32Xor { dst, lhs, rhs } => w32!(dst, u32_!(lhs) ^ u32_!(rhs)),
    [1, 2, 3, 4, 5] I32Shl { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_shl(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32ShrS { dst, lhs, rhs } => w32!(dst, i32_!(lhs).wrapping_shr(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32ShrU { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_shr(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32Rotl { dst, lhs, rhs } => w32!(dst, u32_!(lhs).rotate_left(u32_!(rhs) % 32)),
    [1, 2, 3, 4, 5] I32Rotr { dst, lhs, rhs } => w32!(dst, u32_!(lhs).rotate_right(u32_!(rhs) % 32)),

    [1, 2, 3, 4, 5] I64Add { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_add(rd!(rhs))),
    [1, 2, 3, 4, 5] I64Sub { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_sub(rd!(rhs))),
    [1, 2, 3, 4, 5] I64Mul { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_mul(rd!(rhs))),
    [1, 2, 3, 4, 5] I64DivS { dst, lhs, rhs } => {
        let (a, b) = (i64_!(lhs), divisor!(i64_!(rhs)));
        if a == i64::MIN && b == -1 {
            trap!(TrapKind::IntegerOverflow);
        }
        w64!(dst, a / b);
    },
    [1, 2, 3, 4, 5] I64DivU { dst, lhs, rhs } => w64!(dst, rd!(lhs) / divisor!(rd!(rhs))),
    [1, 2, 3, 4, 5] I64RemS { dst, lhs, rhs } => w64!(dst, i64_!(lhs).wrapping_rem(divisor!(i64_!(rhs)))),
    [1, 2, 3, 4, 5] I64RemU { dst, lhs, rhs } => w64!(dst, rd!(lhs) % divisor!(rd!(rhs))),
    [1, 2, 3, 4, 5] I64And { dst, lhs, rhs } => w64!(dst, rd!(lhs) & rd!(rhs)),
    [1, 2, 3, 4, 5] I64Or { dst, lhs, rhs } => w64!(dst, rd!(lhs) | rd!(rhs)),
    [1, 2, 3, 4, 5] I64Xor { dst, lhs, rhs } => w64!(dst, rd!(lhs) ^ rd!(rhs)),
    [1, 2, 3, 4, 5] I64Shl { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_shl(rd!(rhs) as u32)),
    [1, 2, 3, 4, 5] I64ShrS { dst, lhs, rhs } => w64!(dst, i64_!(lhs).wrapping_shr(rd!(rhs) as u32)),
    [1, 2, 3, 4, 5] I64ShrU { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_shr(rd!(rhs) as u32)),
    [1, 2, 3, 4, 5] I64Rotl { dst, lhs, rhs } => w64!(dst, rd!(lhs).rotate_left((rd!(rhs) % 64) as u32)),
    [1, 2, 3, 4, 5] I64Rotr { dst, lhs, rhs } => w64!(dst, rd!(lhs).rotate_right((rd!(rhs) % 64) as u32)),

    // ---- float ----
    [1, 2, 3] F32Abs { dst, src } => wr!(dst, rd!(src) & 0x7fff_ffff),
    [1, 2, 3] F32Neg { dst, src } => wr!(dst, (rd!(src) ^ 0x8000_0000) & 0xffff_ffff),
    [1, 2, 3] F32Ceil { dst, src } => wf32!(dst, ops::f32_ceil(f32_!(src))),
    [1, 2, 3] F32Floor { dst, src } => wf32!(dst, ops::f32_floor(f32_!(src))),
    [1, 2, 3] F32Trunc { dst, src } => wf32!(dst, ops::f32_trunc(f32_!(src))),
    [1, 2, 3] F32Nearest { dst, src } => wf32!(dst, ops::f32_nearest(f32_!(src))),
    [1, 2, 3] F32Sqrt { dst, src } => wf32!(dst, f32_!(src).sqrt()),
    [1, 2, 3] F64Abs { dst, src } => wr!(dst, rd!(src) & 0x7fff_ffff_ffff_ffff),
    [1, 2, 3] F64Neg { dst, src } => wr!(dst, rd!(src) ^ 0x8000_0000_0000_0000),
    [1, 2, 3] F64Ceil { dst, src } => wf64!(dst, ops::f64_ceil(f64_!(src))),
    [1, 2, 3] F64Floor { dst, src } => wf64!(dst, ops::f64_floor(f64_!(src))),
    [1, 2, 3] F64Trunc { dst, src } => wf64!(dst, ops::f64_trunc(f64_!(src))),
    [1, 2, 3] F64Nearest { dst, src } => wf64!(dst, ops::f64_nearest(f64_!(src))),
    [1, 2, 3] F64Sqrt { dst, src } => wf64!(dst, f64_!(src).sqrt()),
    [1, 2, 3, 4, 5] F32Eq { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) == f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Ne { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) != f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Lt { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) < f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Gt { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) > f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Le { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) <= f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Ge { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) >= f32_!(rhs)),
    [1, 2, 3, 4, 5] F64Eq { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) == f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Ne { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) != f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Lt { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) < f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Gt { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) > f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Le { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) <= f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Ge { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) >= f64_!(rhs)),
    [1, 2, 3, 4, 5] F32Add { dst, lhs, rhs } => wf32!(dst, f32_!(lhs) + f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Sub { dst, lhs, rhs } => wf32!(dst, f32_!(lhs) - f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Mul { dst, lhs, rhs } => wf32!(dst, f32_!(lhs) * f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Div { dst, lhs, rhs } => wf32!(dst, f32_!(lhs) / f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Min { dst, lhs, rhs } => wf32!(dst, ops::f32_min(f32_!(lhs), f32_!(rhs))),
    [1, 2, 3, 4, 5] F32Max { dst, lhs, rhs } => wf32!(dst, ops::f32_max(f32_!(lhs), f32_!(rhs))),
    [1, 2, 3, 4, 5] F32Copysign { dst, lhs, rhs } => {
        wr!(dst, (rd!(lhs) & 0x7fff_ffff) | (rd!(rhs) & 0x8000_0000))
    },
    [1, 2, 3, 4, 5] F64Add { dst, lhs, rhs } => wf64!(dst, f64_!(lhs) + f64_!(rhs)),
    [1, 2, 3, 4, 5] F64MulAdd { dst, ab, c } => wf64!(dst, f64_!(ab & 0xffff) * f64_!(ab >> 16) + f64_!(c)),
    [1, 2, 3, 4, 5] F64MulSub { dst, ab, c } => wf64!(dst, f64_!(ab & 0xffff) * f64_!(ab >> 16) - f64_!(c)),
    [1, 2, 3] F64AddK { ds, k } => wf64!((ds & 0xffff), f64_!(ds >> 16) + f64::from_bits(k)),
    [1, 2, 3] F64SubK { ds, k } => wf64!((ds & 0xffff), f64_!(ds >> 16) - f64::from_bits(k)),
    [1, 2, 3] F64KSub { ds, k } => wf64!((ds & 0xffff), f64::from_bits(k) - f64_!(ds >> 16)),
    [1, 2, 3] F64MulK { ds, k } => wf64!((ds & 0xffff), f64_!(ds >> 16) * f64::from_bits(k)),
    [1, 2, 3] F64DivK { ds, k } => wf64!((ds & 0xffff), f64_!(ds >> 16) / f64::from_bits(k)),
    [1, 2, 3] F64KDiv { ds, k } => wf64!((ds & 0xffff), f64::from_bits(k) / f64_!(ds >> 16)),
    [1, 2, 3, 4, 5] F64SubMul { dst, ab, c } => wf64!(dst, f64_!(c) - f64_!(ab & 0xffff) * f64_!(ab >> 16)),
    [1, 2, 3, 4, 5] F64Sub { dst, lhs, rhs } => wf64!(dst, f64_!(lhs) - f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Mul { dst, lhs, rhs } => wf64!(dst, f64_!(lhs) * f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Div { dst, lhs, rhs } => wf64!(dst, f64_!(lhs) / f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Min { dst, lhs, rhs } => wf64!(dst, ops::f64_min(f64_!(lhs), f64_!(rhs))),
    [1, 2, 3, 4, 5] F64Max { dst, lhs, rhs } => wf64!(dst, ops::f64_max(f64_!(lhs), f64_!(rhs))),
    [1, 2, 3, 4, 5] F64Copysign { dst, lhs, rhs } => wr!(
        dst,
        (rd!(lhs) & 0x7fff_ffff_ffff_ffff) | (rd!(rhs) & 0x8000_0000_0000_0000)
    ),

    // ---- conversions ----
    [1, 2, 3] I32TruncF32S { dst, src } => w32!(dst, tri!(ops::i32_trunc_f32_s(f32_!(src)))),
    [1, 2, 3] I32TruncF32U { dst, src } => w32!(dst, tri!(ops::i32_trunc_f32_u(f32_!(src)))),
    [1, 2, 3] I32TruncF64S { dst, src } => w32!(dst, tri!(ops::i32_trunc_f64_s(f64_!(src)))),
    [1, 2, 3] I32TruncF64U { dst, src } => w32!(dst, tri!(ops::i32_trunc_f64_u(f64_!(src)))),
    [1, 2, 3] I64TruncF32S { dst, src } => w64!(dst, tri!(ops::i64_trunc_f32_s(f32_!(src)))),
    [1, 2, 3] I64TruncF32U { dst, src } => w64!(dst, tri!(ops::i64_trunc_f32_u(f32_!(src)))),
    [1, 2, 3] I64TruncF64S { dst, src } => w64!(dst, tri!(ops::i64_trunc_f64_s(f64_!(src)))),
    [1, 2, 3] I64TruncF64U { dst, src } => w64!(dst, tri!(ops::i64_trunc_f64_u(f64_!(src)))),
    // Rust's float-to-int `as` saturates and maps NaN to 0: exactly trunc_sat.
    [1, 2, 3] I32TruncSatF32S { dst, src } => w32!(dst, f32_!(src) as i32),
    [1, 2, 3] I32TruncSatF32U { dst, src } => w32!(dst, f32_!(src) as u32),
    [1, 2, 3] I32TruncSatF64S { dst, src } => w32!(dst, f64_!(src) as i32),
    [1, 2, 3] I32TruncSatF64U { dst, src } => w32!(dst, f64_!(src) as u32),
    [1, 2, 3] I64TruncSatF32S { dst, src } => w64!(dst, f32_!(src) as i64),
    [1, 2, 3] I64TruncSatF32U { dst, src } => w64!(dst, f32_!(src) as u64),
    [1, 2, 3] I64TruncSatF64S { dst, src } => w64!(dst, f64_!(src) as i64),
    [1, 2, 3] I64TruncSatF64U { dst, src } => w64!(dst, f64_!(src) as u64),
    [1, 2, 3] F32ConvertI32S { dst, src } => wf32!(dst, i32_!(src) as f32),
    [1, 2, 3] F32ConvertI32U { dst, src } => wf32!(dst, u32_!(src) as f32),
    [1, 2, 3] F32ConvertI64S { dst, src } => wf32!(dst, i64_!(src) as f32),
    [1, 2, 3] F32ConvertI64U { dst, src } => wf32!(dst, rd!(src) as f32),
    [1, 2, 3] F32DemoteF64 { dst, src } => wf32!(dst, f64_!(src) as f32),
    [1, 2, 3] F64ConvertI32S { dst, src } => wf64!(dst, i32_!(src) as f64),
    [1, 2, 3] F64ConvertI32U { dst, src } => wf64!(dst, u32_!(src) as f64),
    [1, 2, 3] F64ConvertI64S { dst, src } => wf64!(dst, i64_!(src) as f64),
    [1, 2, 3] F64ConvertI64U { dst, src } => wf64!(dst, rd!(src) as f64),
    [1, 2, 3] F64PromoteF32 { dst, src } => wf64!(dst, f32_!(src) as f64),
        } }
    };
}
pub(super) use numeric_handlers;
