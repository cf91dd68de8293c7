//! Reference objects: everything the standard declares with `WASM_DECLARE_REF`
//! (functions, globals, tables, memories, externs, instances, modules,
//! traps, foreign objects) and the generic `wasm_ref_t`, with their host info.
//!
//! All of them are one Rust type, [`Object`]: what it refers to ([`Item`]),
//! the store it lives in (for store-bound items), and its host info. The
//! standard's conversions between views (`wasm_func_as_ref`,
//! `wasm_func_as_extern`, `wasm_ref_as_func`, ...) return the same object
//! after a kind check, so the result of a conversion is borrowed from its
//! argument, as the header says. `wasm_X_copy` makes a new handle to the same
//! item sharing the host info; the host info's finalizer runs when the last
//! handle sharing it is deleted (or when it is replaced), or, if that
//! happens while a store is in use (inside a call: a host callback deleting
//! a handle, the store collecting an `externref`), as soon as the outermost
//! call returns, so a finalizer may itself use the C API.

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use carnac_rt::{Func, Global, Instance, Memory, Module, SharedMemory, Table, Trap};

use crate::store::StoreRef;
use crate::{from_raw, guard, into_raw, opt_ref};

/// What an object refers to.
#[derive(Clone)]
pub enum Item {
    Func(Func),
    Global(Global),
    Table(Table),
    Memory(Memory),
    /// A shared memory (the threads proposal) an instance exports: an extern of
    /// kind memory that is no `wasm_memory_t` (wasm.h has no shared memories),
    /// usable as an import of other instances.
    SharedMemory(SharedMemory),
    Instance(Instance),
    Module(Module),
    Trap(Trap),
    /// A foreign object: an identity for the embedder to attach host info to.
    Foreign(Arc<()>),
}

/// The embedder's host info and its finalizer.
pub struct HostInfo {
    state: Mutex<(*mut c_void, Option<unsafe extern "C" fn(*mut c_void)>)>,
}

// SAFETY: the pointer is the embedder's opaque value, never dereferenced
// here; it is only handed back to the embedder (and to its finalizer), on
// whatever thread uses the object, as the standard's threading rules allow.
unsafe impl Send for HostInfo {}
// SAFETY: see the `Send` impl; the state is behind a mutex.
unsafe impl Sync for HostInfo {}

impl HostInfo {
    pub fn new() -> Arc<HostInfo> {
        Arc::new(HostInfo { state: Mutex::new((std::ptr::null_mut(), None)) })
    }

    fn get(&self) -> *mut c_void {
        self.state.lock().map(|s| s.0).unwrap_or(std::ptr::null_mut())
    }

    /// Replaces the host info, finalizing the previous one.
    fn set(&self, info: *mut c_void, finalizer: Option<unsafe extern "C" fn(*mut c_void)>) {
        let old = match self.state.lock() {
            Ok(mut s) => std::mem::replace(&mut *s, (info, finalizer)),
            Err(_) => return,
        };
        finalize(old);
    }
}

fn finalize((info, finalizer): (*mut c_void, Option<unsafe extern "C" fn(*mut c_void)>)) {
    if let Some(f) = finalizer {
        // SAFETY: the embedder gave this finalizer for this host info, whose
        // state is taken out (replaced or dropped) exactly once.
        unsafe { crate::store::finalize(info, f) };
    }
}

impl Drop for HostInfo {
    fn drop(&mut self) {
        if let Ok(s) = self.state.get_mut() {
            finalize(std::mem::replace(s, (std::ptr::null_mut(), None)));
        }
    }
}

/// Every reference object of the C API.
#[derive(Clone)]
pub struct Object {
    /// The store of a store-bound item, `None` otherwise.
    pub store: Option<StoreRef>,
    pub item: Item,
    pub host: Arc<HostInfo>,
}

impl Object {
    /// A new handle with its own (empty) host info.
    pub fn new(store: Option<StoreRef>, item: Item) -> Object {
        Object { store, item, host: HostInfo::new() }
    }

