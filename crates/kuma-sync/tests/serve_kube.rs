//! `serve` with Kubernetes sources: kube-rs watchers against simulated Kubernetes API
//! servers, state on a real `/metrics` and `/status`, divergence seen within a second.

use std::{sync::Arc, time::Duration};

use crate::support::*;
use kuma_model::{Environment, ResourceType};
use kuma_sim::{GlobalStore, k8s_api};
use kuma_sync::{
    config::{CpConfig, ServeConfig, SourceConfig},
    serve,
};
use policy_watcher::ZoneState;

fn kube_cp(kubeconfig: std::path::PathBuf) -> CpConfig {
    CpConfig {
        source: SourceConfig::Kubernetes {
            kubeconfig: Some(kubeconfig),
            context: None,
        },
        environment: Environment::kubernetes(),
    }
}

fn config(global: CpConfig, zone: CpConfig) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        global,
        zones: vec![("zone-1".into(), zone)],
        kds: None,
        types: vec![ResourceType::from_name("MeshCircuitBreaker").unwrap()],
        meshes: None,
        poll_interval: Duration::from_secs(1),
        stall_threshold: Duration::from_secs(60),
        tls: None,
        basic_auth: None,
        kuma_version: Some(kuma_model::KumaLine::V2),
        shards: None,
        leader_election: None,
        canary: None,
    }
}

/// The global's and the zone's Kubernetes APIs on kuma-sim (the zone's with
/// `zone_config`), and `serve` watching both through kube-rs.
struct KubeLab {
    global_api: k8s_api::K8sApiHandle,
    zone_api: k8s_api::K8sApiHandle,
    running: serve::Running,
    _dir: tempfile::TempDir,
}

