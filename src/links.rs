//! Audit links: `{public_url}/runs/{id}?t={token}`. The token is
//! `{expiry}.{hmac}` with HMAC-SHA256 over the run id and the expiry under the
//! server's secret, so a link opens its one run, and only until it expires.

use crate::types::RunId;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
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
        use anyhow::Context;
        if let Some(s) = secret {
            return Ok(LinkSigner::new(s.as_bytes()));
        }
        let path = data_dir.join("web-secret");
        if let Ok(existing) = std::fs::read_to_string(&path)
            && existing.trim().len() >= 32
        {
            return Ok(LinkSigner::new(existing.trim().as_bytes()));
        }
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let fresh = hex::encode(rand::random::<[u8; 32]>());
        write_private(&path, &fresh).with_context(|| format!("writing {}", path.display()))?;
        Ok(LinkSigner::new(fresh.as_bytes()))
    }

    fn mac(&self, purpose: &str, id: &str, exp: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("{purpose}:{id}:{exp}").as_bytes());
        mac
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

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())
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
