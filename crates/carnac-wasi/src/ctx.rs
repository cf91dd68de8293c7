//! The WASI state: arguments, environment and the descriptor table (stdio,
//! preopened directories and what the guest opened through them), shared by
//! every thread of one program, and the per-store part (the store's interrupt
//! probe, the current call's wait) that each thread's store keeps for itself.
//!
//! A single-threaded program's context owns its descriptor table: no lock, no
//! reference counts ([`Fds::Local`]). [`WasiCtx::share`] (the first spawned
//! thread) moves the table behind one lock shared by every store of the
//! program ([`Fds::Shared`]), held only to look a descriptor up, install or
//! remove one: a call takes its descriptor out as an [`Arc<Desc>`] and does its
//! work (a write, a read blocked on stdin or a socket, a `poll_oneoff` sleep)
//! after the lock is released, so one thread's wait never stalls another
//! thread's calls. What a descriptor changes in place is behind its own small
//! lock (a standard stream) or atomic (its flags).

use std::io::{Read, Write};
use std::ops::Deref;
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, File};

use crate::types::Errno;

/// Where a standard stream goes.
pub enum Stream {
    /// The host process's own stdin/stdout/stderr.
    Inherit,
    /// Reads from this source (stdin only).
    Reader(Box<dyn Read + Send>),
    /// Writes to this sink (stdout/stderr only).
    Writer(Box<dyn Write + Send>),
    /// Nothing: reads see end of file, writes are discarded.
    Null,
}

/// What a descriptor is. A standard stream sits behind its own lock: writing to
/// it (or reading from it) needs the stream itself, and two threads writing to
/// stdout take turns per call, as two `write(2)`s do.
pub(crate) enum Kind {
    Stdin(Mutex<Stream>),
    Stdout(Mutex<Stream>),
    Stderr(Mutex<Stream>),
    File(File),
    Dir(Dir),
    TcpListener(std::net::TcpListener),
    TcpStream(std::net::TcpStream),
}

/// One guest descriptor.
///
/// Preview1's rights are not enforced, as in Wasmtime: what a descriptor can
/// do follows from its kind, the mode its file was opened in (the host kernel
/// refuses a write to a file opened for reading), and `read_only`. `fd_fdstat_get`
/// reports rights computed from those.
pub(crate) struct Desc {
    pub kind: Kind,
    /// The guest path of a preopened directory.
    pub preopen: Option<String>,
    /// The descriptor flags preview1 keeps itself (`APPEND`, `NONBLOCK`):
    /// `fd_fdstat_set_flags` changes them while other threads may hold the descriptor.
    pub fdflags: AtomicU16,
    /// A file: opened for reading / for writing.
    pub read: bool,
    pub write: bool,
    /// Reached through a read-only preopen: nothing may be created, changed or
    /// removed through it (`PERM`).
    pub read_only: bool,
}

impl Desc {
    pub fn new(kind: Kind) -> Desc {
        Desc { kind, preopen: None, fdflags: AtomicU16::new(0), read: true, write: false, read_only: false }
    }

    /// The descriptor's flags (`APPEND`, `NONBLOCK`).
    pub fn flags(&self) -> u16 {
        self.fdflags.load(Ordering::Relaxed)
    }

    /// `PERM` if the descriptor was reached through a read-only preopen.
    pub fn mutable(&self) -> Result<(), Errno> {
        if self.read_only {
            Err(Errno::PERM)
        } else {
            Ok(())
        }
    }
}

/// A lock that a panic elsewhere cannot poison for the guest: what it guards is
/// left consistent by every holder (each update is one assignment).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The standard stream inside a descriptor of that kind, locked.
pub(crate) fn stream_of(kind: &Kind) -> Option<MutexGuard<'_, Stream>> {
    match kind {
        Kind::Stdin(s) | Kind::Stdout(s) | Kind::Stderr(s) => Some(lock(s)),
        _ => None,
    }
}

/// What the threads of one program share and never change: arguments and
/// environment.
pub(crate) struct Shared {
    pub args: Vec<String>,
    pub env: Vec<String>,
}

/// The descriptor table.
pub(crate) enum Fds {
    /// One store's own (no other store shares it).
    Local(Vec<Option<Desc>>),
    /// Shared by the stores of a threaded program.
    Shared(Arc<Mutex<Vec<Option<Arc<Desc>>>>>),
}

/// A descriptor for the length of a call: borrowed from a store's own table,
/// or taken out of the shared one.
pub(crate) enum DescRef<'a> {
    Local(&'a Desc),
    Shared(Arc<Desc>),
}

