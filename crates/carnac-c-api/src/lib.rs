//! # libcarnac: Carnac's C API
//!
//! This crate builds `libcarnac.so` and `libcarnac.a`, which implement the
//! standard WebAssembly C API (`include/wasm.h`, the interface of the
//! WebAssembly/wasm-c-api repository) plus Carnac's extensions
//! (`include/carnac.h`: configuration, WASI, a linker, fuel, interruption,
//! serialisation and error messages), all over the public API of the `carnac`
//! and `carnac-wasi` crates.
//!
//! Conventions at the boundary, where the standard leaves a choice:
//! - a null pointer or an object of the wrong kind gives a null (or false,
//!   zero, empty) result, never undefined behaviour; a call that can return a
//!   trap returns one saying what was wrong;
//! - ownership follows the header's `own` annotations exactly;
//! - a host callback's trap propagates to the caller of the wasm function;
//! - no Rust panic crosses into C: every exported function runs inside
//!   [`guard`], which turns a panic into the function's null result.
//!
//! The modules own, in order: vectors ([`vec`]), type descriptions
//! ([`types`]), configuration, engines and stores ([`store`]), reference
//! objects and host info ([`object`]), values ([`val`]), modules ([`module`]),
//! functions ([`func`]), globals, tables, memories and externs
//! ([`externals`]), instances ([`instance`]), traps and frames ([`trap`]) and
//! the `carnac.h` extensions ([`ext`]).

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

pub mod ext;
pub mod externals;
pub mod func;
pub mod instance;
pub mod module;
pub mod object;
pub mod store;
pub mod trap;
pub mod types;
pub mod val;
pub mod vec;

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, the body of an exported function, so that a panic never unwinds
/// into C: a panic (a bug in Carnac) is reported on stderr by the panic hook
/// and the function returns `default`.
pub(crate) fn guard<R>(default: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}

/// [`guard`] with a default made only when needed (an allocated object).
pub(crate) fn guard_with<R>(default: impl FnOnce() -> R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| default())
}

/// `&*p`, or `None` for a null pointer.
///
/// # Safety
///
/// `p` is null or points to a live `T` that nothing mutates while the
/// reference is used (what the C caller promises by passing it).
pub(crate) unsafe fn opt_ref<'a, T>(p: *const T) -> Option<&'a T> {
    // SAFETY: the caller's contract above.
    unsafe { p.as_ref() }
}

/// `&mut *p`, or `None` for a null pointer.
///
/// # Safety
///
/// `p` is null or points to a live `T` that nothing else accesses while the
/// reference is used.
pub(crate) unsafe fn opt_mut<'a, T>(p: *mut T) -> Option<&'a mut T> {
    // SAFETY: the caller's contract above.
    unsafe { p.as_mut() }
}

/// Moves `value` into a new heap object owned by the C caller.
pub(crate) fn into_raw<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back (and so frees, when dropped) an object made by [`into_raw`];
/// `None` for null.
///
/// # Safety
///
/// `p` is null or came from [`into_raw`] for this `T` and was not freed.
pub(crate) unsafe fn from_raw<T>(p: *mut T) -> Option<Box<T>> {
    // SAFETY: the caller's contract above.
    (!p.is_null()).then(|| unsafe { Box::from_raw(p) })
}
