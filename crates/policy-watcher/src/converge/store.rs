//! One control plane's observed resources, indexed by key and by identity.
//!
//! At 100 zones x 10,000 policies the stores hold a million entries, so what an entry
//! keeps beyond its resource matters: the key is shared between both indexes, the
//! identity is one allocation for every copy of a resource (see [`Identities`]) and a
//! copy shares its spec with the other copies (see `copies`).

use std::sync::Arc;

use foldhash::{HashMap, HashSet};
use kuma_model::{Fingerprint, Identity, Resource, ResourceKey, fingerprint};

use super::copies::{Shared, Stored};

#[derive(Debug, Default)]
pub(super) struct Observed {
    pub(super) by_key: HashMap<Arc<ResourceKey>, Entry>,
    /// Keys sorted, so the choice among duplicates does not depend on arrival order.
    by_identity: HashMap<Arc<Identity>, Vec<Arc<ResourceKey>>>,
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) stored: Stored,
    pub(super) identity: Arc<Identity>,
    pub(super) fingerprint: Fingerprint,
    /// On the global only: the name a copy carries in a zone, per distinct zone
    /// environment. A global change re-evaluates every zone, and hashing the name once
    /// per environment instead of once per zone is most of that cost.
    pub(super) expected_in_zone: Box<[String]>,
}

impl Observed {
    /// Stores `resource`, as a [`Stored::Copy`] sharing its spec and labels through
    /// `shared` when given one, and returns what it replaced.
    pub(super) fn insert(
        &mut self,
        resource: Resource,
        identity: Arc<Identity>,
        expected_in_zone: Box<[String]>,
        shared: Option<&mut Shared>,
    ) -> Option<Entry> {
        let key = Arc::new(resource.key());
        let old = self.remove(&key);
        let keys = self.by_identity.entry(identity.clone()).or_default();
        if let Err(pos) = keys.binary_search(&key) {
            keys.insert(pos, key.clone());
        }
        let fingerprint = fingerprint(&resource.spec);
        let stored = match shared {
            Some(shared) => shared.copy(resource),
            None => Stored::Whole(resource),
        };
        self.by_key.insert(
            key,
            Entry {
                stored,
                identity,
                fingerprint,
                expected_in_zone,
            },
        );
        old
    }

    pub(super) fn remove(&mut self, key: &ResourceKey) -> Option<Entry> {
        let old = self.by_key.remove(key)?;
        if let Some(keys) = self.by_identity.get_mut(&*old.identity) {
            keys.retain(|k| **k != *key);
            if keys.is_empty() {
                self.by_identity.remove(&*old.identity);
            }
        }
        Some(old)
    }

    pub(super) fn entries<'a>(&'a self, identity: &Identity) -> impl Iterator<Item = &'a Entry> + 'a {
        self.by_identity
            .get(identity)
            .into_iter()
            .flatten()
            .filter_map(|k| self.by_key.get(&**k))
    }

    /// Whether `r` is held exactly as it is: a re-listed snapshot repeats most of what
    /// it said, and comparing is cheaper than storing and re-evaluating.
    pub(super) fn unchanged(&self, r: &Resource) -> bool {
        self.by_key.get(&r.key()).is_some_and(|e| e.stored.is(r))
    }

    pub(super) fn holds(&self, identity: &Identity) -> bool {
        self.by_identity.contains_key(identity)
    }
}

/// One shared allocation per identity across the global, every zone and the slot index:
/// a policy's copies in 100 zones have one identity, and cloning an `Arc` is cheaper than
/// cloning its strings.
#[derive(Debug, Default)]
pub(super) struct Identities {
    set: HashSet<Arc<Identity>>,
}

impl Identities {
    pub(super) fn intern(&mut self, identity: Identity) -> Arc<Identity> {
        if let Some(shared) = self.set.get(&identity) {
            return shared.clone();
        }
        let shared = Arc::new(identity);
        self.set.insert(shared.clone());
        shared
    }

    /// Forgets `identity` when nothing but the caller's handle and the interner hold it.
    pub(super) fn release(&mut self, identity: Arc<Identity>) {
        if Arc::strong_count(&identity) == 2 {
            self.set.remove(&*identity);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.set.len()
    }
}
