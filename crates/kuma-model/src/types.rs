//! The table of Kuma resource types and how KDS treats each of them.
//!
//! Facts come from the `ResourceTypeDescriptor`s of Kuma v2.14.3
//! (`zz_generated.resource*.go`) and its CRDs (`deployments/charts/kuma/crds`).

use std::fmt;

use crate::version::KumaLine;

/// KDS flag bits, exactly as `KDSFlags` in `pkg/core/resources/model/resource.go`.
pub mod flags {
    /// The zone consumes resources of this type from the global.
    pub const CONSUMED_BY_ZONE: u8 = 1;
    /// The global consumes resources of this type from zones.
    pub const CONSUMED_BY_GLOBAL: u8 = 4;
    /// Zones create resources of this type.
    pub const PROVIDED_BY_ZONE: u8 = 8;
    /// The global creates resources of this type.
    pub const PROVIDED_BY_GLOBAL: u8 = 16;
    /// Zone-origin resources reach the other zones through the global.
    pub const SYNCED_ACROSS_ZONES: u8 = 32;
    /// Not sent unless labelled `kuma.io/kds-sync: enabled`.
    pub const KDS_DISABLED_BY_DEFAULT: u8 = 64;
    /// `GlobalToZonesFlag`.
    pub const GLOBAL_TO_ZONES: u8 = PROVIDED_BY_GLOBAL | CONSUMED_BY_ZONE;
    /// `ZoneToGlobalFlag`.
    pub const ZONE_TO_GLOBAL: u8 = CONSUMED_BY_GLOBAL | PROVIDED_BY_ZONE;
}

/// Whether a resource lives inside a mesh or beside meshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Mesh,
    Global,
}

/// How the spec travels inside `KumaResource.spec` (kuma-semantics section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecEncoding {
    /// Go-struct types: an Any with an empty `type_url` holding Go `encoding/json` bytes.
    Json,
    /// Proto-based types: an Any `type.googleapis.com/<full name>` holding protobuf bytes.
    Proto(&'static str),
}

/// How the type is stored on a Kubernetes control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum K8sKind {
    /// A `kuma.io/v1alpha1` custom resource.
    Crd {
        plural: &'static str,
        short: Option<&'static str>,
        namespaced: bool,
    },
    /// A core `v1` Secret of the given `type:` in the system namespace.
    Secret { secret_type: &'static str },
    /// Stored in a ConfigMap; no CRD.
    ConfigMap,
    /// Not stored on Kubernetes as its own object.
    None,
}

/// Everything kuma-sync needs to know about one resource type.
#[derive(Debug)]
pub struct TypeInfo {
    /// Kuma's type name, also the KDS `type_url` (e.g. `MeshCircuitBreaker`).
    pub name: &'static str,
    pub scope: Scope,
    /// Bits from [`flags`].
    pub kds_flags: u8,
    /// `SkipKDSHash`: copies keep their name instead of a hash-suffixed one.
    pub skip_kds_hash: bool,
    /// Path segment of the REST API (`WsPath`), empty when the type has none.
    pub rest_path: &'static str,
    pub k8s: K8sKind,
    /// `IsPolicy` in Kuma: targetRef policies need `kuma.io/policy-role=producer` to cross zones.
    pub is_policy: bool,
    /// Plugin-originated (Go struct) types; with `is_policy` these are the new Mesh* policies.
    pub plugin_originated: bool,
    pub spec_encoding: SpecEncoding,
    pub has_status: bool,
}

impl TypeInfo {
    /// Sent from the global to zones (`GlobalToZonesFlag` or `SyncedAcrossZonesFlag`).
    pub fn flows_global_to_zone(&self) -> bool {
        self.kds_flags & flags::GLOBAL_TO_ZONES == flags::GLOBAL_TO_ZONES || self.synced_across_zones()
    }

    /// Global-origin resources of this type are sent to zones (`GlobalToZonesFlag`).
    pub fn provided_by_global(&self) -> bool {
        self.kds_flags & flags::GLOBAL_TO_ZONES == flags::GLOBAL_TO_ZONES
    }

    /// Sent from zones to the global (`ZoneToGlobalFlag`).
    pub fn flows_zone_to_global(&self) -> bool {
        self.kds_flags & flags::ZONE_TO_GLOBAL == flags::ZONE_TO_GLOBAL
    }

