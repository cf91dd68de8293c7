//! The embedding API with the compiled tier (`Strategy::Cranelift`): host
//! functions that panic or fail under compiled frames, re-entry, stack
//! exhaustion, interrupts and epoch deadlines, fuel, memory growth seen from
//! both sides, imports across instances, and out-of-bounds accesses at the
//! edges of memory. Each test runs the same program under every tier
//! ([`TIERS`]) and checks both the behaviour and that the tiers agree.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// A trap's frames as text (`module!function`), innermost first.
fn frames(err: &Error) -> Vec<String> {
    err.as_trap().unwrap_or_else(|| panic!("not a trap: {err}")).backtrace().iter().map(|f| f.to_string()).collect()
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

/// A host function's own error type, to be found again after the call.
#[derive(Debug, PartialEq)]
struct QuotaExceeded(i32);

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "quota of {} exceeded", self.0)
    }
}
impl std::error::Error for QuotaExceeded {}

#[test]
fn a_host_error_comes_back_through_compiled_frames_as_itself() {
    for &tier in TIERS {
        let (mut store, instance) =
            calls_host(tier, |x: i32| -> Result<i32, Trap> { Err(Trap::host_error(QuotaExceeded(x))) });
        let run = instance.get_typed_func::<i32, i32>(&store, "run").unwrap();
        let err = run.call(&mut store, 3).unwrap_err();
        assert_eq!(kind(&err), TrapKind::HostError, "{tier:?}");
        assert_eq!(err.downcast_ref::<QuotaExceeded>(), Some(&QuotaExceeded(3)), "{tier:?}");
        assert_eq!(err.as_trap().unwrap().message(), "quota of 3 exceeded", "{tier:?}");
        assert_eq!(frames(&err), ["m!inner", "m!run"], "{tier:?}");
        // And the same with `anyhow` and `?`.
        let (mut store, instance) = calls_host(tier, |x: i32| -> anyhow::Result<i32> { Ok(format!("{x}x").parse()?) });
        let run = instance.get_typed_func::<i32, i32>(&store, "run").unwrap();
        let err = run.call(&mut store, 3).unwrap_err();
        assert!(err.downcast_ref::<std::num::ParseIntError>().is_some(), "{tier:?}: {err}");
        assert_eq!(frames(&err), ["m!inner", "m!run"], "{tier:?}");
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

/// Runs `down(n)` under `tier` (with a `max_wasm_stack` of `stack`); returns its result.
fn reenter(tier: Strategy, n: i32, divisor: i32, stack: usize) -> Result<i32, Error> {
    let mut config = config(tier);
    config.max_wasm_stack(stack);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, REENTRY).unwrap();
    let mut linker: Linker<u32> = Linker::new(&engine);
    linker
        .func_wrap("host", "back", |mut caller: Caller<'_, u32>, n: i32| -> anyhow::Result<i32> {
            *caller.data_mut() += 1;
            let down = caller.get_export("down").and_then(Extern::into_func).unwrap();
            Ok(down.typed::<i32, i32>(&caller)?.call(&mut caller, n)?)
        })
        .unwrap();
    let mut store = Store::new(&engine, 0);
    let instance = linker.instantiate(&mut store, &module).unwrap();
    instance.get_global(&store, "divisor").unwrap().set(&mut store, Val::I32(divisor)).unwrap();
    let result = instance.get_typed_func::<i32, i32>(&store, "down").unwrap().call(&mut store, n);
    if result.as_ref().is_err_and(|e| kind(e) == TrapKind::StackExhausted) {
        assert!(*store.data() > 10 && *store.data() < n as u32, "{tier:?}: {} levels", store.data());
    } else {
        assert_eq!(*store.data(), n.max(0) as u32, "{tier:?}: every level entered the host");
    }
    result
}

#[test]
fn host_and_compiled_code_reenter_each_other() {
    let mut outcomes = Vec::new();
    for &tier in TIERS {
        assert_eq!(reenter(tier, 0, 1, 512 << 10).unwrap(), 100, "{tier:?}");
        assert_eq!(reenter(tier, 20, 1, 512 << 10).unwrap(), 120, "{tier:?}");
        // A trap at the innermost level unwinds every level, as itself.
        let err = reenter(tier, 20, 0, 512 << 10).unwrap_err();
        assert_eq!(kind(&err), TrapKind::IntegerDivisionByZero, "{tier:?}");
        assert_eq!(frames(&err), ["r!down"], "{tier:?}: the innermost call's frames");
        // Re-entry past `max_wasm_stack` of host stack traps instead of overflowing it
        // (at a re-entry or, compiled, in a prologue: where depends on frame sizes,
        // so the frames' offsets are not compared).
        let deep = reenter(tier, 1_000_000, 1, 256 << 10).unwrap_err();
        assert_eq!(kind(&deep), TrapKind::StackExhausted, "{tier:?}");
        assert_eq!(frames(&deep), ["r!down"], "{tier:?}");
        outcomes.push((err.to_string(), deep.as_trap().unwrap().message().to_string()));
    }
    assert!(outcomes.windows(2).all(|w| w[0] == w[1]), "the tiers disagree: {outcomes:?}");
}

