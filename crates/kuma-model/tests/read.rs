//! The readers against realistic documents of every format, and against malformed input.

use kuma_model::{
    CpRole, Environment, Resource, ResourceType, fingerprint,
    read::{Loaded, ReadError, ReadOptions, read_str},
    resource::expected_name_in_zone,
};
use serde_json::json;

#[path = "read/errors.rs"]
mod errors;

fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn load(path: &str) -> Loaded {
    read_str(path, &fixture(path), &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn read_err(text: &str) -> ReadError {
    match read_str("bad.yaml", text, &ReadOptions::default()) {
        Ok(loaded) => panic!("expected an error, read {:?}", loaded.resources),
        Err(e) => e,
    }
}

fn find<'a>(loaded: &'a Loaded, rtype: &str, display_name: &str) -> &'a Resource {
    loaded
        .resources
        .iter()
        .find(|r| r.rtype.name() == rtype && r.display_name() == display_name)
        .unwrap_or_else(|| panic!("no {rtype} {display_name} in {:?}", loaded.resources))
}

fn ts(s: &str) -> Option<jiff::Timestamp> {
    Some(s.parse().expect("test timestamp"))
}

/// (type, display name) of every resource, in input order.
fn summary(loaded: &Loaded) -> Vec<(String, String)> {
    loaded
        .resources
        .iter()
        .map(|r| (r.rtype.name().to_owned(), r.display_name().to_owned()))
        .collect()
}

const FEDERATE_POLICIES: &[(&str, &str)] = &[
    ("MeshCircuitBreaker", "mesh-circuit-breaker-all-default"),
    ("MeshRetry", "mesh-retry-all-default"),
    ("MeshTimeout", "mesh-gateways-timeout-all-default"),
    ("MeshTimeout", "mesh-timeout-all-default"),
    ("MeshCircuitBreaker", "demo-app-to-redis"),
    ("MeshTrafficPermission", "redis"),
];

#[test]
fn universal_export_reads_every_document_in_order() {
    let loaded = load("federate/universal-export.yaml");
    assert!(loaded.warnings.is_empty());
    let mut expected = vec![
        ("Mesh".to_owned(), "default".to_owned()),
        (
            "Secret".to_owned(),
            "dataplane-token-signing-key-default".to_owned(),
        ),
    ];
    expected.extend(
        FEDERATE_POLICIES
            .iter()
            .map(|(t, n)| ((*t).to_owned(), (*n).to_owned())),
    );
    assert_eq!(summary(&loaded), expected);

    let mesh = find(&loaded, "Mesh", "default");
    assert_eq!(mesh.mesh, None);
    assert_eq!(mesh.spec, json!({}), "meta fields are not spec");

    let mcb = find(&loaded, "MeshCircuitBreaker", "demo-app-to-redis");
    assert_eq!(mcb.name, "demo-app-to-redis");
    assert_eq!(mcb.mesh.as_deref(), Some("default"));
    assert_eq!(mcb.label("kuma.io/mesh"), Some("default"));
    assert_eq!(
        mcb.label("kuma.io/display-name"),
        None,
        "universal stores add no display name"
    );
    assert_eq!(mcb.creation_time, ts("2026-11-24T10:02:41.127356Z"));
    assert_eq!(mcb.modification_time, mcb.creation_time);
    assert_eq!(mcb.status, None);
    assert_eq!(
        mcb.spec["to"][0]["targetRef"],
        json!({"kind": "MeshService", "name": "redis"})
    );
    assert_eq!(
        mcb.spec["to"][0]["default"]["connectionLimits"]["maxConnections"],
        2
    );
    assert_eq!(
        mcb.spec.as_object().map(|o| o.len()),
        Some(2),
        "only targetRef and to"
    );

    let defaults = find(&loaded, "MeshCircuitBreaker", "mesh-circuit-breaker-all-default");
    assert_eq!(
        defaults.spec["to"][0]["default"]["connectionLimits"]["maxRetries"],
        3
    );
    let timeouts = find(&loaded, "MeshTimeout", "mesh-timeout-all-default");
    assert_eq!(timeouts.spec["targetRef"]["proxyTypes"], json!(["Sidecar"]));
}

#[test]
fn rest_list_page_reads_its_items_like_the_export() {
    let page = load("federate/rest-meshcircuitbreakers.json");
    let export = load("federate/universal-export.yaml");
    assert_eq!(
        summary(&page),
        [
            ("MeshCircuitBreaker", "demo-app-to-redis"),
            ("MeshCircuitBreaker", "mesh-circuit-breaker-all-default")
        ]
        .map(|(t, n)| (t.to_owned(), n.to_owned()))
    );
    for r in &page.resources {
        assert_eq!(
            r,
            find(&export, "MeshCircuitBreaker", r.display_name()),
            "REST and export agree"
        );
    }
}

