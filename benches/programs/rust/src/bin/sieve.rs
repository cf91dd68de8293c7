//! Memory-bound loops: sieve of Eratosthenes, repeated.
fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let mut count = 0;
    for _ in 0..3 {
        let mut is = vec![true; n];
        count = 0;
        for i in 2..n {
            if is[i] {
                count += 1;
                let mut j = i * i;
                while j < n {
                    is[j] = false;
                    j += i;
                }
            }
        }
    }
    println!("{count}");
}
