//! `stamp check`: validate and render in memory every (or the named) account.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::Workspace;
use crate::cache::Key;
use crate::config::catalog::Entry;
use crate::config::{Account, Project, Slot};
use crate::diagnostics::{self, Diagnostic, Report, Severity, Sources};
use crate::render::{Renderer, Tree};
use crate::schema::{Validators, cross_account};
use crate::version::BuildVersion;

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Account names or files; empty means every account.
    pub accounts: Vec<String>,
    /// Release version to stamp; `None` for the development version.
    pub version: Option<String>,
    /// Also run each account's `on: tree` policies on its rendered tree (every account is
    /// rendered then: the cache cannot stand in for a policy run).
    pub policies: bool,
}

/// What `check` found.
pub struct CheckReport {
    pub accounts_checked: usize,
    /// How many of them this check rendered itself (after they loaded and validated).
    pub accounts_rendered: usize,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
}

impl CheckReport {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error).count()
    }
}

/// The result of validating and rendering a set of accounts in memory.
pub struct Checked<'w> {
    pub workspace: &'w Workspace,
    pub version: BuildVersion,
    /// Each selected account (in the slot it was rendered for) whose tree was kept, or that
    /// has problems; an account whose tree the consumer used as it came is not held, so
    /// thousands of accounts never sit in memory at once.
    pub trees: Vec<(Cow<'w, Account>, Option<Tree>)>,
    /// How many selected accounts were checked (rendered, or stood in for by the cache).
    pub checked: usize,
    /// How many of them were rendered.
    pub rendered: usize,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked<'_> {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    /// The errors (and the other diagnostics), as a report.
    pub fn report(self) -> Report {
        Report::new(self.diagnostics, self.workspace.project.sources.clone())
    }
}

/// Which version to stamp.
#[derive(Debug, Clone)]
pub enum VersionSpec<'a> {
    /// A release version (or the development version), with the project's git commit.
    Release(Option<&'a str>),
    /// Exactly this (e.g. for a project checked out at a git revision).
    Exact(BuildVersion),
    /// As `Release`, for a check whose trees are dropped: when no template reads the version
    /// (see [`Renderer::reads_version`]), nothing the check finds depends on it, so git is not
    /// asked and the trees get [`BuildVersion::unread`].
    Unread(Option<&'a str>),
}

impl VersionSpec<'_> {
    /// The version to stamp with `renderer`'s blueprints (compiled with a placeholder).
    fn resolve(self, renderer: &Renderer<'_>, root: &Path) -> BuildVersion {
        match self {
            Self::Release(release) => BuildVersion::resolve(release, root),
            Self::Exact(version) => version,
            Self::Unread(release) if renderer.reads_version() => BuildVersion::resolve(release, root),
            Self::Unread(release) => BuildVersion::unread(release, root),
        }
    }
}

/// What to do with each rendered tree, as soon as it is rendered: keep it (`Ok(Some)`), or use
/// and drop it (`Ok(None)`), so thousands of accounts never sit in memory at once.
pub type Consumer<'a> = dyn Fn(&Account, &Path, Tree) -> Result<Option<Tree>, Diagnostic> + Sync + 'a;

/// Keeps every tree.
pub fn keep(_: &Account, _: &Path, tree: Tree) -> Result<Option<Tree>, Diagnostic> {
    Ok(Some(tree))
}

/// Drops every tree (a pass that only checks).
pub fn discard(_: &Account, _: &Path, _: Tree) -> Result<Option<Tree>, Diagnostic> {
    Ok(None)
}

/// Runs `work` with `jobs` accounts at once (at most [`MAX_JOBS`]): a `validate_and_render`
/// inside it hands that many trees on at a time. When the system refuses that many threads,
/// with rayon's shared pool instead.
pub fn with_jobs<T: Send>(jobs: usize, work: impl FnOnce() -> T + Send) -> T {
    match rayon::ThreadPoolBuilder::new().num_threads(jobs.clamp(1, MAX_JOBS)).build() {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    }
}

/// More accounts at once than this would only wait on each other (and on the cloud's limits).
const MAX_JOBS: usize = 256;

/// Lets the cache stand in for validating and rendering an account again: when the cache
/// holds a clean check of exactly the account's inputs, `accept` gets its catalog entry, the
/// folder it would be written to and the digest of its tree, and says whether that is all the
/// caller needs (else the account is rendered as usual).
pub struct Reuse<'a> {
    /// The folder an account (by name) would be written to: the same as `out_dir_of` gives.
    pub out_dir: &'a (dyn Fn(&Workspace, &str) -> PathBuf + Sync),
    pub accept: &'a (dyn Fn(&Entry, &Path, &str) -> bool + Sync),
}

