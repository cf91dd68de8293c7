//! Automatic tiering (`Strategy::Auto`): modules start in the interpreter and
//! move to compiled code once they run hot.
//!
//! Why this shape: the interpreter starts a module at once (translation is
//! lazy, per function), while compiling costs milliseconds to seconds; most
//! code of a large program runs a few times or never, and a short job should
//! finish before a compiler would. So nothing compiles until the module shows
//! it is worth it, and then off the guest's thread:
//!
//! - **Counting.** The interpreter's `OsrPoint` instruction, at each
//!   function's entry and at the header of each loop with an empty operand
//!   stack, decrements its function's counter in `ModuleInner::hot`; when it
//!   runs out, `exec` calls [`hot`] (once per `Config::tier_up_threshold`
//!   counts, 1,000 by default, so counting costs a load, a subtract and a
//!   store per entry or iteration).
//! - **Compiling.** A hot function is queued for the background compiler
//!   (one thread per process, one job at a time; none on a one-core host,
//!   where compiling would only take time from the guest) and compiled alone
//!   ([`StandaloneCode`]): its calls to other defined functions go through
//!   the store's function references, so each reaches compiled code if its
//!   callee has some and the interpreter otherwise. Only hot code is compiled,
//!   so a large module tiers up as fast as a small one. With the code cache on,
//!   the whole module is compiled too once the compiler is idle (with every
//!   core but one), published into `ModuleInner::compiled` (direct calls
//!   between its functions) and stored in the cache, so the next run has all
//!   of it from the first call.
//! - **Switching.** From then on calls from the host and from other
//!   instances enter the compiled function (`runtime::call`); the
//!   interpreter's own calls leave its fast path (the function's entry in the
//!   ready list is emptied) and `exec` sends them to compiled code too; stores
//!   refresh their function references (`StoreInner::refresh_func_refs`) so
//!   compiled callers call it directly. Frames already running stay interpreted until
//!   they return, except at loop headers:
//! - **On-stack replacement.** A function that stays in a hot loop (a
//!   `main` that never returns) asks, at its loop's `OsrPoint`, for an entry
//!   compiled for that loop: a variant of the function that takes the
//!   interpreter's frame (its locals), starts at the loop's header and runs
//!   the rest of the body (`translate::Placement::OsrEntry`). The interpreter jumps
//!   into it when it is ready and returns its results as the function's own.
//!   Loops inside a block that carries operands on the stack, and every loop
//!   when fuel is metered, have no `OsrPoint`: they wait for the next call.
//!
//! Must not touch: what either tier executes. This module only decides when to
//! compile and hands out code.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};

use super::compiler::StandaloneCode;
use super::module::CompiledModule;
use crate::engine::CacheCounters;
use crate::error::Error;
use crate::module::ModuleInner;

/// The `offset` of the `OsrPoint` at a function's entry (a loop's is the
/// loop's wasm offset).
pub(crate) const ENTRY: u32 = u32::MAX;

/// A module's tiering state.
pub(crate) struct TierState {
    /// Each defined function's standalone code, once compiled.
    funcs: Box<[OnceLock<Arc<StandaloneCode>>]>,
    /// Whether each defined function was queued for compiling (once).
    queued: Box<[AtomicBool]>,
    /// Whether the whole module was queued for compiling (once).
    module_queued: AtomicBool,
    /// On-stack-replacement entries by (defined function, loop offset).
    osr: Mutex<HashMap<(u32, u32), Osr>>,
    /// Every standalone region, sorted by address, for finding the function
    /// at a pc (a backtrace looks up each of its frames: a binary search, not
    /// a scan of every hot function).
    regions: Mutex<Vec<Arc<StandaloneCode>>>,
}

enum Osr {
    Pending,
    Ready(Arc<StandaloneCode>),
    /// It could not be compiled: the loop stays interpreted.
    Failed,
}

impl TierState {
    /// The state of a module with `num_defined` defined functions.
    pub fn new(num_defined: usize) -> TierState {
        TierState {
            funcs: (0..num_defined).map(|_| OnceLock::new()).collect(),
            queued: (0..num_defined).map(|_| AtomicBool::new(false)).collect(),
            module_queued: AtomicBool::new(false),
            osr: Mutex::new(HashMap::new()),
            regions: Mutex::new(Vec::new()),
        }
    }

