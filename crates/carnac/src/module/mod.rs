//! Decoding and validation: turns module bytes into an immutable [`ModuleInfo`]
//! plus the interpreter code for every defined function.
//!
//! Everything here depends only on the module's bytes and the engine's
//! configuration; it never touches a store. All of it runs once, in
//! [`Module::new`]; instantiation reuses the result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

use wasmparser::{
    ElementItems, ElementKind, ExternalKind, KnownCustom, Name, Parser, Payload, TypeRef, ValidPayload, Validator,
};

use crate::engine::Engine;
use crate::error::Error;
use crate::interp::{self, CompiledFunc};
use crate::types::*;

pub(crate) mod relaxed;
mod shared_bytes;
pub(crate) use shared_bytes::SharedBytes;

/// A constant expression: a single constant instruction (WebAssembly 2.0),
/// or an extended one (`extended-const`: i32/i64 `add`, `sub`, `mul` over
/// constants and `global.get`). Extended expressions without a `global.get`
/// are folded to [`ConstExpr::Bits`] when the module is decoded.
#[derive(Debug, Clone)]
pub(crate) enum ConstExpr {
    /// A number, as the raw bits the runtime stores (i32 zero-extended, floats as bits).
    Bits(u128),
    RefNull,
    RefFunc(u32),
    GlobalGet(u32),
    /// An extended constant expression that reads globals, as a postfix program.
    Extended(Arc<[ConstOp]>),
}

/// One instruction of an extended constant expression.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ConstOp {
    I32(i32),
    I64(i64),
    V128(u128),
    GlobalGet(u32),
    I32Add,
    I32Sub,
    I32Mul,
    I64Add,
    I64Sub,
    I64Mul,
    /// `ref.func`, of a module function index.
    RefFunc(u32),
    /// `ref.i31` (GC).
    RefI31,
    /// `any.convert_extern` / `extern.convert_any`: the bits stay (GC).
    Convert,
    /// An allocation (GC): `struct.new*`, `array.new*` of a type index, with
    /// `array.new_fixed`'s length.
    New(ConstNew, u32, u32),
}

/// The allocating instructions of constant expressions (GC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConstNew {
    Struct,
    StructDefault,
    Array,
    ArrayDefault,
    ArrayFixed,
}

/// What evaluating an allocating constant expression calls: the allocation,
/// its type index and immediate, and the evaluation stack to pop its
/// operands from; the object's reference, or `None` when it cannot be made.
pub(crate) type ConstAlloc<'a> = &'a mut dyn FnMut(ConstNew, u32, u32, &mut Vec<u128>) -> Option<u128>;

impl ConstExpr {
    /// The expression's value as raw bits, given the raw value of a global
    /// (`None` when it is not known: then the result is `None` too) and the raw
    /// reference to a function (`RefFunc`). An expression that allocates
    /// (GC) has no value here: see [`ConstExpr::eval_with`].
    pub fn eval(&self, global: impl Fn(u32) -> Option<u128>, func: impl Fn(u32) -> u128) -> Option<u128> {
        self.eval_with(global, func, &mut |_, _, _, _| None)
    }

    /// [`ConstExpr::eval`], allocating GC objects with `alloc`.
    pub fn eval_with(
        &self,
        global: impl Fn(u32) -> Option<u128>,
        func: impl Fn(u32) -> u128,
        alloc: ConstAlloc<'_>,
    ) -> Option<u128> {
        match self {
            ConstExpr::Bits(b) => Some(*b),
            ConstExpr::RefNull => Some(0),
            ConstExpr::RefFunc(f) => Some(func(*f)),
            ConstExpr::GlobalGet(g) => global(*g),
            ConstExpr::Extended(ops) => eval_ops(ops, global, func, alloc),
        }
    }
}

/// Runs an extended constant expression (validated: the stack never underflows).
fn eval_ops(
    ops: &[ConstOp],
    global: impl Fn(u32) -> Option<u128>,
    func: impl Fn(u32) -> u128,
    alloc: ConstAlloc<'_>,
) -> Option<u128> {
    let mut stack: Vec<u128> = Vec::with_capacity(4);
    for op in ops {
        let value = match *op {
            ConstOp::I32(v) => v as u32 as u128,
            ConstOp::I64(v) => v as u64 as u128,
            ConstOp::V128(v) => v,
            ConstOp::GlobalGet(g) => global(g)?,
            ConstOp::RefFunc(f) => func(f),
            ConstOp::RefI31 => crate::runtime::gc_ref::encode_i31(stack.pop()? as u32) as u128,
            ConstOp::Convert => continue,
            ConstOp::New(kind, type_index, n) => alloc(kind, type_index, n, &mut stack)?,
            binary => {
                let b = stack.pop()? as u64;
                let a = stack.pop()? as u64;
                let (a32, b32) = (a as u32, b as u32);
                (match binary {
                    ConstOp::I32Add => a32.wrapping_add(b32) as u64,
                    ConstOp::I32Sub => a32.wrapping_sub(b32) as u64,
                    ConstOp::I32Mul => a32.wrapping_mul(b32) as u64,
                    ConstOp::I64Add => a.wrapping_add(b),
                    ConstOp::I64Sub => a.wrapping_sub(b),
                    ConstOp::I64Mul => a.wrapping_mul(b),
                    _ => unreachable!("every other operator is matched above"),
                }) as u128
            }
        };
        stack.push(value);
    }
    stack.pop()
}

#[derive(Debug, Clone)]
pub(crate) enum ElemMode {
    Passive,
    Declared,
    Active { table: u32, offset: ConstExpr },
}

#[derive(Debug, Clone)]
pub(crate) struct ElemSegment {
    pub mode: ElemMode,
    pub items: Box<[ConstExpr]>,
}

#[derive(Debug, Clone)]
pub(crate) enum DataMode {
    Passive,
    Active { memory: u32, offset: ConstExpr },
}

#[derive(Debug, Clone)]
pub(crate) struct DataSegment {
    pub mode: DataMode,
    /// Where its bytes are in the module's binary ([`ModuleInner::data_bytes`]):
    /// they are not copied out of it.
    pub range: std::ops::Range<usize>,
}

/// An index into one of a module's index spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntityIndex {
    Func(u32),
    Table(u32),
    Memory(u32),
    Global(u32),
    Tag(u32),
}

/// Everything known about a module that is independent of execution.
#[derive(Debug, Default)]
pub(crate) struct ModuleInfo {
    pub name: Option<Arc<str>>,
    /// The function type of each type index (validation lets only function
    /// types reach the places that read it; a struct or array type's entry is
    /// the empty signature, so that the hot `call_indirect` paths index a
    /// dense vector of signatures).
    pub types: Vec<FuncType>,
    /// Each type index's registered type (function, struct or array, with
    /// its supertype chain), as the engine's registry canonicalised it.
    pub sub_types: Vec<CompositeType>,
    /// The concrete heap type of each type index (what `(ref $t)` refers to).
    pub heap_types: Vec<HeapType>,
    /// Engine-wide canonical id of each entry of `types` (for `call_indirect`).
    pub type_ids: Vec<u32>,
    /// `types[i].param_slots()`, dense: the threaded `call_indirect` reads it
    /// without going through the (shared, possibly recursive) type's body.
    pub type_param_slots: Vec<u32>,
    pub imports: Vec<(String, String, EntityIndex)>,
    /// Type index of every function, imported ones first.
    pub funcs: Vec<u32>,
    pub num_imported_funcs: u32,
    pub tables: Vec<TableType>,
    pub table_inits: Vec<Option<ConstExpr>>,
    pub num_imported_tables: u32,
    pub memories: Vec<MemoryType>,
    pub num_imported_memories: u32,
    pub globals: Vec<GlobalType>,
    pub global_inits: Vec<ConstExpr>,
    pub num_imported_globals: u32,
    /// Type index of every exception tag (a function type without results),
    /// imported ones first.
    pub tags: Vec<u32>,
    pub num_imported_tags: u32,
    pub exports: Vec<(String, EntityIndex)>,
    pub start: Option<u32>,
    pub elems: Vec<ElemSegment>,
    pub datas: Vec<DataSegment>,
    /// Shared with every backtrace frame that names the function (see `FrameInfo`).
    pub func_names: FuncNames,
}

