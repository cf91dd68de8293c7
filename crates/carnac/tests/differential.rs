//! Differential fuzzing of Carnac's two tiers: the interpreter and the Cranelift compiled tier must
//! agree on everything a guest can observe.
//!
//! `wasm-smith` generates a valid WebAssembly 2.0 + SIMD module (with memory64's 64-bit memories and
//! tables in every fourth seed, up to three memories in every fifth, extended constant expressions
//! in all, exception handling in odd seeds and GC, with typed function references, in every third:
//! a share, because their functions run in the interpreter in both engines and every module with them
//! adds time; 1,000 seeds run in about 9.5 min on the loaded 2-core machine), relaxed SIMD included (deterministic
//! in Carnac: the tiers must agree on it as on the rest), threads included (shared memories and
//! every atomic operator, run on one thread: deterministic; a module that could park in a wait on a
//! shared memory is skipped and counted, see `may_block`), for each seed of a fixed range (the
//! bytes fed to `arbitrary` are a pure function of the seed, so a seed is a reproduction). Each module
//! is instantiated once per tier, in separate stores of separate engines that differ only in
//! [`Strategy`], with the same stand-in imports (host functions whose results are a hash of their
//! arguments, which sometimes fail and sometimes call an exported function back, globals with
//! seed-derived values, fresh memories and tables).
//! Then exported functions are called in a seed-derived sequence with the same arguments on both sides
//! (interesting values: 0, ±1, extremes, page boundaries, NaNs with payloads, subnormals, random
//! bits; references null, an exported function, or a host `externref`), so that state carries over
//! from call to call. After instantiation and after every call we compare:
//! - the outcome: the results, or the trap's [`TrapKind`], or an uncaught exception's tag and payload;
//!   GC references by contents (an `i31` by value, structs and arrays by their fields, recursively to
//!   a depth and size cap), exception references by tag (index among exported and imported tags) and
//!   payload; arguments of GC or exception types are null or references earlier calls returned;
//! - the arguments every host function was called with, in order, and the results of its calls back;
//! - every exported (and imported) global's value, memory's size and full contents, and table's size
//!   and elements (a `funcref` cannot be compared across stores by identity, so it is compared as the
//!   index of the exported function it is, null, or "some function that is not exported");
//! - in the fuel variant, the remaining fuel ([`Store::get_fuel`]).
//!
//! Each module runs in two variants:
//! - **plain**: fuel metering off (the code path production uses). Termination comes from wasm-smith's
//!   `ensure_termination`, which counts function entries and loop iterations in a global and executes
//!   `unreachable` when it runs out; we export that global and refill it before every call, so one
//!   runaway call does not starve the rest.
//! - **fuel**: both engines meter fuel ([`Config::consume_fuel`]) and every call gets the same budget
//!   (usually a large one, sometimes a small one, so that fuel runs out in the middle of things): the
//!   tiers must charge identically, so the remaining fuel must be equal after every call, and
//!   `OutOfFuel` must happen in the same call with 0 left (and the same state).
//!
//! Odd seeds compile with explicit bounds checks ([`Config::signals_based_traps`] off), even seeds
//! with guard pages, so that both memory-access strategies of the compiled tier are checked. Every
//! third seed generates code that cannot trap (wasm-smith's `disallow_traps`), whose calls run long
//! computations rather than stopping at the first out-of-bounds access; function bodies range from 30
//! to 1000 instructions. Seeds also cycle through the interruption checks both engines compile in at
//! function entries and loop headers: none; [`Config::interruptible`], a flag never raised (only the
//! code differs); and [`Config::epoch_interruption`] with a deadline that is always reached, so that
//! every check runs the store's deadline callback, which counts (the counts must be equal: the tiers
//! check at the same places) and, in some calls, ends the call with `Interrupted` after a seed-derived
//! number of checks (at the same place in both tiers, with the same state).
//!
//! Legitimate differences, handled in the comparison:
//! - **NaN bits.** WebAssembly lets an arithmetic operation return any NaN ("canonical" or
//!   "arithmetic" NaNs, with nondeterministic sign and payload), so scalar `f32`/`f64` results,
//!   globals and host-call arguments compare any NaN equal to any NaN. A guest can see the bits,
//!   though (`i64.reinterpret_f64`, a store, `i16x8.bitmask` of a vector), and the tiers do pick
//!   different NaNs in two cases: the vector `f32x4`/`f64x2` `min` and `max` of a NaN lane (the
//!   interpreter returns the input NaN, quieted; Cranelift's sequence a canonical NaN), and the scalar
//!   `min` and `max` of two NaNs (the interpreter returns the first, Cranelift the second). So when a
//!   module's run differs, it runs again with every NaN that an arithmetic operator returns made
//!   canonical (wasm-smith's `canonicalize_nans`: the same module with canonicalising code after each
//!   such operator); if that run agrees in full, the difference was only in NaN bits: tolerated and
//!   counted. Otherwise `v128` values and memory are compared bit for bit.
//! - **Stack depth.** The interpreter limits guest calls by frames ([`Config::max_call_depth`]), the
//!   compiled tier by bytes of host stack ([`Config::max_wasm_stack`]), so the depth at which deep
//!   recursion traps with `StackExhausted` depends on the tier and on each function's frame size.
//!   Both sides exhausting the stack is an agreement, but the work done until then (memory writes,
//!   global updates, fuel) differs, so the instance's call sequence ends there. When only one side
//!   exhausts its stack (the recursion was deeper than one limit and shallower than the other), the
//!   rest of the module's run is skipped and counted. The limits are chosen so that a runaway
//!   recursion exhausts both stacks before `ensure_termination` or fuel stops it (each call gets
//!   100,000 units of the budget that bounds recursion, bar the fuel variant's small budgets), and so
//!   that the two limits are about as deep for typical generated functions: the interpreter allows
//!   20,000 frames, the compiled tier 1 MiB (about 50 bytes a frame). Measured over seeds 0..3000,
//!   10,000 frames left 147 runs one-sided (139 of them the interpreter's), 20,000 left 64 (37), 40,000
//!   left 131 (13).
//!
//! CI runs a fixed range of seeds; `CARNAC_DIFF_SEEDS=N` runs seeds `0..N`, and
//! `CARNAC_DIFF_SEEDS=A..B` seeds `A..B` (one seed: `CARNAC_DIFF_SEEDS=1234..1235`). The test prints
//! `differential: N modules, M calls compared, K mismatches, S skipped (reasons)`. On a mismatch it
//! prints the seed, variant, call, arguments and both outcomes, writes the module to
//! `/tmp/carnac-diff-<seed>.wasm` and fails. `CARNAC_DIFF_FILE=path.wasm` runs one module file instead
//! (with the arguments of the first seed of `CARNAC_DIFF_SEEDS`), which makes a predicate for
//! `wasm-tools shrink`.

// Both tiers (cfg set by build.rs: the `cranelift` feature, on Linux x86_64 or aarch64).
#![cfg(carnac_compiled)]

mod smith;

use smith::{features, may_block};

use std::collections::HashMap;
use std::fmt;

use arbitrary::Unstructured;
use carnac::*;

