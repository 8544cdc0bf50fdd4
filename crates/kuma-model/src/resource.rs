//! A Kuma resource as any control plane holds it, and the identity that matches its
//! copies across control planes.

use std::{collections::BTreeMap, fmt};

use serde::Serialize;

use crate::{ResourceType, hash::hashed_name};

/// Label keys Kuma uses for KDS (`api/mesh/v1alpha1/*.go`).
pub mod labels {
    pub const ORIGIN: &str = "kuma.io/origin";
    pub const ZONE: &str = "kuma.io/zone";
    pub const MESH: &str = "kuma.io/mesh";
    pub const DISPLAY_NAME: &str = "kuma.io/display-name";
    pub const NAMESPACE: &str = "k8s.kuma.io/namespace";
    pub const POLICY_ROLE: &str = "kuma.io/policy-role";
    pub const KDS_SYNC: &str = "kuma.io/kds-sync";
    pub const ENV: &str = "kuma.io/env";
    pub const ORIGIN_GLOBAL: &str = "global";
    pub const ORIGIN_ZONE: &str = "zone";
    pub const ROLE_PRODUCER: &str = "producer";
    /// On kuma-sync's canary policy (the one write it makes, when turned on): the
    /// policy is judged by the canary's own metrics, never as a copy to compare.
    pub const CANARY: &str = "kuma-sync.io/canary";
    /// The canary's sequence number, bumped by every write; a zone holding it has
    /// received that write.
    pub const CANARY_SEQUENCE: &str = "kuma-sync.io/canary-sequence";
}

/// Kuma's default system namespace on Kubernetes.
pub const DEFAULT_SYSTEM_NAMESPACE: &str = "kuma-system";

/// One resource, in Kuma's core model (the form `kumactl` and the REST API show).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    #[serde(rename = "type")]
    pub rtype: ResourceType,
    /// `None` for global-scoped types (Mesh, Zone, HostnameGenerator, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh: Option<String>,
    /// The core name: `<name>.<namespace>` for namespaced types read from Kubernetes.
    pub name: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub spec: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<jiff::Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modification_time: Option<jiff::Timestamp>,
}

impl Resource {
    /// A resource with no labels, status or times; readers and tests fill the rest.
    pub fn new(rtype: ResourceType, mesh: Option<&str>, name: &str, spec: serde_json::Value) -> Self {
        Self {
            rtype,
            mesh: mesh.map(str::to_owned),
            name: name.to_owned(),
            labels: BTreeMap::new(),
            spec,
            status: None,
            creation_time: None,
            modification_time: None,
        }
    }

    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// `kuma.io/display-name`, else the name: what a user called the resource.
    pub fn display_name(&self) -> &str {
        self.label(labels::DISPLAY_NAME).unwrap_or(&self.name)
    }

    /// The Kubernetes namespace the resource was created in, from `k8s.kuma.io/namespace`.
    pub fn namespace(&self) -> Option<&str> {
        self.label(labels::NAMESPACE)
    }

    /// The mesh as Kuma's hash and delta keys use it: empty for global-scoped types.
    pub fn mesh_or_empty(&self) -> &str {
        self.mesh.as_deref().unwrap_or("")
    }

    /// Where the resource was created, as seen on the control plane `seen_on`
    /// (`docs/kuma-semantics.md`, "Origin"). Kuma's `IsLocallyOriginated`
    /// (`pkg/core/resources/model/resource.go`) decides what is local:
    ///
    /// - On the global, a resource without `kuma.io/origin` (a Kuma 2 global sets none at
    ///   creation) or with `global` is the global's; any other value, `zone` or not, is a
    ///   zone's, and its zone is `kuma.io/zone`, else its name up to the first dot
    ///   (`ZoneOfResource`).
    /// - On a zone, a resource without `kuma.io/origin` or with `zone` is the zone's own
    ///   (`kuma.io/zone`, when set, names it). A copy the global sent carries `global`;
    ///   when its type crosses zones and it names a `kuma.io/zone`, it is another zone's
    ///   resource relayed by the global (a MeshService of zone-2 in zone-1). Any other
    ///   value is neither local nor a copy Kuma could have made: it is taken as the
    ///   global's, so that a copy nobody sends shows as orphaned.
    pub fn origin(&self, seen_on: &CpRole) -> Origin {
        let origin = self.label(labels::ORIGIN).filter(|o| !o.is_empty());
        match seen_on {
            CpRole::Global => match origin {
                None | Some(labels::ORIGIN_GLOBAL) => Origin::Global,
                Some(_) => Origin::Zone(self.zone_of().to_owned()),
            },
            CpRole::Zone(zone) => match origin {
                None | Some(labels::ORIGIN_ZONE) => match self.label(labels::ZONE) {
                    Some(z) if !z.is_empty() => Origin::Zone(z.to_owned()),
                    _ => Origin::Zone(zone.clone()),
                },
                Some(labels::ORIGIN_GLOBAL) => match self.label(labels::ZONE) {
                    Some(z) if !z.is_empty() && self.rtype.info().synced_across_zones() => {
                        Origin::Zone(z.to_owned())
                    }
                    _ => Origin::Global,
                },
                Some(_) => Origin::Global,
            },
        }
    }

