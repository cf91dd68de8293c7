//! Exception handling (WebAssembly 3.0: tags, `throw`, `throw_ref`,
//! `try_table`, `exnref`) in the interpreter, in compiled code (where the
//! functions that throw or catch run in the interpreter, the rest compiled)
//! and under automatic tiering: the four catch kinds; payloads of every value
//! type; rethrowing keeps an exception's identity; tags of two instances are
//! different tags, an imported tag is the exporter's; the host throws,
//! catches and inspects exceptions, and an exception crosses a host function
//! in the middle; unwinding through 10,000 frames, caught and uncaught; fuel
//! and interrupts stop a loop that throws; and a compiled module's functions
//! that use exceptions fall back to the interpreter, in artifacts too.

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

fn engine(tier: Strategy, configure: impl FnOnce(&mut Config)) -> Engine {
    let mut config = Config::new();
    config.strategy(tier);
    configure(&mut config);
    Engine::new(&config)
}

/// The exception an error carries (it must be an uncaught exception).
fn exception(err: &Error) -> ExnRef {
    let trap = err.as_trap().unwrap_or_else(|| panic!("not a trap: {err}"));
    assert_eq!(trap.kind(), TrapKind::UncaughtException, "{err}");
    assert!(trap.message().contains("uncaught exception"), "{}", trap.message());
    trap.exception().expect("an uncaught exception carries its exception")
}

const CATCHES: &str = r#"(module
  (tag $e (export "e") (param i32))
  (tag $other)
  (func $throw (export "throw") (param i32) (throw $e (local.get 0)))
  (func (export "catch") (param i32) (result i32)
    (block $h (result i32)
      (try_table (catch $e $h) (call $throw (local.get 0)))
      (i32.const -1)))
  (func (export "catch_ref") (param i32) (result i32)
    (block $h (result i32 exnref)
      (try_table (catch_ref $e $h) (call $throw (local.get 0)))
      (unreachable))
    (drop))
  (func (export "catch_all") (param i32) (result i32)
    (block $h
      (try_table (catch $other $h) (catch_all $h) (call $throw (local.get 0)))
      (return (i32.const -1)))
    (i32.const 7))
  (func (export "catch_other") (param i32) (result i32)
    (block $h
      (try_table (catch $other $h) (call $throw (local.get 0)))
      (return (i32.const -1)))
    (i32.const 7))
  (func (export "catch_all_ref") (param i32) (result exnref)
    (block $h (result exnref)
      (try_table (catch_all_ref $h) (call $throw (local.get 0)))
      (unreachable)))
  (func (export "rethrow") (param exnref) (throw_ref (local.get 0)))
  (func (export "catch_and_rethrow") (param i32)
    (block $h (result exnref)
      (try_table (catch_all_ref $h) (call $throw (local.get 0)))
      (return))
    (throw_ref))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"#;

