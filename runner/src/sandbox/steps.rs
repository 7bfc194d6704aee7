//! Two steps of the child before `exec`, with raw system calls only (see
//! the parent module): the switch to the run user, and no descriptor
//! inherited but 0, 1 and 2.

use std::ffi::c_int;

use crate::setup::{Credentials, Step};

/// `close_range(2)` flag: mark the range close-on-exec instead of closing it.
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
/// Descriptors looked at one by one where `close_range` is missing (Linux < 5.11).
pub(super) const FD_SCAN_LIMIT: c_int = 1 << 16;

/// Groups, then group, then user (the order in which each is still allowed),
/// with raw system calls: glibc's wrappers would try to tell the parent's
/// other threads, which do not exist in the child. Returns the failed step.
pub(super) fn switch_user(creds: &Credentials) -> Result<(), Step> {
    // SAFETY: setgroups(2) with the length and pointer of a live Vec the
    // closure owns; setresgid(2)/setresuid(2) with plain integers.
    unsafe {
        if libc::syscall(
            libc::SYS_setgroups,
            creds.groups.len(),
            creds.groups.as_ptr(),
        ) != 0
        {
            return Err(Step::Groups);
        }
        if libc::syscall(libc::SYS_setresgid, creds.gid, creds.gid, creds.gid) != 0 {
            return Err(Step::Group);
        }
        if libc::syscall(libc::SYS_setresuid, creds.uid, creds.uid, creds.uid) != 0 {
            return Err(Step::User);
        }
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec, so the script gets
/// only 0, 1 and 2 whatever the runner's process inherited or opened.
pub(super) fn cloexec_from(first: c_int) -> bool {
    // SAFETY: close_range(2) with integer arguments; on Linux < 5.11 it fails
    // and each descriptor gets fcntl(2) instead (EBADF for closed ones is fine).
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        ) == 0
        {
            return true;
        }
        for fd in first..FD_SCAN_LIMIT {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) != 0 {
                return false;
            }
        }
    }
    true
}
