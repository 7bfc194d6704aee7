//! Secret references: `env:NAME` or `file:PATH`, so no token sits in a committed file.

use std::fmt;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// Where a secret comes from. Resolved when needed, so a rotated file or a changed
/// environment is picked up by the next `resolve`.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `env:NAME`: the value of an environment variable.
    Env(String),
    /// `file:PATH`: the contents of a file, trailing newline removed. Relative paths
    /// are resolved against the config file's folder at load.
    File(PathBuf),
    /// Anything else: the value itself (accepted with a warning in the log).
    Literal(String),
}

impl SecretRef {
    /// Reads a reference as written in the config; `base` resolves relative `file:` paths.
    /// `key` only names the setting in the warning about literals.
    pub fn parse(text: &str, base: &Path, key: &str) -> Result<SecretRef, String> {
        if let Some(name) = text.strip_prefix("env:") {
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!(
                    "`env:{name}` does not name an environment variable"
                ));
            }
            Ok(SecretRef::Env(name.to_string()))
        } else if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                return Err("`file:` needs a path".to_string());
            }
            Ok(SecretRef::File(base.join(path)))
        } else {
            tracing::warn!(
                key,
                "a literal secret sits in the config file; prefer `env:NAME` or `file:PATH`"
            );
            Ok(SecretRef::Literal(text.to_string()))
        }
    }

    /// The secret's value. Errors name the variable or file, never the value.
    pub fn resolve(&self) -> Result<String, ConfigError> {
        match self {
            SecretRef::Env(name) => {
                std::env::var(name).map_err(|_| ConfigError::SecretEnv { name: name.clone() })
            }
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|source| ConfigError::SecretFile {
                    path: path.clone(),
                    source,
                }),
            SecretRef::Literal(value) => Ok(value.clone()),
        }
    }
}

/// Never prints a literal's value, so a `{:?}` of the config is safe to log.
impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
            SecretRef::Literal(_) => f.write_str("<literal secret>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_resolve_without_leaking() {
        let base = Path::new("/etc/execgov");
        assert_eq!(
            SecretRef::parse("env:SLACK_BOT_TOKEN", base, "k"),
            Ok(SecretRef::Env("SLACK_BOT_TOKEN".into()))
        );
        assert_eq!(
            SecretRef::parse("file:token", base, "k"),
            Ok(SecretRef::File("/etc/execgov/token".into())),
            "relative file paths resolve against the config folder"
        );
        assert!(
            SecretRef::parse("env:", base, "k").is_err(),
            "env: needs a name"
        );
        let literal = SecretRef::parse("xoxb-hunter2", base, "k").expect("literals are accepted");
        assert!(
            !format!("{literal:?}").contains("hunter2"),
            "Debug hides literals"
        );

        let missing = SecretRef::Env("EXECGOV_TEST_SURELY_UNSET_VAR".into());
        let err = missing.resolve().expect_err("unset variable");
        assert!(
            err.to_string().contains("EXECGOV_TEST_SURELY_UNSET_VAR"),
            "names the variable"
        );
    }

    #[test]
    fn file_secrets_drop_the_trailing_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").expect("write");
        assert_eq!(SecretRef::File(path).resolve().expect("readable"), "s3cret");
    }
}
