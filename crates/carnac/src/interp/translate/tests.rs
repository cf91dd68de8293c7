use super::super::code::Instr;
use super::threaded;
use crate::{Engine, Module};

fn code(wat: &str) -> Vec<Instr> {
    code_of(wat, 0)
}

/// The code of defined function `index`.
/// The interpreter alone (the default, `Strategy::Auto`, adds `OsrPoint`s).
fn interp_engine() -> Engine {
    Engine::new(crate::Config::new().strategy(crate::Strategy::Interpreter))
}

#[test]
#[cfg(carnac_compiled)]
fn tiering_counts_at_function_entries_and_loop_headers_with_an_empty_stack() {
    let wat = r#"(module (func (param i32) (result i32)
        (loop $a (br_if $a (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
        (i32.const 7)
        (loop $b (param i32) (result i32) (br_if $b (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))))"#;
    let m = Module::new(&Engine::new(crate::Config::new().strategy(crate::Strategy::Auto)), wat).unwrap();
    let code = m.inner.func_code(0).unwrap().instrs();
    let points: Vec<u32> =
        code.iter().filter_map(|i| if let Instr::OsrPoint { offset, .. } = i { Some(*offset) } else { None }).collect();
    // The entry, and loop $a; not $b, which has a parameter on the stack.
    assert_eq!(points.len(), 2, "{code:?}");
    assert_eq!(points[0], u32::MAX);
    assert!(code_of(wat, 0).iter().all(|i| !matches!(i, Instr::OsrPoint { .. })));
}

fn code_of(wat: &str, index: u32) -> Vec<Instr> {
    let m = Module::new(&interp_engine(), wat).unwrap();
    m.inner.func_code(index).unwrap().instrs()
}

/// A store and an instance of `wat`, to call its exports.
fn instantiate(wat: &str) -> (crate::Store<()>, crate::Instance) {
    let engine = interp_engine();
    let module = Module::new(&engine, wat).unwrap();
    let mut store = crate::Store::new(&engine, ());
    let instance = crate::Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    (store, instance)
}

#[test]
#[ignore]
fn dump() {
    // DUMP_WAT=path (text or binary): prints every function's code.
    let path = std::env::var("DUMP_WAT").unwrap();
    let m = Module::new(&interp_engine(), std::fs::read(path).unwrap()).unwrap();
    for f in 0..m.inner.code.len() {
        let func = m.inner.func_code(f as u32).unwrap();
        println!("func {f}: frame {} entry {}", func.frame_size, func.entry);
        // Branch targets as indices; the accumulator's marks spelled out.
        for (i, x) in func.instrs().iter().enumerate() {
            let mut acc = String::new();
            threaded::acc_marks(x, |bit, slot| {
                let what = if bit == threaded::ACC_DST { "result" } else { "operand" };
                acc += &format!("  [{what} {slot} in the accumulator]");
            });
            println!("{:4} {x:?}{acc}", i + func.entry as usize);
        }
    }
}

#[test]
fn local_get_is_folded_and_local_set_retargets() {
    let c = code(
        r#"(module (func (param i32 i32) (result i32) (local i32)
            (local.set 2 (i32.add (local.get 0) (local.get 1)))
            (local.get 2)))"#,
    );
    // add writes the local directly; the return copies it to slot 0.
    assert!(matches!(c[0], Instr::I32Add { dst: 2, lhs: 0, rhs: 1 }), "{c:?}");
    assert!(matches!(c[1], Instr::ReturnSlot { src: 2 }), "{c:?}");
    assert_eq!(c.len(), 2, "{c:?}");
}

#[test]
fn multiply_then_add_or_subtract_is_one_instruction_with_two_roundings() {
    let c = code(
        r#"(module (func (param f64 f64 f64) (result f64)
            (f64.add (local.get 2) (f64.mul (local.get 0) (local.get 1)))))"#,
    );
    assert!(matches!(c[0], Instr::F64MulAdd { ab: 0x1_0000, c: 2, .. }), "{c:?}");
    // Executed: two roundings, as f64.mul then f64.add (a fused multiply-add
    // would give 5.55e-17 for 0.1 * 10 - 1), in every operand order.
    let wat = r#"(module
        (func (export "add_r") (param f64 f64 f64) (result f64) (f64.add (local.get 2) (f64.mul (local.get 0) (local.get 1))))
        (func (export "add_l") (param f64 f64 f64) (result f64) (f64.add (f64.mul (local.get 0) (local.get 1)) (local.get 2)))
        (func (export "mul_sub") (param f64 f64 f64) (result f64) (f64.sub (f64.mul (local.get 0) (local.get 1)) (local.get 2)))
        (func (export "sub_mul") (param f64 f64 f64) (result f64) (f64.sub (local.get 2) (f64.mul (local.get 0) (local.get 1)))))"#;
    let (mut store, instance) = instantiate(wat);
    let call = |store: &mut crate::Store<()>, name: &str, x: f64, y: f64, z: f64| {
        instance.get_typed_func::<(f64, f64, f64), f64>(&*store, name).unwrap().call(store, (x, y, z)).unwrap()
    };
    assert_eq!(call(&mut store, "add_r", 0.1, 10.0, -1.0).to_bits(), 0.0f64.to_bits());
    assert_eq!(call(&mut store, "add_l", 0.1, 10.0, -1.0).to_bits(), 0.0f64.to_bits());
    assert_eq!(call(&mut store, "mul_sub", 0.1, 10.0, 1.0).to_bits(), 0.0f64.to_bits());
    assert_eq!(call(&mut store, "sub_mul", 0.1, 10.0, 1.0).to_bits(), 0.0f64.to_bits());
    assert_eq!(call(&mut store, "mul_sub", 3.0, 4.0, 2.0), 10.0);
    assert_eq!(call(&mut store, "sub_mul", 3.0, 4.0, 2.0), -10.0);
    assert!(call(&mut store, "add_l", f64::INFINITY, 0.0, 1.0).is_nan());
}

#[test]
fn a_bounds_check_on_a_sum_is_one_branch() {
    let wat = r#"(module
        (func (export "ge") (param i32 i32 i32) (result i32)
            (block (br_if 0 (i32.ge_u (i32.add (local.get 0) (local.get 1)) (local.get 2)))
                (return (i32.const 0)))
            (i32.const 1))
        (func (export "lt") (param i32 i32 i32) (result i32)
            (if (result i32) (i32.ge_u (i32.add (local.get 0) (local.get 1)) (local.get 2))
                (then (i32.const 1)) (else (i32.const 0))))
        (func (export "kept") (param i32 i32 i32) (result i32) (local i32)
            (block (br_if 0 (i32.ge_u (local.tee 3 (i32.add (local.get 0) (local.get 1))) (local.get 2))))
            (local.get 3)))"#;
    let c = code(wat);
    assert!(matches!(c[0], Instr::BrI32AddGeU { ab: 0x1_0000, .. }), "{c:?}");
    // `if` branches to its else arm when the condition fails: the negated form.
    let lt = code_of(wat, 1);
    assert!(matches!(lt[0], Instr::BrI32AddLtU { ab: 0x1_0000, .. }), "{lt:?}");
    // A sum that is also kept in a local (the common shape: an index checked,
    // then used) is written there by the same instruction.
    let kept = code_of(wat, 2);
    assert!(matches!(kept[0], Instr::BrI32AddGeU { ab: 0x1_0000, dr: 0x2_0003, .. }), "{kept:?}");
    let (mut store, instance) = instantiate(wat);
    for name in ["ge", "lt"] {
        let f = instance.get_typed_func::<(i32, i32, i32), i32>(&store, name).unwrap();
        assert_eq!(f.call(&mut store, (2, 3, 5)).unwrap(), 1, "{name}: 2 + 3 >= 5");
        assert_eq!(f.call(&mut store, (2, 2, 5)).unwrap(), 0, "{name}: 2 + 2 < 5");
        // The sum wraps at 32 bits: (2^32 - 1) + 2 = 1.
        assert_eq!(f.call(&mut store, (-1, 2, 5)).unwrap(), 0, "{name}: wrapped sum 1 < 5");
        assert_eq!(f.call(&mut store, (-1, 2, 1)).unwrap(), 1, "{name}: wrapped sum 1 >= 1");
    }
    let kept = instance.get_typed_func::<(i32, i32, i32), i32>(&store, "kept").unwrap();
    assert_eq!(kept.call(&mut store, (2, 3, 0)).unwrap(), 5);
}

