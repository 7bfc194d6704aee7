//! Reads `execgov.toml` into a [`Config`], collecting every problem with its line.

use std::path::{Path, PathBuf};

use super::spans::{Reader, Section, parse_document};
use super::{Config, ConfigError, MatrixConfig, SecretRef, SlackConfig, default_database_url};

const TOP_KEYS: &[&str] = &[
    "manifests",
    "data_dir",
    "database",
    "web",
    "runner",
    "cli",
    "store",
    "retention",
    "audit",
    "access",
    "people",
    "groups",
    "channels",
    "slack",
    "matrix",
];

pub(super) fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        file: path.to_path_buf(),
        problems,
    };
    let doc = parse_document(text).map_err(|p| invalid(vec![p]))?;
    let base = base_dir(path);
    let mut r = Reader::new(text);
    let top = Section::top(&doc);
    r.unknown_keys(&top, TOP_KEYS);

    let mut c = Config::defaults_in(&base);
    c.source = Some(path.to_path_buf());
    if let Some((v, _)) = r.string(&top, "manifests") {
        c.manifests = base.join(v);
    }
    if let Some((v, _)) = r.string(&top, "data_dir") {
        c.data_dir = base.join(v);
        c.runner.runs_dir = c.data_dir.join("runs");
    }
    c.database_url = default_database_url(&c.data_dir);
    if let Some(db) = r.section(&top, "database") {
        r.unknown_keys(&db, &["url"]);
        if let Some((url, _)) = r.string(&db, "url") {
            c.database_url = resolve_sqlite_url(&url, &base);
        }
    }

    super::people::read(&mut r, &top, &mut c);
    read_web(&mut r, &top, &base, &mut c);
    read_runner(&mut r, &top, &base, &mut c);
    read_audit(&mut r, &top, &base, &mut c);
    read_access(&mut r, &top, &mut c);
    if let Some(cli) = r.section(&top, "cli") {
        r.unknown_keys(&cli, &["impersonation"]);
        c.cli.impersonation = r.bool(&cli, "impersonation").unwrap_or(false);
    }
    read_store(&mut r, &top, &mut c);
    read_retention(&mut r, &top, &mut c);
    c.slack = r
        .section(&top, "slack")
        .map(|s| read_slack(&mut r, &s, &base));
    c.matrix = r
        .section(&top, "matrix")
        .and_then(|s| read_matrix(&mut r, &s, &base));

    if r.problems.is_empty() {
        Ok(c)
    } else {
        let mut problems = r.problems;
        problems.sort_by_key(|p| p.line);
        Err(invalid(problems))
    }
}

/// The folder relative paths in the file resolve against, made absolute.
fn base_dir(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::path::absolute(&parent).unwrap_or(parent)
}

/// `sqlite://relative/x.db` is taken relative to the config's folder, like every
/// other path in the file; absolute paths, `:memory:` and other backends pass through.
fn resolve_sqlite_url(url: &str, base: &Path) -> String {
    match url.strip_prefix("sqlite://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with(['/', ':', '?']) => {
            format!("sqlite://{}", base.join(rest).display())
        }
        _ => url.to_string(),
    }
}

/// A secret-reference key, if present and well formed.
fn secret(r: &mut Reader<'_>, s: &Section<'_, '_>, key: &str, base: &Path) -> Option<SecretRef> {
    let (text, span) = r.string(s, key)?;
    match SecretRef::parse(&text, base, &s.key_path(key)) {
        Ok(secret) => Some(secret),
        Err(msg) => {
            r.key_error(s, key, &span, msg);
            None
        }
    }
}

