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
//!   runs out, `exec` calls [`hot`] (one call per [`HOT`] counts, so the
//!   counting costs a load, a subtract and a store per entry or iteration).
//! - **Compiling.** The first time, the whole module is queued for the
//!   background compiler: one thread per process, compiling one job at a time
//!   with every core but one (and nothing on a one-core host, where compiling
//!   would only take time from the guest). Its code is published into
//!   `ModuleInner::compiled` and stored in the code cache when that is on.
//! - **Switching.** From then on calls from the host and from other
//!   instances enter compiled code (`runtime::call`); the interpreter's own
//!   calls leave its fast path (the ready list is emptied) and `exec` sends
//!   them to compiled code too. Frames already running stay interpreted until
//!   they return, except at loop headers:
//! - **On-stack replacement.** A function that stays in a hot loop (a
//!   `main` that never returns) asks, at its loop's `OsrPoint`, for an entry
//!   compiled for that loop: a variant of the function that takes the
//!   interpreter's frame (its locals), starts at the loop's header and runs
//!   the rest of the body (`FuncCompiler::compile_osr`). The interpreter jumps
//!   into it when it is ready and returns its results as the function's own.
//!   Loops inside a block that carries operands on the stack, and every loop
//!   when fuel is metered, have no `OsrPoint`: they wait for the next call.
//!
//! Must not touch: what either tier executes. This module only decides when to
//! compile and hands out code.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};

use super::compiler::OsrCode;
use super::module::CompiledModule;
use crate::error::Error;
use crate::module::ModuleInner;

/// Counts (function entries plus loop iterations, per function) between two
/// looks at whether a function should tier up.
pub(crate) const HOT: i32 = 1000;

/// The `offset` of the `OsrPoint` at a function's entry (a loop's is the
/// loop's wasm offset).
pub(crate) const ENTRY: u32 = u32::MAX;

/// A module's tiering state.
#[derive(Default)]
pub(crate) struct TierState {
    /// Whether the module was queued for compiling (once).
    requested: AtomicBool,
    /// On-stack-replacement entries by (defined function, loop offset).
    osr: Mutex<HashMap<(u32, u32), Osr>>,
}

enum Osr {
    Pending,
    Ready(Arc<OsrCode>),
    /// It could not be compiled: the loop stays interpreted.
    Failed,
}

impl TierState {
    /// The function and wasm offset of `pc` if it is in an on-stack-replacement entry.
    pub fn frame_at(&self, pc: usize) -> Option<(u32, Option<u32>)> {
        let osr = self.osr.lock().unwrap_or_else(|e| e.into_inner());
        osr.values().find_map(|o| match o {
            Osr::Ready(code) => code.frame_at(pc),
            _ => None,
        })
    }

    /// Whether any on-stack-replacement entry is compiled.
    pub fn has_osr_code(&self) -> bool {
        let osr = self.osr.lock().unwrap_or_else(|e| e.into_inner());
        osr.values().any(|o| matches!(o, Osr::Ready(_)))
    }
}

/// Called by the interpreter when defined function `def`'s counter ran out at
/// its `OsrPoint` at `offset` ([`ENTRY`] or a loop's offset): queues what
/// should compile, resets the counter, and returns the on-stack-replacement
/// entry for that loop when one is ready to jump into.
pub(crate) fn hot(module: &Arc<ModuleInner>, def: u32, offset: u32) -> Option<Arc<OsrCode>> {
    let tier = module.tier.as_ref()?;
    let counter = module.hot.get(def as usize)?;
    counter.store(HOT, Ordering::Relaxed);
    if background_threads() == 0 {
        // Nothing compiles on this host: stop counting.
        counter.store(i32::MAX, Ordering::Relaxed);
        return None;
    }
    if !tier.requested.swap(true, Ordering::AcqRel) {
        enqueue(Job::Module(Arc::downgrade(module)));
    }
    if offset == ENTRY {
        return None;
    }
    let mut osr = tier.osr.lock().unwrap_or_else(|e| e.into_inner());
    match osr.get(&(def, offset)) {
        Some(Osr::Ready(code)) => {
            crate::engine::CacheCounters::bump(&module.engine.tier_counters().loops_entered);
            return Some(code.clone());
        }
        Some(Osr::Pending) => {}
        Some(Osr::Failed) => counter.store(i32::MAX, Ordering::Relaxed),
        None => {
            osr.insert((def, offset), Osr::Pending);
            enqueue(Job::Osr(Arc::downgrade(module), def, offset));
        }
    }
    None
}

