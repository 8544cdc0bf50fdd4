//! What the requesting side of a delta stream sends: a zone on `GlobalToZoneSync`, and the
//! global on `ZoneToGlobalSync`, where the roles are reversed but the node is still the
//! zone's (kuma-semantics 3.1, 3.2). Also the gRPC metadata a zone puts on every call.

use prost_types::{ListValue, Struct, Value, value::Kind};
use tonic::metadata::{MetadataMap, MetadataValue, errors::InvalidMetadataValue};

use crate::{
    envoy::config::core::v3::Node, envoy::service::discovery::v3::DeltaDiscoveryRequest, features,
    google::rpc::Status,
};

/// `node` with the zone's id; with `full`, the metadata with every feature of
/// [`features::ALL`], which Kuma reads only from a type's first request (kuma-semantics 2.2).
pub fn node(zone: &str, full: bool) -> Node {
    let metadata = full.then(|| {
        let values = features::ALL
            .iter()
            .map(|f| Value {
                kind: Some(Kind::StringValue((*f).to_owned())),
            })
            .collect();
        Struct {
            fields: [(
                "features".to_owned(),
                Value {
                    kind: Some(Kind::ListValue(ListValue { values })),
                },
            )]
            .into(),
        }
    });
    Node {
        id: zone.to_owned(),
        metadata,
    }
}

/// `node.metadata.features`, a list of strings; what [`node`] wrote, read back.
pub fn node_features(node: &Node) -> Vec<String> {
    let Some(Kind::ListValue(list)) = node
        .metadata
        .as_ref()
        .and_then(|m| m.fields.get("features"))
        .and_then(|v| v.kind.as_ref())
    else {
        return Vec::new();
    };
    list.values
        .iter()
        .filter_map(|v| match &v.kind {
            Some(Kind::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// The first request of a type: wildcard, empty nonce, full node (kuma-semantics 3.1).
pub fn subscription(zone: &str, type_url: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: Some(node(zone, true)),
        type_url: type_url.to_owned(),
        resource_names_subscribe: vec!["*".to_owned()],
        ..Default::default()
    }
}

/// Accepts the response `nonce` of `type_url`.
pub fn ack(zone: &str, type_url: &str, nonce: String) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: Some(node(zone, false)),
        type_url: type_url.to_owned(),
        response_nonce: nonce,
        ..Default::default()
    }
}

/// Rejects the response `nonce` of `type_url` with `message`, and subscribes again to
/// everything, as Kuma's NACK does.
pub fn nack(zone: &str, type_url: &str, nonce: String, message: String) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        resource_names_subscribe: vec!["*".to_owned()],
        error_detail: Some(Status {
            message,
            ..Default::default()
        }),
        ..ack(zone, type_url, nonce)
    }
}

/// The gRPC metadata of every call a zone makes (kuma-semantics 2.1): `client-id` and
/// `features`, then with `kuma_version` also `kds-version` and `version`, which a real
/// zone sends and the global shows in its ZoneInsight. The probe sends neither
/// (kuma-semantics 5). Fails only when `client_id` cannot travel as metadata.
pub fn identify(
    md: &mut MetadataMap,
    client_id: &str,
    kuma_version: Option<&'static str>,
) -> Result<(), InvalidMetadataValue> {
    md.insert("client-id", MetadataValue::try_from(client_id)?);
    for f in features::HEADER {
        md.append("features", MetadataValue::from_static(f));
    }
    if let Some(version) = kuma_version {
        md.append("kds-version", MetadataValue::from_static("v3"));
        md.insert("version", MetadataValue::from_static(version));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_node_carries_the_features() {
        let full = node("zone-1", true);
        assert_eq!(full.id, "zone-1");
        assert_eq!(node_features(&full), features::ALL);
        let partial = node("zone-1", false);
        assert!(partial.metadata.is_none());
        assert!(node_features(&partial).is_empty());
    }

    #[test]
    fn a_nack_is_an_ack_with_an_error_and_a_wildcard() {
        let ack = ack("z", "MeshTimeout", "7".into());
        assert_eq!((ack.response_nonce.as_str(), ack.error_detail), ("7", None));
        assert!(ack.resource_names_subscribe.is_empty());
        let nack = nack("z", "MeshTimeout", "7".into(), "bad".into());
        assert_eq!(nack.error_detail.map(|e| e.message).as_deref(), Some("bad"));
        assert_eq!(nack.resource_names_subscribe, ["*"]);
        assert!(nack.node.is_some_and(|n| n.metadata.is_none()));
        let first = subscription("z", "MeshTimeout");
        assert_eq!(first.resource_names_subscribe, ["*"]);
        assert!(first.response_nonce.is_empty() && first.node.is_some_and(|n| n.metadata.is_some()));
    }

    #[test]
    fn metadata_carries_the_version_only_when_given() {
        let mut md = MetadataMap::new();
        identify(&mut md, "kuma-sync-probe", None).unwrap();
        assert_eq!(md.get("client-id").unwrap(), "kuma-sync-probe");
        assert_eq!(md.get_all("features").iter().count(), 1);
        assert!(md.get("version").is_none() && md.get("kds-version").is_none());
        let mut md = MetadataMap::new();
        identify(&mut md, "zone-1", Some("2.14.3")).unwrap();
        assert_eq!(md.get("version").unwrap(), "2.14.3");
        assert_eq!(md.get("kds-version").unwrap(), "v3");
        assert!(identify(&mut md, "zone\n1", None).is_err());
    }
}
