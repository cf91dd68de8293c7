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
//!
//! Layout: this module holds the calling convention (the handler signature,
//! [`CallCx`], dispatch, [`run`]) and expands the handler list; the arms are
//! written by category in `control`, `variables`, `numeric`, `fused` and
//! `memory`, the template that turns them into handlers and tables in
//! `macros`, the hand-written call and return handlers in `calls`, and the
//! accumulator's encoding in `acc`.

mod acc;
mod calls;
mod control;
mod fused;
mod macros;
mod memory;
mod numeric;
mod variables;

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use super::code::{Cell, CompiledFunc, Instr};
use super::exec::Frame;
use super::ops;
use crate::module::ModuleInner;
use crate::runtime::memory::{mark_written_range, CHUNK_MAP_OFFSET, CHUNK_SHIFT};
use crate::runtime::store::FuncEntity;
use crate::runtime::trap::TrapKind;

// What the expanded handlers and tables name (they are expanded here).
use acc::{acc_bit, packed_bit, AccField};
use calls::{CallIndirect, CallInternal, CallInternalCopy, OsrPoint, Return, ReturnSlot};
use control::{control_handlers, count_step, loop_step};
use fused::fused_handlers;
use macros::{collect_handlers, handlers};
use memory::memory_handlers;
use numeric::numeric_handlers;
use variables::variables_handlers;

// The accumulator's encoding, for the translator.
pub(super) use acc::{
    clear_packed_result, has_acc_form, mark_packed, mark_packed_result, packed_form, packed_reads, packed_result, ACC,
    ACC_A, ACC_B, ACC_DST, PACKED_ACC,
};

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
    /// builds' driver loop (optimised builds pass it in a register), and the
    /// one an instruction received when it trapped out of bounds (so that
    /// `exec` can run it again after a shared memory grew on another thread).
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
/// `mem_base`/`mem_len` describe the current memory (memory 0, or the one a
/// `UseMemory` selected) or are null/0 without one.
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

collect_handlers! { $ [control_handlers variables_handlers numeric_handlers fused_handlers memory_handlers]
    special { CallInternal { def_index, base }, CallInternalCopy { def_index, base, copy }, CallIndirect { type_index, table, base }, Return {}, ReturnSlot { src }, OsrPoint { def_index, offset } }
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
        let engine = Engine::new(crate::Config::new().strategy(crate::Strategy::Interpreter));
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
        let engine = Engine::new(crate::Config::new().strategy(crate::Strategy::Interpreter));
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
                // Handlers are named after their instruction (CamelCase), here or in `calls`.
                let name = name.strip_prefix("calls::").unwrap_or(name);
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
