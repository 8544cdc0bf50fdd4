//! The incremental convergence engine.
//!
//! Every observation (an upsert or delete on one control plane) touches one [`Identity`].
//! The engine re-evaluates only the *slots* that identity feeds, a slot being one
//! (zone, direction, identity) triple, so a change on the global costs O(zones) and a
//! change in a zone O(1), whatever the total size. A full compare is a fold of upserts.
//!
//! Internal maps use foldhash rather than SipHash: hashing identities and slot keys was a
//! quarter of a cold compare (`docs/benchmarks.md`), and foldhash is still seeded per
//! process. The stores live in [`store`].

mod store;

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
};

use foldhash::{HashMap, HashSet as FastSet};
use kuma_model::{
    CpRole, Environment, Fingerprint, Identity, Origin, Resource, ResourceKey, ResourceType,
    resource::{expected_name_in_zone, expected_name_on_global},
};
use serde::Serialize;

use self::store::{Entry, Identities, Observed};

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

/// A slot as the engine indexes it: the public [`SlotKey`] with the identity shared, so
/// finding a slot allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SlotId {
    zone: Arc<str>,
    direction: Direction,
    identity: Arc<Identity>,
}

impl SlotId {
    fn to_key(&self) -> SlotKey {
        SlotKey {
            zone: self.zone.clone(),
            direction: self.direction,
            identity: (*self.identity).clone(),
        }
    }
}

/// What one observation may have changed: the slots to re-evaluate, each once and in key
/// order so callers see changes in a stable order, and the identities to release after.
#[derive(Debug, Default)]
struct Touched {
    slots: Vec<SlotId>,
    identities: Vec<Arc<Identity>>,
}

impl Touched {
    fn new(mut slots: Vec<SlotId>, identities: Vec<Arc<Identity>>) -> Self {
        slots.sort();
        slots.dedup();
        Self { slots, identities }
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
    /// Monitored zone names, indexed like `topology.zones`, so slot keys share one
    /// allocation per zone.
    zone_names: Vec<Arc<str>>,
    /// Interned names of zones only known from origin labels.
    other_zone_names: HashMap<String, Arc<str>>,
    /// The distinct environments of the monitored zones, and each zone's index in it:
    /// copies' expected names depend on the environment only, not on the zone.
    environments: Vec<Environment>,
    zone_environment: Vec<usize>,
    /// Zone resources held by the global, with their `enabled` flag.
    zones_enabled: BTreeMap<String, bool>,
    /// Identities on the global that originate in each zone: what to re-evaluate when a
    /// Zone appears, disappears or is disabled.
    by_origin_zone: HashMap<String, FastSet<Arc<Identity>>>,
    identities: Identities,
    /// Each slot's public key alongside its findings, so [`Engine::slots`] can lend both.
    slots: HashMap<SlotId, (SlotKey, Vec<Finding>)>,
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
        let zone_names = topology.zones.iter().map(|z| Arc::from(z.name.as_str())).collect();
        let mut environments: Vec<Environment> = Vec::new();
        let zone_environment = topology
            .zones
            .iter()
            .map(|z| match environments.iter().position(|e| *e == z.environment) {
                Some(i) => i,
                None => {
                    environments.push(z.environment.clone());
                    environments.len() - 1
                }
            })
            .collect();
        Self {
            topology,
            selection,
            global: Observed::default(),
            zones,
            zone_index,
            zone_names,
            other_zone_names: HashMap::default(),
            environments,
            zone_environment,
            zones_enabled: BTreeMap::new(),
            by_origin_zone: HashMap::default(),
            identities: Identities::default(),
            slots: HashMap::default(),
            unreadable: HashSet::new(),
            counts: HashMap::default(),
        }
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
        let touched = self.observe(cp, change);
        let changes = touched
            .slots
            .into_iter()
            .filter_map(|s| self.reevaluate(s))
            .collect();
        self.release(touched.identities);
        changes
    }

    /// Like [`Engine::apply`], but counts the slots that changed instead of describing
    /// each: for loading state nobody follows change by change (a cold start), where
    /// cloning every slot key and finding into a [`SlotChange`] is most of the cost. The
    /// engine ends in the same state either way.
    pub fn fold(&mut self, cp: &CpRole, change: Change) -> usize {
        let touched = self.observe(cp, change);
        let changed = touched
            .slots
            .into_iter()
            .filter(|s| self.refresh(s))
            .count();
        self.release(touched.identities);
        changed
    }

