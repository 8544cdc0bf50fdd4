//! The probe against a simulated global: full sync, deltas, ACK discipline, restarts,
//! stalls and bad resources, over loopback TCP and real TLS.

use std::{collections::BTreeSet, time::Duration};

use crate::support::*;
use kds_probe::{ConfigError, Error, Probe, ProbeConfig, ViewEvent};
use kuma_sim::Undecodable;

const TYPES: [&str; 4] = [
    "MeshTrafficPermission",
    "MeshCircuitBreaker",
    "MeshTimeout",
    "MeshRetry",
];

/// A fresh probe receives the full state of every subscribed type, under the names a
/// real zone gets, through TLS with Kuma's CA:TRUE self-signed certificate as CA file.
#[tokio::test]
async fn initial_full_sync_of_several_types() {
    let seed = [
        mtp("allow-all", "Allow"),
        mtp("deny-db", "Deny"),
        mcb("cb-all", 10),
        timeout("timeout-all"),
    ];
    let sim = sim(true, &seed).await;
    let ca = TempFile::with(sim.ca_pem().unwrap());
    let probe = spawn(config(&sim, &TYPES, Some(&ca)));
    probe.until("full sync", |v| v.all_synced()).await;

    let mut expected = vec![wire_key(&seed[0]), wire_key(&seed[1])];
    expected.sort();
    assert_eq!(probe.keys("MeshTrafficPermission"), expected);
    assert_eq!(probe.keys("MeshCircuitBreaker"), [wire_key(&seed[2])]);
    assert_eq!(probe.keys("MeshTimeout"), [wire_key(&seed[3])]);
    assert!(
        probe.keys("MeshRetry").is_empty(),
        "an empty first response still counts as synced"
    );

    let allow = probe
        .view
        .entries(rtype("MeshTrafficPermission"))
        .remove(&wire_key(&seed[0]))
        .unwrap();
    let decoded = allow.resource().expect("decodable");
    assert_eq!(decoded.spec, seed[0].spec);
    assert_eq!(decoded.label("kuma.io/display-name"), Some("allow-all"));
    assert_eq!(decoded.label("kuma.io/origin"), Some("global"));
    assert_eq!(allow.fingerprint, kuma_model::fingerprint(&seed[0].spec));

    assert_eq!(probe.metrics.connected.get(), 1);
    assert_eq!(probe.metrics.stream_starts.get(), 1);
    assert_eq!(
        probe
            .metrics
            .resources
            .with_label_values(&["MeshTrafficPermission"])
            .get(),
        2
    );
    assert!(probe.metrics.responses.with_label_values(&["MeshRetry"]).get() >= 1);
    assert!(
        probe
            .metrics
            .response_bytes
            .with_label_values(&["MeshTrafficPermission"])
            .get()
            > 0
    );
    assert!(
        probe
            .metrics
            .last_response_timestamp
            .with_label_values(&["MeshTimeout"])
            .get()
            > 1.7e9
    );
    probe
        .until("health check", |v| v.snapshot().health_check_up == Some(true))
        .await;
    assert_eq!(probe.metrics.health_check_up.get(), 1);
    probe.stop().await.expect("clean shutdown");
}

/// Creates, updates and deletes on the global reach the view, with change events.
#[tokio::test]
async fn create_update_delete_reach_the_view() {
    let sim = sim(false, &[mtp("allow-all", "Allow"), mtp("deny-db", "Deny")]).await;
    let probe = spawn(config(&sim, &TYPES, None));
    probe.until("full sync", |v| v.all_synced()).await;
    let mut events = probe.view.subscribe();
    let t = rtype("MeshTrafficPermission");

    let created = mtp("new-one", "Allow");
    sim.store().upsert(created.clone());
    probe
        .until("create", |v| v.entries(t).contains_key(&wire_key(&created)))
        .await;
    assert_eq!(
        events.recv().await.unwrap(),
        ViewEvent::Upserted {
            rtype: t,
            key: wire_key(&created)
        }
    );

    let before = probe.view.entries(t)[&wire_key(&created)].clone();
    let updated = mtp("new-one", "Deny");
    sim.store().upsert(updated.clone());
    probe
        .until("update", |v| {
            v.entries(t)[&wire_key(&updated)].resource().unwrap().spec == updated.spec
        })
        .await;
    let after = probe.view.entries(t)[&wire_key(&updated)].clone();
    assert_ne!(before.version, after.version);
    assert_ne!(before.fingerprint, after.fingerprint);
    assert_eq!(before.first_seen, after.first_seen);

    let gone = mtp("deny-db", "Deny");
    sim.store().delete(&gone.key());
    probe
        .until("delete", |v| !v.entries(t).contains_key(&wire_key(&gone)))
        .await;
    assert_eq!(
        probe.keys("MeshTrafficPermission"),
        [wire_key(&mtp("allow-all", "")), wire_key(&created)]
    );
    assert_eq!(
        probe
            .metrics
            .resources
            .with_label_values(&["MeshTrafficPermission"])
            .get(),
        2
    );
    assert_eq!(probe.view.resources(t).len(), 2);
    probe.stop().await.unwrap();
}

