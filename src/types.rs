//! Small types parsed once at the edge, so nothing downstream re-checks strings.

use serde::{Deserialize, Serialize};
use std::fmt;

pub use execgov_chat::{Place, Platform, PlatformUser};

/// A run's id: a positive integer assigned by the store. Users may write `42` or `#42`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl RunId {
    pub fn parse(s: &str) -> Result<RunId, String> {
        let t = s.trim().trim_start_matches('#');
        match t.parse::<i64>() {
            Ok(n) if n > 0 => Ok(RunId(n)),
            _ => Err(format!(
                "`{s}` is not a run id (expected a number such as 42)"
            )),
        }
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A script's name as manifests declare it: lowercase letters, digits, `-` and `_`,
/// starting with a letter, at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScriptName(String);

impl ScriptName {
    pub fn parse(s: &str) -> Result<ScriptName, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(ScriptName(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not a valid script name (lowercase letters, digits, `-`, `_`; starts with a letter)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ScriptName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ScriptName::parse(&s)
    }
}

impl From<ScriptName> for String {
    fn from(s: ScriptName) -> String {
        s.0
    }
}

impl fmt::Display for ScriptName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person as named in the config's `[people.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonId(pub String);

impl PersonId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who did something. Identity always comes from verified platform data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A configured person, acting through a platform account.
    Person {
        person: PersonId,
        via: PlatformUser,
        /// Set when the CLI's `--as` acted for this person (demo configs only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        impersonated_by: Option<String>,
    },
    /// A platform account that maps to no configured person.
    Unknown { via: PlatformUser },
    /// A schedule firing (`schedule:<script>/<name>`).
    Schedule { id: String },
    /// ExecGov itself (expiry sweeps, recovery).
    System,
}

impl Actor {
    pub fn person(&self) -> Option<&PersonId> {
        match self {
            Actor::Person { person, .. } => Some(person),
            _ => None,
        }
    }

    /// The stable string written to the audit log and the `runs.requester` column.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::Person {
                person,
                impersonated_by: Some(by),
                ..
            } => format!("person:{person} (as, by {by})"),
            Actor::Person { person, .. } => format!("person:{person}"),
            Actor::Unknown { via } => format!("unknown:{via}"),
            Actor::Schedule { id } => format!("schedule:{id}"),
            Actor::System => "system".to_string(),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Person { person, .. } => write!(f, "{person}"),
            Actor::Unknown { via } => write!(f, "{via} (unknown)"),
            Actor::Schedule { id } => write!(f, "schedule:{id}"),
            Actor::System => f.write_str("execgov"),
        }
    }
}

/// A run's state. The allowed transitions are [`RunState::can_become`]; the store
/// refuses any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Requested,
    Refused,
    AwaitingApproval,
    Rejected,
    Expired,
    Queued,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Interrupted,
}

impl RunState {
    pub const ALL: [RunState; 12] = [
        RunState::Requested,
        RunState::Refused,
        RunState::AwaitingApproval,
        RunState::Rejected,
        RunState::Expired,
        RunState::Queued,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::TimedOut,
        RunState::Cancelled,
        RunState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Requested => "requested",
            RunState::Refused => "refused",
            RunState::AwaitingApproval => "awaiting_approval",
            RunState::Rejected => "rejected",
            RunState::Expired => "expired",
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::TimedOut => "timed_out",
            RunState::Cancelled => "cancelled",
            RunState::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True for states a run never leaves.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Refused
                | RunState::Rejected
                | RunState::Expired
                | RunState::Succeeded
                | RunState::Failed
                | RunState::TimedOut
                | RunState::Cancelled
                | RunState::Interrupted
        )
    }

    /// The lifecycle diagram of DESIGN.md, as the one place that says which
    /// transitions exist. `queued → cancelled` and `awaiting_approval → cancelled`
    /// are allowed too: a requester may withdraw a run that has not started.
    pub fn can_become(self, next: RunState) -> bool {
        use RunState::*;
        matches!(
            (self, next),
            (Requested, Refused)
                | (Requested, AwaitingApproval)
                | (Requested, Queued)
                | (AwaitingApproval, Rejected)
                | (AwaitingApproval, Expired)
                | (AwaitingApproval, Queued)
                | (AwaitingApproval, Cancelled)
                | (Queued, Running)
                // A claim that finds the run's approvals not backed by the audit log.
                | (Queued, Failed)
                | (Queued, Cancelled)
                | (Running, Succeeded)
                | (Running, Failed)
                | (Running, TimedOut)
                | (Running, Cancelled)
                | (Running, Interrupted)
        )
    }
}

