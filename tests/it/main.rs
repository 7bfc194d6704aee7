//! ExecGov's black-box tests: one test binary, one module per feature.

mod helpers;

mod cli;
mod governance;
mod manifests;
mod web;
mod store;
mod runner;
mod notify;
mod multiprocess;
mod schedules;
