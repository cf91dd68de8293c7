//! Builds the guest programs in `tests/guests` for `wasm32-wasip1` once per test
//! run (installing the target with rustup when it is missing) and returns the
//! path of a built module; the threaded ones in `tests/threads-guests` for
//! `wasm32-wasip1-threads`, and natively to compare their output. Shared by the
//! WASI and CLI tests.

// Each test binary uses some of these.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

const TARGET: &str = "wasm32-wasip1";
const THREADS_TARGET: &str = "wasm32-wasip1-threads";

fn ensure_target() {
    ensure(TARGET)
}

fn ensure(target: &str) {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    if let Ok(out) = &installed {
        if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == target) {
            return;
        }
    }
    eprintln!("installing the {target} target with rustup (needed to build the WASI guest programs)");
    let status = Command::new("rustup").args(["target", "add", target]).status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "the {target} Rust target is missing and `rustup target add {target}` failed ({other:?}); \
             install it to build the WASI guest programs"
        ),
    }
}

/// Builds the threaded guests crate for `target` (`None`: the host) and returns
/// the directory of its binaries.
fn build_threads_guests(target: Option<&str>) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../carnac-wasi/tests/threads-guests/Cargo.toml");
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("threads-guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--quiet", "--manifest-path"]).arg(&manifest).arg("--target-dir").arg(&target_dir);
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    let status = cmd.env_remove("RUSTFLAGS").status().expect("run cargo to build the threaded guest programs");
    assert!(status.success(), "building the threaded guest programs failed");
    match target {
        Some(t) => target_dir.join(t).join("release"),
        None => target_dir.join("release"),
    }
}

/// The path of threaded guest program `name`, built for `wasm32-wasip1-threads`.
pub fn threads_guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            ensure(THREADS_TARGET);
            build_threads_guests(Some(THREADS_TARGET))
        })
        .join(format!("{name}.wasm"))
}

/// The path of threaded guest program `name` built for the host, whose output
/// the wasm build's must equal.
pub fn native_threads_guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_threads_guests(None)).join(name)
}

/// The path of guest program `name` (a binary of the guests crate).
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        ensure_target();
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../carnac-wasi/tests/guests/Cargo.toml");
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasi-guests");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "--quiet", "--target", TARGET, "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target_dir)
            .env_remove("RUSTFLAGS")
            .status()
            .expect("run cargo to build the guest programs");
        assert!(status.success(), "building the WASI guest programs failed");
        target_dir.join(TARGET).join("release")
    });
    dir.join(format!("{name}.wasm"))
}

/// A guest's module, compiled by `compile` once per test binary for each
/// `program`, `tier` and `fuel` (tests running at once wait for one compilation).
pub fn cached_module(
    program: &str,
    tier: carnac::Strategy,
    fuel: bool,
    compile: impl FnOnce() -> carnac::Module,
) -> carnac::Module {
    type Cache = Mutex<HashMap<(String, carnac::Strategy, bool), Arc<OnceLock<carnac::Module>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cell =
        CACHE.get_or_init(Default::default).lock().unwrap().entry((program.into(), tier, fuel)).or_default().clone();
    cell.get_or_init(compile).clone()
}

/// A guest's standard stream, captured in memory.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// What was written, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