/// The seeds CI runs: a thousand modules, about 15 s in release on 2 cores (unloaded).
const CI_SEEDS: u64 = 1000;
/// Frames the interpreter allows ([`Config::max_call_depth`]).
const CALL_DEPTH: usize = 20_000;
/// Host stack the compiled tier allows ([`Config::max_wasm_stack`]).
const WASM_STACK: usize = 1 << 20;
/// What bounds one call: the plain variant's `ensure_termination` counter, the fuel variant's fuel.
const BUDGET: u64 = 100_000;
/// Memory and tables together, per store.
const STORE_MEMORY: usize = 64 << 20;

/// splitmix64: a small, fixed, dependency-free stream of numbers.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

fn smith_config(seed: u64, canonicalize_nans: bool) -> wasm_smith::Config {
    wasm_smith::Config {
        canonicalize_nans,
        // Small and large function bodies (wasm-smith's default is 100 instructions).
        max_instructions: [100, 30, 300, 1000][(seed / 3 % 4) as usize],
        // Every third module has no traps (wasm-smith masks addresses, guards divisions and
        // conversions), so that its calls run long computations instead of stopping at the first trap.
        disallow_traps: seed % 3 == 2,
        simd_enabled: true,
        relaxed_simd_enabled: true,
        // Exception handling (tags, throw, throw_ref, try_table, exnref) in every other seed's module,
        // GC (struct/array/i31 and their heap types, casts; typed function references with it) in every
        // third: their functions run in the interpreter inside compiled modules, so a share keeps the
        // run's time about what it was while every combination (neither, either, both) still comes up.
        exceptions_enabled: seed % 2 == 1,
        gc_enabled: seed.is_multiple_of(3),
        compact_imports_enabled: false,
        // 64-bit memories and tables (memory64), in every fourth seed's module
        // (one with guard pages, one with explicit checks, see `signals`).
        memory64_enabled: matches!(seed % 8, 1 | 4),
        max_memory64_bytes: 4 << 20,
        // Tail calls (return_call, return_call_indirect), in every module.
        tail_call_enabled: true,
        // Atomics on shared and unshared memories (single-threaded, so deterministic;
        // modules that could block in a wait are skipped, see `may_block`).
        threads_enabled: true,
        shared_everything_threads_enabled: false,
        wide_arithmetic_enabled: false,
        // Extended constant expressions (global and segment initialisers with arithmetic).
        extended_const_enabled: true,
        custom_page_sizes_enabled: false,
        // Up to three memories (multi-memory) in every fifth seed's module.
        max_memories: if seed % 5 == 2 { 3 } else { 1 },
        max_memory32_bytes: 4 << 20,
        max_table_elements: 10_000,
        max_tables: 4,
        max_imports: 12,
        export_everything: true,
        // Functions need a type; more functions per module means more calls per module.
        min_types: 1,
        min_funcs: 4,
        max_funcs: 40,
        ..Default::default()
    }
}

/// The two modules of a seed: as generated (fuel variant) and with `ensure_termination`'s counter,
/// exported as [`FUEL_EXPORT`] (plain variant).
struct Generated {
    raw: Vec<u8>,
    terminating: Vec<u8>,
}

const FUEL_EXPORT: &str = "\u{0}carnac-diff-fuel";

/// The modules of `seed`; with `canonicalize_nans`, the same modules with every NaN an arithmetic
/// operator returns made canonical (wasm-smith inserts the code, consuming no more entropy).
fn generate(seed: u64, canonicalize_nans: bool) -> Option<Generated> {
    let mut rng = Rng::new(seed);
    let data: Vec<u8> = (0..32 << 10).map(|_| rng.next() as u8).collect();
    let config = smith_config(seed, canonicalize_nans);
    let mut module = wasm_smith::Module::new(config, &mut Unstructured::new(&data)).ok()?;
    let raw = module.to_bytes();
    let global = module.ensure_termination(BUDGET as u32).ok()?;
    let terminating = add_global_export(&module.to_bytes(), global, FUEL_EXPORT);
    Some(Generated { raw, terminating })
}

fn read_leb(bytes: &[u8]) -> (u64, usize) {
    let (mut value, mut shift, mut at) = (0u64, 0, 0);
    loop {
        let b = bytes[at];
        at += 1;
        value |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return (value, at);
        }
    }
}

fn write_leb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let b = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// `bytes` with one more export: global `global` as `name` (into the export section, or a new one
/// at its place in the section order).
fn add_global_export(bytes: &[u8], global: u32, name: &str) -> Vec<u8> {
    let mut entry = Vec::new();
    write_leb(&mut entry, name.len() as u64);
    entry.extend_from_slice(name.as_bytes());
    entry.push(0x03);
    write_leb(&mut entry, global.into());
    let section = |out: &mut Vec<u8>, id: u8, body: &[u8]| {
        out.push(id);
        write_leb(out, body.len() as u64);
        out.extend_from_slice(body);
    };
    let mut out = bytes[..8].to_vec();
    let mut pos = 8;
    let mut done = false;
    while pos < bytes.len() {
        let id = bytes[pos];
        let (size, n) = read_leb(&bytes[pos + 1..]);
        let body = &bytes[pos + 1 + n..pos + 1 + n + size as usize];
        pos += 1 + n + size as usize;
        if !done && id == 7 {
            let (count, c) = read_leb(body);
            let mut new = Vec::new();
            write_leb(&mut new, count + 1);
            new.extend_from_slice(&body[c..]);
            new.extend_from_slice(&entry);
            section(&mut out, 7, &new);
            done = true;
            continue;
        }
        // Sections that come after exports: start, element, data count, code, data.
        if !done && matches!(id, 8..=12) {
            let mut new = vec![1];
            new.extend_from_slice(&entry);
            section(&mut out, 7, &new);
            done = true;
        }
        section(&mut out, id, body);
    }
    if !done {
        let mut new = vec![1];
        new.extend_from_slice(&entry);
        section(&mut out, 7, &new);
    }
    out
}

fn interesting_i32(r: &mut Rng) -> i32 {
    match r.below(12) {
        0 => 0,
        1 => 1,
        2 => -1,
        3 => i32::MIN,
        4 => i32::MAX,
        5 => r.below(256) as i32,
        6 => 1 << r.below(32),
        7 => (r.below(4) as i32 * 65536).wrapping_sub(r.below(17) as i32),
        8 => -(r.below(256) as i32),
        9 => r.pick(&[0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, -128, -32768]),
        _ => r.next() as i32,
    }
}

fn interesting_i64(r: &mut Rng) -> i64 {
    match r.below(10) {
        0 => i64::MIN,
        1 => i64::MAX,
        2 => interesting_i32(r) as i64,
        3 => interesting_i32(r) as u32 as i64,
        4 => 1 << r.below(64),
        5 => r.pick(&[0x8000_0000, 0xffff_ffff, 0x1_0000_0000, -0x8000_0001]),
        _ => r.next() as i64,
    }
}

