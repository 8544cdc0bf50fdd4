//! The zone's side of `ZoneToGlobalSync` (kuma-semantics 3.2): the global requests each type
//! zones provide, and the zone answers as a delta server with its own resources, mapped
//! by Kuma's zone mappers (`pkg/kds/context/context.go`, kuma-semantics 6.5). One response per
//! request: the first is the full state, later ones carry changes and `removed_resources`.

use std::collections::BTreeMap;

use kds_wire::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};
use kuma_model::{Environment, Resource, ResourceType, labels, resource::expected_name_on_global};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, transport::Channel};

use super::{Error, ZoneShared, client, store::is_locally_originated};
use crate::kds::{codec, delta::Sent, generation::WireEntry};

/// Removed by Kuma's zone mapper before sending.
const DELETION_GRACE_LABEL: &str = "kuma.io/deletion-grace-period-started-at";

pub(super) async fn zone_to_global(shared: &super::ZoneShared, channel: Channel) -> Error {
    let zone = shared.config.name.as_str();
    let (tx, rx) = mpsc::unbounded_channel::<DeltaDiscoveryResponse>();
    let mut request = Request::new(UnboundedReceiverStream::new(rx));
    if let Err(e) = client::identify(request.metadata_mut(), zone) {
        return e;
    }
    let mut inbound = match client::sync_client(channel).zone_to_global_sync(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => return Error::Stream("ZoneToGlobalSync", status),
    };
    tracing::info!(zone, "ZoneToGlobalSync stream open");
    shared.status.send_modify(|s| s.upstream_types_answered = 0);
    // Per type URL; every first response is the full state, even if empty.
    let mut served: BTreeMap<String, Sent> = BTreeMap::new();
    let mut nonce = 0u64;
    let mut store_changes = shared.store.subscribe();
    let mut fault_changes = shared.faults.subscribe();
    loop {
        if shared.faults.snapshot().stalled {
            let _ = fault_changes
                .wait_for(|_| !shared.faults.snapshot().stalled)
                .await;
            return Error::Stalled;
        }
        for (type_url, state) in &mut served {
            if shared.faults.snapshot().stalled {
                break;
            }
            let first = state.is_first();
            let Some(response) = next_response(shared, type_url, state, &mut nonce) else {
                continue;
            };
            if first {
                shared.status.send_modify(|s| s.upstream_types_answered += 1);
            }
            if tx.send(response).is_err() {
                return Error::StreamClosed("ZoneToGlobalSync");
            }
            shared.status.send_modify(|s| s.upstream_responses_sent += 1);
        }
        tokio::select! {
            _ = store_changes.changed() => {}
            _ = fault_changes.changed() => {}
            message = inbound.message() => match message {
                Ok(Some(request)) => on_request(shared, &mut served, request),
                Ok(None) => return Error::StreamClosed("ZoneToGlobalSync"),
                Err(status) => return Error::Stream("ZoneToGlobalSync", status),
            },
        }
    }
}

fn on_request(shared: &ZoneShared, served: &mut BTreeMap<String, Sent>, request: DeltaDiscoveryRequest) {
    if let Some(error) = &request.error_detail {
        tracing::warn!(zone = %shared.config.name, type_url = %request.type_url, message = %error.message, "the global rejected a response");
        shared.status.send_modify(|s| s.upstream_nacks_received += 1);
    }
    served
        .entry(request.type_url)
        .or_insert_with(|| Sent::new(BTreeMap::new()))
        .arm();
}

fn next_response(
    shared: &ZoneShared,
    type_url: &str,
    state: &mut Sent,
    nonce: &mut u64,
) -> Option<DeltaDiscoveryResponse> {
    if !state.is_armed() {
        return None;
    }
    let desired = match ResourceType::from_name(type_url) {
        Some(rtype) => provided(shared, rtype),
        None => BTreeMap::new(),
    };
    let delta = state.next(&desired, true)?;
    *nonce += 1;
    Some(delta.into_response(type_url, *nonce, &shared.config.name))
}

