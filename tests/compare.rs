//! `stamp diff` and `stamp affected`: comparing accounts across the working tree, git
//! revisions and artifacts.

mod common;

use common::Project;

#[test]
fn staging_against_production_shows_only_real_differences() {
    let project = Project::local();
    let raw = project.stamp(["diff", "production", "staging", "--version", "1.0.0"]).run().failure(1);
    let normalised = project
        .stamp(["diff", "production", "staging", "--ignore-account-values", "--version", "1.0.0"])
        .run()
        .failure(1);
    assert!(normalised.stdout.len() < raw.stdout.len() / 2, "normalising did not shrink the diff");
    assert!(!normalised.stdout.contains("10.1.0.0"), "addresses were not normalised:\n{}", normalised.stdout);
    snapshot!("diff_staging_production_text", normalised.stdout);
    let markdown = project
        .stamp([
            "diff",
            "production",
            "staging",
            "--ignore-account-values",
            "--format",
            "markdown",
            "--version",
            "1.0.0",
        ])
        .run()
        .failure(1);
    snapshot!("diff_staging_production_markdown", markdown.stdout);
    let json = project
        .stamp(["diff", "production", "staging", "--ignore-account-values", "--format", "json", "--version", "1.0.0"])
        .run()
        .failure(1);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let paths: Vec<&str> = value["config"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"cluster.capacity.instance_type"), "{paths:?}");
    assert!(!paths.contains(&"network.cidr"), "account values were not ignored: {paths:?}");
    snapshot!("diff_staging_production_json", json.stdout);
}

#[test]
fn identical_sides_exit_zero_and_errors_exit_two() {
    let project = Project::local();
    let same = project.stamp(["diff", "qa", "qa", "--version", "1.0.0"]).run().success();
    assert!(same.stdout.ends_with("identical\n"), "{}", same.stdout);
    let unknown = project.stamp(["diff", "qa", "nope"]).run().failure(2);
    assert!(unknown.stderr.contains("unknown account `nope`"), "{}", unknown.stderr);
}

#[test]
fn sensitive_values_are_redacted_in_diffs() {
    let project = Project::local();
    project.mark_sensitive("owner");
    let path = "fixtures/accounts/local-staging.yaml";
    project.write(
        path,
        &project.read(path).replace("owner: platform-team@acme.example", "owner: s3cr3t-owner@acme.example"),
    );
    let out = project.stamp(["diff", "local-prod", "local-staging", "--version", "1.0.0"]).run().failure(1);
    assert!(!out.stdout.contains("s3cr3t"), "a sensitive value leaked:\n{}", out.stdout);
}

/// A side read at a revision is as careful as today's schema: across the commit that marks a
/// value `writeOnly`, the value is redacted on both sides (the revision's side once showed it,
/// beside today's `<redacted>`).
#[test]
fn a_value_marked_sensitive_since_a_revision_is_redacted_on_both_sides() {
    let project = Project::local();
    let path = "fixtures/accounts/local-staging.yaml";
    project.write(
        path,
        &project.read(path).replace("owner: platform-team@acme.example", "owner: s3cr3t-owner@acme.example"),
    );
    project.commit_all("the owner is no secret yet");
    project.mark_sensitive("owner");
    for format in ["text", "json"] {
        let args = ["diff", "local-staging@HEAD", "local-staging", "--version", "1.0.0", "--format", format];
        let out = project.stamp(args).run();
        assert!(out.code == 0 || out.code == 1, "{}", out.snapshot());
        assert!(
            !format!("{}{}", out.stdout, out.stderr).contains("s3cr3t"),
            "a sensitive value leaked:\n{}",
            out.stdout
        );
    }
}

/// A value of another shape where secrets belong (a string where a map of secrets goes, which
/// this schema lets through) may be a secret written one level too high: a diff shows it
/// redacted, as an artifact's `config.json` does.
#[test]
fn a_value_misshapen_where_secrets_belong_is_redacted_in_diffs() {
    let project = Project::local();
    let path = "archetypes/local-platform/schema.json";
    let mut schema: serde_json::Value = serde_json::from_str(&project.read(path)).unwrap();
    schema["properties"]["vault"] = serde_json::json!({"additionalProperties": {"type": "string", "writeOnly": true}});
    project.write(path, &serde_json::to_string_pretty(&schema).unwrap());
    let account = "fixtures/accounts/local-staging.yaml";
    project.write(account, &format!("{}vault: flat-secret-9\n", project.read(account)));
    let out = project.stamp(["diff", "local-prod", "local-staging", "--version", "1.0.0"]).run().failure(1);
    assert!(!out.stdout.contains("flat-secret"), "a value where secrets belong leaked:\n{}", out.stdout);
    assert!(out.stdout.contains("vault"), "{}", out.stdout);
    // Nor does a playground's file, written from it, hold it.
    project.commit_all("initial");
    let args = ["playground", "new", "flat", "--from", "local-staging", "--owner", "ana@acme.example", "--no-apply"];
    project.tf(args).run().success();
    let file = project.read("fixtures/accounts/playgrounds/flat.yaml");
    assert!(!file.contains("flat-secret"), "{file}");
}

