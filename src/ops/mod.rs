//! Operations behind the commands. They take options structs, never see clap, and return
//! reports plus diagnostics for the CLI to print.

pub mod affected;
pub mod build;
pub mod check;
pub mod data;
pub mod deploy;
pub mod diff;
pub mod drift;
pub mod list;
pub mod migrate;
pub mod playground;
pub mod promote;
pub mod render;
pub mod revision;
pub mod schema;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config::{Account, Project};
use crate::diagnostics::{Diagnostic, Location, Report, Sources, did_you_mean};

/// A report that carries warnings: problems that did not stop the operation.
pub trait Warnings {
    fn warnings(&self) -> &[String];
}

impl Warnings for data::CopyReport {
    fn warnings(&self) -> &[String] {
        &self.warnings
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
}

/// Warnings as one line each: `file:line: message`.
pub fn warning_lines(diagnostics: &[Diagnostic]) -> Vec<String> {
    diagnostics
        .iter()
        .filter(|d| d.severity == crate::diagnostics::Severity::Warning)
        .map(|d| match &d.location {
            Some(l) if l.line > 0 => format!("{}:{}: {}", l.file, l.line, d.message),
            Some(l) => format!("{}: {}", l.file, d.message),
            None => d.message.clone(),
        })
        .collect()
}

/// Each damaged line of an account's ledger, as a warning at its place: every command that
/// reads the ledger says so.
fn ledger_warnings(project: &Project, account: &Account) -> Vec<Diagnostic> {
    let file = project.display(&crate::ledger::Ledger::of(project).path(&account.name));
    account
        .ledger_damage
        .iter()
        .map(|damage| {
            Diagnostic::warning("ledger.damaged", format!("a damaged ledger record: {}", damage.problem))
                .at(Location::file_only(&file).on_line(damage.line))
                .hint(format!(
                    "the other records of `{}` still count; commands that change it refuse until this line is repaired or removed",
                    account.name
                ))
                .for_account(&account.name)
        })
        .collect()
}

/// Why Stamp must not act on an account now: a migration of it is under way, or its ledger
/// is damaged.
pub fn history_problem(project: &Project, account: &Account) -> Option<String> {
    migrate::in_progress(project, &account.name).or_else(|| ledger_problem(project, account))
}

/// Why Stamp must not act on an account whose ledger (which says which slot is live, when it
/// was created, what passed) has a damaged record.
pub fn ledger_problem(project: &Project, account: &Account) -> Option<String> {
    let damage = account.ledger_damage.first()?;
    let file = project.display(&crate::ledger::Ledger::of(project).path(&account.name));
    let at = if damage.line > 0 { format!("`{file}` line {}", damage.line) } else { format!("`{file}`") };
    Some(format!(
        "the ledger of `{}` is damaged ({at}: {}): Stamp does not change `{}` until that line is repaired or removed, because its history says which slot is live",
        account.name, damage.problem, account.name
    ))
}

/// A loaded project plus the diagnostics found while loading it.
pub struct Workspace {
    pub project: Project,
    pub diagnostics: Vec<Diagnostic>,
}

impl Workspace {
    /// Loads the project at `root`. A broken `stamp.yaml` is an error with its diagnostics.
    pub fn load(root: &Path) -> Result<Self, Report> {
        let root = fs_err::canonicalize(root).map_err(|e| {
            let d = Diagnostic::error(
                "project.missing",
                format!("cannot open project `{}`: {}", root.display(), crate::diagnostics::io_reason(&e)),
            );
            Report::new(vec![d], Sources::default())
        })?;
        let (mut project, mut diagnostics) = Project::load(&root)?;
        crate::ledger::annotate(&mut project);
        for account in &project.accounts {
            diagnostics.extend(ledger_warnings(&project, account));
        }
        Ok(Self { project, diagnostics })
    }

    /// Resolves ACCOUNT arguments (names, or paths of YAML files; a file outside the accounts
    /// folder is loaded too, so it is checked against the project's accounts). Returns the
    /// display paths of the selected accounts.
    pub fn select(&mut self, wanted: &[String]) -> BTreeSet<String> {
        let mut selected = BTreeSet::new();
        for name in wanted {
            if let Some(account) = self.project.account(name) {
                selected.insert(account.display.clone());
                continue;
            }
            let path = PathBuf::from(name);
            if path.is_file() {
                let display = self.project.display(&fs_err::canonicalize(&path).unwrap_or(path.clone()));
                // A file that failed to load in the accounts folder already has its diagnostic.
                self.diagnostics.retain(|d| d.location.as_ref().is_none_or(|l| l.file != display));
                match self.project.add_account(&path) {
                    Ok(index) => {
                        let ledger = crate::ledger::Ledger::of(&self.project);
                        crate::ledger::annotate_account(&ledger, true, &mut self.project.accounts[index]);
                        let warnings = ledger_warnings(&self.project, &self.project.accounts[index]);
                        self.diagnostics.extend(warnings);
                        selected.insert(self.project.accounts[index].display.clone());
                    }
                    Err(d) => {
                        selected.insert(display);
                        self.diagnostics.push(*d);
                    }
                }
                continue;
            }
            let d = self.unknown_account(name);
            self.diagnostics.push(d);
        }
        selected
    }

    /// The project's account `name` (or file), or the error saying it is unknown.
    pub fn account(&self, name: &str) -> Result<&Account, Report> {
        self.project.account(name).ok_or_else(|| Report::new(vec![self.unknown_account(name)], Sources::default()))
    }

    fn unknown_account(&self, name: &str) -> Diagnostic {
        let mut d = Diagnostic::error("account.unknown", format!("unknown account `{name}`"))
            .at(Location::file_only(crate::config::project::PROJECT_FILE));
        if let Some(near) = did_you_mean(name, self.project.accounts.iter().map(|a| a.name.as_str())) {
            d = d.hint(format!("did you mean `{near}`?"));
        }
        d.hint("an ACCOUNT is an account name (see `stamp list`) or the path of its YAML file")
    }

    /// Moves `account` to `slot` (e.g. to render the environment a migration builds alongside).
    pub fn set_slot(&mut self, account: &str, slot: crate::config::Slot) {
        for a in &mut self.project.accounts {
            if a.name == account {
                a.slot = slot;
            }
        }
    }

    /// Keeps only the diagnostics that concern the selected account files (or no account).
    pub fn keep_selected(&mut self, selected: &BTreeSet<String>) {
        let accounts_dir = self.project.display(&self.project.root.join(&self.project.file.accounts));
        let names: BTreeSet<&str> =
            self.project.accounts.iter().filter(|a| selected.contains(&a.display)).map(|a| a.name.as_str()).collect();
        self.diagnostics.retain(|d| match (&d.location, &d.account) {
            (Some(l), _) if l.file.starts_with(&accounts_dir) => selected.contains(&l.file),
            (_, Some(account)) => names.contains(account.as_str()),
            _ => true,
        });
    }

    /// The warnings found while loading (damaged ledger records, blueprint files that are not
    /// `fmt`-clean), one line each, for reports that carry warnings.
    pub fn warning_lines(&self) -> Vec<String> {
        warning_lines(&self.diagnostics)
    }
}
