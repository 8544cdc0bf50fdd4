//! The zone's side of the KDS connection: one session is the `GlobalToZoneSync` stream
//! (applied to the zone store), the `ZoneToGlobalSync` stream (answered from it, see
//! [`super::upstream`]) and the HealthCheck calls, all on one channel opened with
//! kds-wire's transport. The session ends on the first stream error, on a reconnect
//! request or when a stall is lifted; the loop then connects again.

use std::{collections::BTreeMap, sync::Arc};

use kds_wire::{
    Connector, DeltaDiscoveryResponse, health,
    kds_sync_service_client::KdsSyncServiceClient,
    request::{self, ack, nack},
    transport,
};
use kuma_model::ResourceType;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, codec::CompressionEncoding, transport::Channel};

use super::{Error, ZoneShared};
use crate::kds::codec::{self, ProtoSpecs};

/// Runs sessions until `stop` is cancelled.
pub(super) async fn run(shared: Arc<ZoneShared>, stop: CancellationToken) {
    let mut reconnects = shared.faults.reconnect_requests();
    let mut fault_changes = shared.faults.subscribe();
    loop {
        // An offline zone waits for the fault to be lifted.
        while shared.faults.snapshot().offline {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = fault_changes.changed() => {}
            }
        }
        reconnects.mark_unchanged();
        let ended = tokio::select! {
            () = stop.cancelled() => return,
            _ = reconnects.changed() => Error::ReconnectRequested,
            error = session(&shared) => error,
        };
        tracing::info!(zone = %shared.config.name, %ended, "zone KDS session ended");
        shared.status.send_modify(|s| {
            s.connected = false;
            s.last_error = Some(ended.to_string());
        });
        if matches!(ended, Error::ReconnectRequested | Error::Stalled) {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            _ = reconnects.changed() => {}
            () = tokio::time::sleep(shared.config.reconnect_delay) => {}
        }
    }
}

async fn session(shared: &ZoneShared) -> Error {
    let connected = async {
        Connector::new(shared.global_address.clone(), shared.tls.clone())?
            .channel(shared.config.connect_timeout)
            .await
    };
    let channel = match connected.await {
        Ok(channel) => channel,
        Err(error) => return Error::Connect(error),
    };
    tokio::select! {
        error = global_to_zone(shared, channel.clone()) => error,
        error = super::upstream::zone_to_global(shared, channel.clone()) => error,
        never = health_checks(shared, channel) => match never {},
    }
}

/// `client-id`, `features` and `version` on every call, as a Kuma zone sends them
/// (kuma-semantics 2.1).
pub(super) fn identify(md: &mut tonic::metadata::MetadataMap, zone: &str) -> Result<(), Error> {
    // Real zones say which Kuma they run; the global shows it in ZoneInsight.
    request::identify(md, zone, Some(crate::rest::VERSION)).map_err(|_| Error::InvalidName(zone.to_owned()))
}

pub(super) fn sync_client(channel: Channel) -> KdsSyncServiceClient<Channel> {
    transport::sync_client(channel)
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip)
}

/// Per-type state of the global-to-zone stream.
#[derive(Default)]
struct Received {
    /// The first response of the type arrived on this stream (it was the full state).
    synced: bool,
    /// The nonce of a response the stop-ACK fault holds back.
    held_ack: Option<String>,
}

