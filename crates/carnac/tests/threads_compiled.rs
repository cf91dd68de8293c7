//! The threads proposal in the compiled tier: every atomic operator at every
//! width against the interpreter (differential, on shared and unshared
//! memories, with guard-page and explicit bounds checks), the traps of
//! misaligned and out-of-bounds atomics with the interpreter's messages (bounds
//! first), wait/notify between a compiled and an interpreted thread (automatic
//! tiering, one engine), compiled atomic increments from 4 threads, and a
//! compiled guest that keeps working while another thread grows its shared
//! memory.
#![cfg(carnac_compiled)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::Duration;

use carnac::*;

/// An engine of `tier`; `explicit`: bounds checked in code, no guard pages.
fn engine(tier: Strategy, explicit: bool) -> Engine {
    let mut config = Config::new();
    config.strategy(tier);
    if explicit {
        config.signals_based_traps(false);
    }
    Engine::new(&config)
}

/// The configurations compared with the interpreter.
const COMPILED: &[(&str, bool)] = &[("cranelift (guard pages)", false), ("cranelift (explicit bounds)", true)];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Load,
    Store,
    Rmw,
    Cmpxchg,
}

/// One atomic operator: its text, its value type, its width in bits.
#[derive(Clone, Debug)]
struct Op {
    name: String,
    ty: &'static str,
    bits: u32,
    kind: Kind,
}

/// Every atomic access operator of the threads proposal (63).
fn ops() -> Vec<Op> {
    let mut ops = Vec::new();
    for (ty, full) in [("i32", 32), ("i64", 64)] {
        let widths: &[u32] = if full == 32 { &[32, 8, 16] } else { &[64, 8, 16, 32] };
        for &bits in widths {
            let narrow = bits != full;
            let op = |kind, name: String| Op { name, ty, bits, kind };
            ops.push(op(
                Kind::Load,
                if narrow { format!("{ty}.atomic.load{bits}_u") } else { format!("{ty}.atomic.load") },
            ));
            ops.push(op(
                Kind::Store,
                if narrow { format!("{ty}.atomic.store{bits}") } else { format!("{ty}.atomic.store") },
            ));
            for rmw in ["add", "sub", "and", "or", "xor", "xchg", "cmpxchg"] {
                let kind = if rmw == "cmpxchg" { Kind::Cmpxchg } else { Kind::Rmw };
                let name =
                    if narrow { format!("{ty}.atomic.rmw{bits}.{rmw}_u") } else { format!("{ty}.atomic.rmw.{rmw}") };
                ops.push(op(kind, name));
            }
        }
    }
    ops
}

/// A module with one memory (shared or not) exporting each operator as a
/// function `(addr, operands...)` twice: `NAME` (offset 0) and `NAME/8`
/// (static offset 8); plus `init`, `lo`, `hi` to set and read bytes 0..16,
/// and wait/notify.
fn module_text(shared: bool) -> String {
    let mut wat = String::from("(module\n");
    wat += if shared { "  (memory (export \"memory\") 1 1 shared)\n" } else { "  (memory (export \"memory\") 1 1)\n" };
    wat += "  (func (export \"init\") (param i64 i64) (i64.store (i32.const 0) (local.get 0)) (i64.store (i32.const 8) (local.get 1)))\n";
    wat += "  (func (export \"lo\") (result i64) (i64.load (i32.const 0)))\n";
    wat += "  (func (export \"hi\") (result i64) (i64.load (i32.const 8)))\n";
    wat += "  (func (export \"notify\") (param i32 i32) (result i32) (memory.atomic.notify (local.get 0) (local.get 1)))\n";
    wat += "  (func (export \"wait32\") (param i32 i32 i64) (result i32) (memory.atomic.wait32 (local.get 0) (local.get 1) (local.get 2)))\n";
    wat += "  (func (export \"wait64\") (param i32 i64 i64) (result i32) (memory.atomic.wait64 (local.get 0) (local.get 1) (local.get 2)))\n";
    wat += "  (func (export \"fence\") (atomic.fence))\n";
    for op in ops() {
        let ty = op.ty;
        let (params, result, args) = match op.kind {
            Kind::Load => ("", format!("(result {ty})"), ""),
            Kind::Store => (ty, String::new(), "(local.get 1)"),
            Kind::Rmw => (ty, format!("(result {ty})"), "(local.get 1)"),
            Kind::Cmpxchg => (
                if ty == "i32" { "i32 i32" } else { "i64 i64" },
                format!("(result {ty})"),
                "(local.get 1) (local.get 2)",
            ),
        };
        for (suffix, offset) in [("", ""), ("/8", " offset=8")] {
            wat += &format!(
                "  (func (export \"{}{suffix}\") (param i32 {params}) {result} ({}{offset} (local.get 0) {args}))\n",
                op.name, op.name
            );
        }
    }
    wat + ")"
}

