//! Compiles `payments/v1/*.proto` with protox (pure Rust, so no system
//! `protoc` is needed on a fresh machine or in a Docker build) and writes the
//! encoded descriptor set that payment-core serves over gRPC reflection.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["payments/v1/payments.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptor_set = protox::compile(protos, ["."])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("payments_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptor_set),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptor_set)?;
    Ok(())
}
