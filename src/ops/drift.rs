//! `stamp drift`: which version runs where, how far behind it is, whether the live
//! infrastructure still matches what was deployed, and how production-like accounts differ
//! from their reference in ways their archetype does not allow.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use super::Workspace;
use super::check::{Selection, VersionSpec, discard, render_one, validate_and_render, with_jobs};
use super::revision::Snapshot;
use crate::config::project::Scope;
use crate::config::{Account, Project};
use crate::diagnostics::{Diagnostic, Report, Sources};
use crate::pipeline::AccountRun;
use crate::pipeline::account::Progress;
use crate::render::Tree;
use crate::terraform::Terraform;
use crate::terraform::binary::INSTALL_HINT;
use crate::version::BuildVersion;

#[derive(Debug, Clone, Default)]
pub struct DriftOptions {
    pub accounts: Vec<String>,
    /// The account production-like accounts are compared with (default: `production`).
    pub reference: Option<String>,
    pub terraform: Option<std::path::PathBuf>,
}

/// The drift of one account.
#[derive(Debug, Clone, Serialize)]
pub struct AccountDrift {
    pub account: String,
    pub environment: String,
    pub archetype: String,
    /// `environment_version` of the live state's `stamp` output; `None`: never deployed.
    pub deployed: Option<String>,
    pub deployed_commit: Option<String>,
    /// The version a deployment now would carry.
    pub current: String,
    /// Commits touching the account's inputs since the deployed commit (`None`: unknown).
    pub commits_behind: Option<u64>,
    /// Whether a plan of what was deployed shows changes: infrastructure changed outside Stamp.
    /// `None`: could not be told (never deployed, deployed from uncommitted changes, plan failed).
    pub live_drift: Option<bool>,
    /// Resources that drifted, when known.
    pub drifted: Vec<String>,
    /// Config differences from the reference account its archetype does not allow.
    pub parity: Vec<ParityIssue>,
    /// What could not be determined, and why.
    pub notes: Vec<String>,
    /// Whether the live state could be read at all.
    pub state_read: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParityIssue {
    pub path: String,
    pub reference: Option<Value>,
    pub value: Option<Value>,
}

impl AccountDrift {
    /// `in sync`, `behind`, `drifted`, `never deployed`, `unknown`.
    pub fn status(&self) -> &'static str {
        match (&self.deployed, self.live_drift, self.commits_behind) {
            (None, ..) if !self.state_read => "unknown",
            (None, ..) => "never deployed",
            (_, Some(true), _) => "drifted",
            (_, _, Some(n)) if n > 0 => "behind",
            (Some(d), _, _) if *d != self.current => "behind",
            (_, Some(false), _) => "in sync",
            _ => "unknown",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub reference: Option<String>,
    pub accounts: Vec<AccountDrift>,
}

fn fail(message: String) -> Report {
    Report::new(vec![Diagnostic::error("drift", message)], Sources::default())
}

/// The account production-like accounts are compared with when no `--reference` is given.
pub const DEFAULT_REFERENCE: &str = "production";

pub fn drift(workspace: &Workspace, options: &DriftOptions, progress: &dyn Progress) -> Result<DriftReport, Report> {
    // Every selected account is checked first: nothing runs when one has errors.
    let work = |w: &Workspace, a: &Account| crate::pipeline::Dirs::new(&w.project, a).work;
    let selection = Selection::of(&options.accounts);
    let checked = validate_and_render(workspace, selection, VersionSpec::Release(None), &work, &discard, None)?;
    let project = &workspace.project;
    if checked.has_errors() {
        return Err(checked.report());
    }
    let terraform = Terraform::locate(options.terraform.as_deref()).map_err(|e| {
        Report::new(vec![Diagnostic::error("terraform.missing", e.to_string()).hint(INSTALL_HINT)], Sources::default())
    })?;
    let reference_name = options
        .reference
        .clone()
        .or_else(|| project.catalog.iter().any(|e| e.name() == DEFAULT_REFERENCE).then(|| DEFAULT_REFERENCE.into()));
    let reference = reference_name
        .as_ref()
        .and_then(|r| project.catalog.iter().find(|e| e.name() == r))
        .map(|e| workspace.whole(e))
        .transpose()?;
    if let (Some(name), None) = (&options.reference, &reference) {
        return Err(fail(format!("unknown reference account `{name}`")));
    }
    let current = checked.version.environment_version();
    // Then each account's live state is read as its tree comes, one account at a time, so a
    // fleet's accounts and trees are never all held at once.
    let found = Mutex::new(Vec::new());
    let revisions = Revisions::new(workspace);
    let run = |account: &Account, _: &Path, tree: Tree| {
        let name = &account.name;
        progress.phase(name, "drift");
        let mut entry = AccountDrift {
            account: name.clone(),
            environment: account.environment().to_string(),
            archetype: account.archetype.clone(),
            deployed: None,
            deployed_commit: None,
            current: current.clone(),
            commits_behind: None,
            live_drift: None,
            drifted: Vec::new(),
            parity: reference
                .as_deref()
                .filter(|r| r.name != *name && r.archetype == account.archetype)
                .map(|r| parity(project, r, account))
                .unwrap_or_default(),
            notes: Vec::new(),
            state_read: false,
        };
        live(workspace, &revisions, account, &tree, &terraform, progress, &mut entry);
        progress.account_done(name);
        found.lock().expect("drift lock").push(entry);
        Ok(None)
    };
    let version = VersionSpec::Exact(checked.version.clone());
    let ran = with_jobs(1, || validate_and_render(workspace, selection, version, &work, &run, None))?;
    // An account file changed since the first pass (drift changes nothing: what ran is
    // only not reported).
    if ran.has_errors() {
        return Err(ran.report());
    }
    let mut accounts = found.into_inner().expect("drift lock");
    accounts.sort_by(|a, b| a.account.cmp(&b.account));
    Ok(DriftReport { reference: reference.map(|r| r.name.clone()), accounts })
}

/// The project at the commits a drift run rebuilds: each read once from git's objects (see
/// [`Snapshot`]), with this run's cache, and shared by the accounts deployed from it, so a
/// rebuild costs what changed since its commit, not a read of every account.
struct Revisions<'w> {
    now: &'w Workspace,
    /// The latest commits read, the most recently used first.
    read: Mutex<VecDeque<(String, Arc<Read>)>>,
}

/// A commit's project (its snapshot kept while it is used), or why it could not be read.
type Read = Result<(Snapshot, Workspace), String>;

/// How many commits' projects a drift run keeps: accounts are mostly deployed from a few.
const REVISIONS_KEPT: usize = 4;

impl<'w> Revisions<'w> {
    fn new(now: &'w Workspace) -> Self {
        Self { now, read: Mutex::new(VecDeque::new()) }
    }

