//! Values at the API boundary ([`Val`]) and the raw 64-bit slot encoding the
//! interpreter uses internally: i32 zero-extended, floats as their bits, references
//! as a store index plus one (0 is null; an extern reference also carries its
//! slot's generation in the high 32 bits, see `runtime::gc`).

use crate::error::Error;
use crate::runtime::gc;
use crate::runtime::store::StoreInner;
use crate::types::{HeapType, ValType};
use crate::Func;

/// A reference to a host value, owned by a store (the `externref` of WebAssembly;
/// pass it as `Option<ExternRef>` to typed calls and host functions, or in
/// [`Val::ExternRef`]). Made by [`ExternRef::new`]; read with [`ExternRef::data`].
///
/// The value is freed once nothing refers to it: not wasm (a table, a global),
/// and no root on the host side. A handle is a root for the scope it was made
/// in (a [`crate::RootScope`], the host function call it was made or received
/// in, or else the store's life), the role of Wasmtime's `Rooted<ExternRef>`;
/// [`ExternRef::to_owned_rooted`] makes a root that lasts until dropped.
/// Collection happens when the store's references have doubled since the last
/// one, or on [`crate::Store::gc`], only while no wasm runs in the store. A
/// handle whose value was freed is an error wherever it is used, never another
/// value. Two handles are equal when they name the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExternRef {
    pub(crate) store: u64,
    pub(crate) index: u32,
    /// The generation of the slot `index` when the value was placed there.
    pub(crate) gen: u32,
    /// Not 0 for a GC value converted with `extern.convert_any` (an `i31`,
    /// struct or array): its bits (then `index` and `gen` are unused).
    pub(crate) any: u64,
}

/// A WebAssembly value (GC will add reference kinds).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Val {
    /// A 32-bit integer.
    I32(i32),
    /// A 64-bit integer.
    I64(i64),
    /// The bits of an f32 (kept as bits so NaN payloads survive).
    F32(u32),
    /// The bits of an f64.
    F64(u64),
    /// A 128-bit vector (lane 0 in the least significant bits, as in memory).
    V128(u128),
    /// A function reference (`None` is null).
    FuncRef(Option<Func>),
    /// An extern reference (`None` is null).
    ExternRef(Option<ExternRef>),
    /// A GC reference, `anyref` (`None` is null).
    AnyRef(Option<crate::AnyRef>),
    /// An exception reference (`None` is null; exception handling).
    ExnRef(Option<crate::ExnRef>),
}

impl Val {
    /// The value's type.
    pub fn ty(&self) -> ValType {
        match self {
            Val::I32(_) => ValType::I32,
            Val::I64(_) => ValType::I64,
            Val::F32(_) => ValType::F32,
            Val::F64(_) => ValType::F64,
            Val::V128(_) => ValType::V128,
            Val::FuncRef(_) => ValType::FuncRef,
            Val::ExternRef(_) => ValType::ExternRef,
            Val::ExnRef(_) => ValType::EXNREF,
            Val::AnyRef(_) => ValType::ANYREF,
        }
    }

    /// Whether the value is one of type `ty` in `store` (as Wasmtime's
    /// `Val::matches_ty`): a function of type `t` is a `(ref $t)`, a
    /// `(ref func)` and a `funcref`; null only a value of nullable types.
    /// [`Val::ty`] is the most general type (`funcref`, `externref`).
    pub fn matches_ty(&self, store: impl crate::AsContext, ty: &ValType) -> bool {
        self.matches(ty, &store.as_context().inner)
    }

    /// Whether the value is one of type `ty` in store `s` (reference
    /// subtyping: a function of type `t` is a `(ref $t)`, a `(ref func)` and a
    /// `funcref`; null is only a value of nullable types).
    pub(crate) fn matches(&self, ty: &ValType, s: &StoreInner) -> bool {
        match (self, ty) {
            (Val::FuncRef(None) | Val::ExternRef(None) | Val::ExnRef(None) | Val::AnyRef(None), ValType::Ref(r)) => {
                r.is_nullable()
                    && self.is_func_ref_val() == r.heap_type().is_func()
                    && matches!(self, Val::ExnRef(_)) == r.heap_type().is_exn()
                    && matches!(self, Val::AnyRef(_)) == (r.heap_type().top() == HeapType::Any)
            }
            (Val::AnyRef(Some(a)), ValType::Ref(r)) => {
                // Another store's value is left to `to_raw`, which names the problem.
                r.heap_type().top() == HeapType::Any
                    && (a.store != s.id
                        || crate::runtime::gc_ref::ref_test(
                            s,
                            a.raw,
                            crate::runtime::gc_ref::CastTarget::of_public(r, s),
                        ))
            }
            (Val::ExnRef(Some(_)), ValType::Ref(r)) => *r.heap_type() == crate::HeapType::Exn,
            (Val::FuncRef(Some(f)), ValType::Ref(r)) => match r.heap_type() {
                HeapType::Func => true,
                HeapType::ConcreteFunc(t) => f.store != s.id || s.func_ty(f.index).matches(t),
                _ => false,
            },
            (Val::ExternRef(Some(_)), ValType::Ref(r)) => *r.heap_type() == HeapType::Extern,
            (v, t) => v.ty() == *t,
        }
    }

