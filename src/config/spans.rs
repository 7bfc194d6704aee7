//! Line numbers and a checked reader over toml's spanned tree, shared by the config
//! and the manifests so that both report every problem as `FILE:LINE: …`.
//!
//! We walk `toml::de::DeTable` by hand instead of deriving `Deserialize` so that one
//! pass finds *every* problem (unknown keys, wrong types) with the line it sits on,
//! rather than stopping at the first one.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The 1-based line that `byte_offset` falls on (offsets past the end count as the
/// last line).
pub fn line_of(text: &str, byte_offset: usize) -> usize {
    let end = byte_offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// One thing wrong in a TOML file, before the file name is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    /// The dotted key the problem is about (`runner.log_cap`), when there is one.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "key `{key}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A spanned TOML value as the parser hands it out.
pub(crate) type Item<'i> = Spanned<DeValue<'i>>;

/// Parses `text` into the spanned tree, or the syntax error with its line.
pub(crate) fn parse_document(text: &str) -> Result<Spanned<DeTable<'_>>, Problem> {
    DeTable::parse(text).map_err(|e| Problem {
        line: e.span().map_or(1, |s| line_of(text, s.start)),
        key: None,
        message: format!("invalid TOML: {}", e.message()),
    })
}

/// A table being read, with how to name it in messages.
#[derive(Clone)]
pub(crate) struct Section<'a, 'i> {
    pub table: &'a DeTable<'i>,
    /// Dotted prefix for keys inside (`runner`, `param`); empty at the top level.
    pub path: String,
    /// How unknown-key messages name the table (`[runner]`, `[[param]]`); empty at the top.
    pub label: String,
    pub span: Range<usize>,
}

impl<'a, 'i> Section<'a, 'i> {
    pub fn top(doc: &'a Spanned<DeTable<'i>>) -> Self {
        Section {
            table: doc.get_ref(),
            path: String::new(),
            label: String::new(),
            span: doc.span(),
        }
    }

    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Item<'i>> {
        self.table.get(key)
    }

    /// Keys in file order, with their spans.
    pub fn keys(&self) -> Vec<(&'a str, Range<usize>, &'a Item<'i>)> {
        let mut keys: Vec<_> = self
            .table
            .iter()
            .map(|(k, v)| (k.get_ref().as_ref(), k.span(), v))
            .collect();
        keys.sort_by_key(|(_, span, _)| span.start);
        keys
    }
}

/// Collects problems while typed getters read a [`Section`].
pub(crate) struct Reader<'t> {
    pub text: &'t str,
    pub problems: Vec<Problem>,
}

impl<'t> Reader<'t> {
    pub fn new(text: &'t str) -> Self {
        Reader {
            text,
            problems: Vec::new(),
        }
    }

