//! The `wasi_snapshot_preview1` functions. Each one checks the descriptor's kind
//! and rights, reads its arguments from guest memory through [`GuestMemory`], and
//! answers with an errno; only `proc_exit` (and a module without memory) traps.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cap_fs_ext::{
    DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt, OpenOptionsSyncExt, SystemTimeSpec,
};
use cap_std::fs::{Dir, MetadataExt, OpenOptions, OpenOptionsExt};
use carnac::{AsContextMut, Caller, Error, Extern, InterruptHandle, Linker, Trap, TrapKind};

use crate::ctx::{Desc, Kind, Stream, WasiCtx};
use crate::memory::{GuestMemory, MAX_RW};
use crate::types::*;
use crate::I32Exit;

const MODULE: &str = "wasi_snapshot_preview1";

type R = Result<(), Errno>;

fn dir_of(ctx: &WasiCtx, fd: u32, right: u64) -> Result<&Dir, Errno> {
    let d = ctx.get(fd)?;
    let Kind::Dir(dir) = &d.kind else { return Err(Errno::NOTDIR) };
    d.require(right)?;
    Ok(dir)
}

/// The regular file behind `fd`, when its rights include `right`.
fn file_of(ctx: &WasiCtx, fd: u32, right: u64) -> Result<&cap_std::fs::File, Errno> {
    let d = ctx.get(fd)?;
    let Kind::File(f) = &d.kind else { return Err(Errno::BADF) };
    d.require(right)?;
    Ok(f)
}

/// The file behind a descriptor that supports positioned I/O: streams cannot seek.
fn seekable(d: &Desc) -> Result<&cap_std::fs::File, Errno> {
    match &d.kind {
        Kind::File(f) => Ok(f),
        Kind::Dir(_) => Err(Errno::BADF),
        _ => Err(Errno::SPIPE),
    }
}

/// `fd_sync` / `fd_datasync` (`data_only`) of a file or directory with `right`.
fn sync(ctx: &WasiCtx, fd: i32, right: u64, data_only: bool) -> R {
    let d = ctx.get(fd as u32)?;
    d.require(right)?;
    match (&d.kind, data_only) {
        (Kind::File(f), true) => f.sync_data()?,
        (Kind::File(f), false) => f.sync_all()?,
        (Kind::Dir(dir), true) => rustix::fs::fdatasync(dir)?,
        (Kind::Dir(dir), false) => rustix::fs::fsync(dir)?,
        _ => return Err(Errno::INVAL),
    }
    Ok(())
}

