//! Cgroups: where this process sits in each cgroup hierarchy, the runner's own
//! cgroup under it, and one cgroup per run under that.
//!
//! A run's processes cannot leave its cgroup (`setsid()` changes the session,
//! not the cgroup), so the cgroup is what stops all of them and what limits
//! their memory and process count. Two layouts are handled:
//! - cgroup v2 (one hierarchy): `cgroup.kill` stops a run; `memory.max` and
//!   `pids.max` limit it where those controllers are given to our cgroup;
//! - cgroup v1 (a hierarchy per controller), also next to a v2 hierarchy that
//!   has no controllers ("hybrid"): `memory`, `pids` and `freezer` each
//!   provide what v2 does not.
//!
//! Names: the runner's cgroup is `execgov-{scope}-{pid}-{starttime}-{n}` in the
//! cgroup this process is in (in every hierarchy used), a run's is
//! `run-{id}-{n}` under it. The owner's pid and start time let a later runner
//! tell a cgroup whose owner died (see `leftovers`) from a live one.
//!
//! - `mod.rs`: finding the hierarchies, the runner's cgroup.
//! - `run.rs`: one run's cgroup: joining, limits, stopping, counters, removal.
//! - `files.rs`: reading and writing cgroup files.

mod files;
mod run;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub(crate) use run::RunCgroup;

/// The processes a cgroup folder lists.
pub(crate) fn procs_of(dir: &Path) -> Vec<i32> {
    files::procs(dir)
}

/// Prefix of every cgroup a runner makes for itself.
pub(crate) const RUNNER_PREFIX: &str = "execgov-";
/// The v2 leaf this process moves into when its own cgroup must hand the
/// memory and pids controllers to child cgroups (v2 allows no processes in a
/// cgroup that does).
const LEAF: &str = "execgov-service";

/// The cgroup this process is in, in each hierarchy the runner can use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Bases {
    pub(crate) unified: Option<PathBuf>,
    pub(crate) memory_v1: Option<PathBuf>,
    pub(crate) pids_v1: Option<PathBuf>,
    pub(crate) freezer_v1: Option<PathBuf>,
}

impl Bases {
    /// From `/proc/self/cgroup` and `/proc/self/mountinfo`.
    pub(crate) fn discover() -> Bases {
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Bases::parse(&cgroup, &mountinfo)
    }

    fn parse(cgroup: &str, mountinfo: &str) -> Bases {
        let mut bases = Bases::default();
        for mount in mountinfo.lines().filter_map(Mount::parse) {
            if mount.fstype == "cgroup2" {
                if bases.unified.is_none() {
                    bases.unified = cgroup_path(cgroup, None).and_then(|p| mount.dir_of(p));
                }
                continue;
            }
            if mount.fstype != "cgroup" {
                continue;
            }
            for (controller, slot) in [
                ("memory", &mut bases.memory_v1),
                ("pids", &mut bases.pids_v1),
                ("freezer", &mut bases.freezer_v1),
            ] {
                if slot.is_none() && mount.options.split(',').any(|o| o == controller) {
                    *slot = cgroup_path(cgroup, Some(controller)).and_then(|p| mount.dir_of(p));
                }
            }
        }
        // A process the runner moved into its leaf makes cgroups next to it.
        if let Some(dir) = &bases.unified
            && dir.file_name().is_some_and(|n| n == LEAF)
        {
            bases.unified = dir.parent().map(Path::to_path_buf);
        }
        bases
    }

    /// Every hierarchy's base, for the leftover sweep.
    pub(crate) fn all(&self) -> impl Iterator<Item = &PathBuf> {
        [
            &self.unified,
            &self.memory_v1,
            &self.pids_v1,
            &self.freezer_v1,
        ]
        .into_iter()
        .flatten()
    }
}

/// This process's cgroup path in the hierarchy with `controller` (v1), or the
/// v2 one (`0::/path`).
fn cgroup_path<'a>(cgroup: &'a str, controller: Option<&str>) -> Option<&'a str> {
    cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = match controller {
            None => id == "0" && list.is_empty(),
            Some(c) => list.split(',').any(|l| l == c),
        };
        matches.then_some(path)
    })
}

/// One line of `/proc/self/mountinfo`, the parts that matter here.
#[derive(Debug)]
struct Mount<'a> {
    /// The path inside the file system that is mounted (not `/` in containers).
    root: &'a str,
    point: &'a str,
    fstype: &'a str,
    /// Super options; for cgroup v1 they name the controllers.
    options: &'a str,
}

