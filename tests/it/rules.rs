//! `[[rule]]` blocks: risk, approvers and quorum chosen by a request's
//! arguments, through the engine and a real runner on both backends, and
//! `execgov check` naming the line of a rule that cannot work.

use crate::both_backends;
use crate::helpers::*;
use execgov::engine::ReplyKind;
use execgov::types::RunState;

/// `deploy env=… days=…`: anyone in sre may ask; prod needs two leads, a long
/// retention needs one, dev runs at once.
const DEPLOY: &str = r#"name = "deploy"
description = "Pretend to deploy"
command = ["sh", "scripts/deploy.sh", "{env}", "{days}"]
timeout = "20s"
[[param]]
name = "env"
type = "enum"
choices = ["dev", "staging", "prod"]
required = true
[[param]]
name = "days"
type = "int"
default = 7
[access]
run = ["group:sre"]
[approval]
approvers = ["person:alice"]
expires = "30m"

[[rule]]
name = "prod"
when = { env = "prod" }
risk = "high"
approvers = ["group:leads"]
quorum = 2
channel = "approvals"

[[rule]]
when = { env = { in = ["dev", "staging"] }, days = { gt = 90 } }
risk = "high"
approvers = ["group:leads"]
"#;

fn setup(dir: &std::path::Path) {
    std::fs::write(dir.join("manifests/deploy.toml"), DEPLOY).unwrap();
    std::fs::write(
        dir.join("manifests/scripts/deploy.sh"),
        "echo \"deployed $1 keeping $2 days\"\n",
    )
    .unwrap();
}

both_backends!(
    a_rule_by_argument_sets_quorum_and_names_itself,
    |b| async move {
        let app = start_with(b, setup).await;
        let e = &app.engine;

        // dev with a short retention: no rule holds, it runs at once.
        let dev = say(e, &person("carol"), "run deploy env=dev days=3").await;
        assert_eq!(dev.kind, ReplyKind::Accepted, "{}", dev.text);
        let dev = dev.run.unwrap();
        assert_eq!(dev.rule, None);
        assert_eq!(wait_final(e, dev.id).await.state, RunState::Succeeded);

        // explain names the rule and its approval.
        let why = say(e, &person("carol"), "explain deploy env=prod").await;
        assert!(
            why.text.contains("rule `prod` applies") && why.text.contains("2 approval(s)"),
            "{}",
            why.text
        );

        // prod: two leads; one approval leaves it waiting, the second runs it.
        let prod = say(e, &person("carol"), "run deploy env=prod").await;
        assert_eq!(prod.kind, ReplyKind::Accepted, "{}", prod.text);
        assert!(prod.text.contains("under rule `prod`"), "{}", prod.text);
        let run = prod.run.unwrap();
        assert_eq!(run.state, RunState::AwaitingApproval);
        assert_eq!(run.rule.as_deref(), Some("prod"));
        assert_eq!(run.quorum, 2);
        assert_eq!(run.approvers.channel.as_deref(), Some("approvals"));
        // The top level's approver is not this rule's.
        let alice = say(e, &person("alice"), &format!("approve {}", run.id)).await;
        assert!(alice.is_error(), "{}", alice.text);
        let one = say(e, &person("bob"), &format!("approve {}", run.id)).await;
        assert_eq!(one.kind, ReplyKind::Decided, "{}", one.text);
        assert!(one.text.contains("1 of 2"), "{}", one.text);
        assert_eq!(
            e.store().get_run(run.id).await.unwrap().state,
            RunState::AwaitingApproval
        );
        let two = say(e, &person("dave"), &format!("approve {}", run.id)).await;
        assert_eq!(two.kind, ReplyKind::Decided, "{}", two.text);
        assert_eq!(wait_final(e, run.id).await.state, RunState::Succeeded);

        // The rule is in the run's audit entry.
        let entries = e.store().audit_entries(Some(run.id), 0, 100).await.unwrap();
        let requested = entries
            .iter()
            .find(|a| a.action == "run.requested")
            .expect("a run.requested entry");
        assert_eq!(requested.details["rule"], "prod", "{:?}", requested.details);

        // The second, unnamed rule: both conditions must hold.
        let short = say(e, &person("carol"), "run deploy env=staging days=90").await;
        assert_eq!(short.run.unwrap().state, RunState::Queued, "90 is not > 90");
        let long = say(e, &person("carol"), "run deploy env=staging days=91").await;
        let long = long.run.unwrap();
        assert_eq!(long.state, RunState::AwaitingApproval);
        assert_eq!(long.rule.as_deref(), Some("rule-2"));
        assert_eq!(long.quorum, 1);
    }
);

/// `check` names the file and line of each rule that cannot work.
#[test]
fn check_names_the_line_of_a_rule_that_cannot_work() {
    let env = tempfile::tempdir().unwrap();
    let dir = env.path();
    std::fs::create_dir_all(dir.join("manifests/scripts")).unwrap();
    std::fs::write(dir.join("manifests/scripts/deploy.sh"), "true\n").unwrap();
    std::fs::write(dir.join("execgov.toml"), PEOPLE).unwrap();
    let broken = DEPLOY
        .replace("when = { env = \"prod\" }", "when = { envv = \"prod\" }")
        .replace("env = { in = [\"dev\", \"staging\"] }", "env = { lt = 3 }")
        + r#"
[[rule]]
name = "qa"
when = { env = "qa" }
risk = "high"

[[rule]]
name = "low"
when = { days = 1 }
quorum = 3
"#;
    std::fs::write(dir.join("manifests/deploy.toml"), broken).unwrap();
    // A top level without [approval]: a rule that makes it high-risk must name approvers.
    let nobody = r#"name = "nobody"
command = ["sh", "scripts/deploy.sh"]
[[param]]
name = "env"
type = "string"
[access]
run = ["anyone"]
[[rule]]
when = { env = "prod" }
risk = "high"
"#;
    std::fs::write(dir.join("manifests/nobody.toml"), nobody).unwrap();
    let out = execgov(&dir.join("execgov.toml"), &["check"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!out.status.success(), "{said}");
    let line_of = |file: &str, needle: &str| {
        1 + std::fs::read_to_string(dir.join("manifests").join(file))
            .unwrap()
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in the manifest"))
    };
    for (file, needle, message) in [
        (
            "deploy.toml",
            "envv",
            "`envv` is not a parameter of this script; did you mean `env`?",
        ),
        (
            "deploy.toml",
            "env = { lt = 3 }",
            "`lt` compares numbers, and `env` is of type enum",
        ),
        (
            "deploy.toml",
            "env = \"qa\"",
            "`env` can never have this value",
        ),
        (
            "deploy.toml",
            "quorum = 3",
            "only matters for a high-risk run",
        ),
        ("nobody.toml", "risk = \"high\"", "nobody could approve it"),
    ] {
        let line = line_of(file, needle);
        let at = format!("{file}:{line}");
        assert!(
            said.lines().any(|l| l.contains(&at) && l.contains(message)),
            "`{message}` at {at}:\n{said}"
        );
    }
}
