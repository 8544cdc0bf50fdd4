//! States recorded from real Kuma control planes (`docs/conformance.md`): each
//! scenario's REST listings of the global and both zones, as `kuma-cp` answered them, and
//! the KDS responses `kuma-sync probe --record` received. `verify` must give each scenario
//! the verdict real Kuma's state calls for, the probe must decode every response, and
//! kuma-sim must reach the states real Kuma reached.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use serde_json::Value;

use super::{kuma_sync, root, stderr, stdout};

/// A Kuma build the lab ran: its recordings' folder and the version its `GET /` reported.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kuma {
    pub(super) dir: &'static str,
    pub(super) version: &'static str,
}

/// The newest 2.x release.
const V2: Kuma = Kuma {
    dir: "kuma-2.14.3",
    version: "2.14.3",
};
/// The newest 2.x release with Kubernetes control planes: a Kubernetes global, a
/// Kubernetes zone-1 and a Universal zone-2 (`conformance_kubernetes`).
pub(super) const V2_KUBERNETES: Kuma = Kuma {
    dir: "kuma-2.14.3-kubernetes",
    version: "2.14.3",
};
/// Kuma main on Kubernetes: its Universal global, a Kubernetes zone-1 and a Universal
/// zone-2 (Kuma 3 has no Kubernetes global).
pub(super) const MAIN_KUBERNETES: Kuma = Kuma {
    dir: "kuma-main-kubernetes",
    version: "0.0.0-main-348b6528bc",
};
/// Kuma's main branch (Kuma 3) at commit 348b6528bc, version stamped by hand as Kuma's
/// build stamps an untagged build (`0.0.0-…`).
const MAIN: Kuma = Kuma {
    dir: "kuma-main",
    version: "0.0.0-main-348b6528bc",
};

pub(super) fn recordings(kuma: Kuma) -> PathBuf {
    root().join("crates/kuma-sync/tests/conformance").join(kuma.dir)
}

/// Runs `verify -o json` on every listing a scenario recorded.
pub(super) fn verify_recorded(kuma: Kuma, scenario: &str) -> (Option<i32>, Value, String) {
    let dir = recordings(kuma).join(scenario);
    let index: Value =
        serde_json::from_slice(&fs::read(dir.join("global/root.json")).expect("GET / recorded"))
            .expect("json");
    let version = index["version"].as_str().expect("a version").to_owned();
    assert_eq!(version, kuma.version, "{scenario} was recorded on {kuma:?}");
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

/// The zones a scenario recorded (a stopped or deleted zone has no listing).
pub(super) fn recorded_zones(kuma: Kuma, scenario: &str) -> usize {
    ["zone-1", "zone-2"]
        .iter()
        .filter(|z| recordings(kuma).join(scenario).join(z).is_dir())
        .count()
}

pub(super) fn assert_converged(kuma: Kuma, scenario: &str) {
    let (code, doc, text) = verify_recorded(kuma, scenario);
    assert_eq!(code, Some(0), "{kuma:?} {scenario}: {text}");
    let zones = doc["zones"].as_array().expect("zones");
    assert_eq!(zones.len(), recorded_zones(kuma, scenario), "{scenario}");
    for z in zones {
        // Every default type is compared: the mesh, its default policies, hostname
        // generators, and the rest.
        assert!(
            z["counts"]["synced"].as_u64().expect("count") >= 12,
            "{kuma:?} {scenario}: {text}"
        );
    }
}

#[test]
fn real_kuma_2_states_that_synced_verify_as_converged() {
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
        "S7-zone2-deleted",
        "S8-global-restarted",
    ] {
        assert_converged(V2, scenario);
    }
}

#[test]
fn real_kuma_3_states_that_synced_verify_as_converged() {
    for scenario in [
        "S0-baseline",
        "S1-federate",
        "S2-zone-origin",
        "S3-kds-sync-disabled",
        "S6-faults/healed",
        "S6b-zone1-disabled",
        "S4-zone2-sigstop/after",
        "S5-kds-stall-zone2/before",
        "S5-kds-stall-zone2/after",
        "S7-zone2-deleted",
        "S8-global-restarted",
    ] {
        assert_converged(MAIN, scenario);
    }
}

/// Runs `verify` on a recorded scenario that did not converge: exit 1 and exactly the
/// discrepancies `want`, in order. Returns the JSON verdict and the output for the
/// caller's further checks.
pub(super) fn assert_exactly(kuma: Kuma, scenario: &str, want: Vec<Row>) -> (Value, String) {
    let (code, doc, text) = verify_recorded(kuma, scenario);
    assert_eq!(code, Some(1), "{kuma:?} {scenario}: {text}");
    assert_eq!(rows(&doc), want, "{kuma:?} {scenario}: {text}");
    (doc, text)
}

