//! The embedding API with the compiled tier (`Strategy::Cranelift`): host
//! functions that panic or fail under compiled frames, re-entry, stack
//! exhaustion, interrupts and epoch deadlines, fuel, memory growth seen from
//! both sides, imports across instances, and out-of-bounds accesses at the
//! edges of memory. Each test runs the same program under every tier
//! ([`TIERS`]) and checks both the behaviour and that the tiers agree.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carnac::*;

/// The tiers under test: the compiled one where it is built (`cfg
/// carnac_compiled`, set by crates/carnac/build.rs).
const TIERS: &[Strategy] =
    if cfg!(carnac_compiled) { &[Strategy::Interpreter, Strategy::Cranelift] } else { &[Strategy::Interpreter] };

fn config(tier: Strategy) -> Config {
    let mut config = Config::new();
    config.strategy(tier);
    config
}

fn kind(err: &Error) -> TrapKind {
    err.as_trap().unwrap_or_else(|| panic!("not a trap: {err}")).kind()
}

/// The message of a caught panic.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<String>(), payload.downcast_ref::<&str>()) {
        (Some(s), _) => s.clone(),
        (_, Some(s)) => s.to_string(),
        _ => "<not a string>".into(),
    }
}

/// `run(x)` = `inner(x) + 1`, where `inner` calls the host's `f`.
const CALLS_HOST: &str = r#"(module $m
    (import "host" "f" (func $f (param i32) (result i32)))
    (func $inner (export "inner") (param i32) (result i32) (call $f (local.get 0)))
    (func $run (export "run") (param i32) (result i32) (i32.add (call $inner (local.get 0)) (i32.const 1)))
    (func $recurse (export "recurse") (param i32) (result i32)
        (i32.add (call $recurse (i32.add (local.get 0) (i32.const 1))) (i32.const 1))))"#;

fn calls_host<Params, Results>(tier: Strategy, f: impl IntoFunc<(), Params, Results>) -> (Store<()>, Instance) {
    let engine = Engine::new(&config(tier));
    let module = Module::new(&engine, CALLS_HOST).unwrap();
    let mut linker = Linker::new(&engine);
    linker.func_wrap("host", "f", f).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    (store, instance)
}

#[test]
fn a_host_panic_reaches_the_caller_and_the_store_keeps_working() {
    for &tier in TIERS {
        let (mut store, instance) = calls_host(tier, |x: i32| {
            if x == 0 {
                panic!("host panic under {x} wasm frames");
            }
            x * 2
        });
        let run = instance.get_typed_func::<i32, i32>(&store, "run").unwrap();
        let recurse = instance.get_typed_func::<i32, i32>(&store, "recurse").unwrap();
        for _ in 0..3 {
            let payload = catch_unwind(AssertUnwindSafe(|| run.call(&mut store, 0))).unwrap_err();
            assert_eq!(panic_text(&*payload), "host panic under 0 wasm frames", "{tier:?}");
            assert_eq!(run.call(&mut store, 5).unwrap(), 11, "{tier:?}");
        }
        // The store is not left half inside a call: on another thread (another
        // stack), it runs, and its stack limit is that thread's.
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(run.call(&mut store, 7).unwrap(), 15, "{tier:?}");
                let err = recurse.call(&mut store, 0).unwrap_err();
                assert_eq!(kind(&err), TrapKind::StackExhausted, "{tier:?}");
                assert_eq!(run.call(&mut store, 8).unwrap(), 17, "{tier:?}");
            });
        });
    }
}

/// `down(n)`: `100 / divisor` when `n` is 0, else `back(n - 1) + 1`, where the
/// host's `back` calls `down` again: host → wasm → host → wasm ... `n` deep.
const REENTRY: &str = r#"(module $r
    (import "host" "back" (func $back (param i32) (result i32)))
    (global $divisor (export "divisor") (mut i32) (i32.const 1))
    (memory (export "memory") 1)
    (func $down (export "down") (param i32) (result i32)
        (if (i32.eqz (local.get 0))
            (then (return (i32.div_s (i32.const 100) (global.get $divisor)))))
        ;; Leaves a mark in memory before the nested call, and reads it after.
        (i32.store8 (i32.and (local.get 0) (i32.const 0xffff)) (i32.const 1))
        (i32.add (call $back (i32.sub (local.get 0) (i32.const 1)))
                 (i32.load8_u (i32.and (local.get 0) (i32.const 0xffff))))))"#;

/// `spin` loops forever counting in `$n`; `answer` returns 42.
const SPIN: &str = r#"(module
    (global $n (export "n") (mut i64) (i64.const 0))
    (func (export "spin")
        (loop $l
            (global.set $n (i64.add (global.get $n) (i64.const 1)))
            (br $l)))
    (func (export "answer") (result i32) (i32.const 42)))"#;

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

#[test]
fn a_panic_in_the_deadline_callback_or_a_nested_host_call_leaves_the_store_usable() {
    for &tier in TIERS {
        // Nested: the innermost host call panics, three host frames down.
        let mut config = config(tier);
        config.epoch_interruption(true);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, REENTRY).unwrap();
        let mut linker: Linker<Arc<Mutex<i32>>> = Linker::new(&engine);
        linker
            .func_wrap("host", "back", |mut caller: Caller<'_, Arc<Mutex<i32>>>, n: i32| -> anyhow::Result<i32> {
                if n == *caller.data().lock().unwrap() {
                    panic!("host panic at level {n}");
                }
                let down = caller.get_export("down").and_then(Extern::into_func).unwrap();
                Ok(down.typed::<i32, i32>(&caller)?.call(&mut caller, n)?)
            })
            .unwrap();
        let panic_at = Arc::new(Mutex::new(2));
        let mut store = Store::new(&engine, panic_at.clone());
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let down = instance.get_typed_func::<i32, i32>(&store, "down").unwrap();
        let payload = catch_unwind(AssertUnwindSafe(|| down.call(&mut store, 5))).unwrap_err();
        assert_eq!(panic_text(&*payload), "host panic at level 2", "{tier:?}");
        *panic_at.lock().unwrap() = -1;
        assert_eq!(down.call(&mut store, 5).unwrap(), 105, "{tier:?}");

        // The deadline callback panics while a loop runs.
        let module = Module::new(&engine, SPIN).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        let spin = instance.get_typed_func::<(), ()>(&store, "spin").unwrap();
        let answer = instance.get_typed_func::<(), i32>(&store, "answer").unwrap();
        let mut calls = 0;
        store.epoch_deadline_callback(move |_| {
            calls += 1;
            match calls {
                1 => panic!("callback panic"),
                _ => Err(Trap::host(format!("callback call {calls}")).into()),
            }
        });
        store.set_epoch_deadline(1);
        let ticker = Ticker::start(&engine);
        let payload = catch_unwind(AssertUnwindSafe(|| spin.call(&mut store, ()))).unwrap_err();
        assert_eq!(panic_text(&*payload), "callback panic", "{tier:?}");
        // The callback is still the store's: it decides at the next deadline.
        store.set_epoch_deadline(1);
        let err = spin.call(&mut store, ()).unwrap_err();
        drop(ticker);
        assert_eq!(err.as_trap().unwrap().message(), "callback call 2", "{tier:?}");
        store.set_epoch_deadline(1_000_000);
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(answer.call(&mut store, ()).unwrap(), 42, "{tier:?}"));
        });
    }
}
