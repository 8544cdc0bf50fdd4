//! What one side of a delta stream has sent its peer for one type, and the next response
//! (go-control-plane's delta `StreamState` as Kuma runs it, kuma-semantics 3.1): the
//! global's side of `GlobalToZoneSync` ([`super::stream`]) and the zone's side of
//! `ZoneToGlobalSync` (`crate::zone::upstream`) both keep one per type URL.
//!
//! Each request arms the type; an armed type gets one response when what the peer should
//! have differs from what it was sent (or, for a first response that must be answered,
//! at once, empty or not), then nothing until the next request. Versions count as
//! delivered when sent, so a NACK causes no resend.

use std::collections::BTreeMap;

use kds_wire::{ControlPlane, DeltaDiscoveryResponse};

use super::generation::WireEntry;

/// One type on one stream.
#[derive(Debug)]
pub(crate) struct Sent {
    /// A request arrived since the last response: one response may be sent.
    armed: bool,
    /// No response sent yet for this type on this stream.
    first: bool,
    /// Delta key -> version, as sent on this stream.
    versions: BTreeMap<String, String>,
}

/// One response's worth of changes.
pub(crate) struct Delta {
    pub changed: Vec<WireEntry>,
    /// Delta keys the peer was sent and should no longer have.
    pub removed: Vec<String>,
}

// === impl Sent ===

impl Sent {
    /// A type the peer says it already holds at `versions` (`initial_resource_versions`).
    pub(crate) fn new(versions: BTreeMap<String, String>) -> Self {
        Self {
            armed: false,
            first: true,
            versions,
        }
    }

    pub(crate) fn arm(&mut self) {
        self.armed = true;
    }

    pub(crate) fn is_armed(&self) -> bool {
        self.armed
    }

    /// No response sent yet: the next one is the type's full state.
    pub(crate) fn is_first(&self) -> bool {
        self.first
    }

    /// The peer unsubscribed from `key`: it no longer counts as sent.
    pub(crate) fn forget(&mut self, key: &str) {
        self.versions.remove(key);
    }

    /// What brings the peer from what it was sent to `desired`, marked as sent; `None`
    /// when the type is not armed or there is nothing to say. With `answer_first`, the
    /// first response goes out even when empty. Only what changed is copied out of
    /// `desired`, so a caller may keep one generation for many responses.
    pub(crate) fn next(
        &mut self,
        desired: &BTreeMap<String, WireEntry>,
        answer_first: bool,
    ) -> Option<Delta> {
        if !self.armed {
            return None;
        }
        let removed: Vec<String> = self
            .versions
            .keys()
            .filter(|k| !desired.contains_key(*k))
            .cloned()
            .collect();
        let changed: Vec<WireEntry> = desired
            .values()
            .filter(|e| self.versions.get(&e.delta_key) != Some(&e.resource.version))
            .cloned()
            .collect();
        if changed.is_empty() && removed.is_empty() && !(self.first && answer_first) {
            return None;
        }
        for key in &removed {
            self.versions.remove(key);
        }
        for e in &changed {
            self.versions
                .insert(e.delta_key.clone(), e.resource.version.clone());
        }
        self.armed = false;
        self.first = false;
        Some(Delta { changed, removed })
    }
}

// === impl Delta ===

impl Delta {
    /// The `DeltaDiscoveryResponse`, from the control plane `identifier`.
    pub(crate) fn into_response(
        self,
        type_url: &str,
        nonce: u64,
        identifier: &str,
    ) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            system_version_info: String::new(),
            resources: self.changed.into_iter().map(|e| e.resource).collect(),
            type_url: type_url.to_owned(),
            removed_resources: self.removed,
            nonce: nonce.to_string(),
            control_plane: Some(ControlPlane {
                identifier: identifier.to_owned(),
            }),
        }
    }
}
