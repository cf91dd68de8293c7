//! WASI waits end at the store's interrupt or epoch deadline by themselves
//! (no `WasiCtx::set_interrupt`): a guest asleep in `poll_oneoff` for 60 s is
//! stopped by a ticker thread's epochs or by an interrupt handle. Every test
//! runs under each tier ([`TIERS`]).

mod guests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carnac::{Config, Engine, Error, Linker, Module, Store, Strategy, TrapKind, UpdateDeadline};
use carnac_wasi::WasiCtx;

/// The tiers every test runs under: the compiled tier where it is built
/// (Linux on x86_64 and aarch64, see crates/carnac/build.rs).
const TIERS: &[Strategy] = if cfg!(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))) {
    &[Strategy::Interpreter, Strategy::Cranelift]
} else {
    &[Strategy::Interpreter]
};

/// `wait` sleeps 60 s in one `poll_oneoff` on the monotonic clock and returns
/// its errno; `nap` sleeps the given nanoseconds the same way (its event at 64,
/// the number of events at 128).
const SLEEPER: &str = r#"(module
    (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "wait") (result i32) (call $nap (i64.const 60000000000)))
    (func $nap (export "nap") (param $ns i64) (result i32)
        (i64.store (i32.const 0) (i64.const 7))            ;; userdata
        (i32.store8 (i32.const 8) (i32.const 0))            ;; clock subscription
        (i32.store (i32.const 16) (i32.const 1))            ;; monotonic
        (i64.store (i32.const 24) (local.get $ns))          ;; relative
        (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128))))"#;

/// Increments the engine's epoch every millisecond until dropped.
struct Ticker(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Ticker {
    fn start(engine: &Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, e) = (stop.clone(), engine.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
                e.increment_epoch();
            }
        });
        Ticker(stop, Some(thread))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        self.1.take().unwrap().join().unwrap();
    }
}

fn setup(config: &Config, module: impl FnOnce(&Engine) -> Module) -> (Engine, Store<WasiCtx>, carnac::Instance) {
    let engine = Engine::new(config);
    let module = module(&engine);
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    carnac_wasi::add_to_linker(&mut linker, |c| c).unwrap();
    let mut store = Store::new(&engine, WasiCtx::builder().build());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    (engine, store, instance)
}

fn epochs(tier: Strategy) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true).strategy(tier);
    config
}

fn interruptible(tier: Strategy) -> Config {
    let mut config = Config::new();
    config.interruptible(true).strategy(tier);
    config
}

