//! Compiled artifacts (`Module::serialize` / `Module::deserialize`) and the
//! code cache (`Config::cache_dir`): a round trip runs the same, a mismatch or
//! a damaged file is an error (never a crash), and the cache hits, rewrites
//! corrupt entries and stays under its bound. Every cache lives in a
//! temporary directory: tests never touch the user's cache.

// They compile what they load (cfg set by build.rs: the `cranelift` feature,
// on Linux x86_64 or aarch64).
#![cfg(carnac_compiled)]

use std::path::{Path, PathBuf};

use carnac::{Config, Engine, Error, Func, Instance, Module, Store, Strategy, TrapKind};

const WAT: &str = r#"
(module $demo
  (import "host" "double" (func $double (param i32) (result i32)))
  (memory (export "mem") 1)
  (data (i32.const 16) "hello")
  (table 2 funcref)
  (elem (i32.const 0) $fib $inner)
  (type $unary (func (param i32) (result i32)))
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func $inner (param i32) (result i32)
    (i32.div_u (i32.const 100) (local.get 0)))
  (func $outer (export "divide") (param i32) (result i32)
    (call_indirect (type $unary) (local.get 0) (i32.const 1)))
  (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "twice") (param i32) (result i32) (call $double (local.get 0)))
  (func (export "boom") unreachable))
"#;

fn cranelift() -> Config {
    let mut config = Config::new();
    config.strategy(Strategy::Cranelift);
    config
}

/// A fresh, empty temporary directory (removed by [`TempDir`]'s drop).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("carnac-artifact-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything observable about running the demo module: results, trap kinds and backtraces.
fn observe(module: &Module) -> Vec<String> {
    let engine = module.engine();
    let mut store = Store::new(engine, ());
    let double = Func::wrap(&mut store, |x: i32| x * 2);
    let instance = Instance::new(&mut store, module, &[double.into()]).unwrap();
    let mut out = Vec::new();
    let mut call = |name: &str, arg: Option<i32>| {
        let r = match arg {
            Some(a) => instance.get_typed_func::<i32, i32>(&store, name).unwrap().call(&mut store, a).map(Some),
            None => instance.get_typed_func::<(), ()>(&store, name).unwrap().call(&mut store, ()).map(|()| None),
        };
        out.push(match r {
            Ok(v) => format!("{name}({arg:?}) = {v:?}"),
            Err(e) => {
                let trap = e.as_trap().expect("a trap");
                let frames: Vec<String> = trap.backtrace().iter().map(|f| f.to_string()).collect();
                let offsets: Vec<_> = trap.backtrace().iter().map(|f| (f.module_offset, f.func_offset)).collect();
                format!("{name}({arg:?}) traps {:?}: {} at {offsets:?}", trap.kind(), frames.join(" <- "))
            }
        });
    };
    call("fib", Some(20));
    call("divide", Some(7));
    call("divide", Some(0));
    call("load", Some(17));
    call("load", Some(65536));
    call("twice", Some(21));
    call("boom", None);
    out
}

#[test]
fn round_trip_runs_the_same_with_the_same_traps_and_backtraces() {
    let engine = Engine::new(&cranelift());
    let module = Module::new(&engine, WAT).unwrap();
    let bytes = module.serialize().unwrap();
    assert!(Module::is_artifact(&bytes));
    let loaded = Module::deserialize(&engine, &bytes).unwrap();
    let expected = observe(&module);
    assert_eq!(observe(&loaded), expected);
    assert!(
        expected.iter().any(|l| l.contains("IntegerDivisionByZero: demo!inner <- demo!outer at [(Some(")),
        "{expected:#?}"
    );
    assert!(expected.iter().any(|l| l.contains("Unreachable")), "{expected:#?}");
    assert!(expected.iter().any(|l| l == "fib(Some(20)) = Some(6765)"), "{expected:#?}");
    assert_eq!(loaded.name(), Some("demo"));
    assert_eq!(loaded.exports().count(), module.exports().count());

    // Into another engine with the same settings, from a file, and through
    // `Module::from_file`'s recognition of the header.
    let other = Engine::new(&cranelift());
    let dir = TempDir::new("roundtrip");
    let path = dir.0.join("demo.cwasm");
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(observe(&Module::deserialize_file(&other, &path).unwrap()), expected);
    assert_eq!(observe(&Module::from_file(&other, &path).unwrap()), expected);
    // Serializing a loaded module gives the same artifact.
    assert_eq!(loaded.serialize().unwrap(), bytes);
}