/// Every response is ACKed with its nonce on its stream, nothing is NACKed, and the
/// probe identifies itself as section 5 of kuma-semantics demands.
#[tokio::test]
async fn every_response_is_acked_and_none_nacked() {
    let sim = sim(false, &[mtp("allow-all", "Allow"), mcb("cb", 1)]).await;
    let mut cfg = config(&sim, &TYPES, None);
    cfg.zone_name = "probe-acks".into();
    let probe = spawn(cfg);
    probe.until("full sync", |v| v.all_synced()).await;
    for i in 0..3 {
        sim.store().upsert(mtp(&format!("extra-{i}"), "Allow"));
    }
    let t = rtype("MeshTrafficPermission");
    probe.until("extras", |v| v.entries(t).len() == 4).await;
    // Wait until the server has seen an ACK for every response it sent.
    let acked = |reqs: &[kuma_sim::RecordedRequest], resps: &[kuma_sim::RecordedResponse]| {
        resps.iter().all(|r| {
            reqs.iter().any(|q| {
                q.stream_id == r.stream_id && q.type_url == r.type_url && q.response_nonce == r.nonce
            })
        })
    };
    let requests = tokio::time::timeout(WAIT, sim.wait_for_records(acked))
        .await
        .expect("every response ACKed");
    let responses = sim.recorded_responses();
    assert!(responses.len() > TYPES.len(), "{responses:?}");

    assert!(
        requests.iter().all(|r| !r.is_nack && r.error_message.is_none()),
        "no NACK ever"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.node_id.as_deref() == Some("probe-acks")),
        "node id on every request"
    );
    assert!(requests.iter().all(|r| r.client_id == "probe-acks"));
    assert!(
        requests.iter().all(|r| r.version_header.is_none()),
        "no version metadata"
    );
    assert!(requests.iter().all(|r| r.header_features == ["hash-suffix"]));
    assert!(
        requests
            .iter()
            .all(|r| !r.features.iter().any(|f| f == "zone-ping-health"))
    );
    let initial: Vec<_> = requests.iter().filter(|r| !r.is_response_to_nonce()).collect();
    let subscribed: BTreeSet<_> = initial.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(subscribed, TYPES.into_iter().collect());
    assert_eq!(initial.len(), TYPES.len(), "one subscription per type");
    for r in &initial {
        assert_eq!(r.subscribe, ["*"]);
        assert!(r.has_node_metadata);
        let features: BTreeSet<_> = r.features.iter().map(String::as_str).collect();
        assert_eq!(features, kds_wire::features::ALL.into_iter().collect());
        assert!(r.initial_resource_versions.is_empty());
    }
    for r in requests.iter().filter(|r| r.is_response_to_nonce()) {
        assert!(!r.has_node_metadata, "ACKs carry only node.id");
        assert!(r.subscribe.is_empty() && r.unsubscribe.is_empty());
    }
    assert_eq!(sim.zones().keys().collect::<Vec<_>>(), ["probe-acks"]);
    probe.stop().await.unwrap();
}

/// Secret and GlobalSecret cannot be subscribed to, whatever the caller asks.
#[test]
fn no_secret_subscription_is_possible() {
    for secret in ["Secret", "GlobalSecret"] {
        let mut cfg = ProbeConfig::new("grpc://127.0.0.1:5685").unwrap();
        cfg.types.push(rtype(secret));
        let err = Probe::new(cfg, &prometheus::Registry::new())
            .err()
            .expect("refused");
        assert!(
            matches!(err, Error::Config(ConfigError::SecretType(s)) if s == secret),
            "{err}"
        );
        assert!(!err.is_retryable());
    }
}

