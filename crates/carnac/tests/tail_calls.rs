//! Tail calls (WebAssembly 3.0: `return_call`, `return_call_indirect`), in
//! the interpreter, in compiled code and under automatic tiering: mutual
//! recursion a million calls deep runs in constant stack (the same recursion
//! with plain calls exhausts the stack), directly, indirectly and across
//! instances; indirect tail calls trap as `call_indirect` does; tail calls to
//! host functions are calls followed by a return; fuel, interrupts and epoch
//! deadlines stop tail-call loops, which cost the same fuel in every tier; a
//! trap's backtrace has no frame for a function that tail-called (as in
//! Wasmtime), across tiers too; artifacts keep their tail calls; and
//! `Config::wasm_tail_call(false)` turns the proposal off.

use std::time::{Duration, Instant};

use carnac::*;

/// Every tier a module can run in on this build.
fn tiers() -> Vec<Strategy> {
    let mut tiers = vec![Strategy::Interpreter];
    if cfg!(carnac_compiled) {
        tiers.push(Strategy::Cranelift);
        tiers.push(Strategy::Auto);
    }
    tiers
}

fn engine(tier: Strategy, configure: impl FnOnce(&mut Config)) -> Engine {
    let mut config = Config::new();
    config.strategy(tier);
    configure(&mut config);
    Engine::new(&config)
}

fn kind(err: &Error) -> TrapKind {
    err.as_trap().unwrap_or_else(|| panic!("not a trap: {err}")).kind()
}

/// `even`/`odd` by mutual tail recursion (`$call` is `return_call` or `call`),
/// with an i64 and an f64 carried along so that arguments of several types move.
fn even_odd(call: &str) -> String {
    format!(
        r#"(module
  (func $even (export "even") (param $n i32) (param $acc i64) (param $f f64) (result i32 i64)
    (if (result i32 i64) (i32.eqz (local.get $n))
      (then (i32.const 1) (i64.add (local.get $acc) (i64.trunc_f64_s (local.get $f))))
      (else ({call} $odd (i32.sub (local.get $n) (i32.const 1))
                         (i64.add (local.get $acc) (i64.const 1)) (local.get $f)))))
  (func $odd (export "odd") (param $n i32) (param $acc i64) (param $f f64) (result i32 i64)
    (if (result i32 i64) (i32.eqz (local.get $n))
      (then (i32.const 0) (local.get $acc))
      (else ({call} $even (i32.sub (local.get $n) (i32.const 1))
                          (i64.add (local.get $acc) (i64.const 2)) (f64.add (local.get $f) (f64.const 0.5)))))))"#
    )
}

/// What `even(n, 0, 0.0)` returns.
fn expected_even(n: u32) -> (i32, i64) {
    // Calls to odd (from even) add 1, calls to even (from odd) add 2 and 0.5 to f.
    let to_odd = n.div_ceil(2) as i64;
    let to_even = (n / 2) as i64;
    let acc = to_odd + 2 * to_even;
    if n.is_multiple_of(2) {
        (1, acc + (to_even as f64 * 0.5) as i64)
    } else {
        (0, acc)
    }
}

const DEEP: u32 = 1_000_000;

#[test]
fn mutual_tail_recursion_runs_in_constant_stack_in_every_tier() {
    for tier in tiers() {
        let engine = engine(tier, |_| {});
        let module = Module::new(&engine, even_odd("return_call")).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let even = instance.get_typed_func::<(i32, i64, f64), (i32, i64)>(&store, "even").unwrap();
        for n in [0, 1, 2, 7, DEEP, DEEP + 1] {
            assert_eq!(even.call(&mut store, (n as i32, 0, 0.0)).unwrap(), expected_even(n), "{tier:?}, n = {n}");
        }
        // The same recursion by plain calls exhausts the stack: the depth above is no accident.
        let module = Module::new(&engine, even_odd("call")).unwrap();
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let even = instance.get_typed_func::<(i32, i64, f64), (i32, i64)>(&store, "even").unwrap();
        assert_eq!(even.call(&mut store, (7, 0, 0.0)).unwrap(), expected_even(7));
        let err = even.call(&mut store, (DEEP as i32, 0, 0.0)).unwrap_err();
        assert_eq!(kind(&err), TrapKind::StackExhausted, "{tier:?}");
    }
}

