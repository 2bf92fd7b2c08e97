//! Policy checks with the real Terraform on local-platform accounts: findings in the plan
//! report (text, markdown, json), `apply` refused until each finding is fixed or waived with a
//! reason, policies that time out or print garbage, and a plan policy reading the plan JSON.
//! The policies are small Python stand-ins printing checkov's JSON and SARIF (named so): the
//! real checkov is not installed on every machine that runs these tests.

mod common;

use common::{Project, write_executable};

const ARCHETYPE: &str = "archetypes/local-platform/archetype.yaml";
const STAGING: &str = "fixtures/accounts/local-staging.yaml";

/// A stand-in for `checkov -d . -o json`: fails `CKV_LOCAL_1` on the database resource when
/// it runs in the rendered tree (it reads `database.tf` there), and exits 1 as checkov does.
const FAKE_CHECKOV: &str = r#"#!/usr/bin/env python3
import json, os, sys
if not os.path.isfile("database.tf"):
    print("not in the rendered tree: " + os.getcwd())
    sys.exit(2)
line = next(i for i, l in enumerate(open("database.tf"), 1) if l.startswith("resource"))
report = {
    "check_type": "terraform",
    "results": {
        "passed_checks": [],
        "failed_checks": [{
            "check_id": "CKV_LOCAL_1",
            "check_name": "Ensure the database is backed up",
            "check_result": {"result": "FAILED"},
            "file_path": "/database.tf",
            "file_line_range": [line, line + 5],
            "resource": "terraform_data.database",
            "guideline": "https://wiki.acme.example/policies/CKV_LOCAL_1",
        }],
        "skipped_checks": [],
        "parsing_errors": [],
    },
    "summary": {"passed": 0, "failed": 1, "skipped": 0, "parsing_errors": 0, "resource_count": 5},
}
print(json.dumps(report, indent=2))
sys.exit(1)
"#;

/// A plan policy printing SARIF: one result per `terraform_data` resource the plan creates,
/// read from the file `STAMP_PLAN_JSON` names (which must be private); it leaves the path in
/// `plan-json-path` next to itself so the test can check the file is gone.
const PLAN_SARIF: &str = r#"#!/usr/bin/env python3
import json, os, stat, sys
path = os.environ["STAMP_PLAN_JSON"]
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "plan-json-path"), "w").write(path)
mode = stat.S_IMODE(os.stat(path).st_mode)
if mode != 0o600:
    print("plan JSON mode %o" % mode)
    sys.exit(3)
plan = json.load(open(path))
results = [
    {
        "ruleId": "LOCAL_NO_SERVICE_CREATE",
        "level": "error",
        "message": {"text": "the plan creates " + rc["address"]},
        "locations": [{"logicalLocations": [{"fullyQualifiedName": rc["address"]}]}],
    }
    for rc in plan["resource_changes"]
    if rc["address"] == "terraform_data.service" and "create" in rc["change"]["actions"]
]
print(json.dumps({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "plan-guard"}}, "results": results}]}))
"#;

/// The local platform with the two policies above, from `policies/` in the project.
fn with_policies() -> Project {
    let project = Project::local();
    let dir = project.path().join("policies");
    write_executable(&dir.join("fake-checkov.py"), FAKE_CHECKOV);
    write_executable(&dir.join("plan-sarif.py"), PLAN_SARIF);
    let policies = format!(
        "\npolicies:\n  - name: checkov\n    on: tree\n    run: [python3, {}]\n    format: checkov\n    timeout: 1m\n  - name: plan-guard\n    on: plan\n    run: [{}]\n    format: sarif\n",
        dir.join("fake-checkov.py").display(),
        dir.join("plan-sarif.py").display()
    );
    let text = project.read(ARCHETYPE);
    project.write(ARCHETYPE, &format!("{text}{policies}"));
    project
}

fn append(project: &Project, path: &str, text: &str) {
    let old = project.read(path);
    project.write(path, &format!("{old}\n{text}"));
}

/// `stamp ARGS` with the real Terraform and one version for every run (outside git, each
/// second would be a new development version).
fn tf<const N: usize>(project: &Project, args: [&str; N]) -> common::Run {
    project.tf(args).env("STAMP_VERSION", "1.0.0")
}

