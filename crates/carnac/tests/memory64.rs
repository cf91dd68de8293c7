//! memory64 (WebAssembly 3.0): memories and tables indexed with `i64`, in
//! every tier, plain and with fuel, write tracking and eager translation on,
//! through the public API: loads and stores (scalar, SIMD, atomic) at high
//! offsets, addresses and offsets near 2^64 that must trap without wrapping,
//! `memory.size`/`grow` in i64 (a maximum above 4 GiB, growth past what the
//! host reserves failing with -1), bulk operators, `memory.copy` between a
//! 32-bit and a 64-bit memory, i64 data and element segment offsets, tables
//! with i64 indices (`table.get/set/size/grow/fill/copy`, `call_indirect`),
//! and the API's types and import matching.

use carnac::*;

const TIERS: &[Strategy] =
    if cfg!(carnac_compiled) { &[Strategy::Interpreter, Strategy::Cranelift] } else { &[Strategy::Interpreter] };

const WAT: &str = r#"(module
    (memory $m64 (export "m64") i64 2 0x1_0000_0000)
    (memory $m32 1 2)
    (data (memory $m64) (i64.const 0x1_0000) "\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\10")
    (data $seg "\aa\bb\cc")
    (func (export "load") (param i64) (result i32) (i32.load $m64 (local.get 0)))
    (func (export "load_off") (param i64) (result i32) (i32.load $m64 offset=0x1_0000 (local.get 0)))
    (func (export "load_huge_off") (param i64) (result i32)
        (i32.load8_u $m64 offset=0xffff_ffff_ffff_ffff (local.get 0)))
    (func (export "load_off_2_32") (param i64) (result i32) (i32.load8_u $m64 offset=0x1_0000_0000 (local.get 0)))
    (func (export "load64_const") (result i64) (i64.load $m64 offset=8 (i64.const 0x1_0000)))
    (func (export "store") (param i64 i32) (i32.store $m64 (local.get 0) (local.get 1)))
    (func (export "store_off") (param i64 i64) (i64.store $m64 offset=0x1_0008 (local.get 0) (local.get 1)))
    (func (export "store_huge_off") (param i64) (i32.store8 $m64 offset=0xffff_ffff_ffff_fff0 (local.get 0) (i32.const 1)))
    (func (export "load_add") (param i64) (result i32)
        (local $t i32)
        (local.set $t (i32.load8_u $m64 (local.get 0)))
        (i32.add (i32.load8_u $m64 offset=1 (local.get 0)) (local.get $t)))
    (func (export "sum") (param $n i64) (result i32)
        (local $i i64) (local $s i32)
        (block $done
            (loop $next
                (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
                (local.set $s (i32.add (local.get $s) (i32.load8_u $m64 offset=0x1_0000 (local.get $i))))
                (local.set $i (i64.add (local.get $i) (i64.const 1)))
                (br $next)))
        (local.get $s))
    (func (export "simd_copy") (param i64 i64)
        (v128.store $m64 (local.get 0) (v128.load $m64 (local.get 1))))
    (func (export "simd_lane") (param i64) (result i32)
        (i32x4.extract_lane 1 (v128.load32_lane $m64 1 (local.get 0) (v128.const i64x2 0 0))))
    (func (export "simd_store_lane") (param i64)
        (v128.store8_lane $m64 offset=0x1_0000 3 (local.get 0) (v128.const i32x4 0x44332211 0 0 0)))
    (func (export "atomic_add") (param i64 i32) (result i32)
        (i32.atomic.rmw.add $m64 offset=4 (local.get 0) (local.get 1)))
    (func (export "atomic_load") (param i64) (result i64) (i64.atomic.load $m64 (local.get 0)))
    (func (export "size") (result i64) (memory.size $m64))
    (func (export "grow") (param i64) (result i64) (memory.grow $m64 (local.get 0)))
    (func (export "fill") (param i64 i32 i64) (memory.fill $m64 (local.get 0) (local.get 1) (local.get 2)))
    (func (export "copy") (param i64 i64 i64) (memory.copy $m64 $m64 (local.get 0) (local.get 1) (local.get 2)))
    (func (export "init") (param i64 i32 i32) (memory.init $m64 $seg (local.get 0) (local.get 1) (local.get 2)))
    ;; Between the memories: each address of its memory's index type, the length i32.
    (func (export "copy_to_32") (param i32 i64 i32) (memory.copy $m32 $m64 (local.get 0) (local.get 1) (local.get 2)))
    (func (export "copy_to_64") (param i64 i32 i32) (memory.copy $m64 $m32 (local.get 0) (local.get 1) (local.get 2)))
    (func (export "load32") (param i32) (result i32) (i32.load $m32 (local.get 0)))
    (func (export "size32") (result i32) (memory.size $m32))
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
    let oob = Some(TrapKind::MemoryOutOfBounds);
    let trap = |r: Result<(), Error>| r.unwrap_err().as_trap().map(|t| t.kind());

    // The memory's type, through the API.
    let m64 = inst.get_memory(&store, "m64").unwrap();
    let ty = m64.ty(&store);
    assert!(ty.is_64() && ty.index_type() == ValType::I64, "{what}");
    assert_eq!((ty.minimum(), ty.maximum()), (2, Some(1 << 32)), "{what}");

    // Loads and stores at a data segment placed by an i64 offset.
    assert_eq!(call!("load", i64, i32, 0x1_0000).unwrap(), 0x0403_0201, "{what}");
    assert_eq!(call!("load_off", i64, i32, 4).unwrap(), 0x0807_0605, "{what}");
    assert_eq!(call!("load64_const", (), i64, ()).unwrap(), 0x100f_0e0d_0c0b_0a09, "{what}");
    assert_eq!(call!("load_add", i64, i32, 0x1_0002).unwrap(), 3 + 4, "{what}");
    assert_eq!(call!("sum", i64, i32, 16).unwrap(), (1..=16).sum::<i32>(), "{what}");
    call!("store", (i64, i32), (), (0x1_fffc, 0x1234_5678)).unwrap();
    assert_eq!(call!("load", i64, i32, 0x1_fffc).unwrap(), 0x1234_5678, "{what}: the last word");
    call!("store_off", (i64, i64), (), (0x100, -2)).unwrap();
    assert_eq!(call!("load", i64, i32, 0x1_0108).unwrap(), -2, "{what}");

    // Out of bounds: past the end, at 2^32 and beyond (no 32-bit wrap), and
    // address + offset past 2^64 (no 64-bit wrap).
    assert_eq!(trap(call!("load", i64, i32, 0x1_fffd).map(drop)), oob, "{what}: straddles the end");
    assert_eq!(trap(call!("load", i64, i32, 0x2_0000).map(drop)), oob, "{what}");
    assert_eq!(trap(call!("load", i64, i32, 1 << 32).map(drop)), oob, "{what}: 2^32 does not wrap to 0");
    assert_eq!(trap(call!("load", i64, i32, (1 << 32) + 0x1_0000).map(drop)), oob, "{what}");
    assert_eq!(trap(call!("load", i64, i32, -1).map(drop)), oob, "{what}: 2^64 - 1");
    assert_eq!(trap(call!("load_off", i64, i32, -0x1_0000).map(drop)), oob, "{what}: address + offset = 2^64");
    assert_eq!(trap(call!("load_off", i64, i32, -0x8000).map(drop)), oob, "{what}: wraps to 0x8000");
    assert_eq!(trap(call!("load_huge_off", i64, i32, 0).map(drop)), oob, "{what}: offset 2^64 - 1");
    assert_eq!(trap(call!("load_huge_off", i64, i32, 1).map(drop)), oob, "{what}: offset 2^64 - 1, wraps to 0");
    assert_eq!(trap(call!("load_off_2_32", i64, i32, 0).map(drop)), oob, "{what}: offset 2^32");
    assert_eq!(trap(call!("store_huge_off", i64, (), 0x20)), oob, "{what}: store wraps to 0x10");
    assert_eq!(trap(call!("store", (i64, i32), (), (-4, 0))), oob, "{what}");
    assert_eq!(trap(call!("store_off", (i64, i64), (), (-0x1_0008, 0))), oob, "{what}: wraps to 0");
    assert_eq!(call!("load", i64, i32, 0).unwrap(), 0, "{what}: nothing written by the traps");
    assert_eq!(call!("load", i64, i32, 0x10).unwrap(), 0, "{what}");

    // SIMD and atomics.
    call!("simd_copy", (i64, i64), (), (0x300, 0x1_0000)).unwrap();
    assert_eq!(call!("load", i64, i32, 0x30c).unwrap(), 0x100f_0e0d, "{what}");
    assert_eq!(call!("simd_lane", i64, i32, 0x1_0004).unwrap(), 0x0807_0605, "{what}");
    assert_eq!(trap(call!("simd_copy", (i64, i64), (), (0, 0x1_fff1))), oob, "{what}");
    assert_eq!(trap(call!("simd_copy", (i64, i64), (), (0, -16))), oob, "{what}");
    assert_eq!(trap(call!("simd_lane", i64, i32, 1 << 40).map(drop)), oob, "{what}");
    call!("simd_store_lane", i64, (), 0x400).unwrap();
    assert_eq!(call!("load", i64, i32, 0x1_0400).unwrap(), 0x44, "{what}");
    assert_eq!(call!("atomic_add", (i64, i32), i32, (0x1_0000, 10)).unwrap(), 0x0807_0605, "{what}");
    assert_eq!(call!("load", i64, i32, 0x1_0004).unwrap(), 0x0807_060f, "{what}");
    assert_eq!(call!("atomic_load", i64, i64, 0x1_0008).unwrap(), 0x100f_0e0d_0c0b_0a09, "{what}");
    assert_eq!(trap(call!("atomic_add", (i64, i32), i32, (-4, 1)).map(drop)), oob, "{what}: wraps to 0");
    assert_eq!(trap(call!("atomic_load", i64, i64, (1 << 32) + 8).map(drop)), oob, "{what}");

    // Size and growth in i64: a maximum of 2^32 pages, of which the host
    // reserves 4 GiB; asking for more fails (-1) and changes nothing.
    assert_eq!(call!("size", (), i64, ()).unwrap(), 2, "{what}");
    assert_eq!(call!("grow", i64, i64, 1).unwrap(), 2, "{what}");
    assert_eq!(call!("size", (), i64, ()).unwrap(), 3, "{what}");
    assert_eq!(call!("load", i64, i32, 0x2_fffc).unwrap(), 0, "{what}: grown");
    assert_eq!(call!("grow", i64, i64, 1 << 40).unwrap(), -1, "{what}: past the declared maximum");
    assert_eq!(call!("grow", i64, i64, -1).unwrap(), -1, "{what}: 2^64 - 1 pages");
    assert_eq!(call!("grow", i64, i64, 70_000).unwrap(), -1, "{what}: past what the host reserves");
    assert_eq!(call!("grow", i64, i64, 0).unwrap(), 3, "{what}");
    assert_eq!(m64.size(&store), 3, "{what}");
    assert!(m64.grow(&mut store, 1 << 20).is_err(), "{what}: the API refuses too");
    assert_eq!(m64.grow(&mut store, 1).unwrap(), 3, "{what}");

    // Bulk operators with i64 operands, and their bounds.
    call!("fill", (i64, i32, i64), (), (0x500, 0x55, 8)).unwrap();
    assert_eq!(call!("load", i64, i32, 0x504).unwrap(), 0x5555_5555, "{what}");
    call!("copy", (i64, i64, i64), (), (0x600, 0x1_0000, 4)).unwrap();
    assert_eq!(call!("load", i64, i32, 0x600).unwrap(), 0x0403_0201, "{what}");
    call!("init", (i64, i32, i32), (), (0x700, 0, 3)).unwrap();
    assert_eq!(call!("load", i64, i32, 0x700).unwrap(), 0x00cc_bbaa, "{what}");
    assert_eq!(trap(call!("fill", (i64, i32, i64), (), (1 << 32, 0, 0))), oob, "{what}: empty, but past the end");
    assert_eq!(trap(call!("fill", (i64, i32, i64), (), (8, 0, -1))), oob, "{what}: length 2^64 - 1");
    assert_eq!(trap(call!("fill", (i64, i32, i64), (), (-1, 0, 2))), oob, "{what}: wraps");
    assert_eq!(trap(call!("copy", (i64, i64, i64), (), (0, -8, 16))), oob, "{what}");
    assert_eq!(trap(call!("copy", (i64, i64, i64), (), ((1 << 32) + 1, 0, 1))), oob, "{what}");
    assert_eq!(trap(call!("init", (i64, i32, i32), (), (1 << 33, 0, 1))), oob, "{what}");
    call!("fill", (i64, i32, i64), (), (0x4_0000, 0, 0)).unwrap();

    // memory.copy between a 32-bit and a 64-bit memory.
    call!("copy_to_32", (i32, i64, i32), (), (0x20, 0x1_0000, 8)).unwrap();
    assert_eq!(call!("load32", i32, i32, 0x24).unwrap(), 0x0807_060f, "{what}: after the atomic add");
    call!("copy_to_64", (i64, i32, i32), (), (0x3_0000, 0x20, 4)).unwrap();
    assert_eq!(call!("load", i64, i32, 0x3_0000).unwrap(), 0x0403_0201, "{what}");
    assert_eq!(trap(call!("copy_to_32", (i32, i64, i32), (), (0, 1 << 32, 1))), oob, "{what}: 64-bit source");
    assert_eq!(trap(call!("copy_to_32", (i32, i64, i32), (), (0xffff, 0, 2))), oob, "{what}: 32-bit destination");
    assert_eq!(trap(call!("copy_to_64", (i64, i32, i32), (), (-1, 0, 1))), oob, "{what}: 64-bit destination");
    assert_eq!(call!("size32", (), i32, ()).unwrap(), 1, "{what}");
}

