//! `trap`: a spawned thread executes `unreachable` while the main thread waits:
//! the program ends with that trap.
use std::thread;
use std::time::Duration;

fn main() {
    println!("started");
    thread::spawn(|| {
        thread::sleep(Duration::from_millis(20));
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
    });
    thread::sleep(Duration::from_secs(600));
    println!("unreachable");
}
