//! The GC proposal's heap: a store's struct and array objects, their layout,
//! allocation with a byte budget, and the tracing collector that frees the
//! objects nothing reaches (cycles included).
//!
//! **Objects.** Each object lives in a slot of the store's [`GcHeap`]: a
//! header (its canonical type id, a mark bit, the slot's generation) and its
//! fields. A struct's fields are 64-bit cells (a `v128` field takes two,
//! packed `i8`/`i16` fields hold their low bits in one cell), up to four of
//! them in the slot itself (no allocation of their own); an array's
//! elements are stored at their own width (`i8` arrays one byte each, `i16`
//! two, `i32`/`f32` four, `i64`/`f64`/references eight, `v128` sixteen). A
//! reference in wasm is the slot and its generation (`runtime::gc_ref`); a
//! freed slot's generation changes, so a stale reference is an error, never
//! another object. Objects never move. Everything is safe Rust over `Vec`s.
//!
//! **Roots.** Host handles ([`crate::StructRef`], [`crate::ArrayRef`],
//! [`crate::AnyRef`]) are rooted in the same scopes as extern references
//! (`runtime::gc`'s [`crate::RootScope`] and [`crate::OwnedRooted`]: each scope
//! also records the length of this heap's LIFO root list). Then everything
//! wasm can reach: the elements of every non-function table, the values of
//! reference globals, passive element segments, the fields of every exception
//! object (exception handling's arena, conservatively: reachable or not), and
//! the interpreter's value stack of the running activation. That stack has no type map, so it is
//! scanned **conservatively**: any slot whose bits decode to a live object of
//! the same generation is a root. Objects never move, so a false root (an
//! integer that happens to look like a reference, or a dead slot not
//! overwritten yet) only keeps garbage alive a little longer.
//!
//! **When it runs.** An allocation collects first when the bytes allocated
//! since the last collection exceed `max(1 MiB, live bytes after the last
//! collection, 32 bytes per slot the last collection visited)`, where the
//! slots visited are the heap's slots (the sweep walks each, free or not) and
//! the root slots scanned (tables, globals, segments, the value stack). So the
//! collector's work (marking linear in the live objects plus the roots,
//! sweeping linear in the slots) is paid for by at least as many bytes of
//! allocation: a heap that once held a million objects, or a store with a
//! table of ten million references, does not sweep or scan them all for every
//! megabyte a small live set allocates. Inside wasm it runs only when the
//! running interpreter activation is the store's only wasm activation
//! (`reentry == 1`, so no compiled frame, which cannot be scanned, and no
//! suspended interpreter stack is live; or `reentry == 2` when the host
//! entered an interpreted function of a compiled module through its stub,
//! whose frame holds nothing); otherwise the collection waits for
//! the next allocation where that holds, or for the return to the host (a
//! pending collection runs at the next call from the host, as the extern
//! collector's). [`crate::Store::gc`] collects both heaps when no wasm runs.
//! So code that allocates while a compiled frame is live (a compiled
//! function that calls GC functions, which run interpreted), or under a
//! nested host→wasm re-entry, does not collect until it returns to the host:
//! under a tight budget it may trap with `out of GC heap memory` where the
//! same code called directly from the host would not.
//! The extern collector traces through live objects' reference fields (a
//! struct may hold an `externref`), and both heaps are collected together
//! whenever the extern heap is.
//!
//! **Limits.** Allocated bytes (a 32-byte header per object plus its fields)
//! count against the store's [`crate::ResourceLimiter::store_growing`]
//! budget (with [`crate::StoreLimits::memory_size`], linear memories, tables
//! and the GC heap share one budget), reserved in 1 MiB steps, and against
//! the heap's own cap ([`crate::ResourceLimiter::gc_heap_size`], 1 GiB by
//! default). An allocation past either, after a full collection, traps with
//! `out of GC heap memory`; one larger than the cap by itself (an array of
//! 2^32 - 1 `i64`s, 32 GiB) traps with `allocation size too large` at once,
//! without collecting or allocating.
//!
//! Must not touch: the type registry and subtyping (the GC type system's
//! modules), the extern heap's slots (only through its marking entry point).

use std::sync::Arc;

use crate::module::ConstNew;
use crate::runtime::gc::HostRoots;
use crate::runtime::gc_ref::{decode_object, encode_object, MAX_OBJECT_GEN};
use crate::runtime::store::{ResourceLimiter, StoreInner};
use crate::runtime::trap::{Trap, TrapKind};
use crate::types::{CompositeType, StorageType, ValType};

/// Bytes counted for an object besides its fields: what it really costs the
/// host, so that the budget holds for floods of small objects too: its slot
/// (`Entry`, with the object's header, its first four struct cells or its
/// body pointers), the allocator's overhead for a separately allocated body,
/// and its places in the free and work lists. A test checks it against
/// `size_of::<Entry>()`.
pub(crate) const HEADER_BYTES: usize = 96;
/// The fewest bytes allocated between two collections.
const MIN_THRESHOLD: usize = 1 << 20;
/// Bytes of allocation that pay for one slot a collection visits (see the
/// module docs).
const BYTES_PER_SLOT_VISITED: usize = 32;
/// The step in which the heap reserves bytes from the store's budget.
pub(crate) const RESERVE_STEP: usize = 1 << 20;
/// The GC heap's own cap unless the store's limiter sets one.
pub const DEFAULT_GC_HEAP_SIZE: usize = 1 << 30;
/// Most slots: a slot index plus one must fit in 32 bits.
const MAX_SLOTS: usize = u32::MAX as usize - 1;

