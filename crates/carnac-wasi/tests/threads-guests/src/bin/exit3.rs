//! `exit3`: a spawned thread calls `proc_exit(3)` while the main thread and
//! another thread keep running: the program must end with status 3.
use std::thread;
use std::time::Duration;

fn main() {
    // One thread spins, another sleeps: both must stop with the program.
    thread::spawn(|| {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    });
    thread::spawn(|| thread::sleep(Duration::from_secs(600)));
    println!("started");
    thread::spawn(|| {
        thread::sleep(Duration::from_millis(50));
        std::process::exit(3);
    });
    // The main thread waits on a channel nobody sends to.
    let (_tx, rx) = std::sync::mpsc::channel::<()>();
    rx.recv().unwrap();
    println!("unreachable");
}
