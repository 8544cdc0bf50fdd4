//! The synthetic mesh every benchmark runs on: a global holding `policies` realistic
//! Mesh* policies spread over three meshes and three types, and `zones` zones each holding
//! the copies KDS makes of them, named and labelled as Kuma names and labels them
//! (kuma-semantics 6; `kuma_model::resource::expected_name_in_zone`).

use kuma_model::{Environment, Resource, ResourceType, labels, resource::expected_name_in_zone};
use policy_watcher::{Selection, Topology, ZoneSpec};
use serde_json::{Value, json};

pub const MESHES: [&str; 3] = ["default", "payments", "edge"];
pub const TYPES: [&str; 3] = ["MeshCircuitBreaker", "MeshTimeout", "MeshTrafficPermission"];
/// Copies, per thousand, that a faulty zone lacks, or holds with another spec: enough
/// open discrepancies for the out-of-sync bookkeeping to cost what it costs in real life.
const MISSING_PER_MILLE: u64 = 2;
const DRIFTED_PER_MILLE: u64 = 2;

/// Which control planes run on what, and whether zones start with faults.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub zones: usize,
    pub policies: usize,
    pub global: Environment,
    /// `None`: even zones universal, odd zones Kubernetes; `Some`: every zone on it.
    pub zone_env: Option<Environment>,
    /// A few copies missing or drifted in every zone.
    pub faults: bool,
}

impl Fixture {
    pub fn zone_name(z: usize) -> String {
        format!("zone-{z:03}")
    }

    pub fn zone_environment(&self, z: usize) -> Environment {
        match &self.zone_env {
            Some(e) => e.clone(),
            None if z.is_multiple_of(2) => Environment::Universal,
            None => Environment::kubernetes(),
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(
            self.global.clone(),
            (0..self.zones)
                .map(|z| ZoneSpec::new(&Self::zone_name(z), self.zone_environment(z)))
                .collect(),
        )
    }

    /// The three policy types only: what the bench generates, and what the sources list.
    pub fn selection() -> Selection {
        Selection::new(types(), None)
    }

    /// The global's policy `i` at `version`: a few hundred bytes of spec, as users write
    /// them, as the global's store holds it (Kubernetes: in `kuma-system`, role system).
    pub fn global_policy(&self, i: usize, version: u64) -> Resource {
        let mesh = MESHES[i % MESHES.len()];
        let (rtype, spec) = policy_spec(i, version);
        let display = format!("policy-{i:05}");
        let r = match &self.global {
            Environment::Universal => Resource::new(rtype, Some(mesh), &display, spec),
            Environment::Kubernetes { system_namespace } => {
                Resource::new(rtype, Some(mesh), &format!("{display}.{system_namespace}"), spec)
                    .with_label(labels::NAMESPACE, system_namespace)
                    .with_label(labels::POLICY_ROLE, "system")
                    .with_label(labels::DISPLAY_NAME, &display)
            }
        };
        r.with_label(labels::MESH, mesh)
    }

    pub fn global_policies(&self) -> Vec<Resource> {
        (0..self.policies).map(|i| self.global_policy(i, 0)).collect()
    }

    /// What KDS makes of the global's policy `i` (at `version`) in zone `z`.
    pub fn copy(&self, i: usize, z: usize, version: u64) -> Resource {
        let src = self.global_policy(i, version);
        let mut copy = src.clone();
        copy.name = expected_name_in_zone(&src, &self.global, &self.zone_environment(z));
        let display = src.display_name().to_owned();
        copy = copy.with_label(labels::ORIGIN, labels::ORIGIN_GLOBAL);
        if copy.label(labels::DISPLAY_NAME).is_none() {
            copy = copy.with_label(labels::DISPLAY_NAME, &display);
        }
        copy
    }

    /// Zone `z`'s copies; with faults, a deterministic few missing or drifted.
    pub fn zone_copies(&self, z: usize) -> Vec<Resource> {
        let mut out = Vec::with_capacity(self.policies);
        for i in 0..self.policies {
            let roll = if self.faults {
                mix(z as u64, i as u64) % 1000
            } else {
                1000
            };
            if roll < MISSING_PER_MILLE {
                continue;
            }
            let drifted = roll < MISSING_PER_MILLE + DRIFTED_PER_MILLE;
            out.push(self.copy(i, z, u64::from(drifted)));
        }
        out
    }

    /// The meshes themselves, which REST sources list policies under.
    pub fn meshes() -> Vec<Resource> {
        let mesh = ResourceType::from_name("Mesh").expect("Mesh is a known type");
        MESHES
            .iter()
            .map(|m| Resource::new(mesh, None, m, json!({})))
            .collect()
    }
}

pub fn types() -> Vec<ResourceType> {
    TYPES
        .iter()
        .map(|t| ResourceType::from_name(t).expect("a known policy type"))
        .collect()
}

/// The type and spec of policy `i`; `version` changes a value users change.
pub fn policy_spec(i: usize, version: u64) -> (ResourceType, Value) {
    let svc = format!("svc-{}", i / 3);
    let (name, spec) = match i % 3 {
        0 => (
            TYPES[0],
            json!({
                "targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/service": svc}},
                "to": [{"targetRef": {"kind": "Mesh"}, "default": {
                    "connectionLimits": {"maxConnections": 1024 + version, "maxPendingRequests": 128,
                                         "maxRequests": 1024, "maxRetries": 3},
                    "outlierDetection": {"disabled": false, "interval": "5s", "baseEjectionTime": "30s",
                        "maxEjectionPercent": 20, "splitExternalAndLocalErrors": false,
                        "detectors": {"totalFailures": {"consecutive": 10},
                                      "gatewayFailures": {"consecutive": 10}}}}}]
            }),
        ),
        1 => (
            TYPES[1],
            json!({
                "targetRef": {"kind": "Mesh"},
                "to": [{"targetRef": {"kind": "MeshService", "name": svc}, "default": {
                    "idleTimeout": "1h", "connectionTimeout": "5s",
                    "http": {"requestTimeout": format!("{}s", 15 + version), "streamIdleTimeout": "30m",
                             "maxStreamDuration": "0s", "maxConnectionDuration": "0s"}}}]
            }),
        ),
        _ => (
            TYPES[2],
            json!({
                "targetRef": {"kind": "MeshService", "name": svc},
                "from": [
                    {"targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/service": format!("client-{i}"),
                                                                   "version": format!("v{}", 1 + version)}},
                     "default": {"action": "Allow"}},
                    {"targetRef": {"kind": "Mesh"}, "default": {"action": "Deny"}}]
            }),
        ),
    };
    (ResourceType::from_name(name).expect("a known policy type"), spec)
}

