//! The GC proposal's type system, in the interpreter and in compiled code:
//! recursion groups canonicalised across modules (an equivalent group's
//! function imported and called through `call_indirect`, a different one
//! rejected), `call_indirect` and import matching by declared subtyping,
//! `ref.test` / `ref.cast` / `br_on_cast` / `br_on_cast_fail` against every
//! abstract heap type and concrete ones, `i31` edge values, `ref.eq`, the
//! `anyref`/`externref` conversions, and `AnyRef` / `I31` host values.

use carnac::*;

/// Every tier a module can run in on this build.
fn tiers() -> Vec<Strategy> {
    let mut tiers = vec![Strategy::Interpreter];
    if cfg!(carnac_compiled) {
        tiers.push(Strategy::Cranelift);
    }
    tiers
}

fn engine(tier: Strategy) -> Engine {
    let mut config = Config::new();
    config.strategy(tier).wasm_gc(true);
    Engine::new(&config)
}

fn trap_kind(err: &Error) -> TrapKind {
    err.as_trap().unwrap_or_else(|| panic!("not a trap: {err}")).kind()
}

/// Two modules declaring the same recursion group (a function type whose
/// parameter refers to the group's struct type): the exporter's function is
/// imported by the other, placed in its table and called through
/// `call_indirect` of its own (equivalent) type.
const EXPORTER: &str = r#"(module
  (rec (type $s (struct (field (ref null $f)))) (type $f (func (param (ref null $s)) (result i32))))
  (func (export "f") (type $f) (i32.const 42)))"#;

const IMPORTER: &str = r#"(module
  (rec (type $s (struct (field (ref null $f)))) (type $f (func (param (ref null $s)) (result i32))))
  (import "m" "f" (func $f (type $f)))
  (table 1 funcref)
  (elem (i32.const 0) $f)
  (func (export "call") (result i32)
    (call_indirect (type $f) (ref.null $s) (i32.const 0))))"#;

/// The same names in a group of a different shape (the struct's field is
/// mutable): not the same types.
const OTHER_GROUP: &str = r#"(module
  (rec (type $s (struct (field (mut (ref null $f))))) (type $f (func (param (ref null $s)) (result i32))))
  (import "m" "f" (func $f (type $f))))"#;

#[test]
fn equivalent_rec_groups_are_one_type_across_modules() {
    for tier in tiers() {
        let engine = engine(tier);
        let mut store = Store::new(&engine, ());
        let exporter = Instance::new(&mut store, &Module::new(&engine, EXPORTER).unwrap(), &[]).unwrap();
        let f = exporter.get_func(&store, "f").unwrap();
        let importer = Instance::new(&mut store, &Module::new(&engine, IMPORTER).unwrap(), &[f.into()]).unwrap();
        let call = importer.get_typed_func::<(), i32>(&store, "call").unwrap();
        assert_eq!(call.call(&mut store, ()).unwrap(), 42, "{tier:?}");
        // Both modules' `$f` is one canonical type: the exported function's type equals the import's.
        let module = Module::new(&engine, IMPORTER).unwrap();
        let import_ty = module.imports().next().unwrap().ty;
        match import_ty {
            ExternType::Func(t) => assert_eq!(t, f.ty(&store), "{tier:?}"),
            other => panic!("{other:?}"),
        }
        // A group of a different shape is a different type: unlinkable.
        let other = Module::new(&engine, OTHER_GROUP).unwrap();
        let err = Instance::new(&mut store, &other, &[f.into()]).unwrap_err();
        assert!(matches!(err, Error::IncompatibleImport { .. }), "{tier:?}: {err}");
    }
}

const SUBTYPES: &str = r#"(module
  (type $base (sub (func (result i32))))
  (type $derived (sub $base (func (result i32))))
  (type $other (func (result i32)))
  (func $a (type $base) (i32.const 1))
  (func $b (type $derived) (i32.const 2))
  (func $c (type $other) (i32.const 3))
  (table 3 funcref)
  (elem (i32.const 0) $a $b $c)
  (func (export "call_base") (param i32) (result i32)
    (call_indirect (type $base) (local.get 0)))
  (func (export "call_derived") (param i32) (result i32)
    (call_indirect (type $derived) (local.get 0)))
  (func (export "tail_base") (param i32) (result i32)
    (return_call_indirect (type $base) (local.get 0)))
  (func (export "derived") (type $derived) (i32.const 7)))"#;