/// The function names of the name section, decoded on first use: only
/// backtraces need them, and a module with thousands of functions would
/// otherwise allocate thousands of strings when it loads.
#[derive(Debug, Default)]
pub(crate) struct FuncNames {
    /// Each name section's contents, and where they start in the module.
    sections: Vec<(Box<[u8]>, u64)>,
    map: std::sync::OnceLock<HashMap<u32, Arc<str>>>,
}

impl FuncNames {
    /// Function `index`'s name, if the name section gives one.
    pub fn get(&self, index: u32) -> Option<Arc<str>> {
        let map = self.map.get_or_init(|| {
            let mut map = HashMap::new();
            for (section, offset) in &self.sections {
                let names = wasmparser::NameSectionReader::new(wasmparser::BinaryReader::new(section, *offset));
                // The name section is advisory: a malformed one is ignored, as the spec allows.
                for name in names.into_iter().flatten() {
                    if let Name::Function(names) = name {
                        for n in names.into_iter().flatten() {
                            map.insert(n.index, Arc::from(n.name));
                        }
                    }
                }
            }
            map
        });
        map.get(&index).cloned()
    }
}

impl ModuleInfo {
    pub fn func_type(&self, func_index: u32) -> &FuncType {
        &self.types[self.funcs[func_index as usize] as usize]
    }

    /// The function type of tag `tag_index` (its parameters are the fields).
    pub fn tag_type(&self, tag_index: u32) -> &FuncType {
        &self.types[self.tags[tag_index as usize] as usize]
    }

    pub fn entity_type(&self, idx: EntityIndex) -> ExternType {
        match idx {
            EntityIndex::Func(i) => ExternType::Func(self.func_type(i).clone()),
            EntityIndex::Table(i) => ExternType::Table(self.tables[i as usize].clone()),
            EntityIndex::Memory(i) => ExternType::Memory(self.memories[i as usize]),
            EntityIndex::Global(i) => ExternType::Global(self.globals[i as usize].clone()),
            EntityIndex::Tag(i) => ExternType::Tag(crate::types::TagType::new(self.tag_type(i).clone())),
        }
    }
}

pub(crate) struct ModuleInner {
    pub engine: Engine,
    pub info: ModuleInfo,
    /// The layout of this module's instance context blocks.
    pub vm_offsets: crate::runtime::vmctx::VMOffsets,
    /// Machine code for every defined function: set when the module is
    /// compiled with `Strategy::Cranelift` or loaded from an artifact, and
    /// later, once, by the background compiler with `Strategy::Auto`.
    #[cfg(carnac_native_code)]
    pub compiled: std::sync::OnceLock<crate::compile::module::CompiledModule>,
    /// With `Strategy::Auto`: what tiering up needs (compile requests,
    /// on-stack-replacement entries).
    #[cfg(carnac_compiled)]
    pub tier: Option<crate::compile::tier::TierState>,
    /// With `Strategy::Auto`, per defined function: how many more entries and
    /// loop iterations the interpreter runs before its `OsrPoint` asks to tier
    /// up (decremented there; see `compile::tier`). Empty otherwise.
    pub hot: Box<[std::sync::atomic::AtomicI32]>,
    /// Interpreter code for each defined (non-imported) function.
    pub code: Box<[FuncCode]>,
    /// Where each defined function's body is in `bytes`.
    bodies: Bodies,
    /// For each defined function, its code once translated (valid), else null:
    /// what the interpreter's call handler reads (one load, no `OnceLock` or
    /// `Result` to look through). Points into `code`, which never moves.
    ready: Box<[AtomicPtr<CompiledFunc>]>,
    /// The module's bytes, kept for translating function bodies on first call
    /// (and compiling them, serializing the module); for a module loaded from
    /// an artifact, where they lie in it.
    bytes: SharedBytes,
    /// With lazy validation: what validating a body on first call needs.
    resources: Option<wasmparser::ValidatorResources>,
    /// `code_ranges`, kept between traps (a trapping request pays for a sort
    /// of the module's functions only the first time).
    code_ranges: std::sync::Mutex<CodeRanges>,
    /// Per defined memory, the copy-on-write image its data segments make
    /// (`runtime::snapshot::module_images`), laid out on first instantiation.
    pub memory_images: std::sync::OnceLock<Box<[Option<Arc<crate::runtime::memory::MemoryImage>>]>>,
    /// Per type index, what the GC instructions need (`runtime::gc_heap`),
    /// laid out on first use.
    pub gc_layouts: std::sync::OnceLock<Box<[crate::runtime::gc_heap::GcLayout]>>,
    /// Which defined functions the compiled tier leaves to the interpreter
    /// ([`interpreted_only`]): found on first use, from the bodies.
    #[cfg(carnac_native_code)]
    interpreted: std::sync::OnceLock<Box<[bool]>>,
}

/// Each translated function's code address range and function index, sorted.
pub(crate) type CodeRanges = Arc<[(std::ops::Range<usize>, u32)]>;

/// `FuncCode`'s code if it is translated and valid, else null.
fn ready_ptr(f: &FuncCode) -> *mut CompiledFunc {
    match f.compiled.get() {
        Some(Ok(code)) => code as *const CompiledFunc as *mut CompiledFunc,
        _ => std::ptr::null_mut(),
    }
}

/// A defined function's interpreter code: translated when the module is
/// compiled, or on the function's first call (see [`crate::Config::lazy_translation`]).
/// Either way the body was validated when the module was compiled.
#[derive(Default)]
pub(crate) struct FuncCode {
    compiled: std::sync::OnceLock<Result<CompiledFunc, Error>>,
}

/// Where each defined function's body is in the module's bytes: found when
/// the module is decoded, or, for a module loaded from an artifact (whose
/// code section is not parsed: its code is compiled already), on first use
/// (a backtrace's function offsets), sparing the load a read of every body's
/// first bytes.
#[derive(Default)]
pub(crate) struct Bodies {
    /// The code section's entries (after their count) in the module's bytes,
    /// and their count, to delimit on first use.
    entries: std::ops::Range<usize>,
    count: u32,
    /// Each body's range; empty if the entries could not be delimited.
    ranges: std::sync::OnceLock<Box<[std::ops::Range<usize>]>>,
}

impl Bodies {
    /// Each defined function's body in `bytes` (the module's), delimited now if need be.
    fn ranges(&self, bytes: &[u8]) -> &[std::ops::Range<usize>] {
        self.ranges.get_or_init(|| delimit_bodies(bytes, self.entries.clone(), self.count).unwrap_or_default().into())
    }
}

impl ModuleInner {
    /// Native code of defined function `def_index` with the wasm calling
    /// convention (see `VMFuncRef::wasm_call`), or null when it runs interpreted.
    pub fn wasm_call(&self, def_index: u32) -> *const u8 {
        #[cfg(carnac_native_code)]
        if let Some(c) = self.compiled.get() {
            return c.wasm_call(def_index);
        }
        #[cfg(carnac_compiled)]
        if let Some(code) = self.tier.as_ref().and_then(|t| t.func(def_index)) {
            return code.wasm_call();
        }
        let _ = def_index;
        std::ptr::null()
    }

    /// The module's binary (WebAssembly, also for a module loaded from an artifact).
    pub fn wasm_bytes(&self) -> &[u8] {
        &self.bytes[..]
    }

    /// The module's binary, shared.
    #[cfg(carnac_native_code)]
    pub fn shared_bytes(&self) -> &SharedBytes {
        &self.bytes
    }

    /// Data segment `index`'s bytes.
    #[inline]
    /// What the GC instructions need of type index `index` (laid out for
    /// every type on first use).
    pub(crate) fn gc_layout(&self, index: u32) -> &crate::runtime::gc_heap::GcLayout {
        &self.gc_layouts.get_or_init(|| crate::runtime::gc_heap::module_layouts(&self.info))[index as usize]
    }

    pub fn data_bytes(&self, index: usize) -> &[u8] {
        &self.bytes[self.info.datas[index].range.clone()]
    }

