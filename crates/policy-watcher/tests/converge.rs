//! Every sync rule and every state, on hand-written multi-zone scenarios.

use crate::common::*;
use kuma_model::{
    CpRole, Environment, KumaLine, Resource, hash::hashed_name, labels, resource::expected_name_in_zone,
};
use policy_watcher::{Change, Direction, Engine, Report, Selection, State, ZoneState};
use serde_json::json;

/// The federate guide's state once converged: two policies on the global and their
/// copies in a universal and a Kubernetes zone.
fn converged() -> Engine {
    let mut e = engine();
    for src in [mcb("demo-app-to-redis", 2), mtp("redis")] {
        e.apply(&CpRole::Global, Change::Upsert(src.clone()));
        for z in [Z1, Z2] {
            e.apply(&zone(z), Change::Upsert(copy_in_zone(&src, z)));
        }
    }
    e
}

fn states(report: &Report) -> Vec<(String, State, String)> {
    report
        .discrepancies
        .iter()
        .map(|d| (d.zone.clone(), d.state, d.name.clone()))
        .collect()
}

#[test]
fn federate_guide_converges_in_universal_and_kubernetes_zones() {
    let e = converged();
    let report = Report::build(&e);
    assert!(report.converged, "{:#?}", report.discrepancies);
    assert!(report.discrepancies.is_empty());
    for z in &report.zones {
        assert_eq!(z.state, ZoneState::Converged);
        assert_eq!(z.counts[&State::Synced], 2, "{}", z.zone);
    }
}

#[test]
fn a_deleted_copy_is_missing_under_its_expected_name() {
    let mut e = converged();
    let copy = copy_in_zone(&mcb("demo-app-to-redis", 2), Z2);
    assert_eq!(copy.name, "demo-app-to-redis-65xb45x2xfd5bf7f.kuma-system");
    let changes = e.apply(&zone(Z2), Change::Delete(copy.key()));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].after[0].state, State::Missing);
    let report = Report::build(&e);
    assert!(!report.converged);
    assert_eq!(
        states(&report),
        vec![(Z2.into(), State::Missing, copy.name.clone())]
    );
    let d = &report.discrepancies[0];
    assert_eq!(d.source.as_deref(), Some("demo-app-to-redis"));
    assert_eq!(d.detail, "not on zone-2; the global has demo-app-to-redis");
    assert_eq!(e.zone_state(Z2), ZoneState::Diverged);
    assert_eq!(e.zone_state(Z1), ZoneState::Converged);
}

/// Kuma main lets a zone's API overwrite a synced copy as a zone resource (`kuma.io/origin:
/// zone`); the global's copy is then missing under a name the zone holds, and kuma-sync says
/// whose resource sits there (recorded on real Kuma: `conformance/kuma-main/S6-faults`).
#[test]
fn a_copy_overwritten_as_a_zone_resource_is_missing_and_says_who_holds_the_name() {
    let mut e = converged();
    let copy = copy_in_zone(&mcb("demo-app-to-redis", 2), Z2);
    let mut squatter = mcb("demo-app-to-redis", 99)
        .with_label(labels::ORIGIN, "zone")
        .with_label(labels::ZONE, Z2);
    squatter.name = copy.name.clone();
    e.apply(&zone(Z2), Change::Upsert(squatter));
    let report = Report::build(&e);
    // The zone now also sends its resource up; the global does not hold that yet.
    let missing: Vec<_> = report
        .discrepancies
        .iter()
        .map(|d| (d.direction, d.state, d.name.as_str()))
        .collect();
    assert_eq!(
        missing,
        vec![
            (Direction::GlobalToZone, State::Missing, copy.name.as_str()),
            (
                Direction::ZoneToGlobal,
                State::Missing,
                "demo-app-to-redis-65xb45x2xfd5bf7f-vc2xz52f24444724"
            ),
        ]
    );
    let d = &report.discrepancies[0];
    assert!(
        d.detail.starts_with(
            "zone-2 holds its own resource under this name (kuma.io/origin: zone, of zone zone-2), \
             not a copy of the global's demo-app-to-redis; KDS never overwrites it"
        ),
        "{}",
        d.detail
    );
    assert!(d.detail.contains("resource already exists"), "{}", d.detail);
}

