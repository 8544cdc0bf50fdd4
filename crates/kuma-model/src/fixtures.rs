//! Policies as a user writes them on a global, for tests and benchmarks of every crate
//! (feature `test-util`): one home for the `mcb()` and `mtp()` builders instead of a copy
//! in each test suite. Each lives in mesh `default`, labelled with its mesh as Kuma labels
//! every mesh-scoped resource it stores.

use serde_json::{Value, json};

use crate::{Resource, ResourceType, labels};

/// The type named `name` (a kind, plural or short name); panics on a typo in a test.
pub fn rtype(name: &str) -> ResourceType {
    ResourceType::from_name(name).unwrap_or_else(|| panic!("{name} is not a Kuma type"))
}

/// A policy of type `type_name` in mesh `default` with `spec`.
pub fn policy(type_name: &str, name: &str, spec: Value) -> Resource {
    Resource::new(rtype(type_name), Some("default"), name, spec).with_label(labels::MESH, "default")
}

/// A MeshCircuitBreaker limiting connections to `redis`; `max_connections` tells copies of
/// one name apart.
pub fn mcb(name: &str, max_connections: u32) -> Resource {
    policy(
        "MeshCircuitBreaker",
        name,
        json!({"targetRef": {"kind": "Mesh"}, "to": [{"targetRef": {"kind": "MeshService", "name": "redis"},
               "default": {"connectionLimits": {"maxConnections": max_connections}}}]}),
    )
}

/// A MeshTrafficPermission for the whole mesh with `action` (`Allow`, `Deny`, ...).
pub fn mtp(name: &str, action: &str) -> Resource {
    policy(
        "MeshTrafficPermission",
        name,
        json!({"targetRef": {"kind": "Mesh"}, "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": action}}]}),
    )
}

/// A MeshTimeout with a one-hour idle timeout for the whole mesh.
pub fn timeout(name: &str) -> Resource {
    policy(
        "MeshTimeout",
        name,
        json!({"targetRef": {"kind": "Mesh"}, "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1h0m0s"}}]}),
    )
}
