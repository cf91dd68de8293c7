//! The compiled tier: WebAssembly to native code through Cranelift (issue 15).
//!
//! `translate` turns one validated function body into machine code that reads
//! the same per-instance context block as the interpreter; `trampolines` lets
//! the host call that code; `trap_codes` says what each trapping instruction
//! means.

// Until the runtime integration (instances, code memory, calls) uses them,
// only the tests reach these modules' entry points.
#[allow(dead_code)]
pub(crate) mod trampolines;
#[allow(dead_code)]
pub(crate) mod translate;
#[allow(dead_code)]
pub(crate) mod trap_codes;
