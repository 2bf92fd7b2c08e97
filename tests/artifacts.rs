//! Versioned artifacts: reproducible builds, verification, tampering and unsafe archives
//! refused before anything runs, and plan/apply/destroy from an artifact.

mod common;

use std::io::Write as _;

use common::Project;

#[test]
fn builds_are_reproducible_and_verify() {
    let project = Project::local();
    let one =
        project.stamp(["build", "production", "local-prod", "--version", "1.2.0", "--out", "one"]).run().success();
    project.stamp(["build", "production", "local-prod", "--version", "1.2.0", "--out", "two"]).run().success();
    for name in ["production-1.2.0.tar.gz", "local-prod-1.2.0.tar.gz"] {
        let a = fs_err::read(project.path().join("one").join(name)).unwrap();
        let b = fs_err::read(project.path().join("two").join(name)).unwrap();
        assert!(a.len() > 1000);
        assert!(a == b, "{name} differs between two builds");
    }
    assert!(one.stdout.contains("production-1.2.0.tar.gz"), "{}", one.stdout);
    let verify = project.stamp(["verify", "one/production-1.2.0.tar.gz"]).run().success();
    assert!(
        verify.stdout.starts_with("ok: `one/production-1.2.0.tar.gz` is account `production` version 1.2.0+none"),
        "{}",
        verify.stdout
    );
}

