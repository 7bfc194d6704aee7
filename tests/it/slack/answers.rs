//! What the fake Slack Web API answers, method by method, in Slack's
//! documented shapes (and its errors: `not_authed`, `invalid_auth`,
//! `channel_not_found`, `message_not_found`, `unknown_method`, …), after any
//! programmed fault; and the upload URL that stores a file's bytes.

use super::fake::{
    APP_ID, APP_TOKEN, BOT_ID, BOT_TOKEN, BOT_USER, Call, Fault, Inner, Shared, TEAM, UploadedFile,
};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Request fields as JSON: a JSON body, else form fields, plus query fields.
fn parse_body(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Value {
    let mut out = Map::new();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") {
        if let Ok(Value::Object(m)) = serde_json::from_slice(body) {
            out = m;
        }
    } else if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
        out.extend(pairs.into_iter().map(|(k, v)| (k, Value::String(v))));
    }
    if let Some(q) = query
        && let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(q)
    {
        out.extend(pairs.into_iter().map(|(k, v)| (k, Value::String(v))));
    }
    Value::Object(out)
}

pub(super) async fn api(
    State(s): State<Arc<Shared>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let body = parse_body(&headers, query.as_deref(), &body);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let expected = if method == "apps.connections.open" {
        APP_TOKEN
    } else {
        BOT_TOKEN
    };
    let (status, response, retry_after) = {
        let mut inner = s.lock();
        let fault = take_fault(&mut inner, &method);
        let (status, response, retry_after) = match (auth.as_deref(), fault) {
            (None, _) => (200, json!({"ok": false, "error": "not_authed"}), None),
            (Some(a), _) if a != format!("Bearer {expected}") => {
                (200, json!({"ok": false, "error": "invalid_auth"}), None)
            }
            (_, Some(Fault::RateLimited { retry_after_secs })) => (
                429,
                json!({"ok": false, "error": "ratelimited"}),
                Some(retry_after_secs),
            ),
            (_, Some(Fault::Error(e))) => (200, json!({"ok": false, "error": e}), None),
            (_, None) => (200, answer(&s.base, &mut inner, &method, &body), None),
        };
        inner.calls.push(Call {
            method,
            body,
            auth,
            status,
            response: response.clone(),
            at: std::time::Instant::now(),
        });
        (status, response, retry_after)
    };
    s.bump();
    let mut out = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        axum::Json(response),
    )
        .into_response();
    if let Some(secs) = retry_after {
        out.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    out
}

fn take_fault(inner: &mut Inner, method: &str) -> Option<Fault> {
    let slot = inner
        .faults
        .iter_mut()
        .find(|(m, n, _)| m == method && *n > 0)?;
    slot.1 -= 1;
    let fault = slot.2.clone();
    inner.faults.retain(|(_, n, _)| *n > 0);
    Some(fault)
}

/// A string field, or the error Slack gives when it is missing.
fn need<'a>(body: &'a Value, key: &str, error: &str) -> Result<&'a str, Value> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| json!({"ok": false, "error": error}))
}

/// A JSON-valued field that a form body carries as a string.
fn json_field(body: &Value, key: &str) -> Option<Value> {
    match body.get(key)? {
        Value::String(s) => serde_json::from_str(s).ok(),
        v => Some(v.clone()),
    }
}

fn answer(base: &str, inner: &mut Inner, method: &str, body: &Value) -> Value {
    answer_or_error(base, inner, method, body).unwrap_or_else(|e| e)
}

