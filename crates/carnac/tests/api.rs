//! The embedding API end to end: host functions, memory access, traps and
//! backtraces, limits, fuel, and misuse that must be an error rather than a panic.

use carnac::*;

fn instantiate(wat: &str) -> (Store<()>, Instance) {
    let engine = Engine::default();
    let module = Module::new(&engine, wat).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    (store, instance)
}

#[test]
fn host_function_sees_caller_memory_and_data() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
            (import "env" "log" (func $log (param i32 i32)))
            (memory (export "memory") 1)
            (data (i32.const 16) "hello, host")
            (func (export "run") (call $log (i32.const 16) (i32.const 11))))"#,
    )
    .unwrap();
    let mut linker: Linker<Vec<String>> = Linker::new(&engine);
    linker
        .func_wrap("env", "log", |mut caller: Caller<'_, Vec<String>>, ptr: i32, len: i32| {
            let mem = caller.get_export("memory").and_then(Extern::into_memory).unwrap();
            let bytes = mem.data(&caller)[ptr as usize..(ptr + len) as usize].to_vec();
            caller.data_mut().push(String::from_utf8(bytes).unwrap());
        })
        .unwrap();
    let mut store = Store::new(&engine, Vec::new());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let run = instance.get_typed_func::<(), ()>(&store, "run").unwrap();
    run.call(&mut store, ()).unwrap();
    assert_eq!(store.data(), &vec!["hello, host".to_string()]);
}

#[test]
fn host_function_error_becomes_trap_with_backtrace() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module $m
            (import "env" "fail" (func $fail))
            (func $inner (call $fail))
            (func $outer (export "run") (call $inner)))"#,
    )
    .unwrap();
    let mut linker: Linker<()> = Linker::new(&engine);
    linker.func_wrap("env", "fail", || -> Result<(), Trap> { Err(Trap::host("boom")) }).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let err = instance.get_func(&store, "run").unwrap().call(&mut store, &[], &mut []).unwrap_err();
    let trap = err.as_trap().expect("a trap");
    assert_eq!(trap.kind(), TrapKind::HostError);
    assert_eq!(trap.message(), "boom");
    let names: Vec<_> = trap.backtrace().iter().map(|f| f.func_name.as_deref().unwrap().to_string()).collect();
    assert_eq!(names, ["inner", "outer"]);
    assert_eq!(trap.backtrace()[0].module_name.as_deref(), Some("m"));
}

#[test]
fn backtraces_name_every_frame_of_calls_made_inside_the_interpreter() {
    // Calls between functions of one instance push frames that record only
    // where to return; the backtrace names each frame from that address.
    let (mut store, instance) = instantiate(
        r#"(module $m
            (func $leaf (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0)))
            (func $mid (param i32) (result i32) (call $leaf (local.get 0)))
            (func $rec (export "run") (param i32) (result i32)
                (if (result i32) (local.get 0)
                    (then (i32.add (i32.const 1) (call $rec (i32.sub (local.get 0) (i32.const 1)))))
                    (else (call $mid (i32.const 0))))))"#,
    );
    let run = instance.get_typed_func::<i32, i32>(&store, "run").unwrap();
    let err = run.call(&mut store, 3).unwrap_err();
    let trap = err.as_trap().expect("a trap");
    assert_eq!(trap.kind(), TrapKind::IntegerDivisionByZero);
    let frames: Vec<_> =
        trap.backtrace().iter().map(|f| (f.func_index, f.func_name.as_deref().unwrap().to_string())).collect();
    let expected = [(0, "leaf"), (1, "mid"), (2, "rec"), (2, "rec"), (2, "rec"), (2, "rec")];
    assert_eq!(frames, expected.map(|(i, n)| (i, n.to_string())));
    // Deep recursion: one frame per call, every one kept named; past
    // `Config::wasm_backtrace_max_frames` (256) the middle is left out and counted.
    let err = run.call(&mut store, 5000).unwrap_err();
    let trap = err.as_trap().expect("a trap");
    assert_eq!((trap.backtrace().len(), trap.frames_elided(), trap.elided_at()), (256, 5003 - 256, 128));
    assert_eq!(trap.backtrace()[..2].iter().map(|f| f.func_index).collect::<Vec<_>>(), [0, 1]);
    assert!(trap.backtrace()[2..].iter().all(|f| f.func_index == 2));
}

