//! From a checked manifest to what runs: argv, the digest of what will run, and the
//! help text users see.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{ArgTemplate, Args, Manifest};

impl Manifest {
    /// The argv to execute. Each template element is exactly one element: placeholders
    /// are replaced, nothing is split or shell-interpreted. A literal that names an
    /// existing file relative to [`Manifest::dir`] becomes its absolute path, so the
    /// script runs from any working directory; so does one that names a script
    /// that is missing (see [`missing_script`]), so that what fails names the
    /// path that was looked for, not one in the run folder. A bare program name
    /// in first place (`python3`) stays as written for the PATH lookup. An
    /// element whose optional parameter has no value is left out.
    pub fn argv(&self, args: &Args) -> Vec<String> {
        self.command
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t {
                ArgTemplate::Literal(text) => Some(
                    match script_file(&self.dir, i, text)
                        .or_else(|| missing_script(&self.dir, i, text))
                    {
                        Some(path) => path.to_string_lossy().into_owned(),
                        None => text.clone(),
                    },
                ),
                ArgTemplate::Param { .. } | ArgTemplate::Flag { .. } => t.render(args),
            })
            .collect()
    }

    /// The argv as a runner gets it: like [`Manifest::argv`], except that a
    /// script file is named by its path relative to `root` (the manifests
    /// folder), which the runner finds under its own scripts folder; and those
    /// files, each with the path it is named by and where it is here.
    pub fn runner_argv(&self, args: &Args, root: &Path) -> (Vec<String>, Vec<(String, PathBuf)>) {
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        let mut files = Vec::new();
        let argv = self
            .command
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t {
                // A script that is gone is still named: the job cannot be built
                // and the run's failure says where it was looked for.
                ArgTemplate::Literal(text) => Some(
                    match script_file(&self.dir, i, text)
                        .or_else(|| missing_script(&self.dir, i, text))
                    {
                        Some(path) => {
                            let named = path
                                .strip_prefix(&root)
                                .map(|p| p.to_string_lossy().into_owned())
                                .unwrap_or_else(|_| path.to_string_lossy().into_owned());
                            files.push((named.clone(), path));
                            named
                        }
                        None => text.clone(),
                    },
                ),
                ArgTemplate::Param { .. } | ArgTemplate::Flag { .. } => t.render(args),
            })
            .collect();
        (argv, files)
    }

    /// The digest recomputed from disk now, to notice a manifest or script edited
    /// after a run was approved.
    pub fn current_digest(&self) -> io::Result<String> {
        let bytes = std::fs::read(&self.path)?;
        let requirements = super::python::requirements_bytes(self.python.as_ref())?;
        digest(&bytes, &self.command, &self.dir, requirements.as_deref())
    }

    /// One paragraph of help: what it does, its parameters, its risk and approval.
    pub fn usage(&self) -> String {
        let mut text = format!("`{}`", self.name);
        if !self.description.is_empty() {
            text.push_str(": ");
            text.push_str(self.description.trim_end_matches('.'));
        }
        text.push('.');
        let example: Vec<String> = std::iter::once(self.name.to_string())
            .chain(self.params.iter().map(|p| format!("{}=…", p.name)))
            .collect();
        text.push_str(&format!(" Usage: `{}`.", example.join(" ")));
        if self.params.is_empty() {
            text.push_str(" No parameters.");
        } else {
            let params: Vec<String> = self.params.iter().map(|p| p.describe()).collect();
            text.push_str(&format!(" Parameters: {}.", params.join("; ")));
        }
        text.push_str(&format!(" Risk: {}", self.risk.as_str()));
        match &self.approval {
            Some(a) => {
                let who: Vec<String> = a.approvers.iter().map(ToString::to_string).collect();
                let expires = humantime::format_duration(a.expires);
                text.push_str(&format!(
                    "; needs approval by {} of {} (expires after {expires}).",
                    a.quorum,
                    who.join(", ")
                ));
            }
            None if self.risk.needs_approval() => text.push('.'),
            None => text.push_str("; runs without approval."),
        }
        text
    }
}

/// The absolute path of a literal element that names a file relative to `dir`.
/// Absolute paths are left alone (system binaries are not ours to hash), and so is a
/// bare name in first place, which is looked up on PATH.
pub(super) fn script_file(dir: &Path, index: usize, text: &str) -> Option<PathBuf> {
    let path = Path::new(text);
    if text.is_empty() || path.is_absolute() || (index == 0 && !text.contains('/')) {
        return None;
    }
    let full = dir.join(path);
    full.is_file().then_some(full)
}

/// Extensions of files that are scripts, for [`missing_script`].
const SCRIPT_EXTENSIONS: &[&str] = &[
    "sh", "bash", "zsh", "ksh", "py", "rb", "pl", "php", "js", "mjs", "cjs", "ts", "lua", "r",
    "tcl", "awk", "jl", "ps1",
];

/// Where a literal element that names a script of ours was looked for, when
/// there is no file there: the program given as a relative path
/// (`scripts/run.sh`), or a later element that is a relative path to a script
/// file (`scripts/export.py`, by its extension). Relative paths resolve
/// against the manifest's folder, so that is the path reported. Options,
/// `key=value` words and text with spaces are never taken for scripts.
pub(super) fn missing_script(dir: &Path, index: usize, text: &str) -> Option<PathBuf> {
    let path = Path::new(text);
    if text.is_empty()
        || path.is_absolute()
        || text.starts_with('-')
        || text.contains('=')
        || text.contains(char::is_whitespace)
    {
        return None;
    }
    let is_script = if index == 0 {
        text.contains('/')
    } else {
        path.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| SCRIPT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
    };
    let full = dir.join(path);
    (is_script && !full.is_file()).then_some(full)
}

/// sha256 over the manifest bytes, then each script file `command` names (its element
/// text and its bytes), then a `[python]` requirements file's bytes, every part
/// length-prefixed so no two inputs collide.
pub(super) fn digest(
    manifest: &[u8],
    command: &[ArgTemplate],
    dir: &Path,
    requirements: Option<&[u8]>,
) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    part(manifest);
    for (i, t) in command.iter().enumerate() {
        if let ArgTemplate::Literal(text) = t
            && let Some(path) = script_file(dir, i, text)
        {
            part(text.as_bytes());
            part(&std::fs::read(path)?);
        }
    }
    if let Some(bytes) = requirements {
        part(b"[python] requirements");
        part(bytes);
    }
    Ok(hex::encode(hasher.finalize()))
}
