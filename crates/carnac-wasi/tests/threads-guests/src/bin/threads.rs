//! `threads`: std::thread, a Mutex, atomics, mpsc channels, a Condvar and
//! thread::park, with output that depends only on the program (never on the
//! schedule), so that it equals the native build's.
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(4);

    // Atomics: every thread adds its share.
    let counter = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let c = counter.clone();
            thread::spawn(move || {
                for k in 0..10_000u64 {
                    c.fetch_add(k % 7 + i as u64, Ordering::SeqCst);
                }
                i * i
            })
        })
        .collect();
    let squares: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    println!("atomic total {} squares {squares}", counter.load(Ordering::SeqCst));

    // A Mutex around a non-atomic vector.
    let shared = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let s = shared.clone();
            thread::spawn(move || {
                for k in 0..1000 {
                    s.lock().unwrap().push(i * 1000 + k);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut v = shared.lock().unwrap().clone();
    v.sort();
    let sum: usize = v.iter().sum();
    println!("mutex pushed {} sum {sum} first {} last {}", v.len(), v[0], v[v.len() - 1]);

    // Channels: workers send results, the main thread collects.
    let (tx, rx) = mpsc::channel();
    for i in 0..n {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut h: u64 = 1469598103934665603;
            for b in 0..(1000 * (i + 1)) as u64 {
                h = (h ^ b).wrapping_mul(1099511628211);
            }
            tx.send((i, h)).unwrap();
        });
    }
    drop(tx);
    let mut got: Vec<(usize, u64)> = rx.iter().collect();
    got.sort();
    for (i, h) in &got {
        println!("channel worker {i} hash {h:016x}");
    }

    // A Condvar: a producer hands items one by one to a consumer.
    let pair = Arc::new((Mutex::new((0u32, false)), Condvar::new()));
    let p2 = pair.clone();
    let consumer = thread::spawn(move || {
        let (lock, cv) = &*p2;
        let mut seen = Vec::new();
        let mut g = lock.lock().unwrap();
        loop {
            while !g.1 {
                g = cv.wait(g).unwrap();
            }
            if g.0 == u32::MAX {
                break;
            }
            seen.push(g.0);
            g.1 = false;
            cv.notify_all();
        }
        seen
    });
    {
        let (lock, cv) = &*pair;
        for item in (1..=20).chain([u32::MAX]) {
            let mut g = lock.lock().unwrap();
            while g.1 {
                g = cv.wait(g).unwrap();
            }
            *g = (item, true);
            cv.notify_all();
        }
    }
    let seen = consumer.join().unwrap();
    println!("condvar handed {} items, sum {}", seen.len(), seen.iter().sum::<u32>());

    // thread::park / unpark: a flag set before each unpark.
    let flag = Arc::new(AtomicUsize::new(0));
    let f2 = flag.clone();
    let parked = thread::spawn(move || {
        // Parks until every unpark's flag is seen (a spurious or early wake-up
        // just loops).
        while f2.load(Ordering::Acquire) < 5 {
            thread::park();
        }
        f2.load(Ordering::Acquire)
    });
    for _ in 0..5 {
        flag.fetch_add(1, Ordering::Release);
        parked.thread().unpark();
    }
    println!("park saw flag {}", parked.join().unwrap());

    // Scoped threads borrowing the main thread's data.
    let data: Vec<u64> = (1..=1000).collect();
    let chunk = data.len().div_ceil(n);
    let total: u64 = thread::scope(|s| {
        let parts: Vec<_> = data.chunks(chunk).map(|c| s.spawn(move || c.iter().map(|x| x * x).sum::<u64>())).collect();
        parts.into_iter().map(|p| p.join().unwrap()).sum()
    });
    println!("scoped sum of squares {total}");
}
