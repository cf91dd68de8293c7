//! A hostile guest: tens of thousands of WASI calls with random (but seeded)
//! arguments — descriptors, pointers, lengths, flags, rights — made from inside
//! wasm against a preopened sandbox. Every call must come back as an errno or,
//! for a bad pointer or enum value, a clean trap (never a host panic), and
//! nothing outside the sandbox may change.

use std::fmt::Write as _;
use std::path::Path;

use carnac::{Config, Engine, Error, Linker, Module, Store, Strategy, Val, ValType};
use carnac_wasi::{Stream, WasiCtx};

/// (name, parameter types) of every preview1 function but `proc_exit` (which
/// ends the guest) and `poll_oneoff` (whose random clock subscriptions would
/// sleep for random times; it has its own tests).
const FUNCS: &[(&str, &str)] = &[
    ("args_get", "ii"),
    ("args_sizes_get", "ii"),
    ("environ_get", "ii"),
    ("environ_sizes_get", "ii"),
    ("clock_res_get", "ii"),
    ("clock_time_get", "iIi"),
    ("fd_advise", "iIIi"),
    ("fd_allocate", "iII"),
    ("fd_close", "i"),
    ("fd_datasync", "i"),
    ("fd_fdstat_get", "ii"),
    ("fd_fdstat_set_flags", "ii"),
    ("fd_fdstat_set_rights", "iII"),
    ("fd_filestat_get", "ii"),
    ("fd_filestat_set_size", "iI"),
    ("fd_filestat_set_times", "iIIi"),
    ("fd_pread", "iiiIi"),
    ("fd_prestat_get", "ii"),
    ("fd_prestat_dir_name", "iii"),
    ("fd_pwrite", "iiiIi"),
    ("fd_read", "iiii"),
    ("fd_readdir", "iiiIi"),
    ("fd_renumber", "ii"),
    ("fd_seek", "iIii"),
    ("fd_sync", "i"),
    ("fd_tell", "ii"),
    ("fd_write", "iiii"),
    ("path_create_directory", "iii"),
    ("path_filestat_get", "iiiii"),
    ("path_filestat_set_times", "iiiiIIi"),
    ("path_link", "iiiiiii"),
    ("path_open", "iiiiiIIii"),
    ("path_readlink", "iiiiii"),
    ("path_remove_directory", "iii"),
    ("path_rename", "iiiiii"),
    ("path_symlink", "iiiii"),
    ("path_unlink_file", "iii"),
    ("proc_raise", "i"),
    ("sched_yield", ""),
    ("random_get", "ii"),
    ("sock_accept", "iii"),
    ("sock_recv", "iiiiii"),
    ("sock_send", "iiiii"),
    ("sock_shutdown", "ii"),
];

/// Paths placed in guest memory at known offsets, so random pointers often name one.
const PATHS: &[&str] = &["a", "b", "a/b", "..", "../x", "/etc/passwd", "link", "d", "d/e", ".", "a/../..", "x/y/z"];

fn module_text() -> String {
    let mut wat = String::from("(module\n");
    for (name, params) in FUNCS {
        let p: String = params.chars().map(|c| if c == 'I' { " i64" } else { " i32" }).collect();
        let _ =
            writeln!(wat, "  (import \"wasi_snapshot_preview1\" \"{name}\" (func ${name} (param{p}) (result i32)))");
    }
    wat.push_str("  (memory (export \"memory\") 2)\n");
    let mut at = 1024;
    for path in PATHS {
        let _ = writeln!(wat, "  (data (i32.const {at}) \"{path}\")");
        at += 32;
    }
    for (name, params) in FUNCS {
        let p: String = params.chars().map(|c| if c == 'I' { " i64" } else { " i32" }).collect();
        let gets: String = (0..params.len()).map(|i| format!(" (local.get {i})")).collect();
        let _ = writeln!(wat, "  (func (export \"{name}\") (param{p}) (result i32) (call ${name}{gets}))");
    }
    wat.push(')');
    wat
}

struct Rng(u64, Option<usize>);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// An argument; the first one of a call (`first`) is usually a live descriptor.
    fn i32(&mut self, first: bool) -> i32 {
        if let Some(p) = self.1.take() {
            // Right after a path pointer, usually its exact length.
            if self.below(4) != 0 {
                return PATHS[p].len() as i32;
            }
        }
        if first && self.below(4) != 0 {
            // Stdio, the preopen (3, most often), and what the guest opened.
            return [0, 1, 2, 3, 3, 3, 3, 4, 5][self.below(9) as usize];
        }
        match self.below(8) {
            0 => self.below(8) as i32, // descriptors, small flags
            1 => {
                let p = self.below(PATHS.len() as u64) as usize;
                self.1 = Some(p);
                1024 + 32 * p as i32 // a path
            }
            2 => 1 + self.below(12) as i32,    // a path length
            3 => self.below(2 * 65536) as i32, // anywhere in memory
            4 => -1,
            5 => 0x7fff_fff0,                    // far out of bounds
            6 => self.next() as i32,             // anything
            _ => 2048 + self.below(4096) as i32, // scratch area
        }
    }
    fn i64(&mut self) -> i64 {
        match self.below(5) {
            0 => 0,
            1 => self.below(1 << 20) as i64,
            2 => -1,
            3 => 1 << self.below(20),
            _ => self.next() as i64 >> 44, // at most ~1 MiB either way
        }
    }
}

