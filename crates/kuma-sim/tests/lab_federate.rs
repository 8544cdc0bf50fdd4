//! The federate guide end to end: global policies reach both zones under Kuma's names,
//! zone-origin producer policies reach the global and the other zone.

use crate::lab_support::*;
use kuma_model::{
    Environment, Resource,
    hash::hashed_name,
    labels,
    resource::{expected_name_in_zone, expected_name_on_global},
};
use serde_json::json;

/// The guide's MeshCircuitBreaker applied on a universal global lands in the universal
/// zone as `demo-app-to-redis-65xb45x2xfd5bf7f` and in the Kubernetes zone in
/// `kuma-system`, with the labels Kuma puts on copies; Kuma's default policies follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_policy_reaches_both_zones_from_a_universal_global() {
    let lab = converged_lab(federate()).await;
    let universal = lab.zone_store("zone-1").expect("zone-1").clone();
    let kubernetes = lab.zone_store("zone-2").expect("zone-2").clone();
    let in_universal = mcb_key("demo-app-to-redis-65xb45x2xfd5bf7f");
    let in_kubernetes = mcb_key("demo-app-to-redis-65xb45x2xfd5bf7f.kuma-system");
    lab.wait_until(
        |_| universal.get(&in_universal).is_some() && kubernetes.get(&in_kubernetes).is_some(),
        WAIT,
    )
    .await
    .expect("the copies arrive");
    let copy = universal.get(&in_universal).expect("present");
    assert_eq!(copy.label(labels::ORIGIN), Some("global"));
    assert_eq!(copy.label(labels::DISPLAY_NAME), Some("demo-app-to-redis"));
    assert_eq!(
        copy.spec
            .pointer("/to/0/default/connectionLimits/maxPendingRequests"),
        Some(&json!(8))
    );
    let source = lab
        .global_store()
        .get(&mcb_key("demo-app-to-redis"))
        .expect("on the global");
    assert_eq!(copy.spec, source.spec);

    // Kuma's defaults for mesh `default` were created on the global and synced.
    let default_cb = lab
        .global_store()
        .get(&mcb_key("mesh-circuit-breaker-all-default"))
        .expect("default circuit breaker on the global");
    assert_eq!(
        default_cb
            .spec
            .pointer("/to/0/default/connectionLimits/maxRetries"),
        Some(&json!(3))
    );
    let expected = expected_name_in_zone(&default_cb, &Environment::Universal, &Environment::kubernetes());
    lab.wait_until(|_| kubernetes.get(&mcb_key(&expected)).is_some(), WAIT)
        .await
        .expect("the default reaches the Kubernetes zone");
    for name in ["mesh-timeout-all-default", "mesh-gateways-timeout-all-default"] {
        assert!(
            lab.global_store()
                .get(&key("MeshTimeout", Some("default"), name))
                .is_some(),
            "{name}"
        );
    }
    assert!(
        lab.global_store()
            .get(&key(
                "Secret",
                Some("default"),
                "dataplane-token-signing-key-default-1"
            ))
            .is_some()
    );
    // The Mesh itself keeps its name in the Kubernetes zone (SkipKDSHash).
    lab.wait_until(|_| kubernetes.get(&key("Mesh", None, "default")).is_some(), WAIT)
        .await
        .expect("the Mesh reaches the Kubernetes zone");
    lab.shutdown().await;
}

