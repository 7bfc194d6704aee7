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
pub use secret::SecretRef;
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
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Runs executing at once, across all scripts.
    pub pool_size: usize,
    /// Bytes of output kept per run; the rest is dropped with a note.
    pub log_cap: u64,
    /// Time between SIGTERM and SIGKILL when a run is stopped.
    pub kill_grace: Duration,
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
        }
    }
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            pool_size: 8,
            log_cap: 10 * 1024 * 1024,
            kill_grace: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// Finds and loads the config: `path` (from `--config`), else `EXECGOV_CONFIG`,
    /// else `./execgov.toml` if it exists, else defaults. Then applies
    /// `EXECGOV_DATABASE_URL`.
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
        if let Ok(url) = std::env::var("EXECGOV_DATABASE_URL")
            && !url.is_empty()
        {
            config.database_url = url;
        }
        Ok(config)
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
            runner: RunnerConfig::default(),
            cli: CliConfig::default(),
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

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}/execgov.db", data_dir.display())
}
