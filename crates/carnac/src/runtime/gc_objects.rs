//! The host's view of GC objects, in Wasmtime's shape: [`StructRef`] and
//! [`ArrayRef`] handles (read and write fields and elements, an array's
//! length), made from references wasm returns to the host and passed back in.
//!
//! A handle is the object's raw reference (slot + generation, see
//! `runtime::gc_ref`) and its store's id. Handles are rooted as extern
//! references are: in the current [`crate::RootScope`] (or the host call's
//! scope) when they are made, or for as long as an [`OwnedRooted`] lives; a
//! handle whose object was collected is an error wherever it is used, never
//! another object.
//!
//! Field and element values are [`Val`]s of the field's unpacked type (an
//! `i8`/`i16` field reads as a zero-extended `i32` and is written wrapped).
//!
//! Must not touch: the heap's layout and collector (`runtime::gc_heap`), the
//! type registry.

use crate::error::Error;
use crate::runtime::anyref::AnyRef;
use crate::runtime::func::WasmTy;
use crate::runtime::gc::OwnedRooted;
use crate::runtime::gc_heap::{array_size, storage_of_type, Object, StructLayout};
use crate::runtime::gc_ref::decode_object;
use crate::runtime::store::{AsContext, AsContextMut, StoreInner, StoreOpaque};
use crate::runtime::values::Val;
use crate::types::{ArrayType, CompositeType, FieldType, StorageType, StructType, ValType};

/// A reference to a struct object of the GC proposal, as Wasmtime's
/// `StructRef`: get it from a wasm function's `structref` (or `(ref $s)`)
/// result, read and write its fields, pass it back to wasm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StructRef {
    pub(crate) store: u64,
    pub(crate) raw: u64,
}

/// A reference to an array object of the GC proposal, as Wasmtime's
/// `ArrayRef`: its length, its elements, passed back to wasm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArrayRef {
    pub(crate) store: u64,
    pub(crate) raw: u64,
}

fn stale() -> Error {
    Error::usage(
        "GC object used after it was unrooted and collected \
         (keep it in a RootScope that is still open, or in an OwnedRooted)",
    )
}

/// The live object `raw` of store `s` (checking the handle's store).
fn object(s: &StoreInner, store: u64, raw: u64) -> Result<&Object, Error> {
    if store != s.id {
        return Err(Error::usage("GC object belongs to a different store"));
    }
    s.gc_heap.get(raw).ok_or_else(stale)
}

/// The field types of the object's type (registered when its module was instantiated).
fn field_types(s: &StoreInner, o: &Object) -> Result<Vec<FieldType>, Error> {
    match s.gc_heap.type_of(o.type_id) {
        Some(CompositeType::Struct(t)) => Ok(t.fields().to_vec()),
        Some(CompositeType::Array(t)) => Ok(vec![t.field_type().clone()]),
        _ => Err(Error::usage("GC object of an unknown type")),
    }
}

/// A stored value (zero-extended) as a [`Val`] of the field's unpacked type.
fn to_val(s: &mut StoreInner, field: &StorageType, bits: u128) -> Val {
    match field {
        StorageType::I8 | StorageType::I16 => Val::I32(bits as u32 as i32),
        StorageType::ValType(t) => Val::from_raw(bits, t, s),
    }
}

/// A [`Val`] as the bits to store in a field of type `field`.
fn from_val(s: &StoreInner, field: &FieldType, v: &Val) -> Result<u128, Error> {
    if field.mutability() != crate::types::Mutability::Var {
        return Err(Error::usage("the field is immutable"));
    }
    let want = field.element_type().unpack();
    if !v.matches(&want, s) {
        return Err(Error::usage(format!("a {} value where the field holds {want}", v.ty())));
    }
    v.to_raw(s)
}

