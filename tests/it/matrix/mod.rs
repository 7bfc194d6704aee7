//! Matrix end to end: the engine, pool and notifier wired to the Matrix
//! adapter exactly as `app.rs` does, against a real Synapse homeserver on
//! 127.0.0.1 ([`synapse`]), driven by real users with clients of their own
//! ([`user`]) whose syncs show what the bot really sent.
//!
//! Layout: `World` here (homeserver, people, rooms, config, bot); tests in
//! `commands.rs` (runs, threads, edits, files, encryption, private answers),
//! `files.rs` (a file replied to with the command), `approvals.rs` (reactions and `!approve`/`!deny`), `resilience.rs` (bot
//! restart, homeserver restart), `identity.rs` (cross-signing, readiness,
//! `m.mentions`) and `invites.rs`.

pub mod synapse;
pub mod user;

mod approvals;
mod commands;
mod files;
mod identity;
mod invites;
mod resilience;
mod step_up;

use crate::helpers::{Backend, TestEnv};
use execgov::chat::bridge::Bridge;
use execgov::chat::notifier::Notifier;
use execgov::engine::Engine;
use execgov::runner::{Local, LocalOptions};
use execgov::store::{Run, RunFilter};
use execgov_matrix::matrix_sdk::ruma::OwnedRoomId;
use execgov_matrix::{Matrix, Settings};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;
use synapse::Synapse;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use user::{PASSWORD, TestUser};

/// Sleeps a moment, prints `::progress`, then writes a CSV into `$EXECGOV_OUTPUT_DIR`.
const REPORT: &str = r#"name = "report-export"
description = "Export the monthly sales report (CSV) for one month"
command = ["sh", "scripts/report_export.sh", "{month}"]
timeout = "20s"
[[param]]
name = "month"
type = "string"
pattern = '^\d{4}-(0[1-9]|1[0-2])$'
required = true
[access]
run = ["group:sre"]
"#;

const REPORT_SH: &str = "echo '::progress 50 Exporting rows'\nsleep 0.6\n\
printf 'month,region,total\\n%s,emea,1200\\n%s,amer,900\\n' \"$1\" \"$1\" > \"$EXECGOV_OUTPUT_DIR/report-$1.csv\"\n\
echo \"exported report-$1.csv\"\n";

/// The homeserver a test uses: the shared one, or its own.
pub enum Hs {
    Shared(&'static Synapse),
    Own(Synapse),
}

impl Deref for Hs {
    type Target = Synapse;
    fn deref(&self) -> &Synapse {
        match self {
            Hs::Shared(s) => s,
            Hs::Own(s) => s,
        }
    }
}

/// Everything one Matrix test needs: a homeserver, alice (in `sre`, may run
/// things) and bob (in `leads`, approves risky ones), the ops room (alice's,
/// where commands are given) and the approvals room (bob's), the config
/// naming them, and the bot.
pub struct World {
    pub hs: Hs,
    /// The bot's localpart.
    pub bot_name: String,
    pub env: TestEnv,
    pub alice: TestUser,
    pub bob: TestUser,
    pub bot_id: String,
    pub ops: OwnedRoomId,
    pub approvals: OwnedRoomId,
    pub bot: Option<Bot>,
    /// Log the bot in with this access token instead of its password.
    pub access_token: Option<String>,
}

/// The app's Matrix side, running: pool, notifier and sync loop.
pub struct Bot {
    pub engine: Arc<Engine>,
    pub matrix: Arc<Matrix>,
    /// What the sync loop reports for `/readyz`.
    pub ready: tokio::sync::watch::Receiver<bool>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Bot {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Bot {
    /// Stops everything and waits until it has stopped.
    pub async fn stop(mut self) {
        self.stop.cancel();
        for t in std::mem::take(&mut self.tasks) {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("the bot stops within 30 s")
                .expect("a bot task ended without panicking");
        }
    }
}

fn tag() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}

impl World {
    /// A world on the shared homeserver.
    pub async fn new(encrypted: bool) -> World {
        World::on(Hs::Shared(Synapse::shared()), encrypted).await
    }

