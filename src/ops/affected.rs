//! `stamp affected --since REV`: the accounts whose rendered output differs between a git
//! revision and the working tree, so CI plans only those.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

use super::Workspace;
use super::check::{Reuse, Selection, VersionSpec, validate_and_render};
use super::revision::Snapshot;
use crate::config::Account;
use crate::config::catalog::Entry;
use crate::config::project::Scope;
use crate::diagnostics::{Diagnostic, Report, Severity, Sources};
use crate::render::Tree;
use crate::version::BuildVersion;

/// Why an account is affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// Its rendered Terraform differs.
    Changed,
    /// It is new since the revision.
    Added,
    /// It no longer exists.
    Removed,
    /// It does not check or render now.
    Invalid,
}

#[derive(Debug, Clone, Serialize)]
pub struct AffectedAccount {
    pub account: String,
    pub archetype: String,
    pub reason: Reason,
}

#[derive(Debug, Clone, Serialize)]
pub struct Affected {
    pub since: String,
    pub commit: String,
    pub accounts: Vec<AffectedAccount>,
}

/// Both sides are rendered with this version, so only real changes make outputs differ.
fn neutral_version() -> BuildVersion {
    BuildVersion::placeholder()
}

/// What each account's rendering depends on (by name): the cache key of its load and of
/// the renderer of its archetype (`None`: its blueprint does not compile). Equal inputs need
/// no rendering to compare.
fn inputs(workspace: &Workspace) -> BTreeMap<String, (String, Option<String>)> {
    let project = &workspace.project;
    let (renderer, _) = crate::render::Renderer::new(project, neutral_version(), None);
    let keys: BTreeMap<&str, Option<String>> =
        project.archetypes.keys().map(|name| (name.as_str(), renderer.key(name))).collect();
    project
        .catalog
        .iter()
        .map(|e| {
            let renderer_key = keys.get(e.summary.archetype.as_str()).cloned().flatten();
            (e.name().to_string(), (format!("{}/{}", e.load_key, e.slot), renderer_key))
        })
        .collect()
}

/// Renders `names` of the workspace (or takes their digests from the cache) and returns each
/// account's tree digest (`None`: it does not check or render).
fn render_digests(workspace: &Workspace, names: &[String]) -> Result<BTreeMap<String, Option<String>>, Report> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let digests = Mutex::new(BTreeMap::new());
    let found = |name: &str, digest: &str| {
        digests.lock().expect("digests lock").insert(name.to_string(), Some(digest.to_string()));
    };
    let digest = |account: &Account, _: &Path, tree: Tree| {
        found(&account.name, &tree.disk_digest());
        Ok(None)
    };
    let accept = |entry: &Entry, _: &Path, digest: &str| {
        found(entry.name(), digest);
        true
    };
    let out_dir_named = |w: &Workspace, name: &str| w.project.root.join("build").join(name);
    let out_dir = |w: &Workspace, a: &Account| out_dir_named(w, &a.name);
    let reuse = Reuse { out_dir: &out_dir_named, accept: &accept };
    validate_and_render(
        workspace,
        Selection::of(names),
        VersionSpec::Exact(neutral_version()),
        &out_dir,
        &digest,
        Some(&reuse),
    )?;
    let mut digests = digests.into_inner().expect("digests lock");
    for entry in &workspace.project.catalog {
        if names.iter().any(|n| n == entry.name()) {
            digests.entry(entry.name().to_string()).or_insert(None);
        }
    }
    Ok(digests)
}

pub fn affected(now: &Workspace, since: &str) -> Result<Affected, Report> {
    let fail = |message: String| Report::new(vec![Diagnostic::error("affected", message)], Sources::default());
    let snapshot = Snapshot::take(&now.project.root, since).map_err(fail)?;
    let then = now.at_snapshot(&snapshot, Scope::Only(&[]))?;
    let (now_inputs, then_inputs) = (inputs(now), inputs(&then));
    let archetype_of: BTreeMap<&str, &str> = now
        .project
        .catalog
        .iter()
        .chain(&then.project.catalog)
        .map(|e| (e.name(), e.summary.archetype.as_str()))
        .collect();
    let names: BTreeSet<&String> = now_inputs.keys().chain(then_inputs.keys()).collect();
    let mut accounts = Vec::new();
    let mut candidates = Vec::new();
    for name in names {
        let reason = match (now_inputs.get(name), then_inputs.get(name)) {
            (Some(_), None) => Some(Reason::Added),
            (None, Some(_)) => Some(Reason::Removed),
            (Some(a), Some(b)) if a != b || a.1.is_none() => {
                candidates.push(name.clone());
                None
            }
            _ => None,
        };
        if let Some(reason) = reason {
            let archetype = archetype_of.get(name.as_str()).copied().unwrap_or_default().to_string();
            accounts.push(AffectedAccount { account: name.clone(), archetype, reason });
        }
    }
    // Inputs changed: render both sides (or take their digests from the cache) to see whether
    // the output did.
    let now_digests = render_digests(now, &candidates).or_else(|r| {
        if r.diagnostics.iter().any(|d| d.severity == Severity::Error) { Ok(BTreeMap::new()) } else { Err(r) }
    })?;
    let then_digests = render_digests(&then, &candidates).unwrap_or_default();
    for name in candidates {
        let reason = match (now_digests.get(&name), then_digests.get(&name)) {
            (Some(Some(a)), Some(Some(b))) if a == b => continue,
            (Some(Some(_)), _) => Reason::Changed,
            _ => Reason::Invalid,
        };
        let archetype = archetype_of.get(name.as_str()).copied().unwrap_or_default().to_string();
        accounts.push(AffectedAccount { account: name, archetype, reason });
    }
    accounts.sort_by(|a, b| a.account.cmp(&b.account));
    Ok(Affected { since: since.to_string(), commit: snapshot.commit.clone(), accounts })
}

impl Affected {
    /// Accounts to plan: every affected account that still exists.
    pub fn to_plan(&self) -> Vec<String> {
        self.accounts.iter().filter(|a| a.reason != Reason::Removed).map(|a| a.account.clone()).collect()
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for a in &self.accounts {
            let reason = match a.reason {
                Reason::Changed => "",
                Reason::Added => " (added)",
                Reason::Removed => " (removed)",
                Reason::Invalid => " (does not check: run `stamp check`)",
            };
            out.push_str(&format!("{}{reason}\n", a.account));
        }
        out
    }

    pub fn json(&self) -> String {
        format!("{}\n", serde_json::to_string_pretty(self).expect("json"))
    }

    /// `{"include":[{"account":"a"},...]}` for a GitHub Actions matrix (removed accounts left out).
    pub fn github_matrix(&self) -> String {
        let include: Vec<serde_json::Value> =
            self.to_plan().into_iter().map(|account| serde_json::json!({ "account": account })).collect();
        format!("{}\n", serde_json::json!({ "include": include }))
    }
}