fn json_report(project: &Project, code: i32) -> serde_json::Value {
    let out = tf(project, ["plan", "local-staging", "--format", "json"]).run().failure(code);
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn findings_are_reported_and_block_apply() {
    let project = with_policies();

    // json: both policies' findings, none waived; `plan` exits 1 as the account cannot be applied.
    let report = json_report(&project, 1);
    let policies = report["accounts"][0]["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 2, "{report:#}");
    assert_eq!(policies[0]["name"], "checkov");
    assert_eq!(policies[0]["on"], "tree");
    assert_eq!(policies[0]["error"], serde_json::Value::Null, "{report:#}");
    let finding = &policies[0]["findings"][0];
    assert_eq!(finding["id"], "CKV_LOCAL_1");
    assert_eq!(finding["resource"], "terraform_data.database");
    assert_eq!(finding["file"], "database.tf");
    assert_eq!(finding["guideline"], "https://wiki.acme.example/policies/CKV_LOCAL_1");
    assert_eq!(finding["waived"], serde_json::Value::Null);
    assert_eq!(policies[1]["on"], "plan");
    assert_eq!(policies[1]["error"], serde_json::Value::Null, "{report:#}");
    let planned = &policies[1]["findings"][0];
    assert_eq!(planned["id"], "LOCAL_NO_SERVICE_CREATE");
    assert_eq!(planned["resource"], "terraform_data.service");
    assert_eq!(planned["title"], "the plan creates terraform_data.service");
    assert_eq!(report["totals"]["policy_blocked"], 1);
    // The plan JSON (which may hold secrets) is gone once the policy ran.
    let plan_json = project.read("policies/plan-json-path");
    assert!(plan_json.ends_with("stamp-plan.json"), "{plan_json}");
    assert!(!std::path::Path::new(&plan_json).exists(), "the plan JSON was left at `{plan_json}`");

    // text and markdown
    let text = tf(&project, ["plan", "local-staging"]).run().failure(1);
    assert!(
        text.stdout.contains("local-staging (staging, archetype local-platform): policy checks FAILED\n"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("  checkov (tree): 1 unwaived finding\n"), "{}", text.stdout);
    assert!(text.stdout.contains("    FAILED CKV_LOCAL_1 on terraform_data.database (database.tf:"), "{}", text.stdout);
    assert!(text.stdout.contains("      see https://wiki.acme.example/policies/CKV_LOCAL_1\n"), "{}", text.stdout);
    assert!(
        text.stdout.contains(
            "    FAILED LOCAL_NO_SERVICE_CREATE on terraform_data.service: the plan creates terraform_data.service\n"
        ),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("1 account: 1 with changes, 0 unchanged, 0 failed, 1 failed policy checks"),
        "{}",
        text.stdout
    );
    let markdown = tf(&project, ["plan", "local-staging", "--format", "markdown"]).run().failure(1);
    assert!(markdown.stdout.contains("| changes, **policy checks failed** |"), "{}", markdown.stdout);
    assert!(markdown.stdout.contains("**Policy checks failed:** `local-staging` (staging)"), "{}", markdown.stdout);
    assert!(
        markdown
            .stdout
            .contains("- **failed** `checkov` (tree): `CKV_LOCAL_1` on `terraform_data.database` (`database.tf:"),
        "{}",
        markdown.stdout
    );

    // apply: refused, nothing applied.
    let apply = tf(&project, ["apply", "local-staging", "--auto-approve"]).run().failure(1);
    assert!(apply.stderr.contains("policy checks failed, so nothing was applied: account `local-staging`: policy `checkov` has 1 unwaived finding (`CKV_LOCAL_1`); policy `plan-guard` has 1 unwaived finding (`LOCAL_NO_SERVICE_CREATE`)"), "{}", apply.stderr);
    assert!(apply.stdout.contains("policy checks FAILED"), "{}", apply.stdout);
    assert!(!project.env_dir("local-staging").exists(), "something was applied");
}

#[test]
fn waived_findings_apply_and_show_their_reason() {
    let project = with_policies();
    append(
        &project,
        STAGING,
        "policy_waivers:\n  - id: CKV_LOCAL_1\n    resource: terraform_data.database\n    reason: \"Staging data is seeded: nothing to back up.\"\n  - id: LOCAL_NO_SERVICE_CREATE\n    policy: plan-guard\n    reason: The service is new in staging.\n",
    );
    let report = json_report(&project, 2);
    let policies = report["accounts"][0]["policies"].as_array().unwrap();
    assert_eq!(
        policies[0]["findings"][0]["waived"],
        serde_json::json!({"by": "account", "reason": "Staging data is seeded: nothing to back up."})
    );
    assert_eq!(policies[1]["findings"][0]["waived"]["reason"], "The service is new in staging.");
    assert!(report["totals"].get("policy_blocked").is_none(), "{report:#}");

    let text = tf(&project, ["plan", "local-staging"]).run().failure(2);
    assert!(text.stdout.contains("policy checks passed\n"), "{}", text.stdout);
    assert!(text.stdout.contains("  checkov (tree): passed, 1 waived\n"), "{}", text.stdout);
    assert!(text.stdout.contains("    waived CKV_LOCAL_1 on terraform_data.database"), "{}", text.stdout);
    assert!(
        text.stdout.contains("      reason (account): Staging data is seeded: nothing to back up.\n"),
        "{}",
        text.stdout
    );
    let markdown = tf(&project, ["plan", "local-staging", "--format", "markdown"]).run().failure(2);
    assert!(markdown.stdout.contains("— waived (account): The service is new in staging."), "{}", markdown.stdout);

    let apply = tf(&project, ["apply", "local-staging", "--auto-approve"]).run().success();
    assert!(apply.stdout.contains("local-staging: applied"), "{}", apply.stdout);
    assert!(apply.stdout.contains("reason (account): The service is new in staging."), "{}", apply.stdout);
    assert!(project.env_dir("local-staging").join("data.sqlite").is_file());

    // Applied: the plan policy has nothing left to find; the tree policy still finds, waived.
    let again = json_report(&project, 0);
    let policies = again["accounts"][0]["policies"].as_array().unwrap();
    assert_eq!(policies[1]["findings"], serde_json::json!([]));
    assert_eq!(policies[0]["findings"][0]["id"], "CKV_LOCAL_1");
}

#[test]
fn a_waiver_without_a_reason_is_an_error_at_its_place() {
    let project = with_policies();
    let before = project.read(STAGING).lines().count();
    append(&project, STAGING, "policy_waivers:\n  - id: CKV_LOCAL_1\n    reason: \"  \"\n");
    let out = project.stamp(["check", "local-staging"]).run().failure(1);
    assert!(out.stderr.contains("error: the waiver of `CKV_LOCAL_1` has no `reason`"), "{}", out.stderr);
    // The file, and the line of the waiver (after the blank line `append` adds and the key).
    let place = format!("{STAGING}:{}:", before + 3);
    assert!(out.stderr.contains(&place), "no `{place}` in:\n{}", out.stderr);
    assert!(out.stderr.contains("write why this finding is acceptable"), "{}", out.stderr);

    // Neither is a waiver with unknown keys, nor one without an id.
    project.write(STAGING, &project.read(STAGING).replace("    reason: \"  \"\n", "    because: it is fine\n"));
    let out = project.stamp(["check", "local-staging"]).run().failure(1);
    assert!(out.stderr.contains("invalid `policy_waivers`: unknown field `because`"), "{}", out.stderr);

    let apply = tf(&project, ["apply", "local-staging", "--auto-approve"]).run().failure(1);
    assert!(apply.stderr.contains("invalid `policy_waivers`"), "{}", apply.stderr);
    assert!(!project.env_dir("local-staging").exists());
}

#[test]
fn policies_that_time_out_or_print_garbage_block_apply() {
    let project = Project::local();
    let text = project.read(ARCHETYPE);
    project.write(
        ARCHETYPE,
        &format!(
            "{text}\npolicies:\n  - name: slow\n    on: tree\n    run: [python3, -c, \"import time; time.sleep(60)\"]\n    format: checkov\n    timeout: 1s\n"
        ),
    );
    // An account may add its own policies to the archetype's.
    append(
        &project,
        STAGING,
        "policies:\n  - name: chatty\n    on: plan\n    run: \"echo 'all good!'\"\n    format: sarif\npolicy_waivers:\n  - id: slow\n    reason: a waiver cannot hide an error\n",
    );
    let started = std::time::Instant::now();
    let report = json_report(&project, 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(40), "the timeout was not kept");
    let policies = report["accounts"][0]["policies"].as_array().unwrap();
    assert_eq!(policies[0]["name"], "slow");
    assert_eq!(policies[0]["error"], "timed out after 1s", "{report:#}");
    assert_eq!(policies[1]["name"], "chatty");
    let error = policies[1]["error"].as_str().unwrap();
    assert!(error.contains("its output is not SARIF"), "{error}");

    let apply = tf(&project, ["apply", "local-staging", "--auto-approve"]).run().failure(1);
    assert!(
        apply.stderr.contains("policy `slow` failed: timed out after 1s; policy `chatty` failed: `sh -c echo 'all good!'` (format `sarif`): its output is not SARIF"),
        "{}",
        apply.stderr
    );
    assert!(apply.stdout.contains("  slow (tree): ERROR\n    timed out after 1s\n"), "{}", apply.stdout);
    assert!(!project.env_dir("local-staging").exists(), "something was applied");
}

#[test]
fn destroy_runs_no_policies() {
    let project = with_policies();
    append(
        &project,
        STAGING,
        "policy_waivers:\n  - id: CKV_LOCAL_1\n    reason: r\n  - id: LOCAL_NO_SERVICE_CREATE\n    reason: r\n",
    );
    tf(&project, ["apply", "local-staging", "--auto-approve"]).run().success();
    // A policy that would fail now does not stand in the way of tearing down.
    project.write(STAGING, &project.read(STAGING).replace("  - id: CKV_LOCAL_1\n    reason: r\n", ""));
    let destroy = tf(&project, ["destroy", "local-staging", "--auto-approve"]).run().success();
    assert!(!destroy.stdout.contains("policy"), "{}", destroy.stdout);
    assert!(!project.env_dir("local-staging").exists());
}

#[test]
fn check_runs_tree_policies_when_asked() {
    let project = with_policies();
    // Without `--policies`, `check` runs nothing.
    project.stamp(["check", "local-staging"]).run().success();
    let out = project.stamp(["check", "--policies", "local-staging"]).run().failure(1);
    assert!(
        out.stderr.contains(
            "error: account `local-staging` fails its policy checks: policy `checkov` has 1 unwaived finding (`CKV_LOCAL_1`)"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("= in fixtures/accounts/local-staging.yaml"), "{}", out.stderr);
    assert!(
        out.stderr.contains("hint: `checkov`: CKV_LOCAL_1 on terraform_data.database (database.tf:"),
        "{}",
        out.stderr
    );
    // Plan policies wait for a plan.
    assert!(!project.path().join("policies/plan-json-path").exists(), "a plan policy ran during check");

    append(&project, STAGING, "policy_waivers:\n  - id: CKV_LOCAL_1\n    reason: Seeded data only.\n");
    project.stamp(["check", "--policies", "local-staging"]).run().success();
    let json = project.stamp(["check", "--policies", "--format", "json", "local-qa"]).run().failure(1);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["diagnostics"][0]["code"], "policy.failed", "{report:#}");
}

#[test]
fn a_playground_keeps_its_sources_waivers() {
    let project = with_policies();
    append(&project, STAGING, "policy_waivers:\n  - id: CKV_LOCAL_1\n    reason: Seeded data only.\n");
    project
        .stamp(["playground", "new", "try-1", "--from", "local-staging", "--owner", "ana", "--ttl", "8h", "--no-apply"])
        .run()
        .success();
    let written = project.read("fixtures/accounts/playgrounds/try-1.yaml");
    assert!(written.contains("policy_waivers:"), "{written}");
    assert!(written.contains("Seeded data only."), "{written}");
    project.stamp(["check", "--policies", "try-1"]).run().success();
}

/// A plan policy reads the plan's values: what it prints (on stdout or stderr, failing or not)
/// reaches neither the log nor any report, and the plan as JSON is never left behind.
#[test]
fn a_plan_policys_output_stays_out_of_logs_and_reports() {
    let project = Project::local();
    let text = project.read(ARCHETYPE);
    let leak = "import os, sys; t = open(os.environ['STAMP_PLAN_JSON']).read(); print(t[:400]); sys.stderr.write(t[:400]); sys.exit(1)";
    // Valid JSON of the wrong shape: the parser's error would quote the plan's text.
    let misshapen =
        "import os, json; t = open(os.environ['STAMP_PLAN_JSON']).read(); print(json.dumps({'runs': t[:400]}))";
    project.write(
        ARCHETYPE,
        &format!(
            "{text}\npolicies:\n  - name: leaky\n    on: plan\n    run: [python3, -c, \"{leak}\"]\n    format: sarif\n  \
             - name: misshapen\n    on: plan\n    run: [python3, -c, \"{misshapen}\"]\n    format: sarif\n"
        ),
    );
    for format in ["json", "text", "markdown"] {
        let out = tf(&project, ["plan", "local-staging", "--format", format]).run().failure(1);
        for printed in [&out.stdout, &out.stderr] {
            assert!(!printed.contains("format_version"), "{format}: the plan's JSON reached the report:\n{printed}");
        }
        assert!(out.stdout.contains("leaky") && out.stdout.contains("not shown"), "{format}: {}", out.stdout);
        assert!(out.stdout.contains("misshapen"), "{format}: {}", out.stdout);
    }
    let log = project.read(".stamp/logs/local-staging.log");
    assert!(!log.contains("format_version"), "the plan's JSON reached the log:\n{log}");
    assert!(!project.path().join(".stamp/data/local-staging/stamp-plan.json").exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs_err::metadata(project.path().join(".stamp/data/local-staging")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o700, "the data folder holding the saved plan is private");
}

/// A policy that leaves a process holding its output open, or prints more than a report can
/// be, is an error that blocks `apply`, and never keeps Stamp waiting past its timeout.
#[test]
fn a_policy_cannot_hang_stamp_or_flood_it() {
    let project = Project::local();
    let text = project.read(ARCHETYPE);
    // Popen returns once the child runs in its own session (outside the policy's group).
    let detached = "import subprocess; subprocess.Popen(['sleep', '60'], start_new_session=True); print('{\"runs\": [{\"results\": []}]}')";
    let flood = "import sys\nfor _ in range(40000): sys.stdout.write('x' * 1000 + chr(10))";
    project.write(
        ARCHETYPE,
        &format!(
            "{text}\npolicies:\n  - name: detached\n    on: tree\n    run: [python3, -c, '{}']\n    format: sarif\n    timeout: 20s\n  \
             - name: flood\n    on: tree\n    run: [python3, -c, \"{}\"]\n    format: sarif\n",
            detached.replace('\'', "''"),
            flood.replace('\n', "\\n")
        ),
    );
    let started = std::time::Instant::now();
    let out = tf(&project, ["plan", "local-staging", "--format", "json"]).run();
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}:\n{}{}", out.stdout, out.stderr));
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "stamp waited for the detached process");
    let policies = report["accounts"][0]["policies"].as_array().unwrap();
    let error = |i: usize| policies[i]["error"].as_str().unwrap_or_default().to_string();
    assert!(error(0).contains("left a process holding its output open"), "{report:#}");
    assert!(error(1).contains("printed more than 32 MiB"), "{report:#}");
}

#[test]
fn a_plan_file_changed_after_terraform_wrote_it_is_never_applied() {
    let project = Project::local();
    let plan_file = project.path().join(".stamp/data/local-staging/stamp.tfplan");
    // A saved plan, made before anything tampers with plan files.
    // (Exit 2: it has changes.)
    tf(&project, ["plan", "local-staging", "--out", "saved.json"]).run().failure(2);
    // A plan policy (a stand-in printing SARIF without findings) that also appends a byte to
    // the plan file it was given to check.
    let tamper = format!(
        "#!/usr/bin/env python3\nimport json\nopen({:?}, 'ab').write(b'\\0')\nprint(json.dumps({{'version': '2.1.0', 'runs': [{{'tool': {{'driver': {{'name': 'tamper'}}}}, 'results': []}}]}}))\n",
        plan_file.display().to_string()
    );
    let script = project.path().join("policies/tamper.py");
    write_executable(&script, &tamper);
    append(
        &project,
        ARCHETYPE,
        &format!("policies:\n  - name: tamper\n    on: plan\n    run: [{}]\n    format: sarif\n", script.display()),
    );
    let refused = "is not the one Terraform wrote when it was planned";
    // Planned, pinned and applied in a later run; planned and saved; a saved plan applied.
    for args in [
        vec!["apply", "local-staging", "--auto-approve"],
        vec!["plan", "local-staging", "--out", "again.json"],
        vec!["apply", "--plan", "saved.json", "--auto-approve"],
    ] {
        let out = project.tf(&args).env("STAMP_VERSION", "1.0.0").run();
        assert_ne!(out.code, 0, "{args:?}");
        let said = format!("{}{}", out.stdout, out.stderr);
        assert!(said.contains(refused), "{args:?}: {said}");
        assert!(!project.env_dir("local-staging").exists(), "{args:?} applied a plan no one saw");
    }
    assert!(!project.path().join("again.json").exists());
}
