//! Which resources KDS moves where: a replica of Kuma's `GlobalProvidedFilter` (what the
//! global sends each zone) and `ZoneProvidedFilter` (what a zone sends the global), both
//! in `pkg/kds/context/context.go`, for a zone that advertises every node feature
//! (`docs/kuma-semantics.md`, "What the global sends"). The rules of Kuma 2.x (v2.14.3)
//! and Kuma 3 differ in two places, both here: how a zone policy's producer role is
//! computed, and the MeshSubset zone restriction that only 2.x has.

use std::collections::BTreeMap;

use kuma_model::{
    CpRole, KumaLine, Origin, Resource,
    constants::{SYNCED_CONFIGS, is_internal_global_secret},
    labels,
};

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
    /// A zone policy whose top-level MeshSubset targets another zone's `kuma.io/zone`
    /// (Kuma 2.x only).
    TargetsOtherZone(String),
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
            NotSent::TargetsOtherZone(z) => format!("its top-level MeshSubset targets zone {z} only"),
        }
    }
}

/// Decides whether the global sends `r` (as held on the global) to the zone `zone`.
/// `zones_enabled` maps the Zone resources the global holds to their `enabled` flag; a zone
/// of origin the global does not know counts as enabled, as in Kuma.
pub fn global_sends(
    r: &Resource,
    line: KumaLine,
    zone: &str,
    zones_enabled: &BTreeMap<String, bool>,
) -> Result<(), NotSent> {
    sending(r, line)?.to_zone(zone, zones_enabled)
}

/// Whether a zone sends its own `r` to the global (`ZoneProvidedFilter`): only what it
/// created (the caller knows `r` is the zone's own) of a type that flows zone to global,
/// unless `kuma.io/kds-sync` disables it.
pub fn zone_sends(r: &Resource) -> Result<(), NotSent> {
    if r.kds_disabled() {
        return Err(NotSent::KdsSyncDisabled);
    }
    if !r.rtype.info().flows_zone_to_global() {
        return Err(NotSent::TypeDoesNotFlow);
    }
    Ok(())
}

/// Where the global sends a resource it does send at all: the part of [`global_sends`]
/// that does not depend on the zone, decided once per resource (it reads the spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sending {
    /// To every zone.
    ToAll,
    /// A zone's resource: to every other zone while that zone is enabled, or only to the
    /// zone `only_to` names (a Kuma 2.x producer policy whose top-level MeshSubset has a
    /// `kuma.io/zone` tag).
    FromZone { origin: String, only_to: Option<String> },
}

impl Sending {
    /// The rest of [`global_sends`]: whether the resource goes to `zone`.
    pub fn to_zone(&self, zone: &str, zones_enabled: &BTreeMap<String, bool>) -> Result<(), NotSent> {
        match self {
            Sending::ToAll => Ok(()),
            Sending::FromZone {
                only_to: Some(target),
                ..
            } if target != zone => Err(NotSent::TargetsOtherZone(target.clone())),
            Sending::FromZone { origin, .. } if origin == zone => Err(NotSent::OwnZone),
            Sending::FromZone { origin, .. } => match zones_enabled.get(origin) {
                Some(false) => Err(NotSent::OriginZoneDisabled(origin.clone())),
                _ => Ok(()),
            },
        }
    }
}

