//! Findings of policy checks, read from the JSON their commands print: checkov's own report
//! (`-o json`) or SARIF 2.1.0 (checkov, conftest, tfsec, trivy and most scanners with
//! `-o sarif`). Output that is not in the declared shape is an error, never a pass.

use serde::{Deserialize, Serialize};

pub use crate::config::policies::FindingFormat;

/// One problem a policy found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// checkov's `check_id`, SARIF's `ruleId`.
    pub id: String,
    /// What is wrong: checkov's `check_name`, SARIF's message.
    pub title: String,
    /// The resource address, when the tool names one.
    pub resource: Option<String>,
    /// The file (relative to where the policy ran) and first line.
    pub file: Option<String>,
    pub line: Option<u64>,
    /// checkov's `severity`, SARIF's `level`, when given.
    pub severity: Option<String>,
    /// Where to read about the check.
    pub guideline: Option<String>,
    /// Why this finding does not block `apply` (the account's waiver, or a suppression in the
    /// code such as `#checkov:skip=ID: reason`); `None`: it blocks.
    pub waived: Option<Waived>,
}

/// Who waived a finding, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waived {
    /// `account` (its `policy_waivers:`) or `inline` (a suppression in the code).
    pub by: String,
    pub reason: String,
}

impl Finding {
    fn new(id: String, title: String) -> Self {
        Self { id, title, resource: None, file: None, line: None, severity: None, guideline: None, waived: None }
    }

    /// `CKV_AWS_144 on aws_s3_bucket.logs (main.tf:12): Ensure ...`, on one line whatever the
    /// tool printed.
    pub fn one_line(&self) -> String {
        use crate::text::one_line;
        let mut out = one_line(&self.id).into_owned();
        if let Some(resource) = &self.resource {
            out.push_str(" on ");
            out.push_str(&one_line(resource));
        }
        if let Some(place) = self.place() {
            out.push_str(&format!(" ({})", one_line(&place)));
        }
        if !self.title.trim().is_empty() {
            out.push_str(": ");
            out.push_str(&one_line(self.title.trim()));
        }
        out
    }

    /// `main.tf:12`, `main.tf`, or nothing.
    pub fn place(&self) -> Option<String> {
        let file = self.file.as_deref()?;
        Some(match self.line {
            Some(line) => format!("{file}:{line}"),
            None => file.to_string(),
        })
    }
}

/// Reads the findings a policy printed in `format`. `Err` says why the text is not that.
pub fn parse(format: FindingFormat, text: &str) -> Result<Vec<Finding>, String> {
    if text.trim().is_empty() {
        return Err("it printed nothing".into());
    }
    match format {
        FindingFormat::Checkov => checkov(text),
        FindingFormat::Sarif => sarif(text),
    }
}

// ---------------------------------------------------------------------------------------------
// checkov

/// checkov prints one report per framework: an object for one, a list for several.
#[derive(Deserialize)]
#[serde(untagged)]
enum CheckovOutput {
    Many(Vec<CheckovReport>),
    One(CheckovReport),
}

#[derive(Deserialize)]
struct CheckovReport {
    #[serde(default)]
    check_type: Option<String>,
    #[serde(default)]
    results: Option<CheckovResults>,
    #[serde(default)]
    summary: Option<CheckovSummary>,
    /// When checkov found nothing to check, it prints only its summary (`"failed": 0`, ...).
    #[serde(default)]
    failed: Option<u64>,
    #[serde(default)]
    resource_count: Option<u64>,
}

#[derive(Deserialize)]
struct CheckovSummary {
    #[serde(default)]
    failed: Option<u64>,
    #[serde(default)]
    resource_count: Option<u64>,
}

#[derive(Deserialize)]
struct CheckovResults {
    #[serde(default)]
    failed_checks: Vec<CheckovCheck>,
    #[serde(default)]
    skipped_checks: Vec<CheckovCheck>,
    #[serde(default)]
    parsing_errors: Vec<String>,
}

#[derive(Deserialize)]
struct CheckovCheck {
    check_id: String,
    #[serde(default)]
    check_name: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    file_path: Option<String>,
    #[serde(default)]
    file_line_range: Option<Vec<u64>>,
    #[serde(default)]
    guideline: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    check_result: Option<CheckovResult>,
}

#[derive(Deserialize)]
struct CheckovResult {
    #[serde(default)]
    suppress_comment: Option<String>,
}

