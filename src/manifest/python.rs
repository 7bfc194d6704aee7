//! `[python]`: a Python script run in an environment of its own. The section
//! names the script, its argv template, its requirements (a requirements file,
//! or the script's PEP 723 `# /// script` block) and, optionally, the Python
//! version; the runner builds the environment where the run executes (see
//! `docs/python.md`).
//!
//! The manifest's `command` becomes `["python3", script, args…]`, so the script
//! is hashed into the digest and checked by the runner like any script file;
//! the requirements file is hashed into the digest too, so editing it while a
//! run awaits approval ends that request.

use std::io;
use std::path::{Path, PathBuf};

use super::ArgTemplate;
use crate::config::spans::{Reader, Section};

/// A `[python]` section, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Python {
    /// The script as written, relative to the manifest's folder.
    pub script: String,
    /// `python = "3.11"`, else PEP 723's `requires-python`; `None`: the
    /// runner's `python3`.
    pub version: Option<String>,
    /// Where the requirements come from.
    pub source: Requirements,
    /// The requirement specifiers, comments and blank lines left out.
    pub requirements: Vec<String>,
}

/// Where a `[python]` script's requirements are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirements {
    /// `requirements = "requirements.txt"`: this file (absolute).
    File(PathBuf),
    /// The script's PEP 723 `# /// script` block (or nothing: no requirements).
    Inline,
}

impl Python {
    /// The requirements file, which the digest covers besides the script.
    pub fn requirements_file(&self) -> Option<&Path> {
        match &self.source {
            Requirements::File(p) => Some(p),
            Requirements::Inline => None,
        }
    }

    /// The requirements as they are on disk now (the file, or the script's
    /// block), for the job a runner gets: what the current digest covers.
    pub fn current_requirements(&self, dir: &Path) -> Result<Vec<String>, String> {
        match &self.source {
            Requirements::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                parse_requirements(&text)
                    .map_err(|(line, msg)| format!("{} line {line}: {msg}", path.display()))
            }
            Requirements::Inline => {
                let path = dir.join(&self.script);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                Ok(pep723(&text)
                    .map_err(|(line, msg)| format!("{} line {line}: {msg}", path.display()))?
                    .map(|m| m.dependencies)
                    .unwrap_or_default())
            }
        }
    }
}

/// Reads `[python]` if present: the section and the `command` it stands for
/// (`["python3", script, args…]`).
pub(super) fn read_python(
    r: &mut Reader<'_>,
    top: &Section<'_, '_>,
    dir: &Path,
    params: &[super::Param],
) -> Option<(Python, Vec<ArgTemplate>)> {
    let s = r.section(top, "python")?;
    r.unknown_keys(&s, &["script", "args", "requirements", "python", "home"]);
    if let Some(item) = top.get("command") {
        r.key_error(
            top,
            "command",
            &item.span(),
            "a manifest with [python] has no `command`: [python] `script` and `args` say what runs",
        );
    }
    let script = match r.string(&s, "script") {
        Some((script, span)) => {
            let path = Path::new(&script);
            if script.is_empty() || path.is_absolute() || !dir.join(path).is_file() {
                let msg = format!(
                    "`{script}` is not a file relative to the manifest's folder ({})",
                    dir.display()
                );
                r.key_error(&s, "script", &span, msg);
                None
            } else {
                Some(script)
            }
        }
        None => {
            if s.get("script").is_none() {
                r.missing(&s, "script");
            }
            None
        }
    };
    let mut command = vec![ArgTemplate::Literal("python3".into())];
    if let Some(script) = &script {
        command.push(ArgTemplate::Literal(script.clone()));
    }
    for (text, span) in r.strings(&s, "args").unwrap_or_default() {
        match ArgTemplate::parse(&text) {
            Ok(t) => {
                if let Some(name) = t.param()
                    && !params.iter().any(|p| p.name == name)
                {
                    let msg = format!("placeholder `{{{name}}}` names no [[param]]");
                    r.key_error(&s, "args", &span, msg);
                }
                command.push(t);
            }
            Err(msg) => r.key_error(&s, "args", &span, msg),
        }
    }
    if let Some((home, span)) = r.string(&s, "home")
        && home != "run"
    {
        let msg = if home == "user" {
            "home = \"user\" is not supported yet; scripts get the run folder as HOME (\"run\")"
                .to_string()
        } else {
            format!("must be \"run\", got `{home}`")
        };
        r.key_error(&s, "home", &span, msg);
    }
    let mut version = r.string(&s, "python").and_then(|(v, span)| {
        let valid = !v.is_empty()
            && v.chars().all(|c| {
                c.is_ascii_digit() || matches!(c, '.' | '<' | '>' | '=' | '~' | '!' | ',')
            });
        if valid {
            Some(v)
        } else {
            r.key_error(
                &s,
                "python",
                &span,
                format!("`{v}` is not a Python version such as \"3.11\""),
            );
            None
        }
    });
    let script = script?;
    let (source, requirements) = match r.string(&s, "requirements") {
        Some((file, span)) => {
            let path = dir.join(&file);
            match std::fs::read_to_string(&path) {
                Ok(text) => match parse_requirements(&text) {
                    Ok(reqs) => (Requirements::File(path), reqs),
                    Err((line, msg)) => {
                        let msg = format!("{file} line {line}: {msg}");
                        r.key_error(&s, "requirements", &span, msg);
                        return None;
                    }
                },
                Err(e) => {
                    let msg =
                        format!("cannot read `{file}` (relative to the manifest's folder): {e}");
                    r.key_error(&s, "requirements", &span, msg);
                    return None;
                }
            }
        }
        None => {
            let text = std::fs::read_to_string(dir.join(&script)).unwrap_or_default();
            match pep723(&text) {
                Ok(Some(meta)) => {
                    if version.is_none() {
                        version = meta.requires_python;
                    }
                    (Requirements::Inline, meta.dependencies)
                }
                Ok(None) => (Requirements::Inline, Vec::new()),
                Err((line, msg)) => {
                    let span = s.get("script").map(|i| i.span()).unwrap_or_default();
                    let msg = format!("{script} line {line}: {msg}");
                    r.key_error(&s, "script", &span, msg);
                    return None;
                }
            }
        }
    };
    Some((
        Python {
            script,
            version,
            source,
            requirements,
        },
        command,
    ))
}

