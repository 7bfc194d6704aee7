//! Slack Web API calls, through slack-morphism's client: the bot token as
//! `Authorization: Bearer`, JSON bodies, Slack's `ok`/`error` envelope. Here:
//! waiting out HTTP 429 (`Retry-After`) a few times, and sorting every other
//! failure into transient or permanent.
//!
//! `chat.*` and `views.open` send the JSON that `blocks` renders as it is;
//! their responses are read leniently (only `channel` / `ts` matter).

use crate::error::ApiError;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use std::future::Future;
use std::time::Duration;

/// The slack-morphism client over an https-or-http connector (tests use http://).
pub(crate) type Client = SlackClient<SlackClientHyperHttpsConnector>;

/// How often a rate-limited call is retried inside the adapter.
const MAX_RATE_LIMIT_RETRIES: u32 = 3;
/// Waits longer than this are left to the caller (the core retries later).
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);
/// When a 429 carries no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// `ok:false` codes that a retry can fix.
const TRANSIENT_CODES: &[&str] = &[
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "request_timeout",
    "service_unavailable",
];

/// The Web API as the adapter uses it.
pub(crate) struct Api {
    pub(crate) client: Client,
    pub(crate) bot_token: SlackApiToken,
    pub(crate) app_token: Option<SlackApiToken>,
}

/// A message to post: where, and what.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Post<'a> {
    pub channel: &'a str,
    pub thread_ts: Option<&'a str>,
    pub text: &'a str,
    pub blocks: Option<&'a [Value]>,
}

/// Where `chat.postMessage` put a message.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Posted {
    #[serde(default)]
    pub channel: Option<String>,
    pub ts: String,
}

#[derive(Debug, Deserialize)]
struct PostedEphemeral {
    #[serde(default)]
    message_ts: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Opened {
    channel: OpenedChannel,
}

#[derive(Debug, Deserialize)]
struct OpenedChannel {
    id: String,
}

#[derive(Debug, Deserialize)]
struct AuthTest {
    user_id: String,
}

#[derive(Debug, Deserialize)]
struct Ignored {}

impl Api {
    /// `chat.postMessage`.
    pub(crate) async fn post_message(&self, post: Post<'_>) -> Result<Posted, ApiError> {
        let mut body = json!({ "channel": post.channel, "text": post.text });
        add_common(&mut body, post);
        self.call("chat.postMessage", &body).await
    }

    /// `chat.postEphemeral`: visible to `user` only; returns its `message_ts`.
    pub(crate) async fn post_ephemeral(
        &self,
        post: Post<'_>,
        user: &str,
    ) -> Result<String, ApiError> {
        let mut body = json!({ "channel": post.channel, "user": user, "text": post.text });
        add_common(&mut body, post);
        let r: PostedEphemeral = self.call("chat.postEphemeral", &body).await?;
        Ok(r.message_ts.unwrap_or_default())
    }

    /// `chat.update`; `blocks: None` clears the blocks a message had.
    pub(crate) async fn update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: Option<&[Value]>,
    ) -> Result<(), ApiError> {
        let body = json!({
            "channel": channel,
            "ts": ts,
            "text": text,
            "blocks": blocks.unwrap_or(&[]),
        });
        let _: Ignored = self.call("chat.update", &body).await?;
        Ok(())
    }

    /// `views.open` with a `trigger_id` from an interaction (valid for 3 s).
    pub(crate) async fn open_view(&self, trigger_id: &str, view: &Value) -> Result<(), ApiError> {
        let body = json!({ "trigger_id": trigger_id, "view": view });
        let _: Ignored = self.call("views.open", &body).await?;
        Ok(())
    }

    /// `conversations.open` with one user: the id of the bot's direct message
    /// with them (the App Home's messages tab), opened if need be.
    pub(crate) async fn open_dm(&self, user: &str) -> Result<String, ApiError> {
        let r: Opened = self
            .call("conversations.open", &json!({ "users": user }))
            .await?;
        Ok(r.channel.id)
    }

    /// A message through a `response_url` (a slash command's or a click's):
    /// no token, valid for 30 minutes and 5 uses. Slack answers `ok` as text,
    /// or an HTTP error (`expired_url`, `used_url`, …).
    pub(crate) async fn respond(&self, response_url: &str, body: &Value) -> Result<(), ApiError> {
        let method = "response_url";
        let url: SlackResponseUrl =
            serde_json::from_value(json!(response_url)).map_err(|e| ApiError::Permanent {
                method,
                code: format!("not a URL: {e}"),
            })?;
        if !matches!(url.0.scheme(), "https" | "http") {
            return Err(ApiError::Permanent {
                method,
                code: format!("not an http(s) URL: {}", url.0.scheme()),
            });
        }
        let span = tracing::debug_span!("slack response_url");
        let _: Ignored = retrying(method, || {
            let context = SlackClientApiCallContext {
                rate_control_params: None,
                token: None,
                tracing_span: &span,
                // The URL is a bearer credential of its own.
                is_sensitive_url: true,
            };
            self.client
                .http_api
                .connector
                .http_post_uri(url.0.clone(), body, context)
        })
        .await?;
        Ok(())
    }

    /// `auth.test`: the bot's own user id.
    pub(crate) async fn bot_user_id(&self) -> Result<String, ApiError> {
        let r: AuthTest = self.call("auth.test", &json!({})).await?;
        Ok(r.user_id)
    }

