//! The Grafana dashboard: every PromQL expression and variable query runs against a real
//! Prometheus loaded with synthetic history of every kuma-sync metric.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deploy_tests::prom::{Prometheus, PrometheusOptions, backfill_openmetrics};
use deploy_tests::repo;
use deploy_tests::{exposition::sample_names, synthetic::Dataset};
use serde_json::Value;

fn dashboard() -> Value {
    let path = repo::deploy("grafana/kuma-sync.json");
    serde_json::from_str(&repo::read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel, including those nested in collapsed rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("dashboard has panels") {
        out.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// (panel title, refId, expr) of every query.
fn queries(dashboard: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                panel["title"].as_str().unwrap_or_default().to_owned(),
                target["refId"].as_str().unwrap_or_default().to_owned(),
                target["expr"]
                    .as_str()
                    .expect("every target has an expr")
                    .to_owned(),
            ));
        }
    }
    out
}

/// Dashboard variables and Grafana's built-in intervals, as Grafana would expand them.
fn substitute(expr: &str, values: &[(&str, &str)]) -> String {
    let mut out = expr.to_owned();
    // Longer names first: `$__rate_interval` contains `$__interval`'s tail.
    for (name, value) in values.iter().chain(&[
        ("$__rate_interval", "1m"),
        ("$__interval", "15s"),
        ("$__range", "1h"),
    ]) {
        out = out.replace(name, value);
    }
    assert!(!out.contains('$'), "unsubstituted variable left in {out}");
    out
}

fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("kuma_sync_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn datasource_is_an_input_and_every_query_uses_it() {
    let dashboard = dashboard();
    let inputs = dashboard["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "DS_PROMETHEUS input missing"
    );
    for panel in panels(&dashboard) {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel {}",
            panel["title"]
        );
        let targets = panel["targets"].as_array().expect("non-row panels have targets");
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            assert_eq!(
                target["datasource"]["uid"], "${DS_PROMETHEUS}",
                "panel {}",
                panel["title"]
            );
        }
    }
    for variable in dashboard["templating"]["list"].as_array().expect("variables") {
        assert_eq!(variable["datasource"]["uid"], "${DS_PROMETHEUS}");
    }
}

#[test]
fn panels_cover_the_required_sections_and_only_real_metrics() {
    let dashboard = dashboard();
    let known = sample_names();
    let mut used = std::collections::BTreeSet::new();
    for (title, _, expr) in queries(&dashboard) {
        for name in metric_names(&expr) {
            assert!(
                known.contains(&name),
                "panel {title:?} uses unknown metric {name}"
            );
            used.insert(name);
        }
    }
    // Every family appears on the dashboard; a histogram's _sum/_count are optional.
    for name in known {
        if name.ends_with("_sum") || name.ends_with("_count") {
            continue;
        }
        assert!(used.contains(&name), "no panel shows {name}");
    }
    let kinds: Vec<&str> = panels(&dashboard)
        .iter()
        .filter_map(|p| p["type"].as_str())
        .collect();
    for kind in ["heatmap", "state-timeline", "table", "stat", "timeseries"] {
        assert!(kinds.contains(&kind), "no {kind} panel");
    }
}

/// Starts Prometheus on an hour of synthetic history ending ten minutes ago.
fn prometheus_with_history() -> (Prometheus, Dataset, tempfile::TempDir) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let step = 15;
    let end = (now - 600) / step * step;
    let samples = 241;
    let dataset = Dataset {
        start: end - step * (samples - 1),
        step,
        samples,
    };
    let storage = tempfile::tempdir().expect("temp dir");
    backfill_openmetrics(
        &dataset
            .to_openmetrics()
            .unwrap_or_else(|e| panic!("synthetic history: {e}")),
        storage.path(),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("backfill failed: {e}"));
    let prometheus = Prometheus::start(
        PrometheusOptions::new("global:\n  evaluation_interval: 1m\nscrape_configs: []\n")
            .storage(storage.path()),
    )
    .unwrap_or_else(|e| panic!("Prometheus did not start: {e}"));
    (prometheus, dataset, storage)
}

