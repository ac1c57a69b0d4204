//! Signing of provider reports, in the manner of Stripe's webhook signatures.
//!
//! A `ReportPaymentResult` call carries two metadata entries:
//! - [`TIMESTAMP_HEADER`]: the signing time in unix seconds;
//! - [`SIGNATURE_HEADER`]: `v1=` followed by the lower-case hex
//!   HMAC-SHA256, keyed with the shared provider secret, of
//!   `"<timestamp>."` followed by the protobuf encoding of the request.
//!
//! Signing the encoded message (not a hand-picked list of fields) means every
//! field the server acts on is covered, and a field added later is covered
//! without changing this code. Protobuf encoding of these flat messages is
//! deterministic in prost, so both sides compute the same bytes.
//!
//! The timestamp bounds replay: [`verify`] rejects a signature older (or
//! further in the future) than the tolerance. A replay inside the window is
//! harmless because applying the same report twice is idempotent.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tonic::metadata::{MetadataMap, MetadataValue};

/// Metadata key holding the signing time, in unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-provider-timestamp";
/// Metadata key holding `v1=<hex hmac>`.
pub const SIGNATURE_HEADER: &str = "x-provider-signature";
/// How far the signing time may be from the verifier's clock, Stripe's default.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

const SCHEME_PREFIX: &str = "v1=";

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused. The variants are for logs; callers tell the
/// client only that the proof is missing or invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("metadata `{TIMESTAMP_HEADER}` is missing")]
    MissingTimestamp,
    #[error("metadata `{TIMESTAMP_HEADER}` is not a unix timestamp")]
    MalformedTimestamp,
    #[error("metadata `{SIGNATURE_HEADER}` is missing")]
    MissingSignature,
    #[error("metadata `{SIGNATURE_HEADER}` is not `v1=<hex>`")]
    MalformedSignature,
    #[error("signature timestamp is {skew_secs}s away from now, outside the tolerance")]
    OutsideTolerance { skew_secs: i64 },
    #[error("signature does not match")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: i64, message: &impl prost::Message) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(&message.encode_to_vec());
    mac
}

/// The `v1=<hex>` signature of `message` at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, message: &impl prost::Message) -> String {
    let tag = mac(secret, timestamp, message).finalize().into_bytes();
    format!("{SCHEME_PREFIX}{}", hex::encode(tag))
}

/// Wraps `message` in a request carrying its signature at `timestamp`.
pub fn signed_request<T: prost::Message>(
    secret: &[u8],
    timestamp: i64,
    message: T,
) -> tonic::Request<T> {
    let signature = sign(secret, timestamp, &message);
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert(TIMESTAMP_HEADER, MetadataValue::from(timestamp));
    // Hex and "v1=" are valid ASCII metadata, so parsing cannot fail.
    metadata.insert(
        SIGNATURE_HEADER,
        signature
            .parse()
            .expect("hex signature is valid ASCII metadata"),
    );
    request
}

/// Wraps `message` in a request signed now, by the system clock: what a
/// provider sends.
pub fn signed_now<T: prost::Message>(secret: &[u8], message: T) -> tonic::Request<T> {
    signed_request(secret, unix_now(), message)
}

/// The system clock in unix seconds (0 for a clock set before 1970, which
/// any verifier then refuses as outside its tolerance).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

