//! Who the CLI acts and reads as: `--as` on every command that acts or reads
//! as someone (refused and audited where impersonation is off), `runs` and
//! `show` keeping to what that person may see, `explain --json` saying what
//! the text says, and an unmapped OS user told the two ways to fix it.

use crate::both_backends;
use crate::cli::text;
use crate::helpers::*;

/// A script only carol may run (and so see), beside the shared test manifests.
const PRIVATE: &str = r#"name = "private"
description = "Only carol's"
command = ["sh", "-c", "echo private"]
timeout = "20s"
[access]
run = ["person:carol"]
"#;

fn os_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .expect("the test's OS user has a name")
        .name
}

both_backends!(explain_json_says_what_the_text_says, |backend| async move {
    let env = TestEnv::new(backend).await;
    let cfg = env.config_path();
    let o = execgov(
        &cfg,
        &["explain", "risky", "marker=m", "--json", "--as", "alice"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    assert_eq!(doc["script"], "risky");
    assert_eq!(doc["may_run"], true, "alice is in sre: {doc}");
    assert_eq!(doc["why_not"], serde_json::Value::Null);
    let approval = &doc["approval"];
    assert_eq!(approval["quorum"], 1);
    assert_eq!(
        approval["approvers"],
        serde_json::json!(["group:leads", "person:alice"])
    );
    assert_eq!(
        approval["eligible"],
        serde_json::json!(["bob", "dave"]),
        "the requester is never eligible: {doc}"
    );
    assert_eq!(approval["expires_ms"], 3_600_000);
    assert_eq!(approval["channel"], "approvals");
    let argv: Vec<&str> = doc["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(argv[0], "sh");
    assert_eq!(
        argv.last(),
        Some(&"m"),
        "the argument is one argv element: {doc}"
    );
    assert_eq!(
        doc["runners"]["tags"],
        serde_json::json!([]),
        "local runner"
    );
    assert_eq!(doc["timeout_ms"], 20_000);
    assert_eq!(
        doc["rule"],
        serde_json::Value::Null,
        "no manifest rules yet"
    );

    let o = execgov(&cfg, &["explain", "risky", "marker=m", "--as", "alice"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(
            "- it needs 1 approval(s) from group:leads, person:alice (bob, dave), expiring after 1h"
        ),
        "the text says the same: {}",
        text(&o)
    );

    let o = execgov(
        &cfg,
        &["explain", "risky", "marker=m", "--json", "--as", "bob"],
    );
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(doc["may_run"], false, "bob is no sre: {doc}");
    assert!(
        doc["why_not"]
            .as_str()
            .unwrap()
            .contains("may not run `risky`"),
        "{doc}"
    );

    let o = execgov(&cfg, &["explain", "nosuch", "--json", "--as", "alice"]);
    assert_eq!(o.status.code(), Some(77), "{}", text(&o));
    assert!(o.stdout.is_empty(), "no document for an unknown script");
    assert!(text(&o).contains("unknown script `nosuch`"), "{}", text(&o));
});

both_backends!(as_reads_what_that_person_may_see, |backend| async move {
    let env = TestEnv::new(backend).await;
    std::fs::write(env.path().join("manifests/private.toml"), PRIVATE).unwrap();
    let cfg = env.config_path();
    let o = execgov(&cfg, &["run", "private", "--wait", "--as", "carol"]);
    assert!(o.status.success(), "carol's run: {}", text(&o));

    let o = execgov(&cfg, &["runs", "--as", "alice"]);
    assert_eq!(
        text(&o).trim(),
        "no runs",
        "alice may not see carol's private run"
    );
    let o = execgov(&cfg, &["runs", "--json", "--as", "alice"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(),
        serde_json::json!([])
    );
    let o = execgov(&cfg, &["runs", "--as", "carol"]);
    assert!(
        text(&o).contains("private") && text(&o).contains("carol"),
        "{}",
        text(&o)
    );
    let o = execgov(&cfg, &["runs"]);
    assert!(
        text(&o).contains("private"),
        "without --as, every run: {}",
        text(&o)
    );

    let o = execgov(&cfg, &["show", "1", "--as", "alice"]);
    assert_eq!(o.status.code(), Some(77), "{}", text(&o));
    assert_eq!(text(&o).trim(), "no run 1", "answered as a missing run");
    let o = execgov(&cfg, &["show", "1", "--json", "--as", "alice"]);
    assert_eq!(o.status.code(), Some(77), "{}", text(&o));
    let o = execgov(&cfg, &["show", "1", "--as", "carol"]);
    assert!(
        o.status.success() && text(&o).contains("succeeded"),
        "{}",
        text(&o)
    );

    let o = execgov(&cfg, &["list", "--as", "alice"]);
    assert!(
        text(&o).contains("private — Only carol's (not for you here)"),
        "{}",
        text(&o)
    );
    let may_run = |who: &str| {
        let o = execgov(&cfg, &["list", "--json", "--as", who]);
        let all: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        all.as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "private")
            .expect("listed")["may_run"]
            .clone()
    };
    assert_eq!(may_run("carol"), true);
    assert_eq!(may_run("alice"), false);
    let o = execgov(&cfg, &["help", "private", "--as", "alice"]);
    assert!(
        o.status.success() && text(&o).contains("Only carol's"),
        "{}",
        text(&o)
    );
});

both_backends!(
    as_is_refused_and_audited_without_impersonation,
    |backend| async move {
        let env = TestEnv::new(backend).await;
        let cfg = std::fs::read_to_string(env.config_path()).unwrap();
        std::fs::write(
            env.config_path(),
            cfg.replace("impersonation = true", "impersonation = false"),
        )
        .unwrap();
        let commands: [&[&str]; 5] = [
            &["list", "--as", "alice"],
            &["help", "risky", "--as", "alice"],
            &["runs", "--as", "alice"],
            &["show", "1", "--as", "alice"],
            &["explain", "risky", "--json", "--as", "alice"],
        ];
        for args in commands {
            let o = execgov(&env.config_path(), args);
            assert_eq!(o.status.code(), Some(77), "{args:?}: {}", text(&o));
            assert!(
                text(&o).contains("[cli] impersonation = true")
                    && text(&o).contains(&env.config_path().display().to_string()),
                "{args:?} names the setting and the file: {}",
                text(&o)
            );
        }
        let entries = env
            .engine()
            .await
            .store()
            .audit_entries(None, 0, 1000)
            .await
            .unwrap();
        let refused: Vec<_> = entries
            .iter()
            .filter(|e| e.action == "cli.as_refused")
            .collect();
        assert_eq!(
            refused.len(),
            commands.len(),
            "each refusal audited: {entries:?}"
        );
        assert_eq!(refused[0].details["as"], "alice");
        assert_eq!(refused[0].details["os_user"], os_user().as_str());
    }
);

both_backends!(
    an_unmapped_os_user_is_told_the_two_ways,
    |backend| async move {
        let env = TestEnv::new(backend).await;
        let user = os_user();
        assert_ne!(
            user, "alice",
            "the test user maps to nobody in the test config"
        );
        let fix_file = format!(
            "add `unix = \"{user}\"` to a person in {}",
            env.config_path().display()
        );
        let o = execgov(&env.config_path(), &["run", "risky", "marker=m"]);
        assert_eq!(o.status.code(), Some(77), "{}", text(&o));
        assert!(
            text(&o).contains(&fix_file),
            "names the fix and the file: {}",
            text(&o)
        );
        assert!(
            text(&o).contains("or pass `--as PERSON`"),
            "impersonation is on here: {}",
            text(&o)
        );
        let o = execgov(&env.config_path(), &["approve", "1"]);
        assert!(text(&o).contains(&fix_file), "{}", text(&o));

        let cfg = std::fs::read_to_string(env.config_path()).unwrap();
        std::fs::write(
            env.config_path(),
            cfg.replace("impersonation = true", "impersonation = false"),
        )
        .unwrap();
        let o = execgov(&env.config_path(), &["run", "risky", "marker=m"]);
        assert!(text(&o).contains(&fix_file), "{}", text(&o));
        assert!(
            !text(&o).contains("--as"),
            "no --as where it is off: {}",
            text(&o)
        );
    }
);
