//! A minimal blocking HTTP/1.1 client for the loopback APIs of Prometheus and
//! Alertmanager: one request per connection, every socket operation under a timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::{Error, Result};

/// Responses larger than this are refused; API answers in tests are far smaller.
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

pub fn get(addr: SocketAddr, target: &str, timeout: Duration) -> Result<HttpResponse> {
    exchange(addr, "GET", target, None, timeout)
}

/// POSTs `body` with the given content type.
pub fn post(
    addr: SocketAddr,
    target: &str,
    content_type: &str,
    body: &str,
    timeout: Duration,
) -> Result<HttpResponse> {
    exchange(addr, "POST", target, Some((content_type, body)), timeout)
}

/// Percent-encodes one query component (RFC 3986 unreserved characters pass).
pub fn encode_component(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 3);
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn exchange(
    addr: SocketAddr,
    method: &'static str,
    target: &str,
    body: Option<(&str, &str)>,
    timeout: Duration,
) -> Result<HttpResponse> {
    let fail = |reason: String| Error::Http {
        method,
        target: target.to_owned(),
        reason,
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail(format!("connect {addr}: {e}")))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| fail(e.to_string()))?;
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some((content_type, body)) = body {
        request.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    stream
        .write_all(request.as_bytes())
        .map_err(|e| fail(format!("send: {e}")))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(|e| fail(format!("receive: {e}")))?;
    parse_response(&raw).map_err(fail)
}

fn parse_response(raw: &[u8]) -> std::result::Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers in the response")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let chunked = lines.any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    let payload = &raw[split + 4..];
    let body = if chunked {
        dechunk(payload)?
    } else {
        payload.to_vec()
    };
    let body = String::from_utf8(body).map_err(|_| "body is not UTF-8")?;
    Ok(HttpResponse { status, body })
}

fn dechunk(mut payload: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    // Each round consumes one chunk, so the payload length bounds the loop.
    loop {
        let eol = payload
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&payload[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        payload = &payload[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        if payload.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        body.extend_from_slice(&payload[..size]);
        payload = &payload[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_chunked_bodies() {
        let raw =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
        let response = parse_response(raw).expect("valid response");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "Wikipedia");
    }

    #[test]
    fn keeps_plain_bodies_and_rejects_garbage() {
        let response = parse_response(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno")
            .expect("valid response");
        assert_eq!((response.status, response.body.as_str()), (503, "no"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
    }

    #[test]
    fn encodes_promql_for_a_query_string() {
        assert_eq!(
            encode_component(r#"sum by (le) (rate(x{a="b"}[5m]))"#),
            "sum%20by%20%28le%29%20%28rate%28x%7Ba%3D%22b%22%7D%5B5m%5D%29%29"
        );
    }
}
