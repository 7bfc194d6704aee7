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
//! - [`store`]: sqlx store (SQLite or PostgreSQL): runs, approvals, artifacts, the audit chain.
//! - [`runner`]: one child process, sandboxed: process group, timeout, log cap, masking.
//! - [`pool`]: the worker pool that claims queued runs and runs them.
//! - [`scheduler`]: fires manifests' `[[schedule]]`s exactly once across processes; reloads manifests.
//! - [`links`]: signed audit links.
//! - [`web`]: the HTTP routes.
//! - [`app`]: the application the binary runs and the tests build.
//! - [`chat`]: the core side of the chat port: inbound bridge, views, notifier.
//! - [`cli`]: the command line, a local channel.
pub mod app;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod command;
pub mod config;
pub mod engine;
pub mod links;
pub mod manifest;
pub mod policy;
pub mod pool;
pub mod runner;
pub mod scheduler;
pub mod store;
pub mod types;
pub mod web;