impl<'a> Mount<'a> {
    fn parse(line: &'a str) -> Option<Mount<'a>> {
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split(' ').collect();
        let mut after = after.split(' ');
        Some(Mount {
            root: fields.get(3)?,
            point: fields.get(4)?,
            fstype: after.next()?,
            options: after.nth(1)?,
        })
    }

    /// Where the cgroup `path` of this hierarchy is, if this mount shows it.
    fn dir_of(&self, path: &str) -> Option<PathBuf> {
        let inside = if self.root == "/" {
            path
        } else {
            path.strip_prefix(self.root)
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))?
        };
        let dir = Path::new(&unescape(self.point)).join(inside.trim_start_matches('/'));
        dir.is_dir().then_some(dir)
    }
}

/// Mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Which hierarchies the runner may use; tests and operators can turn some off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Allowed {
    pub(crate) v2: bool,
    pub(crate) v1: bool,
}

/// The runner's own cgroup in each hierarchy it uses; the runs' cgroups are
/// made inside. Removed (if empty) when dropped.
#[derive(Debug)]
pub(crate) struct RunnerTree {
    /// The v2 cgroup, and whether it can stop a run with `cgroup.kill`.
    pub(crate) unified: Option<PathBuf>,
    pub(crate) unified_kill: bool,
    /// The v2 cgroup hands these controllers to the runs.
    pub(crate) unified_memory: bool,
    pub(crate) unified_pids: bool,
    pub(crate) memory_v1: Option<PathBuf>,
    pub(crate) pids_v1: Option<PathBuf>,
    pub(crate) freezer_v1: Option<PathBuf>,
}

impl RunnerTree {
    /// Makes the runner's cgroup `name` in every hierarchy that is there and
    /// allowed, and needed: v1 only for what v2 does not give. Also returns,
    /// one line each, why a hierarchy or controller is not used.
    pub(crate) fn create(bases: &Bases, name: &str, allowed: Allowed) -> (RunnerTree, Vec<String>) {
        let mut notes = Vec::new();
        let mut tree = RunnerTree {
            unified: None,
            unified_kill: false,
            unified_memory: false,
            unified_pids: false,
            memory_v1: None,
            pids_v1: None,
            freezer_v1: None,
        };
        if let Some(base) = bases.unified.as_ref().filter(|_| allowed.v2) {
            match make_dir(base, name) {
                Ok(dir) => {
                    tree.unified_kill = dir.join("cgroup.kill").exists();
                    let (memory, pids) = hand_down_controllers(base, &dir, &mut notes);
                    tree.unified_memory = memory;
                    tree.unified_pids = pids;
                    tree.unified = Some(dir);
                }
                Err(why) => notes.push(format!("cgroup v2: {why}")),
            }
        }
        let v1 = |base: &Option<PathBuf>, needed: bool, what: &str, notes: &mut Vec<String>| {
            let base = base.as_ref().filter(|_| allowed.v1 && needed)?;
            make_dir(base, name)
                .map_err(|why| notes.push(format!("cgroup v1 {what}: {why}")))
                .ok()
        };
        tree.memory_v1 = v1(&bases.memory_v1, !tree.unified_memory, "memory", &mut notes);
        tree.pids_v1 = v1(&bases.pids_v1, !tree.unified_pids, "pids", &mut notes);
        tree.freezer_v1 = v1(&bases.freezer_v1, !tree.unified_kill, "freezer", &mut notes);
        (tree, notes)
    }

    /// Some cgroup holds the runs, so every process of a run can be found.
    pub(crate) fn tracks_runs(&self) -> bool {
        self.dirs().next().is_some()
    }

    pub(crate) fn memory(&self) -> bool {
        self.unified_memory || self.memory_v1.is_some()
    }

    pub(crate) fn pids(&self) -> bool {
        self.unified_pids || self.pids_v1.is_some()
    }

    fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        [
            &self.unified,
            &self.memory_v1,
            &self.pids_v1,
            &self.freezer_v1,
        ]
        .into_iter()
        .flatten()
    }
}

impl Drop for RunnerTree {
    fn drop(&mut self) {
        for dir in self.dirs() {
            // Fails while a run's cgroup is still being emptied; the sweep of
            // a later runner removes it then.
            if let Err(e) = std::fs::remove_dir(dir) {
                tracing::debug!(dir = %dir.display(), error = %e, "runner cgroup left in place");
            }
        }
    }
}

