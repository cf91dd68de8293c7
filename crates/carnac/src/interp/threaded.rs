//! The threaded executor: the hot path of the interpreter. Every instruction
//! that runs often (arithmetic, copies, selects, branches, loads, stores,
//! globals, fuel and interrupt checks, and calls and returns inside one
//! instance) has a handler function of its own, stored beside the instruction
//! (`code::Cell`), and a handler ends by calling the next instruction's handler.
//!
//! Why: the alternative, one `loop { match }` over ~270 arms, puts every
//! instruction in one huge function whose register allocation is a compromise
//! for all of them, and whose dispatch is a tag load, a jump-table load and an
//! add before the jump. A handler is a small function: the frame pointer, the
//! memory base and length, the accumulator and a context pointer arrive in
//! argument registers, fields are read straight from the instruction, and
//! dispatch is one load of the next handler and an indirect jump (9 machine
//! instructions and 6 memory accesses for an `i32.add`, against 13 and 8).
//! Measured: 13-35% fewer instructions executed on loop code, 5-18% less time
//! (benches/README.md has the harness).
//!
//! The accumulator ([`ACC`]): a value that one instruction computes and only
//! the next one reads travels in the fifth argument register instead of a
//! frame slot, as in wasmi's register-accumulator handlers: `i32.add` with its
//! left operand there is 5 machine instructions instead of 9, and the store
//! forwarded to a load between the two (several cycles on a dependent chain)
//! is gone. Each handler is compiled once per accumulator form it has (which of
//! its result and operands is the accumulator, by field name), the translator
//! picks pairs (`Translator::link_acc`) and checks them after its last rewrite
//! (`check_acc`). Branches need no code start: their targets are distances.
//!
//! Tail calls: in optimised builds the call that ends a handler is in tail
//! position with the handler's own signature, which LLVM compiles to a jump (a
//! sibling call), so a run of instructions uses no host stack. Rust does not
//! guarantee it (`become` is not stable), so a test reads the release build's
//! machine code and fails if any handler calls instead of jumping (it runs in
//! CI: the README's test command includes `cargo test --release -p carnac`).
//! Three things keep the calls siblings: all handlers share one signature of
//! six register arguments, nothing is live after the call, and LLVM is told
//! not to merge a branch's two dispatches into one (`.cargo/config.toml`).
//! Unoptimised builds make no sibling calls, so there (`debug_assertions`)
//! each handler returns the next instruction to a driver loop in [`run`].
//!
//! What it must not touch: host calls, calls to other instances, memory and
//! table instructions that may grow or copy, SIMD, and anything that needs the
//! store beyond the pointers in [`CallCx`]. Those instructions have the `exit`
//! handler: reaching one ends the run, and `exec` runs it with the whole store
//! at hand. So do the uncommon cases of the handled ones (a call whose stack
//! must grow or whose callee is not translated yet, a return to another
//! instance or to the host). A handler that traps returns the trap kind, and
//! `exec` builds the trap with its backtrace from the frames.
//!
//! `unsafe`: handlers rely on the invariants `exec` documents (slot operands
//! are below the frame size, branch targets are inside the function's code,
//! memory accesses are checked against `mem_len` first), on each cell's handler
//! being the one for its instruction (`handler_for`, at translation), and on
//! the `CallCx` pointers staying valid and unaliased for the run.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use super::code::{Cell, CompiledFunc, Instr};
use super::exec::Frame;
use super::ops;
use crate::module::ModuleInner;
use crate::runtime::memory::{mark_written_range, CHUNK_MAP_OFFSET, CHUNK_SHIFT};
use crate::runtime::store::{FuncEntity, FuncKind};
use crate::runtime::trap::TrapKind;

/// A handler: runs the instruction at `ip` and those after it, until one that
/// needs `exec` (see [`Outcome`] for what the result encodes).
pub(crate) type Handler =
    unsafe fn(ip: *const Cell, fp: *mut u64, mem_base: *mut u8, mem_len: usize, acc: u64, cx: *mut CallCx) -> usize;

/// What handlers need beyond their arguments, set up by `exec` for each run:
/// for calls and returns, `exec`'s frame list (as raw bounds, so that a call is
/// a check and a write) and the end of its value stack, and the current frame's
/// state (updated by calls and returns: when a run ends, `frames_top`, `base`
/// and `fp` are the current frame's); the globals,
/// fuel and interrupt flag of the store. Nothing else uses what these point to
/// during the run.
#[repr(C)]
pub(crate) struct CallCx {
    /// The frame list's first frame, and where the next frame goes (its length,
    /// which `exec` sets back once the run ends).
    pub frames_bottom: *const Frame,
    pub frames_top: *mut Frame,
    /// Frames below this one are complete; from it up to `frames_top` are the
    /// ones this run's calls pushed, which hold only `ip` and `base` (the module
    /// and instance are the run's: `exec` writes them in once the run ends). A
    /// call writes two words instead of five (and needs no callee-saved register).
    pub filled_top: *mut Frame,
    /// Calls within a run stop (and go to `exec`) at this frame: the call depth
    /// limit, or the frame list's capacity if lower.
    pub frames_end: *const Frame,
    /// One past the value stack's last slot: a callee's frame must end by here.
    pub stack_end: *const u64,
    pub base: usize,
    pub module: *const ModuleInner,
    /// The module's ready code by defined function (`ModuleInner::ready_list`):
    /// a call reads its callee's code here, one load shorter than through `module`.
    pub ready: *const AtomicPtr<CompiledFunc>,
    pub instance: u32,
    pub fp: *mut u64,
    /// The accumulator between two handlers, kept here only by the unoptimised
    /// builds' driver loop (optimised builds pass it in a register).
    pub acc: u64,
    /// The current instance's table 0 (null and 0 without one), and the store's
    /// functions: for `call_indirect` (tables do not change during a run:
    /// every table instruction ends it).
    pub table0: *const u64,
    pub table0_len: usize,
    pub funcs: *const FuncEntity,
    /// The current instance's global value cells, by global index (its context
    /// block's array, `runtime::vmctx`).
    pub globals: *const *mut u128,
    /// The store's remaining fuel and its interrupt flag.
    pub fuel: *mut u64,
    pub interrupt: *const AtomicBool,
    /// The engine's epoch and the store's check word (its epoch deadline, or 0
    /// when interrupted): `CheckEpoch` leaves the run once `epoch >= check`.
    pub epoch: *const AtomicU64,
    pub check: *const AtomicU64,
    /// Set by a handler that traps, before it ends the run, with the trapping
    /// instruction (which tells the function, for the backtrace).
    pub trap: TrapKind,
    pub trap_at: *const Cell,
}

/// The accumulator: a value passed from one handler to the next in a register
/// (the `acc` argument) instead of through a frame slot. The translator marks a
/// result that only the next instruction reads (`translate`, `mark_acc`): the
/// producer's result field and the consumer's operand field then hold
/// `ACC | slot` (slots are below 2^31), and `handler_for` picks the handler
/// built for that form, in which those fields are the accumulator: the store
/// and the load between the two, and the latency of a store forwarded to a
/// load, are gone. Nothing else sees the accumulator: `exec` runs no marked
/// instruction, and a run starts and ends at unmarked ones.
pub(super) const ACC: u32 = 1 << 31;
/// Form bits: the result goes to the accumulator (`dst`); the first operand
/// (`lhs`, `src`, `addr`, `cond`) or the second (`rhs`, `value`) comes from it.
pub(super) const ACC_DST: u8 = 1;
pub(super) const ACC_A: u8 = 2;
pub(super) const ACC_B: u8 = 4;
/// Forms 0 (no accumulator) to `ACC_DST | ACC_B`; at most one operand is the
/// accumulator.
const NUM_FORMS: usize = 6;

