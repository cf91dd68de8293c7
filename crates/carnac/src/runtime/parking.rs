//! The process-wide parking lot behind `memory.atomic.wait32/64` and
//! `memory.atomic.notify` (the threads proposal), and the host's
//! [`crate::SharedMemory::atomic_wait32`] and friends.
//!
//! Waiters are keyed by the *host address* of the cell they wait on: a shared
//! memory's region never moves while it lives, so one address names one cell
//! whichever store, instance or thread reaches it. The lot is split into
//! buckets (by address) each behind its own mutex; a bucket keeps its waiters in
//! arrival order, so `notify` wakes the oldest first (FIFO), `count` at most.
//!
//! No wakeup is lost: a waiter compares the cell with its expected value while
//! holding its bucket's lock and enqueues itself before releasing it; a
//! notifier (which stored to the cell first) takes the same lock to wake.
//!
//! A waiting thread never sleeps unboundedly: it wakes every [`POLL_SLICE`] to
//! ask its caller whether to go on (the interpreter checks the store's
//! interrupt flag and epoch deadline there), so an interrupted program's
//! threads end their waits as they end loops.
//!
//! This module owns only the waiter queues; it never reads or writes guest
//! memory itself except through the `still_expected` closure its callers pass.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a waiter sleeps before asking its caller whether to go on.
pub(crate) const POLL_SLICE: Duration = Duration::from_millis(5);

const BUCKETS: usize = 64;

/// One parked thread: woken once, by a notifier.
struct Waiter {
    woken: Mutex<bool>,
    cond: Condvar,
}

type Bucket = Mutex<Vec<(usize, Arc<Waiter>)>>;

static LOT: [Bucket; BUCKETS] = [const { Mutex::new(Vec::new()) }; BUCKETS];

fn bucket(addr: usize) -> &'static Bucket {
    // Cells are at least 4-byte aligned; mix the higher bits in too.
    &LOT[((addr >> 2) ^ (addr >> 12)) % BUCKETS]
}

fn lock(b: &Bucket) -> std::sync::MutexGuard<'_, Vec<(usize, Arc<Waiter>)>> {
    // A panic while holding a bucket's lock leaves its queue consistent (every
    // update is a single push or remove), so a poisoned lock is still usable.
    b.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a wait ended, as `memory.atomic.wait` returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitResult {
    /// Woken by a notify (the instruction's 0).
    Ok,
    /// The cell did not hold the expected value: no wait at all (1).
    Mismatch,
    /// The timeout passed first (2).
    TimedOut,
}

impl WaitResult {
    /// The value `memory.atomic.wait32/64` returns: 0, 1 or 2.
    pub fn code(self) -> u32 {
        match self {
            WaitResult::Ok => 0,
            WaitResult::Mismatch => 1,
            WaitResult::TimedOut => 2,
        }
    }
}

/// Parks the calling thread on the cell at host address `addr` if
/// `still_expected()` (read under the bucket's lock) holds, until a
/// [`notify`] on `addr` wakes it, `timeout` passes (`None`: no timeout) or
/// `poll` (called every [`POLL_SLICE`]) returns an error, which is then returned
/// with the waiter removed.
pub(crate) fn wait<E>(
    addr: usize,
    still_expected: impl FnOnce() -> bool,
    timeout: Option<Duration>,
    mut poll: impl FnMut() -> Result<(), E>,
) -> Result<WaitResult, E> {
    let deadline = timeout.map(|t| Instant::now().checked_add(t));
    let waiter = Arc::new(Waiter { woken: Mutex::new(false), cond: Condvar::new() });
    {
        let mut q = lock(bucket(addr));
        if !still_expected() {
            return Ok(WaitResult::Mismatch);
        }
        q.push((addr, waiter.clone()));
    }
    // Takes the waiter out of the queue; `false` when a notifier already did (it woke us).
    let leave = || {
        let mut q = lock(bucket(addr));
        match q.iter().position(|(_, w)| Arc::ptr_eq(w, &waiter)) {
            Some(i) => {
                q.remove(i);
                true
            }
            None => false,
        }
    };
    let mut woken = waiter.woken.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if *woken {
            return Ok(WaitResult::Ok);
        }
        let now = Instant::now();
        let slice = match deadline {
            // A deadline too far to represent is no deadline.
            Some(Some(d)) if d <= now => {
                drop(woken);
                return Ok(if leave() { WaitResult::TimedOut } else { WaitResult::Ok });
            }
            Some(Some(d)) => (d - now).min(POLL_SLICE),
            _ => POLL_SLICE,
        };
        woken = waiter.cond.wait_timeout(woken, slice).unwrap_or_else(|e| e.into_inner()).0;
        if !*woken {
            if let Err(e) = poll() {
                drop(woken);
                if leave() {
                    return Err(e);
                }
                // Woken meanwhile: the notify counted us, so report the wakeup.
                return Ok(WaitResult::Ok);
            }
        }
    }
}

