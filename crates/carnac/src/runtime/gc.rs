//! Extern references and their collection: the store's arena of host values
//! ([`ExternHeap`]), the roots that keep them alive on the host side
//! ([`RootScope`], [`OwnedRooted`]) and the mark-and-sweep collector that frees
//! those nothing refers to any more.
//!
//! An [`ExternRef`] handle names a slot of the arena and the slot's generation;
//! a freed slot's generation changes, so a stale handle is an error, never
//! another value. In wasm (value slots, tables, globals) a reference is raw
//! bits: the slot index plus one in the low 32 bits (0 is null) and the
//! generation in the high 32 bits.
//!
//! Liveness is decided only while no wasm runs in the store (`reentry == 0`):
//! the interpreter's value stack has no type map to scan, so a collection never
//! runs under a guest frame. The roots are then:
//! - the LIFO roots: every handle the API made (by [`ExternRef::new`], or a
//!   reference read out of wasm) stays rooted until the scope it was made in
//!   ends: a [`RootScope`], a host function's call, or else the store's life;
//! - the owned roots: [`OwnedRooted`] handles still alive (an `Arc` count);
//! - everything wasm can reach: the elements of externref (and exnref) tables,
//!   the values of externref (and exnref) globals, the reference fields of
//!   the exceptions marked (`runtime::exn`: exceptions share this arena), and passive element segments holding references
//!   read from globals (in WebAssembly 2.0 the immutable global they were read
//!   from holds them too, but a segment is a place of its own).
//!
//! One exception to "only a collection frees": an exception whose reference
//! was never given out is freed as soon as a `catch` without the reference
//! catches it (`ExternHeap::free_now`, see `runtime::exn`).
//!
//! Wherever a store keeps raw references must be marked in
//! [`StoreInner::collect_externs`]; a place missed there makes its references
//! stale after a collection (a clean error when used, thanks to the generation).

use std::any::Any;
use std::sync::Arc;

use crate::error::Error;
use crate::module::ConstExpr;
use crate::runtime::store::{AsContext, AsContextMut, StoreInner};
use crate::runtime::values::ExternRef;

/// Most slots the arena holds: an index plus one must fit in 32 bits.
const MAX_SLOTS: usize = u32::MAX as usize - 1;
/// The fewest occupied slots that start a collection (a collection then frees
/// the garbage of at least this many allocations).
const MIN_THRESHOLD: usize = 256;

/// The raw (in-wasm) bits of a reference to slot `index` at generation `gen`.
#[inline]
pub(crate) fn encode(index: u32, gen: u32) -> u64 {
    ((gen as u64) << 32) | (index as u64 + 1)
}

/// The slot index and generation of raw reference bits; `None` for null.
#[inline]
pub(crate) fn decode(raw: u64) -> Option<(u32, u32)> {
    let low = raw as u32;
    (low != 0).then(|| (low - 1, (raw >> 32) as u32))
}

/// The host's roots of one heap (the extern heap here, the GC heap in
/// `runtime::gc_heap`): LIFO scopes and owned handles, as slot indices. Each
/// slot keeps its own "in the LIFO list" flag, which the heap passes in.
pub(crate) struct HostRoots {
    /// LIFO roots; a scope is a length of this list.
    pub(crate) lifo: Vec<u32>,
    /// Owned roots: a slot and the liveness token its handles share (dead once
    /// only this copy is left).
    owned: Vec<(u32, Arc<()>)>,
    /// Length of `owned` at which dead owned roots are dropped.
    owned_trim_at: usize,
}

impl Default for HostRoots {
    fn default() -> HostRoots {
        HostRoots { lifo: Vec::new(), owned: Vec::new(), owned_trim_at: 16 }
    }
}

impl HostRoots {
    /// Roots slot `index` in the current LIFO scope, unless its flag `in_lifo`
    /// says it is rooted there or in an enclosing scope already.
    #[inline]
    pub(crate) fn root(&mut self, index: u32, in_lifo: &mut bool) {
        if !*in_lifo {
            *in_lifo = true;
            self.lifo.push(index);
        }
    }

