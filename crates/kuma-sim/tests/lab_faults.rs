//! Each fault produces its observable effect in the stores and the global's zone
//! records, and heals.

use std::time::Duration;

use crate::lab_support::*;
use kuma_model::{Environment, hash::hashed_name, labels, resource::expected_name_in_zone};
use kuma_sim::{GlobalStore, lab::Lab};
use serde_json::json;

/// The zone-1 copy of a global MeshCircuitBreaker (universal global and zone).
fn in_zone_1(name: &str) -> String {
    expected_name_in_zone(&mcb(name, 0), &Environment::Universal, &Environment::Universal)
}

/// The stats of the zone's current subscription for one type.
fn current_stats(global: &GlobalStore, zone: &str, type_url: &str) -> kuma_sim::TypeStats {
    global
        .zone(zone)
        .and_then(|z| z.subscriptions.last().cloned())
        .and_then(|s| s.stats.get(type_url).copied())
        .unwrap_or_default()
}

async fn create_and_wait_in_zone_2(lab: &Lab, name: &str) {
    lab.create_on_global(mcb(name, 1)).expect("created");
    let expected = expected_name_in_zone(&mcb(name, 1), &Environment::Universal, &Environment::kubernetes());
    let zone_2 = lab.zone_store("zone-2").expect("zone-2").clone();
    lab.wait_until(|_| zone_2.get(&mcb_key(&expected)).is_some(), WAIT)
        .await
        .expect("zone-2 receives it");
}

/// NACK: the global records rejected responses, the zone applies nothing of the type;
/// healing (a reconnect) brings the missed policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_shows_as_rejected_responses_and_heals() {
    let lab = converged_lab(federate()).await;
    let zone = lab.zone("zone-1").expect("zone-1");
    zone.faults().nack(rtype("MeshCircuitBreaker"), true);
    lab.create_on_global(mcb("nacked", 5)).expect("created");
    let global = lab.global_store().clone();
    lab.wait_until(
        |_| current_stats(&global, "zone-1", "MeshCircuitBreaker").responses_rejected >= 1,
        WAIT,
    )
    .await
    .expect("the global records the NACK");
    assert!(zone.store().get(&mcb_key(&in_zone_1("nacked"))).is_none());
    assert!(zone.status().nacks_sent >= 1);
    assert!(
        lab.faults().zones["zone-1"]
            .nack
            .contains(&rtype("MeshCircuitBreaker"))
    );

    zone.faults().heal();
    let store = zone.store().clone();
    lab.wait_until(|_| store.get(&mcb_key(&in_zone_1("nacked"))).is_some(), WAIT)
        .await
        .expect("a reconnect brings the full state");
    assert!(lab.faults().zones["zone-1"].is_empty());
    lab.shutdown().await;
}

/// Stop-ACK: after one unacknowledged response the global sends nothing more of that type
/// to that zone, while other zones keep receiving; lifting it releases the held ACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ack_starves_the_type_until_the_ack_is_sent() {
    let lab = converged_lab(federate()).await;
    let zone = lab.zone("zone-1").expect("zone-1");
    zone.faults().stop_ack(rtype("MeshCircuitBreaker"), true);
    // The first change is applied but not acknowledged...
    lab.create_on_global(mcb("first", 1)).expect("created");
    let store = zone.store().clone();
    lab.wait_until(|_| store.get(&mcb_key(&in_zone_1("first"))).is_some(), WAIT)
        .await
        .expect("applied");
    let sent_before = lab
        .global()
        .await
        .recorded_responses()
        .iter()
        .filter(|r| r.client_id == "zone-1" && r.type_url == "MeshCircuitBreaker")
        .count();
    // ...so the second never comes, though zone-2 gets it.
    create_and_wait_in_zone_2(&lab, "second").await;
    assert!(store.get(&mcb_key(&in_zone_1("second"))).is_none());
    let sent_after = lab
        .global()
        .await
        .recorded_responses()
        .iter()
        .filter(|r| r.client_id == "zone-1" && r.type_url == "MeshCircuitBreaker")
        .count();
    assert_eq!(sent_before, sent_after, "nothing more sent to the starving zone");

    zone.faults().stop_ack(rtype("MeshCircuitBreaker"), false);
    lab.wait_until(|_| store.get(&mcb_key(&in_zone_1("second"))).is_some(), WAIT)
        .await
        .expect("the held ACK re-arms the global");
    lab.shutdown().await;
}

