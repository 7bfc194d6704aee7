//! File parameters (`type = "file"`) through the engine every channel uses,
//! on both backends: a file sent with a request is kept with the run, its
//! name, size and sha256 are what approvers see and approve, and the script
//! gets its path and exactly its bytes; too big, the wrong type, missing, or
//! sent to a script that takes none: refused with a clear answer, audited,
//! nothing recorded. The CLI's `key=@PATH` runs the real binary.

use crate::both_backends;
use crate::helpers::*;
use execgov::engine::{Engine, ReplyKind, Request};
use execgov::types::{ArgValue, RunState};
use execgov_chat::Attachment;
use sha2::Digest;

/// Prints the file's first line, its size and its sha256, from the path it got.
pub const IMPORT: &str = r#"name = "import-csv"
description = "Import a CSV of customers"
command = ["sh", "scripts/import.sh", "{data}"]
timeout = "20s"
[[param]]
name = "data"
type = "file"
max_size = "1MiB"
extensions = ["csv"]
description = "The CSV to import"
[access]
run = ["anyone"]
"#;

pub const IMPORT_SH: &str = "echo \"first: $(head -n1 \"$1\")\"\necho \"bytes: $(wc -c < \"$1\")\"\necho \"sha256: $(sha256sum \"$1\" | cut -d' ' -f1)\"\necho \"name: $(basename \"$1\")\"\n";

pub fn write_import(dir: &std::path::Path, risk: &str) {
    let manifest = if risk == "high" {
        IMPORT
            .replace("timeout = \"20s\"\n", "timeout = \"20s\"\nrisk = \"high\"\n")
            .replace(
                "run = [\"anyone\"]\n",
                "run = [\"anyone\"]\n[approval]\napprovers = [\"group:leads\"]\nchannel = \"approvals\"\n",
            )
    } else {
        IMPORT.to_string()
    };
    std::fs::write(dir.join("manifests/import-csv.toml"), manifest).unwrap();
    std::fs::write(dir.join("manifests/scripts/import.sh"), IMPORT_SH).unwrap();
}

pub fn csv(bytes: usize) -> Vec<u8> {
    let mut out = b"id,name\n".to_vec();
    let mut i = 0;
    while out.len() < bytes {
        out.extend(format!("{i},customer {i}\n").as_bytes());
        i += 1;
    }
    out.truncate(bytes.max(8));
    out
}

async fn send(e: &Engine, who: &str, line: &str, files: Vec<Attachment>) -> execgov::engine::Reply {
    e.handle(Request {
        actor: person(who),
        place: oncall(),
        command: execgov::command::Command::parse(line).unwrap(),
        private: true,
        files,
    })
    .await
}

fn file(name: &str, data: &[u8]) -> Attachment {
    Attachment {
        name: name.into(),
        data: data.to_vec(),
    }
}

both_backends!(
    a_file_reaches_the_script_and_its_sha256_is_approved,
    |b| async move {
        let app = start_with(b, |dir| write_import(dir, "high")).await;
        let e = &app.engine;
        let data = csv(10_000);
        let sha = hex::encode(sha2::Sha256::digest(&data));

        let asked = send(
            e,
            "alice",
            "run import-csv",
            vec![file("customers.csv", &data)],
        )
        .await;
        assert_eq!(asked.kind, ReplyKind::Accepted, "{}", asked.text);
        let run = asked.run.unwrap();
        assert_eq!(run.state, RunState::AwaitingApproval);
        let ArgValue::File(f) = &run.args["data"] else {
            panic!("a file argument: {:?}", run.args)
        };
        assert_eq!(
            (f.name.as_str(), f.size, f.sha256.as_str()),
            ("customers.csv", 10_000, sha.as_str())
        );
        let status = say(e, &person("alice"), &format!("status {}", run.id)).await;
        assert!(
            status.text.contains("customers.csv") && status.text.contains(&sha[..12]),
            "what approvers see names the file and its sha256: {}",
            status.text
        );
        let requested = e.store().audit_entries(Some(run.id), 0, 10).await.unwrap();
        assert_eq!(
            requested[0].details["args"]["data"]["sha256"], sha,
            "the request's audit entry carries the sha256"
        );

        let ok = say(e, &person("bob"), &format!("approve {}", run.id)).await;
        assert_eq!(ok.kind, ReplyKind::Decided, "{}", ok.text);
        let done = wait_final(e, run.id).await;
        assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
        let out = done.output_tail.unwrap_or_default();
        assert!(out.contains("first: id,name"), "{out}");
        assert!(out.contains("bytes: 10000"), "{out}");
        assert!(
            out.contains(&format!("sha256: {sha}")),
            "exactly its bytes: {out}"
        );
        assert!(out.contains("name: customers.csv"), "{out}");

        // `explain` needs no file to say who may run it.
        let explained = say(e, &person("carol"), "explain import-csv").await;
        assert!(
            !explained.is_error() && explained.text.contains("you may ask for it here"),
            "{}",
            explained.text
        );

        // Refused, with a clear answer, and nothing recorded.
        let before = e
            .store()
            .list_runs(&Default::default())
            .await
            .unwrap()
            .len();
        for (files, line, says) in [
            (
                vec![file("big.csv", &csv(2 * 1024 * 1024))],
                "run import-csv",
                "is 2.0 MiB; data takes at most 1.0 MiB",
            ),
            (
                vec![file("customers.xlsx", &data)],
                "run import-csv",
                "is not a .csv file",
            ),
            (vec![], "run import-csv", "is a file: in Slack attach it"),
            (
                vec![file("a.csv", &data)],
                "run import-csv data=b.csv",
                "no attached file is named `b.csv`",
            ),
            (vec![file("a.csv", &data)], "run echo-args", "takes no file"),
            (
                vec![file("evil\u{202E}vsc.exe.csv", &data)],
                "run import-csv",
                "is not a file name ExecGov takes",
            ),
            (
                vec![file("two\nlines.csv", &data)],
                "run import-csv",
                "no control or invisible characters",
            ),
        ] {
            let r = send(e, "alice", line, files).await;
            assert!(r.is_error() && r.text.contains(says), "{line}: {}", r.text);
        }
        assert_eq!(
            e.store()
                .list_runs(&Default::default())
                .await
                .unwrap()
                .len(),
            before,
            "no refused request is recorded"
        );
        let refused = e.store().audit_entries(None, 0, 1000).await.unwrap();
        assert!(
            refused
                .iter()
                .filter(|a| a.action == "run.refused")
                .any(|a| a.details["files"][0]["name"] == "big.csv"),
            "a refusal is audited with what was sent"
        );
    }
);