impl Deref for DescRef<'_> {
    type Target = Desc;
    #[inline]
    fn deref(&self) -> &Desc {
        match self {
            DescRef::Local(d) => d,
            DescRef::Shared(d) => d,
        }
    }
}

/// WASI preview1 state for one store: the program's shared state (see
/// [`WasiCtx::share`]) and what belongs to this store alone.
pub struct WasiCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) fds: Fds,
    /// The program's thread group when it runs with wasi-threads.
    pub(crate) threads: Option<Arc<crate::threads::Group>>,
    /// A handle given with the deprecated [`WasiCtx::set_interrupt`].
    pub(crate) interrupt: Option<carnac::InterruptHandle>,
    /// The store's interrupt probe, taken at the first call (a `WasiCtx` serves one store).
    pub(crate) probe: Option<carnac::InterruptProbe>,
    /// When the current call's `poll_oneoff` wait began, kept while the wait
    /// is resumed after the deadline callback granted more time (cleared at
    /// the start of every call).
    pub(crate) wait_start: Option<std::time::Instant>,
}

/// What ends a wait inside a WASI call: the store's interrupt or epoch deadline.
#[derive(Clone)]
pub(crate) struct Stop {
    probe: Option<carnac::InterruptProbe>,
    legacy: Option<carnac::InterruptHandle>,
}

impl Stop {
    pub(crate) fn now(&self) -> bool {
        self.probe.as_ref().is_some_and(|p| p.is_interrupted())
            || self.legacy.as_ref().is_some_and(|h| h.is_interrupted())
    }
}

impl WasiCtx {
    /// Formerly needed for waits inside WASI calls to end when the store is
    /// interrupted. They now do by themselves: every wait (`poll_oneoff`, reads
    /// of inherited stdin and of blocking sockets, `sock_accept`) looks at the
    /// store's interrupt flag and epoch deadline through
    /// [`carnac::Caller::interrupt_probe`], and a call whose wait they cut short
    /// ends as the guest would at a loop header
    /// ([`carnac::Caller::check_interrupt`]: the `Interrupted` trap, or the
    /// epoch deadline callback's decision; when the callback grants more time
    /// the wait goes on until its own end, the callback running again at each
    /// new deadline). A handle given here is still honoured (it may be another
    /// store's).
    #[deprecated(note = "WASI waits see the store's interrupt and epoch deadline without it")]
    pub fn set_interrupt(&mut self, handle: carnac::InterruptHandle) {
        self.interrupt = Some(handle);
    }

    /// What ends waits in this call, if anything can.
    pub(crate) fn stop(&self) -> Option<Stop> {
        (self.probe.is_some() || self.interrupt.is_some())
            .then(|| Stop { probe: self.probe.clone(), legacy: self.interrupt.clone() })
    }

