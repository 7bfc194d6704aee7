//! Shared set-up for the black-box tests: a temp folder with a config and
//! manifests, a fresh database per test (SQLite file or PostgreSQL schema),
//! the engine and pool as the binary builds them, and a tiny HTTP client.

use execgov::clock::SystemClock;
use execgov::config::Config;
use execgov::engine::{Engine, Request};
use execgov::store::Run;
use execgov::types::{Actor, PersonId, Place, Platform, PlatformUser, RunId, RunState};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once per backend: `both_backends!(name, |backend| async move { … })`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

/// The people, groups and channels every test config has.
pub const PEOPLE: &str = r#"
[cli]
impersonation = true

[people.alice]
slack = "UALICE"
unix = "alice"

[people.bob]
slack = "UBOB"

[people.carol]
slack = "UCAROL"

[people.dave]
slack = "UDAVE"

[groups]
sre = ["alice", "carol"]
leads = ["bob", "dave"]

[channels]
oncall = ["slack:CONCALL", "cli:local"]
approvals = ["slack:CAPPROVE"]
"#;

/// Manifests the governance tests use; scripts are `sh` so they start fast.
pub const MANIFESTS: &[(&str, &str)] = &[
    (
        "echo-args.toml",
        r#"name = "echo-args"
description = "Print each argument on its own line"
command = ["sh", "scripts/echo_args.sh", "{note}", "{who}"]
timeout = "20s"
[[param]]
name = "note"
type = "string"
default = "hello"
[[param]]
name = "who"
type = "string"
default = "me"
[access]
run = ["anyone"]
"#,
    ),
    (
        "risky.toml",
        r#"name = "risky"
description = "Touch a marker file, after approval"
command = ["sh", "scripts/risky.sh", "{marker}"]
timeout = "20s"
risk = "high"
[[param]]
name = "marker"
type = "string"
required = true
[access]
run = ["group:sre"]
[approval]
approvers = ["group:leads", "person:alice"]
channel = "approvals"
quorum = 1
expires = "1h"
"#,
    ),
    (
        "serial.toml",
        r#"name = "serial"
description = "Record start and end in a trace file, one at a time"
command = ["sh", "scripts/serial.sh", "{trace}"]
timeout = "20s"
max_concurrent = 1
[[param]]
name = "trace"
type = "string"
required = true
[access]
run = ["anyone"]
"#,
    ),
];

pub const SCRIPTS: &[(&str, &str)] = &[
    (
        "echo_args.sh",
        "echo \"argc=$#\"\nfor a in \"$@\"; do echo \"arg=[$a]\"; done\n",
    ),
    ("risky.sh", "echo ran > \"$1\"\necho \"touched $1\"\n"),
    (
        "serial.sh",
        "echo \"start $EXECGOV_RUN_ID $(date +%s%N)\" >> \"$1\"\nsleep 0.3\necho \"end $EXECGOV_RUN_ID $(date +%s%N)\" >> \"$1\"\n",
    ),
];

/// A temp folder holding `execgov.toml`, `manifests/` and `data/`.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub database_url: String,
    /// Drops the PostgreSQL schema with the environment.
    _schema: Option<execgov::store::testing::Guard>,
}

impl TestEnv {
    pub async fn new(backend: Backend) -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let (database_url, schema) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}/data/execgov.db", dir.path().display()),
                None,
            ),
            Backend::Postgres => {
                let guard = execgov::store::testing::fresh_database("postgres").await;
                (guard.url().to_string(), Some(guard))
            }
        };
        let env = TestEnv {
            dir,
            database_url,
            _schema: schema,
        };
        let m = env.path().join("manifests");
        std::fs::create_dir_all(m.join("scripts")).unwrap();
        for (name, text) in MANIFESTS {
            std::fs::write(m.join(name), text).unwrap();
        }
        for (name, text) in SCRIPTS {
            std::fs::write(m.join("scripts").join(name), text).unwrap();
        }
        env.write_config("");
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("execgov.toml")
    }

    /// Writes the config with `extra` TOML appended to the top-level keys.
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "manifests = \"manifests\"\ndata_dir = \"data\"\n{extra}\n[database]\nurl = \"{}\"\n[web]\nlisten = \"127.0.0.1:0\"\n[runner]\npool_size = 4\nkill_grace = \"1s\"\n{PEOPLE}",
            self.database_url
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    pub fn config(&self) -> Config {
        Config::load(Some(&self.config_path())).expect("test config loads")
    }

    pub async fn engine(&self) -> Arc<Engine> {
        execgov::app::build_engine(Arc::new(self.config()), Arc::new(SystemClock))
            .await
            .expect("engine builds")
    }
}

