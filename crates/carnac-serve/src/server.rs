//! The HTTP side: accept connections (tokio + hyper), route each request, run a
//! fresh instance of the route's module on one of the guest threads (one per
//! core, fed from one queue: [`GuestPool`]; never on the async reactor) under the
//! route's limits, and stream what the guest writes back as the response.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use carnac::{
    Config, Engine, Error, InstancePre, InterruptHandle, Linker, Module, Store, StoreLimits, Strategy, TrapKind,
};
use carnac_wasi::{I32Exit, Stream, WasiCtx};

use crate::log::log;
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::sync::{oneshot, Notify, Semaphore};

use crate::cgi::{self, CgiRequest};
use crate::config::{RouteConfig, ServeConfig};
use crate::metrics::Metrics;

/// Where the routes come from: a config file (reloaded when it or a module
/// changes) or a single module served on every path.
#[derive(Debug, Clone)]
pub enum Source {
    ConfigFile(PathBuf),
    Module(PathBuf),
}

impl Source {
    /// The configuration, with the command line's `overrides` over it.
    fn load(&self, overrides: &Overrides) -> Result<ServeConfig, String> {
        let mut config = match self {
            Source::ConfigFile(p) => ServeConfig::from_file(p)?,
            Source::Module(m) => ServeConfig::single(m.clone()),
        };
        if let Some(tier) = overrides.tier {
            config.tier = Some(tier);
        }
        Ok(config)
    }

    /// Files whose change triggers a reload.
    fn watched(&self, config: &ServeConfig) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = config.routes.iter().map(|r| r.module.clone()).collect();
        if let Source::ConfigFile(p) = self {
            v.push(p.clone());
        }
        v
    }
}

/// Settings given on the command line (`carnac serve -C tier=...`) that take
/// precedence over the configuration file's, on every reload too.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The tier that runs every route's handlers, whatever `tier` the file sets.
    pub tier: Option<Strategy>,
}

/// Host stack that compiled handlers may use (`Config::max_wasm_stack`):
/// Carnac's default, set here so that [`GUEST_THREAD_STACK`] follows it.
const GUEST_WASM_STACK: usize = 512 << 10;

/// The stack of each guest thread. Compiled code (`tier = "cranelift"`) runs
/// on the calling thread's stack: its prologues trap with `StackExhausted`
/// once a request has used `GUEST_WASM_STACK` below where the guest was
/// entered, so the thread needs that much plus room for what runs above the
/// entry (the worker loop, instantiation) and below the limit (WASI host
/// functions called from the deepest wasm frame, the trap landing). Set
/// explicitly rather than left to the platform default (or `RUST_MIN_STACK`),
/// which could be smaller than the limit: a deep recursion would then overflow
/// the host stack (a crash of the whole server) instead of trapping. The
/// interpreter keeps guest frames on a stack of its own and needs none of it.
const GUEST_THREAD_STACK: usize = GUEST_WASM_STACK + (1 << 20);

struct Route {
    cfg: RouteConfig,
    /// For prefix routes, the prefix (`/api` for `/api/...`); `None` for exact routes.
    prefix: Option<String>,
    engine: Engine,
    pre: InstancePre<WasiCtx>,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// The route's queue in the guest pool (its path: stable across reloads).
    key: Arc<str>,
}

struct RouteTable {
    routes: Vec<Arc<Route>>,
    /// The tier that runs every route's handlers.
    tier: Strategy,
}

impl RouteTable {
    fn build(config: &ServeConfig) -> Result<RouteTable, String> {
        let tier = config.tier.unwrap_or(Strategy::Auto);
        let mut engines: HashMap<bool, Engine> = HashMap::new();
        let mut modules: HashMap<(PathBuf, bool), Module> = HashMap::new();
        let mut routes = Vec::new();
        for cfg in &config.routes {
            let fuel = cfg.limits.fuel.is_some();
            let engine = engines
                .entry(fuel)
                .or_insert_with(|| {
                    let mut c = Config::new();
                    // A fresh instance per request: track memory writes so that each
                    // store's memory is reset without a system call (the interpreter's;
                    // compiled code's memories are reset by the runtime its own way).
                    c.interruptible(true).consume_fuel(fuel).track_memory_writes(true).max_wasm_stack(GUEST_WASM_STACK);
                    match tier {
                        // The host loads every route's module before it serves it, off
                        // the request path: `auto` compiles it there (or loads its code
                        // from the code cache), so that no request runs interpreted.
                        // A build without the compiler interprets (and runs artifacts).
                        Strategy::Auto if Strategy::Cranelift.is_available() => {
                            c.strategy(Strategy::Cranelift).cache(true)
                        }
                        tier => c.strategy(tier),
                    };
                    Engine::new(&c)
                })
                .clone();
            let key = (cfg.module.clone(), fuel);
            let module = match modules.get(&key) {
                Some(m) => m.clone(),
                None => {
                    let m = Module::from_file(&engine, &cfg.module)
                        .map_err(|e| format!("route {}: {}: {e}", cfg.path, cfg.module.display()))?;
                    modules.insert(key, m.clone());
                    m
                }
            };
            if module.get_export("_start").is_none() {
                return Err(format!("route {}: {} exports no `_start`", cfg.path, cfg.module.display()));
            }
            for d in &cfg.dirs {
                if !d.host.is_dir() {
                    return Err(format!("route {}: {} is not a directory", cfg.path, d.host.display()));
                }
            }
            let mut linker: Linker<WasiCtx> = Linker::new(&engine);
            carnac_wasi::add_to_linker(&mut linker, |c| c).map_err(|e| e.to_string())?;
            let module = match &cfg.init {
                Some(name) => pre_initialize(&engine, &linker, &module, cfg, name)
                    .map_err(|e| format!("route {}: init `{name}`: {e}", cfg.path))?,
                None => module,
            };
            let pre = linker.instantiate_pre(&module).map_err(|e| format!("route {}: {e}", cfg.path))?;
            routes.push(Arc::new(Route {
                prefix: cfg.path.strip_suffix("/...").map(str::to_string),
                slots: Arc::new(Semaphore::new(cfg.limits.concurrency)),
                waiting: AtomicUsize::new(0),
                key: Arc::from(cfg.path.as_str()),
                cfg: cfg.clone(),
                engine,
                pre,
            }));
        }
        Ok(RouteTable { routes, tier })
    }

    /// The route for `path`: an exact match, else the longest matching prefix.
    /// Returns the route and its SCRIPT_NAME.
    fn find(&self, path: &str) -> Option<(Arc<Route>, String)> {
        if let Some(r) = self.routes.iter().find(|r| r.prefix.is_none() && r.cfg.path == path) {
            return Some((r.clone(), r.cfg.path.clone()));
        }
        self.routes
            .iter()
            .filter_map(|r| {
                let p = r.prefix.as_deref()?;
                let hit = path.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
                hit.then(|| (r.clone(), p.to_string()))
            })
            .max_by_key(|(_, p)| p.len())
    }
}