#[test]
fn every_memory_instruction_on_a_64_bit_memory() {
    for &tier in TIERS {
        check(tier, false);
        check(tier, true);
    }
}

const TABLES: &str = r#"(module
    (type $ret (func (result i32)))
    (table $t (export "t") i64 4 10 funcref)
    (table $t32 2 funcref)
    (func $seven (result i32) (i32.const 7))
    (func $nine (result i32) (i32.const 9))
    (elem (table $t) (i64.const 1) func $seven $nine)
    (elem $passive func $nine $seven)
    (func (export "call") (param i64) (result i32) (call_indirect $t (type $ret) (local.get 0)))
    (func (export "is_null") (param i64) (result i32) (ref.is_null (table.get $t (local.get 0))))
    (func (export "set") (param i64 i64) (table.set $t (local.get 0) (table.get $t (local.get 1))))
    (func (export "size") (result i64) (table.size $t))
    (func (export "grow") (param i64) (result i64) (table.grow $t (ref.null func) (local.get 0)))
    (func (export "fill") (param i64 i64 i64) (table.fill $t (local.get 0) (table.get $t (local.get 1)) (local.get 2)))
    (func (export "copy") (param i64 i64 i64) (table.copy $t $t (local.get 0) (local.get 1) (local.get 2)))
    (func (export "init") (param i64 i32 i32) (table.init $t $passive (local.get 0) (local.get 1) (local.get 2)))
    ;; Between a 32-bit and a 64-bit table: the length is an i32.
    (func (export "copy_to_32") (param i32 i64 i32) (table.copy $t32 $t (local.get 0) (local.get 1) (local.get 2)))
    (func (export "call32") (param i32) (result i32) (call_indirect $t32 (type $ret) (local.get 0)))
)"#;

