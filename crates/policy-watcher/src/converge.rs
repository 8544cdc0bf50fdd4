//! The incremental convergence engine.
//!
//! Every observation (an upsert or delete on one control plane) touches one [`Identity`].
//! The engine re-evaluates only the *slots* that identity feeds, a slot being one
//! (zone, direction, identity) triple, so a change on the global costs O(zones) and a
//! change in a zone O(1), whatever the total size. A full compare is a fold of upserts.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use kuma_model::{
    CpRole, Fingerprint, Identity, Origin, Resource, ResourceKey, ResourceType, fingerprint,
    resource::{expected_name_in_zone, expected_name_on_global},
};
use serde::Serialize;

use crate::{
    sync_rules::{NotSent, global_sends},
    topology::{Selection, Topology, ZoneSpec},
};

/// Which way a copy travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// The global's resource (or another zone's, through the global) copied into a zone.
    GlobalToZone,
    /// A zone's own resource copied to the global.
    ZoneToGlobal,
    /// A resource of a zone's pre-federation `kumactl export` that must be on the global
    /// (the seed guide's check); only `verify --export` produces it.
    Seed,
}

/// The state of one observed or expected copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Present under the expected name with the source's spec.
    Synced,
    /// Expected and absent.
    Missing,
    /// Present under the expected name with a different spec.
    Drifted,
    /// A copy whose source is gone, or that the global no longer sends.
    Orphaned,
    /// A copy nobody expects: a duplicate by identity, a stray name, or a zone-origin
    /// resource for a zone that does not exist.
    Unexpected,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Synced,
        State::Missing,
        State::Drifted,
        State::Orphaned,
        State::Unexpected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Synced => "synced",
            State::Missing => "missing",
            State::Drifted => "drifted",
            State::Orphaned => "orphaned",
            State::Unexpected => "unexpected",
        }
    }
}

/// Why a copy is not synced, in terms an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Synced; nothing to say.
    None,
    /// No copy under the expected name.
    Absent,
    /// The copy's spec differs from the source's.
    SpecDiffers { source: Fingerprint, copy: Fingerprint },
    /// The source was deleted.
    SourceGone,
    /// The source exists but is not sent to this zone.
    NotSent(NotSent),
    /// A second copy of one identity; `expected` is the name the real copy has.
    Duplicate { expected: String },
    /// The zone of origin is neither monitored nor a Zone on the global.
    UnknownZone,
}

/// One row of the verdict for a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub state: State,
    /// The observed copy's name, or the expected name when it is missing.
    pub name: String,
    /// The observed copy's key, when there is one.
    pub copy: Option<ResourceKey>,
    pub cause: Cause,
}

/// Where a finding belongs: which zone, which way, which logical resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotKey {
    /// A monitored zone, or for zone-to-global slots any zone named by an origin label.
    pub zone: Arc<str>,
    pub direction: Direction,
    pub identity: Identity,
}

/// A slot whose findings changed after one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotChange {
    pub slot: SlotKey,
    pub before: Vec<Finding>,
    pub after: Vec<Finding>,
}

/// One control plane's observed resources.
#[derive(Debug, Default)]
struct Observed {
    by_key: HashMap<ResourceKey, Entry>,
    /// Keys sorted, so the choice among duplicates does not depend on arrival order.
    by_identity: HashMap<Identity, Vec<ResourceKey>>,
}

#[derive(Debug)]
struct Entry {
    resource: Resource,
    identity: Identity,
    fingerprint: Fingerprint,
}

impl Observed {
    fn insert(&mut self, resource: Resource, identity: Identity) -> Option<Entry> {
        let key = resource.key();
        let old = self.remove(&key);
        let keys = self.by_identity.entry(identity.clone()).or_default();
        if let Err(pos) = keys.binary_search(&key) {
            keys.insert(pos, key.clone());
        }
        let fingerprint = fingerprint(&resource.spec);
        self.by_key.insert(
            key,
            Entry {
                resource,
                identity,
                fingerprint,
            },
        );
        old
    }

