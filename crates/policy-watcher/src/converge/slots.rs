//! The slots: which ones an observation touches, and keeping their findings and the
//! per-zone counts in step.
//!
//! A slot whose one finding is a synced copy (nearly every slot of a healthy mesh) is not
//! kept in the slot table: the copy's entry carries a `synced` flag instead, and the
//! finding is rebuilt from its key when someone needs it. At a million copies that is
//! the difference between ~700 bytes and none per slot (`docs/benchmarks.md`).

use std::sync::Arc;

use kuma_model::{CpRole, Identity, Origin, ResourceKey};

use super::{
    Cause, Direction, Engine, Finding, SlotChange, SlotKey, State,
    store::{Entry, Observed},
};

/// A slot as the engine indexes it: the public [`SlotKey`] with the identity shared, so
/// finding a slot allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct SlotId {
    pub(super) zone: Arc<str>,
    pub(super) direction: Direction,
    pub(super) identity: Arc<Identity>,
}

impl SlotId {
    pub(super) fn to_key(&self) -> SlotKey {
        SlotKey {
            zone: self.zone.clone(),
            direction: self.direction,
            identity: (*self.identity).clone(),
        }
    }
}

/// A slot's public key and its findings, kept together so [`Engine::slots`] can lend both.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) key: SlotKey,
    pub(super) findings: Vec<Finding>,
}

/// A slot's findings as an evaluation gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// One copy, under the expected name, with the source's spec: the common case, kept
    /// as a flag on the copy's entry.
    Synced(Arc<ResourceKey>),
    /// Anything else, possibly nothing.
    Findings(Vec<Finding>),
}

impl Outcome {
    pub(super) fn into_findings(self) -> Vec<Finding> {
        match self {
            Outcome::Synced(key) => vec![synced_finding(&key)],
            Outcome::Findings(f) => f,
        }
    }
}

fn synced_finding(key: &ResourceKey) -> Finding {
    Finding {
        state: State::Synced,
        name: key.name.clone(),
        copy: Some(key.clone()),
        cause: Cause::None,
    }
}

/// A slot whose findings just changed, as [`Engine::replace_with`] hands it over.
#[derive(Debug)]
pub struct Settled<'a> {
    id: &'a SlotId,
    before: Outcome,
    after: Outcome,
}

impl<'a> Settled<'a> {
    pub(super) fn new(id: &'a SlotId, before: Outcome, after: Outcome) -> Self {
        Self { id, before, after }
    }

    /// The change in full: the slot's key and its findings before and after.
    pub fn describe(self) -> SlotChange {
        SlotChange {
            slot: self.id.to_key(),
            before: self.before.into_findings(),
            after: self.after.into_findings(),
        }
    }
}

/// What one observation may have changed: the slots to re-evaluate, each once and in key
/// order so callers see changes in a stable order; the identities to release after; and
/// the entries it removed or replaced, released after re-evaluation because a removed
/// synced copy is its slot's state until then.
#[derive(Debug, Default)]
pub(super) struct Touched {
    pub(super) slots: Vec<SlotId>,
    pub(super) identities: Vec<Arc<Identity>>,
    pub(super) dropped: Vec<(SlotIdOrNone, Entry)>,
}

/// The slot a dropped entry was the synced copy of, if it was one.
pub(super) type SlotIdOrNone = Option<SlotId>;

impl Touched {
    pub(super) fn new(
        mut slots: Vec<SlotId>,
        identities: Vec<Arc<Identity>>,
        dropped: Vec<(SlotIdOrNone, Entry)>,
    ) -> Self {
        slots.sort();
        slots.dedup();
        Self {
            slots,
            identities,
            dropped,
        }
    }

    /// The synced copy `slot` had before the observation removed it.
    pub(super) fn ghost(&self, slot: &SlotId) -> Option<&Arc<ResourceKey>> {
        self.dropped
            .iter()
            .find(|(s, _)| s.as_ref() == Some(slot))
            .map(|(_, e)| &e.key)
    }
}

/// What a slot holds right now.
enum Current {
    /// In the slot table.
    Kept,
    Synced(Arc<ResourceKey>),
    Empty,
}

impl Engine {
    pub(super) fn index_origin(&mut self, identity: &Arc<Identity>) {
        let Origin::Zone(zone) = &identity.origin else {
            return;
        };
        let present = self.global.holds(identity);
        let set = self.by_origin_zone.entry(zone.clone()).or_default();
        if present {
            set.insert(identity.clone());
        } else {
            set.remove(&**identity);
            if set.is_empty() {
                self.by_origin_zone.remove(zone);
            }
        }
    }