#[test]
fn deep_recursion_is_stack_exhausted_and_the_store_stays_usable() {
    // `big` keeps 600 values live across its call: large frames, which the
    // prologue's check must account for too.
    let locals: String =
        (0..600).map(|i| format!("(local.set {} (i64.add (local.get 0) (i64.const {i})))", i + 1)).collect();
    let sum: String = (0..600).map(|i| format!("(i64.add (local.get {}))", i + 1)).collect();
    let wat = format!(
        r#"(module $s
        (func $r (export "recurse") (param i32) (result i32)
            (i32.add (call $r (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
        (func $big (export "big") (param i64) (result i64) (local {types})
            {locals}
            (call $big (i64.add (local.get 0) (i64.const 1)))
            {sum})
        (func (export "answer") (result i32) (i32.const 42)))"#,
        types = "i64 ".repeat(600),
    );
    for &tier in TIERS {
        let engine = Engine::new(&config(tier));
        let module = Module::new(&engine, &wat).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        let recurse = instance.get_typed_func::<i32, i32>(&store, "recurse").unwrap();
        let big = instance.get_typed_func::<i64, i64>(&store, "big").unwrap();
        let answer = instance.get_typed_func::<(), i32>(&store, "answer").unwrap();
        for _ in 0..3 {
            let err = recurse.call(&mut store, 0).unwrap_err();
            assert_eq!(kind(&err), TrapKind::StackExhausted, "{tier:?}");
            let trap = err.as_trap().unwrap();
            assert!(trap.backtrace().len() + trap.frames_elided() > 1000, "{tier:?}: {err}");
            assert!(trap.backtrace().iter().all(|f| f.to_string() == "s!r"), "{tier:?}: {err}");
            assert_eq!(answer.call(&mut store, ()).unwrap(), 42, "{tier:?}");
            let err = big.call(&mut store, 0).unwrap_err();
            assert_eq!(kind(&err), TrapKind::StackExhausted, "{tier:?}");
            assert_eq!(answer.call(&mut store, ()).unwrap(), 42, "{tier:?}");
        }
    }
}

/// `spin` loops forever counting in `$n`; `answer` returns 42.
const SPIN: &str = r#"(module
    (global $n (export "n") (mut i64) (i64.const 0))
    (func (export "spin")
        (loop $l
            (global.set $n (i64.add (global.get $n) (i64.const 1)))
            (br $l)))
    (func (export "answer") (result i32) (i32.const 42)))"#;

#[test]
fn an_interrupt_from_another_thread_stops_a_loop_and_can_be_cleared() {
    for &tier in TIERS {
        let mut config = config(tier);
        config.interruptible(true);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, SPIN).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        let spin = instance.get_typed_func::<(), ()>(&store, "spin").unwrap();
        let answer = instance.get_typed_func::<(), i32>(&store, "answer").unwrap();
        let n = instance.get_global(&store, "n").unwrap();
        let handle = store.interrupt_handle().unwrap();
        for round in 1..=2 {
            let h = handle.clone();
            let timer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                h.interrupt();
            });
            let t = Instant::now();
            let err = spin.call(&mut store, ()).unwrap_err();
            assert_eq!(kind(&err), TrapKind::Interrupted, "{tier:?}");
            assert!(t.elapsed() >= Duration::from_millis(40), "{tier:?}: stopped after {:?}", t.elapsed());
            assert!(t.elapsed() < Duration::from_secs(10), "{tier:?}: stopped after {:?}", t.elapsed());
            timer.join().unwrap();
            assert!(n.get(&mut store).i64().unwrap() > 0, "{tier:?}: round {round}: the loop ran");
            // Interrupted, the store refuses to run until cleared.
            assert_eq!(kind(&answer.call(&mut store, ()).unwrap_err()), TrapKind::Interrupted, "{tier:?}");
            store.clear_interrupt();
            assert_eq!(answer.call(&mut store, ()).unwrap(), 42, "{tier:?}");
        }
    }
}

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
fn the_epoch_deadline_callback_lets_a_loop_go_on_then_stops_it() {
    for &tier in TIERS {
        let mut config = config(tier);
        config.epoch_interruption(true);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, SPIN).unwrap();
        // The loop's count at each call of the callback.
        let mut store: Store<Vec<i64>> = Store::new(&engine, Vec::new());
        let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        let spin = instance.get_typed_func::<(), ()>(&store, "spin").unwrap();
        let n = instance.get_global(&store, "n").unwrap();
        store.epoch_deadline_callback(move |store| {
            let count = n.get(&mut *store).i64().unwrap();
            store.data_mut().push(count);
            if store.data().len() <= 3 {
                Ok(UpdateDeadline::Continue(2))
            } else {
                Err(Trap::new(TrapKind::Interrupted).into())
            }
        });
        let ticker = Ticker::start(&engine);
        store.set_epoch_deadline(2);
        let err = spin.call(&mut store, ()).unwrap_err();
        drop(ticker);
        assert_eq!(kind(&err), TrapKind::Interrupted, "{tier:?}");
        let counts = store.data().clone();
        assert_eq!(counts.len(), 4, "{tier:?}: {counts:?}");
        // Between callbacks the loop kept running.
        assert!(counts.windows(2).all(|w| w[0] < w[1]), "{tier:?}: {counts:?}");
        assert!(n.get(&mut store).i64().unwrap() >= counts[3], "{tier:?}");
        // A callback that errs with something else: the caller finds its error.
        store.epoch_deadline_callback(|_| Err(Error::Usage("out of budget".into())));
        let ticker = Ticker::start(&engine);
        store.set_epoch_deadline(2);
        let err = spin.call(&mut store, ()).unwrap_err();
        drop(ticker);
        assert_eq!(kind(&err), TrapKind::HostError, "{tier:?}");
        assert!(err.to_string().contains("out of budget"), "{tier:?}: {err}");
        store.set_epoch_deadline(1_000_000);
        assert_eq!(instance.get_typed_func::<(), i32>(&store, "answer").unwrap().call(&mut store, ()).unwrap(), 42);
    }
}

