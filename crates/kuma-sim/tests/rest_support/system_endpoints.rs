//! The system endpoints over real HTTP: zones and zone insights fed by a real KDS stream,
//! kuma-sync's own REST reader, and the index, `/_resources` and `/config`.

use std::sync::Arc;

use kuma_model::Resource;
use kuma_sim::{
    GlobalStore, ResourceStore,
    rest::{RestApi, serve_rest},
};
use policy_watcher::source::{
    http::{HttpClient, HttpSettings},
    rest::KumaApi,
};
use serde_json::json;

use super::*;
use crate::common;

#[tokio::test]
async fn zones_and_insights_reflect_zone_records() {
    let (store, kds) = common::start(kuma_model::Environment::Universal).await;
    store.upsert(mesh("default"));
    store.upsert(stored_mcb("default", "demo-app-to-redis"));
    let api = RestApi::global(store.clone())
        .start("127.0.0.1:0".parse().expect("literal"))
        .await
        .expect("starts");

    let mut zone = common::Zone::connect(&kds, "zone-1").await;
    zone.subscribe("MeshCircuitBreaker").await;
    let response = zone.expect_response().await;
    zone.ack(&response).await;
    tokio::time::timeout(WAIT, async {
        while store
            .zone("zone-1")
            .and_then(|z| {
                z.subscriptions
                    .last()
                    .and_then(|s| s.stats.get("MeshCircuitBreaker").copied())
            })
            .is_none_or(|s| s.responses_acknowledged == 0)
        {
            let mut changes = store.subscribe();
            // The ACK bumps no version; poll the record on a short, bounded tick.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(20), changes.changed()).await;
        }
    })
    .await
    .expect("the ACK is recorded");

    let zones = call("GET", &format!("{}/zones", api.url()), None).await.body;
    assert_eq!(zones["total"], 1);
    assert_eq!(zones["items"][0]["type"], "Zone");
    assert_eq!(zones["items"][0]["name"], "zone-1");
    assert_eq!(zones["items"][0]["enabled"], true);
    let insight = call("GET", &format!("{}/zone-insights/zone-1", api.url()), None)
        .await
        .body;
    assert_eq!(insight["type"], "ZoneInsight");
    let sub = &insight["subscriptions"][0];
    assert!(
        sub["connectTime"].is_string() && sub.get("disconnectTime").is_none(),
        "{sub:#}"
    );
    let stat = &sub["status"]["stat"]["MeshCircuitBreaker"];
    assert_eq!(stat["responsesSent"], "1", "{sub:#}");
    assert_eq!(stat["responsesAcknowledged"], "1");
    assert_eq!(sub["status"]["total"]["responsesSent"], "1");
    let overview = call("GET", &format!("{}/zones/zone-1/_overview", api.url()), None)
        .await
        .body;
    assert_eq!(overview["type"], "ZoneOverview");
    assert_eq!(overview["zone"], json!({"enabled": true}));
    assert_eq!(overview["zoneInsight"]["subscriptions"][0]["id"], sub["id"]);
    let overviews = call("GET", &format!("{}/zones/_overview", api.url()), None)
        .await
        .body;
    assert_eq!(overviews["items"][0]["name"], "zone-1");
    kuma_error(
        &call("GET", &format!("{}/zones/zone-9", api.url()), None).await,
        404,
    );

    let online = call("DELETE", &format!("{}/zones/zone-1", api.url()), None).await;
    assert_eq!(kuma_error(&online, 400), ["zone"]);
    assert!(store.zone("zone-1").is_some());

    let disable = call(
        "PUT",
        &format!("{}/zones/zone-1", api.url()),
        Some(r#"{"type":"Zone","name":"zone-1","enabled":false}"#),
    )
    .await;
    assert_eq!(disable.status, 200, "{:#}", disable.body);
    assert!(!store.zone("zone-1").expect("zone").enabled);
    let created = call(
        "PUT",
        &format!("{}/zones/zone-2", api.url()),
        Some(r#"{"type":"Zone","name":"zone-2"}"#),
    )
    .await;
    assert_eq!(created.status, 201);
    kuma_error(
        &call("PUT", &format!("{}/zone-insights/zone-2", api.url()), Some("{}")).await,
        405,
    );

    drop(zone);
    kds.wait_for_open_streams(|n| n == 0).await;
    tokio::time::timeout(WAIT, async {
        while store.zone("zone-1").is_some_and(|z| z.is_online()) {
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(20), store.subscribe().changed()).await;
        }
    })
    .await
    .expect("the subscription is closed");
    let offline = call("GET", &format!("{}/zone-insights/zone-1", api.url()), None)
        .await
        .body;
    assert!(offline["subscriptions"][0]["disconnectTime"].is_string());
    assert_eq!(
        call("DELETE", &format!("{}/zones/zone-1", api.url()), None)
            .await
            .status,
        200
    );
    assert!(store.zone("zone-1").is_none());
    let zones = call("GET", &format!("{}/zones", api.url()), None).await.body;
    assert_eq!(zones["total"], 1);
    api.shutdown().await;
    kds.shutdown().await;
}

#[tokio::test]
async fn kuma_sync_reads_every_page() {
    let (store, api) = global_with_meshes(&["default", "payments"]).await;
    for i in 0..1100 {
        let m = if i % 3 == 0 { "payments" } else { "default" };
        store.upsert(stored_mcb(m, &format!("cb-{i:04}")).with_label("team", "t"));
    }
    // Some written through the API itself, so they carry the API's times.
    for i in 0..5 {
        let name = format!("via-api-{i}");
        let url = format!("{}/meshes/default/meshtimeouts/{name}", api.url());
        let body =
            json!({"type":"MeshTimeout","mesh":"default","name":name,"spec":{"targetRef":{"kind":"Mesh"}}});
        assert_eq!(call("PUT", &url, Some(&body.to_string())).await.status, 201);
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

#[tokio::test]
async fn index_resources_and_config() {
    let store: Arc<dyn ResourceStore> = Arc::new(GlobalStore::new(kuma_model::Environment::Universal));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_rest(store, listener, async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");

    let index = call("GET", &format!("{base}/"), None).await.body;
    assert_eq!(index["product"], "Kuma");
    assert_eq!(index["version"], "2.14.3");
    assert!(index["hostname"].is_string());
    let resources = call("GET", &format!("{base}/_resources"), None).await.body;
    let list = resources["resources"].as_array().expect("resources");
    let mcb = list
        .iter()
        .find(|r| r["name"] == "MeshCircuitBreaker")
        .expect("listed");
    assert_eq!(mcb["path"], "meshcircuitbreakers");
    assert_eq!(mcb["scope"], "Mesh");
    assert_eq!(mcb["readOnly"], false);
    assert_eq!(mcb["includeInFederation"], true);
    assert_eq!(mcb["policy"]["isTargetRef"], true);
    let names: Vec<&str> = list.iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(names.windows(2).all(|w| w[0] <= w[1]), "sorted by name");
    let insight = list.iter().find(|r| r["name"] == "ZoneInsight").expect("listed");
    assert_eq!(insight["readOnly"], true);
    let config = call("GET", &format!("{base}/config"), None).await.body;
    assert_eq!(config["mode"], "global");
    assert_eq!(config["environment"], "universal");
    // Without a zone admin, zone writes are refused.
    kuma_error(
        &call(
            "PUT",
            &format!("{base}/zones/z"),
            Some(r#"{"type":"Zone","name":"z"}"#),
        )
        .await,
        405,
    );

    stop.send(()).expect("server running");
    tokio::time::timeout(WAIT, server)
        .await
        .expect("stops in time")
        .expect("no panic")
        .expect("served");
}