#[test]
fn backtraces_across_instances_name_each_frame_in_its_own_module() {
    // `a` recurses, then calls into `b`, which recurses and traps: the frames
    // of each instance's calls are named from their own module's code.
    let engine = Engine::default();
    let b = Module::new(
        &engine,
        r#"(module $b
            (func $boom (param i32) (result i32) (i32.div_s (i32.const 1) (i32.const 0)))
            (func $deep (export "deep") (param i32) (result i32)
                (if (result i32) (local.get 0)
                    (then (call $deep (i32.sub (local.get 0) (i32.const 1))))
                    (else (call $boom (i32.const 0))))))"#,
    )
    .unwrap();
    let a = Module::new(
        &engine,
        r#"(module $a
            (import "b" "deep" (func $deep (param i32) (result i32)))
            (func $pad (param i32) (result i32) (i32.const 0))
            (func $down (export "down") (param i32) (result i32)
                (if (result i32) (local.get 0)
                    (then (call $down (i32.sub (local.get 0) (i32.const 1))))
                    (else (call $deep (i32.const 2))))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker: Linker<()> = Linker::new(&engine);
    let bi = linker.instantiate(&mut store, &b).unwrap();
    linker.instance(&mut store, "b", bi).unwrap();
    let ai = linker.instantiate(&mut store, &a).unwrap();
    let down = ai.get_typed_func::<i32, i32>(&store, "down").unwrap();
    let err = down.call(&mut store, 2).unwrap_err();
    let trap = err.as_trap().expect("a trap");
    assert_eq!(trap.kind(), TrapKind::IntegerDivisionByZero);
    let frames: Vec<_> = trap
        .backtrace()
        .iter()
        .map(|f| {
            (f.module_name.as_deref().unwrap().to_string(), f.func_index, f.func_name.as_deref().unwrap().to_string())
        })
        .collect();
    let expected = [
        ("b", 0, "boom"),
        ("b", 1, "deep"),
        ("b", 1, "deep"),
        ("b", 1, "deep"),
        ("a", 2, "down"),
        ("a", 2, "down"),
        ("a", 2, "down"),
    ];
    assert_eq!(frames, expected.map(|(m, i, n)| (m.to_string(), i, n.to_string())));
    // Both instances still run after the trap, and trap the same way again
    // (no frame left behind: the backtrace is as deep as the new call).
    let err = down.call(&mut store, 3).unwrap_err();
    let trap = err.as_trap().expect("a trap");
    assert_eq!(trap.kind(), TrapKind::IntegerDivisionByZero);
    assert_eq!(trap.backtrace().len(), 8);
    let deep = bi.get_typed_func::<i32, i32>(&store, "deep").unwrap();
    let err = deep.call(&mut store, 1).unwrap_err();
    assert_eq!(err.as_trap().map(|t| t.backtrace().len()), Some(3));
}

#[test]
fn a_stack_exhausted_by_mutual_recursion_in_a_large_module_names_every_frame() {
    // Frames name their function by a search in the module's code: the
    // backtrace stays linear in its depth whatever the module's size and the
    // recursion's shape (two functions taking turns among a thousand).
    let mut wat = String::from("(module");
    for i in 0..1000 {
        wat += &format!(" (func $pad{i} (result i32) (i32.const {i}))");
    }
    wat += r#" (func $f (export "f") (param i32) (result i32) (call $g (i32.add (local.get 0) (i32.const 1))))
               (func $g (param i32) (result i32) (call $f (i32.add (local.get 0) (i32.const 1)))))"#;
    let mut config = Config::new();
    // The interpreter's exact depth (compiled code is bounded by stack bytes).
    config.strategy(Strategy::Interpreter).max_call_depth(20_000).wasm_backtrace_max_frames(usize::MAX);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, &wat).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let f = instance.get_typed_func::<i32, i32>(&store, "f").unwrap();
    let err = f.call(&mut store, 0).unwrap_err();
    let trap = err.as_trap().expect("a trap");
    assert_eq!(trap.kind(), TrapKind::StackExhausted);
    let bt = trap.backtrace();
    assert!(bt.len() >= 20_000, "{}", bt.len());
    // Innermost first; the outermost frame is `f`, and the two take turns.
    assert_eq!(bt.last().unwrap().func_name.as_deref(), Some("f"));
    for pair in bt.windows(2) {
        let names = [pair[0].func_index, pair[1].func_index];
        assert!(names == [1000, 1001] || names == [1001, 1000], "{names:?}");
    }
}

#[test]
fn backtraces_name_functions_translated_after_an_earlier_trap() {
    // The module keeps the code ranges its first backtrace built; a function
    // translated lazily afterwards is found all the same.
    let mut config = Config::new();
    config.lazy_translation(true);
    let engine = Engine::new(&config);
    let module = Module::new(
        &engine,
        r#"(module
            (func $first (export "first") (result i32) (call $fail))
            (func $fail (result i32) (unreachable))
            (func $later (export "later") (result i32) (call $also))
            (func $also (result i32) (i32.div_u (i32.const 1) (i32.const 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let names = |store: &mut Store<()>, export: &str| {
        let f = instance.get_typed_func::<(), i32>(&*store, export).unwrap();
        let err = f.call(store, ()).unwrap_err();
        err.as_trap()
            .unwrap()
            .backtrace()
            .iter()
            .map(|f| f.func_name.as_deref().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&mut store, "first"), ["fail", "first"]);
    assert_eq!(names(&mut store, "later"), ["also", "later"]);
    assert_eq!(names(&mut store, "first"), ["fail", "first"]);
}

#[test]
fn returns_through_frames_left_by_host_calls_deep_in_a_recursion() {
    // A host call ends the interpreter's run, so the frames its calls pushed are
    // completed; the returns after it go back through those frames.
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
            (import "env" "get" (func $get (param i32) (result i32)))
            (func $f (export "f") (param i32) (result i32)
                (if (result i32) (local.get 0)
                    (then (i32.add (call $get (local.get 0))
                                   (call $f (i32.sub (local.get 0) (i32.const 1)))))
                    (else (call $get (i32.const 1000))))))"#,
    )
    .unwrap();
    let mut linker: Linker<u32> = Linker::new(&engine);
    linker
        .func_wrap("env", "get", |mut caller: Caller<'_, u32>, x: i32| -> i32 {
            *caller.data_mut() += 1;
            x * 2
        })
        .unwrap();
    let mut store = Store::new(&engine, 0u32);
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let f = instance.get_typed_func::<i32, i32>(&store, "f").unwrap();
    // 2 * (1 + 2 + ... + 200) + 2000
    assert_eq!(f.call(&mut store, 200).unwrap(), 200 * 201 + 2000);
    assert_eq!(*store.data(), 201);
}

#[test]
fn traps_have_kinds() {
    let (mut store, instance) = instantiate(
        r#"(module
            (memory 1)
            (table 2 funcref)
            (func (export "unreachable") unreachable)
            (func (export "oob") (drop (i32.load (i32.const 65535))))
            (func (export "div") (drop (i32.div_u (i32.const 1) (i32.const 0))))
            (func (export "overflow") (drop (i32.div_s (i32.const 0x80000000) (i32.const -1))))
            (func (export "conv") (drop (i32.trunc_f32_s (f32.const nan))))
            (func (export "null") (call_indirect (i32.const 0)))
            (func (export "table") (call_indirect (i32.const 5))))"#,
    );
    for (name, kind) in [
        ("unreachable", TrapKind::Unreachable),
        ("oob", TrapKind::MemoryOutOfBounds),
        ("div", TrapKind::IntegerDivisionByZero),
        ("overflow", TrapKind::IntegerOverflow),
        ("conv", TrapKind::BadConversionToInteger),
        ("null", TrapKind::IndirectCallToNull),
        ("table", TrapKind::TableOutOfBounds),
    ] {
        let f = instance.get_func(&store, name).unwrap();
        let err = f.call(&mut store, &[], &mut []).unwrap_err();
        assert_eq!(err.as_trap().map(Trap::kind), Some(kind), "{name}");
    }
}

