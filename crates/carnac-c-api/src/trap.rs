//! Traps and their frames.
//!
//! A trap's message (`wasm_trap_message`) is Carnac's message for it without
//! the backtrace: the kind's text ("unreachable", "out of bounds memory
//! access", ...) or a host's message, terminated by a zero byte as the
//! standard requires of a `wasm_message_t`. Frames are innermost first.
//! `wasm_frame_instance` returns null: Carnac's frames record the function
//! index and offsets, not the instance.

use carnac_rt::{FrameInfo, Trap};

use crate::func::trap_ptr;
use crate::object::{view, wasm_instance_t, wasm_trap_t, Item, Object};
use crate::store::wasm_store_t;
use crate::vec::{wasm_frame_vec_t, wasm_name_t, CVec};
use crate::{from_raw, guard, into_raw, opt_ref};

/// A frame of a trap's backtrace.
#[derive(Clone)]
pub struct wasm_frame_t {
    func_index: u32,
    func_offset: usize,
    module_offset: usize,
}

impl wasm_frame_t {
    fn new(f: &FrameInfo) -> wasm_frame_t {
        wasm_frame_t {
            func_index: f.func_index,
            func_offset: f.func_offset.unwrap_or(0),
            module_offset: f.module_offset.unwrap_or(0),
        }
    }
}

/// The trap of a trap object.
///
/// # Safety
///
/// `p` is null or a valid object.
pub unsafe fn trap_of<'a>(p: *const Object) -> Option<&'a Trap> {
    // SAFETY: contract above.
    match unsafe { view(p, "trap") }.map(|o| &o.item) {
        Some(Item::Trap(t)) => Some(t),
        _ => None,
    }
}

/// A trap with `message` (a `wasm_message_t`: a terminating zero byte, if
/// present, is not part of the message); null for a null message.
#[no_mangle]
pub unsafe extern "C" fn wasm_trap_new(_store: *mut wasm_store_t, message: *const wasm_name_t) -> *mut wasm_trap_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `message` is null or a valid byte vector.
        let Some(m) = (unsafe { opt_ref(message) }) else { return std::ptr::null_mut() };
        // SAFETY: a valid vector holds `size` bytes.
        let bytes = unsafe { m.as_slice() };
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        trap_ptr(Trap::host(String::from_utf8_lossy(bytes).into_owned()))
    })
}

/// Writes the trap's message, zero-terminated, to `out` (owned by the caller).
#[no_mangle]
pub unsafe extern "C" fn wasm_trap_message(trap: *const wasm_trap_t, out: *mut wasm_name_t) {
    guard((), || {
        if out.is_null() {
            return;
        }
        // SAFETY: `trap` is null or valid.
        let mut bytes = unsafe { trap_of(trap) }.map(|t| t.message().as_bytes().to_vec()).unwrap_or_default();
        bytes.push(0);
        // SAFETY: `out` is a place for a vector.
        unsafe { out.write(CVec::from_vec(bytes)) }
    })
}

/// The innermost wasm frame (owned by the caller), or null when the trap has
/// none (a trap made by the host, or backtraces turned off).
#[no_mangle]
pub unsafe extern "C" fn wasm_trap_origin(trap: *const wasm_trap_t) -> *mut wasm_frame_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `trap` is null or valid.
        unsafe { trap_of(trap) }
            .and_then(|t| t.backtrace().first())
            .map_or(std::ptr::null_mut(), |f| into_raw(wasm_frame_t::new(f)))
    })
}

/// Writes the trap's wasm frames, innermost first, to `out` (owned by the caller).
#[no_mangle]
pub unsafe extern "C" fn wasm_trap_trace(trap: *const wasm_trap_t, out: *mut wasm_frame_vec_t) {
    guard((), || {
        if out.is_null() {
            return;
        }
        // SAFETY: `trap` is null or valid.
        let frames = unsafe { trap_of(trap) }
            .map(|t| t.backtrace().iter().map(|f| into_raw(wasm_frame_t::new(f))).collect())
            .unwrap_or_default();
        // SAFETY: `out` is a place for a vector.
        unsafe { out.write(CVec::from_vec(frames)) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_frame_delete(frame: *mut wasm_frame_t) {
    // SAFETY: `frame` is null or owned by the caller.
    guard((), || drop(unsafe { from_raw(frame) }))
}

#[no_mangle]
pub unsafe extern "C" fn wasm_frame_copy(frame: *const wasm_frame_t) -> *mut wasm_frame_t {
    // SAFETY: `frame` is null or valid.
    guard(std::ptr::null_mut(), || unsafe { opt_ref(frame) }.map_or(std::ptr::null_mut(), |f| into_raw(f.clone())))
}

/// Always null: Carnac's frames do not record their instance.
#[no_mangle]
pub extern "C" fn wasm_frame_instance(_frame: *const wasm_frame_t) -> *mut wasm_instance_t {
    guard(std::ptr::null_mut(), std::ptr::null_mut)
}

/// The index of the frame's function in its module (0 for null).
#[no_mangle]
pub unsafe extern "C" fn wasm_frame_func_index(frame: *const wasm_frame_t) -> u32 {
    // SAFETY: `frame` is null or valid.
    guard(0, || unsafe { opt_ref(frame) }.map_or(0, |f| f.func_index))
}

/// The frame's offset in its function's body (0 for null or unknown).
#[no_mangle]
pub unsafe extern "C" fn wasm_frame_func_offset(frame: *const wasm_frame_t) -> usize {
    // SAFETY: `frame` is null or valid.
    guard(0, || unsafe { opt_ref(frame) }.map_or(0, |f| f.func_offset))
}

/// The frame's offset in the module's binary (0 for null or unknown).
#[no_mangle]
pub unsafe extern "C" fn wasm_frame_module_offset(frame: *const wasm_frame_t) -> usize {
    // SAFETY: `frame` is null or valid.
    guard(0, || unsafe { opt_ref(frame) }.map_or(0, |f| f.module_offset))
}