/// Runs a route's `init` export once, under the route's environment, directories
/// and limits, and returns the module of the state it leaves (see the
/// configuration's docs): each request's instance starts from that snapshot.
fn pre_initialize(
    engine: &Engine,
    linker: &Linker<WasiCtx>,
    module: &Module,
    cfg: &RouteConfig,
    name: &str,
) -> Result<Module, String> {
    let t = Instant::now();
    let mut b = WasiCtx::builder();
    b.arg(cfg.module.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()));
    b.env_entries(cfg.env.iter().map(|(k, v)| format!("{k}={v}")));
    // Its output goes to the server's log, line by line, as a request's stderr does.
    let route: Arc<str> = Arc::from(cfg.path.as_str());
    let log = |route: &Arc<str>| LogWriter { source: LogSource::Init(route.clone()), line: Vec::new(), logged: 0 };
    b.stdout(Stream::Writer(Box::new(log(&route)))).stderr(Stream::Writer(Box::new(log(&route))));
    for d in &cfg.dirs {
        b.preopened_dir_with(&d.host, &d.guest, true).map_err(|e| e.to_string())?;
    }
    let mut store = Store::new(engine, b.build());
    store.set_limiter(StoreLimits::new().memory_size((cfg.limits.memory_mb as usize) << 20).table_elements(1 << 20));
    if let Some(f) = cfg.limits.fuel {
        store.set_fuel(f).map_err(|e| e.to_string())?;
    }
    let interrupt = store.interrupt_handle().map_err(|e| e.to_string())?;
    let _deadline = DeadlineGuard::new(Instant::now() + Duration::from_millis(cfg.limits.timeout_ms), interrupt);
    let instance = linker.instantiate(&mut store, module).map_err(|e| e.to_string())?;
    let init = instance.get_func(&store, name).ok_or("the module exports no such function")?;
    match init.call(&mut store, &[], &mut []) {
        Ok(()) => {}
        Err(Error::Trap(t)) if t.kind() == TrapKind::Interrupted => {
            return Err(format!("did not finish within the route's timeout_ms ({})", cfg.limits.timeout_ms))
        }
        Err(Error::Trap(t)) => match t.downcast_host::<I32Exit>() {
            Some(e) => return Err(format!("exited with status {} instead of returning", e.0)),
            None => return Err(format!("wasm trap: {}", t.message())),
        },
        Err(e) => return Err(e.to_string()),
    }
    let snapshot = instance.snapshot(&store).map_err(|e| e.to_string())?;
    log!("init route={} export={name} ms={:.3}", cfg.path, t.elapsed().as_secs_f64() * 1000.0);
    Ok(snapshot.module().clone())
}

/// The threads that run guests, fed from one queue per route.
///
/// `workers` threads (one per core by default: more would only time-slice the
/// same cores) always run. A finished worker takes the next job without
/// sleeping, and a request wakes a worker only when one is idle, so a busy
/// server pays no thread hand-off on this side.
///
/// Fairness between routes: a free worker takes the next job of the route with
/// the fewest guests running (the oldest job among equals), so one route's
/// backlog cannot queue every other route behind it. And when every worker is
/// busy and a request arrives for a route that has nothing running, a spare
/// thread (at most `spare` of them, exiting when idle) starts it at once: one
/// route of slow handlers, each within its limits, then costs the others a
/// share of the CPU, not its timeout in latency.
struct GuestPool {
    queue: Mutex<PoolQueue>,
    ready: Condvar,
    workers: usize,
    spare: usize,
}

struct Job {
    route: Arc<str>,
    queued_at: Instant,
    run: Box<dyn FnOnce() + Send>,
}

#[derive(Default)]
struct RouteJobs {
    jobs: std::collections::VecDeque<Job>,
    running: usize,
}

struct PoolQueue {
    routes: HashMap<Arc<str>, RouteJobs>,
    queued: usize,
    idle: usize,
    threads: usize,
    stop: bool,
}

/// A spare thread idle this long exits.
const SPARE_IDLE: Duration = Duration::from_secs(5);
/// `/health` says 503 once a queued guest has waited this long for a thread.
const HEALTH_MAX_WAIT: Duration = Duration::from_secs(1);

impl PoolQueue {
    /// The next job by the fairness rule above, counted as running.
    fn pick(&mut self) -> Option<Job> {
        let (_, rj) = self
            .routes
            .iter_mut()
            .filter(|(_, rj)| !rj.jobs.is_empty())
            .min_by_key(|(_, rj)| (rj.running, rj.jobs.front().map(|j| j.queued_at)))?;
        let job = rj.jobs.pop_front()?;
        rj.running += 1;
        self.queued -= 1;
        Some(job)
    }

    /// Entries stay when a route is idle (routes are few; no allocation per request).
    fn finished(&mut self, route: &Arc<str>) {
        if let Some(rj) = self.routes.get_mut(route) {
            rj.running -= 1;
        }
    }
}

impl GuestPool {
    fn start(workers: usize, spare: usize) -> Result<Arc<GuestPool>, String> {
        let pool = Arc::new(GuestPool {
            queue: Mutex::new(PoolQueue { routes: HashMap::new(), queued: 0, idle: 0, threads: 0, stop: false }),
            ready: Condvar::new(),
            workers,
            spare,
        });
        for _ in 0..workers {
            pool.spawn_thread()?;
        }
        Ok(pool)
    }

    fn spawn_thread(self: &Arc<Self>) -> Result<(), String> {
        let n = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.threads += 1;
            q.threads
        };
        let p = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("carnac-guest-{n}"))
            .stack_size(GUEST_THREAD_STACK)
            .spawn(move || p.work());
        if let Err(e) = spawned {
            self.queue.lock().unwrap_or_else(|e| e.into_inner()).threads -= 1;
            return Err(format!("cannot start a guest thread: {e}"));
        }
        Ok(())
    }

    fn submit(self: &Arc<Self>, route: Arc<str>, run: Box<dyn FnOnce() + Send>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let rj = q.routes.entry(route.clone()).or_default();
        let starved = rj.running == 0;
        rj.jobs.push_back(Job { route, queued_at: Instant::now(), run });
        q.queued += 1;
        let wake = q.idle > 0;
        let spawn = !wake && starved && q.threads < self.workers + self.spare;
        drop(q);
        if wake {
            self.ready.notify_one();
        } else if spawn {
            if let Err(e) = self.spawn_thread() {
                log!("error: {e}");
            }
        }
    }

    fn work(&self) {
        // The route of the job this thread just ran: marked finished under the
        // same lock that takes the next one (one lock per job).
        let mut ran: Option<Arc<str>> = None;
        loop {
            let job = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(route) = ran.take() {
                    q.finished(&route);
                }
                loop {
                    if let Some(job) = q.pick() {
                        break job;
                    }
                    if q.stop || (q.threads > self.workers && q.idle >= 1) {
                        // Stopping, or a spare thread with another one idle already.
                        q.threads -= 1;
                        return;
                    }
                    q.idle += 1;
                    let spare = q.threads > self.workers;
                    let (guard, timeout) = if spare {
                        let (g, t) = self.ready.wait_timeout(q, SPARE_IDLE).unwrap_or_else(|e| e.into_inner());
                        (g, t.timed_out())
                    } else {
                        (self.ready.wait(q).unwrap_or_else(|e| e.into_inner()), false)
                    };
                    q = guard;
                    q.idle -= 1;
                    if timeout && q.queued == 0 && q.threads > self.workers {
                        q.threads -= 1;
                        return;
                    }
                }
            };
            ran = Some(job.route.clone());
            // A panicking job (a bug, not a guest: traps are values) must not take
            // the worker with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.run));
        }
    }

    /// `None` if guests can start now, or why not (for `/health`): a request
    /// has waited longer than [`HEALTH_MAX_WAIT`] for a thread while no thread
    /// could be added for it (a route with nothing running gets a spare one, so
    /// one route's backlog alone does not make the server unready).
    fn stalled(&self) -> Option<String> {
        let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.idle > 0 || q.queued == 0 {
            return None;
        }
        let at_cap = q.threads >= self.workers + self.spare;
        let waited = q
            .routes
            .values()
            .filter(|rj| at_cap || rj.running == 0)
            .filter_map(|rj| rj.jobs.front())
            .map(|j| j.queued_at.elapsed())
            .max()?;
        (waited > HEALTH_MAX_WAIT).then(|| {
            format!(
                "guests cannot start: {} queued, one for {} ms; all {} guest threads busy",
                q.queued,
                waited.as_millis(),
                q.threads
            )
        })
    }

    /// Lets the workers exit once the queue is empty.
    fn stop(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        self.ready.notify_all();
    }
}

