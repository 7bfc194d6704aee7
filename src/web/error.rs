//! The HTTP error type: each variant maps to one status with a body that says
//! what to do; server errors are logged once, in a middleware.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for WebError {
    fn from(e: crate::store::StoreError) -> WebError {
        WebError::Internal(e.into())
    }
}

/// The message of a server error, carried to the logging middleware.
#[derive(Debug, Clone)]
struct ServerErrorMessage(String);

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            WebError::Forbidden(m) => (StatusCode::FORBIDDEN, format!("403 forbidden: {m}\n")),
            WebError::NotFound(m) => (StatusCode::NOT_FOUND, format!("404 not found: {m}\n")),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, format!("400 bad request: {m}\n")),
            WebError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 internal error; the server log has the details\n".to_string(),
            ),
        };
        let mut resp = (status, body).into_response();
        if let WebError::Internal(e) = &self {
            resp.extensions_mut().insert(ServerErrorMessage(format!("{e:#}")));
        }
        resp
    }
}

pub(super) async fn log_server_errors(resp: Response) -> Response {
    if let Some(m) = resp.extensions().get::<ServerErrorMessage>() {
        tracing::error!(status = %resp.status(), error = %m.0, "request failed");
    }
    resp
}