/// `execgov run import-csv data=@PATH --wait`: the real binary reads the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_a_file_with_at_path() {
    let env = TestEnv::new(Backend::Sqlite).await;
    write_import(env.path(), "low");
    let path = env.path().join("people.csv");
    std::fs::write(&path, csv(500)).unwrap();
    let arg = format!("data=@{}", path.display());
    // Runs import-csv with the file and answers what it printed.
    let sent = |arg: &str| {
        let o = execgov(
            &env.config_path(),
            &["run", "import-csv", arg, "--wait", "--as", "alice"],
        );
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            o.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    };
    let out = sent(&arg);
    assert!(
        out.contains("name: people.csv") && out.contains("bytes: 500"),
        "{out}"
    );
    // Larger than a runner's poll answer may be (16 MiB): the file comes on its own.
    let manifest = env.path().join("manifests/import-csv.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("max_size = \"1MiB\"", "max_size = \"32MiB\""),
    )
    .unwrap();
    std::fs::write(&path, csv(20 * 1024 * 1024)).unwrap();
    let out = sent(&arg);
    assert!(
        out.contains(&format!("bytes: {}", 20 * 1024 * 1024)),
        "{out}"
    );
    let missing = execgov(
        &env.config_path(),
        &[
            "run",
            "import-csv",
            "data=@/nonexistent.csv",
            "--as",
            "alice",
        ],
    );
    assert_eq!(missing.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read the file"));
}

/// The JSON API takes a file as `{"name": …, "base64": …}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_takes_a_file_as_base64() {
    use crate::web_support::WebApp;
    use base64::Engine as _;
    let env = TestEnv::new(Backend::Sqlite).await;
    write_import(env.path(), "low");
    let app = WebApp::start_in(env, "", std::sync::Arc::new(execgov::clock::SystemClock)).await;
    let mut c = app.sign_in("alice").await;
    let csrf = c.csrf().await;
    let page = c
        .post_form("/account/tokens", &[("csrf", &csrf), ("name", "files")])
        .await;
    let token = page
        .body
        .split("id=\"new-token\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let data = csv(300);
    let body = serde_json::json!({
        "script": "import-csv",
        "args": { "data": { "name": "api.csv", "base64": base64::engine::general_purpose::STANDARD.encode(&data) } }
    });
    let r = c.post_json("/api/v1/runs", &token, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = execgov::types::RunId(r.json()["run"]["id"].as_i64().unwrap());
    let done = wait_final(&app.engine, id).await;
    let out = done.output_tail.unwrap_or_default();
    assert!(
        out.contains("name: api.csv") && out.contains("bytes: 300"),
        "{out}"
    );
    let bad = serde_json::json!({ "script": "import-csv", "args": { "data": { "name": "x.txt", "base64": "aGk=" } } });
    let r = c.post_json("/api/v1/runs", &token, bad).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("is not a .csv file"), "{}", r.body);
}
