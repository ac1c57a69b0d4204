//! The `payments.v1` gRPC contract shared by every service of the workspace.
//!
//! - [`payments::v1`]: the generated messages, clients and servers.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for gRPC reflection.
//! - [`currency`]: the ISO 4217 codes the contract accepts, and their minor units.
//! - [`signature`]: how the provider signs `ReportPaymentResult` calls and how
//!   payment-core checks them. It lives with the contract because both sides
//!   must compute the same bytes.
//! - [`contract`]: the rules every side must read the same way: which
//!   statuses are final, the events' names, the development secrets.

pub mod contract;
pub mod currency;
pub mod signature;

pub mod payments {
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("payments.v1");
    }
}

/// Encoded `FileDescriptorSet` of `payments.v1` (and the well-known types it
/// imports), for registering with tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/payments_descriptor.bin"));