/// Whether this host compiles in the background at all (not on one core).
fn tiers_up() -> bool {
    std::thread::available_parallelism().map_or(1, |n| n.get()) > 1
}

/// Under `Strategy::Auto`, the recursion stays right and constant in stack
/// while its functions move to compiled code one at a time: `even` first
/// (made hot alone), so that compiled `even` tail-calls interpreted `odd` and
/// interpreted `odd` tail-calls compiled `even`, then both.
#[test]
fn mutual_tail_recursion_across_tiers_under_auto() {
    if !cfg!(carnac_compiled) || !tiers_up() {
        return;
    }
    let engine = engine(Strategy::Auto, |_| {});
    let module = Module::new(&engine, even_odd("return_call")).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let even = instance.get_typed_func::<(i32, i64, f64), (i32, i64)>(&store, "even").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    // even(0) never reaches odd: only even runs hot.
    while engine.tier_stats().functions_compiled == 0 {
        assert!(Instant::now() < deadline, "even never tiered up");
        assert_eq!(even.call(&mut store, (0, 0, 0.0)).unwrap(), (1, 0));
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(engine.tier_stats().functions_compiled, 1, "only even is hot");
    // Compiled even, interpreted odd; odd soon hot too, then both compiled.
    loop {
        for n in [DEEP, DEEP + 1] {
            assert_eq!(even.call(&mut store, (n as i32, 0, 0.0)).unwrap(), expected_even(n));
        }
        if engine.tier_stats().functions_compiled >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "odd never tiered up");
        std::thread::sleep(Duration::from_millis(2));
    }
    for n in [DEEP, DEEP + 1, 3] {
        assert_eq!(even.call(&mut store, (n as i32, 0, 0.0)).unwrap(), expected_even(n));
    }
    // From the interpreted side first: a new module whose odd tiers up alone.
    let module = Module::new(&engine, even_odd("return_call")).unwrap();
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let even = instance.get_typed_func::<(i32, i64, f64), (i32, i64)>(&store, "even").unwrap();
    let odd = instance.get_typed_func::<(i32, i64, f64), (i32, i64)>(&store, "odd").unwrap();
    let compiled = engine.tier_stats().functions_compiled;
    while engine.tier_stats().functions_compiled == compiled {
        assert!(Instant::now() < deadline, "odd never tiered up");
        assert_eq!(odd.call(&mut store, (0, 5, 0.0)).unwrap(), (0, 5));
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(even.call(&mut store, (DEEP as i32, 0, 0.0)).unwrap(), expected_even(DEEP));
}

const INDIRECT: &str = r#"(module
  (type $t (func (param i32 i64) (result i64)))
  (type $other (func (param i32) (result i64)))
  (table $tab 8 funcref)
  (elem (table $tab) (i32.const 0) func $down $wrong $down2)
  ;; counts n down through table entries 0 and 2, summing into acc
  (func $down (type $t)
    (if (result i64) (i32.eqz (local.get 0))
      (then (local.get 1))
      (else (return_call_indirect $tab (type $t)
              (i32.sub (local.get 0) (i32.const 1)) (i64.add (local.get 1) (i64.const 1))
              (i32.const 2)))))
  (func $down2 (type $t)
    (return_call_indirect $tab (type $t) (local.get 0) (i64.add (local.get 1) (i64.const 10)) (i32.const 0)))
  (func $wrong (type $other) (i64.const -1))
  (func (export "run") (param i32) (result i64)
    (return_call_indirect $tab (type $t) (local.get 0) (i64.const 0) (i32.const 0)))
  ;; table index chosen by the caller: 1 has another type, 3 is null, 8 out of range
  (func (export "at") (param i32) (result i64)
    (return_call_indirect $tab (type $t) (i32.const 1) (i64.const 0) (local.get 0))))"#;

