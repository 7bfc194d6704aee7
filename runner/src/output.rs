//! Output capture: stdout and stderr copied line by line, in arrival order, into
//! the capped log; secrets masked; the tail kept for chat; `::progress` lines
//! forwarded.
//!
//! Memory stays bounded whatever the script prints: two read buffers, one
//! unfinished line per stream (cut at [`MAX_LINE`]), and a few KiB of tail.

use std::borrow::Cow;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::unix::pipe::Receiver;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::log::CappedLog;
use crate::mask::Masker;
use crate::spec::Progress;

/// Bytes read from a pipe at a time.
const READ_BUFFER: usize = 64 * 1024;
/// An unfinished line longer than this is written out in pieces.
const MAX_LINE: usize = 16 * 1024;
/// Characters of output handed back for chat.
const TAIL_CHARS: usize = 3_000;
/// Bytes of (masked) output kept to cut the tail from: enough for
/// [`TAIL_CHARS`] of four-byte characters.
const TAIL_KEEP: usize = 16 * 1024;
/// Progress text longer than this is shortened.
const PROGRESS_TEXT_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out = 0,
    Err = 1,
}

/// One stream's unfinished line.
#[derive(Debug, Default)]
struct LineBuf {
    pending: Vec<u8>,
    /// The pending bytes continue a line that was already partly written
    /// (so they cannot be a `::progress` line).
    continuing: bool,
}

/// Everything a run's output flows into.
#[derive(Debug)]
pub(crate) struct Capture {
    log: CappedLog,
    masker: Masker,
    progress: mpsc::Sender<Progress>,
    lines: [LineBuf; 2],
    tail: Vec<u8>,
}

impl Capture {
    pub(crate) fn new(log: CappedLog, masker: Masker, progress: mpsc::Sender<Progress>) -> Capture {
        Capture {
            log,
            masker,
            progress,
            lines: Default::default(),
            tail: Vec::with_capacity(2 * TAIL_KEEP),
        }
    }

    /// Takes one chunk read from `stream`; writes out every line it completes.
    fn feed(&mut self, stream: Stream, mut chunk: &[u8]) {
        let i = stream as usize;
        while let Some(newline) = chunk.iter().position(|&b| b == b'\n') {
            let (line, rest) = chunk.split_at(newline + 1);
            chunk = rest;
            let continuing = std::mem::take(&mut self.lines[i].continuing);
            if self.lines[i].pending.is_empty() {
                self.emit(stream, line, continuing);
            } else {
                let mut pending = std::mem::take(&mut self.lines[i].pending);
                pending.extend_from_slice(line);
                self.emit(stream, &pending, continuing);
                pending.clear();
                self.lines[i].pending = pending;
            }
        }
        if !chunk.is_empty() {
            self.lines[i].pending.extend_from_slice(chunk);
            self.cut_long_line(stream);
        }
    }

    /// Writes out the front of an unfinished line that grew past [`MAX_LINE`],
    /// keeping back enough bytes for a secret that may continue in the next read.
    fn cut_long_line(&mut self, stream: Stream) {
        let i = stream as usize;
        let overlap = self.masker.overlap();
        if self.lines[i].pending.len() < MAX_LINE + overlap {
            return;
        }
        let mut pending = std::mem::take(&mut self.lines[i].pending);
        let cut = self.masker.safe_cut(&pending, pending.len() - overlap);
        let continuing = std::mem::replace(&mut self.lines[i].continuing, true);
        self.emit(stream, &pending[..cut], continuing);
        pending.drain(..cut);
        self.lines[i].pending = pending;
    }

    /// Masks a line (or piece of one) and sends it to the log and either the
    /// tail or, for `::progress` lines on stdout, the progress channel: progress
    /// updates the run's status instead of filling the output shown in chat.
    fn emit(&mut self, stream: Stream, raw: &[u8], continuing: bool) {
        let masked = self.masker.mask(raw);
        self.log.write_output(&masked);
        if stream == Stream::Out
            && !continuing
            && masked.starts_with(b"::progress")
            && let Some(progress) = parse_progress(&masked)
        {
            // Never wait for a slow reader: a dropped update is replaced by the next.
            let _ = self.progress.try_send(progress);
            return;
        }
        self.push_tail(&masked);
    }

    fn push_tail(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(TAIL_KEEP)..];
        if self.tail.len() + bytes.len() > 2 * TAIL_KEEP {
            let excess = self.tail.len() + bytes.len() - TAIL_KEEP;
            self.tail.drain(..excess.min(self.tail.len()));
        }
        self.tail.extend_from_slice(bytes);
    }

    /// Writes out unfinished lines; returns the log (for notes) and the tail.
    pub(crate) fn finish(mut self) -> (CappedLog, String) {
        for stream in [Stream::Out, Stream::Err] {
            let i = stream as usize;
            let pending = std::mem::take(&mut self.lines[i].pending);
            if !pending.is_empty() {
                let continuing = self.lines[i].continuing;
                self.emit(stream, &pending, continuing);
            }
        }
        (self.log, tail_text(&self.tail))
    }
}

