//! The embedding API with the compiled tier (`Strategy::Cranelift`): host
//! functions that panic or fail under compiled frames, re-entry, stack
//! exhaustion, interrupts and epoch deadlines, fuel, memory growth seen from
//! both sides, imports across instances, and out-of-bounds accesses at the
//! edges of memory. Each test runs the same program under every tier
//! ([`TIERS`]) and checks both the behaviour and that the tiers agree.

use std::panic::{catch_unwind, AssertUnwindSafe};

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
