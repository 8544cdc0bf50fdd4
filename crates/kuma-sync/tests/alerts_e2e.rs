//! The shipped alerts end to end, with the real servers: kuma-sim (global KDS + REST, two
//! zones' REST APIs), `kuma-sync serve` with its KDS probe, Prometheus (scrape and rule
//! evaluation every second, `for:` shortened by an overlay) and Alertmanager (the example
//! configuration) delivering to a webhook in this test.
//!
//! Steady state raises nothing; zone-2 silently stops following the global while the
//! global's KDS goes quiet, and the out-of-sync and stall alerts reach the webhook;
//! healing resolves them.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use crate::support::*;
use deploy_tests::{
    alertmanager::Alertmanager,
    prom::{Prometheus, PrometheusOptions, override_for_durations},
    repo,
    webhook::WebhookReceiver,
};
use kuma_model::ResourceType;
use kuma_sim::{KdsServerConfig, start_global_kds};
use kuma_sync::{
    config::{KdsFile, ServeConfig},
    serve,
};
use serde_json::Value;

/// The shipped alerting as it runs, for a test: Alertmanager with the example
/// configuration delivering to a webhook here at once, and Prometheus scraping `target`
/// every second with the shipped rules, every `for:` cut to 0s and then `overlay` applied.
pub(crate) fn alert_stack(
    target: &str,
    overlay: impl FnOnce(String) -> String,
) -> (WebhookReceiver, Alertmanager, Prometheus) {
    let webhook = WebhookReceiver::bind().expect("webhook");
    let am_config = repo::read(&repo::deploy("alertmanager/alertmanager.yaml"))
        .replace(
            "http://alert-webhook.monitoring.svc:8080/kuma-sync",
            &webhook.url("kuma-sync"),
        )
        .replace("group_wait: 30s", "group_wait: 0s")
        .replace("group_wait: 10s", "group_wait: 0s")
        .replace("group_interval: 5m", "group_interval: 1s");
    let alertmanager =
        Alertmanager::start(&am_config, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    let rules = overlay(override_for_durations(
        &repo::read(&repo::deploy("prometheus/kuma-sync-rules.yaml")),
        "0s",
    ));
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files: [kuma-sync-rules.yaml]\n\
         alerting:\n  alertmanagers:\n    - static_configs: [{{ targets: ['{}'] }}]\n\
         scrape_configs:\n  - job_name: kuma-sync\n    static_configs: [{{ targets: ['{target}'] }}]\n",
        alertmanager.addr()
    );
    let prometheus = Prometheus::start(PrometheusOptions::new(config).file("kuma-sync-rules.yaml", rules))
        .unwrap_or_else(|e| panic!("{e}"));
    (webhook, alertmanager, prometheus)
}

