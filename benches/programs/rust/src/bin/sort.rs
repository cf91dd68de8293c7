//! Memory-bound: sorting pseudo-random integers (quicksort from std) and strings.
fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2_000_000);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v: Vec<u64> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect();
    v.sort_unstable();
    let mut words: Vec<String> = v.iter().step_by(8).map(|n| format!("{:x}", n.rotate_left(17))).collect();
    words.sort();
    let sum = v.iter().enumerate().fold(0u64, |a, (i, x)| a.wrapping_add(x.wrapping_mul(i as u64 + 1)));
    println!("{} {} {}", sum, words[0], words[words.len() - 1]);
}
