//! `kuma-sync verify --config` as a real process against kuma-sim's REST APIs: a late
//! convergence with `--wait` exits 0, a timeout exits 1, unreadable zones are named.

use crate::support::*;

struct Setup {
    zone: std::sync::Arc<kuma_sim::GlobalStore>,
    /// Requests answered by the global's API and the zone's.
    answered: [tokio::sync::watch::Receiver<u64>; 2],
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _lab: RestLab,
}

/// A global with the federate guide's MeshCircuitBreaker and a zone without its copy.
async fn setup() -> Setup {
    let lab = RestLab::start(1, false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kuma-sync.yaml");
    std::fs::write(
        &config,
        format!(
            "global:\n  api: {{url: \"{}\"}}\nzones:\n  - name: zone-1\n    api: {{url: \"{}\"}}\ntypes: [MeshCircuitBreaker]\nintervals: {{poll: 1s}}\n",
            lab.global_url, lab.zone_urls[0]
        ),
    )
    .unwrap();
    Setup {
        zone: lab.zones[0].clone(),
        answered: [lab.answered(None), lab.answered(Some(0))],
        config,
        _dir: dir,
        _lab: lab,
    }
}

fn verify(config: &std::path::Path, extra: &[&str]) -> tokio::process::Child {
    let mut args = vec!["verify", "--config", config.to_str().unwrap(), "-o", "json"];
    args.extend(extra);
    kuma_sync(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_exits_0_once_the_zone_catches_up() {
    let mut s = setup().await;
    let child = verify(&s.config, &["--wait", "--timeout", "30s"]);
    // The zone receives its copy only once verify has read both control planes in full
    // and so seen it missing: a source's next read starts after its last one ended, so
    // a request past the first read's proves that read complete. The global's first
    // read is GET / and three lists (the policy, Zones, ZoneInsights); the zone's one.
    for (answered, first_read) in s.answered.iter_mut().zip([4, 1]) {
        tokio::time::timeout(WAIT, answered.wait_for(|n| *n > first_read))
            .await
            .expect("verify reads the control plane twice")
            .expect("API running");
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_global_without_zones_is_never_converged() {
    let dir = tempfile::tempdir().unwrap();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    // Unreachable, a token file that is not there, a CA that is not PEM.
    let garbage_ca = dir.path().join("ca.pem");
    std::fs::write(&garbage_ca, "not a certificate").unwrap();
    let globals = [
        format!("{{url: \"http://{closed}\"}}"),
        format!("{{url: \"http://{closed}\", tokenFile: /no/such/token}}"),
        format!("{{url: \"https://{closed}\", caFile: {}}}", garbage_ca.display()),
    ];
    for global in globals {
        let config = dir.path().join("kuma-sync.yaml");
        std::fs::write(&config, format!("global:\n  api: {global}\nzones: []\n")).unwrap();
        let out = tokio::time::timeout(WAIT * 2, verify(&config, &["--timeout", "1s"]).wait_with_output())
            .await
            .expect("exits")
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(1), "{global}: {doc}");
        assert_eq!(doc["converged"], false, "{global}: {doc}");
        assert_eq!(doc["unreadable"][0]["cp"], "global", "{global}: {doc}");
    }
}

/// A global that answers every list with one item, a `total` of 10^12 and a `next`
/// back to the URL it was asked: paging that never ends if followed.
async fn looping_global() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let target = text.split(' ').nth(1).unwrap_or("/").to_owned();
                let body = format!(r#"{{"total":1000000000000,"items":[],"next":"http://{addr}{target}"}}"#);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_whose_paging_never_ends_is_unreadable_not_converged() {
    let addr = looping_global().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kuma-sync.yaml");
    std::fs::write(
        &config,
        format!("global:\n  api: {{url: \"http://{addr}\"}}\nzones: []\n"),
    )
    .unwrap();
    let out = tokio::time::timeout(WAIT * 2, verify(&config, &["--timeout", "2s"]).wait_with_output())
        .await
        .expect("exits")
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{doc}");
    assert_eq!(doc["converged"], false, "{doc}");
    assert_eq!(doc["unreadable"][0]["cp"], "global", "{doc}");
    // Refused at once, by the bound on `total`, not followed until the timeout.
    let error = doc["unreadable"][0]["error"].as_str().unwrap();
    assert!(error.contains("too large"), "{doc}");
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
