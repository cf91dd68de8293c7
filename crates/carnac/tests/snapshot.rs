//! Snapshots and copy-on-write memory images: an instance's state captured
//! after warm-up and started again (in other stores, isolated from each other),
//! written out as a module, refused where it cannot be captured; and modules
//! whose data segments are mapped as images, reset correctly between instances.

use carnac::*;

const WARM: &str = r#"(module
  (memory (export "memory") 1 100)
  (global $counter (export "counter") (mut i32) (i32.const 0))
  (global $f (mut f64) (f64.const 1.5))
  (global $v (mut v128) (v128.const i64x2 0 0))
  (global $starts (export "starts") (mut i32) (i32.const 0))
  (global $fref (mut funcref) (ref.null func))
  (table 2 funcref)
  (elem (i32.const 0) $get)
  (data (i32.const 100) "original")
  (data $pass "passive!")
  (func $start (global.set $starts (i32.add (global.get $starts) (i32.const 1))))
  (start $start)
  (func (export "init")
    (drop (memory.grow (i32.const 3)))
    (memory.fill (i32.const 70000) (i32.const 0xAB) (i32.const 150000))
    (i32.store (i32.const 262140) (i32.const 0x12345678))
    (global.set $counter (i32.const 42))
    (global.set $f (f64.const 2.25))
    (global.set $v (v128.const i64x2 7 -9))
    (global.set $fref (ref.func $get))
    (data.drop $pass))
  (func $get (export "get") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "get32") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "set") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
  (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "f") (result f64) (global.get $f))
  (func (export "v_hi") (result i64) (i64x2.extract_lane 1 (global.get $v)))
  (func (export "bump") (global.set $counter (i32.add (global.get $counter) (i32.const 1))))
  (func (export "call_fref") (param i32) (result i32)
    (table.set (i32.const 1) (global.get $fref))
    (call_indirect (param i32) (result i32) (local.get 0) (i32.const 1)))
  (func (export "copy_pass") (param i32)
    (memory.init $pass (local.get 0) (i32.const 0) (i32.const 8))))"#;

fn engines() -> Vec<Engine> {
    let mut out = vec![Engine::default()];
    for strategy in [Strategy::Interpreter, Strategy::Cranelift] {
        if strategy.is_available() {
            out.push(Engine::new(Config::new().strategy(strategy)));
        }
    }
    out
}

fn call<P: WasmParams, R: WasmResults>(store: &mut Store<()>, inst: &Instance, name: &str, p: P) -> R {
    inst.get_typed_func::<P, R>(&*store, name).unwrap().call(&mut *store, p).unwrap()
}

fn global_i32(store: &mut Store<()>, inst: &Instance, name: &str) -> i32 {
    match inst.get_global(&*store, name).unwrap().get(&mut *store) {
        Val::I32(v) => v,
        other => panic!("{name} is {other:?}"),
    }
}

/// Checks that `inst` is in the state `init` of `WARM` leaves.
fn assert_warm(store: &mut Store<()>, inst: &Instance) {
    let mem = inst.get_memory(&*store, "memory").unwrap();
    assert_eq!(mem.size(&*store), 4, "the memory grown by init");
    assert_eq!(&mem.data(&*store)[100..108], b"original");
    assert_eq!(call::<i32, i32>(store, inst, "get", 70000), 0xAB);
    assert_eq!(call::<i32, i32>(store, inst, "get", 219_999), 0xAB);
    assert_eq!(call::<i32, i32>(store, inst, "get", 220_000), 0);
    assert_eq!(call::<i32, i32>(store, inst, "get32", 262_140), 0x12345678);
    assert_eq!(global_i32(store, inst, "counter"), 42);
    assert_eq!(global_i32(store, inst, "starts"), 1, "the start function ran once, before the snapshot");
    assert_eq!(call::<(), f64>(store, inst, "f", ()), 2.25);
    assert_eq!(call::<(), i64>(store, inst, "v_hi", ()), -9);
    assert_eq!(call::<i32, i32>(store, inst, "call_fref", 100), b'o' as i32, "a function reference in a global");
    let dropped = inst.get_typed_func::<i32, ()>(&*store, "copy_pass").unwrap().call(&mut *store, 0);
    assert!(dropped.is_err(), "the passive segment dropped by init stays dropped");
}

fn warmed(engine: &Engine) -> Snapshot {
    let module = Module::new(engine, WARM).unwrap();
    let mut store = Store::new(engine, ());
    let inst = Linker::new(engine).instantiate(&mut store, &module).unwrap();
    call::<(), ()>(&mut store, &inst, "init", ());
    inst.snapshot(&store).unwrap()
}

