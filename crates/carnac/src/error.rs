//! The library's error type. Every failure is a value; nothing here panics.

use crate::runtime::trap::Trap;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binary is malformed or fails validation.
    #[error("invalid module at offset {offset:#x}: {message}")]
    Invalid { offset: u64, message: String },
    /// The text format could not be parsed.
    #[error("{0}")]
    Text(String),
    #[error("{0}")]
    Io(String),
    /// Instantiation could not resolve an import.
    #[error("unknown import: `{module}::{name}` has not been defined")]
    UnknownImport { module: String, name: String },
    /// An import was found but its type does not match.
    #[error("incompatible import type for `{module}::{name}`: {reason}")]
    IncompatibleImport { module: String, name: String, reason: String },
    /// Execution trapped.
    #[error(transparent)]
    Trap(#[from] Trap),
    /// A misuse of the API: wrong argument types or counts, objects from another store, and the like.
    #[error("{0}")]
    Usage(String),
    /// A resource limit was hit outside of execution (e.g. instantiating a too-large memory).
    #[error("resource limit exceeded: {0}")]
    Limit(String),
}

impl Error {
    /// The trap, when this error is one.
    pub fn as_trap(&self) -> Option<&Trap> {
        match self {
            Error::Trap(t) => Some(t),
            _ => None,
        }
    }

    pub(crate) fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }
}
