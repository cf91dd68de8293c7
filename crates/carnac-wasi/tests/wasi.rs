//! WASI preview1 end to end: Rust programs compiled for wasm32-wasip1 (our own
//! sources in tests/guests) run on Carnac through the library API, with their
//! standard streams captured.

mod guests;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use carnac::{Config, Engine, Error, Linker, Module, Store, TrapKind};
use carnac_wasi::{I32Exit, Stream, WasiCtx};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

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
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Outcome {
    /// The exit status: `proc_exit`'s code, 0 on return from `_start`.
    code: Option<i32>,
    trap: Option<TrapKind>,
    stdout: String,
    stderr: String,
}

fn run_with(program: &str, args: &[&str], stdin: &[u8], dir: Option<&Path>, config: &Config) -> Outcome {
    run_full(program, args, stdin, dir, None, config)
}

fn run_full(
    program: &str,
    args: &[&str],
    stdin: &[u8],
    dir: Option<&Path>,
    socket: Option<std::net::TcpListener>,
    config: &Config,
) -> Outcome {
    let engine = Engine::new(config);
    let module = Module::from_file(&engine, guests::guest(program)).unwrap();
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
    let instance = linker.instantiate(&mut store, &module).unwrap();
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

fn run(program: &str, args: &[&str], stdin: &[u8], dir: Option<&Path>) -> Outcome {
    run_with(program, args, stdin, dir, &Config::new())
}

fn sandbox(name: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wasi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("sandbox")).unwrap();
    std::fs::write(root.join("secret.txt"), "TOP SECRET").unwrap();
    root
}

#[test]
fn stdio_reads_stdin_to_eof_and_writes() {
    let o = run("guest", &["stdio"], b"hello, wasi\nsecond line\n", None);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_eq!(o.stdout, "HELLO, WASI\nSECOND LINE\n");
    assert_eq!(o.stderr, "read 24 bytes\n");
}

#[test]
fn large_writes_arrive_whole() {
    let o = run("guest", &["big", "3000000"], b"", None);
    assert_eq!(o.code, Some(0));
    assert_eq!(o.stdout.len(), 3_000_000);
    assert!(o.stdout.bytes().all(|b| b == b'x'));
}

#[test]
fn args_and_env_are_exactly_what_was_granted() {
    let o = run("guest", &["args", "one", "two words", "--flag"], b"", None);
    assert_eq!(o.stdout, "guest\nargs\none\ntwo words\n--flag\n");
    let o = run("guest", &["env"], b"", None);
    assert_eq!(o.stdout, "GREETING=hello\n");
}

#[test]
fn exit_codes_and_panics() {
    assert_eq!(run("guest", &["exit", "0"], b"", None).code, Some(0));
    assert_eq!(run("guest", &["exit", "42"], b"", None).code, Some(42));
    let o = run("guest", &["panic"], b"", None);
    assert_eq!(o.trap, Some(TrapKind::Unreachable));
    assert!(o.stderr.contains("the guest panicked on purpose"), "{}", o.stderr);
}

#[test]
fn clocks_random_and_sleep() {
    assert_eq!(run("guest", &["clocks"], b"", None).stdout, "realtime ok, monotonic ok (4999950000)\n");
    assert_eq!(run("guest", &["random"], b"", None).stdout, "random ok\n");
    let t = std::time::Instant::now();
    let o = run("guest", &["sleep", "60"], b"", None);
    assert!(t.elapsed().as_millis() >= 60);
    assert!(o.stdout.starts_with("slept "), "{}", o.stdout);
    let ms: u64 = o.stdout.trim().trim_start_matches("slept ").trim_end_matches(" ms").parse().unwrap();
    assert!(ms >= 60, "{ms}");
}

#[test]
fn files_in_a_preopened_directory() {
    let root = sandbox("files");
    let o = run("guest", &["files", "/sb"], b"", Some(&root.join("sandbox")));
    assert_eq!((o.code, o.stdout.as_str()), (Some(0), "files ok\n"), "{}", o.stderr);
    assert_eq!(std::fs::read_dir(root.join("sandbox")).unwrap().count(), 0);
}

#[test]
fn directories_and_readdir() {
    let root = sandbox("dirs");
    let o = run("guest", &["dirs", "/sb"], b"", Some(&root.join("sandbox")));
    assert_eq!((o.code, o.stdout.as_str()), (Some(0), "dirs ok\n"), "{}", o.stderr);
    assert_eq!(std::fs::read_dir(root.join("sandbox/many")).unwrap().count(), 300);
}