#[test]
fn catch_kinds_rethrow_and_identity() {
    for tier in tiers() {
        let engine = engine(tier, |_| {});
        let module = Module::new(&engine, CATCHES).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let call = |store: &mut Store<()>, name: &str, x: i32| {
            instance.get_typed_func::<i32, i32>(&*store, name).unwrap().call(store, x)
        };
        assert_eq!(call(&mut store, "catch", 5).unwrap(), 5, "{tier:?}");
        assert_eq!(call(&mut store, "catch_ref", 6).unwrap(), 6, "{tier:?}");
        assert_eq!(call(&mut store, "catch_all", 7).unwrap(), 7, "{tier:?}");
        // A clause for another tag does not catch it.
        let err = call(&mut store, "catch_other", 8).unwrap_err();
        let e = exception(&err);
        let tag = instance.get_tag(&store, "e").unwrap();
        assert_eq!(e.tag(&store).unwrap(), tag, "{tier:?}");
        assert_eq!(e.fields(&mut store).unwrap().len(), 1);
        assert_eq!(e.field(&mut store, 0).unwrap().i32(), Some(8), "{tier:?}");

        // catch_all_ref gives the exception itself; throw_ref throws the same object.
        let f = instance.get_func(&store, "catch_all_ref").unwrap();
        let mut out = [Val::ExnRef(None)];
        f.call(&mut store, &[Val::I32(9)], &mut out).unwrap();
        let Val::ExnRef(Some(caught)) = out[0] else { panic!("{tier:?}: {:?}", out[0]) };
        assert_eq!(caught.tag(&store).unwrap(), tag);
        assert_eq!(caught.field(&mut store, 0).unwrap().i32(), Some(9));
        let rethrow = instance.get_func(&store, "rethrow").unwrap();
        let err = rethrow.call(&mut store, &[Val::ExnRef(Some(caught))], &mut []).unwrap_err();
        assert_eq!(exception(&err), caught, "{tier:?}: rethrown, the same exception");
        // Typed: `Option<ExnRef>` is exnref.
        let typed = instance.get_typed_func::<i32, Option<ExnRef>>(&store, "catch_all_ref").unwrap();
        let again = typed.call(&mut store, 11).unwrap().expect("an exception");
        assert_ne!(again, caught, "a new throw, a new exception");
        let typed_rethrow = rethrow.typed::<Option<ExnRef>, ()>(&store).unwrap();
        assert_eq!(exception(&typed_rethrow.call(&mut store, Some(again)).unwrap_err()), again);
        // throw_ref of null traps.
        let err = rethrow.call(&mut store, &[Val::ExnRef(None)], &mut []).unwrap_err();
        assert_eq!(err.as_trap().unwrap().kind(), TrapKind::NullExceptionReference, "{tier:?}");
        // Caught in wasm and rethrown from there: still one exception of `e`.
        let catch_and_rethrow = instance.get_typed_func::<i32, ()>(&store, "catch_and_rethrow").unwrap();
        let err = catch_and_rethrow.call(&mut store, 10).unwrap_err();
        let e = exception(&err);
        assert_eq!((e.tag(&store).unwrap(), e.field(&mut store, 0).unwrap().i32()), (tag, Some(10)));
        // The store still runs.
        let add = instance.get_typed_func::<(i32, i32), i32>(&store, "add").unwrap();
        assert_eq!(add.call(&mut store, (2, 3)).unwrap(), 5);
    }
}

#[test]
fn payloads_of_every_value_type() {
    let wat = r#"(module
      (tag $p (param i32 i64 f32 f64 v128 funcref externref))
      (tag $e (param i32))
      (tag $q (param exnref))
      (func $f (export "f"))
      (elem declare func $f)
      (func $throw_p (param externref)
        (throw $p (i32.const -1) (i64.const 0x1234567890) (f32.const 1.5) (f64.const -2.25)
          (v128.const i64x2 0x0102030405060708 0x1112131415161718) (ref.func $f) (local.get 0)))
      (func (export "payload") (param externref) (result i32 i64 f32 f64 v128 funcref externref)
        (block $h (result i32 i64 f32 f64 v128 funcref externref)
          (try_table (catch $p $h) (call $throw_p (local.get 0)))
          (unreachable)))
      (func (export "uncaught") (param externref) (call $throw_p (local.get 0)))
      ;; An exception carried in another's payload.
      (func (export "nested") (param i32) (result exnref) (local exnref)
        (block $outer (result exnref)
          (try_table (catch $q $outer)
            (block $inner (result i32 exnref)
              (try_table (catch_ref $e $inner) (throw $e (local.get 0)))
              (unreachable))
            (local.set 1)
            (drop)
            (throw $q (local.get 1)))
          (unreachable))))"#;
    for tier in tiers() {
        let engine = engine(tier, |_| {});
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let host = ExternRef::new(&mut store, "payload").unwrap();
        let f = instance.get_func(&store, "f").unwrap();
        let expected = |vals: &[Val], store: &Store<()>| {
            assert_eq!(vals[0].i32(), Some(-1), "{tier:?}");
            assert_eq!(vals[1].i64(), Some(0x1234567890));
            assert_eq!(vals[2].f32(), Some(1.5));
            assert_eq!(vals[3].f64(), Some(-2.25));
            assert_eq!(vals[4].v128(), Some(0x1112131415161718_0102030405060708));
            let Val::FuncRef(Some(g)) = vals[5] else { panic!("{tier:?}: {:?}", vals[5]) };
            assert_eq!(g, f);
            let Val::ExternRef(Some(r)) = vals[6] else { panic!("{tier:?}: {:?}", vals[6]) };
            assert_eq!(r.data(store).unwrap().unwrap().downcast_ref::<&str>(), Some(&"payload"));
        };
        let payload = instance.get_func(&store, "payload").unwrap();
        let mut out: Vec<Val> = payload.ty(&store).results().iter().map(|t| Val::default_for(t.clone())).collect();
        payload.call(&mut store, &[Val::ExternRef(Some(host))], &mut out).unwrap();
        expected(&out, &store);
        // The same fields, read by the host from an uncaught exception.
        let uncaught = instance.get_func(&store, "uncaught").unwrap();
        let err = uncaught.call(&mut store, &[Val::ExternRef(Some(host))], &mut []).unwrap_err();
        let fields = exception(&err).fields(&mut store).unwrap();
        expected(&fields, &store);
        // A collection keeps what a live exception refers to.
        store.gc();
        expected(&exception(&err).fields(&mut store).unwrap(), &store);

        let nested = instance.get_func(&store, "nested").unwrap();
        let mut out = [Val::ExnRef(None)];
        nested.call(&mut store, &[Val::I32(77)], &mut out).unwrap();
        let Val::ExnRef(Some(inner)) = out[0] else { panic!("{tier:?}") };
        assert_eq!(inner.field(&mut store, 0).unwrap().i32(), Some(77), "{tier:?}");
    }
}

