//! Feeds the bytes to the Kubernetes source as a watch stream from the API server: one
//! JSON watch event per line, parsed as kube's `WatchEvent<DynamicObject>` (as kube's
//! client reads `?watch=true` responses), the object of each `ADDED`, `MODIFIED` and
//! `DELETED` event converted by `policy_watcher::source::kube::to_resource`, and the
//! events applied in order to a store keyed as the source keys it.
//!
//! Asserts, beyond no panic: a converted object is of the watched type and holds the
//! resource invariants; converting an object again gives the same resource (a `DELETED`
//! event must remove what its `ADDED` stored); the store never holds more resources than
//! events applied.
#![no_main]

use std::collections::BTreeMap;

use kube::core::{DynamicObject, WatchEvent};
use kuma_model::ResourceType;
use kuma_sync_fuzz::{check_resource, pick_type};
use libfuzzer_sys::fuzz_target;
use policy_watcher::source::kube as source;

fuzz_target!(|data: &[u8]| {
    let types: Vec<_> = ResourceType::all()
        .filter(|t| source::api_resource(*t).is_some())
        .collect();
    // One watch per type; the first event that names a kind picks it.
    let mut watched = None;
    let mut store = BTreeMap::new();
    let mut applied = 0;
    for line in data.split(|b| *b == b'\n').take(64) {
        let Ok(event) = serde_json::from_slice::<WatchEvent<DynamicObject>>(line) else {
            continue;
        };
        let (obj, delete) = match event {
            WatchEvent::Added(obj) | WatchEvent::Modified(obj) => (obj, false),
            WatchEvent::Deleted(obj) => (obj, true),
            WatchEvent::Bookmark(_) | WatchEvent::Error(_) => continue,
        };
        let t = *watched.get_or_insert_with(|| {
            let kind = obj.types.as_ref().map(|t| t.kind.as_str());
            pick_type(kind, data.len(), types.iter().copied())
        });
        let ar = source::api_resource(t).expect("a CRD type");
        let Ok(r) = source::to_resource(t, &ar, obj.clone()) else {
            continue;
        };
        assert_eq!(r.rtype, t, "converted to another type");
        check_resource(&r);
        let again = source::to_resource(t, &ar, obj).expect("converts again");
        assert_eq!(again, r, "the same object converted twice differs");
        applied += 1;
        if delete {
            store.remove(&r.key());
        } else {
            store.insert(r.key(), r);
        }
        assert!(store.len() <= applied);
    }
});
