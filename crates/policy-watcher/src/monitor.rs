//! The live layer over the [`Engine`]: what each source last said, since when each zone has
//! been out of sync, propagation latencies and flaps. Sources call in with whole snapshots
//! or single changes; the metrics server and `/status` read a consistent view under one lock.
//!
//! Time is passed in (`now`), never read here, so tests drive it and sources can use the
//! moment they read rather than the moment they got the lock.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

// foldhash, as in the engine: a first read settles a slot per copy, and SipHash over
// each slot key's strings was most of tracking it (docs/benchmarks-live.md).
use foldhash::{HashMap, HashMapExt, HashSet};
use jiff::Timestamp;

use crate::source::insight::ZoneInsight;
use kuma_model::{CpRole, Fingerprint, Resource, ResourceKey, ResourceType};

use crate::{Change, Engine, Report, SlotChange, State, ZoneState, converge::SlotKey, source::SourceError};

/// How one control plane's source is doing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceStatus {
    /// The last read succeeded.
    pub up: bool,
    /// A full read has succeeded at least once: the engine holds this control plane's state.
    pub synced_once: bool,
    /// The first full read: discrepancies are not older than what could be seen.
    pub first_success: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
    /// The last error, in words, while the source is down.
    pub last_error: Option<String>,
    /// Errors by class since start (`SourceError::metric_label`).
    pub errors: BTreeMap<&'static str, u64>,
}

/// One observed propagation: how long a change took to reach a copy.
#[derive(Debug, Clone, PartialEq)]
pub struct Propagation {
    pub zone: String,
    pub rtype: ResourceType,
    pub seconds: f64,
}

/// Receives the events a counter or histogram records; the exporter implements it with
/// Prometheus metrics, tests with a Vec.
pub trait Recorder: Send + Sync {
    fn propagation(&self, p: &Propagation);
    fn flap(&self, zone: &str, rtype: ResourceType);
}

/// A recorder that records nothing.
#[derive(Debug, Default)]
pub struct NoRecorder;

impl Recorder for NoRecorder {
    fn propagation(&self, _: &Propagation) {}
    fn flap(&self, _: &str, _: ResourceType) {}
}

/// Tunables of the live layer.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// A copy that vanishes and is back within this window counts as a flap.
    pub flap_window: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            flap_window: Duration::from_secs(60),
        }
    }
}

/// The shared live state. Cheap operations only under the lock: sources do their IO first.
pub struct Monitor {
    state: Mutex<MonitorState>,
    recorder: Box<dyn Recorder>,
    /// Bumped after every change, so waiters (`verify --wait`, tests) need not poll.
    version: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct MonitorState {
    pub engine: Engine,
    /// The global's ZoneInsights as last read; `None` until read (or when the global's
    /// source cannot provide them).
    pub zone_insights: Option<BTreeMap<String, ZoneInsight>>,
    pub sources: BTreeMap<CpRole, SourceStatus>,
    /// When each slot with a discrepancy opened; gives `out_of_sync_seconds`.
    open_since: HashMap<SlotKey, Timestamp>,
    /// When a synced copy went missing; its return within the window is a flap.
    lost_at: HashMap<SlotKey, Timestamp>,
    /// When each source (the global's resources, a zone's own) was first seen with its
    /// current spec: the start of a propagation when Kuma's modificationTime is unknown.
    /// In a cell: a streamed snapshot notes each resource here just before the engine
    /// settles its slots, which read it (see [`Monitor::snapshot_each`]).
    first_seen: RefCell<FirstSeen>,
    config: MonitorConfig,
    /// Bumped when a source's status (up, errors) or the insights change; with the
    /// engine's revision it says when the state metrics show may have changed.
    status_revision: u64,
    /// The canary's sequence each control plane was last read holding, and since when
    /// (kuma-sync's canary, when turned on; the engine does not compare it).
    pub canary: BTreeMap<CpRole, CanarySighting>,
}

/// A control plane read holding the canary at `sequence`, first at `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanarySighting {
    pub sequence: u64,
    pub since: Timestamp,
}

/// The canary sequence `r` carries, if it is the canary.
fn canary_sequence(r: &Resource) -> Option<u64> {
    r.label(kuma_model::labels::CANARY)?;
    r.label(kuma_model::labels::CANARY_SEQUENCE)?.parse().ok()
}

impl MonitorState {
    /// Notes that `cp` holds the canary at `sequence` as of `now`; the time moves only
    /// with the sequence, so it is when the write arrived (as far as reads can tell).
    fn sight_canary(&mut self, cp: &CpRole, sequence: u64, now: Timestamp) {
        let known = self.canary.get(cp).is_some_and(|s| s.sequence == sequence);
        if !known {
            self.canary
                .insert(cp.clone(), CanarySighting { sequence, since: now });
        }
    }
}

