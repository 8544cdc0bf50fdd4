//! What the global currently sends a zone, per type, kept up to date from the stream.
//!
//! The first response of a type on a stream is its full state and replaces whatever the
//! view held (so a reconnect drops what vanished meanwhile); later responses are deltas
//! (kuma-semantics 3.1, `pkg/kds/v2/store/sync.go`).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, PoisonError, RwLock},
};

use jiff::Timestamp;
use kuma_model::{Fingerprint, Resource, ResourceType, types::SpecEncoding};
use serde::Serialize;
use tokio::{
    sync::{broadcast, watch},
    time::Instant,
};

/// One resource as the global sent it, keyed in the view by its delta key `<name>.<mesh>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// `None` for global-scoped types.
    pub mesh: Option<String>,
    /// The wire name (hash-suffixed for most types).
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `Resource.version`: opaque, changes with any byte of the resource.
    pub version: String,
    /// Fingerprint of the JSON spec for JSON types; of the raw spec bytes for proto types
    /// and for specs that could not be decoded.
    #[serde(serialize_with = "serialize_fingerprint")]
    pub fingerprint: Fingerprint,
    pub first_seen: Timestamp,
    /// When the version last changed (equal to `first_seen` until then).
    pub last_changed: Timestamp,
    /// The spec as received; `None` when the global sent something the probe cannot
    /// decode. [`Entry::resource`] parses it on demand.
    pub spec: Option<Spec>,
    /// Why decoding failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_error: Option<String>,
}

// === impl Entry ===

impl Entry {
    /// The decoded resource, its spec parsed now; `None` when the global sent something
    /// the probe cannot decode. Each call parses again: keep the result if you need it
    /// twice.
    pub fn resource(&self) -> Option<Resource> {
        let spec = self.spec.as_ref()?;
        let mut r = Resource::new(spec.rtype, self.mesh.as_deref(), &self.name, spec.value().ok()?);
        r.labels = self.labels.clone();
        Some(r)
    }

    /// [`Entry::resource`], moving the entry's name and labels rather than copying them.
    pub fn into_resource(self) -> Option<Resource> {
        let spec = self.spec?;
        let value = spec.value().ok()?;
        Some(Resource {
            mesh: self.mesh,
            name: self.name,
            labels: self.labels,
            ..Resource::new(spec.rtype, None, "", value)
        })
    }
}

/// A resource's spec as the global sent it, parsed only when asked for.
///
/// The view itself only needs the fingerprint, taken from these bytes as they arrive. A
/// parsed tree per resource, built and later dropped for every full state, was most of
/// the cost of applying one (kuma-sync issue 8: 10 MiB in <= 100 ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    rtype: ResourceType,
    /// JSON for JSON-encoded types, protobuf for the others; empty for an empty spec.
    bytes: Vec<u8>,
}

// === impl Spec ===

impl Spec {
    /// `bytes` must be what the fingerprint was taken from, and for JSON types already
    /// known to parse: [`Spec::value`] relies on it.
    pub(crate) fn new(rtype: ResourceType, bytes: Vec<u8>) -> Self {
        Self { rtype, bytes }
    }

    pub fn rtype(&self) -> ResourceType {
        self.rtype
    }

    /// The spec's bytes as received.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The spec as a `Resource` holds it: `{}` for an empty JSON spec, `null` for a
    /// protobuf-encoded type (the probe does not decode those). Fails only if the bytes
    /// are not JSON, which the probe rules out before keeping them.
    pub fn value(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self.rtype.info().spec_encoding {
            SpecEncoding::Json if self.bytes.is_empty() => Ok(serde_json::Value::Object(Default::default())),
            SpecEncoding::Json => serde_json::from_slice(&self.bytes),
            SpecEncoding::Proto(_) => Ok(serde_json::Value::Null),
        }
    }
}

/// Serialised as the parsed spec, as a `Resource` would show it.
impl Serialize for Spec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().map_err(serde::ser::Error::custom)?.serialize(s)
    }
}

fn serialize_fingerprint<S: serde::Serializer>(f: &Fingerprint, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{f:?}"))
}