#[test]
fn indirect_tail_calls_recurse_deep_and_trap_as_call_indirect() {
    for tier in tiers() {
        let engine = engine(tier, |_| {});
        let module = Module::new(&engine, INDIRECT).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let run = instance.get_typed_func::<i32, i64>(&store, "run").unwrap();
        assert_eq!(run.call(&mut store, 3).unwrap(), 3 + 30);
        assert_eq!(run.call(&mut store, DEEP as i32).unwrap(), DEEP as i64 * 11, "{tier:?}");
        let at = instance.get_typed_func::<i32, i64>(&store, "at").unwrap();
        assert_eq!(at.call(&mut store, 0).unwrap(), 1 + 10);
        let cases = [(1, TrapKind::BadSignature), (3, TrapKind::IndirectCallToNull), (8, TrapKind::TableOutOfBounds)];
        for (index, expected) in cases {
            let err = at.call(&mut store, index).unwrap_err();
            assert_eq!(kind(&err), expected, "{tier:?}, entry {index}");
            assert!(err.to_string().contains(expected.message()), "{tier:?}: {err}");
        }
        assert_eq!(TrapKind::BadSignature.message(), "indirect call type mismatch");
    }
}

/// `return_call_indirect` through a 64-bit table (memory64's table64): the
/// i64 index selects the entry; one of 2^32 or more is out of bounds, not
/// wrapped to a small one.
const INDIRECT64: &str = r#"(module
  (type $t (func (param i64) (result i64)))
  (table i64 2 funcref)
  (elem (table 0) (i64.const 0) func $count)
  (func $count (type $t)
    (if (result i64) (i64.eqz (local.get 0))
      (then (i64.const 7))
      (else (return_call_indirect (type $t) (i64.sub (local.get 0) (i64.const 1)) (i64.const 0)))))
  (func (export "run") (param i64) (result i64)
    (return_call_indirect (type $t) (local.get 0) (i64.const 0)))
  (func (export "at") (param i64) (result i64)
    (return_call_indirect (type $t) (i64.const 0) (local.get 0))))"#;

#[test]
fn indirect_tail_calls_through_a_64_bit_table() {
    for tier in tiers() {
        let engine = engine(tier, |_| {});
        let module = Module::new(&engine, INDIRECT64).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let run = instance.get_typed_func::<i64, i64>(&store, "run").unwrap();
        assert_eq!(run.call(&mut store, DEEP as i64).unwrap(), 7, "{tier:?}");
        let at = instance.get_typed_func::<i64, i64>(&store, "at").unwrap();
        assert_eq!(at.call(&mut store, 0).unwrap(), 7, "{tier:?}");
        for (index, expected) in
            [(1, TrapKind::IndirectCallToNull), (2, TrapKind::TableOutOfBounds), (1 << 32, TrapKind::TableOutOfBounds)]
        {
            let err = at.call(&mut store, index).unwrap_err();
            assert_eq!(kind(&err), expected, "{tier:?}, entry {index}");
        }
    }
}