impl Monitor {
    pub fn new(engine: Engine, config: MonitorConfig, recorder: Box<dyn Recorder>) -> Self {
        let mut sources = BTreeMap::new();
        sources.insert(CpRole::Global, SourceStatus::default());
        for z in &engine.topology().zones {
            sources.insert(CpRole::Zone(z.name.clone()), SourceStatus::default());
        }
        let mut engine = engine;
        // Until a first read, nothing is known: never report "converged" on no data.
        for cp in sources.keys() {
            engine.set_readable(cp, false);
        }
        let state = MonitorState {
            engine,
            zone_insights: None,
            first_seen: RefCell::default(),
            sources,
            open_since: HashMap::new(),
            lost_at: HashMap::new(),
            config,
            status_revision: 0,
            canary: BTreeMap::new(),
        };
        Self {
            state: Mutex::new(state),
            recorder,
            version: tokio::sync::watch::channel(0).0,
        }
    }

    /// A consistent view for readers (metrics, `/status`). Keep it short.
    pub fn lock(&self) -> MutexGuard<'_, MonitorState> {
        // A panic while holding the lock leaves plain data behind; carry on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bumped after every change.
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// Changes when anything but the clock may have changed what the monitor reports:
    /// the engine's state, a source's status, the insights. Unlike [`Monitor::version`],
    /// a re-read that found nothing new leaves it alone.
    pub fn settled_revision(&self) -> u64 {
        let st = self.lock();
        st.engine.revision() + st.status_revision
    }

    /// Notified after every change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// A full, successful read of `cp`.
    pub fn snapshot(&self, cp: &CpRole, resources: Vec<Resource>, now: Timestamp) {
        let present: HashSet<u128> = resources.iter().map(|r| key_digest(&r.key())).collect();
        let filled: Result<(), std::convert::Infallible> = self.snapshot_each(
            cp,
            |key| present.contains(&key_digest(key)),
            |push| {
                resources.into_iter().for_each(push);
                Ok(())
            },
            now,
        );
        let Ok(()) = filled;
    }

    /// [`Monitor::snapshot`] of a read handed over one resource at a time by `fill`;
    /// `present` says which keys the read holds (what it does not hold is deleted
    /// first, as a snapshot deletes it). The REST source keeps a read
    /// as its page bodies and parses them here, one resource at a time, so a million
    /// resources are never held parsed at once. If `fill` fails, `cp` is `unknown`.
    pub fn snapshot_each<E>(
        &self,
        cp: &CpRole,
        present: impl Fn(&ResourceKey) -> bool,
        fill: impl FnOnce(&mut dyn FnMut(Resource)) -> Result<(), E>,
        now: Timestamp,
    ) -> Result<(), E> {
        let mut st = self.lock();
        // Only sources are timed (a zone's own resources, the global's).
        st.first_seen.get_mut().retain(|(c, k), _| c != cp || present(k));
        let seen_before = st.read_before();
        let (engine, mut tracking) = st.split(&*self.recorder, now, &seen_before);
        let first_seen = tracking.first_seen;
        let canary = std::cell::Cell::new(None);
        // Tracked as each slot settles: a first read can change a million of them.
        let filled = engine.replace_each(
            cp,
            &present,
            |push| {
                fill(&mut |r| {
                    note_seen(&mut first_seen.borrow_mut(), cp, &r, now);
                    if let Some(sequence) = canary_sequence(&r) {
                        canary.set(Some(sequence));
                    }
                    push(r);
                })
            },
            &mut |engine, settled| tracking.track(engine, &settled.describe()),
        );
        if filled.is_ok() {
            st.read_succeeded(cp, now);
            if let Some(sequence) = canary.get() {
                st.sight_canary(cp, sequence, now);
            }
        }
        // A read that closed many discrepancies leaves the map's capacity behind: give
        // it back.
        if st.open_since.capacity() > 4 * st.open_since.len() + 1024 {
            st.open_since.shrink_to_fit();
        }
        drop(st);
        self.version.send_modify(|v| *v += 1);
        filled
    }

    /// Whether the engine holds no resource of `cp`: its next snapshot loses nothing
    /// whatever keys it says it holds.
    pub fn holds_nothing(&self, cp: &CpRole) -> bool {
        self.lock().engine.observed_len(cp) == 0
    }

    /// A full, successful read of `cp` that found exactly what the engine already holds
    /// from the last one (the REST source knows by the pages' bytes): `cp` is read as of
    /// `now`, with nothing to compare again.
    pub fn read_unchanged(&self, cp: &CpRole, now: Timestamp) {
        let mut st = self.lock();
        st.read_succeeded(cp, now);
        drop(st);
        self.version.send_modify(|v| *v += 1);
    }