const THROWER: &str = r#"(module
  (tag $e (export "e") (param i32))
  (func (export "throw") (param i32) (throw $e (local.get 0))))"#;

const CATCHER: &str = r#"(module
  (import "a" "e" (tag $e (param i32)))
  (import "a" "throw" (func $throw (param i32)))
  (func (export "catch") (param i32) (result i32)
    (block $h (result i32)
      (try_table (catch $e $h) (call $throw (local.get 0)))
      (i32.const -1))))"#;

#[test]
fn tags_are_per_instance_and_imported_tags_are_the_exporters() {
    for tier in tiers() {
        let engine = engine(tier, |_| {});
        let thrower = Module::new(&engine, THROWER).unwrap();
        let catcher = Module::new(&engine, CATCHER).unwrap();
        let mut store = Store::new(&engine, ());
        let a1 = Instance::new(&mut store, &thrower, &[]).unwrap();
        let a2 = Instance::new(&mut store, &thrower, &[]).unwrap();
        let (e1, e2) = (a1.get_tag(&store, "e").unwrap(), a2.get_tag(&store, "e").unwrap());
        assert_ne!(e1, e2, "two instances, two tags");
        assert_eq!(e1.ty(&store).params(), &[ValType::I32]);
        let throw1 = a1.get_func(&store, "throw").unwrap();
        let throw2 = a2.get_func(&store, "throw").unwrap();
        // Catching a1's tag: a1's exceptions are caught, a2's are not.
        let same = Instance::new(&mut store, &catcher, &[e1.into(), throw1.into()]).unwrap();
        let other = Instance::new(&mut store, &catcher, &[e1.into(), throw2.into()]).unwrap();
        let catch = |store: &mut Store<()>, i: Instance, x: i32| {
            i.get_typed_func::<i32, i32>(&*store, "catch").unwrap().call(store, x)
        };
        assert_eq!(catch(&mut store, same, 3).unwrap(), 3, "{tier:?}");
        let err = catch(&mut store, other, 4).unwrap_err();
        assert_eq!(exception(&err).tag(&store).unwrap(), e2, "{tier:?}");
        // Import matching of tags is exact.
        let bad = Tag::new(&mut store, &TagType::new(FuncType::new([ValType::I64], []))).unwrap();
        let err = Instance::new(&mut store, &catcher, &[bad.into(), throw1.into()]).unwrap_err();
        assert!(matches!(err, Error::IncompatibleImport { .. }), "{tier:?}: {err}");
        // Through a linker, a host-made tag.
        let mut linker = Linker::new(&engine);
        let host_tag = Tag::new(&mut store, &TagType::new(FuncType::new([ValType::I32], []))).unwrap();
        linker.define("a", "e", host_tag).unwrap();
        linker.define("a", "throw", throw1).unwrap();
        let i = linker.instantiate(&mut store, &catcher).unwrap();
        assert_eq!(i.get_export(&store, "catch").map(|e| e.ty(&store).kind_name()), Some("function"));
        let err = catch(&mut store, i, 5).unwrap_err();
        assert_eq!(exception(&err).tag(&store).unwrap(), e1, "{tier:?}: a1's exception is not the host tag's");
    }
}