    /// The slots of the global's resources that originate in `zone`: what a Zone
    /// resource appearing, disappearing or being disabled changes.
    pub(super) fn origin_zone_slots(&mut self, zone: &str) -> Touched {
        let identities: Vec<Arc<Identity>> = self
            .by_origin_zone
            .get(zone)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let mut slots = Vec::new();
        for identity in &identities {
            self.slots_of(&CpRole::Global, identity, &mut slots);
        }
        Touched::new(slots, Vec::new(), Vec::new())
    }

    /// The slots an identity observed on `cp` feeds.
    pub(super) fn slots_of(&mut self, cp: &CpRole, identity: &Arc<Identity>, out: &mut Vec<SlotId>) {
        let slot = |zone: Arc<str>, direction| SlotId {
            zone,
            direction,
            identity: identity.clone(),
        };
        match (cp, &identity.origin) {
            (CpRole::Global, Origin::Global) => {
                out.extend(
                    self.zone_names
                        .iter()
                        .map(|z| slot(z.clone(), Direction::GlobalToZone)),
                );
            }
            (CpRole::Global, Origin::Zone(origin)) => {
                out.push(slot(self.zone_name(origin), Direction::ZoneToGlobal));
                out.extend(
                    self.zone_names
                        .iter()
                        .filter(|z| ***z != **origin)
                        .map(|z| slot(z.clone(), Direction::GlobalToZone)),
                );
            }
            (CpRole::Zone(z), Origin::Zone(origin)) if z == origin => {
                out.push(slot(self.zone_name(z), Direction::ZoneToGlobal));
            }
            (CpRole::Zone(z), _) => out.push(slot(self.zone_name(z), Direction::GlobalToZone)),
        }
    }

