//! Slack's v0 request signatures: every HTTP request Slack sends carries
//! `X-Slack-Signature: v0=hex(HMAC-SHA256(secret, "v0:{timestamp}:{body}"))` and
//! `X-Slack-Request-Timestamp`. Nothing in a request is trusted before this passes.
//!
//! The clock is an argument (slack-morphism's verifier reads the real clock), so
//! Slack's documented example verifies in tests.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far the request's timestamp may be from now, either way (Slack's advice).
pub const MAX_SKEW_SECS: u64 = 300;

/// Why a request was not accepted as Slack's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("request timestamp is not a number")]
    BadTimestamp,
    #[error("request timestamp is {skew_secs} s away from now")]
    Stale { skew_secs: u64 },
    #[error("request signature does not match")]
    BadSignature,
}

/// Checks a v0 signature over `body` in constant time, and that `timestamp` is
/// within [`MAX_SKEW_SECS`] of `now_unix`.
pub fn verify_signature(
    signing_secret: &str,
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now_unix: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    let skew_secs = now_unix.abs_diff(ts);
    if skew_secs > MAX_SKEW_SECS {
        return Err(VerifyError::Stale { skew_secs });
    }
    let tag = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(VerifyError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes())
        .map_err(|_| VerifyError::BadSignature)?;
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&tag)
        .map_err(|_| VerifyError::BadSignature)
}

/// Signs a request body as Slack does; for tests and for tools that replay requests.
pub fn sign(signing_secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Example {
        signing_secret: String,
        timestamp: String,
        body: String,
        expected_signature: String,
    }

    fn example() -> Example {
        serde_json::from_str(include_str!("../tests/fixtures/slack-signing-example.json"))
            .expect("the fixture parses")
    }

    fn now_of(e: &Example) -> i64 {
        e.timestamp.parse().unwrap()
    }

    #[test]
    fn slacks_documented_example_verifies() {
        let e = example();
        let r = verify_signature(
            &e.signing_secret,
            &e.timestamp,
            e.body.as_bytes(),
            &e.expected_signature,
            now_of(&e),
        );
        assert_eq!(r, Ok(()), "Slack's own example must verify");
        assert_eq!(
            sign(&e.signing_secret, &e.timestamp, e.body.as_bytes()),
            e.expected_signature,
            "signing reproduces Slack's example"
        );
    }

    #[test]
    fn five_minutes_either_way_is_the_limit() {
        let e = example();
        let check = |now| {
            verify_signature(
                &e.signing_secret,
                &e.timestamp,
                e.body.as_bytes(),
                &e.expected_signature,
                now,
            )
        };
        assert_eq!(
            check(now_of(&e) + 300),
            Ok(()),
            "exactly 5 min old is accepted"
        );
        assert_eq!(
            check(now_of(&e) - 300),
            Ok(()),
            "exactly 5 min ahead is accepted"
        );
        assert_eq!(
            check(now_of(&e) + 301),
            Err(VerifyError::Stale { skew_secs: 301 }),
            "a replay after 5 min is refused"
        );
        assert_eq!(
            check(now_of(&e) - 301),
            Err(VerifyError::Stale { skew_secs: 301 }),
            "a timestamp from the future is refused"
        );
    }

    #[test]
    fn any_flipped_byte_fails() {
        let e = example();
        let now = now_of(&e);
        let mut body = e.body.clone().into_bytes();
        body[10] ^= 1;
        assert_eq!(
            verify_signature(
                &e.signing_secret,
                &e.timestamp,
                &body,
                &e.expected_signature,
                now
            ),
            Err(VerifyError::BadSignature),
            "a changed body fails"
        );
        let mut sig = e.expected_signature.clone().into_bytes();
        let last = sig.len() - 1;
        sig[last] = if sig[last] == b'0' { b'1' } else { b'0' };
        let sig = String::from_utf8(sig).unwrap();
        assert_eq!(
            verify_signature(
                &e.signing_secret,
                &e.timestamp,
                e.body.as_bytes(),
                &sig,
                now
            ),
            Err(VerifyError::BadSignature),
            "a changed signature fails"
        );
        assert_eq!(
            verify_signature(
                "other-secret",
                &e.timestamp,
                e.body.as_bytes(),
                &e.expected_signature,
                now
            ),
            Err(VerifyError::BadSignature),
            "another secret fails"
        );
    }

    #[test]
    fn malformed_headers_fail() {
        let e = example();
        let now = now_of(&e);
        let body = e.body.as_bytes();
        assert_eq!(
            verify_signature(&e.signing_secret, "soon", body, &e.expected_signature, now),
            Err(VerifyError::BadTimestamp)
        );
        let no_prefix = e.expected_signature.trim_start_matches("v0=");
        assert_eq!(
            verify_signature(&e.signing_secret, &e.timestamp, body, no_prefix, now),
            Err(VerifyError::BadSignature),
            "the v0= scheme is required"
        );
        assert_eq!(
            verify_signature(&e.signing_secret, &e.timestamp, body, "v0=zz", now),
            Err(VerifyError::BadSignature),
            "non-hex fails"
        );
    }
}
