//! The `carnac.h` extensions: what the standard lacks. Engine configuration
//! (tier, fuel, interruption, stack limits, wasm features), store limits,
//! fuel and epochs, interrupt handles, errors with messages, modules from
//! text or binary with a reason for refusal, serialisation with a reason,
//! WASI contexts, a linker that instantiates by name, exports by name, and
//! the exit status of a WASI `proc_exit`.
//!
//! Functions that can fail return an owned `carnac_error_t*` (null on
//! success), whose message `carnac_error_message` gives.

use std::ffi::{c_char, CStr};

use carnac_rt::{Engine, InterruptHandle, Linker, Module, StoreLimits, Strategy, TrapKind};
use carnac_wasi::{pipe::MemoryInputPipe, I32Exit, WasiCtx, WasiCtxBuilder};

use crate::externals::{extern_object, extern_of};
use crate::func::{error_trap, trap_ptr};
use crate::module::module_of;
use crate::object::{view, wasm_extern_t, wasm_instance_t, wasm_module_t, wasm_trap_t, Item, Object};
use crate::store::{wasm_config_t, wasm_engine_t, wasm_store_t, StoreData};
use crate::trap::trap_of;
use crate::vec::{bytes_vec, wasm_byte_vec_t, wasm_name_t, CVec};
use crate::{from_raw, guard, guard_with, into_raw, opt_mut, opt_ref};

/// An error: a message.
pub struct carnac_error_t {
    message: String,
}

fn error(message: impl Into<String>) -> *mut carnac_error_t {
    into_raw(carnac_error_t { message: message.into() })
}

/// Null for `Ok`, else an error owned by the caller.
fn result(r: Result<(), String>) -> *mut carnac_error_t {
    match r {
        Ok(()) => std::ptr::null_mut(),
        Err(m) => error(m),
    }
}

#[no_mangle]
pub unsafe extern "C" fn carnac_error_delete(e: *mut carnac_error_t) {
    // SAFETY: `e` is null or owned by the caller.
    guard((), || drop(unsafe { from_raw(e) }))
}

/// Writes the error's message (not zero-terminated) to `out`, owned by the caller.
#[no_mangle]
pub unsafe extern "C" fn carnac_error_message(e: *const carnac_error_t, out: *mut wasm_name_t) {
    guard((), || {
        if out.is_null() {
            return;
        }
        // SAFETY: `e` is null or valid.
        let m = unsafe { opt_ref(e) }.map_or("", |e| e.message.as_str());
        // SAFETY: `out` is a place for a vector.
        unsafe { out.write(bytes_vec(m.as_bytes())) }
    })
}

/// A zero-terminated string argument; `None` for null or invalid UTF-8.
///
/// # Safety
///
/// `s` is null or a zero-terminated string.
unsafe fn str_arg<'a>(s: *const c_char) -> Option<&'a str> {
    if s.is_null() {
        return None;
    }
    // SAFETY: contract above.
    unsafe { CStr::from_ptr(s) }.to_str().ok()
}

// Configuration.

pub const CARNAC_STRATEGY_AUTO: u8 = 0;
pub const CARNAC_STRATEGY_INTERPRETER: u8 = 1;
pub const CARNAC_STRATEGY_CRANELIFT: u8 = 2;

/// Applies `f` to the configuration behind `c`, if not null.
///
/// # Safety
///
/// `c` is null or a valid configuration.
unsafe fn config(c: *mut wasm_config_t, f: impl FnOnce(&mut carnac_rt::Config)) {
    // SAFETY: contract above.
    guard((), || {
        if let Some(c) = unsafe { opt_mut(c) } {
            f(&mut c.config)
        }
    })
}

/// The tier: `CARNAC_STRATEGY_AUTO` (the default: interpret, compile hot
/// code), `_INTERPRETER` or `_CRANELIFT`. False (nothing changed) for an
/// unknown value or a tier this build lacks.
#[no_mangle]
pub unsafe extern "C" fn carnac_config_strategy(c: *mut wasm_config_t, strategy: u8) -> bool {
    guard(false, || {
        let s = match strategy {
            CARNAC_STRATEGY_AUTO => Strategy::Auto,
            CARNAC_STRATEGY_INTERPRETER => Strategy::Interpreter,
            CARNAC_STRATEGY_CRANELIFT => Strategy::Cranelift,
            _ => return false,
        };
        if c.is_null() || !s.is_available() {
            return false;
        }
        // SAFETY: `c` is valid (checked non-null; the caller's contract).
        unsafe {
            config(c, |c| {
                c.strategy(s);
            })
        };
        true
    })
}

