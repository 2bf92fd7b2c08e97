//! A small builder for end-to-end tests: a copy of the project in a temporary folder, the
//! `stamp` binary run in it, and its exit code, stdout and stderr for snapshots.

#![allow(dead_code)]

pub mod pg;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the example project lives there).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary copy of the example project.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// Copies `stamp.yaml`, archetypes, blueprints and fixtures of the repository.
    pub fn example() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for entry in ["stamp.yaml", "archetypes", "blueprints", "fixtures"] {
            copy(&repo().join(entry), &dir.path().join(entry));
        }
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, text: &str) -> &Self {
        let path = self.path().join(relative);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, text).unwrap();
        self
    }

    pub fn read(&self, relative: &str) -> String {
        fs_err::read_to_string(self.path().join(relative)).unwrap()
    }

    /// `stamp ARGS` run inside the project.
    pub fn stamp<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Run::new(self.path()).args(args)
    }
}

fn copy(from: &Path, to: &Path) {
    if from.is_file() {
        fs_err::create_dir_all(to.parent().unwrap()).unwrap();
        fs_err::copy(from, to).unwrap();
        return;
    }
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            fs_err::create_dir_all(&target).unwrap();
        } else {
            fs_err::copy(entry.path(), &target).unwrap();
        }
    }
}

/// One run of the binary.
pub struct Run {
    command: Command,
    root: PathBuf,
}

impl Run {
    pub fn new(cwd: &Path) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stamp"));
        command
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .env_remove("STAMP_VERSION")
            .env_remove("STAMP_PROJECT")
            .env_remove("STAMP_STORE_PG");
        Self { command, root: cwd.to_path_buf() }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Starts the run without waiting for it (to kill it, or to race another run).
    pub fn spawn(mut self) -> std::process::Child {
        self.command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        self.command.spawn().expect("stamp starts")
    }

    /// Runs it, killed (and the test failed) if it takes longer than `limit`: for a run that
    /// could hang.
    pub fn run_within(self, limit: std::time::Duration) -> Output {
        let root = self.root.clone();
        let shown = format!("{:?}", self.command);
        let mut child = self.spawn();
        let deadline = std::time::Instant::now() + limit;
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("{shown} hangs");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            root,
        }
    }

    pub fn run(mut self) -> Output {
        let out = self.command.output().expect("stamp runs");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
            root: self.root,
        }
    }
}

/// What a run printed.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub root: PathBuf,
}

impl Output {
    /// Exit code, stdout and stderr, with the temporary project path replaced by `[PROJECT]`.
    pub fn snapshot(&self) -> String {
        let text = format!("exit: {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr);
        redact(&text, &self.root)
    }

    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "expected success:\n{}", self.snapshot());
        self
    }

    pub fn failure(self, code: i32) -> Self {
        assert_eq!(self.code, code, "expected exit {code}:\n{}", self.snapshot());
        self
    }
}

pub fn redact(text: &str, root: &Path) -> String {
    let mut text = text.to_string();
    for root in [root.canonicalize().unwrap_or_else(|_| root.to_path_buf()), root.to_path_buf()] {
        text = text.replace(&root.display().to_string(), "[PROJECT]");
    }
    text
}

/// `insta::assert_snapshot!` with development versions (`0.0.YYDDD.SSSSS`) filtered out.
#[macro_export]
macro_rules! snapshot {
    ($($arg:tt)*) => {
        insta::with_settings!({filters => vec![(r"0\.0\.\d{5}\.\d{5}", "[DEV_VERSION]")]}, {
            insta::assert_snapshot!($($arg)*);
        })
    };
}

