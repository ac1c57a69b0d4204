//! mock-provider stands in for a third-party payment provider.
//!
//! - [`web`]: the payment page (pay, decline, cancel), which reads the order
//!   from payment-core and reports what the payer did.
//! - [`reporter`]: signed `ReportPaymentResult` calls, also used by the
//!   `mock-provider report` command for scripts.
//! - [`pages`]: the HTML templates, filled in one pass with escaped values.
//! - [`metrics`]: the reports sent, at `GET /metrics`.
//! - [`startup`] and [`config`]: running it.

pub mod config;
pub mod metrics;
pub mod pages;
pub mod reporter;
pub mod startup;
pub mod web;

pub use startup::Application;
