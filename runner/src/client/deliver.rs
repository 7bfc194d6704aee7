//! Getting a run's record to the server: the log streamed from its spool file
//! while the run runs, its progress, then the rest of the log, its files and
//! its finish, retried while the server is away, each byte stored once.

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::http::CallError;
use super::spool::{Ended, Held, ended_path, log_path};
use crate::protocol::{LogStored, ProgressReport, SHA256_HEADER};
use crate::spec::Progress;

/// The most log bytes sent in one call (the server takes up to 1 MiB).
const CHUNK: usize = 512 * 1024;
/// How often a running run's log is looked at for new bytes.
const LOOK_EVERY: Duration = Duration::from_millis(40);
/// The longest wait between tries while the server is away.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Deadline of one report call.
const CALL: Duration = Duration::from_secs(30);

/// Sends the log as it grows, until the run ends (then the delivery sends the
/// rest); how much the server has.
pub(super) async fn stream_log(
    shared: Arc<Shared>,
    run: i64,
    log: PathBuf,
    held: Arc<Held>,
    ended: CancellationToken,
) -> u64 {
    let mut sent = 0u64;
    let mut backoff = LOOK_EVERY;
    loop {
        let wait = match send_log(&shared, run, &log, &mut sent).await {
            Sent::UpToDate => {
                backoff = LOOK_EVERY;
                LOOK_EVERY
            }
            Sent::More => {
                backoff = LOOK_EVERY;
                Duration::ZERO
            }
            Sent::Later => {
                backoff = (backoff * 2).min(MAX_BACKOFF);
                backoff
            }
            Sent::NotOurs => return sent,
        };
        tokio::select! {
            _ = ended.cancelled() => return sent,
            _ = held.lost.cancelled() => return sent,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

enum Sent {
    /// Everything written so far is on the server.
    UpToDate,
    /// A chunk went; there may be more.
    More,
    /// The server is away: try later.
    Later,
    /// The server says this run is not ours to report on.
    NotOurs,
}

/// Sends the next chunk of the log from `sent` (what the server has).
async fn send_log(shared: &Shared, run: i64, log: &Path, sent: &mut u64) -> Sent {
    let chunk = match read_from(log, *sent).await {
        Ok(chunk) => chunk,
        Err(e) => {
            tracing::warn!(run_id = run, error = %e, "reading the run's log");
            return Sent::Later;
        }
    };
    if chunk.is_empty() {
        return Sent::UpToDate;
    }
    let path = format!("/runs/{run}/log?at={sent}");
    match shared
        .http
        .send_bytes(Method::POST, &path, None, chunk, CALL)
        .await
    {
        Ok(body) => {
            if let Ok(stored) = serde_json::from_slice::<LogStored>(&body) {
                *sent = stored.stored;
            }
            Sent::More
        }
        Err(e) if e.status() == Some(409) && e.expected_at().is_some() => {
            *sent = e.expected_at().unwrap_or(*sent);
            Sent::More
        }
        Err(CallError::Unreachable(why)) => {
            tracing::debug!(run_id = run, %why, "log chunk not delivered yet");
            Sent::Later
        }
        Err(e) => {
            tracing::warn!(run_id = run, error = %e, "the server refused the run's log");
            Sent::NotOurs
        }
    }
}

async fn read_from(log: &Path, at: u64) -> std::io::Result<Vec<u8>> {
    let mut f = match tokio::fs::File::open(log).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    f.seek(std::io::SeekFrom::Start(at)).await?;
    let mut buf = Vec::with_capacity(CHUNK.min(64 * 1024));
    f.take(CHUNK as u64).read_to_end(&mut buf).await?;
    Ok(buf)
}

/// Forwards the latest progress line; older ones still queued are skipped.
pub(super) async fn forward_progress(
    shared: Arc<Shared>,
    run: i64,
    mut rx: mpsc::Receiver<Progress>,
) {
    while let Some(mut p) = rx.recv().await {
        while let Ok(newer) = rx.try_recv() {
            p = newer;
        }
        let report = ProgressReport {
            pct: p.percent,
            text: p.text,
        };
        let path = format!("/runs/{run}/progress");
        let sent: Result<serde_json::Value, _> = shared
            .http
            .post_json(&path, &report, Duration::from_secs(5))
            .await;
        if let Err(e) = sent
            && e.status() != Some(200)
        {
            tracing::debug!(run_id = run, error = %e, "progress not delivered (the next one replaces it)");
        }
    }
}

/// Delivers the rest of the log, the files and the finish, retrying while the
/// server is away, until the server has them or says the run is not ours.
pub(super) async fn deliver(shared: &Shared, run: i64, held: &Held, ended: Ended, sent: u64) {
    let log = log_path(&shared.opts.spool, run);
    let mut sent = sent;
    let mut backoff = Duration::from_millis(100);
    let mut files_sent = false;
    let mut finish = ended.finish.clone();
    loop {
        if held.lost.is_cancelled() {
            tracing::warn!(
                run_id = run,
                "the server wrote this run off; its outcome stays in the runner's log only"
            );
            break;
        }
        let step = async {
            loop {
                match send_log(shared, run, &log, &mut sent).await {
                    Sent::More => continue,
                    Sent::UpToDate => break,
                    Sent::Later => return Step::Later,
                    Sent::NotOurs => return Step::Done,
                }
            }
            if !files_sent {
                let mut delivered = Vec::new();
                for (info, (name, path)) in ended.finish.artifacts.iter().zip(&ended.files) {
                    match send_file(shared, run, name, path, &info.sha256).await {
                        Ok(()) => delivered.push(info.clone()),
                        Err(CallError::Unreachable(_)) => return Step::Later,
                        Err(e) => {
                            tracing::warn!(run_id = run, file = %name, error = %e, "the server refused a file of the run")
                        }
                    }
                }
                finish.artifacts = delivered;
                files_sent = true;
            }
            let path = format!("/runs/{run}/finish");
            let answer: Result<serde_json::Value, _> =
                shared.http.post_json(&path, &finish, CALL).await;
            match answer {
                Ok(_) => Step::Done,
                Err(e) if e.status() == Some(409) && e.expected_at().is_some() => {
                    sent = e.expected_at().unwrap_or(0);
                    Step::Again
                }
                Err(CallError::Unreachable(_)) => Step::Later,
                Err(e) => {
                    tracing::warn!(run_id = run, error = %e, "the server refused the run's finish");
                    Step::Done
                }
            }
        };
        match step.await {
            Step::Done => break,
            Step::Again => continue,
            Step::Later => {
                tracing::debug!(run_id = run, retry_in = ?backoff, "the server is away; the run's outcome waits in the spool");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = held.lost.cancelled() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(ended_path(&shared.opts.spool, run));
}

enum Step {
    Done,
    Again,
    Later,
}

async fn send_file(
    shared: &Shared,
    run: i64,
    name: &str,
    path: &Path,
    sha256: &str,
) -> Result<(), CallError> {
    let bytes = match tokio::fs::read(path).await {
        Ok(b) => b,
        Err(e) => {
            return Err(CallError::Refused {
                status: 0,
                body: crate::protocol::ErrorBody {
                    error: format!("reading {}: {e}", path.display()),
                    expected_at: None,
                },
            });
        }
    };
    let url = format!("/runs/{run}/artifacts/{}", encode_segment(name));
    shared
        .http
        .send_bytes(
            Method::PUT,
            &url,
            Some((SHA256_HEADER, sha256)),
            bytes,
            CALL,
        )
        .await
        .map(|_| ())
}

/// A path segment with everything but unreserved characters percent-encoded.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_encoded_as_one_path_segment() {
        assert_eq!(
            encode_segment("report 2026/10.csv"),
            "report%202026%2F10.csv"
        );
        assert_eq!(encode_segment("ü.txt"), "%C3%BC.txt");
    }
}
