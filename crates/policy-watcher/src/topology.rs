//! What the engine is asked to check: the control planes and the resources in scope.

use std::collections::BTreeSet;

use kuma_model::{Environment, KumaLine, Resource, ResourceType};

/// The global and the zones being verified.
#[derive(Debug, Clone)]
pub struct Topology {
    pub global: Environment,
    /// Monitored zones. Zones the global knows but that are not listed here are reported
    /// as unmonitored, never silently treated as converged.
    pub zones: Vec<ZoneSpec>,
    /// The Kuma whose sync rules apply (`sync_rules`).
    pub kuma: KumaLine,
}

impl Topology {
    /// A topology under the default rules (Kuma 2.x); [`Topology::with_kuma`] to choose.
    pub fn new(global: Environment, zones: Vec<ZoneSpec>) -> Self {
        Self {
            global,
            zones,
            kuma: KumaLine::default(),
        }
    }

    pub fn with_kuma(mut self, kuma: KumaLine) -> Self {
        self.kuma = kuma;
        self
    }
}

/// One monitored zone control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSpec {
    pub name: String,
    pub environment: Environment,
}

impl ZoneSpec {
    pub fn new(name: &str, environment: Environment) -> Self {
        Self {
            name: name.to_owned(),
            environment,
        }
    }
}

/// Which resources are checked.
#[derive(Debug, Clone)]
pub struct Selection {
    types: BTreeSet<ResourceType>,
    /// `None` checks every mesh.
    meshes: Option<BTreeSet<String>>,
}

impl Default for Selection {
    /// [`Selection::every_synced`] on Kuma 2.x.
    fn default() -> Self {
        Self::every_synced(KumaLine::default())
    }
}

impl Selection {
    /// Every type KDS copies on Kuma `line`, in every mesh
    /// ([`ResourceType::default_checked`]). Secrets are never in it: a watcher rarely may
    /// read them.
    pub fn every_synced(line: KumaLine) -> Self {
        Self {
            types: ResourceType::default_checked(line).collect(),
            meshes: None,
        }
    }

    pub fn new(types: impl IntoIterator<Item = ResourceType>, meshes: Option<Vec<String>>) -> Self {
        Self {
            types: types.into_iter().collect(),
            meshes: meshes.map(|m| m.into_iter().collect()),
        }
    }

    pub fn types(&self) -> impl Iterator<Item = ResourceType> + '_ {
        self.types.iter().copied()
    }

    /// Whether resources of `mesh` are in scope (global-scoped ones always are).
    pub fn selects_mesh(&self, mesh: Option<&str>) -> bool {
        match (&self.meshes, mesh) {
            (Some(meshes), Some(mesh)) => meshes.contains(mesh),
            _ => true,
        }
    }

    /// Whether the engine tracks `r` at all.
    pub fn selects(&self, r: &Resource) -> bool {
        self.types.contains(&r.rtype) && self.selects_mesh(r.mesh.as_deref())
    }
}