fn instance(engine: &Engine, text: &str) -> (Store<()>, Instance) {
    let module = Module::new(engine, text).unwrap();
    let mut store = Store::new(engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    (store, instance)
}

fn call(store: &mut Store<()>, instance: &Instance, name: &str, args: &[Val]) -> Result<Vec<Val>, Error> {
    let func = instance.get_func(&*store, name).unwrap_or_else(|| panic!("no export {name}"));
    let mut results = vec![Val::I32(0); func.ty(&*store).results().len()];
    func.call(&mut *store, args, &mut results)?;
    Ok(results)
}

fn val(ty: &str, v: i64) -> Val {
    if ty == "i32" {
        Val::I32(v as i32)
    } else {
        Val::I64(v)
    }
}

fn as_i64(v: &Val) -> i64 {
    match v {
        Val::I32(x) => *x as u32 as i64,
        Val::I64(x) => *x,
        other => panic!("not an integer: {other:?}"),
    }
}

const VALUES: &[i64] = &[
    0,
    1,
    -1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    i64::MIN,
    i64::MAX,
    0x0123_4567_89ab_cdef,
];

const INITS: &[(i64, i64)] = &[
    (0, 0),
    (-1, -1),
    (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210u64 as i64),
    (0x8080_8080_8080_8080u64 as i64, 0x7f7f_7f7f_7f7f_7f7f),
];

/// Runs every operator at aligned addresses over [`INITS`] and [`VALUES`]
/// in one engine; one line per call: its result or trap, then bytes 0..16.
fn transcript(engine: &Engine, shared: bool) -> Vec<String> {
    let (mut store, inst) = instance(engine, &module_text(shared));
    let mut out = Vec::new();
    for op in ops() {
        let size = (op.bits / 8) as i32;
        // Aligned addresses inside bytes 0..16, with and without the static offset.
        let sites: Vec<(String, i32)> = vec![
            (op.name.clone(), 0),
            (op.name.clone(), size),
            (op.name.clone(), 8 - size),
            (format!("{}/8", op.name), 0),
            (format!("{}/8", op.name), 8 - size),
        ];
        for &(lo, hi) in INITS {
            for (name, addr) in &sites {
                let operands: Vec<Vec<Val>> = match op.kind {
                    Kind::Load => vec![vec![]],
                    Kind::Store | Kind::Rmw => VALUES.iter().map(|&v| vec![val(op.ty, v)]).collect(),
                    Kind::Cmpxchg => {
                        // What the cell holds (the exchange happens), that with a bit set
                        // above the access's width (wrapped: happens too), and other values.
                        let at = *addr as u32 + if name.ends_with("/8") { 8 } else { 0 };
                        let bytes = [lo.to_le_bytes(), hi.to_le_bytes()].concat();
                        let mut cell = [0u8; 8];
                        cell[..size as usize].copy_from_slice(&bytes[at as usize..at as usize + size as usize]);
                        let current = i64::from_le_bytes(cell);
                        let above = if op.bits < 64 { current | (1i64 << op.bits) } else { current };
                        let mut expected = vec![current, above];
                        expected.extend_from_slice(&VALUES[..6]);
                        expected
                            .iter()
                            .flat_map(|&e| [0x55, -1, 0x1234_5678].map(|r| vec![val(op.ty, e), val(op.ty, r)]))
                            .collect()
                    }
                };
                for args in operands {
                    call(&mut store, &inst, "init", &[Val::I64(lo), Val::I64(hi)]).unwrap();
                    let mut all = vec![Val::I32(*addr)];
                    all.extend(args.iter().cloned());
                    let r = match call(&mut store, &inst, name, &all) {
                        Ok(v) => v.iter().map(|v| format!("{:#x}", as_i64(v))).collect::<Vec<_>>().join(","),
                        Err(e) => format!("error {e}"),
                    };
                    let lo = as_i64(&call(&mut store, &inst, "lo", &[]).unwrap()[0]);
                    let hi = as_i64(&call(&mut store, &inst, "hi", &[]).unwrap()[0]);
                    out.push(format!("{name}({all:?}) init {lo:#x} {hi:#x}: {r} -> {lo:#x} {hi:#x}"));
                }
            }
        }
    }
    out
}

#[test]
fn every_atomic_operator_at_every_width_agrees_with_the_interpreter() {
    for shared in [true, false] {
        let expected = transcript(&engine(Strategy::Interpreter, false), shared);
        assert!(expected.len() > 5_000, "{}", expected.len());
        assert!(expected.iter().all(|l| !l.contains("error")), "an aligned in-bounds atomic trapped");
        for &(label, explicit) in COMPILED {
            let got = transcript(&engine(Strategy::Cranelift, explicit), shared);
            assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(&expected) {
                assert_eq!(g, e, "{label}, shared {shared}");
            }
        }
    }
}

/// A few results written out (the differential test above cannot see an
/// error both tiers share).
#[test]
fn atomic_results_are_the_specs() {
    for (label, tier, explicit) in [
        ("interp", Strategy::Interpreter, false),
        ("guard", Strategy::Cranelift, false),
        ("explicit", Strategy::Cranelift, true),
    ] {
        let (mut store, inst) = instance(&engine(tier, explicit), &module_text(true));
        let mut run = |name: &str, args: &[Val]| -> (i64, i64) {
            call(&mut store, &inst, "init", &[Val::I64(0x1111_1111_1111_11ff), Val::I64(0)]).unwrap();
            let r = as_i64(&call(&mut store, &inst, name, args).unwrap()[0]);
            (r, as_i64(&call(&mut store, &inst, "lo", &[]).unwrap()[0]))
        };
        // Narrow rmw: the old byte zero-extended, the sum wrapped to the byte.
        assert_eq!(run("i32.atomic.rmw8.add_u", &[Val::I32(0), Val::I32(1)]), (0xff, 0x1111_1111_1111_1100), "{label}");
        assert_eq!(
            run("i64.atomic.rmw16.sub_u", &[Val::I32(0), Val::I64(0x1200)]),
            (0x11ff, 0x1111_1111_1111_ffff),
            "{label}"
        );
        assert_eq!(
            run("i64.atomic.rmw32.xchg_u", &[Val::I32(4), Val::I64(-1)]),
            (0x1111_1111, 0xffff_ffff_1111_11ff_u64 as i64),
            "{label}"
        );
        // cmpxchg compares the expected value wrapped to the width.
        assert_eq!(
            run("i32.atomic.rmw8.cmpxchg_u", &[Val::I32(0), Val::I32(0x1ff), Val::I32(0x42)]),
            (0xff, 0x1111_1111_1111_1142),
            "{label}"
        );
        assert_eq!(
            run("i64.atomic.rmw.cmpxchg", &[Val::I32(0), Val::I64(0), Val::I64(7)]),
            (0x1111_1111_1111_11ff, 0x1111_1111_1111_11ff),
            "{label}"
        );
        assert_eq!(run("i64.atomic.load16_u/8", &[Val::I32(-8i32 + 8)]), (0, 0x1111_1111_1111_11ff), "{label}");
        call(&mut store, &inst, "fence", &[]).unwrap();
    }
}

fn trap_of(r: Result<Vec<Val>, Error>) -> String {
    match r {
        Ok(v) => format!("returned {v:?}"),
        Err(e) => e.as_trap().map_or_else(|| format!("error {e}"), |t| t.message().to_string()),
    }
}

/// For each operator: the outcome at a misaligned address, past the end, and
/// both at once (bounds win), with and without a static offset.
fn trap_transcript(engine: &Engine, shared: bool) -> Vec<String> {
    let (mut store, inst) = instance(engine, &module_text(shared));
    let mut out = Vec::new();
    for op in ops() {
        let size = (op.bits / 8) as i32;
        let operands = match op.kind {
            Kind::Load => vec![],
            Kind::Store | Kind::Rmw => vec![val(op.ty, 1)],
            Kind::Cmpxchg => vec![val(op.ty, 0), val(op.ty, 1)],
        };
        let mut cases = vec![
            (op.name.clone(), 65536 - size),
            (op.name.clone(), 65536),
            (op.name.clone(), -1),
            (format!("{}/8", op.name), 65528),
            (format!("{}/8", op.name), 65536 - 8 - size),
        ];
        if size > 1 {
            cases.extend([
                (op.name.clone(), 1),
                (op.name.clone(), size + size / 2),
                (format!("{}/8", op.name), 1),
                // past the end and misaligned: out of bounds
                (op.name.clone(), 65536 - size + 1),
                (format!("{}/8", op.name), 65536 - 8 - size + 1),
                (op.name.clone(), 65537),
            ]);
        }
        for (name, addr) in cases {
            let mut args = vec![Val::I32(addr)];
            args.extend(operands.iter().cloned());
            out.push(format!("{name}({addr}): {}", trap_of(call(&mut store, &inst, &name, &args))));
        }
    }
    // wait and notify: bounds, then alignment, then (wait) shared-ness.
    for (name, args) in [
        ("notify", vec![Val::I32(65536), Val::I32(1)]),
        ("notify", vec![Val::I32(2), Val::I32(1)]),
        ("notify", vec![Val::I32(65533), Val::I32(1)]),
        ("notify", vec![Val::I32(0), Val::I32(1)]),
        ("wait32", vec![Val::I32(65536), Val::I32(0), Val::I64(0)]),
        ("wait32", vec![Val::I32(2), Val::I32(0), Val::I64(0)]),
        ("wait32", vec![Val::I32(0), Val::I32(1), Val::I64(0)]),
        ("wait32", vec![Val::I32(0), Val::I32(0), Val::I64(1000)]),
        ("wait64", vec![Val::I32(65532), Val::I64(0), Val::I64(0)]),
        ("wait64", vec![Val::I32(4), Val::I64(0), Val::I64(0)]),
        ("wait64", vec![Val::I32(0), Val::I64(1), Val::I64(0)]),
        ("wait64", vec![Val::I32(0), Val::I64(0), Val::I64(1000)]),
    ] {
        out.push(format!("{name}({args:?}): {}", trap_of(call(&mut store, &inst, name, &args))));
    }
    out
}

#[test]
fn misaligned_and_out_of_bounds_atomics_trap_as_in_the_interpreter() {
    for shared in [true, false] {
        let expected = trap_transcript(&engine(Strategy::Interpreter, false), shared);
        // The interpreter's messages are the spec's.
        let find = |needle: &str| expected.iter().find(|l| l.starts_with(needle)).unwrap().clone();
        assert!(find("i32.atomic.load(1):").ends_with("unaligned atomic"), "{expected:?}");
        assert!(find("i64.atomic.rmw.cmpxchg(65537):").ends_with("out of bounds memory access"));
        assert!(find("i64.atomic.rmw32.add_u(65533):").ends_with("out of bounds memory access"));
        assert!(find("i32.atomic.rmw16.xchg_u(65534):").starts_with("i32.atomic.rmw16.xchg_u(65534): returned"));
        let wait = find("wait32([I32(0), I32(0), I64(1000)])");
        if shared {
            assert!(wait.ends_with("returned [I32(2)]"), "{wait}");
        } else {
            assert!(wait.ends_with("expected shared memory"), "{wait}");
        }
        for &(label, explicit) in COMPILED {
            let got = trap_transcript(&engine(Strategy::Cranelift, explicit), shared);
            assert_eq!(got, expected, "{label}, shared {shared}");
        }
    }
}

const COUNTER: &str = r#"(module
  (import "env" "memory" (memory 1 1 shared))
  (func (export "inc") (param $n i32)
    (loop $l
      (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 1)))
      (drop (i64.atomic.rmw.add (i32.const 8) (i64.const 3)))
      (drop (i32.atomic.rmw8.add_u (i32.const 16) (i32.const 1)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "get32") (param i32) (result i32) (i32.atomic.load (local.get 0)))
  (func (export "get64") (param i32) (result i64) (i64.atomic.load (local.get 0))))"#;

