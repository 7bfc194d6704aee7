//! `execgov init path/to/script.py`: a manifest written from the script's argparse
//! parser, so nobody retypes its options.
//!
//! The script is started with a probe (`init_probe.py`, shipped inside the binary)
//! that stops it at its first `parse_args`/`parse_known_args` and prints the
//! parser's arguments as JSON; its main work never runs. Each argument becomes a
//! typed `[[param]]` and an element of `command`; what has no faithful mapping
//! (`nargs="*"`, subcommands, custom types, `append`, …) is said per argument and
//! left as a commented line. The manifest is checked as `execgov check` would
//! before it is written.
//!
//! The manifest runs the script through `command = [PYTHON, SCRIPT, …]`; moving
//! to a `[python]` section is [`command_lines`] alone.

// Argparse actions to typed parameters.
mod mapping;

use mapping::{Action, Mapped, map_actions};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::EXIT_RUN_FAILED;
use crate::config::Config;
use crate::manifest::Manifest;
use crate::types::ScriptName;

/// The probe, run with the script's interpreter as `python -c PROBE script PATH`.
const PROBE: &str = include_str!("init_probe.py");
/// A script that has not reached its argument parsing by then is stopped.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The Python script whose argparse parser the manifest is made from.
    #[arg(required_unless_present = "module", conflicts_with = "module")]
    pub script: Option<PathBuf>,
    /// A module run as `python -m MODULE` instead of a script file.
    #[arg(short = 'm', long, value_name = "MODULE")]
    pub module: Option<String>,
    /// The script's name in ExecGov (default: from the file or module name).
    #[arg(long)]
    pub name: Option<String>,
    /// Folder the manifest is written to (default: the config's manifests folder).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Who may ask for runs (`person:NAME`, `group:NAME`, `anyone`); repeatable.
    #[arg(long = "run", value_name = "WHO")]
    pub run: Vec<String>,
    /// The interpreter (default: the script's `#!` interpreter when it names
    /// one by its path, else `python3`).
    #[arg(long, value_name = "PYTHON")]
    pub python: Option<String>,
    /// Replace a manifest that already exists.
    #[arg(long)]
    pub force: bool,
}

/// What the probe prints.
#[derive(Debug, Deserialize)]
struct Probe {
    prog: String,
    description: String,
    actions: Vec<Action>,
}

/// `execgov init`: writes `{out}/{name}.toml`, prints what was not mapped.
pub(super) async fn init(config: &Config, args: InitArgs) -> anyhow::Result<ExitCode> {
    let (target, how) = match (&args.script, &args.module) {
        (Some(path), _) => {
            let path = std::path::absolute(path).context("resolving the script's path")?;
            if !path.is_file() {
                bail!("{} is not a file", path.display());
            }
            (path.display().to_string(), "script")
        }
        (None, Some(module)) => (module.clone(), "module"),
        (None, None) => bail!("name a script, or a module with -m"),
    };
    let python = match (&args.python, &args.script) {
        (Some(p), _) => p.clone(),
        (None, Some(path)) => shebang_python(path).unwrap_or_else(|| "python3".to_string()),
        (None, None) => "python3".to_string(),
    };
    let probe = run_probe(&python, how, &target).await?;
    let name = match &args.name {
        Some(n) => ScriptName::parse(n).map_err(anyhow::Error::msg)?,
        None => script_name(&args, &probe.prog)?,
    };
    let out = args.out.clone().unwrap_or_else(|| config.manifests.clone());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out = std::path::absolute(&out)?;
    let path = out.join(format!("{name}.toml"));
    if path.exists() && !args.force {
        bail!("{} exists; pass --force to replace it", path.display());
    }
    let program: Vec<String> = match &args.script {
        Some(_) => vec![python, script_ref(Path::new(&target), &out)],
        None => vec![python, "-m".to_string(), target.clone()],
    };
    let mapped = map_actions(&probe.actions);
    let text = manifest_text(&Written {
        name: &name,
        source: args
            .script
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("-m {target}")),
        description: &probe.description,
        program: &program,
        mapped: &mapped,
        run: &args.run,
    });
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    for m in &mapped {
        if let Mapped::Skipped { what, why } = m {
            eprintln!("not mapped: {what}: {why}");
        }
    }
    match Manifest::from_toml(&text, &path, config) {
        Ok(m) => {
            println!(
                "wrote {} ({} parameters); check it, then `execgov check`",
                path.display(),
                m.params.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            eprintln!("wrote {}, but it does not pass the check", path.display());
            Ok(ExitCode::from(EXIT_RUN_FAILED))
        }
    }
}

