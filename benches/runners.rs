//! Runners: what a runner costs per run, how runs/s grows with runners, and how
//! soon a printed log line is on the server.
//!
//! `cargo bench --bench runners` (options after `--`: `--backend sqlite|postgres|both`
//! (default both), `--runs N` (runs for the overhead, default 200), `--naps N`
//! (runs for the scaling, default 160)); PostgreSQL from $EXECGOV_TEST_POSTGRES_URL.
//!
//! Everything is real: one `execgov serve` (release binary, its local runner
//! off), `execgov runner` processes enrolled through `execgov runners enrol`,
//! all on this host, talking HTTP.
//! - **overhead**: `/bin/true` run N times one after another in this process
//!   through the runner core (`Runner::execute`, the in-process path), then N
//!   times through one runner with one slot (queued before it starts; per run =
//!   first start to last finish over N, from the runs' own timestamps). The
//!   difference is what the runner adds: claim, log, finish over HTTP and the
//!   store's writes.
//! - **scaling**: a script that sleeps 100 ms, through 1, 2 and 4 runners of 2
//!   slots each (queued before they start); runs/s and the ratio to one runner.
//! - **log latency**: a script prints its clock every 20 ms, 150 times; this
//!   process reads the stored log every 2 ms; latency = seen − printed.

