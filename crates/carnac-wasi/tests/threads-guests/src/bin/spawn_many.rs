//! `spawn_many N`: tries to start N threads that all stay alive (blocked on a
//! barrier-like channel) and prints how many started before spawning failed.
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let mut handles = Vec::new();
    let mut failed = None;
    for i in 0..n {
        let rx = rx.clone();
        match thread::Builder::new().stack_size(64 * 1024).spawn(move || {
            let _ = rx.lock().unwrap().recv();
        }) {
            Ok(h) => handles.push(h),
            Err(e) => {
                failed = Some((i, e));
                break;
            }
        }
    }
    println!("started {}", handles.len());
    if let Some((i, e)) = failed {
        println!("spawn {i} failed: {}", e.kind());
    }
    for _ in 0..handles.len() {
        tx.send(()).unwrap();
    }
    for h in handles {
        h.join().unwrap();
    }
    println!("joined");
}