fn answer_or_error(
    base: &str,
    inner: &mut Inner,
    method: &str,
    body: &Value,
) -> Result<Value, Value> {
    Ok(match method {
        "auth.test" => json!({
            "ok": true, "url": "https://execgov-test.slack.com/", "team": "ExecGov Test", "user": "execgov",
            "team_id": TEAM, "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": false
        }),
        "chat.postMessage" => {
            let channel = need(body, "channel", "channel_not_found")?.to_string();
            if body.get("text").is_none() && body.get("blocks").is_none() {
                return Err(json!({"ok": false, "error": "no_text"}));
            }
            let ts = format!("1700000000.{:06}", 100 + inner.next());
            inner.posted.push((channel.clone(), ts.clone()));
            json!({"ok": true, "channel": channel, "ts": ts, "message": echo(body, &ts)})
        }
        "chat.update" => {
            let channel = need(body, "channel", "channel_not_found")?.to_string();
            let ts = need(body, "ts", "message_not_found")?.to_string();
            if !inner.posted.contains(&(channel.clone(), ts.clone())) {
                return Err(json!({"ok": false, "error": "message_not_found"}));
            }
            let text = body.get("text").cloned().unwrap_or(json!(""));
            json!({"ok": true, "channel": channel, "ts": ts, "text": text, "message": echo(body, &ts)})
        }
        "chat.postEphemeral" => {
            need(body, "channel", "channel_not_found")?;
            need(body, "user", "user_not_in_channel")?;
            json!({"ok": true, "message_ts": format!("1700000000.{:06}", 100 + inner.next())})
        }
        "views.open" => {
            need(body, "trigger_id", "invalid_trigger_id")?;
            let Some(Value::Object(mut view)) = json_field(body, "view") else {
                return Err(json!({"ok": false, "error": "invalid_arguments"}));
            };
            let id = format!("V{:08}", inner.next());
            view.insert("id".into(), json!(id));
            view.insert("team_id".into(), json!(TEAM));
            view.insert("state".into(), json!({"values": {}}));
            view.insert("hash".into(), json!(format!("1700000000.{id}")));
            view.insert("root_view_id".into(), json!(id));
            view.insert("app_id".into(), json!(APP_ID));
            view.insert("bot_id".into(), json!(BOT_ID));
            json!({"ok": true, "view": view})
        }
        "files.getUploadURLExternal" => {
            let filename = need(body, "filename", "invalid_arguments")?.to_string();
            need(body, "length", "invalid_arguments")?;
            let file_id = format!("F{:08}", inner.next());
            inner.files.push(UploadedFile {
                file_id: file_id.clone(),
                filename,
                bytes: Vec::new(),
                completed: None,
            });
            json!({"ok": true, "upload_url": format!("{base}/upload/{file_id}"), "file_id": file_id})
        }
        "files.completeUploadExternal" => {
            let files = json_field(body, "files")
                .and_then(|f| f.as_array().cloned())
                .unwrap_or_default();
            let mut out = Vec::new();
            for f in &files {
                let id = f.get("id").and_then(Value::as_str).unwrap_or_default();
                let Some(known) = inner.files.iter_mut().find(|k| k.file_id == id) else {
                    return Err(json!({"ok": false, "error": "file_not_found"}));
                };
                known.completed = Some(body.clone());
                let title = f.get("title").cloned().unwrap_or(json!(known.filename));
                out.push(
                    json!({"id": id, "name": known.filename, "title": title, "user": BOT_USER}),
                );
            }
            json!({"ok": true, "files": out})
        }
        "apps.connections.open" => {
            let ticket = inner.next();
            json!({"ok": true, "url": format!("{}/socket?ticket={ticket}", base.replacen("http://", "ws://", 1))})
        }
        _ => return Err(json!({"ok": false, "error": "unknown_method", "req_method": method})),
    })
}

/// The message as Slack echoes it back: what was sent, with the bot as sender.
fn echo(body: &Value, ts: &str) -> Value {
    let mut m = json!({"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "ts": ts, "text": body.get("text").cloned().unwrap_or(json!(""))});
    if let Some(blocks) = json_field(body, "blocks").filter(Value::is_array) {
        m["blocks"] = blocks;
    }
    if let Some(t) = body.get("thread_ts") {
        m["thread_ts"] = t.clone();
    }
    m
}

/// The upload URL: stores the bytes, answers as Slack's file server does.
pub(super) async fn upload(
    State(s): State<Arc<Shared>>,
    Path(file_id): Path<String>,
    body: Bytes,
) -> Response {
    let found = {
        let mut inner = s.lock();
        match inner.files.iter_mut().find(|f| f.file_id == file_id) {
            Some(f) => {
                f.bytes = body.to_vec();
                true
            }
            None => false,
        }
    };
    s.bump();
    if found {
        (
            [(header::CONTENT_TYPE, "text/plain")],
            format!("OK - {}", body.len()),
        )
            .into_response()
    } else {
        (StatusCode::NOT_FOUND, "no such upload").into_response()
    }
}

/// `GET /files-pri/{team}-{id}/{name}`: a shared file's bytes, for the bot
/// token only (Slack answers others with its sign-in page; here a 403).
pub(super) async fn download(
    State(s): State<Arc<Shared>>,
    Path((team_file, _name)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {}", super::fake::BOT_TOKEN) {
        return (StatusCode::FORBIDDEN, "sign in to Slack").into_response();
    }
    let id = team_file.rsplit('-').next().unwrap_or_default().to_string();
    let bytes = {
        let mut inner = s.lock();
        *inner.downloads.entry(id.clone()).or_default() += 1;
        inner.hosted.get(&id).cloned()
    };
    s.bump();
    match bytes {
        Some(b) => ([(header::CONTENT_TYPE, "application/octet-stream")], b).into_response(),
        None => (StatusCode::NOT_FOUND, "file_not_found").into_response(),
    }
}

/// A `response_url` (`POST /hooks/…`, JSON, no token): Slack answers `ok` as
/// plain text; a URL used 5 times answers 404 `used_url`; a fault programmed
/// for method `response_url` answers 404 with its code (`expired_url`).
pub(super) async fn hook(
    State(s): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (status, text) = {
        let mut inner = s.lock();
        let fault = take_fault(&mut inner, "response_url");
        let uses = inner.hook_uses.entry(path).or_insert(0);
        *uses += 1;
        let uses = *uses;
        let (status, text) = match fault {
            Some(Fault::Error(code)) => (404, code),
            Some(Fault::RateLimited { .. }) => (429, "rate_limited".to_string()),
            None if uses > 5 => (404, "used_url".to_string()),
            None if !parsed.is_object() => (400, "invalid_payload".to_string()),
            None if parsed.get("text").is_none() && parsed.get("blocks").is_none() => {
                (400, "no_text".to_string())
            }
            None => (200, "ok".to_string()),
        };
        let response = if status == 200 {
            json!({"ok": true})
        } else {
            json!({"ok": false, "error": text})
        };
        inner.calls.push(Call {
            method: "response_url".into(),
            body: parsed,
            auth,
            status,
            response,
            at: std::time::Instant::now(),
        });
        (status, text)
    };
    s.bump();
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "text/plain")],
        text,
    )
        .into_response()
}
