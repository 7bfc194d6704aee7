//! The CLI as a user drives it without a server (it runs the pool itself): the
//! bundled demo (run, approve as another person, show, audit verify, tampering
//! caught; `readme.rs` checks the README's walk-through against `serve`),
//! shell metacharacters staying one literal argument, `--as` only where the
//! config allows it, and `check` naming file and line.

use crate::helpers::*;
use std::path::Path;
use std::process::Output;

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

#[test]
fn walkthrough_on_the_bundled_demo() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo.join("manifests"), &dir.path().join("manifests"));
    std::fs::copy(repo.join("execgov.toml"), dir.path().join("execgov.toml")).unwrap();
    let cfg = dir.path().join("execgov.toml");

    let o = execgov(&cfg, &["check"]);
    assert!(
        o.status.success(),
        "bundled manifests check clean: {}",
        text(&o)
    );
    assert!(text(&o).contains("ok: 3 manifests"), "{}", text(&o));

    let o = execgov(
        &cfg,
        &[
            "run",
            "report-export",
            "month=2026-10",
            "--wait",
            "--as",
            "carol",
        ],
    );
    assert!(o.status.success(), "report-export succeeds: {}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("succeeded") && out.contains("/runs/1?t="),
        "state and audit link: {out}"
    );
    assert!(
        out.contains("progress: "),
        "progress lines shown while waiting: {out}"
    );
    let csv = dir.path().join("data/runs/1/output/report-2026-10.csv");
    assert!(csv.exists(), "the CSV was written to EXECGOV_OUTPUT_DIR");

    let o = execgov(
        &cfg,
        &[
            "run",
            "disk-cleanup",
            "days=30",
            "dry_run=true",
            "--as",
            "alice",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("run 2") && text(&o).contains("awaits approval"),
        "{}",
        text(&o)
    );

    let o = execgov(&cfg, &["approve", "2", "--as", "alice"]);
    assert_eq!(
        o.status.code(),
        Some(77),
        "the requester may not approve: {}",
        text(&o)
    );
    assert!(text(&o).contains("requested this run"), "{}", text(&o));
    let o = execgov(&cfg, &["approve", "2", "--as", "carol"]);
    assert_eq!(
        o.status.code(),
        Some(77),
        "carol is no approver: {}",
        text(&o)
    );

    let o = execgov(&cfg, &["approve", "2", "--as", "bob"]);
    assert!(
        o.status.success(),
        "bob's approval runs it here: {}",
        text(&o)
    );
    assert!(text(&o).contains("succeeded"), "{}", text(&o));

    let o = execgov(&cfg, &["show", "2"]);
    assert!(
        text(&o).contains("bob approved"),
        "show names the approver: {}",
        text(&o)
    );
    let o = execgov(&cfg, &["runs"]);
    assert_eq!(text(&o).lines().count(), 2, "two runs listed: {}", text(&o));

    let o = execgov(&cfg, &["audit", "verify"]);
    assert!(
        o.status.success() && text(&o).starts_with("ok: "),
        "{}",
        text(&o)
    );

    // Tamper with one audit row as someone with raw database access would
    // (past the append-only triggers): verify must fail and name it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}/data/execgov.db", dir.path().display());
        let store = execgov::store::Store::connect(&url).await.unwrap();
        execgov::store::testing::allow_audit_tampering(&store).await;
        store
            .exec_raw("UPDATE audit SET details = '{\"edited\":true}' WHERE seq = 3")
            .await
            .unwrap();
    });
    let o = execgov(&cfg, &["audit", "verify"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an edited row fails verification: {}",
        text(&o)
    );
    assert!(
        text(&o).contains("entry 3"),
        "names the edited entry: {}",
        text(&o)
    );
}

#[tokio::test]
async fn shell_metacharacters_reach_the_script_as_one_literal_argument() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let pwned = env.path().join("pwned");
    let note = format!("note=; touch {}", pwned.display());
    let o = execgov(
        &env.config_path(),
        &[
            "run",
            "echo-args",
            &note,
            "who=$(id)",
            "--wait",
            "--as",
            "alice",
        ],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("argc=2"), "two arguments, no more: {out}");
    assert!(
        out.contains(&format!("arg=[; touch {}]", pwned.display())),
        "{out}"
    );
    assert!(out.contains("arg=[$(id)]"), "no substitution: {out}");
    assert!(!pwned.exists(), "nothing else ran");
}

