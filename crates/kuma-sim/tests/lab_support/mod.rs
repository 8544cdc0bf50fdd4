//! Shared pieces of the lab tests: the federate scenario and store lookups.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::time::Duration;

use kuma_model::{Environment, Resource, ResourceKey, ResourceType};
use kuma_sim::{
    ResourceStore,
    lab::{EnvironmentSpec, Lab, PortPlan, Scenario},
};

/// Bounds every wait; the lab converges in well under a second on a quiet machine.
pub const WAIT: Duration = Duration::from_secs(30);

pub const FEDERATE: &str = include_str!("../../../../examples/federate.yaml");

pub fn rtype(name: &str) -> ResourceType {
    ResourceType::from_name(name).unwrap_or_else(|| panic!("unknown type {name}"))
}

/// The example scenario on ephemeral ports.
pub fn federate() -> Scenario {
    let mut s = Scenario::from_yaml(FEDERATE).expect("the example scenario parses");
    s.ports = Some(PortPlan::Ephemeral);
    s
}

pub fn federate_with_global(env: Environment) -> Scenario {
    let mut s = federate();
    s.global.environment = match env {
        Environment::Universal => EnvironmentSpec::Universal,
        Environment::Kubernetes { system_namespace } => EnvironmentSpec::Kubernetes { system_namespace },
    };
    s
}

/// Starts the federate lab and waits until both zones hold the guide's policy.
pub async fn converged_lab(s: Scenario) -> Lab {
    let lab = Lab::start(s).await.expect("lab starts");
    lab.wait_connected(WAIT).await.expect("zones connect");
    lab
}

pub fn key(t: &str, mesh: Option<&str>, name: &str) -> ResourceKey {
    ResourceKey {
        rtype: rtype(t),
        mesh: mesh.map(str::to_owned),
        name: name.to_owned(),
    }
}

pub fn mcb_key(name: &str) -> ResourceKey {
    key("MeshCircuitBreaker", Some("default"), name)
}

pub fn get(store: &dyn ResourceStore, key: &ResourceKey) -> Option<Resource> {
    store.get(key)
}

pub fn names(store: &dyn ResourceStore, t: &str) -> Vec<String> {
    store.list(Some(rtype(t))).into_iter().map(|r| r.name).collect()
}

/// A MeshCircuitBreaker in mesh `default` with a distinctive connection limit.
pub fn mcb(name: &str, max_connections: u32) -> Resource {
    Resource::new(
        rtype("MeshCircuitBreaker"),
        Some("default"),
        name,
        serde_json::json!({
            "targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": {"kind": "MeshService", "name": "redis"},
                    "default": {"connectionLimits": {"maxConnections": max_connections}}}]
        }),
    )
}
