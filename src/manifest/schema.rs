//! Reads one manifest file: the top-level keys and `[[param]]`, every problem with the
//! line it sits on. The sections that name config entries are in `check`.

use std::path::Path;
use std::time::Duration;

use super::param_schema::read_params;
use super::{
    ArgTemplate, Manifest, OutputFormat, Param, ParamKind, Risk, check, exec, python, rules,
};
use crate::config::Config;
use crate::config::spans::{Problem, Reader, Section, parse_document};
use crate::types::ScriptName;

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "command",
    "timeout",
    "risk",
    "max_concurrent",
    "memory",
    "max_processes",
    "runs_on",
    "env",
    "secret_env",
    "output",
    "param",
    "access",
    "approval",
    "schedule",
    "python",
    "rule",
];
/// The smallest `memory` a manifest may ask for.
const MIN_MEMORY: u64 = 1024 * 1024;

/// The checked manifest and the line of its `name` (for duplicate-name reports).
pub(super) fn read(
    text: &str,
    path: &Path,
    config: &Config,
) -> Result<(Manifest, usize), Vec<Problem>> {
    let doc = parse_document(text).map_err(|p| vec![p])?;
    let mut r = Reader::new(text);
    let top = Section::top(&doc);
    r.unknown_keys(&top, TOP_KEYS);

    let mut name_line = 1;
    let name = match r.string(&top, "name") {
        Some((n, span)) => {
            name_line = r.line(&span);
            ScriptName::parse(&n)
                .map_err(|msg| r.key_error(&top, "name", &span, msg))
                .ok()
        }
        None if top.get("name").is_none() => {
            r.missing(&top, "name");
            None
        }
        None => None,
    };
    let description = r
        .string(&top, "description")
        .map(|(d, _)| d)
        .unwrap_or_default();

    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let params = read_params(&mut r, &top);
    let (python, command) = match top.get("python") {
        Some(_) => match python::read_python(&mut r, &top, &dir, &params) {
            Some((py, command)) => (Some(py), command),
            None => (None, Vec::new()),
        },
        None => (None, read_command(&mut r, &top, &params, &dir)),
    };
    let timeout = r
        .duration(&top, "timeout")
        .unwrap_or(Duration::from_secs(600));
    let risk = match r.string(&top, "risk") {
        Some((risk, span)) => Risk::parse(&risk).unwrap_or_else(|| {
            let msg = format!("must be \"low\", \"high\" or \"critical\", got `{risk}`");
            r.key_error(&top, "risk", &span, msg);
            Risk::Low
        }),
        None => Risk::Low,
    };
    let max_concurrent = r.count::<u32>(&top, "max_concurrent", 1).unwrap_or(4);
    let memory = read_memory(&mut r, &top);
    let max_processes = r.count::<u32>(&top, "max_processes", 1);
    let runs_on = read_tags(&mut r, &top, "runs_on");
    let env = read_env_names(&mut r, &top, "env");
    let secret_env = read_env_names(&mut r, &top, "secret_env");
    let output = match r.string(&top, "output") {
        None => OutputFormat::Text,
        Some((o, _)) if o == "text" => OutputFormat::Text,
        Some((o, _)) if o == "json" => OutputFormat::Json,
        Some((o, _)) if o == "csv" => OutputFormat::Csv,
        Some((o, span)) => {
            let msg = format!("must be \"text\", \"json\" or \"csv\", got `{o}`");
            r.key_error(&top, "output", &span, msg);
            OutputFormat::Text
        }
    };
    let access = check::read_access(&mut r, &top, config);
    let approval = check::read_approval(&mut r, &top, config);
    if risk.needs_approval()
        && top.get("approval").is_none()
        && let Some(item) = top.get("risk")
    {
        r.key_error(
            &top,
            "risk",
            &item.span(),
            format!("risk = \"{risk}\" needs an [approval] section"),
        );
    }

    let requirements = python::requirements_bytes(python.as_ref()).unwrap_or_default();
    let digest = match exec::digest(text.as_bytes(), &command, &dir, requirements.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            r.error(
                &(0..0),
                None,
                format!("cannot read a script file the command names: {e}"),
            );
            String::new()
        }
    };

    let mut manifest = Manifest {
        name: name.unwrap_or_else(|| ScriptName::parse("invalid").expect("a valid name")),
        description,
        command,
        timeout,
        risk,
        max_concurrent,
        memory,
        max_processes,
        runs_on,
        env,
        secret_env,
        params,
        output,
        access,
        approval,
        schedules: Vec::new(),
        rules: Vec::new(),
        python,
        path: dir.join(path.file_name().unwrap_or_default()),
        dir,
        digest,
    };
    // Schedules check their args against the params, so they come last.
    manifest.schedules = check::read_schedules(&mut r, &top, config, &manifest);
    manifest.rules = rules::read_rules(&mut r, &top, config, &manifest);

    if r.problems.is_empty() {
        Ok((manifest, name_line))
    } else {
        let mut problems = r.problems;
        problems.sort_by_key(|p| p.line);
        Err(problems)
    }
}

