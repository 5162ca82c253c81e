//! The one HTTP request head the proxy reads per connection: `CONNECT host:port` (a tunnel)
//! or an absolute-URI request `GET http://host[:port]/path` (plain HTTP forward). Parsing
//! is httparse's; this module decides what the request asks for and rewrites a forwarded
//! head into origin form.

use super::rules::Host;

/// Cap on the request head: nothing legitimate a client sends a proxy comes near it.
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub host: Host,
    pub port: u16,
    /// For a forward: the head to send upstream (origin form, `Connection: close`).
    pub forward: Option<Vec<u8>>,
    /// Bytes of the buffer the head used; the rest belongs to the stream.
    pub head_len: usize,
}

/// A malformed or unsupported request, answered with `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

/// Parses `buf`: Ok(None) while the head is incomplete.
pub fn parse(buf: &[u8]) -> Result<Option<Request>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(refuse(431, format!("request head over {MAX_HEAD} bytes")))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(refuse(400, format!("malformed HTTP request: {e}"))),
    };
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default();
    if method == "CONNECT" {
        let (host, port) = authority(target, None).map_err(|r| refuse(400, r))?;
        return Ok(Some(Request {
            method,
            host,
            port,
            forward: None,
            head_len,
        }));
    }
    let rest = match target.get(..7) {
        Some(s) if s.eq_ignore_ascii_case("http://") => &target[7..],
        _ if target.starts_with('/') => {
            return Err(refuse(
                400,
                "origin-form request: this is a proxy, send the absolute URI (or CONNECT)",
            ))
        }
        _ => {
            return Err(refuse(
                400,
                format!("unsupported request target {target:?}: only http:// URIs and CONNECT"),
            ))
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (auth, path) = rest.split_at(end);
    let (host, port) = authority(auth, Some(80)).map_err(|r| refuse(400, r))?;
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('/') => p.split('#').next().unwrap_or("/").to_owned(),
        p => format!("/{}", p.split('#').next().unwrap_or("")),
    };
    let mut out = format!("{method} {path} HTTP/1.{}\r\n", req.version.unwrap_or(1)).into_bytes();
    let mut upgrade = false;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if name == "connection" {
            upgrade |= String::from_utf8_lossy(h.value)
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        }
        // Hop-by-hop headers of the client-proxy leg stay here.
        if matches!(
            name.as_str(),
            "connection" | "proxy-connection" | "proxy-authorization" | "keep-alive"
        ) {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    // One request per upstream connection: a second request on it could name another host.
    out.extend_from_slice(if upgrade {
        b"Connection: upgrade\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
    Ok(Some(Request {
        method,
        host,
        port,
        forward: Some(out),
        head_len,
    }))
}

/// `host:port`, `[v6]:port`, or (with a default port) `host`.
fn authority(s: &str, default_port: Option<u16>) -> Result<(Host, u16), String> {
    if s.contains('@') {
        return Err(format!("{s:?}: credentials in the URI are not accepted"));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: unterminated '['"))?;
        match after.strip_prefix(':') {
            Some(p) => (format!("[{h}]"), Some(p)),
            None if after.is_empty() => (format!("[{h}]"), None),
            None => return Err(format!("{s:?} is not host:port")),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_owned(), Some(p)),
            Some(_) => return Err(format!("{s:?}: write an IPv6 address in brackets")),
            None => (s.to_owned(), None),
        }
    };
    let port = match (port, default_port) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{s:?}: bad port"))?,
        (None, Some(d)) => d,
        (None, None) => return Err(format!("{s:?}: CONNECT needs host:port")),
    };
    Ok((Host::parse(&host)?, port))
}

/// A complete response with a JSON body saying why, for a refused request.
pub fn error_response(status: u16, reason: &str) -> Vec<u8> {
    let text = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let body = serde_json::json!({ "error": text, "detail": reason, "by": "openshell-supervisor egress proxy" }).to_string();
    format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub const CONNECTED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Request {
        parse(s.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn connect_and_forward() {
        let r =
            ok("CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\nextra");
        assert_eq!(
            (r.host.text().as_str(), r.port, r.forward.is_none()),
            ("api.example.com", 443, true)
        );
        assert_eq!(r.head_len, 67);
        let r = ok("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n");
        assert_eq!(r.host, Host::Ip("2001:db8::1".parse().unwrap()));
        let r = ok("GET http://Example.com/a?b=1 HTTP/1.1\r\nHost: example.com\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nX: y\r\n\r\n");
        assert_eq!((r.host.text().as_str(), r.port), ("example.com", 80));
        let fwd = String::from_utf8(r.forward.unwrap()).unwrap();
        assert_eq!(
            fwd,
            "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX: y\r\nConnection: close\r\n\r\n"
        );
        let r = ok("GET http://10.0.0.1:8080 HTTP/1.0\r\n\r\n");
        assert_eq!(
            String::from_utf8(r.forward.unwrap()).unwrap(),
            "GET / HTTP/1.0\r\nConnection: close\r\n\r\n"
        );
        let r = ok("GET http://h.example.com/ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
        assert!(String::from_utf8(r.forward.unwrap())
            .unwrap()
            .ends_with("Connection: upgrade\r\n\r\n"));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse(b"CONNECT api.example.com:443 HTTP/1.1\r\n").unwrap(),
            None
        );
        for bad in [
            "CONNECT api.example.com HTTP/1.1\r\n\r\n",
            "CONNECT api.example.com:0 HTTP/1.1\r\n\r\n",
            "CONNECT api.example.com:99999 HTTP/1.1\r\n\r\n",
            "CONNECT ::1:443 HTTP/1.1\r\n\r\n",
            "CONNECT user@api.example.com:443 HTTP/1.1\r\n\r\n",
            "GET /index.html HTTP/1.1\r\n\r\n",
            "GET https://api.example.com/ HTTP/1.1\r\n\r\n",
            "GET http://a..b/ HTTP/1.1\r\n\r\n",
            "GET http://a.example.com\r\n\r\n",
            "\u{1}\u{2}\r\n\r\n",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let big = format!(
            "GET http://a.example.com/ HTTP/1.1\r\nX: {}\r\n",
            "a".repeat(MAX_HEAD)
        );
        assert_eq!(parse(big.as_bytes()).unwrap_err().status, 431);
    }
}