/// Wakes at most `count` threads parked on host address `addr`, oldest first;
/// returns how many it woke.
pub(crate) fn notify(addr: usize, count: u32) -> u32 {
    if count == 0 {
        return 0;
    }
    let mut q = lock(bucket(addr));
    let mut woken = 0;
    let mut i = 0;
    while i < q.len() && woken < count {
        if q[i].0 == addr {
            let (_, w) = q.remove(i);
            *w.woken.lock().unwrap_or_else(|e| e.into_inner()) = true;
            w.cond.notify_one();
            woken += 1;
        } else {
            i += 1;
        }
    }
    woken
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn no_poll() -> Result<(), ()> {
        Ok(())
    }

    #[test]
    fn mismatch_does_not_wait_and_timeout_ends_the_wait() {
        let cell = AtomicU32::new(5);
        let addr = &cell as *const AtomicU32 as usize;
        let r = wait(addr, || cell.load(Ordering::SeqCst) == 4, None, no_poll);
        assert_eq!(r, Ok(WaitResult::Mismatch));
        let start = Instant::now();
        let r = wait(addr, || cell.load(Ordering::SeqCst) == 5, Some(Duration::from_millis(20)), no_poll);
        assert_eq!(r, Ok(WaitResult::TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(notify(addr, 10), 0, "the timed-out waiter left the queue");
    }

    #[test]
    fn notify_wakes_exactly_count_oldest_first() {
        let cell = Arc::new(AtomicU32::new(0));
        let addr = Arc::as_ptr(&cell) as usize;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for i in 0..3 {
            let (cell, order) = (cell.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let r = wait(addr, || cell.load(Ordering::SeqCst) == 0, Some(Duration::from_secs(5)), no_poll);
                order.lock().unwrap().push(i);
                r
            }));
            // Let each one park before the next, so their order is known.
            while lock(bucket(addr)).iter().filter(|(a, _)| *a == addr).count() < i + 1 {
                std::thread::yield_now();
            }
        }
        assert_eq!(notify(addr, 2), 2);
        while order.lock().unwrap().len() < 2 {
            std::thread::yield_now();
        }
        let mut woke = order.lock().unwrap().clone();
        woke.sort();
        assert_eq!(woke, [0, 1], "the two oldest waiters woke");
        assert_eq!(notify(addr, 5), 1);
        for t in threads {
            assert_eq!(t.join().unwrap(), Ok(WaitResult::Ok));
        }
        assert_eq!(notify(addr, 1), 0);
    }

    #[test]
    fn poll_error_ends_the_wait() {
        let cell = AtomicU32::new(0);
        let addr = &cell as *const AtomicU32 as usize;
        let mut polls = 0;
        let r = wait(
            addr,
            || true,
            None,
            || {
                polls += 1;
                if polls == 3 {
                    Err("interrupted")
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(r, Err("interrupted"));
        assert_eq!(notify(addr, 1), 0, "the interrupted waiter left the queue");
    }
}