    /// Defined function `def`'s standalone code, if it tiered up.
    #[inline]
    pub fn func(&self, def: u32) -> Option<&Arc<StandaloneCode>> {
        self.funcs.get(def as usize)?.get()
    }

    /// The function and wasm offset of `pc` if it is in standalone code.
    pub fn frame_at(&self, pc: usize) -> Option<(u32, Option<u32>)> {
        let regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        let k = regions.partition_point(|r| r.wasm_call() as usize <= pc).checked_sub(1)?;
        regions[k].frame_at(pc)
    }

    /// Records a standalone region (kept sorted by address).
    fn add_region(&self, code: &Arc<StandaloneCode>) {
        let mut regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        let at = regions.partition_point(|r| r.wasm_call() < code.wasm_call());
        regions.insert(at, code.clone());
    }

    /// Whether any standalone code was compiled.
    pub fn has_code(&self) -> bool {
        !self.regions.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }
}

/// Called by the interpreter when defined function `def`'s counter ran out at
/// its `OsrPoint` at `offset` ([`ENTRY`] or a loop's offset): queues what
/// should compile, resets the counter, and returns the on-stack-replacement
/// entry for that loop when one is ready to jump into.
pub(crate) fn hot(module: &Arc<ModuleInner>, def: u32, offset: u32) -> Option<Arc<StandaloneCode>> {
    let tier = module.tier.as_ref()?;
    let counter = module.hot.get(def as usize)?;
    let config = module.engine.config();
    counter.store(config.tier_up_threshold as i32, Ordering::Relaxed);
    let sync = config.tier_up_synchronously;
    if background_threads() == 0 && !sync {
        // Nothing compiles on this host: stop counting.
        counter.store(i32::MAX, Ordering::Relaxed);
        return None;
    }
    let compiled = module.func_is_compiled(def);
    if !compiled && !tier.queued[def as usize].swap(true, Ordering::AcqRel) {
        submit(Job::Func(Arc::downgrade(module), def), sync);
    }
    if offset == ENTRY {
        if compiled {
            // Its calls go to the compiled code now: nothing more to count here.
            counter.store(i32::MAX, Ordering::Relaxed);
        }
        return None;
    }
    let mut osr = tier.osr.lock().unwrap_or_else(|e| e.into_inner());
    match osr.get(&(def, offset)) {
        Some(Osr::Ready(code)) => {
            CacheCounters::bump(&module.engine.tier_counters().loops_entered);
            return Some(code.clone());
        }
        Some(Osr::Pending) => {}
        Some(Osr::Failed) => counter.store(i32::MAX, Ordering::Relaxed),
        None => {
            osr.insert((def, offset), Osr::Pending);
            if sync {
                drop(osr);
                run(Job::Osr(Arc::downgrade(module), def, offset));
                let osr = tier.osr.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(Osr::Ready(code)) = osr.get(&(def, offset)) {
                    CacheCounters::bump(&module.engine.tier_counters().loops_entered);
                    return Some(code.clone());
                }
                return None;
            }
            enqueue(Job::Osr(Arc::downgrade(module), def, offset));
        }
    }
    None
}

/// Runs `job` now on this thread (`sync`) or queues it for the background compiler.
fn submit(job: Job, sync: bool) {
    if sync {
        run(job);
    } else {
        enqueue(job);
    }
}

/// Compiles the module on this thread, if it has no code yet (for
/// `Module::serialize` of a tiering module).
pub(crate) fn compile_now(module: &ModuleInner) -> Result<(), Error> {
    if module.compiled.get().is_some() {
        return Ok(());
    }
    let (bodies, bytes) = module.bodies();
    let code = CompiledModule::new(&module.engine, &module.info, bytes, &bodies)?;
    publish_module(module, code);
    Ok(())
}

/// Publishes the whole module's code, then sends the interpreter's calls to it.
fn publish_module(module: &ModuleInner, code: CompiledModule) {
    if module.compiled.set(code).is_ok() {
        module.retire_interpreter_calls();
        GENERATION.fetch_add(1, Ordering::Release);
    }
}

/// Counts code published by tiering in this process: a store whose function
/// references were made at an older generation refreshes them
/// (`StoreInner::refresh_func_refs`).
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The current tier-up generation.
#[inline]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Threads the background compiler may use: all cores but one (for the guest).
fn background_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| super::compiler::available_threads().saturating_sub(1))
}

