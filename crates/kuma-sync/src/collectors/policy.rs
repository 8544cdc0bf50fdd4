//! Convergence and source state, built from the monitor.
//!
//! Families are assembled directly rather than through metric vectors: a scrape at
//! 100 zones x 16 types carries ~8,000 series, and hashing each label set into a vector
//! only to read it back out was most of the scrape's cost (docs/benchmarks-live.md).
//! Nearly all of them change only when the monitor does, so [`ConvergenceText`] encodes
//! those once per state revision; [`PolicyCollector`] builds the few that age with
//! the clock (or with every read) at every scrape.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use bytes::Bytes;

use jiff::Timestamp;
use policy_watcher::{State, ZoneState, monitor::Monitor};
use prometheus::{
    Encoder, TextEncoder,
    core::{Collector, Desc},
    proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType},
};

/// What this collector exports: name, help, label names (sorted, as Prometheus prints
/// them), and whether it is a counter.
const SPECS: &[(&str, &str, &[&str], bool)] = &[
    (
        "kuma_sync_up",
        "Whether the last read of the control plane succeeded (1) or not (0).",
        &["cp"],
        false,
    ),
    (
        "kuma_sync_source_last_sync_timestamp_seconds",
        "Unix time of the last successful read of the control plane.",
        &["cp"],
        false,
    ),
    (
        "kuma_sync_source_errors_total",
        "Failed reads of the control plane, by class of error.",
        &["class", "cp"],
        true,
    ),
    (
        "kuma_sync_resources",
        "Copies of resources per zone, type and state (both directions of sync).",
        &["state", "type", "zone"],
        false,
    ),
    (
        "kuma_sync_zone_converged",
        "Whether every copy of the zone is in sync (1) or not (0).",
        &["zone"],
        false,
    ),
    (
        "kuma_sync_zone_state",
        "The zone's verdict: 1 for the current state among converged, diverged and unknown.",
        &["state", "zone"],
        false,
    ),
    (
        "kuma_sync_zone_unmonitored",
        "Zones the global control plane knows that kuma-sync is not configured to read.",
        &["zone"],
        false,
    ),
    (
        "kuma_sync_out_of_sync_seconds",
        "Age of the zone's oldest open discrepancy; 0 when none is open.",
        &["zone"],
        false,
    ),
    (
        "kuma_sync_zone_online",
        "Whether the global sees the zone online (ZoneInsight).",
        &["zone"],
        false,
    ),
    (
        "kuma_sync_zone_last_ack_age_seconds",
        "Seconds since the zone last confirmed or rejected an update (ZoneInsight lastUpdateTime).",
        &["zone"],
        false,
    ),
    (
        "kuma_sync_zone_rejected_responses",
        "Responses the zone rejected (NACKed) on its current subscription, by type (ZoneInsight).",
        &["type", "zone"],
        false,
    ),
    (
        "kuma_sync_zone_info",
        "Always 1; labels give the zone control plane's version and whether the global finds it compatible.",
        &["compatible", "version", "zone"],
        false,
    ),
];

/// The families whose values move with the clock or with every read, not only when the
/// state changes (indices in [`SPECS`]): `kuma_sync_source_last_sync_timestamp_seconds`,
/// `kuma_sync_out_of_sync_seconds` and `kuma_sync_zone_last_ack_age_seconds`.
const AGING: [usize; 3] = [1, 7, 9];

/// Which families a build fills.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Those that change only with the monitor.
    Settled,
    /// Those in [`AGING`].
    Aging,
}

impl Part {
    fn has(self, family: usize) -> bool {
        AGING.contains(&family) == (self == Part::Aging)
    }
}

/// Builds the aging families at every scrape (registered in the registry).
pub struct PolicyCollector {
    source: Source,
    descs: Vec<Desc>,
}

/// Where the families come from.
struct Source {
    monitor: Arc<Monitor>,
    /// The KDS probe's own zone: the global lists it like any zone, but it is ours, and it
    /// goes offline whenever kuma-sync restarts. Left out of zone metrics.
    probe_zone: Option<String>,
}

/// The families that change only with the monitor's state, in Prometheus' text format,
/// encoded again only when its settled revision moved: REST sources re-read every
/// control plane every few seconds, and an unchanged re-read must not cost a rebuild.
pub struct ConvergenceText {
    source: Source,
    cache: Mutex<Option<(u64, Bytes)>>,
}

impl ConvergenceText {
    pub fn new(monitor: Arc<Monitor>, probe_zone: Option<String>) -> Self {
        Self {
            source: Source { monitor, probe_zone },
            cache: Mutex::new(None),
        }
    }

    /// The encoded families as of the monitor's current version.
    pub fn encoded(&self) -> prometheus::Result<Bytes> {
        // Read before building: a change made meanwhile is in the text, and the next
        // call, seeing a newer revision, builds again. Never the reverse.
        let version = self.source.monitor.settled_revision();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((built, text)) = &*cache
            && *built == version
        {
            return Ok(text.clone());
        }
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.source.build(Part::Settled), &mut buf)?;
        let text = Bytes::from(buf);
        *cache = Some((version, text.clone()));
        Ok(text)
    }
}

impl PolicyCollector {
    pub fn new(monitor: Arc<Monitor>, probe_zone: Option<String>) -> Self {
        let descs = SPECS
            .iter()
            .enumerate()
            .filter(|(i, _)| Part::Aging.has(*i))
            .map(|(_, (name, help, labels, _))| {
                let labels = labels.iter().map(|l| (*l).to_owned()).collect();
                Desc::new((*name).to_owned(), (*help).to_owned(), labels, HashMap::new())
                    .expect("metric names and labels are valid constants")
            })
            .collect();
        Self {
            source: Source { monitor, probe_zone },
            descs,
        }
    }
}