    /// A new handle owned by the caller.
    pub fn into_ptr(self) -> *mut Object {
        into_raw(self)
    }

    /// Runs `f` on the object's store, or returns `None` when it has none.
    pub fn with_store<R>(&self, f: impl FnOnce(&mut carnac_rt::Store<crate::store::StoreData>) -> R) -> Option<R> {
        self.store.as_ref().map(|s| s.with(f))
    }

    /// Whether the two objects refer to the same item.
    pub fn same(&self, other: &Object) -> bool {
        match (&self.item, &other.item) {
            (Item::Func(a), Item::Func(b)) => a == b,
            (Item::Global(a), Item::Global(b)) => a == b,
            (Item::Table(a), Item::Table(b)) => a == b,
            (Item::Memory(a), Item::Memory(b)) => a == b,
            (Item::SharedMemory(a), Item::SharedMemory(b)) => a == b,
            (Item::Instance(a), Item::Instance(b)) => a == b,
            (Item::Foreign(a), Item::Foreign(b)) => Arc::ptr_eq(a, b),
            // Modules and traps have no identity of their own: handles are the
            // same when one is a copy of the other.
            (Item::Module(_), Item::Module(_)) | (Item::Trap(_), Item::Trap(_)) => Arc::ptr_eq(&self.host, &other.host),
            _ => false,
        }
    }

    pub fn func(&self) -> Option<Func> {
        match self.item {
            Item::Func(f) => Some(f),
            _ => None,
        }
    }
}

/// What an `externref` made from an object holds: the item and the host
/// info, without the store (the store owns its extern references, so holding
/// it there would be a cycle). A reference read back out of wasm becomes an
/// object of the store it was read in, sharing the host info.
pub struct ExternPayload {
    pub item: Item,
    pub host: Arc<HostInfo>,
    /// The store of a store-bound item, weakly: a reference read back in
    /// another store, or after its store went, still names the right store
    /// (or none, and then every use of it fails cleanly).
    pub store: Option<std::sync::Weak<crate::store::StoreCell>>,
}

/// The C names of the object type: one Rust type, distinct opaque C types.
pub type wasm_ref_t = Object;
pub type wasm_func_t = Object;
pub type wasm_global_t = Object;
pub type wasm_table_t = Object;
pub type wasm_memory_t = Object;
pub type wasm_extern_t = Object;
pub type wasm_instance_t = Object;
pub type wasm_module_t = Object;
pub type wasm_trap_t = Object;
pub type wasm_foreign_t = Object;

/// Whether `o` may be seen as the view named `kind`.
pub fn is_kind(o: &Object, kind: &str) -> bool {
    match kind {
        "ref" => true,
        "func" => matches!(o.item, Item::Func(_)),
        "global" => matches!(o.item, Item::Global(_)),
        "table" => matches!(o.item, Item::Table(_)),
        "memory" => matches!(o.item, Item::Memory(_)),
        "extern" => {
            matches!(o.item, Item::Func(_) | Item::Global(_) | Item::Table(_) | Item::Memory(_) | Item::SharedMemory(_))
        }
        "instance" => matches!(o.item, Item::Instance(_)),
        "module" => matches!(o.item, Item::Module(_)),
        "trap" => matches!(o.item, Item::Trap(_)),
        "foreign" => matches!(o.item, Item::Foreign(_)),
        _ => false,
    }
}

/// `p` as an object of view `kind`: null stays null, another kind is null.
///
/// # Safety
///
/// `p` is null or a valid object.
pub unsafe fn view<'a>(p: *const Object, kind: &str) -> Option<&'a Object> {
    // SAFETY: contract above.
    unsafe { opt_ref(p) }.filter(|o| is_kind(o, kind))
}

