//! Compiles `mxrep/v1/*.proto` with protox (no system `protoc`) and generates the tonic code, plus
//! a file descriptor set that the node serves through gRPC server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "mxrep/v1/types.proto",
        "mxrep/v1/peer.proto",
        "mxrep/v1/agent.proto",
        "mxrep/v1/admin.proto",
        "mxrep/v1/query.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("mxrep_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
