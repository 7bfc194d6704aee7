//! Socket Mode: envelopes reach the same handlers as HTTP, each is acked, and a
//! `disconnect` leads to a fresh connection; shutdown ends the loop.

use crate::spawn_app;
use execgov_chat::InboundContent;
use execgov_slack::SocketOptions;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

type Ws = WebSocketStream<TcpStream>;

async fn accept(listener: &TcpListener) -> Ws {
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the adapter connects")
        .unwrap();
    tokio_tungstenite::accept_async(stream).await.unwrap()
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an answer in time")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

fn mention_envelope(envelope_id: &str) -> Value {
    json!({
        "envelope_id": envelope_id, "type": "events_api", "accepts_response_payload": false, "retry_attempt": 0,
        "payload": {
            "type": "event_callback", "event_id": "EvSock1", "team_id": "T1",
            "event": { "type": "app_mention", "user": "U0CAROL", "text": "<@U0BOT> status 4", "ts": "9.1", "channel": "C1" }
        }
    })
}

/// What `connected` was last told, as a watch to wait on.
fn connection_state() -> (
    tokio::sync::watch::Receiver<bool>,
    impl Fn(bool) + Send + Sync + 'static,
) {
    let (tx, rx) = tokio::sync::watch::channel(true);
    (rx, move |up| {
        tx.send_replace(up);
    })
}

async fn until_connected(rx: &mut tokio::sync::watch::Receiver<bool>, want: bool) {
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|up| *up == want))
        .await
        .unwrap_or_else(|_| panic!("connected = {want} in time"))
        .unwrap();
}

#[tokio::test]
async fn envelopes_are_handled_acked_and_reconnected() {
    let app = spawn_app().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    app.fake.set_socket_url(format!(
        "ws://{}/link/?ticket=t1",
        listener.local_addr().unwrap()
    ));
    let shutdown = CancellationToken::new();
    let (mut up, connected) = connection_state();
    let task = tokio::spawn(
        app.slack
            .clone()
            .socket_mode_until_stopped(shutdown.clone(), connected),
    );

    let mut ws = accept(&listener).await;
    let open = app.fake.calls_of("apps.connections.open");
    assert_eq!(
        open[0].authorization.as_deref(),
        Some("Bearer xapp-test-token"),
        "the app token opens sockets"
    );
    assert!(!*up.borrow(), "not connected until Slack says hello");
    send(&mut ws, json!({ "type": "hello", "num_connections": 1 })).await;
    until_connected(&mut up, true).await;

    send(&mut ws, json!({
        "envelope_id": "env-cmd", "type": "slash_commands", "accepts_response_payload": true,
        "payload": { "command": "/run", "text": "list", "user_id": "U0ALICE", "channel_id": "C0123", "team_id": "T1", "trigger_id": "1.2" }
    })).await;
    let ack = next_json(&mut ws).await;
    assert_eq!(ack["envelope_id"], "env-cmd");
    assert_eq!(
        ack["payload"]["response_type"], "ephemeral",
        "the answer rides on the ack"
    );

    send(&mut ws, mention_envelope("env-ev1")).await;
    assert_eq!(next_json(&mut ws).await["envelope_id"], "env-ev1");
    send(&mut ws, mention_envelope("env-ev2")).await;
    assert_eq!(
        next_json(&mut ws).await["envelope_id"],
        "env-ev2",
        "a redelivery is acked too"
    );

    send(&mut ws, json!({
        "envelope_id": "env-click", "type": "interactive", "accepts_response_payload": false,
        "payload": {
            "type": "block_actions", "user": { "id": "U0BOB" }, "trigger_id": "3.4",
            "channel": { "id": "C0456" }, "container": { "channel_id": "C0456", "message_ts": "1.1" },
            "actions": [{ "action_id": "execgov_approve", "value": "31" }]
        }
    })).await;
    assert_eq!(next_json(&mut ws).await["envelope_id"], "env-click");

    let got = app.handler.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got_all = app.handler.received();
    assert_eq!(got_all.len(), 3, "command, mention once, click: {got:?}");
    assert!(got_all.iter().any(|i| i.content
        == InboundContent::Approve {
            run_id: "31".into(),
            code: None
        }
        && i.actor.id == "U0BOB"));

    // Slack rotates the connection: it warns with `disconnect` and closes the
    // old one some seconds later. The next connection is opened first.
    send(
        &mut ws,
        json!({ "type": "disconnect", "reason": "refresh_requested" }),
    )
    .await;
    let mut ws2 = accept(&listener).await;
    assert_eq!(
        app.fake.calls_of("apps.connections.open").len(),
        2,
        "a fresh URL for each connection"
    );
    assert!(
        *up.borrow(),
        "still connected through the old connection: no gap"
    );
    send(&mut ws, mention_envelope("env-ev3")).await;
    assert_eq!(
        next_json(&mut ws).await["envelope_id"],
        "env-ev3",
        "the old connection still delivers until the new one is up"
    );
    send(&mut ws2, json!({ "type": "hello" })).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the old connection is closed once the new one says hello"
    );
    assert!(*up.borrow(), "connected throughout the rotation");
    send(&mut ws2, mention_envelope("env-ev4")).await;
    assert_eq!(next_json(&mut ws2).await["envelope_id"], "env-ev4");

    // Closed by Slack without a warning: not connected until the next hello.
    ws2.close(None).await.unwrap();
    until_connected(&mut up, false).await;
    let mut ws3 = accept(&listener).await;
    send(&mut ws3, json!({ "type": "hello" })).await;
    until_connected(&mut up, true).await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("Socket Mode stops when told")
        .unwrap();
    assert!(!*up.borrow(), "not connected once stopped");
}

#[tokio::test]
async fn a_socket_that_stops_answering_is_replaced() {
    let app = spawn_app().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    app.fake
        .set_socket_url(format!("ws://{}/", listener.local_addr().unwrap()));
    let shutdown = CancellationToken::new();
    let (mut up, connected) = connection_state();
    // 30 s by default; short here so the test is quick.
    let opts = SocketOptions {
        timeout: Duration::from_millis(600),
    };
    let task = tokio::spawn(
        app.slack
            .clone()
            .socket_mode_with(shutdown.clone(), opts, connected),
    );
    let mut ws = accept(&listener).await;
    send(&mut ws, json!({ "type": "hello" })).await;
    until_connected(&mut up, true).await;
    // Pings arrive, and while they are answered the connection stays.
    let ping = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(Ok(Message::Ping(_))) = ws.next().await {
                return;
            }
        }
    })
    .await;
    assert!(ping.is_ok(), "the adapter pings");
    // Half-open: the server side stops reading (no pong) and sends nothing.
    let _silent = ws;
    until_connected(&mut up, false).await;
    let mut ws2 = accept(&listener).await;
    assert_eq!(
        app.fake.calls_of("apps.connections.open").len(),
        2,
        "a new connection replaces the silent one"
    );
    send(&mut ws2, json!({ "type": "hello" })).await;
    until_connected(&mut up, true).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_failing_connection_is_retried() {
    let app = spawn_app().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    app.fake
        .set_socket_url(format!("ws://{}/", listener.local_addr().unwrap()));
    app.fake.queue(
        "apps.connections.open",
        crate::fake_slack::Canned {
            status: 200,
            retry_after: None,
            body: json!({ "ok": false, "error": "internal_error" }),
        },
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        app.slack
            .clone()
            .socket_mode_until_stopped(shutdown.clone(), |_| {}),
    );
    let _ws = accept(&listener).await;
    assert_eq!(
        app.fake.calls_of("apps.connections.open").len(),
        2,
        "tried again after the failure"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
