//! Traps from real machine code: small functions built with cranelift-frontend,
//! compiled for the host, placed in [`CodeMemory`], registered, and called
//! through [`catch_traps`].
//!
//! Faults that must *not* be caught (they crash the process) run in a child
//! process: the test binary runs itself again for just that test, with
//! `CARNAC_TRAPS_CHILD` naming it, and the parent checks how the child died.

use super::*;
use crate::compile::code_memory::{CodeMemory, WritableCode};
use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{
    self, types, AbiParam, ExtFuncData, ExternalName, InstBuilder, MemFlagsData, Signature, TrapCode, UserExternalName,
    UserFuncName,
};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, FinalizedRelocTarget};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use std::ops::Range;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;

fn isa() -> OwnedTargetIsa {
    let mut flags = settings::builder();
    flags.set("preserve_frame_pointers", "true").unwrap();
    flags.set("opt_level", "speed").unwrap();
    cranelift_native::builder().unwrap().finish(settings::Flags::new(flags)).unwrap()
}

fn code(c: TrapCode) -> u8 {
    c.as_raw().get()
}

/// Every test function has this signature: `fn(i64, i64) -> i64`, the C ABI.
type TestFn = extern "C" fn(i64, i64) -> i64;

fn signature(isa: &OwnedTargetIsa) -> Signature {
    let mut sig = Signature::new(isa.default_call_conv());
    sig.params.extend([AbiParam::new(types::I64), AbiParam::new(types::I64)]);
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

/// A function of a test module: whether it counts as a wasm function (as
/// opposed to a trampoline), and its body, given its two parameters.
struct Def {
    wasm: bool,
    body: fn(&mut FunctionBuilder, ir::Value, ir::Value) -> ir::Value,
}

/// Calls function `index` of the module being built (an absolute relocation).
fn call(b: &mut FunctionBuilder, index: u32, x: ir::Value, y: ir::Value) -> ir::Value {
    let sig = b.func.signature.clone();
    let signature = b.import_signature(sig);
    let name = b.func.declare_imported_user_function(UserExternalName::new(0, index));
    let callee = b.import_function(ExtFuncData {
        name: ExternalName::user(name),
        signature,
        colocated: false,
        patchable: false,
    });
    let call = b.ins().call(callee, &[x, y]);
    b.inst_results(call)[0]
}

/// Calls the host function whose address is `f` with `x`.
fn call_host(b: &mut FunctionBuilder, f: ir::Value, x: ir::Value) -> ir::Value {
    let sig = b.func.signature.clone();
    let signature = b.import_signature(sig);
    let call = b.ins().call_indirect(signature, f, &[x, x]);
    b.inst_results(call)[0]
}

/// The module's [`CodeInfo`]: its functions and trap sites.
struct Info {
    funcs: Vec<(Range<usize>, bool)>,
    traps: TrapTable,
}

impl CodeInfo for Info {
    fn trap_at(&self, pc: usize) -> Option<u8> {
        self.traps.lookup(pc)
    }
    fn is_wasm_function(&self, pc: usize) -> bool {
        self.funcs.iter().any(|(range, wasm)| *wasm && range.contains(&pc))
    }
}

/// Compiled, relocated, published and registered functions.
struct Module {
    // Field order matters: unregister before the code is unmapped.
    _registration: CodeRegistration,
    code: CodeMemory,
    funcs: Vec<Range<usize>>,
    /// Absolute trap sites: (pc, code).
    traps: Vec<(usize, u8)>,
}

impl Module {
    fn new(defs: &[Def]) -> Module {
        let isa = isa();
        let mut ctx = Context::new();
        let mut fctx = FunctionBuilderContext::new();
        let mut image = Vec::new();
        let mut offsets = Vec::new();
        // (offset in image, target function, addend)
        let mut relocs = Vec::new();
        let mut traps = Vec::new();
        for (i, def) in defs.iter().enumerate() {
            ctx.func = ir::Function::with_name_signature(UserFuncName::user(0, i as u32), signature(&isa));
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            b.seal_block(entry);
            let (x, y) = (b.block_params(entry)[0], b.block_params(entry)[1]);
            let result = (def.body)(&mut b, x, y);
            b.ins().return_(&[result]);
            b.finalize(isa.frontend_config());
            let compiled = ctx.compile(&*isa, &mut ControlPlane::default()).unwrap();
            let bytes = compiled.code_buffer().to_vec();
            let func_traps: Vec<(u32, u8)> = compiled.buffer.traps().iter().map(|t| (t.offset, code(t.code))).collect();
            let func_relocs: Vec<_> =
                compiled.buffer.relocs().iter().map(|r| (r.offset, r.kind, r.target.clone(), r.addend)).collect();
            while image.len() % 16 != 0 {
                image.push(0);
            }
            let offset = image.len();
            offsets.push(offset..offset + bytes.len());
            image.extend_from_slice(&bytes);
            traps.extend(func_traps.iter().map(|&(o, c)| (offset + o as usize, c)));
            for (at, kind, target, addend) in func_relocs {
                assert_eq!(kind, Reloc::Abs8, "the tests only apply absolute relocations");
                let FinalizedRelocTarget::ExternalName(ExternalName::User(name)) = target else {
                    panic!("unexpected relocation target {target:?}")
                };
                let target = ctx.func.params.user_named_funcs()[name].index as usize;
                relocs.push((offset + at as usize, target, addend));
            }
            ctx.clear();
        }
        let mut writable = WritableCode::from_image(&image).unwrap();
        let base = writable.base();
        for (at, target, addend) in relocs {
            let value = (base + offsets[target].start) as i64 + addend;
            writable[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        let code = writable.publish().unwrap();
        let funcs: Vec<Range<usize>> = offsets.iter().map(|r| base + r.start..base + r.end).collect();
        let info = Info {
            funcs: funcs.iter().cloned().zip(defs.iter().map(|d| d.wasm)).collect(),
            traps: TrapTable::new(base, traps.iter().map(|&(o, c)| (o as u32, c)).collect()),
        };
        let registration = register(code.range(), Arc::new(info));
        let traps = traps.into_iter().map(|(o, c)| (base + o, c)).collect();
        Module { _registration: registration, code, funcs, traps }
    }

    fn func(&self, i: usize) -> TestFn {
        // SAFETY: every function of a test module is a complete `fn(i64, i64) -> i64`
        // in the C ABI (the native ISA's default calling convention).
        unsafe { std::mem::transmute::<*const u8, TestFn>(self.code.ptr_at(self.funcs[i].start - self.code.base())) }
    }

    /// The only trap site with `code` in function `i`.
    fn trap_site(&self, i: usize, code: u8) -> usize {
        let sites: Vec<usize> =
            self.traps.iter().filter(|&&(pc, c)| c == code && self.funcs[i].contains(&pc)).map(|&(pc, _)| pc).collect();
        assert_eq!(sites.len(), 1, "trap sites with code {code} in function {i}: {sites:x?}");
        sites[0]
    }
}

const HEAP: TrapCode = TrapCode::HEAP_OUT_OF_BOUNDS;
const USER: TrapCode = TrapCode::unwrap_user(7);
const HOST_STATUS: TrapCode = TrapCode::unwrap_user(9);

// The functions of the common test module, by index.
const LOAD: usize = 0;
const SDIV: usize = 1;
const UDIV: usize = 2;
const TRAP_IF: usize = 3;
const MIDDLE: usize = 4;
const OUTER: usize = 5;
const ENTRY: usize = 6;
const HOST_THEN_TRAP: usize = 7;
const UNMARKED_LOAD: usize = 8;

fn defs() -> Vec<Def> {
    vec![
        // LOAD(addr, _): the u32 at addr (a heap access that may trap).
        Def {
            wasm: true,
            body: |b, addr, _| {
                // In Cranelift 0.135 the flags are `MemFlagsData` (interned per function).
                b.ins().uload32(MemFlagsData::trusted().with_trap_code(Some(HEAP)), addr, 0)
            },
        },
        // SDIV(a, b) and UDIV(a, b).
        Def { wasm: true, body: |b, x, y| b.ins().sdiv(x, y) },
        Def { wasm: true, body: |b, x, y| b.ins().udiv(x, y) },
        // TRAP_IF(x, _): traps with the user code 7 if x != 0, else 5.
        Def {
            wasm: true,
            body: |b, x, _| {
                b.ins().trapnz(x, USER);
                b.ins().iconst(types::I64, 5)
            },
        },
        // MIDDLE(addr, _) = LOAD(addr) + 1; OUTER(addr, _) = MIDDLE(addr) + 1.
        Def {
            wasm: true,
            body: |b, x, y| {
                let r = call(b, LOAD as u32, x, y);
                b.ins().iadd_imm_s(r, 1)
            },
        },
        Def {
            wasm: true,
            body: |b, x, y| {
                let r = call(b, MIDDLE as u32, x, y);
                b.ins().iadd_imm_s(r, 1)
            },
        },
        // ENTRY(addr, _) = OUTER(addr): a trampoline, not a wasm function.
        Def { wasm: false, body: |b, x, y| call(b, OUTER as u32, x, y) },
        // HOST_THEN_TRAP(host, x): status = host(x); traps with code 9 if status != 0, else 1.
        Def {
            wasm: true,
            body: |b, host, x| {
                let status = call_host(b, host, x);
                b.ins().trapnz(status, HOST_STATUS);
                b.ins().iconst(types::I64, 1)
            },
        },
        // UNMARKED_LOAD(addr, _): a load compiled as one that cannot trap.
        Def { wasm: true, body: |b, addr, _| b.ins().uload32(MemFlagsData::trusted(), addr, 0) },
    ]
}

fn module() -> &'static Module {
    static MODULE: std::sync::OnceLock<Module> = std::sync::OnceLock::new();
    MODULE.get_or_init(|| Module::new(&defs()))
}

/// Two pages: the first readable (holding 0x1234_5678 at its start), the second
/// inaccessible. Leaked: tests share it.
fn guarded_page() -> (usize, usize) {
    static PAGES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let page = crate::compile::code_memory::page_size();
    let base = *PAGES.get_or_init(|| {
        // SAFETY: a new anonymous mapping; checked below; the first page is made
        // accessible and written, the second left without access.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            assert_eq!(libc::mprotect(p, page, libc::PROT_READ | libc::PROT_WRITE), 0);
            *(p as *mut u32) = 0x1234_5678;
            p as usize
        }
    });
    (base, base + page)
}

struct Call {
    f: TestFn,
    x: i64,
    y: i64,
    result: i64,
}

/// The trampoline given to `catch_traps`: holds nothing with a destructor.
unsafe extern "C" fn trampoline(arg: *mut u8) {
    // SAFETY: `arg` is the `Call` that `run` passes, alive for the call.
    let call = unsafe { &mut *arg.cast::<Call>() };
    call.result = (call.f)(call.x, call.y);
}

/// Calls `f(x, y)` under `catch_traps`.
fn run(f: TestFn, x: i64, y: i64) -> Result<i64, Unwound> {
    let mut call = Call { f, x, y, result: 0 };
    // SAFETY: `trampoline` takes a `Call`; the module's code is registered and has
    // frame pointers.
    unsafe { catch_traps(trampoline, (&raw mut call).cast()) }?;
    Ok(call.result)
}

#[test]
fn calls_that_do_not_trap_return_their_value() {
    let m = module();
    let (readable, _) = guarded_page();
    assert_eq!(run(m.func(LOAD), readable as i64, 0).unwrap(), 0x1234_5678);
    assert_eq!(run(m.func(OUTER), readable as i64, 0).unwrap(), 0x1234_5678 + 2);
    assert_eq!(run(m.func(SDIV), -42, 5).unwrap(), -8);
    assert_eq!(run(m.func(UDIV), 42, 5).unwrap(), 8);
    assert_eq!(run(m.func(TRAP_IF), 0, 0).unwrap(), 5);
    assert!(current_activation_ptr().is_null());
}

#[test]
fn a_load_from_a_guard_page_traps_with_its_code_pc_and_address() {
    let m = module();
    let (_, guard) = guarded_page();
    let trap = run(m.func(LOAD), guard as i64 + 12, 0).unwrap_err();
    assert_eq!(trap.trap_code, code(HEAP));
    assert_eq!(trap.pc, m.trap_site(LOAD, code(HEAP)));
    assert_eq!(trap.fault_addr, Some(guard + 12));
    assert_eq!(trap.backtrace, vec![trap.pc]);
    assert!(trap.fp != 0 && trap.fp.is_multiple_of(16), "the frame pointer of LOAD's frame: {:#x}", trap.fp);
    assert!(trap.pending.is_none());
    assert!(current_activation_ptr().is_null());
    // And the next call works.
    let (readable, _) = guarded_page();
    assert_eq!(run(m.func(LOAD), readable as i64, 0).unwrap(), 0x1234_5678);
}

#[test]
fn a_trap_instruction_traps_with_its_user_code() {
    let m = module();
    let trap = run(m.func(TRAP_IF), 1, 0).unwrap_err();
    assert_eq!(trap.trap_code, code(USER));
    assert_eq!(trap.pc, m.trap_site(TRAP_IF, code(USER)));
    assert_eq!(trap.fault_addr, None);
}

#[test]
fn bad_divisions_trap_with_their_codes() {
    let m = module();
    // sdiv by zero: an explicit check (a trap instruction).
    let trap = run(m.func(SDIV), 1, 0).unwrap_err();
    assert_eq!(trap.trap_code, code(TrapCode::INTEGER_DIVISION_BY_ZERO));
    assert!(m.funcs[SDIV].contains(&trap.pc));
    // i64::MIN / -1: on x86_64 the hardware faults (SIGFPE) at the idiv itself.
    let trap = run(m.func(SDIV), i64::MIN, -1).unwrap_err();
    assert_eq!(trap.trap_code, code(TrapCode::INTEGER_OVERFLOW));
    assert!(m.funcs[SDIV].contains(&trap.pc));
    // udiv by zero: on x86_64 a hardware fault (SIGFPE), elsewhere a trap instruction.
    let trap = run(m.func(UDIV), 1, 0).unwrap_err();
    assert_eq!(trap.trap_code, code(TrapCode::INTEGER_DIVISION_BY_ZERO));
    assert_eq!(trap.pc, m.trap_site(UDIV, code(TrapCode::INTEGER_DIVISION_BY_ZERO)));
    assert_eq!(run(m.func(SDIV), i64::MIN, 1).unwrap(), i64::MIN);
}

#[test]
fn the_backtrace_follows_wasm_frames_and_stops_at_the_trampoline() {
    let m = module();
    let (_, guard) = guarded_page();
    let trap = run(m.func(ENTRY), guard as i64, 0).unwrap_err();
    assert_eq!(trap.trap_code, code(HEAP));
    assert_eq!(trap.pc, m.trap_site(LOAD, code(HEAP)));
    let in_func: Vec<usize> =
        trap.backtrace.iter().map(|pc| m.funcs.iter().position(|f| f.contains(pc)).unwrap()).collect();
    assert_eq!(in_func, [LOAD, MIDDLE, OUTER], "ENTRY is not a wasm function: the walk stops there");
    // Return addresses, not call sites: each lies after the start of its function.
    assert!(trap.backtrace[1] > m.funcs[MIDDLE].start && trap.backtrace[2] > m.funcs[OUTER].start);
    // Called directly, OUTER's caller is the Rust trampoline: same frames.
    let trap = run(m.func(OUTER), guard as i64, 0).unwrap_err();
    assert_eq!(trap.backtrace.len(), 3);
}

// Host functions called from compiled code (through HOST_THEN_TRAP).

/// Enters compiled code again (a nested activation) and traps there; returns 0
/// if the inner trap came back as it should.
extern "C" fn host_nested_trap(_: i64, _: i64) -> i64 {
    let outer = current_activation_ptr();
    assert!(!outer.is_null(), "called inside the outer activation");
    let (_, guard) = guarded_page();
    let trap = run(module().func(OUTER), guard as i64, 0).unwrap_err();
    assert_eq!(trap.trap_code, code(HEAP));
    assert_eq!(trap.backtrace.len(), 3, "the inner walk stops at the inner trampoline");
    assert_eq!(current_activation_ptr(), outer, "the inner activation is popped");
    0
}

/// Records a pending payload and returns a status the compiled code traps on.
extern "C" fn host_fails(x: i64, _: i64) -> i64 {
    with_current_activation(|a| {
        let a = a.expect("inside an activation");
        a.set_pending(Box::new("replaced"));
        assert!(a.take_pending().is_some());
        a.set_pending(Box::new(format!("host failed on {x}")));
    });
    1
}

#[test]
fn nested_activations_catch_their_own_traps() {
    let m = module();
    let outcome = run(m.func(HOST_THEN_TRAP), host_nested_trap as *const () as i64, 0);
    assert_eq!(outcome.unwrap(), 1, "the outer call continues after the inner trap");
}

#[test]
fn a_host_function_traps_through_a_pending_payload() {
    let m = module();
    let trap = run(m.func(HOST_THEN_TRAP), host_fails as *const () as i64, 17).unwrap_err();
    assert_eq!(trap.trap_code, code(HOST_STATUS));
    assert_eq!(trap.pc, m.trap_site(HOST_THEN_TRAP, code(HOST_STATUS)));
    let payload = trap.pending.expect("the host's payload comes back");
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "host failed on 17");
    with_current_activation(|a| assert!(a.is_none()));
}