#[test]
fn build_all_puts_every_artifact_in_place_or_none() {
    let project = Project::example();
    let dist = project.path().join("dist");
    let names = || -> Vec<String> {
        let mut names: Vec<String> = match fs_err::read_dir(&dist) {
            Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    };
    // An account that does not validate: nothing is built, nothing is left half-way.
    let qa = "fixtures/accounts/qa.yaml";
    let text = project.read(qa);
    project.write(qa, &text.replace("azs: 2", "azs: 1"));
    let out = project.stamp(["build", "--all", "--version", "1.0.0"]).run().failure(1);
    assert!(out.stderr.contains("qa.yaml"), "{}", out.stderr);
    assert!(names().is_empty(), "{:?}", names());
    // Every account valid: one artifact each, and no staging folder.
    project.write(qa, &text);
    let out = project.stamp(["build", "--all", "--version", "1.0.0"]).run().success();
    let accounts = fs_err::read_dir(project.path().join("fixtures/accounts"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_string_lossy().strip_suffix(".yaml").map(str::to_string))
        .count();
    let built = names();
    assert_eq!(built.len(), accounts, "{built:?}\n{}", out.stdout);
    assert!(built.iter().all(|n| n.ends_with("-1.0.0.tar.gz")), "{built:?}");
    for name in &built {
        project.stamp(["verify", &format!("dist/{name}")]).run().success();
    }
}

/// An artifact is replaced only by one of its own account: another account's (an account `x`
/// at `1-2` and `x-1` at `2` share a file name) or a file that is no artifact is kept, and the
/// build says why.
#[test]
fn build_never_replaces_another_accounts_artifact() {
    let project = Project::example();
    let dist = project.path().join("dist");
    project.stamp(["build", "qa", "--version", "1.0.0"]).run().success();
    project.stamp(["build", "qa", "--version", "1.0.0"]).run().success();
    let theirs = fs_err::read(dist.join("qa-1.0.0.tar.gz")).unwrap();
    fs_err::write(dist.join("staging-1.0.0.tar.gz"), &theirs).unwrap();
    fs_err::write(dist.join("demo-1.0.0.tar.gz"), "not an artifact").unwrap();
    let out = project.stamp(["build", "staging", "--version", "1.0.0"]).run().failure(1);
    assert!(out.stderr.contains("holds the artifact of account `qa` at version `1.0.0`"), "{}", out.stderr);
    assert_eq!(fs_err::read(dist.join("staging-1.0.0.tar.gz")).unwrap(), theirs);
    let out = project.stamp(["build", "--all", "--version", "1.0.0"]).run().failure(1);
    assert!(out.stderr.contains("demo-1.0.0.tar.gz") || out.stderr.contains("staging-1.0.0.tar.gz"), "{}", out.stderr);
    assert_eq!(fs_err::read(dist.join("demo-1.0.0.tar.gz")).unwrap(), b"not an artifact");
    assert!(!dist.join("production-1.0.0.tar.gz").exists(), "nothing is built when one would be lost");
    // A FIFO in an artifact's place is refused, never opened (which would wait for a writer).
    #[cfg(unix)]
    {
        nix::unistd::mkfifo(&dist.join("loadtest-1.0.0.tar.gz"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let out = project.stamp(["build", "loadtest", "--version", "1.0.0"]).run().failure(1);
        assert!(out.stderr.contains("is not a plain file"), "{}", out.stderr);
    }
}

#[test]
fn build_tag_without_a_commit_builds_nothing() {
    let project = Project::example();
    project.git(&["init", "-q"]);
    let out = project.stamp(["build", "--all", "--version", "1.0.0", "--tag"]).run().failure(1);
    assert!(out.stderr.contains("there is no commit to tag"), "{}", out.stderr);
    assert!(!project.path().join("dist").exists(), "nothing is built");
}

#[test]
fn version_file_and_tag() {
    let project = Project::local();
    project.write("VERSION", "2.3.4\n");
    project.commit_all("init");
    let out = project.stamp(["build", "local-prod", "--tag"]).run().success();
    assert!(out.stderr.contains("tagged `local-prod/2.3.4`"), "{}", out.stderr);
    assert!(project.path().join("dist/local-prod-2.3.4.tar.gz").is_file());
    assert_eq!(project.git(&["tag", "--list"]), "local-prod/2.3.4");
    // A second tag of the same version is refused, before anything is built: versions are
    // immutable.
    let inode = || {
        use std::os::unix::fs::MetadataExt;
        fs_err::metadata(project.path().join("dist/local-prod-2.3.4.tar.gz")).unwrap().ino()
    };
    let built = inode();
    let again = project.stamp(["build", "local-prod", "--tag"]).run().failure(1);
    assert!(again.stderr.contains("cannot create git tag `local-prod/2.3.4`"), "{}", again.stderr);
    assert_eq!(inode(), built, "the artifact was not written again");
}

#[test]
fn config_in_artifacts_has_sensitive_values_redacted() {
    let project = Project::local();
    project.mark_sensitive("owner");
    project.stamp(["build", "local-staging", "--version", "1.0.0"]).run().success();
    let config = project.artifact_entry("dist/local-staging-1.0.0.tar.gz", "config.json");
    assert!(config.contains("\"owner\": \"<redacted>\""), "{config}");
    assert!(!config.contains("platform-team@acme.example"), "{config}");
}

/// Rewrites one file of an artifact (keeping its manifest): what an attacker or a broken copy
/// would do.
fn tamper(path: &std::path::Path) {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("tar").arg("-xzf").arg(path).arg("-C").arg(dir.path()).status().unwrap();
    assert!(status.success());
    let main = dir.path().join("root/main.tf");
    let mut file = fs_err::OpenOptions::new().append(true).open(&main).unwrap();
    writeln!(file, "resource \"terraform_data\" \"backdoor\" {{}}").unwrap();
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(path)
        .arg("-C")
        .arg(dir.path())
        .args(["manifest.json", "config.json", "root"])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn tampered_artifacts_are_refused_before_anything_runs() {
    let project = Project::local();
    project.stamp(["build", "local-staging", "--version", "1.0.0"]).run().success();
    let artifact = project.path().join("dist/local-staging-1.0.0.tar.gz");
    tamper(&artifact);
    let verify = project.stamp(["verify", "dist/local-staging-1.0.0.tar.gz"]).run().failure(1);
    assert!(verify.stderr.contains("`root/main.tf` in artifact"), "{}", verify.stderr);
    assert!(verify.stderr.contains("was modified"), "{}", verify.stderr);
    let plan = project.tf(["plan", "--artifact", "dist/local-staging-1.0.0.tar.gz"]).run().failure(1);
    assert!(plan.stderr.contains("was modified"), "{}", plan.stderr);
    assert!(!project.path().join(".stamp/work/local-staging").exists(), "something ran from a tampered artifact");
}

#[test]
fn unsafe_archives_are_refused() {
    let project = Project::local();
    // A tarball whose entry climbs out of the tree (written by hand: tools refuse to).
    let mut header = tar::Header::new_gnu();
    let name = b"root/../../evil.tf";
    header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    header.set_size(3);
    header.set_mode(0o644);
    header.set_cksum();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    builder.append(&header, &b"x=1"[..]).unwrap();
    let bytes = builder.into_inner().unwrap().finish().unwrap();
    project.write("evil.tar.gz", "");
    fs_err::write(project.path().join("evil.tar.gz"), bytes).unwrap();
    let out = project.tf(["apply", "--artifact", "evil.tar.gz", "--auto-approve"]).run().failure(1);
    assert!(out.stderr.contains("unsafe entry `root/../../evil.tf`"), "{}", out.stderr);
    assert!(!project.path().parent().unwrap().join("evil.tf").exists());
}

#[test]
fn old_versions_are_planned_applied_and_destroyed_from_their_artifacts() {
    let project = Project::local();
    project.stamp(["build", "local-staging", "--version", "1.0.0"]).run().success();
    // The working tree moves on; the artifact still deploys version 1.0.0 exactly as built.
    let path = "fixtures/accounts/local-staging.yaml";
    let text = project.read(path).replace("replicas: 1", "replicas: 2");
    project.write(path, &text);
    project.tf(["plan", "--artifact", "dist/local-staging-1.0.0.tar.gz"]).run().failure(2);
    let apply =
        project.tf(["apply", "--artifact", "dist/local-staging-1.0.0.tar.gz", "--auto-approve"]).run().success();
    assert!(apply.stdout.contains("local-staging: applied"), "{}", apply.stdout);
    let output = project.tf(["output", "local-staging", "--version", "1.0.0"]).run().success();
    assert!(output.stdout.contains("\"environment_version\": \"1.0.0+none\""), "{}", output.stdout);
    let service = project.read("envs/local-staging/service/config.json");
    assert!(service.contains("\"replicas\": 1"), "the artifact's config was not the one applied: {service}");
    let wrong = project.tf(["plan", "local-prod", "--artifact", "dist/local-staging-1.0.0.tar.gz"]).run().failure(1);
    assert!(wrong.stderr.contains("is an artifact of account `local-staging`, not `local-prod`"), "{}", wrong.stderr);
    project.tf(["destroy", "--artifact", "dist/local-staging-1.0.0.tar.gz", "--auto-approve"]).run().success();
    assert!(!project.env_dir("local-staging").exists());
}

#[test]
fn artifacts_can_carry_their_plan() {
    let project = Project::local();
    project.tf(["build", "local-staging", "--version", "1.0.0", "--plan"]).run().success();
    let list = std::process::Command::new("tar")
        .args(["-tzf", "dist/local-staging-1.0.0.tar.gz"])
        .current_dir(project.path())
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    // The JSON plan, redacted; never the binary plan, which holds variables in clear.
    assert!(!list.contains("plan/plan.tfplan") && list.contains("plan/plan.json"), "{list}");
    let json = project.artifact_entry("dist/local-staging-1.0.0.tar.gz", "plan/plan.json");
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(plan["resource_changes"].as_array().unwrap().len(), 5);
    project.stamp(["verify", "dist/local-staging-1.0.0.tar.gz"]).run().success();
}

#[test]
fn a_second_gzip_member_cannot_smuggle_files_in() {
    let project = Project::example();
    project.stamp(["build", "production", "--version", "1.2.0"]).run().success();
    let artifact = project.path().join("dist/production-1.2.0.tar.gz");
    // A second gzip member with another file: `tar` and Python's tarfile read it too.
    let smuggler = project.path().join("smuggled");
    fs_err::create_dir_all(smuggler.join("root")).unwrap();
    fs_err::write(smuggler.join("root/smuggled.tf"), "resource \"terraform_data\" \"x\" {}\n").unwrap();
    let extra = std::process::Command::new("tar")
        .args(["-czf", "-", "root/smuggled.tf"])
        .current_dir(&smuggler)
        .output()
        .unwrap();
    let mut bytes = fs_err::read(&artifact).unwrap();
    bytes.extend(extra.stdout);
    fs_err::write(&artifact, bytes).unwrap();
    let out = project.stamp(["verify", "dist/production-1.2.0.tar.gz"]).run().failure(1);
    assert!(out.stderr.contains("data after its gzip stream"), "{}", out.stderr);
}
