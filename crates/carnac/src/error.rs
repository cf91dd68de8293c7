//! The library's error type. Every failure is a value; nothing here panics.

use std::fmt;

use crate::runtime::trap::Trap;

/// Every error the API returns: a module that does not load, an import that
/// does not link, a misuse of the API, a limit hit, or a [`Trap`] of the guest.
///
/// `?` turns it into an [`anyhow::Error`] in which, as in Wasmtime, a trap is
/// found with `downcast_ref::<Trap>()`; `downcast_ref::<carnac::Error>()`
/// finds the `carnac::Error` itself, whose [`Error::as_trap`] and
/// [`Error::downcast_ref`] give the trap or a host function's own error:
///
/// ```
/// # use carnac::{Engine, Error, Func, Instance, Module, Store, Trap, TrapKind};
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
/// let trap: &Trap = err.downcast_ref::<Trap>().unwrap();
/// assert_eq!(trap.kind(), TrapKind::HostError);
/// assert!(trap.downcast_host::<Refused>().is_some());
/// let carnac_err = err.downcast_ref::<Error>().unwrap();
/// assert_eq!(carnac_err.as_trap().unwrap().message(), "refused");
/// assert!(carnac_err.downcast_ref::<Refused>().is_some());
/// ```
///
/// For that, it is not itself a [`std::error::Error`] (anyhow converts those
/// by a blanket rule that keeps only the outer type); it converts into
/// `anyhow::Error` and `Box<dyn std::error::Error (+ Send + Sync)>`, and
/// anyhow's `.context()` applies after the conversion:
/// `result.map_err(anyhow::Error::from).context("...")`. In the `anyhow::Error`
/// a trap is two layers, the `carnac::Error` (displayed with the backtrace)
/// over the `Trap` (its message only: `Caused by: wasm trap: ...`).
#[derive(Debug)]
pub enum Error {
    /// The binary is malformed or fails validation.
    Invalid {
        /// Byte offset in the binary.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// The text format could not be parsed.
    Text(String),
    /// A file could not be read.
    Io(String),
    /// Instantiation could not resolve an import.
    UnknownImport {
        /// The import's module name.
        module: String,
        /// The import's name.
        name: String,
    },
    /// An import was found but its type does not match.
    IncompatibleImport {
        /// The import's module name.
        module: String,
        /// The import's name.
        name: String,
        /// What was expected and what was found.
        reason: String,
    },
    /// Execution trapped.
    Trap(Trap),
    /// A misuse of the API: wrong argument types or counts, objects from a
    /// different store, growing a memory or table beyond its maximum, and the like.
    Usage(String),
    /// A resource limit was hit outside of execution (e.g. instantiating a too-large memory).
    Limit(String),
    /// The compiled tier could not compile a valid module (or is not built in).
    Compile(String),
    /// A compiled artifact (`.cwasm`, a code cache entry) is damaged, or was
    /// made for another Carnac, host or configuration: the message, one line,
    /// says which.
    Artifact(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid { offset, message } => write!(f, "invalid module at offset {offset:#x}: {message}"),
            Error::Text(m) | Error::Io(m) | Error::Usage(m) | Error::Artifact(m) => f.write_str(m),
            Error::UnknownImport { module, name } => {
                write!(f, "unknown import: `{module}::{name}` has not been defined")
            }
            Error::IncompatibleImport { module, name, reason } => {
                write!(f, "incompatible import type for `{module}::{name}`: {reason}")
            }
            Error::Trap(t) => fmt::Display::fmt(t, f),
            Error::Limit(m) => write!(f, "resource limit exceeded: {m}"),
            Error::Compile(m) => write!(f, "compilation failed: {m}"),
        }
    }
}

impl From<Trap> for Error {
    fn from(trap: Trap) -> Error {
        Error::Trap(trap)
    }
}

/// What `?` does in a function returning `anyhow::Result`: a trap becomes the
/// `carnac::Error` as context over the [`Trap`] (both found by `downcast_ref`,
/// as Wasmtime's trap is), any other error the `carnac::Error` alone.
impl From<Error> for anyhow::Error {
    fn from(error: Error) -> anyhow::Error {
        match error {
            Error::Trap(trap) => anyhow::Error::new(trap.message_only()).context(Error::Trap(trap)),
            other => anyhow::Error::msg(other),
        }
    }
}

/// `?` in a function returning `Result<_, Box<dyn std::error::Error + Send + Sync>>`
/// (through [`anyhow::Error`]).
impl From<Error> for Box<dyn std::error::Error + Send + Sync + 'static> {
    fn from(error: Error) -> Self {
        anyhow::Error::from(error).into()
    }
}

/// `?` in a function returning `Result<_, Box<dyn std::error::Error>>` (through [`anyhow::Error`]).
impl From<Error> for Box<dyn std::error::Error + 'static> {
    fn from(error: Error) -> Self {
        anyhow::Error::from(error).into()
    }
}

impl Error {
    /// The trap, when this error is one.
    pub fn as_trap(&self) -> Option<&Trap> {
        match self {
            Error::Trap(t) => Some(t),
            _ => None,
        }
    }

    /// The exception of an uncaught WebAssembly exception (a trap of kind
    /// [`crate::TrapKind::UncaughtException`]), as Wasmtime's
    /// `ThrownException`: its tag and fields are read with the store.
    pub fn as_exception(&self) -> Option<crate::ExnRef> {
        self.as_trap()?.exception()
    }

    /// An error that throws `exception`: what a host function returns to
    /// raise it in its wasm caller (see [`Trap::throw`]).
    pub fn throw(exception: crate::ExnRef) -> Error {
        Error::Trap(Trap::throw(exception))
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
