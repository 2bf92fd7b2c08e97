//! A small, exact HCL lexer: it knows where every quoted string, escape sequence, template
//! sequence (`${ }`, `%{ }`), heredoc, comment and bracket of a text is, across lines. The
//! formatter uses it to indent and align like `terraform fmt`; the output guard uses it to
//! prove that every config value landed inside a string's plain text.
//!
//! The text is cut into *atoms*: one character, or one indivisible sequence (`\n`, `\u00e9`,
//! `$${`, `${`, a heredoc's closing line). A value is safe where it covers whole atoms of a
//! string's plain text; a value boundary that falls inside an atom means the value and its
//! neighbour ran together into syntax. A run of plain ASCII characters of one kind (string
//! text, comment text, an identifier, spaces) comes as one [`Step`] of one-character atoms,
//! never past the [`Lexer::limit`] its caller sets, so a boundary the caller checks is always
//! between steps.

/// What a position of the text is inside of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// HCL code, including inside `${ }`.
    Code,
    /// The plain text of a `"quoted string"`.
    QuotedString,
    /// The plain text of a heredoc.
    Heredoc,
    LineComment,
    BlockComment,
}

/// What an atom is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Atom {
    /// Plain text of a quoted string: a character or an escape (`\"`, `\u00e9`, `$${`).
    StringText,
    /// Plain text of a heredoc: a character or an escape (`$${`, `%%{`).
    HeredocText,
    /// The text of a `#` or `//` comment.
    LineComment,
    /// A `/* */` comment.
    BlockComment,
    /// Anything else: code, whitespace, and the delimiters of strings, heredocs and template
    /// sequences.
    Code,
}

/// An open construct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Quoted,
    /// `${ }` or `%{ }`.
    Template,
    Heredoc {
        /// Where its marker is in the text (start and end byte).
        marker: (usize, usize),
    },
    /// `(`, `[` or `{` in code.
    Bracket,
    BlockComment,
    /// A `#` or `//` comment, to the end of its line.
    LineComment,
}

/// What the formatter needs to know about one line.
#[derive(Debug, Clone, Default)]
pub struct Line {
    /// Inside a heredoc body or a multi-line comment: left exactly as it is.
    pub verbatim: bool,
    /// Net change of open brackets (and template sequences), outside strings and comments.
    pub brackets: i32,
    /// Byte offset of the `=` of an attribute whose value ends on this line.
    pub assign: Option<usize>,
    /// Byte offset of a trailing comment after code.
    pub comment: Option<usize>,
}

/// The result of scanning a text for the formatter.
#[derive(Debug, Default)]
pub struct Scan {
    pub lines: Vec<Line>,
}

/// One atom as the lexer produced it.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub start: usize,
    pub end: usize,
    pub atom: Atom,
    /// How many constructs are open after this atom.
    pub depth: usize,
    /// The fewest constructs open at any point of this atom (a closing delimiter lowers it).
    pub min_depth: usize,
}

/// The lexer: call [`Lexer::next`] until it returns `None`.
pub struct Lexer<'t> {
    text: &'t str,
    bytes: &'t [u8],
    at: usize,
    stack: Vec<Frame>,
    /// Characters that take no part in the syntax (the output guard's markers). Asked only of
    /// characters outside ASCII: ASCII is all syntax.
    skip: fn(char) -> bool,
    /// Line state for the formatter.
    line: Line,
    line_start: usize,
    code_seen: bool,
    brackets_before_assign: i32,
    lines: Vec<Line>,
    /// Where a run of plain characters stops at the latest (see the module's documentation).
    pub limit: usize,
}

impl<'t> Lexer<'t> {
    pub fn new(text: &'t str, skip: fn(char) -> bool) -> Self {
        let mut lexer = Self {
            text,
            bytes: text.as_bytes(),
            at: 0,
            stack: Vec::new(),
            skip,
            line: Line::default(),
            line_start: 0,
            code_seen: false,
            brackets_before_assign: 0,
            lines: Vec::new(),
            limit: usize::MAX,
        };
        lexer.start_line();
        lexer
    }

    /// How many constructs are open here.
    pub fn depth(&self) -> usize {
        self.stack.len()
    }

