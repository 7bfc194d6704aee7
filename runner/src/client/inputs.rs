//! The files sent with a request (`type = "file"` parameters, docs/files.md):
//! fetched from the server one by one, checked against the sha256 the run was
//! approved with, and placed in the run folder, where `argv` points at them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Shared;
use crate::protocol::{Ending, Job};

/// A request's file as the run folder gets it: its path there, its bytes.
pub(super) type SavedInput = (PathBuf, Vec<u8>);

/// The most bytes one file sent with a request may have (a manifest's
/// `max_size` is at most 64 MiB).
const MAX_INPUT: usize = 64 << 20;

/// The bytes of each file sent with the request, from the server, each
/// checked against its sha256.
pub(super) async fn fetch_inputs(
    shared: &Shared,
    job: &Job,
) -> Result<Vec<Vec<u8>>, (Ending, String)> {
    let mut out = Vec::with_capacity(job.inputs.len());
    for (i, input) in job.inputs.iter().enumerate() {
        let path = format!("/runs/{}/inputs/{}", job.run, i + 1);
        let data = shared
            .http
            .get_bytes(&path, MAX_INPUT, Duration::from_secs(300))
            .await
            .map_err(|e| {
                (
                    Ending::NotStarted,
                    format!(
                        "fetching the file `{}` sent with the request: {e}",
                        input.name
                    ),
                )
            })?;
        let sha256 = hex::encode(Sha256::digest(&data));
        if sha256 != input.sha256 {
            return Err((
                Ending::Refused,
                format!(
                    "file `{}`: its bytes (sha256 {sha256}) are not the approved ones (sha256 {})",
                    input.name, input.sha256
                ),
            ));
        }
        out.push(data.to_vec());
    }
    Ok(out)
}

/// The request's files: each to be saved as `inputs/<n>/<name>` in the run
/// folder, its absolute path put where its token is in `argv`.
pub(super) fn inputs(
    job: &Job,
    files: Vec<Vec<u8>>,
    run_dir: &Path,
    argv: &mut [String],
) -> Result<Vec<SavedInput>, (Ending, String)> {
    let mut out = Vec::with_capacity(job.inputs.len());
    for (i, (input, data)) in job.inputs.iter().zip(files).enumerate() {
        let plain = Path::new(&input.name);
        if input.name.is_empty()
            || plain.components().count() != 1
            || !matches!(
                plain.components().next(),
                Some(std::path::Component::Normal(_))
            )
        {
            return Err((
                Ending::Refused,
                format!("file `{}`: not a plain file name", input.name),
            ));
        }
        let rel = PathBuf::from("inputs")
            .join((i + 1).to_string())
            .join(&input.name);
        let absolute =
            std::path::absolute(run_dir.join(&rel)).unwrap_or_else(|_| run_dir.join(&rel));
        for arg in argv.iter_mut().filter(|a| a.contains(&input.token)) {
            *arg = arg.replace(&input.token, &absolute.display().to_string());
        }
        out.push((rel, data));
    }
    Ok(out)
}
