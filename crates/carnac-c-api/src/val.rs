//! Values (`wasm_val_t`) and their conversion to and from Carnac's [`Val`].
//!
//! A value of a reference kind owns its `wasm_ref_t` (null for the null
//! reference). An `externref` passed into wasm carries the object's item and
//! host info ([`ExternPayload`]); read back, it becomes a new object sharing
//! that host info, so `wasm_ref_same` and host info survive the round trip.
//! `v128` values have no representation in `wasm_val_t`: functions and
//! globals of that type are described (kind `CARNAC_V128`) but cannot be
//! called, read or written through the standard API (a trap or a null result
//! says so).

use carnac_rt::{ExternRef, Store, Val, ValType};

use crate::object::{ExternPayload, Item, Object};
use crate::store::{StoreData, StoreRef};
use crate::types::{valkind, WASM_EXTERNREF, WASM_FUNCREF, WASM_I32};
use crate::vec::Elem;
use crate::{from_raw, guard, opt_mut, opt_ref};

/// The payload of a `wasm_val_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union wasm_val_union {
    pub i32: i32,
    pub i64: i64,
    pub f32: f32,
    pub f64: f64,
    pub ref_: *mut Object,
}

/// `wasm_val_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct wasm_val_t {
    pub kind: u8,
    pub of: wasm_val_union,
}

impl wasm_val_t {
    /// The reference a value of a reference kind holds (null otherwise).
    pub fn ref_ptr(&self) -> *mut Object {
        if self.kind == WASM_EXTERNREF || self.kind == WASM_FUNCREF {
            // SAFETY: a value of a reference kind holds a pointer in `of`.
            unsafe { self.of.ref_ }
        } else {
            std::ptr::null_mut()
        }
    }

    fn with_ref(kind: u8, r: *mut Object) -> wasm_val_t {
        wasm_val_t { kind, of: wasm_val_union { ref_: r } }
    }
}

impl Elem for wasm_val_t {
    fn zero() -> wasm_val_t {
        wasm_val_t { kind: WASM_I32, of: wasm_val_union { i64: 0 } }
    }
    unsafe fn copy_elem(&self) -> wasm_val_t {
        let r = self.ref_ptr();
        if r.is_null() {
            *self
        } else {
            // SAFETY: the value's reference is valid (contract).
            wasm_val_t::with_ref(self.kind, unsafe { &*r }.clone().into_ptr())
        }
    }
    unsafe fn drop_elem(self) {
        // SAFETY: the value owns its reference (contract).
        drop(unsafe { from_raw(self.ref_ptr()) });
    }
}

/// The Carnac value of `v`, which must have type `ty`, for use in `store`.
///
/// # Safety
///
/// A reference in `v` is null or a valid object.
pub unsafe fn to_carnac(v: &wasm_val_t, ty: &ValType, store: &mut Store<StoreData>) -> Result<Val, String> {
    if v.kind != valkind(ty) {
        return Err(format!("a value of kind {} where {ty} was expected", v.kind));
    }
    // SAFETY: each arm reads the union field of the value's kind.
    Ok(unsafe {
        match ty {
            ValType::I32 => Val::I32(v.of.i32),
            ValType::I64 => Val::I64(v.of.i64),
            ValType::F32 => Val::F32(v.of.f32.to_bits()),
            ValType::F64 => Val::F64(v.of.f64.to_bits()),
            ValType::V128 => return Err("v128 values cannot be passed through wasm_val_t".into()),
            t if t.is_func_ref() => match opt_ref(v.of.ref_) {
                None => Val::FuncRef(None),
                Some(o) => Val::FuncRef(Some(o.func().ok_or("a funcref value that is not a function")?)),
            },
            _ => match opt_ref(v.of.ref_) {
                None => Val::ExternRef(None),
                Some(o) => {
                    let payload = ExternPayload {
                        item: o.item.clone(),
                        host: o.host.clone(),
                        store: o.store.as_ref().map(std::sync::Arc::downgrade),
                    };
                    Val::ExternRef(Some(ExternRef::new(&mut *store, payload).map_err(|e| e.to_string())?))
                }
            },
        }
    })
}

/// The C value of `v`, read in the store `store_ref` (borrowed as `store`);
/// references become new objects owned by the caller.
pub fn from_carnac(v: Val, store_ref: &StoreRef, store: &Store<StoreData>) -> Result<wasm_val_t, String> {
    Ok(match v {
        Val::I32(i) => wasm_val_t { kind: crate::types::WASM_I32, of: wasm_val_union { i32: i } },
        Val::I64(i) => wasm_val_t { kind: crate::types::WASM_I64, of: wasm_val_union { i64: i } },
        Val::F32(b) => wasm_val_t { kind: crate::types::WASM_F32, of: wasm_val_union { f32: f32::from_bits(b) } },
        Val::F64(b) => wasm_val_t { kind: crate::types::WASM_F64, of: wasm_val_union { f64: f64::from_bits(b) } },
        Val::V128(_) => return Err("v128 values cannot be passed through wasm_val_t".into()),
        Val::FuncRef(f) => wasm_val_t::with_ref(
            WASM_FUNCREF,
            f.map_or(std::ptr::null_mut(), |f| Object::new(Some(store_ref.clone()), Item::Func(f)).into_ptr()),
        ),
        Val::ExternRef(None) => wasm_val_t::with_ref(WASM_EXTERNREF, std::ptr::null_mut()),
        Val::ExternRef(Some(r)) => {
            let data = r.data(store).map_err(|e| e.to_string())?;
            let obj = match data.and_then(|d| d.downcast_ref::<ExternPayload>()) {
                Some(p) => Object {
                    store: p.store.as_ref().and_then(std::sync::Weak::upgrade),
                    item: p.item.clone(),
                    host: p.host.clone(),
                },
                None => return Err("an externref not made through the C API".into()),
            };
            wasm_val_t::with_ref(WASM_EXTERNREF, obj.into_ptr())
        }
        other => return Err(format!("a {} value cannot be passed through wasm_val_t", other.ty())),
    })
}

/// Releases the reference an owned value holds (nothing for numbers).
#[no_mangle]
pub unsafe extern "C" fn wasm_val_delete(v: *mut wasm_val_t) {
    guard((), || {
        // SAFETY: `v` is null or an owned value.
        if let Some(v) = unsafe { opt_mut(v) } {
            // SAFETY: the value owns its reference; it is cleared so a second
            // delete does nothing.
            unsafe { v.drop_elem() };
            if !v.ref_ptr().is_null() {
                v.of.ref_ = std::ptr::null_mut();
            }
        }
    })
}

/// Copies `src` into `out` (a reference is copied: a new handle).
#[no_mangle]
pub unsafe extern "C" fn wasm_val_copy(out: *mut wasm_val_t, src: *const wasm_val_t) {
    guard((), || {
        // SAFETY: `src` is null or a valid value; `out` null or a place for one.
        if let (false, Some(src)) = (out.is_null(), unsafe { opt_ref(src) }) {
            unsafe { out.write(src.copy_elem()) }
        }
    })
}