/// How a field or an array element is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Storage {
    I8,
    I16,
    /// i32 or f32.
    I32,
    /// i64 or f64.
    I64,
    V128,
    /// A reference (raw bits: see `runtime::gc_ref`).
    Ref,
}

impl Storage {
    /// Bytes one element of an array of this storage takes.
    pub(crate) fn bytes(self) -> usize {
        match self {
            Storage::I8 => 1,
            Storage::I16 => 2,
            Storage::I32 => 4,
            Storage::I64 | Storage::Ref => 8,
            Storage::V128 => 16,
        }
    }

    /// 64-bit cells a struct field of this storage takes.
    pub(crate) fn cells(self) -> u32 {
        if self == Storage::V128 {
            2
        } else {
            1
        }
    }

    /// A value of the field's unpacked type reduced to what is stored (an
    /// `i8` field keeps the low 8 bits).
    #[inline]
    pub(crate) fn wrap(self, v: u128) -> u128 {
        match self {
            Storage::I8 => v & 0xff,
            Storage::I16 => v & 0xffff,
            Storage::I32 => v & 0xffff_ffff,
            Storage::I64 | Storage::Ref => v & u64::MAX as u128,
            Storage::V128 => v,
        }
    }

    /// A stored packed value as an i32, sign- or zero-extended (`_s`/`_u`
    /// reads); other storages are returned as they are.
    #[inline]
    pub(crate) fn extend(self, v: u128, signed: bool) -> u128 {
        match (self, signed) {
            (Storage::I8, true) => v as u8 as i8 as i32 as u32 as u128,
            (Storage::I16, true) => v as u16 as i16 as i32 as u32 as u128,
            _ => v,
        }
    }
}

/// A struct type's layout: its fields' storage and first cell.
#[derive(Debug)]
pub(crate) struct StructLayout {
    pub type_id: u32,
    pub fields: Box<[(Storage, u32)]>,
    /// Total cells.
    pub cells: u32,
    /// The cells holding references (what tracing looks at).
    pub refs: Box<[u32]>,
}

impl StructLayout {
    pub(crate) fn new(type_id: u32, fields: &[Storage]) -> StructLayout {
        let mut at = 0;
        let mut out = Vec::with_capacity(fields.len());
        let mut refs = Vec::new();
        for &s in fields {
            if s == Storage::Ref {
                refs.push(at);
            }
            out.push((s, at));
            at += s.cells();
        }
        StructLayout { type_id, fields: out.into(), cells: at, refs: refs.into() }
    }

    /// Bytes an object of this layout counts.
    pub(crate) fn size(&self) -> usize {
        HEADER_BYTES + self.cells as usize * 8
    }
}

/// What the instructions on objects of one type index need: a struct's
/// layout, an array's element storage, and the canonical type id.
#[derive(Debug, Clone)]
pub(crate) enum GcLayout {
    Struct(Arc<StructLayout>),
    Array {
        type_id: u32,
        storage: Storage,
    },
    /// A function type (no objects).
    Func,
}

impl GcLayout {
    pub(crate) fn as_struct(&self) -> &Arc<StructLayout> {
        match self {
            GcLayout::Struct(l) => l,
            _ => panic!("validated: a struct type index"),
        }
    }

    pub(crate) fn as_array(&self) -> (u32, Storage) {
        match self {
            GcLayout::Array { type_id, storage } => (*type_id, *storage),
            _ => panic!("validated: an array type index"),
        }
    }
}

/// How a field of storage type `t` is stored.
pub(crate) fn storage_of_type(t: &StorageType) -> Storage {
    match t {
        StorageType::I8 => Storage::I8,
        StorageType::I16 => Storage::I16,
        StorageType::ValType(ValType::I32 | ValType::F32) => Storage::I32,
        StorageType::ValType(ValType::I64 | ValType::F64) => Storage::I64,
        StorageType::ValType(ValType::V128) => Storage::V128,
        StorageType::ValType(ValType::Ref(_)) => Storage::Ref,
    }
}

/// The layout of type index `index` of a module.
pub(crate) fn layout_of(info: &crate::module::ModuleInfo, index: u32) -> GcLayout {
    let type_id = info.type_ids[index as usize];
    match &info.sub_types[index as usize] {
        CompositeType::Func(_) => GcLayout::Func,
        CompositeType::Struct(t) => {
            let fields: Vec<Storage> = t.fields().iter().map(|f| storage_of_type(f.element_type())).collect();
            GcLayout::Struct(Arc::new(StructLayout::new(type_id, &fields)))
        }
        CompositeType::Array(t) => GcLayout::Array { type_id, storage: storage_of_type(t.field_type().element_type()) },
    }
}

/// The layouts of every type index of a module.
pub(crate) fn module_layouts(info: &crate::module::ModuleInfo) -> Box<[GcLayout]> {
    (0..info.types.len() as u32).map(|i| layout_of(info, i)).collect()
}

/// An array's elements at their own width.
#[derive(Debug)]
pub(crate) enum ArrayData {
    I8(Vec<u8>),
    I16(Vec<u16>),
    I32(Vec<u32>),
    I64(Vec<u64>),
    V128(Vec<u128>),
    Ref(Vec<u64>),
}

