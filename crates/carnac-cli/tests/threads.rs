//! `carnac run` with wasm32-wasip1-threads programs: shared memory created from
//! the import, wasi-threads provided, `-W threads`, `-S threads`,
//! `-S max-threads`, exit statuses, traps and the timeout across threads.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[path = "../../carnac-wasi/tests/guests.rs"]
mod guests;

fn carnac(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carnac"))
        .args(args)
        .env("CARNAC_CACHE_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/carnac-cache"))
        .output()
        .expect("run carnac")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `-C tier=` values covered: the compiled tier where it is built, and the default.
const TIERS: &[&str] = if cfg!(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))) {
    &["interp", "cranelift", "auto"]
} else {
    &["interp"]
};

fn run_on(tier: &str, args: &[&str]) -> Output {
    let tier = format!("tier={tier}");
    carnac(&[&["run", "-C", tier.as_str()], args].concat())
}

/// A wasi-threads program in text (no atomics, so it needs nothing but the
/// orchestration): `_start` spawns one thread with `arg` and then does `main`;
/// the thread prints a line, then exits with 3 (arg 7), traps (8), or spins (9).
fn wat(name: &str, arg: i32, main: &str) -> PathBuf {
    let src = format!(
        r#"(module
  (import "env" "memory" (memory 1 1 shared))
  (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (export "memory" (memory 0))
  (data (i32.const 100) "hi from thread\n")
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (i32.store (i32.const 16) (i32.const 100))
    (i32.store (i32.const 20) (i32.const 15))
    (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
    (if (i32.eq (local.get $arg) (i32.const 7)) (then (call $exit (i32.const 3))))
    (if (i32.eq (local.get $arg) (i32.const 8)) (then unreachable))
    (if (i32.eq (local.get $arg) (i32.const 9)) (then (loop br 0))))
  (func (export "_start")
    (if (i32.le_s (call $spawn (i32.const {arg})) (i32.const 0)) (then unreachable))
    {main}))"#
    );
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("threads-{name}-{}.wat", std::process::id()));
    std::fs::write(&path, src).unwrap();
    path
}

#[test]
fn a_threads_exit_trap_or_the_mains_return_ends_the_program() {
    let exit = wat("exit", 7, "(loop br 0)");
    let trap = wat("trap", 8, "(loop br 0)");
    let ret = wat("ret", 9, "(drop (call $spawn (i32.const 9)))");
    for tier in TIERS {
        let t = Instant::now();
        let out = run_on(tier, &[exit.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(3), "{tier}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "hi from thread\n", "{tier}");
        let out = run_on(tier, &[trap.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(134), "{tier}");
        assert!(text(&out.stderr).starts_with("Error: wasm trap: unreachable\n"), "{tier}: {}", text(&out.stderr));
        // Returning from `_start` ends the program, spinning threads and all.
        let out = run_on(tier, &[ret.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{tier}: {}", text(&out.stderr));
        assert!(t.elapsed() < Duration::from_secs(30), "{tier}: {:?}", t.elapsed());
    }
}

#[test]
fn the_timeout_stops_every_thread() {
    let spin = wat("spin", 9, "(loop br 0)");
    for tier in TIERS {
        let t = Instant::now();
        let out = run_on(tier, &["--timeout", "300ms", spin.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(134), "{tier}");
        assert!(text(&out.stderr).starts_with("Error: wasm trap: interrupted\n"), "{tier}: {}", text(&out.stderr));
        assert!(t.elapsed() < Duration::from_secs(10), "{tier}: {:?}", t.elapsed());
    }
}

#[test]
fn threads_flags_accept_wasmtimes_spellings_and_refuse_what_they_turn_off() {
    let exit = wat("flags", 7, "(loop br 0)");
    let m = exit.to_str().unwrap();
    let out = carnac(&["run", "-W", "threads=y", "-S", "threads=y", "-S", "max-threads=4", m]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // The proposal turned off: the module is refused, naming the flag.
    let out = carnac(&["run", "-W", "threads=n", m]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("-W threads=n") && err.lines().count() == 1, "{err}");
    // wasi-threads turned off: the import is left undefined.
    let out = carnac(&["run", "-S", "threads=n", m]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "Error: unknown import: `wasi::thread-spawn` has not been defined\n");
    for (flag, opt, msg) in [
        ("-S", "bogus=1", "Error: unsupported -S option `bogus=1`\n"),
        ("-S", "threads=maybe", "Error: invalid -S threads=`maybe` (expected y or n)\n"),
        ("-S", "max-threads=0", "Error: invalid -S max-threads=`0` (a positive count)\n"),
        ("-W", "threads=2", "Error: invalid -W threads=`2` (expected y or n)\n"),
    ] {
        let out = carnac(&["run", flag, opt, m]);
        assert_eq!(out.status.code(), Some(1), "{flag} {opt}");
        assert_eq!(text(&out.stderr), msg);
    }
}

#[test]
fn rust_threads_program_prints_what_the_native_build_prints() {
    let native = Command::new(guests::native_threads_guest("threads")).arg("3").output().unwrap();
    assert!(native.status.success());
    let wasm = guests::threads_guest("threads");
    for tier in TIERS {
        let out = run_on(tier, &[wasm.to_str().unwrap(), "3"]);
        assert_eq!(out.status.code(), Some(0), "{tier}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), text(&native.stdout), "{tier}");
    }
}

#[test]
fn rust_programs_exit_trap_hit_the_limit_and_time_out() {
    let wasm = |n: &str| guests::threads_guest(n).to_str().unwrap().to_string();
    for tier in TIERS {
        let out = run_on(tier, &[&wasm("exit3")]);
        assert_eq!(out.status.code(), Some(3), "{tier}: {}", text(&out.stderr));
        let out = run_on(tier, &[&wasm("trap")]);
        assert_eq!(out.status.code(), Some(134), "{tier}");
        assert!(text(&out.stderr).starts_with("Error: wasm trap: unreachable\n"), "{tier}: {}", text(&out.stderr));
        let t = Instant::now();
        let out = run_on(tier, &["--timeout", "500ms", &wasm("hang")]);
        assert_eq!(out.status.code(), Some(134), "{tier}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("interrupted"), "{tier}: {}", text(&out.stderr));
        assert!(t.elapsed() < Duration::from_secs(10), "{tier}: {:?}", t.elapsed());
    }
    let out = carnac(&["run", "-S", "max-threads=3", &wasm("spawn_many"), "8"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "started 3\nspawn 3 failed: operation would block\njoined\n");
    let err = text(&out.stderr);
    assert_eq!(err.matches("limit of 3 live threads").count(), 1, "{err}");
    assert!(err.contains("-S max-threads=N"), "{err}");
}
