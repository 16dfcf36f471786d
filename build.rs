//! Compiles `proto/sk8/v1/*.proto` (sk8's own gRPC services) with the protoc that
//! `protoc-bin-vendored` ships, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        // The lib has no tonic transport (the gateway serves with tonic's server only);
        // clients are generic over any gRPC service, tests bring a Channel.
        .build_transport(false)
        .compile_with_config(config, &["proto/sk8/v1/namespaces.proto"], &["proto"])?;
    Ok(())
}