#[test]
fn four_threads_of_compiled_atomic_increments_lose_none() {
    for &(label, explicit) in COMPILED {
        let engine = engine(Strategy::Cranelift, explicit);
        let memory = SharedMemory::new(&engine, MemoryType::shared(1, 1)).unwrap();
        let module = Module::new(&engine, COUNTER).unwrap();
        let mut linker = Linker::new(&engine);
        linker.define("env", "memory", memory.clone()).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (engine, linker, module) = (&engine, &linker, &module);
                s.spawn(move || {
                    let mut store = Store::new(engine, ());
                    let inst = linker.instantiate(&mut store, module).unwrap();
                    let inc = inst.get_typed_func::<i32, ()>(&store, "inc").unwrap();
                    inc.call(&mut store, 10_000).unwrap();
                });
            }
        });
        let mut store = Store::new(&engine, ());
        let inst = linker.instantiate(&mut store, &module).unwrap();
        let get32 = inst.get_typed_func::<i32, i32>(&store, "get32").unwrap();
        let get64 = inst.get_typed_func::<i32, i64>(&store, "get64").unwrap();
        assert_eq!(get32.call(&mut store, 0).unwrap(), 40_000, "{label}");
        assert_eq!(get64.call(&mut store, 8).unwrap(), 120_000, "{label}");
        // 40,000 byte increments wrap: 40,000 mod 256.
        assert_eq!(get32.call(&mut store, 16).unwrap(), 40_000 % 256, "{label}");
    }
}

