//! The per-instance context block that every tier reads: one flat `#[repr(C)]`
//! allocation per instance, at a stable address for the instance's life.
//!
//! Why a flat block: compiled code cannot call into Rust to find a global or a
//! memory's length; it needs them at a fixed offset from one pointer it is
//! given (`vmctx`), the way Wasmtime's `VMContext` works. The interpreter reads
//! the same cells through the same pointers, so a value written by one tier is
//! the value the other reads: there is one runtime data model, not one per tier.
//!
//! What it holds, and what it must not: pointers to state the *store* owns
//! (memory definitions, table definitions, global cells), never the state
//! itself, so an imported memory or global is the exporter's own cell, and the
//! store may keep its entity vectors growable. Every pointee has a stable
//! address (boxed) for as long as the store lives.
//!
//! Layout (offsets in bytes; `P` = pointer size; see [`VMOffsets`]):
//! ```text
//!   0      store: *mut VMStoreContext   per-store state: stack limit, fuel, interrupt, func refs
//!   P      builtins: *const Builtins     runtime functions compiled code calls (memory.grow, ...)
//!   2P     type_ids: *const u32          engine-wide id of each of the module's types
//!   3P     func_indices: *const u32      store index of each of the instance's functions
//!   4P     instance: u32                 the instance's index in its store (+ padding)
//!   5P     imported_funcs: [VMFuncRef; num_imported_funcs]
//!          memories: [*mut VMMemoryDef; num_memories]
//!          tables:   [*mut VMTableDef; num_tables]
//!          globals:  [*mut u128; num_globals]      each global's value cell
//! ```
//!
//! Raw values (what slots, cells and tables hold): i32 zero-extended to 64 bits,
//! floats as their bits, v128 in a `u128` (two 64-bit slots, low half first),
//! references as a store index plus one (0 is null).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// A linear memory as compiled code sees it. The base never changes (the
/// memory's region is reserved once); `len` (bytes) changes when it grows.
///
/// `len` is atomic (the same layout as a `usize`, so compiled code reads it as
/// a plain word): a shared memory's definition is read by every thread that
/// runs an instance importing it while one of them may grow it. Rust code reads
/// an unshared memory's length with a `Relaxed` load (only its own store's
/// thread ever writes it); a shared memory's growth publishes the new length
/// with `Release` once the pages are accessible, and its readers use `Acquire`
/// ([`VMMemoryDef::len_for`]), so a thread that sees the new length also sees
/// the pages mapped.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct VMMemoryDef {
    pub base: *mut u8,
    pub len: AtomicUsize,
}

impl VMMemoryDef {
    /// The length in bytes of a memory that is `shared` or not (see the type's docs).
    #[inline]
    pub fn len_for(&self, shared: bool) -> usize {
        self.len.load(if shared { Ordering::Acquire } else { Ordering::Relaxed })
    }
}

/// A table as compiled code sees it: its raw elements (see the module docs)
/// and its length in elements. Both change when the table grows.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct VMTableDef {
    pub base: *mut u64,
    pub len: usize,
}

/// A function reference, one shape for every tier (what `call_indirect` and
/// calls to imports read).
///
/// `wasm_call` is native code with the wasm calling convention
/// (`CallConv::Tail`, `(vmctx, params...) -> results`) to be called with
/// `vmctx`; it is null for functions that have no such code (host functions,
/// interpreted functions): callers then go through [`Builtins::call_store_func`]
/// with `store_index`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct VMFuncRef {
    pub wasm_call: *const u8,
    pub vmctx: *mut VMContext,
    /// The engine-wide id of the function's type (`ModuleInfo::type_ids`).
    pub type_id: u32,
    /// The function's index in its store.
    pub store_index: u32,
}

impl VMFuncRef {
    pub const NULL: VMFuncRef = VMFuncRef {
        wasm_call: std::ptr::null(),
        vmctx: std::ptr::null_mut(),
        type_id: u32::MAX,
        store_index: u32::MAX,
    };
}

/// Per-store state that compiled code reads on hot paths; boxed in the store.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct VMStoreContext {
    /// The lowest stack address wasm code may use: each compiled prologue
    /// traps with `StackExhausted` below it.
    pub stack_limit: usize,
    /// Remaining fuel (see `Config::consume_fuel`).
    pub fuel: u64,
    /// The store's function references, indexed by store function index
    /// (refreshed whenever the store's array moves).
    pub func_refs: *const VMFuncRef,
    /// The store's interrupt flag (`Signals::interrupted`).
    pub interrupted: *const AtomicBool,
    /// The engine's epoch and the store's check word (see `Signals`).
    pub epoch: *const AtomicU64,
    pub epoch_check: *const AtomicU64,
}

