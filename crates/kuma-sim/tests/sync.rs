//! `GlobalToZoneSync` as kuma-semantics 3.1 describes it, driven by the generated client.

use crate::common::*;
use kuma_model::{Environment, Resource};
use serde_json::json;
use tonic::Code;

/// The first response per type is the full state, sent even when empty; nonces count up
/// per stream; the control plane says "global"; system_version_info stays empty.
#[tokio::test]
async fn initial_full_sync_of_several_types() {
    let (store, handle) = start(Environment::Universal).await;
    store.upsert(mcb("demo-app-to-redis"));
    store.upsert(Resource::new(rtype("Mesh"), None, "default", json!({})));
    let mut zone = Zone::connect(&handle, "zone-1").await;
    for t in ["Mesh", "MeshCircuitBreaker", "MeshRetry"] {
        zone.subscribe(t).await;
    }
    let mut by_type = std::collections::BTreeMap::new();
    for expected_nonce in ["1", "2", "3"] {
        let r = zone.expect_response().await;
        assert_eq!(r.nonce, expected_nonce);
        assert_eq!(r.system_version_info, "");
        assert_eq!(
            r.control_plane.as_ref().map(|c| c.identifier.as_str()),
            Some("global")
        );
        assert!(r.removed_resources.is_empty());
        by_type.insert(r.type_url.clone(), r);
    }
    assert_eq!(
        keys(&by_type["Mesh"]),
        ["default."],
        "skip-hash types keep their names"
    );
    assert_eq!(
        keys(&by_type["MeshCircuitBreaker"]),
        ["demo-app-to-redis-65xb45x2xfd5bf7f.default"]
    );
    assert!(
        by_type["MeshRetry"].resources.is_empty(),
        "an empty first response is still sent"
    );

    let mesh = &decode(&by_type["Mesh"])["default."];
    let spec = mesh.spec.as_ref().expect("spec");
    assert_eq!(spec.type_url, "type.googleapis.com/kuma.mesh.v1alpha1.Mesh");
    let mcb_kr = &decode(&by_type["MeshCircuitBreaker"])["demo-app-to-redis-65xb45x2xfd5bf7f.default"];
    let spec = mcb_kr.spec.as_ref().expect("spec");
    assert_eq!(spec.type_url, "", "Go-struct specs have an empty type_url");
    let spec: serde_json::Value = serde_json::from_slice(&spec.value).expect("JSON spec");
    assert_eq!(spec["to"][0]["targetRef"]["kind"], "Mesh");
    assert!(mcb_kr.status.is_none(), "MeshCircuitBreaker has no status");
    assert_eq!(mcb_kr.meta.as_ref().map(|m| m.version.as_str()), Some(""));
}

