//! # Carnac
//!
//! A server-side WebAssembly runtime. This crate is the embedding library: it
//! decodes and validates modules ([`Module`]), instantiates them into isolated
//! stores ([`Store`], [`Linker`], [`Instance`]) and runs them on its interpreter
//! tier. The API follows Wasmtime's shape:
//!
//! ```
//! use carnac::{Engine, Linker, Module, Store};
//!
//! let engine = Engine::default();
//! let module = Module::new(&engine, r#"(module
//!     (import "host" "double" (func $double (param i32) (result i32)))
//!     (func (export "run") (param i32) (result i32)
//!         local.get 0
//!         call $double
//!         i32.const 1
//!         i32.add))"#)?;
//! let mut linker = Linker::new(&engine);
//! linker.func_wrap("host", "double", |x: i32| x * 2)?;
//! let mut store = Store::new(&engine, ());
//! let instance = linker.instantiate(&mut store, &module)?;
//! let run = instance.get_typed_func::<i32, i32>(&store, "run")?;
//! assert_eq!(run.call(&mut store, 20)?, 41);
//! # Ok::<(), carnac::Error>(())
//! ```
//!
//! Guest failures are values: a [`Trap`] with a [`TrapKind`] and a wasm backtrace.
//! Nothing a guest does can panic the host or overflow its stack.
//!
//! Host functions take and return [`WasmTy`] values (numbers, `Option<Func>`,
//! `Option<ExternRef>`) and may fail: they return `Result<R, Trap>` or
//! `anyhow::Result<R>` ([`WasmRet`]), so `?` works on any error, including a
//! nested call's through the [`Caller`], which goes wherever a store does. The
//! host's error comes back to the embedder inside the trap:
//!
//! ```
//! use carnac::{Caller, Engine, Extern, Linker, Module, Store};
//!
//! #[derive(Debug)]
//! struct TooLong(usize);
//! impl std::fmt::Display for TooLong {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         write!(f, "a name of {} bytes is too long", self.0)
//!     }
//! }
//! impl std::error::Error for TooLong {}
//!
//! let engine = Engine::default();
//! let mut linker = Linker::<Vec<String>>::new(&engine);
//! linker.func_wrap("host", "greet", |mut caller: Caller<'_, Vec<String>>, ptr: u32, len: u32| -> anyhow::Result<()> {
//!     let memory = caller.get_export("memory").and_then(Extern::into_memory).unwrap();
//!     let (bytes, greeted) = memory.data_and_store_mut(&mut caller);
//!     let name = bytes.get(ptr as usize..).and_then(|b| b.get(..len as usize)).ok_or(TooLong(len as usize))?;
//!     greeted.push(std::str::from_utf8(name)?.to_string());
//!     Ok(())
//! })?;
//! let module = Module::new(&engine, r#"(module
//!     (import "host" "greet" (func $greet (param i32 i32)))
//!     (memory (export "memory") 1)
//!     (data (i32.const 0) "Ada")
//!     (func (export "run") (param i32) (call $greet (i32.const 0) (local.get 0))))"#)?;
//! let mut store = Store::new(&engine, Vec::new());
//! let instance = linker.instantiate(&mut store, &module)?;
//! let run = instance.get_typed_func::<u32, ()>(&store, "run")?;
//! run.call(&mut store, 3)?;
//! assert_eq!(store.data(), &["Ada"]);
//! let err = run.call(&mut store, 100_000).unwrap_err();
//! assert_eq!(err.downcast_ref::<TooLong>().unwrap().0, 100_000);
//! assert_eq!(err.as_trap().unwrap().backtrace().len(), 1);
//! # Ok::<(), carnac::Error>(())
//! ```
//!
//! ## Deadlines
//!
//! As in Wasmtime, one thread ticking the engine's epoch bounds the run time of
//! every store: with [`Config::epoch_interruption`], a store's guests stop at
//! their deadline ([`Store::set_epoch_deadline`], in ticks of
//! [`Engine::increment_epoch`]) with [`TrapKind::Interrupted`], or ask the
//! store's [`Store::epoch_deadline_callback`] for more time. The store stays
//! usable: set a new deadline and call again. WASI waits (sleeps, polls) end at
//! the deadline too, or go on to their own end when the callback grants ticks.
//!
//! ```
//! use carnac::{Config, Engine, Linker, Module, Store, TrapKind, UpdateDeadline};
//!
//! let mut config = Config::new();
//! config.epoch_interruption(true);
//! let engine = Engine::new(&config);
//! let module = Module::new(&engine, r#"(module
//!     (func (export "spin") (loop $l (br $l)))
//!     (func (export "answer") (result i32) i32.const 42))"#)?;
//! let mut store = Store::new(&engine, 0u32);
//! let instance = Linker::new(&engine).instantiate(&mut store, &module)?;
//!
//! // A ticker for all the engine's stores: one tick every 10 ms.
//! let ticker = engine.clone();
//! std::thread::spawn(move || loop {
//!     std::thread::sleep(std::time::Duration::from_millis(10));
//!     ticker.increment_epoch();
//! });
//!
//! // Stop after about 50 ms, granting 3 extensions of 10 ms first.
//! store.epoch_deadline_callback(|store| {
//!     *store.data_mut() += 1;
//!     if *store.data() <= 3 {
//!         Ok(UpdateDeadline::Continue(1))
//!     } else {
//!         Err(carnac::Trap::new(TrapKind::Interrupted).into())
//!     }
//! });
//! store.set_epoch_deadline(2);
//! let spin = instance.get_typed_func::<(), ()>(&store, "spin")?;
//! let err = spin.call(&mut store, ()).unwrap_err();
//! assert_eq!(err.as_trap().unwrap().kind(), TrapKind::Interrupted);
//! assert_eq!(*store.data(), 4);
//!
//! // The store runs again under a new deadline.
//! store.set_epoch_deadline(100);
//! let answer = instance.get_typed_func::<(), i32>(&store, "answer")?;
//! assert_eq!(answer.call(&mut store, ())?, 42);
//! # Ok::<(), carnac::Error>(())
//! ```
//!
//! [`Config::interruptible`] with [`Store::interrupt_handle`] is the per-store
//! alternative (`interrupt()` from any thread); an interrupt stays until
//! [`Store::clear_interrupt`] or [`InterruptHandle::reset`].
//!
//! ## Thread safety
//!
//! - [`Engine`], [`Module`], [`Linker`], [`InstancePre`] and [`SharedMemory`]
//!   are `Send + Sync` and cheap to clone (shared, reference-counted state):
//!   compile a module once and instantiate it from any number of threads. A
//!   module's code is translated (or compiled) once, behind atomics and locks
//!   the runtime owns; its data is read-only.
//! - A [`Store`] is `Send` but not `Sync`: it moves between threads, and is used
//!   by one thread at a time (every call takes `&mut`). Everything it owns
//!   (instances, functions, tables, globals, unshared memories) is reached only
//!   through it. To run guest code on several threads at once, give each
//!   thread its own store (and instance), as wasi-threads does.
//! - [`Func`], [`TypedFunc`], [`Instance`], [`Memory`], [`Table`], [`Global`]
//!   and [`Extern`] are `Send + Sync` handles: plain indices checked against
//!   the store they are used with, so holding one on another thread gives no
//!   access without that store.
//! - [`InterruptHandle`] and [`Engine::increment_epoch`] are the only ways to
//!   act on a running store from another thread.
//! - A [`SharedMemory`] (the threads proposal, [`Config::wasm_threads`]) is the
//!   one thing several stores use at once: every store of an instance that
//!   defines or imports it holds it, and it lives until the last one goes. Its
//!   bytes never move; its size only grows, and a growth on one thread is seen
//!   by the others (the length is published with release/acquire ordering). An
//!   atomic instruction is sequentially consistent and never tears; plain loads
//!   and stores race as the guest program says (the proposal's semantics; in
//!   optimised builds each aligned plain access of up to 8 bytes is one
//!   machine access on x86-64 and AArch64, so it does not tear, and every
//!   access goes through raw pointers, never a Rust reference to the bytes). `memory.atomic.wait32/64` park the thread until a notify on the
//!   same cell, the timeout, or the store's interrupt or epoch deadline, which
//!   end a wait as they end a loop. [`Instance::get_memory`] returns `None` for
//!   a shared memory, as Wasmtime does: use [`Instance::get_shared_memory`].

