//! Traps: the value a guest failure becomes. A trap carries its kind, an optional
//! message, the wasm backtrace at the point of failure, and, for traps raised by host
//! functions, the host's own error (which embedders can downcast, e.g. to a WASI exit code).

use std::fmt;
use std::sync::Arc;

/// Why execution stopped (later proposals add kinds: GC's casts, exceptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TrapKind {
    /// The `unreachable` instruction was executed.
    Unreachable,
    /// A memory access out of the memory's bounds.
    MemoryOutOfBounds,
    /// A table access out of the table's bounds.
    TableOutOfBounds,
    /// `call_indirect` found a null entry.
    IndirectCallToNull,
    /// `call_indirect` found a function of another type.
    BadSignature,
    /// An integer overflow (`i32.div_s` of the minimum by -1, or a float-to-integer conversion out of range).
    IntegerOverflow,
    /// An integer division or remainder by zero.
    IntegerDivisionByZero,
    /// A float-to-integer conversion of NaN.
    BadConversionToInteger,
    /// Guest calls nested deeper than the configured limit, or the value stack is full.
    StackExhausted,
    /// The store's fuel ran out (see [`crate::Config::consume_fuel`]).
    OutOfFuel,
    /// Execution was interrupted from outside (deadline or explicit interrupt).
    Interrupted,
    /// A host function returned an error.
    HostError,
    /// With [`crate::Config::lazy_validation`], a function whose body is
    /// invalid was called (its module was accepted unvalidated).
    InvalidFunction,
    /// An atomic memory access at an address that is not a multiple of its size
    /// (the threads proposal).
    UnalignedAtomic,
    /// `memory.atomic.wait32`/`wait64` on a memory that is not shared.
    ExpectedSharedMemory,
    /// `call_ref` or `return_call_ref` through a null function reference
    /// (typed function references).
    NullFunctionReference,
    /// `ref.as_non_null` of a null reference (typed function references).
    NullReference,
    /// A `struct.get`/`struct.set` of a null reference (GC).
    NullStructReference,
    /// An array instruction on a null reference (GC).
    NullArrayReference,
    /// An array access out of the array's bounds (GC).
    ArrayOutOfBounds,
    /// An allocation whose size cannot be represented (GC: e.g. an array of
    /// 2^32 - 1 `i64`s), refused without allocating.
    AllocationTooLarge,
    /// The GC heap is full even after a collection (its cap, or the store's
    /// memory budget: see `ResourceLimiter::gc_heap_size`).
    OutOfGcMemory,
    /// `i31.get_s`/`i31.get_u` of a null reference (GC).
    NullI31Reference,
    /// A `ref.cast` whose operand is not of the target type (GC).
    CastFailure,
    /// A WebAssembly exception that no `try_table` caught reached the host
    /// (exception handling); [`Trap::exception`] is the exception. Also the
    /// kind of a trap made by [`Trap::throw`], which throws.
    UncaughtException,
    /// `throw_ref` of a null reference (exception handling).
    NullExceptionReference,
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
            TrapKind::UnalignedAtomic => "unaligned atomic",
            TrapKind::ExpectedSharedMemory => "expected shared memory",
            TrapKind::NullFunctionReference => "null function reference",
            TrapKind::NullReference => "null reference",
            TrapKind::NullStructReference => "null structure reference",
            TrapKind::NullArrayReference => "null array reference",
            TrapKind::ArrayOutOfBounds => "out of bounds array access",
            TrapKind::AllocationTooLarge => "allocation size too large",
            TrapKind::OutOfGcMemory => "out of GC heap memory",
            TrapKind::NullI31Reference => "null i31 reference",
            TrapKind::CastFailure => "cast failure",
            TrapKind::UncaughtException => "uncaught exception",
            TrapKind::NullExceptionReference => "null exception reference",
        }
    }
}

