//! The `kuma-sync serve` configuration file as shipped (kustomize base, Helm chart).

use serde_json::Value;

/// The config keys whose values are files in the pod.
pub const FILE_KEYS: &[&str] = &[
    "kubeconfig",
    "caFile",
    "tokenFile",
    "passwordFile",
    "certFile",
    "keyFile",
    "clientCert",
    "clientKey",
];

/// Every file path a configuration names, in document order.
pub fn file_paths(config: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect(config, &mut out);
    out
}

fn collect(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value.as_str() {
                    Some(p) if FILE_KEYS.contains(&key.as_str()) => out.push(p.to_owned()),
                    _ => collect(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}
