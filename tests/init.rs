//! `stamp init`: a newcomer's first minute. A project written from each example archetype checks
//! clean, the local one plans, applies and destroys with the real Terraform, and no file that
//! exists is ever overwritten.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Project, Run};

/// An empty temporary folder (no `stamp.yaml` in it or above it).
fn empty() -> Project {
    Project { dir: tempfile::tempdir().expect("temp dir") }
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| !e.file_type().is_dir())
        .map(|e| e.path().strip_prefix(dir).unwrap().display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn a_local_project_checks_plans_applies_and_destroys() {
    let project = empty();
    // No project is needed, not even the one `STAMP_PROJECT` names.
    let out = project.stamp(["init"]).env("STAMP_PROJECT", "/nonexistent").run().success();
    snapshot!(out.snapshot());
    assert_eq!(
        project.read(".gitignore").lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>(),
        ["/.stamp/", "/build/", "/dist/"]
    );
    let repo = common::repo();
    for file in files(&repo.join("blueprints/local-platform")) {
        let path = format!("blueprints/local-platform/{file}");
        assert_eq!(project.read(&path), fs_err::read_to_string(repo.join(&path)).unwrap(), "{path}");
    }

    // Committed, as the note says, so every run of the commit stamps the same version; git
    // ignores what runs write (the tree stays clean, no `-dirty` version).
    project.git(&["init", "-q"]);
    project.git(&["add", "-A"]);
    project.git(&["commit", "-qm", "init"]);

    let out = project.stamp(["check"]).run().success();
    assert!(out.stderr.contains("checked 1 account: no problems found"), "{}", out.snapshot());
    project.tf(["plan", "local-staging"]).run().failure(2);
    project.tf(["apply", "local-staging", "--auto-approve"]).run().success();
    // The environment lives in the project, its state too.
    let env = project.path().join(".stamp/envs/local-staging");
    assert!(env.join("data.sqlite").is_file(), "{:?}", files(project.path()));
    assert!(project.path().join(".stamp/state/local-staging/terraform.tfstate").is_file());
    project.tf(["plan", "local-staging"]).run().success();
    let status = project.git(&["status", "--porcelain", "--ignored=no"]);
    assert_eq!(status, "", "runs leave files git does not ignore");
    project.tf(["destroy", "local-staging", "--auto-approve"]).run().success();
    assert!(!env.exists(), "destroy removes the environment");
}

#[test]
fn the_aws_projects_check_clean() {
    for (archetype, account) in [("service-platform", "staging"), ("data-engineering", "data-dev")] {
        let parent = empty();
        let out = parent.stamp(["init", "my platform", "--archetype", archetype]).run().success();
        let next = format!("next:\n  cd 'my platform'\n  stamp check\n  stamp render {account}\n");
        assert!(out.stdout.contains(&next), "{}", out.snapshot());
        assert!(out.stdout.contains("CHANGE-ME"), "{}", out.snapshot());
        let dir = parent.path().join("my platform");
        assert!(fs_err::read_to_string(dir.join("stamp.yaml")).unwrap().contains("bucket: CHANGE-ME-terraform-state"));
        let written = files(&dir);
        assert!(written.contains(&format!("accounts/{account}.yaml")), "{written:?}");
        assert!(written.iter().all(|f| !f.contains("local-platform")), "{written:?}");

        let out = Run::new(&dir).args(["check"]).run().success();
        assert!(out.stderr.contains("checked 1 account: no problems found"), "{}", out.snapshot());
        Run::new(&dir).args(["render", account]).run().success();
        assert!(dir.join(format!("build/{account}/stamp_backend.tf")).is_file());

        // Scripts keep the mode they have in the repository.
        let script = format!("blueprints/{archetype}/scripts/data-restore.sh");
        let mode = |path: &Path| fs_err::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join(&script)), mode(&common::repo().join(&script)), "{script}");
    }
}

