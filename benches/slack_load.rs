//! Slack ingress under load: correctly signed `/run` slash commands sent to
//! `POST /slack/commands` at a fixed rate, open-loop.
//!
//! ```text
//! cargo bench --bench slack_load -- --rate 500 --seconds 10 [--connections 8] [--delete]
//! ```
//!
//! Starts the application as the binary builds it (SQLite in a temp folder, a
//! fake Slack Web API on 127.0.0.1 from `tests/it/slack/`), then schedules
//! `rate × seconds` requests at fixed intervals. A few keep-alive connections
//! take the next due request as soon as they are free; nothing waits for earlier
//! answers to decide when to send, and each latency is measured from the
//! request's scheduled time, so a slow server shows as latency, not as a lower
//! send rate. The schedule is kept by a thread of its own with the operating
//! system's sleep (microseconds), not tokio's millisecond timer, whose wake-up
//! up to a millisecond late would be counted as the server's; how late the
//! requests were released is reported on its own line. The fake Slack and the
//! load's client share the service's runtime (giving each its own threads
//! measured worse on two cores: more threads to wake).
//!
//! Each request is `/run true` (a `/bin/true` script open to anyone), which the
//! core records (synced to disk) as a run before it acks: at the end the number
//! of runs must equal the number of acks, with one distinct run id named in
//! each ack.
//!
//! The service's folder (database, 5,000 run folders and logs at 500/s for
//! 10 s) is kept and named at the end, unless `--delete` is given. Deleting it
//! slows the next runs: ext4 without a journal (as on this project's machines,
//! see `/proc/fs/jbd2`) will not reuse an inode freed in the last five
//! minutes, and skipping each of them costs every new file and folder a
//! lookup. Measured: a series of eight runs that each deleted their folder
//! went from p99 4.7 to 9.5 ms, with a quarter of all CPU time in the kernel's
//! `recently_deleted`; delete kept folders when you are done.
//!
//! Reports ack throughput, p50 / p99 / max latency, and the five slowest acks
//! with when they were due. With `RUST_LOG` set (e.g. `RUST_LOG=execgov=info`)
//! it also logs each span's time as it closes, and when the first request was
//! due, so the slowest can be matched with the log.
//! Bounded: at most 100 000 requests and 300 s of sending, then at most 30 s
//! for stragglers. Only 127.0.0.1 is used.

#[allow(dead_code)]
#[path = "../tests/it/slack/answers.rs"]
mod answers;
#[allow(dead_code)]
#[path = "../tests/it/slack/fake.rs"]
mod fake;
#[allow(dead_code)]
#[path = "../tests/it/slack/payloads.rs"]
mod payloads;
#[allow(dead_code)]
#[path = "../tests/it/slack/sign.rs"]
mod sign;
#[allow(dead_code)]
#[path = "../tests/it/slack/socket.rs"]
mod socket;

use execgov::store::RunFilter;
use execgov::types::RunId;
use sign::{Conn, SlackRequest};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const MAX_REQUESTS: u64 = 100_000;
const MAX_SECONDS: u64 = 300;
const STRAGGLERS: Duration = Duration::from_secs(30);

struct Opts {
    rate: u64,
    seconds: u64,
    connections: usize,
    delete: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        rate: 500,
        seconds: 10,
        connections: 8,
        delete: false,
    };
    let args: Vec<String> = std::env::args().collect();
    let value = |i: usize, name: &str| -> u64 {
        args.get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} takes a positive number"))
    };
    for (i, a) in args.iter().enumerate() {
        match a.as_str() {
            "--rate" => o.rate = value(i, "--rate").max(1),
            "--seconds" => o.seconds = value(i, "--seconds").clamp(1, MAX_SECONDS),
            "--connections" => o.connections = value(i, "--connections").clamp(1, 256) as usize,
            "--delete" => o.delete = true,
            _ => {}
        }
    }
    o
}

/// When a request was due, and when the scheduler let it go.
#[derive(Clone, Copy)]
struct Due {
    at: Instant,
    released: Instant,
}

