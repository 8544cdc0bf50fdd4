//! `startSynced`: zones start holding the copies KDS would have left them, the same
//! copies a lab without it converges to over KDS; KDS then keeps them in sync.

use std::collections::BTreeMap;

use crate::lab_support::*;
use kuma_model::{Environment, Resource, ResourceKey, resource::expected_name_in_zone};
use kuma_sim::lab::{Lab, Scenario};

/// A store's resources without their timestamps (each store stamps its own writes) and
/// without secret values (each lab generates its own signing keys).
fn contents(store: &dyn kuma_sim::ResourceStore) -> BTreeMap<ResourceKey, Resource> {
    store
        .list(None)
        .into_iter()
        .map(|mut r| {
            r.creation_time = None;
            r.modification_time = None;
            if r.rtype.name().ends_with("Secret") {
                r.spec = serde_json::Value::Null;
            }
            (r.key(), r)
        })
        .collect()
}

/// What differs between two stores' contents, for a readable failure.
fn differences(a: &BTreeMap<ResourceKey, Resource>, b: &BTreeMap<ResourceKey, Resource>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, r) in a {
        match b.get(k) {
            None => out.push(format!("only in the first: {} {}", k.rtype, k.name)),
            Some(other) if other != r => out.push(format!("differs: {r:?} vs {other:?}")),
            Some(_) => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!("only in the second: {} {}", k.rtype, k.name));
    }
    out
}

fn synced(mut s: Scenario) -> Scenario {
    s.start_synced = true;
    s
}

/// On a current-thread runtime nothing else runs between `Lab::start` returning and the
/// reads below: no KDS session has opened yet, so what the zones hold is the seed. It is
/// what a lab without the option converges to, for a universal and a Kubernetes global.
#[tokio::test(flavor = "current_thread")]
async fn zones_start_with_the_copies_kds_converges_to() {
    for global in [Environment::Universal, Environment::kubernetes()] {
        let seeded = Lab::start(synced(federate_with_global(global.clone())))
            .await
            .expect("lab starts");
        let mut at_start = BTreeMap::new();
        for zone in seeded.zones() {
            assert_eq!(zone.status().sessions, 0, "{global}: no KDS session yet");
            let held = contents(zone.store().as_ref());
            assert!(
                held.keys().any(|k| k.rtype == rtype("MeshCircuitBreaker")),
                "{global}: {} holds the policies: {held:?}",
                zone.name()
            );
            at_start.insert(zone.name().to_owned(), (held, zone.store().version()));
        }

        let plain = converged_lab(federate_with_global(global.clone())).await;
        for zone in plain.zones() {
            let (held, _) = &at_start[zone.name()];
            let diff = differences(held, &contents(zone.store().as_ref()));
            assert!(
                diff.is_empty(),
                "{global}: {} seeded vs synced: {diff:#?}",
                zone.name()
            );
        }
        plain.shutdown().await;

        // KDS's first full state finds every copy in place: nothing is written again, so
        // neither REST nor the Kubernetes API journal sees a change.
        seeded.wait_connected(WAIT).await.expect("zones connect");
        for zone in seeded.zones() {
            let (held, version) = &at_start[zone.name()];
            assert_eq!(&contents(zone.store().as_ref()), held);
            assert_eq!(
                zone.store().version(),
                *version,
                "{global}: {} unchanged",
                zone.name()
            );
            assert!(zone.status().responses_applied > 0, "the full states came");
        }
        seeded.shutdown().await;
    }
}

/// After start the zones are ordinary synced zones: a policy created, changed or deleted
/// on the global reaches them over KDS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_the_global_reach_zones_that_started_synced() {
    let lab = Lab::start(synced(federate())).await.expect("lab starts");
    lab.wait_connected(WAIT).await.expect("zones connect");
    let in_zone = |r: &Resource, zone_env: &Environment| ResourceKey {
        name: expected_name_in_zone(r, &Environment::Universal, zone_env),
        ..r.key()
    };
    let zones: Vec<_> = lab
        .zones()
        .iter()
        .map(|z| (z.store().clone(), z.store().environment().clone()))
        .collect();

    let added = mcb("added-after-start", 7);
    lab.create_on_global(added.clone()).expect("created");
    let guide_key = mcb_key("demo-app-to-redis");
    let mut guide = lab.global_store().get(&guide_key).expect("the guide's policy");
    guide.spec["to"][0]["default"]["connectionLimits"]["maxConnections"] = 99.into();
    lab.global_store().upsert(guide.clone());
    let retry = lab
        .global_store()
        .list(Some(rtype("MeshRetry")))
        .into_iter()
        .next()
        .expect("Kuma's default MeshRetry");
    lab.global_store().delete(&retry.key());

    lab.wait_until(
        |_| {
            zones.iter().all(|(store, env)| {
                let max = store.get(&in_zone(&guide, env)).and_then(|r| {
                    r.spec
                        .pointer("/to/0/default/connectionLimits/maxConnections")
                        .cloned()
                });
                store.get(&in_zone(&added, env)).is_some()
                    && max == Some(99.into())
                    && store.get(&in_zone(&retry, env)).is_none()
            })
        },
        WAIT,
    )
    .await
    .expect("the zones hear of every change");
    lab.shutdown().await;
}
