//! The shipped rules loaded into a real Prometheus that sends to a real Alertmanager
//! running the example config: with kuma-sync's target down, KumaSyncDown travels all
//! the way to the webhook. Also shows the guards the end-to-end test builds on.

use std::time::Duration;

use deploy_tests::alertmanager::Alertmanager;
use deploy_tests::process::free_loopback_port;
use deploy_tests::prom::{Prometheus, PrometheusOptions, override_for_durations};
use deploy_tests::repo;
use deploy_tests::webhook::WebhookReceiver;

#[test]
fn kuma_sync_down_reaches_the_webhook_through_prometheus_and_alertmanager() {
    let webhook = WebhookReceiver::bind().expect("bind webhook");
    let example = repo::read(&repo::deploy("alertmanager/alertmanager.yaml"));
    let am_config = example
        .replace(
            "http://alert-webhook.monitoring.svc:8080/kuma-sync",
            &webhook.url("kuma-sync"),
        )
        .replace("group_wait: 30s", "group_wait: 0s")
        .replace("group_wait: 10s", "group_wait: 0s");
    let alertmanager =
        Alertmanager::start(&am_config, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));

    // Nothing listens on this port: the kuma-sync target is down.
    let dead_port = free_loopback_port().expect("port");
    let rules = override_for_durations(
        &repo::read(&repo::deploy("prometheus/kuma-sync-rules.yaml")),
        "0s",
    );
    assert!(!rules.contains("for: 5m"), "overlay missed a `for:`");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files: [kuma-sync-rules.yaml]\n\
         alerting:\n  alertmanagers:\n    - static_configs: [{{ targets: ['{}'] }}]\n\
         scrape_configs:\n  - job_name: kuma-sync\n    static_configs: [{{ targets: ['127.0.0.1:{dead_port}'] }}]\n",
        alertmanager.addr()
    );
    let prometheus = Prometheus::start(PrometheusOptions::new(config).file("kuma-sync-rules.yaml", rules))
        .unwrap_or_else(|e| panic!("{e}"));

    let notification = webhook.receive(Duration::from_secs(60)).unwrap_or_else(|e| {
        panic!(
            "{e}\nPrometheus:\n{}\nAlertmanager:\n{}",
            prometheus.log(),
            alertmanager.log()
        )
    });
    assert_eq!(notification["receiver"], "kuma-sync-webhook");
    assert_eq!(notification["status"], "firing");
    assert_eq!(notification["groupLabels"]["alertname"], "KumaSyncDown");
    let alert = &notification["alerts"][0];
    assert_eq!(alert["labels"]["severity"], "critical");
    assert!(
        alert["annotations"]["runbook_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("runbook.md#kumasyncdown")),
        "{alert}"
    );

    let firing = prometheus.alerts().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        firing
            .iter()
            .any(|a| a["labels"]["alertname"] == "KumaSyncDown" && a["state"] == "firing"),
        "{firing:?}"
    );
    // No other alert: nothing exports kuma_sync_* series.
    assert!(
        firing.iter().all(|a| a["labels"]["alertname"] == "KumaSyncDown"),
        "{firing:?}"
    );
}
