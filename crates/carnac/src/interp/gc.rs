//! The GC proposal's struct and array instructions in the interpreter.
//!
//! Every one is a single [`Instr::Gc`](super::code::Instr) executed out of
//! line by `exec` (as atomics and SIMD are), so the threaded handlers and the
//! dispatch of WebAssembly 2.0 code are unchanged. `head` packs the operator
//! and its type index, `imm` its second immediate (a field index, a data or
//! element segment, `array.new_fixed`'s length); operands are read from
//! consecutive slots at `base` (a `v128` takes two), and the result, if any,
//! goes to `base`.
//!
//! Allocation (`struct.new*`, `array.new*`) goes through
//! `StoreInner::gc_reserve`, which may collect: the whole value stack of this
//! activation is passed as the conservative roots (see `runtime::gc_heap`),
//! and the operands of the allocating instruction are still in it.
//!
//! Must not touch: the collector's policy and the heap's layout
//! (`runtime::gc_heap`), the type system (casts are the GC type helpers').

use wasmparser::Operator;

use crate::module::ModuleInner;
use crate::runtime::gc_heap::{array_size, Object, Storage};
use crate::runtime::store::Store;
use crate::runtime::trap::{Trap, TrapKind};

/// What an [`Instr::Gc`](super::code::Instr) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum GcOp {
    StructNew,
    StructNewDefault,
    StructGet,
    StructGetS,
    StructGetU,
    StructSet,
    ArrayNew,
    ArrayNewDefault,
    ArrayNewFixed,
    ArrayNewData,
    ArrayNewElem,
    ArrayGet,
    ArrayGetS,
    ArrayGetU,
    ArraySet,
    ArrayLen,
    ArrayFill,
    ArrayCopy,
    ArrayInitData,
    ArrayInitElem,
}

const OPS: [GcOp; 20] = [
    GcOp::StructNew,
    GcOp::StructNewDefault,
    GcOp::StructGet,
    GcOp::StructGetS,
    GcOp::StructGetU,
    GcOp::StructSet,
    GcOp::ArrayNew,
    GcOp::ArrayNewDefault,
    GcOp::ArrayNewFixed,
    GcOp::ArrayNewData,
    GcOp::ArrayNewElem,
    GcOp::ArrayGet,
    GcOp::ArrayGetS,
    GcOp::ArrayGetU,
    GcOp::ArraySet,
    GcOp::ArrayLen,
    GcOp::ArrayFill,
    GcOp::ArrayCopy,
    GcOp::ArrayInitData,
    GcOp::ArrayInitElem,
];

/// The operator, its type index and its second immediate, if `op` is one of
/// this module's.
pub(crate) fn decode(op: &Operator<'_>) -> Option<(GcOp, u32, u32)> {
    Some(match *op {
        Operator::StructNew { struct_type_index: t } => (GcOp::StructNew, t, 0),
        Operator::StructNewDefault { struct_type_index: t } => (GcOp::StructNewDefault, t, 0),
        Operator::StructGet { struct_type_index: t, field_index: f } => (GcOp::StructGet, t, f),
        Operator::StructGetS { struct_type_index: t, field_index: f } => (GcOp::StructGetS, t, f),
        Operator::StructGetU { struct_type_index: t, field_index: f } => (GcOp::StructGetU, t, f),
        Operator::StructSet { struct_type_index: t, field_index: f } => (GcOp::StructSet, t, f),
        Operator::ArrayNew { array_type_index: t } => (GcOp::ArrayNew, t, 0),
        Operator::ArrayNewDefault { array_type_index: t } => (GcOp::ArrayNewDefault, t, 0),
        Operator::ArrayNewFixed { array_type_index: t, array_size: n } => (GcOp::ArrayNewFixed, t, n),
        Operator::ArrayNewData { array_type_index: t, array_data_index: d } => (GcOp::ArrayNewData, t, d),
        Operator::ArrayNewElem { array_type_index: t, array_elem_index: e } => (GcOp::ArrayNewElem, t, e),
        Operator::ArrayGet { array_type_index: t } => (GcOp::ArrayGet, t, 0),
        Operator::ArrayGetS { array_type_index: t } => (GcOp::ArrayGetS, t, 0),
        Operator::ArrayGetU { array_type_index: t } => (GcOp::ArrayGetU, t, 0),
        Operator::ArraySet { array_type_index: t } => (GcOp::ArraySet, t, 0),
        Operator::ArrayLen => (GcOp::ArrayLen, 0, 0),
        Operator::ArrayFill { array_type_index: t } => (GcOp::ArrayFill, t, 0),
        Operator::ArrayCopy { array_type_index_dst: t, .. } => (GcOp::ArrayCopy, t, 0),
        Operator::ArrayInitData { array_type_index: t, array_data_index: d } => (GcOp::ArrayInitData, t, d),
        Operator::ArrayInitElem { array_type_index: t, array_elem_index: e } => (GcOp::ArrayInitElem, t, e),
        _ => return None,
    })
}