    /// Whether defined function `def_index` runs as machine code now (the whole
    /// module compiled, or the function tiered up alone).
    #[inline]
    pub fn func_is_compiled(&self, def_index: u32) -> bool {
        #[cfg(carnac_compiled)]
        return (self.compiled.get().is_some() && !self.is_interpreted(def_index))
            || self.tier.as_ref().is_some_and(|t| t.func(def_index).is_some());
        #[cfg(not(carnac_compiled))]
        {
            let _ = def_index;
            false
        }
    }

    /// Whether defined function `def_index` runs in the interpreter even when
    /// the module is compiled (its body has an operator the compiled tier
    /// leaves to the interpreter, see [`interpreted_only`]).
    #[cfg(carnac_native_code)]
    #[cold]
    pub(crate) fn is_interpreted(&self, def_index: u32) -> bool {
        let interpreted = self.interpreted.get_or_init(|| {
            let ranges = self.bodies.ranges(&self.bytes);
            ranges
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let reader = wasmparser::BinaryReader::new_features(
                        &self.bytes[r.clone()],
                        r.start as u64,
                        self.engine.config().wasm_features(),
                    );
                    let ty = self.info.func_type(self.info.num_imported_funcs + i as u32);
                    body_interpreted_only(&wasmparser::FunctionBody::new(reader), ty, &self.info.heap_types)
                })
                .collect()
        });
        interpreted.get(def_index as usize).copied().unwrap_or(false)
    }

    /// Whether the module's functions run as compiled code (with tiering: from now on).
    #[inline]
    pub fn is_compiled(&self) -> bool {
        #[cfg(carnac_native_code)]
        return self.compiled.get().is_some();
        #[cfg(not(carnac_native_code))]
        false
    }

    /// The code of defined function `def_index`, translating it first if needed.
    /// Translation of a validated body fails only for limits of the interpreter
    /// (a frame too large), which become a trap.
    #[inline(always)]
    pub(crate) fn func_code(&self, def_index: u32) -> Result<&CompiledFunc, crate::TrapKind> {
        // The common case, kept small: the call path of the interpreter inlines it.
        if let Some(Ok(code)) = self.code[def_index as usize].compiled.get() {
            return Ok(code);
        }
        self.func_code_slow(def_index)
    }

    /// Where defined function `def_index`'s body starts in the module's bytes.
    pub(crate) fn body_start(&self, def_index: u32) -> Option<usize> {
        self.bodies.ranges(&self.bytes).get(def_index as usize).map(|r| r.start)
    }

    /// Where each translated defined function's code lies (its address range)
    /// and its function index (imports first), sorted by address: how a
    /// backtrace names the functions of its frames, which keep only their
    /// instruction pointer. As last built: functions translated lazily since
    /// are missing until `refresh_code_ranges`.
    pub(crate) fn code_ranges(&self) -> CodeRanges {
        self.code_ranges.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Builds `code_ranges` anew (for an address the last build lacks) and keeps it.
    pub(crate) fn refresh_code_ranges(&self) -> CodeRanges {
        let mut ranges: Vec<_> = (self.code.iter().enumerate())
            .filter_map(|(i, f)| {
                let Some(Ok(c)) = f.compiled.get() else { return None };
                let start = c.code.as_ptr() as usize;
                Some((start..start + std::mem::size_of_val(&*c.code), self.info.num_imported_funcs + i as u32))
            })
            .collect();
        ranges.sort_unstable_by_key(|(r, _)| r.start);
        let ranges: CodeRanges = ranges.into();
        *self.code_ranges.lock().unwrap_or_else(|e| e.into_inner()) = ranges.clone();
        ranges
    }

    /// Once compiled code is published (tiering up): empties the ready list, so
    /// that the interpreter's calls leave its fast path and `exec` sends them
    /// to the compiled code.
    #[cfg(carnac_compiled)]
    pub(crate) fn retire_interpreter_calls(&self) {
        for r in self.ready.iter() {
            r.store(std::ptr::null_mut(), Ordering::Release);
        }
    }

    /// [`ModuleInner::retire_interpreter_calls`] for one defined function.
    #[cfg(carnac_compiled)]
    pub(crate) fn retire_interpreter_call(&self, def_index: u32) {
        self.ready[def_index as usize].store(std::ptr::null_mut(), Ordering::Release);
    }

    /// Each defined function's body range in the module's bytes, and the bytes.
    #[cfg(carnac_compiled)]
    pub(crate) fn bodies(&self) -> (Vec<std::ops::Range<usize>>, &[u8]) {
        (self.bodies.ranges(&self.bytes).to_vec(), &self.bytes)
    }

    /// The defined function and wasm offset of compiled code at `pc`, if it is
    /// this module's (its code or an on-stack-replacement entry).
    #[cfg(carnac_native_code)]
    pub(crate) fn frame_at(&self, pc: usize) -> Option<(u32, Option<u32>)> {
        if let Some(f) = self.compiled.get().and_then(|c| c.frame_at(pc)) {
            return Some(f);
        }
        #[cfg(carnac_compiled)]
        return self.tier.as_ref()?.frame_at(pc);
        #[cfg(not(carnac_compiled))]
        None
    }

    /// Whether any of the module's code is compiled (for backtraces).
    #[cfg(carnac_native_code)]
    pub(crate) fn has_compiled_code(&self) -> bool {
        #[cfg(carnac_compiled)]
        if self.tier.as_ref().is_some_and(|t| t.has_code()) {
            return true;
        }
        self.compiled.get().is_some()
    }

    /// The ready list itself (one entry per defined function), for the
    /// interpreter's calls, which index it with a validated callee index.
    pub(crate) fn ready_list(&self) -> *const AtomicPtr<CompiledFunc> {
        self.ready.as_ptr()
    }

    #[cold]
    #[inline(never)]
    fn func_code_slow(&self, def_index: u32) -> Result<&CompiledFunc, crate::TrapKind> {
        let f = &self.code[def_index as usize];
        let compiled = f.compiled.get_or_init(|| self.translate_lazily(def_index));
        if let Ok(code) = compiled {
            self.ready[def_index as usize].store(code as *const CompiledFunc as *mut CompiledFunc, Ordering::Release);
            if self.func_is_compiled(def_index) {
                // Tiered up meanwhile: calls go to the compiled code (see `retire_interpreter_calls`).
                self.ready[def_index as usize].store(std::ptr::null_mut(), Ordering::Release);
            }
        }
        compiled.as_ref().map_err(|e| match e {
            Error::Invalid { .. } => crate::TrapKind::InvalidFunction,
            _ => crate::TrapKind::StackExhausted,
        })
    }

    #[cold]
    fn translate_lazily(&self, def_index: u32) -> Result<CompiledFunc, Error> {
        let range = self.bodies.ranges(&self.bytes).get(def_index as usize).cloned();
        let range = range.ok_or_else(|| unsupported(0, format!("no body for function {def_index}")))?;
        let reader = wasmparser::BinaryReader::new_features(
            &self.bytes[range.clone()],
            range.start as u64,
            self.engine.config().wasm_features(),
        );
        let body = wasmparser::FunctionBody::new(reader);
        let func_index = self.info.num_imported_funcs + def_index;
        let mut translator = interp::Translator::new(self.engine.config());
        match &self.resources {
            None => translator.translate(&self.info, func_index, &body, None),
            Some(resources) => {
                let to_validate = wasmparser::FuncToValidate {
                    resources: resources.clone(),
                    index: func_index,
                    ty: self.info.funcs[func_index as usize],
                    features: self.engine.config().wasm_features(),
                };
                let mut fv = to_validate.into_validator(Default::default());
                translator.translate(&self.info, func_index, &body, Some(&mut fv))
            }
        }
    }
}

/// The first bytes of a compiled artifact (see `compile::artifact`).
pub(crate) const ARTIFACT_MAGIC: [u8; 8] = *b"\0cwasm\r\n";

/// Why a build without the compiled tier refuses compiled code.
#[cfg(not(carnac_native_code))]
const NO_COMPILED_TIER: &str =
    "this build of Carnac has no compiled tier (it needs the `cranelift` feature, or `loader` to run artifacts, on Linux x86_64 or aarch64)";