/// Whether this process maps `path` (`/proc/self/maps`).
fn mapped(path: &Path) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().any(|l| l.ends_with(&*path.to_string_lossy()))
}

#[test]
fn files_are_mapped_not_read_and_damaged_files_are_refused() {
    let engine = Engine::new(&cranelift());
    let bytes = Module::new(&engine, WAT).unwrap().serialize().unwrap();
    let expected = observe(&Module::deserialize(&engine, &bytes).unwrap());
    let dir = TempDir::new("mapped");
    let path = dir.0.join("demo.cwasm");
    std::fs::write(&path, &bytes).unwrap();
    let module = Module::deserialize_file(&engine, &path).unwrap();
    assert!(mapped(&path), "the file is mapped while the module lives");
    // Replacing the file by renaming another over it, as `carnac compile` and
    // the cache do, leaves the loaded module as it was.
    let other = dir.0.join("other.cwasm");
    std::fs::write(&other, Module::new(&engine, "(module)").unwrap().serialize().unwrap()).unwrap();
    std::fs::rename(&other, &path).unwrap();
    assert_eq!(observe(&module), expected);
    drop(module);
    assert!(!mapped(&path), "and unmapped with it");
    std::fs::write(&path, &bytes).unwrap();
    let module = Module::from_file(&engine, &path).unwrap();
    assert!(mapped(&path));
    assert_eq!(observe(&module), expected);
    drop(module);

    // Truncated, lengthened, empty or missing files: one line naming the file.
    let refused = |contents: &[u8], expect: &str| {
        std::fs::write(&path, contents).unwrap();
        for err in [Module::deserialize_file(&engine, &path), Module::from_file(&engine, &path)].map(Result::unwrap_err)
        {
            let m = err.to_string();
            assert!(m.contains(&*path.to_string_lossy()) && m.contains(expect) && !m.contains('\n'), "{m}");
        }
        assert!(!mapped(&path), "a refused file is not left mapped");
    };
    for len in [9, 12, 40, bytes.len() / 2, bytes.len() - 9, bytes.len() - 1] {
        refused(&bytes[..len], "damaged artifact");
    }
    refused(&[bytes.as_slice(), &[0]].concat(), "damaged artifact");
    let err = Module::deserialize_file(&engine, dir.0.join("missing.cwasm")).unwrap_err();
    assert!(matches!(err, Error::Io(_)) && err.to_string().contains("cannot read"), "{err}");
    std::fs::write(&path, []).unwrap();
    assert!(Module::deserialize_file(&engine, &path).unwrap_err().to_string().contains("not a Carnac artifact"));
}

/// `Module::from_file` of something that is not a regular file (a pipe) reads
/// it whole, artifact or not: only regular files are mapped.
#[test]
fn from_file_reads_pipes() {
    let engine = Engine::new(&cranelift());
    let bytes = Module::new(&engine, WAT).unwrap().serialize().unwrap();
    let dir = TempDir::new("fifo");
    let fifo = dir.0.join("fifo");
    if !std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
        eprintln!("no mkfifo: skipped");
        return;
    }
    let expected = observe(&Module::deserialize(&engine, &bytes).unwrap());
    for contents in [bytes.clone(), WAT.as_bytes().to_vec()] {
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, contents).unwrap())
        };
        let module = Module::from_file(&engine, &fifo).unwrap();
        writer.join().unwrap();
        assert_eq!(observe(&module), expected);
        assert!(!mapped(&fifo));
    }
}

#[test]
fn interpreted_modules_do_not_serialize() {
    let module = Module::new(&Engine::new(Config::new().strategy(Strategy::Interpreter)), WAT).unwrap();
    assert!(matches!(module.serialize(), Err(Error::Usage(_))));
}

/// A module of the default tier (automatic tiering) compiles when asked to
/// serialize, and its artifact loads into a compiled engine too.
#[test]
fn tiering_modules_serialize_by_compiling() {
    let module = Module::new(&Engine::default(), WAT).unwrap();
    let bytes = module.serialize().unwrap();
    assert!(module.is_compiled());
    let loaded = Module::deserialize(&Engine::new(Config::new().strategy(Strategy::Cranelift)), &bytes).unwrap();
    assert!(loaded.is_compiled());
    assert_eq!(observe(&loaded), observe(&module));
}

