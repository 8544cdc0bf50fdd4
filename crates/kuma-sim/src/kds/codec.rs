//! A [`Resource`] on the simulator's wire, both ways: the `KumaResource` the simulator
//! sends (kuma-semantics 4) and the resource it makes of one it receives, on either side
//! of either stream. The envelope itself is `kds_wire::codec`'s.
//!
//! Deviation: proto-based types carry JSON bytes under their proto `type_url`, since the
//! simulator has no generated messages for them; clients treat those specs as opaque.

use kds_wire::{DeltaResource, KumaResource, Meta, codec};
use kuma_model::{Environment, Resource, ResourceKey, ResourceType, delta_key, types::SpecEncoding};
use prost_types::Any;
use serde_json::Value;

use super::generation::WireEntry;

/// How a receiver reads the spec of a protobuf-encoded type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProtoSpecs {
    /// As JSON, like every other spec: what the simulator's zones send the global.
    Json,
    /// As JSON when it is JSON, else `null`: a zone's reading of what a global sends,
    /// which may be real protobuf.
    JsonOrNull,
}

/// The `type_url` of a spec of `rtype`: empty for JSON types.
pub(crate) fn spec_type_url(rtype: ResourceType) -> String {
    match rtype.info().spec_encoding {
        SpecEncoding::Json => String::new(),
        SpecEncoding::Proto(proto) => format!("type.googleapis.com/{proto}"),
    }
}

/// `KumaResource` for an already mapped resource.
pub fn kuma_resource(mapped: &Resource) -> KumaResource {
    let info = mapped.rtype.info();
    // Serialising a `Value` cannot fail: its map keys are always strings.
    let spec = serde_json::to_vec(&mapped.spec).unwrap_or_default();
    KumaResource {
        meta: Some(Meta {
            name: mapped.name.clone(),
            mesh: mapped.mesh_or_empty().to_owned(),
            version: String::new(),
            labels: mapped
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }),
        spec: Some(Any {
            type_url: spec_type_url(mapped.rtype),
            value: spec,
        }),
        // The global drops status, then encodes the empty one for types that have it.
        status: info.has_status.then(|| Any {
            type_url: String::new(),
            value: b"{}".to_vec(),
        }),
    }
}

/// A deterministic, opaque version over what the peer receives. Kuma uses SHA-256 of the
/// deterministic protobuf; this hashes a canonical form with xxh3 instead, which is as
/// opaque to clients and cheaper.
pub fn version_of(mapped: &Resource, kr: &KumaResource) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [mapped.rtype.name(), &mapped.name, mapped.mesh_or_empty()] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    for (k, v) in &mapped.labels {
        h.update(k.as_bytes());
        h.update(&[1]);
        h.update(v.as_bytes());
        h.update(&[0]);
    }
    for any in [&kr.spec, &kr.status].into_iter().flatten() {
        h.update(any.type_url.as_bytes());
        h.update(&[2]);
        h.update(&any.value);
        h.update(&[0]);
    }
    format!("{:032x}", h.digest128())
}

/// An already mapped resource, ready for a response under its delta key.
pub fn encode(mapped: &Resource) -> WireEntry {
    let kr = kuma_resource(mapped);
    wire_entry(mapped.delta_key(), version_of(mapped, &kr), &kr)
}

/// Wraps a `KumaResource` as a delta resource.
pub fn wire_entry(delta_key: String, version: String, kr: &KumaResource) -> WireEntry {
    WireEntry {
        resource: codec::encode(delta_key.clone(), version, kr),
        delta_key,
        oversize_fault: false,
    }
}

/// The resource `wire` holds, as `rtype`; `Err` says why it cannot be read. An empty
/// spec reads as `{}` (except as `null` under [`ProtoSpecs::JsonOrNull`]).
pub(crate) fn resource(
    rtype: ResourceType,
    wire: &DeltaResource,
    proto: ProtoSpecs,
) -> Result<Resource, String> {
    let w = codec::decode(wire).map_err(|e| e.to_string())?;
    let spec = match (rtype.info().spec_encoding, proto) {
        (SpecEncoding::Proto(_), ProtoSpecs::JsonOrNull) => {
            serde_json::from_slice(&w.spec).unwrap_or(Value::Null)
        }
        _ if w.spec.is_empty() => Value::Object(Default::default()),
        _ => serde_json::from_slice(&w.spec).map_err(|e| format!("spec is not JSON: {e}"))?,
    };
    Ok(Resource {
        mesh: w.mesh,
        labels: w.labels,
        ..Resource::new(rtype, None, &w.name, spec)
    })
}

/// The store keys of `removed_resources`, as a store on `env` names its copies.
pub(crate) fn removed_keys(rtype: ResourceType, removed: &[String], env: &Environment) -> Vec<ResourceKey> {
    removed
        .iter()
        .map(|key| {
            let (name, mesh) = delta_key::split(key);
            ResourceKey {
                rtype,
                mesh: mesh.map(str::to_owned),
                name: env.stored_name(rtype, name.to_owned()),
            }
        })
        .collect()
}
