//! The runner's credential: a one-time enrolment token (`egen_…`) is traded
//! for the runner's own credential (`egrc_…`) on first start, which then
//! replaces the token in its file (mode 0600).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use super::http::{CallError, Http};
use crate::protocol::{CREDENTIAL_PREFIX, ENROLMENT_PREFIX, EnrolRequest, EnrolResponse};

/// Where the runner's token came from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// `--token-file F`: an enrolment token is replaced by the credential.
    File(std::path::PathBuf),
    /// `EXECGOV_RUNNER_TOKEN` (or given in-process): kept in memory only.
    Value(String),
}

/// The runner's credential, enrolling first if the token is a one-time one.
pub async fn credential(http: &Http, source: &TokenSource) -> Result<String, String> {
    let token = match source {
        TokenSource::File(path) => read_token(path)?,
        TokenSource::Value(v) => v.trim().to_string(),
    };
    if token.starts_with(CREDENTIAL_PREFIX) {
        return Ok(token);
    }
    if !token.starts_with(ENROLMENT_PREFIX) {
        return Err(format!(
            "the token does not look like an ExecGov runner token (`{ENROLMENT_PREFIX}…` from \
             `execgov runners enrol`, or a runner credential `{CREDENTIAL_PREFIX}…`)"
        ));
    }
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let req = EnrolRequest {
        token,
        hostname,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let mut wait = Duration::from_millis(200);
    let answer: EnrolResponse = loop {
        match http
            .post_json("/enrol", &req, Duration::from_secs(30))
            .await
        {
            Ok(answer) => break answer,
            Err(CallError::Unreachable(why)) => {
                tracing::warn!(%why, retry_in = ?wait, "enrolment: the server did not answer");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(e) => {
                return Err(format!(
                    "enrolment refused: {e}; ask for a new token (`execgov runners enrol NAME`)"
                ));
            }
        }
    };
    tracing::info!(runner = %answer.runner, tags = ?answer.tags, "enrolled");
    if let TokenSource::File(path) = source {
        write_private(path, &answer.credential).map_err(|e| {
            format!(
                "enrolled as {}, but could not keep the credential in {}: {e}; the enrolment \
                 token is used up, so enrol again once the file is writable",
                answer.runner,
                path.display()
            )
        })?;
    }
    Ok(answer.credential)
}

fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading the token file {}: {e}", path.display()))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(token)
}

/// Replaces `path` with `text`, mode 0600, atomically (a temporary file renamed).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp-execgov");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)
}
