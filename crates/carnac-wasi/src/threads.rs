//! wasi-threads: the `wasi.thread-spawn` import and the thread group of one
//! program (programs built for `wasm32-wasip1-threads`: Rust's `std::thread`,
//! C's pthreads from wasi-libc).
//!
//! Owns: spawning (a new [`Store`] per thread, an instance of the same module
//! linked with the same [`Linker`], whose shared memory is the program's, and a
//! call of its `wasi_thread_start(tid, start_arg)` on a new OS thread), thread
//! ids, the limit on live threads, and how the program ends. Built on Carnac's
//! public API only; it must not reach into the runtime, and the CLI only wires
//! it (see `carnac run`).
//!
//! One program is one thread group. It ends when the main thread's `_start`
//! returns, when any thread calls `proc_exit(n)` (status `n`), or when any
//! thread traps (the program ends with that trap). Ending interrupts every
//! other thread's store ([`carnac::InterruptHandle`]), so none keeps running: a
//! thread spinning stops at its next loop header, one blocked in
//! `memory.atomic.wait` or in a WASI wait (`poll_oneoff`, a blocking read) stops
//! too. This needs interrupts enabled in the engine
//! ([`carnac::Config::interruptible`] or `epoch_interruption`); without them the
//! program's outcome is still decided the same way, but threads still running
//! cannot be stopped and run on detached (the CLI always enables interrupts for
//! a threaded program).
//!
//! Threads share the program's WASI state (descriptor table, arguments,
//! environment: [`WasiCtx::share`]); each has its own interrupt probe.
//!
//! Fuel: a store's fuel is its own (the runtime keeps it in the store, and
//! decides exhaustion without leaving guest code in the interpreter: its
//! `ConsumeFuel` handler traps inline, while only the compiled tier calls out
//! to the runtime, in its `out_of_fuel` builtin; refilling from a shared budget
//! would need a new hook in both), so a program's budget is split rather than
//! shared: a new thread takes half of its
//! spawner's remaining fuel (rounded down), so the fuel of all threads together
//! never exceeds the budget the program was given. A thread that runs out traps
//! with `all fuel consumed`, which ends the program like any trap.
//!
//! The thread limit ([`ThreadsConfig::max_threads`], default
//! [`DEFAULT_MAX_THREADS`]) counts spawned threads alive at once (the main thread
//! aside). Past it `thread-spawn` fails the way `pthread_create` does, with
//! `EAGAIN` (the negative value -6), so a program that handles the failure (Rust's
//! `thread::Builder::spawn` returns an error, a thread pool can run with fewer
//! threads) keeps working; the host hears of it once through
//! [`ThreadsConfig::on_limit`] (the CLI prints it, naming the flag that raises it).
//! Any other failure to start a thread (its store cannot be configured, the
//! module not instantiated in it, the host makes no OS thread) is answered the
//! same way, as Wasmtime answers every failure with a negative value, and
//! reported through [`ThreadsConfig::on_spawn_error`].

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use carnac::{
    AsContextMut, Caller, Error, Extern, ExternType, InterruptHandle, Linker, Module, SharedMemory, Store, Trap,
};

use crate::ctx::lock;
use crate::WasiCtx;

/// The default limit on a program's live spawned threads. Each thread costs an
/// OS thread (with an 8 MiB host stack reserved), a store and an instance, and
/// its guest stack in the shared memory; 128 keeps a runaway program from
/// exhausting the host while leaving room for a thread per core on large
/// machines plus a program's helper threads.
pub const DEFAULT_MAX_THREADS: usize = 128;

/// The largest thread id the wasi-threads ABI allows (ids are in `1..=MAX_TID`).
pub const MAX_TID: u32 = 0x1FFF_FFFF;

/// `thread-spawn`'s answer when no thread can be started: `-EAGAIN` (WASI's errno
/// 6), what wasi-libc's `pthread_create` turns into `EAGAIN`.
pub const SPAWN_EAGAIN: i32 = -6;