/// Locals written before any read start with whatever the stack held (no
/// zeroing); those some path reads first must still read zero, however dirty
/// the stack is from earlier calls, whether called by wasm or by the host.
#[test]
fn only_locals_read_before_written_are_zeroed_and_they_read_zero() {
    let wat = r#"(module
        (func $dirty (param i64) (local i64 i64 i64 i64 i64 i64)
            (local.set 1 (local.get 0)) (local.set 2 (local.get 0)) (local.set 3 (local.get 0))
            (local.set 4 (local.get 0)) (local.set 5 (local.get 0)) (local.set 6 (local.get 0)))
        ;; local 1 is written first; local 2 only on one path; local 3 first read in a loop.
        (func $reads (export "reads") (param i32) (result i64) (local i64 i64 i64)
            (local.set 1 (i64.const 5))
            (if (local.get 0) (then (local.set 2 (i64.const 7))))
            (loop $l (if (i64.eqz (local.get 3)) (then (local.set 3 (i64.const 1)) (br $l))))
            (i64.add (i64.add (local.get 1) (local.get 2)) (local.get 3)))
        (func (export "dirty_then_reads") (param i32) (result i64)
            (call $dirty (i64.const -1))
            (call $reads (local.get 0)))
        (func (export "dirty") (call $dirty (i64.const -1))))"#;
    let reads = code_of(wat, 1);
    assert!(matches!(reads[0], Instr::ZeroLocals { start: 2, count: 2 }), "{reads:?}");
    assert!(!code_of(wat, 0).iter().any(|i| matches!(i, Instr::ZeroLocals { .. })));
    let (mut store, instance) = instantiate(wat);
    let f = instance.get_typed_func::<i32, i64>(&store, "dirty_then_reads").unwrap();
    assert_eq!(f.call(&mut store, 0).unwrap(), 6);
    assert_eq!(f.call(&mut store, 1).unwrap(), 13);
    let dirty = instance.get_typed_func::<(), ()>(&store, "dirty").unwrap();
    let reads = instance.get_typed_func::<i32, i64>(&store, "reads").unwrap();
    dirty.call(&mut store, ()).unwrap();
    assert_eq!(reads.call(&mut store, 0).unwrap(), 6);
}

/// An operator whose operand the instruction just before computed (into a
/// temp nothing else reads) takes over that instruction: one dispatch instead
/// of two, with the same results, wrapping and traps.
#[test]
fn a_consumer_absorbs_the_instruction_that_computed_its_operand() {
    let wat = r#"(module (memory 1) (global $sp (mut i32) (i32.const 1024))
        (data (i32.const 0) "\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\10\11\12\13\14\15\16\17\18")
        (func (export "rotl_xor") (param i32 i32) (result i32)
            (i32.xor (i32.rotl (local.get 0) (i32.const 7)) (local.get 1)))
        (func (export "rotr_xor64") (param i64 i64) (result i64)
            (i64.xor (local.get 1) (i64.rotr (local.get 0) (i64.const 13))))
        (func (export "xor_rotr") (param i32 i32) (result i32)
            (i32.rotr (i32.xor (local.get 0) (local.get 1)) (i32.const 5)))
        (func (export "xor_rotl64") (param i64 i64) (result i64)
            (i64.rotl (i64.xor (local.get 0) (local.get 1)) (i64.const 32)))
        (func (export "add_shl") (param i32 i32) (result i32)
            (i32.add (local.get 0) (i32.shl (local.get 1) (i32.const 3))))
        (func (export "load") (param i32) (result i64)
            (i64.load (i32.add (local.get 0) (i32.const 16))))
        (func (export "copy") (param i32 i32)
            (i64.store offset=8 (local.get 1) (i64.load offset=16 (local.get 0))))
        (func (export "frame") (param i32) (result i32) (local i32)
            (global.set $sp (local.tee 1 (i32.sub (global.get $sp) (i32.const 32))))
            (i32.store (local.get 1) (local.get 0))
            (global.set $sp (i32.add (local.get 1) (i32.const 32)))
            (i32.add (i32.load (local.get 1)) (global.get $sp)))
        (func (export "add_shr_u") (param i32 i32) (result i32)
            (i32.add (i32.shr_u (local.get 1) (i32.const 4)) (local.get 0)))
        (func (export "inverse") (param i32) (result f64)
            (f64.div (f64.const 1) (f64.convert_i32_u (local.get 0))))
        (func (export "count_lt_u64") (param i32 i64 i64) (result i32)
            (i32.add (local.get 0) (i64.lt_u (local.get 1) (local.get 2))))
        (func (export "count_lt_s32") (param i32 i32 i32) (result i32)
            (i32.add (i32.lt_s (local.get 1) (local.get 2)) (local.get 0)))
        (func (export "copy_keep") (param i32 i32) (result i64) (local i64)
            (local.set 2 (i64.load offset=16 (local.get 0)))
            (i64.store offset=8 (local.get 1) (local.get 2))
            (local.get 2))
        (func (export "store_at_itself") (param i32) (result i32) (local i32)
            (local.set 1 (i32.load (local.get 0)))
            (i32.store (local.get 1) (local.get 1))
            (i32.load (local.get 1))))"#;
    let has = |f: u32, what: fn(&Instr) -> bool| {
        let c = code_of(wat, f);
        assert!(c.iter().any(what), "function {f}: {c:?}");
    };
    has(0, |i| matches!(i, Instr::I32RotlXor { k: 7, .. }));
    has(1, |i| matches!(i, Instr::I64RotlXor { k: 51, .. }));
    has(2, |i| matches!(i, Instr::I32XorRotl { k: 27, .. }));
    has(3, |i| matches!(i, Instr::I64XorRotl { k: 32, .. }));
    has(4, |i| matches!(i, Instr::I32AddShl { k: 3, .. }));
    has(5, |i| matches!(i, Instr::I64LoadAddImm { k: 16, .. }));
    has(6, |i| matches!(i, Instr::I64MemCopyWord { src_offset: 16, dst_offset: 8, .. }));
    has(7, |i| matches!(i, Instr::GlobalAddImm { k: -32, .. }));
    has(7, |i| matches!(i, Instr::GlobalSetAddImm { k: 32, .. }));
    has(8, |i| matches!(i, Instr::I32AddShrU { k: 4, .. }));
    has(9, |i| matches!(i, Instr::F64KDivU32 { .. }));
    has(10, |i| matches!(i, Instr::I32AddI64LtU { .. }));
    has(11, |i| matches!(i, Instr::I32AddI32LtS { .. }));
    has(12, |i| matches!(i, Instr::I64LoadThenStore { offsets: 0x8_0010, .. }));
    has(13, |i| matches!(i, Instr::I32LoadThenStore { .. }));

    let (mut store, instance) = instantiate(wat);
    let f32s = |store: &crate::Store<()>, name| instance.get_typed_func::<(i32, i32), i32>(store, name).unwrap();
    let f64s = |store: &crate::Store<()>, name| instance.get_typed_func::<(i64, i64), i64>(store, name).unwrap();
    let (a, b) = (0x8765_4321u32 as i32, 0x0f0f_1234);
    assert_eq!(f32s(&store, "rotl_xor").call(&mut store, (a, b)).unwrap(), (a as u32).rotate_left(7) as i32 ^ b);
    assert_eq!(f32s(&store, "xor_rotr").call(&mut store, (a, b)).unwrap(), ((a ^ b) as u32).rotate_right(5) as i32);
    let (x, y) = (0x0123_4567_89ab_cdef_i64, -77_i64);
    assert_eq!(f64s(&store, "rotr_xor64").call(&mut store, (x, y)).unwrap(), y ^ (x as u64).rotate_right(13) as i64);
    assert_eq!(f64s(&store, "xor_rotl64").call(&mut store, (x, y)).unwrap(), ((x ^ y) as u64).rotate_left(32) as i64);
    // Wraps at 32 bits.
    let add_shl = f32s(&store, "add_shl").call(&mut store, (-16, 0x2000_0003)).unwrap();
    assert_eq!(add_shl, (-16i32).wrapping_add(0x2000_0003 << 3));
    let add_shr_u = f32s(&store, "add_shr_u").call(&mut store, (-1, -16)).unwrap();
    assert_eq!(add_shr_u, (-1i32).wrapping_add(((-16i32) as u32 >> 4) as i32));
    let inverse = instance.get_typed_func::<i32, f64>(&store, "inverse").unwrap();
    // Unsigned: -1 converts to 2^32 - 1.
    assert_eq!(inverse.call(&mut store, -1).unwrap(), 1.0 / 4294967295.0);
    assert_eq!(inverse.call(&mut store, 0).unwrap(), f64::INFINITY);
    let count_lt_u64 = instance.get_typed_func::<(i32, i64, i64), i32>(&store, "count_lt_u64").unwrap();
    assert_eq!(count_lt_u64.call(&mut store, (-1, 1, -1)).unwrap(), 0, "unsigned: 1 < 2^64 - 1, and -1 + 1 wraps");
    assert_eq!(count_lt_u64.call(&mut store, (5, -1, 1)).unwrap(), 5);
    let count_lt_s32 = instance.get_typed_func::<(i32, i32, i32), i32>(&store, "count_lt_s32").unwrap();
    assert_eq!(count_lt_s32.call(&mut store, (5, -1, 1)).unwrap(), 6, "signed: -1 < 1");
    assert_eq!(count_lt_s32.call(&mut store, (5, 1, -1)).unwrap(), 5);
    let load = instance.get_typed_func::<i32, i64>(&store, "load").unwrap();
    assert_eq!(load.call(&mut store, 0).unwrap(), 0x1817_1615_1413_1211);
    // The address wraps before the bounds check: -8 + 16 is 8.
    assert_eq!(load.call(&mut store, -8).unwrap(), 0x100f_0e0d_0c0b_0a09);
    let oob = load.call(&mut store, 65536 - 16 - 7).unwrap_err();
    assert_eq!(oob.as_trap().map(|t| t.kind()), Some(crate::TrapKind::MemoryOutOfBounds));
    let copy_keep = instance.get_typed_func::<(i32, i32), i64>(&store, "copy_keep").unwrap();
    assert_eq!(copy_keep.call(&mut store, (0, 300)).unwrap(), 0x1817_1615_1413_1211);
    assert_eq!(load.call(&mut store, 308 - 16).unwrap(), 0x1817_1615_1413_1211);
    assert!(copy_keep.call(&mut store, (0, 65536 - 15)).is_err());
    // The store's address is the value just loaded: `frame` leaves 500 at 992.
    let store_at_itself = instance.get_typed_func::<i32, i32>(&store, "store_at_itself").unwrap();
    let frame = instance.get_typed_func::<i32, i32>(&store, "frame").unwrap();
    frame.call(&mut store, 500).unwrap();
    assert_eq!(store_at_itself.call(&mut store, 1024 - 32).unwrap(), 500);
    let copy = instance.get_typed_func::<(i32, i32), ()>(&store, "copy").unwrap();
    copy.call(&mut store, (0, 100)).unwrap();
    assert_eq!(load.call(&mut store, 108 - 16).unwrap(), 0x1817_1615_1413_1211);
    // A load out of bounds traps before the store writes anything.
    let before = load.call(&mut store, 200 - 16).unwrap();
    assert!(copy.call(&mut store, (65536, 192)).is_err());
    assert_eq!(load.call(&mut store, 200 - 16).unwrap(), before);
    assert!(copy.call(&mut store, (0, 65536 - 12)).is_err());
    // The frame's local and the stack pointer both move; the pointer is restored.
    let frame = instance.get_typed_func::<i32, i32>(&store, "frame").unwrap();
    assert_eq!(frame.call(&mut store, 5).unwrap(), 5 + 1024);
    assert_eq!(frame.call(&mut store, 6).unwrap(), 6 + 1024);
}