/// Every kind of control flow the fuel accounting meets: blocks, loops,
/// `br_if`, `br_table`, `if`/`else`, `select`, direct and indirect calls, a
/// host call, memory, `local.tee`. `work(n)` returns a checksum; `$progress`
/// counts steps, so a run stopped by fuel shows where it stopped.
const FUEL: &str = r#"(module
    (import "host" "h" (func $h (param i32) (result i32)))
    (global $progress (export "progress") (mut i32) (i32.const 0))
    (memory 1)
    (table funcref (elem $double $h $triple))
    (type $un (func (param i32) (result i32)))
    (func $double (param i32) (result i32) (i32.shl (local.get 0) (i32.const 1)))
    (func $triple (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3)))
    (func $step (param $i i32) (param $acc i32) (result i32) (local $t i32)
        (global.set $progress (i32.add (global.get $progress) (i32.const 1)))
        (block $b3 (block $b2 (block $b1 (block $b0
            (br_table $b0 $b1 $b2 $b3 (i32.rem_u (local.get $i) (i32.const 4))))
            (local.set $acc (i32.add (local.get $acc) (call $double (local.get $i))))
            (br $b3))
            (local.set $acc (i32.xor (local.get $acc)
                (call_indirect (type $un) (local.get $i) (i32.rem_u (local.get $i) (i32.const 3)))))
            (br $b3))
            (i32.store (i32.and (i32.mul (local.get $i) (i32.const 4)) (i32.const 0xfffc)) (local.get $acc))
            (local.set $acc (i32.add (local.get $acc)
                (i32.load (i32.and (i32.mul (local.get $i) (i32.const 4)) (i32.const 0xfffc)))))
            (br $b3))
        (if (i32.and (local.get $i) (i32.const 8))
            (then (local.set $acc (call $h (local.get $acc))))
            (else (local.set $acc (select (local.tee $t (i32.add (local.get $acc) (i32.const 7)))
                                          (local.get $i) (i32.and (local.get $t) (i32.const 1))))))
        (local.get $acc))
    (func (export "work") (param $n i32) (result i32) (local $i i32) (local $acc i32)
        (block $done
            (loop $l
                (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
                (local.set $acc (call $step (local.get $i) (local.get $acc)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $l)))
        (local.get $acc)))"#;

/// What one fuelled run ends with: its result or trap, the fuel left, and the progress counter.
type FuelOutcome = (Result<i32, TrapKind>, u64, i32);

fn fuel_setup(tier: Strategy) -> (Module, Linker<()>) {
    let mut config = config(tier);
    config.consume_fuel(true);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, FUEL).unwrap();
    let mut linker = Linker::new(&engine);
    linker.func_wrap("host", "h", |x: i32| x.wrapping_mul(5) ^ 0x55).unwrap();
    (module, linker)
}

/// Runs `work(n)` with `fuel` in a fresh store.
fn fuel_run((module, linker): &(Module, Linker<()>), n: i32, fuel: u64) -> FuelOutcome {
    let mut store = Store::new(module.engine(), ());
    let instance = linker.instantiate(&mut store, module).unwrap();
    store.set_fuel(fuel).unwrap();
    let work = instance.get_typed_func::<i32, i32>(&store, "work").unwrap();
    let result = work.call(&mut store, n).map_err(|e| kind(&e));
    let progress = instance.get_global(&store, "progress").unwrap().get(&mut store).i32().unwrap();
    (result, store.get_fuel().unwrap(), progress)
}

#[test]
fn fuel_is_charged_alike_and_runs_out_at_the_same_point() {
    let rigs: Vec<_> = TIERS.iter().map(|&tier| fuel_setup(tier)).collect();
    let budget = 1_000_000;
    let full: Vec<FuelOutcome> = rigs.iter().map(|rig| fuel_run(rig, 40, budget)).collect();
    assert!(full[0].0.is_ok() && full[0].2 == 40, "{full:?}");
    assert!(full.windows(2).all(|w| w[0] == w[1]), "the tiers charge differently: {full:?}");
    let used = budget - full[0].1;
    // Every smaller budget stops every tier at the same step, with nothing left.
    for fuel in 0..=used {
        let outcomes: Vec<FuelOutcome> = rigs.iter().map(|rig| fuel_run(rig, 40, fuel)).collect();
        assert!(outcomes.windows(2).all(|w| w[0] == w[1]), "with {fuel} of {used}: {outcomes:?}");
        let want = if fuel == used { full[0].0 } else { Err(TrapKind::OutOfFuel) };
        assert_eq!((outcomes[0].0, outcomes[0].1), (want, 0), "with {fuel} of {used}");
    }
    // The store keeps its remaining fuel across calls, and a refill lets it go on.
    for rig in &rigs {
        let mut store = Store::new(rig.0.engine(), ());
        let instance = rig.1.instantiate(&mut store, &rig.0).unwrap();
        let work = instance.get_typed_func::<i32, i32>(&store, "work").unwrap();
        store.set_fuel(used * 2 + 10).unwrap();
        assert_eq!(work.call(&mut store, 40).unwrap(), full[0].0.unwrap());
        assert_eq!(store.get_fuel().unwrap(), used + 10);
        assert_eq!(work.call(&mut store, 40).unwrap(), full[0].0.unwrap());
        assert_eq!(store.get_fuel().unwrap(), 10);
        assert_eq!(kind(&work.call(&mut store, 40).unwrap_err()), TrapKind::OutOfFuel);
        store.set_fuel(used).unwrap();
        assert_eq!(work.call(&mut store, 40).unwrap(), full[0].0.unwrap());
    }
}