    /// Zone-origin resources reach the other zones (`SyncedAcrossZonesFlag`).
    pub fn synced_across_zones(&self) -> bool {
        self.kds_flags & flags::SYNCED_ACROSS_ZONES != 0
    }

    pub fn kds_disabled_by_default(&self) -> bool {
        self.kds_flags & flags::KDS_DISABLED_BY_DEFAULT != 0
    }

    /// A targetRef (Mesh*) policy: the default set kuma-sync checks.
    pub fn is_targetref_policy(&self) -> bool {
        self.is_policy && self.plugin_originated
    }

    /// A Secret or GlobalSecret: never subscribed to by the probe, excluded from checks by default.
    pub fn is_secret(&self) -> bool {
        matches!(self.name, "Secret" | "GlobalSecret")
    }

    pub fn is_mesh_scoped(&self) -> bool {
        self.scope == Scope::Mesh
    }

    /// Namespaced on Kubernetes, so its core name is `<name>.<namespace>`.
    pub fn k8s_namespaced(&self) -> bool {
        matches!(self.k8s, K8sKind::Crd { namespaced: true, .. })
    }
}

/// A compact handle on a row of [`TYPES`]: cheap to copy, hash and compare.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceType(u8);

impl ResourceType {
    /// Looks a type up by its Kuma name (`MeshCircuitBreaker`), case-sensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        TYPES.iter().position(|t| t.name == name).map(Self::at)
    }

    /// Looks a type up the way a user may spell it on a command line: Kuma name in any
    /// case, REST path, Kubernetes plural or short name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::from_name(s).or_else(|| {
            let lower = s.to_ascii_lowercase();
            TYPES
                .iter()
                .position(|t| {
                    t.name.eq_ignore_ascii_case(&lower)
                        || (!t.rest_path.is_empty() && t.rest_path == lower)
                        || matches!(t.k8s, K8sKind::Crd { plural, short, .. }
                            if plural == lower || short == Some(lower.as_str()))
                })
                .map(Self::at)
        })
    }

    /// Looks a type up by its Kubernetes kind (same as the Kuma name for CRDs).
    pub fn from_k8s_plural(plural: &str) -> Option<Self> {
        TYPES
            .iter()
            .position(|t| matches!(t.k8s, K8sKind::Crd { plural: p, .. } if p == plural))
            .map(Self::at)
    }

    pub fn info(self) -> &'static TypeInfo {
        &TYPES[self.0 as usize]
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Every known type.
    pub fn all() -> impl Iterator<Item = ResourceType> {
        (0..TYPES.len()).map(Self::at)
    }

    /// The types kuma-sync checks when the user names none, on a control plane of
    /// `line`: every type KDS copies between control planes, in either direction
    /// (`docs/kuma-semantics.md`, "What is compared"). Left out: Secret and GlobalSecret
    /// (opt-in: a watcher rarely may read them), Config (one internal entry), the
    /// insights (read for health, not judged as copies) and the zone-to-global-only
    /// proxies and workloads (Dataplane, ZoneEgress, Workload: one per pod, judged by
    /// their zone's own health, not by sync).
    pub fn default_checked(line: KumaLine) -> impl Iterator<Item = ResourceType> {
        Self::all().filter(move |t| {
            let info = t.info();
            info.flows_global_to_zone()
                && !info.is_secret()
                && !matches!(info.name, "Config" | "ServiceInsight")
                && line.has_type(info.name)
        })
    }

    /// Every targetRef policy type that flows from the global to zones: what the KDS
    /// probe subscribes to when the user names no type.
    pub fn targetref_policies() -> impl Iterator<Item = ResourceType> {
        Self::all().filter(|t| t.info().is_targetref_policy() && t.info().flows_global_to_zone())
    }

    /// Position in [`TYPES`], for dense per-type arrays.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    fn at(i: usize) -> Self {
        // The table has well under 256 rows; `types_fit_in_a_byte` pins that.
        Self(i as u8)
    }
}

impl fmt::Debug for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for ResourceType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

use flags::{
    GLOBAL_TO_ZONES as G2Z, PROVIDED_BY_GLOBAL, PROVIDED_BY_ZONE, SYNCED_ACROSS_ZONES as SYNCED,
    ZONE_TO_GLOBAL as Z2G,
};

