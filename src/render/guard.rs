//! The output guard: proves, on the final rendered text, that config values stayed values.
//!
//! Every value printed into a template is wrapped in private-use markers (see
//! [`super::hcl_value`]). After formatting, the markers are removed and their places kept as
//! spans of the final text, which is then checked twice, by two readings of HCL that must
//! agree:
//!
//! - an exact lexer ([`super::hcl_scan`]): a string value must cover whole atoms of a quoted
//!   string's plain text (or of a `#` comment), so no escape or template sequence starts or
//!   ends inside it; a literal (`| hcl`, lists, maps) must stand in code on its own, closing
//!   whatever it opens; a number or boolean must do one or the other;
//! - the HCL parser ([`cross_check`], on the parsed file): a string value must lie in the text
//!   of one quoted string; a literal, number or boolean must not start or end inside a token
//!   or lie in any string's text.
//!
//! Escaping each value alone could not be enough: two values, or a value and the template's
//! text beside it, can run together into syntax. These checks are what make that impossible.

use std::ops::Range;

use super::hcl_scan::{Atom, Context, Lexer};
use super::hcl_value::{LITERAL_CLOSE, LITERAL_OPEN, SCALAR_CLOSE, SCALAR_OPEN, STRING_CLOSE, STRING_OPEN, is_marker};

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

/// What a printed value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A string, escaped for the inside of a quoted string.
    String,
    /// A list, a map or `| hcl`: a whole HCL expression.
    Literal,
    /// A number or a boolean: text that is at home in a string and in code alike.
    Scalar,
}

/// Where a printed value is in the final text, and what the lexer found it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: usize,
    end: usize,
    kind: Kind,
    context: Context,
}

/// The final text and where the values are in it.
#[derive(Debug, Clone)]
pub struct Guarded {
    pub text: String,
    pub spans: Vec<Span>,
}

