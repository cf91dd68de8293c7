//! Relaxed SIMD is deterministic in Carnac (`module::relaxed`): each relaxed
//! instruction, run on edge inputs (NaNs with payloads, -0.0, infinities,
//! floats out of the integer range for the truncations, swizzle indexes >= 16,
//! i8 lanes of -128 and 127, values where a fused multiply-add would differ
//! from the unfused one), gives
//!
//! - in each tier, the result of the instruction Carnac defines it as (a
//!   plain WebAssembly sequence, or for the dot products a Rust model), bit
//!   for bit;
//! - the same result in the interpreter and the compiled tier, bit for bit,
//!   except in NaN lanes of float results, where any NaN equals any NaN: a
//!   NaN's payload is not specified by WebAssembly for arithmetic
//!   (`nan:arithmetic`), and Carnac does not canonicalise it for any float
//!   instruction. The bits of `relaxed_min`/`max` NaNs differ between the tiers
//!   exactly as those of `f32x4.min`/`max` already do (see
//!   tests/differential.rs), and an optimised build of the interpreter may
//!   propagate the other operand's payload through `relaxed_madd` than through
//!   the `mul` + `add` it is defined as (the release-build test run saw it).

use carnac::*;

const TIERS: &[Strategy] =
    if cfg!(carnac_compiled) { &[Strategy::Interpreter, Strategy::Cranelift] } else { &[Strategy::Interpreter] };

/// Each case: the relaxed instruction, its arity, and the plain instruction
/// sequence (over `$a`, `$b`, `$c`) Carnac's result equals; `None` where the
/// model is in Rust ([`model`]).
const CASES: &[(&str, usize, Option<&str>)] = &[
    ("i8x16.relaxed_swizzle", 2, Some("(i8x16.swizzle $a $b)")),
    ("i32x4.relaxed_trunc_f32x4_s", 1, Some("(i32x4.trunc_sat_f32x4_s $a)")),
    ("i32x4.relaxed_trunc_f32x4_u", 1, Some("(i32x4.trunc_sat_f32x4_u $a)")),
    ("i32x4.relaxed_trunc_f64x2_s_zero", 1, Some("(i32x4.trunc_sat_f64x2_s_zero $a)")),
    ("i32x4.relaxed_trunc_f64x2_u_zero", 1, Some("(i32x4.trunc_sat_f64x2_u_zero $a)")),
    ("f32x4.relaxed_madd", 3, Some("(f32x4.add (f32x4.mul $a $b) $c)")),
    ("f32x4.relaxed_nmadd", 3, Some("(f32x4.add (f32x4.neg (f32x4.mul $a $b)) $c)")),
    ("f64x2.relaxed_madd", 3, Some("(f64x2.add (f64x2.mul $a $b) $c)")),
    ("f64x2.relaxed_nmadd", 3, Some("(f64x2.add (f64x2.neg (f64x2.mul $a $b)) $c)")),
    ("i8x16.relaxed_laneselect", 3, Some("(v128.bitselect $a $b $c)")),
    ("i16x8.relaxed_laneselect", 3, Some("(v128.bitselect $a $b $c)")),
    ("i32x4.relaxed_laneselect", 3, Some("(v128.bitselect $a $b $c)")),
    ("i64x2.relaxed_laneselect", 3, Some("(v128.bitselect $a $b $c)")),
    ("f32x4.relaxed_min", 2, Some("(f32x4.min $a $b)")),
    ("f32x4.relaxed_max", 2, Some("(f32x4.max $a $b)")),
    ("f64x2.relaxed_min", 2, Some("(f64x2.min $a $b)")),
    ("f64x2.relaxed_max", 2, Some("(f64x2.max $a $b)")),
    ("i16x8.relaxed_q15mulr_s", 2, Some("(i16x8.q15mulr_sat_s $a $b)")),
    ("i16x8.relaxed_dot_i8x16_i7x16_s", 2, None),
    ("i32x4.relaxed_dot_i8x16_i7x16_add_s", 3, None),
];

/// The module: per case `r<i>` (the relaxed instruction on its parameters),
/// `k<i>_<j>` (the same with its operands from `v128.const`s, those of
/// `consts[j]`: the translators' constant-operand paths) and `p<i>` (the plain
/// sequence).
fn module_text(consts: &[[u128; 3]]) -> String {
    let mut m = String::from("(module\n");
    for (i, (name, arity, plain)) in CASES.iter().enumerate() {
        let params: String = ["$a", "$b", "$c"][..*arity].iter().map(|p| format!("(param {p} v128) ")).collect();
        let args: String = ["$a", "$b", "$c"][..*arity].iter().map(|p| format!(" (local.get {p})")).collect();
        m += &format!("  (func (export \"r{i}\") {params}(result v128) ({name}{args}))\n");
        for (j, k) in consts.iter().enumerate() {
            let kargs: String = k[..*arity]
                .iter()
                .map(|c| format!(" (v128.const i64x2 {} {})", *c as u64 as i64, (*c >> 64) as u64 as i64))
                .collect();
            m += &format!("  (func (export \"k{i}_{j}\") (result v128) ({name}{kargs}))\n");
        }
        if let Some(plain) = plain {
            let body =
                plain.replace("$a", "(local.get $a)").replace("$b", "(local.get $b)").replace("$c", "(local.get $c)");
            m += &format!("  (func (export \"p{i}\") {params}(result v128) {body})\n");
        }
    }
    m + ")"
}