#[test]
fn an_edited_copy_is_drifted_with_the_differing_paths() {
    let mut e = converged();
    let edited = copy_in_zone(&mcb("demo-app-to-redis", 3), Z1);
    e.apply(&zone(Z1), Change::Upsert(edited));
    let report = Report::build(&e);
    assert_eq!(
        states(&report),
        vec![(
            Z1.into(),
            State::Drifted,
            "demo-app-to-redis-65xb45x2xfd5bf7f".into()
        )]
    );
    assert_eq!(
        report.discrepancies[0].paths,
        vec![".to[0].default.connectionLimits.maxConnections"]
    );
    // Editing it back heals it.
    e.apply(
        &zone(Z1),
        Change::Upsert(copy_in_zone(&mcb("demo-app-to-redis", 2), Z1)),
    );
    assert!(Report::build(&e).converged);
}

#[test]
fn changing_the_global_drifts_every_zone_until_copies_follow() {
    let mut e = converged();
    let changes = e.apply(&CpRole::Global, Change::Upsert(mcb("demo-app-to-redis", 5)));
    assert_eq!(changes.len(), 2, "one slot per zone");
    assert!(changes.iter().all(|c| c.after[0].state == State::Drifted));
    for z in [Z1, Z2] {
        e.apply(
            &zone(z),
            Change::Upsert(copy_in_zone(&mcb("demo-app-to-redis", 5), z)),
        );
    }
    assert!(Report::build(&e).converged);
}

#[test]
fn copies_of_a_deleted_source_are_orphaned() {
    let mut e = converged();
    e.apply(&CpRole::Global, Change::Delete(mtp("redis").key()));
    let report = Report::build(&e);
    let orphaned: Vec<_> = report
        .discrepancies
        .iter()
        .filter(|d| d.state == State::Orphaned)
        .collect();
    assert_eq!(orphaned.len(), 2);
    assert_eq!(orphaned[0].detail, "the global no longer has redis");
}

#[test]
fn kds_sync_disabled_sources_are_not_expected_and_their_copies_are_orphaned() {
    let mut e = converged();
    let disabled = mtp("redis").with_label(labels::KDS_SYNC, "disabled");
    e.apply(&CpRole::Global, Change::Upsert(disabled.clone()));
    let report = Report::build(&e);
    assert_eq!(report.discrepancies.len(), 2);
    assert!(report.discrepancies.iter().all(|d| d.state == State::Orphaned));
    assert!(
        report.discrepancies[0]
            .detail
            .contains("kuma.io/kds-sync: disabled"),
        "{}",
        report.discrepancies[0].detail
    );
    // Once the zones dropped their copies, nothing is expected.
    for z in [Z1, Z2] {
        e.apply(&zone(z), Change::Delete(copy_in_zone(&mtp("redis"), z).key()));
    }
    assert!(Report::build(&e).converged);
}

#[test]
fn a_second_copy_under_a_stray_name_is_unexpected() {
    let mut e = converged();
    let mut stray = copy_in_zone(&mcb("demo-app-to-redis", 2), Z1);
    stray.name = "demo-app-to-redis-old".into();
    e.apply(&zone(Z1), Change::Upsert(stray));
    let report = Report::build(&e);
    assert_eq!(
        states(&report),
        vec![(Z1.into(), State::Unexpected, "demo-app-to-redis-old".into())]
    );
    assert!(
        report.discrepancies[0]
            .detail
            .contains("demo-app-to-redis-65xb45x2xfd5bf7f")
    );
    // Without the right copy, the expected one is missing too.
    e.apply(
        &zone(Z1),
        Change::Delete(copy_in_zone(&mcb("demo-app-to-redis", 2), Z1).key()),
    );
    let got: Vec<State> = Report::build(&e).discrepancies.iter().map(|d| d.state).collect();
    assert_eq!(got, vec![State::Missing, State::Unexpected]);
}

