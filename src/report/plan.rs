//! Plan reports: what `stamp plan` (and `apply`, `destroy`) found for each account, as a
//! terminal summary, a pull-request comment (markdown) and JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::markdown::{code_span, escape_html, escape_markdown, fenced};
pub use crate::ops::plan_report::{AccountPlan, PlanOutcome, PlanReport, PlanTotals, PolicyResult};
use crate::pipeline::findings::Finding;
use crate::terraform::plan::{Action, PlanSummary, ResourceChange};

/// `Stamp plan`, `Stamp destroy plan`.
fn title(report: &PlanReport) -> String {
    match report.operation.as_str() {
        "plan" | "" => "Stamp plan".to_owned(),
        operation => format!("Stamp {operation} plan"),
    }
}

/// `3 accounts: 1 with changes, 1 unchanged, 1 failed`.
fn totals_line(totals: &PlanTotals) -> String {
    let noun = if totals.accounts == 1 { "account" } else { "accounts" };
    let mut line = format!(
        "{} {noun}: {} with changes, {} unchanged, {} failed",
        totals.accounts, totals.with_changes, totals.unchanged, totals.failed
    );
    if totals.policy_blocked > 0 {
        let _ = write!(line, ", {} failed policy checks", totals.policy_blocked);
    }
    line
}

/// `CKV_AWS_144 on aws_s3_bucket.logs (main.tf:12): Ensure ...`, on one line (tools' text is
/// not trusted to be).
fn finding_line(finding: &Finding) -> String {
    strip_ansi(&finding.one_line())
}

/// `2 unwaived findings, 1 waived`, `passed`, `passed, 1 waived`.
fn policy_status(policy: &PolicyResult) -> String {
    if policy.error.is_some() {
        return "ERROR".to_owned();
    }
    let blocking = policy.blocking().count();
    let waived = policy.waived().count();
    let mut out = match blocking {
        0 => "passed".to_owned(),
        1 => "1 unwaived finding".to_owned(),
        n => format!("{n} unwaived findings"),
    };
    if waived > 0 {
        let _ = write!(out, ", {waived} waived");
    }
    out
}

/// The accounts whose policy results get a section: those that failed their checks first,
/// then those that passed with waived findings.
fn policy_sections(report: &PlanReport) -> impl Iterator<Item = &AccountPlan> {
    let shown = || report.accounts.iter().filter(|a| policies_worth_showing(a));
    shown().filter(|a| a.policy_blocked()).chain(shown().filter(|a| !a.policy_blocked()))
}

/// Whether an account's policy checks have anything to show beyond "passed".
fn policies_worth_showing(account: &AccountPlan) -> bool {
    account.policies.iter().any(|p| p.error.is_some() || !p.findings.is_empty())
}

/// `3 to add, 2 to change, 1 to replace, 0 to destroy`, then moves, imports and forgets when
/// there are any.
fn counts(summary: &PlanSummary) -> String {
    let mut out = format!(
        "{} to add, {} to change, {} to replace, {} to destroy",
        summary.count(Action::Create),
        summary.count(Action::Update),
        summary.count(Action::Replace),
        summary.count(Action::Delete)
    );
    for (action, label) in [(Action::Import, "import"), (Action::Move, "move"), (Action::Forget, "forget")] {
        let count = summary.count(action);
        if count > 0 {
            let _ = write!(out, ", {count} to {label}");
        }
    }
    out
}

/// Changes by resource type (types sorted), each type's in plan order.
fn by_type(summary: &PlanSummary) -> BTreeMap<&str, Vec<&ResourceChange>> {
    let mut groups: BTreeMap<&str, Vec<&ResourceChange>> = BTreeMap::new();
    for change in &summary.changes {
        groups.entry(change.resource_type.as_str()).or_default().push(change);
    }
    groups
}

/// What follows an address: `(stateful)`, and the verb where the symbol alone is ambiguous
/// (moves, imports and forgets all show `>`).
fn annotation(change: &ResourceChange) -> String {
    let mut notes = Vec::new();
    if matches!(change.action, Action::Move | Action::Import | Action::Forget) {
        notes.push(change.action.verb());
    }
    if change.stateful {
        notes.push("stateful");
    }
    if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) }
}

/// `will be replaced` / `will be destroyed`, for data-loss warnings.
fn loss(change: &ResourceChange) -> &'static str {
    if change.action == Action::Replace { "will be replaced" } else { "will be destroyed" }
}

/// `throttling 2, network 1`: most retried first, then by name.
fn retries(retries: &BTreeMap<String, u32>) -> Option<String> {
    let mut entries: Vec<(&String, &u32)> = retries.iter().filter(|(_, count)| **count > 0).collect();
    if entries.is_empty() {
        return None;
    }
    entries.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    Some(entries.iter().map(|(category, count)| format!("{category} {count}")).collect::<Vec<_>>().join(", "))
}

/// Terraform's messages may carry colour when it ran without `-no-color`; reports never do.
/// Any other control character (a carriage return that would overwrite the line on screen, a
/// bell, a C1 escape) is written as an escape; line breaks stay.
fn strip_ansi(text: &str) -> String {
    let stripped = strip_colour(text);
    stripped.split('\n').map(crate::text::one_line).collect::<Vec<_>>().join("\n")
}

