//! The adapter's errors: setting it up, and calling Slack's Web API.

use execgov_chat::ChatError;
use std::time::Duration;

/// Why the adapter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    #[error("slack settings: {0}")]
    Config(String),
}

/// A failed Web API call, split by whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// Rate limits, Slack's own outages, transport errors.
    #[error("slack {method} failed (transient): {message}")]
    Transient {
        method: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Everything a retry will not fix: `channel_not_found`, `invalid_auth`, …
    #[error("slack {method} failed: {code}")]
    Permanent { method: &'static str, code: String },
}

impl From<ApiError> for ChatError {
    fn from(e: ApiError) -> ChatError {
        match e {
            ApiError::Transient { retry_after, .. } => ChatError::Transient {
                message: e.to_string(),
                retry_after_ms: retry_after.map(|d| d.as_millis() as u64),
            },
            ApiError::Permanent { .. } => ChatError::Permanent(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_errors_name_the_slack_code() {
        let e: ChatError = ApiError::Permanent {
            method: "chat.postMessage",
            code: "channel_not_found".into(),
        }
        .into();
        assert!(!e.is_transient());
        assert!(e.to_string().contains("channel_not_found"), "{e}");
    }

    #[test]
    fn transient_errors_keep_retry_after() {
        let e: ChatError = ApiError::Transient {
            method: "chat.update",
            message: "rate limited".into(),
            retry_after: Some(Duration::from_secs(3)),
        }
        .into();
        match e {
            ChatError::Transient { retry_after_ms, .. } => assert_eq!(retry_after_ms, Some(3000)),
            other => panic!("expected transient, got {other:?}"),
        }
    }
}
