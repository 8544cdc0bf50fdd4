//! Which global resources the global sends to which zone: a replica of Kuma's
//! `GlobalProvidedFilter` (`pkg/kds/context/context.go`, v2.14.3) for a zone that advertises
//! every feature of kuma-facts 2.2.

use std::collections::BTreeMap;

use kuma_model::{CpRole, Origin, Resource, labels};

/// Why the global does not send a resource to a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotSent {
    /// `kuma.io/kds-sync: disabled`, or a type disabled by default without `enabled`.
    KdsSyncDisabled,
    /// A Config or GlobalSecret that is internal to the global.
    InternalToGlobal,
    /// The resource came from this very zone.
    OwnZone,
    /// Its zone of origin is disabled.
    OriginZoneDisabled(String),
    /// A zone-origin policy without `kuma.io/policy-role: producer`.
    NotProducer,
    /// The type does not flow from the global to zones for this origin.
    TypeDoesNotFlow,
}

impl NotSent {
    /// A plain sentence for reports.
    pub fn reason(&self) -> String {
        match self {
            NotSent::KdsSyncDisabled => "the global does not send it (kuma.io/kds-sync: disabled)".into(),
            NotSent::InternalToGlobal => "internal to the global, never sent".into(),
            NotSent::OwnZone => "originates in this zone".into(),
            NotSent::OriginZoneDisabled(z) => format!("its zone of origin {z} is disabled"),
            NotSent::NotProducer => "zone-origin policy without kuma.io/policy-role: producer".into(),
            NotSent::TypeDoesNotFlow => "its type does not flow from the global to zones".into(),
        }
    }
}

/// Config entries the global syncs (`KDSSyncedConfigs`).
const SYNCED_CONFIGS: &[&str] = &["kuma-cluster-id"];
/// GlobalSecrets that never leave the global.
const INTERNAL_GLOBAL_SECRETS: &[&str] = &[
    "envoy-admin-ca",
    "admin-user-token",
    "inter-cp-ca",
    "user-token-revocations",
];
const USER_TOKEN_SIGNING_KEY_PREFIX: &str = "user-token-signing-key";

/// Decides whether the global sends `r` (as held on the global) to the zone `zone`.
/// `zones_enabled` maps the Zone resources the global holds to their `enabled` flag; a zone
/// of origin the global does not know counts as enabled, as in Kuma.
pub fn global_sends(r: &Resource, zone: &str, zones_enabled: &BTreeMap<String, bool>) -> Result<(), NotSent> {
    sending(r)?.to_zone(zone, zones_enabled)
}

/// Where the global sends a resource it does send at all: the part of [`global_sends`]
/// that does not depend on the zone, decided once per resource (it reads the spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sending {
    /// To every zone.
    ToAll,
    /// A zone's resource: to every other zone, while that zone is enabled.
    FromZone(String),
}

impl Sending {
    /// The rest of [`global_sends`]: whether the resource goes to `zone`.
    pub fn to_zone(&self, zone: &str, zones_enabled: &BTreeMap<String, bool>) -> Result<(), NotSent> {
        match self {
            Sending::ToAll => Ok(()),
            Sending::FromZone(origin) if origin == zone => Err(NotSent::OwnZone),
            Sending::FromZone(origin) => match zones_enabled.get(origin) {
                Some(false) => Err(NotSent::OriginZoneDisabled(origin.clone())),
                _ => Ok(()),
            },
        }
    }
}