/// The worked example of kuma-semantics 6.6 on a universal global.
#[tokio::test]
async fn universal_global_hashes_names_and_labels_copies() {
    let (store, handle) = start(Environment::Universal).await;
    store.upsert(mcb("demo-app-to-redis"));
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.subscribe("MeshCircuitBreaker").await;
    let r = zone.expect_response().await;
    let kr = &decode(&r)["demo-app-to-redis-65xb45x2xfd5bf7f.default"];
    let meta = kr.meta.as_ref().expect("meta");
    assert_eq!(meta.name, "demo-app-to-redis-65xb45x2xfd5bf7f");
    assert_eq!(meta.mesh, "default");
    let expected: std::collections::BTreeMap<String, String> = [
        ("kuma.io/display-name", "demo-app-to-redis"),
        ("kuma.io/mesh", "default"),
        ("kuma.io/origin", "global"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(labels(kr), expected);
}

/// The worked example of kuma-semantics 6.6 on a Kubernetes global.
#[tokio::test]
async fn kubernetes_global_hashes_with_namespace() {
    let (store, handle) = start(Environment::kubernetes()).await;
    store.upsert(
        mcb("demo-app-to-redis.kuma-system")
            .with_label("k8s.kuma.io/namespace", "kuma-system")
            .with_label("kuma.io/policy-role", "system")
            .with_label("kuma.io/display-name", "demo-app-to-redis"),
    );
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.subscribe("MeshCircuitBreaker").await;
    let r = zone.expect_response().await;
    assert_eq!(keys(&r), ["demo-app-to-redis-48bc6d6w28bw7b44.default"]);
    let kr = &decode(&r)["demo-app-to-redis-48bc6d6w28bw7b44.default"];
    let got = labels(kr);
    assert_eq!(got.get("kuma.io/origin").map(String::as_str), Some("global"));
    assert_eq!(
        got.get("kuma.io/display-name").map(String::as_str),
        Some("demo-app-to-redis")
    );
    assert_eq!(
        got.get("k8s.kuma.io/namespace").map(String::as_str),
        Some("kuma-system")
    );
    assert_eq!(got.get("kuma.io/policy-role").map(String::as_str), Some("system"));
    assert_eq!(got.len(), 5);
}

/// One-shot watch: a change is held until the last response is ACKed, then sent once,
/// with changed resources in full and deleted ones in removed_resources.
#[tokio::test]
async fn changes_wait_for_ack_and_carry_removals() {
    let (store, handle) = start(Environment::Universal).await;
    store.upsert(mcb("keep"));
    store.upsert(mcb("drop"));
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.subscribe("MeshCircuitBreaker").await;
    let first = zone.expect_response().await;
    assert_eq!(first.resources.len(), 2);

    // Change while the first response is un-ACKed.
    store.delete(&mcb("drop").key());
    store.upsert(mcb("new"));
    // Barrier: a new type's first response proves the server has seen the change and
    // had its chance to send; the MeshCircuitBreaker type is not armed, so it must not.
    zone.subscribe("MeshRetry").await;
    let barrier = zone.expect_response().await;
    assert_eq!(barrier.type_url, "MeshRetry", "nothing for an un-ACKed type");

    zone.ack(&first).await;
    let update = zone.expect_response().await;
    assert_eq!(update.type_url, "MeshCircuitBreaker");
    assert_eq!(update.nonce, "3");
    let new_key = format!("{}.default", kuma_model::hash::hashed_name("default", "new", &[]));
    let drop_key = format!(
        "{}.default",
        kuma_model::hash::hashed_name("default", "drop", &[])
    );
    assert_eq!(
        keys(&update),
        [new_key],
        "only the added resource; the unchanged one is not resent"
    );
    assert_eq!(update.removed_resources, [drop_key]);

    // Exactly one: after ACKing the barrier and the update, the next response is a new
    // change, not a repeat.
    zone.ack(&update).await;
    zone.ack(&barrier).await;
    store.upsert(mcb("keep").with_label("team", "a"));
    let next = zone.expect_response().await;
    let keep_key = format!(
        "{}.default",
        kuma_model::hash::hashed_name("default", "keep", &[])
    );
    assert_eq!(
        (next.type_url.as_str(), keys(&next)),
        ("MeshCircuitBreaker", vec![keep_key])
    );
    assert_eq!(next.nonce, "4");
}

/// A NACK re-arms the watch but causes no resend: versions count as sent.
#[tokio::test]
async fn nack_causes_no_resend_and_is_recorded() {
    let (store, handle) = start(Environment::Universal).await;
    store.upsert(mcb("a"));
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.subscribe("MeshCircuitBreaker").await;
    let first = zone.expect_response().await;
    zone.nack(&first, "bad spec").await;
    store.upsert(mcb("b"));
    let next = zone.expect_response().await;
    let b_key = format!("{}.default", kuma_model::hash::hashed_name("default", "b", &[]));
    assert_eq!(
        keys(&next),
        [b_key],
        "only the change, not the NACKed resource again"
    );

    let requests = handle.recorded_requests();
    let nack = requests.iter().find(|r| r.is_nack).expect("NACK recorded");
    assert_eq!(nack.error_message.as_deref(), Some("bad spec"));
    assert_eq!(nack.response_nonce, "1");
    let stats = &handle.zones()["zone-1"].subscriptions[0].stats["MeshCircuitBreaker"];
    assert_eq!(
        (
            stats.responses_sent,
            stats.responses_rejected,
            stats.responses_acknowledged
        ),
        (2, 1, 0)
    );
}

/// Requests are recorded with what a test needs to judge a client's discipline.
#[tokio::test]
async fn requests_are_recorded() {
    let (_store, handle) = start(Environment::Universal).await;
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.subscribe("MeshTimeout").await;
    let first = zone.expect_response().await;
    zone.ack(&first).await;
    let requests = tokio::time::timeout(WAIT, handle.wait_for_records(|req, _| req.len() >= 2))
        .await
        .expect("both requests recorded");
    let (sub, ack) = (&requests[0], &requests[1]);
    assert_eq!(sub.client_id, "zone-1");
    assert_eq!(sub.node_id.as_deref(), Some("zone-1"));
    assert!(sub.has_node_metadata);
    assert_eq!(sub.features.len(), 5);
    assert_eq!(sub.subscribe, ["*"]);
    assert_eq!(sub.response_nonce, "");
    assert_eq!(
        sub.version_header, None,
        "the test client sends no version metadata"
    );
    assert!(!sub.is_nack);
    assert_eq!(
        (ack.response_nonce.as_str(), ack.has_node_metadata, ack.is_nack),
        ("1", false, false)
    );
    assert_eq!(ack.stream_id, sub.stream_id);
    let responses = handle.recorded_responses();
    assert_eq!(responses.len(), 1);
    assert_eq!(
        (responses[0].type_url.as_str(), responses[0].nonce.as_str()),
        ("MeshTimeout", "1")
    );
}

/// Without `client-id` the stream is refused; a request without type_url or a first
/// request without node ends the stream with InvalidArgument.
#[tokio::test]
async fn malformed_streams_are_rejected() {
    let (_store, handle) = start(Environment::Universal).await;
    let mut client = kds_wire::kds_sync_service_client::KdsSyncServiceClient::new(channel(&handle).await);
    let (_tx, rx) = tokio::sync::mpsc::channel::<kds_wire::DeltaDiscoveryRequest>(1);
    let refused = client
        .global_to_zone_sync(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    let status = refused.expect_err("refused without client-id");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("client-id"), "{status:?}");

    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.send(kds_wire::DeltaDiscoveryRequest {
        node: Some(kds_wire::Node {
            id: "zone-1".into(),
            metadata: None,
        }),
        ..Default::default()
    })
    .await;
    assert_eq!(
        zone.next().await.err().map(|s| s.code()),
        Some(Code::InvalidArgument)
    );

    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.send(kds_wire::DeltaDiscoveryRequest {
        type_url: "MeshTimeout".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        zone.next().await.err().map(|s| s.code()),
        Some(Code::InvalidArgument)
    );
}

/// Opening a stream creates the Zone (enabled) and a subscription; closing stamps the
/// disconnect time.
#[tokio::test]
async fn streams_create_zone_and_subscriptions() {
    let (_store, handle) = start(Environment::Universal).await;
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.subscribe("MeshTimeout").await;
    zone.expect_response().await;
    let record = &handle.zones()["zone-1"];
    assert!(record.enabled && record.is_online());
    assert_eq!(record.subscriptions[0].stats["MeshTimeout"].responses_sent, 1);
    drop(zone);
    tokio::time::timeout(WAIT, handle.wait_for_open_streams(|n| n == 0))
        .await
        .expect("stream closes after the client leaves");
    assert!(!handle.zones()["zone-1"].is_online());
}

/// A Kubernetes global cannot create a Zone whose name is not a DNS label.
#[tokio::test]
async fn kubernetes_global_refuses_non_dns_zone_names() {
    let (_store, handle) = start(Environment::kubernetes()).await;
    let refused = Zone::connect_with(channel(&handle).await, "Zone_1", vec![]).await;
    assert_eq!(refused.err().map(|s| s.code()), Some(Code::Internal));
    assert!(handle.zones().is_empty());
}

/// Kuma zones compress their requests with gzip; the server takes them.
#[tokio::test]
async fn gzip_clients_are_served() {
    let (store, handle) = start(Environment::Universal).await;
    store.upsert(mcb("compressed"));
    let mut zone = Zone::connect_gzip(&handle, "zone-1").await;
    zone.subscribe("MeshCircuitBreaker").await;
    let first = zone.expect_response().await;
    assert_eq!(first.resources.len(), 1);
    zone.ack(&first).await;
    tokio::time::timeout(
        WAIT,
        handle.wait_for_records(|req, _| req.iter().any(|r| r.response_nonce == "1")),
    )
    .await
    .expect("the compressed ACK is read");
}

/// A request past the 10 MiB limit ends the stream with the decoder's status.
#[tokio::test]
async fn oversize_requests_end_the_stream() {
    let (_store, handle) = start(Environment::Universal).await;
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.send(kds_wire::DeltaDiscoveryRequest {
        node: Some(kds_wire::Node {
            id: "zone-1".into(),
            metadata: None,
        }),
        type_url: "MeshRetry".into(),
        resource_names_subscribe: vec!["x".repeat(MAX_MESSAGE + 1)],
        ..Default::default()
    })
    .await;
    let status = zone.next().await.expect_err("refused");
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
}
