//! A minimal zone for the tests: the generated tonic client, driven by hand.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use kds_wire::features;
use kds_wire::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, KumaResource, Node,
    global_kds_service_client::GlobalKdsServiceClient, google::rpc::Status as RpcStatus,
    kds_sync_service_client::KdsSyncServiceClient,
};
use kuma_model::{Environment, Resource, ResourceType};
use kuma_sim::{GlobalStore, KdsHandle, KdsServerConfig, start_global_kds};
use prost::Message;
use prost_types::{ListValue, Struct, Value, value::Kind};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Status, Streaming, codec::CompressionEncoding, transport::Channel};

/// Bounds every wait on the network.
pub const WAIT: Duration = Duration::from_secs(10);
pub const MAX_MESSAGE: usize = kds_wire::MAX_MESSAGE_SIZE;

pub fn rtype(name: &str) -> ResourceType {
    ResourceType::from_name(name).unwrap_or_else(|| panic!("unknown type {name}"))
}

pub fn mcb(name: &str) -> Resource {
    Resource::new(
        rtype("MeshCircuitBreaker"),
        Some("default"),
        name,
        serde_json::json!({"targetRef": {"kind": "Mesh"}, "to": [{"targetRef": {"kind": "Mesh"}, "default": {}}]}),
    )
    .with_label("kuma.io/mesh", "default")
}

pub async fn start(env: Environment) -> (Arc<GlobalStore>, KdsHandle) {
    start_with(env, KdsServerConfig::default()).await
}

pub async fn start_with(env: Environment, cfg: KdsServerConfig) -> (Arc<GlobalStore>, KdsHandle) {
    let store = Arc::new(GlobalStore::new(env));
    let handle = start_global_kds(
        store.clone(),
        "127.0.0.1:0".parse().expect("literal address"),
        cfg,
    )
    .await
    .expect("server starts on a free port");
    (store, handle)
}

pub async fn channel(handle: &KdsHandle) -> Channel {
    let url = format!("http://{}", handle.local_addr());
    tonic::transport::Endpoint::from_shared(url)
        .expect("valid url")
        .connect()
        .await
        .expect("server reachable")
}

pub fn node_metadata(features: &[&str]) -> Struct {
    let list = features
        .iter()
        .map(|f| Value {
            kind: Some(Kind::StringValue((*f).to_owned())),
        })
        .collect();
    let mut fields = BTreeMap::new();
    fields.insert(
        "features".to_owned(),
        Value {
            kind: Some(Kind::ListValue(ListValue { values: list })),
        },
    );
    Struct {
        fields: fields.into_iter().collect(),
    }
}

/// One `GlobalToZoneSync` stream, as a zone opens it.
pub struct Zone {
    pub name: String,
    pub features: Vec<&'static str>,
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    pub rx: Streaming<DeltaDiscoveryResponse>,
}

impl Zone {
    /// Opens the stream with `client-id` and the five features.
    pub async fn connect(handle: &KdsHandle, name: &str) -> Zone {
        Self::connect_with(channel(handle).await, name, features::ALL.to_vec())
            .await
            .expect("stream opens")
    }

    pub async fn connect_with(
        channel: Channel,
        name: &str,
        features: Vec<&'static str>,
    ) -> Result<Zone, Status> {
        Self::open(KdsSyncServiceClient::new(channel), name, features).await
    }

    /// As a Kuma zone does: requests gzip-compressed.
    pub async fn connect_gzip(handle: &KdsHandle, name: &str) -> Zone {
        let client = KdsSyncServiceClient::new(channel(handle).await)
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip);
        Self::open(client, name, features::ALL.to_vec())
            .await
            .expect("stream opens")
    }

    async fn open(
        client: KdsSyncServiceClient<Channel>,
        name: &str,
        features: Vec<&'static str>,
    ) -> Result<Zone, Status> {
        let (tx, rx) = mpsc::channel(64);
        let mut request = Request::new(ReceiverStream::new(rx));
        request
            .metadata_mut()
            .insert("client-id", name.parse().expect("ascii zone name"));
        let mut client = client.max_decoding_message_size(MAX_MESSAGE);
        let rx = client.global_to_zone_sync(request).await?.into_inner();
        Ok(Zone {
            name: name.to_owned(),
            features,
            tx,
            rx,
        })
    }

    pub async fn send(&self, request: DeltaDiscoveryRequest) {
        self.tx.send(request).await.expect("request stream open");
    }

    /// The first request of a type: wildcard, full node.
    pub async fn subscribe(&self, type_url: &str) {
        self.send(DeltaDiscoveryRequest {
            node: Some(Node {
                id: self.name.clone(),
                metadata: Some(node_metadata(&self.features)),
            }),
            type_url: type_url.to_owned(),
            resource_names_subscribe: vec!["*".to_owned()],
            ..Default::default()
        })
        .await;
    }

    pub async fn ack(&self, response: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            node: Some(Node {
                id: self.name.clone(),
                metadata: None,
            }),
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        })
        .await;
    }

    pub async fn nack(&self, response: &DeltaDiscoveryResponse, message: &str) {
        self.send(DeltaDiscoveryRequest {
            node: Some(Node {
                id: self.name.clone(),
                metadata: None,
            }),
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            resource_names_subscribe: vec!["*".to_owned()],
            error_detail: Some(RpcStatus {
                code: 3,
                message: message.to_owned(),
                details: vec![],
            }),
            ..Default::default()
        })
        .await;
    }

    /// The next message: a response, or the status that ended the stream.
    pub async fn next(&mut self) -> Result<DeltaDiscoveryResponse, Status> {
        match tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("server answered in time")
        {
            Ok(Some(response)) => Ok(response),
            Ok(None) => Err(Status::ok("stream ended")),
            Err(status) => Err(status),
        }
    }

    pub async fn expect_response(&mut self) -> DeltaDiscoveryResponse {
        self.next().await.expect("a response, not an error")
    }
}

pub fn decode(response: &DeltaDiscoveryResponse) -> BTreeMap<String, KumaResource> {
    response
        .resources
        .iter()
        .map(|r| {
            let any = r.resource.as_ref().expect("resource present");
            assert_eq!(any.type_url, kds_wire::KUMA_RESOURCE_TYPE_URL);
            (
                r.name.clone(),
                KumaResource::decode(any.value.as_slice()).expect("a KumaResource"),
            )
        })
        .collect()
}

pub fn keys(response: &DeltaDiscoveryResponse) -> Vec<String> {
    response.resources.iter().map(|r| r.name.clone()).collect()
}

pub fn labels(kr: &KumaResource) -> BTreeMap<String, String> {
    kr.meta
        .as_ref()
        .expect("meta")
        .labels
        .clone()
        .into_iter()
        .collect()
}

pub async fn health(channel: Channel, client_id: Option<&str>) -> Result<Duration, Status> {
    let mut request = Request::new(kds_wire::ZoneHealthCheckRequest {});
    if let Some(id) = client_id {
        request
            .metadata_mut()
            .insert("client-id", id.parse().expect("ascii"));
    }
    let response = GlobalKdsServiceClient::new(channel)
        .health_check(request)
        .await?
        .into_inner();
    let interval = response.interval.expect("interval present");
    Ok(Duration::new(interval.seconds as u64, interval.nanos as u32))
}
