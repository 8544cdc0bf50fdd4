//! The canary: an opt-in blackbox check of propagation, and the only write kuma-sync ever
//! makes. A comparison sees a dead KDS stream only once something changes; the canary
//! makes a change every interval and times its arrival in every zone.
//!
//! Every `interval` the leader writes one policy on the global, in `mesh`: a MeshTimeout
//! whose targetRef selects data plane proxies by a label no proxy carries, so it
//! configures nothing, valid on Kuma 2.x (2.9 and later) and 3. Its label
//! `kuma-sync.io/canary-sequence` carries a sequence number: the write's Unix time in
//! milliseconds, so a replica that takes over the leadership goes on from where the last
//! left, with nothing shared. Each zone's source reads the copy as it reads everything
//! else; the monitor notes when a zone first holds a sequence
//! ([`policy_watcher::monitor::CanarySighting`]), which credits that zone with a
//! propagation (`kuma_sync_canary_propagation_seconds`, from the write to the read: a
//! REST zone's figure includes up to one poll interval) and a success
//! (`kuma_sync_canary_last_success_timestamp_seconds`). The engine never compares the
//! canary (`Selection::selects`): its copies are stale by design while a write travels.

use std::{collections::BTreeMap, future::Future, sync::Arc, time::Duration};

use jiff::Timestamp;
use kuma_model::{CpRole, ResourceType, labels};
use policy_watcher::{
    monitor::{CanarySighting, Monitor},
    source::rest::KumaApi,
};
use prometheus::{Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, Opts, Registry};
use serde_json::{Value, json};

/// The policy's name unless configured.
pub const DEFAULT_NAME: &str = "kuma-sync-canary";
/// The label the canary's targetRef selects proxies by; no proxy carries it.
pub const TARGET_LABEL: &str = "kuma-sync.io/canary-target";
/// Histogram buckets of the propagation, 100 ms to 10 min: a REST zone adds up to a poll.
const BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// What to write, where and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryConfig {
    pub mesh: String,
    pub interval: Duration,
    pub rtype: ResourceType,
    pub name: String,
}

/// The types the canary can be: targetRef policies that sync to every zone, with a `to`
/// list, whose spec below Kuma validates (`default_conf`).
pub const TYPES: [&str; 3] = ["MeshTimeout", "MeshCircuitBreaker", "MeshRetry"];

/// A `to[].default` valid for the canary's type; it applies to no proxy anyway.
fn default_conf(rtype: ResourceType) -> Value {
    match rtype.name() {
        "MeshCircuitBreaker" => json!({"connectionLimits": {"maxConnections": 1024}}),
        "MeshRetry" => json!({"http": {"numRetries": 1}}),
        _ => json!({"connectionTimeout": "5s"}),
    }
}

/// The policy at `sequence`, as Kuma's REST API takes it.
pub fn document(cfg: &CanaryConfig, sequence: u64) -> Value {
    json!({
        "type": cfg.rtype.name(),
        "mesh": cfg.mesh,
        "name": cfg.name,
        "labels": {
            labels::CANARY: "true",
            labels::CANARY_SEQUENCE: sequence.to_string(),
        },
        "spec": {
            "targetRef": {"kind": "Dataplane", "labels": {TARGET_LABEL: "none"}},
            "to": [{"targetRef": {"kind": "Mesh"}, "default": default_conf(cfg.rtype)}],
        },
    })
}

/// The canary's metrics; only the leader writes, so they sit in the leader's registry.
pub struct CanaryMetrics {
    propagation: HistogramVec,
    last_success: GaugeVec,
    /// Only where the writes are made (the leader of shard 0): another shard's zeros
    /// would read as a canary never written.
    writes: Option<WriteMetrics>,
}

struct WriteMetrics {
    last_write: Gauge,
    errors: IntCounter,
}

