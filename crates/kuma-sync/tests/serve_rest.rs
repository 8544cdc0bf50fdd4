//! `serve` with REST sources and the KDS probe against the simulated global: polling,
//! divergence, unreachable zones, and a silent KDS stall seen on `/metrics`.

use std::time::Duration;

use crate::support::*;
use kuma_model::ResourceType;
use kuma_sim::{KdsServerConfig, start_global_kds};
use kuma_sync::{
    config::{KdsFile, ServeConfig},
    serve,
};
use policy_watcher::ZoneState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_sources_and_the_kds_probe() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut lab = RestLab::start(1, true).await;
    // A policy in a mesh kuma-sync is told to ignore: the probe still receives it. (The
    // stall check's unit tests prove it is no sign of a stall; here it rides along.)
    let mut other = universal_mcb(1);
    other.mesh = Some("other".into());
    other.labels.insert("kuma.io/mesh".into(), "other".into());
    lab.global.upsert(other);
    let mesh_type = kuma_model::ResourceType::from_name("Mesh").unwrap();
    lab.global.upsert(kuma_model::Resource::new(
        mesh_type,
        None,
        "other",
        serde_json::json!({}),
    ));
    let (global, zone) = (lab.global.clone(), lab.zones[0].clone());
    let kds = start_global_kds(
        global.clone(),
        "127.0.0.1:0".parse().unwrap(),
        KdsServerConfig::with_generated_tls().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("kds-ca.pem");
    std::fs::write(&ca, kds.ca_pem().unwrap()).unwrap();

    let cfg = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        global: rest_cp(lab.global_url.clone()),
        zones: vec![("zone-1".into(), rest_cp(lab.zone_urls[0].clone()))],
        kds: Some(KdsFile {
            address: kds.url(),
            ca_file: Some(ca),
            skip_verify: false,
            zone_name: None,
            client_cert: None,
            client_key: None,
        }),
        types: vec![ResourceType::from_name("MeshCircuitBreaker").unwrap()],
        meshes: Some(vec!["default".into()]),
        poll_interval: Duration::from_millis(200),
        stall_threshold: Duration::from_secs(1),
        tls: None,
        basic_auth: Some(("prometheus".into(), "s3cret".into())),
        kuma_version: None, // learnt from the simulated global's GET / (2.14.3)
        shards: None,
        leader_election: None,
        canary: None,
    };
    let running = serve::start(cfg).await.expect("serve starts");
    assert_eq!(running.kuma, kuma_model::KumaLine::V2);
    let addr = running.local_addr.unwrap();
    let auth = "Basic cHJvbWV0aGV1czpzM2NyZXQ="; // prometheus:s3cret

    until(&running, "convergence", |r| {
        r.monitor.ready() && r.monitor.report().converged
    })
    .await;
    assert_eq!(
        get(addr, "/metrics", None).await.0,
        401,
        "basic auth guards /metrics"
    );
    assert_eq!(
        get(addr, "/healthz", None).await.0,
        200,
        "health stays open for kubelet"
    );
    let (status, metrics) = get(addr, "/metrics", Some(auth)).await;
    assert_eq!(status, 200);
    promtool_check_metrics(&metrics);
    assert_eq!(
        sample(&metrics, "kuma_sync_zone_converged{zone=\"zone-1\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, "kuma_sync_kds_stalled"), Some(0.0));
    // The probe's own zone is not reported as an unmonitored zone.
    assert!(
        !metrics.contains("kuma_sync_zone_unmonitored{zone=\"kuma-sync-probe\"}"),
        "{metrics}"
    );

    // A change on the global that the zone never gets: the zone drifts, and a propagation
    // is recorded once the copy follows.
    global.upsert(universal_mcb(5));
    until(&running, "drift", |r| {
        r.monitor.lock().zone_state("zone-1") == ZoneState::Diverged
    })
    .await;
    zone.upsert(universal_copy(&universal_mcb(5)));
    until(&running, "healing", |r| r.monitor.report().converged).await;
    let (_, metrics) = get(addr, "/metrics", Some(auth)).await;
    let observed = sample(
        &metrics,
        "kuma_sync_propagation_seconds_count{type=\"MeshCircuitBreaker\",zone=\"zone-1\"}",
    );
    assert!(observed.is_some_and(|n| n >= 1.0), "{metrics}");

    // The global's KDS goes silent: the stream stays open but the next change never
    // arrives. The REST poll sees the change; the probe does not; after the threshold the
    // stream counts as stalled although it is connected.
    kds.faults().stall(true);
    global.upsert(universal_mcb(9));
    let stalled = async {
        loop {
            let (_, m) = get(addr, "/metrics", Some(auth)).await;
            if sample(&m, "kuma_sync_kds_stalled") == Some(1.0) {
                return m;
            }
            // The stall check ticks every second; re-scrape until it has judged.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let m = tokio::time::timeout(WAIT, stalled).await.expect("stall detected");
    assert_eq!(
        sample(&m, "kuma_sync_kds_connected"),
        Some(1.0),
        "stalled while connected"
    );
    kds.faults().stall(false);

    // The zone's API goes away: unknown, never converged.
    lab.stop_zone_api(0).await;
    until(&running, "the zone to be unreadable", |r| {
        r.monitor.lock().zone_state("zone-1") == ZoneState::Unknown
    })
    .await;
    let (_, m) = get(addr, "/metrics", Some(auth)).await;
    assert_eq!(sample(&m, "kuma_sync_up{cp=\"zone-1\"}"), Some(0.0));
    assert!(
        sample(
            &m,
            "kuma_sync_source_errors_total{class=\"unreachable\",cp=\"zone-1\"}"
        )
        .is_some_and(|n| n >= 1.0)
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_panics_is_unknown_counted_and_started_again() {
    // A zero interval (which the configuration file refuses) makes the poller panic:
    // it stands for any bug in a source.
    let lab = RestLab::start(1, true).await;
    let cfg = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        global: rest_cp(lab.global_url.clone()),
        zones: vec![("zone-1".into(), rest_cp(lab.zone_urls[0].clone()))],
        kds: None,
        types: vec![ResourceType::from_name("MeshCircuitBreaker").unwrap()],
        meshes: None,
        poll_interval: Duration::ZERO,
        stall_threshold: Duration::from_secs(60),
        tls: None,
        basic_auth: None,
        kuma_version: Some(kuma_model::KumaLine::V2),
        shards: None,
        leader_election: None,
        canary: None,
    };
    let running = serve::start_watching(cfg).await.expect("starts");
    let internal = |r: &serve::Running| {
        let st = r.monitor.lock();
        st.sources[&kuma_model::CpRole::Global]
            .errors
            .get("internal")
            .copied()
            .unwrap_or(0)
    };
    // Twice: once is a report, twice is a restart that failed again.
    until(&running, "the panic seen twice", |r| internal(r) >= 2).await;
    let report = running.monitor.report();
    assert!(!report.converged, "{report:?}");
    assert_eq!(running.monitor.lock().zone_state("zone-1"), ZoneState::Unknown);
    let global = running.monitor.lock().sources[&kuma_model::CpRole::Global].clone();
    assert!(!global.up);
    assert!(
        global
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("the source stopped"),
        "{global:?}"
    );
    running.stop().await;
}
