//! The global's side of `ZoneToGlobalSync` (kuma-semantics 3.2, `pkg/kds/mux/zone_sync.go`,
//! `GlobalSyncCallback` in `pkg/kds/v2/store/sync.go`): the roles are reversed, so the
//! global sends requests (one wildcard subscription per type zones provide, then an ACK or
//! NACK per response) and the zone sends responses. What arrives is stored with
//! `kuma.io/origin=zone` and `kuma.io/zone=<client-id>`; the first response of a type
//! replaces what the global held of that zone and type.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard},
};

use kds_wire::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
    request::{ack, nack, subscription},
};
use kuma_model::{Resource, ResourceKey, ResourceType, labels};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use super::{
    Shared,
    codec::{self, ProtoSpecs},
};

/// Per zone and type: what the global received on `ZoneToGlobalSync`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpstreamTypeStats {
    pub responses_received: u64,
    pub responses_acknowledged: u64,
    pub responses_rejected: u64,
}

/// What every `ZoneToGlobalSync` stream of a server reports, kept across restarts.
pub(crate) struct Upstream {
    state: Mutex<UpstreamState>,
    /// Moves on every change, so waits need no polling.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct UpstreamState {
    open: BTreeMap<String, usize>,
    stats: BTreeMap<String, BTreeMap<String, UpstreamTypeStats>>,
    /// Zone-origin resources the global deleted because their zone stopped sending them;
    /// the resurrect fault puts one back.
    graveyard: BTreeMap<ResourceKey, Resource>,
}

