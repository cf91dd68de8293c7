//! Traps: the value a guest failure becomes. A trap carries its kind, an optional
//! message, the wasm backtrace at the point of failure, and, for traps raised by host
//! functions, the host's own error (which embedders can downcast, e.g. to a WASI exit code).

use std::fmt;
use std::sync::Arc;

/// Why execution stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrapKind {
    /// The `unreachable` instruction was executed.
    Unreachable,
    MemoryOutOfBounds,
    TableOutOfBounds,
    /// `call_indirect` found a null entry.
    IndirectCallToNull,
    /// `call_indirect` found a function of another type.
    BadSignature,
    IntegerOverflow,
    IntegerDivisionByZero,
    BadConversionToInteger,
    /// Guest calls nested deeper than the configured limit, or the value stack is full.
    StackExhausted,
    OutOfFuel,
    /// Execution was interrupted from outside (deadline or explicit interrupt).
    Interrupted,
    /// A host function returned an error.
    HostError,
    /// With [`crate::Config::lazy_validation`], a function whose body is
    /// invalid was called (its module was accepted unvalidated).
    InvalidFunction,
}

impl TrapKind {
    /// The message the WebAssembly specification uses for this trap.
    pub fn message(self) -> &'static str {
        match self {
            TrapKind::Unreachable => "unreachable",
            TrapKind::MemoryOutOfBounds => "out of bounds memory access",
            TrapKind::TableOutOfBounds => "out of bounds table access",
            TrapKind::IndirectCallToNull => "uninitialized element",
            TrapKind::BadSignature => "indirect call type mismatch",
            TrapKind::IntegerOverflow => "integer overflow",
            TrapKind::IntegerDivisionByZero => "integer divide by zero",
            TrapKind::BadConversionToInteger => "invalid conversion to integer",
            TrapKind::StackExhausted => "call stack exhausted",
            TrapKind::OutOfFuel => "all fuel consumed",
            TrapKind::Interrupted => "interrupted",
            TrapKind::HostError => "host error",
            TrapKind::InvalidFunction => "invalid function body",
        }
    }
}

/// One wasm frame of a trap's backtrace, innermost first. The names are the
/// module's own (shared, not copied): a backtrace of 100,000 frames through a
/// function with a long name holds that name once.
#[derive(Debug, Clone)]
pub struct FrameInfo {
    pub module_name: Option<Arc<str>>,
    pub func_index: u32,
    pub func_name: Option<Arc<str>>,
}

impl fmt::Display for FrameInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = &self.module_name {
            write!(f, "{m}!")?;
        }
        match &self.func_name {
            // Rust (and C++ Itanium-style) symbol names are shown demangled, without hashes.
            Some(n) => write!(f, "{:#}", rustc_demangle::demangle(n)),
            None => write!(f, "<wasm function {}>", self.func_index),
        }
    }
}

struct TrapInner {
    kind: TrapKind,
    message: Option<String>,
    backtrace: Vec<FrameInfo>,
    /// Frames left out of `backtrace` (see [`crate::Config::wasm_backtrace_max_frames`]):
    /// that many, between `backtrace[..at]` and `backtrace[at..]`.
    elided: usize,
    elided_at: usize,
    host: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// A captured backtrace: the frames kept, innermost first, and where frames
/// were left out (how many, before which kept frame).
pub(crate) struct Backtrace {
    pub frames: Vec<FrameInfo>,
    pub elided_at: usize,
    pub elided: usize,
}

impl From<Vec<FrameInfo>> for Backtrace {
    fn from(frames: Vec<FrameInfo>) -> Backtrace {
        Backtrace { frames, elided_at: 0, elided: 0 }
    }
}

/// A trap: execution of guest code stopped abnormally.
pub struct Trap(Box<TrapInner>);

impl Trap {
    pub fn new(kind: TrapKind) -> Trap {
        Trap(Box::new(TrapInner { kind, message: None, backtrace: Vec::new(), elided: 0, elided_at: 0, host: None }))
    }

