//! Configurations, engines and stores.
//!
//! A `wasm_store_t` holds a [`StoreRef`]: an `Arc` of the Carnac store, which
//! every object of the store (functions, globals, instances, ...) holds too,
//! so deleting the store while objects live is safe: the store goes when its
//! last object does. The standard makes a store single-threaded: a store and
//! its objects are used by one thread at a time (they may move between
//! threads); engines are shared freely.
//!
//! Re-entrance: while a host callback runs, the store is exclusively
//! borrowed by the call in progress. The callback's own uses of the store
//! (calling another function, reading a global) go through the borrow the
//! callback was given ([`StoreCell::active`]), never through a second one.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::ffi::c_void;
use std::sync::Arc;

use carnac_rt::{Config, Engine, Store};
use carnac_wasi::WasiCtx;

use crate::{from_raw, guard, into_raw, opt_ref};

/// `wasm_config_t`: a Carnac [`Config`] (see carnac.h for its settings).
pub struct wasm_config_t {
    pub config: Config,
}

/// `wasm_engine_t`.
pub struct wasm_engine_t {
    pub engine: Engine,
}

/// What each store holds for the C API: its WASI context (empty unless
/// configured with `carnac_store_set_wasi`) and, after `proc_exit`, nothing
/// more.
pub struct StoreData {
    pub wasi: WasiCtx,
}

/// A store shared by the objects that live in it.
pub struct StoreCell {
    store: UnsafeCell<Store<StoreData>>,
    /// While a host callback of this store runs: the store as borrowed by
    /// that call (from its `Caller`), through which the callback's own uses
    /// of the store go. Null otherwise.
    active: Cell<*mut Store<StoreData>>,
}

// SAFETY: a `Store<StoreData>` is `Send`; the cell is used by one thread at a
// time, which the C API's threading rules require of the embedder (a store
// and its objects belong to one thread at a time). `Sync` is needed only so
// that `Arc<StoreCell>` can be moved between threads with its objects; no
// two threads access one store concurrently under those rules.
unsafe impl Send for StoreCell {}
// SAFETY: see the `Send` impl above.
unsafe impl Sync for StoreCell {}

pub type StoreRef = Arc<StoreCell>;

impl StoreCell {
    pub fn new(engine: &Engine) -> StoreRef {
        let data = StoreData { wasi: WasiCtx::builder().build() };
        Arc::new(StoreCell {
            store: UnsafeCell::new(Store::new(engine, data)),
            active: Cell::new(std::ptr::null_mut()),
        })
    }

    /// Runs `f` with exclusive access to the store: the borrow of the host
    /// callback in progress, if any, else the store itself.
    ///
    /// `f` must not call `with` on the same store except through a host
    /// callback (which re-enters through [`StoreCell::enter_callback`]); the
    /// C API's functions each call it once.
    pub fn with<R>(&self, f: impl FnOnce(&mut Store<StoreData>) -> R) -> R {
        let _borrowed = BorrowDepth::enter();
        let active = self.active.get();
        let store = if active.is_null() { self.store.get() } else { active };
        // SAFETY: the store is used by one thread at a time (see the `Send`
        // impl), and on that thread no other reference to it is in use: the
        // C API takes one borrow per call; while a wasm call holds the
        // store's borrow, a host callback's uses go through `active`, the
        // borrow that call handed to the callback (a reborrow of the one in
        // use, valid until the callback returns and `active` is restored).
        f(unsafe { &mut *store })
    }

    /// Marks `store` (the callback's `Caller` store) as the store's active
    /// borrow until the returned guard drops, restoring the previous one.
    pub fn enter_callback(&self, store: *mut Store<StoreData>) -> ActiveGuard<'_> {
        let prev = self.active.replace(store);
        ActiveGuard { cell: self, prev }
    }
}

/// A finalizer and its host info, waiting for the store borrows to end.
type Finalizer = (*mut c_void, unsafe extern "C" fn(*mut c_void));

