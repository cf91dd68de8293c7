//! The engine: configuration shared by every module and store, and the
//! engine-wide registry that gives structurally equal function types one id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::types::FuncType;

/// Settings for an [`Engine`].
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) features: wasmparser::WasmFeatures,
    pub(crate) consume_fuel: bool,
    pub(crate) interruptible: bool,
    pub(crate) epoch_interruption: bool,
    pub(crate) max_call_depth: usize,
    pub(crate) max_stack_slots: usize,
    pub(crate) max_wasm_stack: usize,
    pub(crate) wasm_backtrace_max_frames: usize,
    pub(crate) parallel_compilation: bool,
    pub(crate) lazy_translation: bool,
    pub(crate) lazy_validation: bool,
    pub(crate) track_memory_writes: bool,
    pub(crate) strategy: Strategy,
    /// Automatic tiering: counts before a function tiers up, and whether it
    /// compiles on the calling thread (tests).
    pub(crate) tier_up_threshold: u32,
    pub(crate) tier_up_synchronously: bool,
    pub(crate) signals_based_traps: bool,
    pub(crate) memory_guard_size: u64,
    /// The most pages the host reserves for a 64-bit memory (see
    /// [`Config::memory64_reservation`]).
    pub(crate) memory64_max_pages: u64,
    pub(crate) cache: CacheConfig,
}

/// Where compiled code is cached, if anywhere (see [`Config::cache`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct CacheConfig {
    pub(crate) enabled: bool,
    /// `None`: the default directory (see [`Config::cache`]).
    pub(crate) dir: Option<std::path::PathBuf>,
    pub(crate) max_bytes: u64,
}

/// The code cache's default size bound: 512 MiB.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 512 << 20;

/// How a module's functions run: the tier that executes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Strategy {
    /// Carnac's interpreter: no compilation, instant start (the default).
    Interpreter,
    /// Native code compiled with Cranelift when the module is compiled: slower
    /// to start, several times faster to run.
    Cranelift,
    /// Automatic tiering (the default in builds with the compiled tier): every
    /// function starts in the interpreter at once; a function that runs hot
    /// (entries and loop iterations counted) is compiled alone on a background
    /// thread, its next calls take the compiled code, and a long-running loop
    /// moves into compiled code at its header (on-stack replacement). Code
    /// already in the code cache ([`Config::cache`]) is used from the first
    /// call; with the cache on, the whole module is compiled once the compiler
    /// is idle and stored there. On a host with one core nothing compiles in
    /// the background: everything stays interpreted, as it does in a build
    /// without the compiler (which still runs artifacts: see
    /// [`Strategy::is_available`]).
    Auto,
}

