//! The JSON API: it needs a personal token (stored hashed) and stops accepting one
//! the moment it is revoked; it lists, shows, starts and decides runs through the
//! engine's rules, hides runs a person may not see exactly like missing ones, and
//! describes itself in a consistent OpenAPI 3 document.

use crate::both_backends;
use crate::helpers::*;
use crate::web_support::*;
use execgov::types::{RunId, RunState};
use serde_json::json;

/// Creates an API token for `name` through the web UI and returns it.
async fn api_token(app: &WebApp, name: &str) -> (Client, String) {
    let mut c = app.sign_in(name).await;
    let csrf = c.csrf().await;
    let page = c
        .post_form("/account/tokens", &[("csrf", &csrf), ("name", "tests")])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = page
        .body
        .split("id=\"new-token\">")
        .nth(1)
        .expect("the new token is shown once")
        .split('<')
        .next()
        .unwrap();
    assert!(token.starts_with("egv_"), "{token}");
    (c, token.to_string())
}

both_backends!(
    tokens_are_needed_and_revoked_ones_stop_working,
    |backend| async move {
        let app = WebApp::start(backend, "").await;
        let mut anon = app.client();
        let r = anon.get("/api/v1/runs").await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert!(
            r.json()["error"].as_str().unwrap().contains("Bearer"),
            "says what to send"
        );
        assert_eq!(
            anon.get_bearer("/api/v1/runs", "egv_0000").await.status,
            401,
            "an unknown token"
        );

        let (mut web, token) = api_token(&app, "alice").await;
        let r = anon.get_bearer("/api/v1/runs", &token).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let page = web.get("/account/tokens").await;
        assert!(
            !page.body.contains(&token),
            "the token is shown once, not on later visits"
        );
        let listed = app.engine.store().api_tokens("alice").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].last_used_at.is_some(), "its use is noted");

        let csrf = web.csrf().await;
        let r = web
            .post_form(
                &format!("/account/tokens/{}/revoke", listed[0].id),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        let r = anon.get_bearer("/api/v1/runs", &token).await;
        assert_eq!(
            r.status, 401,
            "a revoked token stops working at once: {}",
            r.body
        );
        let (_, bobs) = api_token(&app, "bob").await;
        let bobs_id = app.engine.store().api_tokens("bob").await.unwrap()[0].id;
        let r = web
            .post_form(
                &format!("/account/tokens/{bobs_id}/revoke"),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(r.status, 404, "nobody revokes another person's token");
        assert_eq!(anon.get_bearer("/api/v1/runs", &bobs).await.status, 200);
    }
);