#[test]
fn deep_recursion_is_a_trap_not_a_crash() {
    let wat = r#"(module
        (func $down (export "down") (param i32) (result i32)
            (if (result i32) (i32.eqz (local.get 0))
                (then (i32.const 0))
                (else (i32.add (i32.const 1) (call $down (i32.sub (local.get 0) (i32.const 1))))))))"#;
    let mut config = Config::new();
    // The interpreter's exact depth (compiled code is bounded by stack bytes).
    config.strategy(Strategy::Interpreter).max_call_depth(1000);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, wat).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let down = instance.get_typed_func::<i32, i32>(&store, "down").unwrap();
    assert_eq!(down.call(&mut store, 900).unwrap(), 900);
    let err = down.call(&mut store, 5000).unwrap_err();
    assert_eq!(err.as_trap().unwrap().kind(), TrapKind::StackExhausted);
    // The store stays usable after the trap.
    assert_eq!(down.call(&mut store, 10).unwrap(), 10);

    // With the default configuration, a runaway recursion also ends in a trap.
    let (mut store, instance) = instantiate(r#"(module (func $f (export "f") (call $f)))"#);
    let err = instance.get_func(&store, "f").unwrap().call(&mut store, &[], &mut []).unwrap_err();
    assert_eq!(err.as_trap().unwrap().kind(), TrapKind::StackExhausted);
}

