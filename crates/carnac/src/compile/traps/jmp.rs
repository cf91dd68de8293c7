//! A minimal setjmp/longjmp pair, in assembly, for leaving compiled code.
//!
//! Rust has no `setjmp`, and a C `setjmp` called from Rust would be unsound
//! anyway: it returns twice, which Rust's code generation does not know about
//! (values kept in registers or stack slots across it may be stale on the second
//! return). So the "set" half is fused with the call it protects:
//! [`carnac_call_with_jmpbuf`]`(buf, f, arg)` saves the callee-saved registers,
//! the stack pointer and a resume address into `buf`, calls `f(arg)`, and
//! returns 0. [`carnac_longjmp`]`(buf)`, called anywhere below that call on the
//! same stack, restores those registers and resumes at the resume address, which
//! makes `carnac_call_with_jmpbuf` return 1. Either way, to its Rust caller it is
//! an ordinary function that returns once, with the callee-saved registers it
//! had at the call: nothing returns twice.
//!
//! **The invariant that makes the jump sound:** every frame between
//! `carnac_call_with_jmpbuf` and the `carnac_longjmp` is discarded without
//! running any code, so none of them may own anything with a destructor (Rust's
//! "plain old frames"): only compiled wasm code, `f` if it is a thin trampoline
//! into it that holds no values with `Drop`, and the trap landing in
//! `super::signals` (which drops everything before it jumps). Host functions
//! called from compiled code are never jumped over: they return a status and the
//! compiled code traps after they have returned (see `super`).
//!
//! Not saved, as in C's `setjmp`: the floating-point control state (MXCSR/FPCR),
//! which compiled code does not change, and the signal mask, which the trap path
//! never changes (the handler returns normally; see `super::signals`).

/// Saved state for [`carnac_longjmp`]: callee-saved registers, stack pointer and
/// resume address. x86_64: rbx rbp r12 r13 r14 r15 rsp pc. aarch64: x19-x28,
/// d8-d15, x29 sp pc.
#[repr(C, align(16))]
pub(crate) struct JmpBuf([usize; 22]);

impl JmpBuf {
    pub(crate) const fn new() -> JmpBuf {
        JmpBuf([0; 22])
    }
}

extern "C" {
    /// Saves the current context into `buf`, calls `f(arg)`, and returns 0; or
    /// returns 1 when [`carnac_longjmp`] is called with `buf` while `f` runs.
    ///
    /// # Safety
    /// `buf` must stay valid (and unmoved) while `f` runs. A jump must only skip
    /// frames without destructors (see the module docs).
    pub(crate) fn carnac_call_with_jmpbuf(buf: *mut JmpBuf, f: unsafe extern "C" fn(*mut u8), arg: *mut u8) -> u32;

    /// Resumes the `carnac_call_with_jmpbuf` that filled `buf`, which returns 1.
    ///
    /// # Safety
    /// That call must still be running on this thread's stack (below this one's
    /// frame), and every frame in between must be free of destructors.
    pub(crate) fn carnac_longjmp(buf: *const JmpBuf) -> !;

    /// The x86_64 trap landing's first instruction (see `super::signals`): entered
    /// by the signal handler's rewritten context with rdi = argument, rsi = the
    /// trapping pc, rdx = the landing function, and a 16-byte aligned rsp; pushes
    /// rsi as a return address (so the landing looks called from the trap site)
    /// and jumps to rdx. Not callable from Rust.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn carnac_trap_landing_x64();
}

#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl carnac_call_with_jmpbuf",
    ".hidden carnac_call_with_jmpbuf",
    ".type carnac_call_with_jmpbuf, @function",
    "carnac_call_with_jmpbuf:",
    ".cfi_startproc",
    // A normal frame, so frame-pointer walks (debuggers, profilers) pass through.
    "push rbp",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbp, -16",
    "mov rbp, rsp",
    ".cfi_def_cfa_register rbp",
    // rdi = buf, rsi = f, rdx = arg.
    "mov [rdi], rbx",
    "mov [rdi + 8], rbp",
    "mov [rdi + 16], r12",
    "mov [rdi + 24], r13",
    "mov [rdi + 32], r14",
    "mov [rdi + 40], r15",
    "mov [rdi + 48], rsp",
    "lea rax, [rip + 2f]",
    "mov [rdi + 56], rax",
    // rsp is 16-aligned here (the return address plus rbp), as the call needs.
    "mov rdi, rdx",
    "call rsi",
    "xor eax, eax",
    "pop rbp",
    ".cfi_def_cfa rsp, 8",
    "ret",
    // Resumed by carnac_longjmp with rbx, rbp, r12-r15 and rsp as saved above.
    ".cfi_def_cfa rbp, 16",
    "2:",
    "mov eax, 1",
    "pop rbp",
    ".cfi_def_cfa rsp, 8",
    "ret",
    ".cfi_endproc",
    ".size carnac_call_with_jmpbuf, . - carnac_call_with_jmpbuf",
    //
    ".p2align 4",
    ".globl carnac_longjmp",
    ".hidden carnac_longjmp",
    ".type carnac_longjmp, @function",
    "carnac_longjmp:",
    ".cfi_startproc",
    "mov rbx, [rdi]",
    "mov rbp, [rdi + 8]",
    "mov r12, [rdi + 16]",
    "mov r13, [rdi + 24]",
    "mov r14, [rdi + 32]",
    "mov r15, [rdi + 40]",
    "mov rsp, [rdi + 48]",
    "jmp qword ptr [rdi + 56]",
    ".cfi_endproc",
    ".size carnac_longjmp, . - carnac_longjmp",
    //
    ".p2align 4",
    ".globl carnac_trap_landing_x64",
    ".hidden carnac_trap_landing_x64",
    ".type carnac_trap_landing_x64, @function",
    "carnac_trap_landing_x64:",
    "push rsi",
    "jmp rdx",
    ".size carnac_trap_landing_x64, . - carnac_trap_landing_x64",
);

