//! Short-lived credentials the gateway signs itself, so that no long-lived
//! secret travels in a URL or sits where a page's scripts can read it:
//! - **stream tokens**: minutes, one order, read-only. `EventSource` cannot
//!   send headers, so its URL carries one of these (`?stream_token=`)
//!   instead of the order's client secret; a page gets one by POSTing the
//!   secret in a request body.
//! - **dashboard sessions**: the HttpOnly cookie a dashboard sign-in sets,
//!   instead of the admin token in the page or its URLs.
//!
//! Both are `v1.<expiry, unix seconds>.<hex HMAC-SHA256>`. The tag covers
//! the purpose, the order (stream tokens) and the expiry, under keys
//! derived from `ADMIN_TOKEN`: every gateway of a deployment shares it, so
//! any gateway accepts what another signed without a new secret to
//! distribute, and rotating the admin token voids every token and session.
//! A token's order is not in it but in the path it opens: a token for one
//! order opens no other.
//!
//! A stream token is checked when a stream opens; a stream opened with one
//! runs to its end (its order's final event) like any other.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::event::OrderId;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";

/// Why a presented token opens nothing. The browser is told which, so a
/// page knows to fetch a new one; none of them says whether the order
/// exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid for this")]
    Invalid,
}

/// Signs and checks stream tokens and dashboard sessions.
#[derive(Clone)]
pub struct Signer {
    stream_key: [u8; 32],
    session_key: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// The signer of a deployment whose admin token is `admin_token`.
    pub fn new(admin_token: &str) -> Self {
        let derive = |label: &str| -> [u8; 32] {
            let mut mac = mac(admin_token.as_bytes());
            mac.update(b"payments-push gateway key\n");
            mac.update(label.as_bytes());
            mac.finalize().into_bytes().into()
        };
        Self {
            stream_key: derive("stream token"),
            session_key: derive("dashboard session"),
        }
    }

    /// A token that opens `order`'s stream (and reads it) until `now + ttl`.
    pub fn stream_token(&self, order: OrderId, now: SystemTime, ttl: Duration) -> (String, u64) {
        let expiry = unix(now).saturating_add(ttl.as_secs().max(1));
        let tag = tag(&self.stream_key, &stream_message(order, expiry));
        (format!("{VERSION}.{expiry}.{tag}"), expiry)
    }

    /// Whether `token` opens `order` at `now`.
    pub fn check_stream_token(
        &self,
        order: OrderId,
        token: &str,
        now: SystemTime,
    ) -> Result<(), TokenError> {
        let (expiry, presented) = parse(token)?;
        let expected = tag(&self.stream_key, &stream_message(order, expiry));
        check(&expected, presented, expiry, now)
    }

    /// A dashboard session valid until `now + ttl`.
    pub fn session(&self, now: SystemTime, ttl: Duration) -> String {
        let expiry = unix(now).saturating_add(ttl.as_secs().max(1));
        let tag = tag(&self.session_key, &session_message(expiry));
        format!("{VERSION}.{expiry}.{tag}")
    }

    /// Whether `session` is a live dashboard session at `now`.
    pub fn check_session(&self, session: &str, now: SystemTime) -> Result<(), TokenError> {
        let (expiry, presented) = parse(session)?;
        let expected = tag(&self.session_key, &session_message(expiry));
        check(&expected, presented, expiry, now)
    }
}

fn mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn tag(key: &[u8; 32], message: &str) -> String {
    let mut mac = mac(key);
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn stream_message(order: OrderId, expiry: u64) -> String {
    format!("stream:read\n{order}\n{expiry}")
}

fn session_message(expiry: u64) -> String {
    format!("dashboard\n{expiry}")
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn parse(token: &str) -> Result<(u64, &str), TokenError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(VERSION), Some(expiry), Some(tag), None) if tag.len() == 64 => expiry
            .parse()
            .map(|expiry| (expiry, tag))
            .map_err(|_| TokenError::Malformed),
        _ => Err(TokenError::Malformed),
    }
}

fn check(expected: &str, presented: &str, expiry: u64, now: SystemTime) -> Result<(), TokenError> {
    use subtle::ConstantTimeEq;
    if !bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
        return Err(TokenError::Invalid);
    }
    if unix(now) >= expiry {
        return Err(TokenError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(n: u8) -> OrderId {
        OrderId::parse(&format!("{n:08x}-0000-4000-8000-000000000000")).expect("uuid")
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_stream_token_opens_its_order_until_it_expires_and_nothing_else() {
        let signer = Signer::new("admin");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let (token, expiry) = signer.stream_token(order(1), now, 5 * MINUTE);
        assert_eq!(expiry, 1_000_300);
        assert_eq!(signer.check_stream_token(order(1), &token, now), Ok(()));
        assert_eq!(
            signer.check_stream_token(order(2), &token, now),
            Err(TokenError::Invalid),
            "one order only"
        );
        assert_eq!(
            signer.check_stream_token(order(1), &token, now + 5 * MINUTE),
            Err(TokenError::Expired)
        );
        assert_eq!(
            Signer::new("rotated").check_stream_token(order(1), &token, now),
            Err(TokenError::Invalid),
            "a new admin token voids old tokens"
        );
        // A later expiry under the old tag is a forgery.
        let stretched = token.replace("1000300", "1999999");
        assert_eq!(
            signer.check_stream_token(order(1), &stretched, now),
            Err(TokenError::Invalid)
        );
        for malformed in ["", "v1", "v1.x.y", "v2.1000300.00", &format!("{token}.x")] {
            assert_eq!(
                signer.check_stream_token(order(1), malformed, now),
                Err(TokenError::Malformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn sessions_and_stream_tokens_do_not_open_each_other() {
        let signer = Signer::new("admin");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let session = signer.session(now, MINUTE);
        assert_eq!(signer.check_session(&session, now), Ok(()));
        assert_eq!(
            signer.check_session(&session, now + MINUTE),
            Err(TokenError::Expired)
        );
        let (token, _) = signer.stream_token(order(1), now, MINUTE);
        assert_eq!(signer.check_session(&token, now), Err(TokenError::Invalid));
        assert_eq!(
            signer.check_stream_token(order(1), &session, now),
            Err(TokenError::Invalid)
        );
        assert!(!format!("{signer:?}").contains("admin"));
    }
}