/// Constants that would each take an instruction to write to a slot ride
/// along instead: a store's constant address, one constant arm of a select.
#[test]
fn constant_addresses_and_select_arms_are_carried_by_the_instruction() {
    let wat = r#"(module (memory 1)
        (func (export "put") (param i32 i64 f64)
            (i32.store offset=100 (i32.const 4) (local.get 0))
            (i64.store (i32.const 200) (local.get 1))
            (f64.store offset=8 (i32.const 200) (local.get 2))
            (i32.store8 (i32.const 300) (local.get 0)))
        (func (export "get") (param i32) (result i64)
            (i64.load (local.get 0)))
        (func (export "pick_a") (param i32 i64) (result i64)
            (select (i64.const -5) (local.get 1) (local.get 0)))
        (func (export "pick_b") (param i32 i32) (result i32)
            (select (local.get 1) (i32.const 7) (local.get 0)))
        (func (export "big") (param i32) (result i64)
            (select (i64.const 0x1_0000_0000) (i64.const 1) (local.get 0)))
        (func (export "far") (param i32)
            (i32.store offset=0xffff_fff0 (i32.const 0x20) (local.get 0))))"#;
    let put = code_of(wat, 0);
    let stores_at = put
        .iter()
        .filter(|i| matches!(i, Instr::I32StoreAt { .. } | Instr::I64StoreAt { .. } | Instr::I32Store8At { .. }));
    assert_eq!(stores_at.count(), 4, "{put:?}");
    assert!(!put.iter().any(|i| matches!(i, Instr::Const { .. })), "{put:?}");
    assert!(matches!(code_of(wat, 2)[0], Instr::SelectKA { k: -5, .. }));
    assert!(matches!(code_of(wat, 3)[0], Instr::SelectKB { k: 7, .. }));
    // Constants that do not fit an i32 (both arms constant here) stay in slots.
    assert!(code_of(wat, 4).iter().any(|i| matches!(i, Instr::Select { .. })));
    // Address + offset beyond 32 bits stays a plain store (it always traps).
    assert!(code_of(wat, 5).iter().any(|i| matches!(i, Instr::I32Store { .. })));

    let (mut store, instance) = instantiate(wat);
    let put = instance.get_typed_func::<(i32, i64, f64), ()>(&store, "put").unwrap();
    let get = instance.get_typed_func::<i32, i64>(&store, "get").unwrap();
    put.call(&mut store, (0x1234_5678, -2, 1.5)).unwrap();
    assert_eq!(get.call(&mut store, 104).unwrap() as u32, 0x1234_5678);
    assert_eq!(get.call(&mut store, 200).unwrap(), -2);
    assert_eq!(get.call(&mut store, 208).unwrap(), 1.5f64.to_bits() as i64);
    assert_eq!(get.call(&mut store, 300).unwrap() & 0xffff, 0x78);
    let pick_a = instance.get_typed_func::<(i32, i64), i64>(&store, "pick_a").unwrap();
    assert_eq!(pick_a.call(&mut store, (1, 9)).unwrap(), -5);
    assert_eq!(pick_a.call(&mut store, (0, 9)).unwrap(), 9);
    let pick_b = instance.get_typed_func::<(i32, i32), i32>(&store, "pick_b").unwrap();
    assert_eq!(pick_b.call(&mut store, (1, 9)).unwrap(), 9);
    assert_eq!(pick_b.call(&mut store, (0, 9)).unwrap(), 7);
    let big = instance.get_typed_func::<i32, i64>(&store, "big").unwrap();
    assert_eq!(big.call(&mut store, 1).unwrap(), 1 << 32);
    let far = instance.get_typed_func::<i32, ()>(&store, "far").unwrap();
    let trap = far.call(&mut store, 1).unwrap_err();
    assert_eq!(trap.as_trap().map(|t| t.kind()), Some(crate::TrapKind::MemoryOutOfBounds));
}