#[test]
fn every_dashboard_query_runs_on_a_real_prometheus_and_shows_data() {
    let dashboard = dashboard();
    let (prometheus, dataset, _storage) = prometheus_with_history();
    let at = (dataset.end() - 30) as f64;

    // Variables first: their values feed the second pass below.
    for variable in dashboard["templating"]["list"].as_array().expect("variables") {
        let definition = variable["definition"].as_str().expect("variable definition");
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("unexpected variable query {definition}"));
        let (selector, label) = inner.rsplit_once(',').expect("label_values(selector, label)");
        let selector = substitute(selector.trim(), &[("$job", "kuma-sync")]);
        let values = prometheus
            .label_values(
                label.trim(),
                &selector,
                dataset.start as f64,
                dataset.end() as f64,
            )
            .unwrap_or_else(|e| panic!("variable {definition}: {e}"));
        assert!(!values.is_empty(), "variable {definition} has no values");
    }

    let passes: [&[(&str, &str)]; 2] = [
        &[("$job", "kuma-sync"), ("$zone", ".*"), ("$type", ".*")],
        &[("$job", "kuma-sync"), ("$zone", "zone-2"), ("$type", ".*")],
    ];
    let mut failures = Vec::new();
    for values in passes {
        for (title, ref_id, expr) in queries(&dashboard) {
            let expr = substitute(&expr, values);
            match prometheus.query(&expr, Some(at)) {
                Ok(result) if result.is_empty() => {
                    failures.push(format!("{title} {ref_id}: empty result for {expr}"))
                }
                Ok(_) => {}
                Err(e) => failures.push(format!("{title} {ref_id}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing queries:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn key_panels_show_the_right_numbers() {
    let dashboard = dashboard();
    let (prometheus, dataset, _storage) = prometheus_with_history();
    let at = (dataset.end() - 30) as f64;
    let all = [("$job", "kuma-sync"), ("$zone", ".*"), ("$type", ".*")];
    let by_label = |title: &str, label: &str| -> BTreeMap<String, f64> {
        let (_, _, expr) = queries(&dashboard)
            .into_iter()
            .find(|(t, _, _)| t == title)
            .unwrap_or_else(|| panic!("no panel {title:?}"));
        let result = prometheus
            .query(&substitute(&expr, &all), Some(at))
            .unwrap_or_else(|e| panic!("{title}: {e}"));
        result
            .series()
            .iter()
            .map(|s| {
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .expect("sample value");
                (s["metric"][label].as_str().unwrap_or_default().to_owned(), value)
            })
            .collect()
    };

    let states = by_label("Zone state", "zone");
    assert_eq!(
        states,
        BTreeMap::from([
            ("zone-1".into(), 0.0),
            ("zone-2".into(), 1.0),
            ("zone-3".into(), 2.0)
        ]),
        "0 converged, 1 diverged, 2 unknown"
    );
    let p99 = by_label("p99 propagation by zone", "zone");
    assert!(
        p99["zone-1"] > 2.5 && p99["zone-1"] <= 5.0,
        "zone-1 p99 {}",
        p99["zone-1"]
    );
    assert!(
        p99["zone-2"] > 30.0 && p99["zone-2"] <= 60.0,
        "zone-2 p99 {}",
        p99["zone-2"]
    );
    let discrepancies = by_label("Discrepancies by state", "state");
    assert_eq!(discrepancies["missing"], 2.0);
    assert_eq!(discrepancies["drifted"], 1.0);
    assert_eq!(discrepancies["orphaned"], 1.0);
    let readable = by_label("Control plane readable", "cp");
    assert_eq!(readable["zone-3"], 0.0);
    assert_eq!(readable["global"], 1.0);
}
