//! Policy checks: commands (checkov, conftest, a team's own script) run on an account's rendered
//! tree and on its plan as JSON, their findings read from the JSON they print, and the
//! account's waivers applied. A policy that cannot run, times out, or prints something that is
//! not its declared format is an error, never a pass.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::findings::{self, Finding, Waived};
use super::hooks::{HookEnv, Place, invocation};
pub use crate::config::policies::{FindingFormat, Policy, PolicyInput, Waiver};

/// The largest report a policy may print: a longer one is an error, never read in part.
pub const MAX_REPORT: usize = 32 << 20;

/// Default time a policy command may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// What one policy found.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyResult {
    pub name: String,
    /// `tree` or `plan`.
    pub on: PolicyInput,
    pub findings: Vec<Finding>,
    /// Why the policy could not give findings (it failed to run, timed out, or printed
    /// something else than its format): it blocks `apply` like a finding.
    pub error: Option<String>,
}

impl PolicyResult {
    /// A policy that gave no findings because of `error`.
    pub fn failed(policy: &Policy, error: impl Into<String>) -> Self {
        Self { name: policy.name.clone(), on: policy.on, findings: Vec::new(), error: Some(error.into()) }
    }

    /// Findings no waiver covers.
    pub fn blocking(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.waived.is_none())
    }

    /// Findings a waiver covers.
    pub fn waived(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.waived.is_some())
    }

    /// The policy ran, and every finding it has is waived.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.blocking().next().is_none()
    }

    /// Why the policy blocks `apply`, in a phrase (`None`: it passed).
    pub fn problem(&self) -> Option<String> {
        if let Some(error) = &self.error {
            return Some(format!("policy `{}` failed: {}", self.name, error.lines().next().unwrap_or_default()));
        }
        let count = self.blocking().count();
        let noun = if count == 1 { "finding" } else { "findings" };
        (count > 0).then(|| format!("policy `{}` has {count} unwaived {noun} ({})", self.name, ids(self.blocking())))
    }
}

/// The ids of `findings`, each once, in the order found (one check failing on many resources
/// is one fix): `` `A`, `B` ``.
fn ids<'a>(findings: impl Iterator<Item = &'a Finding>) -> String {
    let mut ids: Vec<String> = Vec::new();
    for finding in findings {
        let id = format!("`{}`", crate::text::one_line(&finding.id));
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids.join(", ")
}

/// The waived findings of `results`, for a note: ` (2 waived findings: `A`, `B`)`, or
/// nothing when there are none.
pub fn waived_note(results: &[PolicyResult]) -> String {
    let waived = || results.iter().flat_map(PolicyResult::waived);
    match waived().count() {
        0 => String::new(),
        1 => format!(" (1 waived finding: {})", ids(waived())),
        n => format!(" ({n} waived findings: {})", ids(waived())),
    }
}

/// Runs one policy where `place` says, with the account's facts in `env` (and the plan JSON's
/// path in `STAMP_PLAN_JSON` for a plan policy), and applies `waivers` to its findings.
pub fn run(
    policy: &Policy,
    place: Place<'_>,
    env: &HookEnv,
    plan_json: Option<&Path>,
    waivers: &[Waiver],
) -> PolicyResult {
    place.log.line(&format!("# policy `{}` (on {})", policy.name, policy.on));
    let timeout = policy.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let mut env = HookEnv { vars: env.vars.clone() };
    if let Some(path) = plan_json {
        env.vars.push(("STAMP_PLAN_JSON".into(), path.display().to_string()));
    }
    let mut command = invocation(&policy.run, place, &env, timeout);
    // A plan policy reads the plan's values: nothing it prints reaches the log, and only the
    // findings it reports (never its raw output) reach the report.
    let private = policy.on == PolicyInput::Plan;
    command.log_stdout = !private;
    command.log_stderr = !private;
    command.max_output = MAX_REPORT;
    // What a plan policy printed, quoted in an error: not shown.
    let quoted = |text: String| {
        if private { "(its output is not shown: it may hold the plan's values)".to_string() } else { text }
    };
    let finished = match command.run(place.log) {
        Ok(finished) => finished,
        Err(e) => return PolicyResult::failed(policy, e.to_string()),
    };
    if finished.timed_out {
        return PolicyResult::failed(policy, format!("timed out after {}", humantime::format_duration(timeout)));
    }
    if finished.interrupted {
        return PolicyResult::failed(policy, "interrupted");
    }
    if finished.truncated {
        return PolicyResult::failed(policy, format!("it printed more than {} MiB", MAX_REPORT >> 20));
    }
    if finished.output_open {
        // Something it started still writes (or could): its report may not be whole.
        return PolicyResult::failed(
            policy,
            "it exited but left a process holding its output open: its report may be incomplete",
        );
    }
    let code = finished.code.map_or_else(|| "a signal".to_string(), |c| c.to_string());
    let format = match policy.format {
        FindingFormat::Checkov => "checkov",
        FindingFormat::Sarif => "sarif",
    };
    let mut found = match findings::parse(policy.format, &finished.stdout) {
        Ok(found) => found,
        Err(reason) => {
            let mut message = format!("`{}` (format `{format}`): {reason}", command.display());
            if !finished.success() {
                message = format!("`{}` exited with {code}, and {reason}", command.display());
            }
            let tail = finished.tail(5);
            if !tail.is_empty() {
                message.push('\n');
                message.push_str(&quoted(tail));
            }
            return PolicyResult::failed(policy, message);
        }
    };
    // A failing exit with nothing to show for it is not a pass (a crash after partial
    // output); with findings it is what checkov and conftest do when they find something.
    let unexplained_failure = !finished.success() && found.is_empty();
    for finding in &mut found {
        if finding.waived.is_some() {
            continue;
        }
        if let Some(waiver) = waivers.iter().find(|w| w.covers(&policy.name, &finding.id, finding.resource.as_deref()))
        {
            finding.waived = Some(Waived { by: "account".into(), reason: waiver.reason.clone() });
        }
    }
    let mut result = PolicyResult { name: policy.name.clone(), on: policy.on, findings: found, error: None };
    if unexplained_failure {
        let lines: Vec<&str> = finished.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut error = format!("`{}` exited with {code} but reported no finding", command.display());
        let tail = lines[lines.len().saturating_sub(5)..].join("\n");
        if !tail.is_empty() {
            error.push('\n');
            error.push_str(&quoted(tail));
        }
        result.error = Some(error);
    }
    result
}
