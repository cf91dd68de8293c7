//! A guest cannot make the host allocate in proportion to what it asks for:
//! every WASI call that takes iovecs or a length is made with arguments that
//! cover the whole guest memory (1,024 iovecs each naming all of it, lengths
//! of all of it, as many poll subscriptions as fit), and the process's peak
//! resident size may grow by no more than [`BUDGET`] over the whole test.
//!
//! This file is its own test binary with one test, so the process's peak RSS
//! (`VmHWM`) measures only these calls.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use carnac::{Engine, Instance, Linker, Memory, Module, Store, Val};
use carnac_wasi::{Stream, WasiCtx};

/// The guest's memory: 4 pages, fixed. 1,024 iovecs of all of it ask for 256 MiB.
const MEM: u32 = 4 * 65536;
/// Where results (`nwritten`, `nread`, a new descriptor) are stored.
const RES: u32 = MEM - 64;
/// How many iovecs the calls pass (Linux's `IOV_MAX`).
const IOVS: u32 = 1024;
/// Allowed growth of the peak RSS over the whole test.
const BUDGET: u64 = 32 << 20;

const ERRNO_INVAL: i32 = 28;
const ERRNO_NAMETOOLONG: i32 = 37;

/// (name, parameter types) of the functions that take iovecs, lengths or counts.
const FUNCS: &[(&str, &str)] = &[
    ("fd_write", "iiii"),
    ("fd_pwrite", "iiiIi"),
    ("fd_read", "iiii"),
    ("fd_pread", "iiiIi"),
    ("sock_accept", "iii"),
    ("sock_send", "iiiii"),
    ("sock_recv", "iiiiii"),
    ("sock_shutdown", "ii"),
    ("random_get", "ii"),
    ("fd_readdir", "iiiIi"),
    ("fd_prestat_dir_name", "iii"),
    ("poll_oneoff", "iiii"),
    ("path_open", "iiiiiIIii"),
    ("path_create_directory", "iii"),
    ("path_remove_directory", "iii"),
    ("path_unlink_file", "iii"),
    ("path_filestat_get", "iiiii"),
    ("path_filestat_set_times", "iiiiIIi"),
    ("path_link", "iiiiiii"),
    ("path_rename", "iiiiii"),
    ("path_symlink", "iiiii"),
    ("path_readlink", "iiiiii"),
];

fn module_text() -> String {
    let params = |p: &str| -> String { p.chars().map(|c| if c == 'I' { " i64" } else { " i32" }).collect() };
    let mut wat = String::from("(module\n");
    for (name, p) in FUNCS {
        let _ = writeln!(
            wat,
            "  (import \"wasi_snapshot_preview1\" \"{name}\" (func ${name} (param{}) (result i32)))",
            params(p)
        );
    }
    let _ = writeln!(wat, "  (memory (export \"memory\") {0} {0})", MEM / 65536);
    for (name, p) in FUNCS {
        let gets: String = (0..p.len()).map(|i| format!(" (local.get {i})")).collect();
        let _ = writeln!(wat, "  (func (export \"{name}\") (param{}) (result i32) (call ${name}{gets}))", params(p));
    }
    wat.push(')');
    wat
}

/// The process's peak resident set size, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() << 10
}

/// A sink that counts what it is given.
struct Counter(Arc<AtomicU64>);
impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Guest {
    store: Store<WasiCtx>,
    instance: Instance,
    memory: Memory,
    base_rss: u64,
}

impl Guest {
    /// Calls `name`; returns its errno after checking the peak RSS.
    fn call(&mut self, name: &str, args: &[Val]) -> i32 {
        let f = self.instance.get_func(&self.store, name).unwrap();
        let mut out = [Val::I32(0)];
        f.call(&mut self.store, args, &mut out).unwrap_or_else(|e| panic!("{name}{args:?}: {e}"));
        let grown = peak_rss().saturating_sub(self.base_rss);
        assert!(grown < BUDGET, "{name}{args:?}: peak RSS grew by {} MiB", grown >> 20);
        out[0].i32().unwrap()
    }

    /// `n` iovecs at address 0, each naming the whole memory.
    fn iovecs(&mut self, n: u32) {
        let one: Vec<u8> = [0u32.to_le_bytes(), MEM.to_le_bytes()].concat();
        self.memory.write(&mut self.store, 0, &one.repeat(n as usize)).unwrap();
    }

    fn zero(&mut self) {
        self.memory.write(&mut self.store, 0, &vec![0; MEM as usize]).unwrap();
    }

    fn u32_at(&self, at: u32) -> u32 {
        let mut b = [0; 4];
        self.memory.read(&self.store, at as usize, &mut b).unwrap();
        u32::from_le_bytes(b)
    }