/// `grow(n)` grows by `n` pages; `load(a)`/`store(a, v)` access `a`;
/// `grow_then_load(a)` asks the host to grow the memory (through `host.grow`),
/// then loads `a`, past the length it started with; `size` is `memory.size`.
const MEMORY: &str = r#"(module
    (import "host" "grow" (func $grow (param i32)))
    (memory (export "memory") 1 10)
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
    (func (export "size") (result i32) (memory.size))
    (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
    (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
    (func (export "grow_then_load") (param i32) (result i32)
        (drop (i32.load (i32.const 0)))
        (call $grow (i32.const 1))
        (i32.add (i32.load (local.get 0)) (i32.mul (memory.size) (i32.const 1000)))))"#;

#[test]
fn memory_growth_and_writes_are_seen_from_both_sides() {
    for &tier in TIERS {
        for signals in [true, false] {
            let mut config = config(tier);
            config.signals_based_traps(signals);
            let engine = Engine::new(&config);
            let module = Module::new(&engine, MEMORY).unwrap();
            let mut linker: Linker<()> = Linker::new(&engine);
            linker
                .func_wrap("host", "grow", |mut caller: Caller<'_, ()>, pages: i32| {
                    let memory = caller.get_export("memory").and_then(Extern::into_memory).unwrap();
                    let old = memory.grow(&mut caller, pages as u64).unwrap();
                    // The new page holds what the wasm code is about to load.
                    memory.write(&mut caller, old as usize * WASM_PAGE + 8, &77i32.to_le_bytes()).unwrap();
                })
                .unwrap();
            let mut store = Store::new(&engine, ());
            let instance = linker.instantiate(&mut store, &module).unwrap();
            let memory = instance.get_memory(&store, "memory").unwrap();
            let grow = instance.get_typed_func::<i32, i32>(&store, "grow").unwrap();
            let size = instance.get_typed_func::<(), i32>(&store, "size").unwrap();
            let load = instance.get_typed_func::<i32, i32>(&store, "load").unwrap();
            let store_fn = instance.get_typed_func::<(i32, i32), ()>(&store, "store").unwrap();
            let at = |pages: i32| pages * WASM_PAGE as i32;
            let what = format!("{tier:?}, signals_based_traps({signals})");

            // Growth in wasm, seen by the host.
            assert_eq!(grow.call(&mut store, 2).unwrap(), 1, "{what}");
            assert_eq!((memory.size(&store), memory.data_size(&store)), (3, 3 * WASM_PAGE), "{what}");
            assert_eq!(grow.call(&mut store, 8).unwrap(), -1, "{what}: past the maximum");
            // Host writes, seen by wasm loads, and wasm stores seen by the host.
            memory.write(&mut store, (at(2) + 4) as usize, &0x1234_5678i32.to_le_bytes()).unwrap();
            assert_eq!(load.call(&mut store, at(2) + 4).unwrap(), 0x1234_5678, "{what}");
            store_fn.call(&mut store, (at(3) - 4, -7)).unwrap();
            assert_eq!(memory.data(&store)[at(3) as usize - 4..], (-7i32).to_le_bytes(), "{what}");
            assert_eq!(kind(&load.call(&mut store, at(3) - 3).unwrap_err()), TrapKind::MemoryOutOfBounds, "{what}");
            // Growth by the host, seen by wasm.
            assert_eq!(memory.grow(&mut store, 1).unwrap(), 3, "{what}");
            assert_eq!(size.call(&mut store, ()).unwrap(), 4, "{what}");
            assert_eq!(load.call(&mut store, at(4) - 4).unwrap(), 0, "{what}");
            // Growth by a host function in the middle of a wasm function.
            let grow_then_load = instance.get_typed_func::<i32, i32>(&store, "grow_then_load").unwrap();
            assert_eq!(grow_then_load.call(&mut store, at(4) + 8).unwrap(), 5077, "{what}");
            assert_eq!(memory.size(&store), 5, "{what}");
        }
    }
}

/// Loads and stores at the very end of a one-page memory, and with a large static offset.
const EDGES: &str = r#"(module
    (memory (export "memory") 1)
    (func (export "load32") (param i32) (result i32) (i32.load (local.get 0)))
    (func (export "load8") (param i32) (result i32) (i32.load8_u (local.get 0)))
    (func (export "load_v128") (param i32) (result i32) (i32x4.extract_lane 0 (v128.load (local.get 0))))
    (func (export "load_far") (param i32) (result i32) (i32.load offset=0xFFFFFFF0 (local.get 0)))
    (func (export "load_far8") (param i32) (result i32) (i32.load8_u offset=0xFFFFFFFF (local.get 0)))
    (func (export "store64") (param i32) (i64.store (local.get 0) (i64.const -1)))
    (func (export "store_far") (param i32) (i32.store offset=0xFFFFFFF0 (local.get 0) (i32.const 1))))"#;

