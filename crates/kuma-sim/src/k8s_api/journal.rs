//! Resource versions for a store that has none: the journal diffs the store against its
//! last snapshot whenever the store's change counter moves, gives every change a new
//! store-wide resource version (as etcd revisions are), and keeps a bounded history so
//! watches can resume and paginated lists stay consistent.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use kuma_model::{Resource, ResourceKey};
use serde_json::Value;
use tokio::sync::watch;
use xxhash_rust::xxh3::xxh3_128;

use super::object::{self, Crd, ObjectKey, ServerMeta};
use crate::ResourceStore;

/// How an object changed, as watch events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    pub fn event_type(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// One change at one resource version.
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub kind: ChangeKind,
    pub key: ObjectKey,
    /// The object after the change; for a deletion, the last state stamped with `rv`.
    pub object: Arc<Value>,
    /// The object before the change (absent for additions).
    pub previous: Option<Arc<Value>>,
}

/// A resource version older than the kept history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub requested: u64,
    /// The oldest version a watch or a continued list can start from.
    pub oldest: u64,
}

/// Every object at one resource version.
pub type Snapshot = BTreeMap<ObjectKey, Arc<Value>>;

struct Stored {
    resource: Resource,
    object: Arc<Value>,
    uid: String,
    generation: u64,
    creation: jiff::Timestamp,
}

struct State {
    /// The store counter the objects reflect; `None` before the first sync.
    synced: Option<u64>,
    rv: u64,
    /// Changes at or below this version are forgotten.
    compacted: u64,
    objects: BTreeMap<ObjectKey, Stored>,
    history: VecDeque<Change>,
    uids: u64,
    /// Resources left out at the last sync, so each is warned about once.
    refused: BTreeSet<ResourceKey>,
}

pub struct Journal {
    store: Arc<dyn ResourceStore>,
    state: Mutex<State>,
    history_limit: usize,
    /// The latest resource version; watches wait on it.
    latest: watch::Sender<u64>,
    /// Makes uids differ between runs, as real ones do.
    uid_seed: u128,
}

/// The first resource version: real ones are etcd revisions and never 0, which
/// Kubernetes reserves for "any version".
const FIRST_RV: u64 = 1;

impl Journal {
    pub fn new(store: Arc<dyn ResourceStore>, history_limit: usize) -> Self {
        Self {
            store,
            state: Mutex::new(State {
                synced: None,
                rv: FIRST_RV,
                compacted: FIRST_RV,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                uids: 0,
                refused: BTreeSet::new(),
            }),
            history_limit: history_limit.max(1),
            latest: watch::Sender::new(FIRST_RV),
            uid_seed: jiff::Timestamp::now().as_nanosecond() as u128,
        }
    }