#[test]
fn call_indirect_accepts_declared_subtypes_only() {
    for tier in tiers() {
        let engine = engine(tier);
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &Module::new(&engine, SUBTYPES).unwrap(), &[]).unwrap();
        for name in ["call_base", "tail_base"] {
            let f = instance.get_typed_func::<i32, i32>(&store, name).unwrap();
            assert_eq!(f.call(&mut store, 0).unwrap(), 1, "{tier:?} {name}");
            // A `$derived` function is a `$base` one.
            assert_eq!(f.call(&mut store, 1).unwrap(), 2, "{tier:?} {name}");
            // `$other` has the same signature but is final and unrelated.
            let err = f.call(&mut store, 2).unwrap_err();
            assert_eq!(trap_kind(&err), TrapKind::BadSignature, "{tier:?} {name}");
        }
        let derived = instance.get_typed_func::<i32, i32>(&store, "call_derived").unwrap();
        assert_eq!(derived.call(&mut store, 1).unwrap(), 2, "{tier:?}");
        // Not the other way round: a `$base` function is not a `$derived` one.
        assert_eq!(trap_kind(&derived.call(&mut store, 0).unwrap_err()), TrapKind::BadSignature, "{tier:?}");
        assert_eq!(trap_kind(&derived.call(&mut store, 2).unwrap_err()), TrapKind::BadSignature, "{tier:?}");
    }
}

#[test]
fn imports_match_by_declared_subtyping() {
    for tier in tiers() {
        let engine = engine(tier);
        let mut store = Store::new(&engine, ());
        let provider = Instance::new(&mut store, &Module::new(&engine, SUBTYPES).unwrap(), &[]).unwrap();
        let derived = provider.get_func(&store, "derived").unwrap();
        // A `$derived` function where a `$base` one is wanted: linked.
        let wants_base = Module::new(
            &engine,
            r#"(module
              (type $base (sub (func (result i32))))
              (import "m" "f" (func $f (type $base)))
              (func (export "run") (result i32) (call $f)))"#,
        )
        .unwrap();
        let i = Instance::new(&mut store, &wants_base, &[derived.into()]).unwrap();
        assert_eq!(i.get_typed_func::<(), i32>(&store, "run").unwrap().call(&mut store, ()).unwrap(), 7);
        // A `$derived` function where a final `(func (result i32))` is wanted: not linked.
        let wants_final = Module::new(&engine, r#"(module (import "m" "f" (func (result i32))))"#).unwrap();
        let err = Instance::new(&mut store, &wants_final, &[derived.into()]).unwrap_err();
        assert!(matches!(err, Error::IncompatibleImport { .. }), "{tier:?}: {err}");
        // Immutable globals match covariantly: an `i31ref` global is an `eqref` and an `anyref` one.
        let five = Val::AnyRef(Some(AnyRef::from_i31(&mut store, I31::wrapping_u32(5))));
        let ty = GlobalType::new(ValType::Ref(RefType::new(false, HeapType::I31)), Mutability::Const);
        let global = Global::new(&mut store, ty, five).unwrap();
        for wanted in ["eqref", "anyref", "(ref i31)", "(ref eq)"] {
            let wat = format!(
                r#"(module (import "m" "g" (global $g {wanted}))
                     (func (export "get") (result i32) (i31.get_u (ref.cast (ref i31) (global.get $g)))))"#
            );
            let m = Module::new(&engine, wat).unwrap();
            let i = Instance::new(&mut store, &m, &[global.into()]).unwrap();
            assert_eq!(i.get_typed_func::<(), i32>(&store, "get").unwrap().call(&mut store, ()).unwrap(), 5);
        }
        // ... but not a `structref` one.
        let m = Module::new(&engine, r#"(module (import "m" "g" (global structref)))"#).unwrap();
        assert!(Instance::new(&mut store, &m, &[global.into()]).is_err(), "{tier:?}");
    }
}