    #[inline]
    pub(crate) fn enter_scope(&self) -> usize {
        self.lifo.len()
    }

    /// Ends the scope entered when the LIFO list was `scope` long; `unflag`
    /// clears the flag of each slot rooted since.
    #[inline]
    pub(crate) fn exit_scope(&mut self, scope: usize, mut unflag: impl FnMut(u32)) {
        if self.lifo.len() > scope {
            self.lifo.drain(scope..).for_each(&mut unflag);
        }
    }

    /// Adds an owned root for slot `index`; it lasts while a clone of the
    /// returned token does.
    pub(crate) fn own(&mut self, index: u32) -> Arc<()> {
        if self.owned.len() >= self.owned_trim_at {
            self.owned.retain(|(_, token)| Arc::strong_count(token) > 1);
            self.owned_trim_at = (self.owned.len() * 2).max(16);
        }
        let token = Arc::new(());
        self.owned.push((index, token.clone()));
        token
    }

    /// Calls `mark` with every root's slot (LIFO, then the owned ones still
    /// alive; dead owned roots are dropped) and returns how many there were.
    pub(crate) fn for_each_live(&mut self, mut mark: impl FnMut(u32)) -> usize {
        self.lifo.iter().for_each(|&index| mark(index));
        self.owned.retain(|(index, token)| {
            let live = Arc::strong_count(token) > 1;
            if live {
                mark(*index);
            }
            live
        });
        self.lifo.len() + self.owned.len()
    }
}

struct Slot {
    /// Bumped when the slot's value is freed, so old handles no longer match.
    gen: u32,
    /// Whether the slot is in the LIFO root list (once, however many handles).
    lifo: bool,
    /// Set while marking.
    mark: bool,
    value: Option<Box<dyn Any + Send + Sync>>,
}

/// A store's extern references: the host values, their free slots and roots.
pub(crate) struct ExternHeap {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The host's roots (LIFO scopes and `OwnedRooted` handles).
    roots: HostRoots,
    /// Bytes of the exceptions in the arena (`runtime::exn::exception_size`):
    /// a `throw` inside wasm traps past the GC heap's cap.
    pub(crate) exn_bytes: usize,
    /// Occupied slots at which the next allocation outside wasm collects.
    threshold: usize,
    /// Set when the threshold was passed while wasm was running: the next call
    /// into the store from the host collects first.
    pub(crate) pending: bool,
}

impl Default for ExternHeap {
    fn default() -> ExternHeap {
        ExternHeap {
            slots: Vec::new(),
            free: Vec::new(),
            roots: HostRoots::default(),
            exn_bytes: 0,
            threshold: MIN_THRESHOLD,
            pending: false,
        }
    }
}

impl ExternHeap {
    /// Slots holding a value (live, or garbage not yet collected).
    pub(crate) fn occupied(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Occupied slots at which the next allocation outside wasm collects.
    pub(crate) fn threshold(&self) -> usize {
        self.threshold
    }

    /// Places `value` in a free slot; returns its index and generation.
    pub(crate) fn alloc(&mut self, value: Box<dyn Any + Send + Sync>) -> Result<(u32, u32), Error> {
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.value = Some(value);
            return Ok((index, slot.gen));
        }
        if self.slots.len() >= MAX_SLOTS {
            return Err(Error::Limit(format!("the store holds {MAX_SLOTS} extern references, its limit")));
        }
        self.slots.push(Slot { gen: 0, lifo: false, mark: false, value: Some(value) });
        Ok((self.slots.len() as u32 - 1, 0))
    }

    fn slot(&self, index: u32, gen: u32) -> Option<&Slot> {
        self.slots.get(index as usize).filter(|s| s.gen == gen && s.value.is_some())
    }

    /// The value of a live reference.
    pub(crate) fn get(&self, index: u32, gen: u32) -> Option<&(dyn Any + Send + Sync)> {
        self.slot(index, gen)?.value.as_deref()
    }

