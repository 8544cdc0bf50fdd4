//! Malformed input: every failure names the source, the document and a plain reason.

use kuma_model::read::{ReadOptions, read_str};

use super::{fixture, read_err, summary};

const GOOD: &str = "type: Mesh\nname: default\n";

#[test]
fn syntax_error_names_document_and_line() {
    let e = read_err(&format!("# export\n---\n{GOOD}---\ntype: Mesh\nname: [oops\n"));
    assert_eq!(e.source_name, "bad.yaml");
    assert_eq!((e.document, e.line), (2, 6));
    assert_eq!(
        e.reason,
        "YAML syntax error at line 7, column 7: unclosed bracket '['"
    );
    assert_eq!(
        e.to_string(),
        format!("bad.yaml: document 2 (line 6): {}", e.reason)
    );
}

#[test]
fn json_syntax_error_has_its_position() {
    let e = read_err("{\n  \"type\": \"Mesh\",\n  \"name\": \"default\"\n  \"spec\": {}\n}\n");
    assert_eq!(
        e.reason,
        "JSON syntax error at line 4, column 3: expected `,` or `}`"
    );
}

#[test]
fn non_mapping_document() {
    let e = read_err(&format!("{GOOD}---\n- type: Mesh\n  name: other\n"));
    assert_eq!((e.document, e.line), (2, 4));
    assert_eq!(e.reason, "document is not a mapping (found a sequence)");
}

#[test]
fn missing_name_and_type() {
    assert_eq!(
        read_err("type: MeshRetry\nmesh: default\nspec: {}\n").reason,
        "missing `name`"
    );
    assert_eq!(read_err("name: x\nmesh: default\n").reason, "missing `type`");
    assert_eq!(
        read_err("metadata: {name: x}\nspec: {}\n").reason,
        "missing `type` (a Kubernetes object also needs `apiVersion` and `kind`)"
    );
    assert_eq!(
        read_err("kind: MeshRetry\nmetadata: {name: x}\n").reason,
        "missing `apiVersion`"
    );
}

#[test]
fn unknown_type_is_an_error_by_default() {
    let e = read_err(&format!(
        "{GOOD}---\ntype: MeshCircuitBreakr\nname: x\nmesh: default\n"
    ));
    assert_eq!(
        (e.document, e.reason.as_str()),
        (2, "unknown type `MeshCircuitBreakr`")
    );
    let e = read_err("type: meshcircuitbreaker\nname: x\nmesh: default\n");
    assert_eq!(
        e.reason,
        "unknown type `meshcircuitbreaker` (did you mean `MeshCircuitBreaker`?)"
    );
    let e = read_err("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kuma-config}\n");
    assert_eq!(e.reason, "unknown type `ConfigMap` (v1)");
}

#[test]
fn unknown_types_are_skipped_with_a_warning_when_asked() {
    let text = "\
type: MeshFooBar
name: x
mesh: default
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: kuma-control-plane-config, namespace: kuma-system}
- apiVersion: kuma.io/v1alpha1
  kind: Mesh
  metadata: {name: default}
---
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata: {name: webhook-tls, namespace: kuma-system}
";
    let opts = ReadOptions {
        skip_unknown_types: true,
        ..Default::default()
    };
    let loaded = read_str("mixed.yaml", text, &opts).unwrap();
    assert_eq!(summary(&loaded), vec![("Mesh".to_owned(), "default".to_owned())]);
    assert_eq!(
        loaded.warnings,
        vec![
            "mixed.yaml: document 1 (line 1): skipped unknown type `MeshFooBar`",
            "mixed.yaml: document 2 (line 5): item 1: skipped unknown type `ConfigMap` (v1)",
            "mixed.yaml: document 3 (line 15): skipped unknown type `Secret` (v1, type `kubernetes.io/tls`)",
        ]
    );
    let e = read_str("mixed.yaml", text, &ReadOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mixed.yaml: document 1 (line 1): unknown type `MeshFooBar`"
    );
}