/// `test_*` returns `ref.test` of argument `which` against the heap type
/// (nullable and not), `cast_*` returns 1 or traps, `br_*` returns which
/// way `br_on_cast` / `br_on_cast_fail` went. Values: 0 null, 1 an i31, 2 a
/// struct, 3 an array, 4 a host value (`any.convert_extern`).
const CASTS: &str = r#"(module
  (type $pt (sub (struct (field i32))))
  (type $pt3 (sub $pt (struct (field i32) (field i32))))
  (type $bytes (array (mut i8)))
  (func (export "value") (param $which i32) (param $e externref) (result anyref)
    (block $b (result anyref)
      (drop (br_if $b (ref.null any) (i32.eq (local.get $which) (i32.const 0))))
      (drop (br_if $b (ref.i31 (i32.const 7)) (i32.eq (local.get $which) (i32.const 1))))
      (drop (br_if $b (struct.new $pt3 (i32.const 1) (i32.const 2)) (i32.eq (local.get $which) (i32.const 2))))
      (drop (br_if $b (array.new_default $bytes (i32.const 3)) (i32.eq (local.get $which) (i32.const 3))))
      (any.convert_extern (local.get $e))))
  ;; The host value `$v` converts (`set_host`).
  (global $host (mut externref) (ref.null extern))
  (func (export "set_host") (param externref) (global.set $host (local.get 0)))
  (func $v (param $which i32) (result anyref)
    (call 0 (local.get $which) (global.get $host)))
  (func (export "tests") (param $w i32) (result i32)
    ;; One bit per heap type, nullable tests in the high half.
    (i32.or
      (i32.or
        (i32.or (ref.test (ref any) (call $v (local.get $w)))
                (i32.shl (ref.test (ref eq) (call $v (local.get $w))) (i32.const 1)))
        (i32.or (i32.shl (ref.test (ref i31) (call $v (local.get $w))) (i32.const 2))
                (i32.shl (ref.test (ref struct) (call $v (local.get $w))) (i32.const 3))))
      (i32.or
        (i32.or (i32.shl (ref.test (ref array) (call $v (local.get $w))) (i32.const 4))
                (i32.shl (ref.test (ref none) (call $v (local.get $w))) (i32.const 5)))
        (i32.or
          (i32.or (i32.shl (ref.test (ref $pt) (call $v (local.get $w))) (i32.const 6))
                  (i32.shl (ref.test (ref $pt3) (call $v (local.get $w))) (i32.const 7)))
          (i32.or (i32.shl (ref.test (ref $bytes) (call $v (local.get $w))) (i32.const 8))
                  (i32.shl (ref.test (ref null none) (call $v (local.get $w))) (i32.const 16)))))))
  (func (export "cast_i31") (param $w i32) (result i32)
    (i31.get_s (ref.cast (ref i31) (call $v (local.get $w)))))
  (func (export "cast_null_struct") (param $w i32) (result i32)
    (ref.is_null (ref.cast (ref null struct) (call $v (local.get $w)))))
  (func (export "cast_pt") (param $w i32) (result i32)
    (struct.get $pt 0 (ref.cast (ref $pt) (call $v (local.get $w)))))
  (func (export "br_on_cast_eq") (param $w i32) (result i32)
    (drop (block $yes (result eqref)
      (drop (br_on_cast $yes anyref eqref (call $v (local.get $w))))
      (return (i32.const 0))))
    (i32.const 1))
  (func (export "br_on_cast_fail_array") (param $w i32) (result i32)
    (drop (block $no (result anyref)
      (drop (br_on_cast_fail $no anyref (ref array) (call $v (local.get $w))))
      (return (i32.const 1))))
    (i32.const 0))
  ;; Function references: `ref.test` and `ref.cast` by the function's type.
  (type $base (sub (func)))
  (type $derived (sub $base (func)))
  (func $d (type $derived))
  (func $plain (param i32))
  (elem declare func $d $plain)
  (func (export "func_tests") (result i32)
    (i32.or
      (i32.or (ref.test (ref $base) (ref.func $d))
              (i32.shl (ref.test (ref $derived) (ref.func $d)) (i32.const 1)))
      (i32.or (i32.shl (ref.test (ref $base) (ref.func $plain)) (i32.const 2))
              (i32.or (i32.shl (ref.test (ref func) (ref.func $plain)) (i32.const 3))
                      (i32.shl (ref.test (ref nofunc) (ref.func $plain)) (i32.const 4))))))
  (func (export "func_cast_fails") (drop (ref.cast (ref $derived) (ref.func $plain))))
  ;; Host values: `ref.test` in extern's hierarchy, and the round trip.
  (func (export "extern_tests") (param $e externref) (result i32)
    (i32.or (ref.test (ref extern) (local.get $e))
            (i32.shl (ref.test (ref noextern) (local.get $e)) (i32.const 1))))
  (func (export "round_trip") (param $e externref) (result externref)
    (extern.convert_any (any.convert_extern (local.get $e))))
  (func (export "i31_to_extern") (param i32) (result externref)
    (extern.convert_any (ref.i31 (local.get 0))))
  (func (export "eq") (param anyref anyref) (result i32)
    (ref.eq (ref.cast eqref (local.get 0)) (ref.cast eqref (local.get 1))))
  (func (export "i31") (param i32) (result i32 i32)
    (i31.get_s (ref.i31 (local.get 0))) (i31.get_u (ref.i31 (local.get 0))))
  (func (export "i31_null") (result i32) (i31.get_u (ref.null i31))))"#;