#[cfg(carnac_native_code)]
mod compile;
mod engine;
mod error;
mod interp;
mod module;
mod runtime;
mod type_registry;
mod types;

pub use engine::{CacheStats, Config, Engine, Strategy, TierStats, DEFAULT_CACHE_MAX_BYTES};
pub use error::Error;
pub use module::Module;
pub use runtime::anyref::{AnyRef, I31};
pub use runtime::exn::{ExnRef, Tag};
pub use runtime::externals::{Extern, Global, Memory, Table};
pub use runtime::func::{Caller, Func, IntoFunc, TypedFunc, WasmParams, WasmResults, WasmRet, WasmTy};
pub use runtime::gc::{OwnedRooted, RootScope, Rooted};
pub use runtime::gc_heap::{GcStats, DEFAULT_GC_HEAP_SIZE};
pub use runtime::gc_objects::{ArrayRef, StructRef};
pub use runtime::instance::Instance;
pub use runtime::linker::{InstancePre, Linker};
pub use runtime::memory::{MemoryMut, WASM_PAGE};
pub use runtime::shared::{SharedMemory, WaitResult};
pub use runtime::snapshot::Snapshot;
pub use runtime::store::{
    AsContext, AsContextMut, InterruptHandle, InterruptProbe, ResourceLimiter, Store, StoreLimits, UpdateDeadline,
};
pub use runtime::trap::{FrameInfo, Trap, TrapKind};
pub use runtime::values::{ExternRef, Val};
pub use types::*;