const WAITER: &str = r#"(module
  (import "env" "memory" (memory 1 1 shared))
  ;; waits while the flag at 0 is 0; returns the value at 8 once it is set
  (func (export "wait_for_flag") (result i32)
    (block $done
      (loop $retry
        (br_if $done (i32.atomic.load (i32.const 0)))
        (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1)))
        (br $retry)))
    (i32.load (i32.const 8)))
  ;; sets the value and the flag, notifies: the number of waiters woken
  (func (export "set_flag") (param i32) (result i32)
    (i32.store (i32.const 8) (local.get 0))
    (i32.atomic.store (i32.const 0) (i32.const 1))
    (memory.atomic.notify (i32.const 0) (i32.const 1)))
  (func (export "reset") (i32.atomic.store (i32.const 0) (i32.const 0)))
  (func (export "waiters") (result i32) (memory.atomic.notify (i32.const 64) (i32.const 0)))
  ;; a wait that cannot block (flag 1 expected 7): to make the function hot
  (func (export "warm_wait") (result i32) (memory.atomic.wait32 (i32.const 4) (i32.const 7) (i64.const -1)))
  (func (export "warm_notify") (result i32) (memory.atomic.notify (i32.const 4) (i32.const 1))))"#;

/// With automatic tiering (compiled synchronously once hot): one side made
/// hot first (compiled), the other called too few times to tier up
/// (interpreted); the engine's counters show that nothing else was compiled.
#[test]
fn wait_and_notify_meet_across_the_compiled_and_the_interpreted_tier() {
    for compiled_waiter in [true, false] {
        let mut config = Config::new();
        config.strategy(Strategy::Auto).tier_up_threshold(200).tier_up_synchronously(true);
        let engine = Engine::new(&config);
        let memory = SharedMemory::new(&engine, MemoryType::shared(1, 1)).unwrap();
        let module = Module::new(&engine, WAITER).unwrap();
        let mut linker = Linker::new(&engine);
        linker.define("env", "memory", memory.clone()).unwrap();
        let mut store = Store::new(&engine, ());
        let inst = linker.instantiate(&mut store, &module).unwrap();
        // Make one side hot (compiled): a first call of the function itself
        // that returns at once (the flag is set, or nobody waits).
        let before = engine.tier_stats().functions_compiled;
        if compiled_waiter {
            memory.write(0, &1u32.to_le_bytes()).unwrap();
            for _ in 0..300 {
                call(&mut store, &inst, "wait_for_flag", &[]).unwrap();
            }
            call(&mut store, &inst, "reset", &[]).unwrap();
        } else {
            for _ in 0..300 {
                call(&mut store, &inst, "set_flag", &[Val::I32(0)]).unwrap();
            }
            call(&mut store, &inst, "reset", &[]).unwrap();
        }
        let warm = engine.tier_stats();
        assert!(warm.functions_compiled > before, "{warm:?}");
        let mut woken_total = 0;
        for round in 0..20 {
            std::thread::scope(|s| {
                let waiter = s.spawn(|| {
                    let mut store = Store::new(&engine, ());
                    let inst = linker.instantiate(&mut store, &module).unwrap();
                    as_i64(&call(&mut store, &inst, "wait_for_flag", &[]).unwrap()[0])
                });
                // Most rounds notify a waiter already parked; a waiter not
                // parked yet sees the flag instead.
                std::thread::sleep(Duration::from_millis(10));
                let woken = as_i64(&call(&mut store, &inst, "set_flag", &[Val::I32(100 + round)]).unwrap()[0]);
                assert!(woken <= 1, "{woken}");
                woken_total += woken;
                assert_eq!(waiter.join().unwrap(), 100 + round as i64, "compiled waiter {compiled_waiter}");
                call(&mut store, &inst, "reset", &[]).unwrap();
            });
        }
        assert!(woken_total > 0, "no round woke a parked waiter");
        let after = engine.tier_stats();
        assert_eq!(
            (after.functions_compiled, after.loop_entries_compiled),
            (warm.functions_compiled, warm.loop_entries_compiled),
            "the interpreted side stayed interpreted"
        );
    }
}

