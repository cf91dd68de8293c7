//! Compiling a whole module with Cranelift (builds with the `cranelift`
//! feature only): every defined function translated ([`super::translate`]),
//! in parallel, one Cranelift context per thread, with one host-to-wasm
//! trampoline per function type ([`super::trampolines`]), laid out in one
//! position-independent image and linked (pc-relative calls patched here);
//! [`CompiledModule::publish`] then makes it running code. Also the hot
//! functions and on-stack-replacement entries of automatic tiering, each
//! compiled alone into a region of its own ([`StandaloneCode`]).
//!
//! Owns the target ISA an engine compiles for ([`isa`]) and the relocation
//! kinds Cranelift emits; nothing here runs compiled code.

use std::ops::Range;

use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::isa::OwnedTargetIsa;

use super::code_memory::WritableCode;
use super::module::{ArrayCall, CodeLayout, CompiledModule, Region};
use super::target::settings;
use super::trampolines::compile_array_to_wasm_trampoline;
use super::translate::{CompiledCode, FuncCompiler, Placement};
use crate::engine::Engine;
use crate::error::Error;
use crate::module::ModuleInfo;

/// The engine's target ISA, built once per engine.
pub(crate) fn isa(engine: &Engine) -> Result<&OwnedTargetIsa, Error> {
    engine.isa(|| super::translate::isa(&settings(engine)).map_err(|e| Error::Compile(e.to_string())))
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
    traps.extend(c.traps.iter().map(|&(off, code)| (start + off, super::trap_codes::clif::to_u8(code))));
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
/// (`Placement::Standalone`) or an on-stack-replacement entry of one of its
/// loops (`Placement::OsrEntry`), with its array-call trampoline, in a small
/// region of its own registered with the trap handler like a module's. Its
/// calls to the module's functions go through the store's function
/// references, so it needs no linking.
pub(crate) struct StandaloneCode {
    region: Region,
    /// The defined function it is (an entry of).
    def: u32,
    array_call: u32,
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
        let placement = osr.map_or(Placement::Standalone, Placement::OsrEntry);
        let c = FuncCompiler::new().compile(&**isa, info, &settings, def, body, placement).map_err(Error::Compile)?;
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
                entry_ty = crate::types::FuncType::new([crate::types::ValType::I64], ty.results().iter().cloned());
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
        let writable = WritableCode::from_image(&image).map_err(|e| Error::Compile(e.to_string()))?;
        let funcs = std::iter::once(0..c.bytes.len() as u32).collect();
        let region = Region::publish(writable, funcs, traps, srclocs)?;
        Ok(StandaloneCode { region, def, array_call: tramp_start as u32 })
    }

    /// The code (the wasm calling convention; an entry takes `(vmctx, frame)`).
    pub fn wasm_call(&self) -> *const u8 {
        self.region.code.ptr_at(0)
    }

    /// The host-to-wasm trampoline (for an entry, `slots[0]` is the frame's address).
    pub fn array_call(&self) -> ArrayCall {
        let p = self.region.code.ptr_at(self.array_call as usize);
        // SAFETY: the trampoline at this offset was compiled with exactly this
        // signature (the platform's C convention) and lives as long as `self`.
        unsafe { std::mem::transmute::<*const u8, ArrayCall>(p) }
    }

    /// As [`CompiledModule::frame_at`], for this code.
    pub fn frame_at(&self, pc: usize) -> Option<(u32, Option<u32>)> {
        self.region.info.func_at(pc)?;
        Some((self.def, self.region.info.wasm_offset_at(pc)))
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
