//! Paths, query parameters, discovery documents, get and list.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, combinators::UnsyncBoxBody};
use serde_json::{Value, json};

use super::{
    Shared, lease,
    object::{API_VERSION, Crd, GROUP, ObjectKey, VERSION},
    query::{ContinueToken, Query, parse_rv},
    selector::{FieldSelector, Filter, LabelSelector},
    status::Failure,
    watch,
};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Largest Lease accepted: a few hundred bytes in practice.
const MAX_LEASE_BYTES: usize = 64 * 1024;
/// Largest kuma.io object accepted in a write (the apiserver's limit is 3 MiB).
const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024;

/// `POST .../namespaces/{ns}/{plural}` and `PUT .../namespaces/{ns}/{plural}/{name}` of a
/// namespaced kuma.io object (what kuma-sync's canary writes on a Kubernetes global):
/// read as Kuma's Kubernetes store reads it, stored, and answered as a get would be. A
/// `PUT` from a stale `resourceVersion` is 409 Conflict, a `POST` of an existing name 409
/// AlreadyExists, as on the apiserver.
fn write(shared: &Shared, request: &http::request::Parts, body: &[u8]) -> Result<Response<Body>, Failure> {
    let segments: Vec<&str> = request.uri.path().trim_matches('/').split('/').collect();
    let (crd, namespace, name) = match (request.method.clone(), segments.as_slice()) {
        (Method::POST, ["apis", GROUP, VERSION, "namespaces", ns, plural]) => {
            (served(plural, Some(ns))?, *ns, None)
        }
        (Method::PUT, ["apis", GROUP, VERSION, "namespaces", ns, plural, name]) => {
            (served(plural, Some(ns))?, *ns, Some(*name))
        }
        (method, _) => return Err(Failure::method_not_allowed(&method)),
    };
    let object: Value = serde_json::from_slice(body)
        .map_err(|e| Failure::bad_request(format!("the object is not JSON: {e}")))?;
    let object_name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    if object_name.is_empty() || name.is_some_and(|n| n != object_name) {
        return Err(Failure::bad_request("metadata.name must be the name in the path"));
    }
    let mut object = object;
    object["metadata"]["namespace"] = json!(namespace);
    let text = object.to_string();
    let loaded = kuma_model::read::read_str(&object_name, &text, &kuma_model::read::ReadOptions::default())
        .map_err(|e| Failure::invalid(e.reason))?;
    let resource = loaded
        .resources
        .into_iter()
        .find(|r| r.rtype == crd.rtype)
        .ok_or_else(|| Failure::invalid(format!("not a {}", crd.kind())))?;
    shared.journal.sync();
    let key = ObjectKey {
        rtype: crd.rtype,
        namespace: Some(namespace.to_owned()),
        name: object_name.clone(),
    };
    let (_, snapshot) = shared.journal.current();
    let existing = snapshot.get(&key).cloned();
    match (&request.method, &existing) {
        (&Method::POST, Some(_)) => {
            return Err(Failure::conflict(
                "AlreadyExists",
                format!("{} \"{object_name}\" already exists", crd.qualified()),
            ));
        }
        (&Method::PUT, None) => {
            return Err(Failure::object_not_found(
                &crd.qualified(),
                crd.plural,
                &object_name,
            ));
        }
        (&Method::PUT, Some(current)) => {
            let sent = object["metadata"]["resourceVersion"].as_str().unwrap_or("");
            let held = current["metadata"]["resourceVersion"].as_str().unwrap_or("");
            if !sent.is_empty() && sent != held {
                return Err(Failure::conflict(
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{object_name}\": the object has been modified; please apply your changes to the latest version and try again",
                        crd.qualified()
                    ),
                ));
            }
        }
        _ => {}
    }
    shared.journal.store().upsert(resource);
    shared.journal.sync();
    let (_, snapshot) = shared.journal.current();
    let stored = snapshot
        .get(&key)
        .cloned()
        .ok_or_else(|| Failure::invalid("the object has no Kubernetes form here"))?;
    let code = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json_response(code, &stored))
}