#[tokio::test]
async fn as_is_refused_unless_the_config_allows_impersonation() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let cfg = std::fs::read_to_string(env.config_path()).unwrap();
    std::fs::write(
        env.config_path(),
        cfg.replace("impersonation = true", "impersonation = false"),
    )
    .unwrap();
    let o = execgov(&env.config_path(), &["run", "echo-args", "--as", "alice"]);
    assert_eq!(o.status.code(), Some(77), "{}", text(&o));
    assert!(
        text(&o).contains("impersonation"),
        "says which setting: {}",
        text(&o)
    );
}

#[tokio::test]
async fn check_names_file_and_line() {
    let env = TestEnv::new(Backend::Sqlite).await;
    std::fs::write(
        env.path().join("manifests/broken.toml"),
        "name = \"broken\"\ndescription = \"x\"\ncomand = [\"true\"]\n",
    )
    .unwrap();
    let o = execgov(&env.config_path(), &["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("broken.toml:3:"),
        "file:line of the unknown key: {}",
        text(&o)
    );
}

/// `run --wait` exits with the script's own code when it ran to its end, 124
/// when it timed out, 77 when refused, 64 for a usage error; `status`, `help
/// SCRIPT` and `--json` answer as chat does, in one JSON document.
#[tokio::test]
async fn exit_codes_status_help_and_json() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let m = env.path().join("manifests");
    std::fs::write(
        m.join("exits.toml"),
        "name = \"exits\"\ndescription = \"exits with its code\"\n\
         command = [\"sh\", \"-c\", \"sleep $0; exit $1\", \"{secs}\", \"{code}\"]\ntimeout = \"2s\"\n\
         [[param]]\nname = \"code\"\ntype = \"int\"\n\
         [[param]]\nname = \"secs\"\ntype = \"int\"\ndefault = 0\n\
         [access]\nrun = [\"anyone\"]\n",
    )
    .unwrap();
    let cfg = env.config_path();
    let o = execgov(&cfg, &["run", "exits", "code=3", "--wait", "--as", "alice"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "the script's own code: {}",
        text(&o)
    );
    let o = execgov(&cfg, &["run", "exits", "code=0", "--wait", "--as", "alice"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = execgov(
        &cfg,
        &[
            "run", "exits", "code=0", "secs=30", "--wait", "--as", "alice",
        ],
    );
    assert_eq!(o.status.code(), Some(124), "timed out: {}", text(&o));
    let o = execgov(&cfg, &["run", "exits", "code", "--as", "alice"]);
    assert_eq!(o.status.code(), Some(64), "not key=value: {}", text(&o));
    let o = execgov(&cfg, &["run", "nosuch", "--as", "alice"]);
    assert_eq!(o.status.code(), Some(77), "refused: {}", text(&o));

    let o = execgov(&cfg, &["status", "1", "--as", "alice"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("run 1") && text(&o).contains("failed"),
        "{}",
        text(&o)
    );
    let o = execgov(&cfg, &["help", "exits"]);
    assert!(
        o.status.success() && text(&o).contains("code"),
        "{}",
        text(&o)
    );
    let o = execgov(&cfg, &["help"]);
    assert!(
        text(&o).contains("Exit codes"),
        "--help documents them: {}",
        text(&o)
    );

    let o = execgov(&cfg, &["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    assert_eq!(runs.as_array().map(Vec::len), Some(3), "{runs}");
    assert_eq!(runs[0]["state"], "timed_out");
    let o = execgov(&cfg, &["list", "--json"]);
    let scripts: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let exits = scripts
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "exits")
        .expect("listed");
    assert_eq!(exits["params"][0]["type"], "int");
    let o = execgov(&cfg, &["schedules", "--json"]);
    let _: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
}
