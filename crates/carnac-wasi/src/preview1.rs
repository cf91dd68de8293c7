//! The `wasi_snapshot_preview1` functions. Each one checks the descriptor's kind,
//! reads its arguments from guest memory through [`GuestMemory`], and answers
//! with an errno, as Wasmtime's preview1 does (crates/carnac-cli/tests/
//! wasi_conformance.rs compares the two call by call).
//!
//! Like Wasmtime's, it traps instead of answering where the guest passed what
//! no errno describes: a pointer or length outside its memory (`FAULT` inside
//! this module) or a value outside an enum or flags type ([`Errno::INVALID_VALUE`]).
//! `proc_exit` and a module without memory trap too. Rights are reported, not
//! enforced (see [`crate::ctx::Desc`]).

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt, SystemTimeSpec};
use cap_std::fs::{Dir, MetadataExt, OpenOptions};
use carnac::{AsContextMut, Caller, Error, Extern, Linker, Trap, TrapKind};

use crate::ctx::{stream_of, Desc, DescRef, DirRef, FileRef, Kind, Stop, Stream, WasiCtx};
use crate::memory::{GuestMemory, MAX_RW};
use crate::types::*;
use crate::I32Exit;

const MODULE: &str = "wasi_snapshot_preview1";

type R = Result<(), Errno>;

/// The directory behind `fd` for the `path_*` calls and `fd_readdir`: any
/// other descriptor is `BADF`.
fn dir_of(ctx: &WasiCtx, fd: u32) -> Result<DirRef<'_>, Errno> {
    DirRef::new(ctx.get(fd)?)
}

/// A directory through which something will be created, changed or removed.
fn mutable_dir(ctx: &WasiCtx, fd: u32) -> Result<DirRef<'_>, Errno> {
    let dir = dir_of(ctx, fd)?;
    dir.desc().mutable()?;
    Ok(dir)
}

/// The regular file behind `fd`: any other descriptor is `BADF`.
fn file_of(ctx: &WasiCtx, fd: u32) -> Result<FileRef<'_>, Errno> {
    FileRef::new(ctx.get(fd)?)
}

/// The file behind a descriptor that supports positioned I/O: streams cannot seek.
fn seekable(d: &Desc) -> Result<&cap_std::fs::File, Errno> {
    match &d.kind {
        Kind::File(f) => Ok(f),
        Kind::Dir(_) => Err(Errno::BADF),
        _ => Err(Errno::SPIPE),
    }
}

/// `fd_sync` / `fd_datasync` (`data_only`): files only.
fn sync(ctx: &WasiCtx, fd: i32, data_only: bool) -> R {
    let f = file_of(ctx, fd as u32)?;
    if data_only {
        f.sync_data()?
    } else {
        f.sync_all()?
    }
    Ok(())
}

/// Whether a standard stream is a terminal: only then is it a character
/// device to the guest (wasi-libc's `isatty` asks exactly this).
fn is_terminal(kind: &Kind) -> bool {
    use std::io::IsTerminal;
    let inherit = stream_of(kind).is_some_and(|s| matches!(*s, Stream::Inherit));
    match kind {
        Kind::Stdin(_) if inherit => std::io::stdin().is_terminal(),
        Kind::Stdout(_) if inherit => std::io::stdout().is_terminal(),
        Kind::Stderr(_) if inherit => std::io::stderr().is_terminal(),
        _ => false,
    }
}

/// The rights `fd_fdstat_get` reports (base, inheriting), as Wasmtime computes
/// them: stdio can read or write, preopens can do every path operation, opened
/// files and directories everything their open mode allows. A read-only
/// preopen reports the same (as in Wasmtime), so that a program asking to
/// write learns `PERM` from the open itself.
fn reported_rights(d: &Desc) -> (u64, u64) {
    use rights::*;
    const ALL: u64 = (1 << 30) - 1;
    const PREOPEN: u64 = PATH_CREATE_DIRECTORY
        | PATH_CREATE_FILE
        | PATH_LINK_SOURCE
        | PATH_LINK_TARGET
        | PATH_OPEN
        | FD_READDIR
        | PATH_READLINK
        | PATH_RENAME_SOURCE
        | PATH_RENAME_TARGET
        | PATH_FILESTAT_GET
        | PATH_FILESTAT_SET_TIMES
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_TIMES
        | PATH_SYMLINK
        | PATH_REMOVE_DIRECTORY
        | PATH_UNLINK_FILE;
    const PREOPEN_INHERITING: u64 = PREOPEN | ((1 << 9) - 1) | FD_FILESTAT_SET_SIZE | POLL_FD_READWRITE;
    match &d.kind {
        Kind::Stdin(_) => (FD_READ, FD_READ),
        Kind::Stdout(_) | Kind::Stderr(_) => (FD_WRITE, FD_WRITE),
        Kind::Dir(_) if d.preopen.is_some() => (PREOPEN, PREOPEN_INHERITING),
        Kind::Dir(_) => {
            let r = ALL & !(FD_SEEK | FD_FILESTAT_SET_SIZE | PATH_FILESTAT_SET_SIZE | FD_WRITE);
            (r, r)
        }
        Kind::File(_) => {
            let mut r = ALL;
            if !d.read {
                r &= !(FD_READ | FD_READDIR);
            }
            if !d.write {
                r &= !FD_WRITE;
            }
            (r, r)
        }
        Kind::TcpListener(_) => (SOCK_LISTENER, SOCK_STREAM),
        Kind::TcpStream(_) => (SOCK_STREAM, 0),
    }
}

