//! WASI preview1 end to end: Rust programs compiled for wasm32-wasip1 (our own
//! sources in tests/guests) run on Carnac through the library API, with their
//! standard streams captured, under each tier ([`TIERS`]).

mod guests;

use std::io::Write;
use std::path::Path;

use carnac::{Config, Engine, Error, Linker, Module, Store, Strategy, TrapKind};
use carnac_wasi::{I32Exit, Stream, WasiCtx};
use guests::Capture;

/// The tiers every guest program runs under: the compiled tier where it is
/// built (Linux on x86_64 and aarch64, see crates/carnac/build.rs).
const TIERS: &[Strategy] = if cfg!(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))) {
    &[Strategy::Interpreter, Strategy::Cranelift]
} else {
    &[Strategy::Interpreter]
};

/// Guest `program` compiled once per test binary for `tier`, with fuel
/// metering when `fuel` (its engine is the module's).
fn module(program: &str, tier: Strategy, fuel: bool) -> Module {
    guests::cached_module(program, tier, fuel, || {
        let mut config = Config::new();
        config.strategy(tier).consume_fuel(fuel);
        Module::from_file(&Engine::new(&config), guests::guest(program)).unwrap()
    })
}

struct Outcome {
    /// The exit status: `proc_exit`'s code, 0 on return from `_start`.
    code: Option<i32>,
    trap: Option<TrapKind>,
    stdout: String,
    stderr: String,
}

fn run_full(
    module: &Module,
    program: &str,
    args: &[&str],
    stdin: &[u8],
    dir: Option<&Path>,
    socket: Option<std::net::TcpListener>,
) -> Outcome {
    let engine = module.engine().clone();
    let (out, err) = (Capture::default(), Capture::default());
    let mut b = WasiCtx::builder();
    b.arg(program)
        .args(args.iter().copied())
        .env("GREETING", "hello")
        .stdin(Stream::Reader(Box::new(std::io::Cursor::new(stdin.to_vec()))))
        .stdout(Stream::Writer(Box::new(out.clone())))
        .stderr(Stream::Writer(Box::new(err.clone())));
    if let Some(d) = dir {
        b.preopened_dir(d, "/sb").unwrap();
    }
    if let Some(l) = socket {
        b.preopened_socket(l);
    }
    let mut store = Store::new(&engine, b.build());
    if store.get_fuel().is_ok() {
        store.set_fuel(10_000_000_000).unwrap();
    }
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    carnac_wasi::add_to_linker(&mut linker, |c| c).unwrap();
    let instance = linker.instantiate(&mut store, module).unwrap();
    let start = instance.get_typed_func::<(), ()>(&store, "_start").unwrap();
    let (code, trap) = match start.call(&mut store, ()) {
        Ok(()) => (Some(0), None),
        Err(Error::Trap(t)) => match t.downcast_host::<I32Exit>() {
            Some(e) => (Some(e.0), None),
            None => (None, Some(t.kind())),
        },
        Err(e) => panic!("unexpected error: {e}"),
    };
    Outcome { code, trap, stdout: out.text(), stderr: err.text() }
}

/// Runs guest `program` under `tier`.
fn run(tier: Strategy, program: &str, args: &[&str], stdin: &[u8], dir: Option<&Path>) -> Outcome {
    run_full(&module(program, tier, false), program, args, stdin, dir, None)
}

/// A fresh directory `sandbox` (the guest's) beside a `secret.txt`, for one tier's run.
fn sandbox(name: &str, tier: Strategy) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wasi-{name}-{tier:?}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("sandbox")).unwrap();
    std::fs::write(root.join("secret.txt"), "TOP SECRET").unwrap();
    root
}

#[test]
fn stdio_reads_stdin_to_eof_and_writes() {
    for &tier in TIERS {
        let o = run(tier, "guest", &["stdio"], b"hello, wasi\nsecond line\n", None);
        assert_eq!(o.code, Some(0), "{tier:?}: {}", o.stderr);
        assert_eq!(o.stdout, "HELLO, WASI\nSECOND LINE\n", "{tier:?}");
        assert_eq!(o.stderr, "read 24 bytes\n", "{tier:?}");
    }
}

#[test]
fn large_writes_arrive_whole() {
    for &tier in TIERS {
        let o = run(tier, "guest", &["big", "3000000"], b"", None);
        assert_eq!(o.code, Some(0), "{tier:?}");
        assert_eq!(o.stdout.len(), 3_000_000, "{tier:?}");
        assert!(o.stdout.bytes().all(|b| b == b'x'), "{tier:?}");
    }
}

#[test]
fn args_and_env_are_exactly_what_was_granted() {
    for &tier in TIERS {
        let o = run(tier, "guest", &["args", "one", "two words", "--flag"], b"", None);
        assert_eq!(o.stdout, "guest\nargs\none\ntwo words\n--flag\n", "{tier:?}");
        let o = run(tier, "guest", &["env"], b"", None);
        assert_eq!(o.stdout, "GREETING=hello\n", "{tier:?}");
    }
}

