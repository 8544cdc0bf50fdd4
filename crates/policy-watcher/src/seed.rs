//! The seed guide's post-federation check: everything a zone exported before it joined
//! (`kumactl export --profile=federation`) must now be on the global, with the same spec.
//! Whether the global then sends the policies back to the zone is the ordinary
//! global-to-zone check.

use std::collections::HashMap;

use kuma_model::{CpRole, Origin, Resource, ResourceType, fingerprint, fingerprint::differences};

use crate::{Direction, Discrepancy, State};

/// Checks each exported resource against the global's resources. Matching is by type,
/// mesh and display name among global-origin resources: the export was applied to the
/// global under its own names, possibly into another namespace.
pub fn check_seed(global: &[Resource], exported: &[Resource]) -> Vec<Discrepancy> {
    let mut on_global: HashMap<(ResourceType, Option<&str>, &str), &Resource> = HashMap::new();
    for r in global {
        if r.origin(&CpRole::Global) == Origin::Global {
            on_global.insert((r.rtype, r.mesh.as_deref(), r.display_name()), r);
        }
    }
    let mut out: Vec<Discrepancy> = exported
        .iter()
        .filter_map(|e| {
            let found = on_global.get(&(e.rtype, e.mesh.as_deref(), e.display_name()));
            let (state, detail, found) = match found {
                None => (
                    State::Missing,
                    "exported before federation but not on the global".to_owned(),
                    Vec::new(),
                ),
                Some(g) if fingerprint(&g.spec) != fingerprint(&e.spec) => {
                    let found = differences(&e.spec, &g.spec);
                    let paths: Vec<&str> = found.iter().map(|d| d.path.as_str()).collect();
                    let detail = format!(
                        "the global's {} differs from the export at {}",
                        g.name,
                        paths.join(", ")
                    );
                    (State::Drifted, detail, found)
                }
                Some(_) => return None,
            };
            Some(Discrepancy {
                zone: "global".to_owned(),
                direction: Direction::Seed,
                rtype: e.rtype,
                mesh: e.mesh.clone(),
                name: e.display_name().to_owned(),
                state,
                source: Some(e.name.clone()),
                detail,
                paths: found.iter().map(|d| d.path.clone()).collect(),
                differences: found,
            })
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn r(t: &str, mesh: Option<&str>, name: &str, spec: serde_json::Value) -> Resource {
        Resource::new(ResourceType::from_name(t).unwrap(), mesh, name, spec)
    }

    #[test]
    fn export_found_missing_and_drifted() {
        let global = vec![
            r("Mesh", None, "default", json!({})),
            r("MeshTimeout", Some("default"), "t", json!({"a": "1m"})),
            r("MeshRetry", Some("default"), "r", json!({"n": 1})),
        ];
        let exported = vec![
            r("Mesh", None, "default", json!({})),
            r("MeshTimeout", Some("default"), "t", json!({"a": "60s"})),
            r("MeshRetry", Some("default"), "r", json!({"n": 2})),
            r("Secret", Some("default"), "s", json!({"data": "x"})),
        ];
        let got = check_seed(&global, &exported);
        let states: Vec<_> = got.iter().map(|d| (d.rtype.name(), d.state)).collect();
        assert_eq!(
            states,
            vec![("MeshRetry", State::Drifted), ("Secret", State::Missing)]
        );
        assert_eq!(got[0].paths, vec![".n"]);
    }

    #[test]
    fn zone_origin_resources_on_the_global_do_not_count() {
        let global = vec![
            r("MeshRetry", Some("default"), "r", json!({}))
                .with_label("kuma.io/origin", "zone")
                .with_label("kuma.io/zone", "zone-1"),
        ];
        let exported = vec![r("MeshRetry", Some("default"), "r", json!({}))];
        assert_eq!(check_seed(&global, &exported)[0].state, State::Missing);
    }
}
