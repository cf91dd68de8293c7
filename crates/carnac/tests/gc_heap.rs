//! The GC heap (the GC proposal's struct and array objects): every struct and
//! array instruction with packed, wide and reference fields and their traps,
//! the collector (cycles reclaimed, memory bounded under a guest that
//! allocates garbage forever, no live object freed while a tree of 100,000
//! nodes is built under collections), the limits (an allocation bomb under a
//! 16 MiB budget traps and the store goes on; an impossible allocation traps
//! at once), and the host's `StructRef`/`ArrayRef` handles. In every tier
//! that runs GC code.

use carnac::*;

/// The tiers GC functions run in (the compiled tier runs them interpreted
/// inside the compiled instance: the per-function fallback).
const TIERS: &[Strategy] = if cfg!(carnac_compiled) {
    &[Strategy::Interpreter, Strategy::Cranelift, Strategy::Auto]
} else {
    &[Strategy::Interpreter]
};

fn engine(tier: Strategy, fuel: bool) -> Engine {
    let mut config = Config::new();
    config.strategy(tier).wasm_gc(true).consume_fuel(fuel);
    Engine::new(&config)
}

fn instance(tier: Strategy, wat: &str) -> (Store<()>, Instance) {
    let engine = engine(tier, false);
    let module = Module::new(&engine, wat).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    (store, instance)
}

fn call_i32(store: &mut Store<()>, instance: &Instance, name: &str, args: &[Val]) -> Result<i32, Error> {
    let f = instance.get_func(&*store, name).unwrap();
    let mut results = [Val::I32(0)];
    f.call(&mut *store, args, &mut results)?;
    Ok(results[0].i32().unwrap())
}

fn trap_kind(e: Error) -> TrapKind {
    e.as_trap().unwrap_or_else(|| panic!("not a trap: {e}")).kind()
}

