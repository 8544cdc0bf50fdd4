//! The endpoints every resource type has (`pkg/api-server/resource_endpoints.go`): list,
//! get, create-or-update and delete, with Kuma's validation, origin rules and computed
//! labels, in the order Kuma applies them so the first error a user sees is Kuma's.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kuma_model::{
    CpRole, Environment, KumaLine, Resource, ResourceKey, ResourceType,
    resource::labels,
    types::{Scope, SpecEncoding, flags},
};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{
    Api, Reply,
    errors::{ApiError, Violations, key_field},
    paging::{ListRequest, Query, next_link},
    render::RestItem,
    validation,
};

const GLOBAL_READ_ONLY: &str = "On global control plane you can not modify dataplane resources with 'kumactl apply' or via the HTTP API. You can still use 'kumactl' or the HTTP API to modify them on the zone control plane.\n";
const ZONE_READ_ONLY: &str = "On zone control plane you can only modify zone resources with 'kumactl apply' or via the HTTP API. You can still use 'kumactl' or the HTTP API to modify the rest of the resource on the global control plane.\n";

/// Meta fields of the universal form; everything else of a proto-based body is spec.
const META_FIELDS: &[&str] = &[
    "type",
    "mesh",
    "name",
    "labels",
    "creationTime",
    "modificationTime",
    "kri",
];

/// A list page as Kuma prints it (`rest.ResourceList`).
#[derive(Serialize)]
pub(super) struct ListBody<T: Serialize> {
    pub total: usize,
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// What the request was, for building `next` links.
pub(super) struct ListPlace<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a Query,
}

/// A PUT body, read against the type named by the URL (as Kuma unmarshals it).
struct Body {
    rtype: String,
    name: String,
    mesh: String,
    labels: BTreeMap<String, String>,
    spec: Value,
}

impl Api {
    /// `GET /meshes/{mesh}/{path}` (one mesh) or `GET /{path}` (every mesh, or a
    /// global-scoped type).
    pub(super) fn list(
        &self,
        rtype: ResourceType,
        mesh: Option<&str>,
        place: &ListPlace<'_>,
    ) -> Result<Reply, ApiError> {
        let request = ListRequest::from_query(place.query)?;
        if let Some(mesh) = mesh {
            self.require_mesh(mesh)?;
        }
        let all: Vec<Resource> = self
            .store
            .list(Some(rtype))
            .into_iter()
            .filter(|r| mesh.is_none_or(|m| r.mesh.as_deref() == Some(m)))
            .collect();
        let page = request.page(all);
        Reply::json(
            200,
            &ListBody {
                total: page.total,
                items: page.items.iter().map(RestItem).collect(),
                next: page
                    .next_offset
                    .map(|o| next_link(place.host, place.path, place.query, o)),
            },
        )
    }

    pub(super) fn get_one(
        &self,
        rtype: ResourceType,
        mesh: Option<&str>,
        name: &str,
    ) -> Result<Reply, ApiError> {
        if let Some(mesh) = mesh {
            self.require_mesh(mesh)?;
        }
        match self.store.get(&key(rtype, mesh, name)) {
            Some(r) => Reply::json(200, &RestItem(&r)),
            None => Err(ApiError::not_found("Could not retrieve a resource")),
        }
    }