    /// Whether the deprecated [`WasiCtx::set_interrupt`] handle was interrupted.
    pub(crate) fn legacy_interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|h| h.is_interrupted())
    }

    pub fn builder() -> WasiCtxBuilder {
        WasiCtxBuilder::default()
    }

    /// A context for another store of the same program (a thread of it): it
    /// shares this one's arguments, environment and descriptor table (a file
    /// one thread opens is usable by the others, stdout is one stream), and
    /// has its own interrupt probe and wait state. The first call moves this
    /// context's table behind a lock (until then it needs none).
    pub fn share(&mut self) -> WasiCtx {
        let table = match &mut self.fds {
            Fds::Shared(t) => t.clone(),
            Fds::Local(v) => {
                let t = Arc::new(Mutex::new(std::mem::take(v).into_iter().map(|d| d.map(Arc::new)).collect()));
                self.fds = Fds::Shared(t.clone());
                t
            }
        };
        WasiCtx {
            shared: self.shared.clone(),
            fds: Fds::Shared(table),
            threads: self.threads.clone(),
            interrupt: None,
            probe: None,
            wait_start: None,
        }
    }

    /// Takes back the stream given as stdin (the guest then reads end of
    /// file), e.g. to reuse a reader after the call. `None` once taken, or if
    /// the guest renumbered or closed descriptor 0.
    pub fn take_stdin(&mut self) -> Option<Stream> {
        self.take_stream(0)
    }

    /// Takes back the stream given as stdout (the guest's later writes are
    /// discarded), e.g. to flush or inspect a writer after the call.
    pub fn take_stdout(&mut self) -> Option<Stream> {
        self.take_stream(1)
    }

    /// Takes back the stream given as stderr, like [`WasiCtx::take_stdout`].
    pub fn take_stderr(&mut self) -> Option<Stream> {
        self.take_stream(2)
    }

    fn take_stream(&mut self, fd: u32) -> Option<Stream> {
        let desc = self.get(fd).ok()?;
        let mut slot = stream_of(&desc.kind)?;
        match std::mem::replace(&mut *slot, Stream::Null) {
            Stream::Null => None,
            s => Some(s),
        }
    }

    /// The descriptor `fd` (out of a shared table, whose lock is released on return).
    #[inline]
    pub(crate) fn get(&self, fd: u32) -> Result<DescRef<'_>, Errno> {
        let fd = fd as usize;
        match &self.fds {
            Fds::Local(v) => v.get(fd).and_then(Option::as_ref).map(DescRef::Local),
            Fds::Shared(t) => lock(t).get(fd).and_then(Option::clone).map(DescRef::Shared),
        }
        .ok_or(Errno::BADF)
    }

    /// Installs a descriptor in the lowest free slot.
    pub(crate) fn insert(&mut self, desc: Desc) -> Result<u32, Errno> {
        fn put<D>(fds: &mut Vec<Option<D>>, d: D) -> Result<u32, Errno> {
            if let Some(i) = fds.iter().position(Option::is_none) {
                fds[i] = Some(d);
                return Ok(i as u32);
            }
            if fds.len() >= MAX_FDS {
                return Err(Errno::MFILE);
            }
            fds.push(Some(d));
            Ok(fds.len() as u32 - 1)
        }
        match &mut self.fds {
            Fds::Local(v) => put(v, desc),
            Fds::Shared(t) => put(&mut lock(t), Arc::new(desc)),
        }
    }

    /// Closes `fd` (`BADF` if it is not open). The descriptor is dropped after
    /// the lock is released: closing a file can take a while, and another
    /// thread's call may still hold it (it closes when that call ends).
    pub(crate) fn close(&mut self, fd: u32) -> Result<(), Errno> {
        let fd = fd as usize;
        match &mut self.fds {
            Fds::Local(v) => v.get_mut(fd).and_then(Option::take).map(drop),
            Fds::Shared(t) => {
                let closed = lock(t).get_mut(fd).and_then(Option::take);
                closed.map(drop)
            }
        }
        .ok_or(Errno::BADF)
    }

    /// `fd_renumber`: moves `from` to `to`, closing what `to` was.
    pub(crate) fn renumber(&mut self, from: u32, to: u32) -> Result<(), Errno> {
        fn renumber<D>(fds: &mut [Option<D>], from: usize, to: usize) -> Result<Option<D>, Errno> {
            if fds.get(from).and_then(Option::as_ref).is_none() || fds.get(to).and_then(Option::as_ref).is_none() {
                return Err(Errno::BADF);
            }
            if from == to {
                return Ok(None);
            }
            let d = fds[from].take();
            Ok(std::mem::replace(&mut fds[to], d))
        }
        let (from, to) = (from as usize, to as usize);
        match &mut self.fds {
            Fds::Local(v) => renumber(v, from, to).map(drop),
            Fds::Shared(t) => {
                let replaced = renumber(&mut lock(t), from, to);
                replaced.map(drop)
            }
        }
    }
}

/// A descriptor known to be a directory (`dir_of` and its kin check it).
pub(crate) struct DirRef<'a>(DescRef<'a>);

impl<'a> DirRef<'a> {
    pub fn new(d: DescRef<'a>) -> Result<DirRef<'a>, Errno> {
        match d.kind {
            Kind::Dir(_) => Ok(DirRef(d)),
            _ => Err(Errno::BADF),
        }
    }

    pub fn desc(&self) -> &Desc {
        &self.0
    }
}

impl Deref for DirRef<'_> {
    type Target = Dir;
    fn deref(&self) -> &Dir {
        match &self.0.kind {
            Kind::Dir(d) => d,
            _ => unreachable!("DirRef::new accepts directories only"),
        }
    }
}

/// A descriptor known to be a regular file.
pub(crate) struct FileRef<'a>(DescRef<'a>);

impl<'a> FileRef<'a> {
    pub fn new(d: DescRef<'a>) -> Result<FileRef<'a>, Errno> {
        match d.kind {
            Kind::File(_) => Ok(FileRef(d)),
            _ => Err(Errno::BADF),
        }
    }
}

impl Deref for FileRef<'_> {
    type Target = File;
    fn deref(&self) -> &File {
        match &self.0.kind {
            Kind::File(f) => f,
            _ => unreachable!("FileRef::new accepts files only"),
        }
    }
}

