//! The HTTP error type: each variant maps to one status with a body that says
//! what to do; server errors are logged once, in a middleware. Pages answer in
//! plain text (or a redirect to sign in); the JSON API wraps the same errors in
//! [`ApiError`], which answers `{"error": "…"}`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// A page that needs a signed-in person; pages redirect to `/login`.
    #[error("sign in first: type `login` in chat for a one-time sign-in link")]
    SignInRequired,
    /// The API without a valid token.
    #[error("{0}")]
    Unauthorized(String),
    /// The request was understood but the run is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    /// Was here and was removed on purpose (retention): 410 Gone.
    #[error("{0}")]
    Gone(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for WebError {
    fn from(e: crate::store::StoreError) -> WebError {
        WebError::Internal(e.into())
    }
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::SignInRequired | WebError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::Gone(_) => StatusCode::GONE,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the person is told; server errors say no more than that, and
    /// others repeat at most a short piece of the input.
    fn public_message(&self) -> String {
        match self {
            WebError::Internal(_) => "internal error; the server log has the details".to_string(),
            other => execgov_chat::cap_echoes(&other.to_string()),
        }
    }

    fn mark_server_error(&self, resp: &mut Response) {
        if let WebError::Internal(e) = self {
            resp.extensions_mut()
                .insert(ServerErrorMessage(format!("{e:#}")));
        }
    }
}

/// The message of a server error, carried to the logging middleware.
#[derive(Debug, Clone)]
struct ServerErrorMessage(String);

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let WebError::SignInRequired = self {
            return (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, "/login")],
                "sign in first\n",
            )
                .into_response();
        }
        let status = self.status();
        let body = format!(
            "{} {}: {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("error").to_lowercase(),
            self.public_message()
        );
        let mut resp = (status, body).into_response();
        self.mark_server_error(&mut resp);
        resp
    }
}

/// A [`WebError`] answered as JSON, for `/api/v1`.
#[derive(Debug)]
pub struct ApiError(pub WebError);

impl<E: Into<WebError>> From<E> for ApiError {
    fn from(e: E) -> ApiError {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let body =
            serde_json::json!({ "error": self.0.public_message(), "status": status.as_u16() });
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        self.0.mark_server_error(&mut resp);
        resp
    }
}

pub(super) async fn log_server_errors(resp: Response) -> Response {
    if let Some(m) = resp.extensions().get::<ServerErrorMessage>() {
        tracing::error!(status = %resp.status(), error = %m.0, "request failed");
    }
    resp
}