/// The interpreter a `#!` line names by its absolute path (a venv's python, as
/// pip writes into console scripts), if it exists.
fn shebang_python(script: &Path) -> Option<String> {
    let text = std::fs::read(script).ok()?;
    let first = text.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(first).ok()?.strip_prefix("#!")?;
    let program = line.split_whitespace().next()?;
    (program.starts_with('/') && program.contains("python") && Path::new(program).is_file())
        .then(|| program.to_string())
}

async fn run_probe(python: &str, how: &str, target: &str) -> anyhow::Result<Probe> {
    let child = tokio::process::Command::new(python)
        .arg("-c")
        .arg(PROBE)
        .arg(how)
        .arg(target)
        .env(
            "EXECGOV_PYTHON_MODULE",
            execgov_runner::client::PYTHON_MODULE,
        )
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PROBE_TIMEOUT, child)
        .await
        .with_context(|| {
            format!(
                "{target} did not reach its argument parsing within {}s",
                PROBE_TIMEOUT.as_secs()
            )
        })?
        .with_context(|| format!("starting {python}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "reading the argparse parser of {target} with {python} failed ({}):\n{}",
            output.status,
            tail.join("\n")
        );
    }
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("reading what the probe said about {target}"))
}

/// The name from `--name`, else the file stem or module (`json.tool` → `json-tool`).
fn script_name(args: &InitArgs, prog: &str) -> anyhow::Result<ScriptName> {
    let base = match (&args.script, &args.module) {
        (Some(p), _) => p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| prog.to_string()),
        (None, Some(m)) => m.clone(),
        (None, None) => prog.to_string(),
    };
    let mut name: String = base
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches('-').to_string();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name = format!("script-{name}");
    }
    name.truncate(64);
    ScriptName::parse(&name).map_err(|e| anyhow::anyhow!("{e}; give one with --name"))
}

/// The script as `command` names it: relative to the manifest's folder when it
/// is inside it (then it is part of the digest an approval binds), else absolute.
fn script_ref(script: &Path, out: &Path) -> String {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match canon(script).strip_prefix(canon(out)) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => script.display().to_string(),
    }
}

/// What goes into the manifest file.
struct Written<'a> {
    name: &'a ScriptName,
    source: String,
    description: &'a str,
    program: &'a [String],
    mapped: &'a [Mapped],
    run: &'a [String],
}

/// The `command = …` line (with a comment per unmapped argument above it). With a
/// `[python]` section this would be `script` and `args`; only this changes.
fn command_lines(program: &[String], mapped: &[Mapped]) -> String {
    let mut elements: Vec<String> = program.to_vec();
    let mut positionals: Vec<String> = Vec::new();
    for m in mapped {
        if let Mapped::Param {
            elements: e,
            positional,
            ..
        } = m
        {
            if *positional {
                positionals.extend(e.iter().cloned());
            } else {
                elements.extend(e.iter().cloned());
            }
        }
    }
    if !positionals.is_empty() {
        // After `--`, argparse takes every element as a positional, so a value
        // that starts with `-` stays a value.
        elements.push("--".to_string());
        elements.extend(positionals);
    }
    let quoted: Vec<String> = elements
        .iter()
        .map(|e| toml::Value::String(e.clone()).to_string())
        .collect();
    format!("command = [{}]\n", quoted.join(", "))
}