/// Whether `op` is a struct or array operator (the ones this module runs):
/// a function using one runs interpreted in the compiled tier.
#[cfg(carnac_native_code)]
pub(crate) fn is_gc_heap_operator(op: &Operator<'_>) -> bool {
    decode(op).is_some()
}

/// Packs an operator and its type index (validation bounds type indices far
/// below 2^24).
pub(crate) fn pack(op: GcOp, type_index: u32) -> u32 {
    debug_assert!(type_index < 1 << 24);
    op as u32 | type_index << 8
}

pub(crate) fn unpack(head: u32) -> (GcOp, u32) {
    (OPS[(head & 0xff) as usize], head >> 8)
}

/// The value of storage `s` at `stack[at..]` (two slots for a v128).
#[inline]
fn read(stack: &[u64], at: usize, s: Storage) -> u128 {
    if s == Storage::V128 {
        stack[at] as u128 | (stack[at + 1] as u128) << 64
    } else {
        stack[at] as u128
    }
}

/// Writes a value of storage `s` (unpacked: i8/i16 already extended to i32).
#[inline]
fn write(stack: &mut [u64], at: usize, s: Storage, v: u128) {
    stack[at] = v as u64;
    if s == Storage::V128 {
        stack[at + 1] = (v >> 64) as u64;
    }
}

/// Slots a value of storage `s` takes on the stack.
#[inline]
fn width(s: Storage) -> usize {
    s.cells() as usize
}

/// `at + n <= len`, without overflow.
#[inline]
fn in_bounds(at: u64, n: u64, len: u64) -> bool {
    at.checked_add(n).is_some_and(|end| end <= len)
}