impl ArrayData {
    /// `len` elements of `storage`, each `value` (already wrapped); `None`
    /// when the allocator refuses the memory (the bytes were within the
    /// store's budget, but the host has less: a trap, not an abort).
    fn filled(storage: Storage, value: u128, len: usize) -> Option<ArrayData> {
        fn filled<T: Copy>(value: T, len: usize) -> Option<Vec<T>> {
            let mut v = Vec::new();
            v.try_reserve_exact(len).ok()?;
            v.resize(len, value);
            Some(v)
        }
        Some(match storage {
            Storage::I8 => ArrayData::I8(filled(value as u8, len)?),
            Storage::I16 => ArrayData::I16(filled(value as u16, len)?),
            Storage::I32 => ArrayData::I32(filled(value as u32, len)?),
            Storage::I64 => ArrayData::I64(filled(value as u64, len)?),
            Storage::V128 => ArrayData::V128(filled(value, len)?),
            Storage::Ref => ArrayData::Ref(filled(value as u64, len)?),
        })
    }

    /// How its elements are stored.
    pub(crate) fn storage(&self) -> Storage {
        storage_of(self)
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            ArrayData::I8(v) => v.len(),
            ArrayData::I16(v) => v.len(),
            ArrayData::I32(v) => v.len(),
            ArrayData::I64(v) | ArrayData::Ref(v) => v.len(),
            ArrayData::V128(v) => v.len(),
        }
    }

    /// Element `i` (in bounds), zero-extended.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> u128 {
        match self {
            ArrayData::I8(v) => v[i] as u128,
            ArrayData::I16(v) => v[i] as u128,
            ArrayData::I32(v) => v[i] as u128,
            ArrayData::I64(v) | ArrayData::Ref(v) => v[i] as u128,
            ArrayData::V128(v) => v[i],
        }
    }

    /// Sets element `i` (in bounds), wrapping the value to its width.
    #[inline]
    pub(crate) fn set(&mut self, i: usize, x: u128) {
        match self {
            ArrayData::I8(v) => v[i] = x as u8,
            ArrayData::I16(v) => v[i] = x as u16,
            ArrayData::I32(v) => v[i] = x as u32,
            ArrayData::I64(v) | ArrayData::Ref(v) => v[i] = x as u64,
            ArrayData::V128(v) => v[i] = x,
        }
    }

    /// Sets elements `at..at + n` (in bounds) to `x`.
    pub(crate) fn fill(&mut self, at: usize, n: usize, x: u128) {
        match self {
            ArrayData::I8(v) => v[at..at + n].fill(x as u8),
            ArrayData::I16(v) => v[at..at + n].fill(x as u16),
            ArrayData::I32(v) => v[at..at + n].fill(x as u32),
            ArrayData::I64(v) | ArrayData::Ref(v) => v[at..at + n].fill(x as u64),
            ArrayData::V128(v) => v[at..at + n].fill(x),
        }
    }

    /// Copies `n` elements from `src_at` to `dst_at` within one array
    /// (overlap allowed: a memmove).
    pub(crate) fn copy_within(&mut self, dst_at: usize, src_at: usize, n: usize) {
        match self {
            ArrayData::I8(v) => v.copy_within(src_at..src_at + n, dst_at),
            ArrayData::I16(v) => v.copy_within(src_at..src_at + n, dst_at),
            ArrayData::I32(v) => v.copy_within(src_at..src_at + n, dst_at),
            ArrayData::I64(v) | ArrayData::Ref(v) => v.copy_within(src_at..src_at + n, dst_at),
            ArrayData::V128(v) => v.copy_within(src_at..src_at + n, dst_at),
        }
    }

    /// Sets elements from little-endian bytes (`array.new_data`,
    /// `array.init_data`): `bytes.len()` is a multiple of the element size and
    /// `at + bytes.len() / size` is in bounds.
    pub(crate) fn write_bytes(&mut self, at: usize, bytes: &[u8]) {
        match self {
            ArrayData::I8(v) => v[at..at + bytes.len()].copy_from_slice(bytes),
            ArrayData::I16(v) => {
                for (d, c) in v[at..].iter_mut().zip(bytes.chunks_exact(2)) {
                    *d = u16::from_le_bytes([c[0], c[1]]);
                }
            }
            ArrayData::I32(v) => {
                for (d, c) in v[at..].iter_mut().zip(bytes.chunks_exact(4)) {
                    *d = u32::from_le_bytes(c.try_into().expect("4 bytes"));
                }
            }
            ArrayData::I64(v) | ArrayData::Ref(v) => {
                for (d, c) in v[at..].iter_mut().zip(bytes.chunks_exact(8)) {
                    *d = u64::from_le_bytes(c.try_into().expect("8 bytes"));
                }
            }
            ArrayData::V128(v) => {
                for (d, c) in v[at..].iter_mut().zip(bytes.chunks_exact(16)) {
                    *d = u128::from_le_bytes(c.try_into().expect("16 bytes"));
                }
            }
        }
    }
}

/// Cells a struct keeps in its slot, without an allocation of its own.
const INLINE_CELLS: usize = 4;

/// A struct's cells: up to [`INLINE_CELLS`] in the slot itself (most
/// structs: no allocation per object, and tracing reads them where it reads
/// the slot), more in an allocation of their own.
#[derive(Debug)]
pub(crate) enum Cells {
    Inline([u64; INLINE_CELLS]),
    Boxed(Box<[u64]>),
}

impl Cells {
    /// `n` zero cells.
    fn zeroed(n: usize) -> Cells {
        if n <= INLINE_CELLS {
            Cells::Inline([0; INLINE_CELLS])
        } else {
            Cells::Boxed(vec![0; n].into_boxed_slice())
        }
    }

    #[inline]
    fn as_slice(&self) -> &[u64] {
        match self {
            Cells::Inline(a) => a,
            Cells::Boxed(b) => b,
        }
    }