fn interesting_f32(r: &mut Rng) -> u32 {
    const SPECIAL: &[f32] = &[
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -0.5,
        1.5,
        2.5,
        -2.5,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        2147483648.0,
        -2147483648.0,
        2147483520.0,
        4294967296.0,
        4294967040.0,
        9.223372e18,
        -9.223372e18,
        1.8446743e19,
        -1e10,
    ];
    match r.below(10) {
        0..=3 => r.pick(SPECIAL).to_bits(),
        // NaNs: canonical, negative, signalling, with payloads.
        4 => r.pick(&[0x7fc0_0000, 0xffc0_0000, 0x7fa0_0001, 0xff80_0001, 0x7fc1_2345, 0x7fff_ffff]),
        // Subnormals.
        5 => r.pick(&[1, 0x8000_0001, 0x007f_ffff, 0x807f_ffff]),
        6 => ((r.below(4001) as i64 - 2000) as f32).to_bits(),
        7 => ((r.below(4001) as i64 - 2000) as f32 / 8.0).to_bits(),
        _ => r.next() as u32,
    }
}

fn interesting_f64(r: &mut Rng) -> u64 {
    const SPECIAL: &[f64] = &[
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -0.5,
        1.5,
        2.5,
        -2.5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        2147483648.0,
        -2147483648.0,
        2147483647.0,
        -2147483649.0,
        4294967296.0,
        4294967295.0,
        9.223372036854776e18,
        -9.223372036854776e18,
        9.223372036854775e18,
        1.8446744073709552e19,
        -1e300,
    ];
    match r.below(10) {
        0..=3 => r.pick(SPECIAL).to_bits(),
        4 => r.pick(&[
            0x7ff8_0000_0000_0000,
            0xfff8_0000_0000_0000,
            0x7ff4_0000_0000_0001,
            0xfff0_0000_0000_0001,
            0x7ff8_0000_1234_5678,
            0x7fff_ffff_ffff_ffff,
        ]),
        5 => r.pick(&[1, 0x8000_0000_0000_0001, 0x000f_ffff_ffff_ffff]),
        6 => ((r.below(4001) as i64 - 2000) as f64).to_bits(),
        7 => f64::from(f32::from_bits(interesting_f32(r))).to_bits(),
        _ => r.next(),
    }
}

fn interesting_v128(r: &mut Rng) -> u128 {
    let lanes = |r: &mut Rng, bits: u32, f: &mut dyn FnMut(&mut Rng) -> u128| {
        (0..128 / bits).fold(0u128, |v, i| v | ((f(r) & ((1u128 << bits) - 1)) << (i * bits)))
    };
    match r.below(9) {
        0 => 0,
        1 => u128::MAX,
        2 => lanes(r, 8, &mut |r| r.pick(&[0u128, 1, 0x7f, 0x80, 0xff, 0xfe])),
        3 => lanes(r, 16, &mut |r| interesting_i32(r) as u32 as u128),
        4 => lanes(r, 32, &mut |r| interesting_i32(r) as u32 as u128),
        5 => lanes(r, 64, &mut |r| interesting_i64(r) as u64 as u128),
        6 => lanes(r, 32, &mut |r| interesting_f32(r) as u128),
        7 => lanes(r, 64, &mut |r| interesting_f64(r) as u128),
        _ => (r.next() as u128) << 64 | r.next() as u128,
    }
}

/// A number (references are null).
fn number(r: &mut Rng, ty: ValType) -> Val {
    match ty {
        ValType::I32 => Val::I32(interesting_i32(r)),
        ValType::I64 => Val::I64(interesting_i64(r)),
        ValType::F32 => Val::F32(interesting_f32(r)),
        ValType::F64 => Val::F64(interesting_f64(r)),
        ValType::V128 => Val::V128(interesting_v128(r)),
        t => Val::default_for(t),
    }
}

/// An argument, chosen once and made in each store.
#[derive(Debug, Clone, Copy)]
enum Arg {
    Val(Val),
    /// The exported function with this index among the instance's exported functions.
    Func(usize),
    /// A host reference to this number.
    Extern(u64),
    /// A reference of another type (GC, exception, typed function reference): null when the type is
    /// nullable and no earlier call returned a value of it, else the one chosen by this number
    /// among the references earlier calls returned that are of the type.
    Returned(u64),
}

fn argument(r: &mut Rng, ty: ValType, funcs: usize) -> Arg {
    match ty {
        ValType::FuncRef if funcs > 0 && r.below(3) == 0 => Arg::Func(r.below(funcs as u64) as usize),
        ValType::ExternRef if r.below(2) == 0 => Arg::Extern(r.below(1000)),
        ValType::FuncRef | ValType::ExternRef => Arg::Val(number(r, ty)),
        ValType::Ref(rt) if rt.is_nullable() && r.below(3) == 0 => Arg::Val(Val::default_for(ValType::Ref(rt))),
        ValType::Ref(_) => Arg::Returned(r.next()),
        _ => Arg::Val(number(r, ty)),
    }
}

/// A value as compared across stores: NaNs made equal, references by what they refer to.
#[derive(Clone, PartialEq)]
enum V {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
    V128(u128),
    /// Null, the index of an exported function, or `u32::MAX` for a function not exported.
    Func(Option<u32>),
    Extern(Option<u64>),
    /// A GC reference (`anyref` and below) or an exception reference, by its contents: null, an
    /// `i31` by value, a struct or array by its fields (recursively, to [`GC_DEPTH`] levels and
    /// [`GC_ELEMS`] elements), an exception by its tag (index among the exported and imported tags)
    /// and payload.
    Gc(String),
}

/// How deep a GC value's description follows references.
const GC_DEPTH: u32 = 3;
/// How many fields or elements of a struct or array its description lists.
const GC_ELEMS: usize = 16;

impl fmt::Debug for V {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            V::I32(v) => write!(f, "i32:{v}"),
            V::I64(v) => write!(f, "i64:{v}"),
            V::F32(b) => write!(f, "f32:{}({b:#x})", f32::from_bits(*b)),
            V::F64(b) => write!(f, "f64:{}({b:#x})", f64::from_bits(*b)),
            V::V128(v) => write!(f, "v128:{v:#034x}"),
            V::Func(None) | V::Extern(None) => write!(f, "null"),
            V::Func(Some(u32::MAX)) => write!(f, "func:(not exported)"),
            V::Func(Some(i)) => write!(f, "func:#{i}"),
            V::Extern(Some(t)) => write!(f, "extern:{t}"),
            V::Gc(d) => f.write_str(d),
        }
    }
}

/// What the host keeps per store.
#[derive(Default)]
struct Host {
    /// Each host function call: import index and arguments.
    log: Vec<(usize, Vec<V>)>,
    /// With [`Checks::Epoch`]: how many times the deadline callback ran in this call, and after how
    /// many it interrupts the call.
    deadline_hits: u64,
    deadline_limit: u64,
    /// The index of each exported function (for references).
    func_index: HashMap<Func, u32>,
    /// The exported functions, which host functions call back (once instantiated).
    funcs: Vec<Func>,
    /// How deep host functions have called back into the guest.
    depth: u32,
    /// The index of each exported or imported tag (exceptions are compared by it).
    tag_index: HashMap<Tag, u32>,
}

/// A log entry's import index for the results of a call back into the guest.
const CALLBACK: usize = 1 << 31;