/// Whether and how the global sends `r` (as held on the global), whatever the zone.
pub fn sending(r: &Resource) -> Result<Sending, NotSent> {
    let info = r.rtype.info();
    match r.label(labels::KDS_SYNC) {
        Some("enabled") => {}
        Some("disabled") => return Err(NotSent::KdsSyncDisabled),
        _ if info.kds_disabled_by_default() => return Err(NotSent::KdsSyncDisabled),
        _ => {}
    }
    match info.name {
        "Config" if !SYNCED_CONFIGS.contains(&r.name.as_str()) => return Err(NotSent::InternalToGlobal),
        "GlobalSecret"
            if INTERNAL_GLOBAL_SECRETS.contains(&r.name.as_str())
                || r.name.starts_with(USER_TOKEN_SIGNING_KEY_PREFIX) =>
        {
            return Err(NotSent::InternalToGlobal);
        }
        _ => {}
    }
    match r.origin(&CpRole::Global) {
        Origin::Global if info.provided_by_global() => Ok(Sending::ToAll),
        Origin::Zone(origin) if info.synced_across_zones() => {
            // The label is the zone's claim; the global recomputes the role too, in case the
            // zone's admission webhook was off.
            if info.is_targetref_policy()
                && (r.label(labels::POLICY_ROLE) != Some(labels::ROLE_PRODUCER) || !computes_as_producer(r))
            {
                return Err(NotSent::NotProducer);
            }
            Ok(Sending::FromZone(origin))
        }
        _ => Err(NotSent::TypeDoesNotFlow),
    }
}

/// Kuma's `ComputePolicyRole` (`pkg/core/resources/labels/compute.go`) as the global calls
/// it: a policy is a producer only when it has a namespace (so never on Universal, where
/// the role is `system`), no `from`, and every `to` item targets a named MeshService or
/// MeshHTTPRoute in its own namespace.
fn computes_as_producer(r: &Resource) -> bool {
    let Some(ns) = r.namespace().filter(|ns| !ns.is_empty()) else {
        return false;
    };
    let items = |key: &str| {
        r.spec
            .get(key)
            .and_then(|v| v.as_array())
            .map_or(&[][..], |a| a.as_slice())
    };
    let (to, from) = (items("to"), items("from"));
    if to.is_empty() || !from.is_empty() {
        return false;
    }
    to.iter().all(|item| {
        let tr = &item["targetRef"];
        let kind_ok = matches!(tr["kind"].as_str(), Some("MeshService" | "MeshHTTPRoute"));
        let named = tr["name"].as_str().is_some_and(|n| !n.is_empty());
        let same_ns = tr["namespace"].as_str().is_none_or(|n| n.is_empty() || n == ns);
        kind_ok && named && same_ns
    })
}

#[cfg(test)]
mod tests {
    use kuma_model::ResourceType;
    use serde_json::json;

    use super::*;

    fn res(t: &str, name: &str) -> Resource {
        let rtype = ResourceType::from_name(t).unwrap();
        let mesh = rtype.info().is_mesh_scoped().then_some("default");
        Resource::new(rtype, mesh, name, json!({}))
    }

    fn zone_origin(r: Resource, zone: &str) -> Resource {
        r.with_label(labels::ORIGIN, "zone")
            .with_label(labels::ZONE, zone)
    }

    #[test]
    fn global_origin_policies_go_everywhere_unless_disabled() {
        let none = BTreeMap::new();
        let mcb = res("MeshCircuitBreaker", "cb");
        assert_eq!(global_sends(&mcb, "zone-1", &none), Ok(()));
        let off = mcb.clone().with_label(labels::KDS_SYNC, "disabled");
        assert_eq!(global_sends(&off, "zone-1", &none), Err(NotSent::KdsSyncDisabled));
        assert_eq!(global_sends(&res("Mesh", "default"), "zone-1", &none), Ok(()));
    }

    fn to_service(r: Resource, kind: &str, namespace: Option<&str>) -> Resource {
        let mut tr = json!({"kind": kind, "name": "redis"});
        if let Some(ns) = namespace {
            tr["namespace"] = json!(ns);
        }
        Resource {
            spec: json!({"to": [{"targetRef": tr, "default": {}}]}),
            ..r
        }
    }

