//! One place that collects and renders every problem Stamp finds: YAML positions, schema
//! instance paths, template and HCL errors all become a [`Diagnostic`] with a file, line and
//! column, rendered for a terminal (with a source snippet) or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label, Severity as CsSeverity};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;
use serde::Serialize;

/// How bad a diagnostic is. Errors fail the command; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A position in a file, 1-based line and column (columns count characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Location {
    /// The file as shown to the user: relative to the project when it is inside it.
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Where the offending text ends (same line), when known.
    #[serde(skip)]
    pub end_column: Option<usize>,
}

impl Location {
    pub fn new(file: impl Into<String>, line: usize, column: usize) -> Self {
        Self { file: file.into(), line, column, end_column: None }
    }

    pub fn file_only(file: impl Into<String>) -> Self {
        Self::new(file, 0, 0)
    }

    /// A whole line, shown by its number only: no source snippet (for sensitive values).
    #[must_use]
    pub fn on_line(mut self, line: usize) -> Self {
        self.line = line;
        self.column = 0;
        self
    }

    #[must_use]
    pub fn with_end_column(mut self, end_column: usize) -> Self {
        self.end_column = Some(end_column);
        self
    }

    /// A line and column to show a snippet at.
    fn has_position(&self) -> bool {
        self.line > 0 && self.column > 0
    }
}

/// One problem, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable, machine-readable kind, e.g. `schema.required` or `render.undefined`.
    pub code: &'static str,
    pub message: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Lines under the message (the files in the way, ...): a message is one line, each of
    /// these one more.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// The account the problem was found in, when it belongs to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            location: None,
            details: Vec::new(),
            hints: Vec::new(),
            account: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, ..Self::error(code, message) }
    }

    #[must_use]
    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    #[must_use]
    pub fn at_opt(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    /// A line under the message.
    #[must_use]
    pub fn detail(mut self, line: impl Into<String>) -> Self {
        self.details.push(line.into());
        self
    }

    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    #[must_use]
    pub fn for_account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    fn sort_key(&self) -> (Option<&Location>, &str) {
        (self.location.as_ref(), &self.message)
    }
}

/// The text of every file a diagnostic may point into, keyed by its display name, so a
/// snippet can be shown. Shared between threads: accounts are checked in parallel.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Arc<Mutex<BTreeMap<String, Arc<str>>>>,
}

impl Sources {
    pub fn add(&self, name: impl Into<String>, text: impl Into<Arc<str>>) {
        self.files.lock().expect("sources lock poisoned").insert(name.into(), text.into());
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<str>> {
        self.files.lock().expect("sources lock poisoned").get(name).cloned()
    }
}

/// Diagnostics together with the text of the files they point into.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
}

impl Report {
    pub fn new(diagnostics: Vec<Diagnostic>, sources: Sources) -> Self {
        Self { diagnostics, sources }
    }

    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error).count()
    }

    /// The messages on one line, for a report that ends up inside another one's text.
    /// The diagnostics' messages on one line (for a note inside another report).
    pub fn messages(&self) -> String {
        let message = |d: &Diagnostic| {
            if d.details.is_empty() { d.message.clone() } else { format!("{} {}", d.message, d.details.join(", ")) }
        };
        self.diagnostics.iter().map(message).collect::<Vec<_>>().join("; ")
    }
}

/// A report as one line: its messages.
impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.messages())
    }
}

impl std::error::Error for Report {}

/// In JSON, a report is its diagnostics (the files' text stays out).
impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.diagnostics.serialize(serializer)
    }
}

/// Sorts diagnostics by file, line and column and drops exact duplicates, so output is the
/// same whatever order parallel work finished in.
pub fn sort(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()).then(a.code.cmp(b.code)));
    diagnostics.dedup();
}