fn canon<S: AsContextMut<Data = Host>>(store: &mut S, v: &Val) -> V {
    match *v {
        Val::I32(x) => V::I32(x),
        Val::I64(x) => V::I64(x),
        Val::F32(b) if f32::from_bits(b).is_nan() => V::F32(0x7fc0_0000),
        Val::F32(b) => V::F32(b),
        Val::F64(b) if f64::from_bits(b).is_nan() => V::F64(0x7ff8_0000_0000_0000),
        Val::F64(b) => V::F64(b),
        Val::V128(x) => V::V128(x),
        Val::FuncRef(f) => {
            V::Func(f.map(|f| store.as_context().data().func_index.get(&f).copied().unwrap_or(u32::MAX)))
        }
        Val::ExternRef(e) => {
            V::Extern(e.map(|e| {
                e.data(&store).ok().flatten().and_then(|d| d.downcast_ref::<u64>()).copied().unwrap_or(u64::MAX)
            }))
        }
        Val::AnyRef(_) | Val::ExnRef(_) => V::Gc(describe(store, v, GC_DEPTH)),
        ref other => panic!("the generated modules make no {} values", other.ty()),
    }
}

/// A GC or exception reference's contents, the same across stores (see [`V::Gc`]).
fn describe<S: AsContextMut<Data = Host>>(store: &mut S, v: &Val, depth: u32) -> String {
    let list = |store: &mut S, vals: Vec<Val>| {
        let mut out: Vec<String> = vals
            .iter()
            .take(GC_ELEMS)
            .map(|v| match v {
                Val::AnyRef(_) | Val::ExnRef(_) if depth == 0 => "..".to_string(),
                Val::AnyRef(_) | Val::ExnRef(_) => describe(store, v, depth - 1),
                v => format!("{:?}", canon(store, v)),
            })
            .collect();
        if vals.len() > GC_ELEMS {
            out.push(format!("..{} more", vals.len() - GC_ELEMS));
        }
        out.join(" ")
    };
    match *v {
        Val::AnyRef(None) | Val::ExnRef(None) => "null".into(),
        Val::AnyRef(Some(a)) => {
            if let Ok(Some(i)) = a.as_i31(&*store) {
                return format!("i31:{}", i.get_u32());
            }
            if let Ok(Some(st)) = a.as_struct(&*store) {
                let fields = st.fields(&mut *store).expect("struct fields");
                return format!("struct{{{}}}", list(store, fields));
            }
            if let Ok(Some(ar)) = a.as_array(&*store) {
                let elems = ar.elems(&mut *store).expect("array elements");
                return format!("array[{}]{{{}}}", elems.len(), list(store, elems));
            }
            // An `externref` converted with `any.convert_extern`.
            "any:(converted extern)".into()
        }
        Val::ExnRef(Some(e)) => {
            let tag = e.tag(&*store).expect("exception tag");
            let index = store.as_context().data().tag_index.get(&tag).copied();
            let fields = e.fields(&mut *store).expect("exception fields");
            format!("exn:tag{index:?}({})", list(store, fields))
        }
        _ => unreachable!("not a GC reference"),
    }
}

/// A value of reference type `ty` for a stand-in: null when `ty` is nullable; else an `i31` for the
/// `any` hierarchy down to `i31`, a host function for a function type; `None` when there is no
/// value to make (a non-nullable struct, array, exception or bottom type).
fn ref_value(mut store: impl AsContextMut<Data = Host>, ty: &ValType) -> Option<Val> {
    let ValType::Ref(rt) = ty else { return Some(Val::default_for(ty.clone())) };
    if rt.is_nullable() {
        return Some(Val::default_for(ty.clone()));
    }
    match rt.heap_type() {
        HeapType::Any | HeapType::Eq | HeapType::I31 => {
            Some(Val::AnyRef(Some(AnyRef::from_i31(&mut store, I31::wrapping_u32(7)))))
        }
        HeapType::Func => {
            let ft = FuncType::new([], []);
            Some(Val::FuncRef(Some(Func::new(&mut store, ft, |_, _, _| Ok(())))))
        }
        HeapType::ConcreteFunc(ft) => {
            let results: Vec<ValType> = ft.results().to_vec();
            Some(Val::FuncRef(Some(Func::new(&mut store, ft.clone(), move |_, _, out| {
                for (o, t) in out.iter_mut().zip(&results) {
                    *o = Val::default_for(t.clone());
                }
                if results.iter().any(|t| !t.is_nullable() && matches!(t, ValType::Ref(_))) {
                    return Err(Trap::host("stand-in function reference"));
                }
                Ok(())
            }))))
        }
        _ => None,
    }
}

fn hash(mut h: u64, v: &V) -> u64 {
    let x = match *v {
        V::I32(x) => x as u64,
        V::I64(x) => x as u64,
        V::F32(x) => x.into(),
        V::F64(x) => x,
        V::V128(x) => (x as u64) ^ (x >> 64) as u64,
        V::Func(x) => x.map_or(0, |x| x as u64 + 1),
        V::Extern(x) => x.map_or(0, |x| x + 1),
        V::Gc(ref d) => d.bytes().fold(0x5bd1_e995, |h: u64, b| h.rotate_left(5) ^ u64::from(b)),
    };
    h ^= x;
    Rng(h).next()
}

