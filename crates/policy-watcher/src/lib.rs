//! Convergence of Kuma resources across a global control plane and its zones: what each
//! zone should hold, what it holds, and the difference, kept current one observation at a
//! time. The engine is pure (no IO); the sources read live control planes (Kuma's REST
//! API, Kubernetes watches) and feed it through the monitor.
//!
//! # Layout
//! - [`topology`]: the control planes being verified and the resources in scope.
//! - [`sync_rules`]: which global resources the global sends to which zone (Kuma's filter).
//! - [`converge`]: the incremental [`Engine`] and its states.
//! - [`report`]: the verdict with per-zone counts and reasons.
//! - [`seed`]: the post-federation check of a zone's pre-federation export.
//! - [`source`]: readers of live control planes (Kuma's REST API, Kubernetes watches,
//!   ZoneInsights).
//! - [`monitor`]: the live layer: source health, out-of-sync ages, propagation, flaps.

pub mod converge;
pub mod monitor;
pub mod report;
pub mod seed;
pub mod source;
pub mod sync_rules;
pub mod topology;

pub use converge::{Change, Direction, Engine, Finding, SlotChange, State, ZoneState};
pub use report::{Discrepancy, Report, Window};
pub use topology::{Selection, Shard, Topology, ZoneSpec};