#[test]
fn accesses_past_the_end_of_memory_trap_with_and_without_signals() {
    for &tier in TIERS {
        for signals in [true, false] {
            let what = format!("{tier:?}, signals_based_traps({signals})");
            let mut config = config(tier);
            config.signals_based_traps(signals);
            let engine = Engine::new(&config);
            let module = Module::new(&engine, EDGES).unwrap();
            // A few stores in a row: memories come back from the pool, some of
            // them grown by the store before (their pages must be inaccessible again).
            for round in 0..3 {
                let mut store = Store::new(&engine, ());
                let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
                let memory = instance.get_memory(&store, "memory").unwrap();
                let f = |name: &str| instance.get_typed_func::<i32, i32>(&store, name).unwrap();
                let (load32, load8, load_v128, load_far, load_far8) =
                    (f("load32"), f("load8"), f("load_v128"), f("load_far"), f("load_far8"));
                let store64 = instance.get_typed_func::<i32, ()>(&store, "store64").unwrap();
                let store_far = instance.get_typed_func::<i32, ()>(&store, "store_far").unwrap();
                let oob = TrapKind::MemoryOutOfBounds;
                assert_eq!(load32.call(&mut store, 65532).unwrap(), 0, "{what}");
                assert_eq!(load8.call(&mut store, 65535).unwrap(), 0, "{what}");
                assert_eq!(load_v128.call(&mut store, 65520).unwrap(), 0, "{what}");
                for (name, func, addr) in [
                    ("load32", load32, 65535),
                    ("load32", load32, 65533),
                    ("load32", load32, -1),
                    ("load8", load8, 65536),
                    ("load_v128", load_v128, 65521),
                    ("load_far", load_far, 0),
                    ("load_far", load_far, 16),
                    ("load_far8", load_far8, 0),
                    ("load_far8", load_far8, -1),
                ] {
                    let err = func.call(&mut store, addr).unwrap_err();
                    assert_eq!(kind(&err), oob, "{what}: {name}({addr})");
                    assert_eq!(err.as_trap().unwrap().message(), "out of bounds memory access", "{what}");
                }
                // A store that straddles the end writes nothing.
                memory.write(&mut store, 65528, &[1; 8]).unwrap();
                assert_eq!(kind(&store64.call(&mut store, 65532).unwrap_err()), oob, "{what}");
                assert_eq!(kind(&store_far.call(&mut store, 0).unwrap_err()), oob, "{what}");
                assert_eq!(memory.data(&store)[65528..], [1; 8], "{what}");
                store64.call(&mut store, 65528).unwrap();
                assert_eq!(memory.data(&store)[65528..], [0xff; 8], "{what}");
                // Grown, the same addresses are in bounds (round 0 leaves a grown
                // memory to the pool for the next rounds).
                memory.grow(&mut store, 2).unwrap();
                assert_eq!(load32.call(&mut store, 65535).unwrap(), 0xff, "{what}: round {round}");
                assert_eq!(load8.call(&mut store, 3 * 65536 - 1).unwrap(), 0, "{what}");
                assert_eq!(kind(&load8.call(&mut store, 3 * 65536).unwrap_err()), oob, "{what}");
                memory.write(&mut store, 3 * 65536 - 4, &[9; 4]).unwrap();
            }
        }
    }
}

/// `a` exports a memory, a mutable global, a table and functions (one of them
/// the host's `twice`, also put in the table); `b` imports them all and uses
/// them: direct calls into `a`, `call_indirect` through `a`'s table (to `a`'s
/// code and to the host function), loads and stores in `a`'s memory and global.
const A: &str = r#"(module $a
    (import "host" "twice" (func $twice (param i32) (result i32)))
    (memory (export "mem") 1)
    (global (export "counter") (mut i32) (i32.const 10))
    (table (export "table") 4 funcref)
    (elem (i32.const 0) $add_one $twice $add_one_i64)
    (func $add_one (export "add_one") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
    (func $add_one_i64 (param i64) (result i64) (i64.add (local.get 0) (i64.const 1)))
    (func (export "peek") (param i32) (result i32) (i32.load (local.get 0))))"#;