    pub fn store(&self) -> &Arc<dyn ResourceStore> {
        &self.store
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Brings the journal up to the store, so a request sees every write made before it.
    pub fn sync(&self) {
        let mut state = self.lock();
        // Read the counter before listing: a write racing the list bumps it again and the
        // next sync picks that write up.
        let version = self.store.version();
        if state.synced == Some(version) {
            return;
        }
        let current = Self::mappable(&mut state, self.store.list(None));
        let before = state.rv;
        self.apply(&mut state, current);
        state.synced = Some(version);
        if state.rv != before {
            self.latest.send_replace(state.rv);
        }
    }

    /// The current version.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Every object now, and the version it is at.
    pub fn current(&self) -> (u64, Snapshot) {
        let state = self.lock();
        let snapshot = state
            .objects
            .iter()
            .map(|(k, s)| (k.clone(), s.object.clone()))
            .collect();
        (state.rv, snapshot)
    }

    /// Every object at version `rv`, rebuilt by undoing later changes.
    pub fn at(&self, rv: u64) -> Result<Snapshot, Expired> {
        let state = self.lock();
        if rv < state.compacted {
            return Err(Expired {
                requested: rv,
                oldest: state.compacted,
            });
        }
        let mut snapshot: Snapshot = state
            .objects
            .iter()
            .map(|(k, s)| (k.clone(), s.object.clone()))
            .collect();
        for change in state.history.iter().rev().take_while(|c| c.rv > rv) {
            match &change.previous {
                Some(previous) => snapshot.insert(change.key.clone(), previous.clone()),
                None => snapshot.remove(&change.key),
            };
        }
        Ok(snapshot)
    }

    /// The changes after `rv`, and the version they bring a watcher to.
    pub fn changes_since(&self, rv: u64) -> Result<(Vec<Change>, u64), Expired> {
        let state = self.lock();
        if rv < state.compacted {
            return Err(Expired {
                requested: rv,
                oldest: state.compacted,
            });
        }
        let start = state.history.partition_point(|c| c.rv <= rv);
        let changes = state.history.range(start..).cloned().collect();
        Ok((changes, state.rv.max(rv)))
    }

    /// The served resources, keyed by their Kubernetes place. Resources Kuma's store could
    /// not hold are left out, with one warning each while they stay: a namespaced type
    /// needs `<name>.<namespace>`, and two core resources cannot share one object.
    fn mappable(state: &mut State, resources: Vec<Resource>) -> BTreeMap<ObjectKey, Resource> {
        let mut out: BTreeMap<ObjectKey, Resource> = BTreeMap::new();
        let mut refused = BTreeSet::new();
        for r in resources {
            if Crd::of(r.rtype).is_none() {
                continue;
            }
            let problem = match object::object_key(&r) {
                Ok(key) => match out.get(&key) {
                    Some(kept) => format!(
                        "{} `{}` of mesh {:?} maps to the same Kubernetes object as the one of mesh {:?}",
                        r.rtype, r.name, r.mesh, kept.mesh
                    ),
                    None => {
                        out.insert(key, r);
                        continue;
                    }
                },
                Err(e) => e.to_string(),
            };
            let key = r.key();
            if !state.refused.contains(&key) {
                tracing::warn!(%problem, "resource not served by the Kubernetes API");
            }
            refused.insert(key);
        }
        state.refused = refused;
        out
    }

    fn apply(&self, state: &mut State, mut current: BTreeMap<ObjectKey, Resource>) {
        let gone: Vec<ObjectKey> = state
            .objects
            .keys()
            .filter(|k| !current.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(stored) = state.objects.remove(&key) {
                state.rv += 1;
                let rv = state.rv;
                let object = Arc::new(object::with_resource_version(&stored.object, rv));
                self.record(
                    state,
                    Change {
                        rv,
                        kind: ChangeKind::Deleted,
                        key,
                        object,
                        previous: Some(stored.object),
                    },
                );
            }
        }
        let keys: Vec<ObjectKey> = current.keys().cloned().collect();
        for key in keys {
            let Some(resource) = current.remove(&key) else {
                continue;
            };
            let (kind, previous, uid, generation, creation) = match state.objects.get(&key) {
                Some(old) if old.resource == resource => continue,
                Some(old) => {
                    let generation = old.generation + u64::from(old.resource.spec != resource.spec);
                    let previous = Some(old.object.clone());
                    (
                        ChangeKind::Modified,
                        previous,
                        old.uid.clone(),
                        generation,
                        old.creation,
                    )
                }
                None => {
                    state.uids += 1;
                    let uid = self.uid(&key, state.uids);
                    let creation = resource.creation_time.unwrap_or_else(jiff::Timestamp::now);
                    (ChangeKind::Added, None, uid, 1, creation)
                }
            };
            state.rv += 1;
            let meta = ServerMeta {
                uid: uid.clone(),
                resource_version: state.rv,
                generation,
                creation_timestamp: creation,
            };
            let object = match object::to_object(&resource, &meta) {
                Ok(o) => Arc::new(o),
                // `mappable` kept only resources with a place, and the place is all that
                // can fail; skip rather than serve a half object.
                Err(e) => {
                    state.rv -= 1;
                    tracing::warn!(error = %e, "resource not served by the Kubernetes API");
                    continue;
                }
            };
            state.objects.insert(
                key.clone(),
                Stored {
                    resource,
                    object: object.clone(),
                    uid,
                    generation,
                    creation,
                },
            );
            let rv = state.rv;
            self.record(
                state,
                Change {
                    rv,
                    kind,
                    key,
                    object,
                    previous,
                },
            );
        }
    }

    fn record(&self, state: &mut State, change: Change) {
        state.history.push_back(change);
        while state.history.len() > self.history_limit {
            if let Some(dropped) = state.history.pop_front() {
                state.compacted = dropped.rv;
            }
        }
    }

    /// A version-4-shaped UUID, unique per object incarnation.
    fn uid(&self, key: &ObjectKey, n: u64) -> String {
        let seed = format!(
            "{}/{:?}/{}/{n}/{}",
            key.rtype, key.namespace, key.name, self.uid_seed
        );
        let h = xxh3_128(seed.as_bytes());
        let hex = format!("{h:032x}");
        format!(
            "{}-{}-4{}-8{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[13..16],
            &hex[17..20],
            &hex[20..32]
        )
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain data: a panic elsewhere while holding the lock leaves it usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use kuma_model::{Environment, ResourceType};
    use serde_json::json;

    use super::*;
    use crate::GlobalStore;

    fn mcb(name: &str, spec: Value) -> Resource {
        Resource::new(
            ResourceType::from_name("MeshCircuitBreaker").unwrap(),
            Some("default"),
            name,
            spec,
        )
    }

    fn setup(limit: usize) -> (Arc<GlobalStore>, Journal) {
        let store = Arc::new(GlobalStore::new(Environment::kubernetes()));
        let journal = Journal::new(store.clone(), limit);
        (store, journal)
    }

    #[test]
    fn changes_get_increasing_versions_and_generations_follow_the_spec() {
        let (store, journal) = setup(100);
        store.upsert(mcb("a.kuma-system", json!({"v": 1})));
        journal.sync();
        let first = journal.resource_version();
        store.upsert(mcb("a.kuma-system", json!({"v": 1})).with_label("x", "y"));
        journal.sync();
        store.upsert(mcb("a.kuma-system", json!({"v": 2})).with_label("x", "y"));
        journal.sync();
        let (changes, upto) = journal.changes_since(first).unwrap();
        let kinds: Vec<_> = changes.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [ChangeKind::Modified, ChangeKind::Modified]);
        assert_eq!(upto, first + 2);
        assert_eq!(changes[0].object["metadata"]["generation"], 1, "labels only");
        assert_eq!(changes[1].object["metadata"]["generation"], 2);
        assert_eq!(
            changes[0].object["metadata"]["uid"],
            changes[1].object["metadata"]["uid"]
        );
        store.delete(&mcb("a.kuma-system", json!({})).key());
        journal.sync();
        let (changes, _) = journal.changes_since(first + 2).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].kind, ChangeKind::Deleted);
        assert_eq!(
            changes[0].object["metadata"]["resourceVersion"],
            (first + 3).to_string()
        );
    }

    #[test]
    fn unchanged_store_versions_make_no_changes() {
        let (store, journal) = setup(100);
        store.upsert(mcb("a.kuma-system", json!({})));
        journal.sync();
        let rv = journal.resource_version();
        store.set_zone_enabled("zone-1", false);
        journal.sync();
        assert_eq!(journal.resource_version(), rv);
    }

    #[test]
    fn old_snapshots_are_rebuilt_until_compacted() {
        let (store, journal) = setup(3);
        store.upsert(mcb("a.ns", json!({"v": 1})));
        journal.sync();
        let rv1 = journal.resource_version();
        store.upsert(mcb("a.ns", json!({"v": 2})));
        store.upsert(mcb("b.ns", json!({})));
        journal.sync();
        let snap = journal.at(rv1).unwrap();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap.values().next().unwrap()["spec"], json!({"v": 1}));
        assert_eq!(journal.current().1.len(), 2);
        for i in 0..3 {
            store.upsert(mcb(&format!("c{i}.ns"), json!({})));
            journal.sync();
        }
        let expired = journal.at(rv1).unwrap_err();
        assert_eq!(expired.requested, rv1);
        assert!(journal.changes_since(rv1).is_err());
        let now = journal.resource_version();
        assert!(journal.changes_since(now).unwrap().0.is_empty());
        assert!(journal.changes_since(expired.oldest).is_ok());
    }

    #[test]
    fn unmappable_resources_are_left_out() {
        let (store, journal) = setup(10);
        store.upsert(mcb("no-namespace", json!({})));
        store.upsert(Resource::new(
            ResourceType::from_name("Secret").unwrap(),
            Some("default"),
            "s",
            json!({}),
        ));
        journal.sync();
        assert!(journal.current().1.is_empty());
        // Old policies are cluster-scoped: one name in two meshes is one Kubernetes object.
        for mesh in ["a", "b"] {
            store.upsert(Resource::new(
                ResourceType::from_name("TrafficPermission").unwrap(),
                Some(mesh),
                "allow",
                json!({}),
            ));
        }
        journal.sync();
        let (_, objects) = journal.current();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects.values().next().unwrap()["mesh"], "a");
    }
}
