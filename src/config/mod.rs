//! `execgov.toml`: where manifests and data live, the database, the web listener,
//! the runner's limits, and who is who (people, groups, channel names).
//!
//! Layout: [`parse`](self) walks the file (every problem with its line), `people`
//! answers identity questions, `secret` resolves `env:`/`file:` references, `spans`
//! holds the line-number helpers that manifests use too.

mod error;
mod parse;
mod people;
mod secret;
pub mod spans;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::types::PersonId;

pub use error::ConfigError;
pub use secret::{SecretRef, generated_once};
pub use spans::{Problem, line_of};

/// The whole configuration. Paths are absolute: relative ones in the file are
/// resolved against the file's folder (or the working directory without a file).
#[derive(Debug, Clone)]
pub struct Config {
    /// The file loaded; `None` means all defaults.
    pub source: Option<PathBuf>,
    /// Folder of script manifests (`manifests`).
    pub manifests: PathBuf,
    /// Run folders, logs, artifacts, the Matrix store (`data`).
    pub data_dir: PathBuf,
    /// `[database] url`; default SQLite in `data_dir`. `EXECGOV_DATABASE_URL` overrides
    /// it in [`Config::load`].
    pub database_url: String,
    pub web: WebConfig,
    pub runner: RunnerConfig,
    pub cli: CliConfig,
    pub store: StoreConfig,
    pub retention: RetentionConfig,
    pub audit: AuditConfig,
    pub access: AccessConfig,
    /// `[people.NAME]`: one person's accounts on each platform.
    pub people: BTreeMap<PersonId, Person>,
    /// `[groups]`: name → members, every member a configured person.
    pub groups: BTreeMap<String, Vec<PersonId>>,
    /// `[channels]`: name used by manifests → place keys (`slack:C0123`, `matrix:!abc:hs`).
    pub channels: BTreeMap<String, Vec<String>>,
    pub slack: Option<SlackConfig>,
    pub matrix: Option<MatrixConfig>,
}

#[derive(Debug, Clone)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// Base of audit links; default `http://{listen}`.
    pub public_url: String,
    /// Signs audit links and sessions; when unset the server generates one into `data_dir`.
    pub secret: Option<SecretRef>,
    /// Person ids who may see every run in the web UI.
    pub admins: Vec<String>,
    /// Allows logging in as any person without a password: demo setups only.
    pub dev_login: bool,
    /// `[web] metrics_token`: when set, `/metrics` answers only requests with
    /// `Authorization: Bearer <token>` (the Slack endpoints share the listener,
    /// so it is often reachable from outside).
    pub metrics_token: Option<SecretRef>,
    /// Whether `public_url` was written in the file; when not, it follows
    /// `listen` (also when `EXECGOV_LISTEN` moves it).
    pub public_url_set: bool,
}

/// `[store]`: what the store keeps and for how long.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `[store] inbound_retention`: how long the ids of inbound platform events
    /// are kept to drop redeliveries (Slack retries within minutes); older ones
    /// are pruned. Default 7 days.
    pub inbound_retention: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            inbound_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// `[retention]`: how long a finished run keeps its payloads
/// (`docs/retention.md`). Each is counted from the run's end; unset keeps it
/// forever. The run's row, its artifacts' names and digests and its audit
/// entries are never removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `logs`: the run's stored log (its sha256 and size stay on the run).
    pub logs: Option<Duration>,
    /// `artifacts`: the bytes of the run's files.
    pub artifacts: Option<Duration>,
    /// `runs`: the output tail, the result and the run folder.
    pub runs: Option<Duration>,
}

