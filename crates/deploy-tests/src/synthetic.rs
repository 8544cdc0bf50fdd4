//! Synthetic OpenMetrics history of every metric `kuma-sync serve` exports, for loading
//! into a real Prometheus with [`crate::prom::backfill_openmetrics`].
//!
//! The scenario has something to show on every dashboard panel: zone-1 converged, zone-2
//! diverged (missing, drifted and orphaned resources, slow propagation, a NACK, flaps),
//! zone-3 unreadable (`unknown`) and incompatible, zone-4 known to the global but not
//! configured (unmonitored); the KDS probe is connected and receiving.

use std::{collections::BTreeSet, fmt::Write};

use crate::exposition::{self, Kind};

/// Histogram buckets of `kuma_sync_propagation_seconds` (10 ms to 5 min).
pub const PROPAGATION_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

pub const JOB: &str = "kuma-sync";
pub const INSTANCE: &str = "10.0.0.7:9465";
const TYPES: &[&str] = &["MeshTimeout", "MeshRetry", "MeshTrafficPermission"];
const ZONES: &[&str] = &["zone-1", "zone-2", "zone-3"];

/// A regular sampling of the scenario: `samples` points `step` seconds apart from `start`.
#[derive(Debug, Clone, Copy)]
pub struct Dataset {
    /// Unix seconds of the first sample.
    pub start: i64,
    pub step: i64,
    pub samples: i64,
}

impl Dataset {
    /// Unix seconds of the last sample.
    pub fn end(&self) -> i64 {
        self.start + self.step * (self.samples - 1)
    }

    /// The whole history as OpenMetrics text with timestamps, ending in `# EOF`; an
    /// error when the scenario and kuma-sync's families (its golden exposition) disagree:
    /// a dashboard test on data that lacks a family would pass on what it cannot see.
    pub fn to_openmetrics(&self) -> Result<String, CoverageError> {
        let mut out = History::new(*self);
        self.sources(&mut out);
        self.convergence(&mut out);
        self.propagation(&mut out);
        self.zone_insights(&mut out);
        self.kds_probe(&mut out);
        self.canary(&mut out);
        out.gauge("kuma_sync_build_info", &[&[("version", "0.1.0")]], |_| 1.0);
        out.gauge(
            "kuma_sync_shard_info",
            &[&[("shard", "0"), ("total", "1")]],
            |_| 1.0,
        );
        out.gauge("kuma_sync_leader", &[&[]], |_| 1.0);
        out.gauge("up", &[&[]], |_| 1.0);
        out.text.push_str("# EOF\n");
        // `up` is Prometheus' own, added by every scrape: not kuma-sync's to export.
        let written: Vec<_> = out.written.into_iter().filter(|f| f.name != "up").collect();
        covers(&written, &exposition::families())?;
        Ok(out.text)
    }

    fn sources(&self, out: &mut History) {
        let cps: Vec<Labels> = ["global", "zone-1", "zone-2", "zone-3"]
            .iter()
            .map(|cp| vec![("cp", *cp)])
            .collect();
        let cps: Vec<&[(&str, &str)]> = cps.iter().map(Vec::as_slice).collect();
        out.gauge("kuma_sync_up", &cps, |p| f64::from(p.series != 3));
        let start = self.start as f64;
        out.gauge("kuma_sync_source_last_sync_timestamp_seconds", &cps, |p| {
            if p.series == 3 { start } else { p.time - 2.0 }
        });
        out.counter(
            "kuma_sync_source_errors",
            &[
                &[("cp", "zone-3"), ("class", "unreachable")],
                &[("cp", "zone-2"), ("class", "timeout")],
            ],
            |p| {
                if p.series == 0 {
                    p.index
                } else {
                    (p.index / 10.0).floor()
                }
            },
        );
    }

