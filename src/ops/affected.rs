//! `stamp affected --since REV`: the accounts whose rendered output differs between a git
//! revision and the working tree, so CI plans only those.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Workspace;
use super::check::{Selection, VersionSpec, validate_and_render};
use super::revision::Revision;
use crate::config::{Account, Project};
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
    BuildVersion { version: "0.0.0".into(), commit: "compare".into(), dirty: false }
}

/// What an account's rendering depends on, as one digest: the project file, its archetype,
/// its blueprint and its own file. Equal fingerprints need no rendering to compare.
fn fingerprints(project: &Project) -> BTreeMap<String, String> {
    let digest_dir = |dir: &Path| {
        let mut hasher = Sha256::new();
        for entry in walkdir::WalkDir::new(dir).sort_by_file_name().into_iter().filter_map(Result::ok) {
            if entry.file_type().is_file() {
                hasher.update(entry.path().strip_prefix(dir).unwrap_or(entry.path()).to_string_lossy().as_bytes());
                hasher.update(fs_err::read(entry.path()).unwrap_or_default());
            }
        }
        format!("{:x}", hasher.finalize())
    };
    let project_file = fs_err::read(project.root.join(crate::config::project::PROJECT_FILE)).unwrap_or_default();
    let mut per_archetype = BTreeMap::new();
    for (name, archetype) in &project.archetypes {
        let blueprint = project.blueprint_dir(&archetype.file.blueprint);
        per_archetype.insert(name.clone(), format!("{}{}", digest_dir(&archetype.dir), digest_dir(&blueprint)));
    }
    project
        .accounts
        .iter()
        .map(|account| {
            let mut hasher = Sha256::new();
            hasher.update(&project_file);
            hasher.update(per_archetype.get(&account.archetype).map_or("", String::as_str));
            hasher.update(fs_err::read(&account.path).unwrap_or_default());
            (account.name.clone(), format!("{:x}", hasher.finalize()))
        })
        .collect()
}

/// Renders `names` of the project at `root` and returns each account's tree digest (`None`:
/// it does not check or render).
fn render_digests(workspace: &Workspace, names: &[String]) -> Result<BTreeMap<String, Option<String>>, Report> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let digests = Mutex::new(BTreeMap::new());
    let digest = |account: &Account, _: &Path, tree: Tree| {
        let value = super::deploy::tree_digest(&tree);
        digests.lock().expect("digests lock").insert(account.name.clone(), Some(value));
        Ok(None)
    };
    let out_dir = |w: &Workspace, a: &Account| w.project.root.join("build").join(&a.name);
    validate_and_render(workspace, Selection::of(names), VersionSpec::Exact(neutral_version()), &out_dir, &digest)?;
    let mut digests = digests.into_inner().expect("digests lock");
    for account in &workspace.project.accounts {
        if names.contains(&account.name) {
            digests.entry(account.name.clone()).or_insert(None);
        }
    }
    Ok(digests)
}

pub fn affected(now: &Workspace, since: &str) -> Result<Affected, Report> {
    let fail = |message: String| Report::new(vec![Diagnostic::error("affected", message)], Sources::default());
    let revision = Revision::checkout(&now.project.root, since).map_err(fail)?;
    let then = now.at_revision(&revision.root)?;
    let (now_prints, then_prints) = (fingerprints(&now.project), fingerprints(&then.project));
    let archetype_of: BTreeMap<&str, &str> = now
        .project
        .accounts
        .iter()
        .chain(&then.project.accounts)
        .map(|a| (a.name.as_str(), a.archetype.as_str()))
        .collect();
    let names: BTreeSet<&String> = now_prints.keys().chain(then_prints.keys()).collect();
    let mut accounts = Vec::new();
    let mut candidates = Vec::new();
    for name in names {
        let reason = match (now_prints.get(name), then_prints.get(name)) {
            (Some(_), None) => Some(Reason::Added),
            (None, Some(_)) => Some(Reason::Removed),
            (Some(a), Some(b)) if a != b => {
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
    // Inputs changed: render both sides to see whether the output did.
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
    Ok(Affected { since: since.to_string(), commit: revision.commit.clone(), accounts })
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
