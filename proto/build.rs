//! Compiles `tongban/v1/*.proto` with protox (pure Rust, no system `protoc`) and generates the
//! prost messages and tonic services, plus a descriptor set for gRPC reflection.

use std::{env, path::PathBuf};

const PROTO_FILES: &[&str] = &[
    "tongban/v1/catalogue.proto",
    "tongban/v1/calendar.proto",
    "tongban/v1/cases.proto",
    "tongban/v1/oversight.proto",
    "tongban/v1/custody.proto",
    "tongban/v1/staff.proto",
    "tongban/v1/events.proto",
    "tongban/v1/sync.proto",
    "tongban/v1/node.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protox does not emit rerun-if-changed lines itself.
    println!("cargo:rerun-if-changed=tongban");
    let file_descriptors = protox::compile(PROTO_FILES, ["."])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("tongban_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&file_descriptors))?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(file_descriptors)?;
    Ok(())
}
