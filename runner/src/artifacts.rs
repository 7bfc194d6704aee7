//! What a script leaves behind: the `EXECGOV_RESULT` JSON summary and the files
//! in `EXECGOV_OUTPUT_DIR`, hashed so the audit trail can name them exactly.
//!
//! The runner may be root and the script another user, so every file is
//! opened without following a symlink, must be a regular file, and (with a
//! run user) must belong to that user: a link to a file the script could not
//! read itself is skipped, not read with the runner's rights.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::log::human_bytes;
use crate::mask::Masker;
use crate::spec::Artifact;

/// A result file larger than this is ignored: it is a summary for chat, not data.
const RESULT_MAX: u64 = 1024 * 1024;

/// Reads the result file. `Ok(None)` when the script wrote none; `Err` holds a
/// note for the log saying why a file that exists was ignored. Secret values in
/// its strings are masked, since the result is shown in chat.
pub(crate) fn read_result(
    path: &Path,
    masker: &Masker,
    owner: Option<u32>,
) -> Result<Option<serde_json::Value>, String> {
    let (mut file, meta) = match open_own_file(path, owner) {
        Ok(opened) => opened,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("EXECGOV_RESULT: {e}; ignored")),
    };
    if meta.len() > RESULT_MAX {
        return Err(format!(
            "EXECGOV_RESULT is {}, more than the {} allowed; ignored (put data in EXECGOV_OUTPUT_DIR)",
            human_bytes(meta.len()),
            human_bytes(RESULT_MAX)
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("could not read EXECGOV_RESULT: {e}; ignored"))?;
    let mut value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("EXECGOV_RESULT is not valid JSON ({e}); ignored"))?;
    mask_json(&mut value, masker);
    Ok(Some(value))
}

/// Opens `path` if it is a regular file (not a symlink, FIFO or device) that
/// belongs to `owner` when one is given.
fn open_own_file(path: &Path, owner: Option<u32>) -> io::Result<(File, std::fs::Metadata)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::other("is a symlink"),
            _ => e,
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("is not a regular file"));
    }
    if let Some(uid) = owner
        && meta.uid() != uid
    {
        return Err(io::Error::other(format!(
            "belongs to uid {}, not to the run user (uid {uid})",
            meta.uid()
        )));
    }
    Ok((file, meta))
}

fn mask_json(value: &mut serde_json::Value, masker: &Masker) {
    use serde_json::Value;
    match value {
        Value::String(s) => mask_string(s, masker),
        Value::Array(items) => items.iter_mut().for_each(|v| mask_json(v, masker)),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (mut key, mut v) in entries {
                mask_string(&mut key, masker);
                mask_json(&mut v, masker);
                map.insert(key, v);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn mask_string(s: &mut String, masker: &Masker) {
    if let std::borrow::Cow::Owned(masked) = masker.mask(s.as_bytes()) {
        *s = String::from_utf8_lossy(&masked).into_owned();
    }
}

/// Regular files directly in `dir` (symlinks and folders are skipped), sorted
/// by name, each with its size and SHA-256; with `owner`, only that user's.
pub(crate) async fn collect_artifacts(dir: PathBuf, owner: Option<u32>) -> Vec<Artifact> {
    let files = list_files(&dir);
    if files.is_empty() {
        return Vec::new();
    }
    // Hashing reads whole files: keep it off the async workers.
    match tokio::task::spawn_blocking(move || hash_all(files, owner)).await {
        Ok(artifacts) => artifacts,
        Err(e) => {
            tracing::error!(error = %e, "hashing artifacts failed");
            Vec::new()
        }
    }
}

fn list_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "could not list the output folder");
            return Vec::new();
        }
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            )
        })
        .collect();
    files.sort();
    files
}

fn hash_all(files: Vec<(String, PathBuf)>, owner: Option<u32>) -> Vec<Artifact> {
    files
        .into_iter()
        .filter_map(|(name, path)| match hash_file(&path, owner) {
            Ok((size, sha256)) => Some(Artifact {
                name,
                path,
                size,
                sha256,
            }),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping an artifact that cannot be read");
                None
            }
        })
        .collect()
}

/// Size and hex SHA-256, streamed through a fixed buffer.
fn hash_file(path: &Path, owner: Option<u32>) -> io::Result<(u64, String)> {
    let (mut file, _) = open_own_file(path, owner)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_strings_are_masked_and_bad_json_is_explained() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("result.json");
        let masker = Masker::new(&["hunter22".to_string()]);
        std::fs::write(&path, r#"{"msg": "pw hunter22", "n": 3}"#).expect("write");
        let value = read_result(&path, &masker, None)
            .expect("valid")
            .expect("present");
        assert_eq!(value, serde_json::json!({"msg": "pw ***", "n": 3}));
        std::fs::write(&path, "{not json").expect("write");
        let err = read_result(&path, &masker, None).expect_err("invalid JSON");
        assert!(err.starts_with("EXECGOV_RESULT is not valid JSON"), "{err}");
        assert_eq!(
            read_result(&dir.path().join("none.json"), &masker, None),
            Ok(None)
        );
    }

    #[test]
    fn a_symlinked_or_foreign_result_is_not_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let secret = dir.path().join("secret.json");
        std::fs::write(&secret, r#"{"stolen": true}"#).expect("write");
        let link = dir.path().join("result.json");
        std::os::unix::fs::symlink(&secret, &link).expect("symlink");
        let masker = Masker::new(&[]);
        let err = read_result(&link, &masker, None).expect_err("a symlink is refused");
        assert!(err.contains("is a symlink"), "{err}");
        let me = nix::unistd::geteuid().as_raw();
        let err = read_result(&secret, &masker, Some(me + 1)).expect_err("another user's file");
        assert!(err.contains("not to the run user"), "{err}");
        assert!(
            read_result(&secret, &masker, Some(me)).is_ok(),
            "the owner's own file is read"
        );
    }
}
