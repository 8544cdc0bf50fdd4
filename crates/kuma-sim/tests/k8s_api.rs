//! kube-rs against the simulated Kubernetes API, over real HTTP on 127.0.0.1.

use std::{collections::BTreeMap, time::Duration};

use crate::k8s_api_support::*;
use futures::StreamExt;
use kube::{
    Api as KubeApi,
    api::{DynamicObject, ListParams, WatchEvent, WatchParams},
    runtime::watcher::{self, Event},
};
use kuma_model::Resource;
use kuma_sim::k8s_api::K8sApiConfig;

/// Runs a watcher until `InitDone`, returning the objects of the initial list by name.
async fn initial_state<S>(stream: &mut S) -> BTreeMap<String, DynamicObject>
where
    S: futures::Stream<Item = Result<Event<DynamicObject>, watcher::Error>> + Unpin,
{
    let mut objects = BTreeMap::new();
    match next(stream).await {
        Ok(Event::Init) => {}
        other => panic!("expected Init, got {other:?}"),
    }
    loop {
        match next(stream).await {
            Ok(Event::InitApply(o)) => {
                let key = format!(
                    "{}/{}",
                    o.metadata.namespace.clone().unwrap_or_default(),
                    name(&o)
                );
                objects.insert(key, o);
            }
            Ok(Event::InitDone) => return objects,
            other => panic!("expected InitApply or InitDone, got {other:?}"),
        }
    }
}

fn name(o: &DynamicObject) -> String {
    o.metadata.name.clone().unwrap_or_default()
}

fn key_of(r: &Resource) -> String {
    let (name, ns) = r.name.rsplit_once('.').unwrap_or(("", &r.name));
    if r.rtype.info().k8s_namespaced() {
        format!("{ns}/{name}")
    } else {
        format!("/{}", r.name)
    }
}

#[tokio::test]
async fn watcher_lists_then_follows_namespaced_policies() {
    let api = start(K8sApiConfig::default()).await;
    let redis = mcb("demo-app-to-redis", "kuma-system", 1024);
    let web = mcb("web", "kuma-demo", 10);
    for r in [&redis, &web] {
        api.store.upsert(r.clone());
    }
    api.store.upsert(mesh("default"));
    let mcbs = KubeApi::<DynamicObject>::all_with(api.client.clone(), &api_resource("MeshCircuitBreaker"));
    let mut stream = watcher::watcher(mcbs, watcher::Config::default()).boxed();

    let initial = initial_state(&mut stream).await;
    assert_eq!(
        initial.keys().collect::<Vec<_>>(),
        ["kuma-demo/web", "kuma-system/demo-app-to-redis"],
        "only MeshCircuitBreakers, from every namespace"
    );
    assert_same(&initial["kuma-system/demo-app-to-redis"], &redis);
    assert_same(&initial["kuma-demo/web"], &web);
    let served = &initial["kuma-system/demo-app-to-redis"];
    assert_eq!(
        served.metadata.annotations.as_ref().unwrap()["kuma.io/display-name"],
        "demo-app-to-redis"
    );
    assert!(
        !served
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .contains_key("kuma.io/display-name")
    );
    assert_eq!(served.metadata.generation, Some(1));

    // Create.
    let created = mcb("backend", "kuma-system", 5);
    api.store.upsert(created.clone());
    match next(&mut stream).await {
        Ok(Event::Apply(o)) => assert_same(&o, &created),
        other => panic!("expected Apply of the new policy, got {other:?}"),
    }
    // Update the spec: same uid, next generation.
    let updated = mcb("demo-app-to-redis", "kuma-system", 2048);
    api.store.upsert(updated.clone());
    match next(&mut stream).await {
        Ok(Event::Apply(o)) => {
            assert_same(&o, &updated);
            assert_eq!(o.metadata.uid, served.metadata.uid);
            assert_eq!(o.metadata.generation, Some(2));
            let before: u64 = served
                .metadata
                .resource_version
                .as_deref()
                .unwrap()
                .parse()
                .unwrap();
            let after: u64 = o.metadata.resource_version.as_deref().unwrap().parse().unwrap();
            assert!(
                after > before,
                "resourceVersion moves forward: {before} -> {after}"
            );
        }
        other => panic!("expected Apply of the update, got {other:?}"),
    }
    // Delete.
    api.store.delete(&web.key());
    match next(&mut stream).await {
        Ok(Event::Delete(o)) => {
            assert_eq!(name(&o), "web");
            assert_eq!(o.metadata.namespace.as_deref(), Some("kuma-demo"));
        }
        other => panic!("expected Delete, got {other:?}"),
    }
    // Writes to other types are not events of this watch.
    api.store.upsert(mesh("other"));
    let late = mcb("late", "kuma-system", 1);
    api.store.upsert(late.clone());
    match next(&mut stream).await {
        Ok(Event::Apply(o)) => assert_same(&o, &late),
        other => panic!("expected Apply of `late`, got {other:?}"),
    }
    bounded(api.handle.shutdown()).await;
}

