//! Generated code for Rapport's protobuf contract.
//!
//! `rapport.v1` is the client contract (the `Ledger`, `Accounts` and `Projections` services
//! and their messages); `rapport.storage.v1` is the on-disk envelope of a recorded event. Messages carry
//! serde impls following the proto3 JSON mapping, with the proto field names (`account_id`,
//! not `accountId`) on output; both spellings are accepted on input.

#![allow(missing_docs)]

pub mod codec;
pub mod framed;

/// The client contract, package `rapport.v1`.
// Generated: a `oneof` holding a whole recorded event next to a small checkpoint is expected.
#[allow(clippy::large_enum_variant)]
pub mod v1 {
    tonic::include_proto!("rapport.v1");
    include!(concat!(env!("OUT_DIR"), "/rapport.v1.serde.rs"));
}

/// The on-disk envelope, package `rapport.storage.v1`.
pub mod storage {
    /// Version 1 of the envelope.
    pub mod v1 {
        tonic::include_proto!("rapport.storage.v1");
        include!(concat!(env!("OUT_DIR"), "/rapport.storage.v1.serde.rs"));
    }
}

/// `google.rpc.Status`: a gRPC status with its details, as `AppendStreamResponse` carries it.
pub mod rpc {
    tonic::include_proto!("google.rpc");
    include!(concat!(env!("OUT_DIR"), "/google.rpc.serde.rs"));
}

/// The encoded `FileDescriptorSet` of every file above, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rapport_descriptor.bin"));

/// Well-known types (`Timestamp`, `Empty`) as the generated code uses them.
pub use pbjson_types as wkt;