/// Two loads in a row become one instruction, unless a branch lands on the
/// second; branch targets after a merge are renumbered; the second load's
/// address may be the first one's result.
#[test]
fn adjacent_loads_merge_unless_a_branch_lands_between_them() {
    let wat = r#"(module (memory 1)
        (data (i32.const 0) "\08\00\00\00\00\00\00\00\2a\00\00\00\00\00\00\00")
        (func (export "sum_loop") (param i32 i32) (result i64) (local i64 i64)
            (loop $l
                (local.set 2 (i64.load (local.get 0)))
                (local.set 3 (i64.load offset=8 (local.get 0)))
                (local.set 1 (i32.sub (local.get 1) (i32.const 1)))
                (br_if $l (local.get 1)))
            (i64.add (local.get 2) (local.get 3)))
        (func (export "chase") (param i32) (result i32) (local i32)
            (local.set 1 (i32.load (local.get 0)))
            (i32.load (local.get 1)))
        (func (export "split") (param i32 i32) (result i32) (local i32 i32)
            (local.set 2 (i32.load (local.get 0)))
            (block $b (br_if $b (local.get 1)) (local.set 2 (i32.const 0)))
            (local.set 3 (i32.load offset=8 (local.get 0)))
            (i32.add (local.get 2) (local.get 3)))
        (func (export "store2") (param i32 i64 f64)
            (i64.store offset=16 (local.get 0) (local.get 1))
            (f64.store offset=24 (local.get 0) (local.get 2)))
        (func $neg (param i32) (result i32) (i32.sub (i32.const 0) (local.get 0)))
        (func (export "neg_of") (param i32 i32) (result i32)
            (i32.add (local.get 0) (call $neg (local.get 1)))))"#;
    let sum = code(wat);
    let merged = sum.iter().position(|i| matches!(i, Instr::I64Load2 { offsets: 0x8_0000, .. })).expect("merged");
    // The loop's back edge still lands on the loop's first instruction, the
    // merged load (targets count from the code's start, before the skipped
    // `ZeroLocals`: this function zeroes nothing).
    let lands = |i: &Instr| i.clone().branch_target_mut().is_some_and(|t| *t as usize == merged + 1);
    assert!(sum.iter().any(lands), "{sum:?}");
    assert!(code_of(wat, 1).iter().any(|i| matches!(i, Instr::I32Load2 { .. })));
    // The block's end is a branch target: the loads around it stay apart.
    let split = code_of(wat, 2);
    assert!(!split.iter().any(|i| matches!(i, Instr::I32Load2 { .. })), "{split:?}");

    assert!(code_of(wat, 3).iter().any(|i| matches!(i, Instr::I64Store2 { offsets: 0x18_0010, .. })));
    assert!(code_of(wat, 5).iter().any(|i| matches!(i, Instr::CallInternalCopy { def_index: 4, .. })));

    let (mut store, instance) = instantiate(wat);
    let store2 = instance.get_typed_func::<(i32, i64, f64), ()>(&store, "store2").unwrap();
    let load64 = instance.get_typed_func::<(i32, i32), i64>(&store, "sum_loop").unwrap();
    store2.call(&mut store, (100, 5, 2.0)).unwrap();
    assert_eq!(load64.call(&mut store, (116, 1)).unwrap(), 5 + 2f64.to_bits() as i64);
    // The first store happens even when the second traps.
    assert!(store2.call(&mut store, (65536 - 28, 6, 0.0)).is_err());
    assert_eq!(load64.call(&mut store, (65536 - 20, 1)).unwrap(), 6);
    let neg_of = instance.get_typed_func::<(i32, i32), i32>(&store, "neg_of").unwrap();
    assert_eq!(neg_of.call(&mut store, (10, 3)).unwrap(), 7);
    let sum = instance.get_typed_func::<(i32, i32), i64>(&store, "sum_loop").unwrap();
    assert_eq!(sum.call(&mut store, (0, 3)).unwrap(), 8 + 42);
    let trap = sum.call(&mut store, (65536 - 12, 3)).unwrap_err();
    assert_eq!(trap.as_trap().map(|t| t.kind()), Some(crate::TrapKind::MemoryOutOfBounds));
    let chase = instance.get_typed_func::<i32, i32>(&store, "chase").unwrap();
    assert_eq!(chase.call(&mut store, 0).unwrap(), 42);
    let split = instance.get_typed_func::<(i32, i32), i32>(&store, "split").unwrap();
    assert_eq!(split.call(&mut store, (0, 1)).unwrap(), 8 + 42);
    assert_eq!(split.call(&mut store, (0, 0)).unwrap(), 42);
}

/// A loop's step and a less-than exit test (either signedness, either
/// polarity once the translator inverts the exit) are one branch too.
#[test]
fn a_loop_step_and_a_less_than_test_are_one_branch() {
    let wat = r#"(module
        (func (export "up_u") (param i32 i32) (result i32) (local i32)
            (local.set 2 (local.get 0))
            (loop $l
                (local.set 2 (i32.add (local.get 2) (i32.const 3)))
                (br_if $l (i32.lt_u (local.get 2) (local.get 1))))
            (local.get 2))
        (func (export "up_s") (param i32 i32) (result i32) (local i32)
            (local.set 2 (local.get 0))
            (block $out (loop $l
                (local.set 2 (i32.add (local.get 2) (i32.const -2)))
                (br_if $out (i32.ge_s (local.get 2) (local.get 1)))
                (local.set 2 (i32.add (local.get 2) (i32.const 5)))
                (br $l)))
            (local.get 2)))"#;
    let up_u = code_of(wat, 0);
    assert!(up_u.iter().any(|i| matches!(i, Instr::BrI32AddImmLtU { .. })), "{up_u:?}");
    let up_s = code_of(wat, 1);
    assert!(up_s.iter().any(|i| matches!(i, Instr::BrI32AddImmGeS { .. } | Instr::BrI32AddImmLtS { .. })), "{up_s:?}");
    let (mut store, instance) = instantiate(wat);
    let up_u = instance.get_typed_func::<(i32, i32), i32>(&store, "up_u").unwrap();
    assert_eq!(up_u.call(&mut store, (0, 10)).unwrap(), 12);
    // Unsigned: -4 + 3 = -1 is not below 10, so one step only.
    assert_eq!(up_u.call(&mut store, (-4, 10)).unwrap(), -1);
    let up_s = instance.get_typed_func::<(i32, i32), i32>(&store, "up_s").unwrap();
    // Signed: -10 -> -12, -7 -> -9, -4 -> -6, -1 -> -3, 2 -> 0, 5 -> 3 (>= 1: out).
    assert_eq!(up_s.call(&mut store, (-10, 1)).unwrap(), 3);
    assert_eq!(up_s.call(&mut store, (100, 1)).unwrap(), 98);
}

/// The marks of the accumulator in `instr`: `(result slot, operand slot)`.
fn acc_of(instr: &Instr) -> (Option<u32>, Option<u32>) {
    let (mut dst, mut op) = (None, None);
    threaded::acc_marks(instr, |bit, slot| {
        if bit == threaded::ACC_DST {
            dst = Some(slot);
        } else {
            op = Some(slot);
        }
    });
    (dst, op)
}

