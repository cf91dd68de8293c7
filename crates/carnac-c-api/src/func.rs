//! Function instances: host functions made from C callbacks, calling
//! functions, and their types.
//!
//! A host callback receives its arguments as a `wasm_val_vec_t` it borrows,
//! and a results vector of the function's result count, zero-initialised,
//! which it fills; references it puts there are taken over by Carnac. A
//! callback that returns a trap makes the wasm call trap with it (its
//! message kept); a result of the wrong kind is a trap too. The environment
//! of `wasm_func_new_with_env` is finalized when the store goes (the
//! function lives as long as its store).

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use carnac_rt::{AsContextMut, Error, Func, FuncType, RootScope, Store, Trap, Val};

use crate::object::{view, wasm_func_t, wasm_trap_t, Item, Object};
use crate::store::{wasm_store_t, StoreCell, StoreData, StoreRef};
use crate::types::wasm_functype_t;
use crate::val::{from_carnac, to_carnac, wasm_val_t};
use crate::vec::{wasm_val_vec_t, CVec, Elem};
use crate::{from_raw, guard, guard_with, into_raw, opt_mut, opt_ref};

pub type wasm_func_callback_t = unsafe extern "C" fn(*const wasm_val_vec_t, *mut wasm_val_vec_t) -> *mut wasm_trap_t;
pub type wasm_func_callback_with_env_t =
    unsafe extern "C" fn(*mut c_void, *const wasm_val_vec_t, *mut wasm_val_vec_t) -> *mut wasm_trap_t;

/// A callback's environment, finalized when the function is dropped.
struct Env {
    env: *mut c_void,
    finalizer: Option<unsafe extern "C" fn(*mut c_void)>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(f) = self.finalizer {
            // SAFETY: the embedder gave this finalizer for `env`; the
            // environment is dropped once.
            unsafe { crate::store::finalize(self.env, f) };
        }
    }
}

enum Callback {
    Plain(wasm_func_callback_t),
    WithEnv(wasm_func_callback_with_env_t, Env),
}

/// What a host function's closure holds: its callback and its store.
struct Host {
    callback: Callback,
    /// The store the function lives in. Not an `Arc`: the store owns the
    /// function, so it outlives every call of it.
    cell: *const StoreCell,
    ty: FuncType,
}

// SAFETY: `env` is the embedder's opaque pointer, handed back only to its
// callback and finalizer, and the store pointer is used only while the
// function runs in that store: on the thread using the store, as the C API's
// threading rules require of the embedder.
unsafe impl Send for Host {}
// SAFETY: see the `Send` impl; nothing is mutated through a shared `Host`.
unsafe impl Sync for Host {}

/// Makes a trap object owned by the caller.
pub fn trap_ptr(trap: Trap) -> *mut wasm_trap_t {
    Object::new(None, Item::Trap(trap)).into_ptr()
}

/// The trap an error of a call becomes: itself if it is one, else a trap
/// with the error's message.
pub fn error_trap(e: Error) -> Trap {
    match e {
        Error::Trap(t) => t,
        other => Trap::host(other.to_string()),
    }
}