/// One discrepancy as (zone, type, name, state).
pub(super) type Row = (String, String, String, String);

/// Each discrepancy as a [`Row`].
pub(super) fn rows(doc: &Value) -> Vec<Row> {
    doc["discrepancies"]
        .as_array()
        .expect("discrepancies")
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            (s("zone"), s("type"), s("name"), s("state"))
        })
        .collect()
}

fn row(t: &str, n: &str, s: &str) -> Row {
    ("zone-2".to_owned(), t.to_owned(), n.to_owned(), s.to_owned())
}

#[test]
fn a_real_zone_whose_kds_stream_froze_is_reported_exactly() {
    // zone-2's path to the global's KDS port was frozen while the global changed a
    // MeshCircuitBreaker, added a MeshRetry and deleted a MeshTrafficPermission; zone-2's
    // API stayed readable (the silent stall of kumahq/kuma #16428). Both Kuma lines name
    // the copies alike.
    for kuma in [V2, MAIN] {
        let (doc, _) = assert_exactly(
            kuma,
            "S5-kds-stall-zone2/frozen",
            vec![
                row(
                    "MeshCircuitBreaker",
                    "demo-app-to-redis-65xb45x2xfd5bf7f",
                    "drifted",
                ),
                row("MeshRetry", "stall-retry-4xbz25444fdw6xwc", "missing"),
                row("MeshTrafficPermission", "redis-7w7bc2f55x7w9d29", "orphaned"),
            ],
        );
        let drifted = &doc["discrepancies"][0]["differences"][0];
        assert_eq!(drifted["path"], ".to[0].default.connectionLimits.maxConnections");
        assert_eq!(
            (drifted["expected"].clone(), drifted["actual"].clone()),
            (4.into(), 3.into())
        );
    }
}

/// Kuma main accepts, through a zone's API, a synced copy written over with
/// `kuma.io/origin: zone` (2.14.3 refuses: "is immutable"); the zone then holds its own
/// resource under the copy's name and sends it up. Deleted, the copy stays missing (delta
/// KDS thinks it delivered it). Once the global changes the policy, the zone's sync from
/// the global fails on it ("resource already exists") and restarts on every try, so
/// nothing new reaches that zone (kumahq/kuma #18208). kuma-sync must name exactly that.
#[test]
fn real_kuma_3_faults_are_reported_exactly() {
    let cases: [(&str, Vec<Row>); 3] = [
        (
            "S6-faults/deleted-copy",
            vec![row(
                "MeshCircuitBreaker",
                "demo-app-to-redis-65xb45x2xfd5bf7f",
                "missing",
            )],
        ),
        (
            "S6-faults/hijacked-copy",
            vec![
                row(
                    "MeshCircuitBreaker",
                    "demo-app-to-redis-65xb45x2xfd5bf7f",
                    "missing",
                ),
                row("MeshCircuitBreaker", "s6-edit-554wz85756fw625b", "missing"),
            ],
        ),
        (
            "S6-faults/hijack-loop",
            vec![
                row("MeshCircuitBreaker", "s6-edit-554wz85756fw625b", "missing"),
                row("MeshRetry", "after-hijack-f698wx4cbzxx64c7", "missing"),
            ],
        ),
    ];
    for (scenario, want) in cases {
        let (doc, text) = assert_exactly(MAIN, scenario, want);
        assert_eq!(
            doc["zones"][0]["state"], "converged",
            "{scenario}: zone-1 is untouched: {text}"
        );
    }
    // Where the name is taken, the reason says by whom, and what it does to the stream.
    let (_, doc, text) = verify_recorded(MAIN, "S6-faults/hijack-loop");
    let detail = doc["discrepancies"][0]["detail"].as_str().expect("a detail");
    assert!(
        detail.starts_with(
            "zone-2 holds its own resource under this name (kuma.io/origin: zone, of zone zone-2)"
        ) && detail.contains("resource already exists"),
        "{text}"
    );
}

