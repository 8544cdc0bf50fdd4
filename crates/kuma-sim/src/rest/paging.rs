//! List queries as Kuma reads them (`pkg/api-server/pagination.go`, `filters/filtering.go`,
//! `store/pagination_store.go`): `size`, `offset`, `name`, `filter[labels.<k>]`, and the
//! absolute `next` link built from the request's own Host.

use kuma_model::Resource;

use super::errors::{ApiError, Violations};

const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;
const LIST_TITLE: &str = "Could not retrieve resources";

/// A decoded query string, in request order, repeated keys kept.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        Self(pairs)
    }

    /// The first value, as Go's `QueryParameter` returns it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Go's `url.Values.Encode`: keys sorted, values in order, `QueryEscape`d.
    fn encode_with_offset(&self, offset: &str) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .0
            .iter()
            .filter(|(k, _)| k != "offset")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.push(("offset", offset));
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// One list request, validated.
#[derive(Debug)]
pub struct ListRequest {
    size: usize,
    offset: usize,
    name_contains: String,
    labels: Vec<(String, String)>,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page<T> {
    pub total: usize,
    pub items: Vec<T>,
    pub next_offset: Option<usize>,
}

impl ListRequest {
    pub fn from_query(q: &Query) -> Result<Self, ApiError> {
        let size = match q.get("size").filter(|s| !s.is_empty()) {
            None => DEFAULT_PAGE_SIZE,
            Some(s) => match s.parse::<i64>() {
                Err(_) => return Err(ApiError::page_size(LIST_TITLE, "invalid format")),
                Ok(n) if n <= 0 => return Err(ApiError::page_size(LIST_TITLE, "must be greater than 0")),
                Ok(n) if n > MAX_PAGE_SIZE as i64 => {
                    return Err(ApiError::page_size(
                        LIST_TITLE,
                        &format!("invalid page size of {n}. Maximum page size is {MAX_PAGE_SIZE}"),
                    ));
                }
                Ok(n) => n as usize,
            },
        };
        let mut violations = Violations::default();
        let mut labels = Vec::new();
        for (k, v) in &q.0 {
            if !k.starts_with("filter[") {
                continue;
            }
            let Some(rest) = k.strip_prefix("filter[labels.") else {
                violations.add(k.clone(), "filters are only supported on labels");
                continue;
            };
            match rest.find(']') {
                Some(end) if end == rest.len() - 1 => {
                    // Go keeps the last value of a repeated key.
                    labels.retain(|(key, _): &(String, String)| key != &rest[..end]);
                    labels.push((rest[..end].to_owned(), v.clone()));
                }
                _ => violations.add(k.clone(), "advanced filters are not supported"),
            }
        }
        if !violations.is_empty() {
            return Err(ApiError::invalid(LIST_TITLE, violations));
        }
        let offset = match q.get("offset").filter(|s| !s.is_empty()) {
            None => 0,
            Some(s) => s
                .parse::<i64>()
                .map_err(|e| ApiError::new(400, LIST_TITLE, &format!("invalid offset: {e}")))?,
        };
        let offset = usize::try_from(offset)
            .map_err(|_| ApiError::new(400, LIST_TITLE, "invalid offset: must be non-negative"))?;
        Ok(Self {
            size,
            offset,
            name_contains: q.get("name").unwrap_or("").to_owned(),
            labels,
        })
    }

    fn matches(&self, r: &Resource) -> bool {
        r.name.contains(&self.name_contains)
            && self.labels.iter().all(|(k, v)| r.label(k) == Some(v.as_str()))
    }

    /// Filters, sorts by mesh then name (`model.ByMeta`) and cuts one page.
    pub fn page(&self, mut all: Vec<Resource>) -> Page<Resource> {
        all.retain(|r| self.matches(r));
        all.sort_by(|a, b| (a.mesh_or_empty(), &a.name).cmp(&(b.mesh_or_empty(), &b.name)));
        let total = all.len();
        let end = self.offset.saturating_add(self.size);
        let items = all.into_iter().skip(self.offset).take(self.size).collect();
        Page {
            total,
            items,
            next_offset: (end < total).then_some(end),
        }
    }
}

/// `nextLink`: the request's own path and query with the new offset, on the Host it was
/// asked on.
pub fn next_link(host: &str, path: &str, query: &Query, offset: usize) -> String {
    format!(
        "http://{host}{path}?{}",
        query.encode_with_offset(&offset.to_string())
    )
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).and_then(hex),
            bytes.get(i + 2).and_then(hex),
        ) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 2;
            }
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-decodes one path segment (no `+` rule in paths).
pub fn decode_path_segment(s: &str) -> String {
    decode(&s.replace('+', "%2B"))
}

/// Go's `url.QueryEscape`.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_round_trip_the_way_go_encodes_them() {
        let q = Query::parse(Some("size=2&filter%5Blabels.app%5D=a+b&name=x%2Fy"));
        assert_eq!(q.get("filter[labels.app]"), Some("a b"));
        assert_eq!(q.get("name"), Some("x/y"));
        assert_eq!(
            next_link("h:1", "/meshes", &q, 4),
            "http://h:1/meshes?filter%5Blabels.app%5D=a+b&name=x%2Fy&offset=4&size=2"
        );
    }

    #[test]
    fn truncated_escapes_are_kept_literally() {
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode_path_segment("a+b%20c"), "a+b c");
    }
}
