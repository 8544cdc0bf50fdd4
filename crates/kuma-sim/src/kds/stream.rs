//! One `GlobalToZoneSync` stream: go-control-plane's delta server as Kuma runs it
//! (kuma-semantics 3.1).
//!
//! Each request re-arms its type's one-shot watch ([`super::delta`]); the first wildcard
//! response goes out at once, empty or not. A type's subscription (wildcard, names)
//! decides what of the zone's resources it is sent.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use kds_wire::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, request::node_features};
use kuma_model::ResourceType;
use prost::Message;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use super::{
    Shared,
    delta::Sent,
    generation::{self, WireEntry, ZoneView},
    record::{RecordedRequest, RecordedResponse},
};
use crate::store::StatEvent;

/// Kuma's `control_plane.identifier` on every response.
const CONTROL_PLANE_ID: &str = "global";

/// What the stream learned when it opened.
pub(crate) struct StreamContext {
    pub id: u64,
    pub client_id: String,
    pub version_header: Option<String>,
    pub header_features: Vec<String>,
    /// The zone record's subscription this stream updates.
    pub subscription: String,
}

/// Per type URL: go-control-plane's `StreamState`, the subscription and the watch.
#[derive(Debug)]
struct TypeWatch {
    wildcard: bool,
    names: BTreeSet<String>,
    sent: Sent,
    /// The last generation of what the zone should hold, and the store and fault
    /// versions it was made at. Every ACK re-arms its type, and a response is due only
    /// when something changed: without this each ACK re-encoded every armed type, which
    /// at 10,000 policies a zone made a zone's first sync take seconds.
    generated: Option<((u64, u64), BTreeMap<String, WireEntry>)>,
}

struct Session {
    shared: Arc<Shared>,
    ctx: StreamContext,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
    interrupts: Interrupts,
    /// From the first request: the filter and mappers use it for the whole stream.
    zone: Option<ZoneView>,
    nonce: u64,
    types: BTreeMap<String, TypeWatch>,
}

/// Why the session ended.
enum End {
    /// The client went away or half-closed: nothing more to send.
    Client,
    /// End the RPC with this status.
    Status(Status),
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    ctx: StreamContext,
    inbound: Streaming<DeltaDiscoveryRequest>,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
    stop: CancellationToken,
) {
    let closes = shared.faults.closes();
    let interrupts = Interrupts { stop, closes };
    let mut session = Session {
        shared: shared.clone(),
        ctx,
        tx,
        interrupts,
        zone: None,
        nonce: 0,
        types: BTreeMap::new(),
    };
    let end = session.drive(inbound).await;
    if let End::Status(status) = end {
        tracing::info!(stream = session.ctx.id, code = ?status.code(), "GlobalToZoneSync stream ended by the server");
        // The client may already be gone; then there is nobody to tell.
        let _ = session.tx.send(Err(status)).await;
    }
    shared
        .store
        .close_subscription(&session.ctx.client_id, &session.ctx.subscription);
    shared.open_streams.send_modify(|n| *n -= 1);
}

impl Session {
    async fn drive(&mut self, mut inbound: Streaming<DeltaDiscoveryRequest>) -> End {
        let mut store_changes = self.shared.store.subscribe();
        let mut fault_changes = self.shared.faults.subscribe();
        loop {
            if let Err(end) = self.respond().await {
                return end;
            }
            tokio::select! {
                end = self.interrupts.wait() => return end,
                message = inbound.message() => match message {
                    Ok(Some(request)) => {
                        if let Err(status) = self.on_request(request) {
                            return End::Status(status);
                        }
                    }
                    // go-control-plane returns when the request channel closes.
                    Ok(None) => return End::Client,
                    // A request past the size limit or undecodable ends the stream with
                    // that status, as in grpc-go; if the client is gone, nobody hears it.
                    Err(status) => {
                        tracing::debug!(stream = self.ctx.id, %status, "GlobalToZoneSync receive failed");
                        return End::Status(status);
                    }
                },
                _ = store_changes.changed() => {}
                _ = fault_changes.changed() => {}
                () = self.tx.closed() => return End::Client,
            }
        }
    }

