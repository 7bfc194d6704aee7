//! ExecGov's black-box tests: one test binary, one module per feature.

mod helpers;

mod audit_cli;
mod backup;
mod break_glass;
mod browser;
mod cli;
mod cli_as;
mod durability;
mod files;
mod governance;
mod manifests;
mod matrix;
mod multiprocess;
mod notify;
mod ops;
mod preview;
mod python;
mod python_init;
mod readme;
mod retention;
mod rules;
mod runner;
mod runners;
mod schedules;
mod slack;
mod step_up;
mod store;
mod web;
mod web_api;
mod web_support;
mod web_ui;