/// The host stack of each spawned thread, as large as a main thread's on Linux.
const HOST_STACK: usize = 8 << 20;

/// How long [`ThreadGroup::finish`] waits for interrupted threads to stop.
const GRACE: Duration = Duration::from_secs(2);

/// The hook that hears why a thread could not be started.
type OnSpawnError = Box<dyn Fn(&Error) + Send + Sync>;

/// The hook that configures each new thread's store.
type Configure<T> = Box<dyn Fn(&mut Store<T>) -> Result<(), Error> + Send + Sync>;

/// Settings of a threaded program, for [`ThreadGroup::new`].
pub struct ThreadsConfig<T> {
    max_threads: usize,
    on_limit: Option<Box<dyn Fn(usize) + Send + Sync>>,
    on_spawn_error: Option<OnSpawnError>,
    configure: Option<Configure<T>>,
}

impl<T> Default for ThreadsConfig<T> {
    fn default() -> Self {
        ThreadsConfig { max_threads: DEFAULT_MAX_THREADS, on_limit: None, on_spawn_error: None, configure: None }
    }
}

impl<T> ThreadsConfig<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The most spawned threads alive at once (the main thread aside); past it
    /// `thread-spawn` returns [`SPAWN_EAGAIN`].
    pub fn max_threads(&mut self, n: usize) -> &mut Self {
        self.max_threads = n;
        self
    }

    /// Called once, with the limit, the first time a spawn fails because of it.
    pub fn on_limit(&mut self, f: impl Fn(usize) + Send + Sync + 'static) -> &mut Self {
        self.on_limit = Some(Box::new(f));
        self
    }

    /// Called when a spawn fails for another reason than the limit (the new
    /// thread's store could not be configured, the module not instantiated
    /// in it, no OS thread made): `thread-spawn` then returns [`SPAWN_EAGAIN`]
    /// too, as Wasmtime answers every failure with a negative value.
    pub fn on_spawn_error(&mut self, f: impl Fn(&Error) + Send + Sync + 'static) -> &mut Self {
        self.on_spawn_error = Some(Box::new(f));
        self
    }

    /// Called on every new thread's store before it instantiates the module: the
    /// program's store settings (resource limits, an epoch deadline). Fuel and
    /// interrupts are handled by the group itself.
    pub fn configure_store(
        &mut self,
        f: impl Fn(&mut Store<T>) -> Result<(), Error> + Send + Sync + 'static,
    ) -> &mut Self {
        self.configure = Some(Box::new(f));
        self
    }
}

/// What a spawn needs that depends on the store's data type.
struct Spawner<T> {
    module: Module,
    linker: Linker<T>,
    fork: Box<dyn Fn(&mut T) -> T + Send + Sync>,
    configure: Option<Configure<T>>,
}

struct State {
    /// The interrupt handles of the stores running: spawned threads by id, the
    /// main thread under 0.
    stores: HashMap<u32, Option<InterruptHandle>>,
    /// Spawned threads alive.
    live: usize,
    /// The next thread id to try.
    next_tid: u32,
    /// How the program ended, once it has: the first ending wins.
    ended: Option<Result<(), Error>>,
    /// [`ThreadGroup::interrupt`] was called: stores registered later start interrupted.
    interrupted: bool,
}

impl State {
    /// Whether a store joining now must be interrupted at once.
    fn stopping(&self) -> bool {
        self.interrupted || self.ended.is_some()
    }
}

/// The thread group shared by every store of a program (through [`WasiCtx`]).
pub(crate) struct Group {
    state: Mutex<State>,
    changed: Condvar,
    max_threads: usize,
    on_limit: Option<Box<dyn Fn(usize) + Send + Sync>>,
    on_spawn_error: Option<OnSpawnError>,
    limit_reported: AtomicBool,
    /// A `Spawner<T>` for the program's store data type.
    spawner: Box<dyn Any + Send + Sync>,
}

