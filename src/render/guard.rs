//! The output guard: proves, on the final rendered text, that config values stayed values.
//!
//! Every value printed into a template is wrapped in private-use markers (see
//! [`super::hcl_value`]). After formatting, the markers are removed and their places kept as
//! spans of the final text; the text is then lexed exactly ([`super::hcl_scan`]) and each span
//! checked: a string value must cover whole atoms of a quoted string's plain text (or of a
//! `#` comment), so no escape or template sequence starts or ends inside it; a literal
//! (`| hcl`, lists, maps) must stand in code on its own, closing whatever it opens. Escaping
//! each value alone could not be enough: two values, or a value and the template's text
//! beside it, can run together into syntax. This check is what makes that impossible.

use super::hcl_scan::{Atom, Context, Lexer};
use super::hcl_value::{LITERAL_CLOSE, LITERAL_OPEN, STRING_CLOSE, STRING_OPEN, is_marker};

/// A value printed where it could change the meaning of the HCL around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misplaced {
    /// 1-based line and column in the rendered text.
    pub line: usize,
    pub column: usize,
    /// The rendered line, for mapping the problem back to its template line.
    pub line_text: String,
    pub message: &'static str,
    pub hint: &'static str,
}

/// Where a printed value is in the final text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
    literal: bool,
}

/// Formats the text (markers take no width), removes the markers and proves every value
/// stayed a value; the final text.
pub fn check_and_format(text: &str) -> Result<String, Misplaced> {
    let formatted = super::fmt::format_scanned(text, &super::hcl_scan::scan(text, is_marker));
    let (clean, spans) = strip(&formatted)?;
    verify(&clean, &spans)?;
    Ok(clean)
}

const CUT: (&str, &str) = (
    "a printed value was cut or rearranged after it was printed",
    "print values directly (`{{ value }}`, `{{ value | hcl }}`), not through string filters applied to a macro's or a block's output",
);

/// The text without markers, and where each value is in it. A string value ending in `$` or
/// `%` right before a `{` gets that character as an escape (`\u0024`), so it cannot start a
/// template sequence with its neighbour.
fn strip(text: &str) -> Result<(String, Vec<Span>), Misplaced> {
    let mut out = String::with_capacity(text.len());
    let mut spans = Vec::new();
    let mut open: Option<(char, usize)> = None;
    for (i, c) in text.char_indices() {
        if !is_marker(c) {
            out.push(c);
            continue;
        }
        match (c, open) {
            (STRING_OPEN | LITERAL_OPEN, None) => open = Some((c, out.len())),
            (STRING_CLOSE, Some((STRING_OPEN, start))) => {
                let next = text[i + c.len_utf8()..].chars().find(|c| !is_marker(*c));
                if out.len() > start && next == Some('{') && (out.ends_with('$') || out.ends_with('%')) {
                    let sign = out.pop().unwrap_or('$');
                    out.push_str(if sign == '$' { "\\u0024" } else { "\\u0025" });
                }
                spans.push(Span { start, end: out.len(), literal: false });
                open = None;
            }
            (LITERAL_CLOSE, Some((LITERAL_OPEN, start))) => {
                spans.push(Span { start, end: out.len(), literal: true });
                open = None;
            }
            _ => return Err(misplaced(&out, out.len(), CUT)),
        }
    }
    match open {
        Some((_, start)) => Err(misplaced(&out, start, CUT)),
        None => Ok((out, spans)),
    }
}

/// Lexes the final text and checks each span against what it landed in.
fn verify(text: &str, spans: &[Span]) -> Result<(), Misplaced> {
    let mut lexer = Lexer::new(text, |_| false);
    let mut pending = spans.iter().peekable();
    // The span being walked through, with the depth of constructs where it started.
    let mut open: Option<(Span, usize)> = None;
    let mut at = 0;
    loop {
        // Spans that end, then start, at this atom boundary.
        loop {
            if let Some((span, depth)) = open
                && span.end == at
            {
                if span.literal && lexer.depth() != depth {
                    return Err(misplaced(text, span.start, LITERAL_ALTERED));
                }
                open = None;
                continue;
            }
            if open.is_none()
                && let Some(span) = pending.next_if(|s| s.start == at)
            {
                check_context(text, *span, lexer.context())?;
                open = Some((*span, lexer.depth()));
                continue;
            }
            break;
        }
        let Some(step) = lexer.next() else { break };
        let straddles = |pos: usize| pos > step.start && pos < step.end;
        if open.is_some_and(|(span, _)| straddles(span.end)) || pending.peek().is_some_and(|s| straddles(s.start)) {
            let span = open.map_or_else(|| **pending.peek().expect("checked"), |(span, _)| span);
            return Err(misplaced(text, span.start, RUNS_TOGETHER));
        }
        if let Some((span, depth)) = open {
            let fits = if span.literal {
                step.min_depth >= depth
            } else {
                matches!(step.atom, Atom::StringText | Atom::LineComment)
            };
            if !fits {
                return Err(misplaced(text, span.start, if span.literal { LITERAL_ALTERED } else { STRING_ALTERED }));
            }
        }
        at = step.end;
    }
    match open.map(|(span, _)| span).or_else(|| pending.next().copied()) {
        Some(span) => Err(misplaced(text, span.start, CUT)),
        None => Ok(()),
    }
}

const RUNS_TOGETHER: (&str, &str) = (
    "a value printed here runs together with the text beside it into an escape or template sequence",
    "keep `\\`, `$` and `%` away from values: `\"prefix-{{ value }}\"`, not `\"\\{{ value }}\"` or `\"${{ value }}\"`",
);
const STRING_ALTERED: (&str, &str) = (
    "a printed string value leaves its quoted string: it was changed after it was escaped",
    "print values directly (`\"{{ value }}\"`), not through filters applied to a macro's or a block's output",
);
const LITERAL_ALTERED: (&str, &str) = (
    "a list, map or `| hcl` literal does not stand on its own here: it was cut or changed after it was printed",
    "print literals directly in expression position (`x = {{ value | hcl }}`)",
);

