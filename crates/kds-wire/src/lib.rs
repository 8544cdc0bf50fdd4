//! Kuma's KDS on the wire, shared by the probe (kds-probe) and the simulator (kuma-sim):
//! the generated gRPC code, the requests a zone-side client sends (its node, the
//! subscription, ACK and NACK, its gRPC metadata), the `KumaResource` envelope of every
//! resource, the message size limit, and the gRPC channel to a global with TLS. What each
//! side subscribes to, sends or refuses is its own policy, not this crate's.
//!
//! # Layout
//! - [`proto`]: the code generated from the workspace's `proto/` directory
//!   (`KumaResource`, the delta discovery messages, `Node`, the `KDSSyncService` and
//!   `GlobalKDSService` clients and servers); its main types are re-exported here.
//! - [`features`]: the node features a Kuma 2.14 zone advertises, and the `features` header.
//! - [`request`]: the node, subscription, ACK and NACK, and the gRPC metadata of a zone.
//! - [`health`]: the zone's HealthCheck loop, each call bounded.
//! - [`codec`]: a `KumaResource` into and out of its delta-resource envelope.
//! - [`address`]: [`KdsAddress`], `grpcs://host:port` or `grpc://host:port`.
//! - [`tls`]: the rustls client configuration and the verifier that accepts Kuma's
//!   self-signed CA:TRUE certificate when it is itself the CA file.
//! - [`transport`]: the TCP + TLS connector, the tonic channel, the size limit.
//! - [`error`]: [`Error`], why a channel could not be opened, retryable or not.

pub mod address;
pub mod codec;
pub mod error;
pub mod features;
pub mod health;
pub mod proto;
pub mod request;
pub mod tls;
pub mod transport;

pub use address::{AddressError, KdsAddress};
pub use codec::{KUMA_RESOURCE_TYPE_URL, WireResource};
pub use error::{Error, Result};
pub use proto::{envoy, google, kuma};
pub use tls::{ClientIdentity, TlsSettings};
pub use transport::{Connector, MAX_MESSAGE_SIZE};

pub use envoy::{
    config::core::v3::{ControlPlane, Node},
    service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as DeltaResource},
};
pub use kuma::mesh::v1alpha1::{
    KumaResource, ZoneHealthCheckRequest, ZoneHealthCheckResponse, global_kds_service_client,
    global_kds_service_server, kds_sync_service_client, kds_sync_service_server, kuma_resource::Meta,
};
