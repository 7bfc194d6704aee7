//! Protects readable results: `import execgov` works in every Python run and its
//! `result(table=…)` is a table in `execgov show` (aligned) and `show --json`;
//! `output = "csv"` turns a real CSV tool's printed output (csvkit's `csvstat
//! --csv`) into the same table with no wrapper; output that does not parse says
//! why and leaves the run succeeded.

use super::{Project, python, venv};

#[test]
fn the_execgov_module_is_importable_and_its_table_is_shown() {
    let p = Project::new();
    let py = python();
    p.init(
        &[
            "manifests/scripts/sales.py",
            "--python",
            &py,
            "--run",
            "anyone",
        ],
        "sales",
    );
    let show = p.run("sales", &["regions=3"]);
    assert!(
        show.contains("  result:\n    total: 30\n    region    amount\n    --------  ------\n    region-0  0\n"),
        "facts, then the table aligned: {show}"
    );
    let id = super::run_id_in(&show);
    let o = p.execgov(&["show", &id.to_string(), "--json"]);
    assert!(o.status.success(), "{}", super::text(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    assert_eq!(doc["state"], "succeeded");
    assert_eq!(
        doc["result"],
        serde_json::json!({"total": 30, "table": {"columns": ["region", "amount"],
            "rows": [["region-0", 0], ["region-1", 10], ["region-2", 20]]}}),
        "the result as the script wrote it"
    );
    assert!(
        doc["audit_link"]
            .as_str()
            .is_some_and(|l| l.contains("/runs/"))
    );
}

/// A manifest for csvkit's csvstat whose CSV output is the result.
fn csvstat_manifest(p: &Project, output: &str) {
    let csvstat = venv().join("bin/csvstat");
    std::fs::write(
        p.path("manifests/csv-stats.toml"),
        format!(
            "name = \"csv-stats\"\ncommand = [{:?}, {:?}, \"--csv\", \"{{file}}\"]\noutput = \"{output}\"\n\
             [[param]]\nname = \"file\"\ntype = \"string\"\n[access]\nrun = [\"anyone\"]\n",
            python(),
            csvstat.display().to_string()
        ),
    )
    .expect("manifest");
}

#[test]
fn csv_output_of_a_real_tool_becomes_the_result_table() {
    let p = Project::new();
    csvstat_manifest(&p, "csv");
    p.check();
    let input = p.path("sales.csv");
    std::fs::write(&input, "region,amount\nnorth,10\nsouth,32\n").expect("write");
    let show = p.run("csv-stats", &[&format!("file={}", input.display())]);
    let id = super::run_id_in(&show);
    let o = p.execgov(&["show", &id.to_string(), "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let table = &doc["result"]["table"];
    let columns: Vec<&str> = table["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert_eq!(
        &columns[..4],
        ["column_id", "column_name", "type", "nulls"],
        "{doc:#}"
    );
    let rows = table["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "one row per column of the input: {doc:#}");
    assert_eq!(rows[1][1], "amount");
    assert_eq!(rows[1][2], "Number");
    assert!(
        show.contains("column_id  column_name  type"),
        "and `show` prints it aligned: {show}"
    );
}

#[test]
fn output_that_does_not_parse_says_why_and_the_run_still_succeeds() {
    let p = Project::new();
    csvstat_manifest(&p, "json");
    let input = p.path("sales.csv");
    std::fs::write(&input, "region,amount\nnorth,10\n").expect("write");
    let show = p.run("csv-stats", &[&format!("file={}", input.display())]);
    assert!(show.contains("state:      succeeded"), "{show}");
    assert!(
        show.contains("output = \"json\": the output is not one JSON document"),
        "the reason is on the run: {show}"
    );
}
