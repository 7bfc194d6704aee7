//! What can go wrong loading the config or resolving a secret. Messages name the
//! file, line and key, and never a secret's value.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::spans::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{}: cannot read config: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file was read but is not a valid config; every problem found, in line order.
    #[error("{}", Problems { file, problems })]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
    /// An environment variable that overrides the config holds a bad value.
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    /// An `env:NAME` secret whose variable is unset or not UTF-8.
    #[error("secret `env:{name}`: environment variable `{name}` is not set")]
    SecretEnv { name: String },
    /// A `file:PATH` secret that cannot be read.
    #[error("secret `file:{}`: cannot read {}: {source}", path.display(), path.display())]
    SecretFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ConfigError {
    /// The problems of an [`ConfigError::Invalid`], empty for other variants.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// Formats problems one per line as `FILE:LINE: key `KEY`: message`.
struct Problems<'a> {
    file: &'a PathBuf,
    problems: &'a [Problem],
}

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}: {p}", self.file.display(), p.line)?;
        }
        Ok(())
    }
}
