//! `stamp diff` reports: text for a terminal, markdown for a pull request, JSON for machines.
//! Every value is escaped for its format.

use serde_json::Value;

use super::markdown::{code_cell, code_span, escape_html, escape_markdown, fenced};
use crate::ops::diff::Diff;
use crate::text::one_line;

fn value_text(value: Option<&Value>) -> String {
    match value {
        None => "(absent)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

pub fn text(diff: &Diff) -> String {
    let mut out = format!("--- {}\n+++ {}\n", one_line(&diff.a), one_line(&diff.b));
    if diff.identical() {
        out.push_str("identical\n");
        return out;
    }
    match &diff.version {
        Some((a, b)) => out.push_str(&format!("\nversion: {} -> {}\n", one_line(a), one_line(b))),
        None => out.push_str("\nversion: the same\n"),
    }
    if !diff.config.is_empty() {
        out.push_str("\nconfig:\n");
        for change in &diff.config {
            let show = |v: Option<&Value>| one_line(&value_text(v)).into_owned();
            let path = one_line(&change.path);
            let line = match (&change.a, &change.b) {
                (None, b) => format!("  + {path}: {}\n", show(b.as_ref())),
                (a, None) => format!("  - {path}: {}\n", show(a.as_ref())),
                (a, b) => format!("  ~ {path}: {} -> {}\n", show(a.as_ref()), show(b.as_ref())),
            };
            out.push_str(&line);
        }
    }
    if !diff.files.is_empty() {
        out.push_str("\nrendered Terraform:\n");
        // Each line escaped: a file's name or text may hold what must not reach a terminal
        // (an escape sequence, a text-direction override, a line break in a name).
        for file in &diff.files {
            for line in file.unified.lines() {
                out.push_str(&one_line(line));
                out.push('\n');
            }
        }
    }
    out
}

pub fn markdown(diff: &Diff) -> String {
    let mut out = format!("### Stamp diff: {} vs {}\n\n", code_span(&diff.a), code_span(&diff.b));
    if diff.identical() {
        out.push_str("Identical.\n");
        return out;
    }
    if let Some((a, b)) = &diff.version {
        out.push_str(&format!("**Version:** {} -> {}\n\n", code_span(a), code_span(b)));
    }
    if !diff.config.is_empty() {
        out.push_str("| config | a | b |\n|---|---|---|\n");
        for change in &diff.config {
            let cell = |v: Option<&Value>| escape_markdown(&value_text(v));
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                code_cell(&change.path),
                cell(change.a.as_ref()),
                cell(change.b.as_ref())
            ));
        }
        out.push('\n');
    }
    for file in &diff.files {
        out.push_str(&format!(
            "<details><summary><code>{}</code> ({:?})</summary>\n\n{}\n</details>\n\n",
            escape_html(&file.path),
            file.status,
            fenced("diff", &file.unified)
        ));
    }
    out
}

pub fn json(diff: &Diff) -> String {
    format!("{}\n", serde_json::to_string_pretty(diff).expect("json"))
}
