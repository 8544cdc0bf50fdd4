//! The HTTP server of `kuma-sync serve`: `/metrics`, `/healthz`, `/readyz`, `/status`.
//! Optional TLS and basic auth guard `/metrics` and `/status`; the health endpoints stay
//! open because kubelet probes carry no credentials.

use std::{convert::Infallible, future::Future, io, path::Path, sync::Arc};

use crate::collectors::Exposition;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::TokioIo;
use policy_watcher::monitor::Monitor;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What the handlers read.
pub struct App {
    pub monitor: Arc<Monitor>,
    pub exposition: Arc<Exposition>,
    /// `(username, password)`; `None` leaves every endpoint open.
    pub basic_auth: Option<(String, String)>,
}

/// Serves until `shutdown` completes, then stops accepting; requests in flight finish.
pub async fn run(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    // Out of file descriptors and the like: log, and keep serving the others.
                    tracing::warn!(%error, "accept failed");
                    continue;
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
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => {
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(s), svc)
                            .await
                    }
                    Err(error) => {
                        tracing::debug!(%error, %peer, "TLS handshake failed");
                        return;
                    }
                },
                None => {
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await
                }
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
            let body = crate::status::render(&app.monitor, app.exposition.probe_zone());
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
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded.trim())
    else {
        return false;
    };
    let expected = format!("{user}:{pass}");
    constant_time_eq(&decoded, expected.as_bytes())
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
    fn comparison_needs_every_byte() {
        assert!(constant_time_eq(b"user:pass", b"user:pass"));
        assert!(!constant_time_eq(b"user:pasS", b"user:pass"));
        assert!(!constant_time_eq(b"user:pas", b"user:pass"));
    }
}