/// Renders diagnostics for a terminal: `error: message`, an arrow to `file:line:column`, the
/// source line with a caret, then `= hint:` lines.
pub fn render_text(diagnostics: &[Diagnostic], sources: &Sources, color: bool) -> String {
    let mut files = SimpleFiles::new();
    let mut ids = BTreeMap::new();
    let config = term::Config::default();
    let mut out = Vec::new();
    for diagnostic in diagnostics {
        let mut cs = CsDiagnostic::new(match diagnostic.severity {
            Severity::Error => CsSeverity::Error,
            Severity::Warning => CsSeverity::Warning,
        })
        .with_message(diagnostic.details.iter().fold(
            crate::text::one_line(&diagnostic.message).into_owned(),
            |mut m, line| {
                m.push_str("\n  ");
                m.push_str(&crate::text::one_line(line));
                m
            },
        ));
        let mut notes: Vec<String> = Vec::new();
        if let Some(location) = &diagnostic.location {
            let source = sources.get(&location.file);
            match (location.has_position(), source) {
                (true, Some(text)) => {
                    let (id, shown) = ids.entry(location.file.clone()).or_insert_with(|| {
                        let shown = Shown::of(&text);
                        (files.add(crate::text::one_line(&location.file).into_owned(), shown.text.clone()), shown)
                    });
                    let range = byte_range(&text, location);
                    let range = shown.offset(range.start)..shown.offset(range.end);
                    cs = cs.with_labels(vec![Label::primary(*id, range)]);
                }
                (true, None) => notes.push(format!("at {}:{}:{}", location.file, location.line, location.column)),
                (false, _) if location.line > 0 => notes.push(format!("at {}:{}", location.file, location.line)),
                (false, _) => notes.push(format!("in {}", location.file)),
            }
        }
        if let Some(account) = &diagnostic.account
            && diagnostic.location.as_ref().is_none_or(|l| !l.file.contains(account.as_str()))
        {
            notes.push(format!("account: `{account}`"));
        }
        notes.extend(diagnostic.hints.iter().map(|h| format!("hint: {h}")));
        cs = cs.with_notes(notes.iter().map(|note| crate::text::one_line(note).into_owned()).collect());
        if color {
            let mut buffer = termcolor::Buffer::ansi();
            term::emit_to_write_style(&mut buffer, &config, &files, &cs)
                .expect("diagnostic spans point into their files");
            out.extend_from_slice(buffer.as_slice());
        } else {
            term::emit_to_io_write(&mut out, &config, &files, &cs).expect("diagnostic spans point into their files");
        }
    }
    let errors = diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
    if errors > 0 {
        let _ = writeln!(out, "{} error{} found", errors, if errors == 1 { "" } else { "s" });
    }
    String::from_utf8(out).expect("diagnostics are UTF-8")
}

/// A file's text as a snippet shows it: each character a terminal must not get as it is
/// (an escape sequence's start, a bell, a carriage return that would overwrite the line, a
/// text-direction override) as one harmless character, so every line and column stays.
struct Shown {
    text: String,
    /// After each replaced character: its end in the file's text, and how many bytes longer
    /// the shown text is up to there.
    shifts: Vec<(usize, usize)>,
}

impl Shown {
    fn of(text: &str) -> Self {
        let kept = |c: char, next: Option<char>| c == '\n' || c == '\t' || (c == '\r' && next == Some('\n'));
        let mut shown = Self { text: String::with_capacity(text.len()), shifts: Vec::new() };
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            if !crate::text::needs_escape(c) || kept(c, chars.peek().map(|&(_, next)| next)) {
                shown.text.push(c);
                continue;
            }
            // A C0 control as its symbol (`␛` for escape), anything else as `�`.
            let symbol = match u32::from(c) {
                code @ 0..=0x1f => char::from_u32(0x2400 + code),
                0x7f => Some('\u{2421}'),
                _ => None,
            };
            let symbol = symbol.unwrap_or(char::REPLACEMENT_CHARACTER);
            shown.text.push(symbol);
            let shift = shown.shifts.last().map_or(0, |&(_, shift)| shift) + symbol.len_utf8() - c.len_utf8();
            shown.shifts.push((at + c.len_utf8(), shift));
        }
        shown
    }

    /// Where the byte at `offset` of the file's text is in the shown text.
    fn offset(&self, offset: usize) -> usize {
        let before = self.shifts.partition_point(|&(end, _)| end <= offset);
        offset + before.checked_sub(1).map_or(0, |i| self.shifts[i].1)
    }
}