    /// Every slot that `cp`'s first observation makes judgeable: all slots of `cp` (a
    /// zone) or of every observed zone (the global), as long as the other side has been
    /// observed too. Each once, in no particular order: sorting a million slot keys
    /// cost more than judging them.
    pub(super) fn slots_opened_by(&mut self, cp: &CpRole) -> Vec<SlotId> {
        let zones: Vec<usize> = match cp {
            CpRole::Global => (0..self.zones.len()).filter(|&i| self.zones[i].loaded).collect(),
            CpRole::Zone(z) if self.global.loaded => self.zone_index.get(z).copied().into_iter().collect(),
            CpRole::Zone(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        for i in zones {
            let (zone, name) = (&self.zone_names[i], &self.topology.zones[i].name);
            // An identity both sides hold is one slot: taken from the global's side.
            let zone_only = self.zones[i].identities().filter(|id| !self.global.holds(id));
            for identity in self.global.identities().chain(zone_only) {
                out.push({
                    let own = matches!(&identity.origin, Origin::Zone(o) if o == name);
                    SlotId {
                        zone: zone.clone(),
                        direction: if own {
                            Direction::ZoneToGlobal
                        } else {
                            Direction::GlobalToZone
                        },
                        identity: identity.clone(),
                    }
                });
            }
        }
        if *cp == CpRole::Global {
            // Zone-origin resources of zones nobody monitors are judged on the global alone.
            let unmonitored: Vec<Arc<Identity>> = self
                .global
                .identities()
                .filter(|id| matches!(&id.origin, Origin::Zone(o) if !self.zone_index.contains_key(o)))
                .cloned()
                .collect();
            for identity in unmonitored {
                if let Origin::Zone(origin) = &identity.origin {
                    let zone = self.zone_name(origin);
                    out.push(SlotId {
                        zone,
                        direction: Direction::ZoneToGlobal,
                        identity: identity.clone(),
                    });
                }
            }
        }
        out
    }

    /// The slot whose copy an entry of `cp` with `identity` is, if it is a copy at all.
    pub(super) fn copy_slot(&mut self, cp: &CpRole, identity: &Arc<Identity>) -> Option<SlotId> {
        let (zone, direction) = match (cp, &identity.origin) {
            (CpRole::Global, Origin::Global) => return None,
            (CpRole::Global, Origin::Zone(origin)) => (self.zone_name(origin), Direction::ZoneToGlobal),
            (CpRole::Zone(z), Origin::Zone(origin)) if z == origin => return None,
            (CpRole::Zone(z), _) => (self.zone_name(z), Direction::GlobalToZone),
        };
        Some(SlotId {
            zone,
            direction,
            identity: identity.clone(),
        })
    }

    /// Where a slot's copies are stored.
    fn copies_store(&self, id: &SlotId) -> Option<&Observed> {
        match id.direction {
            Direction::GlobalToZone => self.zone_index.get(&*id.zone).map(|&i| &self.zones[i]),
            Direction::ZoneToGlobal | Direction::Seed => Some(&self.global),
        }
    }

    fn flag_synced(&mut self, id: &SlotId, key: &ResourceKey, synced: bool) {
        let store = match id.direction {
            Direction::GlobalToZone => self.zone_index.get(&*id.zone).map(|&i| &mut self.zones[i]),
            Direction::ZoneToGlobal | Direction::Seed => Some(&mut self.global),
        };
        if let Some(store) = store {
            store.set_synced(key, &id.identity, synced);
        }
    }

    /// The findings of a slot in the table; a synced slot is not in it.
    pub(super) fn findings(&self, id: &SlotId) -> &[Finding] {
        self.slots.get(id).map_or(&[], |s| s.findings.as_slice())
    }

    /// Re-evaluates a slot, stores its new findings and keeps the counts in step. Returns
    /// the findings before and after, or `None` when they did not change.
    /// `ghost`: the synced copy the observation removed from this slot, if any.
    pub(super) fn settle(
        &mut self,
        id: &SlotId,
        ghost: Option<&Arc<ResourceKey>>,
    ) -> Option<(Outcome, Outcome)> {
        let after = self.evaluate(id);
        let current = if self.slots.contains_key(id) {
            Current::Kept
        } else if let Some(k) = ghost.or_else(|| self.copies_store(id)?.synced_copy(&id.identity)) {
            Current::Synced(k.clone())
        } else {
            Current::Empty
        };
        // The flag follows the synced copy even when nothing changed: a re-stored copy is
        // a new entry.
        if let Current::Synced(old) = &current
            && !matches!(&after, Outcome::Synced(k) if k == old)
        {
            self.flag_synced(id, old, false);
        }
        if let Outcome::Synced(k) = &after {
            self.flag_synced(id, k, true);
        }
        let unchanged = match (&current, &after) {
            (Current::Kept, Outcome::Findings(f)) => self.findings(id) == f.as_slice(),
            (Current::Synced(old), Outcome::Synced(k)) => old == k,
            (Current::Empty, Outcome::Findings(f)) => f.is_empty(),
            _ => false,
        };
        if unchanged {
            return None;
        }
        let rtype = id.identity.rtype;
        let kept = match &after {
            Outcome::Findings(f) if !f.is_empty() => Some(f.clone()),
            _ => None,
        };
        let before = match (current, kept) {
            (Current::Kept, Some(f)) => {
                let old = self
                    .slots
                    .get_mut(id)
                    .map(|s| std::mem::replace(&mut s.findings, f));
                Outcome::Findings(old.unwrap_or_default())
            }
            (Current::Kept, None) => {
                Outcome::Findings(self.slots.remove(id).map(|s| s.findings).unwrap_or_default())
            }
            (other, kept) => {
                if let Some(findings) = kept {
                    let slot = Slot {
                        key: id.to_key(),
                        findings,
                    };
                    self.slots.insert(id.clone(), Box::new(slot));
                }
                match other {
                    Current::Synced(k) => Outcome::Synced(k),
                    _ => Outcome::Findings(Vec::new()),
                }
            }
        };
        for state in states(&after) {
            *self.counts.entry((id.zone.clone(), rtype, state)).or_default() += 1;
        }
        for state in states(&before) {
            let key = (id.zone.clone(), rtype, state);
            if let Some(count) = self.counts.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.counts.remove(&key);
                }
            }
        }
        Some((before, after))
    }

    /// Lets go of what an observation dropped, once its slots are settled.
    pub(super) fn release_dropped(&mut self, dropped: Vec<(SlotIdOrNone, Entry)>) {
        for (_, entry) in dropped {
            let Entry { key, stored, .. } = entry;
            // The interner counts who still holds the key.
            drop(key);
            self.shared.release(&stored);
        }
    }
}

fn states(outcome: &Outcome) -> impl Iterator<Item = State> + '_ {
    let (synced, findings) = match outcome {
        Outcome::Synced(_) => (Some(State::Synced), &[][..]),
        Outcome::Findings(f) => (None, f.as_slice()),
    };
    synced.into_iter().chain(findings.iter().map(|f| f.state))
}

