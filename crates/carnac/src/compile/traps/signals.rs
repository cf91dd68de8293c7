//! The signal handler: turns a fault in compiled code into a trap, and leaves
//! every other fault to whoever handled it before us.
//!
//! Compiled code traps by faulting: an access to a guard page (SIGSEGV, or
//! SIGBUS), a Cranelift `trap`/`trapz`/`trapnz` (`ud2` on x86_64, `udf` on
//! aarch64: SIGILL), or on x86_64 a hardware division fault (`idiv`/`div`:
//! SIGFPE). Cranelift records each instruction that may trap, with its trap
//! code; the registry ([`super::registry`]) maps the pc back to that code.
//!
//! **What the handler does.** It runs in the interrupted thread, on its
//! alternate signal stack if it has one, with the guest's registers in the
//! `ucontext`. If this thread is inside [`super::catch_traps`] and the pc is a
//! trap site of registered code, it records the trap (pc, frame pointer, code,
//! faulting address) in the innermost activation and rewrites the `ucontext` so
//! that, when the handler *returns*, the thread resumes in [`trap_landing`] as
//! if the trapping instruction had called it (the trapping pc as its return
//! address, the stack pointer just below the guest's). Nothing else happens in
//! signal context: no allocation, no locks, no jump out of the handler. The
//! kernel's `sigreturn` then restores the signal mask and leaves the alternate
//! stack, as after any handler.
//!
//! **Why a landing, not a jump from the handler.** The wasm backtrace must be
//! read from the frames of the compiled code before they are discarded. Walked
//! from the handler, it would need a buffer allocated in advance (a backtrace
//! can be as deep as the stack); walked after the jump, the frames are already
//! overwritten. The landing runs as ordinary code *below* those frames, so it can
//! walk them and allocate (the interrupted compiled code holds no locks of the
//! allocator or anyone else), and then jumps to the activation's buffer
//! ([`super::jmp`]), discarding the compiled frames and itself.
//!
//! **Everything else is chained.** A fault at a pc that is not a trap site of
//! registered code, or on a thread with no activation, goes to the handler that
//! was installed before ours (typically Rust's standard library's, which reports
//! stack overflows): called directly if it is a function; if it was the default
//! action (or ignore), that action is restored and the handler returns, so the
//! faulting instruction runs again and the process dies of the signal exactly as
//! it would have without us.
//!
//! Handlers are installed once per process (`SA_SIGINFO` for the context,
//! `SA_ONSTACK` to run on the alternate stack, so that a host stack overflow
//! still gets its message, `SA_NODEFER` so that a fault inside the handler itself
//! re-enters it and is chained instead of being blocked), and never removed.

use super::{registry, Activation, TrapSite};
use std::cell::{Cell, RefCell, UnsafeCell};
use std::io;
use std::sync::OnceLock;

/// The signals compiled code traps with.
const SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// The action each of [`SIGNALS`] had before ours, same order. Written once, in
/// [`install`], before our handler is installed; only read afterwards.
struct PreviousActions([UnsafeCell<libc::sigaction>; 4]);

// SAFETY: written only by `install_all`, which runs once (OnceLock) before any of
// our handlers can run; read-only from then on.
unsafe impl Sync for PreviousActions {}

// SAFETY: an all-zero `sigaction` is a valid value (SIG_DFL, no flags, empty mask).
const NO_ACTION: libc::sigaction = unsafe { std::mem::zeroed() };
static PREVIOUS: PreviousActions = PreviousActions([const { UnsafeCell::new(NO_ACTION) }; 4]);

/// Installs the trap handlers, once per process. Later calls return the first
/// call's outcome. Call it early (when an engine is created) so that handlers
/// installed after ours by other libraries chain to ours.
pub(crate) fn install() -> io::Result<()> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    // SAFETY: runs once, before any handler of ours exists (see `install_all`).
    match INSTALLED.get_or_init(|| unsafe { install_all() }) {
        Ok(()) => Ok(()),
        Err(errno) => Err(io::Error::from_raw_os_error(*errno)),
    }
}

/// # Safety
/// Must run at most once per process.
unsafe fn install_all() -> Result<(), i32> {
    for (i, &signal) in SIGNALS.iter().enumerate() {
        // First record the current action, then install ours: our handler may run
        // (on another thread) as soon as it is installed, and then reads PREVIOUS.
        // SAFETY: a query into our own slot, which nothing else reads or writes yet.
        if unsafe { libc::sigaction(signal, std::ptr::null(), PREVIOUS.0[i].get()) } != 0 {
            return Err(io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL));
        }
        let mut action = NO_ACTION;
        action.sa_sigaction = handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK;
        // SAFETY: `action.sa_mask` is a valid sigset to initialize; `action` is a
        // complete action whose handler has the SA_SIGINFO signature.
        let rc = unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL));
        }
    }
    Ok(())
}