#[test]
fn producer_policies_flow_from_zone_to_global_and_to_other_zones_only() {
    let mut e = converged();
    let local = k8s_producer(Z2, mcb("local-cb", 7));
    e.apply(&zone(Z2), Change::Upsert(local.clone()));
    let report = Report::build(&e);
    // Not yet on the global, so not expected in zone-1 either.
    assert_eq!(report.discrepancies.len(), 1);
    let d = &report.discrepancies[0];
    assert_eq!(
        (d.zone.as_str(), d.direction, d.state),
        (Z2, Direction::ZoneToGlobal, State::Missing)
    );
    assert_eq!(d.detail, "not on the global; zone-2 has local-cb.kuma-demo");

    let on_global = copy_on_global(&local, Z2);
    assert_eq!(
        on_global.name,
        kuma_model::hash::hashed_name("default", "local-cb", &[Z2, "kuma-demo"])
    );
    e.apply(&CpRole::Global, Change::Upsert(on_global.clone()));
    let report = Report::build(&e);
    assert_eq!(
        states(&report),
        vec![(Z1.into(), State::Missing, on_global.name.clone())]
    );

    e.apply(&zone(Z1), Change::Upsert(copy_in_zone(&on_global, Z1)));
    let report = Report::build(&e);
    assert!(report.converged, "{:#?}", report.discrepancies);
    // zone-2 never receives its own policy back; it counts its zone-to-global copy.
    assert_eq!(
        report.zones.iter().find(|z| z.zone == Z2).unwrap().counts[&State::Synced],
        3
    );
    assert_eq!(
        report.zones.iter().find(|z| z.zone == Z1).unwrap().counts[&State::Synced],
        3
    );
}

#[test]
fn policies_of_universal_zones_never_cross_zones() {
    // Kuma computes the role `system` without a namespace, whatever the label says.
    let mut e = converged();
    let local = local_to(Z1, mcb("local-cb", 7)).with_label(labels::POLICY_ROLE, "producer");
    e.apply(&zone(Z1), Change::Upsert(local.clone()));
    e.apply(&CpRole::Global, Change::Upsert(copy_on_global(&local, Z1)));
    assert!(
        Report::build(&e).converged,
        "{:#?}",
        Report::build(&e).discrepancies
    );
}

#[test]
fn consumer_policies_stay_in_their_zone() {
    let mut e = converged();
    let local = local_to(Z1, mcb("consumer-cb", 1)).with_label(labels::POLICY_ROLE, "consumer");
    e.apply(&zone(Z1), Change::Upsert(local.clone()));
    let on_global = copy_on_global(&local, Z1);
    e.apply(&CpRole::Global, Change::Upsert(on_global.clone()));
    assert!(Report::build(&e).converged);
    // A copy that reached zone-2 anyway is orphaned: the global does not send it.
    e.apply(&zone(Z2), Change::Upsert(copy_in_zone(&on_global, Z2)));
    let report = Report::build(&e);
    assert_eq!(report.discrepancies.len(), 1);
    assert_eq!(report.discrepancies[0].state, State::Orphaned);
    assert!(report.discrepancies[0].detail.contains("policy-role: producer"));
}

#[test]
fn a_disabled_origin_zone_stops_its_policies_reaching_others() {
    let mut e = converged();
    let local = k8s_producer(Z2, mcb("local-cb", 7));
    let on_global = copy_on_global(&local, Z2);
    e.apply(&zone(Z2), Change::Upsert(local));
    e.apply(&CpRole::Global, Change::Upsert(on_global.clone()));
    e.apply(&zone(Z1), Change::Upsert(copy_in_zone(&on_global, Z1)));
    assert!(Report::build(&e).converged);

    let changes = e.apply(&CpRole::Global, Change::Upsert(zone_resource(Z2, false)));
    assert_eq!(
        changes.len(),
        1,
        "only zone-1's copy of zone-2's policy is affected"
    );
    let report = Report::build(&e);
    assert_eq!(report.discrepancies[0].state, State::Orphaned);
    assert!(report.discrepancies[0].detail.contains("zone-2 is disabled"));

    e.apply(&CpRole::Global, Change::Upsert(zone_resource(Z2, true)));
    assert!(Report::build(&e).converged);
}

