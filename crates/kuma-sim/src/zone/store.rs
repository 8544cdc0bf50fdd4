//! A zone control plane's resource store: its own resources plus the copies the global
//! sends it, applied the way Kuma's `ZoneSyncCallback` applies them (kuma-semantics 3.1, 6.4).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Mutex, MutexGuard},
};

use kuma_model::{CpRole, Environment, KumaLine, Resource, ResourceKey, ResourceType, labels, types::flags};
use tokio::sync::watch;

use crate::store::ResourceStore;

/// One zone's resources, keyed as the control plane stores them.
pub struct ZoneStore {
    name: String,
    /// Universal or Kubernetes: decides where synced copies land (kuma-semantics 6.4).
    environment: Environment,
    /// The Kuma line simulated: how local writes are labelled.
    line: KumaLine,
    state: Mutex<State>,
    /// Bumped on every change readers can see (resources, hidden kinds).
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    resources: BTreeMap<ResourceKey, Resource>,
    /// Kinds that vanished (the flap fault): readers do not see them, sync still writes.
    hidden: BTreeSet<ResourceType>,
}

/// What one global-to-zone response did to the store.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    /// Names the store already holds as the zone's own: left alone, reported in a NACK
    /// as Kuma's `SkipConflictResource` does for the types whose names are not hashed.
    pub conflicts: Vec<String>,
    /// For every other type a conflict fails the whole response, nothing of it applied:
    /// Kuma's store returns "resource already exists" and the zone's sync from the global
    /// restarts (`pkg/kds/store/sync.go`; kumahq/kuma #18208, seen on kuma-cp main).
    pub fatal: bool,
}

