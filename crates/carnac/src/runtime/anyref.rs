//! The GC proposal's reference values at the API boundary: [`AnyRef`] (an
//! `anyref`) and [`I31`] (the value of an `i31ref`), in Wasmtime's shape.
//!
//! An [`AnyRef`] is the raw reference bits (`runtime::gc_ref`'s encoding)
//! and the store they belong to: an `i31` needs no heap, a host value
//! converted with `any.convert_extern` keeps its extern-heap slot (rooted as
//! an [`ExternRef`] is), and a struct or array is an object of the GC heap
//! (`runtime::gc_heap`, whose liveness checks apply).
//!
//! Must not touch: the encoding (`runtime::gc_ref`), the heaps' contents.

use crate::error::Error;
use crate::runtime::gc_ref::{self, TAG_MASK};
use crate::runtime::store::{AsContext, AsContextMut, StoreInner};
use crate::runtime::values::ExternRef;

/// An unboxed 31-bit integer, the value of an `i31ref`; as Wasmtime's `I31`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct I31(u32);

impl I31 {
    /// The low 31 bits of `value` (the rest dropped, as `ref.i31` does).
    pub fn wrapping_u32(value: u32) -> I31 {
        I31(value & 0x7fff_ffff)
    }

    /// The low 31 bits of `value`'s two's complement (as `ref.i31` does).
    pub fn wrapping_i32(value: i32) -> I31 {
        I31::wrapping_u32(value as u32)
    }

    /// `value`, if it fits in 31 unsigned bits.
    pub fn new_u32(value: u32) -> Option<I31> {
        (value <= 0x7fff_ffff).then_some(I31(value))
    }

    /// `value`, if it fits in 31 signed bits.
    pub fn new_i32(value: i32) -> Option<I31> {
        (-(1 << 30)..(1 << 30)).contains(&value).then(|| I31::wrapping_i32(value))
    }

    /// The value zero-extended (`i31.get_u`).
    pub fn get_u32(self) -> u32 {
        self.0
    }

    /// The value sign-extended (`i31.get_s`).
    pub fn get_i32(self) -> i32 {
        gc_ref::i31_s(self.0 as u64)
    }
}

/// A reference to a GC value, the non-null `anyref` of WebAssembly (pass it
/// as [`crate::Val::AnyRef`]); as Wasmtime's `AnyRef`: an [`I31`], a struct
/// or array, or a host value converted with `any.convert_extern`
/// ([`AnyRef::convert_extern`]). Two handles are equal when they are the same
/// reference (`ref.eq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnyRef {
    pub(crate) store: u64,
    /// The reference's bits (never 0: null is `None` where an `AnyRef` goes).
    pub(crate) raw: u64,
}

impl AnyRef {
    /// The `i31` of `value` in `store`'s reference space (`ref.i31`).
    pub fn from_i31(store: impl AsContextMut, value: I31) -> AnyRef {
        let mut store = store;
        AnyRef { store: store.as_context_mut().inner.id, raw: gc_ref::encode_i31(value.0) }
    }

    /// The host value `r` as an `anyref` (`any.convert_extern`).
    pub fn convert_extern(store: impl AsContextMut, r: ExternRef) -> Result<AnyRef, Error> {
        let mut store = store;
        let s = &store.as_context_mut().inner;
        let raw = crate::Val::ExternRef(Some(r)).to_raw(s)? as u64;
        Ok(AnyRef { store: s.id, raw })
    }

    /// Whether it is an `i31`.
    pub fn is_i31(&self, store: impl AsContext) -> Result<bool, Error> {
        self.check(&store.as_context().inner)?;
        Ok(gc_ref::is_i31(self.raw))
    }

    /// Its value, if it is an `i31`.
    pub fn as_i31(&self, store: impl AsContext) -> Result<Option<I31>, Error> {
        self.check(&store.as_context().inner)?;
        Ok(gc_ref::is_i31(self.raw).then(|| I31(gc_ref::i31_u(self.raw))))
    }

    /// Its value; an error unless it is an `i31`.
    pub fn unwrap_i31(&self, store: impl AsContext) -> Result<I31, Error> {
        self.as_i31(store)?.ok_or_else(|| Error::usage("the anyref is not an i31"))
    }

    /// Whether it is a struct or array of the GC heap.
    pub fn is_object(&self, store: impl AsContext) -> Result<bool, Error> {
        self.check(&store.as_context().inner)?;
        Ok(gc_ref::is_object(self.raw))
    }

    pub(crate) fn check(&self, s: &StoreInner) -> Result<(), Error> {
        if self.store != s.id {
            return Err(Error::usage("anyref belongs to a different store"));
        }
        Ok(())
    }

    /// The reference in raw bits `raw` (`None` for null) made in store `s`; a
    /// host value converted to `anyref`, or a struct or array, is rooted in
    /// its current scope.
    pub(crate) fn from_raw(raw: u64, s: &mut StoreInner) -> Option<AnyRef> {
        if raw == 0 {
            return None;
        }
        if raw & TAG_MASK == 0 {
            if let Some((index, gen)) = crate::runtime::gc::decode(raw) {
                s.externs.root(index, gen);
            }
        } else if gc_ref::is_object(raw) {
            // A struct or array: rooted in the current scope too.
            s.gc_heap.root(raw);
        }
        Some(AnyRef { store: s.id, raw })
    }

    /// The raw bits, checking the store (and that a converted host value is live).
    pub(crate) fn to_raw(self, s: &StoreInner) -> Result<u64, Error> {
        self.check(s)?;
        if self.raw & TAG_MASK == 0 {
            if let Some((index, gen)) = crate::runtime::gc::decode(self.raw) {
                ExternRef { store: s.id, index, gen, any: 0 }.check(s)?;
            }
        }
        if gc_ref::is_object(self.raw) && !s.gc_heap.is_live(self.raw) {
            return Err(Error::usage("anyref used after its object was collected (keep it rooted)"));
        }
        Ok(self.raw)
    }
}

impl crate::runtime::func::WasmTy for Option<AnyRef> {
    const TY: crate::types::ValType = crate::types::ValType::ANYREF;
    #[inline]
    fn load(slots: &[u64], cx: &mut crate::runtime::store::StoreOpaque<'_>) -> Self {
        AnyRef::from_raw(slots[0], cx.0)
    }
    #[inline]
    fn store(self, slots: &mut [u64], cx: &mut crate::runtime::store::StoreOpaque<'_>) -> Result<(), Error> {
        slots[0] = match self {
            Some(r) => r.to_raw(cx.0)?,
            None => 0,
        };
        Ok(())
    }
}