fn ns(t: rustix::time::Timespec) -> u64 {
    (t.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(t.tv_nsec as u64)
}

fn clock_id(id: u32) -> Result<rustix::time::ClockId, Errno> {
    use rustix::time::ClockId;
    Ok(match id {
        CLOCK_REALTIME => ClockId::Realtime,
        CLOCK_MONOTONIC => ClockId::Monotonic,
        CLOCK_PROCESS_CPUTIME => ClockId::ProcessCPUTime,
        CLOCK_THREAD_CPUTIME => ClockId::ThreadCPUTime,
        _ => return Err(Errno::INVAL),
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
/// every [`SLICE`]: an interrupted store (a deadline) ends the wait with `EINTR`,
/// and the call with the interrupt trap. Without a handle nothing can interrupt
/// the wait, so the read itself blocks.
fn wait_readable(interrupt: Option<&InterruptHandle>, fd: std::os::fd::BorrowedFd<'_>) -> R {
    let Some(interrupt) = interrupt else { return Ok(()) };
    let ts = rustix::time::Timespec { tv_sec: 0, tv_nsec: SLICE.as_nanos() as _ };
    loop {
        let mut pfd = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut pfd, Some(&ts)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => {}
            Ok(_) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if interrupt.is_interrupted() {
            return Err(Errno::INTR);
        }
    }
}

fn read_stream(stream: &mut Stream, interrupt: Option<&InterruptHandle>, buf: &mut [u8]) -> Result<usize, Errno> {
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
                    let Some(memory) = caller.get_export("memory").and_then(Extern::into_memory) else {
                        return Err(Trap::host(concat!(stringify!($name), ": the module exports no memory")));
                    };
                    let (bytes, data) = memory.data_and_store_tracked(caller.as_context_mut());
                    #[allow(unused_variables)]
                    let $ctx: &mut WasiCtx = get(data);
                    #[allow(unused_mut, unused_variables)]
                    let mut $mem = GuestMemory(bytes);
                    #[allow(clippy::redundant_closure_call)]
                    let result: R = (|| $body)();
                    // A call that ends after the store was interrupted (a wait the
                    // deadline cut short) stops the guest with the same trap as a
                    // guest interrupted in a loop, instead of returning to it.
                    if $ctx.interrupted() {
                        return Err(Trap::new(TrapKind::Interrupted));
                    }
                    Ok(result.err().unwrap_or(Errno::SUCCESS).0 as i32)
                },
            )?;
        };
    }

    // ---- args and environment ----
    wasi!(fn args_sizes_get(argc: i32, size: i32) |mem, ctx| {
        mem.put_u32(argc as u32, ctx.args.len() as u32)?;
        mem.put_u32(size as u32, ctx.args.iter().map(|a| a.len() as u32 + 1).sum())
    });
    wasi!(fn args_get(argv: i32, buf: i32) |mem, ctx| {
        write_strings(&mut mem, &ctx.args, argv as u32, buf as u32)
    });
    wasi!(fn environ_sizes_get(count: i32, size: i32) |mem, ctx| {
        mem.put_u32(count as u32, ctx.env.len() as u32)?;
        mem.put_u32(size as u32, ctx.env.iter().map(|a| a.len() as u32 + 1).sum())
    });
    wasi!(fn environ_get(environ: i32, buf: i32) |mem, ctx| {
        write_strings(&mut mem, &ctx.env, environ as u32, buf as u32)
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
    wasi!(fn proc_raise(_sig: i32) |mem, ctx| { Err(Errno::NOSYS) });
    linker.func_wrap(MODULE, "proc_exit", |code: i32| -> Result<(), Trap> { Err(Trap::host_error(I32Exit(code))) })?;

    // ---- descriptors ----
    wasi!(fn fd_close(fd: i32) |mem, ctx| {
        let slot = ctx.fds.get_mut(fd as u32 as usize).ok_or(Errno::BADF)?;
        slot.take().map(drop).ok_or(Errno::BADF)
    });
    wasi!(fn fd_renumber(from: i32, to: i32) |mem, ctx| {
        let (from, to) = (from as u32, to as u32);
        ctx.get(from)?;
        ctx.get(to)?;
        if from != to {
            let d = ctx.fds[from as usize].take();
            ctx.fds[to as usize] = d;
        }
        Ok(())
    });
    wasi!(fn fd_fdstat_get(fd: i32, buf: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        let (filetype, flags) = match &d.kind {
            Kind::Stdin(_) | Kind::Stdout(_) | Kind::Stderr(_) => (FILETYPE_CHARACTER_DEVICE, d.fdflags),
            Kind::Dir(_) => (FILETYPE_DIRECTORY, d.fdflags),
            Kind::TcpListener(_) | Kind::TcpStream(_) => (FILETYPE_SOCKET_STREAM, d.fdflags),
            Kind::File(f) => {
                let st = rustix::fs::fstat(f)?;
                let fl = rustix::fs::fcntl_getfl(f)?;
                use rustix::fs::OFlags;
                let mut flags = d.fdflags;
                for (o, w) in [
                    (OFlags::APPEND, FDFLAGS_APPEND),
                    (OFlags::NONBLOCK, FDFLAGS_NONBLOCK),
                    (OFlags::DSYNC, FDFLAGS_DSYNC),
                    (OFlags::SYNC, FDFLAGS_SYNC),
                ] {
                    if fl.contains(o) {
                        flags |= w;
                    }
                }
                (filetype_of_mode(rustix::fs::FileType::from_raw_mode(st.st_mode)), flags)
            }
        };
        let (base, inheriting) = (d.base, d.inheriting);
        let ptr = buf as u32;
        mem.slice_mut(ptr, 24)?.fill(0);
        mem.put_u8(ptr, filetype)?;
        mem.put_u16(ptr + 2, flags)?;
        mem.put_u64(ptr + 8, base)?;
        mem.put_u64(ptr + 16, inheriting)
    });
    wasi!(fn fd_fdstat_set_flags(fd: i32, flags: i32) |mem, ctx| {
        let d = ctx.get_mut(fd as u32)?;
        d.require(rights::FD_FDSTAT_SET_FLAGS)?;
        let flags = flags as u16;
        if flags & !(FDFLAGS_APPEND | FDFLAGS_NONBLOCK | FDFLAGS_DSYNC | FDFLAGS_RSYNC | FDFLAGS_SYNC) != 0 {
            return Err(Errno::INVAL);
        }
        if flags & (FDFLAGS_DSYNC | FDFLAGS_RSYNC | FDFLAGS_SYNC) != 0 {
            // Linux cannot change synchronous I/O flags on an open file.
            return Err(Errno::NOTSUP);
        }
        match &d.kind {
            Kind::File(f) => {
                use rustix::fs::OFlags;
                let mut fl = rustix::fs::fcntl_getfl(f)? & (OFlags::APPEND | OFlags::NONBLOCK);
                fl.set(OFlags::APPEND, flags & FDFLAGS_APPEND != 0);
                fl.set(OFlags::NONBLOCK, flags & FDFLAGS_NONBLOCK != 0);
                rustix::fs::fcntl_setfl(f, fl)?;
            }
            Kind::TcpListener(l) => {
                l.set_nonblocking(flags & FDFLAGS_NONBLOCK != 0)?;
                d.fdflags = flags;
            }
            Kind::TcpStream(t) => {
                t.set_nonblocking(flags & FDFLAGS_NONBLOCK != 0)?;
                d.fdflags = flags;
            }
            _ => d.fdflags = flags,
        }
        Ok(())
    });
    wasi!(fn fd_fdstat_set_rights(fd: i32, base: i64, inheriting: i64) |mem, ctx| {
        let d = ctx.get_mut(fd as u32)?;
        let (base, inheriting) = (base as u64, inheriting as u64);
        if base & !d.base != 0 || inheriting & !d.inheriting != 0 {
            return Err(Errno::NOTCAPABLE);
        }
        d.base = base;
        d.inheriting = inheriting;
        Ok(())
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
        let name = d.preopen.as_ref().ok_or(Errno::BADF)?;
        if (len as u32 as usize) < name.len() {
            return Err(Errno::NAMETOOLONG);
        }
        mem.write(path as u32, name.as_bytes())
    });
    wasi!(fn fd_filestat_get(fd: i32, buf: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        d.require(rights::FD_FILESTAT_GET)?;
        let st = match &d.kind {
            Kind::File(f) => Filestat::from_stat(&rustix::fs::fstat(f)?),
            Kind::Dir(dir) => Filestat::from_stat(&rustix::fs::fstat(dir)?),
            _ => Filestat([0; 7], FILETYPE_CHARACTER_DEVICE),
        };
        st.write(&mut mem, buf as u32)
    });
    wasi!(fn fd_filestat_set_size(fd: i32, size: i64) |mem, ctx| {
        let f = file_of(ctx, fd as u32, rights::FD_FILESTAT_SET_SIZE)?;
        Ok(f.set_len(size as u64)?)
    });
    wasi!(fn fd_filestat_set_times(fd: i32, atim: i64, mtim: i64, flags: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        d.require(rights::FD_FILESTAT_SET_TIMES)?;
        let f = flags as u16;
        let times = rustix::fs::Timestamps {
            last_access: timestamp(atim as u64, f & FSTFLAGS_ATIM != 0, f & FSTFLAGS_ATIM_NOW != 0)?,
            last_modification: timestamp(mtim as u64, f & FSTFLAGS_MTIM != 0, f & FSTFLAGS_MTIM_NOW != 0)?,
        };
        match &d.kind {
            Kind::File(file) => rustix::fs::futimens(file, &times)?,
            Kind::Dir(dir) => rustix::fs::futimens(dir, &times)?,
            _ => return Err(Errno::BADF),
        }
        Ok(())
    });
    wasi!(fn fd_advise(fd: i32, offset: i64, len: i64, advice: i32) |mem, ctx| {
        let f = file_of(ctx, fd as u32, rights::FD_ADVISE)?;
        use rustix::fs::Advice;
        let advice = match advice {
            0 => Advice::Normal,
            1 => Advice::Sequential,
            2 => Advice::Random,
            3 => Advice::WillNeed,
            4 => Advice::DontNeed,
            5 => Advice::NoReuse,
            _ => return Err(Errno::INVAL),
        };
        rustix::fs::fadvise(f, offset as u64, std::num::NonZeroU64::new(len as u64), advice)?;
        Ok(())
    });
    wasi!(fn fd_allocate(fd: i32, offset: i64, len: i64) |mem, ctx| {
        let f = file_of(ctx, fd as u32, rights::FD_ALLOCATE)?;
        let end = (offset as u64).checked_add(len as u64).ok_or(Errno::FBIG)?;
        if end > f.metadata()?.len() {
            f.set_len(end)?;
        }
        Ok(())
    });
    wasi!(fn fd_datasync(fd: i32) |mem, ctx| { sync(ctx, fd, rights::FD_DATASYNC, true) });
    wasi!(fn fd_sync(fd: i32) |mem, ctx| { sync(ctx, fd, rights::FD_SYNC, false) });
    wasi!(fn fd_seek(fd: i32, offset: i64, whence: i32, newoffset: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        let mut f = seekable(d)?;
        let pos = match whence as u8 {
            WHENCE_SET => SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::INVAL)?),
            WHENCE_CUR => SeekFrom::Current(offset),
            WHENCE_END => SeekFrom::End(offset),
            _ => return Err(Errno::INVAL),
        };
        let right = if matches!(pos, SeekFrom::Current(0)) { rights::FD_TELL } else { rights::FD_SEEK };
        if d.require(right).is_err() {
            d.require(rights::FD_SEEK)?;
        }
        let new = f.seek(pos)?;
        mem.put_u64(newoffset as u32, new)
    });
    wasi!(fn fd_tell(fd: i32, offset: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        let mut f = seekable(d)?;
        d.require(rights::FD_TELL)?;
        let pos = f.stream_position()?;
        mem.put_u64(offset as u32, pos)
    });
    wasi!(fn fd_read(fd: i32, iovs: i32, iovs_len: i32, nread: i32) |mem, ctx| {
        let iovs = mem.iovecs(iovs as u32, iovs_len as u32)?;
        let interrupt = ctx.interrupt.clone();
        let d = ctx.get_mut(fd as u32)?;
        let allowed = d.require(rights::FD_READ);
        let wait = if d.fdflags & FDFLAGS_NONBLOCK == 0 { interrupt.as_ref() } else { None };
        let n = match &mut d.kind {
            Kind::File(f) => {
                allowed?;
                let mut f: &cap_std::fs::File = f;
                mem.read_into(&iovs, false, |b, _| Ok(f.read(b)?))?
            }
            Kind::Stdin(s) => mem.read_into(&iovs, true, |b, _| read_stream(s, wait, b))?,
            Kind::TcpStream(t) => {
                allowed?;
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
        let f = seekable(d)?;
        d.require(rights::FD_READ | rights::FD_SEEK)?;
        let n = mem.read_into(&iovs, false, |b, done| {
            let at = (offset as u64).checked_add(done as u64).ok_or(Errno::INVAL)?;
            Ok(rustix::io::pread(f, b, at)?)
        })?;
        mem.put_u32(nread as u32, n as u32)
    });
    wasi!(fn fd_write(fd: i32, iovs: i32, iovs_len: i32, nwritten: i32) |mem, ctx| {
        let iovs = mem.iovecs(iovs as u32, iovs_len as u32)?;
        let d = ctx.get_mut(fd as u32)?;
        let allowed = d.require(rights::FD_WRITE);
        let n = match &mut d.kind {
            Kind::File(f) => {
                allowed?;
                writev(&*f, &mem, &iovs)?
            }
            Kind::Stdout(s) => write_stream(s, false, &mem, &iovs)?,
            Kind::Stderr(s) => write_stream(s, true, &mem, &iovs)?,
            Kind::TcpStream(t) => {
                allowed?;
                writev(&*t, &mem, &iovs)?
            }
            _ => return Err(Errno::BADF),
        };
        mem.put_u32(nwritten as u32, n as u32)
    });
    wasi!(fn fd_pwrite(fd: i32, iovs: i32, iovs_len: i32, offset: i64, nwritten: i32) |mem, ctx| {
        let iovs = mem.iovecs(iovs as u32, iovs_len as u32)?;
        let d = ctx.get(fd as u32)?;
        let f = seekable(d)?;
        d.require(rights::FD_WRITE | rights::FD_SEEK)?;
        let n = rustix::io::pwritev(f, &mem.io_slices(&iovs)?, offset as u64)?;
        mem.put_u32(nwritten as u32, n as u32)
    });
    wasi!(fn fd_readdir(fd: i32, buf: i32, buf_len: i32, cookie: i64, bufused: i32) |mem, ctx| {
        let dir = dir_of(ctx, fd as u32, rights::FD_READDIR)?;
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
        let dir = dir_of(ctx, fd as u32, rights::PATH_CREATE_DIRECTORY)?;
        Ok(dir.create_dir(mem.str(path as u32, len as u32)?)?)
    });
    wasi!(fn path_remove_directory(fd: i32, path: i32, len: i32) |mem, ctx| {
        let dir = dir_of(ctx, fd as u32, rights::PATH_REMOVE_DIRECTORY)?;
        Ok(dir.remove_dir(mem.str(path as u32, len as u32)?)?)
    });
    wasi!(fn path_unlink_file(fd: i32, path: i32, len: i32) |mem, ctx| {
        let dir = dir_of(ctx, fd as u32, rights::PATH_UNLINK_FILE)?;
        Ok(dir.remove_file(mem.str(path as u32, len as u32)?)?)
    });
    wasi!(fn path_filestat_get(fd: i32, flags: i32, path: i32, len: i32, buf: i32) |mem, ctx| {
        let dir = dir_of(ctx, fd as u32, rights::PATH_FILESTAT_GET)?;
        let path = mem.str(path as u32, len as u32)?;
        let m = if flags as u32 & LOOKUP_SYMLINK_FOLLOW != 0 {
            dir.metadata(path)?
        } else {
            dir.symlink_metadata(path)?
        };
        Filestat::from_metadata(&m).write(&mut mem, buf as u32)
    });
    wasi!(fn path_filestat_set_times(fd: i32, flags: i32, path: i32, len: i32, atim: i64, mtim: i64, fst: i32) |mem, ctx| {
        let dir = dir_of(ctx, fd as u32, rights::PATH_FILESTAT_SET_TIMES)?;
        let path = mem.str(path as u32, len as u32)?;
        let f = fst as u16;
        let a = time_spec(atim as u64, f & FSTFLAGS_ATIM != 0, f & FSTFLAGS_ATIM_NOW != 0)?;
        let m = time_spec(mtim as u64, f & FSTFLAGS_MTIM != 0, f & FSTFLAGS_MTIM_NOW != 0)?;
        if flags as u32 & LOOKUP_SYMLINK_FOLLOW != 0 {
            dir.set_times(path, a, m)?;
        } else {
            dir.set_symlink_times(path, a, m)?;
        }
        Ok(())
    });
    wasi!(fn path_link(old_fd: i32, _old_flags: i32, old_path: i32, old_len: i32, new_fd: i32, new_path: i32, new_len: i32) |mem, ctx| {
        let old_dir = dir_of(ctx, old_fd as u32, rights::PATH_LINK_SOURCE)?;
        let new_dir = dir_of(ctx, new_fd as u32, rights::PATH_LINK_TARGET)?;
        let old = mem.str(old_path as u32, old_len as u32)?;
        let new = mem.str(new_path as u32, new_len as u32)?;
        Ok(old_dir.hard_link(old, new_dir, new)?)
    });
    wasi!(fn path_rename(fd: i32, old_path: i32, old_len: i32, new_fd: i32, new_path: i32, new_len: i32) |mem, ctx| {
        let old_dir = dir_of(ctx, fd as u32, rights::PATH_RENAME_SOURCE)?;
        let new_dir = dir_of(ctx, new_fd as u32, rights::PATH_RENAME_TARGET)?;
        let old = mem.str(old_path as u32, old_len as u32)?;
        let new = mem.str(new_path as u32, new_len as u32)?;
        Ok(old_dir.rename(old, new_dir, new)?)
    });
    wasi!(fn path_symlink(old_path: i32, old_len: i32, fd: i32, new_path: i32, new_len: i32) |mem, ctx| {
        let dir = dir_of(ctx, fd as u32, rights::PATH_SYMLINK)?;
        let target = mem.str(old_path as u32, old_len as u32)?;
        let link = mem.str(new_path as u32, new_len as u32)?;
        // The link's contents are stored as given; following it later is
        // confined to the preopen like any other path.
        Ok(dir.symlink_contents(target, link)?)
    });
    wasi!(fn path_readlink(fd: i32, path: i32, len: i32, buf: i32, buf_len: i32, bufused: i32) |mem, ctx| {
        let dir = dir_of(ctx, fd as u32, rights::PATH_READLINK)?;
        let target = dir.read_link_contents(mem.str(path as u32, len as u32)?)?;
        use std::os::unix::ffi::OsStrExt;
        let bytes = target.as_os_str().as_bytes();
        let n = bytes.len().min(buf_len as u32 as usize);
        mem.write(buf as u32, &bytes[..n])?;
        mem.put_u32(bufused as u32, n as u32)
    });
    wasi!(fn path_open(fd: i32, dirflags: i32, path: i32, len: i32, oflags: i32, base: i64, inheriting: i64, fdflags: i32, opened: i32) |mem, ctx| {
        let parent = ctx.get(fd as u32)?;
        let Kind::Dir(dir) = &parent.kind else { return Err(Errno::NOTDIR) };
        let (oflags, fdflags) = (oflags as u16, fdflags as u16);
        let mut need = rights::PATH_OPEN;
        if oflags & OFLAGS_CREAT != 0 {
            need |= rights::PATH_CREATE_FILE;
        }
        if oflags & OFLAGS_TRUNC != 0 {
            need |= rights::PATH_FILESTAT_SET_SIZE;
        }
        parent.require(need)?;
        let base = base as u64 & parent.inheriting;
        let inheriting = inheriting as u64 & parent.inheriting;
        let path = mem.str(path as u32, len as u32)?;
        let follow = if dirflags as u32 & LOOKUP_SYMLINK_FOLLOW != 0 { FollowSymlinks::Yes } else { FollowSymlinks::No };
        if fdflags & FDFLAGS_APPEND != 0 && base & rights::FD_WRITE == 0 {
            // Appending is writing: not without the right to write.
            return Err(Errno::NOTCAPABLE);
        }
        let want_dir = oflags & OFLAGS_DIRECTORY != 0;
        let write = base & (rights::FD_WRITE | rights::FD_ALLOCATE | rights::FD_FILESTAT_SET_SIZE) != 0
            || fdflags & FDFLAGS_APPEND != 0
            || oflags & OFLAGS_TRUNC != 0;
        if want_dir && (write || oflags & (OFLAGS_CREAT | OFLAGS_TRUNC) != 0) {
            return Err(if oflags & OFLAGS_CREAT != 0 { Errno::INVAL } else { Errno::ISDIR });
        }
        let mut opts = OpenOptions::new();
        opts.read(!write || base & rights::FD_READ != 0)
            .write(write)
            .append(fdflags & FDFLAGS_APPEND != 0)
            .truncate(oflags & OFLAGS_TRUNC != 0)
            .create(oflags & OFLAGS_CREAT != 0)
            .create_new(oflags & OFLAGS_CREAT != 0 && oflags & OFLAGS_EXCL != 0)
            .follow(follow)
            .maybe_dir(!write)
            .dsync(fdflags & FDFLAGS_DSYNC != 0)
            .sync(fdflags & FDFLAGS_SYNC != 0)
            .rsync(fdflags & FDFLAGS_RSYNC != 0);
        if fdflags & FDFLAGS_NONBLOCK != 0 {
            opts.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
        }
        let file = dir.open_with(path, &opts)?;
        let is_dir = file.metadata()?.is_dir();
        let desc = if is_dir {
            Desc {
                kind: Kind::Dir(Dir::from_std_file(file.into_std())),
                base: base & rights::DIR,
                inheriting,
                preopen: None,
                fdflags: 0,
            }
        } else {
            if want_dir {
                return Err(Errno::NOTDIR);
            }
            Desc { kind: Kind::File(file), base: base & rights::FILE, inheriting: 0, preopen: None, fdflags: 0 }
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
        d.require(rights::SOCK_ACCEPT)?;
        let flags = flags as u16;
        if flags & !FDFLAGS_NONBLOCK != 0 {
            return Err(Errno::INVAL);
        }
        let inheriting = d.inheriting;
        if d.fdflags & FDFLAGS_NONBLOCK == 0 {
            wait_readable(ctx.interrupt.as_ref(), l.as_fd())?;
        }
        let (stream, _) = l.accept()?;
        stream.set_nonblocking(flags & FDFLAGS_NONBLOCK != 0)?;
        let new_fd = ctx.insert(Desc {
            kind: Kind::TcpStream(stream),
            base: rights::SOCK_STREAM & inheriting,
            inheriting: 0,
            preopen: None,
            fdflags: flags,
        })?;
        mem.put_u32(ro_fd as u32, new_fd)
    });
    wasi!(fn sock_recv(fd: i32, ri: i32, ri_len: i32, ri_flags: i32, ro_len: i32, ro_flags: i32) |mem, ctx| {
        let iovs = mem.iovecs(ri as u32, ri_len as u32)?;
        let d = ctx.get(fd as u32)?;
        let Kind::TcpStream(t) = &d.kind else { return Err(Errno::NOTSOCK) };
        d.require(rights::FD_READ)?;
        let flags = ri_flags as u16;
        let mut r: &std::net::TcpStream = t;
        let wait = || wait_readable(if d.fdflags & FDFLAGS_NONBLOCK == 0 { ctx.interrupt.as_ref() } else { None }, t.as_fd());
        wait()?;
        let n = if flags & RIFLAGS_RECV_PEEK != 0 {
            mem.read_into(&iovs, true, |b, _| Ok(t.peek(b)?))?
        } else if flags & RIFLAGS_RECV_WAITALL != 0 {
            // Every iovec filled, unless the stream ends.
            mem.read_into(&iovs, false, |b, _| {
                let mut got = 0;
                while got < b.len() {
                    if got > 0 {
                        wait()?;
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
        d.require(rights::FD_WRITE)?;
        let n = writev(t, &mem, &iovs)?;
        mem.put_u32(so_len as u32, n as u32)
    });
    wasi!(fn sock_shutdown(fd: i32, how: i32) |mem, ctx| {
        let d = ctx.get(fd as u32)?;
        let Kind::TcpStream(t) = &d.kind else { return Err(Errno::NOTSOCK) };
        d.require(rights::SOCK_SHUTDOWN)?;
        let how = match how as u8 {
            SDFLAGS_RD => std::net::Shutdown::Read,
            SDFLAGS_WR => std::net::Shutdown::Write,
            x if x == SDFLAGS_RD | SDFLAGS_WR => std::net::Shutdown::Both,
            _ => return Err(Errno::INVAL),
        };
        Ok(t.shutdown(how)?)
    });
    Ok(())
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

fn poll_oneoff(mem: &mut GuestMemory<'_>, ctx: &WasiCtx, input: u32, output: u32, nsubs: u32, nevents: u32) -> R {
    if nsubs == 0 || nsubs > MAX_SUBSCRIPTIONS {
        return Err(Errno::INVAL);
    }
    mem.slice(input, nsubs.checked_mul(48).ok_or(Errno::FAULT)?)?;
    mem.slice(output, nsubs.checked_mul(32).ok_or(Errno::FAULT)?)?;
    let now_mono = Instant::now();
    let mut ready: Vec<Event> = Vec::new();
    let mut timeout: Option<(Instant, u64)> = None;
    // Host descriptors (stdin, sockets) whose readiness needs poll(2).
    let stdin = std::io::stdin();
    let mut wait_fds: Vec<(std::os::fd::BorrowedFd<'_>, u64, u8)> = Vec::new();
    for i in 0..nsubs {
        let s = input + i * 48;
        let userdata = mem.u64(s)?;
        match mem.u8(s + 8)? {
            EVENTTYPE_CLOCK => {
                let id = mem.u32(s + 16)?;
                let t = mem.u64(s + 24)?;
                let flags = mem.u16(s + 40)?;
                let delay = if flags & SUBCLOCKFLAGS_ABSTIME != 0 {
                    let now = match id {
                        CLOCK_REALTIME => {
                            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
                        }
                        _ => ns(rustix::time::clock_gettime(clock_id(id).unwrap_or(rustix::time::ClockId::Monotonic))),
                    };
                    t.saturating_sub(now)
                } else {
                    clock_id(id).map(|_| t).unwrap_or(0)
                };
                if clock_id(id).is_err() {
                    ready.push(Event { userdata, error: Errno::INVAL, kind: EVENTTYPE_CLOCK, nbytes: 0 });
                    continue;
                }
                // A deadline too far to represent is simply never reached.
                let Some(deadline) = now_mono.checked_add(Duration::from_nanos(delay)) else { continue };
                if timeout.is_none_or(|(d, _)| deadline < d) {
                    timeout = Some((deadline, userdata));
                }
            }
            kind @ (EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE) => {
                let fd = mem.u32(s + 16)?;
                match ctx.get(fd) {
                    Err(e) => ready.push(Event { userdata, error: e, kind, nbytes: 0 }),
                    Ok(d) => match (&d.kind, kind) {
                        (Kind::Stdin(Stream::Inherit), EVENTTYPE_FD_READ) => {
                            wait_fds.push((stdin.as_fd(), userdata, kind))
                        }
                        (Kind::TcpListener(l), _) => wait_fds.push((l.as_fd(), userdata, kind)),
                        (Kind::TcpStream(t), _) => wait_fds.push((t.as_fd(), userdata, kind)),
                        (Kind::File(f), EVENTTYPE_FD_READ) => {
                            let mut f: &cap_std::fs::File = f;
                            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                            let pos = f.stream_position().unwrap_or(0);
                            ready.push(Event {
                                userdata,
                                error: Errno::SUCCESS,
                                kind,
                                nbytes: len.saturating_sub(pos),
                            });
                        }
                        (Kind::Dir(_), _) => ready.push(Event { userdata, error: Errno::BADF, kind, nbytes: 0 }),
                        _ => ready.push(Event { userdata, error: Errno::SUCCESS, kind, nbytes: 0 }),
                    },
                }
            }
            _ => ready.push(Event { userdata, error: Errno::INVAL, kind: 0, nbytes: 0 }),
        }
    }
    // Wait in short slices, so that an interrupted store (a deadline) ends the
    // wait promptly, and the call with the interrupt trap.
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
        if !ready.is_empty() || expired || ctx.interrupted() {
            break;
        }
    }
    if ready.is_empty() {
        if ctx.interrupted() {
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
