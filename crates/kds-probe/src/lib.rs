//! A synthetic Kuma zone that holds a live KDS stream to the global control plane and
//! keeps a view of what the global sends zones, with metrics, for kuma-sync.
//!
//! The probe connects as its own zone (never a real zone's name), subscribes once per
//! type with a wildcard, ACKs every response and never NACKs, never opens
//! ZoneToGlobalSync and never subscribes to secrets (kuma-semantics 5). It reconnects with
//! jittered exponential backoff; fatal errors (configuration, certificates, refused
//! identity) stop it with a message that says why.
//!
//! The wire itself (the channel and its TLS verifier, the node, subscriptions and ACKs,
//! the `KumaResource` envelope, the message size limit) is kds-wire's, which the
//! simulator shares; this crate holds the probe's policy on top of it. Its command line
//! (`kuma-sync probe`) is the kuma-sync crate's, beside `verify` and `serve`.
//!
//! # Layout
//! - [`config`]: [`ProbeConfig`] and its validation.
//! - [`error`]: [`Error`], classified retryable or fatal, with metric labels.
//! - [`session`]: one GlobalToZoneSync stream and the HealthCheck calls beside it.
//! - [`decode`]: wire resources into view entries.
//! - [`view`]: the per-type view, change events and snapshots.
//! - [`backoff`]: reconnect delays.
//! - [`metrics`]: the `kuma_sync_kds_*` metrics.
//! - [`probe`]: [`Probe`], the reconnect loop.
//! - [`record`]: `--record`: every response as its bytes, and replaying a recording.

pub mod backoff;
pub mod config;
pub mod decode;
pub mod error;
pub mod metrics;
pub mod probe;
pub mod record;
pub mod session;
pub mod view;

pub use config::{ConfigError, KdsAddress, ProbeConfig, TlsSettings};
pub use error::{Error, Result};
pub use probe::Probe;
pub use view::{Entry, SentResource, Snapshot, Spec, View, ViewEvent};