#[test]
fn casts_of_every_kind_in_every_tier() {
    // Bits of `tests`: any, eq, i31, struct, array, none, $pt, $pt3, $bytes; bit 16: null none.
    let expected = [
        (0, 1 << 16),       // null: only the nullable test
        (1, 0b111),         // i31: any, eq, i31
        (2, 0b1100_1011),   // a $pt3: any, eq, struct, $pt, $pt3
        (3, 0b1_0001_0011), // a $bytes: any, eq, array, $bytes
        (4, 0b1),           // a host value: only any
    ];
    for tier in tiers() {
        let engine = engine(tier);
        let mut store = Store::new(&engine, ());
        let i = Instance::new(&mut store, &Module::new(&engine, CASTS).unwrap(), &[]).unwrap();
        let host = ExternRef::new(&mut store, 99u32).unwrap();
        let set_host = i.get_typed_func::<Option<ExternRef>, ()>(&store, "set_host").unwrap();
        set_host.call(&mut store, Some(host)).unwrap();
        let tests = i.get_typed_func::<i32, i32>(&store, "tests").unwrap();
        for (which, bits) in expected {
            assert_eq!(tests.call(&mut store, which).unwrap(), bits, "{tier:?} value {which}");
        }
        let call = |store: &mut Store<()>, name: &str, which: i32| {
            i.get_typed_func::<i32, i32>(&*store, name).unwrap().call(store, which)
        };
        assert_eq!(call(&mut store, "cast_i31", 1).unwrap(), 7, "{tier:?}");
        for which in [0, 2, 3, 4] {
            let err = call(&mut store, "cast_i31", which).unwrap_err();
            assert_eq!(trap_kind(&err), TrapKind::CastFailure, "{tier:?} {which}");
            assert!(err.to_string().contains("cast failure"), "{tier:?}: {err}");
        }
        assert_eq!(call(&mut store, "cast_null_struct", 0).unwrap(), 1, "{tier:?}");
        assert_eq!(call(&mut store, "cast_null_struct", 2).unwrap(), 0, "{tier:?}");
        assert_eq!(trap_kind(&call(&mut store, "cast_null_struct", 3).unwrap_err()), TrapKind::CastFailure);
        // A $pt3 is a $pt (declared subtype).
        assert_eq!(call(&mut store, "cast_pt", 2).unwrap(), 1, "{tier:?}");
        assert_eq!(trap_kind(&call(&mut store, "cast_pt", 0).unwrap_err()), TrapKind::CastFailure);
        // `eqref` is nullable: null is cast (branches) too.
        for (which, eq) in [(0, 1), (1, 1), (2, 1), (3, 1), (4, 0)] {
            assert_eq!(call(&mut store, "br_on_cast_eq", which).unwrap(), eq, "{tier:?} {which}");
        }
        for (which, array) in [(0, 0), (1, 0), (2, 0), (3, 1), (4, 0)] {
            assert_eq!(call(&mut store, "br_on_cast_fail_array", which).unwrap(), array, "{tier:?} {which}");
        }
        let func_tests = i.get_typed_func::<(), i32>(&store, "func_tests").unwrap();
        assert_eq!(func_tests.call(&mut store, ()).unwrap(), 0b1011, "{tier:?}");
        let fails = i.get_typed_func::<(), ()>(&store, "func_cast_fails").unwrap();
        assert_eq!(trap_kind(&fails.call(&mut store, ()).unwrap_err()), TrapKind::CastFailure, "{tier:?}");
        // Extern's hierarchy, and a host value through `any` and back.
        let extern_tests = i.get_typed_func::<Option<ExternRef>, i32>(&store, "extern_tests").unwrap();
        assert_eq!(extern_tests.call(&mut store, Some(host)).unwrap(), 1, "{tier:?}");
        assert_eq!(extern_tests.call(&mut store, None).unwrap(), 0, "{tier:?}");
        let round_trip = i.get_typed_func::<Option<ExternRef>, Option<ExternRef>>(&store, "round_trip").unwrap();
        let back = round_trip.call(&mut store, Some(host)).unwrap().unwrap();
        assert_eq!(back, host, "{tier:?}");
        assert_eq!(back.data(&store).unwrap().unwrap().downcast_ref::<u32>(), Some(&99));
        // An i31 as an externref: no host data, and back in wasm it is the same i31.
        let i31_to_extern = i.get_typed_func::<i32, Option<ExternRef>>(&store, "i31_to_extern").unwrap();
        let e = i31_to_extern.call(&mut store, 5).unwrap().unwrap();
        assert!(e.data(&store).unwrap().is_none(), "{tier:?}");
        let value = i.get_func(&store, "value").unwrap();
        let mut out = [Val::I32(0)];
        value.call(&mut store, &[Val::I32(4), Val::ExternRef(Some(e))], &mut out).unwrap();
        let Val::AnyRef(Some(a)) = out[0] else { panic!("{:?}", out[0]) };
        assert_eq!(a.as_i31(&store).unwrap(), Some(I31::wrapping_u32(5)), "{tier:?}");
    }
}