fn read_web(r: &mut Reader<'_>, top: &Section<'_, '_>, base: &Path, c: &mut Config) {
    let Some(web) = r.section(top, "web") else {
        return;
    };
    r.unknown_keys(
        &web,
        &[
            "listen",
            "public_url",
            "secret",
            "admins",
            "dev_login",
            "metrics_token",
        ],
    );
    if let Some((listen, span)) = r.string(&web, "listen") {
        match listen.parse() {
            Ok(addr) => {
                c.web.listen = addr;
                c.web.public_url = format!("http://{addr}");
            }
            Err(_) => r.key_error(
                &web,
                "listen",
                &span,
                format!("`{listen}` is not an address such as \"127.0.0.1:8080\""),
            ),
        }
    }
    if let Some((url, span)) = r.string(&web, "public_url") {
        if url.starts_with("http://") || url.starts_with("https://") {
            c.web.public_url = url.trim_end_matches('/').to_string();
            c.web.public_url_set = true;
        } else {
            r.key_error(
                &web,
                "public_url",
                &span,
                "must start with http:// or https://",
            );
        }
    }
    c.web.secret = secret(r, &web, "secret", base);
    c.web.metrics_token = secret(r, &web, "metrics_token", base);
    c.web.dev_login = r.bool(&web, "dev_login").unwrap_or(false);
    for (admin, span) in r.strings(&web, "admins").unwrap_or_default() {
        if c.people.keys().any(|p| p.as_str() == admin) {
            c.web.admins.push(admin);
        } else {
            r.key_error(
                &web,
                "admins",
                &span,
                format!("`{admin}` is not in [people]"),
            );
        }
    }
}

/// `[access] break_glass = ["group:oncall"]`, `review_within = "24h"`.
fn read_access(r: &mut Reader<'_>, top: &Section<'_, '_>, c: &mut Config) {
    let Some(access) = r.section(top, "access") else {
        return;
    };
    r.unknown_keys(&access, &["break_glass", "review_within"]);
    for (p, span) in r.strings(&access, "break_glass").unwrap_or_default() {
        let known = match p.split_once(':') {
            Some(("person", name)) => c.people.keys().any(|k| k.as_str() == name),
            Some(("group", name)) => c.groups.contains_key(name),
            _ => {
                let msg = format!("`{p}` is not \"person:NAME\" or \"group:NAME\"");
                r.key_error(&access, "break_glass", &span, msg);
                continue;
            }
        };
        if known {
            c.access.break_glass.push(p);
        } else {
            let msg = format!("`{p}` names nobody in [people] or [groups]");
            r.key_error(&access, "break_glass", &span, msg);
        }
    }
    if let Some(d) = r.duration(&access, "review_within") {
        c.access.review_within = d;
    }
}

fn read_store(r: &mut Reader<'_>, top: &Section<'_, '_>, c: &mut Config) {
    let Some(store) = r.section(top, "store") else {
        return;
    };
    r.unknown_keys(&store, &["inbound_retention"]);
    if let Some(d) = r.duration(&store, "inbound_retention") {
        if d < std::time::Duration::from_secs(3600) {
            let span = store
                .get("inbound_retention")
                .map(|i| i.span())
                .unwrap_or(0..0);
            let msg = "must be at least 1h: platforms redeliver events for minutes to an hour";
            r.key_error(&store, "inbound_retention", &span, msg);
        } else {
            c.store.inbound_retention = d;
        }
    }
}

/// `[retention] logs = "90d"`, `artifacts = "90d"`, `runs = "400d"`: each
/// optional, at least 1h (a run's payload is not pruned while anyone is still
/// reading it in chat).
fn read_retention(r: &mut Reader<'_>, top: &Section<'_, '_>, c: &mut Config) {
    let Some(retention) = r.section(top, "retention") else {
        return;
    };
    let keys = ["logs", "artifacts", "runs"];
    r.unknown_keys(&retention, &keys);
    let mut read = |key: &str| {
        let d = r.duration(&retention, key)?;
        if d < std::time::Duration::from_secs(3600) {
            let span = retention.get(key).map(|i| i.span()).unwrap_or(0..0);
            let msg = "must be at least 1h (e.g. \"90d\"); leave it out to keep forever";
            r.key_error(&retention, key, &span, msg);
            return None;
        }
        Some(d)
    };
    c.retention.logs = read("logs");
    c.retention.artifacts = read("artifacts");
    c.retention.runs = read("runs");
}

