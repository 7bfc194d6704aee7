//! Matrix round trip: the time from a user's `!run` of a trivial script to the
//! bot's threaded result arriving at that user's sync, beside the floor: one
//! plain message from one user to another on the same homeserver, measured in
//! the same run.
//!
//! ```text
//! cargo bench --bench matrix_latency [-- --commands 50]
//! ```
//!
//! Starts a real Synapse (`tests/synapse/synapse.sh`, which must be installed)
//! on 127.0.0.1, registers alice, bob and the bot, and wires the engine, pool,
//! notifier and Matrix adapter as `app.rs` does. Then, alternately, alice sends
//! bob a message (floor: send → bob's sync has it) and alice sends
//! `!run trivial` (send → alice's sync has the bot's result in the command's
//! thread). Both in a plain and in an encrypted room. Reports median and p95 of
//! each and of the difference; the target is the median within 50 ms of the floor.

#[allow(dead_code)]
#[path = "../tests/it/matrix/synapse.rs"]
mod synapse;
#[allow(dead_code)]
#[path = "../tests/it/matrix/user.rs"]
mod user;

use execgov::chat::bridge::Bridge;
use execgov::chat::notifier::Notifier;
use execgov::clock::SystemClock;
use execgov::config::Config;
use execgov::runner::{Local, LocalOptions};
use execgov_matrix::{Matrix, Settings};
use std::sync::Arc;
use std::time::{Duration, Instant};
use synapse::Synapse;
use tokio_util::sync::CancellationToken;
use user::{PASSWORD, TestUser, body, in_thread};

const WARMUP: usize = 3;

const TRIVIAL: &str = r#"name = "trivial"
description = "Print ok"
command = ["sh", "scripts/trivial.sh"]
timeout = "10s"
[access]
run = ["anyone"]
"#;

fn commands() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--commands")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(50)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn stats(mut xs: Vec<f64>) -> (f64, f64) {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (percentile(&xs, 0.5), percentile(&xs, 0.95))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if std::env::var_os("RUST_LOG").is_some() {
        // Span closes show how long each post and edit took (`time.busy` + `time.idle`).
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .init();
    }
    let n = commands();
    let hs = Synapse::own("bench");
    let bot_id = hs.register("execgov-bench", PASSWORD);
    let alice = TestUser::new(&hs, "alice-bench").await;
    let bob = TestUser::new(&hs, "bob-bench").await;

    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(manifests.join("scripts")).unwrap();
    std::fs::write(manifests.join("trivial.toml"), TRIVIAL).unwrap();
    std::fs::write(manifests.join("scripts/trivial.sh"), "echo ok\n").unwrap();
    let config_path = dir.path().join("execgov.toml");
    std::fs::write(
        &config_path,
        format!(
            "manifests = \"manifests\"\ndata_dir = \"data\"\n[database]\nurl = \"sqlite://{}/data/execgov.db\"\n[web]\nlisten = \"127.0.0.1:0\"\n[runner]\npool_size = 4\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let config = Config::load(Some(&config_path)).expect("bench config loads");
    let engine = execgov::app::build_engine(Arc::new(config), Arc::new(SystemClock))
        .await
        .expect("engine builds");
    let stop = CancellationToken::new();
    let mut tasks = vec![tokio::spawn(
        Local::new(engine.clone(), LocalOptions::from_engine(&engine))
            .run_until_stopped(None, stop.clone()),
    )];
    let settings = Settings {
        homeserver: hs.url(),
        user_id: bot_id.clone(),
        access_token: None,
        password: Some(PASSWORD.into()),
        command_prefix: "!run".into(),
        allowed_inviters: vec![alice.id.to_string()],
        allowed_rooms: Vec::new(),
        store_dir: dir.path().join("data/matrix"),
    };
    let matrix = Matrix::connect(settings, Arc::new(Bridge::new(engine.clone())))
        .await
        .expect("the bot connects");
    tasks.push(tokio::spawn(
        Notifier::new(engine.clone(), vec![matrix.clone()]).run_until_stopped(stop.clone()),
    ));
    tasks.push(tokio::spawn(
        matrix.clone().sync_until_stopped(stop.clone()),
    ));

    println!(
        "matrix_latency: {n} commands per room (after {WARMUP} warm-up), Synapse on {}",
        hs.url()
    );
    for encrypted in [false, true] {
        let room = alice
            .create_room(encrypted, &[&bot_id, bob.id.as_str()])
            .await;
        bob.join(&room).await;
        alice.wait_joined(&room, &bot_id).await;
        alice.wait_joined(&room, bob.id.as_str()).await;

        let (mut floor, mut bot, mut over) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n + WARMUP {
            let text = format!("ping {i} {encrypted}");
            let t0 = Instant::now();
            let sent = alice.send(&room, &text).await;
            bob.wait_for("alice's message", |v| v["event_id"] == sent.as_str())
                .await;
            let f = ms(bob.arrived(sent.as_str()).unwrap() - t0);

            let t0 = Instant::now();
            let cmd = alice.send(&room, "!run trivial").await;
            let result = alice
                .wait_for("the bot's result", |v| {
                    v["sender"] == bot_id.as_str()
                        && in_thread(v, cmd.as_str())
                        && body(v).contains("audit:")
                })
                .await;
            let b = ms(alice.arrived(result["event_id"].as_str().unwrap()).unwrap() - t0);
            if i >= WARMUP {
                floor.push(f);
                bot.push(b);
                over.push(b - f);
            }
        }
        let (fm, fp) = stats(floor);
        let (bm, bp) = stats(bot);
        let (om, op) = stats(over);
        let kind = if encrypted {
            "encrypted room"
        } else {
            "plain room"
        };
        println!("{kind}:");
        println!("  floor  message alice → bob              median {fm:7.1} ms   p95 {fp:7.1} ms");
        println!("  bot    !run trivial → threaded result   median {bm:7.1} ms   p95 {bp:7.1} ms");
        println!(
            "  bot − floor (same iteration)           median {om:7.1} ms   p95 {op:7.1} ms   target: median ≤ 50 ms: {}",
            if om <= 50.0 { "met" } else { "NOT met" }
        );
    }

    stop.cancel();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
}
