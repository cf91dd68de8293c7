//! A module's compiled code: every defined function translated to machine code,
//! laid out in one executable region with the host-to-wasm trampolines, linked,
//! and registered so that its traps and frames can be found by pc.
//!
//! Why one region per module: direct calls between the module's functions are
//! plain pc-relative `call`s, patched here (relocations) before the region is
//! made executable; nothing is writable and executable at once (W^X). The
//! region lives as long as the module (`ModuleInner` owns this), and every
//! instance holds the module, so code never goes away under a running call.
//!
//! Functions compile in parallel, one Cranelift context per thread.
//!
//! Two halves: `compile` produces a position-independent image plus its
//! [`CodeLayout`]; [`CompiledModule::publish`] maps, patches, publishes and
//! registers them. Loading an artifact (`super::artifact`) is the second half
//! alone, in place: [`CompiledModule::from_artifact`] makes the code
//! executable where it lies in the (mapped) artifact, patched the same way,
//! and reads its trap sites and source locations there, in the layout's
//! encoding.

use std::ops::Range;
use std::sync::Arc;

use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::isa::OwnedTargetIsa;

use super::artifact::{self, Parsed};
use super::code_memory::{ArtifactImage, CodeMemory, Patch, WritableCode};
use super::trampolines::compile_array_to_wasm_trampoline;
use super::translate::{CodegenSettings, CompiledCode, FuncCompiler};
use super::traps::{self, CodeInfo, CodeRegistration, TrapTable};
use crate::engine::Engine;
use crate::error::Error;
use crate::module::{ModuleInfo, SharedBytes};
use crate::runtime::vmctx::VMContext;

/// The host-to-wasm entry of one function: `(wasm_call, vmctx, slots)`, with
/// the raw parameters in `slots` on entry and the raw results on return.
pub(crate) type ArrayCall = unsafe extern "C" fn(wasm_call: *const u8, vmctx: *mut VMContext, slots: *mut u64);

/// What the signal handler and backtraces need to know about the region: where
/// each function is, where its traps are, and which wasm offset each
/// instruction came from. Immutable once published.
struct RegionInfo {
    /// The region's first address.
    base: usize,
    /// Each defined function's code, as offsets into the region (sorted).
    funcs: Vec<Range<u32>>,
    traps: TrapTable,
    srclocs: SrcLocs,
}

/// (code offset where a run of instructions starts, wasm offset or
/// `u32::MAX`), sorted by code offset, as records of
/// [`artifact::SRCLOC_RECORD`] bytes: as an artifact stores them, so that a
/// loaded artifact's (often the largest of its tables) are used where they
/// lie. Only backtraces read them: an artifact's are checked on first use,
/// not at load, and if damaged, frames go without wasm offsets.
struct SrcLocs {
    records: SharedBytes,
    /// Bytes of code they describe.
    code_len: usize,
    valid: std::sync::OnceLock<bool>,
}

impl SrcLocs {
    fn new(srclocs: &[(u32, u32)], code_len: usize) -> SrcLocs {
        let records: Vec<u8> =
            srclocs.iter().flat_map(|&(at, wasm)| [at.to_le_bytes(), wasm.to_le_bytes()]).flatten().collect();
        SrcLocs { records: records.into(), code_len, valid: true.into() }
    }

    fn from_artifact(records: SharedBytes, code_len: usize) -> SrcLocs {
        SrcLocs { records, code_len, valid: std::sync::OnceLock::new() }
    }

    fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.records.chunks_exact(artifact::SRCLOC_RECORD).map(|r| (le32(r), le32(&r[4..])))
    }

    /// The wasm offset of the run of instructions holding code offset `off`.
    fn at(&self, off: u32) -> Option<u32> {
        if !*self.valid.get_or_init(|| artifact::srclocs_valid(&self.records, self.code_len)) {
            return None;
        }
        let records: &[u8] = &self.records;
        let n = records.len() / artifact::SRCLOC_RECORD;
        let start = |k: usize| le32(&records[k * artifact::SRCLOC_RECORD..]);
        // The last run starting at or before `off`.
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if start(mid) <= off {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let k = lo.checked_sub(1)?;
        Some(le32(&records[k * artifact::SRCLOC_RECORD + 4..])).filter(|&w| w != u32::MAX)
    }
}