/// The form bit of an instruction field, by name (0: not an operand or result).
const fn acc_bit(name: &str) -> u8 {
    const fn is(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    if is(name, "dst") {
        ACC_DST
    } else if is(name, "lhs") || is(name, "src") || is(name, "addr") || is(name, "cond") {
        ACC_A
    } else if is(name, "rhs") || is(name, "value") {
        ACC_B
    } else {
        0
    }
}

/// An instruction field: only a slot field (`u32`) can name the accumulator.
/// (`bit` is the form bit of the field's name, 0 for fields that are neither
/// an operand nor the result.)
trait AccField {
    /// `bit` if this field names the accumulator.
    fn acc_bits(&self, bit: u8) -> u8;
    /// Back from `ACC | slot` to `slot`.
    fn clear_acc(&mut self, bit: u8, slot: u32);
    fn visit_acc(&self, bit: u8, visit: &mut dyn FnMut(u8, u32));
    /// `bit` if this is an operand field that names `slot`.
    fn reads(&self, bit: u8, slot: u32) -> u8;
    /// From `slot` to `ACC | slot`, if this field's bit is `want`.
    fn mark(&mut self, bit: u8, want: u8, slot: u32);
}

impl AccField for u32 {
    fn acc_bits(&self, bit: u8) -> u8 {
        if bit != 0 && *self & ACC != 0 {
            bit
        } else {
            0
        }
    }
    fn clear_acc(&mut self, bit: u8, slot: u32) {
        if bit != 0 && *self == ACC | slot {
            *self = slot;
        }
    }
    fn visit_acc(&self, bit: u8, visit: &mut dyn FnMut(u8, u32)) {
        if bit != 0 && *self & ACC != 0 {
            visit(bit, *self & !ACC);
        }
    }
    fn reads(&self, bit: u8, slot: u32) -> u8 {
        if bit & (ACC_A | ACC_B) != 0 && *self == slot {
            bit
        } else {
            0
        }
    }
    fn mark(&mut self, bit: u8, want: u8, slot: u32) {
        if bit != 0 && bit == want && *self == slot {
            *self = ACC | slot;
        }
    }
}

macro_rules! not_acc_fields {
    ($($t:ty),*) => {$(
        impl AccField for $t {
            fn acc_bits(&self, _: u8) -> u8 {
                0
            }
            fn clear_acc(&mut self, _: u8, _: u32) {}
            fn visit_acc(&self, _: u8, _: &mut dyn FnMut(u8, u32)) {}
            fn reads(&self, _: u8, _: u32) -> u8 {
                0
            }
            fn mark(&mut self, _: u8, _: u8, _: u32) {}
        }
    )*};
}
not_acc_fields!(u64, i32, bool);

/// The form bit of one half of a packed operand field, by the field's name:
/// `ab`, `xy` and `bi` pack two operands (low, high); `ds` a result and an
/// operand. Halves are marked by [`PACKED_ACC`].
const fn packed_bit(name: &str, high: bool) -> u8 {
    let n = name.as_bytes();
    match (n, high) {
        (b"ab" | b"xy" | b"bi", false) => ACC_A,
        (b"ab" | b"xy" | b"bi", true) => ACC_B,
        (b"ds", false) => ACC_DST,
        (b"ds", true) => ACC_A,
        _ => 0,
    }
}

/// The mark of an operand in the accumulator in one half of a packed field
/// (which holds 16-bit slots, so it cannot carry [`ACC`]): `0xffff`. Used only
/// in functions whose frame is smaller than that (no slot is `0xffff`), set
/// only by the translator's last pass (`check_acc`: no rewrite comes after it),
/// and only in the consumer: its producer's result field holds `ACC | slot`.
pub(super) const PACKED_ACC: u32 = 0xffff;

/// An instruction's packed operand field, for those that may read the
/// accumulator in a half of it: the field, the form bits of its low and high
/// halves (0: not an operand), and the instruction's other operand slot.
fn packed_operands(instr: &mut Instr) -> Option<(&mut u32, u8, u8, Option<u32>)> {
    Some(match instr {
        Instr::F64KDivU32 { ds, .. }
        | Instr::F64AddK { ds, .. }
        | Instr::F64SubK { ds, .. }
        | Instr::F64KSub { ds, .. }
        | Instr::F64MulK { ds, .. }
        | Instr::F64DivK { ds, .. }
        | Instr::F64KDiv { ds, .. } => (ds, 0, ACC_A, None),
        Instr::F64MulAdd { ab, c, .. } | Instr::F64MulSub { ab, c, .. } | Instr::F64SubMul { ab, c, .. } => {
            (ab, ACC_A, ACC_B, Some(*c))
        }
        Instr::I32AddI32LtS { xy, a, .. }
        | Instr::I32AddI32LtU { xy, a, .. }
        | Instr::I32AddI64LtS { xy, a, .. }
        | Instr::I32AddI64LtU { xy, a, .. } => (xy, ACC_A, ACC_B, Some(*a)),
        Instr::I32RotlXor { ab, .. }
        | Instr::I64RotlXor { ab, .. }
        | Instr::I32XorRotl { ab, .. }
        | Instr::I64XorRotl { ab, .. }
        | Instr::I32AddShrU { ab, .. }
        | Instr::I32AddShl { ab, .. } => (ab, ACC_A, ACC_B, None),
        Instr::I32LoadIdx { bi, .. } | Instr::I64LoadIdx { bi, .. } | Instr::I32Load8UIdx { bi, .. } => {
            (bi, ACC_A, ACC_B, None)
        }
        _ => return None,
    })
}

/// Sets the result half of a packed `ds` field to 0 (for comparing two
/// instructions but for where their result goes).
pub(super) fn clear_packed_result(instr: &mut Instr) {
    if let Some((field, 0, ACC_A, _)) = packed_operands(instr) {
        *field &= !0xffff;
    }
}

/// The result slot of an instruction that writes it in the low half of a
/// packed `ds` field.
pub(super) fn packed_result(instr: &Instr) -> Option<u32> {
    let mut instr = *instr;
    match packed_operands(&mut instr) {
        Some((field, 0, ACC_A, _)) => Some(*field & 0xffff),
        _ => None,
    }
}

/// Marks the packed result half as written to the accumulator.
pub(super) fn mark_packed_result(instr: &mut Instr) {
    if let Some((field, 0, ACC_A, _)) = packed_operands(instr) {
        *field = (*field & !0xffff) | PACKED_ACC;
    }
}

/// The form bits of the packed halves marked [`PACKED_ACC`].
pub(super) fn packed_form(instr: &Instr) -> u8 {
    let mut instr = *instr;
    let Some((field, lo, hi, _)) = packed_operands(&mut instr) else { return 0 };
    let mut form = 0;
    if *field & 0xffff == PACKED_ACC {
        // The low half of `ds` is the result.
        form |= if lo == 0 { ACC_DST } else { lo };
    }
    if *field >> 16 == PACKED_ACC {
        form |= hi;
    }
    form
}

/// The form bit of the one packed half that reads `slot`, if `slot` is read
/// exactly once by the instruction and that read is a packed half (else 0).
pub(super) fn packed_reads(instr: &Instr, slot: u32) -> u8 {
    let mut instr = *instr;
    let Some((field, lo, hi, other)) = packed_operands(&mut instr) else { return 0 };
    let lo_reads = lo != 0 && *field & 0xffff == slot;
    let hi_reads = hi != 0 && *field >> 16 == slot;
    match (lo_reads, hi_reads, other == Some(slot)) {
        (true, false, false) => lo,
        (false, true, false) => hi,
        _ => 0,
    }
}

/// Marks the packed half whose form bit is `bit` as read from the accumulator.
pub(super) fn mark_packed(instr: &mut Instr, bit: u8) {
    if let Some((field, lo, hi, _)) = packed_operands(instr) {
        if bit == lo {
            *field = (*field & !0xffff) | PACKED_ACC;
        } else if bit == hi {
            *field = (*field & 0xffff) | PACKED_ACC << 16;
        }
    }
}

/// Whether `instr` has accumulator form `form` (0 always).
pub(super) fn has_acc_form(instr: &Instr, form: u8) -> bool {
    form == 0 || (form as usize) < NUM_FORMS && ACC_FORMS[instr.tag()] & (1 << form) != 0
}

/// Result encoding (low two bits; instructions are 8-byte aligned, so an
/// instruction address has them clear): `0` (unoptimised builds only) the
/// address of the next instruction to run; `EXIT` the address of an
/// instruction for `exec`; `TRAP` a trap, its kind in [`CallCx::trap`].
const EXIT: usize = 1;
const TRAP: usize = 2;
const _: () = assert!(std::mem::align_of::<Cell>() >= 4);

/// How a threaded run ended.
pub(super) enum Outcome {
    /// At this instruction, which `exec` runs (not yet executed).
    Exit(*const Cell),
    /// An instruction trapped.
    Trap(TrapKind),
}

/// The handler of every instruction, by tag, for one executor instantiation
/// (`TRACK`: stores mark the memory's written-chunk map, as in `exec::run`).
struct Table<const TRACK: bool>;

/// The handler of every instruction that `exec` runs: ends the run there.
unsafe fn exit(ip: *const Cell, fp: *mut u64, _: *mut u8, _: usize, _: u64, cx: *mut CallCx) -> usize {
    // SAFETY: `cx` is valid for the whole run (the contract of `run`). The
    // accumulator is dead here: only handlers read it (`acc`).
    unsafe { (*cx).fp = fp }
    ip as usize | EXIT
}

/// Runs the handler of the instruction at `ip`.
///
/// # Safety
/// `ip` points at a valid instruction of a function's code; `fp` is its frame (every slot the code names is in bounds);
/// `mem_base`/`mem_len` describe memory 0 (or are null/0 without one).
#[inline(always)]
unsafe fn dispatch<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    // SAFETY: `ip` points at a valid cell (the caller's contract), whose handler
    // is the one `handler_for` chose for its instruction and this `TRACK`.
    unsafe { ((*ip).handler)(ip, fp, mem_base, mem_len, acc, cx) }
}

/// The handler of `instr`, for an engine that tracks memory writes or not.
///
/// # Panics
/// If the instruction names the accumulator in a form it has no handler for
/// (the translator checks every mark first: `has_acc_form`).
/// `packed`: whether packed halves may be marked (the frame is below `0xffff` slots).
pub(super) fn handler_for(instr: &Instr, track: bool, packed: bool) -> Handler {
    let form = acc_form(instr) | if packed { packed_form(instr) } else { 0 };
    assert!(has_acc_form(instr, form), "no accumulator form {form} for {instr:?}");
    if track {
        Table::<true>::handler(instr, form)
    } else {
        Table::<false>::handler(instr, form)
    }
}

/// Ends a handler: runs the next instruction's handler as a tail call, or in
/// unoptimised builds, returns it to the driver loop in [`run`].
#[inline(always)]
unsafe fn next<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    #[cfg(debug_assertions)]
    {
        let _ = (mem_base, mem_len);
        // SAFETY: `cx` is valid for the whole run.
        unsafe {
            (*cx).fp = fp;
            (*cx).acc = acc;
        }
        ip as usize
    }
    // SAFETY: the handler's caller passed valid arguments, and `ip` is the next
    // instruction of the current frame (every function ends in a return, and
    // branch targets are inside the code).
    #[cfg(not(debug_assertions))]
    unsafe {
        // The next cell's address as an opaque register value: otherwise the
        // compiler reads the next handler at `old_ip + 24` and keeps both
        // addresses live, which costs most handlers a register they then save
        // and restore (`I32LtU`: 12 instructions instead of 9). An empty `asm!`
        // emits nothing; it only hides where the value came from.
        #[cfg(target_arch = "x86_64")]
        let ip = {
            let mut ip = ip;
            // SAFETY: the template is a comment: no instruction, no memory,
            // stack or flags touched; `ip` comes back unchanged.
            std::arch::asm!("/* {0} */", inout(reg) ip, options(pure, nomem, nostack, preserves_flags));
            ip
        };
        dispatch::<TRACK>(ip, fp, mem_base, mem_len, acc, cx)
    }
}

/// Runs from the instruction at `ip` until an instruction for `exec`, or a trap.
///
/// # Safety
/// As [`dispatch`].
pub(super) unsafe fn run<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> Outcome {
    // SAFETY: the caller's contract; each returned address is the next valid
    // instruction, of the frame `cx` then describes.
    let mut r = unsafe { dispatch::<TRACK>(ip, fp, mem_base, mem_len, acc, cx) };
    if cfg!(debug_assertions) {
        while r & (EXIT | TRAP) == 0 {
            let (fp, acc) = unsafe { ((*cx).fp, (*cx).acc) };
            r = unsafe { dispatch::<TRACK>(r as *const Cell, fp, mem_base, mem_len, acc, cx) };
        }
    }
    if r & TRAP != 0 {
        // SAFETY: `cx` is valid for the run; the trapping handler set the kind.
        Outcome::Trap(unsafe { (*cx).trap })
    } else {
        Outcome::Exit((r & !EXIT) as *const Cell)
    }
}

