//! Calls and returns inside the current instance: `CallInternal`,
//! `CallInternalCopy`, `CallIndirect` through table 0, `Return` and
//! `ReturnSlot` (the `special` handlers of `handlers!`, written out by hand).
//! A call pushes a two-word frame (`CallCx::filled_top`) and jumps to the
//! callee's entry; a return pops it and jumps back.
//!
//! Must not touch: host calls, calls to other instances, stack growth, and
//! callees not translated yet: those end the run at the instruction, and `exec`
//! runs it in full.

use std::ptr;
use std::sync::atomic::Ordering;

use super::{exit, next, CallCx};
use crate::interp::code::{Cell, Instr};
use crate::interp::exec::Frame;
use crate::runtime::store::FuncKind;

// ---- calls and returns inside the current instance ----
//
// The common case of each runs here; anything else (the depth limit, a stack
// that must grow, a callee not yet translated, a return to another instance or
// to the host) ends the run at the instruction, and `exec` runs it in full.

/// `CallInternal`: enters a function of the current module.
#[allow(non_snake_case)]
pub(super) unsafe fn CallInternal<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    // SAFETY: `handler_for` gives this handler to this variant only; the
    // translator emits it with a defined function of the current module.
    unsafe {
        let Instr::CallInternal { def_index, base: b } = (*ip).instr else { std::hint::unreachable_unchecked() };
        enter::<TRACK>(ip, fp, mem_base, mem_len, acc, cx, def_index, b, None)
    }
}

/// `CallInternalCopy`: the argument copy, then as `CallInternal` (should `exec`
/// take the call, it repeats the copy, which changes nothing).
#[allow(non_snake_case)]
pub(super) unsafe fn CallInternalCopy<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    // SAFETY: as `CallInternal`; the copy's slots are the frame's.
    unsafe {
        let Instr::CallInternalCopy { def_index, base: b, copy } = (*ip).instr else {
            std::hint::unreachable_unchecked()
        };
        enter::<TRACK>(ip, fp, mem_base, mem_len, acc, cx, def_index, b, Some(copy))
    }
}

/// `CallIndirect` through table 0 to a function of the current instance whose
/// type matches; anything else (another table, a null or out-of-range entry, a
/// type mismatch, a host function or another instance's) ends the run at the
/// instruction, and `exec` runs it in full (trapping, or calling).
#[allow(non_snake_case)]
pub(super) unsafe fn CallIndirect<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    // SAFETY: `handler_for` gives this handler to this variant only. `type_index`
    // is a validated type index of the current module, whose arguments and table
    // index are slots of the frame; `table0` holds `table0_len` entries and a
    // non-null entry is a store function index plus one (`runtime::store`).
    unsafe {
        let Instr::CallIndirect { type_index, table, base: b } = (*ip).instr else {
            std::hint::unreachable_unchecked()
        };
        let c = &*cx;
        let info = &(*c.module).info;
        if table != 0 {
            return exit(ip, fp, mem_base, mem_len, acc, cx);
        }
        let np = *info.type_param_slots.get_unchecked(type_index as usize) as usize;
        let index = *fp.add(b as usize + np) as u32 as usize;
        if index >= c.table0_len {
            return exit(ip, fp, mem_base, mem_len, acc, cx);
        }
        let raw = *c.table0.add(index);
        if raw == 0 {
            return exit(ip, fp, mem_base, mem_len, acc, cx);
        }
        let f = &*c.funcs.add(raw as usize - 1);
        match f.kind {
            FuncKind::Wasm { instance, def_index }
                if instance == c.instance && f.type_id == *info.type_ids.get_unchecked(type_index as usize) =>
            {
                enter::<TRACK>(ip, fp, mem_base, mem_len, acc, cx, def_index, b, None)
            }
            _ => exit(ip, fp, mem_base, mem_len, acc, cx),
        }
    }
}

