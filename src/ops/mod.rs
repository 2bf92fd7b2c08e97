//! Operations behind the commands. They take options structs, never see clap, and return
//! reports plus diagnostics for the CLI to print.

pub mod affected;
pub mod build;
pub mod check;
pub mod data;
pub mod deploy;
pub mod diff;
pub mod drift;
pub mod environments;
pub mod error;
pub mod init;
pub mod list;
pub mod migrate;
pub mod plan_report;
pub mod playground;
pub mod promote;
pub mod render;
pub mod revision;
pub mod schema;
pub mod store;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Account, Project};
use crate::diagnostics::{Diagnostic, Location, Report, Sources, did_you_mean};
use crate::store::Store;

/// A report that carries warnings (problems that did not stop the operation) and the
/// diagnostics behind its error, kept whole (a render that failed within it).
pub trait Warnings {
    fn warnings(&self) -> &[String];

    fn details(&self) -> &[Report] {
        &[]
    }
}

impl Warnings for data::CopyReport {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn details(&self) -> &[Report] {
        self.data.as_ref().map_or(&[], |d| &d.details)
    }
}

impl Warnings for playground::ReapReport {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

impl Warnings for migrate::MigrateReport {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn details(&self) -> &[Report] {
        &self.details
    }
}

impl Warnings for store::HistoryReport {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Warnings as one line each: `file:line: message`.
pub fn warning_lines(diagnostics: &[Diagnostic]) -> Vec<String> {
    diagnostic_lines(diagnostics, crate::diagnostics::Severity::Warning)
}

/// The diagnostics of one severity as one line each: `file:line: message`.
pub fn diagnostic_lines(diagnostics: &[Diagnostic], severity: crate::diagnostics::Severity) -> Vec<String> {
    diagnostics.iter().filter(|d| d.severity == severity).map(diagnostic_line).collect()
}

/// A diagnostic as one line: `file:line: message`, escaped (it reaches a terminal as it is).
pub fn diagnostic_line(d: &Diagnostic) -> String {
    let line = match &d.location {
        Some(l) if l.line > 0 => format!("{}:{}: {}", l.file, l.line, d.message),
        Some(l) => format!("{}: {}", l.file, d.message),
        None => d.message.clone(),
    };
    crate::text::one_line(&line).into_owned()
}

/// Each damaged record of an account's ledger, as a warning at its place: every command that
/// reads the ledger says so.
fn ledger_warnings(store: &dyn Store, account: &str, damage: &[crate::ledger::Damage]) -> Vec<Diagnostic> {
    damage
        .iter()
        .map(|damage| {
            let place = store.place(account, damage);
            let d = match &place.file {
                Some(_) => Diagnostic::warning("ledger.damaged", format!("a damaged ledger record: {}", damage.problem)),
                None => Diagnostic::warning(
                    "ledger.damaged",
                    format!("a damaged ledger record ({}): {}", place.text, damage.problem),
                ),
            };
            let d = match place.file.as_deref().and_then(|f| f.to_str()) {
                Some(file) => d.at(Location::file_only(file).on_line(damage.line)),
                None => d,
            };
            d.hint(format!(
                "the other records of `{account}` still count; commands that change it refuse until this record is repaired or removed",
            ))
            .for_account(account)
        })
        .collect()
}

/// Why Stamp must not act on an account now: a migration of it is under way, or its ledger
/// is damaged.
pub fn history_problem(store: &dyn Store, account: &Account) -> Option<String> {
    migration_under_way(store, &account.name).or_else(|| ledger_problem(store, account))
}

/// The migration of `account` that is under way, if any, as a refusal.
pub fn migration_under_way(store: &dyn Store, account: &str) -> Option<String> {
    match store.journal(account) {
        Ok(None) => None,
        // Ended, only not yet moved among the finished ones: the next migration moves it.
        Ok(Some(stored)) if stored.journal.is_over() => None,
        Ok(Some(stored)) => Some(stored.journal.under_way(&store.journal_place(account))),
        Err(e) => Some(format!("a migration of `{account}` may be under way, but its journal cannot be read: {e}")),
    }
}

/// How Stamp writes a path the user named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// A file (or one tree's folder) put in place by a rename: a link there is replaced, not
    /// followed, so only its folder is resolved.
    Entry,
    /// A folder written into: followed to where it leads.
    Into,
}

/// The folder of Stamp's own that `target` (see [`target_of`]) lies in, described, if any: the
/// project's `.stamp/` (state, ledger, locks, work folders, cache; not its `reports/`, unless
/// that is a link elsewhere), and the ledger, local state, snapshot and provider cache folders
/// `stamp.yaml` names. A slip of the keyboard must not replace a ledger or a plan file.
fn own_folder_holding(project: &crate::config::Project, target: &Path) -> Option<String> {
    use crate::fsio::resolved;
    let root = &project.root;
    let own = resolved(&root.join(".stamp"));
    let reports = own.join("reports");
    // `reports/` only while it is a folder of its own, not a link elsewhere.
    let in_reports = resolved(&reports) == reports && holds(&reports, target);
    if holds(&own, target) && !in_reports {
        return Some("Stamp's own folder `.stamp/`".to_string());
    }
    // A folder that holds the whole project (`ledger: .`, say) is no folder of Stamp's alone.
    let root = resolved(root);
    configured_folders(project).into_iter().find_map(|(_, what, dir)| {
        let dir = dir?;
        (holds(&dir, target) && !holds(&dir, &root)).then(|| format!("{what} `{}`", project.display(&dir)))
    })
}

/// The folders `stamp.yaml` gives Stamp's own files: its key, what it is, and the folder
/// (`None`: the provider cache is off).
fn configured_folders(project: &crate::config::Project) -> [(&'static str, &'static str, Option<PathBuf>); 4] {
    let (root, file) = (&project.root, &project.file);
    [
        ("ledger", "the ledger folder", Some(root.join(&file.ledger))),
        ("state.local.dir", "the local state folder", Some(root.join(&file.state.local.dir))),
        ("snapshots", "the snapshot folder", Some(root.join(&file.snapshots))),
        ("providers.cache", "the provider cache", file.providers.cache_dir(root)),
    ]
}

/// Makes `then` (the project at a git revision) keep its state, ledger, snapshots, providers
/// and accounts folder where `now` (this project) keeps them today: only its archetypes,
/// blueprints and the defaults its accounts were loaded with are the revision's.
pub fn keep_settings_of(now: &crate::config::Project, then: &mut crate::config::Project) {
    let revision = std::mem::replace(&mut then.file, now.file.clone());
    then.file.archetypes = revision.archetypes;
    then.file.blueprints = revision.blueprints;
    then.file.defaults = revision.defaults;
}

/// The folders `stamp.yaml` gives Stamp's ledger, local state, snapshots and provider cache
/// that lie in `.stamp/work/`, each as an error: every plan replaces an account's work folder
/// whole, so what they hold there would be lost.
fn folders_in_work_folders(project: &crate::config::Project) -> Vec<Diagnostic> {
    let work = crate::fsio::resolved(&project.root.join(".stamp/work"));
    configured_folders(project)
        .into_iter()
        .filter_map(|(key, _, dir)| {
            let dir = dir?;
            holds(&work, &crate::fsio::resolved(&dir)).then(|| {
                Diagnostic::error(
                    "project.folder",
                    format!(
                        "`{key}` is `{}`, in `.stamp/work/`: every plan replaces an account's work folder whole, and what is kept there would be lost",
                        project.display(&dir)
                    ),
                )
                .at(Location::file_only(crate::config::project::PROJECT_FILE))
                .hint("keep it elsewhere: by default Stamp keeps its ledger, state and snapshots in `.stamp/ledger`, `.stamp/state` and `.stamp/snapshots`")
            })
        })
        .collect()
}

/// Whether the folder `dir` holds `target` (a resolved path): by its path, or, where it
/// exists, by being the very folder (device and inode) one of `target`'s folders is, which a
/// bind mount or a case-insensitive file system reaches by another name.
fn holds(dir: &Path, target: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let identity = |path: &Path| fs_err::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        if let Some(folder) = identity(dir)
            && target.ancestors().any(|a| identity(a) == Some(folder))
        {
            return true;
        }
    }
    target.starts_with(crate::fsio::resolved(dir))
}

