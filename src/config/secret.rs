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

/// The secret kept in `data_dir/NAME`, generated once (32 random bytes as hex,
/// mode 0600) when the file does not exist yet: the web secret and the audit
/// keys. Any number of processes may start together and agree: the fresh value
/// is written whole to a private temporary file, then linked into place, which
/// fails if the name already exists; the loser reads the winner's complete file.
/// A file shorter than a generated secret is refused, never replaced.
pub fn generated_once(data_dir: &Path, name: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;

    let path = data_dir.join(name);
    let read = |path: &Path| -> anyhow::Result<Option<String>> {
        match std::fs::read_to_string(path) {
            Ok(s) if s.trim().len() >= GENERATED_LEN => Ok(Some(s.trim().to_string())),
            Ok(_) => anyhow::bail!(
                "{} is shorter than a generated secret: restore it from a backup, or remove it \
                 to generate a new one (what was signed with the old one then stops verifying)",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    };
    if let Some(s) = read(&path)? {
        return Ok(s);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let fresh = hex::encode(rand::random::<[u8; 32]>());
    let tmp = data_dir.join(format!(
        ".{name}.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(fresh.as_bytes()).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(file = %path.display(), "generated a secret");
            Ok(fresh)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path)?.with_context(|| format!("{} vanished while starting", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// Characters in a generated secret (32 bytes as hex).
const GENERATED_LEN: usize = 64;

#[cfg(test)]
mod generated_tests {
    use super::*;

    /// Eight threads generating one secret at once all get the same, complete
    /// value, 50 times over; the file is private and no temporary file stays.
    #[test]
    fn processes_starting_together_agree_on_one_whole_secret() {
        use std::os::unix::fs::PermissionsExt;
        for _ in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let got: Vec<String> = (0..8)
                .map(|_| {
                    let (dir, barrier) = (dir.path().to_path_buf(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        generated_once(&dir, "k").unwrap()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect();
            assert!(got.iter().all(|s| s == &got[0] && s.len() == GENERATED_LEN));
            let mode = std::fs::metadata(dir.path().join("k"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            assert_eq!(
                std::fs::read_dir(dir.path()).unwrap().count(),
                1,
                "no temporary left"
            );
        }
    }

    #[test]
    fn a_short_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), "abc").unwrap();
        let err = generated_once(dir.path(), "k").unwrap_err().to_string();
        assert!(err.contains("shorter than a generated secret"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("k")).unwrap(),
            "abc"
        );
    }
}
