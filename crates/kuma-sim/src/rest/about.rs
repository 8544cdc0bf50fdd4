//! What a control plane says about itself: `GET /` (`index_endpoints.go`), `GET
//! /_resources` (`mappers.MapResourceTypeDescription`) and a minimal `GET /config`.

use kuma_model::{
    CpRole, ResourceType,
    types::{K8sKind, Scope, flags},
};
use serde::Serialize;
use serde_json::json;

use super::{Api, Reply, errors::ApiError};

/// Kuma's `IndexResponse`, in its field order, as a real 2.14.3 control plane answers it
/// (`docs/conformance.md`): no `tagline`, and `gui` empty on zones.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    cluster_id: &'a str,
    gui: &'a str,
    hostname: &'a str,
    instance_id: String,
    product: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TypeDescription {
    include_in_federation: bool,
    name: &'static str,
    path: &'static str,
    plural_display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<PolicyDescription>,
    read_only: bool,
    scope: &'static str,
    short_name: &'static str,
    singular_display_name: String,
}

/// The type table knows which policies are targetRef-based, not which directions they
/// support; those flags stay false.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyDescription {
    has_from_target_ref: bool,
    has_rules_target_ref: bool,
    has_to_target_ref: bool,
    is_from_as_rules: bool,
    is_target_ref: bool,
}

impl Api {
    pub(super) fn index(&self) -> Result<Reply, ApiError> {
        Reply::json(
            200,
            &Index {
                cluster_id: "kuma-sim",
                gui: match self.store.role() {
                    CpRole::Global => "/gui",
                    CpRole::Zone(_) => "",
                },
                hostname: &self.hostname,
                instance_id: format!("{}-{}", self.hostname, self.store.role()),
                product: "Kuma",
                version: super::reported_version(self.store.line()),
            },
        )
    }

    pub(super) fn resource_types(&self) -> Result<Reply, ApiError> {
        let federated_zone = matches!(self.store.role(), CpRole::Zone(_));
        let mut resources: Vec<TypeDescription> = ResourceType::all()
            .map(ResourceType::info)
            .filter(|info| !info.rest_path.is_empty())
            .map(|info| {
                let system_read_only = info.name.ends_with("Insight");
                let singular = display_name(info.name);
                TypeDescription {
                    include_in_federation: info.kds_flags & flags::GLOBAL_TO_ZONES == flags::GLOBAL_TO_ZONES
                        && !system_read_only,
                    name: info.name,
                    path: info.rest_path,
                    plural_display_name: plural(&singular),
                    policy: info.is_policy.then_some(PolicyDescription {
                        has_from_target_ref: false,
                        has_rules_target_ref: false,
                        has_to_target_ref: false,
                        is_from_as_rules: false,
                        is_target_ref: info.plugin_originated,
                    }),
                    read_only: federated_zone || system_read_only,
                    scope: match info.scope {
                        Scope::Mesh => "Mesh",
                        Scope::Global => "Global",
                    },
                    short_name: match info.k8s {
                        K8sKind::Crd { short: Some(s), .. } => s,
                        _ => "",
                    },
                    singular_display_name: singular,
                }
            })
            .collect();
        resources.sort_by_key(|d| d.name);
        Reply::json(200, &json!({ "resources": resources }))
    }

    pub(super) fn config(&self) -> Result<Reply, ApiError> {
        let (mode, zone) = match self.store.role() {
            CpRole::Global => ("global", String::new()),
            CpRole::Zone(z) => ("zone", z),
        };
        Reply::json(
            200,
            &json!({
                "apiServer": {"readOnly": false},
                "environment": self.store.environment().to_string(),
                "mode": mode,
                "multizone": {"zone": {"name": zone}},
                "store": {"type": "memory"},
            }),
        )
    }
}

/// `MeshCircuitBreaker` -> `Mesh Circuit Breaker`; acronyms stay whole (`Mesh HTTP Route`).
fn display_name(type_name: &str) -> String {
    let chars: Vec<char> = type_name.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        let starts_word = i > 0
            && c.is_uppercase()
            && (chars[i - 1].is_lowercase() || chars.get(i + 1).is_some_and(|n| n.is_lowercase()));
        if starts_word {
            out.push(' ');
        }
        out.push(*c);
    }
    out
}

fn plural(singular: &str) -> String {
    if let Some(stem) = singular.strip_suffix('y') {
        format!("{stem}ies")
    } else if singular.ends_with('s') || singular.ends_with("ch") {
        format!("{singular}es")
    } else {
        format!("{singular}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_split_words_and_keep_acronyms() {
        assert_eq!(display_name("MeshCircuitBreaker"), "Mesh Circuit Breaker");
        assert_eq!(display_name("MeshHTTPRoute"), "Mesh HTTP Route");
        assert_eq!(plural("Mesh Retry"), "Mesh Retries");
        assert_eq!(plural("Mesh Service"), "Mesh Services");
    }
}