#[tokio::test]
async fn cluster_scoped_meshes_and_namespaced_paths() {
    let api = start(K8sApiConfig::default()).await;
    api.store.upsert(mesh("default"));
    api.store.upsert(mcb("a", "kuma-system", 1));
    api.store.upsert(mcb("b", "kuma-demo", 1));

    let meshes = KubeApi::<DynamicObject>::all_with(api.client.clone(), &api_resource("Mesh"));
    let mut stream = watcher::watcher(meshes.clone(), watcher::Config::default()).boxed();
    let initial = initial_state(&mut stream).await;
    assert_eq!(initial.keys().collect::<Vec<_>>(), ["/default"]);
    assert!(initial["/default"].metadata.namespace.is_none());
    assert_same(&initial["/default"], &mesh("default"));
    let added = mesh("payments");
    api.store.upsert(added.clone());
    match next(&mut stream).await {
        Ok(Event::Apply(o)) => assert_same(&o, &added),
        other => panic!("expected Apply of the new mesh, got {other:?}"),
    }
    let got = bounded(meshes.get("payments")).await.expect("get mesh");
    assert_same(&got, &added);
    let missing = bounded(meshes.get("nope")).await.unwrap_err();
    assert!(
        matches!(&missing, kube::Error::Api(s) if s.code == 404),
        "{missing:?}"
    );

    // One namespace only, and one object by name.
    let in_system = KubeApi::<DynamicObject>::namespaced_with(
        api.client.clone(),
        "kuma-system",
        &api_resource("MeshCircuitBreaker"),
    );
    let list = bounded(in_system.list(&ListParams::default()))
        .await
        .expect("list");
    assert_eq!(list.items.iter().map(name).collect::<Vec<_>>(), ["a"]);
    let a = bounded(in_system.get("a")).await.expect("get");
    assert_same(&a, &mcb("a", "kuma-system", 1));
    let mut ns_stream = watcher::watcher(in_system, watcher::Config::default()).boxed();
    let initial = initial_state(&mut ns_stream).await;
    assert_eq!(initial.keys().collect::<Vec<_>>(), ["kuma-system/a"]);
    api.store.upsert(mcb("c", "kuma-demo", 1));
    let in_ns = mcb("d", "kuma-system", 1);
    api.store.upsert(in_ns.clone());
    match next(&mut ns_stream).await {
        Ok(Event::Apply(o)) => assert_same(&o, &in_ns),
        other => panic!("expected only kuma-system's policy, got {other:?}"),
    }
    bounded(api.handle.shutdown()).await;
}