/// The same stand-in for import `index` of type `ty` in every store.
/// `None` when it has no value to hold (a global or table of a non-nullable type [`ref_value`] cannot
/// make).
fn stand_in(store: &mut Store<Host>, index: usize, ty: &ExternType, seed: u64) -> Option<Extern> {
    let mut r = Rng::new(seed ^ (index as u64).wrapping_mul(0x1234_5677));
    Some(match ty {
        ExternType::Func(ft) => {
            let results: Vec<ValType> = ft.results().to_vec();
            Func::new(&mut *store, ft.clone(), move |mut caller, args, out| {
                let args: Vec<V> = args.iter().map(|a| canon(&mut caller, a)).collect();
                let calls = caller.data().log.len() as u64;
                let h = args.iter().fold(Rng::new(seed ^ index as u64 ^ calls << 32).next(), hash);
                caller.data_mut().log.push((index, args));
                if h.is_multiple_of(23) {
                    return Err(Trap::host("stand-in import failed"));
                }
                let mut r = Rng::new(h);
                // Now and then, a call back into the guest (compiled code through the host and back),
                // whose results feed this function's.
                let (depth, funcs) = (caller.data().depth, caller.data().funcs.len() as u64);
                if depth < 2 && funcs > 0 && r.below(4) == 0 {
                    let f = caller.data().funcs[r.below(funcs) as usize];
                    let ty = f.ty(&caller);
                    let args: Vec<Val> = ty.params().iter().map(|t| number(&mut r, t.clone())).collect();
                    let mut res: Vec<Val> = ty.results().iter().map(|t| Val::default_for(t.clone())).collect();
                    caller.data_mut().depth += 1;
                    let called = f.call(&mut caller, &args, &mut res);
                    caller.data_mut().depth -= 1;
                    match called {
                        Ok(()) => {}
                        Err(Error::Trap(t)) => return Err(t),
                        Err(e) => return Err(Trap::host(e.to_string())),
                    }
                    let res: Vec<V> = res.iter().map(|v| canon(&mut caller, v)).collect();
                    r = Rng::new(res.iter().fold(r.next(), hash));
                    caller.data_mut().log.push((CALLBACK | index, res));
                }
                for (o, t) in out.iter_mut().zip(&results) {
                    *o = match t {
                        ValType::Ref(_) => ref_value(&mut caller, t).ok_or_else(|| Trap::host("no stand-in result"))?,
                        t => number(&mut r, t.clone()),
                    };
                }
                Ok(())
            })
            .into()
        }
        ExternType::Global(gt) => {
            let init = match &gt.content {
                t @ ValType::Ref(_) => ref_value(&mut *store, t)?,
                t => number(&mut r, t.clone()),
            };
            Global::new(&mut *store, gt.clone(), init).unwrap().into()
        }
        ExternType::Table(tt) => {
            let init = ref_value(&mut *store, &tt.element)?;
            Table::new(&mut *store, tt.clone(), init).unwrap().into()
        }
        ExternType::Memory(mt) if mt.is_shared() => SharedMemory::new(store.engine(), *mt).unwrap().into(),
        ExternType::Memory(mt) => Memory::new(&mut *store, *mt).unwrap().into(),
        ExternType::Tag(tt) => Tag::new(&mut *store, tt).unwrap().into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Ok(Vec<V>),
    Trap(TrapKind),
    /// An uncaught exception (`TrapKind::UncaughtException`), by tag and payload ([`V::Gc`]).
    Exception(String),
    Error(String),
}

impl Outcome {
    fn of(result: Result<(), Error>, results: impl FnOnce() -> Vec<V>) -> Outcome {
        match result {
            Ok(()) => Outcome::Ok(results()),
            Err(Error::Trap(t)) => Outcome::Trap(t.kind()),
            Err(e) => Outcome::Error(e.to_string()),
        }
    }
    fn stack_exhausted(&self) -> bool {
        *self == Outcome::Trap(TrapKind::StackExhausted)
    }
}

/// One tier's side of a run: its store, imports and instance.
struct Side {
    store: Store<Host>,
    imports: Vec<Extern>,
    /// The exports (an instance's), then the imports again as `import#i`, for state comparison.
    externs: Vec<(String, Extern)>,
    funcs: Vec<(String, Func)>,
    /// The references calls returned, in order: what [`Arg::Returned`] picks from.
    returned: Vec<Val>,
}

impl Side {
    /// `None` when an import has no stand-in (see [`stand_in`]).
    fn new(engine: &Engine, module: &Module, seed: u64, checks: Checks) -> Option<Side> {
        let mut store = Store::new(engine, Host { deadline_limit: u64::MAX, ..Host::default() });
        store.set_limiter(StoreLimits::new().memory_size(STORE_MEMORY));
        if checks == Checks::Epoch {
            // The epoch never advances and the deadline is the current epoch: every check calls back.
            store.set_epoch_deadline(0);
            store.epoch_deadline_callback(|store| {
                let host = store.data_mut();
                host.deadline_hits += 1;
                if host.deadline_hits >= host.deadline_limit {
                    return Err(Trap::new(TrapKind::Interrupted).into());
                }
                Ok(UpdateDeadline::Continue(0))
            });
        }
        let imports: Vec<Extern> = module
            .imports()
            .enumerate()
            .map(|(i, imp)| stand_in(&mut store, i, &imp.ty, seed))
            .collect::<Option<_>>()?;
        let externs = imports
            .iter()
            .enumerate()
            .filter(|(_, e)| !matches!(e, Extern::Func(_)))
            .map(|(i, e)| (format!("import#{i}"), e.clone()))
            .collect();
        Some(Side { store, imports, externs, funcs: Vec::new(), returned: Vec::new() })
    }

    fn instantiate(&mut self, module: &Module) -> Outcome {
        match Instance::new(&mut self.store, module, &self.imports) {
            Ok(instance) => {
                let exports = instance.exports(&self.store);
                for (name, ext) in &exports {
                    if let Extern::Func(f) = ext {
                        let index = self.funcs.len() as u32;
                        self.store.data_mut().func_index.entry(*f).or_insert(index);
                        self.store.data_mut().funcs.push(*f);
                        self.funcs.push((name.clone(), *f));
                    }
                }
                let imports = std::mem::take(&mut self.externs);
                self.externs = exports.into_iter().filter(|(_, e)| !matches!(e, Extern::Func(_))).collect();
                self.externs.extend(imports);
                for (_, e) in &self.externs {
                    if let Extern::Tag(t) = e {
                        let index = self.store.data().tag_index.len() as u32;
                        self.store.data_mut().tag_index.entry(*t).or_insert(index);
                    }
                }
                Outcome::Ok(Vec::new())
            }
            Err(e) => self.outcome(Err(e), &[]),
        }
    }

    fn outcome(&mut self, result: Result<(), Error>, results: &[Val]) -> Outcome {
        if let Some(exn) = result.as_ref().err().and_then(Error::as_exception) {
            return Outcome::Exception(describe(&mut self.store, &Val::ExnRef(Some(exn)), GC_DEPTH));
        }
        if result.is_ok() {
            self.returned.extend(results.iter().filter(|v| matches!(v.ty(), ValType::Ref(_))).copied());
        }
        Outcome::of(result, || results.iter().map(|v| canon(&mut self.store, v)).collect())
    }

    fn call(&mut self, func: usize, args: &[Arg]) -> Outcome {
        let f = self.funcs[func].1;
        let ty = f.ty(&self.store);
        let mut vals = Vec::new();
        for (a, t) in args.iter().zip(ty.params()) {
            vals.push(match *a {
                Arg::Val(v) => v,
                Arg::Func(i) => Val::FuncRef(Some(self.funcs[i].1)),
                Arg::Extern(t) => Val::ExternRef(Some(ExternRef::new(&mut self.store, t).expect("externref"))),
                Arg::Returned(k) => {
                    let fits: Vec<Val> =
                        self.returned.iter().filter(|v| v.matches_ty(&self.store, t)).copied().collect();
                    match fits.len() {
                        0 if t.is_nullable() => Val::default_for(t.clone()),
                        0 => return Outcome::Error(format!("no argument of type {t} (not called)")),
                        n => fits[(k % n as u64) as usize],
                    }
                }
            });
        }
        let mut results: Vec<Val> = ty.results().iter().map(|t| Val::default_for(t.clone())).collect();
        let result = f.call(&mut self.store, &vals, &mut results);
        self.outcome(result, &results)
    }

    fn fuel(&self) -> Option<u64> {
        self.store.get_fuel().ok()
    }
}

/// The first difference between the two sides' observable state, if any.
fn state_difference(a: &mut Side, b: &mut Side) -> Option<String> {
    let (la, lb) = (&a.store.data().log, &b.store.data().log);
    if la != lb {
        return Some(format!("host calls differ:\n    interp:    {la:?}\n    cranelift: {lb:?}"));
    }
    let (ha, hb) = (a.store.data().deadline_hits, b.store.data().deadline_hits);
    if ha != hb {
        return Some(format!("epoch deadline callbacks: interp {ha}, cranelift {hb}"));
    }
    if a.externs.len() != b.externs.len() {
        return Some("different numbers of exports".into());
    }
    for ((name, ea), (_, eb)) in a.externs.iter().zip(&b.externs) {
        match (ea, eb) {
            (Extern::Global(ga), Extern::Global(gb)) => {
                let (ra, rb) = (ga.get(&mut a.store), gb.get(&mut b.store));
                let (va, vb) = (canon(&mut a.store, &ra), canon(&mut b.store, &rb));
                if va != vb {
                    return Some(format!("global {name:?}: interp {va:?}, cranelift {vb:?}"));
                }
            }
            (Extern::Memory(ma), Extern::Memory(mb)) => {
                let (da, db) = (ma.data(&a.store), mb.data(&b.store));
                if da.len() != db.len() {
                    return Some(format!("memory {name:?}: interp {} bytes, cranelift {} bytes", da.len(), db.len()));
                }
                if da != db {
                    let at = da.iter().zip(db).position(|(x, y)| x != y).unwrap();
                    let (from, to) = (at & !15, (at & !15) + 16.min(da.len() - (at & !15)));
                    return Some(format!(
                        "memory {name:?} differs at {at:#x}: {from:#x}..{to:#x} interp {:02x?}, cranelift {:02x?}",
                        &da[from..to],
                        &db[from..to]
                    ));
                }
            }
            (Extern::Table(ta), Extern::Table(tb)) => {
                let (sa, sb) = (ta.size(&a.store), tb.size(&b.store));
                if sa != sb {
                    return Some(format!("table {name:?}: interp size {sa}, cranelift size {sb}"));
                }
                for i in 0..sa {
                    let ra = ta.get(&mut a.store, i).unwrap();
                    let va = canon(&mut a.store, &ra);
                    let rb = tb.get(&mut b.store, i).unwrap();
                    let vb = canon(&mut b.store, &rb);
                    if va != vb {
                        return Some(format!("table {name:?}[{i}]: interp {va:?}, cranelift {vb:?}"));
                    }
                }
            }
            (Extern::SharedMemory(ma), Extern::SharedMemory(mb)) => {
                let (la, lb) = (ma.data_size(), mb.data_size());
                if la != lb {
                    return Some(format!("shared memory {name:?}: interp {la} bytes, cranelift {lb} bytes"));
                }
                let (mut da, mut db) = (vec![0u8; la], vec![0u8; lb]);
                ma.read(0, &mut da).unwrap();
                mb.read(0, &mut db).unwrap();
                if let Some(at) = da.iter().zip(&db).position(|(x, y)| x != y) {
                    let (from, to) = (at & !15, (at & !15) + 16.min(da.len() - (at & !15)));
                    return Some(format!(
                        "shared memory {name:?} differs at {at:#x}: {from:#x}..{to:#x} interp {:02x?}, cranelift {:02x?}",
                        &da[from..to],
                        &db[from..to]
                    ));
                }
            }
            (Extern::Tag(_), Extern::Tag(_)) => {}
            _ => return Some(format!("export {name:?} has different kinds")),
        }
    }
    None
}

#[derive(Default)]
struct Stats {
    modules: u64,
    not_generated: u64,
    /// Modules skipped because a wait could block (see [`smith::may_block`]).
    may_block: u64,
    /// Modules with a 64-bit memory or table (memory64).
    memory64: u64,
    /// Modules with more than one memory (multi-memory).
    multi_memory: u64,
    instantiations: u64,
    calls: u64,
    mismatches: u64,
    /// Modules skipped because only one tier exhausted its stack.
    one_sided_stack: u64,
    /// How many of those the interpreter exhausted (the compiled tier the rest).
    one_sided_interp: u64,
    /// Module runs whose only differences were NaN bits (equal once NaNs are canonicalised).
    nan_bits: u64,
    /// Call sequences ended because both tiers exhausted their stacks.
    both_stack: u64,
    /// Module runs skipped because an import had no stand-in (a global or table of a non-nullable
    /// struct, array or exception type).
    no_stand_in: u64,
    /// Modules with a tag (exception handling), and with a GC type (a struct or array type, or a
    /// reference of the `any` hierarchy) somewhere in their types.
    exceptions: u64,
    gc: u64,
    outcomes: HashMap<String, u64>,
}

impl Stats {
    fn count(&mut self, o: &Outcome) {
        let key = match o {
            Outcome::Ok(_) => "ok".to_string(),
            Outcome::Trap(k) => format!("{k:?}"),
            Outcome::Exception(_) => "UncaughtException".to_string(),
            Outcome::Error(_) => "error".to_string(),
        };
        *self.outcomes.entry(key).or_default() += 1;
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Plain,
    Fuel,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if *self == Variant::Plain { "plain" } else { "fuel" })
    }
}

/// Which interruption checks both engines compile in (at function entries and loop headers).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Checks {
    None,
    /// [`Config::interruptible`]: a flag that is never raised, so only the code differs.
    Flag,
    /// [`Config::epoch_interruption`] with a deadline that is always reached: every check runs the
    /// store's deadline callback, which counts (the counts must match: the tiers check at the same
    /// places) and ends the call with `Interrupted` after a per-call number of checks.
    Epoch,
}

