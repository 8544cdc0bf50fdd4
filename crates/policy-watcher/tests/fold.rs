//! `Engine::fold` and `Engine::load` (the cold-start paths that count changes instead of
//! describing them) leave exactly the state `apply` and `replace` leave.

use std::collections::BTreeMap;

use crate::common::*;
use kuma_model::{CpRole, Resource, labels};
use policy_watcher::{Change, Engine, Report};
use proptest::prelude::*;

/// A global policy, its copies (some drifted or stray), zone-origin producers and Zone
/// resources: enough for every kind of slot.
fn candidate(cp: u8, pick: u8, variant: u8) -> (CpRole, Resource) {
    let base = match pick % 3 {
        0 => mcb("cb", 1 + u32::from(variant % 2)),
        1 => mtp("perm"),
        _ => local_to(Z1, mcb("z1-cb", 1)).with_label(labels::POLICY_ROLE, "producer"),
    };
    let (cp, mut r) = match cp % 3 {
        0 if base.label(labels::ORIGIN).is_some() => (CpRole::Global, copy_on_global(&base, Z1)),
        0 => (CpRole::Global, base),
        1 if base.label(labels::ORIGIN).is_some() => (zone(Z1), base),
        n => {
            let z = if n == 1 { Z1 } else { Z2 };
            let src = match base.label(labels::ZONE) {
                Some(origin) => copy_on_global(&base, origin),
                None => base,
            };
            (zone(z), copy_in_zone(&src, z))
        }
    };
    if variant % 4 == 3 {
        r.name.push_str("-stray");
    }
    (cp, r)
}

fn counts(e: &Engine) -> Vec<(String, String, String, usize)> {
    let mut c: Vec<_> = e
        .counts()
        .map(|(z, t, s, n)| (z.to_owned(), t.to_string(), s.as_str().to_owned(), n))
        .collect();
    c.sort();
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn fold_counts_what_apply_describes(
        ops in prop::collection::vec((0u8..3, 0u8..3, 0u8..4, any::<bool>(), 0u8..8), 1..40)
    ) {
        let mut described = engine();
        let mut counted = engine();
        let mut state: BTreeMap<CpRole, Vec<Resource>> = BTreeMap::new();
        for (cp, pick, variant, upsert, zone_op) in ops {
            let (cp, change) = if zone_op == 0 {
                // A Zone resource appearing, disabled, on the global.
                (CpRole::Global, Change::Upsert(zone_resource(Z1, variant % 2 == 0)))
            } else {
                let (cp, r) = candidate(cp, pick, variant);
                let change = if upsert { Change::Upsert(r) } else { Change::Delete(r.key()) };
                (cp, change)
            };
            let changes = described.apply(&cp, change.clone());
            prop_assert_eq!(counted.fold(&cp, change.clone()), changes.len());
            let list = state.entry(cp).or_default();
            match change {
                Change::Upsert(r) => {
                    list.retain(|x| x.key() != r.key());
                    list.push(r);
                }
                Change::Delete(key) => list.retain(|x| x.key() != key),
            }
        }
        prop_assert_eq!(Report::build(&described), Report::build(&counted));
        prop_assert_eq!(counts(&described), counts(&counted));

        // Loading the final snapshots into a fresh engine agrees with replacing them.
        let mut loaded = engine();
        let mut replaced = engine();
        for (cp, resources) in &state {
            let changes = replaced.replace(cp, resources.clone());
            prop_assert_eq!(loaded.load(cp, resources.clone()), changes.len());
        }
        prop_assert_eq!(Report::build(&loaded), Report::build(&replaced));
        prop_assert_eq!(Report::build(&loaded), Report::build(&described));
    }
}

#[test]
fn a_first_read_that_fails_half_way_leaves_what_it_opened_judged() {
    let (a, b) = (mcb("a", 1), mcb("b", 2));
    let mut failed = engine();
    failed.replace(&CpRole::Global, vec![a.clone(), b.clone()]);
    // zone-1's first read: a's copy, then the read fails.
    let refused: Result<(), &str> = failed.replace_each(
        &zone(Z1),
        &|_| true,
        |push| {
            push(copy_in_zone(&a, Z1));
            Err("a page that does not parse")
        },
        &mut |_, _| {},
    );
    assert!(refused.is_err());
    assert!(!failed.is_readable(&zone(Z1)));
    // Read whole at last, still without b's copy: b must be missing, as it is when the
    // first read is the whole one.
    failed.replace(&zone(Z1), vec![copy_in_zone(&a, Z1)]);
    let mut whole = engine();
    whole.replace(&CpRole::Global, vec![a.clone(), b]);
    whole.replace(&zone(Z1), vec![copy_in_zone(&a, Z1)]);
    assert_eq!(counts(&failed), counts(&whole));
    assert!(
        counts(&whole)
            .iter()
            .any(|(z, _, s, n)| z == Z1 && s == "missing" && *n == 1),
        "{:?}",
        counts(&whole)
    );
}