    /// Frees the value of a live reference now (no one else holds it: see
    /// `runtime::exn::release`); its slot's generation moves on.
    pub(crate) fn free_now(&mut self, index: u32, gen: u32) {
        if let Some(slot) = self.slots.get_mut(index as usize).filter(|s| s.gen == gen && !s.lifo) {
            let value = slot.value.take();
            let size = value.as_deref().map_or(0, crate::runtime::exn::counted_size);
            self.exn_bytes = self.exn_bytes.saturating_sub(size);
            if slot.gen < u32::MAX {
                slot.gen += 1;
                self.free.push(index);
            }
            drop(value);
        }
    }

    pub(crate) fn get_mut(&mut self, index: u32, gen: u32) -> Option<&mut (dyn Any + Send + Sync)> {
        let slot = self.slots.get_mut(index as usize).filter(|s| s.gen == gen)?;
        slot.value.as_deref_mut()
    }

    /// Whether the reference still names its value (it was not collected).
    pub(crate) fn is_live(&self, index: u32, gen: u32) -> bool {
        self.slot(index, gen).is_some()
    }

    /// Roots a live reference in the current LIFO scope (nothing if it is
    /// rooted there or in an enclosing scope already, or is not live).
    pub(crate) fn root(&mut self, index: u32, gen: u32) {
        if let Some(slot) = self.slots.get_mut(index as usize) {
            if slot.gen == gen && slot.value.is_some() {
                self.roots.root(index, &mut slot.lifo);
            }
        }
    }

    /// Enters a LIFO scope: pass the result to [`ExternHeap::exit_scope`].
    #[inline]
    pub(crate) fn enter_scope(&self) -> usize {
        self.roots.enter_scope()
    }

    /// Ends the LIFO scope entered when the root list was `scope` long: the
    /// references rooted since are rooted no more.
    #[inline]
    pub(crate) fn exit_scope(&mut self, scope: usize) {
        let slots = &mut self.slots;
        self.roots.exit_scope(scope, |index| slots[index as usize].lifo = false);
    }

    /// Adds an owned root for a live reference; it lasts while a clone of the
    /// returned token does.
    fn own(&mut self, index: u32) -> Arc<()> {
        self.roots.own(index)
    }

    /// Calls `f` with every field slot of every exception the arena holds
    /// (reachable or not): conservative roots of the GC heap, whose objects an
    /// exception's fields may refer to (see `runtime::gc_heap`). Returns the
    /// arena slots walked.
    pub(crate) fn for_each_exception_slot(&self, mut f: impl FnMut(u64)) -> usize {
        for slot in &self.slots {
            if let Some(e) = slot.value.as_deref().and_then(|v| v.downcast_ref::<crate::runtime::exn::ExnObject>()) {
                e.fields.iter().for_each(|&raw| f(raw));
            }
        }
        self.slots.len()
    }

    /// Marks the reference in raw bits `raw`, if it is live.
    #[inline]
    fn mark_raw(&mut self, raw: u64) {
        if let Some((index, gen)) = decode(raw) {
            if let Some(slot) = self.slots.get_mut(index as usize) {
                if slot.gen == gen && slot.value.is_some() {
                    slot.mark = true;
                }
            }
        }
    }

    /// Marks what marked exceptions refer to (their reference fields), until
    /// nothing new is marked: exceptions are the arena's only values that
    /// hold references. `tags`: the store's tag types.
    fn mark_exception_fields(&mut self, tags: &[crate::types::FuncType]) {
        use crate::runtime::exn::{arena_refs_of, ExnObject};
        let mut work: Vec<u32> = (self.slots.iter().enumerate())
            .filter(|(_, s)| s.mark && s.value.as_ref().is_some_and(|v| v.is::<ExnObject>()))
            .map(|(i, _)| i as u32)
            .collect();
        let mut refs = Vec::new();
        while let Some(index) = work.pop() {
            refs.clear();
            if let Some(o) = self.slots[index as usize].value.as_ref().and_then(|v| v.downcast_ref::<ExnObject>()) {
                arena_refs_of(tags, o, &mut refs);
            }
            for &raw in &refs {
                let Some((i, gen)) = decode(raw) else { continue };
                if let Some(slot) = self.slots.get_mut(i as usize) {
                    if slot.gen == gen && slot.value.is_some() && !slot.mark {
                        slot.mark = true;
                        if slot.value.as_ref().is_some_and(|v| v.is::<ExnObject>()) {
                            work.push(i);
                        }
                    }
                }
            }
        }
    }