    /// The project at `commit`: read now, or kept from an earlier account.
    fn at(&self, commit: &str) -> Arc<Read> {
        let mut read = self.read.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = read.iter().position(|(c, _)| c == commit) {
            let found = read.remove(at).expect("found above");
            read.push_front(found);
            return Arc::clone(&read[0].1);
        }
        let project = Snapshot::take(&self.now.project.root, commit).and_then(|snapshot| {
            let mut then = self.now.at_snapshot(&snapshot, Scope::Only(&[])).map_err(|r| r.messages())?;
            // The deployed tree is planned against the state where it is kept now.
            super::keep_settings_of(&self.now.project, &mut then.project);
            Ok((snapshot, then))
        });
        read.truncate(REVISIONS_KEPT - 1);
        read.push_front((commit.to_string(), Arc::new(project)));
        Arc::clone(&read[0].1)
    }
}

/// Deployed version, commits behind, and live drift of one account.
fn live(
    workspace: &Workspace,
    revisions: &Revisions<'_>,
    account: &Account,
    tree: &Tree,
    terraform: &Terraform,
    progress: &dyn Progress,
    entry: &mut AccountDrift,
) {
    let project = &workspace.project;
    let mut run = match AccountRun::start(project, account, terraform, progress, None) {
        Ok(run) => run,
        Err(e) => return entry.notes.push(e.to_string()),
    };
    let outputs = run.prepare(tree).and_then(|()| run.outputs());
    let stamp = match outputs {
        Ok(outputs) => outputs.get("stamp").cloned(),
        Err(e) => {
            return entry
                .notes
                .push(format!("cannot read the live state: {e} (see `{}`)", project.display(&run.dirs.log)));
        }
    };
    entry.state_read = true;
    let Some(stamp) = stamp else { return };
    let text = |key: &str| stamp.get(key).and_then(Value::as_str).map(str::to_string);
    entry.deployed = text("environment_version");
    entry.deployed_commit = text("commit");
    let (Some(version), Some(commit)) = (text("version"), text("commit")) else { return };
    let dirty = entry.deployed.as_deref().is_some_and(|v| v.ends_with("-dirty"));
    if commit == "none" {
        entry.notes.push("deployed from outside git: commits behind and live drift cannot be told".into());
        return;
    }
    entry.commits_behind = commits_behind(project, account, &commit);
    if dirty {
        entry
            .notes
            .push("deployed from uncommitted changes: what was deployed cannot be rebuilt to check live drift".into());
        return;
    }
    // Rebuild exactly what was deployed (builds are reproducible) and plan it.
    let deployed = BuildVersion { version, commit: commit.clone(), dirty: false };
    // Rendered for its work folder inside the revision's folder: relative paths (local state)
    // come out as deployed. The revision has no ledger: the live slot is this project's.
    let rebuilt = match &*revisions.at(&commit) {
        Ok((_, then)) => render_one(then, &account.name, account.slot, VersionSpec::Exact(deployed))
            .map_err(|r| format!("{} (at {commit})", r.messages())),
        Err(e) => Err(e.clone()),
    };
    match rebuilt {
        Err(e) => entry.notes.push(format!("cannot rebuild the deployed version: {e}")),
        Ok(tree) => match run.prepare(&tree).and_then(|()| run.plan(false)) {
            Ok(summary) => {
                entry.live_drift = Some(summary.has_changes());
                entry.drifted =
                    summary.changes.iter().map(|c| format!("{} {}", c.action.symbol(), c.address)).collect();
            }
            Err(e) => entry.notes.push(format!("cannot plan the deployed version: {e}")),
        },
    }
}

/// Commits since `commit` that touch the account's inputs: its file, archetype, blueprint and
/// `stamp.yaml`.
fn commits_behind(project: &Project, account: &Account, commit: &str) -> Option<u64> {
    let archetype = &project.archetypes[&account.archetype];
    let blueprint = project.blueprint_dir(&archetype.file.blueprint);
    let out = Command::new("git")
        .arg("-C")
        .arg(&project.root)
        .args(["rev-list", "--count", &format!("{commit}..HEAD"), "--"])
        .arg(&account.path)
        .arg(&archetype.dir)
        .arg(&blueprint)
        .arg(project.root.join(crate::config::project::PROJECT_FILE))
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok()).flatten()
}

