//! Generated code for Kuma's KDS protocol (client and server), from the workspace's
//! `proto/` directory by `build.rs`.

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
