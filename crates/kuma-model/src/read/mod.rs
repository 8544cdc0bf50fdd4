//! Readers: the documents users have in hand, turned into [`Resource`]s.
//!
//! The format is detected per document, so one stream may mix them:
//! - Kuma's universal form (`kumactl get <type> <name> -o yaml|json`,
//!   `kumactl export --format=universal`, one REST item): `universal`.
//! - Lists of that form (`kumactl get <types> -o yaml`, a REST list page
//!   `{total, items, next}`): `rest`.
//! - Kubernetes objects and lists (`kubectl get ... -o yaml`, `kumactl export
//!   --format=kubernetes`), mapped as Kuma's Kubernetes store maps them: `kubernetes`.
//!
//! Reading is all or nothing: the first bad document or list item fails the whole input.
//! Pure: the caller reads files and passes their text.
//!
//! Rules every format shares: a mesh-scoped resource must end up with a mesh and a
//! global-scoped one without. The universal form must say so itself (a `mesh:` on a Mesh
//! or Zone is an error, not silently dropped); on Kubernetes the mesh comes from where
//! Kuma takes it (label, default `default`, or the `mesh` field of old types) and is
//! ignored for global-scoped types, as Kuma ignores it. Times are RFC 3339 with an offset.
//!
//! # Layout
//! - `documents`: splitting a stream at `---` and parsing each document (YAML or JSON).
//! - `universal`, `rest`, `kubernetes`: one reader per format.
//! - `fields`: the checks every reader shares (names, labels, times, mesh scope).

mod documents;
mod fields;
mod kubernetes;
mod rest;
mod universal;

use std::collections::{HashMap, hash_map::Entry as Slot};

use serde_json::{Map, Value};

use crate::{Fingerprint, Resource, ResourceKey, fingerprint};

/// How to read an input.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Skip unknown types with a warning instead of failing the whole input.
    pub skip_unknown_types: bool,
    /// The input is one page of a list whose caller follows the paging itself (the REST
    /// source). Otherwise a page that says more follows (`next`, a `total` above its
    /// items, a Kubernetes `continue`) is an error: read as a whole control plane, it
    /// would report every resource of the later pages missing.
    pub caller_follows_pages: bool,
}

/// What a reader produced: every resource, or an error; never half of them silently.
#[derive(Debug, Default)]
pub struct Loaded {
    /// In the order of the input.
    pub resources: Vec<Resource>,
    /// Documents skipped on purpose (unknown types with `skip_unknown_types`), one line each.
    pub warnings: Vec<String>,
}

/// Input that could not be read, located precisely.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: document {document} (line {line}): {reason}")]
pub struct ReadError {
    /// The file name (or other label) the caller gave.
    pub source_name: String,
    /// 1-based index of the document in a multi-document stream, counting non-empty
    /// documents only (a leading `# Product: ...` comment is not a document).
    pub document: usize,
    /// 1-based line where the document's content starts.
    pub line: usize,
    /// What is wrong; starts with `item N: ` when one item of a list is at fault.
    pub reason: String,
}

/// Reads every document in `text`, detecting its format.
pub fn read_str(source_name: &str, text: &str, opts: &ReadOptions) -> Result<Loaded, ReadError> {
    let mut resources = Vec::new();
    let warnings = read_each(source_name, text, opts, &mut |r| resources.push(r))?;
    Ok(Loaded { resources, warnings })
}

/// Like [`read_str`], handing each resource to `each` as soon as its document is read,
/// and returning the warnings. A caller that keeps resources in a compact form of its
/// own (the engine does) then never holds the whole input parsed at once: a parsed
/// spec is many times its text. `each` may already have been given resources when a
/// later document fails; the error says the input as a whole is not to be used.
pub fn read_each(
    source_name: &str,
    text: &str,
    opts: &ReadOptions,
    each: &mut dyn FnMut(Resource),
) -> Result<Vec<String>, ReadError> {
    let mut warnings = Vec::new();
    let mut seen = Seen::default();
    let mut document = 0;
    for piece in documents::split(text).iter().filter(|p| !p.is_empty()) {
        let place = |document| Place {
            source_name,
            document,
            line: piece.content_line,
        };
        let values = documents::parse(piece).map_err(|reason| place(document + 1).error(None, reason))?;
        for value in values {
            document += 1;
            read_document(&place(document), value, opts, &mut warnings, &mut seen, each)?;
        }
    }
    Ok(warnings)
}

/// [`read_each`] of one document already parsed, such as an object a Kubernetes watch
/// decoded: printing it to text only to parse it again would cost a copy of it, and the
/// time. Errors and warnings name it as document 1, line 1 of `source_name`.
pub fn read_value_each(
    source_name: &str,
    value: Value,
    opts: &ReadOptions,
    each: &mut dyn FnMut(Resource),
) -> Result<Vec<String>, ReadError> {
    let mut warnings = Vec::new();
    let place = Place {
        source_name,
        document: 1,
        line: 1,
    };
    read_document(&place, value, opts, &mut warnings, &mut Seen::default(), each)?;
    Ok(warnings)
}

/// What the input said of each resource read so far, by identity, to catch one given
/// twice: digests, not the resource, so that reading holds no parsed spec past its
/// document.
#[derive(Default)]
struct Seen {
    at: HashMap<ResourceKey, Witness>,
}

