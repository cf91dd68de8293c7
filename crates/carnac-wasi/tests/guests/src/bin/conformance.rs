//! WASI preview1 conformance: calls every preview1 function directly (raw
//! imports, no libc in the way) with the edge cases real programs and other
//! runtimes' suites probe, and prints one line per call: `case: ERRNO [values]`.
//!
//! Its expected output was recorded by running it on Wasmtime over the fixture
//! that crates/carnac-cli/tests/wasi_conformance.rs builds (see there); the
//! test runs it on Carnac and compares line by line.
//!
//! Run as `conformance.wasm a1 "two words"` with `--env CONF_A=1 --env CONF_B=x=y`,
//! the fixture preopened as `/sandbox`, stdin from /dev/null.

#![allow(clippy::missing_safety_doc)]

mod raw {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        pub fn args_get(argv: i32, buf: i32) -> i32;
        pub fn args_sizes_get(argc: i32, size: i32) -> i32;
        pub fn environ_get(env: i32, buf: i32) -> i32;
        pub fn environ_sizes_get(count: i32, size: i32) -> i32;
        pub fn clock_res_get(id: i32, res: i32) -> i32;
        pub fn clock_time_get(id: i32, precision: i64, time: i32) -> i32;
        pub fn fd_advise(fd: i32, offset: i64, len: i64, advice: i32) -> i32;
        pub fn fd_allocate(fd: i32, offset: i64, len: i64) -> i32;
        pub fn fd_close(fd: i32) -> i32;
        pub fn fd_datasync(fd: i32) -> i32;
        pub fn fd_fdstat_get(fd: i32, buf: i32) -> i32;
        pub fn fd_fdstat_set_flags(fd: i32, flags: i32) -> i32;
        pub fn fd_fdstat_set_rights(fd: i32, base: i64, inheriting: i64) -> i32;
        pub fn fd_filestat_get(fd: i32, buf: i32) -> i32;
        pub fn fd_filestat_set_size(fd: i32, size: i64) -> i32;
        pub fn fd_filestat_set_times(fd: i32, atim: i64, mtim: i64, flags: i32) -> i32;
        pub fn fd_pread(fd: i32, iovs: i32, iovs_len: i32, offset: i64, nread: i32) -> i32;
        pub fn fd_prestat_get(fd: i32, buf: i32) -> i32;
        pub fn fd_prestat_dir_name(fd: i32, path: i32, len: i32) -> i32;
        pub fn fd_pwrite(fd: i32, iovs: i32, iovs_len: i32, offset: i64, nwritten: i32) -> i32;
        pub fn fd_read(fd: i32, iovs: i32, iovs_len: i32, nread: i32) -> i32;
        pub fn fd_readdir(fd: i32, buf: i32, len: i32, cookie: i64, used: i32) -> i32;
        pub fn fd_renumber(from: i32, to: i32) -> i32;
        pub fn fd_seek(fd: i32, offset: i64, whence: i32, newoffset: i32) -> i32;
        pub fn fd_sync(fd: i32) -> i32;
        pub fn fd_tell(fd: i32, offset: i32) -> i32;
        pub fn fd_write(fd: i32, iovs: i32, iovs_len: i32, nwritten: i32) -> i32;
        pub fn path_create_directory(fd: i32, path: i32, len: i32) -> i32;
        pub fn path_filestat_get(fd: i32, flags: i32, path: i32, len: i32, buf: i32) -> i32;
        pub fn path_filestat_set_times(fd: i32, flags: i32, path: i32, len: i32, atim: i64, mtim: i64, fst: i32) -> i32;
        pub fn path_link(old_fd: i32, old_flags: i32, old: i32, old_len: i32, new_fd: i32, new: i32, new_len: i32) -> i32;
        pub fn path_open(
            fd: i32,
            dirflags: i32,
            path: i32,
            len: i32,
            oflags: i32,
            base: i64,
            inheriting: i64,
            fdflags: i32,
            opened: i32,
        ) -> i32;
        pub fn path_readlink(fd: i32, path: i32, len: i32, buf: i32, buf_len: i32, used: i32) -> i32;
        pub fn path_remove_directory(fd: i32, path: i32, len: i32) -> i32;
        pub fn path_rename(fd: i32, old: i32, old_len: i32, new_fd: i32, new: i32, new_len: i32) -> i32;
        pub fn path_symlink(old: i32, old_len: i32, fd: i32, new: i32, new_len: i32) -> i32;
        pub fn path_unlink_file(fd: i32, path: i32, len: i32) -> i32;
        pub fn poll_oneoff(input: i32, output: i32, nsubs: i32, nevents: i32) -> i32;
        pub fn random_get(buf: i32, len: i32) -> i32;
        pub fn sched_yield() -> i32;
        pub fn sock_accept(fd: i32, flags: i32, fd_out: i32) -> i32;
        pub fn sock_recv(fd: i32, ri: i32, ri_len: i32, flags: i32, ro_len: i32, ro_flags: i32) -> i32;
        pub fn sock_send(fd: i32, si: i32, si_len: i32, flags: i32, so_len: i32) -> i32;
        pub fn sock_shutdown(fd: i32, how: i32) -> i32;
    }
}

use std::fmt::Write as _;

const ERRNO: [&str; 77] = [
    "SUCCESS", "2BIG", "ACCES", "ADDRINUSE", "ADDRNOTAVAIL", "AFNOSUPPORT", "AGAIN", "ALREADY", "BADF", "BADMSG",
    "BUSY", "CANCELED", "CHILD", "CONNABORTED", "CONNREFUSED", "CONNRESET", "DEADLK", "DESTADDRREQ", "DOM", "DQUOT",
    "EXIST", "FAULT", "FBIG", "HOSTUNREACH", "IDRM", "ILSEQ", "INPROGRESS", "INTR", "INVAL", "IO", "ISCONN", "ISDIR",
    "LOOP", "MFILE", "MLINK", "MSGSIZE", "MULTIHOP", "NAMETOOLONG", "NETDOWN", "NETRESET", "NETUNREACH", "NFILE",
    "NOBUFS", "NODEV", "NOENT", "NOEXEC", "NOLCK", "NOLINK", "NOMEM", "NOMSG", "NOPROTOOPT", "NOSPC", "NOSYS",
    "NOTCONN", "NOTDIR", "NOTEMPTY", "NOTRECOVERABLE", "NOTSOCK", "NOTSUP", "NOTTY", "NXIO", "OVERFLOW", "OWNERDEAD",
    "PERM", "PIPE", "PROTO", "PROTONOSUPPORT", "PROTOTYPE", "RANGE", "ROFS", "SPIPE", "SRCH", "STALE", "TIMEDOUT",
    "TXTBSY", "XDEV", "NOTCAPABLE",
];

fn errno(e: i32) -> String {
    ERRNO.get(e as usize).map_or_else(|| format!("errno{e}"), |s| s.to_string())
}

