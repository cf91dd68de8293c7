//! Host memory a module or guest could size: what the engine allocates must
//! stay far below what a hostile module asks for. One test in a binary of its
//! own, so the process's peak RSS (`VmHWM`) measures only these steps.

use carnac::*;

/// The process's peak resident set size, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() << 10
}

#[test]
fn hostile_modules_do_not_size_host_allocations() {
    let engine = Engine::default();
    let base = peak_rss();
    let grown = || (peak_rss() - base) >> 20;

    // Twenty tables of ten million null elements (1.6 GB), with no limiter:
    // address space, committed only where written.
    let tables: String = (0..20).map(|_| "(table 10000000 funcref)").collect();
    let module = Module::new(&engine, format!("(module {tables})")).unwrap();
    let mut store = Store::new(&engine, ());
    Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    drop(store);
    assert!(grown() < 64, "20 big tables: peak RSS grew by {} MiB", grown());

    // A runaway recursion through a function with a 16 KiB name: 100,000
    // frames, each naming it. The names are shared, not copied per frame (that
    // was 1.6 GB; a 1 MiB name took the process down).
    let name = "n".repeat(16 << 10);
    let wat = format!(r#"(module $m (func ${name} (export "f") (call ${name})))"#);
    // Every frame kept (the default keeps 256 and counts the rest).
    let mut config = Config::new();
    config.wasm_backtrace_max_frames(usize::MAX);
    let full = Engine::new(&config);
    let module = Module::new(&full, wat).unwrap();
    let mut store = Store::new(&full, ());
    let instance = Linker::new(&full).instantiate(&mut store, &module).unwrap();
    let err = instance.get_func(&store, "f").unwrap().call(&mut store, &[], &mut []).unwrap_err();
    let trap = err.as_trap().unwrap();
    assert!(trap.backtrace().len() > 10_000);
    assert!(trap.backtrace().iter().all(|f| f.func_name.as_deref() == Some(name.as_str())));
    assert!(grown() < 64, "a deep backtrace of long names: peak RSS grew by {} MiB", grown());

    // Memory::grow with a delta no memory can take fails, whatever the limiter.
    let module = Module::new(&engine, r#"(module (memory (export "m") 1))"#).unwrap();
    let mut store = Store::new(&engine, ());
    store.set_limiter(StoreLimits::new().memory_size(1 << 20));
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let memory = instance.get_memory(&store, "m").unwrap();
    assert!(memory.grow(&mut store, u64::MAX).is_err());
    assert!(memory.grow(&mut store, 1 << 40).is_err());
    assert_eq!(memory.grow(&mut store, 1).unwrap(), 1);
    println!("peak RSS grew by {} MiB", grown());
}
