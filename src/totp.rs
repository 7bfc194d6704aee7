//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP, HMAC-SHA1,
//! 6 digits, 30-second steps), as every authenticator app reads them from an
//! `otpauth://totp/` URI; and the sealing of a person's TOTP secret under a key
//! derived from the server secret, so the database alone does not hold it.
//!
//! Pure code: the engine (`engine/step_up.rs`) decides what a code may do.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, KeyInit as _, Mac};
use rand::RngCore;

/// Seconds per step (RFC 6238's default, what authenticator apps assume).
pub const STEP_SECONDS: i64 = 30;
/// Steps either side of now that are accepted (clock drift, a slow typist).
pub const WINDOW: i64 = 1;
/// Bytes of a new secret (160 bits, RFC 4226's recommendation for SHA-1).
pub const SECRET_BYTES: usize = 20;

/// A 6-digit code as typed, checked for its form only.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code(<6 digits>)")
    }
}

impl Code {
    /// Six ASCII digits; spaces people type between the halves are dropped.
    pub fn parse(s: &str) -> Result<Code, String> {
        let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Code(digits))
        } else {
            Err("a code is the 6 digits your authenticator app shows".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The time step `now_ms` falls in.
pub fn step_at(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000 * STEP_SECONDS)
}

/// HOTP (RFC 4226 §5.3): HMAC-SHA1 over the counter, dynamic truncation, 6 digits.
pub fn code_at(secret: &[u8], step: i64) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&(step as u64).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = (h[h.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    format!("{:06}", bin % 1_000_000)
}

/// What a code proves at `now_ms` for a secret whose newest accepted step is
/// `last_step` (a code is accepted once: its step must be newer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The code of this step, not used before.
    Accepted(i64),
    /// A right code whose step was already used.
    Reused,
    Wrong,
}

pub fn check(secret: &[u8], code: &Code, now_ms: i64, last_step: i64) -> Check {
    let now = step_at(now_ms);
    let mut reused = false;
    for step in now - WINDOW..=now + WINDOW {
        // Compare every candidate, so the time taken does not say which matched.
        if constant_eq(code_at(secret, step).as_bytes(), code.as_str().as_bytes()) {
            if step > last_step {
                return Check::Accepted(step);
            }
            reused = true;
        }
    }
    if reused { Check::Reused } else { Check::Wrong }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new random secret.
pub fn new_secret() -> Vec<u8> {
    let mut s = vec![0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut s);
    s
}

/// The `otpauth://totp/` URI authenticator apps read (from a QR code or pasted).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let label = format!("{}:{}", percent(issuer), percent(account));
    format!(
        "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits=6&period={STEP_SECONDS}",
        base32(secret),
        percent(issuer)
    )
}

fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding: the secret as people type it into an app.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0);
    for &b in bytes {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Reads base32 as [`base32`] writes it (case, spaces and padding forgiven).
pub fn from_base32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0);
    for c in s.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = BASE32
            .iter()
            .position(|&x| x == c.to_ascii_uppercase() as u8)? as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    Some(out)
}

/// Seals a secret for the database: `v1.<base64 of nonce ‖ ciphertext>` under
/// ChaCha20-Poly1305 with `key`, the person bound as associated data (a sealed
/// secret copied onto another person's row does not open).
pub fn seal(key: &[u8; 32], person: &str, secret: &[u8]) -> String {
    use base64::Engine as _;
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(
            &Nonce::from(nonce),
            chacha20poly1305::aead::Payload {
                msg: secret,
                aad: person.as_bytes(),
            },
        )
        .expect("sealing a short secret cannot fail");
    let mut bytes = nonce.to_vec();
    bytes.extend(sealed);
    format!(
        "v1.{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Opens what [`seal`] wrote; `None` when it was made under another key or for
/// another person, or was altered.
pub fn open(key: &[u8; 32], person: &str, sealed: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sealed.strip_prefix("v1.")?)
        .ok()?;
    if bytes.len() < 12 {
        return None;
    }
    let (nonce, ct) = bytes.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    ChaCha20Poly1305::new(&Key::from(*key))
        .decrypt(
            &Nonce::from(nonce),
            chacha20poly1305::aead::Payload {
                msg: ct,
                aad: person.as_bytes(),
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 Appendix B (SHA-1 rows), the low 6 digits of its 8-digit codes.
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(secret, step_at(t * 1000)), code, "T = {t}");
        }
    }

    #[test]
    fn a_code_is_accepted_once_and_within_one_step() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_111_000;
        let code = Code::parse(&code_at(secret, step_at(now))).unwrap();
        let Check::Accepted(step) = check(secret, &code, now, 0) else {
            panic!("the current code is accepted");
        };
        assert_eq!(check(secret, &code, now, step), Check::Reused, "once only");
        let prev = Code::parse(&code_at(secret, step_at(now) - 1)).unwrap();
        assert!(
            matches!(check(secret, &prev, now, 0), Check::Accepted(_)),
            "one step back"
        );
        let old = Code::parse(&code_at(secret, step_at(now) - 2)).unwrap();
        assert_eq!(check(secret, &old, now, 0), Check::Wrong, "two steps back");
    }

    #[test]
    fn codes_are_six_digits() {
        assert!(Code::parse("123 456").is_ok());
        for bad in ["12345", "1234567", "12a456", "", "１２３４５６"] {
            assert!(Code::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn base32_round_trips_and_matches_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(from_base32("mzxw6ytboi======").unwrap(), b"foobar");
        let s = new_secret();
        assert_eq!(from_base32(&base32(&s)).unwrap(), s);
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_person() {
        let key = [7u8; 32];
        let sealed = seal(&key, "alice", b"secret");
        assert_eq!(open(&key, "alice", &sealed).unwrap(), b"secret");
        assert!(open(&[8u8; 32], "alice", &sealed).is_none(), "another key");
        assert!(open(&key, "bob", &sealed).is_none(), "another person");
        assert!(!sealed.contains("secret"));
    }

    #[test]
    fn the_uri_is_what_apps_read() {
        let uri = otpauth_uri("ExecGov", "alice smith", b"foobar");
        assert_eq!(
            uri,
            "otpauth://totp/ExecGov:alice%20smith?secret=MZXW6YTBOI&issuer=ExecGov&algorithm=SHA1&digits=6&period=30"
        );
    }
}
