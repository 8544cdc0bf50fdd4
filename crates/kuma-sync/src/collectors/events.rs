//! Metrics recorded as events happen: propagation latencies and flaps.

use kuma_model::ResourceType;
use policy_watcher::monitor::{Propagation, Recorder};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

/// Buckets from 10 ms (a local KDS round trip) to 5 min (past Kuma's own staleness
/// timeouts): a latency beyond them is an incident, not a measurement.
pub const PROPAGATION_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Clone)]
pub struct EventMetrics {
    propagation: HistogramVec,
    flaps: IntCounterVec,
}

impl EventMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let propagation = HistogramVec::new(
            HistogramOpts::new(
                "kuma_sync_propagation_seconds",
                "Time from a change of a resource on its control plane of origin to its copy being in sync.",
            )
            .buckets(PROPAGATION_BUCKETS.to_vec()),
            &["zone", "type"],
        )?;
        let flaps = IntCounterVec::new(
            Opts::new(
                "kuma_sync_flaps_total",
                "Copies that vanished from a control plane and came back within the flap window.",
            ),
            &["zone", "type"],
        )?;
        let build = IntGauge::with_opts(
            Opts::new(
                "kuma_sync_build_info",
                "Always 1; the version label says which kuma-sync is running.",
            )
            .const_label("version", env!("CARGO_PKG_VERSION")),
        )?;
        build.set(1);
        registry.register(Box::new(propagation.clone()))?;
        registry.register(Box::new(flaps.clone()))?;
        registry.register(Box::new(build))?;
        Ok(Self { propagation, flaps })
    }
}

impl Recorder for EventMetrics {
    fn propagation(&self, p: &Propagation) {
        self.propagation
            .with_label_values(&[p.zone.as_str(), p.rtype.name()])
            .observe(p.seconds);
    }

    fn flap(&self, zone: &str, rtype: ResourceType) {
        self.flaps.with_label_values(&[zone, rtype.name()]).inc();
    }
}
