//! HashMap- and string-heavy: word counting and joins over generated text.
use std::collections::HashMap;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let syl = ["ka", "lo", "mi", "ne", "so", "tu", "ra", "vi", "ze", "po", "qua", "sh"];
    let mut x: u32 = 12345;
    let mut counts: HashMap<String, u32> = HashMap::new();
    let mut by_len: HashMap<usize, Vec<String>> = HashMap::new();
    for _ in 0..n {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        let k = 1 + (x >> 28) as usize % 3;
        let mut w = String::new();
        for j in 0..k {
            w.push_str(syl[((x >> (4 * j)) % syl.len() as u32) as usize]);
        }
        let c = counts.entry(w.clone()).or_insert(0);
        *c += 1;
        if *c == 1 {
            by_len.entry(w.len()).or_default().push(w);
        }
    }
    let mut top: Vec<(&String, &u32)> = counts.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let lens: usize = by_len.values().map(Vec::len).sum();
    println!("{} {} {}:{} {}", counts.len(), lens, top[0].0, top[0].1, top[top.len() - 1].0);
}
