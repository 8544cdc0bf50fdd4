//! How a stored resource is kept. A zone's copies of other control planes' resources are
//! most of the engine's state (100 zones x 10,000 policies is a million copies) and are
//! near-identical, so a copy keeps only what is its own (times, status) and shares the
//! rest: its key with the same-named copies in other zones, its labels and its spec with
//! every copy that has the same ones.
//!
//! A parsed serde_json object costs ~640 bytes whatever it holds, so a 400-byte spec is
//! ~7 KiB as a `Value`; a shared spec is kept as its compact JSON text (~400 bytes) with
//! its fingerprint, and parsed again only when a report asks for it
//! (`docs/benchmarks.md`).

use std::{borrow::Cow, collections::BTreeMap, sync::Arc};

use foldhash::{HashMap, HashSet};
use jiff::Timestamp;
use kuma_model::{Fingerprint, KumaLine, Resource, ResourceKey, fingerprint, fingerprint::exact_digest};
use serde_json::Value;

use crate::sync_rules::{NotSent, Sending, sending};

type Labels = BTreeMap<String, String>;

/// A stored resource.
#[derive(Debug)]
pub(super) enum Stored {
    /// Sources (everything on the global, a zone's own resources): the engine derives
    /// names and sync decisions from them, so they are kept as they came.
    Whole(Box<Source>),
    /// A zone's copy of a resource from elsewhere, in its store's slab.
    Copy(Compact),
}

#[derive(Debug)]
pub(super) struct Source {
    /// The resource but its spec, which reads `null` here: it is kept in `spec`, shared
    /// with the copies (a parsed spec is ~7 KiB, its JSON ~400 bytes).
    pub(super) meta: Resource,
    spec: Arc<SharedSpec>,
    /// What `sync_rules::global_sends` decides whatever the zone: the only use the rules
    /// make of the spec, so it is decided once, when the source is stored.
    pub(super) sending: Result<Sending, NotSent>,
    /// On the global only: the name a copy carries in a zone, per distinct zone
    /// environment. A global change re-evaluates every zone, and hashing the name once
    /// per environment instead of once per zone is most of that cost.
    pub(super) expected_in_zone: Box<[String]>,
    /// See [`Stored::synced`]: a zone's resource on the global is a copy too.
    pub(super) synced: bool,
}

/// A copy: 40 bytes of its own, a million of them at 100 zones x 10,000 policies.
#[derive(Debug)]
pub(super) struct Compact {
    /// Shared by the copies of one name, labels and spec: a policy's copies in every
    /// zone of one environment.
    body: Arc<Body>,
    /// Boxed: policies' copies have none, and the inline `Value` would cost 32 bytes each.
    status: Option<Box<Value>>,
    times: Times,
    synced: bool,
}

#[derive(Debug)]
struct Body {
    key: Arc<ResourceKey>,
    labels: Arc<Labels>,
    spec: Arc<SharedSpec>,
}

/// A copy's creation and modification times, packed: two `Option<Timestamp>` take 48
/// bytes, these 24.
#[derive(Debug, Clone, Copy)]
struct Times {
    seconds: [i64; 2],
    /// `ABSENT` when the time is unknown.
    nanos: [i32; 2],
}

impl Times {
    /// Out of a `Timestamp`'s sub-second range (±999,999,999).
    const ABSENT: i32 = i32::MIN;

    fn new(creation: Option<Timestamp>, modification: Option<Timestamp>) -> Self {
        let part =
            |t: Option<Timestamp>| t.map_or((0, Self::ABSENT), |t| (t.as_second(), t.subsec_nanosecond()));
        let ((cs, cn), (ms, mn)) = (part(creation), part(modification));
        Self {
            seconds: [cs, ms],
            nanos: [cn, mn],
        }
    }

    fn get(self, i: usize) -> Option<Timestamp> {
        if self.nanos[i] == Self::ABSENT {
            return None;
        }
        Timestamp::new(self.seconds[i], self.nanos[i]).ok()
    }

    fn creation(self) -> Option<Timestamp> {
        self.get(0)
    }

    fn modification(self) -> Option<Timestamp> {
        self.get(1)
    }
}

/// A spec as copies share it.
#[derive(Debug)]
pub(super) struct SharedSpec {
    /// Compact JSON; `serde_json`'s `float_roundtrip` makes parsing it give back the
    /// exact `Value`.
    json: Box<str>,
    fingerprint: Fingerprint,
    digest: u128,
}

