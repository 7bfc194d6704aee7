//! Where log lines go and how they look: stderr, as text for people or as one
//! JSON object per line for log collectors (`EXECGOV_LOG_FORMAT=json`); which
//! lines, by `EXECGOV_LOG` (a `tracing` filter such as `info,execgov=debug`).

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`,
    /// the event's fields, and the span's (`run_id`) under `span`.
    Json,
}

impl LogFormat {
    /// `EXECGOV_LOG_FORMAT`'s value: unset or empty is text; anything but
    /// `text` or `json` is refused, so a typo is not silently ignored.
    pub fn parse(value: Option<&str>) -> Result<LogFormat, String> {
        match value.map(str::trim) {
            None | Some("") => Ok(LogFormat::Text),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            Some(v) => Err(format!(
                "EXECGOV_LOG_FORMAT=`{v}` is not a log format; use `text` (the default) or `json`"
            )),
        }
    }
}

/// Installs the process's log subscriber on stderr; `default` is the filter
/// used when `EXECGOV_LOG` is unset or invalid.
pub fn init(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_env("EXECGOV_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_text_by_default_json_on_request_and_typos_refused() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("")), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("JSON")), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(Some("text")), Ok(LogFormat::Text));
        let err = LogFormat::parse(Some("jsno")).expect_err("a typo");
        assert!(err.contains("`jsno`") && err.contains("json"), "{err}");
    }
}