/// Stall: the zone stops receiving while its health checks keep succeeding on the global;
/// lifting it replaces the dead stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_stream_keeps_passing_health_checks() {
    let lab = converged_lab(federate()).await;
    let zone = lab.zone("zone-1").expect("zone-1");
    let sessions = zone.status().sessions;
    zone.faults().stall(true);
    create_and_wait_in_zone_2(&lab, "during-stall").await;
    let global = lab.global_store().clone();
    let checks = zone.status().health_checks_ok;
    let hc_time = global.zone("zone-1").and_then(|z| z.health_check_time);
    lab.wait_until(
        |lab| {
            lab.zone("zone-1")
                .is_ok_and(|z| z.status().health_checks_ok >= checks + 2)
                && global.zone("zone-1").and_then(|z| z.health_check_time) > hc_time
        },
        WAIT,
    )
    .await
    .expect("health checks go on");
    assert!(zone.store().get(&mcb_key(&in_zone_1("during-stall"))).is_none());
    assert!(
        global.zone("zone-1").is_some_and(|z| z.is_online()),
        "still online on the global"
    );

    zone.faults().stall(false);
    let store = zone.store().clone();
    lab.wait_until(
        |_| store.get(&mcb_key(&in_zone_1("during-stall"))).is_some(),
        WAIT,
    )
    .await
    .expect("the new stream resyncs");
    assert!(zone.status().sessions > sessions);
    lab.shutdown().await;
}

/// Disconnect: the global closes the old subscription and records a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_and_reconnect_shows_in_subscriptions() {
    let lab = converged_lab(federate()).await;
    let global = lab.global_store().clone();
    let before = global.zone("zone-1").expect("known").subscriptions.len();
    lab.zone("zone-1").expect("zone-1").disconnect_for(Duration::ZERO);
    lab.wait_until(
        |_| {
            global.zone("zone-1").is_some_and(|z| {
                z.subscriptions.len() > before
                    && z.is_online()
                    && z.subscriptions[..z.subscriptions.len() - 1]
                        .iter()
                        .all(|s| s.disconnect_time.is_some())
            })
        },
        WAIT,
    )
    .await
    .expect("a new subscription, the old one closed");
    lab.shutdown().await;
}

/// Drop and edit a copy locally: the zone drifts until a heal resyncs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_drop_and_edit_persist_until_healed() {
    let lab = converged_lab(federate()).await;
    let zone = lab.zone("zone-1").expect("zone-1");
    let store = zone.store().clone();
    let guide = mcb_key("demo-app-to-redis-65xb45x2xfd5bf7f");
    let timeout_key = key(
        "MeshCircuitBreaker",
        Some("default"),
        &in_zone_1("mesh-circuit-breaker-all-default"),
    );
    lab.wait_until(
        |_| store.get(&guide).is_some() && store.get(&timeout_key).is_some(),
        WAIT,
    )
    .await
    .expect("synced");
    let original = store.get(&timeout_key).expect("present").spec;
    assert!(zone.drop_copy(&guide));
    assert!(zone.edit_copy(&timeout_key, json!({"targetRef": {"kind": "Mesh"}})));
    // A later change of the same type does not heal them (deltas only).
    create_and_wait_in_zone_2(&lab, "unrelated").await;
    lab.wait_until(|_| store.get(&mcb_key(&in_zone_1("unrelated"))).is_some(), WAIT)
        .await
        .expect("deltas still flow");
    assert!(store.get(&guide).is_none());
    assert_ne!(store.get(&timeout_key).expect("present").spec, original);
    assert_eq!(lab.faults().zones["zone-1"].local_changes.len(), 2);

    zone.faults().heal();
    lab.wait_until(
        |_| store.get(&guide).is_some() && store.get(&timeout_key).is_some_and(|r| r.spec == original),
        WAIT,
    )
    .await
    .expect("the full resync heals drift");
    lab.shutdown().await;
}

