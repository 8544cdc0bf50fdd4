//! The simulated global's resource store and its zone records.
//!
//! Resources are what a test puts on the global; zone records are what Kuma keeps as the
//! `Zone` and `ZoneInsight` resources (kuma-semantics 5 and 8). They live together because a
//! zone's `enabled` flag changes what the other zones are sent (`GlobalProvidedFilter`).

use std::{
    collections::BTreeMap,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use jiff::Timestamp;
use kuma_model::{Environment, KumaLine, Resource, ResourceKey, ResourceType};
use tokio::sync::watch;

/// Kuma keeps the last 10 subscriptions per zone (`KUMA_METRICS_ZONE_SUBSCRIPTION_LIMIT`).
pub const SUBSCRIPTION_LIMIT: usize = 10;

/// The global's resources, keyed as a control plane stores them, plus its zones.
pub struct GlobalStore {
    /// Universal or Kubernetes: changes the names the global puts on the wire (kuma-semantics 6.1).
    environment: Environment,
    /// The Kuma line simulated: how writes are labelled and what a new mesh gets.
    line: KumaLine,
    state: Mutex<State>,
    /// Bumped on every change that can alter what a zone is sent (resources, zone
    /// `enabled`). Each open stream holds a receiver and recomputes when it moves.
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    resources: BTreeMap<ResourceKey, Resource>,
    zones: BTreeMap<String, ZoneRecord>,
}

/// What the global knows of one zone: Kuma's `Zone` plus the parts of `ZoneInsight` that
/// kuma-sync reads.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneRecord {
    /// `Zone.spec.enabled`; a disabled zone's resources are not sent to other zones.
    pub enabled: bool,
    /// Oldest first; at most [`SUBSCRIPTION_LIMIT`].
    pub subscriptions: Vec<Subscription>,
    /// Set by `HealthCheck` calls carrying this zone's `client-id`.
    pub health_check_time: Option<Timestamp>,
}

impl Default for ZoneRecord {
    fn default() -> Self {
        Self {
            enabled: true,
            subscriptions: Vec::new(),
            health_check_time: None,
        }
    }
}

impl ZoneRecord {
    /// Kuma shows a zone Online while any subscription lacks a disconnect time.
    pub fn is_online(&self) -> bool {
        self.subscriptions.iter().any(|s| s.disconnect_time.is_none())
    }
}

/// One `GlobalToZoneSync` stream, as `ZoneInsight.subscriptions[]` records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    /// The gRPC `version` metadata the client sent, if any.
    pub version: Option<String>,
    /// Whether exactly one `authorization` metadata value was sent.
    pub auth_token_provided: bool,
    pub connect_time: Timestamp,
    pub disconnect_time: Option<Timestamp>,
    /// Per KDS type URL.
    pub stats: BTreeMap<String, TypeStats>,
}

/// `KDSServiceStats`: counts responses, not resources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeStats {
    pub responses_sent: u64,
    pub responses_acknowledged: u64,
    pub responses_rejected: u64,
}

/// What a stream tells the store about its traffic.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StatEvent {
    Sent,
    Acked,
    Nacked,
}

static SUBSCRIPTION_IDS: AtomicU64 = AtomicU64::new(1);

impl GlobalStore {
    pub fn new(environment: Environment) -> Self {
        Self {
            environment,
            line: KumaLine::V2,
            state: Mutex::new(State::default()),
            changes: watch::Sender::new(0),
        }
    }

    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// The same store, simulating Kuma `line`.
    pub fn with_line(mut self, line: KumaLine) -> Self {
        self.line = line;
        self
    }

    pub fn line(&self) -> KumaLine {
        self.line
    }

    /// Creates or replaces the resource under its key; returns the previous one.
    pub fn upsert(&self, resource: Resource) -> Option<Resource> {
        let resource = as_stored(resource, &self.environment);
        let previous = self.lock().resources.insert(resource.key(), resource);
        self.bump();
        previous
    }

