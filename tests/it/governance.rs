//! The governed chain end to end through the engine and a real pool, on SQLite
//! and PostgreSQL: approvals (self, non-approver, approver, deny, expiry, a
//! changed script), refusals with audit entries, and per-script concurrency.

use crate::both_backends;
use crate::helpers::*;
use execgov::clock::{Clock, ManualClock};
use execgov::engine::ReplyKind;
use execgov::types::RunState;
use std::sync::Arc;
use std::time::Duration;

both_backends!(
    risky_run_needs_an_approver_other_than_the_requester,
    |b| async move {
        let app = start(b).await;
        let e = &app.engine;
        let marker = app.env.path().join("marker");
        // alice is in sre (may ask) and a listed approver: only self_approval stops her.
        let reply = say(
            e,
            &person("alice"),
            &format!("run risky marker={}", marker.display()),
        )
        .await;
        assert_eq!(reply.kind, ReplyKind::Accepted, "{}", reply.text);
        let run = reply.run.expect("a run was recorded");
        assert_eq!(run.state, RunState::AwaitingApproval);

        let own = say(e, &person("alice"), &format!("approve {}", run.id)).await;
        assert!(
            own.is_error() && own.text.contains("requested this run"),
            "the requester cannot approve: {}",
            own.text
        );
        let outsider = say(e, &person("carol"), &format!("approve {}", run.id)).await;
        assert!(
            outsider.is_error(),
            "a non-approver cannot approve: {}",
            outsider.text
        );
        assert_eq!(
            e.store().get_run(run.id).await.unwrap().state,
            RunState::AwaitingApproval
        );

        let ok = say(e, &person("bob"), &format!("approve {}", run.id)).await;
        assert_eq!(ok.kind, ReplyKind::Decided, "{}", ok.text);
        let done = wait_final(e, run.id).await;
        assert_eq!(
            done.state,
            RunState::Succeeded,
            "approved run ran: {:?}",
            done.error
        );
        assert!(marker.exists(), "the script really ran");
        let acts = actions(e, run.id).await;
        assert_eq!(
            acts.iter().filter(|a| *a == "approval.refused").count(),
            2,
            "both refusals audited: {acts:?}"
        );
        assert!(acts.iter().any(|a| a == "approval.approved"), "{acts:?}");
        assert!(acts.iter().any(|a| a == "run.succeeded"), "{acts:?}");
    }
);

both_backends!(
    a_non_approver_is_refused_and_changes_nothing,
    |b| async move {
        let app = start(b).await;
        let e = &app.engine;
        let marker = app.env.path().join("marker");
        let run = say(
            e,
            &person("alice"),
            &format!("run risky marker={}", marker.display()),
        )
        .await
        .run
        .unwrap();
        // carol is in sre (may run it) but is no approver.
        let r = say(e, &person("carol"), &format!("approve {}", run.id)).await;
        assert!(r.is_error(), "{}", r.text);
        assert!(r.text.contains("not an approver"), "says why: {}", r.text);
        let now = e.store().get_run(run.id).await.unwrap();
        assert_eq!(
            now.state,
            RunState::AwaitingApproval,
            "a refused approval changes nothing"
        );
        assert!(e.store().approvals(run.id).await.unwrap().is_empty());
        assert!(
            actions(e, run.id)
                .await
                .contains(&"approval.refused".to_string())
        );
    }
);

both_backends!(a_deny_rejects_and_nothing_runs, |b| async move {
    let app = start(b).await;
    let e = &app.engine;
    let marker = app.env.path().join("marker");
    let run = say(
        e,
        &person("alice"),
        &format!("run risky marker={}", marker.display()),
    )
    .await
    .run
    .unwrap();
    let r = say(
        e,
        &person("dave"),
        &format!("deny {} not during the freeze", run.id),
    )
    .await;
    assert_eq!(r.kind, ReplyKind::Decided, "{}", r.text);
    assert_eq!(
        e.store().get_run(run.id).await.unwrap().state,
        RunState::Rejected
    );
    let late = say(e, &person("bob"), &format!("approve {}", run.id)).await;
    assert!(
        late.is_error(),
        "a rejected run cannot be approved: {}",
        late.text
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!marker.exists(), "a denied run never runs");
    let approvals = e.store().approvals(run.id).await.unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(
        approvals[0].reason.as_deref(),
        Some("not during the freeze")
    );
});

both_backends!(an_expired_request_never_runs, |b| async move {
    let env = TestEnv::new(b).await;
    let clock = ManualClock::new(execgov::clock::SystemClock.now_ms());
    let engine = execgov::app::build_engine(Arc::new(env.config()), clock.clone())
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let pool = execgov::runner::Local::new(
        engine.clone(),
        execgov::runner::LocalOptions::from_engine(&engine),
    );
    tokio::spawn(execgov::runners::maintain_until_stopped(
        engine.clone(),
        stop.clone(),
    ));
    tokio::spawn(pool.run_until_stopped(None, stop.clone()));
    let marker = env.path().join("marker");
    let run = say(
        &engine,
        &person("alice"),
        &format!("run risky marker={}", marker.display()),
    )
    .await
    .run
    .unwrap();
    clock.advance(2 * 3600 * 1000);
    let done = wait_final(&engine, run.id).await;
    assert_eq!(
        done.state,
        RunState::Expired,
        "nobody decided within the hour"
    );
    let late = say(&engine, &person("bob"), &format!("approve {}", run.id)).await;
    assert!(
        late.is_error(),
        "an expired request cannot be approved: {}",
        late.text
    );
    assert!(!marker.exists(), "an expired run never runs");
    assert!(
        actions(&engine, run.id)
            .await
            .iter()
            .any(|a| a.contains("expired"))
    );
    stop.cancel();
});