/// After the global restarts the probe resubscribes; the new full state replaces the
/// view, dropping what vanished while it was away and adding what appeared.
#[tokio::test]
async fn a_server_restart_restores_the_full_state() {
    let keep = mtp("keep", "Allow");
    let vanish = mtp("vanish", "Deny");
    let mut sim = sim(true, &[keep.clone(), vanish.clone()]).await;
    let probe = spawn(config(&sim, &TYPES, None));
    probe.until("full sync", |v| v.all_synced()).await;
    assert_eq!(probe.view.entries(rtype("MeshTrafficPermission")).len(), 2);

    // The stall keeps the old stream from reporting the delete as a delta, so only the
    // full state after the restart can remove it.
    sim.faults().stall(true);
    sim.store().delete(&vanish.key());
    let appear = mtp("appear", "Allow");
    sim.store().upsert(appear.clone());
    sim.restart().await.expect("sim restarts");
    let resubscribed = |reqs: &[kuma_sim::RecordedRequest], _: &[kuma_sim::RecordedResponse]| {
        reqs.iter()
            .filter(|r| r.stream_id >= 2 && !r.is_response_to_nonce())
            .count()
            == TYPES.len()
    };
    tokio::time::timeout(WAIT, sim.wait_for_records(resubscribed))
        .await
        .expect("the probe resubscribes");
    assert!(!probe.view.all_synced(), "a new stream awaits its full state");
    assert_eq!(
        probe.view.entries(rtype("MeshTrafficPermission")).len(),
        2,
        "the old state stays until replaced"
    );
    sim.faults().stall(false);
    probe.until("resync", |v| v.all_synced()).await;

    let mut expected = vec![wire_key(&keep), wire_key(&appear)];
    expected.sort();
    assert_eq!(probe.keys("MeshTrafficPermission"), expected);
    assert_eq!(probe.metrics.stream_starts.get(), 2);
    assert!(
        probe.metrics.errors.with_label_values(&["unavailable"]).get()
            + probe.metrics.errors.with_label_values(&["stream_reset"]).get()
            + probe.metrics.errors.with_label_values(&["stream_closed"]).get()
            + probe.metrics.errors.with_label_values(&["connect"]).get()
            >= 1
    );
    assert_eq!(
        probe
            .metrics
            .resources
            .with_label_values(&["MeshTrafficPermission"])
            .get(),
        2
    );
    probe.stop().await.unwrap();
}

/// A silent stall (stream open, nothing sent) shows as a growing last-response age; the
/// age drops again once the global speaks.
#[tokio::test]
async fn a_silent_stall_shows_as_a_growing_age() {
    let sim = sim(false, &[mtp("a", "Allow")]).await;
    let probe = spawn(config(&sim, &["MeshTrafficPermission"], None));
    let t = rtype("MeshTrafficPermission");
    probe.until("full sync", |v| v.all_synced()).await;
    sim.faults().stall(true);
    let pending = mtp("pending", "Allow");
    sim.store().upsert(pending.clone());
    let responses = probe
        .metrics
        .responses
        .with_label_values(&["MeshTrafficPermission"])
        .get();

    // The age is read before the first instant and after the second, so it must have grown
    // by at least the time between them: exact, whatever the scheduler does.
    let a1 = probe.view.last_response_age(t).unwrap();
    let i1 = tokio::time::Instant::now();
    // Any amount of time works here; nothing about the outcome depends on it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let i2 = tokio::time::Instant::now();
    let a2 = probe.view.last_response_age(t).unwrap();
    assert!(a2 >= a1 + (i2 - i1), "age {a1:?} -> {a2:?} over {:?}", i2 - i1);
    assert_eq!(
        probe
            .metrics
            .responses
            .with_label_values(&["MeshTrafficPermission"])
            .get(),
        responses
    );
    assert!(!probe.view.entries(t).contains_key(&wire_key(&pending)));
    assert_eq!(probe.metrics.connected.get(), 1, "a stall is not a disconnect");

    sim.faults().stall(false);
    probe
        .until("stall lifted", |v| v.entries(t).contains_key(&wire_key(&pending)))
        .await;
    assert!(probe.view.last_response_age(t).unwrap() < a2);
    probe.stop().await.unwrap();
}

