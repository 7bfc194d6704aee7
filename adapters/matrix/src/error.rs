//! The adapter's errors, and which Matrix failures are worth retrying.

use execgov_chat::ChatError;
use matrix_sdk::ruma::api::error::{ErrorKind, RetryAfter};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// What can stop the adapter from connecting.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("matrix settings: {0}")]
    Settings(String),
    #[error("matrix store {path}: {source}")]
    Store {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("building the Matrix client for {homeserver}: {source}")]
    Build {
        homeserver: String,
        source: Box<matrix_sdk::ClientBuildError>,
    },
    #[error("logging in to {homeserver} as {user_id}: {source}")]
    Login {
        homeserver: String,
        user_id: String,
        source: Box<matrix_sdk::Error>,
    },
    #[error("the access token belongs to {actual}, not to the configured {expected}")]
    WrongUser { expected: String, actual: String },
    #[error("matrix: {0}")]
    Sdk(#[from] Box<matrix_sdk::Error>),
}

impl From<matrix_sdk::Error> for MatrixError {
    fn from(e: matrix_sdk::Error) -> Self {
        MatrixError::Sdk(Box::new(e))
    }
}

impl From<matrix_sdk::HttpError> for MatrixError {
    fn from(e: matrix_sdk::HttpError) -> Self {
        MatrixError::Sdk(Box::new(e.into()))
    }
}

/// Whether a failed request can succeed later, and when to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Network trouble, a server error, or rate limiting (with the server's wait).
    Transient(Option<Duration>),
    /// A refusal that a retry would meet again (forbidden, unknown token, bad request).
    Permanent,
}

pub(crate) fn classify(e: &matrix_sdk::Error) -> Retry {
    match e {
        matrix_sdk::Error::Http(h) => classify_http(h),
        // Store and crypto trouble is local; the next attempt may find it resolved.
        _ => Retry::Transient(None),
    }
}

pub(crate) fn classify_http(e: &matrix_sdk::HttpError) -> Retry {
    if let Some(ErrorKind::LimitExceeded(limit)) = e.client_api_error_kind() {
        return Retry::Transient(limit.retry_after.as_ref().map(wait_of));
    }
    match e {
        matrix_sdk::HttpError::Reqwest(_) => Retry::Transient(None),
        _ => match e.as_client_api_error() {
            Some(api) if api.status_code.is_server_error() => Retry::Transient(None),
            Some(api) if api.status_code.as_u16() == 429 => Retry::Transient(None),
            Some(_) => Retry::Permanent,
            // Not a Matrix error body: a proxy's error page, a cut connection.
            None => Retry::Transient(None),
        },
    }
}

fn wait_of(r: &RetryAfter) -> Duration {
    match r {
        RetryAfter::Delay(d) => *d,
        RetryAfter::DateTime(t) => t.duration_since(SystemTime::now()).unwrap_or_default(),
    }
}

/// A failed request as the core's notifier sees it: transient ones are retried.
pub(crate) fn chat_error(what: &str, e: &matrix_sdk::Error) -> ChatError {
    let message = format!("{what}: {e}");
    match classify(e) {
        Retry::Transient(wait) => ChatError::Transient {
            message,
            retry_after_ms: wait.map(|d| d.as_millis() as u64),
        },
        Retry::Permanent => ChatError::Permanent(message),
    }
}

/// Whether the homeserver no longer accepts our access token.
pub(crate) fn is_unknown_token(e: &matrix_sdk::Error) -> bool {
    matches!(e.client_api_error_kind(), Some(ErrorKind::UnknownToken(_)))
}
