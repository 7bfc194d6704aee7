//! `execgov prepare [SCRIPT]`: builds (or finds) the Python environments of
//! `[python]` manifests here, as the local runner would before their first
//! run, so that run starts at once. Progress goes to stdout, one line a step.

use std::process::ExitCode;

use execgov_runner::client::pyenv;
use execgov_runner::protocol::PythonEnv;

use super::EXIT_RUN_FAILED;
use crate::config::Config;
use crate::manifest::load_catalog;

/// Prepares `script`'s environment, or every `[python]` manifest's when none
/// is named; exit 1 when one fails (its tool's message printed).
pub async fn prepare(config: &Config, script: Option<String>) -> anyhow::Result<ExitCode> {
    let (catalog, diagnostics) = load_catalog(&config.manifests, config);
    for d in &diagnostics {
        eprintln!("{d}");
    }
    let chosen: Vec<_> = match &script {
        Some(name) => match catalog.get(name) {
            Some(m) => vec![m],
            None => {
                eprintln!("unknown script `{name}`");
                return Ok(ExitCode::from(super::EXIT_REFUSED));
            }
        },
        None => catalog.iter().collect(),
    };
    // The local runner's envs folder: beside its run folders.
    let envs = config
        .runner
        .runs_dir
        .parent()
        .map(|p| p.join("envs"))
        .unwrap_or_else(|| config.data_dir.join("envs"));
    let mut failed = 0;
    let mut prepared = 0;
    for m in chosen {
        let Some(py) = &m.python else {
            if script.is_some() {
                println!("{}: not a [python] manifest; nothing to prepare", m.name);
            }
            continue;
        };
        let want = match py.current_requirements(&m.dir) {
            Ok(requirements) => PythonEnv {
                version: py.version.clone(),
                requirements,
            },
            Err(why) => {
                println!("{}: {why}", m.name);
                failed += 1;
                continue;
            }
        };
        let name = m.name.clone();
        match pyenv::prepare(&envs, &want, |text| println!("{name}: {text}")).await {
            Ok(p) => {
                prepared += 1;
                println!(
                    "{name}: environment {} ready ({}, python {} at {}, {} ms)",
                    p.key,
                    if p.cached { "cached" } else { "built" },
                    p.interpreter.version,
                    p.interpreter.path.display(),
                    p.took.as_millis()
                );
            }
            Err(why) => {
                failed += 1;
                println!("{name}: preparing the Python environment failed: {why}");
            }
        }
    }
    println!("{prepared} environment(s) ready, {failed} failed");
    Ok(if failed == 0 && diagnostics.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUN_FAILED)
    })
}
