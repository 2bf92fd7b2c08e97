//! The policy gate of the shipped AWS blueprints: every AWS fixture account and variant,
//! rendered, passes the pinned checkov (`scripts/install-checkov.sh`) with no failed check,
//! and every check it skips carries a written reason (`#checkov:skip=CKV_...: reason`).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{Project, checkov};
use serde_json::Value;

/// Account files (fixtures and variants) whose archetype deploys to AWS.
fn aws_accounts(project: &Project) -> Vec<String> {
    let mut accounts = Vec::new();
    for folder in ["fixtures/accounts", "fixtures/variants"] {
        for entry in fs_err::read_dir(project.path().join(folder)).unwrap() {
            let path = entry.unwrap().path();
            // Account files only (`make demo` leaves an empty `playgrounds/` folder behind).
            if !path.is_file() || path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = fs_err::read_to_string(&path).unwrap();
            let archetype = text.lines().find_map(|l| l.strip_prefix("archetype:")).map(str::trim).unwrap();
            let archetype_file = project.read(&format!("archetypes/{archetype}/archetype.yaml"));
            if archetype_file.lines().any(|l| l.trim() == "provider: aws") {
                accounts.push(format!("{folder}/{}", path.file_name().unwrap().to_string_lossy()));
            }
        }
    }
    accounts.sort();
    accounts
}

/// `checkov -d DIR` offline, as JSON (one report: every tree under DIR is its own module).
fn run_checkov(dir: &Path) -> Value {
    let output = Command::new(checkov())
        .args(["--directory", ".", "--framework", "terraform", "--skip-download", "--compact", "--output", "json"])
        .current_dir(dir)
        .env("BC_SKIP_MAPPING", "TRUE")
        .output()
        .expect("run checkov");
    // Exit code 1 means failed checks: the report says which.
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "checkov failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("checkov printed no JSON report ({e}):\n{}", String::from_utf8_lossy(&output.stderr))
    })
}

fn line(check: &Value) -> String {
    format!(
        "{} {} in {}: {}",
        check["check_id"].as_str().unwrap_or("?"),
        check["resource"].as_str().unwrap_or("?"),
        check["file_path"].as_str().unwrap_or("?"),
        check["check_name"].as_str().unwrap_or("?"),
    )
}

#[test]
fn every_aws_account_passes_checkov_with_reasons_for_each_skip() {
    let project = Project::example();
    let accounts = aws_accounts(&project);
    assert!(accounts.len() >= 13, "expected the AWS fixture accounts and variants, found {accounts:?}");
    let mut trees = BTreeSet::new();
    for account in &accounts {
        let name = Path::new(account).file_stem().unwrap().to_string_lossy().to_string();
        project
            .stamp(["render", account.as_str(), "--out", &format!("out/{name}"), "--version", "1.0.0"])
            .run()
            .success();
        trees.insert(name);
    }

    let report = run_checkov(&project.path().join("out"));
    let results = &report["results"];
    let list = |key: &str| results[key].as_array().cloned().unwrap_or_default();

    let failed: Vec<String> = list("failed_checks").iter().map(line).collect();
    assert!(failed.is_empty(), "checkov found {} failed check(s):\n{}", failed.len(), failed.join("\n"));
    let parsing_errors = list("parsing_errors");
    assert!(parsing_errors.is_empty(), "checkov could not parse: {parsing_errors:?}");

    let unexplained: Vec<String> = list("skipped_checks")
        .iter()
        .filter(|check| {
            let reason = check["check_result"]["suppress_comment"].as_str().unwrap_or_default().trim();
            reason.is_empty() || reason == "No comment provided"
        })
        .map(line)
        .collect();
    assert!(unexplained.is_empty(), "skipped without a reason:\n{}", unexplained.join("\n"));

    // Every tree was scanned, not only some (a tree checkov cannot read passes nothing).
    let scanned: BTreeSet<String> = list("passed_checks")
        .iter()
        .filter_map(|check| check["file_path"].as_str())
        .filter_map(|path| path.trim_start_matches('/').split('/').next().map(str::to_string))
        .collect();
    assert_eq!(scanned, trees, "checkov did not scan every rendered tree");
}

/// The example AWS archetypes declare checkov as their policy: `stamp check --policies` passes
/// on today's blueprints and names the check a regression breaks.
#[test]
fn the_example_archetypes_gate_on_checkov() {
    let project = Project::example();
    let tools = checkov().parent().unwrap().to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(tools).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let check = || project.stamp(["check", "--policies", "production", "data-prod"]).env("PATH", &path).run();
    let out = check();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);

    // The default security group left open again: the policy names the check.
    let network = "blueprints/service-platform/network.tf.j2";
    let text = project.read(network);
    let start = text.find("resource \"aws_default_security_group\"").unwrap();
    let end = start + text[start..].find("\n}\n").unwrap() + 3;
    project.write(network, &format!("{}{}", &text[..start], &text[end..]));
    let out = check();
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("account `production` fails its policy checks"), "{}", out.stderr);
    assert!(out.stderr.contains("CKV2_AWS_12"), "{}", out.stderr);
    assert!(!out.stderr.contains("data-prod"), "data-engineering is unchanged: {}", out.stderr);
}
