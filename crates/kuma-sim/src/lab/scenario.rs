//! The scenario file: which control planes a lab runs, what they hold at start, and where
//! they listen.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use kuma_model::{
    Environment, Resource,
    read::{ReadOptions, read_str},
    resource::DEFAULT_SYSTEM_NAMESPACE,
};
use serde::Deserialize;

use super::LabError;

/// A whole lab, as read from YAML (`serde-saphyr`, unknown fields rejected).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    #[serde(default)]
    pub global: GlobalSpec,
    #[serde(default)]
    pub zones: Vec<ZoneSpec>,
    /// Meshes created on the global before anything else.
    #[serde(default)]
    pub meshes: Vec<MeshSpec>,
    /// Default policies skipped for every mesh, as Kuma's mesh field
    /// `skipCreatingInitialPolicies` (`["*"]` skips them all).
    #[serde(default)]
    pub skip_creating_initial_policies: Vec<String>,
    /// `wellKnown` ports (what the binary uses by default) or `ephemeral` (port 0, what
    /// tests use, and [`Lab::start`](super::Lab::start)'s default).
    #[serde(default)]
    pub ports: Option<PortPlan>,
    /// The address every listener binds (default 127.0.0.1).
    #[serde(default)]
    pub bind: Option<IpAddr>,
    /// The Kuma line simulated: `2` (default, v2.14.3) or `3` (Kuma's main branch: how
    /// writes are labelled, a new mesh's defaults, the version reported; `crate::kuma_3`).
    #[serde(default)]
    pub kuma_version: Option<String>,
    /// Every zone starts synced (default `false`); a zone's own `startSynced` overrides
    /// it. See [`ZoneSpec::start_synced`].
    #[serde(default)]
    pub start_synced: bool,
}

/// Where listeners go when the scenario names no explicit address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PortPlan {
    /// Global REST 5681, KDS 5685, Kubernetes API 6443, admin 5690; zone N gets
    /// N*10000 + those ports (zone 1: 15681, 16443).
    WellKnown,
    /// Port 0 everywhere.
    Ephemeral,
}

/// The global control plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GlobalSpec {
    #[serde(default)]
    pub environment: EnvironmentSpec,
    /// Serve KDS over TLS with a generated certificate (Kuma's default).
    #[serde(default = "yes")]
    pub tls: bool,
    /// Universal resource documents (as `kumactl get -o yaml` prints them) created on the
    /// global after the meshes.
    #[serde(default)]
    pub resources: Vec<serde_json::Value>,
    #[serde(default)]
    pub listen: ListenSpec,
}

impl Default for GlobalSpec {
    fn default() -> Self {
        Self {
            environment: EnvironmentSpec::default(),
            tls: true,
            resources: Vec::new(),
            listen: ListenSpec::default(),
        }
    }
}

fn yes() -> bool {
    true
}

/// One zone control plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ZoneSpec {
    /// A DNS label, as Kuma requires of zone names.
    pub name: String,
    #[serde(default)]
    pub environment: EnvironmentSpec,
    /// The zone's own resources, created before it connects. On a Kubernetes zone give
    /// the namespace as the `k8s.kuma.io/namespace` label (default: the system namespace).
    #[serde(default)]
    pub resources: Vec<serde_json::Value>,
    #[serde(default)]
    pub listen: ListenSpec,
    /// Start holding the copies KDS would have left the zone (default: the scenario's
    /// `startSynced`): every resource the global holds once the lab's meshes, defaults
    /// and `global.resources` are created, filtered, mapped and stored exactly as the
    /// zone's KDS client stores what it receives (names, `kuma.io/origin: global` and the
    /// other labels). The client still connects: its first full state changes nothing,
    /// and whatever changes on the global afterwards reaches the zone over KDS. What
    /// other zones send the global reaches this one over KDS only, as before.
    #[serde(default)]
    pub start_synced: Option<bool>,
}

/// Explicit listen addresses; absent ones follow the port plan.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenSpec {
    pub rest: Option<SocketAddr>,
    pub kds: Option<SocketAddr>,
    pub kubernetes_api: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
}

/// A mesh created on the global.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshSpec {
    pub name: String,
    #[serde(default)]
    pub skip_creating_initial_policies: Vec<String>,
}

/// `universal` or `kubernetes` (with its system namespace).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type", deny_unknown_fields)]
pub enum EnvironmentSpec {
    #[default]
    Universal,
    Kubernetes {
        #[serde(default = "default_system_namespace", rename = "systemNamespace")]
        system_namespace: String,
    },
}

fn default_system_namespace() -> String {
    DEFAULT_SYSTEM_NAMESPACE.to_owned()
}

impl EnvironmentSpec {
    pub fn environment(&self) -> Environment {
        match self {
            EnvironmentSpec::Universal => Environment::Universal,
            EnvironmentSpec::Kubernetes { system_namespace } => Environment::Kubernetes {
                system_namespace: system_namespace.clone(),
            },
        }
    }
}

impl Scenario {
    /// Parses a scenario file's text.
    pub fn from_yaml(text: &str) -> Result<Self, LabError> {
        serde_saphyr::from_str(text).map_err(|e| LabError::Scenario(e.to_string()))
    }

