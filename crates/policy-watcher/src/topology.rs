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
    /// When kuma-sync runs as several shards: the one this is. Zones the global knows
    /// that another shard owns are that shard's to report, not unmonitored here.
    pub shard: Option<Shard>,
}

impl Topology {
    /// A topology under the default rules (Kuma 2.x); [`Topology::with_kuma`] to choose.
    pub fn new(global: Environment, zones: Vec<ZoneSpec>) -> Self {
        Self {
            global,
            zones,
            kuma: KumaLine::default(),
            shard: None,
        }
    }

    pub fn with_kuma(mut self, kuma: KumaLine) -> Self {
        self.kuma = kuma;
        self
    }

    pub fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// Whether this kuma-sync judges `zone`: always, unless sharded.
    pub fn owns(&self, zone: &str) -> bool {
        self.shard.is_none_or(|s| s.owns(zone))
    }
}

/// One of `total` kuma-sync shards, each judging the zones rendezvous hashing gives it
/// (highest random weight: a zone belongs to the shard whose `xxh3_64(zone, shard)` is
/// highest). Every shard computes the same owner for a zone from its name and the shard
/// count alone, so no shard needs the others; going from N to N+1 shards moves only the
/// zones the new shard now wins (about 1/(N+1) of them), and removing one moves only its
/// own. The hash is part of kuma-sync's contract: changing it moves every zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub total: u32,
}

impl Shard {
    /// Shard `index` of `total` (0-based, as a StatefulSet's ordinals are).
    pub fn new(index: u32, total: u32) -> Result<Self, String> {
        if total == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if index >= total {
            return Err(format!(
                "shard {index} does not exist among {total} (0 to {})",
                total - 1
            ));
        }
        Ok(Self { index, total })
    }

    /// The shard of `total` that owns `zone`.
    pub fn owner(zone: &str, total: u32) -> u32 {
        (0..total.max(1))
            .max_by_key(|&i| {
                let mut h = xxhash_rust::xxh3::Xxh3::new();
                h.update(zone.as_bytes());
                h.update(&[0]);
                h.update(&i.to_le_bytes());
                // Ties (2^-64) go to the lower index, the same on every shard.
                (h.digest(), std::cmp::Reverse(i))
            })
            .unwrap_or(0)
    }

    pub fn owns(&self, zone: &str) -> bool {
        Self::owner(zone, self.total) == self.index
    }

    /// Shard 0 reports what belongs to no zone (the global's own health, the KDS probe).
    pub fn reports_global(&self) -> bool {
        self.index == 0
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

    /// Whether the engine tracks `r` at all. kuma-sync's canary is not compared: its
    /// copies are stale by design while a write travels, and its own metrics judge it.
    pub fn selects(&self, r: &Resource) -> bool {
        self.types.contains(&r.rtype)
            && self.selects_mesh(r.mesh.as_deref())
            && !r.labels.contains_key(kuma_model::labels::CANARY)
    }
}

#[cfg(test)]
mod shard_tests {
    use super::Shard;

    fn zones() -> Vec<String> {
        (0..1000).map(|i| format!("zone-{i}")).collect()
    }

    #[test]
    fn every_zone_has_exactly_one_owner_and_shares_are_even() {
        for total in [1, 2, 3, 7] {
            let shards: Vec<Shard> = (0..total).map(|i| Shard::new(i, total).unwrap()).collect();
            let mut per_shard = vec![0usize; total as usize];
            for z in zones() {
                let owners: Vec<u32> = shards.iter().filter(|s| s.owns(&z)).map(|s| s.index).collect();
                assert_eq!(owners.len(), 1, "{z} among {total}: {owners:?}");
                per_shard[owners[0] as usize] += 1;
            }
            let fair = 1000 / total as usize;
            for n in per_shard {
                assert!(
                    n.abs_diff(fair) < fair / 4 + 20,
                    "{total} shards: {n} zones, fair {fair}"
                );
            }
        }
    }

    #[test]
    fn adding_or_removing_a_shard_moves_only_its_zones() {
        for total in [1, 3, 6] {
            for z in zones() {
                let before = Shard::owner(&z, total);
                let after = Shard::owner(&z, total + 1);
                // A zone moves only to the new shard; removing it moves back only its zones.
                assert!(after == before || after == total, "{z}: {before} -> {after}");
            }
            let moved = zones()
                .iter()
                .filter(|z| Shard::owner(z, total) != Shard::owner(z, total + 1))
                .count();
            let share = 1000 / (total as usize + 1);
            assert!(
                moved.abs_diff(share) < share / 3 + 20,
                "{total}->{}: {moved} moved",
                total + 1
            );
        }
    }

    #[test]
    fn shard_indexes_are_checked() {
        assert!(Shard::new(0, 0).is_err());
        assert!(Shard::new(3, 3).unwrap_err().contains("0 to 2"));
        assert!(Shard::new(2, 3).is_ok());
        // The hash is a contract: these owners must never change.
        assert_eq!(
            ["zone-1", "zone-2", "zone-3", "zone-4"].map(|z| Shard::owner(z, 3)),
            [1, 0, 2, 2]
        );
    }
}
