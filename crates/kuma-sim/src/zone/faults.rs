//! Per-zone fault knobs: the ways a real zone control plane breaks its KDS link or drifts
//! from the global (kumahq/kuma #16428, #13624, #3545, #7723, #11426, #9455, #10260).

use std::{
    collections::BTreeSet,
    sync::{Mutex, MutexGuard},
};

use kuma_model::ResourceType;
use serde::Serialize;
use tokio::sync::watch;

/// The active faults of one zone, as `GET /faults` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ZoneFaultState {
    /// Both streams stop being read and answered while HealthCheck keeps succeeding.
    pub stalled: bool,
    /// The zone stays disconnected until the fault is healed or its time is up.
    pub offline: bool,
    /// Responses of these types are rejected (NACK) and not applied.
    pub nack: BTreeSet<ResourceType>,
    /// Responses of these types are applied but never acknowledged.
    pub stop_ack: BTreeSet<ResourceType>,
    /// Kinds that vanished from the zone's store for a while.
    pub flapping: BTreeSet<ResourceType>,
    /// Local changes made to synced copies (drops and edits), one line each; they stay
    /// until a full resync overwrites them.
    pub local_changes: Vec<String>,
}

impl ZoneFaultState {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Shared by the zone's client and whoever injects faults (tests, the admin endpoint).
pub struct ZoneFaults {
    state: Mutex<ZoneFaultState>,
    /// Bumped on every change; the client re-reads the state when it moves.
    changed: watch::Sender<u64>,
    /// Bumped to make the client drop its streams and connect again.
    reconnects: watch::Sender<u64>,
}

impl ZoneFaults {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::default(),
            changed: watch::Sender::new(0),
            reconnects: watch::Sender::new(0),
        }
    }

    pub fn snapshot(&self) -> ZoneFaultState {
        self.lock().clone()
    }

    /// The stream silently dies: nothing more is read, applied or sent on either stream,
    /// HealthCheck keeps succeeding. Lifting it makes the zone reconnect, as restarting
    /// the zone CP does in practice.
    pub fn stall(&self, on: bool) {
        self.update(|s| s.stalled = on);
    }

    /// NACK every further response of `rtype` (and apply none of them).
    pub fn nack(&self, rtype: ResourceType, on: bool) {
        self.update(|s| toggle(&mut s.nack, rtype, on));
    }

    /// Stop acknowledging `rtype`: the global then sends nothing more of it. Lifting it
    /// sends the held ACK, which re-arms the global's watch.
    pub fn stop_ack(&self, rtype: ResourceType, on: bool) {
        self.update(|s| toggle(&mut s.stop_ack, rtype, on));
    }

    /// Drops both streams and connects again at once.
    pub fn reconnect(&self) {
        self.update(|s| s.offline = false);
        self.reconnects.send_modify(|v| *v += 1);
    }

    /// Drops both streams and stays offline until [`set_offline(false)`](Self::set_offline)
    /// or a heal.
    pub fn disconnect(&self) {
        self.update(|s| s.offline = true);
        self.reconnects.send_modify(|v| *v += 1);
    }

    pub(crate) fn set_offline(&self, offline: bool) {
        self.update(|s| s.offline = offline);
    }

    pub(crate) fn set_flapping(&self, rtype: ResourceType, on: bool) {
        self.update(|s| toggle(&mut s.flapping, rtype, on));
    }

    pub(crate) fn note_local_change(&self, what: String) {
        self.update(|s| s.local_changes.push(what));
    }

    /// Lifts every fault and reconnects, so the full resync overwrites local drift.
    pub fn heal(&self) {
        self.update(|s| {
            let flapping = std::mem::take(&mut s.flapping);
            *s = ZoneFaultState {
                flapping,
                ..ZoneFaultState::default()
            };
        });
        self.reconnects.send_modify(|v| *v += 1);
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub(crate) fn reconnect_requests(&self) -> watch::Receiver<u64> {
        self.reconnects.subscribe()
    }

    fn update(&self, f: impl FnOnce(&mut ZoneFaultState)) {
        f(&mut self.lock());
        self.changed.send_modify(|v| *v += 1);
    }

    fn lock(&self) -> MutexGuard<'_, ZoneFaultState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn toggle(set: &mut BTreeSet<ResourceType>, rtype: ResourceType, on: bool) {
    if on {
        set.insert(rtype);
    } else {
        set.remove(&rtype);
    }
}

impl std::fmt::Debug for ZoneFaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneFaults")
            .field("state", &*self.lock())
            .finish_non_exhaustive()
    }
}
