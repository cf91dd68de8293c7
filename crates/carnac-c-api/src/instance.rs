//! Module instances: instantiation with imports given in order, and exports.

use carnac_rt::{Extern, Instance, Trap};

use crate::externals::{extern_object, extern_of};
use crate::func::{error_trap, trap_ptr};
use crate::module::module_of;
use crate::object::{view, wasm_instance_t, wasm_module_t, wasm_trap_t, Item, Object};
use crate::store::wasm_store_t;
use crate::vec::{wasm_extern_vec_t, CVec};
use crate::{guard, opt_mut, opt_ref};

/// Instantiates `module` in `store` with `imports` in the module's import
/// order. On failure returns null and, if `trap` is not null, stores there a
/// trap (owned by the caller): the start function's trap, or one whose
/// message says why instantiation failed (an import missing or of the wrong
/// type, an import from another store, a null argument, a limit).
#[no_mangle]
pub unsafe extern "C" fn wasm_instance_new(
    store: *mut wasm_store_t,
    module: *const wasm_module_t,
    imports: *const wasm_extern_vec_t,
    trap: *mut *mut wasm_trap_t,
) -> *mut wasm_instance_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `trap` is null or a place for a pointer.
        let mut trap = unsafe { opt_mut(trap) };
        if let Some(t) = trap.as_deref_mut() {
            *t = std::ptr::null_mut();
        }
        let mut fail = |t: Trap| {
            if let Some(out) = trap.as_deref_mut() {
                *out = trap_ptr(t);
            }
            std::ptr::null_mut()
        };
        // SAFETY: `store` and `module` are null or valid.
        let (Some(store), Some(module)) = (unsafe { opt_ref(store) }, unsafe { module_of(module) }) else {
            return fail(Trap::host("wasm_instance_new: null store or module"));
        };
        let mut externs = Vec::new();
        // SAFETY: `imports` is null or a valid vector of (possibly null) externs.
        let given = unsafe { opt_ref(imports) }.map_or(&[][..], |v| unsafe { v.as_slice() });
        for (i, p) in given.iter().enumerate() {
            // SAFETY: each element is null or a valid object.
            match unsafe { view(*p, "extern") }.and_then(extern_of) {
                Some((e, _)) => externs.push(e),
                None => return fail(Trap::host(format!("wasm_instance_new: import {i} is null or not an extern"))),
            }
        }
        // Our own references for the length of the call: a start function's
        // host callback may delete the store's and the module's handles.
        let (store, module) = (store.store.clone(), module.clone());
        match store.with(|s| Instance::new(s, &module, &externs)) {
            Ok(i) => Object::new(Some(store.clone()), Item::Instance(i)).into_ptr(),
            Err(e) => fail(error_trap(e)),
        }
    })
}

/// The instance's exports, in the module's order, as new externs owned by the
/// caller (empty for null).
#[no_mangle]
pub unsafe extern "C" fn wasm_instance_exports(instance: *const wasm_instance_t, out: *mut wasm_extern_vec_t) {
    guard((), || {
        if out.is_null() {
            return;
        }
        // SAFETY: `instance` is null or valid.
        let exports = match unsafe { view(instance, "instance") } {
            Some(Object { store: Some(s), item: Item::Instance(i), .. }) => {
                let list: Vec<(String, Extern)> = s.with(|st| i.exports(&*st));
                list.into_iter().map(|(_, e)| extern_object(s, e).into_ptr()).collect()
            }
            _ => Vec::new(),
        };
        // SAFETY: `out` is a place for a vector.
        unsafe { out.write(CVec::from_vec(exports)) }
    })
}
