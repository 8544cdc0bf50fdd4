//! Node-metadata features a zone advertises (`pkg/kds/features.go`, kuma-semantics 2.2).

pub const HASH_SUFFIX: &str = "hash-suffix";
pub const PRODUCER_POLICY_FLOW: &str = "producer-policy-flow";
pub const OPTIONAL_TOP_LEVEL_TARGET_REF: &str = "optional-top-level-target-ref";
pub const HG_MZ_SELECTOR: &str = "hg-mz-selector";
pub const ZONE_TOKEN: &str = "zone-token";

/// The five a Kuma v2.14 zone sends in its node metadata. Advertising all of them makes
/// the global send the names and sets real zones get. `zone-ping-health` is left out on
/// purpose: it would opt the stream into ZoneWatch.
pub const ALL: [&str; 5] = [
    ZONE_TOKEN,
    HASH_SUFFIX,
    HG_MZ_SELECTOR,
    PRODUCER_POLICY_FLOW,
    OPTIONAL_TOP_LEVEL_TARGET_REF,
];

/// Values of the multi-value `features` gRPC metadata header.
pub const HEADER: [&str; 1] = [HASH_SUFFIX];