#[test]
fn mesh_scope_is_enforced() {
    let e = read_err("type: MeshCircuitBreaker\nname: demo-app-to-redis\nspec: {}\n");
    assert_eq!(
        e.reason,
        "MeshCircuitBreaker `demo-app-to-redis` is mesh-scoped but has no `mesh`"
    );
    let e = read_err("type: Mesh\nname: default\nmesh: default\n");
    assert_eq!(
        e.reason,
        "Mesh `default` is global-scoped but has `mesh: default`"
    );
    let e =
        read_err("apiVersion: kuma.io/v1alpha1\nkind: TrafficPermission\nmetadata: {name: tp}\nspec: {}\n");
    assert_eq!(
        e.reason,
        "TrafficPermission `tp` is mesh-scoped but has no `mesh`"
    );
    let e = read_err(
        "apiVersion: kuma.io/v1alpha1\nkind: MeshRetry\nmetadata: {name: r, namespace: ns, labels: {kuma.io/mesh: ''}}\n",
    );
    assert_eq!(e.reason, "MeshRetry `r.ns` is mesh-scoped but has no `mesh`");
    // Kubernetes objects of global-scoped types: the mesh is ignored, as Kuma ignores it.
    let text = "apiVersion: kuma.io/v1alpha1\nkind: Mesh\nmesh: other\nmetadata: {name: m}\n";
    let loaded = read_str("mesh.yaml", text, &ReadOptions::default()).unwrap();
    assert_eq!(loaded.resources[0].mesh, None);
}

#[test]
fn bad_timestamp() {
    let e = read_err("type: Mesh\nname: default\ncreationTime: 2026-11-24 10:02\n");
    assert_eq!(
        e.reason,
        "`creationTime` is not an RFC 3339 timestamp with an offset: `2026-11-24 10:02`"
    );
    let e = read_err("type: Mesh\nname: default\nmodificationTime: \"2026-11-24T10:02:41\"\n");
    assert_eq!(
        e.reason,
        "`modificationTime` is not an RFC 3339 timestamp with an offset: `2026-11-24T10:02:41`"
    );
    let e = read_err("apiVersion: kuma.io/v1alpha1\nkind: Mesh\nmetadata: {name: m, creationTimestamp: 3}\n");
    assert_eq!(
        e.reason,
        "`metadata.creationTimestamp` must be a timestamp string, found a number"
    );
}

#[test]
fn spec_and_fields_must_have_the_right_shape() {
    let e = read_err("type: MeshRetry\nname: r\nmesh: default\nspec: [1]\n");
    assert_eq!(e.reason, "`spec` must be a mapping, found a sequence");
    let e = read_err("type: MeshRetry\nname: r\nmesh: default\nsepc: {}\n");
    assert_eq!(
        e.reason,
        "unexpected top-level field `sepc`: the fields of a MeshRetry go under `spec`"
    );
    let e = read_err("type: Mesh\nname: m\nspec: {mtls: {}}\n");
    assert_eq!(
        e.reason,
        "unexpected top-level field `spec`: Mesh is a proto-based type, its spec fields sit at the top level"
    );
    let e = read_err("type: Mesh\nname: m\nlabels: {team: 7}\n");
    assert_eq!(
        e.reason,
        "`labels` value of `team` must be a string, found a number"
    );
    let e = read_err("apiVersion: kuma.io/v1alpha1\nkind: MeshRetry\nmetadata: {name: r}\n");
    assert_eq!(
        e.reason,
        "missing `metadata.namespace`: MeshRetry is a namespaced Kubernetes resource"
    );
    let e = read_err("apiVersion: kuma.io/v1beta1\nkind: MeshRetry\nmetadata: {name: r}\n");
    assert_eq!(
        e.reason,
        "unsupported apiVersion `kuma.io/v1beta1`: Kuma's resources are `kuma.io/v1alpha1`"
    );
}

#[test]
fn a_list_with_one_bad_item_fails_whole() {
    let mut text = fixture("federate/kubectl-list.yaml");
    text = text.replacen("\n    name: redis\n    namespace", "\n    namespace", 1);
    let e = read_str("list.yaml", &text, &ReadOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "list.yaml: document 1 (line 1): item 3: missing `metadata.name`"
    );

    let page = r#"{"total": 2, "items": [
        {"type": "MeshRetry", "mesh": "default", "name": "ok", "spec": {}},
        {"type": "MeshRetry", "name": "no-mesh", "spec": {}}], "next": null}"#;
    let e = read_str("page.json", page, &ReadOptions::default()).unwrap_err();
    assert_eq!(
        e.reason,
        "item 2: MeshRetry `no-mesh` is mesh-scoped but has no `mesh`"
    );
    let e = read_str(
        "page.json",
        r#"{"items": [{"type": "Mesh", "name": "m"}, "x"]}"#,
        &ReadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.reason, "item 2: not a mapping (found a string)");
}

