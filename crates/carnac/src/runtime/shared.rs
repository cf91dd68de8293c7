//! Shared memories (the threads proposal): [`SharedMemory`], the public handle,
//! and [`StoreMemory`], what a store's memory vector holds (a memory it owns
//! alone, or its clone of a shared one).
//!
//! **Ownership.** A shared memory is a [`LinearMemory`] behind an `Arc`, not
//! owned by any store: the store of the instance that defines it and every
//! store that imports it keep a clone, and every instance's context block
//! points at its one [`VMMemoryDef`]. Its region is reserved for its maximum
//! (a shared type must have one) and never moves, so that definition, the base
//! and every host address inside stay valid for as long as any clone lives.
//!
//! **Growth** takes the memory's lock, makes the new pages accessible, then
//! publishes the new length with a `Release` store; every reader on another
//! thread loads it with `Acquire` (see [`VMMemoryDef`]). The length never
//! shrinks. The store whose guest (or whose host call) grows the memory counts
//! the growth against its own [`crate::ResourceLimiter`]; a host's
//! [`SharedMemory::grow`] asks no limiter.
//!
//! **End of life.** When the last clone goes, the region is reset through the
//! kernel (a shared memory is always *untracked*: several threads write it,
//! and its written-chunk map is not relied upon) and returned to the pool like
//! any dropped memory, since nothing can refer to it any more. Its
//! written-chunk map stays below its base (compiled code and the threaded
//! interpreter handlers mark it when the engine tracks writes, whatever the
//! memory): several threads may then store the same byte (1) in it at once,
//! through raw pointers, and nothing reads it while the memory lives. The
//! runtime's own out-of-line writes (atomics, bulk operations, host writes)
//! do not mark it.
//!
//! **Data races.** Plain loads and stores from several threads race exactly as
//! the guest program says: that is the proposal's semantics. Every access,
//! guest or host, goes through raw pointers into the mapped region (never a
//! Rust reference to its bytes). In optimised builds an aligned plain access
//! of up to 8 bytes (a `read_unaligned`/`write_unaligned` of a byte array, which
//! the compiler emits as one move) is a single machine access on x86-64 and
//! AArch64, so it does not tear; unoptimised builds may copy byte by byte.
//! Atomic instructions use `AtomicU8/16/32/64::from_ptr` (sequentially
//! consistent) on the checked address. The host's [`SharedMemory::read`] and
//! [`SharedMemory::write`] race with guest threads like plain guest accesses.
//!
//! This module owns neither the mapping (`runtime::memory` does) nor the wait
//! queues (`runtime::parking`).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::engine::Engine;
use crate::error::Error;
use crate::runtime::memory::{LinearMemory, WASM_PAGE};
use crate::runtime::parking;
pub use crate::runtime::parking::WaitResult;
use crate::runtime::trap::{Trap, TrapKind};
use crate::runtime::vmctx::VMMemoryDef;
use crate::types::{count, Limits, MemoryType};

/// A linear memory shared between threads (the threads proposal): not tied to
/// any store, usable from every store of its engine at once. As Wasmtime's
/// `SharedMemory`.
///
/// A module that defines a shared memory (`(memory 1 4 shared)`) exports it as
/// [`crate::Extern::SharedMemory`] ([`crate::Instance::get_shared_memory`]); a
/// host creates one with [`SharedMemory::new`] and gives it to modules that
/// import it through a [`crate::Linker`] (`linker.define("env", "memory",
/// memory.clone())`), in as many stores and threads as it likes.
/// [`crate::Instance::get_memory`] returns `None` for a shared memory, as in
/// Wasmtime: a [`crate::Memory`] hands out plain slices of its bytes tied to a
/// store's borrow, which other threads' writes would make unsound.
///
/// Cloning is cheap (an `Arc`); the memory lives until its last clone, and
/// every store holding it, is gone. `Send + Sync`.
///
/// ```
/// use carnac::{Engine, Linker, MemoryType, Module, SharedMemory, Store};
///
/// let engine = Engine::default();
/// let memory = SharedMemory::new(&engine, MemoryType::shared(1, 2))?;
/// let module = Module::new(&engine, r#"(module
///     (import "env" "memory" (memory 1 2 shared))
///     (func (export "bump") (result i32)
///         (i32.atomic.rmw.add (i32.const 8) (i32.const 1))))"#)?;
/// let mut linker = Linker::new(&engine);
/// linker.define("env", "memory", memory.clone())?;
/// let threads: Vec<_> = (0..4)
///     .map(|_| {
///         let (engine, linker, module) = (engine.clone(), linker.clone(), module.clone());
///         std::thread::spawn(move || {
///             let mut store = Store::new(&engine, ());
///             let instance = linker.instantiate(&mut store, &module).unwrap();
///             let bump = instance.get_typed_func::<(), i32>(&store, "bump").unwrap();
///             for _ in 0..100 {
///                 bump.call(&mut store, ()).unwrap();
///             }
///         })
///     })
///     .collect();
/// for t in threads {
///     t.join().unwrap();
/// }
/// let mut word = [0; 4];
/// memory.read(8, &mut word)?;
/// assert_eq!(u32::from_le_bytes(word), 400);
/// # Ok::<(), carnac::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedMemory(Arc<SharedInner>);

