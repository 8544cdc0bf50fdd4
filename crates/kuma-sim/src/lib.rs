//! A simulated Kuma multi-zone deployment: a global and zones that sync over real KDS
//! (gRPC, TLS, both directions) the way Kuma v2.14.3 does (kuma-semantics sections 2 to 7),
//! or, with `kumaVersion: "3"`, the way Kuma's main branch stores writes ([`kuma_3`]),
//! each with Kuma's REST API and, when Kubernetes-flavoured, a Kubernetes-style API, plus
//! fault knobs for what real control planes only show on a bad day. kuma-cp cannot run on
//! this project's machines (kuma-semantics 10.9), so every end-to-end test of the workspace
//! and `kuma-sync demo` run against this.
//!
//! As the oracle of those tests it depends on no product crate: it shares only the wire
//! with the probe (kds-wire: the channel, the node, subscriptions, ACKs and NACKs, the
//! `KumaResource` envelope) and keeps its own policy of what to send.
//!
//! # Layout
//! - [`store`]: [`GlobalStore`], the global's resources and its zone records; tests mutate
//!   it and every open stream hears of the change.
//! - [`kds`]: the gRPC server ([`start_global_kds`], [`KdsHandle`]), the per-stream delta
//!   protocol and the per-type state of a delta server, which the zones' `ZoneToGlobalSync`
//!   shares (`kds::delta`), what each zone is sent ([`kds::generation`]), resources to and
//!   from `KumaResource` ([`kds::codec`]), fault knobs ([`Faults`]) and the record of what
//!   clients sent ([`RecordedRequest`]).
//! - [`tls`]: a self-signed certificate shaped like Kuma's auto-generated one.
//! - [`rest`]: Kuma's REST API over any [`ResourceStore`] ([`rest::serve_rest`],
//!   [`rest::RestApi`]), with the global's zones and zone insights.
//! - [`k8s_api`]: a read-only Kubernetes-style API for the kuma.io CRDs over any
//!   [`ResourceStore`], so kube-rs `watcher()` runs against a simulated control plane.
//! - [`zone`]: simulated zone control planes that sync with the global over real KDS
//!   (both directions), with per-zone fault knobs.
//! - [`lab`]: a whole multi-zone lab from a [`lab::Scenario`]: global, zones, default
//!   policies, APIs, waits and faults.
//! - [`admin`]: the fault admin HTTP endpoint of a running lab.
//! - [`kuma_3`]: what Kuma 3 (main) stores differently, for scenarios with
//!   `kumaVersion: "3"`: computed labels, the REST update rule.
//!
//! # Deviations from Kuma, on purpose
//! - Specs of proto-based types are sent as JSON bytes under the proto's `type_url`: the
//!   simulator has no generated messages for them (kuma-semantics 4). Clients treat them as opaque.
//! - `Resource.version` is a hex xxh3-128 of the resource, not SHA-256; it is opaque to clients.
//! - A `GlobalToZoneSync` stream without `client-id` ends with `InvalidArgument` (Kuma
//!   returns a plain error, which grpc-go sends as `Unknown`); a first request without
//!   `node.id` ends with `InvalidArgument` (Kuma would likely panic, kuma-semantics 10.2).
//! - Zone-token signing keys are renamed to their public name but keep their spec.
//! - No keepalive ping-rate enforcement (grpc-go's `too_many_pings` GOAWAY).

pub mod admin;
pub mod k8s_api;
pub mod kds;
pub mod kuma_3;
pub mod lab;
pub mod rest;
pub mod store;
pub mod tls;
pub mod zone;

pub use kds::{
    Faults, KdsHandle, KdsServerConfig, RecordedRequest, RecordedResponse, Undecodable, start_global_kds,
    start_seeded_global,
};
pub use store::{GlobalStore, ResourceStore, Subscription, TypeStats, ZoneRecord};

/// Why the simulated global could not start or restart.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound (in use, or not local).
    #[error("failed to bind the KDS listener on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// rcgen could not build the self-signed certificate.
    #[error("failed to generate the self-signed KDS certificate")]
    Certificate(#[source] rcgen::Error),
    /// tonic rejected the TLS identity.
    #[error("failed to configure TLS for the KDS server")]
    Tls(#[source] tonic::transport::Error),
}

impl Error {
    /// A bind can fail while the previous server's socket is still closing; retrying helps.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