/// Every file of a rendered folder, as one text: `== path ==` then the content.
pub fn tree_text(dir: &Path) -> String {
    let mut out = String::new();
    let mut entries: Vec<_> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .collect();
    entries.sort_by(|a, b| a.path().cmp(b.path()));
    for entry in entries {
        let relative = entry.path().strip_prefix(dir).unwrap().display().to_string();
        let content = fs_err::read(entry.path()).unwrap();
        let _ = writeln!(out, "== {relative} ==");
        out.push_str(&String::from_utf8_lossy(&content));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The pinned Terraform installed by `scripts/install-terraform.sh` (run by `make test`).
pub fn terraform() -> PathBuf {
    if let Some(path) = std::env::var_os("STAMP_TEST_TERRAFORM") {
        return PathBuf::from(path);
    }
    let local = repo().join(".tools/bin/terraform");
    assert!(
        local.is_file(),
        "no Terraform for tests: run `make test` (or `scripts/install-terraform.sh`) to install the pinned one into .tools/"
    );
    local
}

/// The pinned checkov installed by `scripts/install-checkov.sh` (run by `make test`).
pub fn checkov() -> PathBuf {
    if let Some(path) = std::env::var_os("STAMP_TEST_CHECKOV") {
        return PathBuf::from(path);
    }
    let local = repo().join(".tools/bin/checkov");
    assert!(
        local.is_file(),
        "no checkov for tests: run `make test` (or `scripts/install-checkov.sh`) to install the pinned one into .tools/"
    );
    local
}

/// An empty CLI config so Terraform does not warn about a missing `~/.terraformrc`.
pub fn terraform_command(cwd: &Path) -> Command {
    let mut command = Command::new(terraform());
    let rc = repo().join(".tools/terraformrc");
    if rc.is_file() {
        command.env("TF_CLI_CONFIG_FILE", rc);
    }
    command.current_dir(cwd).env("TF_IN_AUTOMATION", "1").env("CHECKPOINT_DISABLE", "1");
    command
}

impl Project {
    /// The example project with local-platform environments created under the temporary
    /// folder (instead of `/tmp/stamp-local`), so tests never share environments.
    pub fn local() -> Self {
        let project = Self::example();
        let path = "archetypes/local-platform/archetype.yaml";
        let envs = project.path().join("envs");
        let text = project.read(path).replace("root_dir: /tmp/stamp-local", &format!("root_dir: {}", envs.display()));
        project.write(path, &text);
        project
    }

    /// `stamp ARGS` with the pinned Terraform, no progress lines, fast retries.
    pub fn tf<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.tf_in("", args)
    }

    /// [`Project::tf`] run in the project's folder `folder` (made if missing).
    pub fn tf_in<I, S>(&self, folder: &str, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let cwd = self.path().join(folder);
        fs_err::create_dir_all(&cwd).unwrap();
        let mut run = Run::new(&cwd).env("STAMP_TERRAFORM", terraform()).env("STAMP_RETRY_DELAY", "10ms");
        let rc = repo().join(".tools/terraformrc");
        if rc.is_file() {
            run = run.env("TF_CLI_CONFIG_FILE", rc);
        }
        run.args(["--quiet"]).args(args)
    }

    /// The folder of a local-platform environment.
    pub fn env_dir(&self, account: &str) -> PathBuf {
        self.path().join("envs").join(account)
    }
}

/// Writes an executable script (a fake `terraform` for failure injection, a hook).
pub fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    fs_err::write(path, text).unwrap();
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A `git` that logs each call's arguments (a line each) before running the real one: put
/// first on `PATH` to see what Stamp asks git.
pub struct GitLog {
    /// `PATH` with the logging `git` first.
    pub path: String,
    log: PathBuf,
}

impl GitLog {
    pub fn new(project: &Project) -> Self {
        let real = Command::new("sh").args(["-c", "command -v git"]).output().unwrap();
        let real = String::from_utf8(real.stdout).unwrap().trim().to_string();
        let bin = project.path().join("wrapper-bin");
        let log = project.path().join("git-calls.log");
        write_executable(
            &bin.join("git"),
            &format!("#!/bin/sh\necho \"$*\" >> '{}'\nexec '{real}' \"$@\"\n", log.display()),
        );
        Self { path: format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()), log }
    }

    /// The calls logged since the last time, and a fresh log.
    pub fn calls(&self) -> String {
        let text = fs_err::read_to_string(&self.log).unwrap_or_default();
        let _ = fs_err::remove_file(&self.log);
        text
    }
}

