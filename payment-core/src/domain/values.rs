//! Parsed value types. Each `parse` names the request field it checks, so an
//! edge can turn a [`ValidationError`] straight into a field violation.

use std::fmt;

use uuid::Uuid;

/// A request field that failed to parse, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Milliseconds since the unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn plus_millis(self, millis: i64) -> Self {
        Self(self.0.saturating_add(millis))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderId(Uuid);

impl OrderId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() {
            return Err(ValidationError::new(field, "is required"));
        }
        Uuid::try_parse(raw).map(Self).map_err(|_| {
            ValidationError::new(
                field,
                "must be a UUID such as 0b5f9a8e-4a4b-4c2e-9a43-7d3c2b1e0f00",
            )
        })
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A positive amount in the currency's minor unit, capped at one billion
/// major units of a two-digit currency so that sums and formatting never
/// overflow and a typo of extra zeros is caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(i64);

impl Amount {
    pub const MAX_MINOR: i64 = 100_000_000_000;

    pub fn parse(field: &'static str, minor: i64) -> Result<Self, ValidationError> {
        if minor <= 0 {
            return Err(ValidationError::new(field, "must be greater than 0"));
        }
        if minor > Self::MAX_MINOR {
            return Err(ValidationError::new(
                field,
                format!("must be at most {}", Self::MAX_MINOR),
            ));
        }
        Ok(Self(minor))
    }

    pub fn minor(self) -> i64 {
        self.0
    }
}

/// An ISO 4217 alphabetic code a shop can take payment in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(String);

