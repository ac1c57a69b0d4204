//! payment-core's integration tests, one binary: a real server on loopback
//! over a real SQLite file (`helpers`), and the built binary under grpcurl.
//!
//! - `auth`: API keys, roles, who sees client secrets, idempotency per merchant;
//! - `credentials`: the binary refuses missing, public or doubly given
//!   credentials outside development mode, and reads each from a file;
//! - `hostile`: generated hostile creates, cancels and reports;
//! - `orders`: the unary RPCs, signed reports and the state machine's answers;
//! - `watch`: WatchPayments streams: history then live, resume, shutdown;
//! - `store`: the store and watcher under stress, restart and expiry, on
//!   both backends (SQLite, PostgreSQL);
//! - `postgres`: several PostgreSQL-store replicas on one database;
//! - `replicas`: several payment-core binaries on one PostgreSQL database;
//! - `hanging_database`: a database that stops answering without a word
//!   (a partition) ends the watches it would hold;
//! - `metrics`: the Prometheus metrics on their own listener;
//! - `tls`: TLS and mutual TLS with a throwaway CA;
//! - `grpcurl`: the built binary driven by grpcurl, SIGTERM and kill -9.

// A panic in a test is a failing test: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

mod auth;
mod credentials;
mod grpcurl;
mod hanging_database;
mod helpers;
mod hostile;
mod metrics;
mod orders;
mod postgres;
mod replicas;
mod store;
mod tls;
mod watch;
