// Wasmtime beside Carnac: instantiate + drop from an `InstancePre` with the pooling
// allocator and copy-on-write memory images (Wasmtime's fastest configuration), as
// `cargo run --release -p carnac-wasi --example instantiate` measures Carnac.
//
//     cargo run --release --manifest-path benches/wasmtime-instantiate/Cargo.toml -- MODULE [N]

use std::time::Instant;
use wasmtime::*;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = &args[1];
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10000);
    let mut config = Config::new();
    let mut pool = PoolingAllocationConfig::default();
    pool.total_memories(100).total_tables(100).total_core_instances(100).max_memory_size(64 << 20);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config.memory_init_cow(true);
    let engine = Engine::new(&config)?;
    let module = Module::from_file(&engine, path)?;
    let mut linker: Linker<()> = Linker::new(&engine);
    linker.define_unknown_imports_as_traps(&module)?;
    let pre = linker.instantiate_pre(&module)?;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..n {
            let mut store = Store::new(&engine, ());
            let _i = pre.instantiate(&mut store)?;
        }
        best = best.min(t.elapsed().as_secs_f64() / n as f64);
    }
    println!("wasmtime (pooling, CoW) {path}: {:.2} us per instantiate", best * 1e6);
    Ok(())
}
