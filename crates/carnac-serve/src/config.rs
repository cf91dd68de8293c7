//! `carnac.toml`: routes to modules, per-route environment, read-only
//! directories and limits. Relative paths are relative to the file's folder.
//!
//! ```toml
//! listen = "127.0.0.1:8080"          # optional; --listen overrides
//! workers = 2                         # guest threads (default: one per core)
//! spare_workers = 16                  # extra threads so every route can start a guest
//! max_connections = 1024              # open connections; more are answered 503
//! max_buffered_mb = 512               # request bodies + unsent output held in memory
//! tier = "auto"                       # "auto" (default), "interp" or "cranelift"; -C tier= overrides
//!
//! [[route]]
//! path = "/hello"                     # exact match
//! module = "hello.wasm"
//!
//! [[route]]
//! path = "/api/..."                   # prefix match; the longest match wins
//! module = "api.wasm"
//! env = { GREETING = "hi" }
//! dirs = [{ host = "static", guest = "/static" }]   # always read-only
//! init = "wizer.initialize"          # run once at load; requests start from the state it leaves
//! timeout_ms = 2000
//! memory_mb = 64
//! fuel = 100000000
//! max_body_bytes = 1048576
//! max_response_bytes = 16777216
//! concurrency = 16
//! queue = 64
//! body_timeout_ms = 30000             # the whole request body must arrive in this time
//! stream_after_ms = 200               # hold the response this long before streaming
//! drain_timeout_ms = 30000            # a response must reach the client in this time
//! ```
//!
//! The server-wide settings (`workers`, `spare_workers`, `max_connections`,
//! `max_buffered_mb`) are read when the server starts; routes and their limits
//! are reloaded when the file changes, and so is `tier`: the tier that runs
//! every route's handlers (`interp`, the interpreter, starts a module at once;
//! `cranelift` compiles it to native code when it is loaded, which takes longer
//! and then runs compute several times faster). Requests and their limits
//! behave the same under both.
//!
//! `init` pre-initialises a route: its handler's start-up (loading a standard
//! library, parsing configuration, building tables) runs once, when the route
//! loads, instead of in every request. The export runs with the route's `env`
//! and `dirs` and its limits (`timeout_ms`, `memory_mb`, `fuel`), without
//! request variables or stdin; its output goes to the server's log. Each
//! request then gets a fresh instance of the state it left: memories mapped
//! copy-on-write from one image, so instantiating costs microseconds however
//! large the state, and no request sees another's writes. (A module written by
//! `carnac snapshot` does the same from a file, without the run at load.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use carnac::Strategy;
use serde::{Deserialize, Deserializer};

/// `tier = "interp" | "cranelift" | "auto"`, spelled as `-C tier=`.
fn tier<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Strategy>, D::Error> {
    let name = String::deserialize(d)?;
    name.parse().map(Some).map_err(serde::de::Error::custom)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    pub listen: Option<String>,
    /// Guest threads always running (default: one per core).
    #[serde(default)]
    pub workers: Option<usize>,
    /// Threads started beyond `workers` when a route has a request waiting and
    /// none running while every worker is busy with other routes (fairness).
    #[serde(default = "ServeConfig::default_spare_workers")]
    pub spare_workers: usize,
    /// Connections open at once; one more is answered 503 and closed.
    #[serde(default = "ServeConfig::default_max_connections")]
    pub max_connections: usize,
    /// Memory for request bodies and responses not yet sent, server-wide (MiB);
    /// a request body beyond it is refused with 503, output beyond it is cut.
    #[serde(default = "ServeConfig::default_max_buffered_mb")]
    pub max_buffered_mb: u64,
    /// The tier that runs the handlers: `"auto"` (the default: each module
    /// compiled, or loaded from the code cache, when it loads, off the request
    /// path; the interpreter in a build without the compiled tier), `"interp"`
    /// or `"cranelift"` (compiled at load, no cache). `carnac serve -C tier=`
    /// overrides it.
    #[serde(default, deserialize_with = "tier")]
    pub tier: Option<Strategy>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirConfig {
    pub host: PathBuf,
    pub guest: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub path: String,
    pub module: PathBuf,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub dirs: Vec<DirConfig>,
    /// An export that initialises the module: run once when the route loads
    /// (with the route's `env` and `dirs`, no request), after which every
    /// request starts from the state it left (a snapshot, mapped
    /// copy-on-write), not from the module's initial state.
    #[serde(default)]
    pub init: Option<String>,
    #[serde(flatten)]
    pub limits: Limits,
}

/// Per-route limits; every request of the route runs under them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time for one request (the guest is interrupted; 504).
    #[serde(default = "Limits::default_timeout_ms")]
    pub timeout_ms: u64,
    /// Memory for each request's store: its linear memories and tables together (MiB).
    #[serde(default = "Limits::default_memory_mb")]
    pub memory_mb: u64,
    /// Fuel per request (instructions); none by default.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Largest request body accepted (413 beyond).
    #[serde(default = "Limits::default_max_body")]
    pub max_body_bytes: u64,
    /// Largest response body sent; the rest is cut and logged.
    #[serde(default = "Limits::default_max_response")]
    pub max_response_bytes: u64,
    /// Requests running at once for this route.
    #[serde(default = "Limits::default_concurrency")]
    pub concurrency: usize,
    /// Requests waiting for a slot (or sending their body) before new ones get 503.
    #[serde(default = "Limits::default_queue")]
    pub queue: usize,
    /// Time for the whole request body to arrive (408 beyond).
    #[serde(default = "Limits::default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// The response waits this long for the handler to finish before it starts
    /// streaming: a handler that fails before then gets a 500/504 instead of
    /// the status it printed. A failure while streaming aborts the connection.
    #[serde(default = "Limits::default_stream_after_ms")]
    pub stream_after_ms: u64,
    /// Time for a response to reach a client once the handler has finished (or
    /// for any write to the client to make progress); then the connection is closed.
    #[serde(default = "Limits::default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
}