    fn remove(&mut self, key: &ResourceKey) -> Option<Entry> {
        let old = self.by_key.remove(key)?;
        if let Some(keys) = self.by_identity.get_mut(&old.identity) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_identity.remove(&old.identity);
            }
        }
        Some(old)
    }

    fn entries<'a>(&'a self, identity: &Identity) -> impl Iterator<Item = &'a Entry> + 'a {
        self.by_identity
            .get(identity)
            .into_iter()
            .flatten()
            .filter_map(|k| self.by_key.get(k))
    }
}

/// The convergence state of a global and its zones.
#[derive(Debug)]
pub struct Engine {
    topology: Topology,
    selection: Selection,
    global: Observed,
    zones: Vec<Observed>,
    zone_index: HashMap<String, usize>,
    /// Interned zone names, so slot keys share one allocation per zone.
    zone_names: HashMap<String, Arc<str>>,
    /// Zone resources held by the global, with their `enabled` flag.
    zones_enabled: BTreeMap<String, bool>,
    /// Identities on the global that originate in each zone: what to re-evaluate when a
    /// Zone appears, disappears or is disabled.
    by_origin_zone: HashMap<String, HashSet<Identity>>,
    slots: HashMap<SlotKey, Vec<Finding>>,
    /// Control planes whose last read failed: their zones are `unknown`, never converged.
    unreadable: HashSet<CpRole>,
    /// Findings per (zone, type, state), kept current so metrics never walk the slots.
    counts: HashMap<(Arc<str>, ResourceType, State), usize>,
}

/// The verdict for a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneState {
    /// Every expected copy is synced in both directions, and nothing else is there.
    Converged,
    /// At least one copy is missing, drifted, orphaned or unexpected.
    Diverged,
    /// The zone or the global could not be read: no verdict.
    Unknown,
}

impl ZoneState {
    pub const ALL: [ZoneState; 3] = [ZoneState::Converged, ZoneState::Diverged, ZoneState::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            ZoneState::Converged => "converged",
            ZoneState::Diverged => "diverged",
            ZoneState::Unknown => "unknown",
        }
    }
}

/// What one control plane reported.
#[derive(Debug, Clone)]
pub enum Change {
    Upsert(Resource),
    Delete(ResourceKey),
}

impl Engine {
    pub fn new(topology: Topology, selection: Selection) -> Self {
        let zone_index = topology
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| (z.name.clone(), i))
            .collect();
        let zones = topology.zones.iter().map(|_| Observed::default()).collect();
        let mut engine = Self {
            topology,
            selection,
            global: Observed::default(),
            zones,
            zone_index,
            zone_names: HashMap::new(),
            zones_enabled: BTreeMap::new(),
            by_origin_zone: HashMap::new(),
            slots: HashMap::new(),
            unreadable: HashSet::new(),
            counts: HashMap::new(),
        };
        for z in engine.topology.zones.clone() {
            engine.intern(&z.name);
        }
        engine
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// Applies one observation from `cp` and returns the slots whose findings changed.
    /// Observations from zones that are not in the topology are ignored.
    pub fn apply(&mut self, cp: &CpRole, change: Change) -> Vec<SlotChange> {
        let mut touched: Vec<(CpRole, Identity)> = Vec::new();
        match change {
            Change::Upsert(r) if *cp == CpRole::Global && r.rtype.name() == "Zone" => {
                let enabled = r.spec.get("enabled").and_then(|v| v.as_bool()).unwrap_or(true);
                self.zones_enabled.insert(r.name.clone(), enabled);
                return self.reevaluate_origin_zone(&r.name);
            }
            Change::Delete(key) if *cp == CpRole::Global && key.rtype.name() == "Zone" => {
                self.zones_enabled.remove(&key.name);
                return self.reevaluate_origin_zone(&key.name);
            }
            Change::Upsert(r) => {
                let selected = self.selection.selects(&r);
                let Some(store) = self.store_mut(cp) else {
                    return Vec::new();
                };
                if !selected {
                    // A resource that left the selection (say, its mesh changed) must not linger.
                    let Some(old) = store.remove(&r.key()) else {
                        return Vec::new();
                    };
                    touched.push((cp.clone(), old.identity));
                } else {
                    let identity = r.identity(cp);
                    if let Some(old) = store.insert(r, identity.clone())
                        && old.identity != identity
                    {
                        touched.push((cp.clone(), old.identity));
                    }
                    touched.push((cp.clone(), identity));
                }
            }
            Change::Delete(key) => {
                let Some(old) = self.store_mut(cp).and_then(|s| s.remove(&key)) else {
                    return Vec::new();
                };
                touched.push((cp.clone(), old.identity));
            }
        }
        let mut slots = Vec::new();
        for (cp, identity) in touched {
            if cp == CpRole::Global {
                self.index_origin(&identity);
            }
            self.slots_of(&cp, &identity, &mut slots);
        }
        slots.sort();
        slots.dedup();
        slots.into_iter().filter_map(|s| self.reevaluate(s)).collect()
    }