const INSTRS: &str = r#"(module
    (type $s (struct (field $a (mut i8)) (field $b (mut i16)) (field $c (mut i32))
                     (field $d (mut i64)) (field $e (mut f32)) (field $f (mut f64))
                     (field $v (mut v128)) (field $r (mut (ref null $s)))))
    (type $b8 (array (mut i8)))
    (type $b16 (array (mut i16)))
    (type $w (array (mut i64)))
    (type $v (array (mut v128)))
    (type $rs (array (mut (ref null $s))))
    (data $d "\01\02\03\04\05\06\07\08\ff\fe")
    (elem $e (ref null $s) (item (ref.null $s)) (item (struct.new_default $s)))
    (global $g (ref $s) (struct.new $s (i32.const -1) (i32.const -1) (i32.const 7) (i64.const 8)
        (f32.const 1.5) (f64.const 2.5) (v128.const i64x2 1 2) (ref.null $s)))

    (func $mk (result (ref $s))
        (struct.new $s (i32.const 0x1ff) (i32.const 0x18000) (i32.const -5) (i64.const -6)
            (f32.const 3.5) (f64.const -4.5) (v128.const i32x4 1 2 3 4) (ref.null $s)))
    (func (export "struct_packed") (result i32)
        (local $x (ref $s)) (local.set $x (call $mk))
        ;; 0xff as i8: -1 signed, 255 unsigned; 0x8000 as i16: -32768 and 32768.
        (i32.add (i32.add (struct.get_s $s $a (local.get $x)) (struct.get_u $s $a (local.get $x)))
                 (i32.add (struct.get_s $s $b (local.get $x)) (struct.get_u $s $b (local.get $x)))))
    (func (export "struct_fields") (result i32)
        (local $x (ref $s)) (local.set $x (call $mk))
        (struct.set $s $c (local.get $x) (i32.const 40))
        (struct.set $s $d (local.get $x) (i64.const 2))
        (struct.set $s $r (local.get $x) (local.get $x))
        (struct.set $s $a (local.get $x) (i32.const 0x102))
        (i32.add
          (i32.add (struct.get $s $c (local.get $x)) (i32.wrap_i64 (struct.get $s $d (local.get $x))))
          (i32.add
            (i32.add (i32.trunc_f32_s (struct.get $s $e (local.get $x)))
                     (i32.trunc_f64_s (struct.get $s $f (local.get $x))))
            (i32.add (i32x4.extract_lane 3 (struct.get $s $v (local.get $x)))
                     (i32.add (struct.get_u $s $a (local.get $x))
                              (struct.get $s $c (struct.get $s $r (local.get $x))))))))
    (func (export "struct_default") (result i32)
        (local $x (ref $s)) (local.set $x (struct.new_default $s))
        (i32.add (i32.add (struct.get $s $c (local.get $x)) (i32.wrap_i64 (struct.get $s $d (local.get $x))))
                 (ref.is_null (struct.get $s $r (local.get $x)))))
    (func (export "global_struct") (result i32)
        (i32.add (struct.get_s $s $a (global.get $g)) (struct.get $s $c (global.get $g))))
    (func (export "struct_null_get") (result i32) (struct.get $s $c (ref.null $s)))
    (func (export "struct_null_set") (struct.set $s $c (ref.null $s) (i32.const 1)))

    (func (export "array_packed") (result i32)
        (local $a (ref $b8)) (local $h (ref $b16))
        (local.set $a (array.new $b8 (i32.const 0x1fe) (i32.const 3)))
        (local.set $h (array.new_default $b16 (i32.const 2)))
        (array.set $b16 (local.get $h) (i32.const 1) (i32.const 0xffff))
        ;; -2 + 254 + -1 + 65535 + 0 + 3 + 2
        (i32.add (i32.add (i32.add (array.get_s $b8 (local.get $a) (i32.const 2))
                                   (array.get_u $b8 (local.get $a) (i32.const 0)))
                          (i32.add (array.get_s $b16 (local.get $h) (i32.const 1))
                                   (array.get_u $b16 (local.get $h) (i32.const 1))))
                 (i32.add (array.get_u $b16 (local.get $h) (i32.const 0))
                          (i32.add (array.len (local.get $a)) (array.len (local.get $h))))))
    (func (export "array_fixed_fill_copy") (result i64)
        (local $a (ref $w)) (local $b (ref $w))
        (local.set $a (array.new_fixed $w 4 (i64.const 1) (i64.const 2) (i64.const 3) (i64.const 4)))
        (local.set $b (array.new_default $w (i32.const 6)))
        (array.fill $w (local.get $b) (i32.const 1) (i64.const 100) (i32.const 4))
        (array.copy $w $w (local.get $b) (i32.const 2) (local.get $a) (i32.const 1) (i32.const 3))
        ;; Overlapping copy within one array: [1,2,3,4] -> [1,1,2,3].
        (array.copy $w $w (local.get $a) (i32.const 1) (local.get $a) (i32.const 0) (i32.const 3))
        ;; b = [0,100,2,3,4,0]; a = [1,1,2,3]
        (i64.add
          (i64.add (array.get $w (local.get $b) (i32.const 1)) (i64.mul (array.get $w (local.get $b) (i32.const 4)) (i64.const 1000)))
          (i64.add (i64.mul (array.get $w (local.get $a) (i32.const 3)) (i64.const 10)) (array.get $w (local.get $a) (i32.const 1)))))
    (func (export "array_v128") (result i32)
        (local $a (ref $v))
        (local.set $a (array.new $v (v128.const i32x4 5 6 7 8) (i32.const 2)))
        (array.set $v (local.get $a) (i32.const 1) (v128.const i32x4 9 10 11 12))
        (i32.add (i32x4.extract_lane 2 (array.get $v (local.get $a) (i32.const 0)))
                 (i32x4.extract_lane 3 (array.get $v (local.get $a) (i32.const 1)))))
    (func (export "array_data") (result i32)
        (local $a (ref $b16)) (local $b (ref $b8))
        (local.set $a (array.new_data $b16 $d (i32.const 1) (i32.const 2)))
        (local.set $b (array.new_default $b8 (i32.const 4)))
        (array.init_data $b8 $d (local.get $b) (i32.const 1) (i32.const 8) (i32.const 2))
        ;; a = [0x0302, 0x0504]; b = [0, 0xff, 0xfe, 0]
        (i32.add (i32.add (array.get_u $b16 (local.get $a) (i32.const 0)) (array.get_u $b16 (local.get $a) (i32.const 1)))
                 (i32.add (array.get_s $b8 (local.get $b) (i32.const 1)) (array.get_u $b8 (local.get $b) (i32.const 2)))))
    (func (export "array_elem") (result i32)
        (local $a (ref $rs)) (local $b (ref $rs))
        (local.set $a (array.new_elem $rs $e (i32.const 0) (i32.const 2)))
        (local.set $b (array.new_default $rs (i32.const 3)))
        (array.init_elem $rs $e (local.get $b) (i32.const 1) (i32.const 1) (i32.const 1))
        (i32.add (i32.add (ref.is_null (array.get $rs (local.get $a) (i32.const 0)))
                          (ref.is_null (array.get $rs (local.get $a) (i32.const 1))))
                 (i32.add (ref.is_null (array.get $rs (local.get $b) (i32.const 1)))
                          (struct.get $s $c (array.get $rs (local.get $b) (i32.const 1))))))
    (func (export "array_oob_get") (result i32) (array.get_u $b8 (array.new_default $b8 (i32.const 3)) (i32.const 3)))
    (func (export "array_oob_set") (array.set $b8 (array.new_default $b8 (i32.const 3)) (i32.const -1) (i32.const 0)))
    (func (export "array_oob_fill") (array.fill $b8 (array.new_default $b8 (i32.const 3)) (i32.const 2) (i32.const 0) (i32.const 2)))
    (func (export "array_oob_copy")
        (array.copy $b8 $b8 (array.new_default $b8 (i32.const 3)) (i32.const 0) (array.new_default $b8 (i32.const 2)) (i32.const 1) (i32.const 2)))
    (func (export "array_oob_data") (drop (array.new_data $b8 $d (i32.const 8) (i32.const 3))))
    (func (export "array_oob_elem") (drop (array.new_elem $rs $e (i32.const 1) (i32.const 2))))
    (func (export "array_oob_init_data") (array.init_data $b8 $d (array.new_default $b8 (i32.const 3)) (i32.const 0) (i32.const 9) (i32.const 2)))
    (func (export "array_null_len") (result i32) (array.len (ref.null $b8)))
    (func (export "array_null_get") (result i32) (array.get_u $b8 (ref.null $b8) (i32.const 0)))
    (func (export "array_null_copy")
        (array.copy $b8 $b8 (array.new_default $b8 (i32.const 3)) (i32.const 0) (ref.null $b8) (i32.const 0) (i32.const 0)))
    (func (export "array_huge") (drop (array.new_default $w (i32.const -1))))
    (func (export "data_drop_then_new") (result i32)
        (data.drop $d)
        (array.len (array.new_data $b8 $d (i32.const 0) (i32.const 0))))
)"#;

