//! Unit tests for the config: every key read, paths resolved against the file,
//! and every mistake reported as `FILE:LINE: …`.

use std::path::Path;
use std::time::Duration;

use super::*;

fn fixture(name: &str) -> (String, PathBuf) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("fixture readable");
    (text, path)
}

fn problems(text: &str) -> String {
    Config::parse(text, Path::new("execgov.toml"))
        .expect_err("should be refused")
        .to_string()
}

#[test]
fn a_full_config_reads_every_section() {
    let (_, path) = fixture("full.toml");
    let c = Config::load(Some(&path)).expect("valid config");
    let folder = path.parent().expect("a folder");
    assert_eq!(c.source.as_deref(), Some(path.as_path()));
    assert_eq!(
        c.manifests,
        folder.join("manifests"),
        "relative to the config's folder"
    );
    assert_eq!(c.data_dir, folder.join("data"));
    if std::env::var_os("EXECGOV_DATABASE_URL").is_none() {
        let want = format!("sqlite://{}", folder.join("data/execgov.db").display());
        assert_eq!(
            c.database_url, want,
            "sqlite paths resolve like other paths"
        );
    }
    assert_eq!(c.web.listen.port(), 9090);
    assert_eq!(
        c.web.public_url, "https://execgov.example.org",
        "no trailing slash"
    );
    assert_eq!(c.web.secret, Some(SecretRef::Env("EXECGOV_SECRET".into())));
    assert_eq!(c.web.admins, ["alice"]);
    assert_eq!(c.runner.pool_size, 4);
    assert_eq!(c.runner.log_cap, 2 * 1024 * 1024, "2MiB");
    assert_eq!(c.runner.kill_grace, Duration::from_secs(3));
    assert!(c.cli.impersonation);
    let slack = c.slack.as_ref().expect("[slack]");
    assert_eq!(
        slack.api_url, "http://127.0.0.1:9999/api/",
        "base URL ends in a slash"
    );
    assert_eq!(slack.app_token, None, "no app token: HTTP mode");
    let matrix = c.matrix.as_ref().expect("[matrix]");
    assert_eq!(
        matrix.access_token,
        Some(SecretRef::File(folder.join("matrix_token")))
    );
    assert_eq!(matrix.command_prefix, "!run", "default prefix");
    assert_eq!(c.group("sre-leads").map(<[_]>::len), Some(1));
}

#[test]
fn unknown_keys_name_file_line_and_key() {
    let (text, _) = fixture("unknown-key.toml");
    let err = Config::parse(&text, Path::new("execgov.toml")).expect_err("unknown key");
    let shown = err.to_string();
    assert!(
        shown.starts_with("execgov.toml:7: unknown key `pol_size` in [runner]"),
        "got `{shown}`"
    );
    assert_eq!(err.problems().len(), 1, "one problem");
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let shown = problems(
        "data_dir = 3\n[runner]\npool_size = 0\nlog_cap = \"lots\"\nkill_grace = \"soon\"\n\
         [web]\nlisten = \"localhost\"\nadmins = [\"zed\"]\n[slack]\nbot_token = \"env:\"\n",
    );
    for want in [
        "execgov.toml:1: key `data_dir`: expected a string, got integer",
        "execgov.toml:3: key `runner.pool_size`: must be at least 1, got 0",
        "execgov.toml:4: key `runner.log_cap`: `lots` is not a size",
        "execgov.toml:5: key `runner.kill_grace`: `soon` is not a duration",
        "execgov.toml:7: key `web.listen`: `localhost` is not an address",
        "execgov.toml:8: key `web.admins`: `zed` is not in [people]",
        "execgov.toml:10: key `slack.bot_token`: `env:` does not name an environment variable",
    ] {
        assert!(shown.contains(want), "missing `{want}` in:\n{shown}");
    }
}

#[test]
fn matrix_needs_its_identity_and_a_credential() {
    let shown = problems("[matrix]\nhomeserver = \"https://hs\"\nuser_id = \"execgov\"\n");
    assert!(
        shown.contains("execgov.toml:3: key `matrix.user_id`: `execgov` is not a Matrix user id"),
        "{shown}"
    );
    assert!(
        shown.contains("key `matrix`: needs `access_token` or `password`"),
        "{shown}"
    );
}

#[test]
fn syntax_errors_and_missing_files_are_reported() {
    assert!(
        problems("[runner\n").starts_with("execgov.toml:1: invalid TOML"),
        "syntax error with line"
    );
    let err = Config::load(Some(Path::new("/nonexistent/execgov.toml"))).expect_err("no such file");
    assert!(
        err.to_string().contains("/nonexistent/execgov.toml"),
        "names the file: {err}"
    );
}

#[test]
fn literal_secrets_are_accepted_and_masked_values_collected() {
    let c = Config::parse(
        "[slack]\nbot_token = \"xoxb-literal\"\napp_token = \"env:EXECGOV_TEST_SURELY_UNSET\"\n",
        Path::new("/etc/execgov/execgov.toml"),
    )
    .expect("a literal secret is allowed, with a warning");
    assert_eq!(
        c.secret_values(),
        ["xoxb-literal"],
        "unresolvable secrets are skipped"
    );
    assert!(
        !format!("{c:?}").contains("xoxb-literal"),
        "Debug never shows a literal secret"
    );
}

#[test]
fn defaults_need_no_file() {
    let c = Config::defaults_in(Path::new("/srv/execgov"));
    assert_eq!(c.manifests, Path::new("/srv/execgov/manifests"));
    assert_eq!(c.database_url, "sqlite:///srv/execgov/data/execgov.db");
    assert_eq!(c.web.public_url, "http://127.0.0.1:8080");
    assert_eq!(c.runner.log_cap, 10 * 1024 * 1024, "10MiB");
    assert!(
        !c.cli.impersonation,
        "impersonation is off unless asked for"
    );
    assert!(c.secret_values().is_empty(), "no secrets configured");
}