/// Allocates `object` (`size` bytes) from the host: a collection of both
/// heaps runs first when one is due and no wasm runs (the host's values are
/// rooted), and once more before giving up. The new object is rooted in the
/// current scope.
fn host_alloc<T>(
    store: &mut crate::Store<T>,
    make: impl FnOnce() -> Result<Object, crate::runtime::trap::Trap>,
    size: usize,
) -> Result<u64, Error> {
    let s = &mut store.inner;
    if s.reentry == 0 && s.gc_heap.since.saturating_add(size) > s.gc_heap.threshold {
        s.collect_externs();
    }
    let (inner, mut limiter) = store.inner_and_limiter();
    if inner.gc_reserve(limiter.as_deref_mut(), size, None).is_err() {
        if inner.reentry != 0 {
            return Err(crate::runtime::trap::Trap::new(crate::runtime::trap::TrapKind::OutOfGcMemory).into());
        }
        inner.collect_externs();
        inner.gc_reserve(limiter, size, None)?;
    }
    // Built only once its bytes are reserved.
    let raw = inner.gc_insert(make()?, size)?;
    inner.gc_heap.root(raw);
    Ok(raw)
}

impl StructRef {
    /// A new struct of type `ty` whose fields are `fields` (values of the
    /// fields' unpacked types), rooted in the current scope. Wasmtime's
    /// `StructRef::new` takes a `StructRefPre` made from the type; Carnac
    /// takes the type. May collect first (only when no wasm runs). Errors
    /// when a value does not match its field, or the GC heap is full.
    pub fn new(mut store: impl AsContextMut, ty: &StructType, fields: &[Val]) -> Result<StructRef, Error> {
        let store = store.as_context_mut();
        let s = &mut store.inner;
        let types = ty.fields();
        if types.len() != fields.len() {
            return Err(Error::usage(format!(
                "the struct type has {} fields, {} were given",
                types.len(),
                fields.len()
            )));
        }
        let mut bits = Vec::with_capacity(fields.len());
        for (f, v) in types.iter().zip(fields) {
            let want = f.element_type().unpack();
            if !v.matches(&want, s) {
                return Err(Error::usage(format!("a {} value where the field holds {want}", v.ty())));
            }
            bits.push(v.to_raw(s)?);
        }
        let id = s.engine.type_registry().register_host(CompositeType::Struct(ty.clone()));
        s.gc_heap.register_type(id, CompositeType::Struct(ty.clone()));
        let storages: Vec<_> = types.iter().map(|f| storage_of_type(f.element_type())).collect();
        let layout = std::sync::Arc::new(StructLayout::new(id, &storages));
        let size = layout.size();
        let raw = host_alloc(store, || Ok(Object::new_struct(&layout, bits)), size)?;
        Ok(StructRef { store: store.inner.id, raw })
    }

    /// The handle of object `raw` (a struct) of `s`, rooted in the current scope.
    pub(crate) fn from_raw(raw: u64, s: &mut StoreInner) -> Option<StructRef> {
        decode_object(raw)?;
        s.gc_heap.root(raw);
        Some(StructRef { store: s.id, raw })
    }

    /// Field `index`'s value, as Wasmtime's `StructRef::field`. Errors when
    /// the handle is stale or of another store, or there is no such field.
    pub fn field(&self, mut store: impl AsContextMut, index: usize) -> Result<Val, Error> {
        let s = &mut store.as_context_mut().inner;
        let o = object(s, self.store, self.raw)?;
        let (_, bits) = o.struct_get(index).ok_or_else(|| Error::usage(format!("no field {index}")))?;
        let ty = field_types(s, o)?.swap_remove(index);
        Ok(to_val(s, ty.element_type(), bits))
    }

    /// Every field's value, in order.
    pub fn fields(&self, mut store: impl AsContextMut) -> Result<Vec<Val>, Error> {
        let s = &mut store.as_context_mut().inner;
        let n = field_types(s, object(s, self.store, self.raw)?)?.len();
        (0..n).map(|i| self.field(&mut *store.as_context_mut(), i)).collect()
    }

    /// Sets field `index` (a mutable field) to `value`, as Wasmtime's
    /// `StructRef::set_field`.
    pub fn set_field(&self, mut store: impl AsContextMut, index: usize, value: Val) -> Result<(), Error> {
        let s = &mut store.as_context_mut().inner;
        let o = object(s, self.store, self.raw)?;
        let tys = field_types(s, o)?;
        let ty = tys.get(index).ok_or_else(|| Error::usage(format!("no field {index}")))?;
        let bits = from_val(s, ty, &value)?;
        s.gc_heap.get_mut(self.raw).ok_or_else(stale)?.struct_set(index, bits);
        Ok(())
    }

