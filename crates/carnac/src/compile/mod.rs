//! The compiled tier: WebAssembly to native code through Cranelift (issue 15).

pub(crate) mod builtins;
pub(crate) mod call;
pub(crate) mod module;

pub(crate) use builtins::BUILTINS;
