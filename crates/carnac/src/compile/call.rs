//! Crossing between the host and compiled code, both ways.
//!
//! Into compiled code: [`call`] runs a defined function through its array-call
//! trampoline inside [`catch_traps`], after pushing an [`Activation`] on the
//! thread: the store being used (type-erased, with a table of the few generic
//! operations the builtins need) and a slot for a trap a builtin records.
//!
//! Out of compiled code: builtins (`super::builtins`) are `extern "C"`
//! functions that compiled code calls through the context block's table. They
//! find the store through the innermost activation, do their work, and on a
//! trap record it there and return a nonzero status; the compiled code then
//! executes a `TRAP_PENDING` trap, so every unwind starts from a trap
//! instruction in wasm code and skips only wasm frames, never Rust ones. A
//! host function's panic is caught at the builtin, carried across the wasm
//! frames the same way, and resumed here.
//!
//! The activation holds the store as a raw pointer while `call`'s own `&mut`
//! is not used: builtins are the only code that touches the store meanwhile,
//! and only on this thread, as a host function's `Caller` does in the interpreter.

use std::any::Any;
use std::cell::Cell;
use std::marker::PhantomData;

use super::traps::{self, Unwound};
use crate::runtime::store::{Store, StoreInner};
use crate::runtime::trap::{Backtrace, FrameInfo, Trap, TrapKind};
use crate::runtime::vmctx::{header, VMContext};

/// What growing a memory or table gives: the old size, `None` when refused, or a trap.
type Grown = Result<Option<u64>, Trap>;

/// The generic store operations builtins need, for one `Store<T>`.
pub(crate) struct StoreVTable {
    pub inner: unsafe fn(*mut u8) -> *mut StoreInner,
    /// Calls a store function (host or wasm, any tier) for `caller_instance`.
    pub call: unsafe fn(*mut u8, u32, &mut [u64], u32) -> Result<(), Trap>,
    /// Runs a defined function of an instance in the interpreter.
    pub call_interpreted: unsafe fn(*mut u8, u32, u32, &mut [u64]) -> Result<(), Trap>,
    pub memory_grow: unsafe fn(*mut u8, u32, u64) -> Grown,
    pub table_grow: unsafe fn(*mut u8, u32, u64, u64) -> Grown,
    pub deadline: unsafe fn(*mut u8) -> Result<(), Trap>,
}

struct VTableOf<T>(PhantomData<T>);

impl<T> VTableOf<T> {
    const VTABLE: StoreVTable = StoreVTable {
        inner: inner_of::<T>,
        call: call_of::<T>,
        call_interpreted: call_interpreted_of::<T>,
        memory_grow: memory_grow_of::<T>,
        table_grow: table_grow_of::<T>,
        deadline: deadline_of::<T>,
    };
}

/// # Safety (all `*_of`)
/// `s` is the `*mut Store<T>` of the innermost activation, not otherwise in use.
unsafe fn inner_of<T>(s: *mut u8) -> *mut StoreInner {
    // SAFETY: see above.
    unsafe { &mut (*(s as *mut Store<T>)).inner }
}

unsafe fn call_of<T>(s: *mut u8, func: u32, slots: &mut [u64], caller: u32) -> Result<(), Trap> {
    // SAFETY: see `inner_of`.
    let store = unsafe { &mut *(s as *mut Store<T>) };
    crate::runtime::call::call_func(store, func, slots, Some(caller))
}

unsafe fn call_interpreted_of<T>(s: *mut u8, instance: u32, def_index: u32, slots: &mut [u64]) -> Result<(), Trap> {
    // SAFETY: see `inner_of`.
    let store = unsafe { &mut *(s as *mut Store<T>) };
    crate::runtime::call::call_interpreted(store, instance, def_index, slots)
}

unsafe fn memory_grow_of<T>(s: *mut u8, memory: u32, delta: u64) -> Grown {
    // SAFETY: see `inner_of`.
    let store = unsafe { &mut *(s as *mut Store<T>) };
    let (inner, limiter) = store.inner_and_limiter();
    inner.grow_memory(limiter, memory, delta)
}

unsafe fn table_grow_of<T>(s: *mut u8, table: u32, delta: u64, init: u64) -> Grown {
    // SAFETY: see `inner_of`.
    let store = unsafe { &mut *(s as *mut Store<T>) };
    let (inner, limiter) = store.inner_and_limiter();
    inner.grow_table(limiter, table, delta, init)
}