const B: &str = r#"(module $b
    (import "a" "mem" (memory 1))
    (import "a" "counter" (global $counter (mut i32)))
    (import "a" "table" (table 4 funcref))
    (import "a" "add_one" (func $add_one (param i32) (result i32)))
    (type $un (func (param i32) (result i32)))
    (func (export "direct") (param i32) (result i32) (call $add_one (local.get 0)))
    (func (export "indirect") (param i32 i32) (result i32)
        (call_indirect (type $un) (local.get 0) (local.get 1)))
    (func (export "bump") (result i32)
        (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
        (global.get $counter))
    (func (export "poke") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
    (func (export "table_size") (result i32) (table.size 0))
    (func (export "grow") (result i32) (memory.grow (i32.const 1))))"#;

#[test]
fn compiled_code_uses_another_instances_memory_global_table_and_functions() {
    let mut outcomes = Vec::new();
    for &tier in TIERS {
        let engine = Engine::new(&config(tier));
        let mut linker: Linker<u32> = Linker::new(&engine);
        linker
            .func_wrap("host", "twice", |mut caller: Caller<'_, u32>, x: i32| {
                *caller.data_mut() += 1;
                x * 2
            })
            .unwrap();
        let mut store = Store::new(&engine, 0);
        let a = linker.instantiate(&mut store, &Module::new(&engine, A).unwrap()).unwrap();
        linker.instance(&mut store, "a", a).unwrap();
        let b = linker.instantiate(&mut store, &Module::new(&engine, B).unwrap()).unwrap();
        let f1 = |name: &str| b.get_typed_func::<i32, i32>(&store, name).unwrap();
        let (direct, indirect) = (f1("direct"), b.get_typed_func::<(i32, i32), i32>(&store, "indirect").unwrap());
        let bump = b.get_typed_func::<(), i32>(&store, "bump").unwrap();
        let poke = b.get_typed_func::<(i32, i32), ()>(&store, "poke").unwrap();
        let peek = a.get_typed_func::<i32, i32>(&store, "peek").unwrap();
        let table_size = b.get_typed_func::<(), i32>(&store, "table_size").unwrap();

        assert_eq!(direct.call(&mut store, 41).unwrap(), 42, "{tier:?}");
        assert_eq!(indirect.call(&mut store, (41, 0)).unwrap(), 42, "{tier:?}");
        assert_eq!(indirect.call(&mut store, (21, 1)).unwrap(), 42, "{tier:?}: the host function");
        assert_eq!(*store.data(), 1, "{tier:?}");
        // Type mismatch, null entry, out of the table: each its trap.
        let traps: Vec<(TrapKind, String)> = [(1, 2), (1, 3), (1, 4), (1, -1)]
            .into_iter()
            .map(|args| {
                let err = indirect.call(&mut store, args).unwrap_err();
                (kind(&err), err.as_trap().unwrap().message().to_string())
            })
            .collect();
        assert_eq!(
            traps.iter().map(|t| t.0).collect::<Vec<_>>(),
            [
                TrapKind::BadSignature,
                TrapKind::IndirectCallToNull,
                TrapKind::TableOutOfBounds,
                TrapKind::TableOutOfBounds
            ],
            "{tier:?}"
        );
        // The host fills and grows the shared table; `b` sees it.
        let table = a.get_table(&store, "table").unwrap();
        let host_fn = Func::wrap(&mut store, |x: i32| x - 100);
        table.set(&mut store, 3, Val::FuncRef(Some(host_fn))).unwrap();
        assert_eq!(indirect.call(&mut store, (142, 3)).unwrap(), 42, "{tier:?}");
        table.grow(&mut store, 2, Val::FuncRef(Some(host_fn))).unwrap();
        assert_eq!(table_size.call(&mut store, ()).unwrap(), 6, "{tier:?}");
        assert_eq!(indirect.call(&mut store, (143, 5)).unwrap(), 43, "{tier:?}");
        // The global and the memory are one, whoever writes them.
        let counter = a.get_global(&store, "counter").unwrap();
        assert_eq!(bump.call(&mut store, ()).unwrap(), 11, "{tier:?}");
        counter.set(&mut store, Val::I32(100)).unwrap();
        assert_eq!(bump.call(&mut store, ()).unwrap(), 101, "{tier:?}");
        assert_eq!(counter.get(&mut store).i32(), Some(101), "{tier:?}");
        poke.call(&mut store, (16, 0x0bad_cafe)).unwrap();
        assert_eq!(peek.call(&mut store, 16).unwrap(), 0x0bad_cafe, "{tier:?}");
        let mem = a.get_memory(&store, "mem").unwrap();
        assert_eq!(mem.data(&store)[16..20], 0x0bad_cafei32.to_le_bytes(), "{tier:?}");
        // `b` grows `a`'s memory: `a`'s code and the host see the new page.
        let grow = b.get_typed_func::<(), i32>(&store, "grow").unwrap();
        assert_eq!(grow.call(&mut store, ()).unwrap(), 1, "{tier:?}");
        assert_eq!(mem.size(&store), 2, "{tier:?}");
        poke.call(&mut store, (65536 + 100, 5)).unwrap();
        assert_eq!(peek.call(&mut store, 65536 + 100).unwrap(), 5, "{tier:?}");
        assert_eq!(kind(&peek.call(&mut store, 2 * 65536 - 2).unwrap_err()), TrapKind::MemoryOutOfBounds);
        outcomes.push(traps);
    }
    assert!(outcomes.windows(2).all(|w| w[0] == w[1]), "the tiers disagree: {outcomes:?}");
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

/// `run(n)`: `n` rounds of reading the global, the table and the fuel-metered
/// work around calls to the host, which changes all three (and the fuel) and
/// calls back into wasm (`leaf`) on every third round.
const MID_CALL: &str = r#"(module
    (import "host" "poke" (func $poke (param i32) (result i32)))
    (global $g (export "g") (mut i32) (i32.const 0))
    (table (export "t") 2 funcref)
    (elem (i32.const 0) $one $one)
    (type $v (func (result i32)))
    (func $one (result i32) (i32.const 1))
    (func (export "leaf") (param i32) (result i32) (i32.mul (local.get 0) (global.get $g)))
    (func (export "run") (param $n i32) (result i32) (local $i i32) (local $acc i32)
        (loop $l
            (local.set $acc (i32.add (local.get $acc) (global.get $g)))
            (local.set $acc (i32.add (local.get $acc) (call $poke (local.get $i))))
            ;; The host changed the global and the table's second entry.
            (local.set $acc (i32.add (local.get $acc) (i32.mul (global.get $g) (i32.const 3))))
            (local.set $acc (i32.add (local.get $acc) (call_indirect (type $v) (i32.const 1))))
            (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
        (local.get $acc)))"#;

#[test]
fn host_calls_change_globals_tables_and_fuel_under_running_code() {
    let mut outcomes = Vec::new();
    for &tier in TIERS {
        let mut config = config(tier);
        config.consume_fuel(true);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, MID_CALL).unwrap();
        let mut linker: Linker<Vec<u64>> = Linker::new(&engine);
        linker
            .func_wrap("host", "poke", |mut caller: Caller<'_, Vec<u64>>, i: i32| -> anyhow::Result<i32> {
                // What the host sees of the fuel, and a charge of its own.
                let fuel = caller.get_fuel()?;
                caller.data_mut().push(fuel);
                caller.set_fuel(fuel.saturating_sub(7))?;
                let g = caller.get_export("g").and_then(Extern::into_global).unwrap();
                g.set(&mut caller, Val::I32(i * 10))?;
                let t = caller.get_export("t").and_then(Extern::into_table).unwrap();
                let k = i;
                let f = Func::wrap(&mut caller, move || k + 1000);
                t.set(&mut caller, 1, Val::FuncRef(Some(f)))?;
                if i % 3 == 0 {
                    let leaf = caller.get_export("leaf").and_then(Extern::into_func).unwrap();
                    return Ok(leaf.typed::<i32, i32>(&caller)?.call(&mut caller, i + 1)?);
                }
                Ok(i)
            })
            .unwrap();
        let mut store = Store::new(&engine, Vec::new());
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let run = instance.get_typed_func::<i32, i32>(&store, "run").unwrap();
        store.set_fuel(1_000_000).unwrap();
        let result = run.call(&mut store, 12).unwrap();
        let want: i32 = (0..12)
            .map(|i| {
                let before = if i == 0 { 0 } else { (i - 1) * 10 };
                let poked = if i % 3 == 0 { (i + 1) * i * 10 } else { i };
                before + poked + i * 10 * 3 + i + 1000
            })
            .sum();
        assert_eq!(result, want, "{tier:?}");
        let fuel_left = store.get_fuel().unwrap();
        let seen = store.data().clone();
        assert_eq!(seen.len(), 12, "{tier:?}");
        // Each call sees less fuel than the one before, its own charge included.
        assert!(seen.windows(2).all(|w| w[1] + 7 < w[0]), "{tier:?}: {seen:?}");
        // Out of fuel in the middle: the host's charges count.
        store.set_fuel(seen[0] - seen[5]).unwrap();
        store.data_mut().clear();
        let err = run.call(&mut store, 12).unwrap_err();
        assert_eq!(kind(&err), TrapKind::OutOfFuel, "{tier:?}");
        outcomes.push((result, fuel_left, seen, store.data().len(), store.get_fuel().unwrap()));
    }
    assert!(outcomes.windows(2).all(|w| w[0] == w[1]), "the tiers disagree: {outcomes:?}");
}

