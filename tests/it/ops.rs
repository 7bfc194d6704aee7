//! Operating ExecGov: JSON log lines and the listen address and public URL from
//! the environment (on a real `execgov serve`); `/metrics` behind its token, with
//! the process's own metrics and the build (backups: `backup.rs`, with the
//! served process from here); old inbound event ids pruned by a running server; a script deleted after loading is reported at
//! the manifest-relative path it was looked for.

use crate::both_backends;
use crate::helpers::*;
use crate::web_support::*;
use crate::web_ui::ops::parse_prometheus;
use execgov::app::Application;
use execgov::types::RunState;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// An `execgov serve` process, stopped (SIGTERM, then waited for) when dropped.
pub(crate) struct Served {
    child: Child,
    /// Its stderr, line by line, as it comes.
    lines: std::sync::mpsc::Receiver<String>,
}

impl Served {
    pub(crate) fn start(config: &Path, envs: &[(&str, &str)]) -> Served {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_execgov"));
        cmd.arg("--config")
            .arg(config)
            .arg("serve")
            .env_remove("EXECGOV_DATABASE_URL")
            .env_remove("EXECGOV_CONFIG")
            .env_remove("EXECGOV_LISTEN")
            .env_remove("EXECGOV_PUBLIC_URL")
            .env_remove("EXECGOV_LOG_FORMAT")
            .env("EXECGOV_LOG", "warn,execgov=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("execgov serve starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Served { child, lines }
    }

    /// Every stderr line up to and including the first that `pred` accepts.
    pub(crate) fn lines_until(&self, what: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = pred(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no stderr line {what}; saw:\n{}", seen.join("\n")),
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_json_and_listens_where_the_environment_says() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let served = Served::start(
        &env.config_path(),
        &[
            ("EXECGOV_LOG_FORMAT", "json"),
            ("EXECGOV_LISTEN", &listen),
            ("EXECGOV_PUBLIC_URL", "https://execgov.example.org/"),
        ],
    );
    let lines = served.lines_until("saying it serves", |l| l.contains("serving"));
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("every log line is JSON ({e}): {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v.get(key).is_some(), "`{key}` in {line}");
        }
    }
    let serving: serde_json::Value =
        serde_json::from_str(lines.last().expect("a line")).expect("JSON");
    assert_eq!(serving["message"], "serving", "{serving}");
    assert_eq!(serving["level"], "INFO", "{serving}");
    assert_eq!(
        serving["addr"], listen,
        "EXECGOV_LISTEN overrides the config's listen: {serving}"
    );
    assert_eq!(
        serving["public_url"], "https://execgov.example.org",
        "EXECGOV_PUBLIC_URL overrides the public URL: {serving}"
    );
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let (status, body) = http_get(addr, "/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"), "it answers there");
}

#[test]
fn a_mistyped_log_format_is_refused() {
    let env = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_execgov"))
        .args(["list"])
        .current_dir(env.path())
        .env_remove("EXECGOV_CONFIG")
        .env("EXECGOV_LOG_FORMAT", "jsno")
        .output()
        .expect("execgov runs");
    assert_eq!(out.status.code(), Some(64), "a usage error");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("EXECGOV_LOG_FORMAT=`jsno`"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_when_one_is_set_and_show_the_process() {
    let app = WebApp::start(Backend::Sqlite, "metrics_token = \"scrape-7f3a\"").await;
    let mut client = app.client();
    let open = client.get("/metrics").await;
    assert_eq!(open.status, 401, "no token: {}", open.body);
    assert!(
        !open.body.contains("execgov_"),
        "nothing leaks: {}",
        open.body
    );
    assert_eq!(
        client.get_bearer("/metrics", "scrape-7f3b").await.status,
        401,
        "a wrong token"
    );
    let scrape = |client: &mut Client| {
        let mut c = Client::new(client.addr);
        async move {
            let r = c.get_bearer("/metrics", "scrape-7f3a").await;
            assert_eq!(r.status, 200, "{}", r.body);
            parse_prometheus(&r.body)
        }
    };
    let before = scrape(&mut client).await;
    let version = format!(
        "execgov_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(before.get(&version), Some(&1.0), "{before:?}");

    // This test runs alone in its process (nextest), which is also the server's.
    let files: Vec<std::fs::File> = (0..64).map(|_| tempfile::tempfile().unwrap()).collect();
    let after = scrape(&mut client).await;
    drop(files);
    let fds = |m: &std::collections::BTreeMap<String, f64>| m["process_open_fds"];
    assert!(
        fds(&after) >= fds(&before) + 60.0,
        "64 more open files are counted: {} then {}",
        fds(&before),
        fds(&after)
    );
    assert!(after["process_max_fds"] >= fds(&after), "{after:?}");
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let resident_pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    let rss = after["process_resident_memory_bytes"];
    assert!(
        rss > resident_pages * 4096.0 / 2.0 && rss < resident_pages * 4096.0 * 2.0,
        "resident memory in bytes ({rss}), not pages ({resident_pages})"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = after["process_start_time_seconds"];
    assert!(
        start <= now + 1.0 && start > now - 600.0,
        "this process started in the last minutes: {start} (now {now})"
    );
    assert!(
        after["process_cpu_seconds_total"] >= before["process_cpu_seconds_total"],
        "CPU time only grows"
    );
    assert!(
        after["process_cpu_seconds_total"] > 0.0,
        "building the app took CPU"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_stay_open_without_a_token() {
    let app = WebApp::start(Backend::Sqlite, "").await;
    let r = app.client().get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(parse_prometheus(&r.body).contains_key("process_open_fds"));
}

both_backends!(
    a_running_server_prunes_inbound_event_ids_past_their_retention,
    |b| async move {
        let env = TestEnv::new(b).await;
        env.write_config("\n[store]\ninbound_retention = \"2d\"\n");
        let app = Application::build(env.config()).await.unwrap();
        let engine = app.engine();
        let store = engine.store();
        let day = 24 * 3600 * 1000;
        let now = engine.now();
        assert!(store.first_time("slack:old", now - 3 * day).await.unwrap());
        assert!(store.first_time("slack:recent", now - day).await.unwrap());
        let stop = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(stop.clone()));

        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while store.schedule_event_recorded("slack:old").await.unwrap() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the event id older than [store] inbound_retention is pruned"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            store.schedule_event_recorded("slack:recent").await.unwrap(),
            "a newer one stays"
        );
        assert!(
            !store.first_time("slack:recent", now).await.unwrap(),
            "and still drops its redelivery"
        );
        stop.cancel();
        server.await.unwrap().unwrap();
    }
);

both_backends!(
    a_script_deleted_after_loading_is_reported_where_it_was_looked_for,
    |b| async move {
        let env = TestEnv::new(b).await;
        let m = env.path().join("manifests");
        std::fs::write(
            m.join("gone.toml"),
            "name = \"gone\"\ncommand = [\"sh\", \"scripts/gone.sh\"]\n[access]\nrun = [\"anyone\"]\n",
        )
        .unwrap();
        std::fs::write(
            m.join("gone-prog.toml"),
            "name = \"gone-prog\"\ncommand = [\"scripts/gone-prog.sh\"]\n[access]\nrun = [\"anyone\"]\n",
        )
        .unwrap();
        for s in ["gone.sh", "gone-prog.sh"] {
            std::fs::write(m.join("scripts").join(s), "#!/bin/sh\necho hi\n").unwrap();
            let mut perm = std::fs::metadata(m.join("scripts").join(s))
                .unwrap()
                .permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
            std::fs::set_permissions(m.join("scripts").join(s), perm).unwrap();
        }
        let app = Application::build(env.config()).await.unwrap();
        let engine = app.engine();
        let stop = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(stop.clone()));
        // Loaded; now the scripts go.
        std::fs::remove_file(m.join("scripts/gone.sh")).unwrap();
        std::fs::remove_file(m.join("scripts/gone-prog.sh")).unwrap();

        for (script, file) in [("gone", "gone.sh"), ("gone-prog", "gone-prog.sh")] {
            let id = say(&engine, &person("alice"), &format!("run {script}"))
                .await
                .run
                .expect("asked")
                .id;
            let run = wait_final(&engine, id).await;
            assert_eq!(run.state, RunState::Failed, "{script}");
            let said = format!(
                "{} {}",
                run.error.unwrap_or_default(),
                run.output_tail.unwrap_or_default()
            );
            let looked_for = std::path::absolute(m.join("scripts").join(file)).unwrap();
            assert!(
                said.contains(&looked_for.display().to_string()),
                "{script}: the failure names {}, where relative paths resolve: {said}",
                looked_for.display()
            );
        }
        stop.cancel();
        server.await.unwrap().unwrap();
    }
);

/// The shipped unit and its drop-in pass `systemd-analyze verify` with no
/// warning (an unknown or misspelt setting is only a warning to systemd).
/// Runs where systemd-analyze is installed; says so where it is not.
#[test]
fn the_systemd_unit_verifies() {
    let Ok(found) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed here");
        return;
    };
    assert!(found.status.success());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo.join("deploy/execgov.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/execgov "),
        "the unit starts the installed binary"
    );
    // verify checks that ExecStart's program exists: point it at this build.
    let unit = unit.replace("/usr/local/bin/execgov", env!("CARGO_BIN_EXE_execgov"));
    std::fs::write(dir.path().join("execgov.service"), unit).unwrap();
    for with_drop_in in [false, true] {
        if with_drop_in {
            let d = dir.path().join("execgov.service.d");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(repo.join("deploy/run-user.conf"), d.join("run-user.conf")).unwrap();
        }
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(dir.path().join("execgov.service"))
            .output()
            .expect("systemd-analyze runs");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "drop-in {with_drop_in}: systemd-analyze verify is silent: {said}"
        );
    }
}

/// A metrics token that cannot be resolved (an unset variable) stops the
/// start: it must never leave `/metrics` open by accident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_metrics_token_stops_the_start() {
    let env = TestEnv::new(Backend::Sqlite).await;
    web_config(
        &env,
        "metrics_token = \"env:EXECGOV_TEST_METRICS_TOKEN_SURELY_UNSET\"",
    );
    let err = Application::build(env.config()).await.expect_err("refused");
    let said = format!("{err:#}");
    assert!(
        said.contains("web.metrics_token")
            && said.contains("EXECGOV_TEST_METRICS_TOKEN_SURELY_UNSET"),
        "{said}"
    );
}
