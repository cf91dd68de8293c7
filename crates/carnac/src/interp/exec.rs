//! The executor: runs interpreter code for one call from the host.
//!
//! The hot instructions run in `threaded` (one handler per instruction, chained
//! by tail calls); this loop hands them over and runs the rest itself: host
//! calls, calls to other instances, tail calls (`ReturnCall`, which reuse the
//! current frame: see `tail_target`), memory and table growth and
//! bulk operations, SIMD, and the uncommon cases of calls and returns. It owns
//! the frame list and builds traps, with their backtraces, for both.
//!
//! Exceptions (`throw`, `throw_ref`, or an exception a call returned): the
//! executor searches the catch clauses of the current frame, then of each
//! caller of this run, dropping frames as it goes (one clause search per
//! frame: linear in the depth, on no host stack), and continues at the
//! catching clause's landing pad; none catching, the exception leaves the run
//! as an error (`TrapKind::UncaughtException` with the exception) for the
//! caller of the run, any tier or the host. The search is out of line: code
//! that does not throw runs no new check.
//!
//! Guest frames live on the executor's own value stack (a `Vec<u64>` owned by the
//! store) and frame list, never on the host stack, so guest recursion depth is
//! bounded by configuration ([`crate::Config::max_call_depth`] and the stack
//! size) and ends in a `StackExhausted` trap.
//!
//! With `threaded`, these are the modules of the interpreter with `unsafe`
//! code. The invariants they rely on:
//! - Slot operands: the translator only emits slot indices below the function's
//!   `frame_size`, and every frame is entered only after checking
//!   `base + frame_size <= stack.len()`. `fp` is recomputed whenever the stack
//!   may have been reallocated (only on a call, which is where it grows).
//! - Code pointers: `ip` points into a `CompiledFunc` owned by a
//!   module that the store keeps alive (every function entity holds an `Arc` of
//!   its module) for at least as long as this call runs; once translated (a
//!   `OnceLock`), a function's code never moves or changes. Branch targets are
//!   distances to instructions of the same code, produced by the translator.
//! - Memory: `mem_base`/`mem_len` describe memory 0 of the current instance and
//!   are refreshed after anything that may grow it (memory.grow, any call);
//!   every access checks `address + size <= mem_len` first. An access to
//!   another memory (multi-memory) is bracketed by `UseMemory { mem }`, which
//!   points them at that memory for the one access (a load, store, SIMD
//!   access, `memory.size`, `.fill`, `.init` or `.copy` within it), and
//!   `UseMemory { mem: 0 }`, which points them back: memory 0's own code is
//!   unchanged, other memories pay two trips through this loop per access.
//!   Every write also marks its chunk in the memory's written-chunk map
//!   (`runtime::memory`), which is what lets a pooled memory be reset without
//!   a system call.
//! - Shared memories (the threads proposal): another thread may grow one at any
//!   time, so a cached `mem_len` may be short, never long (a memory never
//!   shrinks or moves). An out-of-bounds trap on a shared memory re-reads the
//!   length (`Acquire`) and runs the access again when it now fits;
//!   `memory.size`, SIMD and `memory.init` read the live length first. Atomic
//!   operators are one out-of-line `Atomic` instruction each (`interp::atomic`),
//!   naming their memory, so they need no `UseMemory` bracket.

use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::atomic::{self, AtomicOp};
use super::code::{Cell, CompiledFunc, Handler, Instr, CATCH_ALL};
use super::simd;
use super::threaded::{self, threaded_instrs, CallCx, Outcome};
use crate::module::{CodeRanges, ModuleInner};
use crate::runtime::func::Caller;
use crate::runtime::memory::{mark_written_range, MemoryMut};
use crate::runtime::shared;
use crate::runtime::store::{FuncKind, Store, StoreInner};
use crate::runtime::trap::{Backtrace, FrameInfo, Trap, TrapKind};
use crate::runtime::vmctx::{global_cells, VMMemoryDef};

/// A suspended caller frame. Which function it is follows from `ip` (see
/// [`ModuleInner::code_ranges`]): calls do not spend a store on it. A call made
/// by a handler writes only `ip` and `base`; `exec` writes `module` and
/// `instance` once the run ends (they are the run's own: see `CallCx::filled_top`).
#[repr(C)]
pub(crate) struct Frame {
    pub(super) module: *const ModuleInner,
    pub(super) instance: u32,
    /// The caller's next instruction.
    pub(super) ip: *const Cell,
    pub(super) base: usize,
}

/// A memory's base, its length, and where the length lives (to re-read it
/// cheaply after a call that may have grown the memory), from its definition
/// (null: no memory).
#[inline(always)]
fn mem_fields(def: *const VMMemoryDef, shared: bool) -> (*mut u8, usize, *const AtomicUsize) {
    if def.is_null() {
        return (ptr::null_mut(), 0, ptr::null());
    }
    // SAFETY: a non-null definition from `def_of` is a live memory's, boxed (or
    // shared) at a stable address for as long as the store holds the memory.
    let def = unsafe { &*def };
    (def.base, def.len_for(shared), &def.len)
}

/// Memory `mem` of `instance`: its definition and whether it is shared (null
/// and false without one).
#[inline(always)]
fn def_of(s: &StoreInner, instance: u32, mem: u32) -> (*const VMMemoryDef, bool) {
    match s.instances[instance as usize].memories.get(mem as usize) {
        Some(&m) => {
            let m = &s.memories[m as usize];
            (m.def_ptr() as *const VMMemoryDef, m.is_shared())
        }
        None => (ptr::null(), false),
    }
}

/// A trap of `kind` in the current function, with its backtrace (see
/// [`backtrace`]). Out of line, so that the executor's many trap sites share
/// one: in unoptimised builds each would otherwise hold its own `Trap` in the
/// executor's frame, which every level of host re-entry pays for.
#[cold]
#[inline(never)]
fn trap_with_backtrace(
    kind: TrapKind,
    frames: &[Frame],
    module: *const ModuleInner,
    next: *const Cell,
    max: usize,
) -> Trap {
    let mut t = Trap::new(kind);
    t.set_backtrace(backtrace(frames, module, next, max));
    t
}

