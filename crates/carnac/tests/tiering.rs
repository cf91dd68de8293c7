//! Automatic tiering (`Strategy::Auto`): functions called from the
//! interpreter, then compiled in the background, then called again give the
//! same results; a long-running loop moves into compiled code at its header
//! (on-stack replacement) and finishes with the interpreter's answer; traps and
//! backtraces across the switch; and compiled stores keep the written-chunk
//! map that resets pooled memories (`Config::track_memory_writes`).
#![cfg(carnac_compiled)]

use std::time::{Duration, Instant};

use carnac::*;

/// Whether this host compiles in the background at all (not on one core).
fn tiers_up() -> bool {
    std::thread::available_parallelism().map_or(1, |n| n.get()) > 1
}

const PROGRAM: &str = r#"(module
  (memory (export "memory") 1)
  (func $mix (export "mix") (param $x i32) (result i64)
    (local $h i64)
    (local.set $h (i64.extend_i32_u (local.get $x)))
    (local.set $h (i64.mul (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 33)))
                           (i64.const 0xff51afd7ed558ccd)))
    (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 29))))
  ;; sum of mix(i) for i in 0..n, with a store per iteration: a loop that runs long.
  (func (export "run") (param $n i32) (result i64)
    (local $i i32) (local $acc i64) (local $f f64) (local $v v128)
    (local.set $f (f64.const 0.5))
    (local.set $v (v128.const i32x4 1 2 3 4))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc (i64.add (local.get $acc) (call $mix (local.get $i))))
        (i32.store (i32.and (i32.mul (local.get $i) (i32.const 4)) (i32.const 0xfffc)) (local.get $i))
        (local.set $f (f64.add (local.get $f) (f64.const 0.25)))
        (local.set $v (i32x4.add (local.get $v) (v128.const i32x4 1 1 1 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    ;; locals carried through the switch must come out right
    (i64.add (local.get $acc)
      (i64.add (i64.trunc_f64_s (local.get $f))
               (i64.extend_i32_u (i32x4.extract_lane 3 (local.get $v))))))
  ;; divides by zero once i reaches $at
  (func $divide (export "divide") (param $n i32) (param $at i32) (result i32)
    (local $i i32) (local $acc i32)
    (loop $next
      (local.set $acc (i32.add (local.get $acc)
        (i32.div_u (i32.const 1000) (i32.sub (local.get $at) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc)))"#;

fn mix(x: u32) -> i64 {
    let mut h = x as u64;
    h = (h ^ (h >> 33)).wrapping_mul(0xff51afd7ed558ccd);
    (h ^ (h >> 29)) as i64
}

fn expected_run(n: u32) -> i64 {
    let acc = (0..n).fold(0i64, |a, i| a.wrapping_add(mix(i)));
    let f = 0.5 + 0.25 * n as f64;
    acc.wrapping_add(f as i64).wrapping_add(4 + n as i64)
}

fn auto_engine() -> Engine {
    let mut config = Config::new();
    config.strategy(Strategy::Auto);
    Engine::new(&config)
}

#[test]
fn a_function_gives_the_same_results_before_and_after_it_is_compiled() {
    let engine = auto_engine();
    let module = Module::new(&engine, PROGRAM).unwrap();
    assert!(!module.is_compiled(), "nothing compiles before the module runs");
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let f = instance.get_typed_func::<i32, i64>(&mut store, "mix").unwrap();
    let before: Vec<i64> = (0..3000).map(|x| f.call(&mut store, x).unwrap()).collect();
    for (x, v) in before.iter().enumerate() {
        assert_eq!(*v, mix(x as u32));
    }
    if !tiers_up() {
        assert!(!module.is_compiled(), "a one-core host compiles nothing in the background");
        return;
    }
    // The calls above made `mix` hot: it compiles alone, in the background.
    let deadline = Instant::now() + Duration::from_secs(120);
    while engine.tier_stats().functions_compiled == 0 {
        assert!(Instant::now() < deadline, "the function never tiered up");
        f.call(&mut store, 7).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    // Without the code cache, only hot functions compile.
    assert!(!module.is_compiled());
    let after: Vec<i64> = (0..3000).map(|x| f.call(&mut store, x).unwrap()).collect();
    assert_eq!(before, after);
    // A new instance runs `run` interpreted, calling the compiled `mix`.
    let mut store2 = Store::new(&engine, ());
    let instance2 = Instance::new(&mut store2, &module, &[]).unwrap();
    let run = instance2.get_typed_func::<i32, i64>(&mut store2, "run").unwrap();
    assert_eq!(run.call(&mut store2, 10_000).unwrap(), expected_run(10_000));
}

/// With the code cache on, the whole module compiles once hot functions have,
/// goes to the cache, and the next engine loads it compiled from the start.
#[test]
fn with_the_cache_the_whole_module_follows_and_is_reused() {
    if !tiers_up() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("carnac-tiering-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config::new();
    config.strategy(Strategy::Auto).cache_dir(Some(dir.clone()));
    let engine = Engine::new(&config);
    let module = Module::new(&engine, PROGRAM).unwrap();
    assert!(!module.is_compiled());
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let f = instance.get_typed_func::<i32, i64>(&mut store, "mix").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !module.is_compiled() {
        assert!(Instant::now() < deadline, "the module never compiled");
        assert_eq!(f.call(&mut store, 5).unwrap(), mix(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(f.call(&mut store, 9).unwrap(), mix(9));
    let stats = engine.tier_stats();
    assert!(stats.functions_compiled >= 1 && stats.modules_compiled == 1, "{stats:?}");
    assert_eq!(engine.cache_stats().stores, 1);
    let engine2 = Engine::new(&config);
    let module2 = Module::new(&engine2, PROGRAM).unwrap();
    assert!(module2.is_compiled(), "cached code is used from the first call");
    assert_eq!(engine2.cache_stats().hits, 1);
    let mut store2 = Store::new(&engine2, ());
    let instance2 = Instance::new(&mut store2, &module2, &[]).unwrap();
    let run = instance2.get_typed_func::<i32, i64>(&mut store2, "run").unwrap();
    assert_eq!(run.call(&mut store2, 1000).unwrap(), expected_run(1000));
    std::fs::remove_dir_all(&dir).ok();
}

/// In the background, the whole function may compile before the loop's own
/// entry does; calls after that start compiled and never enter the loop from
/// the interpreter. So each attempt takes a fresh module and a loop twice as
/// long as the last, until the entry is ready while the loop still runs.
const LONGEST_LOOP: u32 = 16_000_000;

#[test]
fn a_long_loop_moves_into_compiled_code_at_its_header() {
    let engine = auto_engine();
    // Each call is one long-running frame: only on-stack replacement takes
    // it out of the interpreter before it returns.
    let mut n: u32 = 2_000_000;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let module = Module::new(&engine, PROGRAM).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let run = instance.get_typed_func::<i32, i64>(&mut store, "run").unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        for _ in 0..2 {
            assert_eq!(run.call(&mut store, n as i32).unwrap(), expected_run(n));
            // The stores of the last iterations (whichever tier ran them).
            let last = n - 1;
            let at = ((last * 4) & 0xfffc) as usize;
            assert_eq!(memory.data(&store)[at..at + 4], last.to_le_bytes());
        }
        if !tiers_up() || engine.tier_stats().loops_entered > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the loop never moved into compiled code");
        n = (n * 2).min(LONGEST_LOOP);
    }
    if tiers_up() {
        let stats = engine.tier_stats();
        assert!(stats.loop_entries_compiled >= 1 && stats.functions_compiled >= 1, "{stats:?}");
    }
}

#[test]
fn traps_and_backtraces_are_the_same_after_the_switch() {
    let engine = auto_engine();
    let mut n: u32 = 2_000_000;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let module = Module::new(&engine, PROGRAM).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let divide = instance.get_typed_func::<(i32, i32), i32>(&mut store, "divide").unwrap();
        for _ in 0..2 {
            // Traps three quarters of the way: by then the loop may run compiled.
            let err = divide.call(&mut store, (n as i32, (n / 4 * 3) as i32)).unwrap_err();
            let trap = err.as_trap().expect("a trap");
            assert_eq!(trap.kind(), TrapKind::IntegerDivisionByZero);
            let frames: Vec<String> = trap.backtrace().iter().map(|f| f.to_string()).collect();
            assert!(frames.first().is_some_and(|f| f.contains("divide")), "{frames:?}");
            // The store stays usable after the trap.
            assert_eq!(divide.call(&mut store, (3, 1000)).unwrap(), 3);
        }
        if !tiers_up() || engine.tier_stats().loops_entered > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the loop never moved into compiled code");
        n = (n * 2).min(LONGEST_LOOP);
    }
}

/// Compiled stores mark the written-chunk map: a pooled memory reused by the
/// next store reads as zero, whichever tier wrote it.
#[test]
fn memories_written_by_compiled_code_are_reset_for_the_next_store() {
    for strategy in [Strategy::Cranelift, Strategy::Auto] {
        let mut config = Config::new();
        config.strategy(strategy).track_memory_writes(true);
        let engine = Engine::new(&config);
        let module = Module::new(
            &engine,
            r#"(module (memory (export "memory") 4)
                 (func (export "poke") (param i32 i64) (i64.store (local.get 0) (local.get 1)))
                 (func (export "poke_lane") (param i32) (v128.store64_lane 1 (local.get 0) (v128.const i64x2 0 -1)))
                 (func (export "peek") (param i32) (result i64) (i64.load (local.get 0))))"#,
        )
        .unwrap();
        for round in 0..20u64 {
            let mut store = Store::new(&engine, ());
            let instance = Instance::new(&mut store, &module, &[]).unwrap();
            let poke = instance.get_typed_func::<(i32, i64), ()>(&mut store, "poke").unwrap();
            let poke_lane = instance.get_typed_func::<i32, ()>(&mut store, "poke_lane").unwrap();
            let peek = instance.get_typed_func::<i32, i64>(&mut store, "peek").unwrap();
            for at in [0, 4092, 100_000, 200_000, 262_136] {
                assert_eq!(peek.call(&mut store, at).unwrap(), 0, "{strategy:?} round {round}: {at} not reset");
            }
            assert_eq!(peek.call(&mut store, 150_000).unwrap(), 0, "{strategy:?} round {round}: lane store not reset");
            // A store straddling two chunks, and stores across the memory.
            for at in [0, 4092, 100_000, 200_000, 262_136] {
                poke.call(&mut store, (at, round as i64 + 1)).unwrap();
            }
            poke_lane.call(&mut store, 150_000).unwrap();
        }
    }
}
