//! One GlobalToZoneSync stream, from subscription to the error that ends it, plus the
//! HealthCheck calls made on the same connection meanwhile.

use std::time::Duration;

use jiff::Timestamp;
use kds_wire::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, health, request, transport::sync_client};
use kuma_model::ResourceType;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, transport::Channel};

use crate::{
    decode::decode_entry,
    error::Error,
    metrics::Metrics,
    view::{Update, View},
};

/// What a session needs, borrowed from the probe.
pub(crate) struct Session<'a> {
    pub zone_name: &'a str,
    pub types: &'a [ResourceType],
    pub health_check_interval: Duration,
    pub view: &'a View,
    pub metrics: &'a Metrics,
    pub recorder: Option<&'a crate::record::Recorder>,
}

/// How a session ended.
pub(crate) struct Ended {
    pub error: Error,
    /// At least one response arrived: the connection worked, so backoff restarts.
    pub got_response: bool,
}

impl Session<'_> {
    /// Runs the stream until it fails. It never ends otherwise: the caller drops it to stop.
    pub(crate) async fn run(&self, channel: Channel) -> Ended {
        let mut client = sync_client(channel.clone());
        // The global answers nothing until it has requests, and tonic waits for response
        // headers before returning the stream, so the subscriptions are queued first.
        // Capacity: one subscription per type, then at most one ACK per type in flight,
        // since the global sends a type nothing new until its last response is ACKed.
        let (tx, rx) = mpsc::channel(self.types.len() * 2 + 1);
        for t in self.types {
            tx.try_send(self.subscription(*t))
                .expect("the channel holds one subscription per type");
        }
        let mut request = Request::new(ReceiverStream::new(rx));
        self.identify(request.metadata_mut());
        let mut got_response = false;
        let stream = async {
            // grpc-go sends response headers with the first message, so this returns once
            // the global has answered (Kuma always answers a wildcard subscription).
            let mut inbound = match client.global_to_zone_sync(request).await {
                Ok(r) => r.into_inner(),
                Err(status) => return Error::from_status("GlobalToZoneSync", status),
            };
            self.view.stream_started();
            self.metrics.connected.set(1);
            self.metrics.stream_starts.inc();
            tracing::info!(zone = self.zone_name, types = self.types.len(), "KDS stream open");
            loop {
                match inbound.message().await {
                    Ok(Some(response)) => {
                        got_response = true;
                        let ack = self.apply(response);
                        // A closed sender means the stream is going away; the next
                        // `message()` reports why.
                        let _ = tx.send(ack).await;
                    }
                    Ok(None) => return Error::StreamClosed,
                    Err(status) => return Error::from_status("GlobalToZoneSync", status),
                }
            }
        };
        // Health checks start with the connection, not the stream, so a global that
        // accepts connections but never answers the subscription still shows its health.
        let error = tokio::select! {
            e = stream => e,
            never = self.health_checks(channel) => match never {},
        };
        Ended { error, got_response }
    }

    /// The first request of a type: wildcard, empty nonce, full Node (kuma-semantics 3.1).
    fn subscription(&self, rtype: ResourceType) -> DeltaDiscoveryRequest {
        request::subscription(self.zone_name, rtype.name())
    }

    /// `client-id` and `features`; never `version` (kuma-semantics 5).
    fn identify(&self, md: &mut tonic::metadata::MetadataMap) {
        request::identify(md, self.zone_name, None).expect("a validated DNS label is valid metadata");
    }

    /// Applies a response to the view and returns its ACK. Never a NACK: a probe's NACK
    /// would show on the global's counters as a zone rejecting config (kuma-semantics 10.3).
    fn apply(&self, response: DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
        if let Some(recorder) = self.recorder {
            recorder.record(&response);
        }
        let bytes = response.encoded_len();
        let ack = request::ack(self.zone_name, &response.type_url, response.nonce.clone());
        let Some(rtype) = ResourceType::from_name(&response.type_url).filter(|t| self.types.contains(t))
        else {
            tracing::warn!(type_url = %response.type_url, "response for a type the probe did not subscribe to");
            return ack;
        };
        let now = Timestamp::now();
        let mut undecodable = 0;
        let upserts = response
            .resources
            .iter()
            .map(|wire| {
                let entry = decode_entry(rtype, wire, now);
                if let Some(reason) = &entry.decode_error {
                    undecodable += 1;
                    tracing::warn!(r#type = %rtype, key = %wire.name, %reason, "cannot decode a resource; acknowledging it anyway");
                }
                (wire.name.clone(), entry)
            })
            .collect();
        let update = Update {
            upserts,
            removed: response.removed_resources,
            bytes,
        };
        let count = self.view.apply(rtype, update);
        self.metrics.record_response(rtype, bytes, count, undecodable);
        tracing::debug!(r#type = %rtype, nonce = %response.nonce, resources = count, "applied a KDS response");
        ack
    }

    /// Calls HealthCheck at once, then every interval, exporting the result.
    async fn health_checks(&self, channel: Channel) -> std::convert::Infallible {
        let identify = |md: &mut tonic::metadata::MetadataMap| request::identify(md, self.zone_name, None);
        let report = |outcome: Result<(), health::HealthCheckError>| {
            if let Err(error) = &outcome {
                tracing::warn!(%error, "HealthCheck failed");
            }
            self.metrics.health_check_up.set(i64::from(outcome.is_ok()));
            self.view.set_health(outcome.is_ok());
        };
        health::health_checks(channel, self.health_check_interval, identify, report).await
    }
}
