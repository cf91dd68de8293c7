//! Snapshots: an instance's state captured after arbitrary warm-up calls, and
//! the images that instances start from instead of running initialisation.
//!
//! [`crate::Instance::snapshot`] captures an instance's defined memories (as
//! copy-on-write [`MemoryImage`]s, laid out once), globals and tables, and which
//! of its segments are dropped. The [`Snapshot`]'s module shares the original's
//! compiled code; instantiating it maps the images and sets the captured values
//! in place of data and element segments, global initialisers and the start
//! function, so a new instance in any store starts warm in microseconds.
//! [`Snapshot::to_wasm`] writes the same state out as a standalone module
//! (pre-initialisation, as Wizer does: `carnac snapshot`).
//!
//! This module also lays a module's own data segments out as images
//! ([`module_images`]), so that a module with a large initialised heap maps it
//! rather than copying it into every instance.
//!
//! It must not touch code or tiers: a snapshot is data only.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Error;
use crate::module::{ConstExpr, DataMode, ElemMode, Module, ModuleInner};
use crate::runtime::memory::{MemoryImage, WASM_PAGE};
use crate::runtime::store::{AsContext, StoreInner};
use crate::types::{MemoryType, TableType, ValType};

/// A module's data segments reach at least this many bytes of a memory before
/// they are laid out as an image: below it, copying them into each instance
/// costs less than mapping and faulting in pages.
pub(crate) const MODULE_IMAGE_MIN_BYTES: usize = 64 << 10;

/// For each defined memory of `m`, the image its active data segments make, if
/// they can be laid out ahead of time (constant offsets, all within the
/// memory's minimum size: nothing can trap) and are worth it. Built once, on
/// the module's first instantiation.
pub(crate) fn module_images(m: &ModuleInner) -> &[Option<Arc<MemoryImage>>] {
    m.memory_images.get_or_init(|| {
        let info = &m.info;
        let first = info.num_imported_memories as usize;
        (first..info.memories.len())
            .map(|mem| {
                let limit = info.memories[mem].limits.min as usize * WASM_PAGE;
                let mut parts = Vec::new();
                for (i, seg) in info.datas.iter().enumerate() {
                    if let DataMode::Active { memory, offset } = &seg.mode {
                        if *memory as usize != mem {
                            continue;
                        }
                        let ConstExpr::Bits(off) = offset else { return None };
                        // An i64 offset for a 64-bit memory (memory64), else an i32.
                        let off = if info.memories[mem].memory64 { *off as u64 } else { *off as u32 as u64 };
                        let off = usize::try_from(off).ok()?;
                        let bytes = m.data_bytes(i);
                        if off.checked_add(bytes.len()).is_none_or(|end| end > limit) {
                            return None;
                        }
                        parts.push((off, bytes));
                    }
                }
                let bytes: usize = parts.iter().map(|(_, b)| b.len()).sum();
                if bytes < MODULE_IMAGE_MIN_BYTES {
                    return None;
                }
                // Straight from the artifact the module was loaded from, where its
                // segments lie page-aligned (as `carnac snapshot` writes them);
                // else laid out once in a memory file.
                #[cfg(carnac_native_code)]
                if let Some((file, base)) = m.compiled.get().and_then(|c| c.mapped_file()) {
                    if let Some(image) = MemoryImage::in_file(file, base, m.shared_bytes(), parts.iter().copied()) {
                        return Some(Arc::new(image));
                    }
                }
                MemoryImage::new(parts.iter().copied()).map(Arc::new)
            })
            .collect()
    })
}

/// What a snapshot's instances start as, in place of the module's
/// initialisation (global initialisers, data and element segments, start).
#[derive(Debug)]
pub(crate) struct WarmState {
    /// Per defined memory: its type, with the captured size as its minimum, and
    /// its contents (`None`: all zeros).
    pub memories: Vec<(MemoryType, Option<Arc<MemoryImage>>)>,
    /// Per defined global: its raw bits, a function reference as the module's
    /// function index plus one (0 is null).
    pub globals: Vec<u128>,
    /// Per defined table: its type, with the captured size as its minimum, and
    /// its elements as function index plus one.
    pub tables: Vec<(TableType, Box<[u32]>)>,
    /// Whether each data segment is dropped.
    pub data_dropped: Box<[bool]>,
    /// Whether each element segment is dropped.
    pub elem_dropped: Box<[bool]>,
}

