//! A simulated zone control plane: its own store ([`ZoneStore`]), a KDS client that keeps
//! it in sync with the global over real gRPC (both directions, kuma-semantics 3), and fault
//! knobs ([`ZoneFaults`]) for the ways real zones break.
//!
//! The client is the simulator's own, not the probe's: a zone must NACK, withhold ACKs,
//! stall, apply full states into a store with Kuma's ownership rules and serve
//! `ZoneToGlobalSync`, none of which a probe may ever do. What both share is the wire,
//! from kds-wire: the channel and its TLS verifier ([`kds_wire::Connector`]), the node,
//! subscriptions, ACKs and NACKs ([`kds_wire::request`]) and the `KumaResource`
//! envelope; the delta key is kuma-model's.
//!
//! # Layout
//! - [`store`]: [`ZoneStore`] and the application of global-to-zone responses.
//! - [`faults`]: [`ZoneFaults`], the per-zone fault state.
//! - `client`: the session loop, `GlobalToZoneSync` and HealthCheck.
//! - [`upstream`]: the zone's side of `ZoneToGlobalSync` and Kuma's zone mappers.
//! - [`seed`]: [`GlobalCopies`], a zone that starts holding the copies KDS would have
//!   left it (the scenario's `startSynced`).

mod client;
pub mod faults;
pub mod seed;
pub mod store;
pub mod upstream;

use std::{sync::Arc, time::Duration};

use kds_wire::{KdsAddress, TlsSettings};
use kuma_model::{CpRole, Environment, KumaLine, Resource, ResourceKey, ResourceType, labels};
use serde::Serialize;
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use faults::{ZoneFaultState, ZoneFaults};
pub use seed::GlobalCopies;
pub use store::ZoneStore;

/// How a zone connects.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    /// The zone name: `client-id`, `node.id` and the `kuma.io/zone` label.
    pub name: String,
    pub environment: Environment,
    /// `grpcs://host:port` or `grpc://host:port`. TLS is not verified, as with
    /// `KUMA_MULTIZONE_ZONE_KDS_TLS_SKIP_VERIFY=true` in Kuma's own quickstart.
    pub global_url: String,
    pub health_check_interval: Duration,
    /// Pause before connecting again after a failed session.
    pub reconnect_delay: Duration,
    pub connect_timeout: Duration,
}

