//! States recorded from real Kuma on Kubernetes (`docs/conformance.md`, "Kubernetes
//! control planes"): on 2.14.3 a Kubernetes global and a Kubernetes zone-1, on main (Kuma
//! 3, which has no Kubernetes global) a Universal global and a Kubernetes zone-1; each
//! Kubernetes `kuma-cp` ran against a real `kube-apiserver` with Kuma's CRDs and admission
//! webhooks; zone-2 is Universal in both. Each control plane's listings are what `kubectl get -o json`
//! (Kubernetes) or the REST API (Universal) returned.

use std::{collections::BTreeSet, fs};

use serde_json::{Value, json};

use super::conformance::{
    Held, KUMA_DEFAULTS, KUMA_WRITES, Kuma, MAIN_KUBERNETES, Row, V2_KUBERNETES, assert_converged,
    assert_exactly, assert_kuma_sim_reaches, held, recordings, reproduced_listings,
};

/// The control planes of the Kubernetes recordings.
const CONTROL_PLANES: [&str; 3] = ["global", "zone-1", "zone-2"];

/// Kuma 3's lab ran a Universal global; 2.14.3's a Kubernetes one.
fn is_kuma_3(kuma: Kuma) -> bool {
    kuma.dir == MAIN_KUBERNETES.dir
}

fn zone_1(t: &str, n: &str, s: &str) -> Row {
    ("zone-1".to_owned(), t.to_owned(), n.to_owned(), s.to_owned())
}

/// Every item of one recorded listing.
fn listed(kuma: Kuma, scenario: &str, cp: &str, file: &str) -> Vec<Value> {
    let path = recordings(kuma).join(scenario).join(cp).join(file);
    let list: Value = serde_json::from_slice(&fs::read(&path).expect("recorded")).expect("json");
    list["items"].as_array().cloned().expect("a list")
}

/// The seed guide's question, settled on real Kuma: a MeshCircuitBreaker applied on a
/// Kubernetes global in `kuma-system` reaches zones as `demo-app-to-redis-48bc6d6w28bw7b44`
/// (the namespace is hashed in), not as the `…-65xb45x2xfd5bf7f` a Universal global gives;
/// a Kubernetes zone keeps it in its system namespace with the display name as an
/// annotation. kuma-model's naming must agree with what the real global sent.
#[test]
fn a_kubernetes_global_hashes_the_namespace_into_the_copys_name() {
    let zone_1_copy = listed(V2_KUBERNETES, "K1-federate", "zone-1", "meshcircuitbreakers.json")
        .into_iter()
        .find(|i| i["metadata"]["annotations"]["kuma.io/display-name"] == "demo-app-to-redis")
        .expect("zone-1 holds the copy");
    assert_eq!(
        zone_1_copy["metadata"]["name"],
        "demo-app-to-redis-48bc6d6w28bw7b44"
    );
    assert_eq!(zone_1_copy["metadata"]["namespace"], "kuma-system");
    assert_eq!(zone_1_copy["metadata"]["labels"]["kuma.io/origin"], "global");
    assert!(
        listed(V2_KUBERNETES, "K1-federate", "zone-2", "meshcircuitbreakers.json")
            .iter()
            .any(|i| i["name"] == "demo-app-to-redis-48bc6d6w28bw7b44"),
        "zone-2 (Universal) holds it under the same name"
    );

    // The global's own object, read as kuma-sync reads a Kubernetes listing.
    let text =
        fs::read_to_string(recordings(V2_KUBERNETES).join("K1-federate/global/meshcircuitbreakers.json"))
            .expect("recorded");
    let global = kuma_model::read::read_str("global", &text, &Default::default()).expect("reads");
    let original = global
        .resources
        .iter()
        .find(|r| r.name == "demo-app-to-redis.kuma-system")
        .expect("the global's policy");
    let k8s = kuma_model::Environment::kubernetes();
    assert_eq!(
        kuma_model::resource::expected_name_in_zone(original, &k8s, &kuma_model::Environment::Universal),
        "demo-app-to-redis-48bc6d6w28bw7b44"
    );
    assert_eq!(
        kuma_model::resource::expected_name_in_zone(original, &k8s, &k8s),
        "demo-app-to-redis-48bc6d6w28bw7b44.kuma-system"
    );
}

#[test]
fn real_kuma_on_kubernetes_states_that_synced_verify_as_converged() {
    for scenario in [
        "K1-federate",
        "K2-zone-origin",
        "K3-kds-sync-disabled",
        "K4-zone1-stopped/after",
        "K6-faults/zone1-restarted",
    ] {
        assert_converged(V2_KUBERNETES, scenario);
    }
    for scenario in ["KM1-federate", "KM2-quota/quota-removed", "KM3-zone-origin"] {
        assert_converged(MAIN_KUBERNETES, scenario);
    }
}

