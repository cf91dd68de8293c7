//! The per-store WASI state: arguments, environment, and the descriptor table
//! (stdio, preopened directories and what the guest opened through them).

use std::io::{Read, Write};
use std::path::Path;

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

pub(crate) enum Kind {
    Stdin(Stream),
    Stdout(Stream),
    Stderr(Stream),
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
    /// The descriptor flags preview1 keeps itself (`APPEND`, `NONBLOCK`).
    pub fdflags: u16,
    /// A file: opened for reading / for writing.
    pub read: bool,
    pub write: bool,
    /// Reached through a read-only preopen: nothing may be created, changed or
    /// removed through it (`PERM`).
    pub read_only: bool,
}

impl Desc {
    pub fn new(kind: Kind) -> Desc {
        Desc { kind, preopen: None, fdflags: 0, read: true, write: false, read_only: false }
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

/// WASI preview1 state for one store.
pub struct WasiCtx {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) fds: Vec<Option<Desc>>,
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

    fn take_stream(&mut self, fd: usize) -> Option<Stream> {
        let desc = self.fds.get_mut(fd)?.as_mut()?;
        let slot = match &mut desc.kind {
            Kind::Stdin(s) | Kind::Stdout(s) | Kind::Stderr(s) => s,
            _ => return None,
        };
        match std::mem::replace(slot, Stream::Null) {
            Stream::Null => None,
            s => Some(s),
        }
    }

    pub(crate) fn get(&self, fd: u32) -> Result<&Desc, Errno> {
        self.fds.get(fd as usize).and_then(Option::as_ref).ok_or(Errno::BADF)
    }

    pub(crate) fn get_mut(&mut self, fd: u32) -> Result<&mut Desc, Errno> {
        self.fds.get_mut(fd as usize).and_then(Option::as_mut).ok_or(Errno::BADF)
    }

    /// Installs a descriptor in the lowest free slot.
    pub(crate) fn insert(&mut self, desc: Desc) -> Result<u32, Errno> {
        if let Some(i) = self.fds.iter().position(Option::is_none) {
            self.fds[i] = Some(desc);
            return Ok(i as u32);
        }
        if self.fds.len() >= MAX_FDS {
            return Err(Errno::MFILE);
        }
        self.fds.push(Some(desc));
        Ok(self.fds.len() as u32 - 1)
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
        let stdio = |s: Option<Stream>| s.unwrap_or(Stream::Null);
        let mut fds = vec![
            Some(Desc::new(Kind::Stdin(stdio(self.stdin.take())))),
            Some(Desc { write: true, read: false, ..Desc::new(Kind::Stdout(stdio(self.stdout.take()))) }),
            Some(Desc { write: true, read: false, ..Desc::new(Kind::Stderr(stdio(self.stderr.take()))) }),
        ];
        for (dir, guest, read_only) in self.preopens.drain(..) {
            fds.push(Some(Desc { preopen: Some(guest), read_only, ..Desc::new(Kind::Dir(dir)) }));
        }
        for listener in self.sockets.drain(..) {
            fds.push(Some(Desc { write: true, ..Desc::new(Kind::TcpListener(listener)) }));
        }
        WasiCtx {
            args: std::mem::take(&mut self.args),
            env: std::mem::take(&mut self.env),
            fds,
            interrupt: None,
            probe: None,
            wait_start: None,
        }
    }
}
