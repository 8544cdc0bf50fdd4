//! Sharded `serve`: several processes' worth of `serve` against one kuma-sim lab, each
//! told its shard. Every zone is judged by exactly one shard, the global's own health and
//! the KDS probe come from shard 0 only, and nothing another shard owns is reported as
//! unmonitored, so alerts and the dashboard count each finding once.

use std::{collections::BTreeSet, time::Duration};

use kuma_model::Environment;
use kuma_sim::lab::Scenario;
use kuma_sync::{config::ShardsFile, serve};
use policy_watcher::Shard;

use crate::support::{get, until};

mod processes;

const ZONES: [&str; 7] = [
    "zone-1", "zone-2", "zone-3", "zone-4", "zone-5", "zone-6", "zone-7",
];
const SHARDS: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_zone_is_judged_by_exactly_one_shard() {
    let zones: Vec<(&str, Environment)> = ZONES.iter().map(|z| (*z, Environment::Universal)).collect();
    let mut scenario = Scenario::with_zones(&zones);
    scenario.meshes = Scenario::from_yaml("meshes: [{name: default}]").unwrap().meshes;
    let dir = tempfile::tempdir().unwrap();
    let (lab, base) = super::lab_and_config(scenario, dir.path()).await;
    lab.wait_connected(Duration::from_secs(30))
        .await
        .expect("zones connect");

    let mut running = Vec::new();
    for index in 0..SHARDS {
        let mut cfg = base.clone();
        cfg.poll_interval = Duration::from_millis(300);
        cfg.shards = Some(ShardsFile {
            total: SHARDS,
            index: Some(index),
            replicas: None,
        });
        running.push(serve::start(cfg).await.expect("a shard starts"));
    }
    for (index, r) in running.iter().enumerate() {
        until(r, &format!("shard {index} converged"), |r| {
            r.monitor.ready() && r.monitor.report().converged && r.monitor.lock().zone_insights.is_some()
        })
        .await;
    }

    let mut judged = BTreeSet::new();
    for (index, r) in running.iter().enumerate() {
        let index = index as u32;
        // As /status shows it: the probe's own Zone is not an unmonitored zone.
        let report = r
            .monitor
            .report()
            .with_probe_zone(kds_probe::config::DEFAULT_ZONE_NAME);
        let ours: Vec<String> = report.zones.iter().map(|z| z.zone.clone()).collect();
        for zone in &ours {
            assert_eq!(
                Shard::owner(zone, SHARDS),
                index,
                "{zone} judged by shard {index}"
            );
            assert!(judged.insert(zone.clone()), "{zone} judged twice");
        }
        assert!(
            report.unmonitored_zones.is_empty(),
            "shard {index}: {:?}",
            report.unmonitored_zones
        );

        let (status, m) = get(r.local_addr.unwrap(), "/metrics", None).await;
        assert_eq!(status, 200);
        assert!(
            m.contains(&format!(
                "kuma_sync_shard_info{{shard=\"{index}\",total=\"{SHARDS}\"}} 1"
            )),
            "{m}"
        );
        let global_health = m.contains("kuma_sync_up{cp=\"global\"}");
        let probe = m.lines().any(|l| l.starts_with("kuma_sync_kds_connected"));
        assert_eq!(
            global_health,
            index == 0,
            "shard {index}: the global's health once"
        );
        assert_eq!(probe, index == 0, "shard {index}: one KDS probe");
        assert!(!m.contains("kuma_sync_zone_unmonitored"), "shard {index}");
        for zone in ZONES {
            let series = format!("kuma_sync_zone_online{{zone=\"{zone}\"}}");
            assert_eq!(
                m.contains(&series),
                ours.iter().any(|z| z == zone),
                "shard {index}: {series}"
            );
            let series = format!("kuma_sync_zone_converged{{zone=\"{zone}\"}}");
            assert_eq!(
                m.contains(&series),
                ours.iter().any(|z| z == zone),
                "shard {index}: {series}"
            );
        }
    }
    assert_eq!(
        judged,
        ZONES.iter().map(|z| z.to_string()).collect(),
        "every zone judged"
    );
    // No shard sat idle: rendezvous hashing spreads seven zones over three shards.
    assert!(running.iter().all(|r| !r.monitor.report().zones.is_empty()));

    for r in running {
        r.stop().await;
    }
    lab.shutdown().await;
}