/// An instance's state, captured by [`crate::Instance::snapshot`]: instantiate
/// [`Snapshot::module`] to start new instances (in any store of the same
/// engine) from it, or write it out as a module with [`Snapshot::to_wasm`].
///
/// Cheap to clone and to share between threads. Its memories are images in
/// anonymous memory files: each new instance maps them copy-on-write, so pages
/// it only reads stay shared by all of them, and instantiating costs the same
/// for a 64 MiB heap as for an empty one. What is captured: defined memories
/// (contents and size), defined globals, defined tables, and which segments
/// are dropped. What is not: anything outside the instance (a WASI context's
/// open files, host state), which the new store provides afresh.
#[derive(Clone, Debug)]
pub struct Snapshot {
    module: Module,
}

impl Snapshot {
    /// A module whose instances start in the captured state: instantiate it with
    /// the same imports as the original (a [`crate::Linker`] does). Its start
    /// function does not run again, and its data and element segments are not
    /// applied again: their effects are in the snapshot.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// The captured state as a standalone module: the original module with data
    /// segments that hold the memories' non-zero contents, memories as large as
    /// captured, globals initialised to their captured values, no start
    /// function, and the exports named in `remove_exports` (an init function)
    /// removed. Everything else (code, imports, other exports, custom sections)
    /// is unchanged, so `_start` still runs.
    ///
    /// Refused, rather than written wrong: an instance whose tables changed
    /// since instantiation (or that dropped a passive element segment), which a
    /// module's element segments would have to describe anew.
    pub fn to_wasm(&self, remove_exports: &[&str]) -> Result<Vec<u8>, Error> {
        let warm = self.module.warm.as_ref().expect("a snapshot's module has a warm state");
        write_module(&self.module.inner, warm, remove_exports)
    }
}

impl crate::runtime::instance::Instance {
    /// Captures this instance's current state (see [`Snapshot`]).
    ///
    /// Errors, with a message saying what, when the state cannot be captured:
    /// an imported memory (its contents belong to another instance or the
    /// host), a shared memory (other threads may be changing it), a global or table holding a host reference (an `externref`) or a
    /// function of another instance, or a memory file the system refuses.
    ///
    /// # Panics
    ///
    /// When the instance belongs to a different store.
    pub fn snapshot(&self, store: impl AsContext) -> Result<Snapshot, Error> {
        let s = &store.as_context().inner;
        assert_eq!(self.store, s.id, "Instance belongs to a different store than the one it was used with");
        capture(s, self.index)
    }
}

