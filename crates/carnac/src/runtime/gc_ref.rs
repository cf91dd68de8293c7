//! What a reference is as raw bits (in value slots, tables, globals, both
//! tiers): one 64-bit space shared by `anyref` and `externref`, so that
//! `any.convert_extern` and `extern.convert_any` leave the bits unchanged and
//! `ref.eq` is equality of the bits.
//!
//! | bits 63..62 | meaning                                                         |
//! |-------------|-----------------------------------------------------------------|
//! | (all zero)  | null                                                            |
//! | `00`        | an extern-heap slot (`runtime::gc`: low 32 bits slot + 1, generation below 2^30 above) |
//! | `01`        | a GC-heap object (`runtime::gc_heap`: low 32 bits slot + 1, bits 32..61 generation) |
//! | `10`        | an `i31` (low 31 bits the value; the GC type system's helpers)  |
//!
//! This module owns the encoding of GC-heap objects and the accessor casts use
//! ([`object_type_id`]), the encoding of `i31`s ([`encode_i31`], [`i31_u`],
//! [`i31_s`]) and what `ref.test` / `ref.cast` / `br_on_cast*` decide in both
//! tiers ([`ref_test`], for a [`CastTarget`]); it must not touch the heap's
//! contents.

use crate::runtime::store::StoreInner;

/// Bits 63..62 of a GC-heap object reference.
pub(crate) const OBJECT_TAG: u64 = 0b01 << 62;
/// The tag bits.
pub(crate) const TAG_MASK: u64 = 0b11 << 62;
/// Generations of GC-heap slots stay below this (30 bits).
pub(crate) const MAX_OBJECT_GEN: u32 = (1 << 30) - 1;

/// The raw bits of a reference to GC-heap slot `index` at generation `gen`
/// (`gen <= MAX_OBJECT_GEN`, `index < u32::MAX`).
#[inline]
pub(crate) fn encode_object(index: u32, gen: u32) -> u64 {
    debug_assert!(gen <= MAX_OBJECT_GEN && index < u32::MAX);
    OBJECT_TAG | ((gen as u64) << 32) | (index as u64 + 1)
}

/// The slot and generation of a GC-heap object reference; `None` for any other
/// bits (null, an extern reference, an i31).
#[inline]
pub(crate) fn decode_object(raw: u64) -> Option<(u32, u32)> {
    let low = raw as u32;
    (raw & TAG_MASK == OBJECT_TAG && low != 0).then(|| (low - 1, ((raw >> 32) as u32) & MAX_OBJECT_GEN))
}

/// Whether the bits are a GC-heap object reference (live or not).
#[inline]
pub(crate) fn is_object(raw: u64) -> bool {
    decode_object(raw).is_some()
}

/// The canonical type id of the live GC-heap object `raw` refers to (what
/// `ref.test`/`ref.cast` compare); `None` when `raw` is not a live object of
/// this store's heap.
pub(crate) fn object_type_id(store: &StoreInner, raw: u64) -> Option<u32> {
    store.gc_heap.type_id_of(raw)
}

/// Bits 63..62 of an `i31`.
pub(crate) const I31_TAG: u64 = 0b10 << 62;

/// The raw bits of `ref.i31 value`: its low 31 bits (wrapping).
#[inline]
pub(crate) fn encode_i31(value: u32) -> u64 {
    I31_TAG | (value & 0x7fff_ffff) as u64
}

/// Whether the bits are an `i31`.
#[inline]
pub(crate) fn is_i31(raw: u64) -> bool {
    raw & TAG_MASK == I31_TAG
}

/// `i31.get_u`: the 31 bits zero-extended.
#[inline]
pub(crate) fn i31_u(raw: u64) -> u32 {
    raw as u32 & 0x7fff_ffff
}

/// `i31.get_s`: the 31 bits sign-extended.
#[inline]
pub(crate) fn i31_s(raw: u64) -> i32 {
    ((raw as u32) << 1) as i32 >> 1
}