fn check_tables(tier: Strategy, instrumented: bool) {
    let mut config = Config::new();
    config.strategy(tier);
    config.consume_fuel(instrumented).lazy_translation(!instrumented);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, TABLES).unwrap();
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
    let kind = |r: Result<(), Error>| r.unwrap_err().as_trap().map(|t| t.kind());
    let oob = Some(TrapKind::TableOutOfBounds);

    let t = inst.get_table(&store, "t").unwrap();
    let ty = t.ty(&store);
    assert!(ty.is_64() && ty.index_type() == ValType::I64, "{what}");
    assert_eq!((ty.minimum(), ty.maximum()), (4, Some(10)), "{what}");

    // An element segment at an i64 offset, called through an i64 index.
    assert_eq!(call!("call", i64, i32, 1).unwrap(), 7, "{what}");
    assert_eq!(call!("call", i64, i32, 2).unwrap(), 9, "{what}");
    assert_eq!(kind(call!("call", i64, i32, 0).map(drop)), Some(TrapKind::IndirectCallToNull), "{what}");
    assert_eq!(kind(call!("call", i64, i32, 4).map(drop)), oob, "{what}");
    assert_eq!(kind(call!("call", i64, i32, (1 << 32) + 1).map(drop)), oob, "{what}: no 32-bit wrap");
    assert_eq!(kind(call!("call", i64, i32, -1).map(drop)), oob, "{what}");

    assert_eq!(call!("is_null", i64, i32, 0).unwrap(), 1, "{what}");
    assert_eq!(call!("is_null", i64, i32, 1).unwrap(), 0, "{what}");
    assert_eq!(kind(call!("is_null", i64, i32, (1 << 32) + 1).map(drop)), oob, "{what}");
    call!("set", (i64, i64), (), (0, 2)).unwrap();
    assert_eq!(call!("call", i64, i32, 0).unwrap(), 9, "{what}");
    assert_eq!(kind(call!("set", (i64, i64), (), (1 << 32, 1))), oob, "{what}");

    assert_eq!(call!("size", (), i64, ()).unwrap(), 4, "{what}");
    assert_eq!(call!("grow", i64, i64, 2).unwrap(), 4, "{what}");
    assert_eq!(call!("size", (), i64, ()).unwrap(), 6, "{what}");
    assert_eq!(call!("grow", i64, i64, 5).unwrap(), -1, "{what}: past the maximum");
    assert_eq!(call!("grow", i64, i64, 1 << 32).unwrap(), -1, "{what}: 2^32 does not wrap to 0");
    assert_eq!(call!("grow", i64, i64, -1).unwrap(), -1, "{what}");
    assert_eq!(call!("size", (), i64, ()).unwrap(), 6, "{what}");

    call!("fill", (i64, i64, i64), (), (4, 1, 2)).unwrap();
    assert_eq!(call!("call", i64, i32, 5).unwrap(), 7, "{what}");
    assert_eq!(kind(call!("fill", (i64, i64, i64), (), (4, 1, (1 << 32) + 1))), oob, "{what}");
    assert_eq!(kind(call!("fill", (i64, i64, i64), (), (1 << 32, 1, 0))), oob, "{what}");
    call!("copy", (i64, i64, i64), (), (3, 1, 2)).unwrap();
    assert_eq!(call!("call", i64, i32, 4).unwrap(), 9, "{what}");
    assert_eq!(kind(call!("copy", (i64, i64, i64), (), (0, (1 << 32) + 1, 1))), oob, "{what}");
    call!("init", (i64, i32, i32), (), (0, 0, 2)).unwrap();
    assert_eq!((call!("call", i64, i32, 0).unwrap(), call!("call", i64, i32, 1).unwrap()), (9, 7), "{what}");
    assert_eq!(kind(call!("init", (i64, i32, i32), (), (1 << 32, 0, 0))), oob, "{what}");

    call!("copy_to_32", (i32, i64, i32), (), (0, 0, 2)).unwrap();
    assert_eq!(call!("call32", i32, i32, 1).unwrap(), 7, "{what}");
    assert_eq!(kind(call!("copy_to_32", (i32, i64, i32), (), (0, 1 << 32, 0))), oob, "{what}");

    // The API's view of the same table.
    assert_eq!(t.size(&store), 6, "{what}");
    assert_eq!(t.grow(&mut store, 1, Val::FuncRef(None)).unwrap(), 6, "{what}");
    assert_eq!(call!("size", (), i64, ()).unwrap(), 7, "{what}");
}