/// The backtrace of a trap in the current function (`module`, `next`: the
/// instruction after the one that trapped) under `frames`.
///
/// Each frame's function is found from its instruction pointer, by binary
/// search in its module's code ranges (kept by the module, rebuilt when a
/// function translated since is missing): linear in the depth, whatever the
/// recursion's shape or the module's size (a backtrace can hold
/// `max_call_depth` frames; a hostile guest chooses both).
fn backtrace(frames: &[Frame], module: *const ModuleInner, next: *const Cell, max: usize) -> Backtrace {
    // Per module in the backtrace: its ranges, and whether they were rebuilt here.
    let mut ranges: Vec<(*const ModuleInner, CodeRanges, bool)> = Vec::new();
    let find = |code: &[(std::ops::Range<usize>, u32)], at: usize| {
        // The last range starting at or before `at`, if it holds `at`.
        let k = code.partition_point(|(r, _)| r.start <= at).checked_sub(1)?;
        code[k].0.contains(&at).then_some(code[k].1)
    };
    let mut info = |module: *const ModuleInner, next: *const Cell| {
        // SAFETY: module pointers in frames come from live `Arc<ModuleInner>`s held by the store.
        let m = unsafe { &*module };
        let at = (next as usize).wrapping_sub(std::mem::size_of::<Cell>());
        let i = match ranges.iter().position(|(rm, ..)| *rm == module) {
            Some(i) => i,
            None => {
                ranges.push((module, m.code_ranges(), false));
                ranges.len() - 1
            }
        };
        let mut found = find(&ranges[i].1, at);
        if found.is_none() && !ranges[i].2 {
            ranges[i] = (module, m.refresh_code_ranges(), true);
            found = find(&ranges[i].1, at);
        }
        debug_assert!(found.is_some(), "no function holds a frame's instruction");
        let func_index = found.unwrap_or(u32::MAX);
        // The instruction's wasm offset, from the function's offset table.
        let def = func_index.checked_sub(m.info.num_imported_funcs);
        let module_offset = def.and_then(|def| {
            let code = m.func_code(def).ok()?;
            let i = at.checked_sub(code.code.as_ptr() as usize)? / std::mem::size_of::<Cell>();
            code.offsets.get(i).map(|&o| o as usize)
        });
        let func_offset = module_offset.zip(def.and_then(|d| m.body_start(d))).and_then(|(o, b)| o.checked_sub(b));
        FrameInfo {
            module_name: m.info.name.clone(),
            func_index,
            func_name: m.info.func_names.get(func_index),
            module_offset,
            func_offset,
        }
    };
    // Frames innermost first: the trapping one, then `frames` from the top.
    let total = frames.len() + 1;
    if max == 0 {
        return Vec::new().into();
    }
    let frame_at =
        |i: usize| if i == 0 { (module, next) } else { (frames[frames.len() - i].module, frames[frames.len() - i].ip) };
    if total <= max {
        return (0..total)
            .map(|i| {
                let (m, ip) = frame_at(i);
                info(m, ip)
            })
            .collect::<Vec<_>>()
            .into();
    }
    // Keep both ends; only the kept frames are looked up.
    let inner = max.div_ceil(2);
    let outer = max - inner;
    let kept = (0..inner)
        .chain(total - outer..total)
        .map(|i| {
            let (m, ip) = frame_at(i);
            info(m, ip)
        })
        .collect();
    Backtrace { frames: kept, elided_at: inner, elided: total - max }
}

/// The interpreter function whose code holds the instruction at `at`.
fn func_at(m: &ModuleInner, at: usize) -> Option<&CompiledFunc> {
    let find = |code: &[(std::ops::Range<usize>, u32)]| {
        let k = code.partition_point(|(r, _)| r.start <= at).checked_sub(1)?;
        code[k].0.contains(&at).then_some(code[k].1)
    };
    let f = find(&m.code_ranges()).or_else(|| find(&m.refresh_code_ranges()))?;
    m.func_code(f.checked_sub(m.info.num_imported_funcs)?).ok()
}

/// The catch clause of the frame at instruction `at` (of `module`, run by
/// `instance`) that catches an exception of store tag `exn_tag`, and where it
/// lands. Out of line: only a throw looks (exception handling).
#[cold]
#[inline(never)]
fn find_handler(
    s: &StoreInner,
    module: *const ModuleInner,
    instance: u32,
    at: *const Cell,
    exn_tag: u32,
) -> Option<(Handler, *const Cell)> {
    // SAFETY: module pointers in frames come from live `Arc<ModuleInner>`s held by the store.
    let m = unsafe { &*module };
    let func = func_at(m, at as usize)?;
    if func.handlers.is_empty() {
        return None;
    }
    let i = (at as usize - func.code.as_ptr() as usize) / std::mem::size_of::<Cell>();
    let tags = &s.instances[instance as usize].tags;
    let h = func.handlers.iter().find(|h| {
        (h.start as usize..h.end as usize).contains(&i) && (h.tag == CATCH_ALL || tags[h.tag as usize] == exn_tag)
    })?;
    // SAFETY: the translator's pads are instructions of the function's code.
    Some((*h, unsafe { func.code.as_ptr().add(h.pad as usize) }))
}

/// The executor's current frame, as `unwind` updates it in place: module,
/// instance, instruction pointer, base.
type At<'a> = (&'a mut *const ModuleInner, &'a mut u32, &'a mut *const Cell, &'a mut usize);
/// The executor's current memory, as `unwind` refreshes it: definition,
/// shared-ness, base, length, where the length lives.
type Mem<'a> = (&'a mut *const VMMemoryDef, &'a mut bool, &'a mut *mut u8, &'a mut usize, &'a mut *const AtomicUsize);

/// Unwinds an exception (raw reference `raw`) through this run's frames: the
/// innermost catch clause that matches it, in the current frame `cur` (unless
/// `skip`: a tail call replaced it) or a caller's, catches it; the frames above
/// the catching one are dropped, the fields (then the reference) written at
/// the clause's slots, and the catching frame returned with its `ip` at the
/// clause's pad. None catching: the error the run ends with. One clause search
/// per frame (linear in the depth, on no host stack); out of line, so that
/// the executor's frame, which every host re-entry pays for, stays small.
#[cold]
#[inline(never)]
fn unwind(
    s: &mut StoreInner,
    frames: &mut Vec<Frame>,
    stack: &mut [u64],
    at: At<'_>,
    mem: Mem<'_>,
    raw: u64,
    skip: bool,
) -> Result<(), Trap> {
    let Some(exn_tag) = crate::runtime::exn::exception_tag(s, raw) else {
        return Err(Trap::new(TrapKind::NullExceptionReference));
    };
    let mut f = Frame { module: *at.0, instance: *at.1, ip: *at.2, base: *at.3 };
    let mut skip = skip;
    let (h, pad) = loop {
        if !skip {
            // SAFETY: a frame's `ip` is past the instruction that threw (or its call).
            let next = unsafe { f.ip.sub(1) };
            if let Some(found) = find_handler(s, f.module, f.instance, next, exn_tag) {
                break found;
            }
        }
        skip = false;
        match frames.pop() {
            Some(caller) => f = caller,
            None => {
                // Beyond this activation, others may hold it.
                crate::runtime::exn::expose(s, raw);
                return Err(uncaught(s, raw));
            }
        }
    };
    let mut k = f.base + h.slot as usize;
    if h.tag != CATCH_ALL {
        let fields = &crate::runtime::exn::exception_object(s, raw).expect("a live exception").fields;
        // The pad's temps are inside the frame (the translator counted them).
        stack[k..k + fields.len()].copy_from_slice(fields);
        k += fields.len();
    }
    if h.with_ref {
        stack[k] = raw;
        crate::runtime::exn::expose(s, raw);
    } else {
        crate::runtime::exn::release(s, raw);
    }
    (*at.0, *at.1, *at.2, *at.3) = (f.module, f.instance, pad, f.base);
    let (def, shared) = def_of(s, f.instance, 0);
    let (base, len, len_ptr) = mem_fields(def, shared);
    (*mem.0, *mem.1, *mem.2, *mem.3, *mem.4) = (def, shared, base, len, len_ptr);
    Ok(())
}