fn read_audit(r: &mut Reader<'_>, top: &Section<'_, '_>, base: &Path, c: &mut Config) {
    let Some(audit) = r.section(top, "audit") else {
        return;
    };
    r.unknown_keys(
        &audit,
        &[
            "key",
            "signing_key",
            "checkpoint_every",
            "checkpoint_file",
            "channel",
            "sink",
        ],
    );
    c.audit.key = secret(r, &audit, "key", base);
    c.audit.signing_key = secret(r, &audit, "signing_key", base);
    if let Some(d) = r.duration(&audit, "checkpoint_every") {
        c.audit.checkpoint_every = d;
    }
    if let Some((file, _)) = r.string(&audit, "checkpoint_file") {
        c.audit.checkpoint_file = Some(base.join(file));
    }
    if let Some((sink, span)) = r.string(&audit, "sink") {
        match sink.strip_prefix("file:").filter(|p| !p.trim().is_empty()) {
            Some(path) => c.audit.sink = Some(base.join(path)),
            None => r.key_error(
                &audit,
                "sink",
                &span,
                format!("`{sink}`: write \"file:PATH\" (the one kind of sink there is)"),
            ),
        }
    }
    if let Some((channel, span)) = r.string(&audit, "channel") {
        if c.channels.contains_key(&channel) {
            c.audit.channel = Some(channel);
        } else {
            let msg = format!("`{channel}` is not a name in [channels]");
            r.key_error(&audit, "channel", &span, msg);
        }
    }
}

fn read_runner(r: &mut Reader<'_>, top: &Section<'_, '_>, base: &Path, c: &mut Config) {
    let Some(runner) = r.section(top, "runner") else {
        return;
    };
    r.unknown_keys(
        &runner,
        &[
            "pool_size",
            "log_cap",
            "kill_grace",
            "lease",
            "local",
            "artifact_cap",
            "user",
            "runs_dir",
        ],
    );
    if let Some(d) = r.duration(&runner, "lease") {
        if d < std::time::Duration::from_secs(1) {
            let span = runner.get("lease").map(|i| i.span()).unwrap_or(0..0);
            r.key_error(&runner, "lease", &span, "must be at least 1s");
        } else {
            c.runner.lease = d;
        }
    }
    if let Some(local) = r.bool(&runner, "local") {
        c.runner.local = local;
    }
    if let Some((text, span)) = r.string(&runner, "artifact_cap") {
        match text.parse::<bytesize::ByteSize>() {
            Ok(size) if size.as_u64() > 0 => c.runner.artifact_cap = size.as_u64(),
            _ => r.key_error(
                &runner,
                "artifact_cap",
                &span,
                format!("`{text}` is not a size such as \"50MiB\""),
            ),
        }
    }
    if let Some(n) = r.count::<usize>(&runner, "pool_size", 1) {
        c.runner.pool_size = n;
    }
    if let Some(item) = runner.get("log_cap") {
        if let Some(n) = super::spans::int_value(item.get_ref()) {
            match u64::try_from(n) {
                Ok(n) if n > 0 => c.runner.log_cap = n,
                _ => r.key_error(
                    &runner,
                    "log_cap",
                    &item.span(),
                    "must be more than zero bytes",
                ),
            }
        } else if let Some((text, span)) = r.string(&runner, "log_cap") {
            match text.parse::<bytesize::ByteSize>() {
                Ok(size) if size.as_u64() > 0 => c.runner.log_cap = size.as_u64(),
                _ => r.key_error(
                    &runner,
                    "log_cap",
                    &span,
                    format!("`{text}` is not a size such as \"10MiB\""),
                ),
            }
        }
    }
    if let Some(d) = r.duration(&runner, "kill_grace") {
        c.runner.kill_grace = d;
    }
    if let Some((dir, _)) = r.string(&runner, "runs_dir") {
        c.runner.runs_dir = base.join(dir);
    }
    if let Some((user, span)) = r.string(&runner, "user") {
        if !is_user_name(&user) {
            let msg = format!("`{user}` is not a user name such as \"execgov-run\"");
            r.key_error(&runner, "user", &span, msg);
        } else if c.runner.runs_dir.starts_with(&c.data_dir) {
            let msg = format!(
                "scripts running as `{user}` need run folders that user can reach, and \
                 data_dir is private to the service (mode 0700): set runs_dir to a folder \
                 outside data_dir, e.g. runs_dir = \"/var/lib/execgov-runs\""
            );
            r.key_error(&runner, "user", &span, msg);
        } else {
            c.runner.user = Some(user);
        }
    }
}

