//! The example Alertmanager configuration: `amtool` accepts it and routes kuma-sync alerts
//! as documented, and a real Alertmanager running it delivers a posted alert, grouped by
//! zone, to a webhook listening in this test.

use std::time::Duration;

use deploy_tests::alertmanager::Alertmanager;
use deploy_tests::process::AMTOOL;
use deploy_tests::repo;
use deploy_tests::webhook::WebhookReceiver;
use serde_json::json;

const AMTOOL_TIMEOUT: Duration = Duration::from_secs(60);

fn config_path() -> std::path::PathBuf {
    repo::deploy("alertmanager/alertmanager.yaml")
}

#[test]
fn amtool_accepts_the_example() {
    let config = config_path();
    let output = AMTOOL
        .run(
            ["check-config".as_ref(), config.as_os_str()],
            &repo::root(),
            AMTOOL_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(output.success(), "{}", output.transcript());
    assert!(output.stdout.contains("SUCCESS"), "{}", output.transcript());
}

#[test]
fn kuma_sync_alerts_reach_the_webhook_receiver() {
    let config = format!("--config.file={}", config_path().display());
    for labels in [
        [
            "alertname=KumaSyncZoneOffline",
            "severity=critical",
            "zone=zone-1",
        ],
        [
            "alertname=KumaSyncResourcesMissing",
            "severity=warning",
            "zone=zone-2",
        ],
    ] {
        let mut args = vec![
            "config",
            "routes",
            "test",
            config.as_str(),
            "--verify.receivers=kuma-sync-webhook",
        ];
        args.extend(labels);
        let output = AMTOOL
            .run(&args, &repo::root(), AMTOOL_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(output.success(), "{labels:?}: {}", output.transcript());
    }
}

#[test]
fn real_alertmanager_delivers_a_posted_alert_grouped_by_zone() {
    let webhook = WebhookReceiver::bind().expect("bind webhook");
    let url = webhook.url("kuma-sync");
    // Test overlay: our webhook, and no 10 s group wait.
    let example = repo::read(&config_path());
    let config = example
        .replace("http://alert-webhook.monitoring.svc:8080/kuma-sync", &url)
        .replace("group_wait: 10s", "group_wait: 0s");
    assert_ne!(config, example, "overlay did not apply");
    let alertmanager =
        Alertmanager::start(&config, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));

    let alert = json!([{
        "labels": {
            "alertname": "KumaSyncZoneOutOfSync", "severity": "critical",
            "zone": "zone-2", "job": "kuma-sync", "instance": "kuma-sync:9465"
        },
        "annotations": { "summary": "Zone zone-2 has been out of sync" },
    }]);
    alertmanager.post_alerts(&alert).unwrap_or_else(|e| panic!("{e}"));
    let held = alertmanager.alerts().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["receivers"][0]["name"], "kuma-sync-webhook");

    let notification = webhook
        .receive(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", alertmanager.log()));
    assert_eq!(notification["receiver"], "kuma-sync-webhook");
    assert_eq!(notification["status"], "firing");
    assert_eq!(
        notification["groupLabels"],
        json!({ "alertname": "KumaSyncZoneOutOfSync", "zone": "zone-2" }),
        "grouped by alert and zone"
    );
    assert_eq!(notification["alerts"][0]["labels"]["zone"], "zone-2");
    alertmanager.stop();
}

/// An offline zone mutes its own consequences, not other zones' alerts.
#[test]
fn zone_offline_inhibits_that_zones_out_of_sync_alert_only() {
    let alertmanager = Alertmanager::start(&repo::read(&config_path()), Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let alert = |name: &str, zone: &str, severity: &str| json!({ "labels": { "alertname": name, "zone": zone, "severity": severity, "job": "kuma-sync" } });
    alertmanager
        .post_alerts(&json!([
            alert("KumaSyncZoneOffline", "zone-1", "critical"),
            alert("KumaSyncZoneOutOfSync", "zone-1", "critical"),
            alert("KumaSyncZoneOutOfSync", "zone-2", "critical"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
    let state_in = |held: &[serde_json::Value], name: &str, zone: &str| -> Option<String> {
        held.iter()
            .find(|a| a["labels"]["alertname"] == name && a["labels"]["zone"] == zone)
            .map(|a| a["status"]["state"].as_str().unwrap_or_default().to_owned())
    };
    let inhibited = |held: &[serde_json::Value]| {
        state_in(held, "KumaSyncZoneOutOfSync", "zone-1").as_deref() == Some("suppressed")
    };
    let held = alertmanager
        .alerts_once(inhibited, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let state = |name: &str, zone: &str| -> String {
        state_in(&held, name, zone).unwrap_or_else(|| panic!("{name}/{zone} not held: {held:?}"))
    };
    assert_eq!(state("KumaSyncZoneOutOfSync", "zone-1"), "suppressed");
    assert_eq!(state("KumaSyncZoneOutOfSync", "zone-2"), "active");
    assert_eq!(state("KumaSyncZoneOffline", "zone-1"), "active");
}