fn ns(t: rustix::time::Timespec) -> u64 {
    (t.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(t.tv_nsec as u64)
}

/// The host clock for a preview1 clock id. The process and thread CPU-time
/// clocks are `BADF`, as in Wasmtime: the host process's CPU time is shared by
/// every guest it runs (a function host's other requests), so it is not the
/// guest's to read. Ids beyond those four trap.
fn clock_id(id: u32) -> Result<rustix::time::ClockId, Errno> {
    use rustix::time::ClockId;
    Ok(match id {
        CLOCK_REALTIME => ClockId::Realtime,
        CLOCK_MONOTONIC => ClockId::Monotonic,
        CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => return Err(Errno::BADF),
        _ => return Err(Errno::INVALID_VALUE),
    })
}

fn filetype_of_mode(ft: rustix::fs::FileType) -> u8 {
    use rustix::fs::FileType as T;
    match ft {
        T::RegularFile => FILETYPE_REGULAR_FILE,
        T::Directory => FILETYPE_DIRECTORY,
        T::Symlink => FILETYPE_SYMBOLIC_LINK,
        T::CharacterDevice => FILETYPE_CHARACTER_DEVICE,
        T::BlockDevice => FILETYPE_BLOCK_DEVICE,
        T::Socket => FILETYPE_SOCKET_STREAM,
        _ => FILETYPE_UNKNOWN,
    }
}

fn filetype_of(ft: cap_std::fs::FileType) -> u8 {
    use cap_std::fs::FileTypeExt;
    if ft.is_dir() {
        FILETYPE_DIRECTORY
    } else if ft.is_symlink() {
        FILETYPE_SYMBOLIC_LINK
    } else if ft.is_file() {
        FILETYPE_REGULAR_FILE
    } else if ft.is_char_device() {
        FILETYPE_CHARACTER_DEVICE
    } else if ft.is_block_device() {
        FILETYPE_BLOCK_DEVICE
    } else if ft.is_socket() {
        FILETYPE_SOCKET_STREAM
    } else {
        FILETYPE_UNKNOWN
    }
}

/// A filestat record: dev, ino, filetype, nlink, size, atim, mtim, ctim.
struct Filestat([u64; 7], u8);

impl Filestat {
    fn from_stat(st: &rustix::fs::Stat) -> Filestat {
        let t = |s: i64, n: i64| (s as u64).wrapping_mul(1_000_000_000).wrapping_add(n as u64);
        Filestat(
            [
                st.st_dev,
                st.st_ino,
                st.st_nlink,
                st.st_size as u64,
                t(st.st_atime, st.st_atime_nsec as i64),
                t(st.st_mtime, st.st_mtime_nsec as i64),
                t(st.st_ctime, st.st_ctime_nsec as i64),
            ],
            filetype_of_mode(rustix::fs::FileType::from_raw_mode(st.st_mode)),
        )
    }

    fn from_metadata(m: &cap_std::fs::Metadata) -> Filestat {
        let t = |s: i64, n: i64| (s as u64).wrapping_mul(1_000_000_000).wrapping_add(n as u64);
        Filestat(
            [
                m.dev(),
                m.ino(),
                m.nlink(),
                m.len(),
                t(m.atime(), m.atime_nsec()),
                t(m.mtime(), m.mtime_nsec()),
                t(m.ctime(), m.ctime_nsec()),
            ],
            filetype_of(m.file_type()),
        )
    }

    fn write(&self, mem: &mut GuestMemory<'_>, ptr: u32) -> R {
        let [dev, ino, nlink, size, atim, mtim, ctim] = self.0;
        mem.slice_mut(ptr, 64)?.fill(0);
        mem.put_u64(ptr, dev)?;
        mem.put_u64(ptr + 8, ino)?;
        mem.put_u8(ptr + 16, self.1)?;
        mem.put_u64(ptr + 24, nlink)?;
        mem.put_u64(ptr + 32, size)?;
        mem.put_u64(ptr + 40, atim)?;
        mem.put_u64(ptr + 48, mtim)?;
        mem.put_u64(ptr + 56, ctim)
    }
}

fn time_spec(t: u64, set: bool, now: bool) -> Result<Option<SystemTimeSpec>, Errno> {
    match (set, now) {
        (true, true) => Err(Errno::INVAL),
        (true, false) => Ok(Some(SystemTimeSpec::Absolute(cap_std::time::SystemTime::from_std(
            UNIX_EPOCH + Duration::from_nanos(t),
        )))),
        (false, true) => Ok(Some(SystemTimeSpec::SymbolicNow)),
        (false, false) => Ok(None),
    }
}

fn timestamp(t: u64, set: bool, now: bool) -> Result<rustix::fs::Timespec, Errno> {
    match (set, now) {
        (true, true) => Err(Errno::INVAL),
        (true, false) => {
            Ok(rustix::fs::Timespec { tv_sec: (t / 1_000_000_000) as i64, tv_nsec: (t % 1_000_000_000) as _ })
        }
        (false, true) => Ok(rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_NOW }),
        (false, false) => Ok(rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT }),
    }
}

/// How long a blocking wait lasts before it looks at the store's interrupt flag again.
const SLICE: Duration = Duration::from_millis(10);

/// Waits until `fd` can be read without blocking (data, end of stream or an
/// error, which the read then reports), looking at the store's interrupt flag
/// every [`SLICE`]: an interrupted store (a deadline) ends the wait with `EINTR`;
/// the call then traps, or waits again if the deadline callback grants more
/// time. Without a handle nothing can interrupt the wait, so the read itself blocks.
fn wait_readable(stop: Option<&Stop>, fd: std::os::fd::BorrowedFd<'_>) -> R {
    let Some(stop) = stop else { return Ok(()) };
    let ts = rustix::time::Timespec { tv_sec: 0, tv_nsec: SLICE.as_nanos() as _ };
    loop {
        let mut pfd = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut pfd, Some(&ts)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => {}
            Ok(_) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if stop.now() {
            return Err(Errno::INTR);
        }
    }
}

fn read_stream(stream: &mut Stream, interrupt: Option<&Stop>, buf: &mut [u8]) -> Result<usize, Errno> {
    match stream {
        Stream::Inherit => {
            // Straight from descriptor 0, past std's buffer: what that buffer
            // held would be invisible to the wait.
            let stdin = std::io::stdin();
            wait_readable(interrupt, stdin.as_fd())?;
            Ok(rustix::io::read(stdin.as_fd(), buf)?)
        }
        Stream::Reader(r) => Ok(r.read(buf)?),
        Stream::Writer(_) => Err(Errno::BADF),
        Stream::Null => Ok(0),
    }
}

/// Writes the iovecs' bytes to a standard stream, each straight from guest
/// memory (no host copy); returns the bytes written, at most [`MAX_RW`].
fn write_stream(stream: &mut Stream, stderr: bool, mem: &GuestMemory<'_>, iovs: &[(u32, u32)]) -> Result<usize, Errno> {
    let put = |w: &mut dyn Write| -> Result<usize, Errno> {
        let mut total = 0;
        for &(buf, len) in iovs {
            let n = (len as usize).min(MAX_RW - total);
            w.write_all(mem.slice(buf, n as u32)?)?;
            total += n;
        }
        w.flush()?;
        Ok(total)
    };
    match stream {
        Stream::Inherit if stderr => put(&mut std::io::stderr().lock()),
        Stream::Inherit => put(&mut std::io::stdout().lock()),
        Stream::Writer(w) => put(w),
        Stream::Reader(_) => Err(Errno::BADF),
        Stream::Null => Ok(iovs.iter().map(|&(_, len)| len as usize).sum::<usize>().min(MAX_RW)),
    }
}