/// Reads both pipes until both are closed or `stop` fires, then finishes.
pub(crate) async fn capture(
    mut capture: Capture,
    mut stdout: Option<Receiver>,
    mut stderr: Option<Receiver>,
    stop: CancellationToken,
) -> (CappedLog, String) {
    let mut out_buf = vec![0u8; READ_BUFFER];
    let mut err_buf = vec![0u8; READ_BUFFER];
    while stdout.is_some() || stderr.is_some() {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            read = read_some(&mut stdout, &mut out_buf) => match read {
                Some(n) => capture.feed(Stream::Out, &out_buf[..n]),
                None => stdout = None,
            },
            read = read_some(&mut stderr, &mut err_buf) => match read {
                Some(n) => capture.feed(Stream::Err, &err_buf[..n]),
                None => stderr = None,
            },
        }
        // Every complete line read so far is in the file for the log streamer.
        capture.log.flush();
    }
    capture.finish()
}

/// One read; `None` at end of stream (or on a read error, which ends it too).
/// A closed pipe never completes, so `select!` waits on the other one.
async fn read_some<R: AsyncRead + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    let Some(pipe) = pipe else {
        return std::future::pending().await;
    };
    match pipe.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// The last [`TAIL_CHARS`] characters, cut on a character boundary.
fn tail_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let start = text
        .char_indices()
        .rev()
        .nth(TAIL_CHARS - 1)
        .map_or(0, |(i, _)| i);
    text[start..].to_string()
}

/// `::progress 40 Exporting rows` or `::progress Exporting rows`. Public so
/// that readers of a stored log (the CLI's `--wait`) see the same lines as progress.
pub fn parse_progress(line: &[u8]) -> Option<Progress> {
    let line = String::from_utf8_lossy(line);
    let rest = line
        .trim_end_matches(['\n', '\r'])
        .strip_prefix("::progress")?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None; // `::progressive` is ordinary output
    }
    let rest = rest.trim();
    let (head, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let number = head.strip_suffix('%').unwrap_or(head);
    let (percent, text) = match number.parse::<u8>() {
        Ok(n) if n <= 100 => (Some(n), after.trim()),
        _ => (None, rest),
    };
    if percent.is_none() && text.is_empty() {
        return None;
    }
    let text: Cow<'_, str> = match text.char_indices().nth(PROGRESS_TEXT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]).into(),
        None => text.into(),
    };
    Some(Progress {
        percent,
        text: text.into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(line: &str) -> Option<(Option<u8>, String)> {
        parse_progress(line.as_bytes()).map(|p| (p.percent, p.text))
    }

    #[test]
    fn progress_lines_parse() {
        assert_eq!(
            progress("::progress 40 Exporting rows\n"),
            Some((Some(40), "Exporting rows".into()))
        );
        assert_eq!(
            progress("::progress 100\r\n"),
            Some((Some(100), String::new()))
        );
        assert_eq!(
            progress("::progress Exporting\n"),
            Some((None, "Exporting".into()))
        );
        assert_eq!(
            progress("::progress 150 too far\n"),
            Some((None, "150 too far".into()))
        );
        assert_eq!(progress("::progressive rock\n"), None);
        assert_eq!(progress("::progress\n"), None);
    }

    fn capture_into(
        dir: &std::path::Path,
        secrets: &[&str],
    ) -> (Capture, mpsc::Receiver<Progress>) {
        let log = CappedLog::create(&dir.join("run.log"), 1 << 20).expect("create log");
        let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        let (tx, rx) = mpsc::channel(8);
        (Capture::new(log, Masker::new(&secrets), tx), rx)
    }

    #[test]
    fn a_secret_split_across_reads_and_a_long_line_is_masked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut capture, _rx) = capture_into(dir.path(), &["s3cret-token"]);
        capture.feed(Stream::Out, b"token=s3cr");
        capture.feed(Stream::Err, b"err line\n");
        capture.feed(Stream::Out, b"et-token ok\n");
        let mut long = vec![b'x'; MAX_LINE - 5];
        long.extend_from_slice(b"s3cret-token");
        capture.feed(Stream::Out, &long);
        capture.feed(Stream::Out, b"\n");
        let (log, tail) = capture.finish();
        log.finish();
        let text = std::fs::read_to_string(dir.path().join("run.log")).expect("read log");
        assert!(!text.contains("s3cret"), "no secret in the log: {text}");
        assert!(
            text.starts_with("err line\ntoken=*** ok\n"),
            "lines interleave whole"
        );
        assert!(
            text.ends_with("x***\n"),
            "the long line is masked where it was cut"
        );
        assert!(!tail.contains("s3cret"), "no secret in the tail");
    }

    #[test]
    fn the_tail_is_the_last_characters() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut capture, _rx) = capture_into(dir.path(), &[]);
        for i in 0..2_000 {
            capture.feed(Stream::Out, format!("line {i} é\n").as_bytes());
        }
        let (_log, tail) = capture.finish();
        assert_eq!(tail.chars().count(), TAIL_CHARS);
        assert!(tail.ends_with("line 1999 é\n"));
    }
}
