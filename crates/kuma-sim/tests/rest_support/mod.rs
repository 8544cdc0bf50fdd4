//! What the REST API tests share: a plain HTTP client, a zone-role store and fixtures;
//! the tests of the system endpoints live in `system_endpoints`.

#![allow(dead_code)]

mod system_endpoints;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use kuma_model::{CpRole, Environment, Resource, ResourceKey, ResourceType};
use kuma_sim::{
    GlobalStore, ResourceStore, ZoneRecord,
    rest::{RestApi, RestHandle},
};
use serde_json::Value;
use tokio::sync::watch;

/// Bounds every request.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn rtype(name: &str) -> ResourceType {
    ResourceType::from_name(name).unwrap_or_else(|| panic!("unknown type {name}"))
}

pub fn mesh(name: &str) -> Resource {
    Resource::new(rtype("Mesh"), None, name, serde_json::json!({}))
}

/// A MeshCircuitBreaker as the store holds it.
pub fn stored_mcb(mesh: &str, name: &str) -> Resource {
    Resource::new(
        rtype("MeshCircuitBreaker"),
        Some(mesh),
        name,
        serde_json::json!({"targetRef": {"kind": "Mesh"}}),
    )
    .with_label("kuma.io/mesh", mesh)
}

/// A MeshCircuitBreaker PUT body in the universal form.
pub fn mcb_body(mesh: &str, name: &str, labels: &[(&str, &str)], max_connections: u32) -> String {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    serde_json::json!({
        "type": "MeshCircuitBreaker",
        "mesh": mesh,
        "name": name,
        "labels": labels,
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": {"kind": "MeshService", "name": "redis"},
                    "default": {"connectionLimits": {"maxConnections": max_connections}}}]
        }
    })
    .to_string()
}

/// An answer: status and the parsed JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Value,
}

/// Sends one request and reads the whole answer, under [`WAIT`].
pub async fn call(method: &str, url: &str, body: Option<&str>) -> Answer {
    call_bytes(method, url, body.map(|b| b.as_bytes().to_vec())).await
}

pub async fn call_bytes(method: &str, url: &str, body: Option<Vec<u8>>) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = http::Request::builder().method(method).uri(url);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let request = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("valid request");
    let response = tokio::time::timeout(WAIT, client.request(request))
        .await
        .expect("answered in time")
        .expect("request sent");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .expect("body in time")
        .expect("body read")
        .to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {url}: body is not JSON ({e}): {bytes:?}"))
    };
    Answer {
        status,
        content_type,
        body,
    }
}

/// A global on a universal store with the given meshes, and its API.
pub async fn global_with_meshes(meshes: &[&str]) -> (Arc<GlobalStore>, RestHandle) {
    let store = Arc::new(GlobalStore::new(Environment::Universal));
    for m in meshes {
        store.upsert(mesh(m));
    }
    let handle = RestApi::global(store.clone())
        .start("127.0.0.1:0".parse().expect("literal address"))
        .await
        .expect("REST API starts");
    (store, handle)
}

/// A zone control plane's store: a [`GlobalStore`] for the data, reporting the zone role.
pub struct ZoneRoleStore {
    pub inner: GlobalStore,
    zone: String,
}

impl ZoneRoleStore {
    pub fn new(zone: &str) -> Self {
        Self {
            inner: GlobalStore::new(Environment::Universal),
            zone: zone.to_owned(),
        }
    }

    /// A zone running Kuma 3 (main).
    pub fn kuma_3(zone: &str) -> Self {
        Self {
            inner: GlobalStore::new(Environment::Universal).with_line(kuma_model::KumaLine::V3),
            zone: zone.to_owned(),
        }
    }
}

impl ResourceStore for ZoneRoleStore {
    fn role(&self) -> CpRole {
        CpRole::Zone(self.zone.clone())
    }
    fn environment(&self) -> &Environment {
        self.inner.environment()
    }
    fn line(&self) -> kuma_model::KumaLine {
        self.inner.line()
    }
    fn list(&self, rtype: Option<ResourceType>) -> Vec<Resource> {
        self.inner.list(rtype)
    }
    fn get(&self, key: &ResourceKey) -> Option<Resource> {
        self.inner.get(key)
    }
    fn upsert(&self, resource: Resource) -> Option<Resource> {
        self.inner.upsert(resource)
    }
    fn delete(&self, key: &ResourceKey) -> Option<Resource> {
        self.inner.delete(key)
    }
    fn version(&self) -> u64 {
        self.inner.version()
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.subscribe()
    }
    fn zone_records(&self) -> Option<BTreeMap<String, ZoneRecord>> {
        None
    }
}

/// Asserts Kuma's error shape and returns the `invalid_parameters` fields.
pub fn kuma_error(answer: &Answer, status: u16) -> Vec<String> {
    assert_eq!(answer.status, status, "{:#}", answer.body);
    assert_eq!(answer.content_type.as_deref(), Some("application/json"));
    let b = &answer.body;
    assert_eq!(b["type"], "/std-errors", "{b:#}");
    assert_eq!(b["status"], status, "{b:#}");
    assert!(b["title"].as_str().is_some_and(|t| !t.is_empty()), "{b:#}");
    assert_eq!(b["detail"], b["details"], "{b:#}");
    b["invalid_parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| p["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The raw body text, to check the order of fields (parsed JSON sorts them).
pub async fn call_raw_order(url: &str) -> String {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = tokio::time::timeout(WAIT, client.get(url.parse().expect("url")))
        .await
        .expect("in time")
        .expect("answered");
    let bytes = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .expect("in time")
        .expect("body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}
