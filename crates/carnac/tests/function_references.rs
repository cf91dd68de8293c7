//! Typed function references (WebAssembly 3.0), in the interpreter, in
//! compiled code and under automatic tiering: `call_ref` and
//! `return_call_ref` (in constant stack), their null traps and
//! `ref.as_non_null`'s, `br_on_null`/`br_on_non_null`, tables of a
//! non-nullable element type with an initialiser; and typed references
//! through the public API: host functions taking and returning
//! `(ref null $t)`, import matching by reference subtyping, values checked
//! against typed references. Also: the same fuel in both tiers, artifacts
//! keep typed references, and `Config::wasm_function_references(false)`.

use std::time::{Duration, Instant};

use carnac::*;

/// Every tier a module can run in on this build.
fn tiers() -> Vec<Strategy> {
    let mut tiers = vec![Strategy::Interpreter];
    if cfg!(carnac_compiled) {
        tiers.push(Strategy::Cranelift);
        tiers.push(Strategy::Auto);
    }
    tiers
}

fn engine(tier: Strategy) -> Engine {
    let mut config = Config::new();
    config.strategy(tier);
    Engine::new(&config)
}

fn trap(err: &Error) -> &Trap {
    err.as_trap().unwrap_or_else(|| panic!("not a trap: {err}"))
}

/// `(func (param i32) (result i32))`.
fn ii() -> FuncType {
    FuncType::new([ValType::I32], [ValType::I32])
}

/// `(ref null $ii)` (or `(ref $ii)` when not `nullable`).
fn ref_ii(nullable: bool) -> ValType {
    ValType::Ref(RefType::new(nullable, HeapType::ConcreteFunc(ii())))
}

const CALLS: &str = r#"(module
  (type $ii (func (param i32) (result i32)))
  (func $double (type $ii) (i32.mul (local.get 0) (i32.const 2)))
  (func $square (type $ii) (i32.mul (local.get 0) (local.get 0)))
  (elem declare func $double $square)
  (table $t 3 (ref $ii) (ref.func $double))
  (func $pick (param $which i32) (result (ref $ii))
    (if (result (ref $ii)) (local.get $which)
      (then (ref.func $square)) (else (ref.func $double))))
  ;; call_ref of a non-null reference: no signature check.
  (func (export "apply") (param $which i32) (param $x i32) (result i32)
    (call_ref $ii (local.get $x) (call $pick (local.get $which))))
  (func (export "apply_null") (param $x i32) (result i32)
    (call_ref $ii (local.get $x) (ref.null $ii)))
  (func (export "tail_null") (param $x i32) (result i32)
    (return_call_ref $ii (local.get $x) (ref.null $ii)))
  (func (export "as_non_null") (param $null i32) (result i32)
    (local $f (ref null $ii))
    (if (i32.eqz (local.get $null)) (then (local.set $f (ref.func $square))))
    (call_ref $ii (i32.const 7) (ref.as_non_null (local.get $f))))
  ;; -1 for null, else the function's result for 5.
  (func (export "on_null") (param $null i32) (result i32)
    (local $f (ref null $ii))
    (if (i32.eqz (local.get $null)) (then (local.set $f (ref.func $double))))
    (block $is_null
      (return (call_ref $ii (i32.const 5) (br_on_null $is_null (local.get $f)))))
    (i32.const -1))
  (func (export "on_non_null") (param $null i32) (result i32)
    (local $f (ref null $ii))
    (if (i32.eqz (local.get $null)) (then (local.set $f (ref.func $square))))
    (i32.const 5)
    (block $some (param i32) (result i32 (ref $ii))
      (br_on_non_null $some (local.get $f))
      (drop)
      (return (i32.const -1)))
    (call_ref $ii))
  ;; The table: non-nullable, every element $double until set.
  (func (export "table_call") (param $i i32) (param $x i32) (result i32)
    (call_ref $ii (local.get $x) (table.get $t (local.get $i))))
  (func (export "table_set_square") (param $i i32)
    (table.set $t (local.get $i) (ref.func $square)))
  (func (export "table_grow") (param $n i32) (result i32)
    (table.grow $t (ref.func $square) (local.get $n)))
  ;; Counting down by tail calls through a typed reference: constant stack.
  (type $loop (func (param i32 i64) (result i64)))
  (elem declare func $count)
  (func $count (export "count") (type $loop)
    (if (result i64) (i32.eqz (local.get 0))
      (then (local.get 1))
      (else (return_call_ref $loop
        (i32.sub (local.get 0) (i32.const 1))
        (i64.add (local.get 1) (i64.extend_i32_u (local.get 0)))
        (ref.func $count))))))"#;