/// Flap: a kind vanishes from the Kubernetes zone for a while (its zone-origin policies
/// vanish from the global too) and comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_kind_vanishes_and_returns() {
    let lab = converged_lab(federate()).await;
    lab.create_on_zone(
        "zone-2",
        mcb("local", 2).with_label(labels::NAMESPACE, "kuma-demo"),
    )
    .expect("created");
    let global = lab.global_store().clone();
    let on_global = mcb_key(&hashed_name("default", "local", &["zone-2", "kuma-demo"]));
    lab.wait_until(|_| global.get(&on_global).is_some(), WAIT)
        .await
        .expect("synced up");
    let zone = lab.zone("zone-2").expect("zone-2");
    let store = zone.store().clone();
    let count = names(store.as_ref(), "MeshCircuitBreaker").len();
    assert!(count >= 3);
    zone.flap(rtype("MeshCircuitBreaker"), Duration::from_secs(3));
    assert!(names(store.as_ref(), "MeshCircuitBreaker").is_empty());
    lab.wait_until(|_| global.get(&on_global).is_none(), WAIT)
        .await
        .expect("the global sees the zone's policy gone");
    lab.wait_until(
        |_| names(store.as_ref(), "MeshCircuitBreaker").len() == count && global.get(&on_global).is_some(),
        WAIT,
    )
    .await
    .expect("the kind returns, and with it the policy on the global");
    lab.shutdown().await;
}

/// Global restart: every zone reconnects and sync resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_restart_reconnects_every_zone() {
    let lab = converged_lab(federate()).await;
    let sessions: Vec<u64> = lab.zones().iter().map(|z| z.status().sessions).collect();
    lab.restart_global().await.expect("restarts");
    lab.wait_until(
        |lab| {
            lab.zones()
                .iter()
                .zip(&sessions)
                .all(|(z, before)| z.status().sessions > *before && z.status().connected)
        },
        WAIT,
    )
    .await
    .expect("zones reconnect");
    lab.create_on_global(mcb("after-restart", 4)).expect("created");
    let store = lab.zone_store("zone-1").expect("zone-1").clone();
    lab.wait_until(
        |_| store.get(&mcb_key(&in_zone_1("after-restart"))).is_some(),
        WAIT,
    )
    .await
    .expect("sync resumes");
    assert_eq!(lab.faults().global.restarts, 1);
    lab.shutdown().await;
}

/// Delete a zone on the global: its resources go with it (and leave the other zones)
/// until the zone reconnects and sends them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_zone_loses_its_resources_until_it_resyncs() {
    let lab = converged_lab(federate()).await;
    lab.create_on_zone(
        "zone-2",
        mcb("owned", 2).with_label(labels::NAMESPACE, "kuma-demo"),
    )
    .expect("created");
    let global = lab.global_store().clone();
    let on_global = mcb_key(&hashed_name("default", "owned", &["zone-2", "kuma-demo"]));
    let zone_1 = lab.zone_store("zone-1").expect("zone-1").clone();
    let in_zone_1 = mcb_key(&expected_name_in_zone(
        &mcb(&on_global.name, 0)
            .with_label(labels::ZONE, "zone-2")
            .with_label(labels::NAMESPACE, "kuma-demo")
            .with_label(labels::DISPLAY_NAME, "owned"),
        &Environment::Universal,
        &Environment::Universal,
    ));
    lab.wait_until(|_| zone_1.get(&in_zone_1).is_some(), WAIT)
        .await
        .expect("reaches zone-1");
    assert_eq!(lab.delete_zone_on_global("zone-2"), Some(1));
    assert!(global.get(&on_global).is_none());
    lab.wait_until(|_| zone_1.get(&in_zone_1).is_none(), WAIT)
        .await
        .expect("zone-1 loses it");
    lab.zone("zone-2").expect("zone-2").faults().heal();
    lab.wait_until(
        |_| global.get(&on_global).is_some() && zone_1.get(&in_zone_1).is_some(),
        WAIT,
    )
    .await
    .expect("the zone's next full state restores it");
    assert!(global.zone("zone-2").is_some(), "the Zone is created again");
    lab.shutdown().await;
}

