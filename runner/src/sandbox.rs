//! The child's last steps before it becomes the script, run between `fork`
//! and `exec`: join the run's cgroups, no core dumps, a PID namespace, the run
//! user, no new privileges, death with the runner, no inherited descriptor.
//!
//! This is the crate's only `unsafe` code. The child is a copy of a
//! multi-threaded process in which another thread may have held a lock (malloc's,
//! say) at the fork, so everything here is prepared by the parent and the
//! child makes system calls only: no allocation, no lock, nothing that is not
//! async-signal-safe. Errors carry the step that failed back to the parent
//! through a pipe, one byte, so a start failure can say what went wrong.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;

use nix::fcntl::OFlag;

use crate::setup::{ChildSetup, Credentials, NamespaceInit, Step, StepReport};

/// `close_range(2)` flag: mark the range close-on-exec instead of closing it
/// (the pipe through which `std` reports a failed `exec` stays usable).
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
/// Descriptors looked at one by one where `close_range` is missing (Linux < 5.11).
const FD_SCAN_LIMIT: c_int = 1 << 16;
/// How the namespace's init shows in `ps`.
const INIT_NAME: &CStr = c"execgov-pidns-init";
/// Its argument: a sleep that outlasts any run (it dies with the script).
const INIT_SLEEP: &CStr = c"2147483647";

/// Makes `cmd` run [`ChildSetup`] in the child before `exec`.
pub(crate) fn install(
    cmd: &mut tokio::process::Command,
    setup: ChildSetup,
) -> io::Result<StepReport> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    // SAFETY: the closure runs in the forked child, before `exec`. It only
    // reads what the parent prepared (`setup`, owned by the closure) and makes
    // async-signal-safe system calls (see `in_child`); it allocates nothing
    // and takes no lock.
    unsafe {
        cmd.pre_exec(move || in_child(&setup, write.as_raw_fd()));
    }
    Ok(StepReport::new(read))
}

/// The child's steps, in an order that matters: privileged ones (cgroups,
/// namespace) before the user switch; the parent-death signal after it (a
/// credential change clears it); descriptors last.
fn in_child(setup: &ChildSetup, report: RawFd) -> io::Result<()> {
    let fail = |step: Step| -> io::Error {
        let error = io::Error::last_os_error();
        let byte = [step as u8];
        // SAFETY: `report` is the pipe's write end, open until `exec`; `byte` is
        // a live one-byte buffer. write(2) is async-signal-safe.
        unsafe { libc::write(report, byte.as_ptr().cast(), 1) };
        error
    };
    for handle in &setup.join {
        // SAFETY: a descriptor the parent opened and the closure owns; a
        // two-byte static buffer. Writing `0` moves the writing process.
        if unsafe { libc::write(handle.as_raw_fd(), c"0".as_ptr().cast(), 1) } != 1 {
            return Err(fail(Step::JoinCgroup));
        }
    }
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit(2) with a live struct; async-signal-safe.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) } != 0 {
        return Err(fail(Step::CoreLimit));
    }
    // SAFETY: unshare(2) with a flag; it only affects this (single-threaded)
    // child: the processes it starts from now on go into the new namespace.
    if setup.pid_namespace.is_some() && unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        return Err(fail(Step::PidNamespace));
    }
    if let Some(creds) = &setup.credentials {
        switch_user(creds).map_err(fail)?;
        // SAFETY: chdir(2) with a NUL-terminated path the closure owns.
        if unsafe { libc::chdir(setup.run_dir.as_ptr()) } != 0 {
            return Err(fail(Step::RunFolder));
        }
    }
    // SAFETY: prctl(2) with integer arguments, as documented for this option.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(fail(Step::NoNewPrivileges));
    }
    // SAFETY: as above. The signal comes when the thread that forked this
    // child exits: the runner's spawner thread, which lives as long as the runner.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(fail(Step::ParentDeathSignal));
    }
    // SAFETY: getppid(2) takes nothing and cannot fail.
    if unsafe { libc::getppid() } != setup.runner_pid {
        // SAFETY: errno is this thread's; set so the error says why.
        unsafe { *libc::__errno_location() = libc::ESRCH };
        return Err(fail(Step::RunnerGone));
    }
    // SAFETY: prctl(2) with integer arguments.
    if setup.subreaper && unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(fail(Step::Subreaper));
    }
    if let Some(init) = &setup.pid_namespace {
        start_namespace_init(init).map_err(|()| fail(Step::NamespaceInit))?;
    }
    if !cloexec_from(3) {
        return Err(fail(Step::Descriptors));
    }
    Ok(())
}

/// Groups, then group, then user (the order in which each is still allowed),
/// with raw system calls: glibc's wrappers would try to tell the parent's
/// other threads, which do not exist in the child. Returns the failed step.
fn switch_user(creds: &Credentials) -> Result<(), Step> {
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

/// Starts the init of the PID namespace `unshare` made: the first process in
/// it, so its pid 1. It dies with this child (the script) by its parent-death
/// signal, and the kernel then kills every process left in the namespace,
/// `setsid()` or not. Made the way `posix_spawn` makes a child: a clone that
/// shares this child's memory (no copy of it) on a stack of its own, until it
/// `exec`s `sleep`. This child does not wait for that (a wait costs a
/// scheduler round trip, milliseconds on a busy host): the memory the init
/// reads, `init` and its stack, stays as it is until this child `exec`s, and
/// after that the init alone holds the old memory until its own `exec`.
fn start_namespace_init(init: &NamespaceInit) -> Result<(), ()> {
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
            libc::CLONE_VM | libc::SIGCHLD,
            (init as *const NamespaceInit).cast_mut().cast(),
        )
    };
    if script >= 0 {
        // SAFETY: the descriptor pidfd_open returned above; the init has a
        // copy of its own (no CLONE_FILES).
        unsafe { libc::close(script) };
    }
    if pid < 0 { Err(()) } else { Ok(()) }
}

/// The namespace's init until its `exec`: dies when the script does
/// (parent-death signal, kept across `exec`), holds no descriptor (so it never
/// keeps the script's output pipes open), reaps orphans without waiting
/// (SIGCHLD ignored, kept across `exec`; handlers are reset by `exec`), then
/// becomes `sleep`. It shares the child's memory, thread-local `errno`
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
        if libc::syscall(libc::SYS_close_range, 0, libc::c_uint::MAX, 0) != 0 {
            for fd in 0..FD_SCAN_LIMIT {
                libc::close(fd);
            }
        }
        let mut ignore: libc::sigaction = std::mem::zeroed();
        ignore.sa_sigaction = libc::SIG_IGN;
        libc::sigaction(libc::SIGCHLD, &ignore, std::ptr::null_mut());
        let argv: [*const c_char; 3] = [INIT_NAME.as_ptr(), INIT_SLEEP.as_ptr(), std::ptr::null()];
        let no_env: [*const c_char; 1] = [std::ptr::null()];
        libc::execve(init.sleep.as_ptr(), argv.as_ptr(), no_env.as_ptr());
        // No `sleep` after all: stay as the init, holding the old memory.
        loop {
            libc::pause();
        }
    }
}

/// Marks every descriptor from `first` up close-on-exec, so the script gets
/// only 0, 1 and 2 whatever the runner's process inherited or opened.
fn cloexec_from(first: c_int) -> bool {
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