#[test]
fn a_deep_backtrace_is_displayed_with_its_middle_elided() {
    let (mut store, instance) = instantiate(r#"(module (func $f (export "f") (call $f)))"#);
    let err = instance.get_func(&store, "f").unwrap().call(&mut store, &[], &mut []).unwrap_err();
    let trap = err.as_trap().unwrap();
    // The trap keeps both ends of the 100,000 frames and counts the rest.
    let depth = trap.backtrace().len() + trap.frames_elided();
    assert!(depth > 10_000, "{depth}");
    assert_eq!(trap.backtrace().len(), 256);
    let shown = trap.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert!(lines.len() < 300, "{} lines", lines.len());
    assert_eq!(lines[0], "wasm trap: call stack exhausted");
    assert_eq!(lines[1], "wasm backtrace:");
    assert!(lines[2].starts_with("  0: "), "{}", lines[2]);
    let elided = lines.iter().find(|l| l.contains("frames elided")).expect("an elision line");
    let shown_frames = lines.len() - 3;
    assert_eq!(*elided, format!("  ... {} frames elided ...", depth - shown_frames));
    assert!(lines.last().unwrap().starts_with(&format!("  {}: ", depth - 1)), "{}", lines.last().unwrap());
    // Capture can be turned off: no frames, one line.
    let mut config = Config::new();
    config.wasm_backtrace(false);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, r#"(module (func $f (export "f") (call $f)))"#).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let err = instance.get_func(&store, "f").unwrap().call(&mut store, &[], &mut []).unwrap_err();
    assert!(err.as_trap().unwrap().backtrace().is_empty());
    assert_eq!(err.to_string(), "wasm trap: call stack exhausted");
    // A short backtrace is shown whole.
    let (mut store, instance) =
        instantiate(r#"(module (func $a (export "a") (call $b)) (func $b (call $c)) (func $c unreachable))"#);
    let err = instance.get_func(&store, "a").unwrap().call(&mut store, &[], &mut []).unwrap_err();
    assert_eq!(err.to_string().lines().count(), 5);
}

#[test]
fn fuel_runs_out_and_can_be_refilled() {
    let mut config = Config::new();
    config.consume_fuel(true);
    let engine = Engine::new(&config);
    let module = Module::new(
        &engine,
        r#"(module
            (func (export "spin") (loop $l (br $l)))
            (func (export "count") (param i32) (result i32)
                (local $i i32)
                (loop $l
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br_if $l (i32.lt_u (local.get $i) (local.get 0))))
                (local.get $i)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    store.set_fuel(10_000).unwrap();
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let spin = instance.get_func(&store, "spin").unwrap();
    let err = spin.call(&mut store, &[], &mut []).unwrap_err();
    assert_eq!(err.as_trap().unwrap().kind(), TrapKind::OutOfFuel);
    assert_eq!(store.get_fuel().unwrap(), 0);
    store.set_fuel(1_000_000).unwrap();
    let count = instance.get_typed_func::<i32, i32>(&store, "count").unwrap();
    assert_eq!(count.call(&mut store, 1000).unwrap(), 1000);
    let used = 1_000_000 - store.get_fuel().unwrap();
    assert!((1000..20_000).contains(&used), "fuel used: {used}");

    // Without fuel enabled, the fuel API says so instead of pretending.
    let mut plain = Store::new(&Engine::default(), ());
    assert!(plain.set_fuel(1).is_err());
}

#[test]
fn limiter_caps_memory_and_table_growth() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
            (memory (export "memory") 1)
            (table 1 funcref)
            (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
            (func (export "tgrow") (param i32) (result i32) (table.grow (ref.null func) (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    // One budget for the memory and the table: 4 pages plus 10 elements of 8 bytes.
    store.set_limiter(StoreLimits::new().memory_size(4 * WASM_PAGE + 80).table_elements(10));
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let grow = instance.get_typed_func::<i32, i32>(&store, "grow").unwrap();
    assert_eq!(grow.call(&mut store, 3).unwrap(), 1);
    assert_eq!(grow.call(&mut store, 1).unwrap(), -1);
    let tgrow = instance.get_typed_func::<i32, i32>(&store, "tgrow").unwrap();
    assert_eq!(tgrow.call(&mut store, 9).unwrap(), 1);
    assert_eq!(tgrow.call(&mut store, 1).unwrap(), -1);

    // A module whose initial memory is over the cap does not instantiate.
    let big = Module::new(&engine, "(module (memory 100))").unwrap();
    let err = Linker::new(&engine).instantiate(&mut store, &big).unwrap_err();
    assert!(matches!(err, Error::Limit(_)), "{err}");
}

/// Twenty tables of ten million elements (80 MB each in the store): 2.5 KB of wasm.
fn twenty_big_tables() -> String {
    let tables: String = (0..20).map(|_| "(table 10000000 funcref)").collect();
    format!("(module {tables})")
}

#[test]
fn one_budget_covers_memories_and_tables() {
    let engine = Engine::default();
    let limits = || StoreLimits::new().memory_size(64 << 20);

    // Tables alone past the budget: an instantiation error, not 1.6 GB.
    let module = Module::new(&engine, twenty_big_tables()).unwrap();
    let mut store = Store::new(&engine, ());
    store.set_limiter(limits());
    let err = Linker::new(&engine).instantiate(&mut store, &module).unwrap_err();
    assert!(matches!(err, Error::Limit(_)), "{err}");
    assert!(err.to_string().contains("table of 10000000 elements"), "{err}");

    // A memory and a table that each fit, but not together.
    let both = |pages: u32, elems: u32| {
        let wat = format!("(module (memory {pages}) (table {elems} funcref))");
        let mut store = Store::new(&engine, ());
        store.set_limiter(limits());
        Linker::new(&engine).instantiate(&mut store, &Module::new(&engine, wat).unwrap()).map(|_| ())
    };
    both(512, 0).unwrap(); // 32 MiB
    both(0, 5_000_000).unwrap(); // 40 MB
    let err = both(512, 5_000_000).unwrap_err();
    assert!(matches!(err, Error::Limit(_)), "{err}");

    // Growing: table.grow past what the memory left is -1, and memory.grow
    // past what the table took is -1; the table API says so too.
    let module = Module::new(
        &engine,
        r#"(module
            (memory (export "memory") 512)
            (table (export "table") 0 funcref)
            (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
            (func (export "tgrow") (param i32) (result i32) (table.grow (ref.null func) (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    store.set_limiter(limits());
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let grow = instance.get_typed_func::<i32, i32>(&store, "grow").unwrap();
    let tgrow = instance.get_typed_func::<i32, i32>(&store, "tgrow").unwrap();
    assert_eq!(tgrow.call(&mut store, 5_000_000).unwrap(), -1); // 32 MiB + 40 MB
    assert_eq!(tgrow.call(&mut store, 2_000_000).unwrap(), 0); // 32 MiB + 16 MB: 16.7 MB left
    assert_eq!(grow.call(&mut store, 300).unwrap(), -1); // 19.7 MB
    assert_eq!(grow.call(&mut store, 200).unwrap(), 512); // 13.1 MB: 4.4 MB left
    let table = instance.get_table(&store, "table").unwrap();
    assert!(table.grow(&mut store, 1_000_000, Val::FuncRef(None)).is_err());
    assert_eq!(table.size(&store), 2_000_000);
}

#[test]
fn memory_api_reads_writes_and_grows() {
    let (mut store, instance) = instantiate(
        r#"(module (memory (export "m") 1 3)
            (func (export "peek") (param i32) (result i32) (i32.load8_u (local.get 0))))"#,
    );
    let mem = instance.get_memory(&store, "m").unwrap();
    mem.write(&mut store, 100, b"xyz").unwrap();
    let peek = instance.get_typed_func::<i32, i32>(&store, "peek").unwrap();
    assert_eq!(peek.call(&mut store, 101).unwrap(), b'y' as i32);
    assert!(mem.write(&mut store, 65535, b"ab").is_err());
    assert_eq!(mem.grow(&mut store, 2).unwrap(), 1);
    assert!(mem.grow(&mut store, 1).is_err());
    assert_eq!(mem.data_size(&store), 3 * WASM_PAGE);
    // Growth is visible to the guest, and the new pages are zero.
    assert_eq!(peek.call(&mut store, 3 * 65536 - 1).unwrap(), 0);
}

#[test]
fn multi_value_and_typed_calls() {
    let (mut store, instance) = instantiate(
        r#"(module
            (func (export "swap") (param i32 i64) (result i64 i32) (local.get 1) (local.get 0))
            (func (export "fsum") (param f32 f64) (result f64)
                (f64.add (f64.promote_f32 (local.get 0)) (local.get 1))))"#,
    );
    let swap = instance.get_typed_func::<(i32, i64), (i64, i32)>(&store, "swap").unwrap();
    assert_eq!(swap.call(&mut store, (7, -9)).unwrap(), (-9, 7));
    let fsum = instance.get_typed_func::<(f32, f64), f64>(&store, "fsum").unwrap();
    assert_eq!(fsum.call(&mut store, (1.5, 2.25)).unwrap(), 3.75);
    // Wrong static types are an error, not a panic.
    assert!(instance.get_typed_func::<i32, i32>(&store, "swap").is_err());
    // Wrong dynamic arguments too.
    let f = instance.get_func(&store, "swap").unwrap();
    let mut out = [Val::I32(0), Val::I32(0)];
    assert!(f.call(&mut store, &[Val::I32(1)], &mut out).is_err());
    assert!(f.call(&mut store, &[Val::I64(1), Val::I64(1)], &mut out).is_err());
}

#[test]
fn globals_tables_and_externrefs() {
    let (mut store, instance) = instantiate(
        r#"(module
            (global (export "g") (mut i32) (i32.const 5))
            (table (export "t") 2 externref)
            (func (export "bump") (global.set 0 (i32.add (global.get 0) (i32.const 1))))
            (func (export "get") (param i32) (result externref) (table.get (local.get 0))))"#,
    );
    let g = instance.get_global(&store, "g").unwrap();
    instance.get_func(&store, "bump").unwrap().call(&mut store, &[], &mut []).unwrap();
    assert_eq!(g.get(&mut store), Val::I32(6));
    g.set(&mut store, Val::I32(40)).unwrap();
    assert!(g.set(&mut store, Val::I64(1)).is_err());
    let t = instance.get_table(&store, "t").unwrap();
    let r = ExternRef::new(&mut store, "payload".to_string()).unwrap();
    t.set(&mut store, 1, Val::ExternRef(Some(r))).unwrap();
    let mut out = [Val::I32(0)];
    instance.get_func(&store, "get").unwrap().call(&mut store, &[Val::I32(1)], &mut out).unwrap();
    let Val::ExternRef(Some(back)) = out[0] else { panic!("expected an externref, got {:?}", out[0]) };
    let data = back.data(&store).unwrap().unwrap().downcast_ref::<String>().unwrap();
    assert_eq!(data, "payload");
}

#[test]
fn objects_from_another_store_are_rejected() {
    let (mut a, instance) = instantiate(r#"(module (func (export "f")))"#);
    let (mut b, _) = instantiate(r#"(module)"#);
    let f = instance.get_func(&a, "f").unwrap();
    assert!(f.call(&mut b, &[], &mut []).is_err());
    assert!(f.call(&mut a, &[], &mut []).is_ok());
}

#[test]
fn link_errors_name_the_import() {
    let engine = Engine::default();
    let module = Module::new(&engine, r#"(module (import "env" "missing" (func)))"#).unwrap();
    let mut store = Store::new(&engine, ());
    let err = Linker::<()>::new(&engine).instantiate(&mut store, &module).unwrap_err();
    assert_eq!(err.to_string(), "unknown import: `env::missing` has not been defined");
    let mut linker = Linker::new(&engine);
    linker.func_wrap("env", "missing", |_: i32| {}).unwrap();
    let err = linker.instantiate(&mut store, &module).unwrap_err();
    assert!(matches!(err, Error::IncompatibleImport { .. }), "{err}");
}

#[test]
fn malformed_and_invalid_modules_are_errors_with_offsets() {
    let engine = Engine::default();
    let err = Module::new(&engine, b"\0asm\x01\0\0\0\x01\xff\xff\xff\xff\x0f").unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    let err = Module::new(&engine, "(module (func (result i32) (i64.const 1)))").unwrap_err();
    let Error::Invalid { offset, message } = &err else { panic!("{err}") };
    assert!(*offset > 8 && message.contains("type mismatch"), "{err}");
    // A declared count far larger than the bytes present must not allocate or panic.
    let huge = b"\0asm\x01\0\0\0\x05\x05\xff\xff\xff\xff\x0f";
    assert!(Module::new(&engine, huge).is_err());
    assert!(Module::new(&engine, "(module").is_err());
}

#[test]
fn instantiation_is_repeatable_and_isolated() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (memory 1) (global $n (mut i32) (i32.const 0))
            (func (export "next") (result i32)
                (global.set $n (i32.add (global.get $n) (i32.const 1)))
                (i32.store (i32.const 0) (global.get $n))
                (i32.load (i32.const 0))))"#,
    )
    .unwrap();
    let pre = Linker::<()>::new(&engine).instantiate_pre(&module).unwrap();
    for _ in 0..3 {
        let mut store = Store::new(&engine, ());
        let instance = pre.instantiate(&mut store).unwrap();
        let next = instance.get_typed_func::<(), i32>(&store, "next").unwrap();
        assert_eq!(next.call(&mut store, ()).unwrap(), 1);
        assert_eq!(next.call(&mut store, ()).unwrap(), 2);
    }
}

#[test]
fn host_reentry_works_and_is_bounded() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
            (import "env" "again" (func $again (param i32) (result i32)))
            (func (export "f") (param i32) (result i32)
                (if (result i32) (i32.eqz (local.get 0))
                    (then (i32.const 0))
                    (else (i32.add (i32.const 1) (call $again (i32.sub (local.get 0) (i32.const 1))))))))"#,
    )
    .unwrap();
    let mut linker: Linker<Option<Func>> = Linker::new(&engine);
    linker
        .func_wrap("env", "again", |mut caller: Caller<'_, Option<Func>>, n: i32| -> Result<i32, Trap> {
            let f = caller.data().unwrap();
            let mut out = [Val::I32(0)];
            f.call(&mut caller, &[Val::I32(n)], &mut out).map_err(|e| match e {
                Error::Trap(t) => t,
                other => Trap::host(other.to_string()),
            })?;
            Ok(out[0].i32().unwrap())
        })
        .unwrap();
    let mut store = Store::new(&engine, None);
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let f = instance.get_func(&store, "f").unwrap();
    *store.data_mut() = Some(f);
    let typed = f.typed::<i32, i32>(&store).unwrap();
    assert_eq!(typed.call(&mut store, 10).unwrap(), 10);
    let err = typed.call(&mut store, 10_000).unwrap_err();
    assert_eq!(err.as_trap().unwrap().kind(), TrapKind::StackExhausted);
}

#[test]
fn features_can_be_turned_off() {
    let wat = "(module (func (param i32) (result i32) (i32.extend8_s (local.get 0))))";
    assert!(Module::new(&Engine::default(), wat).is_ok());
    let mut config = Config::new();
    config.wasm_sign_extension(false);
    let err = Module::new(&Engine::new(&config), wat).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    let mut config = Config::new();
    config.wasm_multi_value(false);
    let two = "(module (func (result i32 i32) (i32.const 1) (i32.const 2)))";
    assert!(Module::new(&Engine::new(&config), two).is_err());
    let simd = "(module (func (result v128) (v128.const i64x2 0 0)))";
    assert!(Module::new(&Engine::default(), simd).is_ok());
    let mut config = Config::new();
    config.wasm_simd(false);
    let err = Module::new(&Engine::new(&config), simd).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
}

#[test]
fn hostile_counts_are_rejected_without_allocating_for_them() {
    let engine = Engine::default();
    let header = b"\0asm\x01\0\0\0".to_vec();
    let huge = [0xff, 0xff, 0xff, 0xff, 0x0f];
    let with = |sections: &[&[u8]]| -> Vec<u8> {
        let mut m = header.clone();
        for s in sections {
            m.extend_from_slice(s);
        }
        m
    };
    let section = |id: u8, body: &[u8]| -> Vec<u8> {
        let mut s = vec![id, body.len() as u8];
        s.extend_from_slice(body);
        s
    };
    let ty = section(1, &[0x01, 0x60, 0x00, 0x00]);
    let func = section(3, &[0x01, 0x00]);
    let code = |body: &[u8]| -> Vec<u8> {
        let mut b = vec![0x01, body.len() as u8];
        b.extend_from_slice(body);
        section(10, &b)
    };
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for id in [1u8, 2, 3, 4, 5, 6, 7, 9, 10, 11] {
        cases.push(with(&[&section(id, &huge)]));
    }
    // br_table declaring 2^32-1 targets.
    let mut body = vec![0x00, 0x41, 0x00, 0x0e];
    body.extend_from_slice(&huge);
    body.push(0x0b);
    cases.push(with(&[&ty, &func, &code(&body)]));
    // One local entry declaring 2^32-1 locals.
    let mut body = vec![0x01];
    body.extend_from_slice(&huge);
    body.extend_from_slice(&[0x7f, 0x0b]);
    cases.push(with(&[&ty, &func, &code(&body)]));
    for (i, bytes) in cases.iter().enumerate() {
        let err = Module::new(&engine, bytes).expect_err(&format!("case {i} must be rejected"));
        assert!(matches!(err, Error::Invalid { .. }), "case {i}: {err}");
    }
}

#[test]
fn interrupt_stops_an_infinite_loop() {
    let mut config = Config::new();
    config.interruptible(true);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, r#"(module (func (export "spin") (loop $l (br $l))))"#).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let handle = store.interrupt_handle().unwrap();
    let timer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        handle.interrupt();
    });
    let err = instance.get_func(&store, "spin").unwrap().call(&mut store, &[], &mut []).unwrap_err();
    assert_eq!(err.as_trap().unwrap().kind(), TrapKind::Interrupted);
    timer.join().unwrap();
}

#[test]
fn v128_values_cross_the_api() {
    let wat = r#"(module
        (import "env" "mix" (func $mix (param i32 v128 f64) (result v128 i32)))
        (global $g (export "g") (mut v128) (v128.const i32x4 1 2 3 4))
        (func (export "add") (param v128 v128) (result v128)
            (i32x4.add (local.get 0) (local.get 1)))
        (func (export "call_mix") (param v128) (result v128 i32)
            (call $mix (i32.const 7) (local.get 0) (f64.const 0.5)))
        (func (export "bump") (result v128)
            (global.set $g (i64x2.add (global.get $g) (v128.const i64x2 1 1)))
            (global.get $g)))"#;
    let engine = Engine::default();
    let module = Module::new(&engine, wat).unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    // A typed host function with a v128 between scalars: slots are laid out by width.
    linker
        .func_wrap("env", "mix", |a: i32, v: u128, f: f64| -> (u128, i32) {
            (v.rotate_left(8) ^ a as u128, (f * 10.0) as i32)
        })
        .unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();

    let add = instance.get_typed_func::<(u128, u128), u128>(&store, "add").unwrap();
    let lanes = |l: [u32; 4]| l.iter().rev().fold(0u128, |acc, x| acc << 32 | *x as u128);
    let sum = add.call(&mut store, (lanes([1, 2, 3, u32::MAX]), lanes([10, 20, 30, 2]))).unwrap();
    assert_eq!(sum, lanes([11, 22, 33, 1]));

    let v = 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10u128;
    let mix = instance.get_typed_func::<u128, (u128, i32)>(&store, "call_mix").unwrap();
    assert_eq!(mix.call(&mut store, v).unwrap(), (v.rotate_left(8) ^ 7, 5));

    // Untyped calls and globals.
    let f = instance.get_func(&store, "call_mix").unwrap();
    let mut out = [Val::I32(0), Val::I32(0)];
    f.call(&mut store, &[Val::V128(v)], &mut out).unwrap();
    assert_eq!(out, [Val::V128(v.rotate_left(8) ^ 7), Val::I32(5)]);
    let g = instance.get_global(&store, "g").unwrap();
    assert_eq!(g.get(&mut store), Val::V128(lanes([1, 2, 3, 4])));
    let bump = instance.get_typed_func::<(), u128>(&store, "bump").unwrap();
    assert_eq!(bump.call(&mut store, ()).unwrap(), lanes([2, 2, 4, 4]));
    g.set(&mut store, Val::V128(u128::MAX)).unwrap();
    assert_eq!(bump.call(&mut store, ()).unwrap(), 0);
    assert!(g.set(&mut store, Val::I64(1)).is_err(), "type checked");
    assert_eq!(Val::parse(ValType::V128, "0x10").unwrap(), Val::V128(16));
    assert_eq!(Val::V128(16).to_string(), "0x00000000000000000000000000000010");
}

#[test]
fn large_modules_compile_the_same_in_every_mode() {
    // Enough functions to be over the parallel-compilation threshold (64 KiB of code).
    let mut wat = String::from("(module (memory 1)\n");
    for i in 0..1200 {
        wat.push_str(&format!(
            "(func $f{i} (export \"f{i}\") (param i32) (result i32) (local i32)
               (local.set 1 (i32.const {i}))
               (block (loop
                 (br_if 1 (i32.ge_u (local.get 1) (i32.add (local.get 0) (i32.const {i}))))
                 (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (local.get 1)))
                 (local.set 1 (i32.add (local.get 1) (i32.const 1)))
                 (br 0)))
               (i32.add (i32.load (i32.const 0)) (i32.mul (local.get 1) (i32.const {}))))\n",
            i % 7 + 1
        ));
    }
    wat.push(')');
    assert!(wat::parse_str(&wat).unwrap().len() > 80 << 10);
    let mut results = Vec::new();
    for (parallel, lazy) in [(false, true), (false, false), (true, true), (true, false)] {
        let mut config = Config::new();
        config.parallel_compilation(parallel).lazy_translation(lazy);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, &wat).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
        let sum: i64 = (0..600)
            .step_by(37)
            .map(|i| {
                let f = instance.get_typed_func::<i32, i32>(&store, &format!("f{i}")).unwrap();
                f.call(&mut store, 5).unwrap() as i64
            })
            .sum();
        results.push(sum);
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
    // An invalid body is rejected at compile time in every mode, even if never called.
    let bad = wat.replacen("(i32.const 0)", "(i64.const 0)", 1);
    for (parallel, lazy) in [(false, true), (true, true), (true, false)] {
        let mut config = Config::new();
        config.parallel_compilation(parallel).lazy_translation(lazy);
        let err = Module::new(&Engine::new(&config), &bad).unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
    }
}

