//! Checks where config values landed in rendered text: a string value must be inside a quoted
//! string (or a `#` comment), a literal must be in expression position. Then removes the
//! markers. This is what makes injection impossible even when a template is careless.

use super::hcl_scan::{self, Context};
use super::hcl_value::{LITERAL_OPEN, STRING_OPEN, is_marker};

/// A value printed where it could change the meaning of the HCL around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misplaced {
    /// 1-based line and column in the rendered text.
    pub line: usize,
    pub column: usize,
    pub message: &'static str,
    pub hint: &'static str,
}

/// Verifies the markers and returns the text without them.
#[cfg(test)]
fn check_and_strip(text: &str) -> Result<String, Misplaced> {
    check(text, &hcl_scan::scan(text, is_marker))?;
    Ok(strip(text))
}

/// Verifies the markers, formats the text (one scan for both) and removes the markers.
pub fn check_and_format(text: &str) -> Result<String, Misplaced> {
    let scan = hcl_scan::scan(text, is_marker);
    check(text, &scan)?;
    Ok(strip(&super::fmt::format_scanned(text, &scan)))
}

fn check(text: &str, scan: &hcl_scan::Scan) -> Result<(), Misplaced> {
    for &(offset, c, context) in &scan.marks {
        let problem = match (c, context) {
            (STRING_OPEN, Context::QuotedString | Context::LineComment) => None,
            (STRING_OPEN, Context::Heredoc) => Some((
                "a string value is printed inside a heredoc",
                "build the text with a Terraform expression instead, e.g. `jsonencode({{ value | hcl }})`",
            )),
            (STRING_OPEN, _) => Some((
                "a string value is printed outside a quoted string",
                "put it in quotes (`\"{{ value }}\"`) or print it as an HCL literal with `{{ value | hcl }}`",
            )),
            (LITERAL_OPEN, Context::Expression) => None,
            (LITERAL_OPEN, _) => Some((
                "a list, map or `| hcl` literal is printed inside a string or comment",
                "print it outside quotes (`x = {{ value | hcl }}`), or join it into a string first (`{{ value | join(\",\") }}`)",
            )),
            _ => None,
        };
        if let Some((message, hint)) = problem {
            let before = &text[..offset];
            let line = before.matches('\n').count() + 1;
            let column = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
            return Err(Misplaced { line, column, message, hint });
        }
    }
    Ok(())
}

/// The text without markers (each is three bytes of UTF-8 starting with 0xEE).
fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(is_marker) {
        out.push_str(&rest[..at]);
        rest = &rest[at + '\u{E000}'.len_utf8()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::hcl_value::{LITERAL_CLOSE, STRING_CLOSE};

    fn s(v: &str) -> String {
        format!("{STRING_OPEN}{v}{STRING_CLOSE}")
    }
    fn l(v: &str) -> String {
        format!("{LITERAL_OPEN}{v}{LITERAL_CLOSE}")
    }

    #[test]
    fn strings_inside_quotes_pass() {
        let text = format!("name = \"{}-vpc\"\n# account {}\n", s("prod"), s("prod"));
        assert_eq!(check_and_strip(&text).unwrap(), "name = \"prod-vpc\"\n# account prod\n");
    }

    #[test]
    fn bare_strings_are_refused() {
        let text = format!("a = 1\nname = {}\n", s("abspath(path.root)"));
        let err = check_and_strip(&text).unwrap_err();
        assert_eq!((err.line, err.column), (2, 8));
    }

    #[test]
    fn strings_inside_interpolation_are_refused() {
        let text = format!("name = \"${{{}}}\"\n", s("var.x"));
        assert!(check_and_strip(&text).is_err());
    }

    #[test]
    fn literals_in_expressions_pass_and_in_strings_fail() {
        let ok = format!("azs = {}\n", l("[\"a\", \"b\"]"));
        assert_eq!(check_and_strip(&ok).unwrap(), "azs = [\"a\", \"b\"]\n");
        let bad = format!("name = \"x-{}\"\n", l("\"a\""));
        assert!(check_and_strip(&bad).is_err());
    }
}
