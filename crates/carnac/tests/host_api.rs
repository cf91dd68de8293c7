//! The embedding API a Wasmtime user reaches for: host functions that use `?`,
//! a `Caller` wherever a store goes, typed references, type constructors, and
//! error messages that say what went wrong.

use carnac::*;

/// A host function's own error type, to be found again after the call.
#[derive(Debug, PartialEq)]
struct QuotaExceeded(u32);

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "quota of {} exceeded", self.0)
    }
}
impl std::error::Error for QuotaExceeded {}

const CALLS_HOST: &str = r#"(module $m
    (import "host" "f" (func $f (param i32) (result i32)))
    (func $inner (param i32) (result i32) (call $f (local.get 0)))
    (func (export "run") (param i32) (result i32) (call $inner (local.get 0))))"#;

/// Runs `CALLS_HOST` with `f` as its import and returns what `run(arg)` returned.
fn run_with<Params, Results>(f: impl IntoFunc<(), Params, Results>, arg: i32) -> Result<i32, Error> {
    let engine = Engine::default();
    let module = Module::new(&engine, CALLS_HOST)?;
    let mut linker = Linker::new(&engine);
    linker.func_wrap("host", "f", f)?;
    let mut store = Store::new(&engine, ());
    let instance = linker.instantiate(&mut store, &module)?;
    instance.get_typed_func::<i32, i32>(&store, "run")?.call(&mut store, arg)
}

#[test]
fn host_functions_return_values_traps_or_anyhow_results() {
    assert_eq!(run_with(|x: i32| x * 2, 21).unwrap(), 42);
    assert_eq!(run_with(|x: i32| -> Result<i32, Trap> { Ok(x + 1) }, 1).unwrap(), 2);
    assert_eq!(run_with(|x: i32| -> anyhow::Result<i32> { Ok(x - 1) }, 1).unwrap(), 0);

    // `?` on any error inside an `anyhow::Result` host function.
    let parse = |x: i32| -> anyhow::Result<i32> { Ok(format!("{x}x").parse::<i32>()?) };
    let err = run_with(parse, 7).unwrap_err();
    let trap = err.as_trap().expect("a trap");
    assert_eq!(trap.kind(), TrapKind::HostError);
    assert_eq!(trap.message(), "invalid digit found in string");
    assert!(err.downcast_ref::<std::num::ParseIntError>().is_some());
    let frames: Vec<_> = trap.backtrace().iter().map(|f| f.to_string()).collect();
    assert_eq!(frames, ["m!inner", "m!<wasm function 2>"]);
}

#[test]
fn a_host_error_comes_back_as_its_own_type_through_context_and_anyhow() {
    let f = |x: i32| -> anyhow::Result<i32> {
        Err(anyhow::Error::new(QuotaExceeded(x as u32)).context("while charging the request"))
    };
    let err = run_with(f, 3).unwrap_err();
    assert_eq!(err.downcast_ref::<QuotaExceeded>(), Some(&QuotaExceeded(3)));
    let trap = err.downcast_ref::<Trap>().expect("the trap itself");
    assert_eq!(trap.message(), "while charging the request: quota of 3 exceeded");
    assert_eq!(trap.downcast_host::<QuotaExceeded>(), Some(&QuotaExceeded(3)));

    // The same error, raised as a `Result<_, Trap>`.
    let err =
        run_with(|x: i32| -> Result<i32, Trap> { Err(Trap::host_error(QuotaExceeded(x as u32))) }, 4).unwrap_err();
    assert_eq!(err.downcast_ref::<QuotaExceeded>(), Some(&QuotaExceeded(4)));

    // `carnac::Error` goes into `anyhow::Error` with `?`, and comes back out.
    fn embedder() -> anyhow::Result<i32> {
        Ok(run_with(|_: i32| -> anyhow::Result<i32> { Err(QuotaExceeded(5).into()) }, 0)?)
    }
    let err: anyhow::Error = embedder().unwrap_err();
    let carnac_err = err.downcast_ref::<Error>().expect("a carnac::Error");
    assert_eq!(carnac_err.as_trap().unwrap().kind(), TrapKind::HostError);
    assert_eq!(carnac_err.downcast_ref::<QuotaExceeded>(), Some(&QuotaExceeded(5)));
    // The trap is in there as itself too, as Wasmtime's is.
    let trap = err.downcast_ref::<Trap>().expect("the trap");
    assert_eq!(trap.downcast_host::<QuotaExceeded>(), Some(&QuotaExceeded(5)));
    fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
    is_error::<Trap>();
}

