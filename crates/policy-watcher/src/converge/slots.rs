//! The slots: which ones an observation touches, and keeping their findings and the
//! per-zone counts in step.

use std::sync::Arc;

use kuma_model::{CpRole, Identity, Origin};

use super::{Direction, Engine, Finding, SlotChange, SlotKey};

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

/// What one observation may have changed: the slots to re-evaluate, each once and in key
/// order so callers see changes in a stable order, and the identities to release after.
#[derive(Debug, Default)]
pub(super) struct Touched {
    pub(super) slots: Vec<SlotId>,
    pub(super) identities: Vec<Arc<Identity>>,
}

impl Touched {
    pub(super) fn new(mut slots: Vec<SlotId>, identities: Vec<Arc<Identity>>) -> Self {
        slots.sort();
        slots.dedup();
        Self { slots, identities }
    }
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
        Touched::new(slots, Vec::new())
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

    /// Re-evaluates a slot and describes the change, if any.
    pub(super) fn reevaluate(&mut self, id: SlotId) -> Option<SlotChange> {
        let after = self.evaluate(&id);
        if self.findings(&id) == after.as_slice() {
            return None;
        }
        let (before, removed) = self.settle(&id, after.clone());
        let slot = match removed {
            Some(key) => key,
            None => self.slots.get(&id)?.key.clone(),
        };
        Some(SlotChange { slot, before, after })
    }

    /// Re-evaluates a slot; true when its findings changed.
    pub(super) fn refresh(&mut self, id: &SlotId) -> bool {
        let after = self.evaluate(id);
        if self.findings(id) == after.as_slice() {
            return false;
        }
        self.settle(id, after);
        true
    }

    pub(super) fn findings(&self, id: &SlotId) -> &[Finding] {
        self.slots.get(id).map_or(&[], |s| s.findings.as_slice())
    }

    /// Stores a slot's new findings (dropping the slot when there are none) and keeps the
    /// counts in step. Returns the findings before and, for a dropped slot, its key.
    pub(super) fn settle(&mut self, id: &SlotId, after: Vec<Finding>) -> (Vec<Finding>, Option<SlotKey>) {
        let rtype = id.identity.rtype;
        for f in &after {
            *self.counts.entry((id.zone.clone(), rtype, f.state)).or_default() += 1;
        }
        let (before, removed) = match self.slots.get_mut(id) {
            Some(slot) if !after.is_empty() => (std::mem::replace(&mut slot.findings, after), None),
            Some(_) => match self.slots.remove(id) {
                Some(slot) => (slot.findings, Some(slot.key)),
                None => (Vec::new(), None),
            },
            None if after.is_empty() => (Vec::new(), None),
            None => {
                let slot = Slot {
                    key: id.to_key(),
                    findings: after,
                };
                self.slots.insert(id.clone(), Box::new(slot));
                (Vec::new(), None)
            }
        };
        for f in &before {
            let key = (id.zone.clone(), rtype, f.state);
            if let Some(count) = self.counts.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.counts.remove(&key);
                }
            }
        }
        (before, removed)
    }
}

#[cfg(test)]
mod tests {
    use kuma_model::{Environment, Resource, ResourceType, labels};
    use serde_json::json;

    use crate::{Change, Engine, Selection, Topology, ZoneSpec};
    use kuma_model::CpRole;

    fn engine() -> Engine {
        let topology = Topology {
            global: Environment::Universal,
            zones: vec![
                ZoneSpec::new("zone-1", Environment::Universal),
                ZoneSpec::new("zone-2", Environment::kubernetes()),
            ],
        };
        Engine::new(topology, Selection::default())
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
        // Same meaning, different spelling: one fingerprint, two specs kept.
        let a = copy_of(&src, "cb-a", json!({"default": {"interval": "1m"}}));
        let b = copy_of(&src, "cb-b", json!({"default": {"interval": "60s"}}));
        e.apply(&z1, Change::Upsert(a.clone()));
        e.apply(&z2, Change::Upsert(a.clone()));
        e.apply(&z2, Change::Upsert(b.clone()));
        assert_eq!(e.shared.len(), (2, 1), "two spellings, one label set");
        assert_eq!(e.resource(&z1, &a.key()), Some(&a));
        assert_eq!(e.resource(&z2, &b.key()), Some(&b));
        assert_eq!(e.spec_of(&z2, &b.key()), Some(&b.spec));
        // An identical upsert is recognised although the copy is kept in parts.
        assert!(e.apply(&z1, Change::Upsert(a.clone())).is_empty());

        e.apply(&z1, Change::Delete(a.key()));
        assert_eq!(e.shared.len(), (2, 1), "zone-2 still holds both");
        e.apply(&z2, Change::Delete(a.key()));
        e.apply(&z2, Change::Delete(b.key()));
        assert_eq!(e.shared.len(), (0, 0));
    }

    #[test]
    fn sources_are_kept_whole_and_times_are_read_without_rebuilding() {
        let mut e = engine();
        let z1 = CpRole::Zone("zone-1".into());
        let when: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let mut copy = copy_of(&mcb("cb"), "cb-a", json!({}));
        copy.creation_time = Some(when);
        e.apply(&z1, Change::Upsert(copy.clone()));
        assert_eq!(e.modified_at(&z1, &copy.key()), Some(when));
        // A zone's own resource is a source: not shared.
        let own = mcb("own").with_label(labels::ORIGIN, labels::ORIGIN_ZONE);
        e.apply(&z1, Change::Upsert(own.clone()));
        assert_eq!(e.shared.len(), (1, 1));
        assert_eq!(e.resource(&z1, &own.key()), Some(&own));
    }
}
