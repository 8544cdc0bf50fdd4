//! Generates the KDS client and server from `../../proto` with protox: no protoc needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = "../../proto";
    let protos = [format!("{root}/kuma/mesh/v1alpha1/kds.proto")];
    let fds = protox::compile(&protos, [root])?;
    tonic_prost_build::configure()
        // Sorted labels: cheaper to build and compare than a HashMap for the few labels a
        // resource has, and deterministic when encoded.
        .btree_map(".kuma.mesh.v1alpha1.KumaResource.Meta.labels")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={root}");
    Ok(())
}
