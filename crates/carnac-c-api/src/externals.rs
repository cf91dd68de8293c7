//! Globals, tables and memories, and externs (the common view of those and
//! functions).
//!
//! Where the standard gives no way to report a failure, the safe choice is
//! made and documented on each function: an out-of-bounds table access
//! returns null or false, setting an immutable global or giving a value of
//! the wrong kind does nothing, a failed grow returns false and changes
//! nothing.

use carnac_rt::{AsContextMut, Extern, ExternType, Global, Memory, RootScope, Store, Table, Val, ValType};

use crate::object::{view, wasm_extern_t, wasm_global_t, wasm_memory_t, wasm_table_t, Item, Object};
use crate::store::{wasm_store_t, StoreData, StoreRef};
use crate::types::{
    valkind, wasm_externtype_t, wasm_globaltype_t, wasm_memorytype_t, wasm_tabletype_t, WASM_EXTERN_FUNC, WASM_I32,
};
use crate::val::{from_carnac, to_carnac, wasm_val_t, wasm_val_union};
use crate::{guard, into_raw, opt_ref};

/// The object's item as a Carnac extern, with its store.
pub fn extern_of(o: &Object) -> Option<(Extern, &StoreRef)> {
    let e = match &o.item {
        Item::Func(f) => Extern::Func(*f),
        Item::Global(g) => Extern::Global(*g),
        Item::Table(t) => Extern::Table(*t),
        Item::Memory(m) => Extern::Memory(*m),
        Item::SharedMemory(m) => Extern::SharedMemory(m.clone()),
        _ => return None,
    };
    Some((e, o.store.as_ref()?))
}

/// A new object for an extern of `store`.
pub fn extern_object(store: &StoreRef, e: Extern) -> Object {
    let item = match e {
        Extern::Func(f) => Item::Func(f),
        Extern::Global(g) => Item::Global(g),
        Extern::Table(t) => Item::Table(t),
        Extern::Memory(m) => Item::Memory(m),
        Extern::SharedMemory(m) => Item::SharedMemory(m),
        // `Extern` is non-exhaustive: a kind this API does not know yet (none
        // today) is reported as a foreign object.
        _ => Item::Foreign(std::sync::Arc::new(())),
    };
    Object::new(Some(store.clone()), item)
}

/// The Carnac value of a reference `r` (not owned) as an element of type `ty`.
///
/// # Safety
///
/// `r` is null or a valid object.
unsafe fn ref_val(r: *const Object, ty: &ValType, store: &mut Store<StoreData>) -> Result<Val, String> {
    let v = wasm_val_t { kind: valkind(ty), of: wasm_val_union { ref_: r as *mut Object } };
    // SAFETY: contract above.
    unsafe { to_carnac(&v, ty, store) }
}

// Globals.

/// A new global of type `ty` holding `val`; null for null arguments or a
/// value of the wrong kind.
#[no_mangle]
pub unsafe extern "C" fn wasm_global_new(
    store: *mut wasm_store_t,
    ty: *const wasm_globaltype_t,
    val: *const wasm_val_t,
) -> *mut wasm_global_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: all three are null or valid.
        let (Some(store), Some(ty), Some(val)) =
            (unsafe { opt_ref(store) }, unsafe { opt_ref(ty) }, unsafe { opt_ref(val) })
        else {
            return std::ptr::null_mut();
        };
        let ty = ty.carnac();
        let global = store.store.with(|s| {
            let mut scope = RootScope::new(s);
            // SAFETY: the value's reference is null or valid.
            let v = unsafe { to_carnac(val, &ty.content, scope.as_context_mut()) }.ok()?;
            Global::new(&mut scope, ty, v).ok()
        });
        global.map_or(std::ptr::null_mut(), |g| Object::new(Some(store.store.clone()), Item::Global(g)).into_ptr())
    })
}

/// The global and its store, if `p` is a global.
///
/// # Safety
///
/// `p` is null or a valid object.
unsafe fn global_of<'a>(p: *const Object) -> Option<(Global, &'a StoreRef)> {
    // SAFETY: contract above.
    let o = unsafe { view(p, "global") }?;
    match o.item {
        Item::Global(g) => Some((g, o.store.as_ref()?)),
        _ => None,
    }
}