    #[inline]
    fn as_mut_slice(&mut self) -> &mut [u64] {
        match self {
            Cells::Inline(a) => a,
            Cells::Boxed(b) => b,
        }
    }
}

/// What an object holds.
#[derive(Debug)]
pub(crate) enum Body {
    Struct { layout: Arc<StructLayout>, cells: Cells },
    Array(ArrayData),
}

/// One object: its canonical type id and its fields.
#[derive(Debug)]
pub(crate) struct Object {
    pub type_id: u32,
    pub body: Body,
}

impl Object {
    /// A struct of `layout` with field values `fields` (one per field, in
    /// field order, of the unpacked types).
    pub(crate) fn new_struct(layout: &Arc<StructLayout>, fields: impl IntoIterator<Item = u128>) -> Object {
        let mut cells = Cells::zeroed(layout.cells as usize);
        for (&(storage, at), v) in layout.fields.iter().zip(fields) {
            write_cell(cells.as_mut_slice(), storage, at, v);
        }
        Object { type_id: layout.type_id, body: Body::Struct { layout: layout.clone(), cells } }
    }

    /// An array of `len` elements of `storage`, each `value`; traps with
    /// "out of GC heap memory" if the host's allocator refuses it.
    pub(crate) fn new_array(type_id: u32, storage: Storage, value: u128, len: usize) -> Result<Object, Trap> {
        let data =
            ArrayData::filled(storage, storage.wrap(value), len).ok_or_else(|| Trap::new(TrapKind::OutOfGcMemory))?;
        Ok(Object { type_id, body: Body::Array(data) })
    }

    /// An array of `storage` holding `values` (traps as [`Object::new_array`]).
    pub(crate) fn array_from(
        type_id: u32,
        storage: Storage,
        values: impl ExactSizeIterator<Item = u128>,
    ) -> Result<Object, Trap> {
        let mut data = ArrayData::filled(storage, 0, values.len()).ok_or_else(|| Trap::new(TrapKind::OutOfGcMemory))?;
        for (i, v) in values.enumerate() {
            data.set(i, v);
        }
        Ok(Object { type_id, body: Body::Array(data) })
    }

    /// Bytes this object counts.
    pub(crate) fn size(&self) -> usize {
        match &self.body {
            Body::Struct { layout, .. } => layout.size(),
            Body::Array(a) => array_size(storage_of(a), a.len()).unwrap_or(usize::MAX),
        }
    }

    /// Struct field `field` (its first cell `at`, its storage), zero-extended.
    pub(crate) fn struct_get(&self, field: usize) -> Option<(Storage, u128)> {
        match &self.body {
            Body::Struct { layout, cells } => {
                let (storage, at) = *layout.fields.get(field)?;
                Some((storage, read_cell(cells.as_slice(), storage, at)))
            }
            Body::Array(_) => None,
        }
    }

    /// Sets struct field `field`; false when it is not a struct or has no such field.
    pub(crate) fn struct_set(&mut self, field: usize, v: u128) -> bool {
        match &mut self.body {
            Body::Struct { layout, cells } => match layout.fields.get(field) {
                Some(&(storage, at)) => {
                    write_cell(cells.as_mut_slice(), storage, at, v);
                    true
                }
                None => false,
            },
            Body::Array(_) => false,
        }
    }

    pub(crate) fn array(&self) -> Option<&ArrayData> {
        match &self.body {
            Body::Array(a) => Some(a),
            Body::Struct { .. } => None,
        }
    }

    pub(crate) fn array_mut(&mut self) -> Option<&mut ArrayData> {
        match &mut self.body {
            Body::Array(a) => Some(a),
            Body::Struct { .. } => None,
        }
    }

    /// The `k`th reference this object holds, if it holds that many.
    #[inline]
    fn ref_at(&self, k: usize) -> Option<u64> {
        match &self.body {
            Body::Struct { layout, cells } => layout.refs.get(k).map(|&at| cells.as_slice()[at as usize]),
            Body::Array(ArrayData::Ref(v)) => v.get(k).copied(),
            Body::Array(_) => None,
        }
    }

    /// Calls `f` with every reference this object holds.
    fn for_each_ref(&self, mut f: impl FnMut(u64)) {
        match &self.body {
            Body::Struct { layout, cells } => {
                let cells = cells.as_slice();
                for &at in layout.refs.iter() {
                    f(cells[at as usize]);
                }
            }
            Body::Array(ArrayData::Ref(v)) => v.iter().copied().for_each(f),
            Body::Array(_) => {}
        }
    }
}

fn storage_of(a: &ArrayData) -> Storage {
    match a {
        ArrayData::I8(_) => Storage::I8,
        ArrayData::I16(_) => Storage::I16,
        ArrayData::I32(_) => Storage::I32,
        ArrayData::I64(_) => Storage::I64,
        ArrayData::V128(_) => Storage::V128,
        ArrayData::Ref(_) => Storage::Ref,
    }
}