#[test]
fn i31_edge_values_and_ref_eq() {
    for tier in tiers() {
        let engine = engine(tier);
        let mut store = Store::new(&engine, ());
        let i = Instance::new(&mut store, &Module::new(&engine, CASTS).unwrap(), &[]).unwrap();
        let i31 = i.get_typed_func::<i32, (i32, i32)>(&store, "i31").unwrap();
        for (v, s, u) in [
            (0, 0, 0),
            (1, 1, 1),
            (-1, -1, 0x7fff_ffff),
            (0x3fff_ffff, 0x3fff_ffff, 0x3fff_ffff),
            (0x4000_0000, -0x4000_0000, 0x4000_0000),
            (i32::MAX, -1, 0x7fff_ffff),
            (i32::MIN, 0, 0),
            (-0x4000_0000, -0x4000_0000, 0x4000_0000),
        ] {
            assert_eq!(i31.call(&mut store, v).unwrap(), (s, u), "{tier:?} {v:#x}");
        }
        let null = i.get_typed_func::<(), i32>(&store, "i31_null").unwrap();
        let err = null.call(&mut store, ()).unwrap_err();
        assert_eq!(trap_kind(&err), TrapKind::NullI31Reference, "{tier:?}");
        assert!(err.to_string().contains("null i31 reference"), "{tier:?}: {err}");
        // ref.eq: i31s by value, objects by identity, null equals null.
        let eq = i.get_typed_func::<(Option<AnyRef>, Option<AnyRef>), i32>(&store, "eq").unwrap();
        let a = AnyRef::from_i31(&mut store, I31::wrapping_u32(3));
        let b = AnyRef::from_i31(&mut store, I31::wrapping_i32(3));
        let c = AnyRef::from_i31(&mut store, I31::wrapping_u32(0x8000_0003));
        let d = AnyRef::from_i31(&mut store, I31::wrapping_u32(4));
        assert_eq!(eq.call(&mut store, (Some(a), Some(b))).unwrap(), 1, "{tier:?}");
        assert_eq!(eq.call(&mut store, (Some(a), Some(c))).unwrap(), 1, "{tier:?}: wrapped");
        assert_eq!(eq.call(&mut store, (Some(a), Some(d))).unwrap(), 0, "{tier:?}");
        assert_eq!(eq.call(&mut store, (None, None)).unwrap(), 1, "{tier:?}");
        assert_eq!(eq.call(&mut store, (Some(a), None)).unwrap(), 0, "{tier:?}");
        let value = i.get_func(&store, "value").unwrap();
        let mut s1 = [Val::I32(0)];
        let mut s2 = [Val::I32(0)];
        value.call(&mut store, &[Val::I32(2), Val::ExternRef(None)], &mut s1).unwrap();
        value.call(&mut store, &[Val::I32(2), Val::ExternRef(None)], &mut s2).unwrap();
        let (Val::AnyRef(x), Val::AnyRef(y)) = (s1[0], s2[0]) else { panic!() };
        assert_eq!(eq.call(&mut store, (x, x)).unwrap(), 1, "{tier:?}");
        assert_eq!(eq.call(&mut store, (x, y)).unwrap(), 0, "{tier:?}: two structs");
    }
}

