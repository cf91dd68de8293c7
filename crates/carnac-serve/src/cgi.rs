//! The handler contract: CGI/1.1 over WASI preview1, compatible with WAGI.
//!
//! In: CGI variables and `HTTP_*` headers in the environment, argv = the path
//! then each `&`-separated query item, the request body on stdin.
//! Out: header lines on stdout, a blank line, then the body. `Status: NNN`
//! sets the status; `Location:` alone means a 302 redirect.

use std::collections::BTreeMap;

/// The request facts the CGI environment is built from.
pub struct CgiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub route: &'a str,
    pub script_name: &'a str,
    pub headers: Vec<(String, String)>,
    pub content_length: u64,
    pub server_name: &'a str,
    pub server_port: u16,
    pub remote_addr: &'a str,
    pub protocol: &'a str,
}

/// The guest's environment for one request as `NAME=value` entries (route env
/// first, CGI last wins): one allocation per variable, in the form WASI hands
/// to the guest.
pub fn environment(req: &CgiRequest<'_>, route_env: &BTreeMap<String, String>) -> Vec<String> {
    use std::fmt::Write;
    let mut env: Vec<String> = Vec::with_capacity(route_env.len() + 17 + req.headers.len());
    let mut push = |k: &str, v: &str| {
        let mut s = String::with_capacity(k.len() + 1 + v.len());
        s.push_str(k);
        s.push('=');
        s.push_str(v);
        env.push(s);
    };
    for (k, v) in route_env {
        push(k, v);
    }
    let path_info = req.path.strip_prefix(req.script_name).unwrap_or(req.path);
    let content_type =
        req.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map_or("", |(_, v)| v.as_str());
    let host_header = req.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("host")).map(|(_, v)| v.as_str());
    let (port, length) = (req.server_port.to_string(), req.content_length.to_string());
    for (k, v) in [
        ("REQUEST_METHOD", req.method),
        ("SCRIPT_NAME", req.script_name),
        ("PATH_INFO", path_info),
        ("PATH_TRANSLATED", path_info),
        ("QUERY_STRING", req.query),
        ("CONTENT_TYPE", content_type),
        ("CONTENT_LENGTH", &length),
        ("SERVER_NAME", req.server_name),
        ("SERVER_PORT", &port),
        ("SERVER_PROTOCOL", req.protocol),
        ("SERVER_SOFTWARE", "carnac"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("REMOTE_ADDR", req.remote_addr),
        ("REMOTE_HOST", req.remote_addr),
        ("X_MATCHED_ROUTE", req.route),
        ("X_RAW_PATH_INFO", path_info),
    ] {
        push(k, v);
    }
    let mut full_url = String::from("X_FULL_URL=http://");
    match host_header {
        Some(h) => full_url.push_str(h),
        None => {
            let _ = write!(full_url, "{}:{}", req.server_name, req.server_port);
        }
    }
    full_url.push_str(req.path);
    if !req.query.is_empty() {
        full_url.push('?');
        full_url.push_str(req.query);
    }
    env.push(full_url);
    for (name, value) in &req.headers {
        // Credentials stay with the host; `Proxy:` would become HTTP_PROXY, which
        // HTTP clients take as their proxy setting (httpoxy). A name with `_`
        // would collide with another's variable (`X_Forwarded_For` spoofing
        // `X-Forwarded-For`, `Path_Info` → HTTP_PATH_INFO): dropped, as nginx
        // and Apache do for CGI.
        if ["authorization", "connection", "proxy"].iter().any(|h| name.eq_ignore_ascii_case(h)) || name.contains('_') {
            continue;
        }
        let mut s = String::with_capacity(5 + name.len() + 1 + value.len());
        s.push_str("HTTP_");
        s.extend(name.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() }));
        s.push('=');
        s.push_str(value);
        env.push(s);
    }
    env
}

/// argv: the path, then each `&`-separated query item.
pub fn argv(req: &CgiRequest<'_>) -> Vec<String> {
    let mut v = vec![req.path.to_string()];
    if !req.query.is_empty() {
        v.extend(req.query.split('&').map(str::to_string));
    }
    v
}

/// The response head the guest printed.
#[derive(Debug, PartialEq, Eq)]
pub struct CgiHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

/// Finds the end of the header block: returns (head length, body start).
pub fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    for i in 0..buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
    }
    None
}