#[no_mangle]
pub unsafe extern "C" fn wasm_global_type(g: *const wasm_global_t) -> *mut wasm_globaltype_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `g` is null or valid.
        let Some((g, s)) = (unsafe { global_of(g) }) else { return std::ptr::null_mut() };
        let ty = s.with(|s| g.ty(&*s));
        into_raw(wasm_globaltype_t { ext: wasm_externtype_t::from_carnac(&ExternType::Global(ty)) })
    })
}

/// Writes the global's value to `out` (owned by the caller). A null global,
/// or a `v128` global (not representable), gives the `i32` 0.
#[no_mangle]
pub unsafe extern "C" fn wasm_global_get(g: *const wasm_global_t, out: *mut wasm_val_t) {
    guard((), || {
        if out.is_null() {
            return;
        }
        // SAFETY: `g` is null or valid.
        let v = unsafe { global_of(g) }
            .and_then(|(g, s)| s.with(|store| from_carnac(g.get(&mut *store), s, store).ok()))
            .unwrap_or(wasm_val_t { kind: WASM_I32, of: wasm_val_union { i64: 0 } });
        // SAFETY: `out` is a place for a value.
        unsafe { out.write(v) }
    })
}

/// Sets the global's value (`val` is not taken over). Does nothing for a
/// null global or value, an immutable global, or a value of the wrong kind.
#[no_mangle]
pub unsafe extern "C" fn wasm_global_set(g: *mut wasm_global_t, val: *const wasm_val_t) {
    guard((), || {
        // SAFETY: both are null or valid.
        let (Some((g, s)), Some(val)) = (unsafe { global_of(g) }, unsafe { opt_ref(val) }) else { return };
        s.with(|store| {
            let ty = g.ty(&*store).content;
            let mut scope = RootScope::new(store);
            // SAFETY: the value's reference is null or valid.
            if let Ok(v) = unsafe { to_carnac(val, &ty, scope.as_context_mut()) } {
                let _ = g.set(&mut scope, v);
            }
        })
    })
}

// Tables.

/// A new table of type `ty`, every element `init` (not taken over; null is
/// the null reference); null for null arguments or an `init` of the wrong kind.
#[no_mangle]
pub unsafe extern "C" fn wasm_table_new(
    store: *mut wasm_store_t,
    ty: *const wasm_tabletype_t,
    init: *mut Object,
) -> *mut wasm_table_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: both are null or valid.
        let (Some(store), Some(ty)) = (unsafe { opt_ref(store) }, unsafe { opt_ref(ty) }) else {
            return std::ptr::null_mut();
        };
        let ty = ty.carnac();
        let table = store.store.with(|s| {
            let mut scope = RootScope::new(s);
            // SAFETY: `init` is null or valid.
            let v = unsafe { ref_val(init, &ty.element, scope.as_context_mut()) }.ok()?;
            Table::new(&mut scope, ty, v).ok()
        });
        table.map_or(std::ptr::null_mut(), |t| Object::new(Some(store.store.clone()), Item::Table(t)).into_ptr())
    })
}

/// The table and its store, if `p` is a table.
///
/// # Safety
///
/// `p` is null or a valid object.
unsafe fn table_of<'a>(p: *const Object) -> Option<(Table, &'a StoreRef)> {
    // SAFETY: contract above.
    let o = unsafe { view(p, "table") }?;
    match o.item {
        Item::Table(t) => Some((t, o.store.as_ref()?)),
        _ => None,
    }
}

#[no_mangle]
pub unsafe extern "C" fn wasm_table_type(t: *const wasm_table_t) -> *mut wasm_tabletype_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `t` is null or valid.
        let Some((t, s)) = (unsafe { table_of(t) }) else { return std::ptr::null_mut() };
        let ty = s.with(|s| t.ty(&*s));
        into_raw(wasm_tabletype_t { ext: wasm_externtype_t::from_carnac(&ExternType::Table(ty)) })
    })
}

