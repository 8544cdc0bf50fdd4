//! `kuma-sync probe` end to end: flags in, printed state out.

mod support;

use clap::Parser;
use kds_probe::{ProbeArgs, run_command};
use support::*;

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

/// `--once -o json` prints one JSON line after every type's first full state and exits.
#[tokio::test]
async fn once_json_prints_the_full_state_and_exits() {
    let sim = sim(true, &[mtp("a", "Allow"), mtp("b", "Deny"), mcb("cb", 3)]).await;
    let ca = TempFile::with(sim.ca_pem().unwrap());
    let ca_path = ca.0.to_str().unwrap();
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
    tokio::time::timeout(WAIT, run_command(a, &mut out, std::future::pending()))
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
    let run = run_command(args(&["--kds", &url, "--types", "mtp"]), &mut out, async {
        let _ = stopped.await;
    });
    let stopper = async {
        // Stop once the sim has served the probe.
        sim.wait_for_records(|_, responses| !responses.is_empty()).await;
        let _ = stop.send(());
    };
    let (result, ()) = tokio::time::timeout(WAIT, async { tokio::join!(run, stopper) })
        .await
        .expect("stops");
    result.expect("clean shutdown");
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("TYPE") && text.contains("MeshTrafficPermission"),
        "{text}"
    );

    let bad = args(&["--kds", &url, "--types", "Secret"]);
    let err = run_command(bad, Vec::new(), std::future::pending())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("never pulls secrets"), "{err}");
}
