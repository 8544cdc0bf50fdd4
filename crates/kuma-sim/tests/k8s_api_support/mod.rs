//! Shared setup for the Kubernetes API tests: a Kubernetes-flavoured store, the API on
//! 127.0.0.1:0, a kube client pointed at it, and bounded waits on watcher streams.

#![allow(dead_code)] // each test binary that includes this uses a different part

use std::{fmt::Debug, future::Future, sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use kube::{
    Client, Config,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};
use kuma_model::{
    Environment, Resource, ResourceType,
    labels::{DISPLAY_NAME, MESH, NAMESPACE, POLICY_ROLE},
    read::{ReadOptions, read_str},
};
use kuma_sim::{
    GlobalStore, ResourceStore,
    k8s_api::{K8sApiConfig, K8sApiHandle, start_k8s_api},
};
use serde_json::{Value, json};

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Api {
    pub store: Arc<GlobalStore>,
    pub handle: K8sApiHandle,
    pub client: Client,
}

pub async fn start(config: K8sApiConfig) -> Api {
    let store = Arc::new(GlobalStore::new(Environment::kubernetes()));
    let dyn_store: Arc<dyn ResourceStore> = store.clone();
    let handle = bounded(start_k8s_api(dyn_store, "127.0.0.1:0".parse().unwrap(), config))
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!("http://{}", handle.addr()).parse().unwrap();
    let client = Client::try_from(Config::new(url)).expect("kube client");
    Api {
        store,
        handle,
        client,
    }
}

pub async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

/// The next item of a watcher stream, within [`WAIT`].
pub async fn next<S, T>(stream: &mut S) -> T
where
    S: Stream<Item = T> + Unpin,
{
    bounded(stream.next()).await.expect("stream ended")
}

pub fn api_resource(kind: &str) -> ApiResource {
    let rtype = ResourceType::from_name(kind).expect("known type");
    let plural = match rtype.info().k8s {
        kuma_model::types::K8sKind::Crd { plural, .. } => plural,
        other => panic!("{kind} is not a CRD: {other:?}"),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("kuma.io", "v1alpha1", kind), plural)
}

/// A MeshCircuitBreaker labelled as on a Kubernetes global (kuma-semantics 6.6).
pub fn mcb(name: &str, namespace: &str, max_connections: u64) -> Resource {
    let role = if namespace == "kuma-system" {
        "system"
    } else {
        "producer"
    };
    Resource::new(
        ResourceType::from_name("MeshCircuitBreaker").unwrap(),
        Some("default"),
        &format!("{name}.{namespace}"),
        json!({
            "targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": {"kind": "Mesh"},
                    "default": {"connectionLimits": {"maxConnections": max_connections}}}],
        }),
    )
    .with_label(MESH, "default")
    .with_label(NAMESPACE, namespace)
    .with_label(POLICY_ROLE, role)
    .with_label(DISPLAY_NAME, name)
}

pub fn mesh(name: &str) -> Resource {
    Resource::new(
        ResourceType::from_name("Mesh").unwrap(),
        None,
        name,
        json!({"skipCreatingInitialPolicies": ["*"]}),
    )
    .with_label(DISPLAY_NAME, name)
}

/// The object read back through kuma-model's Kubernetes reader.
pub fn read_back(object: &DynamicObject) -> Resource {
    let text = serde_json::to_string(object).expect("serialize");
    let loaded = read_str("k8s-api", &text, &ReadOptions::default())
        .unwrap_or_else(|e| panic!("reader refused {text}: {e}"));
    assert_eq!(loaded.resources.len(), 1, "{text}");
    loaded.resources.into_iter().next().unwrap()
}

/// What must survive the round trip: name, mesh, labels and spec.
pub fn essence(r: &Resource) -> (String, Option<String>, Vec<(String, String)>, Value) {
    (
        r.name.clone(),
        r.mesh.clone(),
        r.labels.clone().into_iter().collect(),
        r.spec.clone(),
    )
}

pub fn assert_same(object: &DynamicObject, expected: &Resource) {
    assert_eq!(essence(&read_back(object)), essence(expected));
}

pub fn debug_names<T: Debug>(items: &[T]) -> String {
    format!("{items:?}")
}
