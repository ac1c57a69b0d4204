//! The rules of the contract that every service (and every test) must read
//! the same way, written once: which statuses are final, the names events
//! carry on the browser side, the development secrets, and how a client
//! secret is checked without being held.
//!
//! payment-core's domain decides transitions with its own state machine; a
//! test in its gRPC edge checks that its final statuses and names are the
//! ones written here.

use sha2::{Digest, Sha256};

use crate::payments::v1::OrderStatus;

/// The digest of an order's client secret that every answer and event
/// carries instead of the secret (`Order.client_secret_sha256`): a gateway
/// checks a browser's secret by digesting it and comparing, so the log, its
/// `NOTIFY`s, the watch streams and the gateways' memory never hold a
/// secret. An unkeyed SHA-256 suffices for the same reason as for API
/// keys: secrets are 32 random bytes, so there is nothing to guess from a
/// digest, and no key to hand every gateway and rotate.
pub fn client_secret_sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The public development credentials: anyone who reads this file knows
/// them. A service accepts them only in development mode
/// (`PAYMENTS_PUSH_DEV=1` or `--dev`, `service_kit::credentials`), where they
/// also stand in for every credential left unset, so that a laptop run works
/// without configuration; without it, it refuses to start with one.
pub mod dev {
    /// The HMAC secret shared by the provider and payment-core.
    pub const PROVIDER_SECRET: &str = "dev-provider-secret-change-me";
    /// The token for the merchant dashboard and its all-orders stream.
    pub const ADMIN_TOKEN: &str = "dev-admin-token";
    /// The gateway's key for payment-core's PaymentService: roles
    /// `merchant` (its checkout creates orders) and `gateway` (it streams
    /// events, checking browsers' secrets against their digests), for merchant
    /// [`MERCHANT`].
    pub const GATEWAY_API_KEY: &str = "pcore_dev_gateway_public_change_me";
    /// A merchant's key (role `merchant`), for grpcurl and shop backends.
    pub const MERCHANT_API_KEY: &str = "pcore_dev_merchant_public_change_me";
    /// The mock provider's key (role `reader`): it reads the order it shows.
    pub const PROVIDER_API_KEY: &str = "pcore_dev_provider_public_change_me";
    /// The merchant both development merchant keys act for.
    pub const MERCHANT: &str = "dev-shop";
    /// Every public credential above: outside development mode none is
    /// accepted, whichever credential it is given as.
    pub const PUBLIC: &[&str] = &[
        PROVIDER_SECRET,
        ADMIN_TOKEN,
        GATEWAY_API_KEY,
        MERCHANT_API_KEY,
        PROVIDER_API_KEY,
    ];
}

/// The statuses a payment ends in. Nothing follows them: an order stream
/// ends after one, and a browser that saw one stops.
pub const TERMINAL_STATUSES: [OrderStatus; 4] = [
    OrderStatus::Succeeded,
    OrderStatus::Failed,
    OrderStatus::Canceled,
    OrderStatus::Expired,
];

/// Every status an order can be in (all but `Unspecified`), in lifecycle order.
pub const ORDER_STATUSES: [OrderStatus; 6] = [
    OrderStatus::Created,
    OrderStatus::Processing,
    OrderStatus::Succeeded,
    OrderStatus::Failed,
    OrderStatus::Canceled,
    OrderStatus::Expired,
];

/// The SSE `event:` name of the gateway's heartbeat. Its `data` is
/// `{"interval_ms":N}`: a stream sends one when it opens and one after every
/// `N` ms without another frame, so a page that hears nothing for a few
/// intervals knows its connection is dead and reopens it. It has no `id:`
/// (the resume point stays the last order event's), and is never an
/// order's status.
pub const HEARTBEAT_EVENT: &str = "heartbeat";

impl OrderStatus {
    /// Whether the payment is over: no event follows one in this status.
    pub fn is_terminal(self) -> bool {
        TERMINAL_STATUSES.contains(&self)
    }

    /// The lower-case name of the status: the SSE `event:` field, the
    /// `status` of the gateway's JSON. `None` for `Unspecified`, which no
    /// order is ever in.
    pub fn event_name(self) -> Option<&'static str> {
        Some(match self {
            Self::Unspecified => return None,
            Self::Created => "created",
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        })
    }

    /// The status an SSE `event:` name stands for.
    pub fn from_event_name(name: &str) -> Option<Self> {
        ORDER_STATUSES
            .into_iter()
            .find(|status| status.event_name() == Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_statuses_are_the_four_results() {
        let terminal: Vec<_> = ORDER_STATUSES
            .into_iter()
            .filter(|status| status.is_terminal())
            .collect();
        assert_eq!(terminal, TERMINAL_STATUSES);
        assert!(!OrderStatus::Unspecified.is_terminal());
    }

    #[test]
    fn the_client_secret_digest_is_sha256_of_the_utf8_bytes() {
        // `printf %s cs_abc | sha256sum`
        assert_eq!(
            hex::encode(client_secret_sha256("cs_abc")),
            "5194b158cd585be3d960f2998c3fd5b2b2c003bdd09661b7a71e104d81278149"
        );
    }

    #[test]
    fn event_names_round_trip_and_unspecified_has_none() {
        for status in ORDER_STATUSES {
            let name = status.event_name().expect("every real status has a name");
            assert_eq!(OrderStatus::from_event_name(name), Some(status));
        }
        assert_eq!(OrderStatus::Unspecified.event_name(), None);
        assert_eq!(OrderStatus::from_event_name("paid"), None);
    }
}