const GROWER: &str = r#"(module
  (import "env" "memory" (memory 1 64 shared))
  ;; touches the last 4 bytes of the memory as it is now, n times (plain and
  ;; atomic accesses); returns the last size seen in pages
  (func (export "touch_last") (param $n i32) (result i32)
    (local $at i32)
    (loop $l
      (local.set $at (i32.sub (i32.shl (memory.size) (i32.const 16)) (i32.const 4)))
      (i32.store (local.get $at) (i32.const 7))
      (drop (i32.load (local.get $at)))
      (drop (i32.atomic.rmw.add (local.get $at) (i32.const 1)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (memory.size))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#;

#[test]
fn a_compiled_guest_keeps_working_while_another_thread_grows_its_shared_memory() {
    for &(label, explicit) in COMPILED {
        let engine = engine(Strategy::Cranelift, explicit);
        let memory = SharedMemory::new(&engine, MemoryType::shared(1, 64)).unwrap();
        let module = Module::new(&engine, GROWER).unwrap();
        let mut linker = Linker::new(&engine);
        linker.define("env", "memory", memory.clone()).unwrap();
        let done = AtomicBool::new(false);
        let start = Barrier::new(2);
        std::thread::scope(|s| {
            let toucher = s.spawn(|| {
                let mut store = Store::new(&engine, ());
                let inst = linker.instantiate(&mut store, &module).unwrap();
                let touch = inst.get_typed_func::<i32, i32>(&store, "touch_last").unwrap();
                start.wait();
                let mut last = 0;
                while !done.load(Ordering::SeqCst) {
                    last = touch.call(&mut store, 50).unwrap();
                }
                touch.call(&mut store, 1).unwrap().max(last)
            });
            let mut store = Store::new(&engine, ());
            let inst = linker.instantiate(&mut store, &module).unwrap();
            let grow = inst.get_typed_func::<i32, i32>(&store, "grow").unwrap();
            start.wait();
            // Half the growth from compiled code (memory.grow), half from the host.
            for pages in 1..32 {
                assert_eq!(grow.call(&mut store, 1).unwrap(), pages, "{label}");
                std::thread::sleep(Duration::from_micros(200));
            }
            for pages in 32..64 {
                assert_eq!(memory.grow(1).unwrap(), pages as u64, "{label}");
                std::thread::sleep(Duration::from_micros(200));
            }
            assert_eq!(grow.call(&mut store, 1).unwrap(), -1, "{label}: past the maximum");
            done.store(true, Ordering::SeqCst);
            assert_eq!(toucher.join().unwrap(), 64, "{label}");
        });
        let mut tail = [0u8; 4];
        memory.read(64 * 65536 - 4, &mut tail).unwrap();
        assert_eq!(u32::from_le_bytes(tail), 8, "{label}");
    }
}

/// What a module of atomics does in a fresh store of `engine`: an rmw, a
/// misaligned access, an out-of-bounds one, a wait that times out, a notify.
fn observe_atomics(engine: &Engine, module: &Module) -> Vec<String> {
    let mut store = Store::new(engine, ());
    let inst = Instance::new(&mut store, module, &[]).unwrap();
    let mut out = Vec::new();
    for (name, args) in [
        ("i64.atomic.rmw.add", vec![Val::I32(8), Val::I64(5)]),
        ("i64.atomic.rmw.add", vec![Val::I32(8), Val::I64(5)]),
        ("i32.atomic.rmw16.cmpxchg_u", vec![Val::I32(2), Val::I32(0), Val::I32(9)]),
        ("i32.atomic.load", vec![Val::I32(2)]),
        ("i32.atomic.load", vec![Val::I32(65536)]),
        ("wait32", vec![Val::I32(16), Val::I32(0), Val::I64(1_000)]),
        ("wait64", vec![Val::I32(4), Val::I64(0), Val::I64(0)]),
        ("notify", vec![Val::I32(0), Val::I32(1)]),
    ] {
        out.push(format!("{name}{args:?}: {}", trap_of(call(&mut store, &inst, name, &args))));
    }
    out
}

/// Artifacts and the code cache carry the new trap code and call the new
/// builtins (their table is the runtime's, never persisted): a loaded module
/// behaves as the one compiled in the process.
#[test]
fn artifacts_and_the_code_cache_run_atomics_as_compiled() {
    let text = module_text(true);
    let engine = engine(Strategy::Cranelift, false);
    let module = Module::new(&engine, &text).unwrap();
    let expected = observe_atomics(&engine, &module);
    assert_eq!(
        expected,
        [
            "i64.atomic.rmw.add[I32(8), I64(5)]: returned [I64(0)]",
            "i64.atomic.rmw.add[I32(8), I64(5)]: returned [I64(5)]",
            "i32.atomic.rmw16.cmpxchg_u[I32(2), I32(0), I32(9)]: returned [I32(0)]",
            "i32.atomic.load[I32(2)]: unaligned atomic",
            "i32.atomic.load[I32(65536)]: out of bounds memory access",
            "wait32[I32(16), I32(0), I64(1000)]: returned [I32(2)]",
            "wait64[I32(4), I64(0), I64(0)]: unaligned atomic",
            "notify[I32(0), I32(1)]: returned [I32(0)]",
        ]
    );
    let bytes = module.serialize().unwrap();
    let fresh = self::engine(Strategy::Cranelift, false);
    let loaded = Module::deserialize(&fresh, &bytes).unwrap();
    assert_eq!(observe_atomics(&fresh, &loaded), expected, "artifact");

    let dir = std::env::temp_dir().join(format!("carnac-threads-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for round in 0..2 {
        let mut config = Config::new();
        config.strategy(Strategy::Cranelift).cache_dir(Some(dir.clone()));
        let engine = Engine::new(&config);
        let module = Module::new(&engine, &text).unwrap();
        assert_eq!(observe_atomics(&engine, &module), expected, "code cache, round {round}");
        assert_eq!(engine.cache_stats().hits, round, "round {round}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Automatic tiering with atomics in both tiers in one instance: a hot loop
/// of atomic operations moves into compiled code at its header (on-stack
/// replacement) and finishes with the interpreter's totals, while another
/// function stays interpreted.
#[test]
fn tiering_moves_a_loop_of_atomics_into_compiled_code() {
    const LOOP: &str = r#"(module
      (memory (export "memory") 1 1 shared)
      (func (export "spin") (param $n i32) (result i64)
        (local $i i32)
        (loop $l
          (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 3)))
          (drop (i64.atomic.rmw.xor (i32.const 8) (i64.extend_i32_u (local.get $i))))
          (drop (i32.atomic.rmw8.cmpxchg_u (i32.const 16) (local.get $i) (i32.add (local.get $i) (i32.const 1))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
        (i64.add (i64.extend_i32_u (i32.atomic.load (i32.const 0)))
          (i64.add (i64.atomic.load (i32.const 8)) (i64.atomic.load8_u (i32.const 16)))))
      (func (export "peek") (param i32) (result i32) (i32.atomic.load (local.get 0))))"#;
    let run = |config: &Config| {
        let engine = Engine::new(config);
        let (mut store, inst) = instance(&engine, LOOP);
        let spin = inst.get_typed_func::<i32, i64>(&store, "spin").unwrap();
        let peek = inst.get_typed_func::<i32, i32>(&store, "peek").unwrap();
        let r = spin.call(&mut store, 20_000).unwrap();
        let misaligned = peek.call(&mut store, 1).unwrap_err();
        (r, peek.call(&mut store, 0).unwrap(), misaligned.as_trap().unwrap().message().to_string(), engine.tier_stats())
    };
    let mut interp = Config::new();
    interp.strategy(Strategy::Interpreter);
    let (expected, counter, trap, _) = run(&interp);
    assert_eq!(counter, 60_000);
    assert_eq!(trap, "unaligned atomic");
    let mut auto = Config::new();
    auto.strategy(Strategy::Auto).tier_up_threshold(1_000).tier_up_synchronously(true);
    let (got, counter, trap, stats) = run(&auto);
    assert_eq!((got, counter, trap.as_str()), (expected, 60_000, "unaligned atomic"));
    assert!(stats.loops_entered >= 1, "{stats:?}");
}

/// A compiled wait with no timeout stays interruptible: the store's interrupt
/// flag ends it with `Interrupted`, and so does an epoch deadline (whose
/// callback runs as the wait polls, as at a loop header).
#[test]
fn a_compiled_wait_ends_on_an_interrupt_or_an_epoch_deadline() {
    const WAIT: &str = r#"(module
      (import "env" "memory" (memory 1 1 shared))
      (func (export "wait") (result i32) (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1))))"#;
    for epoch in [false, true] {
        let mut config = Config::new();
        config.strategy(Strategy::Cranelift);
        if epoch {
            config.epoch_interruption(true);
        } else {
            config.interruptible(true);
        }
        let engine = Engine::new(&config);
        let memory = SharedMemory::new(&engine, MemoryType::shared(1, 1)).unwrap();
        let module = Module::new(&engine, WAIT).unwrap();
        let mut linker = Linker::new(&engine);
        linker.define("env", "memory", memory).unwrap();
        let mut store = Store::new(&engine, 0u32);
        if epoch {
            store.set_epoch_deadline(2);
            // Called each time the wait polls past the deadline: it extends it twice, then stops the call.
            store.epoch_deadline_callback(|store| {
                *store.data_mut() += 1;
                Ok(if *store.data() < 3 { UpdateDeadline::Continue(1) } else { UpdateDeadline::Interrupt })
            });
        }
        let inst = linker.instantiate(&mut store, &module).unwrap();
        let wait = inst.get_typed_func::<(), i32>(&store, "wait").unwrap();
        let handle = store.interrupt_handle().unwrap();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                // Let the call park first.
                std::thread::sleep(Duration::from_millis(30));
                while !done.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                    if epoch {
                        engine.increment_epoch();
                    } else {
                        handle.interrupt();
                    }
                }
            });
            let start = std::time::Instant::now();
            let err = wait.call(&mut store, ()).unwrap_err();
            done.store(true, Ordering::SeqCst);
            assert_eq!(err.as_trap().unwrap().kind(), TrapKind::Interrupted, "epoch {epoch}");
            assert!(start.elapsed() < Duration::from_secs(5), "epoch {epoch}: {:?}", start.elapsed());
        });
        if epoch {
            assert_eq!(*store.data(), 3, "the callback ran at each poll past the deadline");
        }
    }
}

