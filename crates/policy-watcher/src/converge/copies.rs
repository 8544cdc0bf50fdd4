//! How a stored resource is kept. A zone's copies of other control planes' resources are
//! most of the engine's state (100 zones x 10,000 policies is a million copies) and are
//! near-identical: each is kept with its spec and labels shared with every copy that has
//! the same ones, and rebuilt as a whole [`Resource`] only when someone asks for it.
//!
//! A serde_json object costs ~640 bytes whatever it holds, so a 400-byte spec parsed is
//! ~7 KiB; sharing brings a million copies of 10,000 policies down to ~10,000 specs
//! (`docs/benchmarks.md`).

use std::{
    collections::BTreeMap,
    sync::{Arc, OnceLock},
};

use foldhash::{HashMap, HashSet};
use jiff::Timestamp;
use kuma_model::{Resource, ResourceType, fingerprint::exact_digest};
use serde_json::Value;

type Labels = BTreeMap<String, String>;

/// A stored resource.
#[derive(Debug)]
pub(super) enum Stored {
    /// Sources (everything on the global, a zone's own resources): the engine derives
    /// names and sync decisions from them, so they are kept as they came.
    Whole(Resource),
    /// A zone's copy of a resource from elsewhere.
    Copy(Compact),
}

#[derive(Debug)]
pub(super) struct Compact {
    rtype: ResourceType,
    mesh: Option<String>,
    name: String,
    labels: Arc<Labels>,
    spec: Arc<Value>,
    spec_digest: u128,
    status: Option<Value>,
    creation_time: Option<Timestamp>,
    modification_time: Option<Timestamp>,
    /// Built on the first [`Stored::resource`] call (a report on a drifted copy).
    whole: OnceLock<Box<Resource>>,
}

impl Stored {
    pub(super) fn name(&self) -> &str {
        match self {
            Stored::Whole(r) => &r.name,
            Stored::Copy(c) => &c.name,
        }
    }

    pub(super) fn resource_key(&self) -> kuma_model::ResourceKey {
        match self {
            Stored::Whole(r) => r.key(),
            Stored::Copy(c) => kuma_model::ResourceKey {
                rtype: c.rtype,
                mesh: c.mesh.clone(),
                name: c.name.clone(),
            },
        }
    }

    pub(super) fn spec(&self) -> &Value {
        match self {
            Stored::Whole(r) => &r.spec,
            Stored::Copy(c) => &c.spec,
        }
    }

    /// When the resource last changed, else when it was created, as its control plane says.
    pub(super) fn modified_at(&self) -> Option<Timestamp> {
        match self {
            Stored::Whole(r) => r.modification_time.or(r.creation_time),
            Stored::Copy(c) => c.modification_time.or(c.creation_time),
        }
    }

    /// The resource as it was observed.
    pub(super) fn resource(&self) -> &Resource {
        match self {
            Stored::Whole(r) => r,
            Stored::Copy(c) => c.whole.get_or_init(|| {
                Box::new(Resource {
                    rtype: c.rtype,
                    mesh: c.mesh.clone(),
                    name: c.name.clone(),
                    labels: (*c.labels).clone(),
                    spec: (*c.spec).clone(),
                    status: c.status.clone(),
                    creation_time: c.creation_time,
                    modification_time: c.modification_time,
                })
            }),
        }
    }

    /// Whether `r` is exactly what is stored.
    pub(super) fn is(&self, r: &Resource) -> bool {
        match self {
            Stored::Whole(whole) => whole == r,
            Stored::Copy(c) => {
                c.rtype == r.rtype
                    && c.mesh == r.mesh
                    && c.name == r.name
                    && *c.labels == r.labels
                    && *c.spec == r.spec
                    && c.status == r.status
                    && c.creation_time == r.creation_time
                    && c.modification_time == r.modification_time
            }
        }
    }
}

/// Specs and label sets shared by copies. Specs are found by their exact digest, not
/// their fingerprint: two specs with one fingerprint may be spelled differently (`1m`
/// and `1m0s`), and a copy must give back exactly what was observed.
#[derive(Debug, Default)]
pub(super) struct Shared {
    specs: HashMap<u128, Arc<Value>>,
    labels: HashSet<Arc<Labels>>,
}

impl Shared {
    /// Keeps `r` as a copy, sharing its spec and labels with the copies that have the same.
    pub(super) fn copy(&mut self, r: Resource) -> Stored {
        let digest = exact_digest(&r.spec);
        let spec = self
            .specs
            .entry(digest)
            .or_insert_with(|| Arc::new(r.spec))
            .clone();
        let labels = match self.labels.get(&r.labels) {
            Some(shared) => shared.clone(),
            None => {
                let labels = Arc::new(r.labels);
                self.labels.insert(labels.clone());
                labels
            }
        };
        Stored::Copy(Compact {
            rtype: r.rtype,
            mesh: r.mesh,
            name: r.name,
            labels,
            spec,
            spec_digest: digest,
            status: r.status,
            creation_time: r.creation_time,
            modification_time: r.modification_time,
            whole: OnceLock::new(),
        })
    }

    /// Forgets the spec and labels of a copy being dropped when no other copy uses them.
    pub(super) fn release(&mut self, stored: &Stored) {
        let Stored::Copy(c) = stored else {
            return;
        };
        // The interner's reference and the copy's own: nobody else holds them.
        if Arc::strong_count(&c.spec) == 2 {
            self.specs.remove(&c.spec_digest);
        }
        if Arc::strong_count(&c.labels) == 2 {
            self.labels.remove(&*c.labels);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> (usize, usize) {
        (self.specs.len(), self.labels.len())
    }
}