fn trap_kind(r: Result<impl std::fmt::Debug, Error>) -> TrapKind {
    match r {
        Err(Error::Trap(t)) => t.kind(),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn epoch_deadline_ends_a_60s_poll_oneoff() {
    for &tier in TIERS {
        let (engine, mut store, instance) = setup(&epochs(tier), |e| Module::new(e, SLEEPER).unwrap());
        let wait = instance.get_typed_func::<(), i32>(&store, "wait").unwrap();
        let _ticker = Ticker::start(&engine);
        store.set_epoch_deadline(50);
        let t = Instant::now();
        assert_eq!(trap_kind(wait.call(&mut store, ())), TrapKind::Interrupted, "{tier:?}");
        assert!(t.elapsed() < Duration::from_secs(10), "{tier:?}: the wait lasted {:?}", t.elapsed());
    }
}

#[test]
fn epoch_deadline_ends_a_rust_guest_sleeping_60s() {
    for &tier in TIERS {
        epoch_deadline_ends_a_rust_guest_sleeping_60s_on(tier);
    }
}

fn epoch_deadline_ends_a_rust_guest_sleeping_60s_on(tier: Strategy) {
    let engine = Engine::new(&epochs(tier));
    let module = Module::from_file(&engine, guests::guest("guest")).unwrap();
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    carnac_wasi::add_to_linker(&mut linker, |c| c).unwrap();
    // `guest sleep 60000` sleeps 60 s (std::thread::sleep: one poll_oneoff).
    let mut b = WasiCtx::builder();
    b.arg("guest").args(["sleep", "60000"]);
    let mut store = Store::new(&engine, b.build());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let start = instance.get_typed_func::<(), ()>(&store, "_start").unwrap();
    let _ticker = Ticker::start(&engine);
    store.set_epoch_deadline(50);
    let t = Instant::now();
    assert_eq!(trap_kind(start.call(&mut store, ())), TrapKind::Interrupted, "{tier:?}");
    assert!(t.elapsed() < Duration::from_secs(10), "{tier:?}: the sleep lasted {:?}", t.elapsed());
}

#[test]
fn interrupt_ends_a_60s_poll_oneoff_without_set_interrupt() {
    for &tier in TIERS {
        interrupt_ends_a_60s_poll_oneoff_without_set_interrupt_on(tier);
    }
}

fn interrupt_ends_a_60s_poll_oneoff_without_set_interrupt_on(tier: Strategy) {
    let (_engine, mut store, instance) = setup(&interruptible(tier), |e| Module::new(e, SLEEPER).unwrap());
    let wait = instance.get_typed_func::<(), i32>(&store, "wait").unwrap();
    let handle = store.interrupt_handle().unwrap();
    let timer = interrupt_after(handle.clone(), 50);
    let t = Instant::now();
    assert_eq!(trap_kind(wait.call(&mut store, ())), TrapKind::Interrupted, "{tier:?}");
    assert!(t.elapsed() < Duration::from_secs(10), "{tier:?}: the wait lasted {:?}", t.elapsed());
    timer.join().unwrap();
    // Cleared, the store sleeps again (and is interrupted again).
    store.clear_interrupt();
    let timer = interrupt_after(handle.clone(), 50);
    let t = Instant::now();
    assert_eq!(trap_kind(wait.call(&mut store, ())), TrapKind::Interrupted, "{tier:?}");
    assert!(t.elapsed() >= Duration::from_millis(40), "{tier:?}: cleared, the store waited {:?}", t.elapsed());
    timer.join().unwrap();
}

#[test]
fn deadline_callback_that_grants_time_lets_the_wait_sleep_to_its_end() {
    for &tier in TIERS {
        deadline_callback_that_grants_time_lets_the_wait_sleep_to_its_end_on(tier);
    }
}

fn deadline_callback_that_grants_time_lets_the_wait_sleep_to_its_end_on(tier: Strategy) {
    let (engine, mut store, instance) = setup(&epochs(tier), |e| Module::new(e, SLEEPER).unwrap());
    let nap = instance.get_typed_func::<i64, i32>(&store, "nap").unwrap();
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = calls.clone();
    store.epoch_deadline_callback(move |_| {
        c.fetch_add(1, Ordering::Relaxed);
        Ok(UpdateDeadline::Continue(10))
    });
    let _ticker = Ticker::start(&engine);
    store.set_epoch_deadline(10);
    // A 300 ms sleep with a deadline every 10 ticks (~10 ms): each deadline
    // runs the callback, which grants more time, and the sleep goes on, to
    // its own end (not EINTR at the first deadline).
    let t = Instant::now();
    assert_eq!(nap.call(&mut store, 300_000_000).unwrap(), 0);
    let slept = t.elapsed();
    assert!(slept >= Duration::from_millis(300), "{tier:?}: the sleep ended after {slept:?}");
    assert!(slept < Duration::from_secs(10), "the sleep lasted {slept:?}");
    // The clock fired: one event, with the subscription's userdata.
    let memory = instance.get_memory(&store, "memory").unwrap();
    let data = memory.data(&store);
    assert_eq!(u32::from_le_bytes(data[128..132].try_into().unwrap()), 1);
    assert_eq!(u64::from_le_bytes(data[64..72].try_into().unwrap()), 7);
    assert_eq!(u16::from_le_bytes(data[72..74].try_into().unwrap()), 0, "the event's errno");
    assert!(calls.load(Ordering::Relaxed) >= 2, "the callback ran {} times", calls.load(Ordering::Relaxed));
}

#[test]
fn deadline_callback_is_asked_again_at_each_deadline_of_a_wait_and_may_end_it() {
    for &tier in TIERS {
        deadline_callback_is_asked_again_at_each_deadline_of_a_wait_and_may_end_it_on(tier);
    }
}

fn deadline_callback_is_asked_again_at_each_deadline_of_a_wait_and_may_end_it_on(tier: Strategy) {
    let (engine, mut store, instance) = setup(&epochs(tier), |e| Module::new(e, SLEEPER).unwrap());
    let wait = instance.get_typed_func::<(), i32>(&store, "wait").unwrap();
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = calls.clone();
    store.epoch_deadline_callback(move |_| {
        let n = c.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(if n < 4 { UpdateDeadline::Continue(5) } else { UpdateDeadline::Interrupt })
    });
    let _ticker = Ticker::start(&engine);
    store.set_epoch_deadline(5);
    let t = Instant::now();
    assert_eq!(trap_kind(wait.call(&mut store, ())), TrapKind::Interrupted);
    assert!(t.elapsed() < Duration::from_secs(10), "the wait lasted {:?}", t.elapsed());
    assert_eq!(calls.load(Ordering::Relaxed), 4, "three extensions, then the interrupt");
}

#[test]
fn deadline_callback_that_grants_time_lets_a_rust_guest_sleep() {
    for &tier in TIERS {
        deadline_callback_that_grants_time_lets_a_rust_guest_sleep_on(tier);
    }
}

fn deadline_callback_that_grants_time_lets_a_rust_guest_sleep_on(tier: Strategy) {
    let engine = Engine::new(&epochs(tier));
    let module = Module::from_file(&engine, guests::guest("guest")).unwrap();
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    carnac_wasi::add_to_linker(&mut linker, |c| c).unwrap();
    let out = carnac_wasi::pipe::MemoryOutputPipe::new(1 << 10);
    let mut b = WasiCtx::builder();
    b.arg("guest").args(["sleep", "300"]).stdout(out.clone());
    let mut store = Store::new(&engine, b.build());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let start = instance.get_typed_func::<(), ()>(&store, "_start").unwrap();
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Continue(10)));
    let _ticker = Ticker::start(&engine);
    store.set_epoch_deadline(10);
    start.call(&mut store, ()).unwrap();
    // The guest measured its own sleep: all 300 ms of it.
    let said = String::from_utf8(out.contents()).unwrap();
    let ms: u64 = said.trim().strip_prefix("slept ").and_then(|s| s.strip_suffix(" ms")).unwrap().parse().unwrap();
    assert!(ms >= 300, "{said}");
}