/// The little-endian u32 at the start of `b`.
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl CodeInfo for RegionInfo {
    fn trap_at(&self, pc: usize) -> Option<u8> {
        self.traps.lookup(pc)
    }

    fn is_wasm_function(&self, pc: usize) -> bool {
        self.func_at(pc).is_some()
    }
}

impl RegionInfo {
    /// The defined function whose code holds `pc`.
    fn func_at(&self, pc: usize) -> Option<u32> {
        let off = u32::try_from(pc.checked_sub(self.base)?).ok()?;
        let k = self.funcs.partition_point(|r| r.start <= off).checked_sub(1)?;
        self.funcs[k].contains(&off).then_some(k as u32)
    }

    /// The wasm offset of the instruction at `pc`.
    fn wasm_offset_at(&self, pc: usize) -> Option<u32> {
        let off = u32::try_from(pc.checked_sub(self.base)?).ok()?;
        self.srclocs.at(off)
    }
}

/// A module's machine code (see the module docs).
pub(crate) struct CompiledModule {
    code: CodeMemory,
    info: Arc<RegionInfo>,
    /// Region offset of each defined function's array-call trampoline.
    array_calls: Vec<u32>,
    /// `CodeLayout::abs_relocs`, kept to serialize the code position-independent.
    abs_relocs: Vec<(u32, u32)>,
    _registration: CodeRegistration,
}

impl std::fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledModule").field("bytes", &self.code.len()).finish()
    }
}

/// The code generation settings an engine's configuration asks for.
pub(crate) fn settings(engine: &Engine) -> CodegenSettings {
    let c = engine.config();
    CodegenSettings {
        bounds: if c.signals_based_traps {
            super::translate::BoundsChecks::Guard { guard_bytes: c.memory_guard_size }
        } else {
            super::translate::BoundsChecks::Explicit
        },
        interrupt: if c.epoch_interruption || c.interruptible {
            // The epoch check also sees the interrupt flag (its check word drops to 0).
            super::translate::Interrupt::Epoch
        } else {
            super::translate::Interrupt::None
        },
        fuel: c.consume_fuel,
        track_writes: c.track_memory_writes,
    }
}

/// The engine's target ISA, built once per engine.
pub(crate) fn isa(engine: &Engine) -> Result<&OwnedTargetIsa, Error> {
    engine.isa(|| super::translate::isa(&settings(engine)).map_err(|e| Error::Compile(e.to_string())))
}

/// Everything about a module's code besides its bytes, every position an offset
/// into the code: what laying out compiled functions produces, what an
/// artifact stores ([`super::artifact`]), and what [`CompiledModule::publish`]
/// turns into running code. The code bytes that go with it are
/// position-independent except at `abs_relocs`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CodeLayout {
    /// Each defined function's code (sorted, disjoint).
    pub funcs: Vec<Range<u32>>,
    /// Each defined function's array-call trampoline.
    pub array_calls: Vec<u32>,
    /// Trap sites in the functions: (offset, trap code byte, see `trap_codes::to_u8`), sorted.
    pub traps: Vec<(u32, u8)>,
    /// (offset where a run of instructions starts, wasm offset or `u32::MAX`), sorted.
    pub srclocs: Vec<(u32, u32)>,
    /// 8-byte absolute addresses to patch when the code is placed: (at, target),
    /// both offsets; the patched value is the code's base plus `target`. Cranelift
    /// emits none for the calls the translator makes today (they are pc-relative).
    pub abs_relocs: Vec<(u32, u32)>,
}

