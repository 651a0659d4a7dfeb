//! Compiles `proto/` with protox (pure Rust: no system `protoc`), then generates prost
//! messages, tonic services and pbjson serde impls (the proto3 JSON mapping) from it.

use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "rapport/v1/events.proto",
        "rapport/v1/ledger.proto",
        "rapport/v1/accounts.proto",
        "rapport/v1/projections.proto",
        "rapport/v1/privacy.proto",
        "rapport/storage/v1/record.proto",
        "google/rpc/status.proto",
    ];
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let descriptors = protox::compile(files, [&proto_root])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("rapport_descriptor.bin");
    fs::write(&descriptor_path, descriptors.encode_to_vec())?;

    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_well_known_types(true)
        // A stored event's payload shares the buffer it was read into: no copy per event.
        .bytes(".rapport.storage.v1.StoredEvent.event")
        .codec_path("crate::codec::Codec")
        .extern_path(".google.protobuf", "::pbjson_types")
        // Generated below into `crate::rpc`, beside `v1`, rather than where prost would look
        // for it from `v1` (a `google` module beside a `rapport` one).
        .extern_path(".google.rpc", "crate::rpc")
        .compile_fds(descriptors.clone())?;
    let mut rpc = descriptors;
    rpc.file.retain(|file| file.package() == "google.rpc");
    tonic_prost_build::configure()
        .skip_protoc_run()
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(rpc)?;

    let descriptor_bytes = fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .preserve_proto_field_names()
        .build(&[".rapport", ".google.rpc"])?;
    Ok(())
}
