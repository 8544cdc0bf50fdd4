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
use policy_watcher::{State, ZoneState, monitor::Monitor};
use prometheus::{
    Encoder, TextEncoder,
    core::{Collector, Desc},
    proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType},
};

use super::Clock;

/// How a family is exposed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

/// What one family is, as the exposition prints it.
struct FamilySpec {
    name: &'static str,
    help: &'static str,
    /// Sorted, as Prometheus prints them; a sample's values are given in this order.
    labels: &'static [&'static str],
    kind: Kind,
    /// Its values move with the clock or with every read, not only when the state
    /// changes: it is built at every scrape rather than encoded once per state.
    aging: bool,
}

/// The families this collector exports, in the order the settled part encodes them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Up,
    LastSync,
    SourceErrors,
    Resources,
    ZoneConverged,
    ZoneState,
    ZoneUnmonitored,
    OutOfSync,
    ZoneOnline,
    LastAckAge,
    RejectedResponses,
    ZoneInfo,
}

impl Family {
    const ALL: [Family; 12] = [
        Family::Up,
        Family::LastSync,
        Family::SourceErrors,
        Family::Resources,
        Family::ZoneConverged,
        Family::ZoneState,
        Family::ZoneUnmonitored,
        Family::OutOfSync,
        Family::ZoneOnline,
        Family::LastAckAge,
        Family::RejectedResponses,
        Family::ZoneInfo,
    ];

    const fn spec(self) -> &'static FamilySpec {
        match self {
            Family::Up => &FamilySpec {
                name: "kuma_sync_up",
                help: "Whether the last read of the control plane succeeded (1) or not (0).",
                labels: &["cp"],
                kind: Kind::Gauge,
                aging: false,
            },
            Family::LastSync => &FamilySpec {
                name: "kuma_sync_source_last_sync_timestamp_seconds",
                help: "Unix time of the last successful read of the control plane.",
                labels: &["cp"],
                kind: Kind::Gauge,
                aging: true,
            },
            Family::SourceErrors => &FamilySpec {
                name: "kuma_sync_source_errors_total",
                help: "Failed reads of the control plane, by class of error.",
                labels: &["class", "cp"],
                kind: Kind::Counter,
                aging: false,
            },
            Family::Resources => &FamilySpec {
                name: "kuma_sync_resources",
                help: "Copies of resources per zone, type and state (both directions of sync).",
                labels: &["state", "type", "zone"],
                kind: Kind::Gauge,
                aging: false,
            },
            Family::ZoneConverged => &FamilySpec {
                name: "kuma_sync_zone_converged",
                help: "Whether every copy of the zone is in sync (1) or not (0).",
                labels: &["zone"],
                kind: Kind::Gauge,
                aging: false,
            },
            Family::ZoneState => &FamilySpec {
                name: "kuma_sync_zone_state",
                help: "The zone's verdict: 1 for the current state among converged, diverged and unknown.",
                labels: &["state", "zone"],
                kind: Kind::Gauge,
                aging: false,
            },
            Family::ZoneUnmonitored => &FamilySpec {
                name: "kuma_sync_zone_unmonitored",
                help: "Zones the global control plane knows that kuma-sync is not configured to read.",
                labels: &["zone"],
                kind: Kind::Gauge,
                aging: false,
            },
            Family::OutOfSync => &FamilySpec {
                name: "kuma_sync_out_of_sync_seconds",
                help: "Age of the zone's oldest open discrepancy; 0 when none is open.",
                labels: &["zone"],
                kind: Kind::Gauge,
                aging: true,
            },
            Family::ZoneOnline => &FamilySpec {
                name: "kuma_sync_zone_online",
                help: "Whether the global sees the zone online (ZoneInsight).",
                labels: &["zone"],
                kind: Kind::Gauge,
                aging: false,
            },
            Family::LastAckAge => &FamilySpec {
                name: "kuma_sync_zone_last_ack_age_seconds",
                help: "Seconds since the zone last confirmed or rejected an update (ZoneInsight lastUpdateTime).",
                labels: &["zone"],
                kind: Kind::Gauge,
                aging: true,
            },
            Family::RejectedResponses => &FamilySpec {
                name: "kuma_sync_zone_rejected_responses",
                help: "Responses the zone rejected (NACKed) on its current subscription, by type (ZoneInsight).",
                labels: &["type", "zone"],
                kind: Kind::Gauge,
                aging: false,
            },
            Family::ZoneInfo => &FamilySpec {
                name: "kuma_sync_zone_info",
                help: "Always 1; labels give the zone control plane's version and whether the global finds it compatible.",
                labels: &["compatible", "version", "zone"],
                kind: Kind::Gauge,
                aging: false,
            },
        }
    }
}

// A build keeps its families in an array indexed by `Family as usize` (a hash or a
// search per sample would cost the scrape again): that holds while `ALL` lists them in
// declaration order.
const _: () = {
    let mut i = 0;
    while i < Family::ALL.len() {
        assert!(
            Family::ALL[i] as usize == i,
            "Family::ALL is in declaration order"
        );
        i += 1;
    }
};

/// Which families a build fills.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Those that change only with the monitor.
    Settled,
    /// The [`FamilySpec::aging`] ones.
    Aging,
}

