//! Several real `execgov worker` processes claiming from one database (SQLite
//! file and PostgreSQL) never run one run twice, and all of them take work.

use crate::both_backends;
use crate::helpers::*;
use execgov::types::RunState;
use std::process::{Child, Command};
use std::time::Duration;

struct Workers(Vec<Child>);

impl Drop for Workers {
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

both_backends!(two_worker_processes_never_run_a_run_twice, |b| async move {
    let env = TestEnv::new(b).await;
    let m = env.path().join("manifests");
    std::fs::write(
        m.join("scripts/tally.sh"),
        "echo \"$EXECGOV_RUN_ID\" >> \"$1\"\nsleep 0.05\n",
    )
    .unwrap();
    std::fs::write(
        m.join("tally.toml"),
        "name = \"tally\"\ndescription = \"append the run id\"\ncommand = [\"sh\", \"scripts/tally.sh\", \"{file}\"]\nmax_concurrent = 16\n[[param]]\nname = \"file\"\ntype = \"string\"\nrequired = true\n[access]\nrun = [\"anyone\"]\n",
    )
    .unwrap();
    let engine = env.engine().await;
    let tally = env.path().join("tally.txt");
    let n = 120;
    let mut ids = Vec::new();
    for _ in 0..n {
        let r = say(
            &engine,
            &person("alice"),
            &format!("run tally file={}", tally.display()),
        )
        .await;
        ids.push(r.run.expect("queued").id);
    }
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_execgov"))
            .args(["--config", env.config_path().to_str().unwrap(), "worker"])
            .env_remove("EXECGOV_DATABASE_URL")
            .env("EXECGOV_LOG", "warn")
            .spawn()
            .expect("worker starts")
    };
    let _workers = Workers(vec![spawn(), spawn()]);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    for id in &ids {
        loop {
            let run = engine.store().get_run(*id).await.unwrap();
            if run.state.is_final() {
                assert_eq!(run.state, RunState::Succeeded, "run {id}: {:?}", run.error);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} still {}",
                run.state
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
        workers.insert(
            engine
                .store()
                .get_run(*id)
                .await
                .unwrap()
                .worker
                .unwrap_or_default(),
        );
    }
    assert_eq!(workers.len(), 2, "both processes took work: {workers:?}");
});
