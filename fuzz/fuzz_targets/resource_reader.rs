//! Feeds the bytes to kuma-model's readers as a file `kuma-sync verify` reads: UTF-8
//! text of YAML or JSON documents in any of the formats `read_str` detects (Kuma's
//! universal form, REST list pages, Kubernetes objects and lists). The input's length
//! chooses the options: unknown types skipped or refused, one page or the whole list.
//!
//! Asserts, beyond no panic: every resource read holds the resource invariants, is there
//! once, and its universal form reads back to the same resource; the resources are no
//! more than the text can spell.
#![no_main]

use kuma_model::read::{ReadOptions, read_str};
use kuma_sync_fuzz::{check_resource, check_unique, check_universal_round_trip};
use libfuzzer_sys::fuzz_target;

/// The shortest document a reader accepts spells a type and a name: `{type: Mesh, name: a}`
/// is 22 bytes; `[*a, *a]` repeats an anchor in 3 bytes a copy, but a copy with the same
/// name is the same resource.
const MIN_RESOURCE_BYTES: usize = 3;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let opts = ReadOptions {
        skip_unknown_types: data.len() % 2 == 1,
        caller_follows_pages: data.len() % 4 >= 2,
    };
    let Ok(loaded) = read_str("fuzz.yaml", text, &opts) else {
        return;
    };
    assert!(loaded.resources.len() * MIN_RESOURCE_BYTES <= data.len());
    check_unique(&loaded.resources);
    for r in &loaded.resources {
        check_resource(r);
        check_universal_round_trip(r);
    }
});