/// A change to the view, broadcast after it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewEvent {
    /// A resource appeared or changed; `key` is its delta key.
    Upserted { rtype: ResourceType, key: String },
    /// A resource was removed by a delta.
    Removed { rtype: ResourceType, key: String },
    /// A full state replaced the type's entries (first response on a stream).
    Replaced(ResourceType),
}

/// Per-type state.
#[derive(Debug, Clone, Default)]
pub struct TypeView {
    pub entries: BTreeMap<String, Entry>,
    /// A full state arrived on the current stream.
    pub synced: bool,
    /// Responses received since the probe started, over all streams.
    pub responses: u64,
    pub response_bytes: u64,
    pub undecodable: u64,
    /// tokio time, so paused-time tests can show a stall as a growing age.
    pub last_response: Option<Instant>,
}

/// The state every consumer reads, guarded by one lock.
#[derive(Debug, Default)]
pub struct ViewState {
    /// The probe's zone name and the global's address, for display.
    pub zone_name: String,
    pub address: String,
    pub types: HashMap<ResourceType, TypeView>,
    /// The stream is open.
    pub connected: bool,
    pub stream_starts: u64,
    /// Result of the last HealthCheck; `None` before the first one.
    pub health_check_up: Option<bool>,
    /// The last error that ended a stream, for display.
    pub last_error: Option<String>,
}

/// A cheap handle on the shared view: clone it freely.
#[derive(Clone)]
pub struct View {
    state: Arc<RwLock<ViewState>>,
    /// Every applied change, for consumers that track individual resources. Lagging
    /// receivers lose events, not state: they can always re-read a snapshot.
    events: broadcast::Sender<ViewEvent>,
    /// Bumped after each applied response or status change, for consumers that only
    /// need "something changed".
    version: watch::Sender<u64>,
}

impl View {
    pub fn new(types: &[ResourceType]) -> Self {
        let state = ViewState {
            types: types.iter().map(|t| (*t, TypeView::default())).collect(),
            ..ViewState::default()
        };
        Self {
            state: Arc::new(RwLock::new(state)),
            events: broadcast::channel(1024).0,
            version: watch::channel(0).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ViewEvent> {
        self.events.subscribe()
    }

    pub fn watch_version(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Runs `f` on the state under the read lock.
    pub fn read<R>(&self, f: impl FnOnce(&ViewState) -> R) -> R {
        f(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut ViewState) -> R) -> R {
        let r = f(&mut self.state.write().unwrap_or_else(PoisonError::into_inner));
        self.version.send_modify(|v| *v += 1);
        r
    }

    /// The decoded resources of a type, for the convergence engine. Parses every spec:
    /// the view keeps them as received.
    pub fn resources(&self, rtype: ResourceType) -> Vec<Resource> {
        self.read(|s| {
            s.types
                .get(&rtype)
                .map(|t| t.entries.values().filter_map(Entry::resource).collect())
                .unwrap_or_default()
        })
    }

    /// The entries of a type, keyed by delta key.
    pub fn entries(&self, rtype: ResourceType) -> BTreeMap<String, Entry> {
        self.read(|s| s.types.get(&rtype).map(|t| t.entries.clone()).unwrap_or_default())
    }

    /// Time since the last response of `rtype`; `None` before the first.
    pub fn last_response_age(&self, rtype: ResourceType) -> Option<std::time::Duration> {
        self.read(|s| {
            s.types
                .get(&rtype)
                .and_then(|t| t.last_response)
                .map(|at| at.elapsed())
        })
    }

    /// Every type has received its full state on the current stream.
    pub fn all_synced(&self) -> bool {
        self.read(|s| s.types.values().all(|t| t.synced))
    }

    /// Marks every type as awaiting its full state: called when a stream opens.
    pub(crate) fn stream_started(&self) {
        self.write(|s| {
            s.connected = true;
            s.stream_starts += 1;
            for t in s.types.values_mut() {
                t.synced = false;
            }
        });
    }

    pub(crate) fn set_identity(&self, zone_name: &str, address: &str) {
        self.write(|s| {
            s.zone_name = zone_name.to_owned();
            s.address = address.to_owned();
        });
    }

    pub(crate) fn stream_ended(&self, error: Option<String>) {
        self.write(|s| {
            s.connected = false;
            // "Synced" means synced on the current stream; there is none now.
            for t in s.types.values_mut() {
                t.synced = false;
            }
            if s.health_check_up.is_some() {
                s.health_check_up = Some(false);
            }
            if error.is_some() {
                s.last_error = error;
            }
        });
    }

    pub(crate) fn set_health(&self, up: bool) {
        self.write(|s| s.health_check_up = Some(up));
    }

    /// Applies one response: full state if the type is not yet synced on this stream,
    /// else a delta. Returns the number of entries afterwards.
    pub(crate) fn apply(&self, rtype: ResourceType, update: Update) -> usize {
        let mut events = Vec::new();
        let count = self.write(|s| {
            let t = s.types.entry(rtype).or_default();
            t.responses += 1;
            t.response_bytes += update.bytes as u64;
            t.last_response = Some(Instant::now());
            t.undecodable += update.upserts.iter().filter(|(_, e)| e.spec.is_none()).count() as u64;
            if t.synced {
                apply_delta(&mut t.entries, update, rtype, &mut events);
            } else {
                apply_full(&mut t.entries, update);
                t.synced = true;
                events.push(ViewEvent::Replaced(rtype));
            }
            t.entries.len()
        });
        for e in events {
            // No receiver is not an error: consumers come and go.
            let _ = self.events.send(e);
        }
        count
    }
}

/// A summary of the view at one moment: what the CLI prints and scripts read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub zone_name: String,
    pub address: String,
    pub connected: bool,
    pub stream_starts: u64,
    pub health_check_up: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Sorted by type name.
    pub types: Vec<TypeSnapshot>,
}

/// One type's line in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeSnapshot {
    #[serde(rename = "type")]
    pub rtype: ResourceType,
    pub resources: usize,
    pub synced: bool,
    pub responses: u64,
    pub response_bytes: u64,
    pub undecodable: u64,
    /// Seconds since the last response, `None` before the first.
    pub last_response_age_seconds: Option<f64>,
    /// What the global sent, sorted by mesh and name: what an SRE checks first.
    pub items: Vec<SentResource>,
}

/// One resource the global sent, as the probe holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SentResource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh: Option<String>,
    /// The wire name (hash-suffixed for most types).
    pub name: String,
    /// `Resource.version` as the global sent it.
    pub version: String,
}

