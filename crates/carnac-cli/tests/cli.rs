//! The `carnac` binary as a user runs it: results on stdout, one-line errors,
//! exit statuses.

use std::process::{Command, Output};

fn carnac(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carnac"))
        .args(args)
        // `-C tier=cranelift` caches compiled code: never in the user's cache.
        .env("CARNAC_CACHE_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/carnac-cache"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("run carnac")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `-C tier=` values the tests that run guests cover: the compiled tier
/// where it is built (Linux on x86_64 and aarch64, see crates/carnac/build.rs).
const TIERS: &[&str] = if cfg!(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))) {
    &["interp", "cranelift"]
} else {
    &["interp"]
};

/// `carnac run -C tier=TIER ARGS...`
fn run_on(tier: &str, args: &[&str]) -> Output {
    let tier = format!("tier={tier}");
    carnac(&[&["run", "-C", tier.as_str()], args].concat())
}

#[test]
fn invoke_prints_results() {
    for tier in TIERS {
        let out = run_on(tier, &["--invoke", "fib", "examples/fib.wat", "20"]);
        assert!(out.status.success(), "{tier}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "6765\n", "{tier}");
        let out = run_on(tier, &["--invoke", "sum", "examples/fib.wat", "10"]);
        assert_eq!(text(&out.stdout), "45\n", "{tier}");
        // Negative arguments are values, not flags.
        let out = run_on(tier, &["--invoke", "divide", "examples/fib.wat", "-9", "2"]);
        assert_eq!(text(&out.stdout), "-4\n", "{tier}");
    }
    // The default tier is the interpreter, and `-C` options may be comma-separated.
    let out = carnac(&["run", "-C", "tier=cranelift,tier=interp", "--invoke", "fib", "examples/fib.wat", "20"]);
    assert_eq!(text(&out.stdout), "6765\n", "{}", text(&out.stderr));
}

/// `-W NAME=y|n` switches WebAssembly proposals, in Wasmtime's names.
#[test]
fn wasm_proposals_are_switched_with_w() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-proposals");
    std::fs::create_dir_all(&dir).unwrap();
    let tail = dir.join("tail.wat");
    std::fs::write(
        &tail,
        r#"(module (func $f (export "f") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 7))
          (else (return_call $f (i32.sub (local.get 0) (i32.const 1)))))))"#,
    )
    .unwrap();
    let tail = tail.to_str().unwrap();
    for tier in TIERS {
        let out =
            run_on(tier, &["-W", "tail-call=y,memory64,simd=y,function-references=y", "--invoke", "f", tail, "100000"]);
        assert_eq!(text(&out.stdout), "7\n", "{tier}: {}", text(&out.stderr));
        let out = run_on(tier, &["-W", "tail-call=n", "--invoke", "f", tail, "3"]);
        assert!(!out.status.success(), "{tier}");
        let err = text(&out.stderr);
        assert!(err.contains("tail") && err.lines().count() == 1, "{tier}: {err}");
    }
    let out = carnac(&["run", "-W", "gc=n,exceptions=n", "--invoke", "f", tail, "3"]);
    assert_eq!(text(&out.stdout), "7\n", "{}", text(&out.stderr));
    let out = carnac(&["run", "-W", "gc=y", "--invoke", "f", tail, "3"]);
    assert_eq!(text(&out.stdout), "7\n", "{}", text(&out.stderr));
    let out = carnac(&["run", "-W", "memory64=maybe", "--invoke", "f", tail, "3"]);
    assert!(text(&out.stderr).contains("invalid -W memory64=`maybe`"), "{}", text(&out.stderr));
}