const fn crd(plural: &'static str, short: Option<&'static str>, namespaced: bool) -> K8sKind {
    K8sKind::Crd {
        plural,
        short,
        namespaced,
    }
}

/// A Mesh* targetRef policy: mesh-scoped, namespaced, JSON spec, synced in both directions.
const fn policy(name: &'static str, plural: &'static str, short: &'static str, has_status: bool) -> TypeInfo {
    TypeInfo {
        name,
        scope: Scope::Mesh,
        kds_flags: G2Z | Z2G | SYNCED,
        skip_kds_hash: false,
        rest_path: plural,
        k8s: crd(plural, Some(short), true),
        is_policy: true,
        plugin_originated: true,
        spec_encoding: SpecEncoding::Json,
        has_status,
    }
}

/// A newer Go-struct resource (MeshService, MeshExternalService, ...).
const fn plugin_resource(
    name: &'static str,
    scope: Scope,
    kds_flags: u8,
    plural: &'static str,
    short: &'static str,
    has_status: bool,
) -> TypeInfo {
    TypeInfo {
        name,
        scope,
        kds_flags,
        skip_kds_hash: false,
        rest_path: plural,
        k8s: crd(plural, Some(short), true),
        is_policy: false,
        plugin_originated: true,
        spec_encoding: SpecEncoding::Json,
        has_status,
    }
}

/// A proto-based resource (Mesh, Dataplane, the old policies, ...).
#[allow(clippy::too_many_arguments)] // a table row; named fields would hide the table's shape
const fn proto(
    name: &'static str,
    scope: Scope,
    kds_flags: u8,
    rest_path: &'static str,
    k8s: K8sKind,
    is_policy: bool,
    proto_name: &'static str,
) -> TypeInfo {
    TypeInfo {
        name,
        scope,
        kds_flags,
        skip_kds_hash: false,
        rest_path,
        k8s,
        is_policy,
        plugin_originated: false,
        spec_encoding: SpecEncoding::Proto(proto_name),
        has_status: false,
    }
}

const fn old_policy(
    name: &'static str,
    rest_path: &'static str,
    plural: &'static str,
    proto_name: &'static str,
) -> TypeInfo {
    proto(
        name,
        Scope::Mesh,
        G2Z,
        rest_path,
        crd(plural, None, false),
        true,
        proto_name,
    )
}

const fn skip_hash(mut t: TypeInfo) -> TypeInfo {
    t.skip_kds_hash = true;
    t
}

