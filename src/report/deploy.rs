//! Deployment reports: what `stamp apply`, `destroy` and `promote` did to each account, and
//! what `stamp doctor` found, as text.

use std::fmt::Write as _;

use crate::ops::deploy::{AccountResult, DeployReport, Doctor};

/// What is done to the plans of a report: `destroy` for a destroy plan, `apply` otherwise.
pub fn verb(operation: &str) -> &'static str {
    if operation == "destroy" { "destroy" } else { "apply" }
}

/// Every account's result of an apply or destroy, one [`result_line`] each.
pub fn results_text(report: &DeployReport) -> String {
    let verb = verb(&report.plan.operation);
    let mut text = String::new();
    for result in &report.results {
        text.push_str(&result_line(result, verb));
    }
    text
}

/// One account's result: applied, destroyed, nothing to do or failed, then its recoveries,
/// error, hooks and cleanup.
pub fn result_line(result: &AccountResult, verb: &str) -> String {
    let mut out = format!("{}: ", result.account);
    out.push_str(match (&result.error, result.applied) {
        (Some(_), _) => "FAILED",
        (None, true) if verb == "destroy" => "destroyed",
        (None, true) => "applied",
        (None, false) => "nothing to do",
    });
    out.push('\n');
    for note in &result.recovered {
        out.push_str(&format!("  recovered: {note}\n"));
    }
    if let Some(error) = &result.error {
        for line in error.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    for hook in &result.hooks {
        let attempts = if hook.attempts > 1 { format!(" after {} attempts", hook.attempts) } else { String::new() };
        let status = if hook.passed { "passed" } else { "FAILED" };
        out.push_str(&format!("  {} `{}` {status}{attempts}\n", hook.kind, hook.name));
        for line in hook.output.lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    if let Some(cleanup) = &result.cleanup {
        out.push_str(&format!("  cleanup: {cleanup}\n"));
    }
    out
}

/// Which Terraform binary is used, its version and whether it is supported.
pub fn doctor_text(found: &Doctor) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "terraform: {}", found.terraform.as_deref().unwrap_or("not found"));
    if let (Some(flavor), Some(version)) = (&found.flavor, &found.version) {
        let verdict = if found.supported { "supported" } else { "NOT supported" };
        let _ = writeln!(text, "version:   {flavor} {version} ({verdict})");
    }
    text
}