struct SharedInner {
    /// The memory; the lock serialises growth (the only mutation of the
    /// memory's own state; its bytes are accessed through `def`'s base).
    memory: Mutex<LinearMemory>,
    /// The memory's definition at its stable address (inside `memory`'s box).
    def: *const VMMemoryDef,
    /// The declared type (its minimum is the initial size).
    ty: MemoryType,
    max_pages: u64,
    engine: Engine,
}

// SAFETY: the memory's state changes only under its mutex; its definition's
// length is atomic and its base never changes; its bytes are accessed through
// raw pointers only, with the racy semantics the threads proposal gives plain
// accesses (see the module docs).
unsafe impl Send for SharedInner {}
// SAFETY: as above.
unsafe impl Sync for SharedInner {}

impl std::fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMemory").field("pages", &self.size()).field("max_pages", &self.0.max_pages).finish()
    }
}

/// Two handles are equal when they are the same memory.
impl PartialEq for SharedMemory {
    fn eq(&self, other: &SharedMemory) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for SharedMemory {}

impl SharedMemory {
    /// A new shared memory of type `ty` for stores of `engine`. Errors when `ty`
    /// is not shared ([`MemoryType::shared`]), has no maximum, or its minimum
    /// exceeds its maximum, when the engine has threads disabled
    /// ([`crate::Config::wasm_threads`]), and when the host cannot reserve it.
    pub fn new(engine: &Engine, ty: MemoryType) -> Result<SharedMemory, Error> {
        if !engine.config().wasm_features().contains(wasmparser::WasmFeatures::THREADS) {
            return Err(Error::usage("shared memories need the threads proposal (`Config::wasm_threads`)"));
        }
        if !ty.shared {
            return Err(Error::usage("SharedMemory::new needs a shared memory type (`MemoryType::shared`)"));
        }
        Self::create(engine, ty, None)
    }

    /// The shared memory of type `ty` (a validated shared type) a module defines,
    /// starting as `image` if it has one.
    pub(crate) fn create(
        engine: &Engine,
        ty: MemoryType,
        image: Option<&Arc<crate::runtime::memory::MemoryImage>>,
    ) -> Result<SharedMemory, Error> {
        let max_pages = match ty.limits.max {
            Some(max) => max.min(crate::runtime::memory::MAX_PAGES),
            None => return Err(Error::usage("a shared memory must have a maximum size")),
        };
        let (tracked, guard) = memory_config(engine);
        let memory = LinearMemory::new(ty, tracked, guard, image).map_err(Error::Limit)?;
        let def = memory.def_ptr() as *const VMMemoryDef;
        Ok(SharedMemory(Arc::new(SharedInner {
            memory: Mutex::new(memory),
            def,
            ty,
            max_pages,
            engine: engine.clone(),
        })))
    }

    fn def(&self) -> &VMMemoryDef {
        // SAFETY: `def` points into the box `memory` owns, which lives as long as
        // `self.0`; its fields are a never-changing base and an atomic length.
        unsafe { &*self.0.def }
    }