/// Formats the text (markers take no width), removes the markers and proves with the lexer
/// that every value stayed a value. The caller parses the result and runs [`cross_check`].
pub fn check_and_format(text: &str) -> Result<Guarded, Misplaced> {
    let formatted = super::fmt::format_scanned(text, &super::hcl_scan::scan(text, is_marker));
    let (clean, mut spans) = strip(&formatted)?;
    verify(&clean, &mut spans)?;
    Ok(Guarded { text: clean, spans })
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
        let span = |start, end, kind| Span { start, end, kind, context: Context::Code };
        match (c, open) {
            (STRING_OPEN | LITERAL_OPEN | SCALAR_OPEN, None) => open = Some((c, out.len())),
            (STRING_CLOSE, Some((STRING_OPEN, start))) => {
                let next = text[i + c.len_utf8()..].chars().find(|c| !is_marker(*c));
                if out.len() > start && next == Some('{') && (out.ends_with('$') || out.ends_with('%')) {
                    let sign = out.pop().unwrap_or('$');
                    out.push_str(if sign == '$' { "\\u0024" } else { "\\u0025" });
                }
                spans.push(span(start, out.len(), Kind::String));
                open = None;
            }
            (LITERAL_CLOSE, Some((LITERAL_OPEN, start))) => {
                spans.push(span(start, out.len(), Kind::Literal));
                open = None;
            }
            (SCALAR_CLOSE, Some((SCALAR_OPEN, start))) => {
                spans.push(span(start, out.len(), Kind::Scalar));
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

/// Lexes the final text and checks each span against what it landed in; records the context
/// of each span for [`cross_check`].
fn verify(text: &str, spans: &mut [Span]) -> Result<(), Misplaced> {
    let mut lexer = Lexer::new(text, |_| false);
    let mut next = 0;
    // The span being walked through, with the depth of constructs where it started.
    let mut open: Option<(usize, usize)> = None;
    let mut at = 0;
    loop {
        // Spans that end, then start, at this atom boundary.
        loop {
            if let Some((index, depth)) = open
                && spans[index].end == at
            {
                if spans[index].context == Context::Code && lexer.depth() != depth {
                    return Err(misplaced(text, spans[index].start, LITERAL_ALTERED));
                }
                open = None;
                continue;
            }
            if open.is_none()
                && let Some(span) = spans.get_mut(next).filter(|s| s.start == at)
            {
                span.context = check_context(text, *span, lexer.context())?;
                open = Some((next, lexer.depth()));
                next += 1;
                continue;
            }
            break;
        }
        // A run of plain text stops where a span starts or ends, so both fall between steps.
        lexer.limit = open
            .map(|(index, _)| spans[index].end)
            .into_iter()
            .chain(spans.get(next).map(|s| s.start))
            .filter(|&boundary| boundary > at)
            .min()
            .unwrap_or(usize::MAX);
        let Some(step) = lexer.next() else { break };
        let straddles = |pos: usize| pos > step.start && pos < step.end;
        let straddling = open
            .map(|(index, _)| spans[index])
            .filter(|span| straddles(span.end))
            .or_else(|| spans.get(next).copied().filter(|span| straddles(span.start)));
        if let Some(span) = straddling {
            return Err(misplaced(text, span.start, RUNS_TOGETHER));
        }
        if let Some((index, depth)) = open {
            let span = spans[index];
            let fits = if span.context == Context::Code {
                step.min_depth >= depth
            } else {
                matches!(step.atom, Atom::StringText | Atom::LineComment)
            };
            if !fits {
                let problem = if span.context == Context::Code { LITERAL_ALTERED } else { STRING_ALTERED };
                return Err(misplaced(text, span.start, problem));
            }
        }
        at = step.end;
    }
    match open.map(|(index, _)| spans[index]).or_else(|| spans.get(next).copied()) {
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

/// Whether a value may be where the lexer found it; the context it is checked in from here on.
fn check_context(text: &str, span: Span, context: Context) -> Result<Context, Misplaced> {
    let problem = match (span.kind, context) {
        (Kind::String | Kind::Scalar, Context::QuotedString | Context::LineComment)
        | (Kind::Literal | Kind::Scalar, Context::Code) => return Ok(context),
        (Kind::String, Context::Heredoc) => (
            "a string value is printed inside a heredoc",
            "build the text with a Terraform expression instead, e.g. `jsonencode({{ value | hcl }})`",
        ),
        (Kind::String, Context::BlockComment) => {
            ("a string value is printed inside a `/* */` comment", "use a `#` comment, which a value cannot end")
        }
        (Kind::String, Context::Code) => (
            "a string value is printed outside a quoted string",
            "put it in quotes (`\"{{ value }}\"`) or print it as an HCL literal with `{{ value | hcl }}`",
        ),
        (Kind::Literal | Kind::Scalar, _) => (
            "a list, map or `| hcl` literal is printed inside a string or comment",
            "print it outside quotes (`x = {{ value | hcl }}`), or join it into a string first (`{{ value | join(\",\") }}`)",
        ),
    };
    Err(misplaced(text, span.start, problem))
}

/// The second reading: the parsed file (`body`, parsed from `text`, in which the spans start
/// `offset` bytes later than in the guarded text) must agree with the lexer about where each
/// value landed: a string value in the text of one quoted string (or in a comment, under no
/// part of the file); a literal, number or boolean exactly one whole expression of the file,
/// so that neither the template's text nor another value beside it joins it into a larger one
/// (`local.a.b{{ -1 }}`, `{{ a }}{{ b }}`).
pub fn cross_check(
    text: &str,
    body: &hcl_edit::structure::Body,
    spans: &[Span],
    offset: usize,
) -> Result<(), Misplaced> {
    use hcl_edit::visit::Visit as _;
    if spans.is_empty() {
        return Ok(());
    }
    let mut map = Map::default();
    map.visit_body(body);
    map.texts.sort_by_key(|(r, _)| r.start);
    map.tokens.sort_by_key(|r| r.start);
    map.nodes.sort_unstable();
    map.text_points.sort_unstable();
    for span in spans {
        let range = span.start + offset..span.end + offset;
        let agrees = match span.context {
            Context::QuotedString => {
                map.text_at(&range).is_some_and(|heredoc| !heredoc)
                    || (range.is_empty() && map.text_points.binary_search(&range.start).is_ok())
            }
            // In a comment, no part of the parsed file may be under it.
            Context::LineComment => map.token_overlapping(&range).is_none() && map.text_at(&range).is_none(),
            // A literal, number or boolean is one whole expression (it may hold strings).
            _ => map.nodes.binary_search(&(range.start, range.end)).is_ok() && map.text_at(&range).is_none(),
        };
        if !agrees {
            return Err(misplaced(text, range.start, DISAGREE));
        }
    }
    Ok(())
}

const DISAGREE: (&str, &str) = (
    "a value printed here is read differently by the HCL parser than by Stamp's check",
    "print the value where it is plainly a string (`\"{{ value }}\"`) or a whole expression (`x = {{ value | hcl }}`), apart from other values",
);

/// What the parser found: the text of strings (quoted, or a heredoc's), every token and every
/// expression.
#[derive(Default)]
struct Map {
    /// Plain text of strings, and whether it is a heredoc's. They never overlap.
    texts: Vec<(Range<usize>, bool)>,
    /// Identifiers, numbers, whole plain strings, the literal parts of templates: they never
    /// overlap.
    tokens: Vec<Range<usize>>,
    /// Where each expression (and object key, block label, legacy index) starts and ends;
    /// sorted once the file is visited.
    nodes: Vec<(usize, usize)>,
    /// Positions inside quoted templates between their parts (`"${a}|${b}"` at `|`), where an
    /// empty string value may be; sorted once the file is visited.
    text_points: Vec<usize>,
    in_heredoc: bool,
}

impl Map {
    fn token(&mut self, span: Option<Range<usize>>) {
        if let Some(span) = span {
            self.nodes.push((span.start, span.end));
            self.tokens.push(span);
        }
    }

    /// The text range holding all of `range`, if one does: whether it is a heredoc's.
    fn text_at(&self, range: &Range<usize>) -> Option<bool> {
        let after = self.texts.partition_point(|(r, _)| r.start <= range.start);
        let (text, heredoc) = self.texts[..after].last()?;
        (text.start <= range.start && range.end <= text.end).then_some(*heredoc)
    }

    /// A token overlapping `range` (or holding its position, when it is empty).
    fn token_overlapping(&self, range: &Range<usize>) -> Option<&Range<usize>> {
        let end = range.end.max(range.start + 1);
        let after = self.tokens.partition_point(|r| r.start < end);
        self.tokens[..after].last().filter(|r| range.start < r.end)
    }
}

impl hcl_edit::visit::Visit for Map {
    fn visit_expr(&mut self, node: &hcl_edit::expr::Expression) {
        if let Some(span) = hcl_edit::Span::span(node) {
            self.nodes.push((span.start, span.end));
        }
        hcl_edit::visit::visit_expr(self, node);
    }
    fn visit_block_label(&mut self, node: &hcl_edit::structure::BlockLabel) {
        if let Some(span) = hcl_edit::Span::span(node) {
            self.nodes.push((span.start, span.end));
        }
        hcl_edit::visit::visit_block_label(self, node);
    }
    fn visit_ident(&mut self, node: &hcl_edit::Decorated<hcl_edit::Ident>) {
        self.token(hcl_edit::Span::span(node));
    }
    fn visit_null(&mut self, node: &hcl_edit::Decorated<hcl_edit::expr::Null>) {
        self.token(hcl_edit::Span::span(node));
    }
    fn visit_bool(&mut self, node: &hcl_edit::Decorated<bool>) {
        self.token(hcl_edit::Span::span(node));
    }
    fn visit_u64(&mut self, node: &hcl_edit::Decorated<u64>) {
        self.token(hcl_edit::Span::span(node));
    }
    fn visit_number(&mut self, node: &hcl_edit::Formatted<hcl_edit::Number>) {
        self.token(hcl_edit::Span::span(node));
    }
    fn visit_splat(&mut self, node: &hcl_edit::Decorated<hcl_edit::expr::Splat>) {
        self.token(hcl_edit::Span::span(node));
    }
    fn visit_string(&mut self, node: &hcl_edit::Decorated<String>) {
        if let Some(span) = hcl_edit::Span::span(node) {
            // Without its quotes (empty for `""`).
            if span.end >= span.start + 2 {
                self.texts.push((span.start + 1..span.end - 1, false));
            }
            self.token(Some(span));
        }
    }
    fn visit_literal(&mut self, node: &hcl_edit::Spanned<String>) {
        if let Some(span) = hcl_edit::Span::span(node) {
            self.texts.push((span.clone(), self.in_heredoc));
            self.tokens.push(span);
        }
    }
    fn visit_string_template(&mut self, node: &hcl_edit::template::StringTemplate) {
        if let Some(span) = hcl_edit::Span::span(node) {
            // Just inside the quotes, and around each `${ }` or `%{ }` part.
            self.text_points.extend([span.start + 1, span.end.saturating_sub(1)]);
            for element in node {
                if !matches!(element, hcl_edit::template::Element::Literal(_))
                    && let Some(part) = hcl_edit::Span::span(element)
                {
                    self.text_points.extend([part.start, part.end]);
                }
            }
        }
        let heredoc = std::mem::replace(&mut self.in_heredoc, false);
        hcl_edit::visit::visit_string_template(self, node);
        self.in_heredoc = heredoc;
    }
    fn visit_heredoc_template(&mut self, node: &hcl_edit::template::HeredocTemplate) {
        let heredoc = std::mem::replace(&mut self.in_heredoc, true);
        hcl_edit::visit::visit_heredoc_template(self, node);
        self.in_heredoc = heredoc;
    }
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
    /// Both readings, as a render does them.
    fn check(text: &str) -> Result<String, Misplaced> {
        let guarded = check_and_format(text)?;
        if let Ok(body) = hcl_edit::parser::parse_body(&guarded.text) {
            cross_check(&guarded.text, &body, &guarded.spans, 0)?;
        }
        Ok(guarded.text)
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

    fn n(v: &str) -> String {
        format!("{SCALAR_OPEN}{v}{SCALAR_CLOSE}")
    }

    #[test]
    fn numbers_and_booleans_stand_alone_in_code_and_fit_in_strings() {
        assert_eq!(check(&format!("a = {}\nb = \"db-{}\"\n", n("3"), n("true"))).unwrap(), "a = 3\nb = \"db-true\"\n");
        // Run together with an identifier or another value, they would change which name or
        // number HCL reads.
        for text in [
            format!("size = local.replicas.a{}\n", n("-1")),
            format!("size = {}{}\n", n("1"), n("2")),
            format!("size = {}{}\n", l("null"), n("1")),
        ] {
            assert!(check(&text).is_err(), "{text}");
        }
    }

    #[test]
    fn heredoc_markers_are_read_as_hcl_reads_them() {
        let text = format!(
            "locals {{\n  user_data = <<-END-SCRIPT\n    rm -rf /var/cache/app/*\n  END-SCRIPT\n  tags = {{ schedule = \"*/5 * * * *\", owner = {} }}\n}}\n",
            s("abspath(path.root)")
        );
        assert_eq!(check(&text).unwrap_err().message, "a string value is printed outside a quoted string");
    }

    #[test]
    fn two_values_side_by_side_in_code_are_refused() {
        for text in [
            format!("a = {}{}\n", n("5"), n("-1")),
            format!("c = [{}{}]\n", n("5"), n("-1")),
            format!("l = {}{}\n", l("[\"admin\", \"user\"]"), l("[1]")),
            format!("k = {}{}\n", l("{\n\"a\" = 1\n}"), l("[\"a\"]")),
            format!("x = {}{}\n", n("5"), l("[0]")),
            format!("y = {} {}\n", l("[3]"), n("-1")),
        ] {
            assert!(check(&text).is_err(), "{text}");
        }
        // Apart, or with the template's own operators and indexes, they stand.
        let ok = format!(
            "a = [{}, {}]\nb = {} - {}\nc = {}[{}]\nd = -{}\n",
            n("5"),
            n("-1"),
            n("5"),
            n("1"),
            l("[1]"),
            n("0"),
            n("-1")
        );
        check(&ok).unwrap();
    }

    #[test]
    fn empty_strings_fit_anywhere_in_a_string() {
        check(&format!("a = \"${{local.b}}{}${{local.b}}\"\nb = \"{}\"\nc = \"x{}\"\n", s(""), s(""), s(""))).unwrap();
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
