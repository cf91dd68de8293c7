//! Measures loading a compiled artifact and instantiating it, against
//! compiling the same module and against only decoding and validating it.
//!
//! ```sh
//! python3 benches/gen_big_module.py /tmp/big.wat && wasm-tools parse /tmp/big.wat -o /tmp/big.wasm
//! cargo run --release -p carnac --example load_artifact -- /tmp/big.wasm [ITERATIONS]
//! ```
//!
//! Prints the median of each: the artifact's load (`Module::deserialize` into
//! an engine that has already loaded one, and into a fresh engine, which also
//! detects the host's CPU features once), one instantiation, and for
//! comparison decoding plus validating every body (what loading would cost if
//! it re-validated the wasm: the interpreter's `Module::new`, which translates
//! lazily) and compiling with Cranelift.

use std::time::{Duration, Instant};

use carnac::{Config, Engine, Instance, Module, Store, Strategy};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<R>(n: usize, mut f: impl FnMut() -> R) -> Duration {
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: load_artifact MODULE.wasm [ITERATIONS]");
    let n: usize = args.next().map_or(50, |s| s.parse().expect("a number of iterations"));
    let wasm = std::fs::read(&path).expect("read the module");
    let mut config = Config::new();
    config.strategy(Strategy::Cranelift);
    let engine = Engine::new(&config);

    let t = Instant::now();
    let module = Module::new(&engine, &wasm).expect("compile");
    let compile = t.elapsed();
    let artifact = module.serialize().expect("serialize");
    let file = std::env::temp_dir().join(format!("load_artifact-{}.cwasm", std::process::id()));
    std::fs::write(&file, &artifact).expect("write the artifact");

    let load = time(n, || Module::deserialize(&engine, &artifact).expect("deserialize"));
    let load_file = time(n, || Module::deserialize_file(&engine, &file).expect("deserialize"));
    let fresh = time(n.min(20), || Module::deserialize(&Engine::new(&config), &artifact).expect("deserialize"));
    let loaded = Module::deserialize(&engine, &artifact).expect("deserialize");
    let instantiate = time(n, || {
        let mut store = Store::new(&engine, ());
        Instance::new(&mut store, &loaded, &[]).expect("instantiate");
    });
    let load_and_instantiate = time(n, || {
        let module = Module::deserialize_file(&engine, &file).expect("deserialize");
        let mut store = Store::new(&engine, ());
        Instance::new(&mut store, &module, &[]).expect("instantiate");
    });
    let interp = Engine::default();
    let validate = time(n, || Module::new(&interp, &wasm).expect("validate"));
    let _ = std::fs::remove_file(&file);

    println!("module: {} bytes of wasm, artifact {} bytes", wasm.len(), artifact.len());
    println!("compile (Cranelift, once):           {compile:>10.2?}");
    println!("deserialize from memory:             {load:>10.2?}");
    println!("deserialize_file:                    {load_file:>10.2?}");
    println!("deserialize into a fresh engine:     {fresh:>10.2?}");
    println!("instantiate:                         {instantiate:>10.2?}");
    println!("deserialize_file + instantiate:      {load_and_instantiate:>10.2?}");
    println!("decode + validate all bodies:        {validate:>10.2?}");
}
