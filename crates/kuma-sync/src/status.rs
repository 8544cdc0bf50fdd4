//! `/status`: the verdict as JSON, with each source's health. Field names are stable.
//!
//! A person reads it (the runbook starts with `curl /status | jq`), so it lists at most
//! [`DEFAULT_LIMIT`] discrepancies unless asked for more (`?limit=N`), or one zone's
//! (`?zone=NAME`); counts and zone states are always whole, and `discrepancies_total`
//! and `truncated` say what was left out. A mesh with a million open copies would
//! otherwise make every request work out a million diffs.

use std::collections::BTreeMap;

use policy_watcher::{Report, Window, monitor::Monitor};
use serde::Serialize;

/// Discrepancies listed when the request does not say.
pub const DEFAULT_LIMIT: usize = 1000;

#[derive(Serialize)]
struct Status<'a> {
    ready: bool,
    #[serde(flatten)]
    report: &'a Report,
    /// Discrepancies in scope (of `zone`, when asked), listed or not.
    discrepancies_total: usize,
    /// Fewer are listed than there are.
    truncated: bool,
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

/// What a request asked of `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub zone: Option<String>,
    pub limit: usize,
}

impl Query {
    /// `limit=N` (a positive count) and `zone=NAME`; anything else is refused with a
    /// line saying why, rather than answered as if it had not been asked.
    pub fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut q = Query {
            zone: None,
            limit: DEFAULT_LIMIT,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "limit" => {
                    q.limit = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("limit must be a positive count, not {value:?}"))?;
                }
                "zone"
                    if !value.is_empty()
                        && value
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
                {
                    q.zone = Some(value.to_owned());
                }
                "zone" => return Err(format!("zone {value:?} is not a zone name")),
                _ => return Err(format!("unknown parameter {key:?}: /status takes limit and zone")),
            }
        }
        Ok(q)
    }
}

pub fn render(monitor: &Monitor, probe_zone: &str, query: &Query) -> String {
    let ready = monitor.ready();
    let window = Window {
        zone: query.zone.as_deref(),
        limit: query.limit,
    };
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
        (
            Report::build_window(&st.engine, &window).with_probe_zone(probe_zone),
            sources,
        )
    };
    let discrepancies_total = match &query.zone {
        None => report.open(),
        Some(zone) => report
            .zones
            .iter()
            .filter(|z| z.zone == *zone)
            .map(|z| {
                z.counts
                    .iter()
                    .filter(|(s, _)| **s != policy_watcher::State::Synced)
                    .map(|(_, n)| n)
                    .sum::<usize>()
            })
            .sum(),
    };
    let mut s = serde_json::to_string_pretty(&Status {
        ready,
        truncated: report.discrepancies.len() < discrepancies_total,
        discrepancies_total,
        report: &report,
        sources,
    })
    .unwrap_or_else(|e| format!("{{\"error\":{}}}", serde_json::Value::String(e.to_string())));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_read_strictly() {
        assert_eq!(
            Query::parse(None).unwrap(),
            Query {
                zone: None,
                limit: DEFAULT_LIMIT
            }
        );
        assert_eq!(
            Query::parse(Some("zone=zone-1&limit=5")).unwrap(),
            Query {
                zone: Some("zone-1".into()),
                limit: 5
            }
        );
        for bad in [
            "limit=0",
            "limit=-1",
            "limit=many",
            "zone=",
            "zone=a%0a",
            "verbose=1",
        ] {
            assert!(Query::parse(Some(bad)).is_err(), "{bad} accepted");
        }
    }
}