#[test]
fn tables_with_i64_indices() {
    for &tier in TIERS {
        check_tables(tier, false);
        check_tables(tier, true);
    }
}

/// Host-made 64-bit memories and tables, and import matching on index types.
#[test]
fn api_types_and_import_matching() {
    for &tier in TIERS {
        let mut config = Config::new();
        config.strategy(tier);
        let engine = Engine::new(&config);
        let mut store = Store::new(&engine, ());
        let ty = MemoryType::new64(1, Some(1 << 40));
        assert!(ty.is_64() && !MemoryType::new(1, None).is_64());
        let mem64 = Memory::new(&mut store, ty).unwrap();
        let mem32 = Memory::new(&mut store, MemoryType::new(1, None)).unwrap();
        assert_eq!(mem64.ty(&store).maximum(), Some(1 << 40), "the declared maximum, above 4 GiB");
        let table64 = Table::new(&mut store, TableType::new64(ValType::FuncRef, 2, None), Val::FuncRef(None)).unwrap();
        let table32 = Table::new(&mut store, TableType::new(ValType::FuncRef, 2, None), Val::FuncRef(None)).unwrap();

        let wat = r#"(module
            (import "host" "m" (memory i64 1))
            (import "host" "t" (table i64 1 funcref))
            (func (export "store") (param i64 i32) (i32.store (local.get 0) (local.get 1)))
            (func (export "size") (result i64) (table.size 0)))"#;
        let module = Module::new(&engine, wat).unwrap();
        let ExternType::Memory(want) = module.imports().next().unwrap().ty else { panic!("a memory import") };
        assert!(want.is_64());

        let with = |store: &mut Store<()>, m: Memory, t: Table| {
            let mut linker = Linker::new(&engine);
            linker.define("host", "m", m).unwrap();
            linker.define("host", "t", t).unwrap();
            linker.instantiate(store, &module)
        };
        let err = with(&mut store, mem32, table64).unwrap_err();
        assert!(err.to_string().contains("i64 memory"), "{tier:?}: {err}");
        let err = with(&mut store, mem64, table32).unwrap_err();
        assert!(err.to_string().contains("i64 funcref table"), "{tier:?}: {err}");
        let inst = with(&mut store, mem64, table64).unwrap();
        let f = inst.get_typed_func::<(i64, i32), ()>(&store, "store").unwrap();
        f.call(&mut store, (0xfffc, 0x0102_0304)).unwrap();
        assert_eq!(mem64.data(&store)[0xfffc..0x10000], [4, 3, 2, 1], "{tier:?}");
        let r = f.call(&mut store, (0x1_0000_fffc, 1)).unwrap_err();
        assert_eq!(r.as_trap().map(|t| t.kind()), Some(TrapKind::MemoryOutOfBounds), "{tier:?}");
        assert_eq!(inst.get_typed_func::<(), i64>(&store, "size").unwrap().call(&mut store, ()).unwrap(), 2);

        // A shared one, made by the host, imported where a shared 64-bit memory is expected.
        let shared = SharedMemory::new(&engine, MemoryType::shared64(1, 4)).unwrap();
        assert!(shared.ty().is_64() && shared.ty().is_shared(), "{tier:?}");
        let module = Module::new(
            &engine,
            r#"(module (import "host" "s" (memory i64 1 4 shared))
            (func (export "add") (param i64) (result i32) (i32.atomic.rmw.add (local.get 0) (i32.const 3))))"#,
        )
        .unwrap();
        let mut linker = Linker::new(&engine);
        linker.define("host", "s", shared.clone()).unwrap();
        let inst = linker.instantiate(&mut store, &module).unwrap();
        let add = inst.get_typed_func::<i64, i32>(&store, "add").unwrap();
        assert_eq!(add.call(&mut store, 0x100).unwrap(), 0, "{tier:?}");
        assert_eq!(add.call(&mut store, 0x100).unwrap(), 3, "{tier:?}");
        let mut linker = Linker::new(&engine);
        linker.define("host", "s", SharedMemory::new(&engine, MemoryType::shared(1, 4)).unwrap()).unwrap();
        assert!(linker.instantiate(&mut store, &module).is_err(), "{tier:?}: a 32-bit shared memory");

        // With memory64 off, a 64-bit memory is rejected.
        let mut off = Config::new();
        off.strategy(tier).wasm_memory64(false);
        assert!(Module::new(&Engine::new(&off), "(module (memory i64 1))").is_err(), "{tier:?}");
    }
}

