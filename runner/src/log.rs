//! The run's log file with a size cap: output past the cap is counted and dropped,
//! and `[execgov]` notes (which may exceed the cap) say what happened.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Buffer in front of the log file, so small lines do not cost a syscall each.
const WRITE_BUFFER: usize = 64 * 1024;

/// Writes output up to `cap` bytes and counts the rest.
///
/// Writes are plain blocking writes from the capture task: they go to the page
/// cache, are buffered, and stop at the cap, so they are short and bounded.
#[derive(Debug)]
pub(crate) struct CappedLog {
    /// `None` once a write failed; later output is counted as dropped.
    file: Option<BufWriter<File>>,
    cap: u64,
    /// Output bytes written (at most `cap`).
    written: u64,
    /// Output bytes dropped past the cap (or after a write error).
    dropped: u64,
    /// Bytes of `[execgov]` notes written.
    notes: u64,
    /// The last byte written was a newline (or nothing was written yet).
    at_line_start: bool,
}

impl CappedLog {
    /// Creates (truncates) the log file, and its folder if needed.
    pub(crate) fn create(path: &Path, cap: u64) -> io::Result<CappedLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = File::create(path)?;
        Ok(CappedLog {
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            cap,
            written: 0,
            dropped: 0,
            notes: 0,
            at_line_start: true,
        })
    }

    /// Writes what fits under the cap; counts the rest as dropped.
    pub(crate) fn write_output(&mut self, bytes: &[u8]) {
        let room = self.cap.saturating_sub(self.written);
        let take = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let (kept, rest) = bytes.split_at(take);
        if !kept.is_empty() {
            if self.write_raw(kept) {
                self.written += kept.len() as u64;
            } else {
                self.dropped += kept.len() as u64;
            }
        }
        self.dropped += rest.len() as u64;
    }

    /// Appends `[execgov] <text>` on a line of its own, past the cap if need be.
    pub(crate) fn note(&mut self, text: &str) {
        let mut line = String::with_capacity(text.len() + 12);
        if !self.at_line_start {
            line.push('\n');
        }
        line.push_str("[execgov] ");
        line.push_str(text);
        line.push('\n');
        if self.write_raw(line.as_bytes()) {
            self.notes += line.len() as u64;
        }
    }

    /// Adds the "output capped" note if anything was dropped.
    pub(crate) fn note_cap(&mut self) {
        if self.dropped > 0 {
            let text = format!(
                "output capped at {}; {} dropped",
                human_bytes(self.cap),
                human_bytes(self.dropped)
            );
            self.note(&text);
        }
    }

    /// Hands what is buffered to the file, so that a reader of the file (the
    /// runner's log streamer) sees every line read so far.
    pub(crate) fn flush(&mut self) {
        if let Some(file) = self.file.as_mut()
            && let Err(e) = file.flush()
        {
            tracing::warn!(error = %e, "could not write the run log; dropping the rest");
            self.file = None;
        }
    }

    /// Flushes the file; returns `(bytes in the log, output bytes dropped)`.
    pub(crate) fn finish(mut self) -> (u64, u64) {
        if let Some(mut file) = self.file.take()
            && let Err(e) = file.flush()
        {
            tracing::warn!(error = %e, "could not flush the run log");
        }
        (self.written + self.notes, self.dropped)
    }

    fn write_raw(&mut self, bytes: &[u8]) -> bool {
        let Some(file) = self.file.as_mut() else {
            return false;
        };
        match file.write_all(bytes) {
            Ok(()) => {
                self.at_line_start = bytes.last() == Some(&b'\n');
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not write the run log; dropping the rest");
                self.file = None;
                false
            }
        }
    }
}

/// `512 B`, `10.0 MiB`: sizes for people.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.0 MiB");
        assert_eq!(human_bytes(190 * 1024 * 1024), "190.0 MiB");
    }

    #[test]
    fn output_past_the_cap_is_counted_not_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("run.log");
        let mut log = CappedLog::create(&path, 10).expect("create log");
        log.write_output(b"0123456789abcdef");
        log.note_cap();
        let (bytes, dropped) = log.finish();
        let text = std::fs::read_to_string(&path).expect("read log");
        assert_eq!(dropped, 6, "bytes past the cap are counted");
        assert!(text.starts_with("0123456789\n[execgov] output capped at 10 B; 6 B dropped"));
        assert_eq!(bytes, text.len() as u64, "log_bytes counts the note too");
    }
}
