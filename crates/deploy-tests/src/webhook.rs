//! A loopback HTTP endpoint that receives Alertmanager webhook notifications.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
    mpsc,
};
use std::time::Duration;

use serde_json::Value;

use crate::{Error, Result};

/// A notification is a few KiB; anything larger is not Alertmanager talking.
const MAX_REQUEST: usize = 4 * 1024 * 1024;

/// Listens on `127.0.0.1:<free port>`; point a `webhook_configs` URL at [`Self::url`].
/// A thread of its own accepts and answers each call as it comes, so a test waits on the
/// notifications themselves (a channel), not on a polling loop.
#[derive(Debug)]
pub struct WebhookReceiver {
    addr: SocketAddr,
    /// Behind a lock so that the receiver can be shared with a waiting thread.
    notifications: Mutex<mpsc::Receiver<Result<Value>>>,
    /// Set on drop, before the accept thread is woken to see it.
    closing: Arc<AtomicBool>,
}

impl WebhookReceiver {
    pub fn bind() -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("bind the webhook receiver", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("read the webhook address", e))?;
        let (tx, notifications) = mpsc::channel();
        let closing = Arc::new(AtomicBool::new(false));
        let stop = closing.clone();
        std::thread::Builder::new()
            .name("webhook-receiver".into())
            .spawn(move || accept_calls(&listener, &tx, &stop))
            .map_err(|e| Error::io("start the webhook receiver", e))?;
        Ok(Self {
            addr,
            notifications: Mutex::new(notifications),
            closing,
        })
    }

    /// `http://127.0.0.1:<port>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Waits at most `within` for the next notification (answered 200 on arrival) and
    /// returns its JSON body (`receiver`, `status`, `groupLabels`, `alerts`, ...).
    pub fn receive(&self, within: Duration) -> Result<Value> {
        let notifications = self.notifications.lock().unwrap_or_else(|p| p.into_inner());
        match notifications.recv_timeout(within) {
            Ok(notification) => notification,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::NotReady {
                server: "webhook receiver (no notification)",
                after: within,
                log: String::new(),
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::io(
                "accept a webhook call",
                std::io::Error::other("the receiver's accept thread ended"),
            )),
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        // Wakes the blocked accept, which then sees `closing` and ends the thread.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Answers every call until the receiver is dropped; an accept error ends the thread
/// after reporting it.
fn accept_calls(listener: &TcpListener, tx: &mpsc::Sender<Result<Value>>, closing: &AtomicBool) {
    loop {
        let accepted = listener.accept();
        if closing.load(Ordering::SeqCst) {
            return;
        }
        let sent = match accepted {
            Ok((stream, _)) => tx.send(answer(stream)),
            Err(e) => {
                let _ = tx.send(Err(Error::io("accept a webhook call", e)));
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

fn answer(mut stream: TcpStream) -> Result<Value> {
    let fail = |reason: String| Error::Http {
        method: "POST",
        target: "webhook".into(),
        reason,
    };
    // A caller that stops mid-request must not hold the receiver's only thread for ever.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn post(addr: SocketAddr, body: &str) -> String {
        let mut stream = TcpStream::connect(addr).expect("connect");
        write!(
            stream,
            "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read the answer");
        answer
    }

    #[test]
    fn notifications_arrive_in_order_each_answered_200() {
        let webhook = WebhookReceiver::bind().expect("bind");
        for n in 0..3 {
            let answer = post(webhook.addr, &format!(r#"{{"status":"firing","n":{n}}}"#));
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
        for n in 0..3 {
            let notification = webhook.receive(Duration::from_secs(10)).expect("a notification");
            assert_eq!(notification["n"], n);
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_an_error_and_the_next_call_still_arrives() {
        let webhook = WebhookReceiver::bind().expect("bind");
        post(webhook.addr, "not json");
        post(webhook.addr, r#"{"status":"resolved"}"#);
        assert!(matches!(
            webhook.receive(Duration::from_secs(10)),
            Err(Error::Decode { .. })
        ));
        let next = webhook.receive(Duration::from_secs(10)).expect("the next one");
        assert_eq!(next["status"], "resolved");
    }

    #[test]
    fn no_notification_within_the_bound_is_not_ready() {
        let webhook = WebhookReceiver::bind().expect("bind");
        let waited = webhook.receive(Duration::from_millis(50));
        assert!(matches!(waited, Err(Error::NotReady { .. })), "{waited:?}");
    }
}