    /// One universal zone per name, everything else default.
    pub fn with_zones(zones: &[(&str, Environment)]) -> Self {
        Self {
            zones: zones
                .iter()
                .map(|(name, env)| ZoneSpec {
                    name: (*name).to_owned(),
                    environment: match env {
                        Environment::Universal => EnvironmentSpec::Universal,
                        Environment::Kubernetes { system_namespace } => EnvironmentSpec::Kubernetes {
                            system_namespace: system_namespace.clone(),
                        },
                    },
                    resources: Vec::new(),
                    listen: ListenSpec::default(),
                    start_synced: None,
                })
                .collect(),
            ..Self::default()
        }
    }

    /// Checks names and reads every resource document, so a bad file fails before
    /// anything listens.
    /// The Kuma line the scenario asks for.
    pub fn line(&self) -> Result<kuma_model::KumaLine, LabError> {
        match &self.kuma_version {
            None => Ok(kuma_model::KumaLine::V2),
            Some(v) => v.parse().map_err(LabError::Scenario),
        }
    }

    pub fn validate(&self) -> Result<(), LabError> {
        self.line()?;
        let mut seen = std::collections::BTreeSet::new();
        for z in &self.zones {
            if !is_dns_label(&z.name) {
                return Err(LabError::Scenario(format!(
                    "zone name {:?} must be a DNS label (lowercase letters, digits, '-', at most 63)",
                    z.name
                )));
            }
            if !seen.insert(z.name.as_str()) {
                return Err(LabError::Scenario(format!("zone {:?} is listed twice", z.name)));
            }
            read_documents(&format!("zone {}", z.name), &z.resources)?;
        }
        read_documents("global", &self.global.resources)?;
        if self.ports == Some(PortPlan::WellKnown) && self.zones.len() > 5 {
            return Err(LabError::Scenario(
                "well-known ports fit at most 5 zones; use `ports: ephemeral` or explicit listen addresses"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// Whether `zone` starts holding its copies: its own `startSynced`, else the
    /// scenario's.
    pub fn starts_synced(&self, zone: &ZoneSpec) -> bool {
        zone.start_synced.unwrap_or(self.start_synced)
    }

    pub(crate) fn bind_ip(&self) -> IpAddr {
        self.bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// The address of one listener: explicit, else by the port plan. `zone` is the
    /// 1-based zone index, 0 for the global.
    pub(crate) fn address(&self, explicit: Option<SocketAddr>, base_port: u16, zone: u16) -> SocketAddr {
        if let Some(addr) = explicit {
            return addr;
        }
        let port = match self.ports.unwrap_or(PortPlan::Ephemeral) {
            PortPlan::Ephemeral => 0,
            // validate() caps the zone count, so this stays below 65536.
            PortPlan::WellKnown => base_port + zone * 10_000,
        };
        SocketAddr::new(self.bind_ip(), port)
    }
}

/// Reads resource documents given inline in the scenario (JSON is YAML).
pub(crate) fn read_documents(place: &str, docs: &[serde_json::Value]) -> Result<Vec<Resource>, LabError> {
    let mut out = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let text = doc.to_string();
        let loaded = read_str(
            &format!("{place} resource {}", i + 1),
            &text,
            &ReadOptions::default(),
        )
        .map_err(|e| LabError::Scenario(e.to_string()))?;
        out.extend(loaded.resources);
    }
    Ok(out)
}

fn is_dns_label(name: &str) -> bool {
    kuma_model::zone_name::check(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_scenario_and_rejects_unknown_fields() {
        let text = r#"
global:
  environment: {type: kubernetes}
zones:
  - name: zone-1
  - name: zone-2
    environment: {type: kubernetes, systemNamespace: mesh-system}
meshes: [{name: default}]
ports: wellKnown
"#;
        let s = Scenario::from_yaml(text).expect("valid");
        s.validate().expect("valid");
        assert_eq!(s.global.environment.environment(), Environment::kubernetes());
        assert_eq!(
            s.zones[1].environment.environment(),
            Environment::Kubernetes {
                system_namespace: "mesh-system".into()
            }
        );
        assert!(s.global.tls);
        assert_eq!(s.address(None, 5681, 2).port(), 25681);
        assert!(!s.starts_synced(&s.zones[0]), "zones start empty by default");
        let s = Scenario::from_yaml("startSynced: true\nzones: [{name: a}, {name: b, startSynced: false}]\n")
            .expect("valid");
        assert!(s.starts_synced(&s.zones[0]));
        assert!(!s.starts_synced(&s.zones[1]), "a zone's own choice wins");
        let err = Scenario::from_yaml("zones: []\nzonez: []\n").expect_err("unknown field");
        assert!(err.to_string().contains("zonez"), "{err}");
    }

    #[test]
    fn bad_names_and_documents_fail_validation() {
        let s = Scenario::with_zones(&[("Zone_1", Environment::Universal)]);
        assert!(s.validate().is_err());
        let mut s = Scenario::default();
        s.global.resources.push(serde_json::json!({"type": "MeshRetry"}));
        let err = s.validate().expect_err("no name");
        assert!(err.to_string().contains("name"), "{err}");
    }
}
