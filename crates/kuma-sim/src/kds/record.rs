//! What clients sent and what the server answered, kept so tests can assert a client's
//! protocol discipline (ACK everything, same node id, no NACKs, no `version` header, ...).

use std::{
    collections::BTreeMap,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::watch;

/// One `DeltaDiscoveryRequest` received on `GlobalToZoneSync`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Numbers streams across restarts, from 1.
    pub stream_id: u64,
    /// The `client-id` metadata of the stream.
    pub client_id: String,
    /// The `version` metadata of the stream, if sent (a probe should omit it).
    pub version_header: Option<String>,
    /// The multi-value `features` metadata of the stream.
    pub header_features: Vec<String>,
    /// `node.id`, `None` when the request had no node.
    pub node_id: Option<String>,
    /// Whether `node.metadata` was present (only the first request of a type carries it).
    pub has_node_metadata: bool,
    /// `node.metadata.features`.
    pub features: Vec<String>,
    pub type_url: String,
    pub response_nonce: String,
    /// `error_detail` was present.
    pub is_nack: bool,
    pub error_message: Option<String>,
    pub subscribe: Vec<String>,
    pub unsubscribe: Vec<String>,
    pub initial_resource_versions: BTreeMap<String, String>,
}

impl RecordedRequest {
    /// An ACK or NACK rather than an initial subscription.
    pub fn is_response_to_nonce(&self) -> bool {
        !self.response_nonce.is_empty()
    }
}

/// One `DeltaDiscoveryResponse` sent on `GlobalToZoneSync`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedResponse {
    pub stream_id: u64,
    pub client_id: String,
    pub type_url: String,
    pub nonce: String,
    /// Delta keys (`<name>.<mesh>`) of the resources carried.
    pub resources: Vec<String>,
    pub removed_resources: Vec<String>,
    /// Encoded protobuf size.
    pub encoded_len: usize,
}

/// The server's log of traffic, shared by all streams and kept across restarts.
pub(crate) struct Records {
    log: Mutex<Log>,
    /// Moves on every new entry, so tests can wait for traffic instead of sleeping.
    changed: watch::Sender<u64>,
    stream_ids: AtomicU64,
}

#[derive(Default)]
struct Log {
    requests: Vec<RecordedRequest>,
    responses: Vec<RecordedResponse>,
}

impl Records {
    pub(crate) fn new() -> Self {
        Self {
            log: Mutex::default(),
            changed: watch::Sender::new(0),
            stream_ids: AtomicU64::new(1),
        }
    }

    pub(crate) fn next_stream_id(&self) -> u64 {
        self.stream_ids.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn request(&self, r: RecordedRequest) {
        self.lock().requests.push(r);
        self.changed.send_modify(|v| *v += 1);
    }

    pub(crate) fn response(&self, r: RecordedResponse) {
        self.lock().responses.push(r);
        self.changed.send_modify(|v| *v += 1);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub(crate) fn responses(&self) -> Vec<RecordedResponse> {
        self.lock().responses.clone()
    }

    pub(crate) fn clear(&self) {
        *self.lock() = Log::default();
        self.changed.send_modify(|v| *v += 1);
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
