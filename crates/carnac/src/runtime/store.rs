//! The store: owner of every runtime object (functions, memories, tables, globals,
//! instances, extern references) and of the user's data. Handles such as
//! [`crate::Func`] are indices into one store, tagged with its id so that using a
//! handle with the wrong store is an error, never undefined behaviour.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::engine::Engine;
use crate::error::Error;
use crate::module::ModuleInner;
use crate::runtime::func::HostFunc;
use crate::runtime::gc::ExternHeap;
use crate::runtime::gc_heap::GcHeap;
use crate::runtime::memory::{LinearMemory, WASM_PAGE};
use crate::runtime::shared::{SharedMemory, StoreMemory};
use crate::runtime::trap::{Trap, TrapKind};
use crate::runtime::vmctx::{VMContextBlock, VMFuncRef, VMStoreContext, VMTableDef};
use crate::types::{FuncType, GlobalType, MemoryType, TableType};

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// The epoch that stores of engines without epoch interruption read (only an
/// interrupt, which sets the check word to 0, stops them then).
pub(crate) static NO_EPOCH: AtomicU64 = AtomicU64::new(0);

/// Interpreter value stacks of dropped stores, reused by new ones: a fresh
/// store per request then neither allocates nor grows (and zero-fills) its
/// stack again. Old contents are harmless: the interpreter writes every slot
/// before reading it (locals are zeroed on entry, temps are results).
static STACK_POOL: std::sync::Mutex<Vec<Vec<u64>>> = std::sync::Mutex::new(Vec::new());
/// Stacks kept, and the largest kept (in slots: 512 KiB), so the pool holds at
/// most 32 MiB however deep guests recursed.
const STACK_POOL_MAX: usize = 64;
const POOLED_STACK_MAX_SLOTS: usize = 64 << 10;

fn take_pooled_stack() -> Vec<u64> {
    STACK_POOL.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default()
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        let stack = std::mem::take(&mut self.stack);
        if stack.capacity() > 0 && stack.len() <= POOLED_STACK_MAX_SLOTS {
            let mut pool = STACK_POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < STACK_POOL_MAX {
                pool.push(stack);
            }
        }
    }
}

/// What a store function is. Wasm functions carry no per-function data beyond
/// two indices (their type and module come from the instance), which keeps
/// instantiating a module with many functions cheap.
pub(crate) enum FuncKind {
    Wasm {
        instance: u32,
        def_index: u32,
    },
    /// `index` into the store's host functions and host types; `slots` is the
    /// larger of the parameter and result slot counts (what a call needs).
    Host {
        index: u32,
        slots: u32,
    },
}

pub(crate) struct FuncEntity {
    pub type_id: u32,
    pub kind: FuncKind,
}

pub(crate) struct TableEntity {
    pub ty: TableType,
    /// Raw references: 0 is null, otherwise a store index plus one.
    pub elems: Vec<u64>,
    /// `elems`' address and length as compiled code reads them, at a stable
    /// address; [`TableEntity::sync`] after anything that changes `elems`' length.
    pub def: Box<VMTableDef>,
}

impl TableEntity {
    pub fn new(ty: TableType, mut elems: Vec<u64>) -> TableEntity {
        let def = Box::new(VMTableDef { base: elems.as_mut_ptr(), len: elems.len() });
        TableEntity { ty, elems, def }
    }

    /// Brings `def` up to date with `elems` (after it grew).
    pub fn sync(&mut self) {
        self.def.base = self.elems.as_mut_ptr();
        self.def.len = self.elems.len();
    }
}

/// A global: its type and where its value lives. The cell belongs to the store
/// (`StoreInner::global_cells`) and never moves, so instances' context blocks
/// point at it: an imported global is the exporter's own cell.
pub(crate) struct GlobalEntity {
    pub ty: GlobalType,
    /// Raw bits (see `Val::to_raw`); only a v128 uses the high half.
    pub cell: *mut u128,
}

// SAFETY: `cell` points into a `global_cells` allocation of the same store,
// which only the store's owner (one thread at a time) reads or writes.
unsafe impl Send for GlobalEntity {}
unsafe impl Sync for GlobalEntity {}

impl GlobalEntity {
    pub fn get(&self) -> u128 {
        // SAFETY: see `cell`: a live, aligned cell of this store.
        unsafe { *self.cell }
    }
    pub fn set(&self, value: u128) {
        // SAFETY: as in `get`; no reference to the cell is held anywhere.
        unsafe { *self.cell = value }
    }
}

pub(crate) struct InstanceEntity {
    pub module: Arc<ModuleInner>,
    pub funcs: Box<[u32]>,
    pub tables: Box<[u32]>,
    pub memories: Box<[u32]>,
    pub globals: Box<[u32]>,
    /// Store tag index of each of the module's tags (imported ones first).
    pub tags: Box<[u32]>,
    /// The instance's context block, which both tiers read (`runtime::vmctx`).
    pub vmctx: VMContextBlock,
    /// Element segments as raw references; emptied by `elem.drop` (and after active init).
    pub elems: Vec<Box<[u64]>>,
    /// Whether each data segment has been dropped.
    pub data_dropped: Vec<bool>,
}

/// Bytes one table element takes in the store (a raw reference): what a table
/// counts against [`ResourceLimiter::store_growing`].
pub(crate) const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<u64>();

