//! One control plane's observed resources, indexed by key and by identity.
//!
//! At 100 zones x 10,000 policies the stores hold a million entries, kept for as long as
//! `serve` runs. They live in one slab per store, not one allocation each: allocated one
//! by one, a million small long-lived objects share their pages with everything a
//! snapshot's parsing leaves behind, and the freed parse could not be given back (the
//! process held twice its heap, `docs/benchmarks.md`). Both indexes hold slab positions;
//! the key is shared with the same-named copies in other zones, the identity with every
//! copy of a resource (see [`Identities`]), and an identity's positions are inline when
//! there is one.

use std::sync::Arc;

use std::collections::hash_map::Entry as Entry_;

use foldhash::{HashMap, HashSet};
use kuma_model::{Identity, Resource, ResourceKey};

use super::copies::Stored;

#[derive(Debug, Default)]
pub(super) struct Observed {
    slab: Vec<Option<Entry>>,
    /// Vacant positions in `slab`, reused first.
    vacant: Vec<u32>,
    by_key: HashMap<Arc<ResourceKey>, u32>,
    by_identity: HashMap<Arc<Identity>, Positions>,
    /// Observed at least once (a read, possibly empty, or a watch event).
    pub(super) loaded: bool,
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) key: Arc<ResourceKey>,
    pub(super) identity: Arc<Identity>,
    pub(super) stored: Stored,
}

/// An identity's slab positions, sorted by key so the choice among duplicates does not
/// depend on arrival order. Nearly always one.
#[derive(Debug)]
enum Positions {
    One(u32),
    Many(Box<[u32]>),
}

impl Positions {
    fn as_slice(&self) -> &[u32] {
        match self {
            Positions::One(p) => std::slice::from_ref(p),
            Positions::Many(ps) => ps,
        }
    }
}

impl Observed {
    /// Makes room for `more` entries at once: a snapshot's size is known before it is
    /// stored, and growing by doubling would leave the outgrown blocks behind.
    pub(super) fn reserve(&mut self, more: usize) {
        let more = more.saturating_sub(self.vacant.len());
        self.slab.reserve_exact(more);
        self.by_key.reserve(more);
        self.by_identity.reserve(more);
    }

    /// Stores `stored` under `key` and returns what it replaced.
    pub(super) fn insert(
        &mut self,
        key: Arc<ResourceKey>,
        stored: Stored,
        identity: Arc<Identity>,
    ) -> Option<Entry> {
        let old = self.remove(&key);
        let entry = Entry {
            key: key.clone(),
            identity: identity.clone(),
            stored,
        };
        let pos = match self.vacant.pop() {
            Some(pos) => {
                self.slab[pos as usize] = Some(entry);
                pos
            }
            None => {
                self.slab.push(Some(entry));
                u32::try_from(self.slab.len() - 1).expect("fewer than 4 billion resources per control plane")
            }
        };
        self.by_key.insert(key.clone(), pos);
        match self.by_identity.entry(identity) {
            Entry_::Vacant(v) => {
                v.insert(Positions::One(pos));
            }
            Entry_::Occupied(mut o) => {
                let mut all = o.get().as_slice().to_vec();
                let at = all.partition_point(|p| key_at(&self.slab, *p) < &*key);
                all.insert(at, pos);
                *o.get_mut() = Positions::Many(all.into_boxed_slice());
            }
        }
        old
    }

    pub(super) fn remove(&mut self, key: &ResourceKey) -> Option<Entry> {
        let pos = self.by_key.remove(key)?;
        let old = self.slab.get_mut(pos as usize)?.take()?;
        self.vacant.push(pos);
        if let Some(positions) = self.by_identity.get_mut(&*old.identity) {
            let rest: Vec<u32> = positions
                .as_slice()
                .iter()
                .copied()
                .filter(|p| *p != pos)
                .collect();
            match rest.as_slice() {
                [] => {
                    self.by_identity.remove(&*old.identity);
                }
                [one] => *positions = Positions::One(*one),
                _ => *positions = Positions::Many(rest.into_boxed_slice()),
            }
        }
        Some(old)
    }

    pub(super) fn get(&self, key: &ResourceKey) -> Option<&Entry> {
        let pos = *self.by_key.get(key)?;
        self.slab.get(pos as usize)?.as_ref()
    }

    fn get_mut(&mut self, key: &ResourceKey) -> Option<&mut Entry> {
        let pos = *self.by_key.get(key)?;
        self.slab.get_mut(pos as usize)?.as_mut()
    }

    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &Arc<ResourceKey>> + '_ {
        self.by_key.keys()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.slab.iter().flatten()
    }

    /// An identity's entries, with their keys, in key order.
    pub(super) fn entries<'a>(
        &'a self,
        identity: &Identity,
    ) -> impl Iterator<Item = (&'a Arc<ResourceKey>, &'a Entry)> + Clone + 'a {
        self.by_identity
            .get(identity)
            .map(Positions::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| self.slab.get(*p as usize)?.as_ref().map(|e| (&e.key, e)))
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
        if let Some(e) = self.get_mut(key)
            && *e.identity == *identity
        {
            e.stored.set_synced(synced);
        }
    }

    /// Whether `r` is held exactly as it is: a re-listed snapshot repeats most of what
    /// it said, and comparing is cheaper than storing and re-evaluating.
    pub(super) fn unchanged(&self, r: &Resource) -> bool {
        self.get(&r.key()).is_some_and(|e| e.stored.is(r))
    }

    pub(super) fn holds(&self, identity: &Identity) -> bool {
        self.by_identity.contains_key(identity)
    }
}

fn key_at(slab: &[Option<Entry>], pos: u32) -> &ResourceKey {
    slab[pos as usize]
        .as_ref()
        .map(|e| &*e.key)
        .expect("indexed positions are occupied")
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
