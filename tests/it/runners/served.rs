//! The deployment the runner process tests use: a real `execgov serve`
//! process on a free port, `execgov runner` processes enrolled through the
//! CLI, each stopped (SIGTERM, then waited for) when dropped.

use super::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process stopped (SIGTERM, then waited for) when dropped.
pub(super) struct Proc(pub(super) Option<Child>);

impl Proc {
    /// kill -9, and reaped.
    pub(super) fn kill9(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit by itself; its exit status.
    pub(super) fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        let c = self.0.as_mut()?;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                self.0 = None;
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }
}

/// A served instance: its environment, its port, the `serve` process.
pub(super) struct Served {
    pub(super) env: TestEnv,
    pub(super) port: u16,
    pub(super) serve: Proc,
    pub(super) engine: Arc<execgov::engine::Engine>,
}

pub(super) const LINES_SH: &str =
    "i=1\nwhile [ $i -le \"$1\" ]; do echo \"line $i\"; i=$((i+1)); sleep \"$2\"; done\n";

pub(super) fn script(name: &str, runs_on: &[&str], command: &str) -> String {
    let tags: Vec<String> = runs_on.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "name = \"{name}\"\ndescription = \"test script {name}\"\ncommand = {command}\n\
         runs_on = [{}]\nmax_concurrent = 64\ntimeout = \"120s\"\n\
         [[param]]\nname = \"a\"\ntype = \"string\"\ndefault = \"x\"\n\
         [[param]]\nname = \"b\"\ntype = \"string\"\ndefault = \"0\"\n\
         [access]\nrun = [\"anyone\"]\n",
        tags.join(", ")
    )
}

pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Served {
    /// A fresh environment with the test scripts, and `serve` on a fixed port.
    pub(super) async fn start(backend: Backend, runner_extra: &str) -> Served {
        let env = TestEnv::new(backend).await;
        let m = env.path().join("manifests");
        std::fs::write(m.join("scripts/lines.sh"), LINES_SH).unwrap();
        std::fs::write(
            m.join("scripts/tally.sh"),
            "echo \"$EXECGOV_RUN_ID\" >> \"$1\"\nsleep 0.05\n",
        )
        .unwrap();
        let lines = r#"["sh", "scripts/lines.sh", "{a}", "{b}"]"#;
        for (name, tags) in [
            ("on-db", &["db-host"][..]),
            ("on-eu", &["eu"][..]),
            ("on-gpu", &["gpu"][..]),
        ] {
            std::fs::write(m.join(format!("{name}.toml")), script(name, tags, lines)).unwrap();
        }
        std::fs::write(
            m.join("scripts/secret.sh"),
            "echo \"token is $API_TOKEN\"\ni=0\nwhile [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n",
        )
        .unwrap();
        std::fs::write(
            m.join("secret.toml"),
            "name = \"secret\"\ndescription = \"prints its secret\"\n\
             command = [\"sh\", \"scripts/secret.sh\"]\nruns_on = [\"db-host\"]\n\
             secret_env = [\"API_TOKEN\"]\n[access]\nrun = [\"anyone\"]\n",
        )
        .unwrap();
        let tally = r#"["sh", "scripts/tally.sh", "{a}"]"#;
        std::fs::write(m.join("tally.toml"), script("tally", &["pool"], tally)).unwrap();
        let port = free_port();
        let text = std::fs::read_to_string(env.config_path())
            .unwrap()
            .replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\""),
            )
            .replace("[runner]\n", &format!("[runner]\n{runner_extra}\n"));
        std::fs::write(env.config_path(), text).unwrap();
        let serve = Proc(Some(spawn_serve(&env)));
        wait_listening(port).await;
        let engine = env.engine().await;
        Served {
            env,
            port,
            serve,
            engine,
        }
    }

    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `execgov runners enrol NAME --tags …`: the token on its last line.
    pub(super) fn enrol(&self, name: &str, tags: &[&str]) -> PathBuf {
        let out = Command::new(env!("CARGO_BIN_EXE_execgov"))
            .args(["--config", self.env.config_path().to_str().unwrap()])
            .args(["runners", "enrol", name, "--tags", &tags.join(",")])
            .env_remove("EXECGOV_DATABASE_URL")
            .output()
            .expect("runners enrol runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let token = text.lines().last().unwrap().trim().to_string();
        assert!(
            token.starts_with("egen_"),
            "the last line is the token: {text}"
        );
        let file = self.env.path().join(format!("{name}.token"));
        std::fs::write(&file, token).unwrap();
        file
    }

    /// An enrolled `execgov runner` process.
    pub(super) fn runner(&self, name: &str, tags: &[&str], slots: u32) -> Proc {
        let token = self.enrol(name, tags);
        let child = Command::new(env!("CARGO_BIN_EXE_execgov"))
            .args(["runner", "--server", &self.url()])
            .args(["--token-file", token.to_str().unwrap()])
            .args(["--tags", &tags.join(",")])
            .args(["--slots", &slots.to_string()])
            .args([
                "--scripts",
                self.env.path().join("manifests").to_str().unwrap(),
            ])
            .args(["--data", self.runner_dir(name).to_str().unwrap()])
            .env("EXECGOV_LOG", "warn,execgov_runner=info")
            .env_remove("EXECGOV_CONFIG")
            .stdin(Stdio::null())
            .spawn()
            .expect("execgov runner starts");
        Proc(Some(child))
    }

    pub(super) fn runner_dir(&self, name: &str) -> PathBuf {
        self.env.path().join(format!("runner-{name}"))
    }

    pub(super) async fn ask(&self, script: &str, a: &str, b: &str) -> RunId {
        let r = say(
            &self.engine,
            &person("alice"),
            &format!("run {script} a={a} b={b}"),
        )
        .await;
        r.run.unwrap_or_else(|| panic!("recorded: {}", r.text)).id
    }

    pub(super) async fn wait(
        &self,
        id: RunId,
        within: Duration,
        done: impl Fn(RunState) -> bool,
    ) -> execgov::store::Run {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let run = self.engine.store().get_run(id).await.unwrap();
            if done(run.state) {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} still {} after {within:?}",
                run.state
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(super) async fn log(&self, id: RunId) -> String {
        let run = self.engine.store().get_run(id).await.unwrap();
        let bytes = execgov::runs_data::log_all(&self.engine, &run)
            .await
            .unwrap();
        String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned()
    }
}

pub(super) fn spawn_serve(env: &TestEnv) -> Child {
    Command::new(env!("CARGO_BIN_EXE_execgov"))
        .args(["--config", env.config_path().to_str().unwrap(), "serve"])
        .current_dir(env.path())
        .env_remove("EXECGOV_DATABASE_URL")
        .env("EXECGOV_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("serve starts")
}

pub(super) async fn wait_listening(port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve listens on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