/// Resources the probe cannot decode are counted, kept as undecodable entries and still
/// ACKed; the stream carries on.
#[tokio::test]
async fn undecodable_resources_are_counted_and_acked() {
    let sim = sim(false, &[mtp("fine", "Allow")]).await;
    sim.faults()
        .undecodable(rtype("MeshTrafficPermission"), Undecodable::SpecNotJson);
    sim.faults()
        .undecodable(rtype("MeshCircuitBreaker"), Undecodable::GarbageResource);
    let probe = spawn(config(&sim, &TYPES, None));
    probe.until("full sync", |v| v.all_synced()).await;
    for t in ["MeshTrafficPermission", "MeshCircuitBreaker"] {
        assert_eq!(probe.metrics.undecodable.with_label_values(&[t]).get(), 1, "{t}");
        let entries = probe.view.entries(rtype(t));
        let bad = entries
            .get("kuma-sim-undecodable.default")
            .expect("kept under its delta key");
        assert!(bad.spec.is_none() && bad.decode_error.is_some());
    }
    assert_eq!(
        probe.view.resources(rtype("MeshTrafficPermission")).len(),
        1,
        "only the decodable one"
    );
    let acked = |reqs: &[kuma_sim::RecordedRequest], resps: &[kuma_sim::RecordedResponse]| {
        resps.iter().all(|r| {
            reqs.iter()
                .any(|q| q.stream_id == r.stream_id && q.response_nonce == r.nonce)
        })
    };
    let requests = tokio::time::timeout(WAIT, sim.wait_for_records(acked))
        .await
        .expect("all ACKed");
    assert!(requests.iter().all(|r| !r.is_nack));
    // The stream is still alive: a later change arrives.
    sim.store().upsert(mtp("later", "Allow"));
    probe
        .until("later", |v| v.entries(rtype("MeshTrafficPermission")).len() == 3)
        .await;
    assert_eq!(probe.metrics.stream_starts.get(), 1);
    probe.stop().await.unwrap();
}

/// A message over 10 MiB ends the stream with a clear class; the probe reconnects and,
/// once the global behaves, syncs again.
#[tokio::test]
async fn an_oversize_message_is_a_retryable_stream_error() {
    let sim = sim(false, &[mtp("fine", "Allow")]).await;
    sim.faults().oversize(rtype("MeshTrafficPermission"));
    let probe = spawn(config(&sim, &["MeshTrafficPermission"], None));
    probe
        .until("oversize error", |_| {
            probe
                .metrics
                .errors
                .with_label_values(&["message_too_large"])
                .get()
                >= 1
        })
        .await;
    probe
        .until("reconnect", |v| v.snapshot().stream_starts >= 2)
        .await;
    let last_error = probe.view.snapshot().last_error.unwrap_or_default();
    assert!(last_error.contains("10 MiB"), "{last_error}");
    sim.faults().clear();
    probe.until("sync after the fault", |v| v.all_synced()).await;
    assert_eq!(probe.keys("MeshTrafficPermission"), [wire_key(&mtp("fine", ""))]);
    probe.stop().await.unwrap();
}

/// `--record`: every response lands in the directory as its bytes, and replaying the
/// recording decodes it as the probe did, naming what could not be decoded.
#[tokio::test]
async fn a_recording_replays_as_the_probe_decoded_it() {
    let sim = sim(false, &[mtp("fine", "Allow"), mcb("cb", 3)]).await;
    sim.faults()
        .undecodable(rtype("MeshTrafficPermission"), Undecodable::SpecNotJson);
    let dir = std::env::temp_dir().join(format!("kds-probe-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = config(&sim, &TYPES, None);
    cfg.record = Some(dir.clone());
    let probe = spawn(cfg);
    probe.until("full sync", |v| v.all_synced()).await;
    sim.store().upsert(mcb("cb", 4));
    probe
        .until("the change", |v| {
            v.resources(rtype("MeshCircuitBreaker"))
                .iter()
                .any(|r| r.spec.to_string().contains('4'))
        })
        .await;
    probe.stop().await.unwrap();

    let replayed = kds_probe::record::replay(&dir).expect("the recording replays");
    let _ = std::fs::remove_dir_all(&dir);
    // One full state per type, then the change: in order, each under its type.
    assert!(replayed.len() > TYPES.len(), "{replayed:#?}");
    for r in &replayed {
        let name = r.file.file_name().unwrap().to_str().unwrap();
        assert!(name.ends_with(&format!("-{}.binpb", r.type_url)), "{name}");
    }
    let undecodable: Vec<&String> = replayed.iter().flat_map(|r| &r.undecodable).collect();
    assert_eq!(undecodable.len(), 1, "{undecodable:?}");
    assert!(
        undecodable[0].starts_with("kuma-sim-undecodable.default: "),
        "{undecodable:?}"
    );
    let mcb_responses: usize = replayed
        .iter()
        .filter(|r| r.type_url == "MeshCircuitBreaker")
        .map(|r| r.resources)
        .sum();
    assert_eq!(mcb_responses, 2, "the full state and the change");

    // A file that is no response is an error naming it, not a silent skip.
    let bad = std::env::temp_dir().join(format!("kds-probe-record-bad-{}", std::process::id()));
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("000001-MeshTimeout.binpb"), b"\xff\xff\xff").unwrap();
    let err = kds_probe::record::replay(&bad).unwrap_err();
    let _ = std::fs::remove_dir_all(&bad);
    assert!(err.to_string().contains("not a KDS response"), "{err}");
}
