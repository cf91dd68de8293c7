//! The compiled tier: WebAssembly to native code through Cranelift (issue 15).
//!
//! [`code_memory`] owns the executable memory compiled code lives in; [`traps`]
//! lets that code trap (a guard-page fault, a `trap` instruction, a bad
//! division) and unwind back to the host call that entered it.

pub(crate) mod builtins;
pub(crate) mod call;
pub(crate) mod code_memory;
pub(crate) mod module;
pub(crate) mod traps;

pub(crate) use builtins::BUILTINS;
