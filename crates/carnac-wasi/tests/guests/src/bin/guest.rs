//! One guest program, many behaviours: `guest <command> [args...]`.
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn random_get(buf: *mut u8, len: usize) -> u16;
    fn fd_write(fd: u32, iovs: *const u32, iovs_len: usize, nwritten: *mut usize) -> u16;
    fn fd_read(fd: u32, iovs: *const u32, iovs_len: usize, nread: *mut usize) -> u16;
    fn path_open(
        fd: u32, dirflags: u32, path: *const u8, path_len: usize, oflags: u16,
        base: u64, inheriting: u64, fdflags: u16, opened: *mut u32,
    ) -> u16;
    fn fd_fdstat_set_rights(fd: u32, base: u64, inheriting: u64) -> u16;
    fn proc_raise(sig: u8) -> u16;
    fn path_symlink(old: *const u8, old_len: usize, fd: u32, new: *const u8, new_len: usize) -> u16;
    fn fd_pread(fd: u32, iovs: *const u32, iovs_len: usize, offset: u64, nread: *mut usize) -> u16;
    fn poll_oneoff(subs: *const u8, events: *mut u8, nsubs: usize, nevents: *mut usize) -> u16;
    fn fd_pwrite(fd: u32, iovs: *const u32, iovs_len: usize, offset: u64, nwritten: *mut usize) -> u16;
}

/// The first preopened directory is descriptor 3.
const PREOPEN: u32 = 3;

/// Creates a symlink `name` (relative to the first preopen) containing `target`.
fn symlink(target: &str, name: &str) -> std::io::Result<()> {
    let e = unsafe { path_symlink(target.as_ptr(), target.len(), PREOPEN, name.as_ptr(), name.len()) };
    if e == 0 { Ok(()) } else { Err(std::io::Error::other(format!("errno {e}"))) }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cmd = args.get(1).map(String::as_str).unwrap_or("");
    let rest = &args[2.min(args.len())..];
    match cmd {
        "hello" => println!("hello from wasm"),
        "stdio" => stdio(),
        "big" => big_write(rest[0].parse().unwrap()),
        "args" => {
            for a in &args {
                println!("{a}");
            }
        }
        "env" => {
            let vars: BTreeMap<String, String> = std::env::vars().collect();
            for (k, v) in vars {
                println!("{k}={v}");
            }
        }
        "exit" => std::process::exit(rest[0].parse().unwrap()),
        "panic" => panic!("the guest panicked on purpose"),
        "clocks" => clocks(),
        "random" => random(),
        "sleep" => {
            let ms: u64 = rest[0].parse().unwrap();
            let t = Instant::now();
            std::thread::sleep(Duration::from_millis(ms));
            println!("slept {} ms", t.elapsed().as_millis());
        }
        "files" => files(&rest[0]),
        "dirs" => dirs(&rest[0]),
        "symlinks" => symlinks(&rest[0]),
        "escape" => escape(&rest[0]),
        "badptr" => bad_pointers(),
        "rights" => rights(&rest[0]),
        "read-only" => read_only(&rest[0]),
        "serve" => serve(rest[0].parse().unwrap()),
        "poll" => poll(),
        "loop" => loop {
            std::hint::black_box(0);
        },
        "grow" => {
            let mut v: Vec<Vec<u8>> = Vec::new();
            loop {
                v.push(vec![1u8; 1 << 20]);
            }
        }
        other => {
            eprintln!("unknown command `{other}`");
            std::process::exit(2);
        }
    }
}

fn stdio() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    print!("{}", input.to_uppercase());
    eprintln!("read {} bytes", input.len());
}

fn big_write(n: usize) {
    let chunk = vec![b'x'; 4096];
    let mut out = std::io::stdout().lock();
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        out.write_all(&chunk[..k]).unwrap();
        left -= k;
    }
    out.flush().unwrap();
}

fn clocks() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert!(now.as_secs() > 1_600_000_000, "realtime clock too early: {now:?}");
    let a = Instant::now();
    let mut x = 0u64;
    for i in 0..100_000u64 {
        x = x.wrapping_add(std::hint::black_box(i));
    }
    let b = Instant::now();
    assert!(b >= a);
    println!("realtime ok, monotonic ok ({x})");
}

fn random() {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    unsafe {
        assert_eq!(random_get(a.as_mut_ptr(), a.len()), 0);
        assert_eq!(random_get(b.as_mut_ptr(), b.len()), 0);
    }
    assert_ne!(a, b, "two random buffers are equal");
    assert!(a.iter().any(|x| *x != 0));
    println!("random ok");
}

