//! What each zone is sent: `GlobalProvidedFilter` (kuma-semantics 3.3) end to end.

mod common;

use common::*;
use kuma_model::{Environment, Resource, hash::hashed_name};
use serde_json::json;

/// A zone-origin policy as a Kubernetes zone `zone-2` syncs it to a Kubernetes global.
fn from_zone_2(name: &str, role: &str, spec: serde_json::Value) -> Resource {
    let hashed = hashed_name("default", name, &["zone-2", "kuma-demo"]);
    Resource::new(
        rtype("MeshTimeout"),
        Some("default"),
        &format!("{hashed}.kuma-system"),
        spec,
    )
    .with_label("kuma.io/mesh", "default")
    .with_label("kuma.io/origin", "zone")
    .with_label("kuma.io/zone", "zone-2")
    .with_label("k8s.kuma.io/namespace", "kuma-demo")
    .with_label("kuma.io/display-name", name)
    .with_label("kuma.io/policy-role", role)
}

fn producer_spec() -> serde_json::Value {
    json!({"to": [{"targetRef": {"kind": "MeshService", "name": "redis"}, "default": {"idleTimeout": "1m"}}]})
}

async fn first_keys(handle: &kuma_sim::KdsHandle, zone_name: &str, type_url: &str) -> Vec<String> {
    let mut zone = Zone::connect(handle, zone_name).await;
    zone.subscribe(type_url).await;
    let mut got = keys(&zone.expect_response().await);
    got.sort();
    got
}

/// Producer policies from one zone reach the other zones, never their own; consumer
/// policies stay home; `kuma.io/kds-sync: disabled` withholds a global policy.
#[tokio::test]
async fn zone_origin_producers_cross_zones_and_kds_sync_label_overrides() {
    let (store, handle) = start(Environment::kubernetes()).await;
    store.upsert(from_zone_2("redis-timeout", "producer", producer_spec()));
    store.upsert(from_zone_2(
        "all-timeout",
        "consumer",
        json!({"to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1m"}}]}),
    ));
    let global = Resource::new(
        rtype("MeshTimeout"),
        Some("default"),
        "global-timeout.kuma-system",
        json!({}),
    )
    .with_label("kuma.io/mesh", "default")
    .with_label("k8s.kuma.io/namespace", "kuma-system");
    store.upsert(global.clone());
    store.upsert(
        Resource::new(
            rtype("MeshTimeout"),
            Some("default"),
            "hidden.kuma-system",
            json!({}),
        )
        .with_label("k8s.kuma.io/namespace", "kuma-system")
        .with_label("kuma.io/kds-sync", "disabled"),
    );

    let producer_key = format!(
        "{}.default",
        hashed_name("default", "redis-timeout", &["zone-2", "kuma-demo"])
    );
    let global_key = format!(
        "{}.default",
        hashed_name("default", "global-timeout", &["kuma-system"])
    );
    let mut expected = vec![producer_key.clone(), global_key.clone()];
    expected.sort();
    assert_eq!(first_keys(&handle, "zone-1", "MeshTimeout").await, expected);
    assert_eq!(
        first_keys(&handle, "zone-2", "MeshTimeout").await,
        [global_key],
        "not back to its origin"
    );

    // A disabled origin zone's resources are withheld; the stream sends their removal.
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.subscribe("MeshTimeout").await;
    let first = zone.expect_response().await;
    zone.ack(&first).await;
    store.set_zone_enabled("zone-2", false);
    let update = zone.expect_response().await;
    assert_eq!(update.removed_resources, [producer_key]);
    assert!(update.resources.is_empty());
}

/// Zone-origin resources keep their zone and namespace in the hash and are relabelled
/// `origin: global` by the global's mappers, as Kuma does.
#[tokio::test]
async fn zone_origin_copies_are_relabelled() {
    let (store, handle) = start(Environment::kubernetes()).await;
    store.upsert(from_zone_2("redis-timeout", "producer", producer_spec()));
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.subscribe("MeshTimeout").await;
    let response = zone.expect_response().await;
    let decoded = decode(&response);
    let (_, kr) = decoded.iter().next().expect("the producer policy");
    let l = labels(kr);
    assert_eq!(l["kuma.io/origin"], "global");
    assert_eq!(l["kuma.io/zone"], "zone-2");
    assert_eq!(l["kuma.io/display-name"], "redis-timeout");
}

/// Without `producer-policy-flow` a zone gets no other zone's policies; without
/// `hash-suffix` names are not hashed.
#[tokio::test]
async fn features_change_what_is_sent() {
    let (store, handle) = start(Environment::kubernetes()).await;
    store.upsert(from_zone_2("redis-timeout", "producer", producer_spec()));
    store.upsert(
        Resource::new(
            rtype("MeshTimeout"),
            Some("default"),
            "global-timeout.kuma-system",
            json!({}),
        )
        .with_label("k8s.kuma.io/namespace", "kuma-system"),
    );
    let mut zone = Zone::connect_with(
        channel(&handle).await,
        "zone-old",
        vec!["optional-top-level-target-ref"],
    )
    .await
    .expect("stream opens");
    zone.subscribe("MeshTimeout").await;
    assert_eq!(keys(&zone.expect_response().await), ["global-timeout.default"]);
}

/// Secrets every zone needs are sent; control-plane-internal GlobalSecrets are not; only
/// `kuma-cluster-id` of the Configs.
#[tokio::test]
async fn internal_secrets_and_configs_are_withheld() {
    let (store, handle) = start(Environment::Universal).await;
    for name in [
        "admin-user-token",
        "inter-cp-ca",
        "user-token-signing-key-1",
        "shared-secret",
    ] {
        store.upsert(Resource::new(
            rtype("GlobalSecret"),
            None,
            name,
            json!({"data": "eA=="}),
        ));
    }
    for name in ["kuma-cluster-id", "kuma-internal"] {
        store.upsert(Resource::new(rtype("Config"), None, name, json!({"config": "x"})));
    }
    assert_eq!(
        first_keys(&handle, "zone-1", "GlobalSecret").await,
        ["shared-secret."]
    );
    assert_eq!(
        first_keys(&handle, "zone-1", "Config").await,
        ["kuma-cluster-id."]
    );
    assert!(
        first_keys(&handle, "zone-1", "Dataplane").await.is_empty(),
        "zone->global types get nothing"
    );
}

/// The simulator's filter and policy-watcher's expected set are two implementations of
/// Kuma's `GlobalProvidedFilter` on purpose: the simulator is the oracle of the tests, so
/// neither may be derived from the other. They must agree on every resource a global can
/// hold, for a zone that advertises every feature (what a real Kuma 2.x zone does).
///
/// Intended differences, so left out of the comparison:
/// - the simulator models node features (a zone without `hash-suffix`,
///   `producer-policy-flow`, `optional-top-level-target-ref` or `hg-mz-selector` is sent
///   less); policy-watcher judges real zones, which advertise them all;
/// - the simulator is a Kuma 2.x global; the Kuma 3 rules exist only in policy-watcher
///   (`sync_rules`, tested there).
mod agreement {
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
}
