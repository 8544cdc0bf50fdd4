//! Core resources as the Kubernetes objects Kuma's Kubernetes store keeps
//! (`pkg/plugins/resources/k8s/store.go`, `pkg/util/k8s/name_converter.go`, kuma-semantics 9).
//!
//! The mapping is the inverse of `kuma_model::read` for Kubernetes documents, so an
//! object served here reads back as the resource it came from.

use std::collections::BTreeMap;

use kuma_model::{
    Resource, ResourceType,
    labels::{DISPLAY_NAME, MESH},
    types::{K8sKind, SpecEncoding},
};
use serde_json::{Map, Value, json};

/// Group and version of every Kuma custom resource.
pub const API_VERSION: &str = "kuma.io/v1alpha1";
pub const GROUP: &str = "kuma.io";
pub const VERSION: &str = "v1alpha1";

/// Labels Kuma's store moves to annotations, because their values outgrow label limits
/// (`SplitLabelsAndAnnotations`).
const ANNOTATION_LABELS: &[&str] = &[DISPLAY_NAME, "k8s.kuma.io/service-account", "kuma.io/workload"];

/// A custom resource type as the API serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crd {
    pub rtype: ResourceType,
    pub plural: &'static str,
    pub short: Option<&'static str>,
    pub namespaced: bool,
}

impl Crd {
    /// The served form of `rtype`; `None` for types Kubernetes keeps elsewhere (Secrets,
    /// ConfigMaps) or not at all.
    pub fn of(rtype: ResourceType) -> Option<Self> {
        match rtype.info().k8s {
            K8sKind::Crd {
                plural,
                short,
                namespaced,
            } => Some(Self {
                rtype,
                plural,
                short,
                namespaced,
            }),
            _ => None,
        }
    }

    pub fn by_plural(plural: &str) -> Option<Self> {
        ResourceType::from_k8s_plural(plural).and_then(Self::of)
    }

    /// Every served type, in the type table's order.
    pub fn all() -> impl Iterator<Item = Crd> {
        ResourceType::all().filter_map(Self::of)
    }

    pub fn kind(&self) -> &'static str {
        self.rtype.name()
    }

    /// `meshcircuitbreakers.kuma.io`, as the apiserver names a type in messages.
    pub fn qualified(&self) -> String {
        format!("{}.{GROUP}", self.plural)
    }
}

/// Where an object lives on Kubernetes. Ordered as etcd orders its keys (type, then
/// namespace, then name), which is the order lists are served in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub rtype: ResourceType,
    pub namespace: Option<String>,
    pub name: String,
}

/// Why a core resource has no Kubernetes form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The type is not a `kuma.io` custom resource on Kubernetes.
    #[error("{0} is not a kuma.io custom resource on Kubernetes")]
    NotACrd(ResourceType),
    /// A namespaced type's core name must be `<name>.<namespace>`; Kuma's store refuses others.
    #[error("{rtype} `{name}` is namespaced on Kubernetes but its name has no `.<namespace>` suffix")]
    NoNamespace { rtype: ResourceType, name: String },
}

/// The object's place: core name `<name>.<namespace>` split at the last dot for
/// namespaced types (`K8sNamespacedNameToCoreName` in reverse), the plain name otherwise.
pub fn object_key(r: &Resource) -> Result<ObjectKey, MappingError> {
    let crd = Crd::of(r.rtype).ok_or(MappingError::NotACrd(r.rtype))?;
    if !crd.namespaced {
        return Ok(ObjectKey {
            rtype: r.rtype,
            namespace: None,
            name: r.name.clone(),
        });
    }
    match r.name.rsplit_once('.') {
        Some((name, ns)) if !name.is_empty() && !ns.is_empty() => Ok(ObjectKey {
            rtype: r.rtype,
            namespace: Some(ns.to_owned()),
            name: name.to_owned(),
        }),
        _ => Err(MappingError::NoNamespace {
            rtype: r.rtype,
            name: r.name.clone(),
        }),
    }
}

/// What the apiserver adds to an object: none of it comes from the core resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMeta {
    pub uid: String,
    pub resource_version: u64,
    pub generation: u64,
    pub creation_timestamp: jiff::Timestamp,
}