    #[test]
    fn zone_origin_policies_need_producer_role_and_skip_their_zone() {
        let none = BTreeMap::new();
        let consumer = to_service(
            zone_origin(res("MeshTimeout", "t"), "zone-1"),
            "MeshService",
            None,
        )
        .with_label(labels::NAMESPACE, "kuma-demo");
        assert_eq!(
            global_sends(&consumer, "zone-2", &none),
            Err(NotSent::NotProducer)
        );
        let producer = consumer.with_label(labels::POLICY_ROLE, "producer");
        assert_eq!(global_sends(&producer, "zone-2", &none), Ok(()));
        assert_eq!(global_sends(&producer, "zone-1", &none), Err(NotSent::OwnZone));
        let disabled = BTreeMap::from([("zone-1".to_owned(), false)]);
        assert_eq!(
            global_sends(&producer, "zone-2", &disabled),
            Err(NotSent::OriginZoneDisabled("zone-1".into()))
        );
    }

    #[test]
    fn the_global_recomputes_the_producer_role() {
        let none = BTreeMap::new();
        let claim = |r: Resource| zone_origin(r, "zone-1").with_label(labels::POLICY_ROLE, "producer");
        let mt = || res("MeshTimeout", "t");
        let in_ns = |r: Resource| r.with_label(labels::NAMESPACE, "kuma-demo");
        // Universal zones have no namespace: the role is `system`, the policy stays home.
        let universal = claim(to_service(mt(), "MeshService", None));
        assert_eq!(
            global_sends(&universal, "zone-2", &none),
            Err(NotSent::NotProducer)
        );
        assert_eq!(global_sends(&in_ns(universal), "zone-2", &none), Ok(()));
        let other_ns = in_ns(claim(to_service(mt(), "MeshService", Some("other"))));
        assert_eq!(
            global_sends(&other_ns, "zone-2", &none),
            Err(NotSent::NotProducer)
        );
        let same_ns = in_ns(claim(to_service(mt(), "MeshHTTPRoute", Some("kuma-demo"))));
        assert_eq!(global_sends(&same_ns, "zone-2", &none), Ok(()));
        let to_mesh = in_ns(claim(to_service(mt(), "Mesh", None)));
        assert_eq!(global_sends(&to_mesh, "zone-2", &none), Err(NotSent::NotProducer));
        let mut with_from = in_ns(claim(to_service(mt(), "MeshService", None)));
        with_from.spec["from"] = json!([{"targetRef": {"kind": "Mesh"}}]);
        assert_eq!(
            global_sends(&with_from, "zone-2", &none),
            Err(NotSent::NotProducer)
        );
    }

    #[test]
    fn zone_origin_services_need_no_role_and_zone_only_types_never_flow() {
        let none = BTreeMap::new();
        let msvc = zone_origin(res("MeshService", "redis"), "zone-1");
        assert_eq!(global_sends(&msvc, "zone-2", &none), Ok(()));
        let gw = zone_origin(res("MeshGateway", "gw"), "zone-1");
        assert_eq!(global_sends(&gw, "zone-2", &none), Err(NotSent::TypeDoesNotFlow));
        let dp = zone_origin(res("Dataplane", "dp"), "zone-1");
        assert_eq!(global_sends(&dp, "zone-2", &none), Err(NotSent::TypeDoesNotFlow));
    }

    #[test]
    fn internal_configs_and_global_secrets_stay_on_the_global() {
        let none = BTreeMap::new();
        assert_eq!(
            global_sends(&res("Config", "kuma-cluster-id"), "z", &none),
            Ok(())
        );
        assert_eq!(
            global_sends(&res("Config", "other"), "z", &none),
            Err(NotSent::InternalToGlobal)
        );
        assert_eq!(
            global_sends(&res("GlobalSecret", "user-token-signing-key-1"), "z", &none),
            Err(NotSent::InternalToGlobal)
        );
        assert_eq!(
            global_sends(&res("GlobalSecret", "inter-cp-ca"), "z", &none),
            Err(NotSent::InternalToGlobal)
        );
        assert_eq!(
            global_sends(&res("Secret", "dataplane-token-signing-key-default"), "z", &none),
            Ok(())
        );
    }
}