#[test]
fn zone_origin_copies_whose_zone_dropped_them_are_orphaned() {
    let mut e = converged();
    let local = local_to(Z1, mcb("local-cb", 7));
    e.apply(&zone(Z1), Change::Upsert(local.clone()));
    e.apply(&CpRole::Global, Change::Upsert(copy_on_global(&local, Z1)));
    assert!(Report::build(&e).converged);
    e.apply(&zone(Z1), Change::Delete(local.key()));
    let report = Report::build(&e);
    assert_eq!(report.discrepancies.len(), 1);
    let d = &report.discrepancies[0];
    assert_eq!((d.direction, d.state), (Direction::ZoneToGlobal, State::Orphaned));
    assert_eq!(d.detail, "zone-1 no longer has local-cb");
}

#[test]
fn resources_of_a_zone_that_does_not_exist_are_unexpected_until_it_does() {
    let mut e = converged();
    let ghost = copy_on_global(&local_to("zone-9", mcb("ghost", 1)), "zone-1");
    let ghost = ghost.with_label(labels::ZONE, "zone-9");
    e.apply(&CpRole::Global, Change::Upsert(ghost));
    let report = Report::build(&e);
    assert!(!report.converged);
    assert_eq!(report.discrepancies.len(), 1);
    assert_eq!(
        (
            report.discrepancies[0].zone.as_str(),
            report.discrepancies[0].state
        ),
        ("zone-9", State::Unexpected)
    );
    // Once the global knows the zone, it is merely unmonitored.
    e.apply(&CpRole::Global, Change::Upsert(zone_resource("zone-9", true)));
    let report = Report::build(&e);
    assert!(report.converged, "{:#?}", report.discrepancies);
    assert_eq!(report.unmonitored_zones, vec!["zone-9".to_owned()]);
}

#[test]
fn an_unreadable_control_plane_is_never_converged() {
    let mut e = converged();
    e.set_readable(&zone(Z2), false);
    assert_eq!(e.zone_state(Z2), ZoneState::Unknown);
    assert_eq!(e.zone_state(Z1), ZoneState::Converged);
    assert!(!Report::build(&e).converged);
    e.set_readable(&CpRole::Global, false);
    assert_eq!(e.zone_state(Z1), ZoneState::Unknown);
    e.set_readable(&CpRole::Global, true);
    e.set_readable(&zone(Z2), true);
    assert!(Report::build(&e).converged);
}

#[test]
fn unselected_types_meshes_and_secrets_are_ignored() {
    let mut e = Engine::new(
        topology(),
        policy_watcher::Selection::new([rtype("MeshTrafficPermission")], Some(vec!["default".into()])),
    );
    assert!(!Report::build(&e).converged, "zones never read are unknown");
    for z in [Z1, Z2] {
        e.load(&zone(z), Vec::new());
    }
    e.apply(&CpRole::Global, Change::Upsert(mcb("demo-app-to-redis", 2)));
    let mut other_mesh = mtp("redis");
    other_mesh.mesh = Some("other".into());
    e.apply(&CpRole::Global, Change::Upsert(other_mesh));
    assert!(Report::build(&e).converged);
    assert_eq!(e.observed_len(&CpRole::Global), 0);

    let mut default = engine();
    let secret = kuma_model::Resource::new(rtype("Secret"), Some("default"), "s", serde_json::json!({}));
    default.apply(&CpRole::Global, Change::Upsert(secret));
    assert_eq!(
        default.observed_len(&CpRole::Global),
        0,
        "secrets are not read by default"
    );
}