/// `-W exceptions=y` runs a module that throws and catches; an exception
/// nothing catches is a one-line error and a failure.
#[test]
fn exceptions_run_and_uncaught_ones_fail() {
    let dir = std::env::temp_dir().join(format!("carnac-cli-exn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exn = dir.join("exn.wat");
    std::fs::write(
        &exn,
        r#"(module
          (tag $e (param i32))
          (func $thrower (param i32) (throw $e (local.get 0)))
          (func (export "caught") (param i32) (result i32)
            (block $h (result i32)
              (try_table (catch $e $h) (call $thrower (local.get 0)))
              (i32.const -1))
            (i32.const 1)
            (i32.add))
          (func (export "uncaught") (param i32) (call $thrower (local.get 0))))"#,
    )
    .unwrap();
    let exn = exn.to_str().unwrap();
    for tier in TIERS {
        let out = run_on(tier, &["-W", "exceptions=y", "--invoke", "caught", exn, "41"]);
        assert_eq!(text(&out.stdout), "42\n", "{tier}: {}", text(&out.stderr));
        let out = run_on(tier, &["-W", "exceptions=y", "--invoke", "uncaught", exn, "41"]);
        assert!(!out.status.success(), "{tier}");
        let err = text(&out.stderr);
        assert!(err.contains("uncaught exception") && err.lines().count() == 1, "{tier}: {err}");
        let out = run_on(tier, &["-W", "exceptions=n", "--invoke", "caught", exn, "41"]);
        assert!(!out.status.success(), "{tier}");
    }
    // Compiled ahead of time: the functions that throw and catch run
    // interpreted from the artifact, the rest compiled.
    if TIERS.contains(&"cranelift") {
        let cwasm = dir.join("exn.cwasm");
        let cwasm = cwasm.to_str().unwrap();
        let out = carnac(&["compile", exn, "-o", cwasm]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = carnac(&["run", "--invoke", "caught", cwasm, "41"]);
        assert_eq!(text(&out.stdout), "42\n", "{}", text(&out.stderr));
        let out = carnac(&["run", "--invoke", "uncaught", cwasm, "41"]);
        assert!(!out.status.success() && text(&out.stderr).contains("uncaught exception"));
    }
}

#[test]
fn invoke_takes_and_prints_v128() {
    for tier in TIERS {
        let out = run_on(tier, &["--invoke", "reverse", "examples/simd.wat", "0x8f0e0d0c0b0a09080706050403020100"]);
        assert!(out.status.success(), "{tier}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "0x000102030405060708090a0b0c0d0e8f\n32768\n", "{tier}");
        let out = run_on(tier, &["--invoke", "dot", "examples/simd.wat", "0x00040003000200010004000300020001"]);
        assert_eq!(text(&out.stdout), "60\n", "{tier}");
        let out = run_on(tier, &["--invoke", "dot", "examples/simd.wat", "0x1g"]);
        assert_eq!(out.status.code(), Some(1), "{tier}");
        assert!(text(&out.stderr).contains("not a valid v128"), "{tier}: {}", text(&out.stderr));
    }
}

#[test]
fn trap_prints_message_and_backtrace() {
    for tier in TIERS {
        let out = run_on(tier, &["--invoke", "divide", "examples/fib.wat", "1", "0"]);
        assert_eq!(out.status.code(), Some(134), "{tier}");
        assert_eq!(
            text(&out.stderr),
            "Error: wasm trap: integer divide by zero\nwasm backtrace:\n  0: 0x81 - <wasm function 2>\n",
            "{tier}"
        );
        // A trap under calls: one line per frame, innermost first, named from the name section.
        let out = run_on(tier, &["--fuel", "1000", "--invoke", "fib", "examples/fib.wat", "25"]);
        assert_eq!(out.status.code(), Some(134), "{tier}");
        let err = text(&out.stderr);
        let frames: Vec<&str> = err.lines().skip_while(|l| *l != "wasm backtrace:").skip(1).collect();
        assert!(frames.len() > 10, "{tier}: {err}");
        for (i, frame) in frames.iter().enumerate() {
            assert!(frame.starts_with(&format!("  {i}: 0x")) && frame.ends_with(" - fib"), "{tier}: {err}");
        }
    }
}

#[test]
fn fuel_limits_execution() {
    let mut depths = Vec::new();
    for tier in TIERS {
        let out = run_on(tier, &["--fuel", "1000", "--invoke", "fib", "examples/fib.wat", "25"]);
        assert_eq!(out.status.code(), Some(134), "{tier}");
        let err = text(&out.stderr);
        assert!(err.starts_with("Error: wasm trap: all fuel consumed\n"), "{tier}: {err}");
        // Both tiers charge the same fuel, so they stop at the same call.
        depths.push(err.lines().filter(|l| l.ends_with(" - fib")).count());
        let out = run_on(tier, &["--fuel", "100000000", "--invoke", "fib", "examples/fib.wat", "15"]);
        assert_eq!(text(&out.stdout), "610\n", "{tier}");
    }
    assert!(depths.windows(2).all(|w| w[0] == w[1]), "fuel ran out at different depths: {depths:?}");
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = std::env::temp_dir().join(format!("carnac-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x01\0\0\0\x01\x05\xff").unwrap();
    let garbage = garbage.to_str().unwrap();
    for args in [
        vec!["run", "--invoke", "fib", "no/such/file.wasm"],
        vec!["run", garbage],
        vec!["run", "examples/fib.wat"],
        vec!["run", "--invoke", "nope", "examples/fib.wat"],
        vec!["run", "--invoke", "fib", "examples/fib.wat"],
        vec!["run", "--invoke", "fib", "examples/fib.wat", "x"],
        vec!["run", "-C", "tier=bogus", "--invoke", "fib", "examples/fib.wat", "1"],
        vec!["run", "-C", "opt-level=2", "--invoke", "fib", "examples/fib.wat", "1"],
        vec!["serve", "-C", "tier=bogus", "examples/hello-handler.wat", "--listen", "127.0.0.1:0"],
        vec!["serve", "-C", "tier", "examples/hello-handler.wat", "--listen", "127.0.0.1:0"],
    ] {
        let out = carnac(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("Error: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let out = carnac(&["run", "-C", "tier=bogus", "--invoke", "fib", "examples/fib.wat", "1"]);
    assert_eq!(text(&out.stderr), "Error: unknown tier `bogus` (expected `auto`, `interp` or `cranelift`)\n");
    let out = carnac(&["serve", "-C", "tier=bogus", "examples/hello-handler.wat", "--listen", "127.0.0.1:0"]);
    assert_eq!(text(&out.stderr), "Error: unknown tier `bogus` (expected `auto`, `interp` or `cranelift`)\n");
    std::fs::remove_dir_all(&dir).ok();
}

#[path = "../../carnac-wasi/tests/guests.rs"]
mod guests;

fn guest() -> String {
    guests::guest("guest").to_str().unwrap().to_string()
}

#[test]
fn wasi_program_gets_dirs_env_args_and_exit_code() {
    let g = guest();
    for tier in TIERS {
        let root =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-wasi-{tier}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let dir = format!("{}::/data", root.display());
        let out = run_on(tier, &["--dir", &dir, &g, "files", "/data"]);
        assert_eq!(text(&out.stdout), "files ok\n", "{tier}: {}", text(&out.stderr));
        // Wasmtime's spelling of a preopen that keeps its host name works too.
        let same = root.display().to_string();
        let out = run_on(tier, &["--dir", &same, &g, "dirs", &same]);
        assert_eq!(text(&out.stdout), "dirs ok\n", "{tier}: {}", text(&out.stderr));
        std::env::set_var("CARNAC_TEST_PASSTHROUGH", "from-host");
        let out =
            run_on(tier, &["--env", "A=1", "--env", "CARNAC_TEST_PASSTHROUGH", "--env", "NOT_SET_ANYWHERE", &g, "env"]);
        assert_eq!(text(&out.stdout), "A=1\nCARNAC_TEST_PASSTHROUGH=from-host\n", "{tier}");
        // argv[0] is the module's file name, without the host's directories (as Wasmtime).
        let out = run_on(tier, &[&g, "args", "x", "-y", "--z"]);
        assert_eq!(text(&out.stdout), "guest.wasm\nargs\nx\n-y\n--z\n", "{tier}");
        let out = run_on(tier, &[&g, "exit", "3"]);
        assert_eq!(out.status.code(), Some(3), "{tier}");
        // A Rust panic in the guest: its message on stderr, then the trap and its backtrace.
        let out = run_on(tier, &[&g, "panic"]);
        assert_eq!(out.status.code(), Some(134), "{tier}");
        let err = text(&out.stderr);
        assert!(err.contains("the guest panicked on purpose"), "{tier}: {err}");
        assert!(err.contains("Error: wasm trap: unreachable\nwasm backtrace:\n  0: 0x"), "{tier}: {err}");
        assert!(err.lines().any(|l| l.ends_with(".wasm!guest::main")), "{tier}: {err}");
        std::fs::remove_dir_all(&root).ok();
    }
}

#[test]
fn timeout_interrupts_a_guest_stuck_in_a_loop() {
    let g = guest();
    for tier in TIERS {
        let t = std::time::Instant::now();
        let out = run_on(tier, &["--timeout", "300ms", &g, "loop"]);
        assert_eq!(out.status.code(), Some(134), "{tier}");
        assert!(text(&out.stderr).starts_with("Error: wasm trap: interrupted\n"), "{tier}: {}", text(&out.stderr));
        assert!(t.elapsed() < std::time::Duration::from_secs(20), "{tier}");
        let out = run_on(tier, &["-W", "timeout=200ms", &g, "loop"]);
        assert_eq!(out.status.code(), Some(134), "{tier}");
        // A guest asleep in poll_oneoff (here for 100 days) is woken by the deadline too.
        let t = std::time::Instant::now();
        let out = run_on(tier, &["--timeout", "300ms", &g, "sleep", "8640000000"]);
        assert_eq!(out.status.code(), Some(134), "{tier}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("interrupted"), "{tier}: {}", text(&out.stderr));
        assert!(t.elapsed() < std::time::Duration::from_secs(10), "{tier}");
    }
}

#[test]
fn memory_cap_and_fuel_stop_a_guest() {
    let g = guest();
    for tier in TIERS {
        let out = run_on(tier, &["--max-memory", "32M", &g, "grow"]);
        assert_ne!(out.status.code(), Some(0), "{tier}");
        assert!(
            text(&out.stderr).contains("memory allocation") || text(&out.stderr).contains("wasm trap"),
            "{tier}: {}",
            text(&out.stderr)
        );
        let out = run_on(tier, &["--fuel", "100000", &g, "loop"]);
        assert_eq!(out.status.code(), Some(134), "{tier}");
        assert!(
            text(&out.stderr).starts_with("Error: wasm trap: all fuel consumed\n"),
            "{tier}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn bad_wasi_setups_are_one_line_errors() {
    let g = guest();
    for args in [
        vec!["run", "--dir", "/no/such/directory", g.as_str(), "hello"],
        vec!["run", "--dir", "::guest", g.as_str(), "hello"],
        vec!["run", "--timeout", "soon", g.as_str(), "hello"],
        vec!["run", "--max-memory", "lots", g.as_str(), "hello"],
        vec!["run", "-W", "unknown=1", g.as_str(), "hello"],
    ] {
        let out = carnac(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    let dir = std::env::temp_dir().join(format!("carnac-cli-imports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wat = dir.join("imports.wat");
    std::fs::write(&wat, r#"(module (import "env" "nope" (func)) (func (export "_start")))"#).unwrap();
    let out = carnac(&["run", wat.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("env::nope"), "{}", text(&out.stderr));
    let wat = dir.join("hello.wat");
    std::fs::write(
        &wat,
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (data (i32.const 16) "hi from wat\n")
            (func (export "_start")
                (i32.store (i32.const 0) (i32.const 16))
                (i32.store (i32.const 4) (i32.const 12))
                (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .unwrap();
    let out = carnac(&["run", wat.to_str().unwrap()]);
    assert_eq!(text(&out.stdout), "hi from wat\n", "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tcplisten_grants_a_socket() {
    use std::io::{Read, Write};
    let g = guest();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_carnac"))
        .args(["run", "--tcplisten", &addr, &g, "serve", "3"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stream = None;
    for _ in 0..200 {
        match std::net::TcpStream::connect(&addr) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(25)),
        }
    }
    let mut s = stream.expect("carnac listens on the granted address");
    s.write_all(b"hello socket\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "HELLO SOCKET\n");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "served hello socket\n");
}

#[test]
fn serve_answers_logs_and_drains_on_sigint() {
    for tier in TIERS {
        serve_answers_logs_and_drains_on_sigint_on(tier);
    }
}

fn serve_answers_logs_and_drains_on_sigint_on(tier: &str) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_carnac"))
        .args(["serve", "-C", &format!("tier={tier}"), "examples/hello-handler.wat", "--listen", "127.0.0.1:0"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start carnac serve");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let addr = first.trim().strip_prefix("listening on http://").expect("listening line").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /hello?x=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{tier}: {response}");
    assert!(response.contains("Hello from a fresh Carnac instance!"), "{tier}: {response}");
    // SIGINT: the server drains, writes out its buffered log and exits cleanly.
    // SAFETY: sends a signal to our own child process, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{status:?}\n{rest}");
    let access = rest.lines().find(|l| l.starts_with("access id=1 ")).unwrap_or_else(|| panic!("{rest}"));
    assert!(access.contains("method=GET path=/hello") && access.contains("status=200"), "{access}");
    assert!(rest.contains("shutting down"), "{rest}");
}

/// `listen =` in carnac.toml is where `carnac serve` listens unless `--listen` says otherwise.
#[test]
fn serve_listens_where_the_configuration_says() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("carnac-cli-listen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    // A free port, released just before the server binds it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.join("carnac.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:{port}\"\n[[route]]\npath = \"/...\"\nmodule = \"{root}/examples/hello-handler.wat\"\n"),
    )
    .unwrap();
    for (extra, expected) in [(None, format!("127.0.0.1:{port}")), (Some("127.0.0.1:0"), String::new())] {
        let mut args = vec!["serve".to_string(), config.to_str().unwrap().to_string()];
        if let Some(l) = extra {
            args.extend(["--listen".to_string(), l.to_string()]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_carnac"))
            .args(&args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start carnac serve");
        let mut first = String::new();
        BufReader::new(child.stderr.take().unwrap()).read_line(&mut first).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let addr = first.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("{first}")).to_string();
        if extra.is_none() {
            assert_eq!(addr, expected, "the configuration's address");
        } else {
            assert_ne!(addr, format!("127.0.0.1:{port}"), "--listen overrides the configuration");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs `carnac run -C tier=TIER --timeout 200ms` on `wat` with a stdin pipe
/// that is never written nor closed; returns the output, or fails if it runs past 20 s.
fn run_with_silent_stdin(tier: &str, name: &str, wat: &str) -> (Output, std::time::Duration) {
    let dir = std::env::temp_dir().join(format!("carnac-cli-timeout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, wat).unwrap();
    let t = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_carnac"))
        .args(["run", "-C", &format!("tier={tier}"), "--timeout", "200ms", path.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > std::time::Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("{name}: still running 20 s after a 200 ms timeout");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let elapsed = t.elapsed();
    drop(stdin);
    (child.wait_with_output().unwrap(), elapsed)
}

#[test]
fn timeout_interrupts_a_read_of_stdin_and_a_poll() {
    for tier in TIERS {
        timeout_interrupts_a_read_of_stdin_and_a_poll_on(tier);
    }
}

fn timeout_interrupts_a_read_of_stdin_and_a_poll_on(tier: &str) {
    // A read of inherited stdin that no data will ever satisfy.
    let (out, elapsed) = run_with_silent_stdin(
        tier,
        "read.wat",
        r#"(module
            (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (func (export "_start")
                (i32.store (i32.const 0) (i32.const 16))
                (i32.store (i32.const 4) (i32.const 64))
                (drop (call $r (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    );
    assert_eq!(out.status.code(), Some(134), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("wasm trap: interrupted"), "{}", text(&out.stderr));
    assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
    // A 60 s monotonic clock subscription, after which the guest just returns:
    // the deadline ends it with the timeout, not with exit status 0.
    let (out, elapsed) = run_with_silent_stdin(
        tier,
        "poll.wat",
        r#"(module
            (import "wasi_snapshot_preview1" "poll_oneoff" (func $p (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (func (export "_start")
                (i32.store (i32.const 16) (i32.const 1))          ;; clock id: monotonic
                (i64.store (i32.const 24) (i64.const 60000000000)) ;; 60 s, relative
                (drop (call $p (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"#,
    );
    assert_eq!(out.status.code(), Some(134), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("wasm trap: interrupted"), "{}", text(&out.stderr));
    assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn max_memory_covers_tables() {
    let dir = std::env::temp_dir().join(format!("carnac-cli-tables-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // 20 tables of 10M elements: 2.5 KB of text, 1.6 GB in the store.
    let tables: String = (0..20).map(|_| "(table 10000000 funcref)").collect();
    let wat = dir.join("tables.wat");
    std::fs::write(&wat, format!(r#"(module {tables} (func (export "_start")))"#)).unwrap();
    let t = std::time::Instant::now();
    let out = carnac(&["run", "--max-memory", "64M", wat.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("table of 10000000 elements"), "{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    // table.grow from the guest past the budget fails (-1) instead of growing.
    let wat = dir.join("tgrow.wat");
    std::fs::write(
        &wat,
        r#"(module (table 0 funcref)
            (func (export "tgrow") (param i32) (result i32) (table.grow (ref.null func) (local.get 0))))"#,
    )
    .unwrap();
    for tier in TIERS {
        let out = run_on(tier, &["--max-memory", "64M", "--invoke", "tgrow", wat.to_str().unwrap(), "10000000"]);
        assert_eq!(text(&out.stdout), "-1\n", "{tier}: {}", text(&out.stderr));
        let out = run_on(tier, &["--max-memory", "64M", "--invoke", "tgrow", wat.to_str().unwrap(), "1000000"]);
        assert_eq!(text(&out.stdout), "0\n", "{tier}: {}", text(&out.stderr));
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// User + system CPU time of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn serve_out_of_descriptors_refuses_connections_instead_of_spinning() {
    use std::io::{BufRead, BufReader, Read, Write};
    // 300 descriptors for the whole server, and more clients than that.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 300 && exec '{}' serve examples/hello-handler.wat --listen 127.0.0.1:0",
            env!("CARGO_BIN_EXE_carnac")
        ))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start carnac serve");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("listening on") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "carnac serve exited");
    }
    let addr = line.trim().strip_prefix("listening on http://").unwrap().to_string();
    let idle: Vec<std::net::TcpStream> = (0..400).filter_map(|_| std::net::TcpStream::connect(&addr).ok()).collect();
    assert!(idle.len() > 300, "{} connections", idle.len());
    std::thread::sleep(std::time::Duration::from_millis(300));
    // The server is not spinning on a listener it cannot accept from.
    let before = cpu_ticks(child.id());
    std::thread::sleep(std::time::Duration::from_secs(1));
    let used = cpu_ticks(child.id()) - before;
    // A new client is answered (503 while the slots are full), not left hanging.
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    let _ = c.read_to_string(&mut response);
    drop(idle);
    // Once the idle clients leave, requests are served again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let served = loop {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
        let mut r = String::new();
        let _ = c.read_to_string(&mut r);
        if r.starts_with("HTTP/1.1 200") || std::time::Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // SAFETY: signals our own child process, not yet waited for.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(used < 50, "the server used {used} ticks of CPU in 1 s while idle\n{rest}");
    assert!(response.starts_with("HTTP/1.1 503"), "{response:?}\n{rest}");
    assert!(served.starts_with("HTTP/1.1 200"), "{served:?}\n{rest}");
    assert!(status.success(), "{status:?}\n{rest}");
}

#[test]
fn snapshot_pre_initialises_a_module() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-snapshot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let snap = dir.join("preinit.snap.wasm");
    let snap = snap.to_str().unwrap();
    let expected = "state checksum: 4233007175\ngreeting: hello\n";
    for tier in TIERS {
        let tier_opt = format!("tier={tier}");
        let out = run_on(tier, &["--env", "GREETING=hello", "examples/preinit.wat"]);
        assert_eq!(text(&out.stdout), expected, "{tier}: {}", text(&out.stderr));
        // The init export runs with the flags of `run`; the snapshot remembers what it saw.
        let out = carnac(&["snapshot", "-C", &tier_opt, "--env", "GREETING=hello", "examples/preinit.wat", "-o", snap]);
        assert!(out.status.success(), "{tier}: {}", text(&out.stderr));
        let out = run_on(tier, &[snap]);
        assert_eq!(text(&out.stdout), expected, "{tier}: {}", text(&out.stderr));
        let out = run_on(tier, &["--env", "GREETING=changed", snap]);
        assert_eq!(text(&out.stdout), expected, "{tier}: the greeting was read at snapshot time");
        // The init export is gone.
        let out = run_on(tier, &["--invoke", "wizer.initialize", snap]);
        assert_eq!(out.status.code(), Some(1), "{tier}");
        assert!(text(&out.stderr).contains("no exported function `wizer.initialize`"), "{tier}");
    }
    // Refused with a one-line error, and no file written.
    let bad = dir.join("bad.wasm");
    let bad = bad.to_str().unwrap();
    let out = carnac(&["snapshot", "examples/fib.wat", "-o", bad]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error: examples/fib.wat: module exports no function `wizer.initialize` to initialise it (name another with --init-func)\n"
    );
    let out = carnac(&["snapshot", "--init-func", "divide", "examples/fib.wat", "-o", bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("Error: "), "{}", text(&out.stderr));
    let trapping = dir.join("trap.wat");
    std::fs::write(&trapping, r#"(module (memory 1) (func (export "wizer.initialize") unreachable))"#).unwrap();
    let out = carnac(&["snapshot", trapping.to_str().unwrap(), "-o", bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("Error: `wizer.initialize` trapped: "), "{}", text(&out.stderr));
    assert!(!std::path::Path::new(bad).exists());
    std::fs::remove_dir_all(&dir).ok();
}