impl Stored {
    /// This copy is its slot's one finding, and synced: such a slot (nearly all of them)
    /// is not kept in the slot table, this flag is its whole state. Kept in the box, not
    /// the entry, where it would cost 8 bytes of padding in every table bucket.
    pub(super) fn synced(&self) -> bool {
        match self {
            Stored::Whole(s) => s.synced,
            Stored::Copy(c) => c.synced,
        }
    }

    pub(super) fn set_synced(&mut self, synced: bool) {
        match self {
            Stored::Whole(s) => s.synced = synced,
            Stored::Copy(c) => c.synced = synced,
        }
    }

    pub(super) fn name(&self) -> &str {
        match self {
            Stored::Whole(s) => &s.meta.name,
            Stored::Copy(c) => &c.body.key.name,
        }
    }

    pub(super) fn fingerprint(&self) -> Fingerprint {
        match self {
            Stored::Whole(s) => s.spec.fingerprint,
            Stored::Copy(c) => c.body.spec.fingerprint,
        }
    }

    /// The source as it came; `None` for a copy.
    pub(super) fn source(&self) -> Option<&Source> {
        match self {
            Stored::Whole(s) => Some(s),
            Stored::Copy(_) => None,
        }
    }

    pub(super) fn spec(&self) -> Cow<'_, Value> {
        match self {
            Stored::Whole(s) => Cow::Owned(s.spec.value()),
            Stored::Copy(c) => Cow::Owned(c.body.spec.value()),
        }
    }

    /// When the resource last changed, else when it was created, as its control plane says.
    pub(super) fn modified_at(&self) -> Option<Timestamp> {
        match self {
            Stored::Whole(s) => s.meta.modification_time.or(s.meta.creation_time),
            Stored::Copy(c) => c.times.modification().or(c.times.creation()),
        }
    }

    /// The resource as it was observed (a copy is rebuilt).
    pub(super) fn resource(&self) -> Cow<'_, Resource> {
        match self {
            Stored::Whole(s) => Cow::Owned(Resource {
                spec: s.spec.value(),
                ..s.meta.clone()
            }),
            Stored::Copy(c) => Cow::Owned(Resource {
                rtype: c.body.key.rtype,
                mesh: c.body.key.mesh.clone(),
                name: c.body.key.name.clone(),
                labels: (*c.body.labels).clone(),
                spec: c.body.spec.value(),
                status: c.status.as_deref().cloned(),
                creation_time: c.times.creation(),
                modification_time: c.times.modification(),
            }),
        }
    }

    /// Whether `r` is exactly what is stored.
    pub(super) fn is(&self, r: &Resource) -> bool {
        match self {
            Stored::Whole(s) => {
                let m = &s.meta;
                m.rtype == r.rtype
                    && m.mesh == r.mesh
                    && m.name == r.name
                    && m.labels == r.labels
                    && m.status == r.status
                    && m.creation_time == r.creation_time
                    && m.modification_time == r.modification_time
                    && s.spec.digest == exact_digest(&r.spec)
            }
            Stored::Copy(c) => {
                let b = &c.body;
                b.key.rtype == r.rtype
                    && b.key.mesh == r.mesh
                    && b.key.name == r.name
                    && *b.labels == r.labels
                    && c.status.as_deref() == r.status.as_ref()
                    && c.times.creation() == r.creation_time
                    && c.times.modification() == r.modification_time
                    && b.spec.digest == exact_digest(&r.spec)
            }
        }
    }
}

impl Source {
    pub(super) fn fingerprint(&self) -> Fingerprint {
        self.spec.fingerprint
    }
}

impl SharedSpec {
    fn value(&self) -> Value {
        // Written by serde_json from a Value a moment before: it parses.
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }
}

/// Keys, specs and label sets shared by copies. Specs are found by their exact digest, not
/// their fingerprint: two specs with one fingerprint may be spelled differently (`1m`
/// and `1m0s`), and a copy must give back exactly what was observed.
#[derive(Debug, Default)]
pub(super) struct Shared {
    specs: HashMap<u128, Arc<SharedSpec>>,
    labels: HashSet<Arc<Labels>>,
    keys: HashSet<Arc<ResourceKey>>,
    /// Bodies by their parts: the key and labels by address (they are interned, so one
    /// address is one value while it lives), the spec by digest.
    bodies: HashMap<(usize, usize, u128), Arc<Body>>,
    /// The parsed parts of copies that were shared instead of kept, not dropped yet: see
    /// [`Shared::take_leftovers`].
    leftovers: Vec<Leftover>,
}