#[test]
fn errors_the_api_returns_downcast_to_trap_after_question_mark_into_anyhow() {
    // A host function fails with its own error; a second host function calls
    // into wasm again through its `Caller` and passes that call's error on
    // with `?`; the embedder's `?` turns the outer call's error into an
    // `anyhow::Error`.
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module $m
            (import "host" "charge" (func $charge (param i32)))
            (import "host" "nested" (func $nested (param i32)))
            (func $bill (export "bill") (param i32) (call $charge (local.get 0)))
            (func $crash (export "crash") unreachable)
            (func (export "run") (param i32) (call $nested (local.get 0))))"#,
    )
    .unwrap();
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap("host", "charge", |n: i32| -> anyhow::Result<()> {
            Err(anyhow::Error::new(QuotaExceeded(n as u32)).context("while charging"))
        })
        .unwrap();
    linker
        .func_wrap("host", "nested", |mut caller: Caller<'_, ()>, n: i32| -> anyhow::Result<()> {
            let name = if n < 0 { "crash" } else { "bill" };
            let f = caller.get_export(name).and_then(Extern::into_func).unwrap();
            if n < 0 {
                f.typed::<(), ()>(&caller)?.call(&mut caller, ())?;
            } else {
                f.typed::<i32, ()>(&caller)?.call(&mut caller, n)?;
            }
            Ok(())
        })
        .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let run = instance.get_typed_func::<i32, ()>(&store, "run").unwrap();
    let mut embedder = |n: i32| -> anyhow::Result<()> {
        run.call(&mut store, n)?;
        Ok(())
    };

    let err = embedder(9).unwrap_err();
    let trap = err.downcast_ref::<Trap>().expect("downcast_ref::<Trap>() on the anyhow::Error");
    assert_eq!(trap.kind(), TrapKind::HostError);
    assert_eq!(trap.downcast_host::<QuotaExceeded>(), Some(&QuotaExceeded(9)));
    assert_eq!(trap.message(), "while charging: quota of 9 exceeded");
    // The backtrace of the nested call, where the host error happened.
    let frames: Vec<_> = trap.backtrace().iter().map(|f| f.to_string()).collect();
    assert_eq!(frames, ["m!bill"]);
    // The `carnac::Error` is found as well, as before.
    let carnac_err = err.downcast_ref::<Error>().expect("downcast_ref::<carnac::Error>()");
    assert_eq!(carnac_err.downcast_ref::<QuotaExceeded>(), Some(&QuotaExceeded(9)));
    assert_eq!(carnac_err.as_trap().unwrap().backtrace().len(), 1);
    // Displayed: the trap with its backtrace, then its message as the cause.
    let shown = format!("{err:?}");
    assert!(shown.starts_with("wasm trap: while charging: quota of 9 exceeded\nwasm backtrace:"), "{shown}");
    assert_eq!(shown.matches("wasm backtrace:").count(), 1, "{shown}");
    assert!(shown.contains("Caused by:\n    wasm trap: while charging: quota of 9 exceeded"), "{shown}");
    assert_eq!(err.root_cause().to_string(), "wasm trap: while charging: quota of 9 exceeded");

    // A guest trap through the nested call: its own kind, as a Trap.
    let err = embedder(-1).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>().unwrap().kind(), TrapKind::Unreachable);
    assert_eq!(err.downcast_ref::<Error>().unwrap().as_trap().unwrap().kind(), TrapKind::Unreachable);
    // Taken out of the anyhow::Error and returned again, a trap shows its backtrace again.
    let again = Trap::from(err);
    assert!(again.to_string().contains("wasm backtrace:"), "{again}");

    // Errors that are not traps: a carnac::Error, and no Trap.
    let err = anyhow::Error::from(Module::new(&engine, "(module (func (result i32)))").unwrap_err());
    assert!(matches!(err.downcast_ref::<Error>(), Some(Error::Invalid { .. })), "{err:?}");
    assert!(err.downcast_ref::<Trap>().is_none());
    // `?` into a boxed std error works too, message intact.
    let boxed = || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Module::new(&engine, "(module (func (result i32)))")?;
        Ok(())
    };
    assert!(boxed().unwrap_err().to_string().starts_with("invalid module at offset"));
}

