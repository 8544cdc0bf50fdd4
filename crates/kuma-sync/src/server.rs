//! The HTTP server of `kuma-sync serve`: `/metrics`, `/healthz`, `/readyz`, `/status`.
//! Optional TLS and basic auth guard `/metrics` and `/status`; the health endpoints stay
//! open because kubelet probes carry no credentials.

use std::{convert::Infallible, future::Future, io, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use crate::collectors::Exposition;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use policy_watcher::monitor::Monitor;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::TlsAcceptor;

/// What the handlers read.
pub struct App {
    pub monitor: Arc<Monitor>,
    pub exposition: Arc<Exposition>,
    /// `(username, password)`; `None` leaves every endpoint open.
    pub basic_auth: Option<(String, String)>,
}

/// A client gets this long to send a request's headers, counted from when the server is
/// ready for them: partial headers (slowloris) and keep-alive connections left idle are
/// closed after it. Prometheus reconnects for its next scrape.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);
/// A TLS handshake not finished in this time is dropped: an unanswered ClientHello must
/// not hold a socket for ever.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first pause after a failed accept, doubled on each failure in a row up to
/// [`ACCEPT_BACKOFF_MAX`]: out of file descriptors, accepting again at once only spins.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Where connections come from: a [`TcpListener`], or a test's scripted one.
pub trait Accept: Send {
    type Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Conn, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    type Conn = TcpStream;
    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        TcpListener::accept(self).await
    }
}

/// The pause after failed accepts, and what has been logged of them: one line per
/// step of the backoff, not one per error (an fd-exhausted server fails thousands of
/// accepts a second).
#[derive(Debug, Default)]
struct AcceptBackoff {
    /// The pause after the next failure; `None` after a success.
    next: Option<Duration>,
    /// The pause last logged: at the cap, the step no longer changes and is not logged.
    logged: Option<Duration>,
    failures: u64,
}

impl AcceptBackoff {
    /// Records a failure and returns how long to pause before accepting again.
    fn failed(&mut self, error: &io::Error) -> Duration {
        self.failures += 1;
        let pause = self.next.unwrap_or(ACCEPT_BACKOFF_MIN);
        if self.logged != Some(pause) {
            tracing::warn!(%error, failures = self.failures, ?pause, "accept failed; pausing before the next");
            self.logged = Some(pause);
        }
        self.next = Some((pause * 2).min(ACCEPT_BACKOFF_MAX));
        pause
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "accepting connections again");
            *self = Self::default();
        }
    }
}

/// Serves until `shutdown` completes, then stops accepting; requests in flight finish.
pub async fn run<A: Accept>(
    mut listener: A,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = AcceptBackoff::default();
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    backoff.succeeded();
                    a
                }
                Err(error) => {
                    // Out of file descriptors and the like: pause, then keep serving.
                    let pause = backoff.failed(&error);
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            },
        };
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, req)) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let result = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => http.serve_connection(TokioIo::new(s), svc).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake not finished in time");
                            return;
                        }
                    }
                }
                None => http.serve_connection(TokioIo::new(stream), svc).await,
            };
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
}

fn handle(app: &App, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if app.monitor.ready() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: waiting for the first full read of every control plane\n",
                )
            }
        }
        "/metrics" | "/status" if !authorized(app, &req) => Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(header::WWW_AUTHENTICATE, "Basic realm=\"kuma-sync\"")
            .body(Full::new(Bytes::from_static(b"unauthorized\n")))
            .expect("static response"),
        "/metrics" => metrics(&app.exposition),
        "/status" => {
            let query = match crate::status::Query::parse(req.uri().query()) {
                Ok(query) => query,
                Err(reason) => {
                    return Response::builder()
                        .status(StatusCode::BAD_REQUEST)
                        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                        .body(Full::new(Bytes::from(format!("{reason}\n"))))
                        .expect("static headers");
                }
            };
            let body = crate::status::render(&app.monitor, app.exposition.probe_zone(), &query);
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))
                .expect("static headers")
        }
        "/" => text(StatusCode::OK, "kuma-sync: /metrics /status /healthz /readyz\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn metrics(exposition: &Exposition) -> Response<Full<Bytes>> {
    let buf = match exposition.render() {
        Ok(buf) => buf,
        Err(error) => {
            tracing::error!(%error, "cannot encode metrics");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n");
        }
    };
    Response::builder()
        .header(header::CONTENT_TYPE, exposition.format_type())
        .body(Full::new(Bytes::from(buf)))
        .expect("static headers")
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("static response")
}

fn authorized(app: &App, req: &Request<Incoming>) -> bool {
    let Some((user, pass)) = &app.basic_auth else {
        return true;
    };
    let Some(value) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = basic_credentials(value) else {
        return false;
    };
    let Ok(decoded) = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded.trim())
    else {
        return false;
    };
    let expected = format!("{user}:{pass}");
    constant_time_eq(&decoded, expected.as_bytes())
}

