//! ExecGov: a governed entry point for a team's scripts, from Slack, Matrix,
//! the web and the command line.
//!
//! # Layout
//! - [`types`]: ids and states parsed once at the edge (`RunId`, `ScriptName`, `Actor`, `RunState`).
//! - [`config`]: `execgov.toml`, people, groups, channels, secret references.
//! - [`manifest`]: script manifests, typed parameters, `execgov check`.
//! - [`store`]: sqlx store (SQLite or PostgreSQL): runs, approvals, artifacts, the audit chain.
//! - [`runner`]: one child process, sandboxed: process group, timeout, log cap, masking.
pub mod config;
pub mod manifest;
pub mod runner;
pub mod store;
pub mod types;