/// Bytes held in memory for requests server-wide (request bodies and output
/// not yet sent), against `max_buffered_mb`.
struct Budget {
    used: AtomicU64,
    cap: u64,
}

impl Budget {
    fn try_take(&self, n: u64) -> bool {
        self.used.fetch_update(Relaxed, Relaxed, |u| u.checked_add(n).filter(|t| *t <= self.cap)).is_ok()
    }
    fn give(&self, n: u64) {
        self.used.fetch_sub(n, Relaxed);
    }
}

/// Bytes taken from a [`Budget`], given back when dropped.
struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Reservation {
    fn new(budget: &Arc<Budget>) -> Reservation {
        Reservation { budget: budget.clone(), bytes: 0 }
    }
    fn try_grow(&mut self, n: u64) -> bool {
        let ok = self.budget.try_take(n);
        if ok {
            self.bytes += n;
        }
        ok
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give(self.bytes);
    }
}

/// The request body as the guest's stdin; its memory counts against the
/// budget until the guest's store is dropped.
struct BodyReader {
    body: std::io::Cursor<Bytes>,
    _held: Reservation,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.body.read(buf)
    }
}

struct State {
    guests: Arc<GuestPool>,
    source: Source,
    overrides: Overrides,
    routes: RwLock<Arc<RouteTable>>,
    metrics: Metrics,
    next_id: AtomicU64,
    /// Request bodies and unsent output, server-wide.
    buffered: Arc<Budget>,
}

/// The response body: a whole buffer, or the guest's output as it is written.
pub enum Body {
    Full(Option<Bytes>),
    Stream(Box<StreamBody>),
}

/// Streams a running guest's output: whatever it has written is sent when it
/// writes a lot (16 KiB), every few milliseconds while it runs, and at its end.
/// If the guest fails (trap, timeout) the body ends with an error, so the
/// connection is closed without the final chunk and the client sees a broken
/// response rather than a short one that looks whole.
pub struct StreamBody {
    out: Arc<Output>,
    first: Option<Bytes>,
    notified: Option<Pin<Box<tokio::sync::futures::OwnedNotified>>>,
    tick: Pin<Box<tokio::time::Sleep>>,
    /// The whole response must be sent by then (armed when the guest ends).
    drain: Option<Pin<Box<tokio::time::Sleep>>>,
    drain_timeout: Duration,
    conn: Arc<ConnCtl>,
    on_end: Option<Box<dyn FnOnce(bool) + Send + Sync>>,
}

impl StreamBody {
    /// Records the request (once): `complete` says whether the body was sent whole.
    fn end(&mut self, complete: bool) {
        if let Some(f) = self.on_end.take() {
            f(complete);
        }
    }
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        // The client is gone (or the response is complete): the guest's further
        // writes fail, and a guest still running is stopped.
        self.out.abandon();
        self.end(false);
    }
}

/// Why a streamed response was cut short.
#[derive(Debug)]
pub struct Aborted(&'static str);

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Aborted {}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Aborted;

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Body::Full(b) => http_body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream(_) => http_body::SizeHint::default(),
        }
    }

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(sb) => {
                if let Some(b) = sb.first.take().filter(|b| !b.is_empty()) {
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                loop {
                    let done = sb.out.done.load(SeqCst);
                    if done && sb.drain.is_none() {
                        let at = tokio::time::Instant::now() + sb.drain_timeout;
                        sb.drain = Some(Box::pin(tokio::time::sleep_until(at)));
                    }
                    if let Some(d) = sb.drain.as_mut() {
                        if d.as_mut().poll(cx).is_ready() {
                            sb.conn.stalled.store(true, Relaxed);
                            sb.end(false);
                            return Poll::Ready(Some(Err(Aborted("the client did not take the response in time"))));
                        }
                    }
                    let chunk = sb.out.take();
                    if !chunk.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))));
                    }
                    if done {
                        if sb.out.failed() {
                            sb.end(false);
                            return Poll::Ready(Some(Err(Aborted("the handler failed while its response streamed"))));
                        }
                        sb.end(true);
                        return Poll::Ready(None);
                    }
                    let n = sb.notified.get_or_insert_with(|| Box::pin(sb.out.notify.clone().notified_owned()));
                    if n.as_mut().poll(cx).is_ready() {
                        sb.notified = None;
                        continue;
                    }
                    if sb.tick.as_mut().poll(cx).is_ready() {
                        sb.tick.as_mut().reset(tokio::time::Instant::now() + FLUSH_EVERY);
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// While a guest runs, its output is sent at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(5);
/// Output buffered beyond this is sent at once.
const FLUSH_BYTES: usize = 16 << 10;
/// A response is held (its status not yet sent) while the guest runs, up to
/// this much output or the route's `stream_after_ms`.
const HOLD_BYTES: usize = 1 << 20;
/// A header block longer than this is malformed.
const MAX_HEAD_BYTES: usize = 64 << 10;

/// What a guest has written and whether it has finished, shared between its
/// worker thread and the response. Buffering here (instead of sending every
/// write across threads) means a short handler costs one wake-up, at its end.
///
/// The guest never waits for the client: its output is buffered up to the
/// route's `max_response_bytes` and the server's `max_buffered_mb`, counted
/// against the latter until the response is done with (`held`).
struct Output {
    buf: Mutex<Vec<u8>>,
    written: AtomicU64,
    done: AtomicBool,
    gone: AtomicBool,
    outcome: Mutex<Option<(Outcome, Duration)>>,
    notify: Arc<Notify>,
    held: Mutex<Reservation>,
    /// Stops the guest (its store's interrupt), once it runs.
    interrupt: Mutex<Option<InterruptHandle>>,
}

impl Output {
    fn set_interrupt(&self, handle: InterruptHandle) {
        *self.interrupt.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }

    /// The client is gone: the guest's writes fail from now on, and the guest
    /// is stopped (a guest that ignores failed writes would otherwise hold its
    /// thread until its deadline).
    fn abandon(&self) {
        self.gone.store(true, SeqCst);
        if !self.done.load(SeqCst) {
            if let Some(h) = self.interrupt.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                h.interrupt();
            }
        }
    }

    fn new(budget: &Arc<Budget>) -> Output {
        Output {
            buf: Mutex::new(Vec::new()),
            written: AtomicU64::new(0),
            done: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            outcome: Mutex::new(None),
            notify: Arc::new(Notify::new()),
            held: Mutex::new(Reservation::new(budget)),
            interrupt: Mutex::new(None),
        }
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether the guest ended in a trap, a timeout or a host error.
    fn failed(&self) -> bool {
        matches!(
            self.outcome.lock().unwrap_or_else(|e| e.into_inner()).as_ref(),
            Some((Outcome::Timeout | Outcome::ClientGone | Outcome::Trap(_) | Outcome::Failed(_), _))
        )
    }

    /// Waits (asynchronously) for more output or the end, at most `FLUSH_EVERY`.
    async fn changed(&self) {
        let n = self.notify.notified();
        tokio::pin!(n);
        n.as_mut().enable();
        if self.done.load(SeqCst) {
            return;
        }
        let _ = tokio::time::timeout(FLUSH_EVERY, n).await;
    }
}

/// Marks a request's guest as finished (failed) if its job unwinds.
struct FinishOnUnwind(Arc<Output>);

impl Drop for FinishOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.0.done.load(SeqCst) {
            let mut outcome = self.0.outcome.lock().unwrap_or_else(|e| e.into_inner());
            outcome.get_or_insert((Outcome::Failed("the host panicked running this request".into()), Duration::ZERO));
            drop(outcome);
            self.0.done.store(true, SeqCst);
            self.0.notify.notify_one();
        }
    }
}