/// A call of the current frame (a host function, or wasm run elsewhere)
/// failed with `t`: an exception unwinds here (see `unwind`: `Ok` when a
/// clause of this run caught it); any other error gets this run's frames in
/// its backtrace (after the other tier's, for `wasm`) and ends the run.
/// `tail`: the current frame made the call as its tail call (it is gone).
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn call_error(
    s: &mut StoreInner,
    frames: &mut Vec<Frame>,
    stack: &mut [u64],
    at: At<'_>,
    mem: Mem<'_>,
    mut t: Trap,
    tail: bool,
    wasm: bool,
    bt_max: usize,
) -> Result<(), Trap> {
    if let Some(raw) = exception_of(s, &t) {
        return unwind(s, frames, stack, at, mem, raw, tail);
    }
    let caller_backtrace = || match frames.split_last() {
        Some((last, callers)) if tail => backtrace(callers, last.module, last.ip, bt_max),
        None if tail => Vec::new().into(),
        _ => backtrace(frames, *at.0, *at.2, bt_max),
    };
    if !t.has_backtrace() {
        t.set_backtrace(caller_backtrace());
    } else if wasm && bt_max > 0 {
        // The other tier's frames, then this run's.
        t.extend_backtrace(caller_backtrace(), bt_max);
    }
    Err(t)
}

/// `throw`: a new exception of module tag `tag` of `instance` with the
/// fields at the start of `slots`; its raw reference.
#[cold]
#[inline(never)]
fn new_exception(s: &mut StoreInner, cap: usize, instance: u32, tag: u32, slots: &[u64]) -> Result<u64, Trap> {
    let inst = &s.instances[instance as usize];
    let n = inst.module.info.tag_type(tag).param_slots();
    let store_tag = inst.tags[tag as usize];
    // Exceptions given to wasm (`catch_ref`) are freed only when no wasm runs:
    // while it runs, the live ones are held to the GC heap's cap, in bytes.
    if s.externs.exn_bytes.saturating_add(crate::runtime::exn::exception_size(n)) > cap {
        return Err(Trap::new(TrapKind::OutOfGcMemory));
    }
    crate::runtime::exn::new_exception(s, store_tag, slots[..n].into()).map_err(Trap::from)
}

/// The error of an exception that leaves this activation uncaught.
#[cold]
fn uncaught(s: &StoreInner, raw: u64) -> Trap {
    let (index, gen) = crate::runtime::gc::decode(raw).expect("an exception is not null");
    let mut t = Trap::throw(crate::ExnRef { store: s.id, index, gen });
    if let Some(tag) = crate::runtime::exn::exception_tag(s, raw) {
        t.set_exception_message(tag);
    }
    t
}

/// The raw reference of the exception a call failed with, if it did with
/// one of store `s` (to continue unwinding here).
#[inline]
fn exception_of(s: &StoreInner, t: &Trap) -> Option<u64> {
    let e = t.exception().filter(|e| e.store == s.id)?;
    Some(crate::runtime::gc::encode(e.index, e.gen))
}

/// The backtrace of a trap on entering defined function `def_index` of `module`,
/// the first function of the call (no code to point into).
fn entry_backtrace(module: *const ModuleInner, def_index: u32) -> Vec<FrameInfo> {
    // SAFETY: `module` is the called function's, alive for the call.
    let m = unsafe { &*module };
    let func_index = m.info.num_imported_funcs + def_index;
    vec![FrameInfo {
        module_name: m.info.name.clone(),
        func_index,
        func_name: m.info.func_names.get(func_index),
        module_offset: None,
        func_offset: None,
    }]
}

