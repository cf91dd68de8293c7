//! Measures per-request instantiation: a fresh store, WASI context and instance
//! from an `InstancePre`, optionally running `_start` (stdout discarded).
//!
//!     cargo run --release -p carnac-wasi --example instantiate -- MODULE [N] [--run] [--cgi] [--no-track] [--tier=T] [--init=NAME]
//!
//! `--tier=interp|cranelift|auto` (default `interp`, as `carnac serve`).
//! `--init=NAME`: call export NAME once, then instantiate from the instance's
//! snapshot (what a route with `init = "NAME"` does).
use std::time::Instant;

use carnac::{Config, Engine, Linker, Module, Store};
use carnac_wasi::{Stream, WasiCtx};

/// What `carnac serve` gives a guest for `GET /hello` from `wrk` (`--cgi`).
const CGI_ENV: &[(&str, &str)] = &[
    ("GATEWAY_INTERFACE", "CGI/1.1"),
    ("SERVER_SOFTWARE", "carnac"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("SERVER_NAME", "127.0.0.1"),
    ("SERVER_PORT", "8080"),
    ("REQUEST_METHOD", "GET"),
    ("SCRIPT_NAME", ""),
    ("PATH_INFO", "/hello"),
    ("PATH_TRANSLATED", "/hello"),
    ("QUERY_STRING", ""),
    ("REMOTE_ADDR", "127.0.0.1"),
    ("REMOTE_HOST", "127.0.0.1"),
    ("REMOTE_USER", ""),
    ("AUTH_TYPE", ""),
    ("CONTENT_TYPE", ""),
    ("CONTENT_LENGTH", "0"),
    ("X_MATCHED_ROUTE", "/..."),
    ("X_FULL_URL", "http://127.0.0.1:8080/hello"),
    ("X_RAW_PATH_INFO", "/hello"),
    ("HTTP_HOST", "127.0.0.1:8080"),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: instantiate MODULE [N] [--run] [--cgi] [--no-track]");
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let run = args.iter().any(|a| a == "--run");
    let cgi = args.iter().any(|a| a == "--cgi");
    // The configuration `carnac serve` uses; `--no-track` leaves memory writes
    // untracked (dropping a store then asks the kernel which pages to reset).
    let mut config = Config::new();
    config.interruptible(true).track_memory_writes(!args.iter().any(|a| a == "--no-track"));
    let tier = args.iter().find_map(|a| a.strip_prefix("--tier=")).unwrap_or("interp");
    config.strategy(tier.parse().unwrap());
    let engine = Engine::new(&config);
    let mut module = Module::from_file(&engine, path).unwrap();
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    carnac_wasi::add_to_linker(&mut linker, |c| c).unwrap();
    if let Some(init) = args.iter().find_map(|a| a.strip_prefix("--init=")) {
        let mut store = Store::new(&engine, WasiCtx::builder().build());
        let instance = linker.instantiate(&mut store, &module).unwrap();
        instance.get_typed_func::<(), ()>(&store, init).unwrap().call(&mut store, ()).unwrap();
        module = instance.snapshot(&store).unwrap().module().clone();
    }
    let pre = linker.instantiate_pre(&module).unwrap();
    let mut best = f64::MAX;
    for _round in 0..5 {
        let t = Instant::now();
        for _ in 0..n {
            let mut b = WasiCtx::builder();
            b.stdout(Stream::Null).stderr(Stream::Null);
            if cgi {
                b.args(["/hello"]);
                for (k, v) in CGI_ENV {
                    b.env(k, v);
                }
            }
            let ctx = b.build();
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