    /// A trap raised by a host function with a message.
    pub fn host(message: impl Into<String>) -> Trap {
        let mut t = Trap::new(TrapKind::HostError);
        t.0.message = Some(message.into());
        t
    }

    /// A trap raised by a host function carrying an error value the embedder can downcast.
    pub fn host_error(error: impl std::error::Error + Send + Sync + 'static) -> Trap {
        let mut t = Trap::new(TrapKind::HostError);
        t.0.message = Some(error.to_string());
        t.0.host = Some(Box::new(error));
        t
    }

    pub fn kind(&self) -> TrapKind {
        self.0.kind
    }

    /// The wasm frames where the trap happened, innermost first. A backtrace
    /// deeper than [`crate::Config::wasm_backtrace_max_frames`] keeps its two
    /// ends: [`Trap::frames_elided`] says how many frames are left out, before
    /// the frame at [`Trap::elided_at`]. Empty when
    /// [`crate::Config::wasm_backtrace`] is off.
    pub fn backtrace(&self) -> &[FrameInfo] {
        &self.0.backtrace
    }

    /// How many frames the captured backtrace leaves out (0 if none).
    pub fn frames_elided(&self) -> usize {
        self.0.elided
    }

    /// Where the left-out frames were: before `backtrace()[elided_at()]`.
    pub fn elided_at(&self) -> usize {
        self.0.elided_at
    }

    /// The host error, when a host function raised this trap with [`Trap::host_error`].
    pub fn downcast_host<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.host.as_ref()?.downcast_ref::<E>()
    }

    pub(crate) fn has_backtrace(&self) -> bool {
        !self.0.backtrace.is_empty()
    }

    pub(crate) fn set_backtrace(&mut self, bt: impl Into<Backtrace>) {
        let bt = bt.into();
        self.0.backtrace = bt.frames;
        self.0.elided = bt.elided;
        self.0.elided_at = bt.elided_at;
    }

    /// The trap's message without the backtrace.
    pub fn message(&self) -> &str {
        self.0.message.as_deref().unwrap_or(self.0.kind.message())
    }
}

impl From<TrapKind> for Trap {
    fn from(kind: TrapKind) -> Trap {
        Trap::new(kind)
    }
}

/// Frames a displayed backtrace shows at each end; the middle of a deeper one
/// (a runaway recursion has 100,000 frames) is one `... N frames elided ...`
/// line, as Wasmtime does. [`Trap::backtrace`] keeps every frame.
const SHOWN_AT_EACH_END: usize = 32;

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wasm trap: {}", self.message())?;
        let bt = &self.0.backtrace;
        if !bt.is_empty() && self.0.elided > 0 {
            // Captured with its middle left out: show what was kept, with the
            // frames' real depths.
            write!(f, "\nwasm backtrace:")?;
            for (i, frame) in bt.iter().enumerate() {
                if i == self.0.elided_at {
                    write!(f, "\n  ... {} frames elided ...", self.0.elided)?;
                }
                let depth = if i < self.0.elided_at { i } else { i + self.0.elided };
                write!(f, "\n  {depth}: {frame}")?;
            }
        } else if !bt.is_empty() {
            write!(f, "\nwasm backtrace:")?;
            // Eliding fewer frames than the line that says so would save nothing.
            let elided = bt.len().saturating_sub(2 * SHOWN_AT_EACH_END);
            let (head, tail) = match elided {
                0 | 1 => (bt.len(), bt.len()),
                _ => (SHOWN_AT_EACH_END, bt.len() - SHOWN_AT_EACH_END),
            };
            for (i, frame) in bt.iter().enumerate().take(head) {
                write!(f, "\n  {i}: {frame}")?;
            }
            if head < tail {
                write!(f, "\n  ... {elided} frames elided ...")?;
            }
            for (i, frame) in bt.iter().enumerate().skip(tail) {
                write!(f, "\n  {i}: {frame}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Trap({:?}: {})", self.0.kind, self.message())
    }
}

impl std::error::Error for Trap {}