    fn convergence(&self, out: &mut History) {
        let states = ["synced", "missing", "drifted", "orphaned", "unexpected"];
        let mut resources = Vec::new();
        for zone in ZONES {
            for ty in TYPES {
                for state in states {
                    resources.push(vec![("zone", *zone), ("type", *ty), ("state", state)]);
                }
            }
        }
        let resources_ref: Vec<&[(&str, &str)]> = resources.iter().map(Vec::as_slice).collect();
        out.gauge("kuma_sync_resources", &resources_ref, |p| {
            let labels = &resources[p.series];
            match (labels[0].1, labels[1].1, labels[2].1) {
                (_, _, "synced") => 5.0,
                ("zone-2", "MeshTimeout", "missing") => 2.0,
                ("zone-2", "MeshRetry", "drifted") => 1.0,
                ("zone-2", "MeshTrafficPermission", "orphaned") => 1.0,
                _ => 0.0,
            }
        });
        let zones: Vec<Labels> = ZONES.iter().map(|z| vec![("zone", *z)]).collect();
        let zones_ref: Vec<&[(&str, &str)]> = zones.iter().map(Vec::as_slice).collect();
        out.gauge("kuma_sync_zone_converged", &zones_ref, |p| {
            f64::from(p.series == 0)
        });
        let mut states = Vec::new();
        for zone in ZONES {
            for state in ["converged", "diverged", "unknown"] {
                states.push(vec![("zone", *zone), ("state", state)]);
            }
        }
        let states_ref: Vec<&[(&str, &str)]> = states.iter().map(Vec::as_slice).collect();
        // Series 3*z + s: zone z is in state z (converged, diverged, unknown).
        out.gauge("kuma_sync_zone_state", &states_ref, |p| {
            f64::from(p.series / 3 == p.series % 3)
        });
        let step = self.step as f64;
        out.gauge("kuma_sync_out_of_sync_seconds", &zones_ref, |p| {
            if p.series == 1 { p.index * step } else { 0.0 }
        });
        let all: Vec<Labels> = ["zone-1", "zone-2", "zone-3", "zone-4"]
            .iter()
            .map(|z| vec![("zone", *z)])
            .collect();
        let all_ref: Vec<&[(&str, &str)]> = all.iter().map(Vec::as_slice).collect();
        out.gauge("kuma_sync_zone_unmonitored", &all_ref, |p| {
            f64::from(p.series == 3)
        });
    }

    fn propagation(&self, out: &mut History) {
        let mut series = Vec::new();
        for zone in ["zone-1", "zone-2"] {
            for ty in TYPES {
                series.push(vec![("zone", zone), ("type", *ty)]);
            }
        }
        let series_ref: Vec<&[(&str, &str)]> = series.iter().map(Vec::as_slice).collect();
        // Per step, zone-1 sees copies after 0.2 s, 0.8 s and 3 s; zone-2 after 45 s.
        out.histogram("kuma_sync_propagation_seconds", &series_ref, |series| {
            if series < TYPES.len() {
                &[0.2, 0.8, 3.0]
            } else {
                &[45.0]
            }
        });
        out.counter(
            "kuma_sync_flaps",
            &[&[("zone", "zone-2"), ("type", "MeshTimeout")]],
            |p| (p.index / 20.0).floor(),
        );
    }

    fn zone_insights(&self, out: &mut History) {
        let all: Vec<Labels> = ["zone-1", "zone-2", "zone-3", "zone-4"]
            .iter()
            .map(|z| vec![("zone", *z)])
            .collect();
        let all_ref: Vec<&[(&str, &str)]> = all.iter().map(Vec::as_slice).collect();
        out.gauge("kuma_sync_zone_online", &all_ref, |p| f64::from(p.series != 2));
        out.gauge("kuma_sync_zone_last_ack_age_seconds", &all_ref, |p| {
            3.0 + p.index % 10.0
        });
        out.gauge(
            "kuma_sync_zone_rejected_responses",
            &[
                &[("zone", "zone-2"), ("type", "MeshRetry")],
                &[("zone", "zone-1"), ("type", "MeshRetry")],
            ],
            |p| {
                if p.series == 0 {
                    (p.index / 30.0).floor()
                } else {
                    0.0
                }
            },
        );
        out.gauge(
            "kuma_sync_zone_info",
            &[
                &[("zone", "zone-1"), ("version", "2.14.3"), ("compatible", "true")],
                &[("zone", "zone-2"), ("version", "2.14.3"), ("compatible", "true")],
                &[("zone", "zone-3"), ("version", "2.11.0"), ("compatible", "false")],
                &[("zone", "zone-4"), ("version", "2.14.3"), ("compatible", "true")],
            ],
            |_| 1.0,
        );
    }