/// The requirement lines of a requirements file, comments and blank lines
/// left out; the first line that is no plain requirement specifier (an
/// option such as `-r other.txt`, a path) is an error with its line number.
pub fn parse_requirements(text: &str) -> Result<Vec<String>, (usize, String)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = match raw.find(" #").or_else(|| raw.starts_with('#').then_some(0)) {
            Some(at) => &raw[..at],
            None => raw,
        }
        .trim();
        if line.is_empty() {
            continue;
        }
        check_requirement(line).map_err(|msg| (i + 1, msg))?;
        out.push(line.to_string());
    }
    Ok(out)
}

/// A requirement specifier starts with a project name (`tabulate==0.9.0`,
/// `requests[socks]>=2`, `pkg @ https://…`); options and paths are refused.
fn check_requirement(line: &str) -> Result<(), String> {
    if line.starts_with('-') {
        return Err(format!(
            "`{line}`: options (`-r`, `-e`, `--index-url`…) are not supported; list requirements only"
        ));
    }
    let name: String = line
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    let rest = line[name.len()..].trim_start();
    let valid_name = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let valid_rest =
        rest.is_empty() || rest.starts_with(['=', '<', '>', '!', '~', '[', ';', '@', '(']);
    if valid_name && valid_rest {
        Ok(())
    } else {
        Err(format!(
            "`{line}` is not a requirement such as `tabulate==0.9.0`"
        ))
    }
}

/// PEP 723 inline metadata: what a `# /// script` block says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InlineMetadata {
    pub dependencies: Vec<String>,
    pub requires_python: Option<String>,
}

/// The script's `# /// script` … `# ///` block, if it has one; an error has
/// the script's line number.
pub fn pep723(script: &str) -> Result<Option<InlineMetadata>, (usize, String)> {
    let lines: Vec<&str> = script.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim_end() == "# /// script") else {
        return Ok(None);
    };
    let mut body = String::new();
    let mut end = None;
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        let line = line.trim_end();
        if line == "# ///" {
            end = Some(i);
            break;
        }
        match line
            .strip_prefix("# ")
            .or(if line == "#" { Some("") } else { None })
        {
            Some(content) => {
                body.push_str(content);
                body.push('\n');
            }
            None => {
                return Err((
                    i + 1,
                    "the `# /// script` block has a line that does not start with `#`; close it \
                     with `# ///`"
                        .into(),
                ));
            }
        }
    }
    if end.is_none() {
        return Err((
            start + 1,
            "the `# /// script` block is not closed with `# ///`".into(),
        ));
    }
    let table: toml::Table = toml::from_str(&body).map_err(|e| {
        (
            start + 1,
            format!("the `# /// script` block is not TOML: {}", e.message()),
        )
    })?;
    let mut meta = InlineMetadata::default();
    if let Some(deps) = table.get("dependencies") {
        let Some(deps) = deps.as_array() else {
            return Err((start + 1, "`dependencies` must be a list of strings".into()));
        };
        for d in deps {
            let Some(d) = d.as_str() else {
                return Err((start + 1, "`dependencies` must be a list of strings".into()));
            };
            check_requirement(d.trim()).map_err(|msg| (start + 1, msg))?;
            meta.dependencies.push(d.trim().to_string());
        }
    }
    if let Some(v) = table.get("requires-python") {
        let Some(v) = v.as_str() else {
            return Err((start + 1, "`requires-python` must be a string".into()));
        };
        meta.requires_python = Some(v.trim().to_string());
    }
    Ok(Some(meta))
}

/// Reads the requirements file's bytes for the digest.
pub(super) fn requirements_bytes(python: Option<&Python>) -> io::Result<Option<Vec<u8>>> {
    python
        .and_then(Python::requirements_file)
        .map(std::fs::read)
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_files_keep_specifiers_and_name_the_line_of_a_bad_one() {
        let text = "# pinned\ntabulate==0.9.0  # tables\n\nrequests[socks]>=2.31\n";
        assert_eq!(
            parse_requirements(text).unwrap(),
            vec!["tabulate==0.9.0", "requests[socks]>=2.31"]
        );
        let err = parse_requirements("tabulate==0.9.0\n-r other.txt\n").unwrap_err();
        assert_eq!(err.0, 2, "the option's line is named");
        let err = parse_requirements("ok\n\n./local/path\n").unwrap_err();
        assert_eq!(err.0, 3, "a path is not a requirement: {}", err.1);
    }

    #[test]
    fn pep723_blocks_give_dependencies_and_python() {
        let script = "#!/usr/bin/env python3\n# /// script\n# requires-python = \">=3.10\"\n# dependencies = [\n#   \"tabulate==0.9.0\",\n# ]\n# ///\nimport tabulate\n";
        let meta = pep723(script).unwrap().unwrap();
        assert_eq!(meta.dependencies, vec!["tabulate==0.9.0"]);
        assert_eq!(meta.requires_python.as_deref(), Some(">=3.10"));
        assert_eq!(pep723("print(1)\n").unwrap(), None);
        let err = pep723("# /// script\n# dependencies = [\n").unwrap_err();
        assert_eq!(err.0, 1, "an unclosed block names its first line");
    }
}