/// What one comparison runs: a module, in a variant, against which compiled tier.
struct Subject<'a> {
    /// What the report calls it: `seed N` or the name of a regression module.
    label: &'a str,
    /// Where the report writes the module (none for modules that are files already).
    path: Option<String>,
    /// Drives the arguments, the stand-in imports and the fuel budgets.
    seed: u64,
    variant: Variant,
    signals: bool,
    checks: Checks,
    bytes: &'a [u8],
}

impl Subject<'_> {
    fn report(&self, stats: &mut Stats, history: &[String], what: &str) {
        stats.mismatches += 1;
        let mode = if self.signals { "guard pages" } else { "explicit bounds checks" };
        let written = match &self.path {
            Some(path) => {
                let _ = std::fs::write(path, self.bytes);
                format!("; module written to {path}")
            }
            None => String::new(),
        };
        eprintln!(
            "MISMATCH {} ({} variant, compiled with {mode}, interruption checks {:?}){written}",
            self.label, self.variant, self.checks
        );
        for (i, h) in history.iter().enumerate() {
            eprintln!("  step {i}: {h}");
        }
        eprintln!("  => {what}");
    }
}

/// The engines of every combination of settings, as `(strategy, fuel, signals, checks)`.
struct Engines(HashMap<(Strategy, bool, bool, u8), Engine>);

impl Engines {
    fn new() -> Engines {
        let mut engines = HashMap::new();
        for strategy in [Strategy::Interpreter, Strategy::Cranelift, Strategy::Auto] {
            for fuel in [false, true] {
                for signals in [false, true] {
                    for checks in [Checks::None, Checks::Flag, Checks::Epoch] {
                        let mut config = Config::new();
                        config
                            .strategy(strategy)
                            .consume_fuel(fuel)
                            .signals_based_traps(signals)
                            .interruptible(checks == Checks::Flag)
                            .epoch_interruption(checks == Checks::Epoch)
                            .max_call_depth(CALL_DEPTH)
                            .max_wasm_stack(WASM_STACK)
                            // Automatic tiering at once and on this thread: functions
                            // compile on their second entry, loops move into compiled
                            // code on their second iteration, deterministically.
                            .tier_up_threshold(2)
                            .tier_up_synchronously(true);
                        engines.insert((strategy, fuel, signals, checks as u8), Engine::new(&config));
                    }
                }
            }
        }
        Engines(engines)
    }

    /// Runs `subject` on both tiers, comparing as it goes; reports a mismatch (a panic, in either tier
    /// or in Cranelift, is one too).
    fn run(&self, subject: &Subject<'_>, stats: &mut Stats) {
        if let Some((history, what)) = self.compare(subject, stats) {
            subject.report(stats, &history, &what);
        }
    }