#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl carnac_call_with_jmpbuf",
    ".hidden carnac_call_with_jmpbuf",
    ".type carnac_call_with_jmpbuf, %function",
    "carnac_call_with_jmpbuf:",
    ".cfi_startproc",
    // `bti c`: a valid indirect-call target should the binary enable BTI (a no-op otherwise).
    "hint #34",
    // A normal frame record, so frame-pointer walks pass through.
    "stp x29, x30, [sp, #-16]!",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset x29, -16",
    ".cfi_offset x30, -8",
    "mov x29, sp",
    ".cfi_def_cfa x29, 16",
    // x0 = buf, x1 = f, x2 = arg.
    "stp x19, x20, [x0, #0]",
    "stp x21, x22, [x0, #16]",
    "stp x23, x24, [x0, #32]",
    "stp x25, x26, [x0, #48]",
    "stp x27, x28, [x0, #64]",
    "stp d8, d9, [x0, #80]",
    "stp d10, d11, [x0, #96]",
    "stp d12, d13, [x0, #112]",
    "stp d14, d15, [x0, #128]",
    "mov x9, sp",
    "stp x29, x9, [x0, #144]",
    "adr x9, 2f",
    "str x9, [x0, #160]",
    "mov x0, x2",
    "blr x1",
    "mov w0, #0",
    "ldp x29, x30, [sp], #16",
    ".cfi_def_cfa sp, 0",
    ".cfi_restore x29",
    ".cfi_restore x30",
    "ret",
    // Resumed by carnac_longjmp with x19-x28, d8-d15, x29 and sp as saved above.
    ".cfi_def_cfa x29, 16",
    ".cfi_offset x29, -16",
    ".cfi_offset x30, -8",
    "2:",
    // `bti j`: a valid indirect-jump target under BTI (a no-op otherwise).
    "hint #36",
    "mov w0, #1",
    "ldp x29, x30, [sp], #16",
    ".cfi_def_cfa sp, 0",
    ".cfi_restore x29",
    ".cfi_restore x30",
    "ret",
    ".cfi_endproc",
    ".size carnac_call_with_jmpbuf, . - carnac_call_with_jmpbuf",
    //
    ".p2align 4",
    ".globl carnac_longjmp",
    ".hidden carnac_longjmp",
    ".type carnac_longjmp, %function",
    "carnac_longjmp:",
    ".cfi_startproc",
    "hint #34",
    "ldp x19, x20, [x0, #0]",
    "ldp x21, x22, [x0, #16]",
    "ldp x23, x24, [x0, #32]",
    "ldp x25, x26, [x0, #48]",
    "ldp x27, x28, [x0, #64]",
    "ldp d8, d9, [x0, #80]",
    "ldp d10, d11, [x0, #96]",
    "ldp d12, d13, [x0, #112]",
    "ldp d14, d15, [x0, #128]",
    "ldp x29, x9, [x0, #144]",
    "mov sp, x9",
    "ldr x9, [x0, #160]",
    "br x9",
    ".cfi_endproc",
    ".size carnac_longjmp, . - carnac_longjmp",
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct Probe {
        buf: JmpBuf,
        reached: Cell<u32>,
        jump: bool,
    }

    unsafe extern "C" fn body(arg: *mut u8) {
        // SAFETY: `arg` is the `Probe` passed by the test, alive for the call.
        let probe = unsafe { &*(arg as *const Probe) };
        probe.reached.set(probe.reached.get() + 1);
        if probe.jump {
            // SAFETY: called below the carnac_call_with_jmpbuf that filled `buf`; this
            // frame holds nothing with a destructor.
            unsafe { carnac_longjmp(&probe.buf) };
        }
        probe.reached.set(probe.reached.get() + 10);
    }

    #[test]
    fn call_returns_0_and_longjmp_returns_1_with_callee_saved_state_intact() {
        for jump in [false, true] {
            // Values live across the call in callee-saved registers must survive the jump.
            let keep: Vec<u64> = (0..32).map(|i| std::hint::black_box(i * 3)).collect();
            let x = std::hint::black_box(1.5f64);
            let mut probe = Probe { buf: JmpBuf::new(), reached: Cell::new(0), jump };
            let p = &mut probe as *mut Probe;
            // SAFETY: `probe` outlives the call and is not moved; `body` only jumps over itself.
            let r = unsafe { carnac_call_with_jmpbuf(&raw mut (*p).buf, body, p.cast()) };
            assert_eq!(r, jump as u32);
            assert_eq!(probe.reached.get(), if jump { 1 } else { 11 });
            assert_eq!(std::hint::black_box(x) * 2.0, 3.0);
            assert_eq!(keep.iter().sum::<u64>(), 3 * (0..32).sum::<u64>());
        }
    }
}
