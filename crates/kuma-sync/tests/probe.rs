//! `kuma-sync probe` against the simulated global, over TLS with the global's self-signed
//! CA:TRUE certificate as the CA file: in process (flags in, printed state out) and as a
//! real process (exit codes).

use std::time::Duration;

use clap::Parser;
use kuma_model::{
    Resource,
    fixtures::{mcb, mtp},
};
use kuma_sim::KdsHandle;
use kuma_sync::probe::{ProbeArgs, run};

use crate::support::WAIT;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: ProbeArgs,
}

fn args(argv: &[&str]) -> ProbeArgs {
    Cli::try_parse_from(std::iter::once("probe").chain(argv.iter().copied()))
        .expect("valid flags")
        .args
}

/// A simulated universal global holding `seed`, its KDS on a free loopback port.
async fn sim(tls: bool, seed: &[Resource]) -> KdsHandle {
    let (_, handle) = kuma_sim::start_seeded_global(tls, seed.iter().cloned())
        .await
        .expect("sim starts");
    handle
}

/// `--once -o json` prints one JSON line after every type's first full state and exits.
#[tokio::test]
async fn once_json_prints_the_full_state_and_exits() {
    let sim = sim(true, &[mtp("a", "Allow"), mtp("b", "Deny"), mcb("cb", 3)]).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("kuma-cp.crt");
    std::fs::write(&ca, sim.ca_pem().expect("tls on")).unwrap();
    let ca_path = ca.to_str().unwrap();
    let url = sim.url();
    let a = args(&[
        "--kds",
        &url,
        "--ca-file",
        ca_path,
        "--types",
        "MeshTrafficPermission,mcb",
        "-o",
        "json",
        "--once",
    ]);
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, run(a, &mut out, std::future::pending()))
        .await
        .expect("--once exits")
        .expect("probe ran");
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["zone_name"], "kuma-sync-probe");
    assert_eq!(v["types"][0]["type"], "MeshCircuitBreaker");
    assert_eq!(v["types"][0]["resources"], 1);
    assert_eq!(v["types"][1]["type"], "MeshTrafficPermission");
    assert_eq!(v["types"][1]["resources"], 2);
    assert_eq!(v["types"][1]["synced"], true);
}

/// Without `--once`, the table is printed until shutdown, and a fatal setup error is
/// returned rather than printed forever.
#[tokio::test]
async fn table_until_shutdown_and_fatal_errors_return() {
    let sim = sim(false, &[mtp("a", "Allow")]).await;
    let url = sim.url();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut out = Vec::new();
    let probe = run(args(&["--kds", &url, "--types", "mtp"]), &mut out, async {
        let _ = stopped.await;
    });
    let stopper = async {
        // Stop once the sim has served the probe.
        sim.wait_for_records(|_, responses| !responses.is_empty()).await;
        let _ = stop.send(());
    };
    let (result, ()) = tokio::time::timeout(WAIT, async { tokio::join!(probe, stopper) })
        .await
        .expect("stops");
    result.expect("clean shutdown");
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("TYPE") && text.contains("MeshTrafficPermission"),
        "{text}"
    );

    let bad = args(&["--kds", &url, "--types", "Secret"]);
    let err = run(bad, Vec::new(), std::future::pending())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("never pulls secrets"), "{err}");
}

#[tokio::test]
async fn probe_prints_what_the_global_sends() {
    let sim = sim(true, &[mcb("demo-app-to-redis", 2), mcb("another", 3)]).await;
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