#[test]
fn call_ref_and_its_null_traps_in_every_tier() {
    for tier in tiers() {
        let engine = engine(tier);
        let module = Module::new(&engine, CALLS).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let apply = instance.get_typed_func::<(i32, i32), i32>(&store, "apply").unwrap();
        assert_eq!(apply.call(&mut store, (0, 21)).unwrap(), 42, "{tier:?}");
        assert_eq!(apply.call(&mut store, (1, 9)).unwrap(), 81, "{tier:?}");
        for name in ["apply_null", "tail_null"] {
            let f = instance.get_typed_func::<i32, i32>(&store, name).unwrap();
            let err = f.call(&mut store, 3).unwrap_err();
            assert_eq!(trap(&err).kind(), TrapKind::NullFunctionReference, "{tier:?} {name}");
            assert_eq!(TrapKind::NullFunctionReference.message(), "null function reference");
            assert!(err.to_string().contains("null function reference"), "{tier:?}: {err}");
        }
        let as_non_null = instance.get_typed_func::<i32, i32>(&store, "as_non_null").unwrap();
        assert_eq!(as_non_null.call(&mut store, 0).unwrap(), 49, "{tier:?}");
        let err = as_non_null.call(&mut store, 1).unwrap_err();
        assert_eq!(trap(&err).kind(), TrapKind::NullReference, "{tier:?}");
        assert_eq!(TrapKind::NullReference.message(), "null reference");
    }
}

#[test]
fn br_on_null_and_br_on_non_null_in_every_tier() {
    for tier in tiers() {
        let engine = engine(tier);
        let module = Module::new(&engine, CALLS).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let on_null = instance.get_typed_func::<i32, i32>(&store, "on_null").unwrap();
        let on_non_null = instance.get_typed_func::<i32, i32>(&store, "on_non_null").unwrap();
        assert_eq!(on_null.call(&mut store, 0).unwrap(), 10, "{tier:?}");
        assert_eq!(on_null.call(&mut store, 1).unwrap(), -1, "{tier:?}");
        assert_eq!(on_non_null.call(&mut store, 0).unwrap(), 25, "{tier:?}");
        assert_eq!(on_non_null.call(&mut store, 1).unwrap(), -1, "{tier:?}");
    }
}

#[test]
fn non_nullable_tables_start_as_their_initialiser() {
    for tier in tiers() {
        let engine = engine(tier);
        let module = Module::new(&engine, CALLS).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let call = instance.get_typed_func::<(i32, i32), i32>(&store, "table_call").unwrap();
        let set = instance.get_typed_func::<i32, ()>(&store, "table_set_square").unwrap();
        let grow = instance.get_typed_func::<i32, i32>(&store, "table_grow").unwrap();
        for i in 0..3 {
            assert_eq!(call.call(&mut store, (i, 6)).unwrap(), 12, "{tier:?}");
        }
        set.call(&mut store, 1).unwrap();
        assert_eq!(call.call(&mut store, (1, 6)).unwrap(), 36, "{tier:?}");
        assert_eq!(grow.call(&mut store, 2).unwrap(), 3, "{tier:?}");
        assert_eq!(call.call(&mut store, (4, 3)).unwrap(), 9, "{tier:?}");
        let err = call.call(&mut store, (5, 3)).unwrap_err();
        assert_eq!(trap(&err).kind(), TrapKind::TableOutOfBounds, "{tier:?}");
    }
}