    /// Folds a whole snapshot of one control plane in: what is absent from `resources`
    /// but was known is deleted. Returns the slots that changed.
    pub fn replace(&mut self, cp: &CpRole, resources: Vec<Resource>) -> Vec<SlotChange> {
        let incoming: HashSet<ResourceKey> = resources.iter().map(Resource::key).collect();
        let stale: Vec<ResourceKey> = match self.store(cp) {
            Some(store) => store
                .by_key
                .keys()
                .filter(|k| !incoming.contains(*k))
                .cloned()
                .collect(),
            None => return Vec::new(),
        };
        let mut changes = Vec::new();
        for key in stale {
            changes.extend(self.apply(cp, Change::Delete(key)));
        }
        for r in resources {
            changes.extend(self.apply(cp, Change::Upsert(r)));
        }
        changes
    }

    fn store(&self, cp: &CpRole) -> Option<&Observed> {
        match cp {
            CpRole::Global => Some(&self.global),
            CpRole::Zone(z) => self.zone_index.get(z).map(|&i| &self.zones[i]),
        }
    }

    fn store_mut(&mut self, cp: &CpRole) -> Option<&mut Observed> {
        match cp {
            CpRole::Global => Some(&mut self.global),
            CpRole::Zone(z) => self.zone_index.get(z).map(|&i| &mut self.zones[i]),
        }
    }

    fn intern(&mut self, zone: &str) -> Arc<str> {
        self.zone_names
            .entry(zone.to_owned())
            .or_insert_with(|| Arc::from(zone))
            .clone()
    }

    fn index_origin(&mut self, identity: &Identity) {
        let Origin::Zone(zone) = &identity.origin else {
            return;
        };
        let present = self.global.by_identity.contains_key(identity);
        let set = self.by_origin_zone.entry(zone.clone()).or_default();
        if present {
            set.insert(identity.clone());
        } else {
            set.remove(identity);
            if set.is_empty() {
                self.by_origin_zone.remove(zone);
            }
        }
    }

    fn reevaluate_origin_zone(&mut self, zone: &str) -> Vec<SlotChange> {
        let identities: Vec<Identity> = self
            .by_origin_zone
            .get(zone)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let mut slots = Vec::new();
        for identity in &identities {
            self.slots_of(&CpRole::Global, identity, &mut slots);
        }
        slots.sort();
        slots.dedup();
        slots.into_iter().filter_map(|s| self.reevaluate(s)).collect()
    }

    /// The slots an identity observed on `cp` feeds.
    fn slots_of(&mut self, cp: &CpRole, identity: &Identity, out: &mut Vec<SlotKey>) {
        let mut push = |engine: &mut Self, zone: &str, direction| {
            let zone = engine.intern(zone);
            out.push(SlotKey {
                zone,
                direction,
                identity: identity.clone(),
            });
        };
        match (cp, &identity.origin) {
            (CpRole::Global, Origin::Global) => {
                for z in self.zone_list() {
                    push(self, &z, Direction::GlobalToZone);
                }
            }
            (CpRole::Global, Origin::Zone(origin)) => {
                push(self, origin, Direction::ZoneToGlobal);
                for z in self.zone_list() {
                    if z != *origin {
                        push(self, &z, Direction::GlobalToZone);
                    }
                }
            }
            (CpRole::Zone(z), Origin::Zone(origin)) if z == origin => push(self, z, Direction::ZoneToGlobal),
            (CpRole::Zone(z), _) => push(self, z, Direction::GlobalToZone),
        }
    }