/// What the user named for a command to write: an option and its value as typed, or the
/// default used without one, with what it is.
#[derive(Debug, Clone, Copy)]
pub enum Named<'a> {
    Given(&'a str, &'a Path),
    /// What it is (`output folder`) and the default the user did not change.
    Default(&'a str, &'a str),
}

/// Refuses `path` (where `named` leads, written as `written`) inside a folder of Stamp's own
/// ([`own_folder_holding`]) or in place of the project's own files ([`input_at`]), saying so
/// in the user's words.
pub fn outside_own_folder(
    project: &crate::config::Project,
    path: &Path,
    named: Named<'_>,
    written: Written,
) -> Result<(), String> {
    let target = target_of(path, written);
    if let Some(own) = own_folder_holding(project, &target) {
        return Err(match named {
            Named::Given(option, value) => format!("`{option} {}` is inside {own}", value.display()),
            Named::Default(what, path) => format!("the {what} `{path}` leads inside {own}"),
        });
    }
    let Some(input) = input_at(project, &target, written) else { return Ok(()) };
    Err(match named {
        Named::Given(option, value) => format!("`{option} {}` is {input}", value.display()),
        Named::Default(what, path) => format!("the {what} `{path}` is {input}"),
    })
}

/// What writing `path` (as `written`) would change: the entry a rename replaces, resolved
/// through links in its folder only, or the folder written into, followed to where it leads.
fn target_of(path: &Path, written: Written) -> PathBuf {
    use crate::fsio::resolved;
    match (written, path.file_name(), path.parent()) {
        (Written::Entry, Some(name), Some(parent)) => {
            let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
            resolved(parent).join(name)
        }
        _ => resolved(path),
    }
}

