//! One control plane's observed resources, indexed by key and by identity.
//!
//! At 100 zones x 10,000 policies the stores hold a million entries, so an entry is kept
//! small: its key is shared by both indexes (and, for copies, with the same-named copies
//! in other zones), the identity is one allocation for every copy of a resource (see
//! [`Identities`]), the stored resource is one pointer (see `copies`), and an identity's
//! keys are inline when there is one.

use std::sync::Arc;

use foldhash::{HashMap, HashSet};
use kuma_model::{Identity, Resource, ResourceKey};

use super::copies::Stored;

#[derive(Debug, Default)]
pub(super) struct Observed {
    pub(super) by_key: HashMap<Arc<ResourceKey>, Entry>,
    by_identity: HashMap<Arc<Identity>, Keys>,
    /// Observed at least once (a read, possibly empty, or a watch event).
    pub(super) loaded: bool,
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) stored: Stored,
    pub(super) identity: Arc<Identity>,
}

/// An identity's keys, sorted so the choice among duplicates does not depend on arrival
/// order. Nearly always one.
#[derive(Debug)]
enum Keys {
    One(Arc<ResourceKey>),
    Many(Box<[Arc<ResourceKey>]>),
}

impl Keys {
    fn as_slice(&self) -> &[Arc<ResourceKey>] {
        match self {
            Keys::One(k) => std::slice::from_ref(k),
            Keys::Many(ks) => ks,
        }
    }

    fn with(&self, key: &Arc<ResourceKey>) -> Option<Keys> {
        let ks = self.as_slice();
        let pos = ks.binary_search(key).err()?;
        let mut v = Vec::with_capacity(ks.len() + 1);
        v.extend_from_slice(&ks[..pos]);
        v.push(key.clone());
        v.extend_from_slice(&ks[pos..]);
        Some(Keys::Many(v.into_boxed_slice()))
    }

    /// Without `key`; `None` when nothing is left.
    fn without(&self, key: &ResourceKey) -> Option<Keys> {
        let rest: Vec<Arc<ResourceKey>> = self.as_slice().iter().filter(|k| ***k != *key).cloned().collect();
        match rest.len() {
            0 => None,
            1 => rest.into_iter().next().map(Keys::One),
            _ => Some(Keys::Many(rest.into_boxed_slice())),
        }
    }
}

impl Observed {
    /// Stores `stored` under `key` and returns what it replaced.
    pub(super) fn insert(
        &mut self,
        key: Arc<ResourceKey>,
        stored: Stored,
        identity: Arc<Identity>,
    ) -> Option<(Arc<ResourceKey>, Entry)> {
        let old = self.remove(&key);
        match self.by_identity.get_mut(&identity) {
            Some(keys) => {
                if let Some(more) = keys.with(&key) {
                    *keys = more;
                }
            }
            None => {
                self.by_identity.insert(identity.clone(), Keys::One(key.clone()));
            }
        }
        self.by_key.insert(key, Entry { stored, identity });
        old
    }

    pub(super) fn remove(&mut self, key: &ResourceKey) -> Option<(Arc<ResourceKey>, Entry)> {
        let (key, old) = self.by_key.remove_entry(key)?;
        if let Some(keys) = self.by_identity.get_mut(&*old.identity) {
            match keys.without(&key) {
                Some(rest) => *keys = rest,
                None => {
                    self.by_identity.remove(&*old.identity);
                }
            }
        }
        Some((key, old))
    }

    /// An identity's entries, with their keys, in key order.
    pub(super) fn entries<'a>(
        &'a self,
        identity: &Identity,
    ) -> impl Iterator<Item = (&'a Arc<ResourceKey>, &'a Entry)> + Clone + 'a {
        self.by_identity
            .get(identity)
            .map(Keys::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|k| Some((k, self.by_key.get(&**k)?)))
    }

    pub(super) fn identities(&self) -> impl Iterator<Item = &Arc<Identity>> + '_ {
        self.by_identity.keys()
    }

    /// The key of the identity's copy flagged synced, if any.
    pub(super) fn synced_copy(&self, identity: &Identity) -> Option<&Arc<ResourceKey>> {
        self.entries(identity)
            .find(|(_, e)| e.stored.synced())
            .map(|(k, _)| k)
    }

    /// Flags the entry under `key` if it is still of `identity`: a copy re-stored under
    /// another identity belongs to another slot, whose flag this is not.
    pub(super) fn set_synced(&mut self, key: &ResourceKey, identity: &Identity, synced: bool) {
        if let Some(e) = self.by_key.get_mut(key)
            && *e.identity == *identity
        {
            e.stored.set_synced(synced);
        }
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