impl CompiledModule {
    /// Compiles every defined function of a validated module (`bodies`: each
    /// function's body range in `bytes`), lays the code out and publishes it.
    pub fn new(engine: &Engine, info: &ModuleInfo, bytes: &[u8], bodies: &[Range<usize>]) -> Result<Self, Error> {
        Self::new_on(engine, info, bytes, bodies, available_threads())
    }

    /// [`CompiledModule::new`] on at most `threads` threads.
    pub fn new_on(
        engine: &Engine,
        info: &ModuleInfo,
        bytes: &[u8],
        bodies: &[Range<usize>],
        threads: usize,
    ) -> Result<Self, Error> {
        let (image, layout) = compile(engine, info, bytes, bodies, threads)?;
        Self::publish(&image, layout)
    }

    /// Copies `image` into new executable memory, patches its absolute
    /// relocations, publishes it W^X and registers it with the trap handler:
    /// the half of loading code shared by compiling and deserializing. The
    /// layout must be consistent with the image (offsets inside it, functions
    /// sorted and disjoint): compiled layouts are by construction, artifacts'
    /// are checked before they get here.
    pub fn publish(image: &[u8], layout: CodeLayout) -> Result<Self, Error> {
        let CodeLayout { funcs, array_calls, traps, srclocs, abs_relocs } = layout;
        let code = copy_and_publish(image, &abs_relocs)?;
        let srclocs = SrcLocs::new(&srclocs, code.len());
        let region =
            Arc::new(RegionInfo { base: code.base(), funcs, traps: TrapTable::new(code.base(), traps), srclocs });
        let registration = traps::register(code.range(), region.clone());
        Ok(CompiledModule { code, info: region, array_calls, abs_relocs, _registration: registration })
    }

    /// Publishes the code of an artifact (its bytes in `image`, checked by
    /// `artifact::parse` into `parsed`): runs it where it lies in the image
    /// (mapped from its file), patched if it has absolute relocations, or
    /// where that is impossible (a `noexec` file system, pages larger than the
    /// code's alignment) from a copy; its trap sites and source locations are
    /// read where they lie too. Returns the image's bytes, which the module
    /// keeps (its wasm is there).
    pub fn from_artifact(mut image: ArtifactImage, parsed: Parsed) -> Result<(Self, SharedBytes), Error> {
        let Parsed { code: range, funcs, array_calls, traps, srclocs, abs_relocs, .. } = parsed;
        let patch = |code: &mut [u8], base: usize| patch_abs_relocs(code, base, &abs_relocs);
        let patch: Option<Patch<'_>> = if abs_relocs.is_empty() { None } else { Some(&patch) };
        let in_place = image.make_executable(range.clone(), patch).is_ok();
        let image = Arc::new(image);
        let bytes = SharedBytes::new(image.clone(), 0..image.bytes().len());
        let code = if in_place {
            CodeMemory::in_image(image)
        } else {
            copy_and_publish(&image.bytes()[range.clone()], &abs_relocs)?
        };
        let srclocs = SrcLocs::from_artifact(bytes.slice(srclocs), code.len());
        let traps = TrapTable::from_records(code.base(), bytes.slice(traps));
        let region = Arc::new(RegionInfo { base: code.base(), funcs, traps, srclocs });
        let registration = traps::register(code.range(), region.clone());
        Ok((CompiledModule { code, info: region, array_calls, abs_relocs, _registration: registration }, bytes))
    }

    /// The code as an artifact stores it: position-independent (absolute
    /// relocations zeroed), with its layout.
    pub fn image_and_layout(&self) -> (Vec<u8>, CodeLayout) {
        let mut image = self.code.as_slice().to_vec();
        for &(at, _) in &self.abs_relocs {
            image[at as usize..at as usize + 8].fill(0);
        }
        let layout = CodeLayout {
            funcs: self.info.funcs.clone(),
            array_calls: self.array_calls.clone(),
            traps: self.info.traps.sites().collect(),
            srclocs: self.info.srclocs.iter().collect(),
            abs_relocs: self.abs_relocs.clone(),
        };
        (image, layout)
    }