impl Limits {
    fn default_timeout_ms() -> u64 {
        10_000
    }
    fn default_memory_mb() -> u64 {
        128
    }
    fn default_max_body() -> u64 {
        16 << 20
    }
    fn default_max_response() -> u64 {
        64 << 20
    }
    fn default_concurrency() -> usize {
        64
    }
    fn default_queue() -> usize {
        256
    }
    fn default_body_timeout_ms() -> u64 {
        30_000
    }
    fn default_stream_after_ms() -> u64 {
        200
    }
    fn default_drain_timeout_ms() -> u64 {
        30_000
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: Self::default_timeout_ms(),
            memory_mb: Self::default_memory_mb(),
            fuel: None,
            max_body_bytes: Self::default_max_body(),
            max_response_bytes: Self::default_max_response(),
            concurrency: Self::default_concurrency(),
            queue: Self::default_queue(),
            body_timeout_ms: Self::default_body_timeout_ms(),
            stream_after_ms: Self::default_stream_after_ms(),
            drain_timeout_ms: Self::default_drain_timeout_ms(),
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: None,
            workers: None,
            spare_workers: Self::default_spare_workers(),
            max_connections: Self::default_max_connections(),
            max_buffered_mb: Self::default_max_buffered_mb(),
            tier: None,
            routes: Vec::new(),
        }
    }
}

impl ServeConfig {
    fn default_spare_workers() -> usize {
        16
    }
    fn default_max_connections() -> usize {
        1024
    }
    fn default_max_buffered_mb() -> u64 {
        512
    }

    /// Reads a config file; relative module and directory paths are made
    /// relative to the file's folder.
    pub fn from_file(path: &Path) -> Result<ServeConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut config: ServeConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for r in &mut config.routes {
            if r.module.is_relative() {
                r.module = base.join(&r.module);
            }
            for d in &mut r.dirs {
                if d.host.is_relative() {
                    d.host = base.join(&d.host);
                }
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Quick mode: one module on every path.
    pub fn single(module: PathBuf) -> ServeConfig {
        ServeConfig {
            routes: vec![RouteConfig {
                path: "/...".into(),
                module,
                env: BTreeMap::new(),
                dirs: Vec::new(),
                init: None,
                limits: Limits::default(),
            }],
            ..ServeConfig::default()
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.routes.is_empty() {
            return Err("the configuration has no [[route]]".into());
        }
        if self.workers == Some(0) {
            return Err("workers must be at least 1".into());
        }
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        for r in &self.routes {
            if !r.path.starts_with('/') {
                return Err(format!("route path `{}` must start with `/`", r.path));
            }
            if r.limits.concurrency == 0 {
                return Err(format!("route `{}`: concurrency must be at least 1", r.path));
            }
        }
        Ok(())
    }
}