/// An engine with its pool running, stopped when dropped.
pub struct Running {
    pub engine: Arc<Engine>,
    pub env: TestEnv,
    stop: CancellationToken,
    pool: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Running {
    /// Stops the worker pool and waits for it to end: runs asked from now on stay queued.
    pub async fn stop_pool(&self) {
        self.stop.cancel();
        let pool = self.pool.lock().unwrap().take();
        if let Some(pool) = pool {
            pool.await.expect("the pool ends cleanly");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn start(backend: Backend) -> Running {
    start_with(backend, |_| {}).await
}

/// Like [`start`], with `setup` called on the test folder (manifests, scripts)
/// before the engine loads the manifests.
pub async fn start_with(backend: Backend, setup: impl FnOnce(&Path)) -> Running {
    let env = TestEnv::new(backend).await;
    setup(env.path());
    let engine = env.engine().await;
    let stop = CancellationToken::new();
    let opts = execgov::runner::LocalOptions::from_engine(&engine);
    let pool = tokio::spawn(
        execgov::runner::Local::new(engine.clone(), opts).run_until_stopped(None, stop.clone()),
    );
    tokio::spawn(execgov::runners::maintain_until_stopped(
        engine.clone(),
        stop.clone(),
    ));
    Running {
        engine,
        env,
        stop,
        pool: std::sync::Mutex::new(Some(pool)),
    }
}

pub fn person(name: &str) -> Actor {
    Actor::Person {
        person: PersonId(name.to_string()),
        via: PlatformUser {
            platform: Platform::Slack,
            id: format!("U{}", name.to_uppercase()),
        },
        impersonated_by: None,
    }
}

pub fn oncall() -> Place {
    Place::new(Platform::Slack, "CONCALL")
}

/// Sends `line` as `actor` from the on-call channel.
pub async fn say(engine: &Engine, actor: &Actor, line: &str) -> execgov::engine::Reply {
    let command = execgov::command::Command::parse(line).expect("test commands parse");
    engine
        .handle(Request {
            actor: actor.clone(),
            place: oncall(),
            command,
            private: true,
            files: Vec::new(),
        })
        .await
}

/// Waits (on the engine's events, with a generous limit) until the run is final.
pub async fn wait_final(engine: &Engine, id: RunId) -> Run {
    wait_for(engine, id, |s| s.is_final()).await
}

pub async fn wait_for(engine: &Engine, id: RunId, done: impl Fn(RunState) -> bool) -> Run {
    let mut events = engine.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let run = engine.store().get_run(id).await.expect("run exists");
        if done(run.state) {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {id} stuck in {}",
            run.state
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
    }
}

/// Audit actions recorded for a run, in order.
pub async fn actions(engine: &Engine, id: RunId) -> Vec<String> {
    engine
        .store()
        .audit_entries(Some(id), 0, 1000)
        .await
        .expect("audit entries")
        .into_iter()
        .map(|e| e.action)
        .collect()
}

/// A minimal HTTP/1.1 GET for tests: status and body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Runs the `execgov` binary with `--config config` and `args`, with no
/// database or config taken from the environment, and waits for it.
pub fn execgov(config: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_execgov"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("EXECGOV_DATABASE_URL")
        .env_remove("EXECGOV_CONFIG")
        .env("EXECGOV_LOG", "warn")
        .output()
        .expect("execgov runs")
}
