//! ExecGov: a governed entry point for a team's scripts, from Slack, Matrix,
//! the web and the command line.
//!
//! # Layout
//! - [`types`]: ids and states parsed once at the edge (`RunId`, `ScriptName`, `Actor`, `RunState`).
//! - [`config`]: `execgov.toml`, people, groups, channels, secret references.
//! - [`manifest`]: script manifests, typed parameters, `execgov check`.
//! - [`command`]: the command grammar every channel shares.
//! - [`policy`]: who may run what, where, and who may approve.
//! - [`engine`]: handles commands: requests, decisions, cancels, status.
//! - [`audit`]: the audit log's keys and signed checkpoints, kept outside the database.
//! - [`store`]: sqlx store (SQLite or PostgreSQL): runs, approvals, artifacts, the audit chain.
//! - [`runner`]: the local runner (the runner client in this process) and the runner core it uses.
//! - [`runners`]: the service's side of runners: enrolment, claims, leases, logs, finishes.
//! - [`runs_data`]: a run's log and files, wherever they are kept.
//! - [`scheduler`]: fires manifests' `[[schedule]]`s exactly once across processes; reloads manifests.
//! - [`links`]: signed audit links.
//! - [`totp`]: one-time codes (RFC 6238) and sealed secrets for step-up approval.
//! - [`web`]: the HTTP routes.
//! - [`housekeeping`]: prunes what only grows (old inbound event ids), hourly.
//! - [`retention`]: removes the payloads of finished runs past `[retention]`.
//! - [`app`]: the application the binary runs and the tests build.
//! - [`chat`]: the core side of the chat port: inbound bridge, views, notifier.
//! - [`cli`]: the command line, a local channel.
pub mod app;
pub mod audit;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod command;
pub mod config;
pub mod engine;
pub mod housekeeping;
pub mod links;
pub mod manifest;
pub mod policy;
pub mod retention;
pub mod runner;
pub mod runners;
pub mod runs_data;
pub mod scheduler;
pub mod store;
pub mod totp;
pub mod types;
pub mod web;
