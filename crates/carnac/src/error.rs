//! The library's error type. Every failure is a value; nothing here panics.

use crate::runtime::trap::Trap;

/// Every error the API returns: a module that does not load, an import that
/// does not link, a misuse of the API, a limit hit, or a [`Trap`] of the guest.
///
/// It is a `std::error::Error + Send + Sync + 'static`, so `?` turns it into an
/// [`anyhow::Error`]; from there, `downcast_ref::<carnac::Error>()` gives it back,
/// and [`Error::as_trap`] or [`Error::downcast_ref`] the trap or a host function's
/// own error:
///
/// ```
/// # use carnac::{Engine, Error, Func, Instance, Module, Store, Trap};
/// #[derive(Debug)]
/// struct Refused;
/// impl std::fmt::Display for Refused {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("refused")
///     }
/// }
///
/// fn run() -> anyhow::Result<()> {
///     let engine = Engine::default();
///     let module = Module::new(&engine, r#"(module (import "" "f" (func $f)) (func (export "go") call $f))"#)?;
///     let mut store = Store::new(&engine, ());
///     let f = Func::wrap(&mut store, || -> anyhow::Result<()> { Err(anyhow::Error::msg(Refused)) });
///     let instance = Instance::new(&mut store, &module, &[f.into()])?;
///     instance.get_typed_func::<(), ()>(&store, "go")?.call(&mut store, ())?;
///     Ok(())
/// }
///
/// let err = run().unwrap_err();
/// let carnac_err = err.downcast_ref::<Error>().unwrap();
/// let trap: &Trap = carnac_err.as_trap().unwrap();
/// assert_eq!(trap.message(), "refused");
/// assert!(carnac_err.downcast_ref::<Refused>().is_some());
/// assert!(carnac_err.downcast_ref::<Trap>().is_some());
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binary is malformed or fails validation.
    #[error("invalid module at offset {offset:#x}: {message}")]
    Invalid {
        /// Byte offset in the binary.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// The text format could not be parsed.
    #[error("{0}")]
    Text(String),
    /// A file could not be read.
    #[error("{0}")]
    Io(String),
    /// Instantiation could not resolve an import.
    #[error("unknown import: `{module}::{name}` has not been defined")]
    UnknownImport {
        /// The import's module name.
        module: String,
        /// The import's name.
        name: String,
    },
    /// An import was found but its type does not match.
    #[error("incompatible import type for `{module}::{name}`: {reason}")]
    IncompatibleImport {
        /// The import's module name.
        module: String,
        /// The import's name.
        name: String,
        /// What was expected and what was found.
        reason: String,
    },
    /// Execution trapped.
    #[error(transparent)]
    Trap(#[from] Trap),
    /// A misuse of the API: wrong argument types or counts, objects from a
    /// different store, growing a memory or table beyond its maximum, and the like.
    #[error("{0}")]
    Usage(String),
    /// A resource limit was hit outside of execution (e.g. instantiating a too-large memory).
    #[error("resource limit exceeded: {0}")]
    Limit(String),
    /// The compiled tier could not compile a valid module (or is not built in).
    #[error("compilation failed: {0}")]
    Compile(String),
}

impl Error {
    /// The trap, when this error is one.
    pub fn as_trap(&self) -> Option<&Trap> {
        match self {
            Error::Trap(t) => Some(t),
            _ => None,
        }
    }

    /// The trap, or a host function's error inside it, as type `E`: with `E` =
    /// [`Trap`] the trap itself (like [`Error::as_trap`]); otherwise the error a
    /// host function failed with, if it is an `E` (see [`Trap::downcast_host`]).
    /// `None` for errors other than traps.
    pub fn downcast_ref<E: std::fmt::Display + std::fmt::Debug + Send + Sync + 'static>(&self) -> Option<&E> {
        let trap = self.as_trap()?;
        match (trap as &dyn std::any::Any).downcast_ref::<E>() {
            Some(e) => Some(e),
            None => trap.downcast_host::<E>(),
        }
    }

    pub(crate) fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }
}
