//! `carnac serve` over loopback with a real HTTP client, against handlers
//! written in Rust (crates/carnac-wasi/tests/guests/src/bin/handler.rs).

mod client;
#[path = "../../carnac-wasi/tests/guests.rs"]
mod guests;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use carnac_serve::{start, start_with, Overrides, Running, Source};
use client::{try_request, Reply};

/// The tiers (`tier =` values) the handler tests run under: the compiled tier
/// where it is built (Linux on x86_64 and aarch64, see crates/carnac/build.rs).
const TIERS: &[&str] = if cfg!(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))) {
    &["interp", "cranelift"]
} else {
    &["interp"]
};

fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Reply {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test.local\r\nX-Custom-Thing: 42\r\nAuthorization: secret\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    try_request(addr, &head, body, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, b"")
}

fn workdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a config serving the handler on several routes with different limits.
fn config(dir: &Path, extra_env: &str) -> PathBuf {
    config_on(dir, extra_env, None)
}

/// [`config`], with `tier = "TIER"` when given.
fn config_on(dir: &Path, extra_env: &str, tier: Option<&str>) -> PathBuf {
    let handler = guests::guest("handler");
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(dir.join("static/file.txt"), "static content\n").unwrap();
    let h = handler.display();
    let tier = tier.map_or(String::new(), |t| format!("tier = \"{t}\"\n"));
    let text = format!(
        r#"{tier}
[[route]]
path = "/..."
module = "{h}"
env = {{ ROUTE = "catch-all"{extra_env} }}
dirs = [{{ host = "static", guest = "/static" }}]
timeout_ms = 500
memory_mb = 16
max_body_bytes = 1024
max_response_bytes = 100000

[[route]]
path = "/api/..."
module = "{h}"
env = {{ ROUTE = "api" }}

[[route]]
path = "/exact"
module = "{h}"

[[route]]
path = "/one/..."
module = "{h}"
concurrency = 1
queue = 1
"#
    );
    let p = dir.join("carnac.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn server(name: &str) -> (Running, PathBuf) {
    let dir = workdir(name);
    let cfg = config(&dir, "");
    (start(Source::ConfigFile(cfg), "127.0.0.1:0").unwrap(), dir)
}

/// A server whose carnac.toml says `tier = "TIER"`.
fn server_on(name: &str, tier: &str) -> (Running, PathBuf) {
    let dir = workdir(&format!("{name}-{tier}"));
    let cfg = config_on(&dir, "", Some(tier));
    (start(Source::ConfigFile(cfg), "127.0.0.1:0").unwrap(), dir)
}

/// The tier `/metrics` says runs the handlers.
fn tier_in_use(a: SocketAddr) -> String {
    let metrics = get(a, "/metrics").text();
    let line = metrics.lines().find(|l| l.starts_with("carnac_tier_info{")).unwrap_or_else(|| panic!("{metrics}"));
    let tier = line.strip_prefix("carnac_tier_info{tier=\"").and_then(|l| l.strip_suffix("\"} 1"));
    tier.unwrap_or_else(|| panic!("{line}")).to_string()
}

#[test]
fn handlers_follow_the_cgi_contract() {
    for tier in TIERS {
        handlers_follow_the_cgi_contract_on(tier);
    }
}

fn handlers_follow_the_cgi_contract_on(tier: &str) {
    let (srv, _dir) = server_on("contract", tier);
    let a = srv.addr;
    assert_eq!(tier_in_use(a), tier);
    let r = get(a, "/hello");
    assert_eq!((r.status, r.text().as_str()), (200, "hello from wasm\n"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let r = request(a, "POST", "/echo", b"some body bytes");
    assert_eq!((r.status, r.text().as_str()), (200, "some body bytes"));
    let r = get(a, "/status");
    assert_eq!((r.status, r.header("x-extra")), (418, Some("yes")));
    let r = get(a, "/redirect");
    assert_eq!((r.status, r.header("location")), (302, Some("/hello")));
    let r = get(a, "/stream");
    assert_eq!(r.text(), "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    let env = get(a, "/env?x=1&y=two").text();
    for want in [
        "REQUEST_METHOD=GET",
        "PATH_INFO=/env",
        "SCRIPT_NAME=",
        "QUERY_STRING=x=1&y=two",
        "SERVER_PROTOCOL=HTTP/1.1",
        "GATEWAY_INTERFACE=CGI/1.1",
        "REMOTE_ADDR=127.0.0.1",
        "HTTP_X_CUSTOM_THING=42",
        "X_FULL_URL=http://test.local/env?x=1&y=two",
        "X_MATCHED_ROUTE=/...",
        "ROUTE=catch-all",
        "arg /env",
        "arg x=1",
        "arg y=two",
    ] {
        assert!(env.lines().any(|l| l == want), "missing `{want}` in:\n{env}");
    }
    assert!(!env.contains("HTTP_AUTHORIZATION"), "{env}");
    // Longest prefix wins; exact routes match exactly.
    let api = get(a, "/api/env").text();
    assert!(api.contains("ROUTE=api") && api.contains("SCRIPT_NAME=/api") && api.contains("PATH_INFO=/env"), "{api}");
    // The exact route runs with SCRIPT_NAME=/exact and an empty PATH_INFO (the handler says hello).
    assert_eq!(get(a, "/exact").text(), "hello from wasm\n");
    assert!(get(a, "/exact/more").text().starts_with("no such handler /exact/more"));
    // Read-only preopened directory.
    let r = get(a, "/static");
    assert_eq!(r.text(), "static content\nwrite denied: true\n");
    assert!(!_dir.join("static/new.txt").exists());
    assert_eq!(get(a, "/health").status, 200);
    srv.stop();
}

#[test]
fn failures_become_statuses_and_the_server_keeps_serving() {
    for tier in TIERS {
        failures_become_statuses_and_the_server_keeps_serving_on(tier);
    }
}

fn failures_become_statuses_and_the_server_keeps_serving_on(tier: &str) {
    let (srv, _dir) = server_on("failures", tier);
    let a = srv.addr;
    let t = Instant::now();
    assert_eq!(get(a, "/loop").status, 504, "{tier}");
    assert!(t.elapsed() < Duration::from_secs(10));
    // A guest asleep in a host call is stopped by its deadline as well.
    let t = Instant::now();
    assert_eq!(get(a, "/sleepy").status, 504, "{tier}");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(get(a, "/bomb").status, 500, "{tier}");
    assert_eq!(get(a, "/trap").status, 500, "{tier}");
    assert_eq!(get(a, "/bad").status, 500, "{tier}");
    // Unbounded recursion ends in a trap on the guest thread, not in a host
    // stack overflow that would take the server down (compiled code runs on
    // that thread's own stack).
    for _ in 0..2 {
        assert_eq!(get(a, "/recurse").status, 500, "{tier}");
    }
    assert_eq!(request(a, "POST", "/echo", &[b'z'; 4096]).status, 413);
    let r = get(a, "/big");
    assert_eq!(r.status, 200);
    assert!(r.body.len() <= 100_000 && r.body.len() > 50_000, "{}", r.body.len());
    assert_eq!(get(a, "/hello").text(), "hello from wasm\n");
    let metrics = get(a, "/metrics").text();
    for want in [
        "carnac_timeouts_total 2",
        "carnac_traps_total 4",
        "status=\"504\"",
        "status=\"413\"",
        "carnac_instantiate_seconds_count",
    ] {
        assert!(metrics.contains(want), "missing {want} in\n{metrics}");
    }
    srv.stop();
}

#[test]
fn every_request_gets_a_fresh_instance() {
    for tier in TIERS {
        let (srv, _dir) = server_on("fresh", tier);
        let a = srv.addr;
        // The handler counts its calls in a static, overwrites initialised
        // data and dirties a page it grows: none of it may reach the next
        // request, whether it runs on a recycled memory or a concurrent one.
        let first = get(a, "/isolation").text();
        assert!(first.starts_with("hits=0 data=pristine grown-page-zero=true pages="), "{tier}: {first}");
        for _ in 0..5 {
            assert_eq!(get(a, "/isolation").text(), first, "{tier}");
        }
        let handles: Vec<_> = (0..8).map(|_| std::thread::spawn(move || get(a, "/api/isolation").text())).collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), first, "{tier}");
        }
        srv.stop();
    }
}

#[test]
fn the_command_line_tier_overrides_the_file() {
    let dir = workdir("override");
    let cfg = config_on(&dir, "", Some("interp"));
    let srv = start(Source::ConfigFile(cfg.clone()), "127.0.0.1:0").unwrap();
    assert_eq!(tier_in_use(srv.addr), "interp");
    srv.stop();
    if TIERS.contains(&"cranelift") {
        let overrides = Overrides { tier: Some(carnac::Strategy::Cranelift) };
        let srv = start_with(Source::ConfigFile(cfg.clone()), "127.0.0.1:0", overrides).unwrap();
        assert_eq!(tier_in_use(srv.addr), "cranelift");
        assert_eq!(get(srv.addr, "/hello").text(), "hello from wasm\n");
        // A reload keeps the command line's tier over the file's.
        std::thread::sleep(Duration::from_millis(1100));
        config_on(&dir, ", VERSION = \"2\"", Some("interp"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !get(srv.addr, "/env").text().contains("VERSION=2") {
            assert!(Instant::now() < deadline, "config change was not picked up");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(tier_in_use(srv.addr), "cranelift");
        srv.stop();
    }
    // Without either, automatic tiering (modules compiled at load); a changed `tier` applies on reload.
    let srv = start(Source::ConfigFile(config(&dir, "")), "127.0.0.1:0").unwrap();
    assert_eq!(tier_in_use(srv.addr), "auto");
    if TIERS.contains(&"cranelift") {
        std::thread::sleep(Duration::from_millis(1100));
        config_on(&dir, "", Some("cranelift"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while tier_in_use(srv.addr) != "cranelift" {
            assert!(Instant::now() < deadline, "the tier change was not picked up");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(get(srv.addr, "/hello").text(), "hello from wasm\n");
    }
    srv.stop();
}

#[test]
fn concurrency_limit_queues_then_rejects() {
    let (srv, _dir) = server("busy");
    let a = srv.addr;
    let handles: Vec<_> = (0..6).map(|_| std::thread::spawn(move || get(a, "/one/slow").status)).collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    srv.stop();
}

#[test]
fn many_concurrent_requests_are_all_answered() {
    let (srv, _dir) = server("many");
    let a = srv.addr;
    let handles: Vec<_> = (0..48)
        .map(|i| {
            std::thread::spawn(move || {
                let body = format!("request number {i}");
                let r = request(a, "POST", "/api/echo", body.as_bytes());
                (r.status, r.text() == body)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), (200, true));
    }
    srv.stop();
}

#[test]
fn config_changes_reload_and_a_broken_deploy_keeps_the_old_version() {
    let dir = workdir("reload");
    let cfg = config(&dir, "");
    let srv = start(Source::ConfigFile(cfg.clone()), "127.0.0.1:0").unwrap();
    let a = srv.addr;
    assert!(!get(a, "/env").text().contains("VERSION=2"));
    std::thread::sleep(Duration::from_millis(1100));
    config(&dir, ", VERSION = \"2\"");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(a, "/env").text().contains("VERSION=2") {
        assert!(Instant::now() < deadline, "config change was not picked up");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A configuration whose module does not compile is refused; v2 keeps serving.
    std::thread::sleep(Duration::from_millis(1100));
    let broken = std::fs::read_to_string(&cfg).unwrap().replacen("handler.wasm", "missing.wasm", 1);
    std::fs::write(&cfg, broken).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(get(a, "/env").text().contains("VERSION=2"));
    srv.stop();
}

#[test]
fn bad_configs_are_errors() {
    let dir = workdir("bad");
    std::fs::write(dir.join("a.toml"), "[[route]]\npath = \"nope\"\nmodule = \"x.wasm\"\n").unwrap();
    assert!(start(Source::ConfigFile(dir.join("a.toml")), "127.0.0.1:0").err().unwrap().contains("must start with"));
    std::fs::write(dir.join("b.toml"), "[[route]]\npath = \"/\"\nmodule = \"missing.wasm\"\n").unwrap();
    assert!(start(Source::ConfigFile(dir.join("b.toml")), "127.0.0.1:0").is_err());
    std::fs::write(dir.join("c.toml"), "listen = 5\n").unwrap();
    assert!(start(Source::ConfigFile(dir.join("c.toml")), "127.0.0.1:0").is_err());
    std::fs::write(dir.join("d.toml"), "tier = \"jit\"\n[[route]]\npath = \"/\"\nmodule = \"x.wasm\"\n").unwrap();
    let err = start(Source::ConfigFile(dir.join("d.toml")), "127.0.0.1:0").err().unwrap();
    assert!(err.contains("unknown tier `jit` (expected `auto`, `interp` or `cranelift`)"), "{err}");
    assert!(start(Source::Module(dir.join("none.wasm")), "127.0.0.1:0").is_err());
}

#[test]
fn output_streams_while_the_guest_runs() {
    let (srv, _dir) = server("stream");
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    write!(s, "GET /api/trickle HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("first") {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before the first line");
        seen.extend_from_slice(&chunk[..n]);
    }
    let first_at = t.elapsed();
    assert!(first_at < Duration::from_millis(450), "first line took {first_at:?}: not streamed");
    s.read_to_end(&mut seen).unwrap();
    assert!(String::from_utf8_lossy(&seen).contains("second"));
    assert!(t.elapsed() >= Duration::from_millis(600));
    srv.stop();
}

#[test]
fn a_pre_initialised_route_starts_every_request_from_the_warm_state() {
    for tier in TIERS {
        let dir = workdir(&format!("init-{tier}"));
        let handler = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/handlers/warm.wat");
        let text = format!(
            r#"tier = "{tier}"
[[route]]
path = "/warm"
module = "{handler}"
init = "init"
env = {{ A = "1", B = "2" }}

[[route]]
path = "/cold"
module = "{handler}"
env = {{ A = "1", B = "2" }}
"#
        );
        std::fs::write(dir.join("carnac.toml"), text).unwrap();
        let srv = start(Source::ConfigFile(dir.join("carnac.toml")), "127.0.0.1:0").unwrap();
        let a = srv.addr;
        // Initialised at load, with the route's environment (two variables and no
        // CGI ones); each request sees none of the previous one's writes.
        let warm = get(a, "/warm").text();
        // Its answer: "ready-at-start=READY HITS ENV_COUNT SUM".
        assert!(warm.starts_with("ready-at-start=1 0 2 "), "{tier}: {warm}");
        for _ in 0..5 {
            assert_eq!(get(a, "/warm").text(), warm, "{tier}");
        }
        let handles: Vec<_> = (0..8).map(|_| std::thread::spawn(move || get(a, "/warm").text())).collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), warm, "{tier}");
        }
        // The same handler without `init` builds the same state in the request.
        let cold = get(a, "/cold").text();
        let sum = |s: &str| s.split(' ').nth(3).map(str::to_string);
        assert!(cold.starts_with("ready-at-start=0 0 "), "{tier}: {cold}");
        assert_eq!(sum(&cold), sum(&warm), "{tier}");
        srv.stop();
    }
}

#[test]
fn a_failing_init_is_a_load_error() {
    let dir = workdir("init-bad");
    let handler = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/handlers/warm.wat");
    for (init, expected) in [("nope", "exports no such function"), ("_start", "route /x: init `_start`")] {
        let text = format!("[[route]]\npath = \"/x\"\nmodule = \"{handler}\"\ninit = \"{init}\"\nfuel = 1000\n");
        std::fs::write(dir.join("carnac.toml"), text).unwrap();
        let err = start(Source::ConfigFile(dir.join("carnac.toml")), "127.0.0.1:0").err().unwrap();
        assert!(err.contains(expected), "{err}");
    }
}