#[test]
fn lazy_validation_defers_errors_to_the_first_call() {
    let wat = r#"(module
        (func (export "good") (result i32) (i32.const 7))
        (func (export "bad") (result i32) (i64.const 1)))"#;
    // Spec behaviour by default: the module is invalid.
    assert!(matches!(Module::new(&Engine::default(), wat), Err(Error::Invalid { .. })));
    let mut config = Config::new();
    config.lazy_validation(true);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, wat).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let good = instance.get_typed_func::<(), i32>(&store, "good").unwrap();
    assert_eq!(good.call(&mut store, ()).unwrap(), 7);
    let bad = instance.get_typed_func::<(), i32>(&store, "bad").unwrap();
    for _ in 0..2 {
        match bad.call(&mut store, ()) {
            Err(Error::Trap(t)) => assert_eq!(t.kind(), TrapKind::InvalidFunction),
            other => panic!("expected an invalid-function trap, got {other:?}"),
        }
    }
}

#[test]
fn lazily_translated_functions_are_shared_safely_across_threads() {
    // Many threads make the first calls of the same module's functions at once:
    // each function is translated once, and everyone gets the same results.
    let mut wat = String::from("(module\n");
    for i in 0..200 {
        wat.push_str(&format!(
            "(func (export \"f{i}\") (param i32) (result i32)
               (i32.add (i32.mul (local.get 0) (i32.const {})) (i32.const {i})))\n",
            i % 13 + 1
        ));
    }
    wat.push(')');
    let engine = Engine::default();
    let module = Module::new(&engine, &wat).unwrap();
    let sums: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (engine, module) = (engine.clone(), module.clone());
                s.spawn(move || {
                    let mut store = Store::new(&engine, ());
                    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
                    let mut sum = 0i64;
                    for k in 0..200 {
                        // Threads walk all functions in different orders (steps coprime with 200).
                        let i = (k * [1, 3, 7, 9][t]) % 200;
                        let f = instance.get_typed_func::<i32, i32>(&store, &format!("f{i}")).unwrap();
                        sum += f.call(&mut store, 3).unwrap() as i64;
                    }
                    sum
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let expected: i64 = (0..200).map(|i| 3 * (i % 13 + 1) + i).sum();
    assert!(sums.iter().all(|s| *s == expected), "{sums:?} vs {expected}");
}

/// A limiter that lives in the store's data, records what it allowed and traps
/// with its own error past a cap.
struct Recording {
    peak: usize,
    cap: usize,
    refusals: u32,
}

#[derive(Debug)]
struct OverBudget(usize);
impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes is over the tenant's budget", self.0)
    }
}
impl std::error::Error for OverBudget {}