/// Interrupts guests at their deadlines: one thread for the whole server
/// instead of a timer task per request.
struct Deadlines {
    entries: Mutex<DeadlineMap>,
    wake: Condvar,
    next: AtomicU64,
}

struct DeadlineMap {
    map: BTreeMap<(std::time::Instant, u64), InterruptHandle>,
    /// When the thread will look next on its own. A new deadline wakes it only
    /// if it is earlier: with one timeout per route, later requests have later
    /// deadlines, so a busy server does not wake this thread once per request.
    wakes_at: std::time::Instant,
}

/// How long the deadline thread sleeps when it has nothing due.
const DEADLINE_IDLE: Duration = Duration::from_secs(1);

fn deadlines() -> &'static Deadlines {
    static D: OnceLock<&'static Deadlines> = OnceLock::new();
    D.get_or_init(|| {
        let d: &'static Deadlines = Box::leak(Box::new(Deadlines {
            entries: Mutex::new(DeadlineMap { map: BTreeMap::new(), wakes_at: std::time::Instant::now() }),
            wake: Condvar::new(),
            next: AtomicU64::new(0),
        }));
        std::thread::Builder::new()
            .name("carnac-deadlines".into())
            .spawn(move || {
                let mut entries = d.entries.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    let now = std::time::Instant::now();
                    while let Some(entry) = entries.map.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        entry.remove().interrupt();
                    }
                    let at = entries.map.keys().next().map_or(now + DEADLINE_IDLE, |(at, _)| *at);
                    entries.wakes_at = at;
                    let wait = at.saturating_duration_since(now);
                    entries = d.wake.wait_timeout(entries, wait).unwrap_or_else(|e| e.into_inner()).0;
                }
            })
            .expect("start the deadline thread");
        d
    })
}

/// Removes its deadline when the guest is done.
struct DeadlineGuard((std::time::Instant, u64));

impl DeadlineGuard {
    fn new(at: std::time::Instant, handle: InterruptHandle) -> DeadlineGuard {
        let d = deadlines();
        let key = (at, d.next.fetch_add(1, Relaxed));
        let mut entries = d.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.map.insert(key, handle);
        if at < entries.wakes_at {
            entries.wakes_at = at;
            d.wake.notify_one();
        }
        DeadlineGuard(key)
    }
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        deadlines().entries.lock().unwrap_or_else(|e| e.into_inner()).map.remove(&self.0);
    }
}

fn text(status: u16, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Body::Full(Some(Bytes::from(body.into()))));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// The guest's stdout: appended to the shared [`Output`], up to a cap. It never
/// waits for the client (a client that does not read must not hold a guest
/// thread): what the client has not taken yet stays buffered.
struct OutputWriter {
    id: u64,
    out: Arc<Output>,
    cap: u64,
    cut: bool,
}

impl OutputWriter {
    fn cut(&mut self, why: &str) -> std::io::Error {
        if !self.cut {
            self.cut = true;
            log!("warn id={} response cut after {} bytes: {why}", self.id, self.out.written.load(Relaxed));
        }
        std::io::Error::new(std::io::ErrorKind::FileTooLarge, why.to_string())
    }
}

impl Write for OutputWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.out.gone.load(SeqCst) {
            return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"));
        }
        let total = self.out.written.load(Relaxed) + data.len() as u64;
        if total > self.cap {
            return Err(self.cut("the route's max_response_bytes"));
        }
        if !self.out.held.lock().unwrap_or_else(|e| e.into_inner()).try_grow(data.len() as u64) {
            return Err(self.cut("the server's max_buffered_mb is in use"));
        }
        let buffered = {
            let mut buf = self.out.buf.lock().unwrap_or_else(|e| e.into_inner());
            buf.extend_from_slice(data);
            buf.len()
        };
        self.out.written.store(total, Relaxed);
        if buffered >= FLUSH_BYTES {
            self.out.notify.notify_one();
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What one request's guest may log on stderr; the rest is dropped (a guest
/// must not flood the server's log).
const MAX_LOG_BYTES: usize = 64 << 10;

/// The guest's stderr: each line goes to the log, tagged with the request id.
struct LogWriter {
    source: LogSource,
    line: Vec<u8>,
    logged: usize,
}

/// Whose output a [`LogWriter`] logs.
enum LogSource {
    /// A request's guest (its stderr), by request id.
    Request(u64),
    /// A route's init function (`init = "..."`, its stdout and stderr), by route.
    Init(Arc<str>),
}

impl std::fmt::Display for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogSource::Request(id) => write!(f, "guest id={id}"),
            LogSource::Init(route) => write!(f, "init-output route={route}"),
        }
    }
}