/// One wasm frame of a trap's backtrace, innermost first. The names are the
/// module's own (shared, not copied): a backtrace of 100,000 frames through a
/// function with a long name holds that name once.
#[derive(Debug, Clone)]
pub struct FrameInfo {
    /// The module's name (from its name section), if it has one.
    pub module_name: Option<Arc<str>>,
    /// The function's index in its module.
    pub func_index: u32,
    /// The function's name (from the name section), if it has one.
    pub func_name: Option<Arc<str>>,
    /// Where in the module's bytes the frame's current instruction is (the
    /// operator that trapped, or the call a frame is in), as Wasmtime's
    /// `FrameInfo::module_offset`; `None` when unknown.
    pub module_offset: Option<usize>,
    /// The same place as an offset from the start of the function's body (its
    /// local declarations), as Wasmtime's `FrameInfo::func_offset`.
    pub func_offset: Option<usize>,
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

#[derive(Clone)]
struct TrapInner {
    kind: TrapKind,
    message: Option<String>,
    backtrace: Vec<FrameInfo>,
    /// Frames left out of `backtrace` (see [`crate::Config::wasm_backtrace_max_frames`]):
    /// that many, between `backtrace[..at]` and `backtrace[at..]`.
    elided: usize,
    elided_at: usize,
    /// The host's error, for traps raised by host functions with one (shared
    /// by the trap's clones).
    host: Option<Arc<anyhow::Error>>,
    /// The exception, for [`TrapKind::UncaughtException`].
    exception: Option<crate::ExnRef>,
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
///
/// Calls return a trap inside [`crate::Error::Trap`]; get it back with
/// [`crate::Error::as_trap`] or [`crate::Error::downcast_ref::<Trap>()`](crate::Error::downcast_ref),
/// and from an [`anyhow::Error`] the call's error became with
/// `downcast_ref::<Trap>()`, as in Wasmtime (see [`crate::Error`]).
/// When a host function failed, the trap keeps the host's error:
/// [`Trap::downcast_host`] (or [`crate::Error::downcast_ref`]) returns it as its own type.
///
/// Cloning is cheap: clones share the message, backtrace and host error.
#[derive(Clone)]
pub struct Trap(Arc<TrapInner>, Shown);

/// How a trap displays itself: whole (message and backtrace), or, as the
/// innermost layer of an [`anyhow::Error`] whose outer layer (the
/// [`crate::Error`]) shows the backtrace already, its message alone.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    Whole,
    MessageOnly,
}

impl Trap {
    /// A trap of the given kind, with the kind's standard message and no backtrace yet.
    pub fn new(kind: TrapKind) -> Trap {
        let inner = TrapInner {
            kind,
            message: None,
            backtrace: Vec::new(),
            elided: 0,
            elided_at: 0,
            host: None,
            exception: None,
        };
        Trap(Arc::new(inner), Shown::Whole)
    }

    fn inner_mut(&mut self) -> &mut TrapInner {
        Arc::make_mut(&mut self.0)
    }

    /// This trap, displayed without its backtrace (see [`Shown`]).
    pub(crate) fn message_only(&self) -> Trap {
        Trap(self.0.clone(), Shown::MessageOnly)
    }

    /// A trap raised by a host function with a message.
    pub fn host(message: impl Into<String>) -> Trap {
        let mut t = Trap::new(TrapKind::HostError);
        t.inner_mut().message = Some(message.into());
        t
    }

    /// A trap raised by a host function carrying an error value the embedder can
    /// downcast afterwards ([`Trap::downcast_host`]).
    pub fn host_error(error: impl std::error::Error + Send + Sync + 'static) -> Trap {
        let mut t = Trap::new(TrapKind::HostError);
        t.inner_mut().message = Some(error.to_string());
        t.inner_mut().host = Some(Arc::new(anyhow::Error::new(error)));
        t
    }

    /// Throws `exception`: a host function returning this error (as
    /// `Err(Trap::throw(e))`, or inside an `anyhow::Error`) raises the
    /// exception in its wasm caller, where a `try_table` may catch it, as
    /// Wasmtime's `Store::throw`. Not caught, it reaches the host as
    /// [`TrapKind::UncaughtException`] with the same exception.
    pub fn throw(exception: crate::ExnRef) -> Trap {
        let mut t = Trap::new(TrapKind::UncaughtException);
        t.inner_mut().exception = Some(exception);
        t
    }

    /// The exception of an uncaught exception (see [`TrapKind::UncaughtException`]).
    pub fn exception(&self) -> Option<crate::ExnRef> {
        self.0.exception
    }

    /// The trap's message with the exception's tag named (`uncaught exception
    /// of tag 3 of the store`).
    pub(crate) fn set_exception_message(&mut self, tag: u32) {
        self.inner_mut().message = Some(format!("uncaught exception (tag {tag} of the store)"));
    }

    /// Why execution stopped.
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

    /// The host error, when a host function raised this trap with one: by
    /// [`Trap::host_error`], or by returning an `Err` holding an error of type `E`
    /// (an [`anyhow::Error`] is searched through its context layers too).
    pub fn downcast_host<E: fmt::Display + fmt::Debug + Send + Sync + 'static>(&self) -> Option<&E> {
        self.0.host.as_deref()?.downcast_ref::<E>()
    }

    /// The host error as an [`anyhow::Error`], when a host function raised this trap with one.
    pub fn host_error_ref(&self) -> Option<&anyhow::Error> {
        self.0.host.as_deref()
    }