    fn is_func_ref_val(&self) -> bool {
        matches!(self, Val::FuncRef(_))
    }

    /// The zero (or null) value of a type.
    /// For a reference type, null (whether or not the type admits it).
    pub fn default_for(ty: ValType) -> Val {
        match ty {
            ValType::I32 => Val::I32(0),
            ValType::I64 => Val::I64(0),
            ValType::F32 => Val::F32(0),
            ValType::F64 => Val::F64(0),
            ValType::V128 => Val::V128(0),
            t if t.is_func_ref() => Val::FuncRef(None),
            t if t.is_exn_ref() => Val::ExnRef(None),
            t if t.is_any_ref() => Val::AnyRef(None),
            _ => Val::ExternRef(None),
        }
    }

    /// The value, if it is an `i32`.
    pub fn i32(&self) -> Option<i32> {
        if let Val::I32(v) = self {
            Some(*v)
        } else {
            None
        }
    }
    /// The value, if it is an `i64`.
    pub fn i64(&self) -> Option<i64> {
        if let Val::I64(v) = self {
            Some(*v)
        } else {
            None
        }
    }
    /// The value, if it is an `f32`.
    pub fn f32(&self) -> Option<f32> {
        if let Val::F32(v) = self {
            Some(f32::from_bits(*v))
        } else {
            None
        }
    }
    /// The value, if it is an `f64`.
    pub fn f64(&self) -> Option<f64> {
        if let Val::F64(v) = self {
            Some(f64::from_bits(*v))
        } else {
            None
        }
    }
    /// The value, if it is a `v128`.
    pub fn v128(&self) -> Option<u128> {
        if let Val::V128(v) = self {
            Some(*v)
        } else {
            None
        }
    }

    /// Parses a value of type `ty` from text, as a command line gives it:
    /// integers in decimal or `0x` hex (negative allowed), floats in decimal,
    /// `inf`, `-inf` or `nan`. Reference types accept only `null`.
    pub fn parse(ty: ValType, text: &str) -> Result<Val, String> {
        fn int(text: &str) -> Option<i128> {
            let (neg, digits) = match text.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text.strip_prefix('+').unwrap_or(text)),
            };
            let digits = digits.replace('_', "");
            let v = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
                Some(hex) => i128::from_str_radix(hex, 16).ok()?,
                None => digits.parse::<i128>().ok()?,
            };
            Some(if neg { -v } else { v })
        }
        let bad = || format!("`{text}` is not a valid {ty}");
        match ty {
            ValType::I32 => {
                let v = int(text).filter(|v| *v >= i32::MIN as i128 && *v <= u32::MAX as i128).ok_or_else(bad)?;
                Ok(Val::I32(v as u32 as i32))
            }
            ValType::I64 => {
                let v = int(text).filter(|v| *v >= i64::MIN as i128 && *v <= u64::MAX as i128).ok_or_else(bad)?;
                Ok(Val::I64(v as u64 as i64))
            }
            ValType::F32 => text.parse::<f32>().map(Val::from).map_err(|_| bad()),
            ValType::F64 => text.parse::<f64>().map(Val::from).map_err(|_| bad()),
            ValType::V128 => {
                // All 128 bits, as one number (lane 0 least significant): `0x` hex,
                // or decimal (negative allowed).
                let digits = text.replace('_', "");
                let v = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
                    Some(hex) => u128::from_str_radix(hex, 16).ok(),
                    None => digits.parse::<u128>().ok().or_else(|| digits.parse::<i128>().ok().map(|v| v as u128)),
                };
                v.map(Val::V128).ok_or_else(bad)
            }
            t if t.is_nullable() && text == "null" => Ok(Val::default_for(t.clone())),
            _ => Err(bad()),
        }
    }

    /// Encodes into raw bits (one slot, or two for a v128), checking that
    /// references belong to store `s` (and extern references are still live).
    pub(crate) fn to_raw(self, s: &StoreInner) -> Result<u128, Error> {
        let store_id = s.id;
        Ok(match self {
            Val::I32(v) => v as u32 as u128,
            Val::I64(v) => v as u64 as u128,
            Val::F32(v) => v as u128,
            Val::F64(v) => v as u128,
            Val::V128(v) => v,
            Val::FuncRef(None) | Val::ExternRef(None) | Val::ExnRef(None) | Val::AnyRef(None) => 0,
            Val::AnyRef(Some(a)) => a.to_raw(s)? as u128,
            Val::ExnRef(Some(e)) => e.to_raw(s)? as u128,
            Val::FuncRef(Some(f)) => {
                if f.store != store_id {
                    return Err(Error::usage("function reference belongs to a different store"));
                }
                f.index as u128 + 1
            }
            Val::ExternRef(Some(r)) => {
                r.check(s)?;
                if r.any != 0 {
                    r.any as u128
                } else {
                    gc::encode(r.index, r.gen) as u128
                }
            }
        })
    }

    /// Decodes raw bits of type `ty` made in store `s`; an extern reference is
    /// rooted in the store's current scope.
    pub(crate) fn from_raw(raw: u128, ty: &ValType, s: &mut StoreInner) -> Val {
        let store_id = s.id;
        let raw64 = raw as u64;
        match ty {
            ValType::I32 => Val::I32(raw as u32 as i32),
            ValType::I64 => Val::I64(raw64 as i64),
            ValType::F32 => Val::F32(raw as u32),
            ValType::F64 => Val::F64(raw64),
            ValType::V128 => Val::V128(raw),
            t if t.is_func_ref() => {
                Val::FuncRef((raw64 != 0).then(|| Func { store: store_id, index: (raw64 - 1) as u32 }))
            }
            t if t.is_exn_ref() => Val::ExnRef(crate::ExnRef::from_raw(raw64, s)),
            t if t.is_any_ref() => Val::AnyRef(crate::AnyRef::from_raw(raw64, s)),
            _ => Val::ExternRef(ExternRef::from_raw(raw64, s)),
        }
    }
}