/// A snapshot of an instance with a 64-bit memory and table captures them,
/// and the module it is written as (i64 segment offsets) validates and runs.
#[test]
fn a_snapshot_of_64_bit_memories_and_tables() {
    for &tier in TIERS {
        let engine = Engine::new(Config::new().strategy(tier));
        let module = Module::new(&engine, WAT).unwrap();
        let mut store = Store::new(&engine, ());
        let inst = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        let store_at = inst.get_typed_func::<(i64, i32), ()>(&store, "store").unwrap();
        store_at.call(&mut store, (0x1_8000, 0x5151)).unwrap();
        inst.get_typed_func::<i64, i64>(&store, "grow").unwrap().call(&mut store, 1).unwrap();
        store_at.call(&mut store, (0x2_1000, 0x7777)).unwrap();
        let snap = inst.snapshot(&store).unwrap();
        let written = Module::new(&engine, snap.to_wasm(&[]).unwrap()).unwrap();
        for module in [snap.module(), &written] {
            let mut store = Store::new(&engine, ());
            let inst = Linker::new(&engine).instantiate(&mut store, module).unwrap();
            let load = inst.get_typed_func::<i64, i32>(&store, "load").unwrap();
            assert_eq!(load.call(&mut store, 0x1_0000).unwrap(), 0x0403_0201, "{tier:?}");
            assert_eq!(load.call(&mut store, 0x1_8000).unwrap(), 0x5151, "{tier:?}");
            assert_eq!(load.call(&mut store, 0x2_1000).unwrap(), 0x7777, "{tier:?}: the grown page");
            let size = inst.get_typed_func::<(), i64>(&store, "size").unwrap();
            assert_eq!(size.call(&mut store, ()).unwrap(), 3, "{tier:?}");
            assert!(inst.get_memory(&store, "m64").unwrap().ty(&store).is_64(), "{tier:?}");
        }
    }
}