#[test]
fn exit_codes_and_panics() {
    for &tier in TIERS {
        assert_eq!(run(tier, "guest", &["exit", "0"], b"", None).code, Some(0), "{tier:?}");
        assert_eq!(run(tier, "guest", &["exit", "42"], b"", None).code, Some(42), "{tier:?}");
        let o = run(tier, "guest", &["panic"], b"", None);
        assert_eq!(o.trap, Some(TrapKind::Unreachable), "{tier:?}");
        assert!(o.stderr.contains("the guest panicked on purpose"), "{tier:?}: {}", o.stderr);
    }
}

#[test]
fn clocks_random_and_sleep() {
    for &tier in TIERS {
        let o = run(tier, "guest", &["clocks"], b"", None);
        assert_eq!(o.stdout, "realtime ok, monotonic ok (4999950000)\n", "{tier:?}");
        assert_eq!(run(tier, "guest", &["random"], b"", None).stdout, "random ok\n", "{tier:?}");
        let t = std::time::Instant::now();
        let o = run(tier, "guest", &["sleep", "60"], b"", None);
        assert!(t.elapsed().as_millis() >= 60, "{tier:?}");
        assert!(o.stdout.starts_with("slept "), "{tier:?}: {}", o.stdout);
        let ms: u64 = o.stdout.trim().trim_start_matches("slept ").trim_end_matches(" ms").parse().unwrap();
        assert!(ms >= 60, "{tier:?}: {ms}");
    }
}

#[test]
fn files_in_a_preopened_directory() {
    for &tier in TIERS {
        let root = sandbox("files", tier);
        let o = run(tier, "guest", &["files", "/sb"], b"", Some(&root.join("sandbox")));
        assert_eq!((o.code, o.stdout.as_str()), (Some(0), "files ok\n"), "{tier:?}: {}", o.stderr);
        assert_eq!(std::fs::read_dir(root.join("sandbox")).unwrap().count(), 0, "{tier:?}");
    }
}

#[test]
fn directories_and_readdir() {
    for &tier in TIERS {
        let root = sandbox("dirs", tier);
        let o = run(tier, "guest", &["dirs", "/sb"], b"", Some(&root.join("sandbox")));
        assert_eq!((o.code, o.stdout.as_str()), (Some(0), "dirs ok\n"), "{tier:?}: {}", o.stderr);
        assert_eq!(std::fs::read_dir(root.join("sandbox/many")).unwrap().count(), 300, "{tier:?}");
    }
}

#[test]
fn symlinks_and_hard_links_inside_the_sandbox() {
    for &tier in TIERS {
        let root = sandbox("links", tier);
        let o = run(tier, "guest", &["symlinks", "/sb"], b"", Some(&root.join("sandbox")));
        assert_eq!((o.code, o.stdout.as_str()), (Some(0), "symlinks ok\n"), "{tier:?}: {}", o.stderr);
    }
}

#[test]
fn no_escape_from_a_preopen() {
    for &tier in TIERS {
        let root = sandbox("escape", tier);
        let o = run(tier, "guest", &["escape", "/sb"], b"", Some(&root.join("sandbox")));
        assert_eq!(o.code, Some(0), "{tier:?}: {}", o.stderr);
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(lines.len(), 12, "{tier:?}: {}", o.stdout);
        for line in &lines {
            assert!(line.contains(": denied"), "{tier:?}: escape route open: {line}");
        }
        // Nothing outside the sandbox was read, changed or created.
        assert_eq!(std::fs::read_to_string(root.join("secret.txt")).unwrap(), "TOP SECRET");
        let mut outside: Vec<String> =
            std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        outside.sort();
        assert_eq!(outside, ["sandbox", "secret.txt"], "{tier:?}");
        // Without any preopen, there is no file system at all.
        let o = run(tier, "guest", &["escape", "/sb"], b"", None);
        assert!(o.stdout.lines().all(|l| l.contains(": denied")), "{tier:?}: {}", o.stdout);
    }
}

#[test]
fn bad_descriptors_are_ebadf() {
    for &tier in TIERS {
        let o = run(tier, "guest", &["badptr"], b"", None);
        assert_eq!(o.stdout, "badf 8\nraise 58\n", "{tier:?}");
    }
}

#[test]
fn rights_follow_the_open_mode_and_do_not_change() {
    for &tier in TIERS {
        let root = sandbox("rights", tier);
        let o = run(tier, "guest", &["rights", "/sb"], b"", Some(&root.join("sandbox")));
        assert_eq!(o.stdout, "write-on-readonly 8 set-rights 58 read-after 0\n", "{tier:?}: {}", o.stderr);
    }
}

#[test]
fn a_read_only_preopen_refuses_every_change() {
    for &tier in TIERS {
        a_read_only_preopen_refuses_every_change_on(tier);
    }
}

