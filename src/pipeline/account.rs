//! One account's run: its folders, its lock, and each Terraform step with retries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::data;
use super::hooks::{self, HookEnv, HookResult, Hooks};
use super::lock::AccountLock;
use super::policy;
use crate::config::{Account, Archetype, Project};
use crate::diagnostics::Diagnostic;
use crate::render::Tree;
use crate::terraform::Terraform;
use crate::terraform::plan::{self, PlanSummary};
use crate::terraform::process::{Finished, Invocation, Log, SealedFile, interrupted};
use crate::terraform::providers::{self, ProviderCache, Requirements};
use crate::terraform::retry::RetryPolicy;

/// How long Terraform waits for a state lock held by another run before failing (a lock
/// failure is then retried as transient).
const LOCK_TIMEOUT: &str = "-lock-timeout=60s";

/// The plan as JSON for plan policies, in the account's data folder while they run.
const PLAN_JSON: &str = "stamp-plan.json";

/// What a run that planned the account leaves in its work folder for the run that applies the
/// plan after approval (see [`AccountRun::leave_token`]).
const TOKEN: &str = ".stamp-planned";

/// The most a token can be: anything larger in its place is not one.
const MAX_TOKEN: u64 = 4096;

/// Takes away the token a run left in the work folder `work` (see [`AccountRun::leave_token`]).
/// Only a small regular file can be a token: whatever else is in its place (a link, a pipe, a
/// folder, a huge file) is taken away unread, and counts as no token.
fn take_token(work: &Path) -> Result<Option<String>, RunError> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    use std::io::Read as _;
    let path = work.join(TOKEN);
    let meta = match fs_err::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RunError::io("cannot read the token of an earlier run")(e)),
    };
    // Opened without following a link or waiting on a pipe; what is read is what was opened.
    let flags = (nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits();
    let token = fs_err::OpenOptions::new().read(true).custom_flags(flags).open(&path).ok().and_then(|file| {
        let opened = file.metadata().ok()?;
        if !opened.is_file() || opened.len() > MAX_TOKEN {
            return None;
        }
        let mut bytes = Vec::new();
        file.take(MAX_TOKEN).read_to_end(&mut bytes).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    });
    let removed = if meta.is_dir() { fs_err::remove_dir_all(&path) } else { fs_err::remove_file(&path) };
    removed.map_err(RunError::io("cannot remove the token of an earlier run"))?;
    Ok(token)
}

/// Where an account's runs keep their files, under `.stamp/` in the project.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// The rendered root module Terraform runs in.
    pub work: PathBuf,
    /// `TF_DATA_DIR`: providers and backend settings, kept between runs.
    pub data: PathBuf,
    pub plan_file: PathBuf,
    pub lock: PathBuf,
    pub log: PathBuf,
}