    /// The zone a zone-origin resource on the global came from: `kuma.io/zone`, else the
    /// name up to its first dot (Kuma's `ZoneOfResource`).
    pub fn zone_of(&self) -> &str {
        match self.label(labels::ZONE) {
            Some(z) if !z.is_empty() => z,
            _ => self.name.split('.').next().unwrap_or_default(),
        }
    }

    /// Whether `kuma.io/kds-sync` keeps KDS from sending the resource at all, either way
    /// (`HasKDSDisabled`: `enabled` and `disabled` win over the type's default).
    pub fn kds_disabled(&self) -> bool {
        match self.label(labels::KDS_SYNC) {
            Some("enabled") => false,
            Some("disabled") => true,
            _ => self.rtype.info().kds_disabled_by_default(),
        }
    }

    /// The identity that matches this resource's copies on every control plane.
    pub fn identity(&self, seen_on: &CpRole) -> Identity {
        Identity {
            rtype: self.rtype,
            mesh: self.mesh.clone(),
            origin: self.origin(seen_on),
            namespace: self.namespace().map(str::to_owned),
            display_name: self.display_name().to_owned(),
        }
    }

    /// The key a control plane stores the resource under: type, mesh and core name.
    pub fn key(&self) -> ResourceKey {
        ResourceKey {
            rtype: self.rtype,
            mesh: self.mesh.clone(),
            name: self.name.clone(),
        }
    }

    /// The KDS delta key `<name>.<mesh>` (kuma-semantics section 4).
    pub fn delta_key(&self) -> String {
        crate::delta_key::join(&self.name, self.mesh_or_empty())
    }
}

/// Which control plane a resource was read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CpRole {
    Global,
    Zone(String),
}

impl fmt::Display for CpRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpRole::Global => f.write_str("global"),
            CpRole::Zone(z) => f.write_str(z),
        }
    }
}

/// Where a resource was created.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Global,
    Zone(String),
}

/// What identifies one logical resource across control planes. Names are never compared
/// directly: a copy's name is derived (hashed, namespaced) and differs from its source's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Identity {
    #[serde(rename = "type")]
    pub rtype: ResourceType,
    pub mesh: Option<String>,
    pub origin: Origin,
    pub namespace: Option<String>,
    pub display_name: String,
}

/// Where a control plane stores a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub rtype: ResourceType,
    pub mesh: Option<String>,
    pub name: String,
}

/// The store a control plane runs on; it changes the names of synced copies (section 6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Environment {
    Universal,
    Kubernetes { system_namespace: String },
}

impl Environment {
    pub fn kubernetes() -> Self {
        Environment::Kubernetes {
            system_namespace: DEFAULT_SYSTEM_NAMESPACE.to_owned(),
        }
    }

    fn system_namespace(&self) -> Option<&str> {
        match self {
            Environment::Universal => None,
            Environment::Kubernetes { system_namespace } => Some(system_namespace),
        }
    }

    /// The core name a store of this kind gives a synced copy called `name`: a Kubernetes
    /// store places hash-suffixed types in its system namespace (kuma-semantics 6.4), on a
    /// zone (`ZoneSyncCallback`) and on the global (`GlobalSyncCallback`) alike.
    pub fn stored_name(&self, rtype: ResourceType, name: String) -> String {
        match self.system_namespace() {
            Some(ns) if !rtype.info().skip_kds_hash && rtype.info().k8s_namespaced() => {
                format!("{name}.{ns}")
            }
            _ => name,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Environment::Universal => "universal",
            Environment::Kubernetes { .. } => "kubernetes",
        })
    }
}

/// Whether the global rewrites the zone named in this type's spec ([`pin_zone_fields`]):
/// a cheap test to make before working out a resource's origin.
pub fn pins_zone(rtype: ResourceType) -> bool {
    matches!(rtype.name(), "ZoneIngress" | "ZoneEgress")
}