#[test]
fn set_interrupt_still_works() {
    for &tier in TIERS {
        set_interrupt_still_works_on(tier);
    }
}

#[allow(deprecated)]
fn set_interrupt_still_works_on(tier: Strategy) {
    // The old wiring (a handle given to the WasiCtx) keeps working, also for
    // another store's handle, as before.
    let (engine, mut store, instance) = setup(&interruptible(tier), |e| Module::new(e, SLEEPER).unwrap());
    let other = Store::new(&engine, ());
    let handle = other.interrupt_handle().unwrap();
    store.data_mut().set_interrupt(handle.clone());
    let wait = instance.get_typed_func::<(), i32>(&store, "wait").unwrap();
    let timer = interrupt_after(handle, 50);
    let t = Instant::now();
    assert_eq!(trap_kind(wait.call(&mut store, ())), TrapKind::Interrupted, "{tier:?}");
    assert!(t.elapsed() < Duration::from_secs(10), "{tier:?}: the wait lasted {:?}", t.elapsed());
    timer.join().unwrap();
}

#[test]
fn deadline_callback_grants_a_computing_guest_time_then_stops_it() {
    for &tier in TIERS {
        // `guest loop` spins forever in Rust code: only the epoch checks at its
        // loop headers (and calls) stop it.
        let engine = Engine::new(&epochs(tier));
        let module = Module::from_file(&engine, guests::guest("guest")).unwrap();
        let mut linker: Linker<WasiCtx> = Linker::new(&engine);
        carnac_wasi::add_to_linker(&mut linker, |c| c).unwrap();
        let mut b = WasiCtx::builder();
        b.arg("guest").args(["loop"]);
        let mut store = Store::new(&engine, b.build());
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let start = instance.get_typed_func::<(), ()>(&store, "_start").unwrap();
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let c = calls.clone();
        store.epoch_deadline_callback(move |_| match c.fetch_add(1, Ordering::Relaxed) {
            0..=2 => Ok(UpdateDeadline::Continue(5)),
            _ => Err(carnac::Trap::new(TrapKind::Interrupted).into()),
        });
        let _ticker = Ticker::start(&engine);
        store.set_epoch_deadline(5);
        let t = Instant::now();
        assert_eq!(trap_kind(start.call(&mut store, ())), TrapKind::Interrupted, "{tier:?}");
        assert_eq!(calls.load(Ordering::Relaxed), 4, "{tier:?}");
        assert!(t.elapsed() < Duration::from_secs(10), "{tier:?}: the loop ran {:?}", t.elapsed());
    }
}

/// Interrupts through `handle` after `ms` milliseconds, on a thread of its own.
fn interrupt_after(handle: carnac::InterruptHandle, ms: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(ms));
        handle.interrupt();
    })
}