/// The most instances, memories and tables a store holds unless its limiter
/// says otherwise (Wasmtime's default too).
pub const DEFAULT_INSTANCE_LIMIT: usize = 10_000;
pub const DEFAULT_MEMORY_LIMIT: usize = 10_000;
pub const DEFAULT_TABLE_LIMIT: usize = 10_000;

/// Decides whether memories and tables may grow (their creation counts as growing
/// from zero), and how many instances, memories and tables a store may hold.
/// Installed with [`Store::limiter`] (living in the store's data, as in
/// Wasmtime) or [`Store::set_limiter`] (owned by the store).
///
/// A hook answers `Ok(false)` to refuse (a guest's `memory.grow` then returns
/// -1, instantiation fails with [`Error::Limit`]) or `Err(trap)` to stop the
/// guest with its own error (instantiation then fails with that trap).
pub trait ResourceLimiter: Send {
    /// A memory wants to grow from `current` to `desired` bytes.
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool, Trap>;
    /// A table wants to grow from `current` to `desired` elements.
    fn table_growing(&mut self, current: u64, desired: u64, maximum: Option<u64>) -> Result<bool, Trap>;
    /// All the store's memories and tables together want to grow from `current`
    /// to `desired` bytes (a table element counts 8 bytes); asked after
    /// `memory_growing` or `table_growing` allowed the one that grows. The
    /// default allows it.
    fn store_growing(&mut self, current: usize, desired: usize) -> Result<bool, Trap> {
        let _ = (current, desired);
        Ok(true)
    }
    /// The most instances the store may hold.
    fn instances(&self) -> usize {
        DEFAULT_INSTANCE_LIMIT
    }
    /// The most memories the store may hold (its instances' and the host's).
    fn memories(&self) -> usize {
        DEFAULT_MEMORY_LIMIT
    }
    /// The most tables the store may hold.
    fn tables(&self) -> usize {
        DEFAULT_TABLE_LIMIT
    }
    /// The most bytes the store's GC heap (struct and array objects of the
    /// GC proposal) may hold, whatever [`ResourceLimiter::store_growing`]
    /// allows; 1 GiB by default. The GC heap's bytes count against
    /// `store_growing` too.
    fn gc_heap_size(&self) -> usize {
        crate::runtime::gc_heap::DEFAULT_GC_HEAP_SIZE
    }
}

/// Simple caps, in the spirit of Wasmtime's `StoreLimits`: one budget of bytes
/// for all the store's memories and tables, a cap on any one table's length,
/// and on the number of instances, memories and tables.
#[derive(Debug, Clone, Default)]
pub struct StoreLimits {
    /// Maximum bytes of all memories and tables together (see [`StoreLimits::memory_size`]).
    pub memory_size: Option<usize>,
    /// Maximum elements of any one table.
    pub table_elements: Option<u64>,
    pub instances: Option<usize>,
    pub memories: Option<usize>,
    pub tables: Option<usize>,
    /// Maximum bytes of the GC heap (see [`ResourceLimiter::gc_heap_size`]).
    pub gc_heap_size: Option<usize>,
}

impl StoreLimits {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }
    /// Maximum bytes of the store's linear memories and tables together (a table
    /// element counts 8 bytes), so neither can take the host past it alone.
    pub fn memory_size(mut self, bytes: usize) -> Self {
        self.memory_size = Some(bytes);
        self
    }
    /// Maximum elements of any one table.
    pub fn table_elements(mut self, n: u64) -> Self {
        self.table_elements = Some(n);
        self
    }
    /// Maximum instances in the store.
    pub fn instances(mut self, n: usize) -> Self {
        self.instances = Some(n);
        self
    }
    /// Maximum memories in the store.
    pub fn memories(mut self, n: usize) -> Self {
        self.memories = Some(n);
        self
    }
    /// Maximum tables in the store.
    pub fn tables(mut self, n: usize) -> Self {
        self.tables = Some(n);
        self
    }
    /// Maximum bytes of the store's GC heap (the memory size budget counts
    /// them too).
    pub fn gc_heap_size(mut self, bytes: usize) -> Self {
        self.gc_heap_size = Some(bytes);
        self
    }
}

impl ResourceLimiter for StoreLimits {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> Result<bool, Trap> {
        Ok(self.memory_size.is_none_or(|m| desired <= m))
    }
    fn table_growing(&mut self, _current: u64, desired: u64, _max: Option<u64>) -> Result<bool, Trap> {
        Ok(self.table_elements.is_none_or(|m| desired <= m))
    }
    fn store_growing(&mut self, _current: usize, desired: usize) -> Result<bool, Trap> {
        Ok(self.memory_size.is_none_or(|m| desired <= m))
    }
    fn instances(&self) -> usize {
        self.instances.unwrap_or(DEFAULT_INSTANCE_LIMIT)
    }
    fn memories(&self) -> usize {
        self.memories.unwrap_or(DEFAULT_MEMORY_LIMIT)
    }
    fn tables(&self) -> usize {
        self.tables.unwrap_or(DEFAULT_TABLE_LIMIT)
    }
    fn gc_heap_size(&self) -> usize {
        self.gc_heap_size.unwrap_or(crate::runtime::gc_heap::DEFAULT_GC_HEAP_SIZE)
    }
}

