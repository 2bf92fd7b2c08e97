//! Text that came from users (file names, config values, CLI arguments) made safe to print on
//! one line of a comment, a terminal or a report: control characters, line breaks included,
//! are written as escapes, so such text can never start a new line or move the cursor.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character (and Unicode line or paragraph separator) escaped as
/// `\n`, `\t`, `\r` or `\u{...}`; a backslash stays as it is.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `c` is a control character, a line or paragraph separator or a text-direction override: text
/// that must not reach a terminal as it is.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}' | '\u{feff}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn line_breaks_and_terminal_escapes_cannot_get_through() {
        assert_eq!(one_line("plain `text` \\ ok"), "plain `text` \\ ok");
        assert_eq!(one_line("a\nterraform {\r\n}\t#"), "a\\nterraform {\\r\\n}\\t#");
        assert_eq!(one_line("\u{1b}[31mred\u{7}"), "\\u{1b}[31mred\\u{7}");
        assert_eq!(one_line("x\u{2028}y\u{202e}z"), "x\\u{2028}y\\u{202e}z");
    }
}