#[test]
fn replace_deletes_what_a_snapshot_no_longer_has() {
    let mut e = converged();
    let z1 = vec![copy_in_zone(&mcb("demo-app-to-redis", 2), Z1)];
    let changes = e.replace(&zone(Z1), z1);
    assert_eq!(changes.len(), 1);
    let report = Report::build(&e);
    assert_eq!(
        states(&report),
        vec![(Z1.into(), State::Missing, copy_in_zone(&mtp("redis"), Z1).name)]
    );
}

#[test]
fn a_relabelled_resource_moves_to_its_new_identity() {
    let mut e = converged();
    // Same key, new display name: the old identity's copy is gone, a new one appears.
    let renamed = copy_in_zone(&mtp("redis"), Z1).with_label(labels::DISPLAY_NAME, "renamed");
    e.apply(&zone(Z1), Change::Upsert(renamed));
    let report = Report::build(&e);
    let got: Vec<State> = report.discrepancies.iter().map(|d| d.state).collect();
    assert_eq!(
        got,
        vec![State::Missing, State::Orphaned],
        "{:#?}",
        report.discrepancies
    );
}

#[test]
fn a_zone_is_judged_from_its_first_read() {
    let mut e = engine();
    e.apply(&CpRole::Global, Change::Upsert(mcb("cb", 1)));
    assert_eq!(e.zone_state(Z1), ZoneState::Unknown, "never read");
    assert_eq!(e.counts().count(), 0, "nothing judged before a zone is read");
    // An empty first read still is a read: the policy is missing there.
    let changes = e.replace(&zone(Z1), Vec::new());
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].after[0].state, State::Missing);
    assert_eq!(e.zone_state(Z1), ZoneState::Diverged);
    assert_eq!(e.zone_state(Z2), ZoneState::Unknown);
    // A zone read before the global is judged when the global is.
    let mut e = engine();
    let src = mcb("cb", 1);
    e.apply(&zone(Z2), Change::Upsert(copy_in_zone(&src, Z2)));
    assert_eq!(e.zone_state(Z2), ZoneState::Unknown);
    let changes = e.replace(&CpRole::Global, vec![src]);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].after[0].state, State::Synced);
    assert_eq!(e.zone_state(Z2), ZoneState::Converged);
}

#[test]
fn what_the_global_sends_to_a_zone() {
    let mut e = engine();
    let cb = mcb("cb", 1);
    e.apply(&CpRole::Global, Change::Upsert(cb.clone()));
    let off = mcb("off", 1).with_label(labels::KDS_SYNC, "disabled");
    e.apply(&CpRole::Global, Change::Upsert(off));
    let sent: Vec<_> = e.sent_to(Z1).collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.name, "cb");
    assert_eq!(sent[0].1, kuma_model::fingerprint(&cb.spec));
    assert!(sent[0].0.spec.is_null(), "metadata only");
    // A Kubernetes zone's producer goes to the other zones, never back to its own.
    let producer = copy_on_global(&k8s_producer(Z2, mcb("z2-cb", 1)), Z2);
    e.apply(&CpRole::Global, Change::Upsert(producer.clone()));
    assert!(e.sent_to(Z1).any(|(r, _)| r.name == producer.name));
    assert!(!e.sent_to(Z2).any(|(r, _)| r.name == producer.name));
}