/// Defines one handler per listed instruction (each arm's body is written as
/// in a `match` over the instruction, with the helper macros below in scope),
/// the handler tables, and `threaded_instrs!()`, the pattern matching exactly
/// the instructions that have a handler (which `exec` hands to [`run`]).
macro_rules! handlers {
    ($d:tt ($ip:ident, $fp:ident, $mem_base:ident, $mem_len:ident, $acc:ident, $chunk_map:ident, $cx:ident)
     special { $( $sv:ident { $($sf:ident),* } ),* $(,)? }
     $( $([$($form:literal),*])? $v:ident { $($f:ident),* } => $body:expr ),* $(,)?) => {
        $(
            #[allow(non_snake_case, unused_mut, unused_variables, unused_macros, unused_unsafe, unused_assignments, unreachable_code)]
            unsafe fn $v<const TRACK: bool, const F: u8>(
                $ip: *const Cell,
                $fp: *mut u64,
                $mem_base: *mut u8,
                $mem_len: usize,
                $acc: u64,
                $cx: *mut CallCx,
            ) -> usize {
                // SAFETY: `handler_for` gives this handler to this variant only.
                let Instr::$v { $($f),* } = (unsafe { (*$ip).instr }) else {
                    unsafe { std::hint::unreachable_unchecked() }
                };
                let branch_from = $ip;
                let mut $acc = $acc;
                let mut $ip = unsafe { $ip.add(1) };
                let $chunk_map = $mem_base.wrapping_sub(CHUNK_MAP_OFFSET);
                macro_rules! trap {
                    ($d kind:expr) => {
                        {
                            // SAFETY: `cx` is valid for the whole run.
                            unsafe {
                                (*$cx).trap = $d kind;
                                (*$cx).trap_at = branch_from;
                            }
                            return TRAP;
                        }
                    };
                }
                // A divisor, trapping if it is zero.
                macro_rules! divisor {
                    ($d b:expr) => {{
                        let b = $d b;
                        if b == 0 {
                            trap!(TrapKind::IntegerDivisionByZero);
                        }
                        b
                    }};
                }
                macro_rules! tri {
                    ($d e:expr) => {
                        match $d e {
                            Ok(v) => v,
                            Err(kind) => trap!(kind),
                        }
                    };
                }
                // SAFETY (all slot accesses): slot operands are below the frame size.
                // A field named as an operand (`lhs`...) or the result (`dst`) is the
                // accumulator instead of a slot when this handler's form `F` says so
                // (decided at compile time: `acc_bit` of the field's name); other
                // operands are slots. Arguments are token trees so that a field's
                // name reaches `rd!`/`wr!` (an expression would hide it); a result in a
                // packed half is written `(ds & 0xffff)`, one token tree.
                macro_rules! rd {
                    // Halves of a packed field (`PACKED_ACC`).
                    ($d f:ident & 0xffff) => {
                        if const { F & packed_bit(stringify!($d f), false) & (ACC_A | ACC_B) != 0 } {
                            $acc
                        } else {
                            unsafe { *$fp.add(($d f & 0xffff) as usize) }
                        }
                    };
                    ($d f:ident >> 16) => {
                        if const { F & packed_bit(stringify!($d f), true) & (ACC_A | ACC_B) != 0 } {
                            $acc
                        } else {
                            unsafe { *$fp.add(($d f >> 16) as usize) }
                        }
                    };
                    ($d s:ident) => {
                        if const { F & acc_bit(stringify!($d s)) & (ACC_A | ACC_B) != 0 } {
                            $acc
                        } else {
                            debug_assert_eq!($d s as u32 & ACC, 0, "an accumulator mark this form does not read");
                            unsafe { *$fp.add($d s as usize) }
                        }
                    };
                    ($d s:expr) => {{
                        // Only fields named as operands can be the accumulator.
                        debug_assert_eq!(($d s) as u32 & ACC, 0, "an accumulator mark in an unnamed operand");
                        unsafe { *$fp.add($d s as usize) }
                    }};
                }
                macro_rules! wr {
                    // The result half of a packed field, written in parentheses.
                    (($d f:ident & 0xffff), $d v:expr) => {{
                        let v: u64 = $d v;
                        if const { F & packed_bit(stringify!($d f), false) & ACC_DST != 0 } {
                            $acc = v;
                        } else {
                            unsafe { *$fp.add(($d f & 0xffff) as usize) = v }
                        }
                    }};
                    ($d s:ident, $d v:expr) => {{
                        let v: u64 = $d v;
                        if const { F & acc_bit(stringify!($d s)) & ACC_DST != 0 } {
                            $acc = v;
                        } else {
                            debug_assert_eq!($d s as u32 & ACC, 0, "an accumulator mark this form does not write");
                            unsafe { *$fp.add($d s as usize) = v }
                        }
                    }};
                    ($d s:expr, $d v:expr) => {{
                        let v: u64 = $d v;
                        debug_assert_eq!(($d s) as u32 & ACC, 0, "an accumulator mark in an unnamed result");
                        unsafe { *$fp.add($d s as usize) = v }
                    }};
                }
                macro_rules! u32_ { ($d($d s:tt)+) => { rd!($d($d s)+) as u32 }; }
                macro_rules! i32_ { ($d($d s:tt)+) => { rd!($d($d s)+) as u32 as i32 }; }
                macro_rules! i64_ { ($d($d s:tt)+) => { rd!($d($d s)+) as i64 }; }
                macro_rules! f32_ { ($d($d s:tt)+) => { f32::from_bits(rd!($d($d s)+) as u32) }; }
                macro_rules! f64_ { ($d($d s:tt)+) => { f64::from_bits(rd!($d($d s)+)) }; }
                macro_rules! w32 { ($d d:tt, $d v:expr) => { wr!($d d, ($d v) as u32 as u64) }; }
                macro_rules! w64 { ($d d:tt, $d v:expr) => { wr!($d d, ($d v) as u64) }; }
                macro_rules! wf32 { ($d d:tt, $d v:expr) => { wr!($d d, f32::to_bits($d v) as u64) }; }
                macro_rules! wf64 { ($d d:tt, $d v:expr) => { wr!($d d, f64::to_bits($d v)) }; }
                macro_rules! wbool { ($d d:tt, $d v:expr) => { wr!($d d, ($d v) as u64) }; }
                // A taken branch dispatches right here, so that it has an indirect jump
                // of its own (predicted apart from the fall-through one) instead of
                // selecting the next address with a conditional move.
                macro_rules! jump {
                    ($d target:expr) => {
                        // SAFETY: branch targets are the byte distance from the branch to an
                        // instruction of the current function's code (`Translator::cell`).
                        return unsafe {
                            let to = branch_from.byte_offset($d target as i32 as isize);
                            next::<TRACK>(to, $fp, $mem_base, $mem_len, $acc, $cx)
                        }
                    };
                }
                macro_rules! effective {
                    ($d addr:tt, $d offset:expr, $d n:expr) => {{
                        let ea = rd!($d addr) as u32 as usize + $d offset as usize;
                        if ea + $d n > $mem_len {
                            trap!(TrapKind::MemoryOutOfBounds);
                        }
                        ea
                    }};
                }
                // A load from `(b + i) mod 2^32 + offset`, `bi` packing the slots of b and i.
                macro_rules! load_idx {
                    ($d dst:tt, $d bi:ident, $d offset:expr, $d n:literal, |$d b:ident| $d conv:expr) => {{
                        let ea = u32_!($d bi & 0xffff).wrapping_add(u32_!($d bi >> 16)) as usize + $d offset as usize;
                        if ea + $d n > $mem_len {
                            trap!(TrapKind::MemoryOutOfBounds);
                        }
                        // SAFETY: ea + n <= $mem_len, checked just above.
                        let $d b: [u8; $d n] = unsafe { ptr::read_unaligned($mem_base.add(ea) as *const [u8; $d n]) };
                        wr!($d dst, $d conv);
                    }};
                }
                macro_rules! load {
                    ($d dst:tt, $d addr:tt, $d offset:expr, $d n:literal, |$d b:ident| $d conv:expr) => {{
                        let ea = effective!($d addr, $d offset, $d n);
                        // SAFETY: ea + n <= $mem_len, checked just above.
                        let $d b: [u8; $d n] = unsafe { ptr::read_unaligned($mem_base.add(ea) as *const [u8; $d n]) };
                        wr!($d dst, $d conv);
                    }};
                }
                // Copies n bytes from `src + src_offset` to `dst + dst_offset`, `addrs`
                // packing the slots of src and dst; traps as a load then a store would.
                macro_rules! copy_word {
                    ($d addrs:expr, $d src_offset:expr, $d dst_offset:expr, $d n:literal) => {{
                        let from = effective!(($d addrs & 0xffff), $d src_offset, $d n);
                        let to = effective!(($d addrs >> 16), $d dst_offset, $d n);
                        // SAFETY: both accesses are inside the memory (`effective!`); the
                        // chunk map holds a byte for every 4 KiB of it (as in `store!`).
                        unsafe {
                            let v: [u8; $d n] = ptr::read_unaligned($mem_base.add(from) as *const [u8; $d n]);
                            if TRACK {
                                *$chunk_map.add(to >> CHUNK_SHIFT) = 1;
                            }
                            ptr::write_unaligned($mem_base.add(to) as *mut [u8; $d n], v);
                        }
                    }};
                }
                macro_rules! store_at {
                    ($d value:tt, $d ea:expr, $d n:literal, |$d v:ident| $d bytes:expr) => {{
                        let ea = $d ea as usize;
                        if ea + $d n > $mem_len {
                            trap!(TrapKind::MemoryOutOfBounds);
                        }
                        let $d v = rd!($d value);
                        let bytes: [u8; $d n] = $d bytes;
                        // SAFETY: as in `store!`.
                        unsafe {
                            if TRACK {
                                *$chunk_map.add(ea >> CHUNK_SHIFT) = 1;
                            }
                            ptr::write_unaligned($mem_base.add(ea) as *mut [u8; $d n], bytes);
                        }
                    }};
                }
                macro_rules! store {
                    ($d addr:tt, $d value:tt, $d offset:expr, $d n:literal, |$d v:ident| $d bytes:expr) => {{
                        let ea = effective!($d addr, $d offset, $d n);
                        let $d v = rd!($d value);
                        let bytes: [u8; $d n] = $d bytes;
                        // SAFETY: ea + n <= $mem_len, checked just above; every mapped memory has
                        // its chunk map CHUNK_MAP_OFFSET below its base (`runtime::memory`), one
                        // byte per 4 KiB, so ea's byte is in it.
                        unsafe {
                            if TRACK {
                                *$chunk_map.add(ea >> CHUNK_SHIFT) = 1;
                            }
                            ptr::write_unaligned($mem_base.add(ea) as *mut [u8; $d n], bytes);
                        }
                    }};
                }
                $body;
                // SAFETY: `$ip` is the next instruction (or a branch target) of the same code.
                unsafe { next::<TRACK>($ip, $fp, $mem_base, $mem_len, $acc, $cx) }
            }
        )*

        impl<const TRACK: bool> Table<TRACK> {
            /// The handler of `instr` in `form` (`ACC_*` bits); `exit` for a form
            /// the instruction lacks. A `match` rather than a table of function
            /// pointers: the compiler turns it into a jump table of relative
            /// offsets and `lea`s, so the binary carries no table that the loader
            /// must relocate at start-up (a table was 7,000 relocated pointers:
            /// 170 KB of relocation records and 57 KB of dirty pages per process).
            fn handler(instr: &Instr, form: u8) -> Handler {
                match (instr, form) {
                    $( (Instr::$v { .. }, 0) => $v::<TRACK, 0>, )*
                    $( $( $( (Instr::$v { .. }, $form) => $v::<TRACK, $form>, )* )? )*
                    $( (Instr::$sv { .. }, 0) => $sv::<TRACK>, )*
                    _ => exit,
                }
            }
        }

        /// The accumulator forms each instruction has, by tag (bit `f` for form `f`).
        const ACC_FORMS: [u8; Instr::NUM_TAGS] = {
            let mut t = [0u8; Instr::NUM_TAGS];
            $( {
                let _tag = Instr::$v { $($f: 0),* }.tag();
                $( $( t[_tag] |= 1 << $form; )* )?
            } )*
            t
        };

        /// Which of the instruction's operand and result fields name the
        /// accumulator (`ACC_*` bits; see [`ACC`]).
        pub(super) fn acc_form(instr: &Instr) -> u8 {
            match instr {
                $( Instr::$v { $($f),* } => 0 $( | $f.acc_bits(const { acc_bit(stringify!($f)) }) )*, )*
                _ => 0,
            }
        }

        /// Clears the accumulator mark of every operand and result field of the
        /// instruction that names `ACC | slot`, which then names `slot` again.
        pub(super) fn clear_acc(instr: &mut Instr, slot: u32) {
            match instr {
                $( Instr::$v { $($f),* } => { $( $f.clear_acc(const { acc_bit(stringify!($f)) }, slot); )* } )*
                _ => {}
            }
        }

        /// Calls `visit` with the form bit and the slot of every field marked as
        /// the accumulator.
        pub(super) fn acc_marks(instr: &Instr, mut visit: impl FnMut(u8, u32)) {
            acc_marks_dyn(instr, &mut visit)
        }

        /// `acc_marks`, compiled once (a match over every instruction: 21 KB).
        fn acc_marks_dyn(instr: &Instr, visit: &mut dyn FnMut(u8, u32)) {
            match instr {
                $( Instr::$v { $($f),* } => { $( $f.visit_acc(const { acc_bit(stringify!($f)) }, visit); )* } )*
                _ => {}
            }
        }

        /// The form bits (`ACC_A`, `ACC_B`) of the operand fields that read `slot`.
        pub(super) fn operands_reading(instr: &Instr, slot: u32) -> u8 {
            match instr {
                $( Instr::$v { $($f),* } => 0 $( | $f.reads(const { acc_bit(stringify!($f)) }, slot) )*, )*
                _ => 0,
            }
        }

        /// Marks the fields whose form bit is `bit` and which name `slot` as the
        /// accumulator.
        pub(super) fn mark_acc(instr: &mut Instr, bit: u8, slot: u32) {
            match instr {
                $( Instr::$v { $($f),* } => { $( $f.mark(const { acc_bit(stringify!($f)) }, bit, slot); )* } )*
                _ => {}
            }
        }

        /// The pattern of every instruction whose handler never ends a run (the
        /// `special` ones sometimes do, and `exec` then runs them itself).
        macro_rules! threaded_instrs {
            () => { $( Instr::$v { .. } )|* };
        }
        pub(super) use threaded_instrs;
    };
}