/// Runs one [`Instr::Gc`](super::code::Instr) of `module` in `instance`: the
/// operands at `stack[at..]` (`at` the absolute slot of the instruction's
/// `base`), the whole `stack` being the running activation's.
pub(crate) fn execute<T>(
    store: &mut Store<T>,
    instance: u32,
    module: &ModuleInner,
    head: u32,
    imm: u32,
    at: usize,
    stack: &mut [u64],
) -> Result<(), Trap> {
    let (op, type_index) = unpack(head);
    let trap = |k: TrapKind| Err(Trap::new(k));
    match op {
        GcOp::StructNew | GcOp::StructNewDefault => {
            let layout = module.gc_layout(type_index).as_struct();
            let size = layout.size();
            let (inner, limiter) = store.inner_and_limiter();
            inner.gc_reserve(limiter, size, Some(stack))?;
            let object = if op == GcOp::StructNew {
                Object::new_struct(layout, layout.fields.iter().map(|&(s, cell)| read(stack, at + cell as usize, s)))
            } else {
                Object::new_struct(layout, std::iter::empty())
            };
            stack[at] = inner.gc_insert(object, size)?;
        }
        GcOp::StructGet | GcOp::StructGetS | GcOp::StructGetU => {
            let raw = stack[at];
            let Some(object) = store.inner.gc_heap.get(raw) else { return trap(TrapKind::NullStructReference) };
            let (s, v) = object.struct_get(imm as usize).expect("validated: a field of a struct");
            write(stack, at, s, s.extend(v, op == GcOp::StructGetS));
        }
        GcOp::StructSet => {
            let raw = stack[at];
            let Some(object) = store.inner.gc_heap.get_mut(raw) else { return trap(TrapKind::NullStructReference) };
            let (s, _) = object.struct_get(imm as usize).expect("validated: a field of a struct");
            object.struct_set(imm as usize, read(stack, at + 1, s));
        }
        GcOp::ArrayNew | GcOp::ArrayNewDefault | GcOp::ArrayNewFixed | GcOp::ArrayNewData | GcOp::ArrayNewElem => {
            let (type_id, s) = module.gc_layout(type_index).as_array();
            let w = width(s);
            // The length operand's slot, and the length.
            let len = match op {
                GcOp::ArrayNew => stack[at + w] as u32 as u64,
                GcOp::ArrayNewDefault => stack[at] as u32 as u64,
                GcOp::ArrayNewFixed => imm as u64,
                _ => stack[at + 1] as u32 as u64,
            };
            let Some(size) = array_size(s, len as usize) else { return trap(TrapKind::AllocationTooLarge) };
            // The source of `array.new_data`/`_elem` is checked before allocating.
            let offset = stack[at] as u32 as u64;
            match op {
                GcOp::ArrayNewData => {
                    let bytes = data_segment(store, instance, module, imm).len() as u64;
                    if !in_bounds(offset, len * s.bytes() as u64, bytes) {
                        return trap(TrapKind::MemoryOutOfBounds);
                    }
                }
                GcOp::ArrayNewElem => {
                    let items = store.inner.instances[instance as usize].elems[imm as usize].len() as u64;
                    if !in_bounds(offset, len, items) {
                        return trap(TrapKind::TableOutOfBounds);
                    }
                }
                _ => {}
            }
            let (inner, limiter) = store.inner_and_limiter();
            inner.gc_reserve(limiter, size, Some(stack))?;
            let len = len as usize;
            let object = match op {
                GcOp::ArrayNew => Object::new_array(type_id, s, read(stack, at, s), len)?,
                GcOp::ArrayNewDefault => Object::new_array(type_id, s, 0, len)?,
                GcOp::ArrayNewFixed => Object::array_from(type_id, s, (0..len).map(|i| read(stack, at + i * w, s)))?,
                GcOp::ArrayNewData => {
                    let mut o = Object::new_array(type_id, s, 0, len)?;
                    let start = offset as usize;
                    let bytes = &data_segment(store, instance, module, imm)[start..start + len * s.bytes()];
                    o.array_mut().expect("an array").write_bytes(0, bytes);
                    o
                }
                _ => {
                    let items = &store.inner.instances[instance as usize].elems[imm as usize];
                    let start = offset as usize;
                    Object::array_from(type_id, s, items[start..start + len].iter().map(|&r| r as u128))?
                }
            };
            stack[at] = store.inner.gc_insert(object, size)?;
        }
        GcOp::ArrayGet | GcOp::ArrayGetS | GcOp::ArrayGetU => {
            let (raw, i) = (stack[at], stack[at + 1] as u32 as usize);
            let Some(a) = store.inner.gc_heap.get(raw).and_then(Object::array) else {
                return trap(TrapKind::NullArrayReference);
            };
            if i >= a.len() {
                return trap(TrapKind::ArrayOutOfBounds);
            }
            let s = a.storage();
            write(stack, at, s, s.extend(a.get(i), op == GcOp::ArrayGetS));
        }
        GcOp::ArraySet => {
            let (raw, i) = (stack[at], stack[at + 1] as u32 as usize);
            let Some(a) = store.inner.gc_heap.get_mut(raw).and_then(Object::array_mut) else {
                return trap(TrapKind::NullArrayReference);
            };
            if i >= a.len() {
                return trap(TrapKind::ArrayOutOfBounds);
            }
            let s = a.storage();
            a.set(i, read(stack, at + 2, s));
        }
        GcOp::ArrayLen => {
            let Some(a) = store.inner.gc_heap.get(stack[at]).and_then(Object::array) else {
                return trap(TrapKind::NullArrayReference);
            };
            stack[at] = a.len() as u64;
        }
        GcOp::ArrayFill => {
            let (raw, d) = (stack[at], stack[at + 1] as u32 as u64);
            let Some(a) = store.inner.gc_heap.get_mut(raw).and_then(Object::array_mut) else {
                return trap(TrapKind::NullArrayReference);
            };
            let s = a.storage();
            let (v, n) = (read(stack, at + 2, s), stack[at + 2 + width(s)] as u32 as u64);
            if !in_bounds(d, n, a.len() as u64) {
                return trap(TrapKind::ArrayOutOfBounds);
            }
            a.fill(d as usize, n as usize, s.wrap(v));
        }
        GcOp::ArrayCopy => {
            let (dst, d) = (stack[at], stack[at + 1] as u32 as u64);
            let (src, s, n) = (stack[at + 2], stack[at + 3] as u32 as u64, stack[at + 4] as u32 as u64);
            let heap = &mut store.inner.gc_heap;
            let (Some(dl), Some(sl)) = (
                heap.get(dst).and_then(Object::array).map(|a| a.len() as u64),
                heap.get(src).and_then(Object::array).map(|a| a.len() as u64),
            ) else {
                return trap(TrapKind::NullArrayReference);
            };
            if !in_bounds(d, n, dl) || !in_bounds(s, n, sl) {
                return trap(TrapKind::ArrayOutOfBounds);
            }
            let (d, s, n) = (d as usize, s as usize, n as usize);
            if dst == src {
                heap.get_mut(dst).and_then(Object::array_mut).expect("checked above").copy_within(d, s, n);
            } else {
                let (to, from) = heap.get_two_mut(dst, src).expect("checked above");
                let (to, from) = (to.array_mut().expect("checked"), from.array().expect("checked"));
                for i in 0..n {
                    to.set(d + i, from.get(s + i));
                }
            }
        }
        GcOp::ArrayInitData | GcOp::ArrayInitElem => {
            let (raw, d) = (stack[at], stack[at + 1] as u32 as u64);
            let (s, n) = (stack[at + 2] as u32 as u64, stack[at + 3] as u32 as u64);
            let inner = &mut store.inner;
            let Some(len) = inner.gc_heap.get(raw).and_then(Object::array).map(|a| a.len() as u64) else {
                return trap(TrapKind::NullArrayReference);
            };
            if !in_bounds(d, n, len) {
                return trap(TrapKind::ArrayOutOfBounds);
            }
            let (d, start) = (d as usize, s as usize);
            if op == GcOp::ArrayInitData {
                let dropped = inner.instances[instance as usize].data_dropped[imm as usize];
                let bytes: &[u8] = if dropped { &[] } else { module.data_bytes(imm as usize) };
                let a = inner.gc_heap.get_mut(raw).and_then(Object::array_mut).expect("checked above");
                let size = a.storage().bytes() as u64;
                if !in_bounds(s, n * size, bytes.len() as u64) {
                    return trap(TrapKind::MemoryOutOfBounds);
                }
                a.write_bytes(d, &bytes[start..start + (n * size) as usize]);
            } else {
                let items = &inner.instances[instance as usize].elems[imm as usize];
                if !in_bounds(s, n, items.len() as u64) {
                    return trap(TrapKind::TableOutOfBounds);
                }
                let a = inner.gc_heap.get_mut(raw).and_then(Object::array_mut).expect("checked above");
                for (i, &r) in items[start..start + n as usize].iter().enumerate() {
                    a.set(d + i, r as u128);
                }
            }
        }
    }
    Ok(())
}

/// Data segment `index` of the instance (empty once dropped).
fn data_segment<'a, T>(store: &Store<T>, instance: u32, module: &'a ModuleInner, index: u32) -> &'a [u8] {
    if store.inner.instances[instance as usize].data_dropped[index as usize] {
        &[]
    } else {
        module.data_bytes(index as usize)
    }
}
