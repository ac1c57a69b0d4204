//! payment-core owns orders, their state machine and an append-only event
//! log, and tells everyone who watches what happened to them.
//!
//! Layout, from the inside out:
//! - [`domain`]: orders, parsed value types and the state machine. No
//!   database, network, clock or protobuf messages.
//! - [`store`]: the event store interface, its embedded SQLite store and
//!   its PostgreSQL store for replicas sharing one log;
//!   a status change and its event are one transaction, and the store fans
//!   committed events out live, in sequence order.
//! - [`watch`]: one watcher of the log, history then live, gap-free.
//! - [`expiry`]: the background task that expires unpaid orders.
//! - [`store_health`]: NOT_SERVING, and open watches ended, while the
//!   store cannot be read.
//! - [`grpc`]: the `payments.v1` services; protobuf stays here.
//! - [`metrics`]: the Prometheus metrics and their HTTP listener
//!   (`PAYMENT_CORE_METRICS_LISTEN`); the store keeps its writer's own.
//! - [`auth`]: API keys and their roles: who may call which RPC, and who
//!   is handed a client secret (events carry only its digest).
//! - [`startup`], [`config`], [`clock`], [`healthcheck`]: running the
//!   service (tracing and the signal handler come from `service-kit`).

pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod expiry;
pub mod grpc;
pub mod healthcheck;
pub mod metrics;
pub mod startup;
pub mod store;
pub mod store_health;
pub mod watch;

pub use config::Config;
pub use startup::Application;
