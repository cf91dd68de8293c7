//! The one entry through which the host (and every tier, for calls it cannot
//! make itself) calls a store function: it picks what runs it (a host
//! function, the interpreter, or compiled code) and guards the host stack.
//! `runtime/` knows the tiers only through this function.

use crate::runtime::func::Caller;
use crate::runtime::store::{FuncKind, Store};
use crate::runtime::trap::{Trap, TrapKind};

/// An address inside the current host stack frame.
#[inline(always)]
fn stack_pointer() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// Calls store function `func` with `slots` holding the raw arguments on entry
/// and the raw results on return (`slots.len()` covers both). `caller` is the
/// calling instance, for host functions that look at its exports.
pub(crate) fn call_func<T>(
    store: &mut Store<T>,
    func: u32,
    slots: &mut [u64],
    caller: Option<u32>,
) -> Result<(), Trap> {
    match store.inner.funcs[func as usize].kind {
        FuncKind::Host { index, .. } => {
            let host = store.hosts[index as usize].func.clone();
            host(Caller { store, instance: caller }, slots)
        }
        FuncKind::Wasm { instance, def_index } => {
            #[cfg(carnac_compiled)]
            store.inner.refresh_func_refs();
            enter_wasm(store, |store| run(store, instance, def_index, slots))
        }
    }
}

/// Runs wasm code (`f`) for the host or for another tier: guards the host
/// stack and counts the re-entry.
fn enter_wasm<T>(store: &mut Store<T>, f: impl FnOnce(&mut Store<T>) -> Result<(), Trap>) -> Result<(), Trap> {
    let sp = stack_pointer();
    let max = store.inner.engine.config().max_wasm_stack;
    if store.inner.reentry == 0 {
        store.inner.stack_base = sp;
        // Compiled prologues trap below this (the stack grows down).
        store.inner.store_ctx.stack_limit = sp.saturating_sub(max);
    } else if store.inner.stack_base.abs_diff(sp) > max {
        // Nested host→wasm re-entries used `Config::max_wasm_stack` of host stack.
        return Err(Trap::new(TrapKind::StackExhausted));
    }
    store.inner.reentry += 1;
    // A host function's panic unwinds through here (both tiers carry it
    // out to the caller): the count must come down all the same, or the
    // store would take its next outermost call for a nested one, keep a
    // stack limit measured on a stack it may no longer run on (another
    // thread's), and refuse to run there with `StackExhausted`.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(store)));
    store.inner.reentry -= 1;
    if store.inner.reentry == 0 {
        // Also after a panic out of a stub entry (see `run`).
        store.inner.gc_collect_level = 1;
    }
    let result = result.unwrap_or_else(|payload| std::panic::resume_unwind(payload));
    // An exception leaving wasm for the host is rooted in the host's scope
    // (while wasm ran, no collection could free it).
    if let Err(t) = &result {
        if let Some(e) = t.exception().filter(|e| e.store == store.inner.id) {
            store.inner.externs.root(e.index, e.gen);
        }
    }
    result
}

/// Continues a function of `instance` that the interpreter is running in an
/// on-stack-replacement entry of its current loop (see `compile::tier`):
/// `slots[0]` the interpreter frame's address, the function's results on return.
#[cfg(carnac_compiled)]
pub(crate) fn call_osr<T>(
    store: &mut Store<T>,
    instance: u32,
    osr: &crate::compile::compiler::StandaloneCode,
    slots: &mut [u64],
) -> Result<(), Trap> {
    store.inner.refresh_func_refs();
    enter_wasm(store, |store| crate::compile::call::call_standalone(store, instance, osr, slots))
}

/// Runs defined function `def_index` of `instance` in the interpreter, for
/// compiled code (a function the compiled tier left interpreted).
#[cfg(carnac_native_code)]
pub(crate) fn call_interpreted<T>(
    store: &mut Store<T>,
    instance: u32,
    def_index: u32,
    slots: &mut [u64],
) -> Result<(), Trap> {
    enter_wasm(store, |store| crate::interp::call(store, instance, def_index, slots))
}

fn run<T>(store: &mut Store<T>, instance: u32, def_index: u32, slots: &mut [u64]) -> Result<(), Trap> {
    #[cfg(carnac_native_code)]
    {
        let module = &store.inner.instances[instance as usize].module;
        // A function the compiled tier left interpreted is entered through its
        // stub, which runs it in the interpreter: the common path stays as it was.
        if module.is_compiled() {
            // The host entering an interpreted function's stub directly: the
            // stub's frame holds no references, so the interpreter activation
            // it starts (one re-entry deeper) may collect the GC heap as if
            // the host had entered it (see `runtime::gc_heap`).
            let direct = store.inner.reentry == 1 && module.is_interpreted(def_index);
            if direct {
                store.inner.gc_collect_level = 2;
            }
            let r = crate::compile::call::call(store, instance, def_index, slots);
            if direct {
                store.inner.gc_collect_level = 1;
            }
            return r;
        }
        // Tiered up alone (see `compile::tier`).
        #[cfg(carnac_compiled)]
        if let Some(code) = module.tier.as_ref().and_then(|t| t.func(def_index)).cloned() {
            return crate::compile::call::call_standalone(store, instance, &code, slots);
        }
    }
    crate::interp::call(store, instance, def_index, slots)
}