enum Job {
    /// One hot function.
    Func(Weak<ModuleInner>, u32),
    /// An on-stack-replacement entry: (function, loop offset).
    Osr(Weak<ModuleInner>, u32, u32),
    /// The whole module, for the code cache (when nothing hotter waits).
    Module(Weak<ModuleInner>),
}

struct Queue {
    /// Hot functions and loops, first come first served.
    urgent: VecDeque<Job>,
    /// Whole modules, compiled when `urgent` is empty.
    idle: VecDeque<Job>,
    worker: bool,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue { urgent: VecDeque::new(), idle: VecDeque::new(), worker: false });
static WORK: Condvar = Condvar::new();

fn enqueue(job: Job) {
    let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    match job {
        Job::Module(_) => q.idle.push_back(job),
        _ => q.urgent.push_back(job),
    }
    if !q.worker {
        let spawned =
            std::thread::Builder::new().name("carnac-tier-up".into()).stack_size(8 << 20).spawn(background_compiler);
        // Without a thread, nothing tiers up: the interpreter goes on.
        q.worker = spawned.is_ok();
    }
    WORK.notify_one();
}

/// The background compiler: runs jobs, hot ones first, forever (a detached
/// thread; it holds no module alive between jobs).
fn background_compiler() {
    loop {
        let job = {
            let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(job) = q.urgent.pop_front().or_else(|| q.idle.pop_front()) {
                    break job;
                }
                q = WORK.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        // A panic in the compiler must not take the thread (and tiering) down.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(job)));
    }
}

fn run(job: Job) {
    match job {
        Job::Func(module, def) => {
            let Some(module) = module.upgrade() else { return };
            let Some(tier) = module.tier.as_ref() else { return };
            if module.func_is_compiled(def) {
                return;
            }
            let (bodies, bytes) = module.bodies();
            // On failure (a function the compiler cannot take) it stays interpreted.
            let Ok(code) =
                StandaloneCode::new(&module.engine, &module.info, bytes, bodies[def as usize].clone(), def, None)
            else {
                return;
            };
            let code = Arc::new(code);
            tier.add_region(&code);
            if tier.funcs[def as usize].set(code).is_ok() {
                module.retire_interpreter_call(def);
                GENERATION.fetch_add(1, Ordering::Release);
                CacheCounters::bump(&module.engine.tier_counters().functions_compiled);
            }
            // With the code cache on, the whole module follows when the
            // compiler is idle, so that the next run has all of it at once.
            if super::cache::dir(&module.engine).is_some() && !tier.module_queued.swap(true, Ordering::AcqRel) {
                submit(Job::Module(Arc::downgrade(&module)), module.engine.config().tier_up_synchronously);
            }
        }
        Job::Osr(module, def, offset) => {
            let Some(module) = module.upgrade() else { return };
            let Some(tier) = module.tier.as_ref() else { return };
            let (bodies, bytes) = module.bodies();
            let result = StandaloneCode::new(
                &module.engine,
                &module.info,
                bytes,
                bodies[def as usize].clone(),
                def,
                Some(offset),
            );
            let state = match result {
                Ok(code) => {
                    CacheCounters::bump(&module.engine.tier_counters().loop_entries_compiled);
                    let code = Arc::new(code);
                    tier.add_region(&code);
                    Osr::Ready(code)
                }
                Err(_) => Osr::Failed,
            };
            tier.osr.lock().unwrap_or_else(|e| e.into_inner()).insert((def, offset), state);
        }
        Job::Module(module) => {
            let Some(module) = module.upgrade() else { return };
            if module.compiled.get().is_some() {
                return;
            }
            let (bodies, bytes) = module.bodies();
            let Ok(code) = CompiledModule::new_on(&module.engine, &module.info, bytes, &bodies, background_threads())
            else {
                return;
            };
            if let Some(dir) = super::cache::dir(&module.engine) {
                if let Ok(artifact) = super::artifact::serialize(&module.engine, bytes, &code) {
                    super::cache::put(&module.engine, &dir, bytes, &artifact);
                }
            }
            publish_module(&module, code);
            CacheCounters::bump(&module.engine.tier_counters().modules_compiled);
        }
    }
}