/// Every type of kuma-semantics section 3.3, in a stable order (it numbers [`ResourceType`]).
pub static TYPES: &[TypeInfo] = &[
    // Mesh* targetRef policies: global -> zone, zone -> global, and across zones.
    policy("MeshAccessLog", "meshaccesslogs", "mal", true),
    policy("MeshCircuitBreaker", "meshcircuitbreakers", "mcb", false),
    policy("MeshFaultInjection", "meshfaultinjections", "mfi", false),
    policy("MeshHealthCheck", "meshhealthchecks", "mhc", false),
    policy("MeshHTTPRoute", "meshhttproutes", "mhttpr", false),
    policy(
        "MeshLoadBalancingStrategy",
        "meshloadbalancingstrategies",
        "mlbs",
        false,
    ),
    policy("MeshMetric", "meshmetrics", "mm", true),
    policy("MeshPassthrough", "meshpassthroughs", "mp", false),
    policy("MeshProxyPatch", "meshproxypatches", "mpp", false),
    policy("MeshRateLimit", "meshratelimits", "mrl", false),
    policy("MeshRetry", "meshretries", "mr", false),
    policy("MeshTCPRoute", "meshtcproutes", "mtcpr", false),
    policy("MeshTimeout", "meshtimeouts", "mt", false),
    policy("MeshTLS", "meshtlses", "mtls", false),
    policy("MeshTrace", "meshtraces", "mtr", true),
    policy("MeshTrafficPermission", "meshtrafficpermissions", "mtp", false),
    // Global -> zone and zone -> global, not across zones.
    proto(
        "MeshGateway",
        Scope::Mesh,
        G2Z | Z2G,
        "meshgateways",
        crd("meshgateways", Some("mgw"), false),
        false,
        "kuma.mesh.v1alpha1.MeshGateway",
    ),
    plugin_resource(
        "HostnameGenerator",
        Scope::Global,
        G2Z | Z2G,
        "hostnamegenerators",
        "hg",
        false,
    ),
    plugin_resource(
        "MeshExternalService",
        Scope::Mesh,
        G2Z | Z2G,
        "meshexternalservices",
        "extsvc",
        true,
    ),
    plugin_resource(
        "MeshIdentity",
        Scope::Mesh,
        G2Z | Z2G,
        "meshidentities",
        "mid",
        true,
    ),
    plugin_resource(
        "MeshOpenTelemetryBackend",
        Scope::Mesh,
        G2Z | Z2G,
        "meshopentelemetrybackends",
        "motb",
        true,
    ),
    plugin_resource("MeshTrust", Scope::Mesh, G2Z | Z2G, "meshtrusts", "mtrust", true),
    // Zone -> global, and on to the other zones.
    plugin_resource(
        "MeshService",
        Scope::Mesh,
        Z2G | SYNCED,
        "meshservices",
        "msvc",
        true,
    ),
    plugin_resource(
        "MeshZoneAddress",
        Scope::Mesh,
        Z2G | SYNCED,
        "meshzoneaddresses",
        "mza",
        false,
    ),
    proto(
        "ZoneIngress",
        Scope::Global,
        Z2G | SYNCED,
        "zoneingresses",
        crd("zoneingresses", Some("zi"), true),
        false,
        "kuma.mesh.v1alpha1.ZoneIngress",
    ),
    // Global -> zone only.
    skip_hash(proto(
        "Mesh",
        Scope::Global,
        G2Z,
        "meshes",
        crd("meshes", Some("m"), false),
        false,
        "kuma.mesh.v1alpha1.Mesh",
    )),
    old_policy(
        "CircuitBreaker",
        "circuit-breakers",
        "circuitbreakers",
        "kuma.mesh.v1alpha1.CircuitBreaker",
    ),
    proto(
        "ExternalService",
        Scope::Mesh,
        G2Z,
        "external-services",
        crd("externalservices", None, false),
        false,
        "kuma.mesh.v1alpha1.ExternalService",
    ),
    old_policy(
        "FaultInjection",
        "fault-injections",
        "faultinjections",
        "kuma.mesh.v1alpha1.FaultInjection",
    ),
    old_policy(
        "HealthCheck",
        "health-checks",
        "healthchecks",
        "kuma.mesh.v1alpha1.HealthCheck",
    ),
    old_policy(
        "MeshGatewayRoute",
        "meshgatewayroutes",
        "meshgatewayroutes",
        "kuma.mesh.v1alpha1.MeshGatewayRoute",
    ),
    old_policy(
        "ProxyTemplate",
        "proxytemplates",
        "proxytemplates",
        "kuma.mesh.v1alpha1.ProxyTemplate",
    ),
    old_policy(
        "RateLimit",
        "rate-limits",
        "ratelimits",
        "kuma.mesh.v1alpha1.RateLimit",
    ),
    old_policy("Retry", "retries", "retries", "kuma.mesh.v1alpha1.Retry"),
    proto(
        "ServiceInsight",
        Scope::Mesh,
        G2Z,
        "service-insights",
        crd("serviceinsights", None, false),
        false,
        "kuma.mesh.v1alpha1.ServiceInsight",
    ),
    old_policy("Timeout", "timeouts", "timeouts", "kuma.mesh.v1alpha1.Timeout"),
    old_policy(
        "TrafficLog",
        "traffic-logs",
        "trafficlogs",
        "kuma.mesh.v1alpha1.TrafficLog",
    ),
    old_policy(
        "TrafficPermission",
        "traffic-permissions",
        "trafficpermissions",
        "kuma.mesh.v1alpha1.TrafficPermission",
    ),
    old_policy(
        "TrafficRoute",
        "traffic-routes",
        "trafficroutes",
        "kuma.mesh.v1alpha1.TrafficRoute",
    ),
    old_policy(
        "TrafficTrace",
        "traffic-traces",
        "traffictraces",
        "kuma.mesh.v1alpha1.TrafficTrace",
    ),
    old_policy(
        "VirtualOutbound",
        "virtual-outbounds",
        "virtualoutbounds",
        "kuma.mesh.v1alpha1.VirtualOutbound",
    ),
    plugin_resource(
        "MeshMultiZoneService",
        Scope::Mesh,
        G2Z,
        "meshmultizoneservices",
        "mzsvc",
        true,
    ),
    skip_hash(proto(
        "Config",
        Scope::Global,
        G2Z | PROVIDED_BY_ZONE,
        "",
        K8sKind::ConfigMap,
        false,
        "kuma.system.v1alpha1.Config",
    )),
    skip_hash(proto(
        "Secret",
        Scope::Mesh,
        G2Z | PROVIDED_BY_ZONE,
        "secrets",
        K8sKind::Secret {
            secret_type: "system.kuma.io/secret",
        },
        false,
        "kuma.system.v1alpha1.Secret",
    )),
    skip_hash(proto(
        "GlobalSecret",
        Scope::Global,
        G2Z | PROVIDED_BY_ZONE,
        "global-secrets",
        K8sKind::Secret {
            secret_type: "system.kuma.io/global-secret",
        },
        false,
        "kuma.system.v1alpha1.Secret",
    )),
    // Zone -> global only.
    proto(
        "Dataplane",
        Scope::Mesh,
        Z2G,
        "dataplanes",
        crd("dataplanes", Some("dp"), true),
        false,
        "kuma.mesh.v1alpha1.Dataplane",
    ),
    proto(
        "DataplaneInsight",
        Scope::Mesh,
        Z2G,
        "dataplane-insights",
        crd("dataplaneinsights", None, true),
        false,
        "kuma.mesh.v1alpha1.DataplaneInsight",
    ),
    proto(
        "ZoneEgress",
        Scope::Global,
        Z2G,
        "zoneegresses",
        crd("zoneegresses", Some("ze"), true),
        false,
        "kuma.mesh.v1alpha1.ZoneEgress",
    ),
    proto(
        "ZoneEgressInsight",
        Scope::Global,
        Z2G,
        "zoneegressinsights",
        crd("zoneegressinsights", None, true),
        false,
        "kuma.mesh.v1alpha1.ZoneEgressInsight",
    ),
    proto(
        "ZoneIngressInsight",
        Scope::Global,
        Z2G,
        "zone-ingress-insights",
        crd("zoneingressinsights", None, true),
        false,
        "kuma.mesh.v1alpha1.ZoneIngressInsight",
    ),
    plugin_resource("Workload", Scope::Mesh, Z2G, "workloads", "wl", true),
    // Never synced; read to know the zones and their health.
    proto(
        "Zone",
        Scope::Global,
        PROVIDED_BY_GLOBAL | PROVIDED_BY_ZONE,
        "zones",
        crd("zones", Some("z"), false),
        false,
        "kuma.system.v1alpha1.Zone",
    ),
    proto(
        "ZoneInsight",
        Scope::Global,
        PROVIDED_BY_GLOBAL | PROVIDED_BY_ZONE,
        "zone-insights",
        crd("zoneinsights", None, false),
        false,
        "kuma.system.v1alpha1.ZoneInsight",
    ),
    proto(
        "MeshInsight",
        Scope::Global,
        PROVIDED_BY_GLOBAL,
        "mesh-insights",
        crd("meshinsights", None, false),
        false,
        "kuma.mesh.v1alpha1.MeshInsight",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> &'static TypeInfo {
        ResourceType::from_name(name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .info()
    }

    #[test]
    fn types_fit_in_a_byte_and_names_are_unique() {
        assert!(TYPES.len() < 256);
        let mut names: Vec<_> = TYPES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TYPES.len());
    }

    #[test]
    fn flags_follow_section_3_3() {
        let mcb = t("MeshCircuitBreaker");
        assert!(mcb.flows_global_to_zone() && mcb.flows_zone_to_global() && mcb.synced_across_zones());
        assert_eq!(mcb.kds_flags, 1 | 4 | 8 | 16 | 32);
        let msvc = t("MeshService");
        assert!(
            msvc.flows_global_to_zone(),
            "synced-across-zones types flow through the global"
        );
        assert!(!msvc.provided_by_global());
        assert!(msvc.flows_zone_to_global());
        let mesh = t("Mesh");
        assert!(mesh.flows_global_to_zone() && !mesh.flows_zone_to_global() && mesh.skip_kds_hash);
        let dp = t("Dataplane");
        assert!(!dp.flows_global_to_zone() && dp.flows_zone_to_global());
        let zone = t("Zone");
        assert!(!zone.flows_global_to_zone() && !zone.flows_zone_to_global());
        let gw = t("MeshGateway");
        assert!(gw.flows_global_to_zone() && gw.flows_zone_to_global() && !gw.synced_across_zones());
        for secret in ["Secret", "GlobalSecret", "Config"] {
            assert!(t(secret).skip_kds_hash, "{secret} keeps its name");
            assert!(t(secret).flows_global_to_zone());
        }
        assert!(!t("MeshTimeout").skip_kds_hash);
    }

    #[test]
    fn sixteen_policies_sync_both_ways_and_are_the_default_set() {
        let synced: Vec<_> = TYPES
            .iter()
            .filter(|t| t.provided_by_global() && t.flows_zone_to_global() && t.synced_across_zones())
            .collect();
        assert_eq!(synced.len(), 16);
        let policies: Vec<_> = ResourceType::targetref_policies().map(|t| t.name()).collect();
        assert_eq!(policies.len(), 16);
        assert!(policies.contains(&"MeshTrafficPermission"));
        assert!(!policies.contains(&"Secret"));
    }

    #[test]
    fn every_synced_type_is_checked_by_default_and_secrets_are_not() {
        let v2: Vec<_> = ResourceType::default_checked(KumaLine::V2)
            .map(|t| t.name())
            .collect();
        for name in [
            "Mesh",
            "MeshCircuitBreaker",
            "MeshService",
            "MeshMultiZoneService",
            "MeshExternalService",
            "HostnameGenerator",
            "MeshZoneAddress",
            "MeshIdentity",
            "MeshTrust",
            "MeshGateway",
            "ZoneIngress",
            "TrafficPermission",
        ] {
            assert!(v2.contains(&name), "{name} is checked on 2.x");
        }
        for name in [
            "Secret",
            "GlobalSecret",
            "Config",
            "ServiceInsight",
            "Dataplane",
            "Zone",
            "ZoneInsight",
        ] {
            assert!(!v2.contains(&name), "{name} is not checked by default");
        }
        let v3: Vec<_> = ResourceType::default_checked(KumaLine::V3)
            .map(|t| t.name())
            .collect();
        assert!(v3.contains(&"MeshZoneAddress") && v3.contains(&"Mesh"));
        for removed in [
            "TrafficPermission",
            "MeshGateway",
            "ZoneIngress",
            "ExternalService",
        ] {
            assert!(!v3.contains(&removed), "{removed} is gone in Kuma 3");
        }
    }

    #[test]
    fn kubernetes_scope_follows_section_9() {
        assert!(t("MeshCircuitBreaker").k8s_namespaced());
        assert!(t("MeshTrafficPermission").k8s_namespaced());
        for cluster_scoped in ["Zone", "ZoneInsight", "Mesh", "TrafficPermission", "MeshGateway"] {
            assert!(!t(cluster_scoped).k8s_namespaced(), "{cluster_scoped}");
        }
        assert_eq!(
            t("Secret").k8s,
            K8sKind::Secret {
                secret_type: "system.kuma.io/secret"
            }
        );
    }

    #[test]
    fn users_can_spell_a_type_many_ways() {
        let mcb = ResourceType::from_name("MeshCircuitBreaker");
        assert!(mcb.is_some());
        for spelling in [
            "MeshCircuitBreaker",
            "meshcircuitbreaker",
            "meshcircuitbreakers",
            "mcb",
        ] {
            assert_eq!(ResourceType::parse(spelling), mcb, "{spelling}");
        }
        assert_eq!(
            ResourceType::parse("traffic-permissions"),
            ResourceType::from_name("TrafficPermission")
        );
        assert_eq!(ResourceType::parse("NoSuchThing"), None);
        assert_eq!(
            ResourceType::from_k8s_plural("meshretries"),
            ResourceType::from_name("MeshRetry")
        );
    }
}