unsafe fn deadline_of<T>(s: *mut u8) -> Result<(), Trap> {
    // SAFETY: see `inner_of`.
    let store = unsafe { &mut *(s as *mut Store<T>) };
    store.deadline_reached()
}

/// One entry into compiled code on this thread (see the module docs).
pub(crate) struct Activation {
    pub store: *mut u8,
    pub vtable: &'static StoreVTable,
    /// A trap a builtin recorded (what a `TRAP_PENDING` trap stands for).
    pub pending: Option<Trap>,
    /// A host function's panic, resumed once back in the host.
    pub panic: Option<Box<dyn Any + Send>>,
    /// Whether the last store function compiled code called was wasm (whose
    /// trap's backtrace these frames extend) rather than a host function.
    pub callee_is_wasm: bool,
    prev: *mut Activation,
}

thread_local! {
    static CURRENT: Cell<*mut Activation> = const { Cell::new(std::ptr::null_mut()) };
}

/// Runs `f` with the innermost activation.
///
/// # Panics
/// When no compiled code is running on this thread (a builtin called from
/// elsewhere: a bug).
pub(crate) fn with_activation<R>(f: impl FnOnce(&mut Activation) -> R) -> R {
    let p = CURRENT.with(|c| c.get());
    assert!(!p.is_null(), "a builtin ran outside compiled code");
    // SAFETY: `p` is the activation `call` pushed and has not popped: it lives
    // on `call`'s frame, which is below us on this thread's stack.
    f(unsafe { &mut *p })
}

/// The store index of the instance whose context block is `vmctx`.
///
/// # Safety
/// `vmctx` is a live context block.
pub(crate) unsafe fn instance_of(vmctx: *mut VMContext) -> u32 {
    // SAFETY: the header's instance field, written at instantiation.
    unsafe { ((vmctx as *const u8).add(header::INSTANCE as usize) as *const u32).read() }
}

struct EntryArgs {
    array_call: super::module::ArrayCall,
    wasm_call: *const u8,
    vmctx: *mut VMContext,
    slots: *mut u64,
}

unsafe extern "C" fn enter(arg: *mut u8) {
    // SAFETY: `arg` is the `EntryArgs` on `call`'s frame; the trampoline takes
    // the parameters from `slots` and leaves the results there (sized by `call`'s caller).
    unsafe {
        let a = &*(arg as *const EntryArgs);
        (a.array_call)(a.wasm_call, a.vmctx, a.slots)
    }
}

/// Calls compiled defined function `def_index` of `instance`, with `slots`
/// holding the raw arguments on entry and the raw results on return. The
/// caller (`runtime::call`) has set the stack limit and counted the re-entry.
pub(crate) fn call<T>(store: &mut Store<T>, instance: u32, def_index: u32, slots: &mut [u64]) -> Result<(), Trap> {
    let module = store.inner.instances[instance as usize].module.clone();
    let compiled = module.compiled.get().expect("called a compiled function of a module without code");
    let (array_call, wasm_call) = (compiled.array_call(def_index), compiled.wasm_call(def_index));
    // SAFETY: the function's own code and trampoline, which `module` keeps alive.
    unsafe { call_code(store, instance, array_call, wasm_call, slots) }
}

/// Runs standalone code of a function of `instance`'s module (see
/// `compile::tier`): the function itself, with its arguments in `slots`, or
/// an on-stack-replacement entry, with `slots[0]` holding the interpreter
/// frame's address (its locals are read once, at the start); the function's
/// raw results on return.
#[cfg(carnac_compiled)]
pub(crate) fn call_standalone<T>(
    store: &mut Store<T>,
    instance: u32,
    code: &super::compiler::StandaloneCode,
    slots: &mut [u64],
) -> Result<(), Trap> {
    // SAFETY: the code and its trampoline, which the caller's `Arc` keeps alive.
    unsafe { call_code(store, instance, code.array_call(), code.wasm_call(), slots) }
}