    /// Frees every unmarked value (after the bookkeeping, so a value's `Drop`
    /// that panics leaves the arena consistent) and sets the next threshold;
    /// `scanned` is how many places marking looked at.
    fn sweep(&mut self, scanned: usize) {
        let mut garbage = Vec::new();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if slot.value.is_none() {
                continue;
            }
            if std::mem::take(&mut slot.mark) {
                continue;
            }
            let value = slot.value.take();
            let size = value.as_deref().map_or(0, crate::runtime::exn::counted_size);
            self.exn_bytes = self.exn_bytes.saturating_sub(size);
            garbage.push(value);
            // A slot whose generation would wrap is retired, so that no handle
            // of 2^32 generations ago can name its new value.
            if slot.gen < u32::MAX {
                slot.gen += 1;
                self.free.push(index as u32);
            }
        }
        let live = self.occupied();
        // Next time when the live values have doubled, and not before the
        // allocations since pay for the places scanned (large tables).
        self.threshold = (live * 2).max(live + scanned / 8).max(MIN_THRESHOLD);
        self.pending = false;
        drop(garbage);
    }
}

impl StoreInner {
    /// Collects now if the allocations since the last collection call for it
    /// and no wasm is running.
    #[inline]
    pub(crate) fn maybe_collect_externs(&mut self) {
        if self.externs.occupied() >= self.externs.threshold {
            if self.reentry == 0 {
                self.collect_externs();
            } else {
                self.externs.pending = true;
            }
        }
    }

    /// Collects now if an allocation passed the threshold while wasm was
    /// running (a call from the host into the store starts with this).
    #[inline]
    pub(crate) fn collect_externs_if_pending(&mut self) {
        if (self.externs.pending || self.gc_heap.pending) && self.reentry == 0 {
            self.collect_externs();
        }
    }

    /// Frees every extern reference that nothing refers to (see the module
    /// docs for the roots). Does nothing while wasm is running in the store.
    #[cold]
    pub(crate) fn collect_externs(&mut self) {
        if self.reentry != 0 {
            return;
        }
        // The GC heap first: its live objects' reference fields keep extern
        // references alive too (a struct may hold an externref).
        self.mark_gc_heap_for_full_collection();
        let heap = &mut self.externs;
        self.gc_heap.for_each_marked_ref(|raw| heap.mark_raw(raw));
        let slots = &mut heap.slots;
        let mut scanned = heap.roots.for_each_live(|index| slots[index as usize].mark = true);
        for table in self.tables.iter().filter(|t| t.ty.element.is_extern_ref()) {
            scanned += table.elems.len();
            for &raw in &table.elems {
                heap.mark_raw(raw);
            }
        }
        for global in self.globals.iter().filter(|g| g.ty.content.is_extern_ref()) {
            heap.mark_raw(global.get() as u64);
        }
        // Passive element segments keep what their `global.get` items read.
        for instance in &self.instances {
            let info = &instance.module.info;
            for (segment, items) in info.elems.iter().zip(&instance.elems) {
                scanned += items.len();
                for (expr, &raw) in segment.items.iter().zip(items.iter()) {
                    if let ConstExpr::GlobalGet(g) = expr {
                        if info.globals[*g as usize].content.is_extern_ref() {
                            heap.mark_raw(raw);
                        }
                    }
                }
            }
        }
        heap.mark_exception_fields(&self.tags);
        heap.sweep(scanned);
        self.finish_gc_heap();
    }
}

/// The message of every use of a collected reference.
fn stale() -> Error {
    Error::usage(
        "extern reference used after it was unrooted and collected \
         (keep it in a RootScope that is still open, or in an OwnedRooted)",
    )
}