#[test]
fn tail_calls_to_host_functions_are_calls_then_returns() {
    for tier in tiers() {
        let engine = engine(tier, |_| {});
        let module = Module::new(
            &engine,
            r#"(module
              (import "host" "twice" (func $twice (param i32) (result i32)))
              (import "host" "fail" (func $fail (param i32) (result i32)))
              (type $h (func (param i32) (result i32)))
              (table funcref (elem $twice $fail))
              (func $loop (export "loop") (param $n i32) (param $x i32) (result i32)
                (if (result i32) (i32.eqz (local.get $n))
                  (then (return_call $twice (local.get $x)))
                  (else (return_call $loop (i32.sub (local.get $n) (i32.const 1))
                                           (i32.add (local.get $x) (i32.const 1))))))
              (func (export "indirect") (param i32) (param i32) (result i32)
                (return_call_indirect (type $h) (local.get 1) (local.get 0)))
              (func $after (export "after") (param i32) (result i32)
                (i32.add (call $fail2 (local.get 0)) (i32.const 1)))
              (func $fail2 (param i32) (result i32) (return_call $fail (local.get 0))))"#,
        )
        .unwrap();
        let mut linker = Linker::new(&engine);
        linker.func_wrap("host", "twice", |x: i32| x * 2).unwrap();
        linker
            .func_wrap("host", "fail", |x: i32| -> Result<i32, Trap> {
                if x < 0 {
                    Err(Trap::new(TrapKind::HostError))
                } else {
                    Ok(x + 100)
                }
            })
            .unwrap();
        let mut store = Store::new(&engine, ());
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let run = instance.get_typed_func::<(i32, i32), i32>(&store, "loop").unwrap();
        assert_eq!(run.call(&mut store, (DEEP as i32, 5)).unwrap(), 2 * (DEEP as i32 + 5), "{tier:?}");
        let indirect = instance.get_typed_func::<(i32, i32), i32>(&store, "indirect").unwrap();
        assert_eq!(indirect.call(&mut store, (0, 21)).unwrap(), 42);
        assert_eq!(indirect.call(&mut store, (1, 21)).unwrap(), 121);
        // The host function's results come back to the caller of the tail-calling function.
        let after = instance.get_typed_func::<i32, i32>(&store, "after").unwrap();
        assert_eq!(after.call(&mut store, 1).unwrap(), 102);
        let err = after.call(&mut store, -1).unwrap_err();
        assert_eq!(kind(&err), TrapKind::HostError, "{tier:?}");
        // `fail2` tail-called the failing host function: it has no frame left.
        let names: Vec<_> =
            err.as_trap().unwrap().backtrace().iter().map(|f| f.func_name.as_deref().unwrap_or("?")).collect();
        assert_eq!(names, ["after"], "{tier:?}");
    }
}

#[test]
fn mutual_tail_recursion_across_instances() {
    let ping = r#"(module
      (import "pong" "pong" (func $pong (param i32 i64) (result i64)))
      (memory 1)
      (data (i32.const 0) "\01")
      (func $ping (export "ping") (param $n i32) (param $acc i64) (result i64)
        (if (result i64) (i32.eqz (local.get $n))
          (then (local.get $acc))
          ;; reads its own memory: the callee's instance is the current one again
          (else (return_call $pong (i32.sub (local.get $n) (i32.const 1))
                  (i64.add (local.get $acc) (i64.load8_u (i32.const 0))))))))"#;
    let pong = r#"(module
      (import "ping" "ping" (func $ping (param i32 i64) (result i64)))
      (import "ping" "table" (table 1 funcref))
      (memory 1)
      (data (i32.const 0) "\02")
      (type $t (func (param i32 i64) (result i64)))
      (func (export "pong") (param $n i32) (param $acc i64) (result i64)
        (if (result i64) (i32.eqz (local.get $n))
          (then (local.get $acc))
          (else (return_call_indirect (type $t) (i32.sub (local.get $n) (i32.const 1))
                  (i64.add (local.get $acc) (i64.load8_u (i32.const 0))) (i32.const 0))))))"#;
    for tier in tiers() {
        let engine = engine(tier, |_| {});
        let mut store = Store::new(&engine, ());
        let mut linker = Linker::new(&engine);
        // `ping` imports `pong`, which imports `ping`: ping's import goes
        // through a table that pong fills once ping exists.
        let trampoline = Module::new(
            &engine,
            r#"(module
              (type $t (func (param i32 i64) (result i64)))
              (table (export "table") 2 funcref)
              (func (export "pong") (param i32 i64) (result i64)
                (return_call_indirect (type $t) (local.get 0) (local.get 1) (i32.const 1))))"#,
        )
        .unwrap();
        let trampoline = linker.instantiate(&mut store, &trampoline).unwrap();
        linker.instance(&mut store, "pong", trampoline).unwrap();
        let ping_module = Module::new(&engine, ping).unwrap();
        let ping_instance = linker.instantiate(&mut store, &ping_module).unwrap();
        linker.instance(&mut store, "ping", ping_instance).unwrap();
        linker.define("ping", "table", trampoline.get_export(&store, "table").unwrap()).unwrap();
        let pong_module = Module::new(&engine, pong).unwrap();
        let pong_instance = linker.instantiate(&mut store, &pong_module).unwrap();
        let table = trampoline.get_table(&store, "table").unwrap();
        let ping_func = ping_instance.get_func(&store, "ping").unwrap();
        let pong_func = pong_instance.get_func(&store, "pong").unwrap();
        table.set(&mut store, 0, Val::FuncRef(Some(ping_func))).unwrap();
        table.set(&mut store, 1, Val::FuncRef(Some(pong_func))).unwrap();
        let run = ping_instance.get_typed_func::<(i32, i64), i64>(&store, "ping").unwrap();
        // ping adds 1 and pong 2, alternately (ping -> trampoline -> pong -> table -> ping).
        assert_eq!(run.call(&mut store, (4, 0)).unwrap(), 1 + 2 + 1 + 2);
        assert_eq!(run.call(&mut store, (DEEP as i32, 0)).unwrap(), DEEP as i64 / 2 * 3, "{tier:?}");
    }
}