#[test]
fn a_rest_page_with_more_after_it_is_not_a_whole_list() {
    let item = r#"{"type": "MeshRetry", "mesh": "default", "name": "a", "spec": {}}"#;
    let next = format!(r#"{{"total": 1, "items": [{item}], "next": "http://cp:5681/meshretries?offset=1"}}"#);
    let e = read_err(&next);
    assert!(e.reason.contains("`next` link"), "{e}");
    assert!(e.reason.contains("not the whole list"), "{e}");
    assert!(e.to_string().starts_with("bad.yaml: document 1"), "{e}");

    let short = format!(r#"{{"total": 150, "items": [{item}], "next": null}}"#);
    let e = read_err(&short);
    assert!(e.reason.contains("1 item(s) out of a `total` of 150"), "{e}");

    let chunk = "apiVersion: v1\nkind: List\nmetadata: {continue: abc}\nitems: []\n";
    assert!(read_err(chunk).reason.contains("`metadata.continue`"));

    // The REST source follows `next` itself and reads each page as it comes.
    let paged = ReadOptions {
        caller_follows_pages: true,
        ..Default::default()
    };
    assert_eq!(read_str("page", &next, &paged).unwrap().resources.len(), 1);
    // The last page, and a whole list, are fine.
    let whole = format!(r#"{{"total": 1, "items": [{item}], "next": null}}"#);
    assert_eq!(
        read_str("page", &whole, &ReadOptions::default())
            .unwrap()
            .resources
            .len(),
        1
    );
}

#[test]
fn one_identity_twice_with_different_specs_is_an_error_naming_both() {
    let text = "type: MeshRetry\nmesh: default\nname: r\nspec: {a: 1}\n---\n\
                type: Mesh\nname: default\n---\n\
                type: MeshRetry\nmesh: default\nname: r\nspec: {a: 2}\n";
    let e = read_err(text);
    assert_eq!((e.document, e.line), (3, 9), "{e}");
    assert!(
        e.reason
            .contains("MeshRetry default/r is also document 1 (line 1)"),
        "{e}"
    );

    // Inside one REST page too, naming the item.
    let page = r#"{"items": [{"type": "MeshRetry", "mesh": "default", "name": "r", "spec": {"a": 1}},
        {"type": "MeshRetry", "mesh": "default", "name": "r", "spec": {"a": 2}}]}"#;
    let e = read_err(page);
    assert!(
        e.to_string()
            .contains("item 2: MeshRetry default/r is also document 1 (line 1), item 1"),
        "{e}"
    );

    // The same resource twice says one thing: read once.
    let twice = "type: Mesh\nname: default\n---\ntype: Mesh\nname: default\n";
    assert_eq!(
        read_str("x", twice, &ReadOptions::default())
            .unwrap()
            .resources
            .len(),
        1
    );
}

#[test]
fn names_longer_than_kuma_allows_are_refused() {
    let long = "a".repeat(254);
    let e = read_err(&format!("type: Mesh\nname: {long}\n"));
    assert!(
        e.reason
            .contains("`name` is 254 characters long, more than the 253"),
        "{e}"
    );
    let e = read_err(&format!(
        "apiVersion: kuma.io/v1alpha1\nkind: Mesh\nmetadata: {{name: {long}}}\n"
    ));
    assert!(e.reason.contains("`metadata.name` is 254 characters"), "{e}");
    let fits = format!("type: Mesh\nname: {}\n", "a".repeat(253));
    assert_eq!(
        read_str("x", &fits, &ReadOptions::default())
            .unwrap()
            .resources
            .len(),
        1
    );
}

/// Found by fuzzing (fuzz/corpus/kube_object): a namespace of any length was taken, and a
/// namespaced resource read from Kubernetes, whose core name is `<name>.<namespace>`, did
/// not read back from the universal form a Kubernetes control plane's REST API shows it in.
#[test]
fn a_namespaced_core_name_is_as_long_as_kubernetes_makes_it() {
    let object = |name: &str, namespace: &str| {
        format!(
            "apiVersion: kuma.io/v1alpha1\nkind: MeshTrafficPermission\n\
             metadata: {{name: {name}, namespace: {namespace}}}\nspec: {{}}\n"
        )
    };
    let longest = object(&"a".repeat(253), &"b".repeat(63));
    let r = &read_str("x", &longest, &ReadOptions::default())
        .unwrap()
        .resources[0];
    assert_eq!(r.name.len(), 317);
    let universal = format!(
        "type: MeshTrafficPermission\nmesh: default\nname: {}\nspec: {{}}\n",
        r.name
    );
    let again = read_str("x", &universal, &ReadOptions::default()).unwrap();
    assert_eq!(again.resources[0].name, r.name);

    let e = read_err(&object("a", &"b".repeat(64)));
    assert!(
        e.reason
            .contains("`metadata.namespace` is 64 characters long, more than the 63"),
        "{e}"
    );
    let e = read_err(&format!(
        "type: MeshTrafficPermission\nmesh: default\nname: {}\nspec: {{}}\n",
        "a".repeat(318)
    ));
    assert!(
        e.reason
            .contains("`name` is 318 characters long, more than the 317"),
        "{e}"
    );
}
