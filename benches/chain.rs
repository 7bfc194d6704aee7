//! Whole-chain throughput and per-run overhead.
//!
//! `cargo bench --bench chain` (options after `--`: `--runs N`, `--latency-runs N`,
//! `--backend sqlite|postgres|both`; PostgreSQL from $EXECGOV_TEST_POSTGRES_URL).
//!
//! For each backend: N trivial runs (`/bin/true`) go through the whole chain —
//! parse, policy, store, pool, runner, audit — submitted at once, timed until
//! the last is final (runs/s). Then runs one at a time, each timed from the
//! command to its final state, against a bare spawn-and-wait of `/bin/true` in
//! the same process: the difference is ExecGov's overhead per run.

use execgov::clock::SystemClock;
use execgov::command::Command;
use execgov::engine::{Engine, Request};
use execgov::types::{Actor, Place, Platform, PlatformUser, RunId};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct Opts {
    runs: usize,
    latency_runs: usize,
    backends: Vec<&'static str>,
}

fn opts() -> Opts {
    let mut o = Opts {
        runs: 2000,
        latency_runs: 300,
        backends: vec!["sqlite", "postgres"],
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--runs" => o.runs = args[i + 1].parse().expect("--runs N"),
            "--latency-runs" => o.latency_runs = args[i + 1].parse().expect("--latency-runs N"),
            "--backend" => {
                o.backends = match args[i + 1].as_str() {
                    "sqlite" => vec!["sqlite"],
                    "postgres" => vec!["postgres"],
                    _ => vec!["sqlite", "postgres"],
                }
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

async fn setup(backend: &str, dir: &std::path::Path) -> Arc<Engine> {
    let url = match backend {
        "sqlite" => format!("sqlite://{}/data/execgov.db", dir.display()),
        _ => execgov::store::testing::fresh_postgres_url().await,
    };
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::write(
        dir.join("manifests/true.toml"),
        "name = \"true\"\ndescription = \"does nothing\"\ncommand = [\"/bin/true\"]\nmax_concurrent = 64\n[access]\nrun = [\"anyone\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("execgov.toml"),
        format!("manifests = \"manifests\"\ndata_dir = \"data\"\n[database]\nurl = \"{url}\"\n[runner]\npool_size = 8\n"),
    )
    .unwrap();
    let config = execgov::config::Config::load(Some(&dir.join("execgov.toml"))).unwrap();
    execgov::app::build_engine(Arc::new(config), Arc::new(SystemClock))
        .await
        .unwrap()
}

fn actor() -> (Actor, Place) {
    (
        Actor::Unknown {
            via: PlatformUser {
                platform: Platform::Cli,
                id: "bench".into(),
            },
        },
        Place::new(Platform::Cli, "local"),
    )
}

async fn submit(engine: &Engine) -> RunId {
    let (actor, place) = actor();
    let command = Command::parse("run true").unwrap();
    let reply = engine
        .handle(Request {
            actor,
            place,
            command,
            private: true,
            files: Vec::new(),
        })
        .await;
    reply
        .run
        .unwrap_or_else(|| panic!("not accepted: {}", reply.text))
        .id
}

async fn wait_all_final(engine: &Engine, ids: &[RunId]) {
    let mut events = engine.subscribe();
    let mut left: std::collections::HashSet<RunId> = ids.iter().copied().collect();
    for id in ids {
        if engine.store().get_run(*id).await.unwrap().state.is_final() {
            left.remove(id);
        }
    }
    while !left.is_empty() {
        match tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
            Ok(Ok(e)) if e.state.is_final() => {
                left.remove(&e.run);
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) | Err(_) => {
                let snapshot: Vec<RunId> = left.iter().copied().collect();
                for id in snapshot {
                    if engine.store().get_run(id).await.unwrap().state.is_final() {
                        left.remove(&id);
                    }
                }
            }
            _ => {}
        }
    }
}

async fn bare_spawn(n: usize) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        let st = tokio::process::Command::new("/bin/true")
            .status()
            .await
            .unwrap();
        assert!(st.success());
    }
    t.elapsed() / n as u32
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = opts();
    println!(
        "execgov chain bench: {} runs for throughput, {} one at a time for overhead",
        o.runs, o.latency_runs
    );
    for backend in &o.backends {
        if *backend == "postgres" && std::env::var("EXECGOV_TEST_POSTGRES_URL").is_err() {
            println!("{backend}: skipped (set EXECGOV_TEST_POSTGRES_URL)");
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let engine = setup(backend, dir.path()).await;
        let stop = CancellationToken::new();
        let pool = execgov::runner::Local::new(
            engine.clone(),
            execgov::runner::LocalOptions::from_engine(&engine),
        );
        let pool_task = tokio::spawn(pool.run_until_stopped(None, stop.clone()));

        // Warm up connections and the page cache.
        let warm: Vec<RunId> = futures_join(&engine, 20).await;
        wait_all_final(&engine, &warm).await;

        let t = Instant::now();
        let ids = futures_join(&engine, o.runs).await;
        let submitted = t.elapsed();
        wait_all_final(&engine, &ids).await;
        let total = t.elapsed();
        let ok = count_succeeded(&engine, &ids).await;
        println!(
            "{backend}: throughput {:.0} runs/s ({} runs in {:.2} s; all submitted after {:.2} s; {ok} succeeded)",
            o.runs as f64 / total.as_secs_f64(),
            o.runs,
            total.as_secs_f64(),
            submitted.as_secs_f64()
        );

        let bare = bare_spawn(o.latency_runs).await;
        let mut lat = Vec::with_capacity(o.latency_runs);
        for _ in 0..o.latency_runs {
            let t = Instant::now();
            let id = submit(&engine).await;
            wait_all_final(&engine, &[id]).await;
            lat.push(t.elapsed());
        }
        lat.sort();
        let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
        let p50 = lat[lat.len() / 2];
        let p99 = lat[(lat.len() * 99 / 100).min(lat.len() - 1)];
        println!(
            "{backend}: one at a time: mean {:.2} ms, p50 {:.2} ms, p99 {:.2} ms per run; bare spawn of /bin/true {:.2} ms; overhead {:.2} ms per run (mean)",
            ms(mean),
            ms(p50),
            ms(p99),
            ms(bare),
            ms(mean) - ms(bare)
        );
        stop.cancel();
        let _ = pool_task.await;
        breakdown(backend, &engine, dir.path(), o.latency_runs).await;
    }
}

/// Where one run's time goes, stage by stage, with the pool stopped: the
/// request (parse, policy, digest, insert + audit), the claim (+ audit), the
/// runner against a bare spawn, and recording the end (+ audit).
async fn breakdown(backend: &str, engine: &Arc<Engine>, dir: &std::path::Path, n: usize) {
    use execgov::runner::{ExecSpec, Runner, RunnerOptions};
    let runner = Runner::start(RunnerOptions::default()).expect("the runner starts");
    let (mut req, mut claim, mut exec, mut fin, mut bare) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let store = engine.store();
    for i in 0..n {
        let t = Instant::now();
        let id = submit(engine).await;
        req += t.elapsed();
        let t = Instant::now();
        let run = store
            .claim_next(
                &execgov::store::testing::local_runner("bench"),
                30_000,
                engine.now(),
            )
            .await
            .unwrap()
            .expect("claimable");
        assert_eq!(run.id, id);
        claim += t.elapsed();
        let t = Instant::now();
        let (tx, _rx) = tokio::sync::mpsc::channel(8);
        let spec = ExecSpec {
            run_id: id.into(),
            argv: vec!["/bin/true".into()],
            run_dir: dir.join(format!("bd/{i}")),
            pass_env: vec![],
            secrets: vec![],
            timeout: Duration::from_secs(10),
            kill_grace: Duration::from_secs(1),
            log_path: dir.join(format!("bd-{i}.log")),
            log_cap: 1 << 20,
            limits: Default::default(),
            inputs: Vec::new(),
        };
        let out = runner.execute(spec, CancellationToken::new(), tx).await;
        exec += t.elapsed();
        assert!(out.succeeded());
        let t = Instant::now();
        let to = execgov::types::RunState::Succeeded;
        let note = execgov::store::Note::moved("bench", to, serde_json::json!({}), engine.now());
        let edit = execgov::store::Edit::none();
        store
            .transition(
                execgov::store::Transition { id, to, note, edit },
                execgov::store::Durability::Relaxed,
            )
            .await
            .unwrap();
        fin += t.elapsed();
        let t = Instant::now();
        tokio::process::Command::new("/bin/true")
            .status()
            .await
            .unwrap();
        bare += t.elapsed();
    }
    let per = |d: Duration| ms(d / n as u32);
    println!(
        "{backend}: stages per run: request {:.2} ms, claim {:.2} ms, runner {:.2} ms (bare spawn {:.2} ms), finish {:.2} ms",
        per(req),
        per(claim),
        per(exec),
        per(bare),
        per(fin)
    );
}

/// Submits `n` runs with up to 16 requests in flight, as many chat users would.
async fn futures_join(engine: &Arc<Engine>, n: usize) -> Vec<RunId> {
    let mut set = tokio::task::JoinSet::new();
    let per = n.div_ceil(16);
    for w in 0..16 {
        let e = engine.clone();
        let count = per.min(n.saturating_sub(w * per));
        set.spawn(async move {
            let mut v = Vec::with_capacity(count);
            for _ in 0..count {
                v.push(submit(&e).await);
            }
            v
        });
    }
    let mut ids = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        ids.extend(r.unwrap());
    }
    ids
}

async fn count_succeeded(engine: &Engine, ids: &[RunId]) -> usize {
    let mut ok = 0;
    for id in ids {
        if engine.store().get_run(*id).await.unwrap().state == execgov::types::RunState::Succeeded {
            ok += 1;
        }
    }
    ok
}