/// A temp that only the next instruction reads goes from one handler to the
/// next in the accumulator (its producer and its consumer marked), as either
/// operand, through chains, into branches and stores; results as before.
#[test]
fn a_temp_only_the_next_instruction_reads_goes_through_the_accumulator() {
    let wat = r#"(module (memory 1)
        (func (export "lhs") (param i32 i32 i32) (result i32)
            (i32.sub (i32.mul (local.get 0) (local.get 1)) (local.get 2)))
        (func (export "rhs") (param i32 i32 i32) (result i32)
            (i32.sub (local.get 2) (i32.mul (local.get 0) (local.get 1))))
        (func (export "chain") (param i32 i32 i32) (result i32)
            (i32.xor (i32.sub (i32.mul (local.get 0) (local.get 1)) (local.get 2)) (local.get 0)))
        (func (export "f64") (param f64 f64) (result f64)
            (f64.div (f64.sqrt (local.get 0)) (local.get 1)))
        (func (export "branch") (param i32) (result i32)
            (i32.store (i32.const 8) (i32.add (local.get 0) (i32.const 5)))
            (if (result i32) (i32.load (i32.and (local.get 0) (i32.const 0xfff8)))
                (then (i32.const 1)) (else (i32.const 2)))))"#;
    let c = code_of(wat, 0);
    let t = acc_of(&c[0]).0.expect("the product goes to the accumulator");
    assert_eq!(acc_of(&c[1]), (None, Some(t)), "{c:?}");
    assert!(matches!(c[1], Instr::I32Sub { rhs: 2, .. }), "{c:?}");
    let c = code_of(wat, 1);
    assert!(matches!(c[1], Instr::I32Sub { lhs: 2, .. }) && acc_of(&c[1]).1.is_some(), "{c:?}");
    let c = code_of(wat, 2);
    assert!(acc_of(&c[1]).0.is_some() && acc_of(&c[1]).1.is_some(), "the middle of a chain: {c:?}");
    let c = code_of(wat, 4);
    assert!(
        c.iter().any(|i| matches!(i, Instr::BrIfEqz { .. } | Instr::BrIfNez { .. }) && acc_of(i).1.is_some()),
        "{c:?}"
    );

    let (mut store, instance) = instantiate(wat);
    let i3 = |store: &mut crate::Store<()>, name: &str, a: i32, b: i32, c: i32| {
        instance.get_typed_func::<(i32, i32, i32), i32>(&*store, name).unwrap().call(store, (a, b, c)).unwrap()
    };
    assert_eq!(i3(&mut store, "lhs", 6, 7, 2), 40);
    assert_eq!(i3(&mut store, "rhs", 6, 7, 2), -40);
    assert_eq!(i3(&mut store, "lhs", i32::MAX, 3, 0), i32::MAX.wrapping_mul(3));
    assert_eq!(i3(&mut store, "chain", 6, 7, 2), 40 ^ 6);
    let f = instance.get_typed_func::<(f64, f64), f64>(&store, "f64").unwrap();
    assert_eq!(f.call(&mut store, (16.0, 8.0)).unwrap(), 0.5);
    let branch = instance.get_typed_func::<i32, i32>(&store, "branch").unwrap();
    // Memory is zero but for the store to 8 (x + 5), read back when x & !7 is 8.
    assert_eq!(branch.call(&mut store, 3).unwrap(), 2);
    assert_eq!(branch.call(&mut store, 8).unwrap(), 1);
    assert_eq!(branch.call(&mut store, 9).unwrap(), 1);
    assert_eq!(branch.call(&mut store, 16).unwrap(), 2);
}

/// No accumulator where a branch lands between producer and consumer (a
/// branch may land on the producer: the loop's head).
#[test]
fn the_accumulator_never_crosses_a_branch_target() {
    let wat = r#"(module (memory 1)
        (func (export "joined") (param i32 i32 i32) (result i32)
            (i32.sub (block (result i32)
                (br_if 0 (i32.mul (local.get 0) (local.get 1)) (local.get 2))
                (drop) (i32.const 100)) (local.get 2)))
        (data (i32.const 0) "\05")
        (func (export "loop") (param i32) (result i32) (local i32)
            (block $d (loop $l
                (br_if $d (i32.ge_u (local.get 1) (i32.load (local.get 0))))
                (local.set 1 (i32.add (local.get 1) (i32.const 1)))
                (br $l)))
            (local.get 1)))"#;
    let c = code_of(wat, 0);
    let sub = c.iter().find(|i| matches!(i, Instr::I32Sub { .. })).expect("the subtraction");
    assert_eq!(acc_of(sub).1, None, "{c:?}");
    // The loop's head is a branch target: its load may still feed the test.
    let c = code_of(wat, 1);
    let test = c.iter().find(|i| matches!(i, Instr::BrI32GeU { .. })).expect("the loop test");
    assert!(acc_of(test).1.is_some(), "{c:?}");
    let (mut store, instance) = instantiate(wat);
    let joined = instance.get_typed_func::<(i32, i32, i32), i32>(&store, "joined").unwrap();
    assert_eq!(joined.call(&mut store, (6, 7, 1)).unwrap(), 41);
    assert_eq!(joined.call(&mut store, (6, 7, 0)).unwrap(), 100);
    let looped = instance.get_typed_func::<i32, i32>(&store, "loop").unwrap();
    // Counts up to the word at the address: 5 at 0, 0 at 4.
    assert_eq!(looped.call(&mut store, 0).unwrap(), 5);
    assert_eq!(looped.call(&mut store, 4).unwrap(), 0);
}

/// A fused consumer reads the accumulator in a half of its packed operand
/// field; results as before.
#[test]
fn a_fused_consumer_reads_the_accumulator_in_a_packed_half() {
    let wat = r#"(module
        (func (export "kdiv") (param i32 i32) (result f64)
            (f64.div (f64.const 1) (f64.convert_i32_u (i32.mul (local.get 0) (local.get 1)))))
        (func (export "rotxor") (param i32 i32 i32) (result i32)
            (i32.xor (i32.rotl (i32.mul (local.get 0) (local.get 1)) (i32.const 5)) (local.get 2))))"#;
    for index in [0, 1] {
        let c = code_of(wat, index);
        let (p, f) = (&c[0], &c[1]);
        assert!(acc_of(p).0.is_some(), "{c:?}");
        assert_ne!(threaded::packed_form(f), 0, "{c:?}");
    }
    let (mut store, instance) = instantiate(wat);
    let kdiv = instance.get_typed_func::<(i32, i32), f64>(&store, "kdiv").unwrap();
    assert_eq!(kdiv.call(&mut store, (4, 2)).unwrap(), 0.125);
    // The product wraps, then converts as unsigned.
    assert_eq!(kdiv.call(&mut store, (-1, 1)).unwrap(), 1.0 / 4294967295.0);
    let rotxor = instance.get_typed_func::<(i32, i32, i32), i32>(&store, "rotxor").unwrap();
    let want = |a: i32, b: i32, c: i32| (a.wrapping_mul(b) as u32).rotate_left(5) as i32 ^ c;
    for (a, b, c) in [(3, 5, 7), (-1, 0x1234_5678, 0x0f0f), (i32::MIN, 3, -1)] {
        assert_eq!(rotxor.call(&mut store, (a, b, c)).unwrap(), want(a, b, c));
    }
}