/// `base/name`, made now.
fn make_dir(base: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = base.join(name);
    std::fs::create_dir(&dir)
        .map(|()| dir)
        .map_err(|e| format!("cannot make a cgroup in `{}` ({e})", base.display()))
}

/// Gives the v2 `memory` and `pids` controllers to the runner's cgroup `dir`,
/// so each run's cgroup can be limited. v2 lets a cgroup hand controllers down
/// only while it holds no process itself, so if the base holds this process
/// (a systemd service with `Delegate=yes`, say), the process first moves into
/// a leaf of its own next to the runners' cgroups.
fn hand_down_controllers(base: &Path, dir: &Path, notes: &mut Vec<String>) -> (bool, bool) {
    let available = words(&files::read(&base.join("cgroup.controllers")).unwrap_or_default());
    let wanted: Vec<&str> = ["memory", "pids"]
        .into_iter()
        .filter(|c| available.contains(*c))
        .collect();
    if wanted.is_empty() {
        return (false, false);
    }
    let enabled = || words(&files::read(&base.join("cgroup.subtree_control")).unwrap_or_default());
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|c| !enabled().contains(*c))
        .collect();
    if !missing.is_empty() {
        let request = missing.iter().map(|c| format!("+{c}")).collect::<Vec<_>>();
        let control = base.join("cgroup.subtree_control");
        if files::write(&control, &request.join(" ")).is_err() {
            // Busy: processes in the base. Move this one out of the way and retry.
            let leaf = base.join(LEAF);
            let moved = std::fs::create_dir(&leaf)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })
                .and_then(|()| files::write(&leaf.join("cgroup.procs"), "0"));
            let retried = moved.and_then(|()| files::write(&control, &request.join(" ")));
            if let Err(e) = retried {
                notes.push(format!(
                    "cgroup v2: cannot give the {} controller(s) of `{}` to the runs ({e}); \
                     other processes share that cgroup (systemd: Delegate=yes gives the \
                     service a cgroup of its own)",
                    missing.join(" and "),
                    base.display()
                ));
            }
        }
    }
    let now = enabled();
    let given: Vec<&str> = wanted.into_iter().filter(|c| now.contains(*c)).collect();
    if given.is_empty() {
        return (false, false);
    }
    let request = given.iter().map(|c| format!("+{c}")).collect::<Vec<_>>();
    match files::write(&dir.join("cgroup.subtree_control"), &request.join(" ")) {
        Ok(()) => (given.contains(&"memory"), given.contains(&"pids")),
        Err(e) => {
            notes.push(format!(
                "cgroup v2: cannot enable {} for the runs in `{}` ({e})",
                given.join(" and "),
                dir.display()
            ));
            (false, false)
        }
    }
}

fn words(text: &str) -> BTreeSet<String> {
    text.split_whitespace().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_CGROUP: &str =
        "9:name=systemd:/\n8:pids:/\n6:freezer:/\n4:memory:/process_api/51db\n0::/\n";

    #[test]
    fn finds_the_hybrid_layout_of_a_v1_host_with_a_v2_mount() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
37 30 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:35 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let mounts: Vec<Mount<'_>> = mountinfo.lines().filter_map(Mount::parse).collect();
        assert_eq!(mounts.len(), 5, "every line parses");
        assert_eq!(
            mounts[1].options, "rw,memory",
            "super options name the controller"
        );
        assert_eq!(
            cgroup_path(HYBRID_CGROUP, Some("memory")),
            Some("/process_api/51db")
        );
        assert_eq!(cgroup_path(HYBRID_CGROUP, None), Some("/"));
        assert_eq!(cgroup_path(HYBRID_CGROUP, Some("cpu")), None);
    }

    #[test]
    fn a_container_mount_shows_only_the_cgroups_under_its_root() {
        let mount = Mount::parse(
            "40 30 0:35 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate",
        )
        .expect("parses");
        assert_eq!(mount.root, "/docker/abc");
        assert_eq!(mount.dir_of("/other"), None, "outside the mounted subtree");
        assert_eq!(
            mount.dir_of("/docker/abcdef"),
            None,
            "a sibling with a longer name"
        );
    }

    #[test]
    fn escaped_mount_points_are_unescaped() {
        assert_eq!(unescape(r"/mnt/with\040space"), "/mnt/with space");
        assert_eq!(unescape(r"/plain"), "/plain");
    }
}
