//! What each zone is sent: `GlobalProvidedFilter` (kuma-semantics 3.3) end to end.

use crate::common::*;
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