#[test]
fn a_snapshot_starts_new_instances_in_the_captured_state() {
    for engine in engines() {
        let snap = warmed(&engine);
        for _ in 0..3 {
            let mut store = Store::new(&engine, ());
            let inst = Linker::new(&engine).instantiate(&mut store, snap.module()).unwrap();
            assert_warm(&mut store, &inst);
        }
    }
}

#[test]
fn a_snapshot_written_as_a_module_round_trips() {
    for engine in engines() {
        let snap = warmed(&engine);
        let wasm = snap.to_wasm(&["init"]).unwrap();
        let module = Module::new(&engine, &wasm).unwrap();
        assert!(module.get_export("init").is_none(), "the init export is removed");
        assert!(module.get_export("get").is_some());
        let mut store = Store::new(&engine, ());
        let inst = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        // The written module snapshots again, to a module in the same state.
        let again = inst.snapshot(&store).unwrap().to_wasm(&[]).unwrap();
        assert_warm(&mut store, &inst);
        let module = Module::new(&engine, &again).unwrap();
        let mut store = Store::new(&engine, ());
        let inst = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        assert_warm(&mut store, &inst);
        assert!(snap.module().serialize().is_err(), "a snapshot's module is not an artifact");
    }
}

#[test]
fn instances_of_a_snapshot_are_isolated() {
    for engine in engines() {
        let snap = warmed(&engine);
        let linker = Linker::new(&engine);
        let mut a = Store::new(&engine, ());
        let ia = linker.instantiate(&mut a, snap.module()).unwrap();
        let mut b = Store::new(&engine, ());
        let ib = linker.instantiate(&mut b, snap.module()).unwrap();
        call::<(i32, i32), ()>(&mut a, &ia, "set", (70000, 1));
        call::<(), ()>(&mut a, &ia, "bump", ());
        assert_eq!(call::<i32, i32>(&mut a, &ia, "get", 70000), 1);
        assert_eq!(call::<i32, i32>(&mut b, &ib, "get", 70000), 0xAB, "one instance's write is not another's");
        assert_eq!(global_i32(&mut b, &ib, "counter"), 42);
        drop((a, b));
        // Writes of every size, each followed by a fresh instance that must see
        // none of them: a few chunks (restored from the image), and more than the
        // pool keeps resident (its private pages dropped).
        for (round, (at, len)) in [(0, 10), (70000, 5000), (0, 262_144), (100, 8), (0, 1 << 20)].into_iter().enumerate()
        {
            let mut s = Store::new(&engine, ());
            let inst = linker.instantiate(&mut s, snap.module()).unwrap();
            assert_warm(&mut s, &inst);
            if at + len > 262_144 {
                assert_eq!(call::<i32, i32>(&mut s, &inst, "grow", 16), 4);
            }
            call::<(i32, i32, i32), ()>(&mut s, &inst, "fill", (at, 0x5A, len));
            let mem = inst.get_memory(&s, "memory").unwrap();
            if round == 3 {
                // A host write through the untracked whole-memory slice.
                mem.data_mut(&mut s)[150_000] = 9;
            } else {
                mem.write(&mut s, 200_000, &[7; 100]).unwrap();
            }
        }
        let mut s = Store::new(&engine, ());
        let inst = linker.instantiate(&mut s, snap.module()).unwrap();
        assert_warm(&mut s, &inst);
    }
}