/// A diff on a terminal shows no control text: not from a rendered value (a text-direction
/// override inside an HCL string), nor from a blueprint file's name.
#[test]
fn a_diff_never_gives_a_terminal_control_text() {
    let project = Project::local();
    project.commit_all("init");
    let path = "fixtures/accounts/local-staging.yaml";
    project.write(path, &project.read(path).replace("CostCenter: platform", "CostCenter: \"te\\u202eam\\u2028x\""));
    project.write("blueprints/local-platform/note\n+++ fake\u{1b}[31m.txt", "hello\n");
    let out = project.stamp(["diff", "local-qa@HEAD", "local-staging", "--version", "1.0.0"]).run().failure(1);
    assert!(out.stdout.contains("rendered Terraform:"), "{}", out.stdout);
    assert!(!out.stdout.chars().any(|c| stamp::text::needs_escape(c) && c != '\n'), "{:?}", out.stdout);
    assert!(out.stdout.contains("+++ b/note\\n+++ fake\\u{1b}[31m.txt\n"), "{}", out.stdout);
    // Written into the rendered file as HCL's escapes, which Terraform reads as the value.
    assert!(out.stdout.contains("= \"te\\u202Eam\\u2028x\""), "{}", out.stdout);
}

#[test]
fn account_at_revision_and_artifact_sides() {
    let project = Project::local();
    project.commit_all("init");
    project.stamp(["build", "qa", "--version", "1.0.0"]).run().success();
    let path = "fixtures/accounts/qa.yaml";
    project.write(path, &project.read(path).replace("instance_type: m6i.large", "instance_type: m6i.2xlarge"));
    project.commit_all("bigger qa");
    let out = project.stamp(["diff", "qa@HEAD~1", "qa", "--version", "1.0.0"]).run().failure(1);
    assert!(out.stdout.contains("~ cluster.capacity.instance_type: m6i.large -> m6i.2xlarge"), "{}", out.stdout);
    assert!(
        out.stdout.contains("-  instance_type = \"m6i.large\"\n+  instance_type = \"m6i.2xlarge\""),
        "{}",
        out.stdout
    );
    let artifact = project.stamp(["diff", "dist/qa-1.0.0.tar.gz", "qa", "--version", "1.0.0"]).run().failure(1);
    assert!(artifact.stdout.contains("m6i.2xlarge"), "{}", artifact.stdout);
    let bad = project.stamp(["diff", "qa@no-such-rev", "qa"]).run().failure(2);
    assert!(bad.stderr.contains("unknown git revision `no-such-rev`"), "{}", bad.stderr);
}

#[test]
fn affected_accounts_follow_blueprint_schema_and_account_changes() {
    let project = Project::local();
    let base = project.commit_all("init");
    // Nothing changed.
    let none = project.stamp(["affected", "--since", &base]).run().success();
    assert_eq!(none.stdout, "");

    // One account.
    let path = "fixtures/accounts/qa.yaml";
    project.write(path, &project.read(path).replace("instance_type: m6i.large", "instance_type: m6i.2xlarge"));
    let one = project.stamp(["affected", "--since", &base]).run().success();
    assert_eq!(one.stdout, "qa\n");
    let matrix = project.stamp(["affected", "--since", &base, "--format", "github-matrix"]).run().success();
    assert_eq!(matrix.stdout, "{\"include\":[{\"account\":\"qa\"}]}\n");
    let after_account = project.commit_all("qa change");

    // A blueprint: every account of that blueprint.
    project.write("blueprints/local-platform/extra.tf", "locals {\n  extra = true\n}\n");
    let blueprint = project.stamp(["affected", "--since", &after_account]).run().success();
    assert_eq!(blueprint.stdout, "local-prod\nlocal-qa\nlocal-staging\n");
    let after_blueprint = project.commit_all("blueprint change");

    // A schema change that does not change any output: nobody.
    let schema = "archetypes/data-engineering/schema.json";
    let mut value: serde_json::Value = serde_json::from_str(&project.read(schema)).unwrap();
    value["description"] = "a clearer description".into();
    project.write(schema, &serde_json::to_string_pretty(&value).unwrap());
    let schema_only = project.stamp(["affected", "--since", &after_blueprint]).run().success();
    assert_eq!(schema_only.stdout, "");

    // A new account and a removed one.
    project.write(
        "fixtures/accounts/local-dev.yaml",
        &project
            .read("fixtures/accounts/local-staging.yaml")
            .replace("environment: staging", "environment: dev")
            .replace("10.41.0.0/16", "10.43.0.0/16")
            .replace("staging.local.acme.internal", "dev.local.acme.internal"),
    );
    fs_err::remove_file(project.path().join("fixtures/accounts/demo.yaml")).unwrap();
    let json = project.stamp(["affected", "--since", &after_blueprint, "--format", "json"]).run().success();
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let reasons: Vec<(String, String)> = value["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["account"].as_str().unwrap().to_string(), a["reason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        reasons,
        vec![("demo".to_string(), "removed".to_string()), ("local-dev".to_string(), "added".to_string())]
    );
}

