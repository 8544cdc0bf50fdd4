//! Kubernetes objects validated offline and strictly: an object must round-trip through
//! its k8s-openapi type unchanged. An unknown or misplaced field is dropped by the typed
//! decode and shows up as a difference; a wrong type fails the decode. The Prometheus
//! Operator kinds (not in k8s-openapi) get the same treatment through [`ServiceMonitor`]
//! and [`PrometheusRule`], typed after the fields of `monitoring.coreos.com/v1` that
//! kuma-sync's manifests use, with k8s-openapi's `ObjectMeta` and selectors.
//!
//! One validator for the kustomize base and the Helm chart's rendered output.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapKeySelector, Namespace, SecretKeySelector, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Decodes `value` strictly: the typed object must serialize back to exactly `value`.
pub fn validate<T: DeserializeOwned + Serialize>(value: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    match first_difference("", value, &back) {
        Some(difference) => Err(format!("not valid against the Kubernetes schema at {difference}")),
        None => Ok(typed),
    }
}

/// [`validate`], panicking with `what` (test support).
pub fn strict<T: DeserializeOwned + Serialize>(what: &str, value: &Value) -> T {
    validate(value).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Validates any object kuma-sync ships by its `kind`; an unexpected kind is an error.
pub fn validate_object(value: &Value) -> Result<(), String> {
    let kind = value["kind"].as_str().unwrap_or_default();
    match kind {
        "Namespace" => validate::<Namespace>(value).map(drop),
        "ServiceAccount" => validate::<ServiceAccount>(value).map(drop),
        "Service" => validate::<Service>(value).map(drop),
        "Deployment" => validate::<Deployment>(value).map(drop),
        "StatefulSet" => validate::<StatefulSet>(value).map(drop),
        "ConfigMap" => validate::<ConfigMap>(value).map(drop),
        "Secret" => validate::<k8s_openapi::api::core::v1::Secret>(value).map(drop),
        "ClusterRole" => validate::<ClusterRole>(value).map(drop),
        "ClusterRoleBinding" => validate::<ClusterRoleBinding>(value).map(drop),
        "Role" => validate::<Role>(value).map(drop),
        "RoleBinding" => validate::<RoleBinding>(value).map(drop),
        "ServiceMonitor" => validate::<ServiceMonitor>(value).map(drop),
        "PrometheusRule" => validate::<PrometheusRule>(value).map(drop),
        other => Err(format!("unexpected kind {other:?}")),
    }
}

/// The path of the first field that differs (unknown fields are missing from `typed`).
pub fn first_difference(path: &str, original: &Value, typed: &Value) -> Option<String> {
    match (original, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => {
                        if let Some(d) = first_difference(&here, value, other) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{here} (unknown field)")),
                }
            }
            b.keys()
                .find(|k| !a.contains_key(*k))
                .map(|k| format!("{path}.{k} (added)"))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(&format!("{path}[{i}]"), x, y)),
        (a, b) if a == b => None,
        (a, b) => Some(format!("{path} ({a} became {b})")),
    }
}

/// A Prometheus Operator object: `apiVersion` must be `monitoring.coreos.com/v1`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Monitoring<Spec> {
    #[serde(deserialize_with = "monitoring_v1")]
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: Spec,
}

fn monitoring_v1<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = String::deserialize(d)?;
    if v == "monitoring.coreos.com/v1" {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "apiVersion {v:?} is not monitoring.coreos.com/v1"
        )))
    }
}

pub type ServiceMonitor = Monitoring<ServiceMonitorSpec>;
pub type PrometheusRule = Monitoring<PrometheusRuleSpec>;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_label: Option<String>,
    pub selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<NamespaceSelector>,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_names: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honor_labels: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<SecretOrConfigMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<SecretOrConfigMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret: Option<SecretKeySelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretOrConfigMap {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretKeySelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapKeySelector>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BasicAuth {
    pub username: SecretKeySelector,
    pub password: SecretKeySelector,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusRuleSpec {
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor() -> Value {
        serde_json::json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": { "name": "m" },
            "spec": {
                "selector": { "matchLabels": { "a": "b" } },
                "endpoints": [{ "port": "metrics", "basicAuth": {
                    "username": { "name": "s", "key": "u" }, "password": { "name": "s", "key": "p" } } }],
            },
        })
    }

    #[test]
    fn monitoring_objects_are_checked_field_by_field() {
        validate_object(&monitor()).expect("valid ServiceMonitor");
        let mut typo = monitor();
        typo["spec"]["endpoints"][0]["tlsconfig"] = serde_json::json!({});
        let error = validate_object(&typo).expect_err("typo accepted");
        assert!(error.contains("tlsconfig"), "{error}");
        let mut version = monitor();
        version["apiVersion"] = "monitoring.coreos.com/v1beta1".into();
        assert!(validate_object(&version).is_err());
        let mut unknown = monitor();
        unknown["kind"] = "PodMonitor".into();
        assert!(validate_object(&unknown).is_err());
    }
}