#[test]
fn kumactl_list_output_reads_its_items() {
    let list = load("federate/kumactl-get-meshtimeouts.yaml");
    let export = load("federate/universal-export.yaml");
    assert_eq!(list.resources.len(), 2);
    for r in &list.resources {
        assert_eq!(r, find(&export, "MeshTimeout", r.display_name()));
    }
}

#[test]
fn kubectl_list_maps_like_kumas_kubernetes_store() {
    let list = load("federate/kubectl-list.yaml");
    let export = load("federate/universal-export.yaml");
    assert_eq!(list.resources.len(), 3);
    let mcb = find(&list, "MeshCircuitBreaker", "demo-app-to-redis");
    assert_eq!(mcb.name, "demo-app-to-redis.kuma-system");
    assert_eq!(mcb.mesh.as_deref(), Some("default"));
    assert_eq!(mcb.namespace(), Some("kuma-system"));
    assert_eq!(
        mcb.label("kuma.io/display-name"),
        Some("demo-app-to-redis"),
        "added on read, as Kuma does"
    );
    assert_eq!(mcb.label("kuma.io/policy-role"), Some("system"));
    assert!(
        mcb.label("kubectl.kubernetes.io/last-applied-configuration")
            .is_none(),
        "other annotations stay out"
    );
    assert_eq!(mcb.creation_time, ts("2026-11-24T10:02:41Z"));
    assert_eq!(
        mcb.modification_time, mcb.creation_time,
        "Kuma reports creationTimestamp for both"
    );
    let universal = find(&export, "MeshCircuitBreaker", "demo-app-to-redis");
    assert_eq!(mcb.spec, universal.spec);
    assert_eq!(fingerprint(&mcb.spec), fingerprint(&universal.spec));
    let mtp = find(&list, "MeshTrafficPermission", "redis");
    assert_eq!(mtp.name, "redis.kuma-system");
    assert_eq!(mtp.spec, find(&export, "MeshTrafficPermission", "redis").spec);
}

#[test]
fn kubernetes_export_reads_custom_resources_and_secrets() {
    let kube = load("federate/kubernetes-export.yaml");
    let export = load("federate/universal-export.yaml");
    assert_eq!(summary(&kube), summary(&export), "same resources, same order");
    let mesh = find(&kube, "Mesh", "default");
    assert_eq!(
        (mesh.name.as_str(), mesh.mesh.as_deref()),
        ("default", None),
        "cluster-scoped: plain name"
    );
    assert_eq!(mesh.spec, json!({}));
    let secret = find(&kube, "Secret", "dataplane-token-signing-key-default");
    assert_eq!(
        secret.name, "dataplane-token-signing-key-default",
        "Secrets keep their name"
    );
    assert_eq!(secret.mesh.as_deref(), Some("default"));
    assert_eq!(
        secret.spec,
        find(&export, "Secret", "dataplane-token-signing-key-default").spec
    );
    for (rtype, name) in FEDERATE_POLICIES {
        let (k, u) = (find(&kube, rtype, name), find(&export, rtype, name));
        assert_eq!(k.name, format!("{name}.kuma-system"));
        assert_eq!(k.mesh, u.mesh, "{rtype} {name}");
        assert_eq!(k.spec, u.spec, "{rtype} {name}");
    }
}

#[test]
fn synced_copy_on_a_kubernetes_zone_matches_the_kubernetes_global() {
    let global = load("synced/global-kubernetes-get.yaml");
    let zone = load("synced/zone-kubernetes-copy.yaml");
    let (g, z) = (&global.resources[0], &zone.resources[0]);
    assert_eq!(z.name, "demo-app-to-redis-48bc6d6w28bw7b44.kuma-system");
    assert_eq!(z.display_name(), "demo-app-to-redis");
    assert_eq!(
        z.identity(&CpRole::Zone("zone-1".into())),
        g.identity(&CpRole::Global)
    );
    assert_eq!(
        expected_name_in_zone(g, &Environment::kubernetes(), &Environment::kubernetes()),
        z.name
    );
    assert_eq!(fingerprint(&z.spec), fingerprint(&g.spec));
}