fn a_read_only_preopen_refuses_every_change_on(tier: Strategy) {
    let root = sandbox("read-only", tier);
    let dir = root.join("sandbox");
    std::fs::write(dir.join("r.txt"), "abc").unwrap();
    std::fs::create_dir_all(dir.join("d")).unwrap();
    let before = std::fs::metadata(dir.join("r.txt")).unwrap().modified().unwrap();
    let module = module("guest", tier, false);
    let engine = module.engine().clone();
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    carnac_wasi::add_to_linker(&mut linker, |c| c).unwrap();
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let ctx = WasiCtx::builder()
        .args(["guest", "read-only", "/sb"])
        .stdout(Stream::Writer(Box::new(SharedBuf(out.clone()))))
        .preopened_dir_with(&dir, "/sb", true)
        .unwrap()
        .build();
    let mut store = Store::new(&engine, ctx);
    let instance = linker.instantiate(&mut store, &module).unwrap();
    instance.get_typed_func::<(), ()>(&store, "_start").unwrap().call(&mut store, ()).unwrap();
    let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text,
        "read abc | create 63, write 63, truncate 63, mkdir 63, rmdir 63, unlink 63, rename 63, symlink 63, \
         link 63, set-times 63\n",
        "{tier:?}"
    );
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["d", "r.txt"]);
    assert_eq!(std::fs::read_to_string(dir.join("r.txt")).unwrap(), "abc");
    assert_eq!(std::fs::metadata(dir.join("r.txt")).unwrap().modified().unwrap(), before);
}

/// A `Write` into a buffer the test keeps.
struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn realistic_program_runs_and_agrees_with_itself_under_fuel_and_across_tiers() {
    let mut outputs = Vec::new();
    for &tier in TIERS {
        let root = sandbox("realistic", tier);
        let dir = root.join("sandbox");
        let plain = run(tier, "realistic", &["/sb", "50000"], b"", Some(&dir));
        assert_eq!(plain.code, Some(0), "{tier:?}: {}", plain.stderr);
        assert!(plain.stdout.starts_with("words=50000 distinct="), "{tier:?}: {}", plain.stdout);
        let fueled = run_full(&module("realistic", tier, true), "realistic", &["/sb", "50000"], b"", Some(&dir), None);
        assert_eq!(fueled.stdout, plain.stdout, "{tier:?}");
        outputs.push(plain.stdout);
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "the tiers disagree: {outputs:?}");
}

#[test]
fn preopened_socket_accepts_receives_and_sends() {
    for &tier in TIERS {
        preopened_socket_accepts_receives_and_sends_on(tier);
    }
}

fn preopened_socket_accepts_receives_and_sends_on(tier: Strategy) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"ping over wasi\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        reply
    });
    // No preopened directory, so the socket is descriptor 3.
    let o = run_full(&module("guest", tier, false), "guest", &["serve", "3"], b"", None, Some(listener));
    assert_eq!(o.stdout, "served ping over wasi\n", "{tier:?}: {}", o.stderr);
    assert_eq!(client.join().unwrap(), "PING OVER WASI\n", "{tier:?}");
    // Socket calls on a non-socket are ENOTSOCK, not a crash.
    let o = run(tier, "guest", &["badptr"], b"", None);
    assert!(o.stdout.contains("badf 8"), "{tier:?}");
}

#[test]
fn poll_oneoff_reports_ready_input_before_the_clock() {
    for &tier in TIERS {
        let o = run(tier, "guest", &["poll"], b"input", None);
        assert_eq!(o.stdout, "poll errno 0 events 1 first 2 type 1 fast true\n", "{tier:?}: {}", o.stderr);
    }
}

#[test]
fn memory_pipes_feed_stdin_and_collect_stdout_and_stderr() {
    for &tier in TIERS {
        memory_pipes_feed_stdin_and_collect_stdout_and_stderr_on(tier);
    }
}

fn memory_pipes_feed_stdin_and_collect_stdout_and_stderr_on(tier: Strategy) {
    use carnac_wasi::pipe::{MemoryInputPipe, MemoryOutputPipe};
    let module = module("guest", tier, false);
    let engine = module.engine().clone();
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    carnac_wasi::add_to_linker(&mut linker, |c| c).unwrap();
    let run = |args: &[&str], stdin: &str, capacity: usize| {
        let (stdout, stderr) = (MemoryOutputPipe::new(capacity), MemoryOutputPipe::new(capacity));
        let ctx = WasiCtx::builder()
            .args(args.iter().copied())
            .stdin(MemoryInputPipe::new(stdin))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        let mut store = Store::new(&engine, ctx);
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let result = instance.get_typed_func::<(), ()>(&store, "_start").unwrap().call(&mut store, ());
        // The streams can be taken back from the context after the call.
        assert!(store.data_mut().take_stdout().is_some());
        assert!(store.data_mut().take_stdout().is_none());
        (result, stdout.contents(), String::from_utf8(stderr.contents()).unwrap())
    };
    let (result, out, err) = run(&["guest", "stdio"], "hello pipes", 1 << 20);
    assert!(result.is_ok(), "{tier:?}: {err}");
    assert_eq!(out, b"HELLO PIPES", "{tier:?}");
    assert_eq!(err, "read 11 bytes\n", "{tier:?}");
    // A pipe holds at most its capacity: the guest's write past it fails.
    let (result, out, _) = run(&["guest", "big", "100000"], "", 1000);
    assert!(result.is_err(), "{tier:?}");
    assert_eq!(out.len(), 1000, "{tier:?}");
}
