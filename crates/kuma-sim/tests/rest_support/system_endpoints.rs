//! The system endpoints over real HTTP: zones and zone insights fed by a real KDS stream,
//! and the index, `/_resources` and `/config`. (kuma-sync's own REST reader against this
//! API is tested in kuma-sync's tests: the simulator depends on no product crate.)

use std::sync::Arc;

use kuma_sim::{
    GlobalStore, ResourceStore,
    rest::{RestApi, serve_rest},
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