    /// What the next atom is inside of.
    pub fn context(&self) -> Context {
        match self.stack.last() {
            Some(Frame::Quoted) => Context::QuotedString,
            Some(Frame::Heredoc { .. }) => Context::Heredoc,
            Some(Frame::LineComment) => Context::LineComment,
            Some(Frame::BlockComment) => Context::BlockComment,
            Some(Frame::Template | Frame::Bracket) | None => Context::Code,
        }
    }

    /// The per-line facts gathered so far (all of them once [`Lexer::next`] returned `None`).
    pub fn into_scan(mut self) -> Scan {
        while self.next().is_some() {}
        if self.at > self.line_start {
            self.end_line();
        }
        Scan { lines: self.lines }
    }

    fn byte(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.at + offset).copied()
    }

    fn rest(&self) -> &'t str {
        &self.text[self.at..]
    }

    /// Facts about a new line, including whether it is a heredoc's closing line.
    fn start_line(&mut self) {
        self.line = Line::default();
        self.line_start = self.at;
        self.code_seen = false;
        self.brackets_before_assign = 0;
        self.line.verbatim = self.stack.iter().any(|f| matches!(f, Frame::Heredoc { .. } | Frame::BlockComment));
    }

    fn end_line(&mut self) {
        let mut line = std::mem::take(&mut self.line);
        // A value that opens brackets it does not close starts a multi-line expression: it
        // is not aligned with its neighbours (as in hclwrite).
        if line.assign.is_some() {
            if line.brackets != 0 {
                line.assign = None;
            }
            line.brackets += self.brackets_before_assign;
        }
        self.lines.push(line);
    }

    fn step(&mut self, len: usize, atom: Atom, min_depth: usize) -> Step {
        let start = self.at;
        self.at += len;
        Step { start, end: self.at, atom, depth: self.stack.len(), min_depth: min_depth.min(self.stack.len()) }
    }

    /// The length of the run of characters from the cursor (whose first character the caller
    /// found `plain`) that are `plain`, up to the limit.
    fn run(&self, plain: impl Fn(u8) -> bool) -> usize {
        let end = self.limit.min(self.bytes.len());
        let mut at = self.at + 1;
        while at < end && plain(self.bytes[at]) {
            at += 1;
        }
        at - self.at
    }

    /// The width in bytes of the character at the cursor.
    fn char_len(&self) -> usize {
        self.rest().chars().next().map_or(1, char::len_utf8)
    }

    fn open(&mut self, frame: Frame, len: usize, brackets: i32) -> Step {
        let depth = self.stack.len();
        self.stack.push(frame);
        self.line.brackets += brackets;
        self.code_seen = true;
        self.step(len, Atom::Code, depth)
    }

    fn close(&mut self, len: usize, brackets: i32) -> Step {
        self.stack.pop();
        self.line.brackets += brackets;
        self.code_seen = true;
        let depth = self.stack.len();
        self.step(len, Atom::Code, depth)
    }
}

impl Iterator for Lexer<'_> {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        // One character per call: ASCII (nearly all of a rendered file) without decoding.
        let byte = *self.bytes.get(self.at)?;
        let c = if byte.is_ascii() { char::from(byte) } else { self.rest().chars().next()? };
        let depth = self.stack.len();
        if self.at == self.line_start
            && let Some(&Frame::Heredoc { marker: (start, end) }) = self.stack.last()
        {
            let line = self.rest().split('\n').next().unwrap_or("");
            // As HCL reads it: spaces or tabs, the marker, spaces or tabs (or a CR).
            if line.trim_start_matches([' ', '\t']).trim_end_matches([' ', '\t', '\r']) == &self.text[start..end] {
                // The heredoc's closing line is one atom.
                self.stack.pop();
                return Some(self.step(line.len(), Atom::Code, depth - 1));
            }
        }
        if c == '\n' {
            // A quoted string never spans lines; HCL refuses it, and the scan recovers so one
            // bad line does not taint the rest.
            if matches!(self.stack.last(), Some(Frame::Quoted | Frame::LineComment)) {
                self.stack.pop();
            }
            self.end_line();
            let step = self.step(1, Atom::Code, depth);
            self.start_line();
            return Some(step);
        }
        if !byte.is_ascii() && (self.skip)(c) {
            return Some(self.step(c.len_utf8(), Atom::Code, depth));
        }
        Some(match self.stack.last() {
            Some(Frame::BlockComment) => {
                if self.rest().starts_with("*/") {
                    self.stack.pop();
                    self.step(2, Atom::BlockComment, depth - 1)
                } else if byte != b'*' && byte.is_ascii() {
                    let len = self.run(|b| b.is_ascii() && !matches!(b, b'*' | b'\n'));
                    self.step(len, Atom::BlockComment, depth)
                } else {
                    self.step(self.char_len(), Atom::BlockComment, depth)
                }
            }
            Some(Frame::LineComment) if byte.is_ascii() => {
                let len = self.run(|b| b.is_ascii() && b != b'\n');
                self.step(len, Atom::LineComment, depth)
            }
            Some(Frame::LineComment) => self.step(c.len_utf8(), Atom::LineComment, depth),
            Some(Frame::Quoted) if is_plain_string(byte) => {
                let len = self.run(is_plain_string);
                self.step(len, Atom::StringText, depth)
            }
            Some(Frame::Quoted) => self.in_quoted(c, depth),
            Some(Frame::Heredoc { .. }) if is_plain_heredoc(byte) => {
                let len = self.run(is_plain_heredoc);
                self.step(len, Atom::HeredocText, depth)
            }
            Some(Frame::Heredoc { .. }) => self.in_heredoc(depth),
            _ if byte.is_ascii_alphanumeric() || byte == b'_' => {
                let len = self.run(|b| b.is_ascii_alphanumeric() || b == b'_');
                self.code(len)
            }
            _ if byte == b' ' => {
                let len = self.run(|b| b == b' ');
                self.step(len, Atom::Code, depth)
            }
            _ => self.code_char(c, depth),
        })
    }
}