/// With a Kubernetes global the policy lives in `kuma-system` there and zones get the
/// kuma-semantics 6.6 names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_policy_from_a_kubernetes_global_has_the_worked_example_names() {
    let lab = converged_lab(federate_with_global(Environment::kubernetes())).await;
    let on_global = lab
        .global_store()
        .get(&mcb_key("demo-app-to-redis.kuma-system"))
        .expect("stored in the system namespace");
    assert_eq!(on_global.label(labels::POLICY_ROLE), Some("system"));
    let universal = lab.zone_store("zone-1").expect("zone-1").clone();
    let kubernetes = lab.zone_store("zone-2").expect("zone-2").clone();
    lab.wait_until(
        |_| {
            universal
                .get(&mcb_key("demo-app-to-redis-48bc6d6w28bw7b44"))
                .is_some()
                && kubernetes
                    .get(&mcb_key("demo-app-to-redis-48bc6d6w28bw7b44.kuma-system"))
                    .is_some()
        },
        WAIT,
    )
    .await
    .expect("kuma-semantics 6.6 names in both zones");
    let copy = universal
        .get(&mcb_key("demo-app-to-redis-48bc6d6w28bw7b44"))
        .expect("present");
    assert_eq!(copy.label(labels::NAMESPACE), Some("kuma-system"));
    assert_eq!(copy.label(labels::POLICY_ROLE), Some("system"));

    // A zone-origin producer policy lands on the Kubernetes global in its system
    // namespace, and in the other zone under the same hash.
    lab.create_on_zone(
        "zone-2",
        mcb("redis-limits", 7).with_label(labels::NAMESPACE, "kuma-demo"),
    )
    .expect("created");
    let on_global = format!(
        "{}.kuma-system",
        hashed_name("default", "redis-limits", &["zone-2", "kuma-demo"])
    );
    let global = lab.global_store().clone();
    lab.wait_until(|_| global.get(&mcb_key(&on_global)).is_some(), WAIT)
        .await
        .expect("stored in the global's system namespace");
    let r = global.get(&mcb_key(&on_global)).expect("present");
    let in_zone_1 = expected_name_in_zone(&r, &Environment::kubernetes(), &Environment::Universal);
    assert_eq!(
        in_zone_1,
        hashed_name("default", "redis-limits", &["zone-2", "kuma-demo"])
    );
    lab.wait_until(|_| universal.get(&mcb_key(&in_zone_1)).is_some(), WAIT)
        .await
        .expect("reaches the universal zone");
    lab.shutdown().await;
}

/// A producer policy created in the Kubernetes zone (namespace kuma-demo) reaches the
/// global under its hashed name with origin labels, then the other zone; deleting it in
/// its zone removes it everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_origin_producer_policy_reaches_the_global_and_the_other_zone() {
    let lab = converged_lab(federate()).await;
    let local = mcb("redis-limits", 7).with_label(labels::NAMESPACE, "kuma-demo");
    lab.create_on_zone("zone-2", local).expect("created");
    let zone_copy = lab
        .zone_store("zone-2")
        .expect("zone-2")
        .get(&mcb_key("redis-limits.kuma-demo"))
        .expect("stored as <name>.<namespace>");
    assert_eq!(zone_copy.label(labels::POLICY_ROLE), Some("producer"));

    let global_name = hashed_name("default", "redis-limits", &["zone-2", "kuma-demo"]);
    assert_eq!(
        global_name,
        expected_name_on_global(
            &zone_copy,
            "zone-2",
            &Environment::kubernetes(),
            &Environment::Universal
        )
    );
    let global = lab.global_store().clone();
    lab.wait_until(|_| global.get(&mcb_key(&global_name)).is_some(), WAIT)
        .await
        .expect("the policy reaches the global");
    let on_global: Resource = global.get(&mcb_key(&global_name)).expect("present");
    assert_eq!(on_global.label(labels::ORIGIN), Some("zone"));
    assert_eq!(on_global.label(labels::ZONE), Some("zone-2"));
    assert_eq!(on_global.label(labels::NAMESPACE), Some("kuma-demo"));
    assert_eq!(on_global.label(labels::DISPLAY_NAME), Some("redis-limits"));
    assert_eq!(on_global.spec, zone_copy.spec);

    let in_zone_1 = expected_name_in_zone(&on_global, &Environment::Universal, &Environment::Universal);
    let universal = lab.zone_store("zone-1").expect("zone-1").clone();
    lab.wait_until(|_| universal.get(&mcb_key(&in_zone_1)).is_some(), WAIT)
        .await
        .expect("the policy reaches the other zone");
    assert_eq!(
        universal
            .get(&mcb_key(&in_zone_1))
            .and_then(|r| r.label(labels::ZONE).map(str::to_owned))
            .as_deref(),
        Some("zone-2")
    );
    let acknowledged = |lab: &kuma_sim::lab::Lab| {
        lab.zone_to_global_stats("zone-2")
            .get("MeshCircuitBreaker")
            .is_some_and(|s| s.responses_acknowledged >= 2 && s.responses_rejected == 0)
    };
    lab.wait_until(acknowledged, WAIT)
        .await
        .expect("the global acknowledged the full state and the policy");

    // Deleted in its zone: gone from the global and from zone-1.
    lab.zone_store("zone-2")
        .expect("zone-2")
        .delete(&mcb_key("redis-limits.kuma-demo"));
    lab.wait_until(
        |_| global.get(&mcb_key(&global_name)).is_none() && universal.get(&mcb_key(&in_zone_1)).is_none(),
        WAIT,
    )
    .await
    .expect("the deletion propagates");
    lab.shutdown().await;
}

