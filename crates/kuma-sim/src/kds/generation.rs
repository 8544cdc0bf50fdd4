//! What the global sends one zone for one type: Kuma's `GlobalProvidedFilter` and its
//! global mappers (`pkg/kds/context/context.go`, `pkg/kds/util/resource.go`;
//! kuma-semantics 3.3 and 6.1), encoded by [`super::codec`].
//!
//! The functions are public so client tests can compute what a real global would send.

use std::collections::{BTreeMap, BTreeSet};

use kds_wire::{DeltaResource, features};
use kuma_model::{
    Environment, Resource, ResourceType,
    constants::{
        SYNCED_CONFIGS, ZONE_TOKEN_SIGNING_KEY_PREFIX, ZONE_TOKEN_SIGNING_PUBLIC_KEY_PREFIX,
        is_internal_global_secret,
    },
    hash::hashed_name,
    labels,
    types::Scope,
};
use serde_json::Value;

use super::codec;

/// Who is asking: the node id (the zone name the filter uses) and its features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneView {
    pub zone: String,
    pub features: BTreeSet<String>,
}

impl ZoneView {
    pub fn has(&self, feature: &str) -> bool {
        self.features.contains(feature)
    }
}

/// One resource ready for a `DeltaDiscoveryResponse`.
#[derive(Debug, Clone, PartialEq)]
pub struct WireEntry {
    /// `<name>.<mesh>` of the mapped resource.
    pub delta_key: String,
    pub resource: DeltaResource,
    /// Injected by the oversize fault: exempt from the send-size limit.
    pub oversize_fault: bool,
}

/// `GlobalProvidedFilter` plus `SkipUnsupportedHostnameGenerator`: whether `r`, stored on
/// the global, is sent to `zone`. `zone_enabled` answers `Zone.spec.enabled`, `None` for
/// an unknown zone (which Kuma treats as enabled).
pub fn sent_to_zone(r: &Resource, zone: &ZoneView, zone_enabled: impl Fn(&str) -> Option<bool>) -> bool {
    let info = r.rtype.info();
    // `HasKDSDisabled`, one grammar for the label in the workspace (kuma-model's).
    if r.kds_disabled() {
        return false;
    }
    match info.name {
        "Config" => return SYNCED_CONFIGS.contains(&r.name.as_str()),
        "GlobalSecret" if is_internal_global_secret(&r.name) => return false,
        "HostnameGenerator"
            if !zone.has(features::HG_MZ_SELECTOR)
                && r.spec
                    .pointer("/selector/meshMultiZoneService")
                    .is_some_and(|v| !v.is_null()) =>
        {
            return false;
        }
        _ => {}
    }
    let top_level_missing = r.spec.get("targetRef").is_none_or(Value::is_null);
    let is_global = matches!(
        r.label(labels::ORIGIN),
        None | Some("") | Some(labels::ORIGIN_GLOBAL)
    );
    if is_global && info.provided_by_global() {
        return !(info.is_targetref_policy()
            && top_level_missing
            && !zone.has(features::OPTIONAL_TOP_LEVEL_TARGET_REF));
    }
    if is_global || !info.synced_across_zones() {
        return false;
    }
    if info.is_targetref_policy() {
        if !zone.has(features::PRODUCER_POLICY_FLOW)
            || (top_level_missing && !zone.has(features::OPTIONAL_TOP_LEVEL_TARGET_REF))
            || r.label(labels::POLICY_ROLE) != Some(labels::ROLE_PRODUCER)
            || !computes_as_producer(r)
        {
            return false;
        }
        let top = r.spec.get("targetRef");
        if top.and_then(|t| t.get("kind")).and_then(Value::as_str) == Some("MeshSubset") {
            let target_zone = top
                .and_then(|t| t.pointer("/tags/kuma.io~1zone"))
                .and_then(Value::as_str);
            if target_zone.is_some_and(|z| z != zone.zone) {
                return false;
            }
        }
    }
    // `ZoneOfResource`: the zone label, else the name up to its first dot.
    let origin_zone = match r.label(labels::ZONE) {
        Some(z) if !z.is_empty() => z,
        _ => r.name.split('.').next().unwrap_or_default(),
    };
    if origin_zone == zone.zone {
        return false;
    }
    zone_enabled(origin_zone).unwrap_or(true)
}

