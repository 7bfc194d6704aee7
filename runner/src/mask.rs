//! Secret masking: every occurrence of a secret value becomes `***`.
//!
//! Output is masked one line at a time, so a secret written in two halves with a
//! flush in between is still caught: the halves meet in the line buffer before any
//! of it is masked. A very long line is cut with [`Masker::safe_cut`], which never
//! cuts through a secret and keeps enough bytes back for one to complete.

use std::borrow::Cow;

/// What a secret is replaced with.
const MASK: &[u8] = b"***";

/// Secrets shorter than this (in characters) are ignored: masking `ab` would
/// shred ordinary output and protect nothing.
const MIN_SECRET_CHARS: usize = 4;

/// The secret values of one run, ready to search for.
#[derive(Debug, Default, Clone)]
pub(crate) struct Masker {
    /// Distinct secrets, longest first, so the longest one wins at a position.
    secrets: Vec<Vec<u8>>,
    /// `starts[b]`: some secret starts with byte `b` (a cheap first filter).
    starts: Vec<bool>,
    longest: usize,
}

impl Masker {
    pub(crate) fn new(secrets: &[String]) -> Masker {
        let mut kept: Vec<Vec<u8>> = secrets
            .iter()
            .filter(|s| s.chars().count() >= MIN_SECRET_CHARS)
            .map(|s| s.as_bytes().to_vec())
            .collect();
        kept.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        kept.dedup();
        let mut starts = vec![false; 256];
        for s in &kept {
            starts[usize::from(s[0])] = true;
        }
        let longest = kept.first().map_or(0, Vec::len);
        Masker {
            secrets: kept,
            starts,
            longest,
        }
    }

    /// How many bytes at the end of an unfinished line must wait for more input,
    /// because a secret may start there and continue in the next read.
    pub(crate) fn overlap(&self) -> usize {
        self.longest.saturating_sub(1)
    }

    /// `hay` with every secret replaced by `***`; borrowed when nothing matched.
    pub(crate) fn mask<'a>(&self, hay: &'a [u8]) -> Cow<'a, [u8]> {
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        for (start, len) in self.matches(hay) {
            let buf = out.get_or_insert_with(|| Vec::with_capacity(hay.len()));
            buf.extend_from_slice(&hay[copied..start]);
            buf.extend_from_slice(MASK);
            copied = start + len;
        }
        match out {
            None => Cow::Borrowed(hay),
            Some(mut buf) => {
                buf.extend_from_slice(&hay[copied..]);
                Cow::Owned(buf)
            }
        }
    }

    /// Where to cut `hay`, at or a little around `want`, so that the part before
    /// the cut can be masked on its own: not inside a secret, and not inside a
    /// UTF-8 character when that can be avoided.
    pub(crate) fn safe_cut(&self, hay: &[u8], want: usize) -> usize {
        let mut cut = want.min(hay.len());
        let mut back = 0;
        while cut > 1 && cut < hay.len() && back < 3 && is_utf8_continuation(hay[cut]) {
            cut -= 1;
            back += 1;
        }
        if back == 3 && cut < hay.len() && is_utf8_continuation(hay[cut]) {
            cut = want.min(hay.len()); // not UTF-8 after all; cut where asked
        }
        for (start, len) in self.matches(hay) {
            if start >= cut {
                break;
            }
            if start + len > cut {
                cut = start + len;
                break;
            }
        }
        cut
    }

    /// Leftmost, non-overlapping matches as `(start, len)`; at one position the
    /// longest secret wins.
    fn matches<'a>(&'a self, hay: &'a [u8]) -> impl Iterator<Item = (usize, usize)> + 'a {
        let mut i = 0;
        std::iter::from_fn(move || {
            if self.secrets.is_empty() {
                return None;
            }
            while i < hay.len() {
                if self.starts[usize::from(hay[i])]
                    && let Some(s) = self.secrets.iter().find(|s| hay[i..].starts_with(s))
                {
                    let found = (i, s.len());
                    i += s.len();
                    return Some(found);
                }
                i += 1;
            }
            None
        })
    }
}

fn is_utf8_continuation(b: u8) -> bool {
    b & 0b1100_0000 == 0b1000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker(secrets: &[&str]) -> Masker {
        Masker::new(&secrets.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn masks_every_occurrence_and_prefers_the_longest() {
        let m = masker(&["hunter2", "hunter2-long", "abc"]);
        let out = m.mask(b"a hunter2 b hunter2-long c abc\n");
        assert_eq!(&*out, b"a *** b *** c abc\n", "short secrets are ignored");
    }

    #[test]
    fn borrows_when_nothing_matches() {
        let m = masker(&["s3cret"]);
        assert!(matches!(m.mask(b"plain line\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn never_cuts_through_a_secret() {
        let m = masker(&["s3cret-value"]);
        let hay = b"xxxxs3cret-valueyyyy";
        assert_eq!(m.safe_cut(hay, 8), 16, "the cut moves past the secret");
        assert_eq!(m.safe_cut(hay, 3), 3);
        assert_eq!(m.overlap(), 11);
    }

    #[test]
    fn cuts_on_a_char_boundary() {
        let m = masker(&[]);
        let hay = "aaé".as_bytes(); // é is two bytes at 2..4
        assert_eq!(m.safe_cut(hay, 3), 2);
    }
}
