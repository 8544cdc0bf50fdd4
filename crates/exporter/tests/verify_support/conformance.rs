//! States recorded from real Kuma control planes (`docs/conformance.md`): each
//! scenario's REST listings of the global and both zones, as `kuma-cp` answered them.
//! `verify` must give each scenario the verdict real Kuma's state calls for.

use std::{fs, path::PathBuf};

use serde_json::Value;

use super::{kuma_sync, root, stderr, stdout};

fn recordings() -> PathBuf {
    root().join("crates/exporter/tests/conformance/kuma-2.14.3")
}

/// Runs `verify -o json` on every listing a scenario recorded.
fn verify_recorded(scenario: &str) -> (Option<i32>, Value, String) {
    let dir = recordings().join(scenario);
    let index: Value =
        serde_json::from_slice(&fs::read(dir.join("global/root.json")).expect("GET / recorded"))
            .expect("json");
    let version = index["version"].as_str().expect("a version").to_owned();
    assert_eq!(version, "2.14.3", "{scenario} was recorded on Kuma 2.14.3");
    let mut args = vec![
        "verify".to_owned(),
        "-o".into(),
        "json".into(),
        "--kuma-version".into(),
        version,
    ];
    for cp in ["global", "zone-1", "zone-2"] {
        let Ok(entries) = fs::read_dir(dir.join(cp)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                !matches!(
                    p.file_name().and_then(|n| n.to_str()),
                    Some("root.json" | "zone-insights.json")
                )
            })
            .collect();
        files.sort();
        for f in files {
            match cp {
                "global" => args.extend(["--global".into(), f.display().to_string()]),
                zone => args.extend(["--zone".into(), format!("{zone}={}", f.display())]),
            }
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = kuma_sync(&args);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{scenario}: {e}: {text}"));
    (out.status.code(), doc, text)
}

#[test]
fn real_kuma_states_that_synced_verify_as_converged() {
    for scenario in [
        "S0-baseline",
        "S1-federate",
        "S2-zone-origin",
        "S3-kds-sync-disabled",
        "S6-faults",
        "S6b-zone1-disabled",
        "S4-zone2-sigstop/after",
        "S5-kds-stall-zone2/before",
        "S5-kds-stall-zone2/after",
    ] {
        let (code, doc, text) = verify_recorded(scenario);
        assert_eq!(code, Some(0), "{scenario}: {text}");
        let zones = doc["zones"].as_array().expect("zones");
        assert_eq!(zones.len(), 2, "{scenario}");
        for z in zones {
            // Every default type is compared: the mesh, its default policies, hostname
            // generators, and the rest.
            assert!(
                z["counts"]["synced"].as_u64().expect("count") >= 12,
                "{scenario}: {text}"
            );
        }
    }
}

#[test]
fn a_real_zone_whose_kds_stream_froze_is_reported_exactly() {
    // zone-2's path to the global's KDS port was frozen while the global changed a
    // MeshCircuitBreaker, added a MeshRetry and deleted a MeshTrafficPermission; zone-2's
    // API stayed readable (the silent stall of kumahq/kuma #16428).
    let (code, doc, text) = verify_recorded("S5-kds-stall-zone2/frozen");
    assert_eq!(code, Some(1), "{text}");
    let rows: Vec<(String, String, String, String)> = doc["discrepancies"]
        .as_array()
        .expect("discrepancies")
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            (s("zone"), s("type"), s("name"), s("state"))
        })
        .collect();
    let row = |t: &str, n: &str, s: &str| ("zone-2".to_owned(), t.to_owned(), n.to_owned(), s.to_owned());
    assert_eq!(
        rows,
        vec![
            row(
                "MeshCircuitBreaker",
                "demo-app-to-redis-65xb45x2xfd5bf7f",
                "drifted"
            ),
            row("MeshRetry", "stall-retry-4xbz25444fdw6xwc", "missing"),
            row("MeshTrafficPermission", "redis-7w7bc2f55x7w9d29", "orphaned"),
        ],
        "{text}"
    );
    let drifted = &doc["discrepancies"][0]["differences"][0];
    assert_eq!(drifted["path"], ".to[0].default.connectionLimits.maxConnections");
    assert_eq!(
        (drifted["expected"].clone(), drifted["actual"].clone()),
        (4.into(), 3.into())
    );
}
