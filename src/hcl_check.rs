//! Parses rendered Terraform with hcl-rs and maps syntax errors back to the template line
//! that produced them.

/// A syntax error in HCL text, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HclError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses `text` as an HCL body with the parser of hcl-rs (`hcl-edit`), without building
/// hcl-rs's owned body: only syntax matters here, and this runs for every rendered file.
pub fn check(text: &str) -> Result<(), HclError> {
    parse(text).map(|_| ())
}

/// Whether `text` is only `#` comments and blank lines, ending in a line break: whatever follows
/// it is read as if it stood alone, shifted by its length. HCL ends a `#` comment at a line
/// break (`\n`, or `\r` for the parser), so a `\r` anywhere makes this false.
pub fn is_only_comments(text: &str) -> bool {
    text.ends_with('\n') && !text.contains('\r') && text.lines().all(|line| line.is_empty() || line.starts_with('#'))
}

/// Parses `text` as an HCL body, keeping where each part is (for the output guard).
pub fn parse(text: &str) -> Result<hcl_edit::structure::Body, HclError> {
    hcl_edit::parser::parse_body(text).map_err(|e| HclError {
        line: e.location().line(),
        column: e.location().column(),
        message: e.message().to_string(),
    })
}

/// The template line most likely to have produced `rendered_line`: the line whose literal text
/// (everything outside `{{ }}` and `{% %}`) appears in it, in order, with the most text matched.
pub fn guess_template_line(template: &str, rendered_line: &str) -> Option<usize> {
    let rendered = rendered_line.trim();
    if rendered.is_empty() {
        return None;
    }
    let mut best: Option<(usize, usize)> = None;
    for (index, line) in template.lines().enumerate() {
        let fragments = literal_fragments(line);
        let matched: usize = fragments.iter().map(std::string::String::len).sum();
        if matched == 0 {
            continue;
        }
        let mut rest = rendered;
        let fits = fragments.iter().all(|fragment| match rest.find(fragment.as_str()) {
            Some(at) => {
                rest = &rest[at + fragment.len()..];
                true
            }
            None => false,
        });
        if fits && best.is_none_or(|(_, score)| matched > score) {
            best = Some((index + 1, matched));
        }
    }
    best.map(|(line, _)| line)
}

fn literal_fragments(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        let next = ["{{", "{%", "{#"].iter().filter_map(|open| rest.find(open)).min();
        let Some(start) = next else {
            push_fragment(&mut out, rest);
            return out;
        };
        push_fragment(&mut out, &rest[..start]);
        let close = match &rest[start..start + 2] {
            "{{" => "}}",
            "{%" => "%}",
            _ => "#}",
        };
        match rest[start..].find(close) {
            Some(end) => rest = &rest[start + end + 2..],
            None => return out,
        }
    }
}

fn push_fragment(out: &mut Vec<String>, text: &str) {
    let text = text.trim();
    if !text.is_empty() {
        out.push(text.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_comments_are_told_from_anything_read_as_code() {
        assert!(is_only_comments("# a\n# b `x` (y)\n\n"));
        assert!(!is_only_comments("# a"), "what follows would join the comment");
        assert!(!is_only_comments("# a\nb = 1\n"));
        assert!(!is_only_comments("/* a\n"));
        assert!(!is_only_comments("# a\rb = 1\n"));
        assert!(!is_only_comments(" # a\n"));
        // What it accepts, the parser reads as nothing but comments.
        for text in ["# a\n", "# a\n\n# b `c` \"d\" ${e} %{f}\n\n", "#\n"] {
            assert!(is_only_comments(text) && parse(text).is_ok_and(|body| body.is_empty()), "{text:?}");
        }
    }

    #[test]
    fn reports_line_and_column() {
        let err = check("a = 1\nb = \n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(check("resource \"x\" \"y\" {\n  a = [1, 2]\n}\n").is_ok());
    }

    #[test]
    fn finds_the_template_line() {
        let template = "resource \"a\" \"b\" {\n  name = \"{{ x }}-vpc\"\n  size = {{ n }}\n}\n";
        assert_eq!(guess_template_line(template, "  name = \"prod-vpc\""), Some(2));
        assert_eq!(guess_template_line(template, "  size = 3 3"), Some(3));
        assert_eq!(guess_template_line(template, "nothing like it"), None);
    }
}