/// The GC heap's cap under `limiter` (its `gc_heap_size`, or the default):
/// what allocations and live exceptions are held to.
pub(crate) fn gc_heap_cap(limiter: Option<&(dyn ResourceLimiter + '_)>) -> usize {
    limiter.map_or(DEFAULT_GC_HEAP_SIZE, |l| l.gc_heap_size())
}

/// Bytes an array of `len` elements of `storage` counts; `None` when that
/// cannot be represented (the allocation is too large whatever the limits).
pub(crate) fn array_size(storage: Storage, len: usize) -> Option<usize> {
    len.checked_mul(storage.bytes())?.checked_add(HEADER_BYTES).filter(|&n| n <= isize::MAX as usize)
}

#[inline]
fn read_cell(cells: &[u64], storage: Storage, at: u32) -> u128 {
    let at = at as usize;
    match storage {
        Storage::V128 => cells[at] as u128 | (cells[at + 1] as u128) << 64,
        _ => cells[at] as u128,
    }
}

#[inline]
fn write_cell(cells: &mut [u64], storage: Storage, at: u32, v: u128) {
    let at = at as usize;
    let v = storage.wrap(v);
    cells[at] = v as u64;
    if storage == Storage::V128 {
        cells[at + 1] = (v >> 64) as u64;
    }
}

struct Entry {
    /// Changes when the slot's object is freed, so old references no longer match.
    gen: u32,
    /// Whether the slot is in the LIFO root list.
    lifo: bool,
    mark: bool,
    object: Option<Object>,
}

/// Counts of a store's GC heap, as [`crate::Store::gc_stats`] returns them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcStats {
    /// Objects in the heap (live, or garbage not collected yet).
    pub objects: usize,
    /// Bytes they count (headers and fields).
    pub bytes: usize,
    /// Collections of the GC heap so far.
    pub collections: u64,
    /// Objects freed by collections so far.
    pub freed: u64,
}

/// A store's GC objects, their free slots, host roots and byte counts.
pub(crate) struct GcHeap {
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// Bytes of the objects held (live or garbage).
    pub(crate) bytes: usize,
    /// Bytes reserved from the store's budget (`StoreInner::committed`):
    /// `bytes` rounded up to [`RESERVE_STEP`], or more.
    pub(crate) reserved: usize,
    /// Bytes allocated since the last collection.
    pub(crate) since: usize,
    /// `since` at which an allocation collects.
    pub(crate) threshold: usize,
    /// Root slots the last mark scanned (sets the next threshold).
    pub(crate) root_slots: usize,
    /// A collection was due while it could not run: the next call from the
    /// host runs it.
    pub(crate) pending: bool,
    /// The host's roots (LIFO scopes and owned handles).
    roots: HostRoots,
    /// Work list of the mark phase (kept to reuse its allocation).
    gray: Vec<u32>,
    /// The struct and array types of the modules instantiated in the store,
    /// by canonical id (what the host API reads fields as).
    types: std::collections::HashMap<u32, CompositeType>,
    collections: u64,
    freed: u64,
}

impl Default for GcHeap {
    fn default() -> GcHeap {
        GcHeap {
            entries: Vec::new(),
            free: Vec::new(),
            bytes: 0,
            reserved: 0,
            since: 0,
            threshold: MIN_THRESHOLD,
            root_slots: 0,
            pending: false,
            roots: HostRoots::default(),
            gray: Vec::new(),
            types: Default::default(),
            collections: 0,
            freed: 0,
        }
    }
}

impl GcHeap {
    pub(crate) fn stats(&self) -> GcStats {
        GcStats {
            objects: self.entries.len() - self.free.len(),
            bytes: self.bytes,
            collections: self.collections,
            freed: self.freed,
        }
    }

    /// Records the struct and array types of a module instantiated in the store.
    pub(crate) fn register_types(&mut self, info: &crate::module::ModuleInfo) {
        for (t, &id) in info.sub_types.iter().zip(&info.type_ids) {
            if !matches!(t, CompositeType::Func(_)) {
                self.types.entry(id).or_insert_with(|| t.clone());
            }
        }
    }

    /// Records the type of canonical id `id` (a host-made type).
    pub(crate) fn register_type(&mut self, id: u32, ty: CompositeType) {
        self.types.entry(id).or_insert(ty);
    }

    /// The struct or array type of canonical id `id`.
    pub(crate) fn type_of(&self, id: u32) -> Option<&CompositeType> {
        self.types.get(&id)
    }

    /// Whether the heap holds no slots at all (nothing to collect).
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Places `object` (counting `size` bytes) in a free slot; returns its raw
    /// reference. `None` when every slot index is taken.
    pub(crate) fn insert(&mut self, object: Object, size: usize) -> Option<u64> {
        self.bytes += size;
        self.since += size;
        if let Some(index) = self.free.pop() {
            let e = &mut self.entries[index as usize];
            e.object = Some(object);
            return Some(encode_object(index, e.gen));
        }
        if self.entries.len() >= MAX_SLOTS {
            self.bytes -= size;
            self.since -= size;
            return None;
        }
        self.entries.push(Entry { gen: 0, lifo: false, mark: false, object: Some(object) });
        Some(encode_object(self.entries.len() as u32 - 1, 0))
    }

    #[inline]
    fn entry(&self, raw: u64) -> Option<(u32, &Entry)> {
        let (index, gen) = decode_object(raw)?;
        let e = self.entries.get(index as usize)?;
        (e.gen == gen && e.object.is_some()).then_some((index, e))
    }

    /// The live object `raw` refers to.
    #[inline]
    pub(crate) fn get(&self, raw: u64) -> Option<&Object> {
        self.entry(raw)?.1.object.as_ref()
    }