/// The Kubernetes object Kuma's store would hold for `r`.
pub fn to_object(r: &Resource, server: &ServerMeta) -> Result<Value, MappingError> {
    let key = object_key(r)?;
    let info = r.rtype.info();
    let mut labels: BTreeMap<String, String> = r.labels.clone();
    let mut annotations = BTreeMap::new();
    for key in ANNOTATION_LABELS {
        if let Some(v) = labels.remove(*key) {
            annotations.insert((*key).to_owned(), v);
        }
    }
    let mut object = Map::new();
    object.insert("apiVersion".into(), API_VERSION.into());
    object.insert("kind".into(), r.rtype.name().into());
    // `SetMesh`: Go-struct types keep the mesh in a label, proto types in a field.
    if info.is_mesh_scoped() {
        let mesh = r.mesh_or_empty();
        match info.spec_encoding {
            SpecEncoding::Json => {
                labels.insert(MESH.to_owned(), mesh.to_owned());
            }
            SpecEncoding::Proto(_) => {
                object.insert("mesh".into(), mesh.into());
            }
        }
    }
    let mut metadata = Map::new();
    metadata.insert("name".into(), key.name.into());
    if let Some(ns) = key.namespace {
        metadata.insert("namespace".into(), ns.into());
    }
    metadata.insert("uid".into(), server.uid.clone().into());
    metadata.insert(
        "resourceVersion".into(),
        server.resource_version.to_string().into(),
    );
    metadata.insert("generation".into(), server.generation.into());
    metadata.insert(
        "creationTimestamp".into(),
        rfc3339_seconds(server.creation_timestamp).into(),
    );
    if !labels.is_empty() {
        metadata.insert("labels".into(), json!(labels));
    }
    if !annotations.is_empty() {
        metadata.insert("annotations".into(), json!(annotations));
    }
    object.insert("metadata".into(), Value::Object(metadata));
    object.insert("spec".into(), r.spec.clone());
    if let (true, Some(status)) = (info.has_status, &r.status) {
        object.insert("status".into(), status.clone());
    }
    Ok(Value::Object(object))
}