/// The parameter types of the signatures below: every value type, four times.
const MIXED: [ValType; 20] = {
    use ValType::{F32, F64, I32, I64, V128};
    [I32, I64, F32, F64, V128, I32, I64, F32, F64, V128, I32, I64, F32, F64, V128, I32, I64, F32, F64, V128]
};

/// What `host.mix` computes from its 20 arguments: (v128, f64 bits, i32, f32 bits, i64).
fn mix(args: &[Val]) -> [Val; 5] {
    let (mut v, mut d, mut i, mut f, mut l) = (0u128, 0u64, 0i32, 0u32, 0i64);
    for (k, a) in args.iter().enumerate() {
        let k = k as u32 + 1;
        match *a {
            Val::I32(x) => i = i.wrapping_mul(31).wrapping_add(x),
            Val::I64(x) => l = l.wrapping_mul(37).wrapping_add(x),
            Val::F32(x) => f ^= x.rotate_left(k),
            Val::F64(x) => d ^= x.rotate_left(k),
            Val::V128(x) => v = v.rotate_left(k) ^ x,
            _ => unreachable!(),
        }
    }
    [Val::V128(v), Val::F64(d), Val::I32(i), Val::F32(f), Val::I64(l)]
}

#[test]
fn many_parameters_and_results_of_every_type_cross_every_boundary() {
    let names = ["i32", "i64", "f32", "f64", "v128"];
    let params: String =
        MIXED.iter().map(|t| format!(" {}", names[MIXED.iter().position(|x| x == t).unwrap() % 5])).collect();
    let gets: String = (0..20).map(|i| format!(" (local.get {i})")).collect();
    let wat = format!(
        r#"(module
        (import "host" "mix" (func $mix (param{params}) (result v128 f64 i32 f32 i64)))
        (type $sig (func (param{params}) (result v128 f64 i32 f32 i64)))
        (table 1 funcref)
        (elem (i32.const 0) $mix)
        (func $fwd (export "fwd") (param{params}) (result v128 f64 i32 f32 i64) (call $mix{gets}))
        (func (export "twice") (param{params}) (result v128 f64 i32 f32 i64) (call $fwd{gets}))
        (func (export "indirect") (param{params}) (result v128 f64 i32 f32 i64)
            (call_indirect (type $sig){gets} (i32.const 0)))
        (func (export "echo") (param{params}) (result{params}){gets}))"#
    );
    // Values whose bits must survive: NaN payloads, negative zero, all-ones vectors.
    let args: Vec<Val> = (0..20u32)
        .map(|k| match MIXED[k as usize] {
            ValType::I32 => Val::I32(-(k as i32) * 0x0101_0101),
            ValType::I64 => Val::I64(0x7edc_ba98_7654_3210 ^ (k as i64) << 40),
            ValType::F32 => Val::F32(if k % 2 == 0 { 0x7fc0_1234 } else { 0x8000_0000 } + k),
            ValType::F64 => Val::F64(0xfff4_0000_dead_beef ^ k as u64),
            _ => Val::V128((u128::MAX / (k as u128 + 3)) ^ ((k as u128) << 100)),
        })
        .collect();
    let want = mix(&args);
    for &tier in TIERS {
        let engine = Engine::new(&config(tier));
        let module = Module::new(&engine, &wat).unwrap();
        let mut linker: Linker<()> = Linker::new(&engine);
        let ty = FuncType::new(MIXED, [ValType::V128, ValType::F64, ValType::I32, ValType::F32, ValType::I64]);
        linker
            .func_new("host", "mix", ty, |_, args, results| {
                results.clone_from_slice(&mix(args));
                Ok(())
            })
            .unwrap();
        let mut store = Store::new(&engine, ());
        let instance = linker.instantiate(&mut store, &module).unwrap();
        for name in ["fwd", "twice", "indirect"] {
            let mut results = vec![Val::I32(0); 5];
            instance.get_func(&store, name).unwrap().call(&mut store, &args, &mut results).unwrap();
            assert_eq!(format!("{results:?}"), format!("{want:?}"), "{tier:?}: {name}");
        }
        let mut results = vec![Val::I32(0); 20];
        instance.get_func(&store, "echo").unwrap().call(&mut store, &args, &mut results).unwrap();
        assert_eq!(format!("{results:?}"), format!("{args:?}"), "{tier:?}: echo");
    }
}