async fn kube_lab(
    global: &Arc<GlobalStore>,
    zone: &Arc<GlobalStore>,
    zone_config: k8s_api::K8sApiConfig,
) -> KubeLab {
    let loopback = || "127.0.0.1:0".parse().expect("an address");
    let global_api = k8s_api::start_k8s_api(global.clone(), loopback(), k8s_api::K8sApiConfig::default())
        .await
        .expect("the global's API");
    let zone_api = k8s_api::start_k8s_api(zone.clone(), loopback(), zone_config)
        .await
        .expect("the zone's API");
    let dir = tempfile::tempdir().expect("temp dir");
    let running = serve::start(config(
        kube_cp(kubeconfig(dir.path(), "global", global_api.addr())),
        kube_cp(kubeconfig(dir.path(), "zone-1", zone_api.addr())),
    ))
    .await
    .expect("serve starts");
    KubeLab {
        global_api,
        zone_api,
        running,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_watch_sources_converge_diverge_and_go_unknown() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let global = Arc::new(GlobalStore::new(Environment::kubernetes()));
    let zone = Arc::new(GlobalStore::new(Environment::kubernetes()));
    global.upsert(global_mcb(2));
    // A Kubernetes global keeps ZoneInsights as cluster-scoped objects.
    global.upsert(kuma_model::Resource::new(
        ResourceType::from_name("ZoneInsight").unwrap(),
        None,
        "zone-1",
        serde_json::json!({"subscriptions": [{"id": "a", "connectTime": "2026-11-02T09:00:00Z",
            "status": {"lastUpdateTime": "2026-11-02T09:06:00Z",
                       "stat": {"MeshCircuitBreaker": {"responsesSent": "3", "responsesRejected": "2"}}},
            "version": {"kumaCp": {"version": "2.14.3", "kumaCpGlobalCompatible": true}}}]}),
    ));
    zone.upsert(zone_copy(2));
    let KubeLab {
        global_api,
        zone_api,
        running,
        _dir,
    } = kube_lab(&global, &zone, k8s_api::K8sApiConfig::default()).await;
    let addr = running.local_addr.expect("serving HTTP");

    until(&running, "convergence and insights", |r| {
        r.monitor.ready() && r.monitor.report().converged && r.monitor.lock().zone_insights.is_some()
    })
    .await;
    let (status, metrics) = get(addr, "/metrics", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(&metrics, "kuma_sync_zone_converged{zone=\"zone-1\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, "kuma_sync_up{cp=\"zone-1\"}"), Some(1.0));
    assert_eq!(
        sample(
            &metrics,
            "kuma_sync_resources{state=\"synced\",type=\"MeshCircuitBreaker\",zone=\"zone-1\"}"
        ),
        Some(1.0)
    );
    assert_eq!(get(addr, "/readyz", None).await.0, 200);
    assert_eq!(
        sample(&metrics, "kuma_sync_zone_online{zone=\"zone-1\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "kuma_sync_zone_rejected_responses{type=\"MeshCircuitBreaker\",zone=\"zone-1\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "kuma_sync_zone_info{compatible=\"true\",version=\"2.14.3\",zone=\"zone-1\"}"
        ),
        Some(1.0)
    );
    promtool_check_metrics(&metrics);

    // A copy deleted in the zone shows on /metrics through the watch (how fast is a
    // benchmark's business: kuma-sync-bench e2e).
    zone.delete(&zone_copy(2).key());
    until(&running, "the missing copy", |r| {
        r.monitor.lock().zone_state("zone-1") == ZoneState::Diverged
    })
    .await;
    let (_, metrics) = get(addr, "/metrics", None).await;
    assert_eq!(
        sample(
            &metrics,
            "kuma_sync_resources{state=\"missing\",type=\"MeshCircuitBreaker\",zone=\"zone-1\"}"
        ),
        Some(1.0)
    );
    let (_, status_json) = get(addr, "/status", None).await;
    let status: serde_json::Value = serde_json::from_str(&status_json).expect("status is JSON");
    assert_eq!(status["discrepancies"][0]["state"], "missing");
    assert_eq!(
        status["discrepancies"][0]["name"],
        "demo-app-to-redis-48bc6d6w28bw7b44.kuma-system"
    );
    assert_eq!(
        (
            status["discrepancies_total"].as_u64(),
            status["truncated"].as_bool()
        ),
        (Some(1), Some(false))
    );
    // One zone's view, and a window that leaves the discrepancy out but counts it.
    let (_, other_zone) = get(addr, "/status?zone=zone-9", None).await;
    let other_zone: serde_json::Value = serde_json::from_str(&other_zone).unwrap();
    assert_eq!(other_zone["discrepancies"].as_array().map(Vec::len), Some(0));
    assert_eq!(other_zone["discrepancies_total"], 0);
    let (_, one) = get(addr, "/status?zone=zone-1&limit=1", None).await;
    let one: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one["discrepancies"].as_array().map(Vec::len), Some(1));
    let (code, refusal) = get(addr, "/status?limit=0", None).await;
    assert_eq!(code, 400, "{refusal}");
    assert!(refusal.contains("positive count"), "{refusal}");

    // An edited copy is drifted; restoring it heals.
    zone.upsert(zone_copy(7));
    until(&running, "the drifted copy", |r| {
        r.monitor
            .report()
            .discrepancies
            .iter()
            .any(|d| d.state == policy_watcher::State::Drifted)
    })
    .await;
    zone.upsert(zone_copy(2));
    until(&running, "healing", |r| r.monitor.report().converged).await;

    // A change on the global reaches the zone: its propagation is on /metrics.
    global.upsert(global_mcb(3));
    until(&running, "the global change seen", |r| {
        !r.monitor.report().converged
    })
    .await;
    zone.upsert(zone_copy(3));
    until(&running, "the change propagated", |r| {
        r.monitor.report().converged
    })
    .await;
    let (_, metrics) = get(addr, "/metrics", None).await;
    let count = "kuma_sync_propagation_seconds_count{type=\"MeshCircuitBreaker\",zone=\"zone-1\"}";
    assert!(sample(&metrics, count).is_some_and(|n| n >= 1.0), "{metrics}");

    // The zone's API server goes away: the zone is unknown, never converged.
    zone_api.shutdown().await;
    until(&running, "the zone to be unreadable", |r| {
        r.monitor.lock().zone_state("zone-1") == ZoneState::Unknown
    })
    .await;
    let (_, metrics) = get(addr, "/metrics", None).await;
    assert_eq!(sample(&metrics, "kuma_sync_up{cp=\"zone-1\"}"), Some(0.0));
    assert_eq!(
        sample(
            &metrics,
            "kuma_sync_zone_state{state=\"unknown\",zone=\"zone-1\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "kuma_sync_zone_converged{zone=\"zone-1\"}"),
        Some(0.0)
    );
    running.stop().await;
    global_api.shutdown().await;
}

/// A relist after the first snapshot, through kube-rs against kuma-sim: the watch's version
/// compacted away (a history of one change, two changes at once: 410 Gone, as after an
/// etcd compaction), so the watcher lists the type again. The relist replaces what the
/// monitor holds of the zone: the object it lacks is deleted (a policy of the zone's own,
/// which the global does not hold: the zone diverges until it is gone), the changed one
/// replaced;
/// later changes arrive one by one again. On one thread, so both writes land in one
/// journal step.
#[tokio::test]
async fn a_relist_after_the_first_snapshot_replaces_the_listed_objects() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let global = Arc::new(GlobalStore::new(Environment::kubernetes()));
    let zone = Arc::new(GlobalStore::new(Environment::kubernetes()));
    global.upsert(global_mcb(2));
    // A policy of the zone's own: the relist must delete it once it is gone.
    let mut local = zone_copy(2).with_label(kuma_model::labels::ORIGIN, "zone");
    local.name = "zone-local.kuma-system".into();
    zone.upsert(zone_copy(2));
    zone.upsert(local.clone());
    let compacting = k8s_api::K8sApiConfig {
        history_limit: 1,
        ..k8s_api::K8sApiConfig::default()
    };
    let KubeLab {
        global_api,
        zone_api,
        running,
        _dir,
    } = kube_lab(&global, &zone, compacting).await;
    let zone_cp = kuma_model::CpRole::Zone("zone-1".into());
    let spec_in_zone = |r: &serve::Running, key: &kuma_model::ResourceKey| {
        r.monitor
            .lock()
            .engine
            .spec_of(&zone_cp, key)
            .map(|s| s.into_owned())
    };
    // The zone's own policy is not on the global yet: diverged, but judged.
    until(&running, "a first snapshot", |r| {
        r.monitor.ready() && spec_in_zone(r, &local.key()).is_some()
    })
    .await;
    assert_eq!(spec_in_zone(&running, &local.key()), Some(local.spec.clone()));
    assert_eq!(
        spec_in_zone(&running, &zone_copy(2).key()),
        Some(zone_copy(2).spec)
    );

    // No await between: one journal step of two changes, past a history of one.
    zone.delete(&local.key());
    zone.upsert(zone_copy(3));
    until(&running, "the relist in the monitor", |r| {
        spec_in_zone(r, &zone_copy(3).key()) == Some(zone_copy(3).spec)
    })
    .await;
    assert_eq!(spec_in_zone(&running, &local.key()), None, "gone from the relist");
    assert_eq!(running.monitor.lock().zone_state("zone-1"), ZoneState::Diverged);

    // Watching again after the relist: a single change converges the zone (its own
    // policy gone, the copy as on the global).
    zone.upsert(zone_copy(2));
    until(&running, "the healing change", |r| r.monitor.report().converged).await;
    assert_eq!(
        spec_in_zone(&running, &zone_copy(2).key()),
        Some(zone_copy(2).spec)
    );
    running.stop().await;
    zone_api.shutdown().await;
    global_api.shutdown().await;
}
