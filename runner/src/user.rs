//! The OS user scripts run as when the runner is root: looked up once when the
//! runner starts; each run folder is handed to it for the run and taken back
//! after, so a later run (same user) cannot change an earlier run's files.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{Gid, User, getgrouplist};

/// A user scripts run as: its ids and supplementary groups, as the system
/// database says when the runner starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, the primary one included.
    pub groups: Vec<u32>,
}

/// Why a run user cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(
        "no user `{name}` on this host; create it with `useradd --system --no-create-home {name}`"
    )]
    Unknown { name: String },
    #[error(
        "`{name}` is uid 0: scripts would keep every privilege; name an unprivileged user \
         (e.g. one made with `useradd --system --no-create-home execgov-run`)"
    )]
    Root { name: String },
    #[error("looking up user `{name}`: {source}")]
    Lookup {
        name: String,
        #[source]
        source: nix::Error,
    },
}

impl RunUser {
    /// Looks `name` up in the system's user database.
    pub fn lookup(name: &str) -> Result<RunUser, UserError> {
        let lookup = |source| UserError::Lookup {
            name: name.to_string(),
            source,
        };
        let user = User::from_name(name)
            .map_err(lookup)?
            .ok_or_else(|| UserError::Unknown {
                name: name.to_string(),
            })?;
        if user.uid.is_root() {
            return Err(UserError::Root {
                name: name.to_string(),
            });
        }
        let cname = CString::new(name).map_err(|_| UserError::Unknown {
            name: name.to_string(),
        })?;
        let mut groups: Vec<u32> = getgrouplist(&cname, user.gid)
            .map_err(lookup)?
            .into_iter()
            .map(Gid::as_raw)
            .collect();
        groups.sort_unstable();
        groups.dedup();
        Ok(RunUser {
            name: name.to_string(),
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            groups,
        })
    }

    /// Whether this user may search (enter) a folder with `meta`.
    fn may_enter(&self, meta: &std::fs::Metadata) -> bool {
        let mode = meta.permissions().mode();
        if meta.uid() == self.uid {
            mode & 0o100 != 0
        } else if self.groups.contains(&meta.gid()) || meta.gid() == self.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    }

    /// Says which folder on the way to `dir` the user cannot enter, if any:
    /// the script's `HOME` and output paths are absolute, so it needs every one.
    pub(crate) fn check_reachable(&self, dir: &Path) -> Result<(), String> {
        let mut ancestors: Vec<&Path> = dir.ancestors().skip(1).collect();
        ancestors.reverse();
        for folder in ancestors {
            let meta = std::fs::metadata(folder)
                .map_err(|e| format!("cannot read `{}`: {e}", folder.display()))?;
            if !self.may_enter(&meta) {
                return Err(format!(
                    "user `{}` cannot enter `{}` (mode {:o}, owner uid {}) on the way to the run \
                     folder `{}`; run folders must be where that user can reach them",
                    self.name,
                    folder.display(),
                    meta.permissions().mode() & 0o7777,
                    meta.uid(),
                    dir.display()
                ));
            }
        }
        Ok(())
    }

    /// Gives `dir` to the user for the run (only it can read or write there).
    pub(crate) fn hand_over(&self, dir: &Path) -> io::Result<()> {
        std::os::unix::fs::lchown(dir, Some(self.uid), Some(self.gid))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
}

/// Takes the run folder back after the run: every entry becomes the runner's
/// (symlinks themselves, never what they point at), so the run user can no
/// longer change what the run left. Returns the entries that could not be changed.
pub(crate) fn take_back(dir: &Path) -> usize {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let mut failed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).is_err() {
            failed += 1;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            stack.extend(entries.filter_map(Result::ok).map(|e| e.path()));
        }
    }
    failed
}
