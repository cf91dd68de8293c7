//! Instantiation: allocates a module's memories, tables and globals in a store,
//! resolves its element segments, runs active segment initialisation and the
//! start function. Decoding, validation and translation are never redone here.

use std::sync::Arc;

use crate::error::Error;
use crate::module::{ConstExpr, ConstNew, ConstOp, DataMode, ElemMode, EntityIndex, Module, ModuleInner};
use crate::runtime::externals::{Extern, Global, Memory, Table};
use crate::runtime::func::{Func, TypedFunc, WasmParams, WasmResults};
use crate::runtime::store::{
    AsContext, AsContextMut, FuncEntity, FuncKind, GlobalEntity, InstanceEntity, ResourceLimiter, Store, StoreInner,
};
use crate::runtime::trap::{Trap, TrapKind};
use crate::runtime::vmctx::{header, Builtins, VMContextBlock, VMFuncRef, VMStoreContext, VMTableDef};
use crate::types::{count, ExternType};

/// An instantiated module in a store: its exports are reached by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    pub(crate) store: u64,
    pub(crate) index: u32,
}

pub(crate) fn instance_export(s: &StoreInner, inst: u32, name: &str) -> Option<Extern> {
    let entity = s.instances.get(inst as usize)?;
    let (_, idx) = entity.module.info.exports.iter().find(|(n, _)| n == name)?;
    Some(entity_extern(s, entity, *idx))
}

fn entity_extern(s: &StoreInner, entity: &InstanceEntity, idx: EntityIndex) -> Extern {
    let store = s.id;
    match idx {
        EntityIndex::Func(i) => Extern::Func(Func { store, index: entity.funcs[i as usize] }),
        EntityIndex::Table(i) => Extern::Table(Table { store, index: entity.tables[i as usize] }),
        EntityIndex::Memory(i) => {
            let index = entity.memories[i as usize];
            match s.memories[index as usize].shared() {
                Some(shared) => Extern::SharedMemory(shared.clone()),
                None => Extern::Memory(Memory { store, index }),
            }
        }
        EntityIndex::Global(i) => Extern::Global(Global { store, index: entity.globals[i as usize] }),
        EntityIndex::Tag(i) => Extern::Tag(crate::Tag { store, index: entity.tags[i as usize] }),
    }
}

impl Instance {
    /// Instantiates `module` with `imports` given in the module's import order.
    pub fn new<T>(
        mut store: impl AsContextMut<Data = T>,
        module: &Module,
        imports: &[Extern],
    ) -> Result<Instance, Error> {
        instantiate(store.as_context_mut(), module, imports)
    }

    /// Panics unless `store` is the instance's store: a handle of one store
    /// used with another is a bug in the embedder, reported as Wasmtime does.
    fn check_store(&self, store_id: u64) {
        assert_eq!(self.store, store_id, "Instance belongs to a different store than the one it was used with");
    }

    /// The export called `name`, or `None` when the instance has no such export.
    /// As Wasmtime's `Instance::get_export`.
    ///
    /// # Panics
    ///
    /// When the instance belongs to a different store (a `None` would wrongly
    /// say the export does not exist).
    pub fn get_export(&self, store: impl AsContext, name: &str) -> Option<Extern> {
        let s = &store.as_context().inner;
        self.check_store(s.id);
        instance_export(s, self.index, name)
    }

    /// All exports, in the module's order.
    ///
    /// # Panics
    ///
    /// When the instance belongs to a different store.
    pub fn exports(&self, store: impl AsContext) -> Vec<(String, Extern)> {
        let s = &store.as_context().inner;
        self.check_store(s.id);
        let entity = &s.instances[self.index as usize];
        entity.module.info.exports.iter().map(|(n, idx)| (n.clone(), entity_extern(s, entity, *idx))).collect()
    }

    /// The exported function called `name`, or `None` when there is no such
    /// export or it is not a function.
    ///
    /// # Panics
    ///
    /// When the instance belongs to a different store.
    pub fn get_func(&self, store: impl AsContext, name: &str) -> Option<Func> {
        self.get_export(store, name)?.into_func()
    }