/// Collects webhook notifications until `want` (alertname, status) pairs have all arrived.
pub(crate) fn await_notifications(
    webhook: &WebhookReceiver,
    want: &[(&str, &str)],
    within: Duration,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = BTreeSet::new();
    let mut all = Vec::new();
    while !want
        .iter()
        .all(|w| seen.contains(&(w.0.to_owned(), w.1.to_owned())))
    {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let n = webhook
            .receive(left)
            .unwrap_or_else(|e| panic!("{e}; wanted {want:?}, got {seen:?}"));
        for a in n["alerts"].as_array().into_iter().flatten() {
            seen.insert((
                a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                a["status"].as_str().unwrap_or("").to_owned(),
            ));
        }
        all.push(n);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_and_resolve_through_prometheus_and_alertmanager() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let lab = RestLab::start(2, true).await;
    let (global, zones) = (lab.global.clone(), lab.zones.clone());
    let kds = start_global_kds(
        global.clone(),
        "127.0.0.1:0".parse().unwrap(),
        KdsServerConfig::default(),
    )
    .await
    .unwrap();
    let cfg = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        global: rest_cp(lab.global_url.clone()),
        zones: vec![
            ("zone-1".into(), rest_cp(lab.zone_urls[0].clone())),
            ("zone-2".into(), rest_cp(lab.zone_urls[1].clone())),
        ],
        kds: Some(KdsFile {
            address: kds.url(),
            ca_file: None,
            skip_verify: false,
            zone_name: None,
            client_cert: None,
            client_key: None,
        }),
        types: vec![ResourceType::from_name("MeshCircuitBreaker").unwrap()],
        meshes: None,
        poll_interval: Duration::from_millis(250),
        stall_threshold: Duration::from_secs(2),
        tls: None,
        basic_auth: None,
        kuma_version: Some(kuma_model::KumaLine::V2),
        shards: None,
        leader_election: None,
        canary: None,
    };
    let running = serve::start(cfg).await.expect("serve starts");
    let target = running.local_addr.unwrap();
    // Prometheus starts once kuma-sync has read everything: start-up is not steady state.
    let wait = async {
        loop {
            let (_, m) = get(target, "/metrics", None).await;
            if running.monitor.ready()
                && running.monitor.report().converged
                && sample(&m, "kuma_sync_kds_connected") == Some(1.0)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("converged with the probe connected");

    let (webhook, alertmanager, prometheus) =
        tokio::task::spawn_blocking(move || alert_stack(&target.to_string(), |rules| rules))
            .await
            .unwrap();
    let prometheus = Arc::new(prometheus);

    // Steady state: after several scrapes and evaluations, no alert is pending or firing.
    let p = prometheus.clone();
    let scraped_enough = async {
        loop {
            let q = p.clone();
            let scrapes = tokio::task::spawn_blocking(move || {
                let r = q
                    .query("count_over_time(kuma_sync_build_info[1m])", None)
                    .expect("query");
                r.series()
                    .first()
                    .and_then(|s| s["value"][1].as_str())
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .await
            .unwrap();
            if scrapes.is_some_and(|n| n >= 4.0) {
                return;
            }
            // Prometheus scrapes every second; look again a little later.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), scraped_enough)
        .await
        .unwrap_or_else(|_| panic!("Prometheus did not scrape kuma-sync:\n{}", prometheus.log()));
    let alerts = tokio::task::spawn_blocking(move || p.alerts().expect("alerts"))
        .await
        .unwrap();
    assert!(alerts.is_empty(), "steady state raised alerts: {alerts:#?}");

    // Break: the global changes, zone-1 follows, zone-2 silently does not, and the
    // global's KDS stops delivering while the stream stays open.
    kds.faults().stall(true);
    global.upsert(universal_mcb(8));
    zones[0].upsert(universal_copy(&universal_mcb(8)));
    let webhook = Arc::new(webhook);
    let w = webhook.clone();
    let firing = tokio::task::spawn_blocking(move || {
        await_notifications(
            &w,
            &[
                ("KumaSyncZoneOutOfSync", "firing"),
                ("KumaSyncKdsStreamStalled", "firing"),
            ],
            Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    let out_of_sync: Vec<&Value> = firing
        .iter()
        .flat_map(|n| n["alerts"].as_array().into_iter().flatten())
        .filter(|a| a["labels"]["alertname"] == "KumaSyncZoneOutOfSync")
        .collect();
    assert!(
        out_of_sync.iter().all(|a| a["labels"]["zone"] == "zone-2"),
        "only zone-2 is out of sync: {out_of_sync:#?}"
    );

    // Heal: zone-2 catches up and the global's KDS speaks again.
    zones[1].upsert(universal_copy(&universal_mcb(8)));
    kds.faults().stall(false);
    let w = webhook.clone();
    tokio::task::spawn_blocking(move || {
        await_notifications(
            &w,
            &[
                ("KumaSyncZoneOutOfSync", "resolved"),
                ("KumaSyncKdsStreamStalled", "resolved"),
            ],
            Duration::from_secs(60),
        )
    })
    .await
    .unwrap();

    running.stop().await;
    tokio::task::spawn_blocking(move || {
        if let Ok(p) = Arc::try_unwrap(prometheus) {
            p.stop();
        }
        alertmanager.stop();
    })
    .await
    .unwrap();
}