/// The element at `index` (a new reference owned by the caller); null for
/// the null reference, an index out of bounds or a null table.
#[no_mangle]
pub unsafe extern "C" fn wasm_table_get(t: *const wasm_table_t, index: u32) -> *mut Object {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `t` is null or valid.
        let Some((t, s)) = (unsafe { table_of(t) }) else { return std::ptr::null_mut() };
        s.with(|store| {
            let Some(v) = t.get(&mut *store, index as u64) else { return std::ptr::null_mut() };
            from_carnac(v, s, store).map_or(std::ptr::null_mut(), |v| v.ref_ptr())
        })
    })
}

/// Sets the element at `index` to `r` (not taken over; null is the null
/// reference); false for an index out of bounds, a reference of the wrong
/// kind or a null table.
#[no_mangle]
pub unsafe extern "C" fn wasm_table_set(t: *mut wasm_table_t, index: u32, r: *mut Object) -> bool {
    guard(false, || {
        // SAFETY: `t` is null or valid.
        let Some((t, s)) = (unsafe { table_of(t) }) else { return false };
        s.with(|store| {
            let elem = t.ty(&*store).element;
            let mut scope = RootScope::new(store);
            // SAFETY: `r` is null or valid.
            match unsafe { ref_val(r, &elem, scope.as_context_mut()) } {
                Ok(v) => t.set(&mut scope, index as u64, v).is_ok(),
                Err(_) => false,
            }
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_table_size(t: *const wasm_table_t) -> u32 {
    guard(0, || {
        // SAFETY: `t` is null or valid.
        unsafe { table_of(t) }.map_or(0, |(t, s)| s.with(|s| t.size(&*s).min(u32::MAX as u64) as u32))
    })
}

/// Grows the table by `delta` elements set to `init` (not taken over);
/// false (nothing changed) past its maximum, for a wrong kind of `init` or
/// a null table.
#[no_mangle]
pub unsafe extern "C" fn wasm_table_grow(t: *mut wasm_table_t, delta: u32, init: *mut Object) -> bool {
    guard(false, || {
        // SAFETY: `t` is null or valid.
        let Some((t, s)) = (unsafe { table_of(t) }) else { return false };
        s.with(|store| {
            let elem = t.ty(&*store).element;
            let mut scope = RootScope::new(store);
            // SAFETY: `init` is null or valid.
            match unsafe { ref_val(init, &elem, scope.as_context_mut()) } {
                Ok(v) => t.grow(&mut scope, delta as u64, v).is_ok(),
                Err(_) => false,
            }
        })
    })
}

// Memories.

/// A new memory of type `ty`; null for null arguments or a type Carnac
/// refuses (over 65536 pages, a maximum below the minimum).
#[no_mangle]
pub unsafe extern "C" fn wasm_memory_new(store: *mut wasm_store_t, ty: *const wasm_memorytype_t) -> *mut wasm_memory_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: both are null or valid.
        let (Some(store), Some(ty)) = (unsafe { opt_ref(store) }, unsafe { opt_ref(ty) }) else {
            return std::ptr::null_mut();
        };
        let ty = ty.carnac();
        if ty.limits.min > 65536 || ty.limits.max.is_some_and(|m| m > 65536 || m < ty.limits.min) {
            return std::ptr::null_mut();
        }
        match store.store.with(|s| Memory::new(s, ty)) {
            Ok(m) => Object::new(Some(store.store.clone()), Item::Memory(m)).into_ptr(),
            Err(_) => std::ptr::null_mut(),
        }
    })
}

/// The memory and its store, if `p` is a memory.
///
/// # Safety
///
/// `p` is null or a valid object.
unsafe fn memory_of<'a>(p: *const Object) -> Option<(Memory, &'a StoreRef)> {
    // SAFETY: contract above.
    let o = unsafe { view(p, "memory") }?;
    match o.item {
        Item::Memory(m) => Some((m, o.store.as_ref()?)),
        _ => None,
    }
}

#[no_mangle]
pub unsafe extern "C" fn wasm_memory_type(m: *const wasm_memory_t) -> *mut wasm_memorytype_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `m` is null or valid.
        let Some((m, s)) = (unsafe { memory_of(m) }) else { return std::ptr::null_mut() };
        let ty = s.with(|s| m.ty(&*s));
        into_raw(wasm_memorytype_t { ext: wasm_externtype_t::from_carnac(&ExternType::Memory(ty)) })
    })
}