fn check_context(text: &str, span: Span, context: Context) -> Result<(), Misplaced> {
    let problem = match (span.literal, context) {
        (false, Context::QuotedString | Context::LineComment) | (true, Context::Code) => return Ok(()),
        (false, Context::Heredoc) => (
            "a string value is printed inside a heredoc",
            "build the text with a Terraform expression instead, e.g. `jsonencode({{ value | hcl }})`",
        ),
        (false, Context::BlockComment) => {
            ("a string value is printed inside a `/* */` comment", "use a `#` comment, which a value cannot end")
        }
        (false, Context::Code) => (
            "a string value is printed outside a quoted string",
            "put it in quotes (`\"{{ value }}\"`) or print it as an HCL literal with `{{ value | hcl }}`",
        ),
        (true, _) => (
            "a list, map or `| hcl` literal is printed inside a string or comment",
            "print it outside quotes (`x = {{ value | hcl }}`), or join it into a string first (`{{ value | join(\",\") }}`)",
        ),
    };
    Err(misplaced(text, span.start, problem))
}

fn misplaced(text: &str, offset: usize, (message, hint): (&'static str, &'static str)) -> Misplaced {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..].find('\n').map_or(text.len(), |i| line_start + i);
    Misplaced {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
        line_text: text[line_start..line_end].to_string(),
        message,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        let mut out = String::from(STRING_OPEN);
        super::super::hcl_value::escape_into(&mut out, v);
        out.push(STRING_CLOSE);
        out
    }
    fn l(v: &str) -> String {
        format!("{LITERAL_OPEN}{v}{LITERAL_CLOSE}")
    }
    fn check(text: &str) -> Result<String, Misplaced> {
        check_and_format(text)
    }

    #[test]
    fn strings_inside_quotes_pass() {
        let text = format!("name = \"{}-vpc\"\n# account {}\n", s("prod"), s("prod"));
        assert_eq!(check(&text).unwrap(), "name = \"prod-vpc\"\n# account prod\n");
    }

    #[test]
    fn bare_strings_are_refused() {
        let text = format!("a = 1\nname = {}\n", s("abspath(path.root)"));
        let err = check(&text).unwrap_err();
        assert_eq!((err.line, err.column, err.line_text.as_str()), (2, 8, "name = abspath(path.root)"));
    }

    #[test]
    fn strings_inside_interpolation_are_refused() {
        assert!(check(&format!("name = \"${{{}}}\"\n", s("var.x"))).is_err());
    }

    #[test]
    fn literals_in_expressions_pass_and_in_strings_fail() {
        assert_eq!(check(&format!("azs = {}\n", l("[\"a\", \"b\"]"))).unwrap(), "azs = [\"a\", \"b\"]\n");
        assert!(check(&format!("name = \"x-{}\"\n", l("\"a\""))).is_err());
    }

    #[test]
    fn adjacent_values_cannot_form_an_interpolation() {
        let text = format!("joined = \"{}{}\"\n", s("$"), s("{upper(path.cwd)}"));
        assert_eq!(check(&text).unwrap(), "joined = \"\\u0024{upper(path.cwd)}\"\n");
        let text = format!("joined = \"{}{}\"\n", s("100%"), s("{ if true }"));
        assert_eq!(check(&text).unwrap(), "joined = \"100\\u0025{ if true }\"\n");
    }

    #[test]
    fn template_text_cannot_join_a_value_into_syntax() {
        for template in ["\"${}\"", "\"%{}\"", "\"\\{}\"", "\"$${}\""] {
            let text = format!("x = {}\n", template.replace("{}", &s("{path.module}\" + 1 + \"")));
            let err = check(&text).unwrap_err();
            assert_eq!(err.message, RUNS_TOGETHER.0, "{template}");
        }
        // A backslash right before any value would swallow its first character.
        assert!(check(&format!("x = \"ACME\\{}\"\n", s("user"))).is_err());
    }

    #[test]
    fn values_stay_in_their_string_after_a_multi_line_interpolation() {
        let text = format!("x = \"${{jsonencode({})}}-{}\"\ny = {}\n", l("{\n\"a\" = \"b\"\n}"), s("v"), s("bare"));
        let err = check(&text).unwrap_err();
        assert_eq!((err.line, err.message), (4, "a string value is printed outside a quoted string"));
    }

    #[test]
    fn cut_markers_are_refused() {
        assert_eq!(check(&format!("x = \"{STRING_OPEN}a\"\n")).unwrap_err().message, CUT.0);
        assert_eq!(check(&format!("x = \"a{STRING_CLOSE}\"\n")).unwrap_err().message, CUT.0);
        assert_eq!(check(&format!("x = {LITERAL_OPEN}[{STRING_OPEN}\n")).unwrap_err().message, CUT.0);
        let unbalanced = format!("x = {}\n", l("[1] + [2"));
        assert_eq!(check(&unbalanced).unwrap_err().message, LITERAL_ALTERED.0);
    }

    #[test]
    fn heredocs_and_block_comments_refuse_strings() {
        assert!(check(&format!("x = <<EOT\n{}\nEOT\n", s("a"))).is_err());
        assert!(check(&format!("/* {} */\n", s("a"))).is_err());
        assert!(check(&format!("x = <<EOT\n${{{}}}\nEOT\n", l("\"a\""))).is_ok());
    }
}
