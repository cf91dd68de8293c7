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
//! ([`object_type_id`]); it must not touch the heap's contents.

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

/// The raw bits of `ref.i31` of `value` (its low 31 bits; tag `10`).
#[inline]
pub(crate) fn i31_bits(value: u32) -> u64 {
    (0b10 << 62) | (value & 0x7fff_ffff) as u64
}

/// The canonical type id of the live GC-heap object `raw` refers to (what
/// `ref.test`/`ref.cast` compare); `None` when `raw` is not a live object of
/// this store's heap.
pub(crate) fn object_type_id(store: &StoreInner, raw: u64) -> Option<u32> {
    store.gc_heap.type_id_of(raw)
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
}