impl Dirs {
    /// The folders of the account's environment in its slot.
    pub fn new(project: &Project, account: &Account) -> Self {
        let account = account.instance();
        let account = account.as_str();
        let stamp = project.root.join(".stamp");
        Self {
            work: stamp.join("work").join(account),
            data: stamp.join("data").join(account),
            plan_file: stamp.join("data").join(account).join("stamp.tfplan"),
            lock: stamp.join("locks").join(format!("{account}.lock")),
            log: stamp.join("logs").join(format!("{account}.log")),
        }
    }
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error("the account does not render")]
    Render(Vec<Diagnostic>),
    #[error("{0}")]
    Locked(String),
    #[error("`{command}` failed with exit code {code}")]
    Terraform { command: String, code: String, details: Vec<String> },
    #[error("{0}")]
    Refused(String),
    #[error("interrupted (at `{0}`): stopped cleanly")]
    Interrupted(String),
    #[error("{what}: {}", crate::diagnostics::io_reason(source))]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid retry pattern in archetype `{archetype}`: {source}")]
    RetryPattern {
        archetype: String,
        #[source]
        source: regex::Error,
    },
    #[error("unexpected output of `terraform output -json`: {0}")]
    Outputs(#[source] serde_json::Error),
    #[error("{0}")]
    Providers(String),
    #[error("cannot write the work folder: {0}")]
    WorkFolder(#[source] crate::render::tree::WriteError),
}

impl RunError {
    /// An I/O error while doing `what`.
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

impl RunError {
    /// The error with the lines explaining it.
    pub fn explain(&self) -> String {
        let details = self.details();
        if details.is_empty() { self.to_string() } else { format!("{self}\n{}", details.join("\n")) }
    }

    /// Lines explaining the failure (Terraform's errors, the tail of its output).
    pub fn details(&self) -> Vec<String> {
        match self {
            Self::Terraform { details, .. } => details.clone(),
            Self::Render(diagnostics) => diagnostics.iter().map(|d| d.message.clone()).collect(),
            _ => Vec::new(),
        }
    }
}

/// Reports what an account's run is doing (the CLI shows it as progress).
pub trait Progress: Sync {
    /// A run over `accounts` accounts starts.
    fn start(&self, _accounts: usize) {}
    fn phase(&self, account: &str, phase: &str);
    /// One account is through its current stage.
    fn account_done(&self, _account: &str) {}
    /// A problem that does not stop the run (shown even when progress is not).
    fn warning(&self, _message: &str) {}
}

/// No progress output.
pub struct Quiet;

impl Progress for Quiet {
    fn phase(&self, _: &str, _: &str) {}
}

/// One account being planned, applied or destroyed. Holds the account's lock.
pub struct AccountRun<'a> {
    pub project: &'a Project,
    pub account: &'a Account,
    pub archetype: &'a Archetype,
    pub terraform: &'a Terraform,
    pub retry: RetryPolicy,
    pub dirs: Dirs,
    pub log: Log,
    pub progress: &'a dyn Progress,
    /// Transient failures retried, by category.
    pub retries: BTreeMap<String, u32>,
    lock: AccountLock,
    /// The account's lock in a shared store, for runs that change it.
    _shared: Option<crate::store::StoreLock>,
    /// What the last run that held the account's lock left in its work folder for this one
    /// ([`AccountRun::leave_token`]); every run takes it away.
    found_token: Option<String>,
    /// The digest of the plan file as Terraform wrote it in this run, or as this run took it
    /// over (pinned, or saved): what was shown, checked and approved. Nothing else is applied.
    planned: Option<String>,
}

impl<'a> AccountRun<'a> {
    /// Takes the account's lock (and, for a run that changes the account, its lock in the
    /// store `changes` names, which every machine sharing the store sees) and opens its log.
    pub fn start(
        project: &'a Project,
        account: &'a Account,
        terraform: &'a Terraform,
        progress: &'a dyn Progress,
        changes: Option<&dyn crate::store::Store>,
    ) -> Result<Self, RunError> {
        let archetype = &project.archetypes[&account.archetype];
        let dirs = Dirs::new(project, account);
        let lock = AccountLock::acquire(&dirs.lock, &account.name).map_err(RunError::Locked)?;
        let shared = match changes {
            Some(store) => {
                crate::store::lock(store, &crate::store::account_key(&account.name)).map_err(RunError::Locked)?
            }
            None => None,
        };
        let log = Log::open(&dirs.log).map_err(RunError::io("cannot open the log"))?;
        let retry = RetryPolicy::new(&archetype.file.retry)
            .map_err(|source| RunError::RetryPattern { archetype: archetype.name.clone(), source })?;
        let found_token = take_token(&dirs.work)?;
        log.line(&format!("\n# ---- stamp {} run for `{}`", env!("CARGO_PKG_VERSION"), account.name));
        Ok(Self {
            project,
            account,
            archetype,
            terraform,
            retry,
            dirs,
            log,
            progress,
            retries: BTreeMap::new(),
            lock,
            _shared: shared,
            found_token,
            planned: None,
        })
    }

    /// Writes the account's rendered tree into its work folder and runs `terraform init`.
    pub fn prepare(&mut self, tree: &Tree) -> Result<(), RunError> {
        self.write_tree(tree)?;
        self.init()
    }

    /// The sha256 of the account's Terraform plan file: which plan it is.
    pub fn plan_file_digest(&self) -> Result<String, RunError> {
        let bytes = read_plan_file(&self.dirs.plan_file)?;
        Ok(crate::artifact::sha256_hex(&bytes))
    }

    /// Leaves `token` in the work folder for the next run that takes the account's lock, which
    /// takes it away ([`AccountRun::found_token`]): a run that finds the token it left knows no
    /// other run held the account in between (its work folder, plan file and Terraform data
    /// are as it left them).
    pub fn leave_token(&self, token: &str) -> Result<(), RunError> {
        // Replaced, not written through: whatever a hook left in its place is not followed.
        crate::fsio::write_atomic_with(&self.dirs.work.join(TOKEN), token.as_bytes(), crate::fsio::Mode::Private)
            .map_err(RunError::io("cannot write to the work folder"))
    }

    /// The token the last run that held the account's lock left, if it left one.
    pub fn found_token(&self) -> Option<&str> {
        self.found_token.as_deref()
    }

    /// The account's data folder, as it must be before anything is written into it: a folder
    /// only its owner may enter, not a link (see [`crate::fsio::private_dir`]).
    fn private_data(&self) -> Result<(), RunError> {
        crate::fsio::private_dir(&self.dirs.data).map_err(RunError::io("cannot make the Terraform data folder"))
    }

    /// Writes the account's rendered tree into its work folder (where its hooks run).
    pub fn write_tree(&mut self, tree: &Tree) -> Result<(), RunError> {
        self.progress.phase(&self.account.name, "render");
        let marker = format!("work folder of stamp for account {}\n", self.account.name);
        tree.write_atomically(&self.dirs.work, &marker).map_err(RunError::WorkFolder)?;
        // It holds the saved plan and, for plan policies, the plan as JSON: both carry the
        // plan's values, so only the owner may enter it (and a link in its place, which would
        // send them elsewhere, is refused).
        self.private_data()?;
        // A plan as JSON left by a run that was killed goes now.
        match fs_err::remove_file(self.dirs.data.join(PLAN_JSON)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(RunError::io("cannot remove a plan as JSON left by an earlier run")(e))
            }
            _ => Ok(()),
        }
    }

    /// `terraform init` in the work folder, with the providers from Stamp's provider cache
    /// (installed there once if missing) and the account's dependency lock file, which Stamp
    /// keeps in its data folder between runs unless the tree brings its own.
    pub fn init(&mut self) -> Result<(), RunError> {
        self.progress.phase(&self.account.name, "init");
        let requirements = Requirements::of(&self.dirs.work);
        let needs_providers = self.restore_lock_file(&requirements)?;
        let mut env = Vec::new();
        let cache = self.project.file.providers.cache_dir(&self.project.root).filter(|_| needs_providers);
        if let Some(cache) = cache.as_deref().and_then(ProviderCache::shared) {
            // Installing into the cache, or waiting for another run that is.
            self.progress.phase(&self.account.name, "providers");
            let config = self.dirs.data.join("stamp.terraformrc");
            let prepared = cache
                .prepare(&self.dirs.work, &requirements, &config, &self.terraform.path, &self.log, Some(self.lock.fd()))
                .map_err(|e| RunError::Providers(e.to_string()))?;
            if let Some(warning) = &prepared.warning {
                self.progress.warning(warning);
            }
            if !prepared.from_mirror.is_empty() {
                self.log.line(&format!(
                    "# provider cache: {} from {}",
                    prepared.from_mirror.join(", "),
                    cache.mirror().display()
                ));
            }
            env = prepared.env;
            self.progress.phase(&self.account.name, "init");
        }
        // A local state file is passed at init, relative to the work folder: wherever the tree
        // was rendered for (build/, an artifact), Stamp's runs use the same state.
        let mut args = vec!["init".to_string(), "-input=false".to_string(), "-no-color".to_string()];
        if self.archetype.backend() == crate::config::Backend::Local {
            let state = self
                .project
                .root
                .join(&self.project.file.state.local.dir)
                .join(self.account.instance())
                .join("terraform.tfstate");
            let relative = pathdiff::diff_paths(&state, &self.dirs.work).unwrap_or(state);
            args.push(format!("-backend-config=path={}", relative.display()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.terraform_with(&args, &[0], &env)?;
        self.keep_lock_file(needs_providers)
    }

    /// The lock file Stamp keeps for the account between runs (the work folder is rewritten by
    /// every run).
    fn kept_lock_file(&self) -> PathBuf {
        self.dirs.data.join("terraform.lock.hcl")
    }

    /// Puts the lock file `init` starts from into the work folder: the tree's own, or the one
    /// kept from the account's last `init` (see [`providers::starting_lock`]). `false` when the
    /// tree needs no provider.
    fn restore_lock_file(&self, requirements: &Requirements) -> Result<bool, RunError> {
        let lock = self.dirs.work.join(providers::LOCK_FILE);
        let tree = crate::fsio::plain_text(&lock, MAX_LOCK_FILE);
        if requirements.providers.is_empty() && tree.is_none() {
            return Ok(false);
        }
        let kept = crate::fsio::plain_text(&self.kept_lock_file(), MAX_LOCK_FILE);
        match providers::starting_lock(tree.as_deref(), kept.as_deref(), requirements) {
            Some(text) if tree.as_deref() != Some(text.as_str()) => {
                fs_err::write(&lock, text).map_err(RunError::io("cannot restore the dependency lock file"))?;
            }
            _ => {}
        }
        Ok(true)
    }

    /// Keeps the lock file `init` left in the work folder for the next run.
    fn keep_lock_file(&self, keep: bool) -> Result<(), RunError> {
        let Ok(text) = crate::fsio::read_plain(&self.dirs.work.join(providers::LOCK_FILE), MAX_LOCK_FILE) else {
            return Ok(());
        };
        let kept = self.kept_lock_file();
        if !keep || crate::fsio::read_plain(&kept, MAX_LOCK_FILE).is_ok_and(|old| old == text) {
            return Ok(());
        }
        crate::fsio::write_atomic(&kept, &text).map_err(RunError::io("cannot keep the dependency lock file"))
    }

    /// The work folder holds a rendered tree Terraform was initialised for.
    pub fn is_prepared(&self) -> bool {
        self.dirs.work.join(crate::render::tree::MARKER).is_file() && self.dirs.data.is_dir()
    }

    /// `terraform plan` (or `plan -destroy`) into the account's plan file.
    pub fn plan(&mut self, destroy: bool) -> Result<PlanSummary, RunError> {
        self.progress.phase(&self.account.name, if destroy { "plan -destroy" } else { "plan" });
        let out = format!("-out={}", self.dirs.plan_file.display());
        let mut args = vec!["plan", "-input=false", "-json", "-detailed-exitcode", LOCK_TIMEOUT, out.as_str()];
        if destroy {
            args.push("-destroy");
        }
        self.planned = None;
        // Hooks ran since the work folder was written: a link one left in place of the data
        // folder is refused. Terraform's `plan -out` writes into what is at the plan file's
        // name, so the last plan goes first: what a hook left there (a link, or a second name
        // of a file elsewhere) is never written through.
        self.private_data()?;
        if let Err(e) = fs_err::remove_file(&self.dirs.plan_file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(RunError::io("cannot remove the last plan file")(e));
        }
        let finished = self.terraform(&args, &[0, 2])?;
        self.planned = Some(self.plan_file_digest()?);
        let archetype = self.archetype;
        Ok(PlanSummary::from_ui_stream(&finished.stdout, &|t, a| archetype.is_stateful(t, a)))
    }

    /// Takes over the plan file now in the work folder (pinned by an earlier run, or saved),
    /// whose digest is `digest`, as this run's plan.
    pub fn adopt_plan_file(&mut self, digest: String) {
        self.planned = Some(digest);
    }

    /// The plan file's digest and bytes (read once), when it is still the one this run planned
    /// (or adopted): a policy command, a hook or anything else that replaced or changed it
    /// since is refused.
    pub fn plan_file_as_planned(&self) -> Result<(String, Vec<u8>), RunError> {
        let bytes = read_plan_file(&self.dirs.plan_file)?;
        let digest = crate::artifact::sha256_hex(&bytes);
        if self.planned.as_deref() == Some(digest.as_str()) {
            return Ok((digest, bytes));
        }
        Err(RunError::Refused(format!(
            "the plan file of account `{}` is not the one Terraform wrote when it was planned (it changed since): nothing was applied; plan it again",
            self.account.name
        )))
    }

    /// The plan file as Terraform is to read it: the bytes this run planned (see
    /// [`Self::plan_file_as_planned`]), sealed ([`SealedFile`]), so that what Terraform shows
    /// and applies is, byte for byte, the plan that was checked, whatever changes the file
    /// meanwhile. Where files cannot be sealed (not Linux, no `/proc`, `memfd_create` not
    /// allowed), the plan file itself, checked just before.
    fn plan_to_read(&self) -> Result<(String, Option<SealedFile>), RunError> {
        let (digest, bytes) = self.plan_file_as_planned()?;
        let plan_file = self.dirs.plan_file.display();
        // For a `terraform` that cannot see this process's files (a wrapper running it in a
        // container of its own): the plan file, checked just before.
        let sealed = if std::env::var_os("STAMP_PLAN_FROM_FILE").is_some_and(|v| v == "1") {
            Err("STAMP_PLAN_FROM_FILE=1".to_string())
        } else {
            match SealedFile::new("stamp.tfplan", &bytes) {
                Ok(Some(sealed)) => Ok(sealed),
                Ok(None) => Err("nothing can be sealed here".to_string()),
                Err(e) => Err(format!("cannot seal it in memory: {e}")),
            }
        };
        let (path, sealed) = match sealed {
            Ok(sealed) => (sealed.path(), Some(sealed)),
            Err(why) => {
                self.log.line(&format!("# {why}: Terraform reads `{plan_file}` (sha256 {digest})"));
                return Ok((plan_file.to_string(), None));
            }
        };
        self.log
            .line(&format!("# Terraform reads `{plan_file}` (sha256 {digest}) as checked, sealed in memory: {path}"));
        Ok((path, sealed))
    }

    /// Applies the account's plan file, only while it is the one this run planned.
    pub fn apply(&mut self, what: &str) -> Result<(), RunError> {
        let (plan_file, sealed) = self.plan_to_read()?;
        self.progress.phase(&self.account.name, what);
        let args = ["apply", "-input=false", "-json", LOCK_TIMEOUT, &plan_file];
        let applied = self.terraform_once(&args, &[0], &[]).map(|_| ());
        // Open until Terraform is done with it.
        drop(sealed);
        applied
    }

    /// Applies the account's plan file, `approved` being what it was shown to do. A transient
    /// failure (throttling, most often, when many resources are created at once) leaves part of
    /// it applied and the plan stale: then the account is planned again, and applied again when
    /// the new plan only finishes what was approved ([`PlanSummary::beyond`]), as often as the
    /// retry policy allows. Returns a note for each recovery.
    ///
    /// `policies` (the environment version) when the account's policies check what it applies:
    /// they check each new plan too, and one they do not pass is not applied.
    pub fn apply_approved(
        &mut self,
        what: &str,
        approved: &PlanSummary,
        destroy: bool,
        policies: Option<&str>,
    ) -> Result<Vec<String>, RunError> {
        let mut notes = Vec::new();
        let mut attempt = 1;
        loop {
            let error = match self.apply(what) {
                Ok(()) => return Ok(notes),
                Err(error) => error,
            };
            let transient = match &error {
                RunError::Terraform { details, .. } => self.retry.classify(&details.join("\n")),
                _ => None,
            };
            let Some(transient) = transient.filter(|_| attempt < self.retry.max_attempts && !interrupted()) else {
                return Err(error);
            };
            let delay = self.retry.delay(attempt);
            self.log.line(&format!(
                "# `terraform apply` failed with a transient error ({}: matched `{}`); planning again in {:.1}s",
                transient.category,
                transient.pattern,
                delay.as_secs_f64()
            ));
            *self.retries.entry(transient.category.clone()).or_default() += 1;
            std::thread::sleep(delay);
            attempt += 1;
            let replanned = self.plan(destroy)?;
            if let Some(beyond) = replanned.beyond(approved) {
                return Err(RunError::Refused(format!(
                    "{what} failed with a transient error ({}), and a new plan goes beyond what was approved: {beyond}; nothing more was applied: review it with `stamp plan`",
                    transient.category
                )));
            }
            // What the policies said of the new plan, for the note: its waived findings too.
            let mut passed = String::new();
            if let Some(version) = policies {
                let results = self.run_policies(version);
                if interrupted() {
                    return Err(RunError::Refused(format!(
                        "{what} failed with a transient error ({}), and the run was interrupted while the policies checked the new plan: nothing more was applied",
                        transient.category
                    )));
                }
                let problems: Vec<String> = results.iter().filter_map(super::policy::PolicyResult::problem).collect();
                if !problems.is_empty() {
                    return Err(RunError::Refused(format!(
                        "{what} failed with a transient error ({}), and the new plan does not pass the policies: {}; nothing more was applied: review it with `stamp plan`",
                        transient.category,
                        problems.join("; ")
                    )));
                }
                if !results.is_empty() {
                    passed = format!(", passed the policies{}", super::policy::waived_note(&results));
                }
            }
            notes.push(format!(
                "{what} failed with a transient error ({}); planned again: {} change(s) left, all approved{passed}; applied those",
                transient.category,
                replanned.changes.iter().filter(|c| c.action != crate::terraform::plan::Action::Read).count()
            ));
        }
    }

    /// `terraform show -json` of the account's plan file, while it is the one this run planned
    /// (read as [`Self::apply`] reads it).
    pub fn plan_json(&mut self) -> Result<String, RunError> {
        let (plan_file, sealed) = self.plan_to_read()?;
        let args = ["show", "-json", "-no-color", &plan_file];
        let shown = self.terraform_with(&args, &[0], &[]);
        drop(sealed);
        Ok(shown?.stdout)
    }

    /// The root module's outputs (`terraform output -json`), values only.
    pub fn outputs(&mut self) -> Result<BTreeMap<String, serde_json::Value>, RunError> {
        let finished = self.terraform(&["output", "-json", "-no-color"], &[0])?;
        let all: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&finished.stdout).map_err(RunError::Outputs)?;
        Ok(all
            .into_iter()
            .filter_map(|(name, o)| {
                let sensitive = o.get("sensitive").and_then(serde_json::Value::as_bool).unwrap_or(false);
                (!sensitive).then(|| (name, o.get("value").cloned().unwrap_or_default()))
            })
            .collect())
    }

    /// `terraform state pull`: the state's lineage and serial (`None` without state).
    pub fn state_version(&mut self) -> Result<Option<(String, u64)>, RunError> {
        let finished = self.terraform(&["state", "pull"], &[0])?;
        if finished.stdout.trim().is_empty() && !finished.truncated {
            return Ok(None);
        }
        // Output that is cut or not a state is never taken for "no state".
        let state: serde_json::Value = serde_json::from_str(&finished.stdout)
            .ok()
            .filter(|_| !finished.truncated)
            .ok_or_else(|| RunError::Refused("`terraform state pull` printed something else than a state".into()))?;
        let lineage = state.get("lineage").and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
        let serial = state.get("serial").and_then(serde_json::Value::as_u64).unwrap_or_default();
        Ok(Some((lineage, serial)))
    }

    /// The hooks in force: the account's lists over the archetype's.
    pub fn hooks(&self) -> Hooks {
        self.archetype.file.hooks.overridden_by(self.account.hooks.as_ref())
    }

    /// Environment for hooks: the account's facts and its Terraform outputs.
    pub fn hook_env(&self, environment_version: &str, outputs: &BTreeMap<String, serde_json::Value>) -> HookEnv {
        let root = self.dirs.work.display().to_string();
        let project = self.project.root.display().to_string();
        HookEnv::new(
            &[
                ("STAMP_ACCOUNT", &self.account.name),
                ("STAMP_ENVIRONMENT", self.account.environment()),
                ("STAMP_ARCHETYPE", &self.archetype.name),
                ("STAMP_VERSION", environment_version),
                ("STAMP_ROOT", &root),
                ("STAMP_PROJECT", &project),
            ],
            outputs,
        )
    }

    pub fn run_hooks(&mut self, kind: hooks::HookKind, list: &[hooks::Hook], env: &HookEnv) -> Vec<HookResult> {
        if list.is_empty() {
            return Vec::new();
        }
        self.progress.phase(&self.account.name, &kind.to_string());
        hooks::run_hooks(kind, list, self.place(), env)
    }

    pub fn run_smoke_tests(&mut self, list: &[hooks::SmokeTest], env: &HookEnv) -> Vec<HookResult> {
        if list.is_empty() {
            return Vec::new();
        }
        self.progress.phase(&self.account.name, "smoke tests");
        hooks::run_smoke_tests(list, self.place(), env)
    }

    /// The policies in force: the archetype's, then the account's own.
    pub fn policies(&self) -> Vec<&'a policy::Policy> {
        let (archetype, account): (&'a Archetype, &'a Account) = (self.archetype, self.account);
        archetype.file.policies.iter().chain(&account.policies).collect()
    }

    /// Runs the account's policies after a plan: tree policies in the work folder, plan
    /// policies with the plan as JSON (`terraform show -json` of the plan file) in a file
    /// only the owner can read, removed afterwards (it may hold sensitive values).
    pub fn run_policies(&mut self, environment_version: &str) -> Vec<policy::PolicyResult> {
        let policies = self.policies();
        if policies.is_empty() {
            return Vec::new();
        }
        self.progress.phase(&self.account.name, "policies");
        let env = self.hook_env(environment_version, &BTreeMap::new());
        let account: &'a Account = self.account;
        let waivers = &account.policy_waivers;
        let mut results = Vec::new();
        let mut plan_json: Option<Result<PlanJsonFile, String>> = None;
        for policy in policies {
            if interrupted() {
                results.push(policy::PolicyResult::failed(policy, "interrupted: not run"));
                continue;
            }
            let file = match policy.on {
                policy::PolicyInput::Tree => None,
                policy::PolicyInput::Plan => {
                    let written = plan_json.get_or_insert_with(|| self.write_plan_json());
                    match written {
                        Ok(file) => Some(file.path.clone()),
                        Err(e) => {
                            results.push(policy::PolicyResult::failed(policy, e.clone()));
                            continue;
                        }
                    }
                }
            };
            results.push(policy::run(policy, self.place(), &env, file.as_deref(), waivers));
        }
        results
    }

    /// The plan as JSON in the account's data folder, readable by its owner only.
    fn write_plan_json(&mut self) -> Result<PlanJsonFile, String> {
        let json = self.plan_json().map_err(|e| format!("cannot read the plan as JSON: {}", e.explain()))?;
        let path = self.dirs.data.join(PLAN_JSON);
        self.private_data().map_err(|e| format!("cannot write the plan as JSON: {}", e.explain()))?;
        crate::fsio::write_atomic_with(&path, json.as_bytes(), crate::fsio::Mode::Private)
            .map_err(|e| format!("cannot write the plan as JSON: {e}"))?;
        Ok(PlanJsonFile { path })
    }

    /// Environment for data hooks: the hook facts of the environment as deployed (its outputs,
    /// its version from the `stamp` output), its slot and the project's snapshot folder.
    pub fn data_env(&mut self) -> Result<HookEnv, RunError> {
        let outputs = self.outputs()?;
        if outputs.is_empty() {
            return Err(RunError::Refused(format!(
                "`{}` has no Terraform outputs: it has not been applied",
                self.account.instance()
            )));
        }
        let version = outputs
            .get("stamp")
            .and_then(|s| s.get("environment_version"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unknown")
            .to_string();
        let snapshots = self.project.root.join(&self.project.file.snapshots);
        fs_err::create_dir_all(&snapshots).map_err(RunError::io("cannot create the snapshot folder"))?;
        let mut env = self.hook_env(&version, &outputs);
        env.vars.push(("STAMP_SLOT".into(), self.account.slot.to_string()));
        env.vars.push(("STAMP_SNAPSHOT_DIR".into(), snapshots.display().to_string()));
        Ok(env)
    }

    /// Runs one of the archetype's data hooks; its stdout.
    pub fn run_data(&mut self, step: data::Step, env: &HookEnv, extra: &[(&str, &str)]) -> Result<String, String> {
        let Some(command) = self.archetype.file.data.get(step) else {
            return Err(self.archetype.file.data.require(&self.archetype.name, &[step]).unwrap_err());
        };
        self.progress.phase(&self.account.name, &format!("data: {}", step.name()));
        data::run(step, command, self.place(), env, extra)
    }

    /// Runs Terraform, retrying transient failures; `ok` lists the exit codes that mean success.
    fn terraform(&mut self, args: &[&str], ok: &[i32]) -> Result<Finished, RunError> {
        self.terraform_with(args, ok, &[])
    }

    /// [`Self::terraform`] with `extra` variables in its environment.
    fn terraform_with(&mut self, args: &[&str], ok: &[i32], extra: &[(String, String)]) -> Result<Finished, RunError> {
        let mut attempt = 1;
        loop {
            match self.terraform_once(args, ok, extra) {
                Ok(finished) => return Ok(finished),
                Err(RunError::Terraform { command, code, details }) => {
                    let text = details.join("\n");
                    let transient = self.retry.classify(&text);
                    match transient {
                        Some(t) if attempt < self.retry.max_attempts && !interrupted() => {
                            let delay = self.retry.delay(attempt);
                            self.log.line(&format!(
                                "# retry {attempt}/{}: `{command}` failed with a transient error ({}: matched `{}`); waiting {:.1}s",
                                self.retry.max_attempts - 1,
                                t.category,
                                t.pattern,
                                delay.as_secs_f64()
                            ));
                            *self.retries.entry(t.category).or_default() += 1;
                            self.progress.phase(&self.account.name, &format!("retry {attempt} after transient error"));
                            std::thread::sleep(delay);
                            attempt += 1;
                        }
                        _ => return Err(RunError::Terraform { command, code, details }),
                    }
                }
                Err(other) => return Err(other),
            }
        }
    }

    fn terraform_once(&self, args: &[&str], ok: &[i32], extra: &[(String, String)]) -> Result<Finished, RunError> {
        let mut env = self.terraform_env();
        env.extend_from_slice(extra);
        // Their output holds values in clear (sensitive ones too): never logged, nor quoted.
        let values_in_stdout = matches!(args.first().copied(), Some("output" | "show" | "state"));
        let invocation = Invocation {
            program: &self.terraform.path,
            args: args.iter().map(|a| (*a).to_string()).collect(),
            cwd: &self.dirs.work,
            env,
            timeout: None,
            grace: crate::terraform::process::TERRAFORM_GRACE,
            log_stdout: !values_in_stdout,
            log_stderr: true,
            max_output: crate::terraform::process::MAX_OUTPUT,
            hold: Some(self.lock.fd()),
        };
        let command = format!("terraform {}", args.first().unwrap_or(&""));
        let finished = invocation.run(&self.log).map_err(|e| {
            if e.kind() == std::io::ErrorKind::Interrupted {
                RunError::Interrupted(command.clone())
            } else {
                RunError::Io { what: command.clone(), source: e }
            }
        })?;
        if finished.interrupted {
            return Err(RunError::Interrupted(command));
        }
        match finished.code {
            Some(code) if ok.contains(&code) => Ok(finished),
            code => {
                let mut details: Vec<String> = plan::diagnostics(&finished.stdout)
                    .into_iter()
                    .filter(|d| d.severity == "error")
                    .map(|d| if d.detail.is_empty() { d.summary } else { format!("{}: {}", d.summary, d.detail) })
                    .collect();
                if details.is_empty() {
                    let tail = if values_in_stdout { finished.stderr_tail(12) } else { finished.tail(12) };
                    details = tail.lines().map(str::to_string).collect();
                }
                Err(RunError::Terraform { command, code: code.map_or("signal".into(), |c| c.to_string()), details })
            }
        }
    }

    fn terraform_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("TF_DATA_DIR".to_string(), self.dirs.data.display().to_string()),
            ("TF_IN_AUTOMATION".to_string(), "1".to_string()),
            ("TF_INPUT".to_string(), "0".to_string()),
            ("CHECKPOINT_DISABLE".to_string(), "1".to_string()),
            // One state per account: a workspace set in the caller's environment would plan and
            // apply another state of the same backend (every resource anew).
            ("TF_WORKSPACE".to_string(), "default".to_string()),
        ];
        if let Some(conn) = self.project.file.state.pg.as_ref().and_then(|pg| pg.conn_str.clone()) {
            env.push(("PG_CONN_STR".to_string(), conn));
        }
        env
    }

    /// Where the account's hooks run: its work folder, its log, its lock.
    fn place(&self) -> hooks::Place<'_> {
        hooks::Place { cwd: &self.dirs.work, log: &self.log, hold: Some(self.lock.fd()) }
    }

    pub fn work_dir(&self) -> &Path {
        &self.dirs.work
    }
}