/// Kuma's `mesh-service` full-sync case, in our own names: a MeshService made in zone-1
/// reaches the global (origin zone, hashed name) and zone-2 under the same hashed name
/// with `kuma.io/origin: global` and `kuma.io/zone: zone-1`. The zone's own copy carries
/// no label at all, as Kuma's stores hold it.
#[test]
fn a_zone_service_relayed_by_the_global_is_a_copy_in_the_other_zone() {
    let local = Resource::new(
        rtype("MeshService"),
        Some("default"),
        "payments",
        json!({"ports": [{"port": 8080, "appProtocol": "http"}], "state": "Available"}),
    );
    let on_global = copy_on_global(&local, Z1)
        .with_label(labels::ORIGIN, labels::ORIGIN_ZONE)
        .with_label(labels::ZONE, Z1);
    let relayed = {
        let mut r = on_global.clone();
        r.name = expected_name_in_zone(&on_global, &Environment::Universal, &env_of(Z2));
        r.with_label(labels::ORIGIN, labels::ORIGIN_GLOBAL)
    };
    assert_eq!(
        relayed.name,
        format!("{}.kuma-system", hashed_name("default", "payments", &[Z1]))
    );
    let mut e = engine();
    e.load(&CpRole::Global, vec![on_global]);
    e.load(&zone(Z1), vec![local]);
    e.load(&zone(Z2), vec![relayed.clone()]);
    let report = Report::build(&e);
    assert!(report.converged, "{:#?}", report.discrepancies);
    assert_eq!(
        report.zones[1].counts[&State::Synced],
        1,
        "zone-2 holds the relayed copy"
    );

    let mut edited = relayed.clone();
    edited.spec["state"] = json!("Unavailable");
    e.apply(&zone(Z2), Change::Upsert(edited));
    assert_eq!(
        states(&Report::build(&e)),
        vec![(Z2.to_owned(), State::Drifted, relayed.name.clone())]
    );
    e.apply(&zone(Z2), Change::Delete(relayed.key()));
    assert_eq!(
        states(&Report::build(&e)),
        vec![(Z2.to_owned(), State::Missing, relayed.name.clone())]
    );
}

/// Kuma's `policy-with-kds-disabled` case: a zone's policy labelled
/// `kuma.io/kds-sync: disabled` never leaves the zone (`ZoneProvidedFilter`).
#[test]
fn a_zone_policy_with_kds_sync_disabled_is_not_expected_on_the_global() {
    let local = policy(
        "MeshTimeout",
        "zone-only",
        json!({"to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "20s"}}]}),
    )
    .with_label(labels::KDS_SYNC, "disabled");
    let mut e = engine();
    e.load(&CpRole::Global, Vec::new());
    e.load(&zone(Z1), vec![local.clone()]);
    e.load(&zone(Z2), Vec::new());
    let report = Report::build(&e);
    assert!(report.converged, "{:#?}", report.discrepancies);
    // A copy on the global anyway is one the zone does not send: orphaned, and why.
    let stale = copy_on_global(&local, Z1)
        .with_label(labels::ORIGIN, labels::ORIGIN_ZONE)
        .with_label(labels::ZONE, Z1);
    e.apply(&CpRole::Global, Change::Upsert(stale.clone()));
    let report = Report::build(&e);
    assert_eq!(
        states(&report),
        vec![(Z1.to_owned(), State::Orphaned, stale.name.clone())]
    );
    assert!(
        report.discrepancies[0].detail.contains("kds-sync"),
        "{:?}",
        report.discrepancies[0]
    );
}

/// A producer policy from the Kubernetes zone-2 and its copy on the global, for the
/// version-dependent rules below.
fn producer_from_zone_2(spec: serde_json::Value) -> (Resource, Resource) {
    let local = k8s_producer(Z2, policy("MeshTimeout", "redis-timeout", spec));
    let on_global = copy_on_global(&local, Z2);
    (local, on_global)
}

fn engine_on(kuma: KumaLine) -> Engine {
    Engine::new(topology().with_kuma(kuma), Selection::every_synced(kuma))
}

/// Kuma 2.x sends a producer policy whose top-level MeshSubset names a `kuma.io/zone`
/// only to that zone; Kuma 3 dropped the rule and sends it to every other zone.
#[test]
fn a_meshsubset_zone_policy_goes_only_to_its_zone_on_kuma_2() {
    let (local, on_global) = producer_from_zone_2(json!({
        "targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/zone": "zone-3"}},
        "to": [{"targetRef": {"kind": "MeshService", "name": "redis"}, "default": {"idleTimeout": "1m"}}],
    }));
    let mut v2 = engine_on(KumaLine::V2);
    v2.load(&CpRole::Global, vec![on_global.clone()]);
    v2.load(&zone(Z1), Vec::new());
    v2.load(&zone(Z2), vec![local.clone()]);
    let report = Report::build(&v2);
    assert!(
        report.converged,
        "zone-1 is not zone-3: {:#?}",
        report.discrepancies
    );

    // Kuma 3's producer names its service by label; the zone restriction is gone.
    let (local, on_global) = producer_from_zone_2(json!({
        "targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/zone": "zone-3"}},
        "to": [{"targetRef": {"kind": "MeshService", "labels": {"kuma.io/display-name": "redis"}},
                "default": {"idleTimeout": "1m"}}],
    }));
    let mut v3 = engine_on(KumaLine::V3);
    v3.load(&CpRole::Global, vec![on_global.clone()]);
    v3.load(&zone(Z1), Vec::new());
    v3.load(&zone(Z2), vec![local]);
    let expected = expected_name_in_zone(&on_global, &Environment::Universal, &env_of(Z1));
    assert_eq!(
        states(&Report::build(&v3)),
        vec![(Z1.to_owned(), State::Missing, expected)]
    );
}

