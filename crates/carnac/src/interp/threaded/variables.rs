//! Handlers that move values: global reads and writes (through the instance's
//! context block, `CallCx::globals`), copies between slots (what `local.get`,
//! `local.set` and branch values become), constants, and selects.
//!
//! The arms are not compiled here: this file holds a macro that hands them to
//! `handlers!`, which `threaded` (mod.rs) expands, so the handlers are
//! functions of `threaded` itself (one module, as before the split: the same
//! code and symbol names) and the names the arms use (`ptr`, `TrapKind`,
//! `ops`...) resolve there. Each arm is written as in a `match` over the
//! instruction, with the helper macros of `handlers!` (`rd!`, `wr!`, `jump!`,
//! `trap!`, `load!`, `store!`...) and the handler's arguments (`ip`, `fp`,
//! `mem_base`, `mem_len`, `acc`, `cx`) in scope.

/// The variables handlers' arms, as a group for `collect_handlers!` (see [`super::macros`]).
macro_rules! variables_handlers {
    ($d:tt $todo:tt $($done:tt)*) => {
        collect_handlers! { $d $todo $($done)* group $d (ip, fp, mem_base, mem_len, acc, chunk_map, cx) {
    // SAFETY (globals): validation keeps `global` below the instance's global
    // count, and the context block holds a cell for each, owned by the store
    // and never moved; only mutable globals are set.
    [1] GlobalGet { dst, global } => {
        let v = unsafe { **(*cx).globals.add(global as usize) };
        wr!(dst, v as u64)
    },
    [2] GlobalSet { src, global } => {
        let g = unsafe { &mut **(*cx).globals.add(global as usize) };
        *g = rd!(src) as u128
    },
    [1] GlobalGetAddImm { dst, global, k } => {
        let v = unsafe { **(*cx).globals.add(global as usize) };
        w32!(dst, (v as u32).wrapping_add(k as u32))
    },
    GlobalAddImm { dst, global, k } => {
        let g = unsafe { &mut **(*cx).globals.add(global as usize) };
        let v = (*g as u32).wrapping_add(k as u32);
        *g = v as u128;
        w32!(dst, v)
    },
    GlobalSetAddImm { ds, global, k } => {
        let g = unsafe { &mut **(*cx).globals.add(global as usize) };
        let v = u32_!(ds >> 16).wrapping_add(k as u32);
        *g = v as u128;
        w32!((ds & 0xffff), v)
    },
    GlobalGet2 { dst, global } => {
        let v = unsafe { **(*cx).globals.add(global as usize) };
        wr!(dst, v as u64);
        wr!(dst + 1, (v >> 64) as u64)
    },
    GlobalSet2 { src, global } => {
        let g = unsafe { &mut **(*cx).globals.add(global as usize) };
        *g = rd!(src) as u128 | (rd!(src + 1) as u128) << 64
    },
    [1, 2] Copy { dst, src } => wr!(dst, rd!(src)),
    CopyPair { first, second } => {
        wr!(first & 0xffff, rd!(first >> 16));
        wr!(second & 0xffff, rd!(second >> 16));
    },
    Copy2 { dst, src } => {
        let (lo, hi) = (rd!(src), rd!(src + 1));
        wr!(dst, lo);
        wr!(dst + 1, hi);
    },
    [1] Const { dst, value } => wr!(dst, value),
    SelectTo { dst, cond, src } => {
        if u32_!(cond) == 0 {
            wr!(dst, rd!(src));
        }
    },
    [1, 2, 3] Select { dst, cond, ab } => {
        let pick = if u32_!(cond) != 0 { ab & 0xffff } else { ab >> 16 };
        wr!(dst, rd!(pick));
    },
    [1] SelectKA { dst, cb, k } => {
        let v = if u32_!(cb & 0xffff) != 0 { k as i64 as u64 } else { rd!(cb >> 16) };
        wr!(dst, v);
    },
    [1] SelectKB { dst, ca, k } => {
        let v = if u32_!(ca & 0xffff) != 0 { rd!(ca >> 16) } else { k as i64 as u64 };
        wr!(dst, v);
    },
    SelectTo2 { dst, cond, src } => {
        if u32_!(cond) == 0 {
            wr!(dst, rd!(src));
            wr!(dst + 1, rd!(src + 1));
        }
    },
        } }
    };
}
pub(super) use variables_handlers;
