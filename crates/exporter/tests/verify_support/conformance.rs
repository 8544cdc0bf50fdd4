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

/// The kinds kuma-sim models as Kuma does; HostnameGenerators are a listed deviation
/// (`docs/conformance.md`), Zones and ZoneIngresses are the lab's own records.
const REPRODUCED: [&str; 6] = [
    "Mesh",
    "MeshCircuitBreaker",
    "MeshTrafficPermission",
    "MeshTimeout",
    "MeshRetry",
    "MeshService",
];

/// Kuma's default policies of a new mesh: kuma-sim creates them itself.
const KUMA_DEFAULTS: [&str; 4] = [
    "mesh-circuit-breaker-all-default",
    "mesh-retry-all-default",
    "mesh-timeout-all-default",
    "mesh-gateways-timeout-all-default",
];

/// Labels Kuma writes itself when it stores a resource: not part of what a user gave.
const KUMA_WRITES: [&str; 5] = [
    "kuma.io/origin",
    "kuma.io/zone",
    "kuma.io/env",
    "kuma.io/mesh",
    "kuma.io/display-name",
];

/// One resource as compared: control plane, type, mesh, name, labels, spec fingerprint.
type Held = (String, String, String, String, Vec<(String, String)>, u128);

fn recorded_items(scenario: &str, cp: &str) -> Vec<Value> {
    let mut items = Vec::new();
    for t in REPRODUCED {
        let rtype = kuma_model::ResourceType::from_name(t).expect("known");
        let path = recordings()
            .join(scenario)
            .join(cp)
            .join(format!("{}.json", rtype.info().rest_path));
        let Ok(bytes) = fs::read(&path) else { continue };
        let page: Value = serde_json::from_slice(&bytes).expect("a recorded page");
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
    }
    items
}

fn held(cp: &str, r: &kuma_model::Resource) -> Held {
    (
        cp.to_owned(),
        r.rtype.name().to_owned(),
        r.mesh.clone().unwrap_or_default(),
        r.name.clone(),
        r.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        kuma_model::fingerprint(&r.spec).0,
    )
}

/// What real Kuma held after a scenario, as kuma-sync reads it.
fn recorded_state(scenario: &str) -> std::collections::BTreeSet<Held> {
    let mut out = std::collections::BTreeSet::new();
    for cp in ["global", "zone-1", "zone-2"] {
        let page = serde_json::json!({"items": recorded_items(scenario, cp), "total": null, "next": null});
        let loaded = kuma_model::read::read_str(cp, &page.to_string(), &Default::default())
            .expect("recorded items read");
        out.extend(loaded.resources.iter().map(|r| held(cp, r)));
    }
    out
}

/// What a user made in the scenario, recovered from the recording: the global's and each
/// zone's own resources without what Kuma wrote itself.
fn scenario_inputs(scenario: &str) -> kuma_sim::lab::Scenario {
    let strip = |item: &Value| {
        let mut item = item.clone();
        if let Some(labels) = item.get_mut("labels").and_then(Value::as_object_mut) {
            labels.retain(|k, _| !KUMA_WRITES.contains(&k.as_str()));
        }
        let object = item.as_object_mut().expect("an object");
        object.remove("creationTime");
        object.remove("modificationTime");
        item
    };
    let own = |item: &Value, zone: Option<&str>| {
        let label = |k: &str| item["labels"][k].as_str();
        let name = item["name"].as_str().unwrap_or_default();
        item["type"] != "Mesh"
            && !KUMA_DEFAULTS.contains(&name)
            && match zone {
                None => label("kuma.io/origin").is_none(),
                Some(zone) => label("kuma.io/origin") == Some("zone") && label("kuma.io/zone") == Some(zone),
            }
    };
    let zones = ["zone-1", "zone-2"]
        .map(|zone| {
            serde_json::json!({
                "name": zone,
                "environment": {"type": "universal"},
                "resources": recorded_items(scenario, zone).iter().filter(|i| own(i, Some(zone))).map(strip).collect::<Vec<_>>(),
            })
        })
        .to_vec();
    let scenario = serde_json::json!({
        "global": {
            "environment": {"type": "universal"},
            "tls": true,
            "resources": recorded_items(scenario, "global").iter().filter(|i| own(i, None)).map(strip).collect::<Vec<_>>(),
        },
        "meshes": [{"name": "default"}],
        "zones": zones,
        "ports": "ephemeral",
    });
    kuma_sim::lab::Scenario::from_yaml(&scenario.to_string()).expect("a scenario kuma-sim takes")
}

/// kuma-sim, given what a user did in a scenario recorded on real Kuma, must end up
/// holding what real Kuma held: the same names (hashed the same way), labels and specs on
/// every control plane, for every kind it models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kuma_sim_reproduces_the_states_real_kuma_reached() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    for scenario in [
        "S0-baseline",
        "S1-federate",
        "S2-zone-origin",
        "S3-kds-sync-disabled",
    ] {
        let want = recorded_state(scenario);
        // The recording holds each zone's copy of a default policy under its hashed name.
        assert!(
            want.iter()
                .any(|h| h.0 == "zone-2" && h.3 == "mesh-retry-all-default-4266fddczv5d2fvv"),
            "{scenario}: {want:#?}"
        );
        assert!(want.len() >= 15, "{scenario}: {} resources recorded", want.len());
        let lab = kuma_sim::lab::Lab::start(scenario_inputs(scenario))
            .await
            .expect("lab starts");
        let state = |lab: &kuma_sim::lab::Lab| {
            let mut got = std::collections::BTreeSet::new();
            for (cp, store) in lab.stores() {
                let cp = cp.to_string();
                got.extend(
                    store
                        .list(None)
                        .iter()
                        .filter(|r| REPRODUCED.contains(&r.rtype.name()))
                        .map(|r| held(&cp, r)),
                );
            }
            got
        };
        let settled = lab
            .wait_until(|lab| state(lab) == want, std::time::Duration::from_secs(20))
            .await;
        let got = state(&lab);
        lab.shutdown().await;
        if settled.is_err() {
            let missing: Vec<_> = want.difference(&got).collect();
            let extra: Vec<_> = got.difference(&want).collect();
            panic!(
                "{scenario}: kuma-sim differs from real Kuma\n  real Kuma only: {missing:#?}\n  kuma-sim only: {extra:#?}"
            );
        }
    }
}