/// What to render: the selected accounts (names or files, none: every account), some in
/// another slot than their live one (e.g. the environment a migration builds alongside).
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection<'a> {
    pub accounts: &'a [String],
    pub slot: Option<(&'a str, crate::config::Slot)>,
}

impl<'a> Selection<'a> {
    /// These accounts (none: every account).
    pub fn of(accounts: &'a [String]) -> Self {
        Self { accounts, slot: None }
    }
}

/// What became of one selected account.
enum Outcome<'w> {
    /// Rendered (its tree when clean and kept), with what was found.
    Rendered(Box<Cow<'w, Account>>, Option<Tree>, Vec<Diagnostic>),
    /// Checked cleanly, and nothing of it is kept: the cache stood in for it, or the caller
    /// used its tree as it came.
    Done,
    /// It could not be loaded whole.
    Unloaded(Diagnostic),
}

/// The cache key of an account's clean check: its load, its slot and creation time, the
/// renderer (version, blueprint) and where its local state would be, relative to `out_dir`.
fn result_key(project: &Project, renderer_key: &str, entry: &Entry, slot: Slot, out_dir: &Path) -> String {
    let instance = slot.instance_of(entry.name());
    Key::new("result")
        .field(&entry.load_key)
        .field(slot.as_str())
        .optional(entry.created_at.as_deref())
        .field(renderer_key)
        .field(crate::render::local_state_path(project, &instance, out_dir))
        .finish()
}

/// Up to how many selected accounts their conflicts are found by comparing each with every
/// account, rather than by grouping all values.
const FEW: usize = 32;