/// The credentials of a `Basic` Authorization value. The scheme name is
/// case-insensitive (RFC 7617, 2; RFC 9110, 11.1): `basic` and `BASIC` are `Basic`.
fn basic_credentials(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("basic").then_some(credentials)
}

/// Compares without an early exit, so response times do not leak how much of a guessed
/// password was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Builds a TLS acceptor from PEM files.
pub fn tls_acceptor(cert_file: &Path, key_file: &Path) -> io::Result<TlsAcceptor> {
    let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {}: {e}", path.display()),
        )
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| bad("certificate", cert_file, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad("certificate", cert_file, &e))?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| bad("key", key_file, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS", cert_file, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("certificate and key", cert_file, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails `failures` accepts with EMFILE, then hands out `conns`, then waits for ever.
    struct Scripted {
        failures: usize,
        conns: Vec<tokio::io::DuplexStream>,
        accepts: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Accept for Scripted {
        type Conn = tokio::io::DuplexStream;
        async fn accept(&mut self) -> io::Result<(Self::Conn, SocketAddr)> {
            self.accepts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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

    fn app() -> Arc<App> {
        let registry = prometheus::Registry::new();
        let monitor = Arc::new(Monitor::new(
            policy_watcher::Engine::new(
                policy_watcher::Topology::new(kuma_model::Environment::Universal, Vec::new()),
                policy_watcher::Selection::default(),
            ),
            policy_watcher::monitor::MonitorConfig::default(),
            Box::new(policy_watcher::monitor::NoRecorder),
        ));
        let exposition = Arc::new(Exposition::new(registry, monitor.clone(), None).expect("exposition"));
        Arc::new(App {
            monitor,
            exposition,
            basic_auth: None,
        })
    }

    fn serve(script: Scripted) -> tokio::task::JoinHandle<()> {
        tokio::spawn(run(script, None, app(), std::future::pending()))
    }

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_back_off_instead_of_spinning() {
        let accepts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let server = serve(Scripted {
            failures: 10_000,
            conns: Vec::new(),
            accepts: accepts.clone(),
        });
        // 5 + 10 + ... + 640 ms is 1.275 s: eight accepts in the first second.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let first_second = accepts.load(std::sync::atomic::Ordering::SeqCst);
        assert!((7..=9).contains(&first_second), "{first_second} accepts in 1 s");
        // Then one a second, at the cap.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let later = accepts.load(std::sync::atomic::Ordering::SeqCst) - first_second;
        assert!((9..=11).contains(&later), "{later} accepts in the next 10 s");
        server.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn idle_and_half_sent_connections_are_closed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (idle, idle_server) = tokio::io::duplex(1024);
        let (mut partial, partial_server) = tokio::io::duplex(1024);
        let (mut kept, kept_server) = tokio::io::duplex(4096);
        let server = serve(Scripted {
            failures: 0,
            conns: vec![idle_server, partial_server, kept_server],
            accepts: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        });
        partial
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // A keep-alive connection that made one request and then went quiet.
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
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
    async fn an_unfinished_tls_handshake_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cert = kuma_sim::tls::generate(&["localhost"]).unwrap();
        let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert_file, cert.cert_pem).unwrap();
        std::fs::write(&key_file, cert.key_pem).unwrap();
        let acceptor = tls_acceptor(&cert_file, &key_file).unwrap();
        let (mut client, conn) = tokio::io::duplex(1024);
        let script = Scripted {
            failures: 0,
            conns: vec![conn],
            accepts: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        };
        let server = tokio::spawn(run(script, Some(acceptor), app(), std::future::pending()));
        // Connected, and never a ClientHello.
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(
            TLS_HANDSHAKE_TIMEOUT * 2,
            tokio::io::AsyncReadExt::read_to_end(&mut client, &mut rest),
        )
        .await;
        assert!(
            closed.is_ok(),
            "the handshake still waits after twice its timeout"
        );
        server.abort();
    }

    #[test]
    fn the_basic_scheme_is_case_insensitive() {
        for value in ["Basic dTpw", "basic dTpw", "BASIC dTpw"] {
            assert_eq!(basic_credentials(value), Some("dTpw"), "{value}");
        }
        assert_eq!(basic_credentials("Bearer dTpw"), None);
        assert_eq!(basic_credentials("Basicx dTpw"), None);
        assert_eq!(basic_credentials("Basic"), None);
    }

    #[test]
    fn comparison_needs_every_byte() {
        assert!(constant_time_eq(b"user:pass", b"user:pass"));
        assert!(!constant_time_eq(b"user:pasS", b"user:pass"));
        assert!(!constant_time_eq(b"user:pas", b"user:pass"));
    }
}
