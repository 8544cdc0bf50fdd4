//! The fault admin endpoint of a running lab: JSON over HTTP/1.1 (hyper 1), so faults can
//! be injected into `kuma-sim` from outside, e.g. with curl.
//!
//! Routes (`{zone}` is a zone name, `type` a Kuma type name, REST path or CRD plural):
//! - `GET /faults`: every active fault.
//! - `GET /status`: each zone's link status.
//! - `POST /faults/zones/{zone}/stall`: the streams die silently, health checks pass.
//! - `POST /faults/zones/{zone}/nack?type=`: NACK every further response of the type.
//! - `POST /faults/zones/{zone}/stop-ack?type=`: stop acknowledging the type.
//! - `POST /faults/zones/{zone}/disconnect[?seconds=]`: drop the streams, reconnect after
//!   `seconds` (default 0: at once).
//! - `POST /faults/zones/{zone}/drop?type=&mesh=&name=`: delete the zone's copy locally.
//! - `POST /faults/zones/{zone}/edit?type=&mesh=&name=`, body the new spec (JSON): edit it.
//! - `POST /faults/zones/{zone}/take-over?type=&mesh=&name=`: the copy becomes the zone's
//!   own resource; the zone's sync of the type fails until it is deleted (kumahq/kuma #18208).
//! - `POST /faults/zones/{zone}/flap?type=&seconds=`: the kind vanishes for a while.
//! - `POST /faults/zones/{zone}/heal`: lift the zone's faults and resync it.
//! - `POST /faults/heal`: lift every fault.
//! - `POST /faults/global/restart`: restart the global's KDS server.
//! - `GET /faults/global/deleted`: zone-origin resources the global deleted.
//! - `POST /faults/global/resurrect?type=&mesh=&name=`: put one back on the global.
//! - `DELETE /zones/{zone}`: delete the zone on the global (with its resources).
//!
//! Success answers 200 with a JSON body; errors answer `{"error": "..."}` with 400 (bad
//! request), 404 (unknown zone or resource) or 500.

use std::{future::Future, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use http_serve::Server;
use hyper::body::Incoming;
use kuma_model::{ResourceKey, ResourceType};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::lab::{Lab, LabError};

/// Largest request body accepted (an edited spec).
const MAX_BODY: usize = 1 << 20;

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, LabError> {
    TcpListener::bind(addr).await.map_err(|source| LabError::Bind {
        what: "the admin endpoint",
        addr,
        source,
    })
}

/// Serves until `shutdown` completes; requests in flight finish first.
pub async fn serve(lab: Lab, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) {
    let handler = move |req| {
        let lab = lab.clone();
        async move { handle(&lab, req).await }
    };
    Server::new("admin endpoint", listener)
        .serve(handler, shutdown)
        .await;
}

/// An error answer.
struct Failure(StatusCode, String);

impl From<LabError> for Failure {
    fn from(e: LabError) -> Self {
        let status = match e {
            LabError::UnknownZone(_) => StatusCode::NOT_FOUND,
            LabError::Resource(_) | LabError::Scenario(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure(status, e.to_string())
    }
}

async fn handle(lab: &Lab, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("cannot read the body: {e}")}),
            );
        }
    };
    match route(lab, &method, &path, &query, &body).await {
        Ok(value) => reply(StatusCode::OK, value),
        Err(Failure(status, message)) => reply(status, json!({"error": message})),
    }
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

type Query = Vec<(String, String)>;

async fn route(lab: &Lab, method: &Method, path: &str, q: &Query, body: &[u8]) -> Result<Value, Failure> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["faults"]) => Ok(to_json(&lab.faults())),
        (&Method::GET, ["status"]) => Ok(Value::Object(
            lab.zones()
                .iter()
                .map(|z| (z.name().to_owned(), to_json(&z.status())))
                .collect(),
        )),
        (&Method::POST, ["faults", "heal"]) => {
            lab.heal_all().await;
            Ok(json!({"healed": "all"}))
        }
        (&Method::POST, ["faults", "global", "restart"]) => {
            lab.restart_global().await?;
            Ok(json!({"restarted": "global"}))
        }
        (&Method::GET, ["faults", "global", "deleted"]) => Ok(to_json(&lab.deleted_zone_resources().await)),
        (&Method::POST, ["faults", "global", "resurrect"]) => {
            let key = resource_key(q)?;
            match lab.resurrect(&key).await {
                Some(r) => Ok(json!({"resurrected": to_json(&r)})),
                None => Err(Failure(
                    StatusCode::NOT_FOUND,
                    format!("the global deleted no zone-origin {} {:?}", key.rtype, key.name),
                )),
            }
        }
        (&Method::DELETE, ["zones", zone]) | (&Method::DELETE, ["faults", "global", "zones", zone]) => {
            match lab.delete_zone_on_global(zone) {
                Some(n) => Ok(json!({"deleted": zone, "resources": n})),
                None => Err(Failure(
                    StatusCode::NOT_FOUND,
                    format!("the global knows no zone {zone:?}"),
                )),
            }
        }
        (&Method::POST, ["faults", "zones", zone, action]) => zone_fault(lab, zone, action, q, body),
        _ => Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no route {method} {path}"),
        )),
    }
}

