//! Builders for multi-zone scenarios: a universal global, a universal zone-1 and a
//! Kubernetes zone-2, and copies made the way Kuma's KDS makes them.

#![allow(dead_code)] // each test binary uses a different part

#[cfg(feature = "sources")]
pub mod http_peer;

pub use kuma_model::fixtures::{mcb, policy, rtype};
use kuma_model::{
    CpRole, Environment, Resource, labels,
    resource::{expected_name_in_zone, expected_name_on_global},
};
use policy_watcher::{Engine, Selection, Topology, ZoneSpec, monitor::Monitor};
use serde_json::json;

pub const Z1: &str = "zone-1";
pub const Z2: &str = "zone-2";

pub fn zone(name: &str) -> CpRole {
    CpRole::Zone(name.to_owned())
}

pub fn topology() -> Topology {
    Topology::new(
        Environment::Universal,
        vec![
            ZoneSpec::new(Z1, Environment::Universal),
            ZoneSpec::new(Z2, Environment::kubernetes()),
        ],
    )
}

pub fn engine() -> Engine {
    Engine::new(topology(), Selection::default())
}

pub fn env_of(zone: &str) -> Environment {
    topology()
        .zones
        .into_iter()
        .find(|z| z.name == zone)
        .map(|z| z.environment)
        .expect("zone in topology")
}

pub fn mtp(name: &str) -> Resource {
    policy(
        "MeshTrafficPermission",
        name,
        json!({"targetRef": {"kind": "MeshService", "name": "redis"},
               "from": [{"targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/service": "demo-app"}},
                         "default": {"action": "Allow"}}]}),
    )
}

/// What the global's `src` becomes in `zone`: renamed, labelled `kuma.io/origin: global`
/// (unless it came from a zone) and carrying its display name.
pub fn copy_in_zone(src: &Resource, zone: &str) -> Resource {
    let mut copy = src.clone();
    copy.name = expected_name_in_zone(src, &Environment::Universal, &env_of(zone));
    if src.label(labels::ORIGIN).is_none() {
        copy = copy.with_label(labels::ORIGIN, labels::ORIGIN_GLOBAL);
    }
    if !copy.labels.contains_key(labels::DISPLAY_NAME) {
        copy = copy.with_label(labels::DISPLAY_NAME, &src.name);
    }
    copy
}

/// A zone's own resource as Kuma labels it at creation (kuma-semantics 6.3).
pub fn local_to(zone: &str, r: Resource) -> Resource {
    r.with_label(labels::ORIGIN, labels::ORIGIN_ZONE)
        .with_label(labels::ZONE, zone)
}

/// A producer policy created in the Kubernetes zone `zone`, in namespace `kuma-demo`, as
/// Kuma's store reads it back: core name `<name>.kuma-demo`, namespace and display-name
/// labels, role producer (it targets a named MeshService in its namespace).
pub fn k8s_producer(zone: &str, r: Resource) -> Resource {
    let display = r.name.clone();
    let mut r = local_to(zone, r)
        .with_label(labels::NAMESPACE, "kuma-demo")
        .with_label(labels::DISPLAY_NAME, &display)
        .with_label(labels::POLICY_ROLE, labels::ROLE_PRODUCER);
    r.name = format!("{display}.kuma-demo");
    r
}

/// What a zone's own `local` becomes on the (universal) global.
pub fn copy_on_global(local: &Resource, zone: &str) -> Resource {
    let mut copy = local.clone();
    copy.name = expected_name_on_global(local, zone, &env_of(zone), &Environment::Universal);
    copy.with_label(labels::DISPLAY_NAME, local.display_name())
}

pub fn zone_resource(name: &str, enabled: bool) -> Resource {
    Resource::new(rtype("Zone"), None, name, json!({"enabled": enabled}))
}

/// Waits, up to 20 s, for `check` to hold of `monitor`, looking again after each change.
pub async fn until(monitor: &Monitor, what: &str, check: impl Fn(&Monitor) -> bool) {
    let mut changes = monitor.subscribe();
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while !check(monitor) {
            changes.changed().await.expect("monitor alive");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}