impl ZoneConfig {
    pub fn new(name: &str, environment: Environment, global_url: &str) -> Self {
        Self {
            name: name.to_owned(),
            environment,
            global_url: global_url.to_owned(),
            health_check_interval: Duration::from_secs(1),
            reconnect_delay: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// What the zone's link to the global is doing, for tests and the admin endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinkStatus {
    /// The `GlobalToZoneSync` stream is open.
    pub connected: bool,
    /// Sessions opened since start.
    pub sessions: u64,
    pub last_error: Option<String>,
    /// Result of the last HealthCheck.
    pub health_check_up: Option<bool>,
    pub health_checks_ok: u64,
    /// Global-to-zone responses applied, ACKed and NACKed.
    pub responses_applied: u64,
    pub acks_sent: u64,
    pub nacks_sent: u64,
    /// Zone-to-global responses sent, and NACKs the global answered with.
    pub upstream_responses_sent: u64,
    pub upstream_nacks_received: u64,
    /// On the current streams: types subscribed to, types whose full state was applied,
    /// and types whose full state was sent to the global.
    pub types_subscribed: usize,
    pub types_synced: usize,
    pub upstream_types_answered: usize,
}

impl LinkStatus {
    /// Both streams are open and every type went through its first full state.
    pub fn is_synced(&self) -> bool {
        let zone_types = ResourceType::all()
            .filter(|t| t.info().flows_zone_to_global())
            .count();
        self.connected
            && self.types_subscribed > 0
            && self.types_synced == self.types_subscribed
            && self.upstream_types_answered == zone_types
    }
}

/// Why a zone could not start or why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The global address is not `grpc[s]://host:port`.
    #[error("invalid global address for zone")]
    Address(#[source] kds_wire::AddressError),
    /// The zone name cannot travel as gRPC metadata.
    #[error("zone name {0:?} is not valid gRPC metadata")]
    InvalidName(String),
    /// The TLS client configuration could not be built.
    #[error("failed to configure TLS towards the global")]
    Tls(#[source] kds_wire::Error),
    /// Connecting to the global failed.
    #[error("failed to connect to the global")]
    Connect(#[source] kds_wire::Error),
    /// A stream ended with a gRPC status.
    #[error("{0} failed: {1}")]
    Stream(&'static str, tonic::Status),
    /// The global closed a stream.
    #[error("{0} closed by the global")]
    StreamClosed(&'static str),
    /// A stall fault was lifted; the dead stream is replaced.
    #[error("the stream stalled (fault) and is replaced")]
    Stalled,
    /// A fault or a test asked for a new connection.
    #[error("reconnect requested")]
    ReconnectRequested,
    /// A response could not be stored ("resource already exists"): the sync restarts.
    #[error("GlobalToZoneSync failed: {0}")]
    Store(String),
}

impl Error {
    /// Setup errors are not retried; every session error is.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Error::Address(_) | Error::InvalidName(_) | Error::Tls(_))
    }
}

/// State the client task and the handle share.
pub(crate) struct ZoneShared {
    pub config: ZoneConfig,
    pub store: Arc<ZoneStore>,
    pub faults: Arc<ZoneFaults>,
    pub global_address: KdsAddress,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Updated by the client; read by tests and the admin endpoint.
    pub status: watch::Sender<LinkStatus>,
}

/// A running zone control plane. Dropping it stops the client.
pub struct ZoneControlPlane {
    shared: Arc<ZoneShared>,
    /// Cancelled to stop the client task.
    stop: CancellationToken,
    /// Taken by the first shutdown.
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl ZoneControlPlane {
    /// Starts the zone's KDS client on `store` (which may already hold the zone's own
    /// resources); it connects in the background and keeps reconnecting.
    pub fn start(config: ZoneConfig, store: Arc<ZoneStore>) -> Result<Self, Error> {
        let global_address = KdsAddress::parse(&config.global_url).map_err(Error::Address)?;
        if http::HeaderValue::from_str(&config.name).is_err() {
            return Err(Error::InvalidName(config.name));
        }
        let tls = match global_address.tls {
            true => Some(kds_wire::tls::client_config(&TlsSettings::default()).map_err(Error::Tls)?),
            false => None,
        };
        let shared = Arc::new(ZoneShared {
            config,
            store,
            faults: Arc::new(ZoneFaults::new()),
            global_address,
            tls,
            status: watch::Sender::new(LinkStatus::default()),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(client::run(shared.clone(), stop.clone()));
        Ok(Self {
            shared,
            stop,
            task: std::sync::Mutex::new(Some(task)),
        })
    }

    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    pub fn store(&self) -> &Arc<ZoneStore> {
        &self.shared.store
    }

    pub fn faults(&self) -> &Arc<ZoneFaults> {
        &self.shared.faults
    }

    pub fn status(&self) -> LinkStatus {
        self.shared.status.borrow().clone()
    }

    pub fn watch_status(&self) -> watch::Receiver<LinkStatus> {
        self.shared.status.subscribe()
    }

    /// Deletes the zone's copy of a synced resource behind the global's back; it comes
    /// back only with a full resync (a reconnect). Returns whether it existed.
    pub fn drop_copy(&self, key: &ResourceKey) -> bool {
        let dropped = self.shared.store.delete(key).is_some();
        if dropped {
            self.shared
                .faults
                .note_local_change(format!("dropped {} {}", key.rtype, key.name));
        }
        dropped
    }

    /// Replaces the spec of the zone's copy locally. Returns whether it existed.
    pub fn edit_copy(&self, key: &ResourceKey, spec: serde_json::Value) -> bool {
        let Some(mut r) = self.shared.store.get(key) else {
            return false;
        };
        r.spec = spec;
        self.shared.store.upsert(r);
        self.shared
            .faults
            .note_local_change(format!("edited {} {}", key.rtype, key.name));
        true
    }

    /// Makes the zone's copy its own resource under the same name (`kuma.io/origin: zone`
    /// and the zone's label), as Kuma 3's REST API lets a user do and as a Kubernetes
    /// zone's admission webhook does on a re-apply (kumahq/kuma #18208). KDS never
    /// overwrites it: the next response of its type fails and the zone's sync restarts
    /// until it is deleted. Returns whether the copy existed.
    pub fn take_over_copy(&self, key: &ResourceKey) -> bool {
        let Some(mut r) = self.shared.store.get(key) else {
            return false;
        };
        r.labels
            .insert(labels::ORIGIN.to_owned(), labels::ORIGIN_ZONE.to_owned());
        r.labels
            .insert(labels::ZONE.to_owned(), self.shared.config.name.clone());
        self.shared.store.upsert(r);
        self.shared
            .faults
            .note_local_change(format!("took over {} {}", key.rtype, key.name));
        true
    }

    /// Makes `rtype` vanish from the zone's store for `duration`, then return. Readers
    /// (and the zone-to-global stream) see every resource of the kind deleted meanwhile.
    pub fn flap(&self, rtype: ResourceType, duration: Duration) {
        let shared = self.shared.clone();
        shared.store.set_hidden(rtype, true);
        shared.faults.set_flapping(rtype, true);
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            shared.store.set_hidden(rtype, false);
            shared.faults.set_flapping(rtype, false);
        });
    }

    /// Disconnects and stays offline for `duration` (zero: reconnect at once).
    pub fn disconnect_for(&self, duration: Duration) {
        if duration.is_zero() {
            self.shared.faults.reconnect();
            return;
        }
        self.shared.faults.disconnect();
        let faults = self.shared.faults.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            faults.set_offline(false);
        });
    }

    /// Stops the client and waits for it; later calls return at once.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for ZoneControlPlane {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for ZoneControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneControlPlane")
            .field("name", &self.shared.config.name)
            .finish_non_exhaustive()
    }
}

/// A resource created on the zone, as Kuma's label computation stores it
/// (`pkg/core/resources/labels/compute.go`, kuma-semantics 6.3): origin, zone and env labels
/// for types zones provide; on Kubernetes the core name `<name>.<namespace>`, the
/// namespace and display-name labels, and the policy role.
///
/// Kuma 3 labels as [`crate::kuma_3`] says: the display name and the zone's origin are
/// always set.
pub fn created_on_zone(mut r: Resource, zone: &str, env: &Environment, line: KumaLine) -> Resource {
    if line == KumaLine::V3 {
        let plain = match env {
            Environment::Universal => r.name.clone(),
            Environment::Kubernetes { .. } => r
                .name
                .split_once('.')
                .map_or(r.name.as_str(), |(n, _)| n)
                .to_owned(),
        };
        let mesh = r.mesh.clone();
        let role = CpRole::Zone(zone.to_owned());
        crate::kuma_3::compute_labels(&mut r.labels, r.rtype, mesh.as_deref(), &plain, &role, env);
    }
    let info = r.rtype.info();
    if let Some(mesh) = r.mesh.clone() {
        r.labels.entry(labels::MESH.to_owned()).or_insert(mesh);
    }
    if info.kds_flags & kuma_model::types::flags::PROVIDED_BY_ZONE != 0 {
        r.labels
            .entry(labels::ORIGIN.to_owned())
            .or_insert_with(|| labels::ORIGIN_ZONE.to_owned());
        if r.label(labels::ORIGIN) != Some(labels::ORIGIN_GLOBAL) {
            r.labels
                .entry(labels::ZONE.to_owned())
                .or_insert_with(|| zone.to_owned());
            r.labels
                .entry(labels::ENV.to_owned())
                .or_insert_with(|| env.to_string());
        }
    }
    let Environment::Kubernetes { system_namespace } = env else {
        return r;
    };
    if !info.k8s_namespaced() {
        return r;
    }
    let (name, namespace) = match (r.name.rsplit_once('.'), r.namespace()) {
        (_, Some(ns)) => {
            let suffix = format!(".{ns}");
            let plain = r.name.strip_suffix(&suffix).unwrap_or(&r.name).to_owned();
            (plain, ns.to_owned())
        }
        (Some((n, ns)), None) => (n.to_owned(), ns.to_owned()),
        (None, None) => (r.name.clone(), system_namespace.clone()),
    };
    r.name = format!("{name}.{namespace}");
    r.labels
        .entry(labels::NAMESPACE.to_owned())
        .or_insert_with(|| namespace.clone());
    r.labels.entry(labels::DISPLAY_NAME.to_owned()).or_insert(name);
    if info.is_targetref_policy() && r.label(labels::POLICY_ROLE).is_none() {
        let role = policy_role(&r, &namespace, system_namespace);
        r.labels.insert(labels::POLICY_ROLE.to_owned(), role.to_owned());
    }
    r
}

/// `ComputePolicyRole`, simplified: `system` in the system namespace, `producer` when every
/// `to` item targets a MeshService or MeshHTTPRoute of the policy's own namespace,
/// `workload-owner` with `from` or `rules`, else `consumer`.
fn policy_role(r: &Resource, namespace: &str, system_namespace: &str) -> &'static str {
    if namespace == system_namespace {
        return "system";
    }
    let non_empty = |key: &str| {
        r.spec
            .get(key)
            .and_then(serde_json::Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    if non_empty("from") || non_empty("rules") {
        return "workload-owner";
    }
    let to = r.spec.get("to").and_then(serde_json::Value::as_array);
    let producer = to.is_some_and(|items| {
        !items.is_empty()
            && items.iter().all(|item| {
                let target = item.get("targetRef");
                let kind = target.and_then(|t| t.get("kind")).and_then(|k| k.as_str());
                let ns = target
                    .and_then(|t| t.get("namespace"))
                    .and_then(|n| n.as_str())
                    .unwrap_or(namespace);
                matches!(kind, Some("MeshService" | "MeshHTTPRoute")) && ns == namespace
            })
    });
    if producer { "producer" } else { "consumer" }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kubernetes_zone_policies_are_named_and_labelled_like_kuma() {
        let r = Resource::new(
            ResourceType::from_name("MeshCircuitBreaker").expect("known"),
            Some("default"),
            "redis-cb",
            json!({"to": [{"targetRef": {"kind": "MeshService", "name": "redis"}, "default": {}}]}),
        )
        .with_label(labels::NAMESPACE, "kuma-demo");
        let r = created_on_zone(r, "zone-2", &Environment::kubernetes(), KumaLine::V2);
        assert_eq!(r.name, "redis-cb.kuma-demo");
        assert_eq!(r.label(labels::POLICY_ROLE), Some("producer"));
        assert_eq!(r.label(labels::ORIGIN), Some("zone"));
        assert_eq!(r.label(labels::ZONE), Some("zone-2"));
        assert_eq!(r.label(labels::ENV), Some("kubernetes"));
        assert_eq!(r.label(labels::DISPLAY_NAME), Some("redis-cb"));
        let system = created_on_zone(
            Resource::new(r.rtype, Some("default"), "x", json!({})),
            "zone-2",
            &Environment::kubernetes(),
            KumaLine::V2,
        );
        assert_eq!(system.name, "x.kuma-system");
        assert_eq!(system.label(labels::POLICY_ROLE), Some("system"));
    }
}