fn zone_fault(lab: &Lab, zone: &str, action: &str, q: &Query, body: &[u8]) -> Result<Value, Failure> {
    let z = lab.zone(zone)?;
    match action {
        "stall" => z.faults().stall(true),
        "nack" => z.faults().nack(rtype(q)?, true),
        "stop-ack" => z.faults().stop_ack(rtype(q)?, true),
        "disconnect" => z.disconnect_for(seconds(q, 0)?),
        "heal" => z.faults().heal(),
        "flap" => z.flap(rtype(q)?, seconds(q, 5)?),
        "drop" => {
            let key = resource_key(q)?;
            if !z.drop_copy(&key) {
                return Err(not_found(zone, &key));
            }
        }
        "take-over" => {
            let key = resource_key(q)?;
            if !z.take_over_copy(&key) {
                return Err(not_found(zone, &key));
            }
        }
        "edit" => {
            let key = resource_key(q)?;
            let spec: Value = serde_json::from_slice(body).map_err(|e| {
                Failure(
                    StatusCode::BAD_REQUEST,
                    format!("the body must be the new spec as JSON: {e}"),
                )
            })?;
            if !z.edit_copy(&key, spec) {
                return Err(not_found(zone, &key));
            }
        }
        other => {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!("unknown zone fault {other:?}"),
            ));
        }
    }
    Ok(json!({"zone": zone, "fault": action, "active": to_json(&z.faults().snapshot())}))
}

fn not_found(zone: &str, key: &ResourceKey) -> Failure {
    Failure(
        StatusCode::NOT_FOUND,
        format!(
            "zone {zone} has no {} {:?} in mesh {:?}",
            key.rtype, key.name, key.mesh
        ),
    )
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    // Serialising plain data structs into a Value cannot fail.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn param<'a>(q: &'a Query, name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn rtype(q: &Query) -> Result<ResourceType, Failure> {
    let name =
        param(q, "type").ok_or_else(|| Failure(StatusCode::BAD_REQUEST, "missing ?type=".to_owned()))?;
    ResourceType::parse(name)
        .ok_or_else(|| Failure(StatusCode::BAD_REQUEST, format!("unknown type {name:?}")))
}

fn seconds(q: &Query, default: u64) -> Result<Duration, Failure> {
    match param(q, "seconds") {
        None => Ok(Duration::from_secs(default)),
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 86_400.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                Failure(
                    StatusCode::BAD_REQUEST,
                    format!("seconds must be 0-86400, got {s:?}"),
                )
            }),
    }
}

fn resource_key(q: &Query) -> Result<ResourceKey, Failure> {
    let rtype = rtype(q)?;
    let name =
        param(q, "name").ok_or_else(|| Failure(StatusCode::BAD_REQUEST, "missing ?name=".to_owned()))?;
    let mesh = match (rtype.info().is_mesh_scoped(), param(q, "mesh")) {
        (true, Some(m)) => Some(m.to_owned()),
        (true, None) => Some("default".to_owned()),
        (false, _) => None,
    };
    Ok(ResourceKey {
        rtype,
        mesh,
        name: name.to_owned(),
    })
}

/// `application/x-www-form-urlencoded` pairs; undecodable escapes are kept as written.
fn parse_query(query: &str) -> Query {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let q = parse_query("type=MeshCircuitBreaker&name=a%2Eb&mesh=default&x=1+2&bad=%zz&end=%4");
        assert_eq!(param(&q, "name"), Some("a.b"));
        assert_eq!(param(&q, "x"), Some("1 2"));
        assert_eq!(param(&q, "bad"), Some("%zz"));
        assert_eq!(param(&q, "end"), Some("%4"));
        let key = resource_key(&q).map_err(|f| f.1).expect("valid");
        assert_eq!(key.mesh.as_deref(), Some("default"));
        assert!(seconds(&parse_query("seconds=-1"), 0).is_err());
        assert_eq!(
            seconds(&parse_query("seconds=1.5"), 0).map_err(|f| f.1),
            Ok(Duration::from_millis(1500))
        );
    }
}