fn checkov(text: &str) -> Result<Vec<Finding>, String> {
    let output: CheckovOutput = serde_json::from_str(text.trim())
        .map_err(|e| format!("its output is not checkov's JSON report ({})", unread(&e)))?;
    let reports = match output {
        CheckovOutput::Many(reports) => reports,
        CheckovOutput::One(report) => vec![report],
    };
    if reports.is_empty() {
        return Err("checkov printed no report: nothing was checked".into());
    }
    let mut findings = Vec::new();
    for report in reports {
        let framework = report.check_type.as_deref().unwrap_or("checkov");
        // Evidence that checkov checked something: a summary that counts resources and agrees
        // with the failed checks listed. Anything less (a configuration that skips every check,
        // a report cut short) is never a pass.
        let (failed, resources) = match &report.summary {
            Some(summary) => (summary.failed, summary.resource_count),
            None => (report.failed, report.resource_count),
        };
        let nothing = || Err(format!("checkov ({framework}) checked no resource: nothing was checked"));
        let Some(results) = report.results else {
            return match failed {
                Some(failed) if failed > 0 => Err(format!("checkov reports {failed} failed checks but lists none")),
                _ if resources.unwrap_or(0) == 0 => nothing(),
                _ => Err("its output is not checkov's JSON report: no `results`".into()),
            };
        };
        if !results.parsing_errors.is_empty() {
            return Err(format!(
                "checkov ({framework}) could not parse {}",
                results.parsing_errors.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        if resources.unwrap_or(0) == 0 {
            return nothing();
        }
        let listed = u64::try_from(results.failed_checks.len()).unwrap_or(u64::MAX);
        if failed.is_some_and(|f| f != listed) {
            return Err(format!(
                "checkov ({framework}) counts {} failed checks but lists {listed}",
                failed.unwrap_or_default()
            ));
        }
        for check in results.failed_checks {
            findings.push(checkov_finding(check, None));
        }
        for check in results.skipped_checks {
            // An inline skip waives a finding only with its written reason, as a waiver does.
            let reason =
                check.check_result.as_ref().and_then(|r| r.suppress_comment.clone()).filter(|c| !c.trim().is_empty());
            let waived = reason.map(|reason| Waived { by: "inline".into(), reason });
            let unexplained = waived.is_none();
            let mut finding = checkov_finding(check, waived);
            if unexplained {
                finding.title = format!("{} (skipped inline without a reason)", finding.title);
            }
            findings.push(finding);
        }
    }
    Ok(findings)
}

fn checkov_finding(check: CheckovCheck, waived: Option<Waived>) -> Finding {
    let title = check.check_name.unwrap_or_default();
    let mut finding = Finding::new(check.check_id, title);
    finding.resource = check.resource.filter(|r| !r.is_empty());
    finding.file = check.file_path.map(|f| f.trim_start_matches('/').to_string()).filter(|f| !f.is_empty());
    finding.line = check.file_line_range.and_then(|r| r.first().copied()).filter(|l| *l > 0);
    finding.guideline = check.guideline.filter(|g| !g.is_empty());
    finding.severity = check.severity.filter(|s| !s.is_empty());
    finding.waived = waived;
    finding
}

// ---------------------------------------------------------------------------------------------
// SARIF

#[derive(Deserialize)]
struct Sarif {
    runs: Vec<SarifRun>,
}

#[derive(Deserialize)]
struct SarifRun {
    #[serde(default)]
    tool: Option<SarifTool>,
    /// Absent: the tool did not say what it found (SARIF's "not known"), never a pass.
    #[serde(default)]
    results: Option<Vec<SarifResult>>,
    #[serde(default)]
    invocations: Vec<SarifInvocation>,
}

#[derive(Deserialize)]
struct SarifInvocation {
    #[serde(default, rename = "executionSuccessful")]
    execution_successful: Option<bool>,
}

#[derive(Deserialize)]
struct SarifTool {
    #[serde(default)]
    driver: Option<SarifDriver>,
}

#[derive(Deserialize)]
struct SarifDriver {
    #[serde(default)]
    rules: Vec<SarifRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifRule {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    short_description: Option<SarifText>,
    #[serde(default)]
    help_uri: Option<String>,
    #[serde(default)]
    default_configuration: Option<SarifConfiguration>,
}

#[derive(Deserialize)]
struct SarifConfiguration {
    #[serde(default)]
    level: Option<String>,
}

#[derive(Deserialize)]
struct SarifText {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    #[serde(default)]
    rule_id: Option<String>,
    #[serde(default)]
    rule_index: Option<usize>,
    #[serde(default)]
    rule: Option<SarifRuleRef>,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<SarifText>,
    #[serde(default)]
    locations: Vec<SarifLocation>,
    #[serde(default)]
    suppressions: Vec<SarifSuppression>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifRuleRef {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    index: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifLocation {
    #[serde(default)]
    physical_location: Option<SarifPhysical>,
    #[serde(default)]
    logical_locations: Vec<SarifLogical>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifPhysical {
    #[serde(default)]
    artifact_location: Option<SarifArtifact>,
    #[serde(default)]
    region: Option<SarifRegion>,
}

#[derive(Deserialize)]
struct SarifArtifact {
    #[serde(default)]
    uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifRegion {
    #[serde(default)]
    start_line: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifLogical {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    fully_qualified_name: Option<String>,
}

#[derive(Deserialize)]
struct SarifSuppression {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    justification: Option<String>,
}

/// SARIF results are findings unless they say they are not: `kind` other than `fail` (or
/// `open`, `review`), or `level` `note` or `none`.
fn sarif(text: &str) -> Result<Vec<Finding>, String> {
    let sarif: Sarif =
        serde_json::from_str(text.trim()).map_err(|e| format!("its output is not SARIF ({})", unread(&e)))?;
    if sarif.runs.is_empty() {
        return Err("its SARIF holds no run: nothing was checked".into());
    }
    let mut findings = Vec::new();
    for run in sarif.runs {
        if run.invocations.iter().any(|i| i.execution_successful == Some(false)) {
            return Err("its SARIF says the tool did not run successfully (`executionSuccessful: false`)".into());
        }
        let Some(results) = run.results else {
            return Err("a SARIF run lists no `results`: what it found is not known".into());
        };
        let rules = run.tool.and_then(|t| t.driver).map(|d| d.rules).unwrap_or_default();
        let by_id: std::collections::HashMap<&str, &SarifRule> =
            rules.iter().rev().filter_map(|r| Some((r.id.as_deref()?, r))).collect();
        for result in results {
            if !matches!(result.kind.as_deref(), None | Some("fail" | "open" | "review")) {
                continue;
            }
            let index = result.rule_index.or_else(|| result.rule.as_ref().and_then(|r| r.index));
            let id = result.rule_id.clone().or_else(|| result.rule.as_ref().and_then(|r| r.id.clone()));
            let rule = id.as_deref().and_then(|id| by_id.get(id).copied()).or_else(|| index.and_then(|i| rules.get(i)));
            let level = result
                .level
                .clone()
                .or_else(|| rule.and_then(|r| r.default_configuration.as_ref()).and_then(|c| c.level.clone()))
                .unwrap_or_else(|| "warning".into());
            if matches!(level.as_str(), "note" | "none") {
                continue;
            }
            let Some(id) = id.or_else(|| rule.and_then(|r| r.id.clone())) else {
                return Err("a SARIF result names no rule (`ruleId`)".into());
            };
            let title = result
                .message
                .and_then(|m| m.text)
                .or_else(|| rule.and_then(|r| r.short_description.as_ref()).and_then(|d| d.text.clone()))
                .unwrap_or_default();
            let mut finding = Finding::new(id, title);
            finding.severity = Some(level);
            finding.guideline = rule.and_then(|r| r.help_uri.clone());
            if let Some(location) = result.locations.first() {
                let physical = location.physical_location.as_ref();
                finding.file = physical
                    .and_then(|p| p.artifact_location.as_ref())
                    .and_then(|a| a.uri.clone())
                    .map(|uri| uri.strip_prefix("file://").unwrap_or(&uri).trim_start_matches('/').to_string())
                    .filter(|f| !f.is_empty());
                finding.line = physical.and_then(|p| p.region.as_ref()).and_then(|r| r.start_line);
                finding.resource = location
                    .logical_locations
                    .iter()
                    .find_map(|l| l.fully_qualified_name.clone().or_else(|| l.name.clone()))
                    .filter(|r| !r.is_empty());
            }
            // Suppressed only when every suppression is accepted (one proposed or rejected, and
            // the result stands), and only with a written justification, as a waiver needs.
            let accepted = !result.suppressions.is_empty()
                && result.suppressions.iter().all(|s| matches!(s.status.as_deref(), None | Some("accepted")));
            let reason =
                result.suppressions.iter().find_map(|s| s.justification.clone().filter(|j| !j.trim().is_empty()));
            finding.waived = match (accepted, reason) {
                (true, Some(reason)) => Some(Waived { by: "inline".into(), reason }),
                (true, None) => {
                    finding.title = format!("{} (suppressed inline without a reason)", finding.title);
                    None
                }
                (false, _) => None,
            };
            findings.push(finding);
        }
    }
    Ok(findings)
}

/// Why a tool's output could not be read, and where, without quoting any of it: a JSON
/// parser's own message quotes what it read, and a plan policy's output may hold the plan's
/// values.
fn unread(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Eof => "JSON cut short",
        serde_json::error::Category::Data => "JSON of another shape",
        serde_json::error::Category::Io => "not readable",
    };
    format!("{what} at line {}, column {}", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// checkov 3's `-o json` for one framework, trimmed to the fields Stamp reads and a few
    /// it ignores.
    const CHECKOV: &str = r#"{
      "check_type": "terraform",
      "results": {
        "passed_checks": [{"check_id": "CKV_AWS_20", "check_name": "ok", "resource": "aws_s3_bucket.raw"}],
        "failed_checks": [
          {"check_id": "CKV_AWS_144", "bc_check_id": "BC_AWS_GENERAL_72",
           "check_name": "Ensure that S3 bucket has cross-region replication enabled",
           "check_result": {"result": "FAILED", "evaluated_keys": []},
           "file_path": "/main.tf", "file_line_range": [12, 20],
           "resource": "aws_s3_bucket.logs", "severity": null,
           "guideline": "https://docs.prismacloud.io/en/x"}
        ],
        "skipped_checks": [
          {"check_id": "CKV_AWS_18", "check_name": "Ensure the S3 bucket has access logging enabled",
           "check_result": {"result": "SKIPPED", "suppress_comment": "this is the access-log bucket"},
           "file_path": "/main.tf", "file_line_range": [12, 20], "resource": "aws_s3_bucket.logs"}
        ],
        "parsing_errors": []
      },
      "summary": {"passed": 1, "failed": 1, "skipped": 1, "parsing_errors": 0, "resource_count": 2,
                  "checkov_version": "3.3.30"},
      "url": "Add an api key '--bc-api-key <api-key>' to get more detailed insights"
    }"#;

    #[test]
    fn checkov_failed_and_skipped_checks() {
        let findings = parse(FindingFormat::Checkov, CHECKOV).unwrap();
        assert_eq!(findings.len(), 2);
        let failed = &findings[0];
        assert_eq!(failed.id, "CKV_AWS_144");
        assert_eq!(failed.title, "Ensure that S3 bucket has cross-region replication enabled");
        assert_eq!(failed.resource.as_deref(), Some("aws_s3_bucket.logs"));
        assert_eq!(failed.place().as_deref(), Some("main.tf:12"));
        assert_eq!(failed.guideline.as_deref(), Some("https://docs.prismacloud.io/en/x"));
        assert_eq!(failed.severity, None);
        assert_eq!(failed.waived, None);
        let skipped = &findings[1];
        assert_eq!(skipped.id, "CKV_AWS_18");
        assert_eq!(
            skipped.waived,
            Some(Waived { by: "inline".into(), reason: "this is the access-log bucket".into() })
        );
    }

    /// A failed check as checkov 3.3.30 prints it with `--quiet` (offline: no guideline, no
    /// severity), from the rendered `production` tree of the example project.
    const CHECKOV_3_3_30: &str = r#"{
 "check_type": "terraform",
 "results": {
  "failed_checks": [
   {
    "check_id": "CKV_AWS_353",
    "bc_check_id": null,
    "check_name": "Ensure that RDS instances have performance insights enabled",
    "check_result": {
     "result": "FAILED",
     "evaluated_keys": [
      "performance_insights_enabled"
     ]
    },
    "code_block": [
     [
      71,
      "resource \"aws_db_instance\" \"this\" {\n"
     ]
    ],
    "file_path": "/databases.tf",
    "file_abs_path": "/tmp/build/databases.tf",
    "repo_file_path": "/databases.tf",
    "file_line_range": [
     71,
     103
    ],
    "resource": "aws_db_instance.this[\"billing\"]",
    "evaluations": null,
    "check_class": "checkov.terraform.checks.resource.aws.RDSInstancePerformanceInsights",
    "fixed_definition": null,
    "entity_tags": null,
    "caller_file_path": null,
    "caller_file_line_range": null,
    "resource_address": null,
    "severity": null,
    "bc_category": null,
    "benchmarks": {},
    "description": null,
    "short_description": null,
    "vulnerability_details": null,
    "connected_node": null,
    "guideline": null,
    "details": [],
    "check_len": null,
    "definition_context_file_path": "/tmp/build/databases.tf"
   }
  ]
 },
 "summary": {
  "passed": 106,
  "failed": 1,
  "skipped": 0,
  "parsing_errors": 0,
  "resource_count": 42,
  "checkov_version": "3.3.30"
 }
}"#;

    #[test]
    fn checkov_3_3_30_as_it_prints() {
        let findings = parse(FindingFormat::Checkov, CHECKOV_3_3_30).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].id, "CKV_AWS_353");
        assert_eq!(findings[0].resource.as_deref(), Some(r#"aws_db_instance.this["billing"]"#));
        assert_eq!(findings[0].place().as_deref(), Some("databases.tf:71"));
        assert_eq!(findings[0].guideline, None);
        assert_eq!(
            findings[0].one_line(),
            r#"CKV_AWS_353 on aws_db_instance.this["billing"] (databases.tf:71): Ensure that RDS instances have performance insights enabled"#
        );
    }

    #[test]
    fn checkov_lists_one_report_per_framework() {
        let list = format!(
            "[{CHECKOV}, {{\"check_type\": \"secrets\", \"results\": {{\"failed_checks\": [{{\"check_id\": \"CKV_SECRET_2\", \"check_name\": \"AWS Access Key\", \"file_path\": \"/x.tf\", \"file_line_range\": [3, 3], \"resource\": \"abc\"}}]}}, \"summary\": {{\"failed\": 1, \"resource_count\": 1}}}}]"
        );
        let findings = parse(FindingFormat::Checkov, &list).unwrap();
        assert_eq!(
            findings.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["CKV_AWS_144", "CKV_AWS_18", "CKV_SECRET_2"]
        );
    }

    #[test]
    fn checkov_output_that_checked_nothing_is_never_a_pass() {
        // What checkov prints when it found nothing to check (or a `.checkov.yaml` skipped
        // every check), an empty list, reports without a summary, and counts that disagree.
        for (nothing, why) in [
            (
                r#"{"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0, "resource_count": 0, "checkov_version": "3.3.30"}"#,
                "checked no resource",
            ),
            ("[]", "printed no report"),
            (r#"{"results": {}}"#, "checked no resource"),
            (
                r#"{"results": {"passed_checks": []}, "summary": {"failed": 4, "resource_count": 3}}"#,
                "counts 4 failed checks but lists 0",
            ),
            (
                r#"{"results": {"failed_checks": []}, "summary": {"failed": 0, "resource_count": 0}}"#,
                "checked no resource",
            ),
        ] {
            let error = parse(FindingFormat::Checkov, nothing).unwrap_err();
            assert!(error.contains(why), "{nothing}: {error}");
        }
    }

    #[test]
    fn an_inline_skip_without_a_reason_blocks() {
        let report = r#"{"results": {"skipped_checks": [{"check_id": "CKV_AWS_18", "check_name": "Access logging",
            "check_result": {"result": "SKIPPED", "suppress_comment": " "}}]}, "summary": {"failed": 0, "resource_count": 1}}"#;
        let findings = parse(FindingFormat::Checkov, report).unwrap();
        assert_eq!(findings[0].waived, None);
        assert!(findings[0].title.contains("without a reason"), "{}", findings[0].title);
        let sarif = r#"{"runs": [{"results": [
            {"ruleId": "R1", "message": {"text": "a"}, "suppressions": [{}]},
            {"ruleId": "R2", "message": {"text": "b"}, "suppressions": [{"justification": "ok"}, {"status": "rejected"}]},
            {"ruleId": "R3", "message": {"text": "c"}, "suppressions": [{"justification": "known, fixed in 2.0"}]}]}]}"#;
        let findings = parse(FindingFormat::Sarif, sarif).unwrap();
        assert_eq!(findings[0].waived, None, "no justification");
        assert_eq!(findings[1].waived, None, "one suppression rejected");
        assert_eq!(findings[2].waived.as_ref().map(|w| w.reason.as_str()), Some("known, fixed in 2.0"));
    }

    #[test]
    fn checkov_output_that_is_not_a_report_is_an_error() {
        for bad in
            ["", "  \n", "Traceback (most recent call last):", "{\"foo\": 1}", "[1, 2]", "{\"failed\": 3}", "null"]
        {
            assert!(parse(FindingFormat::Checkov, bad).is_err(), "{bad:?} parsed");
        }
        let unparsed =
            r#"{"check_type": "terraform", "results": {"failed_checks": [], "parsing_errors": ["/bad.tf"]}}"#;
        assert_eq!(
            parse(FindingFormat::Checkov, unparsed).unwrap_err(),
            "checkov (terraform) could not parse `/bad.tf`"
        );
        let no_id = r#"{"results": {"failed_checks": [{"check_name": "x"}]}}"#;
        assert!(parse(FindingFormat::Checkov, no_id).is_err());
    }

    /// SARIF 2.1.0 as conftest and checkov print it, with a rule table, a logical location,
    /// a suppression and results that are not findings.
    const SARIF: &str = r#"{
      "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
      "version": "2.1.0",
      "runs": [{
        "tool": {"driver": {"name": "conftest", "rules": [
          {"id": "deny_public_bucket", "shortDescription": {"text": "Buckets are private"},
           "helpUri": "https://wiki.example/buckets", "defaultConfiguration": {"level": "error"}},
          {"id": "info_only", "defaultConfiguration": {"level": "note"}}
        ]}},
        "results": [
          {"ruleId": "deny_public_bucket", "ruleIndex": 0,
           "message": {"text": "bucket `logs` is public"},
           "locations": [{"physicalLocation": {"artifactLocation": {"uri": "file:///work/main.tf"},
                                              "region": {"startLine": 7}},
                          "logicalLocations": [{"name": "logs", "fullyQualifiedName": "aws_s3_bucket.logs"}]}]},
          {"ruleId": "info_only", "message": {"text": "fyi"}},
          {"ruleId": "deny_public_bucket", "kind": "pass", "message": {"text": "ok"}},
          {"ruleIndex": 0, "level": "warning", "message": {"text": "another"},
           "suppressions": [{"kind": "external", "justification": "demo account, no data"}]},
          {"ruleId": "deny_public_bucket", "message": {"text": "proposed only"},
           "suppressions": [{"kind": "inSource", "status": "underReview"}]}
        ]
      }]
    }"#;

    #[test]
    fn sarif_results_rules_and_suppressions() {
        let findings = parse(FindingFormat::Sarif, SARIF).unwrap();
        assert_eq!(findings.len(), 3, "{findings:#?}");
        let first = &findings[0];
        assert_eq!(first.id, "deny_public_bucket");
        assert_eq!(first.title, "bucket `logs` is public");
        assert_eq!(first.resource.as_deref(), Some("aws_s3_bucket.logs"));
        assert_eq!(first.place().as_deref(), Some("work/main.tf:7"));
        assert_eq!(first.severity.as_deref(), Some("error"));
        assert_eq!(first.guideline.as_deref(), Some("https://wiki.example/buckets"));
        assert_eq!(first.waived, None);
        let second = &findings[1];
        assert_eq!(second.id, "deny_public_bucket");
        assert_eq!(second.severity.as_deref(), Some("warning"));
        assert_eq!(second.resource, None);
        assert_eq!(second.waived.as_ref().map(|w| w.reason.as_str()), Some("demo account, no data"));
        assert_eq!(findings[2].waived, None);
    }

    #[test]
    fn sarif_without_results_passes_and_garbage_does_not() {
        let empty = r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": []}]}"#;
        assert_eq!(parse(FindingFormat::Sarif, empty).unwrap(), Vec::new());
        let nothing_checked = [
            r#"{"runs": []}"#,
            r#"{"runs": [{}]}"#,
            r#"{"runs": [{"results": [], "invocations": [{"executionSuccessful": false}]}]}"#,
        ];
        for bad in ["", "{}", "{\"runs\": 3}", "not json", CHECKOV].into_iter().chain(nothing_checked) {
            assert!(parse(FindingFormat::Sarif, bad).is_err(), "{bad:?} parsed");
        }
        let no_rule = r#"{"runs": [{"results": [{"message": {"text": "x"}}]}]}"#;
        assert!(parse(FindingFormat::Sarif, no_rule).is_err());
    }
}
