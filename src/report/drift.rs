//! Drift reports: a terminal table, markdown, JSON, and a self-contained HTML page (one row per
//! environment, colour for status, expandable details; no scripts, no network).

use std::fmt::Write as _;

use super::markdown::{code_cell, escape_html as escape, escape_markdown};
use crate::ops::drift::{AccountDrift, DriftReport};
use crate::text::one_line;

fn deployed(a: &AccountDrift) -> String {
    a.deployed.clone().unwrap_or_else(|| "never deployed".into())
}

fn behind(a: &AccountDrift) -> String {
    a.commits_behind.map_or_else(|| "-".into(), |n| n.to_string())
}

fn live(a: &AccountDrift) -> &'static str {
    match a.live_drift {
        Some(true) => "drifted",
        Some(false) => "none",
        None => "unknown",
    }
}

fn parity(a: &AccountDrift) -> String {
    if a.parity.is_empty() { "ok".into() } else { format!("{} difference(s)", a.parity.len()) }
}

fn value(v: Option<&serde_json::Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The terminal table, then details for accounts that need attention.
pub fn text(report: &DriftReport) -> String {
    let header = ["ACCOUNT", "ENVIRONMENT", "STATUS", "DEPLOYED", "CURRENT", "BEHIND", "LIVE DRIFT", "PARITY"];
    let rows: Vec<[String; 8]> = report
        .accounts
        .iter()
        .map(|a| {
            [
                a.account.clone(),
                one_line(&a.environment).into_owned(),
                a.status().to_string(),
                one_line(&deployed(a)).into_owned(),
                one_line(&a.current).into_owned(),
                behind(a),
                live(a).to_string(),
                parity(a),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (cell, w) in cells.iter().zip(widths) {
            let _ = write!(text, "{cell:<w$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    for a in &report.accounts {
        let lines = details(report, a);
        if !lines.is_empty() {
            let _ = writeln!(out, "\n{}:", a.account);
            for line in &lines {
                let _ = writeln!(out, "  {}", one_line(line));
            }
        }
    }
    out
}

/// What needs attention in an account, one line each: live drift, parity issues, notes.
fn details(report: &DriftReport, a: &AccountDrift) -> Vec<String> {
    let reference = report.reference.as_deref().unwrap_or("the reference");
    let drift = a.drifted.iter().map(|change| format!("live drift: {change}"));
    let parity = a.parity.iter().map(|issue| {
        format!(
            "parity: {} is {} here, {} in {reference}",
            issue.path,
            value(issue.value.as_ref()),
            value(issue.reference.as_ref())
        )
    });
    let notes = a.notes.iter().map(|note| format!("note: {note}"));
    drift.chain(parity).chain(notes).collect()
}

pub fn markdown(report: &DriftReport) -> String {
    let mut out = String::from(
        "### Stamp drift report\n\n| account | environment | status | deployed | current | behind | live drift | parity |\n|---|---|---|---|---|--:|---|---|\n",
    );
    for a in &report.accounts {
        let _ = writeln!(
            out,
            "| {} | {} | **{}** | {} | {} | {} | {} | {} |",
            escape_markdown(&a.account),
            escape_markdown(&a.environment),
            a.status(),
            code_cell(&deployed(a)),
            code_cell(&a.current),
            behind(a),
            live(a),
            escape_markdown(&parity(a))
        );
    }
    for a in &report.accounts {
        let lines = details(report, a);
        if !lines.is_empty() {
            let _ = writeln!(
                out,
                "
<details><summary><b>{}</b></summary>
",
                escape(&a.account)
            );
            for line in &lines {
                let _ = writeln!(out, "- {}", escape_markdown(line));
            }
            out.push_str(
                "
</details>
",
            );
        }
    }
    out
}

pub fn json(report: &DriftReport) -> String {
    #[derive(serde::Serialize)]
    struct WithStatus<'a> {
        #[serde(flatten)]
        account: &'a AccountDrift,
        status: &'a str,
    }
    let accounts: Vec<WithStatus<'_>> =
        report.accounts.iter().map(|a| WithStatus { account: a, status: a.status() }).collect();
    let value = serde_json::json!({ "reference": report.reference, "accounts": accounts });
    format!("{}\n", serde_json::to_string_pretty(&value).expect("json"))
}

/// CSS class (and colour) of a status.
fn class(status: &str) -> &'static str {
    match status {
        "in sync" => "ok",
        "behind" => "behind",
        "drifted" => "drifted",
        "never deployed" => "never",
        _ => "unknown",
    }
}

/// A self-contained page: inline CSS, no scripts, viewable offline.
pub fn html(report: &DriftReport) -> String {
    let mut rows = String::new();
    for a in &report.accounts {
        let status = a.status();
        let details = details(report, a).iter().fold(String::new(), |mut list, line| {
            let _ = write!(list, "<li>{}</li>", escape(line));
            list
        });
        let details = if details.is_empty() {
            "&ndash;".to_string()
        } else {
            format!("<details><summary>details</summary><ul>{details}</ul></details>")
        };
        let _ = writeln!(
            rows,
            "<tr class=\"{cls}\"><td>{account}</td><td>{env}</td><td><span class=\"status {cls}\">{status}</span></td><td><code>{deployed}</code></td><td><code>{current}</code></td><td class=\"num\">{behind}</td><td>{live}</td><td>{parity}</td><td>{details}</td></tr>",
            cls = class(status),
            account = escape(&a.account),
            env = escape(&a.environment),
            deployed = escape(&deployed(a)),
            current = escape(&a.current),
            behind = behind(a),
            live = live(a),
            parity = escape(&parity(a)),
        );
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Stamp drift report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .5rem .75rem; border-bottom: 1px solid #d0d7de; vertical-align: top; }}
th {{ background: #f6f8fa; }}
td.num {{ text-align: right; }}
.status {{ display: inline-block; padding: .1rem .6rem; border-radius: 1rem; font-weight: 600; color: #fff; }}
.status.ok {{ background: #1a7f37; }}
.status.behind {{ background: #bf8700; }}
.status.drifted {{ background: #cf222e; }}
.status.never {{ background: #6e7781; }}
.status.unknown {{ background: #8250df; }}
code {{ font-size: .85em; }}
</style>
</head>
<body>
<h1>Stamp drift report</h1>
<p>Reference account: {reference}. {count} environment(s).</p>
<table id="drift">
<thead><tr><th>Account</th><th>Environment</th><th>Status</th><th>Deployed</th><th>Current</th><th>Commits behind</th><th>Live drift</th><th>Parity</th><th>Details</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
</body>
</html>
"#,
        reference = escape(report.reference.as_deref().unwrap_or("none")),
        count = report.accounts.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::drift::ParityIssue;

    fn hostile() -> DriftReport {
        let evil = "prod\n| x | y |\n<img src=x onerror=alert(1)>\u{1b}[2J`";
        DriftReport {
            reference: Some("production".into()),
            accounts: vec![AccountDrift {
                account: "qa".into(),
                environment: evil.into(),
                archetype: "a".into(),
                deployed: Some(format!("1.0.0+{evil}")),
                deployed_commit: None,
                current: "1.0.0|x".into(),
                commits_behind: None,
                live_drift: None,
                drifted: vec![evil.into()],
                parity: vec![ParityIssue {
                    path: "tags.Env".into(),
                    reference: Some(serde_json::json!("ok")),
                    value: Some(serde_json::json!(evil)),
                }],
                notes: vec![evil.into()],
                state_read: true,
            }],
        }
    }

    #[test]
    fn every_format_escapes_every_value() {
        let report = hostile();
        let markdown = markdown(&report);
        let table: Vec<&str> = markdown.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(table.len(), 3, "one header, one rule, one row:\n{markdown}");
        let cells = table[2].replace("\\|", "").matches('|').count();
        assert_eq!(cells, 9, "eight cells:\n{markdown}");
        // A tag survives only inside the code span of the deployed version, where markdown
        // shows it as text.
        let raw_tags = markdown.match_indices('<').filter(|(i, _)| !markdown[..*i].ends_with('\\')).count();
        let own_tags = markdown.matches("<details>").count() * 2 + markdown.matches("<summary>").count() * 4;
        assert_eq!(raw_tags, own_tags + 1, "{markdown}");
        assert!(!markdown.contains('\u{1b}'), "{markdown}");
        let html = html(&report);
        assert!(!html.contains("<img") && !html.contains('\u{1b}'), "{html}");
        let text = text(&report);
        assert!(!text.contains('\u{1b}') && !text.lines().any(|l| l.starts_with("| x")), "{text}");
        let json: serde_json::Value = serde_json::from_str(&json(&report)).unwrap();
        assert_eq!(json["accounts"][0]["environment"], report.accounts[0].environment);
    }
}
