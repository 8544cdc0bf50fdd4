//! Feeds the bytes to the KDS probe as a global control plane's `DeltaDiscoveryResponse`
//! (what tonic's codec hands the session), and every resource in it to
//! `kds_probe::decode::decode_entry`, which decodes the `KumaResource` inside and
//! fingerprints its JSON spec. The whole input is also tried as the JSON spec of one
//! resource, so the spec decoder is reached without a valid protobuf around it.
//!
//! Asserts, beyond no panic: a decoded response re-encodes to itself; each entry has
//! either a spec or the reason it has none; a JSON spec the probe kept parses, and its
//! one-pass fingerprint equals the fingerprint of the parsed value (a spec that does not
//! parse is refused, not fingerprinted); the entry's resource has the entry's name, mesh
//! and labels.
#![no_main]

use jiff::Timestamp;
use kds_probe::decode::decode_entry;
use kds_wire::{DeltaDiscoveryResponse, DeltaResource, KUMA_RESOURCE_TYPE_URL, KumaResource, Meta};
use kuma_model::{ResourceType, fingerprint, types::SpecEncoding};
use kuma_sync_fuzz::pick_type;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use prost_types::Any;

fuzz_target!(|data: &[u8]| {
    let now = Timestamp::UNIX_EPOCH;
    if let Ok(response) = DeltaDiscoveryResponse::decode(data) {
        let again = DeltaDiscoveryResponse::decode(response.encode_to_vec().as_slice())
            .expect("a re-encoded response decodes");
        assert_eq!(again, response, "re-encoding changed the response");
        // The session drops a response for a type it did not subscribe to; any type will do
        // for the decoder.
        let rtype = pick_type(Some(&response.type_url), data.len(), ResourceType::all());
        for wire in &response.resources {
            check_entry(rtype, wire, now);
        }
    }
    let json_type = pick_type(
        None,
        data.len(),
        ResourceType::all().filter(|t| t.info().spec_encoding == SpecEncoding::Json),
    );
    check_entry(json_type, &wire_with_spec(data), now);
});

/// A resource `spec-test.default` whose spec is `spec`, as the global would send it.
fn wire_with_spec(spec: &[u8]) -> DeltaResource {
    let kr = KumaResource {
        meta: Some(Meta {
            name: "spec-test".into(),
            mesh: "default".into(),
            version: "1".into(),
            labels: Default::default(),
        }),
        spec: Some(Any {
            type_url: String::new(),
            value: spec.to_vec(),
        }),
        status: None,
    };
    DeltaResource {
        name: "spec-test.default".into(),
        version: "1".into(),
        resource: Some(Any {
            type_url: KUMA_RESOURCE_TYPE_URL.into(),
            value: kr.encode_to_vec(),
        }),
    }
}

fn check_entry(rtype: ResourceType, wire: &DeltaResource, now: Timestamp) {
    let entry = decode_entry(rtype, wire, now);
    assert_eq!(entry.version, wire.version);
    let Some(spec) = &entry.spec else {
        assert!(entry.decode_error.is_some(), "no spec and no reason: {entry:?}");
        assert!(entry.resource().is_none());
        return;
    };
    assert!(entry.decode_error.is_none(), "a spec and an error: {entry:?}");
    assert_eq!(spec.rtype(), rtype);
    let value = spec.value().expect("a kept spec parses");
    if rtype.info().spec_encoding == SpecEncoding::Json {
        assert_eq!(
            entry.fingerprint,
            fingerprint(&value),
            "one-pass fingerprint differs from the parsed spec's: {:?}",
            String::from_utf8_lossy(spec.bytes())
        );
        if !spec.bytes().is_empty() {
            let parsed: serde_json::Value =
                serde_json::from_slice(spec.bytes()).expect("a kept spec parses as JSON");
            assert_eq!(parsed, value);
        }
    }
    let r = entry.resource().expect("an entry with a spec has a resource");
    assert_eq!(
        (&r.name, &r.mesh, &r.labels, r.rtype),
        (&entry.name, &entry.mesh, &entry.labels, rtype)
    );
    assert!(!r.name.is_empty(), "accepted an empty name");
    assert_eq!(entry.clone().into_resource(), Some(r));
}