const HOST: &str = r#"(module
  (import "host" "e" (tag $e (param i32)))
  (import "host" "throw" (func $host_throw (param i32)))
  (import "host" "middle" (func $middle (param i32) (result i32)))
  (func (export "catch_host") (param i32) (result i32)
    (block $h (result i32)
      (try_table (catch $e $h) (call $host_throw (local.get 0)))
      (i32.const -1)))
  (func (export "inner") (param i32) (result i32)
    (throw $e (i32.add (local.get 0) (i32.const 100))))
  (func (export "outer") (param i32) (result i32)
    (block $h (result i32)
      (try_table (result i32) (catch $e $h) (call $middle (local.get 0)))))
  (func (export "rethrow") (param exnref) (throw_ref (local.get 0))))"#;

#[test]
fn host_throws_catches_and_inspects() {
    for tier in tiers() {
        let engine = engine(tier, |_| {});
        let module = Module::new(&engine, HOST).unwrap();
        let mut store = Store::new(&engine, ());
        let tag = Tag::new(&mut store, &TagType::new(FuncType::new([ValType::I32], []))).unwrap();
        let mut linker = Linker::new(&engine);
        linker.define("host", "e", tag).unwrap();
        linker
            .func_wrap("host", "throw", move |mut caller: Caller<'_, ()>, x: i32| -> Result<(), Trap> {
                let e = ExnRef::new(&mut caller, &tag, &[Val::I32(x * 2)])?;
                Err(Trap::throw(e))
            })
            .unwrap();
        // A host function in the middle: the wasm it calls throws, and the
        // exception goes on through it to the wasm that called it.
        linker
            .func_wrap("host", "middle", |mut caller: Caller<'_, ()>, x: i32| -> anyhow::Result<i32> {
                let inner = caller.get_export("inner").and_then(Extern::into_func).unwrap();
                let inner = inner.typed::<i32, i32>(&caller)?;
                Ok(inner.call(&mut caller, x)? + 1000)
            })
            .unwrap();
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let catch_host = instance.get_typed_func::<i32, i32>(&store, "catch_host").unwrap();
        assert_eq!(catch_host.call(&mut store, 21).unwrap(), 42, "{tier:?}: wasm catches the host's exception");
        let outer = instance.get_typed_func::<i32, i32>(&store, "outer").unwrap();
        assert_eq!(outer.call(&mut store, 5).unwrap(), 105, "{tier:?}: caught across the host function");
        // The host catches wasm's exception, and throws it back in: the same object.
        let inner = instance.get_typed_func::<i32, i32>(&store, "inner").unwrap();
        let err = inner.call(&mut store, 1).unwrap_err();
        let e = exception(&err);
        assert_eq!(e.tag(&store).unwrap(), tag);
        assert_eq!(e.field(&mut store, 0).unwrap().i32(), Some(101));
        assert!(e.field(&mut store, 1).is_err());
        let rethrow = instance.get_func(&store, "rethrow").unwrap();
        let err = rethrow.call(&mut store, &[Val::ExnRef(Some(e))], &mut []).unwrap_err();
        assert_eq!(exception(&err), e, "{tier:?}: host → wasm → host keeps identity");
        // A made exception of the wrong arity or type is refused.
        assert!(ExnRef::new(&mut store, &tag, &[]).is_err());
        assert!(ExnRef::new(&mut store, &tag, &[Val::I64(1)]).is_err());
    }
}

/// `$down` recurses without throwing or catching: compiled, its 10,000
/// frames are compiled code between the interpreted catcher and thrower.
const DEEP: &str = r#"(module
  (tag $e (param i32))
  (func $throw (throw $e (i32.const 99)))
  (func $down (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (call $throw) (i32.const 0))
      (else (i32.add (call $down (i32.sub (local.get 0) (i32.const 1))) (i32.const 1)))))
  (func (export "deep_caught") (param i32) (result i32)
    (block $h (result i32)
      (try_table (result i32) (catch $e $h) (call $down (local.get 0)))
      (return)))
  (func (export "deep_uncaught") (param i32) (result i32) (call $down (local.get 0))))"#;