impl RetentionConfig {
    /// Whether anything is ever pruned.
    pub fn is_set(&self) -> bool {
        self.logs.is_some() || self.artifacts.is_some() || self.runs.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Runs executing at once, across all scripts.
    pub pool_size: usize,
    /// Bytes of output kept per run; the rest is dropped with a note.
    pub log_cap: u64,
    /// Time between SIGTERM and SIGKILL when a run is stopped.
    pub kill_grace: Duration,
    /// `[runner] user`: the OS user scripts run as (the service must run as
    /// root); `None`: the service's own user.
    pub user: Option<String>,
    /// `[runner] lease`: how long a runner holds a claimed run without
    /// renewing it (a poll renews it) before the run becomes `interrupted`.
    pub lease: Duration,
    /// `[runner] local`: `execgov serve` starts its own local runner, which
    /// takes the runs whose manifest has no `runs_on`.
    pub local: bool,
    /// `[runner] artifact_cap`: the largest file a run may leave.
    pub artifact_cap: u64,
    /// `[runner] runs_dir`: where run folders are made (default `data_dir/runs`).
    /// Outside `data_dir` when `user` is set: `data_dir` is private to the
    /// service (mode 0700), and the run user must reach its run folder.
    pub runs_dir: PathBuf,
}

/// `[audit]`: the keys of the audit log and its signed checkpoints (see
/// `docs/audit.md`).
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// `key`: the HMAC key every audit entry's hash is made with, held outside
    /// the database. Unset: generated once into `data_dir/audit-key`.
    pub key: Option<SecretRef>,
    /// `signing_key`: the ed25519 key checkpoints are signed with (32 bytes, hex
    /// or base64). Unset: generated once into `data_dir/audit-signing-key`.
    pub signing_key: Option<SecretRef>,
    /// `checkpoint_every`: how often `serve` signs a checkpoint of the chain's head.
    pub checkpoint_every: Duration,
    /// `checkpoint_file`: where checkpoints are appended (JSON lines);
    /// `None`: `data_dir/checkpoints.jsonl`.
    pub checkpoint_file: Option<PathBuf>,
    /// `channel`: a `[channels]` name each checkpoint is posted to.
    pub channel: Option<String>,
    /// `sink = "file:PATH"`: every entry is appended to PATH as an export
    /// line (`execgov.audit/1`) as it is written (see `audit::sink`).
    pub sink: Option<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            key: None,
            signing_key: None,
            checkpoint_every: Duration::from_secs(3600),
            checkpoint_file: None,
            sink: None,
            channel: None,
        }
    }
}

/// `[access]`: service-wide access rules (`docs/break-glass.md`).
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// `break_glass`: who may start a run that needs approval without waiting
    /// for it (`run!`), as principals `person:NAME` / `group:NAME`, checked at load.
    pub break_glass: Vec<String>,
    /// `review_within`: a break-glass run not reviewed by an approver within
    /// this is posted again (and counted on `/metrics`). Default 24h.
    pub review_within: Duration,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            break_glass: Vec::new(),
            review_within: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct CliConfig {
    /// Allows `--as PERSON` on the CLI: true only in demo configs.
    pub impersonation: bool,
}

/// One person's platform accounts; any may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    /// Slack user id (`U024BE7LH`).
    pub slack: Option<String>,
    /// Matrix user id (`@alice:example.org`).
    pub matrix: Option<String>,
    /// Local login name, matched for CLI use.
    pub unix: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SlackConfig {
    pub bot_token: Option<SecretRef>,
    pub signing_secret: Option<SecretRef>,
    /// Set ⇒ Socket Mode instead of HTTP endpoints.
    pub app_token: Option<SecretRef>,
    /// Base URL of the Web API, always ending in `/`; tests point it at a fake.
    pub api_url: String,
}

#[derive(Debug, Clone)]
pub struct MatrixConfig {
    pub homeserver: String,
    pub user_id: String,
    pub access_token: Option<SecretRef>,
    pub password: Option<SecretRef>,
    /// Messages starting with this are commands (`!run`).
    pub command_prefix: String,
    /// Only invites from these Matrix users are accepted.
    pub allowed_inviters: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        let listen = SocketAddr::from(([127, 0, 0, 1], 8080));
        WebConfig {
            listen,
            public_url: format!("http://{listen}"),
            secret: None,
            admins: Vec::new(),
            dev_login: false,
            metrics_token: None,
            public_url_set: false,
        }
    }
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            pool_size: 8,
            log_cap: 10 * 1024 * 1024,
            kill_grace: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            local: true,
            artifact_cap: 50 * 1024 * 1024,
            user: None,
            runs_dir: PathBuf::from("data/runs"),
        }
    }
}