impl LogWriter {
    fn emit(&mut self) {
        if self.logged < MAX_LOG_BYTES {
            self.logged += self.line.len() + 1;
            let text = log_text(&self.line);
            log!("{} {text}", self.source);
            if self.logged >= MAX_LOG_BYTES {
                log!("warn {}: further output is dropped (over {MAX_LOG_BYTES} bytes)", self.source);
            }
        }
        self.line.clear();
    }
}

/// A guest's log line as logged: control characters are escaped, so a guest
/// cannot forge log lines (a `\r`) or drive the operator's terminal (escape
/// sequences).
fn log_text(line: &[u8]) -> String {
    let mut text = String::with_capacity(line.len());
    for c in String::from_utf8_lossy(line).chars() {
        if c.is_control() && c != '\t' {
            text.extend(c.escape_default());
        } else {
            text.push(c);
        }
    }
    text
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.logged >= MAX_LOG_BYTES {
            // Past the cap nothing more is looked at (a guest writing gigabytes
            // to stderr costs no host time per byte).
            return Ok(buf.len());
        }
        for &b in buf {
            if b == b'\n' {
                self.emit();
            } else if self.line.len() < 8192 {
                self.line.push(b);
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
    }
}

/// How a guest run ended.
#[derive(Debug)]
enum Outcome {
    Exited(i32),
    Timeout,
    /// Stopped because nobody was waiting for its answer any more (its client
    /// left, or its output was already refused as malformed).
    ClientGone,
    Trap(String),
    Failed(String),
}

impl Outcome {
    fn label(&self) -> String {
        match self {
            Outcome::Exited(0) => "ok".into(),
            Outcome::Exited(c) => format!("exit:{c}"),
            Outcome::Timeout => "timeout".into(),
            Outcome::ClientGone => "abandoned".into(),
            Outcome::Trap(_) => "trap".into(),
            Outcome::Failed(_) => "error".into(),
        }
    }
}

/// Runs the guest; returns how it ended, its instantiation time, and its store,
/// which the caller drops once the outcome is published: resetting the memory
/// for reuse then costs no latency.
fn run_guest(
    route: &Route,
    ctx: WasiCtx,
    deadline: std::time::Instant,
    metrics: &Metrics,
    out: &Output,
) -> (Outcome, Duration, Store<WasiCtx>) {
    let mut store = Store::new(&route.engine, ctx);
    // Route engines are interruptible (see `RouteTable::build`); WASI waits see the
    // interrupt through the store.
    let interrupt = match store.interrupt_handle() {
        Ok(h) => h,
        Err(e) => return (Outcome::Failed(e.to_string()), Duration::ZERO, store),
    };
    out.set_interrupt(interrupt.clone());
    let _deadline = DeadlineGuard::new(deadline, interrupt);
    // Tables are capped too (a module may declare millions of elements); 1M
    // entries (8 MiB) is far beyond what compiled programs use.
    store.set_limiter(
        StoreLimits::new().memory_size((route.cfg.limits.memory_mb as usize) << 20).table_elements(1 << 20),
    );
    if let Some(f) = route.cfg.limits.fuel {
        let _ = store.set_fuel(f);
    }
    metrics.live_instances.fetch_add(1, Relaxed);
    let t = Instant::now();
    let instance = route.pre.instantiate(&mut store);
    let instantiate = t.elapsed();
    metrics.instantiated(instantiate);
    let result = instance.and_then(|i| {
        let start = i.get_typed_func::<(), ()>(&store, "_start")?;
        start.call(&mut store, ())
    });
    metrics.live_instances.fetch_sub(1, Relaxed);
    let outcome = match result {
        Ok(()) => Outcome::Exited(0),
        Err(Error::Trap(t)) => match (t.downcast_host::<I32Exit>(), t.kind()) {
            (Some(e), _) => Outcome::Exited(e.0),
            (None, TrapKind::Interrupted) => Outcome::Timeout,
            (None, _) => {
                // The message and the innermost frames are enough for the log line.
                let frames: Vec<String> = t.backtrace().iter().take(3).map(|f| f.to_string()).collect();
                Outcome::Trap(format!("wasm trap: {} (at {})", t.message(), frames.join(" < ")))
            }
        },
        Err(e) => Outcome::Failed(e.to_string()),
    };
    // Output went straight to the shared buffer as it was written: nothing is left in the store.
    (outcome, instantiate, store)
}

/// Per-connection settings shared with its I/O ([`DrainIo`]).
pub struct ConnCtl {
    /// How long a write to the client may make no progress, in ms.
    write_timeout_ms: AtomicU64,
    /// Set when a response was cut off because the client did not take it in
    /// time (counted once the connection closes).
    stalled: AtomicBool,
}

/// A request refused before its guest ran: status, message, log outcome.
type Refusal = (u16, &'static str, &'static str);

/// Reads the whole request body by `deadline`, within `max` bytes, taking
/// memory from `held` as it arrives (unless the declared length was taken).
async fn read_body(
    mut body: Incoming,
    max: u64,
    declared: Option<u64>,
    deadline: tokio::time::Instant,
    held: &mut Reservation,
) -> Result<Bytes, Refusal> {
    let mut data: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0) as usize);
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err((408, "request body not received in time", "body-timeout")),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err((400, "malformed request body", "bad-body")),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(chunk) = frame.into_data() else { continue };
        if (data.len() + chunk.len()) as u64 > max {
            return Err((413, "request body too large", "body-too-large"));
        }
        if declared.is_none() && !held.try_grow(chunk.len() as u64) {
            return Err((503, "server busy", "busy-memory"));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(data))
}

/// Counts a request as waiting for its route until dropped.
struct Waiting(Arc<Route>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Relaxed);
    }
}

/// Records a request whose client went away while its response was held
/// (status 499, as nginx logs it), after stopping its guest.
struct CancelGuard<F: FnOnce(u16, bool) + Send + 'static> {
    out: Arc<Output>,
    finished: Option<F>,
}

impl<F: FnOnce(u16, bool) + Send + 'static> CancelGuard<F> {
    fn disarm(mut self) -> Option<F> {
        self.finished.take()
    }
}

impl<F: FnOnce(u16, bool) + Send + 'static> Drop for CancelGuard<F> {
    fn drop(&mut self) {
        let Some(finished) = self.finished.take() else { return };
        self.out.abandon();
        let out = self.out.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                while !out.done.load(SeqCst) {
                    out.changed().await;
                }
                finished(499, false);
            });
        }
    }
}