handlers! { $ (ip, fp, mem_base, mem_len, acc, chunk_map, cx)
    special { CallInternal { def_index, base }, CallInternalCopy { def_index, base, copy }, CallIndirect { type_index, table, base }, Return {}, ReturnSlot { src } }
    Br { target } => jump!(target),
    [2] BrIfNez { cond, target } => {
        if u32_!(cond) != 0 {
            jump!(target);
        }
    },
    [2] BrIfEqz { cond, target } => {
        if u32_!(cond) == 0 {
            jump!(target);
        }
    },
    BrI32AddGeU { ab, dr, target } => {
        w32!((dr & 0xffff), u32_!(ab & 0xffff).wrapping_add(u32_!(ab >> 16)));
        if u32_!(dr & 0xffff) >= u32_!(dr >> 16) {
            jump!(target);
        }
    },
    BrI32AddLtU { ab, dr, target } => {
        w32!((dr & 0xffff), u32_!(ab & 0xffff).wrapping_add(u32_!(ab >> 16)));
        if u32_!(dr & 0xffff) < u32_!(dr >> 16) {
            jump!(target);
        }
    },
    BrI32AddImmNez { x, imm, target } => {
        if unsafe { count_step(fp, x, imm) } != 0 {
            jump!(target);
        }
    },
    BrI32AddImmEqz { x, imm, target } => {
        if unsafe { count_step(fp, x, imm) } == 0 {
            jump!(target);
        }
    },
    BrI32AddImmNeImm { xk, n, target } => {
        if unsafe { count_step(fp, xk & 0xffff, (xk as i32) >> 16) } != n as u32 {
            jump!(target);
        }
    },
    BrI32AddImmEqImm { xk, n, target } => {
        if unsafe { count_step(fp, xk & 0xffff, (xk as i32) >> 16) } == n as u32 {
            jump!(target);
        }
    },
    BrI32AddImmNe { ds, ki, target } => {
        let (x, n) = unsafe { loop_step(fp, ds, ki) };
        if x != n {
            jump!(target);
        }
    },
    BrI32AddImmLtU { ds, ki, target } => {
        let (x, n) = unsafe { loop_step(fp, ds, ki) };
        if x < n {
            jump!(target);
        }
    },
    BrI32AddImmGeU { ds, ki, target } => {
        let (x, n) = unsafe { loop_step(fp, ds, ki) };
        if x >= n {
            jump!(target);
        }
    },
    BrI32AddImmLtS { ds, ki, target } => {
        let (x, n) = unsafe { loop_step(fp, ds, ki) };
        if (x as i32) < (n as i32) {
            jump!(target);
        }
    },
    BrI32AddImmGeS { ds, ki, target } => {
        let (x, n) = unsafe { loop_step(fp, ds, ki) };
        if (x as i32) >= (n as i32) {
            jump!(target);
        }
    },
    BrI32AddImmEq { ds, ki, target } => {
        let (x, n) = unsafe { loop_step(fp, ds, ki) };
        if x == n {
            jump!(target);
        }
    },
    BrTable { index, len } => {
        let i = u32_!(index).min(len);
        ip = unsafe { ip.add(i as usize) };
    },
    // SAFETY (fuel, interrupt): both point into the store, which outlives the run.
    ConsumeFuel { amount } => {
        let fuel = unsafe { &mut *(*cx).fuel };
        if *fuel < amount as u64 {
            *fuel = 0;
            trap!(TrapKind::OutOfFuel);
        }
        *fuel -= amount as u64
    },
    // Bulk memory on memory 0 (the memory the handlers see; the store is not needed).
    MemoryFill { base } => {
        let (d, val, n) = (u32_!(base) as usize, rd!(base + 1) as u8, u32_!(base + 2) as usize);
        if d + n > mem_len {
            trap!(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: d + n <= mem_len.
        unsafe {
            ptr::write_bytes(mem_base.add(d), val, n);
            if TRACK {
                mark_written_range(mem_base, d, n);
            }
        }
    },
    MemoryCopy { base } => {
        let (d, s, n) = (u32_!(base) as usize, u32_!(base + 1) as usize, u32_!(base + 2) as usize);
        if d + n > mem_len || s + n > mem_len {
            trap!(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: both ranges are inside the memory; `copy` allows overlap.
        unsafe {
            ptr::copy(mem_base.add(s), mem_base.add(d), n);
            if TRACK {
                mark_written_range(mem_base, d, n);
            }
        }
    },
    ZeroLocals { start, count } => {
        // Volatile: one store per slot, no call out to `memset`.
        for s in start..start + count {
            unsafe { ptr::write_volatile(fp.add(s as usize), 0) }
        }
    },
    CheckInterrupt {} => {
        if unsafe { (*(*cx).interrupt).load(Ordering::Relaxed) } {
            trap!(TrapKind::Interrupted);
        }
    },
    // Not necessarily a trap: `exec` sees that this instruction stopped the run,
    // and runs the deadline callback, which may let the guest go on.
    CheckEpoch {} => {
        if unsafe { (*(*cx).epoch).load(Ordering::Relaxed) >= (*(*cx).check).load(Ordering::Relaxed) } {
            trap!(TrapKind::Interrupted);
        }
    },
    // SAFETY (globals): validation keeps `global` below the instance's global
    // count, and the context block holds a cell for each, owned by the store
    // and never moved; only mutable globals are set.
    [1] GlobalGet { dst, global } => {
        let v = unsafe { **(*cx).globals.add(global as usize) };
        wr!(dst, v as u64)
    },
    [2] GlobalSet { src, global } => {
        let g = unsafe { &mut **(*cx).globals.add(global as usize) };
        *g = rd!(src) as u128
    },
    [1] GlobalGetAddImm { dst, global, k } => {
        let v = unsafe { **(*cx).globals.add(global as usize) };
        w32!(dst, (v as u32).wrapping_add(k as u32))
    },
    GlobalAddImm { dst, global, k } => {
        let g = unsafe { &mut **(*cx).globals.add(global as usize) };
        let v = (*g as u32).wrapping_add(k as u32);
        *g = v as u128;
        w32!(dst, v)
    },
    GlobalSetAddImm { ds, global, k } => {
        let g = unsafe { &mut **(*cx).globals.add(global as usize) };
        let v = u32_!(ds >> 16).wrapping_add(k as u32);
        *g = v as u128;
        w32!((ds & 0xffff), v)
    },
    GlobalGet2 { dst, global } => {
        let v = unsafe { **(*cx).globals.add(global as usize) };
        wr!(dst, v as u64);
        wr!(dst + 1, (v >> 64) as u64)
    },
    GlobalSet2 { src, global } => {
        let g = unsafe { &mut **(*cx).globals.add(global as usize) };
        *g = rd!(src) as u128 | (rd!(src + 1) as u128) << 64
    },
    [1, 2] Copy { dst, src } => wr!(dst, rd!(src)),
    CopyPair { first, second } => {
        wr!(first & 0xffff, rd!(first >> 16));
        wr!(second & 0xffff, rd!(second >> 16));
    },
    Copy2 { dst, src } => {
        let (lo, hi) = (rd!(src), rd!(src + 1));
        wr!(dst, lo);
        wr!(dst + 1, hi);
    },
    [1] Const { dst, value } => wr!(dst, value),
    SelectTo { dst, cond, src } => {
        if u32_!(cond) == 0 {
            wr!(dst, rd!(src));
        }
    },
    [1, 2, 3] Select { dst, cond, ab } => {
        let pick = if u32_!(cond) != 0 { ab & 0xffff } else { ab >> 16 };
        wr!(dst, rd!(pick));
    },
    [1] SelectKA { dst, cb, k } => {
        let v = if u32_!(cb & 0xffff) != 0 { k as i64 as u64 } else { rd!(cb >> 16) };
        wr!(dst, v);
    },
    [1] SelectKB { dst, ca, k } => {
        let v = if u32_!(ca & 0xffff) != 0 { rd!(ca >> 16) } else { k as i64 as u64 };
        wr!(dst, v);
    },
    SelectTo2 { dst, cond, src } => {
        if u32_!(cond) == 0 {
            wr!(dst, rd!(src));
            wr!(dst + 1, rd!(src + 1));
        }
    },
    // ---- integer ----
    [1, 2, 3] I32Eqz { dst, src } => wbool!(dst, u32_!(src) == 0),
    [1, 2, 3] I32Clz { dst, src } => w32!(dst, u32_!(src).leading_zeros()),
    [1, 2, 3] I32Ctz { dst, src } => w32!(dst, u32_!(src).trailing_zeros()),
    [1, 2, 3] I32Popcnt { dst, src } => w32!(dst, u32_!(src).count_ones()),
    [1, 2, 3] I32Extend8S { dst, src } => w32!(dst, rd!(src) as i8 as i32),
    [1, 2, 3] I32Extend16S { dst, src } => w32!(dst, rd!(src) as i16 as i32),
    [1, 2, 3] I64Eqz { dst, src } => wbool!(dst, rd!(src) == 0),
    [1, 2, 3] I64Clz { dst, src } => w64!(dst, rd!(src).leading_zeros()),
    [1, 2, 3] I64Ctz { dst, src } => w64!(dst, rd!(src).trailing_zeros()),
    [1, 2, 3] I64Popcnt { dst, src } => w64!(dst, rd!(src).count_ones()),
    [1, 2, 3] I64Extend8S { dst, src } => w64!(dst, rd!(src) as i8 as i64),
    [1, 2, 3] I64Extend16S { dst, src } => w64!(dst, rd!(src) as i16 as i64),
    [1, 2, 3] I64Extend32S { dst, src } => w64!(dst, rd!(src) as i32 as i64),
    [1, 2, 3] I64ExtendI32S { dst, src } => w64!(dst, i32_!(src) as i64),
    [1, 2, 3] I64ExtendI32U { dst, src } => w64!(dst, u32_!(src)),

    [1, 2, 3, 4, 5] I32Eq { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) == u32_!(rhs)),
    [1, 2, 3, 4, 5] I32Ne { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) != u32_!(rhs)),
    [1, 2, 3, 4, 5] I32LtS { dst, lhs, rhs } => wbool!(dst, i32_!(lhs) < i32_!(rhs)),
    [1, 2, 3, 4, 5] I32LtU { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) < u32_!(rhs)),
    [1, 2, 3, 4, 5] I32GtS { dst, lhs, rhs } => wbool!(dst, i32_!(lhs) > i32_!(rhs)),
    [1, 2, 3, 4, 5] I32GtU { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) > u32_!(rhs)),
    [1, 2, 3, 4, 5] I32LeS { dst, lhs, rhs } => wbool!(dst, i32_!(lhs) <= i32_!(rhs)),
    [1, 2, 3, 4, 5] I32LeU { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) <= u32_!(rhs)),
    [1, 2, 3, 4, 5] I32GeS { dst, lhs, rhs } => wbool!(dst, i32_!(lhs) >= i32_!(rhs)),
    [1, 2, 3, 4, 5] I32GeU { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) >= u32_!(rhs)),
    [1, 2, 3, 4, 5] I64Eq { dst, lhs, rhs } => wbool!(dst, rd!(lhs) == rd!(rhs)),
    [1, 2, 3, 4, 5] I64Ne { dst, lhs, rhs } => wbool!(dst, rd!(lhs) != rd!(rhs)),
    [1, 2, 3, 4, 5] I64LtS { dst, lhs, rhs } => wbool!(dst, i64_!(lhs) < i64_!(rhs)),
    [1, 2, 3, 4, 5] I64LtU { dst, lhs, rhs } => wbool!(dst, rd!(lhs) < rd!(rhs)),
    [1, 2, 3, 4, 5] I64GtS { dst, lhs, rhs } => wbool!(dst, i64_!(lhs) > i64_!(rhs)),
    [1, 2, 3, 4, 5] I64GtU { dst, lhs, rhs } => wbool!(dst, rd!(lhs) > rd!(rhs)),
    [1, 2, 3, 4, 5] I64LeS { dst, lhs, rhs } => wbool!(dst, i64_!(lhs) <= i64_!(rhs)),
    [1, 2, 3, 4, 5] I64LeU { dst, lhs, rhs } => wbool!(dst, rd!(lhs) <= rd!(rhs)),
    [1, 2, 3, 4, 5] I64GeS { dst, lhs, rhs } => wbool!(dst, i64_!(lhs) >= i64_!(rhs)),
    [1, 2, 3, 4, 5] I64GeU { dst, lhs, rhs } => wbool!(dst, rd!(lhs) >= rd!(rhs)),

    [1, 2, 3, 4, 5] I32Add { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_add(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32Sub { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_sub(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32Mul { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_mul(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32DivS { dst, lhs, rhs } => {
        let (a, b) = (i32_!(lhs), divisor!(i32_!(rhs)));
        if a == i32::MIN && b == -1 {
            trap!(TrapKind::IntegerOverflow);
        }
        w32!(dst, a / b);
    },
    [1, 2, 3, 4, 5] I32DivU { dst, lhs, rhs } => w32!(dst, u32_!(lhs) / divisor!(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32RemS { dst, lhs, rhs } => w32!(dst, i32_!(lhs).wrapping_rem(divisor!(i32_!(rhs)))),
    [1, 2, 3, 4, 5] I32RemU { dst, lhs, rhs } => w32!(dst, u32_!(lhs) % divisor!(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32And { dst, lhs, rhs } => w32!(dst, u32_!(lhs) & u32_!(rhs)),
    [1, 2, 3, 4, 5] I32Or { dst, lhs, rhs } => w32!(dst, u32_!(lhs) | u32_!(rhs)),
    [1, 2, 3, 4, 5] I32Xor { dst, lhs, rhs } => w32!(dst, u32_!(lhs) ^ u32_!(rhs)),
    [1, 2, 3, 4, 5] I32Shl { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_shl(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32ShrS { dst, lhs, rhs } => w32!(dst, i32_!(lhs).wrapping_shr(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32ShrU { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_shr(u32_!(rhs))),
    [1, 2, 3, 4, 5] I32Rotl { dst, lhs, rhs } => w32!(dst, u32_!(lhs).rotate_left(u32_!(rhs) % 32)),
    [1, 2, 3, 4, 5] I32Rotr { dst, lhs, rhs } => w32!(dst, u32_!(lhs).rotate_right(u32_!(rhs) % 32)),

    [1, 2, 3, 4, 5] I64Add { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_add(rd!(rhs))),
    [1, 2, 3, 4, 5] I64Sub { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_sub(rd!(rhs))),
    [1, 2, 3, 4, 5] I64Mul { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_mul(rd!(rhs))),
    [1, 2, 3, 4, 5] I64DivS { dst, lhs, rhs } => {
        let (a, b) = (i64_!(lhs), divisor!(i64_!(rhs)));
        if a == i64::MIN && b == -1 {
            trap!(TrapKind::IntegerOverflow);
        }
        w64!(dst, a / b);
    },
    [1, 2, 3, 4, 5] I64DivU { dst, lhs, rhs } => w64!(dst, rd!(lhs) / divisor!(rd!(rhs))),
    [1, 2, 3, 4, 5] I64RemS { dst, lhs, rhs } => w64!(dst, i64_!(lhs).wrapping_rem(divisor!(i64_!(rhs)))),
    [1, 2, 3, 4, 5] I64RemU { dst, lhs, rhs } => w64!(dst, rd!(lhs) % divisor!(rd!(rhs))),
    [1, 2, 3, 4, 5] I64And { dst, lhs, rhs } => w64!(dst, rd!(lhs) & rd!(rhs)),
    [1, 2, 3, 4, 5] I64Or { dst, lhs, rhs } => w64!(dst, rd!(lhs) | rd!(rhs)),
    [1, 2, 3, 4, 5] I64Xor { dst, lhs, rhs } => w64!(dst, rd!(lhs) ^ rd!(rhs)),
    [1, 2, 3, 4, 5] I64Shl { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_shl(rd!(rhs) as u32)),
    [1, 2, 3, 4, 5] I64ShrS { dst, lhs, rhs } => w64!(dst, i64_!(lhs).wrapping_shr(rd!(rhs) as u32)),
    [1, 2, 3, 4, 5] I64ShrU { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_shr(rd!(rhs) as u32)),
    [1, 2, 3, 4, 5] I64Rotl { dst, lhs, rhs } => w64!(dst, rd!(lhs).rotate_left((rd!(rhs) % 64) as u32)),
    [1, 2, 3, 4, 5] I64Rotr { dst, lhs, rhs } => w64!(dst, rd!(lhs).rotate_right((rd!(rhs) % 64) as u32)),

    // ---- float ----
    [1, 2, 3] F32Abs { dst, src } => wr!(dst, rd!(src) & 0x7fff_ffff),
    [1, 2, 3] F32Neg { dst, src } => wr!(dst, (rd!(src) ^ 0x8000_0000) & 0xffff_ffff),
    [1, 2, 3] F32Ceil { dst, src } => wf32!(dst, ops::f32_ceil(f32_!(src))),
    [1, 2, 3] F32Floor { dst, src } => wf32!(dst, ops::f32_floor(f32_!(src))),
    [1, 2, 3] F32Trunc { dst, src } => wf32!(dst, ops::f32_trunc(f32_!(src))),
    [1, 2, 3] F32Nearest { dst, src } => wf32!(dst, ops::f32_nearest(f32_!(src))),
    [1, 2, 3] F32Sqrt { dst, src } => wf32!(dst, f32_!(src).sqrt()),
    [1, 2, 3] F64Abs { dst, src } => wr!(dst, rd!(src) & 0x7fff_ffff_ffff_ffff),
    [1, 2, 3] F64Neg { dst, src } => wr!(dst, rd!(src) ^ 0x8000_0000_0000_0000),
    [1, 2, 3] F64Ceil { dst, src } => wf64!(dst, ops::f64_ceil(f64_!(src))),
    [1, 2, 3] F64Floor { dst, src } => wf64!(dst, ops::f64_floor(f64_!(src))),
    [1, 2, 3] F64Trunc { dst, src } => wf64!(dst, ops::f64_trunc(f64_!(src))),
    [1, 2, 3] F64Nearest { dst, src } => wf64!(dst, ops::f64_nearest(f64_!(src))),
    [1, 2, 3] F64Sqrt { dst, src } => wf64!(dst, f64_!(src).sqrt()),
    [1, 2, 3, 4, 5] F32Eq { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) == f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Ne { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) != f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Lt { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) < f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Gt { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) > f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Le { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) <= f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Ge { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) >= f32_!(rhs)),
    [1, 2, 3, 4, 5] F64Eq { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) == f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Ne { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) != f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Lt { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) < f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Gt { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) > f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Le { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) <= f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Ge { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) >= f64_!(rhs)),
    [1, 2, 3, 4, 5] F32Add { dst, lhs, rhs } => wf32!(dst, f32_!(lhs) + f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Sub { dst, lhs, rhs } => wf32!(dst, f32_!(lhs) - f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Mul { dst, lhs, rhs } => wf32!(dst, f32_!(lhs) * f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Div { dst, lhs, rhs } => wf32!(dst, f32_!(lhs) / f32_!(rhs)),
    [1, 2, 3, 4, 5] F32Min { dst, lhs, rhs } => wf32!(dst, ops::f32_min(f32_!(lhs), f32_!(rhs))),
    [1, 2, 3, 4, 5] F32Max { dst, lhs, rhs } => wf32!(dst, ops::f32_max(f32_!(lhs), f32_!(rhs))),
    [1, 2, 3, 4, 5] F32Copysign { dst, lhs, rhs } => {
        wr!(dst, (rd!(lhs) & 0x7fff_ffff) | (rd!(rhs) & 0x8000_0000))
    },
    [1, 2, 3, 4, 5] F64Add { dst, lhs, rhs } => wf64!(dst, f64_!(lhs) + f64_!(rhs)),
    [1, 2, 3, 4, 5] F64MulAdd { dst, ab, c } => wf64!(dst, f64_!(ab & 0xffff) * f64_!(ab >> 16) + f64_!(c)),
    [1, 2, 3, 4, 5] F64MulSub { dst, ab, c } => wf64!(dst, f64_!(ab & 0xffff) * f64_!(ab >> 16) - f64_!(c)),
    [1, 2, 3] F64AddK { ds, k } => wf64!((ds & 0xffff), f64_!(ds >> 16) + f64::from_bits(k)),
    [1, 2, 3] F64SubK { ds, k } => wf64!((ds & 0xffff), f64_!(ds >> 16) - f64::from_bits(k)),
    [1, 2, 3] F64KSub { ds, k } => wf64!((ds & 0xffff), f64::from_bits(k) - f64_!(ds >> 16)),
    [1, 2, 3] F64MulK { ds, k } => wf64!((ds & 0xffff), f64_!(ds >> 16) * f64::from_bits(k)),
    [1, 2, 3] F64DivK { ds, k } => wf64!((ds & 0xffff), f64_!(ds >> 16) / f64::from_bits(k)),
    [1, 2, 3] F64KDiv { ds, k } => wf64!((ds & 0xffff), f64::from_bits(k) / f64_!(ds >> 16)),
    [1, 2, 3, 4, 5] F64SubMul { dst, ab, c } => wf64!(dst, f64_!(c) - f64_!(ab & 0xffff) * f64_!(ab >> 16)),
    [1, 2, 3, 4, 5] F64Sub { dst, lhs, rhs } => wf64!(dst, f64_!(lhs) - f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Mul { dst, lhs, rhs } => wf64!(dst, f64_!(lhs) * f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Div { dst, lhs, rhs } => wf64!(dst, f64_!(lhs) / f64_!(rhs)),
    [1, 2, 3, 4, 5] F64Min { dst, lhs, rhs } => wf64!(dst, ops::f64_min(f64_!(lhs), f64_!(rhs))),
    [1, 2, 3, 4, 5] F64Max { dst, lhs, rhs } => wf64!(dst, ops::f64_max(f64_!(lhs), f64_!(rhs))),
    [1, 2, 3, 4, 5] F64Copysign { dst, lhs, rhs } => wr!(
        dst,
        (rd!(lhs) & 0x7fff_ffff_ffff_ffff) | (rd!(rhs) & 0x8000_0000_0000_0000)
    ),

    // ---- conversions ----
    [1, 2, 3] I32TruncF32S { dst, src } => w32!(dst, tri!(ops::i32_trunc_f32_s(f32_!(src)))),
    [1, 2, 3] I32TruncF32U { dst, src } => w32!(dst, tri!(ops::i32_trunc_f32_u(f32_!(src)))),
    [1, 2, 3] I32TruncF64S { dst, src } => w32!(dst, tri!(ops::i32_trunc_f64_s(f64_!(src)))),
    [1, 2, 3] I32TruncF64U { dst, src } => w32!(dst, tri!(ops::i32_trunc_f64_u(f64_!(src)))),
    [1, 2, 3] I64TruncF32S { dst, src } => w64!(dst, tri!(ops::i64_trunc_f32_s(f32_!(src)))),
    [1, 2, 3] I64TruncF32U { dst, src } => w64!(dst, tri!(ops::i64_trunc_f32_u(f32_!(src)))),
    [1, 2, 3] I64TruncF64S { dst, src } => w64!(dst, tri!(ops::i64_trunc_f64_s(f64_!(src)))),
    [1, 2, 3] I64TruncF64U { dst, src } => w64!(dst, tri!(ops::i64_trunc_f64_u(f64_!(src)))),
    // Rust's float-to-int `as` saturates and maps NaN to 0: exactly trunc_sat.
    [1, 2, 3] I32TruncSatF32S { dst, src } => w32!(dst, f32_!(src) as i32),
    [1, 2, 3] I32TruncSatF32U { dst, src } => w32!(dst, f32_!(src) as u32),
    [1, 2, 3] I32TruncSatF64S { dst, src } => w32!(dst, f64_!(src) as i32),
    [1, 2, 3] I32TruncSatF64U { dst, src } => w32!(dst, f64_!(src) as u32),
    [1, 2, 3] I64TruncSatF32S { dst, src } => w64!(dst, f32_!(src) as i64),
    [1, 2, 3] I64TruncSatF32U { dst, src } => w64!(dst, f32_!(src) as u64),
    [1, 2, 3] I64TruncSatF64S { dst, src } => w64!(dst, f64_!(src) as i64),
    [1, 2, 3] I64TruncSatF64U { dst, src } => w64!(dst, f64_!(src) as u64),
    [1, 2, 3] F32ConvertI32S { dst, src } => wf32!(dst, i32_!(src) as f32),
    [1, 2, 3] F32ConvertI32U { dst, src } => wf32!(dst, u32_!(src) as f32),
    [1, 2, 3] F32ConvertI64S { dst, src } => wf32!(dst, i64_!(src) as f32),
    [1, 2, 3] F32ConvertI64U { dst, src } => wf32!(dst, rd!(src) as f32),
    [1, 2, 3] F32DemoteF64 { dst, src } => wf32!(dst, f64_!(src) as f32),
    [1, 2, 3] F64ConvertI32S { dst, src } => wf64!(dst, i32_!(src) as f64),
    [1, 2, 3] F64ConvertI32U { dst, src } => wf64!(dst, u32_!(src) as f64),
    [1, 2, 3] F64ConvertI64S { dst, src } => wf64!(dst, i64_!(src) as f64),
    [1, 2, 3] F64ConvertI64U { dst, src } => wf64!(dst, rd!(src) as f64),
    [1, 2, 3] F64PromoteF32 { dst, src } => wf64!(dst, f32_!(src) as f64),

    // ---- immediate forms and fused compare-and-branch (see code::for_each_imm) ----
    [1, 2, 3] I32AddImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_add(imm as u32)),
    [1, 2, 3, 4, 5] I32RotlXor { dst, ab, k } => w32!(dst, u32_!(ab & 0xffff).rotate_left(k) ^ u32_!(ab >> 16)),
    [1, 2, 3, 4, 5] I64RotlXor { dst, ab, k } => w64!(dst, (rd!(ab & 0xffff)).rotate_left(k) ^ rd!(ab >> 16)),
    [1, 2, 3, 4, 5] I32XorRotl { dst, ab, k } => w32!(dst, (u32_!(ab & 0xffff) ^ u32_!(ab >> 16)).rotate_left(k)),
    [1, 2, 3, 4, 5] I64XorRotl { dst, ab, k } => w64!(dst, (rd!(ab & 0xffff) ^ rd!(ab >> 16)).rotate_left(k)),
    [1, 2, 3, 4, 5] I32AddI32LtS { dst, a, xy } => w32!(dst, u32_!(a).wrapping_add((i32_!(xy & 0xffff) < i32_!(xy >> 16)) as u32)),
    [1, 2, 3, 4, 5] I32AddI32LtU { dst, a, xy } => w32!(dst, u32_!(a).wrapping_add((u32_!(xy & 0xffff) < u32_!(xy >> 16)) as u32)),
    [1, 2, 3, 4, 5] I32AddI64LtS { dst, a, xy } => w32!(dst, u32_!(a).wrapping_add((i64_!(xy & 0xffff) < i64_!(xy >> 16)) as u32)),
    [1, 2, 3, 4, 5] I32AddI64LtU { dst, a, xy } => w32!(dst, u32_!(a).wrapping_add((rd!(xy & 0xffff) < rd!(xy >> 16)) as u32)),
    [1, 2, 3, 4, 5] I32AddShrU { dst, ab, k } => w32!(dst, u32_!(ab & 0xffff).wrapping_add(u32_!(ab >> 16) >> k)),
    [1, 2, 3] F64KDivU32 { ds, k } => wf64!((ds & 0xffff), f64::from_bits(k) / (u32_!(ds >> 16) as f64)),
    [1, 2, 3, 4, 5] I32AddShl { dst, ab, k } => w32!(dst, u32_!(ab & 0xffff).wrapping_add(u32_!(ab >> 16) << k)),
    I32AddImm2 { first, second, imms } => {
        w32!((first & 0xffff), u32_!(first >> 16).wrapping_add(imms as i16 as u32));
        w32!((second & 0xffff), u32_!(second >> 16).wrapping_add((imms >> 16) as i16 as u32));
    },
    [1, 2, 3] I32SubImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_sub(imm as u32)),
    [1, 2, 3] I32MulImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_mul(imm as u32)),
    [1, 2, 3] I32AndImm { dst, lhs, imm } => w32!(dst, u32_!(lhs) & (imm as u32)),
    [1, 2, 3] I32OrImm { dst, lhs, imm } => w32!(dst, u32_!(lhs) | (imm as u32)),
    [1, 2, 3] I32XorImm { dst, lhs, imm } => w32!(dst, u32_!(lhs) ^ (imm as u32)),
    [1, 2, 3] I32ShlImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_shl(imm as u32)),
    [1, 2, 3] I32ShrSImm { dst, lhs, imm } => w32!(dst, i32_!(lhs).wrapping_shr(imm as u32)),
    [1, 2, 3] I32ShrUImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_shr(imm as u32)),
    [1, 2, 3] I32RotlImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).rotate_left(imm as u32 % 32)),
    [1, 2, 3] I32RotrImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).rotate_right(imm as u32 % 32)),
    [1, 2, 3] I64AddImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_add(imm as i64 as u64)),
    [1, 2, 3] I64SubImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_sub(imm as i64 as u64)),
    [1, 2, 3] I64MulImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_mul(imm as i64 as u64)),
    [1, 2, 3] I64AndImm { dst, lhs, imm } => w64!(dst, rd!(lhs) & (imm as i64 as u64)),
    [1, 2, 3] I64OrImm { dst, lhs, imm } => w64!(dst, rd!(lhs) | (imm as i64 as u64)),
    [1, 2, 3] I64XorImm { dst, lhs, imm } => w64!(dst, rd!(lhs) ^ (imm as i64 as u64)),
    [1, 2, 3] I64ShlImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_shl(imm as u32)),
    [1, 2, 3] I64ShrSImm { dst, lhs, imm } => w64!(dst, i64_!(lhs).wrapping_shr(imm as u32)),
    [1, 2, 3] I64ShrUImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_shr(imm as u32)),
    [1, 2, 3] I64RotlImm { dst, lhs, imm } => w64!(dst, rd!(lhs).rotate_left(imm as u32 % 64)),
    [1, 2, 3] I64RotrImm { dst, lhs, imm } => w64!(dst, rd!(lhs).rotate_right(imm as u32 % 64)),
    [1, 2, 3] I32EqImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) == (imm as u32)),
    [2, 4] BrI32Eq { lhs, rhs, target } => {
        if u32_!(lhs) == u32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32EqImm { lhs, imm, target } => {
        if u32_!(lhs) == (imm as u32) {
            jump!(target);
        }
    },
    [1, 2, 3] I32NeImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) != (imm as u32)),
    [2, 4] BrI32Ne { lhs, rhs, target } => {
        if u32_!(lhs) != u32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32NeImm { lhs, imm, target } => {
        if u32_!(lhs) != (imm as u32) {
            jump!(target);
        }
    },
    [1, 2, 3] I32LtSImm { dst, lhs, imm } => wbool!(dst, i32_!(lhs) < imm),
    [2, 4] BrI32LtS { lhs, rhs, target } => {
        if i32_!(lhs) < i32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32LtSImm { lhs, imm, target } => {
        if i32_!(lhs) < imm {
            jump!(target);
        }
    },
    [1, 2, 3] I32LtUImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) < (imm as u32)),
    [2, 4] BrI32LtU { lhs, rhs, target } => {
        if u32_!(lhs) < u32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32LtUImm { lhs, imm, target } => {
        if u32_!(lhs) < (imm as u32) {
            jump!(target);
        }
    },
    [1, 2, 3] I32GtSImm { dst, lhs, imm } => wbool!(dst, i32_!(lhs) > imm),
    [2, 4] BrI32GtS { lhs, rhs, target } => {
        if i32_!(lhs) > i32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32GtSImm { lhs, imm, target } => {
        if i32_!(lhs) > imm {
            jump!(target);
        }
    },
    [1, 2, 3] I32GtUImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) > (imm as u32)),
    [2, 4] BrI32GtU { lhs, rhs, target } => {
        if u32_!(lhs) > u32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32GtUImm { lhs, imm, target } => {
        if u32_!(lhs) > (imm as u32) {
            jump!(target);
        }
    },
    [1, 2, 3] I32LeSImm { dst, lhs, imm } => wbool!(dst, i32_!(lhs) <= imm),
    [2, 4] BrI32LeS { lhs, rhs, target } => {
        if i32_!(lhs) <= i32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32LeSImm { lhs, imm, target } => {
        if i32_!(lhs) <= imm {
            jump!(target);
        }
    },
    [1, 2, 3] I32LeUImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) <= (imm as u32)),
    [2, 4] BrI32LeU { lhs, rhs, target } => {
        if u32_!(lhs) <= u32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32LeUImm { lhs, imm, target } => {
        if u32_!(lhs) <= (imm as u32) {
            jump!(target);
        }
    },
    [1, 2, 3] I32GeSImm { dst, lhs, imm } => wbool!(dst, i32_!(lhs) >= imm),
    [2, 4] BrI32GeS { lhs, rhs, target } => {
        if i32_!(lhs) >= i32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32GeSImm { lhs, imm, target } => {
        if i32_!(lhs) >= imm {
            jump!(target);
        }
    },
    [1, 2, 3] I32GeUImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) >= (imm as u32)),
    [2, 4] BrI32GeU { lhs, rhs, target } => {
        if u32_!(lhs) >= u32_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI32GeUImm { lhs, imm, target } => {
        if u32_!(lhs) >= (imm as u32) {
            jump!(target);
        }
    },
    [1, 2, 3] I64EqImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) == (imm as i64 as u64)),
    [2, 4] BrI64Eq { lhs, rhs, target } => {
        if rd!(lhs) == rd!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64EqImm { lhs, imm, target } => {
        if rd!(lhs) == (imm as i64 as u64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64NeImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) != (imm as i64 as u64)),
    [2, 4] BrI64Ne { lhs, rhs, target } => {
        if rd!(lhs) != rd!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64NeImm { lhs, imm, target } => {
        if rd!(lhs) != (imm as i64 as u64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64LtSImm { dst, lhs, imm } => wbool!(dst, i64_!(lhs) < (imm as i64)),
    [2, 4] BrI64LtS { lhs, rhs, target } => {
        if i64_!(lhs) < i64_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64LtSImm { lhs, imm, target } => {
        if i64_!(lhs) < (imm as i64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64LtUImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) < (imm as i64 as u64)),
    [2, 4] BrI64LtU { lhs, rhs, target } => {
        if rd!(lhs) < rd!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64LtUImm { lhs, imm, target } => {
        if rd!(lhs) < (imm as i64 as u64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64GtSImm { dst, lhs, imm } => wbool!(dst, i64_!(lhs) > (imm as i64)),
    [2, 4] BrI64GtS { lhs, rhs, target } => {
        if i64_!(lhs) > i64_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64GtSImm { lhs, imm, target } => {
        if i64_!(lhs) > (imm as i64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64GtUImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) > (imm as i64 as u64)),
    [2, 4] BrI64GtU { lhs, rhs, target } => {
        if rd!(lhs) > rd!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64GtUImm { lhs, imm, target } => {
        if rd!(lhs) > (imm as i64 as u64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64LeSImm { dst, lhs, imm } => wbool!(dst, i64_!(lhs) <= (imm as i64)),
    [2, 4] BrI64LeS { lhs, rhs, target } => {
        if i64_!(lhs) <= i64_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64LeSImm { lhs, imm, target } => {
        if i64_!(lhs) <= (imm as i64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64LeUImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) <= (imm as i64 as u64)),
    [2, 4] BrI64LeU { lhs, rhs, target } => {
        if rd!(lhs) <= rd!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64LeUImm { lhs, imm, target } => {
        if rd!(lhs) <= (imm as i64 as u64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64GeSImm { dst, lhs, imm } => wbool!(dst, i64_!(lhs) >= (imm as i64)),
    [2, 4] BrI64GeS { lhs, rhs, target } => {
        if i64_!(lhs) >= i64_!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64GeSImm { lhs, imm, target } => {
        if i64_!(lhs) >= (imm as i64) {
            jump!(target);
        }
    },
    [1, 2, 3] I64GeUImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) >= (imm as i64 as u64)),
    [2, 4] BrI64GeU { lhs, rhs, target } => {
        if rd!(lhs) >= rd!(rhs) {
            jump!(target);
        }
    },
    [2] BrI64GeUImm { lhs, imm, target } => {
        if rd!(lhs) >= (imm as i64 as u64) {
            jump!(target);
        }
    },

    // ---- memory ----
    [2, 4] I32StoreImm { addr, value, offset } => {
        let ea = effective!(addr, offset, 4);
        // SAFETY: ea + 4 <= mem_len, checked by `effective!`.
        // Every mapped memory has its chunk map CHUNK_MAP_OFFSET below its base
        // (`runtime::memory`), one byte per 4 KiB: ea's byte is in it.
        unsafe {
            ptr::write_unaligned(mem_base.add(ea) as *mut [u8; 4], (value as u32).to_le_bytes());
            if TRACK {
                *chunk_map.add(ea >> CHUNK_SHIFT) = 1;
            }
        }
    },
    [2, 4] I64StoreImm { addr, value, offset } => {
        let ea = effective!(addr, offset, 8);
        // SAFETY: ea + 8 <= mem_len, checked by `effective!`.
        // Every mapped memory has its chunk map CHUNK_MAP_OFFSET below its base
        // (`runtime::memory`), one byte per 4 KiB: ea's byte is in it.
        unsafe {
            ptr::write_unaligned(mem_base.add(ea) as *mut [u8; 8], (value as i64).to_le_bytes());
            if TRACK {
                *chunk_map.add(ea >> CHUNK_SHIFT) = 1;
            }
        }
    },
    [2, 4] I32Store8Imm { addr, value, offset } => {
        let ea = effective!(addr, offset, 1);
        // SAFETY: ea + 1 <= mem_len, checked by `effective!`.
        // Every mapped memory has its chunk map CHUNK_MAP_OFFSET below its base
        // (`runtime::memory`), one byte per 4 KiB: ea's byte is in it.
        unsafe {
            *mem_base.add(ea) = value as u8;
            if TRACK {
                *chunk_map.add(ea >> CHUNK_SHIFT) = 1;
            }
        }
    },
    I32Store8ImmStep { at_step, value, offset } => {
        let at = at_step & 0xffff;
        let ea = effective!(at, offset, 1);
        // SAFETY: as in `I32Store8Imm`.
        unsafe {
            *mem_base.add(ea) = value as u8;
            if TRACK {
                *chunk_map.add(ea >> CHUNK_SHIFT) = 1;
            }
        }
        w32!(at, u32_!(at).wrapping_add(u32_!(at_step >> 16)));
    },
    I32StoreAt { value, ea } => store_at!(value, ea, 4, |v| (v as u32).to_le_bytes()),
    I64StoreAt { value, ea } => store_at!(value, ea, 8, |v| v.to_le_bytes()),
    I32Store8At { value, ea } => store_at!(value, ea, 1, |v| [v as u8]),
    [1] I32LoadAt { dst, ea } => {
        let ea = ea as usize;
        if ea + 4 > mem_len {
            trap!(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: ea + 4 <= mem_len, checked just above.
        wr!(dst, u32::from_le_bytes(unsafe { ptr::read_unaligned(mem_base.add(ea) as *const [u8; 4]) }) as u64);
    },
    [1] I64LoadAt { dst, ea } => {
        let ea = ea as usize;
        if ea + 8 > mem_len {
            trap!(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: ea + 8 <= mem_len, checked just above.
        wr!(dst, u64::from_le_bytes(unsafe { ptr::read_unaligned(mem_base.add(ea) as *const [u8; 8]) }));
    },
    [1] I32Load8UAt { dst, ea } => {
        let ea = ea as usize;
        if ea + 1 > mem_len {
            trap!(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: ea < mem_len, checked just above.
        wr!(dst, unsafe { *mem_base.add(ea) } as u64);
    },
    [1, 2, 3] I32Load { dst, addr, offset } => load!(dst, addr, offset, 4, |b| u32::from_le_bytes(b) as u64),
    [1, 2, 3] I64Load { dst, addr, offset } => load!(dst, addr, offset, 8, |b| u64::from_le_bytes(b)),
    [1, 2, 3] F32Load { dst, addr, offset } => load!(dst, addr, offset, 4, |b| u32::from_le_bytes(b) as u64),
    [1, 2, 3] F64Load { dst, addr, offset } => load!(dst, addr, offset, 8, |b| u64::from_le_bytes(b)),
    [1, 2, 3] I32Load8S { dst, addr, offset } => load!(dst, addr, offset, 1, |b| b[0] as i8 as i32 as u32 as u64),
    [1, 2, 3] I32Load8U { dst, addr, offset } => load!(dst, addr, offset, 1, |b| b[0] as u64),
    [1, 2, 3] I32LoadAddImm { dst, src, k } => {
        let ea = u32_!(src).wrapping_add(k as u32) as usize;
        if ea + 4 > mem_len {
            trap!(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: ea + 4 <= mem_len, checked just above.
        let b: [u8; 4] = unsafe { ptr::read_unaligned(mem_base.add(ea) as *const [u8; 4]) };
        wr!(dst, u32::from_le_bytes(b) as u64)
    },
    [1, 2, 3] I64LoadAddImm { dst, src, k } => {
        let ea = u32_!(src).wrapping_add(k as u32) as usize;
        if ea + 8 > mem_len {
            trap!(TrapKind::MemoryOutOfBounds);
        }
        // SAFETY: ea + 8 <= mem_len, checked just above.
        let b: [u8; 8] = unsafe { ptr::read_unaligned(mem_base.add(ea) as *const [u8; 8]) };
        wr!(dst, u64::from_le_bytes(b))
    },
    I32Store2 { first, second, offsets } => {
        store!((first & 0xffff), (first >> 16), offsets & 0xffff, 4, |v| (v as u32).to_le_bytes());
        store!((second & 0xffff), (second >> 16), offsets >> 16, 4, |v| (v as u32).to_le_bytes())
    },
    I64Store2 { first, second, offsets } => {
        store!((first & 0xffff), (first >> 16), offsets & 0xffff, 8, |v| v.to_le_bytes());
        store!((second & 0xffff), (second >> 16), offsets >> 16, 8, |v| v.to_le_bytes())
    },
    I32Load2 { first, second, offsets } => {
        load!((first & 0xffff), (first >> 16), offsets & 0xffff, 4, |b| u32::from_le_bytes(b) as u64);
        load!((second & 0xffff), (second >> 16), offsets >> 16, 4, |b| u32::from_le_bytes(b) as u64)
    },
    I64Load2 { first, second, offsets } => {
        load!((first & 0xffff), (first >> 16), offsets & 0xffff, 8, |b| u64::from_le_bytes(b));
        load!((second & 0xffff), (second >> 16), offsets >> 16, 8, |b| u64::from_le_bytes(b))
    },
    I32LoadThenStore { dst, addrs, offsets } => {
        load!(dst, (addrs & 0xffff), offsets & 0xffff, 4, |b| u32::from_le_bytes(b) as u64);
        store!((addrs >> 16), dst, offsets >> 16, 4, |v| (v as u32).to_le_bytes())
    },
    I64LoadThenStore { dst, addrs, offsets } => {
        load!(dst, (addrs & 0xffff), offsets & 0xffff, 8, |b| u64::from_le_bytes(b));
        store!((addrs >> 16), dst, offsets >> 16, 8, |v| v.to_le_bytes())
    },
    I32MemCopyWord { addrs, src_offset, dst_offset } => copy_word!(addrs, src_offset, dst_offset, 4),
    I64MemCopyWord { addrs, src_offset, dst_offset } => copy_word!(addrs, src_offset, dst_offset, 8),
    [1, 2, 3, 4, 5] I32LoadIdx { dst, bi, offset } => load_idx!(dst, bi, offset, 4, |b| u32::from_le_bytes(b) as u64),
    [1, 2, 3, 4, 5] I64LoadIdx { dst, bi, offset } => load_idx!(dst, bi, offset, 8, |b| u64::from_le_bytes(b)),
    [1, 2, 3, 4, 5] I32Load8UIdx { dst, bi, offset } => load_idx!(dst, bi, offset, 1, |b| b[0] as u64),
    [1, 2, 3] I32Load16S { dst, addr, offset } => load!(dst, addr, offset, 2, |b| i16::from_le_bytes(b) as i32 as u32 as u64),
    [1, 2, 3] I32Load16U { dst, addr, offset } => load!(dst, addr, offset, 2, |b| u16::from_le_bytes(b) as u64),
    [1, 2, 3] I64Load8S { dst, addr, offset } => load!(dst, addr, offset, 1, |b| b[0] as i8 as i64 as u64),
    [1, 2, 3] I64Load8U { dst, addr, offset } => load!(dst, addr, offset, 1, |b| b[0] as u64),
    [1, 2, 3] I64Load16S { dst, addr, offset } => load!(dst, addr, offset, 2, |b| i16::from_le_bytes(b) as i64 as u64),
    [1, 2, 3] I64Load16U { dst, addr, offset } => load!(dst, addr, offset, 2, |b| u16::from_le_bytes(b) as u64),
    [1, 2, 3] I64Load32S { dst, addr, offset } => load!(dst, addr, offset, 4, |b| i32::from_le_bytes(b) as i64 as u64),
    [1, 2, 3] I64Load32U { dst, addr, offset } => load!(dst, addr, offset, 4, |b| u32::from_le_bytes(b) as u64),
    [2, 4] I32Store { addr, value, offset } => store!(addr, value, offset, 4, |v| (v as u32).to_le_bytes()),
    [2, 4] I64Store { addr, value, offset } => store!(addr, value, offset, 8, |v| v.to_le_bytes()),
    [2, 4] F32Store { addr, value, offset } => store!(addr, value, offset, 4, |v| (v as u32).to_le_bytes()),
    [2, 4] F64Store { addr, value, offset } => store!(addr, value, offset, 8, |v| v.to_le_bytes()),
    [2, 4] I32Store8 { addr, value, offset } => store!(addr, value, offset, 1, |v| [v as u8]),
    [2, 4] I32Store16 { addr, value, offset } => store!(addr, value, offset, 2, |v| (v as u16).to_le_bytes()),
    [2, 4] I64Store8 { addr, value, offset } => store!(addr, value, offset, 1, |v| [v as u8]),
    [2, 4] I64Store16 { addr, value, offset } => store!(addr, value, offset, 2, |v| (v as u16).to_le_bytes()),
    [2, 4] I64Store32 { addr, value, offset } => store!(addr, value, offset, 4, |v| (v as u32).to_le_bytes()),
}

// ---- calls and returns inside the current instance ----
//
// The common case of each runs here; anything else (the depth limit, a stack
// that must grow, a callee not yet translated, a return to another instance or
// to the host) ends the run at the instruction, and `exec` runs it in full.

/// The step of the `BrI32AddImm*` branches: `dst = (src + k) mod 2^32` (`ds`
/// packs dst and src, `ki` the other operand and k, an `i16`); returns dst's new
/// value and the other operand's, read after dst is written.
///
/// # Safety
/// The packed slots are slots of the frame at `fp`.
#[inline(always)]
unsafe fn loop_step(fp: *mut u64, ds: u32, ki: u32) -> (u32, u32) {
    // SAFETY: the caller's contract.
    unsafe {
        let x = (*fp.add((ds >> 16) as usize) as u32).wrapping_add((ki >> 16) as i16 as u32);
        *fp.add((ds & 0xffff) as usize) = x as u64;
        (x, *fp.add((ki & 0xffff) as usize) as u32)
    }
}

/// The step of the `BrI32AddImm{Nez,Eqz,NeImm,EqImm}` branches: `x = (x + k)
/// mod 2^32`; returns x's new value.
///
/// # Safety
/// `x` is a slot of the frame at `fp`.
#[inline(always)]
unsafe fn count_step(fp: *mut u64, x: u32, k: i32) -> u32 {
    // SAFETY: the caller's contract.
    unsafe {
        let v = (*fp.add(x as usize) as u32).wrapping_add(k as u32);
        *fp.add(x as usize) = v as u64;
        v
    }
}

/// `CallInternal`: enters a function of the current module.
#[allow(non_snake_case)]
unsafe fn CallInternal<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    // SAFETY: `handler_for` gives this handler to this variant only; the
    // translator emits it with a defined function of the current module.
    unsafe {
        let Instr::CallInternal { def_index, base: b } = (*ip).instr else { std::hint::unreachable_unchecked() };
        enter::<TRACK>(ip, fp, mem_base, mem_len, acc, cx, def_index, b, None)
    }
}

/// `CallInternalCopy`: the argument copy, then as `CallInternal` (should `exec`
/// take the call, it repeats the copy, which changes nothing).
#[allow(non_snake_case)]
unsafe fn CallInternalCopy<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    // SAFETY: as `CallInternal`; the copy's slots are the frame's.
    unsafe {
        let Instr::CallInternalCopy { def_index, base: b, copy } = (*ip).instr else {
            std::hint::unreachable_unchecked()
        };
        enter::<TRACK>(ip, fp, mem_base, mem_len, acc, cx, def_index, b, Some(copy))
    }
}

/// `CallIndirect` through table 0 to a function of the current instance whose
/// type matches; anything else (another table, a null or out-of-range entry, a
/// type mismatch, a host function or another instance's) ends the run at the
/// instruction, and `exec` runs it in full (trapping, or calling).
#[allow(non_snake_case)]
unsafe fn CallIndirect<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    // SAFETY: `handler_for` gives this handler to this variant only. `type_index`
    // is a validated type index of the current module, whose arguments and table
    // index are slots of the frame; `table0` holds `table0_len` entries and a
    // non-null entry is a store function index plus one (`runtime::store`).
    unsafe {
        let Instr::CallIndirect { type_index, table, base: b } = (*ip).instr else {
            std::hint::unreachable_unchecked()
        };
        let c = &*cx;
        let info = &(*c.module).info;
        if table != 0 {
            return exit(ip, fp, mem_base, mem_len, acc, cx);
        }
        let np = info.types.get_unchecked(type_index as usize).param_slots();
        let index = *fp.add(b as usize + np) as u32 as usize;
        if index >= c.table0_len {
            return exit(ip, fp, mem_base, mem_len, acc, cx);
        }
        let raw = *c.table0.add(index);
        if raw == 0 {
            return exit(ip, fp, mem_base, mem_len, acc, cx);
        }
        let f = &*c.funcs.add(raw as usize - 1);
        match f.kind {
            FuncKind::Wasm { instance, def_index }
                if instance == c.instance && f.type_id == *info.type_ids.get_unchecked(type_index as usize) =>
            {
                enter::<TRACK>(ip, fp, mem_base, mem_len, acc, cx, def_index, b, None)
            }
            _ => exit(ip, fp, mem_base, mem_len, acc, cx),
        }
    }
}

/// Enters defined function `def_index` of the current module, its arguments at
/// slot `b` of the current frame; `ip` is the calling instruction, run by `exec`
/// instead when the call cannot be made here. `copy`: an argument copy to make
/// first (two packed slots, `CallInternalCopy`), made only once the call is
/// certain to be made here (late, when a register is free for it).
///
/// # Safety
/// As a handler's; `def_index` is a defined function of the current module.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn enter<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
    def_index: u32,
    b: u32,
    copy: Option<u32>,
) -> usize {
    // SAFETY: `cx` and its pointers are valid for the whole run (the contract of
    // `run`), and nothing else uses what they point to meanwhile. The callee's
    // frame is checked to fit in the stack before it is entered.
    unsafe {
        let c = &mut *cx;
        // `exec` takes the call when the callee is not translated yet, when its
        // frame does not fit in the stack and when the frame list must grow (so
        // that nothing here calls out, which would make this handler save
        // registers on every call). The order of the checks keeps at most three
        // values live, so that the fast path saves no register either.
        // A defined function of the current module (the caller's contract), so
        // inside the module's ready list.
        let callee = (*c.ready.add(def_index as usize)).load(Ordering::Acquire);
        if callee.is_null() {
            return exit(ip, fp, mem_base, mem_len, acc, cx);
        }
        // A non-null ready pointer points at the callee's code, owned by the module.
        let callee = &*callee;
        // The arguments start at slot `b` of the current frame, inside the stack.
        if fp as usize + (b as usize + callee.frame_size as usize) * 8 > c.stack_end as usize {
            return exit(ip, fp, mem_base, mem_len, acc, cx);
        }
        let top = c.frames_top;
        if top as *const Frame >= c.frames_end {
            return exit(ip, fp, mem_base, mem_len, acc, cx);
        }
        // Locals that need zeroing are zeroed by the callee's first instruction
        // (`ZeroLocals`, skipped by `entry` when there are none).
        // Below `frames_end`, inside the list's capacity (checked above).
        // Only the return point: `module` and `instance` are the run's, written
        // in by `exec` when the run ends (`filled_top`).
        ptr::addr_of_mut!((*top).ip).write(ip.add(1));
        ptr::addr_of_mut!((*top).base).write(c.base);
        c.frames_top = top.add(1);
        c.base += b as usize;
        if let Some(copy) = copy {
            *fp.add((copy & 0xffff) as usize) = *fp.add((copy >> 16) as usize);
        }
        let new_fp = fp.add(b as usize);
        let callee_start = callee.code.as_ptr();
        next::<TRACK>(callee_start.add(callee.entry as usize), new_fp, mem_base, mem_len, acc, cx)
    }
}

/// Returns to a caller of the same instance (results are in place).
///
/// # Safety
/// As a handler's, with `ip` the returning instruction.
#[inline(always)]
unsafe fn return_within<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    // SAFETY: as in `CallInternal`; frames below `frames_top` are live callers'
    // saved state, whose frames are still inside the stack (below the current
    // one: frames only grow the stack, so `f.base <= c.base`).
    unsafe {
        let c = &mut *cx;
        let top = c.frames_top;
        if top == c.filled_top {
            // The caller's frame is a complete one, from before the run.
            if std::ptr::eq(top, c.frames_bottom) || (*top.sub(1)).instance != c.instance {
                return exit(ip, fp, mem_base, mem_len, acc, cx);
            }
            // The same instance, so the same module: `c.module` stays.
            debug_assert_eq!((*top.sub(1)).module, c.module);
            c.filled_top = top.sub(1);
        }
        // Either pushed by a call in this run (its `ip` and `base` written), or a
        // complete frame of this instance.
        let (f_ip, f_base) = ((*top.sub(1)).ip, (*top.sub(1)).base);
        c.frames_top = top.sub(1);
        let caller_fp = fp.sub(c.base - f_base);
        c.base = f_base;
        next::<TRACK>(f_ip, caller_fp, mem_base, mem_len, acc, cx)
    }
}

#[allow(non_snake_case)]
unsafe fn Return<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    // SAFETY: as `return_within`.
    unsafe { return_within::<TRACK>(ip, fp, mem_base, mem_len, acc, cx) }
}

#[allow(non_snake_case)]
unsafe fn ReturnSlot<const TRACK: bool>(
    ip: *const Cell,
    fp: *mut u64,
    mem_base: *mut u8,
    mem_len: usize,
    acc: u64,
    cx: *mut CallCx,
) -> usize {
    // SAFETY: `handler_for` gives this handler to this variant only. `src` is a
    // slot of the frame. Copying the result first is what `exec` does too, so
    // ending the run afterwards (returning elsewhere) repeats an idempotent copy.
    unsafe {
        let Instr::ReturnSlot { src } = (*ip).instr else { std::hint::unreachable_unchecked() };
        *fp = *fp.add(src as usize);
        return_within::<TRACK>(ip, fp, mem_base, mem_len, acc, cx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_handler_that_traps_ends_the_run_with_its_kind() {
        use crate::{Engine, Linker, Module, Store, TrapKind};
        let wat = r#"(module (memory 1)
            (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
            (func (export "conv") (param f64) (result i32) (i32.trunc_f64_s (local.get 0)))
            (func (export "load") (param i32) (result i32) (i32.load (local.get 0))))"#;
        let engine = Engine::default();
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        let kind = |e: crate::Error| e.as_trap().map(|t| t.kind());
        let div = instance.get_typed_func::<(i32, i32), i32>(&store, "div").unwrap();
        assert_eq!(kind(div.call(&mut store, (1, 0)).unwrap_err()), Some(TrapKind::IntegerDivisionByZero));
        assert_eq!(kind(div.call(&mut store, (i32::MIN, -1)).unwrap_err()), Some(TrapKind::IntegerOverflow));
        assert_eq!(div.call(&mut store, (7, 2)).unwrap(), 3);
        let conv = instance.get_typed_func::<f64, i32>(&store, "conv").unwrap();
        assert_eq!(kind(conv.call(&mut store, f64::NAN).unwrap_err()), Some(TrapKind::BadConversionToInteger));
        let load = instance.get_typed_func::<i32, i32>(&store, "load").unwrap();
        assert_eq!(kind(load.call(&mut store, 65533).unwrap_err()), Some(TrapKind::MemoryOutOfBounds));
    }

    /// `call_indirect` to a function of the same instance runs in the handlers
    /// (deep recursion through the table works and ends in the depth-limit trap);
    /// every other case goes to `exec`, which traps or calls as the spec says.
    #[test]
    fn call_indirect_within_the_instance_and_its_other_cases() {
        use crate::{Engine, Func, Linker, Module, Store, TrapKind};
        let wat = r#"(module
            (import "host" "twice" (func $twice (param i32) (result i32)))
            (type $t (func (param i32) (result i32)))
            (table 4 funcref)
            (elem (i32.const 0) $down $twice $other_type)
            (func $down (type $t)
                (if (result i32) (i32.eqz (local.get 0))
                    (then (i32.const 0))
                    (else (i32.add (i32.const 1)
                        (call_indirect (type $t) (i32.sub (local.get 0) (i32.const 1)) (i32.const 0))))))
            (func $other_type (param i64) (result i64) (local.get 0))
            (func (export "via") (param i32 i32) (result i32)
                (call_indirect (type $t) (local.get 1) (local.get 0))))"#;
        let engine = Engine::default();
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let mut linker = Linker::new(&engine);
        let twice = Func::wrap(&mut store, |x: i32| x * 2);
        linker.define("host", "twice", twice).unwrap();
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let via = instance.get_typed_func::<(i32, i32), i32>(&store, "via").unwrap();
        let kind = |r: Result<i32, crate::Error>| r.unwrap_err().as_trap().map(|t| t.kind());
        assert_eq!(via.call(&mut store, (0, 20_000)).unwrap(), 20_000);
        assert_eq!(kind(via.call(&mut store, (0, 1_000_000))), Some(TrapKind::StackExhausted));
        assert_eq!(via.call(&mut store, (1, 21)).unwrap(), 42, "a host function in the table");
        assert_eq!(kind(via.call(&mut store, (2, 1))), Some(TrapKind::BadSignature));
        assert_eq!(kind(via.call(&mut store, (3, 1))), Some(TrapKind::IndirectCallToNull));
        assert_eq!(kind(via.call(&mut store, (4, 1))), Some(TrapKind::TableOutOfBounds));
        // And still fine after the traps.
        assert_eq!(via.call(&mut store, (0, 7)).unwrap(), 7);
    }

    /// In optimised builds a handler must end by *jumping* to the next one: one
    /// that called it instead would keep its own frame, so the host stack would
    /// grow by a frame per instruction run and a long loop would overflow it.
    /// Nothing in Rust guarantees the jump (LLVM makes it as a sibling-call
    /// optimisation), so this reads this test binary's own machine code and
    /// fails on any handler that makes an indirect call. CI runs it in a
    /// release build (see README.md); unoptimised builds, where handlers return
    /// to the driver loop instead, compile it out.
    #[test]
    #[cfg(all(not(debug_assertions), target_arch = "x86_64", target_os = "linux"))]
    fn optimised_handlers_jump_to_the_next_handler_instead_of_calling_it() {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("objdump")
            .args(["-d", "--no-show-raw-insn", "-C"])
            .arg(&exe)
            .output()
            .expect("objdump (binutils) is needed to check the handlers' machine code");
        assert!(out.status.success(), "objdump failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let prefix = "<carnac::interp::threaded::";
        let (mut handlers, mut jumps, mut current, mut bad) = (0, 0, None::<String>, Vec::new());
        for line in text.lines() {
            if let Some(at) = line.find(prefix).filter(|_| line.ends_with(">:")) {
                let name = &line[at + prefix.len()..line.len() - 2];
                // Handlers are named after their instruction (CamelCase).
                current = name.starts_with(|c: char| c.is_ascii_uppercase()).then(|| name.to_string());
                handlers += current.is_some() as usize;
            } else if line.is_empty() {
                current = None;
            } else if let Some(name) = &current {
                // Calls through the GOT (`*...(%rip)`) reach library code (libm), not a handler.
                let is_call_indirect = line.contains("\tcall") && line.contains('*') && !line.contains("(%rip)");
                if is_call_indirect {
                    bad.push(format!("{name}: {}", line.trim()));
                }
                jumps += (line.contains("\tjmp") && line.contains("*%")) as usize;
            }
        }
        assert!(handlers > 200, "found only {handlers} handlers in {}: symbols stripped?", exe.display());
        assert!(jumps >= handlers, "{jumps} indirect jumps for {handlers} handlers");
        assert!(bad.is_empty(), "handlers that call instead of jumping:\n{}", bad.join("\n"));
    }
}
