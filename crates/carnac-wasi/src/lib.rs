//! # carnac-wasi
//!
//! WASI preview1 (`wasi_snapshot_preview1`) for Carnac, defined through the
//! public embedding API only ([`carnac::Linker`]).
//!
//! The guest sees only what a [`WasiCtxBuilder`] grants: its arguments and
//! environment, the three standard streams, and preopened directories. File
//! system access goes through capability handles (`cap-std`): every path is
//! resolved relative to a directory handle the guest holds, never by joining
//! strings on the host, so `..`, absolute paths and symlinks cannot lead out of
//! a preopened directory. Every pointer and length from the guest is checked;
//! a bad one traps the guest (as in Wasmtime), never a host panic. Standard
//! streams can be the host's, any reader or writer, or in-memory [`pipe`]s.
//!
//! Threaded programs (`wasm32-wasip1-threads`) get wasi-threads from
//! [`threads`]: the threads of one program are stores that share one WASI
//! state ([`WasiCtx::share`]: the descriptor table, arguments, environment;
//! its lock is never held across a wait) and one [`threads::ThreadGroup`].
//!
//! ```no_run
//! use carnac::{Engine, Linker, Module, Store};
//! use carnac_wasi::{WasiCtx, I32Exit};
//!
//! let engine = Engine::default();
//! let module = Module::from_file(&engine, "hello.wasm")?;
//! let mut linker: Linker<WasiCtx> = Linker::new(&engine);
//! carnac_wasi::add_to_linker(&mut linker, |ctx| ctx)?;
//! let ctx = WasiCtx::builder().inherit_stdio().arg("hello.wasm").build();
//! let mut store = Store::new(&engine, ctx);
//! let instance = linker.instantiate(&mut store, &module)?;
//! let start = instance.get_typed_func::<(), ()>(&store, "_start")?;
//! match start.call(&mut store, ()) {
//!     Ok(()) => {}
//!     Err(e) => match e.as_trap().and_then(|t| t.downcast_host::<I32Exit>()) {
//!         Some(exit) => std::process::exit(exit.0),
//!         None => return Err(e.into()),
//!     },
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ctx;
mod memory;
pub mod pipe;
mod preview1;
pub mod threads;
pub mod types;

pub use ctx::{Stream, WasiCtx, WasiCtxBuilder};
pub use preview1::add_to_linker;

/// The guest called `proc_exit(code)`: carried as the trap's host error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct I32Exit(pub i32);

impl std::fmt::Display for I32Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit with status {}", self.0)
    }
}

impl std::error::Error for I32Exit {}
