//! The PID namespace of a run: its init, started by the child before `exec`
//! (system calls only, see the parent module), and the probe that says whether
//! this host lets the runner make namespaces.

use std::ffi::{c_char, c_int, c_void};
use std::io;
use std::sync::atomic::Ordering;

use super::image::{INIT_NAME, INIT_SLEEP, exec_image};
use super::steps::FD_SCAN_LIMIT;
use crate::setup::NamespaceInit;

/// Starts the init of the PID namespace `unshare` made: the first process in
/// it, so its pid 1. It dies with this child (the script) by its parent-death
/// signal, and the kernel then kills every process left in the namespace,
/// `setsid()` or not. Made the way `posix_spawn` makes a child: a clone that
/// shares this child's memory (no copy of it) on a stack of its own; this
/// child waits (`CLONE_VFORK`) until it has `exec`ed its program, since that
/// memory may be the runner's own, which goes on once this child `exec`s.
pub(super) fn start_namespace_init(init: &NamespaceInit) -> Result<(), ()> {
    // SAFETY: getpid(2) and pidfd_open(2) take integers; a failed pidfd_open
    // (Linux < 5.3) returns -1 and only skips a check in the init.
    let script = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) } as c_int;
    init.script.store(script, Ordering::Relaxed);
    // The stack grows down from the end of the buffer, 16-byte aligned.
    let top = (init.stack.as_ptr() as usize + init.stack.len()) & !15;
    // SAFETY: `top` is the aligned end of a buffer of INIT_STACK bytes owned by
    // `init`, which this child keeps (unchanged) until its `exec`, and which
    // the init's shared copy of the memory keeps after that. The init only
    // makes async-signal-safe system calls (see `namespace_init`).
    let pid = unsafe {
        libc::clone(
            namespace_init,
            top as *mut c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (init as *const NamespaceInit).cast_mut().cast(),
        )
    };
    if script >= 0 {
        // SAFETY: the descriptor pidfd_open returned above; the init has a
        // copy of its own (no CLONE_FILES).
        unsafe { libc::close(script) };
    }
    if pid < 0 {
        return Err(());
    }
    // The init `exec`ed or exited; exited means no `sleep` to run.
    let mut status = 0;
    // SAFETY: waitpid(2) on this child's own child, without waiting.
    if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
        // SAFETY: errno is this thread's; set so the error says why.
        unsafe { *libc::__errno_location() = libc::ENOEXEC };
        return Err(());
    }
    Ok(())
}

/// The namespace's init until its `exec`: dies when the script does
/// (parent-death signal, kept across `exec`), holds no descriptor (so it never
/// keeps the script's output pipes open), reaps orphans without waiting
/// (SIGCHLD ignored, kept across `exec`; handlers are reset by `exec`), then
/// becomes its program (see `image`), or exits if it cannot. It shares the child's memory, thread-local `errno`
/// included, so it makes no call expected to fail before `execve`.
extern "C" fn namespace_init(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the child's NamespaceInit (see `start_namespace_init`);
    // only async-signal-safe system calls follow, then execve(2), or pause(2)
    // for ever if that fails.
    unsafe {
        let init = &*(arg as *const NamespaceInit);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        let script = init.script.load(Ordering::Relaxed);
        if script >= 0 {
            // The script may have died before the signal above was set.
            let mut poll = libc::pollfd {
                fd: script,
                events: libc::POLLIN,
                revents: 0,
            };
            if libc::poll(&mut poll, 1, 0) > 0 {
                libc::_exit(0);
            }
        }
        close_all_but(init.image);
        let mut ignore: libc::sigaction = std::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        libc::sigaction(libc::SIGCHLD, &ignore, std::ptr::null_mut());
        let argv: [*const c_char; 3] = [INIT_NAME.as_ptr(), INIT_SLEEP.as_ptr(), std::ptr::null()];
        let no_env: [*const c_char; 1] = [std::ptr::null()];
        match &init.sleep {
            // The memfd is close-on-exec: gone once the image runs.
            None => exec_image(init.image, argv.as_ptr(), no_env.as_ptr()),
            Some(sleep) => {
                libc::execve(sleep.as_ptr(), argv.as_ptr(), no_env.as_ptr());
            }
        }
        // No program after all: the script's start fails (see above).
        libc::_exit(127)
    }
}

/// Closes every descriptor but `keep` (-1: none), so the init never keeps the
/// script's output pipes open. System calls only.
unsafe fn close_all_but(keep: c_int) {
    let max = libc::c_uint::MAX;
    // SAFETY: close_range(2) and close(2) with integers.
    unsafe {
        let done = if keep < 0 {
            libc::syscall(libc::SYS_close_range, 0, max, 0) == 0
        } else {
            (keep == 0 || libc::syscall(libc::SYS_close_range, 0, keep - 1, 0) == 0)
                && libc::syscall(libc::SYS_close_range, keep + 1, max, 0) == 0
        };
        if !done {
            for fd in (0..FD_SCAN_LIMIT).filter(|fd| *fd != keep) {
                libc::close(fd);
            }
        }
    }
}

/// Whether this process may make PID namespaces: a child tries and exits
/// before `exec`. Needs CAP_SYS_ADMIN (root), and is refused in many containers.
pub(crate) fn probe_pid_namespace() -> io::Result<()> {
    let mut cmd = std::process::Command::new("/");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: runs in the forked child before `exec`: unshare(2) and _exit(2),
    // both async-signal-safe; the child never reaches `exec`.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            if libc::unshare(libc::CLONE_NEWPID) != 0 {
                return Err(io::Error::last_os_error());
            }
            libc::_exit(0)
        });
    }
    let status = cmd.spawn()?.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("the probe ended with {status}")))
    }
}