impl Group {
    /// Ends the program with `outcome` unless it has ended already, and
    /// interrupts every thread's store.
    fn end(&self, state: &mut State, outcome: Result<(), Error>) {
        if state.ended.is_none() {
            state.ended = Some(outcome);
        }
        for h in state.stores.values().flatten() {
            h.interrupt();
        }
    }

    /// A spawned thread's call returned.
    fn thread_ended(&self, tid: u32, result: Result<(), Error>) {
        let mut st = lock(&self.state);
        st.stores.remove(&tid);
        st.live -= 1;
        if let Err(e) = result {
            self.end(&mut st, Err(e));
        }
        drop(st);
        self.changed.notify_all();
    }

    /// A free thread id, in `1..=MAX_TID`.
    fn next_tid(st: &mut State) -> u32 {
        loop {
            let tid = st.next_tid;
            st.next_tid = if tid >= MAX_TID { 1 } else { tid + 1 };
            if !st.stores.contains_key(&tid) {
                return tid;
            }
        }
    }

    fn spawn<T: Send + 'static>(self: &Arc<Self>, caller: &mut Caller<'_, T>, start_arg: i32) -> Result<i32, Trap> {
        let Some(spawner) = self.spawner.downcast_ref::<Spawner<T>>() else {
            return Err(Trap::host("wasi.thread-spawn: the thread group was made for another store data type"));
        };
        let tid = {
            let mut st = lock(&self.state);
            if st.ended.is_some() {
                // The program is ending: the spawner is being interrupted too.
                return Ok(SPAWN_EAGAIN);
            }
            if st.live >= self.max_threads {
                drop(st);
                // Reported outside the lock: the hook may ask the group things.
                if !self.limit_reported.swap(true, Ordering::Relaxed) {
                    if let Some(f) = &self.on_limit {
                        f(self.max_threads);
                    }
                }
                return Ok(SPAWN_EAGAIN);
            }
            st.live += 1;
            let tid = Self::next_tid(&mut st);
            st.stores.insert(tid, None);
            tid
        };
        match self.start_thread(spawner, caller, tid, start_arg) {
            Ok(()) => Ok(tid as i32),
            Err(e) => {
                let mut st = lock(&self.state);
                st.stores.remove(&tid);
                st.live -= 1;
                drop(st);
                self.changed.notify_all();
                if let Some(f) = &self.on_spawn_error {
                    f(&e);
                }
                Ok(SPAWN_EAGAIN)
            }
        }
    }

    /// Makes thread `tid`'s store and instance and starts its OS thread. On an
    /// error nothing of the thread is left, and the spawner has its fuel back.
    fn start_thread<T: Send + 'static>(
        self: &Arc<Self>,
        spawner: &Spawner<T>,
        caller: &mut Caller<'_, T>,
        tid: u32,
        start_arg: i32,
    ) -> Result<(), Error> {
        let data = (spawner.fork)(caller.data_mut());
        let mut store = Store::new(caller.engine(), data);
        if let Ok(fuel) = caller.get_fuel() {
            let given = fuel / 2;
            caller.set_fuel(fuel - given)?;
            store.set_fuel(given)?;
        }
        match self.prepare_thread(spawner, &mut store, tid) {
            Ok(start) => {
                let group = self.clone();
                std::thread::Builder::new()
                    .name(format!("wasm-thread-{tid}"))
                    .stack_size(HOST_STACK)
                    .spawn(move || {
                        // A host panic in the thread ends the program as a trap
                        // would, instead of leaving the group waiting for it.
                        let call = std::panic::AssertUnwindSafe(|| {
                            start.call(store.as_context_mut(), (tid as i32, start_arg))
                        });
                        let result = std::panic::catch_unwind(call).unwrap_or_else(|_| {
                            Err(Error::from(Trap::host(format!("wasi thread {tid}: the host panicked"))))
                        });
                        // The store goes before the group hears of the end, so
                        // that a finished program holds no thread's instance.
                        drop(store);
                        group.thread_ended(tid, result);
                    })
                    .map(drop)
                    .map_err(|e| Error::from(Trap::host(format!("wasi.thread-spawn: no OS thread: {e}"))))
            }
            Err(e) => {
                // The fuel the thread did not use goes back to its spawner.
                if let (Ok(left), Ok(mine)) = (store.get_fuel(), caller.get_fuel()) {
                    caller.set_fuel(mine.saturating_add(left))?;
                }
                Err(e)
            }
        }
    }

    /// Configures a new thread's store, registers it, and instantiates the
    /// module in it: its `wasi_thread_start`.
    fn prepare_thread<T: Send + 'static>(
        &self,
        spawner: &Spawner<T>,
        store: &mut Store<T>,
        tid: u32,
    ) -> Result<carnac::TypedFunc<(i32, i32), ()>, Error> {
        let context = |what: &str, e: Error| match e {
            Error::Trap(t) => Error::Trap(t),
            e => Error::from(Trap::host(format!("wasi.thread-spawn: {what}: {e}"))),
        };
        if let Some(configure) = &spawner.configure {
            configure(store).map_err(|e| context("configuring the thread's store", e))?;
        }
        let handle = store.interrupt_handle().ok();
        {
            let mut st = lock(&self.state);
            if let (Some(h), true) = (&handle, st.stopping()) {
                h.interrupt();
            }
            st.stores.insert(tid, handle);
        }
        let instance = spawner
            .linker
            .instantiate(&mut *store, &spawner.module)
            .map_err(|e| context("instantiating the module for a new thread", e))?;
        instance
            .get_typed_func::<(i32, i32), ()>(&*store, "wasi_thread_start")
            .map_err(|e| context("the module exports no `wasi_thread_start(i32, i32)`", e))
    }
}

