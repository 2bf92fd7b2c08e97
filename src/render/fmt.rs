//! Formats rendered Terraform the way `terraform fmt` does, without a Terraform binary:
//! indentation by bracket depth, `=` aligned across consecutive one-line attributes, trailing
//! comments aligned, and no stray blank lines left behind by template logic.

use super::hcl_scan::{self, Line};
use super::hcl_value::is_marker;

/// Width in characters, not counting the output guard's markers.
fn width(text: &str) -> usize {
    text.chars().filter(|&c| !is_marker(c)).count()
}

/// Formats HCL text. Heredoc bodies and multi-line comments are left as they are.
pub fn format(text: &str) -> String {
    format_scanned(text, &hcl_scan::scan(text, |_| false))
}

/// Formats text that was already scanned. Characters the scan marked (the output guard's
/// markers) take no width, so they can be removed after formatting.
pub fn format_scanned(text: &str, scan: &hcl_scan::Scan) -> String {
    let raw: Vec<&str> = text.lines().collect();
    let infos = &scan.lines;

    // Pass 1: indentation (hclwrite's bracket stack) and cells.
    let mut indents: Vec<i32> = Vec::new();
    let mut cells: Vec<Cells> = Vec::with_capacity(raw.len());
    for (text, info) in raw.iter().zip(infos) {
        if info.verbatim {
            cells.push(Cells::verbatim(text));
            continue;
        }
        if text.trim().is_empty() {
            cells.push(Cells::blank());
            continue;
        }
        let depth = match info.brackets {
            n if n > 0 => {
                let depth = indents.len();
                indents.push(n);
                depth
            }
            n if n < 0 => {
                let mut closed = -n;
                while closed > 0 {
                    let Some(top) = indents.last_mut() else { break };
                    if closed >= *top {
                        closed -= *top;
                        indents.pop();
                    } else {
                        *top -= closed;
                        closed = 0;
                    }
                }
                indents.len()
            }
            _ => indents.len(),
        };
        cells.push(Cells::split(text, info, depth));
    }

    // Pass 2: align `=` in runs of consecutive attribute lines, then trailing comments.
    align(&mut cells, |c| c.assign.is_some(), Cells::lead_width, |c, pad| c.assign_pad = pad);
    align(&mut cells, |c| c.comment.is_some(), Cells::code_width, |c, pad| c.comment_pad = pad);

    // Pass 3: assemble, dropping blank lines that only template logic left behind.
    let mut out = String::with_capacity(text.len() + 64);
    let mut previous: Option<&Cells<'_>> = None;
    for (i, cell) in cells.iter().enumerate() {
        if cell.blank {
            let after_open = previous.is_none_or(|p| p.opens);
            let next = cells[i + 1..].iter().find(|c| !c.blank);
            let before_close = next.is_none_or(|n| n.closes);
            if after_open || before_close || previous.is_some_and(|p| p.blank) {
                continue;
            }
        }
        cell.write(&mut out);
        out.push('\n');
        previous = Some(cell);
    }
    out
}

/// One line split into hclwrite's cells: lead, assignment and trailing comment. Borrows the
/// input: formatting thousands of files allocates only their output.
#[derive(Debug, Default)]
struct Cells<'a> {
    indent: usize,
    lead: &'a str,
    /// `Some(value)` for an attribute (`lead = value`); the value may be empty.
    assign: Option<&'a str>,
    comment: Option<&'a str>,
    assign_pad: usize,
    comment_pad: usize,
    verbatim: Option<&'a str>,
    blank: bool,
    /// Ends with an opening bracket: a blank line after it is dropped.
    opens: bool,
    /// Starts with a closing bracket: a blank line before it is dropped.
    closes: bool,
}

impl<'a> Cells<'a> {
    fn blank() -> Self {
        Self { blank: true, ..Self::default() }
    }

    fn verbatim(text: &'a str) -> Self {
        Self { verbatim: Some(text), ..Self::default() }
    }

