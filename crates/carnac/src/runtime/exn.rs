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
}

/// An exception in the store's arena: its tag (a store tag index) and its
/// fields as raw slots (a v128 takes two).
pub(crate) struct ExnObject {
    pub tag: u32,
    pub fields: Box<[u64]>,
    /// Whether its reference was ever given out (to wasm by `catch_ref` or
    /// `catch_all_ref`, to the host, or beyond the activation that threw
    /// it): until then only the unwinding holds it, and a `catch` without
    /// the reference frees it at once (a loop that throws and catches does
    /// not fill the arena while it runs, when nothing may collect).
    pub exposed: bool,
}

/// A reference to an exception (the `exnref` of WebAssembly), owned by a
/// store, as Wasmtime's `ExnRef`: what `throw` makes and `catch_ref`
/// receives, what an uncaught exception carries to the host
/// ([`crate::Error::as_exception`], [`crate::Trap::exception`]), and what a
/// host function throws ([`crate::Trap::throw`]). Rooted as an
/// [`crate::ExternRef`] is (the same scopes and collector). Two handles are
/// equal when they name the same exception.
///
/// ```
/// use carnac::*;
///
/// let engine = Engine::default();
/// let mut store = Store::new(&engine, ());
/// let tag = Tag::new(&mut store, &TagType::new(FuncType::new([ValType::I32], [])))?;
/// let mut linker = Linker::new(&engine);
/// linker.define("host", "e", tag)?;
/// // A host function that throws; wasm catches its exception.
/// linker.func_wrap("host", "fail", move |mut caller: Caller<'_, ()>, x: i32| -> Result<(), Trap> {
///     Err(Trap::throw(ExnRef::new(&mut caller, &tag, &[Val::I32(x)])?))
/// })?;
/// let module = Module::new(&engine, r#"(module
///     (import "host" "e" (tag $e (param i32)))
///     (import "host" "fail" (func $fail (param i32)))
///     (func (export "try") (param i32) (result i32)
///         (block $caught (result i32)
///             (try_table (catch $e $caught) (call $fail (local.get 0)))
///             (i32.const 0)))
///     (func (export "throw") (param i32) (throw $e (local.get 0))))"#)?;
/// let instance = linker.instantiate(&mut store, &module)?;
/// let try_ = instance.get_typed_func::<i32, i32>(&store, "try")?;
/// assert_eq!(try_.call(&mut store, 7)?, 7);
/// // An exception wasm does not catch comes back to the host.
/// let throw = instance.get_typed_func::<i32, ()>(&store, "throw")?;
/// let err = throw.call(&mut store, 8).unwrap_err();
/// let exn = err.as_exception().expect("an uncaught exception");
/// assert_eq!(exn.tag(&store)?, tag);
/// assert_eq!(exn.field(&mut store, 0)?.i32(), Some(8));
/// # Ok::<(), carnac::Error>(())
/// ```
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
        expose(s, raw);
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
    let size = exception_size(fields.len());
    let (index, gen) = s.externs.alloc(Box::new(ExnObject { tag, fields, exposed: false }))?;
    s.externs.exn_bytes += size;
    if s.externs.occupied() >= s.externs.threshold() {
        s.externs.pending = true;
    }
    Ok(gc::encode(index, gen))
}

/// The bytes an exception with `slots` field slots is counted as (its fields,
/// its object and its arena slot) in `ExternHeap::exn_bytes`.
pub(crate) fn exception_size(slots: usize) -> usize {
    64 + 8 * slots
}

/// What a freed arena value counted in `ExternHeap::exn_bytes` (0 for a host
/// value).
pub(crate) fn counted_size(value: &(dyn std::any::Any + Send + Sync)) -> usize {
    value.downcast_ref::<ExnObject>().map_or(0, |e| exception_size(e.fields.len()))
}

/// Marks an exception as given out (see [`ExnObject::exposed`]).
pub(crate) fn expose(s: &mut StoreInner, raw: u64) {
    if let Some((index, gen)) = gc::decode(raw) {
        if let Some(o) = s.externs.get_mut(index, gen).and_then(|v| v.downcast_mut::<ExnObject>()) {
            o.exposed = true;
        }
    }
}

/// An exception was caught without its reference: freed now if it was never
/// given out (nothing else can hold it).
pub(crate) fn release(s: &mut StoreInner, raw: u64) {
    if let Some((index, gen)) = gc::decode(raw) {
        if exception_object(s, raw).is_some_and(|o| !o.exposed) {
            s.externs.free_now(index, gen);
        }
    }
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