    /// How many defined functions the code has.
    pub fn defined_funcs(&self) -> usize {
        self.info.funcs.len()
    }

    /// Native code of defined function `def` (see `VMFuncRef::wasm_call`).
    pub fn wasm_call(&self, def: u32) -> *const u8 {
        self.code.ptr_at(self.info.funcs[def as usize].start as usize)
    }

    /// The host-to-wasm entry of defined function `def`.
    pub fn array_call(&self, def: u32) -> ArrayCall {
        let p = self.code.ptr_at(self.array_calls[def as usize] as usize);
        // SAFETY: the trampoline at this offset was compiled with exactly this
        // signature (the platform's C convention, `compile_array_to_wasm_trampoline`)
        // and lives, executable, as long as `self`.
        unsafe { std::mem::transmute::<*const u8, ArrayCall>(p) }
    }

    /// The defined function and wasm offset of the instruction at `pc`, if `pc`
    /// is in one of this module's functions.
    pub fn frame_at(&self, pc: usize) -> Option<(u32, Option<u32>)> {
        let def = self.info.func_at(pc)?;
        Some((def, self.info.wasm_offset_at(pc)))
    }
}

/// Copies `image` into new executable memory, patches its absolute relocations
/// and publishes it.
fn copy_and_publish(image: &[u8], abs_relocs: &[(u32, u32)]) -> Result<CodeMemory, Error> {
    let mut writable = WritableCode::from_image(image).map_err(|e| Error::Compile(e.to_string()))?;
    let base = writable.base();
    patch_abs_relocs(&mut writable, base, abs_relocs);
    writable.publish().map_err(|e| Error::Compile(e.to_string()))
}

/// Writes each absolute relocation's address into `code`, which runs at `base`
/// (`CodeLayout::abs_relocs`; checked to lie inside the code).
fn patch_abs_relocs(code: &mut [u8], base: usize, abs_relocs: &[(u32, u32)]) {
    for &(at, target) in abs_relocs {
        let (at, target) = (at as usize, target as usize);
        code[at..at + 8].copy_from_slice(&((base + target) as u64).to_le_bytes());
    }
}

