//! Feeds the bytes to the Kubernetes source as the API server's JSON for one object of a
//! kuma.io CRD, or a list of them (the initial list of a watch): parsed as kube's
//! `DynamicObject` / `ObjectList<DynamicObject>`, each converted by
//! `policy_watcher::source::kube::to_resource` (kuma-model's Kubernetes reader, as Kuma's
//! store maps objects); a ZoneInsight also through `insight::parse`, as the global's
//! source reads it.
//!
//! Asserts, beyond no panic: a converted object is of the watched type and holds the
//! resource invariants (mesh scope, a name), and its universal form reads back to the same
//! resource.
#![no_main]

use kube::core::{DynamicObject, ObjectList};
use kuma_model::ResourceType;
use kuma_sync_fuzz::{check_resource, check_universal_round_trip, pick_type};
use libfuzzer_sys::fuzz_target;
use policy_watcher::source::{insight, kube as source};

fuzz_target!(|data: &[u8]| {
    let objects = match serde_json::from_slice::<ObjectList<DynamicObject>>(data) {
        Ok(list) => list.items,
        Err(_) => match serde_json::from_slice::<DynamicObject>(data) {
            Ok(obj) => vec![obj],
            Err(_) => return,
        },
    };
    for obj in objects {
        convert(obj, data.len());
    }
});

fn convert(obj: DynamicObject, seed: usize) {
    let kind = obj.types.as_ref().map(|t| t.kind.as_str());
    let t = pick_type(
        kind,
        seed,
        ResourceType::all().filter(|t| source::api_resource(*t).is_some()),
    );
    let ar = source::api_resource(t).expect("a CRD type");
    if let Ok(r) = source::to_resource(t, &ar, obj) {
        assert_eq!(r.rtype, t, "converted to another type");
        check_resource(&r);
        check_universal_round_trip(&r);
        if t.name() == "ZoneInsight" {
            let _ = insight::parse(&r.spec);
        }
    }
}