#[test]
fn a_trap_inside_an_anyhow_error_keeps_its_kind() {
    let err = run_with(|_: i32| -> anyhow::Result<i32> { Err(Trap::new(TrapKind::Unreachable).into()) }, 0);
    assert_eq!(err.unwrap_err().as_trap().unwrap().kind(), TrapKind::Unreachable);
}

#[test]
fn a_nested_calls_error_propagates_with_question_mark() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
            (import "host" "twice" (func $twice (param i32) (result i32)))
            (func (export "half") (param i32) (result i32)
                (if (i32.eqz (local.get 0)) (then unreachable))
                (i32.div_u (local.get 0) (i32.const 2)))
            (func (export "run") (param i32) (result i32) (call $twice (local.get 0))))"#,
    )
    .unwrap();
    let mut linker = Linker::new(&engine);
    // Calls the guest's `half` twice; its errors (`carnac::Error`) leave with `?`.
    linker
        .func_wrap("host", "twice", |mut caller: Caller<'_, ()>, x: i32| -> Result<i32, Trap> {
            let half = caller.get_export("half").and_then(Extern::into_func).unwrap();
            let half = half.typed::<i32, i32>(&caller)?;
            let once = half.call(&mut caller, x)?;
            Ok(half.call(&mut caller, once)?)
        })
        .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let run = instance.get_typed_func::<i32, i32>(&store, "run").unwrap();
    assert_eq!(run.call(&mut store, 8).unwrap(), 2);
    // The nested call trapped: the outer call reports that trap, not a host error.
    let err = run.call(&mut store, 1).unwrap_err();
    assert_eq!(err.as_trap().unwrap().kind(), TrapKind::Unreachable);

    // An API error of the nested call (here: a type mismatch) is a host error carrying it.
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap("host", "twice", |caller: Caller<'_, ()>, _: i32| -> anyhow::Result<i32> {
            let half = caller.get_export("half").and_then(Extern::into_func).unwrap();
            half.typed::<i64, i64>(&caller)?;
            Ok(0)
        })
        .unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let err = instance.get_typed_func::<i32, i32>(&store, "run").unwrap().call(&mut store, 1).unwrap_err();
    let trap = err.as_trap().unwrap();
    assert_eq!(trap.kind(), TrapKind::HostError);
    assert!(matches!(trap.downcast_host::<Error>(), Some(Error::Usage(_))), "{trap:?}");
    assert!(trap.message().starts_with("type mismatch"), "{}", trap.message());
}