/// Calls `wasm_call` through its trampoline `array_call` with `instance`'s
/// context block.
///
/// # Safety
/// `array_call` is the trampoline compiled for `wasm_call`'s signature, both
/// alive for the call; `slots` is long enough for the parameters and results.
unsafe fn call_code<T>(
    store: &mut Store<T>,
    instance: u32,
    array_call: super::module::ArrayCall,
    wasm_call: *const u8,
    slots: &mut [u64],
) -> Result<(), Trap> {
    let inst = &store.inner.instances[instance as usize];
    let mut args = EntryArgs { array_call, wasm_call, vmctx: inst.vmctx.as_ptr(), slots: slots.as_mut_ptr() };
    let mut act = Activation {
        store: store as *mut Store<T> as *mut u8,
        vtable: &VTableOf::<T>::VTABLE,
        pending: None,
        panic: None,
        callee_is_wasm: false,
        prev: CURRENT.with(|c| c.get()),
    };
    CURRENT.with(|c| c.set(&mut act));
    // SAFETY: `enter` calls the trampoline compiled for this function's type with
    // its code and its instance's block; the module (held above) keeps the code
    // alive. Only wasm frames lie between here and any trap (see the module docs).
    let result = unsafe { traps::catch_traps(enter, &mut args as *mut EntryArgs as *mut u8) };
    CURRENT.with(|c| c.set(act.prev));
    if let Some(payload) = act.panic.take() {
        std::panic::resume_unwind(payload);
    }
    result.map_err(|u| trap_of(store, u, act.pending.take(), act.callee_is_wasm))
}

/// The trap an unwind stands for, with its backtrace.
fn trap_of<T>(store: &Store<T>, u: Unwound, pending: Option<Trap>, from_wasm: bool) -> Trap {
    let kind = super::trap_codes::trap_kind(u.trap_code);
    let mut trap = match (kind, pending) {
        (Some(kind), _) => Trap::new(kind),
        (None, Some(t)) => t,
        // A TRAP_PENDING with nothing recorded cannot happen; say so rather than guess.
        (None, None) => Trap::new(TrapKind::HostError),
    };
    let max = store.inner.engine.config().wasm_backtrace_max_frames;
    // After a tail call made as an ordinary call, the frame that made it is gone.
    let skip = u.trap_code == super::trap_codes::TRAP_PENDING_TAIL;
    if max > 0 && !trap.has_backtrace() {
        trap.set_backtrace(backtrace(&store.inner, &u.backtrace, skip, max));
    } else if max > 0 && from_wasm {
        // A trap from another tier that these compiled frames called: they are its callers.
        trap.extend_backtrace(backtrace(&store.inner, &u.backtrace, skip, max), max);
    }
    trap
}

/// The wasm frames of a trap, from the pcs the unwinder walked (the trapping
/// pc, then each caller's return address), as the interpreter reports them;
/// `skip_first`: without the trapping frame.
fn backtrace(s: &StoreInner, pcs: &[usize], skip_first: bool, max: usize) -> Backtrace {
    let mut modules: Vec<&std::sync::Arc<crate::module::ModuleInner>> = Vec::new();
    for inst in &s.instances {
        if inst.module.has_compiled_code() && !modules.iter().any(|m| std::sync::Arc::ptr_eq(m, &inst.module)) {
            modules.push(&inst.module);
        }
    }
    let info = |i: usize, pc: usize| -> Option<FrameInfo> {
        // Return addresses point after the call: look up the call itself.
        let at = if i == 0 { pc } else { pc - 1 };
        modules.iter().find_map(|m| {
            let (def, offset) = m.frame_at(at)?;
            let func_index = m.info.num_imported_funcs + def;
            let module_offset = offset.map(|o| o as usize);
            let func_offset = module_offset.zip(m.body_start(def)).and_then(|(o, b)| o.checked_sub(b));
            Some(FrameInfo {
                module_name: m.info.name.clone(),
                func_index,
                func_name: m.info.func_names.get(func_index),
                module_offset,
                func_offset,
            })
        })
    };
    let frames: Vec<FrameInfo> =
        pcs.iter().enumerate().skip(skip_first as usize).filter_map(|(i, &pc)| info(i, pc)).collect();
    if frames.len() <= max {
        return frames.into();
    }
    let inner = max.div_ceil(2);
    let outer = max - inner;
    let elided = frames.len() - max;
    let mut kept: Vec<FrameInfo> = frames[..inner].to_vec();
    kept.extend_from_slice(&frames[frames.len() - outer..]);
    Backtrace { frames: kept, elided_at: inner, elided }
}
