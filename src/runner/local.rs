//! The service's local runner: the same runner client a remote host runs
//! (`execgov_runner::client`), in this process, talking HTTP to the service's
//! own listener with a credential minted at start. It takes the runs whose
//! manifest has no `runs_on`. Without a listener (the CLI with no server up),
//! it gets one of its own on loopback that serves only the runner routes.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::LocalRunner;
use crate::engine::Engine;
use crate::links::{new_token, token_hash};
use crate::store::RunnerIdentity;
use execgov_runner::client::{self, ClientOptions, TokenSource};
use execgov_runner::protocol::CREDENTIAL_PREFIX;

/// How the local runner runs; built from the config by [`LocalOptions::from_engine`].
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Runs at once (`[runner] pool_size`).
    pub slots: u32,
    /// On shutdown, how long running runs may go on before they are cancelled.
    pub drain: Duration,
    /// The runner core, set up from `[runner]`.
    pub runner: LocalRunner,
}

impl LocalOptions {
    pub fn from_engine(engine: &Engine) -> LocalOptions {
        let c = engine.config();
        LocalOptions {
            slots: c.runner.pool_size.max(1) as u32,
            drain: Duration::from_secs(30),
            runner: LocalRunner::from_config(c),
        }
    }
}

/// The local runner of one engine.
#[derive(Debug)]
pub struct Local {
    engine: Arc<Engine>,
    opts: LocalOptions,
}

impl Local {
    pub fn new(engine: Arc<Engine>, opts: LocalOptions) -> Local {
        Local { engine, opts }
    }

    /// Registers this process's local runner and runs it against `server` (the
    /// service's listener) until `shutdown`, then drains it. With no server,
    /// it serves the runner routes itself on a loopback port meanwhile.
    pub async fn run_until_stopped(self, server: Option<SocketAddr>, shutdown: CancellationToken) {
        let runner = match self.opts.runner.runner() {
            Ok(r) => r.clone(),
            Err(why) => {
                tracing::error!("the local runner cannot run scripts: {why}");
                return;
            }
        };
        let engine = self.engine;
        let (addr, name, own) = match server {
            Some(addr) => (addr, format!("local@{}:{}", hostname(), addr.port()), None),
            None => match own_listener(&engine).await {
                Ok((addr, stop, task)) => (
                    addr,
                    format!("local@{}/cli-{}", hostname(), std::process::id()),
                    Some((stop, task)),
                ),
                Err(e) => {
                    tracing::error!(error = %e, "the local runner could not listen on loopback");
                    return;
                }
            },
        };
        let credential = format!("{CREDENTIAL_PREFIX}{}", new_token());
        let me = RunnerIdentity {
            name: name.clone(),
            tags: Vec::new(),
            local: true,
        };
        let registered = engine
            .store()
            .register_local_runner(&me, &token_hash(&credential), &hostname(), engine.now())
            .await;
        if let Err(e) = registered {
            tracing::error!(error = %e, "registering the local runner failed");
            return;
        }
        let config = engine.config();
        let loopback = match addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => {
                SocketAddr::from((Ipv4Addr::LOCALHOST, a.port()))
            }
            SocketAddr::V6(a) if a.ip().is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
            }
            other => other,
        };
        let opts = ClientOptions {
            server: format!("http://{loopback}"),
            token: TokenSource::Value(credential),
            tags: Vec::new(),
            slots: self.opts.slots,
            scripts: config.manifests.clone(),
            runs_dir: config.runner.runs_dir.clone(),
            // Its own spool: two processes on one data folder never deliver
            // each other's runs.
            spool: config.data_dir.join("spool").join(spool_name(&name)),
            secrets: Vec::new(),
            mask: config.secret_values(),
            drain: self.opts.drain,
        };
        tracing::info!(runner = %name, slots = opts.slots, "local runner started");
        let heartbeat = tokio::spawn(heartbeat(engine.clone(), name.clone(), shutdown.clone()));
        if let Err(e) = client::run_until_stopped(runner, opts, shutdown).await {
            tracing::error!(error = %e, "the local runner stopped");
        }
        let _ = heartbeat.await;
        // Leave no heartbeat behind: the next CLI must not think a server is up.
        engine.store().heartbeat(&name, 0).await.ok();
        if let Some((stop, task)) = own {
            stop.cancel();
            let _ = task.await;
        }
    }
}

/// Says every second that this process runs scripts (the CLI looks for it
/// before it runs a queued run itself).
async fn heartbeat(engine: Arc<Engine>, name: String, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(e) = engine.store().heartbeat(&name, engine.now()).await {
            tracing::warn!(error = %e, "heartbeat failed");
        }
    }
}

/// A loopback listener serving only the runner routes, for the local runner
/// of a process that serves nothing else.
async fn own_listener(
    engine: &Arc<Engine>,
) -> std::io::Result<(SocketAddr, CancellationToken, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let app = crate::runners::router(engine.clone());
    let s = stop.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the local runner's listener failed");
        }
    });
    Ok((addr, stop, task))
}

/// `local@db1:8080` → `local-db1-8080`.
fn spool_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".into())
}