    /// One change read from a watch.
    pub fn change(&self, cp: &CpRole, change: Change, now: Timestamp) {
        let mut st = self.lock();
        if let Change::Upsert(r) = &change
            && let Some(sequence) = canary_sequence(r)
        {
            st.sight_canary(cp, sequence, now);
        }
        match &change {
            Change::Upsert(r) => note_seen(st.first_seen.get_mut(), cp, r, now),
            Change::Delete(key) => {
                st.first_seen.get_mut().remove(&(cp.clone(), key.clone()));
            }
        }
        let changes = st.engine.apply(cp, change);
        if let Some(s) = st.sources.get_mut(cp) {
            s.last_success = Some(now);
        }
        let seen_before = st.read_before();
        let (engine, mut tracking) = st.split(&*self.recorder, now, &seen_before);
        for c in &changes {
            tracking.track(engine, c);
        }
        drop(st);
        self.version.send_modify(|v| *v += 1);
    }

    /// A failed read: the control plane becomes `unknown` until the next success.
    pub fn failed(&self, cp: &CpRole, error: &SourceError) {
        let mut st = self.lock();
        st.status_revision += 1;
        st.engine.set_readable(cp, false);
        let status = st.sources.entry(cp.clone()).or_default();
        status.up = false;
        status.last_error = Some(error.to_string());
        *status.errors.entry(error.metric_label()).or_default() += 1;
        drop(st);
        self.version.send_modify(|v| *v += 1);
    }

    /// The global's ZoneInsights, as last read.
    pub fn zone_insights(&self, insights: BTreeMap<String, ZoneInsight>) {
        let mut st = self.lock();
        if st.zone_insights.as_ref() != Some(&insights) {
            st.status_revision += 1;
            st.zone_insights = Some(insights);
        }
        drop(st);
        self.version.send_modify(|v| *v += 1);
    }

    /// Every source has completed a full read: `/readyz` turns ready.
    pub fn ready(&self) -> bool {
        self.lock().sources.values().all(|s| s.synced_once)
    }

    pub fn report(&self) -> Report {
        Report::build(&self.lock().engine)
    }
}

/// What tracking one observation's slot changes needs of the monitor's state, borrowed
/// apart from the engine so changes can be tracked while the engine settles them.
struct Tracking<'a> {
    open_since: &'a mut HashMap<SlotKey, Timestamp>,
    lost_at: &'a mut HashMap<SlotKey, Timestamp>,
    first_seen: &'a RefCell<FirstSeen>,
    config: &'a MonitorConfig,
    recorder: &'a dyn Recorder,
    now: Timestamp,
    /// The control planes read in full before this observation. A copy without
    /// timestamps that shows up synced on a first read may have been there for months:
    /// no latency is recorded for it.
    seen_before: &'a HashSet<CpRole>,
}

impl Tracking<'_> {
    fn track(&mut self, engine: &Engine, c: &SlotChange) {
        let now = self.now;
        let was_synced = c.before.iter().any(|f| f.state == State::Synced);
        let is_synced = c.after.iter().any(|f| f.state == State::Synced);
        // A slot that vanished (source and copies deleted) has no findings: it closes.
        let open = c.after.iter().any(|f| f.state != State::Synced);
        if open {
            self.open_since.entry(c.slot.clone()).or_insert(now);
        } else if !self.open_since.is_empty() {
            self.open_since.remove(&c.slot);
        }
        if was_synced && !is_synced && c.after.iter().any(|f| f.state == State::Missing) {
            self.lost_at.insert(c.slot.clone(), now);
        }
        if is_synced && !was_synced {
            let lost = if self.lost_at.is_empty() {
                None
            } else {
                self.lost_at.remove(&c.slot)
            };
            if let Some(lost) = lost
                && elapsed(lost, now) <= self.config.flap_window
            {
                self.recorder.flap(&c.slot.zone, c.slot.identity.rtype);
            }
            let live = [CpRole::Global, CpRole::Zone(c.slot.zone.to_string())]
                .iter()
                .all(|cp| self.seen_before.contains(cp));
            let seconds = propagation_seconds(engine, &self.first_seen.borrow(), c, now, live);
            if let Some(seconds) = seconds {
                let p = Propagation {
                    zone: c.slot.zone.to_string(),
                    rtype: c.slot.identity.rtype,
                    seconds,
                };
                self.recorder.propagation(&p);
            }
        }
    }
}

