//! Kubernetes objects and lists, mapped to Kuma's core model the way Kuma's Kubernetes
//! stores read them (`pkg/plugins/resources/k8s/store.go`, `pkg/plugins/secrets/k8s/store.go`).
//!
//! - Core name: `<metadata.name>.<metadata.namespace>` for namespaced custom resources,
//!   the plain name for cluster-scoped ones and for Secrets.
//! - Mesh: the `kuma.io/mesh` label, default `default`, for Go-struct types and Secrets;
//!   the top-level `mesh` field for proto-based types. Global-scoped types have none,
//!   whatever the object says (Kuma ignores it too).
//! - Labels: the object's labels, plus the annotations `kuma.io/display-name` (default
//!   `metadata.name`), `k8s.kuma.io/service-account` and `kuma.io/workload`. Nothing
//!   else is added: `k8s.kuma.io/namespace` is a label Kuma writes when it creates the
//!   object, so an object that Kuma never stored (a hand-written manifest) lacks it.
//! - Times: `creationTimestamp` is both creation and modification time, as in Kuma.

use serde_json::{Map, Value};

use super::{Entry, Outcome, fields};
use crate::{
    Resource, ResourceType,
    resource::labels,
    types::{K8sKind, SpecEncoding},
};

const KUMA_API_VERSION: &str = "kuma.io/v1alpha1";
/// Annotations Kuma's store reads back as labels (`KubernetesMetaAdapter.GetLabels`).
const ANNOTATION_LABELS: &[&str] = &[
    labels::DISPLAY_NAME,
    "k8s.kuma.io/service-account",
    "kuma.io/workload",
];

/// Reads one object, or every item of a `List` / `<Kind>List`; unless
/// `caller_follows_pages`, a list chunk with a `metadata.continue` token is refused.
pub(super) fn read(mut map: Map<String, Value>, caller_follows_pages: bool) -> Result<Vec<Entry>, String> {
    let kind = fields::required_str(&map, "kind", "kind")?;
    if !kind.ends_with("List") {
        return Ok(Entry::single(object(&map, None)));
    }
    if !caller_follows_pages
        && let Some(Value::Object(meta)) = map.get("metadata")
        && fields::optional_str(meta, "continue", "metadata.continue")?.is_some()
    {
        // `kubectl get --chunk-size` output joins its chunks; a raw API chunk does not.
        return Err(
            "a Kubernetes list chunk with a `metadata.continue` token: it is one \
            chunk, not the whole list; use `kubectl get -o yaml`, which reads every chunk"
                .to_owned(),
        );
    }
    // `kubectl get --raw` lists of one kind leave `kind` and `apiVersion` off their items.
    let defaults = match kind.strip_suffix("List") {
        Some(item_kind) if !item_kind.is_empty() => Some((
            fields::required_str(&map, "apiVersion", "apiVersion")?.to_owned(),
            item_kind.to_owned(),
        )),
        _ => None,
    };
    let items = match map.remove("items") {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => Vec::new(),
        Some(other) => {
            return Err(format!(
                "`items` must be a sequence, found {}",
                fields::kind_of(&other)
            ));
        }
    };
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, item)| Entry {
            item: Some(i + 1),
            outcome: match item {
                Value::Object(m) => object(&m, defaults.as_ref()),
                other => Err(format!("not a mapping (found {})", fields::kind_of(&other))),
            },
        })
        .collect())
}

/// One object; `defaults` are the apiVersion and kind of a typed list's items.
fn object(map: &Map<String, Value>, defaults: Option<&(String, String)>) -> Result<Outcome, String> {
    let (api_version, kind) = match (map.contains_key("kind"), defaults) {
        (false, Some((api_version, kind))) => (api_version.as_str(), kind.as_str()),
        _ => (
            fields::required_str(map, "apiVersion", "apiVersion")?,
            fields::required_str(map, "kind", "kind")?,
        ),
    };
    match (api_version, kind) {
        (KUMA_API_VERSION, _) => match ResourceType::from_name(kind) {
            Some(rtype) if matches!(rtype.info().k8s, K8sKind::Crd { .. }) => custom_resource(rtype, map),
            _ => Ok(Outcome::Unknown(fields::unknown_type(
                kind,
                &format!(" ({api_version})"),
            ))),
        },
        (v, _) if v.starts_with("kuma.io/") => Err(format!(
            "unsupported apiVersion `{v}`: Kuma's resources are `{KUMA_API_VERSION}`"
        )),
        ("v1", "Secret") => secret(map),
        _ => Ok(Outcome::Unknown(format!("unknown type `{kind}` ({api_version})"))),
    }
}

