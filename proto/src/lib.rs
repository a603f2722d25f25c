//! The `tongban.v1` wire contract: protobuf messages and tonic client/server stubs, generated at
//! build time from `proto/tongban/v1/*.proto`. This crate does no I/O; domain types live in
//! `tongban-core` and convert to and from these at the API boundary.

/// Generated code for package `tongban.v1`.
#[allow(clippy::doc_lazy_continuation, clippy::large_enum_variant, missing_docs)]
pub mod v1 {
    tonic::include_proto!("tongban.v1");
}

/// Encoded `FileDescriptorSet` of the contract, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("tongban_descriptor");
