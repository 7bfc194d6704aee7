//! What the runner is asked to do and what it says came of it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A run's id as the server assigned it. The runner only names things with it
/// (the child's `EXECGOV_RUN_ID`, its cgroup, its log lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Everything needed to run one script once.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub run_id: RunId,
    /// `argv[0]` is a program name (looked up in the child's `PATH`) or a path
    /// (a relative one is taken from this process's working directory). No shell, ever.
    pub argv: Vec<String>,
    /// A fresh per-run folder: created by the runner (an error if it exists);
    /// the child's working directory and `HOME`.
    pub run_dir: PathBuf,
    /// Extra variables the manifest passes through, already resolved.
    pub pass_env: Vec<(String, String)>,
    /// Values masked as `***` in the log, the tail, progress text and the
    /// result; empty and shorter-than-4-character values are ignored.
    pub secrets: Vec<String>,
    pub timeout: Duration,
    /// Between SIGTERM to the group and SIGKILL.
    pub kill_grace: Duration,
    pub log_path: PathBuf,
    /// Output bytes written to the log at most; the rest is counted and dropped.
    pub log_cap: u64,
    /// What the run may use, enforced where the host allows (see [`crate::Host`]).
    pub limits: Limits,
    /// Files to write into the run folder before the script starts (the
    /// request's file parameters), by path relative to it. They stay the
    /// runner's: the script may read them, not change them.
    pub inputs: Vec<(PathBuf, Vec<u8>)>,
}

/// A run's resource limits, from its manifest. `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of memory (and swap) the run's processes may use together; past
    /// it the kernel's OOM killer stops one of them.
    pub memory: Option<u64>,
    /// Processes (and threads: the kernel counts tasks) the run may have at once;
    /// past it `fork` fails.
    pub processes: Option<u32>,
}

/// A limit the kernel enforced during the run, read from its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReached {
    /// The OOM killer killed a process of the run at this many bytes.
    Memory(u64),
    /// A `fork` of the run was refused at this many processes.
    Processes(u32),
}

impl fmt::Display for LimitReached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitReached::Memory(bytes) => write!(f, "memory limit {} reached", size(*bytes)),
            LimitReached::Processes(n) => write!(f, "process limit {n} reached"),
        }
    }
}

/// A size the way a manifest writes it: `256MiB`, `1GiB`, else bytes.
pub fn size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, scale) in UNITS {
        if bytes >= scale && bytes.is_multiple_of(scale) {
            return format!("{}{unit}", bytes / scale);
        }
    }
    format!("{bytes} bytes")
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitKind {
    Exited(i32),
    /// Killed by this signal (not by us: timeouts and cancels have their own kinds).
    Signaled(i32),
    TimedOut,
    Cancelled,
    /// It never ran (or was lost); the message says what to do.
    SpawnFailed(String),
}

/// A file the script left in `EXECGOV_OUTPUT_DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// What came of one run.
#[derive(Debug, Clone)]
pub struct ExecOutcome {
    pub kind: ExitKind,
    pub duration: Duration,
    /// Bytes in the log: output up to the cap plus the `[execgov]` notes.
    pub log_bytes: u64,
    /// Output bytes dropped past the cap.
    pub dropped_bytes: u64,
    /// The last ~3,000 characters of masked output, for chat.
    pub tail: String,
    /// The `EXECGOV_RESULT` JSON, if the script wrote a valid one (a note in the
    /// log says why one was ignored).
    pub result: Option<serde_json::Value>,
    pub artifacts: Vec<Artifact>,
    /// Limits the kernel enforced (from the cgroup's counters, not a guess).
    pub limits_reached: Vec<LimitReached>,
}

impl ExecOutcome {
    /// Exited with status 0.
    pub fn succeeded(&self) -> bool {
        self.kind == ExitKind::Exited(0)
    }

    /// "memory limit 512MiB reached" (and any other limit reached), for the
    /// run's error: a script the OOM killer stopped often exits with a plain
    /// failure code, which alone would not say why.
    pub fn limit_error(&self) -> Option<String> {
        (!self.limits_reached.is_empty()).then(|| {
            self.limits_reached
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// A `::progress [N] text` line from the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub percent: Option<u8>,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_the_way_manifests_write_them() {
        assert_eq!(
            LimitReached::Memory(256 << 20).to_string(),
            "memory limit 256MiB reached"
        );
        assert_eq!(
            LimitReached::Memory(1 << 30).to_string(),
            "memory limit 1GiB reached"
        );
        assert_eq!(
            LimitReached::Processes(256).to_string(),
            "process limit 256 reached"
        );
        assert_eq!(
            size(1536),
            "1536 bytes",
            "1.5 KiB is not a whole unit: bytes"
        );
    }
}
