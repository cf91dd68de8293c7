//! The executor: runs interpreter code for one call from the host.
//!
//! Guest frames live on the executor's own value stack (a `Vec<u64>` owned by the
//! store) and frame list, never on the host stack, so guest recursion depth is
//! bounded by configuration ([`crate::Config::max_call_depth`] and the stack
//! size) and ends in a `StackExhausted` trap.
//!
//! This is the one module of the interpreter with `unsafe` code. The invariants
//! it relies on:
//! - Slot operands: the translator only emits slot indices below the function's
//!   `frame_size`, and every frame is entered only after checking
//!   `base + frame_size <= stack.len()`. `fp` is recomputed whenever the stack
//!   may have been reallocated (only on a call, which is where it grows).
//! - Code pointers: `code_start`/`ip` point into a `CompiledFunc` owned by a
//!   module that the store keeps alive (every function entity holds an `Arc` of
//!   its module) for at least as long as this call runs; once translated (a
//!   `OnceLock`), a function's code never moves or changes. Branch targets are
//!   indices inside the same code, produced by the translator.
//! - Memory: `mem_base`/`mem_len` describe memory 0 of the current instance and
//!   are refreshed after anything that may grow it (memory.grow, any call);
//!   every access checks `address + size <= mem_len` first. Every write also
//!   marks its chunk in the memory's written-chunk map (`runtime::memory`), which
//!   is what lets a pooled memory be reset without a system call.

use std::ptr;

use super::code::{CompiledFunc, Instr};
use super::ops;
use super::simd;
use crate::module::ModuleInner;
use crate::runtime::func::Caller;
use crate::runtime::memory::{mark_written_range, MemoryMut, CHUNK_MAP_OFFSET, CHUNK_SHIFT};
use crate::runtime::store::{FuncKind, Store, StoreInner};
use crate::runtime::trap::{FrameInfo, Trap, TrapKind};

/// A suspended caller frame.
struct Frame {
    module: *const ModuleInner,
    instance: u32,
    func_index: u32,
    code_start: *const Instr,
    ip: *const Instr,
    base: usize,
}

/// Memory 0 of `instance`: its base, its length, and where the length lives
/// (to re-read it cheaply after a call that may have grown the memory).
fn mem_of(s: &StoreInner, instance: u32) -> (*mut u8, usize, *const usize) {
    let inst = &s.instances[instance as usize];
    match inst.memories.first() {
        Some(&m) => {
            let m = &s.memories[m as usize];
            (m.base(), m.len(), m.len_ptr())
        }
        None => (ptr::null_mut(), 0, ptr::null()),
    }
}

fn backtrace(frames: &[Frame], module: *const ModuleInner, func_index: u32) -> Vec<FrameInfo> {
    let info = |module: *const ModuleInner, func_index: u32| {
        // SAFETY: module pointers in frames come from live `Arc<ModuleInner>`s held by the store.
        let m = unsafe { &*module };
        FrameInfo {
            module_name: m.info.name.clone(),
            func_index,
            func_name: m.info.func_name(func_index).map(str::to_string),
        }
    };
    let mut bt = vec![info(module, func_index)];
    bt.extend(frames.iter().rev().map(|f| info(f.module, f.func_index)));
    bt
}

