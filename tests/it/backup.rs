//! `execgov backup` while a served instance writes: the copy opens and its
//! audit chain verifies, nothing is overwritten; on PostgreSQL it prints the
//! pg_dump command instead.

use crate::helpers::*;
use crate::ops::Served;
use execgov::types::RunState;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `execgov backup` with `args`, and what it said.
fn backup(config: &Path, dest: &Path) -> (Option<i32>, String) {
    let out = execgov(config, &["backup", dest.to_str().unwrap()]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

/// `audit verify` on the database file `copy`, through the binary.
fn verify_copy(config: &Path, copy: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_execgov"))
        .arg("--config")
        .arg(config)
        .args(["audit", "verify"])
        .env(
            "EXECGOV_DATABASE_URL",
            format!("sqlite://{}", copy.display()),
        )
        .env("EXECGOV_LOG", "warn")
        .output()
        .expect("execgov runs");
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && said.starts_with("ok: "),
        "the copy {} verifies: {said}{}",
        copy.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    said
}

/// `backed up … : N runs, …` → N.
fn runs_in(said: &str) -> usize {
    let at = said.find(" runs,").unwrap_or_else(|| panic!("{said}"));
    said[..at]
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_taken_while_a_served_instance_writes_100_runs_open_and_verify() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let config = env.config_path();
    let _served = Served::start(&config, &[]);
    let engine = env.engine().await;
    let n = 100;
    let asking = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..n {
                let r = say(
                    &engine,
                    &person("alice"),
                    &format!("run echo-args note=n{i}"),
                )
                .await;
                ids.push(r.run.expect("queued").id);
            }
            ids
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let mut copies: Vec<(PathBuf, bool)> = Vec::new();
    let ids = loop {
        let writing_before = !asking.is_finished()
            || engine
                .store()
                .list_runs(&execgov::store::RunFilter {
                    limit: 500,
                    ..Default::default()
                })
                .await
                .unwrap()
                .iter()
                .any(|r| !r.state.is_final());
        let dest = dir.path().join(format!("backup-{}.db", copies.len()));
        let (cfg, d) = (config.clone(), dest.clone());
        let (code, said) = tokio::task::spawn_blocking(move || backup(&cfg, &d))
            .await
            .unwrap();
        assert_eq!(code, Some(0), "backup {}: {said}", copies.len());
        let (cfg, d) = (config.clone(), dest.clone());
        tokio::task::spawn_blocking(move || verify_copy(&cfg, &d))
            .await
            .unwrap();
        copies.push((dest, writing_before));
        if asking.is_finished() && !writing_before {
            break asking.await.unwrap();
        }
        assert!(copies.len() < 200, "the runs end");
    };
    assert!(
        copies.iter().any(|(_, writing)| *writing),
        "at least one copy was taken while runs were being written"
    );
    for id in &ids {
        assert_eq!(
            engine.store().get_run(*id).await.unwrap().state,
            RunState::Succeeded
        );
    }
    let last = dir.path().join("final.db");
    let (code, said) = backup(&config, &last);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(runs_in(&said), n, "the last copy has every run: {said}");
    verify_copy(&config, &last);

    // A backup never overwrites a file.
    let first = &copies[0].0;
    let bytes = std::fs::read(first).unwrap();
    let (code, said) = backup(&config, first);
    assert_eq!(code, Some(64), "refused as a usage error: {said}");
    assert!(said.contains("exists"), "{said}");
    assert_eq!(
        std::fs::read(first).unwrap(),
        bytes,
        "the file is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_on_postgres_prints_the_pg_dump_command() {
    let env = TestEnv::new(Backend::Postgres).await;
    let dest = env.path().join("execgov.dump");
    let (code, said) = backup(&env.config_path(), &dest);
    assert_eq!(code, Some(64), "{said}");
    assert!(
        said.contains(&format!(
            "pg_dump --format=custom --file={}",
            dest.display()
        )),
        "{said}"
    );
    assert!(!dest.exists(), "nothing is written");
}