    fn zone_list(&self) -> Vec<String> {
        self.topology.zones.iter().map(|z| z.name.clone()).collect()
    }

    fn zone_spec(&self, zone: &str) -> Option<(&ZoneSpec, &Observed)> {
        self.zone_index
            .get(zone)
            .map(|&i| (&self.topology.zones[i], &self.zones[i]))
    }

    fn reevaluate(&mut self, slot: SlotKey) -> Option<SlotChange> {
        let after = self.evaluate(&slot);
        let before = if after.is_empty() {
            self.slots.remove(&slot).unwrap_or_default()
        } else {
            self.slots.insert(slot.clone(), after.clone()).unwrap_or_default()
        };
        if before == after {
            return None;
        }
        for (findings, delta) in [(&before, -1isize), (&after, 1)] {
            for f in findings {
                let key = (slot.zone.clone(), slot.identity.rtype, f.state);
                let count = self.counts.entry(key.clone()).or_default();
                *count = count.saturating_add_signed(delta);
                if *count == 0 {
                    self.counts.remove(&key);
                }
            }
        }
        Some(SlotChange { slot, before, after })
    }

    fn evaluate(&self, slot: &SlotKey) -> Vec<Finding> {
        match slot.direction {
            Direction::GlobalToZone => self.evaluate_global_to_zone(slot),
            Direction::ZoneToGlobal => self.evaluate_zone_to_global(slot),
            Direction::Seed => Vec::new(),
        }
    }

    fn evaluate_global_to_zone(&self, slot: &SlotKey) -> Vec<Finding> {
        let Some((spec, zone)) = self.zone_spec(&slot.zone) else {
            return Vec::new();
        };
        let source = self.global.entries(&slot.identity).next();
        let copies: Vec<&Entry> = zone.entries(&slot.identity).collect();
        let decision = source.map(|s| global_sends(&s.resource, &spec.name, &self.zones_enabled));
        match (source, decision) {
            (Some(source), Some(Ok(()))) => {
                let expected =
                    expected_name_in_zone(&source.resource, &self.topology.global, &spec.environment);
                match_copies(source, expected, &copies)
            }
            (_, decision) => {
                let cause = match decision {
                    Some(Err(not_sent)) => Cause::NotSent(not_sent),
                    _ => Cause::SourceGone,
                };
                copies
                    .iter()
                    .map(|c| finding(State::Orphaned, c, cause.clone()))
                    .collect()
            }
        }
    }

    fn evaluate_zone_to_global(&self, slot: &SlotKey) -> Vec<Finding> {
        let on_global: Vec<&Entry> = self.global.entries(&slot.identity).collect();
        let Some((spec, zone)) = self.zone_spec(&slot.zone) else {
            if self.zones_enabled.contains_key(&*slot.zone) {
                // Known to the global but not monitored: nothing can be said either way.
                return Vec::new();
            }
            return on_global
                .iter()
                .map(|c| finding(State::Unexpected, c, Cause::UnknownZone))
                .collect();
        };
        let local = zone
            .entries(&slot.identity)
            .next()
            .filter(|l| l.resource.rtype.info().flows_zone_to_global());
        match local {
            Some(local) => {
                let expected = expected_name_on_global(
                    &local.resource,
                    &spec.name,
                    &spec.environment,
                    &self.topology.global,
                );
                match_copies(local, expected, &on_global)
            }
            None => on_global
                .iter()
                .map(|c| finding(State::Orphaned, c, Cause::SourceGone))
                .collect(),
        }
    }

