//! The incremental convergence engine.
//!
//! Every observation (an upsert or delete on one control plane) touches one [`Identity`].
//! The engine re-evaluates only the *slots* that identity feeds, a slot being one
//! (zone, direction, identity) triple, so a change on the global costs O(zones) and a
//! change in a zone O(1), whatever the total size. A full compare is a fold of upserts.
//!
//! Internal maps use foldhash rather than SipHash: hashing identities and slot keys was a
//! quarter of a cold compare (`docs/benchmarks.md`), and foldhash is still seeded per
//! process. The engine's parts: `ingest` takes observations in, `store` holds what each
//! control plane has (`copies`: how a copy shares what it can), `slots` keeps the
//! findings and their counts, `evaluate` decides a slot's findings.

mod copies;
mod evaluate;
mod ingest;
mod slots;
mod store;

pub use self::slots::Settled;

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashSet},
    sync::Arc,
};

use foldhash::{HashMap, HashSet as FastSet};
use kuma_model::{
    CpRole, Environment, Fingerprint, Identity, Resource, ResourceKey, ResourceType,
    resource::expected_name_in_zone,
};
use serde::Serialize;

use self::{
    copies::Shared,
    slots::Slot,
    store::{Identities, Observed},
};

use crate::{
    sync_rules::NotSent,
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
    /// Specs and labels shared by zones' copies.
    shared: Shared,
    /// Slots whose findings are anything but one synced copy (see `slots`). Boxed, so the
    /// table stays at 40 bytes a bucket.
    slots: HashMap<slots::SlotId, Box<Slot>>,
    /// Control planes whose last read failed: their zones are `unknown`, never converged.
    unreadable: HashSet<CpRole>,
    /// Findings per (zone, type, state), kept current so metrics never walk the slots.
    counts: HashMap<(Arc<str>, ResourceType, State), usize>,
    /// Bumped by every observation that changed what the engine holds: what metrics
    /// built from it can be cached against.
    revision: u64,
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
        let zone_names = topology
            .zones
            .iter()
            .map(|z| Arc::from(z.name.as_str()))
            .collect();
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
            shared: Shared::default(),
            slots: HashMap::default(),
            unreadable: HashSet::new(),
            counts: HashMap::default(),
            revision: 0,
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn selection(&self) -> &Selection {
        &self.selection
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

    /// A monitored zone: its index, spec and store.
    fn zone_spec(&self, zone: &str) -> Option<(usize, &ZoneSpec, &Observed)> {
        self.zone_index
            .get(zone)
            .map(|&i| (i, &self.topology.zones[i], &self.zones[i]))
    }

    /// Records whether the last read of `cp` succeeded. What was read before stays, but a
    /// zone is `unknown` while it or the global cannot be read.
    pub fn set_readable(&mut self, cp: &CpRole, readable: bool) {
        let flipped = if readable {
            self.unreadable.remove(cp)
        } else {
            self.unreadable.insert(cp.clone())
        };
        if flipped {
            self.revision += 1;
        }
    }

    /// Changes whenever what the engine holds or says may have changed (never otherwise,
    /// so a re-read that found nothing new leaves it alone).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn is_readable(&self, cp: &CpRole) -> bool {
        !self.unreadable.contains(cp)
    }

    /// The verdict for one zone, covering both directions. A zone is `unknown` until it
    /// and the global have been observed, and while either cannot be read.
    pub fn zone_state(&self, zone: &str) -> ZoneState {
        if !self.is_readable(&CpRole::Global) || !self.is_readable(&CpRole::Zone(zone.to_owned())) {
            return ZoneState::Unknown;
        }
        let observed = |cp: &CpRole| self.store(cp).is_none_or(|s| s.loaded);
        if !observed(&CpRole::Global) || !observed(&CpRole::Zone(zone.to_owned())) {
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

    /// Every slot whose findings are not exactly one synced copy, in no particular order.
    /// Synced slots, nearly all of them in a healthy mesh, are not kept as slots: they are
    /// in [`Engine::counts`].
    pub fn slots(&self) -> impl Iterator<Item = (&SlotKey, &[Finding])> + '_ {
        self.slots.values().map(|s| (&s.key, s.findings.as_slice()))
    }

    /// The resource a control plane holds under `key`. A zone's copy is kept in parts
    /// (see `copies`) and rebuilt: prefer [`Engine::modified_at`] for what it answers.
    pub fn resource(&self, cp: &CpRole, key: &ResourceKey) -> Option<Cow<'_, Resource>> {
        self.store(cp)?.get(key).map(|e| e.stored.resource())
    }

    /// The spec of the resource a control plane holds under `key` (a copy's is parsed
    /// again from its shared JSON).
    pub fn spec_of(&self, cp: &CpRole, key: &ResourceKey) -> Option<Cow<'_, serde_json::Value>> {
        self.store(cp)?.get(key).map(|e| e.stored.spec())
    }

    /// When the resource under `key` last changed (else was created), as its control
    /// plane says.
    pub fn modified_at(&self, cp: &CpRole, key: &ResourceKey) -> Option<jiff::Timestamp> {
        self.store(cp)?.get(key)?.stored.modified_at()
    }

    /// The source of a slot's copies: the global's resource for global-to-zone slots, the
    /// zone's own for zone-to-global ones. Its spec is parsed again from the shared JSON:
    /// prefer [`Engine::source_meta`] when the spec is not needed.
    pub fn source_of(&self, slot: &SlotKey) -> Option<Cow<'_, Resource>> {
        Some(self.source_entry(slot)?.stored.resource())
    }

    /// What [`Engine::source_of`] gives but the spec, which reads `null` here: its name,
    /// labels and times, at no cost.
    pub fn source_meta(&self, slot: &SlotKey) -> Option<&Resource> {
        Some(&self.source_entry(slot)?.stored.source()?.meta)
    }

    fn source_entry(&self, slot: &SlotKey) -> Option<&store::Entry> {
        let store = match slot.direction {
            Direction::GlobalToZone => &self.global,
            Direction::ZoneToGlobal | Direction::Seed => self.zone_spec(&slot.zone)?.2,
        };
        store.entries(&slot.identity).next().map(|(_, e)| e)
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

    /// The global's resources (of the selected types) that it sends to `zone`, with their
    /// spec fingerprints: what a zone of that name should be receiving. Metadata only:
    /// each resource's spec reads `null` (see [`Engine::source_meta`]).
    pub fn sent_to<'a>(&'a self, zone: &'a str) -> impl Iterator<Item = (&'a Resource, Fingerprint)> + 'a {
        self.global.values().filter_map(move |e| {
            let source = e.stored.source()?;
            let sent = source.sending.as_ref().ok()?.to_zone(zone, &self.zones_enabled);
            sent.is_ok().then_some((&source.meta, source.fingerprint()))
        })
    }

    /// How many resources the engine holds for one control plane.
    pub fn observed_len(&self, cp: &CpRole) -> usize {
        self.store(cp).map_or(0, |s| s.len())
    }
}