fn manifest_text(w: &Written<'_>) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Written by `execgov init` from {}'s argparse parser.",
        w.source
    );
    let _ = writeln!(t, "# Review it: risk, approval, who may run it, limits.");
    let _ = writeln!(t, "name = {}", q(w.name.as_str()));
    let _ = writeln!(t, "description = {}", q(w.description));
    let skipped: Vec<&Mapped> = w
        .mapped
        .iter()
        .filter(|m| matches!(m, Mapped::Skipped { .. }))
        .collect();
    for m in &skipped {
        if let Mapped::Skipped { what, why } = m {
            let _ = writeln!(t, "# not mapped: {what}: {why}");
        }
    }
    t.push_str(&command_lines(w.program, w.mapped));
    let _ = writeln!(t, "timeout = \"10m\"");
    let _ = writeln!(
        t,
        "risk = \"low\"  # \"high\" runs only after approval (add an [approval] section)"
    );
    for m in w.mapped {
        let Mapped::Param { param: p, .. } = m else {
            continue;
        };
        let _ = writeln!(t, "\n[[param]]");
        let _ = writeln!(t, "name = {}", q(&p.name));
        let _ = writeln!(t, "type = \"{}\"", p.kind);
        if !p.choices.is_empty() {
            let c: Vec<String> = p.choices.iter().map(|c| q(c)).collect();
            let _ = writeln!(t, "choices = [{}]", c.join(", "));
        }
        if let Some(d) = &p.default {
            let _ = writeln!(t, "default = {d}");
        } else if p.optional {
            let _ = writeln!(t, "required = false");
        }
        if !p.description.is_empty() {
            let _ = writeln!(t, "description = {}", q(&p.description));
        }
    }
    let _ = writeln!(t, "\n[access]");
    if w.run.is_empty() {
        let _ = writeln!(
            t,
            "# Nobody may ask for runs yet: list who may, e.g. run = [\"group:NAME\", \"person:NAME\"] or [\"anyone\"]."
        );
        let _ = writeln!(t, "run = []");
    } else {
        let who: Vec<String> = w.run.iter().map(|r| q(r)).collect();
        let _ = writeln!(t, "run = [{}]", who.join(", "));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::mapping::GenParam;
    use super::*;
    use serde_json::Value;

    fn action(kind: &str, options: &[&str], dest: &str) -> Action {
        Action {
            kind: kind.to_string(),
            option_strings: options.iter().map(|s| s.to_string()).collect(),
            dest: dest.to_string(),
            nargs: Value::Null,
            type_name: None,
            choices: None,
            subcommands: None,
            required: false,
            exclusive: false,
            default: Value::Null,
            help: String::new(),
        }
    }

    #[test]
    fn switches_options_and_positionals_keep_their_flags() {
        let mut days = action("store", &["-d", "--days"], "days");
        days.type_name = Some("int".into());
        days.default = serde_json::json!(30);
        let mut ratio = action("store", &["-r"], "ratio");
        ratio.type_name = Some("float".into());
        ratio.default = serde_json::json!(1);
        let mut fmt = action("store", &["--format"], "format");
        fmt.choices = Some(vec![serde_json::json!("csv"), serde_json::json!("json")]);
        fmt.default = serde_json::json!("xml");
        let mut tags = action("store", &["--tag"], "tags");
        tags.nargs = serde_json::json!("*");
        let mapped = map_actions(&[
            action("help", &["-h", "--help"], "help"),
            action("store", &[], "path"),
            days,
            ratio,
            fmt,
            action("store_false", &["--no-cache"], "cache"),
            tags,
        ]);
        let line = command_lines(&["python3".into(), "x.py".into()], &mapped);
        assert_eq!(
            line,
            "command = [\"python3\", \"x.py\", \"--days={days}\", \"-r{ratio}\", \"--format={format}\", \"{no_cache?--no-cache}\", \"--\", \"{path}\"]\n"
        );
        let params: Vec<&GenParam> = mapped
            .iter()
            .filter_map(|m| match m {
                Mapped::Param { param, .. } => Some(param),
                _ => None,
            })
            .collect();
        assert_eq!(params[1].default.as_deref(), Some("30"));
        assert_eq!(
            params[2].default.as_deref(),
            Some("1.0"),
            "a float default stays a float"
        );
        assert_eq!(
            params[3].default, None,
            "a default outside the choices is dropped"
        );
        assert!(params[3].optional, "…and the option stays optional");
        assert!(
            matches!(mapped.last(), Some(Mapped::Skipped { what, why }) if what == "--tag" && why.contains("nargs=\"*\"")),
            "{mapped:#?}"
        );
    }
}
