//! The gRPC channel to the global: TCP, then TLS with this crate's verifier
//! ([`crate::tls`]), and the KDS client over it with Kuma's message size limit.
//!
//! tonic's `ClientTlsConfig` cannot take a custom certificate verifier, so the channel is
//! built with `Endpoint::connect_with_connector` and a connector that does the handshake
//! itself. The endpoint URI stays `http://` so tonic adds no TLS layer of its own.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{TlsConnector, client::TlsStream};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::{
    address::KdsAddress,
    error::{ConnectFailure, Error, Result},
    kds_sync_service_client::KdsSyncServiceClient,
};

/// Kuma's limit on KDS messages in both directions (`KUMA_MULTIZONE_*_KDS_MAX_MSG_SIZE`,
/// kuma-semantics 2.5); tonic's default is 4 MiB.
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

/// HTTP/2 keepalive ping interval. The global closes connections that ping more often
/// than every 15 s (enforcement MinTime, kuma-semantics 2.5), so stay well above it.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How the connector reaches the global; cloned into every connection attempt.
#[derive(Clone)]
pub struct Connector {
    address: KdsAddress,
    /// `None` for `grpc://`.
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Connector {
    /// Fails only when TLS is on and the host cannot be checked against a certificate.
    pub fn new(address: KdsAddress, tls: Option<Arc<ClientConfig>>) -> Result<Self> {
        let tls = match tls {
            None => None,
            Some(config) => {
                let name =
                    ServerName::try_from(address.host.clone()).map_err(|e| Error::CertificateRejected {
                        address: address.authority(),
                        reason: format!("{:?} cannot be checked against a certificate: {e}", address.host),
                    })?;
                Some((TlsConnector::from(config), name))
            }
        };
        Ok(Self { address, tls })
    }

    async fn connect(self) -> std::result::Result<TokioIo<KdsIo>, ConnectFailure> {
        let address = self.address.authority();
        let tcp = TcpStream::connect(&address)
            .await
            .map_err(|source| ConnectFailure::Tcp {
                address: address.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let Some((connector, name)) = self.tls else {
            return Ok(TokioIo::new(KdsIo::Plain(tcp)));
        };
        match connector.connect(name, tcp).await {
            Ok(tls) => Ok(TokioIo::new(KdsIo::Tls(Box::new(tls)))),
            Err(source) => Err(classify_handshake(address, source)),
        }
    }

    /// Opens a channel; connection errors come back classified.
    pub async fn channel(&self, connect_timeout: Duration) -> Result<Channel> {
        let authority = self.address.authority();
        let endpoint = Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| Error::Connect {
                address: authority.clone(),
                source: io::Error::other(e),
            })?
            .connect_timeout(connect_timeout)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        let connector = self.clone();
        let service = tower::service_fn(move |_: Uri| connector.clone().connect());
        endpoint
            .connect_with_connector(service)
            .await
            .map_err(|e| Error::from_transport(&authority, e))
    }
}

/// The KDS client on `channel`, with [`MAX_MESSAGE_SIZE`] both ways. Compression is the
/// caller's choice.
pub fn sync_client(channel: Channel) -> KdsSyncServiceClient<Channel> {
    KdsSyncServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE)
}

/// A certificate the verifier refused is fatal; anything else (EOF, reset) is not.
fn classify_handshake(address: String, source: io::Error) -> ConnectFailure {
    match source.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(reason)) => ConnectFailure::Certificate {
            address,
            reason: describe_certificate_error(reason),
        },
        _ => ConnectFailure::Handshake { address, source },
    }
}

/// What an operator should fix, in words, with rustls' name for it in brackets (the name
/// is what a search of rustls' and Kuma's issues finds).
fn describe_certificate_error(reason: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    let words = match reason {
        E::UnknownIssuer => "not signed by any certificate in the CA file",
        E::Expired | E::ExpiredContext { .. } => "expired",
        E::NotValidYet | E::NotValidYetContext { .. } => "not valid yet (check this machine's clock)",
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "not issued for the host name in the address"
        }
        E::BadEncoding => "not a well-formed certificate",
        _ => return format!("{reason:?}"),
    };
    let name = format!("{reason:?}");
    let name = name.split([' ', '{', '(']).next().unwrap_or_default();
    format!("{words} ({name})")
}

/// The connection, with or without TLS, as one type for hyper.
pub(crate) enum KdsIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for KdsIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            KdsIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            KdsIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for KdsIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            KdsIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            KdsIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            KdsIo::Plain(s) => Pin::new(s).poll_flush(cx),
            KdsIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            KdsIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            KdsIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            KdsIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            KdsIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            KdsIo::Plain(s) => s.is_write_vectored(),
            KdsIo::Tls(s) => s.is_write_vectored(),
        }
    }
}