/// The heap type a cast tests against, as the instructions carry it (an
/// abstract one, or a concrete one with its canonical type id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum CastHeap {
    Any,
    Eq,
    I31,
    Struct,
    Array,
    None,
    Func,
    NoFunc,
    Extern,
    NoExtern,
    ConcreteFunc,
    ConcreteStruct,
    ConcreteArray,
    Exn,
    NoExn,
}

const CAST_HEAPS: [CastHeap; 15] = [
    CastHeap::Any,
    CastHeap::Eq,
    CastHeap::I31,
    CastHeap::Struct,
    CastHeap::Array,
    CastHeap::None,
    CastHeap::Func,
    CastHeap::NoFunc,
    CastHeap::Extern,
    CastHeap::NoExtern,
    CastHeap::ConcreteFunc,
    CastHeap::ConcreteStruct,
    CastHeap::ConcreteArray,
    CastHeap::Exn,
    CastHeap::NoExn,
];

impl CastHeap {
    /// The code of `CastHeap::from_code`.
    pub(crate) fn code(self) -> u32 {
        self as u32
    }

    pub(crate) fn from_code(code: u32) -> CastHeap {
        CAST_HEAPS[code as usize % CAST_HEAPS.len()]
    }
}

/// A cast's target: nullable or not, a heap type, and for a concrete heap type
/// its canonical id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CastTarget {
    pub nullable: bool,
    pub heap: CastHeap,
    pub type_id: u32,
}

impl CastTarget {
    /// The target of a cast to reference type `r` in module `info` (a concrete
    /// heap type by its canonical id); `None` for a heap type casts do not know.
    pub(crate) fn of(r: wasmparser::RefType, info: &crate::module::ModuleInfo) -> Option<CastTarget> {
        use wasmparser::AbstractHeapType as A;
        let (heap, type_id) = match r.heap_type() {
            wasmparser::HeapType::Abstract { shared: false, ty } => (
                match ty {
                    A::Any => CastHeap::Any,
                    A::Eq => CastHeap::Eq,
                    A::I31 => CastHeap::I31,
                    A::Struct => CastHeap::Struct,
                    A::Array => CastHeap::Array,
                    A::None => CastHeap::None,
                    A::Func => CastHeap::Func,
                    A::NoFunc => CastHeap::NoFunc,
                    A::Extern => CastHeap::Extern,
                    A::NoExtern => CastHeap::NoExtern,
                    A::Exn => CastHeap::Exn,
                    A::NoExn => CastHeap::NoExn,
                    _ => return Option::None,
                },
                0,
            ),
            wasmparser::HeapType::Concrete(i) => {
                let i = i.as_module_index()? as usize;
                let heap = match info.sub_types.get(i)? {
                    crate::types::CompositeType::Func(_) => CastHeap::ConcreteFunc,
                    crate::types::CompositeType::Struct(_) => CastHeap::ConcreteStruct,
                    crate::types::CompositeType::Array(_) => CastHeap::ConcreteArray,
                };
                (heap, info.type_ids[i])
            }
            _ => return Option::None,
        };
        Some(CastTarget { nullable: r.is_nullable(), heap, type_id })
    }

    /// The target of a host-side check against `r` (a concrete type the host
    /// made is registered in `s`'s engine first).
    pub(crate) fn of_public(r: &crate::types::RefType, s: &StoreInner) -> CastTarget {
        use crate::types::{CompositeType, HeapType as H};
        let registry = s.engine.type_registry();
        let (heap, type_id) = match r.heap_type() {
            H::Any => (CastHeap::Any, 0),
            H::Eq => (CastHeap::Eq, 0),
            H::I31 => (CastHeap::I31, 0),
            H::Struct => (CastHeap::Struct, 0),
            H::Array => (CastHeap::Array, 0),
            H::None => (CastHeap::None, 0),
            H::Func => (CastHeap::Func, 0),
            H::NoFunc => (CastHeap::NoFunc, 0),
            H::Extern => (CastHeap::Extern, 0),
            H::NoExtern => (CastHeap::NoExtern, 0),
            H::Exn => (CastHeap::Exn, 0),
            H::NoExn => (CastHeap::NoExn, 0),
            H::ConcreteFunc(t) => (CastHeap::ConcreteFunc, registry.register_func(t)),
            H::ConcreteStruct(t) => {
                (CastHeap::ConcreteStruct, registry.register_host(CompositeType::Struct(t.clone())))
            }
            H::ConcreteArray(t) => (CastHeap::ConcreteArray, registry.register_host(CompositeType::Array(t.clone()))),
        };
        CastTarget { nullable: r.is_nullable(), heap, type_id }
    }

