//! `carnac serve` against hostile handlers and hostile clients, over loopback
//! only. Every test is bounded in requests and time: a client that the server
//! fails to answer gives up after a read timeout and the test fails.
//!
//! Handlers are the Rust guest in crates/carnac-wasi/tests/guests/src/bin/handler.rs.

#[path = "../../carnac-wasi/tests/guests.rs"]
mod guests;

mod client;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use carnac_serve::{start, Running, Source};
use client::{connect, read_reply, try_request, Reply};

/// The tiers (`tier =` values) the tests of failing guests run under: the
/// compiled tier where it is built (Linux on x86_64 and aarch64).
const TIERS: &[&str] = if cfg!(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))) {
    &["interp", "cranelift"]
} else {
    &["interp"]
};

fn get(addr: SocketAddr, path: &str) -> Reply {
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    try_request(addr, &head, b"", Duration::from_secs(20)).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn workdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A server whose configuration is `top` (server-wide settings) followed by
/// `routes`, where `{h}` names the handler module.
fn serve(name: &str, top: &str, routes: &str) -> Running {
    let dir = workdir(name);
    let handler = guests::guest("handler");
    let text = format!("{top}\n{}", routes.replace("{h}", &handler.display().to_string()));
    let cfg = dir.join("carnac.toml");
    std::fs::write(&cfg, text).unwrap();
    start(Source::ConfigFile(cfg), "127.0.0.1:0").unwrap()
}

const ONE_ROUTE: &str = "[[route]]\npath = \"/...\"\nmodule = \"{h}\"\ntimeout_ms = 1000\n";

/// A route that holds every response until its handler ends (the default
/// route starts streaming after 200 ms), and the default route.
const HELD_ROUTE: &str = r#"
[[route]]
path = "/held/..."
module = "{h}"
timeout_ms = 1000
stream_after_ms = 5000

[[route]]
path = "/..."
module = "{h}"
"#;

#[test]
fn handlers_cannot_forge_the_http_framing() {
    let srv = serve("framing", "", ONE_ROUTE);
    // Two pipelined requests on one connection: the first handler claims a zero
    // length and prints a whole response after it. The host owns the framing, so
    // that text is the first response's body and the second answer is genuine.
    let mut s = connect(srv.addr, Duration::from_secs(10));
    s.write_all(b"GET /forge HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let first = read_reply(&mut r).unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged");
    assert_eq!(first.header("content-length"), Some("44"));
    assert_eq!(first.header("keep-alive"), None);
    let second = read_reply(&mut r).unwrap();
    assert_eq!((second.status, second.text().as_str()), (200, "hello from wasm\n"));

    // A wrong length and a chunked claim are dropped; the host sends the real length.
    let r = get(srv.addr, "/forge-long");
    assert_eq!((r.status, r.text().as_str()), (200, "short"));
    assert_eq!(r.header("content-length"), Some("5"));
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("trailer"), None);

    // 1xx statuses would leave the connection hanging (101) or malformed: refused.
    for path in ["/upgrade", "/continue"] {
        let r = get(srv.addr, path);
        assert_eq!(r.status, 500, "{path}");
        assert_eq!(r.header("upgrade"), None);
    }
    srv.stop();
}

#[test]
fn a_failure_after_the_headers_is_not_a_success() {
    for tier in TIERS {
        a_failure_after_the_headers_is_not_a_success_on(tier);
    }
}

fn a_failure_after_the_headers_is_not_a_success_on(tier: &str) {
    let srv = serve(&format!("late-{tier}"), &format!("tier = \"{tier}\""), HELD_ROUTE);
    // Held responses: the status waits for the handler's end.
    for path in ["/late-trap", "/held/late-trap"] {
        let r = get(srv.addr, path);
        assert_eq!(r.status, 500, "{tier} {path}: {}", r.text());
        assert!(!r.text().contains("partial body"));
    }
    let r = get(srv.addr, "/held/late-timeout");
    assert_eq!(r.status, 504, "{tier}: {}", r.text());
    // The deadline also ends a guest asleep in poll_oneoff after its headers.
    let r = get(srv.addr, "/held/late-sleep");
    assert_eq!(r.status, 504, "{tier}: {}", r.text());

    // A response already streaming when the handler fails ends abnormally: the
    // client gets the first part, then the connection closes without the final
    // chunk, so it cannot mistake the truncated body for a whole one.
    let mut s = connect(srv.addr, Duration::from_secs(10));
    s.write_all(b"GET /stream-then-trap HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 200"), "{tier}: {raw}");
    assert!(raw.contains("first"), "{tier}: {raw}");
    assert!(!raw.ends_with("0\r\n\r\n"), "{tier}: a failed response ended like a complete one:\n{raw}");
    let mut r = BufReader::new(raw.as_bytes());
    assert!(read_reply(&mut r).is_err(), "the client parsed a complete response");
    srv.stop();
}