#[tokio::test]
async fn expired_resource_version_gets_410_and_watcher_relists() {
    let config = K8sApiConfig {
        history_limit: 3,
        ..K8sApiConfig::default()
    };
    let api = start(config).await;
    api.store.upsert(mcb("keep", "kuma-system", 1));
    api.store.upsert(mcb("gone", "kuma-system", 1));
    let ar = api_resource("MeshCircuitBreaker");
    let mcbs = KubeApi::<DynamicObject>::all_with(api.client.clone(), &ar);
    let mut stream = watcher::watcher(mcbs.clone(), watcher::Config::default()).boxed();
    assert_eq!(initial_state(&mut stream).await.len(), 2);

    // While the watcher is not polled (its watch not yet open), more changes happen than
    // the history keeps.
    api.store.delete(&mcb("gone", "kuma-system", 1).key());
    let changed = mcb("keep", "kuma-system", 7);
    api.store.upsert(changed.clone());
    let fresh: Vec<Resource> = (0..4).map(|i| mcb(&format!("new-{i}"), "kuma-demo", i)).collect();
    for r in &fresh {
        api.store.upsert(r.clone());
    }

    match next(&mut stream).await {
        Err(watcher::Error::WatchError(status)) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected a 410 watch error, got {other:?}"),
    }
    let relisted = initial_state(&mut stream).await;
    let mut expected: Vec<&Resource> = fresh.iter().collect();
    expected.push(&changed);
    assert_eq!(relisted.keys().cloned().collect::<Vec<_>>(), {
        let mut keys: Vec<String> = expected.iter().map(|r| key_of(r)).collect();
        keys.sort();
        keys
    });
    for r in expected {
        assert_same(&relisted[&key_of(r)], r);
    }
    // And it keeps following after the relist.
    let after = mcb("after", "kuma-system", 1);
    api.store.upsert(after.clone());
    match next(&mut stream).await {
        Ok(Event::Apply(o)) => assert_same(&o, &after),
        other => panic!("expected Apply after the relist, got {other:?}"),
    }

    // The raw forms: an in-stream ERROR event for a watch, HTTP 410 for a list.
    let mut raw = bounded(mcbs.watch(&WatchParams::default().timeout(5), "1"))
        .await
        .expect("watch starts")
        .boxed();
    match next(&mut raw).await {
        Ok(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status.message.starts_with("too old resource version: 1 ("),
                "{}",
                status.message
            );
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }
    let exact = ListParams::default()
        .at("2")
        .matching(kube::api::VersionMatch::Exact);
    let err = bounded(mcbs.list(&exact)).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 410 && s.reason == "Expired"),
        "{err:?}"
    );
    bounded(api.handle.shutdown()).await;
}

#[tokio::test]
async fn initial_list_is_paginated_with_limit_and_continue() {
    let api = start(K8sApiConfig::default()).await;
    let all: Vec<Resource> = (0..7).map(|i| mcb(&format!("p{i}"), "kuma-system", i)).collect();
    for r in &all {
        api.store.upsert(r.clone());
    }
    let mcbs = KubeApi::<DynamicObject>::all_with(api.client.clone(), &api_resource("MeshCircuitBreaker"));

    let first = bounded(mcbs.list(&ListParams::default().limit(3)))
        .await
        .expect("page 1");
    assert_eq!(
        first.items.iter().map(name).collect::<Vec<_>>(),
        ["p0", "p1", "p2"]
    );
    assert_eq!(first.metadata.remaining_item_count, Some(4));
    let token = first.metadata.continue_.clone().expect("continue token");
    // Pages of one list come from one snapshot: a delete between pages is not seen.
    api.store.delete(&all[4].key());
    api.store.upsert(mcb("p9", "kuma-system", 9));
    let second = bounded(mcbs.list(&ListParams::default().limit(3).continue_token(&token)))
        .await
        .expect("page 2");
    assert_eq!(
        second.items.iter().map(name).collect::<Vec<_>>(),
        ["p3", "p4", "p5"]
    );
    assert_eq!(second.metadata.resource_version, first.metadata.resource_version);
    let token = second.metadata.continue_.clone().expect("continue token");
    let third = bounded(mcbs.list(&ListParams::default().limit(3).continue_token(&token)))
        .await
        .expect("page 3");
    assert_eq!(third.items.iter().map(name).collect::<Vec<_>>(), ["p6"]);
    assert!(third.metadata.continue_.is_none());
    let garbage = bounded(mcbs.list(&ListParams::default().continue_token("zz"))).await;
    assert!(
        matches!(&garbage, Err(kube::Error::Api(s)) if s.code == 400),
        "{garbage:?}"
    );

    // watcher() pages through the same way and sees the current state.
    let config = watcher::Config::default().page_size(2);
    let mut stream = watcher::watcher(mcbs, config).boxed();
    let initial = initial_state(&mut stream).await;
    let names: Vec<String> = initial.values().map(name).collect();
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p5", "p6", "p9"]);
    bounded(api.handle.shutdown()).await;
}