    /// A root that lasts until it (and every clone) is dropped, as for
    /// extern references ([`crate::ExternRef::to_owned_rooted`]).
    pub fn to_owned_rooted(&self, mut store: impl AsContextMut) -> Result<OwnedRooted<StructRef>, Error> {
        let s = &mut store.as_context_mut().inner;
        object(s, self.store, self.raw)?;
        Ok(OwnedRooted { inner: *self, _liveness: s.gc_heap.own(self.raw) })
    }

    /// The canonical type id of its struct type (equal for equivalent types
    /// of any module of the engine).
    pub fn type_id(&self, store: impl AsContext) -> Result<u32, Error> {
        Ok(object(&store.as_context().inner, self.store, self.raw)?.type_id)
    }
}

impl ArrayRef {
    /// A new array of type `ty` of `len` elements, each `elem`, rooted in the
    /// current scope (Wasmtime's `ArrayRef::new` takes an `ArrayRefPre`;
    /// Carnac takes the type). May collect first (only when no wasm runs).
    pub fn new(mut store: impl AsContextMut, ty: &ArrayType, elem: &Val, len: u32) -> Result<ArrayRef, Error> {
        let store = store.as_context_mut();
        let s = &mut store.inner;
        let field = ty.field_type();
        let want = field.element_type().unpack();
        if !elem.matches(&want, s) {
            return Err(Error::usage(format!("a {} value where the array holds {want}", elem.ty())));
        }
        let bits = elem.to_raw(s)?;
        let id = s.engine.type_registry().register_host(CompositeType::Array(ty.clone()));
        s.gc_heap.register_type(id, CompositeType::Array(ty.clone()));
        let storage = storage_of_type(field.element_type());
        let size = array_size(storage, len as usize).ok_or_else(|| {
            Error::from(crate::runtime::trap::Trap::new(crate::runtime::trap::TrapKind::AllocationTooLarge))
        })?;
        let raw = host_alloc(store, || Object::new_array(id, storage, bits, len as usize), size)?;
        Ok(ArrayRef { store: store.inner.id, raw })
    }

    /// The handle of object `raw` (an array) of `s`, rooted in the current scope.
    pub(crate) fn from_raw(raw: u64, s: &mut StoreInner) -> Option<ArrayRef> {
        decode_object(raw)?;
        s.gc_heap.root(raw);
        Some(ArrayRef { store: s.id, raw })
    }

    /// The number of elements, as Wasmtime's `ArrayRef::len`.
    pub fn len(&self, store: impl AsContext) -> Result<u32, Error> {
        let o = object(&store.as_context().inner, self.store, self.raw)?;
        Ok(o.array().ok_or_else(|| Error::usage("not an array"))?.len() as u32)
    }

    /// Element `index`, as Wasmtime's `ArrayRef::get`. Errors out of bounds.
    pub fn get(&self, mut store: impl AsContextMut, index: u32) -> Result<Val, Error> {
        let s = &mut store.as_context_mut().inner;
        let o = object(s, self.store, self.raw)?;
        let a = o.array().ok_or_else(|| Error::usage("not an array"))?;
        if index as usize >= a.len() {
            return Err(Error::usage(format!("element {index} out of bounds of an array of {}", a.len())));
        }
        let bits = a.get(index as usize);
        let ty = field_types(s, o)?.swap_remove(0);
        Ok(to_val(s, ty.element_type(), bits))
    }

    /// Every element, in order.
    pub fn elems(&self, mut store: impl AsContextMut) -> Result<Vec<Val>, Error> {
        let n = self.len(&*store.as_context_mut())?;
        (0..n).map(|i| self.get(&mut *store.as_context_mut(), i)).collect()
    }

