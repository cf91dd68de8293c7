//! A realistic workload: write a generated text corpus to the preopened
//! directory, read it back, count word frequencies in a HashMap, build bigram
//! statistics, sort, and print a checksum with the time taken.
use std::collections::HashMap;
use std::fs;
use std::time::Instant;

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".to_string());
    let words: u32 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(400_000);
    let t = Instant::now();
    let syllables = ["ka", "ro", "mi", "tel", "an", "qu", "is", "or", "ve", "nu", "sha", "po"];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut text = String::with_capacity(words as usize * 8);
    for i in 0..words {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = 1 + (state % 3) as usize;
        for k in 0..len {
            text.push_str(syllables[((state >> (8 * k)) % syllables.len() as u64) as usize]);
        }
        text.push(if i % 17 == 16 { '\n' } else { ' ' });
    }
    let path = format!("{dir}/corpus.txt");
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::with_capacity(64 << 10, fs::File::create(&path).unwrap());
        for line in text.split_inclusive('\n') {
            out.write_all(line.as_bytes()).unwrap();
        }
        out.flush().unwrap();
    }
    let back = {
        use std::io::Read;
        let mut f = fs::File::open(&path).unwrap();
        let mut bytes = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            let n = f.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8(bytes).unwrap()
    };
    assert_eq!(back.len(), text.len());
    let mut freq: HashMap<&str, u32> = HashMap::new();
    let mut bigrams: HashMap<(&str, &str), u32> = HashMap::new();
    let mut prev = "";
    for w in back.split_whitespace() {
        *freq.entry(w).or_default() += 1;
        *bigrams.entry((prev, w)).or_default() += 1;
        prev = w;
    }
    let mut top: Vec<(&str, u32)> = freq.iter().map(|(k, v)| (*k, *v)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut checksum: u64 = 0;
    for (i, (w, c)) in top.iter().enumerate() {
        checksum = checksum.wrapping_mul(31).wrapping_add(*c as u64 * (i as u64 + 1) + w.len() as u64);
    }
    for ((a, b), c) in &bigrams {
        checksum ^= (*c as u64) << ((a.len() + b.len()) % 32);
    }
    fs::remove_file(&path).unwrap();
    println!("words={} distinct={} bigrams={} top={}:{} checksum={checksum}", words, freq.len(), bigrams.len(), top[0].0, top[0].1);
    eprintln!("elapsed {} ms", t.elapsed().as_millis());
}
