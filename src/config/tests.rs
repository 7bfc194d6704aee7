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

#[test]
fn a_run_user_needs_run_folders_outside_the_private_data_dir() {
    let shown = problems("data_dir = \"data\"\n[runner]\nuser = \"execgov-run\"\n");
    assert!(
        shown.contains("execgov.toml:3: key `runner.user`: scripts running as `execgov-run` need run folders that user can reach")
            && shown.contains("set runs_dir to a folder outside data_dir"),
        "{shown}"
    );
    let shown = problems("[runner]\nuser = \"Bad Name\"\nruns_dir = \"/srv/runs\"\n");
    assert!(
        shown.contains("execgov.toml:2: key `runner.user`: `Bad Name` is not a user name"),
        "{shown}"
    );
    let c = Config::parse(
        "data_dir = \"data\"\n[runner]\nuser = \"execgov-run\"\nruns_dir = \"runs\"\n",
        Path::new("/etc/execgov/execgov.toml"),
    )
    .expect("a user with run folders outside data_dir");
    assert_eq!(c.runner.user.as_deref(), Some("execgov-run"));
    assert_eq!(
        c.runner.runs_dir,
        Path::new("/etc/execgov/runs"),
        "relative to the file"
    );
    let c =
        Config::parse("data_dir = \"state\"\n", Path::new("/srv/execgov.toml")).expect("defaults");
    assert_eq!(
        c.runner.runs_dir,
        Path::new("/srv/state/runs"),
        "run folders follow data_dir by default"
    );
    assert_eq!(
        c.runner.user, None,
        "scripts run as the service's user by default"
    );
}

/// The environment as a fixed map, so the test does not touch the process's own.
fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn listen_and_public_url_come_from_the_environment() {
    let path = Path::new("/etc/execgov/execgov.toml");
    let mut c = Config::parse("[web]\nlisten = \"127.0.0.1:9090\"\n", path).expect("valid");
    c.apply_env(env_of(&[("EXECGOV_LISTEN", "0.0.0.0:8443")]))
        .expect("a valid address");
    assert_eq!(
        c.web.listen.to_string(),
        "0.0.0.0:8443",
        "the listener moved"
    );
    assert_eq!(
        c.web.public_url, "http://0.0.0.0:8443",
        "a public URL the file does not set follows the listener"
    );

    let mut c = Config::parse(
        "[web]\nlisten = \"127.0.0.1:9090\"\npublic_url = \"https://execgov.example.org\"\n",
        path,
    )
    .expect("valid");
    c.apply_env(env_of(&[("EXECGOV_LISTEN", "[::1]:7000")]))
        .expect("a valid address");
    assert_eq!(
        c.web.public_url, "https://execgov.example.org",
        "a public URL written in the file stays"
    );
    c.apply_env(env_of(&[(
        "EXECGOV_PUBLIC_URL",
        "https://ops.example.org/execgov/",
    )]))
    .expect("a valid URL");
    assert_eq!(
        c.web.public_url, "https://ops.example.org/execgov",
        "the environment's URL wins, without its trailing slash"
    );

    let mut c = Config::defaults_in(Path::new("/srv"));
    c.apply_env(env_of(&[
        ("EXECGOV_LISTEN", ""),
        ("EXECGOV_PUBLIC_URL", ""),
    ]))
    .expect("empty means unset");
    assert_eq!(c.web.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.web.public_url, "http://127.0.0.1:8080");
}

#[test]
fn bad_environment_overrides_name_the_variable() {
    let mut c = Config::defaults_in(Path::new("/srv"));
    let err = c
        .apply_env(env_of(&[("EXECGOV_LISTEN", "localhost")]))
        .expect_err("not an address");
    assert_eq!(
        err.to_string(),
        "environment variable EXECGOV_LISTEN: `localhost` is not an address such as \"127.0.0.1:8080\""
    );
    let err = c
        .apply_env(env_of(&[("EXECGOV_PUBLIC_URL", "execgov.example.org")]))
        .expect_err("no scheme");
    assert!(
        err.to_string().starts_with(
            "environment variable EXECGOV_PUBLIC_URL: `execgov.example.org` must start with http://"
        ),
        "{err}"
    );
}

#[test]
fn metrics_token_and_inbound_retention_are_read() {
    let c = Config::parse(
        "[web]\nmetrics_token = \"env:EXECGOV_METRICS_TOKEN\"\n[store]\ninbound_retention = \"3d\"\n",
        Path::new("/etc/execgov/execgov.toml"),
    )
    .expect("valid");
    assert_eq!(
        c.web.metrics_token,
        Some(SecretRef::Env("EXECGOV_METRICS_TOKEN".into()))
    );
    assert_eq!(
        c.store.inbound_retention,
        Duration::from_secs(3 * 24 * 3600)
    );
    let d = Config::defaults_in(Path::new("/srv"));
    assert_eq!(d.web.metrics_token, None, "/metrics is open by default");
    assert_eq!(
        d.store.inbound_retention,
        Duration::from_secs(7 * 24 * 3600),
        "a week by default"
    );
    let shown = problems("[store]\ninbound_retention = \"10m\"\n");
    assert!(
        shown.contains("execgov.toml:2: key `store.inbound_retention`: must be at least 1h"),
        "{shown}"
    );
}

#[test]
fn retention_is_read_and_unset_keeps_forever() {
    let c = Config::parse(
        "[retention]\nlogs = \"90d\"\nartifacts = \"30d\"\nruns = \"400d\"\n",
        Path::new("/etc/execgov/execgov.toml"),
    )
    .expect("valid");
    let days = |n: u64| Some(Duration::from_secs(n * 24 * 3600));
    assert_eq!(c.retention.logs, days(90));
    assert_eq!(c.retention.artifacts, days(30));
    assert_eq!(c.retention.runs, days(400));
    let partial =
        Config::parse("[retention]\nlogs = \"2h\"\n", Path::new("execgov.toml")).expect("valid");
    assert_eq!(partial.retention.logs, Some(Duration::from_secs(7200)));
    assert_eq!(partial.retention.artifacts, None, "unset keeps files");
    assert_eq!(partial.retention.runs, None, "unset keeps outputs");
    let d = Config::defaults_in(Path::new("/srv"));
    assert!(!d.retention.is_set(), "nothing is pruned by default");
}

#[test]
fn bad_retention_values_name_file_line_and_key() {
    let shown = problems("[retention]\nlogs = \"90d\"\nartifacts = \"10m\"\n");
    assert!(
        shown.contains("execgov.toml:3: key `retention.artifacts`: must be at least 1h"),
        "{shown}"
    );
    let shown = problems("[retention]\nruns = \"forever\"\n");
    assert!(
        shown.contains("execgov.toml:2: key `retention.runs`: `forever` is not a duration"),
        "{shown}"
    );
    let shown = problems("[retention]\nlogs = \"90d\"\noutputs = \"90d\"\n");
    assert!(
        shown.contains("execgov.toml:3") && shown.contains("outputs"),
        "an unknown key is refused with its line: {shown}"
    );
    let shown = problems("[retention]\nlogs = 90\n");
    assert!(
        shown.contains("execgov.toml:2") && shown.contains("retention.logs"),
        "a number is not a duration: {shown}"
    );
}