/// Renders diagnostics as one JSON document for machines (`--format json`).
pub fn render_json(diagnostics: &[Diagnostic]) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        errors: usize,
        warnings: usize,
        diagnostics: &'a [Diagnostic],
    }
    let out = Out {
        errors: diagnostics.iter().filter(|d| d.severity == Severity::Error).count(),
        warnings: diagnostics.iter().filter(|d| d.severity == Severity::Warning).count(),
        diagnostics,
    };
    let mut text = serde_json::to_string_pretty(&out).expect("diagnostics serialise");
    text.push('\n');
    text
}

/// Byte range in `text` of the location: from its column to `end_column`, or to the end of
/// the word at the column.
fn byte_range(text: &str, location: &Location) -> Range<usize> {
    let Some(line_start) = line_start(text, location.line) else {
        return text.len()..text.len();
    };
    let line_text = text[line_start..].split('\n').next().unwrap_or("");
    let column_byte =
        |column: usize| line_text.char_indices().nth(column.saturating_sub(1)).map_or(line_text.len(), |(i, _)| i);
    let start = column_byte(location.column);
    let end = match location.end_column {
        Some(end) if end > location.column => column_byte(end),
        _ => {
            let rest = &line_text[start..];
            let word = rest.find(|c: char| c.is_whitespace() || c == ':' || c == ',').unwrap_or(rest.len());
            start + word.max(rest.chars().next().map_or(0, char::len_utf8))
        }
    };
    line_start + start..line_start + end.max(start)
}

fn line_start(text: &str, line: usize) -> Option<usize> {
    if line <= 1 {
        return Some(0);
    }
    text.match_indices('\n').nth(line - 2).map(|(i, _)| i + 1)
}

/// Writes `Display` text for a list like `a`, `b` or `c`.
pub fn quoted_list(items: &[String]) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(if i + 1 == items.len() { " or " } else { ", " });
        }
        let _ = write!(out, "`{item}`");
    }
    out
}

/// The closest candidate to a misspelt word, if any is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// The reason of an I/O error without the path `fs-err` adds (messages name the file already).
pub fn io_reason(error: &std::io::Error) -> String {
    error.get_ref().and_then(|inner| inner.source()).map_or_else(|| error.to_string(), ToString::to_string)
}

/// An error and its causes, as one line: `cannot read x: no such file`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing of a file, its name or a message reaches a terminal as control text, and the
    /// caret stays under the offending text.
    #[test]
    fn control_text_in_files_names_and_messages_never_reaches_the_terminal() {
        let file = "accounts/ev\u{1b}[2Jil.yaml";
        let text = "a: 1\r\nname: \"x\u{1b}[2J\u{2028}y\rz\" \u{85}bad: 2 # \u{1b}]0;title\u{7}\u{202e}\r\n";
        let sources = Sources::default();
        sources.add(file.to_string(), text);
        let diagnostic = Diagnostic::error("test", "value `x\u{1b}[2J` is\nwrong")
            .at(Location::new(file, 2, 20).with_end_column(23))
            .hint("try `\u{9b}31m`");
        let out = render_text(&[diagnostic], &sources, false);
        assert!(!out.chars().any(|c| crate::text::needs_escape(c) && c != '\n'), "{out:?}");
        assert!(out.contains("accounts/ev\\u{1b}[2Jil.yaml:2:20"), "{out}");
        assert!(out.contains("value `x\\u{1b}[2J` is\\nwrong") && out.contains("try `\\u{9b}31m`"), "{out}");
        // The caret is under `bad`, as many columns in as in the file.
        let line = out.lines().find(|l| l.contains("name: ")).unwrap();
        let caret = out.lines().skip_while(|l| !l.contains("name: ")).nth(1).unwrap();
        let at = |l: &str, needle: &str| l[..l.find(needle).unwrap()].chars().count();
        assert_eq!(at(caret, "^"), at(line, "bad"), "{out}");
        assert!(line.contains("\"x␛[2J�y␍z\" �bad: 2 # ␛]0;title␇�"), "{out}");
    }
}
