//! The runtime functions compiled code calls ([`BUILTINS`], declared in
//! `runtime::vmctx::Builtins`): growth, bulk memory and table operations,
//! calls to host and interpreted functions, deadlines and fuel.
//!
//! Each one finds its store through the innermost activation (`super::call`),
//! works in the calling instance's own index spaces, and never unwinds: a trap
//! is recorded in the activation and reported by a nonzero status (or a
//! negative size for the grow builtins), which the compiled code turns into a
//! `TRAP_PENDING` trap. A panic in a host function is caught here and resumed
//! in the host once the wasm frames are gone (a panic must not cross
//! `extern "C"`). The bounds rules are the interpreter's (`runtime::bulk`);
//! `memory.atomic.wait32/64` and `memory.atomic.notify` are the interpreter's
//! own entry points (`runtime::shared`, over the process-wide parking lot), so
//! a compiled waiter is woken by a notify from any tier or thread, and a wait
//! stays interruptible (the store's interrupt flag and epoch deadline end it
//! as they end a loop).

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::call::{instance_of, with_activation, Activation};
use crate::runtime::shared;
use crate::runtime::store::StoreInner;
use crate::runtime::trap::{Trap, TrapKind};
use crate::runtime::vmctx::{Builtins, Status, VMContext, VMMemoryDef};

/// The table every context block points at.
pub(crate) static BUILTINS: Builtins = Builtins {
    memory_grow,
    memory_fill,
    memory_copy,
    memory_init,
    data_drop,
    table_grow,
    table_fill,
    table_copy,
    table_init,
    elem_drop,
    call_store_func,
    deadline,
    out_of_fuel,
    memory_atomic_notify,
    memory_atomic_wait32,
    memory_atomic_wait64,
    memory_grow64,
    memory_fill64,
    memory_copy64,
    memory_init64,
    call_interpreted,
    func_subtype,
};

/// `call_indirect`'s check when the callee's type id differs from a
/// non-final expected one (GC): whether the callee's type is a declared subtype.
unsafe extern "C" fn func_subtype(_vmctx: *mut VMContext, actual: u32, expected: u32) -> u32 {
    with_activation(|act| {
        // SAFETY: called from compiled code of the activation's store.
        let s = unsafe { inner(act) };
        s.engine.type_registry().is_subtype(actual, expected) as u32
    })
}

/// Runs `f` on the activation's store; a trap is recorded and becomes status 1.
fn with_store(f: impl FnOnce(&mut Activation) -> Result<(), Trap>) -> Status {
    with_activation(|act| match catch_unwind(AssertUnwindSafe(|| f(act))) {
        Ok(Ok(())) => 0,
        Ok(Err(trap)) => {
            act.pending = Some(trap);
            1
        }
        Err(payload) => {
            act.panic = Some(payload);
            act.pending = Some(Trap::new(TrapKind::HostError));
            1
        }
    })
}

/// The store's inner state, from the activation.
///
/// # Safety
/// Called from a builtin running for the activation's store.
unsafe fn inner(act: &mut Activation) -> &mut crate::runtime::store::StoreInner {
    // SAFETY: the activation's store is the one running this call, not in use elsewhere.
    unsafe { &mut *(act.vtable.inner)(act.store) }
}

unsafe extern "C" fn memory_grow(vmctx: *mut VMContext, memory: u32, delta: u32) -> i64 {
    // SAFETY (all builtins): compiled code passes its own live context block;
    // a 32-bit memory's builtins are the 64-bit ones with their operands widened.
    unsafe { memory_grow64(vmctx, memory, delta as u64) }
}

unsafe extern "C" fn memory_fill(vmctx: *mut VMContext, memory: u32, dst: u32, val: u32, len: u32) -> Status {
    unsafe { memory_fill64(vmctx, memory, dst as u64, val, len as u64) }
}

unsafe extern "C" fn memory_copy(
    vmctx: *mut VMContext,
    dst_memory: u32,
    dst: u32,
    src_memory: u32,
    src: u32,
    len: u32,
) -> Status {
    unsafe { memory_copy64(vmctx, dst_memory, dst as u64, src_memory, src as u64, len as u64) }
}