#[test]
fn traps_on_several_threads_while_other_code_comes_and_goes() {
    let m = module();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let other = Module::new(&[Def { wasm: true, body: |_, x, _| x }]);
                assert_eq!(run(other.func(0), 3, 0).unwrap(), 3);
                n += 1;
            }
            n
        })
    };
    let workers: Vec<_> = (0..2)
        .map(|t| {
            std::thread::spawn(move || {
                let (readable, guard) = guarded_page();
                for i in 0..2000i64 {
                    match i % 3 {
                        0 => assert_eq!(run(m.func(OUTER), guard as i64, 0).unwrap_err().backtrace.len(), 3),
                        1 => assert_eq!(run(m.func(TRAP_IF), 1, 0).unwrap_err().trap_code, code(USER)),
                        _ => assert_eq!(run(m.func(LOAD), readable as i64, t).unwrap(), 0x1234_5678),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(churn.join().unwrap() > 0);
}

// Child-process tests.

const CHILD_VAR: &str = "CARNAC_TRAPS_CHILD";

/// In the parent: runs test `name` alone in a child process and returns how it
/// ended. In the child (`None`): the caller does the child's part.
fn in_child(name: &str) -> Option<std::process::Output> {
    if std::env::var(CHILD_VAR).as_deref() == Ok(name) {
        // No core files from the crashes the children are for.
        let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: sets a resource limit of this (child) process from a valid struct.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
        return None;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([&format!("compile::traps::tests::{name}"), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, name)
        .output()
        .unwrap();
    Some(output)
}

fn died_of(output: &std::process::Output, signal: libc::c_int) -> bool {
    output.status.signal() == Some(signal)
}

unsafe extern "C" fn read_null(_: *mut u8) {
    // SAFETY: not safe at all: this is the host crash the test is about.
    unsafe { std::ptr::read_volatile(16 as *const u8) };
}

#[test]
fn a_fault_in_host_code_is_not_swallowed() {
    let Some(out) = in_child("a_fault_in_host_code_is_not_swallowed") else {
        // SAFETY: crashes, on purpose; nothing to unwind.
        let _ = unsafe { catch_traps(read_null, std::ptr::null_mut()) };
        unreachable!("the fault returned");
    };
    assert!(died_of(&out, libc::SIGSEGV), "{out:?}");
}

#[test]
fn a_fault_in_compiled_code_outside_catch_traps_is_not_swallowed() {
    let Some(out) = in_child("a_fault_in_compiled_code_outside_catch_traps_is_not_swallowed") else {
        init_traps().unwrap();
        let (_, guard) = guarded_page();
        (module().func(LOAD))(guard as i64, 0);
        unreachable!("the fault returned");
    };
    assert!(died_of(&out, libc::SIGSEGV), "{out:?}");
}

#[test]
fn a_fault_at_a_pc_without_a_trap_code_is_not_swallowed() {
    let Some(out) = in_child("a_fault_at_a_pc_without_a_trap_code_is_not_swallowed") else {
        let (_, guard) = guarded_page();
        let _ = run(module().func(UNMARKED_LOAD), guard as i64, 0);
        unreachable!("the fault returned");
    };
    assert!(died_of(&out, libc::SIGSEGV), "{out:?}");
}

extern "C" fn exit_42(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(42) };
}

#[test]
fn foreign_faults_go_to_the_previous_handler() {
    let Some(out) = in_child("foreign_faults_go_to_the_previous_handler") else {
        // SAFETY: installs a complete SA_SIGINFO action for SIGSEGV (before ours).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = exit_42 as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut()), 0);
        }
        // Our traps still come to us...
        let (_, guard) = guarded_page();
        assert_eq!(run(module().func(LOAD), guard as i64, 0).unwrap_err().trap_code, code(HEAP));
        // ...and anything else goes to the handler installed before.
        // SAFETY: crashes, on purpose.
        let _ = unsafe { catch_traps(read_null, std::ptr::null_mut()) };
        unreachable!("the fault returned");
    };
    assert_eq!(out.status.code(), Some(42), "{out:?}");
}

/// Recurses until the host stack overflows.
#[allow(unconditional_recursion)]
extern "C" fn host_overflows(depth: i64, _: i64) -> i64 {
    let frame = std::hint::black_box([depth; 64]);
    let deeper = host_overflows(std::hint::black_box(depth + 1), 0);
    std::hint::black_box(deeper) + frame[0]
}

#[test]
fn a_host_stack_overflow_under_compiled_code_is_reported() {
    let Some(out) = in_child("a_host_stack_overflow_under_compiled_code_is_reported") else {
        std::thread::Builder::new()
            .name("overflowing".into())
            .spawn(|| {
                // Take the thread's alternate stack away: catch_traps gives it one.
                let disable = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
                // SAFETY: disables this thread's alternate signal stack.
                assert_eq!(unsafe { libc::sigaltstack(&disable, std::ptr::null_mut()) }, 0);
                let _ = run(module().func(HOST_THEN_TRAP), host_overflows as *const () as i64, 0);
            })
            .unwrap()
            .join()
            .unwrap();
        unreachable!("the overflow returned");
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(died_of(&out, libc::SIGABRT), "{out:?}");
    assert!(stderr.contains("thread 'overflowing'") && stderr.contains("has overflowed its stack"), "{stderr}");
}

/// Heap bytes in use, resident memory, mappings and open descriptors of this process.
fn footprint() -> [usize; 4] {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let heap = unsafe { libc::mallinfo2() };
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let resident: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap().lines().count();
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    [heap.uordblks + heap.hblkhd, resident * crate::compile::code_memory::page_size(), maps, fds]
}

#[test]
fn repeated_traps_leak_nothing() {
    // Alone in a child, so that other tests' allocations do not blur the numbers.
    let Some(out) = in_child("repeated_traps_leak_nothing") else {
        let m = module();
        let (_, guard) = guarded_page();
        let trap_round = |n: usize| {
            for i in 0..n {
                let trap = match i % 4 {
                    0 => run(m.func(ENTRY), guard as i64, 0).unwrap_err(),
                    1 => run(m.func(TRAP_IF), 1, 0).unwrap_err(),
                    2 => run(m.func(SDIV), i as i64, 0).unwrap_err(),
                    _ => run(m.func(HOST_THEN_TRAP), host_fails as *const () as i64, i as i64).unwrap_err(),
                };
                assert!(!trap.backtrace.is_empty());
            }
        };
        trap_round(1000);
        let before = footprint();
        trap_round(20_000);
        let after = footprint();
        assert!(current_activation_ptr().is_null());
        // Heap bytes in use: exact (a leak of one byte per trap would show).
        assert!(after[0] <= before[0] + 4096, "heap in use grew from {} to {} bytes", before[0], after[0]);
        // Resident memory grows once, by about 600 KiB at some point of the first
        // rounds, and is then flat (measured over 150,000 traps); a leaked mapping or
        // alternate stack would be far more.
        assert!(after[1] <= before[1] + (2 << 20), "resident memory grew from {} to {} bytes", before[1], after[1]);
        assert_eq!(after[2], before[2], "mappings");
        assert_eq!(after[3], before[3], "file descriptors");
        return;
    };
    assert!(out.status.success(), "{out:?}");
}
