//! `/metrics` over TLS, with a self-signed certificate like the ones clusters hand out.

use std::sync::Arc;

use crate::support::*;
use kds_wire::TlsSettings;
use kuma_model::ResourceType;
use kuma_sync::{
    config::{ServeConfig, TlsFile},
    serve,
};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn metrics_are_served_over_tls_only() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cert = kuma_sim::tls::generate(&["localhost", "127.0.0.1"]).expect("certificate");
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, &cert.cert_pem).unwrap();
    std::fs::write(&key_file, &cert.key_pem).unwrap();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        global: rest_cp(format!("http://{closed}")),
        zones: vec![],
        kds: None,
        types: vec![ResourceType::from_name("MeshCircuitBreaker").unwrap()],
        meshes: None,
        poll_interval: std::time::Duration::from_secs(1),
        stall_threshold: std::time::Duration::from_secs(60),
        tls: Some(TlsFile {
            cert_file: cert_file.clone(),
            key_file,
        }),
        basic_auth: None,
        kuma_version: Some(kuma_model::KumaLine::V2),
        shards: None,
        leader_election: None,
        canary: None,
    };
    let running = serve::start(cfg).await.expect("serve starts");
    let addr = running.local_addr.unwrap();

    // A client that trusts exactly this certificate (the probe's pinning verifier).
    let settings = TlsSettings {
        ca_file: Some(cert_file),
        skip_verify: false,
        client_identity: None,
    };
    let mut config = (*kds_wire::tls::client_config(&settings).expect("client config")).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio::time::timeout(
        WAIT,
        connector.connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .expect("handshake in time")
    .expect("TLS handshake");
    tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = Vec::new();
    tokio::time::timeout(WAIT, tls.read_to_end(&mut body))
        .await
        .expect("answer")
        .ok();
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("kuma_sync_up{cp=\"global\"}"), "{text}");

    // Plain HTTP on the TLS port gets no metrics.
    let (status, body) = get(addr, "/metrics", None).await;
    assert_ne!(status, 200, "{body}");
    running.stop().await;
}