#[test]
fn existing_files_are_never_overwritten() {
    let project = empty();
    project.write("shop/stamp.yaml", "# mine\n");
    project.write("shop/blueprints/local-platform/main.tf.j2", "# mine too\n");
    let out = project.stamp(["init", "shop"]).run().failure(1);
    snapshot!(out.snapshot());
    assert_eq!(files(&project.path().join("shop")), ["blueprints/local-platform/main.tf.j2", "stamp.yaml"]);
    assert_eq!(project.read("shop/stamp.yaml"), "# mine\n");

    // A file where a folder must be is in the way too.
    project.write("other/archetypes", "");
    let out = project.stamp(["init", "other"]).run().failure(1);
    assert!(out.stderr.contains("1 of the files `stamp init` writes exists"), "{}", out.snapshot());
    assert!(out.stderr.contains("  other/archetypes\n"), "{}", out.snapshot());
    assert_eq!(files(&project.path().join("other")), ["archetypes"]);
}

#[test]
fn an_unknown_archetype_is_a_usage_error() {
    let project = empty();
    let out = project.stamp(["init", "shop", "--archetype", "service"]).run().failure(2);
    assert!(
        out.stderr.contains("[possible values: local-platform, service-platform, data-engineering]"),
        "{}",
        out.snapshot()
    );
    assert!(files(project.path()).is_empty());
}

#[test]
fn links_below_the_project_folder_are_refused() {
    let project = empty();
    fs_err::create_dir_all(project.path().join("d")).unwrap();
    fs_err::create_dir_all(project.path().join("outside")).unwrap();
    std::os::unix::fs::symlink("../outside", project.path().join("d/blueprints")).unwrap();
    let out = project.stamp(["init", "d"]).run().failure(1);
    snapshot!(out.snapshot());
    assert_eq!(files(&project.path().join("d")), ["blueprints"], "nothing but the link");
    assert!(files(&project.path().join("outside")).is_empty(), "nothing written through the link");
    // Run inside the folder, the link is named as from there.
    let out = Run::new(&project.path().join("d")).args(["init"]).run().failure(1);
    assert!(out.stderr.contains(", so nothing was written:\n  blueprints\n"), "{}", out.snapshot());

    // A link on the way of one file only, and one at a file's place, are refused too.
    fs_err::remove_file(project.path().join("d/blueprints")).unwrap();
    fs_err::create_dir_all(project.path().join("d/blueprints")).unwrap();
    std::os::unix::fs::symlink("../../outside", project.path().join("d/blueprints/local-platform")).unwrap();
    std::os::unix::fs::symlink("../outside/stamp.yaml", project.path().join("d/stamp.yaml")).unwrap();
    let out = project.stamp(["init", "d"]).run().failure(1);
    assert!(
        out.stderr.contains("2 of the paths `stamp init` writes into are symbolic links, so nothing was written:\n  d/stamp.yaml\n  d/blueprints/local-platform\n"),
        "{}",
        out.snapshot()
    );
    assert!(files(&project.path().join("outside")).is_empty());

    // The project folder itself may be a link the user chose.
    fs_err::create_dir_all(project.path().join("real")).unwrap();
    std::os::unix::fs::symlink("real", project.path().join("chosen")).unwrap();
    project.stamp(["init", "chosen"]).run().success();
    assert!(project.path().join("real/stamp.yaml").is_file());
}

/// `stamp init DIR` run with files larger than 4096 bytes refused by the system (`ulimit -f`:
/// root cannot bypass it the way it bypasses a folder's permissions), so it fails part-way.
fn init_with_small_files(project: &Project, dir: &str) -> common::Output {
    let script = r#"trap "" XFSZ; ulimit -f 8; exec "$0" "$@""#;
    let out = std::process::Command::new("sh")
        .args(["-c", script, env!("CARGO_BIN_EXE_stamp"), "init", dir])
        .current_dir(project.path())
        .env("NO_COLOR", "1")
        .env_remove("STAMP_PROJECT")
        .output()
        .expect("sh runs");
    common::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        root: project.path().to_path_buf(),
    }
}