/// Checks the signature in `metadata` over `message`, in constant time, and
/// that it was made within `tolerance` of `now_unix`.
pub fn verify(
    secret: &[u8],
    metadata: &MetadataMap,
    message: &impl prost::Message,
    now_unix: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let timestamp: i64 = metadata
        .get(TIMESTAMP_HEADER)
        .ok_or(SignatureError::MissingTimestamp)?
        .to_str()
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .ok_or(SignatureError::MalformedTimestamp)?;
    let signature = metadata
        .get(SIGNATURE_HEADER)
        .ok_or(SignatureError::MissingSignature)?
        .to_str()
        .map_err(|_| SignatureError::MalformedSignature)?;
    let tag = signature
        .trim()
        .strip_prefix(SCHEME_PREFIX)
        .and_then(|hex_tag| hex::decode(hex_tag).ok())
        .ok_or(SignatureError::MalformedSignature)?;

    // In i128, where the difference of two i64 and a u64 tolerance are
    // exact: a skew saturated to i64 against a tolerance clamped to i64
    // accepted times further away than a tolerance beyond i64::MAX seconds.
    let skew = i128::from(now_unix) - i128::from(timestamp);
    if skew.unsigned_abs() > u128::from(tolerance.as_secs()) {
        let skew_secs = i64::try_from(skew).unwrap_or(if skew < 0 { i64::MIN } else { i64::MAX });
        return Err(SignatureError::OutsideTolerance { skew_secs });
    }
    // `verify_slice` compares in constant time.
    mac(secret, timestamp, message)
        .verify_slice(&tag)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::v1::{PaymentOutcome, ReportPaymentResultRequest};

    fn report() -> ReportPaymentResultRequest {
        ReportPaymentResultRequest {
            order_id: "6f1c1a52-2a55-4d5c-9a55-2f0d8f5b0b1e".into(),
            outcome: PaymentOutcome::Succeeded as i32,
            provider_reference: "ref-1".into(),
            reason: String::new(),
        }
    }

    fn check(
        request: &tonic::Request<ReportPaymentResultRequest>,
        now: i64,
    ) -> Result<(), SignatureError> {
        verify(
            b"secret",
            request.metadata(),
            request.get_ref(),
            now,
            DEFAULT_TOLERANCE,
        )
    }

    #[test]
    fn a_fresh_signature_over_the_same_fields_verifies() {
        assert_eq!(
            check(&signed_request(b"secret", 1_000, report()), 1_010),
            Ok(())
        );
    }

    #[test]
    fn a_changed_field_or_another_secret_is_a_mismatch() {
        let mut request = signed_request(b"secret", 1_000, report());
        request.get_mut().outcome = PaymentOutcome::Failed as i32;
        assert_eq!(check(&request, 1_000), Err(SignatureError::Mismatch));
        let forged = signed_request(b"guess", 1_000, report());
        assert_eq!(check(&forged, 1_000), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_timestamp_outside_the_tolerance_is_refused_even_if_signed() {
        let request = signed_request(b"secret", 1_000, report());
        assert_eq!(
            check(&request, 1_301),
            Err(SignatureError::OutsideTolerance { skew_secs: 301 })
        );
        assert_eq!(
            check(&request, 699),
            Err(SignatureError::OutsideTolerance { skew_secs: -301 })
        );
    }

    #[test]
    fn a_tolerance_beyond_i64_seconds_still_bounds_the_skew() {
        // Found by fuzz/fuzz_targets/report_signature.rs: signed at i64::MIN,
        // checked at i64::MAX (2^64 - 1 s apart) with a tolerance of 2^63 s.
        let tolerance = Duration::from_secs(1 << 63);
        let far = signed_request(b"secret", i64::MIN, report());
        assert_eq!(
            verify(
                b"secret",
                far.metadata(),
                far.get_ref(),
                i64::MAX,
                tolerance
            ),
            Err(SignatureError::OutsideTolerance {
                skew_secs: i64::MAX
            })
        );
        let near = signed_request(b"secret", -1, report());
        assert_eq!(
            verify(
                b"secret",
                near.metadata(),
                near.get_ref(),
                i64::MAX,
                tolerance
            ),
            Ok(()),
            "2^63 s apart is within a tolerance of 2^63 s"
        );
    }

    #[test]
    fn missing_or_malformed_metadata_is_named() {
        let bare = tonic::Request::new(report());
        assert_eq!(check(&bare, 0), Err(SignatureError::MissingTimestamp));
        let mut request = signed_request(b"secret", 1_000, report());
        request
            .metadata_mut()
            .insert(SIGNATURE_HEADER, "sha1=00".parse().unwrap());
        assert_eq!(
            check(&request, 1_000),
            Err(SignatureError::MalformedSignature)
        );
        request.metadata_mut().remove(SIGNATURE_HEADER);
        assert_eq!(
            check(&request, 1_000),
            Err(SignatureError::MissingSignature)
        );
        request
            .metadata_mut()
            .insert(TIMESTAMP_HEADER, "yesterday".parse().unwrap());
        assert_eq!(
            check(&request, 1_000),
            Err(SignatureError::MalformedTimestamp)
        );
    }
}