#[test]
fn symlinks_and_hard_links_inside_the_sandbox() {
    let root = sandbox("links");
    let o = run("guest", &["symlinks", "/sb"], b"", Some(&root.join("sandbox")));
    assert_eq!((o.code, o.stdout.as_str()), (Some(0), "symlinks ok\n"), "{}", o.stderr);
}

#[test]
fn no_escape_from_a_preopen() {
    let root = sandbox("escape");
    let o = run("guest", &["escape", "/sb"], b"", Some(&root.join("sandbox")));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 12, "{}", o.stdout);
    for line in &lines {
        assert!(line.contains(": denied"), "escape route open: {line}");
    }
    // Nothing outside the sandbox was read, changed or created.
    assert_eq!(std::fs::read_to_string(root.join("secret.txt")).unwrap(), "TOP SECRET");
    let mut outside: Vec<String> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    outside.sort();
    assert_eq!(outside, ["sandbox", "secret.txt"]);
    // Without any preopen, there is no file system at all.
    let o = run("guest", &["escape", "/sb"], b"", None);
    assert!(o.stdout.lines().all(|l| l.contains(": denied")), "{}", o.stdout);
}

#[test]
fn bad_descriptors_are_ebadf() {
    let o = run("guest", &["badptr"], b"", None);
    assert_eq!(o.stdout, "badf 8\nraise 58\n");
}

#[test]
fn rights_follow_the_open_mode_and_do_not_change() {
    let root = sandbox("rights");
    let o = run("guest", &["rights", "/sb"], b"", Some(&root.join("sandbox")));
    assert_eq!(o.stdout, "write-on-readonly 8 set-rights 58 read-after 0\n", "{}", o.stderr);
}

#[test]
fn a_read_only_preopen_refuses_every_change() {
    let root = sandbox("read-only");
    let dir = root.join("sandbox");
    std::fs::write(dir.join("r.txt"), "abc").unwrap();
    std::fs::create_dir_all(dir.join("d")).unwrap();
    let before = std::fs::metadata(dir.join("r.txt")).unwrap().modified().unwrap();
    let module = Module::from_file(&Engine::default(), guests::guest("guest")).unwrap();
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
         link 63, set-times 63\n"
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
fn realistic_program_runs_and_agrees_with_itself_under_fuel() {
    let root = sandbox("realistic");
    let dir = root.join("sandbox");
    let plain = run("realistic", &["/sb", "50000"], b"", Some(&dir));
    assert_eq!(plain.code, Some(0), "{}", plain.stderr);
    assert!(plain.stdout.starts_with("words=50000 distinct="), "{}", plain.stdout);
    let mut config = Config::new();
    config.consume_fuel(true);
    let fueled = run_with("realistic", &["/sb", "50000"], b"", Some(&dir), &config);
    assert_eq!(fueled.stdout, plain.stdout);
}

#[test]
fn preopened_socket_accepts_receives_and_sends() {
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
    let o = run_full("guest", &["serve", "3"], b"", None, Some(listener), &Config::new());
    assert_eq!(o.stdout, "served ping over wasi\n", "{}", o.stderr);
    assert_eq!(client.join().unwrap(), "PING OVER WASI\n");
    // Socket calls on a non-socket are ENOTSOCK, not a crash.
    let o = run("guest", &["badptr"], b"", None);
    assert!(o.stdout.contains("badf 8"));
}

#[test]
fn poll_oneoff_reports_ready_input_before_the_clock() {
    let o = run("guest", &["poll"], b"input", None);
    assert_eq!(o.stdout, "poll errno 0 events 1 first 2 type 1 fast true\n", "{}", o.stderr);
}

#[test]
fn memory_pipes_feed_stdin_and_collect_stdout_and_stderr() {
    use carnac_wasi::pipe::{MemoryInputPipe, MemoryOutputPipe};
    let module = Module::from_file(&Engine::default(), guests::guest("guest")).unwrap();
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
    assert!(result.is_ok(), "{err}");
    assert_eq!(out, b"HELLO PIPES");
    assert_eq!(err, "read 11 bytes\n");
    // A pipe holds at most its capacity: the guest's write past it fails.
    let (result, out, _) = run(&["guest", "big", "100000"], "", 1000);
    assert!(result.is_err());
    assert_eq!(out.len(), 1000);
}