    /// Runs `subject` on both tiers: the steps and the first difference, if there is one.
    fn compare(&self, subject: &Subject<'_>, stats: &mut Stats) -> Option<(Vec<String>, String)> {
        let fuel = subject.variant == Variant::Fuel;
        let engine = |strategy| &self.0[&(strategy, fuel, subject.signals, subject.checks as u8)];
        // Every third seed compares the interpreter with automatic tiering
        // (code switching tiers mid-call, loops entered from the interpreter)
        // instead of with the compiled tier.
        let other = if subject.seed % 3 == 1 { Strategy::Auto } else { Strategy::Cranelift };
        let pair = [engine(Strategy::Interpreter), engine(other)];
        let mut history = Vec::new();
        let run = std::panic::AssertUnwindSafe(|| run_pair(subject, pair, stats, &mut history));
        let what = std::panic::catch_unwind(run).unwrap_or_else(|_| Some("panicked (see above)".into()))?;
        // The messages call the second side `cranelift`; say which it was.
        Some((history, format!("{what} (second side: {other:?})")))
    }
}

/// Runs one module on both tiers, comparing as it goes: the first difference, if any.
fn run_pair(s: &Subject<'_>, engines: [&Engine; 2], stats: &mut Stats, history: &mut Vec<String>) -> Option<String> {
    let (ma, mb) = (Module::new(engines[0], s.bytes), Module::new(engines[1], s.bytes));
    let (ma, mb) = match (ma, mb) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let o = |r: Result<Module, Error>| r.map(|_| ()).map_err(|e| e.to_string());
            return Some(format!("compilation: interp {:?}, cranelift {:?}", o(a), o(b)));
        }
    };
    let fuel = s.variant == Variant::Fuel;
    let (Some(mut a), Some(mut b)) =
        (Side::new(engines[0], &ma, s.seed, s.checks), Side::new(engines[1], &mb, s.seed, s.checks))
    else {
        stats.no_stand_in += 1;
        return None;
    };
    if fuel {
        a.store.set_fuel(BUDGET).unwrap();
        b.store.set_fuel(BUDGET).unwrap();
    }
    let (oa, ob) = (a.instantiate(&ma), b.instantiate(&mb));
    stats.instantiations += 1;
    stats.count(&oa);
    history.push(format!("instantiate: interp {oa:?}, cranelift {ob:?}, fuel left {:?} / {:?}", a.fuel(), b.fuel()));
    if oa.stack_exhausted() != ob.stack_exhausted() {
        stats.one_sided_stack += 1;
        stats.one_sided_interp += oa.stack_exhausted() as u64;
        return None;
    }
    if oa != ob {
        return Some("instantiation differs".into());
    }
    if oa.stack_exhausted() {
        stats.both_stack += 1;
        return None;
    }
    if a.fuel() != b.fuel() {
        return Some("remaining fuel differs".into());
    }
    if let Some(d) = state_difference(&mut a, &mut b) {
        return Some(d);
    }
    if oa != Outcome::Ok(Vec::new()) || a.funcs.is_empty() {
        return None;
    }
    let fuel_global = a.externs.iter().position(|(n, _)| n == FUEL_EXPORT);
    let mut r = Rng::new(s.seed ^ 0x00c0_ffee);
    let n = a.funcs.len();
    for step in 0..(n * 3).clamp(4, 40) {
        // Every function in order first, then random ones.
        let func = if step < n { step } else { r.below(n as u64) as usize };
        let ty = a.funcs[func].1.ty(&a.store);
        let args: Vec<Arg> = ty.params().iter().map(|t| argument(&mut r, t.clone(), n)).collect();
        let budget = if fuel && r.below(4) == 0 { r.below(5000) } else { BUDGET };
        let deadline_limit = if s.checks == Checks::Epoch && r.below(3) == 0 { r.below(300) } else { u64::MAX };
        for side in [&mut a, &mut b] {
            let host = side.store.data_mut();
            host.log.clear();
            host.deadline_hits = 0;
            host.deadline_limit = deadline_limit;
            if fuel {
                side.store.set_fuel(budget).unwrap();
            }
            if let Some(g) = fuel_global {
                let Extern::Global(g) = side.externs[g].1 else { unreachable!() };
                g.set(&mut side.store, Val::I32(BUDGET as i32)).unwrap();
            }
        }
        let (oa, ob) = (a.call(func, &args), b.call(func, &args));
        stats.calls += 1;
        stats.count(&oa);
        let name = &a.funcs[func].0;
        let fuel_note =
            if fuel { format!(", fuel {budget} -> {:?} / {:?}", a.fuel(), b.fuel()) } else { String::new() };
        history.push(format!("call #{func} {name:?} {args:?}: interp {oa:?}, cranelift {ob:?}{fuel_note}"));
        if oa.stack_exhausted() != ob.stack_exhausted() {
            stats.one_sided_stack += 1;
            stats.one_sided_interp += oa.stack_exhausted() as u64;
            return None;
        }
        if oa != ob {
            return Some("outcomes differ".into());
        }
        if oa.stack_exhausted() {
            stats.both_stack += 1;
            return None;
        }
        if a.fuel() != b.fuel() {
            return Some("remaining fuel differs".into());
        }
        if let Some(d) = state_difference(&mut a, &mut b) {
            return Some(d);
        }
    }
    None
}

fn seed_range() -> std::ops::Range<u64> {
    match std::env::var("CARNAC_DIFF_SEEDS") {
        Err(_) => 0..CI_SEEDS,
        Ok(s) => match s.split_once("..") {
            Some((a, b)) => a.trim().parse().unwrap()..b.trim().parse().unwrap(),
            None => 0..s.trim().parse().unwrap(),
        },
    }
}

fn print_summary(stats: &Stats, start: std::time::Instant) {
    let mut outcomes: Vec<_> = stats.outcomes.iter().collect();
    outcomes.sort();
    println!(
        "differential: {} modules, {} calls compared, {} mismatches, {} skipped (only one tier exhausted its stack: {} \
         ({} the interpreter, {} the compiled tier); {} seeds generated no module; {} modules could block in a \
         wait on a shared memory; {} module runs had an import of a non-nullable GC type with no stand-in); {} modules \
         with a 64-bit memory or table, {} with more than one memory, {} with exceptions (a tag), {} with GC types \
         (a struct or array type, or ref.i31)",
        stats.modules,
        stats.calls,
        stats.mismatches,
        stats.one_sided_stack + stats.not_generated + stats.may_block + stats.no_stand_in,
        stats.one_sided_stack,
        stats.one_sided_interp,
        stats.one_sided_stack - stats.one_sided_interp,
        stats.not_generated,
        stats.may_block,
        stats.no_stand_in,
        stats.memory64,
        stats.multi_memory,
        stats.exceptions,
        stats.gc,
    );
    println!(
        "differential: {} instantiations; outcomes {outcomes:?}; call sequences ended by stack exhaustion on both \
         tiers: {}; module runs equal only once NaNs are canonicalised: {}; {:.1} s",
        stats.instantiations,
        stats.both_stack,
        stats.nan_bits,
        start.elapsed().as_secs_f64()
    );
}

