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
//! `memory.atomic.wait32/64` and `memory.atomic.notify` are the runtime's own
//! (`runtime::shared`, the process-wide parking lot), so a compiled waiter is
//! woken by a notify from any tier or thread, and a wait stays interruptible
//! (the store's interrupt flag and epoch deadline end it as they end a loop).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::call::{instance_of, with_activation, Activation};
use crate::runtime::parking;
use crate::runtime::shared::atomic_cell;
use crate::runtime::store::StoreInner;
use crate::runtime::trap::{Trap, TrapKind};
use crate::runtime::vmctx::{Builtins, Status, VMContext};
use crate::SharedMemory;

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
};

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
    let mut result = -1;
    // SAFETY (all builtins): compiled code passes its own live context block.
    let instance = unsafe { instance_of(vmctx) };
    let status = with_store(|act| {
        // SAFETY: see `inner`.
        let s = unsafe { inner(act) };
        let m = s.instances[instance as usize].memories[memory as usize];
        // SAFETY: see `StoreVTable`.
        result = match unsafe { (act.vtable.memory_grow)(act.store, m, delta as u64) }? {
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

unsafe extern "C" fn memory_fill(vmctx: *mut VMContext, memory: u32, dst: u32, val: u32, len: u32) -> Status {
    let instance = unsafe { instance_of(vmctx) };
    with_store(|act| {
        let s = unsafe { inner(act) };
        s.memory_fill(instance, memory, dst as usize, val as u8, len as usize).map_err(Trap::new)
    })
}

unsafe extern "C" fn memory_copy(
    vmctx: *mut VMContext,
    dst_memory: u32,
    dst: u32,
    src_memory: u32,
    src: u32,
    len: u32,
) -> Status {
    let instance = unsafe { instance_of(vmctx) };
    with_store(|act| {
        let s = unsafe { inner(act) };
        s.memory_copy(instance, dst_memory, src_memory, dst as usize, src as usize, len as usize).map_err(Trap::new)
    })
}

unsafe extern "C" fn memory_init(
    vmctx: *mut VMContext,
    memory: u32,
    data: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> Status {
    let instance = unsafe { instance_of(vmctx) };
    with_store(|act| {
        let s = unsafe { inner(act) };
        s.memory_init(instance, memory, data, dst as usize, src as usize, len as usize).map_err(Trap::new)
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

/// The host address of the atomic cell of `size` bytes at `addr` of memory
/// `memory` of `instance` (bounds, then alignment checked), and the memory
/// itself when it is shared (kept alive by the clone).
fn atomic_cell_of(
    s: &StoreInner,
    instance: u32,
    memory: u32,
    addr: u64,
    size: u64,
) -> Result<(*mut u8, Option<SharedMemory>), Trap> {
    let m = &s.memories[s.instances[instance as usize].memories[memory as usize] as usize];
    // SAFETY: the definition lives as long as the memory, borrowed here.
    let def = unsafe { &*m.def_ptr() };
    let cell = atomic_cell(def, m.is_shared(), addr, size).map_err(Trap::new)?;
    Ok((cell, m.shared().cloned()))
}

/// `memory.atomic.notify`: the number of waiters woken (none on an unshared memory).
fn atomic_notify(s: &StoreInner, instance: u32, memory: u32, addr: u64, count: u32) -> Result<u32, Trap> {
    let (cell, shared) = atomic_cell_of(s, instance, memory, addr, 4)?;
    Ok(if shared.is_some() { parking::notify(cell as usize, count) } else { 0 })
}

/// A wait/notify builtin's `i64` result: `Ok(v)` as is, a trap recorded (-1).
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
        let s = unsafe { inner(act) };
        woken = atomic_notify(s, instance, memory, addr, count)?;
        Ok(())
    });
    wait_result(status, woken)
}

/// `memory.atomic.wait32/64` for the activation's store: `expected` of
/// `size` bytes, `timeout` in nanoseconds (negative: none).
fn memory_atomic_wait(vmctx: *mut VMContext, memory: u32, addr: u64, expected: u64, size: u64, timeout: i64) -> i64 {
    // SAFETY: compiled code passes its own live context block.
    let instance = unsafe { instance_of(vmctx) };
    let mut result = 0;
    let status = with_store(|act| {
        let (store, vtable) = (act.store, act.vtable);
        // SAFETY: see `inner`.
        let s = unsafe { inner(act) };
        // Between slices of the wait: the store's interrupt flag and epoch
        // deadline, as compiled loops check them (`deadline` decides).
        let signals = s.signals.clone();
        let (cell, memory) = atomic_cell_of(s, instance, memory, addr, size)?;
        let Some(memory) = memory else { return Err(Trap::new(TrapKind::ExpectedSharedMemory)) };
        let poll = || {
            if signals.should_stop() {
                // SAFETY: see `StoreVTable`; the store is not otherwise in use while it waits.
                unsafe { (vtable.deadline)(store) }
            } else {
                Ok(())
            }
        };
        // SAFETY: `cell` is an aligned cell of `size` bytes inside the memory,
        // which `memory` keeps mapped (a shared memory never moves or shrinks).
        let still = || unsafe {
            match size {
                4 => AtomicU32::from_ptr(cell as *mut u32).load(Ordering::SeqCst) == expected as u32,
                _ => AtomicU64::from_ptr(cell as *mut u64).load(Ordering::SeqCst) == expected,
            }
        };
        let timeout = u64::try_from(timeout).ok().map(Duration::from_nanos);
        result = parking::wait(cell as usize, still, timeout, poll)?.code();
        drop(memory);
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
