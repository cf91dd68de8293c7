//! The threads proposal through the public API: shared memories defined by a
//! module or the host and used from several stores on several OS threads,
//! linking rules, every atomic operator, wait/notify, and stress tests with
//! bounded counts (each well under 10 s in a debug build).

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use carnac::{Config, Engine, Error, Extern, Linker, MemoryType, Module, SharedMemory, Store, TrapKind, WASM_PAGE};

fn engine() -> Engine {
    Engine::default()
}

/// The trap kind of a call's error.
fn trap_kind(e: Error) -> TrapKind {
    e.as_trap().unwrap_or_else(|| panic!("not a trap: {e}")).kind()
}

#[test]
fn a_module_defined_shared_memory_is_exported_as_shared_and_imported_by_other_stores() {
    let engine = engine();
    let definer = Module::new(
        &engine,
        r#"(module
            (memory (export "memory") 1 4 shared)
            (data (i32.const 16) "\2a")
            (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
            (func (export "size") (result i32) (memory.size)))"#,
    )
    .unwrap();
    let user = Module::new(
        &engine,
        r#"(module
            (import "env" "memory" (memory 1 4 shared))
            (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
            (func (export "store") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
            (func (export "size") (result i32) (memory.size)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine).instantiate(&mut store, &definer).unwrap();
    assert!(instance.get_memory(&store, "memory").is_none(), "a shared memory has no store-bound handle");
    let memory = instance.get_shared_memory(&store, "memory").unwrap();
    assert!(matches!(instance.get_export(&store, "memory"), Some(Extern::SharedMemory(_))));
    assert_eq!(memory.ty(), MemoryType::shared(1, 4));
    assert!(definer.exports().any(|e| e.ty == carnac::ExternType::Memory(MemoryType::shared(1, 4))));
    assert!(user.imports().any(|i| i.ty == carnac::ExternType::Memory(MemoryType::shared(1, 4))));

    let mut linker = Linker::new(&engine);
    linker.define("env", "memory", memory.clone()).unwrap();
    // Each thread has its own store and instance, all on the one memory.
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let (engine, linker, user, barrier) = (engine.clone(), linker.clone(), user.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut store = Store::new(&engine, ());
                let instance = linker.instantiate(&mut store, &user).unwrap();
                let load = instance.get_typed_func::<i32, i32>(&store, "load").unwrap();
                let write = instance.get_typed_func::<(i32, i32), ()>(&store, "store").unwrap();
                assert_eq!(load.call(&mut store, 16).unwrap(), 42, "the definer's data segment");
                write.call(&mut store, (100 + t as i32, t as i32 + 1)).unwrap();
                barrier.wait();
                // Every thread sees every other thread's store once past the barrier.
                (0..4).map(|i| load.call(&mut store, 100 + i).unwrap()).collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), [1, 2, 3, 4]);
    }
    let mut bytes = [0; 4];
    memory.read(100, &mut bytes).unwrap();
    assert_eq!(bytes, [1, 2, 3, 4]);

    // Growth by the defining instance is seen by every importer and the host.
    let grow = instance.get_typed_func::<i32, i32>(&store, "grow").unwrap();
    let mut other = Store::new(&engine, ());
    let importer = linker.instantiate(&mut other, &user).unwrap();
    let size = importer.get_typed_func::<(), i32>(&other, "size").unwrap();
    assert_eq!(size.call(&mut other, ()).unwrap(), 1);
    assert_eq!(grow.call(&mut store, 2).unwrap(), 1);
    assert_eq!(size.call(&mut other, ()).unwrap(), 3);
    assert_eq!(memory.size(), 3);
    assert_eq!(grow.call(&mut store, 2).unwrap(), -1, "past its maximum");
    assert_eq!(memory.grow(1).unwrap(), 3);
    let own_size = instance.get_typed_func::<(), i32>(&store, "size").unwrap();
    assert_eq!(own_size.call(&mut store, ()).unwrap(), 4);
    let store_ = importer.get_typed_func::<(i32, i32), ()>(&other, "store").unwrap();
    store_.call(&mut other, (3 * WASM_PAGE as i32 + 5, 9)).unwrap();
    memory.read(3 * WASM_PAGE + 5, &mut bytes[..1]).unwrap();
    assert_eq!(bytes[0], 9);
    // The memory outlives the store that defined it while others hold it.
    drop(store);
    assert_eq!(size.call(&mut other, ()).unwrap(), 4);
}

#[test]
fn import_matching_requires_the_same_sharedness() {
    let engine = engine();
    let shared = SharedMemory::new(&engine, MemoryType::shared(1, 2)).unwrap();
    let mut store = Store::new(&engine, ());
    let plain = carnac::Memory::new(&mut store, MemoryType::new(1, Some(2))).unwrap();
    let wants_shared = Module::new(&engine, r#"(module (import "env" "memory" (memory 1 2 shared)))"#).unwrap();
    let wants_plain = Module::new(&engine, r#"(module (import "env" "memory" (memory 1 2)))"#).unwrap();
    let link = |m: &Module, e: Extern, store: &mut Store<()>| {
        let mut linker = Linker::new(&engine);
        linker.define("env", "memory", e).unwrap();
        linker.instantiate(store, m).map(|_| ())
    };
    link(&wants_shared, shared.clone().into(), &mut store).unwrap();
    link(&wants_plain, plain.into(), &mut store).unwrap();
    let err = link(&wants_shared, plain.into(), &mut store).unwrap_err().to_string();
    assert!(err.contains("expected a shared memory"), "{err}");
    let err = link(&wants_plain, shared.clone().into(), &mut store).unwrap_err().to_string();
    assert!(err.contains("found a shared memory"), "{err}");
    // Limits match as for any memory: the maximum must fit.
    let wants_small = Module::new(&engine, r#"(module (import "env" "memory" (memory 1 1 shared)))"#).unwrap();
    assert!(link(&wants_small, shared.into(), &mut store).is_err());
    // Another engine's shared memory is refused.
    let other = SharedMemory::new(&Engine::default(), MemoryType::shared(1, 2)).unwrap();
    let err = link(&wants_shared, other.into(), &mut store).unwrap_err().to_string();
    assert!(err.contains("different engine"), "{err}");
}

#[test]
fn shared_memory_api_and_its_refusals() {
    let engine = engine();
    assert!(SharedMemory::new(&engine, MemoryType::new(1, Some(1))).is_err());
    let mut store = Store::new(&engine, ());
    assert!(carnac::Memory::new(&mut store, MemoryType::shared(1, 1)).is_err());
    let mut config = Config::new();
    config.wasm_threads(false);
    let no_threads = Engine::new(&config);
    assert!(SharedMemory::new(&no_threads, MemoryType::shared(1, 1)).is_err());
    assert!(Module::new(&no_threads, r#"(module (memory 1 1 shared))"#).is_err());
    assert!(Module::new(&engine, r#"(module (memory 1 shared))"#).is_err(), "a shared memory needs a maximum");

    let memory = SharedMemory::new(&engine, MemoryType::shared(2, 3)).unwrap();
    assert_eq!((memory.size(), memory.data_size(), memory.data().len()), (2, 2 * WASM_PAGE, 2 * WASM_PAGE));
    memory.write(10, b"abc").unwrap();
    let mut buf = [0; 3];
    memory.read(10, &mut buf).unwrap();
    assert_eq!(&buf, b"abc");
    assert!(memory.read(2 * WASM_PAGE - 1, &mut buf).is_err());
    assert!(memory.write(usize::MAX, b"x").is_err());
    assert_eq!(memory.grow(1).unwrap(), 2);
    assert!(memory.grow(1).is_err());
    assert_eq!(memory.ty(), MemoryType::shared(3, 3));
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<SharedMemory>();
}

#[test]
fn a_store_counts_the_shared_memory_growth_it_asks_for() {
    let engine = engine();
    let module = Module::new(
        &engine,
        r#"(module (memory (export "memory") 1 8 shared)
            (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, carnac::StoreLimits::default().memory_size(3 * WASM_PAGE));
    store.limiter(|l| l);
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let grow = instance.get_typed_func::<i32, i32>(&store, "grow").unwrap();
    assert_eq!(grow.call(&mut store, 2).unwrap(), 1);
    assert_eq!(grow.call(&mut store, 1).unwrap(), -1, "over the store's limit");
    // The host's own growth asks no store.
    let memory = instance.get_shared_memory(&store, "memory").unwrap();
    assert_eq!(memory.grow(1).unwrap(), 3);
}

#[test]
fn a_host_wait_times_out_and_a_notify_wakes_it() {
    let memory = SharedMemory::new(&engine(), MemoryType::shared(1, 1)).unwrap();
    let start = Instant::now();
    assert_eq!(memory.atomic_wait32(0, 0, Some(Duration::from_millis(10))).unwrap(), carnac::WaitResult::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(10));
    assert_eq!(memory.atomic_wait32(0, 1, None).unwrap(), carnac::WaitResult::Mismatch);
    let waiter = {
        let memory = memory.clone();
        std::thread::spawn(move || memory.atomic_wait64(8, 0, Some(Duration::from_secs(5))).unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while memory.atomic_notify(8, 1).unwrap() == 0 {
        assert!(Instant::now() < deadline, "the waiter never parked");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(waiter.join().unwrap(), carnac::WaitResult::Ok);
    assert_eq!(trap_kind(memory.atomic_notify(3, 1).unwrap_err().into()), TrapKind::UnalignedAtomic);
}

// ---- the interpreter's atomic operators ----

fn interp_engine() -> Engine {
    let mut config = Config::new();
    config.strategy(carnac::Strategy::Interpreter);
    Engine::new(&config)
}

#[derive(Clone, Copy, Debug)]
enum Rmw {
    Add,
    Sub,
    And,
    Or,
    Xor,
    Xchg,
}

/// Every atomic load, store, read-modify-write and compare-exchange of both
/// value types at every width, as exported functions named after the operator.
fn all_ops_module(shared: bool) -> String {
    let mut funcs = String::new();
    for (ty, widths) in [("i32", &["", "8", "16"][..]), ("i64", &["", "8", "16", "32"][..])] {
        for w in widths {
            let u = if w.is_empty() { "" } else { "_u" };
            let load = format!("{ty}.atomic.load{w}{u}");
            let store = format!("{ty}.atomic.store{w}");
            funcs += &format!(
                r#"(func (export "{load}") (param i32) (result {ty}) ({load} offset=4 (local.get 0)))
                   (func (export "{store}") (param i32 {ty}) ({store} offset=4 (local.get 0) (local.get 1)))
                "#
            );
            for op in ["add", "sub", "and", "or", "xor", "xchg"] {
                let name = format!("{ty}.atomic.rmw{w}.{op}{u}");
                funcs += &format!(
                    r#"(func (export "{name}") (param i32 {ty}) (result {ty}) ({name} offset=4 (local.get 0) (local.get 1)))
                    "#
                );
            }
            let name = format!("{ty}.atomic.rmw{w}.cmpxchg{u}");
            funcs += &format!(
                r#"(func (export "{name}") (param i32 {ty} {ty}) (result {ty})
                     ({name} offset=4 (local.get 0) (local.get 1) (local.get 2)))
                "#
            );
        }
    }
    let shared = if shared { "shared" } else { "" };
    format!(
        r#"(module (memory (export "memory") 1 1 {shared})
            (func (export "poke") (param i32 i64) (i64.store (local.get 0) (local.get 1)))
            (func (export "peek") (param i32) (result i64) (i64.load (local.get 0)))
            (func (export "notify") (param i32 i32) (result i32) (memory.atomic.notify (local.get 0) (local.get 1)))
            (func (export "wait32") (param i32 i32 i64) (result i32)
                (memory.atomic.wait32 (local.get 0) (local.get 1) (local.get 2)))
            (func (export "wait64") (param i32 i64 i64) (result i32)
                (memory.atomic.wait64 (local.get 0) (local.get 1) (local.get 2)))
            (func (export "fence") (atomic.fence))
            {funcs})"#
    )
}

fn call(store: &mut Store<()>, instance: &carnac::Instance, name: &str, params: &[carnac::Val]) -> Result<u64, Error> {
    let f = instance.get_func(&*store, name).unwrap_or_else(|| panic!("no export {name}"));
    let n = f.ty(&*store).results().len();
    let mut results = vec![carnac::Val::I32(0); n];
    f.call(&mut *store, params, &mut results)?;
    Ok(match results.first() {
        Some(carnac::Val::I32(v)) => *v as u32 as u64,
        Some(carnac::Val::I64(v)) => *v as u64,
        None => 0,
        Some(other) => panic!("unexpected result {other:?}"),
    })
}

fn val(ty: &str, v: u64) -> carnac::Val {
    if ty == "i32" {
        carnac::Val::I32(v as u32 as i32)
    } else {
        carnac::Val::I64(v as i64)
    }
}

fn check_every_atomic_op(engine: &Engine, shared: bool) {
    use carnac::Val;
    let module = Module::new(engine, all_ops_module(shared)).unwrap();
    let mut store = Store::new(engine, ());
    let instance = Linker::new(engine).instantiate(&mut store, &module).unwrap();
    const INIT: u64 = 0x8877_6655_4433_2211;
    // Operands with bits above every narrower width, to check the truncation.
    const V: u64 = 0xF0F0_F0F0_F0F0_F0F1;
    let at = 8u64; // the cell: address 4, offset 4
    for (ty, sizes) in [("i32", &[4u32, 1, 2][..]), ("i64", &[8u32, 1, 2, 4][..])] {
        for &n in sizes {
            let full = if ty == "i32" { 4 } else { 8 };
            let w = if n == full { String::new() } else { (n * 8).to_string() };
            let u = if n == full { "" } else { "_u" };
            let mask = if n == 8 { u64::MAX } else { (1u64 << (n * 8)) - 1 };
            let old = INIT & mask;
            let type_mask = if full == 8 { u64::MAX } else { u32::MAX as u64 };
            let poke = |store: &mut Store<()>| {
                call(store, &instance, "poke", &[Val::I32(at as i32), Val::I64(INIT as i64)]).unwrap();
            };
            let peek = |store: &mut Store<()>| call(store, &instance, "peek", &[Val::I32(at as i32)]).unwrap();
            let with = |new: u64| (INIT & !mask) | (new & mask);

            poke(&mut store);
            let load = format!("{ty}.atomic.load{w}{u}");
            assert_eq!(call(&mut store, &instance, &load, &[Val::I32(4)]).unwrap(), old, "{load}");
            let st = format!("{ty}.atomic.store{w}");
            call(&mut store, &instance, &st, &[Val::I32(4), val(ty, V)]).unwrap();
            assert_eq!(peek(&mut store), with(V), "{st}");

            for op in [Rmw::Add, Rmw::Sub, Rmw::And, Rmw::Or, Rmw::Xor, Rmw::Xchg] {
                poke(&mut store);
                let name = format!("{ty}.atomic.rmw{w}.{}{u}", format!("{op:?}").to_lowercase());
                let r = call(&mut store, &instance, &name, &[Val::I32(4), val(ty, V)]).unwrap();
                assert_eq!(r, old, "{name} returns the old value, zero-extended");
                let v = V & type_mask;
                let new = match op {
                    Rmw::Add => old.wrapping_add(v),
                    Rmw::Sub => old.wrapping_sub(v),
                    Rmw::And => old & v,
                    Rmw::Or => old | v,
                    Rmw::Xor => old ^ v,
                    Rmw::Xchg => v,
                };
                assert_eq!(peek(&mut store), with(new), "{name}");
            }

            let name = format!("{ty}.atomic.rmw{w}.cmpxchg{u}");
            // The expected value is wrapped to the access size: bits above it do not count.
            let expected = (old | (0xAB << (n * 8 % 64))) & type_mask;
            let expected = if n == full { old } else { expected };
            poke(&mut store);
            let r = call(&mut store, &instance, &name, &[Val::I32(4), val(ty, expected), val(ty, V)]).unwrap();
            assert_eq!((r, peek(&mut store)), (old, with(V)), "{name} replaces a match");
            poke(&mut store);
            let r = call(&mut store, &instance, &name, &[Val::I32(4), val(ty, old ^ 1), val(ty, V)]).unwrap();
            assert_eq!((r, peek(&mut store)), (old, INIT), "{name} leaves a mismatch");

            // Misaligned (narrow accesses of one byte are always aligned) and out of bounds.
            if n > 1 {
                let e = call(&mut store, &instance, &load, &[Val::I32(5)]).unwrap_err();
                assert_eq!(trap_kind(e), TrapKind::UnalignedAtomic, "{load}");
                let e = call(&mut store, &instance, &name, &[Val::I32(5), val(ty, 0), val(ty, 0)]).unwrap_err();
                assert_eq!(trap_kind(e), TrapKind::UnalignedAtomic, "{name}");
            }
            let past = WASM_PAGE as i32 - 4 - n as i32 + 1; // the last byte one past the end
            let e = call(&mut store, &instance, &st, &[Val::I32(past), val(ty, 0)]).unwrap_err();
            assert_eq!(trap_kind(e), TrapKind::MemoryOutOfBounds, "{st}");
            let e = call(&mut store, &instance, &load, &[Val::I32(-4)]).unwrap_err();
            assert_eq!(trap_kind(e), TrapKind::MemoryOutOfBounds, "{load}: the offset is added in 64 bits");
            // Bounds are checked before alignment.
            let e = call(&mut store, &instance, &load, &[Val::I32(WASM_PAGE as i32 - 3)]).unwrap_err();
            assert_eq!(trap_kind(e), TrapKind::MemoryOutOfBounds, "{load}");
        }
    }
    call(&mut store, &instance, "fence", &[]).unwrap();
    assert_eq!(call(&mut store, &instance, "notify", &[Val::I32(0), Val::I32(5)]).unwrap(), 0);
    let e = call(&mut store, &instance, "notify", &[Val::I32(2), Val::I32(1)]).unwrap_err();
    assert_eq!(trap_kind(e), TrapKind::UnalignedAtomic);
    let e = call(&mut store, &instance, "notify", &[Val::I32(WASM_PAGE as i32), Val::I32(1)]).unwrap_err();
    assert_eq!(trap_kind(e), TrapKind::MemoryOutOfBounds);
    let wait = call(&mut store, &instance, "wait32", &[Val::I32(0), Val::I32(0), Val::I64(0)]);
    let wait64 = call(&mut store, &instance, "wait64", &[Val::I32(0), Val::I64(0), Val::I64(0)]);
    if shared {
        assert_eq!(wait.unwrap(), 2, "a timeout of 0 with the expected value times out at once");
        assert_eq!(wait64.unwrap(), 2);
    } else {
        assert_eq!(trap_kind(wait.unwrap_err()), TrapKind::ExpectedSharedMemory);
        assert_eq!(trap_kind(wait64.unwrap_err()), TrapKind::ExpectedSharedMemory);
    }
}

#[test]
fn every_atomic_operator_at_every_width_on_a_shared_memory() {
    check_every_atomic_op(&interp_engine(), true);
}

#[test]
fn every_atomic_operator_at_every_width_on_an_unshared_memory() {
    check_every_atomic_op(&interp_engine(), false);
    // Written-chunk tracking sees atomic stores (a debug build checks it when the memory is reset).
    let mut config = Config::new();
    config.strategy(carnac::Strategy::Interpreter).track_memory_writes(true);
    check_every_atomic_op(&Engine::new(&config), false);
}

#[test]
fn atomics_on_a_second_memory() {
    let engine = interp_engine();
    let module = Module::new(
        &engine,
        r#"(module (memory 1 1) (memory $m (export "m") 1 1 shared)
            (func (export "add") (param i32 i32) (result i32) (i32.atomic.rmw.add $m (local.get 0) (local.get 1)))
            (func (export "wait") (param i32) (result i32) (memory.atomic.wait32 $m (local.get 0) (i32.const 0) (i64.const 1000)))
            (func (export "load0") (param i32) (result i32) (i32.load (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let add = instance.get_typed_func::<(i32, i32), i32>(&store, "add").unwrap();
    assert_eq!(add.call(&mut store, (12, 5)).unwrap(), 0);
    assert_eq!(add.call(&mut store, (12, 5)).unwrap(), 5);
    let wait = instance.get_typed_func::<i32, i32>(&store, "wait").unwrap();
    assert_eq!(wait.call(&mut store, 12).unwrap(), 1);
    assert_eq!(wait.call(&mut store, 16).unwrap(), 2);
    let load0 = instance.get_typed_func::<i32, i32>(&store, "load0").unwrap();
    assert_eq!(load0.call(&mut store, 12).unwrap(), 0, "memory 0 is untouched");
    let mut word = [0; 4];
    instance.get_shared_memory(&store, "m").unwrap().read(12, &mut word).unwrap();
    assert_eq!(u32::from_le_bytes(word), 10);
}

/// A module importing a shared memory, with the guest code the tests below run.
const WORKER: &str = r#"(module
    (import "env" "memory" (memory 1 4 shared))
    (func (export "incr") (param $addr i32) (param $n i32)
        (loop $l
            (drop (i32.atomic.rmw.add (local.get $addr) (i32.const 1)))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
    (func (export "wait32") (param i32 i32 i64) (result i32)
        (memory.atomic.wait32 (local.get 0) (local.get 1) (local.get 2)))
    (func (export "notify") (param i32 i32) (result i32) (memory.atomic.notify (local.get 0) (local.get 1)))
    (func (export "add") (param i32 i32) (result i32) (i32.atomic.rmw.add (local.get 0) (local.get 1)))
    (func (export "load") (param i32) (result i32) (i32.atomic.load (local.get 0)))
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
    ;; Waits for the flag at 0 to become 1, then stores 7 at `addr` (plain) and returns memory.size.
    (func (export "store_when_flagged") (param $addr i32) (result i32)
        (loop $spin (br_if $spin (i32.ne (i32.atomic.load (i32.const 0)) (i32.const 1))))
        (i32.store (local.get $addr) (i32.const 7))
        (memory.size))
    ;; Two threads take turns on the cell at 0 (whose turn: 0 or 1), `rounds` times each.
    (func (export "pingpong") (param $me i32) (param $rounds i32)
        (local $v i32)
        (loop $round
            (block $mine
                (loop $wait
                    (local.set $v (i32.atomic.load (i32.const 0)))
                    (br_if $mine (i32.eq (local.get $v) (local.get $me)))
                    (drop (memory.atomic.wait32 (i32.const 0) (local.get $v) (i64.const -1)))
                    (br $wait)))
            (i32.atomic.store (i32.const 0) (i32.sub (i32.const 1) (local.get $me)))
            (drop (memory.atomic.notify (i32.const 0) (i32.const 1)))
            (br_if $round (local.tee $rounds (i32.sub (local.get $rounds) (i32.const 1))))))
    ;; A lock at 64 (cmpxchg, then wait while held) protecting a plain counter at 128.
    (func (export "locked_incr") (param $n i32)
        (loop $l
            (block $locked
                (loop $try
                    (br_if $locked (i32.eqz (i32.atomic.rmw.cmpxchg (i32.const 64) (i32.const 0) (i32.const 1))))
                    (drop (memory.atomic.wait32 (i32.const 64) (i32.const 1) (i64.const -1)))
                    (br $try)))
            (i32.store (i32.const 128) (i32.add (i32.load (i32.const 128)) (i32.const 1)))
            (i32.atomic.store (i32.const 64) (i32.const 0))
            (drop (memory.atomic.notify (i32.const 64) (i32.const 1)))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))"#;

/// Runs `f` on `threads` OS threads, each with its own store and instance of
/// [`WORKER`] on `memory`, and returns their results in order.
fn on_threads<R: Send + 'static>(
    engine: &Engine,
    memory: &SharedMemory,
    threads: usize,
    f: impl Fn(usize, &mut Store<()>, carnac::Instance) -> R + Send + Sync + 'static,
) -> Vec<R> {
    let module = Module::new(engine, WORKER).unwrap();
    let mut linker = Linker::new(engine);
    linker.define("env", "memory", memory.clone()).unwrap();
    let pre = linker.instantiate_pre(&module).unwrap();
    let f = Arc::new(f);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (engine, pre, f) = (engine.clone(), pre.clone(), f.clone());
            std::thread::spawn(move || {
                let mut store = Store::new(&engine, ());
                let instance = pre.instantiate(&mut store).unwrap();
                f(i, &mut store, instance)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn read_u32(memory: &SharedMemory, at: usize) -> u32 {
    let mut word = [0; 4];
    memory.read(at, &mut word).unwrap();
    u32::from_le_bytes(word)
}

#[test]
fn eight_threads_of_atomic_increments_lose_none() {
    let engine = interp_engine();
    let memory = SharedMemory::new(&engine, MemoryType::shared(1, 4)).unwrap();
    on_threads(&engine, &memory, 8, |_, store, instance| {
        let incr = instance.get_typed_func::<(i32, i32), ()>(&*store, "incr").unwrap();
        incr.call(&mut *store, (256, 10_000)).unwrap();
    });
    assert_eq!(read_u32(&memory, 256), 80_000);
}

#[test]
fn wait_returns_2_on_timeout_and_1_on_a_wrong_value() {
    let engine = interp_engine();
    let memory = SharedMemory::new(&engine, MemoryType::shared(1, 4)).unwrap();
    memory.write(32, &5u32.to_le_bytes()).unwrap();
    let results = on_threads(&engine, &memory, 1, |_, store, instance| {
        let wait = instance.get_typed_func::<(i32, i32, i64), i32>(&*store, "wait32").unwrap();
        let start = Instant::now();
        let timed_out = wait.call(&mut *store, (32, 5, 20_000_000)).unwrap();
        let waited = start.elapsed();
        let mismatch = wait.call(&mut *store, (32, 4, -1)).unwrap();
        (timed_out, waited, mismatch)
    });
    let (timed_out, waited, mismatch) = results[0];
    assert_eq!((timed_out, mismatch), (2, 1));
    assert!(waited >= Duration::from_millis(20), "waited {waited:?}");
}

#[test]
fn notify_wakes_exactly_count_waiters() {
    let engine = interp_engine();
    let memory = SharedMemory::new(&engine, MemoryType::shared(1, 4)).unwrap();
    let waiters = {
        let memory = memory.clone();
        let engine = engine.clone();
        std::thread::spawn(move || {
            on_threads(&engine, &memory, 3, |_, store, instance| {
                let wait = instance.get_typed_func::<(i32, i32, i64), i32>(&*store, "wait32").unwrap();
                let add = instance.get_typed_func::<(i32, i32), i32>(&*store, "add").unwrap();
                let r = wait.call(&mut *store, (16, 0, 10_000_000_000)).unwrap();
                add.call(&mut *store, (20, 1)).unwrap(); // one more woke
                r
            })
        })
    };
    // A guest notify wakes at most `count` of the three; retry until two were
    // parked and woken (a thread may not have parked yet).
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker.define("env", "memory", memory.clone()).unwrap();
    let instance = linker.instantiate(&mut store, &Module::new(&engine, WORKER).unwrap()).unwrap();
    let notify = instance.get_typed_func::<(i32, i32), i32>(&store, "notify").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut woken = 0;
    while woken < 2 {
        let n = notify.call(&mut store, (16, 2 - woken)).unwrap();
        assert!(n <= 2 - woken, "notify woke {n}, more than asked");
        woken += n;
        assert!(Instant::now() < deadline, "the waiters never parked");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Exactly two went on; the third still waits.
    while read_u32(&memory, 20) < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(read_u32(&memory, 20), 2, "only `count` waiters woke");
    while notify.call(&mut store, (16, 1)).unwrap() == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(waiters.join().unwrap(), [0, 0, 0], "each was woken by a notify");
    assert_eq!(notify.call(&mut store, (16, 10)).unwrap(), 0, "nobody is left waiting");
}

#[test]
fn an_interrupted_store_ends_its_wait() {
    let mut config = Config::new();
    config.strategy(carnac::Strategy::Interpreter).interruptible(true);
    let engine = Engine::new(&config);
    let memory = SharedMemory::new(&engine, MemoryType::shared(1, 4)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let (engine, memory) = (engine.clone(), memory.clone());
        std::thread::spawn(move || {
            on_threads(&engine, &memory, 1, move |_, store, instance| {
                tx.send(store.interrupt_handle().unwrap()).unwrap();
                let wait = instance.get_typed_func::<(i32, i32, i64), i32>(&*store, "wait32").unwrap();
                let start = Instant::now();
                let e = wait.call(&mut *store, (0, 0, -1)).unwrap_err();
                (trap_kind(e), start.elapsed())
            })
        })
    };
    let handle = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    handle.interrupt();
    let (kind, waited) = waiter.join().unwrap()[0];
    assert_eq!(kind, TrapKind::Interrupted);
    assert!(waited < Duration::from_secs(5), "the wait ended soon after the interrupt ({waited:?})");
}

#[test]
fn an_epoch_deadline_ends_a_wait() {
    let mut config = Config::new();
    config.strategy(carnac::Strategy::Interpreter).epoch_interruption(true);
    let engine = Engine::new(&config);
    let memory = SharedMemory::new(&engine, MemoryType::shared(1, 4)).unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let (engine, done) = (engine.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
                engine.increment_epoch();
            }
        })
    };
    let r = on_threads(&engine, &memory, 1, |_, store, instance| {
        store.set_epoch_deadline(3);
        let wait = instance.get_typed_func::<(i32, i32, i64), i32>(&*store, "wait32").unwrap();
        trap_kind(wait.call(&mut *store, (0, 0, -1)).unwrap_err())
    });
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    ticker.join().unwrap();
    assert_eq!(r, [TrapKind::Interrupted]);
}

#[test]
fn growth_on_one_thread_is_seen_by_a_running_guest_on_another() {
    let engine = interp_engine();
    let memory = SharedMemory::new(&engine, MemoryType::shared(1, 4)).unwrap();
    let results = on_threads(&engine, &memory, 2, |i, store, instance| {
        if i == 0 {
            // Already running (with the one-page length it started with) when the memory grows.
            let f = instance.get_typed_func::<i32, i32>(&*store, "store_when_flagged").unwrap();
            f.call(&mut *store, WASM_PAGE as i32 + 8).unwrap()
        } else {
            std::thread::sleep(Duration::from_millis(20));
            let grow = instance.get_typed_func::<i32, i32>(&*store, "grow").unwrap();
            let old = grow.call(&mut *store, 1).unwrap();
            let add = instance.get_typed_func::<(i32, i32), i32>(&*store, "add").unwrap();
            add.call(&mut *store, (0, 1)).unwrap();
            old
        }
    });
    assert_eq!(results, [2, 1]);
    assert_eq!(read_u32(&memory, WASM_PAGE + 8), 7);
}

#[test]
fn a_wait_notify_ping_pong_of_a_thousand_rounds() {
    let engine = interp_engine();
    let memory = SharedMemory::new(&engine, MemoryType::shared(1, 4)).unwrap();
    on_threads(&engine, &memory, 2, |i, store, instance| {
        let f = instance.get_typed_func::<(i32, i32), ()>(&*store, "pingpong").unwrap();
        f.call(&mut *store, (i as i32, 1_000)).unwrap();
    });
    // 2,000 turns: the turn is back with thread 0.
    assert_eq!(read_u32(&memory, 0), 0);
}

#[test]
fn a_lock_of_cmpxchg_and_wait_protects_a_plain_counter() {
    let engine = interp_engine();
    let memory = SharedMemory::new(&engine, MemoryType::shared(1, 4)).unwrap();
    on_threads(&engine, &memory, 4, |_, store, instance| {
        let f = instance.get_typed_func::<i32, ()>(&*store, "locked_incr").unwrap();
        f.call(&mut *store, 2_000).unwrap();
    });
    assert_eq!(read_u32(&memory, 128), 8_000);
    assert_eq!(read_u32(&memory, 64), 0, "the lock is free");
}

/// What the "Thread safety" section of the crate docs promises, checked at compile time.
#[test]
fn the_documented_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Engine>();
    send_sync::<Module>();
    send_sync::<Linker<()>>();
    send_sync::<carnac::InstancePre<()>>();
    send_sync::<SharedMemory>();
    send_sync::<carnac::Func>();
    send_sync::<carnac::TypedFunc<(), ()>>();
    send_sync::<carnac::Instance>();
    send_sync::<carnac::Memory>();
    send_sync::<Extern>();
    send_sync::<carnac::Trap>();
    send_sync::<carnac::InterruptHandle>();
    // A store moves between threads but is used by one at a time (`&mut`).
    send::<Store<()>>();
}

#[test]
fn atomics_stay_correct_under_automatic_tiering() {
    // Whatever the compiled tier makes of atomics (compiled, or left to the
    // interpreter when it cannot take them), a hot loop of them stays exact.
    let mut config = Config::new();
    config.strategy(carnac::Strategy::Auto).tier_up_threshold(10).tier_up_synchronously(true);
    let engine = Engine::new(&config);
    let memory = SharedMemory::new(&engine, MemoryType::shared(1, 4)).unwrap();
    on_threads(&engine, &memory, 2, |_, store, instance| {
        let incr = instance.get_typed_func::<(i32, i32), ()>(&*store, "incr").unwrap();
        for _ in 0..50 {
            incr.call(&mut *store, (512, 200)).unwrap();
        }
    });
    assert_eq!(read_u32(&memory, 512), 20_000);
}

#[test]
fn an_instance_with_a_shared_memory_cannot_be_snapshotted() {
    let engine = interp_engine();
    let module = Module::new(&engine, r#"(module (memory 1 1 shared))"#).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let err = instance.snapshot(&store).unwrap_err().to_string();
    assert!(err.contains("shared memory"), "{err}");
}
