//! Handlers of the translator's own instructions: immediate forms of the
//! integer operators, fused operator pairs (`I32RotlXor`, `I32AddShl`...), and
//! comparisons fused with the branch they feed (see `code::for_each_imm`).
//!
//! The arms are not compiled here: this file holds a macro that hands them to
//! `handlers!`, which `threaded` (mod.rs) expands, so the handlers are
//! functions of `threaded` itself (one module, as before the split: the same
//! code and symbol names) and the names the arms use (`ptr`, `TrapKind`,
//! `ops`...) resolve there. Each arm is written as in a `match` over the
//! instruction, with the helper macros of `handlers!` (`rd!`, `wr!`, `jump!`,
//! `trap!`, `load!`, `store!`...) and the handler's arguments (`ip`, `fp`,
//! `mem_base`, `mem_len`, `acc`, `cx`) in scope.

/// The fused handlers' arms, as a group for `collect_handlers!` (see [`super::macros`]).
macro_rules! fused_handlers {
    ($d:tt $todo:tt $($done:tt)*) => {
        collect_handlers! { $d $todo $($done)* group $d (ip, fp, mem_base, mem_len, acc, chunk_map, cx) {
    // ---- immediate forms and fused compare-and-branch (see code::for_each_imm) ----
    [1, 2, 3] I32AddImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_add(imm as u32)),
    [1, 2, 3, 4, 5] I32RotlXor { dst, ab, k } => w32!(dst, u32_!(ab & 0xffff).rotate_left(k) ^ u32_!(ab >> 16)),
    [1, 2, 3, 4, 5] I64RotlXor { dst, ab, k } => w64!(dst, (rd!(ab & 0xffff)).rotate_left(k) ^ rd!(ab >> 16)),
    [1, 2, 3, 4, 5] I32XorRotl { dst, ab, k } => w32!(dst, (u32_!(ab & 0xffff) ^ u32_!(ab >> 16)).rotate_left(k)),
    [1, 2, 3, 4, 5] I64XorRotl { dst, ab, k } => w64!(dst, (rd!(ab & 0xffff) ^ rd!(ab >> 16)).rotate_left(k)),
    [1, 2, 3, 4, 5] I32AddI32LtS { dst, a, xy } => w32!(dst, u32_!(a).wrapping_add((i32_!(xy & 0xffff) < i32_!(xy >> 16)) as u32)),
    [1, 2, 3, 4, 5] I32AddI32LtU { dst, a, xy } => w32!(dst, u32_!(a).wrapping_add((u32_!(xy & 0xffff) < u32_!(xy >> 16)) as u32)),
    [1, 2, 3, 4, 5] I32AddI64LtS { dst, a, xy } => w32!(dst, u32_!(a).wrapping_add((i64_!(xy & 0xffff) < i64_!(xy >> 16)) as u32)),
    [1, 2, 3, 4, 5] I32AddI64LtU { dst, a, xy } => w32!(dst, u32_!(a).wrapping_add((rd!(xy & 0xffff) < rd!(xy >> 16)) as u32)),
    [1, 2, 3, 4, 5] I32AddShrU { dst, ab, k } => w32!(dst, u32_!(ab & 0xffff).wrapping_add(u32_!(ab >> 16) >> k)),
    [1, 2, 3] F64KDivU32 { ds, k } => wf64!((ds & 0xffff), f64::from_bits(k) / (u32_!(ds >> 16) as f64)),
    [1, 2, 3, 4, 5] I32AddShl { dst, ab, k } => w32!(dst, u32_!(ab & 0xffff).wrapping_add(u32_!(ab >> 16) << k)),
    I32AddImm2 { first, second, imms } => {
        w32!((first & 0xffff), u32_!(first >> 16).wrapping_add(imms as i16 as u32));
        w32!((second & 0xffff), u32_!(second >> 16).wrapping_add((imms >> 16) as i16 as u32));
    },
    [1, 2, 3] I32SubImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_sub(imm as u32)),
    [1, 2, 3] I32MulImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_mul(imm as u32)),
    [1, 2, 3] I32AndImm { dst, lhs, imm } => w32!(dst, u32_!(lhs) & (imm as u32)),
    [1, 2, 3] I32OrImm { dst, lhs, imm } => w32!(dst, u32_!(lhs) | (imm as u32)),
    [1, 2, 3] I32XorImm { dst, lhs, imm } => w32!(dst, u32_!(lhs) ^ (imm as u32)),
    [1, 2, 3] I32ShlImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_shl(imm as u32)),
    [1, 2, 3] I32ShrSImm { dst, lhs, imm } => w32!(dst, i32_!(lhs).wrapping_shr(imm as u32)),
    [1, 2, 3] I32ShrUImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_shr(imm as u32)),
    [1, 2, 3] I32RotlImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).rotate_left(imm as u32 % 32)),
    [1, 2, 3] I32RotrImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).rotate_right(imm as u32 % 32)),
    [1, 2, 3] I64AddImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_add(imm as i64 as u64)),
    [1, 2, 3] I64SubImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_sub(imm as i64 as u64)),
    [1, 2, 3] I64MulImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_mul(imm as i64 as u64)),
    [1, 2, 3] I64AndImm { dst, lhs, imm } => w64!(dst, rd!(lhs) & (imm as i64 as u64)),
    [1, 2, 3] I64OrImm { dst, lhs, imm } => w64!(dst, rd!(lhs) | (imm as i64 as u64)),
    [1, 2, 3] I64XorImm { dst, lhs, imm } => w64!(dst, rd!(lhs) ^ (imm as i64 as u64)),
    [1, 2, 3] I64ShlImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_shl(imm as u32)),
    [1, 2, 3] I64ShrSImm { dst, lhs, imm } => w64!(dst, i64_!(lhs).wrapping_shr(imm as u32)),
    [1, 2, 3] I64ShrUImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_shr(imm as u32)),
    [1, 2, 3] I64RotlImm { dst, lhs, imm } => w64!(dst, rd!(lhs).rotate_left(imm as u32 % 64)),
    [1, 2, 3] I64RotrImm { dst, lhs, imm } => w64!(dst, rd!(lhs).rotate_right(imm as u32 % 64)),
    [1, 2, 3] I32EqImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) == (imm as u32)),
    [2, 4] BrI32Eq { lhs, rhs, target } => {
        if u32_!(lhs) == u32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32EqImm { lhs, imm, target } => {
        if u32_!(lhs) == (imm as u32) {
            jump!(target);
        }
    },
    [1, 2, 3] I32NeImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) != (imm as u32)),
    [2, 4] BrI32Ne { lhs, rhs, target } => {
        if u32_!(lhs) != u32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32NeImm { lhs, imm, target } => {
        if u32_!(lhs) != (imm as u32) {
            jump!(target);
        }
    },
    [1, 2, 3] I32LtSImm { dst, lhs, imm } => wbool!(dst, i32_!(lhs) < imm),
    [2, 4] BrI32LtS { lhs, rhs, target } => {
        if i32_!(lhs) < i32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32LtSImm { lhs, imm, target } => {
        if i32_!(lhs) < imm {
            jump!(target);
        }
    },
    [1, 2, 3] I32LtUImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) < (imm as u32)),
    [2, 4] BrI32LtU { lhs, rhs, target } => {
        if u32_!(lhs) < u32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32LtUImm { lhs, imm, target } => {
        if u32_!(lhs) < (imm as u32) {
            jump!(target);
        }
    },
    [1, 2, 3] I32GtSImm { dst, lhs, imm } => wbool!(dst, i32_!(lhs) > imm),
    [2, 4] BrI32GtS { lhs, rhs, target } => {
        if i32_!(lhs) > i32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32GtSImm { lhs, imm, target } => {
        if i32_!(lhs) > imm {
            jump!(target);
        }
    },
    [1, 2, 3] I32GtUImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) > (imm as u32)),
    [2, 4] BrI32GtU { lhs, rhs, target } => {
        if u32_!(lhs) > u32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32GtUImm { lhs, imm, target } => {
        if u32_!(lhs) > (imm as u32) {
            jump!(target);
        }
    },
    [1, 2, 3] I32LeSImm { dst, lhs, imm } => wbool!(dst, i32_!(lhs) <= imm),
    [2, 4] BrI32LeS { lhs, rhs, target } => {
        if i32_!(lhs) <= i32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32LeSImm { lhs, imm, target } => {
        if i32_!(lhs) <= imm {
            jump!(target);
        }
    },
    [1, 2, 3] I32LeUImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) <= (imm as u32)),
    [2, 4] BrI32LeU { lhs, rhs, target } => {
        if u32_!(lhs) <= u32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32LeUImm { lhs, imm, target } => {
        if u32_!(lhs) <= (imm as u32) {
            jump!(target);
        }
    },
    [1, 2, 3] I32GeSImm { dst, lhs, imm } => wbool!(dst, i32_!(lhs) >= imm),
    [2, 4] BrI32GeS { lhs, rhs, target } => {
        if i32_!(lhs) >= i32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32GeSImm { lhs, imm, target } => {
        if i32_!(lhs) >= imm {
            jump!(target);
        }
    },
    [1, 2, 3] I32GeUImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) >= (imm as u32)),
    [2, 4] BrI32GeU { lhs, rhs, target } => {
        if u32_!(lhs) >= u32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32GeUImm { lhs, imm, target } => {
        if u32_!(lhs) >= (imm as u32) {
            jump!(target);
        }
    },
    [1, 2, 3] I64EqImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) == (imm as i64 as u64)),
    [2, 4] BrI64Eq { lhs, rhs, target } => {
        if rd!(lhs) == rd!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64EqImm { lhs, imm, target } => {
        if rd!(lhs) == (imm as i64 as u64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64NeImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) != (imm as i64 as u64)),
    [2, 4] BrI64Ne { lhs, rhs, target } => {
        if rd!(lhs) != rd!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64NeImm { lhs, imm, target } => {
        if rd!(lhs) != (imm as i64 as u64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64LtSImm { dst, lhs, imm } => wbool!(dst, i64_!(lhs) < (imm as i64)),
    [2, 4] BrI64LtS { lhs, rhs, target } => {
        if i64_!(lhs) < i64_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64LtSImm { lhs, imm, target } => {
        if i64_!(lhs) < (imm as i64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64LtUImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) < (imm as i64 as u64)),
    [2, 4] BrI64LtU { lhs, rhs, target } => {
        if rd!(lhs) < rd!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64LtUImm { lhs, imm, target } => {
        if rd!(lhs) < (imm as i64 as u64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64GtSImm { dst, lhs, imm } => wbool!(dst, i64_!(lhs) > (imm as i64)),
    [2, 4] BrI64GtS { lhs, rhs, target } => {
        if i64_!(lhs) > i64_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64GtSImm { lhs, imm, target } => {
        if i64_!(lhs) > (imm as i64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64GtUImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) > (imm as i64 as u64)),
    [2, 4] BrI64GtU { lhs, rhs, target } => {
        if rd!(lhs) > rd!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64GtUImm { lhs, imm, target } => {
        if rd!(lhs) > (imm as i64 as u64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64LeSImm { dst, lhs, imm } => wbool!(dst, i64_!(lhs) <= (imm as i64)),
    [2, 4] BrI64LeS { lhs, rhs, target } => {
        if i64_!(lhs) <= i64_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64LeSImm { lhs, imm, target } => {
        if i64_!(lhs) <= (imm as i64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64LeUImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) <= (imm as i64 as u64)),
    [2, 4] BrI64LeU { lhs, rhs, target } => {
        if rd!(lhs) <= rd!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64LeUImm { lhs, imm, target } => {
        if rd!(lhs) <= (imm as i64 as u64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64GeSImm { dst, lhs, imm } => wbool!(dst, i64_!(lhs) >= (imm as i64)),
    [2, 4] BrI64GeS { lhs, rhs, target } => {
        if i64_!(lhs) >= i64_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64GeSImm { lhs, imm, target } => {
        if i64_!(lhs) >= (imm as i64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64GeUImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) >= (imm as i64 as u64)),
    [2, 4] BrI64GeU { lhs, rhs, target } => {
        if rd!(lhs) >= rd!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64GeUImm { lhs, imm, target } => {
        if rd!(lhs) >= (imm as i64 as u64) {
            jump!(target);
        }
    },
        } }
    };
}
pub(super) use fused_handlers;