/// Active data and element segments at i64 offsets of 2^32 and more are out
/// of bounds (they must not wrap to small offsets), whether the data is
/// copied at instantiation or laid out ahead of time in a memory image.
#[test]
fn segment_offsets_past_4_gib_trap() {
    let big = "\\00".repeat(64 << 10);
    for &tier in TIERS {
        let engine = Engine::new(Config::new().strategy(tier));
        for data in ["\\01", big.as_str()] {
            for offset in ["0x1_0000_0000", "0xffff_ffff_ffff_ffff", "0x8000_0000_0000_0000"] {
                let wat = format!(r#"(module (memory i64 2) (data (i64.const {offset}) "{data}"))"#);
                let module = Module::new(&engine, &wat).unwrap();
                let err = Linker::new(&engine).instantiate(&mut Store::new(&engine, ()), &module).unwrap_err();
                assert_eq!(err.as_trap().map(|t| t.kind()), Some(TrapKind::MemoryOutOfBounds), "{tier:?} {offset}");
            }
            let wat = format!(r#"(module (memory (export "m") i64 3) (data (i64.const 0x1_0000) "{data}\07"))"#);
            let module = Module::new(&engine, &wat).unwrap();
            let mut store = Store::new(&engine, ());
            let inst = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
            let at = 0x1_0000 + data.len() / 3;
            assert_eq!(inst.get_memory(&store, "m").unwrap().data(&store)[at], 7, "{tier:?}");
        }
        let wat = r#"(module (table i64 2 funcref) (func $f) (elem (table 0) (i64.const 0x1_0000_0000) func $f))"#;
        let module = Module::new(&engine, wat).unwrap();
        let err = Linker::new(&engine).instantiate(&mut Store::new(&engine, ()), &module).unwrap_err();
        assert_eq!(err.as_trap().map(|t| t.kind()), Some(TrapKind::TableOutOfBounds), "{tier:?}");
    }
}

/// A compiled module with 64-bit memories and tables goes through an
/// artifact and through the code cache, and runs the same; an engine with
/// memory64 off refuses the artifact (another set of wasm features).
#[test]
#[cfg_attr(not(carnac_compiled), ignore = "needs the compiled tier")]
fn artifacts_and_the_code_cache() {
    let dir = std::env::temp_dir().join(format!("carnac-memory64-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config::new();
    config.strategy(Strategy::Cranelift).cache(true).cache_dir(Some(dir.clone()));
    let engine = Engine::new(&config);
    let run = |module: &Module| {
        let mut store = Store::new(&engine, ());
        let inst = Linker::new(&engine).instantiate(&mut store, module).unwrap();
        let load = inst.get_typed_func::<i64, i32>(&store, "load_off").unwrap();
        assert_eq!(load.call(&mut store, 4).unwrap(), 0x0807_0605);
        let r = load.call(&mut store, -0x1_0000).unwrap_err();
        assert_eq!(r.as_trap().map(|t| t.kind()), Some(TrapKind::MemoryOutOfBounds));
        let grow = inst.get_typed_func::<i64, i64>(&store, "grow").unwrap();
        assert_eq!(grow.call(&mut store, 1 << 40).unwrap(), -1);
        assert_eq!(grow.call(&mut store, 1).unwrap(), 2);
    };
    let module = Module::new(&engine, WAT).unwrap();
    run(&module);
    let bytes = module.serialize().unwrap();
    run(&Module::deserialize(&engine, &bytes).unwrap());
    // Compiled again: from the cache this time.
    let cached = Module::new(&engine, WAT).unwrap();
    run(&cached);
    assert!(engine.cache_stats().hits >= 1, "{:?}", engine.cache_stats());
    let mut off = Config::new();
    off.strategy(Strategy::Cranelift).wasm_memory64(false);
    assert!(Module::deserialize(&Engine::new(&off), &bytes).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `Config::memory64_reservation` bounds what a 64-bit memory reserves:
/// growing past it fails (-1) whatever the declared maximum, in both tiers,
/// a minimum above it fails to instantiate, and 32-bit memories are unaffected.
#[test]
fn the_reservation_bound_is_configurable() {
    let wat = r#"(module
        (memory $m64 i64 1 0x1_0000_0000)
        (memory $m32 1 8)
        (func (export "grow64") (param i64) (result i64) (memory.grow $m64 (local.get 0)))
        (func (export "grow32") (param i32) (result i32) (memory.grow $m32 (local.get 0)))
        (func (export "store64") (param i64) (i32.store8 $m64 (local.get 0) (i32.const 1))))"#;
    for &tier in TIERS {
        let mut config = Config::new();
        config.strategy(tier).memory64_reservation(4 * WASM_PAGE as u64 + 100);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let inst = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        let grow64 = inst.get_typed_func::<i64, i64>(&store, "grow64").unwrap();
        let grow32 = inst.get_typed_func::<i32, i32>(&store, "grow32").unwrap();
        let store64 = inst.get_typed_func::<i64, ()>(&store, "store64").unwrap();
        assert_eq!(grow64.call(&mut store, 4).unwrap(), -1, "{tier:?}: 5 pages, past the 4 reserved");
        assert_eq!(grow64.call(&mut store, 3).unwrap(), 1, "{tier:?}");
        assert_eq!(grow64.call(&mut store, 1).unwrap(), -1, "{tier:?}");
        store64.call(&mut store, 4 * WASM_PAGE as i64 - 1).unwrap();
        let r = store64.call(&mut store, 4 * WASM_PAGE as i64).unwrap_err();
        assert_eq!(r.as_trap().map(|t| t.kind()), Some(TrapKind::MemoryOutOfBounds), "{tier:?}");
        assert_eq!(grow32.call(&mut store, 7).unwrap(), 1, "{tier:?}: a 32-bit memory is not bounded by it");
        let big = Module::new(&engine, "(module (memory i64 5))").unwrap();
        let err = Linker::new(&engine).instantiate(&mut Store::new(&engine, ()), &big).unwrap_err();
        assert!(err.to_string().contains("the host reserves"), "{tier:?}: {err}");
    }
}

/// A shared 64-bit memory: atomics, `memory.atomic.notify` and
/// `memory.atomic.wait32/64` take i64 addresses, and trap past the end
/// without wrapping.
#[test]
fn a_shared_64_bit_memory_waits_and_notifies() {
    let wat = r#"(module
        (memory i64 1 2 shared)
        (func (export "notify") (param i64) (result i32) (memory.atomic.notify offset=4 (local.get 0) (i32.const 1)))
        (func (export "wait32") (param i64 i32) (result i32)
            (memory.atomic.wait32 (local.get 0) (local.get 1) (i64.const 0)))
        (func (export "wait64") (param i64) (result i32)
            (memory.atomic.wait64 offset=8 (local.get 0) (i64.const 5) (i64.const 0)))
        (func (export "xchg") (param i64 i32) (result i32) (i32.atomic.rmw.xchg (local.get 0) (local.get 1))))"#;
    for &tier in TIERS {
        let engine = Engine::new(Config::new().strategy(tier));
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let inst = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        let notify = inst.get_typed_func::<i64, i32>(&store, "notify").unwrap();
        let wait32 = inst.get_typed_func::<(i64, i32), i32>(&store, "wait32").unwrap();
        let wait64 = inst.get_typed_func::<i64, i32>(&store, "wait64").unwrap();
        let xchg = inst.get_typed_func::<(i64, i32), i32>(&store, "xchg").unwrap();
        let oob = |r: Result<i32, Error>| r.unwrap_err().as_trap().map(|t| t.kind());
        assert_eq!(notify.call(&mut store, 0xfff8).unwrap(), 0, "{tier:?}: no waiter");
        assert_eq!(oob(notify.call(&mut store, 0xfffc)), Some(TrapKind::MemoryOutOfBounds), "{tier:?}");
        assert_eq!(oob(notify.call(&mut store, -4)), Some(TrapKind::MemoryOutOfBounds), "{tier:?}: wraps to 0");
        assert_eq!(xchg.call(&mut store, (0x100, 7)).unwrap(), 0, "{tier:?}");
        assert_eq!(wait32.call(&mut store, (0x100, 6)).unwrap(), 1, "{tier:?}: not equal");
        assert_eq!(wait32.call(&mut store, (0x100, 7)).unwrap(), 2, "{tier:?}: timed out");
        assert_eq!(oob(wait32.call(&mut store, ((1 << 32) + 0x100, 7))), Some(TrapKind::MemoryOutOfBounds));
        assert_eq!(wait64.call(&mut store, 0x200).unwrap(), 1, "{tier:?}: not equal (0 against 5)");
        assert_eq!(oob(wait64.call(&mut store, -8)), Some(TrapKind::MemoryOutOfBounds), "{tier:?}");
        assert_eq!(oob(xchg.call(&mut store, (1 << 32, 1))), Some(TrapKind::MemoryOutOfBounds), "{tier:?}");
        assert_eq!(oob(xchg.call(&mut store, (0x101, 1))), Some(TrapKind::UnalignedAtomic), "{tier:?}");
    }
}