#[test]
fn synced_copy_on_a_universal_zone_matches_the_universal_global() {
    let export = load("federate/universal-export.yaml");
    let zone = load("synced/zone-universal-copy.yaml");
    let (g, z) = (
        find(&export, "MeshCircuitBreaker", "demo-app-to-redis"),
        &zone.resources[0],
    );
    assert_eq!(
        z.identity(&CpRole::Zone("zone-1".into())),
        g.identity(&CpRole::Global)
    );
    assert_eq!(
        expected_name_in_zone(g, &Environment::Universal, &Environment::Universal),
        z.name
    );
}

#[test]
fn proto_types_carry_their_spec_inline() {
    let loaded = load("proto/mesh-skip-initial-policies.yaml");
    let mesh = &loaded.resources[0];
    assert_eq!(mesh.rtype, ResourceType::from_name("Mesh").unwrap());
    assert_eq!(mesh.name, "payments");
    assert_eq!(
        mesh.spec,
        json!({
            "mtls": {"backends": [{"name": "ca-1", "type": "builtin"}], "enabledBackend": "ca-1"},
            "skipCreatingInitialPolicies": ["*"],
        })
    );
}

#[test]
fn secrets_in_concatenated_json() {
    let loaded = load("proto/secrets.json");
    let [secret, global] = &loaded.resources[..] else {
        panic!("{:?}", loaded.resources)
    };
    assert_eq!(
        (secret.rtype.name(), secret.mesh.as_deref()),
        ("Secret", Some("payments"))
    );
    assert_eq!(secret.spec, json!({"data": "czNjcjN0LXBhc3N3MHJk"}));
    assert_eq!(
        secret.creation_time,
        ts("2026-11-24T10:25:30.511734Z"),
        "offsets are honoured"
    );
    assert_eq!(
        (global.rtype.name(), global.mesh.as_deref()),
        ("GlobalSecret", None)
    );
}

#[test]
fn kubernetes_secrets_by_type() {
    let text = r#"
apiVersion: v1
kind: Secret
metadata: {name: user-token-signing-key-1, namespace: kuma-system}
type: system.kuma.io/global-secret
data: {value: dGVzdDIK}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: kuma-system, labels: {kuma.io/mesh: payments}}
type: system.kuma.io/secret
stringData: {value: "test2\n"}
"#;
    let loaded = read_str("secrets.yaml", text, &ReadOptions::default()).unwrap();
    let [global, secret] = &loaded.resources[..] else {
        panic!("{:?}", loaded.resources)
    };
    assert_eq!(
        (global.rtype.name(), global.mesh.as_deref()),
        ("GlobalSecret", None)
    );
    assert_eq!(global.spec, json!({"data": "dGVzdDIK"}));
    assert_eq!(
        (secret.rtype.name(), secret.mesh.as_deref(), secret.name.as_str()),
        ("Secret", Some("payments"), "db")
    );
    assert_eq!(
        secret.spec,
        json!({"data": "dGVzdDIK"}),
        "stringData is encoded as Kubernetes would"
    );
}

#[test]
fn typed_kubernetes_lists_give_their_items_a_kind() {
    let text = r#"{"apiVersion": "kuma.io/v1alpha1", "kind": "MeshCircuitBreakerList", "items": [
        {"metadata": {"name": "a", "namespace": "kuma-demo", "labels": {"kuma.io/mesh": "demo"}}, "spec": {}}]}"#;
    let loaded = read_str("list.json", text, &ReadOptions::default()).unwrap();
    let r = &loaded.resources[0];
    assert_eq!(
        (r.rtype.name(), r.name.as_str(), r.mesh.as_deref()),
        ("MeshCircuitBreaker", "a.kuma-demo", Some("demo"))
    );
}

#[test]
fn kubernetes_mesh_defaults_and_old_types() {
    let text = "\
apiVersion: kuma.io/v1alpha1
kind: MeshRetry
metadata: {name: r, namespace: kuma-demo}
---
apiVersion: kuma.io/v1alpha1
kind: TrafficPermission
mesh: payments
metadata: {name: allow-all-payments}
spec: {sources: [{match: {kuma.io/service: '*'}}], destinations: [{match: {kuma.io/service: '*'}}]}
";
    let loaded = read_str("k.yaml", text, &ReadOptions::default()).unwrap();
    let [retry, tp] = &loaded.resources[..] else {
        panic!("{:?}", loaded.resources)
    };
    assert_eq!(
        retry.mesh.as_deref(),
        Some("default"),
        "no kuma.io/mesh label: the default mesh"
    );
    assert_eq!(retry.label("kuma.io/display-name"), Some("r"));
    assert_eq!(
        (tp.name.as_str(), tp.mesh.as_deref()),
        ("allow-all-payments", Some("payments"))
    );
}

