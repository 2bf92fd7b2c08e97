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