/// How the held part of a response ended.
enum Held {
    /// The guest finished: everything it wrote is in the buffer.
    Finished,
    /// The guest still runs; the head ends here (head length, body start).
    Streaming((usize, usize)),
    /// The guest still runs and wrote no header block in [`MAX_HEAD_BYTES`].
    NoHead,
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    remote: SocketAddr,
    local: SocketAddr,
    conn: Arc<ConnCtl>,
) -> Response<Body> {
    let started = Instant::now();
    let id = state.next_id.fetch_add(1, Relaxed);
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().to_string();
    match path.as_str() {
        // Ready to serve: guests can start (a readiness probe).
        "/health" => {
            return match state.guests.stalled() {
                None => text(200, "ok\n"),
                Some(why) => text(503, format!("{why}\n")),
            }
        }
        "/metrics" => {
            let tier = state.routes.read().unwrap_or_else(|e| e.into_inner()).tier;
            let mut body = state.metrics.render();
            body.push_str(&crate::metrics::tier_info(tier));
            return text(200, body);
        }
        _ => {}
    }
    let log = |route: &str, status: u16, bytes: u64, inst: Option<Duration>, outcome: &str| {
        log!(
            "access id={id} method={method} path={path} route={route} status={status} bytes={bytes} total_ms={:.3} instantiate_us={} outcome={outcome}",
            started.elapsed().as_secs_f64() * 1e3,
            inst.map_or("-".to_string(), |d| d.as_micros().to_string()),
        );
    };
    let table = state.routes.read().unwrap_or_else(|e| e.into_inner()).clone();
    let Some((route, script_name)) = table.find(&path) else {
        log("-", 404, 0, None, "no-route");
        state.metrics.request("-", 404, started.elapsed());
        return text(404, "no route for this path\n");
    };
    let route_name = route.cfg.path.clone();
    let reject = |status: u16, msg: &str, outcome: &str| {
        log(&route_name, status, 0, None, outcome);
        state.metrics.request(&route_name, status, started.elapsed());
        text(status, format!("{msg}\n"))
    };
    let limits = &route.cfg.limits;
    conn.write_timeout_ms.store(limits.drain_timeout_ms, Relaxed);
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return reject(413, "request body too large", "body-too-large");
    }
    // Admission comes before the body is read: a request sending its body
    // counts as waiting, so a route's uploads are bounded by its queue.
    if route.waiting.fetch_add(1, Relaxed) >= limits.queue {
        route.waiting.fetch_sub(1, Relaxed);
        return reject(503, "server busy", "busy");
    }
    let waiting = Waiting(route.clone());
    // Bodies in memory, server-wide, stay within max_buffered_mb.
    let mut held = Reservation::new(&state.buffered);
    if declared.is_some_and(|n| !held.try_grow(n)) {
        return reject(503, "server busy", "busy-memory");
    }
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let protocol = format!("{:?}", req.version());
    let body_deadline = tokio::time::Instant::now() + Duration::from_millis(limits.body_timeout_ms);
    let body = match read_body(req.into_body(), limits.max_body_bytes, declared, body_deadline, &mut held).await {
        Ok(b) => b,
        Err((status, msg, outcome)) => return reject(status, msg, outcome),
    };
    // Bounded queueing: at most `queue` requests wait for one of `concurrency` slots.
    let permit = route.slots.clone().acquire_owned().await;
    drop(waiting);
    let Ok(permit) = permit else { return reject(503, "server shutting down", "busy") };

    let remote_ip = remote.ip().to_string();
    let server_name = local.ip().to_string();
    let cgi_req = CgiRequest {
        method: &method,
        path: &path,
        query: &query,
        route: &route.cfg.path,
        script_name: &script_name,
        headers,
        content_length: body.len() as u64,
        server_name: &server_name,
        server_port: local.port(),
        remote_addr: &remote_ip,
        protocol: &protocol,
    };
    let out = Arc::new(Output::new(&state.buffered));
    let mut b = WasiCtx::builder();
    b.args(cgi::argv(&cgi_req));
    b.env_entries(cgi::environment(&cgi_req, &route.cfg.env));
    b.stdin(Stream::Reader(Box::new(BodyReader { body: std::io::Cursor::new(body), _held: held })))
        .stdout(Stream::Writer(Box::new(OutputWriter {
            id,
            out: out.clone(),
            cap: limits.max_response_bytes,
            cut: false,
        })))
        .stderr(Stream::Writer(Box::new(LogWriter { source: LogSource::Request(id), line: Vec::new(), logged: 0 })));
    for d in &route.cfg.dirs {
        if let Err(e) = b.preopened_dir_with(&d.host, &d.guest, true) {
            log!("error id={id} route={route_name}: {e}");
            return reject(500, "handler misconfigured", "error");
        }
    }
    let ctx = b.build();
    // The deadline counts from here: waiting for a core is part of the request's time.
    let deadline = std::time::Instant::now() + Duration::from_millis(limits.timeout_ms);
    {
        let (st, r, out) = (state.clone(), route.clone(), out.clone());
        state.guests.submit(
            route.key.clone(),
            Box::new(move || {
                let _permit = permit;
                // Should the job panic (a host bug: guest failures are values), the
                // request still ends, with a 500, instead of waiting forever.
                let _finished = FinishOnUnwind(out.clone());
                let (outcome, instantiate, store) = if std::time::Instant::now() >= deadline {
                    // Its time ran out while it waited for a worker.
                    (Outcome::Timeout, Duration::ZERO, None)
                } else {
                    let (o, i, s) = run_guest(&r, ctx, deadline, &st.metrics, &out);
                    // Interrupted before its deadline: its client went away.
                    let o = match o {
                        Outcome::Timeout if out.gone.load(SeqCst) && std::time::Instant::now() < deadline => {
                            Outcome::ClientGone
                        }
                        o => o,
                    };
                    (o, i, Some(s))
                };
                // The guest has finished: all its output is in `out`.
                *out.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some((outcome, instantiate));
                out.done.store(true, SeqCst);
                out.notify.notify_one();
                drop(store);
            }),
        );
    }

    // Records the request once the guest has finished; `complete` is false
    // when the response was cut off (the connection aborted).
    let finished = {
        let (state, out, route_name, method, path) =
            (state.clone(), out.clone(), route_name.clone(), method.clone(), path.clone());
        move |status: u16, complete: bool| {
            let (outcome, inst) = out
                .outcome
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or((Outcome::Failed("client gone before the guest finished".into()), Duration::ZERO));
            match &outcome {
                Outcome::Timeout => {
                    state.metrics.timeouts.fetch_add(1, Relaxed);
                }
                Outcome::Trap(msg) | Outcome::Failed(msg) => {
                    state.metrics.traps.fetch_add(1, Relaxed);
                    log!("error id={id} route={route_name}: {msg}");
                }
                Outcome::Exited(_) | Outcome::ClientGone => {}
            }
            if !complete {
                state.metrics.aborted.fetch_add(1, Relaxed);
            }
            log!(
                "access id={id} method={method} path={path} route={route_name} status={status} bytes={} total_ms={:.3} instantiate_us={} outcome={}{}",
                out.written.load(Relaxed),
                started.elapsed().as_secs_f64() * 1e3,
                inst.as_micros(),
                outcome.label(),
                if complete { "" } else { " aborted=true" },
            );
            state.metrics.request(&route_name, status, started.elapsed());
        }
    };
    // Hold the response (its status is not sent yet) until the guest ends, or
    // it has written HOLD_BYTES, or stream_after_ms have passed with its header
    // block complete: a handler that fails after printing `Status: 200` then
    // still gets its 500 or 504.
    let stream_at = Instant::now() + Duration::from_millis(limits.stream_after_ms);
    let mut buf: Vec<u8> = Vec::new();
    // A client that disconnects while the response is held drops this future:
    // the guard then stops the guest and records the request (499).
    let guard = CancelGuard { out: out.clone(), finished: Some(finished) };
    let held = loop {
        let done = out.done.load(SeqCst);
        buf.extend_from_slice(&out.take());
        if done {
            break Held::Finished;
        }
        if buf.len() >= HOLD_BYTES || Instant::now() >= stream_at {
            if let Some(end) = cgi::find_head_end(&buf) {
                break Held::Streaming(end);
            }
            if buf.len() > MAX_HEAD_BYTES {
                break Held::NoHead;
            }
        }
        out.changed().await;
    };
    let Some(finished) = guard.disarm() else { return text(500, "internal error\n") };

    /// Waits for the guest to finish (its writes already fail), then records it.
    async fn record_when_done(out: Arc<Output>, status: u16, complete: bool, finished: impl FnOnce(u16, bool)) {
        while !out.done.load(SeqCst) {
            out.changed().await;
        }
        finished(status, complete);
    }

    let (head_len, body_start) = match held {
        Held::Finished => {
            let failure = match out.outcome.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                Some((Outcome::Timeout, _)) => Some((504, "handler timed out")),
                Some((Outcome::Trap(_) | Outcome::Failed(_) | Outcome::ClientGone, _)) | None => {
                    Some((500, "handler failed"))
                }
                Some((Outcome::Exited(_), _)) => None,
            };
            if let Some((status, why)) = failure {
                finished(status, true);
                return text(status, format!("{why}\n"));
            }
            match cgi::find_head_end(&buf) {
                Some(end) => end,
                None => {
                    log!("error id={id} route={route_name}: the handler wrote no header block");
                    finished(500, true);
                    return text(500, "handler wrote no header block\n");
                }
            }
        }
        Held::Streaming(end) => end,
        Held::NoHead => {
            out.abandon();
            log!("error id={id} route={route_name}: no header block in the handler's first {MAX_HEAD_BYTES} bytes");
            tokio::spawn(record_when_done(out, 500, true, finished));
            return text(500, "handler wrote malformed headers\n");
        }
    };
    let parsed = if head_len > MAX_HEAD_BYTES {
        Err(format!("a header block of {head_len} bytes (at most {MAX_HEAD_BYTES})"))
    } else {
        cgi::parse_head(&buf[..head_len]).and_then(|head| Ok((response_headers(&head, id, &route_name)?, head)))
    };
    let (headers, head) = match parsed {
        Ok(h) => h,
        Err(e) => {
            out.abandon();
            log!("error id={id} route={route_name}: malformed handler output: {}", log_text(e.as_bytes()));
            if out.done.load(SeqCst) {
                finished(500, true);
            } else {
                tokio::spawn(record_when_done(out, 500, true, finished));
            }
            return text(500, "handler wrote malformed headers\n");
        }
    };
    let status_code = hyper::StatusCode::from_u16(head.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let status = status_code.as_u16();
    let body = if out.done.load(SeqCst) {
        // The guest has finished: the response is complete and goes out with a length.
        buf.drain(..body_start);
        buf.extend_from_slice(&out.take());
        finished(status, true);
        Body::Full(Some(Bytes::from(buf)))
    } else {
        let rest = Bytes::copy_from_slice(&buf[body_start..]);
        Body::Stream(Box::new(StreamBody {
            out: out.clone(),
            first: Some(rest),
            notified: None,
            tick: Box::pin(tokio::time::sleep(FLUSH_EVERY)),
            drain: None,
            drain_timeout: Duration::from_millis(limits.drain_timeout_ms),
            conn: conn.clone(),
            on_end: Some(Box::new(move |complete| {
                let out2 = out.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => {
                        rt.spawn(record_when_done(out2, status, complete, finished));
                    }
                    Err(_) => finished(status, complete),
                }
            })),
        }))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status_code;
    *resp.headers_mut() = headers;
    resp
}

