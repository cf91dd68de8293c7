//! The shim's runwasi side: [`CarnacShim`] names the runtime, and
//! [`CarnacSandbox`] decides, inside the container, what the entrypoint asks
//! for (a WASI program, or the function host) and runs it on a plain thread.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use containerd_shim_wasm::sandbox::context::{RuntimeContext, Source};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::shim::{Shim, Version};

use crate::guest;

/// The shim: `containerd-shim-carnac-v1`, runtime type `io.containerd.carnac.v1`.
pub struct CarnacShim;

/// Runs one container's module (created by runwasi inside the container's
/// process, after youki has entered its namespaces, cgroup and root filesystem).
#[derive(Default)]
pub struct CarnacSandbox;

impl Shim for CarnacShim {
    type Sandbox = CarnacSandbox;

    fn name() -> &'static str {
        "carnac"
    }

    fn version() -> Version {
        Version { version: env!("CARGO_PKG_VERSION"), revision: "<none>" }
    }
}

impl Sandbox for CarnacSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> Result<i32> {
        let launch = match Launch::from_context(ctx) {
            Ok(launch) => launch,
            Err(e) => {
                // In the container's log (runwasi would only log it in the shim's).
                eprintln!("Error: {e:#}");
                return Ok(guest::LOAD_FAILED_EXIT);
            }
        };
        // A thread of its own, outside runwasi's async runtime: the function host
        // builds its own tokio runtimes, which cannot start inside another's.
        // Its stack is a main thread's (as under `carnac run`): compiled code runs
        // on it, up to Carnac's wasm stack limit, and traps there with room to spare.
        let guest = std::thread::Builder::new()
            .name("carnac-guest".into())
            .stack_size(GUEST_THREAD_STACK)
            .spawn(move || launch.run())?;
        guest.join().map_err(|_| anyhow::anyhow!("the guest thread panicked"))
    }

    async fn can_handle(&self, ctx: &impl RuntimeContext) -> Result<()> {
        if let Source::Oci([layer]) = ctx.entrypoint().source {
            // Without copying the layer: wasm, or a `.cwasm`.
            if layer.layer.starts_with(b"\0asm") || carnac::Module::is_artifact(&layer.layer) {
                return Ok(());
            }
            bail!("the image's Wasm layer is neither a core module nor a Carnac .cwasm");
        }
        Launch::from_context(ctx).map(drop)
    }
}

/// The guest thread's stack: 8 MiB, Linux's default for a main thread.
const GUEST_THREAD_STACK: usize = 8 << 20;

/// Settings the node gives every container (the shim's environment, which is
/// containerd's): read in `main` before any container is forked.
#[derive(Debug, Default, Clone)]
pub struct NodeDefaults {
    /// `CARNAC_TIER` in containerd's environment.
    pub tier: Option<String>,
}

static NODE: OnceLock<NodeDefaults> = OnceLock::new();

/// Captures [`NodeDefaults`] from this process's environment.
pub fn capture_node_defaults() {
    let _ = NODE.set(NodeDefaults { tier: std::env::var("CARNAC_TIER").ok().filter(|t| !t.is_empty()) });
}

/// Where the module comes from.
#[derive(Debug)]
pub enum Module {
    /// A file in the container's root filesystem.
    File(PathBuf),
    /// The module layer of a Wasm OCI artifact (runwasi's layout): wasm, or a
    /// `.cwasm` compiled by the same Carnac build.
    Bytes(Vec<u8>),
}

/// What the container runs.
#[derive(Debug)]
pub enum Launch {
    /// A WASI program: `func` (`_start` unless the entrypoint says `path#func`).
    Run(guest::Program),
    /// The function host, on the pod's network.
    Serve(guest::Host),
}

