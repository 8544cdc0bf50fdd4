//! The verdict as users read it: per zone counts and each discrepancy with a plain reason.
//! Structural diffs are computed here, only for what is reported.

use std::collections::BTreeMap;

use kuma_model::{
    CpRole, ResourceType,
    fingerprint::{Difference, differences},
};
use serde::Serialize;

use crate::converge::{Cause, Direction, Engine, Finding, SlotKey, State, ZoneState};

/// Which discrepancies [`Report::build_window`] works out.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// Only this zone's discrepancies; `None` for every zone.
    pub zone: Option<&'a str>,
    pub limit: usize,
}

/// The whole verdict. Its JSON form is stable (see the README's "Output" section).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// True when there is at least one zone and every one is converged: no zone at all
    /// proves nothing.
    pub converged: bool,
    pub zones: Vec<ZoneReport>,
    /// Zones the global knows (Zone resources) that are not monitored.
    pub unmonitored_zones: Vec<String>,
    /// Zones on the global that are kuma-sync's own KDS probe, not a real zone
    /// ([`Report::with_probe_zone`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probe_zones: Vec<String>,
    pub discrepancies: Vec<Discrepancy>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneReport {
    pub zone: String,
    pub state: ZoneState,
    /// Copies per state, both directions; every state is present.
    pub counts: BTreeMap<State, usize>,
}

/// One copy that is not synced.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Discrepancy {
    pub zone: String,
    pub direction: Direction,
    #[serde(rename = "type")]
    pub rtype: ResourceType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh: Option<String>,
    /// The copy's name, or the name it should have when missing.
    pub name: String,
    pub state: State,
    /// The source's name on the control plane it comes from, when it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub detail: String,
    /// For drifted copies, the JSON paths at which the specs differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// For drifted copies, each differing path with the source's value (`expected`) and
    /// the copy's (`actual`), `null` where a side lacks it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
}

impl Report {
    /// The whole verdict, every discrepancy worked out.
    pub fn build(engine: &Engine) -> Self {
        Self::build_in(engine, None)
    }

    /// The verdict with at most `window.limit` discrepancies (of one zone, with
    /// `window.zone`), the first by zone, direction and identity: what a person or a
    /// dashboard reads of a mesh with a million of them. Counts and zone states are
    /// always whole; [`Report::open`] says how many there are in all.
    pub fn build_window(engine: &Engine, window: &Window<'_>) -> Self {
        Self::build_in(engine, Some(window))
    }

    /// Discrepancies in the zones' counts (every state but synced), whether shown or not.
    pub fn open(&self) -> usize {
        self.zones
            .iter()
            .flat_map(|z| z.counts.iter())
            .filter(|(state, _)| **state != State::Synced)
            .map(|(_, n)| n)
            .sum()
    }

    fn build_in(engine: &Engine, window: Option<&Window<'_>>) -> Self {
        let mut counts: BTreeMap<&str, BTreeMap<State, usize>> = BTreeMap::new();
        for (zone, _, state, n) in engine.counts() {
            *counts
                .entry(zone)
                .or_insert_with(empty_counts)
                .entry(state)
                .or_default() += n;
        }
        let monitored: Vec<&str> = engine.topology().zones.iter().map(|z| z.name.as_str()).collect();
        let mut zones: Vec<ZoneReport> = monitored
            .iter()
            .map(|z| ZoneReport {
                zone: (*z).to_owned(),
                state: engine.zone_state(z),
                counts: counts.get(z).cloned().unwrap_or_else(empty_counts),
            })
            .collect();
        // Zones that only appear in origin labels of the global's resources.
        for (zone, c) in &counts {
            if !monitored.contains(zone) {
                zones.push(ZoneReport {
                    zone: (*zone).to_owned(),
                    state: ZoneState::Diverged,
                    counts: c.clone(),
                });
            }
        }
        zones.sort_by(|a, b| a.zone.cmp(&b.zone));
        let mut discrepancies: Vec<Discrepancy> = match window {
            None => engine
                .slots()
                .flat_map(|(slot, findings)| {
                    findings
                        .iter()
                        .filter(|f| f.state != State::Synced)
                        .map(move |f| discrepancy(engine, slot, f))
                })
                .collect(),
            Some(window) => {
                // References are cheap to sort; only what is shown is worked out (names,
                // structural diffs), so a million discrepancies cost a sort of pointers.
                let mut open: Vec<(&SlotKey, &Finding)> = engine
                    .slots()
                    .filter(|(slot, _)| window.zone.is_none_or(|z| *slot.zone == *z))
                    .flat_map(|(slot, findings)| {
                        findings
                            .iter()
                            .filter(|f| f.state != State::Synced)
                            .map(move |f| (slot, f))
                    })
                    .collect();
                open.sort_unstable_by(|a, b| a.0.cmp(b.0));
                open.truncate(window.limit);
                open.into_iter()
                    .map(|(slot, f)| discrepancy(engine, slot, f))
                    .collect()
            }
        };
        discrepancies.sort();
        let unmonitored_zones = engine
            .known_zones()
            .keys()
            .filter(|z| !monitored.contains(&z.as_str()) && engine.topology().owns(z))
            .cloned()
            .collect();
        Report {
            converged: !zones.is_empty() && zones.iter().all(|z| z.state == ZoneState::Converged),
            zones,
            unmonitored_zones,
            probe_zones: Vec::new(),
            discrepancies,
        }
    }