/// Where a store's limiter lives.
enum Limiter<T> {
    Owned(Box<dyn ResourceLimiter>),
    InData(Box<dyn (FnMut(&mut T) -> &mut dyn ResourceLimiter) + Send>),
}

pub(crate) struct StoreInner {
    pub id: u64,
    pub engine: Engine,
    pub funcs: Vec<FuncEntity>,
    /// The type of each host function in `Store::hosts`, same index.
    pub host_types: Vec<FuncType>,
    /// Memories the store owns, and its clones of shared memories (its own
    /// instances' and the ones they import).
    pub memories: Vec<StoreMemory>,
    pub tables: Vec<TableEntity>,
    pub globals: Vec<GlobalEntity>,
    /// Where global values live: one allocation per instance (its defined
    /// globals) or host global; never moved or freed before the store.
    pub global_cells: Vec<Box<[std::cell::UnsafeCell<u128>]>>,
    pub instances: Vec<InstanceEntity>,
    /// The function type of every tag instance (`runtime::exn`).
    pub tags: Vec<FuncType>,
    /// Each store function's reference as compiled code sees it (same index as `funcs`).
    pub func_refs: Vec<VMFuncRef>,
    /// The tier-up generation `func_refs` reflect (see [`StoreInner::refresh_func_refs`]).
    #[cfg(carnac_compiled)]
    pub tier_generation: u64,
    /// Per-store state compiled code and the interpreter read: fuel, stack
    /// limit, interrupt words, the address of `func_refs`.
    pub store_ctx: Box<VMStoreContext>,
    /// Extern references' host values, and their roots (see `runtime::gc`).
    pub externs: ExternHeap,
    /// The GC proposal's struct and array objects (see `runtime::gc_heap`).
    pub gc_heap: GcHeap,
    /// The `reentry` level at which a running interpreter activation is the
    /// store's only wasm activation holding references, so it may collect the
    /// GC heap: 1, or 2 while the host runs an interpreted function of a
    /// compiled module through its stub (`runtime::call::run`).
    pub gc_collect_level: u32,
    /// Bytes held by the store's memories (their lengths) and tables (elements
    /// times [`TABLE_ELEMENT_BYTES`]): what [`ResourceLimiter::store_growing`] sees.
    pub committed: usize,
    /// Nesting of host→wasm re-entries, bounded to keep the host stack safe.
    pub reentry: u32,
    /// Host stack address at the outermost wasm entry (see `interp::call`).
    pub stack_base: usize,
    /// The interpreter's value stack, kept between calls to avoid reallocating.
    pub stack: Vec<u64>,
    /// The interrupt flag and epoch deadline, shared with interrupt handles and
    /// probes on other threads (see [`Signals`]).
    pub signals: Arc<Signals>,
}

/// What the hidden methods of [`crate::WasmTy`] get to turn references into
/// raw bits and back: the store, opaque outside the crate.
#[doc(hidden)]
pub struct StoreOpaque<'a>(pub(crate) &'a mut StoreInner);

// SAFETY: the raw pointers in a store's state (its context block and function
// references, memory and table definitions, global cells, the store context's
// pointers to the interrupt words) point into allocations the store owns, into
// `Arc`-shared atomics (`Signals`, the engine's epoch) or into modules' code and
// data kept alive by the instances' `Arc`s: nothing tied to a thread. They are
// written only through `&mut Store` (or by guest code running under one), so
// moving a store to another thread, or sharing `&Store` (which only reads), is
// as sound as for the plain data they stand for. Without this, `Store<T>` would
// not be `Send` (as Wasmtime's is when `T` is), since raw pointers are neither.
unsafe impl Send for StoreInner {}
unsafe impl Sync for StoreInner {}

/// Where a store's guests learn that they must stop: the interrupt flag
/// ([`InterruptHandle`]) and the epoch deadline ([`Store::set_epoch_deadline`]).
///
/// The interpreter's checks read one word each: `CheckInterrupt` (with
/// [`crate::Config::interruptible`] alone) the flag, `CheckEpoch` (with
/// [`crate::Config::epoch_interruption`]) the engine's epoch against `check`.
/// `check` is the deadline, or 0 while the flag is set, so one compare sees
/// both; the slow path ([`Store::deadline_reached`]) tells which it was.
/// Invariant, kept with `SeqCst` by every writer: once the flag is set, `check`
/// ends up 0 (a writer that stores a deadline looks at the flag afterwards).
pub(crate) struct Signals {
    pub interrupted: AtomicBool,
    /// What `CheckEpoch` compares the epoch against: `deadline`, or 0 when interrupted.
    pub check: AtomicU64,
    /// The store's epoch deadline (`u64::MAX`: none).
    pub deadline: AtomicU64,
    /// The engine's epoch, when the engine has epoch interruption on.
    pub epoch: Option<Arc<AtomicU64>>,
}

