//! From wire resources to view entries (kuma-semantics section 4).

use std::collections::BTreeMap;

use jiff::Timestamp;
use kds_proto::{DeltaResource, KUMA_RESOURCE_TYPE_URL, KumaResource};
use kuma_model::{Fingerprint, ResourceType, fingerprint, fingerprint_json, types::SpecEncoding};
use prost::Message;
use serde_json::Value;

use crate::view::{Entry, Spec, split_delta_key};

/// Decodes one resource of a response. Never fails: what cannot be decoded becomes an
/// entry without a [`Spec`], named from its delta key, carrying the reason.
///
/// The spec is fingerprinted from its bytes and kept as bytes: nothing on the probe's
/// path needs it parsed (see [`Spec`]).
pub fn decode_entry(rtype: ResourceType, wire: &DeltaResource, now: Timestamp) -> Entry {
    match decode_resource(rtype, wire) {
        Ok(d) => Entry {
            mesh: d.mesh,
            name: d.name,
            labels: d.labels,
            version: wire.version.clone(),
            fingerprint: d.fingerprint,
            first_seen: now,
            last_changed: now,
            spec: Some(d.spec),
            decode_error: None,
        },
        Err(reason) => {
            let raw = wire
                .resource
                .as_ref()
                .map(|a| a.value.as_slice())
                .unwrap_or_default();
            let (name, mesh) = split_delta_key(&wire.name);
            Entry {
                mesh: mesh.map(str::to_owned),
                name: name.to_owned(),
                labels: BTreeMap::new(),
                version: wire.version.clone(),
                fingerprint: raw_fingerprint(raw),
                first_seen: now,
                last_changed: now,
                spec: None,
                decode_error: Some(reason),
            }
        }
    }
}

/// The parts of a decoded resource an [`Entry`] keeps.
struct Decoded {
    mesh: Option<String>,
    name: String,
    labels: BTreeMap<String, String>,
    fingerprint: Fingerprint,
    spec: Spec,
}

fn decode_resource(rtype: ResourceType, wire: &DeltaResource) -> Result<Decoded, String> {
    let any = wire.resource.as_ref().ok_or("the resource has no payload")?;
    if any.type_url != KUMA_RESOURCE_TYPE_URL {
        return Err(format!("unexpected payload type {:?}", any.type_url));
    }
    let kr = KumaResource::decode(any.value.as_slice()).map_err(|e| format!("invalid KumaResource: {e}"))?;
    let meta = kr.meta.ok_or("the resource has no meta")?;
    if meta.name.is_empty() {
        return Err("the resource has an empty name".to_owned());
    }
    let spec_bytes = kr.spec.map(|a| a.value).unwrap_or_default();
    let fingerprint = match rtype.info().spec_encoding {
        // An empty spec is read as `{}`, as `Spec::value` gives it.
        SpecEncoding::Json if spec_bytes.is_empty() => fingerprint(&Value::Object(Default::default())),
        SpecEncoding::Json => fingerprint_json(&spec_bytes).map_err(|e| format!("spec is not JSON: {e}"))?,
        // Protobuf specs are not decoded: their bytes are deterministic, so a fingerprint
        // of them still tells changes apart.
        SpecEncoding::Proto(_) => raw_fingerprint(&spec_bytes),
    };
    Ok(Decoded {
        mesh: (!meta.mesh.is_empty()).then_some(meta.mesh),
        name: meta.name,
        // A BTreeMap straight from prost (kds-proto's build.rs): moved, not re-collected.
        labels: meta.labels,
        fingerprint,
        spec: Spec::new(rtype, spec_bytes),
    })
}

/// A fingerprint of bytes, through the JSON fingerprint of their hex form so one
/// function defines every fingerprint in the view.
fn raw_fingerprint(bytes: &[u8]) -> Fingerprint {
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
        let r = e.resource().expect("decoded");
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
    fn specs_are_fingerprinted_from_their_bytes_and_parsed_on_demand() {
        let mcb = ResourceType::from_name("MeshCircuitBreaker").unwrap();
        // Go's field order, not sorted, with a duration spelled as Go prints it.
        let text = br#"{"targetRef": {"kind": "Mesh"}, "to": [{"targetRef": {"name": "redis", "kind": "MeshService"},
            "default": {"outlierDetection": {"interval": "1m0s", "disabled": false}, "connectionLimits": null}}]}"#;
        let e = decode_entry(mcb, &wire("cb-1", "default", text), Timestamp::now());
        let parsed: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(e.fingerprint, fingerprint(&parsed));
        assert_eq!(e.spec.as_ref().unwrap().bytes(), text);
        let r = e.resource().unwrap();
        assert_eq!(r.spec, parsed);
        assert_eq!(r.labels, e.labels);
        assert_eq!(e.clone().into_resource(), Some(r));
    }

    #[test]
    fn an_empty_json_spec_is_an_empty_object() {
        let mtp = ResourceType::from_name("MeshTrafficPermission").unwrap();
        let e = decode_entry(mtp, &wire("empty", "default", b""), Timestamp::now());
        assert_eq!(e.fingerprint, fingerprint(&json!({})));
        assert_eq!(e.resource().unwrap().spec, json!({}));
    }

    #[test]
    fn undecodable_resources_become_entries_without_resource() {
        let mtp = ResourceType::from_name("MeshTrafficPermission").unwrap();
        let e = decode_entry(mtp, &wire("bad", "default", b"{not json"), Timestamp::now());
        assert!(e.spec.is_none() && e.resource().is_none());
        assert!(e.decode_error.as_deref().unwrap().contains("not JSON"));
        assert_eq!(
            e.fingerprint,
            raw_fingerprint(&wire("bad", "default", b"{not json").resource.unwrap().value)
        );
        assert_eq!((e.name.as_str(), e.mesh.as_deref()), ("bad", Some("default")));
        // Trailing bytes after the spec are an error, as for `serde_json::from_slice`.
        let e = decode_entry(mtp, &wire("trailing", "default", b"{} {}"), Timestamp::now());
        assert!(e.decode_error.as_deref().unwrap().contains("not JSON"));
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
        assert_eq!(a.resource().unwrap().mesh, None);
        assert_ne!(a.fingerprint, b.fingerprint);
    }
}
