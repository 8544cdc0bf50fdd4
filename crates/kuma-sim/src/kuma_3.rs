//! What Kuma 3 (Kuma's main branch) does differently when it stores a write, where
//! kuma-sim simulates it (`kumaVersion: "3"` in a scenario). Everything else follows
//! Kuma 2.x (v2.14.3).
//!
//! - Labels (`pkg/core/resources/labels/compute.go` `Compute` at main): the display name
//!   is always set to the resource's name (a value the user gave is overwritten), the
//!   origin is always set to the control plane's own (`global` on the global, `zone` on a
//!   zone), the mesh label is set when absent, and a zone adds its zone and environment
//!   to the types zones provide. Kuma 2.x set no origin on the global and no display name
//!   on universal writes. Seen on kuma-cp main (`docs/conformance.md`).
//! - Updates through the REST API (`pkg/api-server/resource_crud_endpoints.go`
//!   `updateResource` at main): the current resource's labels are computed again before
//!   they are compared, and only `kuma.io/zone` is immutable. A zone thus accepts a synced
//!   copy written over with `kuma.io/origin: zone`: the copy becomes the zone's own
//!   resource. Kuma 2.14.3 refuses that ("is immutable").
//! - A new mesh gets `mesh-timeout-all-<mesh>` with inbound `rules` only and a new
//!   `mesh-timeout-to-all-<mesh>` for outbounds; no gateway timeout
//!   (`pkg/defaults/mesh/mesh.go` at main; see [`crate::lab`]'s defaults).

use std::collections::BTreeMap;

use kuma_model::{
    CpRole, Environment, ResourceType, labels,
    types::{Scope, flags},
};

/// Kuma 3's `labels.Compute` for a write of `rtype` named `display_name` on `role`.
pub fn compute_labels(
    out: &mut BTreeMap<String, String>,
    rtype: ResourceType,
    mesh: Option<&str>,
    display_name: &str,
    role: &CpRole,
    env: &Environment,
) {
    out.insert(labels::DISPLAY_NAME.to_owned(), display_name.to_owned());
    if rtype.info().scope == Scope::Mesh {
        out.entry(labels::MESH.to_owned())
            .or_insert_with(|| mesh.unwrap_or("default").to_owned());
    }
    match role {
        CpRole::Global => {
            out.insert(labels::ORIGIN.to_owned(), labels::ORIGIN_GLOBAL.to_owned());
        }
        CpRole::Zone(zone) => {
            out.insert(labels::ORIGIN.to_owned(), labels::ORIGIN_ZONE.to_owned());
            if rtype.info().kds_flags & flags::PROVIDED_BY_ZONE != 0 {
                out.entry(labels::ZONE.to_owned()).or_insert_with(|| zone.clone());
                out.entry(labels::ENV.to_owned())
                    .or_insert_with(|| env.to_string());
            }
        }
    }
}

/// The labels Kuma 3 keeps from changing on an update: only the zone.
pub const IMMUTABLE_LABELS: [&str; 1] = [labels::ZONE];

#[cfg(test)]
mod tests {
    use super::*;

    fn rtype(name: &str) -> ResourceType {
        ResourceType::from_name(name).expect("known")
    }

    #[test]
    fn the_global_stamps_its_origin_and_the_display_name() {
        let mut l = BTreeMap::from([(labels::DISPLAY_NAME.to_owned(), "other".to_owned())]);
        compute_labels(
            &mut l,
            rtype("MeshCircuitBreaker"),
            Some("default"),
            "demo-app-to-redis",
            &CpRole::Global,
            &Environment::Universal,
        );
        assert_eq!(
            l,
            BTreeMap::from([
                (labels::DISPLAY_NAME.to_owned(), "demo-app-to-redis".to_owned()),
                (labels::MESH.to_owned(), "default".to_owned()),
                (labels::ORIGIN.to_owned(), "global".to_owned()),
            ])
        );
    }

    #[test]
    fn a_zone_overwrites_any_origin_with_its_own() {
        let mut l = BTreeMap::from([(labels::ORIGIN.to_owned(), "global".to_owned())]);
        compute_labels(
            &mut l,
            rtype("MeshTimeout"),
            Some("default"),
            "t",
            &CpRole::Zone("zone-1".into()),
            &Environment::Universal,
        );
        assert_eq!(l[labels::ORIGIN], "zone");
        assert_eq!(l[labels::ZONE], "zone-1");
        assert_eq!(l[labels::ENV], "universal");
    }
}
