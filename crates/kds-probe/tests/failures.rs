//! TLS trust and the retry-or-stop decision, against a simulated global.

use crate::support::*;
use kds_probe::{ConfigError, Error, Probe};

/// A CA file that did not sign the global's certificate stops the probe at once with a
/// clear, fatal error; it is not retried forever.
#[tokio::test]
async fn a_wrong_ca_is_fatal_and_says_why() {
    let sim = sim(true, &[mtp("a", "Allow")]).await;
    let other = kuma_sim::tls::generate(&["localhost", "127.0.0.1"]).unwrap();
    let wrong_ca = TempFile::with(&other.cert_pem);
    let probe = spawn(config(&sim, &["MeshTrafficPermission"], Some(&wrong_ca)));
    let metrics = probe.metrics.clone();
    let err = probe.finished().await.expect_err("fatal");
    assert!(
        matches!(err, Error::Transport(kds_wire::Error::CertificateRejected { .. })),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let message = err.to_string();
    assert!(
        message.contains("rejected") && message.contains("--ca-file"),
        "{message}"
    );
    // Kuma's certificate is CA:TRUE; the reason must name the CA file, not the shape.
    assert!(
        message.contains("not signed by any certificate in the CA file (UnknownIssuer)"),
        "{message}"
    );
    assert_eq!(
        metrics.errors.with_label_values(&["certificate"]).get(),
        1,
        "one attempt, no retries"
    );
    assert_eq!(metrics.stream_starts.get(), 0);
    assert!(sim.recorded_requests().is_empty());
}

/// The CA:TRUE self-signed certificate works as its own CA file (kuma-semantics 10.6).
#[tokio::test]
async fn the_servers_own_certificate_works_as_ca_file() {
    let sim = sim(true, &[mtp("a", "Allow")]).await;
    let ca = TempFile::with(sim.ca_pem().unwrap());
    let probe = spawn(config(&sim, &["MeshTrafficPermission"], Some(&ca)));
    probe.until("sync", |v| v.all_synced()).await;
    assert_eq!(probe.keys("MeshTrafficPermission").len(), 1);
    probe.stop().await.unwrap();
}

/// `skip_verify` connects to any certificate.
#[tokio::test]
async fn skip_verify_connects() {
    let sim = sim(true, &[mtp("a", "Allow")]).await;
    let cfg = config(&sim, &["MeshTrafficPermission"], None);
    assert!(cfg.tls.skip_verify);
    let probe = spawn(cfg);
    probe.until("sync", |v| v.all_synced()).await;
    probe.stop().await.unwrap();
}

/// A global that refuses the zone's identity (Kong Mesh without a zone token) stops the
/// probe: retrying the same identity cannot succeed.
#[tokio::test]
async fn unauthenticated_is_fatal() {
    let sim = sim(false, &[mtp("a", "Allow")]).await;
    let probe = spawn(config(&sim, &["MeshTrafficPermission"], None));
    probe.until("sync", |v| v.all_synced()).await;
    let metrics = probe.metrics.clone();
    assert_eq!(
        sim.faults()
            .close_streams(tonic::Code::Unauthenticated, "zone token required"),
        1
    );
    let err = probe.finished().await.expect_err("fatal");
    assert!(
        matches!(
            err,
            Error::Refused {
                code: tonic::Code::Unauthenticated,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("zone token required"));
    assert_eq!(metrics.errors.with_label_values(&["refused"]).get(), 1);
    assert_eq!(metrics.connected.get(), 0);
    assert_eq!(metrics.health_check_up.get(), 0, "no connection, no health");
}

/// In a daemon (`retry_refusals`), a refusal is shown and tried again at the longest
/// backoff instead of stopping the probe for good: once the global takes the stream again,
/// the probe syncs again.
#[tokio::test]
async fn a_daemon_probe_keeps_trying_after_a_refusal() {
    let sim = sim(false, &[mtp("a", "Allow")]).await;
    let mut cfg = config(&sim, &["MeshTrafficPermission"], None);
    cfg.retry_refusals = true;
    cfg.backoff = kds_probe::config::BackoffSettings {
        initial: std::time::Duration::from_millis(10),
        max: std::time::Duration::from_millis(50),
    };
    let probe = spawn(cfg);
    probe.until("sync", |v| v.all_synced()).await;
    assert_eq!(
        sim.faults()
            .close_streams(tonic::Code::Unauthenticated, "zone token required"),
        1
    );
    probe
        .until("a second stream", |v| {
            v.snapshot().stream_starts >= 2 && v.all_synced()
        })
        .await;
    assert_eq!(probe.metrics.errors.with_label_values(&["refused"]).get(), 1);
    probe.stop().await.expect("still running, stops cleanly");
}

/// A refused connection is retried (with backoff) until the global appears, and the
/// probe stops cleanly on shutdown.
#[tokio::test]
async fn connection_refused_is_retried() {
    // Bind then drop: the port is free and nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = kds_probe::ProbeConfig::new(&format!("grpc://127.0.0.1:{port}")).unwrap();
    cfg.types = vec![rtype("MeshTrafficPermission")];
    cfg.backoff = kds_probe::config::BackoffSettings {
        initial: std::time::Duration::from_millis(10),
        max: std::time::Duration::from_millis(50),
    };
    let probe = spawn(cfg);
    probe
        .until("retries", |_| {
            probe.metrics.errors.with_label_values(&["connect"]).get() >= 3
        })
        .await;
    let last = probe.view.snapshot().last_error.unwrap();
    assert!(last.contains(&format!("127.0.0.1:{port}")), "{last}");
    assert_eq!(probe.metrics.connected.get(), 0);
    probe.stop().await.expect("shutdown is not an error");
}

/// TLS towards a plaintext server fails the handshake; that is retryable.
#[tokio::test]
async fn a_handshake_failure_is_retried() {
    let plain = sim(false, &[]).await;
    let mut cfg = kds_probe::ProbeConfig::new(&plain.url().replace("grpc://", "grpcs://")).unwrap();
    cfg.tls.skip_verify = true;
    cfg.types = vec![rtype("MeshTrafficPermission")];
    cfg.backoff = kds_probe::config::BackoffSettings {
        initial: std::time::Duration::from_millis(10),
        max: std::time::Duration::from_millis(50),
    };
    let probe = spawn(cfg);
    probe
        .until("retries", |_| {
            probe.metrics.errors.with_label_values(&["handshake"]).get() >= 2
        })
        .await;
    probe.stop().await.unwrap();
}

/// The probe refuses a zone name the global already knows, before connecting.
#[test]
fn a_known_zone_name_is_refused() {
    let mut cfg = kds_probe::ProbeConfig::new("grpc://127.0.0.1:5685").unwrap();
    cfg.zone_name = "zone-1".into();
    cfg.known_zones = vec!["zone-1".into()];
    let err = Probe::new(cfg, &prometheus::Registry::new())
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Config(ConfigError::ZoneNameTaken(_))));
    assert!(err.to_string().contains("zone-1"));
}

/// Missing TLS files are fatal configuration errors that name the file.
#[test]
fn a_missing_ca_file_is_fatal() {
    let mut cfg = kds_probe::ProbeConfig::new("grpcs://127.0.0.1:5685").unwrap();
    cfg.tls.ca_file = Some("/nonexistent/kuma-cp.crt".into());
    let err = Probe::new(cfg, &prometheus::Registry::new())
        .err()
        .expect("refused");
    assert!(
        matches!(err, Error::Transport(kds_wire::Error::CaFile { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("/nonexistent/kuma-cp.crt"));
}