/// Validates and renders the selected accounts (in parallel). `out_dir_of` gives the folder
/// an account would be written to; `consume` gets each rendered tree. With `reuse`, an
/// account whose clean check the cache holds is not rendered when `reuse` accepts it.
pub fn validate_and_render<'w>(
    workspace: &'w Workspace,
    selection: Selection<'_>,
    version: VersionSpec<'_>,
    out_dir_of: &(dyn Fn(&Workspace, &Account) -> std::path::PathBuf + Sync),
    consume: &Consumer<'_>,
    reuse: Option<&Reuse<'_>>,
) -> Result<Checked<'w>, Report> {
    let (selected, mut found) = if selection.accounts.is_empty() {
        (None, Vec::new())
    } else {
        let (selected, problems) = workspace.resolve(selection.accounts);
        (Some(selected), problems)
    };
    let project = &workspace.project;
    let targets: Vec<&Entry> =
        project.catalog.iter().filter(|e| selected.as_ref().is_none_or(|s| s.contains(&e.display))).collect();
    // Only the archetypes and blueprints the selected accounts use are compiled.
    let used: BTreeSet<&str> = targets.iter().map(|e| e.summary.archetype.as_str()).collect();
    let only = selected.is_some().then_some(&used);
    let (Compiled { renderer, validators, version }, compiled) =
        Compiled::new(project, only, version).map_err(|problem| {
            Report::new(vec![Diagnostic::error("version.invalid", problem)], workspace.project.sources.clone())
        })?;
    found.extend(compiled);
    let renderer_keys: BTreeMap<&str, Option<String>> =
        used.iter().map(|&archetype| (archetype, renderer.key(archetype))).collect();
    // Conflicts between accounts are known before rendering: both accounts of a conflict are
    // rendered (to report their own problems too) but never handed on, so nothing is written
    // for either until the conflict is resolved.
    // Only the conflicts of the selected accounts are reported, and only they are blocked.
    let pairs = match &selected {
        Some(selected) if selected.len() <= FEW => {
            let subjects = project.catalog.iter().enumerate().filter(|(_, e)| selected.contains(&e.display));
            cross_account::conflicting_pairs_with(&project.catalog, &subjects.map(|(i, _)| i).collect())
        }
        _ => cross_account::conflicting_pairs(&project.catalog),
    };
    let conflicts = cross_account::check(&project.catalog, &pairs, selected.as_ref());
    let blocked: BTreeSet<&str> = pairs
        .into_iter()
        .flat_map(|(a, b)| [project.catalog[a].display.as_str(), project.catalog[b].display.as_str()])
        .collect();
    // The files the conflicts point into are shown with them.
    for entry in project.catalog.iter().filter(|e| blocked.contains(e.display.as_str())) {
        let _ = project.load_entry(entry);
    }
    let memo = &project.memo;
    let rendered = std::sync::atomic::AtomicUsize::new(0);
    let outcomes: Vec<Outcome<'w>> = targets
        .par_iter()
        .map(|&entry| {
            let slot = match selection.slot {
                Some((name, slot)) if name == entry.name() => slot,
                _ => entry.slot,
            };
            // An ephemeral account's tags depend on the clock: it is always rendered.
            let renderer_key = renderer_keys
                .get(entry.summary.archetype.as_str())
                .and_then(Option::as_deref)
                .filter(|_| memo.is_on() && !entry.summary.ephemeral);
            if let (Some(reuse), Some(renderer_key)) = (reuse, renderer_key) {
                let out_dir = (reuse.out_dir)(workspace, entry.name());
                let key = result_key(project, renderer_key, entry, slot, &out_dir);
                if let Some(digest) = memo.result(&entry.load_key, &key)
                    && (blocked.contains(entry.display.as_str()) || (reuse.accept)(entry, &out_dir, &digest))
                {
                    return Outcome::Done;
                }
            }
            let account: Cow<'w, Account> = match project.accounts.iter().find(|a| a.display == entry.display) {
                Some(account) if account.slot == slot => Cow::Borrowed(account),
                Some(account) => Cow::Owned(account.in_slot(slot)),
                None => match project.load_entry(entry) {
                    Ok(account) => Cow::Owned(account.in_slot(slot)),
                    Err(problem) => return Outcome::Unloaded(*problem),
                },
            };
            let problems = validators.validate(project, &account);
            if !problems.is_empty() {
                return Outcome::Rendered(Box::new(account), None, problems);
            }
            let out_dir = out_dir_of(workspace, &account);
            rendered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tree = match renderer.render(&account, &out_dir) {
                Ok(tree) => tree,
                Err(problems) => return Outcome::Rendered(Box::new(account), None, problems),
            };
            if let Some(renderer_key) = renderer_key {
                memo.checked(
                    &entry.load_key,
                    &result_key(project, renderer_key, entry, slot, &out_dir),
                    &tree.disk_digest(),
                );
            }
            if blocked.contains(account.display.as_str()) {
                return Outcome::Rendered(Box::new(account), None, Vec::new());
            }
            match consume(&account, &out_dir, tree) {
                Ok(tree) => Outcome::Rendered(Box::new(account), tree, Vec::new()),
                Err(problem) => Outcome::Rendered(Box::new(account), None, vec![problem]),
            }
        })
        .map(|outcome| match outcome {
            // The caller used the tree as it came: the account need not be kept.
            Outcome::Rendered(_, tree, problems) if tree.is_none() && problems.is_empty() => Outcome::Done,
            outcome => outcome,
        })
        .collect();
    found.extend(conflicts);
    let mut trees = Vec::new();
    let mut checked = 0;
    for outcome in outcomes {
        match outcome {
            Outcome::Rendered(account, tree, problems) => {
                found.extend(problems);
                checked += 1;
                if reuse.is_none() {
                    trees.push((*account, tree));
                }
            }
            Outcome::Done => checked += 1,
            Outcome::Unloaded(problem) => found.push(problem),
        }
    }
    let mut diagnostics = match &selected {
        Some(selected) => workspace.diagnostics_of(selected),
        None => workspace.diagnostics.clone(),
    };
    diagnostics.extend(found);
    diagnostics::sort(&mut diagnostics);
    Ok(Checked { workspace, version, trees, checked, rendered: rendered.into_inner(), diagnostics })
}

/// Renders one account of `workspace`, in `slot`, for its work folder: the tree, or why not.
pub fn render_one(
    workspace: &Workspace,
    account: &str,
    slot: crate::config::Slot,
    version: VersionSpec<'_>,
) -> Result<Tree, Report> {
    let kept = std::sync::Mutex::new(None);
    let keep = |_: &Account, _: &Path, tree: Tree| {
        *kept.lock().expect("kept lock") = Some(tree);
        Ok(None)
    };
    let work_dir = |w: &Workspace, a: &Account| crate::pipeline::Dirs::new(&w.project, a).work;
    let accounts = [account.to_string()];
    let selection = Selection { accounts: &accounts, slot: Some((account, slot)) };
    let checked = validate_and_render(workspace, selection, version, &work_dir, &keep, None)?;
    match kept.into_inner().expect("kept lock") {
        Some(tree) => Ok(tree),
        None => Err(checked.report()),
    }
}