thread_local! {
    /// How many store borrows ([`StoreCell::with`]) are in progress on this thread.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// Finalizers whose host info went while a store was borrowed.
    static PENDING: RefCell<Vec<Finalizer>> = const { RefCell::new(Vec::new()) };
}

/// Counts a store borrow; when the last one on the thread ends, runs the
/// finalizers deferred meanwhile.
struct BorrowDepth;

impl BorrowDepth {
    fn enter() -> BorrowDepth {
        DEPTH.with(|d| d.set(d.get() + 1));
        BorrowDepth
    }
}

impl Drop for BorrowDepth {
    fn drop(&mut self) {
        let depth = DEPTH.with(|d| {
            d.set(d.get() - 1);
            d.get()
        });
        if depth == 0 {
            while let Some((info, f)) = PENDING.with(|p| p.borrow_mut().pop()) {
                // SAFETY: the embedder gave this finalizer for this host info;
                // it runs once, now that no store is borrowed.
                unsafe { f(info) }
            }
        }
    }
}

/// Runs an embedder's finalizer, or, while a store is borrowed on this
/// thread (a call in progress: the host info's last handle was a value
/// collected by the store, or deleted by a host callback), defers it until
/// the borrow ends, so that a finalizer may use the C API (even on that
/// store) without meeting a store in use.
///
/// # Safety
///
/// `f` is the finalizer the embedder gave for `info`, and this is its only call.
pub unsafe fn finalize(info: *mut c_void, f: unsafe extern "C" fn(*mut c_void)) {
    if DEPTH.with(|d| d.get()) > 0 {
        PENDING.with(|p| p.borrow_mut().push((info, f)));
    } else {
        // SAFETY: the embedder gave this finalizer for this host info; it runs once.
        unsafe { f(info) }
    }
}

/// Restores the store's previous active borrow when a host callback ends.
pub struct ActiveGuard<'a> {
    cell: &'a StoreCell,
    prev: *mut Store<StoreData>,
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.cell.active.set(self.prev);
    }
}

/// `wasm_store_t`.
pub struct wasm_store_t {
    pub store: StoreRef,
}

#[no_mangle]
pub extern "C" fn wasm_config_new() -> *mut wasm_config_t {
    guard(std::ptr::null_mut(), || into_raw(wasm_config_t { config: Config::new() }))
}

#[no_mangle]
pub unsafe extern "C" fn wasm_config_delete(config: *mut wasm_config_t) {
    // SAFETY: `config` is null or owned by the caller.
    guard((), || drop(unsafe { from_raw(config) }))
}

#[no_mangle]
pub extern "C" fn wasm_engine_new() -> *mut wasm_engine_t {
    guard(std::ptr::null_mut(), || into_raw(wasm_engine_t { engine: Engine::default() }))
}

/// Takes ownership of the configuration (deletes it); a null one means the defaults.
#[no_mangle]
pub unsafe extern "C" fn wasm_engine_new_with_config(config: *mut wasm_config_t) -> *mut wasm_engine_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `config` is null or owned by us now (`own`).
        let config = unsafe { from_raw(config) }.map(|c| c.config).unwrap_or_default();
        into_raw(wasm_engine_t { engine: Engine::new(&config) })
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_engine_delete(engine: *mut wasm_engine_t) {
    // SAFETY: `engine` is null or owned by the caller.
    guard((), || drop(unsafe { from_raw(engine) }))
}

/// A new store of `engine` (which may be deleted before the store: the store
/// keeps what it needs); null for a null engine.
#[no_mangle]
pub unsafe extern "C" fn wasm_store_new(engine: *mut wasm_engine_t) -> *mut wasm_store_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `engine` is null or valid.
        unsafe { opt_ref(engine) }
            .map_or(std::ptr::null_mut(), |e| into_raw(wasm_store_t { store: StoreCell::new(&e.engine) }))
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_store_delete(store: *mut wasm_store_t) {
    // SAFETY: `store` is null or owned by the caller.
    guard((), || drop(unsafe { from_raw(store) }))
}
