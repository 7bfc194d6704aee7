//! The runner's HTTP(S) calls to the service: JSON or raw bytes in, JSON out,
//! each with a deadline, and errors sorted by what the runner should do next.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::{ErrorBody, PREFIX};

/// What a call came to, other than success.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer (connection refused, reset, timed out): try again later.
    #[error("the server did not answer: {0}")]
    Unreachable(String),
    /// The server answered with an error; `body.error` says why.
    #[error("the server answered {status}: {}", body.error)]
    Refused { status: u16, body: ErrorBody },
}

impl CallError {
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Refused { status, .. } => Some(*status),
            CallError::Unreachable(_) => None,
        }
    }

    /// For a `409` about a log: where the server expects the next byte.
    pub fn expected_at(&self) -> Option<u64> {
        match self {
            CallError::Refused { body, .. } => body.expected_at,
            CallError::Unreachable(_) => None,
        }
    }
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// The service at one base URL, called with one credential.
#[derive(Clone)]
pub struct Http {
    client: Client<Https, Full<Bytes>>,
    base: Arc<str>,
    credential: Arc<str>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("base", &self.base).finish()
    }
}

/// Bytes of an answer read at most (answers are small JSON).
const MAX_ANSWER: usize = 16 << 20;

impl Http {
    /// A client for `server` (`http://` or `https://`; TLS checks the
    /// server's certificate against Mozilla's and the system's roots).
    pub fn new(server: &str, credential: &str) -> Result<Http, String> {
        let base = server.trim_end_matches('/');
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(format!(
                "--server must be an http:// or https:// URL, not `{server}`"
            ));
        }
        let tls = tls_config().map_err(|e| format!("TLS set-up failed: {e}"))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Http {
            client,
            base: Arc::from(base),
            credential: Arc::from(credential),
        })
    }

    /// The same server with another credential (after an enrolment).
    pub fn with_credential(&self, credential: &str) -> Http {
        Http {
            credential: Arc::from(credential),
            ..self.clone()
        }
    }

    /// `POST {PREFIX}{path}` with a JSON body; the JSON answer.
    pub async fn post_json<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        deadline: Duration,
    ) -> Result<R, CallError> {
        let bytes = serde_json::to_vec(body).expect("protocol messages serialize");
        let answer = self
            .call(Call {
                method: Method::POST,
                path,
                content_type: "application/json",
                header: None,
                body: bytes,
                deadline,
                cap: MAX_ANSWER,
            })
            .await?;
        decode(&answer)
    }

    /// `POST` or `PUT` raw bytes (a log chunk, a file); the JSON answer, if any.
    pub async fn send_bytes(
        &self,
        method: Method,
        path: &str,
        header: Option<(&str, &str)>,
        bytes: Vec<u8>,
        deadline: Duration,
    ) -> Result<Bytes, CallError> {
        self.call(Call {
            method,
            path,
            content_type: "application/octet-stream",
            header,
            body: bytes,
            deadline,
            cap: MAX_ANSWER,
        })
        .await
    }

    /// `GET` raw bytes (a file sent with a request), at most `cap` of them.
    pub async fn get_bytes(
        &self,
        path: &str,
        cap: usize,
        deadline: Duration,
    ) -> Result<Bytes, CallError> {
        self.call(Call {
            method: Method::GET,
            path,
            content_type: "application/octet-stream",
            header: None,
            body: Vec::new(),
            deadline,
            cap,
        })
        .await
    }

    async fn call(&self, c: Call<'_>) -> Result<Bytes, CallError> {
        let Call {
            method,
            path,
            content_type,
            header,
            body,
            deadline,
            cap,
        } = c;
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{PREFIX}{path}", self.base))
            .header("content-type", content_type)
            .header(
                "user-agent",
                concat!("execgov-runner/", env!("CARGO_PKG_VERSION")),
            );
        if !self.credential.is_empty() {
            req = req.header("authorization", format!("Bearer {}", self.credential));
        }
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CallError::Unreachable(format!("building the request: {e}")))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| CallError::Unreachable(error_chain(&e)))?;
            let status = resp.status();
            let body = http_body_util::Limited::new(resp.into_body(), cap)
                .collect()
                .await
                .map_err(|e| CallError::Unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        let (status, body) = tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| CallError::Unreachable(format!("no answer within {deadline:?}")))??;
        if status.is_success() {
            return Ok(body);
        }
        Err(refused(status, &body))
    }
}

/// One request to the server, and how much of its answer is read at most.
struct Call<'a> {
    method: Method,
    path: &'a str,
    content_type: &'a str,
    header: Option<(&'a str, &'a str)>,
    body: Vec<u8>,
    deadline: Duration,
    cap: usize,
}

fn decode<R: DeserializeOwned>(answer: &[u8]) -> Result<R, CallError> {
    serde_json::from_slice(answer).map_err(|e| CallError::Refused {
        status: 200,
        body: ErrorBody {
            error: format!(
                "an answer the runner cannot read ({e}); is --server an ExecGov service?"
            ),
            expected_at: None,
        },
    })
}

fn refused(status: StatusCode, body: &[u8]) -> CallError {
    let body = serde_json::from_slice::<ErrorBody>(body).unwrap_or_else(|_| ErrorBody {
        error: String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
        expected_at: None,
    });
    // A proxy's 502/503/504 means the service is not there right now.
    if matches!(status.as_u16(), 502..=504) {
        return CallError::Unreachable(format!("{status}: {}", body.error));
    }
    CallError::Refused {
        status: status.as_u16(),
        body,
    }
}

/// "connection refused" is in the source chain, not in hyper's top message.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}
