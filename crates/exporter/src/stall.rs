//! The KDS stall check: the global changed, and the probe's live stream has not delivered
//! that change within the threshold. Kuma shows such a zone "Online"; this is the signal
//! it lacks.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use kds_probe::View;
use kuma_model::{Environment, ResourceType, fingerprint, resource::wire_name_global_to_zone};
use policy_watcher::{monitor::Monitor, sync_rules::global_sends};
use prometheus::{IntGauge, Registry};
use tokio::time::Instant;

/// Compares what the global holds with what the probe received, every `tick`.
pub struct StallCheck {
    monitor: Arc<Monitor>,
    view: View,
    probe_zone: String,
    types: Vec<ResourceType>,
    global_env: Environment,
    threshold: Duration,
    /// Since when the two have disagreed; `None` while they agree.
    behind_since: Option<Instant>,
    /// The (monitor, view) versions the last comparison saw, and its answer: comparing
    /// costs a pass over every global resource, so it only runs when either side moved.
    last: Option<((u64, u64), bool)>,
    monitor_version: tokio::sync::watch::Receiver<u64>,
    view_version: tokio::sync::watch::Receiver<u64>,
    stalled: IntGauge,
}

impl StallCheck {
    /// Registers `kuma_sync_kds_stalled` and compares what `monitor` holds of the global
    /// with what the probe configured by `probe` receives in `view`.
    pub fn register(
        registry: &Registry,
        monitor: Arc<Monitor>,
        view: View,
        probe: &kds_probe::ProbeConfig,
        global_env: Environment,
        threshold: Duration,
    ) -> prometheus::Result<Self> {
        let stalled = IntGauge::new(
            "kuma_sync_kds_stalled",
            "1 when the global changed and the KDS probe's connected stream has not delivered the change within the stall threshold.",
        )?;
        registry.register(Box::new(stalled.clone()))?;
        let (monitor_version, view_version) = (monitor.subscribe(), view.watch_version());
        Ok(Self {
            monitor,
            view,
            probe_zone: probe.zone_name.clone(),
            types: probe.types.clone(),
            global_env,
            threshold,
            behind_since: None,
            last: None,
            monitor_version,
            view_version,
            stalled,
        })
    }

    /// One comparison; returns whether the stream counts as stalled now.
    pub fn check(&mut self, now: Instant) -> bool {
        let versions = (
            *self.monitor_version.borrow_and_update(),
            *self.view_version.borrow_and_update(),
        );
        let behind = match self.last {
            Some((seen, behind)) if seen == versions => behind,
            _ => {
                let connected = self.view.read(|s| s.connected);
                let behind = connected && self.view.all_synced() && !self.differences().is_empty();
                self.last = Some((versions, behind));
                behind
            }
        };
        self.behind_since = if behind {
            Some(self.behind_since.unwrap_or(now))
        } else {
            None
        };
        let stalled = self
            .behind_since
            .is_some_and(|since| now.duration_since(since) >= self.threshold);
        self.stalled.set(i64::from(stalled));
        stalled
    }

    /// Delta keys whose version on the global differs from the probe's (or that only one
    /// side has). Proto-encoded types are compared by presence only: the probe fingerprints
    /// their raw bytes.
    pub fn differences(&self) -> Vec<String> {
        let mut expected: BTreeMap<String, Option<kuma_model::Fingerprint>> = BTreeMap::new();
        {
            let st = self.monitor.lock();
            let zones = st.engine.known_zones();
            for r in st.global.values().filter(|r| self.types.contains(&r.rtype)) {
                if global_sends(r, &self.probe_zone, zones).is_err() {
                    continue;
                }
                let key = format!(
                    "{}.{}",
                    wire_name_global_to_zone(r, &self.global_env),
                    r.mesh_or_empty()
                );
                let json = r.rtype.info().spec_encoding == kuma_model::types::SpecEncoding::Json;
                expected.insert(key, json.then(|| fingerprint(&r.spec)));
            }
        }
        // Compared under the view's read lock: cloning every entry costs more than the
        // comparison itself.
        self.view.read(|v| {
            let mut out = Vec::new();
            let received = |key: &str| self.types.iter().find_map(|t| v.types.get(t)?.entries.get(key));
            for (key, fp) in &expected {
                match received(key) {
                    None => out.push(key.clone()),
                    Some(entry) if fp.is_some_and(|fp| fp != entry.fingerprint) => out.push(key.clone()),
                    Some(_) => {}
                }
            }
            for t in &self.types {
                if let Some(tv) = v.types.get(t) {
                    out.extend(tv.entries.keys().filter(|k| !expected.contains_key(*k)).cloned());
                }
            }
            out
        })
    }

    /// Checks every second until shutdown.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => {}
            }
            if self.check(Instant::now()) {
                tracing::warn!(
                    differences = self.differences().len(),
                    "KDS stream stalled: the global changed and the probe did not receive it"
                );
            }
        }
    }
}