/// The thread group of one wasi-threads program: made once per program, attached
/// to the main thread's [`WasiCtx`] (every thread's context, made by `fork`,
/// shares it), and told how the main thread's call ended.
///
/// ```no_run
/// use carnac::{Config, Engine, Linker, Module, Store};
/// use carnac_wasi::threads::{ThreadGroup, ThreadsConfig};
/// use carnac_wasi::WasiCtx;
///
/// let mut config = Config::new();
/// config.interruptible(true);
/// let engine = Engine::new(&config);
/// let module = Module::from_file(&engine, "threads.wasm")?;
/// let mut linker: Linker<WasiCtx> = Linker::new(&engine);
/// carnac_wasi::add_to_linker(&mut linker, |ctx| ctx)?;
/// carnac_wasi::threads::add_to_linker(&mut linker, |ctx| ctx)?;
/// carnac_wasi::threads::define_shared_memories(&mut linker, &module)?;
/// let group = ThreadGroup::new(ThreadsConfig::new(), &module, &linker, |ctx: &mut WasiCtx| ctx.share());
/// let mut ctx = WasiCtx::builder().inherit_stdio().arg("threads.wasm").build();
/// group.attach(&mut ctx);
/// let mut store = Store::new(&engine, ctx);
/// group.add_main(&store);
/// let instance = linker.instantiate(&mut store, &module)?;
/// let start = instance.get_typed_func::<(), ()>(&store, "_start")?;
/// let result = group.finish(start.call(&mut store, ()));
/// # result?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ThreadGroup {
    group: Arc<Group>,
}

