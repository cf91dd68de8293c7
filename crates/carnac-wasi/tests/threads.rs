//! wasi-threads end to end: Rust programs built for `wasm32-wasip1-threads`
//! (our own sources in tests/threads-guests: `std::thread`, a Mutex, atomics,
//! channels, a Condvar, `thread::park`) run through the library API under each
//! tier, with their output compared to the native build's; a thread's
//! `proc_exit` and trap end the program; the thread limit, a program-wide
//! interrupt with threads spinning and blocked, and fuel.

mod guests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carnac::{Config, Engine, Error, Linker, Module, Store, Strategy, TrapKind};
use carnac_wasi::threads::{ThreadGroup, ThreadsConfig};
use carnac_wasi::{I32Exit, Stream, WasiCtx};
use guests::Capture;

/// The tiers every program runs under: the compiled tier where it is built, and
/// the default (automatic tiering).
const TIERS: &[Strategy] = if cfg!(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))) {
    &[Strategy::Interpreter, Strategy::Cranelift, Strategy::Auto]
} else {
    &[Strategy::Interpreter]
};

/// Threaded guest `program` compiled once per test binary for `tier` (with fuel
/// metering when `fuel`), in an interruptible engine.
fn module(program: &str, tier: Strategy, fuel: bool) -> Module {
    guests::cached_module(program, tier, fuel, || {
        let mut config = Config::new();
        config.strategy(tier).consume_fuel(fuel).interruptible(true).wasm_threads(true);
        Module::from_file(&Engine::new(&config), guests::threads_guest(program)).unwrap()
    })
}

struct Outcome {
    /// The exit status: `proc_exit`'s code, 0 on return from `_start`.
    code: Option<i32>,
    trap: Option<TrapKind>,
    stdout: String,
    /// Spawned threads still alive after the program's end.
    live: usize,
    elapsed: Duration,
}

/// Runs `program args...` as a wasi-threads program; `setup` adjusts the thread
/// settings, `fuel` gives the main store a budget, `interrupt_after` interrupts
/// the whole program (every thread) after that long.
fn run_with(
    module: &Module,
    program: &str,
    args: &[&str],
    setup: impl FnOnce(&mut ThreadsConfig<WasiCtx>),
    fuel: Option<u64>,
    interrupt_after: Option<Duration>,
) -> Outcome {
    let engine = module.engine().clone();
    let out = Capture::default();
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    carnac_wasi::add_to_linker(&mut linker, |c| c).unwrap();
    carnac_wasi::threads::add_to_linker(&mut linker, |c| c).unwrap();
    let memories = carnac_wasi::threads::define_shared_memories(&mut linker, module).unwrap();
    assert_eq!(memories.len(), 1, "a wasip1-threads program imports one shared memory");
    let mut config = ThreadsConfig::new();
    setup(&mut config);
    let group = ThreadGroup::new(config, module, &linker, |c: &mut WasiCtx| c.share());
    let mut ctx = WasiCtx::builder()
        .arg(program)
        .args(args.iter().copied())
        .stdout(Stream::Writer(Box::new(out.clone())))
        .stderr(Stream::Writer(Box::new(std::io::sink())))
        .build();
    group.attach(&mut ctx);
    let mut store = Store::new(&engine, ctx);
    if let Some(f) = fuel {
        store.set_fuel(f).unwrap();
    }
    group.add_main(&store);
    if let Some(after) = interrupt_after {
        let g = group.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            g.interrupt();
        });
    }
    let started = Instant::now();
    let instance = linker.instantiate(&mut store, module).unwrap();
    let start = instance.get_typed_func::<(), ()>(&store, "_start").unwrap();
    let result = group.finish(start.call(&mut store, ()));
    let elapsed = started.elapsed();
    let (code, trap) = match result {
        Ok(()) => (Some(0), None),
        Err(Error::Trap(t)) => match t.downcast_host::<I32Exit>() {
            Some(e) => (Some(e.0), None),
            None => (None, Some(t.kind())),
        },
        Err(e) => panic!("unexpected error: {e}"),
    };
    Outcome { code, trap, stdout: out.text(), live: group.live_threads(), elapsed }
}

fn run(tier: Strategy, program: &str, args: &[&str]) -> Outcome {
    run_with(&module(program, tier, false), program, args, |_| {}, None, None)
}

