//! `kuma-sync verify --config` as a real process against kuma-sim's REST APIs: a late
//! convergence with `--wait` exits 0, a timeout exits 1, unreadable zones are named.

mod support;

use std::{sync::Arc, time::Duration};

use kuma_model::{Environment, Resource, ResourceType};
use kuma_sim::{GlobalStore, rest::RestApi};
use serde_json::json;
use support::*;

struct Setup {
    zone: Arc<GlobalStore>,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _apis: Vec<kuma_sim::rest::RestHandle>,
}

/// A global with the federate guide's MeshCircuitBreaker and a zone without its copy.
async fn setup() -> Setup {
    let mesh = Resource::new(
        ResourceType::from_name("Mesh").unwrap(),
        None,
        "default",
        json!({}),
    );
    let global = Arc::new(GlobalStore::new(Environment::Universal));
    let zone = Arc::new(GlobalStore::new(Environment::Universal));
    global.upsert(mesh.clone());
    zone.upsert(mesh);
    global.upsert(universal_mcb(2));
    let g = RestApi::global(global)
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let z = RestApi::new(zone.clone())
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kuma-sync.yaml");
    std::fs::write(
        &config,
        format!(
            "global:\n  api: {{url: \"{}\"}}\nzones:\n  - name: zone-1\n    api: {{url: \"{}\"}}\ntypes: [MeshCircuitBreaker]\nintervals: {{poll: 200ms}}\n",
            g.url(),
            z.url()
        ),
    )
    .unwrap();
    Setup {
        zone,
        config,
        _dir: dir,
        _apis: vec![g, z],
    }
}

fn verify(config: &std::path::Path, extra: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kuma-sync"))
        .args(["verify", "--config", config.to_str().unwrap(), "-o", "json"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kuma-sync runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_exits_0_once_the_zone_catches_up() {
    let s = setup().await;
    let child = verify(&s.config, &["--wait", "--timeout", "30s"]);
    // The zone receives its copy only after verify has started and seen it missing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.zone.upsert(universal_copy(&universal_mcb(2)));
    let out = tokio::time::timeout(WAIT * 2, child.wait_with_output())
        .await
        .expect("exits")
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["converged"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_exits_1_at_the_timeout_with_the_discrepancy() {
    let s = setup().await;
    let out = tokio::time::timeout(
        WAIT * 2,
        verify(&s.config, &["--wait", "--timeout", "2s"]).wait_with_output(),
    )
    .await
    .expect("exits")
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["discrepancies"][0]["state"], "missing");
    assert_eq!(doc["discrepancies"][0]["zone"], "zone-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_zone_is_unknown_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let config = dir.path().join("kuma-sync.yaml");
    std::fs::write(&config, format!("global:\n  api: {{url: \"http://{closed}\"}}\nzones:\n  - name: zone-1\n    api: {{url: \"http://{closed}\"}}\n")).unwrap();
    let out = tokio::time::timeout(WAIT * 2, verify(&config, &["--timeout", "1s"]).wait_with_output())
        .await
        .expect("exits")
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["zones"][0]["state"], "unknown");
    assert!(
        doc["unreadable"][0]["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach"),
        "{doc}"
    );
}

#[tokio::test]
async fn a_bad_config_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kuma-sync.yaml");
    std::fs::write(
        &config,
        "global: {api: {url: \"http://x\"}}\nzones: [{name: Bad_Zone}]\n",
    )
    .unwrap();
    let out = tokio::time::timeout(WAIT, verify(&config, &[]).wait_with_output())
        .await
        .expect("exits")
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a DNS label"), "{err}");
}
