//! The grammar's unit tests: every verb, quoting (shell characters, chat quotes,
//! escapes), usage errors, the run-prefixed entry points, and round trips.

use super::*;

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[test]
fn run_with_quoted_values() {
    let c = Command::parse(r#"run report-export month=2026-10 note="two words" x='a b'"#).unwrap();
    assert_eq!(
        c,
        Command::Run {
            script: "report-export".into(),
            args: vec![
                kv("month", "2026-10"),
                kv("note", "two words"),
                kv("x", "a b")
            ]
        }
    );
}

#[test]
fn shell_metacharacters_stay_literal() {
    let c = Command::parse(r#"run x dir="; touch /tmp/pwned" who=$(id)"#).unwrap();
    assert_eq!(
        c,
        Command::Run {
            script: "x".into(),
            args: vec![kv("dir", "; touch /tmp/pwned"), kv("who", "$(id)")]
        },
        "the grammar never interprets shell syntax"
    );
}

#[test]
fn typographic_quotes_from_chat_clients() {
    let c = Command::parse("run x note=“two words”").unwrap();
    assert_eq!(
        c,
        Command::Run {
            script: "x".into(),
            args: vec![kv("note", "two words")]
        }
    );
}

#[test]
fn escapes_inside_double_quotes() {
    let c = Command::parse(r#"run x q="say \"hi\"""#).unwrap();
    assert_eq!(
        c,
        Command::Run {
            script: "x".into(),
            args: vec![kv("q", "say \"hi\"")]
        }
    );
}

#[test]
fn every_verb() {
    assert_eq!(Command::parse("list").unwrap(), Command::List);
    assert_eq!(
        Command::parse("help").unwrap(),
        Command::Help { script: None }
    );
    assert_eq!(
        Command::parse("help disk-cleanup").unwrap(),
        Command::Help {
            script: Some("disk-cleanup".into())
        }
    );
    assert_eq!(
        Command::parse("status #12").unwrap(),
        Command::Status { run: RunId(12) }
    );
    assert_eq!(
        Command::parse("cancel 3").unwrap(),
        Command::Cancel { run: RunId(3) }
    );
    assert_eq!(
        Command::parse("APPROVE 3").unwrap(),
        Command::Approve {
            run: RunId(3),
            code: None
        }
    );
    assert_eq!(
        Command::parse("approve 3 123456").unwrap(),
        Command::Approve {
            run: RunId(3),
            code: Some("123456".into())
        },
        "a step-up code follows the run id"
    );
    assert_eq!(
        Command::parse("approve 3 123456").unwrap().to_string(),
        "approve 3 ******",
        "a code is never shown again"
    );
    assert!(
        Command::parse("approve 3 123 456").is_err(),
        "one code word"
    );
    assert_eq!(
        Command::parse("deny 3 not during the freeze").unwrap(),
        Command::Deny {
            run: RunId(3),
            reason: Some("not during the freeze".into())
        }
    );
    assert_eq!(
        Command::parse("deny 3").unwrap(),
        Command::Deny {
            run: RunId(3),
            reason: None
        }
    );
    assert_eq!(
        Command::parse("explain disk-cleanup days=3").unwrap(),
        Command::Explain {
            script: "disk-cleanup".into(),
            args: vec![kv("days", "3")]
        }
    );
    assert_eq!(Command::parse("login").unwrap(), Command::Login);
}

#[test]
fn errors_say_what_to_do() {
    assert_eq!(Command::parse("  "), Err(ParseError::Empty));
    assert!(matches!(Command::parse("rnu x"), Err(ParseError::UnknownVerb(v)) if v == "rnu"));
    assert!(matches!(
        Command::parse("run"),
        Err(ParseError::Missing { verb: "run", .. })
    ));
    assert!(matches!(
        Command::parse("status"),
        Err(ParseError::Missing { .. })
    ));
    assert!(matches!(
        Command::parse("status abc"),
        Err(ParseError::BadRunId(_))
    ));
    assert!(matches!(
        Command::parse("status 1 2"),
        Err(ParseError::Extra { .. })
    ));
    assert!(
        matches!(Command::parse("run x month"), Err(ParseError::NotKeyValue(w)) if w == "month")
    );
    assert!(matches!(
        Command::parse("run x =v"),
        Err(ParseError::NotKeyValue(_))
    ));
    assert!(matches!(
        Command::parse(r#"run x a="open"#),
        Err(ParseError::Unterminated(_, '"'))
    ));
    let msg = Command::parse("run x month").unwrap_err().to_string();
    assert!(
        msg.contains("key=value"),
        "the message shows the expected shape: {msg}"
    );
}

#[test]
fn run_prefixed_entry_points() {
    assert_eq!(
        Command::parse_run_prefixed("report-export month=2026-10").unwrap(),
        Command::Run {
            script: "report-export".into(),
            args: vec![kv("month", "2026-10")]
        }
    );
    assert_eq!(
        Command::parse_run_prefixed("status 4").unwrap(),
        Command::Status { run: RunId(4) }
    );
    assert_eq!(
        Command::parse_run_prefixed("").unwrap(),
        Command::Help { script: None }
    );
}

#[test]
fn display_round_trips() {
    for line in [
        r#"run x note="two words" n=3"#,
        "deny 4 too risky",
        "status 9",
        "list",
    ] {
        let c = Command::parse(line).unwrap();
        assert_eq!(Command::parse(&c.to_string()).unwrap(), c, "{line}");
    }
}