    /// Creates (201) or updates (200). Nothing is stored unless every check passes.
    pub(super) fn put(
        &self,
        rtype: ResourceType,
        mesh: Option<&str>,
        name: &str,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        self.check_writable(rtype)?;
        if let Some(mesh) = mesh {
            self.require_mesh(mesh)?;
        }
        let body = parse_body(rtype, body)?;
        let key = key(rtype, mesh, name);
        let existing = self.store.get(&key);
        let violations = self.validate(rtype, mesh.unwrap_or(""), name, &body);
        if !violations.is_empty() {
            return Err(ApiError::invalid("Could not process a resource", violations));
        }
        let new_labels = self.computed_labels(rtype, mesh, name, body.labels);
        let now = Timestamp::now();
        let resource = match existing {
            None => Resource {
                rtype,
                mesh: mesh.map(str::to_owned),
                name: name.to_owned(),
                labels: new_labels,
                spec: body.spec,
                status: None,
                creation_time: Some(now),
                modification_time: Some(now),
            },
            Some(current) => {
                let current_labels = self.computed_labels(rtype, mesh, name, current.labels.clone());
                let immutable = match self.store.line() {
                    KumaLine::V2 => {
                        immutable_label_violations(&IMMUTABLE_LABELS, &current_labels, &new_labels)
                    }
                    KumaLine::V3 => immutable_label_violations(
                        &crate::kuma_3::IMMUTABLE_LABELS,
                        &current_labels,
                        &new_labels,
                    ),
                };
                if !immutable.is_empty() {
                    let mut v = Violations::default();
                    v.nest("labels", immutable);
                    return Err(ApiError::invalid("Could not update a resource", v));
                }
                Resource {
                    labels: new_labels,
                    spec: body.spec,
                    creation_time: current.creation_time.or(Some(now)),
                    modification_time: Some(now),
                    ..current
                }
            }
        };
        // The store's answer, not the earlier read, decides: a concurrent create makes
        // this an update.
        let status = if self.store.upsert(resource).is_some() {
            200
        } else {
            201
        };
        Reply::json(status, &serde_json::json!({}))
    }

    pub(super) fn delete(
        &self,
        rtype: ResourceType,
        mesh: Option<&str>,
        name: &str,
    ) -> Result<Reply, ApiError> {
        const TITLE: &str = "Could not delete a resource";
        self.check_writable(rtype)?;
        if let Some(mesh) = mesh {
            self.require_mesh(mesh)?;
        }
        let key = key(rtype, mesh, name);
        let existing = self.store.get(&key).ok_or_else(|| ApiError::not_found(TITLE))?;
        let violations = self.origin_violations(rtype, &existing.labels);
        if !violations.is_empty() {
            return Err(ApiError::invalid(TITLE, violations));
        }
        match self.store.delete(&key) {
            Some(_) => Reply::json(200, &serde_json::json!({})),
            None => Err(ApiError::not_found(TITLE)),
        }
    }

    /// Kuma looks the mesh up first: a list or write in a mesh that does not exist is 404.
    fn require_mesh(&self, mesh: &str) -> Result<(), ApiError> {
        let mesh_type = ResourceType::from_name("Mesh").expect("Mesh is in the type table");
        match self.store.get(&key(mesh_type, None, mesh)) {
            Some(_) => Ok(()),
            None => Err(ApiError::not_found("Failed to retrieve Mesh")),
        }
    }

    /// `ResourceTypeDescriptor.IsReadOnly`: insights are system-managed; a global writes
    /// only what it provides, a federated zone only what zones provide.
    pub(super) fn check_writable(&self, rtype: ResourceType) -> Result<(), ApiError> {
        let info = rtype.info();
        let (provides, message) = match self.store.role() {
            CpRole::Global => (flags::PROVIDED_BY_GLOBAL, GLOBAL_READ_ONLY),
            CpRole::Zone(_) => (flags::PROVIDED_BY_ZONE, ZONE_READ_ONLY),
        };
        if info.name.ends_with("Insight") || info.kds_flags & provides == 0 {
            return Err(ApiError::method_not_allowed(message));
        }
        Ok(())
    }