fn snapshot(root: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), e.metadata().map(|m| m.len()).unwrap_or(0))
        })
        .collect();
    v.sort();
    v
}

/// The tiers the calls are made from: the compiled tier where it is built
/// (Linux on x86_64 and aarch64), whose calls reach WASI through its builtins.
const TIERS: &[Strategy] = if cfg!(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))) {
    &[Strategy::Interpreter, Strategy::Cranelift]
} else {
    &[Strategy::Interpreter]
};

#[test]
fn random_calls_never_panic_or_escape() {
    // The tiers' answers are not compared: the calls are seeded, but what they
    // write (random_get's bytes, clock readings, file times) is not, and later
    // calls read it as paths and buffers.
    for &tier in TIERS {
        random_calls_never_panic_or_escape_on(tier);
    }
}

fn random_calls_never_panic_or_escape_on(tier: Strategy) {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wasi-hostile-{tier:?}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("sandbox/d")).unwrap();
    std::fs::write(root.join("secret.txt"), "TOP SECRET").unwrap();
    std::fs::write(root.join("sandbox/a"), "a file").unwrap();
    let before = snapshot(&root);

    let engine = Engine::new(Config::new().strategy(tier));
    let module = Module::new(&engine, module_text()).unwrap();
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    carnac_wasi::add_to_linker(&mut linker, |c| c).unwrap();
    let calls: u64 = std::env::var("HOSTILE_CALLS").ok().and_then(|s| s.parse().ok()).unwrap_or(120_000);
    let mut rng = Rng(0x5eed_1234_abcd_ef01, None);
    let mut errnos = std::collections::BTreeMap::<i32, u64>::new();
    let mut traps = 0u64;
    // Many short-lived guests, so descriptor tables start fresh often (random
    // calls soon close the preopen, after which most calls are EBADF).
    let guests = 60;
    for _guest in 0..guests {
        let ctx = WasiCtx::builder()
            .arg("hostile")
            .env("K", "V")
            .stdin(Stream::Null)
            .stdout(Stream::Null)
            .stderr(Stream::Null)
            .preopened_dir(root.join("sandbox"), "/sb")
            .unwrap()
            .build();
        let mut store = Store::new(&engine, ctx);
        let instance = linker.instantiate(&mut store, &module).unwrap();
        for _ in 0..calls / guests {
            let (name, params) = FUNCS[rng.below(FUNCS.len() as u64) as usize];
            let f = instance.get_func(&store, name).unwrap();
            rng.1 = None;
            let mut args: Vec<Val> = params
                .chars()
                .enumerate()
                .map(|(i, c)| if c == 'I' { Val::I64(rng.i64()) } else { Val::I32(rng.i32(i == 0)) })
                .collect();
            // Keep the preopen alive most of the time, or nearly every later call is EBADF.
            if matches!(name, "fd_close" | "fd_renumber") && rng.below(16) != 0 {
                args[0] = Val::I32(4 + rng.below(4) as i32);
            }
            let mut out = [Val::I32(0)];
            match f.call(&mut store, &args, &mut out) {
                Ok(()) => *errnos.entry(out[0].i32().unwrap()).or_default() += 1,
                // A pointer outside memory or a value outside an enum traps (as in
                // Wasmtime): a clean trap naming the call, never a host panic.
                Err(Error::Trap(t))
                    if t.message().starts_with(&format!("wasi_snapshot_preview1::{name}: "))
                        && (t.message().ends_with("out of bounds") || t.message().ends_with("flags value")) =>
                {
                    traps += 1
                }
                Err(Error::Trap(t)) => panic!("{tier:?}: {name}{args:?} trapped: {t}"),
                Err(e) => panic!("{tier:?}: {name}{args:?} failed: {e}"),
            }
        }
        assert_eq!(f_ty(&instance, &store), ValType::I32);
    }
    // Outside the sandbox, nothing changed.
    assert_eq!(snapshot(&root), before);
    assert_eq!(std::fs::read_to_string(root.join("secret.txt")).unwrap(), "TOP SECRET");
    // The calls reached both successes and a spread of errors.
    assert!(errnos.get(&0).copied().unwrap_or(0) > 100, "{errnos:?}");
    assert!(errnos.len() > 5, "{errnos:?}");
    assert!(traps > 100, "{traps} traps");
    println!("{tier:?}: errno histogram: {errnos:?}, {traps} traps");
    std::fs::remove_dir_all(&root).ok();
}

fn f_ty(instance: &carnac::Instance, store: &Store<WasiCtx>) -> ValType {
    instance.get_func(store, "fd_write").unwrap().ty(store).results()[0].clone()
}
