//! The KDS stall check: the global changed, and the probe's live stream has not delivered
//! that change within the threshold. Kuma shows such a zone "Online"; this is the signal
//! it lacks.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use kds_probe::{View, view::ViewState};
use kuma_model::{Environment, Fingerprint, ResourceType, resource::wire_name_global_to_zone};
use policy_watcher::{monitor::Monitor, topology::Selection};
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
        let mut expected = Expected::new();
        let selection = {
            let st = self.monitor.lock();
            for (r, fp) in st
                .engine
                .sent_to(&self.probe_zone)
                .filter(|(r, _)| self.types.contains(&r.rtype))
            {
                let key = format!(
                    "{}.{}",
                    wire_name_global_to_zone(r, &self.global_env),
                    r.mesh_or_empty()
                );
                let json = r.rtype.info().spec_encoding == kuma_model::types::SpecEncoding::Json;
                expected.insert((r.rtype, key), json.then_some(fp));
            }
            st.engine.selection().clone()
        };
        // Compared under the view's read lock: cloning every entry costs more than the
        // comparison itself.
        self.view.read(|v| compare(&expected, v, &self.types, &selection))
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

/// What the global should be sending, by (type, delta key): the spec fingerprint for JSON
/// types, `None` for proto types (compared by presence).
type Expected = BTreeMap<(ResourceType, String), Option<Fingerprint>>;

/// The delta keys on which `expected` and what the probe received disagree.
fn compare(expected: &Expected, v: &ViewState, types: &[ResourceType], selection: &Selection) -> Vec<String> {
    let mut out = Vec::new();
    for ((rtype, key), fp) in expected {
        match v.types.get(rtype).and_then(|tv| tv.entries.get(key)) {
            None => out.push(key.clone()),
            Some(entry) if fp.is_some_and(|fp| fp != entry.fingerprint) => out.push(key.clone()),
            Some(_) => {}
        }
    }
    for t in types {
        if let Some(tv) = v.types.get(t) {
            // Meshes out of scope are not in the engine: what the probe gets of them is no
            // sign of a stall.
            let extra = tv.entries.iter().filter(|(k, e)| {
                !expected.contains_key(&(*t, (*k).clone())) && selection.selects_mesh(e.mesh.as_deref())
            });
            out.extend(extra.map(|(k, _)| k.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use kds_probe::{Entry, view::TypeView};
    use kuma_model::fingerprint;
    use serde_json::json;

    use super::*;

    fn entry(mesh: &str, spec: &serde_json::Value) -> Entry {
        Entry {
            mesh: Some(mesh.into()),
            name: "cb".into(),
            labels: BTreeMap::new(),
            version: "1".into(),
            fingerprint: fingerprint(spec),
            first_seen: Timestamp::UNIX_EPOCH,
            last_changed: Timestamp::UNIX_EPOCH,
            spec: None,
            decode_error: None,
        }
    }

    fn view(entries: &[(&str, Entry)]) -> (ViewState, ResourceType) {
        let t = ResourceType::from_name("MeshCircuitBreaker").unwrap();
        let mut tv = TypeView::default();
        tv.entries
            .extend(entries.iter().map(|(k, e)| ((*k).to_owned(), e.clone())));
        let mut v = ViewState::default();
        v.types.insert(t, tv);
        (v, t)
    }

    #[test]
    fn agreement_missing_drift_and_extras() {
        let spec = json!({"a": 1});
        let (v, t) = view(&[
            ("cb.default", entry("default", &spec)),
            ("gone.default", entry("default", &spec)),
        ]);
        let all = Selection::new([t], None);
        let mut expected = Expected::new();
        expected.insert((t, "cb.default".into()), Some(fingerprint(&spec)));
        expected.insert((t, "new.default".into()), Some(fingerprint(&spec)));
        let mut diff = compare(&expected, &v, &[t], &all);
        diff.sort();
        assert_eq!(diff, ["gone.default", "new.default"]);

        expected.insert((t, "cb.default".into()), Some(fingerprint(&json!({"a": 2}))));
        assert!(compare(&expected, &v, &[t], &all).contains(&"cb.default".to_owned()));
        // Proto types are compared by presence only.
        expected.insert((t, "cb.default".into()), None);
        assert!(!compare(&expected, &v, &[t], &all).contains(&"cb.default".to_owned()));
    }

    #[test]
    fn meshes_out_of_scope_are_no_sign_of_a_stall() {
        let spec = json!({});
        let (v, t) = view(&[("cb.other", entry("other", &spec))]);
        let expected = Expected::new();
        let scoped = Selection::new([t], Some(vec!["default".into()]));
        assert!(compare(&expected, &v, &[t], &scoped).is_empty());
        let all = Selection::new([t], None);
        assert_eq!(compare(&expected, &v, &[t], &all), ["cb.other"]);
    }

    #[test]
    fn same_key_in_two_types_is_compared_per_type() {
        let spec = json!({});
        let (mut v, t) = view(&[("x.default", entry("default", &spec))]);
        let other = ResourceType::from_name("MeshTimeout").unwrap();
        v.types.insert(other, TypeView::default());
        let mut expected = Expected::new();
        expected.insert((other, "x.default".into()), Some(fingerprint(&spec)));
        let all = Selection::new([t, other], None);
        let mut diff = compare(&expected, &v, &[t, other], &all);
        diff.sort();
        assert_eq!(
            diff,
            ["x.default", "x.default"],
            "missing in one type, extra in the other"
        );
    }
}