/// Whether and how the global sends `r` (as held on the global), whatever the zone.
pub fn sending(r: &Resource, line: KumaLine) -> Result<Sending, NotSent> {
    let info = r.rtype.info();
    if r.kds_disabled() {
        return Err(NotSent::KdsSyncDisabled);
    }
    match info.name {
        // Kuma answers for Config before looking at the origin: the synced entries go
        // everywhere, whoever made them.
        "Config" if SYNCED_CONFIGS.contains(&r.name.as_str()) => return Ok(Sending::ToAll),
        "Config" => return Err(NotSent::InternalToGlobal),
        "GlobalSecret" if is_internal_global_secret(&r.name) => return Err(NotSent::InternalToGlobal),
        _ => {}
    }
    match r.origin(&CpRole::Global) {
        Origin::Global if info.provided_by_global() => Ok(Sending::ToAll),
        Origin::Zone(origin) if info.synced_across_zones() => {
            let mut only_to = None;
            if info.is_targetref_policy() {
                // The label is the zone's claim; the global recomputes the role too, in case
                // the zone's admission webhook was off.
                let producer = match line {
                    KumaLine::V2 => computes_as_producer_v2(r),
                    KumaLine::V3 => computes_as_producer_v3(r),
                };
                if r.label(labels::POLICY_ROLE) != Some(labels::ROLE_PRODUCER) || !producer {
                    return Err(NotSent::NotProducer);
                }
                if line == KumaLine::V2 {
                    only_to = meshsubset_zone(r).map(str::to_owned);
                }
            }
            Ok(Sending::FromZone { origin, only_to })
        }
        _ => Err(NotSent::TypeDoesNotFlow),
    }
}

/// The `kuma.io/zone` tag of a top-level MeshSubset targetRef: Kuma 2.x sends such a
/// producer policy only to that zone (v2.14.3 `GlobalProvidedFilter`; gone in Kuma 3).
fn meshsubset_zone(r: &Resource) -> Option<&str> {
    let top = r.spec.get("targetRef")?;
    if top.get("kind")?.as_str()? != "MeshSubset" {
        return None;
    }
    top.get("tags")?.get(labels::ZONE)?.as_str()
}

/// The `to` and `from` lists of a policy's spec, empty when absent.
fn items<'a>(r: &'a Resource, key: &str) -> &'a [serde_json::Value] {
    r.spec
        .get(key)
        .and_then(|v| v.as_array())
        .map_or(&[][..], |a| a.as_slice())
}

/// The namespace `ComputePolicyRole` is called with: `k8s.kuma.io/namespace`, where the
/// global treats no namespace as system (so a Universal zone's policy is `system`).
fn policy_namespace(r: &Resource) -> Option<&str> {
    r.namespace().filter(|ns| !ns.is_empty())
}

/// Kuma 3's `ComputePolicyRole` (`pkg/core/resources/labels/compute.go` at main): a
/// producer has a namespace and a non-empty `to` whose every item targets a MeshService
/// or MeshHTTPRoute by `labels` that hold `kuma.io/display-name`, at most
/// `k8s.kuma.io/namespace` (its own namespace) beside it, and nothing else.
fn computes_as_producer_v3(r: &Resource) -> bool {
    let Some(ns) = policy_namespace(r) else {
        return false;
    };
    let to = items(r, "to");
    !to.is_empty()
        && to.iter().all(|item| {
            let tr = &item["targetRef"];
            let kind_ok = matches!(tr["kind"].as_str(), Some("MeshService" | "MeshHTTPRoute"));
            let Some(selector) = tr["labels"].as_object() else {
                return false;
            };
            let named = selector
                .get(labels::DISPLAY_NAME)
                .and_then(|v| v.as_str())
                .is_some_and(|n| !n.is_empty());
            let only_name_and_ns = selector
                .keys()
                .all(|k| k == labels::DISPLAY_NAME || k == labels::NAMESPACE);
            let same_ns = selector
                .get(labels::NAMESPACE)
                .and_then(|v| v.as_str())
                .is_none_or(|n| n.is_empty() || n == ns);
            kind_ok && named && only_name_and_ns && same_ns
        })
}

