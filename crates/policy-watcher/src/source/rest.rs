//! Kuma's REST API as a source (kuma-semantics 7.4): every page of every checked type, read
//! with bounded concurrency. The API has no watch and no versions, so callers poll and
//! fold each full read into the engine with [`crate::Engine::replace`].
//!
//! A poller passes the [`ReadDigests`] of its last read that the engine took in: a type
//! whose pages come back byte for byte as they were is not parsed again, nor handed to
//! the engine, which still holds what those bytes said. An unchanged control plane then
//! costs its transfer and a hash of its bytes, not a parse of every resource.

use std::{
    collections::{HashMap, HashSet},
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
/// read (so it is known good), and is parsed again by [`Pages::feed`]. Types whose pages
/// were as the last read's ([`ReadDigests`]) hold no pages: they are `unchanged`.
#[derive(Debug, Default)]
pub struct Pages {
    pages: Vec<Page>,
    /// [`key_digest`]s of the resources the pages hold.
    keys: HashSet<u128>,
    /// Types read exactly as in the previous read given: not parsed, not fed.
    unchanged: HashSet<ResourceType>,
    /// What this read's pages were, for the next read.
    digests: ReadDigests,
}

/// Each type's pages, as one read found them: a digest of each page's URL and body, and
/// how many items it held. A later read that finds a type's pages identical knows what
/// they hold without parsing them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadDigests {
    types: HashMap<ResourceType, Vec<PageDigest>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PageDigest {
    digest: u128,
    /// Items of every type on the page: what the read's item limit is charged.
    items: usize,
    /// The page's `next`, resolved: a page read as before is not parsed even for it.
    next: Option<String>,
}

impl PageDigest {
    fn of(url: &str, body: &[u8]) -> u128 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&(url.len() as u64).to_le_bytes());
        hasher.update(url.as_bytes());
        hasher.update(body);
        hasher.digest128()
    }
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
    /// Whether the read holds a resource with this key. Of an unchanged type, it holds
    /// whatever the previous read held: the engine's resources of that type stay. An
    /// unchecked read ([`KumaApi::read_first`]) knows no keys: it holds none, and fed to
    /// an engine that held anything of the control plane it would replace it all.
    pub fn holds(&self, key: &ResourceKey) -> bool {
        self.unchanged.contains(&key.rtype) || self.keys.contains(&key_digest(key))
    }

    /// Resources in the read's changed types.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether every type read came back as in the previous read given: nothing to
    /// hand the engine.
    pub fn unchanged(&self) -> bool {
        self.digests.types.keys().all(|t| self.unchanged.contains(t))
    }

    /// Whether `rtype` came back as in the previous read given.
    pub fn type_unchanged(&self, rtype: ResourceType) -> bool {
        self.unchanged.contains(&rtype)
    }

    /// What this read's pages were: give it to the next read once the engine has taken
    /// this one in (and never otherwise, or the next read would skip what the engine
    /// does not hold).
    pub fn digests(&self) -> ReadDigests {
        self.digests.clone()
    }

    /// Hands every resource of the read's changed types to `each`, one page parsed at a
    /// time. The pages were checked when read, so an error here means the parser changed
    /// its mind.
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

/// One type's pages as they are walked: matched against the previous read's while they
/// agree, checked and kept once they do not.
struct TypeRead<'a> {
    rtype: ResourceType,
    /// Pages kept without the check parse ([`KumaApi::read_first`]).
    unchecked: bool,
    /// The previous read's pages of the type; `None` once a page differs (or without one).
    previous: Option<&'a [PageDigest]>,
    digests: Vec<PageDigest>,
    /// Pages that matched `previous`, unparsed, until the type turns out to differ.
    held: Vec<Page>,
    pages: Pages,
}

impl OnPage for TypeRead<'_> {
    /// A page as the previous read's at the same place: held unparsed.
    fn known(&mut self, url: &str, body: &bytes::Bytes) -> Option<(usize, Option<String>)> {
        let before = self.previous?;
        let digest = PageDigest::of(url, body);
        match before.get(self.digests.len()) {
            Some(seen) if seen.digest == digest => {
                self.digests.push(seen.clone());
                self.held.push(Page {
                    url: url.to_owned(),
                    body: body.clone(),
                    rtype: self.rtype,
                });
                Some((seen.items, seen.next.clone()))
            }
            _ => None,
        }
    }

    fn page(
        &mut self,
        url: &str,
        body: &bytes::Bytes,
        next: Option<&str>,
        listed: usize,
    ) -> Result<usize, SourceError> {
        if self.previous.is_some() {
            self.differs()?;
        }
        let page = Page {
            url: url.to_owned(),
            body: body.clone(),
            rtype: self.rtype,
        };
        let items = match self.unchecked {
            // Parsed once, when fed; its keys are not needed (see `KumaApi::read_first`).
            true => {
                self.pages.pages.push(page);
                listed
            }
            false => self.check(page)?,
        };
        self.digests.push(PageDigest {
            digest: PageDigest::of(url, body),
            items,
            next: next.map(str::to_owned),
        });
        Ok(items)
    }
}