/// Config differences from the reference that the archetype's `allowed_differences` (and the
/// keys that identify an account) do not allow.
pub fn parity(project: &Project, reference: &Account, account: &Account) -> Vec<ParityIssue> {
    let allowed = &project.archetypes[&account.archetype].file.allowed_differences;
    let always =
        ["name", "account_id", "environment", "protected", "ephemeral", "owner", "ttl", "created_at", "tags.*"];
    // Sensitive values never reach a report.
    let redacted = crate::schema::redact::redacted;
    let (a, b) = (super::diff::flatten(&redacted(reference)), super::diff::flatten(&redacted(account)));
    let paths: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    paths
        .into_iter()
        .filter(|path| a.get(*path) != b.get(*path))
        .filter(|path| !allowed.iter().map(String::as_str).chain(always).any(|pattern| matches(pattern, path)))
        .map(|path| ParityIssue { path: path.clone(), reference: a.get(path).cloned(), value: b.get(path).cloned() })
        .collect()
}

/// `network.cidr` matches itself and everything below it; `*` matches one segment (a key or
/// a list index: `databases.*.instance_class` matches `databases[1].instance_class`); a
/// trailing `.*` matches everything below.
pub fn matches(pattern: &str, path: &str) -> bool {
    let path = path.replace('[', ".").replace(']', "");
    let (p, s): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), path.split('.').collect());
    if p.len() > s.len() {
        return false;
    }
    p.iter().zip(&s).all(|(p, s)| *p == "*" || p == s)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn allowed_difference_patterns() {
        assert!(matches("network.cidr", "network.cidr"));
        assert!(matches("capacity.*", "capacity.min_size"));
        assert!(matches("cluster.capacity.*", "cluster.capacity.instance_type"));
        assert!(matches("databases.*.instance_class", "databases[1].instance_class"));
        assert!(matches("dns.records", "dns.records[0].values[0]"));
        assert!(!matches("databases.*.instance_class", "databases[1].engine"));
        assert!(!matches("network.cidr", "network.azs"));
    }
}
