//! In-memory standard streams for embedders: feed a guest's stdin from bytes
//! and read back what it wrote to stdout or stderr after the call, as with
//! Wasmtime's `MemoryInputPipe` / `MemoryOutputPipe`.
//!
//! ```
//! use carnac_wasi::pipe::{MemoryInputPipe, MemoryOutputPipe};
//! use carnac_wasi::WasiCtx;
//!
//! let stdout = MemoryOutputPipe::new(1 << 20);
//! let ctx = WasiCtx::builder().stdin(MemoryInputPipe::new("input")).stdout(stdout.clone()).build();
//! // ... run the guest with `ctx` in its store ...
//! # drop(ctx);
//! let printed: Vec<u8> = stdout.contents();
//! # assert!(printed.is_empty());
//! ```

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use crate::ctx::Stream;

/// A guest's stdin from a byte buffer: reads return its bytes, then end of file.
/// Clones read from one shared position, as clones of a host pipe would.
#[derive(Debug, Clone)]
pub struct MemoryInputPipe {
    data: Arc<[u8]>,
    pos: Arc<Mutex<usize>>,
}

impl MemoryInputPipe {
    pub fn new(bytes: impl Into<Vec<u8>>) -> MemoryInputPipe {
        MemoryInputPipe { data: Arc::from(bytes.into()), pos: Arc::new(Mutex::new(0)) }
    }
}

impl Read for MemoryInputPipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut pos = self.pos.lock().unwrap_or_else(|e| e.into_inner());
        let n = buf.len().min(self.data.len() - *pos);
        buf[..n].copy_from_slice(&self.data[*pos..*pos + n]);
        *pos += n;
        Ok(n)
    }
}

impl From<MemoryInputPipe> for Stream {
    fn from(p: MemoryInputPipe) -> Stream {
        Stream::Reader(Box::new(p))
    }
}

/// A guest's stdout or stderr into memory, up to `capacity` bytes; clones share
/// the buffer, so the embedder keeps one and reads [`MemoryOutputPipe::contents`]
/// after the call. A write past the capacity fails (the guest sees an error),
/// so a guest cannot grow the host's memory without bound.
#[derive(Debug, Clone)]
pub struct MemoryOutputPipe {
    buf: Arc<Mutex<Vec<u8>>>,
    capacity: usize,
}

impl MemoryOutputPipe {
    pub fn new(capacity: usize) -> MemoryOutputPipe {
        MemoryOutputPipe { buf: Arc::new(Mutex::new(Vec::new())), capacity }
    }

    /// What the guest has written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes what the guest has written so far, leaving the pipe empty.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Write for MemoryOutputPipe {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.capacity.saturating_sub(buf.len());
        if room == 0 && !data.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "the output pipe is full"));
        }
        let n = data.len().min(room);
        buf.extend_from_slice(&data[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl From<MemoryOutputPipe> for Stream {
    fn from(p: MemoryOutputPipe) -> Stream {
        Stream::Writer(Box::new(p))
    }
}
