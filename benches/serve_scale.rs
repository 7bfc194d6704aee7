//! Several `execgov serve` processes on one PostgreSQL: runs/s as processes are added.
//!
//! `cargo bench --bench serve_scale` (options after `--`: `--runs N` (default
//! 2000), `--procs 1,2,4`, `--pool N` (slots per process, default 64),
//! `--sleep SECONDS` (default 0.05)); PostgreSQL from $EXECGOV_TEST_POSTGRES_URL.
//!
//! For each process count: a fresh schema, N runs of a script that sleeps,
//! queued before any server starts (so asking is not measured), then that many
//! real `execgov serve` processes (the release binary) claim and run them. Slots
//! are many more than one server can fill, so slots never limit: what is
//! measured is how fast the servers move runs through the store. Runs/s is N
//! over the span from the first start to the last finish, read from the runs'
//! own timestamps. It also prints the CPU time the servers and PostgreSQL used.

use execgov::clock::SystemClock;
use execgov::command::Command;
use execgov::engine::Request;
use execgov::types::{Actor, Place, Platform, PlatformUser};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Opts {
    runs: usize,
    procs: Vec<usize>,
    pool: usize,
    sleep: String,
}

fn opts() -> Opts {
    let mut o = Opts {
        runs: 2000,
        procs: vec![1, 2, 4],
        pool: 64,
        sleep: "0.05".into(),
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i + 1 < args.len() {
        match args[i].as_str() {
            "--runs" => o.runs = args[i + 1].parse().expect("--runs N"),
            "--pool" => o.pool = args[i + 1].parse().expect("--pool N"),
            "--sleep" => o.sleep = args[i + 1].clone(),
            "--procs" => {
                o.procs = args[i + 1]
                    .split(',')
                    .map(|n| n.parse().expect("--procs 1,2,4"))
                    .collect()
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

/// Servers, stopped when dropped.
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = c.wait();
        }
    }
}

/// CPU seconds (user + system) of `pid` and its reaped children, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14-17 of stat (utime, stime, cutime, cstime), 0-based 11..15 after ')'.
    let ticks: f64 = f.get(11..15).map_or(0.0, |v| v.iter().sum());
    ticks / 100.0
}

/// CPU seconds of every PostgreSQL backend process.
fn postgres_cpu() -> f64 {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.starts_with("postgres") {
            total += cpu_seconds(pid);
        }
    }
    total
}

async fn one(o: &Opts, procs: usize) {
    let dir = tempfile::Builder::new()
        .prefix("execgov-serve-scale-")
        .tempdir()
        .unwrap();
    let dir = dir.path();
    let url = execgov::store::testing::fresh_postgres_url().await;
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::write(
        dir.join("manifests/nap.toml"),
        format!(
            "name = \"nap\"\ndescription = \"sleeps\"\ncommand = [\"/bin/sleep\", \"{}\"]\nmax_concurrent = 100000\n[access]\nrun = [\"anyone\"]\n",
            o.sleep
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("execgov.toml"),
        format!(
            "manifests = \"manifests\"\ndata_dir = \"data\"\n[database]\nurl = \"{url}\"\n[web]\nlisten = \"127.0.0.1:0\"\n[runner]\npool_size = {}\n",
            o.pool
        ),
    )
    .unwrap();
    let config = execgov::config::Config::load(Some(&dir.join("execgov.toml"))).unwrap();
    let engine = execgov::app::build_engine(Arc::new(config), Arc::new(SystemClock))
        .await
        .unwrap();
    let actor = Actor::Unknown {
        via: PlatformUser {
            platform: Platform::Cli,
            id: "bench".into(),
        },
    };
    let place = Place::new(Platform::Cli, "local");
    let command = Command::parse("run nap").unwrap();
    for _ in 0..o.runs {
        let r = engine
            .handle(Request {
                actor: actor.clone(),
                place: place.clone(),
                command: command.clone(),
                private: true,
                files: Vec::new(),
            })
            .await;
        assert!(r.run.is_some(), "{}", r.text);
    }
    let pg_before = postgres_cpu();
    let started = Instant::now();
    let servers = Servers(
        (0..procs)
            .map(|_| {
                std::process::Command::new(env!("CARGO_BIN_EXE_execgov"))
                    .args([
                        "--config",
                        dir.join("execgov.toml").to_str().unwrap(),
                        "serve",
                    ])
                    .current_dir(dir)
                    .env_remove("EXECGOV_DATABASE_URL")
                    .env("EXECGOV_LOG", "warn")
                    .spawn()
                    .expect("serve starts")
            })
            .collect(),
    );
    let store = engine.store();
    loop {
        let rows = store
            .scalar_raw("SELECT COUNT(*) FROM runs WHERE finished_at IS NULL")
            .await
            .unwrap()
            .unwrap_or(0);
        if rows == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{rows} runs still going after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let serve_cpu: f64 = servers.0.iter().map(|c| cpu_seconds(c.id())).sum();
    let pg_cpu = postgres_cpu() - pg_before;
    drop(servers);
    let span_ms = store
        .scalar_raw("SELECT MAX(finished_at) - MIN(started_at) FROM runs")
        .await
        .unwrap()
        .unwrap_or(0);
    let bad = store
        .scalar_raw("SELECT COUNT(*) FROM runs WHERE state <> 'succeeded'")
        .await
        .unwrap()
        .unwrap_or(0);
    let workers = store
        .scalar_raw("SELECT COUNT(DISTINCT worker) FROM runs")
        .await
        .unwrap()
        .unwrap_or(0);
    let rate = o.runs as f64 / (span_ms as f64 / 1000.0);
    println!(
        "postgres, {procs} serve process(es): {} runs in {:.2} s = {rate:.0} runs/s \
         ({workers} took work, {bad} not succeeded); CPU: servers {serve_cpu:.1} s, \
         PostgreSQL {pg_cpu:.1} s",
        o.runs,
        span_ms as f64 / 1000.0,
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let o = opts();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for &procs in &o.procs {
            one(&o, procs).await;
        }
    });
}
