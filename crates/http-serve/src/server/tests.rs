use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http_body_util::Full;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, DuplexStream},
    sync::Notify,
};

use super::*;

/// Fails `failures` accepts with EMFILE, then hands out `conns`, then waits for ever.
struct Scripted {
    failures: usize,
    conns: Vec<DuplexStream>,
    accepts: Arc<AtomicUsize>,
}

impl Scripted {
    fn conns(conns: Vec<DuplexStream>) -> Self {
        Self {
            failures: 0,
            conns,
            accepts: Arc::default(),
        }
    }
}

impl Accept for Scripted {
    type Conn = DuplexStream;
    async fn accept(&mut self) -> io::Result<(Self::Conn, SocketAddr)> {
        self.accepts.fetch_add(1, Ordering::SeqCst);
        if self.failures > 0 {
            self.failures -= 1;
            return Err(io::Error::from_raw_os_error(24)); // EMFILE
        }
        match self.conns.pop() {
            Some(c) => Ok((c, "127.0.0.1:1".parse().expect("addr"))),
            None => std::future::pending().await,
        }
    }
}

async fn ok(_: Request<Incoming>) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from_static(b"ok")))
}

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);
/// One whole request.
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test(start_paused = true)]
async fn failed_accepts_back_off_instead_of_spinning() {
    let accepts = Arc::new(AtomicUsize::new(0));
    let script = Scripted {
        failures: 10_000,
        conns: Vec::new(),
        accepts: accepts.clone(),
    };
    let server = tokio::spawn(Server::new("test", script).serve(ok, std::future::pending()));
    // 5 + 10 + ... + 640 ms is 1.275 s: eight accepts in the first second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first_second = accepts.load(Ordering::SeqCst);
    assert!((7..=9).contains(&first_second), "{first_second} accepts in 1 s");
    // Then one a second, at the cap.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let later = accepts.load(Ordering::SeqCst) - first_second;
    assert!((9..=11).contains(&later), "{later} accepts in the next 10 s");
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn idle_and_half_sent_connections_are_closed() {
    let (idle, idle_server) = tokio::io::duplex(1024);
    let (mut partial, partial_server) = tokio::io::duplex(1024);
    let (mut kept, kept_server) = tokio::io::duplex(4096);
    let script = Scripted::conns(vec![idle_server, partial_server, kept_server]);
    let server = Server::new("test", script).with_header_read_timeout(HEADER_READ_TIMEOUT);
    let server = tokio::spawn(server.serve(ok, std::future::pending()));
    partial.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // A keep-alive connection that made one request and then went quiet.
    kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    for (what, mut conn) in [("idle", idle), ("partial headers", partial), ("kept alive", kept)] {
        let started = tokio::time::Instant::now();
        let mut rest = Vec::new();
        tokio::time::timeout(HEADER_READ_TIMEOUT * 2, conn.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("{what}: still open after twice the timeout"))
            .ok();
        assert!(
            started.elapsed() <= HEADER_READ_TIMEOUT + Duration::from_secs(1),
            "{what}"
        );
    }
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn without_a_header_timeout_an_idle_connection_stays_open() {
    let (mut idle, idle_server) = tokio::io::duplex(1024);
    let server = tokio::spawn(
        Server::new("test", Scripted::conns(vec![idle_server])).serve(ok, std::future::pending()),
    );
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(HEADER_READ_TIMEOUT * 10, idle.read(&mut buf)).await;
    assert!(read.is_err(), "closed: {read:?}");
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn an_unfinished_tls_handshake_is_dropped() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let (mut client, conn) = tokio::io::duplex(1024);
    let server =
        Server::new("test", Scripted::conns(vec![conn])).with_tls(Some(TlsAcceptor::from(Arc::new(config))));
    let server = tokio::spawn(server.serve(ok, std::future::pending()));
    // Connected, and never a ClientHello.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT * 2, client.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the handshake still waits after twice its timeout"
    );
    server.abort();
}

type Answer = std::pin::Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;

/// A handler that announces each request and answers only when released.
#[derive(Clone, Default)]
struct Gate {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

impl Gate {
    fn handler(&self) -> impl Fn(Request<Incoming>) -> Answer + Clone + Send + Sync + 'static {
        let gate = self.clone();
        move |_req| {
            let gate = gate.clone();
            Box::pin(async move {
                gate.entered.notify_one();
                gate.release.notified().await;
                Response::new(Full::new(Bytes::from_static(b"late")))
            })
        }
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_request_in_flight_finish_and_then_returns() {
    let (mut client, conn) = tokio::io::duplex(4096);
    let gate = Gate::default();
    let stop = CancellationToken::new();
    let mut server = tokio::spawn(
        Server::new("test", Scripted::conns(vec![conn]))
            .serve(gate.handler(), stop.clone().cancelled_owned()),
    );
    client.write_all(GET).await.unwrap();
    gate.entered.notified().await;
    stop.cancel();
    // Still draining: the request has not been answered.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut server)
            .await
            .is_err()
    );
    gate.release.notify_one();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(1), client.read_to_end(&mut response))
        .await
        .expect("the connection closes after its answer")
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("late"), "{response}");
    let drained = tokio::time::timeout(Duration::from_secs(1), server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(drained, Drained { finished: 1, cut: 0 });
}

#[tokio::test(start_paused = true)]
async fn idle_connections_close_at_once_on_shutdown() {
    let (mut client, conn) = tokio::io::duplex(4096);
    let stop = CancellationToken::new();
    let server = tokio::spawn(
        Server::new("test", Scripted::conns(vec![conn])).serve(ok, stop.clone().cancelled_owned()),
    );
    client.write_all(GET).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = client.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let started = tokio::time::Instant::now();
    stop.cancel();
    let drained = tokio::time::timeout(DEFAULT_DRAIN_TIMEOUT * 2, server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(drained, Drained { finished: 1, cut: 0 });
    assert!(
        started.elapsed() < DEFAULT_DRAIN_TIMEOUT,
        "waited for the drain timeout"
    );
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_request_that_never_finishes_is_cut_at_the_drain_timeout() {
    let (mut client, conn) = tokio::io::duplex(4096);
    let gate = Gate::default();
    let stop = CancellationToken::new();
    let drain = Duration::from_secs(3);
    let server = tokio::spawn(
        Server::new("test", Scripted::conns(vec![conn]))
            .with_drain_timeout(drain)
            .serve(gate.handler(), stop.clone().cancelled_owned()),
    );
    client.write_all(GET).await.unwrap();
    gate.entered.notified().await;
    let started = tokio::time::Instant::now();
    stop.cancel();
    let drained = tokio::time::timeout(drain * 2, server).await.unwrap().unwrap();
    assert_eq!(drained, Drained { finished: 0, cut: 1 });
    assert!(started.elapsed() >= drain);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(
        rest.is_empty(),
        "cut before an answer: {:?}",
        String::from_utf8_lossy(&rest)
    );
}