impl Signals {
    fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        self.check.store(0, Ordering::SeqCst);
    }

    /// Clears the flag; `check` goes back to the deadline (unless a new interrupt came).
    fn reset(&self) {
        self.interrupted.store(false, Ordering::SeqCst);
        // Only an interrupt's 0 is replaced: a deadline set meanwhile stays.
        let _ =
            self.check.compare_exchange(0, self.deadline.load(Ordering::SeqCst), Ordering::SeqCst, Ordering::SeqCst);
        if self.interrupted.load(Ordering::SeqCst) {
            self.check.store(0, Ordering::SeqCst);
        }
    }

    fn set_deadline(&self, deadline: u64) {
        self.deadline.store(deadline, Ordering::SeqCst);
        self.check.store(deadline, Ordering::SeqCst);
        if self.interrupted.load(Ordering::SeqCst) {
            self.check.store(0, Ordering::SeqCst);
        }
    }

    fn epoch_now(&self) -> Option<u64> {
        self.epoch.as_ref().map(|e| e.load(Ordering::Relaxed))
    }

    /// Interrupted, or past the epoch deadline.
    pub fn should_stop(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
            || self.epoch_now().is_some_and(|now| now >= self.check.load(Ordering::Relaxed))
    }
}

/// Stops the guests running in one store, from any thread (Wasmtime's
/// equivalent is an epoch deadline; this is the per-store flag). Obtained from
/// [`Store::interrupt_handle`], which requires [`crate::Config::interruptible`]
/// or [`crate::Config::epoch_interruption`]; the guest traps with
/// `TrapKind::Interrupted` at its next function entry or loop header, and WASI
/// waits end too.
///
/// An interrupt stays pending until it is cleared, with
/// [`InterruptHandle::reset`] or [`Store::clear_interrupt`]: a call started after
/// `interrupt()` traps at once (so a timeout that fires between two calls is not
/// lost), and the store runs normally again once cleared.
#[derive(Clone)]
pub struct InterruptHandle {
    signals: Arc<Signals>,
}

impl std::fmt::Debug for InterruptHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterruptHandle").field("interrupted", &self.is_interrupted()).finish()
    }
}

impl InterruptHandle {
    /// Interrupts the store's running (and any later) guest calls, until
    /// [`InterruptHandle::reset`].
    pub fn interrupt(&self) {
        self.signals.interrupt();
    }

    /// Whether [`InterruptHandle::interrupt`] was called (and not reset since).
    pub fn is_interrupted(&self) -> bool {
        self.signals.interrupted.load(Ordering::Relaxed)
    }

    /// Clears the interrupt, so that the store's next calls run normally (a call
    /// still running when this is called may or may not have seen the interrupt).
    /// The same as [`Store::clear_interrupt`], from any thread.
    pub fn reset(&self) {
        self.signals.reset();
    }
}

/// A view of whether a store's guests should stop: it was interrupted
/// ([`InterruptHandle`]) or its epoch deadline has passed. For host functions
/// that wait (sleeps, polls, blocking reads) while they borrow the store's data:
/// they take a probe from [`crate::Caller::interrupt_probe`] first and look at it
/// between slices of their wait. Cheap to clone, `Send` and `Sync`.
#[derive(Clone)]
pub struct InterruptProbe {
    signals: Arc<Signals>,
}

impl std::fmt::Debug for InterruptProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterruptProbe").field("interrupted", &self.is_interrupted()).finish()
    }
}

impl InterruptProbe {
    pub(crate) fn new(signals: Arc<Signals>) -> InterruptProbe {
        InterruptProbe { signals }
    }

    /// Whether the store was interrupted or the engine's epoch has reached the
    /// store's deadline: a waiting host function should end its wait and return
    /// (then [`crate::Caller::check_interrupt`] says whether the call ends).
    pub fn is_interrupted(&self) -> bool {
        self.signals.should_stop()
    }
}

/// What a store's epoch deadline callback ([`Store::epoch_deadline_callback`])
/// decides when the deadline is reached, as Wasmtime's `UpdateDeadline`
/// (returning an error instead ends the call with that error).
///
/// Wasmtime's `Yield(ticks)` and `YieldCustom` are left out: they suspend the
/// guest to let an async executor run other tasks, which needs calls that are
/// futures (Wasmtime's `call_async` on a fiber stack); Carnac's calls are
/// synchronous, and in a synchronous call Wasmtime answers `Yield` with a
/// trap. An embedder that shares threads between stores bounds each call with
/// `Continue` and returns to its own scheduler between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateDeadline {
    /// Keep running, with a new deadline this many ticks after the current epoch.
    Continue(u64),
    /// Stop the guest with [`TrapKind::Interrupted`], leaving the deadline as it
    /// is (the same as returning that trap as the callback's error).
    Interrupt,
}

/// A store's epoch deadline callback.
pub(crate) type DeadlineCallback<T> = Box<dyn FnMut(&mut Store<T>) -> Result<UpdateDeadline, Error> + Send + Sync>;

impl StoreInner {
    /// After automatic tiering compiled a module (the global tier-up
    /// generation moved on): gives the references of that module's functions
    /// in this store their compiled code, and refreshes the imported-function
    /// references in every context block, so that compiled callers reach them
    /// directly instead of through the runtime. Cheap to call: one load when
    /// nothing changed.
    #[cfg(carnac_compiled)]
    #[inline]
    pub(crate) fn refresh_func_refs(&mut self) {
        let generation = crate::compile::tier::generation();
        if generation != self.tier_generation {
            self.tier_generation = generation;
            self.refresh_func_refs_slow();
        }
    }

