//! The shipped `slack-app-manifest.yml` asks for exactly the bot scopes that
//! the Web API methods, events and slash command the adapter uses need, and
//! turns on App Home's messages tab (DMs to the bot, and late answers).

use std::collections::BTreeSet;
use std::path::Path;

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The items of the YAML block list under the key path `keys` (indentation
/// decides nesting), without comments.
fn yaml_list(text: &str, keys: &[&str]) -> Vec<String> {
    block(text, keys)
        .iter()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|item| item.split('#').next().unwrap_or("").trim().to_string())
        .collect()
}

/// The lines nested under the key path `keys`.
fn block<'a>(text: &'a str, keys: &[&str]) -> Vec<&'a str> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let (mut from, mut to) = (0, lines.len());
    let mut level: Option<usize> = None;
    for key in keys {
        let pos = (from..to)
            .find(|&i| {
                lines[i].trim() == format!("{key}:") && level.is_none_or(|lv| indent(lines[i]) > lv)
            })
            .unwrap_or_else(|| panic!("no `{key}:` in the manifest"));
        let lv = indent(lines[pos]);
        from = pos + 1;
        to = (from..to)
            .find(|&i| !lines[i].trim().is_empty() && indent(lines[i]) <= lv)
            .unwrap_or(to);
        level = Some(lv);
    }
    lines[from..to].to_vec()
}

/// Web API methods named in the adapter's source (`"chat.postMessage"`).
fn methods_used() -> BTreeSet<String> {
    let re = method_literals();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeSet::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.extend(re(&text));
            }
        }
    }
    out
}

/// Finds `"family.method"` string literals (no regex crate here).
fn method_literals() -> impl Fn(&str) -> Vec<String> {
    const FAMILIES: &[&str] = &[
        "chat",
        "views",
        "auth",
        "conversations",
        "files",
        "apps",
        "users",
        "reactions",
        "im",
    ];
    |text: &str| {
        // Every piece between two quotes: a literal, or code between literals,
        // which never looks like `family.method` alone.
        text.split('"')
            .filter(|lit| {
                lit.split_once('.').is_some_and(|(family, method)| {
                    FAMILIES.contains(&family)
                        && method.split('.').all(|part| {
                            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphabetic())
                        })
                })
            })
            .map(str::to_string)
            .collect()
    }
}

/// The bot scopes a method needs (`None`: a method the table does not know).
fn scopes_for(method: &str) -> Option<&'static [&'static str]> {
    Some(match method {
        // Posting into channels the bot was not invited to (approvals, on-call).
        "chat.postMessage" => &["chat:write", "chat:write.public"],
        "chat.update" | "chat.postEphemeral" => &["chat:write"],
        "conversations.open" => &["im:write"],
        "files.getUploadURLExternal" | "files.completeUploadExternal" => &["files:write"],
        // The adapter's name for its POST to the upload URL those hand out.
        "files.upload" => &["files:write"],
        // No bot scope: the trigger id, the token itself, the app-level token.
        "views.open" | "auth.test" | "apps.connections.open" => &[],
        _ => return None,
    })
}

#[test]
fn the_manifest_asks_for_exactly_the_scopes_the_code_uses() {
    let manifest = repo_file("slack-app-manifest.yml");
    let methods = methods_used();
    for expected in [
        "chat.postMessage",
        "conversations.open",
        "apps.connections.open",
    ] {
        assert!(
            methods.contains(expected),
            "{expected} found in src: {methods:?}"
        );
    }
    let mut needed: BTreeSet<String> = BTreeSet::new();
    for m in &methods {
        let scopes = scopes_for(m)
            .unwrap_or_else(|| panic!("{m} is used: add its scopes to this test's table"));
        needed.extend(scopes.iter().map(|s| s.to_string()));
    }
    // The slash command, and the events the adapter reads (events.rs).
    needed.insert("commands".into());
    let events = yaml_list(
        &manifest,
        &["settings", "event_subscriptions", "bot_events"],
    );
    for e in &events {
        needed.insert(
            match e.as_str() {
                "app_mention" => "app_mentions:read",
                "message.im" => "im:history",
                other => panic!("event {other} subscribed: add its scope to this test"),
            }
            .into(),
        );
    }
    let asked: BTreeSet<String> = yaml_list(&manifest, &["oauth_config", "scopes", "bot"])
        .into_iter()
        .collect();
    assert_eq!(asked, needed, "bot scopes in slack-app-manifest.yml");
}

#[test]
fn app_home_messages_tab_is_on_and_writable() {
    let manifest = repo_file("slack-app-manifest.yml");
    let home: Vec<String> = block(&manifest, &["features", "app_home"])
        .iter()
        .map(|l| l.trim().to_string())
        .collect();
    assert!(
        home.contains(&"messages_tab_enabled: true".to_string()),
        "{home:?}"
    );
    assert!(
        home.contains(&"messages_tab_read_only_enabled: false".to_string()),
        "people can write to the bot: {home:?}"
    );
}
