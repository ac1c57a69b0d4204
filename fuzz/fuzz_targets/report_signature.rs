// Property: report signature verification never panics on any metadata, accepts what `sign` made within the tolerance, and refuses any single change to message, timestamp, secret or signature.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use payments_fuzz::Choices;
use payments_proto::{
    payments::v1::ReportPaymentResultRequest,
    signature::{
        DEFAULT_TOLERANCE, SIGNATURE_HEADER, SignatureError, TIMESTAMP_HEADER, sign, verify,
    },
};
use prost::Message;
use tonic::metadata::{MetadataMap, MetadataValue};

fn metadata(timestamps: &[&[u8]], signatures: &[&[u8]]) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    for (key, values) in [
        (TIMESTAMP_HEADER, timestamps),
        (SIGNATURE_HEADER, signatures),
    ] {
        for value in values {
            if let Ok(value) = MetadataValue::try_from(*value) {
                metadata.append(key, value);
            }
        }
    }
    metadata
}

fn signed(timestamp: i64, signature: &str) -> MetadataMap {
    metadata(&[timestamp.to_string().as_bytes()], &[signature.as_bytes()])
}

/// The input as a provider's call carries it, one part per line: the
/// timestamp metadata, the signature metadata, the secret, then the
/// message (the protobuf encoding of the report, any bytes). A missing line
/// is missing metadata.
struct Call<'a> {
    timestamp: Option<&'a [u8]>,
    signature: Option<&'a [u8]>,
    secret: &'a [u8],
    message: &'a [u8],
}

impl<'a> Call<'a> {
    fn parse(raw: &'a [u8]) -> Self {
        let mut parts = raw.splitn(4, |byte| *byte == b'\n');
        let (timestamp, signature) = (parts.next(), parts.next());
        Self {
            timestamp,
            signature,
            secret: parts.next().unwrap_or_default(),
            message: parts.next().unwrap_or_default(),
        }
    }
}