    /// Says that the Zone `probe_zone` on the global is kuma-sync's KDS probe: connecting
    /// creates it (`docs/kuma-semantics.md`, "The probe's side effects"), so it is not a
    /// zone nobody monitors.
    pub fn with_probe_zone(mut self, probe_zone: &str) -> Self {
        if let Some(i) = self.unmonitored_zones.iter().position(|z| z == probe_zone) {
            self.probe_zones.push(self.unmonitored_zones.remove(i));
        }
        self
    }
}

fn empty_counts() -> BTreeMap<State, usize> {
    State::ALL.iter().map(|s| (*s, 0)).collect()
}

fn discrepancy(engine: &Engine, slot: &SlotKey, f: &Finding) -> Discrepancy {
    let source_name = engine.source_meta(slot).map(|s| s.name.clone());
    let source_cp = match slot.direction {
        Direction::GlobalToZone => "the global".to_owned(),
        Direction::ZoneToGlobal | Direction::Seed => slot.zone.to_string(),
    };
    let copies_on = match slot.direction {
        Direction::GlobalToZone => slot.zone.to_string(),
        Direction::ZoneToGlobal | Direction::Seed => "the global".to_owned(),
    };
    let shown = source_name.as_deref().unwrap_or(&slot.identity.display_name);
    let mut found = Vec::new();
    let detail = match &f.cause {
        Cause::None => String::new(),
        Cause::Absent => match squatter(engine, slot, f) {
            None => format!("not on {copies_on}; {source_cp} has {shown}"),
            Some(held) => format!(
                "{copies_on} holds its own resource under this name ({held}), not a copy of \
                 {source_cp}'s {shown}; KDS never overwrites it{}",
                match slot.direction {
                    // kumahq/kuma #18208, reproduced on Kuma main (docs/conformance.md).
                    Direction::GlobalToZone => {
                        ", and while it is there the zone's sync from the global fails \
                         ('resource already exists') and restarts on every change"
                    }
                    Direction::ZoneToGlobal | Direction::Seed => "",
                }
            ),
        },
        Cause::SpecDiffers { .. } => {
            let copy = f
                .copy
                .as_ref()
                .and_then(|k| engine.spec_of(&Engine::copies_cp(slot), k));
            if let (Some(src), Some(copy)) = (engine.source_of(slot), copy) {
                found = differences(&src.spec, &copy);
            }
            let at: Vec<String> = found
                .iter()
                .map(|d| {
                    format!(
                        "{} ({source_cp}: {}, {copies_on}: {})",
                        d.path,
                        shown_value(&d.expected),
                        shown_value(&d.actual)
                    )
                })
                .collect();
            format!("spec differs from {source_cp}'s {shown} at {}", at.join("; "))
        }
        Cause::SourceGone => format!("{source_cp} no longer has {shown}"),
        Cause::NotSent(reason) => format!("{source_cp} has {shown} but {}", reason.reason()),
        Cause::Duplicate { expected } => {
            format!("another copy of {shown}; the copy that counts is named {expected}")
        }
        Cause::UnknownZone => {
            format!(
                "zone-origin resource of zone {:?}, which is neither monitored nor a Zone on the global",
                &*slot.zone
            )
        }
    };
    Discrepancy {
        zone: slot.zone.to_string(),
        direction: slot.direction,
        rtype: slot.identity.rtype,
        mesh: slot.identity.mesh.clone(),
        name: f.name.clone(),
        state: f.state,
        source: source_name,
        detail,
        paths: found.iter().map(|d| d.path.clone()).collect(),
        differences: found,
    }
}

/// The resource a control plane holds under the name a missing copy must have, described
/// by its origin: a copy can be missing while its name is taken, as when a synced copy was
/// overwritten on a zone as a zone resource (Kuma 3 main accepts that; 2.14.3 refuses it).
fn squatter(engine: &Engine, slot: &SlotKey, f: &Finding) -> Option<String> {
    let cp = Engine::copies_cp(slot);
    let key = kuma_model::ResourceKey {
        rtype: slot.identity.rtype,
        mesh: slot.identity.mesh.clone(),
        name: f.name.clone(),
    };
    let held = engine.resource(&cp, &key)?;
    Some(match held.origin(&cp) {
        kuma_model::Origin::Global => "kuma.io/origin: global".to_owned(),
        kuma_model::Origin::Zone(zone) if zone.is_empty() => "kuma.io/origin: zone".to_owned(),
        kuma_model::Origin::Zone(zone) => format!("kuma.io/origin: zone, of zone {zone}"),
    })
}

/// A value for a one-line detail: compact JSON, long ones cut (the JSON output has them
/// whole).
fn shown_value(v: &Option<serde_json::Value>) -> String {
    const MAX: usize = 60;
    match v {
        None => "absent".to_owned(),
        Some(v) => {
            let s = v.to_string();
            match s.char_indices().nth(MAX) {
                Some((cut, _)) => format!("{}…", &s[..cut]),
                None => s,
            }
        }
    }
}

/// Which control plane a discrepancy's copy lives on.
pub fn copy_location(d: &Discrepancy) -> CpRole {
    match d.direction {
        Direction::GlobalToZone => CpRole::Zone(d.zone.clone()),
        Direction::ZoneToGlobal | Direction::Seed => CpRole::Global,
    }
}
