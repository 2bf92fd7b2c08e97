//! The commands as a user runs them: output, exit codes, help texts.

mod common;

use common::{Project, Run, tree_text};

#[test]
fn list_shows_every_fixture_account() {
    let project = Project::example();
    snapshot!(project.stamp(["list"]).run().success().snapshot());
}

#[test]
fn list_as_json() {
    let project = Project::example();
    let out = project.stamp(["list", "--format", "json"]).run().success();
    let accounts: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = accounts.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "data-dev",
            "data-prod",
            "demo",
            "loadtest",
            "local-prod",
            "local-qa",
            "local-staging",
            "production",
            "qa",
            "staging"
        ]
    );
    assert_eq!(accounts[7]["archetype"], "service-platform");
    assert_eq!(accounts[7]["protected"], true);
}

/// An account file that is a link is never read: naming it is an error, never a check of
/// nothing that passes, and checking every account reports it.
#[test]
#[cfg(unix)]
fn a_named_file_that_is_no_account_is_unknown_never_a_pass() {
    let project = Project::example();
    let outside = tempfile::tempdir().unwrap();
    let moved = outside.path().join("qa.yaml");
    fs_err::rename(project.path().join("fixtures/accounts/qa.yaml"), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, project.path().join("fixtures/accounts/qa.yaml")).unwrap();
    let out = project.stamp(["check", "fixtures/accounts/qa.yaml"]).run().failure(1);
    assert!(out.stderr.contains("unknown account `fixtures/accounts/qa.yaml`"), "{}", out.stderr);
    assert!(out.stderr.contains("is a symbolic link"), "{}", out.stderr);
    // A plain file outside the accounts folder is still checked against the project.
    let out = project.stamp(["check", moved.to_str().unwrap()]).run().success();
    assert!(out.stderr.contains("checked 1 account"), "{}", out.stderr);
    // Checking every account, the link is an error at its place, never an account that
    // silently vanished (whose tree `render --all` would remove as gone).
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("`fixtures/accounts/qa.yaml` is a symbolic link"), "{}", out.stderr);
    // A link to another account's file names no account either.
    fs_err::remove_file(project.path().join("fixtures/accounts/qa.yaml")).unwrap();
    fs_err::rename(&moved, project.path().join("fixtures/accounts/qa.yaml")).unwrap();
    std::os::unix::fs::symlink("staging.yaml", project.path().join("fixtures/accounts/alias.yaml")).unwrap();
    let out = project.stamp(["check", "fixtures/accounts/alias.yaml"]).run().failure(1);
    assert!(out.stderr.contains("unknown account `fixtures/accounts/alias.yaml`"), "{}", out.stderr);
    fs_err::remove_file(project.path().join("fixtures/accounts/alias.yaml")).unwrap();
    // The lock an editor leaves beside a file it edits (a hidden, dangling link) is no account.
    std::os::unix::fs::symlink("ana@host.4242:1", project.path().join("fixtures/accounts/.#qa.yaml")).unwrap();
    project.stamp(["check"]).run().success();
}

#[test]
fn check_all_fixture_accounts_passes() {
    let project = Project::example();
    snapshot!(project.stamp(["check"]).run().success().snapshot());
}

#[test]
fn check_json_when_clean() {
    let project = Project::example();
    let out = project.stamp(["check", "--format", "json", "production", "local-prod"]).run().success();
    assert_eq!(out.stdout, "{\n  \"errors\": 0,\n  \"warnings\": 0,\n  \"diagnostics\": []\n}\n");
}

#[test]
fn check_by_file_path_and_from_a_sub_folder() {
    let project = Project::example();
    let out = common::Run::new(&project.path().join("fixtures/accounts")).args(["check", "qa.yaml"]).run().success();
    assert_eq!(out.stderr, "checked 1 account: no problems found\n");
}