    #[cfg(carnac_compiled)]
    #[cold]
    fn refresh_func_refs_slow(&mut self) {
        for (f, r) in self.funcs.iter().zip(self.func_refs.iter_mut()) {
            if let FuncKind::Wasm { instance, def_index } = f.kind {
                if r.wasm_call.is_null() {
                    r.wasm_call = self.instances[instance as usize].module.wasm_call(def_index);
                }
            }
        }
        for inst in &mut self.instances {
            let offsets = &inst.module.vm_offsets;
            for (i, &f) in inst.funcs[..inst.module.info.num_imported_funcs as usize].iter().enumerate() {
                inst.vmctx.write(offsets.imported_func(i as u32), self.func_refs[f as usize]);
            }
        }
    }

    /// Adds a function to the store; returns its index.
    pub fn push_func(&mut self, entity: FuncEntity, func_ref: VMFuncRef) -> u32 {
        self.funcs.push(entity);
        self.func_refs.push(VMFuncRef { store_index: self.funcs.len() as u32 - 1, ..func_ref });
        self.store_ctx.func_refs = self.func_refs.as_ptr();
        self.funcs.len() as u32 - 1
    }

    /// New global cells holding `values`; returns the first (the others follow it).
    pub fn new_global_cells(&mut self, values: impl ExactSizeIterator<Item = u128>) -> *mut u128 {
        let cells: Box<[std::cell::UnsafeCell<u128>]> = values.map(std::cell::UnsafeCell::new).collect();
        let first = cells.as_ptr() as *mut u128;
        self.global_cells.push(cells);
        first
    }

    /// The type of store function `func`.
    pub fn func_ty(&self, func: u32) -> &FuncType {
        match &self.funcs[func as usize].kind {
            FuncKind::Wasm { instance, def_index } => {
                let info = &self.instances[*instance as usize].module.info;
                info.func_type(info.num_imported_funcs + def_index)
            }
            FuncKind::Host { index, .. } => &self.host_types[*index as usize],
        }
    }

