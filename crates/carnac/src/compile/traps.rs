//! Traps in compiled code: how a fault in machine code becomes a trap returned
//! to the host call that entered it.
//!
//! Compiled code does not check for its traps and return error codes; that would
//! cost a branch after every call and every access. It *faults* instead (a guard
//! page, a trap instruction, a hardware division fault), and the machinery here
//! brings the thread back to where the host entered compiled code, with what
//! trapped and the wasm backtrace. Four pieces:
//!
//! - [`registry`]: which address ranges are compiled code and what traps where,
//!   readable from a signal handler ([`register`], [`CodeInfo`], [`TrapTable`]).
//! - [`catch_traps`]: the host's way in. It pushes an *activation* (a jump buffer
//!   plus trap state) on a per-thread stack, calls the caller's trampoline, and
//!   returns `Err(`[`Unwound`]`)` if compiled code trapped. Activations nest
//!   (host → compiled → host → compiled): the innermost catches.
//! - `signals`: the handler that recognizes a trap (pc in registered code, at a
//!   trap site, on a thread with an activation), records it, and makes the thread
//!   resume in a landing that captures the backtrace and jumps back; anything else
//!   is chained to the previous handler.
//! - `jmp`: the jump itself, a setjmp/longjmp pair in assembly.
//!
//! **Host functions never jump.** A builtin (Rust called from compiled code)
//! that wants to trap records a pending payload in the current activation
//! ([`with_current_activation`], [`Activation::set_pending`]), returns a status,
//! and the compiled code then executes a `trapnz` on it, which comes back through
//! the signal handler; [`Unwound::pending`] hands the payload to `catch_traps`'
//! caller. So the jump only ever discards compiled frames, the caller's
//! trampoline and the landing: **no Rust frame with a destructor is ever skipped**.
//! The trampoline `f` given to [`catch_traps`] must keep to that (hold nothing with
//! `Drop` across its call into compiled code), and builtins must not unwind a
//! panic into compiled code (catch it, store it as the pending payload, return a
//! trapping status; an `extern "C"` function that panics aborts anyway).
//!
//! **Backtraces** are walked from frame pointers ([`walk_wasm_frames`]): compiled
//! code must be built with Cranelift's `preserve_frame_pointers`. The walk runs
//! before the jump (the frames are gone after it), and [`Unwound::backtrace`] has
//! its pcs: the trapping pc, then the return address in each calling wasm
//! function, innermost first, up to the first frame that is not a wasm function
//! (the entry trampoline or host code).
//!
//! **Stack.** The landing runs on the guest's stack, just below the trapping
//! frame: a stack-limit check in compiled code must leave it room (a few KiB;
//! compiled code that overran into the guard page itself would fault again in
//! the landing and crash, reported as a stack overflow).
//!
//! Supported: Linux on x86_64 and aarch64.

// Parts are used only by the translator's code and this module's tests,
// which builds without the compiler (the `loader` feature) do not have.
#![cfg_attr(not(all(test, carnac_compiled)), allow(dead_code, unused_imports))]

mod jmp;
mod registry;
mod signals;
#[cfg(all(test, carnac_compiled))]
mod tests;

pub(crate) use registry::{register, CodeInfo, CodeRegistration, TrapTable, TRAP_RECORD};
pub(crate) use signals::install as init_traps;

use std::any::Any;
use std::cell::{Cell, UnsafeCell};

/// A trap that unwound compiled code back to [`catch_traps`].
#[derive(Debug)]
pub(crate) struct Unwound {
    /// The pc of the trapping instruction.
    pub(crate) pc: usize,
    /// The frame pointer at the trap. The frame is gone by the time this is read:
    /// an identity, not something to dereference.
    pub(crate) fp: usize,
    /// The trap code registered for `pc` (a Cranelift `TrapCode`'s raw byte).
    pub(crate) trap_code: u8,
    /// The faulting data address, for SIGSEGV and SIGBUS (a guard-page access).
    pub(crate) fault_addr: Option<usize>,
    /// The wasm backtrace as pcs, innermost first: `pc`, then the return address
    /// into each calling wasm function (see [`walk_wasm_frames`]).
    pub(crate) backtrace: Vec<usize>,
    /// What a host function recorded with [`Activation::set_pending`] before the
    /// compiled code trapped on its status.
    pub(crate) pending: Option<Box<dyn Any + Send>>,
}

/// Where compiled code trapped, as the signal handler records it.
#[derive(Clone, Copy)]
struct TrapSite {
    pc: usize,
    fp: usize,
    code: u8,
    fault_addr: Option<usize>,
}

/// One entry of compiled code from the host, on this thread's stack of them.
///
/// Lives in [`catch_traps`]' frame; the signal handler and host functions reach
/// the innermost one through a thread-local pointer.
pub(crate) struct Activation {
    /// The enclosing activation (null for the outermost).
    prev: *const Activation,
    jmpbuf: UnsafeCell<jmp::JmpBuf>,
    /// Set by the signal handler when compiled code traps.
    site: Cell<Option<TrapSite>>,
    /// Filled by the trap landing.
    backtrace: Cell<Vec<usize>>,
    pending: Cell<Option<Box<dyn Any + Send>>>,
}

impl Activation {
    /// Records `payload` to come back as [`Unwound::pending`] when the compiled code
    /// traps, replacing any earlier one. For host functions: record, return a
    /// status, and let the compiled code trap on it.
    pub(crate) fn set_pending(&self, payload: Box<dyn Any + Send>) {
        self.pending.set(Some(payload));
    }

