//! Fuzzing hook that runs in CI: `wasm-smith` generates valid WebAssembly 2.0
//! modules (SIMD included) from a fixed range of seeds; each one must compile (it is
//! valid by construction), instantiate with stand-in imports, and have every
//! exported function called under fuel, without a panic or a host crash. Traps
//! are fine; anything else that is not a trap or a limit is a failure.
//!
//! Exception handling and GC (with typed function references) are on in every
//! module: tags, throws and catches, structs, arrays, i31 and casts. Imports of a
//! non-nullable reference type get a value where one is easy to make (see
//! `ref_value`); a module with a global or table import of another non-nullable
//! type is skipped and counted, and so is a call that needs an argument of one.
//!
//! Threads included: shared memories and atomics; a module that could park its
//! thread in a wait is skipped and counted (see `may_block`).
//!
//! `SMITH_SEEDS=N` runs more seeds (the default keeps CI fast).

mod smith;

use smith::may_block;

use arbitrary::Unstructured;
use carnac::*;

fn bytes_for_seed(seed: u64, len: usize) -> Vec<u8> {
    // splitmix64: a fixed, dependency-free stream per seed.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..len)
        .map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

fn smith_config() -> wasm_smith::Config {
    wasm_smith::Config {
        simd_enabled: true,
        relaxed_simd_enabled: false,
        exceptions_enabled: true,
        gc_enabled: true,
        compact_imports_enabled: false,
        memory64_enabled: false,
        tail_call_enabled: true,
        // Shared memories and atomics too (modules that could block in a wait are
        // skipped: see `may_block`).
        threads_enabled: true,
        wide_arithmetic_enabled: false,
        extended_const_enabled: false,
        custom_page_sizes_enabled: false,
        max_memory32_bytes: 16 << 20,
        max_table_elements: 10_000,
        max_tables: 4,
        export_everything: true,
        min_funcs: 1,
        ..Default::default()
    }
}

fn non_nullable(t: &ValType) -> bool {
    matches!(t, ValType::Ref(r) if !r.is_nullable())
}

/// A value of type `t`: its default (null for a nullable reference), an `i31`
/// for a non-nullable `any`, `eq` or `i31` reference, a host function for a
/// non-nullable function reference; `None` for other non-nullable types.
fn ref_value(mut store: impl AsContextMut<Data = ()>, t: &ValType) -> Option<Val> {
    let ValType::Ref(r) = t else { return Some(Val::default_for(t.clone())) };
    if r.is_nullable() {
        return Some(Val::default_for(t.clone()));
    }
    match r.heap_type() {
        HeapType::Any | HeapType::Eq | HeapType::I31 => {
            Some(Val::AnyRef(Some(AnyRef::from_i31(&mut store, I31::wrapping_u32(1)))))
        }
        HeapType::Func => Some(Val::FuncRef(Some(Func::new(&mut store, FuncType::new([], []), |_, _, _| Ok(()))))),
        HeapType::ConcreteFunc(ft) => Some(Val::FuncRef(Some(stand_in_func(&mut store, ft)))),
        _ => None,
    }
}

/// A host function of type `ft` returning default values (trapping when a
/// result has no value `ref_value` can make).
fn stand_in_func(mut store: impl AsContextMut<Data = ()>, ft: &FuncType) -> Func {
    let results: Vec<ValType> = ft.results().to_vec();
    Func::new(&mut store, ft.clone(), move |mut caller, _, out| {
        for (o, t) in out.iter_mut().zip(&results) {
            *o = ref_value(&mut caller, t).ok_or_else(|| Trap::host("no stand-in result"))?;
        }
        Ok(())
    })
}

/// `None` when the import is a global or table of a non-nullable type with no
/// stand-in value.
fn stand_in(store: &mut Store<()>, ty: &ExternType) -> Option<Extern> {
    Some(match ty {
        ExternType::Func(ft) => stand_in_func(&mut *store, ft).into(),
        ExternType::Global(gt) => {
            let init = ref_value(&mut *store, &gt.content)?;
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

#[test]
fn generated_modules_never_panic() {
    let seeds: u64 = std::env::var("SMITH_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1500);
    let mut config = Config::new();
    // Memory writes tracked: debug builds check, as each store is dropped, that
    // the written-chunk map covers every byte the generated code wrote.
    config.consume_fuel(true).max_call_depth(2_000).track_memory_writes(true);
    let engine = Engine::new(&config);
    let (mut compiled, mut calls, mut traps, mut blocking) = (0, 0, 0, 0);
    let (mut exceptions, mut gc, mut no_stand_in, mut no_argument) = (0, 0, 0, 0);
    for seed in 0..seeds {
        let data = bytes_for_seed(seed, 16 << 10);
        let mut u = Unstructured::new(&data);
        let Ok(generated) = wasm_smith::Module::new(smith_config(), &mut u) else { continue };
        let bytes = generated.to_bytes();
        if may_block(&bytes) {
            blocking += 1;
            continue;
        }
        if std::env::var_os("SMITH_DUMP").is_some() {
            // Keeps the module of the seed being run, to reproduce a failure.
            std::fs::write("/tmp/smith-current.wasm", &bytes).unwrap();
        }
        let module =
            Module::from_binary(&engine, &bytes).unwrap_or_else(|e| panic!("seed {seed}: valid module rejected: {e}"));
        compiled += 1;
        let (e, g) = smith::features(&bytes);
        exceptions += e as u64;
        gc += g as u64;
        let mut store = Store::new(&engine, ());
        store.set_fuel(200_000).unwrap();
        let Some(imports) = module.imports().map(|i| stand_in(&mut store, &i.ty)).collect::<Option<Vec<Extern>>>()
        else {
            no_stand_in += 1;
            continue;
        };
        let instance = match Instance::new(&mut store, &module, &imports) {
            Ok(i) => i,
            Err(Error::Trap(_) | Error::Limit(_)) => continue,
            Err(e) => panic!("seed {seed}: instantiation failed unexpectedly: {e}"),
        };
        for (name, ext) in instance.exports(&store) {
            let Extern::Func(f) = ext else { continue };
            let ty = f.ty(&store);
            if ty.params().iter().any(non_nullable) {
                no_argument += 1;
                continue;
            }
            let args: Vec<Val> = ty.params().iter().map(|t| Val::default_for(t.clone())).collect();
            let mut results: Vec<Val> = ty.results().iter().map(|t| Val::default_for(t.clone())).collect();
            store.set_fuel(200_000).unwrap();
            calls += 1;
            match f.call(&mut store, &args, &mut results) {
                Ok(()) => {}
                Err(Error::Trap(_)) => traps += 1,
                Err(e) => panic!("seed {seed}: calling `{name}` failed with a non-trap error: {e}"),
            }
        }
    }
    println!(
        "wasm-smith: {seeds} seeds, {compiled} modules compiled, {calls} calls, {traps} traps; \
         {blocking} modules skipped (could block in a wait on a shared memory), {no_stand_in} (an import of a \
         non-nullable reference type with no stand-in); {no_argument} functions not called (a non-nullable reference \
         parameter); {exceptions} modules with exceptions (a tag), {gc} with GC types (a struct or array type, or \
         ref.i31)"
    );
    assert!(compiled as u64 > seeds / 2, "too few modules generated: {compiled}");
    assert!(calls > 0, "no exported function was called");
}
