//! Multi-memory (WebAssembly 3.0): one module with two memories, every kind of
//! memory instruction on the second one (loads and stores in the forms the
//! interpreter fuses, SIMD accesses, `memory.size`, `.grow`, `.fill`, `.copy`
//! within and across memories, `.init`), interleaved with accesses to memory 0,
//! in every tier, plain and with fuel, write tracking and eager translation on
//! (the interpreter's other loop), and snapshots of such an instance. The spec
//! suite's multi-memory files check the plain instructions; this checks the
//! rest and that memory 0 is untouched.

use carnac::*;

const TIERS: &[Strategy] =
    if cfg!(carnac_compiled) { &[Strategy::Interpreter, Strategy::Cranelift] } else { &[Strategy::Interpreter] };

const WAT: &str = r#"(module
    (memory $a 2)
    (memory $b 1 3)
    (data (memory $b) (i32.const 8) "\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\10")
    (data $seg "\aa\bb\cc")
    ;; Constant address, indexed (an add folded in), displaced (an add of a constant).
    (func (export "load_const") (result i32) (i32.load $b (i32.const 8)))
    (func (export "load_indexed") (param i32 i32) (result i32)
        (i32.load8_u $b (i32.add (local.get 0) (local.get 1))))
    (func (export "load_displaced") (param i32) (result i32)
        (i32.load16_u $b (i32.add (local.get 0) (i32.const 9))))
    ;; A result used right away (the interpreter's accumulator), and into a local.
    (func (export "load_add") (param i32) (result i32)
        (local $t i32)
        (local.set $t (i32.load8_u $b (local.get 0)))
        (i32.add (i32.add (i32.load8_u $b (local.get 0)) (i32.const 1)) (local.get $t)))
    ;; Copies between the memories, load then store (a fused pair on memory 0).
    (func (export "copy_b_to_a") (param i32 i32)
        (i32.store $a (local.get 0) (i32.load $b (local.get 1))))
    (func (export "copy_a_to_b") (param i32 i32)
        (i64.store $b (local.get 0) (i64.load $a (local.get 1))))
    (func (export "load_a") (param i32) (result i32) (i32.load $a (local.get 0)))
    (func (export "load_b") (param i32) (result i32) (i32.load $b (local.get 0)))
    (func (export "store_b") (param i32 i32) (i32.store $b (local.get 0) (local.get 1)))
    (func (export "store_b_const") (i32.store8 $b (i32.const 100) (i32.const 7)))
    ;; A loop that alternates: sum of a[i] + b[i] over bytes [0, n).
    (func (export "sum_both") (param $n i32) (result i32)
        (local $i i32) (local $s i32)
        (block $done
            (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
                (local.set $s (i32.add (local.get $s)
                    (i32.add (i32.load8_u $a (local.get $i)) (i32.load8_u $b (local.get $i)))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $next)))
        (local.get $s))
    ;; SIMD on memory 1.
    (func (export "simd_copy") (param i32 i32)
        (v128.store $b (local.get 0) (v128.load $b (local.get 1))))
    (func (export "simd_lanes") (param i32) (result i32)
        (i32x4.extract_lane 1
            (v128.load32_lane $b 1 (local.get 0) (v128.load32_splat $b (i32.const 8)))))
    (func (export "simd_store_lane") (param i32)
        (v128.store8_lane $b 3 (local.get 0) (v128.load $b (i32.const 8))))
    (func (export "simd_extend") (result i64)
        (i64x2.extract_lane 1 (v128.load32x2_u $b (i32.const 8))))
    ;; Bulk and size.
    (func (export "size_a") (result i32) (memory.size $a))
    (func (export "size_b") (result i32) (memory.size $b))
    (func (export "grow_b") (param i32) (result i32) (memory.grow $b (local.get 0)))
    (func (export "fill_b") (param i32 i32 i32) (memory.fill $b (local.get 0) (local.get 1) (local.get 2)))
    (func (export "copy_within_b") (param i32 i32 i32) (memory.copy $b $b (local.get 0) (local.get 1) (local.get 2)))
    (func (export "copy_across") (param i32 i32 i32) (memory.copy $a $b (local.get 0) (local.get 1) (local.get 2)))
    (func (export "init_b") (param i32 i32 i32) (memory.init $b $seg (local.get 0) (local.get 1) (local.get 2)))
)"#;

fn check(tier: Strategy, instrumented: bool) {
    let mut config = Config::new();
    config.strategy(tier);
    config.consume_fuel(instrumented).lazy_translation(!instrumented).track_memory_writes(instrumented);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, WAT).unwrap();
    let mut store = Store::new(&engine, ());
    if instrumented {
        store.set_fuel(u64::MAX).unwrap();
    }
    let inst = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let what = format!("{tier:?}, instrumented: {instrumented}");
    macro_rules! call {
        ($name:literal, $params:ty, $results:ty, $args:expr) => {
            inst.get_typed_func::<$params, $results>(&store, $name).unwrap().call(&mut store, $args)
        };
    }
    let trap = |r: Result<(), Error>| r.unwrap_err().as_trap().map(|t| t.kind());

    assert_eq!(call!("load_const", (), i32, ()).unwrap(), 0x0403_0201, "{what}");
    assert_eq!(call!("load_indexed", (i32, i32), i32, (8, 3)).unwrap(), 4, "{what}");
    assert_eq!(call!("load_displaced", i32, i32, 0).unwrap(), 0x0302, "{what}");
    assert_eq!(call!("load_add", i32, i32, 10).unwrap(), 3 + 1 + 3, "{what}");
    assert_eq!(call!("load_a", i32, i32, 8).unwrap(), 0, "{what}: memory 0 has no data");

    call!("copy_b_to_a", (i32, i32), (), (0, 8)).unwrap();
    assert_eq!(call!("load_a", i32, i32, 0).unwrap(), 0x0403_0201, "{what}");
    assert_eq!(call!("load_b", i32, i32, 0).unwrap(), 0, "{what}: memory 1 unchanged");
    call!("copy_a_to_b", (i32, i32), (), (200, 0)).unwrap();
    assert_eq!(call!("load_b", i32, i32, 200).unwrap(), 0x0403_0201, "{what}");
    call!("store_b_const", (), (), ()).unwrap();
    assert_eq!(call!("load_b", i32, i32, 100).unwrap(), 7, "{what}");
    assert_eq!(call!("load_a", i32, i32, 100).unwrap(), 0, "{what}");
    // bytes 0..24 of b: 0 x8, 1..=16; of a: 1, 2, 3, 4 then 0.
    assert_eq!(call!("sum_both", i32, i32, 24).unwrap(), (1..=16).sum::<i32>() + 10, "{what}");

    call!("simd_copy", (i32, i32), (), (300, 8)).unwrap();
    assert_eq!(call!("load_b", i32, i32, 312).unwrap(), 0x100f_0e0d, "{what}");
    assert_eq!(call!("simd_lanes", i32, i32, 12).unwrap(), 0x0807_0605, "{what}");
    call!("simd_store_lane", i32, (), 400).unwrap();
    assert_eq!(call!("load_b", i32, i32, 400).unwrap(), 4, "{what}");
    assert_eq!(call!("simd_extend", (), i64, ()).unwrap(), 0x0807_0605, "{what}");

    assert_eq!(call!("size_a", (), i32, ()).unwrap(), 2, "{what}");
    assert_eq!(call!("size_b", (), i32, ()).unwrap(), 1, "{what}");
    // Out of bounds on memory 1 (one page) while memory 0 (two) has the address.
    assert_eq!(trap(call!("load_b", i32, i32, 65535).map(drop)), Some(TrapKind::MemoryOutOfBounds), "{what}");
    assert_eq!(call!("load_a", i32, i32, 65536).unwrap(), 0, "{what}");
    assert_eq!(call!("grow_b", i32, i32, 1).unwrap(), 1, "{what}");
    assert_eq!(call!("size_b", (), i32, ()).unwrap(), 2, "{what}");
    assert_eq!(call!("size_a", (), i32, ()).unwrap(), 2, "{what}");
    assert_eq!(call!("load_b", i32, i32, 65535).unwrap(), 0, "{what}: grown");
    assert_eq!(call!("grow_b", i32, i32, 5).unwrap(), -1, "{what}: past the maximum");

    call!("fill_b", (i32, i32, i32), (), (1000, 0x55, 8)).unwrap();
    assert_eq!(call!("load_b", i32, i32, 1004).unwrap(), 0x5555_5555, "{what}");
    assert_eq!(call!("load_a", i32, i32, 1004).unwrap(), 0, "{what}");
    call!("copy_within_b", (i32, i32, i32), (), (2000, 8, 4)).unwrap();
    assert_eq!(call!("load_b", i32, i32, 2000).unwrap(), 0x0403_0201, "{what}");
    call!("copy_across", (i32, i32, i32), (), (3000, 1000, 4)).unwrap();
    assert_eq!(call!("load_a", i32, i32, 3000).unwrap(), 0x5555_5555, "{what}");
    assert_eq!(call!("load_b", i32, i32, 3000).unwrap(), 0, "{what}");
    call!("init_b", (i32, i32, i32), (), (4000, 0, 3)).unwrap();
    assert_eq!(call!("load_b", i32, i32, 4000).unwrap(), 0x00cc_bbaa, "{what}");
    assert_eq!(call!("load_a", i32, i32, 4000).unwrap(), 0, "{what}");
    let oob = |r: Result<(), Error>| r.unwrap_err().as_trap().map(|t| t.kind());
    assert_eq!(oob(call!("fill_b", (i32, i32, i32), (), (131070, 0, 4))), Some(TrapKind::MemoryOutOfBounds));
    assert_eq!(oob(call!("copy_across", (i32, i32, i32), (), (0, 131070, 4))), Some(TrapKind::MemoryOutOfBounds));
    assert_eq!(oob(call!("init_b", (i32, i32, i32), (), (131070, 0, 3))), Some(TrapKind::MemoryOutOfBounds));
    // Memory 0 still works after the traps on memory 1.
    assert_eq!(call!("load_a", i32, i32, 0).unwrap(), 0x0403_0201, "{what}");
}

