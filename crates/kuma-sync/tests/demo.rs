//! `kuma-sync demo` as a real process: the lab converges, and `--break zone-2` is detected
//! as exactly zone-2 diverging while zone-1 stays converged.

use std::time::Duration;

async fn demo(args: &[&str]) -> (Option<i32>, String, String) {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_kuma-sync"))
        .args(["demo", "--once", "--listen", "127.0.0.1:0"])
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("demo --once exits")
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_lab_converges() {
    let (code, out, err) = demo(&[]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("zone-2   Kubernetes API  http://127.0.0.1:"),
        "{out}"
    );
    assert!(
        out.contains("converged: zone-1 converged (7 synced) | zone-2 converged (7 synced)"),
        "{out}"
    );
}

#[tokio::test]
async fn a_broken_zone_is_detected() {
    let (code, out, err) = demo(&["--break", "zone-2"]).await;
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains("detected: zone-1 converged (7 synced) | zone-2 diverged (1 drifted)"),
        "{out}"
    );
    assert!(
        out.contains(".to[0].default.connectionLimits.maxConnections"),
        "{out}"
    );
}

#[tokio::test]
async fn breaking_a_zone_that_does_not_exist_is_an_error() {
    let (code, out, err) = demo(&["--break", "zone-9"]).await;
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(err.contains("zone-9"), "{err}");
}
