//! The HTTP server of `kuma-sync serve`: `/metrics`, `/healthz`, `/readyz`, `/status`.
//! Optional TLS and basic auth guard `/metrics` and `/status`; the health endpoints stay
//! open because kubelet probes carry no credentials.

use std::{future::Future, io, path::Path, sync::Arc, time::Duration};

use crate::collectors::Exposition;
use bytes::Bytes;
use http_body_util::Full;
use http_serve::{Accept, Server};
use hyper::{Request, Response, StatusCode, body::Incoming, header};
use policy_watcher::monitor::Monitor;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
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

/// Serves until `shutdown` completes, then stops accepting; requests in flight finish
/// (within the drain timeout of [`http_serve`]) before this returns.
pub async fn run<A: Accept>(
    listener: A,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) {
    let handler = move |req| {
        let app = app.clone();
        async move { handle(&app, req) }
    };
    Server::new("metrics", listener)
        .with_tls(tls)
        .with_header_read_timeout(HEADER_READ_TIMEOUT)
        .serve(handler, shutdown)
        .await;
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