/// Compiles every defined function and its trampoline and lays them out in
/// one image, linked (pc-relative, so the image runs at any address but for
/// `CodeLayout::abs_relocs`).
fn compile(
    engine: &Engine,
    info: &ModuleInfo,
    bytes: &[u8],
    bodies: &[Range<usize>],
    threads: usize,
) -> Result<(Vec<u8>, CodeLayout), Error> {
    let isa = isa(engine)?;
    let settings = settings(engine);
    let compile_one = |compiler: &mut FuncCompiler, def: usize| -> Result<CompiledCode, Error> {
        let range = bodies[def].clone();
        let reader = wasmparser::BinaryReader::new(&bytes[range.clone()], range.start as u64);
        let body = wasmparser::FunctionBody::new(reader);
        compiler.compile_function(&**isa, info, &settings, def as u32, body).map_err(|e| {
            let index = info.num_imported_funcs as usize + def;
            Error::Compile(format!("function {index}: {e}"))
        })
    };
    let funcs = parallel_map(bodies, threads, FuncCompiler::new, compile_one)?;

    // Trampolines, one per distinct function type.
    let mut tramp_of_type: std::collections::HashMap<u32, usize> = Default::default();
    let mut trampolines: Vec<CompiledCode> = Vec::new();
    let mut tramp_index = Vec::with_capacity(bodies.len());
    for def in 0..bodies.len() {
        let ty = info.funcs[info.num_imported_funcs as usize + def];
        let k = match tramp_of_type.get(&ty) {
            Some(&k) => k,
            None => {
                let t = compile_array_to_wasm_trampoline(&**isa, &info.types[ty as usize])
                    .map_err(|e| Error::Compile(format!("trampoline: {e}")))?;
                trampolines.push(t);
                tramp_of_type.insert(ty, trampolines.len() - 1);
                trampolines.len() - 1
            }
        };
        tramp_index.push(k);
    }

    // Layout: functions, then trampolines, each at its alignment.
    let mut len = 0usize;
    let mut place = |c: &CompiledCode| {
        let align = (c.alignment as usize).max(16);
        let start = len.next_multiple_of(align);
        len = start + c.bytes.len();
        start
    };
    let func_starts: Vec<usize> = funcs.iter().map(&mut place).collect();
    let tramp_starts: Vec<usize> = trampolines.iter().map(&mut place).collect();
    if len > u32::MAX as usize {
        return Err(Error::Compile("the module's code exceeds 4 GiB".into()));
    }
    // Linked at base 0: a pc-relative displacement is the same wherever the
    // image lands; an absolute address is patched when it is placed.
    let mut image = vec![0u8; len];
    let mut abs_relocs = Vec::new();
    for (c, &start) in funcs.iter().chain(&trampolines).zip(func_starts.iter().chain(&tramp_starts)) {
        image[start..start + c.bytes.len()].copy_from_slice(&c.bytes);
    }
    for (c, &start) in funcs.iter().zip(&func_starts) {
        for r in &c.relocs {
            let at = start + r.offset as usize;
            let target = func_starts[r.def_index as usize] as i64 + r.addend;
            if r.kind == Reloc::Abs8 {
                let target = u32::try_from(target).ok().filter(|&t| (t as usize) < len.max(1));
                let target = target.ok_or_else(|| Error::Compile("relocation Abs8 out of range".into()))?;
                abs_relocs.push((at as u32, target));
            } else {
                apply_reloc(&mut image, at, at, r.kind, target)?;
            }
        }
    }
    let mut traps = Vec::new();
    let mut srclocs = Vec::new();
    for (c, &start) in funcs.iter().zip(&func_starts) {
        place_traps_and_srclocs(c, start as u32, &mut traps, &mut srclocs);
    }
    srclocs.sort_by_key(|&(s, _)| s);
    let funcs = funcs.iter().zip(&func_starts).map(|(c, &s)| s as u32..(s + c.bytes.len()) as u32).collect();
    let array_calls = tramp_index.iter().map(|&k| tramp_starts[k] as u32).collect();
    traps.sort_unstable_by_key(|&(offset, _)| offset);
    Ok((image, CodeLayout { funcs, array_calls, traps, srclocs, abs_relocs }))
}

/// Adds a function's trap sites and source locations, placed at `start`.
fn place_traps_and_srclocs(c: &CompiledCode, start: u32, traps: &mut Vec<(u32, u8)>, srclocs: &mut Vec<(u32, u32)>) {
    traps.extend(c.traps.iter().map(|&(off, code)| (start + off, super::trap_codes::to_u8(code))));
    let mut last_end = None;
    for &(s, e, w) in &c.srclocs {
        if last_end.is_some_and(|le| le < s) {
            // A gap with no source location.
            srclocs.push((start + last_end.unwrap_or(0), u32::MAX));
        }
        srclocs.push((start + s, w));
        last_end = Some(e);
    }
    if let Some(e) = last_end {
        srclocs.push((start + e, u32::MAX));
    }
}

/// One function's code compiled apart from the rest of its module, by
/// automatic tiering (`super::tier`): the function itself
/// (`FuncCompiler::compile_standalone`) or an on-stack-replacement entry of
/// one of its loops (`FuncCompiler::compile_osr`), with its array-call
/// trampoline, in a small region of its own registered with the trap handler
/// like a module's. Its calls to the module's functions go through the
/// store's function references, so it needs no linking.
pub(crate) struct StandaloneCode {
    code: CodeMemory,
    info: Arc<RegionInfo>,
    /// The defined function it is (an entry of).
    def: u32,
    array_call: u32,
    _registration: CodeRegistration,
}