/// One answered (or failed) request: how long it took, and what came back.
struct Outcome {
    /// When it was due, from the first request's due time.
    due: Duration,
    /// From the scheduled time to the answer.
    latency: Duration,
    /// From the scheduled time to the release.
    lag: Duration,
    status: u16,
    run_id: Option<RunId>,
}

/// The run id an ack names: `run 42 (true) is queued`.
fn run_id_in(text: &str) -> Option<RunId> {
    let rest = &text[text.find("run ")? + 4..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    RunId::parse(&digits).ok()
}

async fn start_app(
    dir: &std::path::Path,
    fake: &fake::FakeSlack,
) -> (
    SocketAddr,
    Arc<execgov::engine::Engine>,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::write(
        dir.join("manifests/true.toml"),
        "name = \"true\"\ndescription = \"does nothing\"\ncommand = [\"/bin/true\"]\nmax_concurrent = 64\n[access]\nrun = [\"anyone\"]\n",
    )
    .unwrap();
    std::fs::write(dir.join("bot_token"), fake::BOT_TOKEN).unwrap();
    std::fs::write(dir.join("signing_secret"), sign::SIGNING_SECRET).unwrap();
    let config = format!(
        "manifests = \"manifests\"\ndata_dir = \"data\"\n[database]\nurl = \"sqlite://{d}/data/execgov.db\"\n\
         [web]\nlisten = \"127.0.0.1:0\"\n[runner]\npool_size = 8\n\
         [slack]\nbot_token = \"file:{d}/bot_token\"\nsigning_secret = \"file:{d}/signing_secret\"\napi_url = \"{api}\"\n",
        d = dir.display(),
        api = fake.api_url()
    );
    std::fs::write(dir.join("execgov.toml"), config).unwrap();
    let config =
        execgov::config::Config::load(Some(&dir.join("execgov.toml"))).expect("bench config loads");
    let app = execgov::app::Application::build(config)
        .await
        .expect("the app builds");
    let (addr, engine) = (app.local_addr(), app.engine());
    let stop = CancellationToken::new();
    let served = tokio::spawn(app.run_until_stopped(stop.clone()));
    (addr, engine, stop, served)
}

/// One connection's loop: take the next due request, send it, record the outcome.
async fn worker(
    start: Instant,
    addr: SocketAddr,
    due: Arc<Mutex<mpsc::Receiver<Due>>>,
    done: mpsc::UnboundedSender<Outcome>,
) {
    let mut conn = Conn::open(addr).await.ok();
    loop {
        let Some(due) = due.lock().await.recv().await else {
            return;
        };
        let form = payloads::slash_command(payloads::STRANGER, payloads::RANDOM, "true");
        let req = SlackRequest::command(&form);
        if conn.is_none() {
            conn = Conn::open(addr).await.ok();
        }
        let reply = match conn.as_mut() {
            Some(c) => c.send(&req).await.ok(),
            None => None,
        };
        if reply.is_none() {
            conn = None;
        }
        let outcome = Outcome {
            due: due.at - start,
            latency: due.at.elapsed(),
            lag: due.released - due.at,
            status: reply.as_ref().map_or(0, |r| r.status),
            run_id: reply
                .as_ref()
                .and_then(|r| r.json()["text"].as_str().and_then(run_id_in)),
        };
        let _ = done.send(outcome);
    }
}

/// Every run in the store, a page at a time.
async fn count_runs(engine: &execgov::engine::Engine) -> usize {
    let (mut count, mut before) = (0, None);
    loop {
        let page = engine
            .store()
            .list_runs(&RunFilter {
                before_id: before,
                limit: 500,
                ..RunFilter::default()
            })
            .await
            .expect("list runs");
        count += page.len();
        match page.last() {
            Some(last) if page.len() == 500 => before = Some(last.id),
            _ => return count,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .try_init();
    }
    let o = opts();
    let total = (o.rate * o.seconds).min(MAX_REQUESTS);
    let interval = Duration::from_secs_f64(1.0 / o.rate as f64);
    println!(
        "slack_load: {total} signed /run commands at {}/s over {} s on {} keep-alive connections",
        o.rate, o.seconds, o.connections
    );

    let dir = tempfile::Builder::new()
        .prefix("execgov-slack-load-")
        .tempdir()
        .expect("temp dir");
    let fake = fake::FakeSlack::start().await;
    let (addr, engine, stop, served) = start_app(dir.path(), &fake).await;

    let (due_tx, due_rx) = mpsc::channel::<Due>(total as usize + 1);
    let due_rx = Arc::new(Mutex::new(due_rx));
    let start = Instant::now() + Duration::from_millis(200);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    for _ in 0..o.connections {
        tokio::spawn(worker(start, addr, due_rx.clone(), done_tx.clone()));
    }
    drop(done_tx);

    // Ends by itself once every request is released (the channel holds them all).
    std::thread::spawn(move || {
        for i in 0..total {
            let at = start + interval * i as u32;
            let wait = at.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            if i == 0 {
                tracing::info!("slack_load: the first request is due now");
            }
            let due = Due {
                at,
                released: Instant::now(),
            };
            if due_tx.blocking_send(due).is_err() {
                return;
            }
        }
    });

    let mut outcomes = Vec::with_capacity(total as usize);
    let deadline = start + interval * total as u32 + STRAGGLERS;
    while outcomes.len() < total as usize {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some(o)) => outcomes.push(o),
            _ => break,
        }
    }
    let elapsed = start.elapsed();

    let acked: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == 200).collect();
    let failed = outcomes.len() - acked.len();
    let missing = total as usize - outcomes.len();
    let runs = count_runs(&engine).await;
    let ids: HashSet<RunId> = acked.iter().filter_map(|o| o.run_id).collect();

    let sorted = |f: fn(&Outcome) -> Duration| {
        let mut v: Vec<Duration> = acked.iter().map(|o| f(o)).collect();
        v.sort();
        v
    };
    let lat = sorted(|o| o.latency);
    let lag = sorted(|o| o.lag);
    let pct = |v: &[Duration], p: usize| {
        v.get((v.len() * p / 100).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "  acked 200: {}, other status or error: {failed}, unanswered: {missing}",
        acked.len()
    );
    println!(
        "  ack throughput: {:.1}/s ({} acks in {:.2} s)",
        acked.len() as f64 / elapsed.as_secs_f64(),
        acked.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "  latency from scheduled send: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(pct(&lat, 50)),
        ms(pct(&lat, 99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    let mut slowest: Vec<&&Outcome> = acked.iter().collect();
    slowest.sort_by_key(|o| std::cmp::Reverse(o.latency));
    println!(
        "  slowest, with when they were due: {}",
        slowest
            .iter()
            .take(5)
            .map(|o| format!("{:.2} ms at {:.3} s", ms(o.latency), o.due.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  of which the load generator released late: p50 {:.3} ms, p99 {:.3} ms",
        ms(pct(&lag, 50)),
        ms(pct(&lag, 99)),
    );
    println!(
        "  runs recorded: {runs}; distinct run ids in acks: {}",
        ids.len()
    );
    // Let the service drain and close its store, which folds the WAL into
    // the database and removes it, before the folder is kept or deleted.
    stop.cancel();
    match tokio::time::timeout(STRAGGLERS, served).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("slack_load: the service stopped with an error: {e:#}"),
        Ok(Err(e)) => eprintln!("slack_load: the service task failed: {e}"),
        Err(_) => eprintln!("slack_load: the service did not stop within {STRAGGLERS:?}"),
    }
    drop(fake);
    if o.delete {
        drop(dir);
    } else {
        println!(
            "  kept {} (remove it when done benching; see --delete)",
            dir.keep().display()
        );
    }

    let durable = runs == acked.len() && ids.len() == acked.len();
    if !durable || failed > 0 || missing > 0 {
        eprintln!(
            "slack_load: FAILED: every request must be acked and recorded as exactly one run"
        );
        std::process::exit(1);
    }
    println!("  every ack had its run recorded first");
}