fn run_seeds() {
    let engines = Engines::new();
    let mut stats = Stats::default();
    let start = std::time::Instant::now();
    if let Ok(path) = std::env::var("CARNAC_DIFF_FILE") {
        // One module from a file (e.g. one `wasm-tools shrink` is reducing), with the arguments of the
        // first seed of `CARNAC_DIFF_SEEDS` (default 0), in the plain variant if it has the termination
        // counter, else in the fuel variant.
        let seed = std::env::var_os("CARNAC_DIFF_SEEDS").map_or(0, |_| seed_range().start);
        let bytes = std::fs::read(&path).unwrap();
        let plain = Module::new(&Engine::default(), &bytes).is_ok_and(|m| m.get_export(FUEL_EXPORT).is_some());
        let variant = if plain { Variant::Plain } else { Variant::Fuel };
        for signals in [true, false] {
            for checks in [Checks::None, Checks::Flag, Checks::Epoch] {
                let subject = Subject { label: &path, path: None, seed, variant, signals, checks, bytes: &bytes };
                engines.run(&subject, &mut stats);
            }
        }
        stats.modules += 1;
    } else {
        for seed in seed_range() {
            let Some(g) = generate(seed, false) else {
                stats.not_generated += 1;
                continue;
            };
            if may_block(&g.raw) {
                stats.may_block += 1;
                continue;
            }
            stats.modules += 1;
            let (exceptions, gc) = features(&g.raw);
            stats.exceptions += exceptions as u64;
            stats.gc += gc as u64;
            let is_64 = |ty: ExternType| match ty {
                ExternType::Memory(m) => m.is_64(),
                ExternType::Table(t) => t.is_64(),
                _ => false,
            };
            if let Ok(m) = Module::new(&Engine::default(), &g.raw) {
                if m.imports().any(|i| is_64(i.ty)) || m.exports().any(|e| is_64(e.ty)) {
                    stats.memory64 += 1;
                }
                // Every memory, imported or defined, is exported (`export_everything`).
                if m.exports().filter(|e| matches!(e.ty, ExternType::Memory(_))).count() > 1 {
                    stats.multi_memory += 1;
                }
            }
            let label = format!("seed {seed}");
            let checks = [Checks::None, Checks::Flag, Checks::Epoch][(seed / 2 % 3) as usize];
            for variant in [Variant::Plain, Variant::Fuel] {
                let bytes = if variant == Variant::Plain { &g.terminating } else { &g.raw };
                let path = Some(format!("/tmp/carnac-diff-{seed}.wasm"));
                let subject = Subject { label: &label, path, seed, variant, signals: seed % 2 == 0, checks, bytes };
                let Some((history, what)) = engines.compare(&subject, &mut stats) else { continue };
                // Arithmetic NaNs may differ in their bits, and a guest can see the bits (reinterpret
                // them, store them): compare again with NaNs canonicalised. Differences only there
                // are tolerated; what remains is a mismatch.
                let c = generate(seed, true).expect("the same module with NaNs canonicalised");
                let bytes = if variant == Variant::Plain { &c.terminating } else { &c.raw };
                if engines.compare(&Subject { bytes, path: None, ..subject }, &mut stats).is_none() {
                    stats.nan_bits += 1;
                    eprintln!("seed {seed} ({variant} variant): tiers differ only in NaN bits ({what})");
                } else {
                    subject.report(&mut stats, &history, &what);
                }
            }
        }
    }
    print_summary(&stats, start);
    let tiered = engines.0.iter().filter(|((strategy, ..), _)| *strategy == Strategy::Auto).fold(
        (0, 0, 0),
        |(f, l, e), (_, engine)| {
            let t = engine.tier_stats();
            (f + t.functions_compiled, l + t.loop_entries_compiled, e + t.loops_entered)
        },
    );
    println!(
        "differential: automatic tiering compiled {} functions and {} loop entries, and entered loops {} times",
        tiered.0, tiered.1, tiered.2
    );
    assert_eq!(stats.mismatches, 0, "the tiers disagree (see above)");
}

#[test]
fn tiers_agree_on_generated_modules() {
    // The compiled tier runs on this thread's stack: give it room beyond `WASM_STACK`.
    std::thread::Builder::new().stack_size(16 << 20).spawn(run_seeds).unwrap().join().unwrap();
}

/// Modules that once made the tiers disagree, each run like a generated module: every variant, both
/// bounds-check modes, every export called (with seed 0's arguments; what they test does not depend on
/// them).
const REGRESSIONS: &[(&str, &str)] = &[
    (
        // A v128 argument of a lane type other than the canonical one (here i16x8) to an imported function
        // or through `call_indirect`: the compiled tier bitcast it after the branch that ends the block,
        // which Cranelift rejected (a panic in release builds, where its verifier is off).
        "v128 argument to a function reference",
        r#"(module
        (type $t (func (param v128) (result v128)))
        (import "host" "f" (func $f (type $t)))
        (table 1 funcref)
        (elem (i32.const 0) $f)
        (func (export "import") (result v128)
            (call $f (i16x8.extadd_pairwise_i8x16_u (v128.const i32x4 1 2 3 4))))
        (func (export "indirect") (result v128)
            (call_indirect (type $t) (i16x8.extadd_pairwise_i8x16_u (v128.const i32x4 1 2 3 4)) (i32.const 0))))"#,
    ),
    (
        // The interpreter executes nothing for a wrap or a reinterpretation, so a constant (or local)
        // stays one through it and a `br_if` carrying it needs moves, which start a new fuel block; the
        // compiled tier took the result for a value in place and charged the rest of the block up front.
        "br_if carrying a reinterpreted constant",
        r#"(module
        (global $g (mut i64) (i64.const 0))
        (func (export "reinterpret") (param i32)
            (block
                (block (result f64)
                    (br_if 0 (f64.reinterpret_i64 (i64.const 1)) (i32.eqz (i32.const 0)))
                    (drop)
                    (f64.const 0))
                (global.set $g (i64.reinterpret_f64))))
        (func (export "wrap") (param i64) (result i32)
            (block (result i32)
                (br_if 0 (i32.wrap_i64 (local.get 0)) (i32.const 1))
                (drop)
                (i32.const 0))))"#,
    ),
    (
        // With epoch interruption, a check at the entry of a function the interpreter had entered
        // within its run of handlers resumed (after the deadline callback let the guest go on) with
        // the caller's frame pointer: the callee read and wrote the caller's slots.
        "epoch check at a callee's entry",
        r#"(module
        (func $add1 (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
        (func (export "call") (result i32) (local i32 i32)
            (local.set 0 (i32.const 1000))
            (local.set 1 (i32.const 2000))
            ;; The first call translates $add1 (and is made outside the run of handlers); the
            ;; second, with a value below its arguments, has its frame at another place.
            (drop (call $add1 (i32.const 0)))
            (i32.add (i32.add (local.get 0) (local.get 1)) (call $add1 (i32.const 41)))))"#,
    ),
];

#[test]
fn tiers_agree_on_regressions() {
    let engines = Engines::new();
    let mut stats = Stats::default();
    for (name, wat) in REGRESSIONS {
        for variant in [Variant::Plain, Variant::Fuel] {
            for signals in [true, false] {
                for checks in [Checks::None, Checks::Flag, Checks::Epoch] {
                    let bytes = wat.as_bytes();
                    let subject = Subject { label: name, path: None, seed: 0, variant, signals, checks, bytes };
                    engines.run(&subject, &mut stats);
                }
            }
        }
    }
    assert_eq!(stats.mismatches, 0, "the tiers disagree (see above)");
}
