//! Query parameters as the apiserver reads them, and the continue tokens of paged lists.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::status::Failure;

pub(crate) fn parse_rv(rv: &str) -> Result<u64, Failure> {
    rv.parse()
        .map_err(|_| Failure::bad_request(format!("invalid resource version: {rv:?}")))
}

/// Where the next page of a list starts: the snapshot version and the last key served.
/// Opaque to clients, as the apiserver's tokens are; hex keeps it URL-safe.
#[derive(Debug, PartialEq)]
pub(crate) struct ContinueToken {
    pub(crate) rv: u64,
    pub(crate) namespace: Option<String>,
    pub(crate) name: String,
}

impl ContinueToken {
    pub(crate) fn encode(&self) -> String {
        let raw = json!({"rv": self.rv, "ns": self.namespace, "name": self.name}).to_string();
        raw.bytes().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn decode(token: &str) -> Result<Self, Failure> {
        let invalid = || {
            Failure::bad_request(
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
            )
        };
        if !token.len().is_multiple_of(2) || !token.is_ascii() {
            return Err(invalid());
        }
        let bytes: Vec<u8> = (0..token.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| invalid())?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        Ok(Self {
            rv: value["rv"].as_u64().ok_or_else(invalid)?,
            namespace: value["ns"].as_str().map(str::to_owned),
            name: value["name"].as_str().ok_or_else(invalid)?.to_owned(),
        })
    }
}

/// Query parameters, percent-decoded; the last occurrence of a key wins.
pub(crate) struct Query(BTreeMap<String, String>);

impl Query {
    pub(crate) fn parse(raw: &str) -> Result<Self, Failure> {
        let mut params = BTreeMap::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.insert(percent_decode(k)?, percent_decode(v)?);
        }
        Ok(Self(params))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A boolean as Go's `strconv.ParseBool` reads it; absent is false.
    pub(crate) fn flag(&self, key: &str) -> Result<bool, Failure> {
        Ok(self.optional_flag(key)?.unwrap_or(false))
    }

    pub(crate) fn optional_flag(&self, key: &str) -> Result<Option<bool>, Failure> {
        match self.get(key) {
            None => Ok(None),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(Some(true)),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(Some(false)),
            Some(other) => Err(Failure::bad_request(format!(
                "invalid value for {key}: {other:?} is not a boolean"
            ))),
        }
    }

    pub(crate) fn number(&self, key: &str) -> Result<Option<u64>, Failure> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse().map_err(|_| {
                    Failure::bad_request(format!("invalid value for {key}: {v:?} is not a number"))
                })
            })
            .transpose()
    }
}

fn percent_decode(s: &str) -> Result<String, Failure> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| Failure::bad_request(format!("malformed query escape in {s:?}")))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Failure::bad_request(format!("query is not UTF-8: {s:?}")))
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let token = ContinueToken {
            rv: 17,
            namespace: Some("kuma-system".into()),
            name: "a.b".into(),
        };
        let encoded = token.encode();
        assert!(encoded.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(ContinueToken::decode(&encoded).unwrap(), token);
        for garbage in ["", "zz", "abc", "7b7d"] {
            let failure = ContinueToken::decode(garbage).unwrap_err();
            assert_eq!(failure.code, StatusCode::BAD_REQUEST, "{garbage}");
        }
    }

    #[test]
    fn query_is_percent_decoded() {
        let q =
            Query::parse("labelSelector=kuma.io%2Fmesh%3Ddefault&watch=1&timeoutSeconds=5&x=a+b").unwrap();
        assert_eq!(q.get("labelSelector"), Some("kuma.io/mesh=default"));
        assert!(q.flag("watch").unwrap());
        assert_eq!(q.number("timeoutSeconds").unwrap(), Some(5));
        assert_eq!(q.get("x"), Some("a b"));
        assert!(!q.flag("allowWatchBookmarks").unwrap());
        assert!(Query::parse("a=%zz").is_err());
        assert!(Query::parse("watch=yes").unwrap().flag("watch").is_err());
    }
}
