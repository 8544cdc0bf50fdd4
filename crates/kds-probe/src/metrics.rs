//! The probe's Prometheus metrics, registered into the caller's registry.

use kuma_model::ResourceType;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::error::Error;

/// Handles on every metric; cheap to clone (prometheus metrics are reference-counted).
#[derive(Clone)]
pub struct Metrics {
    pub connected: IntGauge,
    pub stream_starts: IntCounter,
    pub responses: IntCounterVec,
    pub response_bytes: IntCounterVec,
    pub resources: IntGaugeVec,
    pub last_response_timestamp: prometheus::GaugeVec,
    pub errors: IntCounterVec,
    pub health_check_up: IntGauge,
    pub undecodable: IntCounterVec,
}

impl Metrics {
    /// Creates and registers the metrics, with every configured type and every error
    /// class present at zero so dashboards see them before the first event.
    pub fn register(registry: &Registry, types: &[ResourceType]) -> prometheus::Result<Self> {
        let m = Self {
            connected: IntGauge::new(
                "kuma_sync_kds_connected",
                "Whether the probe's GlobalToZoneSync stream to the global is open (1) or not (0).",
            )?,
            stream_starts: IntCounter::new(
                "kuma_sync_kds_stream_starts_total",
                "Number of GlobalToZoneSync streams the probe has opened.",
            )?,
            responses: IntCounterVec::new(
                Opts::new(
                    "kuma_sync_kds_responses_total",
                    "Number of KDS responses received, per resource type.",
                ),
                &["type"],
            )?,
            response_bytes: IntCounterVec::new(
                Opts::new(
                    "kuma_sync_kds_response_bytes_total",
                    "Encoded size of the KDS responses received, in bytes, per resource type.",
                ),
                &["type"],
            )?,
            resources: IntGaugeVec::new(
                Opts::new(
                    "kuma_sync_kds_resources",
                    "Number of resources the global currently sends a zone, per resource type.",
                ),
                &["type"],
            )?,
            last_response_timestamp: prometheus::GaugeVec::new(
                Opts::new(
                    "kuma_sync_kds_last_response_timestamp_seconds",
                    "Unix time of the last KDS response received, per resource type.",
                ),
                &["type"],
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "kuma_sync_kds_errors_total",
                    "Number of errors that ended or prevented a KDS stream, per class.",
                ),
                &["class"],
            )?,
            health_check_up: IntGauge::new(
                "kuma_sync_kds_health_check_up",
                "Whether the last HealthCheck call to the global succeeded (1) or not (0).",
            )?,
            undecodable: IntCounterVec::new(
                Opts::new(
                    "kuma_sync_kds_undecodable_resources_total",
                    "Number of resources received that the probe could not decode (still acknowledged), per resource type.",
                ),
                &["type"],
            )?,
        };
        registry.register(Box::new(m.connected.clone()))?;
        registry.register(Box::new(m.stream_starts.clone()))?;
        registry.register(Box::new(m.responses.clone()))?;
        registry.register(Box::new(m.response_bytes.clone()))?;
        registry.register(Box::new(m.resources.clone()))?;
        registry.register(Box::new(m.last_response_timestamp.clone()))?;
        registry.register(Box::new(m.errors.clone()))?;
        registry.register(Box::new(m.health_check_up.clone()))?;
        registry.register(Box::new(m.undecodable.clone()))?;
        for t in types {
            let l = [t.name()];
            m.responses.with_label_values(&l);
            m.response_bytes.with_label_values(&l);
            m.resources.with_label_values(&l);
            m.undecodable.with_label_values(&l);
        }
        for class in Error::METRIC_LABELS {
            m.errors.with_label_values(&[class]);
        }
        Ok(m)
    }

    pub(crate) fn record_error(&self, e: &Error) {
        self.errors.with_label_values(&[e.metric_label()]).inc();
    }

    pub(crate) fn record_response(
        &self,
        rtype: ResourceType,
        bytes: usize,
        resources: usize,
        undecodable: usize,
    ) {
        let l = [rtype.name()];
        self.responses.with_label_values(&l).inc();
        self.response_bytes.with_label_values(&l).inc_by(bytes as u64);
        self.resources.with_label_values(&l).set(resources as i64);
        self.undecodable.with_label_values(&l).inc_by(undecodable as u64);
        let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        self.last_response_timestamp.with_label_values(&l).set(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_register_with_help_sentences_and_zeroed_labels() {
        let registry = Registry::new();
        let mtp = ResourceType::from_name("MeshTrafficPermission").unwrap();
        let m = Metrics::register(&registry, &[mtp]).unwrap();
        m.record_response(mtp, 100, 3, 1);
        let families = registry.gather();
        let names: Vec<_> = families.iter().map(|f| f.name().to_owned()).collect();
        for expected in [
            "kuma_sync_kds_connected",
            "kuma_sync_kds_stream_starts_total",
            "kuma_sync_kds_responses_total",
            "kuma_sync_kds_response_bytes_total",
            "kuma_sync_kds_resources",
            "kuma_sync_kds_last_response_timestamp_seconds",
            "kuma_sync_kds_errors_total",
            "kuma_sync_kds_health_check_up",
            "kuma_sync_kds_undecodable_resources_total",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing from {names:?}"
            );
        }
        for f in &families {
            assert!(f.help().ends_with('.'), "{} help is not a sentence", f.name());
        }
        let errors = families
            .iter()
            .find(|f| f.name() == "kuma_sync_kds_errors_total")
            .unwrap();
        assert_eq!(errors.get_metric().len(), Error::METRIC_LABELS.len());
        assert_eq!(m.resources.with_label_values(&["MeshTrafficPermission"]).get(), 3);
        // A second probe in the same registry is a clear error, not a panic.
        assert!(Metrics::register(&registry, &[mtp]).is_err());
    }
}