unsafe extern "C" fn memory_init(
    vmctx: *mut VMContext,
    memory: u32,
    data: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> Status {
    unsafe { memory_init64(vmctx, memory, data, dst as u64, src, len) }
}

/// A 64-bit address or length as a `usize` (saturated on a 32-bit host,
/// where it is out of any memory's bounds anyway).
fn usize_of(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

unsafe extern "C" fn memory_grow64(vmctx: *mut VMContext, memory: u32, delta: u64) -> i64 {
    let mut result = -1;
    // SAFETY: compiled code passes its own live context block.
    let instance = unsafe { instance_of(vmctx) };
    let status = with_store(|act| {
        // SAFETY: see `inner`.
        let s = unsafe { inner(act) };
        let m = s.instances[instance as usize].memories[memory as usize];
        // SAFETY: see `StoreVTable`.
        result = match unsafe { (act.vtable.memory_grow)(act.store, m, delta) }? {
            Some(old) => old as i64,
            None => -1,
        };
        Ok(())
    });
    if status != 0 {
        -2
    } else {
        result
    }
}

unsafe extern "C" fn memory_fill64(vmctx: *mut VMContext, memory: u32, dst: u64, val: u32, len: u64) -> Status {
    // SAFETY: compiled code passes its own live context block.
    let instance = unsafe { instance_of(vmctx) };
    with_store(|act| {
        // SAFETY: see `inner`.
        let s = unsafe { inner(act) };
        s.memory_fill(instance, memory, usize_of(dst), val as u8, usize_of(len)).map_err(Trap::new)
    })
}

unsafe extern "C" fn memory_copy64(
    vmctx: *mut VMContext,
    dst_memory: u32,
    dst: u64,
    src_memory: u32,
    src: u64,
    len: u64,
) -> Status {
    // SAFETY: compiled code passes its own live context block.
    let instance = unsafe { instance_of(vmctx) };
    with_store(|act| {
        // SAFETY: see `inner`.
        let s = unsafe { inner(act) };
        let (d, sr, n) = (usize_of(dst), usize_of(src), usize_of(len));
        s.memory_copy(instance, dst_memory, src_memory, d, sr, n).map_err(Trap::new)
    })
}

unsafe extern "C" fn memory_init64(
    vmctx: *mut VMContext,
    memory: u32,
    data: u32,
    dst: u64,
    src: u32,
    len: u32,
) -> Status {
    // SAFETY: compiled code passes its own live context block.
    let instance = unsafe { instance_of(vmctx) };
    with_store(|act| {
        // SAFETY: see `inner`.
        let s = unsafe { inner(act) };
        s.memory_init(instance, memory, data, usize_of(dst), src as usize, len as usize).map_err(Trap::new)
    })
}

unsafe extern "C" fn data_drop(vmctx: *mut VMContext, data: u32) {
    let instance = unsafe { instance_of(vmctx) };
    with_store(|act| {
        unsafe { inner(act) }.data_drop(instance, data);
        Ok(())
    });
}

unsafe extern "C" fn table_grow(vmctx: *mut VMContext, table: u32, init: u64, delta: u32) -> i64 {
    let mut result = -1;
    let instance = unsafe { instance_of(vmctx) };
    let status = with_store(|act| {
        let s = unsafe { inner(act) };
        let t = s.instances[instance as usize].tables[table as usize];
        result = match unsafe { (act.vtable.table_grow)(act.store, t, delta as u64, init) }? {
            Some(old) => old as i64,
            None => -1,
        };
        Ok(())
    });
    if status != 0 {
        -2
    } else {
        result
    }
}

unsafe extern "C" fn table_fill(vmctx: *mut VMContext, table: u32, dst: u32, val: u64, len: u32) -> Status {
    let instance = unsafe { instance_of(vmctx) };
    with_store(|act| {
        let s = unsafe { inner(act) };
        s.table_fill(instance, table, dst as usize, val, len as usize).map_err(Trap::new)
    })
}

unsafe extern "C" fn table_copy(
    vmctx: *mut VMContext,
    dst_table: u32,
    dst: u32,
    src_table: u32,
    src: u32,
    len: u32,
) -> Status {
    let instance = unsafe { instance_of(vmctx) };
    with_store(|act| {
        let s = unsafe { inner(act) };
        s.table_copy(instance, dst_table, src_table, dst as usize, src as usize, len as usize).map_err(Trap::new)
    })
}

unsafe extern "C" fn table_init(vmctx: *mut VMContext, table: u32, elem: u32, dst: u32, src: u32, len: u32) -> Status {
    let instance = unsafe { instance_of(vmctx) };
    with_store(|act| {
        let s = unsafe { inner(act) };
        s.table_init(instance, table, elem, dst as usize, src as usize, len as usize).map_err(Trap::new)
    })
}

unsafe extern "C" fn elem_drop(vmctx: *mut VMContext, elem: u32) {
    let instance = unsafe { instance_of(vmctx) };
    with_store(|act| {
        unsafe { inner(act) }.elem_drop(instance, elem);
        Ok(())
    });
}

unsafe extern "C" fn call_store_func(vmctx: *mut VMContext, store_index: u32, slots: *mut u64) -> Status {
    let instance = unsafe { instance_of(vmctx) };
    with_store(|act| {
        let s = unsafe { inner(act) };
        let ty = s.func_ty(store_index);
        let n = ty.param_slots().max(ty.result_slots());
        // SAFETY: compiled code passes a buffer of at least this many slots
        // (sized from the same function type, which the call was checked against).
        let slots = unsafe { std::slice::from_raw_parts_mut(slots, n) };
        // A trap from wasm code of another tier or module goes on through
        // these compiled frames: they belong to its backtrace (as the
        // interpreter's frames do; a host function's trap starts afresh).
        act.callee_is_wasm = matches!(s.funcs[store_index as usize].kind, crate::runtime::store::FuncKind::Wasm { .. });
        // SAFETY: see `StoreVTable`.
        unsafe { (act.vtable.call)(act.store, store_index, slots, instance) }
    })
}

unsafe extern "C" fn call_interpreted(vmctx: *mut VMContext, def_index: u32, slots: *mut u64) -> Status {
    let instance = unsafe { instance_of(vmctx) };
    with_store(|act| {
        let s = unsafe { inner(act) };
        let info = &s.instances[instance as usize].module.info;
        let ty = info.func_type(info.num_imported_funcs + def_index);
        let n = ty.param_slots().max(ty.result_slots());
        // SAFETY: the stub passes a buffer of at least this many slots (sized
        // from the same function type).
        let slots = unsafe { std::slice::from_raw_parts_mut(slots, n) };
        // Its traps and exceptions go on through these compiled frames.
        act.callee_is_wasm = true;
        // SAFETY: see `StoreVTable`.
        unsafe { (act.vtable.call_interpreted)(act.store, instance, def_index, slots) }
    })
}

unsafe extern "C" fn deadline(_vmctx: *mut VMContext) -> Status {
    // SAFETY: see `StoreVTable`.
    with_store(|act| unsafe { (act.vtable.deadline)(act.store) })
}

unsafe extern "C" fn out_of_fuel(_vmctx: *mut VMContext) -> Status {
    with_store(|act| {
        // As the interpreter: what is left is less than the block costs, and spent.
        unsafe { inner(act) }.store_ctx.fuel = 0;
        Err(Trap::new(TrapKind::OutOfFuel))
    })
}

/// The definition of memory `memory` of `instance` and whether it is shared.
fn memory_def(s: &StoreInner, instance: u32, memory: u32) -> (*const VMMemoryDef, bool) {
    let m = &s.memories[s.instances[instance as usize].memories[memory as usize] as usize];
    (m.def_ptr() as *const VMMemoryDef, m.is_shared())
}

/// A wait/notify builtin's `i64` result: the value, or -1 when a trap was recorded.
fn wait_result(status: Status, value: u32) -> i64 {
    if status != 0 {
        -1
    } else {
        value as i64
    }
}

unsafe extern "C" fn memory_atomic_notify(vmctx: *mut VMContext, memory: u32, addr: u64, count: u32) -> i64 {
    let instance = unsafe { instance_of(vmctx) };
    let mut woken = 0;
    let status = with_store(|act| {
        let (def, shared) = memory_def(unsafe { inner(act) }, instance, memory);
        // SAFETY: a live memory of the instance, which the store keeps (a
        // shared one through its clone) for the whole call.
        woken = unsafe { shared::memory_atomic_notify(def, shared, addr, count) }.map_err(Trap::new)?;
        Ok(())
    });
    wait_result(status, woken)
}

/// `memory.atomic.wait32/64` (`size` 4 or 8) for the activation's store,
/// `timeout` in nanoseconds (negative: none).
fn memory_atomic_wait(vmctx: *mut VMContext, memory: u32, addr: u64, expected: u64, size: u64, timeout: i64) -> i64 {
    // SAFETY: compiled code passes its own live context block.
    let instance = unsafe { instance_of(vmctx) };
    let mut result = 0;
    let status = with_store(|act| {
        let (store, vtable) = (act.store, act.vtable);
        let (def, shared) = memory_def(unsafe { inner(act) }, instance, memory);
        // While parked, the store's interrupt flag and epoch deadline are
        // checked as the interpreter checks them (the callback may extend it).
        // SAFETY: see `StoreVTable`; the store is not otherwise in use while it waits.
        let poll = || unsafe { (vtable.deadline)(store) };
        // SAFETY: as in `memory_atomic_notify`.
        result = unsafe {
            if size == 4 {
                shared::memory_atomic_wait32(def, shared, addr, expected as u32, timeout, poll)
            } else {
                shared::memory_atomic_wait64(def, shared, addr, expected, timeout, poll)
            }
        }?;
        Ok(())
    });
    wait_result(status, result)
}

unsafe extern "C" fn memory_atomic_wait32(
    vmctx: *mut VMContext,
    memory: u32,
    addr: u64,
    expected: u32,
    timeout: i64,
) -> i64 {
    memory_atomic_wait(vmctx, memory, addr, expected as u64, 4, timeout)
}

unsafe extern "C" fn memory_atomic_wait64(
    vmctx: *mut VMContext,
    memory: u32,
    addr: u64,
    expected: u64,
    timeout: i64,
) -> i64 {
    memory_atomic_wait(vmctx, memory, addr, expected, 8, timeout)
}