    /// Removes the resource; returns it if it existed.
    pub fn delete(&self, key: &ResourceKey) -> Option<Resource> {
        let removed = self.lock().resources.remove(key);
        if removed.is_some() {
            self.bump();
        }
        removed
    }

    pub fn get(&self, key: &ResourceKey) -> Option<Resource> {
        self.lock().resources.get(key).cloned()
    }

    /// Every resource, or those of one type, in key order.
    pub fn list(&self, rtype: Option<ResourceType>) -> Vec<Resource> {
        self.lock()
            .resources
            .values()
            .filter(|r| rtype.is_none_or(|t| r.rtype == t))
            .cloned()
            .collect()
    }

    /// A receiver whose value moves on every change that can alter what zones are sent.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The current change counter (the value [`subscribe`](Self::subscribe) reports).
    pub fn version(&self) -> u64 {
        *self.changes.borrow()
    }

    /// Every zone the global knows, by name.
    pub fn zones(&self) -> BTreeMap<String, ZoneRecord> {
        self.lock().zones.clone()
    }

    pub fn zone(&self, name: &str) -> Option<ZoneRecord> {
        self.lock().zones.get(name).cloned()
    }

    /// Sets `Zone.spec.enabled`, creating the zone if absent (as `kumactl apply` would).
    pub fn set_zone_enabled(&self, name: &str, enabled: bool) {
        self.lock().zones.entry(name.to_owned()).or_default().enabled = enabled;
        self.bump();
    }

    /// Deletes a zone and its insight (`DELETE /zones/<name>`); returns whether it existed.
    pub fn delete_zone(&self, name: &str) -> bool {
        let existed = self.lock().zones.remove(name).is_some();
        if existed {
            self.bump();
        }
        existed
    }

    /// Opening a sync stream creates the Zone if absent and starts a subscription; earlier
    /// subscriptions get a disconnect time (`zone_insight_helpers.go`). Returns its id.
    pub(crate) fn open_subscription(
        &self,
        zone: &str,
        version: Option<String>,
        auth_token_provided: bool,
    ) -> String {
        let id = format!("kuma-sim-{}", SUBSCRIPTION_IDS.fetch_add(1, Ordering::Relaxed));
        let now = Timestamp::now();
        let mut state = self.lock();
        let record = state.zones.entry(zone.to_owned()).or_default();
        for earlier in &mut record.subscriptions {
            earlier.disconnect_time.get_or_insert(now);
        }
        record.subscriptions.push(Subscription {
            id: id.clone(),
            version,
            auth_token_provided,
            connect_time: now,
            disconnect_time: None,
            stats: BTreeMap::new(),
        });
        let excess = record.subscriptions.len().saturating_sub(SUBSCRIPTION_LIMIT);
        record.subscriptions.drain(..excess);
        id
    }

    pub(crate) fn close_subscription(&self, zone: &str, id: &str) {
        if let Some(sub) = self.subscription_mut(&mut self.lock(), zone, id) {
            sub.disconnect_time.get_or_insert_with(Timestamp::now);
        }
    }

    pub(crate) fn record_stat(&self, zone: &str, id: &str, type_url: &str, event: StatEvent) {
        if let Some(sub) = self.subscription_mut(&mut self.lock(), zone, id) {
            let stats = sub.stats.entry(type_url.to_owned()).or_default();
            match event {
                StatEvent::Sent => stats.responses_sent += 1,
                StatEvent::Acked => stats.responses_acknowledged += 1,
                StatEvent::Nacked => stats.responses_rejected += 1,
            }
        }
    }

    /// A health check refreshes the zone's time only when the zone exists: Kuma's upsert of
    /// a missing ZoneInsight fails NotFound and is swallowed (kuma-semantics 2.5).
    pub(crate) fn record_health_check(&self, zone: &str) -> bool {
        match self.lock().zones.get_mut(zone) {
            Some(record) => {
                record.health_check_time = Some(Timestamp::now());
                true
            }
            None => false,
        }
    }