#[test]
fn return_call_ref_runs_in_constant_stack() {
    const N: i32 = 1_000_000;
    for tier in tiers() {
        let engine = engine(tier);
        let module = Module::new(&engine, CALLS).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let count = instance.get_typed_func::<(i32, i64), i64>(&store, "count").unwrap();
        let sum = N as i64 * (N as i64 + 1) / 2;
        assert_eq!(count.call(&mut store, (N, 0)).unwrap(), sum, "{tier:?}");
    }
}

/// Under `Strategy::Auto`: `call_ref` keeps its results while the functions
/// move to compiled code.
#[test]
fn call_ref_across_tiers_under_auto() {
    if !cfg!(carnac_compiled) || std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return;
    }
    let engine = engine(Strategy::Auto);
    let module = Module::new(&engine, CALLS).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let apply = instance.get_typed_func::<(i32, i32), i32>(&store, "apply").unwrap();
    let on_null = instance.get_typed_func::<i32, i32>(&store, "on_null").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while engine.tier_stats().functions_compiled < 2 {
        assert!(Instant::now() < deadline, "nothing tiered up");
        for x in 0..50 {
            assert_eq!(apply.call(&mut store, (x & 1, x)).unwrap(), if x & 1 == 1 { x * x } else { 2 * x });
            assert_eq!(on_null.call(&mut store, x & 1).unwrap(), if x & 1 == 1 { -1 } else { 10 });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(apply.call(&mut store, (1, 12)).unwrap(), 144);
    let null = instance.get_typed_func::<i32, i32>(&store, "apply_null").unwrap();
    assert_eq!(trap(&null.call(&mut store, 1).unwrap_err()).kind(), TrapKind::NullFunctionReference);
}

/// A host function taking and returning `(ref null $ii)`: it gets the
/// guest's reference and returns one (its own argument, or null), which the
/// guest calls.
#[test]
fn host_functions_take_and_return_typed_references() {
    let wat = r#"(module
      (type $ii (func (param i32) (result i32)))
      (import "host" "pass" (func $pass (param (ref null $ii) i32) (result (ref null $ii))))
      (func $inc (type $ii) (i32.add (local.get 0) (i32.const 1)))
      (elem declare func $inc)
      (func (export "run") (param $keep i32) (param $x i32) (result i32)
        (call_ref $ii (local.get $x) (call $pass (ref.func $inc) (local.get $keep)))))"#;
    for tier in tiers() {
        let engine = engine(tier);
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let ty = FuncType::new([ref_ii(true), ValType::I32], [ref_ii(true)]);
        assert_eq!(ty.to_string(), "(func (param (ref null (func (param i32) (result i32))) i32) (result (ref null (func (param i32) (result i32)))))");
        let pass = Func::new(&mut store, ty, |mut caller, params, results| {
            let Val::FuncRef(Some(f)) = params[0] else { panic!("expected a function, got {:?}", params[0]) };
            assert_eq!(f.ty(&mut caller), ii());
            results[0] = if params[1].i32() == Some(1) { params[0] } else { Val::FuncRef(None) };
            Ok(())
        });
        let instance = Instance::new(&mut store, &module, &[pass.into()]).unwrap();
        let run = instance.get_typed_func::<(i32, i32), i32>(&store, "run").unwrap();
        assert_eq!(run.call(&mut store, (1, 41)).unwrap(), 42, "{tier:?}");
        let err = run.call(&mut store, (0, 41)).unwrap_err();
        assert_eq!(trap(&err).kind(), TrapKind::NullFunctionReference, "{tier:?}");
    }
}

