//! From wire resources to view entries (kuma-semantics section 4).

use std::collections::BTreeMap;

use jiff::Timestamp;
use kds_wire::{DeltaResource, WireResource, codec};
use kuma_model::{Fingerprint, ResourceType, delta_key, fingerprint, fingerprint_json, types::SpecEncoding};
use serde_json::Value;

use crate::view::{Entry, Spec};

/// Decodes one resource of a response. Never fails: what cannot be decoded becomes an
/// entry without a [`Spec`], named from its delta key, carrying the reason.
///
/// The spec is fingerprinted from its bytes and kept as bytes: nothing on the probe's
/// path needs it parsed (see [`Spec`]).
pub fn decode_entry(rtype: ResourceType, wire: &DeltaResource, now: Timestamp) -> Entry {
    match decode_resource(rtype, wire) {
        Ok((d, fingerprint)) => Entry {
            mesh: d.mesh,
            name: d.name,
            labels: d.labels,
            version: wire.version.clone(),
            fingerprint,
            first_seen: now,
            last_changed: now,
            spec: Some(Spec::new(rtype, d.spec)),
            decode_error: None,
        },
        Err(reason) => {
            let raw = wire
                .resource
                .as_ref()
                .map(|a| a.value.as_slice())
                .unwrap_or_default();
            let (name, mesh) = delta_key::split(&wire.name);
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

/// The resource and the fingerprint of its spec.
fn decode_resource(rtype: ResourceType, wire: &DeltaResource) -> Result<(WireResource, Fingerprint), String> {
    let decoded = codec::decode(wire).map_err(|e| e.to_string())?;
    let fingerprint = match rtype.info().spec_encoding {
        // An empty spec is read as `{}`, as `Spec::value` gives it.
        SpecEncoding::Json if decoded.spec.is_empty() => fingerprint(&Value::Object(Default::default())),
        SpecEncoding::Json => {
            fingerprint_json(&decoded.spec).map_err(|e| format!("spec is not JSON: {e}"))?
        }
        // Protobuf specs are not decoded: their bytes are deterministic, so a fingerprint
        // of them still tells changes apart.
        SpecEncoding::Proto(_) => raw_fingerprint(&decoded.spec),
    };
    Ok((decoded, fingerprint))
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
    use kds_wire::{KumaResource, Meta};
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
        codec::encode(delta_key::join(name, mesh), "abc".into(), &kr)
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