/// The zone's own resources of `rtype` as the global receives them, by delta key.
/// Vanished kinds count as gone: a zone CP whose informer lost a kind reports deletions.
fn provided(shared: &ZoneShared, rtype: ResourceType) -> BTreeMap<String, WireEntry> {
    if !rtype.info().flows_zone_to_global() {
        return BTreeMap::new();
    }
    shared
        .store
        .list(Some(rtype))
        .iter()
        .filter(|r| is_locally_originated(r) && !r.kds_disabled())
        .map(|r| {
            let entry = codec::encode(&map_for_global(
                r,
                &shared.config.name,
                shared.store.environment(),
            ));
            (entry.delta_key.clone(), entry)
        })
        .collect()
}

/// Kuma's zone mappers: origin and zone labels, no deletion-grace label, the namespace
/// label from the name on Kubernetes, the system namespace stripped, and always the
/// hashed name `HashedName(mesh, displayName, zone[, namespace])`.
pub fn map_for_global(r: &Resource, zone: &str, env: &Environment) -> Resource {
    let mut out = r.clone();
    out.labels
        .insert(labels::ORIGIN.to_owned(), labels::ORIGIN_ZONE.to_owned());
    out.labels.insert(labels::ZONE.to_owned(), zone.to_owned());
    out.labels.remove(DELETION_GRACE_LABEL);
    let mut plain = r.name.clone();
    if let Environment::Kubernetes { system_namespace } = env
        && r.rtype.info().k8s_namespaced()
        && let Some((name, namespace)) = r.name.rsplit_once('.')
    {
        out.labels
            .entry(labels::NAMESPACE.to_owned())
            .or_insert_with(|| namespace.to_owned());
        if namespace == system_namespace {
            plain = name.to_owned();
        }
        // The Kubernetes store reads the object name as the display name.
        out.labels
            .entry(labels::DISPLAY_NAME.to_owned())
            .or_insert_with(|| name.to_owned());
    }
    out.labels.entry(labels::DISPLAY_NAME.to_owned()).or_insert(plain);
    out.name = expected_name_on_global(&out, zone, env, &Environment::Universal);
    out
}

#[cfg(test)]
mod tests {
    use kuma_model::hash::hashed_name;
    use serde_json::json;

    use super::*;

    #[test]
    fn kubernetes_zone_policies_get_namespace_and_hashed_name() {
        let r = Resource::new(
            ResourceType::from_name("MeshCircuitBreaker").expect("known"),
            Some("default"),
            "redis-cb.kuma-demo",
            json!({}),
        )
        .with_label(labels::POLICY_ROLE, "producer");
        let mapped = map_for_global(&r, "zone-2", &Environment::kubernetes());
        assert_eq!(
            mapped.name,
            hashed_name("default", "redis-cb", &["zone-2", "kuma-demo"])
        );
        assert_eq!(mapped.label(labels::NAMESPACE), Some("kuma-demo"));
        assert_eq!(mapped.label(labels::DISPLAY_NAME), Some("redis-cb"));
        assert_eq!(mapped.label(labels::ORIGIN), Some("zone"));
        assert_eq!(mapped.label(labels::ZONE), Some("zone-2"));
    }

    #[test]
    fn universal_zone_policies_hash_with_the_zone_only() {
        let r = Resource::new(
            ResourceType::from_name("MeshTimeout").expect("known"),
            Some("default"),
            "local",
            json!({}),
        )
        .with_label(DELETION_GRACE_LABEL, "x");
        let mapped = map_for_global(&r, "zone-1", &Environment::Universal);
        assert_eq!(mapped.name, hashed_name("default", "local", &["zone-1"]));
        assert_eq!(mapped.label(DELETION_GRACE_LABEL), None);
        assert_eq!(mapped.label(labels::DISPLAY_NAME), Some("local"));
    }
}
