//! Step-up approval (`risk = "critical"`) on both backends, through the
//! engine every channel uses: an approver without a second factor is told how
//! to enrol; enrolment is confirmed by a first code; a missing, malformed,
//! wrong or reused code, and a right code sent where others could read it, are
//! refused, audited and decide nothing; five wrong codes lock approvals for 15
//! minutes (injected clock); a right code approves once; only an admin resets.
//! The CLI (`2fa enrol|confirm|reset`, `approve --code`) runs the real binary.

use crate::both_backends;
use crate::helpers::*;
use execgov::clock::{Clock, ManualClock, SystemClock};
use execgov::command::Command;
use execgov::engine::{Engine, ReplyKind, Request};
use execgov::totp::{code_at, from_base32, step_at};
use execgov::types::{PersonId, RunId, RunState};
use std::sync::Arc;

/// A critical script: every approval needs a second factor.
pub const CRITICAL: &str = r#"name = "vault-rotate"
description = "Rotate the vault's root key"
command = ["sh", "scripts/risky.sh", "{marker}"]
timeout = "20s"
risk = "critical"
[[param]]
name = "marker"
type = "string"
required = true
[access]
run = ["group:sre"]
[approval]
approvers = ["group:leads"]
channel = "approvals"
quorum = 1
expires = "1h"
"#;

pub fn write_critical(dir: &std::path::Path) {
    std::fs::write(dir.join("manifests/vault-rotate.toml"), CRITICAL).unwrap();
}

/// A request by alice, waiting for approval.
async fn request(e: &Engine, n: u32) -> RunId {
    let r = say(
        e,
        &person("alice"),
        &format!("run vault-rotate marker=m{n}"),
    )
    .await;
    let run = r.run.unwrap_or_else(|| panic!("a run: {}", r.text));
    assert_eq!(run.state, RunState::AwaitingApproval, "{}", r.text);
    run.id
}

/// The code `secret` shows at the clock's now, `ahead` steps later.
fn code(secret: &[u8], clock: &ManualClock, ahead: i64) -> String {
    code_at(secret, step_at(clock.now_ms()) + ahead)
}

async fn count(e: &Engine, action: &str) -> usize {
    e.store()
        .audit_entries(None, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|a| a.action == action)
        .count()
}