macro_rules! bool_setting {
    ($($fn_name:ident => $method:ident),*) => { $(
        #[no_mangle]
        pub unsafe extern "C" fn $fn_name(c: *mut wasm_config_t, enable: bool) {
            // SAFETY: `c` is null or valid.
            unsafe { config(c, |c| { c.$method(enable); }) }
        }
    )* };
}
bool_setting!(
    carnac_config_consume_fuel => consume_fuel,
    carnac_config_epoch_interruption => epoch_interruption,
    carnac_config_interruptible => interruptible,
    carnac_config_wasm_backtrace => wasm_backtrace,
    carnac_config_wasm_simd => wasm_simd,
    carnac_config_wasm_bulk_memory => wasm_bulk_memory,
    carnac_config_wasm_reference_types => wasm_reference_types,
    carnac_config_wasm_multi_value => wasm_multi_value
);

/// Host stack nested host-to-wasm calls may use, in bytes.
#[no_mangle]
pub unsafe extern "C" fn carnac_config_max_wasm_stack(c: *mut wasm_config_t, bytes: usize) {
    // SAFETY: `c` is null or valid.
    unsafe {
        config(c, |c| {
            c.max_wasm_stack(bytes);
        })
    }
}

/// Deepest nesting of wasm calls in the interpreter.
#[no_mangle]
pub unsafe extern "C" fn carnac_config_max_call_depth(c: *mut wasm_config_t, depth: usize) {
    // SAFETY: `c` is null or valid.
    unsafe {
        config(c, |c| {
            c.max_call_depth(depth);
        })
    }
}

// Engine and store controls.

/// Advances the engine's epoch by one tick (any thread).
#[no_mangle]
pub unsafe extern "C" fn carnac_engine_increment_epoch(engine: *const wasm_engine_t) {
    guard((), || {
        // SAFETY: `engine` is null or valid.
        if let Some(e) = unsafe { opt_ref(engine) } {
            e.engine.increment_epoch()
        }
    })
}

/// Runs `f` with the store behind `s`, or returns `default` for null.
///
/// # Safety
///
/// `s` is null or a valid store.
unsafe fn with_store<R>(
    s: *const wasm_store_t,
    default: R,
    f: impl FnOnce(&mut carnac_rt::Store<StoreData>) -> R,
) -> R {
    // SAFETY: contract above.
    match unsafe { opt_ref(s) } {
        Some(s) => s.store.with(f),
        None => default,
    }
}

/// Sets the store's fuel (an error unless the engine consumes fuel).
#[no_mangle]
pub unsafe extern "C" fn carnac_store_set_fuel(s: *mut wasm_store_t, fuel: u64) -> *mut carnac_error_t {
    guard_with(
        || error("panic"),
        || {
            // SAFETY: `s` is null or valid.
            result(unsafe { with_store(s, Err("null store".into()), |s| s.set_fuel(fuel).map_err(|e| e.to_string())) })
        },
    )
}

/// Writes the store's remaining fuel to `out` (an error unless the engine consumes fuel).
#[no_mangle]
pub unsafe extern "C" fn carnac_store_get_fuel(s: *const wasm_store_t, out: *mut u64) -> *mut carnac_error_t {
    guard_with(
        || error("panic"),
        || {
            // SAFETY: `s` is null or valid.
            match unsafe { with_store(s, Err("null store".into()), |s| s.get_fuel().map_err(|e| e.to_string())) } {
                Ok(f) => {
                    // SAFETY: `out` is null or a place for a `u64`.
                    if let Some(out) = unsafe { opt_mut(out) } {
                        *out = f;
                    }
                    std::ptr::null_mut()
                }
                Err(m) => error(m),
            }
        },
    )
}

/// The store's epoch deadline, in ticks beyond the engine's current epoch.
#[no_mangle]
pub unsafe extern "C" fn carnac_store_set_epoch_deadline(s: *mut wasm_store_t, ticks: u64) {
    // SAFETY: `s` is null or valid.
    guard((), || unsafe { with_store(s, (), |s| s.set_epoch_deadline(ticks)) })
}