/// The default folder an account renders to: `build/<account>` in the project.
pub fn default_out_dir(workspace: &Workspace, account: &Account) -> std::path::PathBuf {
    build_dir(&workspace.project, &account.name)
}

/// `build/<account>` in the project: where `check` says an account would be written (its
/// cache records depend on it).
fn build_dir(project: &Project, name: &str) -> PathBuf {
    project.root.join("build").join(name)
}

/// The blueprints and schemas of the archetypes in `only` (all when `None`), compiled, and the
/// version they stamp.
struct Compiled<'p> {
    renderer: Renderer<'p>,
    validators: Validators,
    version: BuildVersion,
}

impl<'p> Compiled<'p> {
    /// With what compiling found; the error when the version is not one.
    fn new(
        project: &'p Project,
        only: Option<&BTreeSet<&str>>,
        version: VersionSpec<'_>,
    ) -> Result<(Self, Vec<Diagnostic>), String> {
        // The blueprints are compiled first: whether their templates read the version decides
        // how an `Unread` one is found.
        let (renderer, mut found) = Renderer::new(project, BuildVersion::placeholder(), only);
        let version = version.resolve(&renderer, &project.root);
        crate::version::validate(&version.version)?;
        let renderer = renderer.with_version(version.clone());
        let (validators, compiled) = Validators::compile(project, only);
        found.splice(0..0, compiled);
        Ok((Self { renderer, validators, version }, found))
    }
}

/// A `check` of every account, begun while the project loads: each account the cache does not
/// know is validated and rendered as soon as it is read, in the slot the ledger says is live,
/// and a clean result goes into the cache under the key `check` looks for. `check` then finds
/// it there, and the account is read and parsed once. An account with problems is checked
/// again by `check`, which reports what it finds.
#[derive(Debug)]
pub struct Prerender<'a> {
    /// The release version `check` is given.
    pub version: Option<&'a str>,
}

/// What rendering ahead needs, made when the first account the cache does not know comes.
struct Ahead<'p> {
    renderer: Renderer<'p>,
    validators: Validators,
    renderer_keys: BTreeMap<&'p str, String>,
    /// The ledger, for each account's live slot: in a folder, one file per account, read for
    /// the accounts rendered ahead only.
    store: Arc<dyn crate::store::Store>,
}

impl<'p> Ahead<'p> {
    /// `None` when `check` would not take what it gives (no cache, a version that is not
    /// valid, a store that cannot be opened), or when asking the store account by account
    /// would cost more than it saves (a shared store: a query each).
    fn new(project: &'p Project, version: Option<&str>) -> Option<Self> {
        if !project.memo.is_on() {
            return None;
        }
        let store = crate::store::open(&project.file.store, &project.root, &project.file.ledger).ok()?;
        if store.is_shared() {
            return None;
        }
        let (Compiled { renderer, validators, .. }, _) =
            Compiled::new(project, None, VersionSpec::Unread(version)).ok()?;
        let renderer_keys = project
            .archetypes
            .keys()
            .filter_map(|archetype| Some((archetype.as_str(), renderer.key(archetype)?)))
            .collect();
        Some(Self { renderer, validators, renderer_keys, store })
    }

    fn render(&self, project: &Project, entry: &Entry, account: &Account) {
        let Some(renderer_key) = self.renderer_keys.get(account.archetype.as_str()) else { return };
        // An ephemeral account's tags depend on the clock: `check` always renders it.
        if entry.summary.ephemeral {
            return;
        }
        let Ok(history) = self.store.history(entry.name()) else { return };
        let mut entry = entry.clone();
        entry.annotate(&history);
        let account =
            if account.slot == entry.slot { Cow::Borrowed(account) } else { Cow::Owned(account.in_slot(entry.slot)) };
        if !self.validators.validate(project, &account).is_empty() {
            return;
        }
        let out_dir = build_dir(project, entry.name());
        if let Ok(tree) = self.renderer.render(&account, &out_dir) {
            let key = result_key(project, renderer_key, &entry, entry.slot, &out_dir);
            project.memo.checked(&entry.load_key, &key, &tree.disk_digest());
        }
    }
}

impl crate::config::project::Prepare for Prerender<'_> {
    fn begin<'p>(&'p self, project: &'p Project) -> Box<crate::config::project::Prepared<'p>> {
        // Made by the first thread that needs it while the other waits: nothing in it runs on
        // rayon's pool, so a waiting thread is never handed another account meanwhile.
        let ahead = std::sync::OnceLock::new();
        Box::new(move |entry, account| {
            if let Some(ahead) = ahead.get_or_init(|| Ahead::new(project, self.version)) {
                ahead.render(project, entry, account);
            }
        })
    }
}

