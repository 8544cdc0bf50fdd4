//! The engine's central promise: applying changes one at a time gives exactly the verdict
//! a fresh compare of the final state gives, whatever the order.

use std::collections::BTreeMap;

use crate::common::*;
use kuma_model::{CpRole, Resource, ResourceKey, labels};
use policy_watcher::{Change, Report, State};
use proptest::prelude::*;

/// A small universe where every rule can trigger: global and zone-origin policies,
/// producers and consumers, disabled sync, stray names, drifted specs, Zone resources.
fn candidate(cp: &CpRole, pick: u8, variant: u8) -> Resource {
    let base = match pick % 4 {
        0 => mcb("cb", 1 + u32::from(variant % 2)),
        1 => mtp("perm"),
        // A Kubernetes zone's producer: it crosses to zone-1, unless its role label says
        // consumer.
        2 => {
            let p = k8s_producer(Z2, mcb("z2-cb", 1 + u32::from(variant % 2)));
            if variant.is_multiple_of(2) {
                p
            } else {
                p.with_label(labels::POLICY_ROLE, "consumer")
            }
        }
        // A universal zone's policy: it never crosses zones, whatever its label says.
        _ => local_to(Z1, mtp("z1-perm")).with_label(labels::POLICY_ROLE, "producer"),
    };
    let mut r = match cp {
        CpRole::Global if base.label(labels::ORIGIN).is_some() => {
            let zone = base.label(labels::ZONE).unwrap_or_default().to_owned();
            copy_on_global(&base, &zone)
        }
        CpRole::Global => base,
        CpRole::Zone(z) if base.label(labels::ZONE) == Some(z.as_str()) => base,
        CpRole::Zone(z) => {
            let src = match base.label(labels::ZONE) {
                Some(origin) => copy_on_global(&base, origin),
                None => base,
            };
            copy_in_zone(&src, z)
        }
    };
    match variant % 6 {
        3 => r.name.push_str("-stray"),
        4 => r = r.with_label(labels::KDS_SYNC, "disabled"),
        // The same copy, by name, relabelled to another identity: its old slot loses it.
        5 if matches!(cp, CpRole::Zone(_)) => r = r.with_label(labels::DISPLAY_NAME, "renamed"),
        _ => {}
    }
    r
}

#[derive(Debug, Clone)]
enum Op {
    Upsert { cp: u8, pick: u8, variant: u8 },
    Delete { cp: u8, pick: u8, variant: u8 },
    Zone { which: u8, enabled: Option<bool> },
}

fn cp_of(i: u8) -> CpRole {
    match i % 3 {
        0 => CpRole::Global,
        1 => zone(Z1),
        _ => zone(Z2),
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..3, 0u8..4, 0u8..6).prop_map(|(cp, pick, variant)| Op::Upsert { cp, pick, variant }),
        3 => (0u8..3, 0u8..4, 0u8..6).prop_map(|(cp, pick, variant)| Op::Delete { cp, pick, variant }),
        1 => (0u8..3, prop::option::of(any::<bool>())).prop_map(|(which, enabled)| Op::Zone { which, enabled }),
    ]
}

fn zone_key(name: &str) -> ResourceKey {
    zone_resource(name, true).key()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn incremental_equals_full_compare(ops in prop::collection::vec(op(), 1..60)) {
        let mut live = engine();
        // The final state of each control plane, to fold into a fresh engine.
        let mut state: BTreeMap<CpRole, BTreeMap<ResourceKey, Resource>> = BTreeMap::new();
        // The state halfway, for an engine that is given whole snapshots instead.
        let mut halfway = None;
        for (i, op) in ops.iter().enumerate() {
            if i == ops.len() / 2 {
                halfway = Some(state.clone());
            }
            match *op {
                Op::Upsert { cp, pick, variant } => {
                    let cp = cp_of(cp);
                    let r = candidate(&cp, pick, variant);
                    state.entry(cp.clone()).or_default().insert(r.key(), r.clone());
                    live.apply(&cp, Change::Upsert(r));
                }
                Op::Delete { cp, pick, variant } => {
                    let cp = cp_of(cp);
                    let key = candidate(&cp, pick, variant).key();
                    state.entry(cp.clone()).or_default().remove(&key);
                    live.apply(&cp, Change::Delete(key));
                }
                Op::Zone { which, enabled } => {
                    let name = ["zone-1", "zone-2", "zone-9"][usize::from(which)];
                    let global = state.entry(CpRole::Global).or_default();
                    match enabled {
                        Some(enabled) => {
                            let z = zone_resource(name, enabled);
                            global.insert(z.key(), z.clone());
                            live.apply(&CpRole::Global, Change::Upsert(z));
                        }
                        None => {
                            global.remove(&zone_key(name));
                            live.apply(&CpRole::Global, Change::Delete(zone_key(name)));
                        }
                    }
                }
            }
        }
        // Fold the final state in, zones first this time, to vary the order too.
        let mut fresh = engine();
        for (cp, resources) in state.iter().rev() {
            // A control plane the live engine observed, even if only a delete, has been
            // read: the fresh one reads it too.
            if resources.is_empty() {
                fresh.load(cp, Vec::new());
            }
            for r in resources.values() {
                fresh.apply(cp, Change::Upsert(r.clone()));
            }
        }
        prop_assert_eq!(Report::build(&live), Report::build(&fresh));

        // Snapshots streamed in (as the REST poller does): the halfway state, then the
        // final one over it, each control plane handed over one resource at a time.
        let halfway = halfway.unwrap_or_default();
        let halfway_again = halfway.clone();
        let mut streamed = engine();
        for snapshot in [halfway, state.clone()] {
            for (cp, resources) in &snapshot {
                let filled: Result<(), ()> = streamed.replace_each(
                    cp,
                    &|key| resources.contains_key(key),
                    |push| {
                        resources.values().cloned().for_each(push);
                        Ok(())
                    },
                    &mut |_, _| {},
                );
                prop_assert!(filled.is_ok());
            }
        }
        // A control plane only in the halfway state has been read empty since.
        for cp in state.keys() {
            prop_assert!(streamed.is_readable(cp));
        }
        prop_assert_eq!(Report::build(&streamed), Report::build(&fresh));
        // And the same two snapshots whole, as the Kubernetes source's relists are.
        let mut replaced = engine();
        for snapshot in [halfway_again, state.clone()] {
            for (cp, resources) in &snapshot {
                replaced.replace(cp, resources.values().cloned().collect());
            }
        }
        prop_assert_eq!(Report::build(&replaced), Report::build(&fresh));
        let mut live_counts: Vec<_> = live.counts().collect();
        let mut fresh_counts: Vec<_> = fresh.counts().collect();
        live_counts.sort();
        fresh_counts.sort();
        prop_assert_eq!(&live_counts, &fresh_counts);
        // Counts are kept in step with the slots they summarise. Slots whose one finding
        // is a synced copy are counted, not listed: only the other states recount exactly.
        let mut recount: BTreeMap<(String, String, String), usize> = BTreeMap::new();
        for (slot, findings) in live.slots() {
            for f in findings.iter().filter(|f| f.state != State::Synced) {
                *recount.entry((slot.zone.to_string(), slot.identity.rtype.to_string(), f.state.as_str().to_owned())).or_default() += 1;
            }
        }
        let counted: BTreeMap<_, _> = live_counts.iter()
            .filter(|(_, _, s, _)| *s != State::Synced)
            .map(|(z, t, s, n)| (((*z).to_owned(), t.to_string(), s.as_str().to_owned()), *n)).collect();
        prop_assert_eq!(recount, counted);
    }
}