    /// Opens `path` under directory `dir` with rights `base`; returns the descriptor.
    fn open(&mut self, dir: i32, path: &str, oflags: i32, base: i64) -> i32 {
        let at = RES - 512;
        self.memory.write(&mut self.store, at as usize, path.as_bytes()).unwrap();
        let args = [dir, 1, at as i32, path.len() as i32, oflags].map(Val::I32);
        let args = [&args[..], &[Val::I64(base), Val::I64(0), Val::I32(0), Val::I32(RES as i32)]].concat();
        assert_eq!(self.call("path_open", &args), 0, "path_open {path}");
        self.u32_at(RES) as i32
    }
}

const I: fn(i32) -> Val = Val::I32;
const FD_READ: i64 = 1 << 1;
const FD_SEEK: i64 = 1 << 2;
const FD_WRITE: i64 = 1 << 6;

#[test]
fn guest_sized_arguments_do_not_size_host_allocations() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wasi-host-alloc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::os::unix::fs::symlink("d", root.join("link")).unwrap();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stdout = Arc::new(AtomicU64::new(0));
    let ctx = WasiCtx::builder()
        .stdin(Stream::Reader(Box::new(std::io::repeat(7))))
        .stdout(Stream::Writer(Box::new(Counter(stdout.clone()))))
        .stderr(Stream::Null)
        .preopened_dir(&root, "/sb") // 3
        .unwrap()
        .preopened_dir("/dev", "/dev") // 4
        .unwrap()
        .preopened_socket(listener) // 5
        .build();
    // The interpreter alone: what is measured is the WASI layer's allocations,
    // not a background compiler's (automatic tiering, the default, would add
    // its own and free them again).
    let engine = Engine::new(carnac::Config::new().strategy(carnac::Strategy::Interpreter));
    let module = Module::new(&engine, module_text()).unwrap();
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    carnac_wasi::add_to_linker(&mut linker, |c| c).unwrap();
    let mut store = Store::new(&engine, ctx);
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let memory = instance.get_memory(&store, "memory").unwrap();
    let mut g = Guest { store, instance, memory, base_rss: 0 };

    // The peer of the socket: one thread sends 1 MiB and closes its side, one
    // counts what the guest sends until the guest shuts its side down.
    let client = std::net::TcpStream::connect(addr).unwrap();
    let mut sender = client.try_clone().unwrap();
    let send = std::thread::spawn(move || {
        sender.write_all(&vec![1u8; 1 << 20]).unwrap();
        sender.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut receiver = client;
    let receive = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        let mut total = 0u64;
        loop {
            match receiver.read(&mut buf).unwrap() {
                0 => return total,
                n => total += n as u64,
            }
        }
    });

    let null = g.open(4, "null", 0, FD_READ | FD_WRITE | FD_SEEK);
    let zero = g.open(4, "zero", 0, FD_READ | FD_SEEK);
    let file = g.open(3, "file", 1 /* creat */, FD_READ | FD_WRITE | FD_SEEK);
    assert_eq!(g.call("sock_accept", &[I(5), I(0), I(RES as i32)]), 0);
    let sock = g.u32_at(RES) as i32;
    // Everything above (compiling, instantiating, threads) is the baseline.
    g.base_rss = peak_rss();
    let all = MEM as u64 * IOVS as u64;

    // Writes: stdout (a counting sink), /dev/null, the socket; 256 MiB each.
    g.iovecs(IOVS);
    assert_eq!(g.call("fd_write", &[I(1), I(0), I(IOVS as i32), I(RES as i32)]), 0);
    assert_eq!(g.u32_at(RES) as u64, all);
    assert_eq!(stdout.load(Ordering::Relaxed), all);
    g.iovecs(IOVS);
    assert_eq!(g.call("fd_write", &[I(2), I(0), I(IOVS as i32), I(RES as i32)]), 0);
    g.iovecs(IOVS);
    assert_eq!(g.call("fd_write", &[I(null), I(0), I(IOVS as i32), I(RES as i32)]), 0);
    assert_eq!(g.u32_at(RES) as u64, all);
    g.iovecs(IOVS);
    assert_eq!(g.call("fd_pwrite", &[I(null), I(0), I(IOVS as i32), Val::I64(0), I(RES as i32)]), 0);
    assert_eq!(g.u32_at(RES) as u64, all);
    g.iovecs(IOVS);
    assert_eq!(g.call("sock_send", &[I(sock), I(0), I(IOVS as i32), I(0), I(RES as i32)]), 0);
    let sent = g.u32_at(RES) as u64;
    assert!(sent > 0 && sent <= all, "{sent}");
    // A real file: 4 iovecs (1 MiB, so the file stays small), then positioned.
    g.iovecs(4);
    assert_eq!(g.call("fd_write", &[I(file), I(0), I(4), I(RES as i32)]), 0);
    assert_eq!(g.u32_at(RES), 4 * MEM);
    g.iovecs(4);
    assert_eq!(g.call("fd_pwrite", &[I(file), I(0), I(4), Val::I64(1 << 20), I(RES as i32)]), 0);
    assert_eq!(std::fs::metadata(root.join("file")).unwrap().len(), 2 << 20);

    // Reads: stdin (endless), /dev/zero (plain and positioned), the file, the socket.
    g.iovecs(IOVS);
    assert_eq!(g.call("fd_read", &[I(0), I(0), I(IOVS as i32), I(RES as i32)]), 0);
    assert!(g.u32_at(RES) > 0);
    g.iovecs(IOVS);
    assert_eq!(g.call("fd_read", &[I(zero), I(0), I(IOVS as i32), I(RES as i32)]), 0);
    assert_eq!(g.u32_at(RES) as u64, all);
    g.iovecs(IOVS);
    assert_eq!(g.call("fd_pread", &[I(zero), I(0), I(IOVS as i32), Val::I64(0), I(RES as i32)]), 0);
    assert_eq!(g.u32_at(RES) as u64, all);
    g.iovecs(IOVS);
    assert_eq!(g.call("fd_pread", &[I(file), I(0), I(IOVS as i32), Val::I64(0), I(RES as i32)]), 0);
    assert_eq!(g.u32_at(RES), 2 << 20, "the whole file, then a short read ends the call");
    send.join().unwrap();
    for flags in [2 /* peek */, 0, 4 /* waitall */] {
        g.iovecs(IOVS);
        let args = [sock, 0, IOVS as i32, flags, RES as i32, RES as i32 + 4].map(I);
        assert_eq!(g.call("sock_recv", &args), 0, "sock_recv flags {flags}");
    }
    assert_eq!(g.call("sock_shutdown", &[I(sock), I(3)]), 0);
    assert_eq!(receive.join().unwrap(), sent);

    // The iovec count itself: more than IOV_MAX is EINVAL (even though the
    // array fits in memory), before anything is read or written.
    g.iovecs(MEM / 8);
    let before = stdout.load(Ordering::Relaxed);
    assert_eq!(g.call("fd_write", &[I(1), I(0), I((MEM / 8) as i32), I(RES as i32)]), ERRNO_INVAL);
    assert_eq!(g.call("fd_read", &[I(zero), I(0), I((MEM / 8) as i32), I(RES as i32)]), ERRNO_INVAL);
    assert_eq!(g.call("sock_send", &[I(sock), I(0), I((MEM / 8) as i32), I(0), I(RES as i32)]), ERRNO_INVAL);
    assert_eq!(stdout.load(Ordering::Relaxed), before);

    // Lengths of the whole memory.
    let m = MEM as i32;
    assert_eq!(g.call("random_get", &[I(0), I(m)]), 0);
    assert_eq!(g.call("fd_readdir", &[I(3), I(0), I(m), Val::I64(0), I(RES as i32)]), 0);
    assert_eq!(g.call("fd_prestat_dir_name", &[I(3), I(0), I(m)]), 0);
    // As many poll subscriptions as fit (all zero: relative realtime clocks of 0 ns).
    g.zero();
    assert_eq!(g.call("poll_oneoff", &[I(0), I(0), I(m / 48), I(RES as i32)]), 0);
    // Paths as long as memory: longer than any host path, so ENAMETOOLONG.
    g.zero();
    let path = [I(0), I(m)];
    let calls: Vec<(&str, Vec<Val>)> = vec![
        ("path_open", [&[I(3), I(0)][..], &path, &[I(0), Val::I64(-1), Val::I64(-1), I(0), I(RES as i32)]].concat()),
        ("path_create_directory", [&[I(3)][..], &path].concat()),
        ("path_remove_directory", [&[I(3)][..], &path].concat()),
        ("path_unlink_file", [&[I(3)][..], &path].concat()),
        ("path_filestat_get", [&[I(3), I(0)][..], &path, &[I(RES as i32)]].concat()),
        ("path_filestat_set_times", [&[I(3), I(0)][..], &path, &[Val::I64(0), Val::I64(0), I(0)]].concat()),
        ("path_link", [&[I(3), I(0)][..], &path, &[I(3)], &path].concat()),
        ("path_rename", [&[I(3)][..], &path, &[I(3)], &path].concat()),
        ("path_symlink", [&path[..], &[I(3)], &path].concat()),
        ("path_readlink", [&[I(3)][..], &path, &[I(0), I(m), I(RES as i32)]].concat()),
    ];
    for (name, args) in &calls {
        assert_eq!(g.call(name, args), ERRNO_NAMETOOLONG, "{name}");
    }
    // A real link read into a buffer as long as memory.
    g.memory.write(&mut g.store, 0, b"link").unwrap();
    assert_eq!(g.call("path_readlink", &[I(3), I(0), I(4), I(16), I(m - 16), I(RES as i32)]), 0);
    assert_eq!(g.u32_at(RES), 1);

    let grown = peak_rss().saturating_sub(g.base_rss);
    println!("peak RSS grew by {} KiB over the calls", grown >> 10);
    std::fs::remove_dir_all(&root).ok();
}