#[test]
fn a_write_that_fails_part_way_leaves_nothing_behind() {
    // The schema, written after stamp.yaml, .gitignore, the account and archetype.yaml, is the
    // first file over the limit.
    let schema = common::repo().join("archetypes/local-platform/schema.json");
    assert!(fs_err::metadata(schema).unwrap().len() > 4096);
    let project = empty();
    let out = init_with_small_files(&project, "shop/new").failure(1);
    assert!(!project.path().join("shop").exists(), "the folders it created are gone: {:?}", files(project.path()));
    assert!(out.stderr.contains("error: cannot write the project: "), "{}", out.snapshot());
    assert!(out.stderr.contains("schema.json"), "{}", out.snapshot());
    assert!(
        out.stderr.contains("\n  nothing `stamp init` created is left: run it again once the cause is fixed\n"),
        "{}",
        out.snapshot()
    );

    // In a folder of the user's, with a folder of theirs on the way: those stay, all else goes.
    project.write("mine/README.md", "# mine\n");
    fs_err::create_dir_all(project.path().join("mine/archetypes")).unwrap();
    init_with_small_files(&project, "mine").failure(1);
    assert_eq!(files(&project.path().join("mine")), ["README.md"]);
    assert!(project.path().join("mine/archetypes").is_dir());
    assert!(!project.path().join("mine/archetypes/local-platform").exists());

    // So a run without the limit writes the project.
    project.stamp(["init", "mine"]).run().success();
    assert!(project.path().join("mine/archetypes/local-platform/schema.json").is_file());
}

#[test]
fn unusual_folder_names_are_printed_as_one_safe_shell_word() {
    let project = empty();
    let out = project.stamp(["init", "--", "-dash"]).run().success();
    assert!(out.stdout.contains("next:\n  cd ./-dash\n"), "{}", out.snapshot());
    assert!(project.path().join("-dash/stamp.yaml").is_file());

    let name = "a\u{1b}[31mb\rc";
    let out = project.stamp(["init", name]).run().success();
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(['\u{1b}', '\r']), "printed raw: {text:?}");
    }
    assert!(out.stdout.contains(r"created a project in `a\u{1b}[31mb\rc`"), "{}", out.stdout);
    assert!(out.stdout.contains(r"  cd $'a\x1b[31mb\rc'"), "{}", out.stdout);
    // Its root_dir has a folder of its own, as the warning says.
    assert!(out.stderr.contains("environments live outside it, in `/tmp/stamp-local/a-31mb-c-"), "{}", out.stderr);
    // Each printed `cd` leads into its project.
    for (dir, printed) in [("-dash", "cd ./-dash"), (name, r"cd $'a\x1b[31mb\rc'")] {
        let pwd = std::process::Command::new("bash")
            .args(["-c", &format!("{printed} && pwd")])
            .current_dir(project.path())
            .output()
            .unwrap();
        let pwd = String::from_utf8(pwd.stdout).unwrap();
        assert_eq!(pwd.trim_end_matches('\n'), project.path().canonicalize().unwrap().join(dir).to_str().unwrap());
    }
    let out = project.stamp(["init", name]).run().failure(1);
    assert!(!out.stderr.contains(['\u{1b}', '\r']), "printed raw: {:?}", out.stderr);
    assert!(out.stderr.contains(r"  a\u{1b}[31mb\rc/stamp.yaml"), "{}", out.stderr);
}

#[test]
fn a_project_whose_path_root_dir_refuses_gets_environments_of_its_own() {
    let project = empty();
    let out = project.stamp(["init", "my shop"]).run().success();
    assert!(out.stdout.contains("  cd 'my shop'\n"), "{}", out.snapshot());
    assert!(
        out.stderr.contains("so its environments live outside it, in `/tmp/stamp-local/my-shop-"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("set `root_dir:` in `accounts/local-staging.yaml`"), "{}", out.stderr);
    let account = project.read("my shop/accounts/local-staging.yaml");
    let root_dir = account.lines().find_map(|l| l.strip_prefix("root_dir: ")).expect("a root_dir");
    assert!(root_dir.starts_with("/tmp/stamp-local/my-shop-"), "{account}");
    let out = Run::new(&project.path().join("my shop")).args(["check"]).run().success();
    assert!(out.stderr.contains("checked 1 account: no problems found"), "{}", out.snapshot());
}