#[test]
fn deep_unwinding_caught_and_uncaught() {
    // Compiled frames take host stack: room for 10,000 of them.
    let run = || {
        for tier in tiers() {
            let engine = engine(tier, |c| {
                c.max_wasm_stack(16 << 20);
            });
            let module = Module::new(&engine, DEEP).unwrap();
            if tier == Strategy::Cranelift {
                assert_eq!(module.interpreted_functions(), vec![0, 2], "`$down` and `deep_uncaught` are compiled");
            }
            let mut store = Store::new(&engine, ());
            let instance = Instance::new(&mut store, &module, &[]).unwrap();
            let caught = instance.get_typed_func::<i32, i32>(&store, "deep_caught").unwrap();
            let uncaught = instance.get_typed_func::<i32, i32>(&store, "deep_uncaught").unwrap();
            for _ in 0..3 {
                let start = std::time::Instant::now();
                assert_eq!(caught.call(&mut store, 10_000).unwrap(), 99, "{tier:?}");
                let err = uncaught.call(&mut store, 10_000).unwrap_err();
                assert_eq!(exception(&err).field(&mut store, 0).unwrap().i32(), Some(99), "{tier:?}");
                assert!(start.elapsed() < std::time::Duration::from_secs(5), "{tier:?}: {:?}", start.elapsed());
            }
        }
    };
    std::thread::Builder::new().stack_size(64 << 20).spawn(run).unwrap().join().unwrap();
}

const SPIN: &str = r#"(module
  (tag $e (param i32))
  (func $throw (param i32) (throw $e (local.get 0)))
  (func (export "spin")
    (loop $l
      (block $h (result i32)
        (try_table (catch $e $h) (call $throw (i32.const 1)))
        (i32.const 0))
      (drop)
      (br $l))))"#;

#[test]
fn fuel_and_interrupts_stop_a_throwing_loop() {
    for tier in tiers() {
        let engine = engine(tier, |c| {
            c.consume_fuel(true);
        });
        let module = Module::new(&engine, SPIN).unwrap();
        let mut store = Store::new(&engine, ());
        store.set_fuel(100_000).unwrap();
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let spin = instance.get_typed_func::<(), ()>(&store, "spin").unwrap();
        let err = spin.call(&mut store, ()).unwrap_err();
        assert_eq!(err.as_trap().unwrap().kind(), TrapKind::OutOfFuel, "{tier:?}");

        let engine = engine_interruptible(tier);
        let module = Module::new(&engine, SPIN).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let spin = instance.get_typed_func::<(), ()>(&store, "spin").unwrap();
        let handle = store.interrupt_handle().unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            handle.interrupt();
        });
        let err = spin.call(&mut store, ()).unwrap_err();
        t.join().unwrap();
        assert_eq!(err.as_trap().unwrap().kind(), TrapKind::Interrupted, "{tier:?}");
    }
}

fn engine_interruptible(tier: Strategy) -> Engine {
    engine(tier, |c| {
        c.interruptible(true);
    })
}

/// A module whose functions that throw or catch run in the interpreter
/// while the others are compiled; calls go both ways.
const MIXED: &str = r#"(module
  (tag $e (param i32))
  (func $square (export "square") (param i32) (result i32) (i32.mul (local.get 0) (local.get 0)))
  (func $throw (param i32) (throw $e (call $square (local.get 0))))
  (func $compiled_calls_throw (param i32) (result i32)
    (call $throw (local.get 0))
    (i32.const -1))
  (func (export "run") (param i32) (result i32)
    (block $h (result i32)
      (try_table (catch $e $h) (drop (call $compiled_calls_throw (local.get 0))))
      (i32.const -1))))"#;