/// Writes the iovecs with one `writev` straight from guest memory; a short
/// write is returned as it is, as from POSIX `writev`.
fn writev(fd: impl AsFd, mem: &GuestMemory<'_>, iovs: &[(u32, u32)]) -> Result<usize, Errno> {
    Ok(rustix::io::writev(fd, &mem.io_slices(iovs)?)?)
}

/// Defines every `wasi_snapshot_preview1` function in `linker`; `get` finds the
/// [`WasiCtx`] inside the store's data.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + Copy + 'static,
) -> Result<(), Error> {
    macro_rules! wasi {
        (fn $name:ident($($arg:ident: $ty:ty),*) |$mem:ident, $ctx:ident| $body:block) => {
            linker.func_wrap(
                MODULE,
                stringify!($name),
                move |mut caller: Caller<'_, T>, $($arg: $ty),*| -> Result<i32, Trap> {
                    // Waits in the call look at the store's interrupt and epoch
                    // deadline through its probe (one per store: taken once).
                    let wasi = get(caller.data_mut());
                    wasi.wait_start = None;
                    if wasi.probe.is_none() {
                        let probe = caller.interrupt_probe();
                        get(caller.data_mut()).probe = probe;
                    }
                    // A wasi-threads program's memory is shared (not the store's own).
                    let memory = match caller.get_export("memory") {
                        Some(Extern::Memory(m)) => Ok(m),
                        Some(Extern::SharedMemory(m)) => Err(m),
                        _ => return Err(Trap::host(concat!(stringify!($name), ": the module exports no memory"))),
                    };
                    loop {
                        let (bytes, data) = match &memory {
                            Ok(m) => {
                                let (bytes, data) = m.data_and_store_tracked(caller.as_context_mut());
                                (GuestMemory::Owned(bytes), data)
                            }
                            Err(shared) => (GuestMemory::Shared(shared.data()), caller.data_mut()),
                        };
                        #[allow(unused_variables)]
                        let $ctx: &mut WasiCtx = get(data);
                        #[allow(unused_mut, unused_variables)]
                        let mut $mem = bytes;
                        #[allow(clippy::redundant_closure_call)]
                        let result: R = (|| $body)();
                        // A call that ends after the store was interrupted or reached its
                        // epoch deadline (a wait they cut short) does what the guest's
                        // next loop header would: trap, or run the deadline callback.
                        if $ctx.legacy_interrupted() {
                            return Err(Trap::new(TrapKind::Interrupted));
                        }
                        // `EINTR` with the store stopped: a wait cut short before the
                        // call did anything (every wait comes before its effect).
                        let cut_short = result == Err(Errno::INTR) && $ctx.stop().is_some_and(|s| s.now());
                        caller.check_interrupt()?;
                        if cut_short {
                            // The deadline callback granted more time (or the
                            // interrupt was cleared): the wait goes on, to its own
                            // end (`poll_oneoff` keeps its start in `wait_start`).
                            continue;
                        }
                        return match result {
                            Ok(()) => Ok(0),
                            Err(Errno::FAULT) => Err(Trap::host(concat!(
                                "wasi_snapshot_preview1::", stringify!($name), ": pointer or length out of bounds"
                            ))),
                            Err(Errno::INVALID_VALUE) => Err(Trap::host(concat!(
                                "wasi_snapshot_preview1::", stringify!($name), ": invalid enum or flags value"
                            ))),
                            Err(e) => Ok(e.0 as i32),
                        };
                    }
                },
            )?;
        };
    }

    // ---- args and environment ----
    wasi!(fn args_sizes_get(argc: i32, size: i32) |mem, ctx| {
        let args = &ctx.shared.args;
        mem.put_u32(argc as u32, args.len() as u32)?;
        mem.put_u32(size as u32, args.iter().map(|a| a.len() as u32 + 1).sum())
    });
    wasi!(fn args_get(argv: i32, buf: i32) |mem, ctx| {
        write_strings(&mut mem, &ctx.shared.args, argv as u32, buf as u32)
    });
    wasi!(fn environ_sizes_get(count: i32, size: i32) |mem, ctx| {
        let env = &ctx.shared.env;
        mem.put_u32(count as u32, env.len() as u32)?;
        mem.put_u32(size as u32, env.iter().map(|a| a.len() as u32 + 1).sum())
    });
    wasi!(fn environ_get(environ: i32, buf: i32) |mem, ctx| {
        write_strings(&mut mem, &ctx.shared.env, environ as u32, buf as u32)
    });

    // ---- clocks, randomness, scheduling ----
    wasi!(fn clock_res_get(id: i32, res: i32) |mem, ctx| {
        let id = clock_id(id as u32)?;
        mem.put_u64(res as u32, ns(rustix::time::clock_getres(id)).max(1))
    });
    wasi!(fn clock_time_get(id: i32, _precision: i64, time: i32) |mem, ctx| {
        let id = clock_id(id as u32)?;
        mem.put_u64(time as u32, ns(rustix::time::clock_gettime(id)))
    });
    wasi!(fn random_get(buf: i32, len: i32) |mem, ctx| {
        let mut out = mem.slice_mut(buf as u32, len as u32)?;
        while !out.is_empty() {
            let n = rustix::rand::getrandom(&mut *out, rustix::rand::GetRandomFlags::empty())?;
            out = &mut out[n..];
        }
        Ok(())
    });
    wasi!(fn sched_yield() |mem, ctx| {
        std::thread::yield_now();
        Ok(())
    });
    wasi!(fn proc_raise(_sig: i32) |mem, ctx| { Err(Errno::NOTSUP) });
    linker.func_wrap(MODULE, "proc_exit", |code: i32| -> Result<(), Trap> { Err(Trap::host_error(I32Exit(code))) })?;

    // ---- descriptors ----
    wasi!(fn fd_close(fd: i32) |mem, ctx| { ctx.close(fd as u32) });
    wasi!(fn fd_renumber(from: i32, to: i32) |mem, ctx| { ctx.renumber(from as u32, to as u32) });
    wasi!(fn fd_fdstat_get(fd: i32, buf: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        let (filetype, flags) = match &d.kind {
            k @ (Kind::Stdin(_) | Kind::Stdout(_) | Kind::Stderr(_)) => {
                (if is_terminal(k) { FILETYPE_CHARACTER_DEVICE } else { FILETYPE_UNKNOWN }, 0)
            }
            Kind::Dir(_) => (FILETYPE_DIRECTORY, 0),
            Kind::TcpListener(_) | Kind::TcpStream(_) => (FILETYPE_SOCKET_STREAM, d.flags()),
            Kind::File(f) => {
                let st = rustix::fs::fstat(f)?;
                (filetype_of_mode(rustix::fs::FileType::from_raw_mode(st.st_mode)), d.flags())
            }
        };
        let (base, inheriting) = reported_rights(&d);
        let ptr = buf as u32;
        mem.slice_mut(ptr, 24)?.fill(0);
        mem.put_u8(ptr, filetype)?;
        mem.put_u16(ptr + 2, flags)?;
        mem.put_u64(ptr + 8, base)?;
        mem.put_u64(ptr + 16, inheriting)
    });
    wasi!(fn fd_fdstat_set_flags(fd: i32, flags: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        let flags = flags as u32;
        if flags > 0x1f {
            return Err(Errno::INVALID_VALUE);
        }
        let flags = flags as u16;
        match &d.kind {
            Kind::File(f) => {
                if flags & (FDFLAGS_DSYNC | FDFLAGS_RSYNC | FDFLAGS_SYNC) != 0 {
                    return Err(Errno::INVAL);
                }
                // Appending is the kernel's (O_APPEND), so that every write lands
                // at the end even if another descriptor moved it.
                use rustix::fs::OFlags;
                let mut fl = rustix::fs::fcntl_getfl(f)? & OFlags::APPEND;
                fl.set(OFlags::APPEND, flags & FDFLAGS_APPEND != 0);
                rustix::fs::fcntl_setfl(f, fl)?;
            }
            Kind::TcpListener(l) => l.set_nonblocking(flags & FDFLAGS_NONBLOCK != 0)?,
            Kind::TcpStream(t) => t.set_nonblocking(flags & FDFLAGS_NONBLOCK != 0)?,
            _ => return Err(Errno::BADF),
        }
        d.fdflags.store(flags & (FDFLAGS_APPEND | FDFLAGS_NONBLOCK), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    });
    wasi!(fn fd_fdstat_set_rights(fd: i32, _base: i64, _inheriting: i64) |mem, ctx| {
        // Rights are not kept (see `Desc`), so there is nothing to narrow.
        match ctx.get(fd as u32)?.kind {
            Kind::File(_) | Kind::Dir(_) => Err(Errno::NOTSUP),
            _ => Err(Errno::BADF),
        }
    });
    wasi!(fn fd_prestat_get(fd: i32, buf: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        let name = d.preopen.as_ref().ok_or(Errno::BADF)?;
        let len = name.len() as u32;
        let mut prestat = [0u8; 8];
        prestat[4..].copy_from_slice(&len.to_le_bytes());
        mem.write(buf as u32, &prestat)
    });
    wasi!(fn fd_prestat_dir_name(fd: i32, path: i32, len: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        let name = d.preopen.as_ref().ok_or(Errno::NOTDIR)?;
        if (len as u32 as usize) < name.len() {
            return Err(Errno::NAMETOOLONG);
        }
        mem.write(path as u32, name.as_bytes())
    });
    wasi!(fn fd_filestat_get(fd: i32, buf: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        let st = match &d.kind {
            Kind::File(f) => Filestat::from_stat(&rustix::fs::fstat(f)?),
            Kind::Dir(dir) => Filestat::from_stat(&rustix::fs::fstat(dir)?),
            Kind::TcpListener(_) | Kind::TcpStream(_) => Filestat([0; 7], FILETYPE_SOCKET_STREAM),
            k => Filestat([0; 7], if is_terminal(k) { FILETYPE_CHARACTER_DEVICE } else { FILETYPE_UNKNOWN }),
        };
        st.write(&mut mem, buf as u32)
    });
    wasi!(fn fd_filestat_set_size(fd: i32, size: i64) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        let Kind::File(f) = &d.kind else { return Err(Errno::BADF) };
        d.mutable()?;
        Ok(f.set_len(size as u64)?)
    });
    wasi!(fn fd_filestat_set_times(fd: i32, atim: i64, mtim: i64, flags: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        if flags as u32 > 0xf {
            return Err(Errno::INVALID_VALUE);
        }
        let f = flags as u16;
        let times = rustix::fs::Timestamps {
            last_access: timestamp(atim as u64, f & FSTFLAGS_ATIM != 0, f & FSTFLAGS_ATIM_NOW != 0)?,
            last_modification: timestamp(mtim as u64, f & FSTFLAGS_MTIM != 0, f & FSTFLAGS_MTIM_NOW != 0)?,
        };
        match &d.kind {
            Kind::File(file) => {
                d.mutable()?;
                rustix::fs::futimens(file, &times)?
            }
            Kind::Dir(dir) => {
                d.mutable()?;
                rustix::fs::futimens(dir, &times)?
            }
            _ => return Err(Errno::BADF),
        }
        Ok(())
    });
    wasi!(fn fd_advise(fd: i32, offset: i64, len: i64, advice: i32) |mem, ctx| {
        let f = file_of(ctx, fd as u32)?;
        use rustix::fs::Advice;
        let advice = match advice {
            0 => Advice::Normal,
            1 => Advice::Sequential,
            2 => Advice::Random,
            3 => Advice::WillNeed,
            4 => Advice::DontNeed,
            5 => Advice::NoReuse,
            _ => return Err(Errno::INVALID_VALUE),
        };
        rustix::fs::fadvise(&*f, offset as u64, std::num::NonZeroU64::new(len as u64), advice)?;
        Ok(())
    });
    wasi!(fn fd_allocate(fd: i32, _offset: i64, _len: i64) |mem, ctx| {
        // As in Wasmtime: reserving disk space on a guest's word is refused.
        file_of(ctx, fd as u32)?;
        Err(Errno::NOTSUP)
    });
    wasi!(fn fd_datasync(fd: i32) |mem, ctx| { sync(ctx, fd, true) });
    wasi!(fn fd_sync(fd: i32) |mem, ctx| { sync(ctx, fd, false) });
    wasi!(fn fd_seek(fd: i32, offset: i64, whence: i32, newoffset: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        let mut f = seekable(&d)?;
        let pos = match whence as u8 {
            WHENCE_SET => SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::INVAL)?),
            WHENCE_CUR => SeekFrom::Current(offset),
            WHENCE_END => SeekFrom::End(offset),
            _ => return Err(Errno::INVALID_VALUE),
        };
        let new = f.seek(pos)?;
        mem.put_u64(newoffset as u32, new)
    });
    wasi!(fn fd_tell(fd: i32, offset: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        let mut f = seekable(&d)?;
        let pos = f.stream_position()?;
        mem.put_u64(offset as u32, pos)
    });
    wasi!(fn fd_read(fd: i32, iovs: i32, iovs_len: i32, nread: i32) |mem, ctx| {
        let iovs = mem.iovecs(iovs as u32, iovs_len as u32)?;
        let interrupt = ctx.stop();
        let d = ctx.get(fd as u32)?;
        let wait = if d.flags() & FDFLAGS_NONBLOCK == 0 { interrupt.as_ref() } else { None };
        let n = match &d.kind {
            Kind::File(f) => {
                let mut f: &cap_std::fs::File = f;
                mem.read_into(&iovs, false, |b, _| Ok(f.read(b)?))?
            }
            // Two threads reading stdin take turns (the lock is the stream's, not the table's).
            Kind::Stdin(s) => mem.read_into(&iovs, true, |b, _| read_stream(&mut crate::ctx::lock(s), wait, b))?,
            Kind::TcpStream(t) => {
                let mut t: &std::net::TcpStream = t;
                wait_readable(wait, t.as_fd())?;
                mem.read_into(&iovs, true, |b, _| Ok(t.read(b)?))?
            }
            _ => return Err(Errno::BADF),
        };
        mem.put_u32(nread as u32, n as u32)
    });
    wasi!(fn fd_pread(fd: i32, iovs: i32, iovs_len: i32, offset: i64, nread: i32) |mem, ctx| {
        let iovs = mem.iovecs(iovs as u32, iovs_len as u32)?;
        let d = ctx.get(fd as u32)?;
        let f = seekable(&d)?;
        let n = mem.read_into(&iovs, false, |b, done| {
            let at = (offset as u64).checked_add(done as u64).ok_or(Errno::INVAL)?;
            Ok(rustix::io::pread(f, b, at)?)
        })?;
        mem.put_u32(nread as u32, n as u32)
    });
    wasi!(fn fd_write(fd: i32, iovs: i32, iovs_len: i32, nwritten: i32) |mem, ctx| {
        let iovs = mem.iovecs(iovs as u32, iovs_len as u32)?;
        let d = ctx.get(fd as u32)?;
        let n = match &d.kind {
            Kind::File(f) => writev(f, &mem, &iovs)?,
            Kind::Stdout(s) => write_stream(&mut crate::ctx::lock(s), false, &mem, &iovs)?,
            Kind::Stderr(s) => write_stream(&mut crate::ctx::lock(s), true, &mem, &iovs)?,
            Kind::TcpStream(t) => writev(t, &mem, &iovs)?,
            _ => return Err(Errno::BADF),
        };
        mem.put_u32(nwritten as u32, n as u32)
    });
    wasi!(fn fd_pwrite(fd: i32, iovs: i32, iovs_len: i32, offset: i64, nwritten: i32) |mem, ctx| {
        let iovs = mem.iovecs(iovs as u32, iovs_len as u32)?;
        let d = ctx.get(fd as u32)?;
        let f = seekable(&d)?;
        let n = rustix::io::pwritev(f, &mem.io_slices(&iovs)?, offset as u64)?;
        mem.put_u32(nwritten as u32, n as u32)
    });
    wasi!(fn fd_readdir(fd: i32, buf: i32, buf_len: i32, cookie: i64, bufused: i32) |mem, ctx| {
        let dir = dir_of(ctx, fd as u32)?;
        let mut entries: Vec<(Vec<u8>, u64, u8)> = Vec::new();
        let here = dir.dir_metadata()?;
        entries.push((b".".to_vec(), here.ino(), FILETYPE_DIRECTORY));
        entries.push((b"..".to_vec(), 0, FILETYPE_DIRECTORY));
        let mut rest = Vec::new();
        for e in dir.entries()? {
            let e = e?;
            let ft = e.file_type()?;
            let ino = e.metadata().map(|m| m.ino()).unwrap_or(0);
            use std::os::unix::ffi::OsStrExt;
            rest.push((e.file_name().as_bytes().to_vec(), ino, filetype_of(ft)));
        }
        rest.sort();
        entries.extend(rest);
        let (buf, buf_len) = (buf as u32, buf_len as u32);
        mem.slice_mut(buf, buf_len)?;
        let mut used: u32 = 0;
        for (i, (name, ino, ty)) in entries.iter().enumerate().skip(cookie as u64 as usize) {
            let mut rec = Vec::with_capacity(24 + name.len());
            rec.extend_from_slice(&(i as u64 + 1).to_le_bytes());
            rec.extend_from_slice(&ino.to_le_bytes());
            rec.extend_from_slice(&(name.len() as u32).to_le_bytes());
            rec.extend_from_slice(&[*ty, 0, 0, 0]);
            rec.extend_from_slice(name);
            let n = (rec.len() as u32).min(buf_len - used);
            mem.write(buf + used, &rec[..n as usize])?;
            used += n;
            if used == buf_len {
                break;
            }
        }
        mem.put_u32(bufused as u32, used)
    });

    // ---- paths ----
    wasi!(fn path_create_directory(fd: i32, path: i32, len: i32) |mem, ctx| {
        let dir = mutable_dir(ctx, fd as u32)?;
        Ok(dir.create_dir(mem.str(path as u32, len as u32)?)?)
    });
    wasi!(fn path_remove_directory(fd: i32, path: i32, len: i32) |mem, ctx| {
        let dir = mutable_dir(ctx, fd as u32)?;
        Ok(dir.remove_dir(mem.str(path as u32, len as u32)?)?)
    });
    wasi!(fn path_unlink_file(fd: i32, path: i32, len: i32) |mem, ctx| {
        let dir = mutable_dir(ctx, fd as u32)?;
        Ok(dir.remove_file(mem.str(path as u32, len as u32)?)?)
    });
    wasi!(fn path_filestat_get(fd: i32, flags: i32, path: i32, len: i32, buf: i32) |mem, ctx| {
        let dir = dir_of(ctx, fd as u32)?;
        let path = mem.str(path as u32, len as u32)?;
        let m = if lookup_flags(flags)? {
            dir.metadata(path)?
        } else {
            dir.symlink_metadata(path)?
        };
        Filestat::from_metadata(&m).write(&mut mem, buf as u32)
    });
    wasi!(fn path_filestat_set_times(fd: i32, flags: i32, path: i32, len: i32, atim: i64, mtim: i64, fst: i32) |mem, ctx| {
        let dir = mutable_dir(ctx, fd as u32)?;
        let path = mem.str(path as u32, len as u32)?;
        let follow = lookup_flags(flags)?;
        if fst as u32 > 0xf {
            return Err(Errno::INVALID_VALUE);
        }
        let f = fst as u16;
        let a = time_spec(atim as u64, f & FSTFLAGS_ATIM != 0, f & FSTFLAGS_ATIM_NOW != 0)?;
        let m = time_spec(mtim as u64, f & FSTFLAGS_MTIM != 0, f & FSTFLAGS_MTIM_NOW != 0)?;
        if follow {
            dir.set_times(path, a, m)?;
        } else {
            dir.set_symlink_times(path, a, m)?;
        }
        Ok(())
    });
    wasi!(fn path_link(old_fd: i32, old_flags: i32, old_path: i32, old_len: i32, new_fd: i32, new_path: i32, new_len: i32) |mem, ctx| {
        let old_dir = dir_of(ctx, old_fd as u32)?;
        let new_dir = mutable_dir(ctx, new_fd as u32)?;
        let old = mem.str(old_path as u32, old_len as u32)?;
        let new = mem.str(new_path as u32, new_len as u32)?;
        if lookup_flags(old_flags)? {
            // Linking what a symlink points to is not offered (Wasmtime: INVAL).
            return Err(Errno::INVAL);
        }
        Ok(old_dir.hard_link(old, &new_dir, new)?)
    });
    wasi!(fn path_rename(fd: i32, old_path: i32, old_len: i32, new_fd: i32, new_path: i32, new_len: i32) |mem, ctx| {
        let old_dir = mutable_dir(ctx, fd as u32)?;
        let new_dir = mutable_dir(ctx, new_fd as u32)?;
        let old = mem.str(old_path as u32, old_len as u32)?;
        let new = mem.str(new_path as u32, new_len as u32)?;
        // A trailing slash on the new name says "a directory": it moves to the
        // old name, so that renaming a file to `x/` fails with NOTDIR (as in
        // Wasmtime) instead of creating a file `x`.
        match new.strip_suffix('/') {
            Some(stripped) if !stripped.is_empty() && !old.ends_with('/') => {
                Ok(old_dir.rename(format!("{old}/"), &new_dir, stripped)?)
            }
            _ => Ok(old_dir.rename(old, &new_dir, new)?),
        }
    });
    wasi!(fn path_symlink(old_path: i32, old_len: i32, fd: i32, new_path: i32, new_len: i32) |mem, ctx| {
        let dir = mutable_dir(ctx, fd as u32)?;
        let target = mem.str(old_path as u32, old_len as u32)?;
        let link = mem.str(new_path as u32, new_len as u32)?;
        // An absolute target is refused (PERM), as in Wasmtime: it could only
        // ever name something outside the sandbox. Following any link later is
        // confined to the preopen like any other path.
        Ok(dir.symlink(target, link)?)
    });
    wasi!(fn path_readlink(fd: i32, path: i32, len: i32, buf: i32, buf_len: i32, bufused: i32) |mem, ctx| {
        let dir = dir_of(ctx, fd as u32)?;
        // A link to an absolute path reads as PERM (Wasmtime too): it names the
        // host's file system, which the guest has no business seeing.
        let target = dir.read_link(mem.str(path as u32, len as u32)?)?;
        use std::os::unix::ffi::OsStrExt;
        let bytes = target.as_os_str().as_bytes();
        let n = bytes.len().min(buf_len as u32 as usize);
        mem.write(buf as u32, &bytes[..n])?;
        mem.put_u32(bufused as u32, n as u32)
    });
    wasi!(fn path_open(fd: i32, dirflags: i32, path: i32, len: i32, oflags: i32, base: i64, _inheriting: i64, fdflags: i32, opened: i32) |mem, ctx| {
        let parent = ctx.get(fd as u32)?;
        let dir = match &parent.kind {
            Kind::Dir(dir) => dir,
            Kind::File(_) => return Err(Errno::NOTDIR),
            _ => return Err(Errno::BADF),
        };
        let read_only = parent.read_only;
        let follow = lookup_flags(dirflags)?;
        let path = mem.str(path as u32, len as u32)?;
        if oflags as u32 > 0xf || fdflags as u32 > 0x1f {
            return Err(Errno::INVALID_VALUE);
        }
        let (oflags, fdflags, base) = (oflags as u16, fdflags as u16, base as u64);
        if fdflags & (FDFLAGS_DSYNC | FDFLAGS_RSYNC | FDFLAGS_SYNC) != 0 {
            return Err(Errno::NOTSUP);
        }
        let want_dir = oflags & OFLAGS_DIRECTORY != 0;
        if want_dir && oflags & (OFLAGS_CREAT | OFLAGS_EXCL | OFLAGS_TRUNC) != 0 {
            return Err(Errno::INVAL);
        }
        // The open mode, as Wasmtime chooses it: write if the rights ask for
        // FD_WRITE or the file is created or truncated; read if the rights ask
        // for FD_READ or do not ask for writing. Other rights (zero included)
        // change nothing.
        let write = base & rights::FD_WRITE != 0 || oflags & (OFLAGS_CREAT | OFLAGS_TRUNC) != 0;
        let read = base & rights::FD_READ != 0 || base & rights::FD_WRITE == 0;
        if write && read_only {
            return Err(Errno::PERM);
        }
        let append = fdflags & FDFLAGS_APPEND != 0;
        let mut opts = OpenOptions::new();
        opts.read(read)
            .write(write)
            .append(append && write)
            .truncate(oflags & OFLAGS_TRUNC != 0)
            .create(oflags & OFLAGS_CREAT != 0)
            .create_new(oflags & OFLAGS_CREAT != 0 && oflags & OFLAGS_EXCL != 0)
            .follow(if follow { FollowSymlinks::Yes } else { FollowSymlinks::No })
            .maybe_dir(!write);
        let file = dir.open_with(path, &opts)?;
        let is_dir = file.metadata()?.is_dir();
        let fdflags = fdflags & (FDFLAGS_APPEND | FDFLAGS_NONBLOCK);
        let desc = if is_dir {
            Desc { read, write: false, read_only, ..Desc::new(Kind::Dir(Dir::from_std_file(file.into_std()))) }
        } else {
            if want_dir {
                return Err(Errno::NOTDIR);
            }
            Desc { read, write, read_only, fdflags: fdflags.into(), ..Desc::new(Kind::File(file)) }
        };
        let new_fd = ctx.insert(desc)?;
        mem.put_u32(opened as u32, new_fd)
    });

    // ---- polling ----
    wasi!(fn poll_oneoff(input: i32, output: i32, nsubs: i32, nevents: i32) |mem, ctx| {
        poll_oneoff(&mut mem, ctx, input as u32, output as u32, nsubs as u32, nevents as u32)
    });

    // ---- sockets (preopened listeners and the streams they accept) ----
    wasi!(fn sock_accept(fd: i32, flags: i32, ro_fd: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        let Kind::TcpListener(l) = &d.kind else { return Err(Errno::NOTSOCK) };
        let flags = flags as u16;
        if flags & !FDFLAGS_NONBLOCK != 0 {
            return Err(Errno::INVAL);
        }
        if d.flags() & FDFLAGS_NONBLOCK == 0 {
            wait_readable(ctx.stop().as_ref(), l.as_fd())?;
        }
        let (stream, _) = l.accept()?;
        stream.set_nonblocking(flags & FDFLAGS_NONBLOCK != 0)?;
        let desc = Desc { write: true, fdflags: flags.into(), ..Desc::new(Kind::TcpStream(stream)) };
        let new_fd = ctx.insert(desc)?;
        mem.put_u32(ro_fd as u32, new_fd)
    });
    wasi!(fn sock_recv(fd: i32, ri: i32, ri_len: i32, ri_flags: i32, ro_len: i32, ro_flags: i32) |mem, ctx| {
        let iovs = mem.iovecs(ri as u32, ri_len as u32)?;
        let d = ctx.get(fd as u32)?;
        let Kind::TcpStream(t) = &d.kind else { return Err(Errno::NOTSOCK) };
        let flags = ri_flags as u16;
        let mut r: &std::net::TcpStream = t;
        let wait = || wait_readable(if d.flags() & FDFLAGS_NONBLOCK == 0 { ctx.stop() } else { None }.as_ref(), t.as_fd());
        wait()?;
        let n = if flags & RIFLAGS_RECV_PEEK != 0 {
            mem.read_into(&iovs, true, |b, _| Ok(t.peek(b)?))?
        } else if flags & RIFLAGS_RECV_WAITALL != 0 {
            // Every iovec filled, unless the stream ends.
            mem.read_into(&iovs, false, |b, _| {
                let mut got = 0;
                while got < b.len() {
                    // Cut short after some bytes, the call returns those (as
                    // POSIX `recv` interrupted by a signal does).
                    if got > 0 && wait().is_err() {
                        break;
                    }
                    match r.read(&mut b[got..])? {
                        0 => break,
                        k => got += k,
                    }
                }
                Ok(got)
            })?
        } else {
            mem.read_into(&iovs, true, |b, _| Ok(r.read(b)?))?
        };
        mem.put_u32(ro_len as u32, n as u32)?;
        mem.put_u16(ro_flags as u32, 0)
    });
    wasi!(fn sock_send(fd: i32, si: i32, si_len: i32, _si_flags: i32, so_len: i32) |mem, ctx| {
        let iovs = mem.iovecs(si as u32, si_len as u32)?;
        let d = ctx.get(fd as u32)?;
        let Kind::TcpStream(t) = &d.kind else { return Err(Errno::NOTSOCK) };
        let n = writev(t, &mem, &iovs)?;
        mem.put_u32(so_len as u32, n as u32)
    });
    wasi!(fn sock_shutdown(fd: i32, how: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        let Kind::TcpStream(t) = &d.kind else { return Err(Errno::NOTSOCK) };
        let how = match how as u8 {
            SDFLAGS_RD => std::net::Shutdown::Read,
            SDFLAGS_WR => std::net::Shutdown::Write,
            x if x == SDFLAGS_RD | SDFLAGS_WR => std::net::Shutdown::Both,
            _ => return Err(Errno::INVALID_VALUE),
        };
        Ok(t.shutdown(how)?)
    });
    Ok(())
}