/// Makes sure `stack` has at least `needed` slots, within `max` slots. The check
/// is inlined into every call; growing is the rare, out-of-line path.
#[inline(always)]
fn ensure_stack(stack: &mut Vec<u64>, needed: usize, max: usize) -> Result<(), TrapKind> {
    if needed > stack.len() {
        return grow_stack(stack, needed, max);
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn grow_stack(stack: &mut Vec<u64>, needed: usize, max: usize) -> Result<(), TrapKind> {
    if needed > max {
        return Err(TrapKind::StackExhausted);
    }
    let new_len = needed.max(stack.len() * 2).min(max);
    stack.resize(new_len, 0);
    Ok(())
}

/// Runs defined function `def_index` of `instance` with its arguments already in
/// `stack[0..]`; leaves the results in `stack[0..]`. With `TRACK`, stores mark the
/// memory's written-chunk map (`Config::track_memory_writes`); it is a constant
/// so that the untracked loop carries no trace of it (marking inside this loop
/// changes its register allocation: +8% instructions on store-heavy code).
pub(crate) fn run<T, const TRACK: bool>(
    store: &mut Store<T>,
    stack: &mut Vec<u64>,
    instance: u32,
    module: *const ModuleInner,
    def_index: u32,
) -> Result<(), Trap> {
    let max_depth = store.inner.engine.config().max_call_depth;
    let max_slots = store.inner.engine.config().max_stack_slots;
    let bt_max = store.inner.engine.config().wasm_backtrace_max_frames;
    let mut frames: Vec<Frame> = Vec::new();
    // Whether tail calls to compiled functions stay in this tier (see `tail_target`).
    let tail_in_interp = store.inner.engine.config().strategy == crate::Strategy::Auto;
    let mut instance = instance;
    let mut module = module;
    // SAFETY: see the module docs (code pointers).
    let func: &CompiledFunc = match unsafe { (*module).func_code(def_index) } {
        Ok(f) => f,
        Err(kind) => {
            let mut t = Trap::new(kind);
            if bt_max > 0 {
                t.set_backtrace(entry_backtrace(module, def_index));
            }
            return Err(t);
        }
    };
    ensure_stack(stack, func.frame_size as usize, max_slots)?;
    let mut base: usize = 0;
    let mut fp: *mut u64 = stack.as_mut_ptr();
    // SAFETY: `entry` is 0 or 1, and a function's code holds at least its
    // `ZeroLocals` and a return.
    let mut ip = unsafe { func.code.as_ptr().add(func.entry as usize) };
    // The current memory's definition and shared-ness (memory 0, or the one a
    // `UseMemory` selected): another thread may grow a shared memory at any
    // time, so its accesses re-read the length before trapping out of bounds.
    // Definitions are boxed (or shared): the pointer stays valid.
    let (mut cur_def, mut cur_shared) = def_of(&store.inner, instance, 0);
    let (mut mem_base, mut mem_len, mut mem_len_ptr) = mem_fields(cur_def, cur_shared);
    // The accumulator to run with: 0, or the one an out-of-bounds access had
    // when it is run again (see the trap handling after `threaded::run`).
    let mut resume_acc = 0;

    macro_rules! trap {
        ($kind:expr) => {
            return Err(trap_with_backtrace($kind, &frames, module, ip, bt_max))
        };
    }
    macro_rules! tri {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(kind) => trap!(kind),
            }
        };
    }
    // SAFETY (all slot accesses): see the module docs (slot operands).
    macro_rules! rd {
        ($s:expr) => {
            unsafe { *fp.add($s as usize) }
        };
    }
    macro_rules! wr {
        ($s:expr, $v:expr) => {{
            let v: u64 = $v;
            unsafe { *fp.add($s as usize) = v }
        }};
    }
    macro_rules! u32_ {
        ($s:expr) => {
            rd!($s) as u32
        };
    }
    macro_rules! w32 {
        ($d:expr, $v:expr) => {
            wr!($d, ($v) as u32 as u64)
        };
    }
    macro_rules! refresh_mem {
        () => {{
            (cur_def, cur_shared) = def_of(&store.inner, instance, 0);
            (mem_base, mem_len, mem_len_ptr) = mem_fields(cur_def, cur_shared);
        }};
    }
    /// Calls store function `$fidx` through the common entry (compiled code)
    /// or as a host function, its arguments at absolute stack slot `$new_base`;
    /// `$tail`: as the tail call of the current function (see `call_error`).
    macro_rules! call_elsewhere {
        ($fidx:expr, $new_base:expr, $tail:expr) => {{
            let (fidx, new_base): (usize, usize) = ($fidx, $new_base);
            let (result, wasm) = match &store.inner.funcs[fidx].kind {
                // Another tier's code: through the common entry, like a host function.
                FuncKind::Wasm { .. } => {
                    let ty = store.inner.func_ty(fidx as u32);
                    let n = ty.param_slots().max(ty.result_slots());
                    tri!(ensure_stack(stack, new_base + n, max_slots));
                    let slots = &mut stack[new_base..new_base + n];
                    (crate::runtime::call::call_func(store, fidx as u32, slots, Some(instance)), true)
                }
                FuncKind::Host { index, slots } => {
                    let host = store.hosts[*index as usize].func.clone();
                    let n = *slots as usize;
                    tri!(ensure_stack(stack, new_base + n, max_slots));
                    let caller = Caller { store: &mut *store, instance: Some(instance) };
                    (host(caller, &mut stack[new_base..new_base + n]), false)
                }
            };
            if let Err(t) = result {
                // An exception is caught here (the run goes on) or the run's error.
                let at = (&mut module, &mut instance, &mut ip, &mut base);
                let mem = (&mut cur_def, &mut cur_shared, &mut mem_base, &mut mem_len, &mut mem_len_ptr);
                call_error(&mut store.inner, &mut frames, stack, at, mem, t, $tail, wasm, bt_max)?;
                fp = unsafe { stack.as_mut_ptr().add(base) };
                continue;
            }
            fp = unsafe { stack.as_mut_ptr().add(base) };
            refresh_mem!();
        }};
    }
    /// Enters a wasm function or calls a host function whose arguments start at
    /// frame slot `$base`; `$fidx` is a store function index.
    macro_rules! call_store_func {
        ($fidx:expr, $base:expr, $tail:expr) => {{
            let fidx = $fidx as usize;
            let new_base = base + $base as usize;
            let entity = &store.inner.funcs[fidx];
            match &entity.kind {
                FuncKind::Wasm { instance: callee_instance, def_index }
                    if !store.inner.instances[*callee_instance as usize].module.func_is_compiled(*def_index) =>
                {
                    let callee_instance = *callee_instance;
                    let callee_module: *const ModuleInner = &*store.inner.instances[callee_instance as usize].module;
                    let def_index = *def_index;
                    enter!(callee_module, callee_instance, def_index, new_base);
                    refresh_mem!();
                }
                _ => call_elsewhere!(fidx, new_base, $tail),
            }
        }};
    }
    /// A call to defined function `$def` of the current module: entered here,
    /// or, once it tiered up, run compiled.
    macro_rules! call_internal {
        ($def:expr, $b:expr) => {{
            let (def_index, b) = ($def, $b);
            // SAFETY: see the module docs (code pointers).
            let m = unsafe { &*module };
            if m.func_is_compiled(def_index) {
                let fidx =
                    store.inner.instances[instance as usize].funcs[(m.info.num_imported_funcs + def_index) as usize];
                call_store_func!(fidx, b, false);
            } else {
                enter!(module, instance, def_index, base + b as usize);
            }
        }};
    }
    /// Where a tail call (`return_call`, `return_call_indirect`) to store
    /// function `$fidx` runs here, replacing the current frame: a wasm function
    /// with interpreter code (its instance, module, index and code). Its
    /// arguments then move to slot 0 and it is entered without pushing a frame,
    /// so a chain of tail calls, across instances too, runs in constant space.
    /// Under `Strategy::Auto` that holds for callees compiled since too (their
    /// interpreter code runs: switching to compiled code at a tail call nests a
    /// host call, and a chain through a function compiled and one not yet
    /// would nest one at every other call); otherwise, and for a module loaded
    /// from an artifact, compiled callees run compiled. `None` for those and
    /// for host functions: an ordinary call followed by a return of its results.
    macro_rules! tail_target {
        ($fidx:expr) => {
            match &store.inner.funcs[$fidx as usize].kind {
                FuncKind::Wasm { instance: i, def_index: d } => {
                    let m = &store.inner.instances[*i as usize].module;
                    if !m.func_is_compiled(*d) {
                        let code: &CompiledFunc = tri!(m.func_code(*d));
                        Some((*i, &**m as *const ModuleInner, *d, code as *const CompiledFunc))
                    } else if tail_in_interp {
                        // Compiled, and interpreter code to be had (not for
                        // a module loaded from an artifact: then it runs compiled).
                        m.func_code(*d)
                            .ok()
                            .map(|code| (*i, &**m as *const ModuleInner, *d, code as *const CompiledFunc))
                    } else {
                        None
                    }
                }
                FuncKind::Host { .. } => None,
            }
        };
    }
    macro_rules! enter {
        ($module:expr, $instance:expr, $def:expr, $new_base:expr) => {{
            if frames.len() >= max_depth {
                trap!(TrapKind::StackExhausted);
            }
            let callee_module: *const ModuleInner = $module;
            // SAFETY: see the module docs (code pointers).
            let callee: &CompiledFunc = tri!(unsafe { (*callee_module).func_code($def) });
            let new_base: usize = $new_base;
            tri!(ensure_stack(stack, new_base + callee.frame_size as usize, max_slots));
            frames.push(Frame { module, instance, ip, base });
            module = callee_module;
            instance = $instance;
            base = new_base;
            fp = unsafe { stack.as_mut_ptr().add(base) };
            // SAFETY: as for the first function's entry.
            ip = unsafe { callee.code.as_ptr().add(callee.entry as usize) };
        }};
    }

    macro_rules! do_return {
        () => {
            match frames.pop() {
                None => return Ok(()),
                Some(f) => {
                    let same_instance = f.instance == instance;
                    module = f.module;
                    instance = f.instance;
                    ip = f.ip;
                    base = f.base;
                    fp = unsafe { stack.as_mut_ptr().add(base) };
                    if same_instance {
                        // The callee may have grown the (shared) memory.
                        // SAFETY: `mem_len_ptr` points at the length of this instance's
                        // memory 0, in its definition's box (a shared memory's lives as
                        // long as the store's clone), which never moves.
                        // A shared memory grown by another thread is seen at the next
                        // out-of-bounds access (which re-reads the length with `Acquire`).
                        mem_len =
                            if mem_len_ptr.is_null() { 0 } else { unsafe { (*mem_len_ptr).load(Ordering::Relaxed) } };
                    } else {
                        refresh_mem!();
                    }
                }
            }
        };
    }

    /// Throws the exception in raw reference `$raw`: see `unwind`. Caught,
    /// the run continues at the catching clause's pad; not, the exception
    /// leaves the run. `$skip`: the current frame is gone already (a tail
    /// call's callee threw). Small: it is expanded at every call site.
    macro_rules! throw {
        ($raw:expr, $skip:expr) => {{
            let at = (&mut module, &mut instance, &mut ip, &mut base);
            let mem = (&mut cur_def, &mut cur_shared, &mut mem_base, &mut mem_len, &mut mem_len_ptr);
            unwind(&mut store.inner, &mut frames, stack, at, mem, $raw, $skip)?;
            fp = unsafe { stack.as_mut_ptr().add(base) };
            continue;
        }};
    }

    loop {
        // Instructions with a handler run in `threaded` until one that needs the
        // store, the frames or the module (a call, a return, a global...): that
        // one runs here, then the loop goes back to the handlers.
        // SAFETY: `ip` is an instruction of the current function, `fp` its frame and
        // `mem_base`/`mem_len` the current memory of the current instance (memory 0,
        // or the one a `UseMemory` selected for the next access), all as
        // `threaded::run` requires (see the module docs for why they hold).
        let (table0, table0_len) = match store.inner.instances[instance as usize].tables.first() {
            Some(&t) => {
                let elems = &store.inner.tables[t as usize].elems;
                (elems.as_ptr(), elems.len())
            }
            None => (ptr::null(), 0),
        };
        // SAFETY: within (or one past) the list's allocation.
        let frames_top = unsafe { frames.as_mut_ptr().add(frames.len()) };
        let mut cx = CallCx {
            frames_bottom: frames.as_ptr(),
            frames_top,
            filled_top: frames_top,
            frames_end: unsafe { frames.as_ptr().add(max_depth.min(frames.capacity())) },
            stack_end: unsafe { stack.as_ptr().add(stack.len()) },
            base,
            module,
            // SAFETY: `module` is the current module, alive for the whole call.
            ready: unsafe { (*module).ready_list() },
            instance,
            fp,
            acc: 0,
            table0,
            table0_len,
            funcs: store.inner.funcs.as_ptr(),
            // SAFETY: the instance's own block, laid out by its module's offsets.
            globals: unsafe {
                let inst = &store.inner.instances[instance as usize];
                global_cells(inst.vmctx.as_ptr(), &inst.module.vm_offsets)
            },
            fuel: &mut store.inner.store_ctx.fuel,
            interrupt: &store.inner.signals.interrupted,
            epoch: store.inner.store_ctx.epoch,
            check: &store.inner.signals.check,
            trap: TrapKind::Unreachable,
            trap_at: ptr::null(),
        };
        let outcome = unsafe { threaded::run::<TRACK>(ip, fp, mem_base, mem_len, resume_acc, &mut cx) };
        resume_acc = 0;
        // The frames that calls in the run pushed and that are still there hold
        // only their `ip` and `base`; they are the run's instance's.
        let mut f = cx.filled_top;
        while f < cx.frames_top {
            // SAFETY: between `filled_top` and `frames_top`, inside the list's
            // capacity: frames the run's calls wrote (`ip` and `base` only).
            unsafe {
                ptr::addr_of_mut!((*f).module).write(cx.module);
                ptr::addr_of_mut!((*f).instance).write(cx.instance);
                f = f.add(1);
            }
        }
        // SAFETY: calls and returns in the run kept `frames_top` within the list's
        // capacity, every frame below it written (in full, just above).
        unsafe { frames.set_len(cx.frames_top.offset_from(frames.as_ptr()) as usize) };
        // Calls and returns inside the run moved to another frame (of the same instance).
        // The frame pointer is derived from `base`: a run that ends in a trap leaves `cx.fp` at
        // the frame of its last exit, not of the function that trapped, and the trap of an epoch
        // check resumes there when the deadline callback lets the guest go on.
        (base, module) = (cx.base, cx.module);
        // SAFETY: `base` is the current frame's start, inside the stack (the run entered it).
        fp = unsafe { stack.as_mut_ptr().add(base) };
        debug_assert!(matches!(outcome, Outcome::Trap(_)) || fp == cx.fp);
        match outcome {
            Outcome::Exit(at) => ip = at,
            Outcome::Trap(kind) => {
                // The instruction after the one that trapped, as for traps here.
                // SAFETY: a trapping instruction is never a function's last (`Return`).
                ip = unsafe { cx.trap_at.add(1) };
                // SAFETY: `trap_at` is the instruction that ended the run.
                if unsafe { (*cx.trap_at).instr } == Instr::CheckEpoch {
                    // Interrupted, or at the epoch deadline: the callback may let
                    // the guest go on after the check (no value is in the
                    // accumulator there: a check is never an accumulator's consumer).
                    if let Err(mut t) = store.deadline_reached() {
                        t.set_backtrace(backtrace(&frames, module, ip, bt_max));
                        return Err(t);
                    }
                    // The callback had the store: it may have grown memories.
                    refresh_mem!();
                    continue;
                }
                if kind == TrapKind::MemoryOutOfBounds && cur_shared {
                    // SAFETY: `cur_def` is the current memory's live definition.
                    let live = unsafe { (*cur_def).len_for(true) };
                    if live > mem_len {
                        // Another thread grew it: run the access again (with the
                        // accumulator it had) against the length it has now.
                        mem_len = live;
                        ip = cx.trap_at;
                        resume_acc = cx.acc;
                        continue;
                    }
                }
                trap!(kind)
            }
        }
        // SAFETY: ip stays within the current function's code (see the module docs):
        // every function ends in `Return`, and branches target valid indices.
        let instr = unsafe { (*ip).instr };
        ip = unsafe { ip.add(1) };
        match instr {
            // Not reached: `threaded::run` only stops at instructions without a
            // handler. Were it reached, running it there again would be correct.
            threaded_instrs!() => ip = unsafe { ip.sub(1) },
            Instr::Unreachable => trap!(TrapKind::Unreachable),
            Instr::Sentinel => unreachable!("the translator never emits Instr::Sentinel"),
            Instr::Return => do_return!(),
            Instr::ReturnSlot { src } => {
                wr!(0, rd!(src));
                do_return!();
            }
            Instr::CallInternal { def_index, base: b } => call_internal!(def_index, b),
            Instr::CallInternalCopy { def_index, base: b, copy } => {
                wr!(copy & 0xffff, rd!(copy >> 16));
                call_internal!(def_index, b);
            }
            Instr::OsrPoint { def_index, offset } => {
                #[cfg(carnac_compiled)]
                {
                    let m = store.inner.instances[instance as usize].module.clone();
                    if let Some(osr) = crate::compile::tier::hot(&m, def_index, offset) {
                        // The rest of the function runs compiled, from this loop's
                        // header with the frame's locals; its results are this frame's.
                        let ty = m.info.func_type(m.info.num_imported_funcs + def_index);
                        let nr = ty.result_slots();
                        let mut slots = vec![0u64; nr.max(1)];
                        slots[0] = fp as u64;
                        if let Err(t) = crate::runtime::call::call_osr(store, instance, &osr, &mut slots) {
                            // The compiled code was this frame.
                            let mut t = t;
                            if let Some(raw) = exception_of(&store.inner, &t) {
                                throw!(raw, true);
                            }
                            if !t.has_backtrace() {
                                t.set_backtrace(backtrace(&frames, module, ip, bt_max));
                            } else if let (Some((last, callers)), true) = (frames.split_last(), bt_max > 0) {
                                // The compiled code's frames (this function's included), then its callers'.
                                t.extend_backtrace(backtrace(callers, last.module, last.ip, bt_max), bt_max);
                            }
                            return Err(t);
                        }
                        fp = unsafe { stack.as_mut_ptr().add(base) };
                        for (i, v) in slots[..nr].iter().enumerate() {
                            wr!(i, *v);
                        }
                        // Host code it called may have created memories (moving them).
                        let (def, shared) = def_of(&store.inner, instance, 0);
                        mem_len_ptr = mem_fields(def, shared).2;
                        do_return!();
                    }
                }
                #[cfg(not(carnac_compiled))]
                let _ = (def_index, offset);
            }
            // Calls by function index or through a table, and their tail-call
            // forms, in one arm: one expansion of the call code for all four
            // (in unoptimised builds each costs this function's frame, which is
            // host stack per re-entry).
            Instr::Call { .. }
            | Instr::CallIndirect { .. }
            | Instr::ReturnCall { .. }
            | Instr::ReturnCallIndirect { .. }
            | Instr::CallRef { .. }
            | Instr::ReturnCallRef { .. } => {
                let (fidx, b, tail) = match instr {
                    Instr::Call { func, base: b } | Instr::ReturnCall { func, base: b } => (
                        store.inner.instances[instance as usize].funcs[func as usize],
                        b,
                        matches!(instr, Instr::ReturnCall { .. }),
                    ),
                    Instr::CallIndirect { type_index, table, base: b }
                    | Instr::ReturnCallIndirect { type_index, table, base: b } => {
                        // SAFETY: see the module docs (code pointers); the module outlives the call.
                        let m = unsafe { &*module };
                        let np = m.info.types[type_index as usize].param_slots() as u32;
                        let index = u32_!(b + np) as usize;
                        let t = store.inner.instances[instance as usize].tables[table as usize];
                        let elems = &store.inner.tables[t as usize].elems;
                        let Some(&raw) = elems.get(index) else { trap!(TrapKind::TableOutOfBounds) };
                        if raw == 0 {
                            trap!(TrapKind::IndirectCallToNull);
                        }
                        let fidx = (raw - 1) as u32;
                        let (actual, expected) =
                            (store.inner.funcs[fidx as usize].type_id, m.info.type_ids[type_index as usize]);
                        // Equal ids first; a declared subtype of the expected type also passes.
                        if actual != expected && !store.inner.engine.type_registry().is_subtype(actual, expected) {
                            trap!(TrapKind::BadSignature);
                        }
                        (fidx, b, matches!(instr, Instr::ReturnCallIndirect { .. }))
                    }
                    Instr::CallRef { type_index, base: b } | Instr::ReturnCallRef { type_index, base: b } => {
                        // SAFETY: see the module docs (code pointers); the module outlives the call.
                        let m = unsafe { &*module };
                        let np = m.info.types[type_index as usize].param_slots() as u32;
                        // A function reference is its store index + 1, null 0; its type
                        // is the one the validator checked (no signature check).
                        let raw = rd!(b + np);
                        if raw == 0 {
                            trap!(TrapKind::NullFunctionReference);
                        }
                        ((raw - 1) as u32, b, matches!(instr, Instr::ReturnCallRef { .. }))
                    }
                    _ => unreachable!("matched above"),
                };
                match if tail { tail_target!(fidx) } else { None } {
                    Some((callee_instance, callee_module, def_index, callee)) => {
                        // The callee replaces this frame.
                        // SAFETY: see the module docs (code pointers): owned by the
                        // callee's module, which the store keeps alive.
                        let callee: &CompiledFunc = unsafe { &*callee };
                        // SAFETY: as above.
                        let info = unsafe { &(*callee_module).info };
                        let np = info.func_type(info.num_imported_funcs + def_index).param_slots();
                        let b = b as usize;
                        tri!(ensure_stack(stack, base + (callee.frame_size as usize).max(b + np), max_slots));
                        stack.copy_within(base + b..base + b + np, base);
                        let same_instance = callee_instance == instance;
                        module = callee_module;
                        instance = callee_instance;
                        // SAFETY: `base` is this frame's start, inside the stack (just ensured).
                        fp = unsafe { stack.as_mut_ptr().add(base) };
                        // SAFETY: as for the first function's entry.
                        ip = unsafe { callee.code.as_ptr().add(callee.entry as usize) };
                        if !same_instance {
                            refresh_mem!();
                        }
                    }
                    None => {
                        call_store_func!(fidx, b, tail);
                        if tail {
                            // An ordinary call (a host function, compiled code): its
                            // results (as many slots as this function's: validated) are ours.
                            let nr = store.inner.func_ty(fidx).result_slots();
                            // SAFETY: `fp` is the frame's start (set after the call), and
                            // the call's slots, results first, lie inside the stack.
                            unsafe { ptr::copy(fp.add(b as usize), fp, nr) };
                            do_return!();
                        }
                    }
                }
            }
            Instr::Simd { head, b, c } => {
                if cur_shared {
                    // SAFETY: `cur_def` is the current memory's live definition.
                    mem_len = unsafe { (*cur_def).len_for(true) };
                }
                let (op, lane, a) = super::code::unpack_simd_index(head);
                // SAFETY: the frame starts at `fp` and every slot up to the end of the
                // value stack is initialised memory owned by `stack`; no other reference
                // into the stack is live while the slice is used. The memory slice covers
                // exactly the accessible bytes of the current memory (see the module docs), and its
                // writes mark the chunk map below mem_base; with no memory, an empty view.
                let frame = unsafe { std::slice::from_raw_parts_mut(fp, stack.len() - base) };
                let mut mem = if mem_base.is_null() {
                    unsafe { MemoryMut::from_raw(ptr::NonNull::dangling().as_ptr(), 0) }
                } else {
                    unsafe { MemoryMut::from_raw(mem_base, mem_len) }
                };
                tri!(simd::HANDLERS[op](lane, a, b, c, frame, &mut mem));
            }
            Instr::MemorySize { dst } => {
                if cur_shared {
                    // The live length: another thread may have grown it.
                    // SAFETY: `cur_def` is the current memory's live definition.
                    mem_len = unsafe { (*cur_def).len_for(true) };
                }
                w32!(dst, mem_len / crate::runtime::memory::WASM_PAGE)
            }
            Instr::MemoryGrow { dst, delta, mem } => {
                let m = store.inner.instances[instance as usize].memories[mem as usize];
                let (inner, limiter) = store.inner_and_limiter();
                let r = match inner.grow_memory(limiter, m, u32_!(delta) as u64) {
                    Ok(r) => r,
                    Err(mut t) => {
                        t.set_backtrace(backtrace(&frames, module, ip, bt_max));
                        return Err(t);
                    }
                };
                w32!(dst, r.map_or(u32::MAX, |old| old as u32));
                refresh_mem!();
            }
            Instr::MemoryOutOfBounds => trap!(TrapKind::MemoryOutOfBounds),
            Instr::MemoryGrow64 { dst, delta, mem } => {
                let m = store.inner.instances[instance as usize].memories[mem as usize];
                let (inner, limiter) = store.inner_and_limiter();
                let r = match inner.grow_memory(limiter, m, rd!(delta)) {
                    Ok(r) => r,
                    Err(mut t) => {
                        t.set_backtrace(backtrace(&frames, module, ip, bt_max));
                        return Err(t);
                    }
                };
                wr!(dst, r.unwrap_or(u64::MAX));
                refresh_mem!();
            }
            Instr::MemoryFill64 { base: b, mem } => {
                let (d, val, n) = (usize_of(rd!(b)), rd!(b + 1) as u8, usize_of(rd!(b + 2)));
                tri!(store.inner.memory_fill(instance, mem, d, val, n));
            }
            Instr::MemoryCopy64 { base: b, dst_mem, src_mem } => {
                // Each address has its memory's index type; the length is an
                // i64 only when both are 64-bit (the spec's minimum of the two).
                let is64 = |mem: u32| {
                    let m = store.inner.instances[instance as usize].memories[mem as usize];
                    store.inner.memories[m as usize].ty().memory64
                };
                let (d64, s64) = (is64(dst_mem), is64(src_mem));
                let operand = |v: u64, wide: bool| usize_of(if wide { v } else { v as u32 as u64 });
                let (d, s, n) = (operand(rd!(b), d64), operand(rd!(b + 1), s64), operand(rd!(b + 2), d64 && s64));
                tri!(store.inner.memory_copy(instance, dst_mem, src_mem, d, s, n));
            }
            Instr::MemoryInit64 { segment, base: b, mem } => {
                let (d, s, n) = (usize_of(rd!(b)), u32_!(b + 1) as usize, u32_!(b + 2) as usize);
                tri!(store.inner.memory_init(instance, mem, segment, d, s, n));
            }
            Instr::TableIndex64 { slot, saturate } => {
                if rd!(slot) > u32::MAX as u64 {
                    if saturate == 0 {
                        trap!(TrapKind::TableOutOfBounds);
                    }
                    wr!(slot, u32::MAX as u64);
                }
            }
            Instr::Widen32 { slot } => wr!(slot, u32_!(slot) as i32 as i64 as u64),
            Instr::MemoryInit { segment, base: b } => {
                let (d, s, n) = (u32_!(b) as usize, u32_!(b + 1) as usize, u32_!(b + 2) as usize);
                let m = unsafe { &*module };
                let inst = &store.inner.instances[instance as usize];
                let bytes: &[u8] =
                    if inst.data_dropped[segment as usize] { &[] } else { m.data_bytes(segment as usize) };
                if cur_shared {
                    // SAFETY: `cur_def` is the current memory's live definition.
                    mem_len = unsafe { (*cur_def).len_for(true) };
                }
                if s + n > bytes.len() || d + n > mem_len {
                    trap!(TrapKind::MemoryOutOfBounds);
                }
                // SAFETY: the source is inside the segment, the destination inside memory;
                // they cannot overlap (the segment is module data, not linear memory).
                unsafe {
                    ptr::copy_nonoverlapping(bytes.as_ptr().add(s), mem_base.add(d), n);
                    if TRACK {
                        mark_written_range(mem_base, d, n);
                    }
                }
            }
            Instr::DataDrop { segment } => store.inner.data_drop(instance, segment),
            Instr::MemoryCopyAcross { base: b, dst_mem, src_mem } => {
                let (d, s, n) = (u32_!(b) as usize, u32_!(b + 1) as usize, u32_!(b + 2) as usize);
                tri!(store.inner.memory_copy(instance, dst_mem, src_mem, d, s, n));
            }
            Instr::UseMemory { mem: 0 } => refresh_mem!(),
            Instr::UseMemory { mem } => {
                // Only `mem_base`/`mem_len` change: `mem_len_ptr` stays memory 0's,
                // which only a return reads, and the translator puts
                // `UseMemory { mem: 0 }` right after the access (no return between).
                let m = store.inner.instances[instance as usize].memories[mem as usize];
                let m = &store.inner.memories[m as usize];
                (mem_base, mem_len) = (m.base(), m.len());
                (cur_def, cur_shared) = (m.def_ptr() as *const VMMemoryDef, m.is_shared());
            }
            Instr::Atomic { head, base: b, offset } => {
                let (op, size, mem) = atomic::unpack(head);
                if op == AtomicOp::Fence {
                    std::sync::atomic::fence(Ordering::SeqCst);
                    continue;
                }
                let (def, shared) = def_of(&store.inner, instance, mem);
                let ea = u32_!(b) as u64 + offset as u64;
                match op {
                    // SAFETY (all three): `def` is a live memory of the instance; the
                    // store keeps it (and a shared one's clone) for the whole call.
                    AtomicOp::Notify => {
                        let count = u32_!(b + 1);
                        let woken = tri!(unsafe { shared::memory_atomic_notify(def, shared, ea, count) });
                        w32!(b, woken);
                    }
                    AtomicOp::Wait => {
                        let (expected, timeout) = (rd!(b + 1), rd!(b + 2) as i64);
                        // While parked, the store's interrupt flag and epoch deadline
                        // are checked as at a loop's back edge (the callback may extend it).
                        let poll = || store.deadline_reached();
                        let r = if size == 4 {
                            unsafe { shared::memory_atomic_wait32(def, shared, ea, expected as u32, timeout, poll) }
                        } else {
                            unsafe { shared::memory_atomic_wait64(def, shared, ea, expected, timeout, poll) }
                        };
                        match r {
                            Ok(code) => w32!(b, code),
                            Err(mut t) => {
                                t.set_backtrace(backtrace(&frames, module, ip, bt_max));
                                return Err(t);
                            }
                        }
                        // A deadline callback had the store: it may have grown memories.
                        refresh_mem!();
                    }
                    _ => {
                        let n = op.arity().0;
                        // SAFETY: the operands are `n` consecutive slots of the frame
                        // at `b` (see the module docs, slot operands).
                        let args = unsafe { std::slice::from_raw_parts_mut(fp.add(b as usize), n) };
                        // SAFETY: as above.
                        tri!(unsafe { atomic::execute(def, shared, TRACK && !shared, op, size, offset, args) });
                    }
                }
            }
            Instr::TableGet { dst, table, index } => {
                let t = store.inner.instances[instance as usize].tables[table as usize];
                let Some(&v) = store.inner.tables[t as usize].elems.get(u32_!(index) as usize) else {
                    trap!(TrapKind::TableOutOfBounds)
                };
                wr!(dst, v);
            }
            Instr::TableSet { table, index, value } => {
                let t = store.inner.instances[instance as usize].tables[table as usize];
                let v = rd!(value);
                let Some(e) = store.inner.tables[t as usize].elems.get_mut(u32_!(index) as usize) else {
                    trap!(TrapKind::TableOutOfBounds)
                };
                *e = v;
            }
            Instr::TableSize { dst, table } => {
                let t = store.inner.instances[instance as usize].tables[table as usize];
                w32!(dst, store.inner.tables[t as usize].elems.len());
            }
            Instr::TableGrow { table, base: b } => {
                let t = store.inner.instances[instance as usize].tables[table as usize];
                let (init, delta) = (rd!(b), u32_!(b + 1) as u64);
                let (inner, limiter) = store.inner_and_limiter();
                let r = match inner.grow_table(limiter, t, delta, init) {
                    Ok(r) => r,
                    Err(mut t) => {
                        t.set_backtrace(backtrace(&frames, module, ip, bt_max));
                        return Err(t);
                    }
                };
                w32!(b, r.map_or(u32::MAX, |old| old as u32));
            }
            Instr::TableFill { table, base: b } => {
                let (i, val, n) = (u32_!(b) as usize, rd!(b + 1), u32_!(b + 2) as usize);
                tri!(store.inner.table_fill(instance, table, i, val, n));
            }
            Instr::TableCopy { dst_table, src_table, base: b } => {
                let (d, s, n) = (u32_!(b) as usize, u32_!(b + 1) as usize, u32_!(b + 2) as usize);
                tri!(store.inner.table_copy(instance, dst_table, src_table, d, s, n));
            }
            Instr::TableInit { table, segment, base: b } => {
                let (d, s, n) = (u32_!(b) as usize, u32_!(b + 1) as usize, u32_!(b + 2) as usize);
                tri!(store.inner.table_init(instance, table, segment, d, s, n));
            }
            Instr::ElemDrop { segment } => store.inner.elem_drop(instance, segment),
            Instr::RefFunc { dst, func } => {
                let f = store.inner.instances[instance as usize].funcs[func as usize];
                wr!(dst, f as u64 + 1);
            }
            Instr::Gc { head, base: b, imm } => {
                // SAFETY: see the module docs (code pointers); the module outlives the call.
                let m = unsafe { &*module };
                let r = super::gc::execute(store, instance, m, head, imm, base + b as usize, stack);
                if let Err(mut t) = r {
                    t.set_backtrace(backtrace(&frames, module, ip, bt_max));
                    return Err(t);
                }
            }
            Instr::Cast { head, src, dst } => {
                // SAFETY: see the module docs (code pointers); the module outlives the call.
                let m = unsafe { &*module };
                // Only `ref.eq` has a second operand (the slot after `src`).
                let src2 = if super::cast::is_ref_eq(head) { rd!(src + 1) } else { 0 };
                match super::cast::execute(&store.inner, m, head, rd!(src), src2) {
                    Ok(v) => wr!(dst, v),
                    Err(kind) => trap!(kind),
                }
            }
            Instr::Throw { tag, base: b } => {
                let (inner, limiter) = store.inner_and_limiter();
                let cap = crate::runtime::gc_heap::gc_heap_cap(limiter.as_deref());
                let raw = new_exception(inner, cap, instance, tag, &stack[base + b as usize..])?;
                throw!(raw, false);
            }
            Instr::ThrowRef { src } => {
                let raw = rd!(src);
                if raw == 0 {
                    trap!(TrapKind::NullExceptionReference);
                }
                throw!(raw, false);
            }
            Instr::RefAsNonNull { src } => {
                if rd!(src) == 0 {
                    trap!(TrapKind::NullReference);
                }
            }
        }
    }
}

/// A 64-bit address or length as a `usize` (saturated on a 32-bit host: it is
/// out of any memory's bounds there anyway).
fn usize_of(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}
