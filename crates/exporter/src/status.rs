//! `/status`: the verdict as JSON, with each source's health. Field names are stable.

use std::collections::BTreeMap;

use policy_watcher::{Report, monitor::Monitor};
use serde::Serialize;

#[derive(Serialize)]
struct Status<'a> {
    ready: bool,
    #[serde(flatten)]
    report: &'a Report,
    sources: BTreeMap<String, Source>,
}

#[derive(Serialize)]
struct Source {
    up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_success: Option<jiff::Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    errors: BTreeMap<&'static str, u64>,
}

pub fn render(monitor: &Monitor, probe_zone: &str) -> String {
    let ready = monitor.ready();
    let (report, sources) = {
        let st = monitor.lock();
        let sources = st
            .sources
            .iter()
            .map(|(cp, s)| {
                let src = Source {
                    up: s.up,
                    last_success: s.last_success,
                    last_error: s.last_error.clone(),
                    errors: s.errors.clone(),
                };
                (cp.to_string(), src)
            })
            .collect();
        (Report::build(&st.engine).with_probe_zone(probe_zone), sources)
    };
    let mut s = serde_json::to_string_pretty(&Status {
        ready,
        report: &report,
        sources,
    })
    .unwrap_or_else(|e| format!("{{\"error\":{}}}", serde_json::Value::String(e.to_string())));
    s.push('\n');
    s
}