#[test]
fn plan_only_the_affected_accounts() {
    let project = Project::local();
    let base = project.commit_all("init");
    let none = project.stamp(["plan", "--affected-since", &base]).run().success();
    assert!(none.stderr.contains("no account is affected"), "{}", none.stderr);
    let path = "fixtures/accounts/local-staging.yaml";
    project.write(path, &project.read(path).replace("replicas: 1", "replicas: 2"));
    let out = project.tf(["plan", "--affected-since", &base]).run().failure(2);
    assert!(out.stdout.contains("local-staging (staging"), "{}", out.stdout);
    assert!(!out.stdout.contains("local-prod"), "{}", out.stdout);
}

/// A folder `stamp.yaml` reaches with `..` out of the git repository is not in any revision:
/// reading a revision refuses it rather than read whatever is at that place beside the
/// temporary folder the revision is extracted to.
#[test]
fn a_revision_never_reads_a_folder_outside_the_repository() {
    let project = Project::example();
    let outside = tempfile::tempdir().unwrap();
    fs_err::rename(project.path().join("blueprints"), outside.path().join("blueprints")).unwrap();
    let name = outside.path().file_name().unwrap().to_str().unwrap();
    let settings =
        project.read("stamp.yaml").replace("blueprints: blueprints", &format!("blueprints: ../{name}/blueprints"));
    project.write("stamp.yaml", &settings);
    project.stamp(["check"]).run().success();
    project.commit_all("blueprints beside the repository");
    let out = project.stamp(["affected", "--since", "HEAD"]).run();
    assert!(out.stderr.contains("leads outside the git repository"), "{}", out.stderr);
    assert_ne!(out.code, 0);

    // The same through a link committed in the repository.
    std::os::unix::fs::symlink(format!("../{name}/blueprints"), project.path().join("shared")).unwrap();
    project.write("stamp.yaml", &settings.replace(&format!("blueprints: ../{name}/blueprints"), "blueprints: shared"));
    project.stamp(["check"]).run().success();
    project.commit_all("blueprints through a link");
    let out = project.stamp(["affected", "--since", "HEAD"]).run();
    assert!(out.stderr.contains("`blueprints: shared` in `stamp.yaml`"), "{}", out.stderr);
    assert_ne!(out.code, 0);
}

/// A commit can hold a tree entry named `..` (made with git's plumbing; a checkout refuses
/// it): reading that revision never writes outside its temporary folder.
#[test]
fn a_revision_with_dot_dot_in_its_tree_writes_nothing_outside() {
    let project = Project::example();
    project.commit_all("first");
    let script = r#"set -e
tab=$(printf '\t')
blob=$(printf 'written outside\n' | git hash-object -w --stdin)
t1=$(printf '100644 blob %s\tescaped\n' "$blob" | git mktree)
t2=$(printf '040000 tree %s\t..\n' "$t1" | git mktree)
t3=$( (git ls-tree HEAD:archetypes; printf '040000 tree %s\t..\n' "$t2") | git mktree)
top=$( (git ls-tree HEAD | grep -v "${tab}archetypes\$"; printf '040000 tree %s\tarchetypes\n' "$t3") | git mktree)
git -c user.name=t -c user.email=t@t commit-tree "$top" -p HEAD -m evil
"#;
    let out = std::process::Command::new("sh").args(["-c", script]).current_dir(project.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let evil = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let listed = project.git(&["ls-tree", "-r", "--name-only", &evil]);
    assert!(listed.contains("archetypes/../../escaped"), "{listed}");
    // Revisions are extracted into a temporary folder made here.
    let tmp = project.path().join("tmp");
    fs_err::create_dir_all(&tmp).unwrap();
    let _ = project.stamp(["affected", "--since", &evil]).env("TMPDIR", &tmp).run();
    let _ = project.stamp(["diff", &format!("qa@{evil}"), "qa"]).env("TMPDIR", &tmp).run();
    assert!(!tmp.join("escaped").exists(), "a file was written outside the revision's folder");
    assert!(!project.path().join("escaped").exists());
}
