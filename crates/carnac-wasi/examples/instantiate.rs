//! Measures per-request instantiation: a fresh store, WASI context and instance
//! from an `InstancePre`, optionally running `_start` (stdout discarded).
//!
//!     cargo run --release -p carnac-wasi --example instantiate -- MODULE [N] [--run]
use std::time::Instant;

use carnac::{Engine, Linker, Module, Store};
use carnac_wasi::{Stream, WasiCtx};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: instantiate MODULE [N] [--run]");
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let run = args.iter().any(|a| a == "--run");
    let engine = Engine::default();
    let module = Module::from_file(&engine, path).unwrap();
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    carnac_wasi::add_to_linker(&mut linker, |c| c).unwrap();
    let pre = linker.instantiate_pre(&module).unwrap();
    let mut best = f64::MAX;
    for _round in 0..5 {
        let t = Instant::now();
        for _ in 0..n {
            let ctx = WasiCtx::builder().stdout(Stream::Null).stderr(Stream::Null).build();
            let mut store = Store::new(&engine, ctx);
            let instance = pre.instantiate(&mut store).unwrap();
            if run {
                let start = instance.get_typed_func::<(), ()>(&store, "_start").unwrap();
                let _ = start.call(&mut store, ());
            }
        }
        best = best.min(t.elapsed().as_secs_f64() / n as f64);
    }
    println!("{path}: {:.2} us per {}", best * 1e6, if run { "instantiate + _start" } else { "instantiate" });
}