#[test]
fn clients_that_never_read_do_not_stop_the_server() {
    let srv = serve(
        "slowread",
        "",
        r#"
[[route]]
path = "/big/..."
module = "{h}"
max_response_bytes = 67108864
drain_timeout_ms = 2000

[[route]]
path = "/..."
module = "{h}"
"#,
    );
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // More clients than guest workers ask for 16 MiB each (more than loopback's
    // socket buffers hold) and read nothing.
    let stalled: Vec<TcpStream> = (0..cores + 2)
        .map(|_| {
            let mut s = connect(srv.addr, Duration::from_secs(10));
            s.write_all(b"GET /big/huge HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    // Every route still answers, promptly.
    let t = Instant::now();
    let r = try_request(
        srv.addr,
        "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"",
        Duration::from_secs(5),
    )
    .expect("a normal request while clients stall");
    assert_eq!((r.status, r.text().as_str()), (200, "hello from wasm\n"));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(get(srv.addr, "/health").status, 200);
    // A response may take at most drain_timeout_ms to drain: then the
    // connection is closed, and the client has less than the whole body.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = get(srv.addr, "/metrics").text();
        let aborted = metrics
            .lines()
            .find_map(|l| l.strip_prefix("carnac_client_stalls_total "))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        if aborted >= stalled.len() {
            break;
        }
        assert!(Instant::now() < deadline, "stalled connections were not closed:\n{metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for mut s in stalled {
        let mut got = Vec::new();
        let t = Instant::now();
        let _ = s.read_to_end(&mut got);
        assert!(t.elapsed() < Duration::from_secs(9), "the stalled connection was kept open");
        assert!(got.len() < 16 << 20, "{} bytes", got.len());
    }
    srv.stop();
}

#[test]
fn uploads_are_bounded_in_time_and_in_aggregate() {
    let srv = serve(
        "uploads",
        "max_buffered_mb = 1\nmax_connections = 6\n",
        r#"
[[route]]
path = "/one/..."
module = "{h}"
concurrency = 1
queue = 1

[[route]]
path = "/..."
module = "{h}"
body_timeout_ms = 500
max_body_bytes = 4194304
"#,
    );
    let a = srv.addr;
    // A body sent one byte at a time past body_timeout_ms: 408, promptly.
    let t = Instant::now();
    let mut s = connect(a, Duration::from_secs(5));
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx").unwrap();
    let r = read_reply(&mut BufReader::new(s)).expect("an answer to a stalled upload");
    assert_eq!(r.status, 408);
    assert!(t.elapsed() < Duration::from_secs(4));

    // A malformed chunked body is the client's error: 400, not 413.
    let r = try_request(
        a,
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(r.status, 400);

    // Admission comes before the body: with the route's one queue place taken by
    // an upload in progress, the next upload is refused at once, unread.
    let mut first = connect(a, Duration::from_secs(5));
    first.write_all(b"POST /one/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let r =
        try_request(a, "POST /one/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", b"", Duration::from_secs(5))
            .expect("the second upload is answered without sending its body");
    assert_eq!(r.status, 503);
    assert!(t.elapsed() < Duration::from_secs(2));
    first.write_all(b"0123456789").unwrap();
    let r = read_reply(&mut BufReader::new(first)).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));

    // Bodies buffered server-wide stay within max_buffered_mb.
    let mut big = connect(a, Duration::from_secs(5));
    big.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 700000\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let r =
        try_request(a, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 700000\r\n\r\n", b"", Duration::from_secs(5))
            .unwrap();
    assert_eq!(r.status, 503);
    drop(big);

    // httpoxy: a client's `Proxy:` header never becomes HTTP_PROXY.
    let r = try_request(
        a,
        "GET /env HTTP/1.1\r\nHost: x\r\nProxy: http://evil:1\r\nConnection: close\r\n\r\n",
        b"",
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(!r.text().contains("HTTP_PROXY"), "{}", r.text());

    // At most max_connections at once: one more is answered 503 and closed.
    std::thread::sleep(Duration::from_millis(700));
    let idle: Vec<TcpStream> = (0..6).map(|_| connect(a, Duration::from_secs(5))).collect();
    std::thread::sleep(Duration::from_millis(200));
    let r = try_request(a, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", b"", Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 503);
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r =
            try_request(a, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"", Duration::from_secs(5));
        if r.as_ref().is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "connections were not released: {r:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    srv.stop();
}

#[test]
fn a_route_of_slow_handlers_does_not_delay_the_others() {
    let srv = serve(
        "fair",
        "workers = 2\n",
        r#"
[[route]]
path = "/slow/..."
module = "{h}"
timeout_ms = 10000

[[route]]
path = "/..."
module = "{h}"
"#,
    );
    let a = srv.addr;
    // Six handlers that each compute for 1.5 s, within their limits.
    let slow: Vec<_> = (0..6).map(|_| std::thread::spawn(move || get(a, "/slow/spin").status)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let r = get(a, "/hello");
    let took = t.elapsed();
    assert_eq!(r.status, 200);
    assert!(took < Duration::from_millis(1000), "another route waited {took:?} behind the slow one");
    for h in slow {
        assert_eq!(h.join().unwrap(), 200);
    }
    srv.stop();
}

#[test]
fn health_says_whether_guests_can_run() {
    let srv = serve(
        "health",
        "workers = 1\nspare_workers = 0\n",
        "[[route]]\npath = \"/...\"\nmodule = \"{h}\"\ntimeout_ms = 3000\n",
    );
    let a = srv.addr;
    assert_eq!(get(a, "/health").status, 200);
    // One thread, no spares: a guest that computes until its deadline leaves
    // the next one queued, and past a second of that the server is not ready.
    let busy: Vec<_> = (0..2).map(|_| std::thread::spawn(move || get(a, "/loop").status)).collect();
    std::thread::sleep(Duration::from_millis(1500));
    let r = get(a, "/health");
    assert_eq!(r.status, 503, "{}", r.text());
    for h in busy {
        assert_eq!(h.join().unwrap(), 504);
    }
    assert_eq!(get(a, "/health").status, 200);
    srv.stop();
}

#[test]
fn handler_headers_are_validated_whatever_their_shape() {
    // A generous deadline: building 40,000 header lines takes a while in an
    // unoptimised build on a busy machine.
    let srv = serve("headers", "", "[[route]]\npath = \"/...\"\nmodule = \"{h}\"\ntimeout_ms = 20000\n");
    // 40,000 distinct names overflowed the response's header map (a panic in
    // the connection, logged as a 200); a 200 KB block written at once passed
    // the 64 KiB limit that one written in pieces met; a CR inside a value made
    // the header vanish silently. Each is a 500 now.
    for path in ["/many-headers?40000", "/big-head", "/cr-value"] {
        let r = get(srv.addr, path);
        assert_eq!((r.status, r.text().as_str()), (500, "handler wrote malformed headers\n"), "{path}");
    }
    // Within the limits, headers go through.
    let r = get(srv.addr, "/many-headers?50");
    assert_eq!((r.status, r.header("x-h49")), (200, Some("v")));
    // A request header spelled with `_` cannot pose as another one.
    let r = try_request(
        srv.addr,
        "GET /env HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: good\r\nX_Forwarded_For: evil\r\nConnection: close\r\n\r\n",
        b"",
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(r.text().lines().any(|l| l == "HTTP_X_FORWARDED_FOR=good"), "{}", r.text());
    assert!(!r.text().contains("evil"), "{}", r.text());
    srv.stop();
}

#[test]
fn a_guest_whose_client_left_is_stopped() {
    for tier in TIERS {
        a_guest_whose_client_left_is_stopped_on(tier);
    }
}

fn a_guest_whose_client_left_is_stopped_on(tier: &str) {
    // One guest thread and no spares: while a guest holds it, nothing else runs.
    let srv = serve(
        &format!("client-gone-{tier}"),
        &format!("workers = 1\nspare_workers = 0\ntier = \"{tier}\"\n"),
        "[[route]]\npath = \"/...\"\nmodule = \"{h}\"\ntimeout_ms = 30000\n",
    );
    let a = srv.addr;
    // A streaming guest that ignores failed writes, and a guest asleep before
    // its headers (its response still held): each client leaves early.
    for path in ["/write-forever", "/sleepy"] {
        let mut s = connect(a, Duration::from_secs(10));
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        if path == "/write-forever" {
            let mut first = [0u8; 1024];
            s.read_exact(&mut first).unwrap();
        } else {
            std::thread::sleep(Duration::from_millis(300));
        }
        drop(s);
        // The guest is stopped, so the one thread is free again at once (its
        // deadline is 30 s away).
        let t = Instant::now();
        let r =
            try_request(a, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"", Duration::from_secs(8))
                .unwrap_or_else(|e| panic!("after leaving {path}: {e}"));
        assert_eq!(r.status, 200, "{tier}");
        assert!(t.elapsed() < Duration::from_secs(5), "{tier}: after leaving {path}: {:?}", t.elapsed());
    }
    srv.stop();
}