impl TypeRead<'_> {
    /// The type is not as before: the pages held unparsed are checked and kept.
    fn differs(&mut self) -> Result<(), SourceError> {
        self.previous = None;
        for page in std::mem::take(&mut self.held) {
            self.check(page)?;
        }
        Ok(())
    }

    /// Parses `page` once to check it and learn its keys, and keeps it.
    fn check(&mut self, page: Page) -> Result<usize, SourceError> {
        let (rtype, keys) = (self.rtype, &mut self.pages.keys);
        let mut items = 0;
        page.parse(&mut |r| {
            items += 1;
            if r.rtype == rtype {
                keys.insert(key_digest(&r.key()));
            }
        })?;
        self.pages.pages.push(page);
        Ok(items)
    }

    fn finish(mut self) -> Result<Pages, SourceError> {
        match self.previous {
            // Every page as before, and no fewer.
            Some(before) if before.len() == self.digests.len() => {
                self.held.clear();
                self.pages.unchanged.insert(self.rtype);
            }
            Some(_) => self.differs()?,
            None => {}
        }
        self.pages.digests.types.insert(self.rtype, self.digests);
        Ok(self.pages)
    }
}

/// What [`KumaApi::walk_pages`] does with each page.
pub(crate) trait OnPage {
    /// The items and resolved `next` of a page already known (byte for byte one read
    /// before), taken without parsing it; `None` has it parsed and given to
    /// [`OnPage::page`].
    fn known(&mut self, _url: &str, _body: &bytes::Bytes) -> Option<(usize, Option<String>)> {
        None
    }

    /// Takes in one page, whose `next` (resolved) the walk follows and whose `items`
    /// list has `listed` elements, and answers how many items it held.
    fn page(
        &mut self,
        url: &str,
        body: &bytes::Bytes,
        next: Option<&str>,
        listed: usize,
    ) -> Result<usize, SourceError>;
}

impl<F: FnMut(&str, &bytes::Bytes) -> Result<usize, SourceError>> OnPage for F {
    fn page(
        &mut self,
        url: &str,
        body: &bytes::Bytes,
        _next: Option<&str>,
        _listed: usize,
    ) -> Result<usize, SourceError> {
        self(url, body)
    }
}

/// The fields of a Kuma list page that drive paging, and how many `items` it holds
/// (counted, not built). A `total` that is not a count, a `next` that is neither a string
/// nor null, or `items` that is not a list, is a malformed page; a repeated field is too,
/// as everywhere kuma-sync reads JSON.
#[derive(serde::Deserialize)]
struct PageLinks {
    total: Option<u64>,
    next: Option<String>,
    #[serde(default)]
    items: ItemCount,
}

/// The length of a JSON list, its elements skipped unbuilt; `null` (Go's empty slice) is
/// none.
#[derive(Default)]
struct ItemCount(usize);

