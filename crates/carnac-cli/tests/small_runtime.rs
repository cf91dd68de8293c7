//! The small runtime as a user sees it: `carnac` built with
//! `--no-default-features --features loader` (the interpreter and the
//! artifact loader, no Cranelift) interprets wasm, refuses to compile with a
//! one-line error, and runs the `.cwasm` artifacts the full build (this test's
//! own `carnac`) compiles, with the same output, traps and backtraces.
//!
//! The small binary is built here, by a nested `cargo build` into a target
//! directory of its own under this one's temporary directory (the outer
//! `cargo test` holds the lock of the usual one): about half a minute of CPU
//! the first time (the dependencies without Cranelift, unoptimised), seconds
//! after that.

// The full build compiles the artifacts; the small one needs the signal-based
// trap handling, which is written for these hosts.
#![cfg(all(feature = "cranelift", target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The small `carnac`, built once per test run.
fn small_carnac() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("small-cli");
        let out = Command::new(env!("CARGO"))
            .args(["build", "--offline", "-p", "carnac-cli", "--no-default-features", "--features", "loader"])
            .current_dir(WORKSPACE)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .expect("run cargo");
        assert!(out.status.success(), "building the small carnac failed:\n{}", text(&out.stderr));
        target.join("debug").join("carnac")
    })
}

/// A fresh directory under the test target's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("small-runtime-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(carnac: &Path, args: &[&str]) -> Output {
    Command::new(carnac)
        .args(args)
        .current_dir(WORKSPACE)
        // No code cache: what runs is what the arguments say.
        .env("CARNAC_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("small-runtime-no-cache"))
        .output()
        .expect("run carnac")
}

fn small(args: &[&str]) -> Output {
    run(small_carnac(), args)
}

fn full(args: &[&str]) -> Output {
    run(Path::new(env!("CARGO_BIN_EXE_carnac")), args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a one-line error and exit status 1, containing `expect`.
fn refused(out: &Output, expect: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("Error: ") && err.contains(expect), "{err}");
}

#[test]
fn the_small_build_has_no_cranelift() {
    let tree = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "carnac-cli",
            "--no-default-features",
            "--features",
            "loader",
            "-e",
            "normal",
        ])
        .current_dir(WORKSPACE)
        .output()
        .expect("run cargo tree");
    assert!(tree.status.success(), "{}", text(&tree.stderr));
    let tree = text(&tree.stdout);
    assert!(tree.contains("carnac v") && tree.contains("wasmparser v"), "{tree}");
    let cranelift: Vec<&str> = tree.lines().filter(|l| l.to_lowercase().contains("cranelift")).collect();
    assert!(cranelift.is_empty(), "{cranelift:?}");
}

#[test]
fn the_small_build_interprets_and_refuses_to_compile() {
    let out = small(&["run", "--invoke", "fib", "examples/fib.wat", "20"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "6765\n");
    // `auto` interprets everything.
    let out = small(&["run", "-C", "tier=auto", "--invoke", "fib", "examples/fib.wat", "20"]);
    assert_eq!(text(&out.stdout), "6765\n", "{}", text(&out.stderr));

    refused(&small(&["run", "-C", "tier=cranelift", "--invoke", "fib", "examples/fib.wat", "20"]), "no compiler");
    let dir = temp_dir("refuse");
    let cwasm = dir.join("fib.cwasm");
    refused(&small(&["compile", "examples/fib.wat", "-o", cwasm.to_str().unwrap()]), "no compiler");
    assert!(!cwasm.exists());
}

#[test]
fn the_small_build_runs_the_full_builds_artifacts() {
    let dir = temp_dir("artifacts");
    let cwasm = dir.join("fib.cwasm");
    let path = cwasm.to_str().unwrap();
    let out = full(&["compile", "examples/fib.wat", "-o", path]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let same = |args: &[&str]| {
        let (s, f) = (small(args), full(args));
        assert_eq!(
            (s.status.code(), text(&s.stdout), text(&s.stderr)),
            (f.status.code(), text(&f.stdout), text(&f.stderr)),
            "{args:?}"
        );
        s
    };
    let out = same(&["run", "--invoke", "fib", path, "25"]);
    assert_eq!(text(&out.stdout), "75025\n", "{}", text(&out.stderr));
    // A trap in compiled code: the signal handler, the unwinder and the backtrace.
    let out = same(&["run", "--invoke", "divide", path, "1", "0"]);
    assert_eq!(out.status.code(), Some(134));
    assert!(text(&out.stderr).contains("divide by zero"), "{}", text(&out.stderr));
    // Refused as the full build refuses it: compiled without fuel metering.
    let out = same(&["run", "--fuel", "100", "--invoke", "fib", path, "10"]);
    refused(&out, "without fuel metering");

    // A WASI program.
    let hello = dir.join("hello.cwasm");
    let out = full(&["compile", "examples/hello-handler.wat", "-o", hello.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = same(&["run", hello.to_str().unwrap()]);
    assert!(text(&out.stdout).ends_with("Hello from a fresh Carnac instance!\n"), "{}", text(&out.stderr));

    // Fuel metering in compiled code, and SIMD.
    let fuel = dir.join("fuel.cwasm");
    let out = full(&["compile", "-W", "fuel=1", "examples/fib.wat", "-o", fuel.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = same(&["run", "--fuel", "1000", "--invoke", "fib", fuel.to_str().unwrap(), "30"]);
    assert_eq!(out.status.code(), Some(134));
    assert!(text(&out.stderr).contains("fuel"), "{}", text(&out.stderr));
    let simd = dir.join("simd.cwasm");
    let out = full(&["compile", "examples/simd.wat", "-o", simd.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let arg = "0x0f0e0d0c0b0a09080706050403020100";
    let out = same(&["run", "--invoke", "reverse", simd.to_str().unwrap(), arg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        text(&full(&["run", "-C", "tier=interp", "--invoke", "reverse", "examples/simd.wat", arg]).stdout)
    );
}