#[test]
fn host_i31_and_anyref_values() {
    assert_eq!(I31::wrapping_u32(u32::MAX).get_u32(), 0x7fff_ffff);
    assert_eq!(I31::wrapping_u32(u32::MAX).get_i32(), -1);
    assert_eq!(I31::wrapping_i32(-5).get_i32(), -5);
    assert_eq!(I31::wrapping_i32(-5).get_u32(), 0x7fff_fffb);
    assert_eq!(I31::new_u32(0x7fff_ffff).map(I31::get_u32), Some(0x7fff_ffff));
    assert_eq!(I31::new_u32(0x8000_0000), None);
    assert_eq!(I31::new_i32(-(1 << 30)).map(I31::get_i32), Some(-(1 << 30)));
    assert_eq!(I31::new_i32(1 << 30), None);
    for tier in tiers() {
        let engine = engine(tier);
        let mut store = Store::new(&engine, ());
        let i = Instance::new(&mut store, &Module::new(&engine, CASTS).unwrap(), &[]).unwrap();
        // An i31 out of wasm.
        let value = i.get_typed_func::<(i32, Option<ExternRef>), Option<AnyRef>>(&store, "value").unwrap();
        let v = value.call(&mut store, (1, None)).unwrap().unwrap();
        assert!(v.is_i31(&store).unwrap(), "{tier:?}");
        assert_eq!(v.unwrap_i31(&store).unwrap().get_i32(), 7, "{tier:?}");
        assert!(value.call(&mut store, (0, None)).unwrap().is_none(), "{tier:?}");
        // A struct is an anyref, not an i31; its type is checked by `matches_ty`.
        let s = value.call(&mut store, (2, None)).unwrap().unwrap();
        assert_eq!(s.as_i31(&store).unwrap(), None, "{tier:?}");
        assert!(s.unwrap_i31(&store).is_err());
        let sv = Val::AnyRef(Some(s));
        for (ty, ok) in [
            (ValType::ANYREF, true),
            (ValType::EQREF, true),
            (ValType::STRUCTREF, true),
            (ValType::ARRAYREF, false),
            (ValType::I31REF, false),
            (ValType::NULLREF, false),
            (ValType::EXTERNREF, false),
        ] {
            assert_eq!(sv.matches_ty(&store, &ty), ok, "{tier:?} {ty}");
        }
        // An i31 into wasm, as a host value.
        let host = Val::AnyRef(Some(AnyRef::from_i31(&mut store, I31::wrapping_i32(-9))));
        assert!(host.matches_ty(&store, &ValType::I31REF));
        assert!(host.matches_ty(&store, &ValType::Ref(RefType::new(false, HeapType::Eq))));
        assert!(!host.matches_ty(&store, &ValType::STRUCTREF));
        assert!(Val::AnyRef(None).matches_ty(&store, &ValType::NULLREF));
        assert!(!Val::AnyRef(None).matches_ty(&store, &ValType::Ref(RefType::new(false, HeapType::Any))));
        assert_eq!(Val::default_for(ValType::EQREF), Val::AnyRef(None));
        let cast_i31 = i.get_func(&store, "eq").unwrap();
        let mut out = [Val::I32(0)];
        cast_i31.call(&mut store, &[host, host], &mut out).unwrap();
        assert_eq!(out[0].i32(), Some(1), "{tier:?}");
        // A host value through `any`: `AnyRef::convert_extern` is `any.convert_extern`.
        let e = ExternRef::new(&mut store, "host").unwrap();
        let from_wasm = value.call(&mut store, (4, Some(e))).unwrap().unwrap();
        assert_eq!(from_wasm, AnyRef::convert_extern(&mut store, e).unwrap(), "{tier:?}");
        assert!(!from_wasm.is_i31(&store).unwrap() && !from_wasm.is_object(&store).unwrap());
        // Values of another store are refused.
        let mut other = Store::new(&engine, ());
        let foreign = AnyRef::from_i31(&mut other, I31::wrapping_u32(1));
        let err = cast_i31.call(&mut store, &[Val::AnyRef(Some(foreign)), host], &mut out).unwrap_err();
        assert!(err.to_string().contains("different store"), "{tier:?}: {err}");
    }
}

