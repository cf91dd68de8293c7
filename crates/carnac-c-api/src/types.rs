//! Type descriptions: value, function, global, table, memory and extern
//! types, and the import and export types of modules.
//!
//! As the standard requires, `wasm_functype_as_externtype` and its kin
//! return the same object seen as an extern type, so each specific type is a
//! `repr(transparent)` wrapper of [`wasm_externtype_t`] and a conversion is a
//! pointer cast after a kind check. Accessors return pointers into the type
//! object (valid while it lives), as the header's `const` results say.

use carnac_rt::{ExternType, FuncType, GlobalType, MemoryType, Mutability, TableType, ValType};

use crate::vec::{bytes_vec, wasm_name_t, wasm_valtype_vec_t, CVec};
use crate::{from_raw, guard, into_raw, opt_mut, opt_ref};

/// `wasm_valkind_t` values (`WASM_I32` ...); `CARNAC_V128` (4) is Carnac's
/// extension for the SIMD type, which the standard lacks.
pub const WASM_I32: u8 = 0;
pub const WASM_I64: u8 = 1;
pub const WASM_F32: u8 = 2;
pub const WASM_F64: u8 = 3;
pub const CARNAC_V128: u8 = 4;
pub const WASM_EXTERNREF: u8 = 128;
pub const WASM_FUNCREF: u8 = 129;

/// `wasm_externkind_t` values.
pub const WASM_EXTERN_FUNC: u8 = 0;
pub const WASM_EXTERN_GLOBAL: u8 = 1;
pub const WASM_EXTERN_TABLE: u8 = 2;
pub const WASM_EXTERN_MEMORY: u8 = 3;

/// The standard's "no maximum" (`wasm_limits_max_default`).
pub const LIMITS_MAX_NONE: u32 = u32::MAX;

/// The kind code of a Carnac value type.
pub fn valkind(ty: &ValType) -> u8 {
    match ty {
        ValType::I32 => WASM_I32,
        ValType::I64 => WASM_I64,
        ValType::F32 => WASM_F32,
        ValType::F64 => WASM_F64,
        ValType::V128 => CARNAC_V128,
        // Typed function references are function references to the C API.
        t if t.is_func_ref() => WASM_FUNCREF,
        _ => WASM_EXTERNREF,
    }
}

/// The Carnac value type of a kind code; `None` for codes the API does not define.
pub fn valtype_of_kind(kind: u8) -> Option<ValType> {
    Some(match kind {
        WASM_I32 => ValType::I32,
        WASM_I64 => ValType::I64,
        WASM_F32 => ValType::F32,
        WASM_F64 => ValType::F64,
        CARNAC_V128 => ValType::V128,
        WASM_EXTERNREF => ValType::ExternRef,
        WASM_FUNCREF => ValType::FuncRef,
        _ => return None,
    })
}

/// A value type.
#[derive(Clone)]
pub struct wasm_valtype_t {
    pub ty: ValType,
}

/// `wasm_limits_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct wasm_limits_t {
    pub min: u32,
    pub max: u32,
}

impl wasm_limits_t {
    fn from_carnac(min: u64, max: Option<u64>) -> wasm_limits_t {
        let clamp = |v: u64| v.min(u32::MAX as u64) as u32;
        wasm_limits_t { min: clamp(min), max: max.map(clamp).unwrap_or(LIMITS_MAX_NONE) }
    }

    fn max(&self) -> Option<u32> {
        (self.max != LIMITS_MAX_NONE).then_some(self.max)
    }
}

/// A function type: the Carnac type and the standard's vectors of it.
pub struct FuncTy {
    pub ty: FuncType,
    params: wasm_valtype_vec_t,
    results: wasm_valtype_vec_t,
}

impl FuncTy {
    pub fn new(ty: FuncType) -> FuncTy {
        let vec = |tys: &[ValType]| {
            CVec::from_vec(tys.iter().map(|ty| into_raw(wasm_valtype_t { ty: ty.clone() })).collect())
        };
        FuncTy { params: vec(ty.params()), results: vec(ty.results()), ty }
    }
}

