//! One control plane's observed resources, indexed by key and by identity.
//!
//! At 100 zones x 10,000 policies the stores hold a million entries, kept for as long as
//! `serve` runs. They live in one slab per store, not one allocation each: allocated one
//! by one, a million small long-lived objects share their pages with everything a
//! snapshot's parsing leaves behind, and the freed parse could not be given back (the
//! process held twice its heap, `docs/benchmarks.md`). Both indexes hold slab positions;
//! the key is shared with the same-named copies in other zones, the identity with every
//! copy of a resource (see [`Identities`]), and an identity's positions are inline when
//! there is one. The indexes are `hashbrown` tables of bare positions, hashed by what the
//! slab holds there: a map from `Arc` keys would spend 8 more bytes a bucket on a copy of
//! the pointer the entry already has.

use std::{hash::BuildHasher, sync::Arc};

use foldhash::{HashSet, fast::RandomState};
use hashbrown::HashTable;
use kuma_model::{Identity, Resource, ResourceKey, ResourceType};

use super::copies::Stored;

#[derive(Debug, Default)]
pub(super) struct Observed {
    slab: Vec<Option<Entry>>,
    /// Vacant positions in `slab`, reused first.
    vacant: Vec<u32>,
    /// Slab positions, hashed by their entry's key: 4 bytes a bucket where a map from
    /// the key would take 16.
    by_key: HashTable<u32>,
    /// Each identity's positions, hashed by the identity of the first.
    by_identity: HashTable<Positions>,
    hasher: RandomState,
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

    fn first(&self) -> u32 {
        self.as_slice()[0]
    }
}

/// The entry at an indexed position: the indexes only hold occupied ones.
fn at(slab: &[Option<Entry>], pos: u32) -> &Entry {
    slab[pos as usize]
        .as_ref()
        .expect("indexed positions are occupied")
}

/// How `by_key` hashes a position: by its entry's key.
fn key_hash(hasher: &RandomState, slab: &[Option<Entry>], pos: u32) -> u64 {
    hasher.hash_one(&*at(slab, pos).key)
}

/// How `by_identity` hashes positions: by the identity of the first.
fn identity_hash(hasher: &RandomState, slab: &[Option<Entry>], ps: &Positions) -> u64 {
    hasher.hash_one(&*at(slab, ps.first()).identity)
}

/// A key as a resource carries it, to look one up without building a [`ResourceKey`]
/// (two strings) per resource of every snapshot. Same fields in the same order, and
/// `Option<&str>` and `&str` hash as `Option<String>` and `String` do: it hashes exactly
/// as the `ResourceKey` it stands for.
#[derive(Hash)]
struct KeyRef<'a> {
    rtype: ResourceType,
    mesh: Option<&'a str>,
    name: &'a str,
}

impl<'a> KeyRef<'a> {
    fn of(key: &'a ResourceKey) -> Self {
        Self {
            rtype: key.rtype,
            mesh: key.mesh.as_deref(),
            name: &key.name,
        }
    }

    fn of_resource(r: &'a Resource) -> Self {
        Self {
            rtype: r.rtype,
            mesh: r.mesh.as_deref(),
            name: &r.name,
        }
    }

    fn is(&self, key: &ResourceKey) -> bool {
        self.rtype == key.rtype && self.mesh == key.mesh.as_deref() && self.name == key.name
    }
}

impl Observed {
    /// Makes room for `more` entries at once: a snapshot's size is known before it is
    /// stored, and growing by doubling would leave the outgrown blocks behind.
    pub(super) fn reserve(&mut self, more: usize) {
        let more = more.saturating_sub(self.vacant.len());
        let Observed {
            slab,
            by_key,
            by_identity,
            hasher,
            ..
        } = self;
        slab.reserve_exact(more);
        by_key.reserve(more, |p| key_hash(hasher, slab, *p));
        by_identity.reserve(more, |ps| identity_hash(hasher, slab, ps));
    }

    fn position(&self, key: KeyRef<'_>) -> Option<u32> {
        let hash = self.hasher.hash_one(&key);
        self.by_key
            .find(hash, |p| key.is(&at(&self.slab, *p).key))
            .copied()
    }