/// Kuma 3 keeps the Universal global's names on a Kubernetes zone (no namespace to hash
/// in) and labels the copy only with its mesh and origin.
#[test]
fn a_kuma_3_kubernetes_zone_stores_the_universal_globals_names() {
    let copy = listed(
        MAIN_KUBERNETES,
        "KM1-federate",
        "zone-1",
        "meshcircuitbreakers.json",
    )
    .into_iter()
    .find(|i| i["metadata"]["name"] == "demo-app-to-redis-65xb45x2xfd5bf7f")
    .expect("zone-1 holds the copy under the Universal global's hashed name");
    assert_eq!(copy["metadata"]["namespace"], "kuma-system");
    assert_eq!(
        copy["metadata"]["labels"],
        json!({"kuma.io/mesh": "default", "kuma.io/origin": "global"})
    );
    assert_eq!(
        copy["metadata"]["annotations"]["kuma.io/display-name"],
        "demo-app-to-redis"
    );
}

/// A ResourceQuota in zone-1's `kuma-system` refused the copy of one new MeshCircuitBreaker.
/// Kuma main did not NACK that one resource: its whole sync from the global failed and
/// restarted with back-off ("exceeded quota"), so a MeshTimeout made beside it never
/// arrived either, while zone-1 stayed connected. kuma-sync names both, and nothing else;
/// once the quota was removed the next restart delivered both (converged above).
#[test]
fn copies_a_kubernetes_zone_cannot_store_are_reported_missing_with_what_they_held_up() {
    let (doc, text) = assert_exactly(
        MAIN_KUBERNETES,
        "KM2-quota/refused",
        vec![
            zone_1(
                "MeshCircuitBreaker",
                "over-quota-46b8x4v987dcvbb5.kuma-system",
                "missing",
            ),
            zone_1(
                "MeshTimeout",
                "beside-quota-48769f7479ccd9x9.kuma-system",
                "missing",
            ),
        ],
    );
    assert_eq!(doc["zones"][1]["state"], "converged", "zone-2 got both: {text}");
}

