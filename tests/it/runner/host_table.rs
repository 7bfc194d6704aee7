//! What the README's host table promises for this host. A test that finds a
//! mechanism missing here passes only if the table says that this host setup
//! does not give the guarantee; a table that promises more than the host
//! gives fails the test that needed it.

use execgov::runner::{CgroupSetup, Host};

use super::runner;

/// The heading the table sits under in README.md.
const HEADING: &str = "### What each host setup guarantees";

/// The guarantee columns of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column {
    SetsidKilled = 3,
    MemoryLimit = 4,
    ProcessLimit = 5,
    DieWithRunner = 6,
    DataPrivate = 7,
}

/// The table's rows, each a list of trimmed cells.
fn rows() -> Vec<Vec<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).expect("README.md readable");
    let (_, after) = readme
        .split_once(HEADING)
        .unwrap_or_else(|| panic!("README.md has no `{HEADING}` section"));
    after
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// This host's row key: cgroups, PID namespaces (root), user.
fn key(host: &Host) -> (&'static str, &'static str, &'static str) {
    let cgroups = match host.cgroups {
        CgroupSetup::V2 => "v2",
        CgroupSetup::V1Hybrid => "v1 hybrid",
        CgroupSetup::None => "none",
    };
    let pidns = if host.pid_namespace { "yes" } else { "no" };
    let user = if host.user.is_some() {
        "set"
    } else {
        "not set"
    };
    (cgroups, pidns, user)
}

/// The README's cell for this host and `column`.
pub(super) fn cell(host: &Host, column: Column) -> String {
    let (cgroups, pidns, user) = key(host);
    let rows = rows();
    let find = |user: &str| {
        rows.iter()
            .find(|r| r.len() == 8 && r[0] == cgroups && r[1] == pidns && r[2] == user)
    };
    // Root where PID namespaces are refused can still set a user: the other
    // columns read as the row without one.
    let row = match (find(user), column) {
        (Some(row), _) => row,
        (None, Column::DataPrivate) if user == "set" => return "yes".into(),
        (None, _) => find("not set").unwrap_or_else(|| {
            panic!("the README's host table has no row for cgroups `{cgroups}`, PID namespaces `{pidns}`")
        }),
    };
    row[column as usize].clone()
}

/// A mechanism a test needs is missing on this host: passes, saying so, only
/// where the README's table does not promise `column` for this host setup.
pub(super) fn missing(host: &Host, column: Column, mechanism: &str) {
    let promised = cell(host, column);
    assert!(
        !promised.starts_with("yes"),
        "this host has no {mechanism} (host: {host}), yet the README's host table promises \
         `{promised}` for its setup {:?}: fix the host or the table",
        key(host)
    );
    println!(
        "note: no {mechanism} here ({:?}); the README's host table says `{promised}`",
        key(host)
    );
}

#[test]
fn the_readme_has_a_row_for_every_host_setup() {
    let rows = rows();
    for cgroups in ["v2", "v1 hybrid", "none"] {
        for (pidns, user) in [("yes", "set"), ("yes", "not set"), ("no", "not set")] {
            let row = rows
                .iter()
                .find(|r| r[0] == cgroups && r[1] == pidns && r[2] == user);
            assert!(
                row.is_some_and(|r| r.len() == 8),
                "no full row for cgroups `{cgroups}`, PID namespaces `{pidns}`, user `{user}`"
            );
        }
    }
}

#[test]
fn the_readme_does_not_promise_what_this_host_lacks() {
    let runner = runner();
    let host = runner.host();
    println!("this host: {host}; its row: {:?}", key(host));
    if !host.memory_limit {
        missing(host, Column::MemoryLimit, "memory cgroup");
    }
    if !host.process_limit {
        missing(host, Column::ProcessLimit, "pids cgroup");
    }
    if !host.pid_namespace {
        missing(host, Column::DieWithRunner, "PID namespace");
    }
    if host.user.is_none() {
        missing(host, Column::DataPrivate, "run user");
    }
}