impl CanaryMetrics {
    /// The arrival metrics, and with `writes` those of the writer.
    pub fn register(registry: &Registry, writes: bool) -> prometheus::Result<Self> {
        let propagation = HistogramVec::new(
            HistogramOpts::new(
                "kuma_sync_canary_propagation_seconds",
                "From a canary write on the global to the zone's first read holding it.",
            )
            .buckets(BUCKETS.to_vec()),
            &["zone"],
        )?;
        let last_success = GaugeVec::new(
            Opts::new(
                "kuma_sync_canary_last_success_timestamp_seconds",
                "Unix time a zone was last read holding a new canary write.",
            ),
            &["zone"],
        )?;
        let last_write = Gauge::with_opts(Opts::new(
            "kuma_sync_canary_last_write_timestamp_seconds",
            "Unix time of the last canary write the global accepted.",
        ))?;
        let errors = IntCounter::with_opts(Opts::new(
            "kuma_sync_canary_errors_total",
            "Canary writes the global refused or did not answer.",
        ))?;
        registry.register(Box::new(propagation.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        let writes = if writes {
            registry.register(Box::new(last_write.clone()))?;
            registry.register(Box::new(errors.clone()))?;
            Some(WriteMetrics { last_write, errors })
        } else {
            None
        };
        Ok(Self {
            propagation,
            last_success,
            writes,
        })
    }
}

/// The same policy as a Kubernetes global stores it: a kuma.io object in Kuma's system
/// namespace, the mesh in its `kuma.io/mesh` label.
pub fn kubernetes_object(cfg: &CanaryConfig, namespace: &str, sequence: u64) -> Value {
    let universal = document(cfg, sequence);
    json!({
        "apiVersion": "kuma.io/v1alpha1",
        "kind": cfg.rtype.name(),
        "metadata": {
            "name": cfg.name,
            "namespace": namespace,
            "labels": {
                labels::MESH: cfg.mesh,
                labels::CANARY: "true",
                labels::CANARY_SEQUENCE: sequence.to_string(),
            },
        },
        "spec": universal["spec"],
    })
}

/// Where the canary is written: the global's REST API, or its Kubernetes API.
#[derive(Clone)]
pub enum Target {
    /// Both boxed: either client is hundreds of bytes, and a target is made once.
    Rest(Box<KumaApi>),
    Kubernetes {
        api: Box<kube::Api<kube::api::DynamicObject>>,
        namespace: String,
    },
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Kuma's REST API refused or did not answer.
    #[error(transparent)]
    Rest(#[from] policy_watcher::source::SourceError),
    /// The Kubernetes API refused or did not answer.
    #[error("the Kubernetes API: {0}")]
    Kubernetes(#[from] kube::Error),
    /// The object could not be built (a bug, not the global).
    #[error("the canary object: {0}")]
    Object(#[from] serde_json::Error),
}

impl WriteError {
    /// Every failure but a malformed object may pass by the next interval's write.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, WriteError::Object(_))
    }
}

impl Target {
    /// The global's Kubernetes API, for a kuma.io type, in Kuma's system namespace.
    pub fn kubernetes(client: kube::Client, rtype: ResourceType, namespace: &str) -> Option<Self> {
        let resource = policy_watcher::source::kube::api_resource(rtype)?;
        Some(Target::Kubernetes {
            api: Box::new(kube::Api::namespaced_with(client, namespace, &resource)),
            namespace: namespace.to_owned(),
        })
    }

    async fn write(&self, cfg: &CanaryConfig, sequence: u64) -> Result<(), WriteError> {
        match self {
            Target::Rest(api) => Ok(api
                .put_in_mesh(cfg.rtype, &cfg.mesh, &cfg.name, &document(cfg, sequence))
                .await?),
            Target::Kubernetes { api, namespace } => {
                let mut object: kube::api::DynamicObject =
                    serde_json::from_value(kubernetes_object(cfg, namespace, sequence))?;
                let params = kube::api::PostParams::default();
                match api.get_opt(&cfg.name).await? {
                    // Replaced from the version read: a concurrent writer makes this 409,
                    // and the next interval writes again.
                    Some(current) => {
                        object.metadata.resource_version = current.metadata.resource_version;
                        api.replace(&cfg.name, &params, &object).await?;
                    }
                    None => {
                        api.create(&params, &object).await?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Writes the canary on the global at once and then every interval, until `shutdown`.
pub async fn write(
    target: Target,
    cfg: CanaryConfig,
    metrics: Arc<CanaryMetrics>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        let now = Timestamp::now();
        let sequence = u64::try_from(now.as_millisecond()).unwrap_or_default();
        let written = target.write(&cfg, sequence).await;
        if let Err(error) = &written {
            tracing::warn!(%error, "the global refused the canary write");
        }
        if let Some(w) = &metrics.writes {
            match written {
                Ok(()) => w.last_write.set(now.as_second() as f64),
                Err(_) => w.errors.inc(),
            }
        }
    }
}

/// Which sequence each zone has been credited with, so each arrival counts once.
#[derive(Debug)]
pub struct Arrivals {
    /// Writes older than this (this process's start, in Unix milliseconds) are not
    /// credited: what a zone held before is no evidence of a path working now, and its
    /// propagation would be measured from a write this process never saw.
    from_ms: i64,
    credited: BTreeMap<String, u64>,
}

impl Arrivals {
    pub fn new(from: Timestamp) -> Self {
        Self {
            from_ms: from.as_millisecond(),
            credited: BTreeMap::new(),
        }
    }

    /// Credits every zone of `zones` read holding a newer write than it was credited with.
    pub fn credit(
        &mut self,
        sightings: &BTreeMap<CpRole, CanarySighting>,
        zones: &[String],
        metrics: &CanaryMetrics,
    ) {
        for zone in zones {
            let Some(sighting) = sightings.get(&CpRole::Zone(zone.clone())) else {
                continue;
            };
            if self.credited.get(zone).is_some_and(|c| *c >= sighting.sequence) {
                continue;
            }
            self.credited.insert(zone.clone(), sighting.sequence);
            let written_ms = i64::try_from(sighting.sequence).unwrap_or(i64::MAX);
            if written_ms < self.from_ms {
                continue;
            }
            let took_ms = (sighting.since.as_millisecond() - written_ms).max(0);
            metrics
                .propagation
                .with_label_values(&[zone])
                .observe(took_ms as f64 / 1000.0);
            metrics
                .last_success
                .with_label_values(&[zone])
                .set(sighting.since.as_second() as f64);
        }
    }
}

/// Credits arrivals as the monitor changes, until `shutdown`.
pub async fn watch_arrivals(
    monitor: Arc<Monitor>,
    zones: Vec<String>,
    metrics: Arc<CanaryMetrics>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut changes = monitor.subscribe();
    let mut arrivals = Arrivals::new(Timestamp::now());
    loop {
        let sightings = monitor.lock().canary.clone();
        arrivals.credit(&sightings, &zones, &metrics);
        tokio::select! {
            () = &mut shutdown => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sighting(sequence: u64, since_ms: i64) -> CanarySighting {
        CanarySighting {
            sequence,
            since: Timestamp::from_millisecond(since_ms).unwrap(),
        }
    }

    #[test]
    fn each_arrival_is_credited_once_with_its_propagation() {
        let registry = Registry::new();
        let metrics = CanaryMetrics::register(&registry, false).unwrap();
        let zones = vec!["zone-1".to_owned(), "zone-2".to_owned()];
        let mut arrivals = Arrivals::new(Timestamp::from_millisecond(900_000).unwrap());
        let mut sightings = BTreeMap::new();
        // Written before this process started: no evidence, not credited.
        sightings.insert(CpRole::Zone("zone-2".into()), sighting(800_000, 950_000));
        sightings.insert(CpRole::Zone("zone-1".into()), sighting(1_000_000, 1_000_500));
        arrivals.credit(&sightings, &zones, &metrics);
        arrivals.credit(&sightings, &zones, &metrics);
        let h = metrics.propagation.with_label_values(&["zone-1"]);
        assert_eq!(h.get_sample_count(), 1, "credited once");
        assert!((h.get_sample_sum() - 0.5).abs() < 1e-9);
        assert_eq!(metrics.last_success.with_label_values(&["zone-1"]).get(), 1000.0);
        // zone-2 has never been read holding it: nothing credited.
        assert_eq!(
            metrics
                .propagation
                .with_label_values(&["zone-2"])
                .get_sample_count(),
            0
        );
        // A newer write arrives; an older one (a stale read) is not a new success.
        sightings.insert(CpRole::Zone("zone-1".into()), sighting(1_060_000, 1_061_000));
        arrivals.credit(&sightings, &zones, &metrics);
        sightings.insert(CpRole::Zone("zone-1".into()), sighting(1_000_000, 1_070_000));
        arrivals.credit(&sightings, &zones, &metrics);
        assert_eq!(h.get_sample_count(), 2);
        assert_eq!(metrics.last_success.with_label_values(&["zone-1"]).get(), 1061.0);
    }

    #[test]
    fn the_document_is_the_canary_and_selects_no_proxy() {
        let cfg = CanaryConfig {
            mesh: "default".into(),
            interval: Duration::from_secs(60),
            rtype: ResourceType::from_name("MeshTimeout").unwrap(),
            name: DEFAULT_NAME.into(),
        };
        let doc = document(&cfg, 42);
        assert_eq!(doc["labels"][labels::CANARY_SEQUENCE], "42");
        assert_eq!(doc["spec"]["targetRef"]["kind"], "Dataplane");
        assert_eq!(doc["spec"]["targetRef"]["labels"][TARGET_LABEL], "none");
    }
}
