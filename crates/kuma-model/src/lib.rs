//! Kuma's resource model as kuma-sync needs it: the resource types and how KDS moves each
//! of them, the names synced copies carry, the identity that matches copies across
//! control planes, spec fingerprints, and readers for the documents users have in hand.
//! Pure data and functions: no IO, no async.
//!
//! # Layout
//! - [`types`]: the type table (KDS flags, scope, hashing, REST path, Kubernetes kind).
//! - [`hash`]: Kuma's hash-suffixed names.
//! - [`resource`]: [`Resource`], [`Identity`], origins and the expected names of copies,
//!   and the name a store gives a synced copy ([`Environment::stored_name`]).
//! - [`delta_key`]: the KDS delta key `<name>.<mesh>`, joined and split.
//! - [`fingerprint`]: canonical specs, their 128-bit fingerprints and structural diffs.
//! - [`read`]: universal YAML, REST JSON and Kubernetes documents into [`Resource`]s.
//! - [`version`]: which Kuma a control plane runs ([`KumaLine`]), and so which rules apply.
//! - [`zone_name`]: the one rule for zone names (Kuma 2.x, and Kuma 3's stricter one).
//! - [`constants`]: the names Kuma treats specially (internal GlobalSecrets, synced Configs).
//! - `fixtures` (feature `test-util`): policies to build tests and benchmarks from.

pub mod constants;
pub mod delta_key;
pub mod fingerprint;
#[cfg(feature = "test-util")]
pub mod fixtures;
pub mod hash;
pub mod read;
pub mod resource;
pub mod types;
pub mod version;
pub mod zone_name;

pub use fingerprint::{Fingerprint, fingerprint, fingerprint_json};
pub use resource::{CpRole, Environment, Identity, Origin, Resource, ResourceKey, labels};
pub use types::{ResourceType, TypeInfo};
pub use version::KumaLine;
