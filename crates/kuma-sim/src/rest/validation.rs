//! Name and label rules Kuma checks on every write (`core_mesh.ValidateMeta`,
//! apimachinery's `IsQualifiedName` and `IsValidLabelValue`), with their messages.

use kuma_model::types::Scope;

use super::errors::Violations;

const IDENTIFIER_MSG: &str = "invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const MESH_MSG: &str =
    "invalid characters. Valid characters are numbers, lowercase latin letters and '-', '_', '.' symbols.";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const PREFIX_MSG: &str = "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// `ValidateMeta`: the name is an RFC 1123 subdomain; a mesh-scoped resource's mesh uses
/// the older, looser character set.
pub fn meta(name: &str, mesh: &str, scope: Scope) -> Violations {
    let mut v = Violations::default();
    if let Some(msg) = identifier(name, is_subdomain(name), IDENTIFIER_MSG) {
        v.add("name", msg);
    }
    if scope == Scope::Mesh {
        let loose = mesh
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
        if let Some(msg) = identifier(mesh, loose, MESH_MSG) {
            v.add("mesh", msg);
        }
    }
    v
}

fn identifier(s: &str, valid: bool, msg: &'static str) -> Option<&'static str> {
    match s {
        "" => Some("cannot be empty"),
        s if s.len() > 253 => Some("value length must less or equal 253"),
        _ if !valid => Some(msg),
        _ => None,
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
pub fn is_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn is_label_name(s: &str) -> bool {
    s.len() <= 63 && has_label_chars(s)
}

/// The character rule of label names and values, without the length limit.
fn has_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// `IsQualifiedName`: `[prefix/]name`.
pub fn label_key(key: &str) -> Vec<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut out = Vec::new();
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            out.push("prefix part must be non-empty".to_owned());
        } else if prefix.len() > 253 {
            out.push("prefix part must be no more than 253 characters".to_owned());
        } else if !is_subdomain(prefix) {
            out.push(PREFIX_MSG.to_owned());
        }
    }
    if name.is_empty() {
        out.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        out.push("name part must be no more than 63 characters".to_owned());
    } else if !is_label_name(name) {
        out.push(QUALIFIED_NAME_MSG.to_owned());
    }
    out
}

/// `IsValidLabelValue`.
pub fn label_value(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    if value.len() > 63 {
        out.push("must be no more than 63 characters".to_owned());
    }
    if !value.is_empty() && !has_label_chars(value) {
        out.push(LABEL_VALUE_MSG.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rfc_1123() {
        assert!(is_subdomain("demo-app-to-redis-65xb45x2xfd5bf7f"));
        assert!(is_subdomain("a.b-c"));
        for bad in ["", "-a", "a-", "A", "a..b", "a_b"] {
            assert!(!is_subdomain(bad), "{bad}");
        }
        assert_eq!(meta("Bad", "default", Scope::Mesh).0[0].field, "name");
        assert_eq!(meta("ok", "", Scope::Mesh).0[0].reason, "cannot be empty");
        assert!(meta("ok", "", Scope::Global).is_empty());
    }

    #[test]
    fn labels_follow_kubernetes_rules() {
        assert!(label_key("kuma.io/origin").is_empty());
        assert!(label_key("app").is_empty());
        assert_eq!(label_key("/x"), vec!["prefix part must be non-empty"]);
        assert_eq!(label_key("Kuma.IO/x").len(), 1);
        assert!(label_value("").is_empty());
        assert!(label_value("zone-1").is_empty());
        assert_eq!(label_value("-x").len(), 1);
        assert_eq!(
            label_value(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }
}