/// What a copy arrived with and the engine does not keep.
#[derive(Debug)]
pub(super) struct Leftover {
    _spec: Value,
    _labels: Option<Labels>,
}

fn body_id(key: &Arc<ResourceKey>, labels: &Arc<Labels>, digest: u128) -> (usize, usize, u128) {
    (Arc::as_ptr(key) as usize, Arc::as_ptr(labels) as usize, digest)
}

impl Shared {
    /// The shared key equal to `key`: a copy has the same name in every zone of one
    /// environment.
    pub(super) fn key(&mut self, key: ResourceKey) -> Arc<ResourceKey> {
        if let Some(shared) = self.keys.get(&key) {
            return shared.clone();
        }
        let shared = Arc::new(key);
        self.keys.insert(shared.clone());
        shared
    }

    /// The shared spec equal to `spec`, byte for byte once written.
    fn spec(&mut self, spec: &Value) -> Arc<SharedSpec> {
        let digest = exact_digest(spec);
        self.specs
            .entry(digest)
            .or_insert_with(|| {
                Arc::new(SharedSpec {
                    json: spec.to_string().into_boxed_str(),
                    fingerprint: fingerprint(spec),
                    digest,
                })
            })
            .clone()
    }

    /// Keeps `r` as a source, its spec shared; `expected_in_zone` as [`Source`] says.
    pub(super) fn source(
        &mut self,
        mut r: Resource,
        expected_in_zone: Box<[String]>,
        line: KumaLine,
    ) -> Stored {
        let spec = self.spec(&r.spec);
        let sending = sending(&r, line);
        self.leftovers.push(Leftover {
            _spec: std::mem::take(&mut r.spec),
            _labels: None,
        });
        Stored::Whole(Box::new(Source {
            meta: r,
            spec,
            sending,
            expected_in_zone,
            synced: false,
        }))
    }

    /// Keeps `r`, stored under `key` (from [`Shared::key`]), as a copy.
    pub(super) fn copy(&mut self, r: Resource, key: Arc<ResourceKey>) -> Stored {
        let spec = self.spec(&r.spec);
        let digest = spec.digest;
        let (labels, unkept) = match self.labels.get(&r.labels) {
            Some(shared) => (shared.clone(), Some(r.labels)),
            None => {
                let labels = Arc::new(r.labels);
                self.labels.insert(labels.clone());
                (labels, None)
            }
        };
        self.leftovers.push(Leftover {
            _spec: r.spec,
            _labels: unkept,
        });
        let body = self
            .bodies
            .entry(body_id(&key, &labels, digest))
            .or_insert_with(|| Arc::new(Body { key, labels, spec }))
            .clone();
        Stored::Copy(Compact {
            body,
            status: r.status.map(Box::new),
            times: Times::new(r.creation_time, r.modification_time),
            synced: false,
        })
    }

    /// The parsed specs and labels of the copies stored since the last call. A parsed
    /// spec is ~50 small allocations; freeing a million of them is most of a cold
    /// start's time, and nothing waits on it (see `Engine::run`).
    pub(super) fn take_leftovers(&mut self) -> Vec<Leftover> {
        std::mem::take(&mut self.leftovers)
    }

    /// Forgets the key, spec and labels of a copy no longer stored when no other copy
    /// uses them.
    pub(super) fn release(&mut self, stored: &Stored) {
        let c = match stored {
            Stored::Whole(s) => {
                if Arc::strong_count(&s.spec) == 2 {
                    self.specs.remove(&s.spec.digest);
                }
                return;
            }
            Stored::Copy(c) => c,
        };
        // The interner's reference and the copy's own: nobody else holds it.
        if Arc::strong_count(&c.body) != 2 {
            return;
        }
        let b = &c.body;
        self.bodies.remove(&body_id(&b.key, &b.labels, b.spec.digest));
        // Now held by this body and their interners; other bodies may share them.
        if Arc::strong_count(&b.spec) == 2 {
            self.specs.remove(&b.spec.digest);
        }
        if Arc::strong_count(&b.labels) == 2 {
            self.labels.remove(&*b.labels);
        }
        if Arc::strong_count(&b.key) == 2 {
            self.keys.remove(&*b.key);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> (usize, usize) {
        (self.specs.len(), self.labels.len())
    }

    #[cfg(test)]
    pub(super) fn keys_len(&self) -> usize {
        self.keys.len()
    }
}