    /// The live object `raw` refers to, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, raw: u64) -> Option<&mut Object> {
        let (index, gen) = decode_object(raw)?;
        let e = self.entries.get_mut(index as usize)?;
        if e.gen != gen {
            return None;
        }
        e.object.as_mut()
    }

    /// Two distinct live objects, mutably (for `array.copy` between arrays).
    pub(crate) fn get_two_mut(&mut self, a: u64, b: u64) -> Option<(&mut Object, &mut Object)> {
        let (ia, ga) = decode_object(a)?;
        let (ib, gb) = decode_object(b)?;
        if ia == ib {
            return None;
        }
        let (lo, hi) = (ia.min(ib) as usize, ia.max(ib) as usize);
        if hi >= self.entries.len() {
            return None;
        }
        let (left, right) = self.entries.split_at_mut(hi);
        let (el, eh) = (&mut left[lo], &mut right[0]);
        let (ea, eb) = if ia < ib { (el, eh) } else { (eh, el) };
        if ea.gen != ga || eb.gen != gb {
            return None;
        }
        Some((ea.object.as_mut()?, eb.object.as_mut()?))
    }

    /// The canonical type id of the live object `raw` refers to.
    pub(crate) fn type_id_of(&self, raw: u64) -> Option<u32> {
        Some(self.get(raw)?.type_id)
    }

    /// Whether `raw` refers to a live object.
    pub(crate) fn is_live(&self, raw: u64) -> bool {
        self.entry(raw).is_some()
    }

    /// Roots a live object in the current LIFO scope.
    pub(crate) fn root(&mut self, raw: u64) {
        if let Some((index, gen)) = decode_object(raw) {
            if let Some(e) = self.entries.get_mut(index as usize) {
                if e.gen == gen && e.object.is_some() {
                    self.roots.root(index, &mut e.lifo);
                }
            }
        }
    }

    #[inline]
    pub(crate) fn enter_scope(&self) -> usize {
        self.roots.enter_scope()
    }

    #[inline]
    pub(crate) fn exit_scope(&mut self, scope: usize) {
        let entries = &mut self.entries;
        self.roots.exit_scope(scope, |index| entries[index as usize].lifo = false);
    }

    /// Adds an owned root for a live object; it lasts while a clone of the
    /// returned token does.
    pub(crate) fn own(&mut self, raw: u64) -> Arc<()> {
        match decode_object(raw) {
            Some((index, _)) => self.roots.own(index),
            None => Arc::new(()),
        }
    }

    /// Marks (and queues for tracing) the object `raw` refers to, if it is a
    /// live one not marked yet: any bits may be passed (conservative roots).
    #[inline]
    pub(crate) fn mark_raw(&mut self, raw: u64) {
        if let Some((index, gen)) = decode_object(raw) {
            if let Some(e) = self.entries.get_mut(index as usize) {
                if e.gen == gen && e.object.is_some() && !e.mark {
                    e.mark = true;
                    self.gray.push(index);
                }
            }
        }
    }

    /// Marks the host roots (LIFO and owned).
    pub(crate) fn mark_host_roots(&mut self) {
        let (entries, gray) = (&mut self.entries, &mut self.gray);
        self.roots.for_each_live(|index| {
            let e = &mut entries[index as usize];
            if e.object.is_some() && !e.mark {
                e.mark = true;
                gray.push(index);
            }
        });
    }

    /// Traces from the marked objects through their reference fields until
    /// every reachable object is marked (an explicit work list: a list of a
    /// million objects needs no host stack).
    pub(crate) fn trace(&mut self) {
        while let Some(index) = self.gray.pop() {
            // One reference at a time (marking needs `&mut self`): the object
            // stays where it is, and its slot is only read.
            let mut k = 0;
            while let Some(raw) = self.entries[index as usize].object.as_ref().and_then(|o| o.ref_at(k)) {
                self.mark_raw(raw);
                k += 1;
            }
        }
    }

    /// Calls `f` with every reference held by a marked object (the extern
    /// collector's view of the GC heap, after [`GcHeap::trace`]).
    pub(crate) fn for_each_marked_ref(&self, mut f: impl FnMut(u64)) {
        for e in &self.entries {
            if e.mark {
                if let Some(o) = &e.object {
                    o.for_each_ref(&mut f);
                }
            }
        }
    }

    /// Frees every unmarked object, clears the marks and sets the next
    /// threshold; returns the objects freed.
    pub(crate) fn sweep(&mut self) -> usize {
        let mut freed = 0;
        for (index, e) in self.entries.iter_mut().enumerate() {
            if e.object.is_none() {
                continue;
            }
            if std::mem::take(&mut e.mark) {
                continue;
            }
            // Freed here, in one pass (objects own only plain data).
            if let Some(o) = e.object.take() {
                self.bytes -= o.size();
            }
            freed += 1;
            // A slot whose generation would leave its 30 bits is retired.
            if e.gen < MAX_OBJECT_GEN {
                e.gen += 1;
                self.free.push(index as u32);
            }
        }
        self.collections += 1;
        self.freed += freed as u64;
        self.since = 0;
        let visited = self.entries.len().saturating_add(self.root_slots);
        self.threshold = self.bytes.max(MIN_THRESHOLD).max(visited.saturating_mul(BYTES_PER_SLOT_VISITED));
        self.pending = false;
        freed
    }
}

/// The current lengths of both heaps' LIFO root lists: a root scope.
pub(crate) type RootMark = (usize, usize);

impl StoreInner {
    /// Enters a root scope of both heaps (see `runtime::gc`'s `RootScope`).
    #[inline]
    pub(crate) fn enter_root_scope(&self) -> RootMark {
        (self.externs.enter_scope(), self.gc_heap.enter_scope())
    }

    /// Ends a root scope entered with [`StoreInner::enter_root_scope`].
    #[inline]
    pub(crate) fn exit_root_scope(&mut self, (externs, gc): RootMark) {
        self.externs.exit_scope(externs);
        self.gc_heap.exit_scope(gc);
    }

