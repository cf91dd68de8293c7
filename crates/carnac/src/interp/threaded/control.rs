//! Handlers of control instructions: branches (plain, fused with a loop's step
//! or a bounds check), `br_table`, fuel, the interrupt and epoch checks, and the
//! zeroing of locals on entry; and the loop-step helpers of the fused branches.
//!
//! Must not touch: calls and returns (`calls`), which move between frames.
//!
//! The arms are not compiled here: this file holds a macro that hands them to
//! `handlers!`, which `threaded` (mod.rs) expands, so the handlers are
//! functions of `threaded` itself (one module, as before the split: the same
//! code and symbol names) and the names the arms use (`ptr`, `TrapKind`,
//! `ops`...) resolve there. Each arm is written as in a `match` over the
//! instruction, with the helper macros of `handlers!` (`rd!`, `wr!`, `jump!`,
//! `trap!`, `load!`, `store!`...) and the handler's arguments (`ip`, `fp`,
//! `mem_base`, `mem_len`, `acc`, `cx`) in scope.

/// The control handlers' arms, as a group for `collect_handlers!` (see [`super::macros`]).
macro_rules! control_handlers {
    ($d:tt $todo:tt $($done:tt)*) => {
        collect_handlers! { $d $todo $($done)* group $d (ip, fp, mem_base, mem_len, acc, chunk_map, cx) {
    Br { target } => jump!(target),
    [2] BrIfNez { cond, target } => {
        if u32_!(cond) != 0 {
            jump!(target);
        }
    },
    [2] BrIfEqz { cond, target } => {
        if u32_!(cond) == 0 {
            jump!(target);
        }
    },
    BrI32AddGeU { ab, dr, target } => {
        w32!((dr & 0xffff), u32_!(ab & 0xffff).wrapping_add(u32_!(ab >> 16)));
        if u32_!(dr & 0xffff) >= u32_!(dr >> 16) {
            jump!(target);
        }
    },
    BrI32AddLtU { ab, dr, target } => {
        w32!((dr & 0xffff), u32_!(ab & 0xffff).wrapping_add(u32_!(ab >> 16)));
        if u32_!(dr & 0xffff) < u32_!(dr >> 16) {
            jump!(target);
        }
    },
    BrI32AddImmNez { x, imm, target } => {
        if unsafe { count_step(fp, x, imm) } != 0 {
            jump!(target);
        }
    },
    BrI32AddImmEqz { x, imm, target } => {
        if unsafe { count_step(fp, x, imm) } == 0 {
            jump!(target);
        }
    },
    BrI32AddImmNeImm { xk, n, target } => {
        if unsafe { count_step(fp, xk & 0xffff, (xk as i32) >> 16) } != n as u32 {
            jump!(target);
        }
    },
    BrI32AddImmEqImm { xk, n, target } => {
        if unsafe { count_step(fp, xk & 0xffff, (xk as i32) >> 16) } == n as u32 {
            jump!(target);
        }
    },
    BrI32AddImmNe { ds, ki, target } => {
        let (x, n) = unsafe { loop_step(fp, ds, ki) };
        if x != n {
            jump!(target);
        }
    },
    BrI32AddImmLtU { ds, ki, target } => {
        let (x, n) = unsafe { loop_step(fp, ds, ki) };
        if x < n {
            jump!(target);
        }
    },
    BrI32AddImmGeU { ds, ki, target } => {
        let (x, n) = unsafe { loop_step(fp, ds, ki) };
        if x >= n {
            jump!(target);
        }
    },
    BrI32AddImmLtS { ds, ki, target } => {
        let (x, n) = unsafe { loop_step(fp, ds, ki) };
        if (x as i32) < (n as i32) {
            jump!(target);
        }
    },
    BrI32AddImmGeS { ds, ki, target } => {
        let (x, n) = unsafe { loop_step(fp, ds, ki) };
        if (x as i32) >= (n as i32) {
            jump!(target);
        }
    },
    BrI32AddImmEq { ds, ki, target } => {
        let (x, n) = unsafe { loop_step(fp, ds, ki) };
        if x == n {
            jump!(target);
        }
    },
    BrTable { index, len } => {
        let i = u32_!(index).min(len);
        ip = unsafe { ip.add(i as usize) };
    },
    // SAFETY (fuel, interrupt): both point into the store, which outlives the run.
    ConsumeFuel { amount } => {
        let fuel = unsafe { &mut *(*cx).fuel };
        if *fuel < amount as u64 {
            *fuel = 0;
            trap!(TrapKind::OutOfFuel);
        }
        *fuel -= amount as u64
    },
    ZeroLocals { start, count } => {
        // Volatile: one store per slot, no call out to `memset`.
        for s in start..start + count {
            unsafe { ptr::write_volatile(fp.add(s as usize), 0) }
        }
    },
    CheckInterrupt {} => {
        if unsafe { (*(*cx).interrupt).load(Ordering::Relaxed) } {
            trap!(TrapKind::Interrupted);
        }
    },
    // Not necessarily a trap: `exec` sees that this instruction stopped the run,
    // and runs the deadline callback, which may let the guest go on.
    CheckEpoch {} => {
        if unsafe { (*(*cx).epoch).load(Ordering::Relaxed) >= (*(*cx).check).load(Ordering::Relaxed) } {
            trap!(TrapKind::Interrupted);
        }
    },
        } }
    };
}
pub(super) use control_handlers;

/// The step of the `BrI32AddImm*` branches: `dst = (src + k) mod 2^32` (`ds`
/// packs dst and src, `ki` the other operand and k, an `i16`); returns dst's new
/// value and the other operand's, read after dst is written.
///
/// # Safety
/// The packed slots are slots of the frame at `fp`.
#[inline(always)]
pub(super) unsafe fn loop_step(fp: *mut u64, ds: u32, ki: u32) -> (u32, u32) {
    // SAFETY: the caller's contract.
    unsafe {
        let x = (*fp.add((ds >> 16) as usize) as u32).wrapping_add((ki >> 16) as i16 as u32);
        *fp.add((ds & 0xffff) as usize) = x as u64;
        (x, *fp.add((ki & 0xffff) as usize) as u32)
    }
}

/// The step of the `BrI32AddImm{Nez,Eqz,NeImm,EqImm}` branches: `x = (x + k)
/// mod 2^32`; returns x's new value.
///
/// # Safety
/// `x` is a slot of the frame at `fp`.
#[inline(always)]
pub(super) unsafe fn count_step(fp: *mut u64, x: u32, k: i32) -> u32 {
    // SAFETY: the caller's contract.
    unsafe {
        let v = (*fp.add(x as usize) as u32).wrapping_add(k as u32);
        *fp.add(x as usize) = v as u64;
        v
    }
}
