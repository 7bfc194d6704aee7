//! The frame every page shares (navigation, CSS readable on a laptop and a
//! phone: tables marked `cards` fold into one card per row on a narrow screen,
//! each cell labelled by its `data-label`), the one-shot notice a form's
//! redirect carries, and small helpers.

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
    page_refreshing(title, viewer, notice, body, None)
}

/// [`page`] that reloads itself every `refresh_secs` seconds when given: a
/// `<meta http-equiv="refresh">`, so no script is needed and the CSP keeps
/// `default-src 'none'` (a refresh is a navigation, which the CSP does not govern).
pub(super) fn page_refreshing(
    title: &str,
    viewer: Option<&Viewer>,
    notice: Option<&str>,
    body: Markup,
    refresh_secs: Option<u32>,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(secs) = refresh_secs { meta http-equiv="refresh" content=(secs); }
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
                        a href="/account/2fa" { "Two-factor" }
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

/// `n` and a noun that agrees with it: "1 approval", "2 approvals", "0 runs".
pub(super) fn plural(n: impl std::fmt::Display, one: &str, many: &str) -> String {
    let n = n.to_string();
    let noun = if n == "1" { one } else { many };
    format!("{n} {noun}")
}

/// A timestamp for a table cell: short enough for one line ("14:05:09" today,
/// "Mar 3 14:05" this year, "2025-03-03" before), the full UTC time in the
/// `title` and the machine form in `datetime`. `now` is the engine's clock.
pub(super) fn time_short(ms: i64, now: i64) -> Markup {
    let (Some(t), Some(n)) = (
        chrono::DateTime::from_timestamp_millis(ms),
        chrono::DateTime::from_timestamp_millis(now),
    ) else {
        return time(ms);
    };
    let text = if t.date_naive() == n.date_naive() {
        t.format("%H:%M:%S").to_string()
    } else if chrono::Datelike::year(&t) == chrono::Datelike::year(&n) {
        t.format("%b %-d %H:%M").to_string()
    } else {
        t.format("%Y-%m-%d").to_string()
    };
    html! { time class="short" datetime=(t.to_rfc3339()) title=(format_ms(ms)) { (text) } }
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
time.short{white-space:nowrap}
td.wrap,td.wrap code{overflow-wrap:anywhere}
table.audit td:nth-child(-n+5){white-space:nowrap}
pre.log{background:#111;color:#eee;padding:.8rem;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere;font-size:.85rem;max-height:70vh}
p.progress{display:flex;flex-wrap:wrap;gap:.3rem .6rem;align-items:center}progress{width:min(20rem,100%)}
.note{color:#8a5a00}.muted{color:#666}
.notice{background:#e8f1fb;border:1px solid #a9c8ea;padding:.5rem .8rem;border-radius:.3rem}
.error{background:#fde8e8;border:1px solid #eaa9a9;padding:.5rem .8rem;border-radius:.3rem}
ol.timeline{padding-left:1.2rem}ol.timeline li{margin:.2rem 0}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-end;margin:.5rem 0 1rem}
form.filters label,form.stack label{display:flex;flex-direction:column;font-size:.85rem;gap:.15rem}
form.stack{display:flex;flex-direction:column;gap:.9rem;max-width:32rem}
.field{display:flex;flex-direction:column;gap:.2rem}.field label{font-weight:600}
.hint{font-size:.85rem;color:#555;margin:0;overflow-wrap:anywhere}.field-error{color:#a40000;font-weight:600;margin:0}
.field.invalid input,.field.invalid select{border:2px solid #c0392b}
input,select,button{font:inherit;padding:.35rem .5rem;border:1px solid #aaa;border-radius:.3rem;background:#fff}
button{cursor:pointer;background:#2d6cdf;color:#fff;border-color:#2d6cdf}
button.deny{background:#c0392b;border-color:#c0392b}button.secondary{background:#fff;color:#222;border-color:#aaa}
.actions{background:#fff8e1;border:1px solid #f0d98c;padding:.2rem .8rem .8rem;border-radius:.3rem;margin:.8rem 0}
.actions h2{border-bottom:none;margin-top:.6rem}
.decide{display:flex;flex-wrap:wrap;gap:.8rem;align-items:flex-end}
form.deny{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-end;margin:0}form.deny label{display:flex;flex-direction:column;font-size:.85rem;gap:.15rem}
a.button{display:inline-block;padding:.35rem .8rem;border:1px solid #2d6cdf;border-radius:.3rem;background:#2d6cdf;color:#fff;text-decoration:none}
a.button.secondary{background:#fff;color:#222;border-color:#aaa}
ul.args{list-style:none;margin:0;padding:0}ul.args li{margin:.1rem 0}
code.exact{white-space:pre-wrap;background:#fff;border:1px solid #ccc;border-radius:.2rem;padding:0 .2rem;overflow-wrap:anywhere}
.esc{color:#a40000;background:#fde8e8;font-weight:600}
textarea{font:inherit;padding:.35rem .5rem;border:1px solid #aaa;border-radius:.3rem}
.pager{display:flex;gap:1rem;margin:1rem 0}
code.token{display:block;padding:.6rem;background:#fff;border:1px dashed #888;word-break:break-all}
@media (max-width:40rem){dl{grid-template-columns:1fr}dt{margin-top:.4rem}nav.top .who{margin-left:0}main{padding:.6rem}
table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:auto}
table.cards thead{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
table.cards{background:none}table.cards tr{background:#fff;border:1px solid #d6d6d6;border-radius:.4rem;margin:.6rem 0;padding:.4rem .6rem}
table.cards td{border:none;padding:.15rem 0;white-space:normal!important;overflow-wrap:anywhere}table.cards td:empty{display:none}
table.cards td::before{content:attr(data-label);display:inline-block;min-width:6.5rem;margin-right:.5rem;font-weight:600;color:#555}}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nouns_agree_with_their_numbers() {
        assert_eq!(plural(1, "approval", "approvals"), "1 approval");
        assert_eq!(plural(2_u64, "approval", "approvals"), "2 approvals");
        assert_eq!(plural(0_usize, "run", "runs"), "0 runs");
        assert_eq!(plural(-1, "run", "runs"), "-1 runs");
    }

    #[test]
    fn table_timestamps_are_compact_with_the_full_time_in_the_title() {
        let now = 1_772_546_709_000; // 2026-03-03 14:05:09 UTC
        let shown = |ms| time_short(ms, now).into_string();
        assert!(shown(now).contains(">14:05:09</time>"), "{}", shown(now));
        assert!(
            shown(now).contains("title=\"2026-03-03 14:05:09 UTC\""),
            "{}",
            shown(now)
        );
        let earlier = now - 40 * 86_400_000;
        assert!(
            shown(earlier).contains(">Jan 22 14:05</time>"),
            "{}",
            shown(earlier)
        );
        let last_year = now - 400 * 86_400_000;
        assert!(
            shown(last_year).contains(">2025-01-27</time>"),
            "{}",
            shown(last_year)
        );
    }

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