// Rights, flags and types of preview1.
const R_FD_DATASYNC: u64 = 1 << 0;
const R_FD_READ: u64 = 1 << 1;
const R_FD_SEEK: u64 = 1 << 2;
const R_FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
const R_FD_SYNC: u64 = 1 << 4;
const R_FD_TELL: u64 = 1 << 5;
const R_FD_WRITE: u64 = 1 << 6;
const R_FD_READDIR: u64 = 1 << 14;
const R_FD_FILESTAT_GET: u64 = 1 << 21;
const R_FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
const R_ALL: u64 = (1 << 30) - 1;
const R_FILE_RW: u64 = R_FD_DATASYNC
    | R_FD_READ
    | R_FD_SEEK
    | R_FD_FDSTAT_SET_FLAGS
    | R_FD_SYNC
    | R_FD_TELL
    | R_FD_WRITE
    | R_FD_FILESTAT_GET
    | R_FD_FILESTAT_SET_SIZE;
/// Everything but the rights that ask for write access (a directory opened
/// with those is `ISDIR`).
const R_DIR: u64 = R_ALL & !(R_FD_WRITE | R_FD_DATASYNC | (1 << 8) | R_FD_FILESTAT_SET_SIZE);
const O_CREAT: i32 = 1;
const O_DIRECTORY: i32 = 2;
const O_EXCL: i32 = 4;
const O_TRUNC: i32 = 8;
const FD_APPEND: i32 = 1;
const FD_NONBLOCK: i32 = 4;
const FOLLOW: i32 = 1;
const PRE: i32 = 3;

/// A scratch area in linear memory for the host to write into.
static mut SCRATCH: [u8; 1 << 16] = [0; 1 << 16];
/// A large buffer (random_get, big writes).
static mut BIG: [u8; 1 << 20] = [0; 1 << 20];

fn scratch() -> i32 {
    std::ptr::addr_of_mut!(SCRATCH) as i32
}
fn big() -> i32 {
    std::ptr::addr_of_mut!(BIG) as i32
}
fn at(ptr: i32, off: usize, n: usize) -> Vec<u8> {
    // SAFETY: ptr points into this module's own static buffers.
    unsafe { std::slice::from_raw_parts((ptr as usize + off) as *const u8, n).to_vec() }
}
fn u8_at(ptr: i32, off: usize) -> u8 {
    at(ptr, off, 1)[0]
}
fn u16_at(ptr: i32, off: usize) -> u16 {
    u16::from_le_bytes(at(ptr, off, 2).try_into().unwrap())
}
fn u32_at(ptr: i32, off: usize) -> u32 {
    u32::from_le_bytes(at(ptr, off, 4).try_into().unwrap())
}
fn u64_at(ptr: i32, off: usize) -> u64 {
    u64::from_le_bytes(at(ptr, off, 8).try_into().unwrap())
}
fn put(ptr: i32, off: usize, bytes: &[u8]) {
    // SAFETY: as above.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), (ptr as usize + off) as *mut u8, bytes.len()) }
}

/// Output lines (printed through fd_write on stdout at the end of each section,
/// so that the guest's own stdout is not one of the things under test).
struct Out {
    lines: String,
    cases: usize,
}

impl Out {
    fn case(&mut self, name: &str, result: impl std::fmt::Display) {
        self.cases += 1;
        let _ = writeln!(self.lines, "{name}: {result}");
    }
    fn flush(&mut self) {
        use std::io::Write;
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(self.lines.as_bytes());
        let _ = o.flush();
        self.lines.clear();
    }
}

/// A guest string in memory: (ptr, len). Kept alive by the caller.
fn s(bytes: &[u8]) -> (i32, i32) {
    (bytes.as_ptr() as i32, bytes.len() as i32)
}

