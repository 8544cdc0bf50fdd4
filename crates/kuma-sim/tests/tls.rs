//! The server speaks TLS with ALPN h2 and a Kuma-like self-signed CA:TRUE certificate.

use std::sync::Arc;

use crate::common::*;
use kds_wire::{Connector, KdsAddress, TlsSettings};
use kuma_model::Environment;
use kuma_sim::KdsServerConfig;
use rustls::{
    ClientConfig, RootCertStore,
    crypto::ring,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

/// The client configuration the probe uses (kds-wire's), trusting the global's own
/// certificate as its CA file, as a zone given Kuma's `kuma-cp.crt` does.
fn pinned_config(ca_pem: &str, dir: &tempfile::TempDir) -> Arc<ClientConfig> {
    let ca_file = dir.path().join("kuma-cp.crt");
    std::fs::write(&ca_file, ca_pem).expect("write the CA file");
    let settings = TlsSettings {
        ca_file: Some(ca_file),
        ..TlsSettings::default()
    };
    kds_wire::tls::client_config(&settings).expect("a client configuration")
}

async fn handshake(
    config: Arc<ClientConfig>,
    addr: std::net::SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("valid name");
    TlsConnector::from(config).connect(name, tcp).await
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

    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = pinned_config(&ca, &dir);
    let tls = tokio::time::timeout(WAIT, handshake(config.clone(), handle.local_addr()))
        .await
        .expect("handshake in time")
        .expect("handshake succeeds");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(tls);

    let address = KdsAddress::parse(&handle.url()).expect("the server's URL");
    let channel = Connector::new(address, Some(config))
        .expect("a connector")
        .channel(WAIT)
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
    let err = handshake(Arc::new(config), handle.local_addr())
        .await
        .expect_err("webpki refuses it");
    assert!(format!("{err:?}").contains("CaUsedAsEndEntity"), "{err:?}");
}
