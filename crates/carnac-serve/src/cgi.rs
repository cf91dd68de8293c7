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

/// The guest's environment for one request (route env first, CGI last wins).
pub fn environment(req: &CgiRequest<'_>, route_env: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = route_env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let path_info = req.path.strip_prefix(req.script_name).unwrap_or(req.path);
    let content_type = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let host = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| format!("{}:{}", req.server_name, req.server_port));
    let full_url = if req.query.is_empty() {
        format!("http://{host}{}", req.path)
    } else {
        format!("http://{host}{}?{}", req.path, req.query)
    };
    for (k, v) in [
        ("REQUEST_METHOD", req.method.to_string()),
        ("SCRIPT_NAME", req.script_name.to_string()),
        ("PATH_INFO", path_info.to_string()),
        ("PATH_TRANSLATED", path_info.to_string()),
        ("QUERY_STRING", req.query.to_string()),
        ("CONTENT_TYPE", content_type),
        ("CONTENT_LENGTH", req.content_length.to_string()),
        ("SERVER_NAME", req.server_name.to_string()),
        ("SERVER_PORT", req.server_port.to_string()),
        ("SERVER_PROTOCOL", req.protocol.to_string()),
        ("SERVER_SOFTWARE", "carnac".to_string()),
        ("GATEWAY_INTERFACE", "CGI/1.1".to_string()),
        ("REMOTE_ADDR", req.remote_addr.to_string()),
        ("REMOTE_HOST", req.remote_addr.to_string()),
        ("X_FULL_URL", full_url),
        ("X_MATCHED_ROUTE", req.route.to_string()),
        ("X_RAW_PATH_INFO", path_info.to_string()),
    ] {
        env.push((k.to_string(), v));
    }
    for (name, value) in &req.headers {
        let lower = name.to_ascii_lowercase();
        if lower == "authorization" || lower == "connection" {
            continue;
        }
        let key = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
        env.push((key, value.clone()));
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

/// Parses the guest's header block.
pub fn parse_head(head: &[u8]) -> Result<CgiHead, String> {
    let text = std::str::from_utf8(head).map_err(|_| "response headers are not UTF-8".to_string())?;
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
            let code: u16 = code.parse().map_err(|_| format!("malformed status `{value}`"))?;
            if !(100..=999).contains(&code) {
                return Err(format!("malformed status `{value}`"));
            }
            status = Some(code);
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
            ],
            content_length: 5,
            server_name: "127.0.0.1",
            server_port: 8080,
            remote_addr: "127.0.0.1",
            protocol: "HTTP/1.1",
        };
        let env: BTreeMap<String, String> = environment(&req, &BTreeMap::new()).into_iter().collect();
        assert_eq!(env["PATH_INFO"], "/items/7");
        assert_eq!(env["SCRIPT_NAME"], "/api");
        assert_eq!(env["HTTP_X_TRACE_ID"], "abc");
        assert_eq!(env["X_FULL_URL"], "http://example.test/api/items/7?a=1&b=2");
        assert!(!env.contains_key("HTTP_AUTHORIZATION"));
        assert_eq!(argv(&req), ["/api/items/7", "a=1", "b=2"]);
    }
}