/// A zone's own resource as the global stores it once received: the global pins the zone
/// a ZoneIngress or ZoneEgress names (`spec.zone`, and any `kuma.io/zone` tag of a
/// ZoneIngress's available services) to the zone that sent it (`GlobalSyncCallback`,
/// `pkg/kds/v2/store/sync.go`, v2.14.3). Comparing the zone's spec so pinned with the
/// global's copy keeps a zone that leaves `zone` empty from looking drifted.
pub fn pin_zone_fields(r: &mut Resource, zone: &str) {
    if !pins_zone(r.rtype) {
        return;
    }
    let Some(spec) = r.spec.as_object_mut() else {
        return;
    };
    spec.insert("zone".to_owned(), serde_json::Value::String(zone.to_owned()));
    if let Some(services) = spec.get_mut("availableServices").and_then(|v| v.as_array_mut()) {
        for tags in services
            .iter_mut()
            .filter_map(|s| s.get_mut("tags")?.as_object_mut())
        {
            if let Some(tag) = tags.get_mut(labels::ZONE) {
                *tag = serde_json::Value::String(zone.to_owned());
            }
        }
    }
}

/// The name the global puts on the wire for `r` (mappers of kuma-semantics 6.1), for a zone
/// that advertised `hash-suffix`.
pub fn wire_name_global_to_zone(r: &Resource, global: &Environment) -> String {
    let name = match global.system_namespace() {
        Some(ns) => r.name.strip_suffix(&format!(".{ns}")).unwrap_or(&r.name),
        None => &r.name,
    };
    if r.rtype.info().skip_kds_hash {
        return name.to_owned();
    }
    let display = r.label(labels::DISPLAY_NAME).unwrap_or(name);
    let values: Vec<&str> = [r.label(labels::ZONE), r.namespace()]
        .into_iter()
        .flatten()
        .collect();
    hashed_name(r.mesh_or_empty(), display, &values)
}

/// The core name a copy of the global's `r` carries in a zone running on `zone`.
pub fn expected_name_in_zone(r: &Resource, global: &Environment, zone: &Environment) -> String {
    zone.stored_name(r.rtype, wire_name_global_to_zone(r, global))
}

