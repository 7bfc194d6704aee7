//! The application the binary runs and the tests build: store, manifests,
//! engine, worker pool and HTTP server, with one shutdown path.

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::engine::Engine;
use crate::links::LinkSigner;
use crate::manifest;
use crate::pool::{Pool, PoolOptions};
use crate::store::Store;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Builds the engine: connects the store (running migrations), loads the
/// manifests (a broken manifest is logged and left out, the rest load) and the
/// audit-link secret.
pub async fn build_engine(
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<Engine>> {
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening the database {}", redact_url(&config.database_url)))?;
    let (catalog, problems) = manifest::load_catalog(&config.manifests, &config);
    for p in &problems {
        tracing::warn!("manifest left out: {p}");
    }
    tracing::info!(scripts = catalog.len(), dir = %config.manifests.display(), "manifests loaded");
    let secret = match &config.web.secret {
        Some(s) => Some(s.resolve().context("resolving web.secret")?),
        None => None,
    };
    let links = LinkSigner::from_config_or_data_dir(secret, &config.data_dir)?;
    Ok(Arc::new(Engine::new(config, catalog, store, clock, links)))
}

/// A built application, bound to its listener but not yet serving.
pub struct Application {
    engine: Arc<Engine>,
    listener: tokio::net::TcpListener,
    pool_opts: PoolOptions,
    web: crate::web::WebState,
    readiness: crate::web::Readiness,
    slack: Option<Arc<execgov_slack::Slack>>,
    matrix: Option<Arc<execgov_matrix::Matrix>>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("listener", &self.listener)
            .field("slack", &self.slack.is_some())
            .field("matrix", &self.matrix.is_some())
            .finish_non_exhaustive()
    }
}

/// The Matrix adapter from `[matrix]`: logs in (or restores the session kept
/// under `data_dir/matrix`, so a restart is the same device).
async fn build_matrix(engine: &Arc<Engine>) -> anyhow::Result<Option<Arc<execgov_matrix::Matrix>>> {
    let config = engine.config();
    let Some(m) = &config.matrix else {
        return Ok(None);
    };
    let settings = execgov_matrix::Settings {
        homeserver: m.homeserver.clone(),
        user_id: m.user_id.clone(),
        access_token: m
            .access_token
            .as_ref()
            .map(|s| s.resolve())
            .transpose()
            .context("resolving matrix.access_token")?,
        password: m
            .password
            .as_ref()
            .map(|s| s.resolve())
            .transpose()
            .context("resolving matrix.password")?,
        command_prefix: m.command_prefix.clone(),
        allowed_inviters: m.allowed_inviters.clone(),
        // Invites into rooms named in [channels] are accepted from anyone.
        allowed_rooms: config
            .channels
            .values()
            .flatten()
            .filter_map(|k| k.strip_prefix("matrix:"))
            .map(String::from)
            .collect(),
        store_dir: config.data_dir.join("matrix"),
    };
    let handler = Arc::new(crate::chat::bridge::Bridge::new(engine.clone()));
    let matrix = execgov_matrix::Matrix::connect(settings, handler)
        .await
        .with_context(|| format!("connecting to Matrix at {} as {}", m.homeserver, m.user_id))?;
    Ok(Some(matrix))
}

/// The Slack adapter from `[slack]`, its secrets resolved from their references.
fn build_slack(engine: &Arc<Engine>) -> anyhow::Result<Option<Arc<execgov_slack::Slack>>> {
    let Some(sc) = engine.config().slack.clone() else {
        return Ok(None);
    };
    execgov_slack::install_crypto_provider();
    let secret = |what: &str, r: &Option<crate::config::SecretRef>| -> anyhow::Result<String> {
        r.as_ref()
            .with_context(|| format!("[slack] needs {what} (env:NAME or file:PATH)"))?
            .resolve()
            .with_context(|| format!("resolving slack.{what}"))
    };
    let settings = execgov_slack::Settings {
        bot_token: secret("bot_token", &sc.bot_token)?,
        signing_secret: secret("signing_secret", &sc.signing_secret)?,
        app_token: match &sc.app_token {
            Some(r) => Some(r.resolve().context("resolving slack.app_token")?),
            None => None,
        },
        api_url: sc.api_url.clone(),
    };
    let handler = Arc::new(crate::chat::bridge::Bridge::new(engine.clone()));
    Ok(Some(execgov_slack::Slack::new(settings, handler)?))
}