#[test]
fn threads_mutex_atomics_channels_condvar_park_match_native() {
    let native = std::process::Command::new(guests::native_threads_guest("threads")).arg("4").output().unwrap();
    assert!(native.status.success());
    let expected = String::from_utf8(native.stdout).unwrap();
    assert!(expected.contains("condvar handed 20 items"), "native output: {expected}");
    for &tier in TIERS {
        let o = run(tier, "threads", &["4"]);
        assert_eq!((o.code, o.trap), (Some(0), None), "{tier:?}: {}", o.stdout);
        assert_eq!(o.stdout, expected, "{tier:?}");
        assert_eq!(o.live, 0, "{tier:?}: every thread joined");
    }
}

#[test]
fn proc_exit_in_a_thread_ends_the_program_with_its_status() {
    for &tier in TIERS {
        let o = run(tier, "exit3", &[]);
        assert_eq!((o.code, o.trap), (Some(3), None), "{tier:?}");
        assert_eq!(o.stdout, "started\n", "{tier:?}");
        // A spinning thread and a sleeping one were stopped, and promptly.
        assert_eq!(o.live, 0, "{tier:?}");
        assert!(o.elapsed < Duration::from_secs(10), "{tier:?}: took {:?}", o.elapsed);
    }
}

#[test]
fn a_trap_in_a_thread_ends_the_program_with_the_trap() {
    for &tier in TIERS {
        let o = run(tier, "trap", &[]);
        assert_eq!((o.code, o.trap), (None, Some(TrapKind::Unreachable)), "{tier:?}");
        assert_eq!(o.stdout, "started\n", "{tier:?}");
        assert_eq!(o.live, 0, "{tier:?}");
        assert!(o.elapsed < Duration::from_secs(10), "{tier:?}: took {:?}", o.elapsed);
    }
}

#[test]
fn past_the_thread_limit_spawning_fails_with_eagain_reported_once() {
    let tier = Strategy::Interpreter;
    let reported = Arc::new(AtomicUsize::new(0));
    let r = reported.clone();
    let o = run_with(
        &module("spawn_many", tier, false),
        "spawn_many",
        &["10"],
        move |c| {
            c.max_threads(4).on_limit(move |n| {
                assert_eq!(n, 4);
                r.fetch_add(1, Ordering::SeqCst);
            });
        },
        None,
        None,
    );
    assert_eq!((o.code, o.trap), (Some(0), None), "{}", o.stdout);
    // Rust's std reports pthread_create's EAGAIN as WouldBlock.
    assert_eq!(o.stdout, "started 4\nspawn 4 failed: operation would block\njoined\n");
    assert_eq!(reported.load(Ordering::SeqCst), 1);
    // A thread whose store cannot be set up is not started either: EAGAIN,
    // and the host hears why.
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e2 = errors.clone();
    let o = run_with(
        &module("spawn_many", tier, false),
        "spawn_many",
        &["3"],
        move |c| {
            c.configure_store(|_| Err(Error::Usage("no room".into())))
                .on_spawn_error(move |e| e2.lock().unwrap().push(e.to_string()));
        },
        None,
        None,
    );
    assert_eq!(o.stdout, "started 0\nspawn 0 failed: operation would block\njoined\n");
    let errors = errors.lock().unwrap();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("configuring the thread's store") && errors[0].contains("no room"), "{errors:?}");
    // Under the limit nothing fails.
    let o = run_with(
        &module("spawn_many", tier, false),
        "spawn_many",
        &["10"],
        |c| {
            c.max_threads(10);
        },
        None,
        None,
    );
    assert_eq!(o.stdout, "started 10\njoined\n");
}

#[test]
fn an_interrupt_stops_spinning_and_blocked_threads_promptly() {
    for &tier in TIERS {
        let o = run_with(&module("hang", tier, false), "hang", &[], |_| {}, None, Some(Duration::from_millis(300)));
        assert_eq!((o.code, o.trap), (None, Some(TrapKind::Interrupted)), "{tier:?}");
        assert_eq!(o.stdout, "started\n", "{tier:?}");
        assert_eq!(o.live, 0, "{tier:?}: every thread stopped");
        assert!(o.elapsed < Duration::from_secs(5), "{tier:?}: took {:?}", o.elapsed);
    }
}