impl ExternRef {
    /// Stores `value` in the store and returns a reference to it, rooted in the
    /// current scope (see [`RootScope`]), as Wasmtime's `ExternRef::new`. May
    /// first collect the store's unreferenced extern references (only when no
    /// wasm is running in the store). Errors when the store holds 2^32 - 1
    /// references already.
    pub fn new(mut store: impl AsContextMut, value: impl Any + Send + Sync) -> Result<ExternRef, Error> {
        let s = &mut store.as_context_mut().inner;
        s.maybe_collect_externs();
        let (index, gen) = s.externs.alloc(Box::new(value))?;
        s.externs.root(index, gen);
        Ok(ExternRef { store: s.id, index, gen, any: 0 })
    }

    pub(crate) fn check(&self, s: &StoreInner) -> Result<(), Error> {
        if self.store != s.id {
            return Err(Error::usage("extern reference belongs to a different store"));
        }
        if self.any == 0 && !s.externs.is_live(self.index, self.gen) {
            return Err(stale());
        }
        Ok(())
    }

    /// The host value (downcast it with `downcast_ref`), as Wasmtime's
    /// `ExternRef::data`. Errors when the reference belongs to a different store
    /// or was collected (it was left unrooted: see [`RootScope`]). The `Option`
    /// is `None` for an `externref` made from an `anyref` of the GC proposal
    /// (`extern.convert_any`), as in Wasmtime.
    pub fn data<'a, S: AsContext + 'a>(&self, store: &'a S) -> Result<Option<&'a (dyn Any + Send + Sync)>, Error> {
        let s = &store.as_context().inner;
        self.check(s)?;
        if self.any != 0 {
            // A GC value converted with `extern.convert_any`: no host data.
            return Ok(None);
        }
        Ok(s.externs.get(self.index, self.gen))
    }

    /// The host value, mutably (see [`ExternRef::data`]).
    pub fn data_mut<'a, S: AsContextMut + 'a>(
        &self,
        store: &'a mut S,
    ) -> Result<Option<&'a mut (dyn Any + Send + Sync)>, Error> {
        let s = &mut store.as_context_mut().inner;
        self.check(s)?;
        if self.any != 0 {
            return Ok(None);
        }
        Ok(s.externs.get_mut(self.index, self.gen))
    }

    /// A root for this reference that lasts until it (and every clone) is
    /// dropped, whatever scopes end: for references kept across calls, e.g. in
    /// the store's data. As Wasmtime's `Rooted::to_owned_rooted`. Errors when the
    /// reference belongs to a different store or was collected.
    pub fn to_owned_rooted(&self, mut store: impl AsContextMut) -> Result<OwnedRooted<ExternRef>, Error> {
        let s = &mut store.as_context_mut().inner;
        self.check(s)?;
        let liveness = s.externs.own(self.index);
        Ok(OwnedRooted { inner: *self, _liveness: liveness })
    }
}

/// Wasmtime's name for a handle rooted in a scope: there `ExternRef::new`
/// returns a `Rooted<ExternRef>`; in Carnac the [`ExternRef`] handle is itself
/// the scoped root, and this alias lets code that names `Rooted<ExternRef>`
/// (e.g. `Option<Rooted<ExternRef>>` in a typed call) compile unchanged.
pub type Rooted<T> = T;

/// A scope for the roots that the API makes, as Wasmtime's `RootScope`: the
/// extern references created or read out of wasm while it is open (through it:
/// it goes wherever a `&mut Store` does) are unrooted when it is dropped, so a
/// later collection frees them unless wasm (a table, a global) or another root
/// still refers to them.
///
/// Without a scope, references made directly on a store stay rooted as long as
/// the store; those a host function makes or receives are unrooted when the
/// host function returns (every host call is a scope). A handle used after its
/// value was collected is an error, never another value.
///
/// ```
/// use carnac::{Engine, ExternRef, RootScope, Store};
///
/// let mut store = Store::new(&Engine::default(), ());
/// let kept = ExternRef::new(&mut store, "kept")?;
/// let gone;
/// {
///     let mut scope = RootScope::new(&mut store);
///     gone = ExternRef::new(&mut scope, "temporary")?;
///     assert!(gone.data(&scope).is_ok());
/// }
/// store.gc();
/// assert!(gone.data(&store).is_err());
/// assert_eq!(kept.data(&store)?.unwrap().downcast_ref::<&str>(), Some(&"kept"));
/// # Ok::<(), carnac::Error>(())
/// ```
pub struct RootScope<C: AsContextMut> {
    store: C,
    scope: crate::runtime::gc_heap::RootMark,
}