/// Every KDS response the probe recorded from a real global decodes, and what it carries
/// is what a real zone stored: the same names and specs as zone-2's copies of the
/// global's policies, type by type.
#[test]
fn the_probe_decodes_every_response_real_kuma_sent() {
    let mut checked = 0;
    let universal = [V2, MAIN].into_iter().flat_map(|kuma| {
        [
            "S0-baseline",
            "S1-federate",
            "S2-zone-origin",
            "S3-kds-sync-disabled",
        ]
        .map(|s| (kuma, s))
    });
    // The Kubernetes global's responses, against its Universal zone-2's copies.
    let kubernetes = [(V2_KUBERNETES, "K1-federate"), (MAIN_KUBERNETES, "KM1-federate")];
    for (kuma, scenario) in universal.chain(kubernetes) {
        {
            let dir = recordings(kuma).join(scenario).join("kds");
            if !dir.is_dir() {
                continue;
            }
            let replayed =
                kds_probe::record::replay(&dir).unwrap_or_else(|e| panic!("{kuma:?} {scenario}: {e}"));
            assert!(!replayed.is_empty(), "{kuma:?} {scenario}");
            let mut sent: BTreeSet<(String, String, u128)> = BTreeSet::new();
            let mut types = BTreeSet::new();
            for r in &replayed {
                assert!(
                    r.undecodable.is_empty(),
                    "{kuma:?} {scenario}: {:?}",
                    r.undecodable
                );
                assert_eq!(r.removed, 0, "{kuma:?} {scenario}: first states only");
                types.insert(r.type_url.clone());
                sent.extend(r.decoded.iter().map(|d| {
                    (
                        d.rtype.name().to_owned(),
                        d.name.clone(),
                        kuma_model::fingerprint(&d.spec).0,
                    )
                }));
            }
            let stored: BTreeSet<(String, String, u128)> =
                zone_copies_of_the_global(&recordings(kuma).join(scenario).join("zone-2"))
                    .into_iter()
                    .filter(|(t, _, _)| types.contains(t))
                    .collect();
            assert!(sent.len() >= 3, "{kuma:?} {scenario}: {sent:#?}");
            assert_eq!(
                sent, stored,
                "{kuma:?} {scenario}: KDS (left) against zone-2's REST (right)"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 10,
        "recordings of S0-S3 on 2.14.3 and on main, and of K1 and KM1"
    );
}

/// A zone's copies of the global's own resources, as its REST listings recorded them.
fn zone_copies_of_the_global(dir: &Path) -> BTreeSet<(String, String, u128)> {
    let mut out = BTreeSet::new();
    for entry in fs::read_dir(dir).expect("zone-2 recorded") {
        let path = entry.expect("entry").path();
        let page: Value = serde_json::from_slice(&fs::read(&path).expect("read")).expect("json");
        let loaded = kuma_model::read::read_str("zone-2", &page.to_string(), &Default::default());
        let Ok(loaded) = loaded else { continue };
        out.extend(
            loaded
                .resources
                .iter()
                .filter(|r| r.label(kuma_model::labels::ORIGIN) == Some(kuma_model::labels::ORIGIN_GLOBAL))
                .filter(|r| r.label(kuma_model::labels::ZONE).is_none())
                .map(|r| {
                    (
                        r.rtype.name().to_owned(),
                        r.name.clone(),
                        kuma_model::fingerprint(&r.spec).0,
                    )
                }),
        );
    }
    out
}

/// The kinds kuma-sim models as Kuma does; HostnameGenerators are a listed deviation
/// (`docs/conformance.md`), Zones and ZoneIngresses are the lab's own records.
pub(super) const REPRODUCED: [&str; 6] = [
    "Mesh",
    "MeshCircuitBreaker",
    "MeshTrafficPermission",
    "MeshTimeout",
    "MeshRetry",
    "MeshService",
];

/// Kuma's default policies of a new mesh, on 2.x and on Kuma 3: kuma-sim creates them
/// itself.
pub(super) const KUMA_DEFAULTS: [&str; 5] = [
    "mesh-circuit-breaker-all-default",
    "mesh-retry-all-default",
    "mesh-timeout-all-default",
    "mesh-gateways-timeout-all-default",
    "mesh-timeout-to-all-default",
];

/// Labels Kuma writes itself when it stores a resource: not part of what a user gave.
pub(super) const KUMA_WRITES: [&str; 5] = [
    "kuma.io/origin",
    "kuma.io/zone",
    "kuma.io/env",
    "kuma.io/mesh",
    "kuma.io/display-name",
];

/// One resource as compared: control plane, type, mesh, name, labels, spec fingerprint.
pub(super) type Held = (String, String, String, String, Vec<(String, String)>, u128);

/// The listings one control plane recorded of the kinds kuma-sim models, as (type, text);
/// a kind with no listing (a type that Kuma lacks, or nothing of it) is left out.
pub(super) fn reproduced_listings(kuma: Kuma, scenario: &str, cp: &str) -> Vec<(&'static str, String)> {
    REPRODUCED
        .into_iter()
        .filter_map(|t| {
            let rtype = kuma_model::ResourceType::from_name(t).expect("known");
            let path = recordings(kuma)
                .join(scenario)
                .join(cp)
                .join(format!("{}.json", rtype.info().rest_path));
            Some((t, fs::read_to_string(&path).ok()?))
        })
        .collect()
}

fn recorded_items(kuma: Kuma, scenario: &str, cp: &str) -> Vec<Value> {
    let mut items = Vec::new();
    for (_, text) in reproduced_listings(kuma, scenario, cp) {
        let page: Value = serde_json::from_str(&text).expect("a recorded page");
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
    }
    items
}

pub(super) fn held(cp: &str, r: &kuma_model::Resource) -> Held {
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
fn recorded_state(kuma: Kuma, scenario: &str) -> BTreeSet<Held> {
    let mut out = BTreeSet::new();
    for cp in ["global", "zone-1", "zone-2"] {
        let page =
            serde_json::json!({"items": recorded_items(kuma, scenario, cp), "total": null, "next": null});
        let loaded = kuma_model::read::read_str(cp, &page.to_string(), &Default::default())
            .expect("recorded items read");
        out.extend(loaded.resources.iter().map(|r| held(cp, r)));
    }
    out
}

/// What a user made in the scenario, recovered from the recording: the global's and each
/// zone's own resources without what Kuma wrote itself.
fn scenario_inputs(kuma: Kuma, scenario: &str) -> kuma_sim::lab::Scenario {
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
                // Kuma 3 labels the global's own resources `kuma.io/origin: global`.
                None => {
                    matches!(label("kuma.io/origin"), None | Some("global"))
                        && label("kuma.io/zone").is_none()
                }
                Some(zone) => label("kuma.io/origin") == Some("zone") && label("kuma.io/zone") == Some(zone),
            }
    };
    let zones = ["zone-1", "zone-2"]
        .map(|zone| {
            serde_json::json!({
                "name": zone,
                "environment": {"type": "universal"},
                "resources": recorded_items(kuma, scenario, zone).iter().filter(|i| own(i, Some(zone))).map(strip).collect::<Vec<_>>(),
            })
        })
        .to_vec();
    let scenario = serde_json::json!({
        "global": {
            "environment": {"type": "universal"},
            "tls": true,
            "resources": recorded_items(kuma, scenario, "global").iter().filter(|i| own(i, None)).map(strip).collect::<Vec<_>>(),
        },
        "meshes": [{"name": "default"}],
        "zones": zones,
        "ports": "ephemeral",
        "kumaVersion": match kuma.version {
            "2.14.3" => "2",
            _ => "3",
        },
    });
    kuma_sim::lab::Scenario::from_yaml(&scenario.to_string()).expect("a scenario kuma-sim takes")
}

/// kuma-sim, given what a user did in a scenario recorded on real Kuma, must end up
/// holding what real Kuma held: the same names (hashed the same way), labels and specs on
/// every control plane, for every kind it models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kuma_sim_reproduces_the_states_real_kuma_reached() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    for (kuma, scenario) in [V2, MAIN].into_iter().flat_map(|kuma| {
        [
            "S0-baseline",
            "S1-federate",
            "S2-zone-origin",
            "S3-kds-sync-disabled",
        ]
        .map(|s| (kuma, s))
    }) {
        let want = recorded_state(kuma, scenario);
        // The recording holds each zone's copy of a default policy under its hashed name.
        assert!(
            want.iter()
                .any(|h| h.0 == "zone-2" && h.3 == "mesh-retry-all-default-4266fddczv5d2fvv"),
            "{kuma:?} {scenario}: {want:#?}"
        );
        assert!(
            want.len() >= 15,
            "{kuma:?} {scenario}: {} resources recorded",
            want.len()
        );
        assert_kuma_sim_reaches(kuma, scenario, scenario_inputs(kuma, scenario), &want).await;
    }
}

/// Starts a kuma-sim lab on `inputs` and waits until it holds exactly `want`, real Kuma's
/// state after the same scenario; else fails with what only one of them held.
pub(super) async fn assert_kuma_sim_reaches(
    kuma: Kuma,
    scenario: &str,
    inputs: kuma_sim::lab::Scenario,
    want: &BTreeSet<Held>,
) {
    let lab = kuma_sim::lab::Lab::start(inputs).await.expect("lab starts");
    let state = |lab: &kuma_sim::lab::Lab| {
        let mut got = BTreeSet::new();
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
        .wait_until(|lab| state(lab) == *want, std::time::Duration::from_secs(20))
        .await;
    let got = state(&lab);
    lab.shutdown().await;
    if settled.is_err() {
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(want).collect();
        panic!(
            "{kuma:?} {scenario}: kuma-sim differs from real Kuma\n  real Kuma only: {missing:#?}\n  kuma-sim only: {extra:#?}"
        );
    }
}