/// zone-1's kuma-cp stopped, its API server still up, while the global raised
/// `maxConnections` from 4 to 6: the copies stay readable, so kuma-sync judges them as
/// they are (drifted, not unknown) and the global's ZoneInsight says zone-1 is offline.
#[test]
fn a_stopped_kubernetes_zone_is_judged_on_the_copies_it_still_holds() {
    let (doc, text) = assert_exactly(
        V2_KUBERNETES,
        "K4-zone1-stopped/stopped",
        vec![zone_1(
            "MeshCircuitBreaker",
            "demo-app-to-redis-48bc6d6w28bw7b44.kuma-system",
            "drifted",
        )],
    );
    let difference = &doc["discrepancies"][0]["differences"][0];
    assert_eq!(
        (difference["expected"].clone(), difference["actual"].clone()),
        (6.into(), 4.into()),
        "{text}"
    );
    assert_eq!(
        doc["zones"][1]["state"], "converged",
        "zone-2 took the change: {text}"
    );
    let insights: Value = serde_json::from_slice(
        &fs::read(recordings(V2_KUBERNETES).join("K4-zone1-stopped/stopped/global/zone-insights.json"))
            .expect("recorded"),
    )
    .expect("json");
    let zone_1_subscription = insights["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["name"] == "zone-1")
        .and_then(|i| i["subscriptions"].as_array()?.last().cloned())
        .expect("zone-1's last subscription");
    assert!(
        zone_1_subscription["disconnectTime"].is_string(),
        "the global saw zone-1 go: {zone_1_subscription}"
    );
}

/// Kuma's webhook refuses a user's edit or delete of a synced copy on a Kubernetes zone;
/// the control plane's own account can still do both (as anyone who bypasses the
/// webhook). kuma-sync names exactly those two copies; a restart of zone-1's kuma-cp
/// repaired both (`K6-faults/zone1-restarted`, converged above).
#[test]
fn copies_tampered_with_on_a_kubernetes_zone_are_reported_exactly() {
    assert_exactly(
        V2_KUBERNETES,
        "K6-faults/tampered",
        vec![
            zone_1(
                "MeshCircuitBreaker",
                "demo-app-to-redis-48bc6d6w28bw7b44.kuma-system",
                "drifted",
            ),
            zone_1(
                "MeshTrafficPermission",
                "redis-zzfd69x27d4f6cb7.kuma-system",
                "missing",
            ),
        ],
    );
}

/// What one control plane held after a scenario, of the kinds kuma-sim models, read as
/// kuma-sync reads it (a `kubectl` list or a REST page, whichever was recorded).
fn recorded_resources(kuma: Kuma, scenario: &str, cp: &str) -> Vec<kuma_model::Resource> {
    let mut out = Vec::new();
    for (t, text) in reproduced_listings(kuma, scenario, cp) {
        let loaded = kuma_model::read::read_str(cp, &text, &Default::default())
            .unwrap_or_else(|e| panic!("{scenario} {cp} {t}: {e}"));
        out.extend(loaded.resources);
    }
    out
}

fn recorded_state(kuma: Kuma, scenario: &str) -> BTreeSet<Held> {
    CONTROL_PLANES
        .iter()
        .flat_map(|cp| {
            recorded_resources(kuma, scenario, cp)
                .into_iter()
                .map(|r| held(cp, &r))
        })
        .collect()
}

/// What a user applied in a scenario, recovered from the recording: each control plane's
/// own resources (neither a copy nor a Kuma default), without what Kuma wrote itself, in
/// the form kuma-sim's scenarios take (the namespace stays as its label).
fn scenario_inputs(kuma: Kuma, scenario: &str) -> kuma_sim::lab::Scenario {
    let own = |cp: &str| -> Vec<Value> {
        recorded_resources(kuma, scenario, cp)
            .into_iter()
            .filter(|r| r.rtype.name() != "Mesh")
            .filter(|r| !KUMA_DEFAULTS.contains(&r.name.split('.').next().unwrap_or_default()))
            .filter(|r| match cp {
                // Kuma 3 labels the global's own resources `kuma.io/origin: global`.
                "global" => {
                    matches!(
                        r.label(kuma_model::labels::ORIGIN),
                        None | Some(kuma_model::labels::ORIGIN_GLOBAL)
                    ) && r.label(kuma_model::labels::ZONE).is_none()
                }
                zone => r.label(kuma_model::labels::ZONE) == Some(zone)
                    && r.label(kuma_model::labels::ORIGIN) == Some(kuma_model::labels::ORIGIN_ZONE),
            })
            .map(|r| {
                let labels: serde_json::Map<String, Value> = r
                    .labels
                    .iter()
                    .filter(|(k, _)| !KUMA_WRITES.contains(&k.as_str()) && k.as_str() != "kuma.io/policy-role")
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect();
                json!({"type": r.rtype.name(), "mesh": r.mesh, "name": r.name, "labels": labels, "spec": r.spec})
            })
            .collect()
    };
    let zone =
        |name: &str, env: &str| json!({"name": name, "environment": {"type": env}, "resources": own(name)});
    let (global_environment, line) = if is_kuma_3(kuma) {
        ("universal", "3")
    } else {
        ("kubernetes", "2")
    };
    let scenario = json!({
        "global": {"environment": {"type": global_environment}, "tls": true, "resources": own("global")},
        "meshes": [{"name": "default"}],
        "zones": [zone("zone-1", "kubernetes"), zone("zone-2", "universal")],
        "ports": "ephemeral",
        "kumaVersion": line,
    });
    kuma_sim::lab::Scenario::from_yaml(&scenario.to_string()).expect("a scenario kuma-sim takes")
}

/// kuma-sim, given what a user applied on the real Kubernetes control planes, must end up
/// holding what they held: the same names (the namespace hashed in), namespaces, labels
/// and specs, on the Kubernetes global, the Kubernetes zone and the Universal zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kuma_sim_reproduces_the_states_real_kuma_on_kubernetes_reached() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let namespace_hashed = "demo-app-to-redis-48bc6d6w28bw7b44.kuma-system";
    let universal_global = "demo-app-to-redis-65xb45x2xfd5bf7f.kuma-system";
    let cases = [
        (V2_KUBERNETES, "K1-federate", namespace_hashed),
        (V2_KUBERNETES, "K2-zone-origin", namespace_hashed),
        (V2_KUBERNETES, "K3-kds-sync-disabled", namespace_hashed),
        (MAIN_KUBERNETES, "KM1-federate", universal_global),
        (MAIN_KUBERNETES, "KM3-zone-origin", universal_global),
    ];
    for (kuma, scenario, copy) in cases {
        let want = recorded_state(kuma, scenario);
        assert!(
            want.iter().any(|h| h.0 == "zone-1" && h.3 == copy),
            "{kuma:?} {scenario}: {want:#?}"
        );
        assert_kuma_sim_reaches(kuma, scenario, scenario_inputs(kuma, scenario), &want).await;
    }
}
