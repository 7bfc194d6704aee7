//! Audit links: a good token opens its one run (page, log); a wrong, expired
//! or other run's token gets 403; `/healthz` answers.

use crate::helpers::*;
use execgov::app::Application;
use execgov::types::RunId;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_links_open_their_run_and_nothing_else() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let app = Application::build(env.config()).await.unwrap();
    let addr = app.local_addr();
    let engine = app.engine();
    let stop = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(stop.clone()));

    let (status, body) = http_get(addr, "/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));

    let a = say(&engine, &person("alice"), "run echo-args note=first")
        .await
        .run
        .unwrap();
    let b = say(&engine, &person("alice"), "run echo-args note=second")
        .await
        .run
        .unwrap();
    wait_final(&engine, a.id).await;
    wait_final(&engine, b.id).await;

    let a = engine.store().get_run(a.id).await.unwrap();
    let link = engine.audit_link(&a);
    assert!(
        link.starts_with(&format!("http://{addr}/runs/{}?t=", a.id)),
        "{link}"
    );
    let path = &link[link.find("/runs/").unwrap()..];
    let (status, body) = http_get(addr, path).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("echo-args") && body.contains("note=first"),
        "the page shows the request"
    );
    assert!(body.contains("arg=[first]"), "and the log");
    assert!(body.contains("run.succeeded"), "and the timeline");

    let token = path.split("t=").nth(1).unwrap();
    let (status, _) = http_get(addr, &format!("/runs/{}/log?t={token}", a.id)).await;
    assert_eq!(status, 200, "the full log opens with the same token");

    let (status, body) = http_get(addr, &format!("/runs/{}?t={token}", b.id)).await;
    assert_eq!(
        status, 403,
        "another run's token does not open run {}: {body}",
        b.id
    );
    let (status, _) = http_get(addr, &format!("/runs/{}?t=1.abcd", a.id)).await;
    assert_eq!(status, 403, "a forged token");
    let (status, _) = http_get(addr, &format!("/runs/{}", a.id)).await;
    assert_eq!(status, 403, "no token");
    let expired = engine.links().token(a.id, engine.now() - 1);
    let (status, body) = http_get(addr, &format!("/runs/{}?t={expired}", a.id)).await;
    assert_eq!(status, 403);
    assert!(body.contains("expired"), "says why: {body}");
    let missing = engine.links().token(RunId(999), engine.now() + 60_000);
    let (status, _) = http_get(addr, &format!("/runs/999?t={missing}")).await;
    assert_eq!(
        status, 403,
        "a run that does not exist looks like any other refusal"
    );

    stop.cancel();
    server.await.unwrap().unwrap();
}