#[test]
fn empty_and_comment_only_input_reads_nothing() {
    for text in [
        "",
        "\n",
        "# Product: Kuma, Version: 2.14.3\n---\n",
        "---\n---\n...\n",
    ] {
        let loaded = read_str("empty.yaml", text, &ReadOptions::default()).unwrap();
        assert!(
            loaded.resources.is_empty() && loaded.warnings.is_empty(),
            "{text:?}"
        );
    }
}

#[test]
fn kumas_own_export_shape_with_status_and_zero_times() {
    // As app/kumactl/cmd/export/testdata/export-uni-federation-with-policies.golden.yaml.
    let text = "\
# Product: Kuma, Version: 0.0.0-testversion, Hostname: localhost
---
creationTime: \"0001-01-01T00:00:00Z\"
kri: kri_mal_default___mal-1_
mesh: default
modificationTime: \"0001-01-01T00:00:00Z\"
name: mal-1
spec:
  targetRef: {kind: MeshService, name: web}
status: {}
type: MeshAccessLog
";
    let loaded = read_str("export.yaml", text, &ReadOptions::default()).unwrap();
    let mal = &loaded.resources[0];
    assert_eq!(mal.status, Some(json!({})));
    // Go's zero time means "not set", not a date 2000 years ago.
    assert_eq!(mal.creation_time, None);
    assert_eq!(mal.modification_time, None);
    assert_eq!(
        mal.spec,
        json!({"targetRef": {"kind": "MeshService", "name": "web"}})
    );
}

#[test]
fn long_streams_and_crlf_line_endings() {
    // More documents than the YAML parser's per-parse budget of 1024.
    let text: String = (0..1500)
        .map(|i| format!("---\r\ntype: MeshRetry\r\nmesh: default\r\nname: r-{i}\r\nspec: {{}}\r\n"))
        .collect();
    let loaded = read_str("many.yaml", &text, &ReadOptions::default()).unwrap();
    assert_eq!(loaded.resources.len(), 1500);
    assert_eq!(loaded.resources[1499].name, "r-1499");
    let e = read_str(
        "many.yaml",
        &format!("{text}---\r\ntype: MeshRetry\r\n"),
        &ReadOptions::default(),
    )
    .unwrap_err();
    assert_eq!((e.document, e.line), (1501, 7502));
}

#[test]
fn unknown_items_of_a_rest_page_are_skipped_when_asked() {
    let page = r#"{"total": 2, "items": [{"type": "MeshNewPolicy", "mesh": "default", "name": "x", "spec": {}},
        {"type": "MeshRetry", "mesh": "default", "name": "ok", "spec": {}}], "next": null}"#;
    let loaded = read_str(
        "page.json",
        page,
        &ReadOptions {
            skip_unknown_types: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(summary(&loaded), vec![("MeshRetry".to_owned(), "ok".to_owned())]);
    assert_eq!(
        loaded.warnings,
        vec!["page.json: document 1 (line 1): item 1: skipped unknown type `MeshNewPolicy`"]
    );
}

/// A Kubernetes object already decoded (what a watch hands over) reads as its text does.
#[test]
fn a_parsed_object_reads_as_its_text() {
    let object = json!({
        "apiVersion": "kuma.io/v1alpha1",
        "kind": "MeshTimeout",
        "metadata": {
            "name": "timeout-abc",
            "namespace": "kuma-system",
            "labels": {"kuma.io/mesh": "payments", "kuma.io/origin": "global"},
            "creationTimestamp": "2025-01-02T03:04:05Z"
        },
        "spec": {"targetRef": {"kind": "Mesh"}, "to": [{"targetRef": {"kind": "Mesh"}, "default": {"idleTimeout": "1h"}}]}
    });
    let from_text = read_str("obj", &object.to_string(), &ReadOptions::default()).expect("text reads");
    let mut from_value = Vec::new();
    let warnings = kuma_model::read::read_value_each("obj", object, &ReadOptions::default(), &mut |r| {
        from_value.push(r)
    })
    .expect("value reads");
    assert!(warnings.is_empty());
    assert_eq!(from_value, from_text.resources);
    assert_eq!(from_value[0].name, "timeout-abc.kuma-system");
    assert_eq!(from_value[0].mesh.as_deref(), Some("payments"));

    let e = kuma_model::read::read_value_each("obj", json!([1]), &ReadOptions::default(), &mut drop)
        .expect_err("a sequence is no object");
    assert!(e.reason.contains("not a mapping"), "{e}");
}