/// One resource as first read: its contents' digests and where it was written.
struct Witness {
    spec: Fingerprint,
    labels: u128,
    position: String,
}

/// The labels' exact digest: equal labels, equal digests (and different ones differ but
/// with a chance of 2^-128).
pub fn labels_digest(labels: &std::collections::BTreeMap<String, String>) -> u128 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for (key, value) in labels {
        // Lengths first: ("ab", "c") and ("a", "bc") must not hash alike.
        hasher.update(&(key.len() as u64).to_le_bytes());
        hasher.update(key.as_bytes());
        hasher.update(&(value.len() as u64).to_le_bytes());
        hasher.update(value.as_bytes());
    }
    hasher.digest128()
}

impl Seen {
    /// Hands `r`, read at `place` (and `item`), on unless the input already held it. The
    /// same resource twice (an export concatenated with a `kumactl get`) is read once;
    /// twice with different contents, neither can be taken as the control plane's.
    fn add(
        &mut self,
        place: &Place<'_>,
        item: Option<usize>,
        r: Resource,
        each: &mut dyn FnMut(Resource),
    ) -> Result<(), ReadError> {
        let (spec, labels) = (fingerprint(&r.spec), labels_digest(&r.labels));
        match self.at.entry(r.key()) {
            Slot::Vacant(slot) => {
                slot.insert(Witness {
                    spec,
                    labels,
                    position: place.position(item),
                });
                each(r);
                Ok(())
            }
            Slot::Occupied(slot) => {
                let first = slot.get();
                if first.spec == spec && first.labels == labels {
                    return Ok(());
                }
                let mesh = r.mesh.as_deref().map(|m| format!("{m}/")).unwrap_or_default();
                Err(place.error(
                    item,
                    format!(
                        "{} {mesh}{} is also {}, with a different spec or labels: \
                         one input must say one thing",
                        r.rtype, r.name, first.position
                    ),
                ))
            }
        }
    }
}

/// Where a document sits in the input, for errors and warnings.
struct Place<'a> {
    source_name: &'a str,
    document: usize,
    line: usize,
}

impl Place<'_> {
    fn error(&self, item: Option<usize>, reason: String) -> ReadError {
        let reason = match item {
            Some(i) => format!("item {i}: {reason}"),
            None => reason,
        };
        ReadError {
            source_name: self.source_name.to_owned(),
            document: self.document,
            line: self.line,
            reason,
        }
    }

    /// "document 3 (line 12)", "document 1 (line 1), item 4".
    fn position(&self, item: Option<usize>) -> String {
        let item = item.map(|i| format!(", item {i}")).unwrap_or_default();
        format!("document {} (line {}){item}", self.document, self.line)
    }

    fn warning(&self, item: Option<usize>, what: &str) -> String {
        let item = item.map(|i| format!("item {i}: ")).unwrap_or_default();
        format!(
            "{}: document {} (line {}): {item}skipped {what}",
            self.source_name, self.document, self.line
        )
    }
}

/// What one document or list item turned into.
enum Outcome {
    Resource(Box<Resource>),
    /// A type kuma-sync does not know, described for the user (e.g. "unknown type `Foo`").
    Unknown(String),
}

/// One document or list item and what became of it; `item` is its 1-based list index.
struct Entry {
    item: Option<usize>,
    outcome: Result<Outcome, String>,
}

impl Entry {
    fn single(outcome: Result<Outcome, String>) -> Vec<Entry> {
        vec![Entry { item: None, outcome }]
    }
}

fn read_document(
    place: &Place<'_>,
    value: Value,
    opts: &ReadOptions,
    warnings: &mut Vec<String>,
    seen: &mut Seen,
    each: &mut dyn FnMut(Resource),
) -> Result<(), ReadError> {
    let Value::Object(map) = value else {
        return Err(place.error(
            None,
            format!("document is not a mapping (found {})", fields::kind_of(&value)),
        ));
    };
    let entries = match detect(&map) {
        Format::Kubernetes => kubernetes::read(map, opts.caller_follows_pages),
        Format::List => rest::read(map, opts.caller_follows_pages),
        Format::Universal => Ok(Entry::single(universal::read(map))),
    }
    .map_err(|reason| place.error(None, reason))?;
    for Entry { item, outcome } in entries {
        match outcome.map_err(|reason| place.error(item, reason))? {
            Outcome::Resource(r) => seen.add(place, item, *r, each)?,
            Outcome::Unknown(what) if opts.skip_unknown_types => warnings.push(place.warning(item, &what)),
            Outcome::Unknown(what) => return Err(place.error(item, what)),
        }
    }
    Ok(())
}

enum Format {
    Kubernetes,
    List,
    Universal,
}

/// Kubernetes objects have `apiVersion` and `kind`; Kuma's form has `type` and never
/// `kind` at the top level (no proto-based spec has such a field).
fn detect(map: &Map<String, Value>) -> Format {
    if map.contains_key("apiVersion") || (map.contains_key("kind") && !map.contains_key("type")) {
        Format::Kubernetes
    } else if map.contains_key("items") && !map.contains_key("type") {
        Format::List
    } else {
        Format::Universal
    }
}