fn capture(s: &StoreInner, index: u32) -> Result<Snapshot, Error> {
    let inst = &s.instances[index as usize];
    let info = &inst.module.info;
    let refuse = |what: String| Error::usage(format!("cannot snapshot the instance: {what}"));
    if info.num_imported_memories > 0 {
        return Err(refuse("its memory is imported (its contents belong to whoever exports it)".into()));
    }
    // Store function index -> module function index, for references.
    let mut func_index: HashMap<u32, u32> = HashMap::with_capacity(inst.funcs.len());
    for (i, f) in inst.funcs.iter().enumerate().rev() {
        func_index.insert(*f, i as u32);
    }
    let func_ref = |raw: u64, element: &ValType, what: &dyn Fn() -> String| -> Result<u32, Error> {
        match (raw, element) {
            (0, _) => Ok(0),
            (r, t) if t.is_func_ref() => func_index
                .get(&((r - 1) as u32))
                .map(|i| i + 1)
                .ok_or_else(|| refuse(format!("{} holds a function of another instance or the host", what()))),
            (r, _) if r & crate::runtime::gc_ref::TAG_MASK != 0 => {
                Err(refuse(format!("{} holds a GC reference (a struct, an array or an i31)", what())))
            }
            _ => Err(refuse(format!("{} holds a host reference (externref)", what()))),
        }
    };
    let mut memories = Vec::new();
    for &mem in inst.memories.iter() {
        let memory = match &s.memories[mem as usize] {
            crate::runtime::shared::StoreMemory::Owned(m) => m,
            crate::runtime::shared::StoreMemory::Shared(_) => {
                return Err(refuse("it has a shared memory, which other threads may be changing".into()))
            }
        };
        let mut ty = memory.ty;
        ty.limits.min = memory.size_pages();
        let data = memory.data();
        let image = match non_zero_extent(data) {
            None => None,
            Some(range) => Some(Arc::new(
                MemoryImage::new(std::iter::once((range.start, &data[range])))
                    .ok_or_else(|| refuse("the system gives no memory file for its memory image".into()))?,
            )),
        };
        memories.push((ty, image));
    }
    let mut globals = Vec::new();
    for (i, &g) in inst.globals.iter().enumerate().skip(info.num_imported_globals as usize) {
        let global = &s.globals[g as usize];
        let raw = global.get();
        globals.push(match &global.ty.content {
            t @ ValType::Ref(_) => func_ref(raw as u64, t, &|| format!("global {i}"))? as u128,
            _ => raw,
        });
    }
    let mut tables = Vec::new();
    for (i, &t) in inst.tables.iter().enumerate().skip(info.num_imported_tables as usize) {
        let table = &s.tables[t as usize];
        let mut ty = table.ty.clone();
        ty.limits.min = table.elems.len() as u64;
        let elems = table
            .elems
            .iter()
            .map(|&raw| func_ref(raw, &table.ty.element, &|| format!("table {i}")))
            .collect::<Result<Box<[u32]>, Error>>()?;
        tables.push((ty, elems));
    }
    let elem_dropped = info.elems.iter().zip(&inst.elems).map(|(seg, items)| items.is_empty() && !seg.items.is_empty());
    let warm = WarmState {
        memories,
        globals,
        tables,
        data_dropped: inst.data_dropped.clone().into(),
        elem_dropped: elem_dropped.collect(),
    };
    Ok(Snapshot { module: Module { inner: inst.module.clone(), warm: Some(Arc::new(warm)) } })
}

/// The range from the first to the last non-zero byte of `data`, if any.
fn non_zero_extent(data: &[u8]) -> Option<std::ops::Range<usize>> {
    // Whole 4 KiB blocks first (vectorised), then the bytes of the edge blocks.
    const BLOCK: usize = 4096;
    let zero = |b: &[u8]| b.iter().all(|x| *x == 0);
    let first_block = data.chunks(BLOCK).position(|b| !zero(b))?;
    let last_block = data.chunks(BLOCK).rposition(|b| !zero(b))?;
    let first = first_block * BLOCK + data[first_block * BLOCK..].iter().position(|b| *b != 0)?;
    let last_end = (last_block * BLOCK + BLOCK).min(data.len());
    let last = last_block * BLOCK + data[last_block * BLOCK..last_end].iter().rposition(|b| *b != 0)?;
    Some(first..last + 1)
}

/// The raw references of a defined table right after instantiation (its
/// initial value, then the active element segments), as function index + 1.
fn initial_table(m: &ModuleInner, warm: &WarmState, table: usize) -> Option<Vec<u32>> {
    let info = &m.info;
    let global = |g: u32| -> Option<u128> {
        let defined = g.checked_sub(info.num_imported_globals)?;
        warm.globals.get(defined as usize).copied()
    };
    // Imported globals are not captured: a table that depends on them is
    // treated as changed (refused), never guessed.
    let eval = |e: &ConstExpr| -> Option<u128> { e.eval(global, |f| f as u128 + 1) };
    let ty = &info.tables[table];
    let init = match &info.table_inits[table] {
        Some(e) => eval(e)? as u32,
        None => 0,
    };
    let mut elems = vec![init; ty.limits.min as usize];
    for seg in &info.elems {
        if let ElemMode::Active { table: t, offset } = &seg.mode {
            if *t as usize != table {
                continue;
            }
            // An i64 offset for a 64-bit table (table64), else an i32.
            let off = if ty.table64 { eval(offset)? as u64 } else { eval(offset)? as u32 as u64 };
            let off = usize::try_from(off).ok()?;
            for (i, item) in seg.items.iter().enumerate() {
                *elems.get_mut(off + i)? = eval(item)? as u32;
            }
        }
    }
    Some(elems)
}

