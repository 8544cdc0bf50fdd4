//! Resources as Kuma's REST API prints them (`pkg/core/resources/model/rest`): meta fields
//! in Kuma's order, then `kri`, then the spec, nested under `spec` for Go-struct types and
//! inlined for proto-based ones.

use jiff::Timestamp;
use kuma_model::{
    Resource,
    resource::labels,
    types::{K8sKind, SpecEncoding},
};
use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::Value;

/// Go's zero `time.Time`, which Kuma prints for a resource that never had a time.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One REST item (`GET .../{name}` or a list entry).
pub struct RestItem<'a>(pub &'a Resource);

impl Serialize for RestItem<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut map = s.serialize_map(None)?;
        serialize_meta(&mut map, r, r.rtype.name())?;
        match r.rtype.info().spec_encoding {
            SpecEncoding::Json => {
                map.serialize_entry("spec", &r.spec)?;
                if let Some(status) = &r.status {
                    map.serialize_entry("status", status)?;
                }
            }
            SpecEncoding::Proto(_) => {
                if let Value::Object(fields) = &r.spec {
                    for (k, v) in fields {
                        map.serialize_entry(k, v)?;
                    }
                }
            }
        }
        map.end()
    }
}

/// `type, mesh?, name, creationTime, modificationTime, labels?, kri?` under `type_name`
/// (an overview prints its own type but its base resource's identity).
pub fn serialize_meta<M: SerializeMap>(map: &mut M, r: &Resource, type_name: &str) -> Result<(), M::Error> {
    map.serialize_entry("type", type_name)?;
    if let Some(mesh) = r.mesh.as_deref().filter(|m| !m.is_empty()) {
        map.serialize_entry("mesh", mesh)?;
    }
    map.serialize_entry("name", &r.name)?;
    map.serialize_entry("creationTime", &go_time(r.creation_time))?;
    map.serialize_entry("modificationTime", &go_time(r.modification_time))?;
    if !r.labels.is_empty() {
        map.serialize_entry("labels", &r.labels)?;
    }
    if let Some(kri) = kri(r) {
        map.serialize_entry("kri", &kri)?;
    }
    Ok(())
}

/// Kuma's resource identifier (`pkg/core/kri`): only types with a short name have one.
pub fn kri(r: &Resource) -> Option<String> {
    let K8sKind::Crd {
        short: Some(short), ..
    } = r.rtype.info().k8s
    else {
        return None;
    };
    Some(format!(
        "kri_{short}_{}_{}_{}_{}_",
        r.mesh_or_empty(),
        r.label(labels::ZONE).unwrap_or(""),
        r.namespace().unwrap_or(""),
        r.display_name(),
    ))
}

/// Go's `time.Time` JSON (RFC 3339, trailing zeros of the fraction trimmed).
pub fn go_time(t: Option<Timestamp>) -> String {
    t.map_or_else(|| GO_ZERO_TIME.to_owned(), |t| t.to_string())
}

/// protojson's `Timestamp`: UTC with 0, 3, 6 or 9 fractional digits.
pub fn proto_time(t: Timestamp) -> String {
    let whole = Timestamp::from_second(t.as_second()).unwrap_or(t).to_string();
    let nanos = t.subsec_nanosecond();
    let fraction = match nanos {
        0 => return whole,
        n if n % 1_000_000 == 0 => format!(".{:03}", n / 1_000_000),
        n if n % 1_000 == 0 => format!(".{:06}", n / 1_000),
        n => format!(".{n:09}"),
    };
    match whole.strip_suffix('Z') {
        Some(base) => format!("{base}{fraction}Z"),
        None => whole,
    }
}

#[cfg(test)]
mod tests {
    use kuma_model::ResourceType;
    use serde_json::json;

    use super::*;

    #[test]
    fn go_struct_items_keep_kumas_field_order() {
        let mut r = Resource::new(
            ResourceType::from_name("MeshCircuitBreaker").unwrap(),
            Some("default"),
            "cb",
            json!({"to": []}),
        )
        .with_label("kuma.io/mesh", "default");
        r.creation_time = Some("2024-01-08T17:25:45.5Z".parse().unwrap());
        let text = serde_json::to_string(&RestItem(&r)).unwrap();
        assert_eq!(
            text,
            r#"{"type":"MeshCircuitBreaker","mesh":"default","name":"cb","creationTime":"2024-01-08T17:25:45.5Z","modificationTime":"0001-01-01T00:00:00Z","labels":{"kuma.io/mesh":"default"},"kri":"kri_mcb_default___cb_","spec":{"to":[]}}"#
        );
    }

    #[test]
    fn proto_items_inline_their_spec() {
        let r = Resource::new(
            ResourceType::from_name("Mesh").unwrap(),
            None,
            "default",
            json!({"skipCreatingInitialPolicies": ["*"]}),
        );
        let v: Value = serde_json::to_value(RestItem(&r)).unwrap();
        assert_eq!(v["skipCreatingInitialPolicies"], json!(["*"]));
        assert_eq!(v["kri"], "kri_m____default_");
        assert!(v.get("spec").is_none() && v.get("mesh").is_none());
    }

    #[test]
    fn proto_times_use_three_six_or_nine_digits() {
        let t = |s: &str| proto_time(s.parse().unwrap());
        assert_eq!(t("2024-01-08T17:25:45Z"), "2024-01-08T17:25:45Z");
        assert_eq!(t("2024-01-08T17:25:45.5Z"), "2024-01-08T17:25:45.500Z");
        assert_eq!(t("2024-01-08T17:25:45.000001Z"), "2024-01-08T17:25:45.000001Z");
        assert_eq!(
            t("2024-01-08T17:25:45.000000001Z"),
            "2024-01-08T17:25:45.000000001Z"
        );
    }
}
