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

#[test]
fn invoke_prints_results() {
    let out = carnac(&["run", "--invoke", "fib", "examples/fib.wat", "20"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "6765\n");
    let out = carnac(&["run", "--invoke", "sum", "examples/fib.wat", "10"]);
    assert_eq!(text(&out.stdout), "45\n");
    // Negative arguments are values, not flags.
    let out = carnac(&["run", "--invoke", "divide", "examples/fib.wat", "-9", "2"]);
    assert_eq!(text(&out.stdout), "-4\n");
}

#[test]
fn invoke_takes_and_prints_v128() {
    let out = carnac(&["run", "--invoke", "reverse", "examples/simd.wat", "0x8f0e0d0c0b0a09080706050403020100"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "0x000102030405060708090a0b0c0d0e8f\n32768\n");
    let out = carnac(&["run", "--invoke", "dot", "examples/simd.wat", "0x00040003000200010004000300020001"]);
    assert_eq!(text(&out.stdout), "60\n");
    let out = carnac(&["run", "--invoke", "dot", "examples/simd.wat", "0x1g"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a valid v128"), "{}", text(&out.stderr));
}

#[test]
fn trap_prints_message_and_backtrace() {
    let out = carnac(&["run", "--invoke", "divide", "examples/fib.wat", "1", "0"]);
    assert_eq!(out.status.code(), Some(134));
    let err = text(&out.stderr);
    assert!(err.contains("integer divide by zero"), "{err}");
    assert!(err.contains("wasm backtrace:"), "{err}");
}

#[test]
fn fuel_limits_execution() {
    let out = carnac(&["run", "--fuel", "1000", "--invoke", "fib", "examples/fib.wat", "25"]);
    assert_eq!(out.status.code(), Some(134));
    assert!(text(&out.stderr).contains("all fuel consumed"), "{}", text(&out.stderr));
    let out = carnac(&["run", "--fuel", "100000000", "--invoke", "fib", "examples/fib.wat", "15"]);
    assert_eq!(text(&out.stdout), "610\n");
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
    ] {
        let out = carnac(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("Error: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
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
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-wasi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let dir = format!("{}::/data", root.display());
    let out = carnac(&["run", "--dir", &dir, &g, "files", "/data"]);
    assert_eq!(text(&out.stdout), "files ok\n", "{}", text(&out.stderr));
    // Wasmtime's spelling of a preopen that keeps its host name works too.
    let same = root.display().to_string();
    let out = carnac(&["run", "--dir", &same, &g, "dirs", &same]);
    assert_eq!(text(&out.stdout), "dirs ok\n", "{}", text(&out.stderr));
    std::env::set_var("CARNAC_TEST_PASSTHROUGH", "from-host");
    let out =
        carnac(&["run", "--env", "A=1", "--env", "CARNAC_TEST_PASSTHROUGH", "--env", "NOT_SET_ANYWHERE", &g, "env"]);
    assert_eq!(text(&out.stdout), "A=1\nCARNAC_TEST_PASSTHROUGH=from-host\n");
    // argv[0] is the module's file name, without the host's directories (as Wasmtime).
    let out = carnac(&["run", &g, "args", "x", "-y", "--z"]);
    assert_eq!(text(&out.stdout), "guest.wasm\nargs\nx\n-y\n--z\n");
    let out = carnac(&["run", &g, "exit", "3"]);
    assert_eq!(out.status.code(), Some(3));
    let out = carnac(&["run", &g, "panic"]);
    assert_eq!(out.status.code(), Some(134));
    assert!(text(&out.stderr).contains("wasm trap: unreachable"), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn timeout_interrupts_a_guest_stuck_in_a_loop() {
    let g = guest();
    let t = std::time::Instant::now();
    let out = carnac(&["run", "--timeout", "300ms", &g, "loop"]);
    assert_eq!(out.status.code(), Some(134));
    assert!(text(&out.stderr).contains("interrupted"), "{}", text(&out.stderr));
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    let out = carnac(&["run", "-W", "timeout=200ms", &g, "loop"]);
    assert_eq!(out.status.code(), Some(134));
    // A guest asleep in poll_oneoff (here for 100 days) is woken by the deadline too.
    let t = std::time::Instant::now();
    let out = carnac(&["run", "--timeout", "300ms", &g, "sleep", "8640000000"]);
    assert_eq!(out.status.code(), Some(134), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("interrupted"), "{}", text(&out.stderr));
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn memory_cap_and_fuel_stop_a_guest() {
    let g = guest();
    let out = carnac(&["run", "--max-memory", "32M", &g, "grow"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("memory allocation") || text(&out.stderr).contains("wasm trap"),
        "{}",
        text(&out.stderr)
    );
    let out = carnac(&["run", "--fuel", "100000", &g, "loop"]);
    assert_eq!(out.status.code(), Some(134));
    assert!(text(&out.stderr).contains("all fuel consumed"), "{}", text(&out.stderr));
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
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_carnac"))
        .args(["serve", "examples/hello-handler.wat", "--listen", "127.0.0.1:0"])
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
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("Hello from a fresh Carnac instance!"), "{response}");
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

/// Runs `carnac run --timeout 200ms` on `wat` with a stdin pipe that is never
/// written nor closed; returns the output, or fails if it runs past 20 s.
fn run_with_silent_stdin(name: &str, wat: &str) -> (Output, std::time::Duration) {
    let dir = std::env::temp_dir().join(format!("carnac-cli-timeout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, wat).unwrap();
    let t = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_carnac"))
        .args(["run", "--timeout", "200ms", path.to_str().unwrap()])
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
    // A read of inherited stdin that no data will ever satisfy.
    let (out, elapsed) = run_with_silent_stdin(
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
    let out = carnac(&["run", "--max-memory", "64M", "--invoke", "tgrow", wat.to_str().unwrap(), "10000000"]);
    assert_eq!(text(&out.stdout), "-1\n", "{}", text(&out.stderr));
    let out = carnac(&["run", "--max-memory", "64M", "--invoke", "tgrow", wat.to_str().unwrap(), "1000000"]);
    assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));
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