both_backends!(
    a_script_changed_after_the_request_needs_a_new_request,
    |b| async move {
        let app = start(b).await;
        let e = &app.engine;
        let marker = app.env.path().join("marker");
        let run = say(
            e,
            &person("alice"),
            &format!("run risky marker={}", marker.display()),
        )
        .await
        .run
        .unwrap();
        let script = app.env.path().join("manifests/scripts/risky.sh");
        std::fs::write(&script, "echo changed > \"$1\"\n").unwrap();
        let r = say(e, &person("bob"), &format!("approve {}", run.id)).await;
        assert!(
            r.is_error(),
            "approval of a changed script refused: {}",
            r.text
        );
        assert!(r.text.contains("changed"), "{}", r.text);
        assert_eq!(
            e.store().get_run(run.id).await.unwrap().state,
            RunState::Rejected
        );
        assert!(!marker.exists());
    }
);

both_backends!(refusals_answer_clearly_and_are_audited, |b| async move {
    let app = start(b).await;
    let e = &app.engine;
    let r = say(e, &person("alice"), "run rsky marker=x").await;
    assert!(
        r.is_error() && r.text.contains("did you mean risky"),
        "closest name offered: {}",
        r.text
    );
    let r = say(e, &person("alice"), "run risky markr=x").await;
    assert!(
        r.is_error() && r.text.contains("markr"),
        "bad argument named: {}",
        r.text
    );
    // bob may approve risky but is not in sre, so may not ask for it.
    let r = say(e, &person("bob"), "run risky marker=x").await;
    assert!(r.is_error() && r.text.contains("may not run"), "{}", r.text);
    let refused = r.run.expect("a policy refusal is recorded as a run");
    assert_eq!(refused.state, RunState::Refused);
    let all = e.store().audit_entries(None, 0, 1000).await.unwrap();
    let refusals = all.iter().filter(|a| a.action == "run.refused").count();
    assert!(
        refusals >= 3,
        "each refused request leaves an audit entry: {all:?}"
    );
});

both_backends!(
    max_concurrent_one_runs_three_requests_one_at_a_time,
    |b| async move {
        let app = start(b).await;
        let e = &app.engine;
        let trace = app.env.path().join("trace");
        let mut ids = Vec::new();
        for _ in 0..3 {
            let r = say(
                e,
                &person("carol"),
                &format!("run serial trace={}", trace.display()),
            )
            .await;
            ids.push(r.run.expect("accepted").id);
        }
        for id in &ids {
            let done = wait_final(e, *id).await;
            assert_eq!(
                done.state,
                RunState::Succeeded,
                "run {id}: {:?}",
                done.error
            );
        }
        let text = std::fs::read_to_string(&trace).unwrap();
        let mut spans: Vec<(u128, u128)> = Vec::new();
        let mut starts = std::collections::HashMap::new();
        for line in text.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let t: u128 = parts[2].parse().unwrap();
            match parts[0] {
                "start" => {
                    starts.insert(parts[1].to_string(), t);
                }
                _ => spans.push((starts[parts[1]], t)),
            }
        }
        assert_eq!(spans.len(), 3, "all three finished: {text}");
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "never two at once: {text}");
        }
    }
);

both_backends!(
    a_running_run_can_be_cancelled_by_its_requester,
    |b| async move {
        let app = start(b).await;
        let e = &app.engine;
        let trace = app.env.path().join("trace");
        std::fs::write(
            app.env.path().join("manifests/scripts/serial.sh"),
            "echo start >> \"$1\"\nsleep 30\n",
        )
        .unwrap();
        // The manifest's digest covers the script: reload so the request binds the new one.
        let (catalog, problems) =
            execgov::manifest::load_catalog(&app.env.path().join("manifests"), e.config());
        assert!(problems.is_empty(), "{problems:?}");
        e.replace_catalog(catalog);
        let run = say(
            e,
            &person("carol"),
            &format!("run serial trace={}", trace.display()),
        )
        .await
        .run
        .unwrap();
        wait_for(e, run.id, |s| s == RunState::Running).await;
        let other = say(e, &person("bob"), &format!("cancel {}", run.id)).await;
        assert!(
            other.is_error(),
            "someone else cannot cancel: {}",
            other.text
        );
        let r = say(e, &person("carol"), &format!("cancel {}", run.id)).await;
        assert!(!r.is_error(), "{}", r.text);
        let done = wait_final(e, run.id).await;
        assert_eq!(done.state, RunState::Cancelled);
    }
);