    pub fn line(&self, span: &Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    /// Records a problem about `key` (a full dotted path) at `span`.
    pub fn error(&mut self, span: &Range<usize>, key: Option<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            line: self.line(span),
            key,
            message: message.into(),
        });
    }

    /// Records a problem about `key` of `section`.
    pub fn key_error(
        &mut self,
        section: &Section<'_, '_>,
        key: &str,
        span: &Range<usize>,
        message: impl Into<String>,
    ) {
        self.error(span, Some(section.key_path(key)), message);
    }

    /// Reports every key of `section` that is not in `allowed`, with a near-miss hint.
    pub fn unknown_keys(&mut self, section: &Section<'_, '_>, allowed: &[&str]) {
        for (key, span, _) in section.keys() {
            if allowed.contains(&key) {
                continue;
            }
            let place = if section.label.is_empty() {
                String::new()
            } else {
                format!(" in {}", section.label)
            };
            let hint = closest(key, allowed.iter().copied())
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            self.error(&span, None, format!("unknown key `{key}`{place}{hint}"));
        }
    }

    /// Reports a required key that is absent, at line 1 as the design asks.
    pub fn missing(&mut self, section: &Section<'_, '_>, key: &str) {
        let line = if section.path.is_empty() {
            1
        } else {
            self.line(&section.span)
        };
        self.problems.push(Problem {
            line,
            key: Some(section.key_path(key)),
            message: "is required but missing".to_string(),
        });
    }

    fn wrong_type(&mut self, section: &Section<'_, '_>, key: &str, item: &Item<'_>, want: &str) {
        let got = item.get_ref().type_str();
        self.key_error(
            section,
            key,
            &item.span(),
            format!("expected {want}, got {got}"),
        );
    }

    pub fn string(&mut self, s: &Section<'_, '_>, key: &str) -> Option<(String, Range<usize>)> {
        let item = s.get(key)?;
        match item.get_ref() {
            DeValue::String(v) => Some((v.to_string(), item.span())),
            _ => {
                self.wrong_type(s, key, item, "a string");
                None
            }
        }
    }

    pub fn bool(&mut self, s: &Section<'_, '_>, key: &str) -> Option<bool> {
        let item = s.get(key)?;
        match item.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(s, key, item, "true or false");
                None
            }
        }
    }

    pub fn int(&mut self, s: &Section<'_, '_>, key: &str) -> Option<(i64, Range<usize>)> {
        let item = s.get(key)?;
        match int_value(item.get_ref()) {
            Some(n) => Some((n, item.span())),
            None => {
                self.wrong_type(s, key, item, "an integer");
                None
            }
        }
    }

    /// An integer that must be at least `min` and fit in `T`.
    pub fn count<T: TryFrom<i64>>(
        &mut self,
        s: &Section<'_, '_>,
        key: &str,
        min: i64,
    ) -> Option<T> {
        let (n, span) = self.int(s, key)?;
        match T::try_from(n) {
            Ok(v) if n >= min => Some(v),
            _ => {
                self.key_error(s, key, &span, format!("must be at least {min}, got {n}"));
                None
            }
        }
    }

    /// An array of strings, each with its own span.
    pub fn strings(
        &mut self,
        s: &Section<'_, '_>,
        key: &str,
    ) -> Option<Vec<(String, Range<usize>)>> {
        let item = s.get(key)?;
        let DeValue::Array(items) = item.get_ref() else {
            self.wrong_type(s, key, item, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for element in items.iter() {
            match element.get_ref() {
                DeValue::String(v) => out.push((v.to_string(), element.span())),
                other => {
                    let got = other.type_str();
                    self.key_error(
                        s,
                        key,
                        &element.span(),
                        format!("expected strings, got {got}"),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A duration written for humantime (`"10m"`, `"1h 30m"`), at least one second.
    pub fn duration(&mut self, s: &Section<'_, '_>, key: &str) -> Option<Duration> {
        let (text, span) = self.string(s, key)?;
        match humantime::parse_duration(&text) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.key_error(s, key, &span, "must be longer than zero");
                None
            }
            Err(e) => {
                let msg = format!(
                    "`{text}` is not a duration ({e}); write e.g. \"30s\", \"10m\", \"1h\""
                );
                self.key_error(s, key, &span, msg);
                None
            }
        }
    }

    /// A sub-table (`[runner]`, or an inline table).
    pub fn section<'a, 'i>(&mut self, s: &Section<'a, 'i>, key: &str) -> Option<Section<'a, 'i>> {
        let item = s.get(key)?;
        match item.get_ref() {
            DeValue::Table(table) => Some(Section {
                table,
                path: s.key_path(key),
                label: format!("[{}]", s.key_path(key)),
                span: item.span(),
            }),
            _ => {
                self.wrong_type(s, key, item, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[param]]`); an absent key is an empty list.
    pub fn sections<'a, 'i>(&mut self, s: &Section<'a, 'i>, key: &str) -> Vec<Section<'a, 'i>> {
        let Some(item) = s.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = item.get_ref() else {
            self.wrong_type(s, key, item, &format!("[[{key}]] tables"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for element in items.iter() {
            match element.get_ref() {
                DeValue::Table(table) => out.push(Section {
                    table,
                    path: s.key_path(key),
                    label: format!("[[{}]]", s.key_path(key)),
                    span: element.span(),
                }),
                other => {
                    let got = other.type_str();
                    self.key_error(
                        s,
                        key,
                        &element.span(),
                        format!("expected tables, got {got}"),
                    );
                }
            }
        }
        out
    }
}

/// The value of a TOML integer, if `value` is one that fits in i64.
pub(crate) fn int_value(value: &DeValue<'_>) -> Option<i64> {
    match value {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    }
}

/// The candidate closest to `word`, if any is close enough to be a likely typo.
pub fn closest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(word, c), c))
        .filter(|(score, _)| *score >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_from_one() {
        let text = "a = 1\nb = 2\n";
        assert_eq!(line_of(text, 0), 1, "offset 0 is line 1");
        assert_eq!(
            line_of(text, 6),
            2,
            "first byte after a newline is the next line"
        );
        assert_eq!(line_of(text, 999), 3, "offsets past the end clamp");
    }

    #[test]
    fn unknown_keys_name_the_table_and_a_hint() {
        let text = "[runner]\npool_size = 1\npol_size = 2\n";
        let doc = parse_document(text).expect("valid toml");
        let mut r = Reader::new(text);
        let top = Section::top(&doc);
        let runner = r.section(&top, "runner").expect("a table");
        r.unknown_keys(&runner, &["pool_size", "log_cap"]);
        assert_eq!(r.problems.len(), 1, "one unknown key");
        assert_eq!(r.problems[0].line, 3);
        assert_eq!(
            r.problems[0].to_string(),
            "unknown key `pol_size` in [runner] (did you mean `pool_size`?)"
        );
    }

    #[test]
    fn syntax_errors_carry_their_line() {
        let p = parse_document("a = 1\nb = \n").expect_err("a syntax error");
        assert_eq!(p.line, 2, "the line of the broken value");
    }
}