/// A MeshCircuitBreaker of about 700 bytes on the wire, for the KDS benchmark.
pub fn circuit_breaker(i: usize, version: u64) -> Resource {
    let (_, spec) = policy_spec(i * 3, version);
    let rtype = ResourceType::from_name(TYPES[0]).expect("a known policy type");
    let mesh = MESHES[i % MESHES.len()];
    Resource::new(rtype, Some(mesh), &format!("circuit-breaker-{i:06}"), spec).with_label(labels::MESH, mesh)
}

/// A deterministic pseudo-random number per pair, so every run sees one state.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_add(0x632b_e59b_d9b4_e019);
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 29)
}

#[cfg(test)]
mod tests {
    use policy_watcher::{Engine, State};

    use super::*;

    fn fixture(global: Environment, zone_env: Option<Environment>, faults: bool) -> Fixture {
        Fixture {
            zones: 4,
            policies: 30,
            global,
            zone_env,
            faults,
        }
    }

    /// Copies named as Kuma names them: the engine pairs every one with its source.
    #[test]
    fn copies_converge_with_the_global_in_every_environment() {
        for (global, zone_env) in [
            (Environment::Universal, None),
            (Environment::kubernetes(), Some(Environment::kubernetes())),
            (Environment::Universal, Some(Environment::Universal)),
        ] {
            let f = fixture(global, zone_env, false);
            let mut engine = Engine::new(f.topology(), Fixture::selection());
            engine.load(&kuma_model::CpRole::Global, f.global_policies());
            for z in 0..f.zones {
                engine.load(&kuma_model::CpRole::Zone(Fixture::zone_name(z)), f.zone_copies(z));
            }
            // Synced slots are counted, not kept as slots: every finding is in the counts.
            let counts: Vec<(State, usize)> = engine.counts().map(|(_, _, s, n)| (s, n)).collect();
            assert_eq!(counts.iter().map(|(_, n)| n).sum::<usize>(), 4 * 30);
            assert!(counts.iter().all(|(s, _)| *s == State::Synced), "{counts:?}");
            assert_eq!(engine.slots().count(), 0, "nothing but synced copies");
        }
    }

    #[test]
    fn a_changed_version_is_a_drifted_copy() {
        let f = fixture(Environment::Universal, None, false);
        assert_ne!(f.copy(3, 1, 0).spec, f.copy(3, 1, 1).spec);
        assert_eq!(f.copy(3, 1, 0).name, f.copy(3, 1, 1).name);
    }
}