    /// Records whether the last read of `cp` succeeded. What was read before stays, but a
    /// zone is `unknown` while it or the global cannot be read.
    pub fn set_readable(&mut self, cp: &CpRole, readable: bool) {
        if readable {
            self.unreadable.remove(cp);
        } else {
            self.unreadable.insert(cp.clone());
        }
    }

    pub fn is_readable(&self, cp: &CpRole) -> bool {
        !self.unreadable.contains(cp)
    }

    /// The verdict for one zone, covering both directions.
    pub fn zone_state(&self, zone: &str) -> ZoneState {
        if !self.is_readable(&CpRole::Global) || !self.is_readable(&CpRole::Zone(zone.to_owned())) {
            return ZoneState::Unknown;
        }
        let diverged = self
            .counts
            .iter()
            .any(|((z, _, s), n)| &**z == zone && *s != State::Synced && *n > 0);
        if diverged {
            ZoneState::Diverged
        } else {
            ZoneState::Converged
        }
    }

    /// Counts of findings per (zone, type, state). Synced copies are findings too.
    pub fn counts(&self) -> impl Iterator<Item = (&str, ResourceType, State, usize)> + '_ {
        self.counts.iter().map(|((z, t, s), n)| (&**z, *t, *s, *n))
    }

    /// Every slot with its findings, in no particular order.
    pub fn slots(&self) -> impl Iterator<Item = (&SlotKey, &[Finding])> + '_ {
        self.slots.iter().map(|(k, v)| (k, v.as_slice()))
    }

    /// The resource a control plane holds under `key`.
    pub fn resource(&self, cp: &CpRole, key: &ResourceKey) -> Option<&Resource> {
        self.store(cp)?.by_key.get(key).map(|e| &e.resource)
    }

    /// The source of a slot's copies: the global's resource for global-to-zone slots, the
    /// zone's own for zone-to-global ones.
    pub fn source_of(&self, slot: &SlotKey) -> Option<&Resource> {
        let store = match slot.direction {
            Direction::GlobalToZone => &self.global,
            Direction::ZoneToGlobal | Direction::Seed => self.zone_spec(&slot.zone)?.1,
        };
        store.entries(&slot.identity).next().map(|e| &e.resource)
    }

    /// Where the copies of a slot live.
    pub fn copies_cp(slot: &SlotKey) -> CpRole {
        match slot.direction {
            Direction::GlobalToZone => CpRole::Zone(slot.zone.to_string()),
            Direction::ZoneToGlobal | Direction::Seed => CpRole::Global,
        }
    }

    /// Zones the global holds a Zone resource for, with their `enabled` flag.
    pub fn known_zones(&self) -> &BTreeMap<String, bool> {
        &self.zones_enabled
    }

    /// How many resources the engine holds for one control plane.
    pub fn observed_len(&self, cp: &CpRole) -> usize {
        self.store(cp).map_or(0, |s| s.by_key.len())
    }
}

fn finding(state: State, copy: &Entry, cause: Cause) -> Finding {
    Finding {
        state,
        name: copy.resource.name.clone(),
        copy: Some(copy.resource.key()),
        cause,
    }
}

/// The copy under the expected name is the one that counts; any other copy of the same
/// identity is unexpected.
fn match_copies(source: &Entry, expected: String, copies: &[&Entry]) -> Vec<Finding> {
    let mut out = Vec::with_capacity(copies.len().max(1));
    let mut found = false;
    for copy in copies {
        if copy.resource.name == expected {
            found = true;
            out.push(if copy.fingerprint == source.fingerprint {
                finding(State::Synced, copy, Cause::None)
            } else {
                let cause = Cause::SpecDiffers {
                    source: source.fingerprint,
                    copy: copy.fingerprint,
                };
                finding(State::Drifted, copy, cause)
            });
        } else {
            out.push(finding(
                State::Unexpected,
                copy,
                Cause::Duplicate {
                    expected: expected.clone(),
                },
            ));
        }
    }
    if !found {
        out.push(Finding {
            state: State::Missing,
            name: expected,
            copy: None,
            cause: Cause::Absent,
        });
    }
    out.sort_by(|a, b| (a.state, &a.name).cmp(&(b.state, &b.name)));
    out
}