/// A zone policy without a namespace (universal zone) reaches the global but, not being
/// a producer, no other zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn universal_zone_policies_stay_out_of_other_zones() {
    let lab = converged_lab(federate()).await;
    lab.create_on_zone("zone-1", mcb("local-only", 3))
        .expect("created");
    let global = lab.global_store().clone();
    let name = hashed_name("default", "local-only", &["zone-1"]);
    lab.wait_until(|_| global.get(&mcb_key(&name)).is_some(), WAIT)
        .await
        .expect("reaches the global");
    // The global sent zone-2 a MeshCircuitBreaker response since (the next global change
    // proves the stream is live), yet never this policy.
    lab.create_on_global(mcb("marker", 1)).expect("created");
    let kubernetes = lab.zone_store("zone-2").expect("zone-2").clone();
    let marker = expected_name_in_zone(
        &global.get(&mcb_key("marker")).expect("on the global"),
        &Environment::Universal,
        &Environment::kubernetes(),
    );
    lab.wait_until(|_| kubernetes.get(&mcb_key(&marker)).is_some(), WAIT)
        .await
        .expect("marker arrives");
    assert!(
        !names(kubernetes.as_ref(), "MeshCircuitBreaker")
            .iter()
            .any(|n| n.starts_with("local-only")),
        "a system-role zone policy must not cross zones"
    );
    lab.shutdown().await;
}

/// `skipCreatingInitialPolicies` keeps the defaults out (the signing key stays); a mesh
/// created later gets its defaults; scenario zone resources are the zone's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_defaults_and_zone_resources() {
    let text = r#"
skipCreatingInitialPolicies: ["*"]
meshes: [{name: default}]
zones:
  - name: zone-1
    resources:
      - {type: MeshRetry, name: local-retry, mesh: default, spec: {targetRef: {kind: Mesh}}}
"#;
    let mut scenario = kuma_sim::lab::Scenario::from_yaml(text).expect("valid");
    scenario.global.tls = false;
    let lab = converged_lab(scenario).await;
    let global = lab.global_store().clone();
    assert!(names(global.as_ref(), "MeshCircuitBreaker").is_empty());
    assert_eq!(
        names(global.as_ref(), "Secret"),
        ["dataplane-token-signing-key-default-1"]
    );
    assert!(lab.kds_url().starts_with("grpc://"));
    let local = lab
        .zone_store("zone-1")
        .expect("zone-1")
        .get(&key("MeshRetry", Some("default"), "local-retry"))
        .expect("created in the zone");
    assert_eq!(local.label(labels::ORIGIN), Some("zone"));
    assert_eq!(local.label(labels::ENV), Some("universal"));
    let on_global = key(
        "MeshRetry",
        Some("default"),
        &hashed_name("default", "local-retry", &["zone-1"]),
    );
    lab.wait_until(|_| global.get(&on_global).is_some(), WAIT)
        .await
        .expect("synced to the global");

    // A later mesh goes through Kuma's defaults, the skip list still applies.
    lab.create_on_global(Resource::new(rtype("Mesh"), None, "payments", json!({})))
        .expect("created");
    lab.wait_until(
        |_| {
            global
                .get(&key(
                    "Secret",
                    Some("payments"),
                    "dataplane-token-signing-key-payments-1",
                ))
                .is_some()
        },
        WAIT,
    )
    .await
    .expect("the new mesh gets its signing key");
    assert!(
        global
            .get(&key(
                "MeshCircuitBreaker",
                Some("payments"),
                "mesh-circuit-breaker-all-payments"
            ))
            .is_none()
    );
    lab.shutdown().await;
}
