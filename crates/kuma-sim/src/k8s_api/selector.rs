//! `labelSelector` and `fieldSelector` as the apiserver parses them
//! (`k8s.io/apimachinery/pkg/labels/selector.go`, `.../fields/selector.go`). Custom
//! resources support only the `metadata.name` and `metadata.namespace` fields.

use std::collections::BTreeMap;

use serde_json::Value;

use super::object::object_labels;

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_terms(s)? {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(Self::requirement(term)?);
        }
        Ok(Self(requirements))
    }

    fn requirement(term: &str) -> Result<Requirement, String> {
        if let Some(key) = term.strip_prefix('!') {
            return Ok(Requirement::DoesNotExist(label_key(key.trim())?));
        }
        for (op, negated) in [(" notin ", true), (" in ", false)] {
            if let Some((key, values)) = term.split_once(op) {
                let values = values
                    .trim()
                    .strip_prefix('(')
                    .and_then(|v| v.strip_suffix(')'))
                    .ok_or_else(|| format!("values of `{term}` must be in parentheses"))?;
                let values: Vec<String> = values.split(',').map(|v| v.trim().to_owned()).collect();
                let key = label_key(key.trim())?;
                return Ok(if negated {
                    Requirement::NotIn(key, values)
                } else {
                    Requirement::In(key, values)
                });
            }
        }
        for (op, negated) in [("!=", true), ("==", false), ("=", false)] {
            if let Some((key, value)) = term.split_once(op) {
                let key = label_key(key.trim())?;
                let value = value.trim().to_owned();
                return Ok(if negated {
                    Requirement::NotEquals(key, value)
                } else {
                    Requirement::Equals(key, value)
                });
            }
        }
        Ok(Requirement::Exists(label_key(term)?))
    }

    pub fn matches(&self, labels: &BTreeMap<&str, &str>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k.as_str()) == Some(&v.as_str()),
            Requirement::NotEquals(k, v) => labels.get(k.as_str()) != Some(&v.as_str()),
            Requirement::In(k, vs) => labels.get(k.as_str()).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => labels.get(k.as_str()).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => labels.contains_key(k.as_str()),
            Requirement::DoesNotExist(k) => !labels.contains_key(k.as_str()),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits at commas outside parentheses.
fn split_terms(s: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(format!("unbalanced parentheses in `{s}`"));
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced parentheses in `{s}`"));
    }
    terms.push(&s[start..]);
    Ok(terms)
}

fn label_key(key: &str) -> Result<String, String> {
    let valid = !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(key.to_owned())
    } else {
        Err(format!("invalid label key `{key}`"))
    }
}

/// A parsed field selector over `metadata.name` and `metadata.namespace`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(Field, bool, String)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Namespace,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, negated, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, false, v)
            } else {
                return Err(format!("invalid selector: '{s}'; can't understand '{term}'"));
            };
            let field = match field.trim() {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                other => return Err(format!("field label not supported: {other}")),
            };
            terms.push((field, negated, value.trim().to_owned()));
        }
        Ok(Self(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, negated, value)| {
            let pointer = match field {
                Field::Name => "/metadata/name",
                Field::Namespace => "/metadata/namespace",
            };
            let actual = object.pointer(pointer).and_then(Value::as_str).unwrap_or("");
            (actual == value) != *negated
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Which objects a list or watch returns.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, object: &Value) -> bool {
        let namespace_ok = self
            .namespace
            .as_deref()
            .is_none_or(|ns| object.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns));
        namespace_ok && self.fields.matches(object) && self.labels.matches(&object_labels(object))
    }

    /// Selectors make counts of remaining items meaningless (the apiserver omits them).
    pub fn has_selectors(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels<'a>(pairs: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn label_selector_operators() {
        let l = labels(&[("kuma.io/mesh", "default"), ("app", "redis")]);
        let cases = [
            ("", true),
            ("kuma.io/mesh=default", true),
            ("kuma.io/mesh==default,app=redis", true),
            ("kuma.io/mesh!=default", false),
            ("app in (web, redis)", true),
            ("app notin (web,redis)", false),
            ("kuma.io/origin notin (zone)", true),
            ("app", true),
            ("!app", false),
            ("!kuma.io/origin", true),
            ("kuma.io/origin=global", false),
        ];
        for (s, expected) in cases {
            let sel = LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(sel.matches(&l), expected, "{s}");
        }
    }

    #[test]
    fn bad_label_selectors_are_errors() {
        for s in ["app in web", "a b=c", "app in ((x)", "x=(y"] {
            assert!(LabelSelector::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn field_selector_supports_name_and_namespace_only() {
        let object = json!({"metadata": {"name": "a", "namespace": "kuma-system"}});
        assert!(FieldSelector::parse("metadata.name=a").unwrap().matches(&object));
        assert!(!FieldSelector::parse("metadata.name!=a").unwrap().matches(&object));
        assert!(
            FieldSelector::parse("metadata.name=a,metadata.namespace==kuma-system")
                .unwrap()
                .matches(&object)
        );
        assert!(
            !FieldSelector::parse("metadata.namespace=other")
                .unwrap()
                .matches(&object)
        );
        assert!(
            FieldSelector::parse("spec.x=1")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(FieldSelector::parse("metadata.name").is_err());
    }

    #[test]
    fn filter_combines_namespace_and_selectors() {
        let object = json!({"metadata": {"name": "a", "namespace": "ns",
                                         "labels": {"kuma.io/mesh": "m"}}});
        let mut filter = Filter {
            namespace: Some("ns".into()),
            labels: LabelSelector::parse("kuma.io/mesh=m").unwrap(),
            fields: FieldSelector::default(),
        };
        assert!(filter.matches(&object));
        assert!(filter.has_selectors());
        filter.namespace = Some("other".into());
        assert!(!filter.matches(&object));
    }
}
