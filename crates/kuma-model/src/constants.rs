//! Names Kuma treats specially when it syncs, shared by the verifier's rules and the
//! simulator's generation (which stay two implementations on purpose: the simulator is
//! the tests' oracle), so that neither can drift from the other on a spelling.
//!
//! From `pkg/core/resources/apis/system/constants.go` and `pkg/kds/context/context.go`
//! (v2.14.3; unchanged at Kuma's main branch).

/// GlobalSecrets internal to each control plane: never sent to zones.
pub const INTERNAL_GLOBAL_SECRETS: [&str; 4] = [
    "envoy-admin-ca",
    "admin-user-token",
    "inter-cp-ca",
    "user-token-revocations",
];

/// GlobalSecrets named with this prefix (user-token signing keys) are never sent either.
pub const USER_TOKEN_SIGNING_KEY_PREFIX: &str = "user-token-signing-key";

/// A zone-token signing key goes out as its public key, renamed with
/// [`ZONE_TOKEN_SIGNING_PUBLIC_KEY_PREFIX`].
pub const ZONE_TOKEN_SIGNING_KEY_PREFIX: &str = "zone-token-signing-key";

/// The name a zone-token signing key's public half carries in zones.
pub const ZONE_TOKEN_SIGNING_PUBLIC_KEY_PREFIX: &str = "zone-token-signing-public-key";

/// The only Config entries the global syncs (`KDSSyncedConfigs`).
pub const SYNCED_CONFIGS: [&str; 1] = ["kuma-cluster-id"];

/// Whether the global keeps this GlobalSecret to itself.
pub fn is_internal_global_secret(name: &str) -> bool {
    INTERNAL_GLOBAL_SECRETS.contains(&name) || name.starts_with(USER_TOKEN_SIGNING_KEY_PREFIX)
}
