//! `hang`: threads that never end: two spin, one waits on a Mutex+Condvar
//! (`memory.atomic.wait`), one sleeps (`poll_oneoff`), and the main thread
//! joins them. Only a timeout (or fuel) ends it.
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

fn main() {
    let mut hs = Vec::new();
    for _ in 0..2 {
        hs.push(thread::spawn(|| {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }));
    }
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let p = pair.clone();
    hs.push(thread::spawn(move || {
        let (m, cv) = &*p;
        let mut g = m.lock().unwrap();
        while !*g {
            g = cv.wait(g).unwrap();
        }
    }));
    hs.push(thread::spawn(|| thread::sleep(Duration::from_secs(3600))));
    println!("started");
    for h in hs {
        h.join().unwrap();
    }
}
