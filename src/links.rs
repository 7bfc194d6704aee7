//! Audit links: `{public_url}/runs/{id}?t={token}`. The token is
//! `{expiry}.{hmac}` with HMAC-SHA256 over the run id and the expiry under the
//! server's secret, so a link opens its one run, and only until it expires.

use crate::types::RunId;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::path::Path;

/// How long an audit link stays valid.
pub const LINK_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

/// Why a token does not open a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link has expired; ask for the run's status in chat for a fresh link")]
    Expired,
    #[error("the link is not valid for this run")]
    BadSignature,
}

/// Signs and checks audit-link tokens.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(<secret>)")
    }
}

impl LinkSigner {
    pub fn new(secret: &[u8]) -> LinkSigner {
        LinkSigner {
            key: secret.to_vec(),
        }
    }

    /// The configured secret, else one generated once into `data_dir/web-secret`
    /// (mode 0600) and reused after restarts.
    pub fn from_config_or_data_dir(
        secret: Option<String>,
        data_dir: &Path,
    ) -> anyhow::Result<LinkSigner> {
        if let Some(s) = secret {
            return Ok(LinkSigner::new(s.as_bytes()));
        }
        let secret = crate::config::generated_once(data_dir, "web-secret")?;
        Ok(LinkSigner::new(secret.as_bytes()))
    }

    fn mac(&self, purpose: &str, id: &str, exp: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("{purpose}:{id}:{exp}").as_bytes());
        mac
    }

    /// A 32-byte key for another use of the server secret (sealing second
    /// factors), derived so that it is neither the secret nor a link signature.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("execgov key:{purpose}").as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A token for `run` valid until `exp` (epoch ms).
    pub fn token(&self, run: RunId, exp: i64) -> String {
        let sig = self
            .mac("run", &run.to_string(), exp)
            .finalize()
            .into_bytes();
        format!("{exp}.{}", hex::encode(sig))
    }

    pub fn link(&self, public_url: &str, run: RunId, now: i64) -> String {
        format!(
            "{}/runs/{run}?t={}",
            public_url.trim_end_matches('/'),
            self.token(run, now + LINK_TTL_MS)
        )
    }

    /// Checks a token for `run` at time `now`, in constant time for the signature.
    pub fn verify(&self, run: RunId, token: &str, now: i64) -> Result<(), TokenError> {
        let (exp, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let exp: i64 = exp.parse().map_err(|_| TokenError::Malformed)?;
        let sig = hex::decode(sig).map_err(|_| TokenError::Malformed)?;
        self.mac("run", &run.to_string(), exp)
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        if exp < now {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

/// The lowercase hex SHA-256 of a token (sign-in links, sessions, API
/// tokens): the only form the database keeps.
pub fn token_hash(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// A fresh random token: 32 bytes as hex.
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_run_until_it_expires() {
        let s = LinkSigner::new(b"k");
        let t = s.token(RunId(7), 1_000);
        assert_eq!(s.verify(RunId(7), &t, 999), Ok(()));
        assert_eq!(
            s.verify(RunId(8), &t, 999),
            Err(TokenError::BadSignature),
            "other run"
        );
        assert_eq!(s.verify(RunId(7), &t, 1_001), Err(TokenError::Expired));
        let forged = t.replacen("1000", "9999", 1);
        assert_eq!(
            s.verify(RunId(7), &forged, 999),
            Err(TokenError::BadSignature),
            "expiry is signed"
        );
        assert_eq!(
            LinkSigner::new(b"other").verify(RunId(7), &t, 0),
            Err(TokenError::BadSignature)
        );
        assert_eq!(s.verify(RunId(7), "garbage", 0), Err(TokenError::Malformed));
    }
}