/// The one-line error of loading `bytes` into an engine with `config`.
fn refusal(config: &Config, bytes: &[u8]) -> String {
    let err = Module::deserialize(&Engine::new(config), bytes).unwrap_err();
    assert!(matches!(err, Error::Artifact(_)), "{err:?}");
    let message = err.to_string();
    assert!(!message.contains('\n'), "one line: {message}");
    message
}

#[test]
fn mismatched_settings_are_refused_naming_what_differs() {
    let bytes = Module::new(&Engine::new(&cranelift()), WAT).unwrap().serialize().unwrap();

    let m = refusal(cranelift().consume_fuel(true), &bytes);
    assert!(m.starts_with("incompatible artifact:") && m.contains("fuel"), "{m}");
    let m = refusal(Config::new().strategy(Strategy::Interpreter), &bytes);
    assert!(m.contains("tier cranelift") && m.contains("interp"), "{m}");
    let m = refusal(cranelift().signals_based_traps(false), &bytes);
    assert!(m.contains("explicit bounds checks"), "{m}");
    let m = refusal(cranelift().memory_guard_size(1 << 16), &bytes);
    assert!(m.contains("65536-byte guard"), "{m}");
    let m = refusal(cranelift().epoch_interruption(true), &bytes);
    assert!(m.contains("interruption"), "{m}");
    let m = refusal(cranelift().wasm_simd(false), &bytes);
    assert!(m.contains("wasm features"), "{m}");

    // Compiled with fuel, loaded with fuel: fine, and the fuel counts.
    let fuel = Engine::new(cranelift().consume_fuel(true));
    let bytes = Module::new(&fuel, WAT).unwrap().serialize().unwrap();
    let module = Module::deserialize(&fuel, &bytes).unwrap();
    let mut store = Store::new(&fuel, ());
    store.set_fuel(50).unwrap();
    let double = Func::wrap(&mut store, |x: i32| x * 2);
    let instance = Instance::new(&mut store, &module, &[double.into()]).unwrap();
    let err = instance.get_typed_func::<i32, i32>(&store, "fib").unwrap().call(&mut store, 20).unwrap_err();
    assert_eq!(err.as_trap().unwrap().kind(), TrapKind::OutOfFuel);
}

#[test]
fn wasm_and_text_are_not_artifacts() {
    let engine = Engine::new(&cranelift());
    let wasm = wat::parse_str(WAT).unwrap();
    let err = Module::deserialize(&engine, &wasm).unwrap_err();
    assert!(err.to_string().contains("not a Carnac artifact"), "{err}");
    assert!(!Module::is_artifact(&wasm) && !Module::is_artifact(WAT.as_bytes()));
}

#[test]
fn every_truncation_and_every_flipped_byte_is_an_error() {
    let engine = Engine::new(&cranelift());
    let small = "(module (func (export \"f\") (param i32) (result i32) (i32.div_u (i32.const 7) (local.get 0))))";
    let bytes = Module::new(&engine, small).unwrap().serialize().unwrap();
    assert!(Module::deserialize(&engine, &bytes).is_ok());
    for len in 0..bytes.len() {
        let err = Module::deserialize(&engine, &bytes[..len]).expect_err("a truncated artifact loads");
        assert!(!err.to_string().contains('\n'), "{err}");
    }
    for at in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut damaged = bytes.clone();
            damaged[at] ^= bit;
            let err = Module::deserialize(&engine, &damaged).expect_err("a damaged artifact loads");
            let m = err.to_string();
            assert!(
                m.contains("damaged artifact") || m.contains("not a Carnac artifact") || m.contains("format version"),
                "byte {at}: {m}"
            );
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Module::deserialize(&engine, &longer).is_err());
}

/// The cache entries in `dir`.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "cwasm")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn cached(dir: &Path) -> Config {
    let mut config = cranelift();
    config.cache_dir(Some(dir.to_path_buf()));
    config
}