/// An instruction that writes its result in a packed half passes it in the
/// accumulator too: to a named operand, or to another packed half (the
/// spectral-norm chain `1 / f64(u32 x)` then multiply-add).
#[test]
fn a_packed_result_goes_through_the_accumulator() {
    let wat = r#"(module
        (func (export "named") (param i32 f64) (result f64)
            (f64.sub (f64.div (f64.const 3) (f64.convert_i32_u (local.get 0))) (local.get 1)))
        (func (export "packed") (param i32 f64 f64) (result f64)
            (f64.add (local.get 2) (f64.mul (local.get 1) (f64.div (f64.const 1) (f64.convert_i32_u (local.get 0)))))))"#;
    for index in [0, 1] {
        let c = code_of(wat, index);
        let k = c.iter().find(|i| matches!(i, Instr::F64KDivU32 { .. })).expect("k / f64(u32 x)");
        assert_eq!(threaded::packed_form(k) & threaded::ACC_DST, threaded::ACC_DST, "{c:?}");
    }
    let (mut store, instance) = instantiate(wat);
    let named = instance.get_typed_func::<(i32, f64), f64>(&store, "named").unwrap();
    assert_eq!(named.call(&mut store, (4, 0.25)).unwrap(), 0.5);
    assert_eq!(named.call(&mut store, (-1, 0.0)).unwrap(), 3.0 / 4294967295.0);
    let packed = instance.get_typed_func::<(i32, f64, f64), f64>(&store, "packed").unwrap();
    assert_eq!(packed.call(&mut store, (4, 2.0, 1.0)).unwrap(), 1.5);
    assert!(packed.call(&mut store, (0, 2.0, 1.0)).unwrap().is_infinite());
}

/// Packed halves are marked only where no slot can be `0xffff`; elsewhere
/// the producer's mark is undone too.
#[test]
fn packed_halves_are_marked_only_in_small_frames() {
    use threaded::ACC;
    let mut t = super::Translator::new(crate::engine::Config::default().strategy(crate::Strategy::Interpreter));
    let pair = [Instr::I32Mul { dst: ACC | 6, lhs: 0, rhs: 1 }, Instr::I32AddShrU { dst: 7, ab: 2 | 6 << 16, k: 1 }];
    t.code = vec![pair[0], pair[1], Instr::Return];
    t.check_acc(true);
    assert_eq!(t.code[1], Instr::I32AddShrU { dst: 7, ab: 2 | threaded::PACKED_ACC << 16, k: 1 });
    assert_eq!(t.code[0], pair[0]);
    t.code = vec![pair[0], pair[1], Instr::Return];
    t.check_acc(false);
    assert_eq!(t.code[1], pair[1]);
    assert_eq!(t.code[0], Instr::I32Mul { dst: 6, lhs: 0, rhs: 1 });
    // Read twice (both halves): no mark.
    let twice = Instr::I32AddShrU { dst: 7, ab: 6 | 6 << 16, k: 1 };
    t.code = vec![pair[0], twice, Instr::Return];
    t.check_acc(true);
    assert_eq!(t.code[1], twice);
    assert_eq!(t.code[0], Instr::I32Mul { dst: 6, lhs: 0, rhs: 1 });
}

/// `check_acc` keeps a producer and its consumer, and unmarks a slot whose
/// marks do not pair up (consumer not right after, or a branch target).
#[test]
fn unpaired_accumulator_marks_are_undone() {
    use threaded::ACC;
    let mut t = super::Translator::new(crate::engine::Config::default().strategy(crate::Strategy::Interpreter));
    let kept = [Instr::I32Mul { dst: ACC | 5, lhs: 0, rhs: 1 }, Instr::I32Sub { dst: 6, lhs: ACC | 5, rhs: 2 }];
    t.code = vec![Instr::ZeroLocals { start: 0, count: 0 }, kept[0], kept[1], Instr::Return];
    t.check_acc(true);
    assert_eq!(&t.code[1..3], &kept[..]);
    // Separated by a copy: both become slot 5 again.
    t.code = vec![kept[0], Instr::Copy { dst: 7, src: 0 }, kept[1], Instr::Return];
    t.check_acc(true);
    assert_eq!(t.code[0], Instr::I32Mul { dst: 5, lhs: 0, rhs: 1 });
    assert_eq!(t.code[2], Instr::I32Sub { dst: 6, lhs: 5, rhs: 2 });
    // A branch lands on the consumer.
    t.code = vec![kept[0], kept[1], Instr::Br { target: 1 }, Instr::Return];
    t.check_acc(true);
    assert_eq!(t.code[1], Instr::I32Sub { dst: 6, lhs: 5, rhs: 2 });
    assert_eq!(t.code[0], Instr::I32Mul { dst: 5, lhs: 0, rhs: 1 });
}

/// A loop tested at the top gets its test at the bottom too (fused with the
/// step): one dispatch fewer per round, same results, however many rounds.
#[test]
fn a_loop_tested_at_the_top_is_also_tested_at_the_bottom() {
    let wat = r#"(module
        (func (export "sum") (param i32) (result i32) (local i32 i32)
            (block $d (loop $l
                (br_if $d (i32.ge_u (local.get 1) (local.get 0)))
                (local.set 2 (i32.add (local.get 2) (local.get 1)))
                (local.set 1 (i32.add (local.get 1) (i32.const 1)))
                (br $l)))
            (local.get 2))
        (func (export "table") (param i32) (result i32) (local i32)
            (block $d (loop $l
                (br_if $d (i32.ge_u (local.get 1) (local.get 0)))
                (local.set 1 (i32.add (local.get 1) (i32.const 1)))
                (block $a (block $b
                    (br_table $a $b $l (i32.rem_u (local.get 1) (i32.const 3))))
                  (local.set 1 (i32.add (local.get 1) (i32.const 10))))
                (br $l)))
            (local.get 1)))"#;
    let sum = code(wat);
    assert!(!sum.iter().any(|i| matches!(i, Instr::Br { .. })), "{sum:?}");
    assert!(sum.iter().any(|i| matches!(i, Instr::BrI32AddImmLtU { .. })), "{sum:?}");
    let (mut store, instance) = instantiate(wat);
    let sum = instance.get_typed_func::<i32, i32>(&store, "sum").unwrap();
    for n in [0, 1, 2, 10] {
        assert_eq!(sum.call(&mut store, n).unwrap(), (0..n).sum::<i32>(), "n = {n}");
    }
    let table = instance.get_typed_func::<i32, i32>(&store, "table").unwrap();
    // The same loop in Rust: x % 3 == 0 leaves the inner blocks, 1 adds 10, 2 loops.
    for n in [0, 5, 40] {
        let mut x = 0i32;
        while x < n {
            x += 1;
            if x % 3 == 1 {
                x += 10;
            }
        }
        assert_eq!(table.call(&mut store, n).unwrap(), x, "n = {n}");
    }
}

#[test]
fn a_loop_step_and_its_exit_test_are_one_branch() {
    let wat = r#"(module
        (func (export "count") (param i32 i32) (result i32) (local i32)
            (loop $l
                (local.set 2 (i32.add (local.get 2) (i32.const 1)))
                (br_if $l (i32.ne (local.get 0) (local.get 2))))
            (local.get 2))
        (func (export "down") (param i32) (result i32) (local i32)
            (local.set 1 (i32.const 100))
            (loop $l
                (local.set 1 (i32.add (local.get 1) (i32.const -3)))
                (br_if $l (i32.ne (local.get 1) (local.get 0))))
            (local.get 1)))"#;
    let c = code(wat);
    // Local 2 is read before it is written: the function starts by zeroing it.
    assert!(matches!(c[0], Instr::ZeroLocals { start: 2, count: 1 }), "{c:?}");
    assert!(matches!(c[1], Instr::BrI32AddImmNe { ds: 0x2_0002, ki: 0x1_0000, target: 1 }), "{c:?}");
    let down = code_of(wat, 1);
    assert!(down.iter().any(|i| matches!(i, Instr::BrI32AddImmNe { ki, .. } if *ki == 0xfffd_0000)), "{down:?}");
    let (mut store, instance) = instantiate(wat);
    let count = instance.get_typed_func::<(i32, i32), i32>(&store, "count").unwrap();
    assert_eq!(count.call(&mut store, (1000, 0)).unwrap(), 1000);
    // Wraps at 32 bits like i32.add: counting to 0 goes all the way round.
    let down = instance.get_typed_func::<i32, i32>(&store, "down").unwrap();
    assert_eq!(down.call(&mut store, 1).unwrap(), 1);
    assert_eq!(down.call(&mut store, 97).unwrap(), 97);
}

