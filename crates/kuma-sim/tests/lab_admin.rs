//! The admin endpoint drives faults over HTTP and lists them.

use crate::lab_support::*;
use kuma_model::{Environment, resource::expected_name_in_zone};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// One HTTP/1.1 request with `Connection: close`; returns the status and the JSON body.
async fn call(base: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let authority = base.strip_prefix("http://").expect("http URL");
    let mut stream = TcpStream::connect(authority).await.expect("admin reachable");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut raw = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut raw))
        .await
        .expect("answered in time")
        .expect("readable");
    let (head, payload) = raw.split_once("\r\n\r\n").expect("a complete response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, serde_json::from_str(payload).expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_injected_listed_and_healed_over_http() {
    let lab = converged_lab(federate()).await;
    let admin = lab.admin_url().expect("admin served");

    let (status, body) = call(
        &admin,
        "POST",
        "/faults/zones/zone-1/nack?type=meshcircuitbreakers",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&admin, "POST", "/faults/zones/zone-2/stop-ack?type=MeshRetry", "").await;
    assert_eq!(status, 200, "{body}");
    let (_, listed) = call(&admin, "GET", "/faults", "").await;
    assert_eq!(
        listed["zones"]["zone-1"]["nack"],
        serde_json::json!(["MeshCircuitBreaker"])
    );
    assert_eq!(
        listed["zones"]["zone-2"]["stop_ack"],
        serde_json::json!(["MeshRetry"])
    );

    // The NACK fault takes effect: the global records a rejected response.
    lab.create_on_global(mcb("via-admin", 9)).expect("created");
    let global = lab.global_store().clone();
    lab.wait_until(
        |_| {
            global
                .zone("zone-1")
                .and_then(|z| z.subscriptions.last().cloned())
                .and_then(|s| s.stats.get("MeshCircuitBreaker").copied())
                .is_some_and(|s| s.responses_rejected >= 1)
        },
        WAIT,
    )
    .await
    .expect("rejected response recorded");

    // Editing a copy takes the spec from the body.
    let copy = expected_name_in_zone(
        &mcb("via-admin", 9),
        &Environment::Universal,
        &Environment::kubernetes(),
    );
    let zone_2 = lab.zone_store("zone-2").expect("zone-2").clone();
    lab.wait_until(|_| zone_2.get(&mcb_key(&copy)).is_some(), WAIT)
        .await
        .expect("zone-2 has it");
    let path = format!("/faults/zones/zone-2/edit?type=MeshCircuitBreaker&mesh=default&name={copy}");
    let (status, body) = call(&admin, "POST", &path, r#"{"targetRef":{"kind":"Mesh"}}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        zone_2.get(&mcb_key(&copy)).map(|r| r.spec),
        Some(serde_json::json!({"targetRef": {"kind": "Mesh"}}))
    );

    // Taking a copy over makes it the zone's own.
    let path = format!("/faults/zones/zone-2/take-over?type=MeshCircuitBreaker&mesh=default&name={copy}");
    let (status, body) = call(&admin, "POST", &path, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        zone_2
            .get(&mcb_key(&copy))
            .and_then(|r| r.label("kuma.io/origin").map(str::to_owned)),
        Some("zone".to_owned())
    );
    zone_2.delete(&mcb_key(&copy));

    // Bad input is refused plainly.
    let (status, body) = call(&admin, "POST", "/faults/zones/zone-1/nack?type=Nope", "").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().is_some_and(|e| e.contains("Nope")));
    let (status, _) = call(&admin, "POST", "/faults/zones/zone-9/stall", "").await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &admin,
        "POST",
        "/faults/zones/zone-2/edit?type=MeshCircuitBreaker&name=x",
        "{",
    )
    .await;
    assert_eq!(status, 400);

    let (status, _) = call(&admin, "POST", "/faults/heal", "").await;
    assert_eq!(status, 200);
    let (_, listed) = call(&admin, "GET", "/faults", "").await;
    assert_eq!(listed["zones"]["zone-1"]["nack"], serde_json::json!([]));
    let zone_1 = lab.zone_store("zone-1").expect("zone-1").clone();
    let in_zone_1 = expected_name_in_zone(
        &mcb("via-admin", 9),
        &Environment::Universal,
        &Environment::Universal,
    );
    lab.wait_until(|_| zone_1.get(&mcb_key(&in_zone_1)).is_some(), WAIT)
        .await
        .expect("healed");

    // Global faults: restart, then delete a zone.
    let (status, _) = call(&admin, "POST", "/faults/global/restart", "").await;
    assert_eq!(status, 200);
    let (status, body) = call(&admin, "DELETE", "/zones/zone-1", "").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(&admin, "DELETE", "/zones/zone-1", "").await;
    assert_eq!(
        status, 404,
        "already deleted (and the zone has not reconnected yet)"
    );
    let (_, listed) = call(&admin, "GET", "/faults", "").await;
    assert_eq!(listed["global"]["restarts"], 1);
    lab.shutdown().await;
}