/// A host function whose result type is `(ref $ii)` may not return null nor
/// a function of another type: the call fails (a host error), never a guest
/// holding a value its type does not allow.
#[test]
fn host_results_are_checked_against_typed_references() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let other = Func::wrap(&mut store, |x: i64| x);
    for result in [Val::FuncRef(None), Val::FuncRef(Some(other))] {
        let f = Func::new(&mut store, FuncType::new([], [ref_ii(false)]), move |_, _, results| {
            results[0] = result;
            Ok(())
        });
        let mut out = [Val::FuncRef(None)];
        let err = f.call(&mut store, &[], &mut out).unwrap_err();
        assert!(err.to_string().contains("host function returned"), "{err}");
    }
}

/// Import matching: an immutable global of type `(ref $ii)` matches imports
/// of `(ref null $ii)`, `(ref func)` and `funcref` (subtyping, with `$ii`
/// compared structurally across modules), not `(ref null $other)` nor
/// `externref`; a mutable one only its own type.
#[test]
fn imports_match_by_reference_subtyping() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let exporter = Module::new(
        &engine,
        r#"(module
          (type $ii (func (param i32) (result i32)))
          (func $f (type $ii) (local.get 0))
          (elem declare func $f)
          (global (export "g") (ref $ii) (ref.func $f))
          (global (export "m") (mut (ref $ii)) (ref.func $f)))"#,
    )
    .unwrap();
    let exporter = Instance::new(&mut store, &exporter, &[]).unwrap();
    let g = exporter.get_global(&store, "g").unwrap();
    let m = exporter.get_global(&store, "m").unwrap();
    assert_eq!(g.ty(&store).content(), ref_ii(false));
    let import = |ty: &str, mutable: bool| {
        let ty = if mutable { format!("(mut {ty})") } else { ty.to_string() };
        Module::new(
            &engine,
            format!(
                r#"(module (type $ii2 (func (param i32) (result i32))) (type $other (func (param i64)))
                     (global (import "m" "g") {ty}))"#
            ),
        )
        .unwrap()
    };
    for ty in ["(ref null $ii2)", "(ref $ii2)", "(ref func)", "funcref"] {
        Instance::new(&mut store, &import(ty, false), &[g.into()]).unwrap_or_else(|e| panic!("{ty}: {e}"));
    }
    for ty in ["(ref null $other)", "externref"] {
        let err = Instance::new(&mut store, &import(ty, false), &[g.into()]).unwrap_err();
        assert!(matches!(err, Error::IncompatibleImport { .. }), "{ty}: {err}");
    }
    Instance::new(&mut store, &import("(ref $ii2)", true), &[m.into()]).unwrap();
    for ty in ["(ref null $ii2)", "funcref"] {
        let err = Instance::new(&mut store, &import(ty, true), &[m.into()]).unwrap_err();
        assert!(matches!(err, Error::IncompatibleImport { .. }), "mutable {ty}: {err}");
    }
}

/// Tables and globals made by the host: a non-nullable type refuses null,
/// and a typed one a function of another type.
#[test]
fn host_tables_and_globals_check_typed_references() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let double = Func::wrap(&mut store, |x: i32| x * 2);
    let other = Func::wrap(&mut store, |x: i64| x);
    let table_ty = TableType::new(ref_ii(false), 2, None);
    assert!(Table::new(&mut store, table_ty.clone(), Val::FuncRef(None)).is_err());
    assert!(Table::new(&mut store, table_ty.clone(), Val::FuncRef(Some(other))).is_err());
    let table = Table::new(&mut store, table_ty, Val::FuncRef(Some(double))).unwrap();
    assert!(table.set(&mut store, 0, Val::FuncRef(None)).is_err());
    assert!(table.grow(&mut store, 1, Val::FuncRef(None)).is_err());
    let global_ty = GlobalType::new(ref_ii(true), Mutability::Var);
    let global = Global::new(&mut store, global_ty, Val::FuncRef(None)).unwrap();
    assert!(global.set(&mut store, Val::FuncRef(Some(other))).is_err());
    global.set(&mut store, Val::FuncRef(Some(double))).unwrap();
    assert!(matches!(global.get(&mut store), Val::FuncRef(Some(f)) if f == double));
    assert!(Val::FuncRef(Some(double)).matches_ty(&store, &ref_ii(false)));
    assert!(!Val::FuncRef(Some(other)).matches_ty(&store, &ref_ii(true)));
    assert!(!Val::FuncRef(None).matches_ty(&store, &ref_ii(false)));
    assert!(Val::FuncRef(None).matches_ty(&store, &ref_ii(true)));
    // `ValType::FuncRef` is `funcref` still: any function, or null.
    assert_eq!(ValType::FuncRef, ValType::Ref(RefType::new(true, HeapType::Func)));
    assert!(ref_ii(false).matches(&ValType::FuncRef));
    assert!(!ValType::FuncRef.matches(&ref_ii(true)));
}