fn files(dir: &str) {
    let p = format!("{dir}/data.txt");
    fs::write(&p, b"hello world").unwrap();
    assert_eq!(fs::read_to_string(&p).unwrap(), "hello world");
    let mut f = fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.seek(SeekFrom::Start(6)).unwrap();
    f.write_all(b"WASI!").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello WASI!");
    f.set_len(5).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 5);
    drop(f);
    let mut f = fs::OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b", appended").unwrap();
    drop(f);
    assert_eq!(fs::read_to_string(&p).unwrap(), "hello, appended");
    let q = format!("{dir}/renamed.txt");
    fs::rename(&p, &q).unwrap();
    assert!(fs::metadata(&p).is_err());
    assert!(fs::metadata(&q).unwrap().is_file());
    // pread/pwrite leave the file position alone.
    use std::os::fd::AsRawFd;
    let mut f = fs::OpenOptions::new().read(true).write(true).open(&q).unwrap();
    let data = *b"HELLO";
    let iov = [data.as_ptr() as u32, 5];
    let mut n = 0usize;
    assert_eq!(unsafe { fd_pwrite(f.as_raw_fd() as u32, iov.as_ptr(), 1, 0, &mut n) }, 0);
    let mut buf = [0u8; 5];
    let iov = [buf.as_mut_ptr() as u32, 5];
    assert_eq!(unsafe { fd_pread(f.as_raw_fd() as u32, iov.as_ptr(), 1, 0, &mut n) }, 0);
    assert_eq!(&buf, b"HELLO");
    assert_eq!(f.stream_position().unwrap(), 0);
    drop(f);
    let err = fs::OpenOptions::new().write(true).create_new(true).open(&q).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    fs::remove_file(&q).unwrap();
    assert_eq!(fs::metadata(&q).unwrap_err().kind(), std::io::ErrorKind::NotFound);
    println!("files ok");
}