impl Clone for FuncTy {
    fn clone(&self) -> FuncTy {
        FuncTy::new(self.ty.clone())
    }
}

impl Drop for FuncTy {
    fn drop(&mut self) {
        // SAFETY: both vectors were made by `FuncTy::new` and are freed only here.
        unsafe {
            self.params.free();
            self.results.free();
        }
    }
}

/// What an extern type describes.
#[derive(Clone)]
pub enum ExternTy {
    Func(FuncTy),
    Global { content: wasm_valtype_t, mutability: u8 },
    Table { element: wasm_valtype_t, limits: wasm_limits_t },
    Memory { limits: wasm_limits_t },
}

/// An extern type; the specific types below are views of it.
#[derive(Clone)]
pub struct wasm_externtype_t {
    pub which: ExternTy,
}

macro_rules! specific_type {
    ($name:ident, $variant:ident) => {
        #[repr(transparent)]
        #[derive(Clone)]
        pub struct $name {
            pub ext: wasm_externtype_t,
        }

        impl $name {
            /// The extern type `e` as this specific type, if it is one.
            pub fn from_ext(e: &wasm_externtype_t) -> Option<&$name> {
                if matches!(e.which, ExternTy::$variant { .. }) {
                    // SAFETY: `$name` is a `repr(transparent)` wrapper of
                    // `wasm_externtype_t`, so the cast keeps layout and validity.
                    Some(unsafe { &*(e as *const wasm_externtype_t as *const $name) })
                } else {
                    None
                }
            }
        }
    };
}
specific_type!(wasm_functype_t, Func);
specific_type!(wasm_globaltype_t, Global);
specific_type!(wasm_tabletype_t, Table);
specific_type!(wasm_memorytype_t, Memory);

impl wasm_externtype_t {
    /// The standard's description of a Carnac extern type.
    pub fn from_carnac(ty: &ExternType) -> wasm_externtype_t {
        let which = match ty {
            ExternType::Func(f) => ExternTy::Func(FuncTy::new(f.clone())),
            ExternType::Global(g) => ExternTy::Global {
                content: wasm_valtype_t { ty: g.content.clone() },
                mutability: match g.mutability {
                    Mutability::Const => 0,
                    Mutability::Var => 1,
                },
            },
            ExternType::Table(t) => ExternTy::Table {
                element: wasm_valtype_t { ty: t.element.clone() },
                limits: wasm_limits_t::from_carnac(t.limits.min, t.limits.max),
            },
            ExternType::Memory(m) => {
                ExternTy::Memory { limits: wasm_limits_t::from_carnac(m.limits.min, m.limits.max) }
            }
            // wasm.h has no tag kind (exception handling): a tag is described by
            // its function type, the closest the standard API can say.
            ExternType::Tag(t) => ExternTy::Func(FuncTy::new(t.ty().clone())),
        };
        wasm_externtype_t { which }
    }

    pub fn kind(&self) -> u8 {
        match self.which {
            ExternTy::Func(_) => WASM_EXTERN_FUNC,
            ExternTy::Global { .. } => WASM_EXTERN_GLOBAL,
            ExternTy::Table { .. } => WASM_EXTERN_TABLE,
            ExternTy::Memory { .. } => WASM_EXTERN_MEMORY,
        }
    }
}

impl wasm_functype_t {
    pub fn new(ty: FuncType) -> wasm_functype_t {
        wasm_functype_t { ext: wasm_externtype_t { which: ExternTy::Func(FuncTy::new(ty)) } }
    }
    pub fn func(&self) -> &FuncTy {
        match &self.ext.which {
            ExternTy::Func(f) => f,
            _ => unreachable!("a wasm_functype_t always describes a function"),
        }
    }
}

impl wasm_globaltype_t {
    pub fn carnac(&self) -> GlobalType {
        match &self.ext.which {
            ExternTy::Global { content, mutability } => {
                GlobalType::new(content.ty.clone(), if *mutability == 1 { Mutability::Var } else { Mutability::Const })
            }
            _ => unreachable!("a wasm_globaltype_t always describes a global"),
        }
    }
}

