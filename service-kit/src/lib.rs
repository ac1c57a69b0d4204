//! What every service of the workspace runs the same way.
//!
//! - [`credentials`]: secrets from `NAME` or `NAME_FILE`, and development
//!   mode (`PAYMENTS_PUSH_DEV`), without which a service refuses to start
//!   with a missing or public development credential.
//! - [`address_file`]: the addresses a service bound, written for whoever
//!   started it on port 0 (`ADDRESS_FILE`).
//! - [`telemetry`]: logs and OpenTelemetry traces (`RUST_LOG`,
//!   `LOG_FORMAT`, `OTEL_EXPORTER_OTLP_ENDPOINT`), and W3C trace context
//!   read from requests and written on calls.
//! - [`metrics`]: the Prometheus registry each service fills, with the
//!   process metrics, and `GET /metrics`.
//! - [`shutdown`]: the one SIGINT/SIGTERM handler, which cancels a token.
//! - [`healthcheck`]: `GET` a local path for container health checks.
//! - [`core_client`]: payment-core's endpoints over TLS or mutual TLS, and
//!   the API key on every call.
//! - [`replicas`]: calls that move to the next payment-core replica when
//!   one is unreachable.
//! - [`wire`]: HTTP/1.1 and `text/event-stream` by hand over a socket, for
//!   the healthcheck, loadgen and testkit's SSE client.

pub mod address_file;
pub mod core_client;
pub mod credentials;
pub mod healthcheck;
pub mod metrics;
pub mod replicas;
pub mod shutdown;
pub mod telemetry;
pub mod wire;
