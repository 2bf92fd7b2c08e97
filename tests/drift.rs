//! Version drift against real local-platform deployments made with the real Terraform: deploy a
//! version, change the blueprint (behind), change the infrastructure outside Stamp (live
//! drift), compare with the reference (parity); the HTML report in a real headless browser;
//! promotion through the ledger.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Project;

/// Deploys local-staging and local-prod at a first commit, then commits a blueprint change and
/// removes a resource from local-staging's state by hand.
fn drifted_project() -> Project {
    let project = Project::local();
    project.commit_all("first version");
    project.tf(["apply", "local-staging", "local-prod", "--auto-approve"]).run().success();
    let outputs = "blueprints/local-platform/outputs.tf";
    project.write(outputs, &format!("{}\noutput \"extra\" {{\n  value = 1\n}}\n", project.read(outputs)));
    project.commit_all("second version");
    let work = project.path().join(".stamp/work/local-staging");
    let status = common::terraform_command(&work)
        .env("TF_DATA_DIR", project.path().join(".stamp/data/local-staging"))
        .args(["state", "rm", "terraform_data.service"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    project
}

#[test]
fn drift_reports_versions_behind_live_drift_and_parity() {
    let project = drifted_project();
    let git = common::GitLog::new(&project);
    let json = project
        .tf(["drift", "local-staging", "local-prod", "--reference", "local-prod", "--format", "json"])
        .env("PATH", &git.path)
        .run()
        .success();
    // Both accounts were deployed from the first commit: it is read once, from git's objects,
    // not extracted whole for each account.
    let calls = git.calls();
    assert_eq!(calls.lines().filter(|c| c.contains(" ls-tree ")).count(), 1, "{calls}");
    assert!(!calls.lines().any(|c| c.contains(" archive ")), "{calls}");
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let by_name =
        |name: &str| report["accounts"].as_array().unwrap().iter().find(|a| a["account"] == name).unwrap().clone();
    let (staging, prod) = (by_name("local-staging"), by_name("local-prod"));
    assert_eq!(staging["status"], "drifted");
    assert_eq!(staging["commits_behind"], 1);
    assert_eq!(staging["live_drift"], true);
    assert_eq!(staging["drifted"][0], "+ terraform_data.service");
    assert_eq!(prod["status"], "behind");
    assert_eq!(prod["live_drift"], false);
    assert_eq!(prod["commits_behind"], 1);
    // local-staging differs from local-prod only in allowed ways, but for its AZ count.
    let parity: Vec<&str> = staging["parity"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(parity, vec!["network.azs"]);
    let text = project.tf(["drift", "local-staging", "local-prod", "--reference", "local-prod"]).run().success();
    assert!(text.stdout.contains("live drift: + terraform_data.service"), "{}", text.stdout);
    assert!(text.stdout.contains("parity: network.azs is 2 here, 3 in local-prod"), "{}", text.stdout);
    let never = project.tf(["drift", "local-staging", "qa", "--reference", "local-prod"]).run().success();
    assert!(never.stdout.contains("qa             qa           unknown"), "{}", never.stdout);
}

fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("STAMP_TEST_CHROMIUM") {
        return PathBuf::from(path);
    }
    which_chromium().expect("no chromium for the HTML report test: run `make test` (or `scripts/install-chromium.sh`)")
}

fn which_chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        let out = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().ok()?;
        out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    })
}

fn headless(page: &Path, extra: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap()
}

