//! The gRPC edge: `payments.v1` services over the domain and the store.
//!
//! Protobuf types stop here: requests are parsed into domain values
//! (`convert`), answers are built from domain values, and every failure goes
//! through [`ApiError`], which picks the status code, logs internal causes
//! once and tells the client only what it can act on.

mod convert;
mod error;
mod payments;
mod provider;

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use payments::PaymentApi;
pub use provider::ProviderApi;

use crate::{clock::Clock, metrics::CoreMetrics, store::Store, store_health::StoreOutages};

/// What both services share.
#[derive(Clone)]
pub struct CoreState {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    /// Base of `payment_url`, without a trailing slash.
    pub provider_page_url: Arc<str>,
    pub order_ttl: Duration,
    pub slow_watcher_timeout: Duration,
    /// Outages of the store: open WatchPayments streams end with
    /// UNAVAILABLE when one begins.
    pub store_outages: StoreOutages,
    /// Fires at shutdown: open WatchPayments streams end with UNAVAILABLE.
    pub shutdown: CancellationToken,
    pub metrics: CoreMetrics,
}