/// Headers that describe one connection's framing, not the response: the host
/// alone decides them (a handler's `Content-Length: 0` followed by a whole
/// response would otherwise be read by a pipelining client as the answer to
/// its next request). Handlers' copies are dropped.
pub const HOST_OWNED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether a handler may set header `name` (see [`HOST_OWNED_HEADERS`]).
pub fn handler_may_set(name: &str) -> bool {
    !HOST_OWNED_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// The most header lines a handler may print (hyper's own limit for a request
/// is 100; a response map holds at most 32,768 names).
pub const MAX_HEADERS: usize = 1000;

/// Parses the guest's header block. Statuses outside 200-599 are refused:
/// 1xx are interim responses the handler cannot follow up (a `101` would leave
/// the client waiting on a protocol switch that never happens). A status is
/// three digits, given once.
pub fn parse_head(head: &[u8]) -> Result<CgiHead, String> {
    let text = std::str::from_utf8(head).map_err(|_| "response headers are not UTF-8".to_string())?;
    if text.lines().count() > MAX_HEADERS {
        return Err(format!("more than {MAX_HEADERS} header lines"));
    }
    let mut status = None;
    let mut headers = Vec::new();
    let mut location = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| format!("malformed header line `{line}`"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(format!("malformed header name `{name}`"));
        }
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("");
            let valid = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
            let code: u16 = code
                .parse()
                .ok()
                .filter(|c| valid && (200..=599).contains(c))
                .ok_or_else(|| format!("malformed status `{value}`"))?;
            if status.replace(code).is_some() {
                return Err("more than one Status line".to_string());
            }
        } else {
            if name.eq_ignore_ascii_case("location") {
                location = true;
            }
            headers.push((name.to_string(), value.to_string()));
        }
    }
    let status = status.unwrap_or(if location { 302 } else { 200 });
    Ok(CgiHead { status, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parsing() {
        let h = parse_head(b"Content-Type: text/plain\nStatus: 404 Not Found").unwrap();
        assert_eq!(h.status, 404);
        assert_eq!(h.headers, vec![("Content-Type".to_string(), "text/plain".to_string())]);
        assert_eq!(parse_head(b"Location: /elsewhere").unwrap().status, 302);
        assert!(parse_head(b"no colon here").is_err());
        assert!(parse_head(b"Status: abc").is_err());
        assert!(parse_head(b"Status: 101 Switching Protocols").is_err());
        assert!(parse_head(b"Status: 100").is_err());
        assert!(parse_head(b"Status: 600").is_err());
        assert!(parse_head(b"Status: +200").is_err());
        assert!(parse_head(b"Status: 0200").is_err());
        assert!(parse_head(b"Status: 200abc").is_err());
        assert!(parse_head(b"Status: 200\nStatus: 404").is_err());
        assert_eq!(parse_head(b"Status: 404 Not Found").unwrap().status, 404);
        assert!(parse_head("X: y\n".repeat(MAX_HEADERS + 1).as_bytes()).is_err());
        assert!(!handler_may_set("Content-Length") && !handler_may_set("transfer-encoding"));
        assert!(handler_may_set("Content-Type"));
        assert_eq!(find_head_end(b"A: b\n\nbody"), Some((4, 6)));
        assert_eq!(find_head_end(b"A: b\r\n\r\nbody"), Some((5, 8)));
        assert_eq!(find_head_end(b"A: b\n"), None);
    }

    #[test]
    fn environment_and_argv() {
        let req = CgiRequest {
            method: "POST",
            path: "/api/items/7",
            query: "a=1&b=2",
            route: "/api/...",
            script_name: "/api",
            headers: vec![
                ("Content-Type".into(), "text/plain".into()),
                ("Authorization".into(), "secret".into()),
                ("X-Trace-Id".into(), "abc".into()),
                ("Host".into(), "example.test".into()),
                ("Proxy".into(), "http://evil.test:1".into()),
                ("X-Forwarded-For".into(), "good".into()),
                ("X_Forwarded_For".into(), "evil".into()),
                ("Path_Info".into(), "/spoofed".into()),
            ],
            content_length: 5,
            server_name: "127.0.0.1",
            server_port: 8080,
            remote_addr: "127.0.0.1",
            protocol: "HTTP/1.1",
        };
        let env: BTreeMap<String, String> = environment(&req, &BTreeMap::new())
            .into_iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        assert_eq!(env["PATH_INFO"], "/items/7");
        assert_eq!(env["SCRIPT_NAME"], "/api");
        assert_eq!(env["HTTP_X_TRACE_ID"], "abc");
        assert_eq!(env["X_FULL_URL"], "http://example.test/api/items/7?a=1&b=2");
        assert!(!env.contains_key("HTTP_AUTHORIZATION"));
        assert!(!env.contains_key("HTTP_PROXY"));
        assert_eq!(env["HTTP_X_FORWARDED_FOR"], "good");
        assert!(!env.contains_key("HTTP_PATH_INFO"));
        assert_eq!(argv(&req), ["/api/items/7", "a=1", "b=2"]);
    }
}