fn dirs(dir: &str) {
    fs::create_dir(format!("{dir}/a")).unwrap();
    fs::create_dir_all(format!("{dir}/a/b/c")).unwrap();
    for name in ["x", "y", "z"] {
        fs::write(format!("{dir}/a/{name}.txt"), name).unwrap();
    }
    let mut names: Vec<String> = fs::read_dir(format!("{dir}/a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["b", "x.txt", "y.txt", "z.txt"]);
    // A directory with many entries is listed completely (readdir cookies).
    fs::create_dir(format!("{dir}/many")).unwrap();
    for i in 0..300 {
        fs::write(format!("{dir}/many/file-with-a-longish-name-{i:04}"), "").unwrap();
    }
    assert_eq!(fs::read_dir(format!("{dir}/many")).unwrap().count(), 300);
    assert!(fs::remove_dir(format!("{dir}/a")).is_err(), "removed a non-empty directory");
    fs::remove_dir_all(format!("{dir}/a")).unwrap();
    assert!(fs::metadata(format!("{dir}/a")).is_err());
    println!("dirs ok");
}

fn symlinks(dir: &str) {
    fs::write(format!("{dir}/target.txt"), "through the link").unwrap();
    symlink("target.txt", "link").unwrap();
    assert_eq!(fs::read_to_string(format!("{dir}/link")).unwrap(), "through the link");
    assert_eq!(fs::read_link(format!("{dir}/link")).unwrap().to_str(), Some("target.txt"));
    assert!(fs::symlink_metadata(format!("{dir}/link")).unwrap().file_type().is_symlink());
    fs::remove_file(format!("{dir}/link")).unwrap();
    fs::hard_link(format!("{dir}/target.txt"), format!("{dir}/hard.txt")).unwrap();
    assert_eq!(fs::read_to_string(format!("{dir}/hard.txt")).unwrap(), "through the link");
    println!("symlinks ok");
}

/// Every way out of the preopen must fail; prints one line per attempt.
fn escape(dir: &str) {
    let attempt = |what: &str, r: std::io::Result<String>| match r {
        Ok(s) => println!("{what}: ESCAPED ({s})"),
        Err(e) => println!("{what}: denied ({:?})", e.kind()),
    };
    attempt("dotdot", fs::read_to_string(format!("{dir}/../secret.txt")));
    attempt("deep-dotdot", fs::read_to_string(format!("{dir}/sub/../../secret.txt")));
    attempt("absolute", fs::read_to_string("/etc/passwd"));
    let link = |target: &str, name: &str| {
        let _ = symlink(target, name);
    };
    link("../secret.txt", "out-file");
    attempt("symlink-file", fs::read_to_string(format!("{dir}/out-file")));
    link("..", "out-dir");
    attempt("symlink-dir", fs::read_to_string(format!("{dir}/out-dir/secret.txt")));
    link("/etc/passwd", "abs-link");
    attempt("symlink-absolute", fs::read_to_string(format!("{dir}/abs-link")));
    link("chain-2", "chain-1");
    link("chain-3", "chain-2");
    link("../secret.txt", "chain-3");
    attempt("symlink-chain", fs::read_to_string(format!("{dir}/chain-1")));
    attempt("write-through-link", fs::write(format!("{dir}/out-file"), "pwned").map(|_| String::new()));
    attempt("create-outside", fs::write(format!("{dir}/../created.txt"), "pwned").map(|_| String::new()));
    attempt("rename-outside", fs::rename(format!("{dir}/chain-1"), format!("{dir}/../moved")).map(|_| String::new()));
    attempt("mkdir-outside", fs::create_dir(format!("{dir}/../newdir")).map(|_| String::new()));
    attempt("unpreopened", fs::read_to_string("secret.txt"));
}

fn bad_pointers() {
    // Pointers outside memory trap (the conformance suite covers those); a
    // closed descriptor is EBADF and proc_raise is not supported.
    let ok = [b"x".as_ptr() as u32, 1];
    let mut n = 0usize;
    let r5 = unsafe { fd_write(77, ok.as_ptr(), 1, &mut n) };
    println!("badf {r5}");
    let r6 = unsafe { proc_raise(9) };
    println!("raise {r6}");
}

fn rights(dir: &str) {
    // A file opened for reading reads; writing it is the kernel's EBADF; rights
    // are not kept, so narrowing them is ENOTSUP (as in Wasmtime).
    let path = b"r.txt";
    fs::write(format!("{dir}/r.txt"), "abc").unwrap();
    let preopen = 3;
    let mut fd = 0u32;
    let read_rights = 1 << 1 | 1 << 2 | 1 << 5 | 1 << 21;
    let e = unsafe { path_open(preopen, 0, path.as_ptr(), path.len(), 0, read_rights, 0, 0, &mut fd) };
    assert_eq!(e, 0);
    let mut buf = [0u8; 3];
    let iov = [buf.as_mut_ptr() as u32, 3];
    let mut n = 0usize;
    assert_eq!(unsafe { fd_read(fd, iov.as_ptr(), 1, &mut n) }, 0);
    assert_eq!(&buf, b"abc");
    let w = unsafe { fd_write(fd, iov.as_ptr(), 1, &mut n) };
    let narrow = unsafe { fd_fdstat_set_rights(fd, 0, 0) };
    let r = unsafe { fd_read(fd, iov.as_ptr(), 1, &mut n) };
    println!("write-on-readonly {w} set-rights {narrow} read-after {r}");
}

/// Everything that would change a read-only preopen is EPERM; reading works.
fn read_only(dir: &str) {
    let code = |r: std::io::Result<()>| r.err().and_then(|e| e.raw_os_error()).unwrap_or(0);
    let read = fs::read_to_string(format!("{dir}/r.txt")).unwrap();
    let results = [
        ("create", code(fs::write(format!("{dir}/new.txt"), "x"))),
        ("write", code(fs::OpenOptions::new().write(true).open(format!("{dir}/r.txt")).map(drop))),
        ("truncate", code(fs::File::create(format!("{dir}/r.txt")).map(drop))),
        ("mkdir", code(fs::create_dir(format!("{dir}/d2")))),
        ("rmdir", code(fs::remove_dir(format!("{dir}/d")))),
        ("unlink", code(fs::remove_file(format!("{dir}/r.txt")))),
        ("rename", code(fs::rename(format!("{dir}/r.txt"), format!("{dir}/s.txt")))),
        ("symlink", unsafe { path_symlink(b"r.txt".as_ptr(), 5, 3, b"l".as_ptr(), 1) } as i32),
        ("link", code(fs::hard_link(format!("{dir}/r.txt"), format!("{dir}/h.txt")))),
        ("set-times", code(fs::File::open(format!("{dir}/r.txt")).and_then(|f| f.set_modified(UNIX_EPOCH)))),
    ];
    let list: Vec<String> = results.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("read {read} | {}", list.join(", "));
}

/// Accepts one connection on the preopened listener `fd`, echoes one line upper-cased.
fn serve(fd: i32) {
    use std::os::fd::FromRawFd;
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    let (mut out, _) = listener.accept().unwrap();
    let mut bytes = Vec::new();
    let mut b = [0u8; 1];
    while out.read(&mut b).unwrap() == 1 {
        bytes.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    let line = String::from_utf8(bytes).unwrap();
    out.write_all(line.to_uppercase().as_bytes()).unwrap();
    out.shutdown(std::net::Shutdown::Write).unwrap();
    println!("served {}", line.trim());
}

/// poll_oneoff with a 5 s clock and stdin readiness: stdin (a pipe with data,
/// or a host-provided reader) must win without waiting for the clock.
fn poll() {
    let mut subs = [0u8; 96];
    subs[0..8].copy_from_slice(&1u64.to_le_bytes()); // userdata 1: clock
    subs[8] = 0; // clock
    subs[16..20].copy_from_slice(&1u32.to_le_bytes()); // monotonic
    subs[24..32].copy_from_slice(&5_000_000_000u64.to_le_bytes());
    subs[48..56].copy_from_slice(&2u64.to_le_bytes()); // userdata 2: fd_read
    subs[56] = 1; // fd_read
    subs[64..68].copy_from_slice(&0u32.to_le_bytes()); // stdin
    let mut events = [0u8; 64];
    let mut n = 0usize;
    let t = Instant::now();
    let e = unsafe { poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), 2, &mut n) };
    let userdata = u64::from_le_bytes(events[0..8].try_into().unwrap());
    println!("poll errno {e} events {n} first {userdata} type {} fast {}", events[10], t.elapsed() < Duration::from_secs(4));
}
