//! Deadlines that do not poison the store: epoch interruption
//! (`Engine::increment_epoch`, `Store::set_epoch_deadline`, the deadline
//! callback) and resettable interrupts (`InterruptHandle`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use carnac::*;

/// `spin` loops forever; `answer` returns 42; `count(n)` calls `env.tick` `n`
/// times in a loop and returns `n`.
const WAT: &str = r#"(module
    (import "env" "tick" (func $tick))
    (func (export "spin") (loop $l (br $l)))
    (func (export "answer") (result i32) i32.const 42)
    (func (export "count") (param $n i32) (result i32) (local $i i32)
        (loop $l
            (call $tick)
            (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
        local.get $i))"#;

fn setup<T: Send + 'static>(config: &Config, data: T) -> (Engine, Store<T>, Instance) {
    let engine = Engine::new(config);
    let module = Module::new(&engine, WAT).unwrap();
    let mut linker: Linker<T> = Linker::new(&engine);
    let e = engine.clone();
    linker.func_wrap("env", "tick", move || e.increment_epoch()).unwrap();
    let mut store = Store::new(&engine, data);
    let instance = linker.instantiate(&mut store, &module).unwrap();
    (engine, store, instance)
}

fn epochs() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config
}

/// Increments the engine's epoch every millisecond until dropped.
struct Ticker(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Ticker {
    fn start(engine: &Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, e) = (stop.clone(), engine.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
                e.increment_epoch();
            }
        });
        Ticker(stop, Some(thread))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        self.1.take().unwrap().join().unwrap();
    }
}

fn kind(err: &Error) -> TrapKind {
    err.as_trap().unwrap_or_else(|| panic!("not a trap: {err}")).kind()
}

#[test]
fn epoch_deadline_traps_a_loop_and_the_store_runs_again() {
    let (engine, mut store, instance) = setup(&epochs(), ());
    let spin = instance.get_typed_func::<(), ()>(&store, "spin").unwrap();
    let answer = instance.get_typed_func::<(), i32>(&store, "answer").unwrap();
    // No deadline yet: the store runs as any other.
    assert_eq!(answer.call(&mut store, ()).unwrap(), 42);
    let ticker = Ticker::start(&engine);
    store.set_epoch_deadline(5);
    let err = spin.call(&mut store, ()).unwrap_err();
    assert_eq!(kind(&err), TrapKind::Interrupted);
    assert_eq!(err.as_trap().unwrap().backtrace()[0].func_index, 1, "{err}");
    drop(ticker);
    // A reached deadline stays reached (the function entry traps) until a new one is set.
    assert_eq!(kind(&answer.call(&mut store, ()).unwrap_err()), TrapKind::Interrupted);
    store.set_epoch_deadline(1_000_000);
    assert_eq!(answer.call(&mut store, ()).unwrap(), 42);
    // And the loop traps again at a new deadline.
    let _ticker = Ticker::start(&engine);
    store.set_epoch_deadline(3);
    assert_eq!(kind(&spin.call(&mut store, ()).unwrap_err()), TrapKind::Interrupted);
}

#[test]
fn deadline_callback_grants_ticks_until_the_loop_ends() {
    let (_engine, mut store, instance) = setup(&epochs(), 0u32);
    store.epoch_deadline_callback(|store| {
        *store.data_mut() += 1;
        Ok(UpdateDeadline::Continue(1))
    });
    store.set_epoch_deadline(1);
    let count = instance.get_typed_func::<i32, i32>(&store, "count").unwrap();
    assert_eq!(count.call(&mut store, 100).unwrap(), 100);
    // Each tick but the last (after which the loop ends) reaches the deadline
    // at the next loop header: 99 extensions.
    assert_eq!(*store.data(), 99);

    // Granting 10 ticks at a time: a tenth of the calls.
    *store.data_mut() = 0;
    store.epoch_deadline_callback(|store| {
        *store.data_mut() += 1;
        Ok(UpdateDeadline::Continue(10))
    });
    store.set_epoch_deadline(10);
    assert_eq!(count.call(&mut store, 1000).unwrap(), 1000);
    assert_eq!(*store.data(), 99);

    // epoch_deadline_trap restores the default: the first deadline traps.
    store.epoch_deadline_trap();
    store.set_epoch_deadline(10);
    let err = count.call(&mut store, 1000).unwrap_err();
    assert_eq!(kind(&err), TrapKind::Interrupted);
    assert_eq!(*store.data(), 99);
}

#[test]
fn deadline_callback_may_answer_interrupt() {
    let (_engine, mut store, instance) = setup(&epochs(), 0u32);
    store.epoch_deadline_callback(|store| {
        *store.data_mut() += 1;
        Ok(if *store.data() < 5 { UpdateDeadline::Continue(1) } else { UpdateDeadline::Interrupt })
    });
    store.set_epoch_deadline(1);
    let count = instance.get_typed_func::<i32, i32>(&store, "count").unwrap();
    let err = count.call(&mut store, 100).unwrap_err();
    assert_eq!(kind(&err), TrapKind::Interrupted);
    assert_eq!(*store.data(), 5, "four extensions, then the interrupt");
    // The store runs again under a new deadline.
    store.epoch_deadline_trap();
    store.set_epoch_deadline(1000);
    assert_eq!(count.call(&mut store, 10).unwrap(), 10);
}

