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