    /// Sets element `index` of a mutable array, as Wasmtime's `ArrayRef::set`.
    pub fn set(&self, mut store: impl AsContextMut, index: u32, value: Val) -> Result<(), Error> {
        let s = &mut store.as_context_mut().inner;
        let o = object(s, self.store, self.raw)?;
        let ty = field_types(s, o)?.swap_remove(0);
        let bits = from_val(s, &ty, &value)?;
        let a = s.gc_heap.get_mut(self.raw).and_then(Object::array_mut).ok_or_else(stale)?;
        if index as usize >= a.len() {
            return Err(Error::usage(format!("element {index} out of bounds of an array of {}", a.len())));
        }
        a.set(index as usize, ty.element_type().wrap_bits(bits));
        Ok(())
    }

    /// A root that lasts until it (and every clone) is dropped.
    pub fn to_owned_rooted(&self, mut store: impl AsContextMut) -> Result<OwnedRooted<ArrayRef>, Error> {
        let s = &mut store.as_context_mut().inner;
        object(s, self.store, self.raw)?;
        Ok(OwnedRooted { inner: *self, _liveness: s.gc_heap.own(self.raw) })
    }
}

impl AnyRef {
    /// The struct it is, if it is one (`None` for an array, an `i31` or a
    /// converted host value), as Wasmtime's `AnyRef::as_struct`.
    pub fn as_struct(&self, store: impl AsContext) -> Result<Option<StructRef>, Error> {
        let s = &store.as_context().inner;
        let raw = self.to_raw(s)?;
        Ok(s.gc_heap.get(raw).and_then(|o| o.array().is_none().then_some(StructRef { store: s.id, raw })))
    }

    /// The array it is, if it is one, as Wasmtime's `AnyRef::as_array`.
    pub fn as_array(&self, store: impl AsContext) -> Result<Option<ArrayRef>, Error> {
        let s = &store.as_context().inner;
        let raw = self.to_raw(s)?;
        Ok(s.gc_heap.get(raw).and_then(|o| o.array().is_some().then_some(ArrayRef { store: s.id, raw })))
    }
}

impl StructRef {
    /// The same object as an `anyref` (for [`Val::AnyRef`]), as Wasmtime's `StructRef::to_anyref`.
    pub fn to_anyref(&self) -> AnyRef {
        AnyRef { store: self.store, raw: self.raw }
    }
}

impl ArrayRef {
    /// The same object as an `anyref` (for [`Val::AnyRef`]), as Wasmtime's `ArrayRef::to_anyref`.
    pub fn to_anyref(&self) -> AnyRef {
        AnyRef { store: self.store, raw: self.raw }
    }
}

impl StorageType {
    /// Bits of the unpacked value reduced to what the storage keeps.
    fn wrap_bits(&self, bits: u128) -> u128 {
        crate::runtime::gc_heap::storage_of_type(self).wrap(bits)
    }
}

macro_rules! gc_ref_ty {
    ($t:ident, $heap:ident, $what:literal) => {
        /// A nullable reference to any
        #[doc = $what]
        /// (for typed calls: results are rooted in the current scope).
        impl WasmTy for Option<$t> {
            const TY: ValType = ValType::$heap;
            #[inline]
            fn load(slots: &[u64], cx: &mut StoreOpaque<'_>) -> Self {
                $t::from_raw(slots[0], cx.0)
            }
            #[inline]
            fn store(self, slots: &mut [u64], cx: &mut StoreOpaque<'_>) -> Result<(), Error> {
                slots[0] = match self {
                    None => 0,
                    Some(r) => {
                        object(cx.0, r.store, r.raw)?;
                        r.raw
                    }
                };
                Ok(())
            }
        }

        impl OwnedRooted<$t> {
            /// The handle, also rooted in the current scope of `store`.
            pub fn to_rooted(&self, mut store: impl AsContextMut) -> $t {
                let s = &mut store.as_context_mut().inner;
                if self.inner.store == s.id {
                    s.gc_heap.root(self.inner.raw);
                }
                self.inner
            }
        }
    };
}

gc_ref_ty!(StructRef, STRUCTREF, "struct (`structref`)");
gc_ref_ty!(ArrayRef, ARRAYREF, "array (`arrayref`)");