    /// `validateResourceRequest`.
    fn validate(&self, rtype: ResourceType, mesh: &str, name: &str, body: &Body) -> Violations {
        let mut v = Violations::default();
        if name != body.name {
            v.add("name", "name from the URL has to be the same as in body");
        }
        if let CpRole::Zone(zone) = self.store.role()
            && format!("{zone}.{name}").len() >= 253
        {
            v.add("name", "the length of the name must be shorter");
        }
        if rtype.name() != body.rtype {
            v.add("type", "type from the URL has to be the same as in body");
        }
        let scope = rtype.info().scope;
        if scope == Scope::Mesh && mesh != body.mesh {
            v.add("mesh", "mesh from the URL has to be the same as in body");
        }
        v.nest("labels", self.label_violations(rtype, body));
        v.nest("", validation::meta(&body.name, &body.mesh, scope));
        v
    }

    /// `validateLabels`.
    fn label_violations(&self, rtype: ResourceType, body: &Body) -> Violations {
        let mut v = Violations::default();
        let origin = origin_of(&body.labels);
        if let Some(o) = origin
            && o != labels::ORIGIN_GLOBAL
            && o != labels::ORIGIN_ZONE
        {
            v.add(
                key_field(labels::ORIGIN),
                format!("unknown resource origin {}", go_quote(o)),
            );
        }
        v.nest("", self.origin_violations(rtype, &body.labels));
        if let CpRole::Zone(zone) = self.store.role()
            && origin != Some(labels::ORIGIN_GLOBAL)
        {
            if body.labels.get(labels::ZONE).is_some_and(|z| z != &zone) {
                v.add(
                    key_field(labels::ZONE),
                    format!("{} label should have {zone} value", labels::ZONE),
                );
            }
            if body.labels.get(labels::MESH).is_some_and(|m| m != &body.mesh) {
                v.add(
                    key_field(labels::MESH),
                    format!("{} label must not differ from mesh set on resource", labels::MESH),
                );
            }
        }
        for (k, value) in &body.labels {
            for msg in validation::label_key(k)
                .into_iter()
                .chain(validation::label_value(value))
            {
                v.add(key_field(k), msg);
            }
        }
        v
    }

    /// `validateOriginForWrite`: the global accepts no foreign origin; a federated zone
    /// writes (and deletes) only its own Go-struct resources, so global copies are
    /// read-only there.
    pub(super) fn origin_violations(
        &self,
        rtype: ResourceType,
        labels: &BTreeMap<String, String>,
    ) -> Violations {
        let mut v = Violations::default();
        let origin = origin_of(labels);
        match self.store.role() {
            CpRole::Global => {
                if origin.is_some_and(|o| o != labels::ORIGIN_GLOBAL) {
                    v.add(
                        key_field(labels::ORIGIN),
                        format!("the origin label must be set to '{}'", labels::ORIGIN_GLOBAL),
                    );
                }
            }
            CpRole::Zone(_) => {
                if rtype.info().plugin_originated && origin != Some(labels::ORIGIN_ZONE) {
                    v.add(
                        key_field(labels::ORIGIN),
                        format!("the origin label must be set to '{}'", labels::ORIGIN_ZONE),
                    );
                }
            }
        }
        v
    }

    /// `resource_labels.Compute` for the universal REST path: the mesh label, and on a
    /// zone the origin, zone and environment of what it provides (Kuma 3: [`crate::kuma_3`]).
    fn computed_labels(
        &self,
        rtype: ResourceType,
        mesh: Option<&str>,
        name: &str,
        mut out: BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        if self.store.line() == KumaLine::V3 {
            let role = self.store.role();
            crate::kuma_3::compute_labels(&mut out, rtype, mesh, name, &role, self.store.environment());
            return out;
        }
        let info = rtype.info();
        if info.scope == Scope::Mesh {
            out.entry(labels::MESH.to_owned())
                .or_insert_with(|| mesh.unwrap_or("default").to_owned());
        }
        if let CpRole::Zone(zone) = self.store.role()
            && info.kds_flags & flags::PROVIDED_BY_ZONE != 0
        {
            out.entry(labels::ORIGIN.to_owned())
                .or_insert_with(|| labels::ORIGIN_ZONE.to_owned());
            if out.get(labels::ORIGIN).map(String::as_str) != Some(labels::ORIGIN_GLOBAL) {
                out.entry(labels::ZONE.to_owned()).or_insert(zone);
                let env = match self.store.environment() {
                    Environment::Universal => "universal",
                    Environment::Kubernetes { .. } => "kubernetes",
                };
                out.entry(labels::ENV.to_owned())
                    .or_insert_with(|| env.to_owned());
            }
        }
        out
    }
}

