//! `parallel THREADS WORK`: a CPU-bound job (a xorshift/multiply mix over
//! WORK million steps) split evenly over THREADS threads, each on its own
//! state (no sharing in the hot loop); prints the combined checksum, which does
//! not depend on THREADS.
use std::thread;

fn job(lo: u64, hi: u64) -> u64 {
    let mut acc = 0u64;
    for i in lo..hi {
        let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc.wrapping_add(x.wrapping_mul(i | 1));
    }
    acc
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let work: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let total = work * 1_000_000;
    let per = total.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (lo, hi) = (t * per, ((t + 1) * per).min(total));
            thread::spawn(move || job(lo, hi))
        })
        .collect();
    let sum = handles.into_iter().fold(0u64, |a, h| a.wrapping_add(h.join().unwrap()));
    println!("{sum:016x}");
}