fn strip_colour(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI sequences (`ESC [ ... final`), where colours live; any other escape drops one char.
        if chars.next_if_eq(&'[').is_some() {
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Text

/// The terminal summary printed by `stamp plan`: one block per account with changes (stateful
/// data loss warned about right under the account's header), then failed accounts, the
/// unchanged accounts on one line, and a total line. Plain text, the same bytes for the same
/// report.
pub fn text(report: &PlanReport) -> String {
    let mut blocks = Vec::new();
    for account in &report.accounts {
        if let Some(summary) = account.changes() {
            blocks.push(text_changes(account, summary));
        }
    }
    for account in &report.accounts {
        if let PlanOutcome::Failed { message, details } = &account.outcome {
            blocks.push(text_failure(account, message, details));
        }
    }
    for account in policy_sections(report) {
        blocks.push(text_policies(account));
    }
    let passed: Vec<&str> = report
        .accounts
        .iter()
        .filter(|a| !a.policies.is_empty() && !policies_worth_showing(a))
        .map(|a| a.account.as_str())
        .collect();
    if !passed.is_empty() {
        blocks.push(format!("policy checks passed: {}\n", passed.join(", ")));
    }
    let unchanged: Vec<&AccountPlan> =
        report.accounts.iter().filter(|a| a.summary().is_some_and(|s| !s.has_changes())).collect();
    if !unchanged.is_empty() {
        let mut block =
            format!("no changes: {}\n", unchanged.iter().map(|a| a.account.as_str()).collect::<Vec<_>>().join(", "));
        for account in unchanged {
            if let Some(retried) = retries(&account.retries) {
                let _ = writeln!(block, "  {} retried: {retried}", account.account);
            }
        }
        blocks.push(block);
    }
    blocks.push(format!("{}\n", totals_line(&report.totals())));
    blocks.join("\n")
}

/// `prod-payments (production, archetype payments, protected)`.
fn text_header(account: &AccountPlan) -> String {
    let protected = if account.protected { ", protected" } else { "" };
    let environment = crate::text::one_line(&account.environment);
    format!("{} ({environment}, archetype {}{protected})", account.account, account.archetype)
}

fn text_changes(account: &AccountPlan, summary: &PlanSummary) -> String {
    let mut out = format!("{}: {}\n", text_header(account), counts(summary));
    for change in summary.stateful_destroys() {
        let _ = writeln!(out, "  WARNING: {} {}: its data would be lost", change.address, loss(change));
    }
    for (resource_type, changes) in by_type(summary) {
        let _ = writeln!(out, "  {resource_type}:");
        for change in changes {
            let _ = writeln!(out, "    {:>3} {}{}", change.action.symbol(), change.address, annotation(change));
        }
    }
    if !summary.output_changes.is_empty() {
        let _ = writeln!(out, "  outputs changed: {}", summary.output_changes.join(", "));
    }
    if let Some(retried) = retries(&account.retries) {
        let _ = writeln!(out, "  retried: {retried}");
    }
    out
}

fn text_failure(account: &AccountPlan, message: &str, details: &[String]) -> String {
    let mut out = format!("{}: FAILED\n", text_header(account));
    indent_into(&mut out, "  ", &strip_ansi(message));
    for detail in details {
        indent_into(&mut out, "    ", &strip_ansi(detail));
    }
    if let Some(retried) = retries(&account.retries) {
        let _ = writeln!(out, "  retried: {retried}");
    }
    if let Some(log) = &account.log {
        let _ = writeln!(out, "  log: {log}");
    }
    out
}

/// An account's policy results: each policy's status, its unwaived findings, its waived ones
/// with who waived them and why, and its error.
fn text_policies(account: &AccountPlan) -> String {
    let verdict = if account.policy_blocked() { "FAILED" } else { "passed" };
    let mut out = format!("{}: policy checks {verdict}\n", text_header(account));
    for policy in &account.policies {
        let _ = writeln!(out, "  {} ({}): {}", crate::text::one_line(&policy.name), policy.on, policy_status(policy));
        if let Some(error) = &policy.error {
            indent_into(&mut out, "    ", &strip_ansi(error));
        }
        for finding in policy.blocking() {
            let _ = writeln!(out, "    FAILED {}", finding_line(finding));
            if let Some(guideline) = &finding.guideline {
                let _ = writeln!(out, "      see {}", crate::text::one_line(guideline));
            }
        }
        for finding in policy.waived() {
            let _ = writeln!(out, "    waived {}", finding_line(finding));
            if let Some(waived) = &finding.waived {
                let _ = writeln!(
                    out,
                    "      reason ({}): {}",
                    waived.by,
                    strip_ansi(&crate::text::one_line(&waived.reason))
                );
            }
        }
    }
    if let Some(log) = account.log.as_ref().filter(|_| account.policy_blocked()) {
        let _ = writeln!(out, "  log: {log}");
    }
    out
}

/// Every line of `text` indented, without trailing spaces on empty lines.
fn indent_into(out: &mut String, indent: &str, text: &str) {
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{indent}{line}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Markdown

/// A pull-request comment: a heading, a table of every account, data-loss warnings in a
/// `> [!WARNING]` alert, then a collapsible section per account with changes, the unchanged
/// accounts on one line, and a section per failed account with its message in a code block.
///
/// Changes are listed in ```` ```diff ```` blocks so that GitHub colours them. Diff looks at
/// the first character of a line, so the prefixes are diff's where Terraform's would mean
/// nothing to it:
///
/// | prefix | action                               | why                                    |
/// |--------|--------------------------------------|----------------------------------------|
/// | `+`    | create                               | an added line: green                   |
/// | `-`    | destroy                              | a removed line: red                    |
/// | `-/+`  | replace                              | Terraform's; red, as the object is destroyed |
/// | `!`    | update in place                      | diff's "changed line" (Terraform's `~` is no diff marker) |
/// | ` <=`  | read                                 | a context line: plain                  |
/// | ` >`   | move, import, forget (verb follows)  | a context line: plain                  |
///
/// Each resource type starts with a `# type` line; addresses keep Terraform's plan order.
///
/// The result is at most `max_chars` characters (GitHub's limit is 65,536). When the whole
/// comment is longer, the heading, table and warnings stay, then as many sections as fit, and a
/// note says how many account sections were left out and where the full report is
/// (`full_report_path`). Sections are kept or left out whole, so no code block or `<details>`
/// element is ever cut.
pub fn markdown(report: &PlanReport, max_chars: usize, full_report_path: Option<&str>) -> String {
    let heading = format!("### {}\n\n{}\n", title(report), totals_line(&report.totals()));
    let table = markdown_table(report);
    let warnings = markdown_warnings(report);
    let sections = markdown_sections(report);

    let head: Vec<&str> =
        [heading.as_str(), table.as_str(), warnings.as_str()].into_iter().filter(|b| !b.is_empty()).collect();
    let whole = join_blocks(head.iter().copied().chain(sections.iter().map(|s| s.text.as_str())));
    if chars(&whole) <= max_chars {
        return whole;
    }
    truncated_markdown(&heading, &table, &warnings, &sections, max_chars, full_report_path)
}

/// A section after the table: one account's changes or failure, or the unchanged accounts.
struct Section {
    text: String,
    /// Counted as an account section in the truncation note (the unchanged line is not).
    account: bool,
}

fn markdown_table(report: &PlanReport) -> String {
    if report.accounts.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "| account | environment | add | change | replace | destroy | status |\n\
         |---|---|--:|--:|--:|--:|---|\n",
    );
    for account in &report.accounts {
        out.push_str(&table_row(account));
    }
    out
}

fn table_row(account: &AccountPlan) -> String {
    let name = if account.protected {
        format!("{} (protected)", escape_markdown(&account.account))
    } else {
        escape_markdown(&account.account)
    };
    let environment = escape_markdown(&account.environment);
    match account.summary() {
        None => format!("| {name} | {environment} | - | - | - | - | **failed** |\n"),
        Some(summary) => {
            let status = if !summary.has_changes() {
                "no changes"
            } else if summary.stateful_destroys().next().is_some() {
                "changes, **data loss**"
            } else {
                "changes"
            };
            let status = if account.policy_blocked() {
                format!("{status}, **policy checks failed**")
            } else {
                status.to_owned()
            };
            format!(
                "| {name} | {environment} | {} | {} | {} | {} | {status} |\n",
                summary.count(Action::Create),
                summary.count(Action::Update),
                summary.count(Action::Replace),
                summary.count(Action::Delete),
            )
        }
    }
}

/// One alert listing every stateful resource that would lose its data.
fn markdown_warnings(report: &PlanReport) -> String {
    let mut lines = Vec::new();
    for account in &report.accounts {
        let Some(summary) = account.summary() else { continue };
        for change in summary.stateful_destroys() {
            let protected = if account.protected { ", protected" } else { "" };
            lines.push(format!(
                "> - {} ({}{protected}): {} {}",
                code_span(&account.account),
                escape_markdown(&account.environment),
                code_span(&change.address),
                loss(change)
            ));
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "> [!WARNING]\n> These changes destroy stateful resources: their data would be lost.\n>\n{}\n",
        lines.join("\n")
    )
}

fn markdown_sections(report: &PlanReport) -> Vec<Section> {
    let mut sections = Vec::new();
    for account in &report.accounts {
        if let Some(summary) = account.changes() {
            sections.push(Section { text: markdown_changes(account, summary), account: true });
        }
    }
    let unchanged: Vec<String> = report
        .accounts
        .iter()
        .filter(|a| a.summary().is_some_and(|s| !s.has_changes()))
        .map(|a| code_span(&a.account))
        .collect();
    if !unchanged.is_empty() {
        sections.push(Section { text: format!("**No changes:** {}\n", unchanged.join(", ")), account: false });
    }
    for account in &report.accounts {
        if let PlanOutcome::Failed { message, details } = &account.outcome {
            sections.push(Section { text: markdown_failure(account, message, details), account: true });
        }
    }
    for account in policy_sections(report) {
        sections.push(Section { text: markdown_policies(account), account: true });
    }
    let passed: Vec<String> = report
        .accounts
        .iter()
        .filter(|a| !a.policies.is_empty() && !policies_worth_showing(a))
        .map(|a| code_span(&a.account))
        .collect();
    if !passed.is_empty() {
        sections.push(Section { text: format!("**Policy checks passed:** {}\n", passed.join(", ")), account: false });
    }
    sections
}

/// An account's policy results as a list: unwaived findings first (bold), then waived ones
/// with who waived them and why; a policy's error in a code block.
fn markdown_policies(account: &AccountPlan) -> String {
    let verdict = if account.policy_blocked() { "Policy checks failed" } else { "Policy checks passed" };
    let mut out =
        format!("**{verdict}:** {} ({})\n\n", code_span(&account.account), escape_markdown(&account.environment));
    let mut errors = Vec::new();
    for policy in &account.policies {
        let name = format!("{} ({})", code_span(&policy.name), policy.on);
        if let Some(error) = &policy.error {
            let _ = writeln!(out, "- **error** {name}: see below");
            let mut body = String::new();
            indent_into(&mut body, "", &strip_ansi(error));
            errors.push(format!("{name}:\n\n{}", fenced("text", &body)));
        }
        for finding in policy.blocking() {
            let _ = writeln!(out, "- **failed** {name}: {}", markdown_finding(finding));
        }
        for finding in policy.waived() {
            let reason = finding.waived.as_ref().map_or_else(String::new, |w| {
                format!(" — waived ({}): {}", w.by, escape_markdown(&crate::text::one_line(&w.reason)))
            });
            let _ = writeln!(out, "- waived {name}: {}{reason}", markdown_finding(finding));
        }
        if policy.error.is_none() && policy.findings.is_empty() {
            let _ = writeln!(out, "- passed {name}");
        }
    }
    for error in errors {
        out.push('\n');
        out.push_str(&error);
    }
    out
}

/// `` `CKV_AWS_144` on `aws_s3_bucket.logs` (`main.tf:12`): Ensure ... ``
fn markdown_finding(finding: &Finding) -> String {
    let mut out = code_span(&crate::text::one_line(&finding.id));
    if let Some(resource) = &finding.resource {
        let _ = write!(out, " on {}", code_span(&crate::text::one_line(resource)));
    }
    if let Some(place) = finding.place() {
        let _ = write!(out, " ({})", code_span(&crate::text::one_line(&place)));
    }
    if !finding.title.trim().is_empty() {
        let _ = write!(out, ": {}", escape_markdown(&strip_ansi(&crate::text::one_line(finding.title.trim()))));
    }
    out
}

/// The prefix of a change's line in a ```` ```diff ```` block; see [`markdown`].
fn diff_prefix(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Delete => "-",
        Action::Replace => "-/+",
        Action::Update => "!",
        Action::Read => " <=",
        Action::Move | Action::Import | Action::Forget => " >",
    }
}

fn markdown_changes(account: &AccountPlan, summary: &PlanSummary) -> String {
    let protected = if account.protected { ", protected" } else { "" };
    let mut diff = String::new();
    for (resource_type, changes) in by_type(summary) {
        let _ = writeln!(diff, "# {resource_type}");
        for change in changes {
            let _ = writeln!(diff, "{:<3} {}{}", diff_prefix(change.action), change.address, annotation(change));
        }
    }
    let mut out = format!(
        "<details><summary><b>{}</b> ({}{protected}): {}</summary>\n\n",
        escape_html(&account.account),
        escape_html(&account.environment),
        counts(summary)
    );
    if !diff.is_empty() {
        out.push_str(&fenced("diff", &diff));
        out.push('\n');
    }
    let mut notes = Vec::new();
    if !summary.output_changes.is_empty() {
        let outputs: Vec<String> = summary.output_changes.iter().map(|o| code_span(o)).collect();
        notes.push(format!("- outputs changed: {}", outputs.join(", ")));
    }
    if let Some(retried) = retries(&account.retries) {
        notes.push(format!("- retried: {}", escape_markdown(&retried)));
    }
    if !notes.is_empty() {
        let _ = write!(out, "{}\n\n", notes.join("\n"));
    }
    out.push_str("</details>\n");
    out
}

fn markdown_failure(account: &AccountPlan, message: &str, details: &[String]) -> String {
    let mut out = format!("**Failed:** {} ({})", code_span(&account.account), escape_markdown(&account.environment));
    if let Some(log) = &account.log {
        let _ = write!(out, ", log {}", code_span(log));
    }
    if let Some(retried) = retries(&account.retries) {
        let _ = write!(out, ", retried: {}", escape_markdown(&retried));
    }
    out.push_str("\n\n");
    let mut body = String::new();
    indent_into(&mut body, "", &strip_ansi(message));
    for detail in details {
        indent_into(&mut body, "  ", &strip_ansi(detail));
    }
    out.push_str(&fenced("text", &body));
    out
}

fn truncated_markdown(
    heading: &str,
    table: &str,
    warnings: &str,
    sections: &[Section],
    max_chars: usize,
    full_report_path: Option<&str>,
) -> String {
    let account_sections = sections.iter().filter(|s| s.account).count();
    // The longest note this comment could need: every section left out, table and warnings cut.
    let reserve = chars(&truncation_note(account_sections, true, true, max_chars, full_report_path)) + 2;
    let budget = max_chars.saturating_sub(reserve);

    // The head should fit whole; when even it does not (thousands of accounts), the heading
    // stays, then as many warnings and table rows as fit, warnings first.
    let mut cut = false;
    let mut head = vec![heading.to_owned()];
    let used = |blocks: &[String]| chars(&join_blocks(blocks.iter().map(String::as_str)));
    let whole_head =
        [heading, table, warnings].iter().filter(|b| !b.is_empty()).map(|b| (*b).to_owned()).collect::<Vec<_>>();
    if used(&whole_head) <= budget {
        head = whole_head;
    } else {
        cut = true;
        let more_rows = |n| format!("| ({n} more accounts not shown) | | | | | | |\n");
        let left = budget.saturating_sub(used(&head) + 2);
        let smallest_table = smallest_fit(table, 2, more_rows);
        let warnings =
            fit_lines(warnings, 3, left.saturating_sub(smallest_table + 1), |n| format!(">\n> ({n} more not shown)\n"));
        let left = left.saturating_sub(chars(&warnings) + 1);
        let table = fit_lines(table, 2, left, more_rows);
        head.extend([table, warnings].into_iter().filter(|b| !b.is_empty()));
    }

    let mut size = used(&head);
    let mut kept = Vec::new();
    let mut left_out = 0;
    let mut unchanged_left_out = false;
    for section in sections {
        let grown = size + 1 + chars(&section.text);
        if grown <= budget {
            size = grown;
            kept.push(section.text.clone());
        } else if section.account {
            left_out += 1;
        } else {
            unchanged_left_out = true;
        }
    }
    let note = truncation_note(left_out, cut, unchanged_left_out, max_chars, full_report_path);
    let mut out = join_blocks(head.iter().chain(&kept).map(String::as_str).chain([note.as_str()]));
    if chars(&out) > max_chars {
        // Only when `max_chars` is too small for even the heading and the note.
        out = out.chars().take(max_chars).collect();
    }
    out
}

/// The lines of `block` that fit in `budget` characters: its first `keep` lines (a table's
/// header, an alert's title), then whole lines, then `more(n)` for the `n` left out. Nothing
/// when not even the first lines and `more` fit.
fn fit_lines(block: &str, keep: usize, budget: usize, more: impl Fn(usize) -> String) -> String {
    if chars(block) <= budget {
        return block.to_owned();
    }
    let lines: Vec<&str> = block.lines().collect();
    let reserve = chars(&more(lines.len()));
    let mut out = String::new();
    let mut shown = 0;
    for (index, line) in lines.iter().enumerate() {
        if chars(&out) + chars(line) + 1 + reserve > budget {
            if index < keep {
                return String::new();
            }
            break;
        }
        out.push_str(line);
        out.push('\n');
        shown += 1;
    }
    out.push_str(&more(lines.len() - shown));
    out
}

/// The size of the smallest cut of `block` that [`fit_lines`] gives.
fn smallest_fit(block: &str, keep: usize, more: impl Fn(usize) -> String) -> usize {
    let lines: Vec<&str> = block.lines().collect();
    if lines.len() <= keep {
        return chars(block);
    }
    lines[..keep].iter().map(|line| chars(line) + 1).sum::<usize>() + chars(&more(lines.len()))
}

fn truncation_note(
    left_out: usize,
    head_cut: bool,
    unchanged_left_out: bool,
    max_chars: usize,
    full_report_path: Option<&str>,
) -> String {
    let noun = if left_out == 1 { "section" } else { "sections" };
    let mut out = format!(
        "> [!NOTE]\n> This comment was shortened to fit in {max_chars} characters: {left_out} account {noun} left out"
    );
    if unchanged_left_out {
        out.push_str(", and the list of unchanged accounts");
    }
    out.push_str(if head_cut {
        "; the table and warnings are incomplete."
    } else {
        "; the table above lists every account."
    });
    if let Some(path) = full_report_path {
        let _ = write!(out, " The full report is in {}.", code_span(path));
    }
    out.push('\n');
    out
}

/// Blocks separated by blank lines; each block ends with a newline.
fn join_blocks<'a>(blocks: impl IntoIterator<Item = &'a str>) -> String {
    blocks.into_iter().filter(|b| !b.is_empty()).collect::<Vec<_>>().join("\n")
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

// ---------------------------------------------------------------------------------------------
// JSON

/// The report as JSON for machines (`stamp plan --format json`), pretty-printed and ending with a
/// newline. The interface is stable: fields are only ever added, never renamed or removed.
///
/// ```text
/// {
///   "operation": "plan",            // or "destroy"
///   "accounts": [                   // in the order the accounts ran
///     {
///       "account": "prod-payments",
///       "environment": "production",
///       "archetype": "payments",
///       "protected": true,
///       "version": "1.2.0+abc123",  // the environment version the plan would deploy
///       "outcome": {
///         "status": "planned",      // or "failed", with "message" and "details" (strings)
///         "summary": {
///           "changes": [            // in Terraform's order
///             { "address": "...", "resource_type": "...",
///               "action": "create", // update, replace, delete, read, move, import, forget
///               "stateful": false } // true: a delete or replace loses data
///           ],
///           "output_changes": ["..."],
///           "terraform_version": "1.15.5"   // or null
///         }
///       },
///       "retries": { "throttling": 2 },     // transient failures retried, by category
///       "elapsed_ms": 41250,
///       "log": ".stamp/logs/prod-payments/plan.log",  // or null
///       "policies": [               // only when policies are declared, in the order they ran
///         { "name": "checkov", "on": "tree",          // or "plan"
///           "error": null,          // or why it gave no findings (it blocks apply)
///           "findings": [
///             { "id": "CKV_AWS_144", "title": "...", "resource": "aws_s3_bucket.logs",
///               "file": "main.tf", "line": 12, "severity": null, "guideline": "https://...",
///               "waived": null }    // or { "by": "account" | "inline", "reason": "..." }
///           ] }
///       ]
///     }
///   ],
///   "totals": { ... }               // see `PlanTotals`; `policy_blocked` only when not 0
/// }
/// ```
pub fn json(report: &PlanReport) -> String {
    /// The report with its totals; `operation` and `accounts` are the report's own fields.
    #[derive(Serialize)]
    struct Json<'a> {
        operation: &'a str,
        accounts: &'a [AccountPlan],
        totals: PlanTotals,
    }
    let mut out = serde_json::to_string_pretty(&Json {
        operation: &report.operation,
        accounts: &report.accounts,
        totals: report.totals(),
    })
    .expect("plan reports serialise");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn tool_text_cannot_move_the_cursor() {
        let text = strip_ansi("boom\r    all good, policy passed\n\u{1b}[31mred\u{1b}[0m \u{9b}2J\u{7}");
        assert_eq!(text, "boom\\r    all good, policy passed\nred \\u{9b}2J\\u{7}");
    }

    use super::*;

    fn change(address: &str, resource_type: &str, action: Action, stateful: bool) -> ResourceChange {
        ResourceChange {
            address: address.to_owned(),
            resource_type: resource_type.to_owned(),
            action,
            stateful,
            unprotected_move: false,
        }
    }

    fn account(name: &str, environment: &str, outcome: PlanOutcome) -> AccountPlan {
        AccountPlan {
            account: name.to_owned(),
            environment: environment.to_owned(),
            archetype: "payments".to_owned(),
            protected: false,
            version: "1.4.0+3f2a9c1".to_owned(),
            outcome,
            retries: BTreeMap::new(),
            elapsed_ms: 12_000,
            log: Some(format!(".stamp/logs/{name}/plan.log")),
            policies: Vec::new(),
        }
    }

    fn planned(changes: Vec<ResourceChange>, output_changes: &[&str]) -> PlanOutcome {
        PlanOutcome::Planned {
            summary: PlanSummary {
                changes,
                output_changes: output_changes.iter().map(|o| (*o).to_owned()).collect(),
                terraform_version: Some("1.15.5".to_owned()),
            },
        }
    }

    /// A production account replacing its orders database among other changes, two unchanged
    /// accounts and one that failed.
    fn report() -> PlanReport {
        let mut production = account(
            "prod-payments",
            "production",
            planned(
                vec![
                    change("data.aws_caller_identity.me", "aws_caller_identity", Action::Read, false),
                    change(r#"aws_db_instance.this["orders"]"#, "aws_db_instance", Action::Replace, true),
                    change(r#"aws_db_instance.this["ledger"]"#, "aws_db_instance", Action::Update, true),
                    change("aws_s3_bucket.raw", "aws_s3_bucket", Action::Create, true),
                    change("aws_iam_role.reader", "aws_iam_role", Action::Create, false),
                    change("aws_iam_role_policy.reader", "aws_iam_role_policy", Action::Create, false),
                    change("aws_security_group.db", "aws_security_group", Action::Update, false),
                    change(
                        "module.cdn.aws_cloudfront_distribution.this",
                        "aws_cloudfront_distribution",
                        Action::Update,
                        false,
                    ),
                    change("aws_cloudwatch_log_group.legacy", "aws_cloudwatch_log_group", Action::Delete, false),
                ],
                &["db_endpoint", "raw_bucket_arn"],
            ),
        );
        production.protected = true;
        production.retries = BTreeMap::from([("network".to_owned(), 1), ("throttling".to_owned(), 2)]);

        let staging = account("staging-payments", "staging", planned(Vec::new(), &[]));
        let mut sandbox = account(
            "dev-sandbox",
            "development",
            planned(vec![change("data.aws_region.current", "aws_region", Action::Read, false)], &[]),
        );
        sandbox.retries = BTreeMap::from([("network".to_owned(), 1)]);

        let mut dns = account(
            "shared-dns",
            "shared",
            PlanOutcome::Failed {
                message: "`terraform plan` failed with exit code 1".to_owned(),
                details: vec![
                    "Error: reading Route 53 Hosted Zone (Z0123456789): AccessDenied: not authorized to perform: \
                     route53:GetHostedZone"
                        .to_owned(),
                    "  with aws_route53_zone.main,\n  on main.tf line 12, in resource \"aws_route53_zone\" \"main\":"
                        .to_owned(),
                ],
            },
        );
        dns.archetype = "dns".to_owned();
        dns.retries = BTreeMap::from([("network".to_owned(), 3)]);

        PlanReport {
            operation: "plan".to_owned(),
            accounts: vec![production, staging, dns, sandbox],
            warnings: Vec::new(),
        }
    }

    #[test]
    fn text_summary() {
        insta::assert_snapshot!("text", text(&report()));
    }

    #[test]
    fn markdown_comment() {
        insta::assert_snapshot!("markdown", markdown(&report(), 65_000, Some("stamp-plan.md")));
    }

    #[test]
    fn json_report() {
        insta::assert_snapshot!("json", json(&report()));
    }

    #[test]
    fn markdown_heading_names_the_operation() {
        let report = PlanReport { operation: "destroy".to_owned(), ..report() };
        assert!(markdown(&report, 65_000, None).starts_with("### Stamp destroy plan\n"));
    }

    #[test]
    fn unchanged_accounts_share_one_line() {
        let text = text(&report());
        let lines: Vec<&str> =
            text.lines().filter(|l| l.contains("staging-payments") || l.contains("dev-sandbox")).collect();
        assert_eq!(lines[0], "no changes: staging-payments, dev-sandbox");
        assert_eq!(text.lines().filter(|l| l.starts_with("no changes")).count(), 1);

        let markdown = markdown(&report(), 65_000, None);
        let lines: Vec<&str> = markdown.lines().filter(|l| l.starts_with("**No changes:**")).collect();
        assert_eq!(lines, ["**No changes:** `staging-payments`, `dev-sandbox`"]);
    }

    #[test]
    fn exit_codes_follow_detailed_exitcode() {
        let full = report();
        assert_eq!(full.exit_code(), 1);

        let without_failures =
            PlanReport { accounts: full.accounts.iter().filter(|a| !a.failed()).cloned().collect(), ..full.clone() };
        assert_eq!(without_failures.exit_code(), 2);

        // Reads alone are no change.
        let unchanged = PlanReport {
            warnings: Vec::new(),
            accounts: full.accounts.iter().filter(|a| a.summary().is_some_and(|s| !s.has_changes())).cloned().collect(),
            ..full.clone()
        };
        assert_eq!(unchanged.accounts.len(), 2);
        assert_eq!(unchanged.exit_code(), 0);

        assert_eq!(
            PlanReport { operation: "plan".to_owned(), accounts: Vec::new(), warnings: Vec::new() }.exit_code(),
            0
        );
    }

    #[test]
    fn totals_count_accounts_and_changes() {
        let totals = report().totals();
        assert_eq!(
            totals,
            PlanTotals {
                accounts: 4,
                with_changes: 1,
                unchanged: 2,
                failed: 1,
                add: 3,
                change: 3,
                replace: 1,
                destroy: 1,
                stateful_destroys: 1,
                policy_blocked: 0,
            }
        );
    }

    #[test]
    fn markdown_escapes_names_and_code() {
        let report = PlanReport {
            operation: "plan".to_owned(),
            warnings: Vec::new(),
            accounts: vec![account(
                "team|a_*b*",
                "prod<1>",
                planned(vec![change("aws_s3_bucket.x[\"a`b\"]", "aws_s3_bucket", Action::Delete, true)], &[]),
            )],
        };
        let markdown = markdown(&report, 65_000, None);
        assert!(markdown.contains("| team\\|a\\_\\*b\\* | prod\\<1\\> |"), "{markdown}");
        assert!(markdown.contains("<b>team|a_*b*</b> (prod&lt;1&gt;)"), "{markdown}");
        assert!(markdown.contains("``aws_s3_bucket.x[\"a`b\"]`` will be destroyed"), "{markdown}");
    }

    #[test]
    fn text_and_markdown_drop_colour_codes() {
        let report = PlanReport {
            operation: "plan".to_owned(),
            warnings: Vec::new(),
            accounts: vec![account(
                "a",
                "e",
                PlanOutcome::Failed { message: "\u{1b}[31mError:\u{1b}[0m boom".to_owned(), details: Vec::new() },
            )],
        };
        assert!(text(&report).contains("  Error: boom\n"));
        assert!(markdown(&report, 65_000, None).contains("\nError: boom\n"));
    }

    /// `accounts` accounts, each with `changes` changes across a few resource types.
    fn large_report(accounts: usize, changes: usize) -> PlanReport {
        let types = ["aws_s3_bucket", "aws_iam_role", "aws_security_group", "aws_lambda_function", "aws_db_instance"];
        let accounts = (0..accounts)
            .map(|i| {
                let changes = (0..changes)
                    .map(|j| {
                        let resource_type = types[j % types.len()];
                        let action = [Action::Create, Action::Update, Action::Replace, Action::Delete][j % 4];
                        change(&format!("{resource_type}.this[\"item-{j:03}\"]"), resource_type, action, j == 2)
                    })
                    .collect();
                account(&format!("account-{i:04}"), "production", planned(changes, &["endpoint"]))
            })
            .collect();
        PlanReport { operation: "plan".to_owned(), accounts, warnings: Vec::new() }
    }

    fn assert_well_formed(markdown: &str, max_chars: usize) {
        assert!(markdown.chars().count() <= max_chars, "{} > {max_chars}", markdown.chars().count());
        assert_eq!(markdown.matches("```").count() % 2, 0);
        assert_eq!(markdown.matches("<details>").count(), markdown.matches("</details>").count());
    }

    #[test]
    fn markdown_truncates_whole_sections() {
        let report = large_report(300, 50);
        let markdown = markdown(&report, 65_000, Some(".stamp/reports/plan.md"));
        assert_well_formed(&markdown, 65_000);
        let kept = markdown.matches("<details>").count();
        assert!(kept > 0);
        assert!(
            markdown.contains(&format!("{} account sections left out", 300 - kept)),
            "{}",
            &markdown[markdown.len() - 400..]
        );
        assert!(markdown.contains("The full report is in `.stamp/reports/plan.md`."));
        // The table and warnings stay whole.
        assert!(markdown.contains("| account-0299 | production |"));
        assert!(
            markdown
                .contains("> - `account-0299` (production): `aws_security_group.this[\"item-002\"]` will be replaced")
        );
        assert!(markdown.trim_end().ends_with("`.stamp/reports/plan.md`."));
    }

    #[test]
    fn markdown_truncates_the_table_when_it_must() {
        let report = large_report(3000, 12);
        let comment = markdown(&report, 65_000, None);
        assert_well_formed(&comment, 65_000);
        assert!(comment.contains("| account-0000 | production |"));
        assert!(comment.contains("| (2999 more accounts not shown) |"));
        assert!(comment.contains("(2268 more not shown)"));
        assert!(comment.contains("3000 account sections left out; the table and warnings are incomplete."));

        let tiny = markdown(&report, 300, Some("plan.md"));
        assert_well_formed(&tiny, 300);
        assert!(tiny.starts_with("### Stamp plan\n"));
        assert!(tiny.contains("[!NOTE]"), "{tiny}");
    }

    /// Staging with a failed check, a waived one and a plan policy that timed out; production
    /// with a finding waived inline; a sandbox whose policies passed.
    fn policy_report() -> PlanReport {
        use crate::config::policies::PolicyInput;
        use crate::pipeline::findings::{Finding, Waived};
        let finding = |id: &str, resource: Option<&str>, waived: Option<(&str, &str)>| Finding {
            id: id.to_owned(),
            title: format!("Ensure {id} holds"),
            resource: resource.map(str::to_owned),
            file: Some("s3.tf".to_owned()),
            line: Some(12),
            severity: None,
            guideline: Some(format!("https://docs.example/{id}")),
            waived: waived.map(|(by, reason)| Waived { by: by.to_owned(), reason: reason.to_owned() }),
        };
        let policy = |name: &str, on, findings, error: Option<&str>| PolicyResult {
            name: name.to_owned(),
            on,
            findings,
            error: error.map(str::to_owned),
        };
        let mut staging = account("staging-payments", "staging", planned(Vec::new(), &[]));
        staging.policies = vec![
            policy(
                "checkov",
                PolicyInput::Tree,
                vec![
                    finding("CKV_AWS_144", Some("aws_s3_bucket.logs"), None),
                    finding(
                        "CKV_AWS_18",
                        Some("aws_s3_bucket.logs"),
                        Some(("account", "Access logs of the log bucket would loop.")),
                    ),
                ],
                None,
            ),
            policy("opa", PolicyInput::Plan, Vec::new(), Some("timed out after 5m")),
        ];
        let mut production = account(
            "prod-payments",
            "production",
            planned(vec![change("aws_s3_bucket.raw", "aws_s3_bucket", Action::Create, true)], &[]),
        );
        production.policies = vec![policy(
            "checkov",
            PolicyInput::Tree,
            vec![finding("CKV_AWS_21", None, Some(("inline", "versioning is managed by the backup plan")))],
            None,
        )];
        let mut sandbox = account("dev-sandbox", "development", planned(Vec::new(), &[]));
        sandbox.policies = vec![policy("checkov", PolicyInput::Tree, Vec::new(), None)];
        PlanReport { operation: "plan".to_owned(), accounts: vec![production, staging, sandbox], warnings: Vec::new() }
    }

    #[test]
    fn policy_findings_in_three_formats() {
        let report = policy_report();
        insta::assert_snapshot!("policies_text", text(&report));
        insta::assert_snapshot!("policies_markdown", markdown(&report, 65_000, None));
        insta::assert_snapshot!("policies_json", json(&report));
        assert_eq!(report.exit_code(), 1);
        assert_eq!(report.totals().policy_blocked, 1);
        let unblocked = PlanReport {
            accounts: report.accounts.iter().filter(|a| !a.policy_blocked()).cloned().collect(),
            ..report.clone()
        };
        assert_eq!(unblocked.exit_code(), 2);
    }

    #[test]
    fn policy_text_from_tools_stays_on_its_line() {
        let mut report = policy_report();
        let finding = &mut report.accounts[1].policies[0].findings[0];
        finding.title = "two\nlines \u{1b}[31mred\u{1b}[0m".to_owned();
        finding.resource = Some("a\nFAILED b".to_owned());
        let text = text(&report);
        assert!(!text.lines().any(|l| l.starts_with("FAILED b")), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        let markdown = markdown(&report, 65_000, None);
        assert!(!markdown.contains('\u{1b}'), "{markdown}");
    }

    #[test]
    fn markdown_that_fits_is_not_truncated() {
        let markdown = markdown(&report(), 65_000, Some("plan.md"));
        assert!(!markdown.contains("[!NOTE]"));
        assert_well_formed(&markdown, 65_000);
    }
}
