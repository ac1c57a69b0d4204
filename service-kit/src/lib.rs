//! What every service of the workspace runs the same way.
//!
//! - [`telemetry`]: tracing setup (`RUST_LOG`, `LOG_FORMAT`).
//! - [`shutdown`]: the one SIGINT/SIGTERM handler, which cancels a token.
//! - [`healthcheck`]: `GET` a local path for container health checks.
//! - [`replicas`]: calls that move to the next payment-core replica when
//!   one is unreachable.

pub mod healthcheck;
pub mod replicas;
pub mod shutdown;
pub mod telemetry;