#[derive(Debug, thiserror::Error)]
#[error("budget exhausted after {0} extensions")]
struct Budget(u32);

#[test]
fn deadline_callback_error_ends_the_call_with_it() {
    let (_engine, mut store, instance) = setup(&epochs(), 0u32);
    let count = instance.get_typed_func::<i32, i32>(&store, "count").unwrap();
    // A trap carrying the embedder's error: it comes back as it is.
    store.epoch_deadline_callback(|store| {
        *store.data_mut() += 1;
        if *store.data() < 3 {
            Ok(UpdateDeadline::Continue(1))
        } else {
            Err(Error::Trap(Trap::host_error(Budget(*store.data()))))
        }
    });
    store.set_epoch_deadline(1);
    let err = count.call(&mut store, 100).unwrap_err();
    let trap = err.as_trap().unwrap();
    assert_eq!(trap.kind(), TrapKind::HostError);
    assert_eq!(trap.downcast_host::<Budget>().unwrap().0, 3);
    assert!(!trap.backtrace().is_empty(), "the trap has the guest's backtrace");
    assert_eq!(*store.data(), 3);

    // Any other error becomes a host-error trap holding it.
    store.epoch_deadline_callback(|_| Err(Error::Usage("out of time".into())));
    store.set_epoch_deadline(1);
    let err = count.call(&mut store, 100).unwrap_err();
    let trap = err.as_trap().unwrap();
    assert_eq!(trap.kind(), TrapKind::HostError);
    assert!(matches!(trap.downcast_host::<Error>(), Some(Error::Usage(m)) if m == "out of time"), "{trap:?}");

    // The store is not poisoned: with a deadline far off it runs to the end.
    store.set_epoch_deadline(1_000_000);
    assert_eq!(count.call(&mut store, 100).unwrap(), 100);
}

#[test]
fn interrupted_store_runs_again_once_cleared() {
    let mut config = Config::new();
    config.interruptible(true);
    let (_engine, mut store, instance) = setup(&config, ());
    let spin = instance.get_typed_func::<(), ()>(&store, "spin").unwrap();
    let answer = instance.get_typed_func::<(), i32>(&store, "answer").unwrap();
    let handle = store.interrupt_handle().unwrap();
    let timer = interrupt_after(handle.clone(), 20);
    assert_eq!(kind(&spin.call(&mut store, ()).unwrap_err()), TrapKind::Interrupted);
    timer.join().unwrap();
    // The interrupt is pending until cleared: a later call traps at once
    // (a timeout that fired between two calls is not lost).
    assert!(handle.is_interrupted());
    assert_eq!(kind(&answer.call(&mut store, ()).unwrap_err()), TrapKind::Interrupted);
    store.clear_interrupt();
    assert!(!handle.is_interrupted());
    assert_eq!(answer.call(&mut store, ()).unwrap(), 42);
    // The same through the handle.
    handle.interrupt();
    assert_eq!(kind(&answer.call(&mut store, ()).unwrap_err()), TrapKind::Interrupted);
    handle.reset();
    assert_eq!(answer.call(&mut store, ()).unwrap(), 42);
}

#[test]
fn interrupt_with_epochs_on_and_clearing_keeps_the_deadline() {
    // Epoch interruption alone makes a store interruptible: the epoch check sees the flag.
    let (_engine, mut store, instance) = setup(&epochs(), ());
    let spin = instance.get_typed_func::<(), ()>(&store, "spin").unwrap();
    let count = instance.get_typed_func::<i32, i32>(&store, "count").unwrap();
    let handle = store.interrupt_handle().unwrap();
    let timer = interrupt_after(handle.clone(), 20);
    assert_eq!(kind(&spin.call(&mut store, ()).unwrap_err()), TrapKind::Interrupted);
    timer.join().unwrap();
    // A deadline set while interrupted does not hide the interrupt.
    store.set_epoch_deadline(1_000);
    assert_eq!(kind(&count.call(&mut store, 1).unwrap_err()), TrapKind::Interrupted);
    // Clearing brings back that deadline, not no deadline.
    handle.reset();
    assert_eq!(count.call(&mut store, 10).unwrap(), 10);
    assert_eq!(kind(&count.call(&mut store, 2000).unwrap_err()), TrapKind::Interrupted);
}

#[test]
fn interrupt_handle_needs_an_interruptible_engine() {
    let store = Store::new(&Engine::default(), ());
    let err = store.interrupt_handle().unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err}");
    let mut config = Config::new();
    config.interruptible(true);
    assert!(Store::new(&Engine::new(&config), ()).interrupt_handle().is_ok());
    assert!(Store::new(&Engine::new(&epochs()), ()).interrupt_handle().is_ok());
}