#[test]
fn fuel_is_split_between_threads_and_bounds_the_program() {
    for &tier in TIERS {
        let m = module("parallel", tier, true);
        // Plenty: the program finishes with the same answer as unmetered.
        let plenty = run_with(&m, "parallel", &["2", "1"], |_| {}, Some(1_000_000_000), None);
        let free = run(tier, "parallel", &["2", "1"]);
        assert_eq!((plenty.code, plenty.trap), (Some(0), None), "{tier:?}");
        assert_eq!(plenty.stdout, free.stdout);
        // Too little: a thread runs out, and the program ends with that trap.
        let short = run_with(&m, "parallel", &["2", "1"], |_| {}, Some(2_000_000), None);
        assert_eq!((short.code, short.trap), (None, Some(TrapKind::OutOfFuel)), "{tier:?}");
        assert_eq!(short.live, 0);
    }
}

#[test]
fn thread_spawn_is_read_from_the_import_section() {
    let threaded = std::fs::read(guests::threads_guest("threads")).unwrap();
    assert_eq!(carnac_wasi::threads::binary_imports_thread_spawn(&threaded), Some(true));
    let plain = std::fs::read(guests::guest("guest")).unwrap();
    assert_eq!(carnac_wasi::threads::binary_imports_thread_spawn(&plain), Some(false));
    assert_eq!(carnac_wasi::threads::binary_imports_thread_spawn(b"(module)"), None);
    // A truncated import section is not guessed at.
    assert_eq!(carnac_wasi::threads::binary_imports_thread_spawn(&threaded[..40]), None);
}

/// Reads what the test sends, blocking until it does (stdin of a program whose
/// input arrives late).
struct LateInput(std::sync::mpsc::Receiver<Vec<u8>>);

impl std::io::Read for LateInput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let bytes = self.0.recv().unwrap_or_default();
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }
}

/// `read` reads stdin into 100.. and returns the byte count; `write` writes
/// "x" to `fd` and returns the errno; `close` closes `fd`.
const STDIO: &str = r#"(module
    (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 200) "x")
    (func (export "read") (result i32)
        (i32.store (i32.const 0) (i32.const 100))
        (i32.store (i32.const 4) (i32.const 50))
        (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (i32.load (i32.const 8)))
    (func (export "write") (param $fd i32) (result i32)
        (i32.store (i32.const 16) (i32.const 200))
        (i32.store (i32.const 20) (i32.const 1))
        (call $write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24)))
    (func (export "close") (param $fd i32) (result i32) (call $close (local.get $fd))))"#;

#[test]
fn stores_of_a_program_share_descriptors_and_a_blocked_read_stalls_no_write() {
    let engine = Engine::default();
    let module = Module::new(&engine, STDIO).unwrap();
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    carnac_wasi::add_to_linker(&mut linker, |c| c).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = Capture::default();
    let mut ctx = WasiCtx::builder()
        .stdin(Stream::Reader(Box::new(LateInput(rx))))
        .stdout(Stream::Writer(Box::new(out.clone())))
        .stderr(Stream::Writer(Box::new(std::io::sink())))
        .build();
    let other = ctx.share();
    let reader = {
        let (engine, module, linker) = (engine.clone(), module.clone(), linker.clone());
        std::thread::spawn(move || {
            let mut store = Store::new(&engine, other);
            let i = linker.instantiate(&mut store, &module).unwrap();
            i.get_typed_func::<(), i32>(&store, "read").unwrap().call(&mut store, ()).unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    // The other store is blocked reading stdin: this one's write goes through.
    let mut store = Store::new(&engine, std::mem::replace(&mut ctx, WasiCtx::builder().build()));
    let i = linker.instantiate(&mut store, &module).unwrap();
    let write = i.get_typed_func::<i32, i32>(&store, "write").unwrap();
    let t = Instant::now();
    assert_eq!(write.call(&mut store, 1).unwrap(), 0);
    assert!(t.elapsed() < Duration::from_secs(1), "the write waited for the read: {:?}", t.elapsed());
    assert_eq!(out.text(), "x");
    assert!(!reader.is_finished());
    tx.send(b"hi".to_vec()).unwrap();
    assert_eq!(reader.join().unwrap(), 2);
    // One descriptor table: what one store closes is closed for the other.
    let mut second = Store::new(&engine, store.data_mut().share());
    let j = linker.instantiate(&mut second, &module).unwrap();
    assert_eq!(j.get_typed_func::<i32, i32>(&second, "close").unwrap().call(&mut second, 1).unwrap(), 0);
    assert_eq!(write.call(&mut store, 1).unwrap(), 8, "BADF after the other store closed stdout");
}
