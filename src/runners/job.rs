//! What a runner is told to run: a claimed run turned into a [`Job`], from its
//! manifest as it is now, which must still be what was requested (and
//! approved). Nothing secret is in it: `env` and `secret_env` are names the
//! runner resolves on its own host.

use sha2::{Digest, Sha256};

use crate::engine::Engine;
use crate::store::Run;
use execgov_runner::protocol::{Job, PythonEnv, ScriptFile};

/// The job for `run` (already claimed), or why it cannot run.
pub(super) fn build(engine: &Engine, run: &Run) -> Result<Job, String> {
    let Some(manifest) = engine.manifest(&run.script) else {
        return Err(format!("script `{}` is no longer registered", run.script));
    };
    let digest = manifest
        .current_digest()
        .map_err(|e| format!("reading the manifest and script: {e}"))?;
    if digest != run.manifest_digest {
        return Err(
            "the manifest or script changed after the run was requested; request it again".into(),
        );
    }
    let config = engine.config();
    let (mut argv, named) = manifest.runner_argv(&run.args, &config.manifests);
    if run.preview_of.is_some() {
        // A preview runs the request with the manifest's preview arguments
        // appended (the digest just checked covers them).
        match manifest.approval.as_ref().map(|a| &a.preview) {
            Some(extra) if !extra.is_empty() => argv.extend(extra.iter().cloned()),
            _ => return Err("the manifest no longer has an [approval] preview".into()),
        }
    }
    let mut files = Vec::with_capacity(named.len());
    for (path, here) in named {
        let bytes = std::fs::read(&here)
            .map_err(|e| format!("reading the script file {}: {e}", here.display()))?;
        files.push(ScriptFile {
            path,
            sha256: hex::encode(Sha256::digest(&bytes)),
        });
    }
    // The requirements as they are now, which the digest just checked covers
    // (a requirements file, or the script's PEP 723 block).
    let python = match &manifest.python {
        Some(py) => Some(PythonEnv {
            version: py.version.clone(),
            requirements: py.current_requirements(&manifest.dir)?,
        }),
        None => None,
    };
    Ok(Job {
        run: run.id.0,
        script: run.script.clone(),
        argv,
        files,
        digest,
        env: manifest.env.clone(),
        secret_env: manifest.secret_env.clone(),
        timeout_ms: run.timeout_ms.max(1) as u64,
        kill_grace_ms: config.runner.kill_grace.as_millis() as u64,
        log_cap: config.runner.log_cap,
        memory: manifest.memory,
        max_processes: manifest.max_processes,
        python,
        inputs: Vec::new(),
    })
}

/// The files sent with `run`, for its job (see `InputFile`): their bytes
/// the runner fetches on its own (`reports::input`).
pub(super) async fn inputs(
    engine: &Engine,
    run: &Run,
) -> Result<Vec<execgov_runner::protocol::InputFile>, crate::store::StoreError> {
    let files = engine.store().run_input_list(run.id).await?;
    Ok(files
        .into_iter()
        .map(|f| execgov_runner::protocol::InputFile {
            token: f.token(),
            name: f.name,
            sha256: f.sha256,
            size: f.size,
        })
        .collect())
}