impl View {
    pub fn snapshot(&self) -> Snapshot {
        self.read(|s| {
            let mut types: Vec<_> = s
                .types
                .iter()
                .map(|(rtype, t)| TypeSnapshot {
                    rtype: *rtype,
                    resources: t.entries.len(),
                    synced: t.synced,
                    responses: t.responses,
                    response_bytes: t.response_bytes,
                    undecodable: t.undecodable,
                    last_response_age_seconds: t.last_response.map(|at| at.elapsed().as_secs_f64()),
                    items: {
                        let mut items: Vec<SentResource> = t
                            .entries
                            .values()
                            .map(|e| SentResource {
                                mesh: e.mesh.clone(),
                                name: e.name.clone(),
                                version: e.version.clone(),
                            })
                            .collect();
                        items.sort();
                        items
                    },
                })
                .collect();
            types.sort_by_key(|t| t.rtype.name());
            Snapshot {
                zone_name: s.zone_name.clone(),
                address: s.address.clone(),
                connected: s.connected,
                stream_starts: s.stream_starts,
                health_check_up: s.health_check_up,
                last_error: s.last_error.clone(),
                types,
            }
        })
    }
}

/// One response, decoded: entries keyed by delta key, and removed delta keys.
#[derive(Debug, Default)]
pub struct Update {
    pub upserts: Vec<(String, Entry)>,
    pub removed: Vec<String>,
    /// Encoded size of the response.
    pub bytes: usize,
}

/// The full state: anything not in it is gone. Entries whose version did not change keep
/// their history (first seen, last changed).
fn apply_full(entries: &mut BTreeMap<String, Entry>, update: Update) {
    let mut old = std::mem::take(entries);
    for (key, new) in update.upserts {
        let merged = merge(old.remove(&key), new);
        entries.insert(key, merged);
    }
}