    fn on_request(&mut self, request: DeltaDiscoveryRequest) -> Result<(), Status> {
        self.record(&request);
        if request.type_url.is_empty() {
            return Err(Status::invalid_argument("type URL is required for ADS"));
        }
        if self.zone.is_none() {
            // Kuma dereferences the first request's node (kuma-semantics 10.2); without one it
            // would fail the stream, so the simulator refuses it plainly.
            let node = request.node.as_ref().filter(|n| !n.id.is_empty());
            let Some(node) = node else {
                return Err(Status::invalid_argument("the first request must carry node.id"));
            };
            let features = node_features(node).into_iter().collect();
            self.zone = Some(ZoneView {
                zone: node.id.clone(),
                features,
            });
        }
        if !request.response_nonce.is_empty() {
            let event = if request.error_detail.is_some() {
                StatEvent::Nacked
            } else {
                StatEvent::Acked
            };
            self.shared.store.record_stat(
                &self.ctx.client_id,
                &self.ctx.subscription,
                &request.type_url,
                event,
            );
        }
        let watch = self
            .types
            .entry(request.type_url.clone())
            .or_insert_with(|| TypeWatch {
                wildcard: request.resource_names_subscribe.is_empty(),
                names: BTreeSet::new(),
                sent: Sent::new(
                    request
                        .initial_resource_versions
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                generated: None,
            });
        for name in &request.resource_names_subscribe {
            match name.as_str() {
                "*" => watch.wildcard = true,
                _ => {
                    watch.names.insert(name.clone());
                }
            }
        }
        for name in &request.resource_names_unsubscribe {
            match name.as_str() {
                "*" => watch.wildcard = false,
                _ => {
                    watch.names.remove(name);
                    watch.sent.forget(name);
                }
            }
        }
        watch.sent.arm();
        Ok(())
    }

    fn record(&self, request: &DeltaDiscoveryRequest) {
        let node = request.node.as_ref();
        self.shared.records.request(RecordedRequest {
            stream_id: self.ctx.id,
            client_id: self.ctx.client_id.clone(),
            version_header: self.ctx.version_header.clone(),
            header_features: self.ctx.header_features.clone(),
            node_id: node.map(|n| n.id.clone()),
            has_node_metadata: node.is_some_and(|n| n.metadata.is_some()),
            features: node.map(node_features).unwrap_or_default(),
            type_url: request.type_url.clone(),
            response_nonce: request.response_nonce.clone(),
            is_nack: request.error_detail.is_some(),
            error_message: request.error_detail.as_ref().map(|e| e.message.clone()),
            subscribe: request.resource_names_subscribe.clone(),
            unsubscribe: request.resource_names_unsubscribe.clone(),
            initial_resource_versions: request.initial_resource_versions.clone().into_iter().collect(),
        });
    }

    /// Sends one response for every armed type with something to say.
    async fn respond(&mut self) -> Result<(), End> {
        // Read before what they version: a change racing the reads moves them again, and
        // the next round generates anew.
        let at = (
            self.shared.store.version(),
            *self.shared.faults.subscribe().borrow(),
        );
        let faults = self.shared.faults.snapshot();
        if faults.stalled {
            return Ok(());
        }
        let Some(zone) = self.zone.clone() else {
            return Ok(());
        };
        let armed: Vec<String> = self
            .types
            .iter()
            .filter(|(_, w)| w.sent.is_armed())
            .map(|(t, _)| t.clone())
            .collect();
        for type_url in armed {
            let fresh = self
                .types
                .get(&type_url)
                .and_then(|w| w.generated.as_ref())
                .is_some_and(|(made_at, _)| *made_at == at);
            if !fresh {
                let desired = self.desired(&type_url, &zone, &faults);
                if let Some(watch) = self.types.get_mut(&type_url) {
                    watch.generated = Some((at, desired));
                }
            }
            let Some((response, oversize_fault)) = self.next_response(&type_url) else {
                continue;
            };
            if !faults.delay.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(faults.delay) => {}
                    end = self.interrupts.wait() => return Err(end),
                }
            }
            let encoded_len = response.encoded_len();
            if encoded_len > self.shared.max_message_size && !oversize_fault {
                // What grpc-go's send limit does to Kuma's stream.
                return Err(End::Status(Status::resource_exhausted(format!(
                    "trying to send message larger than max ({encoded_len} vs. {})",
                    self.shared.max_message_size
                ))));
            }
            let recorded = RecordedResponse {
                stream_id: self.ctx.id,
                client_id: self.ctx.client_id.clone(),
                type_url: type_url.clone(),
                nonce: response.nonce.clone(),
                resources: response.resources.iter().map(|r| r.name.clone()).collect(),
                removed_resources: response.removed_resources.clone(),
                encoded_len,
            };
            // Recorded before sending, so a client that has the response can rely on it.
            self.shared.records.response(recorded);
            self.shared.store.record_stat(
                &self.ctx.client_id,
                &self.ctx.subscription,
                &type_url,
                StatEvent::Sent,
            );
            tokio::select! {
                sent = self.tx.send(Ok(response)) => sent.map_err(|_| End::Client)?,
                end = self.interrupts.wait() => return Err(end),
            }
        }
        Ok(())
    }

    /// What the zone should hold for `type_url` now. Unknown types and types the global
    /// never sends have an empty snapshot, as in Kuma.
    fn desired(
        &self,
        type_url: &str,
        zone: &ZoneView,
        faults: &super::faults::FaultState,
    ) -> BTreeMap<String, WireEntry> {
        let Some(rtype) = ResourceType::from_name(type_url) else {
            return BTreeMap::new();
        };
        let (resources, zones) = self.shared.store.view(rtype);
        let mut desired = generation::generate(&resources, self.shared.store.environment(), zone, |z| {
            zones.get(z).copied()
        });
        for entry in faults.injected(rtype, self.shared.max_message_size) {
            desired.insert(entry.delta_key.clone(), entry);
        }
        desired
    }

    /// Builds the response for one armed type from its last generation and marks it sent;
    /// `None` when there is nothing to say. The flag tells whether it carries the oversize fault.
    fn next_response(&mut self, type_url: &str) -> Option<(DeltaDiscoveryResponse, bool)> {
        let watch = self.types.get_mut(type_url)?;
        let (wildcard, names) = (watch.wildcard, &watch.names);
        let (_, generated) = watch.generated.as_ref()?;
        let named: BTreeMap<String, WireEntry>;
        let desired = match wildcard {
            true => generated,
            false => {
                named = generated
                    .iter()
                    .filter(|(key, _)| names.contains(*key))
                    .map(|(k, e)| (k.clone(), e.clone()))
                    .collect();
                &named
            }
        };
        // go-control-plane answers the first wildcard request even with nothing in it.
        let delta = watch.sent.next(desired, wildcard)?;
        self.nonce += 1;
        let oversize_fault = delta.changed.iter().any(|e| e.oversize_fault);
        Some((
            delta.into_response(type_url, self.nonce, CONTROL_PLANE_ID),
            oversize_fault,
        ))
    }
}

/// What ends a stream from the server's side.
struct Interrupts {
    /// Cancelled when the server instance stops.
    stop: CancellationToken,
    /// `Faults::close_streams` requests.
    closes: broadcast::Receiver<(tonic::Code, String)>,
}

impl Interrupts {
    /// Resolves when the server stops or a test closes streams.
    async fn wait(&mut self) -> End {
        tokio::select! {
            () = self.stop.cancelled() => End::Status(Status::unavailable("stream unavailable")),
            close = recv_close(&mut self.closes) => End::Status(close),
        }
    }
}

async fn recv_close(closes: &mut broadcast::Receiver<(tonic::Code, String)>) -> Status {
    loop {
        match closes.recv().await {
            Ok((code, message)) => return Status::new(code, message),
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            // The sender lives in `Shared`, which outlives every stream.
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}
