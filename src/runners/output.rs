//! `output = "json" | "csv"`: a run's printed output read as its result when it
//! finishes, so a tool that only prints (csvkit's `csvstat --csv`) gets a table
//! with no wrapper script. The shapes are in docs/results.md.

use serde_json::{Value, json};

use crate::manifest::OutputFormat;

/// Rows kept from CSV output; the result is a summary, not data.
const MAX_ROWS: usize = 10_000;

/// The log as the script printed it: without the runner's `[execgov]` notes and
/// `::progress` lines.
fn printed(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.starts_with("[execgov] ") || line.starts_with("::progress") {
            continue;
        }
        out.push_str(line);
    }
    out
}

/// The result `log` gives as `format`; `Err` says why it gives none.
pub(crate) fn parse(format: OutputFormat, log: &[u8]) -> Result<Option<Value>, String> {
    let text = printed(log);
    match format {
        OutputFormat::Text => Ok(None),
        OutputFormat::Json => match serde_json::from_str::<Value>(text.trim()) {
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            Ok(other) => Ok(Some(json!({ "value": other }))),
            Err(e) => Err(format!(
                "output = \"json\": the output is not one JSON document ({e})"
            )),
        },
        OutputFormat::Csv => {
            let mut records = csv_records(&text)?.into_iter();
            let Some(columns) = records.next() else {
                return Err("output = \"csv\": the output is empty".to_string());
            };
            let mut rows = Vec::new();
            let mut more = 0usize;
            for (i, row) in records.enumerate() {
                if row.len() != columns.len() {
                    return Err(format!(
                        "output = \"csv\": row {} has {} cells for {} columns",
                        i + 1,
                        row.len(),
                        columns.len()
                    ));
                }
                if rows.len() < MAX_ROWS {
                    rows.push(row);
                } else {
                    more += 1;
                }
            }
            let mut result = json!({ "table": { "columns": columns, "rows": rows } });
            if more > 0 {
                result["rows_left_out"] = json!(more);
            }
            Ok(Some(result))
        }
    }
}

/// RFC 4180 records: `,` separated, `"` quoted with `""` for a quote, CRLF or
/// LF line ends; blank lines skipped.
fn csv_records(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if !(record.is_empty() && field.is_empty() && !was_quoted) {
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
                was_quoted = false;
                line += 1;
            }
            '"' => {
                return Err(format!(
                    "output = \"csv\": a stray `\"` on line {line} of the output"
                ));
            }
            c => field.push(c),
        }
    }
    if quoted {
        return Err("output = \"csv\": a quoted cell is not closed".to_string());
    }
    if !(record.is_empty() && field.is_empty() && !was_quoted) {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_output_becomes_a_table_without_the_runners_notes() {
        let log = b"::progress 50 half\ncolumn,\"na,me\"\r\n1,\"say \"\"hi\"\"\"\n\n2,\"two\nlines\"\n[execgov] exit 0\n";
        let v = parse(OutputFormat::Csv, log)
            .expect("parses")
            .expect("a result");
        assert_eq!(
            v,
            json!({"table": {"columns": ["column", "na,me"],
                "rows": [["1", "say \"hi\""], ["2", "two\nlines"]]}})
        );
        let bad = parse(OutputFormat::Csv, b"a,b\n1\n").expect_err("ragged");
        assert!(bad.contains("row 1 has 1 cells for 2 columns"), "{bad}");
        assert!(
            parse(OutputFormat::Csv, b"a\n\"open\n").is_err(),
            "unclosed quote"
        );
    }

    #[test]
    fn json_output_is_the_result_and_text_is_none() {
        let v = parse(OutputFormat::Json, b"{\"total\": 3}\n[execgov] note\n").expect("parses");
        assert_eq!(v, Some(json!({"total": 3})));
        let v = parse(OutputFormat::Json, b"[1, 2]\n").expect("parses");
        assert_eq!(v, Some(json!({"value": [1, 2]})));
        assert!(parse(OutputFormat::Json, b"nope").is_err());
        assert_eq!(parse(OutputFormat::Text, b"{}"), Ok(None));
    }
}