/// Compiles the module on this thread, if it has no code yet (for
/// `Module::serialize` of a tiering module).
pub(crate) fn compile_now(module: &ModuleInner) -> Result<(), Error> {
    if module.compiled.get().is_some() {
        return Ok(());
    }
    let (bodies, bytes) = module.bodies();
    let code = CompiledModule::new(&module.engine, &module.info, bytes, &bodies)?;
    publish(module, code);
    Ok(())
}

/// Publishes compiled code for the module, then sends the interpreter's calls to it.
fn publish(module: &ModuleInner, code: CompiledModule) {
    if module.compiled.set(code).is_ok() {
        module.retire_interpreter_calls();
        GENERATION.fetch_add(1, Ordering::Release);
    }
}

/// Counts modules tiered up in this process: a store whose function
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
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| super::compiler::available_threads().saturating_sub(1))
}

enum Job {
    Module(Weak<ModuleInner>),
    Osr(Weak<ModuleInner>, u32, u32),
}

struct Queue {
    jobs: VecDeque<Job>,
    worker: bool,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue { jobs: VecDeque::new(), worker: false });
static WORK: Condvar = Condvar::new();

fn enqueue(job: Job) {
    let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    q.jobs.push_back(job);
    if !q.worker {
        let spawned =
            std::thread::Builder::new().name("carnac-tier-up".into()).stack_size(8 << 20).spawn(background_compiler);
        // Without a thread, nothing tiers up: the interpreter goes on.
        q.worker = spawned.is_ok();
    }
    WORK.notify_one();
}

/// The background compiler: runs jobs in order, forever (a detached thread;
/// it holds no module alive between jobs).
fn background_compiler() {
    loop {
        let job = {
            let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(job) = q.jobs.pop_front() {
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
        Job::Module(module) => {
            let Some(module) = module.upgrade() else { return };
            if module.compiled.get().is_some() {
                return;
            }
            let (bodies, bytes) = module.bodies();
            // On failure (a module the compiler cannot take) the module stays interpreted.
            let Ok(code) = CompiledModule::new_on(&module.engine, &module.info, bytes, &bodies, background_threads())
            else {
                return;
            };
            if let Some(dir) = super::cache::dir(&module.engine) {
                if let Ok(artifact) = super::artifact::serialize(&module.engine, bytes, &code) {
                    super::cache::put(&module.engine, &dir, bytes, &artifact);
                }
            }
            publish(&module, code);
            crate::engine::CacheCounters::bump(&module.engine.tier_counters().modules_compiled);
        }
        Job::Osr(module, def, offset) => {
            let Some(module) = module.upgrade() else { return };
            let Some(tier) = module.tier.as_ref() else { return };
            // The module's job came first (it was queued first).
            let result = match module.compiled.get() {
                Some(code) => {
                    let (bodies, bytes) = module.bodies();
                    OsrCode::new(&module.engine, &module.info, bytes, bodies[def as usize].clone(), def, offset, code)
                }
                None => Err(Error::Compile("the module did not compile".into())),
            };
            let state = match result {
                Ok(code) => {
                    crate::engine::CacheCounters::bump(&module.engine.tier_counters().loop_entries_compiled);
                    Osr::Ready(Arc::new(code))
                }
                Err(_) => Osr::Failed,
            };
            tier.osr.lock().unwrap_or_else(|e| e.into_inner()).insert((def, offset), state);
        }
    }
}
