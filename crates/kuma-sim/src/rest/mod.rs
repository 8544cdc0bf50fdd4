//! Kuma's REST API (kuma-semantics 7.4) over any simulated control plane's store: resources
//! by mesh and across meshes with Kuma's paging, filters, origin rules and error bodies,
//! the global's zones and zone insights, and the index, `/_resources` and `/config`.
//! Plain HTTP/1.1 on hyper; bodies are JSON only.
//!
//! Start one with [`serve_rest`] on a listener you bound, or with [`RestApi::start`] for
//! a handle that knows its address and shuts down when dropped.
//!
//! # Layout
//! - `resources`: list, get, create-or-update and delete of every type with a REST path.
//! - `zones`: `/zones`, `/zones/_overview`, `/zone-insights` from the global's zone
//!   records, and [`ZoneAdmin`] for the zone writes.
//! - `about`: `/`, `/_resources`, `/config`.
//! - `paging`: `size`, `offset`, `name`, `filter[labels.k]` and `next` links.
//! - `render`: items in Kuma's field order, Go and protojson times, KRIs.
//! - `validation`: Kuma's name and label rules.
//! - `errors`: Kuma's error body.
//!
//! # Deviations from Kuma, on purpose
//! - Specs are not validated against the types' schemas; any JSON object is accepted.
//! - `PUT`/`DELETE` answer `{}`: Kuma's `warnings` is `omitempty` and no simulated type
//!   is deprecated.
//! - Zone creation times are when the API first saw the zone (or its first connection):
//!   the zone records keep none.
//! - No authentication, no `format=k8s`, no `_overview` of mesh-scoped types, no
//!   `/global-insight`.

mod about;
mod errors;
mod paging;
mod render;
mod resources;
mod validation;
mod zones;

use std::{
    collections::BTreeMap,
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use http_serve::Server;
use hyper::body::Incoming;
use kuma_model::{ResourceType, types::Scope};
use serde::Serialize;
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
};

pub use zones::ZoneAdmin;

use crate::store::{GlobalStore, ResourceStore};
use errors::ApiError;
use paging::{Query, decode_path_segment};
use resources::ListPlace;
use zones::{ZoneTimes, ZoneView};

/// The Kuma version the simulated control planes report.
pub const VERSION: &str = "2.14.3";

/// What a simulated control plane of `line` reports as its version: a Kuma 3 build from
/// the main branch is stamped `0.0.0-…` (`tools/releases/version.sh` there).
pub fn reported_version(line: kuma_model::KumaLine) -> &'static str {
    match line {
        kuma_model::KumaLine::V2 => VERSION,
        kuma_model::KumaLine::V3 => "0.0.0-preview.vkuma-sim",
    }
}

/// Larger bodies are refused with 413 before they are read.
pub const MAX_BODY_BYTES: usize = 10 << 20;

/// Why the REST server could not start.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The listen address could not be bound (in use, or not local).
    #[error("failed to bind the REST API listener on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The listener has no local address (it is not a bound TCP socket).
    #[error("the REST API listener has no local address")]
    LocalAddr(#[source] std::io::Error),
}

impl RestError {
    /// A port still held by a closing server frees up shortly.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RestError::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
    }
}

/// Serves Kuma's REST API for `store` on `listener` until `shutdown` resolves. Zone
/// writes (`PUT`/`DELETE /zones/{name}`) need [`RestApi::with_zone_admin`]; here they
/// answer 405.
pub async fn serve_rest(
    store: Arc<dyn ResourceStore>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RestError> {
    RestApi::new(store).serve(listener, shutdown).await
}

/// One control plane's REST API, before it serves.
#[derive(Clone)]
pub struct RestApi {
    api: Arc<Api>,
}

impl std::fmt::Debug for RestApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestApi")
            .field("role", &self.api.store.role())
            .field("hostname", &self.api.hostname)
            .finish_non_exhaustive()
    }
}

impl RestApi {
    pub fn new(store: Arc<dyn ResourceStore>) -> Self {
        Self {
            api: Arc::new(Api {
                store,
                zone_admin: None,
                zone_times: Mutex::new(BTreeMap::new()),
                hostname: "kuma-sim".to_owned(),
                answered: watch::channel(0).0,
            }),
        }
    }

