//! Kuma's REST API as a source (kuma-semantics 7.4): every page of every checked type, read
//! with bounded concurrency. The API has no watch and no versions, so callers poll and
//! fold each full read into the engine with [`crate::Engine::replace`].

use std::{
    collections::HashSet,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
};

use futures::{StreamExt, TryStreamExt, stream};
use kuma_model::{
    KumaLine, Resource, ResourceKey, ResourceType,
    read::{ReadOptions, read_each},
};

use super::{SourceError, http::HttpClient};
use crate::monitor::key_digest;

/// Kuma's maximum page size: fewest round trips.
const PAGE_SIZE: usize = 1000;

/// Bounds of one read of a control plane (every page of every type). A server decides
/// what it sends, not how much kuma-sync takes: past any bound the read fails instead of
/// growing. `total` is never trusted to size anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Pages of one type. Kuma's pages hold up to 1000 items, so the default reads
    /// 10 million items of a type at Kuma's page size, or a million at 100 a page.
    pub max_pages: usize,
    /// Items of every type together: 100 times a large control plane's 10,000 policies.
    pub max_items: usize,
    /// Bytes of every page body together; each body is also capped by the HTTP client.
    pub max_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_pages: 10_000,
            max_items: 1_000_000,
            max_bytes: 2 << 30,
        }
    }
}

/// One control plane's read, as its pages' bodies: each was parsed once when it was
/// read (so it is known good), and is parsed again by [`Pages::feed`].
#[derive(Debug, Default)]
pub struct Pages {
    pages: Vec<Page>,
    /// [`key_digest`]s of the resources the pages hold.
    keys: HashSet<u128>,
}

#[derive(Debug)]
struct Page {
    url: String,
    body: bytes::Bytes,
    /// The type the page was asked for; anything else on it is not kept.
    rtype: ResourceType,
}