#[test]
fn every_memory_instruction_on_a_second_memory() {
    for &tier in TIERS {
        check(tier, false);
        check(tier, true);
    }
}

/// Code that alternates between the memories keeps its results when it moves
/// from the interpreter to the compiled tier in the middle of a loop.
#[test]
#[cfg_attr(not(carnac_compiled), ignore = "needs the compiled tier")]
fn tiering_up_in_a_loop_over_two_memories() {
    let mut config = Config::new();
    config.strategy(Strategy::Auto).tier_up_threshold(10).tier_up_synchronously(true);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, WAT).unwrap();
    let mut store = Store::new(&engine, ());
    let inst = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    inst.get_typed_func::<(i32, i32, i32), ()>(&store, "fill_b").unwrap().call(&mut store, (0, 2, 60_000)).unwrap();
    let copy = inst.get_typed_func::<(i32, i32, i32), ()>(&store, "copy_across").unwrap();
    copy.call(&mut store, (0, 0, 30_000)).unwrap();
    let sum = inst.get_typed_func::<i32, i32>(&store, "sum_both").unwrap();
    for _ in 0..3 {
        assert_eq!(sum.call(&mut store, 60_000).unwrap(), 2 * 30_000 + 2 * 60_000);
    }
    let stats = engine.tier_stats();
    assert!(stats.loops_entered > 0, "the loop continued in compiled code: {stats:?}");
}