/// The argv template; `dir` (the manifest's folder) is where the scripts it
/// names by relative path must be.
fn read_command(
    r: &mut Reader<'_>,
    top: &Section<'_, '_>,
    params: &[Param],
    dir: &Path,
) -> Vec<ArgTemplate> {
    let Some(elements) = r.strings(top, "command") else {
        if top.get("command").is_none() {
            r.missing(top, "command");
        }
        return Vec::new();
    };
    if elements.is_empty() {
        let span = top.get("command").map(|i| i.span()).unwrap_or_default();
        r.key_error(
            top,
            "command",
            &span,
            "must name at least the program to run",
        );
    }
    let mut command = Vec::new();
    for (i, (text, span)) in elements.iter().enumerate() {
        match ArgTemplate::parse(text) {
            Ok(t) => {
                if let Some(name) = t.param() {
                    if i == 0 {
                        let msg =
                            "the program (first element) must be fixed text, not a placeholder";
                        r.key_error(top, "command", span, msg);
                    } else if !params.iter().any(|p| p.name == name) {
                        let msg = format!("placeholder `{{{name}}}` names no [[param]]");
                        r.key_error(top, "command", span, msg);
                    } else if matches!(t, ArgTemplate::Flag { .. })
                        && !params
                            .iter()
                            .any(|p| p.name == name && matches!(p.kind, ParamKind::Bool))
                    {
                        let msg =
                            format!("`{text}` is a switch: `{name}` must be a bool parameter");
                        r.key_error(top, "command", span, msg);
                    }
                } else if i == 0 && text.trim().is_empty() {
                    r.key_error(top, "command", span, "the program (first element) is empty");
                } else if let Some(looked_for) = exec::missing_script(dir, i, text) {
                    let msg = format!(
                        "`{text}` does not exist: relative paths resolve against the manifest's \
                         folder, so it was looked for at {}",
                        looked_for.display()
                    );
                    r.key_error(top, "command", span, msg);
                }
                command.push(t);
            }
            Err(msg) => r.key_error(top, "command", span, msg),
        }
    }
    command
}

/// `memory = "512MiB"`: at least [`MIN_MEMORY`], since a smaller cgroup limit
/// kills most programs before they print anything.
fn read_memory(r: &mut Reader<'_>, top: &Section<'_, '_>) -> Option<u64> {
    let (text, span) = r.string(top, "memory")?;
    match text.parse::<bytesize::ByteSize>() {
        Ok(size) if size.as_u64() >= MIN_MEMORY => Some(size.as_u64()),
        Ok(_) => {
            let msg = format!("`{text}` is less than the 1MiB a script needs to start");
            r.key_error(top, "memory", &span, msg);
            None
        }
        Err(_) => {
            let msg = format!("`{text}` is not a size such as \"512MiB\"");
            r.key_error(top, "memory", &span, msg);
            None
        }
    }
}

/// `runs_on = ["db-host", "eu"]`: runner tags, each checked, none twice.
fn read_tags(r: &mut Reader<'_>, top: &Section<'_, '_>, key: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for (tag, span) in r.strings(top, key).unwrap_or_default() {
        match crate::types::check_tag(&tag) {
            Err(msg) => r.key_error(top, key, &span, msg),
            Ok(()) if tags.contains(&tag) => {
                r.key_error(top, key, &span, format!("tag `{tag}` is listed twice"))
            }
            Ok(()) => tags.push(tag),
        }
    }
    tags
}

fn read_env_names(r: &mut Reader<'_>, top: &Section<'_, '_>, key: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (name, span) in r.strings(top, key).unwrap_or_default() {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            names.push(name);
        } else {
            r.key_error(
                top,
                key,
                &span,
                format!("`{name}` is not an environment variable name"),
            );
        }
    }
    names
}
