//! The compiled tier: WebAssembly to native code through Cranelift (issue 15).
//!
//! [`translate`] turns one validated function body into machine code that
//! reads the same per-instance context block as the interpreter;
//! [`trampolines`] lets the host call that code; [`trap_codes`] says what each
//! trapping instruction means. [`module`] compiles, lays out and links a whole
//! module into [`code_memory`], executable memory mapped W^X. [`traps`] lets
//! compiled code trap (a guard-page fault, a `trap` instruction, a bad
//! division) and unwind back to the host call that entered it; [`call`] is that
//! crossing, and [`builtins`] the runtime functions compiled code calls.
//! [`artifact`] writes a module's code to a file and loads it back without
//! compiling (`.cwasm`); [`cache`] keeps such files on disk, keyed by module.

pub(crate) mod artifact;
pub(crate) mod builtins;
pub(crate) mod cache;
pub(crate) mod call;
pub(crate) mod code_memory;
pub(crate) mod module;
pub(crate) mod tier;
pub(crate) mod trampolines;
pub(crate) mod translate;
pub(crate) mod trap_codes;
pub(crate) mod traps;

pub(crate) use builtins::BUILTINS;