/// The pixels of a PNG as RGB triples.
fn pixels(png_path: &Path) -> Vec<[u8; 3]> {
    let decoder = png::Decoder::new(fs_err::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let channels = info.color_type.samples();
    buffer[..info.buffer_size()].chunks(channels).map(|p| [p[0], p[1], p[2]]).collect()
}

#[test]
fn html_report_renders_in_a_real_browser() {
    let project = drifted_project();
    project
        .tf([
            "drift",
            "local-staging",
            "local-prod",
            "--reference",
            "local-prod",
            "--format",
            "html",
            "--out",
            "drift.html",
        ])
        .run()
        .success();
    let page = project.path().join("drift.html");
    let html = project.read("drift.html");
    assert!(!html.contains("<script"), "the page must be self-contained and static");
    assert!(!html.contains("http://") && !html.contains("https://"), "the page must not load anything");

    // The browser's DOM has the table with one row per environment.
    let dom = headless(&page, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("<tr class=").count(), 2, "{dom}");
    assert!(dom.contains("<span class=\"status drifted\">drifted</span>"), "{dom}");

    // A screenshot shows the coloured status badges: the table really rendered.
    let shot = project.path().join("drift.png");
    let out = headless(&page, &[&format!("--screenshot={}", shot.display()), "--window-size=1400,500"]);
    assert!(shot.is_file(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let pixels = pixels(&shot);
    let count = |rgb: [u8; 3]| pixels.iter().filter(|p| p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 6)).count();
    let drifted_red = count([0xcf, 0x22, 0x2e]);
    let behind_amber = count([0xbf, 0x87, 0x00]);
    assert!(drifted_red > 200, "no red `drifted` badge in the screenshot ({drifted_red} pixels)");
    assert!(behind_amber > 200, "no amber `behind` badge in the screenshot ({behind_amber} pixels)");
}

#[test]
fn drift_report_snapshots_in_every_format() {
    let project = drifted_project();
    let md = project
        .tf(["drift", "local-staging", "local-prod", "--reference", "local-prod", "--format", "markdown"])
        .run()
        .success();
    let commit = project.git(&["rev-parse", "--short=12", "HEAD"]);
    let first = project.git(&["rev-parse", "--short=12", "HEAD~1"]);
    let redact = |text: &str| text.replace(&commit, "[HEAD]").replace(&first, "[FIRST]");
    snapshot!("drift_markdown", redact(&md.stdout));
    let text = project.tf(["drift", "local-staging", "local-prod", "--reference", "local-prod"]).run().success();
    snapshot!("drift_text", redact(&text.stdout));
    let json = project
        .tf(["drift", "local-staging", "local-prod", "--reference", "local-prod", "--format", "json"])
        .run()
        .success();
    snapshot!("drift_json", redact(&json.stdout));
    let html = project
        .tf(["drift", "local-staging", "local-prod", "--reference", "local-prod", "--format", "html"])
        .run()
        .success();
    snapshot!("drift_html", redact(&html.stdout));
}

#[test]
fn promotion_needs_every_earlier_stage_to_have_passed() {
    let project = Project::local();
    project.write("stamp.yaml", &format!("{}\npromotion: [staging, production]\n", project.read("stamp.yaml")));
    let refused = project.tf(["promote", "1.0.0", "--to", "production", "--auto-approve"]).run().failure(1);
    assert!(
        refused.stderr.contains("has not been applied and smoke-tested successfully in stage `staging`"),
        "{}",
        refused.stderr
    );
    project.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
    let ledger = project.read(".stamp/ledger/local-staging.jsonl");
    assert!(ledger.contains("\"outcome\":\"succeeded\""), "{ledger}");
    assert!(ledger.contains("\"smoke_tests_passed\":true"), "{ledger}");
    // Another version passed staging? No: only 1.0.0 did.
    let other = project.tf(["promote", "1.1.0", "--to", "production", "--auto-approve"]).run().failure(1);
    assert!(other.stderr.contains("version 1.1.0 (commit none) has not been applied"), "{}", other.stderr);
    // Production has two accounts (production and local-prod); promote builds and applies each
    // from its artifact. AWS accounts cannot be applied here, so promote the local ones only.
    for aws in ["production", "data-prod"] {
        fs_err::remove_file(project.path().join(format!("fixtures/accounts/{aws}.yaml"))).unwrap();
    }
    let promoted = project.tf(["promote", "1.0.0", "--to", "production", "--auto-approve"]).run().success();
    assert!(promoted.stdout.contains("local-prod: applied"), "{}", promoted.stdout);
    assert!(project.path().join("dist/local-prod-1.0.0.tar.gz").is_file());
    let prod_ledger = project.read(".stamp/ledger/local-prod.jsonl");
    assert!(prod_ledger.contains("\"version\":\"1.0.0\""), "{prod_ledger}");
}

/// The deployed version is rebuilt from its commit, but planned against the state where
/// `stamp.yaml` keeps it now (a local state's path is given at `init`; a backend block is
/// rendered with today's settings): a state folder moved since is no drift.
#[test]
fn drift_plans_against_the_state_where_it_is_kept_now() {
    let project = Project::local();
    project.commit_all("first version");
    project.tf(["apply", "local-prod", "--auto-approve"]).run().success();
    fs_err::rename(project.path().join(".stamp/state"), project.path().join(".stamp/state-moved")).unwrap();
    // As after `terraform init -migrate-state`: Terraform's record of the old backend is gone.
    fs_err::remove_file(project.path().join(".stamp/data/local-prod/terraform.tfstate")).unwrap();
    project.write("stamp.yaml", &project.read("stamp.yaml").replace("dir: .stamp/state", "dir: .stamp/state-moved"));
    project.commit_all("the local state moves");
    let json = project.tf(["drift", "local-prod", "--format", "json"]).run().success();
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["accounts"][0]["live_drift"], false, "{}", json.stdout);
}
