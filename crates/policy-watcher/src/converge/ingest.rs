//! Taking observations in: storing what a control plane reported and settling the slots
//! it touched, one change at a time or a whole snapshot at once.

use std::sync::Arc;

use foldhash::HashSet as FastSet;
use kuma_model::{CpRole, Identity, Origin, Resource, ResourceKey, ResourceType};

use super::{
    Change, Engine, SlotChange,
    copies::Stored,
    slots::{self, Settled, Touched},
    store,
};

/// From how many leftovers on [`Engine::run`] frees them on a thread of their own.
const LEFTOVERS_OFF_THREAD: usize = 1024;

impl Engine {
    /// Applies one observation from `cp` and returns the slots whose findings changed.
    /// Observations from zones that are not in the topology are ignored.
    pub fn apply(&mut self, cp: &CpRole, change: Change) -> Vec<SlotChange> {
        let mut changes = Vec::new();
        self.run(cp, [change], &mut |_, c| changes.push(c.describe()));
        changes
    }

    /// Like [`Engine::apply`], but counts the slots that changed instead of describing
    /// each: for loading state nobody follows change by change (a cold start), it saves
    /// cloning every slot key and finding into a [`SlotChange`]. The engine ends in the
    /// same state.
    pub fn fold(&mut self, cp: &CpRole, change: Change) -> usize {
        let mut changed = 0;
        self.run(cp, [change], &mut |_, _| changed += 1);
        changed
    }

    /// Like [`Engine::replace`], but counts the slots that changed (see [`Engine::fold`]).
    pub fn load(&mut self, cp: &CpRole, resources: Vec<Resource>) -> usize {
        let mut changed = 0;
        self.replace_with(cp, resources, &mut |_, _| changed += 1);
        changed
    }

    /// [`Engine::load`] for a control plane's first observation handed over one resource
    /// at a time: `fill` gives each to the function it is passed, and each is stored in
    /// the engine's compact form at once, so the caller never holds the snapshot parsed
    /// (a parsed spec is many times its text; `verify` on a 200 MB file held 5 GB).
    /// Slots are judged once `fill` is done, as after `load`. If `fill` fails, `cp` is
    /// marked unreadable (its zones `unknown`, never judged on half a read) and the error
    /// returned. A control plane observed before is gathered and replaced as by `load`.
    pub fn load_each<E>(
        &mut self,
        cp: &CpRole,
        fill: impl FnOnce(&mut dyn FnMut(Resource)) -> Result<(), E>,
    ) -> Result<usize, E> {
        if self.store(cp).is_none_or(|store| store.loaded) {
            let mut resources = Vec::new();
            fill(&mut |r| resources.push(r))?;
            return Ok(self.load(cp, resources));
        }
        // A first observation: nothing is stale, and every slot is judged once at the end.
        let mut changed = 0;
        self.replace_each(cp, &|_| true, fill, &mut |_, _| changed += 1)?;
        Ok(changed)
    }