/// Limits on what the store's guests may allocate; a negative value means
/// no limit. Growing past a limit fails (`memory.grow` returns -1);
/// instantiating past one is an error.
#[no_mangle]
pub unsafe extern "C" fn carnac_store_limiter(
    s: *mut wasm_store_t,
    memory_size: i64,
    table_elements: i64,
    instances: i64,
    tables: i64,
    memories: i64,
) {
    guard((), || {
        let mut limits = StoreLimits::new();
        if memory_size >= 0 {
            limits = limits.memory_size(memory_size as usize);
        }
        if table_elements >= 0 {
            limits = limits.table_elements(table_elements as u64);
        }
        if instances >= 0 {
            limits = limits.instances(instances as usize);
        }
        if tables >= 0 {
            limits = limits.tables(tables as usize);
        }
        if memories >= 0 {
            limits = limits.memories(memories as usize);
        }
        // SAFETY: `s` is null or valid.
        unsafe { with_store(s, (), |s| s.set_limiter(limits)) }
    })
}

/// A handle that interrupts the store's guests from any thread.
pub struct carnac_interrupt_handle_t {
    handle: InterruptHandle,
}

/// The store's interrupt handle; null unless the engine was configured with
/// `carnac_config_interruptible` or `carnac_config_epoch_interruption`.
#[no_mangle]
pub unsafe extern "C" fn carnac_interrupt_handle_new(s: *const wasm_store_t) -> *mut carnac_interrupt_handle_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `s` is null or valid.
        match unsafe { with_store(s, None, |s| s.interrupt_handle().ok()) } {
            Some(handle) => into_raw(carnac_interrupt_handle_t { handle }),
            None => std::ptr::null_mut(),
        }
    })
}

/// Stops the store's running guest (and the next ones) with an "interrupted"
/// trap, until `carnac_store_clear_interrupt`. Callable from any thread.
#[no_mangle]
pub unsafe extern "C" fn carnac_interrupt_handle_interrupt(h: *const carnac_interrupt_handle_t) {
    guard((), || {
        // SAFETY: `h` is null or valid.
        if let Some(h) = unsafe { opt_ref(h) } {
            h.handle.interrupt()
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn carnac_interrupt_handle_delete(h: *mut carnac_interrupt_handle_t) {
    // SAFETY: `h` is null or owned by the caller.
    guard((), || drop(unsafe { from_raw(h) }))
}

#[no_mangle]
pub unsafe extern "C" fn carnac_store_clear_interrupt(s: *mut wasm_store_t) {
    // SAFETY: `s` is null or valid.
    guard((), || unsafe { with_store(s, (), |s| s.clear_interrupt()) })
}

// Modules.

/// Compiles a module from binary or text (`.wat`) bytes; on success stores
/// it in `out` (owned by the caller), else returns why it was refused.
#[no_mangle]
pub unsafe extern "C" fn carnac_module_new(
    engine: *const wasm_engine_t,
    bytes: *const u8,
    len: usize,
    out: *mut *mut wasm_module_t,
) -> *mut carnac_error_t {
    guard_with(
        || error("panic"),
        || {
            // SAFETY: `engine` is null or valid; `out` null or a place for a pointer.
            let (Some(engine), Some(out)) = (unsafe { opt_ref(engine) }, unsafe { opt_mut(out) }) else {
                return error("carnac_module_new: null engine or output");
            };
            if bytes.is_null() && len > 0 {
                return error("carnac_module_new: null bytes");
            }
            // SAFETY: `bytes` points to `len` bytes (or `len` is 0).
            let bytes = if len == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(bytes, len) } };
            match Module::new(&engine.engine, bytes) {
                Ok(m) => {
                    *out = Object::new(None, Item::Module(m)).into_ptr();
                    std::ptr::null_mut()
                }
                Err(e) => error(e.to_string()),
            }
        },
    )
}

/// Converts WebAssembly text to a binary module in `out` (owned by the caller).
#[no_mangle]
pub unsafe extern "C" fn carnac_wat2wasm(wat: *const u8, len: usize, out: *mut wasm_byte_vec_t) -> *mut carnac_error_t {
    guard_with(
        || error("panic"),
        || {
            if out.is_null() || (wat.is_null() && len > 0) {
                return error("carnac_wat2wasm: null argument");
            }
            // SAFETY: `wat` points to `len` bytes (or `len` is 0).
            let text = if len == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(wat, len) } };
            let Ok(text) = std::str::from_utf8(text) else { return error("carnac_wat2wasm: the text is not UTF-8") };
            match wat::parse_str(text) {
                Ok(bin) => {
                    // SAFETY: `out` is a place for a vector.
                    unsafe { out.write(CVec::from_vec(bin)) };
                    std::ptr::null_mut()
                }
                Err(e) => error(e.to_string()),
            }
        },
    )
}

