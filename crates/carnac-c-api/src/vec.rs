//! The standard's vectors (`wasm_X_vec_t`: a size and a pointer to that many
//! elements) and their five functions per element type.
//!
//! A vector made here holds a `Box<[T]>` given up to C; deleting it takes the
//! box back and deletes its elements as the element type says ([`Elem`]):
//! owned pointers are freed, values holding references release them, bytes
//! need nothing. An empty vector has a null `data`.

use crate::object::wasm_extern_t;
use crate::trap::wasm_frame_t;
use crate::types::{
    wasm_exporttype_t, wasm_externtype_t, wasm_functype_t, wasm_globaltype_t, wasm_importtype_t, wasm_memorytype_t,
    wasm_tabletype_t, wasm_valtype_t,
};
use crate::val::wasm_val_t;
use crate::{guard, opt_mut, opt_ref};

/// `wasm_X_vec_t`: `size` elements at `data`.
#[repr(C)]
pub struct CVec<T> {
    pub size: usize,
    pub data: *mut T,
}

/// How the elements of a vector are made, copied and deleted.
pub trait Elem: Sized {
    /// The element of a new uninitialised vector (zeroes, null pointers).
    fn zero() -> Self;
    /// A copy owning its own resources (`wasm_X_vec_copy` copies deeply).
    ///
    /// # Safety
    ///
    /// Pointers inside `self` are null or valid.
    unsafe fn copy_elem(&self) -> Self;
    /// Releases what the element owns.
    ///
    /// # Safety
    ///
    /// Pointers inside `self` are null or owned and not freed yet.
    unsafe fn drop_elem(self);
}

impl Elem for u8 {
    fn zero() -> u8 {
        0
    }
    unsafe fn copy_elem(&self) -> u8 {
        *self
    }
    unsafe fn drop_elem(self) {}
}

impl<T: Clone> Elem for *mut T {
    fn zero() -> Self {
        std::ptr::null_mut()
    }
    unsafe fn copy_elem(&self) -> Self {
        // SAFETY: the element is null or a valid owned pointer (contract).
        match unsafe { opt_ref(*self) } {
            Some(t) => crate::into_raw(t.clone()),
            None => std::ptr::null_mut(),
        }
    }
    unsafe fn drop_elem(self) {
        // SAFETY: the element is null or an owned pointer made by `into_raw`.
        drop(unsafe { crate::from_raw(self) });
    }
}

impl<T> CVec<T> {
    /// The empty vector.
    pub fn empty() -> CVec<T> {
        CVec { size: 0, data: std::ptr::null_mut() }
    }

    /// A vector owning `v`'s elements.
    pub fn from_vec(v: Vec<T>) -> CVec<T> {
        if v.is_empty() {
            return CVec::empty();
        }
        let b = v.into_boxed_slice();
        let size = b.len();
        CVec { size, data: Box::into_raw(b) as *mut T }
    }

    /// The elements.
    ///
    /// # Safety
    ///
    /// `data` points to `size` valid elements (or `size` is 0).
    pub unsafe fn as_slice(&self) -> &[T] {
        if self.size == 0 || self.data.is_null() {
            &[]
        } else {
            // SAFETY: `data` points to `size` elements (contract).
            unsafe { std::slice::from_raw_parts(self.data, self.size) }
        }
    }

    /// The elements, mutably.
    ///
    /// # Safety
    ///
    /// As [`CVec::as_slice`], and nothing else accesses them meanwhile.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [T] {
        if self.size == 0 || self.data.is_null() {
            &mut []
        } else {
            // SAFETY: `data` points to `size` elements (contract).
            unsafe { std::slice::from_raw_parts_mut(self.data, self.size) }
        }
    }

    /// Takes the elements out, leaving the vector empty.
    ///
    /// # Safety
    ///
    /// The vector was made by this library ([`CVec::from_vec`] or a
    /// `wasm_X_vec_new*` function) and not deleted.
    pub unsafe fn take(&mut self) -> Vec<T> {
        let v = if self.size == 0 || self.data.is_null() {
            Vec::new()
        } else {
            let slice = std::ptr::slice_from_raw_parts_mut(self.data, self.size);
            // SAFETY: the vector owns a `Box<[T]>` of `size` elements (contract).
            unsafe { Box::from_raw(slice) }.into_vec()
        };
        *self = CVec::empty();
        v
    }
}