/// A compiled loop of plain (non-atomic) accesses, each bounds-checked,
/// spinning until another thread has grown the shared memory and set a flag,
/// then writing to the new page: with explicit bounds checks the length must
/// be loaded afresh at each access. (Without atomics in the loop nothing
/// forces a reload: the length of an unshared memory, loaded once before the
/// loop, would be reused, still one page, and the write would trap.)
#[test]
fn a_compiled_spin_loop_sees_the_length_another_thread_grew() {
    const SPIN: &str = r#"(module
      (import "env" "memory" (memory 1 4 shared))
      (func (export "spin_then_touch") (result i32)
        (local $sum i32)
        (local.set $sum (i32.load (i32.const 8)))
        (loop $spin
          (local.set $sum (i32.add (local.get $sum) (i32.load (i32.const 12))))
          (br_if $spin (i32.eqz (i32.load (i32.const 0)))))
        (i32.store (i32.const 65536) (i32.const 5))
        (i32.add (local.get $sum) (i32.load (i32.const 65536)))))"#;
    for &(label, explicit) in COMPILED {
        let engine = engine(Strategy::Cranelift, explicit);
        let memory = SharedMemory::new(&engine, MemoryType::shared(1, 4)).unwrap();
        let module = Module::new(&engine, SPIN).unwrap();
        let mut linker = Linker::new(&engine);
        linker.define("env", "memory", memory.clone()).unwrap();
        let mut store = Store::new(&engine, ());
        let inst = linker.instantiate(&mut store, &module).unwrap();
        let spin = inst.get_typed_func::<(), i32>(&store, "spin_then_touch").unwrap();
        std::thread::scope(|s| {
            let grower = s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                assert_eq!(memory.grow(1).unwrap(), 1);
                memory.write(0, &1u32.to_le_bytes()).unwrap();
            });
            assert_eq!(spin.call(&mut store, ()).unwrap(), 5, "{label}");
            grower.join().unwrap();
        });
    }
}