    /// Packed in 32 bits with a module type index (`< 2^20`, the validator's
    /// limit on types) for a concrete heap type: the instructions' immediate.
    pub(crate) fn pack(self, type_index: u32) -> u32 {
        (type_index << 5) | (self.heap.code() << 1) | self.nullable as u32
    }
}

/// The nullability, heap kind and module type index [`CastTarget::pack`] packed.
pub(crate) fn unpack_cast(packed: u32) -> (bool, CastHeap, u32) {
    (packed & 1 != 0, CastHeap::from_code((packed >> 1) & 0xf), packed >> 5)
}

/// Whether the reference `raw` (of the target's hierarchy: validation
/// guarantees it) is a value of the target type in store `s`: `ref.test`.
pub(crate) fn ref_test(s: &StoreInner, raw: u64, target: CastTarget) -> bool {
    if raw == 0 {
        return target.nullable;
    }
    let registry = s.engine.type_registry();
    match target.heap {
        CastHeap::Any | CastHeap::Func | CastHeap::Extern | CastHeap::Exn => true,
        CastHeap::None | CastHeap::NoFunc | CastHeap::NoExtern | CastHeap::NoExn => false,
        CastHeap::Eq => is_i31(raw) || is_object(raw),
        CastHeap::I31 => is_i31(raw),
        CastHeap::ConcreteFunc => s
            .funcs
            .get(raw as usize - 1)
            .is_some_and(|f| f.type_id == target.type_id || registry.is_subtype(f.type_id, target.type_id)),
        CastHeap::Struct | CastHeap::Array | CastHeap::ConcreteStruct | CastHeap::ConcreteArray => {
            let Some(id) = object_type_id(s, raw) else { return false };
            match target.heap {
                CastHeap::Struct => registry.is_struct(id),
                CastHeap::Array => !registry.is_struct(id),
                _ => registry.is_subtype(id, target.type_id),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_bits_round_trip_and_stay_apart() {
        for (index, gen) in [(0, 0), (1, 7), (u32::MAX - 1, MAX_OBJECT_GEN)] {
            let raw = encode_object(index, gen);
            assert_eq!(raw & TAG_MASK, OBJECT_TAG);
            assert_eq!(decode_object(raw), Some((index, gen)));
        }
        // Null, extern-heap slots and i31s are not objects.
        assert_eq!(decode_object(0), None);
        assert_eq!(decode_object(crate::runtime::gc::encode(5, 3)), None);
        assert_eq!(decode_object((0b10 << 62) | 12345), None);
        assert_eq!(decode_object(OBJECT_TAG), None);
    }

    #[test]
    fn i31_bits_wrap_and_extend() {
        for (v, u, s) in
            [(0, 0, 0), (1, 1, 1), (0x3fff_ffff, 0x3fff_ffff, 0x3fff_ffff), (0x4000_0000, 0x4000_0000, -0x4000_0000)]
        {
            let raw = encode_i31(v);
            assert!(is_i31(raw) && !is_object(raw) && raw != 0);
            assert_eq!((i31_u(raw), i31_s(raw)), (u, s));
        }
        // Wrapping: bit 31 is dropped.
        assert_eq!(i31_u(encode_i31(u32::MAX)), 0x7fff_ffff);
        assert_eq!(i31_s(encode_i31(u32::MAX)), -1);
        assert_eq!(encode_i31(0x8000_0000), encode_i31(0));
    }
}
