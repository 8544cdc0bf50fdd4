//! `serve` against a kuma-sim lab whose zones really sync over KDS: every fault of the
//! lab shows its state on `/metrics` and `/status`, and heals back. Also kuma-sync's
//! engine, sync rules and REST reader held against the simulator ([`oracle`]).

#[path = "canary/mod.rs"]
mod canary;
#[path = "lab_matrix/mod.rs"]
mod lab_matrix;
#[path = "oracle/mod.rs"]
mod oracle;
#[path = "shards/mod.rs"]
mod shards;

use std::time::Duration;

use crate::support::*;
use kuma_model::{ResourceKey, ResourceType};
use kuma_sim::lab::{Lab, PortPlan, Scenario};
use kuma_sync::{
    demo::{DemoArgs, FEDERATE, serve_config},
    serve,
};
use policy_watcher::{Report, State, ZoneState};

fn mcb() -> ResourceType {
    ResourceType::from_name("MeshCircuitBreaker").unwrap()
}

/// The copy of demo-app-to-redis in a zone, as kuma-sim names it.
fn copy_key(zone: &str) -> ResourceKey {
    let name = match zone {
        "zone-2" => "demo-app-to-redis-65xb45x2xfd5bf7f.kuma-system",
        _ => "demo-app-to-redis-65xb45x2xfd5bf7f",
    };
    ResourceKey {
        rtype: mcb(),
        mesh: Some("default".into()),
        name: name.into(),
    }
}

fn state_of(r: &serve::Running, zone: &str) -> ZoneState {
    r.monitor.lock().zone_state(zone)
}

fn has(report: &Report, zone: &str, state: State) -> bool {
    report
        .discrepancies
        .iter()
        .any(|d| d.zone == zone && d.state == state)
}

/// Changes demo-app-to-redis on the global.
fn change_policy(lab: &Lab, max: u64) {
    let mut r = lab
        .global_store()
        .list(Some(mcb()))
        .into_iter()
        .find(|r| r.name == "demo-app-to-redis")
        .expect("scenario policy");
    r.spec["to"][0]["default"]["connectionLimits"]["maxConnections"] = serde_json::json!(max);
    lab.create_on_global(r).expect("update on global");
}

async fn metrics(r: &serve::Running) -> String {
    let (status, body) = get(r.local_addr.unwrap(), "/metrics", None).await;
    assert_eq!(status, 200);
    body
}

