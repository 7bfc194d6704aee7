//! The child inherits nothing of the runner beyond what is documented: no
//! descriptor above 2 (even one the runner's process holds without
//! close-on-exec), no variable beyond `child_env`, no new privileges, no core
//! dumps. Checked from inside the script, in `/proc/self`.

use super::*;

/// Lists the script's descriptors, environment, no_new_privs and core limit,
/// each section after a `---` line. (`ls` holds one descriptor of its own: the
/// `/proc/self/fd` folder it lists.)
const PROBE: &str = "ls -l /proc/self/fd/; echo ---; env; echo ---; \
                     grep NoNewPrivs /proc/self/status; grep 'Max core file size' /proc/self/limits";

/// Run in a child process by the test below, with `EXECGOV_TEST_SENTINEL=leak`
/// set and a descriptor opened without close-on-exec, neither of which may
/// reach the script.
#[tokio::test]
#[ignore = "run by the_script_inherits_no_descriptor_variable_or_privilege"]
async fn hardening_probe_in_a_child_process() {
    let exe = std::env::current_exe().expect("test binary");
    let file = std::fs::File::open(exe).expect("a file to leak");
    let leaked = nix::unistd::dup(&file).expect("dup: a descriptor without close-on-exec");
    use std::os::fd::AsRawFd;
    let leaked_fd = leaked.as_raw_fd();
    assert!(leaked_fd > 2, "the leaked descriptor is above 2");

    let dir = tempfile::tempdir().expect("temp dir");
    let spec = spec(dir.path(), &["/bin/sh", "-c", PROBE]);
    let allowed: BTreeMap<String, String> = child_env(&spec).into_iter().collect();
    let ran = run(spec).await;
    assert!(
        ran.outcome.succeeded(),
        "{:?}\n{}",
        ran.outcome.kind,
        ran.log
    );
    let sections: Vec<&str> = ran.log.split("---\n").collect();
    let [fds, env, status] = sections[..] else {
        panic!("three sections expected:\n{}", ran.log)
    };

    let extra: Vec<&str> = fds
        .lines()
        .filter_map(|l| {
            let (head, target) = l.split_once(" -> ")?;
            let fd: i32 = head.rsplit(' ').next()?.parse().ok()?;
            let own_listing = target.starts_with("/proc/") && target.ends_with("/fd");
            (fd > 2 && !own_listing).then_some(l)
        })
        .collect();
    assert!(
        extra.is_empty(),
        "the script holds descriptors above 2 (fd {leaked_fd} was leaked on purpose): {extra:#?}"
    );
    let mut seen: BTreeMap<String, String> = env
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.into(), v.into())))
        .collect();
    // `sh` sets PWD itself; it comes from the shell, not from the runner.
    seen.remove("PWD");
    assert!(
        !seen.contains_key("EXECGOV_TEST_SENTINEL"),
        "the runner's environment leaked into the script"
    );
    assert_eq!(seen, allowed, "the script sees exactly child_env()");
    assert!(
        status.contains("NoNewPrivs:\t1"),
        "no_new_privs is set:\n{status}"
    );
    let core: Vec<&str> = status
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        core.get(4..6),
        Some(&["0", "0"][..]),
        "core dumps are off (soft and hard limit 0):\n{status}"
    );
    drop(leaked);
}

#[test]
fn the_script_inherits_no_descriptor_variable_or_privilege() {
    run_child_test(
        "runner::hardening::hardening_probe_in_a_child_process",
        &[("EXECGOV_TEST_SENTINEL", "leak")],
    );
}