    /// The canary reaches zone-1 every sample; zone-2 got it once, at the start.
    fn canary(&self, out: &mut History) {
        let zone = |z: &'static str| -> [(&'static str, &'static str); 1] { [("zone", z)] };
        let (one, two) = (zone("zone-1"), zone("zone-2"));
        out.histogram("kuma_sync_canary_propagation_seconds", &[&one, &two], |series| {
            if series == 0 { &[0.6, 1.2] } else { &[] }
        });
        let start = self.start as f64;
        out.gauge(
            "kuma_sync_canary_last_success_timestamp_seconds",
            &[&one, &two],
            move |p| if p.series == 0 { p.time } else { start },
        );
        out.gauge("kuma_sync_canary_last_write_timestamp_seconds", &[&[]], |p| {
            p.time
        });
        out.counter("kuma_sync_canary_errors", &[&[]], |_| 0.0);
    }

    fn kds_probe(&self, out: &mut History) {
        out.gauge("kuma_sync_kds_stalled", &[&[]], |_| 0.0);
        out.gauge("kuma_sync_kds_connected", &[&[]], |_| 1.0);
        out.gauge("kuma_sync_kds_health_check_up", &[&[]], |_| 1.0);
        out.counter("kuma_sync_kds_stream_starts", &[&[]], |p| {
            1.0 + (p.index / 100.0).floor()
        });
        let types: Vec<Labels> = TYPES.iter().map(|t| vec![("type", *t)]).collect();
        let types_ref: Vec<&[(&str, &str)]> = types.iter().map(Vec::as_slice).collect();
        out.counter("kuma_sync_kds_responses", &types_ref, |p| 2.0 * p.index);
        out.counter("kuma_sync_kds_response_bytes", &types_ref, |p| 2048.0 * p.index);
        out.gauge("kuma_sync_kds_resources", &types_ref, |_| 5.0);
        out.gauge("kuma_sync_kds_last_response_timestamp_seconds", &types_ref, |p| {
            p.time - 1.0
        });
        out.counter("kuma_sync_kds_errors", &[&[("class", "unavailable")]], |p| {
            (p.index / 50.0).floor()
        });
        out.counter(
            "kuma_sync_kds_undecodable_resources",
            &[&[("type", "MeshTimeout")]],
            |p| (p.index / 40.0).floor(),
        );
    }
}

type Labels = Vec<(&'static str, &'static str)>;

/// The point being generated: which series of the family, which sample.
struct Point {
    series: usize,
    /// Sample number, as f64 because every value formula is arithmetic on it.
    index: f64,
    /// Unix seconds of the sample.
    time: f64,
}

/// Accumulates the text, one metric family after the other as OpenMetrics requires, and
/// which families it holds.
struct History {
    dataset: Dataset,
    text: String,
    written: Vec<exposition::Family>,
}

impl History {
    fn new(dataset: Dataset) -> Self {
        Self {
            dataset,
            text: String::new(),
            written: Vec::new(),
        }
    }

    /// Notes a family as written, with the labels of its series.
    fn note(&mut self, name: &str, kind: Kind, series: &[&[(&str, &str)]]) {
        let labels = series
            .iter()
            .flat_map(|s| s.iter().map(|(k, _)| (*k).to_owned()))
            .collect();
        self.written.push(exposition::Family {
            name: name.to_owned(),
            kind,
            labels,
        });
    }

    fn gauge(&mut self, name: &str, series: &[&[(&str, &str)]], value: impl Fn(&Point) -> f64) {
        self.note(name, Kind::Gauge, series);
        self.family(name, "gauge", "", series, value);
    }

    fn counter(&mut self, name: &str, series: &[&[(&str, &str)]], value: impl Fn(&Point) -> f64) {
        self.note(name, Kind::Counter, series);
        self.family(name, "counter", "_total", series, value);
    }

    fn family(
        &mut self,
        name: &str,
        kind: &str,
        suffix: &str,
        series: &[&[(&str, &str)]],
        value: impl Fn(&Point) -> f64,
    ) {
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        for (s, labels) in series.iter().enumerate() {
            let labels = render_labels(labels, None);
            for i in 0..self.dataset.samples {
                let time = self.dataset.start + i * self.dataset.step;
                let point = Point {
                    series: s,
                    index: i as f64,
                    time: time as f64,
                };
                let _ = writeln!(self.text, "{name}{suffix}{labels} {} {time}", value(&point));
            }
        }
    }

