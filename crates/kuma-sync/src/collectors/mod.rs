//! Prometheus collectors. Convergence state is built from the monitor when it changed (and
//! its aging parts at every scrape), so a zone that leaves the configuration disappears
//! from `/metrics` with it; events (propagations, flaps) are recorded as they happen.
//!
//! - [`policy`]: per-zone and per-source state, read from the monitor.
//! - [`events`]: the histogram and counters the monitor records into.
//! - [`shard`]: `kuma_sync_shard_info`, when sharded.
//! - [`leader`]: whether this replica leads (`kuma_sync_leader`).
//! - [`Exposition`]: the whole `/metrics` body.

pub mod events;
pub mod leader;
pub mod policy;
pub mod shard;

use std::sync::Arc;

use jiff::Timestamp;
use policy_watcher::monitor::Monitor;
use prometheus::{Encoder, Registry, TextEncoder};

use self::policy::{ConvergenceText, PolicyCollector};

/// What the aging families count their ages to (`out_of_sync_seconds`,
/// `zone_last_ack_age_seconds`): [`Timestamp::now`] in the daemon; a fixed time in a test that pins the exposition's
/// bytes, which an age in seconds would otherwise change at every run.
pub type Clock = fn() -> Timestamp;

/// What `/metrics` serves: everything in the registry, then the convergence families as
/// last encoded (see [`ConvergenceText`]). Text format lets families come in any order,
/// each once: the two sets share no name.
pub struct Exposition {
    registry: Registry,
    convergence: ConvergenceText,
    probe_zone: String,
    /// Families only the leader exports (the KDS probe's), and whether it leads.
    leader_only: Option<(Registry, tokio::sync::watch::Receiver<bool>)>,
}

impl Exposition {
    /// Registers the monitor's aging families in `registry`, and keeps the rest apart.
    pub fn new(
        registry: Registry,
        monitor: Arc<Monitor>,
        probe_zone: Option<String>,
    ) -> prometheus::Result<Self> {
        Self::with_clock(registry, monitor, probe_zone, Timestamp::now)
    }

    /// [`Exposition::new`], with ages counted to `clock`'s time instead of the wall clock's.
    pub fn with_clock(
        registry: Registry,
        monitor: Arc<Monitor>,
        probe_zone: Option<String>,
        clock: Clock,
    ) -> prometheus::Result<Self> {
        registry.register(Box::new(PolicyCollector::new(
            monitor.clone(),
            probe_zone.clone(),
            clock,
        )))?;
        Ok(Self {
            registry,
            probe_zone: probe_zone
                .clone()
                .unwrap_or_else(|| kds_probe::config::DEFAULT_ZONE_NAME.to_owned()),
            convergence: ConvergenceText::new(monitor, probe_zone, clock),
            leader_only: None,
        })
    }

    /// Exports `registry`'s families too, while `leading` says this replica leads: a
    /// follower runs no probe, and its idle probe families would read as a disconnected
    /// probe to the alert rules.
    pub fn with_leader_only(
        mut self,
        registry: Registry,
        leading: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        self.leader_only = Some((registry, leading));
        self
    }

    /// The Zone name kuma-sync's KDS probe connects under (the configured one, else the
    /// default, which a `kuma-sync probe` run may have left on the global).
    pub fn probe_zone(&self) -> &str {
        &self.probe_zone
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The body of one scrape.
    pub fn render(&self) -> prometheus::Result<Vec<u8>> {
        let settled = self.convergence.encoded()?;
        let mut buf = Vec::with_capacity(settled.len() + 16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        if let Some((registry, leading)) = &self.leader_only
            && *leading.borrow()
        {
            TextEncoder::new().encode(&registry.gather(), &mut buf)?;
        }
        buf.extend_from_slice(&settled);
        Ok(buf)
    }

    /// The content type of [`Exposition::render`]'s body.
    pub fn format_type(&self) -> &'static str {
        prometheus::TEXT_FORMAT
    }
}

/// Every metric of this binary starts with this.
pub const PREFIX: &str = "kuma_sync";

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use kuma_model::{CpRole, Environment, Resource, ResourceType};
    use policy_watcher::{Engine, Selection, Topology, ZoneSpec, monitor::MonitorConfig};

    use super::*;
    use crate::collectors::events::EventMetrics;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn settled_families_are_encoded_once_per_monitor_change() {
        let registry = Registry::new();
        let events = EventMetrics::register(&registry).unwrap();
        let topology = Topology::new(
            Environment::Universal,
            vec![ZoneSpec::new("zone-1", Environment::Universal)],
        );
        let rtype = ResourceType::from_name("MeshCircuitBreaker").unwrap();
        let engine = Engine::new(topology, Selection::new([rtype], None));
        let monitor = Arc::new(Monitor::new(engine, MonitorConfig::default(), Box::new(events)));
        let exposition = Exposition::new(registry, monitor.clone(), None).unwrap();

        let first = exposition.convergence.encoded().unwrap();
        assert_eq!(
            first.as_ptr(),
            exposition.convergence.encoded().unwrap().as_ptr(),
            "no change, no new encoding"
        );
        let missing = "kuma_sync_resources{state=\"missing\",type=\"MeshCircuitBreaker\",zone=\"zone-1\"}";
        let policy = Resource::new(rtype, Some("default"), "cb", serde_json::json!({}));
        monitor.snapshot(&CpRole::Global, vec![policy], Timestamp::now());
        monitor.snapshot(&CpRole::Zone("zone-1".into()), Vec::new(), Timestamp::now());

        let settled = exposition.convergence.encoded().unwrap();
        assert_ne!(first, settled);
        // A REST poll re-reads what is known: the monitor moves, the state does not.
        let again = Resource::new(rtype, Some("default"), "cb", serde_json::json!({}));
        monitor.snapshot(&CpRole::Global, vec![again], Timestamp::now());
        assert_eq!(
            settled.as_ptr(),
            exposition.convergence.encoded().unwrap().as_ptr(),
            "an unchanged re-read is not encoded again"
        );

        let body = String::from_utf8(exposition.render().unwrap()).unwrap();
        assert_eq!(line(&body, missing), Some(&*format!("{missing} 1")), "{body}");
        // The aging families come from the registry, each family once.
        assert_eq!(
            body.matches("# TYPE kuma_sync_out_of_sync_seconds gauge").count(),
            1
        );
        assert_eq!(body.matches("# TYPE kuma_sync_resources gauge").count(), 1);
        assert!(
            line(&body, "kuma_sync_out_of_sync_seconds{zone=\"zone-1\"}").is_some(),
            "{body}"
        );
    }
}