both_backends!(
    runs_are_listed_shown_started_and_decided,
    |backend| async move {
        let app = WebApp::start(backend, "").await;
        let (_, alice) = api_token(&app, "alice").await;
        let (_, bob) = api_token(&app, "bob").await;
        let mut c = app.client();

        let r = c
            .post_json(
                "/api/v1/runs",
                &alice,
                json!({ "script": "echo-args", "args": { "note": "from api" } }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = RunId(r.json()["run"]["id"].as_i64().unwrap());
        let run = wait_final(&app.engine, id).await;
        assert_eq!(run.state, RunState::Succeeded);
        assert_eq!(run.place.platform, execgov::types::Platform::Web);

        let r = c.get_bearer(&format!("/api/v1/runs/{id}"), &alice).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["state"], "succeeded");
        assert_eq!(v["args"]["note"], "from api");
        assert_eq!(v["exit_code"], 0);
        assert!(
            v["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "run.succeeded")
        );
        assert!(
            v["output_tail"]
                .as_str()
                .unwrap()
                .contains("arg=[from api]")
        );

        let r = c
            .get_bearer(
                "/api/v1/runs?script=echo-args&state=succeeded&limit=1",
                &alice,
            )
            .await;
        let v = r.json();
        assert_eq!(v["runs"][0]["id"], id.0);
        assert_eq!(
            v["next_before"], id.0,
            "a full page gives the cursor of the next"
        );
        let r = c
            .get_bearer(&format!("/api/v1/runs?before={}", id.0), &alice)
            .await;
        assert!(r.json()["runs"].as_array().unwrap().is_empty());
        assert_eq!(
            c.get_bearer("/api/v1/runs?from=yesterday", &alice)
                .await
                .status,
            400
        );

        let r = c
            .post_json("/api/v1/runs", &alice, json!({ "script": "echo-arg" }))
            .await;
        assert_eq!(r.status, 404);
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .contains("did you mean echo-args"),
            "{}",
            r.body
        );
        let r = c
            .post_json(
                "/api/v1/runs",
                &alice,
                json!({ "script": "risky", "args": { "marker": 5, "extra": true } }),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        let r = c
            .send(
                "POST",
                "/api/v1/runs",
                &[
                    ("Authorization", &format!("Bearer {alice}")),
                    ("Content-Type", "application/json"),
                ],
                Some("{".into()),
            )
            .await;
        assert_eq!(r.status, 400, "malformed JSON is a JSON 400: {}", r.body);
        assert!(r.json()["error"].is_string());

        // Policy applies: bob is not in sre, so his request is recorded as refused.
        let r = c
            .post_json(
                "/api/v1/runs",
                &bob,
                json!({ "script": "risky", "args": { "marker": "/dev/null" } }),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert_eq!(r.json()["run"]["state"], "refused");

        let marker = app.env.path().join("api-marker");
        let r = c
            .post_json(
                "/api/v1/runs",
                &alice,
                json!({ "script": "risky", "args": { "marker": marker } }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.json()["run"]["state"], "awaiting_approval");
        let risky = r.json()["run"]["id"].as_i64().unwrap();
        let r = c
            .post_json(
                &format!("/api/v1/runs/{risky}/decision"),
                &alice,
                json!({ "decision": "approve" }),
            )
            .await;
        assert_eq!(r.status, 409, "the requester may not approve: {}", r.body);
        let r = c
            .post_json(
                &format!("/api/v1/runs/{risky}/decision"),
                &bob,
                json!({ "decision": "maybe" }),
            )
            .await;
        assert_eq!(r.status, 400);
        let r = c
            .post_json(
                &format!("/api/v1/runs/{risky}/decision"),
                &bob,
                json!({ "decision": "approve", "reason": "ok" }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            wait_final(&app.engine, RunId(risky)).await.state,
            RunState::Succeeded
        );
        assert!(marker.exists());
        let r = c
            .post_json(
                &format!("/api/v1/runs/{risky}/decision"),
                &bob,
                json!({ "decision": "approve" }),
            )
            .await;
        assert_eq!(r.status, 409, "no second decision on a finished run");

        let r = c.get_bearer("/api/v1/scripts", &alice).await;
        assert_eq!(r.status, 200);
        let scripts = r.json()["scripts"].as_array().unwrap().clone();
        let risky = scripts.iter().find(|s| s["name"] == "risky").unwrap();
        assert_eq!(risky["params"][0]["name"], "marker");
        assert_eq!(risky["params"][0]["required"], true);
        assert_eq!(risky["approval"]["quorum"], 1);
        assert_eq!(risky["may_run"], true);
        let r = c.get_bearer("/api/v1/scripts/risky", &bob).await;
        assert_eq!(r.json()["may_run"], false, "bob is not in sre");
        assert_eq!(c.get_bearer("/api/v1/scripts/nope", &bob).await.status, 404);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_someone_may_not_see_looks_missing() {
    let app = WebApp::start(Backend::Sqlite, "").await;
    let run = say(&app.engine, &person("alice"), "run echo-args")
        .await
        .run
        .unwrap();
    wait_final(&app.engine, run.id).await;
    let (_, bob) = api_token(&app, "bob").await;
    let (_, dave) = api_token(&app, "dave").await;
    let mut c = app.client();
    let hidden = c
        .get_bearer(&format!("/api/v1/runs/{}", run.id), &bob)
        .await;
    let missing = c.get_bearer("/api/v1/runs/424242", &bob).await;
    assert_eq!((hidden.status, missing.status), (404, 404));
    assert_eq!(
        hidden.body.replace(&run.id.to_string(), "N"),
        missing.body.replace("424242", "N")
    );
    let decide = c
        .post_json(
            &format!("/api/v1/runs/{}/decision", run.id),
            &bob,
            json!({ "decision": "deny" }),
        )
        .await;
    assert_eq!(decide.status, 404, "deciding on it says nothing more");
    let list = c.get_bearer("/api/v1/runs", &bob).await.json();
    assert!(
        list["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != run.id.0),
        "not listed"
    );
    assert_eq!(
        c.get_bearer(&format!("/api/v1/runs/{}", run.id), &dave)
            .await
            .status,
        200,
        "admins see it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_consistently() {
    let app = WebApp::start(Backend::Sqlite, "").await;
    let r = app.client().get("/api/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc["servers"][0]["url"],
        format!("http://{}/api/v1", app.addr)
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/runs", "get"),
        ("/runs", "post"),
        ("/runs/{id}", "get"),
        ("/runs/{id}/decision", "post"),
        ("/scripts", "get"),
        ("/scripts/{name}", "get"),
    ] {
        let op = &paths[path][method];
        assert!(
            op["operationId"].is_string(),
            "{method} {path} is described"
        );
        assert!(
            op["responses"]["401"].is_object(),
            "{method} {path} documents the missing token"
        );
    }
    // Every $ref points at a schema that exists.
    fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if k == "$ref" {
                        out.push(v.as_str().unwrap().to_string());
                    }
                    refs(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("local schema refs");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} resolves"
        );
    }
}