fn custom_resource(rtype: ResourceType, map: &Map<String, Value>) -> Result<Outcome, String> {
    let info = rtype.info();
    let meta = Meta::read(map)?;
    let name = if info.k8s_namespaced() {
        let ns = meta.namespace.ok_or_else(|| {
            format!("missing `metadata.namespace`: {rtype} is a namespaced Kubernetes resource")
        })?;
        format!("{}.{ns}", meta.name)
    } else {
        meta.name.to_owned()
    };
    let mesh = match info.spec_encoding {
        SpecEncoding::Json => meta.mesh_label(),
        SpecEncoding::Proto(_) => fields::optional_str(map, "mesh", "mesh")?,
    };
    let mesh = if info.is_mesh_scoped() {
        fields::scoped_mesh(rtype, &name, mesh)?
    } else {
        None
    };
    let mut r = Resource::new(
        rtype,
        mesh.as_deref(),
        &name,
        fields::mapping(map.get("spec").cloned(), "spec")?,
    );
    if info.has_status {
        r.status = match map.get("status") {
            None | Some(Value::Null) => None,
            status => Some(fields::mapping(status.cloned(), "status")?),
        };
    }
    Ok(Outcome::Resource(Box::new(meta.apply(r))))
}

/// A core `v1` Secret: a Kuma Secret or GlobalSecret by its `type`, anything else unknown.
/// Kuma keeps the bytes of `data.value` (`pkg/plugins/secrets/k8s/store.go`), and its
/// universal form shows them as the base64 string `data` (a `BytesValue`).
fn secret(map: &Map<String, Value>) -> Result<Outcome, String> {
    let secret_type = fields::optional_str(map, "type", "type")?.unwrap_or("Opaque");
    let Some(rtype) = ResourceType::all()
        .find(|t| matches!(t.info().k8s, K8sKind::Secret { secret_type: s } if s == secret_type))
    else {
        return Ok(Outcome::Unknown(format!(
            "unknown type `Secret` (v1, type `{secret_type}`)"
        )));
    };
    let meta = Meta::read(map)?;
    let mesh = match rtype.info().is_mesh_scoped() {
        true => fields::scoped_mesh(rtype, meta.name, meta.mesh_label())?,
        false => None,
    };
    let value = match (map.get("stringData"), map.get("data")) {
        (Some(Value::Object(strings)), _) if strings.contains_key("value") => {
            let plain = fields::required_str(strings, "value", "stringData.value")?;
            Some(base64(plain.as_bytes()))
        }
        (_, Some(Value::Object(data))) => Some(
            fields::optional_str(data, "value", "data.value")?
                .unwrap_or_default()
                .to_owned(),
        ),
        (_, None | Some(Value::Null)) => None,
        (_, Some(other)) => {
            return Err(format!(
                "`data` must be a mapping, found {}",
                fields::kind_of(other)
            ));
        }
    };
    let spec = match value {
        Some(v) => serde_json::json!({ "data": v }),
        None => Value::Object(Map::new()),
    };
    let r = Resource::new(rtype, mesh.as_deref(), meta.name, spec);
    Ok(Outcome::Resource(Box::new(meta.apply(r))))
}

/// The parts of `metadata` Kuma's stores read.
struct Meta<'a> {
    name: &'a str,
    namespace: Option<&'a str>,
    labels: std::collections::BTreeMap<String, String>,
    creation_time: Option<jiff::Timestamp>,
}

impl<'a> Meta<'a> {
    fn read(map: &'a Map<String, Value>) -> Result<Self, String> {
        let meta = match map.get("metadata") {
            Some(Value::Object(m)) => m,
            None | Some(Value::Null) => return Err("missing `metadata`".to_owned()),
            Some(other) => {
                return Err(format!(
                    "`metadata` must be a mapping, found {}",
                    fields::kind_of(other)
                ));
            }
        };
        let name = fields::name(meta, "name", "metadata.name", fields::MAX_NAME_CHARS)?;
        let mut labels = fields::string_map(meta.get("labels"), "metadata.labels")?;
        let annotations = fields::string_map(meta.get("annotations"), "metadata.annotations")?;
        for key in ANNOTATION_LABELS {
            if let Some(v) = annotations.get(*key) {
                labels.insert((*key).to_owned(), v.clone());
            }
        }
        labels
            .entry(labels::DISPLAY_NAME.to_owned())
            .or_insert_with(|| name.to_owned());
        Ok(Meta {
            name,
            namespace: fields::optional_str(meta, "namespace", "metadata.namespace")?
                .map(|ns| fields::within(ns, "metadata.namespace", fields::MAX_NAMESPACE_CHARS))
                .transpose()?,
            labels,
            creation_time: fields::timestamp(meta, "creationTimestamp", "metadata.creationTimestamp")?,
        })
    }

    /// The mesh of Go-struct types and Secrets: the `kuma.io/mesh` label, `default`
    /// without one; an empty label names no mesh.
    fn mesh_label(&self) -> Option<&str> {
        match self.labels.get(labels::MESH) {
            None => Some("default"),
            Some(m) if m.is_empty() => None,
            Some(m) => Some(m),
        }
    }

    fn apply(self, mut r: Resource) -> Resource {
        r.labels = self.labels;
        r.creation_time = self.creation_time;
        r.modification_time = self.creation_time;
        r
    }
}

/// Standard base64 with padding, for `stringData`, which Kubernetes itself would encode.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
    }
}
