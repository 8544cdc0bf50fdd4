//! Fault knobs: ways a real global misbehaves, switched on by tests.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use kds_wire::{KUMA_RESOURCE_TYPE_URL, KumaResource, Meta};
use kuma_model::{ResourceType, delta_key};
use prost::Message;
use prost_types::Any;
use tokio::sync::{broadcast, watch};

use super::{
    codec::{spec_type_url, wire_entry},
    generation::{WireEntry, fault_mesh},
};

/// How an injected resource fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undecodable {
    /// A well-formed `KumaResource` whose spec bytes are not JSON.
    SpecNotJson,
    /// A delta resource whose Any holds bytes that are not a `KumaResource` at all.
    GarbageResource,
}

/// Name of the resource the undecodable fault injects.
pub const UNDECODABLE_NAME: &str = "kuma-sim-undecodable";
/// Name of the resource the oversize fault injects.
pub const OVERSIZE_NAME: &str = "kuma-sim-oversize";

/// Shared by every stream of a server, and kept across restarts.
pub struct Faults {
    state: Mutex<FaultState>,
    /// Bumped on every change so streams re-evaluate (end a stall, send an injection).
    changed: watch::Sender<u64>,
    /// `close_streams` requests; only streams open at the time hear them.
    closes: broadcast::Sender<(tonic::Code, String)>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct FaultState {
    pub stalled: bool,
    pub delay: Duration,
    pub undecodable: BTreeMap<ResourceType, Undecodable>,
    pub oversize: BTreeSet<ResourceType>,
}

impl Faults {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::default(),
            changed: watch::Sender::new(0),
            closes: broadcast::Sender::new(16),
        }
    }

    /// Silent stall: streams stay open and requests are read and recorded, but nothing is
    /// sent until the stall is lifted; then whatever is due goes out.
    pub fn stall(&self, on: bool) {
        self.update(|s| s.stalled = on);
    }

    /// Holds every response back by `delay` before sending it; zero turns it off.
    pub fn delay(&self, delay: Duration) {
        self.update(|s| s.delay = delay);
    }

    /// Ends every open `GlobalToZoneSync` stream with this status. Returns how many
    /// streams were told.
    pub fn close_streams(&self, code: tonic::Code, message: &str) -> usize {
        self.closes.send((code, message.to_owned())).unwrap_or(0)
    }

    /// Adds a resource named [`UNDECODABLE_NAME`] to what every zone is sent for `rtype`.
    pub fn undecodable(&self, rtype: ResourceType, kind: Undecodable) {
        self.update(|s| {
            s.undecodable.insert(rtype, kind);
        });
    }

    /// Adds a resource named [`OVERSIZE_NAME`] to `rtype`, large enough that the response
    /// exceeds the 10 MiB message limit. The server sends it regardless of its own limit.
    pub fn oversize(&self, rtype: ResourceType) {
        self.update(|s| {
            s.oversize.insert(rtype);
        });
    }

    /// Lifts the stall and the delay and removes injected resources (streams then send
    /// their removal).
    pub fn clear(&self) {
        self.update(|s| *s = FaultState::default());
    }

    pub(crate) fn snapshot(&self) -> FaultState {
        self.lock().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub(crate) fn closes(&self) -> broadcast::Receiver<(tonic::Code, String)> {
        self.closes.subscribe()
    }

    fn update(&self, f: impl FnOnce(&mut FaultState)) {
        f(&mut self.lock());
        self.changed.send_modify(|v| *v += 1);
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("state", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl FaultState {
    /// The resources injected into `rtype`, if any.
    pub(crate) fn injected(&self, rtype: ResourceType, max_message_size: usize) -> Vec<WireEntry> {
        let mut out = Vec::new();
        if let Some(kind) = self.undecodable.get(&rtype) {
            out.push(undecodable_entry(rtype, *kind));
        }
        if self.oversize.contains(&rtype) {
            out.push(oversize_entry(rtype, max_message_size));
        }
        out
    }
}

fn meta(rtype: ResourceType, name: &str) -> Meta {
    Meta {
        name: name.to_owned(),
        mesh: fault_mesh(rtype).to_owned(),
        ..Meta::default()
    }
}

fn undecodable_entry(rtype: ResourceType, kind: Undecodable) -> WireEntry {
    let key = delta_key::join(UNDECODABLE_NAME, fault_mesh(rtype));
    match kind {
        Undecodable::SpecNotJson => {
            let kr = KumaResource {
                meta: Some(meta(rtype, UNDECODABLE_NAME)),
                spec: Some(Any {
                    type_url: spec_type_url(rtype),
                    value: b"{not json".to_vec(),
                }),
                status: None,
            };
            wire_entry(key, "undecodable-spec".to_owned(), &kr)
        }
        Undecodable::GarbageResource => {
            let mut entry = wire_entry(key, "undecodable-garbage".to_owned(), &KumaResource::default());
            // Varints whose continuation bit never ends: no protobuf decoder accepts this.
            entry.resource.resource = Some(Any {
                type_url: KUMA_RESOURCE_TYPE_URL.to_owned(),
                value: vec![0xff; 16],
            });
            entry
        }
    }
}

fn oversize_entry(rtype: ResourceType, max_message_size: usize) -> WireEntry {
    // A valid JSON spec one MiB past the limit, so only the size is wrong.
    let padding = "x".repeat(max_message_size + (1 << 20));
    let kr = KumaResource {
        meta: Some(meta(rtype, OVERSIZE_NAME)),
        spec: Some(Any {
            type_url: spec_type_url(rtype),
            value: format!("{{\"padding\":\"{padding}\"}}").into_bytes(),
        }),
        status: None,
    };
    debug_assert!(kr.encoded_len() > max_message_size);
    let mut entry = wire_entry(
        delta_key::join(OVERSIZE_NAME, fault_mesh(rtype)),
        "oversize".to_owned(),
        &kr,
    );
    entry.oversize_fault = true;
    entry
}
