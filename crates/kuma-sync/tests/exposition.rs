//! The whole `/metrics` body of `kuma-sync serve` pinned in `tests/golden/metrics.txt`, as
//! node_exporter pins its own: a fixed scenario goes through the real exposition (the
//! monitor's families, events, the KDS probe's and the stall check's), so a family
//! renamed, relabelled, re-helped or dropped shows up as a diff to review.
//! `UPDATE_GOLDEN=1` rewrites the file. deploy-tests reads it as the list of every family
//! the dashboard and the alert rules may use.
//! `kuma_sync_shard_info` is in it as shard 0 of 2: `serve` exports it only when sharded.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use jiff::Timestamp;
use kds_probe::{Probe, ProbeConfig};
use kuma_model::{
    CpRole, Environment, Resource,
    fixtures::{mcb, mtp, rtype},
};
use kuma_sync::{
    canary::{Arrivals, CanaryMetrics},
    collectors::{Exposition, events::EventMetrics, leader, shard},
    stall::StallCheck,
};
use policy_watcher::{
    Engine, Selection, Shard, Topology, ZoneSpec,
    monitor::{CanarySighting, Monitor, MonitorConfig},
    source::{SourceError, insight::ZoneInsight},
};
use prometheus::Registry;
use serde_json::json;

use crate::support::{golden, promtool_check_metrics, universal_copy};

/// The probe's own zone: the global lists it, kuma-sync leaves it out of zone metrics.
const PROBE_ZONE: &str = "kuma-sync-probe";

/// `s` seconds into the scenario. Every time in it is one of these, and so is the clock
/// the aging families read: an age in the golden is the scenario's, not the run's.
fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).expect("a valid timestamp")
}

/// When the scrape happens.
fn scrape_time() -> Timestamp {
    t(90)
}

fn zone(name: &str) -> CpRole {
    CpRole::Zone(name.to_owned())
}

fn zone_resource(name: &str) -> Resource {
    Resource::new(rtype("Zone"), None, name, json!({"enabled": true}))
}

/// zone-1 converged after a flap (one propagation timed), zone-2 diverged (a copy
/// drifted, one missing, a NACK), zone-3 unreadable and incompatible, zone-4 known to the
/// global but not configured; the probe connected, one response received.
fn scrape() -> String {
    let registry = Registry::new();
    let events = EventMetrics::register(&registry).expect("event metrics");
    shard::register(&registry, Shard::new(0, 2).expect("a shard")).expect("shard info");
    leader::register(&registry).expect("the leader gauge").set(1);
    // The canary's write at 10 s reached zone-1 at 12 s; zone-2 has not been read with it.
    let canary = CanaryMetrics::register(&registry, true).expect("canary metrics");
    let sightings = BTreeMap::from([(
        zone("zone-1"),
        CanarySighting {
            sequence: u64::try_from(t(10).as_millisecond()).expect("positive"),
            since: t(12),
        },
    )]);
    Arrivals::new(t(0)).credit(&sightings, &["zone-1".to_owned(), "zone-2".to_owned()], &canary);
    let types = [rtype("MeshCircuitBreaker"), rtype("MeshTrafficPermission")];
    let zones = ["zone-1", "zone-2", "zone-3"]
        .map(|z| ZoneSpec::new(z, Environment::Universal))
        .to_vec();
    let engine = Engine::new(
        Topology::new(Environment::Universal, zones),
        Selection::new(types, None),
    );
    let monitor = Arc::new(Monitor::new(engine, MonitorConfig::default(), Box::new(events)));
    let exposition = Exposition::with_clock(
        registry.clone(),
        monitor.clone(),
        Some(PROBE_ZONE.to_owned()),
        scrape_time,
    )
    .expect("exposition");

    let mut probe_config = ProbeConfig::new("grpc://127.0.0.1:5685").expect("probe address");
    probe_config.zone_name = PROBE_ZONE.to_owned();
    probe_config.types = types.to_vec();
    let probe = Probe::new(probe_config, &registry).expect("probe");
    StallCheck::register(
        &registry,
        monitor.clone(),
        probe.view(),
        probe.config(),
        Environment::Universal,
        Duration::from_secs(60),
    )
    .expect("stall check");
    // The probe stamps a response with the wall clock as it records it, in code the
    // stream alone drives; the family is set here at a scenario time instead, so that it
    // is in the golden with its value fixed.
    probe
        .metrics()
        .last_response_timestamp
        .with_label_values(&["MeshCircuitBreaker"])
        .set(t(85).as_second() as f64);
    probe.metrics().connected.set(1);

    let (breaker, permission) = (mcb("demo-app-to-redis", 2), mtp("allow-all", "Allow"));
    let mut global = vec![breaker.clone(), permission.clone()];
    global.extend(["zone-1", "zone-2", "zone-3", "zone-4", PROBE_ZONE].map(zone_resource));
    monitor.snapshot(&CpRole::Global, global, t(0));
    let both = vec![universal_copy(&breaker), universal_copy(&permission)];
    monitor.snapshot(&zone("zone-1"), both.clone(), t(0));
    // The breaker's copy vanishes and is back within the flap window.
    monitor.snapshot(&zone("zone-1"), vec![universal_copy(&permission)], t(10));
    monitor.snapshot(&zone("zone-1"), both, t(20));
    monitor.snapshot(
        &zone("zone-2"),
        vec![universal_copy(&mcb("demo-app-to-redis", 3))],
        t(30),
    );
    monitor.failed(
        &zone("zone-3"),
        &SourceError::Unreachable {
            url: "http://zone-3:5681".into(),
            reason: "connection refused".into(),
        },
    );
    let insight = |online, last_update: i64, version: &str, compatible| ZoneInsight {
        online,
        last_update: Some(t(last_update)),
        rejected: BTreeMap::new(),
        version: Some(version.to_owned()),
        compatible,
    };
    let mut insights = BTreeMap::from([
        ("zone-1".to_owned(), insight(true, 80, "2.14.3", Some(true))),
        ("zone-2".to_owned(), insight(true, 60, "2.14.3", Some(true))),
        ("zone-3".to_owned(), insight(false, 5, "2.11.0", Some(false))),
        ("zone-4".to_owned(), insight(true, 88, "2.14.3", None)),
        (PROBE_ZONE.to_owned(), insight(true, 85, "2.14.3", Some(true))),
    ]);
    insights
        .get_mut("zone-2")
        .expect("zone-2's insight")
        .rejected
        .insert("MeshTrafficPermission".to_owned(), 2);
    monitor.zone_insights(insights);

    String::from_utf8(exposition.render().expect("render")).expect("text format is UTF-8")
}

#[test]
fn the_metrics_exposition_matches_its_golden_file() {
    let text = scrape();
    promtool_check_metrics(&text);
    golden("metrics.txt", &text);
}
