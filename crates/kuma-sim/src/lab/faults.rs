//! The lab's fault knobs on the global, and the report of every active fault.

use std::collections::BTreeMap;

use kuma_model::{Resource, ResourceKey, labels};
use serde::Serialize;

use super::{Lab, LabError};
use crate::zone::ZoneFaultState;

/// Every active fault, as `GET /faults` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FaultsReport {
    pub global: GlobalFaults,
    pub zones: BTreeMap<String, ZoneFaultState>,
}

/// The global's side of [`FaultsReport`].
#[derive(Debug, Clone, Serialize)]
pub struct GlobalFaults {
    pub restarts: u64,
    /// Zones deleted by the fault and not seen again since.
    pub deleted_zones: Vec<String>,
    /// Zone-origin resources put back by the resurrect fault, `<type>/<mesh>/<name>`.
    pub resurrected: Vec<String>,
}

impl Lab {
    /// Restarts the global's KDS server on the same address with the same store: every
    /// zone loses its streams and reconnects.
    pub async fn restart_global(&self) -> Result<(), LabError> {
        self.inner
            .global
            .write()
            .await
            .restart()
            .await
            .map_err(LabError::Global)?;
        self.lock_global_faults().restarts += 1;
        Ok(())
    }

    /// Deletes a zone on the global (`DELETE /zones/<name>` with unsafe delete): its Zone
    /// and ZoneInsight, and the zone-origin resources it owns. Returns how many resources
    /// went with it; `None` if the global did not know the zone.
    pub fn delete_zone_on_global(&self, name: &str) -> Option<usize> {
        let store = &self.inner.global_store;
        if !store.delete_zone(name) {
            return None;
        }
        let owned: Vec<ResourceKey> = store
            .list(None)
            .into_iter()
            .filter(|r| {
                r.label(labels::ORIGIN) == Some(labels::ORIGIN_ZONE) && r.label(labels::ZONE) == Some(name)
            })
            .map(|r| r.key())
            .collect();
        for key in &owned {
            store.delete(key);
        }
        self.lock_global_faults().deleted_zones.push(name.to_owned());
        Some(owned.len())
    }

    /// Puts back a zone-origin resource the global deleted (see
    /// [`KdsHandle::resurrect`]). Returns it if it was known.
    pub async fn resurrect(&self, key: &ResourceKey) -> Option<Resource> {
        let r = self.global().await.resurrect(key)?;
        self.lock_global_faults().resurrected.push(format!(
            "{}/{}/{}",
            key.rtype,
            key.mesh.as_deref().unwrap_or(""),
            key.name
        ));
        Some(r)
    }

    /// Zone-origin resources the global deleted, candidates for [`resurrect`](Self::resurrect).
    pub async fn deleted_zone_resources(&self) -> Vec<Resource> {
        self.global().await.deleted_zone_resources()
    }

    /// Lifts every zone's faults and the global's, and reconnects the zones.
    pub async fn heal_all(&self) {
        self.global().await.faults().clear();
        for z in &self.inner.zones {
            z.faults().heal();
        }
        let mut g = self.lock_global_faults();
        g.deleted_zones.clear();
        g.resurrected.clear();
    }

    pub fn faults(&self) -> FaultsReport {
        FaultsReport {
            global: self.lock_global_faults().clone(),
            zones: self
                .inner
                .zones
                .iter()
                .map(|z| (z.name().to_owned(), z.faults().snapshot()))
                .collect(),
        }
    }
}