    /// Resources of one type and the zones' enabled flags, read under one lock so a
    /// generation sees a consistent state.
    pub(crate) fn view(&self, rtype: ResourceType) -> (Vec<Resource>, BTreeMap<String, bool>) {
        let state = self.lock();
        let resources = state
            .resources
            .values()
            .filter(|r| r.rtype == rtype)
            .cloned()
            .collect();
        let zones = state.zones.iter().map(|(n, z)| (n.clone(), z.enabled)).collect();
        (resources, zones)
    }

    fn subscription_mut<'a>(
        &self,
        state: &'a mut State,
        zone: &str,
        id: &str,
    ) -> Option<&'a mut Subscription> {
        state
            .zones
            .get_mut(zone)?
            .subscriptions
            .iter_mut()
            .find(|s| s.id == id)
    }

    fn bump(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for GlobalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalStore")
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

/// A resource as a control plane's store keeps it. Kuma's Kubernetes store reads every
/// object back with a display name, its `kuma.io/display-name` annotation or else the
/// object's own name (`KubernetesMetaAdapter::GetLabels`,
/// `pkg/plugins/resources/k8s/store.go`): the Mesh a Kubernetes global creates, and the
/// Mesh copy a Kubernetes zone takes from a Universal global, carry one (recorded on real
/// kuma-cp, `docs/conformance.md`). Universal stores keep labels as given.
pub(crate) fn as_stored(mut resource: Resource, environment: &Environment) -> Resource {
    if matches!(environment, Environment::Kubernetes { .. }) {
        let object_name = match resource.name.rsplit_once('.') {
            Some((name, _namespace)) if resource.rtype.info().k8s_namespaced() => name,
            _ => resource.name.as_str(),
        }
        .to_owned();
        resource
            .labels
            .entry(kuma_model::labels::DISPLAY_NAME.to_owned())
            .or_insert(object_name);
    }
    resource
}

/// What the simulated APIs (REST, Kubernetes) need from any control plane's store, global
/// or zone. Every store bumps [`version`](ResourceStore::version) on each change, so API
/// watchers can diff snapshots instead of hooking every write.
pub trait ResourceStore: Send + Sync + 'static {
    /// Which control plane this is: decides the origin rules of writes.
    fn role(&self) -> kuma_model::CpRole;
    fn environment(&self) -> &Environment;
    /// The Kuma line this control plane runs.
    fn line(&self) -> KumaLine;
    /// Every resource, or those of one type, in key order.
    fn list(&self, rtype: Option<ResourceType>) -> Vec<Resource>;
    fn get(&self, key: &ResourceKey) -> Option<Resource>;
    /// Creates or replaces; returns the previous resource.
    fn upsert(&self, resource: Resource) -> Option<Resource>;
    fn delete(&self, key: &ResourceKey) -> Option<Resource>;
    /// A counter that moves on every change.
    fn version(&self) -> u64;
    fn subscribe(&self) -> watch::Receiver<u64>;
    /// The zones a global knows (its `Zone`/`ZoneInsight` resources); `None` on zones.
    fn zone_records(&self) -> Option<BTreeMap<String, ZoneRecord>> {
        None
    }
}

impl ResourceStore for GlobalStore {
    fn role(&self) -> kuma_model::CpRole {
        kuma_model::CpRole::Global
    }
    fn environment(&self) -> &Environment {
        GlobalStore::environment(self)
    }
    fn line(&self) -> KumaLine {
        self.line
    }
    fn list(&self, rtype: Option<ResourceType>) -> Vec<Resource> {
        GlobalStore::list(self, rtype)
    }
    fn get(&self, key: &ResourceKey) -> Option<Resource> {
        GlobalStore::get(self, key)
    }
    fn upsert(&self, resource: Resource) -> Option<Resource> {
        GlobalStore::upsert(self, resource)
    }
    fn delete(&self, key: &ResourceKey) -> Option<Resource> {
        GlobalStore::delete(self, key)
    }
    fn version(&self) -> u64 {
        GlobalStore::version(self)
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        GlobalStore::subscribe(self)
    }
    fn zone_records(&self) -> Option<BTreeMap<String, ZoneRecord>> {
        Some(self.zones())
    }
}
