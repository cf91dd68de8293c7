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

mod engine;
mod error;
mod interp;
mod module;
mod runtime;
mod types;

pub use engine::{Config, Engine};
pub use error::Error;
pub use module::Module;
pub use runtime::externals::{Extern, Global, Memory, Table};
pub use runtime::func::{Caller, Func, IntoFunc, TypedFunc, WasmParams, WasmResults, WasmTy};
pub use runtime::instance::Instance;
pub use runtime::linker::{InstancePre, Linker};
pub use runtime::memory::{MemoryMut, WASM_PAGE};
pub use runtime::store::{
    AsContext, AsContextMut, InterruptHandle, InterruptProbe, ResourceLimiter, Store, StoreLimits, UpdateDeadline,
};
pub use runtime::trap::{FrameInfo, Trap, TrapKind};
pub use runtime::values::{ExternRef, Val};
pub use types::*;