#[tokio::test]
async fn streaming_lists_and_label_selectors() {
    let api = start(K8sApiConfig::default()).await;
    let producer = mcb("prod", "kuma-demo", 1);
    api.store.upsert(producer.clone());
    api.store.upsert(mcb("sys", "kuma-system", 1));
    let mcbs = KubeApi::<DynamicObject>::all_with(api.client.clone(), &api_resource("MeshCircuitBreaker"));

    // sendInitialEvents: ADDED events, then the initial-events-end bookmark.
    let mut streaming = watcher::watcher(mcbs.clone(), watcher::Config::default().streaming_lists()).boxed();
    let initial = initial_state(&mut streaming).await;
    assert_eq!(initial.len(), 2);
    let extra = mcb("extra", "kuma-system", 3);
    api.store.upsert(extra.clone());
    match next(&mut streaming).await {
        Ok(Event::Apply(o)) => assert_same(&o, &extra),
        other => panic!("expected Apply, got {other:?}"),
    }

    // A label selector: objects entering it are applied, objects leaving it deleted.
    let config = watcher::Config::default().labels("kuma.io/policy-role=producer");
    let mut selected = watcher::watcher(mcbs.clone(), config).boxed();
    let initial = initial_state(&mut selected).await;
    assert_eq!(initial.keys().collect::<Vec<_>>(), ["kuma-demo/prod"]);
    let promoted = mcb("extra", "kuma-system", 3).with_label("kuma.io/policy-role", "producer");
    api.store.upsert(promoted.clone());
    match next(&mut selected).await {
        Ok(Event::Apply(o)) => assert_same(&o, &promoted),
        other => panic!("expected the promoted policy, got {other:?}"),
    }
    let demoted = producer.clone().with_label("kuma.io/policy-role", "consumer");
    api.store.upsert(demoted);
    match next(&mut selected).await {
        Ok(Event::Delete(o)) => assert_eq!(name(&o), "prod"),
        other => panic!("expected `prod` to leave the selection, got {other:?}"),
    }

    // Field selectors on the name, as `watch_object` sends them.
    let by_name = ListParams::default().fields("metadata.name=extra,metadata.namespace=kuma-system");
    let list = bounded(mcbs.list(&by_name)).await.expect("list");
    assert_eq!(list.items.iter().map(name).collect::<Vec<_>>(), ["extra"]);
    let bad = bounded(mcbs.list(&ListParams::default().fields("spec.x=1"))).await;
    assert!(
        matches!(&bad, Err(kube::Error::Api(s)) if s.code == 400),
        "{bad:?}"
    );
    bounded(api.handle.shutdown()).await;
}

#[tokio::test]
async fn watch_timeout_ends_the_stream_and_bookmarks_carry_the_version() {
    let config = K8sApiConfig {
        bookmark_interval: Duration::from_millis(100),
        ..K8sApiConfig::default()
    };
    let api = start(config).await;
    api.store.upsert(mcb("a", "kuma-system", 1));
    let mcbs = KubeApi::<DynamicObject>::all_with(api.client.clone(), &api_resource("MeshCircuitBreaker"));
    let list = bounded(mcbs.list(&ListParams::default())).await.expect("list");
    let rv = list.metadata.resource_version.clone().expect("list version");
    // Changes of another type move the store-wide version; bookmarks report it.
    api.store.upsert(mesh("default"));
    let mut events = bounded(mcbs.watch(&WatchParams::default().timeout(1), &rv))
        .await
        .expect("watch")
        .boxed();
    let mut bookmarks = Vec::new();
    while let Some(event) = bounded(events.next()).await {
        match event {
            Ok(WatchEvent::Bookmark(b)) => bookmarks.push(b.metadata.resource_version),
            other => panic!("expected only bookmarks, got {other:?}"),
        }
    }
    assert!(
        !bookmarks.is_empty(),
        "a 1 s watch with 100 ms bookmarks ends with some"
    );
    let newest: u64 = bookmarks.last().unwrap().parse().unwrap();
    assert!(newest > rv.parse::<u64>().unwrap(), "{bookmarks:?} after {rv}");
    bounded(api.handle.shutdown()).await;
}