    /// The exported memory called `name`, or `None` when there is no such
    /// export or it is not a memory. `None` for a shared memory too, as in
    /// Wasmtime: see [`Instance::get_shared_memory`].
    ///
    /// # Panics
    ///
    /// When the instance belongs to a different store.
    pub fn get_memory(&self, store: impl AsContext, name: &str) -> Option<Memory> {
        self.get_export(store, name)?.into_memory()
    }

    /// The exported shared memory called `name` (the threads proposal), or `None`
    /// when there is no such export or it is not a shared memory.
    ///
    /// # Panics
    ///
    /// When the instance belongs to a different store.
    pub fn get_shared_memory(&self, store: impl AsContext, name: &str) -> Option<crate::SharedMemory> {
        self.get_export(store, name)?.into_shared_memory()
    }

    /// The exported table called `name`, or `None` when there is no such
    /// export or it is not a table.
    ///
    /// # Panics
    ///
    /// When the instance belongs to a different store.
    pub fn get_table(&self, store: impl AsContext, name: &str) -> Option<Table> {
        self.get_export(store, name)?.into_table()
    }

    /// The exported global called `name`, or `None` when there is no such
    /// export or it is not a global.
    ///
    /// # Panics
    ///
    /// When the instance belongs to a different store.
    pub fn get_global(&self, store: impl AsContext, name: &str) -> Option<Global> {
        self.get_export(store, name)?.into_global()
    }

    /// The exported tag called `name`, or `None` when there is no such
    /// export or it is not a tag.
    ///
    /// # Panics
    ///
    /// When the instance belongs to a different store.
    pub fn get_tag(&self, store: impl AsContext, name: &str) -> Option<crate::Tag> {
        self.get_export(store, name)?.into_tag()
    }

    /// The exported function called `name`, typed ([`Func::typed`]). Errors
    /// when the instance belongs to a different store, when there is no such
    /// function, or when its type is not `P -> R`.
    pub fn get_typed_func<P: WasmParams, R: WasmResults>(
        &self,
        store: impl AsContext,
        name: &str,
    ) -> Result<TypedFunc<P, R>, Error> {
        let s = &store.as_context().inner;
        if s.id != self.store {
            return Err(Error::usage(format!(
                "cannot get `{name}`: the instance belongs to a different store than the one given"
            )));
        }
        let f = match instance_export(s, self.index, name) {
            Some(Extern::Func(f)) => f,
            Some(other) => {
                let kind = other.ty(&store).kind_name();
                return Err(Error::usage(format!("export `{name}` is a {kind}, not a function")));
            }
            None => return Err(Error::usage(format!("no exported function `{name}`"))),
        };
        f.typed(&store)
    }
}