/// Kuma 3 computes the producer role from the `to` targetRefs' labels: a producer there
/// reaches the other zones, which Kuma 2.x (reading `name`) would never send.
#[test]
fn kuma_3_producer_policies_cross_zones_by_their_targetref_labels() {
    let (local, on_global) = producer_from_zone_2(json!({
        "to": [{"targetRef": {"kind": "MeshService", "labels": {"kuma.io/display-name": "redis"}},
                "default": {"idleTimeout": "1m"}}],
    }));
    let mut copy = on_global.clone();
    copy.name = expected_name_in_zone(&on_global, &Environment::Universal, &env_of(Z1));
    let copy = copy.with_label(labels::ORIGIN, labels::ORIGIN_GLOBAL);
    let load = |kuma: KumaLine| {
        let mut e = engine_on(kuma);
        e.load(&CpRole::Global, vec![on_global.clone()]);
        e.load(&zone(Z1), vec![copy.clone()]);
        e.load(&zone(Z2), vec![local.clone()]);
        Report::build(&e)
    };
    let v3 = load(KumaLine::V3);
    assert!(v3.converged, "{:#?}", v3.discrepancies);
    assert_eq!(v3.zones[0].counts[&State::Synced], 1);
    // The same state judged by Kuma 2.x rules: the global would not send it.
    assert_eq!(
        states(&load(KumaLine::V2)),
        vec![(Z1.to_owned(), State::Orphaned, copy.name.clone())]
    );
}

/// What a person reads of a mesh with many open copies: the first few, worked out, and
/// whole counts saying how many there are.
#[test]
fn a_window_shows_the_first_discrepancies_and_counts_them_all() {
    let mut e = engine();
    for i in 0..40 {
        e.apply(&CpRole::Global, Change::Upsert(mcb(&format!("policy-{i:02}"), 2)));
    }
    for z in [Z1, Z2] {
        e.replace(&zone(z), Vec::new());
    }
    let whole = Report::build(&e);
    assert_eq!(whole.discrepancies.len(), 80, "40 missing in each zone");
    assert_eq!(whole.open(), 80);

    let window = Report::build_window(&e, &policy_watcher::Window { zone: None, limit: 7 });
    assert_eq!(window.discrepancies.len(), 7);
    assert_eq!(window.open(), 80, "counts stay whole");
    assert_eq!(window.zones, whole.zones);
    assert_eq!(window.converged, whole.converged);
    // Worked out as in the whole list, and in its order.
    assert!(
        window
            .discrepancies
            .iter()
            .all(|d| whole.discrepancies.contains(d))
    );
    assert!(window.discrepancies.is_sorted());
    // The first zone comes first: the window is a prefix by zone.
    assert!(window.discrepancies.iter().all(|d| d.zone == Z1));

    let one_zone = Report::build_window(
        &e,
        &policy_watcher::Window {
            zone: Some(Z2),
            limit: 1000,
        },
    );
    assert_eq!(one_zone.discrepancies.len(), 40);
    assert!(one_zone.discrepancies.iter().all(|d| d.zone == Z2));
}
