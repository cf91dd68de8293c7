//! `carnac compile` and `carnac run` of its `.cwasm`, and the code cache of
//! `carnac run -C tier=cranelift` as a user sees them: outputs, one-line
//! errors, exit statuses, and what lands in the cache directory (always a
//! temporary one here, through `CARNAC_CACHE_DIR`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory under the test target's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("compile-cache-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn carnac(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carnac"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env("CARNAC_CACHE_DIR", cache)
        .env("CARNAC_CACHE_LOG", "1")
        .output()
        .expect("run carnac")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// stderr without the cache log line.
fn errors(out: &Output) -> String {
    text(&out.stderr).lines().filter(|l| !l.starts_with("carnac cache:")).map(|l| format!("{l}\n")).collect()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "cwasm")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn compile_then_run_the_artifact() {
    let dir = temp_dir("compile");
    let cache = dir.join("cache");
    let cwasm = dir.join("fib.cwasm");
    let out = carnac(&cache, &["compile", "examples/fib.wat", "-o", cwasm.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::metadata(&cwasm).unwrap().len() > 0);

    let out = carnac(&cache, &["run", "--invoke", "fib", cwasm.to_str().unwrap(), "20"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "6765\n");
    // A trap: the same message and backtrace as compiling the source.
    let from_artifact = carnac(&cache, &["run", "--invoke", "divide", cwasm.to_str().unwrap(), "1", "0"]);
    let from_source =
        carnac(&cache, &["run", "-C", "tier=cranelift,cache=n", "--invoke", "divide", "examples/fib.wat", "1", "0"]);
    assert_eq!(from_artifact.status.code(), Some(134));
    assert_eq!(errors(&from_artifact), errors(&from_source));
    assert!(errors(&from_artifact).contains("divide by zero"), "{}", errors(&from_artifact));
    // Loading an artifact neither compiles nor caches.
    assert!(entries(&cache).is_empty());

    // A WASI program.
    let hello = dir.join("hello.cwasm");
    let out = carnac(&cache, &["compile", "examples/hello-handler.wat", "-o", hello.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = carnac(&cache, &["run", hello.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with("Hello from a fresh Carnac instance!\n"));

    // Compiled with fuel metering, run with fuel.
    let fuel = dir.join("fuel.cwasm");
    let out = carnac(&cache, &["compile", "-W", "fuel=1", "examples/fib.wat", "-o", fuel.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = carnac(&cache, &["run", "--fuel", "1000", "--invoke", "fib", fuel.to_str().unwrap(), "30"]);
    assert_eq!(out.status.code(), Some(134));
    assert!(errors(&out).contains("fuel"), "{}", errors(&out));

    // Compiling over an artifact replaces it whole (a new file renamed over
    // it: running processes map it), leaving nothing else behind.
    let out = carnac(&cache, &["compile", "examples/hello-handler.wat", "-o", cwasm.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = carnac(&cache, &["run", cwasm.to_str().unwrap()]);
    assert!(text(&out.stdout).ends_with("Hello from a fresh Carnac instance!\n"));
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["fib.cwasm", "fuel.cwasm", "hello.cwasm"]);
}

#[test]
fn mismatched_or_damaged_artifacts_exit_1_with_one_line() {
    let dir = temp_dir("damaged");
    let cache = dir.join("cache");
    let cwasm = dir.join("fib.cwasm");
    let path = cwasm.to_str().unwrap();
    assert!(carnac(&cache, &["compile", "examples/fib.wat", "-o", path]).status.success());
    let good = std::fs::read(&cwasm).unwrap();

    let refused = |args: &[&str], expect: &str| {
        let out = carnac(&cache, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out.stderr));
        let err = errors(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("Error: ") && err.contains(expect), "{args:?}: {err}");
        assert!(args[0] != "run" || err.contains(".cwasm: "), "names the file: {err}");
    };
    refused(&["run", "--fuel", "100", "--invoke", "fib", path, "10"], "without fuel metering");
    refused(&["run", "-C", "tier=interp", "--invoke", "fib", path, "10"], "tier cranelift");
    refused(&["run", "--timeout", "5s", "--invoke", "fib", path, "10"], "interruption");

    let damaged = dir.join("damaged.cwasm");
    let damaged_path = damaged.to_str().unwrap();
    for len in [9, 12, 40, good.len() / 2, good.len() - 1] {
        std::fs::write(&damaged, &good[..len]).unwrap();
        refused(&["run", "--invoke", "fib", damaged_path, "10"], "damaged artifact");
    }
    for at in [20, good.len() / 2, good.len() - 3] {
        let mut bytes = good.clone();
        bytes[at] ^= 0x40;
        std::fs::write(&damaged, &bytes).unwrap();
        refused(&["run", "--invoke", "fib", damaged_path, "10"], "checksum mismatch");
    }
    refused(&["compile", "-C", "tier=interp", "examples/fib.wat", "-o", damaged_path], "tier `interp`");
}

/// The cache log line of a run.
fn cache_log(out: &Output) -> String {
    text(&out.stderr).lines().find(|l| l.starts_with("carnac cache:")).unwrap_or_default().to_string()
}

#[test]
fn cranelift_runs_cache_their_code() {
    let cache = temp_dir("cache").join("carnac");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "-C", "tier=cranelift"];
        args.extend(extra);
        args.extend(["--invoke", "fib", "examples/fib.wat", "20"]);
        let out = carnac(&cache, &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "6765\n");
        cache_log(&out)
    };
    assert_eq!(run(&[]), "carnac cache: 0 hit, 1 miss, 1 stored, 0 corrupt");
    let files = entries(&cache);
    assert_eq!(files.len(), 1);
    let good = std::fs::read(&files[0]).unwrap();
    assert_eq!(run(&[]), "carnac cache: 1 hit, 0 miss, 0 stored, 0 corrupt");

    // A corrupt entry is ignored and rewritten.
    std::fs::write(&files[0], &good[..good.len() - 10]).unwrap();
    assert_eq!(run(&[]), "carnac cache: 0 hit, 1 miss, 1 stored, 1 corrupt");
    assert_eq!(std::fs::read(&files[0]).unwrap(), good);

    // `-C cache=n` neither reads nor writes.
    std::fs::remove_file(&files[0]).unwrap();
    assert_eq!(run(&["-C", "cache=n"]), "carnac cache: 0 hit, 0 miss, 0 stored, 0 corrupt");
    assert!(entries(&cache).is_empty());
    // The interpreter does not cache.
    let out = carnac(&cache, &["run", "-C", "tier=interp", "--invoke", "fib", "examples/fib.wat", "20"]);
    assert_eq!(cache_log(&out), "carnac cache: 0 hit, 0 miss, 0 stored, 0 corrupt");
    assert!(entries(&cache).is_empty());
    // The default tier (auto) runs cached code from the first call.
    assert_eq!(run(&[]), "carnac cache: 0 hit, 1 miss, 1 stored, 0 corrupt");
    let out = carnac(&cache, &["run", "--invoke", "fib", "examples/fib.wat", "20"]);
    assert_eq!(text(&out.stdout), "6765\n");
    assert_eq!(cache_log(&out), "carnac cache: 1 hit, 0 miss, 0 stored, 0 corrupt");
    let out = carnac(&cache, &["run", "-C", "cache=maybe", "examples/fib.wat"]);
    assert_eq!(out.status.code(), Some(1));
}