const SPIN: &str = r#"(module
  (import "env" "tick" (func $tick))
  (func $a (export "spin") (param i32) (result i32)
    (return_call $b (i32.add (local.get 0) (i32.const 1))))
  (func $b (param i32) (result i32)
    (return_call $a (local.get 0)))
  (func (export "tick_then_spin") (param i32) (result i32)
    (call $tick)
    (return_call $a (local.get 0))))"#;

fn spin_instance(engine: &Engine) -> (Store<()>, Instance) {
    let module = Module::new(engine, SPIN).unwrap();
    let mut linker = Linker::new(engine);
    let e = engine.clone();
    linker.func_wrap("env", "tick", move || e.increment_epoch()).unwrap();
    let mut store = Store::new(engine, ());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    (store, instance)
}

#[test]
fn tail_call_loops_run_out_of_fuel() {
    for tier in tiers() {
        let engine = engine(tier, |c| {
            c.consume_fuel(true);
        });
        let (mut store, instance) = spin_instance(&engine);
        store.set_fuel(100_000).unwrap();
        let spin = instance.get_typed_func::<i32, i32>(&store, "spin").unwrap();
        let err = spin.call(&mut store, 0).unwrap_err();
        assert_eq!(kind(&err), TrapKind::OutOfFuel, "{tier:?}");
        assert_eq!(store.get_fuel().unwrap(), 0);
    }
}

/// A finite tail-call loop costs the same fuel in every tier.
#[test]
fn tail_calls_cost_the_same_fuel_in_every_tier() {
    let used: Vec<u64> = tiers()
        .into_iter()
        .map(|tier| {
            let engine = engine(tier, |c| {
                c.consume_fuel(true);
            });
            let module = Module::new(&engine, even_odd("return_call")).unwrap();
            let mut store = Store::new(&engine, ());
            let instance = Instance::new(&mut store, &module, &[]).unwrap();
            store.set_fuel(u64::MAX / 2).unwrap();
            let even = instance.get_typed_func::<(i32, i64, f64), (i32, i64)>(&store, "even").unwrap();
            assert_eq!(even.call(&mut store, (1001, 0, 0.0)).unwrap(), expected_even(1001));
            u64::MAX / 2 - store.get_fuel().unwrap()
        })
        .collect();
    assert!(used[0] > 1001 * 5, "{used:?}");
    assert!(used.iter().all(|&u| u == used[0]), "fuel per tier: {used:?}");
}

#[test]
fn tail_call_loops_are_interrupted() {
    for tier in tiers() {
        let engine = engine(tier, |c| {
            c.interruptible(true);
        });
        let (mut store, instance) = spin_instance(&engine);
        let handle = store.interrupt_handle().unwrap();
        let timer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            handle.interrupt();
        });
        let spin = instance.get_typed_func::<i32, i32>(&store, "spin").unwrap();
        let err = spin.call(&mut store, 0).unwrap_err();
        assert_eq!(kind(&err), TrapKind::Interrupted, "{tier:?}");
        timer.join().unwrap();
    }
}