impl StandaloneCode {
    /// Compiles defined function `def` (`body`: its range in `bytes`), or
    /// with `osr`, its entry at the loop at that wasm offset.
    pub fn new(
        engine: &Engine,
        info: &ModuleInfo,
        bytes: &[u8],
        body: Range<usize>,
        def: u32,
        osr: Option<u32>,
    ) -> Result<StandaloneCode, Error> {
        let isa = isa(engine)?;
        let settings = settings(engine);
        let reader = wasmparser::BinaryReader::new(&bytes[body.clone()], body.start as u64);
        let body = wasmparser::FunctionBody::new(reader);
        let mut compiler = FuncCompiler::new();
        let c = match osr {
            None => compiler.compile_standalone(&**isa, info, &settings, def, body),
            Some(at) => compiler.compile_osr(&**isa, info, &settings, def, body, at),
        }
        .map_err(Error::Compile)?;
        if let Some(r) = c.relocs.first() {
            return Err(Error::Compile(format!("unexpected relocation {:?} in standalone code", r.kind)));
        }
        let ty = info.func_type(info.num_imported_funcs + def);
        // An entry takes the interpreter frame's address (an i64 on the 64-bit
        // hosts that have the compiled tier).
        let entry_ty;
        let tramp_ty = match osr {
            None => ty,
            Some(_) => {
                entry_ty = crate::types::FuncType::new([crate::types::ValType::I64], ty.results().iter().copied());
                &entry_ty
            }
        };
        let tramp = compile_array_to_wasm_trampoline(&**isa, tramp_ty)
            .map_err(|e| Error::Compile(format!("trampoline: {e}")))?;
        let tramp_start = c.bytes.len().next_multiple_of((tramp.alignment as usize).max(16));
        let mut image = vec![0u8; tramp_start + tramp.bytes.len()];
        image[..c.bytes.len()].copy_from_slice(&c.bytes);
        image[tramp_start..].copy_from_slice(&tramp.bytes);
        let (mut traps, mut srclocs) = (Vec::new(), Vec::new());
        place_traps_and_srclocs(&c, 0, &mut traps, &mut srclocs);
        traps.sort_unstable_by_key(|&(offset, _)| offset);
        srclocs.sort_by_key(|&(s, _)| s);
        let code = copy_and_publish(&image, &[])?;
        let region = Arc::new(RegionInfo {
            base: code.base(),
            funcs: std::iter::once(0..c.bytes.len() as u32).collect(),
            traps: TrapTable::new(code.base(), traps),
            srclocs: SrcLocs::new(&srclocs, code.len()),
        });
        let registration = traps::register(code.range(), region.clone());
        Ok(StandaloneCode { code, info: region, def, array_call: tramp_start as u32, _registration: registration })
    }

    /// The code (the wasm calling convention; an entry takes `(vmctx, frame)`).
    pub fn wasm_call(&self) -> *const u8 {
        self.code.ptr_at(0)
    }

    /// The host-to-wasm trampoline (for an entry, `slots[0]` is the frame's address).
    pub fn array_call(&self) -> ArrayCall {
        let p = self.code.ptr_at(self.array_call as usize);
        // SAFETY: the trampoline at this offset was compiled with exactly this
        // signature (the platform's C convention) and lives as long as `self`.
        unsafe { std::mem::transmute::<*const u8, ArrayCall>(p) }
    }

    /// As [`CompiledModule::frame_at`], for this code.
    pub fn frame_at(&self, pc: usize) -> Option<(u32, Option<u32>)> {
        self.info.func_at(pc)?;
        Some((self.def, self.info.wasm_offset_at(pc)))
    }
}

/// The threads compiling may use: every core.
pub(crate) fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |t| t.get())
}