impl Currency {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        if payments_proto::currency::is_iso_4217(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(
                field,
                "must be an ISO 4217 currency code in upper case, such as EUR or USD",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a free-text field: at most `max_chars` characters and no control
/// characters other than newline and tab (they break logs and pages).
fn parse_text(field: &'static str, raw: &str, max_chars: usize) -> Result<String, ValidationError> {
    if raw.chars().count() > max_chars {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if raw
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(raw.to_owned())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
                parse_text(field, raw, Self::MAX_CHARS).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

text_type!(
    /// What the order is for, shown to the payer.
    Description, 500
);
text_type!(
    /// Why an order reached its status: a decline or cancel reason.
    Reason, 500
);
text_type!(
    /// The provider's own reference for the payment.
    ProviderReference, 255
);

/// Who an API key acts for. Idempotency keys live in their merchant's
/// namespace: two merchants may use the same key without meeting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MerchantId(String);

impl MerchantId {
    pub const MAX_LEN: usize = 64;

    /// 1 to 64 of `A-Z a-z 0-9 . _ -`: no `/`, which separates a scoped
    /// idempotency key's merchant from the client's key.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.bytes().all(allowed) {
            return Err(ValidationError::new(
                field,
                "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MerchantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The W3C trace context (`traceparent`) an order was created in, kept
/// with it so that its later steps (the provider's report, the delivery of
/// each event to a browser) join the order's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(String);

impl TraceParent {
    /// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, lowercase,
    /// ids not all zero (W3C Trace Context, version 00).
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let invalid = || {
            ValidationError::new(
                field,
                "must be a W3C traceparent (00-<trace id>-<span id>-<flags>)",
            )
        };
        let parts: Vec<&str> = raw.split('-').collect();
        let hex = |part: &str, len: usize| {
            part.len() == len
                && part
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let not_zero = |part: &str| part.bytes().any(|b| b != b'0');
        match parts.as_slice() {
            [version, trace, span, flags]
                if *version == "00"
                    && hex(trace, 32)
                    && hex(span, 16)
                    && hex(flags, 2)
                    && not_zero(trace)
                    && not_zero(span) =>
            {
                Ok(Self(raw.to_owned()))
            }
            _ => Err(invalid()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-chosen key that makes CreateOrder safe to retry, in the
/// namespace of the merchant that sent it: held as `<merchant>/<key>`,
/// which is one-to-one because a [`MerchantId`] has no `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    /// The client's `raw` key in `merchant`'s namespace; an empty key means
    /// "no key".
    pub fn parse_for(
        merchant: &MerchantId,
        field: &'static str,
        raw: &str,
    ) -> Result<Option<Self>, ValidationError> {
        Ok(Self::parse(field, raw)?.map(|key| Self(format!("{merchant}/{}", key.0))))
    }

    /// A key as the store holds it (already scoped when it was written;
    /// rows from before scoping hold the client's key alone).
    pub fn from_stored(stored: &str) -> Option<Self> {
        (!stored.is_empty()).then(|| Self(stored.to_owned()))
    }

    /// An empty key means "no key". Unscoped: only [`Self::parse_for`]
    /// and tests build keys with it.
    fn parse(field: &'static str, raw: &str) -> Result<Option<Self>, ValidationError> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                field,
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationError::new(
                field,
                "must be printable ASCII without spaces",
            ));
        }
        Ok(Some(Self(raw.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 32 random bytes, hex encoded: whoever holds it may watch one order.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        Self(format!("cs_{}", hex::encode(bytes)))
    }

    /// For secrets read back from the store, which only ever holds generated ones.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What orders and events carry instead of the secret.
    pub fn digest(&self) -> SecretDigest {
        SecretDigest(payments_proto::contract::client_secret_sha256(&self.0))
    }
}

/// The SHA-256 of an order's client secret
/// (`contract::client_secret_sha256`): it opens nothing, so it may go
/// wherever the order goes, events and notifications included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_must_be_positive_and_sane() {
        assert!(Amount::parse("amount_minor", 1).is_ok());
        assert!(Amount::parse("amount_minor", Amount::MAX_MINOR).is_ok());
        for bad in [0, -1, i64::MIN, Amount::MAX_MINOR + 1, i64::MAX] {
            assert_eq!(
                Amount::parse("amount_minor", bad).unwrap_err().field,
                "amount_minor"
            );
        }
    }

    #[test]
    fn text_fields_are_bounded_by_characters_not_bytes() {
        assert!(Description::parse("description", &"é".repeat(500)).is_ok());
        assert!(Description::parse("description", &"a".repeat(501)).is_err());
        assert!(Description::parse("description", "bell\u{7}").is_err());
    }

    #[test]
    fn idempotency_keys_of_two_merchants_never_meet() {
        let shop = MerchantId::parse("merchant", "shop").unwrap();
        let other = MerchantId::parse("merchant", "shop-2").unwrap();
        let key = |merchant, raw| IdempotencyKey::parse_for(merchant, "k", raw).unwrap();
        assert_eq!(key(&shop, "k-1"), key(&shop, "k-1"));
        assert_ne!(key(&shop, "k-1"), key(&other, "k-1"));
        assert_ne!(key(&shop, "2/x"), key(&other, "x"));
        assert!(MerchantId::parse("merchant", "shop/2").is_err());
        assert!(MerchantId::parse("merchant", "").is_err());
        assert!(MerchantId::parse("merchant", &"m".repeat(65)).is_err());
        assert_eq!(key(&shop, ""), None);
    }

    #[test]
    fn idempotency_keys_are_optional_bounded_and_printable() {
        assert_eq!(IdempotencyKey::parse("idempotency_key", ""), Ok(None));
        assert!(
            IdempotencyKey::parse("idempotency_key", &"k".repeat(255))
                .unwrap()
                .is_some()
        );
        assert!(IdempotencyKey::parse("idempotency_key", &"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("idempotency_key", "has space").is_err());
    }

    #[test]
    fn order_ids_must_be_uuids() {
        assert!(OrderId::parse("order_id", "not-a-uuid").is_err());
        assert_eq!(
            OrderId::parse("order_id", "").unwrap_err().message,
            "is required"
        );
        let id = OrderId::new_random();
        assert_eq!(OrderId::parse("order_id", &id.to_string()), Ok(id));
    }

    #[test]
    fn client_secrets_are_unique_and_not_printed() {
        let (a, b) = (ClientSecret::generate(), ClientSecret::generate());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 3 + 64);
        assert!(!format!("{a:?}").contains(a.as_str()));
        assert_eq!(a.digest(), a.clone().digest());
        assert_ne!(a.digest(), b.digest());
    }
}