/// The module as a compiled artifact in `out` (owned by the caller), or why not.
#[no_mangle]
pub unsafe extern "C" fn carnac_module_serialize(
    module: *const wasm_module_t,
    out: *mut wasm_byte_vec_t,
) -> *mut carnac_error_t {
    guard_with(
        || error("panic"),
        || {
            // SAFETY: `module` is null or valid.
            let Some(m) = (unsafe { module_of(module) }) else { return error("carnac_module_serialize: null module") };
            if out.is_null() {
                return error("carnac_module_serialize: null output");
            }
            match m.serialize() {
                Ok(bytes) => {
                    // SAFETY: `out` is a place for a vector.
                    unsafe { out.write(CVec::from_vec(bytes)) };
                    std::ptr::null_mut()
                }
                Err(e) => error(e.to_string()),
            }
        },
    )
}

/// Loads a compiled artifact into `out` (owned by the caller), or says why
/// not. Artifacts are trusted code: load only your own.
#[no_mangle]
pub unsafe extern "C" fn carnac_module_deserialize(
    engine: *const wasm_engine_t,
    bytes: *const wasm_byte_vec_t,
    out: *mut *mut wasm_module_t,
) -> *mut carnac_error_t {
    guard_with(
        || error("panic"),
        || {
            // SAFETY: all are null or valid.
            let (Some(engine), Some(bytes), Some(out)) =
                (unsafe { opt_ref(engine) }, unsafe { opt_ref(bytes) }, unsafe { opt_mut(out) })
            else {
                return error("carnac_module_deserialize: null argument");
            };
            // SAFETY: a valid vector holds `size` bytes.
            match Module::deserialize(&engine.engine, unsafe { bytes.as_slice() }) {
                Ok(m) => {
                    *out = Object::new(None, Item::Module(m)).into_ptr();
                    std::ptr::null_mut()
                }
                Err(e) => error(e.to_string()),
            }
        },
    )
}

// Instances and traps.

/// The export called `name` of the instance, as a new extern owned by the
/// caller; null if there is none.
#[no_mangle]
pub unsafe extern "C" fn carnac_instance_get_export(
    instance: *const wasm_instance_t,
    name: *const c_char,
) -> *mut wasm_extern_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `instance` is null or valid; `name` null or a C string.
        let (Some(o), Some(name)) = (unsafe { view(instance, "instance") }, unsafe { str_arg(name) }) else {
            return std::ptr::null_mut();
        };
        let (Some(s), Item::Instance(i)) = (&o.store, &o.item) else { return std::ptr::null_mut() };
        match s.with(|st| i.get_export(&*st, name)) {
            Some(e) => extern_object(s, e).into_ptr(),
            None => std::ptr::null_mut(),
        }
    })
}

/// Whether the trap is a WASI `proc_exit`; if so its status goes to `status`.
#[no_mangle]
pub unsafe extern "C" fn carnac_trap_exit_status(trap: *const wasm_trap_t, status: *mut i32) -> bool {
    guard(false, || {
        // SAFETY: `trap` is null or valid.
        match unsafe { trap_of(trap) }.and_then(|t| t.downcast_host::<I32Exit>()) {
            Some(exit) => {
                // SAFETY: `status` is null or a place for an `int`.
                if let Some(s) = unsafe { opt_mut(status) } {
                    *s = exit.0;
                }
                true
            }
            None => false,
        }
    })
}