#[test]
fn a_host_function_that_catches_a_nested_trap_lets_the_outer_code_go_on() {
    // `outer(n)` calls the host `n` times; the host calls `boom` (a trap) or
    // `recurse` (stack exhaustion) and swallows the error.
    const WAT: &str = r#"(module $n
        (import "host" "try" (func $try (param i32) (result i32)))
        (func (export "boom") (param i32) (result i32) (unreachable))
        (func $recurse (export "recurse") (param i32) (result i32)
            (i32.add (call $recurse (local.get 0)) (i32.const 1)))
        (func (export "outer") (param $n i32) (result i32) (local $acc i32)
            (loop $l
                (local.set $acc (i32.add (local.get $acc) (call $try (local.get $n))))
                (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
            (local.get $acc)))"#;
    for &tier in TIERS {
        let engine = Engine::new(&config(tier));
        let module = Module::new(&engine, WAT).unwrap();
        let mut linker: Linker<Vec<TrapKind>> = Linker::new(&engine);
        linker
            .func_wrap("host", "try", |mut caller: Caller<'_, Vec<TrapKind>>, n: i32| {
                let name = if n % 10 == 0 { "recurse" } else { "boom" };
                let f = caller.get_export(name).and_then(Extern::into_func).unwrap();
                let err = f.typed::<i32, i32>(&caller).unwrap().call(&mut caller, n).unwrap_err();
                caller.data_mut().push(kind(&err));
                2
            })
            .unwrap();
        let mut store = Store::new(&engine, Vec::new());
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let outer = instance.get_typed_func::<i32, i32>(&store, "outer").unwrap();
        assert_eq!(outer.call(&mut store, 200).unwrap(), 400, "{tier:?}");
        let kinds = store.data();
        assert_eq!(kinds.len(), 200, "{tier:?}");
        assert_eq!(kinds.iter().filter(|k| **k == TrapKind::StackExhausted).count(), 20, "{tier:?}");
        assert_eq!(kinds.iter().filter(|k| **k == TrapKind::Unreachable).count(), 180, "{tier:?}");
    }
}

#[test]
fn a_memory_the_host_creates_is_bounded_in_compiled_code_too() {
    const WAT: &str = r#"(module
        (import "env" "m" (memory 1))
        (func (export "load") (param i32) (result i32) (i32.load (local.get 0))))"#;
    for &tier in TIERS {
        for signals in [true, false] {
            let mut config = config(tier);
            config.signals_based_traps(signals);
            let engine = Engine::new(&config);
            let module = Module::new(&engine, WAT).unwrap();
            for _ in 0..2 {
                let mut store = Store::new(&engine, ());
                let memory = Memory::new(&mut store, MemoryType::new(1, Some(3))).unwrap();
                let mut linker = Linker::new(&engine);
                linker.define("env", "m", memory).unwrap();
                let instance = linker.instantiate(&mut store, &module).unwrap();
                let load = instance.get_typed_func::<i32, i32>(&store, "load").unwrap();
                memory.write(&mut store, 65532, &[1, 2, 3, 4]).unwrap();
                assert_eq!(load.call(&mut store, 65532).unwrap(), 0x0403_0201);
                let err = load.call(&mut store, 65535).unwrap_err();
                assert_eq!(kind(&err), TrapKind::MemoryOutOfBounds, "{tier:?}, signals {signals}");
                memory.grow(&mut store, 2).unwrap();
                assert_eq!(load.call(&mut store, 65535).unwrap(), 4);
                assert_eq!(kind(&load.call(&mut store, 3 * 65536 - 3).unwrap_err()), TrapKind::MemoryOutOfBounds);
            }
        }
    }
}

#[test]
fn stores_on_many_threads_share_a_module_and_trap_independently() {
    const WAT: &str = r#"(module $t
        (memory 1)
        (func $fib (export "fib") (param i32) (result i32)
            (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
                (then (local.get 0))
                (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                               (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
        (func (export "oob") (param i32) (result i32) (i32.load (i32.add (local.get 0) (i32.const 65535))))
        (func (export "div") (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0))))"#;
    for &tier in TIERS {
        let engine = Engine::new(&config(tier));
        let module = Module::new(&engine, WAT).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let module = module.clone();
                s.spawn(move || {
                    let mut store = Store::new(module.engine(), ());
                    let instance = Linker::new(module.engine()).instantiate(&mut store, &module).unwrap();
                    let f = |name: &str| instance.get_typed_func::<i32, i32>(&store, name).unwrap();
                    let (fib, oob, div) = (f("fib"), f("oob"), f("div"));
                    for i in 0..200 {
                        match (i + t) % 3 {
                            0 => assert_eq!(fib.call(&mut store, 15).unwrap(), 610, "{tier:?}"),
                            1 => assert_eq!(kind(&oob.call(&mut store, i).unwrap_err()), TrapKind::MemoryOutOfBounds),
                            _ => {
                                assert_eq!(kind(&div.call(&mut store, 0).unwrap_err()), TrapKind::IntegerDivisionByZero)
                            }
                        }
                    }
                });
            }
        });
    }
}
