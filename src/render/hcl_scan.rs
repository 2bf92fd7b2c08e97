//! A small HCL scanner: just enough to know where strings, heredocs, comments and brackets are
//! on each line. The formatter uses it to indent and align like `terraform fmt`; the output
//! guard uses it to check where config values landed.

/// What surrounds a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// HCL expression syntax (outside any string), including inside `${ }`.
    Expression,
    /// The literal part of a `"quoted string"`.
    QuotedString,
    /// The literal part of a heredoc.
    Heredoc,
    /// A `#` or `//` comment.
    LineComment,
    /// A `/* */` comment.
    BlockComment,
}

/// What the formatter needs to know about one line.
#[derive(Debug, Clone, Default)]
pub struct Line {
    /// Inside a heredoc body or a multi-line comment: left exactly as it is.
    pub verbatim: bool,
    /// Net change of open brackets, outside strings and comments.
    pub brackets: i32,
    /// Byte offset of the `=` of an attribute whose value ends on this line.
    pub assign: Option<usize>,
    /// Byte offset of a trailing comment after code.
    pub comment: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    Quoted,
    /// `${ }` or `%{ }` inside a string; counts nested `{` so the right `}` closes it.
    Interp(u32),
    Heredoc {
        marker: String,
    },
}

/// The result of scanning a text.
#[derive(Debug, Default)]
pub struct Scan {
    pub lines: Vec<Line>,
    /// Every character for which `is_marked` was true, with its byte offset and context.
    pub marks: Vec<(usize, char, Context)>,
}

/// Scans `text`. Characters for which `is_marked` returns true are recorded with their
/// context and otherwise ignored.
pub fn scan(text: &str, is_marked: impl Fn(char) -> bool) -> Scan {
    let mut out = Scan::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut in_block_comment = false;
    let mut line_start = 0;
    for raw_line in text.split_inclusive('\n') {
        let line_text = raw_line.strip_suffix('\n').unwrap_or(raw_line);
        let mut line = Line::default();
        // A heredoc body line, or its closing marker.
        if let Some(Frame::Heredoc { marker }) = stack.last() {
            line.verbatim = true;
            if line_text.trim() == marker {
                stack.pop();
                out.lines.push(line);
                line_start += raw_line.len();
                continue;
            }
        }
        if in_block_comment {
            line.verbatim = true;
        }
        let bytes = line_text.as_bytes();
        let mut code_seen = false;
        let mut i = 0;
        while i < bytes.len() {
            // HCL's syntax is ASCII: decode only the rare non-ASCII character.
            let (c, width) = match bytes[i] {
                b if b < 0x80 => (char::from(b), 1),
                _ => {
                    let c = line_text[i..].chars().next().expect("in bounds");
                    (c, c.len_utf8())
                }
            };
            let next = bytes.get(i + 1).copied();
            if is_marked(c) {
                let context = if in_block_comment {
                    Context::BlockComment
                } else {
                    match stack.last() {
                        Some(Frame::Quoted) => Context::QuotedString,
                        Some(Frame::Heredoc { .. }) => Context::Heredoc,
                        _ => Context::Expression,
                    }
                };
                out.marks.push((line_start + i, c, context));
                i += width;
                continue;
            }
            if in_block_comment {
                if c == '*' && next == Some(b'/') {
                    in_block_comment = false;
                    i += 2;
                } else {
                    i += width;
                }
                continue;
            }
            if let Some(Frame::Quoted | Frame::Heredoc { .. }) = stack.last_mut() {
                let quoted = matches!(stack.last(), Some(Frame::Quoted));
                match c {
                    '\\' if quoted => i += 1 + line_text[i + 1..].chars().next().map_or(0, char::len_utf8),
                    '"' if quoted => {
                        stack.pop();
                        i += 1;
                    }
                    '$' | '%' if next == Some(c as u8) && bytes.get(i + 2) == Some(&b'{') => i += 3,
                    '$' | '%' if next == Some(b'{') => {
                        stack.push(Frame::Interp(0));
                        i += 2;
                    }
                    _ => i += width,
                }
            } else {
                let rest = &line_text[i..];
                match c {
                    '"' => {
                        stack.push(Frame::Quoted);
                        code_seen = true;
                        i += 1;
                    }
                    '#' => {
                        if code_seen {
                            line.comment = Some(i);
                        }
                        mark_comment(&mut out, &is_marked, line_text, i, line_start);
                        break;
                    }
                    '/' if next == Some(b'/') => {
                        if code_seen {
                            line.comment = Some(i);
                        }
                        mark_comment(&mut out, &is_marked, line_text, i, line_start);
                        break;
                    }
                    '/' if next == Some(b'*') => {
                        in_block_comment = true;
                        i += 2;
                    }
                    '<' if rest.starts_with("<<") && heredoc_marker(rest).is_some() => {
                        let marker = heredoc_marker(rest).expect("checked");
                        stack.push(Frame::Heredoc { marker });
                        code_seen = true;
                        i = bytes.len();
                    }
                    '{' | '[' | '(' => {
                        if let Some(Frame::Interp(depth)) = stack.last_mut()
                            && c == '{'
                        {
                            *depth += 1;
                        }
                        line.brackets += 1;
                        code_seen = true;
                        i += 1;
                    }
                    '}' => {
                        match stack.last_mut() {
                            Some(Frame::Interp(0)) => {
                                stack.pop();
                            }
                            Some(Frame::Interp(depth)) => {
                                *depth -= 1;
                                line.brackets -= 1;
                            }
                            _ => line.brackets -= 1,
                        }
                        code_seen = true;
                        i += 1;
                    }
                    ']' | ')' => {
                        line.brackets -= 1;
                        code_seen = true;
                        i += 1;
                    }
                    '=' if matches!(next, Some(b'=' | b'>')) => {
                        code_seen = true;
                        i += 2;
                    }
                    '!' | '<' | '>' if next == Some(b'=') => {
                        code_seen = true;
                        i += 2;
                    }
                    '=' => {
                        if code_seen && line.assign.is_none() && stack.is_empty() {
                            line.assign = Some(i);
                            // Only an attribute whose whole value is on this line aligns.
                            line.brackets = 0;
                        }
                        code_seen = true;
                        i += 1;
                    }
                    c if c.is_whitespace() => i += width,
                    _ => {
                        code_seen = true;
                        i += width;
                    }
                }
            }
        }
        // A value that opens brackets it does not close starts a multi-line expression: it
        // is not aligned with its neighbours (as in hclwrite).
        if let Some(offset) = line.assign {
            let before = bracket_change(&line_text[..offset]);
            if line.brackets != 0 {
                line.assign = None;
            }
            line.brackets += before;
        }
        // A quoted string never spans lines; recover so one bad line does not taint the rest.
        while matches!(stack.last(), Some(Frame::Quoted | Frame::Interp(_))) {
            stack.pop();
        }
        out.lines.push(line);
        line_start += raw_line.len();
    }
    out
}