    pub async fn on(hs: Hs, encrypted: bool) -> World {
        // The SDK's HTTP client needs a process-wide rustls provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let t = tag();
        let bot_name = format!("execgov-{t}");
        let bot_id = hs.register(&bot_name, PASSWORD);
        let alice = TestUser::new(&hs, &format!("alice-{t}")).await;
        let bob = TestUser::new(&hs, &format!("bob-{t}")).await;
        let ops = alice
            .create_room(encrypted, &[&bot_id, bob.id.as_str()])
            .await;
        let approvals = bob
            .create_room(encrypted, &[&bot_id, alice.id.as_str()])
            .await;
        bob.join(&ops).await;
        alice.join(&approvals).await;

        let env = TestEnv::new(Backend::Sqlite).await;
        let manifests = env.path().join("manifests");
        std::fs::write(manifests.join("report-export.toml"), REPORT).unwrap();
        std::fs::write(manifests.join("scripts/report_export.sh"), REPORT_SH).unwrap();
        let config = format!(
            r#"manifests = "manifests"
data_dir = "data"
[database]
url = "{db}"
[web]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:8080"
[runner]
pool_size = 4
kill_grace = "1s"
[people.alice]
matrix = "{alice}"
[people.bob]
matrix = "{bob}"
[groups]
sre = ["alice"]
leads = ["bob"]
[channels]
approvals = ["matrix:{approvals}"]
"#,
            db = env.database_url,
            alice = alice.id,
            bob = bob.id,
        );
        std::fs::write(env.config_path(), config).unwrap();

        let mut world = World {
            hs,
            env,
            alice,
            bob,
            bot_id,
            bot_name,
            ops,
            approvals,
            bot: None,
            access_token: None,
        };
        world.start_bot().await;
        // The bot accepted both invites (sent before it ever ran).
        world.alice.wait_joined(&world.ops, &world.bot_id).await;
        world.bob.wait_joined(&world.approvals, &world.bot_id).await;
        world
    }

    pub fn settings(&self) -> Settings {
        Settings {
            homeserver: self.hs.url(),
            user_id: self.bot_id.clone(),
            access_token: self.access_token.clone(),
            password: self.access_token.is_none().then(|| PASSWORD.to_string()),
            command_prefix: "!run".into(),
            allowed_inviters: vec![self.alice.id.to_string(), self.bob.id.to_string()],
            allowed_rooms: Vec::new(),
            store_dir: self.env.path().join("data/matrix"),
        }
    }

    /// Starts the bot the way `app.rs` wires it.
    pub async fn start_bot(&mut self) {
        assert!(self.bot.is_none(), "one bot at a time");
        let engine = self.env.engine().await;
        let stop = CancellationToken::new();
        let opts = LocalOptions::from_engine(&engine);
        let mut tasks = vec![tokio::spawn(
            Local::new(engine.clone(), opts).run_until_stopped(None, stop.clone()),
        )];
        let handler = Arc::new(Bridge::new(engine.clone()));
        let matrix = Matrix::connect(self.settings(), handler)
            .await
            .unwrap_or_else(|e| panic!("the bot {} connects: {e}", self.bot_name));
        let notifier = Notifier::new(engine.clone(), vec![matrix.clone()]);
        tasks.push(tokio::spawn(notifier.run_until_stopped(stop.clone())));
        let (ready_tx, ready) = tokio::sync::watch::channel(false);
        tasks.push(tokio::spawn(matrix.clone().sync_reporting_until_stopped(
            stop.clone(),
            move |up| {
                ready_tx.send_replace(up);
            },
        )));
        self.bot = Some(Bot {
            engine,
            matrix,
            ready,
            stop,
            tasks,
        });
    }

    pub async fn stop_bot(&mut self) {
        self.bot.take().expect("a running bot").stop().await;
    }

    pub fn engine(&self) -> Arc<Engine> {
        self.bot.as_ref().expect("a running bot").engine.clone()
    }

    /// Every run of `script`, newest first.
    pub async fn runs(&self, script: &str) -> Vec<Run> {
        let filter = RunFilter {
            script: Some(script.to_string()),
            limit: 100,
            ..RunFilter::default()
        };
        self.engine()
            .store()
            .list_runs(&filter)
            .await
            .expect("runs list")
    }

    /// The only run of `script`, once it is in a final state.
    pub async fn final_run(&self, script: &str) -> Run {
        let runs = self.runs(script).await;
        assert_eq!(runs.len(), 1, "exactly one run of {script}: {runs:?}");
        crate::helpers::wait_final(&self.engine(), runs[0].id).await
    }

    /// Whether `v` was sent by the bot.
    pub fn by_bot(&self, v: &serde_json::Value) -> bool {
        v["sender"] == self.bot_id.as_str()
    }
}