impl ExternRef {
    /// The reference in raw bits `raw` (`None` for null) made in store `s`,
    /// rooted in its current scope.
    #[inline]
    pub(crate) fn from_raw(raw: u64, s: &mut StoreInner) -> Option<ExternRef> {
        if raw & crate::runtime::gc_ref::TAG_MASK != 0 {
            // A GC value converted with `extern.convert_any`.
            return Some(ExternRef { store: s.id, index: 0, gen: 0, any: raw });
        }
        let (index, gen) = gc::decode(raw)?;
        s.externs.root(index, gen);
        Some(ExternRef { store: s.id, index, gen, any: 0 })
    }
}

impl From<i32> for Val {
    fn from(v: i32) -> Val {
        Val::I32(v)
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::I64(v)
    }
}
impl From<f32> for Val {
    fn from(v: f32) -> Val {
        Val::F32(v.to_bits())
    }
}
impl From<f64> for Val {
    fn from(v: f64) -> Val {
        Val::F64(v.to_bits())
    }
}

impl From<u128> for Val {
    fn from(v: u128) -> Val {
        Val::V128(v)
    }
}

/// Writes raw bits of type `ty` into `slots` (one slot, or two for a v128,
/// low half first) and returns how many slots it took.
pub(crate) fn write_slots(raw: u128, ty: &ValType, slots: &mut [u64]) -> usize {
    slots[0] = raw as u64;
    if *ty == ValType::V128 {
        slots[1] = (raw >> 64) as u64;
        2
    } else {
        1
    }
}

/// Reads raw bits of type `ty` from `slots` (see [`write_slots`]).
pub(crate) fn read_slots(slots: &[u64], ty: &ValType) -> u128 {
    if *ty == ValType::V128 {
        slots[0] as u128 | (slots[1] as u128) << 64
    } else {
        slots[0] as u128
    }
}

impl std::fmt::Display for Val {
    /// The text format's notation: `42`, `1.5`, `nan:0x200000`, `null`, ...
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn float(f: &mut std::fmt::Formatter<'_>, v: f64, nan_payload: u64, neg: bool) -> std::fmt::Result {
            if v.is_nan() {
                write!(f, "{}nan:{nan_payload:#x}", if neg { "-" } else { "" })
            } else if v.is_infinite() {
                write!(f, "{}inf", if neg { "-" } else { "" })
            } else {
                write!(f, "{v}")
            }
        }
        match *self {
            Val::I32(v) => write!(f, "{v}"),
            Val::I64(v) => write!(f, "{v}"),
            Val::F32(b) => {
                let v = f32::from_bits(b);
                if v.is_nan() || v.is_infinite() {
                    float(f, v as f64, (b & 0x7f_ffff) as u64, b >> 31 == 1)
                } else {
                    write!(f, "{v}")
                }
            }
            Val::F64(b) => float(f, f64::from_bits(b), b & 0xf_ffff_ffff_ffff, b >> 63 == 1),
            Val::V128(v) => write!(f, "{v:#034x}"),
            Val::FuncRef(None) | Val::ExternRef(None) | Val::ExnRef(None) | Val::AnyRef(None) => write!(f, "null"),
            Val::AnyRef(Some(r)) if crate::runtime::gc_ref::is_i31(r.raw) => {
                write!(f, "i31:{}", crate::runtime::gc_ref::i31_u(r.raw))
            }
            Val::AnyRef(Some(r)) => write!(f, "anyref:{:#x}", r.raw),
            Val::ExnRef(Some(r)) => write!(f, "exnref:{}", r.index),
            Val::FuncRef(Some(func)) => write!(f, "funcref:{}", func.index),
            Val::ExternRef(Some(r)) => write!(f, "externref:{}", r.index),
        }
    }
}