/// Kubernetes timestamps have whole seconds (`metav1.Time` marshals RFC 3339 without
/// fractions).
pub fn rfc3339_seconds(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `metadata.labels` of a served object, for label selectors.
pub fn object_labels(object: &Value) -> BTreeMap<&str, &str> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.resourceVersion` rewritten: a DELETED event carries the deletion's version.
pub fn with_resource_version(object: &Value, rv: u64) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), rv.to_string().into());
    }
    object
}

#[cfg(test)]
mod tests {
    use kuma_model::{
        Environment,
        labels::{NAMESPACE, POLICY_ROLE},
        read::{ReadOptions, read_str},
    };

    use super::*;

    fn meta() -> ServerMeta {
        ServerMeta {
            uid: "0b5a6f4e-0000-4000-8000-000000000001".into(),
            resource_version: 42,
            generation: 3,
            creation_timestamp: "2026-01-02T03:04:05.678Z".parse().unwrap(),
        }
    }

    fn rtype(name: &str) -> ResourceType {
        ResourceType::from_name(name).unwrap()
    }

    fn read_back(object: &Value) -> Resource {
        let loaded = read_str("served", &object.to_string(), &ReadOptions::default()).unwrap();
        assert_eq!(loaded.resources.len(), 1);
        loaded.resources.into_iter().next().unwrap()
    }

    #[test]
    fn namespaced_policy_follows_the_worked_example() {
        // kuma-semantics 6.6, on a Kubernetes global.
        let _ = Environment::kubernetes();
        let r = Resource::new(
            rtype("MeshCircuitBreaker"),
            Some("default"),
            "demo-app-to-redis.kuma-system",
            json!({"targetRef": {"kind": "Mesh"}}),
        )
        .with_label(MESH, "default")
        .with_label(NAMESPACE, "kuma-system")
        .with_label(POLICY_ROLE, "system")
        .with_label(DISPLAY_NAME, "demo-app-to-redis");
        let object = to_object(&r, &meta()).unwrap();
        assert_eq!(object["apiVersion"], "kuma.io/v1alpha1");
        assert_eq!(object["kind"], "MeshCircuitBreaker");
        assert_eq!(object["metadata"]["name"], "demo-app-to-redis");
        assert_eq!(object["metadata"]["namespace"], "kuma-system");
        assert_eq!(object["metadata"]["resourceVersion"], "42");
        assert_eq!(object["metadata"]["generation"], 3);
        assert_eq!(object["metadata"]["creationTimestamp"], "2026-01-02T03:04:05Z");
        assert_eq!(
            object["metadata"]["annotations"],
            json!({"kuma.io/display-name": "demo-app-to-redis"})
        );
        assert_eq!(
            object["metadata"]["labels"],
            json!({"kuma.io/mesh": "default", "k8s.kuma.io/namespace": "kuma-system",
                   "kuma.io/policy-role": "system"})
        );
        assert_eq!(object["spec"], r.spec);
        assert!(
            object.get("mesh").is_none(),
            "Go-struct types keep the mesh in a label"
        );
        let back = read_back(&object);
        assert_eq!(
            (back.name.as_str(), back.mesh.as_deref(), &back.labels, &back.spec),
            (r.name.as_str(), r.mesh.as_deref(), &r.labels, &r.spec)
        );
    }

    #[test]
    fn name_splits_at_the_last_dot() {
        let r = Resource::new(rtype("MeshTimeout"), Some("default"), "a.b.kuma-demo", json!({}));
        let key = object_key(&r).unwrap();
        assert_eq!(key.name, "a.b");
        assert_eq!(key.namespace.as_deref(), Some("kuma-demo"));
    }

    #[test]
    fn namespaced_type_without_namespace_is_refused() {
        for name in ["plain", "trailing.", ".leading"] {
            let r = Resource::new(rtype("MeshTimeout"), Some("default"), name, json!({}));
            assert!(
                matches!(object_key(&r), Err(MappingError::NoNamespace { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn cluster_scoped_proto_types_keep_plain_names_and_a_mesh_field() {
        let mesh = Resource::new(rtype("Mesh"), None, "default", json!({"mtls": {}}));
        let object = to_object(&mesh, &meta()).unwrap();
        assert_eq!(object["metadata"]["name"], "default");
        assert!(object["metadata"].get("namespace").is_none());
        assert!(object.get("mesh").is_none(), "Mesh is global-scoped");
        let back = read_back(&object);
        assert_eq!(
            (back.name.as_str(), back.mesh, back.spec),
            ("default", None, mesh.spec)
        );

        let tp = Resource::new(rtype("TrafficPermission"), Some("other"), "allow.all", json!({}));
        let object = to_object(&tp, &meta()).unwrap();
        assert_eq!(
            object["metadata"]["name"], "allow.all",
            "cluster-scoped names keep dots"
        );
        assert_eq!(object["mesh"], "other");
        assert!(object["metadata"].get("labels").is_none());
        assert_eq!(read_back(&object).mesh.as_deref(), Some("other"));
    }

    #[test]
    fn service_account_and_workload_become_annotations() {
        let r = Resource::new(rtype("MeshService"), Some("m1"), "redis.kuma-demo", json!({}))
            .with_label("k8s.kuma.io/service-account", "sa")
            .with_label("kuma.io/workload", "w")
            .with_label("app", "redis");
        let object = to_object(&r, &meta()).unwrap();
        assert_eq!(
            object["metadata"]["annotations"],
            json!({"k8s.kuma.io/service-account": "sa", "kuma.io/workload": "w"})
        );
        assert_eq!(
            object["metadata"]["labels"],
            json!({"app": "redis", "kuma.io/mesh": "m1"})
        );
        assert_eq!(read_back(&object).mesh.as_deref(), Some("m1"));
    }

    #[test]
    fn status_is_served_only_for_types_with_one() {
        let mut r = Resource::new(rtype("MeshService"), Some("default"), "a.ns", json!({}));
        r.status = Some(json!({"addresses": []}));
        assert_eq!(
            to_object(&r, &meta()).unwrap()["status"],
            json!({"addresses": []})
        );
        let mut r = Resource::new(rtype("MeshTimeout"), Some("default"), "a.ns", json!({}));
        r.status = Some(json!({"x": 1}));
        assert!(to_object(&r, &meta()).unwrap().get("status").is_none());
    }

    #[test]
    fn secrets_and_configs_are_not_served() {
        let secret = Resource::new(rtype("Secret"), Some("default"), "s", json!({}));
        assert_eq!(
            to_object(&secret, &meta()),
            Err(MappingError::NotACrd(rtype("Secret")))
        );
        assert!(Crd::of(rtype("Config")).is_none());
        assert_eq!(Crd::by_plural("meshes").map(|c| c.namespaced), Some(false));
        assert_eq!(
            Crd::by_plural("meshcircuitbreakers").map(|c| c.namespaced),
            Some(true)
        );
    }
}