/// Offsets of [`VMStoreContext`]'s fields.
pub(crate) mod store_offsets {
    use super::VMStoreContext;
    pub const STACK_LIMIT: i32 = std::mem::offset_of!(VMStoreContext, stack_limit) as i32;
    pub const FUEL: i32 = std::mem::offset_of!(VMStoreContext, fuel) as i32;
    pub const FUNC_REFS: i32 = std::mem::offset_of!(VMStoreContext, func_refs) as i32;
    pub const INTERRUPTED: i32 = std::mem::offset_of!(VMStoreContext, interrupted) as i32;
    pub const EPOCH: i32 = std::mem::offset_of!(VMStoreContext, epoch) as i32;
    pub const EPOCH_CHECK: i32 = std::mem::offset_of!(VMStoreContext, epoch_check) as i32;
}

/// The opaque type of a context block (it is variable-sized; see the module docs).
#[repr(C)]
pub(crate) struct VMContext {
    _opaque: [u8; 0],
}

/// Status a fallible builtin returns: 0 when it succeeded. Anything else means
/// it left its trap in the current activation; compiled code then executes a
/// trap with [`TRAP_PENDING`]'s code and the unwinder picks the recorded trap up.
pub(crate) type Status = u32;

/// The runtime functions compiled code calls, in one table (so code never
/// embeds their addresses). All are `extern "C"`, take the caller's `vmctx`
/// first, and index memories, tables, data and element segments in the calling
/// instance's own index spaces. Addresses and lengths are wasm `u32`s.
#[repr(C)]
pub(crate) struct Builtins {
    /// `memory.grow`: the old size in pages, -1 when refused, -2 when a limiter
    /// trapped (trap pending).
    pub memory_grow: unsafe extern "C" fn(vmctx: *mut VMContext, memory: u32, delta: u32) -> i64,
    pub memory_fill: unsafe extern "C" fn(vmctx: *mut VMContext, memory: u32, dst: u32, val: u32, len: u32) -> Status,
    pub memory_copy: unsafe extern "C" fn(
        vmctx: *mut VMContext,
        dst_memory: u32,
        dst: u32,
        src_memory: u32,
        src: u32,
        len: u32,
    ) -> Status,
    pub memory_init:
        unsafe extern "C" fn(vmctx: *mut VMContext, memory: u32, data: u32, dst: u32, src: u32, len: u32) -> Status,
    pub data_drop: unsafe extern "C" fn(vmctx: *mut VMContext, data: u32),
    /// `table.grow`: the old length, -1 when refused, -2 when a limiter trapped.
    pub table_grow: unsafe extern "C" fn(vmctx: *mut VMContext, table: u32, init: u64, delta: u32) -> i64,
    pub table_fill: unsafe extern "C" fn(vmctx: *mut VMContext, table: u32, dst: u32, val: u64, len: u32) -> Status,
    pub table_copy: unsafe extern "C" fn(
        vmctx: *mut VMContext,
        dst_table: u32,
        dst: u32,
        src_table: u32,
        src: u32,
        len: u32,
    ) -> Status,
    pub table_init:
        unsafe extern "C" fn(vmctx: *mut VMContext, table: u32, elem: u32, dst: u32, src: u32, len: u32) -> Status,
    pub elem_drop: unsafe extern "C" fn(vmctx: *mut VMContext, elem: u32),
    /// Calls store function `store_index` (a host or interpreted function):
    /// `slots` holds the raw parameters on entry and the raw results on return,
    /// and has room for the larger of the two (a v128 takes two slots).
    pub call_store_func: unsafe extern "C" fn(vmctx: *mut VMContext, store_index: u32, slots: *mut u64) -> Status,
    /// The interrupt flag was seen set or the epoch deadline passed: decides
    /// (deadline callback) whether to go on (0) or trap.
    pub deadline: unsafe extern "C" fn(vmctx: *mut VMContext) -> Status,
    /// Fuel ran out: always traps with `OutOfFuel` (status nonzero).
    pub out_of_fuel: unsafe extern "C" fn(vmctx: *mut VMContext) -> Status,
    /// `memory.atomic.notify` at effective address `addr` (index plus static
    /// offset): the number of waiters woken, or -1 when it trapped (trap pending).
    pub memory_atomic_notify: unsafe extern "C" fn(vmctx: *mut VMContext, memory: u32, addr: u64, count: u32) -> i64,
    /// `memory.atomic.wait32`: 0 (woken), 1 (not equal), 2 (timed out), or -1
    /// when it trapped (trap pending). `timeout` in nanoseconds, negative: none.
    pub memory_atomic_wait32:
        unsafe extern "C" fn(vmctx: *mut VMContext, memory: u32, addr: u64, expected: u32, timeout: i64) -> i64,
    /// `memory.atomic.wait64`, as `memory_atomic_wait32`.
    pub memory_atomic_wait64:
        unsafe extern "C" fn(vmctx: *mut VMContext, memory: u32, addr: u64, expected: u64, timeout: i64) -> i64,
    /// `memory.grow` of a 64-bit memory (memory64): an i64 delta.
    pub memory_grow64: unsafe extern "C" fn(vmctx: *mut VMContext, memory: u32, delta: u64) -> i64,
    /// `memory.fill` of a 64-bit memory: i64 address and length.
    pub memory_fill64: unsafe extern "C" fn(vmctx: *mut VMContext, memory: u32, dst: u64, val: u32, len: u64) -> Status,
    /// `memory.copy` when either memory is 64-bit: each operand zero-extended
    /// from its index type by the caller.
    pub memory_copy64: unsafe extern "C" fn(
        vmctx: *mut VMContext,
        dst_memory: u32,
        dst: u64,
        src_memory: u32,
        src: u64,
        len: u64,
    ) -> Status,
    /// `memory.init` of a 64-bit memory: an i64 destination.
    pub memory_init64:
        unsafe extern "C" fn(vmctx: *mut VMContext, memory: u32, data: u32, dst: u64, src: u32, len: u32) -> Status,
    /// Runs defined function `def_index` of the caller's instance in the
    /// interpreter (a function the compiled tier left interpreted: see
    /// `compile::translate::interpreted_only`); `slots` as for `call_store_func`.
    pub call_interpreted: unsafe extern "C" fn(vmctx: *mut VMContext, def_index: u32, slots: *mut u64) -> Status,
    /// `call_indirect` to a non-final type (GC) whose callee's type id differs:
    /// 1 when the callee's type declares the expected one as a supertype, else 0.
    pub func_subtype: unsafe extern "C" fn(vmctx: *mut VMContext, actual: u32, expected: u32) -> u32,
}

