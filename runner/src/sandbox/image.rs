//! What a run's PID namespace init `exec`s. The init only has to exist
//! (its death ends the namespace) and reap orphans (SIGCHLD ignored does that),
//! so on x86_64 it is a static executable of 129 bytes built here, kept in a
//! sealed memfd and `exec`ed from it: no file on disk, no dynamic loader.
//! Against `/bin/sleep` that saves about 0.6 ms of CPU per run, and as much of
//! the start (the runner's `overhead` bench, docs/benchmarks.md). Elsewhere, or
//! where memfds may not be executed (`vm.memfd_noexec`), the host's `sleep`.

use std::ffi::{CString, c_char};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// How the namespace's init shows in `ps`.
pub(super) const INIT_NAME: &std::ffi::CStr = c"execgov-pidns-init";
/// `sleep`'s argument: a sleep that outlasts any run (it dies with the script).
pub(super) const INIT_SLEEP: &std::ffi::CStr = c"2147483647";

/// The init's program, found once per process.
#[derive(Debug, Clone)]
pub(crate) enum InitProgram {
    /// The built image in a sealed memfd (close-on-exec), run with `execveat`.
    Image(Arc<OwnedFd>),
    /// A `sleep` binary, run with `execve`.
    Binary(CString),
}

impl InitProgram {
    /// The image where it can be made and run, else `sleep`.
    pub(crate) fn find(sleep: impl FnOnce() -> Result<CString, String>) -> Result<Self, String> {
        match built_image() {
            Ok(fd) => Ok(InitProgram::Image(Arc::new(fd))),
            Err(why) => {
                tracing::debug!("PID namespace init: {why}; using sleep");
                sleep().map(InitProgram::Binary)
            }
        }
    }

    /// The memfd to `execveat`, or -1 for the binary.
    pub(crate) fn image_fd(&self) -> RawFd {
        match self {
            InitProgram::Image(fd) => fd.as_raw_fd(),
            InitProgram::Binary(_) => -1,
        }
    }

    pub(crate) fn binary(&self) -> Option<&CString> {
        match self {
            InitProgram::Image(_) => None,
            InitProgram::Binary(path) => Some(path),
        }
    }
}

/// Load address of the image.
#[cfg(target_arch = "x86_64")]
const BASE: u64 = 0x40_0000;
/// Size of the ELF header.
#[cfg(target_arch = "x86_64")]
const EHDR: usize = 64;
/// Size of one program header.
#[cfg(target_arch = "x86_64")]
const PHDR: usize = 56;
/// `pause(2)` for ever: `mov eax, 34; syscall; jmp` back to the `mov`.
#[cfg(target_arch = "x86_64")]
const CODE: [u8; 9] = [0xb8, 34, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7];

/// The image: an ELF header, one loadable read-and-execute segment that is
/// the whole file, and the code after the headers.
#[cfg(target_arch = "x86_64")]
pub(crate) fn image() -> Vec<u8> {
    let size = (EHDR + PHDR + CODE.len()) as u64;
    let mut b = Vec::with_capacity(size as usize);
    b.extend_from_slice(b"\x7fELF");
    b.extend_from_slice(&[2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // 64-bit, LE, v1, System V
    b.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    b.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    b.extend_from_slice(&(BASE + (EHDR + PHDR) as u64).to_le_bytes()); // entry
    b.extend_from_slice(&(EHDR as u64).to_le_bytes()); // program headers' offset
    b.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    b.extend_from_slice(&0u32.to_le_bytes()); // flags
    b.extend_from_slice(&(EHDR as u16).to_le_bytes());
    b.extend_from_slice(&(PHDR as u16).to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // one program header
    b.extend_from_slice(&[0; 6]); // section header size, count, names' index
    b.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    b.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    b.extend_from_slice(&0u64.to_le_bytes()); // from the file's start
    b.extend_from_slice(&BASE.to_le_bytes()); // virtual address
    b.extend_from_slice(&BASE.to_le_bytes()); // physical address
    b.extend_from_slice(&size.to_le_bytes()); // in the file
    b.extend_from_slice(&size.to_le_bytes()); // in memory
    b.extend_from_slice(&0x1000u64.to_le_bytes()); // alignment
    b.extend_from_slice(&CODE);
    debug_assert_eq!(b.len() as u64, size);
    b
}

/// No image for this architecture.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn image() -> Vec<u8> {
    Vec::new()
}

/// The image in a sealed, close-on-exec memfd, once it has been seen to run.
fn built_image() -> Result<OwnedFd, String> {
    let image = image();
    if image.is_empty() {
        return Err(format!("no built image for {}", std::env::consts::ARCH));
    }
    let fd = memfd().map_err(|e| format!("memfd_create: {e}"))?;
    let mut file = File::from(fd);
    file.write_all(&image)
        .map_err(|e| format!("writing the image: {e}"))?;
    let fd = OwnedFd::from(file);
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl(2) on a descriptor this function owns, integer arguments.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(format!("sealing: {}", io::Error::last_os_error()));
    }
    try_run(fd.as_raw_fd()).map_err(|e| format!("running the image: {e}"))?;
    Ok(fd)
}

/// `memfd_create` that may be executed: `MFD_EXEC` where the kernel knows it
/// (6.3 and later, where `vm.memfd_noexec` may otherwise refuse).
fn memfd() -> io::Result<OwnedFd> {
    const MFD_EXEC: libc::c_uint = 0x10;
    let name = c"execgov-pidns-init";
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    for flags in [base | MFD_EXEC, base] {
        // SAFETY: memfd_create(2) with a NUL-terminated name and flags.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
        if fd >= 0 {
            // SAFETY: a new descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    Err(io::Error::from_raw_os_error(libc::EINVAL))
}

/// `execveat` of the memfd, the way the init does it.
///
/// # Safety
/// Async-signal-safe: one system call with pointers that live until it
/// returns (only on failure).
pub(super) unsafe fn exec_image(fd: RawFd, argv: *const *const c_char, envp: *const *const c_char) {
    // SAFETY: as the function's contract says.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            argv,
            envp,
            libc::AT_EMPTY_PATH,
        )
    };
}

/// Starts the image once in a child (which then pauses) and kills it: an
/// `exec` refused here (a `noexec` policy, say) is found now, not per run.
fn try_run(fd: RawFd) -> io::Result<()> {
    let mut child = spawn_image(fd)?;
    child.kill()?;
    let status = child.wait()?;
    use std::os::unix::process::ExitStatusExt;
    if status.signal() == Some(libc::SIGKILL) {
        Ok(())
    } else {
        Err(io::Error::other(format!("it ended with {status}")))
    }
}

/// A child that `exec`ed the image; `spawn` returns once it has.
fn spawn_image(fd: RawFd) -> io::Result<std::process::Child> {
    let mut cmd = std::process::Command::new("/");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: in the forked child before `exec`: execveat(2) with static
    // strings, then, only if it failed, an error that std sends the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            let argv: [*const c_char; 2] = [INIT_NAME.as_ptr(), std::ptr::null()];
            let no_env: [*const c_char; 1] = [std::ptr::null()];
            exec_image(fd, argv.as_ptr(), no_env.as_ptr());
            Err(io::Error::last_os_error())
        });
    }
    cmd.spawn()
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn the_image_runs_and_pauses_until_killed() {
        let fd = built_image().expect("the image runs on x86_64 Linux");
        assert_eq!(image().len(), 129);
        let mut child = spawn_image(fd.as_raw_fd()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the init keeps running"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        // Sealed: it cannot be changed under a running init.
        let mut file = File::from(fd);
        assert!(file.write_all(b"x").is_err());
    }
}