/// Records marks inside a line comment that starts at `from`.
fn mark_comment(out: &mut Scan, is_marked: &impl Fn(char) -> bool, line: &str, from: usize, line_start: usize) {
    for (offset, c) in line[from..].char_indices() {
        if is_marked(c) {
            out.marks.push((line_start + from + offset, c, Context::LineComment));
        }
    }
}

/// Net brackets of a code fragment without strings (the part of a line before its `=`).
fn bracket_change(code: &str) -> i32 {
    code.chars()
        .map(|c| match c {
            '{' | '[' | '(' => 1,
            '}' | ']' | ')' => -1,
            _ => 0,
        })
        .sum()
}

/// `<<EOT` or `<<-EOT` at the end of a line: the marker.
fn heredoc_marker(rest: &str) -> Option<String> {
    let after = rest.strip_prefix("<<")?;
    let after = after.strip_prefix('-').unwrap_or(after);
    let marker = after.trim_end();
    (!marker.is_empty() && marker.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then(|| marker.to_string())
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
    fn strings_and_comparisons_are_not_assignments() {
        let l = lines("  a = \"x = ${b == c ? \"{\" : \"}\"}\" # c = d\n  x == y\n");
        assert_eq!(l[0].assign, Some(4));
        assert_eq!(l[0].brackets, 0);
        assert!(l[0].comment.is_some());
        assert_eq!(l[1].assign, None);
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

    #[test]
    fn marks_know_their_context() {
        let marked = |c| c == '@';
        let s = scan("a = \"@\"\nb = @\n# @\nc = \"${@}\"\n", marked);
        let contexts: Vec<Context> = s.marks.iter().map(|m| m.2).collect();
        assert_eq!(
            contexts,
            vec![Context::QuotedString, Context::Expression, Context::LineComment, Context::Expression]
        );
    }
}