/// One family being filled (its index in [`SPECS`]), or skipped when the build is not
/// for it; labels are given in the spec's order.
struct Family(MetricFamily, usize, bool);

impl Family {
    fn of(i: usize, part: Part) -> Self {
        let (name, help, _, counter) = SPECS[i];
        let mut mf = MetricFamily::default();
        mf.set_name(name.to_owned());
        mf.set_help(help.to_owned());
        mf.set_field_type(if counter {
            MetricType::COUNTER
        } else {
            MetricType::GAUGE
        });
        Self(mf, i, part.has(i))
    }

    fn push(&mut self, values: &[&str], value: f64) {
        if !self.2 {
            return;
        }
        let (_, _, names, counter) = SPECS[self.1];
        let labels = names
            .iter()
            .zip(values)
            .map(|(n, v)| {
                let mut l = LabelPair::default();
                l.set_name((*n).to_owned());
                l.set_value((*v).to_owned());
                l
            })
            .collect();
        let mut m = Metric::default();
        m.set_label(labels);
        if counter {
            let mut c = Counter::default();
            c.set_value(value);
            m.set_counter(c);
        } else {
            let mut g = Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
        self.0.mut_metric().push(m);
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

impl Collector for PolicyCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.source.build(Part::Aging)
    }
}

impl Source {
    fn build(&self, part: Part) -> Vec<MetricFamily> {
        let mut f: Vec<Family> = (0..SPECS.len()).map(|i| Family::of(i, part)).collect();
        let [
            up,
            last_sync,
            errors,
            resources,
            converged,
            zone_state,
            unmonitored,
            out_of_sync,
            online,
            last_ack,
            rejected,
            info,
        ] = f
            .get_disjoint_mut([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
            .expect("twelve distinct families");
        let now = Timestamp::now();
        {
            let st = self.monitor.lock();
            let topology = st.engine.topology();
            // Sharded, the global's own health is shard 0's to report: once, not N times.
            let reports_global = topology.shard.is_none_or(|s| s.reports_global());
            for (cp, s) in &st.sources {
                if *cp == kuma_model::CpRole::Global && !reports_global {
                    continue;
                }
                let cp = cp.to_string();
                up.push(&[&cp], flag(s.up));
                if let Some(t) = s.last_success {
                    last_sync.push(&[&cp], t.as_millisecond() as f64 / 1000.0);
                }
                for (class, n) in &s.errors {
                    errors.push(&[class, &cp], *n as f64);
                }
            }
            // Each part computes only what it shows: the counts are the settled part's
            // bulk, the ages walk every open discrepancy.
            let counts: HashMap<(&str, &str, State), usize> = match part {
                Part::Settled => st
                    .engine
                    .counts()
                    .map(|(zone, t, s, n)| ((zone, t.name(), s), n))
                    .collect(),
                Part::Aging => HashMap::new(),
            };
            let ages = match part {
                Part::Aging => st.out_of_sync_seconds(now),
                Part::Settled => Default::default(),
            };
            let zones: Vec<&str> = st
                .engine
                .topology()
                .zones
                .iter()
                .map(|z| z.name.as_str())
                .collect();
            for zone in &zones {
                // Every (type, state) is present, zero or not, so rates and alerts see a
                // series go to 0 rather than vanish.
                let types = st.engine.selection().types().filter(|_| part == Part::Settled);
                for t in types {
                    for s in State::ALL {
                        let n = counts.get(&(zone, t.name(), s)).copied().unwrap_or(0);
                        resources.push(&[s.as_str(), t.name(), zone], n as f64);
                    }
                }
                let state = st.zone_state(zone);
                converged.push(&[zone], flag(state == ZoneState::Converged));
                for s in ZoneState::ALL {
                    zone_state.push(&[s.as_str(), zone], flag(s == state));
                }
                out_of_sync.push(&[zone], ages.get(*zone).copied().unwrap_or(0.0));
            }
            let ours = |z: &str| self.probe_zone.as_deref() == Some(z);
            for zone in st
                .engine
                .known_zones()
                .keys()
                .filter(|z| !zones.contains(&z.as_str()) && !ours(z) && topology.owns(z))
            {
                unmonitored.push(&[zone], 1.0);
            }
            for (zone, insight) in st
                .zone_insights
                .iter()
                .flatten()
                .filter(|(z, _)| !ours(z) && topology.owns(z))
            {
                online.push(&[zone], flag(insight.online));
                if let Some(t) = insight.last_update {
                    last_ack.push(
                        &[zone],
                        (now.as_millisecond() - t.as_millisecond()).max(0) as f64 / 1000.0,
                    );
                }
                for (rtype, n) in &insight.rejected {
                    rejected.push(&[rtype, zone], *n as f64);
                }
                let compatible = match insight.compatible {
                    Some(true) => "true",
                    Some(false) => "false",
                    None => "unknown",
                };
                info.push(
                    &[compatible, insight.version.as_deref().unwrap_or("unknown"), zone],
                    1.0,
                );
            }
        }
        // Prometheus' text format has no place for a family without samples.
        f.into_iter()
            .map(|f| f.0)
            .filter(|mf| !mf.get_metric().is_empty())
            .collect()
    }
}
