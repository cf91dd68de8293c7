//! The interpreter tier: translation of validated bodies into compact
//! register-style code ([`code`], [`translate`]) and its execution: hot
//! instructions by handlers chained with tail calls ([`threaded`]), the rest by
//! a `match` loop that also owns frames and traps ([`exec`]).
//!
//! Translation happens once per module; execution never decodes wasm bytes.

mod assign;
pub(crate) mod code;
mod exec;
mod ops;
mod simd;
#[cfg(target_arch = "x86_64")]
mod simd_x86;
mod threaded;
mod translate;

pub(crate) use code::CompiledFunc;
pub(crate) use translate::Translator;

use crate::runtime::func::Caller;
use crate::runtime::store::{FuncKind, Store};
use crate::runtime::trap::{Trap, TrapKind};

/// An address inside the current host stack frame.
#[inline(always)]
fn stack_pointer() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// Calls store function `func` with `slots` holding the arguments on entry and
/// the results on return (`slots.len()` covers both).
pub(crate) fn call<T>(store: &mut Store<T>, func: u32, slots: &mut [u64]) -> Result<(), Trap> {
    match store.inner.funcs[func as usize].kind {
        FuncKind::Host { index, .. } => {
            let host = store.hosts[index as usize].func.clone();
            host(Caller { store, instance: None }, slots)
        }
        FuncKind::Wasm { instance, def_index } => {
            let module = store.inner.instances[instance as usize].module.clone();
            let ty = store.inner.func_ty(func);
            let (np, nr) = (ty.param_slots(), ty.result_slots());
            let sp = stack_pointer();
            if store.inner.reentry == 0 {
                store.inner.stack_base = sp;
            } else if store.inner.stack_base.abs_diff(sp) > store.inner.engine.config().max_wasm_stack {
                // Nested host→wasm re-entries used `Config::max_wasm_stack` of
                // host stack (guest-to-guest calls use none).
                return Err(Trap::new(TrapKind::StackExhausted));
            }
            let mut stack = std::mem::take(&mut store.inner.stack);
            if stack.len() < slots.len() {
                stack.resize(slots.len().max(256), 0);
            }
            stack[..np].copy_from_slice(&slots[..np]);
            store.inner.reentry += 1;
            let result = if store.inner.engine.config().track_memory_writes {
                exec::run::<T, true>(store, &mut stack, instance, &*module, def_index)
            } else {
                exec::run::<T, false>(store, &mut stack, instance, &*module, def_index)
            };
            store.inner.reentry -= 1;
            if result.is_ok() {
                slots[..nr].copy_from_slice(&stack[..nr]);
            }
            if store.inner.stack.capacity() < stack.capacity() {
                store.inner.stack = stack;
            }
            result
        }
    }
}
