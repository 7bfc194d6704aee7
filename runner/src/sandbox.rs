//! Forking the script and its last steps before `exec`: made inside the run's
//! cgroup v2 (or joining it), signals reset, stdin from `/dev/null` and
//! stdout/stderr into pipes, its own process group and folder, the v1
//! cgroups, no core dumps, a PID namespace, the run user, no new privileges,
//! death with the runner, no inherited descriptor.
//!
//! This is the crate's only `unsafe` code. On x86_64 the child is made the way
//! `posix_spawn` makes one: it shares the runner's memory (`CLONE_VM`) on a
//! stack of its own while the spawning thread waits (`CLONE_VFORK`) until it
//! `exec`s or exits, so no copy of the runner's page tables is made (a fork of
//! a large, busy process costs milliseconds of CPU, and page faults in every
//! other thread after it). Elsewhere, or on kernels without `clone3`, it is a
//! fork. Either way other threads may hold locks (malloc's, say), so everything
//! here is prepared by the parent and the child makes system calls only: no
//! allocation, no lock, nothing that is not async-signal-safe, and it runs with
//! every signal blocked until it has put back the default handlers. A failed
//! step sends its name and `errno` back to the parent through a pipe that
//! `exec` closes, so a start failure can say what went wrong, and a start that
//! worked is known when that pipe ends.
//!
//! Why not `std`'s `Command`: it forks and then the child writes itself into
//! each cgroup, and moving a process between cgroups makes the kernel wait for
//! an RCU grace period (measured here: about 14 ms per Python run). Created
//! inside its cgroup v2 by `clone3(CLONE_INTO_CGROUP)`, the child moves nowhere.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;

mod image;
mod pidns;
mod steps;

pub(crate) use image::InitProgram;
pub(crate) use pidns::probe_pid_namespace;
use pidns::start_namespace_init;
use steps::{cloexec_from, switch_user};

use crate::setup::{ChildFailure, ChildSetup, Launch, REPORT_LEN, Step};

/// `clone3(2)` flag: create the child in the cgroup `CloneArgs::cgroup` names.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// The stack a child that shares the runner's memory runs on until `exec`
/// (its steps need a few KiB).
const CHILD_STACK: usize = 128 * 1024;
/// Signals are 1 to 64 on Linux.
const LAST_SIGNAL: c_int = 64;

/// `struct clone_args` of `clone3(2)`, up to `cgroup` (`CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// A started script: its pid (the leader of its own process group) and the
/// read ends of its stdout and stderr.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) pid: libc::pid_t,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

/// Why a script did not start.
#[derive(Debug)]
pub(crate) enum StartFailure {
    /// Before the fork: pipes, `/dev/null`, the fork itself.
    Prepare(io::Error),
    /// A step of the child, `exec` included.
    Child(ChildFailure),
}

/// The descriptors the child puts in place, all above 2 in the parent.
#[derive(Clone, Copy)]
struct ChildFds {
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    report: RawFd,
}

