//! The canary on a kuma-sim lab whose zones really sync over KDS: every write reaches
//! every zone and is credited there; a zone whose stream silently stalls stops being
//! credited while every comparison still says converged (the stall that a comparison
//! alone cannot see); and the canary itself is never a discrepancy.

use std::time::Duration;

use kuma_model::ResourceType;
use kuma_sim::lab::Scenario;
use kuma_sync::{canary::CanaryConfig, demo::FEDERATE, serve};
use serde_json::Value;

use crate::support::{get, sample, until};

const INTERVAL: Duration = Duration::from_millis(500);

/// `kuma_sync_canary_last_success_timestamp_seconds` of each zone, as `/metrics` shows.
async fn last_success(addr: std::net::SocketAddr, zones: &[&str]) -> Vec<Option<f64>> {
    let (code, m) = get(addr, "/metrics", None).await;
    assert_eq!(code, 200);
    zones
        .iter()
        .map(|z| {
            sample(
                &m,
                &format!("kuma_sync_canary_last_success_timestamp_seconds{{zone=\"{z}\"}}"),
            )
        })
        .collect()
}

/// A lab of `scenario` and `serve` on it with the canary every [`INTERVAL`], once it has
/// converged and every zone has been credited with a write: the lab, the running serve,
/// its address, the zones, and each zone's first credited arrival.
struct CanaryLab {
    lab: kuma_sim::lab::Lab,
    running: serve::Running,
    addr: std::net::SocketAddr,
    zones: Vec<String>,
    credited: Vec<Option<f64>>,
    _dir: tempfile::TempDir,
}

impl CanaryLab {
    async fn start(scenario: Scenario) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (lab, mut cfg) = super::lab_and_config(scenario, dir.path()).await;
        cfg.poll_interval = Duration::from_millis(200);
        cfg.canary = Some(CanaryConfig {
            mesh: "default".into(),
            interval: INTERVAL,
            rtype: ResourceType::from_name("MeshTimeout").expect("a type"),
            name: kuma_sync::canary::DEFAULT_NAME.into(),
        });
        let zones: Vec<String> = cfg.zones.iter().map(|(n, _)| n.clone()).collect();
        let running = serve::start(cfg).await.expect("serve starts");
        let addr = running.local_addr.expect("listening");
        until(&running, "first convergence", |r| {
            r.monitor.ready() && r.monitor.report().converged
        })
        .await;
        let names: Vec<&str> = zones.iter().map(String::as_str).collect();
        let credited = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let seen = last_success(addr, &names).await;
                if seen.iter().all(Option::is_some) {
                    return seen;
                }
                // Another write is due every interval; look again after one.
                tokio::time::sleep(INTERVAL).await;
            }
        })
        .await
        .expect("the canary reached every zone");
        Self {
            lab,
            running,
            addr,
            zones,
            credited,
            _dir: dir,
        }
    }

    fn zone_names(&self) -> Vec<&str> {
        self.zones.iter().map(String::as_str).collect()
    }

    async fn stop(self) {
        self.running.stop().await;
        self.lab.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_reaches_every_zone_and_a_stalled_zone_stops_being_credited() {
    let canary = CanaryLab::start(Scenario::from_yaml(FEDERATE).expect("scenario")).await;
    let (lab, running, addr, credited) = (&canary.lab, &canary.running, canary.addr, canary.credited.clone());
    let zones = canary.zone_names();
    let (_, m) = get(addr, "/metrics", None).await;
    for z in &zones {
        let count = sample(
            &m,
            &format!("kuma_sync_canary_propagation_seconds_count{{zone=\"{z}\"}}"),
        );
        assert!(count.is_some_and(|c| c >= 1.0), "{z}: {count:?}");
    }
    assert_eq!(sample(&m, "kuma_sync_canary_errors_total"), Some(0.0));
    // The canary is never compared: no discrepancy names it, in flight or not.
    let report = running.monitor.report();
    assert!(report.converged, "{:?}", report.discrepancies);

    // zone-1's stream stalls silently: it stops being credited; the others go on.
    let stalled = zones.iter().position(|z| *z == "zone-1").expect("zone-1");
    lab.zone_faults("zone-1").unwrap().stall(true);
    // A write in flight when the stall began may still land: take the mark after it.
    tokio::time::sleep(INTERVAL * 2).await;
    let before = last_success(addr, &zones).await;
    let later = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let now = last_success(addr, &zones).await;
            let others_moved = now
                .iter()
                .zip(&before)
                .enumerate()
                .filter(|(i, _)| *i != stalled)
                .all(|(_, (n, b))| n > b && b.is_some());
            if others_moved {
                return now;
            }
            tokio::time::sleep(INTERVAL).await;
        }
    })
    .await
    .expect("the other zones went on being credited");
    assert_eq!(later[stalled], before[stalled], "a stalled zone is not credited");
    assert!(credited[stalled].is_some());
    // And every comparison still says converged: nothing else changed.
    let report = running.monitor.report();
    assert!(report.converged, "{:?}", report.discrepancies);
    canary.stop().await;
}