    pub(crate) fn def_ptr(&self) -> *mut VMMemoryDef {
        self.0.def as *mut VMMemoryDef
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.0.engine
    }

    /// The memory's type: shared, its minimum being its current size in pages.
    pub fn ty(&self) -> MemoryType {
        MemoryType { limits: Limits { min: self.size(), max: self.0.ty.limits.max }, shared: true }
    }

    /// The current size in 64 KiB pages.
    pub fn size(&self) -> u64 {
        (self.data_size() / WASM_PAGE) as u64
    }

    /// The current size in bytes. Another thread may grow the memory at any
    /// time: the size only ever increases.
    pub fn data_size(&self) -> usize {
        self.def().len_for(true)
    }

    /// The memory's bytes as Wasmtime's `SharedMemory::data` gives them: cells
    /// that other threads may write at any time (read and write them through
    /// raw pointers, racing like guest code, or with atomics). The slice has the
    /// size the memory had when this was called; it stays valid while `self`
    /// lives (a shared memory never moves or shrinks).
    pub fn data(&self) -> &[UnsafeCell<u8>] {
        let def = self.def();
        // SAFETY: [base, base + len) is mapped read-write for as long as the memory
        // lives (it never shrinks or moves); `UnsafeCell` makes no promise that the
        // bytes do not change.
        unsafe { std::slice::from_raw_parts(def.base as *const UnsafeCell<u8>, def.len_for(true)) }
    }

    /// Grows the memory by `delta` pages and returns its previous size in pages
    /// (Wasmtime's `SharedMemory::grow`); every thread sees the new size. Errors
    /// beyond the maximum, or when the host cannot commit the pages. No store's
    /// limiter is asked.
    pub fn grow(&self, delta: u64) -> Result<u64, Error> {
        let mut m = self.0.memory.lock().unwrap_or_else(|e| e.into_inner());
        let cur = m.size_pages();
        let grown =
            |what: &str| format!("memory of {} cannot grow by {}: {what}", count(cur, "page"), count(delta, "page"));
        if cur.checked_add(delta).is_none_or(|n| n > self.0.max_pages) {
            return Err(Error::usage(grown(&format!("beyond its maximum of {}", count(self.0.max_pages, "page")))));
        }
        m.grow(delta).ok_or_else(|| Error::Limit(grown("the host cannot commit the memory")))
    }

    /// Grows as `memory.grow` does (the old size, or `None`); the caller counted it.
    pub(crate) fn grow_raw(&self, delta: u64) -> Option<u64> {
        self.0.memory.lock().unwrap_or_else(|e| e.into_inner()).grow(delta)
    }

    pub(crate) fn max_pages(&self) -> u64 {
        self.0.max_pages
    }