impl<'de> serde::Deserialize<'de> for ItemCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Counter;
        impl<'de> serde::de::Visitor<'de> for Counter {
            type Value = ItemCount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of items")
            }
            fn visit_unit<E>(self) -> Result<ItemCount, E> {
                Ok(ItemCount(0))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ItemCount, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(ItemCount(n))
            }
        }
        d.deserialize_any(Counter)
    }
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
        self.read_all(types, None).await?.into_resources()
    }

    /// [`KumaApi::list_all`] as the checked page bodies, parsed again one resource at a
    /// time by [`Pages::feed`]: what the poller hands the engine, so that a read of a
    /// million resources is held as its JSON (~400 bytes a resource), never parsed
    /// whole (~7 KiB a resource). Of a type whose pages are byte for byte those
    /// `previous` describes, nothing is parsed or kept ([`Pages::type_unchanged`]).
    pub async fn read_all(
        &self,
        types: &[ResourceType],
        previous: Option<&ReadDigests>,
    ) -> Result<Pages, SourceError> {
        self.read_pages(types, previous, false).await
    }

    /// [`KumaApi::read_all`] without the parse that checks each page as it is read: for
    /// a control plane the engine holds nothing of, whose read can then be parsed once,
    /// as it is fed. The check is there to learn the read's keys (what the engine keeps
    /// of what it held) and to refuse a malformed read before any of it is taken in;
    /// with nothing held, no key is needed, and a page that does not parse when fed
    /// leaves the control plane `unknown` all the same. It is a third of what `serve`
    /// spends taking in a large mesh (docs/benchmarks-live.md). The pages'
    /// [`ReadDigests`] are kept, their item counts from the `items` lists.
    pub async fn read_first(&self, types: &[ResourceType]) -> Result<Pages, SourceError> {
        self.read_pages(types, None, true).await
    }

    async fn read_pages(
        &self,
        types: &[ResourceType],
        previous: Option<&ReadDigests>,
        unchecked: bool,
    ) -> Result<Pages, SourceError> {
        let budget = Budget::new(self.limits);
        let reads: Vec<Pages> = stream::iter(types.iter().copied())
            .map(|t| {
                let before = previous.and_then(|p| p.types.get(&t)).map(Vec::as_slice);
                self.read_served(t, &budget, before, unchecked)
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        let mut all = Pages::default();
        for read in reads {
            all.pages.extend(read.pages);
            all.keys.extend(read.keys);
            all.unchanged.extend(read.unchanged);
            all.digests.types.extend(read.digests.types);
        }
        Ok(all)
    }

    /// [`KumaApi::read_type`], where a type Kuma 3 removed answers 404 on a Kuma 3
    /// control plane: that control plane holds none of it. Any other 404 is an error (a
    /// wrong URL must not read as an empty control plane).
    async fn read_served(
        &self,
        rtype: ResourceType,
        budget: &Budget,
        previous: Option<&[PageDigest]>,
        unchecked: bool,
    ) -> Result<Pages, SourceError> {
        match self.read_type(rtype, budget, previous, unchecked).await {
            Err(SourceError::Status { status: 404, .. }) if !KumaLine::V3.has_type(rtype.name()) => {
                let mut none = Pages::default();
                none.digests.types.insert(rtype, Vec::new());
                if previous.is_some_and(<[PageDigest]>::is_empty) {
                    none.unchanged.insert(rtype);
                }
                Ok(none)
            }
            read => read,
        }
    }

    /// Every resource of one type, across meshes, following `next` until the last page.
    pub async fn list(&self, rtype: ResourceType) -> Result<Vec<Resource>, SourceError> {
        self.read_type(rtype, &Budget::new(self.limits), None, false)
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
    /// parsed), kept as its body; or, when every page is as `previous` describes it,
    /// none kept and the type marked unchanged. Pages are held unparsed while they match
    /// `previous`; the first that does not has them all checked after all. `unchecked`
    /// keeps every page without the check ([`KumaApi::read_first`]).
    async fn read_type(
        &self,
        rtype: ResourceType,
        budget: &Budget,
        previous: Option<&[PageDigest]>,
        unchecked: bool,
    ) -> Result<Pages, SourceError> {
        let path = rtype.info().rest_path;
        if path.is_empty() {
            return Err(SourceError::Config(format!("{rtype} has no REST API path")));
        }
        let mut read = TypeRead {
            rtype,
            unchecked,
            previous,
            digests: Vec::new(),
            held: Vec::new(),
            pages: Pages::default(),
        };
        self.walk_pages(path, &rtype.to_string(), budget, &mut read)
            .await?;
        read.finish()
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
        on_page: &mut impl OnPage,
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
            let (items, next) = match on_page.known(&url, &body) {
                Some(known) => known,
                None => {
                    // The paging fields alone: the items are built once, by `on_page`.
                    let links = self.links(&url, &body)?;
                    let next = match links.next.filter(|n| !n.is_empty()) {
                        None => None,
                        Some(n) => Some(self.resolve_next(&n).map_err(|reason| SourceError::Paging {
                            url: url.clone(),
                            reason,
                        })?),
                    };
                    (on_page.page(&url, &body, next.as_deref(), links.items.0)?, next)
                }
            };
            drop(body);
            budget.spend_items(&url, items)?;
            let Some(next) = next else { return Ok(()) };
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
