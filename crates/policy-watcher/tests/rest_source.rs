//! The REST source against a real HTTP server that answers like Kuma's API server:
//! pagination, tokens, and every way a control plane can fail to be read.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use crate::common::http_peer::{self, Log};
use kuma_model::ResourceType;
use policy_watcher::source::{
    SourceError,
    http::{HttpClient, HttpSettings},
    rest::KumaApi,
};
use tokio::net::TcpListener;

/// path+query -> (status, body); unknown paths answer 404 like Kuma.
type Routes = HashMap<String, (u16, String)>;

struct Fake {
    addr: SocketAddr,
    /// Every request's path+query and Authorization header, in arrival order.
    seen: Log,
}

async fn serve(routes: Routes, delay: Duration) -> Fake {
    let routes = Arc::new(routes);
    let (addr, seen) = http_peer::serve(move |_| {
        move |pq: String| {
            let routes = routes.clone();
            async move {
                tokio::time::sleep(delay).await;
                routes
                    .get(&pq)
                    .cloned()
                    .unwrap_or((404, r#"{"title":"Could not find resource"}"#.into()))
            }
        }
    })
    .await;
    Fake { addr, seen }
}

fn item(name: &str, mesh: &str) -> String {
    format!(
        r#"{{"type":"MeshTimeout","mesh":"{mesh}","name":"{name}","creationTime":"2026-11-02T09:00:00Z","modificationTime":"2026-11-02T09:00:00Z","labels":{{"kuma.io/mesh":"{mesh}"}},"spec":{{"targetRef":{{"kind":"Mesh"}}}}}}"#
    )
}

fn api(addr: SocketAddr, settings: HttpSettings) -> KumaApi {
    KumaApi::new(
        &format!("http://{addr}"),
        HttpClient::new(settings).expect("client"),
    )
    .expect("api")
}

fn mt() -> ResourceType {
    ResourceType::from_name("MeshTimeout").unwrap()
}

#[tokio::test]
async fn every_page_is_read_with_the_token() {
    let mut routes = Routes::new();
    // Kuma builds `next` from its own host name; the source must follow it on our address.
    routes.insert(
        "/meshtimeouts?size=1000".into(),
        (200, format!(r#"{{"total":2,"items":[{}],"next":"http://kuma-cp.internal:5681/meshtimeouts?offset=1&size=1000"}}"#, item("a", "default"))),
    );
    routes.insert(
        "/meshtimeouts?offset=1&size=1000".into(),
        (
            200,
            format!(r#"{{"total":2,"items":[{}],"next":null}}"#, item("b", "other")),
        ),
    );
    routes.insert(
        "/meshretries?size=1000".into(),
        (200, r#"{"total":0,"items":[],"next":null}"#.into()),
    );
    let fake = serve(routes, Duration::ZERO).await;
    let settings = HttpSettings {
        token: Some("s3cr3t".into()),
        ..Default::default()
    };
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        api(fake.addr, settings).list_all(&[mt(), ResourceType::from_name("MeshRetry").unwrap()]),
    )
    .await
    .expect("no hang")
    .expect("read");
    let mut names: Vec<_> = got
        .iter()
        .map(|r| (r.mesh.clone().unwrap(), r.name.clone()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![("default".into(), "a".into()), ("other".into(), "b".into())]
    );
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|(_, auth)| auth.as_deref() == Some("Bearer s3cr3t")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn error_statuses_are_classified() {
    let mut routes = Routes::new();
    routes.insert("/meshtimeouts?size=1000".into(), (503, "overloaded".into()));
    let fake = serve(routes, Duration::ZERO).await;
    let err = api(fake.addr, HttpSettings::default())
        .list(mt())
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Status { status: 503, .. }), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("overloaded"));

    let mut routes = Routes::new();
    routes.insert(
        "/meshtimeouts?size=1000".into(),
        (401, r#"{"title":"Unauthenticated"}"#.into()),
    );
    let fake = serve(routes, Duration::ZERO).await;
    let err = api(fake.addr, HttpSettings::default())
        .list(mt())
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "unauthorized");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn malformed_answers_are_decode_errors_naming_the_url() {
    let mut routes = Routes::new();
    routes.insert(
        "/meshtimeouts?size=1000".into(),
        (200, r#"{"total":1,"items":[{"type":"MeshTimeout""#.into()),
    );
    let fake = serve(routes, Duration::ZERO).await;
    let err = api(fake.addr, HttpSettings::default())
        .list(mt())
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "decode");
    assert!(err.to_string().contains("/meshtimeouts?size=1000"), "{err}");
}

#[tokio::test]
async fn a_next_link_that_never_ends_is_refused() {
    let mut routes = Routes::new();
    routes.insert(
        "/meshtimeouts?size=1000".into(),
        (
            200,
            r#"{"total":1,"items":[],"next":"http://x/meshtimeouts?size=1000"}"#.into(),
        ),
    );
    let fake = serve(routes, Duration::ZERO).await;
    let err = api(fake.addr, HttpSettings::default())
        .list(mt())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("the pages loop"), "{err}");
    assert_eq!(err.metric_label(), "paging");
}

#[tokio::test]
async fn unreachable_and_slow_control_planes() {
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = api(closed, HttpSettings::default()).list(mt()).await.unwrap_err();
    assert_eq!(err.metric_label(), "unreachable");
    assert!(err.is_retryable());

    let mut routes = Routes::new();
    routes.insert(
        "/meshtimeouts?size=1000".into(),
        (200, r#"{"total":0,"items":[]}"#.into()),
    );
    let fake = serve(routes, Duration::from_secs(30)).await;
    let settings = HttpSettings {
        timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let err = api(fake.addr, settings).list(mt()).await.unwrap_err();
    assert_eq!(err.metric_label(), "timeout");
}

#[test]
fn a_ca_bundle_that_is_not_pem_is_a_config_error() {
    let err = HttpClient::new(HttpSettings {
        ca_pem: Some(b"not a certificate".to_vec()),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.metric_label(), "tls_config");
    assert!(!err.is_retryable());
}

/// A Kuma 3 API: `GET /` names a main-branch build, and the legacy types' paths answer
/// 404. Those read as "none here"; a 404 for a type Kuma 3 still has is an error (a
/// wrong URL must never read as an empty control plane).
#[tokio::test]
async fn a_kuma_3_api_reports_its_version_and_has_no_legacy_types() {
    let mut routes = Routes::new();
    routes.insert(
        "/".into(),
        (200, r#"{"hostname":"cp","product":"Kuma","version":"0.0.0-preview.v348b6528b","instanceId":"i","clusterId":"c","gui":"/gui"}"#.into()),
    );
    routes.insert(
        "/meshtimeouts?size=1000".into(),
        (
            200,
            format!(r#"{{"total":1,"items":[{}],"next":null}}"#, item("a", "default")),
        ),
    );
    let fake = serve(routes, Duration::ZERO).await;
    let api = api(fake.addr, HttpSettings::default());
    let version = api.kuma_version().await.expect("index");
    assert_eq!(
        kuma_model::KumaLine::detect(&version).line,
        kuma_model::KumaLine::V3
    );
    let legacy = ResourceType::from_name("TrafficPermission").unwrap();
    let read = api.list_all(&[mt(), legacy]).await.expect("legacy 404 is none");
    assert_eq!(read.len(), 1);
    let retry = ResourceType::from_name("MeshRetry").unwrap();
    let err = api
        .list_all(&[mt(), retry])
        .await
        .expect_err("a current type's 404 is an error");
    assert!(matches!(err, SourceError::Status { status: 404, .. }), "{err}");
}