#[test]
fn tail_call_loops_stop_at_the_epoch_deadline() {
    for tier in tiers() {
        let engine = engine(tier, |c| {
            c.epoch_interruption(true);
        });
        let (mut store, instance) = spin_instance(&engine);
        // The guest itself moves the epoch past the deadline, then spins.
        store.set_epoch_deadline(1);
        let spin = instance.get_typed_func::<i32, i32>(&store, "tick_then_spin").unwrap();
        let err = spin.call(&mut store, 0).unwrap_err();
        assert_eq!(kind(&err), TrapKind::Interrupted, "{tier:?}");
        // A deadline callback lets the loop go on a few times, then ends it.
        let mut left = 3;
        store.epoch_deadline_callback(move |_| {
            left -= 1;
            if left == 0 {
                Err(Error::Usage("enough".into()))
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        store.set_epoch_deadline(1);
        let ticker = {
            let engine = engine.clone();
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let s = stop.clone();
            let t = std::thread::spawn(move || {
                while !s.load(std::sync::atomic::Ordering::Relaxed) {
                    engine.increment_epoch();
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            (stop, t)
        };
        let spin = instance.get_typed_func::<i32, i32>(&store, "spin").unwrap();
        let err = spin.call(&mut store, 0).unwrap_err();
        assert!(err.to_string().contains("enough"), "{tier:?}: {err}");
        ticker.0.store(true, std::sync::atomic::Ordering::Relaxed);
        ticker.1.join().unwrap();
    }
}

#[test]
fn backtraces_have_no_frame_for_a_function_that_tail_called() {
    let wat = r#"(module
      (func $main (export "main") (param i32) (result i32)
        (i32.add (call $middle (local.get 0)) (i32.const 1)))
      (func $middle (param i32) (result i32)
        (return_call $deep (local.get 0)))
      (func $deep (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0))
          (then (return_call $fault (i32.const 0)))
          (else (return_call $deep (i32.sub (local.get 0) (i32.const 1))))))
      (func $fault (param i32) (result i32)
        (i32.div_u (i32.const 1) (local.get 0))))"#;
    for tier in tiers() {
        let engine = engine(tier, |_| {});
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let main = instance.get_typed_func::<i32, i32>(&store, "main").unwrap();
        for n in [0, 10, DEEP as i32] {
            let err = main.call(&mut store, n).unwrap_err();
            let trap = err.as_trap().unwrap();
            assert_eq!(trap.kind(), TrapKind::IntegerDivisionByZero);
            let names: Vec<_> = trap.backtrace().iter().map(|f| f.func_name.as_deref().unwrap_or("?")).collect();
            // `middle` and every `deep` were replaced: the trap is in `fault`, called from `main`.
            assert_eq!(names, ["fault", "main"], "{tier:?}, n = {n}");
            assert_eq!(trap.frames_elided(), 0);
        }
    }
}

/// Under `Strategy::Auto`, a long loop moves into compiled code at its header
/// (on-stack replacement: an entry with its own signature) and the rest of the
/// function, a tail call to a function of another type, runs from there.
///
/// Tiering is synchronous here: in the background, the whole function can be
/// compiled before the loop's entry is, and then later calls start compiled
/// and never enter the loop from the interpreter (CI once lost that race for
/// two minutes on a loaded machine). `tiering.rs` tests the background path.
#[test]
fn a_loop_entered_compiled_tail_calls_on() {
    if !cfg!(carnac_compiled) {
        return;
    }
    let engine = engine(Strategy::Auto, |c| {
        c.tier_up_synchronously(true);
    });
    let module = Module::new(
        &engine,
        r#"(module
          (func (export "run") (param $n i32) (result i64)
            (local $i i32) (local $acc i64)
            (loop $next
              (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (local.get $i))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $next (i32.lt_u (local.get $i) (local.get $n))))
            (return_call $count (f64.const 0.5) (local.get $acc) (i32.const 1000000)))
          (func $count (param $f f64) (param $acc i64) (param $k i32) (result i64)
            (if (result i64) (i32.eqz (local.get $k))
              (then (i64.add (local.get $acc) (i64.trunc_f64_s (local.get $f))))
              (else (return_call $count (f64.add (local.get $f) (f64.const 1))
                      (i64.add (local.get $acc) (i64.const 1)) (i32.sub (local.get $k) (i32.const 1)))))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let run = instance.get_typed_func::<i32, i64>(&store, "run").unwrap();
    let n: i64 = 3_000_000;
    let expected = n * (n - 1) / 2 + 1_000_000 + 1_000_000;
    assert_eq!(run.call(&mut store, n as i32).unwrap(), expected);
    assert_eq!(engine.tier_stats().loops_entered, 1, "the loop moved into compiled code in its first call");
    // Later calls start in the compiled function.
    assert_eq!(run.call(&mut store, n as i32).unwrap(), expected);
    assert_eq!(run.call(&mut store, 5).unwrap(), 10 + 2_000_000);
}

/// A compiled artifact keeps its tail calls (their relocations are linked at
/// load): the loaded module recurses as deep, also in an engine under
/// `Strategy::Auto`, which runs an artifact's code compiled.
#[test]
fn artifacts_keep_their_tail_calls() {
    if !cfg!(carnac_compiled) {
        return;
    }
    for tier in [Strategy::Cranelift, Strategy::Auto] {
        let engine = engine(tier, |_| {});
        let compiler = self::engine(Strategy::Cranelift, |_| {});
        let bytes = Module::new(&compiler, even_odd("return_call")).unwrap().serialize().unwrap();
        let module = Module::deserialize(&engine, &bytes).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let even = instance.get_typed_func::<(i32, i64, f64), (i32, i64)>(&store, "even").unwrap();
        assert_eq!(even.call(&mut store, (DEEP as i32, 0, 0.0)).unwrap(), expected_even(DEEP), "{tier:?}");
    }
}

/// Under `Strategy::Auto`, compiled code tail-calling an interpreted function
/// (an ordinary call through the runtime) leaves no frame either: a trap in
/// the callee shows it called from the compiled function's caller.
#[test]
fn backtraces_across_tiers_have_no_frame_for_the_tail_caller() {
    if !cfg!(carnac_compiled) || !tiers_up() {
        return;
    }
    let engine = engine(Strategy::Auto, |_| {});
    let module = Module::new(
        &engine,
        r#"(module
          (func $entry (export "entry") (param i32) (result i32)
            (i32.add (call $f (local.get 0)) (i32.const 1)))
          (func $f (export "f") (param i32) (result i32)
            (if (i32.lt_s (local.get 0) (i32.const 0)) (then (return (i32.const 7))))
            (return_call $g (local.get 0)))
          (func $g (param i32) (result i32)
            (i32.div_u (i32.const 100) (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let f = instance.get_typed_func::<i32, i32>(&store, "f").unwrap();
    let entry = instance.get_typed_func::<i32, i32>(&store, "entry").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    // f(-1) never reaches g: only f runs hot.
    while engine.tier_stats().functions_compiled == 0 {
        assert!(Instant::now() < deadline, "f never tiered up");
        assert_eq!(f.call(&mut store, -1).unwrap(), 7);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(engine.tier_stats().functions_compiled, 1, "only f is hot");
    // Interpreted entry -> compiled f -> (tail) interpreted g.
    assert_eq!(entry.call(&mut store, 4).unwrap(), 26);
    let err = entry.call(&mut store, 0).unwrap_err();
    let trap = err.as_trap().unwrap();
    assert_eq!(trap.kind(), TrapKind::IntegerDivisionByZero);
    let names: Vec<_> = trap.backtrace().iter().map(|f| f.func_name.as_deref().unwrap_or("?")).collect();
    assert_eq!(names, ["g", "entry"]);
}

/// `Config::wasm_tail_call(false)` turns the proposal off: its operators no
/// longer validate.
#[test]
fn tail_calls_can_be_turned_off() {
    let on = Engine::default();
    assert!(Module::new(&on, even_odd("return_call")).is_ok());
    let off = engine(Strategy::Interpreter, |c| {
        c.wasm_tail_call(false);
    });
    let err = Module::new(&off, even_odd("return_call")).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert!(Module::new(&off, even_odd("call")).is_ok());
}
