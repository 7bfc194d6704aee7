//! The runner protocol's messages: what a runner and the service say to each
//! other over HTTP under `/runner/v1/` (see `docs/runners.md`). Both sides use
//! these types, so the wire format is written once. JSON, `snake_case`.

use serde::{Deserialize, Serialize};

/// The path prefix of every call.
pub const PREFIX: &str = "/runner/v1";

/// How a one-time enrolment token starts (`execgov runners enrol` prints it).
pub const ENROLMENT_PREFIX: &str = "egen_";
/// How a runner's own credential starts (the answer to an enrolment).
pub const CREDENTIAL_PREFIX: &str = "egrc_";
/// The header that carries an artifact's SHA-256 (lowercase hex).
pub const SHA256_HEADER: &str = "x-execgov-sha256";

/// `POST /runner/v1/enrol`: the runner's first call, with its one-time token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrolRequest {
    pub token: String,
    /// For `execgov runners list`.
    pub hostname: String,
    pub version: String,
}

/// The runner's own credential, which it keeps (mode 0600) and sends as
/// `Authorization: Bearer …` from now on. The server keeps only its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrolResponse {
    pub runner: String,
    pub credential: String,
    /// The tags the runner was enrolled with.
    pub tags: Vec<String>,
    pub lease_ms: u64,
}

/// A run the runner holds, as it tells the server on each poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldRun {
    pub run: i64,
    /// The script's process has been started (so an interrupted run may have
    /// run partly).
    pub started: bool,
}

/// `POST /runner/v1/poll`: renews the leases of the runs it holds, and waits
/// for work or a cancel (long poll).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PollRequest {
    /// Slots free now: the server hands out at most this many runs.
    pub free_slots: u32,
    /// Every run the runner holds (running, or finished but not yet reported).
    pub holding: Vec<HeldRun>,
    /// The tags the runner says it has (`--tags`); must be the ones it was
    /// enrolled with, or the call is refused and says which.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The most the server may wait before answering, in milliseconds; the
    /// server waits less when the lease asks for it.
    pub wait_ms: u64,
}

/// The answer to a poll.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PollResponse {
    /// Runs now claimed by this runner, each to start at once.
    pub jobs: Vec<Job>,
    /// Held runs someone asked to cancel: stop them (the outcome is `cancelled`).
    pub cancel: Vec<i64>,
    /// Held runs the runner no longer holds (its lease lapsed, it was revoked,
    /// the run was written off): stop them and report nothing more.
    pub lost: Vec<i64>,
    /// The lease: poll again well before it runs out.
    pub lease_ms: u64,
}

/// One script file the approval covered, which the runner checks before it
/// starts anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptFile {
    /// Relative to the runner's scripts folder (the service's manifests folder).
    pub path: String,
    /// Lowercase hex SHA-256 of the file's bytes as approved.
    pub sha256: String,
}

/// A claimed run: everything the runner needs to run it, and nothing secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub run: i64,
    pub script: String,
    /// The command, one element per argument, no shell. An element equal to a
    /// [`ScriptFile`]'s `path` is that file under the runner's scripts folder.
    pub argv: Vec<String>,
    pub files: Vec<ScriptFile>,
    /// The approved digest of the manifest and its files, for messages.
    pub digest: String,
    /// Variables passed through from the runner's own environment.
    pub env: Vec<String>,
    /// Variables passed through from the runner's environment (or its
    /// `--secret NAME=file:PATH`), whose values are masked on the runner.
    pub secret_env: Vec<String>,
    pub timeout_ms: u64,
    pub kill_grace_ms: u64,
    /// Bytes of output the log keeps at most.
    pub log_cap: u64,
    pub memory: Option<u64>,
    pub max_processes: Option<u32>,
    /// A `[python]` manifest's environment: the runner finds or builds it
    /// under its envs folder and runs `argv[0]` as that environment's
    /// interpreter. Absent from older servers: the run has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PythonEnv>,
    /// Files sent with the request (`type = "file"` parameters): the runner
    /// fetches each, checks its sha256, saves it in the run folder, and puts
    /// its path where its `token` is in `argv`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputFile>,
}

/// A file sent with a request. Its bytes come from
/// `GET /runner/v1/runs/{run}/inputs/{n}` (n from 1, in this list's order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// What stands for the file's path in `argv`.
    pub token: String,
    /// Its name as sent: the saved file's name.
    pub name: String,
    /// Lowercase hex SHA-256 of its bytes, as the run's arguments (and approval) carry it.
    pub sha256: String,
    pub size: u64,
}

/// The Python environment a run needs, built where it runs (see
/// `docs/python.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonEnv {
    /// `python = "3.11"` (or PEP 723's `requires-python`); `None`: the
    /// runner's `python3`.
    #[serde(default)]
    pub version: Option<String>,
    /// Requirement specifiers, one per element, as approved (comments and
    /// blank lines gone).
    #[serde(default)]
    pub requirements: Vec<String>,
}

/// `POST /runner/v1/runs/{id}/progress`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgressReport {
    pub pct: Option<u8>,
    pub text: String,
}

/// How a run ended, as the runner saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ending {
    Exited {
        code: i32,
    },
    Signaled {
        signal: i32,
    },
    TimedOut,
    Cancelled,
    /// It never started; `error` says why.
    NotStarted,
    /// The runner refused to start it: a script file differs from the
    /// approved one (`error` names it).
    Refused,
    /// A restarted runner found the run's processes left by its earlier self
    /// and stopped them: the script had started and may have run partly.
    Abandoned,
}

/// A file the run produced, uploaded before the finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactInfo {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// `POST /runner/v1/runs/{id}/finish`: the run's outcome. Refused (`409`) until
/// the log has arrived up to `log_bytes`; accepted once, answered the same again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finish {
    #[serde(flatten)]
    pub ending: Ending,
    pub error: Option<String>,
    pub duration_ms: u64,
    /// Bytes of the log (all sent before this call).
    pub log_bytes: u64,
    /// Output bytes dropped past the log cap.
    pub dropped_bytes: u64,
    /// The last ~3,000 characters of masked output, for chat.
    pub tail: String,
    pub result: Option<serde_json::Value>,
    pub artifacts: Vec<ArtifactInfo>,
    /// The Python interpreter the run used, when it was a Python run: its real
    /// binary and version, for the run's audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PythonUsed>,
}

/// The interpreter a Python run used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonUsed {
    /// The real binary (never a shim).
    pub interpreter: String,
    /// `3.11.7`.
    pub version: String,
    /// The environment's folder name under the runner's envs folder, when the
    /// run had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The environment was found ready.
    #[serde(default)]
    pub cached: bool,
    /// Milliseconds spent finding or building the environment.
    #[serde(default)]
    pub prepare_ms: u64,
}

/// The answer to a log chunk: how many bytes of the log the server has now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogStored {
    pub stored: u64,
}

/// Every error answer: what went wrong, and for a log chunk out of order,
/// where the server expects it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_at: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finish_reads_as_documented() {
        let f: Finish = serde_json::from_str(
            r#"{"kind":"exited","code":3,"error":null,"duration_ms":12,"log_bytes":40,
                "dropped_bytes":0,"tail":"x","result":null,"artifacts":[]}"#,
        )
        .unwrap();
        assert_eq!(f.ending, Ending::Exited { code: 3 });
        let back = serde_json::to_value(&f).unwrap();
        assert_eq!(
            back["kind"], "exited",
            "the kind is flattened into the object"
        );
    }
}
