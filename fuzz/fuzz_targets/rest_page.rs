//! Feeds the bytes to the REST source as one page body from a control plane's API:
//! `policy_watcher::source::rest::KumaApi::read_page` (JSON parse, `total` check, the
//! items through kuma-model's reader, `next` resolved onto our own address), on an API
//! at a plain base URL and one behind a proxy path prefix; and as a `/zone-insights`
//! page to `policy_watcher::source::insight::parse_list`.
//!
//! Asserts, beyond no panic: an accepted page holds no more items than its bytes can
//! spell, keeps only the type asked for, and every item holds its resource invariants;
//! a `next` page is always on our base URL (scheme, host, port and path prefix), so the
//! token goes nowhere else; an insight page gives at most one insight per item.
#![no_main]

use std::sync::LazyLock;

use kuma_model::ResourceType;
use kuma_sync_fuzz::{check_resource, pick_type};
use libfuzzer_sys::fuzz_target;
use policy_watcher::source::{
    http::{HttpClient, HttpSettings},
    insight,
    rest::KumaApi,
};
use serde_json::Value;

/// The smallest item a page can hold and a reader accept: `{"type":"Mesh","name":"a"}`.
const MIN_ITEM_BYTES: usize = 26;

static APIS: LazyLock<Vec<KumaApi>> = LazyLock::new(|| {
    let http = HttpClient::new(HttpSettings::default()).expect("HTTP client");
    ["http://127.0.0.1:5681", "https://kuma.example:443/kuma"]
        .iter()
        .map(|base| KumaApi::new(base, http.clone()).expect("API"))
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let parsed: Option<Value> = serde_json::from_slice(data).ok();
    let hint = parsed
        .as_ref()
        .and_then(|p| p.pointer("/items/0/type"))
        .and_then(Value::as_str);
    let rtype = pick_type(
        hint,
        data.len(),
        ResourceType::all().filter(|t| !t.info().rest_path.is_empty()),
    );
    let api = &APIS[data.len() % APIS.len()];
    let url = format!("{}/{}?size=1000", api.base(), rtype.info().rest_path);
    if let Ok(page) = api.read_page(rtype, &url, data) {
        assert!(parsed.is_some(), "accepted a page that is not JSON");
        assert!(
            page.items * MIN_ITEM_BYTES <= data.len(),
            "{} items from {} bytes",
            page.items,
            data.len()
        );
        assert!(page.resources.len() <= page.items);
        for r in &page.resources {
            assert_eq!(r.rtype, rtype, "kept an item of another type");
            check_resource(r);
        }
        if let Some(next) = &page.next {
            let on_base = next
                .strip_prefix(api.base())
                .is_some_and(|rest| rest.starts_with('/'));
            assert!(on_base, "`next` leads to {next}, off base {}", api.base());
        }
    }
    if let Some(page) = &parsed
        && let Ok(insights) = insight::parse_list(page)
    {
        let items = page["items"].as_array().map_or(0, Vec::len);
        assert!(insights.len() <= items);
    }
});