#[test]
fn a_caller_goes_wherever_a_store_does() {
    let mut config = Config::default();
    config.consume_fuel(true);
    let engine = Engine::new(&config);
    let module = Module::new(
        &engine,
        r#"(module
            (import "host" "visit" (func $visit (param i32 i32)))
            (memory (export "memory") 1)
            (global (export "counter") (mut i32) (i32.const 5))
            (table (export "table") 2 funcref)
            (func $seven (export "seven") (result i32) (i32.const 7))
            (elem (i32.const 1) func $seven)
            (data (i32.const 8) "abc")
            (func (export "run") (call $visit (i32.const 8) (i32.const 3))))"#,
    )
    .unwrap();
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap("host", "visit", |mut caller: Caller<'_, Vec<String>>, ptr: i32, len: i32| -> anyhow::Result<()> {
            let export = |caller: &Caller<'_, Vec<String>>, name: &str| caller.get_export(name).unwrap();
            let memory = export(&caller, "memory").into_memory().unwrap();
            let (bytes, seen) = memory.data_and_store_mut(&mut caller);
            seen.push(String::from_utf8(bytes[ptr as usize..][..len as usize].to_vec())?);
            memory.write(&mut caller, 0, b"xy")?;
            let (mut tracked, _) = memory.data_and_store_tracked(&mut caller);
            tracked.get_mut(2..3).unwrap()[0] = b'z';
            assert_eq!(&memory.data(&caller)[..3], b"xyz");
            assert_eq!((memory.size(&caller), memory.data_size(&caller)), (1, WASM_PAGE));

            let counter = export(&caller, "counter").into_global().unwrap();
            let n = counter.get(&mut caller).i32().unwrap();
            counter.set(&mut caller, Val::I32(n + 1))?;

            let table = export(&caller, "table").into_table().unwrap();
            let Some(Val::FuncRef(Some(seven))) = table.get(&mut caller, 1) else { panic!("table[1] is $seven") };
            let mut out = [Val::I32(0)];
            seven.call(&mut caller, &[], &mut out)?;
            let typed = seven.typed::<(), i32>(&caller)?;
            let again = typed.call(&mut caller, ())?;
            caller.data_mut().push(format!("{} {again}", out[0]));

            // Fuel, as on a store: the host charges 100 for its own work.
            let fuel = caller.get_fuel()?;
            caller.set_fuel(fuel - 100)?;
            Ok(())
        })
        .unwrap();
    let mut store = Store::new(&engine, Vec::new());
    store.set_fuel(10_000).unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    instance.get_typed_func::<(), ()>(&store, "run").unwrap().call(&mut store, ()).unwrap();
    assert_eq!(store.data(), &["abc", "7 7"]);
    assert_eq!(instance.get_global(&store, "counter").unwrap().get(&mut store).i32(), Some(6));
    let used = 10_000 - store.get_fuel().unwrap();
    assert!((100..200).contains(&used), "used {used}");
}

#[test]
fn a_caller_without_fuel_metering_says_so() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let f = Func::wrap(&mut store, |mut caller: Caller<'_, ()>| -> Result<(), Trap> {
        let err = caller.get_fuel().unwrap_err();
        assert!(err.to_string().contains("fuel is not enabled"), "{err}");
        assert!(caller.set_fuel(1).is_err());
        Ok(())
    });
    f.call(&mut store, &[], &mut []).unwrap();
}

