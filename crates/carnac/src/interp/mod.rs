//! The interpreter tier: translation of validated bodies into compact
//! register-style code ([`code`], [`translate`]) and its execution ([`exec`]).
//!
//! Translation happens once per module; execution never decodes wasm bytes.

pub(crate) mod code;
mod exec;
mod ops;
mod translate;

pub(crate) use code::CompiledFunc;
pub(crate) use translate::Translator;

use crate::runtime::func::Caller;
use crate::runtime::store::{FuncKind, Store};
use crate::runtime::trap::{Trap, TrapKind};

/// How deeply host functions may re-enter wasm (each re-entry uses host stack).
const MAX_REENTRY: u32 = 64;

/// Calls store function `func` with `slots` holding the arguments on entry and
/// the results on return (`slots.len()` covers both).
pub(crate) fn call<T>(store: &mut Store<T>, func: u32, slots: &mut [u64]) -> Result<(), Trap> {
    let entity = &store.inner.funcs[func as usize];
    match &entity.kind {
        FuncKind::Host { index } => {
            let host = store.hosts[*index as usize].func.clone();
            host(Caller { store, instance: None }, slots)
        }
        FuncKind::Wasm { instance, module, def_index } => {
            let (instance, def_index) = (*instance, *def_index);
            let module = module.clone();
            let np = entity.ty.params().len();
            let nr = entity.ty.results().len();
            if store.inner.reentry >= MAX_REENTRY {
                return Err(Trap::new(TrapKind::StackExhausted));
            }
            let mut stack = std::mem::take(&mut store.inner.stack);
            if stack.len() < slots.len() {
                stack.resize(slots.len().max(4096), 0);
            }
            stack[..np].copy_from_slice(&slots[..np]);
            store.inner.reentry += 1;
            let result = exec::run(store, &mut stack, instance, &*module, def_index);
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
