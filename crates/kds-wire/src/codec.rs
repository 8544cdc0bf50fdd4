//! A `KumaResource` in and out of its delta-resource envelope (kuma-semantics 4): the
//! delta resource's Any holds the `KumaResource`, whose own Any holds the spec. What a
//! spec's bytes mean (JSON, protobuf) is for the reader to decide.

use std::collections::BTreeMap;

use prost::Message;
use prost_types::Any;

use crate::{DeltaResource, KumaResource};

/// The inner Any type of every KDS resource (kuma-semantics 4).
pub const KUMA_RESOURCE_TYPE_URL: &str = "type.googleapis.com/kuma.mesh.v1alpha1.KumaResource";

/// The parts of a decoded `KumaResource` its readers keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireResource {
    /// `None` for global-scoped types (an empty `meta.mesh`).
    pub mesh: Option<String>,
    /// Never empty.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The spec's bytes as sent; empty when there is no spec.
    pub spec: Vec<u8>,
}

/// Why a delta resource holds no usable `KumaResource`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The delta resource carries no Any.
    #[error("the resource has no payload")]
    NoPayload,
    /// The Any is not a `KumaResource`.
    #[error("unexpected payload type {0:?}")]
    PayloadType(String),
    /// The bytes are not a `KumaResource`.
    #[error("invalid KumaResource: {0}")]
    Invalid(String),
    /// The `KumaResource` has no meta.
    #[error("the resource has no meta")]
    NoMeta,
    /// `meta.name` is empty.
    #[error("the resource has an empty name")]
    EmptyName,
}

/// Opens the envelope of `wire`.
pub fn decode(wire: &DeltaResource) -> Result<WireResource, DecodeError> {
    let any = wire.resource.as_ref().ok_or(DecodeError::NoPayload)?;
    if any.type_url != KUMA_RESOURCE_TYPE_URL {
        return Err(DecodeError::PayloadType(any.type_url.clone()));
    }
    let kr = KumaResource::decode(any.value.as_slice()).map_err(|e| DecodeError::Invalid(e.to_string()))?;
    let meta = kr.meta.ok_or(DecodeError::NoMeta)?;
    if meta.name.is_empty() {
        return Err(DecodeError::EmptyName);
    }
    Ok(WireResource {
        mesh: (!meta.mesh.is_empty()).then_some(meta.mesh),
        name: meta.name,
        // A BTreeMap straight from prost (build.rs): moved, not re-collected.
        labels: meta.labels,
        spec: kr.spec.map(|a| a.value).unwrap_or_default(),
    })
}

/// Wraps `kr` as the delta resource `delta_key` at `version`.
pub fn encode(delta_key: String, version: String, kr: &KumaResource) -> DeltaResource {
    DeltaResource {
        name: delta_key,
        version,
        resource: Some(Any {
            type_url: KUMA_RESOURCE_TYPE_URL.to_owned(),
            value: kr.encode_to_vec(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Meta;

    fn kuma_resource(name: &str, mesh: &str) -> KumaResource {
        let labels = [("team".to_owned(), "a".to_owned())].into();
        let meta = Meta {
            name: name.into(),
            mesh: mesh.into(),
            labels,
            ..Meta::default()
        };
        let spec = Any {
            value: b"{}".to_vec(),
            ..Any::default()
        };
        KumaResource {
            meta: Some(meta),
            spec: Some(spec),
            status: None,
        }
    }

    #[test]
    fn what_is_encoded_decodes() {
        let wire = encode("cb.default".into(), "v1".into(), &kuma_resource("cb", "default"));
        assert_eq!((wire.name.as_str(), wire.version.as_str()), ("cb.default", "v1"));
        let r = decode(&wire).unwrap();
        assert_eq!((r.name.as_str(), r.mesh.as_deref()), ("cb", Some("default")));
        assert_eq!(r.labels["team"], "a");
        assert_eq!(r.spec, b"{}");
        let global = decode(&encode("m.".into(), "v".into(), &kuma_resource("m", ""))).unwrap();
        assert_eq!(global.mesh, None);
    }

    #[test]
    fn broken_envelopes_say_what_is_wrong() {
        let mut wire = encode("x.".into(), "v".into(), &kuma_resource("", ""));
        assert_eq!(decode(&wire), Err(DecodeError::EmptyName));
        wire.resource.as_mut().unwrap().value = vec![0xff; 16];
        assert!(matches!(decode(&wire), Err(DecodeError::Invalid(_))));
        wire.resource.as_mut().unwrap().type_url = "type.googleapis.com/other".into();
        assert!(matches!(decode(&wire), Err(DecodeError::PayloadType(_))));
        let nometa = encode("x.".into(), "v".into(), &KumaResource::default());
        assert_eq!(decode(&nometa), Err(DecodeError::NoMeta));
        wire.resource = None;
        assert_eq!(
            decode(&wire).unwrap_err().to_string(),
            "the resource has no payload"
        );
    }
}
