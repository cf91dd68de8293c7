//! The compiled tier: WebAssembly to native code through Cranelift (issue 15).
//!
//! [`translate`] turns one validated function body into machine code that
//! reads the same per-instance context block as the interpreter;
//! [`trampolines`] lets the host call that code; [`trap_codes`] says what each
//! trapping instruction means. [`compiler`] compiles and lays out a whole
//! module, and [`module`] links it into [`code_memory`], executable memory
//! mapped W^X. [`traps`] lets compiled code trap (a guard-page fault, a `trap`
//! instruction, a bad division) and unwind back to the host call that entered
//! it; [`call`] is that crossing, and [`builtins`] the runtime functions
//! compiled code calls. [`artifact`] writes a module's code to a file and
//! loads it back without compiling (`.cwasm`), checking what the code depends
//! on ([`target`]); [`cache`] keeps such files on disk, keyed by module.
//! [`tier`] moves hot interpreted modules to compiled code.
//!
//! Two builds: with the `cranelift` feature (cfg `carnac_compiled`) all of
//! it; with only the `loader` feature (cfg `carnac_native_code` alone) the
//! half that loads and runs code, without Cranelift: `artifact`, `builtins`,
//! `call`, `code_memory`, `module`, `target`, `trap_codes` and `traps`.

pub(crate) mod artifact;
pub(crate) mod builtins;
#[cfg(carnac_compiled)]
pub(crate) mod cache;
pub(crate) mod call;
pub(crate) mod code_memory;
#[cfg(carnac_compiled)]
pub(crate) mod compiler;
pub(crate) mod module;
pub(crate) mod target;
#[cfg(carnac_compiled)]
pub(crate) mod tier;
#[cfg(carnac_compiled)]
pub(crate) mod trampolines;
#[cfg(carnac_compiled)]
pub(crate) mod translate;
pub(crate) mod trap_codes;
pub(crate) mod traps;

pub(crate) use builtins::BUILTINS;
