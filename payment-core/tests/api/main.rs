//! payment-core's integration tests, one binary: a real server on loopback
//! over a real SQLite file (`helpers`), and the built binary under grpcurl.
//!
//! - `orders`: the unary RPCs, signed reports and the state machine's answers;
//! - `watch`: WatchPayments streams: history then live, resume, shutdown;
//! - `store`: the store and watcher under stress, restart and expiry;
//! - `grpcurl`: the built binary driven by grpcurl, SIGTERM and kill -9.

mod grpcurl;
mod helpers;
mod orders;
mod store;
mod watch;