/// Declares the functions of `WASM_DECLARE_REF_BASE(name)`.
macro_rules! ref_base {
    ($($name:ident = $kind:literal),*) => {
        paste::paste! { $(
            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _delete>](p: *mut Object) {
                // SAFETY: `p` is null or an object owned by the caller.
                guard((), || drop(unsafe { from_raw(p) }))
            }

            /// A new handle to the same item, sharing the host info; null for
            /// null or another kind.
            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _copy>](p: *const Object) -> *mut Object {
                guard(std::ptr::null_mut(), || {
                    // SAFETY: `p` is null or a valid object.
                    unsafe { view(p, $kind) }.map_or(std::ptr::null_mut(), |o| o.clone().into_ptr())
                })
            }

            /// Whether both refer to the same item (false if either is null).
            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _same>](a: *const Object, b: *const Object) -> bool {
                guard(false, || {
                    // SAFETY: both are null or valid objects.
                    match unsafe { (view(a, $kind), view(b, $kind)) } {
                        (Some(a), Some(b)) => a.same(b),
                        _ => false,
                    }
                })
            }

            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _get_host_info>](p: *const Object) -> *mut c_void {
                guard(std::ptr::null_mut(), || {
                    // SAFETY: `p` is null or a valid object.
                    unsafe { view(p, $kind) }.map_or(std::ptr::null_mut(), |o| o.host.get())
                })
            }

            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _set_host_info>](p: *mut Object, info: *mut c_void) {
                guard((), || {
                    // SAFETY: `p` is null or a valid object.
                    if let Some(o) = unsafe { view(p, $kind) } {
                        o.host.set(info, None)
                    }
                })
            }

            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _set_host_info_with_finalizer>](
                p: *mut Object,
                info: *mut c_void,
                finalizer: Option<unsafe extern "C" fn(*mut c_void)>,
            ) {
                guard((), || {
                    // SAFETY: `p` is null or a valid object.
                    if let Some(o) = unsafe { view(p, $kind) } {
                        o.host.set(info, finalizer)
                    }
                })
            }
        )* }
    };
}

/// Declares the conversions of `WASM_DECLARE_REF(name)` to and from `wasm_ref_t`.
macro_rules! ref_views {
    ($($name:ident = $kind:literal),*) => {
        paste::paste! { $(
            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _as_ref>](p: *mut Object) -> *mut Object {
                // SAFETY: `p` is null or a valid object.
                guard(std::ptr::null_mut(), || unsafe { view(p, $kind) }.map_or(std::ptr::null_mut(), |o| o as *const _ as *mut _))
            }

            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _as_ref_const>](p: *const Object) -> *const Object {
                // SAFETY: `p` is null or a valid object.
                guard(std::ptr::null(), || unsafe { view(p, $kind) }.map_or(std::ptr::null(), |o| o as *const _))
            }

            /// The reference as this view; null if it refers to another kind.
            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ref_as_ $name>](p: *mut Object) -> *mut Object {
                // SAFETY: `p` is null or a valid object.
                guard(std::ptr::null_mut(), || unsafe { view(p, $kind) }.map_or(std::ptr::null_mut(), |o| o as *const _ as *mut _))
            }

            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ref_as_ $name _const>](p: *const Object) -> *const Object {
                // SAFETY: `p` is null or a valid object.
                guard(std::ptr::null(), || unsafe { view(p, $kind) }.map_or(std::ptr::null(), |o| o as *const _))
            }
        )* }
    };
}

ref_base!(
    r#ref = "ref",
    trap = "trap",
    foreign = "foreign",
    module = "module",
    func = "func",
    global = "global",
    table = "table",
    memory = "memory",
    r#extern = "extern",
    instance = "instance"
);
ref_views!(
    trap = "trap",
    foreign = "foreign",
    module = "module",
    func = "func",
    global = "global",
    table = "table",
    memory = "memory",
    r#extern = "extern",
    instance = "instance"
);

/// A new foreign object: an identity for host info, usable as an `externref`.
#[no_mangle]
pub unsafe extern "C" fn wasm_foreign_new(_store: *mut crate::store::wasm_store_t) -> *mut Object {
    guard(std::ptr::null_mut(), || Object::new(None, Item::Foreign(Arc::new(()))).into_ptr())
}