    /// Makes room for an object of `size` bytes (already known to be
    /// representable): collects first when the allocations since the last
    /// collection call for it and a collection can run, and reserves the bytes
    /// from the heap's cap and the store's budget, collecting once more before
    /// giving up with `out of GC heap memory`. `stack`: the value stack of the
    /// running interpreter activation, when called from inside wasm (its slots
    /// are scanned conservatively); `None` from the host or a constant
    /// expression, where no collection runs here (one is left pending).
    pub(crate) fn gc_reserve(
        &mut self,
        mut limiter: Option<&mut (dyn ResourceLimiter + '_)>,
        size: usize,
        stack: Option<&[u64]>,
    ) -> Result<(), Trap> {
        // Only under the running interpreter activation, when it is the
        // store's only wasm activation (no compiled or suspended frames).
        let can_collect = stack.is_some() && self.reentry == self.gc_collect_level;
        let cap = gc_heap_cap(limiter.as_deref());
        if size > cap {
            // No collection can make room: refused at once, nothing allocated.
            return Err(Trap::new(TrapKind::AllocationTooLarge));
        }
        let mut collected = false;
        if self.gc_heap.since.saturating_add(size) > self.gc_heap.threshold {
            if can_collect {
                self.collect_gc_heap(stack);
                collected = true;
            } else {
                self.gc_heap.pending = true;
            }
        }
        loop {
            if self.try_reserve(limiter.as_deref_mut(), size, cap)? {
                return Ok(());
            }
            if collected || !can_collect {
                return Err(Trap::new(TrapKind::OutOfGcMemory));
            }
            self.collect_gc_heap(stack);
            collected = true;
        }
    }

    /// Reserves `size` more bytes within `cap` and the store's budget.
    fn try_reserve(
        &mut self,
        limiter: Option<&mut (dyn ResourceLimiter + '_)>,
        size: usize,
        cap: usize,
    ) -> Result<bool, Trap> {
        let heap = &mut self.gc_heap;
        let Some(need) = heap.bytes.checked_add(size).filter(|&n| n <= cap) else { return Ok(false) };
        if need <= heap.reserved {
            return Ok(true);
        }
        let new_reserved = need.div_ceil(RESERVE_STEP).saturating_mul(RESERVE_STEP).min(cap.max(need));
        let delta = new_reserved - heap.reserved;
        if let Some(limiter) = limiter {
            let Some(desired) = self.committed.checked_add(delta) else { return Ok(false) };
            if !limiter.store_growing(self.committed, desired)? {
                return Ok(false);
            }
        }
        self.committed += delta;
        self.gc_heap.reserved = new_reserved;
        Ok(true)
    }

    /// Marks every GC object reachable from the roots (see the module docs):
    /// host roots, tables, reference globals, element segments and, when
    /// given, an interpreter value stack scanned conservatively.
    fn mark_gc_heap(&mut self, stack: Option<&[u64]>) {
        let heap = &mut self.gc_heap;
        heap.mark_host_roots();
        let mut scanned = 0usize;
        for table in self.tables.iter().filter(|t| !t.ty.element.is_func_ref()) {
            scanned += table.elems.len();
            for &raw in &table.elems {
                heap.mark_raw(raw);
            }
        }
        for global in self.globals.iter().filter(|g| g.ty.content.is_ref() && !g.ty.content.is_func_ref()) {
            scanned += 1;
            heap.mark_raw(global.get() as u64);
        }
        for instance in &self.instances {
            for items in &instance.elems {
                scanned += items.len();
                for &raw in items.iter() {
                    heap.mark_raw(raw);
                }
            }
        }
        if let Some(stack) = stack {
            scanned += stack.len();
            for &raw in stack {
                heap.mark_raw(raw);
            }
        }
        // Exceptions (in the extern arena) may hold objects in their fields:
        // every exception's fields are roots, whether or not the exception is
        // reachable itself (decided by the extern collector, which runs only
        // when no wasm does), so an object only they hold lives until the
        // collection after its exception is freed.
        scanned += self.externs.for_each_exception_slot(|raw| heap.mark_raw(raw));
        heap.root_slots = scanned;
        heap.trace();
    }

    /// Collects the GC heap alone (see the module docs for when it may run),
    /// then gives back to the store's budget what it no longer needs.
    pub(crate) fn collect_gc_heap(&mut self, stack: Option<&[u64]>) {
        if self.gc_heap.is_empty() {
            return;
        }
        self.mark_gc_heap(stack);
        self.gc_heap.sweep();
        self.release_gc_reservation();
    }

    /// Marks the GC heap for a collection of both heaps (no wasm running);
    /// the extern collector then marks the references of the marked objects
    /// and calls [`StoreInner::finish_gc_heap`].
    pub(crate) fn mark_gc_heap_for_full_collection(&mut self) {
        if !self.gc_heap.is_empty() {
            self.mark_gc_heap(None);
        }
    }

    /// Sweeps the GC heap marked by [`StoreInner::mark_gc_heap_for_full_collection`].
    pub(crate) fn finish_gc_heap(&mut self) {
        if !self.gc_heap.is_empty() {
            self.gc_heap.sweep();
            self.release_gc_reservation();
        }
    }

    fn release_gc_reservation(&mut self) {
        let heap = &mut self.gc_heap;
        let keep = heap.bytes.div_ceil(RESERVE_STEP) * RESERVE_STEP;
        if keep < heap.reserved {
            self.committed -= heap.reserved - keep;
            heap.reserved = keep;
        }
    }

    /// Allocates the object of a constant expression's `struct.new*` or
    /// `array.new*` of type index `type_index` of `m`, popping its operands
    /// from the evaluation `stack` (see `runtime::instance`).
    pub(crate) fn new_const_object(
        &mut self,
        limiter: Option<&mut (dyn ResourceLimiter + '_)>,
        m: &crate::module::ModuleInner,
        kind: ConstNew,
        type_index: u32,
        n: u32,
        stack: &mut Vec<u128>,
    ) -> Result<u64, Trap> {
        let mut pop = |k: usize| stack.split_off(stack.len() - k);
        let (object, size) = match kind {
            ConstNew::Struct | ConstNew::StructDefault => {
                let layout = m.gc_layout(type_index).as_struct();
                let fields = if kind == ConstNew::Struct { pop(layout.fields.len()) } else { Vec::new() };
                (Object::new_struct(layout, fields), layout.size())
            }
            ConstNew::Array | ConstNew::ArrayDefault | ConstNew::ArrayFixed => {
                let (type_id, storage) = m.gc_layout(type_index).as_array();
                let (value, len) = match kind {
                    ConstNew::Array => {
                        let v = pop(2);
                        (v[0], v[1] as u32 as usize)
                    }
                    ConstNew::ArrayDefault => (0, pop(1)[0] as u32 as usize),
                    _ => (0, n as usize),
                };
                let size = array_size(storage, len).ok_or_else(|| Trap::new(TrapKind::AllocationTooLarge))?;
                self.gc_reserve(limiter, size, None)?;
                let object = if kind == ConstNew::ArrayFixed {
                    Object::array_from(type_id, storage, pop(len).into_iter())?
                } else {
                    Object::new_array(type_id, storage, value, len)?
                };
                return self.gc_insert(object, size);
            }
        };
        self.gc_reserve(limiter, size, None)?;
        self.gc_insert(object, size)
    }

    /// Allocates `object` (of `size` bytes, reserved with
    /// [`StoreInner::gc_reserve`]) and returns its raw reference.
    pub(crate) fn gc_insert(&mut self, object: Object, size: usize) -> Result<u64, Trap> {
        self.gc_heap.insert(object, size).ok_or_else(|| Trap::new(TrapKind::OutOfGcMemory))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(layout: &Arc<StructLayout>, next: u64) -> Object {
        Object::new_struct(layout, [7, next as u128])
    }

    #[test]
    fn cycles_are_reclaimed_and_roots_kept() {
        let layout = Arc::new(StructLayout::new(3, &[Storage::I32, Storage::Ref]));
        let mut heap = GcHeap::default();
        // A two-object cycle, unreachable.
        let a = heap.insert(node(&layout, 0), layout.size()).unwrap();
        let b = heap.insert(node(&layout, a), layout.size()).unwrap();
        heap.get_mut(a).unwrap().struct_set(1, b as u128);
        // A rooted chain of three.
        let c = heap.insert(node(&layout, 0), layout.size()).unwrap();
        let d = heap.insert(node(&layout, c), layout.size()).unwrap();
        let e = heap.insert(node(&layout, d), layout.size()).unwrap();
        heap.root(e);
        heap.mark_host_roots();
        heap.trace();
        assert_eq!(heap.sweep(), 2);
        assert!(!heap.is_live(a) && !heap.is_live(b));
        assert!(heap.is_live(c) && heap.is_live(d) && heap.is_live(e));
        assert_eq!(heap.stats().objects, 3);
        assert_eq!(heap.stats().bytes, 3 * layout.size());
        // A freed slot is reused with another generation: the old reference is stale.
        let f = heap.insert(node(&layout, 0), layout.size()).unwrap();
        assert_ne!(f, a);
        assert!(heap.get(a).is_none() && heap.get(b).is_none());
        // Scopes end.
        heap.exit_scope(0);
        heap.mark_host_roots();
        heap.trace();
        assert_eq!(heap.sweep(), 4);
    }

    #[test]
    fn packed_and_wide_storage() {
        let layout = Arc::new(StructLayout::new(1, &[Storage::I8, Storage::V128, Storage::I16]));
        let mut o = Object::new_struct(&layout, [0x1ff, u128::MAX - 1, 0x18000]);
        assert_eq!(o.struct_get(0), Some((Storage::I8, 0xff)));
        assert_eq!(Storage::I8.extend(0xff, true), 0xffff_ffff);
        assert_eq!(Storage::I8.extend(0xff, false), 0xff);
        assert_eq!(o.struct_get(1), Some((Storage::V128, u128::MAX - 1)));
        assert_eq!(o.struct_get(2), Some((Storage::I16, 0x8000)));
        assert!(o.struct_set(2, 5));
        assert_eq!(o.struct_get(2), Some((Storage::I16, 5)));
        let mut a = Object::new_array(2, Storage::I16, 0x12345, 4).unwrap();
        let data = a.array_mut().unwrap();
        assert_eq!(data.get(3), 0x2345);
        data.write_bytes(1, &[1, 2, 3, 4]);
        assert_eq!((data.get(1), data.get(2)), (0x0201, 0x0403));
        data.copy_within(0, 1, 3);
        assert_eq!(data.get(0), 0x0201);
        assert_eq!(array_size(Storage::I64, u32::MAX as usize), Some(HEADER_BYTES + 8 * u32::MAX as usize));
        // The slot, a malloc chunk's overhead (16) and the free and work lists' 4 + 4 bytes fit.
        assert!(std::mem::size_of::<Entry>() + 16 + 8 <= HEADER_BYTES, "{}", std::mem::size_of::<Entry>());
        assert_eq!(array_size(Storage::I64, usize::MAX), None);
    }
}