/// The page granularity of the data segments a snapshot writes: large ones
/// start and end on these boundaries of the memory, and their bytes on these
/// boundaries of the file, so that a compiled artifact of the module maps them
/// into memories without copying (`MemoryImage::in_file`).
const IMAGE_PAGE: usize = 4096;

/// Splits a memory image into data segments. A large image: runs of whole pages
/// holding non-zero bytes (zero pages left out), merged across short gaps until
/// there are few enough segments for any validator. A small one: runs of
/// non-zero bytes, merged across short gaps of zeros.
fn image_segments(offset: usize, bytes: &[u8]) -> Vec<(usize, &[u8])> {
    const MAX_SEGMENTS: usize = 10_000;
    let paged = offset.is_multiple_of(IMAGE_PAGE)
        && bytes.len().is_multiple_of(IMAGE_PAGE)
        && bytes.len() >= MODULE_IMAGE_MIN_BYTES;
    let (unit, units) = if paged { (IMAGE_PAGE, bytes.len() / IMAGE_PAGE) } else { (1, bytes.len()) };
    let unit_nonzero = |i: usize| bytes[i * unit..(i + 1) * unit].iter().any(|b| *b != 0);
    let nonzero: Vec<bool> = (0..units).map(unit_nonzero).collect();
    let mut gap = if paged { 1 } else { 32 };
    loop {
        let mut segments = Vec::new();
        let mut i = 0;
        while i < units {
            if !nonzero[i] {
                i += 1;
                continue;
            }
            let start = i;
            let mut end = i + 1;
            let mut zeros = 0;
            i += 1;
            while i < units && zeros < gap {
                if nonzero[i] {
                    zeros = 0;
                    end = i + 1;
                } else {
                    zeros += 1;
                }
                i += 1;
            }
            segments.push((offset + start * unit, &bytes[start * unit..end * unit]));
        }
        if segments.len() <= MAX_SEGMENTS {
            return segments;
        }
        gap *= 4;
    }
}

/// `n` as a five-byte LEB128 (a valid, non-minimal encoding): lengths and counts
/// whose size must be known before their value is.
fn leb_u32_5(n: u32) -> [u8; 5] {
    let b = |shift: u32| ((n >> shift) & 0x7f) as u8;
    [b(0) | 0x80, b(7) | 0x80, b(14) | 0x80, b(21) | 0x80, b(28)]
}

/// Appends the data section: `original` as passive segments (in place of the
/// original segments), then `new` as active ones, each whole-page segment's
/// bytes at a multiple of [`IMAGE_PAGE`] in the output (an empty-ish passive
/// segment pads before it). Returns the number of segments written.
fn write_data_section(out: &mut Vec<u8>, original: &[&[u8]], new: &[(u32, usize, &[u8])], mem64: &[bool]) -> u32 {
    use wasm_encoder::Encode;
    out.push(11);
    let size_at = out.len();
    out.extend(leb_u32_5(0));
    let count_at = out.len();
    out.extend(leb_u32_5(0));
    let mut count = 0u32;
    for bytes in original {
        out.push(0x01);
        bytes.len().encode(out);
        out.extend_from_slice(bytes);
        count += 1;
    }
    for &(mem, off, bytes) in new {
        let mut header = Vec::with_capacity(16);
        if mem == 0 {
            header.push(0x00);
        } else {
            header.push(0x02);
            mem.encode(&mut header);
        }
        // A 64-bit memory's (memory64) offsets are i64s.
        if mem64.get(mem as usize).copied().unwrap_or(false) {
            wasm_encoder::ConstExpr::i64_const(off as i64).encode(&mut header);
        } else {
            wasm_encoder::ConstExpr::i32_const(off as i32).encode(&mut header);
        }
        header.extend(leb_u32_5(bytes.len() as u32));
        if off.is_multiple_of(IMAGE_PAGE) && bytes.len().is_multiple_of(IMAGE_PAGE) {
            // A passive segment of `k` zeros (1 + 5 bytes of header) moves the bytes
            // to the next page boundary.
            let misalign = (out.len() + 6 + header.len()) % IMAGE_PAGE;
            let k = (IMAGE_PAGE - misalign) % IMAGE_PAGE;
            out.push(0x01);
            out.extend(leb_u32_5(k as u32));
            out.resize(out.len() + k, 0);
            count += 1;
        }
        out.extend(header);
        out.extend_from_slice(bytes);
        count += 1;
    }
    let size = (out.len() - count_at) as u32;
    out[size_at..size_at + 5].copy_from_slice(&leb_u32_5(size));
    out[count_at..count_at + 5].copy_from_slice(&leb_u32_5(count));
    count
}