    /// [`Engine::replace_with`] for a snapshot handed over one resource at a time by
    /// `fill`, as [`Engine::load_each`] does for a first one; `present` says which keys
    /// the snapshot holds, so what it lacks is deleted first, as `replace_with` does. If
    /// `fill` fails, `cp` is marked unreadable (never judged on half a read, the rest
    /// applied or not) and the error returned.
    pub fn replace_each<E>(
        &mut self,
        cp: &CpRole,
        present: &dyn Fn(&ResourceKey) -> bool,
        fill: impl FnOnce(&mut dyn FnMut(Resource)) -> Result<(), E>,
        each: &mut dyn FnMut(&Engine, Settled<'_>),
    ) -> Result<(), E> {
        let Some(store) = self.store(cp) else {
            return fill(&mut drop);
        };
        let first = !store.loaded;
        let mut stale: Vec<ResourceKey> = store
            .keys()
            .filter(|k| !present(k))
            .map(|k| (**k).clone())
            .collect();
        stale.extend(self.stale_zones(cp, present));
        if first {
            self.open(cp);
        } else {
            self.settle_all(cp, stale.into_iter().map(Change::Delete), each);
        }
        let mut stored = 0usize;
        let filled = fill(&mut |r| {
            let touched = self.observe(cp, Change::Upsert(r));
            if !first {
                for id in &touched.slots {
                    if self.judged(id)
                        && let Some((before, after)) = self.settle(id, touched.ghost(id))
                    {
                        each(self, Settled::new(id, before, after));
                    }
                }
            }
            self.release(touched);
            // What the engine does not keep of each resource (its parsed spec, ~7 KiB)
            // is freed as it goes: held to the end, it is the whole snapshot parsed again.
            stored += 1;
            if stored.is_multiple_of(LEFTOVERS_OFF_THREAD) {
                drop(self.shared.take_leftovers());
            }
        });
        // A first read that failed half-way still opened `cp`: what it did hold is judged,
        // or slots it never touched (a copy missing from it) would stay unjudged through
        // every later read, which settles only the slots it touches.
        if first {
            self.judge_opened(cp, each);
        }
        if let Err(e) = filled {
            self.set_readable(cp, false);
            return Err(e);
        }
        drop(self.shared.take_leftovers());
        Ok(())
    }

    /// Folds a whole snapshot of one control plane in: what is absent from `resources`
    /// but was known is deleted. Returns the slots that changed.
    pub fn replace(&mut self, cp: &CpRole, resources: Vec<Resource>) -> Vec<SlotChange> {
        let mut changes = Vec::new();
        self.replace_with(cp, resources, &mut |_, c| changes.push(c.describe()));
        changes
    }

    /// Like [`Engine::replace`], handing each changed slot to `each` as it settles, with
    /// the engine as it is at that moment. A first read can change a million slots:
    /// this keeps their descriptions from all being held at once.
    pub fn replace_with(
        &mut self,
        cp: &CpRole,
        resources: Vec<Resource>,
        each: &mut dyn FnMut(&Engine, Settled<'_>),
    ) {
        let Some(stale) = self.stale_keys(cp, &resources) else {
            return;
        };
        if let Some(store) = self.store_mut(cp) {
            store.reserve(resources.len().saturating_sub(store.len()));
        }
        let changes = stale
            .into_iter()
            .map(Change::Delete)
            .chain(resources.into_iter().map(Change::Upsert));
        self.run(cp, changes, each);
    }

    /// Stores `changes` of `cp` and settles the slots they touch.
    ///
    /// A slot is judged only once both its control planes have been observed: before a
    /// zone's first read every global policy would look missing there (a million
    /// findings at 100 zones, made only to be undone), and the zone is `unknown`
    /// meanwhile anyway. The first observation of a control plane therefore stores all
    /// of it, then judges every slot it opens once.
    pub(super) fn run(
        &mut self,
        cp: &CpRole,
        changes: impl IntoIterator<Item = Change>,
        each: &mut dyn FnMut(&Engine, Settled<'_>),
    ) {
        self.settle_all(cp, changes, each);
        let leftovers = self.shared.take_leftovers();
        // A snapshot's worth of parsed specs is freed on another thread: on a cold start
        // that is half the time, and the caller (the monitor, under its lock) has no use
        // for it. A single change's is not worth a thread.
        if leftovers.len() >= LEFTOVERS_OFF_THREAD {
            let spawned = std::thread::Builder::new()
                .name("kuma-sync-free".into())
                .spawn(move || drop(leftovers));
            if let Err(error) = spawned {
                tracing::debug!(%error, "freeing a snapshot's leftovers inline");
            }
        }
    }

    pub(super) fn settle_all(
        &mut self,
        cp: &CpRole,
        changes: impl IntoIterator<Item = Change>,
        each: &mut dyn FnMut(&Engine, Settled<'_>),
    ) {
        if self.open(cp) {
            for change in changes {
                // Nothing that involves `cp` has been judged: no slot to settle yet.
                let touched = self.observe(cp, change);
                self.release(touched);
            }
            self.judge_opened(cp, each);
            return;
        }
        for change in changes {
            let touched = self.observe(cp, change);
            for id in &touched.slots {
                if !self.judged(id) {
                    continue;
                }
                if let Some((before, after)) = self.settle(id, touched.ghost(id)) {
                    each(self, Settled::new(id, before, after));
                }
            }
            self.release(touched);
        }
    }

    /// Judges every slot `cp`'s first observation opened, once it is all stored.
    fn judge_opened(&mut self, cp: &CpRole, each: &mut dyn FnMut(&Engine, Settled<'_>)) {
        for id in self.slots_opened_by(cp) {
            if let Some((before, after)) = self.settle(&id, None) {
                each(self, Settled::new(&id, before, after));
            }
        }
    }

    /// Marks `cp` observed; true the first time.
    pub(super) fn open(&mut self, cp: &CpRole) -> bool {
        match self.store_mut(cp) {
            Some(store) if !store.loaded => {
                store.loaded = true;
                self.revision += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether both control planes of a slot have been observed.
    pub(super) fn judged(&self, id: &slots::SlotId) -> bool {
        self.global.loaded
            && self
                .zone_index
                .get(&*id.zone)
                .is_none_or(|&i| self.zones[i].loaded)
    }

    /// Stores one observation and says which slots it may have changed.
    pub(super) fn observe(&mut self, cp: &CpRole, change: Change) -> Touched {
        let mut identities: Vec<Arc<Identity>> = Vec::new();
        let mut dropped = Vec::new();
        match change {
            Change::Upsert(r) if *cp == CpRole::Global && r.rtype.name() == "Zone" => {
                let enabled = r.spec.get("enabled").and_then(|v| v.as_bool()).unwrap_or(true);
                if self.zones_enabled.insert(r.name.clone(), enabled) != Some(enabled) {
                    self.revision += 1;
                }
                return self.origin_zone_slots(&r.name);
            }
            Change::Delete(key) if *cp == CpRole::Global && key.rtype.name() == "Zone" => {
                if self.zones_enabled.remove(&key.name).is_some() {
                    self.revision += 1;
                }
                return self.origin_zone_slots(&key.name);
            }
            Change::Upsert(mut r) => {
                let Some(store) = self.store(cp) else {
                    return Touched::default();
                };
                // Only zone proxies are pinned: their origin is worked out only for them, not
                // for each of a million policies of a cold start.
                if let CpRole::Zone(zone) = cp
                    && kuma_model::resource::pins_zone(r.rtype)
                    && matches!(r.origin(cp), Origin::Zone(ref o) if o == zone)
                {
                    kuma_model::resource::pin_zone_fields(&mut r, zone);
                }
                if !self.selection.selects(&r) {
                    // A resource that left the selection (say, its mesh changed) must not linger.
                    let Some(old) = self.store_mut(cp).and_then(|s| s.remove(&r.key())) else {
                        return Touched::default();
                    };
                    identities.push(old.identity.clone());
                    dropped.push(old);
                } else if store.unchanged(&r) {
                    // A re-listed snapshot repeats what is known: the slots are current.
                    return Touched::default();
                } else {
                    let identity = self.identities.intern(r.identity(cp));
                    let (key, stored) = self.keep(cp, &identity, r);
                    let old = self
                        .store_mut(cp)
                        .and_then(|s| s.insert(key, stored, identity.clone()));
                    if let Some(old) = old {
                        if old.identity != identity {
                            identities.push(old.identity.clone());
                        }
                        dropped.push(old);
                    }
                    identities.push(identity);
                }
            }
            Change::Delete(key) => {
                let Some(old) = self.store_mut(cp).and_then(|s| s.remove(&key)) else {
                    return Touched::default();
                };
                identities.push(old.identity.clone());
                dropped.push(old);
            }
        }
        self.revision += 1;
        let dropped = dropped
            .into_iter()
            .map(|entry: store::Entry| {
                let slot = if entry.stored.synced() {
                    self.copy_slot(cp, &entry.identity)
                } else {
                    None
                };
                (slot, entry)
            })
            .collect();
        let mut slots = Vec::new();
        for identity in &identities {
            if *cp == CpRole::Global {
                self.index_origin(identity);
            }
            self.slots_of(cp, identity, &mut slots);
        }
        Touched::new(slots, identities, dropped)
    }

    /// How `r` is stored: a zone's copy of another control plane's resource in parts
    /// shared with the other copies, a source (the global's, a zone's own) whole.
    pub(super) fn keep(
        &mut self,
        cp: &CpRole,
        identity: &Identity,
        mut r: Resource,
    ) -> (Arc<ResourceKey>, Stored) {
        let copy = matches!(cp, CpRole::Zone(z) if !matches!(&identity.origin, Origin::Zone(o) if o == z));
        if copy {
            // The copy keeps its name in the shared key only.
            let key = ResourceKey {
                rtype: r.rtype,
                mesh: r.mesh.take(),
                name: std::mem::take(&mut r.name),
            };
            let key = self.shared.key(key);
            let stored = self.shared.copy(r, key.clone());
            return (key, stored);
        }
        let key = Arc::new(r.key());
        let expected_in_zone = self.expected_in_zone(cp, &r);
        (key, self.shared.source(r, expected_in_zone, self.topology.kuma))
    }

    /// Lets go of what the observation dropped, and lets the interner forget identities
    /// it left unused.
    pub(super) fn release(&mut self, touched: Touched) {
        let Touched {
            slots,
            identities,
            dropped,
        } = touched;
        // The slots' handles first: the interner counts who still holds an identity.
        drop(slots);
        self.release_dropped(dropped);
        for identity in identities {
            self.identities.release(identity);
        }
    }

    /// Keys `cp` holds that `resources` lacks, or `None` for an unmonitored zone.
    /// The Zones a global snapshot no longer holds. The engine keeps the global's Zones
    /// apart from its store (only whether each is enabled), so the store's keys alone
    /// would never say that a zone was deleted.
    fn stale_zones(&self, cp: &CpRole, present: &dyn Fn(&ResourceKey) -> bool) -> Vec<ResourceKey> {
        let Some(zone_type) = ResourceType::from_name("Zone").filter(|_| *cp == CpRole::Global) else {
            return Vec::new();
        };
        self.zones_enabled
            .keys()
            .map(|name| ResourceKey {
                rtype: zone_type,
                mesh: None,
                name: name.clone(),
            })
            .filter(|key| !present(key))
            .collect()
    }

    pub(super) fn stale_keys(&self, cp: &CpRole, resources: &[Resource]) -> Option<Vec<ResourceKey>> {
        let store = self.store(cp)?;
        if *cp == CpRole::Global && !self.zones_enabled.is_empty() {
            let zones: FastSet<&str> = resources
                .iter()
                .filter(|r| r.rtype.name() == "Zone")
                .map(|r| r.name.as_str())
                .collect();
            let mut stale = self.stale_zones(cp, &|key| zones.contains(key.name.as_str()));
            stale.extend(self.stale_store_keys(store, resources));
            return Some(stale);
        }
        Some(self.stale_store_keys(store, resources))
    }

    fn stale_store_keys(&self, store: &store::Observed, resources: &[Resource]) -> Vec<ResourceKey> {
        if store.len() == 0 {
            return Vec::new();
        }
        // Borrowed keys: a snapshot can hold a million resources.
        let incoming: FastSet<(ResourceType, Option<&str>, &str)> = resources
            .iter()
            .map(|r| (r.rtype, r.mesh.as_deref(), r.name.as_str()))
            .collect();
        store
            .keys()
            .filter(|k| !incoming.contains(&(k.rtype, k.mesh.as_deref(), k.name.as_str())))
            .map(|k| (**k).clone())
            .collect()
    }
}
