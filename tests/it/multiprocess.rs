//! Several real processes on one database: two processes can open a fresh
//! database at once; two `execgov serve` share one PostgreSQL. (Runner
//! processes sharing work: `runners::processes`.)

use crate::helpers::*;
use execgov::types::RunState;
use std::process::{Child, Command};
use std::time::Duration;

/// Two processes opening one fresh database at the same instant both start,
/// 20 times over: the schema is created once, by whichever comes first, and the
/// other waits for it (it used to fail with "table runs already exists").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_open_one_fresh_database_at_once_20_times() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for round in 0..20 {
            let env = TestEnv::new(backend).await;
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            let open = |barrier: std::sync::Arc<std::sync::Barrier>| {
                let config = env.config_path();
                std::thread::spawn(move || {
                    let mut cmd = Command::new(env!("CARGO_BIN_EXE_execgov"));
                    cmd.args(["--config", config.to_str().unwrap(), "audit", "verify"])
                        .env_remove("EXECGOV_DATABASE_URL")
                        .env("EXECGOV_LOG", "warn");
                    barrier.wait();
                    cmd.output().expect("execgov runs")
                })
            };
            let (a, b) = (open(barrier.clone()), open(barrier));
            for out in [a.join().unwrap(), b.join().unwrap()] {
                assert!(
                    out.status.success(),
                    "{backend:?} round {round}: both processes start; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let said = String::from_utf8_lossy(&out.stdout);
                assert!(said.contains("ok"), "{backend:?} round {round}: {said}");
            }
        }
    }
}

/// `execgov serve` processes, stopped (SIGTERM) when dropped.
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// Two `execgov serve` on one PostgreSQL share the work without taking turns:
/// 1,000 runs (half asked before they start, half while they run), each run
/// exactly once, both take work, and the audit chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_run_1000_runs_once_each() {
    let env = TestEnv::new(Backend::Postgres).await;
    let m = env.path().join("manifests");
    std::fs::write(
        m.join("scripts/tally.sh"),
        "echo \"$EXECGOV_RUN_ID\" >> \"$1\"\n",
    )
    .unwrap();
    std::fs::write(
        m.join("tally.toml"),
        "name = \"tally\"\ndescription = \"append the run id\"\ncommand = [\"sh\", \"scripts/tally.sh\", \"{file}\"]\nmax_concurrent = 64\n[[param]]\nname = \"file\"\ntype = \"string\"\nrequired = true\n[access]\nrun = [\"anyone\"]\n",
    )
    .unwrap();
    let engine = env.engine().await;
    let tally = env.path().join("tally.txt");
    let ask = format!("run tally file={}", tally.display());
    let n = 1000;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n / 2 {
        ids.push(
            say(&engine, &person("alice"), &ask)
                .await
                .run
                .expect("queued")
                .id,
        );
    }
    let serve = || {
        Command::new(env!("CARGO_BIN_EXE_execgov"))
            .args(["--config", env.config_path().to_str().unwrap(), "serve"])
            .current_dir(env.path())
            .env_remove("EXECGOV_DATABASE_URL")
            .env("EXECGOV_LOG", "warn")
            .spawn()
            .expect("serve starts")
    };
    let _servers = Servers(vec![serve(), serve()]);
    for _ in n / 2..n {
        ids.push(
            say(&engine, &person("alice"), &ask)
                .await
                .run
                .expect("queued")
                .id,
        );
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    for id in &ids {
        let run = wait_for_until(&engine, *id, deadline).await;
        assert_eq!(run.state, RunState::Succeeded, "run {id}: {:?}", run.error);
    }
    let text = std::fs::read_to_string(&tally).unwrap();
    let mut seen: Vec<i64> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(
        seen.len(),
        n,
        "each run ran once: {} lines for {n} runs",
        seen.len()
    );
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), n, "no run ran twice");
    let mut workers = std::collections::BTreeSet::new();
    for id in &ids {
        let run = engine.store().get_run(*id).await.unwrap();
        workers.insert(run.worker.unwrap_or_default());
    }
    assert_eq!(workers.len(), 2, "both servers took work: {workers:?}");
    assert!(
        matches!(
            engine.store().verify_chain().await.unwrap(),
            execgov::store::ChainCheck::Ok { .. }
        ),
        "the chain verifies"
    );
}

/// The run once it is final, failing the test at `deadline`.
async fn wait_for_until(
    engine: &execgov::engine::Engine,
    id: execgov::types::RunId,
    deadline: tokio::time::Instant,
) -> execgov::store::Run {
    loop {
        let run = engine.store().get_run(id).await.unwrap();
        if run.state.is_final() {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {id} still {}",
            run.state
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