impl Part {
    fn has(self, spec: &FamilySpec) -> bool {
        spec.aging == (self == Part::Aging)
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
    clock: Clock,
}

/// The families that change only with the monitor's state, in Prometheus' text format,
/// encoded again only when its settled revision moved: REST sources re-read every
/// control plane every few seconds, and an unchanged re-read must not cost a rebuild.
pub struct ConvergenceText {
    source: Source,
    cache: Mutex<Option<(u64, Bytes)>>,
}

impl ConvergenceText {
    pub fn new(monitor: Arc<Monitor>, probe_zone: Option<String>, clock: Clock) -> Self {
        Self {
            source: Source {
                monitor,
                probe_zone,
                clock,
            },
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
    pub fn new(monitor: Arc<Monitor>, probe_zone: Option<String>, clock: Clock) -> Self {
        let descs = Family::ALL
            .iter()
            .map(|f| f.spec())
            .filter(|spec| Part::Aging.has(spec))
            .map(|spec| {
                let labels = spec.labels.iter().map(|l| (*l).to_owned()).collect();
                Desc::new(spec.name.to_owned(), spec.help.to_owned(), labels, HashMap::new())
                    .expect("metric names and labels are valid constants")
            })
            .collect();
        Self {
            source: Source {
                monitor,
                probe_zone,
                clock,
            },
            descs,
        }
    }
}

/// One family being filled, or skipped when the build is not for it.
struct Filling {
    spec: &'static FamilySpec,
    family: MetricFamily,
    filled: bool,
}

impl Filling {
    fn of(family: Family, part: Part) -> Self {
        let spec = family.spec();
        let mut mf = MetricFamily::default();
        mf.set_name(spec.name.to_owned());
        mf.set_help(spec.help.to_owned());
        mf.set_field_type(match spec.kind {
            Kind::Gauge => MetricType::GAUGE,
            Kind::Counter => MetricType::COUNTER,
        });
        Self {
            spec,
            family: mf,
            filled: part.has(spec),
        }
    }

    /// One sample, its label values in the spec's order.
    fn push(&mut self, values: &[&str], value: f64) {
        if !self.filled {
            return;
        }
        let labels = self
            .spec
            .labels
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
        match self.spec.kind {
            Kind::Counter => {
                let mut c = Counter::default();
                c.set_value(value);
                m.set_counter(c);
            }
            Kind::Gauge => {
                let mut g = Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            }
        }
        self.family.mut_metric().push(m);
    }
}

/// Every family of one build, reached by name.
struct Families([Filling; Family::ALL.len()]);

impl Families {
    fn new(part: Part) -> Self {
        Self(Family::ALL.map(|f| Filling::of(f, part)))
    }

    fn push(&mut self, family: Family, values: &[&str], value: f64) {
        self.0[family as usize].push(values, value);
    }

    /// The families with samples: Prometheus' text format has no place for one without.
    fn into_nonempty(self) -> Vec<MetricFamily> {
        self.0
            .into_iter()
            .map(|f| f.family)
            .filter(|mf| !mf.get_metric().is_empty())
            .collect()
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
        let mut f = Families::new(part);
        let now = (self.clock)();
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
                f.push(Family::Up, &[&cp], flag(s.up));
                if let Some(t) = s.last_success {
                    f.push(Family::LastSync, &[&cp], t.as_millisecond() as f64 / 1000.0);
                }
                for (class, n) in &s.errors {
                    f.push(Family::SourceErrors, &[class, &cp], *n as f64);
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
                        f.push(Family::Resources, &[s.as_str(), t.name(), zone], n as f64);
                    }
                }
                let state = st.zone_state(zone);
                f.push(
                    Family::ZoneConverged,
                    &[zone],
                    flag(state == ZoneState::Converged),
                );
                for s in ZoneState::ALL {
                    f.push(Family::ZoneState, &[s.as_str(), zone], flag(s == state));
                }
                f.push(
                    Family::OutOfSync,
                    &[zone],
                    ages.get(*zone).copied().unwrap_or(0.0),
                );
            }
            let ours = |z: &str| self.probe_zone.as_deref() == Some(z);
            for zone in st
                .engine
                .known_zones()
                .keys()
                .filter(|z| !zones.contains(&z.as_str()) && !ours(z) && topology.owns(z))
            {
                f.push(Family::ZoneUnmonitored, &[zone], 1.0);
            }
            for (zone, insight) in st
                .zone_insights
                .iter()
                .flatten()
                .filter(|(z, _)| !ours(z) && topology.owns(z))
            {
                f.push(Family::ZoneOnline, &[zone], flag(insight.online));
                if let Some(t) = insight.last_update {
                    f.push(
                        Family::LastAckAge,
                        &[zone],
                        (now.as_millisecond() - t.as_millisecond()).max(0) as f64 / 1000.0,
                    );
                }
                for (rtype, n) in &insight.rejected {
                    f.push(Family::RejectedResponses, &[rtype, zone], *n as f64);
                }
                let compatible = match insight.compatible {
                    Some(true) => "true",
                    Some(false) => "false",
                    None => "unknown",
                };
                f.push(
                    Family::ZoneInfo,
                    &[compatible, insight.version.as_deref().unwrap_or("unknown"), zone],
                    1.0,
                );
            }
        }
        f.into_nonempty()
    }
}