#[cfg(test)]
mod tests {
    use kuma_model::{Environment, Resource, ResourceType, labels};
    use serde_json::json;

    use crate::{Change, Engine, Selection, Topology, ZoneSpec};
    use kuma_model::CpRole;

    fn engine() -> Engine {
        let topology = Topology::new(
            Environment::Universal,
            vec![
                ZoneSpec::new("zone-1", Environment::Universal),
                ZoneSpec::new("zone-2", Environment::kubernetes()),
            ],
        );
        let mut e = Engine::new(topology, Selection::default());
        // Both zones read, empty: a zone never observed has no findings yet.
        for z in ["zone-1", "zone-2"] {
            e.load(&CpRole::Zone(z.into()), Vec::new());
        }
        e
    }

    fn mcb(name: &str) -> Resource {
        let rtype = ResourceType::from_name("MeshCircuitBreaker").unwrap();
        Resource::new(
            rtype,
            Some("default"),
            name,
            json!({"targetRef": {"kind": "Mesh"}}),
        )
        .with_label(labels::MESH, "default")
    }

    #[test]
    fn identities_are_forgotten_with_the_last_resource_and_slot() {
        let mut e = engine();
        let zone = CpRole::Zone("zone-1".into());
        let copy = mcb("cb-copy")
            .with_label(labels::ORIGIN, labels::ORIGIN_GLOBAL)
            .with_label(labels::DISPLAY_NAME, "cb");
        e.apply(&CpRole::Global, Change::Upsert(mcb("cb")));
        e.apply(&zone, Change::Upsert(copy.clone()));
        // One identity shared by the global's resource, the copy and both zones' slots.
        assert_eq!(e.identities.len(), 1);
        assert_eq!(e.slots.len(), 2);

        e.apply(&CpRole::Global, Change::Delete(mcb("cb").key()));
        assert_eq!(e.identities.len(), 1, "the orphaned copy still uses it");
        e.apply(&zone, Change::Delete(copy.key()));
        assert_eq!(e.identities.len(), 0);
        assert!(e.slots.is_empty());
        assert_eq!(e.counts().count(), 0);
    }

    #[test]
    fn an_unchanged_upsert_changes_nothing() {
        let mut e = engine();
        assert_eq!(e.apply(&CpRole::Global, Change::Upsert(mcb("cb"))).len(), 2);
        assert!(e.apply(&CpRole::Global, Change::Upsert(mcb("cb"))).is_empty());
        let edited = mcb("cb").with_label(labels::KDS_SYNC, "disabled");
        assert_eq!(e.apply(&CpRole::Global, Change::Upsert(edited)).len(), 2);
    }

    fn copy_of(src: &Resource, name: &str, spec: serde_json::Value) -> Resource {
        let mut copy = src.clone();
        copy.name = name.to_owned();
        copy.spec = spec;
        copy.with_label(labels::ORIGIN, labels::ORIGIN_GLOBAL)
            .with_label(labels::DISPLAY_NAME, &src.name)
    }

    #[test]
    fn copies_share_specs_yet_give_back_what_was_observed() {
        let mut e = engine();
        let (z1, z2) = (CpRole::Zone("zone-1".into()), CpRole::Zone("zone-2".into()));
        let src = mcb("cb");
        // Same meaning, different spelling: one fingerprint, two specs kept. Floats come
        // back bit for bit from the shared JSON.
        let a = copy_of(
            &src,
            "cb-a",
            json!({"default": {"interval": "1m", "ratio": 0.1 + 0.2}}),
        );
        let mut b = copy_of(&src, "cb-b", json!({"default": {"interval": "60s"}}));
        // Times are packed; they come back to the nanosecond, before 1970 too.
        b.creation_time = Some("1969-07-20T20:17:40.123456789Z".parse().unwrap());
        b.modification_time = Some("2026-01-02T03:04:05.000000001Z".parse().unwrap());
        e.apply(&z1, Change::Upsert(a.clone()));
        e.apply(&z2, Change::Upsert(a.clone()));
        e.apply(&z2, Change::Upsert(b.clone()));
        assert_eq!(e.shared.len(), (2, 1), "two spellings, one label set");
        assert_eq!(e.shared.keys_len(), 2, "cb-a is one key in both zones");
        assert_eq!(e.resource(&z1, &a.key()).as_deref(), Some(&a));
        assert_eq!(e.resource(&z2, &b.key()).as_deref(), Some(&b));
        assert_eq!(e.spec_of(&z2, &b.key()).as_deref(), Some(&b.spec));
        // An identical upsert is recognised although the copy is kept in parts.
        assert!(e.apply(&z1, Change::Upsert(a.clone())).is_empty());

        e.apply(&z1, Change::Delete(a.key()));
        assert_eq!(e.shared.len(), (2, 1), "zone-2 still holds both");
        e.apply(&z2, Change::Delete(a.key()));
        e.apply(&z2, Change::Delete(b.key()));
        assert_eq!(e.shared.len(), (0, 0));
        assert_eq!(e.shared.keys_len(), 0);
    }