impl Strategy {
    /// Whether this build of Carnac can compile WebAssembly for the strategy:
    /// always for [`Strategy::Interpreter`] and [`Strategy::Auto`] (which
    /// interprets everything without a compiler), and for
    /// [`Strategy::Cranelift`] only in a build with the compiler (the
    /// `cranelift` feature, on Linux x86_64 or aarch64). A build with the
    /// `loader` feature alone says `false` for `Cranelift` but runs the
    /// artifacts a full build compiles ([`crate::Module::deserialize`], `carnac
    /// run X.cwasm`), with either `Cranelift` or `Auto`.
    pub fn is_available(self) -> bool {
        match self {
            Strategy::Interpreter | Strategy::Auto => true,
            Strategy::Cranelift => cfg!(carnac_compiled),
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    /// `interp` (or `interpreter`) and `cranelift`, the spellings of `-C tier=`.
    fn from_str(s: &str) -> Result<Strategy, String> {
        match s {
            "interp" | "interpreter" => Ok(Strategy::Interpreter),
            "cranelift" => Ok(Strategy::Cranelift),
            "auto" => Ok(Strategy::Auto),
            _ => Err(format!("unknown tier `{s}` (expected `auto`, `interp` or `cranelift`)")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        use wasmparser::WasmFeatures as F;
        Config {
            // WebAssembly 2.0, and the parts of 3.0 implemented so far.
            features: F::WASM2
                .union(F::EXTENDED_CONST)
                .union(F::MULTI_MEMORY)
                .union(F::RELAXED_SIMD)
                .union(F::THREADS)
                .union(F::TAIL_CALL)
                .union(F::MEMORY64)
                .union(F::FUNCTION_REFERENCES)
                .union(F::EXCEPTIONS)
                .union(F::GC),
            consume_fuel: false,
            interruptible: false,
            epoch_interruption: false,
            max_call_depth: 100_000,
            max_stack_slots: 1 << 20,
            max_wasm_stack: 512 << 10,
            wasm_backtrace_max_frames: 256,
            parallel_compilation: false,
            lazy_translation: true,
            lazy_validation: false,
            track_memory_writes: false,
            memory64_max_pages: crate::runtime::memory::MAX_PAGES,
            strategy: if cfg!(carnac_compiled) { Strategy::Auto } else { Strategy::Interpreter },
            tier_up_threshold: 1000,
            tier_up_synchronously: false,
            signals_based_traps: cfg!(target_pointer_width = "64"),
            memory_guard_size: 32 << 20,
            cache: CacheConfig { enabled: false, dir: None, max_bytes: DEFAULT_CACHE_MAX_BYTES },
        }
    }
}

impl Config {
    pub fn new() -> Self {
        Self::default()
    }

    /// Meter execution with fuel: each executed instruction costs one unit; a
    /// store that runs out traps with [`crate::TrapKind::OutOfFuel`].
    pub fn consume_fuel(&mut self, enable: bool) -> &mut Self {
        self.consume_fuel = enable;
        self
    }

    /// Record which 4 KiB chunks of linear memory guests write, so that dropping
    /// a store resets its (pooled) memories by zeroing exactly those chunks, with
    /// no system call. For hosts that create an instance per request: it makes
    /// instantiating and dropping a small WASI program about twice as cheap (the
    /// alternative, asking the kernel with `mincore` which pages are resident, costs
    /// more than the rest of an instantiation). The price is a few percent on
    /// store-heavy guest code (each store also marks its chunk), so it is off by
    /// default; `carnac serve` turns it on.
    pub fn track_memory_writes(&mut self, enable: bool) -> &mut Self {
        self.track_memory_writes = enable;
        self
    }

    /// The most address space the host reserves for one 64-bit memory
    /// (memory64), in bytes, rounded down to whole 64 KiB pages: such a memory
    /// reserves its declared maximum up to this (default and upper bound: 4
    /// GiB, which the written-chunk map below every memory covers), and
    /// `memory.grow` past it fails (-1) whatever the declared maximum, as a
    /// grow the host refuses does. A 64-bit memory has no guard region (its
    /// accesses are always checked explicitly), so this is all it reserves.
    /// A module whose 64-bit memory's minimum exceeds it fails to instantiate.
    pub fn memory64_reservation(&mut self, bytes: u64) -> &mut Self {
        let pages = bytes / crate::WASM_PAGE as u64;
        self.memory64_max_pages = pages.min(crate::runtime::memory::MAX_PAGES);
        self
    }

    /// The tier that runs modules compiled by this engine (default
    /// [`Strategy::Auto`], or [`Strategy::Interpreter`] in a build without the
    /// compiler), as Wasmtime's `Config::strategy`. With
    /// [`Strategy::Cranelift`] in a build without the compiler (the
    /// `cranelift` feature off, or a host other than Linux on x86_64 or
    /// aarch64), [`Engine::new`] still succeeds and compiling a module fails
    /// with an error that says so; with the `loader` feature, loading an
    /// artifact ([`crate::Module::deserialize`]) works.
    pub fn strategy(&mut self, strategy: Strategy) -> &mut Self {
        self.strategy = strategy;
        self
    }

    /// With [`Strategy::Auto`]: how many entries plus loop iterations make a
    /// function hot enough to compile (default 1,000; at least 1).
    pub fn tier_up_threshold(&mut self, counts: u32) -> &mut Self {
        self.tier_up_threshold = counts.clamp(1, i32::MAX as u32);
        self
    }

    /// With [`Strategy::Auto`]: compile hot code on the thread that found it
    /// hot, at once, instead of on the background compiler (so that when code
    /// switches tiers is deterministic: for tests, not for production, where
    /// it stalls the guest for the compile).
    #[doc(hidden)]
    pub fn tier_up_synchronously(&mut self, enable: bool) -> &mut Self {
        self.tier_up_synchronously = enable;
        self
    }

    /// Whether compiled code may rely on signal handlers to catch out-of-bounds
    /// memory accesses (on by default on 64-bit hosts), as Wasmtime's
    /// `Config::signals_based_traps`. On, each 32-bit memory of compiled code
    /// reserves its whole 4 GiB index space plus a guard region of
    /// [`Config::memory_guard_size`] bytes of *address space* (not memory), and
    /// most loads and stores need no bounds check: an access past the memory's
    /// length faults, and the fault becomes a `MemoryOutOfBounds` trap. Off,
    /// every access is checked explicitly: for hosts that cannot reserve that
    /// much address space (many instances, 32-bit hosts). The interpreter always
    /// checks explicitly.
    pub fn signals_based_traps(&mut self, enable: bool) -> &mut Self {
        self.signals_based_traps = enable;
        self
    }

    /// Bytes of inaccessible address space after each memory of compiled code
    /// with [`Config::signals_based_traps`] (default 32 MiB, as Wasmtime's
    /// `memory_guard_size`): accesses whose static offset fits in it need no
    /// explicit bounds check.
    pub fn memory_guard_size(&mut self, bytes: u64) -> &mut Self {
        self.memory_guard_size = bytes.min(1 << 32);
        self
    }

    /// Cache compiled code on disk (off by default; `carnac run` turns it on
    /// for `-C tier=cranelift` unless given `-C cache=n`), as Wasmtime's cache:
    /// compiling a module with [`Strategy::Cranelift`] first looks for an
    /// artifact of the same bytes compiled by this build of Carnac with the
    /// same code-changing settings, and loads it instead of compiling (see
    /// [`crate::Module::deserialize`]); after compiling, it stores one. The
    /// directory is [`Config::cache_dir`]'s, else `$CARNAC_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/carnac`, else `$HOME/.cache/carnac`. Entries are
    /// written to a temporary file and renamed into place (concurrent
    /// processes are safe); one that fails to load (damaged, truncated) is
    /// ignored and rewritten; the directory is kept under
    /// [`Config::cache_max_bytes`] by deleting the least recently used entries.
    /// The cache is best effort: when it cannot be read or written, modules
    /// compile as without it. The interpreter tier never uses it.
    ///
    /// The cache directory holds machine code that is run without checks
    /// beyond those of `Module::deserialize`: it must be writable by its
    /// user only.
    pub fn cache(&mut self, enable: bool) -> &mut Self {
        self.cache.enabled = enable;
        self
    }

    /// Cache compiled code in `dir` (and turn the cache on), or, with `None`,
    /// go back to the default directory (see [`Config::cache`]).
    pub fn cache_dir(&mut self, dir: Option<std::path::PathBuf>) -> &mut Self {
        self.cache.enabled |= dir.is_some();
        self.cache.dir = dir;
        self
    }

    /// The code cache's size bound in bytes (default [`DEFAULT_CACHE_MAX_BYTES`]):
    /// after storing an entry, the least recently used entries (by modification
    /// time, which a hit refreshes) are deleted until the total is under it.
    pub fn cache_max_bytes(&mut self, bytes: u64) -> &mut Self {
        self.cache.max_bytes = bytes;
        self
    }

    /// Make running guests interruptible from another thread through
    /// [`crate::Store::interrupt_handle`] (e.g. for a wall-clock timeout): a flag is
    /// checked at every function entry and loop header, so even a guest stuck in a
    /// loop stops promptly with [`crate::TrapKind::Interrupted`]. Costs one load and
    /// branch per loop iteration and call; nothing when off (and then
    /// `Store::interrupt_handle` is an error).
    pub fn interruptible(&mut self, enable: bool) -> &mut Self {
        self.interruptible = enable;
        self
    }

    /// Epoch-based interruption, as Wasmtime's `Config::epoch_interruption`: every
    /// function entry and loop header compares the engine's epoch
    /// ([`Engine::increment_epoch`]) with the store's deadline
    /// ([`crate::Store::set_epoch_deadline`]); a store past its deadline runs its
    /// deadline callback ([`crate::Store::epoch_deadline_callback`]), by default
    /// trapping with [`crate::TrapKind::Interrupted`]. One ticker thread can so
    /// bound the run time of every store of an engine. Costs two loads and a
    /// compare per loop iteration and call; nothing when off (the default).
    ///
    /// The same check also sees the store's interrupt flag, so with this on
    /// [`crate::Store::interrupt_handle`] works whether or not
    /// [`Config::interruptible`] is set.
    pub fn epoch_interruption(&mut self, enable: bool) -> &mut Self {
        self.epoch_interruption = enable;
        self
    }

    /// Maximum depth of nested guest calls in the interpreter before
    /// [`crate::TrapKind::StackExhausted`]. Compiled code (the compiled tier,
    /// and functions that tiered up under [`Strategy::Auto`]) is bounded by
    /// the host stack it may use instead ([`Config::max_wasm_stack`]), as in
    /// Wasmtime: with automatic tiering, how deep a recursion may go depends
    /// on which of its functions tiered up. Pick [`Strategy::Interpreter`] for
    /// an exact depth.
    pub fn max_call_depth(&mut self, depth: usize) -> &mut Self {
        self.max_call_depth = depth.max(1);
        self
    }

    /// Host stack, in bytes, that nested host→wasm re-entries may use (a host
    /// function calling back into wasm, which calls a host function, ...),
    /// measured from the outermost call; past it a call traps with
    /// [`crate::TrapKind::StackExhausted`] instead of overflowing the host
    /// stack. Guest-to-guest calls use none (their frames live on the
    /// interpreter's own stack, see [`Config::max_call_depth`]). Default 512 KiB,
    /// as Wasmtime's `max_wasm_stack`; an unoptimised build uses a few KiB per
    /// level, so deep re-entry wants more, on a thread with the stack for it.
    pub fn max_wasm_stack(&mut self, bytes: usize) -> &mut Self {
        self.max_wasm_stack = bytes.max(16 << 10);
        self
    }

    /// Whether traps capture a wasm backtrace (on by default, as in Wasmtime).
    /// Off, [`crate::Trap::backtrace`] is empty and a trap costs no lookups.
    pub fn wasm_backtrace(&mut self, enable: bool) -> &mut Self {
        if !enable {
            self.wasm_backtrace_max_frames = 0;
        } else if self.wasm_backtrace_max_frames == 0 {
            self.wasm_backtrace_max_frames = 256;
        }
        self
    }

    /// The most frames a trap's backtrace keeps (default 256): a deeper one (a
    /// runaway recursion has 100,000) keeps its innermost and outermost halves,
    /// and [`crate::Trap::frames_elided`] counts the rest. 0 turns capture off.
    pub fn wasm_backtrace_max_frames(&mut self, frames: usize) -> &mut Self {
        self.wasm_backtrace_max_frames = frames;
        self
    }

    /// Maximum size of the interpreter's value stack, in bytes, per store.
    pub fn max_stack_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_stack_slots = (bytes / 8).max(1024);
        self
    }

    /// Validate (and translate) large modules on several threads, one per
    /// available core. Off by default: on the 2-vCPU machines we measure on,
    /// the second thread starts late and both run slower, so a 1 MiB module
    /// compiled in 14–16 ms instead of 10–12 ms; worth trying on larger hosts.
    /// Small modules always compile on the calling thread.
    pub fn parallel_compilation(&mut self, enable: bool) -> &mut Self {
        self.parallel_compilation = enable;
        self
    }

    /// Translate each function to interpreter code on its first call instead of
    /// when the module is compiled (on by default). Every body is still
    /// validated when the module is compiled, so invalid modules are rejected
    /// up front either way; lazy translation makes large modules start faster
    /// and never spends time or memory on functions that are not called.
    pub fn lazy_translation(&mut self, enable: bool) -> &mut Self {
        self.lazy_translation = enable;
        if !enable {
            self.lazy_validation = false;
        }
        self
    }

    /// Also validate each function body on its first call, not when the module
    /// is compiled (off by default; implies lazy translation). Compiling a large
    /// module then only decodes it, but an invalid body is reported when it is
    /// first called, as a [`crate::TrapKind::InvalidFunction`] trap, instead of
    /// by `Module::new`: not what the specification prescribes, so keep it for
    /// trusted toolchains where start-up time matters most (wasmi's "lazy" mode).
    pub fn lazy_validation(&mut self, enable: bool) -> &mut Self {
        self.lazy_validation = enable;
        if enable {
            self.lazy_translation = true;
        }
        self
    }

    fn feature(&mut self, f: wasmparser::WasmFeatures, enable: bool) -> &mut Self {
        self.features.set(f, enable);
        self
    }

    /// The bulk memory operations proposal (on by default; part of WebAssembly 2.0).
    pub fn wasm_bulk_memory(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::BULK_MEMORY, enable)
    }

    /// The reference types proposal (on by default; part of WebAssembly 2.0).
    pub fn wasm_reference_types(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::REFERENCE_TYPES, enable)
    }

    /// Multi-value blocks, calls and returns (on by default; part of WebAssembly 2.0).
    pub fn wasm_multi_value(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::MULTI_VALUE, enable)
    }