#[test]
fn f64_arithmetic_with_a_constant_carries_it() {
    let c = code(
        r#"(module (func (param f64) (result f64) (local f64)
            (local.set 1 (f64.div (f64.const 1) (local.get 0)))
            (f64.mul (local.get 1) (f64.const 0.5))))"#,
    );
    // 1/x retargeted into local 1, then local 1 * 0.5 straight into the result
    // slot: no Const instruction.
    assert!(matches!(c[0], Instr::F64KDiv { ds: 0x0_0001, k } if k == 1f64.to_bits()), "{c:?}");
    assert!(matches!(c[1], Instr::F64MulK { ds: 0x1_0000, .. }), "{c:?}");
    let wat = r#"(module
        (func (export "add") (param f64) (result f64) (f64.add (f64.const 0.25) (local.get 0)))
        (func (export "sub") (param f64) (result f64) (f64.sub (local.get 0) (f64.const 0.25)))
        (func (export "ksub") (param f64) (result f64) (f64.sub (f64.const 0.25) (local.get 0)))
        (func (export "mul") (param f64) (result f64) (f64.mul (local.get 0) (f64.const -3)))
        (func (export "div") (param f64) (result f64) (f64.div (local.get 0) (f64.const 4)))
        (func (export "kdiv") (param f64) (result f64) (f64.div (f64.const 1) (local.get 0))))"#;
    let (mut store, instance) = instantiate(wat);
    let mut call =
        |name: &str, x: f64| instance.get_typed_func::<f64, f64>(&store, name).unwrap().call(&mut store, x).unwrap();
    assert_eq!(call("add", 1.0), 1.25);
    assert_eq!(call("sub", 1.0), 0.75);
    assert_eq!(call("ksub", 1.0), -0.75);
    assert_eq!(call("mul", 2.0), -6.0);
    assert_eq!(call("div", 2.0), 0.5);
    assert_eq!(call("kdiv", 4.0), 0.25);
    assert_eq!(call("kdiv", -0.0), f64::NEG_INFINITY);
    assert_eq!(call("ksub", 0.25).to_bits(), 0.0f64.to_bits());
}

#[test]
fn loop_steps_tested_against_zero_or_a_constant_are_one_branch() {
    let wat = r#"(module
        (func (export "down") (param $n i32) (result i32) (local $s i32)
            (loop $l
                (local.set $s (i32.add (local.get $s) (local.get $n)))
                (br_if $l (local.tee $n (i32.add (local.get $n) (i32.const -1)))))
            (local.get $s))
        (func (export "up") (param $i i32) (result i32) (local $s i32)
            (loop $l
                (local.set $s (i32.add (local.get $s) (local.get $i)))
                (local.set $i (i32.add (local.get $i) (i32.const 4)))
                (br_if $l (i32.ne (local.get $i) (i32.const 256))))
            (local.get $s))
        (func (export "until") (param $i i32) (result i32)
            (block $b (loop $l
                (local.set $i (i32.add (local.get $i) (i32.const 3)))
                (br_if $b (i32.eq (local.get $i) (i32.const 30)))
                (br_if $b (i32.eqz (local.get $i)))
                (br $l)))
            (local.get $i)))"#;
    let down = code_of(wat, 0);
    assert!(down.iter().any(|i| matches!(i, Instr::BrI32AddImmNez { x: 0, imm: -1, .. })), "{down:?}");
    let up = code_of(wat, 1);
    assert!(up.iter().any(|i| matches!(i, Instr::BrI32AddImmNeImm { xk: 0x4_0000, n: 256, .. })), "{up:?}");
    let until = code_of(wat, 2);
    assert!(until.iter().any(|i| matches!(i, Instr::BrI32AddImmEqImm { xk: 0x3_0000, n: 30, .. })), "{until:?}");
    let (mut store, instance) = instantiate(wat);
    let call = |store: &mut crate::Store<()>, name: &str, x: i32| {
        instance.get_typed_func::<i32, i32>(&*store, name).unwrap().call(store, x).unwrap()
    };
    assert_eq!(call(&mut store, "down", 10), 55);
    assert_eq!(call(&mut store, "up", 0), (0..64).map(|i| i * 4).sum::<i32>());
    assert_eq!(call(&mut store, "until", 0), 30);
    // Wraps around 2^32 to stop at 0: -9 -> -6 -> -3 -> 0.
    assert_eq!(call(&mut store, "until", -9), 0);
}

#[test]
fn a_byte_fill_loop_stores_and_advances_in_one_instruction() {
    // A sieve's inner loop: `*p = 7; p += step; j += step` while j < end.
    let wat = r#"(module (memory 1) (func (export "fill") (param $p i32) (param $end i32) (param $step i32) (local $j i32)
        (local.set $j (local.get $p))
        (loop $l
            (i32.store8 (local.get $p) (i32.const 7))
            (local.set $p (i32.add (local.get $step) (local.get $p)))
            (local.set $j (i32.add (local.get $j) (local.get $step)))
            (br_if $l (i32.lt_u (local.get $j) (local.get $end)))))
        (func (export "get") (param i32) (result i32) (i32.load8_u (local.get 0))))"#;
    let c = code(wat);
    assert!(c.contains(&Instr::I32Store8ImmStep { at_step: 0x2_0000, value: 7, offset: 0 }), "{c:?}");
    let (mut store, instance) = instantiate(wat);
    let fill = instance.get_typed_func::<(i32, i32, i32), ()>(&store, "fill").unwrap();
    let get = instance.get_typed_func::<i32, i32>(&store, "get").unwrap();
    fill.call(&mut store, (10, 40, 3)).unwrap();
    let bytes: Vec<i32> = (9..42).map(|a| get.call(&mut store, a).unwrap()).collect();
    let expected: Vec<i32> = (9..42).map(|a| if (10..40).contains(&a) && (a - 10) % 3 == 0 { 7 } else { 0 }).collect();
    assert_eq!(bytes, expected);
    // A store out of bounds traps before the pointer moves: nothing else written.
    let err = fill.call(&mut store, (65535, 65540, 1)).unwrap_err();
    assert_eq!(err.as_trap().map(|t| t.kind()), Some(crate::TrapKind::MemoryOutOfBounds));
    assert_eq!(get.call(&mut store, 65535).unwrap(), 7);
}

#[test]
fn consecutive_add_immediates_merge_and_keep_their_order() {
    let wat = r#"(module (func (export "f") (param i32 i32) (result i32)
        (local.set 0 (i32.add (local.get 0) (i32.const 8)))
        (local.set 1 (i32.add (local.get 0) (i32.const -3)))
        (i32.add (local.get 1) (i32.const 70000))))"#;
    let c = code(wat);
    // The second reads what the first wrote; the third's immediate does not fit i16.
    assert!(matches!(c[0], Instr::I32AddImm2 { first: 0, second: 1, .. }), "{c:?}");
    assert!(matches!(c[1], Instr::I32AddImm { imm: 70000, .. }), "{c:?}");
    let (mut store, instance) = instantiate(wat);
    let f = instance.get_typed_func::<(i32, i32), i32>(&store, "f").unwrap();
    assert_eq!(f.call(&mut store, (1, 100)).unwrap(), 1 + 8 - 3 + 70000);
}