impl Project {
    /// Runs git in the project (for tests of revisions, tags and drift).
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=Stamp Test",
                "-c",
                "user.email=test@stamp.invalid",
                "-c",
                "commit.gpgsign=false",
                "-c",
                "tag.gpgsign=false",
            ])
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// `git init` and a first commit of everything.
    pub fn commit_all(&self, message: &str) -> String {
        if !self.path().join(".git").exists() {
            self.git(&["init", "-q"]);
            self.write(".gitignore", ".stamp/\nbuild/\ndist/\nenvs/\n");
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-qm", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

impl Project {
    /// Marks a local-platform config key as sensitive (`writeOnly`) in the archetype's schema.
    pub fn mark_sensitive(&self, key: &str) {
        let path = "archetypes/local-platform/schema.json";
        let mut schema: serde_json::Value = serde_json::from_str(&self.read(path)).unwrap();
        schema["properties"][key]["writeOnly"] = true.into();
        self.write(path, &serde_json::to_string_pretty(&schema).unwrap());
    }

    /// One file of an artifact (`tar -xzO`).
    pub fn artifact_entry(&self, artifact: &str, entry: &str) -> String {
        let out = Command::new("tar").args(["-xzOf", artifact, entry]).current_dir(self.path()).output().unwrap();
        assert!(out.status.success(), "no `{entry}` in `{artifact}`");
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Evaluates expressions with the real Terraform (`terraform console`) in a folder holding
/// `main.tf`; their values, in order (one `terraform console` run for all of them).
pub fn console(dir: &std::path::Path, expressions: &[String]) -> Vec<serde_json::Value> {
    use std::io::Write as _;
    let mut child = terraform_command(dir)
        .args(["console"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = format!("jsonencode([{}])\n", expressions.join(", "));
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "terraform console failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    // The console prints the JSON text as an HCL string literal.
    let literal: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    serde_json::from_str(literal.as_str().unwrap()).unwrap()
}

impl Project {
    /// Replaces the local-platform archetype's `restore` data hook by `script` (run by `sh`).
    pub fn replace_restore_hook(&self, script: &str) {
        let path = "archetypes/local-platform/archetype.yaml";
        let text = self.read(path);
        let indented = script.lines().map(|l| format!("      {l}")).collect::<Vec<_>>().join("\n");
        let mut replaced = false;
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                if line.starts_with("  restore:") {
                    replaced = true;
                    format!("  restore:\n    run: |\n{indented}")
                } else {
                    line.to_string()
                }
            })
            .collect();
        assert!(replaced, "no restore hook in {path}");
        self.write(path, &(lines.join("\n") + "\n"));
    }

    /// A clone of this project's git repository in a folder of its own: a second checkout
    /// (another CI runner, a colleague's laptop). Everything it shares with this one comes
    /// from the commit (absolute paths in the files, the database named in `stamp.yaml`).
    pub fn clone_checkout(&self) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        let out =
            Command::new("git").args(["clone", "-q"]).arg(self.path()).arg(dir.path()).output().expect("git runs");
        assert!(out.status.success(), "git clone: {}", String::from_utf8_lossy(&out.stderr));
        Project { dir }
    }
}

impl Project {
    /// Writes `fixtures/accounts/<name>.yaml`: a copy of local-staging with its own network
    /// (`10.<octet>.0.0/16`), zone and port, and `environment: <environment>` (which may carry
    /// more top-level lines, e.g. `sandbox\nephemeral: true\nttl: 1h`).
    pub fn add_local_copy(&self, name: &str, octet: u8, environment: &str) {
        let account = self
            .read("fixtures/accounts/local-staging.yaml")
            .replace("environment: staging", &format!("environment: {environment}"))
            .replace("10.41.", &format!("10.{octet}."))
            .replace("staging.local", &format!("{name}.local"))
            .replace("port: 18180", &format!("port: {}", 18000 + u32::from(octet) * 10));
        self.write(&format!("fixtures/accounts/{name}.yaml"), &account);
    }
}
