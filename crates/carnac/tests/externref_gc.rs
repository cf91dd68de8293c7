//! Extern references are freed once nothing refers to them (issue 24, point 7):
//! host-side handles are rooted in scopes ([`RootScope`], host calls) or owned
//! ([`OwnedRooted`]); wasm's tables and globals keep what they hold; a handle
//! whose value was collected is an error, never another value.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use carnac::{
    AsContextMut, Caller, Engine, Error, ExternRef, Global, GlobalType, Instance, Linker, Module, Mutability,
    OwnedRooted, RootScope, Rooted, Store, Table, TableType, Val, ValType,
};

/// Counts the payloads alive: made by [`Live::payload`], dropped when the store frees them.
#[derive(Clone, Default)]
struct Live(Arc<AtomicUsize>);

struct Payload(u64, Arc<AtomicUsize>);

impl Drop for Payload {
    fn drop(&mut self) {
        self.1.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Live {
    fn payload(&self, n: u64) -> Payload {
        self.0.fetch_add(1, Ordering::Relaxed);
        Payload(n, self.0.clone())
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

fn payload_of(r: ExternRef, store: &Store<impl Sized>) -> u64 {
    r.data(store).expect("a live reference").expect("host data").downcast_ref::<Payload>().expect("a Payload").0
}

const MODULE: &str = r#"(module
    (import "host" "make" (func $make (param i64) (result externref)))
    (import "host" "collect" (func $collect))
    (table $t (export "t") 4 externref)
    (global $last (export "last") (mut externref) (ref.null extern))
    (func (export "drop") (param externref))
    (func (export "keep") (param externref) (global.set $last (local.get 0)))
    (func (export "put") (param i32 externref) (table.set $t (local.get 0) (local.get 1)))
    (func (export "get") (param i32) (result externref) (table.get $t (local.get 0)))
    ;; Makes `n` references through the host and drops them all.
    (func (export "churn") (param $n i64)
        (loop $l
            (if (i64.gt_s (local.get $n) (i64.const 0))
                (then
                    (drop (call $make (local.get $n)))
                    (local.set $n (i64.sub (local.get $n) (i64.const 1)))
                    (br $l)))))
    ;; A reference held only in a local while the host asks for a collection.
    (func (export "hold") (result externref) (local $r externref)
        (local.set $r (call $make (i64.const 99)))
        (call $collect)
        (drop (call $make (i64.const 100)))
        (local.get $r))
    ;; A reference through a local, a select, a block result and back.
    (func (export "roundtrip") (param externref) (result externref) (local $x externref)
        (local.set $x (local.get 0))
        (select (result externref) (local.get $x) (ref.null extern) (i32.const 1))))"#;

fn setup(live: &Live) -> (Store<Vec<ExternRef>>, Instance) {
    let engine = Engine::default();
    let module = Module::new(&engine, MODULE).unwrap();
    let mut linker = Linker::<Vec<ExternRef>>::new(&engine);
    let l = live.clone();
    linker
        .func_wrap("host", "make", move |mut caller: Caller<'_, Vec<ExternRef>>, n: i64| -> anyhow::Result<_> {
            Ok(Some(ExternRef::new(&mut caller, l.payload(n as u64))?))
        })
        .unwrap();
    linker.func_wrap("host", "collect", |mut caller: Caller<'_, Vec<ExternRef>>| caller.as_context_mut().gc()).unwrap();
    let mut store = Store::new(&engine, Vec::new());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    (store, instance)
}

#[test]
fn a_million_references_passed_to_wasm_and_dropped_keep_the_store_bounded() {
    let live = Live::default();
    let (mut store, instance) = setup(&live);
    let drop_it = instance.get_typed_func::<Option<ExternRef>, ()>(&store, "drop").unwrap();
    let keep = instance.get_typed_func::<Option<Rooted<ExternRef>>, ()>(&store, "keep").unwrap();
    let mut most = 0;
    for i in 0..1_000_000u64 {
        // As in Wasmtime, a scope per iteration: its handles are unrooted at its end.
        let mut scope = RootScope::new(&mut store);
        let r = ExternRef::new(&mut scope, live.payload(i)).unwrap();
        if i % 1000 == 0 {
            keep.call(&mut scope, Some(r)).unwrap();
        } else {
            drop_it.call(&mut scope, Some(r)).unwrap();
        }
        most = most.max(live.count());
    }
    // The store collected as it went: a few hundred references at most, never a million.
    assert!(most <= 1024, "{most} references were alive at once");
    // The one the global keeps survived every collection.
    store.gc();
    assert_eq!(live.count(), 1);
    let last = instance.get_global(&store, "last").unwrap().get(&mut store);
    let Val::ExternRef(Some(last)) = last else { panic!("the global holds {last:?}") };
    assert_eq!(payload_of(last, &store), 999_000);
}

#[test]
fn references_made_by_host_functions_inside_wasm_are_collected_between_calls() {
    let live = Live::default();
    let (mut store, instance) = setup(&live);
    let churn = instance.get_typed_func::<i64, ()>(&store, "churn").unwrap();
    let mut most = 0;
    for _ in 0..500 {
        // Each call makes 1000 references and drops them; no wasm runs between
        // calls, and each call starts by collecting when the last one left
        // more than the threshold behind.
        churn.call(&mut store, 1000).unwrap();
        most = most.max(live.count());
    }
    assert!(most <= 4000, "{most} references were alive at once (500,000 made)");
    store.gc();
    assert_eq!(live.count(), 0);
}

#[test]
fn references_in_tables_and_globals_survive_collection() {
    let live = Live::default();
    let (mut store, instance) = setup(&live);
    let put = instance.get_typed_func::<(i32, Option<ExternRef>), ()>(&store, "put").unwrap();
    let get = instance.get_typed_func::<i32, Option<ExternRef>>(&store, "get").unwrap();
    let table = instance.get_table(&store, "t").unwrap();
    let host_global = Global::new(
        &mut store,
        GlobalType { content: ValType::ExternRef, mutability: Mutability::Var },
        Val::ExternRef(None),
    )
    .unwrap();
    let host_table = Table::new(&mut store, TableType::new(ValType::ExternRef, 2, None), Val::ExternRef(None)).unwrap();
    {
        let mut scope = RootScope::new(&mut store);
        let by_wasm = ExternRef::new(&mut scope, live.payload(1)).unwrap();
        put.call(&mut scope, (0, Some(by_wasm))).unwrap();
        let by_host = ExternRef::new(&mut scope, live.payload(2)).unwrap();
        table.set(&mut scope, 1, Val::ExternRef(Some(by_host))).unwrap();
        let in_global = ExternRef::new(&mut scope, live.payload(3)).unwrap();
        host_global.set(&mut scope, Val::ExternRef(Some(in_global))).unwrap();
        let in_host_table = ExternRef::new(&mut scope, live.payload(4)).unwrap();
        host_table.set(&mut scope, 1, Val::ExternRef(Some(in_host_table))).unwrap();
        ExternRef::new(&mut scope, live.payload(5)).unwrap(); // referred to by nothing
    }
    store.gc();
    assert_eq!(live.count(), 4, "only the unreferenced value is freed");
    let mut scope = RootScope::new(&mut store);
    let r0 = get.call(&mut scope, 0).unwrap().unwrap();
    let r1 = get.call(&mut scope, 1).unwrap().unwrap();
    let Val::ExternRef(Some(r3)) = host_global.get(&mut scope) else { panic!("the global lost its reference") };
    let Some(Val::ExternRef(Some(r4))) = host_table.get(&mut scope, 1) else { panic!("the table lost its reference") };
    drop(scope);
    assert_eq!([r0, r1, r3, r4].map(|r| payload_of(r, &store)), [1, 2, 3, 4]);

    // Emptied, the table and the global let their values go.
    put.call(&mut store, (0, None)).unwrap();
    table.set(&mut store, 1, Val::ExternRef(None)).unwrap();
    host_global.set(&mut store, Val::ExternRef(None)).unwrap();
    store.gc();
    assert_eq!(live.count(), 1, "the host table's element is all that is left");
    assert!(r0.data(&store).is_err() && r1.data(&store).is_err() && r3.data(&store).is_err());
}

#[test]
fn a_passive_element_segment_keeps_what_it_read_from_a_global() {
    let live = Live::default();
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
            (import "host" "g" (global $g externref))
            (table $t (export "t") 1 externref)
            (elem $e externref (global.get $g))
            (func (export "init") (table.init $t $e (i32.const 0) (i32.const 0) (i32.const 1))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = {
        let mut scope = RootScope::new(&mut store);
        let r = ExternRef::new(&mut scope, live.payload(7)).unwrap();
        let g = Global::new(
            &mut scope,
            GlobalType { content: ValType::ExternRef, mutability: Mutability::Const },
            Val::ExternRef(Some(r)),
        )
        .unwrap();
        Instance::new(&mut scope, &module, &[g.into()]).unwrap()
    };
    store.gc();
    instance.get_typed_func::<(), ()>(&store, "init").unwrap().call(&mut store, ()).unwrap();
    let t = instance.get_table(&store, "t").unwrap();
    let Some(Val::ExternRef(Some(r))) = t.get(&mut store, 0) else { panic!("table.init copied no reference") };
    assert_eq!(payload_of(r, &store), 7);
    assert_eq!(live.count(), 1);
}

#[test]
fn a_stale_handle_is_an_error_not_another_value() {
    let live = Live::default();
    let (mut store, instance) = setup(&live);
    let drop_it = instance.get_typed_func::<Option<ExternRef>, ()>(&store, "drop").unwrap();
    let roundtrip = instance.get_typed_func::<Option<ExternRef>, Option<ExternRef>>(&store, "roundtrip").unwrap();
    let table = instance.get_table(&store, "t").unwrap();
    let stale = {
        let mut scope = RootScope::new(&mut store);
        let r = ExternRef::new(&mut scope, live.payload(1)).unwrap();
        assert_eq!(payload_of(r, scope.as_context_mut()), 1);
        r
    };
    store.gc();
    assert_eq!(live.count(), 0);
    // The freed slot is reused, with a new generation.
    let fresh = ExternRef::new(&mut store, live.payload(2)).unwrap();
    assert_ne!(fresh, stale);
    let err = stale.data(&store).unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err:?}");
    assert!(err.to_string().contains("unrooted and collected"), "{err}");
    // Everywhere a handle goes in, a stale one is refused, before any wasm runs.
    let err = drop_it.call(&mut store, Some(stale)).unwrap_err();
    assert!(err.to_string().contains("unrooted and collected"), "{err}");
    assert!(table.set(&mut store, 0, Val::ExternRef(Some(stale))).is_err());
    let f = instance.get_func(&store, "drop").unwrap();
    assert!(f.call(&mut store, &[Val::ExternRef(Some(stale))], &mut []).is_err());
    assert!(stale.to_owned_rooted(&mut store).is_err());
    // The live one, whose raw bits carry a generation above 0, goes through wasm intact.
    assert_eq!(roundtrip.call(&mut store, Some(fresh)).unwrap(), Some(fresh));
    table.set(&mut store, 3, Val::ExternRef(Some(fresh))).unwrap();
    let Some(Val::ExternRef(Some(back))) = table.get(&mut store, 3) else { panic!("no reference") };
    assert_eq!(back, fresh);
    assert_eq!(payload_of(back, &store), 2);
}

#[test]
fn a_host_function_s_handles_last_for_its_call_and_owned_roots_until_dropped() {
    let live = Live::default();
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
            (import "host" "stash" (func $stash (param externref)))
            (func (export "give") (param externref) (call $stash (local.get 0))))"#,
    )
    .unwrap();
    #[derive(Default)]
    struct Stash {
        scoped: Vec<ExternRef>,
        owned: Vec<OwnedRooted<ExternRef>>,
    }
    let mut linker = Linker::<Stash>::new(&engine);
    linker
        .func_wrap("host", "stash", |mut caller: Caller<'_, Stash>, r: Option<ExternRef>| -> anyhow::Result<()> {
            let r = r.unwrap();
            let owned = r.to_owned_rooted(&mut caller)?;
            let stash = caller.data_mut();
            stash.scoped.push(r);
            stash.owned.push(owned);
            Ok(())
        })
        .unwrap();
    let mut store = Store::new(&engine, Stash::default());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let give = instance.get_typed_func::<Option<ExternRef>, ()>(&store, "give").unwrap();
    for i in 0..2 {
        let mut scope = RootScope::new(&mut store);
        let r = ExternRef::new(&mut scope, live.payload(i)).unwrap();
        give.call(&mut scope, Some(r)).unwrap();
    }
    store.gc();
    // The owned roots kept both values; the scoped handles name them still.
    assert_eq!(live.count(), 2);
    let first = store.data().scoped[0];
    assert_eq!(payload_of(first, &store), 0);
    assert_eq!(*store.data().owned[1], store.data().scoped[1]);
    // Dropping an owned root (no store needed) lets the next collection free
    // its value; the handle kept without a root is then stale.
    store.data_mut().owned.remove(0);
    store.gc();
    assert_eq!(live.count(), 1);
    assert!(first.data(&store).is_err());
    let owned = store.data().owned[0].clone();
    let second = owned.to_rooted(&mut store);
    assert_eq!(payload_of(second, &store), 1);
}