    fn split(text: &'a str, info: &Line, depth: usize) -> Self {
        let code_end = info.comment.unwrap_or(text.len());
        let comment = info.comment.map(|c| text[c..].trim_end());
        let (lead, assign) = match info.assign {
            Some(eq) => (text[..eq].trim(), Some(text[eq + 1..code_end].trim())),
            None => (text[..code_end].trim(), None),
        };
        let code = assign.unwrap_or(lead);
        Self {
            indent: depth * 2,
            opens: info.brackets > 0 || code.ends_with('{') || code.ends_with('['),
            closes: lead.starts_with(['}', ']', ')']),
            lead,
            assign_pad: 1,
            comment_pad: 1,
            assign,
            comment,
            ..Self::default()
        }
    }

    fn lead_width(&self) -> usize {
        self.indent + width(self.lead)
    }

    fn code_width(&self) -> usize {
        let assign = self.assign.map_or(0, |value| {
            let value = width(value);
            self.assign_pad + 1 + if value == 0 { 0 } else { 1 + value }
        });
        self.lead_width() + assign
    }

    fn write(&self, out: &mut String) {
        if let Some(text) = self.verbatim {
            out.push_str(text);
            return;
        }
        if self.blank {
            return;
        }
        let start = out.len();
        out.extend(std::iter::repeat_n(' ', self.indent));
        out.push_str(self.lead);
        if let Some(value) = self.assign {
            out.extend(std::iter::repeat_n(' ', self.assign_pad));
            out.push('=');
            if !value.is_empty() {
                out.push(' ');
                out.push_str(value);
            }
        }
        if let Some(comment) = self.comment {
            if out.len() > start + self.indent {
                out.extend(std::iter::repeat_n(' ', self.comment_pad));
            }
            out.push_str(comment);
        }
    }
}

/// Aligns a cell across runs of consecutive lines that have it; verbatim lines (heredoc
/// bodies) do not break a run, as they belong to the line that opened them.
fn align<'a>(
    cells: &mut [Cells<'a>],
    has: impl Fn(&Cells<'a>) -> bool,
    width: impl Fn(&Cells<'a>) -> usize,
    set: impl Fn(&mut Cells<'a>, usize),
) {
    let mut run: Vec<usize> = Vec::new();
    let flush = |run: &mut Vec<usize>, cells: &mut [Cells<'a>]| {
        let widest = run.iter().map(|&i| width(&cells[i])).max().unwrap_or(0);
        for &i in run.iter() {
            let pad = widest - width(&cells[i]) + 1;
            set(&mut cells[i], pad);
        }
        run.clear();
    };
    for i in 0..cells.len() {
        if cells[i].verbatim.is_some() {
            continue;
        }
        if has(&cells[i]) {
            run.push(i);
        } else {
            flush(&mut run, cells);
        }
    }
    flush(&mut run, cells);
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn indents_and_aligns() {
        let input = "resource \"aws_vpc\" \"main\" {\ncidr_block = \"10.0.0.0/16\"\n      enable_dns_support = true\n\n\n  tags = {\n Name = \"x\"\n    LongerKey = \"y\"\n }\n}\n";
        let want = "resource \"aws_vpc\" \"main\" {\n  cidr_block         = \"10.0.0.0/16\"\n  enable_dns_support = true\n\n  tags = {\n    Name      = \"x\"\n    LongerKey = \"y\"\n  }\n}\n";
        assert_eq!(format(input), want);
    }

    #[test]
    fn drops_blank_lines_after_open_and_before_close() {
        let input = "locals {\n\n  a = 1\n\n}\n\n\n\nb {\n}\n";
        assert_eq!(format(input), "locals {\n  a = 1\n}\n\nb {\n}\n");
    }

    #[test]
    fn heredocs_untouched_and_do_not_break_runs() {
        let input = "x {\n  a = 1\n  script = <<-EOT\n      keep   this\n    EOT\n  bb = 2\n}\n";
        let want = "x {\n  a      = 1\n  script = <<-EOT\n      keep   this\n    EOT\n  bb     = 2\n}\n";
        assert_eq!(format(input), want);
    }

    #[test]
    fn aligns_trailing_comments() {
        let input = "a = 1 # one\nbbb = 22 # two\n";
        assert_eq!(format(input), "a   = 1  # one\nbbb = 22 # two\n");
    }

    #[test]
    fn formatting_is_idempotent() {
        let input = "module \"m\" {\n  source = \"./m\"\n  list = [\n    1,\n  2,\n  ]\n  m = { a = 1 }\n}\n";
        let once = format(input);
        assert_eq!(format(&once), once);
    }
}