/// Forks the script (from the calling thread, whose exit its parent-death
/// signal follows), runs `setup` in it and `exec`s the program; returns once
/// the `exec` happened or a step failed (the child is then reaped).
pub(crate) fn start(launch: &Launch, setup: &ChildSetup) -> Result<Started, StartFailure> {
    let prepare = |e: Errno| StartFailure::Prepare(e.into());
    let (out_read, out_write) = pipe().map_err(prepare)?;
    let (err_read, err_write) = pipe().map_err(prepare)?;
    let (report_read, report_write) = pipe().map_err(prepare)?;
    let null = nix::fcntl::open(
        c"/dev/null",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .and_then(above_stdio)
    .map_err(prepare)?;
    let argv = pointers(&launch.argv);
    let envp = pointers(&launch.env);
    let fds = ChildFds {
        stdin: null.as_raw_fd(),
        stdout: out_write.as_raw_fd(),
        stderr: err_write.as_raw_fd(),
        report: report_write.as_raw_fd(),
    };
    let mut args = ChildArgs {
        launch,
        argv: &argv,
        envp: &envp,
        setup,
        fds,
        inside: false,
    };
    let mut stack = vec![0u8; CHILD_STACK];
    let forked = with_signals_blocked(|| fork(setup, &mut args, &mut stack));
    let (pid, inside) = forked.map_err(prepare)?;
    if pid == 0 {
        child(launch, &argv, &envp, setup, &fds, inside);
    }
    drop((out_write, err_write, report_write, null));
    let mut report = [0u8; REPORT_LEN];
    let read = loop {
        match nix::unistd::read(&report_read, &mut report) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    if let Ok(0) = read {
        return Ok(Started {
            pid,
            stdout: out_read,
            stderr: err_read,
        });
    }
    // The child failed before `exec` and exits: reap it.
    let mut status = 0;
    // SAFETY: waitpid(2) on our own child with a live int.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 && Errno::last() == Errno::EINTR {}
    Err(match read {
        Ok(REPORT_LEN) => StartFailure::Child(ChildFailure::decode(report)),
        Ok(_) => StartFailure::Prepare(io::Error::other("the child's start report was cut short")),
        Err(e) => StartFailure::Prepare(e.into()),
    })
}

/// A close-on-exec pipe, both ends above 2.
fn pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    Ok((above_stdio(read)?, above_stdio(write)?))
}

/// The same descriptor numbered 3 or more: in a runner started with 0, 1 or 2
/// closed, a new descriptor could take that number and be overwritten when
/// the child puts its stdio in place.
fn above_stdio(fd: OwnedFd) -> nix::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) returned a new descriptor we now own.
        .map(|raw| unsafe { OwnedFd::from_raw_fd(raw) })
}

/// NULL-terminated pointers to `strings`, which must outlive them.
fn pointers(strings: &[std::ffi::CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// What the child needs, for a child that starts in [`child_entry`].
struct ChildArgs<'a> {
    launch: &'a Launch,
    argv: &'a [*const c_char],
    envp: &'a [*const c_char],
    setup: &'a ChildSetup,
    fds: ChildFds,
    /// Set before each try: whether the child is made inside its cgroup.
    inside: bool,
}

/// Runs `f` with every signal blocked in this thread (a child that shares
/// the memory must not run the runner's handlers before it has reset them).
fn with_signals_blocked<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: sigfillset(3)/pthread_sigmask(3) on live sigset_t values.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let out = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        out
    }
}

/// Starts the child: on x86_64 one that shares this memory until its `exec`
/// (see the module documentation), else a fork; into the run's cgroup v2
/// folder where there is one and the kernel can (Linux 5.7). Returns the pid
/// (0 in a forked child, which then goes on from the caller) and whether the
/// child was made inside that cgroup.
fn fork(
    setup: &ChildSetup,
    args: &mut ChildArgs<'_>,
    stack: &mut [u8],
) -> nix::Result<(libc::pid_t, bool)> {
    #[cfg(target_arch = "x86_64")]
    {
        let cgroups: &[Option<RawFd>] = match &setup.unified {
            Some(unified) => &[Some(unified.dir.as_raw_fd()), None],
            None => &[None],
        };
        for cgroup in cgroups.iter().copied() {
            args.inside = cgroup.is_some();
            match clone_shared(cgroup, args, stack) {
                Ok(pid) => return Ok((pid, args.inside)),
                // No clone3 (Linux < 5.3): fork.
                Err(Errno::ENOSYS) => break,
                // No CLONE_INTO_CGROUP (< 5.7), or a cgroup that cannot
                // take a new process this way: the child joins it instead.
                Err(Errno::E2BIG | Errno::EINVAL | Errno::EOPNOTSUPP | Errno::EBUSY)
                    if cgroup.is_some() => {}
                Err(e) => return Err(e),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (&args, &stack);
    if let Some(unified) = &setup.unified {
        let mut args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: unified.dir.as_raw_fd() as u64,
            ..CloneArgs::default()
        };
        // SAFETY: clone3(2) without CLONE_VM is a fork: the child gets a copy
        // of this thread's memory and stack and returns here with 0; `args`
        // is a live struct of the size passed.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &mut args as *mut CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if pid >= 0 {
            return Ok((pid as libc::pid_t, true));
        }
        match Errno::last() {
            // No clone3 (Linux < 5.3), no CLONE_INTO_CGROUP (< 5.7), or a
            // cgroup that cannot take a new process this way: join it instead.
            Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL | Errno::EOPNOTSUPP | Errno::EBUSY => {}
            other => return Err(other),
        }
    }
    // SAFETY: clone(2) with only SIGCHLD is fork(2) without the C library's
    // fork handlers (the child runs no library code that needs them).
    let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) };
    if pid < 0 {
        return Err(Errno::last());
    }
    Ok((pid as libc::pid_t, false))
}

