//! A small HTTP(S) client for control plane APIs: one connection pool, the control plane's
//! own CA (Kuma's API server certificate is often self-signed), a bearer token, and a
//! deadline on every request.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rustls_pki_types::{CertificateDer, pem::PemObject};

use super::SourceError;

/// Answers larger than this are refused rather than buffered: a Kuma list page of 1000
/// policies is a few MiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// How to reach one control plane's API.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// PEM CA bundle to trust instead of nothing (HTTPS needs one or the other).
    pub ca_pem: Option<Vec<u8>>,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Deadline for one request, body included.
    pub timeout: Option<Duration>,
    /// Largest body accepted; [`MAX_BODY_BYTES`] when unset.
    pub max_body_bytes: Option<usize>,
}

#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    token: Option<Arc<str>>,
    timeout: Duration,
    max_body_bytes: usize,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    pub fn new(settings: HttpSettings) -> Result<Self, SourceError> {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = &settings.ca_pem {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| SourceError::TlsConfig(format!("CA bundle is not PEM: {e}")))?;
            if certs.is_empty() {
                return Err(SourceError::TlsConfig("CA bundle holds no certificate".into()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| SourceError::TlsConfig(format!("CA certificate rejected: {e}")))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SourceError::TlsConfig(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            token: settings.token.map(Arc::from),
            timeout: settings.timeout.unwrap_or(Duration::from_secs(10)),
            max_body_bytes: settings.max_body_bytes.unwrap_or(MAX_BODY_BYTES),
        })
    }

    /// GETs `url` and returns the body of a 2xx answer.
    pub async fn get(&self, url: &str) -> Result<Bytes, SourceError> {
        self.send(http::Method::GET, url, None).await
    }

    /// PUTs the JSON `body` at `url` (the one write kuma-sync makes: the canary, when
    /// turned on) and returns the body of a 2xx answer.
    pub async fn put_json(&self, url: &str, body: Vec<u8>) -> Result<Bytes, SourceError> {
        self.send(http::Method::PUT, url, Some(Bytes::from(body))).await
    }

    async fn send(&self, method: http::Method, url: &str, body: Option<Bytes>) -> Result<Bytes, SourceError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| SourceError::Config(format!("invalid URL {url:?}: {e}")))?;
        let mut req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::ACCEPT, "application/json");
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| SourceError::Config(format!("{url}: {e}")))?;
        let seconds = self.timeout.as_secs();
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| SourceError::Unreachable {
                    url: url.to_owned(),
                    reason: error_chain(&e),
                })?;
            let status = resp.status();
            let body = http_body_util::Limited::new(resp.into_body(), self.max_body_bytes)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        SourceError::TooLarge {
                            url: url.to_owned(),
                            reason: format!("the answer is over {} bytes", self.max_body_bytes),
                        }
                    } else {
                        SourceError::Unreachable {
                            url: url.to_owned(),
                            reason: error_chain(&*e),
                        }
                    }
                })?
                .to_bytes();
            if !status.is_success() {
                let text = String::from_utf8_lossy(&body[..body.len().min(512)])
                    .trim()
                    .to_owned();
                return Err(SourceError::Status {
                    url: url.to_owned(),
                    status: status.as_u16(),
                    body: text,
                });
            }
            Ok(body)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| SourceError::Timeout {
                url: url.to_owned(),
                seconds,
            })?
    }
}

/// hyper's errors say little at the top ("client error (Connect)"); the cause says why.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        parts.push(c.to_string());
        cur = c.source();
    }
    parts.dedup();
    parts.join(": ")
}