impl Config {
    /// Finds and loads the config: `path` (from `--config`), else `EXECGOV_CONFIG`,
    /// else `./execgov.toml` if it exists, else defaults. Then applies the
    /// environment's overrides (see [`Config::apply_env`]).
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let chosen = match path {
            Some(p) => Some(p.to_path_buf()),
            None => match std::env::var_os("EXECGOV_CONFIG") {
                Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
                _ => Some(PathBuf::from("execgov.toml")).filter(|p| p.is_file()),
            },
        };
        let mut config = match chosen {
            Some(file) => {
                let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
                    file: file.clone(),
                    source,
                })?;
                Config::parse(&text, &file)?
            }
            None => Config::defaults(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Overrides from the environment (`var` looks a variable up; empty counts
    /// as unset): `EXECGOV_DATABASE_URL`, `EXECGOV_LISTEN` (the public URL
    /// follows it unless the file sets one) and `EXECGOV_PUBLIC_URL`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let invalid = |name: &str, message: String| ConfigError::Env {
            name: name.to_string(),
            message,
        };
        if let Some(url) = var("EXECGOV_DATABASE_URL") {
            self.database_url = url;
        }
        if let Some(listen) = var("EXECGOV_LISTEN") {
            self.web.listen = listen.trim().parse().map_err(|_| {
                invalid(
                    "EXECGOV_LISTEN",
                    format!("`{listen}` is not an address such as \"127.0.0.1:8080\""),
                )
            })?;
            if !self.web.public_url_set {
                self.web.public_url = format!("http://{}", self.web.listen);
            }
        }
        if let Some(url) = var("EXECGOV_PUBLIC_URL") {
            let url = url.trim();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "EXECGOV_PUBLIC_URL",
                    format!("`{url}` must start with http:// or https://"),
                ));
            }
            self.web.public_url = url.trim_end_matches('/').to_string();
            self.web.public_url_set = true;
        }
        Ok(())
    }

    /// Parses config text read from `path` (used for messages and to resolve relative
    /// paths). No environment override is applied here.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        parse::parse(text, path)
    }

    /// All defaults, relative to the working directory.
    pub fn defaults() -> Config {
        Config::defaults_in(&cwd())
    }

    /// All defaults, with paths relative to `base`.
    fn defaults_in(base: &Path) -> Config {
        let data_dir = base.join("data");
        Config {
            source: None,
            manifests: base.join("manifests"),
            database_url: default_database_url(&data_dir),
            data_dir,
            web: WebConfig::default(),
            runner: RunnerConfig {
                runs_dir: base.join("data/runs"),
                ..RunnerConfig::default()
            },
            cli: CliConfig::default(),
            store: StoreConfig::default(),
            retention: RetentionConfig::default(),
            audit: AuditConfig::default(),
            access: AccessConfig::default(),
            people: BTreeMap::new(),
            groups: BTreeMap::new(),
            channels: BTreeMap::new(),
            slack: None,
            matrix: None,
        }
    }

    /// Every secret value that resolves now (Slack tokens, Matrix token or password,
    /// the web secret), for the runner to mask in logs. Unresolvable ones are skipped.
    pub fn secret_values(&self) -> Vec<String> {
        let mut refs: Vec<&SecretRef> = Vec::new();
        if let Some(s) = &self.slack {
            refs.extend(
                [&s.bot_token, &s.signing_secret, &s.app_token]
                    .into_iter()
                    .flatten(),
            );
        }
        if let Some(m) = &self.matrix {
            refs.extend([&m.access_token, &m.password].into_iter().flatten());
        }
        refs.extend(self.web.secret.as_ref());
        refs.extend(self.web.metrics_token.as_ref());
        refs.extend(self.audit.key.as_ref());
        refs.extend(self.audit.signing_key.as_ref());
        let mut values: Vec<String> = refs
            .into_iter()
            .filter_map(|r| r.resolve().ok())
            .filter(|v| !v.is_empty())
            .collect();
        values.sort();
        values.dedup();
        values
    }
}

impl Config {
    /// `[audit] checkpoint_file`, else `data_dir/checkpoints.jsonl`.
    pub fn checkpoint_file(&self) -> PathBuf {
        self.audit
            .checkpoint_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("checkpoints.jsonl"))
    }
}

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}/execgov.db", data_dir.display())
}