    #[test]
    fn sources_share_their_spec_and_times_are_read_without_rebuilding() {
        let mut e = engine();
        let z1 = CpRole::Zone("zone-1".into());
        let when: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let mut copy = copy_of(&mcb("cb"), "cb-a", json!({}));
        copy.creation_time = Some(when);
        e.apply(&z1, Change::Upsert(copy.clone()));
        assert_eq!(e.modified_at(&z1, &copy.key()), Some(when));
        // A zone's own resource is a source: its labels are its own, its spec is shared
        // (and given back whole).
        let own = mcb("own").with_label(labels::ORIGIN, labels::ORIGIN_ZONE);
        e.apply(&z1, Change::Upsert(own.clone()));
        assert_eq!(e.shared.len(), (2, 1));
        assert_eq!(e.resource(&z1, &own.key()).as_deref(), Some(&own));
        // A global policy, its copy and `own` (same spec) share one.
        let src = mcb("cb");
        e.apply(&CpRole::Global, Change::Upsert(src.clone()));
        e.apply(&z1, Change::Upsert(copy_of(&src, "cb-b", src.spec.clone())));
        assert_eq!(e.shared.len(), (2, 1));
        assert_eq!(e.spec_of(&CpRole::Global, &src.key()).as_deref(), Some(&src.spec));
        e.apply(&CpRole::Global, Change::Delete(src.key()));
        e.apply(&z1, Change::Delete(own.key()));
        assert_eq!(e.shared.len(), (2, 1), "the copy still holds it");
        e.apply(&z1, Change::Delete(copy_of(&src, "cb-b", json!({})).key()));
        assert_eq!(e.shared.len(), (1, 1), "only cb-a's is left");
    }

    #[test]
    fn a_synced_slot_is_a_flag_and_its_change_is_still_described() {
        let mut e = engine();
        let z1 = CpRole::Zone("zone-1".into());
        let src = mcb("cb");
        let name = kuma_model::resource::expected_name_in_zone(
            &src,
            &Environment::Universal,
            &Environment::Universal,
        );
        let copy = copy_of(&src, &name, src.spec.clone());
        e.apply(&CpRole::Global, Change::Upsert(src.clone()));
        let changes = e.apply(&z1, Change::Upsert(copy.clone()));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].before[0].state, crate::State::Missing);
        assert_eq!(changes[0].after[0].state, crate::State::Synced);
        assert_eq!(changes[0].after[0].copy, Some(copy.key()));
        // Only zone-2's missing copy is a kept slot; zone-1's is a flag on the copy.
        assert_eq!(e.slots.len(), 1);
        assert_eq!(e.zone_state("zone-1"), crate::ZoneState::Converged);

        // The synced copy deleted: its finding before is rebuilt from what was removed.
        let changes = e.apply(&z1, Change::Delete(copy.key()));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].before[0].state, crate::State::Synced);
        assert_eq!(changes[0].before[0].copy, Some(copy.key()));
        assert_eq!(changes[0].after[0].state, crate::State::Missing);

        // Re-stored identically after a change of status: still synced, nothing to say.
        e.apply(&z1, Change::Upsert(copy.clone()));
        let mut touched = copy.clone();
        touched.status = Some(json!({"seen": true}));
        assert!(e.apply(&z1, Change::Upsert(touched.clone())).is_empty());
        assert_eq!(e.slots.len(), 1);
        // And the flag moved to the new entry: a later drift is seen as a change.
        let mut drifted = touched.clone();
        drifted.spec = json!({"other": 1});
        let changes = e.apply(&z1, Change::Upsert(drifted));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].before[0].state, crate::State::Synced);
        assert_eq!(changes[0].after[0].state, crate::State::Drifted);
        assert_eq!(e.slots.len(), 2);
    }
}