/// Lookup flags: whether to follow a final symlink; unknown bits trap.
fn lookup_flags(flags: i32) -> Result<bool, Errno> {
    match flags as u32 {
        0 => Ok(false),
        LOOKUP_SYMLINK_FOLLOW => Ok(true),
        _ => Err(Errno::INVALID_VALUE),
    }
}

fn write_strings(mem: &mut GuestMemory<'_>, items: &[String], ptrs: u32, buf: u32) -> R {
    let mut at = buf;
    for (i, s) in items.iter().enumerate() {
        mem.put_u32(ptrs.checked_add(4 * i as u32).ok_or(Errno::FAULT)?, at)?;
        // The string and its NUL terminator, written in place (no copy).
        let len = u32::try_from(s.len() + 1).map_err(|_| Errno::FAULT)?;
        let dst = mem.slice_mut(at, len)?;
        dst[..s.len()].copy_from_slice(s.as_bytes());
        dst[s.len()] = 0;
        at = at.checked_add(len).ok_or(Errno::FAULT)?;
    }
    Ok(())
}

struct Event {
    userdata: u64,
    error: Errno,
    kind: u8,
    nbytes: u64,
}

/// The most subscriptions one `poll_oneoff` takes (more is `EINVAL`): the host
/// keeps a few words per subscription, which must not scale with guest memory.
const MAX_SUBSCRIPTIONS: u32 = 1 << 16;