    /// Sign-extension operators (on by default; part of WebAssembly 2.0).
    pub fn wasm_sign_extension(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::SIGN_EXTENSION, enable)
    }

    /// Non-trapping float-to-int conversions (on by default; part of WebAssembly 2.0).
    pub fn wasm_saturating_float_to_int(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::SATURATING_FLOAT_TO_INT, enable)
    }

    /// Import and export of mutable globals (on by default; part of WebAssembly 2.0).
    pub fn wasm_mutable_global(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::MUTABLE_GLOBAL, enable)
    }

    /// 128-bit fixed-width SIMD (on by default; part of WebAssembly 2.0).
    pub fn wasm_simd(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::SIMD, enable)
    }

    /// Extended constant expressions: i32/i64 `add`, `sub` and `mul` in
    /// global initialisers and segment offsets (on by default; part of WebAssembly 3.0).
    pub fn wasm_extended_const(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::EXTENDED_CONST, enable)
    }

    /// Several memories per module, every memory instruction naming its
    /// memory (on by default; part of WebAssembly 3.0).
    pub fn wasm_multi_memory(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::MULTI_MEMORY, enable)
    }

    /// Relaxed SIMD: the `relaxed_*` vector instructions (on by default, as in
    /// Wasmtime; part of WebAssembly 3.0). Carnac's results are deterministic:
    /// each instruction gives one fixed result of those the specification
    /// allows, the same on every host and in both tiers: `relaxed_swizzle` is
    /// `i8x16.swizzle`, the relaxed truncations are the `trunc_sat` ones,
    /// `relaxed_laneselect` is `v128.bitselect`, `relaxed_min`/`max` are
    /// `min`/`max`, `relaxed_q15mulr_s` is `i16x8.q15mulr_sat_s`, the
    /// multiply-adds are unfused (rounded twice) and the dot products take
    /// both operands as signed.
    pub fn wasm_relaxed_simd(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::RELAXED_SIMD, enable)
    }

    /// The threads proposal (on by default, as in Wasmtime): shared memories
    /// ([`crate::SharedMemory`], `(memory 1 2 shared)`), atomic loads, stores
    /// and read-modify-writes, `memory.atomic.wait32/64`,
    /// `memory.atomic.notify` and `atomic.fence`.
    pub fn wasm_threads(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::THREADS, enable)
    }

    /// Tail calls: `return_call` and `return_call_indirect` (on by default,
    /// as in Wasmtime; part of WebAssembly 3.0). A tail call replaces the
    /// caller's frame, so a chain of tail calls (mutual recursion included)
    /// runs in constant stack space within a tier, across instances too; a
    /// tail call to a host function is an ordinary call followed by a return.
    /// Across tiers (`Strategy::Auto`), see the README's "Tail calls".
    pub fn wasm_tail_call(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::TAIL_CALL, enable)
    }

    /// The memory64 proposal (on by default; part of WebAssembly 3.0):
    /// memories and tables indexed with `i64` (`(memory i64 1)`,
    /// `(table i64 1 funcref)`, [`crate::MemoryType::new64`],
    /// [`crate::TableType::new64`]). A 64-bit memory's accesses are always
    /// bounds-checked explicitly (no guard region covers a 64-bit address),
    /// and the host reserves at most 4 GiB of it (or less, see
    /// [`Config::memory64_reservation`]): `memory.grow` past that fails (-1),
    /// whatever the declared maximum.
    pub fn wasm_memory64(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::MEMORY64, enable)
    }

    /// Typed function references: `(ref $t)`, `(ref null $t)` and the
    /// non-nullable abstract references in every place a value type goes,
    /// `call_ref`, `return_call_ref`, `ref.as_non_null`, `br_on_null`,
    /// `br_on_non_null`, non-nullable locals and tables with an initialiser
    /// expression (on by default, as in Wasmtime; part of WebAssembly 3.0).
    /// A call through a null reference traps with
    /// [`crate::TrapKind::NullReference`].
    pub fn wasm_function_references(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::FUNCTION_REFERENCES, enable)
    }

    /// The GC proposal (part of WebAssembly 3.0): recursive and sub types,
    /// struct and array types, the `any`/`eq`/`i31`/`struct`/`array`/`none`
    /// heap types, `i31`, `ref.eq`, casts and conversions between `anyref`
    /// and `externref` (see [`crate::AnyRef`], [`crate::I31`]), struct and
    /// array objects in a per-store collected heap ([`crate::Store::gc_stats`]).
    /// On by default, as in Wasmtime (its spec suite passes in both tiers); it
    /// implies typed function references. Types are canonicalised engine-wide
    /// by recursion group: two modules declaring the same group share its types.
    pub fn wasm_gc(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::GC, enable)
    }

    /// Exception handling (WebAssembly 3.0): tags, `throw`, `throw_ref`,
    /// `try_table` and `exnref` (on by default, as in Wasmtime). An exception
    /// no `try_table` catches reaches the host as an error holding its
    /// [`crate::ExnRef`] (see [`crate::Trap::exception`]); a host function
    /// throws by returning [`crate::Trap::throw`]. The legacy `try`/`catch`
    /// instructions are not supported.
    pub fn wasm_exceptions(&mut self, enable: bool) -> &mut Self {
        self.feature(wasmparser::WasmFeatures::EXCEPTIONS, enable)
    }

    pub(crate) fn wasm_features(&self) -> wasmparser::WasmFeatures {
        self.features
    }
}