/// Why a build without the compiler refuses to compile to native code.
#[cfg(not(carnac_compiled))]
const NO_COMPILER: &str = if cfg!(carnac_native_code) {
    "this build of Carnac has no compiler (built with the `loader` feature, without `cranelift`): it interprets wasm and runs artifacts compiled by a full build (`carnac compile`)"
} else {
    "this build of Carnac has no compiled tier (it needs the `cranelift` feature, on Linux x86_64 or aarch64)"
};

/// An artifact's code, published, for [`Module::build`]: the code and the
/// module's wasm bytes where they lie in the artifact.
#[cfg(carnac_native_code)]
type Precompiled = (crate::compile::module::CompiledModule, SharedBytes);
/// Never present without the compiled tier.
#[cfg(not(carnac_native_code))]
type Precompiled = std::convert::Infallible;

/// An artifact to load: bytes to check, then copy, or a mapped file.
#[cfg(carnac_native_code)]
enum ArtifactSource<'a> {
    Bytes(&'a [u8]),
    Image(crate::compile::code_memory::ArtifactImage),
}

/// A compiled WebAssembly module: validated, translated, immutable and cheap to clone.
#[derive(Clone)]
pub struct Module {
    pub(crate) inner: Arc<ModuleInner>,
    /// For a module made by [`crate::Instance::snapshot`]: the state its
    /// instances start in, instead of running the module's initialisation.
    pub(crate) warm: Option<Arc<crate::runtime::snapshot::WarmState>>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("name", &self.inner.info.name).finish_non_exhaustive()
    }
}

impl Module {
    /// Compiles a module from the binary format, loads a compiled artifact
    /// (see [`Module::deserialize`]) or, when the bytes start with neither's
    /// magic, compiles the text format.
    pub fn new(engine: &Engine, bytes: impl AsRef<[u8]>) -> Result<Module, Error> {
        let bytes = bytes.as_ref();
        if bytes.starts_with(b"\0asm") {
            return Self::from_binary(engine, bytes);
        }
        if Self::is_artifact(bytes) {
            return Self::deserialize(engine, bytes);
        }
        let binary = wat::parse_bytes(bytes).map_err(|e| Error::Text(one_line(&e.to_string())))?;
        Self::from_binary(engine, &binary)
    }

