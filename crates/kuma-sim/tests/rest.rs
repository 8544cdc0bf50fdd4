//! Kuma's REST API on simulated control planes, over real HTTP on 127.0.0.1.

use crate::rest_support;

use std::{collections::BTreeSet, sync::Arc};

use crate::rest_support::*;
use kuma_model::ResourceKey;
use kuma_sim::{
    ResourceStore,
    rest::{MAX_BODY_BYTES, RestApi},
};
use serde_json::{Value, json};

fn mcb_key(mesh: &str, name: &str) -> ResourceKey {
    ResourceKey {
        rtype: rtype("MeshCircuitBreaker"),
        mesh: Some(mesh.to_owned()),
        name: name.to_owned(),
    }
}

#[tokio::test]
async fn mesh_circuit_breaker_put_get_delete_on_a_universal_global() {
    let (store, api) = global_with_meshes(&["default"]).await;
    let url = format!(
        "{}/meshes/default/meshcircuitbreakers/demo-app-to-redis",
        api.url()
    );

    let created = call(
        "PUT",
        &url,
        Some(&mcb_body("default", "demo-app-to-redis", &[], 1024)),
    )
    .await;
    assert_eq!(created.status, 201, "{:#}", created.body);
    assert_eq!(created.body, json!({}));
    let first = store
        .get(&mcb_key("default", "demo-app-to-redis"))
        .expect("stored");
    assert_eq!(
        first.label("kuma.io/mesh"),
        Some("default"),
        "computed mesh label"
    );
    assert!(
        first.label("kuma.io/origin").is_none(),
        "a universal global sets no origin"
    );

    let updated = call(
        "PUT",
        &url,
        Some(&mcb_body("default", "demo-app-to-redis", &[], 2048)),
    )
    .await;
    assert_eq!(updated.status, 200, "{:#}", updated.body);

    let got = call("GET", &url, None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.content_type.as_deref(), Some("application/json"));
    let item = &got.body;
    assert_eq!(item["type"], "MeshCircuitBreaker");
    assert_eq!(item["mesh"], "default");
    assert_eq!(item["name"], "demo-app-to-redis");
    assert_eq!(item["kri"], "kri_mcb_default___demo-app-to-redis_");
    assert_eq!(
        item["spec"]["to"][0]["default"]["connectionLimits"]["maxConnections"],
        2048
    );
    let second = store
        .get(&mcb_key("default", "demo-app-to-redis"))
        .expect("stored");
    assert_eq!(
        second.creation_time, first.creation_time,
        "creation time kept on update"
    );
    assert!(second.modification_time >= first.modification_time);
    assert_eq!(
        item["creationTime"],
        first.creation_time.expect("set").to_string()
    );
    // Kuma's field order: meta first, then kri, then spec.
    let raw = call_raw_order(&url).await;
    let order: Vec<usize> = [
        "\"type\"",
        "\"mesh\"",
        "\"name\"",
        "\"creationTime\"",
        "\"modificationTime\"",
        "\"labels\"",
        "\"kri\"",
        "\"spec\"",
    ]
    .iter()
    .map(|k| raw.find(k).unwrap_or_else(|| panic!("{k} missing in {raw}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "field order in {raw}");

    let deleted = call("DELETE", &url, None).await;
    assert_eq!(deleted.status, 200, "{:#}", deleted.body);
    assert!(store.get(&mcb_key("default", "demo-app-to-redis")).is_none());
    let gone = call("GET", &url, None).await;
    kuma_error(&gone, 404);
    assert_eq!(gone.body["title"], "Could not retrieve a resource");
    assert_eq!(gone.body["detail"], "Not found");
    kuma_error(&call("DELETE", &url, None).await, 404);
    api.shutdown().await;
}

/// Follows `next` from `first` to the end; returns every name and the totals seen.
async fn follow(first: &str, expected_host: &str) -> (Vec<String>, BTreeSet<u64>, usize) {
    let mut url = first.to_owned();
    let mut names = Vec::new();
    let mut totals = BTreeSet::new();
    let mut pages = 0;
    loop {
        let page = call("GET", &url, None).await;
        assert_eq!(page.status, 200, "{url}: {:#}", page.body);
        pages += 1;
        assert!(pages < 50, "next never ends");
        totals.insert(page.body["total"].as_u64().expect("total"));
        for item in page.body["items"].as_array().expect("items") {
            names.push(format!(
                "{}/{}",
                item["mesh"].as_str().unwrap_or(""),
                item["name"].as_str().expect("name")
            ));
        }
        match &page.body["next"] {
            Value::Null => return (names, totals, pages),
            Value::String(next) => {
                assert!(
                    next.starts_with(&format!("http://{expected_host}/")),
                    "absolute next: {next}"
                );
                url = next.clone();
            }
            other => panic!("next is {other}"),
        }
    }
}

#[tokio::test]
async fn lists_page_across_meshes_and_per_mesh() {
    let (store, api) = global_with_meshes(&["default", "other"]).await;
    for i in 0..150 {
        store.upsert(stored_mcb("default", &format!("cb-{i:03}")));
    }
    for i in 0..100 {
        store.upsert(stored_mcb("other", &format!("cb-{i:03}")));
    }
    let host = api.local_addr().to_string();

    let (names, totals, pages) = follow(&format!("{}/meshcircuitbreakers", api.url()), &host).await;
    assert_eq!(totals, BTreeSet::from([250]));
    assert_eq!(pages, 3, "default page size is 100");
    assert_eq!(names.len(), 250);
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), 250, "no item twice");
    assert_eq!(names[0], "default/cb-000", "sorted by mesh, then name");
    assert_eq!(names[249], "other/cb-099");

    let (names, totals, pages) = follow(
        &format!("{}/meshes/default/meshcircuitbreakers?size=100", api.url()),
        &host,
    )
    .await;
    assert_eq!((totals, pages, names.len()), (BTreeSet::from([150]), 2, 150));
    assert!(names.iter().all(|n| n.starts_with("default/")));

    let page = call(
        "GET",
        &format!("{}/meshcircuitbreakers?size=40&offset=240", api.url()),
        None,
    )
    .await;
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(10));
    assert_eq!(page.body["next"], Value::Null);
    let next = call(
        "GET",
        &format!("{}/meshcircuitbreakers?size=100", api.url()),
        None,
    )
    .await
    .body["next"]
        .clone();
    assert_eq!(
        next,
        json!(format!("http://{host}/meshcircuitbreakers?offset=100&size=100"))
    );

    kuma_error(
        &call(
            "GET",
            &format!("{}/meshcircuitbreakers?offset=abc", api.url()),
            None,
        )
        .await,
        400,
    );
    let missing_mesh = call(
        "GET",
        &format!("{}/meshes/nope/meshcircuitbreakers", api.url()),
        None,
    )
    .await;
    kuma_error(&missing_mesh, 404);
    assert_eq!(missing_mesh.body["title"], "Failed to retrieve Mesh");
    api.shutdown().await;
}