impl ThreadGroup {
    /// A group for `module`, whose threads are instantiated with `linker` (it
    /// must define everything the module imports: WASI, `wasi.thread-spawn`
    /// through [`add_to_linker`], and its shared memory, e.g. with
    /// [`define_shared_memories`]); `fork` makes a new thread's store data from
    /// its spawner's (with [`WasiCtx::share`] for the WASI part).
    pub fn new<T: Send + 'static>(
        config: impl Into<ThreadsConfig<T>>,
        module: &Module,
        linker: &Linker<T>,
        fork: impl Fn(&mut T) -> T + Send + Sync + 'static,
    ) -> ThreadGroup {
        let config = config.into();
        let spawner = Spawner {
            module: module.clone(),
            linker: linker.clone(),
            fork: Box::new(fork),
            configure: config.configure,
        };
        let state = State { stores: HashMap::new(), live: 0, next_tid: 1, ended: None, interrupted: false };
        ThreadGroup {
            group: Arc::new(Group {
                state: Mutex::new(state),
                changed: Condvar::new(),
                max_threads: config.max_threads,
                on_limit: config.on_limit,
                on_spawn_error: config.on_spawn_error,
                limit_reported: AtomicBool::new(false),
                spawner: Box::new(spawner),
            }),
        }
    }

    /// Makes `ctx` (the main thread's) part of this group: its `thread-spawn`
    /// calls start threads of the group, and contexts shared from it belong to it.
    pub fn attach(&self, ctx: &mut WasiCtx) {
        ctx.threads = Some(self.group.clone());
    }

    /// Registers the main thread's store, so that the program's end (a thread's
    /// `proc_exit` or trap) or [`ThreadGroup::interrupt`] interrupts it too.
    pub fn add_main<T>(&self, store: &Store<T>) {
        let handle = store.interrupt_handle().ok();
        let mut st = lock(&self.group.state);
        if let (Some(h), true) = (&handle, st.stopping()) {
            h.interrupt();
        }
        st.stores.insert(0, handle);
    }

    /// Interrupts every thread of the program (a deadline for the whole
    /// program: the CLI's `--timeout`); threads spawned later start interrupted.
    /// The program then ends with the `Interrupted` trap of the first thread
    /// that reports it.
    pub fn interrupt(&self) {
        let mut st = lock(&self.group.state);
        st.interrupted = true;
        for h in st.stores.values().flatten() {
            h.interrupt();
        }
    }

    /// How many spawned threads are alive.
    pub fn live_threads(&self) -> usize {
        lock(&self.group.state).live
    }

    /// The program's outcome, given how the main thread's call ended: the first
    /// ending of the program wins (a thread's `proc_exit` or trap, which
    /// interrupted the main thread; else the main thread's result). Every other
    /// thread is interrupted, and waited for (a couple of seconds at most: a
    /// thread blocked in a host call that cannot be interrupted is left
    /// detached). `Ok(())` means exit status 0; `proc_exit(n)` comes back as the
    /// trap carrying [`crate::I32Exit`], as from a single-threaded program.
    pub fn finish(&self, main: Result<(), Error>) -> Result<(), Error> {
        let g = &self.group;
        let mut st = lock(&g.state);
        st.stores.remove(&0);
        g.end(&mut st, main);
        let deadline = std::time::Instant::now() + GRACE;
        while st.live > 0 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            st = g.changed.wait_timeout(st, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        st.ended.take().unwrap_or(Ok(()))
    }
}

impl<T> From<&mut ThreadsConfig<T>> for ThreadsConfig<T> {
    fn from(c: &mut ThreadsConfig<T>) -> Self {
        std::mem::take(c)
    }
}

/// Whether `module` is a wasi-threads program: it imports `wasi.thread-spawn`.
pub fn imports_thread_spawn(module: &Module) -> bool {
    module.imports().any(|i| i.module == "wasi" && i.name == "thread-spawn")
}