fn encoder_val_type(t: wasmparser::ValType) -> Result<wasm_encoder::ValType, Error> {
    use wasmparser::ValType as P;
    Ok(match t {
        P::I32 => wasm_encoder::ValType::I32,
        P::I64 => wasm_encoder::ValType::I64,
        P::F32 => wasm_encoder::ValType::F32,
        P::F64 => wasm_encoder::ValType::F64,
        P::V128 => wasm_encoder::ValType::V128,
        P::Ref(r) if r == wasmparser::RefType::FUNCREF => wasm_encoder::ValType::Ref(wasm_encoder::RefType::FUNCREF),
        P::Ref(r) if r == wasmparser::RefType::EXTERNREF => {
            wasm_encoder::ValType::Ref(wasm_encoder::RefType::EXTERNREF)
        }
        P::Ref(r) => return Err(Error::usage(format!("cannot write a snapshot with a global of type {r}"))),
    })
}

/// The constant expression that gives a global of type `t` the raw value `raw`.
fn const_of(t: wasmparser::ValType, raw: u128) -> wasm_encoder::ConstExpr {
    use wasm_encoder::{ConstExpr, HeapType, Ieee32, Ieee64};
    use wasmparser::ValType as P;
    match t {
        P::I32 => ConstExpr::i32_const(raw as u32 as i32),
        P::I64 => ConstExpr::i64_const(raw as u64 as i64),
        P::F32 => ConstExpr::f32_const(Ieee32::new(raw as u32)),
        P::F64 => ConstExpr::f64_const(Ieee64::new(raw as u64)),
        P::V128 => ConstExpr::v128_const(raw as i128),
        P::Ref(r) if raw == 0 && r == wasmparser::RefType::EXTERNREF => ConstExpr::ref_null(HeapType::EXTERN),
        P::Ref(_) if raw == 0 => ConstExpr::ref_null(HeapType::FUNC),
        P::Ref(_) => ConstExpr::ref_func(raw as u32 - 1),
    }
}