impl wasm_tabletype_t {
    pub fn carnac(&self) -> TableType {
        match &self.ext.which {
            ExternTy::Table { element, limits } => TableType::new(element.ty.clone(), limits.min, limits.max()),
            _ => unreachable!("a wasm_tabletype_t always describes a table"),
        }
    }
}

impl wasm_memorytype_t {
    pub fn carnac(&self) -> MemoryType {
        match &self.ext.which {
            ExternTy::Memory { limits } => MemoryType::new(limits.min, limits.max()),
            _ => unreachable!("a wasm_memorytype_t always describes a memory"),
        }
    }
}

/// An import of a module: where from, its name, its type.
pub struct wasm_importtype_t {
    module: wasm_name_t,
    name: wasm_name_t,
    ty: Box<wasm_externtype_t>,
}

impl wasm_importtype_t {
    pub fn new(module: &str, name: &str, ty: wasm_externtype_t) -> wasm_importtype_t {
        wasm_importtype_t { module: bytes_vec(module.as_bytes()), name: bytes_vec(name.as_bytes()), ty: Box::new(ty) }
    }
}

impl Clone for wasm_importtype_t {
    fn clone(&self) -> Self {
        // SAFETY: the names are vectors this object owns.
        unsafe {
            wasm_importtype_t { module: self.module.deep_copy(), name: self.name.deep_copy(), ty: self.ty.clone() }
        }
    }
}

impl Drop for wasm_importtype_t {
    fn drop(&mut self) {
        // SAFETY: the names are vectors this object owns, freed only here.
        unsafe {
            self.module.free();
            self.name.free();
        }
    }
}

/// An export of a module: its name and type.
pub struct wasm_exporttype_t {
    name: wasm_name_t,
    ty: Box<wasm_externtype_t>,
}

impl wasm_exporttype_t {
    pub fn new(name: &str, ty: wasm_externtype_t) -> wasm_exporttype_t {
        wasm_exporttype_t { name: bytes_vec(name.as_bytes()), ty: Box::new(ty) }
    }
}

impl Clone for wasm_exporttype_t {
    fn clone(&self) -> Self {
        // SAFETY: the name is a vector this object owns.
        wasm_exporttype_t { name: unsafe { self.name.deep_copy() }, ty: self.ty.clone() }
    }
}

impl Drop for wasm_exporttype_t {
    fn drop(&mut self) {
        // SAFETY: the name is a vector this object owns, freed only here.
        unsafe { self.name.free() }
    }
}

/// Declares `wasm_<name>_delete` and `wasm_<name>_copy` for a type object.
macro_rules! delete_and_copy {
    ($($name:ident),*) => {
        paste::paste! { $(
            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _delete>](p: *mut [<wasm_ $name _t>]) {
                // SAFETY: `p` is null or owned by the caller, made by this library.
                guard((), || drop(unsafe { from_raw(p) }))
            }

            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_ $name _copy>](p: *const [<wasm_ $name _t>]) -> *mut [<wasm_ $name _t>] {
                guard(std::ptr::null_mut(), || {
                    // SAFETY: `p` is null or a valid object.
                    unsafe { opt_ref(p) }.map_or(std::ptr::null_mut(), |t| into_raw(t.clone()))
                })
            }
        )* }
    };
}
delete_and_copy!(valtype, functype, globaltype, tabletype, memorytype, externtype, importtype, exporttype);

// Value types.

#[no_mangle]
pub extern "C" fn wasm_valtype_new(kind: u8) -> *mut wasm_valtype_t {
    guard(std::ptr::null_mut(), || {
        valtype_of_kind(kind).map_or(std::ptr::null_mut(), |ty| into_raw(wasm_valtype_t { ty }))
    })
}