/// The project's own file or folder that writing `target` would replace or write into,
/// described: `stamp.yaml`, an account file, or (inside) the folder of the accounts, the
/// archetypes or the blueprints, unless that folder holds the whole project.
fn input_at(project: &crate::config::Project, target: &Path, written: Written) -> Option<String> {
    let root = &project.root;
    if holds(&root.join(crate::config::project::PROJECT_FILE), target) {
        return Some(format!("the project file `{}`", crate::config::project::PROJECT_FILE));
    }
    // An account file exists: only a target that is an existing file can be one.
    if written == Written::Entry
        && fs_err::metadata(target).is_ok_and(|m| m.is_file())
        && let Some(entry) = project.catalog.iter().find(|e| holds(&e.path, target))
    {
        return Some(format!("the account file `{}`", entry.display));
    }
    let resolved_root = crate::fsio::resolved(root);
    let file = &project.file;
    [("accounts", &file.accounts), ("archetypes", &file.archetypes), ("blueprints", &file.blueprints)]
        .into_iter()
        .find_map(|(what, dir)| {
            let dir = root.join(dir);
            (holds(&dir, target) && !holds(&dir, &resolved_root))
                .then(|| format!("inside the {what} folder `{}`", project.display(&dir)))
        })
}

/// Checked once the account's lock is held (the project was loaded before): a migration
/// started, or one finished and moved the account to its other slot, since. As a refusal.
pub fn moved_on(store: &dyn Store, account: &Account) -> Option<String> {
    if let Some(problem) = migration_under_way(store, &account.name) {
        return Some(problem);
    }
    match store.history(&account.name) {
        Ok(history) if crate::ledger::live_slot(&history.records) != account.slot => Some(format!(
            "`{}` now runs in its {} slot, not the {} slot this run loaded (a migration finished meanwhile, perhaps on another machine): run the command again",
            account.name,
            crate::ledger::live_slot(&history.records),
            account.slot
        )),
        Ok(_) => None,
        Err(e) => Some(format!("the ledger of `{}` cannot be read: {e}", account.name)),
    }
}

/// Why Stamp must not act on an account whose ledger (which says which slot is live, when it
/// was created, what passed) has a damaged record.
pub fn ledger_problem(store: &dyn Store, account: &Account) -> Option<String> {
    let damage = account.ledger_damage.first()?;
    let place = store.place(&account.name, damage);
    Some(format!(
        "the ledger of `{}` is damaged ({}: {}): Stamp does not change `{}` until that record is repaired or removed, because its history says which slot is live",
        account.name, place.text, damage.problem, account.name
    ))
}

