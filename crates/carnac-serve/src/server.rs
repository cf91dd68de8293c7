//! The HTTP side: accept connections (tokio + hyper), route each request, run a
//! fresh instance of the route's module on a blocking worker thread (never on
//! the async reactor) under the route's limits, and stream what the guest
//! writes back as the response.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use carnac::{Config, Engine, Error, InstancePre, InterruptHandle, Linker, Module, Store, StoreLimits, TrapKind};
use carnac_wasi::{I32Exit, Stream, WasiCtx};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::sync::{mpsc, oneshot, Semaphore};

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
    fn load(&self) -> Result<ServeConfig, String> {
        match self {
            Source::ConfigFile(p) => ServeConfig::from_file(p),
            Source::Module(m) => Ok(ServeConfig::single(m.clone())),
        }
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

struct Route {
    cfg: RouteConfig,
    /// For prefix routes, the prefix (`/api` for `/api/...`); `None` for exact routes.
    prefix: Option<String>,
    engine: Engine,
    pre: InstancePre<WasiCtx>,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    fn build(config: &ServeConfig) -> Result<RouteTable, String> {
        let mut engines: HashMap<bool, Engine> = HashMap::new();
        let mut modules: HashMap<(PathBuf, bool), Module> = HashMap::new();
        let mut routes = Vec::new();
        for cfg in &config.routes {
            let fuel = cfg.limits.fuel.is_some();
            let engine = engines
                .entry(fuel)
                .or_insert_with(|| {
                    let mut c = Config::new();
                    c.interruptible(true).consume_fuel(fuel);
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
            let mut linker: Linker<WasiCtx> = Linker::new(&engine);
            carnac_wasi::add_to_linker(&mut linker, |c| c).map_err(|e| e.to_string())?;
            let pre = linker.instantiate_pre(&module).map_err(|e| format!("route {}: {e}", cfg.path))?;
            for d in &cfg.dirs {
                if !d.host.is_dir() {
                    return Err(format!("route {}: {} is not a directory", cfg.path, d.host.display()));
                }
            }
            routes.push(Arc::new(Route {
                prefix: cfg.path.strip_suffix("/...").map(str::to_string),
                slots: Arc::new(Semaphore::new(cfg.limits.concurrency)),
                waiting: AtomicUsize::new(0),
                cfg: cfg.clone(),
                engine,
                pre,
            }));
        }
        Ok(RouteTable { routes })
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
                let hit = path == p || path.starts_with(&format!("{p}/")) || p.is_empty();
                hit.then(|| (r.clone(), p.to_string()))
            })
            .max_by_key(|(_, p)| p.len())
    }
}

struct State {
    /// Guests running at once across all routes: one per core. More would only
    /// time-slice the same cores (and pay for the switches); requests beyond it
    /// wait here, asynchronously, within their route's concurrency and queue.
    cpus: Arc<Semaphore>,
    source: Source,
    routes: RwLock<Arc<RouteTable>>,
    metrics: Metrics,
    next_id: AtomicU64,
}

/// The response body: a whole buffer, or the guest's output as it is written.
pub enum Body {
    Full(Option<Bytes>),
    Stream { first: Option<Bytes>, rx: mpsc::Receiver<Bytes> },
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream { first, rx } => {
                if let Some(b) = first.take().filter(|b| !b.is_empty()) {
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(Frame::data(coalesce(b, rx))))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

/// Joins the chunks already waiting behind `first` (up to 64 KiB), so that a
/// guest's many small writes leave in few socket writes.
fn coalesce(first: Bytes, rx: &mut mpsc::Receiver<Bytes>) -> Bytes {
    let mut buf: Option<Vec<u8>> = None;
    while buf.as_ref().map_or(first.len(), Vec::len) < 64 << 10 {
        let Ok(next) = rx.try_recv() else { break };
        buf.get_or_insert_with(|| first.to_vec()).extend_from_slice(&next);
    }
    buf.map_or(first, Bytes::from)
}

fn text(status: u16, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Body::Full(Some(Bytes::from(body.into()))));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// The guest's stdout: chunks go to the response as they are written, up to a cap.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    written: Arc<AtomicU64>,
    cap: u64,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let total = self.written.load(Relaxed) + buf.len() as u64;
        if total > self.cap {
            return Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, "response size limit reached"));
        }
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?;
        self.written.store(total, Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The guest's stderr: each line goes to the log, tagged with the request id.
struct LogWriter {
    id: u64,
    line: Vec<u8>,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            if b == b'\n' {
                eprintln!("guest id={} {}", self.id, String::from_utf8_lossy(&self.line));
                self.line.clear();
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
            eprintln!("guest id={} {}", self.id, String::from_utf8_lossy(&self.line));
        }
    }
}

/// How a guest run ended.
#[derive(Debug)]
enum Outcome {
    Exited(i32),
    Timeout,
    Trap(String),
    Failed(String),
}

impl Outcome {
    fn label(&self) -> String {
        match self {
            Outcome::Exited(0) => "ok".into(),
            Outcome::Exited(c) => format!("exit:{c}"),
            Outcome::Timeout => "timeout".into(),
            Outcome::Trap(_) => "trap".into(),
            Outcome::Failed(_) => "error".into(),
        }
    }
}

fn run_guest(route: &Route, ctx: WasiCtx, handle_tx: oneshot::Sender<InterruptHandle>, metrics: &Metrics) -> (Outcome, Duration) {
    let mut store = Store::new(&route.engine, ctx);
    let _ = handle_tx.send(store.interrupt_handle());
    store.limiter(StoreLimits::new().memory_size((route.cfg.limits.memory_mb as usize) << 20));
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
    drop(store); // closes stdout: the response ends here
    (outcome, instantiate)
}

async fn handle(state: Arc<State>, req: Request<Incoming>, remote: SocketAddr, local: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let id = state.next_id.fetch_add(1, Relaxed);
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().to_string();
    match path.as_str() {
        "/health" => return text(200, "ok\n"),
        "/metrics" => return text(200, state.metrics.render()),
        _ => {}
    }
    let log = |route: &str, status: u16, bytes: u64, inst: Option<Duration>, outcome: &str| {
        eprintln!(
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
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return reject(413, "request body too large", "body-too-large");
    }
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let protocol = format!("{:?}", req.version());
    let body = match http_body_util::Limited::new(req.into_body(), limits.max_body_bytes as usize).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return reject(413, "request body too large", "body-too-large"),
    };
    // Bounded queueing: at most `queue` requests wait for one of `concurrency` slots.
    if route.waiting.fetch_add(1, Relaxed) >= limits.queue {
        route.waiting.fetch_sub(1, Relaxed);
        return reject(503, "server busy", "busy");
    }
    let permit = route.slots.clone().acquire_owned().await;
    route.waiting.fetch_sub(1, Relaxed);
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
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let written = Arc::new(AtomicU64::new(0));
    let mut b = WasiCtx::builder();
    b.args(cgi::argv(&cgi_req));
    for (k, v) in cgi::environment(&cgi_req, &route.cfg.env) {
        b.env(&k, &v);
    }
    b.stdin(Stream::Reader(Box::new(std::io::Cursor::new(body))))
        .stdout(Stream::Writer(Box::new(ChannelWriter { tx, written: written.clone(), cap: limits.max_response_bytes })))
        .stderr(Stream::Writer(Box::new(LogWriter { id, line: Vec::new() })));
    for d in &route.cfg.dirs {
        if let Err(e) = b.preopened_dir_with(&d.host, &d.guest, true) {
            eprintln!("error id={id} route={route_name}: {e}");
            return reject(500, "handler misconfigured", "error");
        }
    }
    let ctx = b.build();
    let (htx, hrx) = oneshot::channel();
    let st = state.clone();
    let r = route.clone();
    // The deadline counts from here: waiting for a core is part of the request's time.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(limits.timeout_ms);
    let Ok(cpu) = state.cpus.clone().acquire_owned().await else {
        return reject(503, "server shutting down", "busy");
    };
    let job = tokio::task::spawn_blocking(move || {
        let _permits = (permit, cpu);
        run_guest(&r, ctx, htx, &st.metrics)
    });
    let timer = tokio::spawn(async move {
        if let Ok(h) = hrx.await {
            tokio::time::sleep_until(deadline).await;
            h.interrupt();
        }
    });

    // Read until the end of the guest's header block (or the end of its output).
    let mut buf: Vec<u8> = Vec::new();
    let head = loop {
        match rx.recv().await {
            Some(chunk) => {
                buf.extend_from_slice(&chunk);
                if let Some(end) = cgi::find_head_end(&buf) {
                    break Some(end);
                }
                if buf.len() > 64 << 10 {
                    break None;
                }
            }
            None => break None,
        }
    };
    let finish = |status: u16, job: tokio::task::JoinHandle<(Outcome, Duration)>, timer: tokio::task::JoinHandle<()>| {
        let state = state.clone();
        let route_name = route_name.clone();
        let written = written.clone();
        async move {
            let (outcome, inst) = job.await.unwrap_or((Outcome::Failed("worker panicked".into()), Duration::ZERO));
            timer.abort();
            match &outcome {
                Outcome::Timeout => {
                    state.metrics.timeouts.fetch_add(1, Relaxed);
                }
                Outcome::Trap(msg) | Outcome::Failed(msg) => {
                    state.metrics.traps.fetch_add(1, Relaxed);
                    eprintln!("error id={id} route={route_name}: {}", msg.replace('\n', " | "));
                }
                Outcome::Exited(_) => {}
            }
            (outcome, inst, written.load(Relaxed), state, route_name, status)
        }
    };
    let Some((head_len, body_start)) = head else {
        drop(rx);
        let (outcome, inst, bytes, state, route_name, _) = finish(0, job, timer).await;
        let status = match outcome {
            Outcome::Timeout => 504,
            _ => 500,
        };
        let why = match &outcome {
            Outcome::Timeout => "handler timed out".to_string(),
            Outcome::Trap(_) | Outcome::Failed(_) => "handler failed".to_string(),
            Outcome::Exited(_) => "handler wrote no header block".to_string(),
        };
        log(&route_name, status, bytes, Some(inst), &outcome.label());
        state.metrics.request(&route_name, status, started.elapsed());
        return text(status, format!("{why}\n"));
    };
    let parsed = cgi::parse_head(&buf[..head_len]);
    let head = match parsed {
        Ok(h) => h,
        Err(e) => {
            drop(rx);
            let (outcome, inst, bytes, state, route_name, _) = finish(0, job, timer).await;
            eprintln!("error id={id} route={route_name}: malformed handler output: {e}");
            log(&route_name, 500, bytes, Some(inst), &outcome.label());
            state.metrics.request(&route_name, 500, started.elapsed());
            return text(500, "handler wrote malformed headers\n");
        }
    };
    let status_code = hyper::StatusCode::from_u16(head.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let status = status_code.as_u16();
    // Whatever the guest has written already joins the first frame; if it has
    // finished, the response is complete and goes out with a Content-Length.
    let mut rest = buf[body_start..].to_vec();
    let mut finished = false;
    loop {
        match rx.try_recv() {
            Ok(chunk) if rest.len() < 1 << 20 => rest.extend_from_slice(&chunk),
            Ok(chunk) => {
                rest.extend_from_slice(&chunk);
                break;
            }
            Err(mpsc::error::TryRecvError::Empty) => break,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                finished = true;
                break;
            }
        }
    }
    let body =
        if finished { Body::Full(Some(Bytes::from(rest))) } else { Body::Stream { first: Some(Bytes::from(rest)), rx } };
    let mut resp = Response::new(body);
    *resp.status_mut() = status_code;
    for (k, v) in &head.headers {
        if let (Ok(name), Ok(value)) =
            (hyper::header::HeaderName::from_bytes(k.as_bytes()), hyper::header::HeaderValue::from_str(v))
        {
            resp.headers_mut().append(name, value);
        }
    }
    let done = finish(status, job, timer);
    let method2 = method.clone();
    let path2 = path.clone();
    tokio::spawn(async move {
        let (outcome, inst, bytes, state, route_name, status) = done.await;
        eprintln!(
            "access id={id} method={method2} path={path2} route={route_name} status={status} bytes={bytes} total_ms={:.3} instantiate_us={} outcome={}",
            started.elapsed().as_secs_f64() * 1e3,
            inst.as_micros(),
            outcome.label()
        );
        state.metrics.request(&route_name, status, started.elapsed());
    });
    resp
}

fn stamps(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths.iter().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
}

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
    let config = source.load()?;
    let table = RouteTable::build(&config)?;
    let listener = std::net::TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let state = Arc::new(State {
        cpus: Arc::new(Semaphore::new(cores)),
        source,
        routes: RwLock::new(Arc::new(table)),
        metrics: Metrics::default(),
        next_id: AtomicU64::new(1),
    });
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
                            let config = st.source.load()?;
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
                                eprintln!("reloaded: {} route(s)", config.routes.len());
                            }
                            Err(e) => eprintln!("reload failed, still serving the previous version: {e}"),
                        }
                    }
                });
                let graceful = hyper_util::server::graceful::GracefulShutdown::new();
                let mut stop_rx = stop_rx;
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((stream, remote)) = accepted else { continue };
                            let _ = stream.set_nodelay(true);
                            let st = state.clone();
                            let svc = hyper::service::service_fn(move |req| {
                                let st = st.clone();
                                async move { Ok::<_, Infallible>(handle(st, req, remote, addr).await) }
                            });
                            let conn = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                            let fut = graceful.watch(conn);
                            tokio::spawn(async move {
                                let _ = fut.await;
                            });
                        }
                        _ = &mut stop_rx => break,
                    }
                }
                reloader.abort();
                drop(listener);
                // Requests in flight finish (bounded by their own timeouts).
                let _ = tokio::time::timeout(Duration::from_secs(60), graceful.shutdown()).await;
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(Running { addr, stop: Some(stop_tx), thread: Some(thread) })
}

/// Serves until SIGINT or SIGTERM, then drains requests in flight.
pub fn serve_until_signal(source: Source, listen: &str) -> Result<(), String> {
    let running = start(source, listen)?;
    eprintln!("listening on http://{}", running.addr);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    });
    eprintln!("shutting down: draining requests in flight");
    running.stop();
    Ok(())
}
