//! The frame every page shares (navigation, CSS readable on a laptop and a
//! phone), the one-shot notice a form's redirect carries, and small helpers.

use super::auth::{Viewer, cookie_value, set_cookie};
use crate::clock::format_ms;
use crate::types::RunState;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// A one-shot notice for the page a form redirects to (the engine's answer).
const FLASH_COOKIE: &str = "execgov_flash";

/// A whole page: `title`, the navigation for `viewer` (or a sign-in link), an
/// optional notice, and `body`.
pub(super) fn page(
    title: &str,
    viewer: Option<&Viewer>,
    notice: Option<&str>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ExecGov" }
                style { (PreEscaped(CSS)) }
            }
            body {
                nav class="top" {
                    a class="brand" href="/runs" { "ExecGov" }
                    @if let Some(v) = viewer {
                        a href="/runs" { "Runs" }
                        a href="/scripts" { "Scripts" }
                        a href="/audit" { "Audit" }
                        a href="/account/tokens" { "API tokens" }
                        span class="who" { (v.person) @if v.admin { " · admin" } }
                        form method="post" action="/logout" class="inline" {
                            input type="hidden" name="csrf" value=(v.csrf());
                            button type="submit" class="link" { "Sign out" }
                        }
                    } @else {
                        a href="/login" { "Sign in" }
                    }
                }
                main {
                    @if let Some(n) = notice { p class="notice" role="status" { (n) } }
                    (body)
                }
            }
        }
    }
}

/// A run state as a coloured badge.
pub(super) fn state_badge(state: RunState) -> Markup {
    html! { span class=(format!("state {state}")) { (state.as_str().replace('_', " ")) } }
}

/// A timestamp for people, with the machine form in `datetime`.
pub(super) fn time(ms: i64) -> Markup {
    let iso = chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    html! { time datetime=(iso) { (format_ms(ms)) } }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn urldecode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A 303 to `to` that carries `notice` to the next page in a short-lived cookie.
pub(super) fn redirect_with_notice(to: &str, notice: &str, secure: bool) -> Response {
    let text: String = notice.chars().take(600).collect();
    let cookie = set_cookie(FLASH_COOKIE, &urlencode(&text), 60, secure);
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, to.to_string())],
        [(header::SET_COOKIE, cookie)],
    )
        .into_response()
}

/// The notice a redirect carried, if any.
pub(super) fn take_notice(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, FLASH_COOKIE)
        .filter(|v| !v.is_empty())
        .map(|v| urldecode(&v))
}

/// A page response that also clears a notice it showed.
pub(super) fn respond(markup: Markup, notice_shown: bool, secure: bool) -> Response {
    let mut resp = markup.into_response();
    if notice_shown {
        resp.headers_mut()
            .append(header::SET_COOKIE, set_cookie(FLASH_COOKIE, "", 0, secure));
    }
    resp
}

const CSS: &str = "
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d1f21;background:#fafafa;line-height:1.45}
main{max-width:64rem;margin:0 auto;padding:1rem}
nav.top{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center;padding:.6rem 1rem;background:#23313f;color:#fff}
nav.top a{color:#dfe9f3;text-decoration:none}nav.top a:hover{text-decoration:underline}
nav.top .brand{font-weight:700;color:#fff}nav.top .who{margin-left:auto;color:#b9c7d4}
form.inline{display:inline;margin:0}
button.link{background:none;border:none;color:#dfe9f3;cursor:pointer;font:inherit;padding:0;text-decoration:underline}
h1{font-size:1.4rem;margin:.6rem 0}h2{font-size:1.15rem;margin:1.4rem 0 .5rem;border-bottom:1px solid #ddd}
h3{font-size:1rem}
header.run{display:flex;gap:.8rem;align-items:center;flex-wrap:wrap}
.state{display:inline-block;padding:.1rem .6rem;border-radius:1rem;background:#ddd;font-weight:600;font-size:.85rem;white-space:nowrap}
.state.succeeded{background:#c8f0c8}.state.failed,.state.timed_out,.state.rejected,.state.refused,.state.interrupted{background:#f6c9c9}
.state.awaiting_approval,.state.queued,.state.running{background:#fbeab5}.state.expired,.state.cancelled{background:#e2e2e2}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:.5rem 0}dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
.digest{font-size:.75rem;word-break:break-all}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid #d6d6d6;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f2f4}tr.row:hover{background:#f5f9ff}
pre.log{background:#111;color:#eee;padding:.8rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all;font-size:.85rem;max-height:70vh}
.note{color:#8a5a00}.muted{color:#666}
.notice{background:#e8f1fb;border:1px solid #a9c8ea;padding:.5rem .8rem;border-radius:.3rem}
.error{background:#fde8e8;border:1px solid #eaa9a9;padding:.5rem .8rem;border-radius:.3rem}
ol.timeline{padding-left:1.2rem}ol.timeline li{margin:.2rem 0}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-end;margin:.5rem 0 1rem}
form.filters label,form.stack label{display:flex;flex-direction:column;font-size:.85rem;gap:.15rem}
form.stack{display:flex;flex-direction:column;gap:.7rem;max-width:32rem}
input,select,button{font:inherit;padding:.35rem .5rem;border:1px solid #aaa;border-radius:.3rem;background:#fff}
button{cursor:pointer;background:#2d6cdf;color:#fff;border-color:#2d6cdf}
button.deny{background:#c0392b;border-color:#c0392b}button.secondary{background:#fff;color:#222;border-color:#aaa}
.actions{display:flex;flex-wrap:wrap;gap:.6rem;align-items:flex-end;background:#fff8e1;border:1px solid #f0d98c;padding:.8rem;border-radius:.3rem}
.pager{display:flex;gap:1rem;margin:1rem 0}
code.token{display:block;padding:.6rem;background:#fff;border:1px dashed #888;word-break:break-all}
@media (max-width:40rem){dl{grid-template-columns:1fr}dt{margin-top:.4rem}nav.top .who{margin-left:0}main{padding:.6rem}}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_survive_the_cookie_round_trip() {
        let text = "bob approved run 7; it is queued (ä, \"quotes\")";
        assert_eq!(urldecode(&urlencode(text)), text);
        assert_eq!(
            urldecode("%zz%4"),
            "%zz%4",
            "broken escapes stay as they are"
        );
    }
}