/// The dot products as Carnac defines them: both operands signed, adjacent
/// products added with 16-bit wrapping; `_add_s` then adds those pairwise into
/// 32 bits and adds the accumulator.
fn model(name: &str, a: u128, b: u128, c: u128) -> u128 {
    let (x, y) = (a.to_le_bytes().map(|v| v as i8), b.to_le_bytes().map(|v| v as i8));
    let dot: [i16; 8] = std::array::from_fn(|i| {
        (x[2 * i] as i16 * y[2 * i] as i16).wrapping_add(x[2 * i + 1] as i16 * y[2 * i + 1] as i16)
    });
    let mut out = 0u128;
    if name == "i16x8.relaxed_dot_i8x16_i7x16_s" {
        for (i, d) in dot.iter().enumerate() {
            out |= (*d as u16 as u128) << (16 * i);
        }
    } else {
        for i in 0..4 {
            let acc = (c >> (32 * i)) as u32 as i32;
            let lane = (dot[2 * i] as i32 + dot[2 * i + 1] as i32).wrapping_add(acc);
            out |= (lane as u32 as u128) << (32 * i);
        }
    }
    out
}

fn f32s(l: [f32; 4]) -> u128 {
    l.iter().enumerate().fold(0, |v, (i, x)| v | (x.to_bits() as u128) << (32 * i))
}

fn f64s(l: [f64; 2]) -> u128 {
    l[0].to_bits() as u128 | (l[1].to_bits() as u128) << 64
}

fn bytes(l: [i8; 16]) -> u128 {
    u128::from_le_bytes(l.map(|x| x as u8))
}

/// The inputs, in every combination per instruction.
fn inputs() -> Vec<u128> {
    let nan32 = f32::from_bits(0x7fc0_0000);
    let neg_nan_payload = f32::from_bits(0xffc0_1234);
    let snan32 = f32::from_bits(0x7f80_0001);
    let nan64 = f64::from_bits(0x7ff8_0000_0000_0000);
    let snan64 = f64::from_bits(0x7ff0_0000_0000_0001);
    let neg_nan64_payload = f64::from_bits(0xfff8_0000_dead_beef);
    vec![
        0,
        u128::MAX,
        f32s([nan32, -0.0, 0.0, f32::INFINITY]),
        f32s([neg_nan_payload, snan32, f32::NEG_INFINITY, -1.0]),
        // Out of the i32/u32 range, and just inside.
        f32s([2147483648.0, -2147483904.0, 4294967296.0, 4294967040.0]),
        f32s([2147483520.0, -2147483648.0, -0.75, 1.5]),
        // relaxed_madd: fused and unfused differ (1+2^-22)(1+2^-13) - (1+2^-13+2^-22).
        f32s([f32::from_bits(0x3f80_0002), f32::from_bits(0x3f80_0100), -f32::from_bits(0x3f80_0102), f32::MAX]),
        f32s([2.0, f32::MAX, -f32::MAX, f32::MIN_POSITIVE]),
        f64s([nan64, -0.0]),
        f64s([snan64, neg_nan64_payload]),
        f64s([2147483648.0, -2147483649.0]),
        f64s([4294967296.0, 4294967295.5]),
        f64s([-0.9, 1e300]),
        f64s([f64::from_bits(0x3ff0_0000_4000_0000), f64::from_bits(0x3ff0_0002_0000_0000)]),
        f64s([-f64::from_bits(0x3ff0_0002_4000_0000), f64::MAX]),
        // Swizzle indexes in and out of range; the i8 extremes for the dot products.
        bytes([0, 15, 16, 17, 31, 32, -128, -1, 127, 1, 2, 3, 100, -100, 7, 8]),
        bytes([-128, -128, 127, 127, -128, 127, -1, -1, 64, 64, -64, -64, 1, -1, 0, 126]),
        bytes([-127, -127, -128, -128, 127, -128, 126, 5, -7, 9, 63, -63, 120, 121, -122, 3]),
        // q15mulr: -32768 * -32768 saturates.
        u128::from_le_bytes([
            0x00, 0x80, 0x00, 0x80, 0xff, 0x7f, 0x01, 0x00, 0x00, 0x40, 0x00, 0xc0, 0x34, 0x12, 0xcd, 0xab,
        ]),
        0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
    ]
}