/// The kind of a value type; `WASM_I32` for a null argument (the header
/// gives no way to say "none").
#[no_mangle]
pub unsafe extern "C" fn wasm_valtype_kind(t: *const wasm_valtype_t) -> u8 {
    // SAFETY: `t` is null or a valid value type.
    guard(WASM_I32, || unsafe { opt_ref(t) }.map_or(WASM_I32, |t| valkind(&t.ty)))
}

// Function types.

/// Takes the value types out of an owned vector (the vector is left empty).
///
/// # Safety
///
/// `v` is null or an owned vector of owned (or null) value types.
unsafe fn take_valtypes(v: *mut wasm_valtype_vec_t) -> Option<Vec<ValType>> {
    // SAFETY: contract above.
    let v = unsafe { opt_mut(v) }?;
    // SAFETY: the vector and its elements are owned by us now.
    let elems = unsafe { v.take() };
    let mut ok = true;
    let tys: Vec<ValType> = elems
        .into_iter()
        // SAFETY: the elements are owned value types (or null), now ours.
        .filter_map(|p| match unsafe { from_raw(p) } {
            Some(t) => Some(t.ty),
            None => {
                ok = false;
                None
            }
        })
        .collect();
    ok.then_some(tys)
}

/// Takes ownership of both vectors (and their value types); null when either
/// is null or holds a null value type.
#[no_mangle]
pub unsafe extern "C" fn wasm_functype_new(
    params: *mut wasm_valtype_vec_t,
    results: *mut wasm_valtype_vec_t,
) -> *mut wasm_functype_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: both are null or owned vectors passed to us (`own`).
        let (p, r) = unsafe { (take_valtypes(params), take_valtypes(results)) };
        match (p, r) {
            (Some(p), Some(r)) => into_raw(wasm_functype_t::new(FuncType::new(p, r))),
            _ => std::ptr::null_mut(),
        }
    })
}

static EMPTY_VALTYPES: CVecSync = CVecSync(CVec { size: 0, data: std::ptr::null_mut() });

/// An empty vector that can live in a `static` (it holds no pointer).
struct CVecSync(wasm_valtype_vec_t);
// SAFETY: the vector is empty and never written: its null pointer is never dereferenced.
unsafe impl Sync for CVecSync {}