both_backends!(
    critical_approvals_need_a_fresh_second_factor_code,
    |b| async move {
        let env = TestEnv::new(b).await;
        write_critical(env.path());
        env.write_config("");
        let mut config = std::fs::read_to_string(env.config_path()).unwrap();
        config = config.replace("[web]\n", "[web]\nadmins = [\"dave\"]\n");
        std::fs::write(env.config_path(), config).unwrap();
        let clock = ManualClock::new(SystemClock.now_ms());
        let e = execgov::app::build_engine(Arc::new(env.config()), clock.clone())
            .await
            .unwrap();
        let explained = say(&e, &person("alice"), "explain vault-rotate marker=m").await;
        assert!(
            explained
                .text
                .contains("critical: each approver types a 2FA code"),
            "{}",
            explained.text
        );
        let id = request(&e, 1).await;

        // bob has no second factor: told how to enrol; nothing decided.
        let r = say(&e, &person("bob"), &format!("approve {id}")).await;
        assert!(
            r.is_error() && r.text.contains("/account/2fa") && r.text.contains("2fa enrol"),
            "{}",
            r.text
        );
        assert_eq!(count(&e, "2fa.refused").await, 1, "the refusal is audited");

        // Enrol; a wrong first code does not confirm, the right one does.
        let enrolment = e.enrol_factor(&person("bob")).await.unwrap().unwrap();
        assert!(
            enrolment
                .uri
                .starts_with("otpauth://totp/ExecGov:bob?secret=")
        );
        let secret = from_base32(&enrolment.secret).unwrap();
        let stored = e.store().second_factor("bob").await.unwrap().unwrap();
        assert!(
            !stored.sealed.contains(&enrolment.secret),
            "the database holds the secret sealed"
        );
        let wrong = if code(&secret, &clock, 0) == "000000" {
            "111111"
        } else {
            "000000"
        };
        assert!(
            e.confirm_factor(&person("bob"), wrong)
                .await
                .unwrap()
                .is_err()
        );
        e.confirm_factor(&person("bob"), &code(&secret, &clock, 0))
            .await
            .unwrap()
            .expect("the first code confirms");
        assert!(
            e.enrol_factor(&person("bob")).await.unwrap().is_err(),
            "a confirmed factor is not replaced by enrolling again"
        );

        // No code, a malformed one, a wrong one: refused, audited, still waiting.
        for (line, says) in [
            (format!("approve {id}"), "6-digit code"),
            (format!("approve {id} 12345"), "6 digits"),
            (format!("approve {id} {wrong}"), "wrong code (4 tries left)"),
        ] {
            let r = say(&e, &person("bob"), &line).await;
            assert!(r.is_error() && r.text.contains(says), "{line}: {}", r.text);
        }
        assert_eq!(
            e.store().get_run(id).await.unwrap().state,
            RunState::AwaitingApproval,
            "no refused code decides"
        );

        // A right code in a shared room: refused and burned.
        clock.advance(30_000);
        let fresh = code(&secret, &clock, 0);
        let shared = e
            .handle(Request {
                actor: person("bob"),
                place: oncall(),
                command: Command::parse(&format!("approve {id} {fresh}")).unwrap(),
                private: false,
                files: Vec::new(),
            })
            .await;
        assert!(
            shared.is_error() && shared.text.contains("treat it as used"),
            "{}",
            shared.text
        );
        let r = say(&e, &person("bob"), &format!("approve {id} {fresh}")).await;
        assert!(
            r.is_error() && r.text.contains("already used"),
            "a code seen in a shared room is burned: {}",
            r.text
        );

        // The next code, privately: approved with step-up, once.
        clock.advance(30_000);
        let next = code(&secret, &clock, 0);
        let ok = say(&e, &person("bob"), &format!("approve {id} {next}")).await;
        assert_eq!(ok.kind, ReplyKind::Decided, "{}", ok.text);
        assert!(ok.text.contains("with a second factor"), "{}", ok.text);
        assert_eq!(e.store().get_run(id).await.unwrap().state, RunState::Queued);
        let approved = e.store().audit_entries(Some(id), 0, 100).await.unwrap();
        let approved = approved
            .iter()
            .find(|a| a.action == "approval.approved")
            .unwrap();
        assert_eq!(approved.details["step_up"], true, "{:?}", approved.details);
        let id2 = request(&e, 2).await;
        let again = say(&e, &person("bob"), &format!("approve {id2} {next}")).await;
        assert!(
            again.is_error() && again.text.contains("already used"),
            "a code is accepted once: {}",
            again.text
        );

        // Wrong codes (the reused one counted) lock bob's approvals at five in a row, for 15 minutes.
        let wrong = if code(&secret, &clock, 0) == "000000" {
            "111111"
        } else {
            "000000"
        };
        let mut last = String::new();
        for _ in 0..4 {
            last = say(&e, &person("bob"), &format!("approve {id2} {wrong}"))
                .await
                .text;
        }
        assert!(
            last.contains("locked until"),
            "the fifth wrong code locks: {last}"
        );
        assert_eq!(count(&e, "2fa.locked").await, 1);
        clock.advance(30_000);
        let locked = say(
            &e,
            &person("bob"),
            &format!("approve {id2} {}", code(&secret, &clock, 0)),
        )
        .await;
        assert!(
            locked.is_error() && locked.text.contains("locked until"),
            "a right code while locked: {}",
            locked.text
        );
        clock.advance(15 * 60_000);
        let ok = say(
            &e,
            &person("bob"),
            &format!("approve {id2} {}", code(&secret, &clock, 0)),
        )
        .await;
        assert_eq!(ok.kind, ReplyKind::Decided, "after the lock: {}", ok.text);

        // Denying needs no code.
        let id3 = request(&e, 3).await;
        let deny = say(&e, &person("dave"), &format!("deny {id3} not today")).await;
        assert_eq!(deny.kind, ReplyKind::Decided, "{}", deny.text);

        // Only an admin resets; both are audited.
        let bob = PersonId("bob".into());
        assert!(
            e.reset_factor(&person("carol"), &bob)
                .await
                .unwrap()
                .is_err()
        );
        assert_eq!(count(&e, "2fa.reset_refused").await, 1);
        assert_eq!(
            e.reset_factor(&person("dave"), &bob).await.unwrap(),
            Ok(true)
        );
        assert_eq!(count(&e, "2fa.reset").await, 1);
        assert!(e.store().second_factor("bob").await.unwrap().is_none());

        let check = e.store().verify_chain().await.unwrap();
        assert!(
            matches!(check, execgov::store::ChainCheck::Ok { .. }),
            "the chain verifies: {check:?}"
        );
    }
);

