//! From wire resources to view entries (kuma-facts section 4).

use std::collections::BTreeMap;

use jiff::Timestamp;
use kds_proto::{DeltaResource, KUMA_RESOURCE_TYPE_URL, KumaResource};
use kuma_model::{Resource, ResourceType, fingerprint, types::SpecEncoding};
use prost::Message;
use serde_json::Value;

use crate::view::{Entry, split_delta_key};

/// Decodes one resource of a response. Never fails: what cannot be decoded becomes an
/// entry without a [`Resource`], named from its delta key, carrying the reason.
pub fn decode_entry(rtype: ResourceType, wire: &DeltaResource, now: Timestamp) -> Entry {
    let raw = wire
        .resource
        .as_ref()
        .map(|a| a.value.as_slice())
        .unwrap_or_default();
    match decode_resource(rtype, wire) {
        Ok((resource, fp)) => Entry {
            mesh: resource.mesh.clone(),
            name: resource.name.clone(),
            labels: resource.labels.clone(),
            version: wire.version.clone(),
            fingerprint: fp,
            first_seen: now,
            last_changed: now,
            resource: Some(resource),
            decode_error: None,
        },
        Err(reason) => {
            let (name, mesh) = split_delta_key(&wire.name);
            Entry {
                mesh: mesh.map(str::to_owned),
                name: name.to_owned(),
                labels: BTreeMap::new(),
                version: wire.version.clone(),
                fingerprint: raw_fingerprint(raw),
                first_seen: now,
                last_changed: now,
                resource: None,
                decode_error: Some(reason),
            }
        }
    }
}

fn decode_resource(
    rtype: ResourceType,
    wire: &DeltaResource,
) -> Result<(Resource, kuma_model::Fingerprint), String> {
    let any = wire.resource.as_ref().ok_or("the resource has no payload")?;
    if any.type_url != KUMA_RESOURCE_TYPE_URL {
        return Err(format!("unexpected payload type {:?}", any.type_url));
    }
    let kr = KumaResource::decode(any.value.as_slice()).map_err(|e| format!("invalid KumaResource: {e}"))?;
    let meta = kr.meta.ok_or("the resource has no meta")?;
    if meta.name.is_empty() {
        return Err("the resource has an empty name".to_owned());
    }
    let spec_bytes = kr.spec.as_ref().map(|a| a.value.as_slice()).unwrap_or_default();
    let (spec, fp) = match rtype.info().spec_encoding {
        SpecEncoding::Json => {
            let spec: Value = if spec_bytes.is_empty() {
                Value::Object(Default::default())
            } else {
                serde_json::from_slice(spec_bytes).map_err(|e| format!("spec is not JSON: {e}"))?
            };
            let fp = fingerprint(&spec);
            (spec, fp)
        }
        // Protobuf specs are not decoded: their bytes are deterministic, so a fingerprint
        // of them still tells changes apart.
        SpecEncoding::Proto(_) => (Value::Null, raw_fingerprint(spec_bytes)),
    };
    let mut resource = Resource::new(
        rtype,
        (!meta.mesh.is_empty()).then_some(meta.mesh.as_str()),
        &meta.name,
        spec,
    );
    resource.labels = meta.labels.into_iter().collect();
    Ok((resource, fp))
}

/// A fingerprint of bytes, through the JSON fingerprint of their hex form so one
/// function defines every fingerprint in the view.
fn raw_fingerprint(bytes: &[u8]) -> kuma_model::Fingerprint {
    use std::fmt::Write;
    let mut hex = String::with_capacity(bytes.len() * 2 + 4);
    hex.push_str("raw:");
    for b in bytes {
        let _ = write!(hex, "{b:02x}");
    }
    fingerprint(&Value::String(hex))
}

#[cfg(test)]
mod tests {
    use kds_proto::Meta;
    use prost_types::Any;
    use serde_json::json;

    use super::*;

    fn wire(name: &str, mesh: &str, spec: &[u8]) -> DeltaResource {
        let kr = KumaResource {
            meta: Some(Meta {
                name: name.into(),
                mesh: mesh.into(),
                version: String::new(),
                labels: [("kuma.io/origin".to_owned(), "global".to_owned())].into(),
            }),
            spec: Some(Any {
                type_url: String::new(),
                value: spec.to_vec(),
            }),
            status: None,
        };
        DeltaResource {
            name: format!("{name}.{mesh}"),
            version: "abc".into(),
            resource: Some(Any {
                type_url: KUMA_RESOURCE_TYPE_URL.into(),
                value: kr.encode_to_vec(),
            }),
        }
    }

    #[test]
    fn json_specs_decode_into_resources() {
        let mtp = ResourceType::from_name("MeshTrafficPermission").unwrap();
        let spec = json!({"targetRef": {"kind": "Mesh"}, "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}]});
        let e = decode_entry(
            mtp,
            &wire("allow-x7", "default", spec.to_string().as_bytes()),
            Timestamp::now(),
        );
        let r = e.resource.expect("decoded");
        assert_eq!(
            (r.name.as_str(), r.mesh.as_deref()),
            ("allow-x7", Some("default"))
        );
        assert_eq!(r.label("kuma.io/origin"), Some("global"));
        assert_eq!(r.spec, spec);
        assert_eq!(e.fingerprint, fingerprint(&spec));
        assert_eq!(e.version, "abc");
    }

    #[test]
    fn undecodable_resources_become_entries_without_resource() {
        let mtp = ResourceType::from_name("MeshTrafficPermission").unwrap();
        let e = decode_entry(mtp, &wire("bad", "default", b"{not json"), Timestamp::now());
        assert!(e.resource.is_none());
        assert!(e.decode_error.as_deref().unwrap().contains("not JSON"));
        assert_eq!((e.name.as_str(), e.mesh.as_deref()), ("bad", Some("default")));
        let mut garbage = wire("g", "default", b"{}");
        garbage.resource.as_mut().unwrap().value = vec![0xff, 0xff, 0xff];
        let e = decode_entry(mtp, &garbage, Timestamp::now());
        assert!(e.decode_error.unwrap().contains("invalid KumaResource"));
    }

    #[test]
    fn proto_specs_are_fingerprinted_by_bytes() {
        let mesh = ResourceType::from_name("Mesh").unwrap();
        let a = decode_entry(mesh, &wire("default", "", &[1, 2, 3]), Timestamp::now());
        let b = decode_entry(mesh, &wire("default", "", &[1, 2, 4]), Timestamp::now());
        assert_eq!(a.resource.as_ref().unwrap().mesh, None);
        assert_ne!(a.fingerprint, b.fingerprint);
    }
}