/// Offsets of the fixed header of a [`VMContext`].
pub(crate) mod header {
    const P: i32 = std::mem::size_of::<usize>() as i32;
    pub const STORE: i32 = 0;
    pub const BUILTINS: i32 = P;
    pub const TYPE_IDS: i32 = 2 * P;
    pub const FUNC_INDICES: i32 = 3 * P;
    pub const INSTANCE: i32 = 4 * P;
    pub const SIZE: i32 = 5 * P;
}

/// Where each part of one module's context blocks lies (the same for every
/// instance of the module).
#[derive(Debug, Clone, Copy)]
pub(crate) struct VMOffsets {
    pub num_imported_funcs: u32,
    pub num_memories: u32,
    pub num_tables: u32,
    pub num_globals: u32,
}

impl VMOffsets {
    const P: u32 = std::mem::size_of::<usize>() as u32;
    const FUNC_REF: u32 = std::mem::size_of::<VMFuncRef>() as u32;

    pub fn new(info: &crate::module::ModuleInfo) -> VMOffsets {
        VMOffsets {
            num_imported_funcs: info.num_imported_funcs,
            num_memories: info.memories.len() as u32,
            num_tables: info.tables.len() as u32,
            num_globals: info.globals.len() as u32,
        }
    }

    /// The [`VMFuncRef`] of imported function `i`.
    pub fn imported_func(&self, i: u32) -> u32 {
        header::SIZE as u32 + i * Self::FUNC_REF
    }
    fn memories_start(&self) -> u32 {
        self.imported_func(self.num_imported_funcs)
    }
    /// The `*mut VMMemoryDef` of memory `i`.
    pub fn memory(&self, i: u32) -> u32 {
        self.memories_start() + i * Self::P
    }
    fn tables_start(&self) -> u32 {
        self.memory(self.num_memories)
    }
    /// The `*mut VMTableDef` of table `i`.
    pub fn table(&self, i: u32) -> u32 {
        self.tables_start() + i * Self::P
    }
    fn globals_start(&self) -> u32 {
        self.table(self.num_tables)
    }
    /// The `*mut u128` value cell of global `i`.
    pub fn global(&self, i: u32) -> u32 {
        self.globals_start() + i * Self::P
    }
    /// Bytes in a context block.
    pub fn size(&self) -> u32 {
        self.global(self.num_globals)
    }
}

