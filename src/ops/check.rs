//! `stamp check`: validate and render in memory every (or the named) account.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::Path;

use rayon::prelude::*;

use super::Workspace;
use crate::config::Account;
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
}

/// What `check` found.
pub struct CheckReport {
    pub accounts_checked: usize,
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
    /// Each selected account (in the slot it was rendered for), with its tree when it rendered
    /// cleanly.
    pub trees: Vec<(Cow<'w, Account>, Option<Tree>)>,
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
}

/// What to do with each rendered tree, as soon as it is rendered: keep it (`Ok(Some)`), or use
/// and drop it (`Ok(None)`), so thousands of accounts never sit in memory at once.
pub type Consumer<'a> = dyn Fn(&Account, &Path, Tree) -> Result<Option<Tree>, Diagnostic> + Sync + 'a;

/// Keeps every tree.
pub fn keep(_: &Account, _: &Path, tree: Tree) -> Result<Option<Tree>, Diagnostic> {
    Ok(Some(tree))
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

/// Validates and renders the selected accounts (in parallel). `out_dir_of` gives the folder
/// an account would be written to; `consume` gets each rendered tree.
pub fn validate_and_render<'w>(
    workspace: &'w Workspace,
    selection: Selection<'_>,
    version: VersionSpec<'_>,
    out_dir_of: &(dyn Fn(&Workspace, &Account) -> std::path::PathBuf + Sync),
    consume: &Consumer<'_>,
) -> Result<Checked<'w>, Report> {
    let (selected, mut found) = if selection.accounts.is_empty() {
        (None, Vec::new())
    } else {
        let (selected, problems) = workspace.resolve(selection.accounts);
        (Some(selected), problems)
    };
    let version = match version {
        VersionSpec::Release(release) => BuildVersion::resolve(release, &workspace.project.root),
        VersionSpec::Exact(version) => version,
    };
    if let Err(problem) = crate::version::validate(&version.version) {
        return Err(Report::new(
            vec![Diagnostic::error("version.invalid", problem)],
            workspace.project.sources.clone(),
        ));
    }
    let project = &workspace.project;
    let targets: Vec<Cow<'w, Account>> = project
        .accounts
        .iter()
        .filter(|a| selected.as_ref().is_none_or(|s| s.contains(&a.display)))
        .map(|a| match selection.slot {
            Some((name, slot)) if name == a.name && slot != a.slot => Cow::Owned(a.in_slot(slot)),
            _ => Cow::Borrowed(a),
        })
        .collect();
    // Only the archetypes and blueprints the selected accounts use are compiled.
    let used: BTreeSet<&str> = targets.iter().map(|a| a.archetype.as_str()).collect();
    let only = selected.is_some().then_some(&used);
    let (validators, compiled) = Validators::compile(project, only);
    found.extend(compiled);
    let (renderer, blueprint_diagnostics) = Renderer::new(project, version.clone(), only);
    found.extend(blueprint_diagnostics);
    // Conflicts between accounts are known before rendering: both accounts of a conflict are
    // rendered (to report their own problems too) but never handed on, so nothing is written
    // for either until the conflict is resolved.
    let conflicts = cross_account::check(&project.accounts, selected.as_ref());
    let blocked: BTreeSet<&str> = cross_account::conflicting_pairs(&project.accounts)
        .into_iter()
        .flat_map(|(a, b)| [project.accounts[a].display.as_str(), project.accounts[b].display.as_str()])
        .collect();
    let results: Vec<(Option<Tree>, Vec<Diagnostic>)> = targets
        .par_iter()
        .map(|account| {
            let problems = validators.validate(project, account);
            if !problems.is_empty() {
                return (None, problems);
            }
            let out_dir = out_dir_of(workspace, account);
            if blocked.contains(account.display.as_str()) {
                return match renderer.render(account, &out_dir) {
                    Ok(_) => (None, Vec::new()),
                    Err(problems) => (None, problems),
                };
            }
            match renderer.render(account, &out_dir).map(|tree| consume(account, &out_dir, tree)) {
                Ok(Ok(tree)) => (tree, Vec::new()),
                Ok(Err(problem)) => (None, vec![problem]),
                Err(problems) => (None, problems),
            }
        })
        .collect();
    found.extend(conflicts);
    let mut trees = Vec::with_capacity(results.len());
    for (account, (tree, problems)) in targets.into_iter().zip(results) {
        found.extend(problems);
        trees.push((account, tree));
    }
    let mut diagnostics = match &selected {
        Some(selected) => workspace.diagnostics_of(selected),
        None => workspace.diagnostics.clone(),
    };
    diagnostics.extend(found);
    diagnostics::sort(&mut diagnostics);
    Ok(Checked { workspace, version, trees, diagnostics })
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
    let checked = validate_and_render(workspace, selection, version, &work_dir, &keep)?;
    match kept.into_inner().expect("kept lock") {
        Some(tree) => Ok(tree),
        None => Err(checked.report()),
    }
}

/// The default folder an account renders to: `build/<account>` in the project.
pub fn default_out_dir(workspace: &Workspace, account: &Account) -> std::path::PathBuf {
    workspace.project.root.join("build").join(&account.name)
}

pub fn check(workspace: &Workspace, options: &CheckOptions) -> CheckReport {
    let drop_tree = |_: &Account, _: &Path, _: Tree| Ok(None);
    match validate_and_render(
        workspace,
        Selection::of(&options.accounts),
        VersionSpec::Release(options.version.as_deref()),
        &default_out_dir,
        &drop_tree,
    ) {
        Ok(checked) => CheckReport {
            accounts_checked: checked.trees.len(),
            diagnostics: checked.diagnostics,
            sources: workspace.project.sources.clone(),
        },
        Err(Report { diagnostics, sources }) => CheckReport { accounts_checked: 0, diagnostics, sources },
    }
}
