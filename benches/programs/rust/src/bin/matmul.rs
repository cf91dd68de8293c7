//! Floating point and memory: dense matrix multiply.
fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    let a: Vec<f64> = (0..n * n).map(|i| (i % 7 + 1) as f64).collect();
    let b: Vec<f64> = (0..n * n).map(|i| (i % 5) as f64 - 2.0).collect();
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            for j in 0..n {
                c[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    let check: f64 = c.iter().enumerate().map(|(i, x)| x * ((i % 13) as f64)).sum();
    println!("{check}");
}