    /// A global's API: resources, zone records, and zone writes.
    pub fn global(store: Arc<GlobalStore>) -> Self {
        Self::new(store.clone()).with_zone_admin(store)
    }

    /// Lets `PUT`/`DELETE /zones/{name}` change the zone records.
    pub fn with_zone_admin(self, admin: Arc<dyn ZoneAdmin>) -> Self {
        self.rebuild(|api| api.zone_admin = Some(admin))
    }

    /// The `hostname` of `GET /` (default `kuma-sim`).
    pub fn with_hostname(self, hostname: &str) -> Self {
        self.rebuild(|api| api.hostname = hostname.to_owned())
    }

    fn rebuild(self, change: impl FnOnce(&mut Api)) -> Self {
        let mut api = Api {
            store: self.api.store.clone(),
            zone_admin: self.api.zone_admin.clone(),
            zone_times: Mutex::new(BTreeMap::new()),
            hostname: self.api.hostname.clone(),
            answered: watch::channel(0).0,
        };
        change(&mut api);
        Self { api: Arc::new(api) }
    }

    /// Binds `addr` and serves in the background.
    pub async fn start(self, addr: SocketAddr) -> Result<RestHandle, RestError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RestError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(RestError::LocalAddr)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let answered = self.api.answered.subscribe();
        let task = tokio::spawn(async move {
            // Dropping the sender (the handle) stops the server as well.
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = self.serve(listener, shutdown).await {
                tracing::error!(error = %e, "REST API stopped");
            }
        });
        Ok(RestHandle {
            local_addr,
            stop: Some(stop),
            task,
            answered,
        })
    }

    /// Serves on `listener` until `shutdown` resolves; open connections are then closed.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RestError> {
        let local_addr = listener.local_addr().map_err(RestError::LocalAddr)?;
        let api = self.api;
        let handler = move |req| {
            let api = api.clone();
            async move { api.handle(req, local_addr).await }
        };
        Server::new("REST API", listener).serve(handler, shutdown).await;
        Ok(())
    }
}

/// A running REST API; stops when [`shutdown`](Self::shutdown) is called or it is dropped.
#[derive(Debug)]
pub struct RestHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    answered: watch::Receiver<u64>,
}