/// Resurrect: a zone-origin policy its zone deleted is written back on the global and
/// reaches the other zone again, though its zone no longer has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resurrected_zone_policy_comes_back_from_the_dead() {
    let lab = converged_lab(federate()).await;
    lab.create_on_zone(
        "zone-2",
        mcb("ghost", 2).with_label(labels::NAMESPACE, "kuma-demo"),
    )
    .expect("created");
    let global = lab.global_store().clone();
    let on_global = mcb_key(&hashed_name("default", "ghost", &["zone-2", "kuma-demo"]));
    lab.wait_until(|_| global.get(&on_global).is_some(), WAIT)
        .await
        .expect("synced up");
    lab.zone_store("zone-2")
        .expect("zone-2")
        .delete(&mcb_key("ghost.kuma-demo"));
    lab.wait_until(|_| global.get(&on_global).is_none(), WAIT)
        .await
        .expect("deleted on the global");
    let buried = lab.deleted_zone_resources().await;
    assert!(buried.iter().any(|r| r.key() == on_global));
    let back = lab.resurrect(&on_global).await.expect("known");
    assert_eq!(back.label(labels::ZONE), Some("zone-2"));
    assert!(global.get(&on_global).is_some());
    let zone_1 = lab.zone_store("zone-1").expect("zone-1").clone();
    lab.wait_until(
        |_| {
            names(zone_1.as_ref(), "MeshCircuitBreaker")
                .iter()
                .any(|n| n.starts_with("ghost-"))
        },
        WAIT,
    )
    .await
    .expect("the ghost reaches zone-1");
    assert_eq!(lab.faults().global.resurrected.len(), 1);
    lab.shutdown().await;
}

/// A zone that holds its own resource under a synced copy's name (what Kuma 3's REST API
/// lets a user make, `docs/conformance.md` S6) fails every response of that type from the
/// global, as real Kuma did ("resource already exists"), and its sync restarts again and
/// again: nothing new of the type arrives until the resource is deleted, then everything
/// does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_resource_under_a_copys_name_stops_the_sync_until_it_is_gone() {
    let mut scenario = federate();
    scenario.kuma_version = Some("3".to_owned());
    let lab = converged_lab(scenario).await;
    let zone = lab.zone("zone-1").expect("zone-1");
    let store = zone.store().clone();
    let copy = in_zone_1("demo-app-to-redis");
    lab.wait_until(|_| store.get(&mcb_key(&copy)).is_some(), WAIT)
        .await
        .expect("zone-1 holds the copy");
    let mut taken = store.get(&mcb_key(&copy)).expect("the copy");
    taken
        .labels
        .insert(labels::ORIGIN.to_owned(), labels::ORIGIN_ZONE.to_owned());
    taken.labels.insert(labels::ZONE.to_owned(), "zone-1".to_owned());
    store.upsert(taken.clone());

    let before = zone.status().sessions;
    lab.create_on_global(mcb("demo-app-to-redis", 9))
        .expect("updated");
    lab.create_on_global(mcb("later", 3)).expect("created");
    lab.wait_until(|_| zone.status().sessions >= before + 3, WAIT)
        .await
        .expect("the sync restarts, again and again");
    let status = zone.status();
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("resource already exists")),
        "{status:?}"
    );
    assert_eq!(store.get(&mcb_key(&copy)), Some(taken), "the zone's own stays");
    assert!(
        store.get(&mcb_key(&in_zone_1("later"))).is_none(),
        "nothing new of the type arrives"
    );

    store.delete(&mcb_key(&copy));
    lab.wait_until(
        |_| {
            store.get(&mcb_key(&in_zone_1("later"))).is_some()
                && store.get(&mcb_key(&copy)).is_some_and(|c| {
                    c.label(labels::ORIGIN) == Some("global")
                        && c.spec["to"][0]["default"]["connectionLimits"]["maxConnections"] == 9
                })
        },
        WAIT,
    )
    .await
    .expect("healed: the copy and the later policy arrive");
    lab.shutdown().await;
}