#[tokio::test]
async fn name_and_label_filters() {
    let (store, api) = global_with_meshes(&["default"]).await;
    store.upsert(stored_mcb("default", "redis-a").with_label("app", "redis"));
    store.upsert(
        stored_mcb("default", "redis-b")
            .with_label("app", "redis")
            .with_label("tier", "db"),
    );
    store.upsert(stored_mcb("default", "web").with_label("app", "web"));
    let names = |a: &rest_support::Answer| -> Vec<String> {
        a.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let base = format!("{}/meshes/default/meshcircuitbreakers", api.url());

    let by_name = call("GET", &format!("{base}?name=dis-"), None).await;
    assert_eq!(names(&by_name), ["redis-a", "redis-b"]);
    assert_eq!(by_name.body["total"], 2);
    let by_label = call(
        "GET",
        &format!("{base}?filter%5Blabels.app%5D=redis&filter[labels.tier]=db"),
        None,
    )
    .await;
    assert_eq!(names(&by_label), ["redis-b"]);
    let both = call(
        "GET",
        &format!(
            "{}/meshcircuitbreakers?name=web&filter[labels.app]=redis",
            api.url()
        ),
        None,
    )
    .await;
    assert_eq!(both.body["total"], 0);
    let bad = call("GET", &format!("{base}?filter[spec.x]=1"), None).await;
    assert_eq!(kuma_error(&bad, 400), ["filter[spec.x]"]);
    assert_eq!(
        bad.body["invalid_parameters"][0]["reason"],
        "filters are only supported on labels"
    );
    api.shutdown().await;
}

#[tokio::test]
async fn page_sizes_outside_kumas_bounds_are_rejected() {
    let (_store, api) = global_with_meshes(&["default"]).await;
    let over = call(
        "GET",
        &format!("{}/meshcircuitbreakers?size=1001", api.url()),
        None,
    )
    .await;
    assert_eq!(kuma_error(&over, 400), ["size"]);
    assert_eq!(over.body["detail"], "Invalid page size");
    assert_eq!(
        over.body["invalid_parameters"][0]["reason"],
        "invalid page size of 1001. Maximum page size is 1000"
    );
    for bad in ["0", "-1", "ten"] {
        let answer = call(
            "GET",
            &format!("{}/meshcircuitbreakers?size={bad}", api.url()),
            None,
        )
        .await;
        assert_eq!(kuma_error(&answer, 400), ["size"], "size={bad}");
    }
    assert_eq!(
        call(
            "GET",
            &format!("{}/meshcircuitbreakers?size=1000", api.url()),
            None
        )
        .await
        .status,
        200
    );
    api.shutdown().await;
}

#[tokio::test]
async fn origin_rules_on_a_zone() {
    let store = Arc::new(ZoneRoleStore::new("zone-1"));
    store.upsert(mesh("default"));
    let global_copy = stored_mcb("default", "from-global-65xb45x2xfd5bf7f")
        .with_label("kuma.io/origin", "global")
        .with_label("kuma.io/display-name", "from-global");
    store.upsert(global_copy.clone());
    let api = RestApi::new(store.clone())
        .start("127.0.0.1:0".parse().expect("literal"))
        .await
        .expect("starts");
    let url = |name: &str| format!("{}/meshes/default/meshcircuitbreakers/{name}", api.url());

    let no_origin = call("PUT", &url("local"), Some(&mcb_body("default", "local", &[], 1))).await;
    assert_eq!(kuma_error(&no_origin, 400), [r#"labels["kuma.io/origin"]"#]);
    assert_eq!(no_origin.body["title"], "Could not process a resource");
    assert_eq!(no_origin.body["detail"], "Resource is not valid");
    assert_eq!(
        no_origin.body["invalid_parameters"][0]["reason"],
        "the origin label must be set to 'zone'"
    );
    assert!(
        store.get(&mcb_key("default", "local")).is_none(),
        "nothing stored"
    );

    let zone_origin = [("kuma.io/origin", "zone")];
    let created = call(
        "PUT",
        &url("local"),
        Some(&mcb_body("default", "local", &zone_origin, 1)),
    )
    .await;
    assert_eq!(created.status, 201, "{:#}", created.body);
    let local = store.get(&mcb_key("default", "local")).expect("stored");
    assert_eq!(local.label("kuma.io/zone"), Some("zone-1"), "computed zone label");
    assert_eq!(local.label("kuma.io/env"), Some("universal"));
    let wrong_zone = [("kuma.io/origin", "zone"), ("kuma.io/zone", "zone-2")];
    let answer = call(
        "PUT",
        &url("local"),
        Some(&mcb_body("default", "local", &wrong_zone, 1)),
    )
    .await;
    assert_eq!(kuma_error(&answer, 400), [r#"labels["kuma.io/zone"]"#]);

    // Global copies are read-only on a zone.
    let copy = "from-global-65xb45x2xfd5bf7f";
    let as_global = [("kuma.io/origin", "global")];
    let answer = call("PUT", &url(copy), Some(&mcb_body("default", copy, &as_global, 1))).await;
    assert_eq!(kuma_error(&answer, 400), [r#"labels["kuma.io/origin"]"#]);
    let answer = call(
        "PUT",
        &url(copy),
        Some(&mcb_body("default", copy, &zone_origin, 1)),
    )
    .await;
    assert_eq!(
        kuma_error(&answer, 400),
        [r#"labels["kuma.io/origin"]"#, r#"labels["kuma.io/display-name"]"#],
        "origin and display name are immutable"
    );
    assert_eq!(answer.body["title"], "Could not update a resource");
    let answer = call("DELETE", &url(copy), None).await;
    assert_eq!(kuma_error(&answer, 400), [r#"["kuma.io/origin"]"#]);
    assert_eq!(answer.body["title"], "Could not delete a resource");
    assert_eq!(store.get(&global_copy.key()), Some(global_copy), "copy untouched");

    // A zone writes only what zones provide.
    let mesh_put = call(
        "PUT",
        &format!("{}/meshes/other", api.url()),
        Some(r#"{"type":"Mesh","name":"other"}"#),
    )
    .await;
    kuma_error(&mesh_put, 405);
    assert_eq!(call("DELETE", &url("local"), None).await.status, 200);
    api.shutdown().await;
}

/// Kuma main recomputes a synced copy's labels before comparing them, so a zone accepts
/// the copy written over with `kuma.io/origin: zone` (2.14.3 refuses, above): seen on
/// kuma-cp main (`docs/conformance.md`, S6). It also labels every write with its display
/// name, reports a `0.0.0-…` version and serves no path of a type Kuma 3 removed.
#[tokio::test]
async fn a_kuma_3_zone_takes_a_synced_copy_over_as_its_own() {
    let store = Arc::new(ZoneRoleStore::kuma_3("zone-1"));
    store.upsert(mesh("default"));
    let copy = "from-global-65xb45x2xfd5bf7f";
    let global_copy = stored_mcb("default", copy)
        .with_label("kuma.io/origin", "global")
        .with_label("kuma.io/display-name", "from-global");
    store.upsert(global_copy.clone());
    let api = RestApi::new(store.clone())
        .start("127.0.0.1:0".parse().expect("literal"))
        .await
        .expect("starts");
    let url = |name: &str| format!("{}/meshes/default/meshcircuitbreakers/{name}", api.url());

    let as_global = [("kuma.io/origin", "global")];
    let answer = call("PUT", &url(copy), Some(&mcb_body("default", copy, &as_global, 9))).await;
    assert_eq!(kuma_error(&answer, 400), [r#"labels["kuma.io/origin"]"#]);
    let zone_origin = [("kuma.io/origin", "zone")];
    let answer = call(
        "PUT",
        &url(copy),
        Some(&mcb_body("default", copy, &zone_origin, 9)),
    )
    .await;
    assert_eq!(answer.status, 200, "{:#}", answer.body);
    let taken = store.get(&global_copy.key()).expect("still stored");
    assert_eq!(taken.label("kuma.io/origin"), Some("zone"));
    assert_eq!(taken.label("kuma.io/zone"), Some("zone-1"));
    assert_eq!(
        taken.label("kuma.io/display-name"),
        Some(copy),
        "display name recomputed"
    );
    assert_eq!(
        taken.spec["to"][0]["default"]["connectionLimits"]["maxConnections"],
        9
    );

    let index = call("GET", &format!("{}/", api.url()), None).await;
    assert!(
        index.body["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("0.0.0-")),
        "{:#}",
        index.body
    );
    assert_eq!(
        call("GET", &format!("{}/zoneingresses", api.url()), None)
            .await
            .status,
        404
    );
    assert_eq!(
        call(
            "GET",
            &format!("{}/meshes/default/traffic-permissions", api.url()),
            None
        )
        .await
        .status,
        404
    );
    api.shutdown().await;
}

#[tokio::test]
async fn origin_rules_on_the_global() {
    let (store, api) = global_with_meshes(&["default"]).await;
    let url = |name: &str| format!("{}/meshes/default/meshcircuitbreakers/{name}", api.url());
    let answer = call(
        "PUT",
        &url("a"),
        Some(&mcb_body("default", "a", &[("kuma.io/origin", "zone")], 1)),
    )
    .await;
    assert_eq!(kuma_error(&answer, 400), [r#"labels["kuma.io/origin"]"#]);
    assert_eq!(
        answer.body["invalid_parameters"][0]["reason"],
        "the origin label must be set to 'global'"
    );
    let answer = call(
        "PUT",
        &url("a"),
        Some(&mcb_body("default", "a", &[("kuma.io/origin", "elsewhere")], 1)),
    )
    .await;
    assert_eq!(
        kuma_error(&answer, 400).len(),
        2,
        "unknown origin, and not global"
    );
    assert!(store.get(&mcb_key("default", "a")).is_none());
    let answer = call(
        "PUT",
        &url("a"),
        Some(&mcb_body("default", "a", &[("kuma.io/origin", "global")], 1)),
    )
    .await;
    assert_eq!(answer.status, 201, "{:#}", answer.body);
    assert_eq!(
        call("PUT", &url("b"), Some(&mcb_body("default", "b", &[], 1)))
            .await
            .status,
        201
    );
    // The global writes only what it provides.
    let dp = call(
        "PUT",
        &format!("{}/meshes/default/dataplanes/dp-1", api.url()),
        Some(r#"{"type":"Dataplane","mesh":"default","name":"dp-1","networking":{}}"#),
    )
    .await;
    kuma_error(&dp, 405);
    api.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_kuma_errors_and_store_nothing() {
    let (store, api) = global_with_meshes(&["default"]).await;
    let url = format!("{}/meshes/default/meshcircuitbreakers/cb", api.url());
    let before = store.version();

    let broken = call("PUT", &url, Some(r#"{"type": "MeshCircuitBreaker", "#)).await;
    kuma_error(&broken, 400);
    assert_eq!(broken.body["title"], "Bad Request");
    assert!(
        broken.body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("invalid MeshCircuitBreaker object: "))
    );
    kuma_error(&call("PUT", &url, Some("[1,2]")).await, 400);
    kuma_error(
        &call(
            "PUT",
            &url,
            Some(r#"{"type":"MeshCircuitBreaker","mesh":"default","name":"cb","spec":[]}"#),
        )
        .await,
        400,
    );
    kuma_error(
        &call(
            "PUT",
            &url,
            Some(r#"{"type":"MeshCircuitBreaker","mesh":"default","name":"cb","labels":{"a":1}}"#),
        )
        .await,
        400,
    );

    let renamed = call("PUT", &url, Some(&mcb_body("default", "other", &[], 1))).await;
    assert_eq!(kuma_error(&renamed, 400), ["name"]);
    assert_eq!(
        renamed.body["invalid_parameters"][0]["reason"],
        "name from the URL has to be the same as in body"
    );
    let retyped = call(
        "PUT",
        &url,
        Some(r#"{"type":"MeshTimeout","mesh":"default","name":"cb","spec":{}}"#),
    )
    .await;
    assert_eq!(kuma_error(&retyped, 400), ["type"]);
    let remeshed = call("PUT", &url, Some(&mcb_body("other", "cb", &[], 1))).await;
    assert_eq!(kuma_error(&remeshed, 400), ["mesh"]);
    let bad_label = call(
        "PUT",
        &url,
        Some(&mcb_body("default", "cb", &[("app", "-bad-")], 1)),
    )
    .await;
    assert_eq!(kuma_error(&bad_label, 400), [r#"labels["app"]"#]);
    let bad_name_url = format!("{}/meshes/default/meshcircuitbreakers/Bad_Name", api.url());
    let bad_name = call(
        "PUT",
        &bad_name_url,
        Some(&mcb_body("default", "Bad_Name", &[], 1)),
    )
    .await;
    assert_eq!(kuma_error(&bad_name, 400), ["name"]);

    let huge = vec![b' '; MAX_BODY_BYTES + 1];
    kuma_error(&call_bytes("PUT", &url, Some(huge)).await, 413);
    kuma_error(
        &call(
            "PUT",
            &format!("{}/meshes/nope/meshcircuitbreakers/cb", api.url()),
            Some(&mcb_body("nope", "cb", &[], 1)),
        )
        .await,
        404,
    );
    assert_eq!(store.version(), before, "nothing was written");
    assert!(store.get(&mcb_key("default", "cb")).is_none());

    kuma_error(
        &call("GET", &format!("{}/no-such-things", api.url()), None).await,
        404,
    );
    kuma_error(
        &call(
            "GET",
            &format!("{}/meshes/default/no-such-things", api.url()),
            None,
        )
        .await,
        404,
    );
    kuma_error(
        &call("GET", &format!("{}/meshcircuitbreakers/cb", api.url()), None).await,
        404,
    );
    kuma_error(&call("POST", &url, Some("{}")).await, 405);
    api.shutdown().await;
}

#[tokio::test]
async fn proto_types_inline_their_spec() {
    let (store, api) = global_with_meshes(&[]).await;
    let url = format!("{}/meshes/demo", api.url());
    let body = r#"{"type":"Mesh","name":"demo","skipCreatingInitialPolicies":["*"],"labels":{"team":"a"}}"#;
    assert_eq!(call("PUT", &url, Some(body)).await.status, 201);
    let stored = store
        .get(&ResourceKey {
            rtype: rtype("Mesh"),
            mesh: None,
            name: "demo".into(),
        })
        .expect("stored");
    assert_eq!(stored.spec, json!({"skipCreatingInitialPolicies": ["*"]}));
    let got = call("GET", &url, None).await.body;
    assert_eq!(got["skipCreatingInitialPolicies"], json!(["*"]));
    assert!(got.get("spec").is_none());
    let with_spec = call("PUT", &url, Some(r#"{"type":"Mesh","name":"demo","spec":{}}"#)).await;
    kuma_error(&with_spec, 400);
    let list = call("GET", &format!("{}/meshes", api.url()), None).await.body;
    assert_eq!(list["total"], 1);
    api.shutdown().await;
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_refused_without_storing() {
    use futures::stream;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;

    let (store, api) = global_with_meshes(&["default"]).await;
    let before = store.version();
    // No Content-Length: the limit must hold while reading, not only on the header.
    let chunk = bytes::Bytes::from(vec![b' '; 1 << 20]);
    let chunks =
        (0..(MAX_BODY_BYTES >> 20) + 2).map(move |_| Ok::<_, std::io::Error>(Frame::data(chunk.clone())));
    let body = StreamBody::new(stream::iter(chunks)).boxed();
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let request = http::Request::put(format!("{}/meshes/default/meshcircuitbreakers/cb", api.url()))
        .body(body)
        .expect("request");
    let response = tokio::time::timeout(WAIT, client.request(request))
        .await
        .expect("answered in time");
    assert_eq!(response.expect("an answer").status(), 413);
    assert_eq!(store.version(), before);
    api.shutdown().await;
}