/// The most descriptors one guest may hold open.
const MAX_FDS: usize = 1024;

/// Builds a [`WasiCtx`]: the guest sees exactly what is granted here.
#[derive(Default)]
pub struct WasiCtxBuilder {
    args: Vec<String>,
    env: Vec<String>,
    preopens: Vec<(Dir, String, bool)>,
    sockets: Vec<std::net::TcpListener>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
}

impl WasiCtxBuilder {
    pub fn arg(&mut self, arg: impl Into<String>) -> &mut Self {
        self.args.push(arg.into());
        self
    }

    pub fn args(&mut self, args: impl IntoIterator<Item = impl Into<String>>) -> &mut Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.push(format!("{key}={value}"));
        self
    }

    /// Environment variables already in `NAME=value` form (as `environ_get`
    /// hands them to the guest): no copy per variable.
    pub fn env_entries(&mut self, entries: impl IntoIterator<Item = String>) -> &mut Self {
        self.env.extend(entries);
        self
    }

    /// The host process's stdin, stdout and stderr.
    pub fn inherit_stdio(&mut self) -> &mut Self {
        self.stdin = Some(Stream::Inherit);
        self.stdout = Some(Stream::Inherit);
        self.stderr = Some(Stream::Inherit);
        self
    }

    /// The guest's stdin: a [`Stream`], or a [`crate::pipe::MemoryInputPipe`].
    pub fn stdin(&mut self, s: impl Into<Stream>) -> &mut Self {
        self.stdin = Some(s.into());
        self
    }

    /// The guest's stdout: a [`Stream`], or a [`crate::pipe::MemoryOutputPipe`]
    /// whose contents the embedder reads back after the call.
    pub fn stdout(&mut self, s: impl Into<Stream>) -> &mut Self {
        self.stdout = Some(s.into());
        self
    }

    /// The guest's stderr, like [`WasiCtxBuilder::stdout`].
    pub fn stderr(&mut self, s: impl Into<Stream>) -> &mut Self {
        self.stderr = Some(s.into());
        self
    }

    /// Grants the guest the host directory `host` under the name `guest`.
    /// Everything the guest reaches through it stays inside it.
    pub fn preopened_dir(&mut self, host: impl AsRef<Path>, guest: &str) -> std::io::Result<&mut Self> {
        self.preopened_dir_with(host, guest, false)
    }

    /// Like [`Self::preopened_dir`]; with `read_only` the guest can list, stat,
    /// open and read, but not create, change, rename or remove anything.
    pub fn preopened_dir_with(
        &mut self,
        host: impl AsRef<Path>,
        guest: &str,
        read_only: bool,
    ) -> std::io::Result<&mut Self> {
        let host = host.as_ref();
        let dir = Dir::open_ambient_dir(host, ambient_authority())
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open directory {}: {e}", host.display())))?;
        self.preopens.push((dir, guest.to_string(), read_only));
        Ok(self)
    }

    /// Grants the guest a listening TCP socket, which it can `sock_accept` on.
    /// Sockets get descriptors after the preopened directories.
    pub fn preopened_socket(&mut self, listener: std::net::TcpListener) -> &mut Self {
        self.sockets.push(listener);
        self
    }

    pub fn build(&mut self) -> WasiCtx {
        let stdio = |s: Option<Stream>| Mutex::new(s.unwrap_or(Stream::Null));
        let mut fds = vec![
            Desc::new(Kind::Stdin(stdio(self.stdin.take()))),
            Desc { write: true, read: false, ..Desc::new(Kind::Stdout(stdio(self.stdout.take()))) },
            Desc { write: true, read: false, ..Desc::new(Kind::Stderr(stdio(self.stderr.take()))) },
        ];
        for (dir, guest, read_only) in self.preopens.drain(..) {
            fds.push(Desc { preopen: Some(guest), read_only, ..Desc::new(Kind::Dir(dir)) });
        }
        for listener in self.sockets.drain(..) {
            fds.push(Desc { write: true, ..Desc::new(Kind::TcpListener(listener)) });
        }
        let shared = Shared { args: std::mem::take(&mut self.args), env: std::mem::take(&mut self.env) };
        WasiCtx {
            shared: Arc::new(shared),
            fds: Fds::Local(fds.into_iter().map(Some).collect()),
            threads: None,
            interrupt: None,
            probe: None,
            wait_start: None,
        }
    }
}