impl carnac::ResourceLimiter for Recording {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> Result<bool, Trap> {
        if desired > self.cap {
            return Err(Trap::host_error(OverBudget(desired)));
        }
        if desired > 3 * WASM_PAGE {
            self.refusals += 1;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }
    fn table_growing(&mut self, _current: u64, _desired: u64, _max: Option<u64>) -> Result<bool, Trap> {
        Ok(true)
    }
}

struct Tenant {
    limits: Recording,
}

#[test]
fn a_limiter_in_the_store_data_is_consulted_and_can_trap() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (memory 1)
            (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, Tenant { limits: Recording { peak: 0, cap: 8 * WASM_PAGE, refusals: 0 } });
    store.limiter(|t| &mut t.limits);
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let grow = instance.get_typed_func::<i32, i32>(&store, "grow").unwrap();
    assert_eq!(grow.call(&mut store, 1).unwrap(), 1);
    assert_eq!(grow.call(&mut store, 1).unwrap(), 2);
    // Refused: memory.grow answers -1, and the limiter counted it.
    assert_eq!(grow.call(&mut store, 2).unwrap(), -1);
    // The limiter's own error stops the guest, and the embedder gets it back.
    let err = grow.call(&mut store, 100).unwrap_err();
    let trap = err.as_trap().expect("a trap");
    assert_eq!(trap.downcast_host::<OverBudget>().map(|e| e.0), Some(103 * WASM_PAGE));
    let limits = &store.data().limits;
    assert_eq!((limits.peak, limits.refusals), (3 * WASM_PAGE, 1));
    // At instantiation, the limiter's trap is the error.
    let big = Module::new(&engine, "(module (memory 20))").unwrap();
    let err = Linker::new(&engine).instantiate(&mut store, &big).unwrap_err();
    assert!(err.as_trap().and_then(|t| t.downcast_host::<OverBudget>()).is_some(), "{err}");
}