impl Page {
    /// Hands each resource of the page to `each`.
    fn parse(&self, each: &mut dyn FnMut(Resource)) -> Result<(), SourceError> {
        let text = std::str::from_utf8(&self.body).map_err(|e| SourceError::Decode {
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        let options = ReadOptions {
            skip_unknown_types: false,
            // `next` is followed by the page walk.
            caller_follows_pages: true,
        };
        read_each(&self.url, text, &options, each).map_err(|e| SourceError::Decode {
            url: self.url.clone(),
            reason: e.reason,
        })?;
        Ok(())
    }
}

impl Pages {
    /// Whether the read holds a resource with this key.
    pub fn holds(&self, key: &ResourceKey) -> bool {
        self.keys.contains(&key_digest(key))
    }

    /// Resources in the read.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Hands every resource of the read to `each`, one page parsed at a time. The pages
    /// were checked when read, so an error here means the parser changed its mind.
    pub fn feed(&self, each: &mut dyn FnMut(Resource)) -> Result<(), SourceError> {
        for page in &self.pages {
            page.parse(&mut |r| {
                if r.rtype == page.rtype {
                    each(r);
                }
            })?;
        }
        Ok(())
    }

    /// The read, parsed whole.
    pub fn into_resources(self) -> Result<Vec<Resource>, SourceError> {
        let mut out = Vec::with_capacity(self.len());
        self.feed(&mut |r| out.push(r))?;
        Ok(out)
    }
}

/// The fields of a Kuma list page that drive paging (`items` is skipped unbuilt).
/// A `total` that is not a count, or a `next` that is neither a string nor null, is a
/// malformed page; a repeated field is too, as everywhere kuma-sync reads JSON.
#[derive(serde::Deserialize)]
struct PageLinks {
    total: Option<u64>,
    next: Option<String>,
}

/// What one read has used of its [`ReadLimits`], shared by the types read at once.
pub(crate) struct Budget {
    limits: ReadLimits,
    items: AtomicUsize,
    bytes: AtomicU64,
}

impl Budget {
    pub(crate) fn new(limits: ReadLimits) -> Self {
        Self {
            limits,
            items: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    fn spend_bytes(&self, url: &str, n: usize) -> Result<(), SourceError> {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let used = self.bytes.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if used > self.limits.max_bytes {
            return Err(SourceError::TooLarge {
                url: url.to_owned(),
                reason: format!(
                    "the read's pages hold more than {} bytes together",
                    self.limits.max_bytes
                ),
            });
        }
        Ok(())
    }

    fn spend_items(&self, url: &str, n: usize) -> Result<(), SourceError> {
        let used = self.items.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if used > self.limits.max_items {
            return Err(SourceError::TooLarge {
                url: url.to_owned(),
                reason: format!("more than {} items in one read", self.limits.max_items),
            });
        }
        Ok(())
    }
}

/// One page of a REST list, read by [`KumaApi::read_page`].
#[derive(Debug)]
pub struct ListPage {
    /// The page's items of the type asked for, in its order.
    pub resources: Vec<Resource>,
    /// Every item the page held, of any type: what the read's item limit is charged.
    pub items: usize,
    /// The next page's URL, on the API's own address; `None` on the last page.
    pub next: Option<String>,
}

/// One control plane's REST API.
#[derive(Debug, Clone)]
pub struct KumaApi {
    /// `scheme://host:port` plus any path prefix, without a trailing slash.
    base: String,
    /// `base`, parsed: every URL this API requests must have its scheme and authority,
    /// so the token is never sent anywhere else.
    origin: http::Uri,
    http: HttpClient,
    /// Types read at once; Kuma's API server is shared with the GUI and kumactl.
    concurrency: usize,
    limits: ReadLimits,
}

impl KumaApi {
    pub fn new(base: &str, http: HttpClient) -> Result<Self, SourceError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(SourceError::Config(format!(
                "Kuma API URL {base:?} must start with http:// or https://"
            )));
        }
        let origin: http::Uri = base
            .parse()
            .map_err(|e| SourceError::Config(format!("Kuma API URL {base:?} is not a URL: {e}")))?;
        if origin.authority().is_none_or(|a| a.host().is_empty()) || origin.query().is_some() {
            return Err(SourceError::Config(format!(
                "Kuma API URL {base:?} needs a host and no query"
            )));
        }
        Ok(Self {
            base,
            origin,
            http,
            concurrency: 4,
            limits: ReadLimits::default(),
        })
    }

    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    pub fn with_limits(mut self, limits: ReadLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    pub(crate) fn limits(&self) -> ReadLimits {
        self.limits
    }

    /// Every resource of every type in `types`, or the first error: a partial read would
    /// report what it missed as missing.
    pub async fn list_all(&self, types: &[ResourceType]) -> Result<Vec<Resource>, SourceError> {
        self.read_all(types).await?.into_resources()
    }

    /// [`KumaApi::list_all`] as the checked page bodies, parsed again one resource at a
    /// time by [`Pages::feed`]: what the poller hands the engine, so that a read of a
    /// million resources is held as its JSON (~400 bytes a resource), never parsed
    /// whole (~7 KiB a resource).
    pub async fn read_all(&self, types: &[ResourceType]) -> Result<Pages, SourceError> {
        let budget = Budget::new(self.limits);
        let reads: Vec<Pages> = stream::iter(types.iter().copied())
            .map(|t| self.read_served(t, &budget))
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        let mut all = Pages::default();
        for read in reads {
            all.pages.extend(read.pages);
            all.keys.extend(read.keys);
        }
        Ok(all)
    }

    /// [`KumaApi::read_type`], where a type Kuma 3 removed answers 404 on a Kuma 3
    /// control plane: that control plane holds none of it. Any other 404 is an error (a
    /// wrong URL must not read as an empty control plane).
    async fn read_served(&self, rtype: ResourceType, budget: &Budget) -> Result<Pages, SourceError> {
        match self.read_type(rtype, budget).await {
            Err(SourceError::Status { status: 404, .. }) if !KumaLine::V3.has_type(rtype.name()) => {
                Ok(Pages::default())
            }
            read => read,
        }
    }

    /// Every resource of one type, across meshes, following `next` until the last page.
    pub async fn list(&self, rtype: ResourceType) -> Result<Vec<Resource>, SourceError> {
        self.read_type(rtype, &Budget::new(self.limits))
            .await?
            .into_resources()
    }

    /// Creates or updates a mesh-scoped resource as `kumactl apply` does
    /// (`PUT /meshes/{mesh}/{path}/{name}` with the universal document): the canary's
    /// write, the only one kuma-sync ever makes.
    pub async fn put_in_mesh(
        &self,
        rtype: ResourceType,
        mesh: &str,
        name: &str,
        document: &serde_json::Value,
    ) -> Result<(), SourceError> {
        let path = rtype.info().rest_path;
        if path.is_empty() {
            return Err(SourceError::Config(format!("{rtype} has no REST API path")));
        }
        let url = format!("{}/meshes/{mesh}/{path}/{name}", self.base());
        let body = serde_json::to_vec(document).map_err(|e| SourceError::Config(format!("{url}: {e}")))?;
        self.http().put_json(&url, body).await.map(drop)
    }

    /// Every page of one type, each parsed once here to check it (and dropped as it is
    /// parsed), kept as its body.
    async fn read_type(&self, rtype: ResourceType, budget: &Budget) -> Result<Pages, SourceError> {
        let path = rtype.info().rest_path;
        if path.is_empty() {
            return Err(SourceError::Config(format!("{rtype} has no REST API path")));
        }
        let mut read = Pages::default();
        self.walk_pages(path, &rtype.to_string(), budget, |url, body| {
            let page = Page {
                url: url.to_owned(),
                body: body.clone(),
                rtype,
            };
            let mut items = 0;
            page.parse(&mut |r| {
                items += 1;
                if r.rtype == rtype {
                    read.keys.insert(key_digest(&r.key()));
                }
            })?;
            read.pages.push(page);
            Ok(items)
        })
        .await?;
        Ok(read)
    }

    /// Every item of `/{path}`, each page given to `on_page` (which answers how many
    /// items it held), following `next` within this read's [`ReadLimits`]: one home for
    /// how a Kuma list is paged, for resources and zone insights alike. `what` names
    /// the list in errors.
    pub(crate) async fn walk_pages(
        &self,
        path: &str,
        what: &str,
        budget: &Budget,
        mut on_page: impl FnMut(&str, &bytes::Bytes) -> Result<usize, SourceError>,
    ) -> Result<(), SourceError> {
        let mut url = format!("{}/{path}?size={PAGE_SIZE}", self.base);
        // Every URL this read has asked for: a `next` back to one of them is a loop.
        let mut asked = HashSet::from([url.clone()]);
        for page_number in 1.. {
            if page_number > self.limits.max_pages {
                return Err(SourceError::TooLarge {
                    url,
                    reason: format!("more than {} pages of {what}", self.limits.max_pages),
                });
            }
            let body = self.http.get(&url).await?;
            budget.spend_bytes(&url, body.len())?;
            // The paging fields alone: the items are built once, by `on_page`.
            let links = self.links(&url, &body)?;
            let items = on_page(&url, &body)?;
            drop(body);
            budget.spend_items(&url, items)?;
            let next = match links.next {
                None => return Ok(()),
                Some(n) if n.is_empty() => return Ok(()),
                Some(n) => n,
            };
            let next = self.resolve_next(&next).map_err(|reason| SourceError::Paging {
                url: url.clone(),
                reason,
            })?;
            if !asked.insert(next.clone()) {
                return Err(SourceError::Paging {
                    url,
                    reason: format!("`next` leads back to {next}, already read: the pages loop"),
                });
            }
            url = next;
        }
        unreachable!("the page loop returns or fails by its last page")
    }

    /// Reads one page of `rtype`'s list, the `body` fetched from `url`: its items of that
    /// type, how many items it held in all, and the URL of the next page (on this API's
    /// address) unless it is the last. Everything a server sends on the REST path is
    /// parsed here; [`KumaApi::list`] fetches pages, charges them to its limits and
    /// follows `next`.
    pub fn read_page(&self, rtype: ResourceType, url: &str, body: &[u8]) -> Result<ListPage, SourceError> {
        let links = self.links(url, body)?;
        let page = Page {
            url: url.to_owned(),
            body: bytes::Bytes::copy_from_slice(body),
            rtype,
        };
        let (mut items, mut resources) = (0, Vec::new());
        page.parse(&mut |r| {
            items += 1;
            if r.rtype == rtype {
                resources.push(r);
            }
        })?;
        let next = match links.next.filter(|n| !n.is_empty()) {
            Some(n) => Some(self.resolve_next(&n).map_err(|reason| SourceError::Paging {
                url: url.to_owned(),
                reason,
            })?),
            None => None,
        };
        Ok(ListPage {
            resources,
            items,
            next,
        })
    }

    /// A page's paging fields, and the `total` bound: a page announcing more items than
    /// a read may hold fails at once rather than being paged towards.
    fn links(&self, url: &str, body: &[u8]) -> Result<PageLinks, SourceError> {
        let links: PageLinks = serde_json::from_slice(body).map_err(|e| SourceError::Decode {
            url: url.to_owned(),
            reason: format!("not a Kuma list page: {e}"),
        })?;
        if let Some(total) = links.total
            && total > self.limits.max_items as u64
        {
            return Err(SourceError::TooLarge {
                url: url.to_owned(),
                reason: format!(
                    "`total` is {total}, more than the {} items a read may hold",
                    self.limits.max_items
                ),
            });
        }
        Ok(links)
    }

    /// The URL a page's `next` link leads to, always on our base. Kuma builds `next`
    /// from the Host it was asked on, which may be a name this client cannot resolve
    /// behind a proxy: of an absolute link only its path and query are kept. A relative
    /// one must be a path; anything that would leave our scheme, host and port (`//h/`,
    /// `@h:p/`) is refused, so the token goes nowhere else.
    fn resolve_next(&self, next: &str) -> Result<String, String> {
        let path_and_query = match next.split_once("://") {
            // An empty scheme too: Go's `URL.Scheme` is empty on a server's request.
            Some((scheme, rest))
                if scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
            {
                rest.find('/').map_or("/", |j| &rest[j..])
            }
            _ if next.starts_with('/') && !next.starts_with("//") => next,
            _ => {
                return Err(format!(
                    "`next` {next:?} is neither an absolute URL nor a path on this control plane"
                ));
            }
        };
        let url = match self
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
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("`next` {next:?} does not make a URL: {e}"))?;
        if uri.scheme() != self.origin.scheme() || uri.authority() != self.origin.authority() {
            return Err(format!(
                "`next` {next:?} leads to {url}, off this control plane's address {}",
                self.base
            ));
        }
        Ok(url)
    }
}

/// `path` without the base's path `prefix` when it already carries it, cut only at a
/// segment boundary: `/meshtimeouts` does not carry the prefix `/mesh`.
fn strip_prefix_dup<'a>(prefix: &str, path: &'a str) -> &'a str {
    match path.strip_prefix(prefix) {
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
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
            a.resolve_next("http://kuma-control-plane.kuma-system:5681/meshtimeouts?offset=1000&size=1000")
                .unwrap(),
            "http://127.0.0.1:5681/meshtimeouts?offset=1000&size=1000"
        );
        let proxied = api("https://proxy.example/kuma");
        assert_eq!(
            proxied
                .resolve_next("http://cp:5681/meshtimeouts?offset=2")
                .unwrap(),
            "https://proxy.example/kuma/meshtimeouts?offset=2"
        );
        assert_eq!(
            a.resolve_next("/meshtimeouts?offset=1000").unwrap(),
            "http://127.0.0.1:5681/meshtimeouts?offset=1000"
        );
    }

    #[test]
    fn a_path_prefix_is_only_stripped_at_a_segment_boundary() {
        // Found by fuzzing (fuzz/corpus/rest_page): `/meshtimeouts` does not carry the
        // prefix `/mesh`, and cutting it there asked for `/meshtimeouts` off the prefix.
        let proxied = api("https://proxy.example/mesh");
        for next in [
            "http://cp:5681/meshtimeouts?offset=2",
            "/meshtimeouts?offset=2",
            "/mesh/meshtimeouts?offset=2",
        ] {
            assert_eq!(
                proxied.resolve_next(next).unwrap(),
                "https://proxy.example/mesh/meshtimeouts?offset=2",
                "{next}"
            );
        }
    }

    #[test]
    fn a_next_link_never_leads_off_our_address() {
        let a = api("http://127.0.0.1:5681");
        // Appended to our base, these would name another authority (userinfo, a
        // network-path reference) or not be a path at all.
        for hostile in [
            "@127.0.0.1:9999/meshtimeouts",
            ":9999/meshtimeouts",
            "//127.0.0.1:9999/meshtimeouts",
            "meshtimeouts?offset=1",
            "/meshtimeouts?x=\u{1b}[31m",
        ] {
            assert!(a.resolve_next(hostile).is_err(), "{hostile:?} accepted");
        }
    }

    #[test]
    fn a_base_url_that_does_not_parse_is_a_config_error() {
        let err = KumaApi::new("http://[::1", HttpClient::new(HttpSettings::default()).unwrap()).unwrap_err();
        assert_eq!(err.metric_label(), "config", "{err}");
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