/// `ComputePolicyRole` re-checked on the global: only a policy whose every `to` item names
/// a MeshService or MeshHTTPRoute in its own namespace is a producer. Without a namespace
/// label (a universal zone) the role is `system`, so such policies never cross zones.
fn computes_as_producer(r: &Resource) -> bool {
    let Some(namespace) = r.namespace().filter(|ns| !ns.is_empty()) else {
        return false;
    };
    let list = |key: &str| {
        r.spec
            .get(key)
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
    };
    let (Some(to), None) = (list("to"), list("from")) else {
        return false;
    };
    to.iter().all(|item| {
        let target = item.get("targetRef");
        let kind = target.and_then(|t| t.get("kind")).and_then(Value::as_str);
        let name = target
            .and_then(|t| t.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ns = target
            .and_then(|t| t.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        matches!(kind, Some("MeshService" | "MeshHTTPRoute"))
            && !name.is_empty()
            && (ns.is_empty() || ns == namespace)
    })
}

/// The global mappers, in Kuma's order: the resource as the zone receives it.
///
/// Kuma's `WithName` sets `kuma.io/display-name` to the old name whenever it renames and
/// the label is unset, and its status-dropping clone renames to `""` (restored by the hash
/// step); both are kept, so a client without `hash-suffix` sees what Kuma would send it.
pub fn map_for_zone(r: &Resource, global: &Environment, zone: &ZoneView) -> Resource {
    let mut out = r.clone();
    if let Environment::Kubernetes { .. } = global
        && out.label(labels::DISPLAY_NAME).is_none()
    {
        // The Kubernetes store adds the display name on read (kuma-semantics 6.3).
        let object_name = match r.rtype.info().k8s_namespaced() {
            true => r.name.rsplit_once('.').map_or(r.name.as_str(), |(n, _)| n),
            false => r.name.as_str(),
        };
        out.labels
            .insert(labels::DISPLAY_NAME.to_owned(), object_name.to_owned());
    }
    out.labels
        .insert(labels::ORIGIN.to_owned(), labels::ORIGIN_GLOBAL.to_owned());
    if r.rtype.name() == "GlobalSecret" && r.name.starts_with(ZONE_TOKEN_SIGNING_KEY_PREFIX) {
        // Kuma also swaps the private key for its public half; the simulator keeps the
        // spec as is and only mirrors the rename.
        let public = out.name.replace(
            ZONE_TOKEN_SIGNING_KEY_PREFIX,
            ZONE_TOKEN_SIGNING_PUBLIC_KEY_PREFIX,
        );
        rename(&mut out, public);
    }
    if let Environment::Kubernetes { system_namespace } = global {
        let stripped = out
            .name
            .strip_suffix(&format!(".{system_namespace}"))
            .unwrap_or(&out.name)
            .to_owned();
        rename(&mut out, stripped);
    }
    if r.rtype.info().has_status {
        out.status = None;
        rename(&mut out, String::new());
    }
    if !r.rtype.info().skip_kds_hash && zone.has(features::HASH_SUFFIX) {
        let values: Vec<&str> = [labels::ZONE, labels::NAMESPACE]
            .iter()
            .filter_map(|k| out.label(k))
            .collect();
        let hashed = hashed_name(out.mesh_or_empty(), out.display_name(), &values);
        rename(&mut out, hashed);
    }
    out
}

/// `util.WithName`.
fn rename(r: &mut Resource, name: String) {
    if r.label(labels::DISPLAY_NAME).is_none_or(str::is_empty) {
        let old = r.name.clone();
        r.labels.insert(labels::DISPLAY_NAME.to_owned(), old);
    }
    r.name = name;
}

/// Everything of `rtype` the global sends `zone`, keyed by delta key.
pub fn generate(
    resources: &[Resource],
    global: &Environment,
    zone: &ZoneView,
    zone_enabled: impl Fn(&str) -> Option<bool>,
) -> BTreeMap<String, WireEntry> {
    resources
        .iter()
        .filter(|r| r.rtype.info().flows_global_to_zone() && sent_to_zone(r, zone, &zone_enabled))
        .map(|r| {
            let entry = codec::encode(&map_for_zone(r, global, zone));
            (entry.delta_key.clone(), entry)
        })
        .collect()
}

/// The mesh a fault-injected resource of `rtype` lives in.
pub(crate) fn fault_mesh(rtype: ResourceType) -> &'static str {
    match rtype.info().scope {
        Scope::Mesh => "default",
        Scope::Global => "",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kds::codec::{kuma_resource, version_of};

    fn zone(features: &[&str]) -> ZoneView {
        ZoneView {
            zone: "zone-1".into(),
            features: features.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    fn t(name: &str) -> ResourceType {
        ResourceType::from_name(name).expect("known type")
    }

    #[test]
    fn policies_without_top_level_target_ref_need_the_feature() {
        let r = Resource::new(t("MeshRetry"), Some("default"), "r", json!({"to": []}));
        assert!(!sent_to_zone(&r, &zone(&[]), |_| None));
        assert!(sent_to_zone(
            &r,
            &zone(&[features::OPTIONAL_TOP_LEVEL_TARGET_REF]),
            |_| None
        ));
    }

    #[test]
    fn hostname_generators_with_mesh_multizone_selector_need_the_feature() {
        let spec = json!({"selector": {"meshMultiZoneService": {"matchLabels": {}}}, "template": "x"});
        let r = Resource::new(t("HostnameGenerator"), None, "hg", spec);
        assert!(!sent_to_zone(&r, &zone(&[]), |_| None));
        assert!(sent_to_zone(&r, &zone(&[features::HG_MZ_SELECTOR]), |_| None));
    }

    #[test]
    fn kds_sync_enabled_overrides_and_unknown_origin_zone_counts_as_enabled() {
        let r = Resource::new(t("MeshService"), Some("default"), "svc", json!({}))
            .with_label(labels::ORIGIN, labels::ORIGIN_ZONE)
            .with_label(labels::ZONE, "zone-2");
        assert!(sent_to_zone(&r, &zone(&[]), |_| None), "no Zone record: sent");
        assert!(!sent_to_zone(&r, &zone(&[]), |_| Some(false)));
        let disabled = r.clone().with_label(labels::KDS_SYNC, "disabled");
        assert!(!sent_to_zone(&disabled, &zone(&[]), |_| None));
    }

    #[test]
    fn status_types_lose_status_and_keep_a_display_name() {
        let mut r = Resource::new(t("MeshService"), Some("default"), "svc", json!({}));
        r.status = Some(json!({"addresses": []}));
        let hashed = map_for_zone(&r, &Environment::Universal, &zone(&[features::HASH_SUFFIX]));
        assert_eq!(hashed.status, None);
        assert_eq!(hashed.name, hashed_name("default", "svc", &[]));
        assert_eq!(hashed.label(labels::DISPLAY_NAME), Some("svc"));
        // Kuma's status-dropping clone empties the name; only the hash step restores it.
        let plain = map_for_zone(&r, &Environment::Universal, &zone(&[]));
        assert_eq!(plain.name, "");
        let kr = kuma_resource(&hashed);
        assert_eq!(kr.status.map(|s| s.value), Some(b"{}".to_vec()));
    }

    #[test]
    fn zone_token_signing_keys_go_out_under_their_public_name() {
        let r = Resource::new(t("GlobalSecret"), None, "zone-token-signing-key-1", json!({}));
        let mapped = map_for_zone(&r, &Environment::Universal, &zone(&features::ALL));
        assert_eq!(mapped.name, "zone-token-signing-public-key-1");
        assert_eq!(mapped.delta_key(), "zone-token-signing-public-key-1.");
    }

    #[test]
    fn versions_follow_content() {
        let r = Resource::new(
            t("MeshRetry"),
            Some("default"),
            "r",
            json!({"targetRef": {"kind": "Mesh"}}),
        );
        let z = zone(&features::ALL);
        let v = |r: &Resource| {
            let m = map_for_zone(r, &Environment::Universal, &z);
            version_of(&m, &kuma_resource(&m))
        };
        assert_eq!(v(&r), v(&r.clone()));
        assert_ne!(v(&r), v(&r.clone().with_label("team", "a")));
        let mut changed = r.clone();
        changed.spec = json!({"targetRef": {"kind": "Mesh"}, "to": []});
        assert_ne!(v(&r), v(&changed));
    }
}