#[test]
fn registered_types_through_the_api() {
    let engine = engine(Strategy::Interpreter);
    let module = Module::new(
        &engine,
        r#"(module
          (rec (type $list (struct (field i32) (field (ref null $list)))))
          (type $pair (array (mut i16)))
          (func (export "f") (param (ref null $list)) (result (ref $pair)) unreachable))"#,
    )
    .unwrap();
    let ty = match module.exports().next().unwrap().ty {
        ExternType::Func(t) => t,
        other => panic!("{other:?}"),
    };
    let ValType::Ref(list) = &ty.params()[0] else { panic!() };
    let HeapType::ConcreteStruct(list) = list.heap_type() else { panic!("{list}") };
    assert_eq!(list.fields().len(), 2);
    assert_eq!(list.fields()[0], FieldType::new(Mutability::Const, StorageType::ValType(ValType::I32)));
    // The recursive field refers to the type itself.
    let ValType::Ref(next) = list.fields()[1].element_type().unpack() else { panic!() };
    assert_eq!(next.heap_type(), &HeapType::ConcreteStruct(list.clone()));
    let ValType::Ref(pair) = &ty.results()[0] else { panic!() };
    let HeapType::ConcreteArray(pair) = pair.heap_type() else { panic!() };
    assert_eq!(pair.field_type(), &FieldType::new(Mutability::Var, StorageType::I16));
    assert_eq!(pair.to_string(), "(array (mut i16))");
    // A struct type the host makes is not a module's recursive one.
    assert_ne!(&StructType::new([FieldType::new(Mutability::Const, StorageType::ValType(ValType::I32))]), list);
    // Heap type subtyping in the abstract hierarchy.
    assert!(HeapType::ConcreteStruct(list.clone()).matches(&HeapType::Struct));
    assert!(HeapType::ConcreteArray(pair.clone()).matches(&HeapType::Eq));
    assert!(HeapType::None.matches(&HeapType::ConcreteArray(pair.clone())));
    assert!(!HeapType::ConcreteArray(pair.clone()).matches(&HeapType::Struct));
    assert!(!HeapType::I31.matches(&HeapType::Func));
    assert_eq!(ValType::NULLREF.to_string(), "nullref");
}