/// Kuma 2.x's `ComputePolicyRole` (v2.14.3) as the global calls it: a policy is a
/// producer only when it has a namespace (so never on Universal, where the role is
/// `system`), no `from`, and every `to` item targets a named MeshService or MeshHTTPRoute
/// in its own namespace.
fn computes_as_producer_v2(r: &Resource) -> bool {
    let Some(ns) = policy_namespace(r) else {
        return false;
    };
    let (to, from) = (items(r, "to"), items(r, "from"));
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
        assert_eq!(global_sends(&mcb, KumaLine::V2, "zone-1", &none), Ok(()));
        let off = mcb.clone().with_label(labels::KDS_SYNC, "disabled");
        assert_eq!(
            global_sends(&off, KumaLine::V2, "zone-1", &none),
            Err(NotSent::KdsSyncDisabled)
        );
        assert_eq!(
            global_sends(&res("Mesh", "default"), KumaLine::V2, "zone-1", &none),
            Ok(())
        );
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
            global_sends(&consumer, KumaLine::V2, "zone-2", &none),
            Err(NotSent::NotProducer)
        );
        let producer = consumer.with_label(labels::POLICY_ROLE, "producer");
        assert_eq!(global_sends(&producer, KumaLine::V2, "zone-2", &none), Ok(()));
        assert_eq!(
            global_sends(&producer, KumaLine::V2, "zone-1", &none),
            Err(NotSent::OwnZone)
        );
        let disabled = BTreeMap::from([("zone-1".to_owned(), false)]);
        assert_eq!(
            global_sends(&producer, KumaLine::V2, "zone-2", &disabled),
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
            global_sends(&universal, KumaLine::V2, "zone-2", &none),
            Err(NotSent::NotProducer)
        );
        assert_eq!(
            global_sends(&in_ns(universal), KumaLine::V2, "zone-2", &none),
            Ok(())
        );
        let other_ns = in_ns(claim(to_service(mt(), "MeshService", Some("other"))));
        assert_eq!(
            global_sends(&other_ns, KumaLine::V2, "zone-2", &none),
            Err(NotSent::NotProducer)
        );
        let same_ns = in_ns(claim(to_service(mt(), "MeshHTTPRoute", Some("kuma-demo"))));
        assert_eq!(global_sends(&same_ns, KumaLine::V2, "zone-2", &none), Ok(()));
        let to_mesh = in_ns(claim(to_service(mt(), "Mesh", None)));
        assert_eq!(
            global_sends(&to_mesh, KumaLine::V2, "zone-2", &none),
            Err(NotSent::NotProducer)
        );
        let mut with_from = in_ns(claim(to_service(mt(), "MeshService", None)));
        with_from.spec["from"] = json!([{"targetRef": {"kind": "Mesh"}}]);
        assert_eq!(
            global_sends(&with_from, KumaLine::V2, "zone-2", &none),
            Err(NotSent::NotProducer)
        );
    }

    #[test]
    fn zone_origin_services_need_no_role_and_zone_only_types_never_flow() {
        let none = BTreeMap::new();
        let msvc = zone_origin(res("MeshService", "redis"), "zone-1");
        assert_eq!(global_sends(&msvc, KumaLine::V2, "zone-2", &none), Ok(()));
        let gw = zone_origin(res("MeshGateway", "gw"), "zone-1");
        assert_eq!(
            global_sends(&gw, KumaLine::V2, "zone-2", &none),
            Err(NotSent::TypeDoesNotFlow)
        );
        let dp = zone_origin(res("Dataplane", "dp"), "zone-1");
        assert_eq!(
            global_sends(&dp, KumaLine::V2, "zone-2", &none),
            Err(NotSent::TypeDoesNotFlow)
        );
    }

    #[test]
    fn internal_configs_and_global_secrets_stay_on_the_global() {
        let none = BTreeMap::new();
        assert_eq!(
            global_sends(&res("Config", "kuma-cluster-id"), KumaLine::V2, "z", &none),
            Ok(())
        );
        assert_eq!(
            global_sends(&res("Config", "other"), KumaLine::V2, "z", &none),
            Err(NotSent::InternalToGlobal)
        );
        assert_eq!(
            global_sends(
                &res("GlobalSecret", "user-token-signing-key-1"),
                KumaLine::V2,
                "z",
                &none
            ),
            Err(NotSent::InternalToGlobal)
        );
        assert_eq!(
            global_sends(&res("GlobalSecret", "inter-cp-ca"), KumaLine::V2, "z", &none),
            Err(NotSent::InternalToGlobal)
        );
        assert_eq!(
            global_sends(
                &res("Secret", "dataplane-token-signing-key-default"),
                KumaLine::V2,
                "z",
                &none
            ),
            Ok(())
        );
    }

    fn producer_v3(zone: &str) -> Resource {
        let mut r = zone_origin(res("MeshTimeout", "t"), zone)
            .with_label(labels::NAMESPACE, "kuma-demo")
            .with_label(labels::POLICY_ROLE, "producer");
        r.spec = json!({"to": [{"targetRef": {
            "kind": "MeshService",
            "labels": {"kuma.io/display-name": "redis", "k8s.kuma.io/namespace": "kuma-demo"},
        }, "default": {}}]});
        r
    }

    #[test]
    fn kuma_3_computes_the_producer_role_from_targetref_labels() {
        let none = BTreeMap::new();
        let p = producer_v3("zone-1");
        assert_eq!(global_sends(&p, KumaLine::V3, "zone-2", &none), Ok(()));
        // Kuma 2.x reads `name`, which a Kuma 3 targetRef no longer has.
        assert_eq!(
            global_sends(&p, KumaLine::V2, "zone-2", &none),
            Err(NotSent::NotProducer)
        );
        let mut other_label = p.clone();
        other_label.spec["to"][0]["targetRef"]["labels"]["app"] = json!("redis");
        assert_eq!(
            global_sends(&other_label, KumaLine::V3, "zone-2", &none),
            Err(NotSent::NotProducer)
        );
        let mut other_ns = p.clone();
        other_ns.spec["to"][0]["targetRef"]["labels"]["k8s.kuma.io/namespace"] = json!("elsewhere");
        assert_eq!(
            global_sends(&other_ns, KumaLine::V3, "zone-2", &none),
            Err(NotSent::NotProducer)
        );
        let mut by_name = p.clone();
        by_name.spec["to"][0]["targetRef"] = json!({"kind": "MeshService", "name": "redis"});
        assert_eq!(
            global_sends(&by_name, KumaLine::V3, "zone-2", &none),
            Err(NotSent::NotProducer)
        );
        assert_eq!(global_sends(&by_name, KumaLine::V2, "zone-2", &none), Ok(()));
    }

    #[test]
    fn kuma_2_sends_a_meshsubset_zone_policy_only_to_its_target_zone() {
        let none = BTreeMap::new();
        let mut p = to_service(
            zone_origin(res("MeshTimeout", "t"), "zone-1"),
            "MeshService",
            None,
        )
        .with_label(labels::NAMESPACE, "kuma-demo")
        .with_label(labels::POLICY_ROLE, "producer");
        p.spec["targetRef"] = json!({"kind": "MeshSubset", "tags": {"kuma.io/zone": "zone-3"}});
        assert_eq!(global_sends(&p, KumaLine::V2, "zone-3", &none), Ok(()));
        assert_eq!(
            global_sends(&p, KumaLine::V2, "zone-2", &none),
            Err(NotSent::TargetsOtherZone("zone-3".into()))
        );
        // Other tags, or a MeshSubset without a zone, restrict nothing.
        p.spec["targetRef"] = json!({"kind": "MeshSubset", "tags": {"app": "x"}});
        assert_eq!(global_sends(&p, KumaLine::V2, "zone-2", &none), Ok(()));
    }

    #[test]
    fn zones_send_their_own_unless_disabled_or_the_type_stays_home() {
        let mt = res("MeshTimeout", "t");
        assert_eq!(zone_sends(&mt), Ok(()));
        let off = mt.with_label(labels::KDS_SYNC, "disabled");
        assert_eq!(zone_sends(&off), Err(NotSent::KdsSyncDisabled));
        assert_eq!(zone_sends(&res("Mesh", "default")), Err(NotSent::TypeDoesNotFlow));
        assert_eq!(zone_sends(&res("MeshService", "redis")), Ok(()));
    }
}
