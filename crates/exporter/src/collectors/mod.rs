//! Prometheus collectors. Convergence state is built at scrape time from the monitor, so a
//! zone that leaves the configuration disappears from `/metrics` with it; events
//! (propagations, flaps) are recorded as they happen.
//!
//! - [`policy`]: per-zone and per-source state, read at scrape time.
//! - [`events`]: the histogram and counters the monitor records into.

pub mod events;
pub mod policy;

/// Every metric of this binary starts with this.
pub const PREFIX: &str = "kuma_sync";
