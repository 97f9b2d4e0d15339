//! Compiles `proto/eddy/v1/*.proto` with protox (a pure-Rust protobuf
//! compiler), so building Eddy needs no `protoc` on the machine.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let dir = root.join("eddy/v1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    println!("cargo:rerun-if-changed={}", dir.display());
    let descriptors = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        // Event bodies pass from the wire into storage without a copy.
        .bytes(".eddy.v1.Event.key")
        .bytes(".eddy.v1.Event.payload")
        .btree_map(".")
        // Undecodable bytes are the sender's mistake: INVALID_ARGUMENT.
        .codec_path("crate::codec::StrictCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