impl Launch {
    /// Reads the container's spec as runwasi presents it: the entrypoint
    /// (`args[0]`, `/app.wasm` or `/app.wasm#func`, or a `carnac.toml`), the
    /// other args, and the environment.
    pub fn from_context(ctx: &impl RuntimeContext) -> Result<Launch> {
        let env: Vec<String> = ctx.envs().to_vec();
        let entry = ctx.entrypoint();
        let var = |name: &str| env_var(&env, name);
        let tier = var("CARNAC_TIER").or_else(|| NODE.get().and_then(|n| n.tier.clone()));
        let tier = tier.map(|t| t.parse::<carnac::Strategy>().map_err(anyhow::Error::msg)).transpose()?;
        let serve_flag = var("CARNAC_SERVE").is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false" | "no"));
        let listen = var("CARNAC_LISTEN");
        let path_var = var("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".to_string());
        let arg0 = entry.arg0.map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let program_path = arg0.split_once('#').map_or(arg0.as_str(), |(p, _)| p).to_string();
        let module = match entry.source {
            Source::Oci(_) => Module::Bytes(entry.source.as_bytes()?.into_owned()),
            Source::File(path) if path.as_os_str().is_empty() => {
                bail!("the container has no entrypoint: give it a .wasm module (or a carnac.toml to serve)")
            }
            Source::File(path) => Module::File(resolve(&path, &path_var)?),
        };
        match module {
            Module::File(path) if path.extension().is_some_and(|e| e == "toml") => {
                Ok(Launch::Serve(guest::Host { source: carnac_serve::Source::ConfigFile(path), listen, tier }))
            }
            Module::File(path) => {
                check_module_file(&path)?;
                if serve_flag {
                    return Ok(Launch::Serve(guest::Host { source: carnac_serve::Source::Module(path), listen, tier }));
                }
                Ok(Launch::Run(guest::Program {
                    module: Module::File(path),
                    func: entry.func,
                    argv: argv(&program_path, ctx.args()),
                    env,
                    tier,
                }))
            }
            Module::Bytes(bytes) => {
                if serve_flag {
                    bail!(
                        "CARNAC_SERVE needs the module as a file in the image (a Wasm OCI artifact has no file system)"
                    );
                }
                Ok(Launch::Run(guest::Program {
                    module: Module::Bytes(bytes),
                    func: entry.func,
                    argv: argv(&program_path, ctx.args()),
                    env,
                    tier,
                }))
            }
        }
    }

    /// Runs the program or the host to its end: the container's exit status.
    pub fn run(self) -> i32 {
        match self {
            Launch::Run(program) => program.run(),
            Launch::Serve(host) => host.run(),
        }
    }
}

/// The guest's argv: the entrypoint's path (without `#func`), then the
/// container's other arguments.
fn argv(program: &str, args: &[String]) -> Vec<String> {
    std::iter::once(program.to_string()).chain(args.iter().skip(1).cloned()).collect()
}

/// The value of `name` in `NAME=value` entries (the last one wins, as in execve).
fn env_var(env: &[String], name: &str) -> Option<String> {
    env.iter().rev().find_map(|e| e.strip_prefix(name)?.strip_prefix('=').map(str::to_string))
}

/// The entrypoint's file: a path with a `/` as it is (relative to the
/// container's working directory), a bare name searched in the container's `PATH`.
fn resolve(path: &Path, path_var: &str) -> Result<PathBuf> {
    if path.components().count() > 1 || path.is_absolute() {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            bail!("{}: no such file in the image", path.display())
        };
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(path))
        .chain(std::iter::once(path.to_path_buf()))
        .find(|p| p.is_file())
        .with_context(|| format!("{}: not found in the image's PATH ({path_var}) or working directory", path.display()))
}

/// The entrypoint must be a module Carnac loads: wasm binary, a compiled
/// `.cwasm`, or the text format.
fn check_module_file(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut head = [0u8; 8];
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let n = file.read(&mut head)?;
    let head = &head[..n];
    if head.starts_with(b"\0asm") || carnac::Module::is_artifact(head) {
        return Ok(());
    }
    if path.extension().is_some_and(|e| e == "wat") {
        return Ok(());
    }
    bail!("{}: not a WebAssembly module (no wasm header, not .wat, not a .cwasm)", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lookup_takes_the_last_definition_and_exact_names() {
        let env = ["A=1".to_string(), "AB=2".to_string(), "A=3".to_string(), "EMPTY=".to_string()];
        assert_eq!(env_var(&env, "A").as_deref(), Some("3"));
        assert_eq!(env_var(&env, "AB").as_deref(), Some("2"));
        assert_eq!(env_var(&env, "EMPTY").as_deref(), Some(""));
        assert_eq!(env_var(&env, "B"), None);
    }

    #[test]
    fn argv_is_the_path_then_the_other_args() {
        let args = ["/app.wasm#main".to_string(), "x".to_string(), "-y".to_string()];
        assert_eq!(argv("/app.wasm", &args), ["/app.wasm", "x", "-y"]);
    }

    #[test]
    fn bare_names_are_searched_in_path() {
        let dir = std::env::temp_dir().join(format!("carnac-shim-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tool.wasm"), b"\0asm\x01\0\0\0").unwrap();
        let path_var = format!("/nonexistent:{}", dir.display());
        assert_eq!(resolve(Path::new("tool.wasm"), &path_var).unwrap(), dir.join("tool.wasm"));
        assert!(resolve(Path::new("missing.wasm"), &path_var).is_err());
        check_module_file(&dir.join("tool.wasm")).unwrap();
        std::fs::write(dir.join("script.sh"), b"#!/bin/sh\n").unwrap();
        assert!(check_module_file(&dir.join("script.sh")).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