#[test]
fn compiled_modules_run_exception_functions_interpreted() {
    if !cfg!(carnac_compiled) {
        return;
    }
    let engine = engine(Strategy::Cranelift, |_| {});
    let module = Module::new(&engine, MIXED).unwrap();
    assert!(module.is_compiled());
    // `$throw` (1) and `run` (3) fall back; `square` and `$compiled_calls_throw` are compiled.
    assert_eq!(module.interpreted_functions(), vec![1, 3]);
    let run = |module: &Module| {
        let mut store = Store::new(module.engine(), ());
        let instance = Instance::new(&mut store, module, &[]).unwrap();
        let run = instance.get_typed_func::<i32, i32>(&store, "run").unwrap();
        assert_eq!(run.call(&mut store, 7).unwrap(), 49);
        let square = instance.get_typed_func::<i32, i32>(&store, "square").unwrap();
        assert_eq!(square.call(&mut store, 8).unwrap(), 64);
    };
    run(&module);
    // An artifact keeps the split: loaded, the same functions run interpreted.
    let bytes = module.serialize().unwrap();
    let loaded = Module::deserialize(&engine, &bytes).unwrap();
    assert!(loaded.is_compiled());
    assert_eq!(loaded.interpreted_functions(), vec![1, 3]);
    run(&loaded);
    // The code cache too: the second compile is a load, with the same split.
    let dir = std::env::temp_dir().join(format!("carnac-exn-cache-{}", std::process::id()));
    let cached = self::engine(Strategy::Cranelift, |c| {
        c.cache(true).cache_dir(Some(dir.clone()));
    });
    for round in 0..2 {
        let m = Module::new(&cached, MIXED).unwrap();
        assert_eq!(m.interpreted_functions(), vec![1, 3], "round {round}");
        run(&m);
    }
    assert_eq!(cached.cache_stats().hits, 1);
    let _ = std::fs::remove_dir_all(&dir);
    // An interpreter-only engine compiles nothing.
    let interp = Module::new(&self::engine(Strategy::Interpreter, |_| {}), MIXED).unwrap();
    assert!(interp.interpreted_functions().is_empty());
}

#[test]
fn exceptions_can_be_turned_off() {
    let engine = engine(Strategy::Interpreter, |c| {
        c.wasm_exceptions(false);
    });
    let err = Module::new(&engine, THROWER).unwrap_err();
    assert!(err.to_string().contains("exceptions"), "{err}");
}

/// `exnref` in tables, globals, locals, parameters and results, in code that
/// does not throw (compiled, in the compiled tier) and code that does.
const STORED: &str = r#"(module
  (tag $e (param i32))
  (table $t (export "t") 2 exnref)
  (global $g (export "g") (mut exnref) (ref.null exn))
  (func $catch (param i32) (result exnref)
    (block $h (result exnref)
      (try_table (catch_all_ref $h) (throw $e (local.get 0)))
      (ref.null exn)))
  ;; No exception operator: compiled in the compiled tier.
  (func $keep (export "keep") (param exnref) (result i32) (local exnref)
    (local.set 1 (local.get 0))
    (table.set $t (i32.const 1) (local.get 1))
    (global.set $g (local.get 1))
    (i32.add (ref.is_null (table.get $t (i32.const 0))) (ref.is_null (global.get $g))))
  (func (export "store") (param i32) (result i32) (call $keep (call $catch (local.get 0))))
  (func (export "rethrow_global") (throw_ref (global.get $g)))
  (func (export "rethrow_table") (throw_ref (table.get $t (i32.const 1)))))"#;

#[test]
fn exnref_in_tables_globals_and_locals() {
    for tier in tiers() {
        let engine = engine(tier, |_| {});
        let module = Module::new(&engine, STORED).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let stored = instance.get_typed_func::<i32, i32>(&store, "store").unwrap();
        // Slot 0 of the table is still null; the global is set.
        assert_eq!(stored.call(&mut store, 31).unwrap(), 1, "{tier:?}");
        // Kept by the table and the global across a collection.
        store.gc();
        let global = instance.get_global(&store, "g").unwrap();
        let Val::ExnRef(Some(kept)) = global.get(&mut store) else { panic!("{tier:?}") };
        assert_eq!(kept.field(&mut store, 0).unwrap().i32(), Some(31));
        let table = instance.get_table(&store, "t").unwrap();
        assert_eq!(table.get(&mut store, 1), Some(Val::ExnRef(Some(kept))), "{tier:?}");
        for name in ["rethrow_global", "rethrow_table"] {
            let f = instance.get_typed_func::<(), ()>(&store, name).unwrap();
            assert_eq!(exception(&f.call(&mut store, ()).unwrap_err()), kept, "{tier:?}: {name}");
        }
        // The host stores one too.
        let tag = exception(
            &instance.get_typed_func::<(), ()>(&store, "rethrow_global").unwrap().call(&mut store, ()).unwrap_err(),
        )
        .tag(&store)
        .unwrap();
        let made = ExnRef::new(&mut store, &tag, &[Val::I32(5)]).unwrap();
        global.set(&mut store, Val::ExnRef(Some(made))).unwrap();
        table.set(&mut store, 0, Val::ExnRef(None)).unwrap();
        let f = instance.get_typed_func::<(), ()>(&store, "rethrow_global").unwrap();
        assert_eq!(exception(&f.call(&mut store, ()).unwrap_err()), made, "{tier:?}");
        // An extern reference is not an exnref.
        let r = ExternRef::new(&mut store, 1u32).unwrap();
        assert!(global.set(&mut store, Val::ExternRef(Some(r))).is_err(), "{tier:?}");
    }
}