#[test]
fn every_instruction_and_its_traps() {
    for &tier in TIERS {
        let (mut store, inst) = instance(tier, INSTRS);
        let mut i32_of = |name: &str| call_i32(&mut store, &inst, name, &[]);
        assert_eq!(i32_of("struct_packed").unwrap(), -1 + 255 - 32768 + 32768, "{tier:?}");
        assert_eq!(i32_of("struct_fields").unwrap(), 40 + 2 + 3 - 4 + 4 + 2 + 40, "{tier:?}");
        assert_eq!(i32_of("struct_default").unwrap(), 1);
        assert_eq!(i32_of("global_struct").unwrap(), -1 + 7);
        assert_eq!(i32_of("array_packed").unwrap(), -2 + 254 - 1 + 65535 + 3 + 2);
        assert_eq!(i32_of("array_v128").unwrap(), 7 + 12);
        assert_eq!(i32_of("array_data").unwrap(), 0x0302 + 0x0504 - 1 + 0xfe);
        // Only element 0 of the first array is null; the struct copied in has field $c 0.
        assert_eq!(i32_of("array_elem").unwrap(), 1);
        let f = inst.get_typed_func::<(), i64>(&store, "array_fixed_fill_copy").unwrap();
        assert_eq!(f.call(&mut store, ()).unwrap(), 100 + 4000 + 30 + 1);
        for (name, kind) in [
            ("struct_null_get", TrapKind::NullStructReference),
            ("struct_null_set", TrapKind::NullStructReference),
            ("array_oob_get", TrapKind::ArrayOutOfBounds),
            ("array_oob_set", TrapKind::ArrayOutOfBounds),
            ("array_oob_fill", TrapKind::ArrayOutOfBounds),
            ("array_oob_copy", TrapKind::ArrayOutOfBounds),
            ("array_oob_data", TrapKind::MemoryOutOfBounds),
            ("array_oob_elem", TrapKind::TableOutOfBounds),
            ("array_oob_init_data", TrapKind::MemoryOutOfBounds),
            ("array_null_len", TrapKind::NullArrayReference),
            ("array_null_get", TrapKind::NullArrayReference),
            ("array_null_copy", TrapKind::NullArrayReference),
            ("array_huge", TrapKind::AllocationTooLarge),
        ] {
            let f = inst.get_func(&store, name).unwrap();
            let mut results = vec![Val::I32(0); f.ty(&store).results().len()];
            let e = f.call(&mut store, &[], &mut results).unwrap_err();
            assert_eq!(trap_kind(e), kind, "{name} in {tier:?}");
        }
        assert_eq!(TrapKind::ArrayOutOfBounds.message(), "out of bounds array access");
        assert_eq!(TrapKind::NullStructReference.message(), "null structure reference");
        // A dropped segment is empty: a zero-length array from it is fine.
        assert_eq!(call_i32(&mut store, &inst, "data_drop_then_new", &[]).unwrap(), 0);
        // The huge array allocated nothing.
        assert!(store.gc_stats().bytes < 1 << 20);
    }
}

