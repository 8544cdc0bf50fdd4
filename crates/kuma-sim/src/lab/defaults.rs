//! What a new mesh gets on the global (kuma-semantics 7.3, `pkg/defaults/mesh/*.go`): the
//! dataplane token signing key and four default policies, unless skipped. Kuma 3 (main,
//! `pkg/defaults/mesh/mesh.go` there) splits the timeout into inbound `rules`
//! (`mesh-timeout-all`) and outbound `to` (`mesh-timeout-to-all`) and has no gateway
//! timeout; it labels them as any write on the global ([`crate::kuma_3`]).

use kuma_model::{CpRole, Environment, KumaLine, Resource, ResourceType, labels};
use serde_json::{Value, json};

/// Kuma's `tokens.DefaultKeyID`: signing keys are `<prefix>-<mesh>-1`.
const SIGNING_KEY_ID: &str = "1";

/// The resources Kuma creates for a new mesh on a control plane of `env`, honouring
/// `skip` (type names, or `*` for every policy; the signing key is always created).
pub fn mesh_defaults(mesh: &str, env: &Environment, line: KumaLine, skip: &[String]) -> Vec<Resource> {
    let mut out = vec![signing_key(mesh)];
    if skip.iter().any(|s| s == "*") {
        return out;
    }
    let policies = match line {
        KumaLine::V2 => vec![
            ("mesh-gateways-timeout-all", "MeshTimeout", gateways_timeout()),
            ("mesh-timeout-all", "MeshTimeout", timeout()),
            (
                "mesh-circuit-breaker-all",
                "MeshCircuitBreaker",
                circuit_breaker(),
            ),
            ("mesh-retry-all", "MeshRetry", retry()),
        ],
        KumaLine::V3 => vec![
            ("mesh-timeout-all", "MeshTimeout", inbound_timeout()),
            ("mesh-timeout-to-all", "MeshTimeout", outbound_timeout()),
            (
                "mesh-circuit-breaker-all",
                "MeshCircuitBreaker",
                circuit_breaker(),
            ),
            ("mesh-retry-all", "MeshRetry", retry()),
        ],
    };
    for (prefix, type_name, spec) in policies {
        if skip.iter().any(|s| s == type_name) {
            continue;
        }
        let Some(rtype) = ResourceType::from_name(type_name) else {
            continue;
        };
        let name = format!("{prefix}-{mesh}");
        let mut r = Resource::new(rtype, Some(mesh), &name, spec).with_label(labels::MESH, mesh);
        if let Environment::Kubernetes { system_namespace } = env {
            // New policies go to the system namespace, where their role is `system`.
            r.name = format!("{name}.{system_namespace}");
            r = r
                .with_label(labels::NAMESPACE, system_namespace)
                .with_label(labels::POLICY_ROLE, "system")
                .with_label(labels::DISPLAY_NAME, &name);
        }
        if line == KumaLine::V3 {
            crate::kuma_3::compute_labels(&mut r.labels, rtype, Some(mesh), &name, &CpRole::Global, env);
        }
        out.push(r);
    }
    out
}

fn signing_key(mesh: &str) -> Resource {
    let rtype = ResourceType::from_name("Secret").expect("Secret is in the type table");
    let key: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..)).take(32).collect();
    Resource::new(
        rtype,
        Some(mesh),
        &format!("dataplane-token-signing-key-{mesh}-{SIGNING_KEY_ID}"),
        json!({"data": {"value": base64(&key)}}),
    )
    .with_label(labels::MESH, mesh)
}

fn mesh_target() -> Value {
    json!({"kind": "Mesh"})
}

fn circuit_breaker() -> Value {
    json!({
        "targetRef": mesh_target(),
        "to": [{
            "targetRef": mesh_target(),
            "default": {"connectionLimits": {
                "maxConnections": 1024, "maxPendingRequests": 1024, "maxRequests": 1024, "maxRetries": 3
            }}
        }]
    })
}

fn retry() -> Value {
    let http = json!({
        "numRetries": 5,
        "perTryTimeout": "16s",
        "backOff": {"baseInterval": "25ms", "maxInterval": "250ms"}
    });
    json!({
        "targetRef": mesh_target(),
        "to": [{
            "targetRef": mesh_target(),
            "default": {"tcp": {"maxConnectAttempt": 5}, "http": http.clone(), "grpc": http}
        }]
    })
}

