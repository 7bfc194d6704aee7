//! Answers that repeat what someone typed (an unknown script's name, an
//! argument that does not parse) repeat at most [`MAX_ECHO_CHARS`] of it: a
//! 1 MiB slash command must not come back as a 1 MiB message (Slack refuses
//! more than 40,000 characters, and nobody reads it).

/// The longest piece of input an answer repeats: a backtick-quoted span, or a
/// word, longer than this is cut here and ends in `…`.
pub const MAX_ECHO_CHARS: usize = 200;

/// The longest answer as a whole (well under Slack's 40,000 characters and
/// Matrix's 64 KiB events), for input echoed in ways the first rule misses.
pub const MAX_ANSWER_CHARS: usize = 4_000;

/// `text` with every backtick-quoted span and every word longer than
/// [`MAX_ECHO_CHARS`] cut to that many characters and `…`, and the whole cut to
/// [`MAX_ANSWER_CHARS`] and `…`. Short answers come back unchanged.
pub fn cap_echoes(text: &str) -> String {
    if text.chars().count() <= MAX_ECHO_CHARS {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len().min(MAX_ANSWER_CHARS * 4));
    for (i, segment) in text.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        if i % 2 == 1 {
            // Inside backticks: what was typed, quoted.
            push_cut(&mut out, segment);
        } else {
            push_words_cut(&mut out, segment);
        }
        if out.chars().count() > MAX_ANSWER_CHARS {
            break;
        }
    }
    if out.chars().count() > MAX_ANSWER_CHARS {
        let end = out
            .char_indices()
            .nth(MAX_ANSWER_CHARS)
            .map_or(out.len(), |(i, _)| i);
        out.truncate(end);
        out.push('…');
    }
    out
}

/// `s`, or its first [`MAX_ECHO_CHARS`] characters and `…`.
fn push_cut(out: &mut String, s: &str) {
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        Some((end, _)) => {
            out.push_str(&s[..end]);
            out.push('…');
        }
        None => out.push_str(s),
    }
}

/// `s` with each over-long run of non-whitespace cut, whitespace kept.
fn push_words_cut(out: &mut String, s: &str) {
    let mut word_start: Option<usize> = None;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() {
            if let Some(start) = word_start.take() {
                push_cut(out, &s[start..i]);
            }
            out.push(c);
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(start) = word_start {
        push_cut(out, &s[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_answers_are_unchanged() {
        let t = "unknown script `slack-reprt`; did you mean slack-report?";
        assert_eq!(cap_echoes(t), t);
        let long_but_plain = "word ".repeat(100);
        assert_eq!(
            cap_echoes(&long_but_plain),
            long_but_plain,
            "many short words are not an echo"
        );
    }

    #[test]
    fn a_long_quoted_echo_is_cut_and_the_rest_kept() {
        let name = "x".repeat(1 << 20);
        let t = format!("unknown script `{name}`; `list` shows the scripts");
        let capped = cap_echoes(&t);
        assert_eq!(
            capped,
            format!(
                "unknown script `{}…`; `list` shows the scripts",
                "x".repeat(MAX_ECHO_CHARS)
            )
        );
    }

    #[test]
    fn a_quoted_span_of_many_words_is_cut_too() {
        let args = "a=1 ".repeat(10_000);
        let capped = cap_echoes(&format!("`{args}` is wrong; see help"));
        assert_eq!(
            capped,
            format!("`{}…` is wrong; see help", &args[..MAX_ECHO_CHARS])
        );
    }

    #[test]
    fn unquoted_long_words_are_cut_and_multibyte_text_stays_whole() {
        let value = "é".repeat(5_000);
        let capped = cap_echoes(&format!("value {value} does not match"));
        assert_eq!(
            capped,
            format!("value {}… does not match", "é".repeat(MAX_ECHO_CHARS))
        );
    }

    #[test]
    fn the_whole_answer_is_bounded() {
        let t = "abc ".repeat(1 << 18);
        let capped = cap_echoes(&t);
        assert_eq!(capped.chars().count(), MAX_ANSWER_CHARS + 1);
        assert!(capped.ends_with('…'));
    }
}
