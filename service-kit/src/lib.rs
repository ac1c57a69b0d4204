//! What every service of the workspace runs the same way.
//!
//! - [`telemetry`]: tracing setup (`RUST_LOG`, `LOG_FORMAT`).
//! - [`shutdown`]: the one SIGINT/SIGTERM handler, which cancels a token.
//! - [`healthcheck`]: `GET` a local path for container health checks.
//! - [`core_client`]: payment-core's endpoints over TLS or mutual TLS, and
//!   the API key on every call.
//! - [`replicas`]: calls that move to the next payment-core replica when
//!   one is unreachable.

pub mod core_client;
pub mod healthcheck;
pub mod replicas;
pub mod shutdown;
pub mod telemetry;