/// Creates a [`SharedMemory`] for each shared memory `module` imports, of the
/// import's type, and defines it in `linker` (every thread's instance then gets
/// the same one). Returns them.
pub fn define_shared_memories<T: 'static>(linker: &mut Linker<T>, module: &Module) -> Result<Vec<SharedMemory>, Error> {
    let mut made = Vec::new();
    for import in module.imports() {
        if let ExternType::Memory(ty) = &import.ty {
            if ty.is_shared() {
                let memory = SharedMemory::new(linker.engine(), *ty)?;
                linker.define(&import.module, &import.name, Extern::SharedMemory(memory.clone()))?;
                made.push(memory);
            }
        }
    }
    Ok(made)
}

/// Defines `wasi.thread-spawn(start_arg: i32) -> i32` in `linker`; `get` finds
/// the [`WasiCtx`] in the store's data, to which a [`ThreadGroup`] must be
/// attached (a spawn from a store without one traps, naming the cause).
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + Copy + 'static,
) -> Result<(), Error> {
    linker.func_wrap(
        "wasi",
        "thread-spawn",
        move |mut caller: Caller<'_, T>, start_arg: i32| -> Result<i32, Trap> {
            let Some(group) = get(caller.data_mut()).threads.clone() else {
                return Err(Trap::host(
                    "wasi.thread-spawn: the program runs without a thread group (ThreadGroup::attach)",
                ));
            };
            group.spawn(&mut caller, start_arg)
        },
    )?;
    Ok(())
}

/// Whether the WebAssembly binary `bytes` imports `wasi.thread-spawn`, read from
/// its import section alone (no validation, no compilation), so that an embedder
/// can configure the engine (interrupts) before compiling the module. `None`
/// when `bytes` is not a well-formed binary module up to its import section
/// (text, a compiled artifact): the embedder then asks [`imports_thread_spawn`]
/// after loading.
pub fn binary_imports_thread_spawn(bytes: &[u8]) -> Option<bool> {
    fn leb(b: &[u8], at: &mut usize) -> Option<u32> {
        let mut result: u64 = 0;
        for shift in (0..35).step_by(7) {
            let byte = *b.get(*at)?;
            *at += 1;
            result |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return u32::try_from(result).ok();
            }
        }
        None
    }
    fn name<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
        let len = leb(b, at)? as usize;
        let s = b.get(*at..at.checked_add(len)?)?;
        *at += len;
        Some(s)
    }
    if bytes.get(..8)? != b"\0asm\x01\0\0\0" {
        return None;
    }
    let mut at = 8;
    while at < bytes.len() {
        let id = bytes[at];
        at += 1;
        let size = leb(bytes, &mut at)? as usize;
        let end = at.checked_add(size)?;
        let section = bytes.get(at..end)?;
        match id {
            // Custom sections may come anywhere; the type section comes first.
            0 | 1 => {}
            2 => {
                let mut p = 0;
                for _ in 0..leb(section, &mut p)? {
                    let module = name(section, &mut p)?;
                    let field = name(section, &mut p)?;
                    if module == b"wasi" && field == b"thread-spawn" {
                        return Some(true);
                    }
                    // Skip the import's description.
                    let kind = *section.get(p)?;
                    p += 1;
                    match kind {
                        0x00 => drop(leb(section, &mut p)?),
                        0x01 | 0x02 => {
                            if kind == 0x01 {
                                // A table's element type: one byte, unless a typed reference.
                                if matches!(*section.get(p)?, 0x63 | 0x64) {
                                    return None;
                                }
                                p += 1;
                            }
                            let flags = *section.get(p)?;
                            p += 1;
                            leb(section, &mut p)?;
                            if flags & 1 != 0 {
                                leb(section, &mut p)?;
                            }
                        }
                        0x03 => {
                            if matches!(*section.get(p)?, 0x63 | 0x64) {
                                return None;
                            }
                            p += 2; // value type, mutability
                        }
                        0x04 => {
                            p += 1; // attribute
                            leb(section, &mut p)?;
                        }
                        _ => return None,
                    }
                }
                return Some(false);
            }
            // Every later section comes after the imports: there are none.
            _ => return Some(false),
        }
        at = end;
    }
    Some(false)
}
