//! The checks every reader shares: typed fields, labels, timestamps and mesh scope.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Outcome;
use crate::{ResourceType, types::Scope};

/// How a value is named in messages ("found a sequence").
pub(super) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// `key` as a string; absent, null and empty are all `None`. `shown` names it in messages.
pub(super) fn optional_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    shown: &str,
) -> Result<Option<&'a str>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("`{shown}` must be a string, found {}", kind_of(other))),
    }
}

/// `key` as a non-empty string; `shown` is how the field is named in messages.
pub(super) fn required_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    shown: &str,
) -> Result<&'a str, String> {
    match map.get(key) {
        None | Some(Value::Null) => Err(format!("missing `{shown}`")),
        Some(Value::String(s)) if s.is_empty() => Err(format!("empty `{shown}`")),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("`{shown}` must be a string, found {}", kind_of(other))),
    }
}

/// The longest name Kuma accepts, as Kubernetes: a DNS subdomain's 253 characters.
pub(super) const MAX_NAME_CHARS: usize = 253;
/// The longest Kubernetes namespace: a DNS label's 63 characters.
pub(super) const MAX_NAMESPACE_CHARS: usize = 63;

/// The longest core name of `rtype`: a namespaced Kubernetes type's is
/// `<metadata.name>.<namespace>`, and a Kubernetes control plane's REST API and kumactl
/// show it so.
pub(super) fn max_name_chars(rtype: ResourceType) -> usize {
    if rtype.info().k8s_namespaced() {
        MAX_NAME_CHARS + 1 + MAX_NAMESPACE_CHARS
    } else {
        MAX_NAME_CHARS
    }
}

/// A resource's name: non-empty and no longer than `max` characters. A longer one cannot
/// be on any control plane, so the input is not what it claims to be.
pub(super) fn name<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    shown: &str,
    max: usize,
) -> Result<&'a str, String> {
    within(required_str(map, key, shown)?, shown, max)
}

/// `value`, unless it is longer than `max` characters, which Kuma never allows.
pub(super) fn within<'a>(value: &'a str, shown: &str, max: usize) -> Result<&'a str, String> {
    let chars = value.chars().count();
    if chars > max {
        return Err(format!(
            "`{shown}` is {chars} characters long, more than the {max} Kuma allows"
        ));
    }
    Ok(value)
}

/// A mapping of strings (labels, annotations); absent or null is empty.
pub(super) fn string_map(value: Option<&Value>, shown: &str) -> Result<BTreeMap<String, String>, String> {
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!(
                    "`{shown}` value of `{k}` must be a string, found {}",
                    kind_of(other)
                )),
            })
            .collect(),
        Some(other) => Err(format!("`{shown}` must be a mapping, found {}", kind_of(other))),
    }
}

/// A spec or status: a mapping, with absent or null read as empty.
pub(super) fn mapping(value: Option<Value>, shown: &str) -> Result<Value, String> {
    match value {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(other) => Err(format!("`{shown}` must be a mapping, found {}", kind_of(&other))),
    }
}

/// `0001-01-01T00:00:00Z`, Go's zero `time.Time`, in Unix seconds.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// An RFC 3339 timestamp with an offset (`2024-01-08T17:25:45Z`, `...+02:00`).
pub(super) fn timestamp(
    map: &Map<String, Value>,
    key: &str,
    shown: &str,
) -> Result<Option<jiff::Timestamp>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s
            .parse::<jiff::Timestamp>()
            // Go prints an unset time as year 1; Kuma's REST API shows it for resources
            // written without times. It means "unknown", not a date.
            .map(|t| (t.as_second() > GO_ZERO_TIME_SECONDS).then_some(t))
            .map_err(|_| format!("`{shown}` is not an RFC 3339 timestamp with an offset: `{s}`")),
        Some(other) => Err(format!(
            "`{shown}` must be a timestamp string, found {}",
            kind_of(other)
        )),
    }
}

/// The type named `name`, or the outcome that reports it unknown.
pub(super) fn known_type(name: &str) -> Result<ResourceType, Outcome> {
    ResourceType::from_name(name).ok_or_else(|| Outcome::Unknown(unknown_type(name, "")))
}

/// "unknown type `Foo`", with a hint when the user spelled a known type another way.
pub(super) fn unknown_type(name: &str, context: &str) -> String {
    let hint = match ResourceType::parse(name) {
        Some(t) => format!(" (did you mean `{t}`?)"),
        None => String::new(),
    };
    format!("unknown type `{name}`{context}{hint}")
}

/// Applies the scope rule: a mesh-scoped resource needs a mesh; a global-scoped one has
/// none, and naming one is an error rather than silently dropped (a `mesh:` on a Mesh
/// or a Zone means the document is not what its author thinks).
pub(super) fn scoped_mesh(
    rtype: ResourceType,
    name: &str,
    mesh: Option<&str>,
) -> Result<Option<String>, String> {
    match (rtype.info().scope, mesh) {
        (Scope::Mesh, Some(m)) => Ok(Some(m.to_owned())),
        (Scope::Mesh, None) => Err(format!("{rtype} `{name}` is mesh-scoped but has no `mesh`")),
        (Scope::Global, None) => Ok(None),
        (Scope::Global, Some(m)) => Err(format!("{rtype} `{name}` is global-scoped but has `mesh: {m}`")),
    }
}