impl<T: Elem> CVec<T> {
    /// Deletes the elements and the storage, leaving the vector empty.
    ///
    /// # Safety
    ///
    /// As [`CVec::take`].
    pub unsafe fn free(&mut self) {
        // SAFETY: forwarded contract.
        for e in unsafe { self.take() } {
            // SAFETY: the vector owned its elements.
            unsafe { e.drop_elem() };
        }
    }

    /// A deep copy.
    ///
    /// # Safety
    ///
    /// As [`CVec::as_slice`], with valid elements.
    pub unsafe fn deep_copy(&self) -> CVec<T> {
        // SAFETY: forwarded contract.
        CVec::from_vec(unsafe { self.as_slice() }.iter().map(|e| unsafe { e.copy_elem() }).collect())
    }
}

/// Declares the five standard functions of `wasm_<name>_vec_t`.
macro_rules! declare_vec {
    ($name:ident, $elem:ty) => {
        paste::paste! {
            pub type [<wasm_ $name _vec_t>] = CVec<$elem>;

            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _vec_new_empty>](out: *mut CVec<$elem>) {
                guard((), || {
                    if !out.is_null() {
                        // SAFETY: `out` is a valid place for a vector (C caller).
                        unsafe { out.write(CVec::empty()) }
                    }
                })
            }

            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _vec_new_uninitialized>](out: *mut CVec<$elem>, size: usize) {
                guard((), || {
                    if !out.is_null() {
                        let v = CVec::from_vec((0..size).map(|_| <$elem as Elem>::zero()).collect());
                        // SAFETY: `out` is a valid place for a vector (C caller).
                        unsafe { out.write(v) }
                    }
                })
            }

            /// Moves `size` elements from `data` (which the caller gives up) into a new vector.
            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _vec_new>](out: *mut CVec<$elem>, size: usize, data: *const $elem) {
                guard((), || {
                    if out.is_null() {
                        return;
                    }
                    let v = if size == 0 || data.is_null() {
                        CVec::empty()
                    } else {
                        // SAFETY: `data` points to `size` elements whose ownership
                        // passes to the vector (`own` in the header): moving them
                        // bitwise is the transfer.
                        CVec::from_vec((0..size).map(|i| unsafe { data.add(i).read() }).collect())
                    };
                    // SAFETY: `out` is a valid place for a vector (C caller).
                    unsafe { out.write(v) }
                })
            }

            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _vec_copy>](out: *mut CVec<$elem>, src: *const CVec<$elem>) {
                guard((), || {
                    if out.is_null() {
                        return;
                    }
                    // SAFETY: `src` is null or a valid vector (C caller).
                    let v = match unsafe { opt_ref(src) } {
                        Some(src) => unsafe { src.deep_copy() },
                        None => CVec::empty(),
                    };
                    // SAFETY: `out` is a valid place for a vector (C caller).
                    unsafe { out.write(v) }
                })
            }

            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _vec_delete>](v: *mut CVec<$elem>) {
                guard((), || {
                    // SAFETY: `v` is null or an owned vector made by this library.
                    if let Some(v) = unsafe { opt_mut(v) } {
                        unsafe { v.free() }
                    }
                })
            }
        }
    };
}

declare_vec!(byte, u8);
declare_vec!(valtype, *mut wasm_valtype_t);
declare_vec!(functype, *mut wasm_functype_t);
declare_vec!(globaltype, *mut wasm_globaltype_t);
declare_vec!(tabletype, *mut wasm_tabletype_t);
declare_vec!(memorytype, *mut wasm_memorytype_t);
declare_vec!(externtype, *mut wasm_externtype_t);
declare_vec!(importtype, *mut wasm_importtype_t);
declare_vec!(exporttype, *mut wasm_exporttype_t);
declare_vec!(val, wasm_val_t);
declare_vec!(frame, *mut wasm_frame_t);
declare_vec!(extern, *mut wasm_extern_t);

/// `wasm_name_t`: a byte vector holding a name (no terminating zero, except
/// in a `wasm_message_t`).
pub type wasm_name_t = wasm_byte_vec_t;

/// A byte vector holding a copy of `bytes`.
pub fn bytes_vec(bytes: &[u8]) -> wasm_byte_vec_t {
    CVec::from_vec(bytes.to_vec())
}