/// `check` accepts `risk = "critical"` and refuses an unknown risk with its line.
#[test]
fn check_knows_critical() {
    let env = tempfile::tempdir().unwrap();
    let dir = env.path();
    std::fs::create_dir_all(dir.join("manifests/scripts")).unwrap();
    std::fs::write(dir.join("manifests/scripts/risky.sh"), "true\n").unwrap();
    std::fs::write(dir.join("manifests/vault-rotate.toml"), CRITICAL).unwrap();
    let config = dir.join("execgov.toml");
    std::fs::write(
        &config,
        format!("manifests = \"manifests\"\ndata_dir = \"data\"\n{PEOPLE}"),
    )
    .unwrap();
    let ok = execgov(&config, &["check"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::write(
        dir.join("manifests/vault-rotate.toml"),
        CRITICAL.replace("risk = \"critical\"", "risk = \"extreme\""),
    )
    .unwrap();
    let bad = execgov(&config, &["check"]);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(!bad.status.success());
    assert!(
        out.contains("vault-rotate.toml:5") && out.contains("\"critical\""),
        "{out}"
    );
}

/// The real binary: `2fa enrol --as bob` prints the URI, `2fa confirm` takes
/// the first code, `approve --code` approves (and `evidence` says so), `2fa
/// reset` is for admins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_enrols_confirms_and_approves_with_a_code() {
    let env = TestEnv::new(Backend::Sqlite).await;
    write_critical(env.path());
    let config = env.config_path();
    let requested = execgov(
        &config,
        &["run", "vault-rotate", "marker=m", "--as", "alice"],
    );
    let text = String::from_utf8_lossy(&requested.stdout).to_string();
    assert!(requested.status.success(), "{text}");
    let id = "1"; // the first run of a fresh database

    let enrol = execgov(&config, &["2fa", "enrol", "--as", "bob"]);
    let out = String::from_utf8_lossy(&enrol.stdout).to_string();
    assert!(enrol.status.success(), "{out}");
    assert!(out.contains("otpauth://totp/ExecGov:bob?secret="), "{out}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .expect("the secret as text");
    let secret = from_base32(secret).unwrap();
    let now = || step_at(SystemClock.now_ms());

    let confirm = execgov(
        &config,
        &["2fa", "confirm", &code_at(&secret, now()), "--as", "bob"],
    );
    assert!(
        confirm.status.success(),
        "{}",
        String::from_utf8_lossy(&confirm.stderr)
    );
    // Without a code: refused (77) and told how.
    let none = execgov(&config, &["approve", id, "--as", "bob"]);
    assert_eq!(none.status.code(), Some(77));
    assert!(String::from_utf8_lossy(&none.stderr).contains("--code"));
    // The next step's code (the one confirming was used).
    let ok = execgov(
        &config,
        &[
            "approve",
            id,
            "--code",
            &code_at(&secret, now() + 1),
            "--as",
            "bob",
        ],
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("with a second factor"),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    // The evidence bundle says the approval used step-up.
    let file = env.path().join("run.evidence");
    let o = execgov(&config, &["evidence", id, "--out", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bundle = std::fs::read_to_string(&file).unwrap();
    let body: serde_json::Value = serde_json::from_str(bundle.lines().next().unwrap()).unwrap();
    assert_eq!(
        body["approvals"][0]["step_up"], true,
        "{}",
        body["approvals"]
    );

    let reset = execgov(&config, &["2fa", "reset", "bob", "--as", "carol"]);
    assert_eq!(
        reset.status.code(),
        Some(77),
        "carol is no admin: {}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert!(String::from_utf8_lossy(&reset.stderr).contains("only an admin"));
}