fuzz_target!(|raw: &[u8]| {
    let mut choices = Choices::new(raw);
    let call = Call::parse(raw);
    let tolerance = match choices.below(4) {
        0 => Duration::ZERO,
        1 => Duration::from_secs(choices.draw()),
        _ => DEFAULT_TOLERANCE,
    };
    let tolerance_secs = i128::from(tolerance.as_secs());
    let stated: Option<i64> = call
        .timestamp
        .and_then(|value| std::str::from_utf8(value).ok())
        .and_then(|value| value.trim().parse().ok());
    let timestamp = stated.unwrap_or_else(|| choices.interesting_i64());
    // The verifier's clock: within the tolerance of the signing time,
    // mostly; anywhere at all otherwise.
    let now = if choices.below(8) == 0 {
        choices.interesting_i64()
    } else {
        let skew = i128::from(choices.draw()) % (tolerance_secs + 1);
        let skew = if choices.below(2) == 0 { skew } else { -skew };
        i64::try_from(i128::from(timestamp) + skew).unwrap_or(timestamp)
    };
    let within = (i128::from(now) - i128::from(timestamp)).abs() <= tolerance_secs;
    // The message as bytes (prost encodes `Vec<u8>` as one bytes field, so
    // distinct vectors are distinct signed bytes) and, when they are one,
    // as the report they encode.
    let message = call.message.to_vec();
    let report = ReportPaymentResultRequest::decode(call.message).unwrap_or_else(|_| {
        ReportPaymentResultRequest {
            order_id: String::from_utf8_lossy(call.message).into_owned(),
            outcome: choices.draw() as i32,
            provider_reference: String::from_utf8_lossy(call.secret).into_owned(),
            reason: String::new(),
        }
    });

    // Hostile metadata: never a panic; and nothing but the right MAC over
    // the stated time verifies.
    let hostile = metadata(call.timestamp.as_slice(), call.signature.as_slice());
    for verified in [
        verify(call.secret, &hostile, &message, now, tolerance).is_ok(),
        verify(call.secret, &hostile, &report, now, tolerance).is_ok(),
    ] {
        if verified {
            let given = hostile
                .get(SIGNATURE_HEADER)
                .and_then(|value| value.to_str().ok())
                .expect("verified, so there is a signature")
                .trim()
                .to_ascii_lowercase();
            assert!(
                given == sign(call.secret, timestamp, &message)
                    || given == sign(call.secret, timestamp, &report),
                "verified a signature that is not the MAC: {given}"
            );
        }
    }

    // What `sign` made verifies within the tolerance, and only there.
    let signature = sign(call.secret, timestamp, &message);
    let metadata = signed(timestamp, &signature);
    let result = verify(call.secret, &metadata, &message, now, tolerance);
    if within {
        assert_eq!(result, Ok(()));
    } else {
        assert!(
            matches!(result, Err(SignatureError::OutsideTolerance { .. })),
            "signed at {timestamp}, verified at {now} with a tolerance of {tolerance:?}: {result:?}"
        );
        return;
    }
    let report_signature = sign(call.secret, timestamp, &report);
    let report_metadata = signed(timestamp, &report_signature);
    assert_eq!(
        verify(call.secret, &report_metadata, &report, now, tolerance),
        Ok(())
    );

    // Any single change is refused.
    let mismatch = |result: Result<(), SignatureError>, what: &str| {
        assert_eq!(result, Err(SignatureError::Mismatch), "{what}");
    };
    let check = |changed: &Vec<u8>, what: &str| {
        mismatch(
            verify(call.secret, &metadata, changed, now, tolerance),
            what,
        );
    };
    if !message.is_empty() {
        let mut changed = message.clone();
        let at = choices.below(message.len() as u64) as usize;
        changed[at] ^= 1 + choices.below(255) as u8;
        check(&changed, "a message byte replaced");
        let mut changed = message.clone();
        changed.remove(at);
        check(&changed, "a message byte removed");
    }
    let mut changed = message.clone();
    changed.insert(
        choices.below(message.len() as u64 + 1) as usize,
        choices.draw() as u8,
    );
    check(&changed, "a message byte inserted");

    let check_report = |change: fn(&mut ReportPaymentResultRequest), what: &str| {
        let mut changed = report.clone();
        change(&mut changed);
        mismatch(
            verify(call.secret, &report_metadata, &changed, now, tolerance),
            what,
        );
    };
    check_report(|report| report.order_id.push('0'), "order id");
    check_report(
        |report| report.outcome = report.outcome.wrapping_add(1),
        "outcome",
    );
    check_report(|report| report.provider_reference.push('x'), "reference");
    check_report(|report| report.reason.push(' '), "reason");

    // Another time stated than the one signed: a mismatch when that time is
    // within the tolerance, else refused for the time.
    let delta = match choices.below(3) {
        0 => 1,
        1 => -1,
        _ => choices.draw() as i64 | 1,
    };
    if let Some(other) = timestamp.checked_add(delta) {
        let result = verify(
            call.secret,
            &signed(other, &signature),
            &message,
            now,
            tolerance,
        );
        if (i128::from(now) - i128::from(other)).abs() <= tolerance_secs {
            mismatch(result, "timestamp");
        } else {
            assert!(result.is_err(), "a changed timestamp verified");
        }
    }

    // Another secret, one byte different. (Not one byte longer: HMAC pads
    // short keys with zeros, so `k` and `k\0` are the same key.)
    let mut other = call.secret.to_vec();
    let xor = 1 + choices.below(255) as u8;
    match other.len() {
        0 => other.push(xor),
        len => other[choices.below(len as u64) as usize] ^= xor,
    }
    mismatch(
        verify(&other, &metadata, &message, now, tolerance),
        "secret",
    );

    // One hex digit of the signature replaced by another.
    const HEX: &[u8] = b"0123456789abcdef";
    let mut changed = signature.clone().into_bytes();
    let at = 3 + choices.below(changed.len() as u64 - 3) as usize;
    let by = HEX[choices.below(HEX.len() as u64) as usize];
    if changed[at] != by {
        changed[at] = by;
        let changed = String::from_utf8(changed).expect("ASCII");
        mismatch(
            verify(
                call.secret,
                &signed(timestamp, &changed),
                &message,
                now,
                tolerance,
            ),
            "signature digit",
        );
    }
});
