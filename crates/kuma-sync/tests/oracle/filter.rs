//! The simulator's filter and policy-watcher's expected set are two implementations of
//! Kuma's `GlobalProvidedFilter` on purpose: the simulator is the oracle of the tests, so
//! neither may be derived from the other. They must agree on every resource a global can
//! hold, for a zone that advertises every feature (what a real Kuma 2.x zone does).
//!
//! Intended differences, so left out of the comparison:
//! - the simulator models node features (a zone without `hash-suffix`,
//!   `producer-policy-flow`, `optional-top-level-target-ref` or `hg-mz-selector` is sent
//!   less); policy-watcher judges real zones, which advertise them all;
//! - the simulator is a Kuma 2.x global; the Kuma 3 rules exist only in policy-watcher
//!   (`sync_rules`, tested there).

use std::collections::BTreeMap;

use kds_wire::features;
use kuma_model::{KumaLine, Resource, ResourceType};
use kuma_sim::kds::generation::{ZoneView, sent_to_zone};
use policy_watcher::sync_rules::global_sends;
use proptest::prelude::*;
use serde_json::{Value, json};

fn types() -> impl Strategy<Value = ResourceType> {
    prop::sample::select(
        [
            "MeshTimeout",
            "MeshTrafficPermission",
            "MeshService",
            "MeshZoneAddress",
            "MeshGateway",
            "HostnameGenerator",
            "Mesh",
            "TrafficPermission",
            "MeshMultiZoneService",
            "Dataplane",
            "Config",
            "GlobalSecret",
            "Secret",
            "ZoneIngress",
        ]
        .map(|t| ResourceType::from_name(t).expect("known type"))
        .to_vec(),
    )
}

fn label(values: &'static [&'static str]) -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(values))
}

fn specs() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!({}),
        json!({"to": [{"targetRef": {"kind": "MeshService", "name": "redis"}, "default": {}}]}),
        json!({"to": [{"targetRef": {"kind": "MeshService", "name": "redis", "namespace": "other"}, "default": {}}]}),
        json!({"to": [{"targetRef": {"kind": "MeshHTTPRoute", "name": "r", "namespace": "kuma-demo"}, "default": {}}]}),
        json!({"to": [{"targetRef": {"kind": "Mesh"}, "default": {}}]}),
        json!({"targetRef": {"kind": "Mesh"}, "from": [{"targetRef": {"kind": "Mesh"}, "default": {}}]}),
        json!({"targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/zone": "zone-2"}},
               "to": [{"targetRef": {"kind": "MeshService", "name": "redis"}, "default": {}}]}),
        json!({"targetRef": {"kind": "MeshSubset", "tags": {"app": "web"}},
               "to": [{"targetRef": {"kind": "MeshService", "name": "redis"}, "default": {}}]}),
        json!({"selector": {"meshMultiZoneService": {"matchLabels": {"a": "b"}}}}),
    ])
}

prop_compose! {
    fn resources()(
        rtype in types(),
        name in prop::sample::select(vec![
            "redis", "zone-1.redis", "zone-3.redis", "kuma-cluster-id", "other",
            "inter-cp-ca", "user-token-signing-key-1", "zone-token-signing-key-1",
        ]),
        origin in label(&["global", "zone", "zonne", ""]),
        zone in label(&["zone-1", "zone-2", "zone-3", ""]),
        kds_sync in label(&["enabled", "disabled", "maybe"]),
        role in label(&["producer", "consumer", "system"]),
        namespace in label(&["kuma-demo", "kuma-system", ""]),
        spec in specs(),
    ) -> Resource {
        let mesh = rtype.info().is_mesh_scoped().then_some("default");
        let mut r = Resource::new(rtype, mesh, name, spec);
        for (key, value) in [
            ("kuma.io/origin", origin),
            ("kuma.io/zone", zone),
            ("kuma.io/kds-sync", kds_sync),
            ("kuma.io/policy-role", role),
            ("k8s.kuma.io/namespace", namespace),
        ] {
            if let Some(v) = value {
                r = r.with_label(key, v);
            }
        }
        r
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]
    #[test]
    fn simulator_and_watcher_send_the_same(
        r in resources(),
        to in prop::sample::select(vec!["zone-1", "zone-2", "zone-3"]),
        disabled in prop::option::of(prop::sample::select(vec!["zone-1", "zone-2", "zone-3"])),
    ) {
        let enabled: BTreeMap<String, bool> = ["zone-1", "zone-2", "zone-3"]
            .iter()
            .map(|z| (z.to_string(), Some(*z) != disabled))
            .collect();
        let view = ZoneView {
            zone: to.to_owned(),
            features: features::ALL.iter().map(|f| f.to_string()).collect(),
        };
        let sim = sent_to_zone(&r, &view, |z| enabled.get(z).copied());
        let watcher = global_sends(&r, KumaLine::V2, to, &enabled);
        prop_assert_eq!(sim, watcher.is_ok(), "{:?}: watcher says {:?}", r, watcher);
    }
}