#[no_mangle]
pub unsafe extern "C" fn wasm_functype_params(t: *const wasm_functype_t) -> *const wasm_valtype_vec_t {
    guard(&EMPTY_VALTYPES.0, || {
        // SAFETY: `t` is null or a valid function type.
        unsafe { opt_ref(t) }.map_or(&EMPTY_VALTYPES.0 as *const _, |t| &t.func().params as *const _)
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_functype_results(t: *const wasm_functype_t) -> *const wasm_valtype_vec_t {
    guard(&EMPTY_VALTYPES.0, || {
        // SAFETY: `t` is null or a valid function type.
        unsafe { opt_ref(t) }.map_or(&EMPTY_VALTYPES.0 as *const _, |t| &t.func().results as *const _)
    })
}

// Global types.

/// Takes ownership of the value type; null for a null type or a mutability
/// other than `WASM_CONST` (0) or `WASM_VAR` (1).
#[no_mangle]
pub unsafe extern "C" fn wasm_globaltype_new(content: *mut wasm_valtype_t, mutability: u8) -> *mut wasm_globaltype_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `content` is null or owned by us now (`own`).
        let Some(content) = (unsafe { from_raw(content) }) else { return std::ptr::null_mut() };
        if mutability > 1 {
            return std::ptr::null_mut();
        }
        into_raw(wasm_globaltype_t {
            ext: wasm_externtype_t { which: ExternTy::Global { content: *content, mutability } },
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_globaltype_content(t: *const wasm_globaltype_t) -> *const wasm_valtype_t {
    guard(std::ptr::null(), || {
        // SAFETY: `t` is null or a valid global type.
        match unsafe { opt_ref(t) }.map(|t| &t.ext.which) {
            Some(ExternTy::Global { content, .. }) => content as *const _,
            _ => std::ptr::null(),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_globaltype_mutability(t: *const wasm_globaltype_t) -> u8 {
    guard(0, || {
        // SAFETY: `t` is null or a valid global type.
        match unsafe { opt_ref(t) }.map(|t| &t.ext.which) {
            Some(ExternTy::Global { mutability, .. }) => *mutability,
            _ => 0,
        }
    })
}

// Table types.

/// Takes ownership of the element type; null unless it is a reference type.
#[no_mangle]
pub unsafe extern "C" fn wasm_tabletype_new(
    element: *mut wasm_valtype_t,
    limits: *const wasm_limits_t,
) -> *mut wasm_tabletype_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `element` is null or owned by us now (`own`); `limits` null or valid.
        let (element, limits) = unsafe { (from_raw(element), opt_ref(limits)) };
        match (element, limits) {
            (Some(element), Some(limits)) if matches!(element.ty, ValType::FuncRef | ValType::ExternRef) => {
                into_raw(wasm_tabletype_t {
                    ext: wasm_externtype_t { which: ExternTy::Table { element: *element, limits: *limits } },
                })
            }
            _ => std::ptr::null_mut(),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_tabletype_element(t: *const wasm_tabletype_t) -> *const wasm_valtype_t {
    guard(std::ptr::null(), || {
        // SAFETY: `t` is null or a valid table type.
        match unsafe { opt_ref(t) }.map(|t| &t.ext.which) {
            Some(ExternTy::Table { element, .. }) => element as *const _,
            _ => std::ptr::null(),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_tabletype_limits(t: *const wasm_tabletype_t) -> *const wasm_limits_t {
    guard(std::ptr::null(), || {
        // SAFETY: `t` is null or a valid table type.
        match unsafe { opt_ref(t) }.map(|t| &t.ext.which) {
            Some(ExternTy::Table { limits, .. }) => limits as *const _,
            _ => std::ptr::null(),
        }
    })
}

// Memory types.

#[no_mangle]
pub unsafe extern "C" fn wasm_memorytype_new(limits: *const wasm_limits_t) -> *mut wasm_memorytype_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: `limits` is null or valid.
        unsafe { opt_ref(limits) }.map_or(std::ptr::null_mut(), |l| {
            into_raw(wasm_memorytype_t { ext: wasm_externtype_t { which: ExternTy::Memory { limits: *l } } })
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_memorytype_limits(t: *const wasm_memorytype_t) -> *const wasm_limits_t {
    guard(std::ptr::null(), || {
        // SAFETY: `t` is null or a valid memory type.
        match unsafe { opt_ref(t) }.map(|t| &t.ext.which) {
            Some(ExternTy::Memory { limits }) => limits as *const _,
            _ => std::ptr::null(),
        }
    })
}

// Extern types.

/// The kind of an extern type; `WASM_EXTERN_FUNC` for null.
#[no_mangle]
pub unsafe extern "C" fn wasm_externtype_kind(t: *const wasm_externtype_t) -> u8 {
    // SAFETY: `t` is null or a valid extern type.
    guard(WASM_EXTERN_FUNC, || unsafe { opt_ref(t) }.map_or(WASM_EXTERN_FUNC, |t| t.kind()))
}

macro_rules! as_externtype {
    ($($name:ident),*) => {
        paste::paste! { $(
            #[no_mangle]
            pub extern "C" fn [<wasm_ $name _as_externtype>](t: *mut [<wasm_ $name _t>]) -> *mut wasm_externtype_t {
                // A `repr(transparent)` wrapper: the same object (null stays null).
                guard(std::ptr::null_mut(), || t as *mut wasm_externtype_t)
            }

            #[no_mangle]
            pub extern "C" fn [<wasm_ $name _as_externtype_const>](t: *const [<wasm_ $name _t>]) -> *const wasm_externtype_t {
                guard(std::ptr::null(), || t as *const wasm_externtype_t)
            }

            /// The same object seen as the specific type; null if it is another kind.
            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_externtype_as_ $name>](t: *mut wasm_externtype_t) -> *mut [<wasm_ $name _t>] {
                guard(std::ptr::null_mut(), || {
                    // SAFETY: `t` is null or a valid extern type.
                    unsafe { opt_ref(t) }
                        .and_then([<wasm_ $name _t>]::from_ext)
                        .map_or(std::ptr::null_mut(), |s| s as *const _ as *mut _)
                })
            }

            #[no_mangle]
            pub unsafe extern "C" fn [<wasm_externtype_as_ $name _const>](t: *const wasm_externtype_t) -> *const [<wasm_ $name _t>] {
                guard(std::ptr::null(), || {
                    // SAFETY: `t` is null or a valid extern type.
                    unsafe { opt_ref(t) }
                        .and_then([<wasm_ $name _t>]::from_ext)
                        .map_or(std::ptr::null(), |s| s as *const _)
                })
            }
        )* }
    };
}
as_externtype!(functype, globaltype, tabletype, memorytype);

// Import and export types.

/// Takes ownership of both names and the type; null if any is null.
#[no_mangle]
pub unsafe extern "C" fn wasm_importtype_new(
    module: *mut wasm_name_t,
    name: *mut wasm_name_t,
    ty: *mut wasm_externtype_t,
) -> *mut wasm_importtype_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: all three are null or owned by us now (`own`).
        let (m, n, t) = unsafe { (opt_mut(module), opt_mut(name), from_raw(ty)) };
        match (m, n, t) {
            (Some(m), Some(n), Some(t)) => {
                // SAFETY: the names are owned vectors; taking them leaves them empty.
                let (module, name) = unsafe { (CVec::from_vec(m.take()), CVec::from_vec(n.take())) };
                into_raw(wasm_importtype_t { module, name, ty: t })
            }
            _ => std::ptr::null_mut(),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_importtype_module(t: *const wasm_importtype_t) -> *const wasm_name_t {
    // SAFETY: `t` is null or a valid import type.
    guard(std::ptr::null(), || unsafe { opt_ref(t) }.map_or(std::ptr::null(), |t| &t.module as *const _))
}

#[no_mangle]
pub unsafe extern "C" fn wasm_importtype_name(t: *const wasm_importtype_t) -> *const wasm_name_t {
    // SAFETY: `t` is null or a valid import type.
    guard(std::ptr::null(), || unsafe { opt_ref(t) }.map_or(std::ptr::null(), |t| &t.name as *const _))
}

#[no_mangle]
pub unsafe extern "C" fn wasm_importtype_type(t: *const wasm_importtype_t) -> *const wasm_externtype_t {
    // SAFETY: `t` is null or a valid import type.
    guard(std::ptr::null(), || unsafe { opt_ref(t) }.map_or(std::ptr::null(), |t| &*t.ty as *const _))
}

/// Takes ownership of the name and the type; null if either is null.
#[no_mangle]
pub unsafe extern "C" fn wasm_exporttype_new(
    name: *mut wasm_name_t,
    ty: *mut wasm_externtype_t,
) -> *mut wasm_exporttype_t {
    guard(std::ptr::null_mut(), || {
        // SAFETY: both are null or owned by us now (`own`).
        match unsafe { (opt_mut(name), from_raw(ty)) } {
            // SAFETY: the name is an owned vector; taking it leaves it empty.
            (Some(n), Some(t)) => into_raw(wasm_exporttype_t { name: CVec::from_vec(unsafe { n.take() }), ty: t }),
            _ => std::ptr::null_mut(),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn wasm_exporttype_name(t: *const wasm_exporttype_t) -> *const wasm_name_t {
    // SAFETY: `t` is null or a valid export type.
    guard(std::ptr::null(), || unsafe { opt_ref(t) }.map_or(std::ptr::null(), |t| &t.name as *const _))
}

#[no_mangle]
pub unsafe extern "C" fn wasm_exporttype_type(t: *const wasm_exporttype_t) -> *const wasm_externtype_t {
    // SAFETY: `t` is null or a valid export type.
    guard(std::ptr::null(), || unsafe { opt_ref(t) }.map_or(std::ptr::null(), |t| &*t.ty as *const _))
}
