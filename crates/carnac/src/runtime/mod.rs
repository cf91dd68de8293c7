//! The runtime data model shared by every tier: the store and what it owns
//! (memories, tables, globals, functions, instances, tags, extern references,
//! exceptions and their collection), traps, values, limits,
//! linking, and snapshots of instances. Nothing here decodes wasm or executes instructions.

pub(crate) mod anyref;
pub(crate) mod bulk;
pub(crate) mod call;
pub(crate) mod exn;
pub(crate) mod externals;
pub(crate) mod func;
pub(crate) mod gc;
pub(crate) mod gc_heap;
pub(crate) mod gc_objects;
pub(crate) mod gc_ref;
pub(crate) mod instance;
pub(crate) mod linker;
pub(crate) mod memory;
pub(crate) mod parking;
pub(crate) mod shared;
pub(crate) mod snapshot;
pub(crate) mod store;
pub(crate) mod trap;
pub(crate) mod values;
#[allow(dead_code)] // Offsets and builtins the compiled tier (in progress) reads.
pub(crate) mod vmctx;

pub use externals::Extern;
