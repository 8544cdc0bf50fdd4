//! A zone that starts synced: its store filled, before its KDS client connects, with the
//! copies a completed global-to-zone sync would have left it, so a lab of a million
//! copies starts in seconds instead of syncing them all over KDS.
//!
//! The copies go through the same steps as on the wire: the global's filter and mappers
//! ([`generation::sent_to_zone`], [`generation::map_for_zone`]) and its encoding
//! ([`codec::encode`]), then the zone client's decoding (`client::received_copy`) and its
//! store's full-state rule ([`ZoneStore::apply_from_global`]). The client still connects
//! afterwards: its first full state then finds every copy identical and writes nothing,
//! and later changes arrive as deltas, as in any synced zone.

use std::collections::BTreeMap;

use kds_wire::features;
use kuma_model::{Environment, Resource, ResourceType};

use super::{ZoneStore, client::received_copy};
use crate::{
    GlobalStore,
    kds::{
        codec,
        generation::{self, WireEntry, ZoneView},
    },
};

/// What the global sends zones, read once for every zone of a lab: each type's resources
/// with their wire form, and each zone environment's reading of it.
pub struct GlobalCopies {
    global_env: Environment,
    types: Vec<TypeCopies>,
}

struct TypeCopies {
    rtype: ResourceType,
    /// Zone name -> `Zone.spec.enabled`, from the same read as the resources.
    zones_enabled: BTreeMap<String, bool>,
    /// The global's resource and its wire form, for every resource of the type.
    sent: Vec<(Resource, WireEntry)>,
    /// Per zone environment (Universal, or Kubernetes with its system namespace), each
    /// entry of `sent` as such a zone decodes it; filled on first use.
    decoded: Vec<(Environment, Vec<Result<Resource, String>>)>,
}

/// What a zone's KDS client announces in its node metadata: the filter and mappers
/// read these.
fn zone_view(zone: &str) -> ZoneView {
    ZoneView {
        zone: zone.to_owned(),
        features: features::ALL.iter().map(|f| (*f).to_owned()).collect(),
    }
}

impl GlobalCopies {
    /// Reads and encodes what `global` holds now of every type that syncs to zones.
    pub fn of(global: &GlobalStore) -> Self {
        let global_env = global.environment().clone();
        // The mappers depend on the zone's features only, never on its name: one
        // encoding serves every zone.
        let any_zone = zone_view("");
        let types = ResourceType::all()
            .filter(|t| t.info().flows_global_to_zone())
            .map(|rtype| {
                let (resources, zones_enabled) = global.view(rtype);
                let sent = resources
                    .into_iter()
                    .map(|r| {
                        let entry = codec::encode(&generation::map_for_zone(&r, &global_env, &any_zone));
                        (r, entry)
                    })
                    .collect();
                TypeCopies {
                    rtype,
                    zones_enabled,
                    sent,
                    decoded: Vec::new(),
                }
            })
            .collect();
        Self { global_env, types }
    }

    /// Fills `store` with its copies, as the first full state of every type would; returns
    /// how many copies it holds. A type whose copies clash with the zone's own resources
    /// is left out, as KDS leaves it (the client's sync of it then fails the same way).
    pub fn seed(&mut self, store: &ZoneStore) -> usize {
        let view = zone_view(store.name());
        let env = store.environment().clone();
        let mut held = 0;
        for t in &mut self.types {
            let at = t.decode_for(&env);
            let decoded = &t.decoded[at].1;
            // `generate` keys what it sends by delta key: one copy per key.
            let mut upserts: BTreeMap<&str, Resource> = BTreeMap::new();
            for ((r, entry), copy) in t.sent.iter().zip(decoded) {
                if !generation::sent_to_zone(r, &view, |z| t.zones_enabled.get(z).copied()) {
                    continue;
                }
                match copy {
                    Ok(copy) => {
                        upserts.insert(&entry.delta_key, copy.clone());
                    }
                    Err(reason) => {
                        tracing::warn!(zone = %store.name(), rtype = %t.rtype, %reason, "a copy the zone could not decode is left out");
                    }
                }
            }
            let count = upserts.len();
            let outcome = store.apply_from_global(t.rtype, upserts.into_values().collect(), &[], true);
            if outcome.fatal {
                tracing::warn!(zone = %store.name(), rtype = %t.rtype, conflicts = ?outcome.conflicts, "copies clash with the zone's own resources; left to KDS");
                continue;
            }
            held += count - outcome.conflicts.len();
        }
        tracing::debug!(zone = %store.name(), global = %self.global_env, held, "zone starts synced");
        held
    }
}

impl TypeCopies {
    /// Where in `decoded` the copies for a zone on `env` are, decoding them on first use.
    fn decode_for(&mut self, env: &Environment) -> usize {
        match self.decoded.iter().position(|(e, _)| e == env) {
            Some(at) => at,
            None => {
                let rtype = self.rtype;
                let copies = self
                    .sent
                    .iter()
                    .map(|(_, entry)| received_copy(rtype, &entry.resource, env))
                    .collect();
                self.decoded.push((env.clone(), copies));
                self.decoded.len() - 1
            }
        }
    }
}
