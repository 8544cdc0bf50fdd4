//! Convergence and source state, built from the monitor at every scrape.

use std::sync::Arc;

use jiff::Timestamp;
use kuma_model::CpRole;
use policy_watcher::{State, ZoneState, monitor::Monitor};
use prometheus::{
    GaugeVec, IntCounterVec, Opts,
    core::{Collector, Desc},
    proto::MetricFamily,
};

/// Reads the monitor under its lock once per scrape.
pub struct PolicyCollector {
    monitor: Arc<Monitor>,
    /// The KDS probe's own zone: the global lists it like any zone, but it is ours, and it
    /// goes offline whenever kuma-sync restarts. Left out of zone metrics.
    probe_zone: Option<String>,
    descs: Vec<Desc>,
}

/// Fresh, unregistered metric vectors: filled at scrape time, then dropped, so nothing
/// stale survives a zone's removal.
struct Families {
    up: GaugeVec,
    last_sync: GaugeVec,
    errors: IntCounterVec,
    resources: GaugeVec,
    converged: GaugeVec,
    zone_state: GaugeVec,
    unmonitored: GaugeVec,
    out_of_sync: GaugeVec,
    online: GaugeVec,
    last_ack_age: GaugeVec,
    rejected: GaugeVec,
    info: GaugeVec,
}

impl Families {
    fn new() -> Self {
        let g = |name: &str, help: &str, labels: &[&str]| {
            GaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        Self {
            up: g(
                "kuma_sync_up",
                "Whether the last read of the control plane succeeded (1) or not (0).",
                &["cp"],
            ),
            last_sync: g(
                "kuma_sync_source_last_sync_timestamp_seconds",
                "Unix time of the last successful read of the control plane.",
                &["cp"],
            ),
            errors: IntCounterVec::new(
                Opts::new(
                    "kuma_sync_source_errors_total",
                    "Failed reads of the control plane, by class of error.",
                ),
                &["cp", "class"],
            )
            .expect("valid metric"),
            resources: g(
                "kuma_sync_resources",
                "Copies of resources per zone, type and state (both directions of sync).",
                &["zone", "type", "state"],
            ),
            converged: g(
                "kuma_sync_zone_converged",
                "Whether every copy of the zone is in sync (1) or not (0).",
                &["zone"],
            ),
            zone_state: g(
                "kuma_sync_zone_state",
                "The zone's verdict: 1 for the current state among converged, diverged and unknown.",
                &["zone", "state"],
            ),
            unmonitored: g(
                "kuma_sync_zone_unmonitored",
                "Zones the global control plane knows that kuma-sync is not configured to read.",
                &["zone"],
            ),
            out_of_sync: g(
                "kuma_sync_out_of_sync_seconds",
                "Age of the zone's oldest open discrepancy; 0 when none is open.",
                &["zone"],
            ),
            online: g(
                "kuma_sync_zone_online",
                "Whether the global sees the zone online (ZoneInsight).",
                &["zone"],
            ),
            last_ack_age: g(
                "kuma_sync_zone_last_ack_age_seconds",
                "Seconds since the zone last confirmed or rejected an update (ZoneInsight lastUpdateTime).",
                &["zone"],
            ),
            rejected: g(
                "kuma_sync_zone_rejected_responses",
                "Responses the zone rejected (NACKed) on its current subscription, by type (ZoneInsight).",
                &["zone", "type"],
            ),
            info: g(
                "kuma_sync_zone_info",
                "Always 1; labels give the zone control plane's version and whether the global finds it compatible.",
                &["zone", "version", "compatible"],
            ),
        }
    }

    fn collectors(&self) -> [&dyn Collector; 12] {
        [
            &self.up,
            &self.last_sync,
            &self.errors,
            &self.resources,
            &self.converged,
            &self.zone_state,
            &self.unmonitored,
            &self.out_of_sync,
            &self.online,
            &self.last_ack_age,
            &self.rejected,
            &self.info,
        ]
    }
}

impl PolicyCollector {
    pub fn new(monitor: Arc<Monitor>, probe_zone: Option<String>) -> Self {
        let descs = Families::new()
            .collectors()
            .iter()
            .flat_map(|c| c.desc().into_iter().cloned())
            .collect();
        Self {
            monitor,
            probe_zone,
            descs,
        }
    }
}

impl Collector for PolicyCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let f = Families::new();
        let now = Timestamp::now();
        {
            let st = self.monitor.lock();
            for (cp, s) in &st.sources {
                let cp = cp_label(cp);
                f.up.with_label_values(&[&cp]).set(if s.up { 1.0 } else { 0.0 });
                if let Some(t) = s.last_success {
                    f.last_sync
                        .with_label_values(&[&cp])
                        .set(t.as_millisecond() as f64 / 1000.0);
                }
                for (class, n) in &s.errors {
                    f.errors.with_label_values(&[cp.as_str(), class]).inc_by(*n);
                }
            }
            let zones: Vec<String> = st
                .engine
                .topology()
                .zones
                .iter()
                .map(|z| z.name.clone())
                .collect();
            for zone in &zones {
                for t in st.engine.selection().types() {
                    for s in State::ALL {
                        f.resources
                            .with_label_values(&[zone, t.name(), s.as_str()])
                            .set(0.0);
                    }
                }
                let state = st.zone_state(zone);
                f.converged
                    .with_label_values(&[zone])
                    .set(if state == ZoneState::Converged { 1.0 } else { 0.0 });
                for s in ZoneState::ALL {
                    f.zone_state
                        .with_label_values(&[zone, s.as_str()])
                        .set(if s == state { 1.0 } else { 0.0 });
                }
                f.out_of_sync.with_label_values(&[zone]).set(0.0);
            }
            for (zone, rtype, state, n) in st.engine.counts() {
                f.resources
                    .with_label_values(&[zone, rtype.name(), state.as_str()])
                    .set(n as f64);
            }
            for (zone, age) in st.out_of_sync_seconds(now) {
                if zones.contains(&zone) {
                    f.out_of_sync.with_label_values(&[&zone]).set(age);
                }
            }
            let ours = |z: &String| self.probe_zone.as_ref() == Some(z);
            for zone in st
                .engine
                .known_zones()
                .keys()
                .filter(|z| !zones.contains(z) && !ours(z))
            {
                f.unmonitored.with_label_values(&[zone]).set(1.0);
            }
            for (zone, insight) in st.zone_insights.iter().flatten().filter(|(z, _)| !ours(z)) {
                f.online
                    .with_label_values(&[zone])
                    .set(if insight.online { 1.0 } else { 0.0 });
                if let Some(t) = insight.last_update {
                    let age = (now.as_millisecond() - t.as_millisecond()).max(0) as f64 / 1000.0;
                    f.last_ack_age.with_label_values(&[zone]).set(age);
                }
                for (rtype, n) in &insight.rejected {
                    f.rejected.with_label_values(&[zone, rtype]).set(*n as f64);
                }
                let compatible = match insight.compatible {
                    Some(true) => "true",
                    Some(false) => "false",
                    None => "unknown",
                };
                f.info
                    .with_label_values(&[zone, insight.version.as_deref().unwrap_or("unknown"), compatible])
                    .set(1.0);
            }
        }
        f.collectors().iter().flat_map(|c| c.collect()).collect()
    }
}

fn cp_label(cp: &CpRole) -> String {
    cp.to_string()
}
