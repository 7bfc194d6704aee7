//! The Slack adapter of ExecGov.
//!
//! Slack talks to us over HTTP (slash commands, button clicks, events; every
//! request signed) or Socket Mode (the same payloads over a WebSocket); both
//! feed the same handlers, which turn them into the port's [`Inbound`] values
//! for the core. The core's [`Outbound`] messages come back through
//! [`ChatAdapter`] and are laid out as Block Kit.
//!
//! [`Inbound`]: execgov_chat::Inbound
//! [`Outbound`]: execgov_chat::Outbound
//! [`ChatAdapter`]: execgov_chat::ChatAdapter
//!
//! Layout:
//! - [`Settings`] (`settings.rs`): tokens, signing secret, API base URL.
//! - `verify.rs`: v0 request signatures ([`verify_signature`]).
//! - `http.rs`: the axum routes; signature first (and UTF-8 for commands), then `commands.rs`,
//!   `interactions.rs`, `events.rs`, which know nothing of the transport.
//! - `socket_mode.rs`: the WebSocket connections: pings, half-open sockets
//!   replaced, Slack's refreshes without a gap, reconnecting with backoff.
//! - `output.rs`: [`ChatAdapter`] for [`Slack`]; `blocks/` renders, `api.rs`
//!   calls the Web API (retrying 429s), `upload.rs` shares files in threads.
//! - `error.rs`: [`SlackError`] and the transient/permanent split of API errors.

mod api;
mod blocks;
mod commands;
mod download;
mod error;
mod events;
mod http;
mod interactions;
mod output;
mod settings;
mod socket_mode;
mod tls;
mod upload;
mod verify;

pub use error::SlackError;
pub use settings::Settings;
pub use socket_mode::SocketOptions;
pub use tls::install_crypto_provider;
pub use verify::{MAX_SKEW_SECS, VerifyError, sign, verify_signature};

use execgov_chat::InboundHandler;
use slack_morphism::prelude::*;
use std::fmt;
use std::sync::Arc;

/// The Slack adapter: inbound endpoints, Socket Mode and the output port.
/// Built once and shared as `Arc<Slack>`.
pub struct Slack {
    signing_secret: String,
    api: api::Api,
    handler: Arc<dyn InboundHandler>,
    /// The bot's own user id (`auth.test`), fetched once on first need.
    bot_user: tokio::sync::OnceCell<String>,
    /// For Socket Mode's `wss://` connections (and file downloads).
    ws_tls: Arc<rustls::ClientConfig>,
    /// The Web API's base URL: file downloads go to https or to its host.
    api_base: String,
}

impl fmt::Debug for Slack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slack")
            .field("socket_mode", &self.api.app_token.is_some())
            .field("bot_user", &self.bot_user.get())
            .finish_non_exhaustive()
    }
}

impl Slack {
    /// Builds the adapter. Nothing is sent to Slack yet.
    pub fn new(
        settings: Settings,
        handler: Arc<dyn InboundHandler>,
    ) -> Result<Arc<Slack>, SlackError> {
        install_crypto_provider();
        if settings.bot_token.trim().is_empty() {
            return Err(SlackError::Config("bot_token is empty".into()));
        }
        if settings.signing_secret.trim().is_empty() {
            return Err(SlackError::Config("signing_secret is empty".into()));
        }
        let base = settings.api_base().to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(SlackError::Config(format!(
                "api_url must be an http(s) URL, not {:?}",
                settings.api_url
            )));
        }
        let tls = tls::client_config()
            .map_err(|e| SlackError::Config(format!("TLS set-up failed: {e}")))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_all_versions()
            .build();
        let connector = SlackClientHyperConnector::with_connector(https).with_slack_api_url(&base);
        let token = |value: &str| SlackApiToken::new(SlackApiTokenValue::new(value.to_string()));
        let app_token = settings
            .app_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(token);
        Ok(Arc::new(Slack {
            api: api::Api {
                client: SlackClient::new(connector),
                bot_token: token(&settings.bot_token),
                app_token,
            },
            signing_secret: settings.signing_secret,
            handler,
            bot_user: tokio::sync::OnceCell::new(),
            ws_tls: Arc::new(tls),
            api_base: base,
        }))
    }

    /// `POST /slack/commands`, `/slack/interactions`, `/slack/events`, to merge
    /// into the server's router.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        http::router(self.clone())
    }

    /// The bot's own user id, from `auth.test` once; `None` while Slack cannot say.
    pub(crate) async fn bot_user_id(&self) -> Option<&str> {
        match self
            .bot_user
            .get_or_try_init(|| self.api.bot_user_id())
            .await
        {
            Ok(id) => Some(id.as_str()),
            Err(e) => {
                tracing::warn!(error = %e, "could not learn the bot's own user id");
                None
            }
        }
    }
}
