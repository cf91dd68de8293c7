//! An HTTP handler for `carnac serve` (CGI over WASI, WAGI-style): behaviour by path.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Recurses until the runtime stops it (a stack-exhaustion trap).
fn recurse(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 8]);
    if std::hint::black_box(n) == u64::MAX {
        return frame[0];
    }
    recurse(n + 1) + frame[7]
}

fn main() {
    let path = std::env::var("PATH_INFO").unwrap_or_default();
    let mut out = std::io::stdout().lock();
    match path.trim_start_matches('/') {
        "hello" | "" => {
            write!(out, "Content-Type: text/plain\n\nhello from wasm\n").unwrap();
        }
        "echo" => {
            let mut body = Vec::new();
            std::io::stdin().read_to_end(&mut body).unwrap();
            write!(out, "Content-Type: application/octet-stream\n\n").unwrap();
            out.write_all(&body).unwrap();
        }
        "env" => {
            let vars: BTreeMap<String, String> = std::env::vars().collect();
            write!(out, "Content-Type: text/plain\n\n").unwrap();
            for (k, v) in vars {
                writeln!(out, "{k}={v}").unwrap();
            }
            for a in std::env::args() {
                writeln!(out, "arg {a}").unwrap();
            }
        }
        "status" => write!(out, "Status: 418 I'm a teapot\nX-Extra: yes\n\nshort and stout\n").unwrap(),
        "redirect" => write!(out, "Location: /hello\n\n").unwrap(),
        "slow" => {
            std::thread::sleep(Duration::from_millis(300));
            write!(out, "Content-Type: text/plain\n\nslow hello\n").unwrap();
        }
        "stream" => {
            write!(out, "Content-Type: text/plain\n\n").unwrap();
            out.flush().unwrap();
            for i in 0..5 {
                writeln!(out, "chunk {i}").unwrap();
                out.flush().unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        "trickle" => {
            write!(out, "Content-Type: text/plain\n\nfirst\n").unwrap();
            out.flush().unwrap();
            std::thread::sleep(Duration::from_millis(600));
            write!(out, "second\n").unwrap();
        }
        "big" => {
            write!(out, "Content-Type: text/plain\n\n").unwrap();
            let line = [b'y'; 1024];
            for _ in 0..4096 {
                if out.write_all(&line).is_err() {
                    eprintln!("response cut off");
                    return;
                }
            }
        }
        "static" => {
            let text = std::fs::read_to_string("/static/file.txt").unwrap();
            let denied = std::fs::write("/static/new.txt", "x").is_err();
            write!(out, "Content-Type: text/plain\n\n{text}write denied: {denied}\n").unwrap();
        }
        "sleepy" => std::thread::sleep(Duration::from_secs(100 * 86400)),
        "loop" => loop {
            std::hint::black_box(0);
        },
        "bomb" => {
            let mut v: Vec<Vec<u8>> = Vec::new();
            loop {
                v.push(vec![7u8; 1 << 20]);
            }
        }
        "trap" => {
            eprintln!("about to fail");
            panic!("handler failure");
        }
        "bad" => write!(out, "this is not a header\n\nbody\n").unwrap(),
        "isolation" => {
            // What this request changes, the next one must not see (a fresh
            // instance each): a counter, initialised data, a grown page.
            static HITS: AtomicU32 = AtomicU32::new(0);
            static mut DATA: [u8; 8] = *b"pristine";
            let hits = HITS.fetch_add(1, Ordering::SeqCst);
            // SAFETY: one thread; volatile, so the data segment is really read and written.
            let data = unsafe { (&raw mut DATA).read_volatile() };
            unsafe { (&raw mut DATA).write_volatile(*b"modified") };
            let pages = core::arch::wasm32::memory_grow::<0>(1);
            let page = (pages * 65536) as *mut u8;
            // SAFETY: the page just grown, which nothing else uses.
            let zero = (0..65536).all(|i| unsafe { page.add(i).read_volatile() } == 0);
            unsafe { std::ptr::write_bytes(page, 0xAB, 65536) };
            let data = String::from_utf8_lossy(&data);
            write!(out, "Content-Type: text/plain\n\nhits={hits} data={data} grown-page-zero={zero} pages={pages}\n")
                .unwrap();
        }
        "recurse" => write!(out, "Content-Type: text/plain\n\ndepth {}\n", recurse(0)).unwrap(),
        // Hostile handlers (crates/carnac-serve/tests/hostile.rs).
        "forge" => {
            // A zero length, then a whole forged response for the client's next request.
            write!(out, "Content-Length: 0\nConnection: keep-alive\nKeep-Alive: timeout=100\n\n").unwrap();
            write!(out, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged").unwrap();
        }
        "forge-long" => write!(out, "Content-Length: 1000\nTransfer-Encoding: chunked\nTrailer: x\n\nshort").unwrap(),
        "upgrade" => write!(out, "Status: 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\n\n").unwrap(),
        "continue" => write!(out, "Status: 100 Continue\n\nbody").unwrap(),
        "huge" => {
            write!(out, "Content-Type: application/octet-stream\n\n").unwrap();
            let block = vec![b'h'; 1 << 20];
            for _ in 0..16 {
                if out.write_all(&block).is_err() {
                    return;
                }
            }
        }
        "late-trap" => {
            write!(out, "Content-Type: text/plain\n\npartial body").unwrap();
            out.flush().unwrap();
            panic!("failure after the headers");
        }
        "late-timeout" => {
            write!(out, "Content-Type: text/plain\n\npartial body").unwrap();
            out.flush().unwrap();
            loop {
                std::hint::black_box(0);
            }
        }
        "stream-then-trap" => {
            write!(out, "Content-Type: text/plain\n\nfirst\n").unwrap();
            out.flush().unwrap();
            std::thread::sleep(Duration::from_millis(800));
            write!(out, "second\n").unwrap();
            out.flush().unwrap();
            panic!("failure while streaming");
        }
        "spin" => {
            let until = std::time::Instant::now() + Duration::from_millis(1500);
            while std::time::Instant::now() < until {
                std::hint::black_box(0);
            }
            write!(out, "Content-Type: text/plain\n\nspun\n").unwrap();
        }
        "many-headers" => {
            // More distinct header names than a response can hold.
            let n: usize = std::env::var("QUERY_STRING").ok().and_then(|q| q.parse().ok()).unwrap_or(40_000);
            let mut head = String::new();
            for i in 0..n {
                head.push_str(&format!("X-H{i}: v\n"));
            }
            head.push('\n');
            out.write_all(head.as_bytes()).unwrap();
        }
        "big-head" => {
            // A 200 KB header block in one write.
            let head = format!("X-Big: {}\n\nbody", "b".repeat(200_000));
            out.write_all(head.as_bytes()).unwrap();
        }
        "cr-value" => write!(out, "Location: /x\rSet-Cookie: evil=1\n\n").unwrap(),
        "write-forever" => {
            // Ignores failed writes: only being stopped ends it.
            write!(out, "Content-Type: text/plain\n\n").unwrap();
            let block = [b'w'; 4096];
            loop {
                let _ = out.write_all(&block);
                let _ = out.flush();
            }
        }
        "late-sleep" => {
            write!(out, "Content-Type: text/plain\n\npartial body").unwrap();
            out.flush().unwrap();
            std::thread::sleep(Duration::from_secs(100 * 86400));
        }
        "exit" => std::process::exit(3),
        _ => write!(out, "Status: 404\nContent-Type: text/plain\n\nno such handler {path}\n").unwrap(),
    }
}