#[test]
fn typed_calls_and_host_functions_pass_references() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
            (import "host" "pick" (func $pick (param externref externref i32) (result externref)))
            (import "host" "callee" (func $callee (param funcref) (result funcref)))
            (table $t (export "table") 1 funcref)
            (func $answer (export "answer") (result i32) (i32.const 42))
            (elem declare func $answer)
            (func (export "pick") (param externref externref i32) (result externref)
                (call $pick (local.get 0) (local.get 1) (local.get 2)))
            (func (export "identity") (param funcref) (result funcref) (local.get 0))
            (func (export "answer_ref") (result funcref) (call $callee (ref.func $answer)))
            (func (export "call_ref") (param funcref) (result i32)
                (table.set $t (i32.const 0) (local.get 0))
                (call_indirect (result i32) (i32.const 0))))"#,
    )
    .unwrap();
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap(
            "host",
            "pick",
            |a: Option<ExternRef>, b: Option<ExternRef>, second: i32| {
                if second != 0 {
                    b
                } else {
                    a
                }
            },
        )
        .unwrap();
    linker.func_wrap("host", "callee", |f: Option<Func>| -> Result<Option<Func>, Trap> { Ok(f) }).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = linker.instantiate(&mut store, &module).unwrap();

    let a = ExternRef::new(&mut store, "a").unwrap();
    let b = ExternRef::new(&mut store, 2u64).unwrap();
    let pick =
        instance.get_typed_func::<(Option<ExternRef>, Option<ExternRef>, i32), Option<ExternRef>>(&store, "pick");
    let pick = pick.unwrap();
    let got = pick.call(&mut store, (Some(a), Some(b), 1)).unwrap().unwrap();
    assert_eq!(got.data(&store).unwrap().unwrap().downcast_ref::<u64>(), Some(&2));
    assert_eq!(pick.call(&mut store, (Some(a), None, 0)).unwrap(), Some(a));
    assert_eq!(pick.call(&mut store, (Some(a), None, 1)).unwrap(), None);

    let answer = instance.get_func(&store, "answer").unwrap();
    let identity = instance.get_typed_func::<Option<Func>, Option<Func>>(&store, "identity").unwrap();
    assert_eq!(identity.call(&mut store, Some(answer)).unwrap(), Some(answer));
    assert_eq!(identity.call(&mut store, None).unwrap(), None);
    let answer_ref = instance.get_typed_func::<(), Option<Func>>(&store, "answer_ref").unwrap();
    let f = answer_ref.call(&mut store, ()).unwrap().expect("a function");
    assert_eq!(f.typed::<(), i32>(&store).unwrap().call(&mut store, ()).unwrap(), 42);
    // A host function as a funcref, called indirectly by the guest.
    let host = Func::wrap(&mut store, || 7);
    let call_ref = instance.get_typed_func::<Option<Func>, i32>(&store, "call_ref").unwrap();
    assert_eq!(call_ref.call(&mut store, Some(host)).unwrap(), 7);
    assert_eq!(call_ref.call(&mut store, None).unwrap_err().as_trap().unwrap().kind(), TrapKind::IndirectCallToNull);

    // A reference of another store is an error, not a reference to something else.
    let mut other = Store::new(&engine, ());
    let foreign = ExternRef::new(&mut other, "elsewhere").unwrap();
    let err = pick.call(&mut store, (Some(foreign), None, 0)).unwrap_err();
    assert!(err.to_string().contains("belongs to a different store"), "{err}");
    let foreign_func = Func::wrap(&mut other, || 0);
    assert!(identity.call(&mut store, Some(foreign_func)).is_err());
}

#[test]
fn a_host_function_returning_another_stores_reference_traps() {
    let engine = Engine::default();
    let mut other = Store::new(&engine, ());
    let foreign = ExternRef::new(&mut other, ()).unwrap();
    let mut store = Store::new(&engine, ());
    let f = Func::wrap(&mut store, move || Some(foreign));
    let err = f.typed::<(), Option<ExternRef>>(&store).unwrap().call(&mut store, ()).unwrap_err();
    let trap = err.as_trap().expect("a trap");
    assert_eq!(trap.kind(), TrapKind::HostError);
    assert!(trap.message().contains("belongs to a different store"), "{}", trap.message());
}

