//! A real Synapse homeserver for the tests, run by `tests/synapse/synapse.sh`:
//! one shared per test process (started on first use), or one of a test's own
//! when the test stops and starts it. Each is started with `--owner <our pid>`,
//! so it is stopped once the test process is gone, however that ends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/synapse/synapse.sh")
}

fn run(args: &[&str]) -> String {
    let out = Command::new(script())
        .args(args)
        .output()
        .expect("tests/synapse/synapse.sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "synapse.sh {} failed ({}):\n{stdout}\n{stderr}",
        args.join(" "),
        out.status
    );
    stdout
}

/// Fails the test (never skips it) when Synapse is not installed.
fn require_installed() {
    let home = std::env::var("HOME").unwrap_or_default();
    let cache = std::env::var("EXECGOV_SYNAPSE_CACHE")
        .unwrap_or_else(|_| format!("{home}/.cache/execgov-synapse"));
    let python = Path::new(&cache).join("venv/bin/python");
    assert!(
        python.exists(),
        "the Matrix tests need a real Synapse, which is not installed ({} is missing): run tests/synapse/synapse.sh install",
        python.display()
    );
}

/// Removes folders of earlier test processes (their homeservers are gone with them).
fn sweep_old_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let pid = e
            .file_name()
            .to_string_lossy()
            .split('-')
            .next()
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Debug)]
pub struct Synapse {
    pub dir: PathBuf,
    pub port: u16,
}

impl Synapse {
    /// The homeserver shared by this test process's tests (distinct users and rooms each).
    pub fn shared() -> &'static Synapse {
        static SHARED: OnceLock<Synapse> = OnceLock::new();
        SHARED.get_or_init(|| Synapse::start_new("shared"))
    }

    /// A homeserver for one test alone (for tests that stop and start it).
    pub fn own(name: &str) -> Synapse {
        Synapse::start_new(name)
    }

    fn start_new(name: &str) -> Synapse {
        require_installed();
        let base = std::env::temp_dir().join("execgov-synapse-tests");
        std::fs::create_dir_all(&base).unwrap();
        sweep_old_dirs(&base);
        let dir = base.join(format!("{}-{name}-{}", std::process::id(), free_port()));
        let hs = Synapse {
            dir,
            port: free_port(),
        };
        hs.start();
        hs
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts (or starts again, same database and port) and waits until it answers.
    pub fn start(&self) {
        let pid = std::process::id().to_string();
        run(&[
            "start",
            self.dir.to_str().unwrap(),
            &self.port.to_string(),
            "--owner",
            &pid,
        ]);
    }

    pub fn stop(&self) {
        run(&["stop", self.dir.to_str().unwrap()]);
    }

    /// Registers `@name:localhost` with `password`.
    pub fn register(&self, name: &str, password: &str) -> String {
        run(&[
            "register",
            self.dir.to_str().unwrap(),
            &self.port.to_string(),
            name,
            password,
        ])
        .trim()
        .to_string()
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        // A test's own homeserver; the shared one lives in a static and is
        // stopped by its owner watch when the process ends.
        let _ = Command::new(script())
            .args(["stop", self.dir.to_str().unwrap()])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