    /// Like [`Engine::replace`], but counts the slots that changed (see [`Engine::fold`]).
    pub fn load(&mut self, cp: &CpRole, resources: Vec<Resource>) -> usize {
        let Some(stale) = self.stale_keys(cp, &resources) else {
            return 0;
        };
        let deleted: usize = stale
            .into_iter()
            .map(|key| self.fold(cp, Change::Delete(key)))
            .sum();
        let upserted: usize = resources
            .into_iter()
            .map(|r| self.fold(cp, Change::Upsert(r)))
            .sum();
        deleted + upserted
    }

    /// Stores one observation and says which slots it may have changed.
    fn observe(&mut self, cp: &CpRole, change: Change) -> Touched {
        let mut identities: Vec<Arc<Identity>> = Vec::new();
        match change {
            Change::Upsert(r) if *cp == CpRole::Global && r.rtype.name() == "Zone" => {
                let enabled = r.spec.get("enabled").and_then(|v| v.as_bool()).unwrap_or(true);
                self.zones_enabled.insert(r.name.clone(), enabled);
                return self.origin_zone_slots(&r.name);
            }
            Change::Delete(key) if *cp == CpRole::Global && key.rtype.name() == "Zone" => {
                self.zones_enabled.remove(&key.name);
                return self.origin_zone_slots(&key.name);
            }
            Change::Upsert(r) => {
                let Some(store) = self.store(cp) else {
                    return Touched::default();
                };
                if !self.selection.selects(&r) {
                    // A resource that left the selection (say, its mesh changed) must not linger.
                    let Some(old) = self.store_mut(cp).and_then(|s| s.remove(&r.key())) else {
                        return Touched::default();
                    };
                    identities.push(old.identity);
                } else if store.unchanged(&r) {
                    // A re-listed snapshot repeats what is known: the slots are current.
                    return Touched::default();
                } else {
                    let identity = self.identities.intern(r.identity(cp));
                    let expected_in_zone = self.expected_in_zone(cp, &r);
                    let old = self
                        .store_mut(cp)
                        .and_then(|s| s.insert(r, identity.clone(), expected_in_zone));
                    if let Some(old) = old
                        && old.identity != identity
                    {
                        identities.push(old.identity);
                    }
                    identities.push(identity);
                }
            }
            Change::Delete(key) => {
                let Some(old) = self.store_mut(cp).and_then(|s| s.remove(&key)) else {
                    return Touched::default();
                };
                identities.push(old.identity);
            }
        }
        let mut slots = Vec::new();
        for identity in &identities {
            if *cp == CpRole::Global {
                self.index_origin(identity);
            }
            self.slots_of(cp, identity, &mut slots);
        }
        Touched::new(slots, identities)
    }

    /// Lets the interner forget identities the observation left unused.
    fn release(&mut self, identities: Vec<Arc<Identity>>) {
        for identity in identities {
            self.identities.release(identity);
        }
    }

    /// Keys `cp` holds that `resources` lacks, or `None` for an unmonitored zone.
    fn stale_keys(&self, cp: &CpRole, resources: &[Resource]) -> Option<Vec<ResourceKey>> {
        // Borrowed keys: a snapshot can hold a million resources.
        let incoming: FastSet<(ResourceType, Option<&str>, &str)> = resources
            .iter()
            .map(|r| (r.rtype, r.mesh.as_deref(), r.name.as_str()))
            .collect();
        let store = self.store(cp)?;
        Some(
            store
                .by_key
                .keys()
                .filter(|k| !incoming.contains(&(k.rtype, k.mesh.as_deref(), k.name.as_str())))
                .map(|k| (**k).clone())
                .collect(),
        )
    }