/// A loaded project, the store of its state, and the diagnostics found while loading it.
pub struct Workspace {
    pub project: Project,
    pub store: Arc<dyn Store>,
    pub diagnostics: Vec<Diagnostic>,
}

fn store_error(error: &dyn std::error::Error) -> Report {
    let d = Diagnostic::error("store", crate::diagnostics::error_chain(error));
    // Where the store was named: the environment wins over `stamp.yaml`.
    let d = if std::env::var(crate::store::PG_ENV).is_ok_and(|v| !v.trim().is_empty()) {
        d.hint(format!("the store is the PostgreSQL database named by `{}` in the environment", crate::store::PG_ENV))
    } else {
        d.at(Location::file_only(crate::config::project::PROJECT_FILE)).hint(
            "Stamp keeps its ledger, migration journals and locks where `store:` in stamp.yaml (or STAMP_STORE_PG) says",
        )
    };
    Report::new(vec![d], Sources::default())
}

impl Workspace {
    /// Loads the project at `root` and all its accounts, without the cache. A broken
    /// `stamp.yaml` is an error with its diagnostics.
    pub fn load(root: &Path) -> Result<Self, Report> {
        Self::load_with(root, crate::config::project::LoadOptions::default())
    }

    /// Loads the project at `root` as `options` say (which accounts whole, the cache).
    pub fn load_with(root: &Path, options: crate::config::project::LoadOptions<'_>) -> Result<Self, Report> {
        let root = fs_err::canonicalize(root).map_err(|e| {
            let d = Diagnostic::error(
                "project.missing",
                format!("cannot open project `{}`: {}", root.display(), crate::diagnostics::io_reason(&e)),
            );
            Report::new(vec![d], Sources::default())
        })?;
        let (project, diagnostics) = Project::load_with(&root, options)?;
        let misplaced = folders_in_work_folders(&project);
        if !misplaced.is_empty() {
            return Err(Report::new(misplaced, project.sources.clone()));
        }
        let store = crate::store::open(&project.file.store, &project.root, &project.file.ledger)
            .map_err(|e| store_error(&e))?;
        Self::with_store(project, diagnostics, store)
    }

    /// A loaded project with its state read from `store`: each account's live slot, creation
    /// time and damaged records.
    pub fn with_store(
        mut project: Project,
        mut diagnostics: Vec<Diagnostic>,
        store: Arc<dyn Store>,
    ) -> Result<Self, Report> {
        let names: Vec<&str> = project.catalog.iter().map(crate::config::catalog::Entry::name).collect();
        let histories = store.histories(Some(&names)).map_err(|e| store_error(&e))?;
        let empty = crate::ledger::History::default();
        for account in &mut project.accounts {
            account.annotate(histories.get(&account.name).unwrap_or(&empty));
        }
        // An entry is scanned as an account never deployed: only those with a history change
        // (found by name in the catalog, which is sorted by name).
        for (name, history) in &histories {
            let from = project.catalog.partition_point(|e| e.name() < name.as_str());
            for entry in project.catalog[from..].iter_mut().take_while(|e| e.name() == name) {
                entry.annotate(history);
                diagnostics.extend(ledger_warnings(store.as_ref(), &entry.summary.name, &entry.ledger_damage));
            }
        }
        Ok(Self { project, store, diagnostics })
    }

