//! Builds the guest programs in `tests/guests` for `wasm32-wasip1` once per test
//! run (installing the target with rustup when it is missing) and returns the
//! path of a built module. Shared by the WASI and CLI tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const TARGET: &str = "wasm32-wasip1";

fn ensure_target() {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    if let Ok(out) = &installed {
        if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == TARGET) {
            return;
        }
    }
    eprintln!("installing the {TARGET} target with rustup (needed to build the WASI guest programs)");
    let status = Command::new("rustup").args(["target", "add", TARGET]).status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "the {TARGET} Rust target is missing and `rustup target add {TARGET}` failed ({other:?}); \
             install it to build the WASI guest programs"
        ),
    }
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