impl Upstream {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::default(),
            changed: watch::Sender::new(0),
        }
    }

    pub(crate) fn open_streams(&self, zone: &str) -> usize {
        self.lock().open.get(zone).copied().unwrap_or(0)
    }

    pub(crate) fn stats(&self, zone: &str) -> BTreeMap<String, UpstreamTypeStats> {
        self.lock().stats.get(zone).cloned().unwrap_or_default()
    }

    pub(crate) fn buried(&self) -> Vec<Resource> {
        self.lock().graveyard.values().cloned().collect()
    }

    pub(crate) fn exhume(&self, key: &ResourceKey) -> Option<Resource> {
        let r = self.lock().graveyard.remove(key);
        self.bump();
        r
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn update<R>(&self, f: impl FnOnce(&mut UpstreamState) -> R) -> R {
        let r = f(&mut self.lock());
        self.bump();
        r
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    fn lock(&self) -> MutexGuard<'_, UpstreamState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `TypesSentByZone`.
fn types_sent_by_zone() -> Vec<ResourceType> {
    ResourceType::all()
        .filter(|t| t.info().flows_zone_to_global())
        .collect()
}

/// Runs one stream until the zone leaves, the server stops or a test closes streams.
pub(crate) async fn run(
    shared: Arc<Shared>,
    zone: String,
    mut inbound: Streaming<DeltaDiscoveryResponse>,
    tx: mpsc::Sender<Result<DeltaDiscoveryRequest, Status>>,
    stop: CancellationToken,
) {
    if shared.store.zone(&zone).is_none() {
        // `createZoneIfAbsent`.
        shared.store.set_zone_enabled(&zone, true);
    }
    shared
        .upstream
        .update(|s| *s.open.entry(zone.clone()).or_default() += 1);
    let mut closes = shared.faults.closes();
    for t in types_sent_by_zone() {
        if tx.send(Ok(subscription(&zone, t.name()))).await.is_err() {
            break;
        }
    }
    let mut synced: BTreeSet<ResourceType> = BTreeSet::new();
    loop {
        let response = tokio::select! {
            () = stop.cancelled() => {
                let _ = tx.send(Err(Status::unavailable("stream unavailable"))).await;
                break;
            }
            close = closes.recv() => {
                if let Ok((code, message)) = close {
                    let _ = tx.send(Err(Status::new(code, message))).await;
                    break;
                }
                continue;
            }
            () = tx.closed() => break,
            message = inbound.message() => match message {
                Ok(Some(response)) => response,
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(%zone, %status, "ZoneToGlobalSync receive failed");
                    break;
                }
            },
        };
        let type_url = response.type_url.clone();
        let nonce = response.nonce.clone();
        let verdict = receive(&shared, &zone, response, &mut synced);
        shared.upstream.update(|s| {
            let stats = s
                .stats
                .entry(zone.clone())
                .or_default()
                .entry(type_url.clone())
                .or_default();
            stats.responses_received += 1;
            match verdict {
                Ok(()) => stats.responses_acknowledged += 1,
                Err(_) => stats.responses_rejected += 1,
            }
        });
        let reply = match verdict {
            Ok(()) => ack(&zone, &type_url, nonce),
            Err(message) => nack(&zone, &type_url, nonce, message),
        };
        if tx.send(Ok(reply)).await.is_err() {
            break;
        }
    }
    shared.upstream.update(|s| {
        if let Some(n) = s.open.get_mut(&zone) {
            *n = n.saturating_sub(1);
        }
    });
    tracing::info!(%zone, "ZoneToGlobalSync stream ended");
}

/// Decodes and stores one response; `Err` is the NACK message.
fn receive(
    shared: &Shared,
    zone: &str,
    response: DeltaDiscoveryResponse,
    synced: &mut BTreeSet<ResourceType>,
) -> Result<(), String> {
    let rtype = ResourceType::from_name(&response.type_url)
        .filter(|t| t.info().flows_zone_to_global())
        .ok_or_else(|| format!("type {:?} is not sent by zones", response.type_url))?;
    let env = shared.store.environment().clone();
    let mut upserts = Vec::with_capacity(response.resources.len());
    for wire in &response.resources {
        let mut r = codec::resource(rtype, wire, ProtoSpecs::Json)
            .map_err(|reason| format!("{}: {reason}", wire.name))?;
        r.labels.insert(labels::ZONE.to_owned(), zone.to_owned());
        r.labels
            .insert(labels::ORIGIN.to_owned(), labels::ORIGIN_ZONE.to_owned());
        r.name = env.stored_name(rtype, r.name);
        upserts.push(r);
    }
    let removed = codec::removed_keys(rtype, &response.removed_resources, &env);
    let full = synced.insert(rtype);
    let incoming: BTreeSet<ResourceKey> = upserts.iter().map(Resource::key).collect();
    // `PrefilterBy(hasZoneLabel)`: only this zone's resources are ever touched.
    let owned = |r: &Resource| r.label(labels::ZONE) == Some(zone);
    let doomed: Vec<ResourceKey> = if full {
        shared
            .store
            .list(Some(rtype))
            .iter()
            .filter(|r| owned(r) && !incoming.contains(&r.key()))
            .map(Resource::key)
            .collect()
    } else {
        removed
            .into_iter()
            .filter(|k| !incoming.contains(k))
            .filter(|k| shared.store.get(k).is_some_and(|r| owned(&r)))
            .collect()
    };
    for key in doomed {
        // Buried before the delete, so whoever sees it gone can already resurrect it.
        if let Some(doomed) = shared.store.get(&key) {
            shared
                .upstream
                .update(|s| s.graveyard.insert(key.clone(), doomed));
            shared.store.delete(&key);
        }
    }
    for mut r in upserts {
        match shared.store.get(&r.key()) {
            Some(existing) if existing.spec == r.spec && existing.labels == r.labels => {}
            Some(existing) if !owned(&existing) => {
                return Err(format!("{} already exists on the global", r.name));
            }
            existing => {
                let now = jiff::Timestamp::now();
                r.creation_time = existing.and_then(|e| e.creation_time).or(Some(now));
                r.modification_time = Some(now);
                shared.store.upsert(r);
            }
        }
    }
    Ok(())
}
