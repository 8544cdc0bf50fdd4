//! Kuma's REST API as a source (kuma-facts 7.4): every page of every checked type, read
//! with bounded concurrency. The API has no watch and no versions, so callers poll and
//! fold each full read into the engine with [`crate::Engine::replace`].

use futures::{StreamExt, TryStreamExt, stream};
use kuma_model::{
    Resource, ResourceType,
    read::{ReadOptions, read_str},
};

use super::{SourceError, http::HttpClient};

/// Kuma's maximum page size: fewest round trips.
const PAGE_SIZE: usize = 1000;

/// One control plane's REST API.
#[derive(Debug, Clone)]
pub struct KumaApi {
    /// `scheme://host:port` plus any path prefix, without a trailing slash.
    base: String,
    http: HttpClient,
    /// Types read at once; Kuma's API server is shared with the GUI and kumactl.
    concurrency: usize,
}

impl KumaApi {
    pub fn new(base: &str, http: HttpClient) -> Result<Self, SourceError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(SourceError::Config(format!(
                "Kuma API URL {base:?} must start with http:// or https://"
            )));
        }
        Ok(Self {
            base,
            http,
            concurrency: 4,
        })
    }

    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Every resource of every type in `types`, or the first error: a partial read would
    /// report what it missed as missing.
    pub async fn list_all(&self, types: &[ResourceType]) -> Result<Vec<Resource>, SourceError> {
        let lists: Vec<Vec<Resource>> = stream::iter(types.iter().copied())
            .map(|t| self.list(t))
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        Ok(lists.into_iter().flatten().collect())
    }

    /// Every resource of one type, across meshes, following `next` until the last page.
    pub async fn list(&self, rtype: ResourceType) -> Result<Vec<Resource>, SourceError> {
        let path = rtype.info().rest_path;
        if path.is_empty() {
            return Err(SourceError::Config(format!("{rtype} has no REST API path")));
        }
        let mut url = format!("{}/{path}?size={PAGE_SIZE}", self.base);
        let mut out = Vec::new();
        // `total` bounds the pages; the guard stops a server whose `next` never ends.
        let mut pages_left: Option<usize> = None;
        loop {
            let body = self.http.get(&url).await?;
            let page: serde_json::Value = serde_json::from_slice(&body).map_err(|e| SourceError::Decode {
                url: url.clone(),
                reason: format!("not JSON: {e}"),
            })?;
            let text = std::str::from_utf8(&body).map_err(|e| SourceError::Decode {
                url: url.clone(),
                reason: e.to_string(),
            })?;
            let loaded = read_str(
                &url,
                text,
                &ReadOptions {
                    skip_unknown_types: false,
                    // `next` is followed below.
                    caller_follows_pages: true,
                },
            )
            .map_err(|e| SourceError::Decode {
                url: url.clone(),
                reason: e.reason,
            })?;
            out.extend(loaded.resources.into_iter().filter(|r| r.rtype == rtype));
            let total = page.get("total").and_then(|t| t.as_u64()).unwrap_or(0) as usize;
            let left = pages_left.get_or_insert(total / PAGE_SIZE + 1);
            match page
                .get("next")
                .and_then(|n| n.as_str())
                .filter(|n| !n.is_empty())
            {
                Some(next) if *left > 0 => {
                    *left -= 1;
                    url = self.rebase(next);
                }
                Some(_) => {
                    return Err(SourceError::Decode {
                        url,
                        reason: format!("more pages than total {total} allows"),
                    });
                }
                None => return Ok(out),
            }
        }
    }

    /// Kuma builds `next` from the Host it was asked on, which may be a name this client
    /// cannot resolve behind a proxy: keep its path and query, use our base.
    fn rebase(&self, next: &str) -> String {
        let path_and_query = match next.find("://") {
            Some(i) => next[i + 3..].find('/').map_or("/", |j| &next[i + 3 + j..]),
            None => next,
        };
        match self
            .base
            .find("://")
            .and_then(|i| self.base[i + 3..].find('/').map(|j| i + 3 + j))
        {
            // A base with a path prefix (a proxy): Kuma's next carries no prefix.
            Some(prefix_at) => format!(
                "{}{}",
                &self.base,
                strip_prefix_dup(&self.base[prefix_at..], path_and_query)
            ),
            None => format!("{}{path_and_query}", self.base),
        }
    }
}

fn strip_prefix_dup<'a>(prefix: &str, path: &'a str) -> &'a str {
    path.strip_prefix(prefix).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::http::HttpSettings;

    fn api(base: &str) -> KumaApi {
        KumaApi::new(base, HttpClient::new(HttpSettings::default()).expect("client")).expect("api")
    }

    #[test]
    fn next_links_are_rebased_onto_our_address() {
        let a = api("http://127.0.0.1:5681/");
        assert_eq!(a.base(), "http://127.0.0.1:5681");
        assert_eq!(
            a.rebase("http://kuma-control-plane.kuma-system:5681/meshtimeouts?offset=1000&size=1000"),
            "http://127.0.0.1:5681/meshtimeouts?offset=1000&size=1000"
        );
        let proxied = api("https://proxy.example/kuma");
        assert_eq!(
            proxied.rebase("http://cp:5681/meshtimeouts?offset=2"),
            "https://proxy.example/kuma/meshtimeouts?offset=2"
        );
    }

    #[test]
    fn only_http_urls_are_accepted() {
        let err = KumaApi::new(
            "127.0.0.1:5681",
            HttpClient::new(HttpSettings::default()).unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("must start with http://"), "{err}");
        assert!(!err.is_retryable());
    }
}