fn check_import(
    s: &StoreInner,
    module: &ModuleInner,
    (m, n, idx): &(String, String, EntityIndex),
    ext: &Extern,
) -> Result<(), Error> {
    let incompatible = |reason: String| Error::IncompatibleImport { module: m.clone(), name: n.clone(), reason };
    match ext {
        Extern::SharedMemory(mem) if !crate::Engine::same(mem.engine(), &s.engine) => {
            return Err(incompatible("the shared memory belongs to a different engine".into()));
        }
        _ if ext.store_id().is_some_and(|id| id != s.id) => {
            return Err(incompatible("the definition belongs to a different store".into()));
        }
        _ => {}
    }
    // Functions compare by engine-wide type id: no type is built or cloned.
    if let (EntityIndex::Func(i), Extern::Func(f)) = (idx, ext) {
        let want = module.info.type_ids[module.info.funcs[*i as usize] as usize];
        // Equal ids, or (GC) the function's type declares the wanted one as a supertype.
        let have = s.funcs[f.index as usize].type_id;
        if have == want || s.engine.type_registry().is_subtype(have, want) {
            return Ok(());
        }
    }
    let want = module.info.entity_type(*idx);
    let ok = match (&want, ext) {
        (ExternType::Func(ft), Extern::Func(f)) => s.func_ty(f.index).matches(ft),
        (ExternType::Table(tt), Extern::Table(t)) => {
            let have = &s.tables[t.index as usize];
            let cur = crate::types::Limits { min: have.elems.len() as u64, max: have.ty.limits.max };
            have.ty.element == tt.element && have.ty.table64 == tt.table64 && cur.matches(&tt.limits)
        }
        (ExternType::Memory(mt), Extern::Memory(mem)) => {
            let have = &s.memories[mem.index as usize];
            let limits = crate::types::Limits { min: have.size_pages(), max: have.ty().limits.max };
            crate::types::MemoryType { limits, shared: false, memory64: have.ty().memory64 }.matches(mt)
        }
        (ExternType::Memory(mt), Extern::SharedMemory(mem)) => mem.ty().matches(mt),
        // An immutable global matches by subtyping (a `(ref $t)` is a
        // `(ref null func)`), a mutable one only its own type.
        (ExternType::Global(gt), Extern::Global(g)) => {
            let have = &s.globals[g.index as usize].ty;
            have.mutability == gt.mutability
                && match gt.mutability {
                    crate::types::Mutability::Const => have.content.matches(&gt.content),
                    crate::types::Mutability::Var => have.content == gt.content,
                }
        }
        // Tags match exactly (their types are compared structurally).
        (ExternType::Tag(tt), Extern::Tag(t)) => s.tags[t.index as usize] == *tt.ty(),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    // What the module wants (declared limits: a minimum, perhaps a maximum),
    // against what it was given (a live memory or table: its current size).
    let at_most =
        |max: Option<u64>, unit: &str| max.map_or(String::new(), |m| format!(" and at most {}", count(m, unit)));
    let now = |cur: u64, max: Option<u64>, unit: &str| match max {
        Some(m) => format!("currently of {} and at most {}", count(cur, unit), count(m, unit)),
        None => format!("currently of {} with no maximum", count(cur, unit)),
    };
    let want = match &want {
        ExternType::Func(ft) => format!("a function {ft}"),
        ExternType::Table(tt) => {
            let (min, max) = (tt.limits.min, tt.limits.max);
            let i64 = if tt.table64 { "i64 " } else { "" };
            format!("a {i64}{} table of at least {}{}", tt.element, count(min, "element"), at_most(max, "element"))
        }
        ExternType::Memory(mt) => {
            let (min, max) = (count(mt.limits.min, "page"), at_most(mt.limits.max, "page"));
            let i64 = if mt.memory64 { "i64 " } else { "" };
            format!("a {}{i64}memory of at least {min}{max}", if mt.shared { "shared " } else { "" })
        }
        ExternType::Global(gt) => format!("a global {gt}"),
        ExternType::Tag(tt) => format!("a tag {}", tt.ty()),
    };
    let have = match ext {
        Extern::Func(f) => format!("a function {}", s.func_ty(f.index)),
        Extern::Table(t) => {
            let t = &s.tables[t.index as usize];
            let i64 = if t.ty.table64 { "i64 " } else { "" };
            format!("a {i64}{} table {}", t.ty.element, now(t.elems.len() as u64, t.ty.limits.max, "element"))
        }
        Extern::Memory(mem) => {
            let mem = &s.memories[mem.index as usize];
            let i64 = if mem.ty().memory64 { "i64 " } else { "" };
            format!("a {i64}memory {}", now(mem.size_pages(), mem.ty().limits.max, "page"))
        }
        Extern::SharedMemory(mem) => {
            format!("a shared memory {}", now(mem.size(), mem.ty().limits.max, "page"))
        }
        Extern::Global(g) => format!("a global {}", s.globals[g.index as usize].ty),
        Extern::Tag(t) => format!("a tag {}", s.tags[t.index as usize]),
    };
    Err(incompatible(format!("expected {want}, found {have}")))
}

/// Evaluates a constant expression given the instance's global and function index maps.
fn eval_const(globals: &[GlobalEntity], inst_globals: &[u32], inst_funcs: &[u32], e: &ConstExpr) -> u128 {
    // Validation only lets an expression read globals defined before it
    // (already in `inst_globals`), so every global is known.
    e.eval(|g| Some(globals[inst_globals[g as usize] as usize].get()), |f| inst_funcs[f as usize] as u128 + 1)
        .expect("a validated constant expression has a value")
}

/// Evaluates a constant expression that may allocate GC objects (global and
/// table initialisers, element segment items). An allocation reserves its
/// bytes as any does, but never collects here (no wasm frame to scan, and the
/// objects made so far are not rooted yet): a collection that falls due is
/// left pending for the next call from the host.
fn eval_const_gc(
    s: &mut StoreInner,
    mut limiter: Option<&mut (dyn ResourceLimiter + '_)>,
    m: &ModuleInner,
    inst_globals: &[u32],
    inst_funcs: &[u32],
    e: &ConstExpr,
) -> Result<u128, Trap> {
    let ConstExpr::Extended(ops) = e else { return Ok(eval_const(&s.globals, inst_globals, inst_funcs, e)) };
    if !ops.iter().any(|op| matches!(op, ConstOp::New(..))) {
        return Ok(eval_const(&s.globals, inst_globals, inst_funcs, e));
    }
    // The globals it reads, read first: allocating needs the store mutably.
    let read: Vec<(u32, u128)> = ops
        .iter()
        .filter_map(|op| match op {
            ConstOp::GlobalGet(g) => Some((*g, s.globals[inst_globals[*g as usize] as usize].get())),
            _ => None,
        })
        .collect();
    let mut failed = None;
    let mut alloc = |kind: ConstNew, type_index: u32, n: u32, stack: &mut Vec<u128>| -> Option<u128> {
        match s.new_const_object(limiter.as_deref_mut(), m, kind, type_index, n, stack) {
            Ok(raw) => Some(raw as u128),
            Err(t) => {
                failed = Some(t);
                None
            }
        }
    };
    let value = e.eval_with(
        |g| read.iter().find(|(i, _)| *i == g).map(|(_, v)| *v),
        |f| inst_funcs[f as usize] as u128 + 1,
        &mut alloc,
    );
    match (value, failed) {
        (_, Some(t)) => Err(t),
        (Some(v), None) => Ok(v),
        (None, None) => Err(Trap::new(TrapKind::OutOfGcMemory)),
    }
}

pub(crate) fn instantiate<T>(store: &mut Store<T>, module: &Module, imports: &[Extern]) -> Result<Instance, Error> {
    let m: &Arc<ModuleInner> = &module.inner;
    let info = &m.info;
    if !crate::Engine::same(&m.engine, &store.inner.engine) {
        return Err(Error::usage("module and store belong to different engines"));
    }
    if imports.len() != info.imports.len() {
        return Err(Error::usage(format!("module needs {} imports, {} were given", info.imports.len(), imports.len())));
    }
    let (s, mut limiter) = store.inner_and_limiter();
    let most = limiter.as_deref().map_or(crate::runtime::store::DEFAULT_INSTANCE_LIMIT, |l| l.instances());
    if s.instances.len() >= most {
        return Err(Error::Limit(format!("the store already holds {most} instances, its limit")));
    }
    let mut funcs = Vec::with_capacity(info.funcs.len());
    let mut tables = Vec::with_capacity(info.tables.len());
    let mut memories = Vec::with_capacity(info.memories.len());
    let mut globals = Vec::with_capacity(info.globals.len());
    let mut tags = Vec::with_capacity(info.tags.len());
    for (import, ext) in info.imports.iter().zip(imports) {
        check_import(s, m, import, ext)?;
        match ext {
            Extern::Func(f) => funcs.push(f.index),
            Extern::Table(t) => tables.push(t.index),
            Extern::Memory(mem) => memories.push(mem.index),
            Extern::SharedMemory(mem) => memories.push(s.push_shared_memory(mem)),
            Extern::Global(g) => globals.push(g.index),
            Extern::Tag(t) => tags.push(t.index),
        }
    }
    // Each instantiation defines new tags.
    for &type_index in &info.tags[info.num_imported_tags as usize..] {
        s.tags.push(info.types[type_index as usize].clone());
        tags.push(s.tags.len() as u32 - 1);
    }
    let instance = s.instances.len() as u32;
    s.gc_heap.register_types(info);
    let offsets = &m.vm_offsets;
    let mut vmctx = VMContextBlock::new(offsets);
    let first = s.funcs.len() as u32;
    s.funcs.reserve(m.code.len());
    s.func_refs.reserve(m.code.len());
    for def_index in 0..m.code.len() as u32 {
        let type_index = info.funcs[(info.num_imported_funcs + def_index) as usize];
        let type_id = info.type_ids[type_index as usize];
        let func_ref = VMFuncRef { wasm_call: m.wasm_call(def_index), vmctx: vmctx.as_ptr(), type_id, store_index: 0 };
        s.push_func(FuncEntity { type_id, kind: FuncKind::Wasm { instance, def_index } }, func_ref);
    }
    funcs.extend(first..s.funcs.len() as u32);
    let defined_globals = info.globals.len() - info.num_imported_globals as usize;
    let mut cell = s.new_global_cells((0..defined_globals).map(|_| 0));
    let warm = module.warm.as_deref();
    // A function reference captured in a snapshot (module function index + 1)
    // as this instance's raw reference (store index + 1).
    let warm_ref = |funcs: &[u32], raw: u64| if raw == 0 { 0 } else { funcs[raw as usize - 1] as u64 + 1 };
    for (i, ty) in info.globals.iter().enumerate().skip(info.num_imported_globals as usize) {
        let defined = i - info.num_imported_globals as usize;
        let value = match warm {
            Some(w) if ty.content.is_func_ref() => warm_ref(&funcs, w.globals[defined] as u64) as u128,
            Some(w) => w.globals[defined],
            None => eval_const_gc(s, limiter.as_deref_mut(), m, &globals, &funcs, &info.global_inits[defined])?,
        };
        let g = GlobalEntity { ty: ty.clone(), cell };
        g.set(value);
        s.globals.push(g);
        globals.push(s.globals.len() as u32 - 1);
        // SAFETY: `cell` walks the `defined_globals` cells just allocated (one past the last at most).
        cell = unsafe { cell.add(1) };
    }
    // Memories start as their images where they have one (a snapshot's, or the
    // one the module's data segments make): mapped copy-on-write, not copied.
    let images = match warm {
        Some(_) => &[][..],
        None => crate::runtime::snapshot::module_images(m),
    };
    for (j, ty) in info.memories.iter().skip(info.num_imported_memories as usize).enumerate() {
        let (ty, image) = match warm {
            Some(w) => (w.memories[j].0, w.memories[j].1.as_ref()),
            None => (*ty, images.get(j).and_then(Option::as_ref)),
        };
        memories.push(s.new_memory(limiter.as_deref_mut(), ty, image)?);
    }
    for (i, ty) in info.tables.iter().enumerate().skip(info.num_imported_tables as usize) {
        match warm {
            Some(w) => {
                let (ty, elems) = &w.tables[i - info.num_imported_tables as usize];
                let t = s.new_table(limiter.as_deref_mut(), ty.clone(), 0)?;
                for (dst, raw) in s.tables[t as usize].elems.iter_mut().zip(elems.iter()) {
                    *dst = warm_ref(&funcs, *raw as u64);
                }
                tables.push(t);
            }
            None => {
                let init = match &info.table_inits[i] {
                    Some(e) => eval_const_gc(s, limiter.as_deref_mut(), m, &globals, &funcs, e)?,
                    None => 0,
                };
                tables.push(s.new_table(limiter.as_deref_mut(), ty.clone(), init as u64)?);
            }
        }
    }
    let mut elems: Vec<Box<[u64]>> = Vec::with_capacity(info.elems.len());
    for (i, seg) in info.elems.iter().enumerate() {
        elems.push(match warm {
            Some(w) if w.elem_dropped[i] => Box::default(),
            _ => {
                let mut items = Vec::with_capacity(seg.items.len());
                for e in seg.items.iter() {
                    items.push(eval_const_gc(s, limiter.as_deref_mut(), m, &globals, &funcs, e)? as u64);
                }
                items.into()
            }
        });
    }
    let funcs: Box<[u32]> = funcs.into();
    vmctx.write(header::STORE as u32, &mut *s.store_ctx as *mut VMStoreContext);
    vmctx.write(header::BUILTINS as u32, builtins());
    vmctx.write(header::TYPE_IDS as u32, info.type_ids.as_ptr());
    vmctx.write(header::FUNC_INDICES as u32, funcs.as_ptr());
    vmctx.write(header::INSTANCE as u32, instance);
    for (i, &f) in funcs[..info.num_imported_funcs as usize].iter().enumerate() {
        vmctx.write(offsets.imported_func(i as u32), s.func_refs[f as usize]);
    }
    for (i, &mem) in memories.iter().enumerate() {
        vmctx.write(offsets.memory(i as u32), s.memories[mem as usize].def_ptr());
    }
    for (i, &t) in tables.iter().enumerate() {
        vmctx.write(offsets.table(i as u32), &mut *s.tables[t as usize].def as *mut VMTableDef);
    }
    for (i, &g) in globals.iter().enumerate() {
        vmctx.write(offsets.global(i as u32), s.globals[g as usize].cell);
    }
    s.instances.push(InstanceEntity {
        module: m.clone(),
        funcs,
        tables: tables.into(),
        memories: memories.into(),
        globals: globals.into(),
        tags: tags.into(),
        vmctx,
        elems,
        data_dropped: match warm {
            Some(w) => w.data_dropped.to_vec(),
            None => vec![false; info.datas.len()],
        },
    });
    let inst = &mut s.instances[instance as usize];
    if warm.is_some() {
        // A snapshot's instance starts in the captured state: its segments and
        // start function already ran.
        return Ok(Instance { store: s.id, index: instance });
    }

    // Active element segments, then active data segments, in order; the first
    // out-of-bounds one traps (what earlier ones wrote stays written).
    for (i, seg) in info.elems.iter().enumerate() {
        match &seg.mode {
            ElemMode::Active { table, offset } => {
                let t = inst.tables[*table as usize];
                // A table64's offset is an i64, any other's an i32.
                let off = eval_const(&s.globals, &inst.globals, &inst.funcs, offset);
                let off = if s.tables[t as usize].ty.table64 { off as u64 } else { off as u32 as u64 };
                let off = usize::try_from(off).unwrap_or(usize::MAX);
                let items = std::mem::take(&mut inst.elems[i]);
                let elems = &mut s.tables[t as usize].elems;
                if off.checked_add(items.len()).is_none_or(|end| end > elems.len()) {
                    return Err(Trap::new(TrapKind::TableOutOfBounds).into());
                }
                elems[off..off + items.len()].copy_from_slice(&items);
            }
            ElemMode::Declared => inst.elems[i] = Box::new([]),
            ElemMode::Passive => {}
        }
    }
    for (i, seg) in info.datas.iter().enumerate() {
        if let DataMode::Active { memory, offset } = &seg.mode {
            let defined = (*memory as usize).checked_sub(info.num_imported_memories as usize);
            if defined.and_then(|j| images.get(j)).is_some_and(Option::is_some) {
                // Its bytes are in the memory's image, mapped already.
                inst.data_dropped[i] = true;
                continue;
            }
            let mem = inst.memories[*memory as usize];
            // A 64-bit memory's offset is an i64, any other's an i32.
            let off = eval_const(&s.globals, &inst.globals, &inst.funcs, offset);
            let off = if s.memories[mem as usize].ty().memory64 { off as u64 } else { off as u32 as u64 };
            let off = usize::try_from(off).unwrap_or(usize::MAX);
            if !s.memories[mem as usize].write(off, m.data_bytes(i)) {
                return Err(Trap::new(TrapKind::MemoryOutOfBounds).into());
            }
            inst.data_dropped[i] = true;
        }
    }
    let start = info.start.map(|f| inst.funcs[f as usize]);
    let handle = Instance { store: s.id, index: instance };
    if let Some(f) = start {
        let mut slots = [];
        crate::runtime::call::call_func(store, f, &mut slots, None)?;
    }
    Ok(handle)
}

/// The builtins table compiled code calls through (null without the compiled tier).
fn builtins() -> *const Builtins {
    #[cfg(carnac_native_code)]
    return &crate::compile::BUILTINS;
    #[cfg(not(carnac_native_code))]
    std::ptr::null()
}
