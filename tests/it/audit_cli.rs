//! `execgov audit key | checkpoint | verify --checkpoints` with the real binary:
//! runs started from the CLI write a keyed chain; cutting its newest entries
//! (and rewriting the head) passes `verify` alone and fails against a signed
//! checkpoint, naming the first entry cut off; an edited checkpoint line is named.

use crate::both_backends;
use crate::helpers::*;
use std::process::Output;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

both_backends!(
    a_cut_tail_is_named_against_a_signed_checkpoint,
    |backend| async move {
        let env = TestEnv::new(backend).await;
        let cfg = env.config_path();
        for n in ["one", "two"] {
            let note = format!("note={n}");
            let o = execgov(
                &cfg,
                &["run", "echo-args", &note, "--wait", "--as", "alice"],
            );
            assert!(
                o.status.success(),
                "a run from the CLI starts and ends: {}",
                text(&o)
            );
        }
        let o = execgov(&cfg, &["audit", "key"]);
        let token = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(
            o.status.success() && token.starts_with("ed25519:"),
            "{}",
            text(&o)
        );
        assert_eq!(token.split_whitespace().count(), 1, "one token: {token}");
        let o = execgov(&cfg, &["audit", "checkpoint"]);
        assert!(o.status.success(), "{}", text(&o));
        let file = env.path().join("data/checkpoints.jsonl");
        let o = execgov(
            &cfg,
            &[
                "audit",
                "verify",
                "--checkpoints",
                file.to_str().unwrap(),
                "--key",
                &token,
            ],
        );
        assert!(o.status.success(), "an untouched chain holds: {}", text(&o));
        assert!(text(&o).contains("all keyed"), "{}", text(&o));

        // Someone with database access cuts the newest 3 entries and moves the head back.
        let store = execgov::store::Store::connect(&env.database_url)
            .await
            .unwrap();
        execgov::store::testing::allow_audit_tampering(&store).await;
        let (head, _) = store.audit_head().await.unwrap();
        let kept = store
            .audit_entries(None, head - 4, 1)
            .await
            .unwrap()
            .remove(0);
        store
        .exec_raw(&format!(
            "DELETE FROM audit WHERE seq > {s}; UPDATE audit_head SET seq = {s}, hash = '{h}' WHERE id = 1;",
            s = kept.seq,
            h = kept.hash
        ))
        .await
        .unwrap();
        store.close().await;

        let o = execgov(&cfg, &["audit", "verify"]);
        assert!(
            o.status.success(),
            "the chain alone cannot see the cut (documented): {}",
            text(&o)
        );
        let o = execgov(
            &cfg,
            &[
                "audit",
                "verify",
                "--checkpoints",
                file.to_str().unwrap(),
                "--key",
                &token,
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            text(&o).contains(&format!("broken at entry {}", head - 2))
                && text(&o).contains("cut off"),
            "names the first entry cut off: {}",
            text(&o)
        );

        // One edited byte in the checkpoint file: its line is named.
        let line = std::fs::read_to_string(&file).unwrap();
        let edited = line.replacen(
            &format!("\"seq\":{head}"),
            &format!("\"seq\":{}", head - 3),
            1,
        );
        assert_ne!(edited, line);
        std::fs::write(&file, edited).unwrap();
        let o = execgov(
            &cfg,
            &[
                "audit",
                "verify",
                "--checkpoints",
                file.to_str().unwrap(),
                "--key",
                &token,
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            text(&o).contains("checkpoints.jsonl line 1") && text(&o).contains("does not verify"),
            "names the tampered line: {}",
            text(&o)
        );
    }
);

both_backends!(
    export_writes_the_range_as_versioned_json_lines,
    |backend| async move {
        let env = TestEnv::new(backend).await;
        let cfg = env.config_path();
        for n in ["one", "two"] {
            let note = format!("note={n}");
            let o = execgov(
                &cfg,
                &["run", "echo-args", &note, "--wait", "--as", "alice"],
            );
            assert!(o.status.success(), "{}", text(&o));
        }
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let file = env.path().join("export.jsonl");
        let o = execgov(
            &cfg,
            &[
                "audit",
                "export",
                "--since",
                &today,
                "--out",
                file.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("exported "),
            "a summary on stderr: {}",
            text(&o)
        );
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        let store = env.engine().await;
        let all = store.store().audit_entries(None, 0, 1000).await.unwrap();
        assert_eq!(lines.len(), all.len(), "every entry of today");
        for (line, entry) in lines.iter().zip(&all) {
            assert_eq!(line["schema"], "execgov.audit/1");
            assert_eq!(line["seq"], entry.seq, "in chain order");
            assert_eq!(line["hash"], entry.hash);
            assert_eq!(line["prev_hash"], entry.prev_hash);
            assert_eq!(line["action"], entry.action);
            assert_eq!(line["at_ms"], entry.at);
            assert!(line["at"].as_str().unwrap().ends_with('Z'), "{line}");
        }
        assert!(
            lines.windows(2).all(|w| w[1]["prev_hash"] == w[0]["hash"]),
            "the exported lines chain"
        );
        assert!(
            lines
                .iter()
                .any(|l| l["action"] == "run.succeeded" && l["details"].is_object()),
            "{lines:?}"
        );

        // To stdout; a range before any entry is empty; bad dates say what to write.
        let o = execgov(&cfg, &["audit", "export", "--since", &today]);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).lines().count(),
            all.len()
        );
        let o = execgov(
            &cfg,
            &[
                "audit",
                "export",
                "--since",
                "2020-01-01",
                "--until",
                "2020-01-31",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        assert!(o.stdout.is_empty(), "{}", text(&o));
        let o = execgov(&cfg, &["audit", "export", "--since", "yesterday"]);
        assert!(!o.status.success());
        assert!(
            text(&o).contains("--since") && text(&o).contains("YYYY-MM-DD"),
            "{}",
            text(&o)
        );
    }
);

both_backends!(
    an_evidence_bundle_verifies_offline_and_one_edited_byte_fails,
    |backend| async move {
        let app = start(backend).await;
        let (env, engine) = (&app.env, &app.engine);
        let cfg = env.config_path();
        // A high-risk run: alice asks, bob approves, it runs; another run follows.
        let marker = env.path().join("marker");
        let asked = say(
            engine,
            &person("alice"),
            &format!("run risky marker={}", marker.display()),
        )
        .await;
        let run = asked.run.expect("recorded");
        let id = run.id.to_string();
        let approved = say(engine, &person("bob"), &format!("approve {id}")).await;
        assert!(!approved.is_error(), "{}", approved.text);
        let done = wait_final(engine, run.id).await;
        assert_eq!(done.state, execgov::types::RunState::Succeeded, "{done:?}");
        let after = say(engine, &person("alice"), "run echo-args note=after").await;
        wait_final(engine, after.run.expect("recorded").id).await;

        let o = execgov(&cfg, &["audit", "key"]);
        let key = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let file = env.path().join("run.evidence");
        let o = execgov(&cfg, &["evidence", &id, "--out", file.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        let bundle = std::fs::read_to_string(&file).unwrap();
        let body: serde_json::Value = serde_json::from_str(bundle.lines().next().unwrap()).unwrap();
        assert_eq!(body["schema"], "execgov.evidence/1");
        assert_eq!(body["run"]["id"].to_string(), id);
        assert_eq!(
            body["approvals"][0]["approver"], "bob",
            "{}",
            body["approvals"]
        );
        assert_eq!(body["approvals"][0]["digest_matches"], true);
        assert!(
            body["log"]["text"].as_str().unwrap().contains("touched"),
            "{}",
            body["log"]
        );
        assert!(
            body["chain"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "approval.approved"),
            "the chain holds the approval"
        );

        let verify = |path: &std::path::Path| {
            execgov(
                &cfg,
                &["evidence", "verify", path.to_str().unwrap(), "--key", &key],
            )
        };
        let o = verify(&file);
        assert!(
            o.status.success(),
            "an untouched bundle verifies: {}",
            text(&o)
        );
        assert!(text(&o).contains("1 approval(s) backed"), "{}", text(&o));

        // Moved off the machine: verifying needs no database.
        let away = tempfile::tempdir().unwrap();
        let copy = away.path().join("copy.evidence");
        std::fs::copy(&file, &copy).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_execgov"))
            .current_dir(away.path())
            .args(["evidence", "verify", copy.to_str().unwrap(), "--key", &key])
            .output()
            .unwrap();
        assert!(o.status.success(), "offline: {}", text(&o));

        // One edited byte: the approver's name.
        let edited = bundle.replacen("\"approver\":\"bob\"", "\"approver\":\"bib\"", 1);
        assert_ne!(edited, bundle);
        let bad = env.path().join("edited.evidence");
        std::fs::write(&bad, &edited).unwrap();
        let o = verify(&bad);
        assert!(!o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("line 1 was altered"), "{}", text(&o));
        // Another key: named.
        let other = execgov::audit::public_key_token(
            &ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key(),
        );
        let o = execgov(
            &cfg,
            &[
                "evidence",
                "verify",
                file.to_str().unwrap(),
                "--key",
                &other,
            ],
        );
        assert!(
            !o.status.success() && text(&o).contains("signed by"),
            "{}",
            text(&o)
        );
    }
);

both_backends!(
    the_sink_appends_each_entry_once_in_chain_order,
    |backend| async move {
        let app = start(backend).await;
        let engine = &app.engine;
        let sink = app.env.path().join("audit/sink.jsonl");
        let first = say(engine, &person("alice"), "run echo-args note=one").await;
        wait_final(engine, first.run.expect("recorded").id).await;
        let store = engine.store();
        let n = execgov::audit::sink::append_new(store, &sink)
            .await
            .unwrap();
        assert!(n > 0);
        // A crash mid-line leaves a torn line: it is cut, then appended whole.
        let before = std::fs::read_to_string(&sink).unwrap();
        let second = say(engine, &person("alice"), "run echo-args note=two").await;
        wait_final(engine, second.run.expect("recorded").id).await;
        std::fs::write(&sink, format!("{before}{{\"schema\":\"execgov.au")).unwrap();
        // Two appenders at once (two servers on one host) write nothing twice.
        let (a, b) = tokio::join!(
            execgov::audit::sink::append_new(store, &sink),
            execgov::audit::sink::append_new(store, &sink)
        );
        a.unwrap();
        b.unwrap();
        let all = store.audit_entries(None, 0, 1000).await.unwrap();
        let lines: Vec<String> = std::fs::read_to_string(&sink)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let expected: Vec<String> = all.iter().map(execgov::audit::export::line).collect();
        assert_eq!(
            lines, expected,
            "every entry once, in order, as export writes it"
        );
    }
);

#[test]
fn a_sink_that_is_not_a_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("execgov.toml");
    std::fs::write(&path, "[audit]\nsink = \"syslog:local0\"\n").unwrap();
    let err = execgov::config::Config::load(Some(&path))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("execgov.toml:2") && err.contains("file:PATH"),
        "{err}"
    );
    std::fs::write(&path, "[audit]\nsink = \"file:audit.jsonl\"\n").unwrap();
    let c = execgov::config::Config::load(Some(&path)).unwrap();
    assert_eq!(c.audit.sink, Some(dir.path().join("audit.jsonl")));
}