pub(crate) async fn handle(shared: &Shared, request: Request<hyper::body::Incoming>) -> Response<Body> {
    if let Some((namespace, name)) = lease_path(request.uri().path()) {
        let method = request.method().clone();
        let body = match Limited::new(request.into_body(), MAX_LEASE_BYTES).collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => {
                let failure = Failure::bad_request(format!("cannot read the request body: {e}"));
                return json_response(failure.code, &failure.to_status());
            }
        };
        return match shared.leases.handle(&method, &namespace, name.as_deref(), &body) {
            Ok((code, lease)) => json_response(code, &lease),
            Err(failure) => json_response(failure.code, &failure.to_status()),
        };
    }
    if matches!(*request.method(), Method::POST | Method::PUT) {
        let (head, body) = request.into_parts();
        let body = match Limited::new(body, MAX_OBJECT_BYTES).collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => {
                let failure = Failure::bad_request(format!("cannot read the request body: {e}"));
                return json_response(failure.code, &failure.to_status());
            }
        };
        return match write(shared, &head, &body) {
            Ok(response) => response,
            Err(failure) => json_response(failure.code, &failure.to_status()),
        };
    }
    // Reads need no body; keeping only the head keeps the future `Send`.
    let (head, _) = request.into_parts();
    match route(shared, &head).await {
        Ok(response) => response,
        Err(failure) => json_response(failure.code, &failure.to_status()),
    }
}

async fn route(shared: &Shared, request: &http::request::Parts) -> Result<Response<Body>, Failure> {
    let path = request.uri.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let target = match segments.as_slice() {
        ["api"] => Target::Document(api_versions(shared)),
        ["api", "v1"] => Target::Document(resource_list("v1", Vec::new())),
        ["apis"] => Target::Document(json!({
            "kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group()],
        })),
        ["apis", GROUP] => Target::Document(api_group()),
        ["apis", GROUP, VERSION] => Target::Document(kuma_resources()),
        ["version"] => Target::Document(version()),
        ["apis", GROUP, VERSION, plural] => Target::Collection(served(plural, None)?, None),
        ["apis", GROUP, VERSION, plural, name] => {
            Target::Object(served(plural, None)?, None, (*name).to_owned())
        }
        ["apis", GROUP, VERSION, "namespaces", ns, plural] => {
            Target::Collection(served(plural, Some(ns))?, Some((*ns).to_owned()))
        }
        ["apis", GROUP, VERSION, "namespaces", ns, plural, name] => Target::Object(
            served(plural, Some(ns))?,
            Some((*ns).to_owned()),
            (*name).to_owned(),
        ),
        _ => return Err(Failure::no_such_path()),
    };
    if request.method != Method::GET {
        return Err(Failure::method_not_allowed(&request.method));
    }
    let query = Query::parse(request.uri.query().unwrap_or(""))?;
    match target {
        Target::Document(document) => Ok(json_response(StatusCode::OK, &document)),
        Target::Object(crd, namespace, name) => get(shared, crd, namespace, name),
        Target::Collection(crd, namespace) => {
            let filter = Filter {
                namespace,
                labels: LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
                    .map_err(|e| Failure::bad_request(format!("unable to parse requirement: {e}")))?,
                fields: FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))
                    .map_err(Failure::bad_request)?,
            };
            if query.flag("watch")? {
                watch::watch(shared, crd, filter, &query)
            } else {
                list(shared, crd, &filter, &query).await
            }
        }
    }
}

/// `/apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]`: the namespace and,
/// for one Lease, its name.
fn lease_path(path: &str) -> Option<(String, Option<String>)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["apis", lease::GROUP, lease::VERSION, "namespaces", ns, "leases"] => Some(((*ns).to_owned(), None)),
        [
            "apis",
            lease::GROUP,
            lease::VERSION,
            "namespaces",
            ns,
            "leases",
            name,
        ] => Some(((*ns).to_owned(), Some((*name).to_owned()))),
        _ => None,
    }
}

enum Target {
    Document(Value),
    Collection(Crd, Option<String>),
    Object(Crd, Option<String>, String),
}

/// The type at `plural`, if this path serves it: namespaced types under a namespace or
/// across all of them, cluster-scoped types never under a namespace.
fn served(plural: &str, namespace: Option<&str>) -> Result<Crd, Failure> {
    match Crd::by_plural(plural) {
        Some(crd) if namespace.is_none() || crd.namespaced => Ok(crd),
        _ => Err(Failure::no_such_path()),
    }
}

fn get(
    shared: &Shared,
    crd: Crd,
    namespace: Option<String>,
    name: String,
) -> Result<Response<Body>, Failure> {
    if crd.namespaced && namespace.is_none() {
        // The apiserver has no cluster-wide path for one namespaced object.
        return Err(Failure::no_such_path());
    }
    shared.journal.sync();
    let key = ObjectKey {
        rtype: crd.rtype,
        namespace,
        name,
    };
    let (_, snapshot) = shared.journal.current();
    match snapshot.get(&key) {
        Some(object) => Ok(json_response(StatusCode::OK, object)),
        None => Err(Failure::object_not_found(&crd.qualified(), crd.plural, &key.name)),
    }
}