    fn positions(&self, identity: &Identity) -> Option<&Positions> {
        let hash = self.hasher.hash_one(identity);
        self.by_identity
            .find(hash, |ps| *at(&self.slab, ps.first()).identity == *identity)
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
        let Observed {
            slab,
            by_key,
            by_identity,
            hasher,
            ..
        } = self;
        by_key.insert_unique(hasher.hash_one(&*key), pos, |p| key_hash(hasher, slab, *p));
        let hash = hasher.hash_one(&*identity);
        match by_identity.find_mut(hash, |ps| *at(slab, ps.first()).identity == *identity) {
            Some(positions) => {
                let mut all = positions.as_slice().to_vec();
                let i = all.partition_point(|p| *at(slab, *p).key < *key);
                all.insert(i, pos);
                *positions = Positions::Many(all.into_boxed_slice());
            }
            None => {
                by_identity.insert_unique(hash, Positions::One(pos), |ps| identity_hash(hasher, slab, ps));
            }
        }
        old
    }

    pub(super) fn remove(&mut self, key: &ResourceKey) -> Option<Entry> {
        let Observed {
            slab,
            by_key,
            by_identity,
            hasher,
            vacant,
            ..
        } = self;
        let (pos, _) = by_key
            .find_entry(hasher.hash_one(key), |p| *at(slab, *p).key == *key)
            .ok()?
            .remove();
        // The identity's positions are found while the entry is still in the slab: the
        // table's hash of them is the identity of their first.
        let hash = hasher.hash_one(&*at(slab, pos).identity);
        if let Ok(mut found) = by_identity.find_entry(hash, |ps| ps.as_slice().contains(&pos)) {
            let rest: Vec<u32> = found
                .get()
                .as_slice()
                .iter()
                .copied()
                .filter(|p| *p != pos)
                .collect();
            match rest.as_slice() {
                [] => {
                    found.remove();
                }
                [one] => *found.get_mut() = Positions::One(*one),
                _ => *found.get_mut() = Positions::Many(rest.into_boxed_slice()),
            }
        }
        let old = slab[pos as usize].take();
        vacant.push(pos);
        old
    }

    pub(super) fn get(&self, key: &ResourceKey) -> Option<&Entry> {
        self.position(KeyRef::of(key)).map(|p| at(&self.slab, p))
    }

    fn get_mut(&mut self, key: &ResourceKey) -> Option<&mut Entry> {
        let pos = self.position(KeyRef::of(key))?;
        self.slab[pos as usize].as_mut()
    }

    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &Arc<ResourceKey>> + '_ {
        self.values().map(|e| &e.key)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.slab.iter().flatten()
    }

    /// An identity's entries, with their keys, in key order.
    pub(super) fn entries<'a>(
        &'a self,
        identity: &Identity,
    ) -> impl Iterator<Item = (&'a Arc<ResourceKey>, &'a Entry)> + Clone + 'a {
        self.positions(identity)
            .map(Positions::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|p| {
                let e = at(&self.slab, *p);
                (&e.key, e)
            })
    }

    pub(super) fn identities(&self) -> impl Iterator<Item = &Arc<Identity>> + '_ {
        self.by_identity
            .iter()
            .map(|ps| &at(&self.slab, ps.first()).identity)
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
        self.position(KeyRef::of_resource(r))
            .is_some_and(|p| at(&self.slab, p).stored.is(r))
    }

    pub(super) fn holds(&self, identity: &Identity) -> bool {
        self.positions(identity).is_some()
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

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use kuma_model::{ResourceKey, ResourceType};

    use super::{KeyRef, RandomState};

    #[test]
    fn a_borrowed_key_hashes_as_the_key() {
        let hasher = RandomState::default();
        let rtype = ResourceType::from_name("MeshCircuitBreaker").unwrap();
        for mesh in [None, Some("default".to_owned()), Some(String::new())] {
            let key = ResourceKey {
                rtype,
                mesh,
                name: "cb-7b4d.kuma-system".into(),
            };
            assert_eq!(hasher.hash_one(&key), hasher.hash_one(KeyRef::of(&key)));
            assert!(KeyRef::of(&key).is(&key));
        }
    }
}