pub fn check(workspace: &Workspace, options: &CheckOptions) -> CheckReport {
    let out_dir = |w: &Workspace, name: &str| build_dir(&w.project, name);
    let reuse = Reuse { out_dir: &out_dir, accept: &|_, _, _| true };
    let version = options
        .policies
        .then(|| BuildVersion::resolve(options.version.as_deref(), &workspace.project.root).environment_version());
    let with_policies = |account: &Account, _: &Path, tree: Tree| match &version {
        Some(version) => tree_policies(workspace, account, &tree, version).map_or(Ok(None), Err),
        None => Ok(None),
    };
    match validate_and_render(
        workspace,
        Selection::of(&options.accounts),
        if options.policies {
            VersionSpec::Release(options.version.as_deref())
        } else {
            VersionSpec::Unread(options.version.as_deref())
        },
        &default_out_dir,
        if options.policies { &with_policies } else { &discard },
        (!options.policies).then_some(&reuse),
    ) {
        Ok(checked) => CheckReport {
            accounts_checked: checked.checked,
            accounts_rendered: checked.rendered,
            diagnostics: checked.diagnostics,
            sources: workspace.project.sources.clone(),
        },
        Err(Report { diagnostics, sources }) => {
            CheckReport { accounts_checked: 0, accounts_rendered: 0, diagnostics, sources }
        }
    }
}

/// Runs an account's `on: tree` policies on its rendered tree, written into a temporary
/// folder; the error saying which failed, if any (waived findings do not fail).
fn tree_policies(workspace: &Workspace, account: &Account, tree: &Tree, version: &str) -> Option<Diagnostic> {
    use crate::pipeline::hooks::{HookEnv, Place};
    use crate::pipeline::policy::{self, PolicyInput};
    let project = &workspace.project;
    let archetype = project.archetypes.get(&account.archetype)?;
    let policies: Vec<&policy::Policy> =
        archetype.file.policies.iter().chain(&account.policies).filter(|p| p.on == PolicyInput::Tree).collect();
    if policies.is_empty() {
        return None;
    }
    let at = crate::diagnostics::Location::file_only(&account.display);
    let failed = |message: String| Some(Diagnostic::error("policy.failed", message).at(at.clone()));
    let folder = match tempfile::Builder::new().prefix("stamp-policies-").tempdir() {
        Ok(folder) => folder,
        Err(e) => return failed(format!("cannot make a folder for the policies of `{}`: {e}", account.name)),
    };
    let root = folder.path().join(&account.name);
    if let Err(e) = tree.write_atomically(&root, "tree of `stamp check --policies`\n") {
        return failed(format!("cannot write the tree of `{}` for its policies: {e}", account.name));
    }
    let log_path = crate::pipeline::Dirs::new(project, account).log;
    let log = match crate::terraform::process::Log::open(&log_path) {
        Ok(log) => log,
        Err(e) => return failed(format!("cannot open the log `{}`: {e}", project.display(&log_path))),
    };
    let root_text = root.display().to_string();
    let project_text = project.root.display().to_string();
    let env = HookEnv::new(
        &[
            ("STAMP_ACCOUNT", &account.name),
            ("STAMP_ENVIRONMENT", account.environment()),
            ("STAMP_ARCHETYPE", &account.archetype),
            ("STAMP_VERSION", version),
            ("STAMP_ROOT", &root_text),
            ("STAMP_PROJECT", &project_text),
        ],
        &BTreeMap::new(),
    );
    let place = Place { cwd: &root, log: &log, hold: None };
    let results: Vec<policy::PolicyResult> =
        policies.iter().map(|p| policy::run(p, place, &env, None, &account.policy_waivers)).collect();
    let problems: Vec<String> = results.iter().filter_map(policy::PolicyResult::problem).collect();
    if problems.is_empty() {
        return None;
    }
    let mut diagnostic = Diagnostic::error(
        "policy.failed",
        format!("account `{}` fails its policy checks: {}", account.name, problems.join("; ")),
    )
    .at(at);
    for result in &results {
        for finding in result.blocking() {
            diagnostic = diagnostic.hint(format!("`{}`: {}", result.name, finding.one_line()));
        }
        if let Some(error) = &result.error {
            diagnostic = diagnostic.hint(format!("`{}`: {}", result.name, crate::text::one_line(error)));
        }
    }
    Some(diagnostic.hint(format!(
        "fix the findings, or waive each in `{}` under `policy_waivers:` with a reason",
        account.display
    )))
}