/// The registers the trap machinery reads from (and writes to) the interrupted context.
struct Regs {
    pc: usize,
    fp: usize,
    sp: usize,
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod context {
    use super::Regs;

    /// # Safety
    /// `cx` is the `ucontext_t` given to an SA_SIGINFO handler.
    pub(super) unsafe fn read(cx: *mut libc::c_void) -> Regs {
        // SAFETY: per the contract, a valid ucontext_t.
        let gregs = unsafe { &(*cx.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
        Regs {
            pc: gregs[libc::REG_RIP as usize] as usize,
            fp: gregs[libc::REG_RBP as usize] as usize,
            sp: gregs[libc::REG_RSP as usize] as usize,
        }
    }

    /// Makes the interrupted thread resume, when the handler returns, in
    /// `landing(arg)` as if called from `return_to` with the stack at `sp`:
    /// through `carnac_trap_landing_x64`, which pushes the return address (the
    /// handler must not write below the guest's stack pointer itself: the kernel's
    /// signal frame, which `sigreturn` still has to read, may be there).
    ///
    /// # Safety
    /// As for `read`; `sp` must be a usable, 16-byte aligned stack pointer.
    pub(super) unsafe fn resume_in(cx: *mut libc::c_void, landing: usize, arg: usize, return_to: usize, sp: usize) {
        // SAFETY: per the contract, a valid ucontext_t, which the kernel restores on return.
        let gregs = unsafe { &mut (*cx.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
        gregs[libc::REG_RIP as usize] = super::super::jmp::carnac_trap_landing_x64 as *const () as usize as i64;
        gregs[libc::REG_RSP as usize] = sp as i64;
        gregs[libc::REG_RDI as usize] = arg as i64;
        gregs[libc::REG_RSI as usize] = return_to as i64;
        gregs[libc::REG_RDX as usize] = landing as i64;
    }
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod context {
    use super::Regs;

    /// # Safety
    /// `cx` is the `ucontext_t` given to an SA_SIGINFO handler.
    pub(super) unsafe fn read(cx: *mut libc::c_void) -> Regs {
        // SAFETY: per the contract, a valid ucontext_t.
        let mc = unsafe { &(*cx.cast::<libc::ucontext_t>()).uc_mcontext };
        Regs { pc: mc.pc as usize, fp: mc.regs[29] as usize, sp: mc.sp as usize }
    }

    /// Makes the interrupted thread resume, when the handler returns, in
    /// `landing(arg)` as if called from `return_to` (the link register) with the
    /// stack at `sp`.
    ///
    /// # Safety
    /// As for `read`; `sp` must be a usable, 16-byte aligned stack pointer.
    pub(super) unsafe fn resume_in(cx: *mut libc::c_void, landing: usize, arg: usize, return_to: usize, sp: usize) {
        // SAFETY: per the contract, a valid ucontext_t, which the kernel restores on return.
        let mc = unsafe { &mut (*cx.cast::<libc::ucontext_t>()).uc_mcontext };
        mc.pc = landing as u64;
        mc.sp = sp as u64;
        mc.regs[0] = arg as u64;
        mc.regs[30] = return_to as u64;
    }
}

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
compile_error!(
    "the compiled tier's trap handling supports Linux on x86_64 and aarch64; build carnac without the `cranelift` and `loader` features"
);

unsafe extern "C" fn handler(signum: libc::c_int, info: *mut libc::siginfo_t, cx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo and ucontext to an SA_SIGINFO handler.
    if unsafe { handle_trap(signum, info, cx) } {
        return;
    }
    // SAFETY: as above; these are the arguments this handler was given.
    unsafe { chain(signum, info, cx) }
}

/// Turns the fault into a trap of the innermost activation if it is one (see the
/// module docs). Async-signal-safe: a thread-local read, the lock-free registry
/// lookup, and plain stores.
///
/// # Safety
/// The arguments of an SA_SIGINFO handler.
unsafe fn handle_trap(signum: libc::c_int, info: *mut libc::siginfo_t, cx: *mut libc::c_void) -> bool {
    let activation = super::current_activation_ptr();
    if activation.is_null() {
        return false;
    }
    // SAFETY: per the contract.
    let regs = unsafe { context::read(cx) };
    let Some(code) = registry::trap_code_at(regs.pc) else { return false };
    // SAFETY: a non-null CURRENT is the innermost live activation of this thread:
    // `catch_traps` is still running below us (it clears CURRENT before returning).
    let activation = unsafe { &*activation };
    if activation.site.get().is_some() {
        // Already trapping: the landing has not jumped yet. A second trap site cannot
        // be reached from there; treat it as a crash rather than loop.
        return false;
    }
    let fault_addr = match signum {
        // SAFETY: for these signals the kernel fills in si_addr.
        libc::SIGSEGV | libc::SIGBUS => Some(unsafe { (*info).si_addr() } as usize),
        _ => None,
    };
    activation.site.set(Some(TrapSite { pc: regs.pc, fp: regs.fp, code, fault_addr }));
    // The landing's stack: below the guest's stack pointer, past a red zone (in case
    // the code uses one), 16-byte aligned as at a call.
    let sp = (regs.sp - 128) & !15;
    // SAFETY: per the contract; `sp` is in this thread's stack, below everything in use.
    unsafe { context::resume_in(cx, trap_landing as *const () as usize, activation as *const _ as usize, regs.pc, sp) };
    true
}

/// Where a trapping thread resumes after the handler (see the module docs): reads
/// the wasm backtrace from the frames still above, then jumps to the activation's
/// buffer, making its `catch_traps` return the trap.
///
/// # Safety
/// Only entered by `handle_trap`'s rewritten context, with the activation that
/// recorded the trap.
unsafe extern "C" fn trap_landing(activation: *const Activation) -> ! {
    // SAFETY: the activation recorded the trap and its catch_traps is still running.
    let activation = unsafe { &*activation };
    // Everything allocated here is owned by the activation or dropped before the jump
    // (this frame is discarded by it and must hold nothing with a destructor).
    activation.capture_backtrace();
    // SAFETY: the buffer was filled by this activation's carnac_call_with_jmpbuf, which
    // is still running below; the frames in between are compiled code, the caller's
    // trampoline and this one, none holding anything with a destructor.
    unsafe { super::jmp::carnac_longjmp(activation.jmpbuf.get()) }
}

/// Hands the signal to the action installed before ours (see the module docs).
///
/// # Safety
/// The arguments of an SA_SIGINFO handler for one of [`SIGNALS`].
unsafe fn chain(signum: libc::c_int, info: *mut libc::siginfo_t, cx: *mut libc::c_void) {
    let Some(i) = SIGNALS.iter().position(|&s| s == signum) else { return };
    // SAFETY: PREVIOUS is read-only once handlers are installed (see `install_all`).
    let previous = unsafe { &*PREVIOUS.0[i].get() };
    let action = previous.sa_sigaction;
    if action == libc::SIG_DFL || action == libc::SIG_IGN {
        // Restore it and return: the instruction faults again and gets the default
        // action (the kernel does not let a synchronous fault be ignored).
        // SAFETY: `previous` is a complete action obtained from the kernel.
        unsafe { libc::sigaction(signum, previous, std::ptr::null_mut()) };
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: with SA_SIGINFO, the kernel would have called it with this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(action) };
        f(signum, info, cx)
    } else {
        // SAFETY: without SA_SIGINFO, a plain `void handler(int)`.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(action) };
        f(signum)
    }
}

/// Bytes of the alternate signal stack given to threads that have none.
const ALT_STACK_SIZE: usize = 64 << 10;

/// An alternate signal stack this module mapped for its thread (below it a guard
/// page); unregistered and unmapped when the thread exits.
struct AltStack {
    base: *mut libc::c_void,
    mapped: usize,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let stack = (self.base as usize + self.mapped - ALT_STACK_SIZE) as *mut libc::c_void;
        // SAFETY: queries then, if it is still ours, disables this thread's alternate
        // stack; then unmaps exactly the region mapped in `ensure_alt_stack`, which no
        // signal can be using any more.
        unsafe {
            let mut current: libc::stack_t = std::mem::zeroed();
            if libc::sigaltstack(std::ptr::null(), &mut current) == 0 && current.ss_sp == stack {
                let disable = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
                libc::sigaltstack(&disable, std::ptr::null_mut());
            }
            libc::munmap(self.base, self.mapped);
        }
    }
}

/// Gives this thread an alternate signal stack if it has none, so that the
/// handler can run (and chain to one that reports it) when the thread overflows
/// its stack. Threads started by Rust's standard library already have one;
/// threads created otherwise (by C code) may not. Best effort: on failure the
/// thread goes without, as before.
pub(crate) fn ensure_alt_stack() {
    thread_local! {
        static CHECKED: Cell<bool> = const { Cell::new(false) };
        static OURS: RefCell<Option<AltStack>> = const { RefCell::new(None) };
    }
    if CHECKED.with(|c| c.replace(true)) {
        return;
    }
    // SAFETY: all zeroes is a valid stack_t.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a query of this thread's alternate stack into a local.
    let queried = unsafe { libc::sigaltstack(std::ptr::null(), &mut current) } == 0;
    if !queried || current.ss_flags & libc::SS_DISABLE == 0 {
        return;
    }
    let page = crate::compile::code_memory::page_size();
    let mapped = page + ALT_STACK_SIZE;
    // SAFETY: a new anonymous mapping, aliasing nothing; checked below.
    let base = unsafe {
        libc::mmap(std::ptr::null_mut(), mapped, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
    };
    if base == libc::MAP_FAILED {
        return;
    }
    let alt = AltStack { base, mapped };
    let stack = (base as usize + page) as *mut libc::c_void;
    // SAFETY: the part of our new mapping above its guard page.
    if unsafe { libc::mprotect(stack, ALT_STACK_SIZE, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
        return;
    }
    let new = libc::stack_t { ss_sp: stack, ss_flags: 0, ss_size: ALT_STACK_SIZE };
    // SAFETY: `new` describes mapped read-write memory that `alt` keeps until the thread
    // exits (its drop unregisters it first).
    if unsafe { libc::sigaltstack(&new, std::ptr::null_mut()) } != 0 {
        return;
    }
    // If the thread is already tearing down its thread-locals, `alt` drops here:
    // it unregisters and unmaps the stack at once.
    let _ = OURS.try_with(|ours| *ours.borrow_mut() = Some(alt));
}