impl Host {
    /// Runs the callback for one call of the function.
    fn call(&self, store: &mut Store<StoreData>, params: &[Val], results: &mut [Val]) -> Result<(), Trap> {
        // SAFETY: the store owns this function, so its cell is alive while it runs.
        let cell = unsafe { &*self.cell };
        // A strong reference for the objects made for the callback (their
        // arguments), which may outlive this call.
        // SAFETY: `cell` came from `Arc::as_ptr` of a live `Arc` (the store
        // is alive), so the count may be raised and an `Arc` rebuilt.
        let store_ref: StoreRef = unsafe {
            Arc::increment_strong_count(self.cell);
            Arc::from_raw(self.cell)
        };
        let store_ptr: *mut Store<StoreData> = store;
        // SAFETY (for the `&mut *store_ptr` below): `store_ptr` is the store
        // this call was given exclusively; each use is one at a time.
        let mut args = Vec::with_capacity(params.len());
        for p in params {
            match from_carnac(*p, &store_ref, unsafe { &mut *store_ptr }) {
                Ok(v) => args.push(v),
                Err(e) => {
                    // SAFETY: the values made so far own their references.
                    args.into_iter().for_each(|v: wasm_val_t| unsafe { v.drop_elem() });
                    return Err(Trap::host(e));
                }
            }
        }
        let mut args = CVec::from_vec(args);
        let mut res: wasm_val_vec_t = CVec::from_vec((0..results.len()).map(|_| wasm_val_t::zero()).collect());
        let trap = {
            let _active = cell.enter_callback(store_ptr);
            // SAFETY: calling the embedder's callback with the vectors the
            // standard promises it: arguments to read, results to fill.
            match &self.callback {
                Callback::Plain(f) => unsafe { f(&args, &mut res) },
                Callback::WithEnv(f, env) => unsafe { f(env.env, &args, &mut res) },
            }
        };
        // SAFETY: both vectors were made here and hold owned values.
        unsafe { args.free() };
        // SAFETY: a returned trap is owned by us (`own` in the header).
        if let Some(t) = unsafe { from_raw(trap) } {
            // SAFETY: as above.
            unsafe { res.free() };
            return Err(match &t.item {
                Item::Trap(t) => t.clone(),
                _ => Trap::host("a host callback returned an object that is not a trap"),
            });
        }
        let mut outcome = Ok(());
        // SAFETY: `res` is our vector of `results.len()` values.
        let filled = unsafe { res.as_slice() };
        if filled.len() != results.len() {
            outcome = Err(Trap::host("a host callback changed the size of its results vector"));
        } else {
            for (i, (v, ty)) in filled.iter().zip(self.ty.results()).enumerate() {
                // SAFETY: the callback put valid values (and references) there.
                match unsafe { to_carnac(v, ty, &mut *store_ptr) } {
                    Ok(x) => results[i] = x,
                    Err(e) => {
                        outcome = Err(Trap::host(format!("result {i} of a host callback: {e}")));
                        break;
                    }
                }
            }
        }
        // SAFETY: as above.
        unsafe { res.free() };
        outcome
    }
}

/// Defines a host function in `store`.
///
/// # Safety
///
/// `store` and `ty` are null or valid.
unsafe fn new_func(store: *mut wasm_store_t, ty: *const wasm_functype_t, callback: Callback) -> *mut wasm_func_t {
    // SAFETY: contract above.
    let (Some(store), Some(ty)) = (unsafe { opt_ref(store) }, unsafe { opt_ref(ty) }) else {
        // The environment (if any) is finalized as the function is not made.
        return std::ptr::null_mut();
    };
    let ty = ty.func().ty.clone();
    let host = Host { callback, cell: Arc::as_ptr(&store.store), ty: ty.clone() };
    let func = store.store.with(|s| {
        Func::new(s, ty, move |mut caller, params, results| {
            let store = caller.as_context_mut();
            catch_unwind(AssertUnwindSafe(|| host.call(store, params, results)))
                .unwrap_or_else(|_| Err(Trap::host("a panic in Carnac's host function trampoline")))
        })
    });
    Object::new(Some(store.store.clone()), Item::Func(func)).into_ptr()
}

/// A host function of type `ty` calling `callback`; null for null arguments.
#[no_mangle]
pub unsafe extern "C" fn wasm_func_new(
    store: *mut wasm_store_t,
    ty: *const wasm_functype_t,
    callback: Option<wasm_func_callback_t>,
) -> *mut wasm_func_t {
    guard(std::ptr::null_mut(), || match callback {
        // SAFETY: the caller passes valid (or null) pointers.
        Some(cb) => unsafe { new_func(store, ty, Callback::Plain(cb)) },
        None => std::ptr::null_mut(),
    })
}

/// A host function of type `ty` calling `callback` with `env`; `finalizer`
/// (if not null) is called on `env` when the function's store is deleted
/// (or at once, when the function cannot be made: null arguments).
#[no_mangle]
pub unsafe extern "C" fn wasm_func_new_with_env(
    store: *mut wasm_store_t,
    ty: *const wasm_functype_t,
    callback: Option<wasm_func_callback_with_env_t>,
    env: *mut c_void,
    finalizer: Option<unsafe extern "C" fn(*mut c_void)>,
) -> *mut wasm_func_t {
    guard(std::ptr::null_mut(), || {
        let env = Env { env, finalizer };
        match callback {
            // SAFETY: the caller passes valid (or null) pointers.
            Some(cb) => unsafe { new_func(store, ty, Callback::WithEnv(cb, env)) },
            None => std::ptr::null_mut(),
        }
    })
}

/// The function and its store, if `p` is a function.
///
/// # Safety
///
/// `p` is null or a valid object.
unsafe fn func_of<'a>(p: *const Object) -> Option<(Func, &'a StoreRef)> {
    // SAFETY: contract above.
    let o = unsafe { view(p, "func") }?;
    Some((o.func()?, o.store.as_ref()?))
}