impl<C: AsContextMut> RootScope<C> {
    /// Opens a scope on `store` (a store, a `&mut Store`, a `Caller`, another scope).
    pub fn new(mut store: C) -> RootScope<C> {
        let scope = store.as_context_mut().inner.enter_root_scope();
        RootScope { store, scope }
    }

    /// Reserves room for `additional` roots, so rooting that many allocates nothing.
    pub fn reserve(&mut self, additional: usize) {
        self.store.as_context_mut().inner.externs.roots.lifo.reserve(additional);
    }
}

impl<C: AsContextMut> Drop for RootScope<C> {
    fn drop(&mut self) {
        self.store.as_context_mut().inner.exit_root_scope(self.scope);
    }
}

impl<C: AsContextMut> AsContext for RootScope<C> {
    type Data = C::Data;
    fn as_context(&self) -> &crate::Store<C::Data> {
        self.store.as_context()
    }
}

impl<C: AsContextMut> AsContextMut for RootScope<C> {
    fn as_context_mut(&mut self) -> &mut crate::Store<C::Data> {
        self.store.as_context_mut()
    }
}

impl<C: AsContextMut> std::fmt::Debug for RootScope<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootScope").field("scope", &self.scope).finish_non_exhaustive()
    }
}

/// A root that keeps its reference alive until the handle and all its clones
/// are dropped, as Wasmtime's `OwnedRooted`: for references the host keeps
/// across calls and scopes (in the store's data, in a host function's state).
/// Made by [`ExternRef::to_owned_rooted`]; it dereferences to the
/// [`ExternRef`], which is valid as long as the root lives. Dropping it needs
/// no store: the next collection sees that it is gone.
///
/// ```
/// use carnac::{Engine, ExternRef, OwnedRooted, RootScope, Store};
///
/// let mut store = Store::<Option<OwnedRooted<ExternRef>>>::new(&Engine::default(), None);
/// let owned = {
///     let mut scope = RootScope::new(&mut store);
///     ExternRef::new(&mut scope, 1234u32)?.to_owned_rooted(&mut scope)?
/// };
/// *store.data_mut() = Some(owned);
/// store.gc();
/// let r: ExternRef = **store.data().as_ref().unwrap();
/// assert_eq!(r.data(&store)?.unwrap().downcast_ref::<u32>(), Some(&1234));
/// # Ok::<(), carnac::Error>(())
/// ```
pub struct OwnedRooted<T> {
    pub(crate) inner: T,
    pub(crate) _liveness: Arc<()>,
}

impl<T> std::ops::Deref for OwnedRooted<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: Clone> Clone for OwnedRooted<T> {
    fn clone(&self) -> Self {
        OwnedRooted { inner: self.inner.clone(), _liveness: self._liveness.clone() }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for OwnedRooted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("OwnedRooted").field(&self.inner).finish()
    }
}

impl OwnedRooted<ExternRef> {
    /// The reference, also rooted in the current scope of `store`, as Wasmtime's
    /// `OwnedRooted::to_rooted` (in Carnac the handle is the same either way).
    pub fn to_rooted(&self, mut store: impl AsContextMut) -> ExternRef {
        let s = &mut store.as_context_mut().inner;
        if self.inner.store == s.id {
            s.externs.root(self.inner.index, self.inner.gen);
        }
        self.inner
    }

    /// Like [`OwnedRooted::to_rooted`], dropping this root.
    pub fn into_rooted(self, store: impl AsContextMut) -> ExternRef {
        self.to_rooted(store)
    }
}