fn write_module(m: &ModuleInner, warm: &WarmState, remove_exports: &[&str]) -> Result<Vec<u8>, Error> {
    use wasm_encoder::{RawSection, Section};
    let info = &m.info;
    let refuse = |what: String| Error::usage(format!("cannot write the snapshot as a module: {what}"));
    for (i, (_, elems)) in warm.tables.iter().enumerate() {
        let table = info.num_imported_tables as usize + i;
        if initial_table(m, warm, table).as_deref() != Some(&elems[..]) {
            return Err(refuse(format!(
                "table {table} changed since instantiation (element segments cannot describe it)"
            )));
        }
    }
    if let Some(i) =
        warm.elem_dropped.iter().zip(&info.elems).position(|(d, s)| *d && matches!(s.mode, ElemMode::Passive))
    {
        return Err(refuse(format!("passive element segment {i} was dropped")));
    }
    // The new active data segments, after the original ones (which become empty
    // passive segments: indices that code uses for memory.init and data.drop stay
    // valid, and behave as dropped, as active segments are after instantiation).
    let mut new_segments: Vec<(u32, usize, &[u8])> = Vec::new();
    let mem64: Vec<bool> = warm.memories.iter().map(|(ty, _)| ty.memory64).collect();
    for (mem, (_, image)) in warm.memories.iter().enumerate() {
        if let Some(image) = image {
            for (offset, bytes) in image.parts() {
                for (off, bytes) in image_segments(offset, bytes) {
                    new_segments.push((mem as u32, off, bytes));
                }
            }
        }
    }
    let original_datas: Vec<&[u8]> = (0..info.datas.len())
        .map(|i| match info.datas[i].mode {
            DataMode::Passive if !warm.data_dropped[i] => m.data_bytes(i),
            _ => &[][..],
        })
        .collect();
    let bytes = m.wasm_bytes();
    let extra: usize = new_segments.iter().map(|s| s.2.len() + 2 * IMAGE_PAGE).sum();
    let mut out = Vec::with_capacity(bytes.len() + extra);
    out.extend_from_slice(&bytes[..8]);
    let section = |out: &mut Vec<u8>, id: u8, data: &[u8]| RawSection { id, data }.append_to(out);
    let invalid = |e: wasmparser::BinaryReaderError| Error::Invalid { offset: e.offset(), message: e.message().into() };
    let mut wrote_data = false;
    let (mut data_count, mut data_count_at) = (original_datas.len() as u32, None);
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(invalid)?;
        use wasmparser::Payload as P;
        match payload {
            P::MemorySection(reader) => {
                let mut section = wasm_encoder::MemorySection::new();
                for (i, mt) in reader.into_iter().enumerate() {
                    let mt = mt.map_err(invalid)?;
                    section.memory(wasm_encoder::MemoryType {
                        minimum: warm.memories[i].0.limits.min,
                        maximum: mt.maximum,
                        memory64: mt.memory64,
                        shared: mt.shared,
                        page_size_log2: mt.page_size_log2,
                    });
                }
                section.append_to(&mut out);
            }
            P::GlobalSection(reader) => {
                let mut section = wasm_encoder::GlobalSection::new();
                for (i, g) in reader.into_iter().enumerate() {
                    let ty = g.map_err(invalid)?.ty;
                    let gt = wasm_encoder::GlobalType {
                        val_type: encoder_val_type(ty.content_type)?,
                        mutable: ty.mutable,
                        shared: ty.shared,
                    };
                    section.global(gt, &const_of(ty.content_type, warm.globals[i]));
                }
                section.append_to(&mut out);
            }
            P::ExportSection(reader) => {
                let mut section = wasm_encoder::ExportSection::new();
                for e in reader {
                    let e = e.map_err(invalid)?;
                    if remove_exports.contains(&e.name) {
                        continue;
                    }
                    let kind = match e.kind {
                        wasmparser::ExternalKind::Func => wasm_encoder::ExportKind::Func,
                        wasmparser::ExternalKind::Table => wasm_encoder::ExportKind::Table,
                        wasmparser::ExternalKind::Memory => wasm_encoder::ExportKind::Memory,
                        wasmparser::ExternalKind::Global => wasm_encoder::ExportKind::Global,
                        other => return Err(refuse(format!("an export of kind {other:?}"))),
                    };
                    section.export(e.name, kind, e.index);
                }
                section.append_to(&mut out);
            }
            // The start function ran before the snapshot: its effects are in it.
            P::StartSection { .. } => {}
            P::DataCountSection { .. } => {
                // The count, known once the data section is laid out: five bytes kept.
                out.extend([12, 5]);
                data_count_at = Some(out.len());
                out.extend(leb_u32_5(0));
            }
            P::DataSection(_) => {
                data_count = write_data_section(&mut out, &original_datas, &new_segments, &mem64);
                wrote_data = true;
            }
            P::CodeSectionStart { .. } => {
                let (id, range) = payload.as_section().expect("a code section is a section");
                section(&mut out, id, &bytes[range.start as usize..range.end as usize]);
                if !info.datas.is_empty() || new_segments.is_empty() {
                    continue;
                }
                data_count = write_data_section(&mut out, &original_datas, &new_segments, &mem64);
                wrote_data = true;
            }
            P::End(_) => {}
            other => {
                if let Some((id, range)) = other.as_section() {
                    section(&mut out, id, &bytes[range.start as usize..range.end as usize]);
                }
            }
        }
    }
    if !wrote_data && !new_segments.is_empty() {
        data_count = write_data_section(&mut out, &original_datas, &new_segments, &mem64);
    }
    if let Some(at) = data_count_at {
        out[at..at + 5].copy_from_slice(&leb_u32_5(data_count));
    }
    let mut features = wasmparser::WasmFeatures::all();
    features.remove(wasmparser::WasmFeatures::COMPONENT_MODEL);
    wasmparser::Validator::new_with_features(features).validate_all(&out).map_err(|e| {
        refuse(format!(
            "the written module does not validate ({} at offset {:#x}): a bug in Carnac",
            e.message(),
            e.offset()
        ))
    })?;
    Ok(out)
}