/// Some operand triples for the constant-operand functions.
fn consts() -> Vec<[u128; 3]> {
    let i = inputs();
    vec![[i[6], i[6], i[7]], [i[15], i[16], i[2]], [i[4], i[3], i[2]], [i[13], i[13], i[14]]]
}

/// Runs every case on its constants and on every combination of inputs; the
/// results, in order.
fn run(tier: Strategy) -> Vec<u128> {
    let consts = consts();
    let mut config = Config::new();
    config.strategy(tier);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, module_text(&consts)).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let inputs = inputs();
    let mut results = Vec::new();
    for (i, (name, arity, plain)) in CASES.iter().enumerate() {
        for (j, k) in consts.iter().enumerate() {
            let f = instance.get_typed_func::<(), u128>(&store, &format!("k{i}_{j}")).unwrap();
            let r = f.call(&mut store, ()).unwrap();
            let expected = match plain {
                Some(_) => call(&instance, &mut store, &format!("p{i}"), *arity, *k),
                None => model(name, k[0], k[1], k[2]),
            };
            check(name, tier, *k, r, expected);
            results.push(r);
        }
        let n = inputs.len();
        for combo in 0..n.pow(*arity as u32) {
            let args = [inputs[combo % n], inputs[combo / n % n], inputs[combo / n / n % n]];
            let r = call(&instance, &mut store, &format!("r{i}"), *arity, args);
            let expected = match plain {
                Some(_) => call(&instance, &mut store, &format!("p{i}"), *arity, args),
                None => model(name, args[0], args[1], args[2]),
            };
            check(name, tier, args, r, expected);
            results.push(r);
        }
    }
    results
}

fn call(instance: &Instance, store: &mut Store<()>, export: &str, arity: usize, args: [u128; 3]) -> u128 {
    let [a, b, c] = args;
    match arity {
        1 => instance.get_typed_func::<u128, u128>(&*store, export).unwrap().call(&mut *store, a),
        2 => instance.get_typed_func::<(u128, u128), u128>(&*store, export).unwrap().call(&mut *store, (a, b)),
        _ => instance.get_typed_func::<(u128, u128, u128), u128>(&*store, export).unwrap().call(&mut *store, (a, b, c)),
    }
    .unwrap()
}

fn check(name: &str, tier: Strategy, args: [u128; 3], got: u128, expected: u128) {
    let (got, expected) = (canonical_nans(name, got), canonical_nans(name, expected));
    assert_eq!(got, expected, "{name} in {tier:?} on {args:032x?}: {got:032x}, expected {expected:032x}");
}

/// `v` with every NaN lane of `name`'s float shape made canonical.
fn canonical_nans(name: &str, v: u128) -> u128 {
    if name.starts_with("f32x4") {
        f32s(std::array::from_fn(|i| {
            let x = f32::from_bits((v >> (32 * i)) as u32);
            if x.is_nan() {
                f32::from_bits(0x7fc0_0000)
            } else {
                x
            }
        }))
    } else if name.starts_with("f64x2") {
        f64s(std::array::from_fn(|i| {
            let x = f64::from_bits((v >> (64 * i)) as u64);
            if x.is_nan() {
                f64::from_bits(0x7ff8_0000_0000_0000)
            } else {
                x
            }
        }))
    } else {
        v
    }
}

#[test]
fn relaxed_simd_is_deterministic_across_tiers() {
    let n = inputs().len();
    let runs: Vec<Vec<u128>> = TIERS.iter().map(|t| run(*t)).collect();
    let mut at = 0;
    for (name, arity, _) in CASES {
        let count = consts().len() + n.pow(*arity as u32);
        for (x, y) in runs[0][at..at + count].iter().zip(runs.last().unwrap()[at..at + count].iter()) {
            let (x, y) = (canonical_nans(name, *x), canonical_nans(name, *y));
            assert_eq!(x, y, "{name}: the tiers differ: {x:032x} and {y:032x}");
        }
        at += count;
    }
    assert_eq!(at, runs[0].len());
}

/// The fused and the unfused multiply-add differ on one of the inputs: the
/// test covers the choice (unfused).
#[test]
fn relaxed_madd_is_unfused() {
    let a = f32::from_bits(0x3f80_0002);
    let b = f32::from_bits(0x3f80_0100);
    let c = -f32::from_bits(0x3f80_0102);
    assert_ne!(a.mul_add(b, c), a * b + c);
    for tier in TIERS {
        let mut config = Config::new();
        config.strategy(*tier);
        let engine = Engine::new(&config);
        let module = Module::new(
            &engine,
            "(module (func (export \"f\") (param v128 v128 v128) (result v128)
                (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2))))",
        )
        .unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        let f = instance.get_typed_func::<(u128, u128, u128), u128>(&store, "f").unwrap();
        let r = f.call(&mut store, (f32s([a; 4]), f32s([b; 4]), f32s([c; 4]))).unwrap();
        assert_eq!(r, f32s([a * b + c; 4]), "{tier:?}");
    }
}