pub const CARNAC_TRAP_UNREACHABLE: u8 = 0;
pub const CARNAC_TRAP_MEMORY_OUT_OF_BOUNDS: u8 = 1;
pub const CARNAC_TRAP_TABLE_OUT_OF_BOUNDS: u8 = 2;
pub const CARNAC_TRAP_INDIRECT_CALL_TO_NULL: u8 = 3;
pub const CARNAC_TRAP_BAD_SIGNATURE: u8 = 4;
pub const CARNAC_TRAP_INTEGER_OVERFLOW: u8 = 5;
pub const CARNAC_TRAP_INTEGER_DIVISION_BY_ZERO: u8 = 6;
pub const CARNAC_TRAP_BAD_CONVERSION_TO_INTEGER: u8 = 7;
pub const CARNAC_TRAP_STACK_EXHAUSTED: u8 = 8;
pub const CARNAC_TRAP_OUT_OF_FUEL: u8 = 9;
pub const CARNAC_TRAP_INTERRUPTED: u8 = 10;
pub const CARNAC_TRAP_HOST_ERROR: u8 = 11;
pub const CARNAC_TRAP_OTHER: u8 = 255;

/// What kind of trap it is (`CARNAC_TRAP_*`); `CARNAC_TRAP_OTHER` for null.
#[no_mangle]
pub unsafe extern "C" fn carnac_trap_code(trap: *const wasm_trap_t) -> u8 {
    guard(CARNAC_TRAP_OTHER, || {
        // SAFETY: `trap` is null or valid.
        match unsafe { trap_of(trap) }.map(|t| t.kind()) {
            Some(TrapKind::Unreachable) => CARNAC_TRAP_UNREACHABLE,
            Some(TrapKind::MemoryOutOfBounds) => CARNAC_TRAP_MEMORY_OUT_OF_BOUNDS,
            Some(TrapKind::TableOutOfBounds) => CARNAC_TRAP_TABLE_OUT_OF_BOUNDS,
            Some(TrapKind::IndirectCallToNull) => CARNAC_TRAP_INDIRECT_CALL_TO_NULL,
            Some(TrapKind::BadSignature) => CARNAC_TRAP_BAD_SIGNATURE,
            Some(TrapKind::IntegerOverflow) => CARNAC_TRAP_INTEGER_OVERFLOW,
            Some(TrapKind::IntegerDivisionByZero) => CARNAC_TRAP_INTEGER_DIVISION_BY_ZERO,
            Some(TrapKind::BadConversionToInteger) => CARNAC_TRAP_BAD_CONVERSION_TO_INTEGER,
            Some(TrapKind::StackExhausted) => CARNAC_TRAP_STACK_EXHAUSTED,
            Some(TrapKind::OutOfFuel) => CARNAC_TRAP_OUT_OF_FUEL,
            Some(TrapKind::Interrupted) => CARNAC_TRAP_INTERRUPTED,
            Some(TrapKind::HostError) => CARNAC_TRAP_HOST_ERROR,
            _ => CARNAC_TRAP_OTHER,
        }
    })
}

// WASI.

enum Input {
    Null,
    Inherit,
    Bytes(Vec<u8>),
}

enum Output {
    Null,
    Inherit,
    File(std::path::PathBuf),
}

/// What a store's WASI guest will see.
pub struct carnac_wasi_config_t {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Input,
    stdout: Output,
    stderr: Output,
    preopens: Vec<(std::path::PathBuf, String)>,
}