    /// Takes back what [`Activation::set_pending`] recorded.
    pub(crate) fn take_pending(&self) -> Option<Box<dyn Any + Send>> {
        self.pending.take()
    }

    /// Walks the trap's wasm frames into `backtrace`. Called by the landing.
    #[inline(never)]
    fn capture_backtrace(&self) {
        let Some(site) = self.site.get() else { return };
        let mut pcs = Vec::with_capacity(16);
        // SAFETY: `site` was recorded from the trapping context; its frames are still
        // on the stack (the landing runs below them).
        unsafe { walk_wasm_frames(site.pc, site.fp, |pc| pcs.push(pc)) };
        self.backtrace.set(pcs);
    }
}

thread_local! {
    /// The innermost activation of this thread, or null. Const-initialized and
    /// without a destructor, so reading it is a plain thread-local load: safe in
    /// a signal handler.
    static CURRENT: Cell<*const Activation> = const { Cell::new(std::ptr::null()) };
}

fn current_activation_ptr() -> *const Activation {
    CURRENT.try_with(Cell::get).unwrap_or(std::ptr::null())
}

/// Calls `f` with the innermost activation of this thread, if compiled code was
/// entered through [`catch_traps`] and has not returned.
pub(crate) fn with_current_activation<R>(f: impl FnOnce(Option<&Activation>) -> R) -> R {
    let current = current_activation_ptr();
    // SAFETY: a non-null CURRENT points to an activation in a `catch_traps` frame still
    // running on this thread (it is reset before that frame returns); the reference
    // does not escape `f`, which runs deeper on the same stack.
    f(unsafe { current.as_ref() })
}

/// Runs `f(arg)`, which enters compiled code, catching its traps: returns
/// `Err` with the trap if compiled code trapped, `Ok` if `f` returned.
///
/// Installs the signal handlers on first use (see [`init_traps`] to do it
/// earlier) and gives the thread an alternate signal stack if it has none.
///
/// # Safety
/// `f` must be safe to call with `arg`. When compiled code called (directly or
/// not) by `f` traps, `f`'s frame and all compiled frames below it are discarded
/// without running any code: `f` must hold nothing with a destructor across its
/// call into compiled code (see the module docs), and the compiled code must be
/// registered ([`register`]) and built with frame pointers.
///
/// # Panics
/// If the signal handlers cannot be installed (`sigaction` failing, which it
/// does not for these signals).
pub(crate) unsafe fn catch_traps(f: unsafe extern "C" fn(*mut u8), arg: *mut u8) -> Result<(), Unwound> {
    if let Err(e) = signals::install() {
        panic!("cannot install the signal handlers for compiled code: {e}");
    }
    signals::ensure_alt_stack();
    let activation = Activation {
        prev: current_activation_ptr(),
        jmpbuf: UnsafeCell::new(jmp::JmpBuf::new()),
        site: Cell::new(None),
        backtrace: Cell::new(Vec::new()),
        pending: Cell::new(None),
    };
    /// Pops the activation however this frame is left.
    struct Pop(*const Activation);
    impl Drop for Pop {
        fn drop(&mut self) {
            let _ = CURRENT.try_with(|c| c.set(self.0));
        }
    }
    let _pop = Pop(activation.prev);
    CURRENT.with(|c| c.set(&activation));
    // SAFETY: `activation` (and so its buffer) stays in place until this function
    // returns, after the call; a jump to the buffer only discards frames that hold
    // nothing with a destructor (the caller's contract for `f`, and the landing's).
    let jumped = unsafe { jmp::carnac_call_with_jmpbuf(activation.jmpbuf.get(), f, arg) };
    if jumped == 0 {
        return Ok(());
    }
    let site = activation.site.get().expect("a jump back from compiled code without a recorded trap");
    Err(Unwound {
        pc: site.pc,
        fp: site.fp,
        trap_code: site.code,
        fault_addr: site.fault_addr,
        backtrace: activation.backtrace.take(),
        pending: activation.pending.take(),
    })
}

/// Calls `f` with the pc of each wasm frame, innermost first: `pc` (where the
/// innermost frame is), then, following the frame-pointer chain from `fp` (the
/// innermost frame's frame pointer), the return address into each caller, as
/// long as it lies in a registered wasm function ([`CodeInfo::is_wasm_function`]);
/// stops at the first that does not (the entry trampoline, or host code).
///
/// The frame layout is Cranelift's with `preserve_frame_pointers` on both
/// supported architectures: `[fp]` holds the caller's frame pointer and
/// `[fp + 8]` the return address. A trap in a prologue, before the frame is set
/// up, misses its caller's frame (`fp` is still the caller's then).
///
/// # Safety
/// `fp` must be the frame pointer of a live compiled frame (or of the frame `pc`
/// is in) on this thread's stack, with the chain above it intact.
pub(crate) unsafe fn walk_wasm_frames(pc: usize, fp: usize, mut f: impl FnMut(usize)) {
    f(pc);
    let mut fp = fp;
    // Frame pointers of a sane chain are aligned and strictly increase (the stack
    // grows down); anything else ends the walk rather than read wild memory.
    while fp != 0 && fp.is_multiple_of(std::mem::align_of::<usize>()) {
        // SAFETY: `fp` is the frame pointer of a live compiled frame (the caller's
        // contract for the first, the loop condition below for the rest), whose
        // frame record holds the saved frame pointer and the return address.
        let (caller_fp, return_address) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        if !registry::is_wasm_function(return_address) {
            break;
        }
        f(return_address);
        if caller_fp <= fp {
            break;
        }
        fp = caller_fp;
    }
}
