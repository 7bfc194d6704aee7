//! A run's result as people read it: flat `key: value` facts and at most one
//! table, read once from the `EXECGOV_RESULT` shape (docs/results.md) so the web
//! page, the CLI, Slack and Matrix show the same thing.

use serde_json::Value;

/// Rows a chat message shows; the rest are on the run page.
pub const CHAT_ROWS: usize = 20;

/// A result object read as facts and a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultView {
    /// Every key but `table`, in order; values other than text as JSON text.
    pub fields: Vec<(String, String)>,
    pub table: Option<Table>,
}

/// `{"columns": [...], "rows": [[...], ...]}`, cells as text (null is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<String>,
    /// Each row has exactly `columns.len()` cells (short rows padded, long cut).
    pub rows: Vec<Vec<String>>,
}

/// A JSON value as a cell or fact: text as-is, null empty, the rest as JSON.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl ResultView {
    /// The result read as facts and a table; `None` when it is not an object
    /// with a `table` (shown as before: fields or JSON).
    pub fn with_table(result: &Value) -> Option<ResultView> {
        let map = result.as_object()?;
        let table = Table::parse(map.get("table")?)?;
        let fields = map
            .iter()
            .filter(|(k, _)| k.as_str() != "table")
            .map(|(k, v)| (k.clone(), cell_text(v)))
            .collect();
        Some(ResultView {
            fields,
            table: Some(table),
        })
    }
}

impl Table {
    /// `{"columns", "rows"}`, or a list of objects (columns in first-seen order).
    pub fn parse(v: &Value) -> Option<Table> {
        match v {
            Value::Object(t) => {
                let columns: Vec<String> = t
                    .get("columns")?
                    .as_array()?
                    .iter()
                    .map(cell_text)
                    .collect();
                let rows = t
                    .get("rows")?
                    .as_array()?
                    .iter()
                    .map(|r| {
                        let mut cells: Vec<String> = match r {
                            Value::Array(cells) => cells.iter().map(cell_text).collect(),
                            other => vec![cell_text(other)],
                        };
                        cells.resize(columns.len(), String::new());
                        cells
                    })
                    .collect();
                Some(Table { columns, rows })
            }
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
                let mut columns: Vec<String> = Vec::new();
                for item in items.iter().filter_map(Value::as_object) {
                    for k in item.keys() {
                        if !columns.contains(k) {
                            columns.push(k.clone());
                        }
                    }
                }
                let rows = items
                    .iter()
                    .filter_map(Value::as_object)
                    .map(|o| {
                        columns
                            .iter()
                            .map(|c| o.get(c).map(cell_text).unwrap_or_default())
                            .collect()
                    })
                    .collect();
                Some(Table { columns, rows })
            }
            _ => None,
        }
    }

    /// The first `max_rows` rows as aligned text (a header, a rule, the rows);
    /// and how many rows were left out.
    pub fn aligned(&self, max_rows: usize) -> (String, usize) {
        let shown = &self.rows[..self.rows.len().min(max_rows)];
        let one_line = |s: &str| s.replace(['\n', '\r', '\t'], " ");
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .map(|c| one_line(c).chars().count())
            .collect();
        for row in shown {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(one_line(cell).chars().count());
            }
        }
        let line = |cells: &mut dyn Iterator<Item = String>| {
            let parts: Vec<String> = cells
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            parts.join("  ").trim_end().to_string()
        };
        let mut out = vec![
            line(&mut self.columns.iter().map(|c| one_line(c))),
            line(&mut widths.iter().map(|w| "-".repeat(*w))),
        ];
        for row in shown {
            out.push(line(&mut row.iter().map(|c| one_line(c))));
        }
        (out.join("\n"), self.rows.len() - shown.len())
    }

    /// "Showing 20 of 31 rows." when rows were left out.
    pub fn left_out_note(&self, left_out: usize) -> Option<String> {
        (left_out > 0).then(|| {
            format!(
                "Showing {} of {} rows; all of them are on the run page.",
                self.rows.len() - left_out,
                self.rows.len()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_result_is_facts_and_aligned_rows() {
        let v = json!({"total": 3, "table": {"columns": ["region", "amount"],
            "rows": [["north", 10], ["south-east", null], ["x"]]}});
        let view = ResultView::with_table(&v).expect("has a table");
        assert_eq!(view.fields, vec![("total".to_string(), "3".to_string())]);
        let table = view.table.expect("table");
        assert_eq!(table.rows[2], ["x", ""], "a short row is padded");
        let (text, left) = table.aligned(2);
        assert_eq!(
            text,
            "region      amount\n----------  ------\nnorth       10\nsouth-east"
        );
        assert_eq!(left, 1);
        assert_eq!(
            table.left_out_note(left).as_deref(),
            Some("Showing 2 of 3 rows; all of them are on the run page.")
        );
        assert!(
            ResultView::with_table(&json!({"total": 3})).is_none(),
            "no table"
        );
        let listed = Table::parse(&json!([{"a": 1}, {"b": "x"}])).expect("a list of objects");
        assert_eq!(listed.columns, ["a", "b"]);
        assert_eq!(
            listed.rows,
            vec![
                vec!["1".to_string(), String::new()],
                vec![String::new(), "x".to_string()]
            ]
        );
    }
}