    /// Each step adds one observation per value of `observed(series)`.
    fn histogram(
        &mut self,
        name: &str,
        series: &[&[(&str, &str)]],
        observed: impl Fn(usize) -> &'static [f64],
    ) {
        self.note(name, Kind::Histogram, series);
        let _ = writeln!(self.text, "# TYPE {name} histogram");
        for (s, labels) in series.iter().enumerate() {
            let values = observed(s);
            for i in 0..self.dataset.samples {
                let time = self.dataset.start + i * self.dataset.step;
                let rounds = (i + 1) as f64;
                for le in PROPAGATION_BUCKETS.iter().copied().chain([f64::INFINITY]) {
                    let in_bucket = values.iter().filter(|v| **v <= le).count() as f64;
                    let le_text = if le.is_infinite() {
                        "+Inf".to_owned()
                    } else {
                        le.to_string()
                    };
                    let labels = render_labels(labels, Some(&le_text));
                    let _ = writeln!(self.text, "{name}_bucket{labels} {} {time}", in_bucket * rounds);
                }
                let labels = render_labels(labels, None);
                let sum: f64 = values.iter().sum();
                let _ = writeln!(self.text, "{name}_sum{labels} {} {time}", sum * rounds);
                let _ = writeln!(
                    self.text,
                    "{name}_count{labels} {} {time}",
                    values.len() as f64 * rounds
                );
            }
        }
    }
}

/// The synthetic scenario and kuma-sync's families disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoverageError {
    #[error(
        "kuma-sync exports {0:?} (crates/kuma-sync/tests/golden/metrics.txt) and the synthetic scenario has no generator for them: add one to deploy-tests' synthetic.rs"
    )]
    NoGenerator(Vec<String>),
    #[error("the synthetic scenario writes {written:?}; kuma-sync exports {exported:?}")]
    NotExported {
        written: Box<exposition::Family>,
        exported: Option<Box<exposition::Family>>,
    },
}

/// Checks that `written` is exactly the `exported` families: each one there, as the same
/// kind with the same labels.
fn covers(written: &[exposition::Family], exported: &[exposition::Family]) -> Result<(), CoverageError> {
    for w in written {
        let e = exported.iter().find(|e| e.name == w.name);
        if e != Some(w) {
            return Err(CoverageError::NotExported {
                written: Box::new(w.clone()),
                exported: e.cloned().map(Box::new),
            });
        }
    }
    let names: BTreeSet<&str> = written.iter().map(|w| w.name.as_str()).collect();
    let missing: Vec<String> = exported
        .iter()
        .filter(|e| !names.contains(e.name.as_str()))
        .map(|e| e.name.clone())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CoverageError::NoGenerator(missing))
    }
}

fn render_labels(labels: &[(&str, &str)], le: Option<&str>) -> String {
    let mut parts = vec![format!("job=\"{JOB}\""), format!("instance=\"{INSTANCE}\"")];
    parts.extend(labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")));
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_every_family_and_ends_with_eof() {
        let text = Dataset {
            start: 1_000,
            step: 15,
            samples: 3,
        }
        .to_openmetrics()
        .unwrap();
        assert!(text.ends_with("# EOF\n"));
        for name in exposition::sample_names() {
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{name}{{"))),
                "no sample of {name}"
            );
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let text = Dataset {
            start: 0,
            step: 60,
            samples: 2,
        }
        .to_openmetrics()
        .unwrap();
        let zone2_bucket = |le: &str| -> Vec<String> {
            text.lines()
                .filter(|l| {
                    l.contains("_bucket{") && l.contains("zone=\"zone-2\"") && l.contains("MeshTimeout")
                })
                .filter(|l| l.contains(&format!("le=\"{le}\"")))
                .map(|l| l.split(' ').nth(1).unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(zone2_bucket("30"), ["0", "0"]);
        assert_eq!(zone2_bucket("60"), ["1", "2"]);
        assert_eq!(zone2_bucket("+Inf"), ["1", "2"]);
    }

    #[test]
    fn a_family_without_a_generator_or_unlike_kuma_syncs_is_an_error() {
        let exported = exposition::families();
        let mut written = exported.clone();
        let dropped = written.pop().unwrap();
        assert_eq!(
            covers(&written, &exported),
            Err(CoverageError::NoGenerator(vec![dropped.name]))
        );
        let mut relabelled = exported.clone();
        relabelled[0].labels.insert("pod".to_owned());
        assert!(matches!(
            covers(&relabelled, &exported),
            Err(CoverageError::NotExported {
                exported: Some(_),
                ..
            })
        ));
        assert_eq!(covers(&exported, &exported), Ok(()));
    }
}