    /// Folds a whole snapshot of one control plane in: what is absent from `resources`
    /// but was known is deleted. Returns the slots that changed.
    pub fn replace(&mut self, cp: &CpRole, resources: Vec<Resource>) -> Vec<SlotChange> {
        let Some(stale) = self.stale_keys(cp, &resources) else {
            return Vec::new();
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

    /// The names a global resource's copies carry, one per zone environment.
    fn expected_in_zone(&self, cp: &CpRole, r: &Resource) -> Box<[String]> {
        if *cp != CpRole::Global {
            return Box::default();
        }
        self.environments
            .iter()
            .map(|env| expected_name_in_zone(r, &self.topology.global, env))
            .collect()
    }

    fn zone_name(&mut self, zone: &str) -> Arc<str> {
        if let Some(&i) = self.zone_index.get(zone) {
            return self.zone_names[i].clone();
        }
        if let Some(name) = self.other_zone_names.get(zone) {
            return name.clone();
        }
        let name: Arc<str> = Arc::from(zone);
        self.other_zone_names.insert(zone.to_owned(), name.clone());
        name
    }

    fn index_origin(&mut self, identity: &Arc<Identity>) {
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
    fn origin_zone_slots(&mut self, zone: &str) -> Touched {
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
    fn slots_of(&mut self, cp: &CpRole, identity: &Arc<Identity>, out: &mut Vec<SlotId>) {
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

    /// A monitored zone: its index, spec and store.
    fn zone_spec(&self, zone: &str) -> Option<(usize, &ZoneSpec, &Observed)> {
        self.zone_index
            .get(zone)
            .map(|&i| (i, &self.topology.zones[i], &self.zones[i]))
    }

    /// Re-evaluates a slot and describes the change, if any.
    fn reevaluate(&mut self, id: SlotId) -> Option<SlotChange> {
        let after = self.evaluate(&id);
        if self.findings(&id) == after.as_slice() {
            return None;
        }
        let (before, removed) = self.settle(&id, after.clone());
        let slot = match removed {
            Some(key) => key,
            None => self.slots.get(&id)?.0.clone(),
        };
        Some(SlotChange { slot, before, after })
    }

    /// Re-evaluates a slot; true when its findings changed.
    fn refresh(&mut self, id: &SlotId) -> bool {
        let after = self.evaluate(id);
        if self.findings(id) == after.as_slice() {
            return false;
        }
        self.settle(id, after);
        true
    }

    fn findings(&self, id: &SlotId) -> &[Finding] {
        self.slots.get(id).map_or(&[], |(_, f)| f.as_slice())
    }

    /// Stores a slot's new findings (dropping the slot when there are none) and keeps the
    /// counts in step. Returns the findings before and, for a dropped slot, its key.
    fn settle(&mut self, id: &SlotId, after: Vec<Finding>) -> (Vec<Finding>, Option<SlotKey>) {
        let rtype = id.identity.rtype;
        for f in &after {
            *self.counts.entry((id.zone.clone(), rtype, f.state)).or_default() += 1;
        }
        let (before, removed) = match self.slots.get_mut(id) {
            Some((_, current)) if !after.is_empty() => (std::mem::replace(current, after), None),
            Some(_) => match self.slots.remove(id) {
                Some((key, before)) => (before, Some(key)),
                None => (Vec::new(), None),
            },
            None if after.is_empty() => (Vec::new(), None),
            None => {
                self.slots.insert(id.clone(), (id.to_key(), after));
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

    fn evaluate(&self, slot: &SlotId) -> Vec<Finding> {
        match slot.direction {
            Direction::GlobalToZone => self.evaluate_global_to_zone(slot),
            Direction::ZoneToGlobal => self.evaluate_zone_to_global(slot),
            Direction::Seed => Vec::new(),
        }
    }

    fn evaluate_global_to_zone(&self, slot: &SlotId) -> Vec<Finding> {
        let Some((index, spec, zone)) = self.zone_spec(&slot.zone) else {
            return Vec::new();
        };
        let source = self.global.entries(&slot.identity).next();
        let copies: Vec<&Entry> = zone.entries(&slot.identity).collect();
        let decision = source.map(|s| global_sends(&s.resource, &spec.name, &self.zones_enabled));
        match (source, decision) {
            (Some(source), Some(Ok(()))) => {
                let expected = match source.expected_in_zone.get(self.zone_environment[index]) {
                    Some(name) => name.clone(),
                    None => expected_name_in_zone(&source.resource, &self.topology.global, &spec.environment),
                };
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

    fn evaluate_zone_to_global(&self, slot: &SlotId) -> Vec<Finding> {
        let on_global: Vec<&Entry> = self.global.entries(&slot.identity).collect();
        let Some((_, spec, zone)) = self.zone_spec(&slot.zone) else {
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
        self.slots.values().map(|(k, v)| (k, v.as_slice()))
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
            Direction::ZoneToGlobal | Direction::Seed => self.zone_spec(&slot.zone)?.2,
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