/// The wire shapes a client other than kube-rs (curl, client-go) sees.
#[tokio::test]
async fn raw_http_shapes() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    use serde_json::Value;

    let api = start(K8sApiConfig {
        resource_version_wait: Duration::from_millis(200),
        ..K8sApiConfig::default()
    })
    .await;
    api.store.upsert(mcb("a", "kuma-system", 1));
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let base = format!("http://{}", api.handle.addr());
    let call = |method: &str, path: &str| {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let client = client.clone();
        async move {
            let response = bounded(client.request(request)).await.expect("response");
            let (head, body) = response.into_parts();
            let body = bounded(body.collect()).await.expect("body").to_bytes();
            (head, String::from_utf8(body.to_vec()).expect("UTF-8"))
        }
    };
    let json = |text: &str| -> Value { serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}")) };

    let (head, body) = call(
        "GET",
        "/apis/kuma.io/v1alpha1/namespaces/kuma-system/meshcircuitbreakers",
    )
    .await;
    assert_eq!(head.status, 200);
    let list = json(&body);
    assert_eq!(list["kind"], "MeshCircuitBreakerList");
    assert_eq!(list["apiVersion"], "kuma.io/v1alpha1");
    assert!(list["metadata"]["resourceVersion"].is_string());
    assert_eq!(list["items"][0]["metadata"]["name"], "a");

    // A watch is a chunked stream of one JSON event per line, ended by timeoutSeconds.
    let (head, body) = call(
        "GET",
        "/apis/kuma.io/v1alpha1/meshcircuitbreakers?watch=1&timeoutSeconds=1",
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["transfer-encoding"], "chunked");
    let lines: Vec<Value> = body.lines().map(json).collect();
    assert_eq!(lines.len(), 1, "{body}");
    assert_eq!(lines[0]["type"], "ADDED");
    assert_eq!(lines[0]["object"]["metadata"]["namespace"], "kuma-system");

    let (head, body) = call("GET", "/apis/kuma.io/v1alpha1").await;
    assert_eq!(head.status, 200);
    let resources = json(&body)["resources"].as_array().cloned().unwrap();
    let scope = |plural: &str| {
        resources
            .iter()
            .find(|r| r["name"] == plural)
            .map(|r| r["namespaced"].clone())
    };
    assert_eq!(scope("meshcircuitbreakers"), Some(Value::Bool(true)));
    assert_eq!(scope("meshes"), Some(Value::Bool(false)));
    assert_eq!(scope("secrets"), None);
    let (_, body) = call("GET", "/apis").await;
    assert_eq!(json(&body)["groups"][0]["name"], "kuma.io");

    // Failures are Status objects.
    let (head, body) = call("POST", "/apis/kuma.io/v1alpha1/meshes").await;
    assert_eq!(head.status, 405);
    assert_eq!(json(&body)["reason"], "MethodNotAllowed");
    for path in [
        "/apis/kuma.io/v1alpha1/namespaces/kuma-system/meshes",
        "/apis/kuma.io/v1alpha1/nosuchthings",
        "/apis/other.io/v1",
    ] {
        let (head, body) = call("GET", path).await;
        assert_eq!(head.status, 404, "{path}");
        assert_eq!(json(&body)["kind"], "Status", "{path}");
    }
    let (head, body) = call(
        "GET",
        "/apis/kuma.io/v1alpha1/meshcircuitbreakers?resourceVersion=1&resourceVersionMatch=Bogus",
    )
    .await;
    assert_eq!(head.status, 422, "{body}");
    let (head, body) = call(
        "GET",
        "/apis/kuma.io/v1alpha1/meshcircuitbreakers?watch=1&sendInitialEvents=true&allowWatchBookmarks=true",
    )
    .await;
    assert_eq!(
        head.status, 422,
        "sendInitialEvents needs resourceVersionMatch: {body}"
    );
    // A version the server has not reached: it waits, then answers 504 as the apiserver does.
    let (head, body) = call(
        "GET",
        "/apis/kuma.io/v1alpha1/meshcircuitbreakers?resourceVersion=999999&resourceVersionMatch=NotOlderThan",
    )
    .await;
    assert_eq!(head.status, 504, "{body}");
    assert_eq!(json(&body)["reason"], "Timeout");
    bounded(api.handle.shutdown()).await;
}