#[test]
fn a_collection_asked_for_while_wasm_runs_waits_until_it_returns() {
    let live = Live::default();
    let (mut store, instance) = setup(&live);
    let hold = instance.get_typed_func::<(), Option<ExternRef>>(&store, "hold").unwrap();
    // `hold` keeps a reference only in a local while the host calls
    // `Store::gc`: the collector cannot see wasm frames, so it does nothing.
    let r = hold.call(&mut store, ()).unwrap().unwrap();
    assert_eq!(payload_of(r, &store), 99);
    assert_eq!(live.count(), 2);
    store.gc();
    assert_eq!(live.count(), 1, "the dropped one is freed once the guest returned");
    assert_eq!(payload_of(r, &store), 99);
}

#[test]
fn references_made_directly_on_a_store_live_as_long_as_it() {
    // As in Wasmtime: outside any scope the store itself is the scope.
    let live = Live::default();
    let mut store = Store::new(&Engine::default(), ());
    let refs: Vec<ExternRef> = (0..1000).map(|i| ExternRef::new(&mut store, live.payload(i)).unwrap()).collect();
    store.gc();
    assert_eq!(live.count(), 1000);
    assert_eq!(payload_of(refs[999], &store), 999);
    drop(store);
    assert_eq!(live.count(), 0);
}
