//! Reading and writing cgroup control files, and the few counters the runner reads.

use std::io::{self, Write};
use std::path::Path;

pub(crate) fn read(path: &Path) -> io::Result<String> {
    std::fs::read_to_string(path)
}

/// One write of `value`: cgroup files take a whole value per `write(2)`.
pub(crate) fn write(path: &Path, value: &str) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all(value.as_bytes())
}

/// The process ids listed in a `cgroup.procs` file; none if it cannot be read.
pub(crate) fn procs(dir: &Path) -> Vec<i32> {
    read(&dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The number after `key` in a flat keyed file (`memory.events`,
/// `memory.oom_control`, `pids.events`): `oom_kill 1`.
pub(crate) fn counter(path: &Path, key: &str) -> Option<u64> {
    read(path).ok()?.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// A v2 cgroup with no process left in it or below it.
pub(crate) fn unpopulated(dir: &Path) -> bool {
    counter(&dir.join("cgroup.events"), "populated") == Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_by_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("memory.oom_control");
        std::fs::write(&path, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").expect("write");
        assert_eq!(
            counter(&path, "oom_kill"),
            Some(2),
            "the last key, not `oom_kill_disable`"
        );
        assert_eq!(counter(&path, "under_oom"), Some(0));
        assert_eq!(counter(&path, "max"), None);
    }
}
