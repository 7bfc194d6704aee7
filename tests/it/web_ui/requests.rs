//! Asking for runs from the web form and the JSON API goes through the engine's
//! entry point for requests, as chat does: bad arguments and unknown scripts leave
//! a `run.refused` audit entry, and `web:local` listed in `[channels]` is a place
//! where a channel-restricted script may be asked for.

use super::*;
use serde_json::json;

/// The `run.refused` entries not tied to a run (refused before one was recorded).
async fn unrecorded_refusals(app: &WebApp) -> Vec<execgov::store::AuditEntry> {
    app.engine
        .store()
        .audit_entries(None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "run.refused" && e.run_id.is_none())
        .collect()
}

both_backends!(
    argument_errors_from_the_web_form_and_the_api_are_audited,
    |backend| async move {
        let app = WebApp::start(backend, "").await;
        let mut alice = app.sign_in("alice").await;
        let csrf = alice.csrf().await;

        let r = alice
            .post_form("/scripts/risky/run", &[("csrf", &csrf), ("marker", "")])
            .await;
        assert_eq!(r.status, 400, "the form is shown again: {}", r.body);
        let refused = unrecorded_refusals(&app).await;
        assert_eq!(
            refused.len(),
            1,
            "the form's bad request is audited: {refused:?}"
        );
        let e = &refused[0];
        assert_eq!(e.actor, "person:alice", "{e:?}");
        assert_eq!(e.details["script"], "risky");
        assert_eq!(e.details["place"]["platform"], "web", "{e:?}");
        assert!(
            e.details["reason"]
                .as_str()
                .unwrap()
                .contains("missing required parameter `marker`"),
            "{e:?}"
        );

        let token = alice_api_token(&mut alice, &csrf).await;
        let mut c = app.client();
        let r = c
            .post_json(
                "/api/v1/runs",
                &token,
                json!({ "script": "risky", "args": { "marker": "/dev/null", "extra": true } }),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains("extra"),
            "the API names the bad argument: {}",
            r.body
        );
        let r = c
            .post_json(
                "/api/v1/runs",
                &token,
                json!({ "script": "no-such-script" }),
            )
            .await;
        assert_eq!(r.status, 404, "{}", r.body);

        let refused = unrecorded_refusals(&app).await;
        assert_eq!(
            refused.len(),
            3,
            "each API refusal is audited too: {refused:?}"
        );
        assert_eq!(refused[1].details["args"]["extra"], "true", "{refused:?}");
        assert_eq!(refused[2].details["script"], "no-such-script");
        assert!(
            refused
                .iter()
                .all(|e| e.details["place"]["platform"] == "web"),
            "{refused:?}"
        );
        let runs = app
            .engine
            .store()
            .list_runs(&execgov::store::RunFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(runs.is_empty(), "nothing was recorded as a run: {runs:?}");
    }
);

/// A fresh API token for the signed-in `client`.
async fn alice_api_token(client: &mut Client, csrf: &str) -> String {
    let page = client
        .post_form("/account/tokens", &[("csrf", csrf), ("name", "ci")])
        .await;
    page.body
        .split("id=\"new-token\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("the new token is shown once: {}", page.body))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_local_in_channels_admits_requests_from_the_web() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    let listed = "oncall = [\"slack:CONCALL\", \"cli:local\"]";
    assert!(config.contains(listed), "the test config lists oncall");
    std::fs::write(
        env.config_path(),
        config.replacen(
            listed,
            "oncall = [\"slack:CONCALL\", \"cli:local\"]\nbrowser = [\"web:local\"]",
            1,
        ),
    )
    .unwrap();
    let m = env.path().join("manifests");
    for (name, channel) in [("from-web", "browser"), ("from-oncall", "oncall")] {
        std::fs::write(
            m.join(format!("{name}.toml")),
            format!(
                "name = \"{name}\"\ndescription = \"Only from {channel}\"\ncommand = [\"true\"]\n\
                 [access]\nrun = [\"anyone\"]\nchannels = [\"{channel}\"]\n"
            ),
        )
        .unwrap();
    }
    let app = WebApp::start_in(env, "", std::sync::Arc::new(execgov::clock::SystemClock)).await;
    let mut alice = app.sign_in("alice").await;
    let csrf = alice.csrf().await;

    let r = alice
        .post_form("/scripts/from-web/run", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let id = RunId::parse(r.header("location").unwrap().trim_start_matches("/runs/")).unwrap();
    let run = wait_final(&app.engine, id).await;
    assert_eq!(
        run.state,
        RunState::Succeeded,
        "a script limited to a channel that lists web:local runs from the web: {:?}",
        run.reason
    );

    let r = alice
        .post_form("/scripts/from-oncall/run", &[("csrf", &csrf)])
        .await;
    let id = RunId::parse(r.header("location").unwrap().trim_start_matches("/runs/")).unwrap();
    assert_eq!(
        app.engine.store().get_run(id).await.unwrap().state,
        RunState::Refused,
        "one whose channels do not list web:local is refused there"
    );
}