use execgov::clock::SystemClock;
use execgov::command::Command;
use execgov::engine::{Engine, Request};
use execgov::types::{Actor, Place, Platform, PlatformUser, RunId};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Opts {
    backends: Vec<&'static str>,
    runs: usize,
    naps: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        backends: vec!["sqlite", "postgres"],
        runs: 200,
        naps: 160,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i + 1 < args.len() {
        match args[i].as_str() {
            "--runs" => o.runs = args[i + 1].parse().expect("--runs N"),
            "--naps" => o.naps = args[i + 1].parse().expect("--naps N"),
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

/// Processes, killed when dropped.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const PRINTER: &str = "i=0\nwhile [ $i -lt 150 ]; do date +%s%N; i=$((i+1)); sleep 0.02; done\n";

fn manifest(name: &str, command: &str) -> String {
    format!(
        "name = \"{name}\"\ndescription = \"bench\"\ncommand = {command}\nruns_on = [\"bench\"]\n\
         max_concurrent = 100000\n[access]\nrun = [\"anyone\"]\n"
    )
}

struct Bench {
    dir: tempfile::TempDir,
    engine: Arc<Engine>,
    server: String,
    _serve: Procs,
    runners: usize,
}

impl Bench {
    async fn start(backend: &str) -> Bench {
        let dir = tempfile::Builder::new()
            .prefix("execgov-bench-runners-")
            .tempdir()
            .unwrap();
        let root = dir.path();
        let m = root.join("manifests");
        std::fs::create_dir_all(m.join("scripts")).unwrap();
        std::fs::write(m.join("scripts/printer.sh"), PRINTER).unwrap();
        std::fs::write(m.join("true.toml"), manifest("true", r#"["/bin/true"]"#)).unwrap();
        std::fs::write(
            m.join("nap.toml"),
            manifest("nap", r#"["/bin/sleep", "0.1"]"#),
        )
        .unwrap();
        std::fs::write(
            m.join("printer.toml"),
            manifest("printer", r#"["sh", "scripts/printer.sh"]"#),
        )
        .unwrap();
        let url = match backend {
            "postgres" => execgov::store::testing::fresh_postgres_url().await,
            _ => format!("sqlite://{}", root.join("data/execgov.db").display()),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            root.join("execgov.toml"),
            format!(
                "manifests = \"manifests\"\ndata_dir = \"data\"\n[database]\nurl = \"{url}\"\n\
                 [web]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
                 [runner]\nlocal = false\n"
            ),
        )
        .unwrap();
        let config = execgov::config::Config::load(Some(&root.join("execgov.toml"))).unwrap();
        let engine = execgov::app::build_engine(Arc::new(config), Arc::new(SystemClock))
            .await
            .unwrap();
        let serve = std::process::Command::new(env!("CARGO_BIN_EXE_execgov"))
            .args([
                "--config",
                root.join("execgov.toml").to_str().unwrap(),
                "serve",
            ])
            .current_dir(root)
            .env_remove("EXECGOV_DATABASE_URL")
            .env("EXECGOV_LOG", "warn")
            .spawn()
            .expect("serve starts");
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Bench {
            dir,
            engine,
            server: format!("http://127.0.0.1:{port}"),
            _serve: Procs(vec![serve]),
            runners: 0,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Enrolled `execgov runner` processes with tag `bench`.
    fn runners(&mut self, n: usize, slots: u32) -> Procs {
        let mut procs = Vec::new();
        for _ in 0..n {
            self.runners += 1;
            let name = format!("bench{}", self.runners);
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_execgov"))
                .args([
                    "--config",
                    self.root().join("execgov.toml").to_str().unwrap(),
                ])
                .args(["runners", "enrol", &name, "--tags", "bench"])
                .env_remove("EXECGOV_DATABASE_URL")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let token = String::from_utf8(out.stdout).unwrap();
            let file: PathBuf = self.root().join(format!("{name}.token"));
            std::fs::write(&file, token.lines().last().unwrap()).unwrap();
            let child = std::process::Command::new(env!("CARGO_BIN_EXE_execgov"))
                .args(["runner", "--server", &self.server, "--tags", "bench"])
                .args(["--token-file", file.to_str().unwrap()])
                .args(["--slots", &slots.to_string()])
                .args(["--scripts", self.root().join("manifests").to_str().unwrap()])
                .args(["--data", self.root().join(&name).to_str().unwrap()])
                .env("EXECGOV_LOG", "warn")
                .spawn()
                .unwrap();
            procs.push(child);
        }
        Procs(procs)
    }

    async fn ask(&self, script: &str, n: usize) -> Vec<RunId> {
        let actor = Actor::Unknown {
            via: PlatformUser {
                platform: Platform::Cli,
                id: "bench".into(),
            },
        };
        let command = Command::parse(&format!("run {script}")).unwrap();
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let r = self
                .engine
                .handle(Request {
                    actor: actor.clone(),
                    place: Place::new(Platform::Cli, "local"),
                    command: command.clone(),
                    private: true,
                    files: Vec::new(),
                })
                .await;
            ids.push(r.run.expect("queued").id);
        }
        ids
    }

    /// Waits for `ids` to end; ms from the first start to the last finish.
    async fn span_ms(&self, ids: &[RunId]) -> f64 {
        let list: Vec<String> = ids.iter().map(|i| i.0.to_string()).collect();
        let list = list.join(",");
        let store = self.engine.store();
        let t = Instant::now();
        loop {
            let open = store
                .scalar_raw(&format!(
                    "SELECT COUNT(*) FROM runs WHERE id IN ({list}) AND finished_at IS NULL"
                ))
                .await
                .unwrap()
                .unwrap_or(0);
            if open == 0 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(600),
                "{open} runs still open"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let bad = store
            .scalar_raw(&format!(
                "SELECT COUNT(*) FROM runs WHERE id IN ({list}) AND state <> 'succeeded'"
            ))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(bad, 0, "every bench run succeeds");
        store
            .scalar_raw(&format!(
                "SELECT MAX(finished_at) - MIN(started_at) FROM runs WHERE id IN ({list})"
            ))
            .await
            .unwrap()
            .unwrap_or(0) as f64
    }
}

/// Mean ms of `/bin/true` through the runner core in this process.
async fn in_process_ms(dir: &Path, n: usize) -> f64 {
    let runner = execgov::runner::Runner::start(execgov::runner::RunnerOptions {
        scope: dir.display().to_string(),
        ..Default::default()
    })
    .unwrap();
    let t = Instant::now();
    for i in 0..n {
        let spec = execgov::runner::ExecSpec {
            run_id: execgov_runner::RunId(i as i64),
            argv: vec!["/bin/true".into()],
            run_dir: dir.join(format!("inproc/{i}")),
            pass_env: Vec::new(),
            secrets: Vec::new(),
            timeout: Duration::from_secs(10),
            kill_grace: Duration::from_secs(1),
            log_path: dir.join(format!("inproc-logs/{i}.log")),
            log_cap: 1 << 20,
            limits: Default::default(),
            inputs: Vec::new(),
        };
        let (tx, _rx) = tokio::sync::mpsc::channel(4);
        let out = runner
            .execute(spec, tokio_util::sync::CancellationToken::new(), tx)
            .await;
        assert!(out.succeeded());
    }
    t.elapsed().as_secs_f64() * 1000.0 / n as f64
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn one(o: &Opts, backend: &str) {
    let mut b = Bench::start(backend).await;

    // Overhead.
    let inproc = in_process_ms(b.root(), o.runs).await;
    let ids = b.ask("true", o.runs).await;
    let runner = b.runners(1, 1);
    let through = b.span_ms(&ids).await / o.runs as f64;
    drop(runner);
    println!(
        "{backend}: /bin/true in process {inproc:.2} ms/run; through a runner (1 slot) \
         {through:.2} ms/run; the runner adds {:.2} ms/run",
        through - inproc
    );

    // Scaling.
    let mut one_rate = 0.0;
    for n in [1usize, 2, 4] {
        let ids = b.ask("nap", o.naps).await;
        let runners = b.runners(n, 2);
        let span = b.span_ms(&ids).await;
        drop(runners);
        let rate = o.naps as f64 / (span / 1000.0);
        if n == 1 {
            one_rate = rate;
        }
        println!(
            "{backend}: sleep 0.1 through {n} runner(s) × 2 slots: {rate:.1} runs/s \
             ({:.2}× one runner; ideal {}×)",
            rate / one_rate,
            n
        );
    }

    // Log latency.
    let runner = b.runners(1, 1);
    let id = b.ask("printer", 1).await[0];
    let mut seen_at: std::collections::HashMap<String, f64> = Default::default();
    let t = Instant::now();
    loop {
        let run = b.engine.store().get_run(id).await.unwrap();
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as f64;
        if let Some(log) = execgov::runs_data::log_all(&b.engine, &run).await.unwrap() {
            for line in String::from_utf8_lossy(&log).lines() {
                seen_at.entry(line.to_string()).or_insert(now_ns);
            }
        }
        if run.state.is_final() || t.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    drop(runner);
    let mut lat: Vec<f64> = seen_at
        .iter()
        .filter_map(|(line, seen)| line.trim().parse::<f64>().ok().map(|p| (seen - p) / 1e6))
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if lat.is_empty() {
        println!("{backend}: log latency: no lines seen");
    } else {
        println!(
            "{backend}: a printed log line on the server: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} lines)",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat.last().unwrap(),
            lat.len()
        );
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let o = opts();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for backend in o.backends.clone() {
            one(&o, backend).await;
        }
    });
}