#[no_mangle]
pub unsafe extern "C" fn wasm_func_type(func: *const wasm_func_t) -> *mut wasm_functype_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `func` is null or valid.
        match unsafe { func_of(func) } {
            Some((f, s)) => into_raw(wasm_functype_t::new(s.with(|s| f.ty(&*s)))),
            None => std::ptr::null_mut(),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_func_param_arity(func: *const wasm_func_t) -> usize {
    guard(0, || {
        // SAFETY: `func` is null or valid.
        unsafe { func_of(func) }.map_or(0, |(f, s)| s.with(|s| f.ty(&*s).params().len()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_func_result_arity(func: *const wasm_func_t) -> usize {
    guard(0, || {
        // SAFETY: `func` is null or valid.
        unsafe { func_of(func) }.map_or(0, |(f, s)| s.with(|s| f.ty(&*s).results().len()))
    })
}

/// Calls `func` with `args`; on success writes its results into `results`
/// (which must have exactly the function's result count) and returns null,
/// else returns the trap (owned by the caller). Misuse (null function,
/// wrong argument count or kinds, a results vector of the wrong size) is a
/// trap saying so; `results` is then left untouched.
#[no_mangle]
pub unsafe extern "C" fn wasm_func_call(
    func: *const wasm_func_t,
    args: *const wasm_val_vec_t,
    results: *mut wasm_val_vec_t,
) -> *mut wasm_trap_t {
    guard_with(
        || trap_ptr(Trap::host("a panic in Carnac's wasm_func_call")),
        || {
            // SAFETY: `func` is null or valid.
            let Some((f, store_ref)) = (unsafe { func_of(func) }) else {
                return trap_ptr(Trap::host("wasm_func_call: the function is null or not a function"));
            };
            // SAFETY: `args` and `results` are null or valid vectors.
            let args: &[wasm_val_t] = unsafe { opt_ref(args) }.map_or(&[], |a| unsafe { a.as_slice() });
            let results = unsafe { opt_mut(results) };
            // Our own reference to the store for the length of the call: a host
            // callback may delete the function object (and every other handle to
            // the store) while the call runs on it.
            let store_ref = store_ref.clone();
            match store_ref.with(|store| call(f, &store_ref, store, args, results)) {
                Ok(()) => std::ptr::null_mut(),
                Err(t) => trap_ptr(t),
            }
        },
    )
}

fn call(
    f: Func,
    store_ref: &StoreRef,
    store: &mut Store<StoreData>,
    args: &[wasm_val_t],
    results: Option<&mut wasm_val_vec_t>,
) -> Result<(), Trap> {
    let ty = f.ty(&*store);
    if args.len() != ty.params().len() {
        return Err(Trap::host(format!("expected {} arguments, got {}", ty.params().len(), args.len())));
    }
    let n = ty.results().len();
    let out = match results {
        Some(r) if r.size == n && (n == 0 || !r.data.is_null()) => r,
        _ => return Err(Trap::host(format!("the results vector must have room for exactly {n} values"))),
    };
    let mut scope = RootScope::new(store);
    let mut params = Vec::with_capacity(args.len());
    for (i, (a, t)) in args.iter().zip(ty.params()).enumerate() {
        // SAFETY: the caller's values hold valid references.
        let v =
            unsafe { to_carnac(a, t, scope.as_context_mut()) }.map_err(|e| Trap::host(format!("argument {i}: {e}")))?;
        params.push(v);
    }
    let mut vals: Vec<Val> = ty.results().iter().map(|t| Val::default_for(t.clone())).collect();
    f.call(&mut scope, &params, &mut vals).map_err(error_trap)?;
    let mut converted = Vec::with_capacity(n);
    for v in vals {
        match from_carnac(v, store_ref, scope.as_context_mut()) {
            Ok(c) => converted.push(c),
            Err(e) => {
                // SAFETY: the values made so far own their references.
                converted.into_iter().for_each(|c: wasm_val_t| unsafe { c.drop_elem() });
                return Err(Trap::host(e));
            }
        }
    }
    // SAFETY: `out` has room for `n` values (checked above); they are
    // written, not assigned, as the slots' old contents are not ours.
    for (i, c) in converted.into_iter().enumerate() {
        unsafe { out.data.add(i).write(c) };
    }
    Ok(())
}