#[test]
fn a_load_takes_the_add_that_computes_its_address() {
    let wat = r#"(module (memory 1) (data (i32.const 8) "\01\02\03\04\05\06\07\08\09")
        (func (export "f") (param i32 i32) (result i64)
            (i64.add
              (i64.load offset=1 (i32.add (local.get 0) (local.get 1)))
              (i64.extend_i32_u (i32.load8_u (i32.add (local.get 1) (i32.const 0)))))))"#;
    let c = code(wat);
    assert!(matches!(c[0], Instr::I64LoadIdx { bi: 0x1_0000, offset: 1, .. }), "{c:?}");
    let (mut store, instance) = instantiate(wat);
    let f = instance.get_typed_func::<(i32, i32), i64>(&store, "f").unwrap();
    assert_eq!(f.call(&mut store, (4, 3)).unwrap(), 0x0807060504030201);
    // The sum wraps at 32 bits before the offset is added, as i32.add does.
    assert_eq!(f.call(&mut store, (-1, 8)).unwrap(), 0x0807060504030201 + 1);
    assert!(f.call(&mut store, (65530, 0)).is_err(), "out of bounds traps");
}

#[test]
fn consecutive_copies_merge_and_keep_their_order() {
    // A swap through a third local: three copies, the first two merged; run in
    // order, so the swap is right.
    let wat = r#"(module (func (export "f") (param i32 i32) (result i32) (local i32)
        (local.set 2 (local.get 0))
        (local.set 0 (local.get 1))
        (local.set 1 (local.get 2))
        (i32.sub (local.get 0) (local.get 1))))"#;
    let c = code(wat);
    assert!(matches!(c[0], Instr::CopyPair { .. }), "{c:?}");
    let (mut store, instance) = instantiate(wat);
    let f = instance.get_typed_func::<(i32, i32), i32>(&store, "f").unwrap();
    assert_eq!(f.call(&mut store, (10, 3)).unwrap(), 3 - 10);
}

#[test]
fn a_loop_exit_before_the_back_edge_becomes_the_back_edge() {
    // Sums 1..=n with the exit test at the bottom, followed by more code; the
    // second loop ends in an `if` with an empty body (its branch must stay).
    let wat = r#"(module (func (export "f") (param i32) (result i32) (local i32 i32)
        (block $out
          (loop $l
            (local.set 1 (i32.add (local.get 1) (i32.const 1)))
            (local.set 2 (i32.add (local.get 2) (local.get 1)))
            (br_if $out (i32.ge_u (local.get 1) (local.get 0)))
            (br $l)))
        (block $done
          (loop $m
            (local.set 1 (i32.sub (local.get 1) (i32.const 1)))
            (br_if $done (i32.eqz (local.get 1)))
            (if (i32.const 0) (then))
            (br $m)))
        (i32.add (i32.mul (local.get 2) (i32.const 2)) (local.get 1))))"#;
    let c = code(wat);
    let back = c.iter().position(|i| matches!(i, Instr::BrI32LtU { target: 1, .. })).expect("inverted exit");
    assert!(matches!(c[back + 1], Instr::Br { target } if target as usize == back + 2), "{c:?}");
    let (mut store, instance) = instantiate(wat);
    let f = instance.get_typed_func::<i32, i32>(&store, "f").unwrap();
    assert_eq!(f.call(&mut store, 10).unwrap(), 2 * 55);
    assert_eq!(f.call(&mut store, 0).unwrap(), 2);
}

#[test]
fn overwritten_local_is_copied_before_the_write() {
    let c = code(
        r#"(module (func (param i32) (result i32)
            (local.get 0)
            (local.set 0 (i32.const 7))
            (local.get 0)
            (i32.add)))"#,
    );
    // The pending read of local 0 is materialized before local 0 changes.
    let copy = c.iter().position(|i| matches!(i, Instr::Copy { dst: 1, src: 0 })).expect("copy");
    let set =
        c.iter().position(|i| matches!(i, Instr::Copy { dst: 0, .. } | Instr::Const { dst: 0, .. })).expect("set");
    assert!(copy < set, "{c:?}");
}

#[test]
fn an_access_to_another_memory_is_bracketed_and_memory_0_code_is_unchanged() {
    // The same function on memory 0 and on memory 1: memory 1's code is memory
    // 0's (fusions included) inside one `UseMemory` bracket, which consecutive
    // accesses to the same memory share.
    let body = |m: u32| {
        format!(
            "(func (param i32 i32)
                (i32.store {m} (local.get 1) (i32.load {m} (local.get 0)))
                (i32.store {m} offset=4 (local.get 1) (i32.const 7))
                (i32.store8 {m} (local.get 0) (memory.size {m})))"
        )
    };
    let wat = format!(r#"(module (memory 1) (memory 1) {} {})"#, body(0), body(1));
    let on0 = code_of(&wat, 0);
    let on1 = code_of(&wat, 1);
    assert!(on0.iter().all(|i| !matches!(i, Instr::UseMemory { .. })), "{on0:?}");
    let (body0, ret) = on0.split_at(on0.len() - 1);
    let expected: Vec<Instr> = [Instr::UseMemory { mem: 1 }]
        .into_iter()
        .chain(body0.iter().copied())
        .chain([Instr::UseMemory { mem: 0 }, ret[0]])
        .collect();
    assert_eq!(on1, expected, "memory 0: {on0:?}");
    // Accesses to different memories each have their own bracket; one to
    // memory 0 in between needs none.
    let wat = r#"(module (memory 1) (memory 1) (memory 1)
        (func (param i32) (result i32)
            (i32.add (i32.add (i32.load 1 (local.get 0)) (i32.load 2 (local.get 0)))
                (i32.add (i32.load 0 (local.get 0)) (i32.load 1 (local.get 0))))))"#;
    let c = code(wat);
    let switches: Vec<u32> =
        c.iter().filter_map(|i| if let Instr::UseMemory { mem } = i { Some(*mem) } else { None }).collect();
    assert_eq!(switches, [1, 0, 2, 0, 1, 0], "{c:?}");
    // Across two memories, `memory.copy` names both; `memory.grow` its own.
    let wat = r#"(module (memory 1) (memory 1)
        (func (param i32) (result i32)
            (memory.copy 0 1 (local.get 0) (local.get 0) (local.get 0))
            (memory.grow 1 (local.get 0))))"#;
    let c = code(wat);
    assert!(c.iter().any(|i| matches!(i, Instr::MemoryCopyAcross { dst_mem: 0, src_mem: 1, .. })), "{c:?}");
    assert!(c.iter().any(|i| matches!(i, Instr::MemoryGrow { mem: 1, .. })), "{c:?}");
    assert!(c.iter().all(|i| !matches!(i, Instr::UseMemory { .. })), "{c:?}");
}

#[test]
fn an_atomic_operator_is_one_atomic_instruction_naming_its_memory() {
    use crate::interp::atomic::{pack, AtomicOp};
    let code = code(
        r#"(module (memory 1 1 shared) (memory $m 1 1)
            (func (param i32 i32) (result i32)
                (drop (i64.atomic.rmw16.cmpxchg_u $m offset=6 (local.get 0) (i64.const 1) (i64.const 2)))
                (atomic.fence)
                (i32.atomic.rmw.add offset=8 (local.get 0) (local.get 1))))"#,
    );
    let atomics: Vec<(u32, u32)> = code
        .iter()
        .filter_map(|i| if let Instr::Atomic { head, offset, .. } = i { Some((*head, *offset)) } else { None })
        .collect();
    let expected = [
        (pack(AtomicOp::Cmpxchg, 2, 1).unwrap(), 6),
        (pack(AtomicOp::Fence, 1, 0).unwrap(), 0),
        (pack(AtomicOp::Add, 4, 0).unwrap(), 8),
    ];
    assert_eq!(atomics, expected, "{code:?}");
    assert!(!code.iter().any(|i| matches!(i, Instr::UseMemory { .. })), "no bracket: {code:?}");
}
