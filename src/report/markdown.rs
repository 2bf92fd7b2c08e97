//! Markdown and HTML for values that came from users: every value a report prints goes
//! through one of these, so a newline, a `|`, a backtick or an `<img>` in an account's config
//! cannot change the structure of a pull-request comment or a page.

/// A fenced code block whose fence is longer than any run of backticks in `body`.
pub fn fenced(info: &str, body: &str) -> String {
    let fence = "`".repeat(longest_backtick_run(body).max(2) + 1);
    let newline = if body.ends_with('\n') || body.is_empty() { "" } else { "\n" };
    format!("{fence}{info}\n{body}{newline}{fence}\n")
}

/// An inline code span that holds any text, backticks included, on one line.
pub fn code_span(text: &str) -> String {
    let text = crate::text::one_line(text);
    let fence = "`".repeat(longest_backtick_run(&text) + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{text}{pad}{fence}")
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// Text for markdown outside code: characters that would format, link, mention, start math
/// or split a table cell are backslash-escaped (and `://`, so no address becomes a link), a
/// leading `-`, `+`, `=` or `1.` cannot start a list or a heading, line breaks become spaces
/// and other control characters are dropped.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    for (i, (at, c)) in text.char_indices().enumerate() {
        let starts_block =
            (i == 0 && matches!(c, '-' | '+' | '=')) || (digits > 0 && i == digits && matches!(c, '.' | ')'));
        let scheme = c == ':' && text[at + 1..].starts_with("//");
        // GitHub links `www.example.com` by itself: the dot after a standalone `www` is escaped.
        let www = c == '.' && {
            let before = &text[..at];
            before.len() >= 3
                && before.is_char_boundary(before.len() - 3)
                && before[before.len() - 3..].eq_ignore_ascii_case("www")
                && !before[..before.len() - 3].chars().next_back().is_some_and(char::is_alphanumeric)
        };
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '~' | '&' | '!' | '@' | '$' => {
                out.push('\\');
                out.push(c);
            }
            _ if starts_block || scheme || www => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => {}
            // A line separator or text-direction override is shown, not obeyed: a reviewer
            // sees what the value holds.
            c if crate::text::needs_escape(c) => out.push_str(&format!("\\\\u{{{:x}}}", u32::from(c))),
            _ => out.push(c),
        }
    }
    out
}

/// A code span inside a table cell: GitHub splits cells at `|` even in code, unless escaped.
pub fn code_cell(text: &str) -> String {
    code_span(text).replace('|', "\\|")
}

/// Text inside HTML (the `<summary>` of a section), where markdown escapes do not apply.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => {}
            c if crate::text::needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_www_addresses_are_not_linked() {
        assert_eq!(escape_markdown("reset at www.evil.example/x"), "reset at www\\.evil.example/x");
        assert_eq!(escape_markdown("WWW.evil.example"), "WWW\\.evil.example");
        assert_eq!(escape_markdown("awww.x and é€w.x"), "awww.x and é€w.x");
        assert_eq!(escape_markdown("ééwww.x"), "ééwww.x", "not at a word's start: GitHub does not link it");
    }

    #[test]
    fn direction_overrides_and_line_separators_are_shown_not_obeyed() {
        assert_eq!(escape_markdown("te\u{202e}am\u{2028}x"), "te\\\\u{202e}am\\\\u{2028}x");
        assert_eq!(escape_html("te\u{202e}am\u{2066}"), "te\\u{202e}am\\u{2066}");
    }

    #[test]
    fn values_cannot_change_the_structure() {
        let hostile = "prod\n| x | y |\n<img src=x onerror=alert(1)> `a` @team [l](http://e) ![i](x) \u{1b}[31m";
        let cell = escape_markdown(hostile);
        assert!(!cell.contains('\n') && !cell.contains('\u{1b}'), "{cell}");
        assert!(cell.contains("\\<img") && cell.contains("\\@team") && cell.contains("\\[l\\]"), "{cell}");
        assert!(cell.contains("http\\://e"), "{cell}");
        assert_eq!(escape_markdown("-1. a: b"), "\\-1. a: b");
        assert_eq!(escape_markdown("12. x"), "12\\. x");
        assert!(!cell.replace("\\|", "").contains('|'), "{cell}");
        let span = code_span("a`b``c\nd");
        assert!(span.starts_with("```") && !span.contains('\n'), "{span}");
        assert_eq!(escape_html("<a href='x'>&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
        let block = fenced("diff", "```\n````\n");
        assert!(block.starts_with("`````diff\n"), "{block}");
    }
}
