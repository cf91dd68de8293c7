//! Exception handling's runtime objects: tag instances ([`Tag`]) and
//! exceptions ([`ExnRef`]).
//!
//! A store's tags are its `tags` list (the function type of each tag
//! instance): a module's defined tags get new entries at each instantiation,
//! so two instances of one module have different tags, and an imported tag is
//! the exporter's entry. A tag is identified by that store index.
//!
//! An exception is an [`ExnObject`] (its tag and its field values, as raw
//! interpreter slots) kept in the store's arena of extern references
//! (`runtime::gc`): an `exnref` in wasm is that arena's raw bits (slot plus
//! generation, null 0), and the collector marks exceptions reachable from its
//! roots, then the references among their fields. Exceptions are made while
//! wasm runs (by `throw`) but, as for every reference in the arena, liveness is
//! decided only when no wasm runs; an exception that reaches the host is
//! rooted in the host's current scope.
//!
//! Must not touch: how a tier unwinds (`interp::exec`, the compiled tier): they
//! make exceptions with [`new_exception`] and read them with [`exception_tag`]
//! and [`exception_fields`].

use crate::error::Error;
use crate::runtime::gc;
use crate::runtime::store::{AsContext, AsContextMut, StoreInner};
use crate::runtime::values::{read_slots, write_slots, Val};
use crate::types::{FuncType, TagType};

/// An exception tag instance of a store, as Wasmtime's `Tag`: made by
/// [`Tag::new`], exported by an instance ([`crate::Instance::get_tag`]) or
/// given to one as an import. Two tags are the same tag only if they are
/// the same instance (a module instantiated twice defines two tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    pub(crate) store: u64,
    pub(crate) index: u32,
}

impl Tag {
    /// A new tag of type `ty` in `store` (its function type must have no results).
    pub fn new(mut store: impl AsContextMut, ty: &TagType) -> Result<Tag, Error> {
        if !ty.ty().results().is_empty() {
            return Err(Error::usage("a tag's function type must have no results"));
        }
        let s = &mut store.as_context_mut().inner;
        s.tags.push(ty.ty().clone());
        Ok(Tag { store: s.id, index: s.tags.len() as u32 - 1 })
    }

    /// The tag's type.
    ///
    /// # Panics
    ///
    /// When the tag belongs to a different store.
    pub fn ty(&self, store: impl AsContext) -> TagType {
        let s = &store.as_context().inner;
        assert_eq!(self.store, s.id, "Tag belongs to a different store than the one it was used with");
        TagType::new(s.tags[self.index as usize].clone())
    }

    /// Whether `a` and `b` are the same tag, as Wasmtime's `Tag::eq`.
    pub fn eq(a: &Tag, b: &Tag, _store: impl AsContext) -> bool {
        a == b
    }
}

/// An exception in the store's arena: its tag (a store tag index) and its
/// fields as raw slots (a v128 takes two).
pub(crate) struct ExnObject {
    pub tag: u32,
    pub fields: Box<[u64]>,
}

/// A reference to an exception (the `exnref` of WebAssembly), owned by a
/// store, as Wasmtime's `ExnRef`: what `throw` makes and `catch_ref`
/// receives, what an uncaught exception carries to the host
/// ([`crate::Trap::exception`]), and what a host function throws
/// ([`crate::Trap::throw`]). Rooted as an [`crate::ExternRef`] is (the same
/// scopes and collector). Two handles are equal when they name the same
/// exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExnRef {
    pub(crate) store: u64,
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

impl ExnRef {
    /// A new exception of `tag` with `fields` (of the tag's parameter types),
    /// rooted in the current scope.
    pub fn new(mut store: impl AsContextMut, tag: &Tag, fields: &[Val]) -> Result<ExnRef, Error> {
        let s = &mut store.as_context_mut().inner;
        if tag.store != s.id {
            return Err(Error::usage("tag belongs to a different store"));
        }
        let ty = s.tags[tag.index as usize].clone();
        if ty.params().len() != fields.len() {
            return Err(Error::usage(format!(
                "the tag's exceptions have {} fields, {} were given",
                ty.params().len(),
                fields.len()
            )));
        }
        let mut slots = vec![0u64; ty.param_slots()];
        let mut at = 0;
        for (v, t) in fields.iter().zip(ty.params()) {
            if !v.matches(t, s) {
                return Err(Error::usage(format!("a field of type {t} was given a {}", v.ty())));
            }
            at += write_slots(v.to_raw(s)?, t, &mut slots[at..]);
        }
        s.maybe_collect_externs();
        let raw = new_exception(s, tag.index, slots.into())?;
        Ok(ExnRef::from_raw(raw, s).expect("a new exception is not null"))
    }