/// The handler's headers as the response's, without those the host owns
/// (logged); a name or value HTTP cannot carry (a CR, a NUL, a control
/// character) is an error, so the response is a 500 rather than silently
/// missing a header.
fn response_headers(head: &cgi::CgiHead, id: u64, route: &str) -> Result<hyper::HeaderMap, String> {
    let mut map = hyper::HeaderMap::new();
    for (k, v) in &head.headers {
        if !cgi::handler_may_set(k) {
            log!("warn id={id} route={route}: dropped the handler's `{k}` header (the host owns the framing)");
            continue;
        }
        let name = hyper::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("header name `{k}`"))?;
        let value = hyper::header::HeaderValue::from_str(v).map_err(|_| format!("the value of header `{k}`"))?;
        map.try_append(name, value).map_err(|_| "too many headers".to_string())?;
    }
    Ok(map)
}

/// The connection's socket, with a bound on how long a write may wait for the
/// client: a client that stops reading gets its connection closed after the
/// route's `drain_timeout_ms` (a bare socket would wait forever, holding the
/// response in memory and a connection slot).
struct DrainIo {
    io: tokio::net::TcpStream,
    ctl: Arc<ConnCtl>,
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl DrainIo {
    fn check<T>(&mut self, r: Poll<std::io::Result<T>>, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        if r.is_ready() {
            self.stall = None;
            return r;
        }
        let ms = self.ctl.write_timeout_ms.load(Relaxed);
        let stall = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(ms))));
        if stall.as_mut().poll(cx).is_ready() {
            self.stall = None;
            self.ctl.stalled.store(true, Relaxed);
            return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading")));
        }
        Poll::Pending
    }
}

