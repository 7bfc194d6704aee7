//! A folder of manifests loaded into a [`Catalog`], with a [`Diagnostic`] for each
//! problem: what `execgov check` prints and what the server logs at start.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::{Manifest, schema};
use crate::config::{Config, Problem};
use crate::types::ScriptName;

/// The scripts that loaded cleanly, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    scripts: BTreeMap<ScriptName, Manifest>,
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Adds (or replaces) a manifest; returns the one it replaced.
    pub fn insert(&mut self, manifest: Manifest) -> Option<Manifest> {
        self.scripts.insert(manifest.name.clone(), manifest)
    }

    pub fn get(&self, name: &str) -> Option<&Manifest> {
        self.scripts.get(&ScriptName::parse(name).ok()?)
    }

    /// Manifests in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Manifest> {
        self.scripts.values()
    }

    /// Up to three known names close to `name`, best first, for "did you mean …?".
    pub fn closest(&self, name: &str) -> Vec<String> {
        let mut scored: Vec<(f64, &str)> = self
            .scripts
            .keys()
            .map(|k| {
                (
                    strsim::normalized_damerau_levenshtein(name, k.as_str()),
                    k.as_str(),
                )
            })
            .filter(|(score, known)| *score >= 0.5 || (name.len() >= 3 && known.contains(name)))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        scored
            .into_iter()
            .take(3)
            .map(|(_, n)| n.to_string())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.scripts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty()
    }
}

/// One problem in one file. `line` 0 means the file as a whole (it could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl Diagnostic {
    pub(super) fn from_problems(file: &Path, problems: Vec<Problem>) -> Vec<Diagnostic> {
        problems
            .into_iter()
            .map(|p| Diagnostic {
                file: file.to_path_buf(),
                line: p.line,
                message: p.to_string(),
            })
            .collect()
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// Loads every `*.toml` in `dir` (not recursive), checked against `config`. A manifest
/// with any problem is left out of the catalog; two files declaring the same name are
/// both left out, each diagnostic naming the other file.
pub fn load_catalog(dir: &Path, config: &Config) -> (Catalog, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let whole = |file: &Path, message: String| Diagnostic {
        file: file.to_path_buf(),
        line: 0,
        message,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            let d = whole(dir, format!("cannot read the manifest folder: {e}"));
            return (Catalog::new(), vec![d]);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml") && p.is_file())
        .collect();
    files.sort();

    // Name → (file, line of `name`, manifest) for every file that loaded.
    let mut loaded: BTreeMap<ScriptName, Vec<(PathBuf, usize, Manifest)>> = BTreeMap::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) => {
                diagnostics.push(whole(&file, format!("cannot read: {e}")));
                continue;
            }
        };
        match schema::read(&text, &file, config) {
            Ok((manifest, line)) => {
                loaded
                    .entry(manifest.name.clone())
                    .or_default()
                    .push((file, line, manifest));
            }
            Err(problems) => diagnostics.extend(Diagnostic::from_problems(&file, problems)),
        }
    }

    let mut catalog = Catalog::new();
    for (name, mut found) in loaded {
        if found.len() == 1 {
            let (_, _, manifest) = found.pop().expect("one manifest");
            catalog.insert(manifest);
            continue;
        }
        for (file, line, _) in &found {
            let others: Vec<String> = found
                .iter()
                .filter(|(other, _, _)| other != file)
                .map(|(other, _, _)| other.display().to_string())
                .collect();
            diagnostics.push(Diagnostic {
                file: file.clone(),
                line: *line,
                message: format!(
                    "duplicate name `{name}`: also declared in {}",
                    others.join(", ")
                ),
            });
        }
    }
    diagnostics.sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
    (catalog, diagnostics)
}