#[test]
fn store_limits_cap_instances_memories_and_tables() {
    let engine = Engine::default();
    let module = Module::new(&engine, "(module (memory 1) (table 1 funcref))").unwrap();
    let mut store = Store::new(&engine, ());
    store.set_limiter(StoreLimits::new().instances(2).memories(3).tables(2));
    let linker = Linker::new(&engine);
    linker.instantiate(&mut store, &module).unwrap();
    linker.instantiate(&mut store, &module).unwrap();
    let err = linker.instantiate(&mut store, &module).unwrap_err();
    assert!(err.to_string().contains("2 instances"), "{err}");
    // Two memories in the instances; the host may add one more.
    let one_page = MemoryType::new(1, None);
    Memory::new(&mut store, one_page).unwrap();
    let err = Memory::new(&mut store, one_page).unwrap_err();
    assert!(err.to_string().contains("3 memories"), "{err}");
    let table = TableType { element: ValType::FuncRef, limits: Limits { min: 1, max: None } };
    let err = Table::new(&mut store, table, Val::FuncRef(None)).unwrap_err();
    assert!(err.to_string().contains("2 tables"), "{err}");
}

#[test]
fn growing_past_a_memory_maximum_says_so() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let memory = Memory::new(&mut store, MemoryType::new(1, Some(2))).unwrap();
    assert_eq!(memory.grow(&mut store, 1).unwrap(), 1);
    let err = memory.grow(&mut store, 1).unwrap_err();
    assert_eq!(err.to_string(), "memory of 2 pages cannot grow by 1 page: beyond its maximum of 2 pages");
}