#[test]
fn function_references_can_be_turned_off() {
    let mut config = Config::new();
    config.wasm_function_references(false);
    let engine = Engine::new(&config);
    assert!(Module::new(&engine, CALLS).is_err());
    // WebAssembly 2.0's references still work.
    Module::new(&engine, r#"(module (table 1 funcref) (func (param funcref externref)))"#).unwrap();
}

/// Fuel: the new operators cost the same in compiled code as in the
/// interpreter (each tier charges what the interpreter executes).
#[test]
fn fuel_is_the_same_in_both_tiers() {
    if !cfg!(carnac_compiled) {
        return;
    }
    let calls: &[(&str, &[i32])] = &[
        ("apply", &[0, 5]),
        ("apply", &[1, 5]),
        ("on_null", &[0]),
        ("on_null", &[1]),
        ("on_non_null", &[0]),
        ("on_non_null", &[1]),
        ("as_non_null", &[0]),
        ("table_call", &[2, 3]),
    ];
    let used = |tier: Strategy| -> Vec<(i32, u64)> {
        let mut config = Config::new();
        config.strategy(tier).consume_fuel(true);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, CALLS).unwrap();
        let mut store = Store::new(&engine, ());
        store.set_fuel(1 << 40).unwrap();
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        calls
            .iter()
            .map(|(name, args)| {
                let f = instance.get_func(&store, name).unwrap();
                let args: Vec<Val> = args.iter().map(|&a| Val::I32(a)).collect();
                let mut out = [Val::I32(0)];
                let before = store.get_fuel().unwrap();
                f.call(&mut store, &args, &mut out).unwrap();
                (out[0].i32().unwrap(), before - store.get_fuel().unwrap())
            })
            .collect()
    };
    assert_eq!(used(Strategy::Interpreter), used(Strategy::Cranelift));
}

/// A compiled artifact keeps its typed references: `call_ref` and the null
/// traps work in a module loaded from one.
#[test]
fn artifacts_keep_typed_references() {
    if !cfg!(carnac_compiled) {
        return;
    }
    let engine = engine(Strategy::Cranelift);
    let bytes = Module::new(&engine, CALLS).unwrap().serialize().unwrap();
    let module = Module::deserialize(&engine, &bytes).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let apply = instance.get_typed_func::<(i32, i32), i32>(&store, "apply").unwrap();
    assert_eq!(apply.call(&mut store, (1, 11)).unwrap(), 121);
    let on_non_null = instance.get_typed_func::<i32, i32>(&store, "on_non_null").unwrap();
    assert_eq!(on_non_null.call(&mut store, 1).unwrap(), -1);
    let as_non_null = instance.get_typed_func::<i32, i32>(&store, "as_non_null").unwrap();
    assert_eq!(trap(&as_non_null.call(&mut store, 1).unwrap_err()).kind(), TrapKind::NullReference);
    let null = instance.get_typed_func::<i32, i32>(&store, "apply_null").unwrap();
    assert_eq!(trap(&null.call(&mut store, 1).unwrap_err()).kind(), TrapKind::NullFunctionReference);
}
