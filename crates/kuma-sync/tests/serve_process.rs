//! `kuma-sync serve` as a real process: a bad configuration exits 64 before anything
//! starts; SIGTERM stops a running server cleanly.

use std::time::Duration;

use crate::support::*;

fn serve(config: &std::path::Path, listen: &str) -> tokio::process::Child {
    kuma_sync(&["serve", "--config", config.to_str().unwrap(), "--listen", listen])
}

#[tokio::test]
async fn a_bad_configuration_exits_64_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kuma-sync.yaml");
    std::fs::write(
        &config,
        "global: {api: {url: \"http://g\"}}\nintervals: {poll: often}\n",
    )
    .unwrap();
    let out = tokio::time::timeout(WAIT, serve(&config, "127.0.0.1:0").wait_with_output())
        .await
        .expect("exits")
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("intervals.poll"), "{err}");
}

#[tokio::test]
async fn a_port_in_use_exits_64_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kuma-sync.yaml");
    std::fs::write(&config, "global: {api: {url: \"http://127.0.0.1:1\"}}\n").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = tokio::time::timeout(WAIT, serve(&config, &addr).wait_with_output())
        .await
        .expect("exits")
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    let line = err.lines().last().unwrap_or_default();
    assert!(line.contains("cannot listen on"), "{err}");
    // Its cause once, not once per link of the chain.
    assert_eq!(line.matches("in use").count(), 1, "{err}");
}

#[tokio::test]
async fn sigterm_stops_serve_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kuma-sync.yaml");
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(
        &config,
        format!("global: {{api: {{url: \"http://{closed}\"}}}}\n"),
    )
    .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = serve(&config, &format!("127.0.0.1:{port}"));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let up = async {
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, up).await.expect("serve listens");
    assert_eq!(get(addr, "/healthz", None).await.0, 200);
    assert_eq!(
        get(addr, "/readyz", None).await.0,
        503,
        "the global cannot be read: not ready"
    );
    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("stops on SIGTERM")
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("shutting down"));
}