/// The core name a zone's own `r` carries on the global (kuma-semantics 6.5): always hashed
/// with the zone and namespace.
pub fn expected_name_on_global(
    r: &Resource,
    zone_name: &str,
    zone: &Environment,
    global: &Environment,
) -> String {
    let name = match zone.system_namespace() {
        Some(ns) => r.name.strip_suffix(&format!(".{ns}")).unwrap_or(&r.name),
        None => &r.name,
    };
    let display = r.label(labels::DISPLAY_NAME).unwrap_or(name);
    let mut values = vec![zone_name];
    values.extend(r.namespace());
    global.stored_name(r.rtype, hashed_name(r.mesh_or_empty(), display, &values))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mcb(name: &str) -> Resource {
        Resource::new(
            ResourceType::from_name("MeshCircuitBreaker").unwrap(),
            Some("default"),
            name,
            json!({}),
        )
    }

    #[test]
    fn worked_example_kubernetes_global() {
        // kuma-semantics 6.6: created on a Kubernetes global in kuma-system.
        let r = mcb("demo-app-to-redis.kuma-system")
            .with_label(labels::MESH, "default")
            .with_label(labels::NAMESPACE, "kuma-system")
            .with_label(labels::POLICY_ROLE, "system")
            .with_label(labels::DISPLAY_NAME, "demo-app-to-redis");
        let global = Environment::kubernetes();
        assert_eq!(
            wire_name_global_to_zone(&r, &global),
            "demo-app-to-redis-48bc6d6w28bw7b44"
        );
        assert_eq!(
            expected_name_in_zone(&r, &global, &Environment::Universal),
            "demo-app-to-redis-48bc6d6w28bw7b44"
        );
        assert_eq!(
            expected_name_in_zone(&r, &global, &Environment::kubernetes()),
            "demo-app-to-redis-48bc6d6w28bw7b44.kuma-system"
        );
    }

    #[test]
    fn worked_example_universal_global() {
        let r = mcb("demo-app-to-redis").with_label(labels::MESH, "default");
        assert_eq!(
            expected_name_in_zone(&r, &Environment::Universal, &Environment::Universal),
            "demo-app-to-redis-65xb45x2xfd5bf7f"
        );
    }

    #[test]
    fn copies_of_one_policy_share_an_identity() {
        let on_global = mcb("demo-app-to-redis");
        let copy = mcb("demo-app-to-redis-65xb45x2xfd5bf7f")
            .with_label(labels::ORIGIN, "global")
            .with_label(labels::DISPLAY_NAME, "demo-app-to-redis");
        let zone = CpRole::Zone("zone-1".into());
        assert_eq!(on_global.identity(&CpRole::Global), copy.identity(&zone));
        assert_eq!(on_global.identity(&CpRole::Global).origin, Origin::Global);
        // The same name created locally in a zone is a different resource.
        assert_eq!(on_global.identity(&zone).origin, Origin::Zone("zone-1".into()));
    }

    #[test]
    fn origins_follow_is_locally_originated() {
        let msvc = |name: &str| {
            Resource::new(
                ResourceType::from_name("MeshService").unwrap(),
                Some("default"),
                name,
                json!({}),
            )
        };
        let zone1 = CpRole::Zone("zone-1".into());
        // Another zone's service relayed by the global: origin global, zone label kept.
        let relayed = msvc("redis-zone-2-ff29vc4685c6f594")
            .with_label(labels::ORIGIN, "global")
            .with_label(labels::ZONE, "zone-2");
        assert_eq!(relayed.origin(&zone1), Origin::Zone("zone-2".into()));
        // A global policy is the global's even with a zone label (the type does not cross zones
        // on its own: only its zone-origin copies do, and those say so on the global).
        let gw = Resource::new(
            ResourceType::from_name("MeshGateway").unwrap(),
            Some("default"),
            "gw",
            json!({}),
        )
        .with_label(labels::ORIGIN, "global")
        .with_label(labels::ZONE, "zone-2");
        assert_eq!(gw.origin(&zone1), Origin::Global);
        // A zone's own resource needs no label.
        assert_eq!(msvc("redis").origin(&zone1), Origin::Zone("zone-1".into()));
        // On the global, any origin but `global` is a zone's; the zone is the label, else
        // the name up to the first dot.
        let odd = msvc("zone-3.redis").with_label(labels::ORIGIN, "zonne");
        assert_eq!(odd.origin(&CpRole::Global), Origin::Zone("zone-3".into()));
        let unlabelled = msvc("zone-4.redis").with_label(labels::ORIGIN, "zone");
        assert_eq!(unlabelled.origin(&CpRole::Global), Origin::Zone("zone-4".into()));
        assert_eq!(msvc("redis").origin(&CpRole::Global), Origin::Global);
        let empty = msvc("redis").with_label(labels::ORIGIN, "");
        assert_eq!(empty.origin(&CpRole::Global), Origin::Global);
    }

    #[test]
    fn the_global_pins_a_zone_ingress_to_its_sender() {
        let mut zi = Resource::new(
            ResourceType::from_name("ZoneIngress").unwrap(),
            None,
            "zi-1",
            json!({"networking": {"port": 10001},
                   "availableServices": [{"tags": {"kuma.io/service": "a", "kuma.io/zone": "x"}},
                                         {"tags": {"kuma.io/service": "b"}}]}),
        );
        pin_zone_fields(&mut zi, "zone-1");
        assert_eq!(zi.spec["zone"], "zone-1");
        assert_eq!(zi.spec["availableServices"][0]["tags"]["kuma.io/zone"], "zone-1");
        assert!(
            zi.spec["availableServices"][1]["tags"]
                .get("kuma.io/zone")
                .is_none()
        );
        let mut mt = Resource::new(
            ResourceType::from_name("MeshTimeout").unwrap(),
            Some("default"),
            "t",
            json!({"zone": "keep"}),
        );
        pin_zone_fields(&mut mt, "zone-1");
        assert_eq!(mt.spec["zone"], "keep", "only zone proxies are pinned");
    }

    #[test]
    fn skip_hash_types_keep_their_names() {
        let mesh = Resource::new(
            ResourceType::from_name("Mesh").unwrap(),
            None,
            "default",
            json!({}),
        );
        assert_eq!(
            expected_name_in_zone(&mesh, &Environment::Universal, &Environment::kubernetes()),
            "default"
        );
        assert_eq!(mesh.delta_key(), "default.");
    }

    #[test]
    fn zone_origin_names_on_the_global() {
        let local = mcb("local-cb.kuma-demo")
            .with_label(labels::NAMESPACE, "kuma-demo")
            .with_label(labels::DISPLAY_NAME, "local-cb");
        let k8s = Environment::kubernetes();
        let on_universal = expected_name_on_global(&local, "zone-2", &k8s, &Environment::Universal);
        assert_eq!(
            on_universal,
            hashed_name("default", "local-cb", &["zone-2", "kuma-demo"])
        );
        assert_eq!(
            expected_name_on_global(&local, "zone-2", &k8s, &k8s),
            format!("{on_universal}.kuma-system")
        );
    }
}