#[no_mangle]
pub extern "C" fn carnac_wasi_config_new() -> *mut carnac_wasi_config_t {
    guard(std::ptr::null_mut(), || {
        into_raw(carnac_wasi_config_t {
            args: Vec::new(),
            env: Vec::new(),
            stdin: Input::Null,
            stdout: Output::Null,
            stderr: Output::Null,
            preopens: Vec::new(),
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn carnac_wasi_config_delete(c: *mut carnac_wasi_config_t) {
    // SAFETY: `c` is null or owned by the caller.
    guard((), || drop(unsafe { from_raw(c) }))
}

/// Runs `f` on the configuration behind `c`; false for null.
///
/// # Safety
///
/// `c` is null or valid.
unsafe fn wasi(c: *mut carnac_wasi_config_t, f: impl FnOnce(&mut carnac_wasi_config_t) -> bool) -> bool {
    // SAFETY: contract above.
    guard(false, || unsafe { opt_mut(c) }.is_some_and(f))
}

/// The guest's arguments (`argv[0]` first); false (nothing changed) for a
/// null or non-UTF-8 string.
#[no_mangle]
pub unsafe extern "C" fn carnac_wasi_config_set_argv(
    c: *mut carnac_wasi_config_t,
    argc: usize,
    argv: *const *const c_char,
) -> bool {
    // SAFETY: `c` is null or valid; `argv` points to `argc` strings.
    unsafe {
        wasi(c, |c| {
            let args: Option<Vec<String>> = (0..argc)
                .map(|i| if argv.is_null() { None } else { str_arg(*argv.add(i)).map(String::from) })
                .collect();
            args.map(|a| c.args = a).is_some()
        })
    }
}

/// The guest's environment: `n` names and values; false (nothing changed)
/// for a null or non-UTF-8 string.
#[no_mangle]
pub unsafe extern "C" fn carnac_wasi_config_set_env(
    c: *mut carnac_wasi_config_t,
    n: usize,
    names: *const *const c_char,
    values: *const *const c_char,
) -> bool {
    // SAFETY: `c` is null or valid; `names` and `values` point to `n` strings.
    unsafe {
        wasi(c, |c| {
            if n > 0 && (names.is_null() || values.is_null()) {
                return false;
            }
            let env: Option<Vec<(String, String)>> = (0..n)
                .map(|i| Some((str_arg(*names.add(i))?.to_string(), str_arg(*values.add(i))?.to_string())))
                .collect();
            env.map(|e| c.env = e).is_some()
        })
    }
}

/// The guest reads the host's stdin.
#[no_mangle]
pub unsafe extern "C" fn carnac_wasi_config_inherit_stdin(c: *mut carnac_wasi_config_t) {
    // SAFETY: `c` is null or valid.
    unsafe { wasi(c, |c| matches!(c.stdin = Input::Inherit, ())) };
}

/// The guest's stdin reads these bytes (copied), then end of file.
#[no_mangle]
pub unsafe extern "C" fn carnac_wasi_config_set_stdin_bytes(
    c: *mut carnac_wasi_config_t,
    bytes: *const wasm_byte_vec_t,
) {
    // SAFETY: `c` and `bytes` are null or valid.
    unsafe {
        wasi(c, |c| match opt_ref(bytes) {
            Some(b) => matches!(c.stdin = Input::Bytes(b.as_slice().to_vec()), ()),
            None => false,
        })
    };
}

/// The guest writes to the host's stdout.
#[no_mangle]
pub unsafe extern "C" fn carnac_wasi_config_inherit_stdout(c: *mut carnac_wasi_config_t) {
    // SAFETY: `c` is null or valid.
    unsafe { wasi(c, |c| matches!(c.stdout = Output::Inherit, ())) };
}

/// The guest writes to the host's stderr.
#[no_mangle]
pub unsafe extern "C" fn carnac_wasi_config_inherit_stderr(c: *mut carnac_wasi_config_t) {
    // SAFETY: `c` is null or valid.
    unsafe { wasi(c, |c| matches!(c.stderr = Output::Inherit, ())) };
}

/// The guest's stdout goes to the file at `path` (created or truncated when
/// the configuration is applied); false for a null or non-UTF-8 path.
#[no_mangle]
pub unsafe extern "C" fn carnac_wasi_config_set_stdout_file(c: *mut carnac_wasi_config_t, path: *const c_char) -> bool {
    // SAFETY: `c` is null or valid; `path` null or a C string.
    unsafe { wasi(c, |c| str_arg(path).map(|p| c.stdout = Output::File(p.into())).is_some()) }
}

/// The guest's stderr goes to the file at `path` (see the stdout variant).
#[no_mangle]
pub unsafe extern "C" fn carnac_wasi_config_set_stderr_file(c: *mut carnac_wasi_config_t, path: *const c_char) -> bool {
    // SAFETY: `c` is null or valid; `path` null or a C string.
    unsafe { wasi(c, |c| str_arg(path).map(|p| c.stderr = Output::File(p.into())).is_some()) }
}

/// Grants the guest the host directory `host_path` as `guest_path`; false
/// for a null or non-UTF-8 path. The directory is opened when the
/// configuration is applied (`carnac_store_set_wasi` reports a failure).
#[no_mangle]
pub unsafe extern "C" fn carnac_wasi_config_preopen_dir(
    c: *mut carnac_wasi_config_t,
    host_path: *const c_char,
    guest_path: *const c_char,
) -> bool {
    // SAFETY: `c` is null or valid; the paths null or C strings.
    unsafe {
        wasi(c, |c| match (str_arg(host_path), str_arg(guest_path)) {
            (Some(h), Some(g)) => {
                c.preopens.push((h.into(), g.to_string()));
                true
            }
            _ => false,
        })
    }
}

fn build_wasi(c: carnac_wasi_config_t) -> Result<WasiCtx, String> {
    let mut b = WasiCtxBuilder::default();
    b.args(c.args);
    for (k, v) in &c.env {
        b.env(k, v);
    }
    match c.stdin {
        Input::Null => {}
        Input::Inherit => drop(b.stdin(carnac_wasi::Stream::Inherit)),
        Input::Bytes(bytes) => drop(b.stdin(MemoryInputPipe::new(bytes))),
    }
    let output = |o: Output| -> Result<Option<carnac_wasi::Stream>, String> {
        Ok(match o {
            Output::Null => None,
            Output::Inherit => Some(carnac_wasi::Stream::Inherit),
            Output::File(p) => {
                let f = std::fs::File::create(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
                Some(carnac_wasi::Stream::Writer(Box::new(f)))
            }
        })
    };
    if let Some(s) = output(c.stdout)? {
        b.stdout(s);
    }
    if let Some(s) = output(c.stderr)? {
        b.stderr(s);
    }
    for (host, guest) in &c.preopens {
        b.preopened_dir(host, guest).map_err(|e| e.to_string())?;
    }
    Ok(b.build())
}

/// Gives the store's guests the WASI context `config` describes (taking
/// ownership of `config`, deleted even on failure). Functions defined by
/// `carnac_linker_define_wasi` act on the context of the store they run in.
#[no_mangle]
pub unsafe extern "C" fn carnac_store_set_wasi(
    s: *mut wasm_store_t,
    config: *mut carnac_wasi_config_t,
) -> *mut carnac_error_t {
    guard_with(
        || error("panic"),
        || {
            // SAFETY: `config` is null or owned by us now (`own`).
            let Some(config) = (unsafe { from_raw(config) }) else {
                return error("carnac_store_set_wasi: null config");
            };
            // SAFETY: `s` is null or valid.
            let Some(store) = (unsafe { opt_ref(s) }) else { return error("carnac_store_set_wasi: null store") };
            match build_wasi(*config) {
                Ok(ctx) => {
                    store.store.with(|s| s.data_mut().wasi = ctx);
                    std::ptr::null_mut()
                }
                Err(m) => error(m),
            }
        },
    )
}

// The linker.

/// Definitions by module and name, for instantiating modules by their
/// import names; items of any store of the engine (instantiation checks
/// they are of the store it instantiates in).
pub struct carnac_linker_t {
    linker: Linker<StoreData>,
}

#[no_mangle]
pub unsafe extern "C" fn carnac_linker_new(engine: *const wasm_engine_t) -> *mut carnac_linker_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `engine` is null or valid.
        unsafe { opt_ref(engine) }.map_or(std::ptr::null_mut(), |e: &wasm_engine_t| {
            let engine: &Engine = &e.engine;
            into_raw(carnac_linker_t { linker: Linker::new(engine) })
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn carnac_linker_delete(l: *mut carnac_linker_t) {
    // SAFETY: `l` is null or owned by the caller.
    guard((), || drop(unsafe { from_raw(l) }))
}

/// Whether a later definition may replace an earlier one of the same name
/// (else it is an error).
#[no_mangle]
pub unsafe extern "C" fn carnac_linker_allow_shadowing(l: *mut carnac_linker_t, allow: bool) {
    guard((), || {
        // SAFETY: `l` is null or valid.
        if let Some(l) = unsafe { opt_mut(l) } {
            l.linker.allow_shadowing(allow);
        }
    })
}

/// Defines `item` (not taken over) as `module`.`name`.
#[no_mangle]
pub unsafe extern "C" fn carnac_linker_define(
    l: *mut carnac_linker_t,
    module: *const c_char,
    name: *const c_char,
    item: *const wasm_extern_t,
) -> *mut carnac_error_t {
    guard_with(
        || error("panic"),
        || {
            // SAFETY: all are null or valid.
            let (Some(l), Some(m), Some(n), Some(o)) =
                (unsafe { opt_mut(l) }, unsafe { str_arg(module) }, unsafe { str_arg(name) }, unsafe {
                    view(item, "extern")
                })
            else {
                return error("carnac_linker_define: null argument (or a name not in UTF-8)");
            };
            let Some((e, _)) = extern_of(o) else { return error("carnac_linker_define: not an extern") };
            result(l.linker.define(m, n, e).map(drop).map_err(|e| e.to_string()))
        },
    )
}

/// Defines WASI preview1 (`wasi_snapshot_preview1`), acting on the WASI
/// context of the store each call runs in (`carnac_store_set_wasi`).
#[no_mangle]
pub unsafe extern "C" fn carnac_linker_define_wasi(l: *mut carnac_linker_t) -> *mut carnac_error_t {
    guard_with(
        || error("panic"),
        || {
            // SAFETY: `l` is null or valid.
            let Some(l) = (unsafe { opt_mut(l) }) else { return error("carnac_linker_define_wasi: null linker") };
            result(
                carnac_wasi::add_to_linker(&mut l.linker, |d: &mut StoreData| &mut d.wasi).map_err(|e| e.to_string()),
            )
        },
    )
}

/// Defines every export of `instance` under the module name `name`.
#[no_mangle]
pub unsafe extern "C" fn carnac_linker_define_instance(
    l: *mut carnac_linker_t,
    name: *const c_char,
    instance: *const wasm_instance_t,
) -> *mut carnac_error_t {
    guard_with(
        || error("panic"),
        || {
            // SAFETY: all are null or valid.
            let (Some(l), Some(n), Some(o)) =
                (unsafe { opt_mut(l) }, unsafe { str_arg(name) }, unsafe { view(instance, "instance") })
            else {
                return error("carnac_linker_define_instance: null argument");
            };
            let (Some(s), Item::Instance(i)) = (&o.store, &o.item) else { return error("not an instance") };
            result(s.with(|st| l.linker.instance(st, n, *i).map(drop).map_err(|e| e.to_string())))
        },
    )
}

/// Instantiates `module` in `store`, resolving its imports by name. On
/// success stores the instance in `instance_out` (owned by the caller) and
/// returns null. If the start function traps, stores the trap in `trap_out`
/// (owned by the caller) and returns null; other failures (an import
/// missing or of the wrong type, a limit) return an error.
#[no_mangle]
pub unsafe extern "C" fn carnac_linker_instantiate(
    l: *const carnac_linker_t,
    store: *mut wasm_store_t,
    module: *const wasm_module_t,
    instance_out: *mut *mut wasm_instance_t,
    trap_out: *mut *mut wasm_trap_t,
) -> *mut carnac_error_t {
    guard_with(
        || error("panic"),
        || {
            // SAFETY: all are null or valid.
            let (Some(l), Some(s), Some(m), Some(iout)) =
                (unsafe { opt_ref(l) }, unsafe { opt_ref(store) }, unsafe { module_of(module) }, unsafe {
                    opt_mut(instance_out)
                })
            else {
                return error("carnac_linker_instantiate: null argument");
            };
            *iout = std::ptr::null_mut();
            // SAFETY: `trap_out` is null or a place for a pointer.
            let tout = unsafe { opt_mut(trap_out) };
            // Our own references for the length of the call (see wasm_instance_new).
            let (store, module) = (s.store.clone(), m.clone());
            match store.with(|st| l.linker.instantiate(st, &module)) {
                Ok(i) => {
                    *iout = Object::new(Some(store.clone()), Item::Instance(i)).into_ptr();
                    std::ptr::null_mut()
                }
                Err(e) if e.as_trap().is_some() => match tout {
                    Some(t) => {
                        *t = trap_ptr(error_trap(e));
                        std::ptr::null_mut()
                    }
                    None => error(e.to_string()),
                },
                Err(e) => error(e.to_string()),
            }
        },
    )
}

/// The definition of `module`.`name` for `store`, as a new extern owned by
/// the caller; null if there is none.
#[no_mangle]
pub unsafe extern "C" fn carnac_linker_get(
    l: *const carnac_linker_t,
    store: *mut wasm_store_t,
    module: *const c_char,
    name: *const c_char,
) -> *mut wasm_extern_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: all are null or valid.
        let (Some(l), Some(s), Some(m), Some(n)) =
            (unsafe { opt_ref(l) }, unsafe { opt_ref(store) }, unsafe { str_arg(module) }, unsafe { str_arg(name) })
        else {
            return std::ptr::null_mut();
        };
        match s.store.with(|st| l.linker.get(st, m, n)) {
            Some(e) => extern_object(&s.store, e).into_ptr(),
            None => std::ptr::null_mut(),
        }
    })
}