/// A type the host makes is a recursion group of its own, so it is the same
/// type as a module's type only when that one is too (final, no supertype,
/// no reference to its own group): equal there, in every tier's casts, and
/// different from a member of a larger group or a self-referring type, whose
/// objects the host therefore cannot pass where the module's type is expected.
#[test]
fn host_types_equal_only_single_type_groups() {
    let i32_field = || FieldType::new(Mutability::Const, StorageType::ValType(ValType::I32));
    for tier in tiers() {
        let engine = engine(tier);
        let module = Module::new(
            &engine,
            r#"(module
              (type $plain (struct (field i32)))
              (rec (type $member (struct (field i32))) (type $other (struct (field i64))))
              (type $self (struct (field (ref null $self))))
              (func (export "plain") (param (ref null $plain)) (result i32)
                (struct.get $plain 0 (local.get 0)))
              (func (export "member") (param (ref null $member)) (result i32)
                (struct.get $member 0 (local.get 0)))
              (func (export "self") (param (ref null $self)) (result i32)
                (ref.is_null (struct.get $self 0 (local.get 0))))
              (func (export "is_plain") (param anyref) (result i32)
                (ref.test (ref $plain) (local.get 0))))"#,
        )
        .unwrap();
        let param = |name: &str| -> StructType {
            let Some(ExternType::Func(f)) = module.get_export(name) else { panic!("{name}") };
            let ValType::Ref(r) = &f.params()[0] else { panic!("{f}") };
            let HeapType::ConcreteStruct(s) = r.heap_type() else { panic!("{f}") };
            s.clone()
        };
        let (plain, member, selfish) = (param("plain"), param("member"), param("self"));
        let host = StructType::new([i32_field()]);
        assert_eq!(host, plain);
        assert_ne!(host, member, "a member of a two-type group is another type");
        assert_ne!(member, plain);
        let ValType::Ref(self_ref) = selfish.fields()[0].element_type().unpack() else { panic!() };
        let host_self =
            StructType::new([FieldType::new(Mutability::Const, StorageType::ValType(ValType::Ref(self_ref.clone())))]);
        assert_ne!(host_self, selfish, "a self-referring type is not one naming it");

        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let mut scope = RootScope::new(&mut store);
        let object = StructRef::new(&mut scope, &host, &[Val::I32(7)]).unwrap();
        let plain_f = instance.get_func(&scope, "plain").unwrap();
        let mut out = [Val::I32(0)];
        plain_f.call(&mut scope, &[Val::AnyRef(Some(object.to_anyref()))], &mut out).unwrap();
        assert_eq!(out[0].i32(), Some(7), "{tier:?}");
        let is_plain = instance.get_func(&scope, "is_plain").unwrap();
        is_plain.call(&mut scope, &[Val::AnyRef(Some(object.to_anyref()))], &mut out).unwrap();
        assert_eq!(out[0].i32(), Some(1), "{tier:?}: the module's cast accepts the host's object");
        // Not where the group member is expected: refused at the call, not by a cast inside.
        let member_f = instance.get_func(&scope, "member").unwrap();
        let err = member_f.call(&mut scope, &[Val::AnyRef(Some(object.to_anyref()))], &mut out).unwrap_err();
        assert!(err.as_trap().is_none(), "{tier:?}: {err}");
    }
}

/// Hostile types in error messages: a chain of 40 struct types, each with two
/// fields referring to the previous one, in the signature of an import that
/// does not match. Printing the types expanded would take 2^40 nodes; a
/// registered type inside another is printed by its canonical id, so the
/// error is immediate and short. A recursive type's `Debug` ends too.
#[test]
fn types_in_error_messages_stay_small() {
    let mut wat = String::from("(module (type $t0 (struct (field i32)))");
    for i in 1..=40 {
        wat.push_str(&format!(" (type $t{i} (struct (field (ref $t{})) (field (ref $t{}))))", i - 1, i - 1));
    }
    wat.push_str(" (import \"env\" \"f\" (func (param (ref $t40)))))");
    let engine = engine(Strategy::Interpreter);
    let module = Module::new(&engine, &wat).unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker.func_wrap("env", "f", |_: i32| {}).unwrap();
    let err = linker.instantiate(&mut store, &module).unwrap_err().to_string();
    assert!(err.len() < 1000, "{} bytes: {}", err.len(), &err[..err.len().min(300)]);
    assert!(err.contains("(type "), "{err}");
    let ty = module.imports().next().unwrap().ty;
    assert!(format!("{ty:?}").len() < 1000);

    let recursive = Module::new(
        &engine,
        "(module (rec (type $s (struct (field (ref null $s))))) (global (export \"g\") (ref null $s) (ref.null $s)))",
    )
    .unwrap();
    let shown = format!("{:?}", recursive.exports().next().unwrap().ty);
    assert!(shown.contains("(type "), "{shown}");
}