impl MonitorState {
    /// The engine and what tracking its changes needs, borrowed apart, so changes are
    /// tracked while the engine settles them.
    fn split<'a>(
        &'a mut self,
        recorder: &'a dyn Recorder,
        now: Timestamp,
        seen_before: &'a HashSet<CpRole>,
    ) -> (&'a mut Engine, Tracking<'a>) {
        let MonitorState {
            engine,
            open_since,
            lost_at,
            first_seen,
            config,
            ..
        } = self;
        let tracking = Tracking {
            open_since,
            lost_at,
            first_seen,
            config,
            recorder,
            now,
            seen_before,
        };
        (engine, tracking)
    }

    /// The control planes that have had a full read: a set, asked once per slot change.
    fn read_before(&self) -> HashSet<CpRole> {
        self.sources
            .iter()
            .filter(|(_, s)| s.first_success.is_some())
            .map(|(cp, _)| cp.clone())
            .collect()
    }

    /// A full read of `cp` succeeded: it is readable and its history starts, if new.
    fn read_succeeded(&mut self, cp: &CpRole, now: Timestamp) {
        self.engine.set_readable(cp, true);
        let status = self.sources.entry(cp.clone()).or_default();
        if !status.up || !status.synced_once {
            self.status_revision += 1;
        }
        status.up = true;
        status.synced_once = true;
        status.first_success.get_or_insert(now);
        status.last_success = Some(now);
        status.last_error = None;
    }

    /// Age of the oldest open discrepancy per zone, counted from when both sides had been
    /// read: a copy "missing" from a zone not yet read was never seen missing.
    pub fn out_of_sync_seconds(&self, now: Timestamp) -> BTreeMap<String, f64> {
        let first = |cp: &CpRole| self.sources.get(cp).and_then(|s| s.first_success);
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        for (slot, since) in &self.open_since {
            let (Some(global), Some(zone)) = (
                first(&CpRole::Global),
                first(&CpRole::Zone(slot.zone.to_string())),
            ) else {
                continue;
            };
            let age = elapsed((*since).max(global).max(zone), now).as_secs_f64();
            let e = out.entry(slot.zone.to_string()).or_default();
            *e = e.max(age);
        }
        out
    }

    pub fn zone_state(&self, zone: &str) -> ZoneState {
        self.engine.zone_state(zone)
    }
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    let nanos = to.as_nanosecond() - from.as_nanosecond();
    Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
}

/// When each source was first seen with its current spec, by control plane and key.
type FirstSeen = HashMap<(CpRole, ResourceKey), (Fingerprint, Timestamp)>;

/// Records when a source's current spec was first seen. Only sources matter: the
/// global's resources and a zone's own (copies are timed by when they turn synced).
fn note_seen(first_seen: &mut FirstSeen, cp: &CpRole, r: &Resource, now: Timestamp) {
    if let CpRole::Zone(zone) = cp
        && r.origin(cp) != kuma_model::Origin::Zone(zone.clone())
    {
        return;
    }
    let fp = kuma_model::fingerprint(&r.spec);
    let entry = first_seen.entry((cp.clone(), r.key())).or_insert((fp, now));
    if entry.0 != fp {
        *entry = (fp, now);
    }
}

/// A key's digest, as [`Monitor::snapshot_each`] is told which keys a read holds: 16
/// bytes a resource where the keys would take a hundred.
pub fn key_digest(key: &ResourceKey) -> u128 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for part in [
        key.rtype.name(),
        key.mesh.as_deref().unwrap_or(""),
        key.name.as_str(),
    ] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    // A global-scoped key and a mesh-scoped one with an empty mesh differ.
    hasher.update(&[u8::from(key.mesh.is_some())]);
    hasher.digest128()
}

/// From the source's last modification (what Kuma's API says, else unknown) to the copy's,
/// bounded by when we saw it. Copies that predate the watcher still give a latency, as
/// both control planes stamp their modification times.
fn propagation_seconds(
    engine: &Engine,
    first_seen: &FirstSeen,
    c: &SlotChange,
    now: Timestamp,
    live: bool,
) -> Option<f64> {
    let source = engine.source_meta(&c.slot)?;
    let source_cp = match c.slot.direction {
        crate::Direction::GlobalToZone => CpRole::Global,
        _ => CpRole::Zone(c.slot.zone.to_string()),
    };
    // Kuma's own modification time is when the change happened; our first sight of it
    // is later by up to a poll interval, so it is only the fallback.
    let seen = first_seen.get(&(source_cp, source.key())).map(|(_, t)| *t);
    let start = source.modification_time.or(seen).or(source.creation_time)?;
    let synced = c.after.iter().find(|f| f.state == State::Synced)?;
    // `modified_at`, not `resource`: copies share their specs in the engine, and
    // rebuilding each one that turns synced on a cold start would undo that.
    let copied = synced
        .copy
        .as_ref()
        .and_then(|k| engine.modified_at(&Engine::copies_cp(&c.slot), k));
    let stamped = copied.filter(|t| *t >= start && *t <= now);
    let end = match stamped {
        Some(t) => t,
        // `now` is when the read began; a read already under way can return a copy
        // newer than a source change another source saw later. The copy then arrived
        // within one read of the change: as near to zero as this source can tell.
        None if live => now.max(start),
        None => return None,
    };
    Some(elapsed(start, end).as_secs_f64())
}