/// A character of a quoted string's plain text that nothing after it can change.
fn is_plain_string(byte: u8) -> bool {
    byte.is_ascii() && !matches!(byte, b'"' | b'\\' | b'$' | b'%' | b'\n')
}

/// A character of a heredoc's plain text that nothing after it can change.
fn is_plain_heredoc(byte: u8) -> bool {
    byte.is_ascii() && !matches!(byte, b'$' | b'%' | b'\n')
}

impl Lexer<'_> {
    /// The length of an escape or template sequence at the cursor shared by quoted strings
    /// and heredocs: `$${`/`%%{` (text), `${`/`%{` (opens a template sequence).
    fn template_sequence(&self, c: char) -> Option<(usize, bool)> {
        if !matches!(c, '$' | '%') {
            return None;
        }
        let sign = c as u8;
        match (self.byte(1), self.byte(2)) {
            (Some(b), Some(b'{')) if b == sign => Some((3, false)),
            (Some(b'{'), _) => Some((2, true)),
            _ => None,
        }
    }

    fn in_quoted(&mut self, c: char, depth: usize) -> Step {
        if let Some((len, opens)) = self.template_sequence(c) {
            return if opens { self.open(Frame::Template, len, 1) } else { self.step(len, Atom::StringText, depth) };
        }
        match c {
            '"' => self.close(1, 0),
            '\\' => {
                // `\uNNNN` and `\UNNNNNNNN` take their hex digits; any other escape one char.
                let len = match self.byte(1) {
                    Some(b'u') => 2 + self.hex_digits(2, 4),
                    Some(b'U') => 2 + self.hex_digits(2, 8),
                    Some(b'\n') | None => 1,
                    Some(_) => 1 + self.text[self.at + 1..].chars().next().map_or(0, char::len_utf8),
                };
                self.step(len, Atom::StringText, depth)
            }
            _ => self.step(c.len_utf8(), Atom::StringText, depth),
        }
    }

    /// How many hex digits (at most `max`) follow at `offset`.
    fn hex_digits(&self, offset: usize, max: usize) -> usize {
        (0..max).take_while(|i| self.byte(offset + i).is_some_and(|b| b.is_ascii_hexdigit())).count()
    }

    fn in_heredoc(&mut self, depth: usize) -> Step {
        let c = self.rest().chars().next().unwrap_or('\0');
        match self.template_sequence(c) {
            Some((len, true)) => self.open(Frame::Template, len, 1),
            Some((len, false)) => self.step(len, Atom::HeredocText, depth),
            None => self.step(c.len_utf8(), Atom::HeredocText, depth),
        }
    }

    fn code_char(&mut self, c: char, depth: usize) -> Step {
        let next = self.byte(1);
        match c {
            '"' => self.open(Frame::Quoted, 1, 0),
            '#' => self.comment(),
            '/' if next == Some(b'/') => self.comment(),
            '/' if next == Some(b'*') => {
                self.stack.push(Frame::BlockComment);
                self.step(2, Atom::BlockComment, depth)
            }
            '<' if next == Some(b'<') && heredoc_marker(self.rest()).is_some() => {
                let (start, end) = heredoc_marker(self.rest()).unwrap_or_default();
                let marker = (self.at + start, self.at + end);
                // The opener runs to the end of its line; the body starts on the next.
                let len = self.rest().find('\n').unwrap_or(self.rest().len());
                self.open(Frame::Heredoc { marker }, len, 0)
            }
            '{' | '[' | '(' => self.open(Frame::Bracket, 1, 1),
            '}' if self.stack.last() == Some(&Frame::Template) => self.close(1, -1),
            '}' | ']' | ')' => {
                if self.stack.last() == Some(&Frame::Bracket) {
                    self.close(1, -1)
                } else {
                    // Unbalanced: HCL refuses it; the line still counts it.
                    self.line.brackets -= 1;
                    self.code_seen = true;
                    self.step(1, Atom::Code, depth)
                }
            }
            '=' if matches!(next, Some(b'=' | b'>')) => self.code(2),
            '!' | '<' | '>' if next == Some(b'=') => self.code(2),
            '=' => {
                let in_template = self.stack.iter().any(|f| matches!(f, Frame::Template | Frame::Quoted));
                if self.code_seen && self.line.assign.is_none() && !in_template {
                    self.line.assign = Some(self.at - self.line_start);
                    // Only an attribute whose whole value is on this line aligns.
                    self.brackets_before_assign = self.line.brackets;
                    self.line.brackets = 0;
                }
                self.code(1)
            }
            c if c.is_whitespace() => self.step(c.len_utf8(), Atom::Code, depth),
            c => self.code(c.len_utf8()),
        }
    }

    fn code(&mut self, len: usize) -> Step {
        self.code_seen = true;
        let depth = self.stack.len();
        self.step(len, Atom::Code, depth)
    }

    /// A `#` or `//` comment: the rest of the line, one atom per character.
    fn comment(&mut self) -> Step {
        if self.code_seen && self.line.comment.is_none() {
            self.line.comment = Some(self.at - self.line_start);
        }
        self.stack.push(Frame::LineComment);
        let depth = self.stack.len();
        self.step(1, Atom::LineComment, depth)
    }
}

