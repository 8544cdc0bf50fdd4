//! A loopback HTTP endpoint that receives Alertmanager webhook notifications.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::{Error, Result};

const ACCEPT_POLL: Duration = Duration::from_millis(50);
/// A notification is a few KiB; anything larger is not Alertmanager talking.
const MAX_REQUEST: usize = 4 * 1024 * 1024;

/// Listens on `127.0.0.1:<free port>`; point a `webhook_configs` URL at [`Self::url`].
#[derive(Debug)]
pub struct WebhookReceiver {
    listener: TcpListener,
    addr: SocketAddr,
}

impl WebhookReceiver {
    pub fn bind() -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("bind the webhook receiver", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("make the webhook listener non-blocking", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("read the webhook address", e))?;
        Ok(Self { listener, addr })
    }

    /// `http://127.0.0.1:<port>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Waits at most `within` for the next notification, answers 200 and returns its
    /// JSON body (`receiver`, `status`, `groupLabels`, `alerts`, ...).
    pub fn receive(&self, within: Duration) -> Result<Value> {
        let rounds = within.as_millis() / ACCEPT_POLL.as_millis() + 1;
        for _ in 0..rounds {
            match self.listener.accept() {
                Ok((stream, _)) => return answer(stream),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
                Err(e) => return Err(Error::io("accept a webhook call", e)),
            }
        }
        Err(Error::NotReady {
            server: "webhook receiver (no notification)",
            after: within,
            log: String::new(),
        })
    }
}

fn answer(mut stream: TcpStream) -> Result<Value> {
    let fail = |reason: String| Error::Http {
        method: "POST",
        target: "webhook".into(),
        reason,
    };
    stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(Duration::from_secs(10))))
        .map_err(|e| fail(e.to_string()))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    // Ends when the declared body is in, the peer closes, or the size cap is hit.
    let body = loop {
        let n = stream.read(&mut buf).map_err(|e| fail(format!("read: {e}")))?;
        if n == 0 {
            return Err(fail("connection closed before the body was complete".into()));
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > MAX_REQUEST {
            return Err(fail("request too large".into()));
        }
        let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse()))
            .ok_or_else(|| fail("no content-length".into()))?
            .map_err(|_| fail("bad content-length".into()))?;
        if raw.len() >= split + 4 + length {
            break raw[split + 4..split + 4 + length].to_vec();
        }
    };
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .map_err(|e| fail(format!("answer: {e}")))?;
    serde_json::from_slice(&body).map_err(|source| Error::Decode {
        target: "webhook notification".into(),
        source,
    })
}