    /// The reference in raw bits `raw` (`None` for null), rooted in the
    /// current scope of store `s`.
    pub(crate) fn from_raw(raw: u64, s: &mut StoreInner) -> Option<ExnRef> {
        let (index, gen) = gc::decode(raw)?;
        s.externs.root(index, gen);
        Some(ExnRef { store: s.id, index, gen })
    }

    /// The raw bits of the reference, checked to be of store `s` and live.
    pub(crate) fn to_raw(self, s: &StoreInner) -> Result<u64, Error> {
        self.object(s)?;
        Ok(gc::encode(self.index, self.gen))
    }

    fn object<'a>(&self, s: &'a StoreInner) -> Result<&'a ExnObject, Error> {
        if self.store != s.id {
            return Err(Error::usage("exception reference belongs to a different store"));
        }
        s.externs
            .get(self.index, self.gen)
            .and_then(|v| v.downcast_ref::<ExnObject>())
            .ok_or_else(|| Error::usage("exception reference used after it was unrooted and collected"))
    }

    /// The exception's tag.
    pub fn tag(&self, store: impl AsContext) -> Result<Tag, Error> {
        let s = &store.as_context().inner;
        Ok(Tag { store: s.id, index: self.object(s)?.tag })
    }

    /// The exception's field values, in order (references among them are
    /// rooted in the current scope).
    pub fn fields(&self, mut store: impl AsContextMut) -> Result<Vec<Val>, Error> {
        let s = &mut store.as_context_mut().inner;
        let raw = gc::encode(self.index, self.gen);
        self.object(s)?;
        Ok(exception_fields(s, raw))
    }

    /// Field `index` of the exception.
    pub fn field(&self, store: impl AsContextMut, index: usize) -> Result<Val, Error> {
        let fields = self.fields(store)?;
        let n = fields.len();
        fields.get(index).copied().ok_or_else(|| Error::usage(format!("no field {index}: the exception has {n}")))
    }
}

/// Places a new exception of store tag `tag` with raw `fields` in the arena;
/// returns its raw reference. Allocation only: never collects (wasm may be
/// running).
pub(crate) fn new_exception(s: &mut StoreInner, tag: u32, fields: Box<[u64]>) -> Result<u64, Error> {
    let (index, gen) = s.externs.alloc(Box::new(ExnObject { tag, fields }))?;
    if s.externs.occupied() >= s.externs.threshold() {
        s.externs.pending = true;
    }
    Ok(gc::encode(index, gen))
}

/// The object of a live raw exception reference.
pub(crate) fn exception_object(s: &StoreInner, raw: u64) -> Option<&ExnObject> {
    let (index, gen) = gc::decode(raw)?;
    s.externs.get(index, gen)?.downcast_ref::<ExnObject>()
}

/// The store tag of a live raw exception reference.
pub(crate) fn exception_tag(s: &StoreInner, raw: u64) -> Option<u32> {
    exception_object(s, raw).map(|o| o.tag)
}

/// The field values of a live raw exception reference (references rooted in
/// the current scope); empty if it is not live.
pub(crate) fn exception_fields(s: &mut StoreInner, raw: u64) -> Vec<Val> {
    let Some(o) = exception_object(s, raw) else { return Vec::new() };
    let (tag, fields) = (o.tag, o.fields.clone());
    let ty: FuncType = s.tags[tag as usize].clone();
    let mut at = 0;
    let mut vals = Vec::with_capacity(ty.params().len());
    for t in ty.params() {
        let raw = read_slots(&fields[at..], t);
        at += t.slots();
        vals.push(Val::from_raw(raw, t, s));
    }
    vals
}

/// The raw references among an exception's fields that point into the arena
/// (extern and exception references), for the collector's marking.
pub(crate) fn arena_refs_of(tags: &[FuncType], object: &ExnObject, out: &mut Vec<u64>) {
    let ty = &tags[object.tag as usize];
    let mut at = 0;
    for t in ty.params() {
        if t.is_extern_ref() {
            out.push(object.fields[at]);
        }
        at += t.slots();
    }
}