impl RestHandle {
    /// How many requests the API has answered, changing with each: what a test waits on
    /// to know a client has read it, instead of sleeping.
    pub fn answered(&self) -> watch::Receiver<u64> {
        self.answered.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<addr>`, the base URL clients use.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting, closes open connections and waits for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for RestHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What the handlers share.
pub(crate) struct Api {
    store: Arc<dyn ResourceStore>,
    zone_admin: Option<Arc<dyn ZoneAdmin>>,
    zone_times: Mutex<BTreeMap<String, ZoneTimes>>,
    hostname: String,
    /// Requests answered, for [`RestHandle::answered`].
    answered: watch::Sender<u64>,
}

/// A JSON answer.
pub(crate) struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, value: &impl Serialize) -> Result<Self, ApiError> {
        let body = serde_json::to_vec(value)
            .map_err(|_| ApiError::new(500, "Could not write the response", "Internal Server Error"))?;
        Ok(Self { status, body })
    }
}

/// One request, decoded.
struct Call<'a> {
    method: &'a Method,
    path: &'a str,
    query: Query,
    host: String,
    body: Bytes,
}

impl Api {
    async fn handle(&self, req: Request<Incoming>, local_addr: SocketAddr) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = match read_body(&parts.headers, body).await {
            Ok(b) => b,
            Err(e) => return error_response(&e),
        };
        let call = Call {
            method: &parts.method,
            path: parts.uri.path(),
            query: Query::parse(parts.uri.query()),
            host: parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map_or_else(|| local_addr.to_string(), str::to_owned),
            body,
        };
        let response = match self.route(&call) {
            Ok(reply) => json_response(reply.status, reply.body),
            Err(e) => error_response(&e),
        };
        self.answered.send_modify(|n| *n += 1);
        response
    }

    fn route(&self, call: &Call<'_>) -> Result<Reply, ApiError> {
        let segments: Vec<String> = call
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(decode_path_segment)
            .collect();
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        let place = ListPlace {
            host: &call.host,
            path: call.path,
            query: &call.query,
        };
        let get = call.method == Method::GET;
        match s.as_slice() {
            [] if get => self.index(),
            ["_resources"] if get => self.resource_types(),
            ["config"] if get => self.config(),
            [] | ["_resources"] | ["config"] => Err(not_allowed()),
            ["zones" | "zone-insights", ..] if self.store.zone_records().is_some() => {
                self.zones_route(call, &s, &place)
            }
            ["meshes", mesh, path, rest @ ..] => {
                match self.by_path(path).filter(|t| t.info().scope == Scope::Mesh) {
                    Some(t) => self.item_route(call, t, Some(mesh), rest, &place),
                    None => Err(unknown_path(call.path)),
                }
            }
            [path, rest @ ..] => match self.by_path(path) {
                Some(t) if t.info().scope == Scope::Mesh => match rest {
                    [] if get => self.list(t, None, &place),
                    [] => Err(not_allowed()),
                    _ => Err(unknown_path(call.path)),
                },
                Some(t) => self.item_route(call, t, None, rest, &place),
                None => Err(unknown_path(call.path)),
            },
        }
    }

    fn item_route(
        &self,
        call: &Call<'_>,
        rtype: ResourceType,
        mesh: Option<&str>,
        rest: &[&str],
        place: &ListPlace<'_>,
    ) -> Result<Reply, ApiError> {
        match (call.method, rest) {
            (&Method::GET, []) => self.list(rtype, mesh, place),
            (&Method::GET, [name]) => self.get_one(rtype, mesh, name),
            (&Method::PUT, [name]) => self.put(rtype, mesh, name, &call.body),
            (&Method::DELETE, [name]) => self.delete(rtype, mesh, name),
            (_, [] | [_]) => Err(not_allowed()),
            _ => Err(unknown_path(call.path)),
        }
    }

    fn zones_route(&self, call: &Call<'_>, s: &[&str], place: &ListPlace<'_>) -> Result<Reply, ApiError> {
        let insight_type = ResourceType::from_name("ZoneInsight").expect("ZoneInsight is in the type table");
        match (call.method, s) {
            (&Method::GET, ["zones"]) => self.zone_list(ZoneView::Zone, place),
            (&Method::GET, ["zones", "_overview"]) => self.zone_list(ZoneView::Overview, place),
            (&Method::GET, ["zones", name]) => self.zone_get(ZoneView::Zone, name),
            (&Method::GET, ["zones", name, "_overview"]) => self.zone_get(ZoneView::Overview, name),
            (&Method::GET, ["zone-insights"]) => self.zone_list(ZoneView::Insight, place),
            (&Method::GET, ["zone-insights", name]) => self.zone_get(ZoneView::Insight, name),
            (&Method::PUT, ["zones", name]) => self.zone_put(name, &call.body),
            (&Method::DELETE, ["zones", name]) => self.zone_delete(name),
            (&Method::PUT | &Method::DELETE, ["zone-insights", _]) => {
                self.check_writable(insight_type)?;
                Err(not_allowed())
            }
            (_, ["zones" | "zone-insights"] | ["zones" | "zone-insights", _]) => Err(not_allowed()),
            _ => Err(unknown_path(call.path)),
        }
    }
}

impl Api {
    /// The type whose REST path is `path`, among the types this control plane's Kuma
    /// has: Kuma 3 serves no path of a type it removed.
    fn by_path(&self, path: &str) -> Option<ResourceType> {
        let line = self.store.line();
        ResourceType::all()
            .find(|t| !t.info().rest_path.is_empty() && t.info().rest_path == path)
            .filter(|t| line.has_type(t.name()))
    }
}

fn unknown_path(path: &str) -> ApiError {
    ApiError::new(404, "Not found", &format!("no endpoint at {path}"))
}

fn not_allowed() -> ApiError {
    ApiError::new(405, "Method not allowed", "Method not allowed")
}

async fn read_body(headers: &http::HeaderMap, body: Incoming) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            413,
            "Request body too large",
            &format!("the body exceeds {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(&format!(
            "could not read the request body: {e}"
        ))),
    }
}

fn json_response(status: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(e).unwrap_or_else(|_| b"{}".to_vec());
    json_response(e.status, body)
}