const LISTS: &str = r#"(module
    (type $node (struct (field $next (mut (ref null $node))) (field $v i64)))
    (type $bytes (array (mut i8)))
    (type $cell (struct (field $data (ref $bytes)) (field $next (ref null $cell))))
    (global $keep (mut (ref null $node)) (ref.null $node))
    ;; n two-node cycles, all unreachable when it returns.
    (func (export "cycles") (param $n i32)
        (local $a (ref null $node)) (local $b (ref null $node))
        (loop $l
            (local.set $a (struct.new $node (ref.null $node) (i64.const 1)))
            (local.set $b (struct.new $node (local.get $a) (i64.const 2)))
            (struct.set $node $next (local.get $a) (local.get $b))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
    ;; A list of n nodes kept in a global.
    (func (export "keep") (param $n i32)
        (loop $l
            (global.set $keep (struct.new $node (global.get $keep) (i64.extend_i32_u (local.get $n))))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
    (func (export "drop_kept") (global.set $keep (ref.null $node)))
    ;; n arrays of `size` bytes, each garbage as soon as the next is made.
    (func (export "garbage") (param $n i32) (param $size i32)
        (loop $l
            (drop (array.new_default $bytes (local.get $size)))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
    (func (export "garbage_forever")
        (loop $l (drop (array.new_default $bytes (i32.const 4096))) (br $l)))
    ;; The allocation bomb: every array stays reachable from a list.
    (func (export "bomb") (result i32)
        (local $list (ref null $cell)) (local $n i32)
        (loop $l
            (local.set $list (struct.new $cell (array.new_default $bytes (i32.const 65536)) (local.get $list)))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br $l))
        (local.get $n))
    (func (export "ok") (result i32) (i32.const 42))
)"#;

#[test]
fn cycles_are_reclaimed() {
    for &tier in TIERS {
        let (mut store, inst) = instance(tier, LISTS);
        let cycles = inst.get_typed_func::<i32, ()>(&store, "cycles").unwrap();
        let keep = inst.get_typed_func::<i32, ()>(&store, "keep").unwrap();
        keep.call(&mut store, 100).unwrap();
        cycles.call(&mut store, 5000).unwrap();
        assert!(store.gc_stats().objects >= 100);
        store.gc();
        // Only the kept list survives: the cycles were unreachable.
        assert_eq!(store.gc_stats().objects, 100, "{tier:?}");
        inst.get_typed_func::<(), ()>(&store, "drop_kept").unwrap().call(&mut store, ()).unwrap();
        store.gc();
        assert_eq!(store.gc_stats().objects, 0);
        assert!(store.gc_stats().freed >= 10_100);
    }
}

/// Each collection's work is paid for by allocation: after the heap once
/// held 200,000 objects (slots the sweep still walks), a small live set
/// allocating 110 MB collects every few megabytes (32 bytes per slot
/// visited), not every megabyte, and still in bounded memory.
#[test]
fn collections_after_a_peak_are_paid_for_by_allocation() {
    let (mut store, inst) = instance(Strategy::Interpreter, LISTS);
    inst.get_typed_func::<i32, ()>(&store, "keep").unwrap().call(&mut store, 200_000).unwrap();
    inst.get_typed_func::<(), ()>(&store, "drop_kept").unwrap().call(&mut store, ()).unwrap();
    store.gc();
    assert_eq!(store.gc_stats().objects, 0);
    let before = store.gc_stats().collections;
    let garbage = inst.get_typed_func::<(i32, i32), ()>(&store, "garbage").unwrap();
    garbage.call(&mut store, (100_000, 1000)).unwrap();
    let stats = store.gc_stats();
    let collections = stats.collections - before;
    // 110 MB at one collection per 6.4 MB (200,000 slots x 32 bytes): about 17.
    assert!((10..=25).contains(&collections), "{collections} collections: {stats:?}");
    assert!(stats.bytes < 16 << 20, "{stats:?}");
}

#[test]
fn collection_inside_a_long_guest_loop_keeps_memory_bounded() {
    for &tier in TIERS {
        let (mut store, inst) = instance(tier, LISTS);
        store.set_limiter(StoreLimits::new().memory_size(16 << 20));
        let garbage = inst.get_typed_func::<(i32, i32), ()>(&store, "garbage").unwrap();
        // 400 MiB allocated in one call, under a 16 MiB budget.
        garbage.call(&mut store, (100_000, 4096)).unwrap();
        let stats = store.gc_stats();
        assert!(stats.collections >= 20, "{stats:?}");
        assert!(stats.bytes <= 16 << 20, "{stats:?}");
    }
}

#[test]
fn allocation_bomb_traps_and_the_store_goes_on() {
    for &tier in TIERS {
        let (mut store, inst) = instance(tier, LISTS);
        store.set_limiter(StoreLimits::new().memory_size(16 << 20));
        let e = inst.get_typed_func::<(), i32>(&store, "bomb").unwrap().call(&mut store, ()).unwrap_err();
        assert_eq!(trap_kind(e), TrapKind::OutOfGcMemory, "{tier:?}");
        assert_eq!(TrapKind::OutOfGcMemory.message(), "out of GC heap memory");
        // The host goes on: the list is garbage once the call is over.
        assert_eq!(call_i32(&mut store, &inst, "ok", &[]).unwrap(), 42);
        store.gc();
        assert_eq!(store.gc_stats().objects, 0);
        // And the budget is free again for more allocation.
        inst.get_typed_func::<(i32, i32), ()>(&store, "garbage").unwrap().call(&mut store, (1000, 65536)).unwrap();
    }
}

/// Whether this host's allocator refuses `bytes` at once (Linux's heuristic
/// overcommit refuses one request larger than all its memory and swap); only
/// then may a test ask for that much without risking the machine.
fn allocator_refuses(bytes: u64) -> bool {
    let mode = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let (Some(mem), Some(swap)) = (kib("MemTotal:"), kib("SwapTotal:")) else { return false };
    mode.trim() == "0" && (mem + swap) * 1024 < bytes / 2
}

/// An array within the store's limits that the host cannot back (a budget
/// set above the machine's memory) traps with "out of GC heap memory"; the
/// process does not abort, and the store goes on.
#[test]
fn an_array_the_allocator_refuses_traps() {
    let wat = r#"(module
      (type $big (array (mut v128)))
      (func (export "huge") (result i32)
        (array.len (array.new_default $big (i32.const -1))))
      (func (export "ok") (result i32)
        (array.len (array.new_default $big (i32.const 1000)))))"#;
    let bytes = u32::MAX as u64 * 16;
    if !allocator_refuses(bytes) {
        eprintln!("skipped: this host's allocator might grant {bytes} bytes");
        return;
    }
    for &tier in TIERS {
        let (mut store, inst) = instance(tier, wat);
        store.set_limiter(StoreLimits::new().memory_size(usize::MAX).gc_heap_size(usize::MAX));
        let e = inst.get_typed_func::<(), i32>(&store, "huge").unwrap().call(&mut store, ()).unwrap_err();
        assert_eq!(trap_kind(e), TrapKind::OutOfGcMemory, "{tier:?}");
        assert_eq!(inst.get_typed_func::<(), i32>(&store, "ok").unwrap().call(&mut store, ()).unwrap(), 1000);
        // The host API refuses it the same way.
        let big = ArrayType::new(FieldType::new(Mutability::Var, StorageType::ValType(ValType::V128)));
        let mut scope = RootScope::new(&mut store);
        let e = ArrayRef::new(&mut scope, &big, &Val::V128(0), u32::MAX).unwrap_err();
        assert_eq!(e.as_trap().map(Trap::kind), Some(TrapKind::OutOfGcMemory));
        assert_eq!(ArrayRef::new(&mut scope, &big, &Val::V128(1), 3).unwrap().len(&scope).unwrap(), 3);
    }
}

#[test]
fn garbage_forever_ends_by_fuel_in_bounded_memory() {
    for &tier in TIERS {
        let engine = engine(tier, true);
        let module = Module::new(&engine, LISTS).unwrap();
        let mut store = Store::new(&engine, ());
        store.set_limiter(StoreLimits::new().memory_size(16 << 20));
        store.set_fuel(2_000_000).unwrap();
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        let e = inst.get_typed_func::<(), ()>(&store, "garbage_forever").unwrap().call(&mut store, ()).unwrap_err();
        assert_eq!(trap_kind(e), TrapKind::OutOfFuel, "{tier:?}");
        let stats = store.gc_stats();
        assert!(stats.collections > 0 && stats.bytes <= 16 << 20, "{stats:?}");
    }
}

const TREE: &str = r#"(module
    (type $t (struct (field $l (ref null $t)) (field $r (ref null $t)) (field $v i32)))
    (type $junk (array (mut i32)))
    (global $next (mut i32) (i32.const 0))
    ;; A tree of n nodes numbered in preorder, with garbage allocated at every
    ;; node so that collections run while the tree is half built (its parts
    ;; are then only in locals and operand slots of the frames on the stack).
    (func $build (param $n i32) (result (ref null $t))
        (local $v i32) (local $left i32)
        (if (i32.eqz (local.get $n)) (then (return (ref.null $t))))
        (local.set $v (global.get $next))
        (global.set $next (i32.add (global.get $next) (i32.const 1)))
        (drop (array.new_default $junk (i32.const 64)))
        (local.set $left (i32.shr_u (i32.sub (local.get $n) (i32.const 1)) (i32.const 1)))
        (struct.new $t
            (call $build (local.get $left))
            (call $build (i32.sub (i32.sub (local.get $n) (i32.const 1)) (local.get $left)))
            (local.get $v)))
    (func $sum (param $t (ref null $t)) (result i64)
        (if (ref.is_null (local.get $t)) (then (return (i64.const 0))))
        (i64.add (i64.add (call $sum (struct.get $t $l (local.get $t))) (call $sum (struct.get $t $r (local.get $t))))
                 (i64.mul (i64.extend_i32_u (struct.get $t $v (local.get $t))) (i64.const 3))))
    (func (export "run") (param $n i32) (result i64)
        (local $tree (ref null $t))
        (global.set $next (i32.const 0))
        (local.set $tree (call $build (local.get $n)))
        ;; More garbage with the finished tree live only in a local.
        (drop (call $build (i32.const 20000)))
        (call $sum (local.get $tree)))
)"#;

#[test]
fn conservative_roots_never_free_a_live_object() {
    for &tier in TIERS {
        let (mut store, inst) = instance(tier, TREE);
        let run = inst.get_typed_func::<i32, i64>(&store, "run").unwrap();
        let n: i64 = 100_000;
        assert_eq!(run.call(&mut store, n as i32).unwrap(), 3 * n * (n - 1) / 2, "{tier:?}");
        assert!(store.gc_stats().collections > 0, "{:?}", store.gc_stats());
    }
}

const HOST: &str = r#"(module
    (type $p (struct (field $x (mut i32)) (field $y i8) (field $z (mut f64))))
    (type $a (array (mut i16)))
    (func (export "make") (result structref)
        (struct.new $p (i32.const 10) (i32.const 0x1ff) (f64.const 0.5)))
    (func (export "make_array") (param $n i32) (result arrayref)
        (array.new $a (i32.const 7) (local.get $n)))
    (func (export "x") (param $s structref) (result i32)
        (struct.get $p $x (ref.cast (ref $p) (local.get $s))))
    (func (export "sum") (param $r arrayref) (result i32)
        (local $a (ref $a)) (local $i i32) (local $t i32)
        (local.set $a (ref.cast (ref $a) (local.get $r)))
        (block $done (loop $l
            (br_if $done (i32.ge_u (local.get $i) (array.len (local.get $a))))
            (local.set $t (i32.add (local.get $t) (array.get_u $a (local.get $a) (local.get $i))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $l)))
        (local.get $t))
)"#;

#[test]
fn host_handles() {
    for &tier in TIERS {
        let (mut store, inst) = instance(tier, HOST);
        let make = inst.get_typed_func::<(), Option<StructRef>>(&store, "make").unwrap();
        let make_array = inst.get_typed_func::<i32, Option<ArrayRef>>(&store, "make_array").unwrap();
        let x = inst.get_typed_func::<Option<StructRef>, i32>(&store, "x").unwrap();
        let sum = inst.get_typed_func::<Option<ArrayRef>, i32>(&store, "sum").unwrap();
        let owned = {
            let mut scope = RootScope::new(&mut store);
            let s = make.call(&mut scope, ()).unwrap().unwrap();
            assert_eq!(s.field(&mut scope, 0).unwrap().i32(), Some(10));
            assert_eq!(s.field(&mut scope, 1).unwrap().i32(), Some(0xff));
            assert_eq!(s.field(&mut scope, 2).unwrap(), Val::F64(0.5f64.to_bits()));
            s.set_field(&mut scope, 0, Val::I32(99)).unwrap();
            // Immutable fields and wrong types are refused.
            assert!(s.set_field(&mut scope, 1, Val::I32(1)).is_err());
            assert!(s.set_field(&mut scope, 0, Val::I64(1)).is_err());
            assert_eq!(x.call(&mut scope, Some(s)).unwrap(), 99, "{tier:?}");
            assert_eq!(s.fields(&mut scope).unwrap().len(), 3);
            s.to_owned_rooted(&mut scope).unwrap()
        };
        let temp = {
            let mut scope = RootScope::new(&mut store);
            let a = make_array.call(&mut scope, 4).unwrap().unwrap();
            assert_eq!(a.len(&scope).unwrap(), 4);
            a.set(&mut scope, 2, Val::I32(0x10005)).unwrap();
            assert_eq!(a.get(&mut scope, 2).unwrap().i32(), Some(5));
            assert!(a.get(&mut scope, 4).is_err());
            assert_eq!(sum.call(&mut scope, Some(a)).unwrap(), 7 * 3 + 5);
            a
        };
        store.gc();
        // The scoped array is gone (a clean error), the owned struct is kept.
        assert!(temp.len(&store).is_err());
        assert_eq!(store.gc_stats().objects, 1);
        let s = owned.to_rooted(&mut store);
        assert_eq!(s.field(&mut store, 0).unwrap().i32(), Some(99));
        drop(owned);
        store.gc();
        assert!(s.field(&mut store, 0).is_ok(), "still rooted in the store's scope by to_rooted");
        // A handle of another store is refused.
        let (mut other, _) = instance(tier, HOST);
        assert!(s.field(&mut other, 0).is_err());
    }
}

/// The GC benchmark's program (benches/gc_bench/binary_trees.wat) at a small
/// depth, in every tier, against the count computed here.
#[test]
fn benchmark_program_binary_trees() {
    let wat = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../benches/gc_bench/binary_trees.wat"))
        .unwrap();
    let nodes = |d: i32| (1i32 << (d + 1)) - 1;
    let n = 8;
    let mut want = nodes(n + 1) + nodes(n);
    let mut d = 4;
    while d <= n {
        want += (1 << (n - d + 4)) * nodes(d);
        d += 2;
    }
    for &tier in TIERS {
        let (mut store, inst) = instance(tier, &wat);
        let run = inst.get_typed_func::<i32, i32>(&store, "run").unwrap();
        assert_eq!(run.call(&mut store, n).unwrap(), want, "{tier:?}");
        store.gc();
        assert_eq!(store.gc_stats().objects, 0);
    }
}

const MIXED: &str = r#"(module
    (type $box (struct (field $host externref) (field $n (mut i32))))
    (table $ext 4 externref)
    (global $g (mut (ref null $box)) (ref.null $box))
    ;; Plain 2.0 code: compiled in the compiled tier.
    (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
    ;; A struct holding a host value, kept in a global.
    (func (export "keep_host") (param externref)
        (global.set $g (struct.new $box (local.get 0) (i32.const 5))))
    (func (export "kept_host") (result externref) (struct.get $box $host (global.get $g)))
    (func (export "forget") (global.set $g (ref.null $box)))
    ;; A struct converted to externref, kept in an externref table only.
    (func (export "stash") (param i32)
        (table.set $ext (i32.const 0) (extern.convert_any (struct.new $box (ref.null extern) (local.get 0)))))
    (func (export "unstash") (result i32)
        (struct.get $box $n (ref.cast (ref $box) (any.convert_extern (table.get $ext (i32.const 0))))))
    (func (export "make") (result anyref) (struct.new $box (ref.null extern) (i32.const 77)))
)"#;

#[test]
fn extern_and_gc_collectors_agree() {
    for &tier in TIERS {
        let (mut store, inst) = instance(tier, MIXED);
        {
            let mut scope = RootScope::new(&mut store);
            let host = ExternRef::new(&mut scope, String::from("inside a struct")).unwrap();
            inst.get_typed_func::<Option<ExternRef>, ()>(&scope, "keep_host")
                .unwrap()
                .call(&mut scope, Some(host))
                .unwrap();
        }
        inst.get_typed_func::<i32, ()>(&store, "stash").unwrap().call(&mut store, 31).unwrap();
        store.gc();
        // The host value is reachable only through the struct's field.
        let kept = inst.get_typed_func::<(), Option<ExternRef>>(&store, "kept_host").unwrap();
        let r = kept.call(&mut store, ()).unwrap().unwrap();
        assert_eq!(r.data(&store).unwrap().unwrap().downcast_ref::<String>().unwrap(), "inside a struct");
        // The struct is reachable only as an externref in a table.
        assert_eq!(inst.get_typed_func::<(), i32>(&store, "unstash").unwrap().call(&mut store, ()).unwrap(), 31);
        inst.get_typed_func::<(), ()>(&store, "forget").unwrap().call(&mut store, ()).unwrap();
        store.gc();
        assert_eq!(store.gc_stats().objects, 1, "{tier:?}: only the stashed struct");
    }
}

#[test]
fn anyref_values_and_views() {
    for &tier in TIERS {
        let (mut store, inst) = instance(tier, MIXED);
        let make = inst.get_func(&store, "make").unwrap();
        let mut results = [Val::AnyRef(None)];
        let any = {
            let mut scope = RootScope::new(&mut store);
            make.call(&mut scope, &[], &mut results).unwrap();
            let Val::AnyRef(Some(any)) = results[0] else { panic!("{:?}", results[0]) };
            // Rooted in the scope while it is open.
            scope.as_context_mut().gc();
            let s = any.as_struct(&scope).unwrap().unwrap();
            assert!(any.as_array(&scope).unwrap().is_none());
            assert_eq!(s.field(&mut scope, 1).unwrap().i32(), Some(77));
            assert_eq!(s.to_anyref(), any);
            any
        };
        store.gc();
        assert!(any.as_struct(&store).is_err(), "collected once its scope ended");
    }
}

#[cfg(carnac_compiled)]
#[test]
fn compiled_tier_runs_gc_functions_interpreted() {
    let engine = engine(Strategy::Cranelift, false);
    let module = Module::new(&engine, MIXED).unwrap();
    // Every function but `add` (plain 2.0) and `forget` (a null constant
    // stored in a global: no GC operator, no GC-typed local) uses GC
    // operators or has GC types in its signature.
    assert_eq!(module.interpreted_functions(), vec![1, 2, 4, 5, 6]);
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    assert_eq!(inst.get_typed_func::<(i32, i32), i32>(&store, "add").unwrap().call(&mut store, (2, 3)).unwrap(), 5);
    inst.get_typed_func::<i32, ()>(&store, "stash").unwrap().call(&mut store, 9).unwrap();
    assert_eq!(inst.get_typed_func::<(), i32>(&store, "unstash").unwrap().call(&mut store, ()).unwrap(), 9);
}

/// An object held only by an exception's payload (the exception itself held
/// by an `exnref` local) survives collections while the exception lives.
#[test]
fn exception_payloads_keep_objects_alive() {
    let wat = r#"(module
        (type $box (struct (field i32)))
        (type $bytes (array (mut i8)))
        (tag $t (param (ref null $box)))
        (func $churn (local $n i32)
            (local.set $n (i32.const 3000))
            (loop $l
                (drop (array.new_default $bytes (i32.const 1024)))
                (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
        (func (export "run") (result i32)
            (local $e exnref)
            (local.set $e
                (block $h (result exnref)
                    (try_table (catch_all_ref $h) (throw $t (struct.new $box (i32.const 123))))
                    (unreachable)))
            (call $churn)
            (block $c (result (ref null $box))
                (try_table (catch $t $c) (throw_ref (local.get $e)))
                (unreachable))
            (struct.get $box 0)))"#;
    for &tier in TIERS {
        let (mut store, inst) = instance(tier, wat);
        assert_eq!(inst.get_typed_func::<(), i32>(&store, "run").unwrap().call(&mut store, ()).unwrap(), 123);
        assert!(store.gc_stats().collections > 0, "{tier:?}");
    }
}

/// Objects the host makes (`StructRef::new`, `ArrayRef::new`) pass to wasm
/// (their types are canonical: equal to the module's equivalent types) and
/// are collected like any.
#[test]
fn host_made_objects() {
    for &tier in TIERS {
        let (mut store, inst) = instance(tier, HOST);
        let point = StructType::new([
            FieldType::new(Mutability::Var, StorageType::ValType(ValType::I32)),
            FieldType::new(Mutability::Const, StorageType::I8),
            FieldType::new(Mutability::Var, StorageType::ValType(ValType::F64)),
        ]);
        let shorts = ArrayType::new(FieldType::new(Mutability::Var, StorageType::I16));
        let x = inst.get_typed_func::<Option<StructRef>, i32>(&store, "x").unwrap();
        let sum = inst.get_typed_func::<Option<ArrayRef>, i32>(&store, "sum").unwrap();
        {
            let mut scope = RootScope::new(&mut store);
            let s = StructRef::new(&mut scope, &point, &[Val::I32(31), Val::I32(0x1ff), Val::F64(0)]).unwrap();
            assert_eq!(s.field(&mut scope, 1).unwrap().i32(), Some(0xff));
            // The module's `(ref $p)` cast accepts it: the same canonical type.
            assert_eq!(x.call(&mut scope, Some(s)).unwrap(), 31, "{tier:?}");
            let a = ArrayRef::new(&mut scope, &shorts, &Val::I32(0x10003), 5).unwrap();
            assert_eq!(sum.call(&mut scope, Some(a)).unwrap(), 15);
            assert!(StructRef::new(&mut scope, &point, &[Val::I32(1)]).is_err());
            assert!(StructRef::new(&mut scope, &point, &[Val::I64(1), Val::I32(0), Val::F64(0)]).is_err());
            // Larger than the GC heap's cap by itself.
            let huge = ArrayRef::new(&mut scope, &shorts, &Val::I32(0), u32::MAX).unwrap_err();
            assert_eq!(huge.as_trap().map(Trap::kind), Some(TrapKind::AllocationTooLarge));
        }
        store.gc();
        assert_eq!(store.gc_stats().objects, 0);
    }
}

/// A snapshot cannot hold GC objects: refused with a one-line reason.
#[test]
fn snapshot_refuses_gc_references() {
    let (store, inst) = instance(Strategy::Interpreter, INSTRS);
    let e = inst.snapshot(&store).unwrap_err().to_string();
    assert!(e.contains("GC reference") && !e.contains('\n'), "{e}");
}

/// A compiled artifact of a GC module loads and runs (its GC functions
/// interpreted, the rest compiled), collecting as the original does.
#[cfg(carnac_compiled)]
#[test]
fn compiled_artifact_round_trip() {
    let engine = engine(Strategy::Cranelift, false);
    let bytes = Module::new(&engine, TREE).unwrap().serialize().unwrap();
    let module = Module::deserialize(&engine, &bytes).unwrap();
    assert_eq!(module.interpreted_functions(), vec![0, 1, 2]);
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let run = inst.get_typed_func::<i32, i64>(&store, "run").unwrap();
    assert_eq!(run.call(&mut store, 5000).unwrap(), 3 * 5000 * 4999 / 2);
    assert!(store.gc_stats().collections > 0);
}

/// A host value converted to `anyref` and kept only in an `anyref` global
/// survives a collection (the extern collector scans `any`'s places too).
#[test]
fn converted_host_values_in_anyref_places_survive() {
    let wat = r#"(module
        (global $g (mut anyref) (ref.null any))
        (func (export "keep") (param externref) (global.set $g (any.convert_extern (local.get 0))))
        (func (export "get") (result externref) (extern.convert_any (global.get $g))))"#;
    for &tier in TIERS {
        let (mut store, inst) = instance(tier, wat);
        {
            let mut scope = RootScope::new(&mut store);
            let r = ExternRef::new(&mut scope, 7u32).unwrap();
            inst.get_typed_func::<Option<ExternRef>, ()>(&scope, "keep").unwrap().call(&mut scope, Some(r)).unwrap();
        }
        store.gc();
        let r = inst.get_typed_func::<(), Option<ExternRef>>(&store, "get").unwrap().call(&mut store, ()).unwrap();
        assert_eq!(r.unwrap().data(&store).unwrap().unwrap().downcast_ref::<u32>(), Some(&7), "{tier:?}");
    }
}
