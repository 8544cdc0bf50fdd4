//! kuma-sync's verify engine agrees with the lab: converged after sync, and exactly the
//! dropped copy missing after the drop fault.

mod lab_support;

use kuma_model::{CpRole, Resource, ResourceType};
use kuma_sim::lab::Lab;
use lab_support::*;
use policy_watcher::{Engine, Report, Selection, State, Topology, ZoneSpec};

/// Feeds every store of the lab (and the global's Zone records) into a fresh engine.
fn verdict(lab: &Lab) -> Report {
    let topology = Topology::new(
        lab.global_store().environment().clone(),
        lab.zones()
            .iter()
            .map(|z| ZoneSpec::new(z.name(), z.store().environment().clone()))
            .collect(),
    );
    let mut engine = Engine::new(topology, Selection::default());
    let zone_type = ResourceType::from_name("Zone").expect("known");
    for (cp, store) in lab.stores() {
        let mut resources = store.list(None);
        if cp == CpRole::Global {
            for (name, record) in lab.global_store().zones() {
                resources.push(Resource::new(
                    zone_type,
                    None,
                    &name,
                    serde_json::json!({"enabled": record.enabled}),
                ));
            }
        }
        engine.replace(&cp, resources);
    }
    Report::build(&engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_reports_converged_then_exactly_the_dropped_copy() {
    let lab = converged_lab(federate()).await;
    lab.wait_until(|lab| verdict(lab).converged, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:#?}", verdict(&lab).discrepancies));
    let zone = lab.zone("zone-2").expect("zone-2");
    let dropped = mcb_key("demo-app-to-redis-65xb45x2xfd5bf7f.kuma-system");
    assert!(zone.drop_copy(&dropped));
    let report = verdict(&lab);
    assert!(!report.converged);
    assert_eq!(report.discrepancies.len(), 1, "{:#?}", report.discrepancies);
    let d = &report.discrepancies[0];
    assert_eq!(
        (d.zone.as_str(), d.rtype.name(), d.name.as_str(), d.state),
        (
            "zone-2",
            "MeshCircuitBreaker",
            dropped.name.as_str(),
            State::Missing
        )
    );
    zone.faults().heal();
    lab.wait_until(|lab| verdict(lab).converged, WAIT)
        .await
        .expect("converged again after the heal");
    lab.shutdown().await;
}