impl Default for RunState {
    /// Before policy has answered.
    fn default() -> Self {
        RunState::Requested
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `tag` may name a runner tag: lowercase letters, digits, `-`, `_`
/// and `.`, starting with a letter or digit, at most 64 characters.
pub fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 64
        && tag.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && tag
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{tag}` is not a runner tag (lowercase letters, digits, `-`, `_`, `.`; starts with a letter or digit)"
        ))
    }
}

/// How dangerous a script is. High needs a human's approval before it runs;
/// critical needs that approval proved by a second factor (step-up, a TOTP
/// code) at the moment of approving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    #[default]
    Low,
    High,
    Critical,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }

    /// High and critical runs wait for approval.
    pub fn needs_approval(self) -> bool {
        self != Risk::Low
    }

    /// Every approval of a critical run proves a second factor.
    pub fn needs_step_up(self) -> bool {
        self == Risk::Critical
    }

    pub fn parse(s: &str) -> Option<Risk> {
        [Risk::Low, Risk::High, Risk::Critical]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A checked argument value. Dates are `Str("YYYY-MM-DD")`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ArgValue {
    Bool(bool),
    Int(i64),
    Str(String),
    /// A file handed with the request (`type = "file"`): what approvers see and
    /// approve. Its bytes are kept with the run and checked against `sha256`
    /// where it runs.
    File(FileArg),
}

/// A file argument: its name as sent, its size and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileArg {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

impl FileArg {
    /// What stands for the file in the argv a runner gets; the runner puts
    /// the path of the saved file in its place.
    pub fn token(&self) -> String {
        format!("{{{{execgov-file:{}}}}}", self.sha256)
    }
}

/// A file bound to a parameter, whose bytes are kept with the run.
#[derive(Clone, PartialEq, Eq)]
pub struct FileInput {
    pub param: String,
    pub name: String,
    pub sha256: String,
    pub data: Vec<u8>,
}

impl fmt::Debug for FileInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileInput")
            .field("param", &self.param)
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl ArgValue {
    /// The value as one argv element (a file: its [`FileArg::token`]).
    pub fn to_arg(&self) -> String {
        match self {
            ArgValue::Bool(b) => b.to_string(),
            ArgValue::Int(n) => n.to_string(),
            ArgValue::Str(s) => s.clone(),
            ArgValue::File(f) => f.token(),
        }
    }
}

/// As people read it: the value, or a file's name, size and short SHA-256.
impl fmt::Display for ArgValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgValue::File(file) => write!(
                f,
                "{} ({}, sha256 {}…)",
                file.name,
                bytesize::ByteSize::b(file.size).display().iec(),
                &file.sha256[..file.sha256.len().min(12)]
            ),
            other => f.write_str(&other.to_arg()),
        }
    }
}

/// Checked arguments by parameter name, defaults filled in.
pub type Args = std::collections::BTreeMap<String, ArgValue>;

/// Who may decide on a run that needs approval, as policy worked it out when the
/// run was requested (kept with the run, so what approvers were told stays what
/// it was even after the manifest changes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvers {
    /// The manifest's approver principals as written (`group:sre-leads`), for display.
    #[serde(default)]
    pub principals: Vec<String>,
    /// The people who may approve this run (the requester left out unless
    /// `self_approval = true`).
    #[serde(default)]
    pub eligible: Vec<PersonId>,
    /// The `[channels]` name the approval request is posted to.
    #[serde(default)]
    pub channel: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_accept_hash_prefix_and_refuse_garbage() {
        assert_eq!(RunId::parse("#42"), Ok(RunId(42)));
        assert!(RunId::parse("0").is_err(), "ids start at 1");
        assert!(RunId::parse("4x").is_err());
    }

    #[test]
    fn script_names_are_restricted() {
        assert!(ScriptName::parse("report-export").is_ok());
        assert!(ScriptName::parse("Report").is_err());
        assert!(ScriptName::parse("a b").is_err());
        assert!(ScriptName::parse("../x").is_err());
    }

    #[test]
    fn lifecycle_refuses_what_the_diagram_lacks() {
        assert!(RunState::AwaitingApproval.can_become(RunState::Queued));
        assert!(
            !RunState::Rejected.can_become(RunState::Queued),
            "a rejected run never runs"
        );
        assert!(
            !RunState::Running.can_become(RunState::Running),
            "no second start"
        );
        assert!(!RunState::Succeeded.can_become(RunState::Failed));
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
            if s.is_final() {
                assert!(
                    RunState::ALL.iter().all(|n| !s.can_become(*n)),
                    "{s} is final"
                );
            }
        }
    }
}
