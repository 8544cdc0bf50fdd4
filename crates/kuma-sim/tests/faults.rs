//! Each fault knob, the size limit, HealthCheck and restart have an observable effect.

use std::time::Duration;

use crate::common::*;
use kds_wire::KumaResource;
use kuma_model::Environment;
use kuma_sim::{KdsServerConfig, Undecodable};
use prost::Message;
use tonic::Code;

/// While stalled, requests are read and recorded but nothing is sent; lifting the stall
/// releases what was due.
#[tokio::test]
async fn stall_holds_responses_until_lifted() {
    let (store, handle) = start(Environment::Universal).await;
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.subscribe("MeshCircuitBreaker").await;
    let first = zone.expect_response().await;
    handle.faults().stall(true);
    store.upsert(mcb("during-stall"));
    zone.ack(&first).await;
    zone.subscribe("MeshRetry").await;
    // The MeshRetry request is handled only after the server's pass over the ACK.
    tokio::time::timeout(
        WAIT,
        handle.wait_for_records(|req, _| req.iter().any(|r| r.type_url == "MeshRetry")),
    )
    .await
    .expect("requests are still read while stalled");
    assert_eq!(handle.recorded_responses().len(), 1, "nothing sent while stalled");
    assert_eq!(handle.open_streams(), 1, "the stream stays open");

    handle.faults().stall(false);
    let mut released = vec![
        zone.expect_response().await.type_url,
        zone.expect_response().await.type_url,
    ];
    released.sort();
    assert_eq!(released, ["MeshCircuitBreaker", "MeshRetry"]);
}

/// `close_streams` ends every open stream with the chosen status.
#[tokio::test]
async fn close_streams_ends_streams_with_status() {
    let (_store, handle) = start(Environment::Universal).await;
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.subscribe("MeshRetry").await;
    zone.expect_response().await;
    assert_eq!(
        handle.faults().close_streams(Code::Aborted, "simulated failure"),
        1
    );
    let status = zone.next().await.expect_err("the stream ends");
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(status.message(), "simulated failure");
}

/// `delay` holds each response back at least that long.
#[tokio::test]
async fn delay_holds_responses_back() {
    let (_store, handle) = start(Environment::Universal).await;
    let mut zone = Zone::connect(&handle, "zone-1").await;
    let delay = Duration::from_millis(300);
    handle.faults().delay(delay);
    let started = tokio::time::Instant::now();
    zone.subscribe("MeshRetry").await;
    zone.expect_response().await;
    assert!(
        started.elapsed() >= delay,
        "answered after {:?}",
        started.elapsed()
    );
}

/// Injected resources that no client can decode, then their removal on `clear`.
#[tokio::test]
async fn undecodable_resources_are_injected_and_cleared() {
    let (_store, handle) = start(Environment::Universal).await;
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.subscribe("MeshCircuitBreaker").await;
    let first = zone.expect_response().await;
    zone.ack(&first).await;

    handle
        .faults()
        .undecodable(rtype("MeshCircuitBreaker"), Undecodable::SpecNotJson);
    let bad_spec = zone.expect_response().await;
    assert_eq!(keys(&bad_spec), ["kuma-sim-undecodable.default"]);
    let kr = &decode(&bad_spec)["kuma-sim-undecodable.default"];
    let spec = kr.spec.as_ref().expect("spec present");
    assert!(serde_json::from_slice::<serde_json::Value>(&spec.value).is_err());
    zone.ack(&bad_spec).await;

    handle
        .faults()
        .undecodable(rtype("MeshCircuitBreaker"), Undecodable::GarbageResource);
    let garbage = zone.expect_response().await;
    let any = garbage.resources[0].resource.as_ref().expect("Any present");
    assert!(KumaResource::decode(any.value.as_slice()).is_err());
    zone.ack(&garbage).await;

    handle.faults().clear();
    let cleared = zone.expect_response().await;
    assert_eq!(cleared.removed_resources, ["kuma-sim-undecodable.default"]);
}

/// The oversize fault sends a message past 10 MiB; a client with Kuma's limit refuses it.
#[tokio::test]
async fn oversize_message_breaks_the_client_limit() {
    let (_store, handle) = start(Environment::Universal).await;
    handle.faults().oversize(rtype("MeshRetry"));
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.subscribe("MeshRetry").await;
    let status = zone.next().await.expect_err("the client refuses the message");
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    let sent = handle.recorded_responses();
    assert!(sent[0].encoded_len > MAX_MESSAGE, "{} bytes", sent[0].encoded_len);
}