async fn global_to_zone(shared: &ZoneShared, channel: Channel) -> Error {
    let zone = shared.config.name.as_str();
    let types: Vec<ResourceType> = ResourceType::all()
        .filter(|t| t.info().flows_global_to_zone())
        .collect();
    // Unbounded: the receive loop must never wait on its own ACKs.
    let (tx, rx) = mpsc::unbounded_channel();
    for t in &types {
        let _ = tx.send(request::subscription(zone, t.name()));
    }
    let mut request = Request::new(UnboundedReceiverStream::new(rx));
    if let Err(e) = identify(request.metadata_mut(), zone) {
        return e;
    }
    let mut inbound = match sync_client(channel).global_to_zone_sync(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => return Error::Stream("GlobalToZoneSync", status),
    };
    shared.status.send_modify(|s| {
        s.connected = true;
        s.sessions += 1;
        s.types_subscribed = types.len();
        s.types_synced = 0;
    });
    tracing::info!(zone, "GlobalToZoneSync stream open");
    let mut received: BTreeMap<ResourceType, Received> = BTreeMap::new();
    let mut fault_changes = shared.faults.subscribe();
    loop {
        let faults = shared.faults.snapshot();
        if faults.stalled {
            // Read nothing, answer nothing; the global's side of the stream stays open.
            let _ = fault_changes
                .wait_for(|_| !shared.faults.snapshot().stalled)
                .await;
            return Error::Stalled;
        }
        for (rtype, state) in &mut received {
            if !faults.stop_ack.contains(rtype)
                && let Some(nonce) = state.held_ack.take()
            {
                let _ = tx.send(ack(zone, rtype.name(), nonce));
            }
        }
        let response = tokio::select! {
            _ = fault_changes.changed() => continue,
            message = inbound.message() => match message {
                Ok(Some(response)) => response,
                Ok(None) => return Error::StreamClosed("GlobalToZoneSync"),
                Err(status) => return Error::Stream("GlobalToZoneSync", status),
            },
        };
        // Faults set while the response was in flight apply to it.
        let faults = shared.faults.snapshot();
        if faults.stalled {
            let _ = fault_changes
                .wait_for(|_| !shared.faults.snapshot().stalled)
                .await;
            return Error::Stalled;
        }
        let Some(rtype) = ResourceType::from_name(&response.type_url) else {
            let _ = tx.send(ack(zone, &response.type_url, response.nonce.clone()));
            continue;
        };
        let state = received.entry(rtype).or_default();
        let nonce = response.nonce.clone();
        let verdict = if faults.nack.contains(&rtype) {
            Err(format!("kuma-sim: zone {zone} rejects {rtype} (NACK fault)"))
        } else {
            match apply(shared, rtype, response, !state.synced) {
                Err(Rejection::Fatal(reason)) => {
                    tracing::warn!(zone, %rtype, %reason, "cannot store a KDS response; restarting the sync");
                    return Error::Store(reason);
                }
                Err(Rejection::Nack(reason)) => Err(reason),
                Ok(()) => Ok(()),
            }
        };
        match verdict {
            Ok(()) => {
                let first = !state.synced;
                state.synced = true;
                shared.status.send_modify(|s| {
                    s.responses_applied += 1;
                    s.types_synced += usize::from(first);
                });
                if faults.stop_ack.contains(&rtype) {
                    state.held_ack = Some(nonce);
                } else {
                    let _ = tx.send(ack(zone, rtype.name(), nonce));
                    shared.status.send_modify(|s| s.acks_sent += 1);
                }
            }
            Err(reason) => {
                tracing::warn!(zone, %rtype, %reason, "rejecting a KDS response");
                let _ = tx.send(nack(zone, rtype.name(), nonce, reason));
                shared.status.send_modify(|s| s.nacks_sent += 1);
            }
        }
    }
}

/// Why a response was not applied.
enum Rejection {
    /// Answered with a NACK; the stream goes on.
    Nack(String),
    /// The zone's store failed: the stream ends and the zone connects again.
    Fatal(String),
}

/// Decodes a response and applies it to the zone store. A resource that cannot be decoded
/// rejects the response (NACK); one that clashes with the zone's own is a NACK for types
/// whose names are not hashed and fails the sync for every other type, as in Kuma.
fn apply(
    shared: &ZoneShared,
    rtype: ResourceType,
    response: DeltaDiscoveryResponse,
    full: bool,
) -> Result<(), Rejection> {
    let env = shared.store.environment();
    let upserts = response
        .resources
        .iter()
        .map(|wire| received_copy(rtype, wire, env))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Rejection::Nack)?;
    let removed = codec::removed_keys(rtype, &response.removed_resources, env);
    let outcome = shared.store.apply_from_global(rtype, upserts, &removed, full);
    tracing::debug!(zone = %shared.config.name, %rtype, full, ?outcome, "applied a KDS response");
    match (outcome.conflicts.is_empty(), outcome.fatal) {
        (true, _) => Ok(()),
        (false, true) => Err(Rejection::Fatal(format!(
            "failed to store {rtype} resources: resource already exists: {}",
            outcome.conflicts.join(", ")
        ))),
        (false, false) => Err(Rejection::Nack(format!(
            "resources already exist in the zone: {}",
            outcome.conflicts.join(", ")
        ))),
    }
}

/// One resource of a global-to-zone response as the zone's store takes it: decoded and
/// named as a store on `env` names its copies. Also how a zone that starts synced reads
/// what the global would send it ([`super::seed`]), so both hold the same copies.
pub(super) fn received_copy(
    rtype: ResourceType,
    wire: &kds_wire::DeltaResource,
    env: &kuma_model::Environment,
) -> Result<kuma_model::Resource, String> {
    // The simulated global sends proto-based specs as JSON (see the crate docs); a real
    // one sends protobuf, read as `null`.
    let mut resource = codec::resource(rtype, wire, ProtoSpecs::JsonOrNull)
        .map_err(|reason| format!("cannot decode {}: {reason}", wire.name))?;
    resource.name = env.stored_name(rtype, resource.name);
    Ok(resource)
}

/// Calls HealthCheck at once, then every interval; keeps going while the streams stall.
async fn health_checks(shared: &ZoneShared, channel: Channel) -> std::convert::Infallible {
    // Real zones say which Kuma they run; the global shows it in ZoneInsight.
    let identify = |md: &mut tonic::metadata::MetadataMap| {
        request::identify(md, &shared.config.name, Some(crate::rest::VERSION))
    };
    let report = |outcome: Result<(), health::HealthCheckError>| {
        let up = outcome.is_ok();
        shared.status.send_modify(|s| {
            s.health_check_up = Some(up);
            if up {
                s.health_checks_ok += 1;
            }
        });
    };
    health::health_checks(channel, shared.config.health_check_interval, identify, report).await
}