fn timeout() -> Value {
    json!({
        "targetRef": {"kind": "Mesh", "proxyTypes": ["Sidecar"]},
        "from": [{
            "targetRef": mesh_target(),
            "default": {
                "connectionTimeout": "10s",
                "idleTimeout": "2h0m0s",
                "http": {"requestTimeout": "0s", "streamIdleTimeout": "1h0m0s", "maxStreamDuration": "0s"}
            }
        }],
        "to": [{
            "targetRef": mesh_target(),
            "default": {
                "connectionTimeout": "5s",
                "idleTimeout": "1h0m0s",
                "http": {"requestTimeout": "15s", "streamIdleTimeout": "30m0s"}
            }
        }]
    })
}

/// Kuma 3's `mesh-timeout-all`: the inbound half of 2.x's, as `rules`.
fn inbound_timeout() -> Value {
    json!({
        "targetRef": mesh_target(),
        "rules": [{
            "default": {
                "connectionTimeout": "10s",
                "idleTimeout": "2h0m0s",
                "http": {"requestTimeout": "0s", "streamIdleTimeout": "1h0m0s", "maxStreamDuration": "0s"}
            }
        }]
    })
}

/// Kuma 3's `mesh-timeout-to-all`: the outbound half.
fn outbound_timeout() -> Value {
    json!({
        "targetRef": mesh_target(),
        "to": [{
            "targetRef": mesh_target(),
            "default": {
                "connectionTimeout": "5s",
                "idleTimeout": "1h0m0s",
                "http": {"requestTimeout": "15s", "streamIdleTimeout": "30m0s"}
            }
        }]
    })
}

fn gateways_timeout() -> Value {
    json!({
        "targetRef": {"kind": "Mesh", "proxyTypes": ["Gateway"]},
        "from": [{
            "targetRef": mesh_target(),
            "default": {
                "idleTimeout": "5m0s",
                "http": {"streamIdleTimeout": "5s", "requestHeadersTimeout": "500ms"}
            }
        }],
        "to": [{
            "targetRef": mesh_target(),
            "default": {"idleTimeout": "1h0m0s", "http": {"streamIdleTimeout": "5s"}}
        }]
    })
}

/// Standard base64 with padding, as protojson renders `bytes`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_mesh_gets_kumas_defaults() {
        let names: Vec<_> = mesh_defaults("demo", &Environment::Universal, KumaLine::V2, &[])
            .into_iter()
            .map(|r| (r.rtype.name(), r.name))
            .collect();
        assert!(names.contains(&("Secret", "dataplane-token-signing-key-demo-1".into())));
        assert!(names.contains(&("MeshCircuitBreaker", "mesh-circuit-breaker-all-demo".into())));
        assert!(names.contains(&("MeshTimeout", "mesh-gateways-timeout-all-demo".into())));
        assert!(names.contains(&("MeshTimeout", "mesh-timeout-all-demo".into())));
        assert!(names.contains(&("MeshRetry", "mesh-retry-all-demo".into())));
        let k8s = mesh_defaults(
            "demo",
            &Environment::kubernetes(),
            KumaLine::V2,
            &["MeshRetry".into()],
        );
        assert_eq!(k8s.len(), 4);
        assert!(
            k8s.iter()
                .any(|r| r.name == "mesh-circuit-breaker-all-demo.kuma-system")
        );
        assert_eq!(
            mesh_defaults("demo", &Environment::Universal, KumaLine::V2, &["*".into()]).len(),
            1
        );
    }

    /// As kuma-cp main created them for mesh `default` (`docs/conformance.md`, S0).
    #[test]
    fn a_new_kuma_3_mesh_gets_split_timeouts_labelled_by_the_global() {
        let got = mesh_defaults("demo", &Environment::Universal, KumaLine::V3, &[]);
        let names: Vec<_> = got.iter().map(|r| (r.rtype.name(), r.name.as_str())).collect();
        assert_eq!(
            names,
            [
                ("Secret", "dataplane-token-signing-key-demo-1"),
                ("MeshTimeout", "mesh-timeout-all-demo"),
                ("MeshTimeout", "mesh-timeout-to-all-demo"),
                ("MeshCircuitBreaker", "mesh-circuit-breaker-all-demo"),
                ("MeshRetry", "mesh-retry-all-demo"),
            ]
        );
        let inbound = &got[1];
        assert!(inbound.spec.get("to").is_none() && inbound.spec["rules"].is_array());
        assert_eq!(inbound.label(labels::ORIGIN), Some("global"));
        assert_eq!(inbound.label(labels::DISPLAY_NAME), Some("mesh-timeout-all-demo"));
        assert_eq!(inbound.label(labels::MESH), Some("demo"));
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