fn apply_delta(
    entries: &mut BTreeMap<String, Entry>,
    update: Update,
    rtype: ResourceType,
    events: &mut Vec<ViewEvent>,
) {
    for key in update.removed {
        if entries.remove(&key).is_some() {
            events.push(ViewEvent::Removed { rtype, key });
        }
    }
    for (key, new) in update.upserts {
        let merged = merge(entries.remove(&key), new);
        entries.insert(key.clone(), merged);
        events.push(ViewEvent::Upserted { rtype, key });
    }
}

fn merge(old: Option<Entry>, mut new: Entry) -> Entry {
    if let Some(old) = old {
        new.first_seen = old.first_seen;
        if old.version == new.version {
            new.last_changed = old.last_changed;
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mtp() -> ResourceType {
        ResourceType::from_name("MeshTrafficPermission").unwrap()
    }

    fn entry(name: &str, version: &str) -> (String, Entry) {
        let now = Timestamp::now();
        let e = Entry {
            mesh: Some("default".into()),
            name: name.into(),
            labels: BTreeMap::new(),
            version: version.into(),
            fingerprint: Fingerprint(0),
            first_seen: now,
            last_changed: now,
            spec: None,
            decode_error: None,
        };
        (format!("{name}.default"), e)
    }

    fn update(upserts: Vec<(String, Entry)>, removed: &[&str]) -> Update {
        Update {
            upserts,
            removed: removed.iter().map(|s| s.to_string()).collect(),
            bytes: 10,
        }
    }

    #[test]
    fn first_response_replaces_then_deltas_apply() {
        let view = View::new(&[mtp()]);
        let mut events = view.subscribe();
        view.stream_started();
        assert!(!view.all_synced());
        view.apply(mtp(), update(vec![entry("a", "1"), entry("b", "1")], &[]));
        assert!(view.all_synced());
        assert_eq!(events.try_recv().unwrap(), ViewEvent::Replaced(mtp()));
        // A delta adds, changes and removes.
        view.apply(
            mtp(),
            update(
                vec![entry("c", "1"), entry("a", "2")],
                &["b.default", "never-seen.default"],
            ),
        );
        let keys: Vec<_> = view.entries(mtp()).into_keys().collect();
        assert_eq!(keys, ["a.default", "c.default"]);
        assert_eq!(
            events.try_recv().unwrap(),
            ViewEvent::Removed {
                rtype: mtp(),
                key: "b.default".into()
            }
        );
        assert_eq!(view.entries(mtp())["a.default"].version, "2");
        // A new stream: its first response is the full state, and "c" vanished meanwhile.
        view.stream_started();
        view.apply(mtp(), update(vec![entry("a", "2"), entry("d", "1")], &[]));
        let keys: Vec<_> = view.entries(mtp()).into_keys().collect();
        assert_eq!(keys, ["a.default", "d.default"]);
        assert_eq!(view.read(|s| s.types[&mtp()].responses), 3);
    }

    #[test]
    fn unchanged_versions_keep_their_history() {
        let view = View::new(&[mtp()]);
        view.stream_started();
        let (k, mut first) = entry("a", "1");
        first.first_seen = Timestamp::UNIX_EPOCH;
        first.last_changed = Timestamp::UNIX_EPOCH;
        view.apply(mtp(), update(vec![(k, first)], &[]));
        view.stream_started();
        view.apply(mtp(), update(vec![entry("a", "1")], &[]));
        let e = &view.entries(mtp())["a.default"];
        assert_eq!(
            (e.first_seen, e.last_changed),
            (Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH)
        );
        view.apply(mtp(), update(vec![entry("a", "2")], &[]));
        let e = &view.entries(mtp())["a.default"];
        assert_eq!(e.first_seen, Timestamp::UNIX_EPOCH);
        assert!(e.last_changed > Timestamp::UNIX_EPOCH);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_type_shows_a_growing_age() {
        let view = View::new(&[mtp()]);
        assert_eq!(view.last_response_age(mtp()), None);
        view.stream_started();
        view.apply(mtp(), update(vec![], &[]));
        let before = view.last_response_age(mtp()).unwrap();
        tokio::time::advance(std::time::Duration::from_secs(90)).await;
        assert_eq!(
            view.last_response_age(mtp()).unwrap() - before,
            std::time::Duration::from_secs(90)
        );
    }
}
