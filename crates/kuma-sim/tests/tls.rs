//! The server speaks TLS with ALPN h2 and a Kuma-like self-signed CA:TRUE certificate.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use crate::common::*;
use hyper_util::rt::TokioIo;
use kuma_model::Environment;
use kuma_sim::KdsServerConfig;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};
use tonic::{codegen::http::Uri, transport::Endpoint};

/// Trusts exactly one certificate, signatures checked: what a client given the global's
/// certificate as its CA must do, since webpki refuses a CA as an end entity.
#[derive(Debug)]
struct PinnedCert {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn pinned_config(ca_pem: &str) -> ClientConfig {
    let provider = Arc::new(ring::default_provider());
    let cert = CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("PEM certificate");
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the defaults")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCert { cert, provider }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

async fn handshake(
    config: ClientConfig,
    addr: std::net::SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("valid name");
    TlsConnector::from(Arc::new(config)).connect(name, tcp).await
}

/// Connects tonic through `handshake`, since `ClientTlsConfig` takes no custom verifier.
#[derive(Clone)]
struct PinnedConnector {
    config: Arc<ClientConfig>,
    addr: std::net::SocketAddr,
}

impl tonic::codegen::Service<Uri> for PinnedConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let (config, addr) = (self.config.as_ref().clone(), self.addr);
        Box::pin(async move { handshake(config, addr).await.map(TokioIo::new) })
    }
}

/// ALPN h2 is negotiated, the certificate is the advertised CA, and gRPC works over it.
#[tokio::test]
async fn serves_grpc_over_tls_with_alpn_h2() {
    let cfg = KdsServerConfig::with_generated_tls().expect("certificate generated");
    let (store, handle) = start_with(Environment::Universal, cfg).await;
    store.upsert(mcb("over-tls"));
    assert!(handle.url().starts_with("grpcs://127.0.0.1:"));
    let ca = handle
        .ca_pem()
        .expect("TLS server exposes its certificate")
        .to_owned();

    let tls = tokio::time::timeout(WAIT, handshake(pinned_config(&ca), handle.local_addr()))
        .await
        .expect("handshake in time")
        .expect("handshake succeeds");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(tls);

    let connector = PinnedConnector {
        config: Arc::new(pinned_config(&ca)),
        addr: handle.local_addr(),
    };
    // The connector does TLS itself; an https URI would make tonic want its own.
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(connector)
        .await
        .expect("gRPC channel over TLS");
    assert_eq!(
        health(channel.clone(), Some("zone-1"))
            .await
            .expect("HealthCheck over TLS"),
        std::time::Duration::ZERO
    );
    let mut zone = Zone::connect_with(channel, "zone-1", kds_wire::features::ALL.to_vec())
        .await
        .expect("stream over TLS");
    zone.subscribe("MeshCircuitBreaker").await;
    assert_eq!(zone.expect_response().await.resources.len(), 1);
}

/// The certificate is CA:TRUE like Kuma's, so stock webpki verification refuses it as
/// an end entity (kuma-semantics 10.6): clients need a custom verifier.
#[tokio::test]
async fn stock_webpki_rejects_the_ca_certificate() {
    let cfg = KdsServerConfig::with_generated_tls().expect("certificate generated");
    let (_store, handle) = start_with(Environment::Universal, cfg).await;
    let ca = handle.ca_pem().expect("certificate").to_owned();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).expect("PEM"))
        .expect("parsable certificate");
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("defaults")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let err = handshake(config, handle.local_addr())
        .await
        .expect_err("webpki refuses it");
    assert!(format!("{err:?}").contains("CaUsedAsEndEntity"), "{err:?}");
}
