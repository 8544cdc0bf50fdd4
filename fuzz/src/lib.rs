//! What the fuzz targets share: choosing a resource type from the input, and the
//! invariants every [`Resource`] a reader accepts must hold, whatever format it came in.

use std::collections::HashSet;

use kuma_model::{
    Resource, ResourceType,
    read::{ReadOptions, read_str},
    types::SpecEncoding,
};
use serde_json::{Map, Value};

/// The type named `hint` if it is one of `candidates`, else one of them chosen by `seed`,
/// so inputs that name no type (or the wrong one) still reach every type's path.
pub fn pick_type(
    hint: Option<&str>,
    seed: usize,
    candidates: impl Iterator<Item = ResourceType>,
) -> ResourceType {
    let candidates: Vec<_> = candidates.collect();
    hint.and_then(ResourceType::from_name)
        .filter(|t| candidates.contains(t))
        .unwrap_or(candidates[seed % candidates.len()])
}

/// What holds for any resource a reader accepted: a mesh-scoped type has a mesh, a
/// global-scoped one none, and the name is not empty.
pub fn check_resource(r: &Resource) {
    assert!(!r.name.is_empty(), "accepted a resource without a name: {r:?}");
    if r.rtype.info().is_mesh_scoped() {
        assert!(
            r.mesh.as_deref().is_some_and(|m| !m.is_empty()),
            "mesh-scoped {} without a mesh: {r:?}",
            r.rtype
        );
    } else {
        assert_eq!(r.mesh, None, "global-scoped {} with a mesh: {r:?}", r.rtype);
    }
}

/// Every resource of one read is there once: the readers merge or refuse repeats.
pub fn check_unique(resources: &[Resource]) {
    let mut keys = HashSet::new();
    for r in resources {
        assert!(keys.insert(r.key()), "{} {:?} read twice", r.rtype, r.name);
    }
}

/// Writes `r` in Kuma's universal form (what `kumactl get -o json` prints) and reads it
/// back: the same resource must come out. Only for JSON-encoded types, whose universal
/// form keeps the spec under `spec:`; a proto-based type's spec fields share the top
/// level with the meta fields, so a spec read from Kubernetes may not fit there.
pub fn check_universal_round_trip(r: &Resource) {
    if r.rtype.info().spec_encoding != SpecEncoding::Json {
        return;
    }
    let mut doc = Map::new();
    doc.insert("type".into(), r.rtype.name().into());
    doc.insert("name".into(), r.name.clone().into());
    if let Some(mesh) = &r.mesh {
        doc.insert("mesh".into(), mesh.clone().into());
    }
    if !r.labels.is_empty() {
        doc.insert("labels".into(), serde_json::to_value(&r.labels).expect("labels"));
    }
    doc.insert("spec".into(), r.spec.clone());
    if let Some(status) = &r.status {
        doc.insert("status".into(), status.clone());
    }
    for (key, time) in [
        ("creationTime", r.creation_time),
        ("modificationTime", r.modification_time),
    ] {
        if let Some(t) = time {
            doc.insert(key.into(), t.to_string().into());
        }
    }
    let text = Value::Object(doc).to_string();
    let again = read_str("round-trip", &text, &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{r:?} written as {text} does not read back: {e}"));
    assert_eq!(again.resources, std::slice::from_ref(r), "written as {text}");
}