/// Without the fault, the server keeps its own send limit, as grpc-go does for Kuma.
#[tokio::test]
async fn server_refuses_to_send_past_its_limit() {
    let cfg = KdsServerConfig {
        max_message_size: 512,
        ..KdsServerConfig::default()
    };
    let (store, handle) = start_with(Environment::Universal, cfg).await;
    store.upsert(mcb("big").with_label("padding", &"x".repeat(1024)));
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.subscribe("MeshCircuitBreaker").await;
    let status = zone.next().await.expect_err("the stream fails");
    assert_eq!(status.code(), Code::ResourceExhausted);
}

/// HealthCheck needs `client-id`, refreshes only an existing zone, returns the interval.
#[tokio::test]
async fn health_check() {
    let cfg = KdsServerConfig {
        health_check_interval: Duration::from_secs(7),
        ..KdsServerConfig::default()
    };
    let (store, handle) = start_with(Environment::Universal, cfg).await;
    let status = health(channel(&handle).await, None).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);

    assert_eq!(
        health(channel(&handle).await, Some("probe"))
            .await
            .expect("answered"),
        Duration::from_secs(7)
    );
    assert!(handle.zones().is_empty(), "no zone is created by a health check");

    store.set_zone_enabled("zone-1", true);
    health(channel(&handle).await, Some("zone-1"))
        .await
        .expect("answered");
    assert!(handle.zones()["zone-1"].health_check_time.is_some());
}

/// Kuma's default interval is zero.
#[tokio::test]
async fn health_check_default_interval_is_zero() {
    let (_store, handle) = start(Environment::Universal).await;
    assert_eq!(
        health(channel(&handle).await, Some("zone-1"))
            .await
            .expect("answered"),
        Duration::ZERO
    );
}

/// ZoneToGlobalSync runs with reversed roles: the global subscribes to every type zones
/// provide and creates the Zone (the lab tests cover the rest of the protocol).
#[tokio::test]
async fn zone_to_global_sync_subscribes_to_zone_types() {
    let (store, handle) = start(Environment::Universal).await;
    let mut client = kds_wire::kds_sync_service_client::KdsSyncServiceClient::new(channel(&handle).await);
    let (_tx, rx) = tokio::sync::mpsc::channel::<kds_wire::DeltaDiscoveryResponse>(1);
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    request
        .metadata_mut()
        .insert("client-id", "zone-1".parse().expect("ascii"));
    let mut requests = client
        .zone_to_global_sync(request)
        .await
        .expect("served")
        .into_inner();
    let first = tokio::time::timeout(WAIT, requests.message())
        .await
        .expect("in time")
        .expect("a request")
        .expect("not closed");
    assert_eq!(first.resource_names_subscribe, ["*"]);
    assert_eq!(first.node.map(|n| n.id).as_deref(), Some("zone-1"));
    assert!(
        kuma_model::ResourceType::from_name(&first.type_url).is_some_and(|t| t.info().flows_zone_to_global()),
        "{}",
        first.type_url
    );
    assert!(store.zone("zone-1").is_some(), "the Zone is created");
}

/// Restart breaks open streams and serves the same store again on the same address.
#[tokio::test]
async fn restart_breaks_streams_and_serves_again() {
    let (store, mut handle) = start(Environment::Universal).await;
    store.upsert(mcb("survivor"));
    let addr = handle.local_addr();
    let mut zone = Zone::connect(&handle, "zone-1").await;
    zone.subscribe("MeshCircuitBreaker").await;
    zone.expect_response().await;

    handle.restart().await.expect("restarts on the same port");
    let status = zone.next().await.expect_err("the old stream is broken");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(handle.local_addr(), addr);

    let mut again = Zone::connect(&handle, "zone-1").await;
    again.subscribe("MeshCircuitBreaker").await;
    let r = again.expect_response().await;
    assert_eq!(r.nonce, "1", "a new stream starts its own nonces");
    assert_eq!(r.resources.len(), 1, "the store survived");
    assert_eq!(handle.zones()["zone-1"].subscriptions.len(), 2);
    handle.shutdown().await;
}