/// `<<EOT` or `<<-EOT` at the end of a line: where the marker is in `rest` (start and end
/// byte), an HCL identifier (a Unicode identifier start or `_`, then identifier characters or
/// `-`, as in `END-SCRIPT`).
fn heredoc_marker(rest: &str) -> Option<(usize, usize)> {
    let line = rest.split('\n').next().unwrap_or(rest);
    let after = line.strip_prefix("<<")?;
    let after = after.strip_prefix('-').unwrap_or(after);
    let marker = after.strip_suffix('\r').unwrap_or(after);
    let mut chars = marker.chars();
    let first = chars.next()?;
    let valid = (unicode_ident::is_xid_start(first) || first == '_')
        && chars.all(|c| unicode_ident::is_xid_continue(c) || c == '-');
    let start = line.len() - after.len();
    valid.then_some((start, start + marker.len()))
}

/// Scans `text` for the formatter; characters for which `skip` is true (never ASCII ones: they
/// are not asked) take no part.
pub fn scan(text: &str, skip: fn(char) -> bool) -> Scan {
    Lexer::new(text, skip).into_scan()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<Line> {
        scan(text, |_| false).lines
    }

    #[test]
    fn brackets_and_assignments() {
        let l = lines("resource \"a\" \"b\" {\n  x = [1, 2]\n  tags = {\n  }\n}\n");
        assert_eq!(l[0].brackets, 1);
        assert_eq!(l[0].assign, None);
        assert_eq!(l[1].assign, Some(4));
        assert_eq!(l[1].brackets, 0);
        assert_eq!(l[2].assign, None, "multi-line value does not align");
        assert_eq!(l[2].brackets, 1);
        assert_eq!(l[3].brackets, -1);
    }

    #[test]
    fn braces_in_quoted_keys_do_not_count() {
        let l = lines("tags = {\n  \"a{b\" = \"x\"\n  \"}\"   = \"y\"\n}\n");
        assert_eq!(l.iter().map(|l| l.brackets).collect::<Vec<_>>(), [1, 0, 0, -1]);
        assert_eq!(l[1].assign, Some(8));
    }

    #[test]
    fn strings_and_comparisons_are_not_assignments() {
        let l = lines("  a = \"x = ${b == c ? \"{\" : \"}\"}\" # c = d\n  x == y\n");
        assert_eq!(l[0].assign, Some(4));
        assert_eq!(l[0].brackets, 0);
        assert!(l[0].comment.is_some());
        assert_eq!(l[1].assign, None);
    }

    #[test]
    fn heredoc_markers_are_hcl_identifiers() {
        for marker in ["EOT", "END-SCRIPT", "CLOUD-CONFIG", "_x", "\u{c9}OF", "a1-b2"] {
            let l = lines(&format!("x = <<-{marker}\n  a = /var/*\n{marker}\ny = \"*/\"\n"));
            assert!(l[1].verbatim && l[2].verbatim && !l[3].verbatim, "{marker}");
        }
        for not_a_marker in ["1EOT", "--EOT", "E OT", "E.OT"] {
            assert!(heredoc_marker(&format!("<<{not_a_marker}\n")).is_none(), "{not_a_marker}");
        }
    }

    #[test]
    fn heredoc_bodies_are_verbatim() {
        let l = lines("x = <<-EOT\n  a = {\nEOT\ny = 1\n");
        assert!(!l[0].verbatim);
        assert!(l[1].verbatim);
        assert!(l[2].verbatim);
        assert!(!l[3].verbatim);
        assert_eq!(l[3].assign, Some(2));
    }

    fn atoms(text: &str) -> Vec<(&str, Atom)> {
        Lexer::new(text, |_| false).map(|s| (&text[s.start..s.end], s.atom)).collect()
    }

    #[test]
    fn escapes_and_template_sequences_are_single_atoms() {
        let text = "\"a\\\"b\\u00e9$${x}$$$${y}\"";
        let strings: Vec<&str> =
            atoms(text).into_iter().filter(|(_, a)| *a == Atom::StringText).map(|(t, _)| t).collect();
        // Plain characters side by side come as one run (`x}`).
        assert_eq!(strings, ["a", "\\\"", "b", "\\u00e9", "$${", "x}", "$", "$", "$${", "y}"]);
    }

    #[test]
    fn runs_of_plain_text_stop_at_the_limit() {
        // Every atom of this text is one character: whatever the limit, a step ends there.
        let text = "name = \"abc-def\" # note\n  y = x\n";
        let plain: Vec<usize> = Lexer::new(text, |_| false).map(|s| s.end).collect();
        assert!(plain.len() < text.len(), "runs come as one step: {plain:?}");
        for limit in 1..text.len() {
            let mut lexer = Lexer::new(text, |_| false);
            lexer.limit = limit;
            let ends: Vec<usize> = std::iter::from_fn(|| lexer.next()).map(|s| s.end).collect();
            assert!(ends.contains(&limit), "limit {limit}: {ends:?}");
        }
    }

    #[test]
    fn interpolations_span_lines_and_nest_strings() {
        let text = "a = \"${jsonencode({\n  \"k\" = \"v}\"\n})}-x\"\nb = \"c\"\n";
        let found = atoms(text);
        let text_of = |atom| found.iter().filter(|(_, a)| *a == atom).map(|(t, _)| *t).collect::<String>();
        assert_eq!(text_of(Atom::StringText), "kv}-xc");
    }

    #[test]
    fn heredocs_hold_text_and_interpolations() {
        let text = "x = <<EOT\nhi ${var.a} $${b}\nEOT\ny = \"z\"\n";
        let found = atoms(text);
        let text_of = |atom| found.iter().filter(|(_, a)| *a == atom).map(|(t, _)| *t).collect::<String>();
        assert_eq!(text_of(Atom::HeredocText), "hi  $${b}");
        assert_eq!(text_of(Atom::StringText), "z");
    }

    #[test]
    fn comments() {
        let found = atoms("a = 1 # x \"y\n/* \"q\n*/ b = \"s\"\n");
        let comment: String = found.iter().filter(|(_, a)| *a == Atom::LineComment).map(|(t, _)| *t).collect();
        assert_eq!(comment, "# x \"y");
        assert_eq!(found.iter().filter(|(_, a)| *a == Atom::StringText).count(), 1);
    }
}