    /// Asks the limiter whether one memory or table may grow (`own`, its own
    /// check) and, if so, whether the store may hold `bytes` more in all. Nothing
    /// is counted here: the caller adds to `committed` once the growth happened.
    fn may_grow(
        &mut self,
        limiter: Option<&mut (dyn ResourceLimiter + '_)>,
        own: impl FnOnce(&mut dyn ResourceLimiter) -> Result<bool, Trap>,
        bytes: usize,
    ) -> Result<bool, Trap> {
        let Some(limiter) = limiter else { return Ok(true) };
        let Some(desired) = self.committed.checked_add(bytes) else { return Ok(false) };
        Ok(own(limiter)? && limiter.store_growing(self.committed, desired)?)
    }

    /// Allocates a memory of type `ty`, asking the limiter for its initial size.
    pub fn new_memory(
        &mut self,
        limiter: Option<&mut (dyn ResourceLimiter + '_)>,
        ty: MemoryType,
        image: Option<&std::sync::Arc<crate::runtime::memory::MemoryImage>>,
    ) -> Result<u32, Error> {
        let most = limiter.as_deref().map_or(DEFAULT_MEMORY_LIMIT, |l| l.memories());
        if self.memories.len() >= most {
            return Err(Error::Limit(format!("the store already holds {most} memories, its limit")));
        }
        let bytes = (ty.limits.min as usize).saturating_mul(WASM_PAGE);
        let max = ty.limits.max.map(|p| (p as usize).saturating_mul(WASM_PAGE));
        if !self.may_grow(limiter, |l| l.memory_growing(0, bytes, max), bytes)? {
            return Err(Error::Limit(format!(
                "memory of {} ({bytes} bytes) is over the store's limits",
                crate::types::count(ty.limits.min, "page")
            )));
        }
        // Memories that compiled code may access (now or, tiering, later) have
        // its guard region. Compiled stores mark the written-chunk map as the
        // interpreter's do.
        let config = crate::runtime::shared::memory_config(&self.engine);
        let memory = if ty.shared {
            // Defined by an instance of this store, counted against it; shared
            // with the stores that import it.
            StoreMemory::Shared(SharedMemory::create(&self.engine, ty, image)?)
        } else {
            StoreMemory::Owned(LinearMemory::new(ty, config, image).map_err(Error::Limit)?)
        };
        self.memories.push(memory);
        self.committed += bytes;
        Ok(self.memories.len() as u32 - 1)
    }

    /// Holds a clone of `memory` (an instance of this store imports it): its own
    /// store counted it, so no limiter is asked.
    pub fn push_shared_memory(&mut self, memory: &SharedMemory) -> u32 {
        self.memories.push(StoreMemory::Shared(memory.clone()));
        self.memories.len() as u32 - 1
    }

    /// Allocates a table of type `ty` filled with the raw reference `init`,
    /// asking the limiter for its initial size.
    pub fn new_table(
        &mut self,
        limiter: Option<&mut (dyn ResourceLimiter + '_)>,
        ty: TableType,
        init: u64,
    ) -> Result<u32, Error> {
        let most = limiter.as_deref().map_or(DEFAULT_TABLE_LIMIT, |l| l.tables());
        if self.tables.len() >= most {
            return Err(Error::Limit(format!("the store already holds {most} tables, its limit")));
        }
        let n = ty.limits.min;
        let too_big = || Error::Limit(format!("table of {}", crate::types::count(n, "element")));
        if n > u32::MAX as u64 || ty.limits.max.is_some_and(|m| m < n) {
            return Err(too_big());
        }
        let bytes = n as usize * TABLE_ELEMENT_BYTES;
        if !self.may_grow(limiter, |l| l.table_growing(0, n, ty.limits.max), bytes)? {
            let n = crate::types::count(n, "element");
            return Err(Error::Limit(format!("table of {n} ({bytes} bytes) is over the store's limits")));
        }
        let elems = table_elements(n as usize, init).ok_or_else(too_big)?;
        self.tables.push(TableEntity::new(ty, elems));
        self.committed += bytes;
        Ok(self.tables.len() as u32 - 1)
    }

    /// Grows memory `mem` by `delta` pages, asking the limiter; returns the old
    /// size, `None` if it may not grow, or the limiter's trap.
    pub fn grow_memory(
        &mut self,
        limiter: Option<&mut (dyn ResourceLimiter + '_)>,
        mem: u32,
        delta: u64,
    ) -> Result<Option<u64>, Trap> {
        let m = &self.memories[mem as usize];
        if delta == 0 {
            return Ok(Some(m.size_pages()));
        }
        // Past the memory's own maximum it fails whatever the limiter says.
        let Some(new) = m.size_pages().checked_add(delta).filter(|&n| n <= m.max_pages()) else { return Ok(None) };
        let (current, desired) = (m.len(), new as usize * WASM_PAGE);
        let max = m.ty().limits.max.map(|p| (p as usize).saturating_mul(WASM_PAGE));
        if !self.may_grow(limiter, |l| l.memory_growing(current, desired, max), desired - current)? {
            return Ok(None);
        }
        // A shared memory may have grown on another thread since `current` was
        // read: it then grows from its size at the time, by `delta` all the same,
        // and this store counts the `delta` pages its guest asked for.
        let Some(old) = self.memories[mem as usize].grow(delta) else { return Ok(None) };
        self.committed += delta as usize * WASM_PAGE;
        Ok(Some(old))
    }

    /// Grows table `table` by `delta` elements filled with `init`; returns the
    /// old size, `None` if it may not grow, or the limiter's trap.
    pub fn grow_table(
        &mut self,
        limiter: Option<&mut (dyn ResourceLimiter + '_)>,
        table: u32,
        delta: u64,
        init: u64,
    ) -> Result<Option<u64>, Trap> {
        let t = &self.tables[table as usize];
        let old = t.elems.len() as u64;
        let Some(new) = old.checked_add(delta) else { return Ok(None) };
        let ty_max = t.ty.limits.max;
        if new > ty_max.unwrap_or(u32::MAX as u64).min(u32::MAX as u64) {
            return Ok(None);
        }
        let bytes = delta as usize * TABLE_ELEMENT_BYTES;
        if delta > 0 && !self.may_grow(limiter, |l| l.table_growing(old, new, ty_max), bytes)? {
            return Ok(None);
        }
        let t = &mut self.tables[table as usize];
        if t.elems.try_reserve(delta as usize).is_err() {
            return Ok(None);
        }
        t.elems.resize(new as usize, init);
        t.sync();
        self.committed += bytes;
        Ok(Some(old))
    }
}

/// `n` table elements set to `init`, or `None` when the host cannot allocate
/// them. Null elements (0) come from zeroed allocation, so the pages of a large
/// table are committed only as elements are written: a module declaring many
/// big tables takes address space, not memory.
fn table_elements(n: usize, init: u64) -> Option<Vec<u64>> {
    if init != 0 || n == 0 {
        let mut elems = Vec::new();
        elems.try_reserve_exact(n).ok()?;
        elems.resize(n, init);
        return Some(elems);
    }
    let layout = std::alloc::Layout::array::<u64>(n).ok()?;
    // SAFETY: the layout has a non-zero size (n > 0). A non-null result is an
    // allocation of the global allocator with this layout, room for n `u64`s,
    // all zero bytes, which are valid `u64`s: what `Vec::from_raw_parts` needs
    // for length and capacity n.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout) as *mut u64;
        (!p.is_null()).then(|| Vec::from_raw_parts(p, n, n))
    }
}

/// All runtime state of one isolated unit of work, plus the embedder's data `T`.
/// Dropping the store frees everything it owns.
pub struct Store<T> {
    pub(crate) inner: StoreInner,
    pub(crate) hosts: Vec<HostFunc<T>>,
    limiter: Option<Limiter<T>>,
    /// Runs when the epoch deadline is reached (`None`: trap).
    epoch_callback: Option<DeadlineCallback<T>>,
    data: T,
}

impl<T> Store<T> {
    /// An empty store of `engine`, holding the embedder's `data`.
    pub fn new(engine: &Engine, data: T) -> Store<T> {
        let mut store = Store {
            inner: StoreInner {
                id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                engine: engine.clone(),
                funcs: Vec::new(),
                host_types: Vec::new(),
                memories: Vec::new(),
                tables: Vec::new(),
                globals: Vec::new(),
                global_cells: Vec::new(),
                instances: Vec::new(),
                tags: Vec::new(),
                func_refs: Vec::new(),
                #[cfg(carnac_compiled)]
                tier_generation: crate::compile::tier::generation(),
                store_ctx: Box::new(VMStoreContext {
                    stack_limit: 0,
                    fuel: 0,
                    func_refs: std::ptr::null(),
                    interrupted: std::ptr::null(),
                    epoch: std::ptr::null(),
                    epoch_check: std::ptr::null(),
                }),
                externs: ExternHeap::default(),
                gc_heap: GcHeap::default(),
                gc_collect_level: 1,
                committed: 0,
                reentry: 0,
                stack_base: 0,
                stack: take_pooled_stack(),
                signals: Arc::new(Signals {
                    interrupted: AtomicBool::new(false),
                    check: AtomicU64::new(u64::MAX),
                    deadline: AtomicU64::new(u64::MAX),
                    epoch: engine.config().epoch_interruption.then(|| engine.epoch().clone()),
                }),
            },
            hosts: Vec::new(),
            limiter: None,
            epoch_callback: None,
            data,
        };
        let inner = &mut store.inner;
        inner.store_ctx.interrupted = &inner.signals.interrupted;
        inner.store_ctx.epoch_check = &inner.signals.check;
        inner.store_ctx.epoch = inner.signals.epoch.as_deref().unwrap_or(&NO_EPOCH);
        store
    }

    /// The store's engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The embedder's data.
    pub fn data(&self) -> &T {
        &self.data
    }

    /// The embedder's data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.data
    }

    pub(crate) fn inner_and_data_mut(&mut self) -> (&mut StoreInner, &mut T) {
        (&mut self.inner, &mut self.data)
    }

    /// Drops the store, returning the embedder's data.
    pub fn into_data(self) -> T {
        self.data
    }

    /// Installs a limiter that lives in the store's data, as Wasmtime's
    /// `Store::limiter` does: `store.limiter(|data| &mut data.limits)`. It is
    /// consulted whenever a memory or table is created or grows and when an
    /// instance is created, and the embedder can inspect it afterwards (e.g. a
    /// limiter that records the peak it allowed).
    pub fn limiter(&mut self, limiter: impl (FnMut(&mut T) -> &mut dyn ResourceLimiter) + Send + 'static) {
        self.limiter = Some(Limiter::InData(Box::new(limiter)));
    }

    /// Installs a limiter the store owns (for a limiter that needs no access
    /// afterwards, e.g. [`StoreLimits`]).
    pub fn set_limiter(&mut self, limiter: impl ResourceLimiter + 'static) {
        self.limiter = Some(Limiter::Owned(Box::new(limiter)));
    }

    /// The store's state and its limiter, borrowed apart.
    pub(crate) fn inner_and_limiter(&mut self) -> (&mut StoreInner, Option<&mut (dyn ResourceLimiter + '_)>) {
        let limiter: Option<&mut (dyn ResourceLimiter + '_)> = match &mut self.limiter {
            None => None,
            Some(Limiter::Owned(l)) => Some(&mut **l),
            Some(Limiter::InData(f)) => Some(f(&mut self.data)),
        };
        (&mut self.inner, limiter)
    }

    /// A handle that interrupts this store's guests from another thread. An
    /// error when the engine cannot interrupt guests: it needs
    /// [`crate::Config::interruptible`] or [`crate::Config::epoch_interruption`]
    /// (without them guest code has no checks, and an interrupt would do nothing).
    pub fn interrupt_handle(&self) -> Result<InterruptHandle, Error> {
        let config = self.inner.engine.config();
        if !config.interruptible && !config.epoch_interruption {
            return Err(Error::usage(
                "interrupts are not enabled in this engine's Config (Config::interruptible or epoch_interruption)",
            ));
        }
        Ok(InterruptHandle { signals: self.inner.signals.clone() })
    }

    /// Clears an interrupt ([`InterruptHandle::interrupt`]), so that the store
    /// runs guests normally again; does nothing when it was not interrupted.
    /// Interrupts stay until cleared: a store is never cleared implicitly.
    pub fn clear_interrupt(&mut self) {
        self.inner.signals.reset();
    }

    /// Sets the epoch deadline to `ticks_beyond_current` ticks after the engine's
    /// current epoch, as Wasmtime's `Store::set_epoch_deadline`: once
    /// [`Engine::increment_epoch`] has been called that many times, the store's
    /// guests run the deadline callback (by default they trap with
    /// [`TrapKind::Interrupted`]) at their next function entry or loop header.
    /// A deadline that was reached stays reached: set a new one before calling
    /// into the store again. Until one is set a store has no deadline (unlike
    /// Wasmtime, whose stores start with a deadline already reached). Has no
    /// effect unless the engine has [`crate::Config::epoch_interruption`].
    pub fn set_epoch_deadline(&mut self, ticks_beyond_current: u64) {
        if let Some(now) = self.inner.signals.epoch_now() {
            self.inner.signals.set_deadline(now.saturating_add(ticks_beyond_current));
        }
    }

    /// Calls `callback` when the epoch deadline is reached, as Wasmtime's
    /// `Store::epoch_deadline_callback`: it gets the store (its data, its
    /// functions) and returns [`UpdateDeadline::Continue`]`(ticks)` to keep the
    /// guest running with a new deadline that many ticks after the current
    /// epoch (a guest waiting in WASI, e.g. asleep, goes on waiting),
    /// [`UpdateDeadline::Interrupt`] to trap, or an error, which ends the guest
    /// call: the caller gets it back as the call's error (an [`Error::Trap`] as
    /// it is; any other error as a `HostError` trap whose
    /// [`Trap::downcast_host`] gives back the [`Error`]). Replaces any earlier
    /// callback or [`Store::epoch_deadline_trap`].
    pub fn epoch_deadline_callback(
        &mut self,
        callback: impl FnMut(&mut Store<T>) -> Result<UpdateDeadline, Error> + Send + Sync + 'static,
    ) {
        self.epoch_callback = Some(Box::new(callback));
    }

    /// Restores the default behaviour at the epoch deadline, as Wasmtime's
    /// `Store::epoch_deadline_trap`: the guest traps with [`TrapKind::Interrupted`].
    pub fn epoch_deadline_trap(&mut self) {
        self.epoch_callback = None;
    }

    /// The slow path of the interpreter's epoch check (and of
    /// [`crate::Caller::check_interrupt`]): the store was interrupted (trap), or
    /// the epoch reached the deadline (run the callback), or neither any more.
    pub(crate) fn deadline_reached(&mut self) -> Result<(), Trap> {
        let signals = self.inner.signals.clone();
        if signals.interrupted.load(Ordering::SeqCst) {
            return Err(Trap::new(TrapKind::Interrupted));
        }
        let Some(now) = signals.epoch_now() else { return Ok(()) };
        if now < signals.deadline.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Some(mut callback) = self.epoch_callback.take() else { return Err(Trap::new(TrapKind::Interrupted)) };
        // A panicking callback stays installed too: the panic goes on to the
        // caller, and the store keeps what its embedder configured.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(self)));
        // Unless the callback installed another one.
        if self.epoch_callback.is_none() {
            self.epoch_callback = Some(callback);
        }
        match result.unwrap_or_else(|payload| std::panic::resume_unwind(payload)) {
            Ok(UpdateDeadline::Continue(ticks)) => {
                self.set_epoch_deadline(ticks);
                Ok(())
            }
            Ok(UpdateDeadline::Interrupt) => Err(Trap::new(TrapKind::Interrupted)),
            Err(e) => Err(Trap::from(e)),
        }
    }

    /// Frees the store's extern references and GC objects (structs and
    /// arrays, see [`crate::StructRef`]) that nothing refers to any more
    /// (see [`crate::ExternRef`] and [`crate::RootScope`]), as Wasmtime's
    /// `Store::gc`. The store also collects by itself when its references have
    /// doubled since the last collection. Does nothing while wasm is running in
    /// the store (from a host function): the guest's frames may hold
    /// references, and the collector cannot see them.
    pub fn gc(&mut self) {
        self.inner.collect_externs();
    }

    /// Counts of the store's GC heap (the GC proposal's struct and array
    /// objects): objects held, their bytes, collections so far.
    pub fn gc_stats(&self) -> crate::GcStats {
        self.inner.gc_heap.stats()
    }

    /// Sets the remaining fuel. Errors when the engine does not meter fuel.
    pub fn set_fuel(&mut self, fuel: u64) -> Result<(), crate::Error> {
        if !self.inner.engine.config().consume_fuel {
            return Err(crate::Error::usage("fuel is not enabled in this engine's Config"));
        }
        self.inner.store_ctx.fuel = fuel;
        Ok(())
    }

    /// The remaining fuel. Errors when the engine does not meter fuel.
    pub fn get_fuel(&self) -> Result<u64, crate::Error> {
        if !self.inner.engine.config().consume_fuel {
            return Err(crate::Error::usage("fuel is not enabled in this engine's Config"));
        }
        Ok(self.inner.store_ctx.fuel)
    }
}

impl<T> std::fmt::Debug for Store<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("id", &self.inner.id).finish_non_exhaustive()
    }
}

/// Anything that gives shared access to a store: `Store<T>`, `&Store<T>`, `&mut Store<T>`, `Caller<T>`.
pub trait AsContext {
    /// The type of the store's embedder data.
    type Data;
    /// The store.
    fn as_context(&self) -> &Store<Self::Data>;
}

/// Anything that gives exclusive access to a store.
pub trait AsContextMut: AsContext {
    /// The store, mutably.
    fn as_context_mut(&mut self) -> &mut Store<Self::Data>;
}

impl<T> AsContext for Store<T> {
    type Data = T;
    fn as_context(&self) -> &Store<T> {
        self
    }
}
impl<T> AsContextMut for Store<T> {
    fn as_context_mut(&mut self) -> &mut Store<T> {
        self
    }
}
impl<S: AsContext + ?Sized> AsContext for &S {
    type Data = S::Data;
    fn as_context(&self) -> &Store<S::Data> {
        (**self).as_context()
    }
}
impl<S: AsContext + ?Sized> AsContext for &mut S {
    type Data = S::Data;
    fn as_context(&self) -> &Store<S::Data> {
        (**self).as_context()
    }
}
impl<S: AsContextMut + ?Sized> AsContextMut for &mut S {
    fn as_context_mut(&mut self) -> &mut Store<S::Data> {
        (**self).as_context_mut()
    }
}