#[test]
fn unknown_imports_can_be_defined_as_traps() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
            (import "env" "missing" (func $missing (param i32)))
            (func (export "fine") (result i32) (i32.const 7))
            (func (export "uses") (call $missing (i32.const 1))))"#,
    )
    .unwrap();
    let mut linker: Linker<()> = Linker::new(&engine);
    assert!(matches!(linker.instantiate(&mut Store::new(&engine, ()), &module), Err(Error::UnknownImport { .. })));
    linker.define_unknown_imports_as_traps(&module).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    assert_eq!(instance.get_typed_func::<(), i32>(&store, "fine").unwrap().call(&mut store, ()).unwrap(), 7);
    let err = instance.get_typed_func::<(), ()>(&store, "uses").unwrap().call(&mut store, ()).unwrap_err();
    assert!(err.to_string().contains("the unknown import `env::missing` was called"), "{err}");
}

#[test]
fn linker_module_links_reactors_once_and_commands_per_call() {
    let engine = Engine::default();
    // A reactor: instantiated once, `_initialize` run, its state shared by calls.
    let reactor = Module::new(
        &engine,
        r#"(module (global $n (mut i32) (i32.const 0))
            (func (export "_initialize") (global.set $n (i32.const 100)))
            (func (export "next") (result i32)
                (global.set $n (i32.add (global.get $n) (i32.const 1))) (global.get $n)))"#,
    )
    .unwrap();
    // A command: each call gets a fresh instance, so its state starts over.
    let command = Module::new(
        &engine,
        r#"(module (global $n (mut i32) (i32.const 0))
            (func (export "_start"))
            (func (export "next") (result i32)
                (global.set $n (i32.add (global.get $n) (i32.const 1))) (global.get $n)))"#,
    )
    .unwrap();
    let user = Module::new(
        &engine,
        r#"(module (import "r" "next" (func $r (result i32))) (import "c" "next" (func $c (result i32)))
            (func (export "go") (result i32)
                (drop (call $r)) (drop (call $c)) (drop (call $c))
                (i32.add (i32.mul (call $r) (i32.const 1000)) (call $c))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker.module(&mut store, "r", &reactor).unwrap();
    linker.module(&mut store, "c", &command).unwrap();
    let instance = linker.instantiate(&mut store, &user).unwrap();
    let go = instance.get_typed_func::<(), i32>(&store, "go").unwrap();
    // r: 101 then 102; c: always 1.
    assert_eq!(go.call(&mut store, ()).unwrap(), 102_001);
}

#[test]
fn nested_reentry_depth_follows_max_wasm_stack() {
    // wasm -> host -> wasm -> host ... `levels` deep, on a thread with room.
    fn nest(engine: &Engine, levels: i32) -> Result<i32, Error> {
        let module = Module::new(
            engine,
            r#"(module (import "host" "down" (func $down (param i32) (result i32)))
                (func (export "f") (param i32) (result i32)
                    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
                        (else (i32.add (call $down (i32.sub (local.get 0) (i32.const 1))) (i32.const 1))))))"#,
        )?;
        let mut linker: Linker<()> = Linker::new(engine);
        linker.func_new(
            "host",
            "down",
            FuncType::new([ValType::I32], [ValType::I32]),
            |mut caller, params, results| {
                let f = caller.get_export("f").and_then(Extern::into_func).unwrap();
                f.call(&mut caller, params, results).map_err(|e| match e {
                    Error::Trap(t) => t,
                    e => Trap::host(e.to_string()),
                })
            },
        )?;
        let mut store = Store::new(engine, ());
        let instance = linker.instantiate(&mut store, &module)?;
        instance.get_typed_func::<i32, i32>(&store, "f")?.call(&mut store, levels)
    }
    let run = |stack: usize, levels: i32| {
        let mut config = Config::new();
        config.max_wasm_stack(stack);
        let engine = Engine::new(&config);
        std::thread::Builder::new().stack_size(64 << 20).spawn(move || nest(&engine, levels)).unwrap().join().unwrap()
    };
    // 300 levels need more than the default's 512 KiB in an unoptimised build.
    let deep = run(32 << 20, 300);
    assert_eq!(deep.unwrap(), 300);
    let err = run(64 << 10, 300).unwrap_err();
    assert_eq!(err.as_trap().map(|t| t.kind()), Some(TrapKind::StackExhausted), "{err}");
}

#[test]
fn backtrace_frames_carry_their_offsets_in_the_module() {
    let wat = r#"(module $m
        (func $inner (result i32) (i32.const 7) (unreachable))
        (func (export "outer") (result i32) (i32.const 99) (drop) (call $inner)))"#;
    let bytes = wat::parse_str(wat).unwrap();
    let find = |pattern: &[u8]| bytes.windows(pattern.len()).position(|w| w == pattern).unwrap();
    // `i32.const 7; unreachable` and `i32.const 99; drop; call 0`.
    let unreachable_at = find(&[0x41, 0x07, 0x00]) + 2;
    let call_at = find(&[0x41, 0xe3, 0x00, 0x1a, 0x10, 0x00]) + 4;
    let engine = Engine::default();
    let module = Module::new(&engine, &bytes).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let err = instance.get_typed_func::<(), i32>(&store, "outer").unwrap().call(&mut store, ()).unwrap_err();
    let trap = err.as_trap().unwrap();
    let offsets: Vec<_> = trap.backtrace().iter().map(|f| f.module_offset).collect();
    assert_eq!(offsets, [Some(unreachable_at), Some(call_at)]);
    // Within its function: `$inner`'s body is `00` (no locals), `41 07`, `00`.
    assert_eq!(trap.backtrace()[0].func_offset, Some(3));
    // Shown as Wasmtime shows them.
    let shown = err.to_string();
    assert!(shown.contains(&format!("  0: {unreachable_at:#x} - m!inner")), "{shown}");
}

#[test]
fn stores_and_what_they_hand_out_go_to_other_threads() {
    fn send<S: Send>() {}
    send::<Store<()>>();
    send::<Store<Vec<u8>>>();
    send::<Engine>();
    send::<Module>();
    send::<InstancePre<()>>();
    send::<InterruptHandle>();
    // And it runs there: instantiated on one thread, called on another.
    let engine = Engine::default();
    let module = Module::new(&engine, r#"(module (func (export "f") (result i32) (i32.const 7)))"#).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    let f = instance.get_typed_func::<(), i32>(&store, "f").unwrap();
    let got = std::thread::spawn(move || f.call(&mut store, ()).unwrap()).join().unwrap();
    assert_eq!(got, 7);
}