#[test]
fn the_cache_stores_then_hits() {
    let dir = TempDir::new("hits");
    let cache = dir.0.join("nested/carnac");
    let engine = Engine::new(&cached(&cache));
    let expected = observe(&Module::new(&engine, WAT).unwrap());
    let s = engine.cache_stats();
    assert_eq!((s.hits, s.misses, s.stores, s.corrupt), (0, 1, 1, 0));
    let files = entries(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    // Make the entry look old: a hit refreshes it (eviction goes by mtime).
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options().append(true).open(&files[0]).unwrap().set_modified(old).unwrap();

    let engine = Engine::new(&cached(&cache));
    let module = Module::new(&engine, WAT).unwrap();
    let s = engine.cache_stats();
    assert_eq!((s.hits, s.misses, s.stores, s.corrupt), (1, 0, 0, 0));
    assert_eq!(observe(&module), expected);
    assert_eq!(entries(&cache), files);
    let mtime = std::fs::metadata(&files[0]).unwrap().modified().unwrap();
    assert!(mtime > old + std::time::Duration::from_secs(1800), "a hit touches the entry");

    // Other settings are another entry.
    let fuel = Engine::new(cached(&cache).consume_fuel(true));
    Module::new(&fuel, WAT).unwrap();
    assert_eq!(fuel.cache_stats().misses, 1);
    assert_eq!(entries(&cache).len(), 2);
}

#[test]
fn a_corrupt_entry_is_ignored_and_rewritten() {
    let dir = TempDir::new("corrupt");
    let engine = Engine::new(&cached(&dir.0));
    let expected = observe(&Module::new(&engine, WAT).unwrap());
    let entry = entries(&dir.0).pop().unwrap();
    let good = std::fs::read(&entry).unwrap();
    for damage in [good[..good.len() / 2].to_vec(), b"garbage".to_vec(), Vec::new()] {
        std::fs::write(&entry, &damage).unwrap();
        let engine = Engine::new(&cached(&dir.0));
        assert_eq!(observe(&Module::new(&engine, WAT).unwrap()), expected);
        let s = engine.cache_stats();
        assert_eq!((s.hits, s.misses, s.stores, s.corrupt), (0, 1, 1, 1));
        assert_eq!(std::fs::read(&entry).unwrap(), good, "rewritten");
    }
    // An entry holding another module's artifact (as if the key collided) is a miss too.
    let other = Module::new(&engine, "(module (func (export \"f\")))").unwrap().serialize().unwrap();
    std::fs::write(&entry, other).unwrap();
    let engine = Engine::new(&cached(&dir.0));
    Module::new(&engine, WAT).unwrap();
    assert_eq!(engine.cache_stats().corrupt, 1);
    assert_eq!(std::fs::read(&entry).unwrap(), good);
}

#[test]
fn a_disabled_cache_writes_nothing() {
    let dir = TempDir::new("off");
    let mut config = cached(&dir.0);
    config.cache(false);
    let engine = Engine::new(&config);
    Module::new(&engine, WAT).unwrap();
    assert_eq!(engine.cache_stats(), Default::default());
    assert!(entries(&dir.0).is_empty());
    // The interpreter never caches.
    let mut config = Config::new();
    config.cache_dir(Some(dir.0.clone()));
    Module::new(&Engine::new(&config), WAT).unwrap();
    assert!(entries(&dir.0).is_empty());
}

#[test]
fn eviction_keeps_the_directory_under_its_bound() {
    let dir = TempDir::new("evict");
    let module = |i: usize| format!("(module (func (export \"f\") (result i32) (i32.const {i})))");
    let one = Module::new(&Engine::new(&cranelift()), module(0)).unwrap().serialize().unwrap().len() as u64;
    let bound = one * 5 / 2;
    let mut config = cached(&dir.0);
    config.cache_max_bytes(bound);
    for i in 0..6 {
        let engine = Engine::new(&config);
        Module::new(&engine, module(i)).unwrap();
        let total: u64 = entries(&dir.0).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
        assert!(total <= bound, "{total} > {bound} after {i}");
        // Distinct mtimes, so that "least recently used" is well defined.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(entries(&dir.0).len(), 2);
    // The two most recent survive: they hit.
    for i in [4, 5] {
        let engine = Engine::new(&config);
        Module::new(&engine, module(i)).unwrap();
        assert_eq!(engine.cache_stats().hits, 1, "module {i}");
    }
}