fn key(rtype: ResourceType, mesh: Option<&str>, name: &str) -> ResourceKey {
    ResourceKey {
        rtype,
        mesh: mesh.map(str::to_owned),
        name: name.to_owned(),
    }
}

fn origin_of(labels: &BTreeMap<String, String>) -> Option<&str> {
    labels
        .get(labels::ORIGIN)
        .map(String::as_str)
        .filter(|o| !o.is_empty())
}

/// The labels Kuma 2.x keeps from changing on an update.
const IMMUTABLE_LABELS: [&str; 3] = [labels::ORIGIN, labels::ZONE, labels::DISPLAY_NAME];

/// `validateImmutableLabels` on the computed labels before and after.
fn immutable_label_violations(
    immutable: &[&str],
    current: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Violations {
    let mut v = Violations::default();
    for &label in immutable {
        match (current.get(label), new.get(label)) {
            (Some(was), None) => v.add(
                key_field(label),
                format!("is immutable, cannot be removed (was {})", go_quote(was)),
            ),
            (Some(was), Some(now)) if was != now => v.add(
                key_field(label),
                format!(
                    "is immutable, cannot be changed from {} to {}",
                    go_quote(was),
                    go_quote(now)
                ),
            ),
            _ => {}
        }
    }
    v
}

/// Go's `%q` for the strings Kuma quotes (JSON quoting agrees on printable text).
pub(super) fn go_quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Reads a PUT body as Kuma's unmarshaller does for the URL's type: a JSON object whose
/// meta fields are strings, labels a string map, and the spec under `spec` (Go-struct
/// types) or at the top level (proto-based types). Mismatches with the URL are left to
/// validation, so the user sees every one at once.
fn parse_body(rtype: ResourceType, bytes: &[u8]) -> Result<Body, ApiError> {
    let invalid =
        |reason: String| ApiError::bad_request(&format!("invalid {rtype} object: {}", go_quote(&reason)));
    let value: Value = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let Value::Object(mut map) = value else {
        return Err(invalid(format!(
            "expected a JSON object, found {}",
            kind_of(&value)
        )));
    };
    let string = |map: &Map<String, Value>, field: &str| match map.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(invalid(format!(
            "`{field}` must be a string, found {}",
            kind_of(other)
        ))),
    };
    let rtype_name = string(&map, "type")?;
    let name = string(&map, "name")?;
    let mesh = string(&map, "mesh")?;
    let labels = match map.get("labels") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(invalid(format!(
                    "label `{k}` must be a string, found {}",
                    kind_of(other)
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(invalid(format!(
                "`labels` must be an object, found {}",
                kind_of(other)
            )));
        }
    };
    let spec = match rtype.info().spec_encoding {
        SpecEncoding::Json => match map.remove("spec") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(spec @ Value::Object(_)) => spec,
            Some(other) => {
                return Err(invalid(format!(
                    "`spec` must be an object, found {}",
                    kind_of(&other)
                )));
            }
        },
        SpecEncoding::Proto(_) => {
            if map.contains_key("spec") {
                return Err(invalid(format!(
                    "unknown field \"spec\": {rtype} is proto-based, its spec fields sit at the top level"
                )));
            }
            map.retain(|k, _| !META_FIELDS.contains(&k.as_str()));
            Value::Object(map)
        }
    };
    Ok(Body {
        rtype: rtype_name,
        name,
        mesh,
        labels,
        spec,
    })
}

pub(super) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