/// Makes sure `stack` has at least `needed` slots, within `max` slots. The check
/// is inlined into every call; growing is the rare, out-of-line path.
#[inline(always)]
fn ensure_stack(stack: &mut Vec<u64>, needed: usize, max: usize) -> Result<(), TrapKind> {
    if needed > stack.len() {
        return grow_stack(stack, needed, max);
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn grow_stack(stack: &mut Vec<u64>, needed: usize, max: usize) -> Result<(), TrapKind> {
    if needed > max {
        return Err(TrapKind::StackExhausted);
    }
    let new_len = needed.max(stack.len() * 2).min(max);
    stack.resize(new_len, 0);
    Ok(())
}

/// Runs defined function `def_index` of `instance` with its arguments already in
/// `stack[0..]`; leaves the results in `stack[0..]`. With `TRACK`, stores mark the
/// memory's written-chunk map (`Config::track_memory_writes`); it is a constant
/// so that the untracked loop carries no trace of it (marking inside this loop
/// changes its register allocation: +8% instructions on store-heavy code).
pub(crate) fn run<T, const TRACK: bool>(
    store: &mut Store<T>,
    stack: &mut Vec<u64>,
    instance: u32,
    module: *const ModuleInner,
    def_index: u32,
) -> Result<(), Trap> {
    let max_depth = store.inner.engine.config().max_call_depth;
    let max_slots = store.inner.engine.config().max_stack_slots;
    let mut frames: Vec<Frame> = Vec::new();
    let mut instance = instance;
    let mut module = module;
    // SAFETY: see the module docs (code pointers).
    let mut func_index = unsafe { (*module).info.num_imported_funcs } + def_index;
    let func: &CompiledFunc = match unsafe { (*module).func_code(def_index) } {
        Ok(f) => f,
        Err(kind) => {
            let mut t = Trap::new(kind);
            t.set_backtrace(backtrace(&[], module, func_index));
            return Err(t);
        }
    };
    ensure_stack(stack, func.frame_size as usize, max_slots)?;
    stack[func.num_params as usize..(func.num_params + func.num_locals) as usize].fill(0);
    let mut base: usize = 0;
    let mut fp: *mut u64 = stack.as_mut_ptr();
    let mut code_start: *const Instr = func.code.as_ptr();
    let mut ip = code_start;
    let (mut mem_base, mut mem_len, mut mem_len_ptr) = mem_of(&store.inner, instance);
    let mut chunk_map = mem_base.wrapping_sub(CHUNK_MAP_OFFSET);

    macro_rules! trap {
        ($kind:expr) => {{
            let mut t = Trap::new($kind);
            t.set_backtrace(backtrace(&frames, module, func_index));
            return Err(t);
        }};
    }
    macro_rules! tri {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(kind) => trap!(kind),
            }
        };
    }
    // SAFETY (all slot accesses): see the module docs (slot operands).
    macro_rules! rd {
        ($s:expr) => {
            unsafe { *fp.add($s as usize) }
        };
    }
    macro_rules! wr {
        ($s:expr, $v:expr) => {{
            let v: u64 = $v;
            unsafe { *fp.add($s as usize) = v }
        }};
    }
    macro_rules! u32_ { ($s:expr) => { rd!($s) as u32 }; }
    macro_rules! i32_ { ($s:expr) => { rd!($s) as u32 as i32 }; }
    macro_rules! i64_ { ($s:expr) => { rd!($s) as i64 }; }
    macro_rules! f32_ { ($s:expr) => { f32::from_bits(rd!($s) as u32) }; }
    macro_rules! f64_ { ($s:expr) => { f64::from_bits(rd!($s)) }; }
    macro_rules! w32 { ($d:expr, $v:expr) => { wr!($d, ($v) as u32 as u64) }; }
    macro_rules! w64 { ($d:expr, $v:expr) => { wr!($d, ($v) as u64) }; }
    macro_rules! wf32 { ($d:expr, $v:expr) => { wr!($d, f32::to_bits($v) as u64) }; }
    macro_rules! wf64 { ($d:expr, $v:expr) => { wr!($d, f64::to_bits($v)) }; }
    macro_rules! wbool { ($d:expr, $v:expr) => { wr!($d, ($v) as u64) }; }
    macro_rules! jump {
        ($target:expr) => {
            // SAFETY: branch targets are indices into the current function's code,
            // produced by the translator (see the module docs).
            ip = unsafe { code_start.add($target as usize) }
        };
    }
    macro_rules! refresh_mem {
        () => {{
            let (b, l, p) = mem_of(&store.inner, instance);
            mem_base = b;
            chunk_map = b.wrapping_sub(CHUNK_MAP_OFFSET);
            mem_len = l;
            mem_len_ptr = p;
        }};
    }
    macro_rules! effective {
        ($addr:expr, $offset:expr, $n:expr) => {{
            let ea = rd!($addr) as u32 as usize + $offset as usize;
            if ea + $n > mem_len {
                trap!(TrapKind::MemoryOutOfBounds);
            }
            ea
        }};
    }
    /// A load from `(b + i) mod 2^32 + offset`, `bi` packing the slots of b and i.
    macro_rules! load_idx {
        ($dst:expr, $bi:expr, $offset:expr, $n:literal, |$b:ident| $conv:expr) => {{
            let ea = u32_!($bi & 0xffff).wrapping_add(u32_!($bi >> 16)) as usize + $offset as usize;
            if ea + $n > mem_len {
                trap!(TrapKind::MemoryOutOfBounds);
            }
            // SAFETY: ea + n <= mem_len, checked just above.
            let $b: [u8; $n] = unsafe { ptr::read_unaligned(mem_base.add(ea) as *const [u8; $n]) };
            wr!($dst, $conv);
        }};
    }
    macro_rules! load {
        ($dst:expr, $addr:expr, $offset:expr, $n:literal, |$b:ident| $conv:expr) => {{
            let ea = effective!($addr, $offset, $n);
            // SAFETY: ea + n <= mem_len, checked just above.
            let $b: [u8; $n] = unsafe { ptr::read_unaligned(mem_base.add(ea) as *const [u8; $n]) };
            wr!($dst, $conv);
        }};
    }
    macro_rules! store {
        ($addr:expr, $value:expr, $offset:expr, $n:literal, |$v:ident| $bytes:expr) => {{
            let ea = effective!($addr, $offset, $n);
            let $v = rd!($value);
            let bytes: [u8; $n] = $bytes;
            // SAFETY: ea + n <= mem_len, checked just above; every mapped memory has
            // its chunk map CHUNK_MAP_OFFSET below its base (`runtime::memory`), one
            // byte per 4 KiB, so ea's byte is in it.
            unsafe {
                if TRACK {
                    *chunk_map.add(ea >> CHUNK_SHIFT) = 1;
                }
                ptr::write_unaligned(mem_base.add(ea) as *mut [u8; $n], bytes);
            }
        }};
    }
    /// Enters a wasm function or calls a host function whose arguments start at
    /// frame slot `$base`; `$fidx` is a store function index.
    macro_rules! call_store_func {
        ($fidx:expr, $base:expr) => {{
            let fidx = $fidx as usize;
            let new_base = base + $base as usize;
            let entity = &store.inner.funcs[fidx];
            match &entity.kind {
                FuncKind::Wasm { instance: callee_instance, def_index } => {
                    let callee_instance = *callee_instance;
                    let callee_module: *const ModuleInner =
                        &*store.inner.instances[callee_instance as usize].module;
                    let def_index = *def_index;
                    enter!(callee_module, callee_instance, def_index, new_base);
                    refresh_mem!();
                }
                FuncKind::Host { index, slots } => {
                    let host = store.hosts[*index as usize].func.clone();
                    let n = *slots as usize;
                    tri!(ensure_stack(stack, new_base + n, max_slots));
                    let caller = Caller { store: &mut *store, instance: Some(instance) };
                    if let Err(mut t) = host(caller, &mut stack[new_base..new_base + n]) {
                        if !t.has_backtrace() {
                            t.set_backtrace(backtrace(&frames, module, func_index));
                        }
                        return Err(t);
                    }
                    fp = unsafe { stack.as_mut_ptr().add(base) };
                    refresh_mem!();
                }
            }
        }};
    }
    macro_rules! enter {
        ($module:expr, $instance:expr, $def:expr, $new_base:expr) => {{
            if frames.len() >= max_depth {
                trap!(TrapKind::StackExhausted);
            }
            let callee_module: *const ModuleInner = $module;
            // SAFETY: see the module docs (code pointers).
            let callee: &CompiledFunc = tri!(unsafe { (*callee_module).func_code($def) });
            let new_base: usize = $new_base;
            tri!(ensure_stack(stack, new_base + callee.frame_size as usize, max_slots));
            if callee.num_locals > 0 {
                let locals_start = new_base + callee.num_params as usize;
                // SAFETY: ensure_stack made new_base + frame_size <= stack.len(), and the
                // frame holds params + locals + operand slots.
                unsafe {
                    std::ptr::write_bytes(stack.as_mut_ptr().add(locals_start), 0, callee.num_locals as usize)
                };
            }
            frames.push(Frame { module, instance, func_index, code_start, ip, base });
            module = callee_module;
            instance = $instance;
            func_index = unsafe { (*callee_module).info.num_imported_funcs } + $def;
            base = new_base;
            fp = unsafe { stack.as_mut_ptr().add(base) };
            code_start = callee.code.as_ptr();
            ip = code_start;
        }};
    }

    macro_rules! do_return {
        () => {
            match frames.pop() {
                None => return Ok(()),
                Some(f) => {
                    let same_instance = f.instance == instance;
                    module = f.module;
                    instance = f.instance;
                    func_index = f.func_index;
                    code_start = f.code_start;
                    ip = f.ip;
                    base = f.base;
                    fp = unsafe { stack.as_mut_ptr().add(base) };
                    if same_instance {
                        // The callee may have grown the (shared) memory.
                        // SAFETY: `mem_len_ptr` points at the length of this instance's
                        // memory 0 inside `store.inner.memories`. That vector only
                        // reallocates when a memory is created, which only host code can
                        // do, and every return from host code refreshes the pointer.
                        mem_len = if mem_len_ptr.is_null() { 0 } else { unsafe { *mem_len_ptr } };
                    } else {
                        refresh_mem!();
                    }
                }
            }
        };
    }

    loop {
        // SAFETY: ip stays within the current function's code (see the module docs):
        // every function ends in `Return`, and branches target valid indices.
        let instr = unsafe { *ip };
        ip = unsafe { ip.add(1) };
        match instr {
            Instr::Unreachable => trap!(TrapKind::Unreachable),
            Instr::ConsumeFuel { amount } => {
                let fuel = &mut store.inner.fuel;
                if *fuel < amount as u64 {
                    *fuel = 0;
                    trap!(TrapKind::OutOfFuel);
                }
                *fuel -= amount as u64;
            }
            Instr::CheckInterrupt => {
                if store.inner.interrupt.load(std::sync::atomic::Ordering::Relaxed) {
                    trap!(TrapKind::Interrupted);
                }
            }
            Instr::Br { target } => jump!(target),
            Instr::BrIfNez { cond, target } => {
                if u32_!(cond) != 0 {
                    jump!(target);
                }
            }
            Instr::BrIfEqz { cond, target } => {
                if u32_!(cond) == 0 {
                    jump!(target);
                }
            }
            Instr::BrTable { index, len } => {
                let i = u32_!(index).min(len);
                ip = unsafe { ip.add(i as usize) };
            }
            Instr::Return => do_return!(),
            Instr::ReturnSlot { src } => {
                wr!(0, rd!(src));
                do_return!();
            }
            Instr::CallInternal { def_index, base: b } => {
                enter!(module, instance, def_index, base + b as usize);
            }
            Instr::Call { func, base: b } => {
                let fidx = store.inner.instances[instance as usize].funcs[func as usize];
                call_store_func!(fidx, b);
            }
            Instr::CallIndirect { type_index, table, base: b } => {
                // SAFETY: see the module docs (code pointers); the module outlives the call.
                let m = unsafe { &*module };
                let np = m.info.types[type_index as usize].param_slots() as u32;
                let index = u32_!(b + np) as usize;
                let t = store.inner.instances[instance as usize].tables[table as usize];
                let elems = &store.inner.tables[t as usize].elems;
                let Some(&raw) = elems.get(index) else { trap!(TrapKind::TableOutOfBounds) };
                if raw == 0 {
                    trap!(TrapKind::IndirectCallToNull);
                }
                let fidx = (raw - 1) as u32;
                if store.inner.funcs[fidx as usize].type_id != m.info.type_ids[type_index as usize] {
                    trap!(TrapKind::BadSignature);
                }
                call_store_func!(fidx, b);
            }
            Instr::Copy { dst, src } => wr!(dst, rd!(src)),
            Instr::CopyPair { first, second } => {
                wr!(first & 0xffff, rd!(first >> 16));
                wr!(second & 0xffff, rd!(second >> 16));
            }
            Instr::Copy2 { dst, src } => {
                let (lo, hi) = (rd!(src), rd!(src + 1));
                wr!(dst, lo);
                wr!(dst + 1, hi);
            }
            Instr::Const { dst, value } => wr!(dst, value),
            Instr::SelectTo { dst, cond, src } => {
                if u32_!(cond) == 0 {
                    wr!(dst, rd!(src));
                }
            }
            Instr::Select { dst, cond, ab } => {
                let pick = if u32_!(cond) != 0 { ab & 0xffff } else { ab >> 16 };
                wr!(dst, rd!(pick));
            }
            Instr::SelectTo2 { dst, cond, src } => {
                if u32_!(cond) == 0 {
                    wr!(dst, rd!(src));
                    wr!(dst + 1, rd!(src + 1));
                }
            }
            Instr::GlobalGet2 { dst, global } => {
                let g = store.inner.instances[instance as usize].globals[global as usize];
                let v = store.inner.globals[g as usize].value;
                wr!(dst, v as u64);
                wr!(dst + 1, (v >> 64) as u64);
            }
            Instr::GlobalSet2 { src, global } => {
                let g = store.inner.instances[instance as usize].globals[global as usize];
                store.inner.globals[g as usize].value = rd!(src) as u128 | (rd!(src + 1) as u128) << 64;
            }
            Instr::Simd { head, b, c } => {
                let (op, lane, a) = super::code::unpack_simd_index(head);
                // SAFETY: the frame starts at `fp` and every slot up to the end of the
                // value stack is initialised memory owned by `stack`; no other reference
                // into the stack is live while the slice is used. The memory slice covers
                // exactly the accessible bytes of memory 0 (see the module docs), and its
                // writes mark the chunk map below mem_base; with no memory, an empty view.
                let frame = unsafe { std::slice::from_raw_parts_mut(fp, stack.len() - base) };
                let mut mem = if mem_base.is_null() {
                    unsafe { MemoryMut::from_raw(ptr::NonNull::dangling().as_ptr(), 0) }
                } else {
                    unsafe { MemoryMut::from_raw(mem_base, mem_len) }
                };
                tri!(simd::HANDLERS[op](lane, a, b, c, frame, &mut mem));
            }
            Instr::GlobalGet { dst, global } => {
                let g = store.inner.instances[instance as usize].globals[global as usize];
                wr!(dst, store.inner.globals[g as usize].value as u64);
            }
            Instr::GlobalSet { src, global } => {
                let g = store.inner.instances[instance as usize].globals[global as usize];
                store.inner.globals[g as usize].value = rd!(src) as u128;
            }
            Instr::MemorySize { dst } => w32!(dst, mem_len / crate::runtime::memory::WASM_PAGE),
            Instr::MemoryGrow { dst, delta } => {
                let m = store.inner.instances[instance as usize].memories[0];
                let r = store.inner.grow_memory(m, u32_!(delta) as u64);
                w32!(dst, r.map_or(u32::MAX, |old| old as u32));
                refresh_mem!();
            }
            Instr::MemoryFill { base: b } => {
                let (d, val, n) = (u32_!(b) as usize, rd!(b + 1) as u8, u32_!(b + 2) as usize);
                if d + n > mem_len {
                    trap!(TrapKind::MemoryOutOfBounds);
                }
                // SAFETY: d + n <= mem_len.
                unsafe {
                    ptr::write_bytes(mem_base.add(d), val, n);
                    if TRACK {
                        mark_written_range(mem_base, d, n);
                    }
                }
            }
            Instr::MemoryCopy { base: b } => {
                let (d, s, n) = (u32_!(b) as usize, u32_!(b + 1) as usize, u32_!(b + 2) as usize);
                if d + n > mem_len || s + n > mem_len {
                    trap!(TrapKind::MemoryOutOfBounds);
                }
                // SAFETY: both ranges are inside the memory; `copy` allows overlap.
                unsafe {
                    ptr::copy(mem_base.add(s), mem_base.add(d), n);
                    if TRACK {
                        mark_written_range(mem_base, d, n);
                    }
                }
            }
            Instr::MemoryInit { segment, base: b } => {
                let (d, s, n) = (u32_!(b) as usize, u32_!(b + 1) as usize, u32_!(b + 2) as usize);
                let m = unsafe { &*module };
                let inst = &store.inner.instances[instance as usize];
                let bytes: &[u8] = if inst.data_dropped[segment as usize] {
                    &[]
                } else {
                    &m.info.datas[segment as usize].bytes
                };
                if s + n > bytes.len() || d + n > mem_len {
                    trap!(TrapKind::MemoryOutOfBounds);
                }
                // SAFETY: the source is inside the segment, the destination inside memory;
                // they cannot overlap (the segment is module data, not linear memory).
                unsafe {
                    ptr::copy_nonoverlapping(bytes.as_ptr().add(s), mem_base.add(d), n);
                    if TRACK {
                        mark_written_range(mem_base, d, n);
                    }
                }
            }
            Instr::DataDrop { segment } => {
                store.inner.instances[instance as usize].data_dropped[segment as usize] = true;
            }
            Instr::TableGet { dst, table, index } => {
                let t = store.inner.instances[instance as usize].tables[table as usize];
                let Some(&v) = store.inner.tables[t as usize].elems.get(u32_!(index) as usize) else {
                    trap!(TrapKind::TableOutOfBounds)
                };
                wr!(dst, v);
            }
            Instr::TableSet { table, index, value } => {
                let t = store.inner.instances[instance as usize].tables[table as usize];
                let v = rd!(value);
                let Some(e) = store.inner.tables[t as usize].elems.get_mut(u32_!(index) as usize) else {
                    trap!(TrapKind::TableOutOfBounds)
                };
                *e = v;
            }
            Instr::TableSize { dst, table } => {
                let t = store.inner.instances[instance as usize].tables[table as usize];
                w32!(dst, store.inner.tables[t as usize].elems.len());
            }
            Instr::TableGrow { table, base: b } => {
                let t = store.inner.instances[instance as usize].tables[table as usize];
                let (init, delta) = (rd!(b), u32_!(b + 1) as u64);
                let r = store.inner.grow_table(t, delta, init);
                w32!(b, r.map_or(u32::MAX, |old| old as u32));
            }
            Instr::TableFill { table, base: b } => {
                let t = store.inner.instances[instance as usize].tables[table as usize];
                let (i, val, n) = (u32_!(b) as usize, rd!(b + 1), u32_!(b + 2) as usize);
                let elems = &mut store.inner.tables[t as usize].elems;
                if i + n > elems.len() {
                    trap!(TrapKind::TableOutOfBounds);
                }
                elems[i..i + n].fill(val);
            }
            Instr::TableCopy { dst_table, src_table, base: b } => {
                let inst = &store.inner.instances[instance as usize];
                let (td, ts) = (inst.tables[dst_table as usize], inst.tables[src_table as usize]);
                let (d, s, n) = (u32_!(b) as usize, u32_!(b + 1) as usize, u32_!(b + 2) as usize);
                let tables = &mut store.inner.tables;
                if d + n > tables[td as usize].elems.len() || s + n > tables[ts as usize].elems.len() {
                    trap!(TrapKind::TableOutOfBounds);
                }
                if td == ts {
                    tables[td as usize].elems.copy_within(s..s + n, d);
                } else {
                    let (src, dst) = if ts < td {
                        let (a, b) = tables.split_at_mut(td as usize);
                        (&a[ts as usize], &mut b[0])
                    } else {
                        let (a, b) = tables.split_at_mut(ts as usize);
                        (&b[0], &mut a[td as usize])
                    };
                    dst.elems[d..d + n].copy_from_slice(&src.elems[s..s + n]);
                }
            }
            Instr::TableInit { table, segment, base: b } => {
                let (d, s, n) = (u32_!(b) as usize, u32_!(b + 1) as usize, u32_!(b + 2) as usize);
                let inner = &mut store.inner;
                let inst = &inner.instances[instance as usize];
                let t = inst.tables[table as usize];
                let seg = &inst.elems[segment as usize];
                let elems = &mut inner.tables[t as usize].elems;
                if s + n > seg.len() || d + n > elems.len() {
                    trap!(TrapKind::TableOutOfBounds);
                }
                elems[d..d + n].copy_from_slice(&seg[s..s + n]);
            }
            Instr::ElemDrop { segment } => {
                store.inner.instances[instance as usize].elems[segment as usize] = Box::new([]);
            }
            Instr::RefFunc { dst, func } => {
                let f = store.inner.instances[instance as usize].funcs[func as usize];
                wr!(dst, f as u64 + 1);
            }

            // ---- integer ----
            Instr::I32Eqz { dst, src } => wbool!(dst, u32_!(src) == 0),
            Instr::I32Clz { dst, src } => w32!(dst, u32_!(src).leading_zeros()),
            Instr::I32Ctz { dst, src } => w32!(dst, u32_!(src).trailing_zeros()),
            Instr::I32Popcnt { dst, src } => w32!(dst, u32_!(src).count_ones()),
            Instr::I32Extend8S { dst, src } => w32!(dst, rd!(src) as i8 as i32),
            Instr::I32Extend16S { dst, src } => w32!(dst, rd!(src) as i16 as i32),
            Instr::I64Eqz { dst, src } => wbool!(dst, rd!(src) == 0),
            Instr::I64Clz { dst, src } => w64!(dst, rd!(src).leading_zeros()),
            Instr::I64Ctz { dst, src } => w64!(dst, rd!(src).trailing_zeros()),
            Instr::I64Popcnt { dst, src } => w64!(dst, rd!(src).count_ones()),
            Instr::I64Extend8S { dst, src } => w64!(dst, rd!(src) as i8 as i64),
            Instr::I64Extend16S { dst, src } => w64!(dst, rd!(src) as i16 as i64),
            Instr::I64Extend32S { dst, src } => w64!(dst, rd!(src) as i32 as i64),
            Instr::I64ExtendI32S { dst, src } => w64!(dst, i32_!(src) as i64),
            Instr::I64ExtendI32U { dst, src } => w64!(dst, u32_!(src)),

            Instr::I32Eq { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) == u32_!(rhs)),
            Instr::I32Ne { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) != u32_!(rhs)),
            Instr::I32LtS { dst, lhs, rhs } => wbool!(dst, i32_!(lhs) < i32_!(rhs)),
            Instr::I32LtU { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) < u32_!(rhs)),
            Instr::I32GtS { dst, lhs, rhs } => wbool!(dst, i32_!(lhs) > i32_!(rhs)),
            Instr::I32GtU { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) > u32_!(rhs)),
            Instr::I32LeS { dst, lhs, rhs } => wbool!(dst, i32_!(lhs) <= i32_!(rhs)),
            Instr::I32LeU { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) <= u32_!(rhs)),
            Instr::I32GeS { dst, lhs, rhs } => wbool!(dst, i32_!(lhs) >= i32_!(rhs)),
            Instr::I32GeU { dst, lhs, rhs } => wbool!(dst, u32_!(lhs) >= u32_!(rhs)),
            Instr::I64Eq { dst, lhs, rhs } => wbool!(dst, rd!(lhs) == rd!(rhs)),
            Instr::I64Ne { dst, lhs, rhs } => wbool!(dst, rd!(lhs) != rd!(rhs)),
            Instr::I64LtS { dst, lhs, rhs } => wbool!(dst, i64_!(lhs) < i64_!(rhs)),
            Instr::I64LtU { dst, lhs, rhs } => wbool!(dst, rd!(lhs) < rd!(rhs)),
            Instr::I64GtS { dst, lhs, rhs } => wbool!(dst, i64_!(lhs) > i64_!(rhs)),
            Instr::I64GtU { dst, lhs, rhs } => wbool!(dst, rd!(lhs) > rd!(rhs)),
            Instr::I64LeS { dst, lhs, rhs } => wbool!(dst, i64_!(lhs) <= i64_!(rhs)),
            Instr::I64LeU { dst, lhs, rhs } => wbool!(dst, rd!(lhs) <= rd!(rhs)),
            Instr::I64GeS { dst, lhs, rhs } => wbool!(dst, i64_!(lhs) >= i64_!(rhs)),
            Instr::I64GeU { dst, lhs, rhs } => wbool!(dst, rd!(lhs) >= rd!(rhs)),

            Instr::I32Add { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_add(u32_!(rhs))),
            Instr::I32Sub { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_sub(u32_!(rhs))),
            Instr::I32Mul { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_mul(u32_!(rhs))),
            Instr::I32DivS { dst, lhs, rhs } => {
                let (a, b) = (i32_!(lhs), i32_!(rhs));
                if b == 0 {
                    trap!(TrapKind::IntegerDivisionByZero);
                }
                if a == i32::MIN && b == -1 {
                    trap!(TrapKind::IntegerOverflow);
                }
                w32!(dst, a / b);
            }
            Instr::I32DivU { dst, lhs, rhs } => {
                let (a, b) = (u32_!(lhs), u32_!(rhs));
                if b == 0 {
                    trap!(TrapKind::IntegerDivisionByZero);
                }
                w32!(dst, a / b);
            }
            Instr::I32RemS { dst, lhs, rhs } => {
                let (a, b) = (i32_!(lhs), i32_!(rhs));
                if b == 0 {
                    trap!(TrapKind::IntegerDivisionByZero);
                }
                w32!(dst, a.wrapping_rem(b));
            }
            Instr::I32RemU { dst, lhs, rhs } => {
                let (a, b) = (u32_!(lhs), u32_!(rhs));
                if b == 0 {
                    trap!(TrapKind::IntegerDivisionByZero);
                }
                w32!(dst, a % b);
            }
            Instr::I32And { dst, lhs, rhs } => w32!(dst, u32_!(lhs) & u32_!(rhs)),
            Instr::I32Or { dst, lhs, rhs } => w32!(dst, u32_!(lhs) | u32_!(rhs)),
            Instr::I32Xor { dst, lhs, rhs } => w32!(dst, u32_!(lhs) ^ u32_!(rhs)),
            Instr::I32Shl { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_shl(u32_!(rhs))),
            Instr::I32ShrS { dst, lhs, rhs } => w32!(dst, i32_!(lhs).wrapping_shr(u32_!(rhs))),
            Instr::I32ShrU { dst, lhs, rhs } => w32!(dst, u32_!(lhs).wrapping_shr(u32_!(rhs))),
            Instr::I32Rotl { dst, lhs, rhs } => w32!(dst, u32_!(lhs).rotate_left(u32_!(rhs) % 32)),
            Instr::I32Rotr { dst, lhs, rhs } => w32!(dst, u32_!(lhs).rotate_right(u32_!(rhs) % 32)),

            Instr::I64Add { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_add(rd!(rhs))),
            Instr::I64Sub { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_sub(rd!(rhs))),
            Instr::I64Mul { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_mul(rd!(rhs))),
            Instr::I64DivS { dst, lhs, rhs } => {
                let (a, b) = (i64_!(lhs), i64_!(rhs));
                if b == 0 {
                    trap!(TrapKind::IntegerDivisionByZero);
                }
                if a == i64::MIN && b == -1 {
                    trap!(TrapKind::IntegerOverflow);
                }
                w64!(dst, a / b);
            }
            Instr::I64DivU { dst, lhs, rhs } => {
                let (a, b) = (rd!(lhs), rd!(rhs));
                if b == 0 {
                    trap!(TrapKind::IntegerDivisionByZero);
                }
                w64!(dst, a / b);
            }
            Instr::I64RemS { dst, lhs, rhs } => {
                let (a, b) = (i64_!(lhs), i64_!(rhs));
                if b == 0 {
                    trap!(TrapKind::IntegerDivisionByZero);
                }
                w64!(dst, a.wrapping_rem(b));
            }
            Instr::I64RemU { dst, lhs, rhs } => {
                let (a, b) = (rd!(lhs), rd!(rhs));
                if b == 0 {
                    trap!(TrapKind::IntegerDivisionByZero);
                }
                w64!(dst, a % b);
            }
            Instr::I64And { dst, lhs, rhs } => w64!(dst, rd!(lhs) & rd!(rhs)),
            Instr::I64Or { dst, lhs, rhs } => w64!(dst, rd!(lhs) | rd!(rhs)),
            Instr::I64Xor { dst, lhs, rhs } => w64!(dst, rd!(lhs) ^ rd!(rhs)),
            Instr::I64Shl { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_shl(rd!(rhs) as u32)),
            Instr::I64ShrS { dst, lhs, rhs } => w64!(dst, i64_!(lhs).wrapping_shr(rd!(rhs) as u32)),
            Instr::I64ShrU { dst, lhs, rhs } => w64!(dst, rd!(lhs).wrapping_shr(rd!(rhs) as u32)),
            Instr::I64Rotl { dst, lhs, rhs } => w64!(dst, rd!(lhs).rotate_left((rd!(rhs) % 64) as u32)),
            Instr::I64Rotr { dst, lhs, rhs } => w64!(dst, rd!(lhs).rotate_right((rd!(rhs) % 64) as u32)),

            // ---- float ----
            Instr::F32Abs { dst, src } => wr!(dst, rd!(src) & 0x7fff_ffff),
            Instr::F32Neg { dst, src } => wr!(dst, (rd!(src) ^ 0x8000_0000) & 0xffff_ffff),
            Instr::F32Ceil { dst, src } => wf32!(dst, ops::f32_ceil(f32_!(src))),
            Instr::F32Floor { dst, src } => wf32!(dst, ops::f32_floor(f32_!(src))),
            Instr::F32Trunc { dst, src } => wf32!(dst, ops::f32_trunc(f32_!(src))),
            Instr::F32Nearest { dst, src } => wf32!(dst, ops::f32_nearest(f32_!(src))),
            Instr::F32Sqrt { dst, src } => wf32!(dst, f32_!(src).sqrt()),
            Instr::F64Abs { dst, src } => wr!(dst, rd!(src) & 0x7fff_ffff_ffff_ffff),
            Instr::F64Neg { dst, src } => wr!(dst, rd!(src) ^ 0x8000_0000_0000_0000),
            Instr::F64Ceil { dst, src } => wf64!(dst, ops::f64_ceil(f64_!(src))),
            Instr::F64Floor { dst, src } => wf64!(dst, ops::f64_floor(f64_!(src))),
            Instr::F64Trunc { dst, src } => wf64!(dst, ops::f64_trunc(f64_!(src))),
            Instr::F64Nearest { dst, src } => wf64!(dst, ops::f64_nearest(f64_!(src))),
            Instr::F64Sqrt { dst, src } => wf64!(dst, f64_!(src).sqrt()),
            Instr::F32Eq { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) == f32_!(rhs)),
            Instr::F32Ne { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) != f32_!(rhs)),
            Instr::F32Lt { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) < f32_!(rhs)),
            Instr::F32Gt { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) > f32_!(rhs)),
            Instr::F32Le { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) <= f32_!(rhs)),
            Instr::F32Ge { dst, lhs, rhs } => wbool!(dst, f32_!(lhs) >= f32_!(rhs)),
            Instr::F64Eq { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) == f64_!(rhs)),
            Instr::F64Ne { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) != f64_!(rhs)),
            Instr::F64Lt { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) < f64_!(rhs)),
            Instr::F64Gt { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) > f64_!(rhs)),
            Instr::F64Le { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) <= f64_!(rhs)),
            Instr::F64Ge { dst, lhs, rhs } => wbool!(dst, f64_!(lhs) >= f64_!(rhs)),
            Instr::F32Add { dst, lhs, rhs } => wf32!(dst, f32_!(lhs) + f32_!(rhs)),
            Instr::F32Sub { dst, lhs, rhs } => wf32!(dst, f32_!(lhs) - f32_!(rhs)),
            Instr::F32Mul { dst, lhs, rhs } => wf32!(dst, f32_!(lhs) * f32_!(rhs)),
            Instr::F32Div { dst, lhs, rhs } => wf32!(dst, f32_!(lhs) / f32_!(rhs)),
            Instr::F32Min { dst, lhs, rhs } => wf32!(dst, ops::f32_min(f32_!(lhs), f32_!(rhs))),
            Instr::F32Max { dst, lhs, rhs } => wf32!(dst, ops::f32_max(f32_!(lhs), f32_!(rhs))),
            Instr::F32Copysign { dst, lhs, rhs } => {
                wr!(dst, (rd!(lhs) & 0x7fff_ffff) | (rd!(rhs) & 0x8000_0000))
            }
            Instr::F64Add { dst, lhs, rhs } => wf64!(dst, f64_!(lhs) + f64_!(rhs)),
            Instr::F64MulAdd { dst, ab, c } => wf64!(dst, f64_!(ab & 0xffff) * f64_!(ab >> 16) + f64_!(c)),
            Instr::F64MulSub { dst, ab, c } => wf64!(dst, f64_!(ab & 0xffff) * f64_!(ab >> 16) - f64_!(c)),
            Instr::F64AddK { ds, k } => wf64!(ds & 0xffff, f64_!(ds >> 16) + f64::from_bits(k)),
            Instr::F64SubK { ds, k } => wf64!(ds & 0xffff, f64_!(ds >> 16) - f64::from_bits(k)),
            Instr::F64KSub { ds, k } => wf64!(ds & 0xffff, f64::from_bits(k) - f64_!(ds >> 16)),
            Instr::F64MulK { ds, k } => wf64!(ds & 0xffff, f64_!(ds >> 16) * f64::from_bits(k)),
            Instr::F64DivK { ds, k } => wf64!(ds & 0xffff, f64_!(ds >> 16) / f64::from_bits(k)),
            Instr::F64KDiv { ds, k } => wf64!(ds & 0xffff, f64::from_bits(k) / f64_!(ds >> 16)),
            Instr::F64SubMul { dst, ab, c } => wf64!(dst, f64_!(c) - f64_!(ab & 0xffff) * f64_!(ab >> 16)),
            Instr::F64Sub { dst, lhs, rhs } => wf64!(dst, f64_!(lhs) - f64_!(rhs)),
            Instr::F64Mul { dst, lhs, rhs } => wf64!(dst, f64_!(lhs) * f64_!(rhs)),
            Instr::F64Div { dst, lhs, rhs } => wf64!(dst, f64_!(lhs) / f64_!(rhs)),
            Instr::F64Min { dst, lhs, rhs } => wf64!(dst, ops::f64_min(f64_!(lhs), f64_!(rhs))),
            Instr::F64Max { dst, lhs, rhs } => wf64!(dst, ops::f64_max(f64_!(lhs), f64_!(rhs))),
            Instr::F64Copysign { dst, lhs, rhs } => wr!(
                dst,
                (rd!(lhs) & 0x7fff_ffff_ffff_ffff) | (rd!(rhs) & 0x8000_0000_0000_0000)
            ),

            // ---- conversions ----
            Instr::I32TruncF32S { dst, src } => w32!(dst, tri!(ops::i32_trunc_f32_s(f32_!(src)))),
            Instr::I32TruncF32U { dst, src } => w32!(dst, tri!(ops::i32_trunc_f32_u(f32_!(src)))),
            Instr::I32TruncF64S { dst, src } => w32!(dst, tri!(ops::i32_trunc_f64_s(f64_!(src)))),
            Instr::I32TruncF64U { dst, src } => w32!(dst, tri!(ops::i32_trunc_f64_u(f64_!(src)))),
            Instr::I64TruncF32S { dst, src } => w64!(dst, tri!(ops::i64_trunc_f32_s(f32_!(src)))),
            Instr::I64TruncF32U { dst, src } => w64!(dst, tri!(ops::i64_trunc_f32_u(f32_!(src)))),
            Instr::I64TruncF64S { dst, src } => w64!(dst, tri!(ops::i64_trunc_f64_s(f64_!(src)))),
            Instr::I64TruncF64U { dst, src } => w64!(dst, tri!(ops::i64_trunc_f64_u(f64_!(src)))),
            // Rust's float-to-int `as` saturates and maps NaN to 0: exactly trunc_sat.
            Instr::I32TruncSatF32S { dst, src } => w32!(dst, f32_!(src) as i32),
            Instr::I32TruncSatF32U { dst, src } => w32!(dst, f32_!(src) as u32),
            Instr::I32TruncSatF64S { dst, src } => w32!(dst, f64_!(src) as i32),
            Instr::I32TruncSatF64U { dst, src } => w32!(dst, f64_!(src) as u32),
            Instr::I64TruncSatF32S { dst, src } => w64!(dst, f32_!(src) as i64),
            Instr::I64TruncSatF32U { dst, src } => w64!(dst, f32_!(src) as u64),
            Instr::I64TruncSatF64S { dst, src } => w64!(dst, f64_!(src) as i64),
            Instr::I64TruncSatF64U { dst, src } => w64!(dst, f64_!(src) as u64),
            Instr::F32ConvertI32S { dst, src } => wf32!(dst, i32_!(src) as f32),
            Instr::F32ConvertI32U { dst, src } => wf32!(dst, u32_!(src) as f32),
            Instr::F32ConvertI64S { dst, src } => wf32!(dst, i64_!(src) as f32),
            Instr::F32ConvertI64U { dst, src } => wf32!(dst, rd!(src) as f32),
            Instr::F32DemoteF64 { dst, src } => wf32!(dst, f64_!(src) as f32),
            Instr::F64ConvertI32S { dst, src } => wf64!(dst, i32_!(src) as f64),
            Instr::F64ConvertI32U { dst, src } => wf64!(dst, u32_!(src) as f64),
            Instr::F64ConvertI64S { dst, src } => wf64!(dst, i64_!(src) as f64),
            Instr::F64ConvertI64U { dst, src } => wf64!(dst, rd!(src) as f64),
            Instr::F64PromoteF32 { dst, src } => wf64!(dst, f32_!(src) as f64),

            // ---- immediate forms and fused compare-and-branch (see code::for_each_imm) ----
            Instr::I32AddImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_add(imm as u32)),
            Instr::I32AddImm2 { first, second, imms } => {
                w32!(first & 0xffff, u32_!(first >> 16).wrapping_add(imms as i16 as u32));
                w32!(second & 0xffff, u32_!(second >> 16).wrapping_add((imms >> 16) as i16 as u32));
            }
            Instr::I32SubImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_sub(imm as u32)),
            Instr::I32MulImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_mul(imm as u32)),
            Instr::I32AndImm { dst, lhs, imm } => w32!(dst, u32_!(lhs) & (imm as u32)),
            Instr::I32OrImm { dst, lhs, imm } => w32!(dst, u32_!(lhs) | (imm as u32)),
            Instr::I32XorImm { dst, lhs, imm } => w32!(dst, u32_!(lhs) ^ (imm as u32)),
            Instr::I32ShlImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_shl(imm as u32)),
            Instr::I32ShrSImm { dst, lhs, imm } => w32!(dst, i32_!(lhs).wrapping_shr(imm as u32)),
            Instr::I32ShrUImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).wrapping_shr(imm as u32)),
            Instr::I32RotlImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).rotate_left(imm as u32 % 32)),
            Instr::I32RotrImm { dst, lhs, imm } => w32!(dst, u32_!(lhs).rotate_right(imm as u32 % 32)),
            Instr::I64AddImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_add(imm as i64 as u64)),
            Instr::I64SubImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_sub(imm as i64 as u64)),
            Instr::I64MulImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_mul(imm as i64 as u64)),
            Instr::I64AndImm { dst, lhs, imm } => w64!(dst, rd!(lhs) & (imm as i64 as u64)),
            Instr::I64OrImm { dst, lhs, imm } => w64!(dst, rd!(lhs) | (imm as i64 as u64)),
            Instr::I64XorImm { dst, lhs, imm } => w64!(dst, rd!(lhs) ^ (imm as i64 as u64)),
            Instr::I64ShlImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_shl(imm as u32)),
            Instr::I64ShrSImm { dst, lhs, imm } => w64!(dst, i64_!(lhs).wrapping_shr(imm as u32)),
            Instr::I64ShrUImm { dst, lhs, imm } => w64!(dst, rd!(lhs).wrapping_shr(imm as u32)),
            Instr::I64RotlImm { dst, lhs, imm } => w64!(dst, rd!(lhs).rotate_left(imm as u32 % 64)),
            Instr::I64RotrImm { dst, lhs, imm } => w64!(dst, rd!(lhs).rotate_right(imm as u32 % 64)),
            Instr::I32EqImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) == (imm as u32)),
            Instr::BrI32Eq { lhs, rhs, target } => {
                if u32_!(lhs) == u32_!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI32EqImm { lhs, imm, target } => {
                if u32_!(lhs) == (imm as u32) {
                    jump!(target);
                }
            }
            Instr::I32NeImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) != (imm as u32)),
            Instr::BrI32Ne { lhs, rhs, target } => {
                if u32_!(lhs) != u32_!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI32NeImm { lhs, imm, target } => {
                if u32_!(lhs) != (imm as u32) {
                    jump!(target);
                }
            }
            Instr::I32LtSImm { dst, lhs, imm } => wbool!(dst, i32_!(lhs) < imm),
            Instr::BrI32LtS { lhs, rhs, target } => {
                if i32_!(lhs) < i32_!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI32LtSImm { lhs, imm, target } => {
                if i32_!(lhs) < imm {
                    jump!(target);
                }
            }
            Instr::I32LtUImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) < (imm as u32)),
            Instr::BrI32LtU { lhs, rhs, target } => {
                if u32_!(lhs) < u32_!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI32LtUImm { lhs, imm, target } => {
                if u32_!(lhs) < (imm as u32) {
                    jump!(target);
                }
            }
            Instr::I32GtSImm { dst, lhs, imm } => wbool!(dst, i32_!(lhs) > imm),
            Instr::BrI32GtS { lhs, rhs, target } => {
                if i32_!(lhs) > i32_!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI32GtSImm { lhs, imm, target } => {
                if i32_!(lhs) > imm {
                    jump!(target);
                }
            }
            Instr::I32GtUImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) > (imm as u32)),
            Instr::BrI32GtU { lhs, rhs, target } => {
                if u32_!(lhs) > u32_!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI32GtUImm { lhs, imm, target } => {
                if u32_!(lhs) > (imm as u32) {
                    jump!(target);
                }
            }
            Instr::I32LeSImm { dst, lhs, imm } => wbool!(dst, i32_!(lhs) <= imm),
            Instr::BrI32LeS { lhs, rhs, target } => {
                if i32_!(lhs) <= i32_!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI32LeSImm { lhs, imm, target } => {
                if i32_!(lhs) <= imm {
                    jump!(target);
                }
            }
            Instr::I32LeUImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) <= (imm as u32)),
            Instr::BrI32LeU { lhs, rhs, target } => {
                if u32_!(lhs) <= u32_!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI32LeUImm { lhs, imm, target } => {
                if u32_!(lhs) <= (imm as u32) {
                    jump!(target);
                }
            }
            Instr::I32GeSImm { dst, lhs, imm } => wbool!(dst, i32_!(lhs) >= imm),
            Instr::BrI32GeS { lhs, rhs, target } => {
                if i32_!(lhs) >= i32_!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI32GeSImm { lhs, imm, target } => {
                if i32_!(lhs) >= imm {
                    jump!(target);
                }
            }
            Instr::I32GeUImm { dst, lhs, imm } => wbool!(dst, u32_!(lhs) >= (imm as u32)),
            Instr::BrI32GeU { lhs, rhs, target } => {
                if u32_!(lhs) >= u32_!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI32GeUImm { lhs, imm, target } => {
                if u32_!(lhs) >= (imm as u32) {
                    jump!(target);
                }
            }
            Instr::I64EqImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) == (imm as i64 as u64)),
            Instr::BrI64Eq { lhs, rhs, target } => {
                if rd!(lhs) == rd!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI64EqImm { lhs, imm, target } => {
                if rd!(lhs) == (imm as i64 as u64) {
                    jump!(target);
                }
            }
            Instr::I64NeImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) != (imm as i64 as u64)),
            Instr::BrI64Ne { lhs, rhs, target } => {
                if rd!(lhs) != rd!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI64NeImm { lhs, imm, target } => {
                if rd!(lhs) != (imm as i64 as u64) {
                    jump!(target);
                }
            }
            Instr::I64LtSImm { dst, lhs, imm } => wbool!(dst, i64_!(lhs) < (imm as i64)),
            Instr::BrI64LtS { lhs, rhs, target } => {
                if i64_!(lhs) < i64_!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI64LtSImm { lhs, imm, target } => {
                if i64_!(lhs) < (imm as i64) {
                    jump!(target);
                }
            }
            Instr::I64LtUImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) < (imm as i64 as u64)),
            Instr::BrI64LtU { lhs, rhs, target } => {
                if rd!(lhs) < rd!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI64LtUImm { lhs, imm, target } => {
                if rd!(lhs) < (imm as i64 as u64) {
                    jump!(target);
                }
            }
            Instr::I64GtSImm { dst, lhs, imm } => wbool!(dst, i64_!(lhs) > (imm as i64)),
            Instr::BrI64GtS { lhs, rhs, target } => {
                if i64_!(lhs) > i64_!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI64GtSImm { lhs, imm, target } => {
                if i64_!(lhs) > (imm as i64) {
                    jump!(target);
                }
            }
            Instr::I64GtUImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) > (imm as i64 as u64)),
            Instr::BrI64GtU { lhs, rhs, target } => {
                if rd!(lhs) > rd!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI64GtUImm { lhs, imm, target } => {
                if rd!(lhs) > (imm as i64 as u64) {
                    jump!(target);
                }
            }
            Instr::I64LeSImm { dst, lhs, imm } => wbool!(dst, i64_!(lhs) <= (imm as i64)),
            Instr::BrI64LeS { lhs, rhs, target } => {
                if i64_!(lhs) <= i64_!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI64LeSImm { lhs, imm, target } => {
                if i64_!(lhs) <= (imm as i64) {
                    jump!(target);
                }
            }
            Instr::I64LeUImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) <= (imm as i64 as u64)),
            Instr::BrI64LeU { lhs, rhs, target } => {
                if rd!(lhs) <= rd!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI64LeUImm { lhs, imm, target } => {
                if rd!(lhs) <= (imm as i64 as u64) {
                    jump!(target);
                }
            }
            Instr::I64GeSImm { dst, lhs, imm } => wbool!(dst, i64_!(lhs) >= (imm as i64)),
            Instr::BrI64GeS { lhs, rhs, target } => {
                if i64_!(lhs) >= i64_!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI64GeSImm { lhs, imm, target } => {
                if i64_!(lhs) >= (imm as i64) {
                    jump!(target);
                }
            }
            Instr::I64GeUImm { dst, lhs, imm } => wbool!(dst, rd!(lhs) >= (imm as i64 as u64)),
            Instr::BrI64GeU { lhs, rhs, target } => {
                if rd!(lhs) >= rd!(rhs) {
                    jump!(target);
                }
            }
            Instr::BrI64GeUImm { lhs, imm, target } => {
                if rd!(lhs) >= (imm as i64 as u64) {
                    jump!(target);
                }
            }

            // ---- memory ----
            Instr::I32StoreImm { addr, value, offset } => {
                let ea = effective!(addr, offset, 4);
                // SAFETY: ea + 4 <= mem_len, checked by `effective!`.
                // Every mapped memory has its chunk map CHUNK_MAP_OFFSET below its base
                // (`runtime::memory`), one byte per 4 KiB: ea's byte is in it.
                unsafe {
                    ptr::write_unaligned(mem_base.add(ea) as *mut [u8; 4], (value as u32).to_le_bytes());
                    if TRACK {
                        *chunk_map.add(ea >> CHUNK_SHIFT) = 1;
                    }
                }
            }
            Instr::I64StoreImm { addr, value, offset } => {
                let ea = effective!(addr, offset, 8);
                // SAFETY: ea + 8 <= mem_len, checked by `effective!`.
                // Every mapped memory has its chunk map CHUNK_MAP_OFFSET below its base
                // (`runtime::memory`), one byte per 4 KiB: ea's byte is in it.
                unsafe {
                    ptr::write_unaligned(mem_base.add(ea) as *mut [u8; 8], (value as i64).to_le_bytes());
                    if TRACK {
                        *chunk_map.add(ea >> CHUNK_SHIFT) = 1;
                    }
                }
            }
            Instr::I32Store8Imm { addr, value, offset } => {
                let ea = effective!(addr, offset, 1);
                // SAFETY: ea + 1 <= mem_len, checked by `effective!`.
                // Every mapped memory has its chunk map CHUNK_MAP_OFFSET below its base
                // (`runtime::memory`), one byte per 4 KiB: ea's byte is in it.
                unsafe {
                    *mem_base.add(ea) = value as u8;
                    if TRACK {
                        *chunk_map.add(ea >> CHUNK_SHIFT) = 1;
                    }
                }
            }
            Instr::I32LoadAt { dst, ea } => {
                let ea = ea as usize;
                if ea + 4 > mem_len {
                    trap!(TrapKind::MemoryOutOfBounds);
                }
                // SAFETY: ea + 4 <= mem_len, checked just above.
                wr!(dst, u32::from_le_bytes(unsafe { ptr::read_unaligned(mem_base.add(ea) as *const [u8; 4]) }) as u64);
            }
            Instr::I64LoadAt { dst, ea } => {
                let ea = ea as usize;
                if ea + 8 > mem_len {
                    trap!(TrapKind::MemoryOutOfBounds);
                }
                // SAFETY: ea + 8 <= mem_len, checked just above.
                wr!(dst, u64::from_le_bytes(unsafe { ptr::read_unaligned(mem_base.add(ea) as *const [u8; 8]) }));
            }
            Instr::I32Load8UAt { dst, ea } => {
                let ea = ea as usize;
                if ea + 1 > mem_len {
                    trap!(TrapKind::MemoryOutOfBounds);
                }
                // SAFETY: ea < mem_len, checked just above.
                wr!(dst, unsafe { *mem_base.add(ea) } as u64);
            }
            Instr::I32Load { dst, addr, offset } => load!(dst, addr, offset, 4, |b| u32::from_le_bytes(b) as u64),
            Instr::I64Load { dst, addr, offset } => load!(dst, addr, offset, 8, |b| u64::from_le_bytes(b)),
            Instr::F32Load { dst, addr, offset } => load!(dst, addr, offset, 4, |b| u32::from_le_bytes(b) as u64),
            Instr::F64Load { dst, addr, offset } => load!(dst, addr, offset, 8, |b| u64::from_le_bytes(b)),
            Instr::I32Load8S { dst, addr, offset } => load!(dst, addr, offset, 1, |b| b[0] as i8 as i32 as u32 as u64),
            Instr::I32Load8U { dst, addr, offset } => load!(dst, addr, offset, 1, |b| b[0] as u64),
            Instr::I32LoadIdx { dst, bi, offset } => load_idx!(dst, bi, offset, 4, |b| u32::from_le_bytes(b) as u64),
            Instr::I64LoadIdx { dst, bi, offset } => load_idx!(dst, bi, offset, 8, |b| u64::from_le_bytes(b)),
            Instr::I32Load8UIdx { dst, bi, offset } => load_idx!(dst, bi, offset, 1, |b| b[0] as u64),
            Instr::I32Load16S { dst, addr, offset } => load!(dst, addr, offset, 2, |b| i16::from_le_bytes(b) as i32 as u32 as u64),
            Instr::I32Load16U { dst, addr, offset } => load!(dst, addr, offset, 2, |b| u16::from_le_bytes(b) as u64),
            Instr::I64Load8S { dst, addr, offset } => load!(dst, addr, offset, 1, |b| b[0] as i8 as i64 as u64),
            Instr::I64Load8U { dst, addr, offset } => load!(dst, addr, offset, 1, |b| b[0] as u64),
            Instr::I64Load16S { dst, addr, offset } => load!(dst, addr, offset, 2, |b| i16::from_le_bytes(b) as i64 as u64),
            Instr::I64Load16U { dst, addr, offset } => load!(dst, addr, offset, 2, |b| u16::from_le_bytes(b) as u64),
            Instr::I64Load32S { dst, addr, offset } => load!(dst, addr, offset, 4, |b| i32::from_le_bytes(b) as i64 as u64),
            Instr::I64Load32U { dst, addr, offset } => load!(dst, addr, offset, 4, |b| u32::from_le_bytes(b) as u64),
            Instr::I32Store { addr, value, offset } => store!(addr, value, offset, 4, |v| (v as u32).to_le_bytes()),
            Instr::I64Store { addr, value, offset } => store!(addr, value, offset, 8, |v| v.to_le_bytes()),
            Instr::F32Store { addr, value, offset } => store!(addr, value, offset, 4, |v| (v as u32).to_le_bytes()),
            Instr::F64Store { addr, value, offset } => store!(addr, value, offset, 8, |v| v.to_le_bytes()),
            Instr::I32Store8 { addr, value, offset } => store!(addr, value, offset, 1, |v| [v as u8]),
            Instr::I32Store16 { addr, value, offset } => store!(addr, value, offset, 2, |v| (v as u16).to_le_bytes()),
            Instr::I64Store8 { addr, value, offset } => store!(addr, value, offset, 1, |v| [v as u8]),
            Instr::I64Store16 { addr, value, offset } => store!(addr, value, offset, 2, |v| (v as u16).to_le_bytes()),
            Instr::I64Store32 { addr, value, offset } => store!(addr, value, offset, 4, |v| (v as u32).to_le_bytes()),
        }
    }
}