/// The memory's bytes: valid until the memory grows (or its store goes);
/// null for a null memory.
#[no_mangle]
pub unsafe extern "C" fn wasm_memory_data(m: *mut wasm_memory_t) -> *mut u8 {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `m` is null or valid.
        unsafe { memory_of(m) }.map_or(std::ptr::null_mut(), |(m, s)| s.with(|s| m.data_mut(s).as_mut_ptr()))
    })
}

/// The memory's size in bytes (0 for null).
#[no_mangle]
pub unsafe extern "C" fn wasm_memory_data_size(m: *const wasm_memory_t) -> usize {
    // SAFETY: `m` is null or valid.
    guard(0, || unsafe { memory_of(m) }.map_or(0, |(m, s)| s.with(|s| m.data_size(&*s))))
}

/// The memory's size in 64 KiB pages (0 for null).
#[no_mangle]
pub unsafe extern "C" fn wasm_memory_size(m: *const wasm_memory_t) -> u32 {
    // SAFETY: `m` is null or valid.
    guard(0, || unsafe { memory_of(m) }.map_or(0, |(m, s)| s.with(|s| m.size(&*s) as u32)))
}

/// Grows the memory by `delta` pages; false (nothing changed) past its
/// maximum or a limit, or for a null memory.
#[no_mangle]
pub unsafe extern "C" fn wasm_memory_grow(m: *mut wasm_memory_t, delta: u32) -> bool {
    // SAFETY: `m` is null or valid.
    guard(false, || unsafe { memory_of(m) }.is_some_and(|(m, s)| s.with(|s| m.grow(s, delta as u64).is_ok())))
}

// Externs.

/// The kind of an extern (`WASM_EXTERN_FUNC` for null).
#[no_mangle]
pub unsafe extern "C" fn wasm_extern_kind(e: *const wasm_extern_t) -> u8 {
    guard(WASM_EXTERN_FUNC, || {
        // SAFETY: `e` is null or valid.
        match unsafe { view(e, "extern") }.map(|o| &o.item) {
            Some(Item::Global(_)) => crate::types::WASM_EXTERN_GLOBAL,
            Some(Item::Table(_)) => crate::types::WASM_EXTERN_TABLE,
            Some(Item::Memory(_) | Item::SharedMemory(_)) => crate::types::WASM_EXTERN_MEMORY,
            _ => WASM_EXTERN_FUNC,
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_extern_type(e: *const wasm_extern_t) -> *mut wasm_externtype_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `e` is null or valid.
        match unsafe { view(e, "extern") }.and_then(extern_of) {
            Some((e, s)) => into_raw(wasm_externtype_t::from_carnac(&s.with(|s| e.ty(&*s)))),
            None => std::ptr::null_mut(),
        }
    })
}

/// The views between externs and their kinds: the same object after a kind
/// check (null for null or another kind).
macro_rules! extern_views {
    ($($name:ident),*) => {
        paste::paste! { $(
            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _as_extern>](p: *mut Object) -> *mut Object {
                // SAFETY: `p` is null or a valid object.
                guard(std::ptr::null_mut(), || unsafe { view(p, stringify!($name)) }.map_or(std::ptr::null_mut(), |o| o as *const _ as *mut _))
            }

            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _as_extern_const>](p: *const Object) -> *const Object {
                // SAFETY: `p` is null or a valid object.
                guard(std::ptr::null(), || unsafe { view(p, stringify!($name)) }.map_or(std::ptr::null(), |o| o as *const _))
            }

            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_extern_as_ $name>](p: *mut Object) -> *mut Object {
                // SAFETY: `p` is null or a valid object.
                guard(std::ptr::null_mut(), || unsafe { view(p, stringify!($name)) }.map_or(std::ptr::null_mut(), |o| o as *const _ as *mut _))
            }

            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_extern_as_ $name _const>](p: *const Object) -> *const Object {
                // SAFETY: `p` is null or a valid object.
                guard(std::ptr::null(), || unsafe { view(p, stringify!($name)) }.map_or(std::ptr::null(), |o| o as *const _))
            }
        )* }
    };
}
extern_views!(func, global, table, memory);