impl Application {
    pub async fn build(mut config: Config) -> anyhow::Result<Application> {
        let listener = tokio::net::TcpListener::bind(config.web.listen)
            .await
            .with_context(|| format!("listening on {} (web.listen)", config.web.listen))?;
        let addr = listener.local_addr()?;
        if config.web.listen.port() == 0 {
            // Port 0 (tests): links must point at the port we really got.
            config.web.public_url = format!("http://{addr}");
        }
        let engine = build_engine(Arc::new(config), Arc::new(SystemClock)).await?;
        let pool_opts = PoolOptions::from_engine(&engine);
        let readiness = crate::web::Readiness::new();
        // Refuses web.dev_login unless listening on loopback.
        let web = crate::web::WebState::new(engine.clone(), readiness.clone())?;
        let slack = build_slack(&engine)?;
        let matrix = build_matrix(&engine).await?;
        Ok(Application {
            engine,
            listener,
            pool_opts,
            web,
            readiness,
            slack,
            matrix,
        })
    }

    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn pool_options_mut(&mut self) -> &mut PoolOptions {
        &mut self.pool_opts
    }

    /// Serves HTTP and runs the pool, the scheduler, manifest reloads and the
    /// chat adapters until `shutdown`, then drains them.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let addr = self.local_addr();
        tracing::info!(%addr, public_url = %self.engine.config().web.public_url, "serving");
        // Running scripts and keeping chat in step is background work: it gets
        // threads of its own at a lower CPU priority, so answering people (HTTP,
        // Slack acks, Matrix sync) is never queued behind it.
        let behind = background_runtime().context("starting the background runtime")?;
        let pool = Pool::new(self.engine.clone(), self.pool_opts);
        let pool_task = behind.spawn(pool.run_until_stopped(shutdown.clone()));
        let scheduler = crate::scheduler::Scheduler::new(self.engine.clone());
        let mut background = vec![
            behind.spawn(scheduler.run_until_stopped(shutdown.clone())),
            behind.spawn(crate::scheduler::reload_until_stopped(
                self.engine.clone(),
                shutdown.clone(),
            )),
        ];
        let mut app = crate::web::router(self.web.clone());
        let mut adapters: Vec<Arc<dyn execgov_chat::ChatAdapter>> = Vec::new();
        if let Some(slack) = &self.slack {
            app = app.merge(slack.router());
            if self
                .engine
                .config()
                .slack
                .as_ref()
                .is_some_and(|s| s.app_token.is_none())
            {
                // HTTP mode has no connection to lose: Slack calls us.
                self.readiness.set("slack", true);
            }
            adapters.push(slack.clone());
            if self
                .engine
                .config()
                .slack
                .as_ref()
                .is_some_and(|s| s.app_token.is_some())
            {
                // Ready while Slack delivers over the socket.
                tracing::info!("Slack: Socket Mode");
                let readiness = self.readiness.clone();
                readiness.set("slack", false);
                background.push(tokio::spawn(
                    slack
                        .clone()
                        .socket_mode_until_stopped(shutdown.clone(), move |up| {
                            readiness.set("slack", up)
                        }),
                ));
            }
        }
        if let Some(matrix) = &self.matrix {
            adapters.push(matrix.clone());
            self.readiness.set("matrix", true);
            background.push(tokio::spawn(
                matrix.clone().sync_until_stopped(shutdown.clone()),
            ));
        }
        if !adapters.is_empty() {
            let notifier = crate::chat::notifier::Notifier::new(self.engine.clone(), adapters);
            background.push(behind.spawn(notifier.run_until_stopped(shutdown.clone())));
        }
        let stop = shutdown.clone();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .context("HTTP server")?;
        pool_task.await.context("worker pool task")?;
        for task in background {
            let _ = task.await;
        }
        behind.shutdown_background();
        // Finishes the store's writes and closes its connections in order; the
        // last one to close folds the WAL into the database and removes it.
        // Left to the process's exit, the writer threads may not get to it.
        self.engine.store().close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// How much lower the background threads' CPU priority is (a nice increment).
const BACKGROUND_NICENESS: i32 = 10;

/// Two worker threads for background work (the pool, the scheduler, the chat
/// notifier), each at nice +[`BACKGROUND_NICENESS`]; scripts started from them
/// inherit it, so a busy script cannot slow the answers either.
fn background_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("execgov-background")
        .on_thread_start(lower_this_threads_priority)
        .enable_all()
        .build()
}

fn lower_this_threads_priority() {
    // On Linux the nice value belongs to the thread: `who` is this thread's id.
    let me = Some(rustix::thread::gettid());
    let lowered = rustix::process::getpriority_process(me)
        .and_then(|now| rustix::process::setpriority_process(me, now + BACKGROUND_NICENESS));
    if let Err(e) = lowered {
        tracing::debug!(error = %e, "could not lower a background thread's priority");
    }
}

/// A database URL for logs, without its password.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown requested; draining");
        token.cancel();
    });
}
