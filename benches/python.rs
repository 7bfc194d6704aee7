//! Python runs: what ExecGov adds to a Python start, and what environments cost.
//!
//! `cargo bench --bench python` (options after `--`: `--runs N`; SQLite).
//!
//! 1. Cold preparation of an environment with one small pinned package
//!    (`tabulate==0.9.0`) in a fresh envs folder (uv's download cache may be
//!    warm: that is the common case on a host), then a cache hit.
//! 2. A `[python]` script that is only `pass`, through the whole chain (parse,
//!    policy, store, local runner over HTTP, audit) from the command to its
//!    final state, alternating with a bare start of the same environment's
//!    interpreter on the same file, in the same process: medians, and the
//!    difference.

use execgov::clock::SystemClock;
use execgov::command::Command;
use execgov::engine::{Engine, Request};
use execgov::types::{Actor, Place, Platform, PlatformUser, RunId, RunState};
use execgov_runner::client::pyenv;
use execgov_runner::protocol::PythonEnv;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn runs() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("--runs N"))
        .unwrap_or(60)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn run_pass(engine: &Engine) -> RunId {
    let reply = engine
        .handle(Request {
            actor: Actor::Unknown {
                via: PlatformUser {
                    platform: Platform::Cli,
                    id: "bench".into(),
                },
            },
            place: Place::new(Platform::Cli, "local"),
            command: Command::parse("run py-pass").unwrap(),
            private: true,
            files: Vec::new(),
        })
        .await;
    let id = reply
        .run
        .unwrap_or_else(|| panic!("not accepted: {}", reply.text))
        .id;
    let mut events = engine.subscribe();
    loop {
        let run = engine.store().get_run(id).await.unwrap();
        if run.state.is_final() {
            assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
            return id;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = runs();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    println!(
        "execgov python bench: uv {}",
        pyenv::uv()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "missing (venv + pip)".into())
    );

    // 1. Environments.
    let want = PythonEnv {
        version: None,
        requirements: vec!["tabulate==0.9.0".into()],
    };
    let envs = root.join("cold-envs");
    let cold = pyenv::prepare(&envs, &want, |_| {}).await.expect("builds");
    let hit = pyenv::prepare(&envs, &want, |_| {}).await.expect("finds");
    assert!(!cold.cached && hit.cached);
    println!(
        "environment with tabulate==0.9.0: cold preparation {:.0} ms, cache hit {:.3} ms (python {} at {})",
        ms(cold.took),
        ms(hit.took),
        cold.interpreter.version,
        cold.interpreter.path.display()
    );

    // 2. The chain against a bare start.
    std::fs::create_dir_all(root.join("manifests/py")).unwrap();
    std::fs::write(root.join("manifests/py/pass.py"), "pass\n").unwrap();
    std::fs::write(
        root.join("manifests/py/requirements.txt"),
        "tabulate==0.9.0\n",
    )
    .unwrap();
    std::fs::write(
        root.join("manifests/py-pass.toml"),
        "name = \"py-pass\"\nmax_concurrent = 4\n[python]\nscript = \"py/pass.py\"\nrequirements = \"py/requirements.txt\"\n[access]\nrun = [\"anyone\"]\n",
    )
    .unwrap();
    std::fs::write(
        root.join("execgov.toml"),
        format!(
            "manifests = \"manifests\"\ndata_dir = \"data\"\n[database]\nurl = \"sqlite://{}/data/execgov.db\"\n",
            root.display()
        ),
    )
    .unwrap();
    let config = execgov::config::Config::load(Some(&root.join("execgov.toml"))).unwrap();
    let engine = execgov::app::build_engine(Arc::new(config), Arc::new(SystemClock))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let local = execgov::runner::Local::new(
        engine.clone(),
        execgov::runner::LocalOptions::from_engine(&engine),
    );
    let task = tokio::spawn(local.run_until_stopped(None, stop.clone()));
    // The first run builds the environment; a few more warm everything up.
    for _ in 0..3 {
        run_pass(&engine).await;
    }
    let prepared = pyenv::prepare(&root.join("data/envs"), &want, |_| {})
        .await
        .unwrap();
    assert!(prepared.cached, "the chain's runs built this environment");
    let script = root.join("manifests/py/pass.py");
    let (mut chain, mut bare) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        run_pass(&engine).await;
        chain.push(t.elapsed());
        let t = Instant::now();
        let st = tokio::process::Command::new(&prepared.python)
            .arg(&script)
            .env("PYTHONUNBUFFERED", "1")
            .status()
            .await
            .unwrap();
        assert!(st.success());
        bare.push(t.elapsed());
    }
    let (c, b) = (median(chain), median(bare));
    println!(
        "python `pass`, {n} runs alternating: through the chain median {:.2} ms, bare start of the environment's interpreter median {:.2} ms, added {:.2} ms",
        ms(c),
        ms(b),
        ms(c) - ms(b)
    );
    stop.cancel();
    let _ = task.await;
}