/// Patches one relocation at image offset `at` (running address `pc`) to point at `target`.
fn apply_reloc(image: &mut [u8], at: usize, pc: usize, kind: Reloc, target: i64) -> Result<(), Error> {
    let bad = || Error::Compile(format!("relocation {kind:?} out of range"));
    match kind {
        Reloc::X86CallPCRel4 | Reloc::X86PCRel4 => {
            let delta = i32::try_from(target - pc as i64).map_err(|_| bad())?;
            image[at..at + 4].copy_from_slice(&delta.to_le_bytes());
        }
        Reloc::Arm64Call => {
            let delta = (target - pc as i64) >> 2;
            if !(-(1 << 25)..(1 << 25)).contains(&delta) {
                return Err(bad());
            }
            let insn = u32::from_le_bytes(image[at..at + 4].try_into().expect("4 bytes"));
            let insn = (insn & !0x03ff_ffff) | (delta as u32 & 0x03ff_ffff);
            image[at..at + 4].copy_from_slice(&insn.to_le_bytes());
        }
        other => return Err(Error::Compile(format!("unsupported relocation {other:?}"))),
    }
    Ok(())
}

/// `f(state, i)` for every function `i` of `bodies`, results in order. Unlike
/// the interpreter's translation (`Config::parallel_compilation`), Cranelift's
/// work per function is large enough that spreading it over every core always
/// pays once there are a few functions: threads take the next function from a
/// shared counter (largest bodies are not scheduled first: simple, and good
/// enough while a module's functions are many), each with its own `state`
/// (Cranelift's contexts, reused from one function to the next).
fn parallel_map<S, R: Send>(
    bodies: &[Range<usize>],
    threads: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize) -> Result<R, Error> + Sync,
) -> Result<Vec<R>, Error> {
    let n = bodies.len();
    let threads = if n >= 8 { threads.clamp(1, n) } else { 1 };
    if threads <= 1 {
        let mut state = init();
        return (0..n).map(|i| f(&mut state, i)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<R, Error>>>> =
        (0..n).map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut state = init();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let r = f(&mut state, i);
                    let failed = r.is_err();
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                    if failed {
                        // Stop handing out work: the module fails anyway.
                        next.store(n, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut out = Vec::with_capacity(n);
    for r in results {
        match r.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(r) => out.push(r?),
            // Only after another function failed (its error comes first, in order).
            None => return Err(Error::Compile("compilation stopped after an error".into())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Module, Strategy};

    /// An artifact's code that cannot run where it lies (not on a page
    /// boundary, as on hosts with pages over 16 KiB) is copied, and runs from
    /// the copy, its tables still read where they lie.
    #[test]
    fn code_that_cannot_run_in_place_is_copied() {
        let engine = Engine::new(Config::new().strategy(Strategy::Cranelift));
        let wat = r#"(module (func (export "f") (param i32) (result i32) (i32.div_u (i32.const 7) (local.get 0))))"#;
        let bytes = Module::new(&engine, wat).unwrap().serialize().unwrap();
        let parsed = artifact::parse(&engine, &bytes).unwrap();
        let code = parsed.code.clone();
        // The same artifact one byte further into its image.
        let shifted = [&[0u8][..], &bytes].concat();
        let shift = |r: Range<usize>| r.start + 1..r.end + 1;
        let parsed = Parsed {
            wasm: shift(parsed.wasm),
            code: shift(parsed.code),
            traps: shift(parsed.traps),
            srclocs: shift(parsed.srclocs),
            ..parsed
        };
        let image = ArtifactImage::copy_of(&shifted).unwrap();
        let image_at = image.bytes().as_ptr() as usize..image.bytes().as_ptr() as usize + shifted.len();
        let (compiled, _) = CompiledModule::from_artifact(image, parsed).unwrap();
        assert!(!image_at.contains(&compiled.code.base()), "a copy");
        assert_eq!(compiled.code.as_slice(), &bytes[code]);
        // The division's trap site, its function and wasm offset.
        let (site, _) = compiled.info.traps.sites().next().unwrap();
        let (def, offset) = compiled.frame_at(compiled.code.base() + site as usize).unwrap();
        assert_eq!(def, 0);
        assert!(offset.is_some(), "source locations read in the image");
    }
}