#[test]
fn types_have_constructors() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let mem = Memory::new(&mut store, MemoryType::new(1, Some(3))).unwrap();
    assert_eq!(mem.ty(&store), MemoryType::new(1, Some(3)));
    assert_eq!((mem.ty(&store).minimum(), mem.ty(&store).maximum()), (1, Some(3)));
    assert_eq!(mem.grow(&mut store, 1).unwrap(), 1);
    // `size` is in pages, `data_size` in bytes.
    assert_eq!(mem.size(&store), 2);
    assert_eq!(mem.data_size(&store), 2 * WASM_PAGE);
    assert_eq!(mem.data(&store).len(), mem.data_size(&store));

    let table = Table::new(&mut store, TableType::new(ValType::FuncRef, 2, None), Val::FuncRef(None)).unwrap();
    let ty = table.ty(&store);
    assert_eq!((ty.element(), ty.minimum(), ty.maximum()), (ValType::FuncRef, 2, None));

    let global = Global::new(&mut store, GlobalType::new(ValType::I64, Mutability::Var), Val::I64(1)).unwrap();
    global.set(&mut store, Val::I64(2)).unwrap();
    assert_eq!(global.get(&mut store).i64(), Some(2));
    assert_eq!(global.ty(&store).to_string(), "(mut i64)");
    let constant = Global::new(&mut store, GlobalType::new(ValType::I32, Mutability::Const), Val::I32(1)).unwrap();
    assert_eq!(constant.ty(&store).mutability(), Mutability::Const);
    assert!(constant.set(&mut store, Val::I32(2)).is_err());
}

/// Runs `f` and returns its panic message.
fn panic_message(f: impl FnOnce()) -> String {
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
    err.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| err.downcast_ref::<String>().cloned()).unwrap()
}

#[test]
fn handles_used_with_a_different_store_say_so() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (func (export "go")) (memory (export "memory") 1) (table (export "table") 1 funcref))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let mut other = Store::new(&engine, ());

    // Methods returning a Result: an error that names the cause, not "no exported function".
    let err = instance.get_typed_func::<(), ()>(&other, "go").unwrap_err();
    assert_eq!(err.to_string(), "cannot get `go`: the instance belongs to a different store than the one given");
    let go = instance.get_func(&store, "go").unwrap();
    let err = go.call(&mut other, &[], &mut []).unwrap_err();
    assert_eq!(err.to_string(), "function belongs to a different store than the one it was used with");
    let err = go.typed::<(), ()>(&other).unwrap_err();
    assert!(err.to_string().contains("different store"), "{err}");
    let memory = instance.get_memory(&store, "memory").unwrap();
    let err = memory.grow(&mut other, 1).unwrap_err();
    assert_eq!(err.to_string(), "Memory belongs to a different store than the one it was used with");
    assert!(memory.write(&mut other, 0, b"x").unwrap_err().to_string().contains("different store"));

    // Accessors returning Option: a panic, as in Wasmtime, instead of a `None` that
    // would say the export (or table element) does not exist.
    let msg = panic_message(|| {
        let _ = instance.get_func(&other, "go");
    });
    assert!(msg.contains("Instance belongs to a different store"), "{msg}");
    let msg = panic_message(|| {
        let _ = instance.exports(&other);
    });
    assert!(msg.contains("Instance belongs to a different store"), "{msg}");
    let table = instance.get_table(&store, "table").unwrap();
    let msg = panic_message(|| {
        let _ = table.get(&mut other, 0);
    });
    assert!(msg.contains("Table belongs to a different store"), "{msg}");
    let msg = panic_message(|| {
        let _ = memory.size(&other);
    });
    assert!(msg.contains("Memory belongs to a different store"), "{msg}");

    // An export that is not a function.
    let err = instance.get_typed_func::<(), ()>(&store, "memory").unwrap_err();
    assert_eq!(err.to_string(), "export `memory` is a memory, not a function");
}