/// Offsets inside a [`VMFuncRef`], [`VMMemoryDef`] and [`VMTableDef`].
pub(crate) mod field {
    use super::*;
    pub const FUNC_REF_WASM_CALL: i32 = std::mem::offset_of!(VMFuncRef, wasm_call) as i32;
    pub const FUNC_REF_VMCTX: i32 = std::mem::offset_of!(VMFuncRef, vmctx) as i32;
    pub const FUNC_REF_TYPE_ID: i32 = std::mem::offset_of!(VMFuncRef, type_id) as i32;
    pub const FUNC_REF_STORE_INDEX: i32 = std::mem::offset_of!(VMFuncRef, store_index) as i32;
    pub const FUNC_REF_SIZE: i32 = std::mem::size_of::<VMFuncRef>() as i32;
    pub const MEMORY_BASE: i32 = std::mem::offset_of!(VMMemoryDef, base) as i32;
    pub const MEMORY_LEN: i32 = std::mem::offset_of!(VMMemoryDef, len) as i32;
    pub const TABLE_BASE: i32 = std::mem::offset_of!(VMTableDef, base) as i32;
    pub const TABLE_LEN: i32 = std::mem::offset_of!(VMTableDef, len) as i32;
}

/// An instance's context block: an owned, zeroed, 16-byte-aligned allocation of
/// [`VMOffsets::size`] bytes that never moves. Filled once by instantiation
/// (only the store pointer is rewritten after that, see `Store`); read by both tiers.
pub(crate) struct VMContextBlock {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

// SAFETY: the block is plain data owned by one instance of one store; like the
// rest of the store, it is only touched by the thread that holds the store.
unsafe impl Send for VMContextBlock {}
unsafe impl Sync for VMContextBlock {}

impl VMContextBlock {
    pub fn new(offsets: &VMOffsets) -> VMContextBlock {
        let layout = std::alloc::Layout::from_size_align(offsets.size() as usize, 16).expect("context block layout");
        // SAFETY: the layout's size is at least the header's (non-zero).
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = std::ptr::NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        VMContextBlock { ptr, layout }
    }

    pub fn as_ptr(&self) -> *mut VMContext {
        self.ptr.as_ptr() as *mut VMContext
    }

    /// Writes `value` at byte `offset` of the block.
    ///
    /// # Panics
    /// When the value does not fit inside the block at `offset` (a layout bug).
    pub fn write<V: Copy>(&mut self, offset: u32, value: V) {
        let end = offset as usize + std::mem::size_of::<V>();
        assert!(end <= self.layout.size() && (offset as usize).is_multiple_of(std::mem::align_of::<V>()));
        // SAFETY: in bounds and aligned (checked above) in an allocation we own.
        unsafe { (self.ptr.as_ptr().add(offset as usize) as *mut V).write(value) }
    }

    /// Reads the value at byte `offset` of the block.
    pub fn read<V: Copy>(&self, offset: u32) -> V {
        let end = offset as usize + std::mem::size_of::<V>();
        assert!(end <= self.layout.size() && (offset as usize).is_multiple_of(std::mem::align_of::<V>()));
        // SAFETY: as in `write`; every field of the block is plain data, and
        // zeroed memory is a valid value of each type stored here.
        unsafe { (self.ptr.as_ptr().add(offset as usize) as *const V).read() }
    }
}

impl Drop for VMContextBlock {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed only here.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// The global value cells of the instance whose context block is `vmctx`,
/// indexed by global index (what the interpreter's global instructions read).
///
/// # Safety
/// `vmctx` is a live context block laid out by `offsets`.
pub(crate) unsafe fn global_cells(vmctx: *mut VMContext, offsets: &VMOffsets) -> *const *mut u128 {
    // SAFETY: the caller's guarantee; the globals array lies inside the block.
    unsafe { (vmctx as *const u8).add(offsets.global(0) as usize) as *const *mut u128 }
}