impl ZoneStore {
    pub fn new(name: &str, environment: Environment) -> Self {
        Self {
            name: name.to_owned(),
            environment,
            line: KumaLine::V2,
            state: Mutex::new(State::default()),
            changes: watch::Sender::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
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
        let resource = crate::store::as_stored(resource, &self.environment);
        let previous = self.lock().resources.insert(resource.key(), resource);
        self.bump();
        previous
    }

    pub fn delete(&self, key: &ResourceKey) -> Option<Resource> {
        let removed = self.lock().resources.remove(key);
        if removed.is_some() {
            self.bump();
        }
        removed
    }

    /// The resource, unless its kind has vanished.
    pub fn get(&self, key: &ResourceKey) -> Option<Resource> {
        let state = self.lock();
        if state.hidden.contains(&key.rtype) {
            return None;
        }
        state.resources.get(key).cloned()
    }

    /// Every visible resource, or those of one type, in key order.
    pub fn list(&self, rtype: Option<ResourceType>) -> Vec<Resource> {
        let state = self.lock();
        state
            .resources
            .values()
            .filter(|r| rtype.is_none_or(|t| r.rtype == t) && !state.hidden.contains(&r.rtype))
            .cloned()
            .collect()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn version(&self) -> u64 {
        *self.changes.borrow()
    }

    /// Makes a kind vanish from readers (`true`) or come back (`false`).
    pub fn set_hidden(&self, rtype: ResourceType, hidden: bool) {
        let changed = {
            let mut state = self.lock();
            if hidden {
                state.hidden.insert(rtype)
            } else {
                state.hidden.remove(&rtype)
            }
        };
        if changed {
            self.bump();
        }
    }

    /// Kinds currently vanished.
    pub fn hidden(&self) -> BTreeSet<ResourceType> {
        self.lock().hidden.clone()
    }

    /// Applies one global-to-zone response of `rtype` (`pkg/kds/v2/store/sync.go`): `full`
    /// replaces what the global owns here, otherwise `upserts` and `removed` are a delta.
    /// Resources the zone originated are never touched for types zones provide; status
    /// changes alone are ignored.
    pub(crate) fn apply_from_global(
        &self,
        rtype: ResourceType,
        upserts: Vec<Resource>,
        removed: &[ResourceKey],
        full: bool,
    ) -> SyncOutcome {
        let provided_by_zone = rtype.info().kds_flags & flags::PROVIDED_BY_ZONE != 0;
        // `PrefilterBy(!IsLocallyOriginated(zone))` for types zones provide, else everything.
        let managed = |r: &Resource| !provided_by_zone || !is_locally_originated(r);
        let mut outcome = SyncOutcome::default();
        let mut state = self.lock();
        if !rtype.info().skip_kds_hash {
            outcome.conflicts = upserts
                .iter()
                .filter(|r| state.resources.get(&r.key()).is_some_and(|e| !managed(e)))
                .map(|r| r.name.clone())
                .collect();
            if !outcome.conflicts.is_empty() {
                outcome.fatal = true;
                return outcome;
            }
        }
        let incoming: BTreeSet<ResourceKey> = upserts.iter().map(Resource::key).collect();
        let doomed: Vec<ResourceKey> = if full {
            state
                .resources
                .values()
                .filter(|r| r.rtype == rtype && managed(r) && !incoming.contains(&r.key()))
                .map(Resource::key)
                .collect()
        } else {
            removed
                .iter()
                .filter(|k| !incoming.contains(*k))
                .filter(|k| state.resources.get(*k).is_some_and(managed))
                .cloned()
                .collect()
        };
        for key in doomed {
            state.resources.remove(&key);
            outcome.deleted += 1;
        }
        for r in upserts {
            let mut r = crate::store::as_stored(r, &self.environment);
            let key = r.key();
            match state.resources.get(&key) {
                Some(existing) if !managed(existing) => outcome.conflicts.push(r.name.clone()),
                Some(existing) => {
                    if existing.spec != r.spec || existing.labels != r.labels {
                        r.status.clone_from(&existing.status);
                        r.creation_time = existing.creation_time;
                        r.modification_time = Some(jiff::Timestamp::now());
                        state.resources.insert(key, r);
                        outcome.updated += 1;
                    }
                }
                None => {
                    let now = jiff::Timestamp::now();
                    r.creation_time = Some(now);
                    r.modification_time = Some(now);
                    state.resources.insert(key, r);
                    outcome.created += 1;
                }
            }
        }
        drop(state);
        if outcome.created + outcome.updated + outcome.deleted > 0 {
            self.bump();
        }
        outcome
    }

    fn bump(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `IsLocallyOriginated(Zone, labels)`: no origin label, or `zone`.
pub(crate) fn is_locally_originated(r: &Resource) -> bool {
    matches!(
        r.label(labels::ORIGIN),
        None | Some("") | Some(labels::ORIGIN_ZONE)
    )
}

impl std::fmt::Debug for ZoneStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneStore")
            .field("name", &self.name)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl ResourceStore for ZoneStore {
    fn role(&self) -> CpRole {
        CpRole::Zone(self.name.clone())
    }
    fn environment(&self) -> &Environment {
        ZoneStore::environment(self)
    }
    fn line(&self) -> KumaLine {
        self.line
    }
    fn list(&self, rtype: Option<ResourceType>) -> Vec<Resource> {
        ZoneStore::list(self, rtype)
    }
    fn get(&self, key: &ResourceKey) -> Option<Resource> {
        ZoneStore::get(self, key)
    }
    fn upsert(&self, resource: Resource) -> Option<Resource> {
        ZoneStore::upsert(self, resource)
    }
    fn delete(&self, key: &ResourceKey) -> Option<Resource> {
        ZoneStore::delete(self, key)
    }
    fn version(&self) -> u64 {
        ZoneStore::version(self)
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        ZoneStore::subscribe(self)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mcb(name: &str, origin: Option<&str>) -> Resource {
        let r = Resource::new(
            ResourceType::from_name("MeshCircuitBreaker").expect("known"),
            Some("default"),
            name,
            json!({}),
        );
        match origin {
            Some(o) => r.with_label(labels::ORIGIN, o),
            None => r,
        }
    }

    #[test]
    fn full_state_spares_the_zones_own_resources() {
        let store = ZoneStore::new("zone-1", Environment::Universal);
        let t = ResourceType::from_name("MeshCircuitBreaker").expect("known");
        store.upsert(mcb("local", Some("zone")));
        store.upsert(mcb("unlabelled", None));
        store.upsert(mcb("stale", Some("global")));
        let out = store.apply_from_global(t, vec![mcb("fresh", Some("global"))], &[], true);
        assert_eq!((out.created, out.deleted), (1, 1));
        let names: Vec<_> = store.list(Some(t)).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["fresh", "local", "unlabelled"]);
        // A delta cannot remove the zone's own either; a clash fails the whole response,
        // nothing of it stored (Kuma: "resource already exists", the sync restarts).
        let out = store.apply_from_global(
            t,
            vec![mcb("local", Some("global")), mcb("other", Some("global"))],
            &[mcb("unlabelled", None).key()],
            false,
        );
        assert_eq!(out.conflicts, ["local"]);
        assert!(out.fatal);
        assert_eq!((out.created, out.updated, out.deleted), (0, 0, 0));
        let names: Vec<_> = store.list(Some(t)).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["fresh", "local", "unlabelled"]);
    }

    /// Types whose names are not hashed skip a clash and say so in a NACK
    /// (`SkipConflictResource`), the rest of the response applied.
    #[test]
    fn unhashed_types_skip_a_clash() {
        let store = ZoneStore::new("zone-1", Environment::Universal);
        let t = ResourceType::from_name("Config").expect("known");
        assert!(t.info().skip_kds_hash);
        let config = |name: &str, origin: &str| {
            Resource::new(t, None, name, json!({})).with_label(labels::ORIGIN, origin)
        };
        store.upsert(config("mine", "zone"));
        let out = store.apply_from_global(
            t,
            vec![config("mine", "global"), config("theirs", "global")],
            &[],
            false,
        );
        assert_eq!(out.conflicts, ["mine"]);
        assert!(!out.fatal);
        assert_eq!(out.created, 1);
    }

    #[test]
    fn hidden_kinds_vanish_for_readers_only() {
        let store = ZoneStore::new("zone-1", Environment::Universal);
        let t = ResourceType::from_name("MeshCircuitBreaker").expect("known");
        store.upsert(mcb("a", Some("global")));
        let before = store.version();
        store.set_hidden(t, true);
        assert!(store.version() > before);
        assert!(store.list(None).is_empty());
        assert!(store.get(&mcb("a", None).key()).is_none());
        store.set_hidden(t, false);
        assert_eq!(store.list(None).len(), 1);
    }
}
