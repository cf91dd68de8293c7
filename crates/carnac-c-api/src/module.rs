//! Modules: compiling, validating, describing, serialising and sharing them.
//!
//! A module belongs to its engine, not to a store: the store argument of
//! `wasm_module_new` only names the engine. `wasm_module_new` accepts binary
//! modules only (the standard's contract); `carnac_module_new` in carnac.h
//! also says why a module was refused.

use carnac_rt::Module;

use crate::object::{view, wasm_module_t, Item, Object};
use crate::store::wasm_store_t;
use crate::types::{wasm_exporttype_t, wasm_externtype_t, wasm_importtype_t};
use crate::vec::{wasm_byte_vec_t, wasm_exporttype_vec_t, wasm_importtype_vec_t, CVec};
use crate::{from_raw, guard, into_raw, opt_ref};

/// The module `module` of the store's engine: `Ok` or Carnac's error.
///
/// # Safety
///
/// `store` is null or valid; `binary` null or a valid byte vector.
pub unsafe fn compile(store: *mut wasm_store_t, binary: *const wasm_byte_vec_t) -> Result<Module, String> {
    // SAFETY: contract above.
    let (store, binary) = unsafe { (opt_ref(store), opt_ref(binary)) };
    let (Some(store), Some(binary)) = (store, binary) else { return Err("null store or binary".into()) };
    let engine = store.store.with(|s| s.engine().clone());
    // SAFETY: a valid byte vector holds `size` bytes.
    Module::from_binary(&engine, unsafe { binary.as_slice() }).map_err(|e| e.to_string())
}

/// A module compiled from a binary; null if it is malformed or invalid (or
/// an argument is null).
#[no_mangle]
pub unsafe extern "C" fn wasm_module_new(
    store: *mut wasm_store_t,
    binary: *const wasm_byte_vec_t,
) -> *mut wasm_module_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: the caller passes valid (or null) pointers.
        match unsafe { compile(store, binary) } {
            Ok(m) => Object::new(None, Item::Module(m)).into_ptr(),
            Err(_) => std::ptr::null_mut(),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_module_validate(store: *mut wasm_store_t, binary: *const wasm_byte_vec_t) -> bool {
    // SAFETY: the caller passes valid (or null) pointers.
    guard(false, || unsafe { compile(store, binary) }.is_ok())
}

/// The module of a module object.
///
/// # Safety
///
/// `p` is null or a valid object.
pub unsafe fn module_of<'a>(p: *const Object) -> Option<&'a Module> {
    // SAFETY: contract above.
    match unsafe { view(p, "module") }.map(|o| &o.item) {
        Some(Item::Module(m)) => Some(m),
        _ => None,
    }
}

/// The module's imports, in order (empty for null).
#[no_mangle]
pub unsafe extern "C" fn wasm_module_imports(module: *const wasm_module_t, out: *mut wasm_importtype_vec_t) {
    guard((), || {
        if out.is_null() {
            return;
        }
        // SAFETY: `module` is null or valid.
        let v = match unsafe { module_of(module) } {
            Some(m) => m
                .imports()
                .map(|i| into_raw(wasm_importtype_t::new(&i.module, &i.name, wasm_externtype_t::from_carnac(&i.ty))))
                .collect(),
            None => Vec::new(),
        };
        // SAFETY: `out` is a place for a vector.
        unsafe { out.write(CVec::from_vec(v)) }
    })
}

/// The module's exports, in order (empty for null).
#[no_mangle]
pub unsafe extern "C" fn wasm_module_exports(module: *const wasm_module_t, out: *mut wasm_exporttype_vec_t) {
    guard((), || {
        if out.is_null() {
            return;
        }
        // SAFETY: `module` is null or valid.
        let v = match unsafe { module_of(module) } {
            Some(m) => m
                .exports()
                .map(|e| into_raw(wasm_exporttype_t::new(&e.name, wasm_externtype_t::from_carnac(&e.ty))))
                .collect(),
            None => Vec::new(),
        };
        // SAFETY: `out` is a place for a vector.
        unsafe { out.write(CVec::from_vec(v)) }
    })
}

/// The module as a compiled artifact, for `wasm_module_deserialize`; an
/// empty vector when it cannot be serialised (an engine with the
/// interpreter strategy has no machine code to save: see carnac.h's
/// `carnac_module_serialize` for the reason).
#[no_mangle]
pub unsafe extern "C" fn wasm_module_serialize(module: *const wasm_module_t, out: *mut wasm_byte_vec_t) {
    guard((), || {
        if out.is_null() {
            return;
        }
        // SAFETY: `module` is null or valid.
        let bytes = unsafe { module_of(module) }.and_then(|m| m.serialize().ok()).unwrap_or_default();
        // SAFETY: `out` is a place for a vector.
        unsafe { out.write(CVec::from_vec(bytes)) }
    })
}

/// A module loaded from `wasm_module_serialize`'s bytes; null if they are
/// damaged or were made by another build or configuration. Artifacts are
/// trusted code: load only your own.
#[no_mangle]
pub unsafe extern "C" fn wasm_module_deserialize(
    store: *mut wasm_store_t,
    bytes: *const wasm_byte_vec_t,
) -> *mut wasm_module_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: both are null or valid.
        let (Some(store), Some(bytes)) = (unsafe { opt_ref(store) }, unsafe { opt_ref(bytes) }) else {
            return std::ptr::null_mut();
        };
        let engine = store.store.with(|s| s.engine().clone());
        // SAFETY: a valid byte vector holds `size` bytes.
        match Module::deserialize(&engine, unsafe { bytes.as_slice() }) {
            Ok(m) => Object::new(None, Item::Module(m)).into_ptr(),
            Err(_) => std::ptr::null_mut(),
        }
    })
}

/// `wasm_shared_module_t`: a module that may be sent to another thread.
pub struct wasm_shared_module_t {
    module: Module,
}

#[no_mangle]
pub unsafe extern "C" fn wasm_shared_module_delete(p: *mut wasm_shared_module_t) {
    // SAFETY: `p` is null or owned by the caller.
    guard((), || drop(unsafe { from_raw(p) }))
}

#[no_mangle]
pub unsafe extern "C" fn wasm_module_share(module: *const wasm_module_t) -> *mut wasm_shared_module_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `module` is null or valid.
        unsafe { module_of(module) }
            .map_or(std::ptr::null_mut(), |m| into_raw(wasm_shared_module_t { module: m.clone() }))
    })
}

/// The shared module as a module object (usable in stores of the engine it
/// was compiled by); null for null arguments.
#[no_mangle]
pub unsafe extern "C" fn wasm_module_obtain(
    store: *mut wasm_store_t,
    shared: *const wasm_shared_module_t,
) -> *mut wasm_module_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: both are null or valid.
        match unsafe { (opt_ref(store), opt_ref(shared)) } {
            (Some(_), Some(s)) => Object::new(None, Item::Module(s.module.clone())).into_ptr(),
            _ => std::ptr::null_mut(),
        }
    })
}