/// `clone3(CLONE_VM | CLONE_VFORK)`: a child on `stack` that shares this
/// memory runs [`child_entry`] with `args`; returns once it has `exec`ed or
/// exited. `cgroup`: the cgroup v2 folder to make it in.
#[cfg(target_arch = "x86_64")]
fn clone_shared(
    cgroup: Option<RawFd>,
    args: &ChildArgs<'_>,
    stack: &mut [u8],
) -> nix::Result<libc::pid_t> {
    // The stack's top, 16-byte aligned: the child's stack pointer.
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    let base = stack.as_mut_ptr() as usize;
    let mut clone = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64
            | cgroup.map_or(0, |_| CLONE_INTO_CGROUP),
        exit_signal: libc::SIGCHLD as u64,
        stack: base as u64,
        stack_size: (top - base) as u64,
        cgroup: cgroup.map_or(0, |fd| fd as u64),
        ..CloneArgs::default()
    };
    let entry: extern "C" fn(*const c_void) -> ! = child_entry;
    let arg = (args as *const ChildArgs<'_>).cast::<c_void>();
    let ret: i64;
    // SAFETY: clone3(2) with a live struct of the size passed. In the child
    // (rax 0) the kernel has switched to the top of `stack`, which this
    // thread keeps (it is suspended until the child `exec`s or exits); the
    // child calls `child_entry(arg)`, which never returns. rcx and r11 are
    // clobbered by `syscall`; r12 and r13 carry the entry and its argument.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") &mut clone as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") arg,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        return Err(Errno::from_raw(-ret as i32));
    }
    Ok(ret as libc::pid_t)
}

