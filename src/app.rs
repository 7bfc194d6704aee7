//! The application the binary runs and the tests build: store, manifests,
//! engine, local runner and HTTP server, with one shutdown path.

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::engine::Engine;
use crate::links::LinkSigner;
use crate::manifest;
use crate::runner::{Local, LocalOptions};
use crate::store::Store;
pub use crate::store::redact_url;
use anyhow::Context;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Builds the engine: connects the store (running migrations), loads the
/// manifests (a broken manifest is logged and left out, the rest load) and the
/// audit-link secret.
pub async fn build_engine(
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<Engine>> {
    secure_data_dir(&config.data_dir)?;
    // An audit key that cannot be loaded stops the start, rather than every write.
    crate::audit::audit_key(&config).context("loading the audit key ([audit] key)")?;
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

/// Makes `data_dir` private to the service's user (mode 0700), creating it if
/// needed: it holds the database, the web secret and the logs, and scripts
/// (running as `[runner] user`) must not read any of them.
pub fn secure_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating data_dir {}", dir.display()))?;
    let meta =
        std::fs::metadata(dir).with_context(|| format!("reading data_dir {}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        anyhow::bail!(
            "data_dir {} belongs to uid {}, not to the user running execgov (uid {me}); \
             `chown -R {me} {}` so that only this user can read the database and the web secret",
            dir.display(),
            meta.uid(),
            dir.display()
        );
    }
    if meta.permissions().mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making data_dir {} private (mode 0700)", dir.display()))?;
    }
    Ok(())
}

/// A built application, bound to its listener but not yet serving.
pub struct Application {
    engine: Arc<Engine>,
    listener: tokio::net::TcpListener,
    local: LocalOptions,
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
        let local = LocalOptions::from_engine(&engine);
        // A service that cannot run scripts as configured does not start.
        if engine.config().runner.local
            && let Err(why) = local.runner.runner()
        {
            anyhow::bail!("{why}");
        }
        let readiness = crate::web::Readiness::new();
        // Refuses web.dev_login unless listening on loopback.
        let web = crate::web::WebState::new(engine.clone(), readiness.clone())?;
        let slack = build_slack(&engine)?;
        let matrix = build_matrix(&engine).await?;
        Ok(Application {
            engine,
            listener,
            local,
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

    pub fn local_options_mut(&mut self) -> &mut LocalOptions {
        &mut self.local
    }

    /// Serves HTTP and runs the local runner, the sweeps, the scheduler,
    /// manifest reloads and the chat adapters until `shutdown`, then drains
    /// them. The listener stays up until the local runner has delivered the
    /// outcomes of its last runs.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let addr = self.local_addr();
        tracing::info!(%addr, public_url = %self.engine.config().web.public_url, "serving");
        // Running scripts and keeping chat in step is background work: it gets
        // threads of its own at a lower CPU priority, so answering people (HTTP,
        // Slack acks, Matrix sync) is never queued behind it.
        let behind = background_runtime().context("starting the background runtime")?;
        let local_task = self.engine.config().runner.local.then(|| {
            let local = Local::new(self.engine.clone(), self.local);
            behind.spawn(local.run_until_stopped(Some(addr), shutdown.clone()))
        });
        let scheduler = crate::scheduler::Scheduler::new(self.engine.clone());
        let mut background = vec![
            behind.spawn(crate::runners::maintain_until_stopped(
                self.engine.clone(),
                shutdown.clone(),
            )),
            behind.spawn(scheduler.run_until_stopped(shutdown.clone())),
            // Signed checkpoints of the audit chain's head (`[audit] checkpoint_every`).
            behind.spawn(crate::audit::checkpoints::checkpoints_until_stopped(
                self.engine.clone(),
                shutdown.clone(),
            )),
            // `[audit] sink`: every entry appended to a file as it is written.
            behind.spawn(crate::audit::sink::sink_until_stopped(
                self.engine.clone(),
                shutdown.clone(),
            )),
            behind.spawn(crate::scheduler::reload_until_stopped(
                self.engine.clone(),
                shutdown.clone(),
            )),
            behind.spawn(crate::housekeeping::housekeeping_until_stopped(
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
            // Ready once a sync succeeded; not while syncs keep failing.
            let readiness = self.readiness.clone();
            readiness.set("matrix", false);
            background.push(tokio::spawn(
                matrix
                    .clone()
                    .sync_reporting_until_stopped(shutdown.clone(), move |up| {
                        readiness.set("matrix", up)
                    }),
            ));
        }
        if !adapters.is_empty() {
            // Signed checkpoints to `[audit] channel`, as they are written.
            background.push(behind.spawn(
                crate::chat::checkpoints::post_checkpoints_until_stopped(
                    self.engine.clone(),
                    adapters.clone(),
                    shutdown.clone(),
                ),
            ));
            let notifier = crate::chat::notifier::Notifier::new(self.engine.clone(), adapters);
            background.push(behind.spawn(notifier.run_until_stopped(shutdown.clone())));
        }
        // The listener stops after the local runner, which reports through it.
        let http_stop = CancellationToken::new();
        let stop = http_stop.clone();
        let mut http = tokio::spawn(
            axum::serve(self.listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .into_future(),
        );
        tokio::select! {
            _ = shutdown.cancelled() => {}
            served = &mut http => {
                shutdown.cancel();
                served.context("HTTP server task")?.context("HTTP server")?;
                anyhow::bail!("the HTTP server stopped by itself");
            }
        }
        if let Some(task) = local_task {
            task.await.context("local runner task")?;
        }
        http_stop.cancel();
        http.await
            .context("HTTP server task")?
            .context("HTTP server")?;
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
