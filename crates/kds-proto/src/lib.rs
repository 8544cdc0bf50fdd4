//! Generated code for Kuma's KDS protocol, shared by the probe (client) and the simulated
//! global (server). The `.proto` files live in the workspace's `proto/` directory.
//!
//! # Layout
//! - [`kuma`]: `KumaResource`, the health check, and the `KDSSyncService` /
//!   `GlobalKDSService` clients and servers.
//! - [`envoy`]: the delta discovery messages and `Node`.
//! - [`google`]: `google.rpc.Status`.

// Generated code documents nothing and names things as protobuf does.
#![allow(missing_docs, clippy::all)]

pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

pub mod envoy {
    pub mod config {
        pub mod core {
            pub mod v3 {
                tonic::include_proto!("envoy.config.core.v3");
            }
        }
    }
    pub mod service {
        pub mod discovery {
            pub mod v3 {
                tonic::include_proto!("envoy.service.discovery.v3");
            }
        }
    }
}

pub mod kuma {
    pub mod mesh {
        pub mod v1alpha1 {
            tonic::include_proto!("kuma.mesh.v1alpha1");
        }
    }
}

/// The inner Any type of every KDS resource (kuma-semantics section 4).
pub const KUMA_RESOURCE_TYPE_URL: &str = "type.googleapis.com/kuma.mesh.v1alpha1.KumaResource";

pub use envoy::{
    config::core::v3::{ControlPlane, Node},
    service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as DeltaResource},
};
pub use kuma::mesh::v1alpha1::{
    KumaResource, ZoneHealthCheckRequest, ZoneHealthCheckResponse, global_kds_service_client,
    global_kds_service_server, kds_sync_service_client, kds_sync_service_server, kuma_resource::Meta,
};