#[test]
fn epochs_do_nothing_when_off() {
    let (engine, mut store, instance) = setup(&Config::new(), ());
    store.set_epoch_deadline(0);
    store.epoch_deadline_callback(|_| panic!("no deadline without epoch interruption"));
    engine.increment_epoch();
    let count = instance.get_typed_func::<i32, i32>(&store, "count").unwrap();
    assert_eq!(count.call(&mut store, 100).unwrap(), 100);
}

#[test]
fn host_functions_see_the_interrupt_and_the_deadline() {
    let engine = Engine::new(&epochs());
    let module = Module::new(
        &engine,
        r#"(module (import "env" "wait" (func $wait (result i32))) (func (export "run") (result i32) call $wait))"#,
    )
    .unwrap();
    let mut linker: Linker<Vec<bool>> = Linker::new(&engine);
    let e = engine.clone();
    linker
        .func_wrap("env", "wait", move |mut caller: Caller<'_, Vec<bool>>| -> Result<i32, Trap> {
            let before = caller.is_interrupted();
            let probe = caller.interrupt_probe().expect("epochs can stop the store");
            e.increment_epoch();
            let after = probe.is_interrupted();
            let now = caller.is_interrupted();
            caller.data_mut().extend([before, after, now]);
            caller.check_interrupt()?;
            Ok(7)
        })
        .unwrap();
    let mut store = Store::new(&engine, Vec::new());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let run = instance.get_typed_func::<(), i32>(&store, "run").unwrap();
    store.set_epoch_deadline(1);
    // The deadline passes inside the host function, which sees it; its
    // check_interrupt runs the default (trap).
    assert_eq!(kind(&run.call(&mut store, ()).unwrap_err()), TrapKind::Interrupted);
    assert_eq!(store.data(), &[false, true, true]);
    // With a callback granting more ticks, check_interrupt lets the call go on.
    store.data_mut().clear();
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Continue(10)));
    store.set_epoch_deadline(1);
    assert_eq!(run.call(&mut store, ()).unwrap(), 7);
    assert_eq!(store.data(), &[false, true, true]);
    // Nothing can stop a store of an engine without interrupts or epochs.
    let plain = Engine::default();
    let m = Module::new(&plain, r#"(module (import "env" "p" (func)) (func (export "run") call 0))"#).unwrap();
    let mut linker: Linker<()> = Linker::new(&plain);
    linker
        .func_wrap("env", "p", |caller: Caller<'_, ()>| {
            assert!(caller.interrupt_probe().is_none());
            assert!(!caller.is_interrupted());
        })
        .unwrap();
    let mut store = Store::new(&plain, ());
    let i = linker.instantiate(&mut store, &m).unwrap();
    i.get_typed_func::<(), ()>(&store, "run").unwrap().call(&mut store, ()).unwrap();
}

/// Interrupts through `handle` after `ms` milliseconds, on a thread of its own.
fn interrupt_after(handle: carnac::InterruptHandle, ms: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(ms));
        handle.interrupt();
    })
}

#[test]
fn deadline_callback_at_a_callee_entry_resumes_in_the_callee_frame() {
    // The deadline stays reached (the epoch never passes it): every function entry and loop header
    // runs the callback, which lets the guest go on. The interpreter once resumed after a check at the
    // entry of a callee it had entered without leaving its run of handlers with the caller's frame
    // pointer: the callee read the caller's locals as its own and wrote over them.
    let engine = Engine::new(&epochs());
    let module = Module::new(
        &engine,
        r#"(module
            (func $add1 (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
            (func $deep (param i32) (result i32)
                (if (result i32) (i32.eqz (local.get 0))
                    (then (i32.const 0))
                    (else (i32.add (call $deep (i32.sub (local.get 0) (i32.const 1))) (i32.const 2)))))
            (func (export "call") (result i32) (local i32 i32)
                (local.set 0 (i32.const 1000))
                (local.set 1 (i32.const 2000))
                ;; The first call translates $add1 (and is made outside the run of handlers); the
            ;; second, with a value below its arguments, has its frame at another place.
                (drop (call $add1 (i32.const 0)))
                (i32.add (i32.add (local.get 0) (local.get 1)) (call $add1 (i32.const 41))))
            (func (export "deep") (param i32) (result i32) (call $deep (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, 0u32);
    let instance = Linker::new(&engine).instantiate(&mut store, &module).unwrap();
    store.set_epoch_deadline(0);
    store.epoch_deadline_callback(|store| {
        *store.data_mut() += 1;
        Ok(UpdateDeadline::Continue(0))
    });
    let call = instance.get_typed_func::<(), i32>(&store, "call").unwrap();
    assert_eq!(call.call(&mut store, ()).unwrap(), 3042);
    assert_eq!(*store.data(), 3, "a check at each function entry");
    let deep = instance.get_typed_func::<i32, i32>(&store, "deep").unwrap();
    assert_eq!(deep.call(&mut store, 1000).unwrap(), 2000);
}