#[test]
fn import_mismatches_report_the_current_size() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    // Declared with 1 page, grown to 3: the message gives 3.
    let memory = Memory::new(&mut store, MemoryType::new(1, Some(4))).unwrap();
    memory.grow(&mut store, 2).unwrap();
    let module = Module::new(&engine, r#"(module (import "env" "memory" (memory 2 3)))"#).unwrap();
    let err = Instance::new(&mut store, &module, &[memory.into()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "incompatible import type for `env::memory`: expected a memory of at least 2 pages and at most 3 pages, \
         found a memory currently of 3 pages and at most 4 pages"
    );
    let small = Memory::new(&mut store, MemoryType::new(1, None)).unwrap();
    let err = Instance::new(&mut store, &module, &[small.into()]).unwrap_err();
    assert!(err.to_string().ends_with("found a memory currently of 1 page with no maximum"), "{err}");

    let table = Table::new(&mut store, TableType::new(ValType::FuncRef, 1, None), Val::FuncRef(None)).unwrap();
    let module = Module::new(&engine, r#"(module (import "env" "t" (table 2 funcref)))"#).unwrap();
    let err = Instance::new(&mut store, &module, &[table.into()]).unwrap_err();
    assert!(
        err.to_string().ends_with(
            "expected a funcref table of at least 2 elements, found a funcref table currently of 1 element with no maximum"
        ),
        "{err}"
    );

    let global = Global::new(&mut store, GlobalType::new(ValType::I32, Mutability::Const), Val::I32(0)).unwrap();
    let module = Module::new(&engine, r#"(module (import "env" "g" (global (mut i32))))"#).unwrap();
    let err = Instance::new(&mut store, &module, &[global.into()]).unwrap_err();
    assert!(err.to_string().ends_with("expected a global (mut i32), found a global i32"), "{err}");
    let module = Module::new(&engine, r#"(module (import "env" "f" (func (param i32))))"#).unwrap();
    let err = Instance::new(&mut store, &module, &[global.into()]).unwrap_err();
    assert!(err.to_string().ends_with("expected a function (func (param i32)), found a global i32"), "{err}");
}

#[test]
fn growing_past_a_maximum_says_which_maximum() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let memory = Memory::new(&mut store, MemoryType::new(1, Some(2))).unwrap();
    let err = memory.grow(&mut store, 2).unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err:?}");
    assert_eq!(err.to_string(), "memory of 1 page cannot grow by 2 pages: beyond its maximum of 2 pages");
    assert_eq!(memory.grow(&mut store, 1).unwrap(), 1);
    let err = memory.grow(&mut store, 1).unwrap_err();
    assert_eq!(err.to_string(), "memory of 2 pages cannot grow by 1 page: beyond its maximum of 2 pages");

    let unbounded = Memory::new(&mut store, MemoryType::new(0, None)).unwrap();
    let err = unbounded.grow(&mut store, 70_000).unwrap_err();
    assert_eq!(
        err.to_string(),
        "memory of 0 pages cannot grow by 70000 pages: beyond the 65536 pages a 32-bit memory can address"
    );

    // The store's own limits are a resource limit, and say so.
    store.set_limiter(StoreLimits::new().memory_size(2 * WASM_PAGE)); // the store holds 2 pages already
    let limited = Memory::new(&mut store, MemoryType::new(0, None)).unwrap();
    let err = limited.grow(&mut store, 1).unwrap_err();
    assert!(matches!(err, Error::Limit(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "resource limit exceeded: memory of 0 pages cannot grow by 1 page: the store's limits refuse it, \
         or the host cannot commit the memory"
    );
    let err = Memory::new(&mut store, MemoryType::new(1, None)).unwrap_err();
    assert_eq!(err.to_string(), "resource limit exceeded: memory of 1 page (65536 bytes) is over the store's limits");

    let mut fresh = Store::new(&engine, ());
    let table = Table::new(&mut fresh, TableType::new(ValType::FuncRef, 1, Some(1)), Val::FuncRef(None)).unwrap();
    let err = table.grow(&mut fresh, 1, Val::FuncRef(None)).unwrap_err();
    assert_eq!(err.to_string(), "table of 1 element cannot grow by 1 element: beyond its maximum of 1 element");
    let err = table.grow(&mut fresh, 0, Val::I32(0)).unwrap_err();
    assert_eq!(err.to_string(), "table element has type funcref, not i32");
}
