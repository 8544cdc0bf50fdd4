//! `kuma-sync probe` as a real process against the simulated global, over TLS with the
//! global's self-signed CA:TRUE certificate as the CA file.

use std::{sync::Arc, time::Duration};

use kuma_model::{Environment, Resource, ResourceType};
use kuma_sim::{GlobalStore, KdsServerConfig, start_global_kds};
use serde_json::json;

fn mcb(name: &str) -> Resource {
    Resource::new(
        ResourceType::from_name("MeshCircuitBreaker").unwrap(),
        Some("default"),
        name,
        json!({
            "targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": {"kind": "MeshService", "name": "redis"}, "default": {"connectionLimits": {"maxConnections": 2}}}]
        }),
    )
}

#[tokio::test]
async fn probe_prints_what_the_global_sends() {
    let store = Arc::new(GlobalStore::new(Environment::Universal));
    store.upsert(mcb("demo-app-to-redis"));
    store.upsert(mcb("another"));
    let cfg = KdsServerConfig::with_generated_tls().expect("certificate");
    let sim = start_global_kds(store, "127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .expect("sim starts");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("kuma-cp.crt");
    std::fs::write(&ca, sim.ca_pem().expect("tls on")).unwrap();

    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_kuma-sync"))
        .args([
            "probe",
            "--kds",
            &sim.url(),
            "--ca-file",
            ca.to_str().unwrap(),
            "--types",
            "mcb",
            "--once",
            "-o",
            "json",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("--once exits")
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON object");
    assert_eq!(v["types"][0]["type"], "MeshCircuitBreaker");
    assert_eq!(v["types"][0]["resources"], 2);
    // The global recorded the probe as a zone under the probe's own name.
    assert!(sim.zones().contains_key("kuma-sync-probe"));
}

#[tokio::test]
async fn probe_refuses_secrets_and_bad_names_with_exit_2() {
    for args in [
        vec![
            "probe",
            "--kds",
            "grpc://127.0.0.1:1",
            "--types",
            "Secret",
            "--once",
        ],
        vec![
            "probe",
            "--kds",
            "grpc://127.0.0.1:1",
            "--zone-name",
            "Not_A_Label",
            "--once",
        ],
    ] {
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_kuma-sync"))
                .args(&args)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("exits")
        .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}