#[test]
fn schema_prints_the_archetype_schema() {
    let project = Project::example();
    let out = project.stamp(["schema", "local-platform"]).run().success();
    let printed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let on_disk: serde_json::Value =
        serde_json::from_str(&project.read("archetypes/local-platform/schema.json")).unwrap();
    assert_eq!(printed, on_disk);
    assert_eq!(printed["$schema"], "https://json-schema.org/draft/2020-12/schema");
}

#[test]
fn schema_of_unknown_archetype() {
    let project = Project::example();
    snapshot!(project.stamp(["schema", "service-platfrom"]).run().failure(1).snapshot());
}

#[test]
fn render_one_account_to_default_folder() {
    let project = Project::example();
    let out = project.stamp(["render", "local-staging", "--version", "1.0.0"]).run().success();
    assert_eq!(
        out.stderr,
        format!("rendered 1 account to `{}/build/local-staging`\n", project.path().canonicalize().unwrap().display())
    );
    let dir = project.path().join("build/local-staging");
    for file in ["stamp_backend.tf", "stamp_metadata.tf", "main.tf", "scripts/database.py", ".stamp-rendered"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    assert!(!dir.join("stamp_providers.tf").exists(), "no provider for local-platform");
    let backend = project.read("build/local-staging/stamp_backend.tf");
    assert!(backend.contains("path = \"../../.stamp/state/local-staging/terraform.tfstate\""), "{backend}");
}

#[test]
fn render_all_in_parallel_to_out_folder() {
    let project = Project::example();
    let out = project.stamp(["render", "--all", "--out", "out", "--version", "1.0.0"]).run().success();
    assert!(out.stderr.starts_with("rendered 10 accounts to "), "{}", out.stderr);
    let entries: Vec<String> = fs_err::read_dir(project.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(entries.len(), 10);
}

#[test]
fn render_is_deterministic() {
    let project = Project::example();
    project.stamp(["render", "--all", "--out", "one", "--version", "2.0.0"]).run().success();
    project.stamp(["render", "--all", "--out", "two", "--version", "2.0.0"]).run().success();
    for account in ["production", "data-prod", "local-prod"] {
        let one = tree_text(&project.path().join("one").join(account));
        let two = tree_text(&project.path().join("two").join(account));
        assert!(one.len() > 1000);
        assert_eq!(one, two, "{account} differs between two renders");
    }
}

#[test]
fn render_replaces_its_own_output_atomically() {
    let project = Project::example();
    let stale = "blueprints/service-platform/stale.tf";
    project.write(stale, "# only in an older blueprint\n");
    project.stamp(["render", "qa", "--out", "qa-out", "--version", "1.0.0"]).run().success();
    assert!(project.path().join("qa-out/stale.tf").exists());
    fs_err::remove_file(project.path().join(stale)).unwrap();
    project.stamp(["render", "qa", "--out", "qa-out", "--version", "1.0.1"]).run().success();
    assert!(!project.path().join("qa-out/stale.tf").exists());
    assert!(project.read("qa-out/stamp_metadata.tf").contains("1.0.1"));
}

#[test]
fn render_refuses_to_overwrite_a_foreign_folder() {
    let project = Project::example();
    project.write("precious/notes.txt", "keep me\n");
    let out = project.stamp(["render", "qa", "--out", "precious"]).run().failure(1);
    assert!(out.stderr.contains("was not written by Stamp"), "{}", out.stderr);
    assert_eq!(project.read("precious/notes.txt"), "keep me\n");
}

/// A rendered tree's folder may hold what the user put there (their variables, a folder of
/// notes, a file moved in with an old time, a file named like one the blueprint then gains),
/// however soon after the render: rendering again never removes it, and names what is in the
/// way. Terraform's own `.terraform` is carried over.
#[test]
fn rendering_again_never_removes_what_the_user_put_in_a_tree() {
    let project = Project::example();
    let render = || project.stamp(["render", "qa", "--version", "1.0.0"]).run();
    render().success();
    project.write("build/qa/terraform.tfvars", "x = 1\n");
    project.write("build/qa/extra.tf", "# mine\n");
    project.write("blueprints/service-platform/extra.tf", "# the blueprint's\n");
    project.write("build/qa/notes/todo.md", "mine\n");
    project.write("build/qa/.terraform.lock.hcl", "# the lock file `terraform init` wrote\n");
    project.write("build/qa/.terraform/providers/marker", "installed\n");
    // Moved in with an old time, as `mv`, `cp -p` and `tar` leave it.
    let old = project.path().join("old-notes.md");
    fs_err::write(&old, "older than the tree\n").unwrap();
    fs_err::File::open(&old).unwrap().file().set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    fs_err::rename(&old, project.path().join("build/qa/old-notes.md")).unwrap();
    let account = "fixtures/accounts/qa.yaml";
    project.write(account, &project.read(account).replace("CostCenter:", "Team: qa\n  CostCenter:"));
    let before = common::tree_text(&project.path().join("build/qa"));

    let refused = render().failure(1);
    assert!(
        refused.stderr.contains("holds what Stamp did not write, which rendering would remove"),
        "{}",
        refused.stderr
    );
    for mine in ["`extra.tf`", "`notes/todo.md`", "`old-notes.md`", "`terraform.tfvars`"] {
        assert!(refused.stderr.contains(mine), "{mine}: {}", refused.stderr);
    }
    assert_eq!(common::tree_text(&project.path().join("build/qa")), before, "nothing was changed");

    for mine in ["terraform.tfvars", "old-notes.md", "extra.tf"] {
        fs_err::remove_file(project.path().join("build/qa").join(mine)).unwrap();
    }
    fs_err::remove_dir_all(project.path().join("build/qa/notes")).unwrap();
    render().success();
    assert!(
        project.read("build/qa/extra.tf").ends_with("\n# the blueprint's\n"),
        "the blueprint's file took its place"
    );
    assert!(common::tree_text(&project.path().join("build/qa")).contains("Team"), "the tree was rendered anew");
    assert_eq!(project.read("build/qa/.terraform/providers/marker"), "installed\n");
}

/// Every plan replaces an account's work folder whole: the folders `stamp.yaml` gives Stamp's
/// state, ledger and snapshots may not lie there.
#[test]
fn stamps_own_folders_cannot_be_put_where_work_folders_are_replaced() {
    let project = Project::example();
    let settings = project.read("stamp.yaml");
    for (key, edited) in [
        ("state.local.dir", settings.replace("dir: .stamp/state", "dir: .stamp/work")),
        ("snapshots", format!("{settings}\nsnapshots: .stamp/work/local-staging/snapshots\n")),
        ("ledger", format!("{settings}\nledger: .stamp/./work/../work/ledger\n")),
    ] {
        project.write("stamp.yaml", &edited);
        let out = project.stamp(["check", "qa"]).run().failure(1);
        assert!(out.stderr.contains(&format!("`{key}` is `")), "{key}: {}", out.stderr);
        assert!(out.stderr.contains("in `.stamp/work/`: every plan replaces"), "{key}: {}", out.stderr);
    }
    project.write("stamp.yaml", &settings);
    project.stamp(["check", "qa"]).run().success();
}

#[test]
fn render_never_writes_into_stamps_own_folder() {
    let project = Project::example();
    // A work folder as `plan` leaves it: a tree Stamp wrote (its marker) and what a hook left.
    project.stamp(["render", "qa", "--out", "qa-out"]).run().success();
    fs_err::create_dir_all(project.path().join(".stamp/work")).unwrap();
    fs_err::rename(project.path().join("qa-out"), project.path().join(".stamp/work/qa")).unwrap();
    project.write(".stamp/work/qa/hook-output.txt", "left by a pre-deploy hook\n");
    let before = tree_text(&project.path().join(".stamp/work"));
    std::os::unix::fs::symlink(project.path().join(".stamp/work"), project.path().join("work-link")).unwrap();
    let tries: [&[&str]; 6] = [
        &["render", "qa", "--out", ".stamp/work/qa"],
        &["render", "--all", "--out", ".stamp/work"],
        &["render", "--all", "--out", ".stamp"],
        &["render", "--all", "--out", "nowhere/../.stamp/work"],
        &["render", "qa", "--out", "work-link/qa"],
        &["render", "--all", "--out", "work-link/new/.."],
    ];
    for args in tries {
        let out = project.stamp(args).run().failure(1);
        assert!(out.stderr.contains("inside Stamp's own folder `.stamp/`"), "{args:?}: {}", out.stderr);
    }
    // From inside it, too.
    let out = Run::new(&project.path().join(".stamp")).args(["render", "--all", "--out", "."]).run().failure(1);
    assert!(out.stderr.contains("inside Stamp's own folder"), "{}", out.stderr);
    // The default `build/`, when a link into it was committed in its place.
    std::os::unix::fs::symlink(project.path().join(".stamp/work"), project.path().join("build")).unwrap();
    for args in [&["render", "qa"][..], &["render", "--all"]] {
        let out = project.stamp(args).run().failure(1);
        assert!(out.stderr.contains("the output folder `build` leads inside Stamp's own folder"), "{}", out.stderr);
    }
    fs_err::remove_file(project.path().join("build")).unwrap();
    // One account's folder a link to its work folder: that tree is not written through it.
    fs_err::create_dir_all(project.path().join("trees")).unwrap();
    std::os::unix::fs::symlink(project.path().join(".stamp/work/qa"), project.path().join("trees/qa")).unwrap();
    let out = project.stamp(["render", "--all", "--out", "trees"]).run().failure(1);
    assert!(out.stderr.contains("is a symbolic link"), "{}", out.stderr);
    assert_eq!(tree_text(&project.path().join(".stamp/work")), before, "the work folder is as it was");
    // A folder whose name only begins like it is the user's.
    project.stamp(["render", "qa", "--out", ".stamp-qa"]).run().success();
}

#[test]
fn files_the_user_names_never_replace_the_projects_own_files() {
    let project = Project::example();
    let inputs = ["stamp.yaml", "fixtures/accounts/qa.yaml", "archetypes/local-platform/schema.json"];
    let before: Vec<String> = inputs.iter().map(|f| project.read(f)).collect();
    let blueprint = tree_text(&project.path().join("blueprints"));
    let tries: [(&[&str], &str); 7] = [
        (&["plan", "qa", "--out", "stamp.yaml"], "is the project file `stamp.yaml`"),
        (&["plan", "qa", "--out", "nowhere/../stamp.yaml"], "is the project file `stamp.yaml`"),
        (&["drift", "qa", "--out", "fixtures/accounts/qa.yaml"], "is the account file `fixtures/accounts/qa.yaml`"),
        (
            &["plan", "qa", "--format", "markdown", "--report-file", "archetypes/local-platform/schema.json"],
            "is inside the archetypes folder `archetypes`",
        ),
        (&["render", "--all", "--out", "blueprints/local-platform"], "inside the blueprints folder `blueprints`"),
        (&["render", "qa", "--out", "fixtures/accounts/trees"], "inside the accounts folder `fixtures/accounts`"),
        (&["build", "qa", "--version", "1.0.0", "--out", "blueprints"], "inside the blueprints folder"),
    ];
    for (args, says) in tries {
        let out = project.stamp(args).run().failure(1);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    let after: Vec<String> = inputs.iter().map(|f| project.read(f)).collect();
    assert_eq!(after, before, "the project's files are as they were");
    assert_eq!(tree_text(&project.path().join("blueprints")), blueprint, "the blueprints are as they were");
    // A folder beside them, or named like one, is the user's to write.
    project.stamp(["render", "qa", "--out", "blueprints-out"]).run().success();
    project.stamp(["render", "qa", "--out", "stamp.yaml.d"]).run().success();
}

#[test]
fn files_the_user_names_never_go_into_stamps_own_folder() {
    let project = Project::example();
    project.write(".stamp/ledger/qa.jsonl", "");
    let tries: [&[&str]; 5] = [
        &["plan", "qa", "--out", ".stamp/ledger/qa.jsonl"],
        &["plan", "qa", "--format", "markdown", "--report-file", ".stamp/ledger/qa.jsonl"],
        &["drift", "qa", "--out", ".stamp/ledger/qa.jsonl"],
        &["build", "qa", "--version", "1.0.0", "--out", ".stamp/ledger"],
        &["plan", "qa", "--out", "nowhere/../.stamp/data/qa/stamp.tfplan"],
    ];
    for args in tries {
        let out = project.stamp(args).run().failure(1);
        assert!(out.stderr.contains("inside Stamp's own folder `.stamp/`"), "{args:?}: {}", out.stderr);
    }
    assert_eq!(project.read(".stamp/ledger/qa.jsonl"), "", "the ledger is as it was");
    assert_eq!(fs_err::read_dir(project.path().join(".stamp/ledger")).unwrap().count(), 1);
    // A link left inside `.stamp/` that leads elsewhere: the write would replace the link.
    std::os::unix::fs::symlink(project.path().join("elsewhere"), project.path().join(".stamp/x")).unwrap();
    let out = project.stamp(["drift", "qa", "--out", ".stamp/x"]).run().failure(1);
    assert!(out.stderr.contains("inside Stamp's own folder"), "{}", out.stderr);
    // `.stamp/reports/` is for reports only while it is a folder of its own.
    std::os::unix::fs::symlink(project.path().join(".stamp"), project.path().join(".stamp/reports")).unwrap();
    let out = project
        .stamp(["plan", "qa", "--format", "markdown", "--report-file", ".stamp/reports/ledger/qa.jsonl"])
        .run()
        .failure(1);
    assert!(out.stderr.contains("`--report-file .stamp/reports/ledger/qa.jsonl` is inside"), "{}", out.stderr);
    // The default report file, named as the default (no option was given).
    let out = project.stamp(["plan", "qa", "--format", "markdown"]).run().failure(1);
    assert!(out.stderr.contains("the report file `.stamp/reports/plan.md` leads inside"), "{}", out.stderr);
    assert!(out.stderr.contains("pass `--report-file FILE` to write it elsewhere"), "{}", out.stderr);
    // The default `dist/`, a link into it committed in its place.
    std::os::unix::fs::symlink(project.path().join(".stamp/ledger"), project.path().join("dist")).unwrap();
    let out = project.stamp(["build", "qa", "--version", "1.0.0"]).run().failure(1);
    assert!(out.stderr.contains("the output folder `dist` leads inside"), "{}", out.stderr);
    // The ledger where `stamp.yaml` puts it, outside `.stamp/`.
    let settings = project.read("stamp.yaml");
    project.write("stamp.yaml", &format!("{settings}\nledger: shared/ledger\n"));
    project.write("shared/ledger/qa.jsonl", "");
    let out = project.stamp(["drift", "qa", "--out", "shared/ledger/qa.jsonl"]).run().failure(1);
    assert!(out.stderr.contains("inside the ledger folder `shared/ledger`"), "{}", out.stderr);
    assert_eq!(project.read("shared/ledger/qa.jsonl"), "");
}

#[test]
fn failed_render_leaves_previous_tree_untouched() {
    let project = Project::example();
    project.stamp(["render", "local-staging", "--version", "1.0.0"]).run().success();
    let before = tree_text(&project.path().join("build/local-staging"));
    project.write("blueprints/local-platform/extra.tf.j2", "locals {\n  x = {{ config.nope }}\n}\n");
    project.stamp(["render", "local-staging", "--version", "1.0.1"]).run().failure(1);
    assert_eq!(tree_text(&project.path().join("build/local-staging")), before);
}

#[test]
fn render_needs_accounts_or_all() {
    let project = Project::example();
    let out = project.stamp(["render"]).run().failure(2);
    assert!(out.stderr.contains("--all"), "{}", out.stderr);
}

#[test]
fn version_comes_from_flag_or_environment() {
    let project = Project::example();
    project.stamp(["render", "local-prod", "--out", "a"]).env("STAMP_VERSION", "3.1.4").run().success();
    let metadata = project.read("a/stamp_metadata.tf");
    assert!(metadata.contains("\"EnvironmentVersion\" = \"3.1.4+none\""), "{metadata}");
    project.stamp(["render", "local-prod", "--out", "b"]).run().success();
    let dev = project.read("b/stamp_metadata.tf");
    let version = dev.split("version             = \"").nth(1).unwrap().split('"').next().unwrap();
    let parts: Vec<&str> = version.split('.').collect();
    assert_eq!(parts.len(), 4, "{version}");
    assert_eq!((parts[0], parts[1], parts[2].len(), parts[3].len()), ("0", "0", 5, 5), "{version}");
}

#[test]
fn commit_and_dirty_mark_come_from_git() {
    let project = Project::example();
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@e", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(project.path())
            .output()
            .unwrap();
        assert!(status.status.success(), "{status:?}");
        String::from_utf8(status.stdout).unwrap().trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "init"]);
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    project.stamp(["render", "local-prod", "--out", "clean", "--version", "1.0.0"]).run().success();
    assert!(project.read("clean/stamp_metadata.tf").contains(&format!("1.0.0+{commit}\"")));
    // Without a release version, the development version is the commit's time: every render
    // of the same commit is identical, so a second plan shows no changes.
    project.stamp(["render", "local-prod", "--out", "dev1"]).run().success();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    project.stamp(["render", "local-prod", "--out", "dev2"]).run().success();
    let dev = project.read("dev1/stamp_metadata.tf");
    assert_eq!(dev, project.read("dev2/stamp_metadata.tf"));
    assert!(dev.contains(&format!("+{commit}\"")), "{dev}");
    project.write(
        "fixtures/accounts/local-prod.yaml",
        &format!("{}\n# edited\n", project.read("fixtures/accounts/local-prod.yaml")),
    );
    project.stamp(["render", "local-prod", "--out", "dirty", "--version", "1.0.0"]).run().success();
    assert!(project.read("dirty/stamp_metadata.tf").contains(&format!("1.0.0+{commit}-dirty\"")));
}

#[test]
fn help_texts_have_examples() {
    let project = Project::example();
    for command in [
        "init", "check", "render", "plan", "apply", "destroy", "output", "build", "verify", "diff", "affected",
        "drift", "promote", "list", "schema", "doctor", "clone", "sync", "migrate", "reap", "history",
    ] {
        let out = project.stamp([command, "--help"]).run().success();
        assert!(out.stdout.contains("Examples:"), "`stamp {command} --help` has no example:\n{}", out.stdout);
    }
    for [command, sub] in [["playground", "new"], ["store", "status"], ["store", "import"]] {
        let out = project.stamp([command, sub, "--help"]).run().success();
        assert!(out.stdout.contains("Examples:"), "`stamp {command} {sub} --help` has no example:\n{}", out.stdout);
    }
    let out = project.stamp(["--help"]).run().success();
    snapshot!(out.stdout);
}

#[test]
fn accounts_in_conflict_are_not_written() {
    let project = Project::example();
    project.write(
        "fixtures/accounts/clash.yaml",
        &project.read("fixtures/accounts/local-staging.yaml").replace("environment: staging", "environment: clash"),
    );
    let out = project.stamp(["render", "--all", "--out", "out", "--version", "1.0.0"]).run().failure(1);
    assert!(out.stderr.contains("overlaps"), "{}", out.stderr);
    for account in ["clash", "local-staging"] {
        assert!(!project.path().join("out").join(account).exists(), "{account} is in a conflict but was written");
    }
    assert!(project.path().join("out/local-prod/main.tf").is_file(), "accounts without conflicts are still written");
}

#[test]
fn versions_and_account_names_cannot_escape_their_folders() {
    let project = Project::example();
    let out = project.stamp(["build", "local-prod", "--version", "1/../../../escaped"]).run().failure(1);
    assert!(out.stderr.contains("invalid version `1/../../../escaped`"), "{}", out.stderr);
    project.write("fixtures/accounts/bad-name.yaml", "archetype: local-platform\nname: ../evil\n");
    let out = project.stamp(["check", "fixtures/accounts/bad-name.yaml"]).run().failure(1);
    assert!(out.stderr.contains("invalid account name `../evil`"), "{}", out.stderr);
}

#[test]
fn commands_without_accounts_are_usage_errors() {
    let project = Project::example();
    // `plan`'s 2 means "changes": its usage errors exit 1.
    for (command, code) in [("plan", 1), ("apply", 2), ("destroy", 2), ("output", 2)] {
        let out = project.stamp([command]).run().failure(code);
        assert!(out.stderr.contains("or pass `--all`"), "{command}: {}", out.stderr);
    }
    let out = project.stamp(["plan", "--all", "--out", "x.plan"]).run().failure(1);
    assert!(out.stderr.contains("exactly one account"), "{}", out.stderr);
}

/// The exit-code table of the README: 2 means one thing per command.
#[test]
fn exit_codes_follow_the_table() {
    let project = Project::example();
    let invalid = "fixtures/invalid/bad-cidr.yaml";
    let table: &[(&[&str], i32)] = &[
        // Every other command: 0 success, 1 failure, 2 usage error.
        (&["check"], 0),
        (&["check", invalid], 1),
        (&["check", "--no-such-flag"], 2),
        (&["render"], 2),
        (&["apply"], 2),
        (&["history", "nobody"], 1),
        (&["list"], 0),
        // `plan`: 0 no changes, 2 changes (tests/terraform.rs), 1 any error, usage included.
        (&["plan"], 1),
        (&["plan", "--no-such-flag"], 1),
        (&["--quiet", "plan", invalid], 1),
        // `diff`: 0 identical, 1 different, 2 any error, usage included.
        (&["diff", "staging", "staging"], 0),
        (&["diff", "staging", "production"], 1),
        (&["diff", "staging", "nobody"], 2),
        (&["diff", "staging"], 2),
    ];
    for (args, code) in table {
        let out = project.stamp(*args).run();
        assert_eq!(out.code, *code, "stamp {}:\n{}{}", args.join(" "), out.stdout, out.stderr);
    }
    let out = Run::new(&std::env::temp_dir()).args(["plan", "x"]).env("STAMP_PROJECT", "/nonexistent").run();
    assert_eq!(out.code, 1, "plan without a project: {}", out.stderr);
    let out = Run::new(&std::env::temp_dir()).args(["apply", "x"]).env("STAMP_PROJECT", "/nonexistent").run();
    assert_eq!(out.code, 2, "apply without a project: {}", out.stderr);
}

/// A FIFO put in place of one of Stamp's files (a ledger, the cache's lock, an artifact) is
/// refused or passed over at once: opening or reading one would wait for a writer for ever.
#[test]
fn a_fifo_in_place_of_stamps_files_never_hangs_a_command() {
    let project = Project::example();
    let fifo = |relative: &str| {
        let path = project.path().join(relative);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = fs_err::remove_file(&path);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    };
    let within_a_minute = |args: &[&str]| project.stamp(args).run_within(std::time::Duration::from_secs(60));
    fifo(".stamp/ledger/qa.jsonl");
    // Damage, reported (commands that change the account refuse it until it is repaired).
    let history = within_a_minute(&["history", "qa"]);
    assert!(history.stderr.contains("damaged ledger record at `.stamp/ledger/qa.jsonl`"), "{}", history.stderr);
    assert!(history.stderr.contains("is not a plain file"), "{}", history.stderr);
    fifo(".stamp/cache/lock");
    within_a_minute(&["check", "qa"]).success();
    fifo("qa.tar.gz");
    let stderr = within_a_minute(&["verify", "qa.tar.gz"]).failure(1).stderr;
    assert!(stderr.contains("is not a plain file"), "{stderr}");
}