#[test]
fn what_cannot_be_captured_is_refused() {
    let engine = Engine::default();
    let linker = Linker::new(&engine);

    // An imported memory belongs to someone else.
    let mut store = Store::new(&engine, ());
    let memory = Memory::new(&mut store, MemoryType::new(1, None)).unwrap();
    let module = Module::new(&engine, r#"(module (import "env" "mem" (memory 1)) (func (export "init")))"#).unwrap();
    let inst = Instance::new(&mut store, &module, &[memory.into()]).unwrap();
    let err = inst.snapshot(&store).unwrap_err().to_string();
    assert!(err.contains("imported"), "{err}");

    // A table changed by init: the snapshot's instances have it, but no module
    // can say it with element segments, so writing one is refused.
    let module = Module::new(
        &engine,
        r#"(module (table (export "t") 2 funcref) (elem declare func $f)
            (func $f (result i32) (i32.const 5))
            (func (export "init") (table.set (i32.const 1) (ref.func $f)))
            (func (export "call") (result i32) (call_indirect (result i32) (i32.const 1))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let inst = linker.instantiate(&mut store, &module).unwrap();
    inst.get_typed_func::<(), ()>(&store, "init").unwrap().call(&mut store, ()).unwrap();
    let snap = inst.snapshot(&store).unwrap();
    let err = snap.to_wasm(&["init"]).unwrap_err().to_string();
    assert!(err.contains("table 0 changed"), "{err}");
    let mut fresh = Store::new(&engine, ());
    let warm = linker.instantiate(&mut fresh, snap.module()).unwrap();
    assert_eq!(warm.get_typed_func::<(), i32>(&fresh, "call").unwrap().call(&mut fresh, ()).unwrap(), 5);

    // A host reference in a global.
    let module = Module::new(&engine, r#"(module (global (export "g") (mut externref) (ref.null extern)))"#).unwrap();
    let mut store = Store::new(&engine, ());
    let inst = linker.instantiate(&mut store, &module).unwrap();
    let host = ExternRef::new(&mut store, 5u32).unwrap();
    inst.get_global(&store, "g").unwrap().set(&mut store, Val::ExternRef(Some(host))).unwrap();
    let err = inst.snapshot(&store).unwrap_err().to_string();
    assert!(err.contains("host reference"), "{err}");
}

/// A module with 192 KiB of data segments: laid out as a copy-on-write image.
const BIG_DATA: &str = r#"(module
  (memory (export "memory") 8)
  (data (i32.const 10) "head")
  (data (i32.const 65536) "%BIG%")
  (data (i32.const 300000) "tail")
  (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "sum") (param i32 i32) (result i32) (local $s i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get 0) (local.get 1)))
      (local.set $s (i32.add (local.get $s) (i32.load8_u (local.get 0))))
      (local.set 0 (i32.add (local.get 0) (i32.const 1)))
      (br $l)))
    (local.get $s)))"#;

#[test]
fn data_segments_mapped_as_images_come_back_intact_in_every_instance() {
    let big: String = (0..196_608u32).map(|i| format!("\\{:02x}", (i % 251) as u8 + 1)).collect();
    let wat = BIG_DATA.replace("%BIG%", &big);
    let expected: u32 = (0..196_608u32).map(|i| (i % 251) + 1).sum();
    for engine in engines() {
        let module = Module::new(&engine, &wat).unwrap();
        let linker = Linker::new(&engine);
        for round in 0..6 {
            let mut s = Store::new(&engine, ());
            let inst = linker.instantiate(&mut s, &module).unwrap();
            let mem = inst.get_memory(&s, "memory").unwrap();
            let data = mem.data(&s);
            assert_eq!(&data[10..14], b"head", "round {round}");
            assert_eq!(&data[300_000..300_004], b"tail", "round {round}");
            assert_eq!(data[65535], 0);
            assert_eq!(data[65536 + 196_608], 0);
            let sum = inst.get_typed_func::<(i32, i32), i32>(&s, "sum").unwrap();
            assert_eq!(sum.call(&mut s, (65536, 65536 + 196_608)).unwrap() as u32, expected, "round {round}");
            let fill = inst.get_typed_func::<(i32, i32, i32), ()>(&s, "fill").unwrap();
            match round {
                0 => fill.call(&mut s, (65536 + 4000, 0, 100)).unwrap(),
                1 => fill.call(&mut s, (0, 0xEE, 8 * 65536)).unwrap(),
                2 => mem.data_mut(&mut s)[70_000] = 0,
                3 => mem.write(&mut s, 65530, &[1; 64]).unwrap(),
                _ => fill.call(&mut s, (299_990, 3, 20)).unwrap(),
            }
        }
    }
}

/// A snapshot written as a module and compiled to an artifact: its memory image
/// is mapped straight from the artifact file (its data segments lie
/// page-aligned there), and comes back intact in every instance.
#[test]
fn a_snapshot_compiled_ahead_maps_its_memory_from_the_artifact() {
    if !Strategy::Cranelift.is_available() {
        return;
    }
    let engine = Engine::new(Config::new().strategy(Strategy::Cranelift));
    let wasm = warmed(&engine).to_wasm(&["init"]).unwrap();
    let artifact = Module::new(&engine, &wasm).unwrap().serialize().unwrap();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("snap-{}.cwasm", std::process::id()));
    std::fs::write(&path, &artifact).unwrap();
    let module = Module::deserialize_file(&engine, &path).unwrap();
    let linker = Linker::new(&engine);
    for round in 0..4 {
        let mut s = Store::new(&engine, ());
        let inst = linker.instantiate(&mut s, &module).unwrap();
        assert_warm(&mut s, &inst);
        let len = [100, 5000, 1 << 20, 64][round];
        if len > 262_144 {
            assert_eq!(call::<i32, i32>(&mut s, &inst, "grow", 16), 4);
        }
        call::<(i32, i32, i32), ()>(&mut s, &inst, "fill", (0, 0x77, len));
    }
    std::fs::remove_file(&path).ok();
}