impl tokio::io::AsyncRead for DrainIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for DrainIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.check(r, cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.check(r, cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.check(r, cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Answers a connection over `max_connections` with a 503 and closes it.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\nconnection: close\r\n\r\ntoo many connections\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(BUSY).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

fn stamps(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths.iter().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
}

/// Descriptors kept for everything but client connections (modules, preopened
/// directories, files guests open, the log).
const RESERVED_FDS: u64 = 256;

/// How many connections the server may hold: `max_connections`, within the
/// process's descriptor limit. The soft limit is raised to the hard one first;
/// beyond what remains, accepting would fail with EMFILE (clients would hang
/// in the backlog) where a refusal gets them a 503.
fn connection_limit(max_connections: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
        limit = getrlimit(Resource::Nofile);
    }
    let Some(fds) = limit.current else { return max_connections };
    let room = fds.saturating_sub(RESERVED_FDS).max(16) as usize;
    if room < max_connections {
        log!("warn: max_connections {max_connections} is over what {fds} descriptors allow: {room}");
    }
    max_connections.min(room)
}

/// Time for a client to send a request head, and for writes before a route's
/// own `drain_timeout_ms` applies.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server (see [`start`]).
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish, and waits.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        crate::log::flush();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Loads the routes, binds `listen` and serves on a thread of its own until
/// [`Running::stop`]. Errors (bad config, module, address) come back here.
pub fn start(source: Source, listen: &str) -> Result<Running, String> {
    start_with(source, listen, Overrides::default())
}

/// [`start`], with command-line settings over the configuration's.
/// Where `carnac serve` listens when neither `--listen` nor the configuration says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

pub fn start_with(source: Source, listen: &str, overrides: Overrides) -> Result<Running, String> {
    let config = source.load(&overrides)?;
    let table = RouteTable::build(&config)?;
    let listener = std::net::TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let state = Arc::new(State {
        guests: GuestPool::start(config.workers.unwrap_or(cores), config.spare_workers)?,
        source,
        overrides,
        routes: RwLock::new(Arc::new(table)),
        metrics: Metrics::default(),
        next_id: AtomicU64::new(1),
        buffered: Arc::new(Budget { used: AtomicU64::new(0), cap: config.max_buffered_mb.saturating_mul(1 << 20) }),
    });
    let connections = Arc::new(Semaphore::new(connection_limit(config.max_connections).min(Semaphore::MAX_PERMITS)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(512)
        .build()
        .map_err(|e| e.to_string())?;
    let thread = std::thread::Builder::new()
        .name("carnac-serve".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let watched = Mutex::new((state.source.watched(&config), Vec::new()));
                {
                    let mut w = watched.lock().unwrap();
                    w.1 = stamps(&w.0);
                }
                let reload_state = state.clone();
                let reloader = tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        let changed = {
                            let mut w = watched.lock().unwrap();
                            let now = stamps(&w.0);
                            let changed = now != w.1;
                            w.1 = now;
                            changed
                        };
                        if !changed {
                            continue;
                        }
                        let st = reload_state.clone();
                        let result = tokio::task::spawn_blocking(move || {
                            let config = st.source.load(&st.overrides)?;
                            RouteTable::build(&config).map(|t| (t, config))
                        })
                        .await
                        .unwrap_or_else(|_| Err("reload panicked".into()));
                        match result {
                            Ok((table, config)) => {
                                *reload_state.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
                                let mut w = watched.lock().unwrap();
                                w.0 = reload_state.source.watched(&config);
                                w.1 = stamps(&w.0);
                                log!("reloaded: {} route(s)", config.routes.len());
                            }
                            Err(e) => log!("reload failed, still serving the previous version: {e}"),
                        }
                    }
                });
                let graceful = hyper_util::server::graceful::GracefulShutdown::new();
                let mut stop_rx = stop_rx;
                let mut accept_errors = 0u32;
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let (stream, remote) = match accepted {
                                Ok(a) => a,
                                Err(e) => {
                                    // Out of descriptors (EMFILE) or similar: back off
                                    // instead of spinning on a listener that stays ready.
                                    if accept_errors == 0 {
                                        log!("error: accept failed: {e} (backing off)");
                                    }
                                    accept_errors = (accept_errors + 1) % 200;
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                    continue;
                                }
                            };
                            let _ = stream.set_nodelay(true);
                            let Ok(slot) = connections.clone().try_acquire_owned() else {
                                state.metrics.refused_connections.fetch_add(1, Relaxed);
                                tokio::spawn(refuse_connection(stream));
                                continue;
                            };
                            let st = state.clone();
                            let ctl = Arc::new(ConnCtl {
                                write_timeout_ms: AtomicU64::new(HEAD_TIMEOUT.as_millis() as u64),
                                stalled: AtomicBool::new(false),
                            });
                            let io = DrainIo { io: stream, ctl: ctl.clone(), stall: None };
                            let (st2, ctl2) = (state.clone(), ctl.clone());
                            let svc = hyper::service::service_fn(move |req| {
                                let (st, ctl) = (st.clone(), ctl.clone());
                                async move { Ok::<_, Infallible>(handle(st, req, remote, addr, ctl).await) }
                            });
                            // A client gets HEAD_TIMEOUT to send its request head (no slowloris).
                            let conn = hyper::server::conn::http1::Builder::new()
                                .timer(hyper_util::rt::TokioTimer::new())
                                .header_read_timeout(HEAD_TIMEOUT)
                                .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
                            let fut = graceful.watch(conn);
                            tokio::spawn(async move {
                                let _ = fut.await;
                                if ctl2.stalled.load(Relaxed) {
                                    st2.metrics.client_stalls.fetch_add(1, Relaxed);
                                }
                                drop(slot);
                            });
                        }
                        _ = &mut stop_rx => break,
                    }
                }
                reloader.abort();
                drop(listener);
                // Requests in flight finish (bounded by their own timeouts).
                let _ = tokio::time::timeout(Duration::from_secs(60), graceful.shutdown()).await;
                state.guests.stop();
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(Running { addr, stop: Some(stop_tx), thread: Some(thread) })
}

/// Serves until SIGINT or SIGTERM, then drains requests in flight.
/// `listen`: the address to listen on; `None` takes the configuration's
/// `listen`, else [`DEFAULT_LISTEN`].
pub fn serve_until_signal(source: Source, listen: Option<&str>, overrides: Overrides) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = match listen {
        Some(l) => l.to_string(),
        None => source.load(&overrides)?.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
    };
    let running = start_with(source, &listen, overrides)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    // The handlers are in place before the address is announced: a signal sent as
    // soon as a supervisor (or a test) reads it must drain, not kill, the server.
    let (mut int, mut term) = rt.block_on(async { (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) });
    let (int, term) = (
        int.as_mut().map_err(|e| format!("installing the SIGINT handler: {e}"))?,
        term.as_mut().map_err(|e| format!("installing the SIGTERM handler: {e}"))?,
    );
    eprintln!("listening on http://{}", running.addr);
    rt.block_on(async {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    });
    log!("shutting down: draining requests in flight");
    running.stop();
    crate::log::flush();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_log_lines_cannot_forge_lines_or_drive_terminals() {
        assert_eq!(log_text(b"plain\ttext"), "plain\ttext");
        assert_eq!(log_text(b"x\raccess id=1 status=200"), "x\\raccess id=1 status=200");
        assert_eq!(log_text(b"\x1b[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(log_text(b"bad \xff utf-8"), "bad \u{fffd} utf-8");
    }

    #[test]
    fn the_pool_takes_the_route_with_the_fewest_running_first() {
        let mut q = PoolQueue { routes: HashMap::new(), queued: 0, idle: 0, threads: 0, stop: false };
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("/a"), Arc::from("/b"));
        for r in [&a, &a, &a, &b] {
            q.routes.entry(r.clone()).or_default().jobs.push_back(Job {
                route: r.clone(),
                queued_at: Instant::now(),
                run: Box::new(|| {}),
            });
            q.queued += 1;
        }
        let order: Vec<Arc<str>> = std::iter::from_fn(|| q.pick().map(|j| j.route)).collect();
        // /a's first job is oldest; then /b has none running; then /a's rest.
        assert_eq!(order, [a.clone(), b.clone(), a.clone(), a.clone()]);
        assert_eq!(q.queued, 0);
        q.finished(&a);
        assert_eq!(q.routes[&a].running, 2);
    }
}