    pub(crate) fn has_backtrace(&self) -> bool {
        !self.0.backtrace.is_empty()
    }

    /// Adds `outer`, the frames of the callers (of another tier) the trap
    /// unwound through, after the frames already captured, keeping at most
    /// `max` in all (both ends kept, as when capturing).
    pub(crate) fn extend_backtrace(&mut self, outer: Backtrace, max: usize) {
        let inner = self.inner_mut();
        let total = inner.backtrace.len() + inner.elided + outer.frames.len() + outer.elided;
        let mut frames = std::mem::take(&mut inner.backtrace);
        frames.extend(outer.frames);
        if total <= max && frames.len() == total {
            inner.backtrace = frames;
            return;
        }
        let keep = max.min(frames.len());
        let head = keep.div_ceil(2);
        let tail = keep - head;
        let mut kept: Vec<FrameInfo> = frames[..head].to_vec();
        kept.extend_from_slice(&frames[frames.len() - tail..]);
        inner.backtrace = kept;
        inner.elided = total - keep;
        inner.elided_at = head;
    }

    pub(crate) fn set_backtrace(&mut self, bt: impl Into<Backtrace>) {
        let bt = bt.into();
        let inner = self.inner_mut();
        inner.backtrace = bt.frames;
        inner.elided = bt.elided;
        inner.elided_at = bt.elided_at;
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

/// What a host function's `?` does with an error of a nested call (a wasm
/// function called through the [`crate::Caller`]): a trap comes back as itself
/// (its kind and backtrace kept, so running out of fuel stays
/// [`TrapKind::OutOfFuel`]); any other error becomes a [`TrapKind::HostError`]
/// trap that carries it ([`Trap::downcast_host::<carnac::Error>()`](Trap::downcast_host)).
impl From<crate::Error> for Trap {
    fn from(error: crate::Error) -> Trap {
        match error {
            crate::Error::Trap(t) => t,
            other => {
                let mut t = Trap::new(TrapKind::HostError);
                t.inner_mut().message = Some(other.to_string());
                t.inner_mut().host = Some(Arc::new(anyhow::Error::from(other)));
                t
            }
        }
    }
}

/// What a host function returning `anyhow::Result` does with its error: a
/// [`Trap`] or [`crate::Error`] inside comes back as itself (as with
/// `From<carnac::Error>`); any other error becomes a [`TrapKind::HostError`]
/// trap whose message is the error with its context (`{:#}`) and which keeps
/// it for [`Trap::downcast_host`].
impl From<anyhow::Error> for Trap {
    fn from(error: anyhow::Error) -> Trap {
        let error = match error.downcast::<Trap>() {
            // Whole again (it may be the inner layer of a converted `carnac::Error`).
            Ok(t) => return Trap(t.0, Shown::Whole),
            Err(e) => e,
        };
        let error = match error.downcast::<crate::Error>() {
            Ok(e) => return Trap::from(e),
            Err(e) => e,
        };
        let mut t = Trap::new(TrapKind::HostError);
        t.inner_mut().message = Some(format!("{error:#}"));
        t.inner_mut().host = Some(Arc::new(error));
        t
    }
}

/// Frames a displayed backtrace shows at each end; the middle of a deeper one
/// (a runaway recursion has 100,000 frames) is one `... N frames elided ...`
/// line, as Wasmtime does. [`Trap::backtrace`] keeps every frame.
const SHOWN_AT_EACH_END: usize = 32;

/// One line of a displayed backtrace, as Wasmtime shows it: depth, the
/// instruction's offset in the module, the function.
fn write_frame(f: &mut fmt::Formatter<'_>, depth: usize, frame: &FrameInfo) -> fmt::Result {
    match frame.module_offset {
        Some(offset) => write!(f, "\n  {depth}: {offset:#x} - {frame}"),
        None => write!(f, "\n  {depth}: {frame}"),
    }
}

impl fmt::Display for Trap {
    /// `wasm trap: MESSAGE` and the backtrace, one frame a line; only the first
    /// line for the trap inside an `anyhow::Error` made from a [`crate::Error`]
    /// (whose own display, above it, has the backtrace).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wasm trap: {}", self.message())?;
        if self.1 == Shown::MessageOnly {
            return Ok(());
        }
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
                write_frame(f, depth, frame)?;
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
                write_frame(f, i, frame)?;
            }
            if head < tail {
                write!(f, "\n  ... {elided} frames elided ...")?;
            }
            for (i, frame) in bt.iter().enumerate().skip(tail) {
                write_frame(f, i, frame)?;
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