/// A snapshot of an instance with two memories captures both, and so does the
/// module it is written as.
#[test]
fn a_snapshot_captures_every_memory() {
    for &tier in TIERS {
        let engine = Engine::new(Config::new().strategy(tier));
        let module = Module::new(&engine, WAT).unwrap();
        let mut store = Store::new(&engine, ());
        let inst = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        let call = |store: &mut Store<()>, inst: &Instance, name: &str, args: (i32, i32)| {
            inst.get_typed_func::<(i32, i32), ()>(&*store, name).unwrap().call(store, args).unwrap()
        };
        call(&mut store, &inst, "copy_b_to_a", (16, 8));
        call(&mut store, &inst, "store_b", (70_000 - 65536, 0x5151));
        inst.get_typed_func::<i32, i32>(&store, "grow_b").unwrap().call(&mut store, 1).unwrap();
        call(&mut store, &inst, "store_b", (70_000, 0x7777));
        let snap = inst.snapshot(&store).unwrap();
        let written = Module::new(&engine, snap.to_wasm(&[]).unwrap()).unwrap();
        for module in [snap.module(), &written] {
            let mut store = Store::new(&engine, ());
            let inst = Linker::new(&engine).instantiate(&mut store, module).unwrap();
            let mut load = |name: &str, at: i32| {
                inst.get_typed_func::<i32, i32>(&store, name).unwrap().call(&mut store, at).unwrap()
            };
            assert_eq!(load("load_a", 16), 0x0403_0201, "{tier:?}");
            assert_eq!(load("load_b", 8), 0x0403_0201, "{tier:?}");
            assert_eq!(load("load_b", 70_000 - 65536), 0x5151, "{tier:?}");
            assert_eq!(load("load_b", 70_000), 0x7777, "{tier:?}: the grown page");
            let size_b = inst.get_typed_func::<(), i32>(&store, "size_b").unwrap();
            assert_eq!(size_b.call(&mut store, ()).unwrap(), 2, "{tier:?}");
        }
    }
}