/// Enters defined function `def_index` of the current module, its arguments at
/// slot `b` of the current frame; `ip` is the calling instruction, run by `exec`
/// instead when the call cannot be made here. `copy`: an argument copy to make
/// first (two packed slots, `CallInternalCopy`), made only once the call is
/// certain to be made here (late, when a register is free for it).
///
/// # Safety
/// As a handler's; `def_index` is a defined function of the current module.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn enter<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
    def_index: u32,
    b: u32,
    copy: Option<u32>,
) -> usize {
    // SAFETY: `cx` and its pointers are valid for the whole run (the contract of
    // `run`), and nothing else uses what they point to meanwhile. The callee's
    // frame is checked to fit in the stack before it is entered.
    unsafe {
        let c = &mut *cx;
        // `exec` takes the call when the callee is not translated yet, when its
        // frame does not fit in the stack and when the frame list must grow (so
        // that nothing here calls out, which would make this handler save
        // registers on every call). The order of the checks keeps at most three
        // values live, so that the fast path saves no register either.
        // A defined function of the current module (the caller's contract), so
        // inside the module's ready list.
        let callee = (*c.ready.add(def_index as usize)).load(Ordering::Acquire);
        if callee.is_null() {
            return exit(ip, fp, mem_base, mem_len, acc, cx);
        }
        // A non-null ready pointer points at the callee's code, owned by the module.
        let callee = &*callee;
        // The arguments start at slot `b` of the current frame, inside the stack.
        if fp as usize + (b as usize + callee.frame_size as usize) * 8 > c.stack_end as usize {
            return exit(ip, fp, mem_base, mem_len, acc, cx);
        }
        let top = c.frames_top;
        if top as *const Frame >= c.frames_end {
            return exit(ip, fp, mem_base, mem_len, acc, cx);
        }
        // Locals that need zeroing are zeroed by the callee's first instruction
        // (`ZeroLocals`, skipped by `entry` when there are none).
        // Below `frames_end`, inside the list's capacity (checked above).
        // Only the return point: `module` and `instance` are the run's, written
        // in by `exec` when the run ends (`filled_top`).
        ptr::addr_of_mut!((*top).ip).write(ip.add(1));
        ptr::addr_of_mut!((*top).base).write(c.base);
        c.frames_top = top.add(1);
        c.base += b as usize;
        if let Some(copy) = copy {
            *fp.add((copy & 0xffff) as usize) = *fp.add((copy >> 16) as usize);
        }
        let new_fp = fp.add(b as usize);
        let callee_start = callee.code.as_ptr();
        next::<TRACK>(callee_start.add(callee.entry as usize), new_fp, mem_base, mem_len, acc, cx)
    }
}

/// Returns to a caller of the same instance (results are in place).
///
/// # Safety
/// As a handler's, with `ip` the returning instruction.
#[inline(always)]
unsafe fn return_within<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    // SAFETY: as in `CallInternal`; frames below `frames_top` are live callers'
    // saved state, whose frames are still inside the stack (below the current
    // one: frames only grow the stack, so `f.base <= c.base`).
    unsafe {
        let c = &mut *cx;
        let top = c.frames_top;
        if top == c.filled_top {
            // The caller's frame is a complete one, from before the run.
            if std::ptr::eq(top, c.frames_bottom) || (*top.sub(1)).instance != c.instance {
                return exit(ip, fp, mem_base, mem_len, acc, cx);
            }
            // The same instance, so the same module: `c.module` stays.
            debug_assert_eq!((*top.sub(1)).module, c.module);
            c.filled_top = top.sub(1);
        }
        // Either pushed by a call in this run (its `ip` and `base` written), or a
        // complete frame of this instance.
        let (f_ip, f_base) = ((*top.sub(1)).ip, (*top.sub(1)).base);
        c.frames_top = top.sub(1);
        let caller_fp = fp.sub(c.base - f_base);
        c.base = f_base;
        next::<TRACK>(f_ip, caller_fp, mem_base, mem_len, acc, cx)
    }
}

#[allow(non_snake_case)]
pub(super) unsafe fn Return<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    // SAFETY: as `return_within`.
    unsafe { return_within::<TRACK>(ip, fp, mem_base, mem_len, acc, cx) }
}

#[allow(non_snake_case)]
pub(super) unsafe fn ReturnSlot<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    // SAFETY: `handler_for` gives this handler to this variant only. `src` is a
    // slot of the frame. Copying the result first is what `exec` does too, so
    // ending the run afterwards (returning elsewhere) repeats an idempotent copy.
    unsafe {
        let Instr::ReturnSlot { src } = (*ip).instr else { std::hint::unreachable_unchecked() };
        *fp = *fp.add(src as usize);
        return_within::<TRACK>(ip, fp, mem_base, mem_len, acc, cx)
    }
}

/// `OsrPoint`: counts down the function's hotness counter (see
/// `compile::tier`); when it runs out, ends the run there for `exec`.
#[allow(non_snake_case)]
pub(super) unsafe fn OsrPoint<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    // SAFETY: `handler_for` gives this handler to this variant only; `cx` and
    // the module it points to are valid for the whole run. The counter list is
    // empty unless the module tiers, and then has one per defined function.
    unsafe {
        let Instr::OsrPoint { def_index, .. } = (*ip).instr else { std::hint::unreachable_unchecked() };
        let hot = &(*(*cx).module).hot;
        if let Some(counter) = hot.get(def_index as usize) {
            let n = counter.load(Ordering::Relaxed).wrapping_sub(1);
            if n <= 0 {
                return exit(ip, fp, mem_base, mem_len, acc, cx);
            }
            counter.store(n, Ordering::Relaxed);
        }
        next::<TRACK>(ip.add(1), fp, mem_base, mem_len, acc, cx)
    }
}