    /// Loads the ACCOUNT arguments that are YAML files outside the accounts folder, so they
    /// are checked against the project's accounts (the CLI does this once, right after
    /// loading). A file that does not load gets its diagnostic.
    pub fn add_files(&mut self, wanted: &[String]) {
        for name in wanted {
            let path = PathBuf::from(name);
            if self.project.entry(name).is_some() || !path.is_file() {
                continue;
            }
            let display = self.project.display(&fs_err::canonicalize(&path).unwrap_or(path.clone()));
            // A file that failed to load in the accounts folder already has its diagnostic.
            if self.diagnostics.iter().any(|d| d.location.as_ref().is_some_and(|l| l.file == display)) {
                continue;
            }
            match self.project.add_account(&path) {
                Ok(index) => {
                    let account = &mut self.project.accounts[index];
                    match self.store.history(&account.name) {
                        Ok(history) => {
                            account.annotate(&history);
                            if let Some(entry) = self.project.catalog.iter_mut().find(|e| e.display == account.display)
                            {
                                entry.annotate(&history);
                            }
                        }
                        Err(e) => self.diagnostics.extend(store_error(&e).diagnostics),
                    }
                    let account = &self.project.accounts[index];
                    let warnings = ledger_warnings(self.store.as_ref(), &account.name, &account.ledger_damage);
                    self.diagnostics.extend(warnings);
                }
                Err(d) => self.diagnostics.push(*d),
            }
        }
    }

    /// Loads the account files under `dir` that appeared since the project was loaded.
    pub fn add_new_files(&mut self, dir: &Path) {
        let known: BTreeSet<PathBuf> =
            self.project.catalog.iter().filter_map(|e| fs_err::canonicalize(&e.path).ok()).collect();
        let found = match crate::config::project::account_files_in(dir) {
            Ok(found) => found,
            Err(e) => {
                let reason = crate::diagnostics::error_chain(&e);
                self.diagnostics
                    .push(Diagnostic::error("project.accounts", format!("cannot read account files: {reason}")));
                return;
            }
        };
        let files: Vec<String> = found
            .into_iter()
            .filter(|f| fs_err::canonicalize(&f.path).is_ok_and(|c| !known.contains(&c)))
            .map(|f| f.path.display().to_string())
            .collect();
        self.add_files(&files);
    }