async fn list(shared: &Shared, crd: Crd, filter: &Filter, query: &Query) -> Result<Response<Body>, Failure> {
    shared.journal.sync();
    let limit = query.number("limit")?.filter(|l| *l > 0);
    let rv_param = query.get("resourceVersion").filter(|v| !v.is_empty());
    let rv_match = query.get("resourceVersionMatch").filter(|v| !v.is_empty());
    let (rv, snapshot, after) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            if rv_param.is_some() {
                return Err(Failure::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let token = ContinueToken::decode(token)?;
            let snapshot = shared.journal.at(token.rv).map_err(|_| {
                Failure::expired(
                    "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                )
            })?;
            (token.rv, snapshot, Some((token.namespace, token.name)))
        }
        None => {
            let (rv, snapshot) = match (rv_param, rv_match) {
                (None, Some(_)) => {
                    return Err(Failure::invalid(
                        "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ));
                }
                (None, None) | (Some("0"), None | Some("NotOlderThan")) => shared.journal.current(),
                (Some(rv), Some("Exact")) => {
                    let rv = parse_rv(rv)?;
                    if rv == 0 {
                        return Err(Failure::invalid(
                            "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                        ));
                    }
                    wait_for(shared, rv).await?;
                    let snapshot = shared.journal.at(rv).map_err(|_| {
                        Failure::expired("The resourceVersion for the provided list is too old.")
                    })?;
                    (rv, snapshot)
                }
                (Some(rv), None | Some("NotOlderThan")) => {
                    wait_for(shared, parse_rv(rv)?).await?;
                    shared.journal.current()
                }
                (Some(_), Some(other)) => {
                    return Err(Failure::invalid(format!(
                        "resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\""
                    )));
                }
            };
            (rv, snapshot, None)
        }
    };
    let mut matching = snapshot
        .iter()
        .filter(|(key, _)| key.rtype == crd.rtype)
        .filter(|(key, _)| {
            after
                .as_ref()
                .is_none_or(|(ns, name)| (&key.namespace, &key.name) > (ns, name))
        })
        .filter(|(_, object)| filter.matches(object));
    let mut items = Vec::new();
    let mut last = None;
    for (key, object) in matching.by_ref() {
        items.push(object.as_ref().clone());
        last = Some(key);
        if limit.is_some_and(|l| items.len() as u64 >= l) {
            break;
        }
    }
    let remaining = matching.count();
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if let (true, Some(key)) = (remaining > 0, last) {
        metadata["continue"] = ContinueToken {
            rv,
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        }
        .encode()
        .into();
        if !filter.has_selectors() {
            metadata["remainingItemCount"] = remaining.into();
        }
    }
    let body = json!({
        "apiVersion": API_VERSION,
        "kind": format!("{}List", crd.kind()),
        "metadata": metadata,
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// Waits, as the apiserver does, for a version a client saw elsewhere to reach the journal.
async fn wait_for(shared: &Shared, rv: u64) -> Result<(), Failure> {
    let mut latest = shared.journal.subscribe();
    let reached = tokio::time::timeout(shared.config.resource_version_wait, latest.wait_for(|v| *v >= rv))
        .await
        .is_ok_and(|r| r.is_ok());
    if reached {
        Ok(())
    } else {
        Err(Failure::too_large_resource_version(
            rv,
            shared.journal.resource_version(),
        ))
    }
}

pub(crate) fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed_unsync());
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn api_versions(shared: &Shared) -> Value {
    let address = shared.local_addr.map(|a| a.to_string()).unwrap_or_default();
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    })
}

fn api_group() -> Value {
    let version = json!({"groupVersion": API_VERSION, "version": VERSION});
    json!({
        "kind": "APIGroup", "apiVersion": "v1", "name": GROUP,
        "versions": [version], "preferredVersion": version,
    })
}

fn kuma_resources() -> Value {
    let resources = Crd::all()
        .map(|crd| {
            let mut r = json!({
                "name": crd.plural,
                "singularName": crd.kind().to_ascii_lowercase(),
                "namespaced": crd.namespaced,
                "kind": crd.kind(),
                "verbs": ["get", "list", "watch"],
                "categories": ["kuma"],
            });
            if let Some(short) = crd.short {
                r["shortNames"] = json!([short]);
            }
            r
        })
        .collect();
    resource_list(API_VERSION, resources)
}

fn resource_list(group_version: &str, resources: Vec<Value>) -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": group_version, "resources": resources,
    })
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-kuma-sim",
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
        "goVersion": "", "compiler": "gc", "platform": "linux/amd64",
    })
}
