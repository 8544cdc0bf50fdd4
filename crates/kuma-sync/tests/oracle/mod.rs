//! kuma-sync's own engine, rules and readers held against the simulator, the oracle of
//! these tests: the engine judges a lab's stores as they are, policy-watcher's sync rules
//! send what the simulated global sends ([`filter`]), and the REST source reads every page
//! the simulated API serves. (They lived in kuma-sim's tests; the simulator depends on no
//! product crate, so the tests that join the two live here.)

mod filter;

use std::sync::Arc;

use kuma_model::{Environment, Resource, ResourceKey, ResourceType};
use kuma_sim::{
    GlobalStore,
    lab::{Lab, PortPlan, Scenario},
    rest::RestApi,
};
use policy_watcher::{
    Selection, State,
    source::{
        http::{HttpClient, HttpSettings},
        rest::KumaApi,
    },
};
use serde_json::json;

use crate::{
    serve_lab::lab_matrix::judge,
    support::{WAIT, put},
};

fn rtype(name: &str) -> ResourceType {
    ResourceType::from_name(name).unwrap_or_else(|| panic!("unknown type {name}"))
}

/// The engine agrees with the lab: converged after sync, and exactly the dropped copy
/// missing after the drop fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_reports_converged_then_exactly_the_dropped_copy() {
    let mut scenario = Scenario::from_yaml(kuma_sync::demo::FEDERATE).expect("the example scenario parses");
    scenario.ports = Some(PortPlan::Ephemeral);
    let lab = Lab::start(scenario).await.expect("lab starts");
    lab.wait_connected(2 * WAIT).await.expect("zones connect");
    let verdict = |lab: &Lab| judge(lab, Selection::default());
    lab.wait_until(|lab| verdict(lab).converged, 2 * WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:#?}", verdict(&lab).discrepancies));
    let zone = lab.zone("zone-2").expect("zone-2");
    let dropped = ResourceKey {
        rtype: rtype("MeshCircuitBreaker"),
        mesh: Some("default".to_owned()),
        name: "demo-app-to-redis-65xb45x2xfd5bf7f.kuma-system".to_owned(),
    };
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
    lab.wait_until(|lab| verdict(lab).converged, 2 * WAIT)
        .await
        .expect("converged again after the heal");
    lab.shutdown().await;
}

/// A MeshCircuitBreaker as the store holds it.
fn stored_mcb(mesh: &str, name: &str) -> Resource {
    Resource::new(
        rtype("MeshCircuitBreaker"),
        Some(mesh),
        name,
        json!({"targetRef": {"kind": "Mesh"}}),
    )
    .with_label("kuma.io/mesh", mesh)
}

/// kuma-sync's REST reader walks every page of the simulated global's API and reads back
/// exactly what the store holds.
#[tokio::test]
async fn kuma_sync_reads_every_page() {
    let store = Arc::new(GlobalStore::new(Environment::Universal));
    for m in ["default", "payments"] {
        store.upsert(Resource::new(rtype("Mesh"), None, m, json!({})));
    }
    let api = RestApi::global(store.clone())
        .start("127.0.0.1:0".parse().expect("literal address"))
        .await
        .expect("REST API starts");
    for i in 0..1100 {
        let m = if i % 3 == 0 { "payments" } else { "default" };
        store.upsert(stored_mcb(m, &format!("cb-{i:04}")).with_label("team", "t"));
    }
    // Some written through the API itself, so they carry the API's times.
    for i in 0..5 {
        let name = format!("via-api-{i}");
        let path = format!("/meshes/default/meshtimeouts/{name}");
        let body =
            json!({"type":"MeshTimeout","mesh":"default","name":name,"spec":{"targetRef":{"kind":"Mesh"}}});
        assert_eq!(put(api.local_addr(), &path, &body.to_string()).await.0, 201);
    }
    let types = [rtype("MeshCircuitBreaker"), rtype("MeshTimeout")];
    let client = KumaApi::new(
        &api.url(),
        HttpClient::new(HttpSettings::default()).expect("client"),
    )
    .expect("api");
    let read = tokio::time::timeout(WAIT, client.list_all(&types))
        .await
        .expect("in time")
        .expect("every page read");
    // A resource put in the store without times reads back with Go's zero time, as
    // Kuma prints an unset `time.Time`.
    let go_zero: jiff::Timestamp = "0001-01-01T00:00:00Z".parse().expect("literal");
    let canonical = |mut rs: Vec<Resource>| {
        for r in &mut rs {
            r.creation_time.get_or_insert(go_zero);
            r.modification_time.get_or_insert(go_zero);
        }
        rs.sort_by_key(Resource::key);
        rs
    };
    let expected = canonical(types.iter().flat_map(|t| store.list(Some(*t))).collect());
    let read = canonical(read);
    assert_eq!(expected.len(), 1105);
    assert_eq!(read.len(), expected.len(), "every resource, once");
    for (got, want) in read.iter().zip(&expected) {
        assert_eq!(got, want);
    }
    api.shutdown().await;
}