/// The plan as JSON written for plan policies: removed when dropped.
struct PlanJsonFile {
    path: PathBuf,
}

impl Drop for PlanJsonFile {
    fn drop(&mut self) {
        let _ = fs_err::remove_file(&self.path);
    }
}

/// The most of a provider lock file read: a plain file (a hook may leave anything in the work
/// folder), whatever size it claims.
const MAX_LOCK_FILE: u64 = 16 << 20;

/// The bytes of the account's Terraform plan file: a plain file (one a hook put a FIFO in place
/// of must not keep the run waiting) of at most 256 MiB (it is held in memory whole).
fn read_plan_file(path: &std::path::Path) -> Result<Vec<u8>, RunError> {
    crate::fsio::read_plain(path, 256 << 20).map_err(RunError::io("cannot read the plan file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_read_once_and_nothing_else_is_taken_for_one() {
        let work = tempfile::tempdir().unwrap();
        let token = work.path().join(TOKEN);
        fs_err::write(&token, "planned by stamp pid 1\n").unwrap();
        assert_eq!(take_token(work.path()).unwrap().as_deref(), Some("planned by stamp pid 1\n"));
        assert!(!token.exists(), "a token is taken away");
        assert_eq!(take_token(work.path()).unwrap(), None, "and found once only");
        // Hostile things in its place are taken away unread: none blocks, fills memory or
        // counts as a token.
        let big = fs_err::File::create(&token).unwrap();
        big.set_len(MAX_TOKEN * 1024 * 1024).unwrap();
        drop(big);
        assert_eq!(take_token(work.path()).unwrap(), None, "a huge file");
        std::os::unix::fs::symlink("/dev/zero", &token).unwrap();
        assert_eq!(take_token(work.path()).unwrap(), None, "a link");
        nix::unistd::mkfifo(&token, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(take_token(work.path()).unwrap(), None, "a pipe nobody writes to");
        fs_err::create_dir_all(token.join("inside")).unwrap();
        assert_eq!(take_token(work.path()).unwrap(), None, "a folder");
        assert!(fs_err::symlink_metadata(&token).is_err(), "each was taken away");
    }
}
