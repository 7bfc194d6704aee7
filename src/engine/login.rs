//! `login`: a private answer with a one-time link that signs the asker in to
//! the web UI (the web side, `web::login`, uses the link).

use super::{Engine, Reply, ReplyKind};
use crate::links::{new_token, token_hash};
use crate::types::Actor;
use serde_json::json;

/// How long a sign-in link from chat stays usable.
pub const LOGIN_LINK_TTL_MS: i64 = 10 * 60 * 1000;

impl Engine {
    /// The answer to `login`: a private reply with a one-time sign-in link for
    /// the person behind `actor`.
    pub async fn login_link(&self, actor: &Actor) -> anyhow::Result<Reply> {
        let person = match actor {
            Actor::Person {
                person,
                impersonated_by: None,
                ..
            } => person,
            Actor::Person { .. } => {
                return Ok(Reply::error(
                    "a sign-in link is only for your own account; `--as` cannot ask for one",
                ));
            }
            _ => {
                return Ok(Reply::error(
                    "only a configured person can sign in to the web UI; ask an admin to map your account in the ExecGov config",
                ));
            }
        };
        let token = new_token();
        let now = self.now();
        let expires = now + LOGIN_LINK_TTL_MS;
        self.store
            .create_login_token(&token_hash(&token), person.as_str(), now, expires)
            .await?;
        self.store
            .audit(
                &actor.audit_name(),
                "web.login_link",
                None,
                json!({ "expires_at": expires }),
                now,
            )
            .await?;
        let url = format!(
            "{}/login/{token}",
            self.config.web.public_url.trim_end_matches('/')
        );
        Ok(Reply {
            kind: ReplyKind::Private,
            text: format!(
                "Your sign-in link for the ExecGov web UI (one use, valid for {} minutes; do not share it):\n{url}",
                LOGIN_LINK_TTL_MS / 60_000
            ),
            run: None,
        })
    }
}