    /// `apps.connections.open` with the app token: a Socket Mode URL.
    pub(crate) async fn open_socket_url(&self) -> Result<String, ApiError> {
        let method = "apps.connections.open";
        let Some(token) = self.app_token.as_ref() else {
            return Err(ApiError::Permanent {
                method,
                code: "no app token configured".into(),
            });
        };
        let r = retrying(method, || async {
            let session = self.client.open_session(token);
            session
                .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
                .await
        })
        .await?;
        Ok(r.url.0.to_string())
    }

    /// A JSON POST of `body` to `method` with the bot token.
    async fn call<R>(&self, method: &'static str, body: &Value) -> Result<R, ApiError>
    where
        R: DeserializeOwned + Send,
    {
        retrying(method, || async {
            let session = self.client.open_session(&self.bot_token);
            session.http_session_api.http_post(method, body, None).await
        })
        .await
    }
}

/// `thread_ts` and `blocks`, when there are any.
fn add_common(body: &mut Value, post: Post<'_>) {
    if let Some(ts) = post.thread_ts {
        body["thread_ts"] = json!(ts);
    }
    if let Some(blocks) = post.blocks {
        body["blocks"] = json!(blocks);
    }
}

/// Runs `call`, waiting out up to [`MAX_RATE_LIMIT_RETRIES`] rate limits.
pub(crate) async fn retrying<T, F, Fut>(method: &'static str, mut call: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SlackClientError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(SlackClientError::RateLimitError(e)) if attempt < MAX_RATE_LIMIT_RETRIES => {
                let wait = e.retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
                if wait > MAX_RATE_LIMIT_WAIT {
                    return Err(classify(method, SlackClientError::RateLimitError(e)));
                }
                attempt += 1;
                tracing::debug!(
                    method,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "slack rate limit; waiting"
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(classify(method, e)),
        }
    }
}

/// Transient: rate limits, Slack's own outages, transport trouble. Permanent:
/// every other `ok:false` code, other 4xx, unreadable answers.
pub(crate) fn classify(method: &'static str, e: SlackClientError) -> ApiError {
    match e {
        SlackClientError::RateLimitError(e) => ApiError::Transient {
            method,
            message: format!("rate limited ({})", e.code.as_deref().unwrap_or("HTTP 429")),
            retry_after: Some(e.retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
        },
        SlackClientError::ApiError(e) if TRANSIENT_CODES.contains(&e.code.as_str()) => {
            ApiError::Transient {
                method,
                message: e.code,
                retry_after: None,
            }
        }
        SlackClientError::ApiError(e) => ApiError::Permanent {
            method,
            code: e.code,
        },
        SlackClientError::HttpError(e)
            if e.status_code.is_server_error() || e.status_code.as_u16() == 408 =>
        {
            ApiError::Transient {
                method,
                message: format!("HTTP {}", e.status_code),
                retry_after: None,
            }
        }
        SlackClientError::HttpError(e) => ApiError::Permanent {
            method,
            code: format!("HTTP {}", e.status_code),
        },
        SlackClientError::ProtocolError(e) => ApiError::Permanent {
            method,
            code: format!("unreadable response: {}", e.json_error),
        },
        other => ApiError::Transient {
            method,
            message: other.to_string(),
            retry_after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slack_morphism::errors::{SlackClientApiError, SlackClientHttpError, SlackRateLimitError};

    fn api_error(code: &str) -> SlackClientError {
        SlackClientError::ApiError(SlackClientApiError::new(code.into()))
    }

    #[test]
    fn slack_outage_codes_are_transient() {
        for code in [
            "ratelimited",
            "internal_error",
            "fatal_error",
            "request_timeout",
            "service_unavailable",
        ] {
            assert!(
                matches!(
                    classify("chat.postMessage", api_error(code)),
                    ApiError::Transient { .. }
                ),
                "{code} is worth a retry"
            );
        }
    }

    #[test]
    fn other_codes_are_permanent_and_named() {
        for code in ["channel_not_found", "not_in_channel", "invalid_auth"] {
            match classify("chat.postMessage", api_error(code)) {
                ApiError::Permanent { code: c, .. } => assert_eq!(c, code),
                other => panic!("{code} must be permanent, got {other:?}"),
            }
        }
    }

    #[test]
    fn http_status_decides_for_non_api_errors() {
        let e = SlackClientError::HttpError(SlackClientHttpError::new(http_status(503)));
        assert!(matches!(classify("m", e), ApiError::Transient { .. }));
        let e = SlackClientError::HttpError(SlackClientHttpError::new(http_status(404)));
        assert!(matches!(classify("m", e), ApiError::Permanent { .. }));
    }

    fn http_status(code: u16) -> axum::http::StatusCode {
        axum::http::StatusCode::from_u16(code).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_are_waited_out_three_times_then_reported() {
        let mut calls = 0;
        let started = tokio::time::Instant::now();
        let r: Result<(), ApiError> = retrying("chat.update", || {
            calls += 1;
            async {
                Err(SlackClientError::RateLimitError(
                    SlackRateLimitError::new().with_retry_after(Duration::from_secs(2)),
                ))
            }
        })
        .await;
        assert_eq!(calls, 4, "one call and three retries");
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(6),
            "Retry-After is honoured each time"
        );
        match r {
            Err(ApiError::Transient { retry_after, .. }) => {
                assert_eq!(retry_after, Some(Duration::from_secs(2)))
            }
            other => panic!("expected transient, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_that_clears_succeeds() {
        let mut calls = 0;
        let r = retrying("chat.postMessage", || {
            calls += 1;
            let n = calls;
            async move {
                if n == 1 {
                    Err(SlackClientError::RateLimitError(SlackRateLimitError::new()))
                } else {
                    Ok(7)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
    }
}