    /// Resolves ACCOUNT arguments (names, or paths of YAML files loaded by [`Self::add_files`])
    /// to the display paths of the selected accounts; an unknown one gets a diagnostic.
    pub fn resolve(&self, wanted: &[String]) -> (BTreeSet<String>, Vec<Diagnostic>) {
        let mut selected = BTreeSet::new();
        let mut problems = Vec::new();
        for name in wanted {
            let path = PathBuf::from(name);
            // A link names no account, not even the one it leads to: account files are read
            // only as plain files.
            let link = path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink());
            if let Some(entry) = self.project.entry(name).filter(|e| !link || e.name() == name) {
                selected.insert(entry.display.clone());
                continue;
            }
            if path.is_file() && !link {
                // Selected when it was loaded, or when its errors say why not: a file neither
                // (a link in the accounts folder, which is never read) is an unknown account,
                // never a selection of nothing that passes.
                let display = self.project.display(&fs_err::canonicalize(&path).unwrap_or_else(|_| path.clone()));
                let loaded = self.project.catalog.iter().any(|e| e.display == display);
                let failed = self.diagnostics.iter().any(|d| d.location.as_ref().is_some_and(|l| l.file == display));
                if loaded || failed {
                    selected.insert(display);
                    continue;
                }
            }
            // The account's file is there but could not be loaded: its own errors say why.
            if let Some(file) = self.unloaded_file_of(name) {
                selected.insert(file);
                continue;
            }
            let mut unknown = self.unknown_account(name);
            if link {
                unknown =
                    unknown.hint(format!("`{name}` is a symbolic link: Stamp reads account files only as plain files"));
            }
            problems.push(unknown);
        }
        (selected, problems)
    }

    /// The project at a git revision, read without a checkout (see [`revision::Snapshot`]), with
    /// this project's state and cache: `scope` says which accounts are loaded whole.
    pub fn at_snapshot(
        &self,
        snapshot: &revision::Snapshot,
        scope: crate::config::project::Scope<'_>,
    ) -> Result<Self, Report> {
        let options = crate::config::project::LoadOptions {
            scope,
            memo: Arc::clone(&self.project.memo),
            files: Some(snapshot.accounts.clone()),
            prepare: None,
        };
        let (mut project, diagnostics) = Project::load_with(&snapshot.root, options)?;
        project.as_careful_as(&self.project);
        Self::with_store(project, diagnostics, Arc::clone(&self.store))
    }

    /// The project's account `name` (or file), or the error saying it is unknown.
    pub fn account(&self, name: &str) -> Result<&Account, Report> {
        self.project.account(name).ok_or_else(|| Report::new(vec![self.unknown_account(name)], Sources::default()))
    }

    /// The account of a catalog entry whole: loaded with the project, or read now from its
    /// file (a command that names accounts loads only those, see `Command::loads_only`); the
    /// error saying it does not load.
    pub fn whole(&self, entry: &crate::config::catalog::Entry) -> Result<std::borrow::Cow<'_, Account>, Report> {
        if let Some(account) = self.project.accounts.iter().find(|a| a.display == entry.display) {
            return Ok(std::borrow::Cow::Borrowed(account));
        }
        self.project
            .load_entry(entry)
            .map(std::borrow::Cow::Owned)
            .map_err(|d| Report::new(vec![*d], self.project.sources.clone()))
    }

    /// The accounts folder's file named after account `name` (`<name>.yaml`, `.yml`), when
    /// loading it gave errors.
    fn unloaded_file_of(&self, name: &str) -> Option<String> {
        let dir = self.project.root.join(&self.project.file.accounts);
        ["yaml", "yml"].iter().map(|ext| self.project.display(&dir.join(format!("{name}.{ext}")))).find(|file| {
            self.diagnostics.iter().any(|d| {
                d.severity == crate::diagnostics::Severity::Error
                    && d.location.as_ref().is_some_and(|l| &l.file == file)
            })
        })
    }

    fn unknown_account(&self, name: &str) -> Diagnostic {
        let mut d = Diagnostic::error("account.unknown", format!("unknown account `{name}`"))
            .at(Location::file_only(crate::config::project::PROJECT_FILE));
        if let Some(near) = did_you_mean(name, self.project.catalog.iter().map(crate::config::catalog::Entry::name)) {
            d = d.hint(format!("did you mean `{near}`?"));
        }
        d.hint("an ACCOUNT is an account name (see `stamp list`) or the path of its YAML file")
    }

    /// The diagnostics found while loading that concern the selected account files (or no
    /// account).
    pub fn diagnostics_of(&self, selected: &BTreeSet<String>) -> Vec<Diagnostic> {
        let accounts_dir = self.project.display(&self.project.root.join(&self.project.file.accounts));
        let names: BTreeSet<&str> = self
            .project
            .catalog
            .iter()
            .filter(|e| selected.contains(&e.display))
            .map(crate::config::catalog::Entry::name)
            .collect();
        let mut kept = self.diagnostics.clone();
        kept.retain(|d| match (&d.location, &d.account) {
            (Some(l), _) if l.file.starts_with(&accounts_dir) => selected.contains(&l.file),
            (Some(l), _) if selected.contains(&l.file) => true,
            (_, Some(account)) => names.contains(account.as_str()),
            _ => true,
        });
        kept
    }

    /// The warnings found while loading (damaged ledger records, blueprint files that are not
    /// `fmt`-clean), one line each, for reports that carry warnings.
    pub fn warning_lines(&self) -> Vec<String> {
        warning_lines(&self.diagnostics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Operation, Outcome};

    #[test]
    fn a_slot_that_moved_on_since_loading_is_refused_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::FolderStore::new(dir.path().join("ledger"), dir.path());
        let project = Project::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR"))).unwrap().0;
        let mut account = project.account("local-prod").unwrap().clone();
        account.name = "moved".into();
        account.slot = crate::config::Slot::Blue;
        assert_eq!(moved_on(&store, &account), None);
        // Another machine finished a migration meanwhile: the ledger says green is live.
        let switch = crate::ledger::Record {
            operation: Operation::Switch,
            slot: Some(crate::config::Slot::Green),
            ..crate::ledger::example("moved", Outcome::Succeeded)
        };
        store.append(&switch).unwrap();
        let refused = moved_on(&store, &account).expect("refused");
        assert!(refused.contains("now runs in its green slot, not the blue slot this run loaded"), "{refused}");
        account.slot = crate::config::Slot::Green;
        assert_eq!(moved_on(&store, &account), None);
    }
}
