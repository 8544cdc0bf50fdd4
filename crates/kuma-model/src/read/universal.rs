//! Kuma's universal form: what `kumactl get -o yaml`, `kumactl export --format=universal`
//! and the REST API show for one resource.
//!
//! Go-struct types (Mesh* policies, MeshService, ...) put their spec under `spec:` and
//! their status under `status:` (`pkg/core/resources/model/rest/v1alpha1/resource.go`).
//! Proto-based types inline their spec fields beside the meta fields
//! (`rest/unversioned/resource.go`), so everything that is not meta is spec.

use serde_json::{Map, Value};

use super::{Outcome, fields};
use crate::{Resource, types::SpecEncoding};

/// Meta fields every type has.
const META: &[&str] = &[
    "type",
    "name",
    "mesh",
    "labels",
    "creationTime",
    "modificationTime",
    "kri",
];
/// Further top-level fields of Go-struct types.
const STRUCT_FIELDS: &[&str] = &["spec", "status", "snis"];

/// Reads one resource in universal form.
pub(super) fn read(mut map: Map<String, Value>) -> Result<Outcome, String> {
    let type_name = fields::required_str(&map, "type", "type").map_err(|e| {
        if map.contains_key("metadata") {
            format!("{e} (a Kubernetes object also needs `apiVersion` and `kind`)")
        } else {
            e
        }
    })?;
    let rtype = match fields::known_type(type_name) {
        Ok(t) => t,
        Err(unknown) => return Ok(unknown),
    };
    let name = fields::name(&map, "name", "name", fields::max_name_chars(rtype))?.to_owned();
    let mesh = fields::scoped_mesh(rtype, &name, fields::optional_str(&map, "mesh", "mesh")?)?;
    let mut r = Resource::new(rtype, mesh.as_deref(), &name, Value::Null);
    r.labels = fields::string_map(map.get("labels"), "labels")?;
    r.creation_time = fields::timestamp(&map, "creationTime", "creationTime")?;
    r.modification_time = fields::timestamp(&map, "modificationTime", "modificationTime")?;
    match rtype.info().spec_encoding {
        SpecEncoding::Json => {
            if let Some(key) = map
                .keys()
                .find(|k| !META.contains(&k.as_str()) && !STRUCT_FIELDS.contains(&k.as_str()))
            {
                return Err(format!(
                    "unexpected top-level field `{key}`: the fields of a {rtype} go under `spec`"
                ));
            }
            r.spec = fields::mapping(map.remove("spec"), "spec")?;
            r.status = match map.remove("status") {
                None | Some(Value::Null) => None,
                status => Some(fields::mapping(status, "status")?),
            };
        }
        SpecEncoding::Proto(_) => {
            if map.contains_key("spec") {
                return Err(format!(
                    "unexpected top-level field `spec`: {rtype} is a proto-based type, its spec fields sit at the top level"
                ));
            }
            map.retain(|k, _| !META.contains(&k.as_str()));
            r.spec = Value::Object(map);
        }
    }
    Ok(Outcome::Resource(Box::new(r)))
}
