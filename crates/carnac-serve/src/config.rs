//! `carnac.toml`: routes to modules, per-route environment, read-only
//! directories and limits. Relative paths are relative to the file's folder.
//!
//! ```toml
//! listen = "127.0.0.1:8080"          # optional; --listen overrides
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
//! timeout_ms = 2000
//! memory_mb = 64
//! fuel = 100000000
//! max_body_bytes = 1048576
//! max_response_bytes = 16777216
//! concurrency = 16
//! queue = 64
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    pub listen: Option<String>,
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
    /// Cap on each linear memory.
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
    /// Requests waiting for a slot before new ones get 503.
    #[serde(default = "Limits::default_queue")]
    pub queue: usize,
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
        }
    }
}

impl ServeConfig {
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
            listen: None,
            routes: vec![RouteConfig {
                path: "/...".into(),
                module,
                env: BTreeMap::new(),
                dirs: Vec::new(),
                limits: Limits::default(),
            }],
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.routes.is_empty() {
            return Err("the configuration has no [[route]]".into());
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