    /// The host address of bytes `[offset, offset + n)`, or an error when they are
    /// not all inside the memory.
    fn range(&self, offset: usize, n: usize) -> Result<*mut u8, Error> {
        let def = self.def();
        match offset.checked_add(n) {
            // SAFETY: offset + n <= len: inside the mapped memory.
            Some(end) if end <= def.len_for(true) => Ok(unsafe { def.base.add(offset) }),
            _ => Err(Error::usage("out of bounds memory access")),
        }
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`; errors when out of bounds.
    /// Races with guest threads' writes like a guest's plain loads.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        let src = self.range(offset, buf.len())?;
        // SAFETY: the source lies inside the memory (checked); `buf` is a distinct
        // host buffer. The copy goes through raw pointers (see the module docs).
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `buf` to `offset`; errors when out of bounds. Races with guest
    /// threads like a guest's plain stores.
    pub fn write(&self, offset: usize, buf: &[u8]) -> Result<(), Error> {
        let dst = self.range(offset, buf.len())?;
        // SAFETY: as in `read`, the other way round.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), dst, buf.len()) };
        Ok(())
    }

    /// `memory.atomic.notify` from the host: wakes at most `count` threads
    /// waiting on the 4-byte cell at `addr` and returns how many it woke. Traps
    /// when `addr` is out of bounds or not a multiple of 4.
    pub fn atomic_notify(&self, addr: u64, count: u32) -> Result<u32, Trap> {
        let cell = atomic_cell(self.def(), true, addr, 4).map_err(Trap::new)?;
        Ok(parking::notify(cell as usize, count))
    }

    /// `memory.atomic.wait32` from the host: blocks the calling thread while the
    /// 4-byte cell at `addr` holds `expected`, until a notify wakes it or
    /// `timeout` passes (`None`: no timeout). Traps when `addr` is out of bounds
    /// or not a multiple of 4.
    pub fn atomic_wait32(&self, addr: u64, expected: u32, timeout: Option<Duration>) -> Result<WaitResult, Trap> {
        let cell = atomic_cell(self.def(), true, addr, 4).map_err(Trap::new)?;
        // SAFETY: `cell` is an aligned address inside the memory, which `self` keeps mapped.
        let still = || unsafe { AtomicU32::from_ptr(cell as *mut u32) }.load(Ordering::SeqCst) == expected;
        parking::wait(cell as usize, still, timeout, || Ok::<(), Trap>(()))
    }

    /// `memory.atomic.wait64` from the host: as [`SharedMemory::atomic_wait32`]
    /// for the 8-byte cell at `addr` (a multiple of 8).
    pub fn atomic_wait64(&self, addr: u64, expected: u64, timeout: Option<Duration>) -> Result<WaitResult, Trap> {
        let cell = atomic_cell(self.def(), true, addr, 8).map_err(Trap::new)?;
        // SAFETY: as in `atomic_wait32`, for an 8-byte aligned cell.
        let still = || unsafe { AtomicU64::from_ptr(cell as *mut u64) }.load(Ordering::SeqCst) == expected;
        parking::wait(cell as usize, still, timeout, || Ok::<(), Trap>(()))
    }
}

/// The host address of the `size`-byte cell at effective address `addr` of the
/// memory `def` (`shared` or not) for an atomic access: traps
/// `MemoryOutOfBounds` when it is not inside the memory, then `UnalignedAtomic`
/// when `addr` is not a multiple of `size`.
pub(crate) fn atomic_cell(def: &VMMemoryDef, shared: bool, addr: u64, size: u64) -> Result<*mut u8, TrapKind> {
    let end = addr.checked_add(size).ok_or(TrapKind::MemoryOutOfBounds)?;
    if end > def.len_for(shared) as u64 {
        return Err(TrapKind::MemoryOutOfBounds);
    }
    if !addr.is_multiple_of(size) {
        return Err(TrapKind::UnalignedAtomic);
    }
    // SAFETY: addr + size <= len: inside the mapped memory.
    Ok(unsafe { def.base.add(addr as usize) })
}

/// `memory.atomic.notify` on the memory `def` (`shared` or not), as both tiers
/// run it: wakes at most `count` waiters on the 4-byte cell at effective
/// address `addr` (index plus offset); bounds, then alignment, are checked. An
/// unshared memory has no waiters: 0.
///
/// # Safety
/// `def` is the live definition of a memory that stays mapped during the call.
pub(crate) unsafe fn memory_atomic_notify(
    def: *const VMMemoryDef,
    shared: bool,
    addr: u64,
    count: u32,
) -> Result<u32, TrapKind> {
    // SAFETY: the caller's guarantee.
    let cell = atomic_cell(unsafe { &*def }, shared, addr, 4)?;
    Ok(if shared { parking::notify(cell as usize, count) } else { 0 })
}

/// `memory.atomic.wait32` on the memory `def`, as both tiers run it: checks
/// bounds, alignment, then that the memory is shared (`ExpectedSharedMemory`);
/// returns 1 at once when the cell at `addr` does not hold `expected`, else
/// parks the thread until a notify (0) or `timeout_ns` nanoseconds (negative:
/// no timeout) pass (2). `poll` is called every few milliseconds while parked;
/// the store's interrupt and epoch checks go there, and its error ends the wait.
///
/// # Safety
/// `def` is the live definition of a memory that stays mapped during the call
/// (a shared memory does for as long as the calling store holds it).
pub(crate) unsafe fn memory_atomic_wait32(
    def: *const VMMemoryDef,
    shared: bool,
    addr: u64,
    expected: u32,
    timeout_ns: i64,
    poll: impl FnMut() -> Result<(), Trap>,
) -> Result<u32, Trap> {
    // SAFETY: the caller's guarantee.
    let cell = atomic_cell(unsafe { &*def }, shared, addr, 4).map_err(Trap::new)?;
    if !shared {
        return Err(Trap::new(TrapKind::ExpectedSharedMemory));
    }
    // SAFETY: an aligned cell inside the memory, which stays mapped (above).
    let still = || unsafe { AtomicU32::from_ptr(cell as *mut u32) }.load(Ordering::SeqCst) == expected;
    Ok(parking::wait(cell as usize, still, timeout_from_ns(timeout_ns), poll)?.code())
}

/// `memory.atomic.wait64`: as [`memory_atomic_wait32`] for the 8-byte cell at `addr`.
///
/// # Safety
/// As [`memory_atomic_wait32`].
pub(crate) unsafe fn memory_atomic_wait64(
    def: *const VMMemoryDef,
    shared: bool,
    addr: u64,
    expected: u64,
    timeout_ns: i64,
    poll: impl FnMut() -> Result<(), Trap>,
) -> Result<u32, Trap> {
    // SAFETY: the caller's guarantee.
    let cell = atomic_cell(unsafe { &*def }, shared, addr, 8).map_err(Trap::new)?;
    if !shared {
        return Err(Trap::new(TrapKind::ExpectedSharedMemory));
    }
    // SAFETY: an aligned cell inside the memory, which stays mapped (above).
    let still = || unsafe { AtomicU64::from_ptr(cell as *mut u64) }.load(Ordering::SeqCst) == expected;
    Ok(parking::wait(cell as usize, still, timeout_from_ns(timeout_ns), poll)?.code())
}

/// A timeout in nanoseconds as the wait instructions take it: negative waits forever.
fn timeout_from_ns(ns: i64) -> Option<Duration> {
    u64::try_from(ns).ok().map(Duration::from_nanos)
}

/// The write tracking and guard region memories of `engine` get: memories that
/// compiled code may access (now or, tiering, later) have its guard region.
pub(crate) fn memory_config(engine: &Engine) -> (bool, Option<u64>) {
    let config = engine.config();
    let compiled = config.strategy != crate::Strategy::Interpreter;
    let guard = (compiled && config.signals_based_traps).then_some(config.memory_guard_size);
    (config.track_memory_writes, guard)
}

/// One of a store's memories: its own, or its clone of a shared one.
pub(crate) enum StoreMemory {
    Owned(LinearMemory),
    Shared(SharedMemory),
}

impl StoreMemory {
    pub fn is_shared(&self) -> bool {
        matches!(self, StoreMemory::Shared(_))
    }

    /// The shared memory, if it is one.
    pub fn shared(&self) -> Option<&SharedMemory> {
        match self {
            StoreMemory::Shared(m) => Some(m),
            StoreMemory::Owned(_) => None,
        }
    }

    /// The memory a [`crate::Memory`] handle names: never a shared one (they are
    /// exported as [`crate::SharedMemory`]).
    ///
    /// # Panics
    /// On a shared memory (a bug in the crate: no handle is ever made for one).
    pub fn owned(&self) -> &LinearMemory {
        match self {
            StoreMemory::Owned(m) => m,
            StoreMemory::Shared(_) => unreachable!("a Memory handle never names a shared memory"),
        }
    }

    /// As [`StoreMemory::owned`], mutably.
    pub fn owned_mut(&mut self) -> &mut LinearMemory {
        match self {
            StoreMemory::Owned(m) => m,
            StoreMemory::Shared(_) => unreachable!("a Memory handle never names a shared memory"),
        }
    }

    fn def(&self) -> &VMMemoryDef {
        match self {
            // SAFETY: the definition lives inside the memory, borrowed here.
            StoreMemory::Owned(m) => unsafe { &*m.def_ptr() },
            StoreMemory::Shared(m) => m.def(),
        }
    }

    pub fn def_ptr(&self) -> *mut VMMemoryDef {
        match self {
            StoreMemory::Owned(m) => m.def_ptr(),
            StoreMemory::Shared(m) => m.def_ptr(),
        }
    }

    pub fn base(&self) -> *mut u8 {
        self.def().base
    }

    /// The length in bytes (`Acquire` for a shared memory).
    pub fn len(&self) -> usize {
        self.def().len_for(self.is_shared())
    }

    pub fn len_ptr(&self) -> *const AtomicUsize {
        &self.def().len
    }

    pub fn size_pages(&self) -> u64 {
        (self.len() / WASM_PAGE) as u64
    }

    pub fn max_pages(&self) -> u64 {
        match self {
            StoreMemory::Owned(m) => m.max_pages(),
            StoreMemory::Shared(m) => m.max_pages(),
        }
    }

    /// The declared type (limits as declared, and shared-ness).
    pub fn ty(&self) -> MemoryType {
        match self {
            StoreMemory::Owned(m) => m.ty,
            StoreMemory::Shared(m) => m.0.ty,
        }
    }

    /// Grows by `delta` pages: the old size, or `None` when it may not.
    pub fn grow(&mut self, delta: u64) -> Option<u64> {
        match self {
            StoreMemory::Owned(m) => m.grow(delta),
            StoreMemory::Shared(m) => m.grow_raw(delta),
        }
    }

    /// Copies `bytes` to `offset` (marking an owned memory's chunks); `false`
    /// (nothing written) when out of bounds.
    pub fn write(&mut self, offset: usize, bytes: &[u8]) -> bool {
        match self {
            StoreMemory::Owned(m) => m.write(offset, bytes),
            StoreMemory::Shared(m) => m.write(offset, bytes).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_memories_refuse_unshared_types_and_grow_in_place() {
        let engine = Engine::default();
        assert!(SharedMemory::new(&engine, MemoryType::new(1, Some(2))).is_err());
        let unbounded = MemoryType { limits: Limits { min: 1, max: None }, shared: true };
        assert!(SharedMemory::new(&engine, unbounded).is_err());
        let m = SharedMemory::new(&engine, MemoryType::shared(1, 3)).unwrap();
        let base = m.data().as_ptr();
        assert_eq!((m.size(), m.data_size()), (1, WASM_PAGE));
        m.write(WASM_PAGE - 2, &[7, 8]).unwrap();
        assert!(m.write(WASM_PAGE - 1, &[7, 8]).is_err());
        let other = m.clone();
        assert_eq!(other.grow(2).unwrap(), 1);
        assert_eq!(m.size(), 3);
        assert_eq!(m.data().as_ptr(), base, "a shared memory never moves");
        assert!(m.grow(1).is_err());
        let mut buf = [0; 3];
        m.read(WASM_PAGE - 2, &mut buf).unwrap();
        assert_eq!(buf, [7, 8, 0]);
        assert_eq!(m.ty(), MemoryType::shared(3, 3));
    }

    #[test]
    fn atomic_cells_check_bounds_then_alignment() {
        let engine = Engine::default();
        let m = SharedMemory::new(&engine, MemoryType::shared(1, 1)).unwrap();
        let len = WASM_PAGE as u64;
        assert_eq!(m.atomic_notify(len, 1).unwrap_err().kind(), TrapKind::MemoryOutOfBounds);
        assert_eq!(m.atomic_notify(len - 2, 1).unwrap_err().kind(), TrapKind::MemoryOutOfBounds);
        assert_eq!(m.atomic_notify(2, 1).unwrap_err().kind(), TrapKind::UnalignedAtomic);
        assert_eq!(m.atomic_notify(4, 1).unwrap(), 0);
        assert_eq!(m.atomic_wait32(8, 1, None).unwrap(), WaitResult::Mismatch);
        let t = Some(Duration::from_millis(1));
        assert_eq!(m.atomic_wait64(8, 0, t).unwrap(), WaitResult::TimedOut);
        assert_eq!(m.atomic_wait64(4, 0, t).unwrap_err().kind(), TrapKind::UnalignedAtomic);
    }
}