    /// Reads and compiles a module file (binary or text), or loads a compiled
    /// artifact (recognised by its header; mapped, see [`Module::deserialize_file`]).
    pub fn from_file(engine: &Engine, path: impl AsRef<std::path::Path>) -> Result<Module, Error> {
        use std::io::Read;
        let path = path.as_ref();
        let cannot_read = |e: std::io::Error| Error::Io(format!("cannot read {}: {e}", path.display()));
        let mut file = std::fs::File::open(path).map_err(cannot_read)?;
        #[cfg(carnac_native_code)]
        if file.metadata().is_ok_and(|m| m.is_file()) {
            // An artifact is mapped, not read (see `Module::deserialize_file`).
            use std::io::Seek;
            let mut head = [0u8; ARTIFACT_MAGIC.len()];
            if file.read_exact(&mut head).is_ok() && Self::is_artifact(&head) {
                return Self::deserialize_open_file(engine, &file, path);
            }
            file.rewind().map_err(cannot_read)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(cannot_read)?;
        let module = if bytes.starts_with(b"\0asm") {
            // The module keeps the bytes read (no second copy of a large binary).
            let owned = SharedBytes::from(bytes);
            Self::from_binary_owned(engine, &owned.clone(), Some(owned))
        } else {
            Self::new(engine, bytes)
        };
        module.map_err(|e| match e {
            Error::Artifact(m) => Error::Artifact(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Compiles a module from the binary format only. With
    /// [`crate::Strategy::Cranelift`] and [`crate::Config::cache`], the code
    /// comes from the code cache when it has it (and goes there when not).
    pub fn from_binary(engine: &Engine, bytes: &[u8]) -> Result<Module, Error> {
        Self::from_binary_owned(engine, bytes, None)
    }

    /// [`Module::from_binary`], keeping `owned` (the same bytes, shared) if given.
    fn from_binary_owned(engine: &Engine, bytes: &[u8], owned: Option<SharedBytes>) -> Result<Module, Error> {
        #[cfg(carnac_compiled)]
        if engine.config().strategy == crate::Strategy::Auto {
            // Cached code runs from the first call; without it, the module
            // starts interpreted and the background compiler stores its code.
            if let Some(dir) = crate::compile::cache::dir(engine) {
                if let Some(m) = crate::compile::cache::get(engine, &dir, bytes, |e| Self::load_entry(engine, e, bytes))
                {
                    return Ok(m);
                }
            }
        }
        #[cfg(carnac_compiled)]
        if engine.config().strategy == crate::Strategy::Cranelift {
            if let Some(dir) = crate::compile::cache::dir(engine) {
                return crate::compile::cache::get_or_compile(
                    engine,
                    &dir,
                    bytes,
                    |entry| Self::load_entry(engine, entry, bytes),
                    || Self::build(engine, bytes, None, owned),
                    Module::serialize,
                );
            }
        }
        Self::build(engine, bytes, None, owned)
    }

    /// Whether `bytes` start like a compiled artifact (`carnac compile`,
    /// [`Module::serialize`]) rather than a wasm binary or text: what
    /// [`Module::new`] and [`Module::from_file`] look at to load one.
    pub fn is_artifact(bytes: &[u8]) -> bool {
        bytes.starts_with(&ARTIFACT_MAGIC)
    }

    /// The module as a compiled artifact (a `.cwasm` file's contents): its
    /// machine code, what running it needs, and its wasm bytes, for
    /// [`Module::deserialize`] to load without compiling. Only modules compiled
    /// with [`crate::Strategy::Cranelift`] (or loaded from an artifact) have
    /// machine code to serialize.
    pub fn serialize(&self) -> Result<Vec<u8>, Error> {
        if self.warm.is_some() {
            return Err(Error::Usage(
                "a snapshot's module cannot be serialized: write it as a module with Snapshot::to_wasm".into(),
            ));
        }
        #[cfg(carnac_compiled)]
        if self.inner.tier.is_some() && self.inner.compiled.get().is_none() {
            // Tiering, not compiled yet: compile now (on this thread).
            crate::compile::tier::compile_now(&self.inner)?;
        }
        #[cfg(carnac_native_code)]
        if let Some(code) = self.inner.compiled.get() {
            return crate::compile::artifact::serialize(&self.inner.engine, &self.inner.bytes[..], code);
        }
        Err(Error::Usage("only a module compiled with Strategy::Cranelift or Auto can be serialized".into()))
    }

    /// Loads a module from a compiled artifact ([`Module::serialize`], `carnac
    /// compile`) without running the compiler.
    ///
    /// Everything read is checked first (see below); a damaged artifact, or one
    /// made by another build of Carnac, for another target or CPU, or with
    /// other code-changing settings than `engine`'s (strategy, bounds checks
    /// and guard size, fuel, interruption, wasm features) is an
    /// [`Error::Artifact`] whose one-line message says what is wrong or
    /// differs, never a crash. The module's wasm, stored in the artifact, is
    /// decoded again to rebuild what instantiation needs: every section is
    /// parsed and validated except the function bodies, which were validated
    /// when the artifact was compiled (their code section is not even parsed).
    ///
    /// This copies `bytes` once (after checking them) into memory of the
    /// module's own; [`Module::deserialize_file`] maps the file instead and
    /// runs its code where it lies. Measured on a 1 MiB module (4,800
    /// functions; `examples/load_artifact.rs`, on a 2-core x86_64 VM): loading
    /// its 4.7 MB artifact with `deserialize_file` takes about 0.43-0.45 ms
    /// (half of it the checksum, which reads every byte; then checking the
    /// 43,600 trap sites and decoding the wasm's sections), and instantiating
    /// it 0.04 ms more; `deserialize` of the same bytes in memory about 1.3
    /// ms (allocating and filling the copy). Decoding and validating every
    /// body would take 4.5 ms, and compiling the module about a second.
    ///
    /// **Artifacts are trusted code.** The checks protect against damage and
    /// mismatch, not malice: the checksum is not a signature, and a crafted
    /// artifact with valid offsets and checksum can contain any machine code,
    /// which then runs in this process. Load only artifacts you produced (or
    /// whose origin you trust as you would a native library). This function is
    /// safe in Rust's sense for honest inputs; it is not a sandbox boundary.
    pub fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<Module, Error> {
        #[cfg(carnac_native_code)]
        return Self::from_artifact(engine, ArtifactSource::Bytes(bytes), None);
        #[cfg(not(carnac_native_code))]
        {
            let _ = (engine, bytes);
            Err(Error::Compile(NO_COMPILED_TIER.into()))
        }
    }

    /// [`Module::deserialize`] of a file; errors name the file.
    ///
    /// The file is mapped into memory, not read: its code runs where it lies
    /// (mapped executable, as a shared library's is; copied instead where that
    /// is impossible: a `noexec` file system, pages over 16 KiB), and its wasm
    /// and tables are used where they lie. So the file must not be modified or
    /// truncated in place while the module lives: replace it by renaming a new
    /// file over it, as `carnac compile` and the code cache do.
    pub fn deserialize_file(engine: &Engine, path: impl AsRef<std::path::Path>) -> Result<Module, Error> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::Io(format!("cannot read {}: {e}", path.display())))?;
        Self::deserialize_open_file(engine, &file, path)
    }

    /// [`Module::deserialize_file`] of `file`, open at `path`.
    fn deserialize_open_file(engine: &Engine, file: &std::fs::File, path: &std::path::Path) -> Result<Module, Error> {
        #[cfg(carnac_native_code)]
        {
            let image = crate::compile::code_memory::ArtifactImage::map_file(file)
                .map_err(|e| Error::Io(format!("cannot read {}: {e}", path.display())))?;
            Self::from_artifact(engine, ArtifactSource::Image(image), None).map_err(|e| match e {
                Error::Artifact(m) => Error::Artifact(format!("{}: {m}", path.display())),
                other => other,
            })
        }
        #[cfg(not(carnac_native_code))]
        {
            let _ = (file, path);
            Self::deserialize(engine, &[])
        }
    }

    /// Loads a code cache entry, which must hold `wasm`.
    #[cfg(carnac_compiled)]
    fn load_entry(engine: &Engine, entry: &std::fs::File, wasm: &[u8]) -> Result<Module, Error> {
        let image = crate::compile::code_memory::ArtifactImage::map_file(entry)
            .map_err(|e| Error::Io(format!("cannot read a cache entry: {e}")))?;
        Self::from_artifact(engine, ArtifactSource::Image(image), Some(wasm))
    }

    /// Loads an artifact, which must hold `expect_wasm` if given (a cache entry).
    #[cfg(carnac_native_code)]
    fn from_artifact(engine: &Engine, source: ArtifactSource<'_>, expect_wasm: Option<&[u8]>) -> Result<Module, Error> {
        use crate::compile::{artifact, code_memory::ArtifactImage, module::CompiledModule};
        // Bytes are checked before they are copied: a damaged artifact costs no copy.
        let (image, parsed) = match source {
            ArtifactSource::Bytes(bytes) => {
                let parsed = artifact::parse(engine, bytes)?;
                let image = ArtifactImage::copy_of(bytes)
                    .map_err(|e| Error::Compile(format!("cannot load the artifact: {e}")))?;
                (image, parsed)
            }
            ArtifactSource::Image(image) => {
                let parsed = artifact::parse(engine, image.bytes())?;
                (image, parsed)
            }
        };
        let wasm = parsed.wasm.clone();
        if expect_wasm.is_some_and(|w| w != &image.bytes()[wasm.clone()]) {
            return Err(Error::Artifact("the artifact holds another module".into()));
        }
        let (compiled, bytes) = CompiledModule::from_artifact(image, parsed)?;
        let bytes = bytes.slice(wasm);
        Self::build(engine, &bytes.clone(), Some((compiled, bytes)), None)
    }

    /// Decodes and validates `bytes` and compiles them for the engine's tier, or,
    /// given a checked artifact of them, takes its code instead (and skips
    /// validating the function bodies: see [`Module::deserialize`]).
    ///
    /// The module keeps its binary (data segments, lazy translation, the
    /// compiler and snapshots read it): `owned` when the caller has it shared
    /// already (no copy), else a copy of `bytes`.
    fn build(
        engine: &Engine,
        bytes: &[u8],
        precompiled: Option<Precompiled>,
        owned: Option<SharedBytes>,
    ) -> Result<Module, Error> {
        let validate_bodies = precompiled.is_none();
        let (info, code, bodies, resources) = decode(engine, bytes, validate_bodies)?;
        #[cfg(carnac_compiled)]
        let bytes_in = bytes;
        #[cfg(carnac_native_code)]
        let (precompiled, bytes) = match precompiled {
            Some((code, shared)) => (Some(code), shared),
            None => (None, owned.unwrap_or_else(|| bytes.into())),
        };
        #[cfg(not(carnac_native_code))]
        let bytes = owned.unwrap_or_else(|| SharedBytes::from(bytes));
        let resources = resources.filter(|_| engine.config().lazy_validation || !validate_bodies);
        let code: Box<[FuncCode]> = code.into();
        let ready = code.iter().map(|f| AtomicPtr::new(ready_ptr(f))).collect();
        #[cfg(carnac_native_code)]
        let compiled = std::sync::OnceLock::new();
        #[cfg(carnac_compiled)]
        let tiered = precompiled.is_none() && engine.config().strategy == crate::Strategy::Auto;
        match (engine.config().strategy, precompiled) {
            #[cfg(carnac_native_code)]
            (_, Some(p)) => {
                if p.defined_funcs() != code.len() {
                    return Err(Error::Artifact(format!(
                        "damaged artifact: code for {} functions, the module defines {}",
                        p.defined_funcs(),
                        code.len()
                    )));
                }
                let _ = compiled.set(p);
            }
            #[cfg(not(carnac_native_code))]
            (_, Some(_)) => return Err(Error::Compile(NO_COMPILED_TIER.into())),
            #[cfg(carnac_compiled)]
            (crate::Strategy::Cranelift, None) => {
                let bodies = bodies.ranges(bytes_in);
                let _ = compiled.set(crate::compile::module::CompiledModule::new(engine, &info, bytes_in, bodies)?);
            }
            #[cfg(not(carnac_compiled))]
            (crate::Strategy::Cranelift, None) => return Err(Error::Compile(NO_COMPILER.into())),
            // Without the compiler, `Auto` interprets.
            _ => {}
        }
        #[cfg(carnac_compiled)]
        let hot: Box<[std::sync::atomic::AtomicI32]> = if tiered {
            let hot = engine.config().tier_up_threshold as i32;
            code.iter().map(|_| std::sync::atomic::AtomicI32::new(hot)).collect()
        } else {
            Box::default()
        };
        #[cfg(not(carnac_compiled))]
        let hot: Box<[std::sync::atomic::AtomicI32]> = Box::default();
        Ok(Module {
            inner: Arc::new(ModuleInner {
                engine: engine.clone(),
                vm_offsets: crate::runtime::vmctx::VMOffsets::new(&info),
                #[cfg(carnac_native_code)]
                compiled,
                #[cfg(carnac_compiled)]
                tier: tiered.then(|| crate::compile::tier::TierState::new(code.len())),
                hot,
                info,
                code,
                bodies,
                ready,
                bytes,
                resources,
                code_ranges: Default::default(),
                memory_images: Default::default(),
                gc_layouts: Default::default(),
                #[cfg(carnac_native_code)]
                interpreted: Default::default(),
            }),
            warm: None,
        })
    }

    /// Whether the module's functions now run as machine code: compiled with
    /// [`crate::Strategy::Cranelift`], loaded from an artifact or the code
    /// cache, or tiered up by [`crate::Strategy::Auto`] (which happens in the
    /// background, so this may turn true at any time).
    pub fn is_compiled(&self) -> bool {
        self.inner.is_compiled()
    }

    /// The defined functions (module function indices, imports first) that
    /// run in the interpreter although the module is compiled: those with an
    /// operator the compiled tier leaves to the interpreter (exception
    /// handling's `try_table`, `throw` and `throw_ref`, see
    /// [`crate::Config::wasm_exceptions`]; the GC proposal's struct, array and
    /// cast operators), or a GC reference among its parameters, results or
    /// locals. Empty when the module is not compiled.
    pub fn interpreted_functions(&self) -> Vec<u32> {
        #[cfg(carnac_native_code)]
        if self.is_compiled() {
            let m = &self.inner;
            return (0..m.code.len() as u32)
                .filter(|&d| m.is_interpreted(d))
                .map(|d| m.info.num_imported_funcs + d)
                .collect();
        }
        Vec::new()
    }

    /// The engine the module was compiled for.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The module's name from the name section, if any.
    pub fn name(&self) -> Option<&str> {
        self.inner.info.name.as_deref()
    }

    /// The module's imports, in the order `Instance::new` takes them.
    pub fn imports(&self) -> impl ExactSizeIterator<Item = ImportType> + '_ {
        let info = &self.inner.info;
        info.imports.iter().map(move |(m, n, idx)| ImportType {
            module: m.clone(),
            name: n.clone(),
            ty: info.entity_type(*idx),
        })
    }

    /// The module's exports, in their declared order.
    pub fn exports(&self) -> impl ExactSizeIterator<Item = ExportType> + '_ {
        let info = &self.inner.info;
        info.exports.iter().map(move |(n, idx)| ExportType { name: n.clone(), ty: info.entity_type(*idx) })
    }

    /// The type of the export `name`, if the module has one.
    pub fn get_export(&self, name: &str) -> Option<ExternType> {
        let info = &self.inner.info;
        info.exports.iter().find(|(n, _)| n == name).map(|(_, idx)| info.entity_type(*idx))
    }
}

/// Condenses a text-format error (message, location, source snippet) to one line.
/// The operators the compiled tier does not translate: a function using one
/// runs in the interpreter inside an otherwise compiled module (issue 17,
/// point 3). Its compiled code is a stub that enters the interpreter
/// (`compile::translate`), so calls to it from compiled code, function
/// references and the host reach it as they reach any compiled function;
/// its own calls to compiled functions go through the runtime's call entry.
/// Today: exception handling's `try_table`, `throw` and `throw_ref` (compiled
/// code unwinds exceptions like traps, through the interpreter's catches).
#[cfg(carnac_native_code)]
pub(crate) fn interpreted_only(op: &wasmparser::Operator<'_>) -> bool {
    use wasmparser::Operator as O;
    matches!(op, O::TryTable { .. } | O::Throw { .. } | O::ThrowRef)
        || crate::interp::cast::is_cast_operator(op)
        || crate::interp::gc::is_gc_heap_operator(op)
}

/// Whether a GC reference (of `any`'s hierarchy: `anyref`, `eqref`,
/// `i31ref`, `structref`, `arrayref`, concrete struct and array types, `none`)
/// is a value of `ty`: a function with such a parameter, result or local runs
/// in the interpreter too, so that no compiled frame holds a GC object (only
/// an `externref` converted from one, which no collection can see while
/// compiled frames are live: see `runtime::gc_heap`).
#[cfg(carnac_native_code)]
pub(crate) fn is_gc_ref(ty: &ValType) -> bool {
    matches!(ty, ValType::Ref(r) if r.heap_type().top() == crate::types::HeapType::Any)
}

/// Whether a (validated) body of a function of type `ty` runs in the
/// interpreter in the compiled tier: it has an operator of
/// [`interpreted_only`], or a GC reference ([`is_gc_ref`]) among its
/// parameters, results or locals.
#[cfg(carnac_native_code)]
pub(crate) fn body_interpreted_only(body: &wasmparser::FunctionBody<'_>, ty: &FuncType, types: &[HeapType]) -> bool {
    if ty.params().iter().chain(ty.results()).any(is_gc_ref) {
        return true;
    }
    if let Ok(locals) = body.get_locals_reader() {
        for local in locals {
            match local {
                Ok((_, t)) if ValType::from_wasmparser(t, types).is_ok_and(|t| is_gc_ref(&t)) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }
    let Ok(mut reader) = body.get_operators_reader() else { return false };
    while !reader.eof() {
        match reader.read() {
            Ok(op) if interpreted_only(&op) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim);
    let first = lines.next().unwrap_or("invalid text module");
    match lines.find_map(|l| l.strip_prefix("--> ")) {
        Some(at) => format!("invalid text module: {first} (at {at})"),
        None => format!("invalid text module: {first}"),
    }
}

pub(crate) fn invalid(e: wasmparser::BinaryReaderError) -> Error {
    Error::Invalid { offset: e.offset(), message: e.message().to_string() }
}

/// An operator as text (`I32Add`, `MemoryAtomicWait32 { memarg: .. }`), for
/// error messages. One out-of-line function: `Operator`'s derived `Debug` is
/// `#[inline]` and 36 KB, and each caller would otherwise carry its own copy.
#[inline(never)]
pub(crate) fn operator_text(op: &wasmparser::Operator<'_>) -> String {
    format!("{op:?}")
}

fn unsupported(offset: u64, message: String) -> Error {
    Error::Invalid { offset, message }
}

fn const_expr(expr: &wasmparser::ConstExpr<'_>) -> Result<ConstExpr, Error> {
    use wasmparser::Operator as O;
    let mut reader = expr.get_operators_reader();
    let offset = reader.original_position();
    let op = reader.read().map_err(invalid)?;
    let value = match op {
        O::I32Const { value } => ConstExpr::Bits(value as u32 as u128),
        O::I64Const { value } => ConstExpr::Bits(value as u64 as u128),
        O::F32Const { value } => ConstExpr::Bits(value.bits() as u128),
        O::F64Const { value } => ConstExpr::Bits(value.bits() as u128),
        O::V128Const { value } => ConstExpr::Bits(value.i128() as u128),
        O::RefNull { .. } => ConstExpr::RefNull,
        O::RefFunc { function_index } => ConstExpr::RefFunc(function_index),
        O::GlobalGet { global_index } => ConstExpr::GlobalGet(global_index),
        // A GC operator: the general form below.
        _ => ConstExpr::RefNull,
    };
    let single = !matches!(value, ConstExpr::RefNull) || matches!(op, O::RefNull { .. });
    if single {
        if let wasmparser::Operator::End = reader.read().map_err(invalid)? {
            return Ok(value);
        }
    }
    // Longer: an extended constant expression (the validator has checked it).
    let mut ops = Vec::new();
    let mut reader = expr.get_operators_reader();
    loop {
        let offset = reader.original_position();
        ops.push(match reader.read().map_err(invalid)? {
            O::End => break,
            O::I32Const { value } => ConstOp::I32(value),
            O::I64Const { value } => ConstOp::I64(value),
            O::GlobalGet { global_index } => ConstOp::GlobalGet(global_index),
            O::I32Add => ConstOp::I32Add,
            O::I32Sub => ConstOp::I32Sub,
            O::I32Mul => ConstOp::I32Mul,
            O::I64Add => ConstOp::I64Add,
            O::I64Sub => ConstOp::I64Sub,
            O::I64Mul => ConstOp::I64Mul,
            O::F32Const { value } => ConstOp::I32(value.bits() as i32),
            O::F64Const { value } => ConstOp::I64(value.bits() as i64),
            O::V128Const { value } => ConstOp::V128(value.i128() as u128),
            O::RefNull { .. } => ConstOp::I64(0),
            O::RefFunc { function_index } => ConstOp::RefFunc(function_index),
            O::RefI31 => ConstOp::RefI31,
            O::AnyConvertExtern | O::ExternConvertAny => ConstOp::Convert,
            O::StructNew { struct_type_index: t } => ConstOp::New(ConstNew::Struct, t, 0),
            O::StructNewDefault { struct_type_index: t } => ConstOp::New(ConstNew::StructDefault, t, 0),
            O::ArrayNew { array_type_index: t } => ConstOp::New(ConstNew::Array, t, 0),
            O::ArrayNewDefault { array_type_index: t } => ConstOp::New(ConstNew::ArrayDefault, t, 0),
            O::ArrayNewFixed { array_type_index: t, array_size: n } => ConstOp::New(ConstNew::ArrayFixed, t, n),
            other => {
                return Err(unsupported(offset, format!("unsupported constant expression {}", operator_text(&other))))
            }
        });
    }
    if ops.iter().any(|op| matches!(op, ConstOp::GlobalGet(_) | ConstOp::RefFunc(_) | ConstOp::New(..))) {
        return Ok(ConstExpr::Extended(ops.into()));
    }
    // Only constants: folded once, here.
    let bits = eval_ops(&ops, |_| None, |_| 0, &mut |_, _, _, _| None)
        .ok_or_else(|| unsupported(offset, "malformed constant expression".into()))?;
    Ok(ConstExpr::Bits(bits))
}

fn limits(min: u64, max: Option<u64>) -> Limits {
    Limits { min, max }
}

fn table_type(t: &wasmparser::TableType, types: &[HeapType], offset: u64) -> Result<TableType, Error> {
    let element = ValType::Ref(RefType::from_wasmparser(t.element_type, types).map_err(|m| unsupported(offset, m))?);
    Ok(TableType { element, limits: limits(t.initial, t.maximum), table64: t.table64 })
}

fn global_type(g: &wasmparser::GlobalType, types: &[HeapType], offset: u64) -> Result<GlobalType, Error> {
    Ok(GlobalType {
        content: ValType::from_wasmparser(g.content_type, types).map_err(|m| unsupported(offset, m))?,
        mutability: if g.mutable { Mutability::Var } else { Mutability::Const },
    })
}

/// A function body waiting for validation and translation.
struct PendingFunc<'a> {
    index: u32,
    body: wasmparser::FunctionBody<'a>,
    to_validate: wasmparser::FuncToValidate<wasmparser::ValidatorResources>,
}

/// Code sections at least this large are validated and translated on several
/// threads (below it, starting threads costs more than it saves).
const PARALLEL_MIN_BYTES: usize = 64 << 10;

/// Validates (and, unless translation is lazy, translates) `pending`
/// (consecutive functions), appending to `code` in order. Large code sections are split into contiguous chunks of similar
/// size, one per available core (see [`crate::Config::parallel_compilation`]);
/// the first error in function order is the one reported.
fn translate_all(
    engine: &Engine,
    info: &ModuleInfo,
    pending: Vec<PendingFunc<'_>>,
    code: &mut Vec<FuncCode>,
) -> Result<(), Error> {
    let config = engine.config();
    let total: usize = pending
        .iter()
        .map(|p| {
            let r = p.body.range();
            (r.end - r.start) as usize
        })
        .sum();
    let threads = if config.parallel_compilation && total >= PARALLEL_MIN_BYTES {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(16)
    } else {
        1
    };
    if threads <= 1 {
        code.extend(translate_chunk(engine, info, pending)?);
        return Ok(());
    }
    let mut chunks: Vec<Vec<PendingFunc<'_>>> = Vec::with_capacity(threads);
    let per_chunk = total.div_ceil(threads);
    let (mut current, mut size) = (Vec::new(), 0);
    for p in pending {
        size += {
            let r = p.body.range();
            (r.end - r.start) as usize
        };
        current.push(p);
        if size >= per_chunk {
            chunks.push(std::mem::take(&mut current));
            size = 0;
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    // Each chunk is taken by whichever thread runs it; a chunk whose thread
    // could not be started is run by this thread instead.
    let chunks: Vec<std::sync::Mutex<Option<Vec<PendingFunc<'_>>>>> =
        chunks.into_iter().map(|c| std::sync::Mutex::new(Some(c))).collect();
    let run = |i: usize| {
        let chunk = chunks[i].lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
        translate_chunk(engine, info, chunk)
    };
    let results: Vec<Result<Vec<FuncCode>, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            (1..chunks.len()).map(|i| std::thread::Builder::new().spawn_scoped(scope, move || run(i)).ok()).collect();
        let mut results = vec![run(0)];
        for (i, h) in handles.into_iter().enumerate() {
            results.push(match h {
                Some(h) => h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                None => run(i + 1),
            });
        }
        results
    });
    for r in results {
        code.extend(r?);
    }
    Ok(())
}

fn translate_chunk(engine: &Engine, info: &ModuleInfo, chunk: Vec<PendingFunc<'_>>) -> Result<Vec<FuncCode>, Error> {
    let lazy = engine.config().lazy_translation;
    let mut translator = interp::Translator::new(engine.config());
    let mut allocs = wasmparser::FuncValidatorAllocations::default();
    let mut out = Vec::with_capacity(chunk.len());
    for p in chunk {
        let mut fv = p.to_validate.into_validator(allocs);
        let compiled = std::sync::OnceLock::new();
        if engine.config().lazy_validation {
            // Validated (and translated) on first call.
        } else if lazy {
            fv.validate(&p.body).map_err(invalid)?;
        } else {
            let _ = compiled.set(Ok(translator.translate(info, p.index, &p.body, Some(&mut fv))?));
        }
        out.push(FuncCode { compiled });
        allocs = fv.into_allocations();
    }
    Ok(out)
}

type Decoded = (ModuleInfo, Vec<FuncCode>, Bodies, Option<wasmparser::ValidatorResources>);

/// The ranges of the first `count` function bodies of the code section whose
/// entries (each a u32 length, then the body) are `entries` of `bytes`, and
/// where the next entry starts.
fn read_bodies(
    bytes: &[u8],
    entries: std::ops::Range<usize>,
    count: u32,
) -> Result<(Vec<std::ops::Range<usize>>, usize), Error> {
    let start = entries.start;
    let section = bytes.get(entries.clone());
    let section = section.ok_or_else(|| unsupported(start as u64, "unexpected end of the code section".into()))?;
    // Every entry takes at least a byte: the count cannot make us allocate much.
    if count as usize > section.len() {
        return Err(unsupported(start as u64, format!("{count} function bodies in {} bytes", section.len())));
    }
    let mut reader = wasmparser::BinaryReader::new(section, start as u64);
    let mut bodies = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = reader.read_var_u32().map_err(invalid)? as usize;
        let at = reader.original_position() as usize;
        reader.read_bytes(len).map_err(invalid)?;
        bodies.push(at..at + len);
    }
    Ok((bodies, reader.original_position() as usize))
}

/// The ranges of all `count` function bodies of the code section whose
/// entries are `entries` of `bytes`, which they must fill.
fn delimit_bodies(
    bytes: &[u8],
    entries: std::ops::Range<usize>,
    count: u32,
) -> Result<Vec<std::ops::Range<usize>>, Error> {
    let (bodies, end) = read_bodies(bytes, entries.clone(), count)?;
    if end != entries.end {
        return Err(unsupported(end as u64, "section size mismatch: unexpected data at the end".into()));
    }
    Ok(bodies)
}

/// Decodes and validates a module; with `validate_bodies` false, function
/// bodies are only delimited (for a module whose code comes from an artifact).
fn decode(engine: &Engine, bytes: &[u8], validate_bodies: bool) -> Result<Decoded, Error> {
    let features = engine.config().wasm_features();
    let mut validator = Validator::new_with_features(features);
    let mut parser = Parser::new(0);
    // Decode with the enabled features only, so that e.g. 64-bit limit encodings are
    // malformed unless memory64 is on.
    parser.set_features(features);
    let mut info = ModuleInfo::default();
    let mut code = Vec::new();
    // Function bodies are validated and translated together once the code
    // section is complete (in parallel when it is large).
    let mut pending: Vec<PendingFunc<'_>> = Vec::new();
    let mut resources = None;
    let mut bodies = Bodies::default();
    let mut body_ranges = Vec::new();
    let mut data = bytes;
    loop {
        let payload = match parser.parse(data, true).map_err(invalid)? {
            wasmparser::Chunk::Parsed { consumed, payload } => {
                data = &data[consumed..];
                payload
            }
            // Only without `eof`.
            wasmparser::Chunk::NeedMoreData(_) => unreachable!("the parser has all the bytes"),
        };
        if !pending.is_empty() && !matches!(payload, Payload::CodeSectionEntry(_)) {
            translate_all(engine, &info, std::mem::take(&mut pending), &mut code)?;
        }
        let valid = validator.payload(&payload).map_err(invalid)?;
        match payload {
            Payload::TypeSection(reader) => {
                let offset = reader.range().start;
                for group in reader {
                    let group: Vec<_> = group.map_err(invalid)?.into_types().collect();
                    let registered = engine
                        .type_registry()
                        .register_group(&group, &info.sub_types)
                        .map_err(|m| unsupported(offset, m))?;
                    for t in registered {
                        let reg = t.registered();
                        info.type_ids.push(reg.id);
                        let f = match &t {
                            CompositeType::Func(f) => f.clone(),
                            _ => FuncType::new([], []),
                        };
                        info.type_param_slots.push(f.param_slots() as u32);
                        info.types.push(f);
                        info.heap_types.push(t.heap_type());
                        info.sub_types.push(t);
                    }
                }
            }
            Payload::ImportSection(reader) => {
                let offset = reader.range().start;
                for group in reader {
                    for import in group.map_err(invalid)? {
                        let (_, import) = import.map_err(invalid)?;
                        let idx = match import.ty {
                            TypeRef::Func(t) => {
                                info.funcs.push(t);
                                info.num_imported_funcs += 1;
                                EntityIndex::Func(info.funcs.len() as u32 - 1)
                            }
                            TypeRef::Table(t) => {
                                info.tables.push(table_type(&t, &info.heap_types, offset)?);
                                info.table_inits.push(None);
                                info.num_imported_tables += 1;
                                EntityIndex::Table(info.tables.len() as u32 - 1)
                            }
                            TypeRef::Memory(m) => {
                                info.memories.push(MemoryType {
                                    limits: limits(m.initial, m.maximum),
                                    shared: m.shared,
                                    memory64: m.memory64,
                                });
                                info.num_imported_memories += 1;
                                EntityIndex::Memory(info.memories.len() as u32 - 1)
                            }
                            TypeRef::Global(g) => {
                                info.globals.push(global_type(&g, &info.heap_types, offset)?);
                                info.num_imported_globals += 1;
                                EntityIndex::Global(info.globals.len() as u32 - 1)
                            }
                            TypeRef::Tag(t) => {
                                info.tags.push(t.func_type_idx);
                                info.num_imported_tags += 1;
                                EntityIndex::Tag(info.tags.len() as u32 - 1)
                            }
                            other => return Err(unsupported(offset, format!("unsupported import {other:?}"))),
                        };
                        info.imports.push((import.module.to_string(), import.name.to_string(), idx));
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                // The validator has read every entry (and bounds the count).
                info.funcs.reserve(reader.count() as usize);
                for t in reader {
                    info.funcs.push(t.map_err(invalid)?);
                }
            }
            Payload::TableSection(reader) => {
                let offset = reader.range().start;
                for t in reader {
                    let t = t.map_err(invalid)?;
                    info.tables.push(table_type(&t.ty, &info.heap_types, offset)?);
                    info.table_inits.push(match t.init {
                        wasmparser::TableInit::RefNull => None,
                        wasmparser::TableInit::Expr(e) => Some(const_expr(&e)?),
                    });
                }
            }
            Payload::MemorySection(reader) => {
                for m in reader {
                    let m = m.map_err(invalid)?;
                    info.memories.push(MemoryType {
                        limits: limits(m.initial, m.maximum),
                        shared: m.shared,
                        memory64: m.memory64,
                    });
                }
            }
            Payload::GlobalSection(reader) => {
                let offset = reader.range().start;
                for g in reader {
                    let g = g.map_err(invalid)?;
                    info.globals.push(global_type(&g.ty, &info.heap_types, offset)?);
                    info.global_inits.push(const_expr(&g.init_expr)?);
                }
            }
            Payload::ExportSection(reader) => {
                for e in reader {
                    let e = e.map_err(invalid)?;
                    let idx = match e.kind {
                        ExternalKind::Func => EntityIndex::Func(e.index),
                        ExternalKind::Table => EntityIndex::Table(e.index),
                        ExternalKind::Memory => EntityIndex::Memory(e.index),
                        ExternalKind::Global => EntityIndex::Global(e.index),
                        ExternalKind::Tag => EntityIndex::Tag(e.index),
                        other => return Err(unsupported(0, format!("unsupported export {other:?}"))),
                    };
                    info.exports.push((e.name.to_string(), idx));
                }
            }
            Payload::TagSection(reader) => {
                for t in reader {
                    info.tags.push(t.map_err(invalid)?.func_type_idx);
                }
            }
            Payload::StartSection { func, .. } => info.start = Some(func),
            Payload::ElementSection(reader) => {
                for e in reader {
                    let e = e.map_err(invalid)?;
                    let mode = match e.kind {
                        ElementKind::Passive => ElemMode::Passive,
                        ElementKind::Declared => ElemMode::Declared,
                        ElementKind::Active { table_index, offset_expr } => {
                            ElemMode::Active { table: table_index.unwrap_or(0), offset: const_expr(&offset_expr)? }
                        }
                    };
                    let mut items = Vec::new();
                    match e.items {
                        ElementItems::Functions(r) => {
                            for f in r {
                                items.push(ConstExpr::RefFunc(f.map_err(invalid)?));
                            }
                        }
                        ElementItems::Expressions(_, r) => {
                            for x in r {
                                items.push(const_expr(&x.map_err(invalid)?)?);
                            }
                        }
                    }
                    info.elems.push(ElemSegment { mode, items: items.into() });
                }
            }
            Payload::DataSection(reader) => {
                for d in reader {
                    let d = d.map_err(invalid)?;
                    let mode = match d.kind {
                        wasmparser::DataKind::Passive => DataMode::Passive,
                        wasmparser::DataKind::Active { memory_index, offset_expr } => {
                            DataMode::Active { memory: memory_index, offset: const_expr(&offset_expr)? }
                        }
                    };
                    let start = d.data.as_ptr() as usize - bytes.as_ptr() as usize;
                    info.datas.push(DataSegment { mode, range: start..start + d.data.len() });
                }
            }
            Payload::CodeSectionStart { count, size, .. } if !validate_bodies => {
                // Code from an artifact (compiled already): the section is
                // skipped, not parsed entry by entry through the parser and
                // validator (thousands of functions), its bodies delimited on
                // first use (`Bodies`).
                let start = bytes.len() - data.len();
                let entries = start
                    ..start
                        .checked_add(size as usize)
                        .filter(|&end| end <= bytes.len())
                        .ok_or_else(|| unsupported(start as u64, "unexpected end of the code section".into()))?;
                if let Some(first) = read_bodies(bytes, entries.clone(), count.min(1))?.0.pop() {
                    // What validating a body on first call needs (see `translate_lazily`):
                    // the first body stands for them all.
                    let body = wasmparser::BinaryReader::new(&bytes[first.clone()], first.start as u64);
                    let body = wasmparser::FunctionBody::new(body);
                    resources = Some(validator.code_section_entry(&body).map_err(invalid)?.resources);
                }
                code.extend((0..count).map(|_| FuncCode::default()));
                bodies = Bodies { entries, count, ranges: Default::default() };
                parser.skip_section();
                data = &data[size as usize..];
            }
            Payload::End(_) => break,
            Payload::CodeSectionEntry(body) => {
                let r = body.range();
                body_ranges.push(r.start as usize..r.end as usize);
                let ValidPayload::Func(to_validate, _) = valid else {
                    return Err(unsupported(body.range().start, "code entry not validated".into()));
                };
                let index = info.num_imported_funcs + (code.len() + pending.len()) as u32;
                resources.get_or_insert_with(|| to_validate.resources.clone());
                pending.push(PendingFunc { index, body, to_validate });
            }
            Payload::CustomSection(reader) => {
                if let KnownCustom::Name(names) = reader.as_known() {
                    // The name section is advisory: a malformed one is ignored, as the spec allows.
                    for name in names.into_iter().flatten() {
                        if let Name::Module { name, .. } = name {
                            info.name = Some(Arc::from(name));
                        }
                    }
                    // Function names on first use.
                    info.func_names.sections.push((reader.data().into(), reader.data_offset()));
                }
            }
            _ => {}
        }
    }
    if validate_bodies {
        bodies.ranges = std::sync::OnceLock::from(body_ranges.into_boxed_slice());
    }
    Ok((info, code, bodies, resources))
}