/// Where a child that shares the memory starts: [`child`], with the
/// arguments the spawning thread holds while it waits.
#[cfg(target_arch = "x86_64")]
extern "C" fn child_entry(arg: *const c_void) -> ! {
    // SAFETY: `arg` is the ChildArgs of `clone_shared`'s caller, which is
    // suspended (CLONE_VFORK) and keeps it until this child `exec`s or exits.
    let a = unsafe { &*arg.cast::<ChildArgs<'_>>() };
    child(a.launch, a.argv, a.envp, a.setup, &a.fds, a.inside)
}

/// Writes the failed step and `errno` on the report pipe and exits.
fn fail(report: RawFd, step: Step) -> ! {
    let errno = Errno::last_raw().to_ne_bytes();
    let message = [step as u8, errno[0], errno[1], errno[2], errno[3]];
    // SAFETY: write(2) of a live buffer on the pipe's write end, then
    // _exit(2); both async-signal-safe.
    unsafe {
        libc::write(report, message.as_ptr().cast(), REPORT_LEN);
        libc::_exit(127)
    }
}

/// The child, from the fork to `exec`: never returns.
fn child(
    launch: &Launch,
    argv: &[*const c_char],
    envp: &[*const c_char],
    setup: &ChildSetup,
    fds: &ChildFds,
    inside: bool,
) -> ! {
    let report = fds.report;
    // SAFETY: each call below is a system call (or a thin C wrapper of one)
    // on values the parent prepared and this memory holds; all are
    // async-signal-safe. Descriptors were made above 2, so `dup2` onto 0, 1
    // and 2 overwrites none of them.
    unsafe {
        // Every signal is blocked (see `with_signals_blocked`): the runner's
        // handlers go before any can run here; ignored ones stay ignored.
        for signal in 1..=LAST_SIGNAL {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) == 0
                && current.sa_sigaction != libc::SIG_IGN
                && current.sa_sigaction != libc::SIG_DFL
            {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        // A signal mask and ignored signals are inherited across `exec`; the
        // Rust runtime ignores SIGPIPE.
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        if libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0
            || libc::signal(libc::SIGPIPE, libc::SIG_DFL) == libc::SIG_ERR
        {
            fail(report, Step::Signals);
        }
        if libc::dup2(fds.stdin, 0) < 0
            || libc::dup2(fds.stdout, 1) < 0
            || libc::dup2(fds.stderr, 2) < 0
        {
            fail(report, Step::Stdio);
        }
        if libc::setpgid(0, 0) != 0 {
            fail(report, Step::ProcessGroup);
        }
        if libc::chdir(launch.cwd.as_ptr()) != 0 {
            fail(report, Step::WorkingDir);
        }
    }
    if let Err(step) = in_child(setup, inside) {
        fail(report, step);
    }
    // SAFETY: execve(2) with NUL-terminated strings and NULL-terminated
    // arrays that live until it returns (it returns only on failure).
    unsafe { libc::execve(launch.program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    fail(report, Step::Exec)
}

/// The child's steps, in an order that matters: privileged ones (cgroups,
/// namespace) before the user switch; the parent-death signal after it (a
/// credential change clears it); descriptors last.
fn in_child(setup: &ChildSetup, inside: bool) -> Result<(), Step> {
    let unified = setup.unified.as_ref().filter(|_| !inside).map(|u| &u.procs);
    for handle in unified.into_iter().chain(&setup.join) {
        // SAFETY: a descriptor the parent opened; a two-byte static buffer.
        // Writing `0` moves the writing process.
        if unsafe { libc::write(handle.as_raw_fd(), c"0".as_ptr().cast(), 1) } != 1 {
            return Err(Step::JoinCgroup);
        }
    }
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit(2) with a live struct; async-signal-safe.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) } != 0 {
        return Err(Step::CoreLimit);
    }
    // SAFETY: unshare(2) with a flag; it only affects this (single-threaded)
    // child: the processes it starts from now on go into the new namespace.
    if setup.pid_namespace.is_some() && unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        return Err(Step::PidNamespace);
    }
    if let Some(creds) = &setup.credentials {
        switch_user(creds)?;
        // SAFETY: chdir(2) with a NUL-terminated path the parent prepared.
        if unsafe { libc::chdir(setup.run_dir.as_ptr()) } != 0 {
            return Err(Step::RunFolder);
        }
    }
    // SAFETY: prctl(2) with integer arguments, as documented for this option.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(Step::NoNewPrivileges);
    }
    // SAFETY: as above. The signal comes when the thread that forked this
    // child exits: the runner's spawner thread, which lives as long as the runner.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(Step::ParentDeathSignal);
    }
    // SAFETY: getppid(2) takes nothing and cannot fail.
    if unsafe { libc::getppid() } != setup.runner_pid {
        // SAFETY: errno is this thread's; set so the error says why.
        unsafe { *libc::__errno_location() = libc::ESRCH };
        return Err(Step::RunnerGone);
    }
    // SAFETY: prctl(2) with integer arguments.
    if setup.subreaper && unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(Step::Subreaper);
    }
    if let Some(init) = &setup.pid_namespace {
        start_namespace_init(init).map_err(|()| Step::NamespaceInit)?;
    }
    if !cloexec_from(3) {
        return Err(Step::Descriptors);
    }
    Ok(())
}