/// A POSIX-style login name: lowercase letters, digits, `_` and `-`, not
/// starting with `-` or a digit, at most 32 characters.
fn is_user_name(name: &str) -> bool {
    name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn read_slack(r: &mut Reader<'_>, s: &Section<'_, '_>, base: &Path) -> SlackConfig {
    r.unknown_keys(s, &["bot_token", "signing_secret", "app_token", "api_url"]);
    let mut api_url = "https://slack.com/api/".to_string();
    if let Some((url, span)) = r.string(s, "api_url") {
        if url.starts_with("http://") || url.starts_with("https://") {
            api_url = if url.ends_with('/') {
                url
            } else {
                format!("{url}/")
            };
        } else {
            r.key_error(s, "api_url", &span, "must start with http:// or https://");
        }
    }
    SlackConfig {
        bot_token: secret(r, s, "bot_token", base),
        signing_secret: secret(r, s, "signing_secret", base),
        app_token: secret(r, s, "app_token", base),
        api_url,
    }
}

fn read_matrix(r: &mut Reader<'_>, s: &Section<'_, '_>, base: &Path) -> Option<MatrixConfig> {
    r.unknown_keys(
        s,
        &[
            "homeserver",
            "user_id",
            "access_token",
            "password",
            "command_prefix",
            "allowed_inviters",
        ],
    );
    let homeserver = r.string(s, "homeserver");
    if homeserver.is_none() && s.get("homeserver").is_none() {
        r.missing(s, "homeserver");
    }
    let user_id = r.string(s, "user_id");
    match &user_id {
        None if s.get("user_id").is_none() => r.missing(s, "user_id"),
        Some((id, span)) if !is_matrix_user(id) => r.key_error(
            s,
            "user_id",
            span,
            format!("`{id}` is not a Matrix user id like @bot:example.org"),
        ),
        _ => {}
    }
    let access_token = secret(r, s, "access_token", base);
    let password = secret(r, s, "password", base);
    if s.get("access_token").is_none() && s.get("password").is_none() {
        r.error(
            &s.span,
            Some(s.path.clone()),
            "needs `access_token` or `password`",
        );
    }
    let command_prefix = match r.string(s, "command_prefix") {
        Some((p, span)) if p.trim().is_empty() => {
            r.key_error(s, "command_prefix", &span, "must not be empty");
            None
        }
        other => other.map(|(p, _)| p),
    };
    let mut allowed_inviters = Vec::new();
    for (id, span) in r.strings(s, "allowed_inviters").unwrap_or_default() {
        if is_matrix_user(&id) {
            allowed_inviters.push(id);
        } else {
            let msg = format!("`{id}` is not a Matrix user id like @alice:example.org");
            r.key_error(s, "allowed_inviters", &span, msg);
        }
    }
    Some(MatrixConfig {
        homeserver: homeserver?.0,
        user_id: user_id?.0,
        access_token,
        password,
        command_prefix: command_prefix.unwrap_or_else(|| "!run".to_string()),
        allowed_inviters,
    })
}

/// `@localpart:server`.
pub(super) fn is_matrix_user(id: &str) -> bool {
    id.strip_prefix('@')
        .and_then(|rest| rest.split_once(':'))
        .is_some_and(|(local, server)| !local.is_empty() && !server.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_resolve_against_the_config_folder() {
        let base = Path::new("/etc/execgov");
        assert_eq!(
            resolve_sqlite_url("sqlite://data/x.db", base),
            "sqlite:///etc/execgov/data/x.db"
        );
        assert_eq!(
            resolve_sqlite_url("sqlite:///abs.db", base),
            "sqlite:///abs.db"
        );
        assert_eq!(
            resolve_sqlite_url("sqlite::memory:", base),
            "sqlite::memory:"
        );
        assert_eq!(
            resolve_sqlite_url("postgres://h/db", base),
            "postgres://h/db"
        );
    }
}