struct EngineInner {
    config: Config,
    types: crate::type_registry::TypeRegistry,
    /// The epoch ([`Engine::increment_epoch`]), shared with the stores that check it.
    epoch: Arc<AtomicU64>,
    /// What the code cache did for this engine's modules.
    cache_stats: CacheCounters,
    tier_stats: TierCounters,
    /// The compiled tier's target, built on first use.
    #[cfg(carnac_compiled)]
    isa: std::sync::OnceLock<Result<cranelift_codegen::isa::OwnedTargetIsa, crate::Error>>,
    /// The header of the artifacts this engine writes and loads, encoded
    /// (`compile::artifact`), built on first use.
    #[cfg(carnac_native_code)]
    artifact_header: std::sync::OnceLock<Vec<u8>>,
}

/// Configuration and shared caches; cheap to clone, safe to share across threads.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("config", &self.inner.config).finish()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(&Config::default())
    }
}

impl Engine {
    pub fn new(config: &Config) -> Engine {
        Engine {
            inner: Arc::new(EngineInner {
                config: config.clone(),
                types: Default::default(),
                epoch: Arc::new(AtomicU64::new(0)),
                cache_stats: CacheCounters::default(),
                tier_stats: TierCounters::default(),
                #[cfg(carnac_compiled)]
                isa: std::sync::OnceLock::new(),
                #[cfg(carnac_native_code)]
                artifact_header: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Advances the engine's epoch by one tick, as Wasmtime's
    /// `Engine::increment_epoch`. Cheap (one atomic add) and callable from any
    /// thread, typically a ticker thread shared by all the engine's stores: with
    /// [`Config::epoch_interruption`], each store's guests reach their deadline
    /// ([`crate::Store::set_epoch_deadline`]) once the epoch does, at their next
    /// function entry or loop header, and WASI waits end then too (see
    /// [`crate::Caller::is_interrupted`]). Without epoch interruption it has no effect.
    pub fn increment_epoch(&self) {
        self.inner.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// The engine's epoch counter, for the stores that compare against it.
    pub(crate) fn epoch(&self) -> &Arc<AtomicU64> {
        &self.inner.epoch
    }

    /// The compiled tier's target ISA, built by `make` on first use.
    #[cfg(carnac_compiled)]
    pub(crate) fn isa(
        &self,
        make: impl FnOnce() -> Result<cranelift_codegen::isa::OwnedTargetIsa, crate::Error>,
    ) -> Result<&cranelift_codegen::isa::OwnedTargetIsa, crate::Error> {
        self.inner.isa.get_or_init(make).as_ref().map_err(|e| crate::Error::Compile(e.to_string()))
    }

    /// The encoded header of this engine's artifacts, built by `make` on first use.
    #[cfg(carnac_native_code)]
    pub(crate) fn artifact_header(
        &self,
        make: impl FnOnce() -> Result<Vec<u8>, crate::Error>,
    ) -> Result<&[u8], crate::Error> {
        if let Some(h) = self.inner.artifact_header.get() {
            return Ok(h);
        }
        let h = make()?;
        Ok(self.inner.artifact_header.get_or_init(|| h))
    }

    /// What the code cache ([`Config::cache`]) did for modules compiled by
    /// this engine so far.
    pub fn cache_stats(&self) -> CacheStats {
        let c = &self.inner.cache_stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats { hits: get(&c.hits), misses: get(&c.misses), stores: get(&c.stores), corrupt: get(&c.corrupt) }
    }

    #[cfg_attr(not(carnac_compiled), allow(dead_code))]
    pub(crate) fn cache_counters(&self) -> &CacheCounters {
        &self.inner.cache_stats
    }

    /// What automatic tiering ([`Strategy::Auto`]) did for this engine's modules so far.
    pub fn tier_stats(&self) -> TierStats {
        let c = &self.inner.tier_stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TierStats {
            functions_compiled: get(&c.functions_compiled),
            modules_compiled: get(&c.modules_compiled),
            loop_entries_compiled: get(&c.loop_entries_compiled),
            loops_entered: get(&c.loops_entered),
        }
    }

    #[cfg_attr(not(carnac_compiled), allow(dead_code))]
    pub(crate) fn tier_counters(&self) -> &TierCounters {
        &self.inner.tier_stats
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The canonical id of a function type: equal types get equal ids.
    pub(crate) fn register_type(&self, ty: &FuncType) -> u32 {
        self.inner.types.register_func(ty)
    }

    /// The engine's type registry: canonical ids and declared subtyping.
    pub(crate) fn type_registry(&self) -> &crate::type_registry::TypeRegistry {
        &self.inner.types
    }

    pub fn same(a: &Engine, b: &Engine) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }
}

/// What the code cache did for an engine's modules ([`Engine::cache_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Modules loaded from the cache instead of compiled.
    pub hits: u64,
    /// Modules compiled because the cache had no (usable) entry.
    pub misses: u64,
    /// Entries written.
    pub stores: u64,
    /// Entries found but unusable (damaged, truncated, or for other bytes), and so rewritten.
    pub corrupt: u64,
}

/// What automatic tiering did for an engine's modules ([`Engine::tier_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    /// Hot functions compiled, each on its own, in the background.
    pub functions_compiled: u64,
    /// Whole modules compiled in the background (for the code cache) after running hot.
    pub modules_compiled: u64,
    /// On-stack-replacement entries compiled (one per hot loop).
    pub loop_entries_compiled: u64,
    /// Times a running interpreted function continued in compiled code at a loop header.
    pub loops_entered: u64,
}

#[derive(Default)]
pub(crate) struct TierCounters {
    pub(crate) functions_compiled: AtomicU64,
    pub(crate) modules_compiled: AtomicU64,
    pub(crate) loop_entries_compiled: AtomicU64,
    pub(crate) loops_entered: AtomicU64,
}

#[derive(Default)]
pub(crate) struct CacheCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) stores: AtomicU64,
    pub(crate) corrupt: AtomicU64,
}

impl CacheCounters {
    #[cfg_attr(not(carnac_compiled), allow(dead_code))]
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