/// `poll_oneoff`, with Wasmtime's answers to what it cannot wait on: no
/// subscriptions, an unknown event type or clock, or a CPU-time clock make the
/// whole call `INVAL`; a read subscription on anything but stdin, a file or a
/// socket (a write one: stdout, stderr, a file or a socket), or on a closed
/// descriptor, makes it `BADF`.
///
/// A wait that the store's deadline cut short and its callback let go on is
/// called again: relative timeouts still count from the first call's start
/// (`WasiCtx::wait_start`), so the guest sleeps as long as it asked.
fn poll_oneoff(mem: &mut GuestMemory<'_>, ctx: &mut WasiCtx, input: u32, output: u32, nsubs: u32, nevents: u32) -> R {
    if nsubs == 0 || nsubs > MAX_SUBSCRIPTIONS {
        return Err(Errno::INVAL);
    }
    mem.slice(input, nsubs.checked_mul(48).ok_or(Errno::FAULT)?)?;
    mem.slice(output, nsubs.checked_mul(32).ok_or(Errno::FAULT)?)?;
    let now_mono = Instant::now();
    let start = *ctx.wait_start.get_or_insert(now_mono);
    let ctx = &*ctx;
    let mut ready: Vec<Event> = Vec::new();
    let mut timeout: Option<(Instant, u64)> = None;
    // Host descriptors (stdin, sockets) whose readiness needs poll(2).
    let stdin = std::io::stdin();
    // The descriptors waited on, out of the table (whose lock is not held while waiting).
    let mut held: Vec<DescRef<'_>> = Vec::new();
    let mut pending: Vec<(usize, u64, u8)> = Vec::new();
    let mut stdin_waits: Vec<(u64, u8)> = Vec::new();
    for i in 0..nsubs {
        let s = input + i * 48;
        let userdata = mem.u64(s)?;
        match mem.u8(s + 8)? {
            EVENTTYPE_CLOCK => {
                let id = mem.u32(s + 16)?;
                let t = mem.u64(s + 24)?;
                let flags = mem.u16(s + 40)?;
                let clock = match id {
                    CLOCK_REALTIME | CLOCK_MONOTONIC => clock_id(id)?,
                    _ => return Err(Errno::INVAL),
                };
                let (from, delay) = if flags & SUBCLOCKFLAGS_ABSTIME != 0 {
                    let now = match id {
                        CLOCK_REALTIME => {
                            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
                        }
                        _ => ns(rustix::time::clock_gettime(clock)),
                    };
                    (now_mono, t.saturating_sub(now))
                } else {
                    (start, t)
                };
                // A deadline too far to represent is simply never reached.
                let Some(deadline) = from.checked_add(Duration::from_nanos(delay)) else { continue };
                if timeout.is_none_or(|(d, _)| deadline < d) {
                    timeout = Some((deadline, userdata));
                }
            }
            kind @ (EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE) => {
                let fd = mem.u32(s + 16)?;
                let d = ctx.get(fd)?;
                let inherit = stream_of(&d.kind).is_some_and(|s| matches!(*s, Stream::Inherit));
                match (&d.kind, kind) {
                    (Kind::Stdin(_), EVENTTYPE_FD_READ) if inherit => stdin_waits.push((userdata, kind)),
                    (Kind::Stdin(_), EVENTTYPE_FD_READ)
                    | (Kind::Stdout(_) | Kind::Stderr(_), EVENTTYPE_FD_WRITE)
                    | (Kind::File(_), EVENTTYPE_FD_WRITE) => {
                        ready.push(Event { userdata, error: Errno::SUCCESS, kind, nbytes: 1 })
                    }
                    (Kind::File(f), _) => {
                        let mut f: &cap_std::fs::File = f;
                        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                        let pos = f.stream_position().unwrap_or(0);
                        ready.push(Event { userdata, error: Errno::SUCCESS, kind, nbytes: len.saturating_sub(pos) });
                    }
                    (Kind::TcpListener(_) | Kind::TcpStream(_), _) => {
                        pending.push((held.len(), userdata, kind));
                        held.push(d);
                    }
                    _ => return Err(Errno::BADF),
                }
            }
            _ => return Err(Errno::INVAL),
        }
    }
    let mut wait_fds: Vec<(std::os::fd::BorrowedFd<'_>, u64, u8)> =
        stdin_waits.iter().map(|&(userdata, kind)| (stdin.as_fd(), userdata, kind)).collect();
    for &(i, userdata, kind) in &pending {
        let fd = match &held[i].kind {
            Kind::TcpListener(l) => l.as_fd(),
            Kind::TcpStream(t) => t.as_fd(),
            _ => return Err(Errno::BADF),
        };
        wait_fds.push((fd, userdata, kind));
    }
    // Wait in short slices, so that an interrupted store (or one past its epoch
    // deadline) ends the wait promptly, and the call with the interrupt trap.
    let stop = ctx.stop();
    let stopped = || stop.as_ref().is_some_and(Stop::now);
    loop {
        let left = timeout.map(|(d, _)| d.saturating_duration_since(Instant::now()));
        let slice = if !ready.is_empty() { Duration::ZERO } else { left.map_or(SLICE, |l| l.min(SLICE)) };
        if !wait_fds.is_empty() {
            let mut pfds: Vec<rustix::event::PollFd<'_>> = wait_fds
                .iter()
                .map(|(b, _, kind)| {
                    let flags = if *kind == EVENTTYPE_FD_READ {
                        rustix::event::PollFlags::IN
                    } else {
                        rustix::event::PollFlags::OUT
                    };
                    rustix::event::PollFd::new(b, flags)
                })
                .collect();
            let ts = rustix::time::Timespec { tv_sec: slice.as_secs() as i64, tv_nsec: slice.subsec_nanos() as _ };
            rustix::event::poll(&mut pfds, Some(&ts))?;
            for (p, (_, userdata, kind)) in pfds.iter().zip(&wait_fds) {
                if !p.revents().is_empty() {
                    ready.push(Event { userdata: *userdata, error: Errno::SUCCESS, kind: *kind, nbytes: 1 });
                }
            }
        } else if !slice.is_zero() {
            std::thread::sleep(slice);
        }
        let expired = left.is_some_and(|l| l <= slice);
        if !ready.is_empty() || expired || stopped() {
            break;
        }
    }
    if ready.is_empty() {
        if stopped() {
            return Err(Errno::INTR);
        }
        // The earliest clock fired.
        if let Some((_, userdata)) = timeout {
            ready.push(Event { userdata, error: Errno::SUCCESS, kind: EVENTTYPE_CLOCK, nbytes: 0 });
        }
    }
    for (i, e) in ready.iter().enumerate() {
        let o = output + i as u32 * 32;
        mem.slice_mut(o, 32)?.fill(0);
        mem.put_u64(o, e.userdata)?;
        mem.put_u16(o + 8, e.error.0)?;
        mem.put_u8(o + 10, e.kind)?;
        mem.put_u64(o + 16, e.nbytes)?;
    }
    mem.put_u32(nevents, ready.len() as u32)
}