/// `scenario` running on free ports, and the configuration `demo` would serve it with
/// (files in `dir`).
async fn lab_and_config(
    mut scenario: Scenario,
    dir: &std::path::Path,
) -> (Lab, kuma_sync::config::ServeConfig) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    scenario.ports = Some(PortPlan::Ephemeral);
    let lab = Lab::start(scenario).await.expect("lab starts");
    let args = DemoArgs {
        break_zone: None,
        listen: "127.0.0.1:0".parse().unwrap(),
        scenario: None,
        once: true,
        timeout: Duration::from_secs(60),
    };
    let cfg = serve_config(&lab, &args, dir).await.expect("config");
    (lab, cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lab_fault_shows_and_heals() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, mut cfg) = lab_and_config(Scenario::from_yaml(FEDERATE).expect("scenario"), dir.path()).await;
    cfg.poll_interval = Duration::from_millis(200);
    cfg.stall_threshold = Duration::from_secs(1);
    let running = serve::start(cfg).await.expect("serve starts");
    until(&running, "first convergence and insights", |r| {
        r.monitor.ready() && r.monitor.report().converged && r.monitor.lock().zone_insights.is_some()
    })
    .await;
    let m = metrics(&running).await;
    promtool_check_metrics(&m);
    assert_eq!(sample(&m, "kuma_sync_zone_online{zone=\"zone-1\"}"), Some(1.0));
    assert_eq!(
        sample(
            &m,
            "kuma_sync_zone_info{compatible=\"true\",version=\"2.14.3\",zone=\"zone-2\"}"
        ),
        Some(1.0)
    );

    // Missing: a copy dropped locally in zone-1; healing resyncs it.
    assert!(lab.zone("zone-1").unwrap().drop_copy(&copy_key("zone-1")));
    until(&running, "missing", |r| {
        has(&r.monitor.report(), "zone-1", State::Missing)
    })
    .await;
    let m = metrics(&running).await;
    assert_eq!(
        sample(
            &m,
            "kuma_sync_resources{state=\"missing\",type=\"MeshCircuitBreaker\",zone=\"zone-1\"}"
        ),
        Some(1.0)
    );
    lab.zone_faults("zone-1").unwrap().heal();
    until(&running, "healed missing", |r| r.monitor.report().converged).await;

    // Drifted: a copy edited locally in the Kubernetes zone-2 (seen through its watch).
    assert!(lab.zone("zone-2").unwrap().edit_copy(
        &copy_key("zone-2"),
        serde_json::json!({"targetRef": {"kind": "Mesh"}})
    ));
    until(&running, "drifted", |r| {
        has(&r.monitor.report(), "zone-2", State::Drifted)
    })
    .await;
    let (_, status) = get(running.local_addr.unwrap(), "/status", None).await;
    assert!(status.contains("\"state\": \"drifted\""), "{status}");
    lab.zone_faults("zone-2").unwrap().heal();
    until(&running, "healed drift", |r| r.monitor.report().converged).await;

    // Orphaned: zone-1 silently stalls, then the global deletes the policy.
    lab.zone_faults("zone-1").unwrap().stall(true);
    let source = lab
        .global_store()
        .list(Some(mcb()))
        .into_iter()
        .find(|r| r.name == "demo-app-to-redis")
        .unwrap();
    lab.global_store().delete(&source.key());
    until(&running, "orphaned", |r| {
        has(&r.monitor.report(), "zone-1", State::Orphaned)
    })
    .await;
    assert!(
        !has(&running.monitor.report(), "zone-2", State::Orphaned),
        "zone-2 followed the delete"
    );
    lab.create_on_global(source).unwrap();
    lab.zone_faults("zone-1").unwrap().heal();
    until(&running, "healed orphan", |r| r.monitor.report().converged).await;

    // NACK: zone-2 rejects MeshCircuitBreaker updates; the global's insight counts them.
    lab.zone_faults("zone-2").unwrap().nack(mcb(), true);
    change_policy(&lab, 40);
    until(&running, "NACK drift", |r| {
        has(&r.monitor.report(), "zone-2", State::Drifted)
    })
    .await;
    let rejected = async {
        loop {
            let m = metrics(&running).await;
            if sample(
                &m,
                "kuma_sync_zone_rejected_responses{type=\"MeshCircuitBreaker\",zone=\"zone-2\"}",
            )
            .is_some_and(|n| n >= 1.0)
            {
                return;
            }
            running.monitor.subscribe().changed().await.ok();
        }
    };
    tokio::time::timeout(WAIT, rejected)
        .await
        .expect("rejected responses exported");
    lab.zone_faults("zone-2").unwrap().heal();
    until(&running, "healed NACK", |r| r.monitor.report().converged).await;

    // Offline: zone-1 disconnects; the global's insight says so.
    lab.zone_faults("zone-1").unwrap().disconnect();
    let offline = async {
        loop {
            let m = metrics(&running).await;
            if sample(&m, "kuma_sync_zone_online{zone=\"zone-1\"}") == Some(0.0) {
                return;
            }
            running.monitor.subscribe().changed().await.ok();
        }
    };
    tokio::time::timeout(WAIT, offline)
        .await
        .expect("offline exported");
    lab.zone_faults("zone-1").unwrap().heal();
    until(&running, "back online", |r| r.monitor.report().converged).await;

    // Flap: MeshCircuitBreakers vanish from zone-2 for a moment and come back.
    lab.zone("zone-2")
        .unwrap()
        .flap(mcb(), Duration::from_millis(1500));
    until(&running, "flap gone", |r| {
        has(&r.monitor.report(), "zone-2", State::Missing)
    })
    .await;
    until(&running, "flap back", |r| r.monitor.report().converged).await;
    let m = metrics(&running).await;
    assert!(
        sample(
            &m,
            "kuma_sync_flaps_total{type=\"MeshCircuitBreaker\",zone=\"zone-2\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{m}"
    );

    // KDS stall: the global's streams go silent; the probe does not get the change.
    lab.global().await.faults().stall(true);
    change_policy(&lab, 41);
    let stalled = async {
        loop {
            let m = metrics(&running).await;
            if sample(&m, "kuma_sync_kds_stalled") == Some(1.0) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let m = tokio::time::timeout(WAIT, stalled).await.expect("stall exported");
    assert_eq!(sample(&m, "kuma_sync_kds_connected"), Some(1.0));
    assert_eq!(
        state_of(&running, "zone-1"),
        ZoneState::Diverged,
        "zones did not get the change either"
    );
    lab.global().await.faults().stall(false);
    until(&running, "healed stall", |r| r.monitor.report().converged).await;

    running.stop().await;
    lab.shutdown().await;
}