/// Through the real Prometheus and Alertmanager: healthy, the canary raises nothing; with
/// zone-1's stream stalled, KumaSyncCanaryNotPropagated reaches the webhook for zone-1
/// alone while every comparison still says converged; unstalled, it resolves. The
/// ten-minute threshold is cut to three seconds, as `for:` is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_zone_raises_the_canary_alert_while_comparisons_say_converged() {
    use std::sync::Arc;

    use crate::alerts_e2e::{alert_stack, await_notifications};

    let canary = CanaryLab::start(Scenario::from_yaml(FEDERATE).expect("scenario")).await;
    let (lab, running, addr) = (&canary.lab, &canary.running, canary.addr);
    let target = addr.to_string();
    let (webhook, _alertmanager, _prometheus) = tokio::task::spawn_blocking(move || {
        alert_stack(&target, |rules| {
            let cut = rules.replace(
                "time() - kuma_sync_canary_last_success_timestamp_seconds\n          ) > 600",
                "time() - kuma_sync_canary_last_success_timestamp_seconds\n          ) > 3",
            );
            assert_ne!(cut, rules, "the canary threshold overlay did not apply");
            cut
        })
    })
    .await
    .unwrap();
    let webhook = Arc::new(webhook);

    // Healthy for ten seconds: no canary alert (a notification then would be one).
    let w = webhook.clone();
    let quiet = tokio::task::spawn_blocking(move || w.receive(Duration::from_secs(10)))
        .await
        .unwrap();
    if let Ok(n) = &quiet {
        let canary = n["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["labels"]["alertname"] == "KumaSyncCanaryNotPropagated");
        assert!(!canary, "a healthy lab raised the canary alert: {n:#}");
    }

    lab.zone_faults("zone-1").unwrap().stall(true);
    let w = webhook.clone();
    let firing = tokio::task::spawn_blocking(move || {
        await_notifications(
            &w,
            &[("KumaSyncCanaryNotPropagated", "firing")],
            Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    let canary_zones: Vec<&Value> = firing
        .iter()
        .flat_map(|n| n["alerts"].as_array().into_iter().flatten())
        .filter(|a| a["labels"]["alertname"] == "KumaSyncCanaryNotPropagated")
        .map(|a| &a["labels"]["zone"])
        .collect();
    assert!(
        !canary_zones.is_empty() && canary_zones.iter().all(|z| *z == "zone-1"),
        "only zone-1 is stalled: {canary_zones:?}"
    );
    let report = running.monitor.report();
    assert!(
        report.converged,
        "the comparisons see nothing: {:?}",
        report.discrepancies
    );

    lab.zone_faults("zone-1").unwrap().stall(false);
    let w = webhook.clone();
    tokio::task::spawn_blocking(move || {
        await_notifications(
            &w,
            &[("KumaSyncCanaryNotPropagated", "resolved")],
            Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    canary.stop().await;
}

/// A Kubernetes global (Kuma 2.x): the canary is a kuma.io object written through its
/// Kubernetes API, in Kuma's system namespace, and reaches every zone the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_kubernetes_global_the_canary_is_written_through_the_kubernetes_api() {
    let scenario = Scenario::from_yaml(
        "global: {environment: {type: kubernetes, systemNamespace: kuma-system}}\n\
         meshes: [{name: default}]\n\
         zones:\n  - {name: zone-1, environment: {type: universal}}\n  - {name: zone-2, environment: {type: kubernetes, systemNamespace: kuma-system}}\n",
    )
    .expect("scenario");
    let canary = CanaryLab::start(scenario).await;
    let (lab, running, addr) = (&canary.lab, &canary.running, canary.addr);
    assert_eq!(canary.zone_names(), ["zone-1", "zone-2"]);
    // Stored on the global as Kuma's Kubernetes store keeps a policy of the system namespace.
    let mt = ResourceType::from_name("MeshTimeout").expect("a type");
    let stored = lab
        .global_store()
        .list(Some(mt))
        .into_iter()
        .find(|r| r.label(kuma_model::labels::CANARY).is_some())
        .expect("the canary on the global");
    assert_eq!(stored.name, "kuma-sync-canary.kuma-system");
    let (_, m) = get(addr, "/metrics", None).await;
    assert_eq!(sample(&m, "kuma_sync_canary_errors_total"), Some(0.0));
    assert!(running.monitor.report().converged);
    canary.stop().await;
}