fn show(p: &[u8]) -> String {
    let mut out = String::new();
    for &b in p {
        if b.is_ascii_graphic() || b == b' ' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    if out.is_empty() {
        out.push_str("<empty>");
    }
    out
}

const FILETYPE: [&str; 8] = ["unknown", "block", "char", "dir", "file", "dgram", "stream", "symlink"];
fn filetype(t: u8) -> String {
    FILETYPE.get(t as usize).map_or_else(|| format!("type{t}"), |s| s.to_string())
}

fn fdstat(fd: i32) -> (i32, String) {
    let b = scratch();
    // SAFETY: the host writes 24 bytes at b.
    let e = unsafe { raw::fd_fdstat_get(fd, b) };
    if e != 0 {
        return (e, String::new());
    }
    (e, format!("{} flags={:#x} base={:#x} inh={:#x}", filetype(u8_at(b, 0)), u16_at(b, 2), u64_at(b, 8), u64_at(b, 16)))
}

/// The file type and size of a filestat at `b`.
fn stat_text(b: i32) -> String {
    let ft = u8_at(b, 16);
    if ft == 3 {
        format!("{} nlink={}", filetype(ft), u64_at(b, 24).min(1))
    } else {
        format!("{} size={} nlink={}", filetype(ft), u64_at(b, 32), u64_at(b, 24))
    }
}

fn open(dirfd: i32, dirflags: i32, path: &[u8], oflags: i32, base: u64, inh: u64, fdflags: i32) -> (i32, i32) {
    let (p, l) = s(path);
    let b = scratch();
    // SAFETY: the host writes the descriptor at b.
    let e = unsafe { raw::path_open(dirfd, dirflags, p, l, oflags, base as i64, inh as i64, fdflags, b) };
    (e, if e == 0 { u32_at(b, 0) as i32 } else { -1 })
}

/// Opens, describes what was opened (type), closes.
fn open_case(out: &mut Out, name: &str, dirflags: i32, path: &[u8], oflags: i32, base: u64, fdflags: i32) {
    let (e, fd) = open(PRE, dirflags, path, oflags, base, base, fdflags);
    if e != 0 {
        out.case(name, errno(e));
        return;
    }
    let (_, st) = fdstat(fd);
    let ty = st.split(' ').next().unwrap_or("").to_string();
    // SAFETY: plain call.
    unsafe { raw::fd_close(fd) };
    out.case(name, format!("SUCCESS {ty}"));
}

fn path_case(out: &mut Out, name: &str, f: unsafe extern "C" fn(i32, i32, i32) -> i32, path: &[u8]) {
    let (p, l) = s(path);
    // SAFETY: plain call with a valid string.
    out.case(name, errno(unsafe { f(PRE, p, l) }));
}

fn stat_path(dirfd: i32, flags: i32, path: &[u8]) -> String {
    let (p, l) = s(path);
    let b = scratch();
    // SAFETY: the host writes 64 bytes at b.
    let e = unsafe { raw::path_filestat_get(dirfd, flags, p, l, b) };
    if e == 0 {
        format!("SUCCESS {}", stat_text(b))
    } else {
        errno(e)
    }
}

fn write_all(fd: i32, data: &[u8]) -> i32 {
    let iov = scratch() + 60000;
    put(iov, 0, &(data.as_ptr() as u32).to_le_bytes());
    put(iov, 4, &(data.len() as u32).to_le_bytes());
    // SAFETY: a valid iovec at iov.
    unsafe { raw::fd_write(fd, iov, 1, iov + 8) }
}

fn make_file(path: &[u8], content: &[u8]) {
    let (e, fd) = open(PRE, 0, path, O_CREAT | O_TRUNC, R_FILE_RW, R_FILE_RW, 0);
    if e == 0 {
        write_all(fd, content);
        // SAFETY: plain call.
        unsafe { raw::fd_close(fd) };
    }
}

fn mkdir(path: &[u8]) -> i32 {
    let (p, l) = s(path);
    // SAFETY: plain call.
    unsafe { raw::path_create_directory(PRE, p, l) }
}

fn symlink(target: &[u8], path: &[u8]) -> i32 {
    let (t, tl) = s(target);
    let (p, l) = s(path);
    // SAFETY: plain call.
    unsafe { raw::path_symlink(t, tl, PRE, p, l) }
}

/// Calls Wasmtime answers with a trap instead of an errno: pointers and
/// lengths outside the guest's memory (Carnac: `FAULT`) and values outside an
/// enum or flags type (Carnac: `INVAL`). Each runs in a process of its own
/// (`conformance.wasm solo N`); the line is left unfinished if the call traps.
const SOLO_CASES: usize = 21;

fn solo(i: usize) {
    use std::io::Write;
    let b = scratch();
    let iov = b + 100;
    put(iov, 0, &0xffff_fff0u32.to_le_bytes());
    put(iov, 4, &64u32.to_le_bytes());
    let (lf, lfl) = s(b"link-file");
    let names = [
        "args_sizes_get out of bounds",
        "environ_get out of bounds",
        "clock_time_get out of bounds",
        "random_get out of bounds",
        "write iovec out of bounds",
        "read iovec out of bounds",
        "write iovec array out of bounds",
        "readlink buffer out of bounds",
        "poll subscriptions out of bounds",
        "path_open path out of bounds",
        "prestat_dir_name out of bounds",
        "clock_res_get 4",
        "clock_res_get 99",
        "clock_time_get 4",
        "clock_time_get 99",
        "seek whence=3",
        "advise 6",
        "fdstat_set_flags 0x20",
        "fd_filestat_set_times flags=32",
        "poll unknown clock",
        "poll unknown event type",
    ];
    let (_, f) = open(PRE, 0, b"file", 0, R_ALL, 0, 0);
    let subs = b + 1024;
    put(subs, 0, &[0; 48]);
    if i == 19 {
        put(subs, 16, &99u32.to_le_bytes());
    } else {
        put(subs, 8, &[3]);
        put(subs, 16, &(f as u32).to_le_bytes());
    }
    print!("{}: ", names[i]);
    let _ = std::io::stdout().flush();
    // SAFETY: the host must check every one of these pointers.
    let e = unsafe {
        match i {
            0 => raw::args_sizes_get(-8, b),
            1 => raw::environ_get(-100, -100),
            2 => raw::clock_time_get(0, 0, -4),
            3 => raw::random_get(-16, 32),
            4 => raw::fd_write(1, iov, 1, b),
            5 => raw::fd_read(0, iov, 1, b),
            6 => raw::fd_write(1, -8, 1, b),
            7 => raw::path_readlink(PRE, lf, lfl, -4, 64, b),
            8 => raw::poll_oneoff(-48, b + 4096, 1, b),
            9 => raw::path_open(PRE, 0, -4, 16, 0, 0, 0, 0, b),
            10 => raw::fd_prestat_dir_name(PRE, -4, 16),
            11 => raw::clock_res_get(4, b),
            12 => raw::clock_res_get(99, b),
            13 => raw::clock_time_get(4, 0, b),
            14 => raw::clock_time_get(99, 0, b),
            15 => raw::fd_seek(f, 0, 3, b),
            16 => raw::fd_advise(f, 0, 10, 6),
            17 => raw::fd_fdstat_set_flags(f, 0x20),
            18 => raw::fd_filestat_set_times(f, 0, 0, 32),
            19 => raw::poll_oneoff(subs, b + 4096, 1, b),
            _ => raw::poll_oneoff(subs, b + 4096, 1, b),
        }
    };
    println!("{}", errno(e));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("solo") {
        match args.get(2).and_then(|n| n.parse::<usize>().ok()) {
            Some(i) if i < SOLO_CASES => solo(i),
            _ => println!("solo cases: {SOLO_CASES}"),
        }
        return;
    }
    let mut out = Out { lines: String::new(), cases: 0 };
    stdio_and_preopens(&mut out);
    args_and_env(&mut out);
    clocks_and_random(&mut out);
    open_matrix(&mut out);
    file_ops(&mut out);
    times(&mut out);
    dir_ops(&mut out);
    rename_link_symlink(&mut out);
    readlink(&mut out);
    readdir(&mut out);
    descriptors(&mut out);
    poll(&mut out);
    sockets_and_misc(&mut out);
    let n = out.cases;
    out.flush();
    println!("cases: {}", n + 1);
}

fn stdio_and_preopens(out: &mut Out) {
    for fd in [0, 1, 2, 3, 4, 99, -1] {
        let (e, st) = fdstat(fd);
        out.case(&format!("fdstat {fd}"), format!("{} {st}", errno(e)).trim_end());
    }
    for fd in [0, 1, 2, 3, 4] {
        let b = scratch();
        // SAFETY: the host writes 8 bytes at b.
        let e = unsafe { raw::fd_prestat_get(fd, b) };
        let v = if e == 0 { format!(" tag={} len={}", u8_at(b, 0), u32_at(b, 4)) } else { String::new() };
        out.case(&format!("prestat {fd}"), format!("{}{v}", errno(e)));
    }
    for len in [0, 3, 8, 9, 64] {
        let b = scratch();
        put(b, 0, &[b'#'; 16]);
        // SAFETY: the buffer has room for 64 bytes.
        let e = unsafe { raw::fd_prestat_dir_name(PRE, b, len) };
        out.case(&format!("prestat_dir_name len={len}"), format!("{} {}", errno(e), show(&at(b, 0, 10))));
    }
    // SAFETY: plain call.
    let e = unsafe { raw::fd_prestat_dir_name(0, scratch(), 16) };
    out.case("prestat_dir_name stdin", errno(e));
    // Writes to stdio: stdout and stderr take bytes, stdin does not.
    let msg = b"";
    for fd in [0, 1, 2] {
        out.case(&format!("write0 to {fd}"), errno(write_all(fd, msg)));
    }
    // Reading stdin (/dev/null) returns end of file.
    let iov = scratch();
    put(iov, 0, &((iov + 32) as u32).to_le_bytes());
    put(iov, 4, &16u32.to_le_bytes());
    // SAFETY: a valid iovec.
    let e = unsafe { raw::fd_read(0, iov, 1, iov + 16) };
    out.case("read stdin", format!("{} n={}", errno(e), if e == 0 { u32_at(iov, 16) } else { 0 }));
    // SAFETY: plain calls.
    let e = unsafe { raw::fd_seek(0, 0, 1, scratch()) };
    out.case("seek stdin", errno(e));
    let e = unsafe { raw::fd_tell(1, scratch()) };
    out.case("tell stdout", errno(e));
    let e = unsafe { raw::fd_filestat_get(1, scratch()) };
    out.case("filestat stdout", format!("{}{}", errno(e), if e == 0 { format!(" {}", filetype(u8_at(scratch(), 16))) } else { String::new() }));
    out.flush();
}

fn args_and_env(out: &mut Out) {
    let b = scratch();
    // SAFETY: the host writes two u32.
    let e = unsafe { raw::args_sizes_get(b, b + 4) };
    let (argc, size) = (u32_at(b, 0), u32_at(b, 4));
    out.case("args_sizes_get", format!("{} argc={argc} size={size}", errno(e)));
    let (ptrs, buf) = (b + 64, b + 1024);
    // SAFETY: room for argc pointers and size bytes.
    let e = unsafe { raw::args_get(ptrs, buf) };
    let mut args = Vec::new();
    for i in 1..argc as usize {
        let p = u32_at(ptrs, i * 4) as i32;
        let bytes = at(p, 0, 64);
        let end = bytes.iter().position(|&c| c == 0).unwrap_or(64);
        args.push(show(&bytes[..end]));
    }
    out.case("args_get", format!("{} {}", errno(e), args.join(" | ")));
    // SAFETY: the host writes two u32.
    let e = unsafe { raw::environ_sizes_get(b, b + 4) };
    let count = u32_at(b, 0);
    out.case("environ_sizes_get", errno(e));
    let (ptrs, buf) = (b + 64, b + 4096);
    // SAFETY: room for the environment (sizes above are small in this test).
    let e = unsafe { raw::environ_get(ptrs, buf) };
    let mut vars = Vec::new();
    for i in 0..count as usize {
        let p = u32_at(ptrs, i * 4) as i32;
        let bytes = at(p, 0, 64);
        let end = bytes.iter().position(|&c| c == 0).unwrap_or(64);
        let v = show(&bytes[..end]);
        if v.starts_with("CONF_") {
            vars.push(v);
        }
    }
    vars.sort();
    out.case("environ_get", format!("{} {}", errno(e), vars.join(" ")));
    out.flush();
}

fn clocks_and_random(out: &mut Out) {
    let b = scratch();
    for id in [0, 1, 2, 3] {
        // SAFETY: the host writes 8 bytes.
        let e = unsafe { raw::clock_res_get(id, b) };
        let v = if e == 0 { format!(" positive={}", u64_at(b, 0) > 0) } else { String::new() };
        out.case(&format!("clock_res_get {id}"), format!("{}{v}", errno(e)));
        // SAFETY: the host writes 8 bytes.
        let e = unsafe { raw::clock_time_get(id, 1, b) };
        let v = if e == 0 { format!(" positive={}", u64_at(b, 0) > 0) } else { String::new() };
        out.case(&format!("clock_time_get {id}"), format!("{}{v}", errno(e)));
    }
    let mut last = 0;
    let mut monotonic = true;
    for _ in 0..1000 {
        // SAFETY: as above.
        unsafe { raw::clock_time_get(1, 0, b) };
        let t = u64_at(b, 0);
        monotonic &= t >= last;
        last = t;
    }
    out.case("monotonic clock never goes back", monotonic);
    for len in [0, 1, 16, 4096, 1 << 20] {
        let p = big();
        put(p, 0, &[0; 16]);
        // SAFETY: BIG holds 1 MiB.
        let e = unsafe { raw::random_get(p, len) };
        let nonzero = len < 16 || at(p, 0, 16).iter().any(|&x| x != 0);
        out.case(&format!("random_get {len}"), format!("{} filled={nonzero}", errno(e)));
    }
    // SAFETY: plain call.
    let e = unsafe { raw::sched_yield() };
    out.case("sched_yield", errno(e));
    out.flush();
}

/// Paths tried against every way of opening.
const PATHS: &[&[u8]] = &[
    b"file",
    b"file/",
    b"file/.",
    b"./file",
    b"dir",
    b"dir/",
    b"dir/.",
    b"dir//nested",
    b"dir/nested/",
    b".",
    b"./",
    b"",
    b"..",
    b"../outside",
    b"dir/../file",
    b"dir/../../outside",
    b"/sandbox/file",
    b"/etc/passwd",
    b"link-file",
    b"link-file/",
    b"link-dir",
    b"link-dir/",
    b"dangling",
    b"dangling/",
    b"loop",
    b"link-abs",
    b"link-up",
    b"missing",
    b"missing/",
    b"bad\xffname",
    b"nul\x00name",
];

fn open_matrix(out: &mut Out) {
    let modes: &[(&str, i32, i32, u64, i32)] = &[
        ("read", FOLLOW, 0, R_FD_READ | R_FD_SEEK, 0),
        ("read-nofollow", 0, 0, R_FD_READ, 0),
        ("directory", FOLLOW, O_DIRECTORY, R_FD_READDIR, 0),
        ("directory-nofollow", 0, O_DIRECTORY, R_FD_READDIR, 0),
        ("zero-rights", FOLLOW, 0, 0, 0),
        ("all-rights", FOLLOW, 0, R_ALL, 0),
        ("write", FOLLOW, 0, R_FD_WRITE, 0),
        ("nonblock", FOLLOW, 0, R_FD_READ, FD_NONBLOCK),
    ];
    for (mode, dirflags, oflags, rights, fdflags) in modes {
        for path in PATHS {
            open_case(out, &format!("open {mode} {}", show(path)), *dirflags, path, *oflags, *rights, *fdflags);
        }
        out.flush();
    }
    // Modes that create or change files, each on its own copy of the names.
    let creating: &[(&str, i32, i32, u64, i32)] = &[
        ("creat", FOLLOW, O_CREAT, R_FD_READ | R_FD_WRITE, 0),
        ("creat-zero-rights", 0, O_CREAT, 0, 0),
        ("creat-excl", 0, O_CREAT | O_EXCL, R_FD_WRITE, 0),
        ("creat-directory", 0, O_CREAT | O_DIRECTORY, R_FD_WRITE, 0),
        ("trunc", FOLLOW, O_TRUNC, R_FD_WRITE, 0),
        ("trunc-readonly", FOLLOW, O_TRUNC, R_FD_READ, 0),
        ("append", FOLLOW, 0, R_FD_WRITE, FD_APPEND),
    ];
    let targets: &[&[u8]] = &[
        b"new", b"new/", b"file", b"dir", b"link-file", b"dangling", b"link-dir", b"loop", b"../escape", b"dir/new",
        b"missing-dir/new",
    ];
    for (i, (mode, dirflags, oflags, rights, fdflags)) in creating.iter().enumerate() {
        for t in targets {
            // Fresh names per mode: `new` becomes `new-3`, `file` stays shared fixture.
            let path: Vec<u8> = if t.starts_with(b"new") || t.starts_with(b"dir/new") {
                let mut p = t.to_vec();
                let slash = p.ends_with(b"/");
                if slash {
                    p.pop();
                }
                p.extend_from_slice(format!("-{i}").as_bytes());
                if slash {
                    p.push(b'/');
                }
                p
            } else {
                t.to_vec()
            };
            open_case(out, &format!("open {mode} {}", show(t)), *dirflags, &path, *oflags, *rights, *fdflags);
        }
        out.flush();
    }
    // Restore the fixture's file content changed by trunc.
    make_file(b"file", b"hello world\n");
    // Opening relative to descriptors that are not directories.
    let (_, f) = open(PRE, 0, b"file", 0, R_FD_READ, 0, 0);
    let (e, _) = open(f, 0, b"x", 0, R_FD_READ, 0, 0);
    out.case("open relative to a file", errno(e));
    let (e, _) = open(0, 0, b"x", 0, R_FD_READ, 0, 0);
    out.case("open relative to stdin", errno(e));
    let (e, _) = open(99, 0, b"x", 0, R_FD_READ, 0, 0);
    out.case("open relative to a closed fd", errno(e));
    // SAFETY: plain call.
    unsafe { raw::fd_close(f) };
    // A descriptor opened with some rights cannot be used beyond them.
    let (_, ro) = open(PRE, 0, b"file", 0, R_FD_READ, 0, 0);
    out.case("write on a read-only descriptor", errno(write_all(ro, b"x")));
    // SAFETY: plain call.
    unsafe { raw::fd_close(ro) };
    let (e, d) = open(PRE, 0, b"dir", O_DIRECTORY, R_FD_READDIR, 0, 0);
    out.case("open dir with only readdir", errno(e));
    let (e, _) = open(d, 0, b"nested", 0, R_FD_READ, 0, 0);
    out.case("open below a dir opened without path rights", errno(e));
    // SAFETY: plain call.
    unsafe { raw::fd_close(d) };
    out.flush();
}

fn file_ops(out: &mut Out) {
    make_file(b"ops", b"0123456789");
    let (e, fd) = open(PRE, 0, b"ops", 0, R_ALL, 0, 0);
    out.case("open ops", errno(e));
    let b = scratch();
    let iov = b + 100;
    let data = b + 200;
    let read = |fd: i32, n: u32| -> String {
        put(iov, 0, &(data as u32).to_le_bytes());
        put(iov, 4, &n.to_le_bytes());
        // SAFETY: a valid iovec.
        let e = unsafe { raw::fd_read(fd, iov, 1, b) };
        if e == 0 {
            format!("SUCCESS {}", show(&at(data, 0, u32_at(b, 0) as usize)))
        } else {
            errno(e)
        }
    };
    out.case("read 4", read(fd, 4));
    // SAFETY: the host writes 8 bytes.
    let e = unsafe { raw::fd_tell(fd, b) };
    out.case("tell", format!("{} {}", errno(e), u64_at(b, 0)));
    for (whence, off) in [(0, 2i64), (1, 3), (2, -1), (2, 5), (0, -1), (1, i64::MAX), (0, 1 << 40)] {
        // SAFETY: the host writes 8 bytes.
        let e = unsafe { raw::fd_seek(fd, off, whence, b) };
        let v = if e == 0 { format!(" {}", u64_at(b, 0)) } else { String::new() };
        out.case(&format!("seek whence={whence} offset={off}"), format!("{}{v}", errno(e)));
    }
    // SAFETY: plain call.
    unsafe { raw::fd_seek(fd, 0, 0, b) };
    out.case("read 0 bytes", read(fd, 0));
    out.case("read all", read(fd, 100));
    out.case("read at end", read(fd, 100));
    // pread / pwrite leave the position alone.
    put(iov, 0, &(data as u32).to_le_bytes());
    put(iov, 4, &3u32.to_le_bytes());
    for off in [0i64, 8, 10, 20, -1] {
        // SAFETY: a valid iovec.
        let e = unsafe { raw::fd_pread(fd, iov, 1, off, b) };
        let v = if e == 0 { format!(" {}", show(&at(data, 0, u32_at(b, 0) as usize))) } else { String::new() };
        out.case(&format!("pread offset={off}"), format!("{}{v}", errno(e)));
    }
    put(data, 0, b"XY");
    put(iov, 4, &2u32.to_le_bytes());
    for off in [0i64, 12, -1] {
        // SAFETY: a valid iovec.
        let e = unsafe { raw::fd_pwrite(fd, iov, 1, off, b) };
        out.case(&format!("pwrite offset={off}"), format!("{} n={}", errno(e), if e == 0 { u32_at(b, 0) } else { 0 }));
    }
    // SAFETY: the host writes 64 bytes.
    let e = unsafe { raw::fd_filestat_get(fd, b) };
    out.case("filestat after pwrite", format!("{} {}", errno(e), stat_text(b)));
    // Several iovecs, one of them empty.
    put(iov, 0, &(data as u32).to_le_bytes());
    put(iov, 4, &2u32.to_le_bytes());
    put(iov, 8, &(data as u32).to_le_bytes());
    put(iov, 12, &0u32.to_le_bytes());
    put(iov, 16, &(data as u32).to_le_bytes());
    put(iov, 20, &1u32.to_le_bytes());
    // SAFETY: valid iovecs.
    let e = unsafe { raw::fd_write(fd, iov, 3, b) };
    out.case("write 3 iovecs", format!("{} n={}", errno(e), u32_at(b, 0)));
    let e = unsafe { raw::fd_write(fd, iov, 0, b) };
    out.case("write no iovecs", format!("{} n={}", errno(e), u32_at(b, 0)));
    for size in [0i64, 5, 100, -1] {
        // SAFETY: plain call.
        let e = unsafe { raw::fd_filestat_set_size(fd, size) };
        out.case(&format!("set_size {size}"), errno(e));
    }
    for (off, len) in [(0i64, 10i64), (0, 0), (-1, 10), (10, -1)] {
        // SAFETY: plain calls.
        let e = unsafe { raw::fd_allocate(fd, off, len) };
        out.case(&format!("allocate {off} {len}"), errno(e));
    }
    for advice in [0, 1, 2, 3, 4, 5] {
        // SAFETY: plain call.
        let e = unsafe { raw::fd_advise(fd, 0, 10, advice) };
        out.case(&format!("advise {advice}"), errno(e));
    }
    // SAFETY: plain calls.
    out.case("datasync", errno(unsafe { raw::fd_datasync(fd) }));
    out.case("sync", errno(unsafe { raw::fd_sync(fd) }));
    out.case("sync stdout", errno(unsafe { raw::fd_sync(1) }));
    for flags in [0, FD_APPEND, FD_NONBLOCK, 2, 8, 16] {
        // SAFETY: plain call.
        let e = unsafe { raw::fd_fdstat_set_flags(fd, flags) };
        out.case(&format!("fdstat_set_flags {flags:#x}"), errno(e));
    }
    // SAFETY: plain call.
    let e = unsafe { raw::fd_fdstat_set_flags(fd, 0) };
    out.case("fdstat_set_flags back to 0", errno(e));
    // Rights only shrink.
    // SAFETY: plain calls.
    let e = unsafe { raw::fd_fdstat_set_rights(fd, R_FD_READ as i64, 0) };
    out.case("set_rights shrink", errno(e));
    out.case("fdstat after shrink", fdstat(fd).1);
    let e = unsafe { raw::fd_fdstat_set_rights(fd, R_ALL as i64, 0) };
    out.case("set_rights grow", errno(e));
    out.case("write after shrink", errno(write_all(fd, b"z")));
    // SAFETY: plain calls.
    out.case("close", errno(unsafe { raw::fd_close(fd) }));
    out.case("close again", errno(unsafe { raw::fd_close(fd) }));
    // pwrite on an append-mode file: POSIX (Linux) appends regardless of the offset.
    make_file(b"appending", b"abc");
    let (_, fd) = open(PRE, 0, b"appending", 0, R_FILE_RW, 0, FD_APPEND);
    put(data, 0, b"Z");
    put(iov, 0, &(data as u32).to_le_bytes());
    put(iov, 4, &1u32.to_le_bytes());
    // SAFETY: a valid iovec.
    let e = unsafe { raw::fd_pwrite(fd, iov, 1, 0, b) };
    out.case("pwrite on append file", errno(e));
    out.case("write on append file", errno(write_all(fd, b"W")));
    // SAFETY: the host writes 64 bytes.
    unsafe { raw::fd_filestat_get(fd, b) };
    out.case("append file after writes", stat_text(b));
    out.case("fdstat append file", fdstat(fd).1);
    // SAFETY: plain call.
    unsafe { raw::fd_close(fd) };
    // Operations on a directory descriptor.
    let (_, d) = open(PRE, 0, b"dir", O_DIRECTORY, R_DIR, R_ALL, 0);
    out.case("write to a directory", errno(write_all(d, b"x")));
    put(iov, 0, &(data as u32).to_le_bytes());
    put(iov, 4, &4u32.to_le_bytes());
    // SAFETY: valid iovec.
    let e = unsafe { raw::fd_read(d, iov, 1, b) };
    out.case("read from a directory", errno(e));
    let e = unsafe { raw::fd_seek(d, 0, 0, b) };
    out.case("seek a directory", errno(e));
    let e = unsafe { raw::fd_filestat_set_size(d, 0) };
    out.case("set_size a directory", errno(e));
    let e = unsafe { raw::fd_filestat_get(d, b) };
    out.case("filestat a directory", format!("{} {}", errno(e), stat_text(b)));
    unsafe { raw::fd_close(d) };
    out.flush();
}

fn times(out: &mut Out) {
    make_file(b"timed", b"t");
    let (_, fd) = open(PRE, 0, b"timed", 0, R_ALL, 0, 0);
    let (p, l) = s(b"timed");
    let b = scratch();
    for flags in 0..16 {
        // SAFETY: plain calls.
        let e = unsafe { raw::fd_filestat_set_times(fd, 1_000_000_000, 2_000_000_000, flags) };
        out.case(&format!("fd_filestat_set_times flags={flags}"), errno(e));
        let e = unsafe { raw::path_filestat_set_times(PRE, FOLLOW, p, l, 1_000_000_000, 2_000_000_000, flags) };
        out.case(&format!("path_filestat_set_times flags={flags}"), errno(e));
    }
    // Set both, then read them back.
    // SAFETY: plain calls.
    unsafe { raw::fd_filestat_set_times(fd, 1_000_000_000, 2_000_000_000, 1 | 4) };
    unsafe { raw::fd_filestat_get(fd, b) };
    out.case("times read back", format!("atim={} mtim={}", u64_at(b, 40), u64_at(b, 48)));
    for path in [&b"link-file"[..], b"dangling", b"missing", b"dir", b"file/"] {
        let (p, l) = s(path);
        for follow in [0, FOLLOW] {
            // SAFETY: plain call.
            let e = unsafe { raw::path_filestat_set_times(PRE, follow, p, l, 5_000_000_000, 6_000_000_000, 1 | 4) };
            out.case(&format!("path_filestat_set_times {} follow={follow}", show(path)), errno(e));
        }
    }
    // SAFETY: plain call.
    unsafe { raw::fd_close(fd) };
    // path_filestat_get with and without following.
    for path in PATHS {
        for follow in [0, FOLLOW] {
            out.case(&format!("path_filestat_get {} follow={follow}", show(path)), stat_path(PRE, follow, path));
        }
    }
    out.flush();
}

fn dir_ops(out: &mut Out) {
    let create: &[&[u8]] = &[
        b"d1", b"d1", b"d2/", b"file", b"file/", b"dangling", b"link-dir", b"link-dir/", b"missing-parent/d", b"dir/d3",
        b"d4/.", b".", b"", b"..", b"../d5", b"d6//", b"link-file/", b"loop",
    ];
    for p in create {
        path_case(out, &format!("create_directory {}", show(p)), raw::path_create_directory, p);
    }
    mkdir(b"full");
    make_file(b"full/x", b"x");
    let remove: &[&[u8]] = &[
        b"d1", b"d1", b"d2/", b"full", b"file", b"file/", b"link-dir", b"link-dir/", b"dangling", b"missing", b".",
        b"", b"dir/d3/", b"..", b"dir/..", b"loop",
    ];
    for p in remove {
        path_case(out, &format!("remove_directory {}", show(p)), raw::path_remove_directory, p);
    }
    make_file(b"u1", b"1");
    make_file(b"u2", b"2");
    symlink(b"dir", b"sl-dir");
    symlink(b"u2", b"sl-u2");
    symlink(b"nowhere", b"sl-dangling");
    let unlink: &[&[u8]] = &[
        b"u1", b"u1", b"u2/", b"dir", b"dir/", b"sl-dir", b"sl-dir/", b"sl-u2/", b"sl-u2", b"sl-dangling", b"missing",
        b".", b"", b"..", b"../outside", b"full/x/",
    ];
    for p in unlink {
        path_case(out, &format!("unlink_file {}", show(p)), raw::path_unlink_file, p);
    }
    out.case("u2 survives its link", stat_path(PRE, 0, b"u2"));
    out.flush();
}

fn rename_link_symlink(out: &mut Out) {
    mkdir(b"r");
    let setup = || {
        make_file(b"r/a", b"a");
        make_file(b"r/b", b"bb");
        mkdir(b"r/d");
        mkdir(b"r/e");
        mkdir(b"r/full");
        make_file(b"r/full/x", b"x");
    };
    let renames: &[(&[u8], &[u8])] = &[
        (b"r/a", b"r/a2"),
        (b"r/a2", b"r/b"),
        (b"r/b", b"r/d"),
        (b"r/d", b"r/b"),
        (b"r/d", b"r/e"),
        (b"r/e", b"r/full"),
        (b"r/full", b"r/full/sub"),
        (b"r/missing", b"r/x"),
        (b"r/b", b"r/b"),
        (b"r/b/", b"r/c"),
        (b"r/b", b"r/c/"),
        (b"r/e/", b"r/f/"),
        (b"r/f", b"r/g/"),
        (b"r/g/", b"r/h"),
        (b"r/h", b"../escape"),
        (b"r/h", b"r/nodir/h"),
        (b"r/full", b"."),
        (b".", b"r/z"),
        (b"r/h", b""),
    ];
    setup();
    for (from, to) in renames {
        let (f, fl) = s(from);
        let (t, tl) = s(to);
        // SAFETY: plain call.
        let e = unsafe { raw::path_rename(PRE, f, fl, PRE, t, tl) };
        out.case(&format!("rename {} -> {}", show(from), show(to)), errno(e));
    }
    out.case("after renames r/b", stat_path(PRE, 0, b"r/b"));
    out.case("after renames r/h", stat_path(PRE, 0, b"r/h"));
    // Renaming with a descriptor that is not a directory.
    let (_, f) = open(PRE, 0, b"file", 0, R_FD_READ, 0, 0);
    let (a, al) = s(b"x");
    // SAFETY: plain calls.
    let e = unsafe { raw::path_rename(f, a, al, PRE, a, al) };
    out.case("rename from a file descriptor", errno(e));
    unsafe { raw::fd_close(f) };
    // Symlinks: targets are not checked, names are.
    let syms: &[(&[u8], &[u8])] = &[
        (b"file", b"s1"),
        (b"file", b"s1"),
        (b"nowhere", b"s2"),
        (b"/etc/passwd", b"s3"),
        (b"../outside", b"s4"),
        (b"file", b"s5/"),
        (b"dir", b"s6/"),
        (b"file", b"dir"),
        (b"file", b"missing-dir/s7"),
        (b"", b"s8"),
        (b"file", b""),
        (b"file", b"../s9"),
    ];
    for (target, name) in syms {
        out.case(&format!("symlink {} -> {}", show(name), show(target)), errno(symlink(target, name)));
    }
    out.case("stat s1 follow", stat_path(PRE, FOLLOW, b"s1"));
    out.case("stat s3 follow", stat_path(PRE, FOLLOW, b"s3"));
    out.case("stat s3 nofollow", stat_path(PRE, 0, b"s3"));
    // Hard links.
    let links: &[(i32, &[u8], &[u8])] = &[
        (0, b"file", b"l1"),
        (0, b"file", b"l1"),
        (0, b"dir", b"l2"),
        (0, b"missing", b"l3"),
        (0, b"file", b"l4/"),
        (0, b"file/", b"l5"),
        (0, b"s1", b"l6"),
        (FOLLOW, b"s1", b"l7"),
        (0, b"dangling", b"l8"),
        (0, b"file", b"../l9"),
        (0, b"file", b"dir"),
    ];
    for (flags, from, to) in links {
        let (f, fl) = s(from);
        let (t, tl) = s(to);
        // SAFETY: plain call.
        let e = unsafe { raw::path_link(PRE, *flags, f, fl, PRE, t, tl) };
        out.case(&format!("link {} -> {} flags={flags}", show(to), show(from)), errno(e));
    }
    out.case("stat l1", stat_path(PRE, 0, b"l1"));
    out.case("stat l6", stat_path(PRE, 0, b"l6"));
    out.flush();
}

fn readlink(out: &mut Out) {
    let b = scratch();
    for (path, len) in [
        (&b"link-file"[..], 64),
        (b"link-file", 4),
        (b"link-file", 0),
        (b"link-file", 1),
        (b"dangling", 64),
        (b"link-abs", 64),
        (b"file", 64),
        (b"dir", 64),
        (b"missing", 64),
        (b"link-file/", 64),
        (b"", 64),
        (b"loop", 64),
    ] {
        let (p, l) = s(path);
        put(b, 0, &[b'#'; 16]);
        // SAFETY: 64 bytes of room at b + 100.
        let e = unsafe { raw::path_readlink(PRE, p, l, b + 100, len, b) };
        let v = if e == 0 { format!(" n={} {}", u32_at(b, 0), show(&at(b + 100, 0, u32_at(b, 0) as usize))) } else { String::new() };
        out.case(&format!("readlink {} len={len}", show(path)), format!("{}{v}", errno(e)));
    }
    out.flush();
}

fn readdir(out: &mut Out) {
    let (e, d) = open(PRE, 0, b"bigdir", O_DIRECTORY, R_DIR, R_ALL, 0);
    out.case("open bigdir", errno(e));
    let b = scratch();
    let buf = b + 64;
    for size in [24 + 4, 64, 100, 4096, 30000] {
        let mut names = std::collections::BTreeSet::new();
        let mut cookie: u64 = 0;
        let mut calls = 0;
        let mut result = 0;
        let mut truncated_seen = false;
        loop {
            calls += 1;
            // SAFETY: `size` bytes of room at buf.
            let e = unsafe { raw::fd_readdir(d, buf, size, cookie as i64, b) };
            if e != 0 {
                result = e;
                break;
            }
            let used = u32_at(b, 0) as usize;
            let mut off = 0;
            let mut progressed = false;
            while off + 24 <= used {
                let next = u64_at(buf, off);
                let namlen = u32_at(buf, off + 16) as usize;
                if off + 24 + namlen > used {
                    truncated_seen = true;
                    break;
                }
                names.insert(at(buf, off + 24, namlen));
                cookie = next;
                progressed = true;
                off += 24 + namlen;
            }
            if used < size as usize || !progressed || calls > 2000 {
                break;
            }
        }
        let files = names.iter().filter(|n| n.starts_with(b"f")).count();
        out.case(
            &format!("readdir bufsize={size}"),
            format!(
                "{} entries={} files={files} dot={} dotdot={} truncated_entries={truncated_seen}",
                errno(result),
                names.len(),
                names.contains(&b"."[..].to_vec()),
                names.contains(&b".."[..].to_vec()),
            ),
        );
    }
    // A cookie past the end, and a huge one.
    for cookie in [1_000_000i64, -1] {
        // SAFETY: 4096 bytes of room at buf.
        let e = unsafe { raw::fd_readdir(d, buf, 4096, cookie, b) };
        out.case(&format!("readdir cookie={cookie}"), format!("{} used={}", errno(e), if e == 0 { u32_at(b, 0) } else { 0 }));
    }
    // Entry types.
    // SAFETY: plain calls.
    unsafe { raw::fd_close(d) };
    let (_, top) = open(PRE, 0, b".", O_DIRECTORY, R_DIR, R_ALL, 0);
    let mut types = std::collections::BTreeMap::new();
    let mut cookie = 0u64;
    loop {
        // SAFETY: 30000 bytes of room.
        let e = unsafe { raw::fd_readdir(top, buf, 30000, cookie as i64, b) };
        if e != 0 {
            break;
        }
        let used = u32_at(b, 0) as usize;
        let mut off = 0;
        while off + 24 <= used {
            let namlen = u32_at(buf, off + 16) as usize;
            if off + 24 + namlen > used {
                break;
            }
            types.insert(show(&at(buf, off + 24, namlen)), filetype(u8_at(buf, off + 20)));
            cookie = u64_at(buf, off);
            off += 24 + namlen;
        }
        if used < 30000 {
            break;
        }
    }
    for name in ["file", "dir", "link-file", "link-dir", "dangling", "bigdir"] {
        out.case(&format!("readdir type {name}"), types.get(name).cloned().unwrap_or_else(|| "absent".into()));
    }
    // SAFETY: plain call.
    unsafe { raw::fd_close(top) };
    // Readdir on a file and on stdout.
    let (_, f) = open(PRE, 0, b"file", 0, R_ALL, 0, 0);
    // SAFETY: as above.
    let e = unsafe { raw::fd_readdir(f, buf, 4096, 0, b) };
    out.case("readdir a file", errno(e));
    unsafe { raw::fd_close(f) };
    let e = unsafe { raw::fd_readdir(1, buf, 4096, 0, b) };
    out.case("readdir stdout", errno(e));
    out.flush();
}

fn descriptors(out: &mut Out) {
    let b = scratch();
    // A descriptor to a directory that is then removed.
    mkdir(b"doomed");
    let (_, d) = open(PRE, 0, b"doomed", O_DIRECTORY, R_DIR, R_ALL, 0);
    let (p, l) = s(b"doomed");
    // SAFETY: plain calls.
    let e = unsafe { raw::path_remove_directory(PRE, p, l) };
    out.case("remove a directory held open", errno(e));
    let (e, _) = open(d, 0, b"x", O_CREAT, R_ALL, 0, 0);
    out.case("create in a removed directory", errno(e));
    let e = unsafe { raw::fd_readdir(d, b + 64, 4096, 0, b) };
    out.case("readdir a removed directory", format!("{} used={}", errno(e), if e == 0 { u32_at(b, 0) } else { 0 }));
    let e = unsafe { raw::fd_filestat_get(d, b) };
    out.case("filestat a removed directory", format!("{} {}", errno(e), if e == 0 { stat_text(b) } else { String::new() }));
    unsafe { raw::fd_close(d) };
    // fd_renumber.
    let (_, f1) = open(PRE, 0, b"file", 0, R_FD_READ, 0, 0);
    let (_, f2) = open(PRE, 0, b"dir", O_DIRECTORY, R_FD_READDIR, 0, 0);
    // SAFETY: plain calls.
    let e = unsafe { raw::fd_renumber(f1, f2) };
    out.case("renumber file over dir", errno(e));
    out.case("renumbered target", fdstat(f2).1.split(' ').next().unwrap_or("").to_string());
    out.case("renumbered source", errno(fdstat(f1).0));
    let e = unsafe { raw::fd_renumber(f2, f2) };
    out.case("renumber onto itself", errno(e));
    let e = unsafe { raw::fd_renumber(f2, 200) };
    out.case("renumber to an unused number", errno(e));
    let e = unsafe { raw::fd_renumber(77, f2) };
    out.case("renumber from a closed fd", errno(e));
    let e = unsafe { raw::fd_renumber(f2, 2) };
    out.case("renumber over stderr", errno(e));
    out.case("stderr after renumber", fdstat(2).1.split(' ').next().unwrap_or("").to_string());
    unsafe { raw::fd_close(f2) };
    unsafe { raw::fd_close(200) };
    // Renumbering over the preopen: a second preopen-like descriptor to the sandbox.
    let (_, dup) = open(PRE, 0, b".", O_DIRECTORY, R_DIR, R_ALL, 0);
    let e = unsafe { raw::fd_renumber(dup, PRE) };
    out.case("renumber over the preopen", errno(e));
    let e = unsafe { raw::fd_prestat_get(PRE, b) };
    out.case("prestat after renumber", errno(e));
    out.case("open through the renumbered preopen", errno(open(PRE, 0, b"file", 0, R_FD_READ, 0, 0).0));
    // Closing the preopen.
    let e = unsafe { raw::fd_close(PRE) };
    out.case("close the preopen", errno(e));
    out.case("open after closing the preopen", errno(open(PRE, 0, b"file", 0, R_FD_READ, 0, 0).0));
    out.flush();
}

fn poll(out: &mut Out) {
    let b = scratch();
    let subs = b + 1024;
    let events = b + 4096;
    let clock = |i: usize, id: u32, timeout: u64, flags: u16| {
        let at_ = subs + (i * 48) as i32;
        put(at_, 0, &(100 + i as u64).to_le_bytes());
        put(at_, 8, &[0]);
        put(at_, 16, &id.to_le_bytes());
        put(at_, 24, &timeout.to_le_bytes());
        put(at_, 32, &0u64.to_le_bytes());
        put(at_, 40, &flags.to_le_bytes());
    };
    let fdsub = |i: usize, tag: u8, fd: u32| {
        let at_ = subs + (i * 48) as i32;
        put(at_, 0, &(100 + i as u64).to_le_bytes());
        put(at_, 8, &[tag]);
        put(at_, 16, &fd.to_le_bytes());
    };
    let run = |n: i32| -> String {
        // SAFETY: room for n subscriptions and events.
        let e = unsafe { raw::poll_oneoff(subs, events, n, b) };
        if e != 0 {
            return errno(e);
        }
        let count = u32_at(b, 0);
        let mut evs: Vec<String> = (0..count as usize)
            .map(|i| {
                let ev = events + (i * 32) as i32;
                format!("{}:{}:{}", u64_at(ev, 0), u8_at(ev, 10), errno(u16_at(ev, 8) as i32))
            })
            .collect();
        evs.sort();
        format!("SUCCESS n={count} {}", evs.join(" "))
    };
    clock(0, 1, 0, 0);
    out.case("poll relative 0", run(1));
    clock(0, 1, 1_000_000, 0);
    out.case("poll relative 1ms", run(1));
    clock(0, 0, 1, 1);
    out.case("poll absolute in the past", run(1));
    out.case("poll no subscriptions", run(0));
    let (_, f) = open(PRE, 0, b"file", 0, R_ALL, 0, 0);
    fdsub(0, 1, f as u32);
    fdsub(1, 2, f as u32);
    out.case("poll file read+write", run(2));
    fdsub(0, 1, 0);
    clock(1, 1, 10_000_000, 0);
    out.case("poll stdin (null) + clock", run(2));
    fdsub(0, 2, 1);
    out.case("poll stdout write", run(1));
    fdsub(0, 1, 99);
    out.case("poll closed fd", run(1));
    let (_, d) = open(PRE, 0, b"dir", O_DIRECTORY, R_DIR, R_ALL, 0);
    fdsub(0, 1, d as u32);
    out.case("poll a directory", run(1));
    // SAFETY: plain calls.
    unsafe { raw::fd_close(f) };
    unsafe { raw::fd_close(d) };
    out.flush();
}

fn sockets_and_misc(out: &mut Out) {
    let b = scratch();
    // No sockets were granted: stdio and files are not sockets.
    for fd in [0, 1, PRE, 99] {
        // SAFETY: plain calls.
        let e = unsafe { raw::sock_accept(fd, 0, b) };
        out.case(&format!("sock_accept {fd}"), errno(e));
        let e = unsafe { raw::sock_shutdown(fd, 2) };
        out.case(&format!("sock_shutdown {fd}"), errno(e));
        let e = unsafe { raw::sock_recv(fd, b + 64, 0, 0, b, b + 4) };
        out.case(&format!("sock_recv {fd}"), errno(e));
        let e = unsafe { raw::sock_send(fd, b + 64, 0, 0, b) };
        out.case(&format!("sock_send {fd}"), errno(e));
    }
}
