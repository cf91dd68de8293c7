//! The interpreter tier: translation of validated bodies into compact
//! register-style code ([`code`], [`translate`]) and its execution: hot
//! instructions by handlers chained with tail calls ([`threaded`]), the rest by
//! a `match` loop that also owns frames and traps ([`exec`]).
//!
//! Translation happens once per module; execution never decodes wasm bytes.

mod assign;
pub(crate) mod atomic;
pub(crate) mod cast;
pub(crate) mod code;
mod exec;
pub(crate) mod gc;
mod ops;
mod simd;
#[cfg(target_arch = "x86_64")]
mod simd_x86;
mod threaded;
mod translate;

pub(crate) use code::CompiledFunc;
pub(crate) use translate::Translator;

use crate::runtime::store::Store;
use crate::runtime::trap::Trap;

/// Runs defined function `def_index` of `instance` in the interpreter, with
/// `slots` holding the arguments on entry and the results on return
/// (`slots.len()` covers both). Reached through `runtime::call::call_func`,
/// which guards the host stack.
pub(crate) fn call<T>(store: &mut Store<T>, instance: u32, def_index: u32, slots: &mut [u64]) -> Result<(), Trap> {
    let module = store.inner.instances[instance as usize].module.clone();
    let ty = module.info.func_type(module.info.num_imported_funcs + def_index);
    let (np, nr) = (ty.param_slots(), ty.result_slots());
    let mut stack = std::mem::take(&mut store.inner.stack);
    if stack.len() < slots.len() {
        stack.resize(slots.len().max(256), 0);
    }
    stack[..np].copy_from_slice(&slots[..np]);
    let result = if store.inner.engine.config().track_memory_writes {
        exec::run::<T, true>(store, &mut stack, instance, &*module, def_index)
    } else {
        exec::run::<T, false>(store, &mut stack, instance, &*module, def_index)
    };
    if result.is_ok() {
        slots[..nr].copy_from_slice(&stack[..nr]);
    }
    if store.inner.stack.capacity() < stack.capacity() {
        store.inner.stack = stack;
    }
    result
}