/// A loop that throws and catches (without the reference) does not fill the
/// store's arena while it runs: each exception is freed when caught. The
/// next exception given out takes one of the first slots (its reference
/// displays its slot).
#[test]
fn caught_exceptions_are_freed_at_once() {
    let wat = r#"(module
      (tag $e (param i32))
      (func $throw (param i32) (throw $e (local.get 0)))
      (func (export "loop") (param i32) (result i32) (local i32)
        (loop $l
          (block $h (result i32)
            (try_table (catch $e $h) (call $throw (local.get 0)))
            (i32.const 0))
          (local.set 1 (i32.add (local.get 1)))
          (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
        (local.get 1))
      (func (export "keep") (result exnref)
        (block $h (result exnref)
          (try_table (catch_all_ref $h) (call $throw (i32.const 1)))
          (ref.null exn))))"#;
    for tier in tiers() {
        let engine = engine(tier, |_| {});
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let run = instance.get_typed_func::<i32, i32>(&store, "loop").unwrap();
        assert_eq!(run.call(&mut store, 100_000).unwrap(), (1..=100_000i64).sum::<i64>() as i32, "{tier:?}");
        let keep = instance.get_typed_func::<(), Option<ExnRef>>(&store, "keep").unwrap();
        let kept = keep.call(&mut store, ()).unwrap();
        assert_eq!(Val::ExnRef(kept).to_string(), "exnref:0", "{tier:?}");
        assert_eq!(kept.unwrap().field(&mut store, 0).unwrap().i32(), Some(1));
    }
}

/// Exceptions given to wasm (`catch_all_ref`) cannot be freed while wasm runs
/// (only the extern collector, outside wasm, frees them): a loop that throws
/// 8 KiB exceptions and keeps catching their references traps "out of GC heap
/// memory" at the GC heap's cap instead of growing the host without bound, and
/// the store goes on (the next call runs once the collector freed them).
#[test]
fn exceptions_kept_inside_one_call_are_capped() {
    let params = "v128 ".repeat(512);
    let wat = format!(
        r#"(module
      (tag $e (param {params}))
      (func (export "bomb") (param i32) (result i32)
        (loop $l
          (block $h (result exnref)
            (try_table (catch_all_ref $h) {args} (throw $e))
            unreachable)
          drop
          (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
        (i32.const 7)))"#,
        args = "(v128.const i64x2 1 2) ".repeat(512)
    );
    for tier in tiers() {
        let engine = engine(tier, |_| {});
        let module = Module::new(&engine, &wat).unwrap();
        let mut store = Store::new(&engine, ());
        store.set_limiter(StoreLimits::new().gc_heap_size(4 << 20));
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let bomb = instance.get_typed_func::<i32, i32>(&store, "bomb").unwrap();
        // 1,000 exceptions of 8 KiB: about 8 MiB, past the 4 MiB cap.
        let err = bomb.call(&mut store, 1_000).unwrap_err();
        assert_eq!(err.as_trap().map(|t| t.kind()), Some(TrapKind::OutOfGcMemory), "{tier:?}: {err}");
        // 100 fit (0.8 MiB), again and again: each call's are freed after it.
        // (Six calls' would be past the cap together: 6 x 100 x 8,256 bytes.)
        for _ in 0..6 {
            assert_eq!(bomb.call(&mut store, 100).unwrap(), 7, "{tier:?}");
        }
    }
}
