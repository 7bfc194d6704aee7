//! ExecGov's black-box tests: one test binary, one module per feature.

mod helpers;

mod browser;
mod cli;
mod governance;
mod manifests;
mod matrix;
mod multiprocess;
mod notify;
mod runner;
mod schedules;
mod slack;
mod store;
mod web;
mod web_api;
mod web_support;
mod web_ui;
