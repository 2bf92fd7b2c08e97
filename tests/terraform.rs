//! Stamp driving the real Terraform (the pinned one `make test` installs) against
//! local-platform accounts: plan exit codes, apply, idempotence, hooks and smoke tests,
//! protection, saved plans, retries and locks. Fakes appear only for failure injection and are
//! named so.

mod common;

use common::{Project, write_executable};

fn append(project: &Project, account: &str, text: &str) {
    let path = format!("fixtures/accounts/{account}.yaml");
    let old = project.read(&path);
    project.write(&path, &format!("{old}\n{text}"));
}

#[test]
fn plan_apply_idempotence_output_destroy() {
    let project = Project::local();
    let plan = project.tf(["plan", "local-staging", "--version", "1.0.0"]).run().failure(2);
    assert!(plan.stdout.contains("5 to add, 0 to change, 0 to replace, 0 to destroy"), "{}", plan.stdout);

    let apply = project.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
    assert!(apply.stdout.contains("local-staging: applied"), "{}", apply.stdout);
    assert!(apply.stdout.contains("smoke test `environment is healthy` passed"), "{}", apply.stdout);
    let database = project.env_dir("local-staging").join("data.sqlite");
    assert!(database.is_file(), "apply created no database");

    // The same version again: nothing to do, and plan says so with exit code 0.
    let again = project.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
    assert!(again.stdout.contains("no changes: local-staging"), "{}", again.stdout);
    project.tf(["plan", "local-staging", "--version", "1.0.0"]).run().success();

    let output = project.tf(["output", "local-staging", "--version", "1.0.0"]).run().success();
    let stamp: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(stamp["environment_version"], "1.0.0+none");
    assert_eq!(stamp["account"], "local-staging");

    // A new version only updates tags in place: nothing is replaced.
    let bump = project.tf(["plan", "local-staging", "--version", "1.0.1"]).run().failure(2);
    assert!(bump.stdout.contains("0 to add, 5 to change, 0 to replace, 0 to destroy"), "{}", bump.stdout);

    let destroy = project.tf(["destroy", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
    assert!(destroy.stdout.contains("local-staging: destroyed"), "{}", destroy.stdout);
    assert!(!project.env_dir("local-staging").exists(), "destroy left the environment");
}

#[test]
fn plan_summaries_in_three_formats() {
    let project = Project::local();
    let text = project.tf(["plan", "local-staging", "local-prod", "--version", "1.0.0"]).run().failure(2);
    snapshot!("plan_text", text.stdout);
    let markdown = project
        .tf(["plan", "local-staging", "local-prod", "--version", "1.0.0", "--format", "markdown"])
        .run()
        .failure(2);
    snapshot!("plan_markdown", markdown.stdout);
    assert!(project.path().join(".stamp/reports/plan.md").is_file());
    // A report file the user names is where they say, from the folder they are in, as every
    // path they give.
    let args = ["plan", "local-staging", "--version", "1.0.0", "--format", "markdown", "--report-file", "out/plan.md"];
    project.tf_in("ci", args).run().failure(2);
    assert!(project.path().join("ci/out/plan.md").is_file());
    assert!(!project.path().join("out").exists());
    let json =
        project.tf(["plan", "local-staging", "local-prod", "--version", "1.0.0", "--format", "json"]).run().failure(2);
    let mut value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    for account in value["accounts"].as_array_mut().unwrap() {
        account["elapsed_ms"] = 0.into();
    }
    snapshot!("plan_json", serde_json::to_string_pretty(&value).unwrap());
}

#[test]
fn apply_refuses_without_a_terminal_or_approval() {
    let project = Project::local();
    let out = project.tf(["apply", "local-staging"]).run().failure(1);
    assert!(out.stderr.contains("refusing to apply without a terminal"), "{}", out.stderr);
    assert!(!project.env_dir("local-staging").exists(), "something was applied");
}

#[test]
fn smoke_test_is_retried_until_it_passes() {
    let project = Project::local();
    append(
        &project,
        "local-staging",
        "hooks:\n  smoke_tests:\n    - name: settles on the second try\n      run: 'test -f \"$STAMP_ROOT/settled\" || { touch \"$STAMP_ROOT/settled\"; exit 1; }'\n      interval: 100ms\n      deadline: 20s\n",
    );
    let out = project.tf(["apply", "local-staging", "--auto-approve"]).run().success();
    assert!(out.stdout.contains("smoke test `settles on the second try` passed after 2 attempts"), "{}", out.stdout);
}

#[test]
fn hooks_get_facts_by_environment_never_by_interpolation() {
    let project = Project::local();
    append(
        &project,
        "local-staging",
        "hooks:\n  post_deploy:\n    - name: record facts\n      run: [sh, -c, 'env | grep ^STAMP_ | sort > \"$STAMP_ROOT/../../facts.txt\"']\n",
    );
    project.tf(["apply", "local-staging", "--auto-approve", "--version", "2.0.0"]).run().success();
    let facts = project.read(".stamp/facts.txt");
    for expected in [
        "STAMP_ACCOUNT=local-staging",
        "STAMP_ENVIRONMENT=staging",
        "STAMP_VERSION=2.0.0+none",
        "STAMP_OUTPUT_DNS_ZONE=staging.local.acme.internal",
    ] {
        assert!(facts.contains(expected), "{expected} missing in:\n{facts}");
    }
}

fn failing_smoke(project: &Project) {
    append(
        project,
        "local-staging",
        "ephemeral: true\nttl: 1h\nhooks:\n  smoke_tests:\n    - name: never healthy\n      run: [sh, -c, 'echo database unreachable; exit 1']\n      interval: 100ms\n      deadline: 300ms\n",
    );
}

#[test]
fn failed_smoke_test_destroys_an_ephemeral_account() {
    let project = Project::local();
    failing_smoke(&project);
    let out = project.tf(["apply", "local-staging", "--auto-approve"]).run().failure(1);
    assert!(out.stdout.contains("smoke test `never healthy` FAILED"), "{}", out.stdout);
    assert!(out.stdout.contains("database unreachable"), "{}", out.stdout);
    assert!(out.stdout.contains("cleanup: destroyed"), "{}", out.stdout);
    assert!(!project.env_dir("local-staging").exists(), "the failed environment was kept");
}

#[test]
fn failed_smoke_test_keeps_the_account_when_asked() {
    let project = Project::local();
    failing_smoke(&project);
    let out = project.tf(["apply", "local-staging", "--auto-approve", "--keep-on-failure"]).run().failure(1);
    assert!(out.stdout.contains("cleanup: kept for inspection"), "{}", out.stdout);
    assert!(project.env_dir("local-staging").join("data.sqlite").is_file());
}

/// A failed smoke test never destroys a protected ephemeral account: the plan approved changed
/// it, it did not destroy it.
#[test]
fn a_failed_smoke_test_never_destroys_a_protected_account() {
    let project = Project::local();
    failing_smoke(&project);
    append(&project, "local-staging", "protected: true\n");
    let out = project.tf(["apply", "local-staging", "--auto-approve"]).run().failure(1);
    assert!(out.stdout.contains("cleanup: kept: the account is protected"), "{}", out.stdout);
    assert!(project.env_dir("local-staging").join("data.sqlite").is_file());
    // Nor with `--confirm`, which approves what this apply's plan shows, not a whole destroy.
    let out = project.tf(["apply", "local-staging", "--auto-approve", "--confirm", "local-staging"]).run().failure(1);
    assert!(out.stdout.contains("cleanup: kept: the account is protected"), "{}", out.stdout);
    assert!(project.env_dir("local-staging").join("data.sqlite").is_file());
}

#[test]
fn protected_accounts_are_not_destroyed_without_confirmation() {
    let project = Project::local();
    project.tf(["apply", "local-prod", "--auto-approve"]).run().success();
    let refused = project.tf(["destroy", "local-prod", "--auto-approve"]).run().failure(1);
    assert!(refused.stderr.contains("needs `--confirm local-prod`"), "{}", refused.stderr);
    assert!(project.env_dir("local-prod").join("data.sqlite").is_file());

    // A plan that replaces the database of a protected account is refused the same way.
    let path = "fixtures/accounts/local-prod.yaml";
    let text = project.read(path).replace("name: orders", "name: orders2");
    project.write(path, &text);
    let replace = project.tf(["apply", "local-prod", "--auto-approve"]).run().failure(1);
    assert!(
        replace.stderr.contains("would destroy stateful resources: `terraform_data.database` (replace)"),
        "{}",
        replace.stderr
    );
    assert!(project.env_dir("local-prod").join("data.sqlite").is_file());

    // The same object moved to an address the archetype does not name (`moved`), and replaced
    // there, is the same database destroyed: live (`apply`) or from a saved plan.
    for file in ["database.tf.j2", "service.tf.j2", "outputs.tf"] {
        let path = format!("blueprints/local-platform/{file}");
        let text = project.read(&path).replace("terraform_data.database", "terraform_data.db");
        project.write(
            &path,
            &text.replace("resource \"terraform_data\" \"database\"", "resource \"terraform_data\" \"db\""),
        );
    }
    let path = "blueprints/local-platform/database.tf.j2";
    project.write(
        path,
        &format!(
            "{}\nmoved {{\n  from = terraform_data.database\n  to   = terraform_data.db\n}}\n",
            project.read(path)
        ),
    );
    let moved = project.tf(["apply", "local-prod", "--auto-approve"]).run().failure(1);
    assert!(
        moved.stderr.contains("would destroy stateful resources: `terraform_data.db` (replace)"),
        "{}",
        moved.stderr
    );
    project.tf(["plan", "local-prod", "--version", "1.0.0", "--out", "moved.plan"]).run().failure(2);
    let saved = project.tf(["apply", "--plan", "moved.plan", "--auto-approve", "--version", "1.0.0"]).run().failure(1);
    assert!(saved.stderr.contains("`terraform_data.db` (replace)"), "{}", saved.stderr);
    assert!(project.env_dir("local-prod").join("data.sqlite").is_file());
    // Moved alone, nothing is lost now, but a later plan would see only the new address, which
    // the archetype does not list: refused until it does.
    let prod = "fixtures/accounts/local-prod.yaml";
    project.write(prod, &project.read(prod).replace("name: orders2", "name: orders"));
    let unlisted = project.tf(["apply", "local-prod", "--auto-approve"]).run().failure(1);
    assert!(unlisted.stderr.contains("moves stateful resources to `terraform_data.db`"), "{}", unlisted.stderr);
    let archetype = "archetypes/local-platform/archetype.yaml";
    let listed = project
        .read(archetype)
        .replace("  - terraform_data.database\n", "  - terraform_data.database\n  - terraform_data.db\n");
    project.write(archetype, &listed);
    project.tf(["apply", "local-prod", "--auto-approve"]).run().success();
    project.write(prod, &project.read(prod).replace("name: orders", "name: orders2"));
    let replace = project.tf(["apply", "local-prod", "--auto-approve"]).run().failure(1);
    assert!(replace.stderr.contains("`terraform_data.db` (replace)"), "{}", replace.stderr);

    project.tf(["destroy", "local-prod", "--confirm", "local-prod"]).run().success();
    assert!(!project.env_dir("local-prod").exists());
}

#[test]
fn saved_plans_are_applied_only_when_still_valid() {
    let project = Project::local();
    project.tf(["plan", "local-staging", "--version", "1.0.0", "--out", "staging.plan"]).run().failure(2);
    project.tf(["plan", "local-prod", "--version", "1.0.0", "--out", "prod.plan"]).run().failure(2);

    // Made for another account.
    let other = project
        .tf(["apply", "local-staging", "--plan", "prod.plan", "--auto-approve", "--version", "1.0.0"])
        .run()
        .failure(1);
    assert!(other.stderr.contains("made for account `local-prod`, not `local-staging`"), "{}", other.stderr);
    // Made from different rendered files.
    let different =
        project.tf(["apply", "--plan", "staging.plan", "--auto-approve", "--version", "1.0.1"]).run().failure(1);
    assert!(different.stderr.contains("made from different rendered files"), "{}", different.stderr);
    // Still valid: applied as it was planned.
    let applied =
        project.tf(["apply", "--plan", "staging.plan", "--auto-approve", "--version", "1.0.0"]).run().success();
    assert!(applied.stdout.contains("local-staging: applied"), "{}", applied.stdout);
    // The state has changed since the plan: stale.
    let stale =
        project.tf(["apply", "--plan", "staging.plan", "--auto-approve", "--version", "1.0.0"]).run().failure(1);
    assert!(stale.stderr.contains("the saved plan is stale"), "{}", stale.stderr);
}

/// `terraform apply PLANFILE` writes to the backend and applies the configuration inside the
/// plan file, wherever it runs: a saved plan of one account relabelled as another's (every
/// field of the file around it copied from the other's saved plan) would replace a protected
/// account's database as the unprotected account's apply. It is refused, as is a plan made
/// against another state than the account has.
#[test]
fn a_saved_plan_applies_only_to_the_account_it_was_made_for() {
    let project = Project::local();
    for account in ["local-prod", "local-staging"] {
        project.tf(["apply", account, "--auto-approve", "--version", "1.0.0"]).run().success();
    }
    let prod = "fixtures/accounts/local-prod.yaml";
    project.write(prod, &project.read(prod).replace("database:\n  name: orders", "database:\n  name: orders2"));
    let staging = "fixtures/accounts/local-staging.yaml";
    project.write(staging, &project.read(staging).replace("replicas: 1", "replicas: 2"));
    project.tf(["plan", "local-prod", "--version", "1.0.0", "--out", "prod.plan"]).run().failure(2);
    project.tf(["plan", "local-staging", "--version", "1.0.0", "--out", "staging.plan"]).run().failure(2);
    let read = |name: &str| -> serde_json::Value { serde_json::from_str(&project.read(name)).unwrap() };
    let mut spliced = read("staging.plan");
    spliced["plan_file"] = read("prod.plan")["plan_file"].clone();
    project.write("spliced.plan", &spliced.to_string());
    let apply = |plan: &str| project.tf(["apply", "--plan", plan, "--auto-approve", "--version", "1.0.0"]).run();
    let prod_state = || project.read(".stamp/state/local-prod/terraform.tfstate");
    let before = prod_state();
    let out = apply("spliced.plan").failure(1);
    assert!(
        out.stderr.contains("the saved plan does not apply what account `local-staging` renders now"),
        "{}",
        out.stderr
    );
    assert_eq!(prod_state(), before, "local-prod's database was replaced");

    // The plan's own configuration, another state of the same account (its lineage changed).
    let state = ".stamp/state/local-staging/terraform.tfstate";
    let mut json: serde_json::Value = serde_json::from_str(&project.read(state)).unwrap();
    json["lineage"] = "00000000-0000-0000-0000-000000000000".into();
    project.write(state, &json.to_string());
    let out = apply("staging.plan").failure(1);
    assert!(out.stderr.contains("made against another state than account `local-staging` has"), "{}", out.stderr);
}

/// Stamp keeps one state per account: a Terraform workspace set in the caller's environment
/// (`TF_WORKSPACE`) would plan another state of the same backend, every resource anew.
#[test]
fn a_workspace_in_the_environment_never_picks_another_state() {
    let project = Project::local();
    project.tf(["apply", "local-staging", "--auto-approve"]).run().success();
    let out = project.tf(["plan", "local-staging"]).env("TF_WORKSPACE", "elsewhere").run();
    assert!(out.stdout.contains("local-platform): 0 to add"), "{}", out.snapshot());
}

/// A FIFO in place of an account's log (or its lock) is refused at once: opening one to write
/// would wait for a reader for ever.
#[test]
fn a_fifo_in_place_of_an_accounts_log_never_hangs_a_run() {
    let project = Project::local();
    let log = project.path().join(".stamp/logs/local-staging.log");
    fs_err::create_dir_all(log.parent().unwrap()).unwrap();
    nix::unistd::mkfifo(&log, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let out = project.tf(["plan", "local-staging"]).run_within(std::time::Duration::from_secs(60));
    assert_ne!(out.code, 0, "{}", out.snapshot());
    assert!(out.stdout.contains("cannot open the log"), "{}", out.snapshot());
}

/// Failure injection: a fake `terraform` whose `output -json` prints values (in clear, as
/// Terraform prints sensitive outputs there) and fails with nothing on stderr. The error names
/// the failure, never those values, which Stamp's log does not hold either.
#[test]
fn a_failed_command_whose_output_holds_values_is_never_quoted() {
    let project = Project::local();
    let fake = project.path().join("fake-terraform-output-fails");
    write_executable(
        &fake,
        &format!(
            "#!/bin/sh\nif [ \"$1\" = output ]; then\n  echo '{{\"dsn\": {{\"sensitive\": true, \"value\": \"postgres://u:hunter2-in-clear@db\"}}}}'\n  exit 1\nfi\nexec \"{}\" \"$@\"\n",
            common::terraform().display()
        ),
    );
    let out = project.tf(["output", "local-staging", "--terraform"]).args([&fake]).run();
    assert_ne!(out.code, 0, "{}", out.snapshot());
    assert!(out.stderr.contains("terraform output"), "{}", out.stderr);
    let log = project.read(".stamp/logs/local-staging.log");
    for text in [&out.stdout, &out.stderr, &log] {
        assert!(!text.contains("hunter2"), "a value in clear:\n{text}");
    }
}

/// Failure injection: a fake `terraform` that fails its first `plan` with a throttling error,
/// then hands every call to the real Terraform.
#[test]
fn transient_errors_are_retried_and_reported() {
    let project = Project::local();
    let fake = project.path().join("fake-terraform-throttles-once");
    let real = common::terraform();
    write_executable(
        &fake,
        &format!(
            "#!/bin/sh\nif [ \"$1\" = plan ] && [ ! -f \"{marker}\" ]; then\n  touch \"{marker}\"\n  echo 'Error: creating thing: ThrottlingException: Rate exceeded' >&2\n  exit 1\nfi\nexec \"{real}\" \"$@\"\n",
            marker = project.path().join("throttled-once").display(),
            real = real.display()
        ),
    );
    let out = project.tf(["plan", "local-staging", "--terraform"]).args([&fake]).run().failure(2);
    assert!(out.stdout.contains("retried: throttling 1"), "{}", out.stdout);
    let log = project.read(".stamp/logs/local-staging.log");
    assert!(log.contains("transient error (throttling: matched `Throttling(Exception)?`)"), "{log}");
}

/// Failure injection: a fake `terraform` that always fails with an error that is not transient.
#[test]
fn other_errors_fail_at_once() {
    let project = Project::local();
    let fake = project.path().join("fake-terraform-broken");
    write_executable(&fake, "#!/bin/sh\necho 'Error: Invalid provider configuration' >&2\nexit 1\n");
    let out = project.tf(["plan", "local-staging", "--terraform"]).args([&fake]).run().failure(1);
    assert!(out.stdout.contains("FAILED"), "{}", out.stdout);
    assert!(out.stdout.contains("Invalid provider configuration"), "{}", out.stdout);
    assert!(!out.stdout.contains("retried"), "{}", out.stdout);
}

#[test]
fn missing_terraform_is_a_clear_error() {
    let project = Project::local();
    let out = project.tf(["plan", "local-staging", "--terraform", "/nonexistent/terraform"]).run().failure(1);
    snapshot!(out.snapshot());
    let doctor = project.tf(["doctor", "--terraform", "/nonexistent/terraform"]).run().failure(1);
    assert!(doctor.stdout.contains("terraform: not found"), "{}", doctor.stdout);
    let ok = project.tf(["doctor"]).run().success();
    assert!(ok.stdout.contains("Terraform 1.15.5 (supported)"), "{}", ok.stdout);
}

/// A fake `terraform` (failure injection) that takes its time, so a second run meets the lock.
#[test]
fn concurrent_runs_on_one_account_are_refused() {
    let project = Project::local();
    let fake = project.path().join("fake-terraform-slow");
    write_executable(&fake, "#!/bin/sh\nsleep 3\nexit 0\n");
    let first = std::process::Command::new(env!("CARGO_BIN_EXE_stamp"))
        .args(["--quiet", "plan", "local-staging", "--terraform"])
        .arg(&fake)
        .current_dir(project.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    let second = project.tf(["plan", "local-staging"]).run().failure(1);
    assert!(second.stdout.contains("is in use by another stamp run"), "{}", second.stdout);
    let output = first.wait_with_output().unwrap();
    assert!(output.status.code().is_some());
}

/// Failure injection: a fake `terraform` that, like the real one, finishes cleanly on SIGINT.
/// Stamp forwards the interrupt and waits for it instead of dying and leaving it behind.
#[test]
fn interrupt_is_forwarded_and_waited_for() {
    let project = Project::local();
    let fake = project.path().join("fake-terraform-interruptible");
    let marker = project.path().join("terraform-saw-sigint");
    write_executable(
        &fake,
        &format!("#!/bin/sh\ntrap 'sleep 1; touch \"{}\"; exit 1' INT\nsleep 30 &\nwait $!\n", marker.display()),
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_stamp"))
        .args(["--quiet", "plan", "local-staging", "--terraform"])
        .arg(&fake)
        .current_dir(project.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id().cast_signed()), nix::sys::signal::Signal::SIGINT)
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(marker.exists(), "terraform never got the interrupt, or Stamp did not wait for it");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("interrupted"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn a_damaged_ledger_is_reported_and_stops_every_change() {
    let project = Project::local();
    project.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
    // One torn byte in the only record: the account's history can no longer be trusted.
    let ledger = project.path().join(".stamp/ledger/local-staging.jsonl");
    let mut bytes = fs_err::read(&ledger).unwrap();
    bytes[12] = 0xff;
    fs_err::write(&ledger, &bytes).unwrap();
    let place = ".stamp/ledger/local-staging.jsonl:1: a damaged ledger record: not UTF-8 text";
    // Commands that only read say so, with the place.
    let list = project.stamp(["list"]).run().success();
    assert!(list.stderr.contains(place), "{}", list.stderr);
    let plan = project.tf(["plan", "local-staging", "--version", "1.0.0"]).run().success();
    assert!(plan.stderr.contains(place), "{}", plan.stderr);
    // Commands that change the account refuse it.
    let refusal = "the ledger of `local-staging` is damaged (`.stamp/ledger/local-staging.jsonl` line 1";
    for args in [
        &["apply", "local-staging", "--auto-approve"][..],
        &["destroy", "local-staging", "--auto-approve"][..],
        &["migrate", "local-staging", "--to-version", "2.0.0", "--auto-approve"][..],
        &["clone", "local-staging", "local-qa", "--auto-approve"][..],
    ] {
        let out = project.tf(args).run().failure(1);
        assert!(out.stderr.contains(refusal), "{args:?}:\n{}", out.stderr);
    }
    assert!(project.env_dir("local-staging").join("data.sqlite").is_file());
    // Repaired (the damaged line removed), the account can be changed again.
    let text = String::from_utf8_lossy(&bytes).lines().skip(1).collect::<Vec<_>>().join("\n");
    fs_err::write(&ledger, text).unwrap();
    project.tf(["destroy", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
}

#[test]
fn a_saved_plan_cannot_hide_what_it_destroys() {
    let project = Project::local();
    project.tf(["apply", "local-prod", "--auto-approve", "--version", "1.0.0"]).run().success();
    // A plan that replaces the protected account's database...
    let path = "fixtures/accounts/local-prod.yaml";
    project.write(path, &project.read(path).replace("name: orders", "name: orders2"));
    project.tf(["plan", "local-prod", "--version", "1.0.0", "--out", "prod.plan"]).run().failure(2);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs_err::metadata(project.path().join("prod.plan")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "a saved plan holds variables in clear: owner only");
    // ...edited to say it changes nothing, in the format earlier Stamps trusted.
    let mut saved: serde_json::Value = serde_json::from_str(&project.read("prod.plan")).unwrap();
    saved["format"] = "stamp-plan/1".into();
    saved["summary"] = serde_json::json!({"changes": [], "output_changes": [], "terraform_version": null});
    project.write("prod.plan", &saved.to_string());
    let out = project.tf(["apply", "--plan", "prod.plan", "--auto-approve", "--version", "1.0.0"]).run().failure(1);
    assert!(
        out.stderr.contains("would destroy stateful resources: `terraform_data.database` (replace)"),
        "{}",
        out.stderr
    );
    assert!(project.env_dir("local-prod").join("data.sqlite").is_file(), "the database was replaced");
    // With the confirmation the protection asks for, the same file applies.
    let confirmed = project
        .tf(["apply", "--plan", "prod.plan", "--auto-approve", "--version", "1.0.0", "--confirm", "local-prod"])
        .run()
        .success();
    assert!(confirmed.stdout.contains("local-prod: applied"), "{}", confirmed.stdout);
}

#[test]
fn an_artifact_plan_holds_no_secret() {
    let project = Project::local();
    project.write(
        "blueprints/local-platform/token.tf",
        "variable \"api_token\" {\n  type      = string\n  sensitive = true\n}\n\nvariable \"region_hint\" {\n  type    = string\n  default = \"\"\n}\n\nresource \"terraform_data\" \"token\" {\n  input = var.api_token\n}\n\noutput \"token\" {\n  value     = var.api_token\n  sensitive = true\n}\n",
    );
    project
        .tf(["build", "local-staging", "--plan", "--version", "1.0.0"])
        .env("TF_VAR_api_token", "tok-hunter22-secret")
        .env("TF_VAR_region_hint", "hint-secret-too")
        .run()
        .success();
    let artifact = "dist/local-staging-1.0.0.tar.gz";
    let plan = project.artifact_entry(artifact, "plan/plan.json");
    assert!(plan.contains("\"format_version\""), "{plan}");
    assert!(!plan.contains("hunter22") && !plan.contains("hint-secret"), "a secret in the plan:\n{plan}");
    let listing =
        std::process::Command::new("tar").args(["-tzf", artifact]).current_dir(project.path()).output().unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(!listing.contains("plan.tfplan"), "the binary plan holds variables in clear:\n{listing}");
    project.tf(["verify", artifact]).run().success();
}

#[test]
fn pre_deploy_hooks_run_in_this_runs_fresh_tree() {
    let project = Project::local();
    // The hook checks that its folder holds the tree of the version being applied.
    append(
        &project,
        "local-staging",
        "hooks:\n  pre_deploy:\n    - name: sees this render\n      run: 'grep -q \"environment_version *= *\\\"$STAMP_VERSION\\\"\" stamp_metadata.tf'\n",
    );
    for version in ["1.0.0", "2.0.0"] {
        let out = project.tf(["apply", "local-staging", "--auto-approve", "--version", version]).run();
        assert_eq!(out.code, 0, "{version}:\n{}{}", out.stdout, out.stderr);
    }
}

#[test]
fn hook_timeouts_reach_every_process_of_the_hook() {
    let project = Project::local();
    let pid_file = project.path().join("background.pid");
    append(
        &project,
        "local-staging",
        &format!(
            "hooks:\n  post_deploy:\n    - name: hangs\n      run: 'sleep 300 >/dev/null 2>&1 & echo $! > {}; wait'\n      timeout: 1s\n",
            pid_file.display()
        ),
    );
    let out = project.tf(["apply", "local-staging", "--auto-approve"]).run().failure(1);
    assert!(
        out.stdout.contains("post-deploy hook `hangs` FAILED") && out.stdout.contains("timed out"),
        "{}",
        out.stdout
    );
    let pid: i32 = project.read("background.pid").trim().parse().unwrap();
    // Gone, or a zombie no one reaps (in a container whose first process does not).
    let state = fs_err::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let running = state.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|s| s != "Z");
    assert!(!running, "the hook's background process outlived its timeout: {state}");
}

#[test]
fn hook_output_that_is_not_utf8_is_read_to_the_end() {
    let project = Project::local();
    append(
        &project,
        "local-staging",
        "hooks:\n  post_deploy:\n    - name: binary output\n      run: 'printf \"\\377\\376 not utf-8\\n\"; head -c 300000 /dev/zero | tr \"\\0\" x; echo; echo done'\n",
    );
    let out = project.tf(["apply", "local-staging", "--auto-approve"]).run().success();
    assert!(out.stdout.contains("post-deploy hook `binary output` passed"), "{}", out.stdout);
    let log = project.read(".stamp/logs/local-staging.log");
    assert!(log.contains("\u{fffd}\u{fffd} not utf-8") && log.contains("done"), "the log stops early");
}

#[test]
fn a_killed_runs_hook_keeps_the_account_locked_until_it_ends() {
    let project = Project::local();
    let (started, marker) = (project.path().join("hook-started"), project.path().join("hook-finished"));
    append(
        &project,
        "local-staging",
        &format!(
            "hooks:\n  pre_deploy:\n    - name: slow\n      run: 'touch {}; sleep 4; touch {}'\n",
            started.display(),
            marker.display()
        ),
    );
    let mut stamp = std::process::Command::new(env!("CARGO_BIN_EXE_stamp"))
        .args(["--quiet", "apply", "local-staging", "--auto-approve", "--terraform"])
        .arg(common::terraform())
        .current_dir(project.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the hook runs, then kill Stamp as hard as can be.
    for _ in 0..400 {
        if started.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(started.exists(), "the hook never started");
    stamp.kill().unwrap();
    stamp.wait().unwrap();
    let refused = project.tf(["plan", "local-staging"]).run().failure(1);
    assert!(!marker.exists(), "the hook ended before the second run started: the test proves nothing");
    assert!(refused.stdout.contains("still held by a command of a stamp run that was stopped"), "{}", refused.stdout);
    for _ in 0..200 {
        if marker.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    project.tf(["plan", "local-staging"]).run().failure(2);
}

/// Failure injection: a fake `terraform` whose first `apply` creates one resource for real,
/// then fails with a throttling error, as a cloud API does when many resources are created at
/// once; every other call is the real Terraform.
fn throttles_mid_apply(project: &Project) -> std::path::PathBuf {
    let fake = project.path().join("fake-terraform-throttles-mid-apply");
    write_executable(
        &fake,
        &format!(
            "#!/bin/sh\nif [ \"$1\" = apply ] && [ ! -f \"{marker}\" ]; then\n  touch \"{marker}\"\n  \"{real}\" apply -input=false -auto-approve -target=terraform_data.env_dir >/dev/null 2>&1\n  echo 'Error: creating thing: ThrottlingException: Rate exceeded' >&2\n  exit 1\nfi\nexec \"{real}\" \"$@\"\n",
            marker = project.path().join("throttled-once").display(),
            real = common::terraform().display()
        ),
    );
    fake
}

/// `stamp apply local-staging --auto-approve` (version 1.0.0) with the Terraform at `terraform`.
fn apply_staging_through(project: &Project, terraform: &std::path::Path) -> common::Output {
    project
        .tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0", "--terraform"])
        .args([terraform])
        .run()
}

/// The fake above: the rest is planned again and applied.
#[test]
fn a_transient_apply_failure_is_planned_again_and_finished() {
    let project = Project::local();
    let fake = throttles_mid_apply(&project);
    let out = apply_staging_through(&project, &fake).success();
    assert!(
        out.stdout.contains(
            "recovered: apply failed with a transient error (throttling); planned again: 4 change(s) left, all approved"
        ),
        "{}",
        out.stdout
    );
    assert!(project.env_dir("local-staging").join("data.sqlite").is_file(), "the rest was not applied");
    project.tf(["plan", "local-staging", "--version", "1.0.0"]).run().success();
}

/// Failure injection: the fake `terraform` that throttles mid-apply, and a plan policy
/// (a stand-in printing SARIF) that passes the first plan and finds a problem in any later one:
/// the new plan made after the transient error is checked by the policies too, and not applied.
#[test]
fn a_new_plan_after_a_transient_failure_must_pass_the_policies() {
    let project = Project::local();
    let fake = throttles_mid_apply(&project);
    let policy = project.path().join("policies/second-plan-fails.py");
    write_executable(
        &policy,
        &format!(
            "#!/usr/bin/env python3\nimport json, os\nseen = {seen:?}\nresults = []\nif os.path.exists(seen):\n    results = [{{'ruleId': 'LATER_PLAN', 'level': 'error', 'message': {{'text': 'a later plan'}}}}]\nopen(seen, 'w').close()\nprint(json.dumps({{'version': '2.1.0', 'runs': [{{'tool': {{'driver': {{'name': 'p'}}}}, 'results': results}}]}}))\n",
            seen = project.path().join("policy-saw-a-plan").display().to_string()
        ),
    );
    let archetype = "archetypes/local-platform/archetype.yaml";
    let text = project.read(archetype);
    project.write(
        archetype,
        &format!(
            "{text}\npolicies:\n  - name: later\n    on: plan\n    run: [{}]\n    format: sarif\n",
            policy.display()
        ),
    );
    let out = apply_staging_through(&project, &fake).failure(1);
    assert!(out.stdout.contains("the new plan does not pass the policies"), "{}", out.stdout);
    assert!(out.stdout.contains("LATER_PLAN"), "{}", out.stdout);
    assert!(!project.env_dir("local-staging").join("data.sqlite").exists(), "the new plan was applied");

    // Waived, the finding lets the new plan through, and the note of the recovery says so.
    let _ = fs_err::remove_file(project.path().join("policy-saw-a-plan"));
    let _ = fs_err::remove_file(project.path().join("throttled-once"));
    let account = "fixtures/accounts/local-staging.yaml";
    let text = project.read(account);
    project.write(account, &format!("{text}\npolicy_waivers:\n  - id: LATER_PLAN\n    reason: Seen and accepted.\n"));
    let out = apply_staging_through(&project, &fake).success();
    assert!(
        out.stdout.contains("all approved, passed the policies (1 waived finding: `LATER_PLAN`); applied those"),
        "{}",
        out.stdout
    );
}

/// Failure injection: a fake `terraform` whose first `apply` fails with a throttling error and
/// leaves behind a change nobody approved (a new resource in the work folder).
#[test]
fn a_new_plan_that_goes_beyond_the_approved_one_stops() {
    let project = Project::local();
    let fake = project.path().join("fake-terraform-throttles-and-changes");
    write_executable(
        &fake,
        &format!(
            "#!/bin/sh\nif [ \"$1\" = apply ] && [ ! -f \"{marker}\" ]; then\n  touch \"{marker}\"\n  printf 'resource \"terraform_data\" \"surprise\" {{}}\\n' > surprise.tf\n  echo 'Error: ThrottlingException: Rate exceeded' >&2\n  exit 1\nfi\nexec \"{real}\" \"$@\"\n",
            marker = project.path().join("throttled-once").display(),
            real = common::terraform().display()
        ),
    );
    let out = project.tf(["apply", "local-staging", "--auto-approve", "--terraform"]).args([&fake]).run().failure(1);
    assert!(
        out.stdout.contains("a new plan goes beyond what was approved: `terraform_data.surprise` (create)"),
        "{}",
        out.stdout
    );
    assert!(!project.env_dir("local-staging").exists(), "something was applied after the stop");
}

/// `apply --all` and `destroy --all` plan every account, let each lock go once its plan is
/// made, and apply each from that very plan, in that very work folder, after approval: an
/// account whose files changed, that another run held meanwhile, whose plan file was replaced
/// or whose state moved on is refused, and the others are applied. The interleaving comes from
/// a pre-deploy hook of the last account, which runs after the others were planned (one
/// account at a time, by name).
#[test]
fn apply_all_applies_only_what_is_still_as_planned() {
    let project = Project::local();
    for other in ["data-dev", "data-prod", "demo", "loadtest", "production", "qa", "staging"] {
        fs_err::remove_file(project.path().join(format!("fixtures/accounts/{other}.yaml"))).unwrap();
    }
    project.add_local_copy("local-a", 43, "dev");
    project.add_local_copy("local-b", 44, "dev");
    let every = ["local-a", "local-b", "local-prod", "local-qa", "local-staging"];
    let root = project.path().display().to_string();
    let hook = |account: &str, script: &str| {
        let path = format!("fixtures/accounts/{account}.yaml");
        let text = project.read(&path);
        let text = text.find("hooks:").map_or(text.as_str(), |at| &text[..at]).to_string();
        if !script.is_empty() {
            write_executable(&project.path().join("meanwhile.sh"), &format!("#!/bin/sh\nset -e\ncd {root}\n{script}"));
        }
        let hooks = if script.is_empty() {
            String::new()
        } else {
            format!("hooks:\n  pre_deploy:\n    - {{ name: meanwhile, run: {root}/meanwhile.sh }}\n")
        };
        project.write(&path, &format!("{text}{hooks}"));
    };
    let stamp = env!("CARGO_BIN_EXE_stamp");
    let state = r#"{"version":4,"terraform_version":"1.15.5","serial":7,"lineage":"3f1b2c4d-0000-4000-8000-000000000007","outputs":{},"resources":[],"check_results":null}"#;
    hook(
        "local-staging",
        &format!(
            "sed -i 's/replicas: 3/replicas: 2/' fixtures/accounts/local-prod.yaml\n\
             {stamp} --quiet output local-qa >/dev/null 2>&1 || true\n\
             cp .stamp/data/local-prod/stamp.tfplan .stamp/data/local-a/stamp.tfplan\n\
             mkdir -p .stamp/state/local-b\n\
             printf '%s' '{state}' > .stamp/state/local-b/terraform.tfstate\n"
        ),
    );
    let out = project.tf(["apply", "--all", "--auto-approve", "--version", "1.0.0", "-j", "1"]).run().failure(1);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("local-staging: applied"), "{text}");
    for refusal in [
        "account `local-a`: its plan file is not the one planned",
        "the state of account `local-b` changed since it was planned",
        "account `local-prod` no longer checks cleanly",
        "fixtures/accounts/local-prod.yaml` changed while Stamp was reading it",
        "account `local-qa`: another run held it since this one planned it",
    ] {
        assert!(text.contains(refusal), "{refusal}:\n{text}");
    }
    assert!(project.env_dir("local-staging").is_dir(), "local-staging was not applied");
    for refused in ["local-a", "local-b", "local-prod", "local-qa"] {
        assert!(!project.env_dir(refused).exists(), "{refused} was applied from a plan that moved");
        // Refused accounts were never tried, and nothing was recorded for them.
        let history = project.tf(["history", refused]).run().failure(1);
        assert!(history.stderr.contains(&format!("no records of `{refused}`")), "{}", history.stderr);
    }
    // local-staging was applied from the plan file of its planning run: the run that applied
    // it neither planned nor initialised again.
    let log = project.read(".stamp/logs/local-staging.log");
    let last_run = &log[log.rfind("# ---- stamp").unwrap()..];
    assert!(last_run.contains(" apply ") && !last_run.contains(" plan ") && !last_run.contains(" init "), "{last_run}");
    let history = project.tf(["history", "local-staging"]).run().success();
    assert!(history.stdout.contains("apply"), "{}", history.stdout);
    fs_err::remove_file(project.path().join(".stamp/state/local-b/terraform.tfstate")).unwrap();

    // A blueprint changed while the plans waited: every account renders differently.
    hook("local-staging", "echo '# changed' >> blueprints/local-platform/main.tf.j2\n");
    let out = project.tf(["apply", "--all", "--auto-approve", "--version", "1.0.0"]).run().failure(1);
    for account in every {
        let refusal = format!("account `{account}` renders differently than when it was planned");
        assert!(out.stdout.contains(&refusal), "{account}: {}", out.stdout);
    }
    assert!(!project.env_dir("local-qa").exists(), "local-qa was applied from a plan that moved");

    // An account file changed before its account was planned: the plans made are shown, and
    // nothing is applied.
    hook("local-staging", "");
    hook("local-a", "echo '# changed' >> fixtures/accounts/local-qa.yaml\n");
    let out = project.tf(["apply", "--all", "--auto-approve", "--version", "1.0.0", "-j", "1"]).run().failure(1);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("something changed while the accounts were planned"), "{text}");
    assert!(text.contains("local-a (dev, archetype local-platform): 5 to add"), "{text}");
    assert!(!project.env_dir("local-a").exists(), "local-a was applied although the run was refused");

    // Without the hook, everything is as planned.
    hook("local-a", "");
    project.tf(["apply", "--all", "--auto-approve", "--version", "1.0.0"]).run().success();
    for account in every {
        assert!(project.env_dir(account).is_dir(), "{account} was not applied");
    }
    let refused = project.tf(["destroy", "--all", "--auto-approve", "--version", "1.0.0"]).run().failure(1);
    assert!(refused.stderr.contains("account `local-prod` is protected"), "{}", refused.stderr);
    assert!(project.env_dir("local-qa").is_dir(), "a refused destroy destroyed something");
    let destroyed = project
        .tf(["destroy", "--all", "--auto-approve", "--version", "1.0.0", "--confirm", "local-prod"])
        .run()
        .success();
    for account in every {
        assert!(destroyed.stdout.contains(&format!("{account}: destroyed")), "{}", destroyed.stdout);
        assert!(!project.env_dir(account).exists(), "{account} was not destroyed");
    }
}

/// The account's data folder (the saved plan, Terraform's data) is never reached through a
/// link left in its place: its mode would be set, and the plan written, where the link leads.
#[test]
fn a_link_in_place_of_the_data_folder_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let project = Project::local();
    let elsewhere = project.path().join("elsewhere");
    fs_err::create_dir_all(&elsewhere).unwrap();
    fs_err::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
    fs_err::create_dir_all(project.path().join(".stamp/data")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, project.path().join(".stamp/data/local-staging")).unwrap();
    let out = project.tf(["plan", "local-staging", "--version", "1.0.0"]).run().failure(1);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("is a symbolic link, not a folder"), "{said}");
    assert_eq!(fs_err::metadata(&elsewhere).unwrap().permissions().mode() & 0o7777, 0o755);
    assert_eq!(fs_err::read_dir(&elsewhere).unwrap().count(), 0, "nothing was written where the link leads");

    // A pre-deploy hook runs after the work folder is written, just before the plan: a link it
    // leaves in place of the plan file is removed (Terraform's `plan -out` writes through it).
    fs_err::remove_file(project.path().join(".stamp/data/local-staging")).unwrap();
    let script = project.path().join("link-the-plan.sh");
    let planned = elsewhere.join("planned");
    let data = project.path().join(".stamp/data/local-staging");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\nln -sf '{}' '{}/stamp.tfplan' && touch '{}/hook-ran'\n",
            planned.display(),
            data.display(),
            elsewhere.display()
        ),
    );
    let account = "fixtures/accounts/local-staging.yaml";
    let text = project.read(account);
    let text = text.find("hooks:").map_or(text.as_str(), |at| &text[..at]).to_string();
    project
        .write(account, &format!("{text}hooks:\n  pre_deploy:\n    - {{ name: link, run: {} }}\n", script.display()));
    project.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
    assert!(elsewhere.join("hook-ran").exists(), "the hook ran");
    assert!(!planned.exists(), "the plan was written where the link led");
    assert!(fs_err::symlink_metadata(data.join("stamp.tfplan")).unwrap().is_file());
    // A second name (a hard link) of a file elsewhere is not written through either.
    fs_err::write(&planned, "").unwrap();
    write_executable(&script, &format!("#!/bin/sh\nln -f '{}' '{}/stamp.tfplan'\n", planned.display(), data.display()));
    project.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
    assert_eq!(fs_err::metadata(&planned).unwrap().len(), 0, "the plan was written into the file elsewhere");
    assert!(fs_err::metadata(data.join("stamp.tfplan")).unwrap().len() > 0);
}

/// Failure injection: a fake `terraform` that, asked to show or apply a plan, first writes
/// over the account's plan file (as anything else running as the user could, after Stamp
/// checked the file and before Terraform opens it), then hands the call to the real
/// Terraform, closing every file it was given on the way (as a wrapper that starts Terraform
/// anew does). What Terraform shows and applies is still the plan that was checked: it reads
/// those bytes, sealed, not the file again.
#[test]
fn terraform_applies_the_plan_that_was_checked_whatever_changes_its_file() {
    let project = Project::local();
    let fake = project.path().join("fake-terraform-overwrites-the-plan");
    let plan_file = project.path().join(".stamp/data/local-staging/stamp.tfplan");
    write_executable(
        &fake,
        &format!(
            "#!/bin/bash\ncase \"$1\" in show|apply) printf 'not the plan' > \"{plan}\" ;; esac\n\
             for fd in /proc/$$/fd/*; do n=${{fd##*/}}; [ \"$n\" -gt 2 ] && eval \"exec $n<&-\"; done\n\
             exec \"{real}\" \"$@\"\n",
            plan = plan_file.display(),
            real = common::terraform().display()
        ),
    );
    // `show -json`: the plan as JSON a build adds to the artifact.
    let build = project.tf(["build", "local-staging", "--version", "1.0.0", "--plan", "--terraform"]).args([&fake]);
    build.run().success();
    assert_eq!(fs_err::read_to_string(&plan_file).unwrap(), "not the plan", "the fake did write over it");
    let args = ["apply", "local-staging", "--auto-approve", "--version", "1.0.0", "--terraform"];
    let out = project.tf(args).args([&fake]).run();
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("local-staging: applied"), "{said}");
    assert!(project.env_dir("local-staging").join("data.sqlite").is_file(), "the checked plan was applied");
    assert_eq!(fs_err::read_to_string(&plan_file).unwrap(), "not the plan", "the fake did write over it");
}
