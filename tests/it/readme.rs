//! The README's walk-through is what a newcomer sees: a real `execgov serve`
//! on the quick start's defaults (the bundled demo config and manifests,
//! SQLite) runs in a fresh folder, each command of the README's walk-through
//! blocks (fenced blocks after `<!-- walkthrough -->`) runs against it, and
//! the lines it prints must be the README's lines. Only what must vary is
//! normalised, on both sides: times, durations, the audit link's token, the
//! login name behind `--as`, and the checkout's path.

use crate::helpers::http_get;
use regex::Regex;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the README's lines say the checkout is; the test's folder stands in for it.
const README_CHECKOUT: &str = "/home/you/execgov";
/// The login name the README's lines show behind `--as`.
const README_LOGIN: &str = "you";
const MARKER: &str = "<!-- walkthrough -->";

/// One `$ execgov …` line of the README and the lines it shows under it.
#[derive(Debug)]
struct Step {
    /// The line as written (without `$ `), for messages.
    line: String,
    words: Vec<String>,
    /// `# exit N` after the command; 0 when not written.
    exit: i32,
    expected: Vec<String>,
}

/// The steps of every fenced block that follows the marker, in order.
fn walkthrough(readme: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != MARKER {
            continue;
        }
        let fence = lines.next().expect("a fenced block after the marker");
        assert!(
            fence.starts_with("```"),
            "the marker is followed by a fence: {fence}"
        );
        for line in lines.by_ref() {
            if line.starts_with("```") {
                break;
            }
            match line.strip_prefix("$ ") {
                Some(cmd) => {
                    let (cmd, exit) = match cmd.split_once(" # exit ") {
                        Some((c, code)) => (c, code.trim().parse().expect("# exit N")),
                        None => (cmd, 0),
                    };
                    let words = execgov::command::split_words(cmd).expect("the command parses");
                    assert_eq!(
                        words[0], "execgov",
                        "walk-through commands are execgov's: {cmd}"
                    );
                    steps.push(Step {
                        line: cmd.trim().to_string(),
                        words: words[1..].to_vec(),
                        exit,
                        expected: Vec::new(),
                    });
                }
                None => steps
                    .last_mut()
                    .expect("a command before its output")
                    .expected
                    .push(line.to_string()),
            }
        }
    }
    steps
}

/// What may differ between two runs of the walk-through, made the same on both sides.
struct Normaliser {
    rules: Vec<(Regex, String)>,
}

impl Normaliser {
    fn new(checkout: &Path) -> Normaliser {
        let rule = |re: &str, to: &str| (Regex::new(re).unwrap(), to.to_string());
        Normaliser {
            rules: vec![
                rule(
                    &regex::escape(&checkout.display().to_string()),
                    README_CHECKOUT,
                ),
                rule(
                    r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [A-Z][A-Za-z0-9+-]*",
                    "<time>",
                ),
                rule(r"\?t=[A-Za-z0-9_.~%-]+", "?t=<token>"),
                rule(r"\(as, by [^)]+\)", &format!("(as, by {README_LOGIN})")),
                rule(r"(duration: +).*", "${1}<duration>"),
            ],
        }
    }

    fn line(&self, line: &str) -> String {
        self.rules
            .iter()
            .fold(line.trim_end().to_string(), |l, (re, to)| {
                re.replace_all(&l, to.as_str()).into_owned()
            })
    }

    fn lines(&self, lines: &[String]) -> Vec<String> {
        lines.iter().map(|l| self.line(l)).collect()
    }
}

/// `execgov serve`, stopped (SIGTERM, then waited for) when dropped.
struct Served {
    child: Child,
    log: PathBuf,
}

impl Served {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// The quick start's folder: the bundled config and manifests, nothing else.
fn fresh_checkout(dir: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("manifests"), &dir.join("manifests"));
    std::fs::copy(repo.join("execgov.toml"), dir.join("execgov.toml")).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// `execgov` as a newcomer's shell starts it: in the checkout, with no
/// ExecGov variables of the test's environment.
fn execgov_in(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_execgov"));
    c.current_dir(dir);
    for var in [
        "EXECGOV_CONFIG",
        "EXECGOV_DATABASE_URL",
        "EXECGOV_LOG",
        "EXECGOV_LOG_FORMAT",
        "EXECGOV_LISTEN",
        "EXECGOV_PUBLIC_URL",
    ] {
        c.env_remove(var);
    }
    c
}

/// Starts `serve` on a free loopback port (`EXECGOV_LISTEN`; the demo config's
/// `public_url` stays) and waits until its runner is live.
async fn serve(dir: &Path) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = dir.join("serve.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = execgov_in(dir)
        .arg("serve")
        .env("EXECGOV_LISTEN", addr.to_string())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("execgov serve starts");
    let served = Served { child, log };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "serve never listened: {}",
            served.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = http_get(addr, "/healthz").await;
    assert_eq!(status, 200, "serve is healthy: {}", served.log());
    let url = format!("sqlite://{}/data/execgov.db", dir.display());
    let store = execgov::store::Store::connect(&url)
        .await
        .expect("the demo database");
    loop {
        let now = execgov::clock::Clock::now_ms(&execgov::clock::SystemClock);
        if store.live_workers(now - 5_000).await.unwrap() > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serve's runner never came up: {}",
            served.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close().await;
    served
}

/// Runs one step; its stdout and stderr share one file, so their lines keep
/// the order they were printed in. Returns the exit code and the lines.
fn run_step(dir: &Path, step: &Step) -> (i32, Vec<String>) {
    let mut out = tempfile::tempfile().unwrap();
    let status = execgov_in(dir)
        .args(&step.words)
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out.try_clone().unwrap()))
        .status()
        .expect("execgov runs");
    let mut text = String::new();
    out.rewind().unwrap();
    out.read_to_string(&mut text).unwrap();
    (
        status.code().unwrap_or(-1),
        text.lines().map(str::to_string).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_is_what_serve_and_the_cli_print() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let steps = walkthrough(&readme);
    assert!(
        steps.len() >= 10,
        "the README has its walk-through: {steps:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    fresh_checkout(dir.path());
    let served = serve(dir.path()).await;
    let norm = Normaliser::new(dir.path());
    for step in &steps {
        let (code, printed) = run_step(dir.path(), step);
        assert_eq!(
            norm.lines(&printed),
            norm.lines(&step.expected),
            "`{}` prints what the README shows (left: printed, normalised)\nprinted:\n{}\nserve's log:\n{}",
            step.line,
            printed.join("\n"),
            served.log()
        );
        assert_eq!(
            code,
            step.exit,
            "`{}` exits {}: {}",
            step.line,
            step.exit,
            printed.join("\n")
        );
    }
}
