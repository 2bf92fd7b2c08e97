//! `stamp diff A B`: what differs between two rendered accounts, each from the working tree,
//! a git revision (`ACCOUNT@REV`) or an artifact: version, effective config (by key path) and
//! the rendered Terraform (unified diffs), with sensitive values redacted.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use ipnet::Ipv4Net;
use serde::Serialize;
use serde_json::Value;

use super::Workspace;
use super::check::{Selection, VersionSpec, validate_and_render};
use super::revision::Snapshot;
use crate::config::Account;
use crate::config::project::Scope;
use crate::diagnostics::Report;
use crate::render::Tree;

/// Where one side of a diff comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SideSpec {
    /// An account of the working tree.
    Account(String),
    /// `ACCOUNT@REV`: the account rendered from a git revision of the project.
    AtRevision { account: String, rev: String },
    /// A built artifact.
    Artifact(PathBuf),
}

impl SideSpec {
    pub fn parse(text: &str) -> Self {
        if text.ends_with(".tar.gz") {
            return Self::Artifact(PathBuf::from(text));
        }
        match text.rsplit_once('@') {
            Some((account, rev)) if !account.is_empty() && !rev.is_empty() => {
                Self::AtRevision { account: account.to_string(), rev: rev.to_string() }
            }
            _ => Self::Account(text.to_string()),
        }
    }
}

/// One side, ready to compare.
#[derive(Debug, Clone)]
pub struct Side {
    pub label: String,
    pub account: String,
    pub environment_version: String,
    pub config: Value,
    pub files: BTreeMap<String, String>,
    /// Values that identify the account (name, id, network, zone), by config path.
    pub identity: BTreeMap<String, String>,
}

/// Config paths whose values are expected to differ between accounts.
const IDENTITY: &[&str] = &["name", "account_id", "environment", "network.cidr", "dns.zone", "owner"];

pub use crate::schema::redact::REDACTED;

#[derive(Debug, Clone, Serialize)]
pub struct ConfigChange {
    pub path: String,
    pub a: Option<Value>,
    pub b: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    pub path: String,
    pub status: FileStatus,
    /// A unified diff (3 lines of context).
    pub unified: String,
}

/// What differs between two sides.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub a: String,
    pub b: String,
    /// `(a, b)` environment versions when they differ.
    pub version: Option<(String, String)>,
    pub config: Vec<ConfigChange>,
    pub files: Vec<FileDiff>,
    pub ignored_account_values: bool,
}

impl Diff {
    pub fn identical(&self) -> bool {
        self.version.is_none() && self.config.is_empty() && self.files.is_empty()
    }
}

#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    pub a: String,
    pub b: String,
    pub ignore_account_values: bool,
    pub version: Option<String>,
}

pub fn diff(workspace: &Workspace, options: &DiffOptions) -> Result<Diff, DiffError> {
    let a = load_side(workspace, &SideSpec::parse(&options.a), options.version.as_deref())?;
    let b = load_side(workspace, &SideSpec::parse(&options.b), options.version.as_deref())?;
    Ok(compare(&a, &b, options.ignore_account_values))
}

/// Why `diff` could not compare.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A side does not validate or render (its diagnostics, whole).
    #[error(transparent)]
    Invalid(Report),
    /// The revision could not be checked out.
    #[error("{0}")]
    Revision(String),
    #[error("{}", crate::diagnostics::error_chain(.0))]
    Artifact(#[from] crate::artifact::ArtifactError),
    #[error("account `{0}` did not render")]
    NotRendered(String),
}

impl From<Report> for DiffError {
    fn from(report: Report) -> Self {
        Self::Invalid(report)
    }
}

impl super::error::OpError for DiffError {
    fn own_code(&self) -> &'static str {
        match self {
            Self::Artifact(_) => "artifact",
            _ => "diff",
        }
    }

    fn wraps(&self) -> Option<&dyn super::error::OpError> {
        match self {
            Self::Invalid(report) => Some(report),
            _ => None,
        }
    }
}

fn load_side(workspace: &Workspace, spec: &SideSpec, version: Option<&str>) -> Result<Side, DiffError> {
    let root = &workspace.project.root;
    match spec {
        SideSpec::Account(account) => render_side(workspace, account, VersionSpec::Release(version), "working tree"),
        SideSpec::AtRevision { account, rev } => {
            let snapshot = Snapshot::take(root, rev).map_err(DiffError::Revision)?;
            let build = super::revision::build_version(root, &snapshot.commit, version);
            let then = workspace.at_snapshot(&snapshot, Scope::Only(std::slice::from_ref(account)))?;
            render_side(&then, account, VersionSpec::Exact(build), &format!("at {rev}"))
        }
        SideSpec::Artifact(path) => {
            let artifact = crate::artifact::open(path)?;
            let manifest = &artifact.manifest;
            let files = text_files(&artifact.tree());
            let config = artifact.config();
            Ok(Side {
                label: format!("{} ({})", manifest.account, path.display()),
                account: manifest.account.clone(),
                environment_version: manifest.environment_version.clone(),
                identity: identity(&config),
                config,
                files,
            })
        }
    }
}

fn render_side(
    workspace: &Workspace,
    account: &str,
    version: VersionSpec<'_>,
    origin: &str,
) -> Result<Side, DiffError> {
    let kept = Mutex::new(None);
    let keep = |a: &Account, _: &Path, tree: Tree| {
        // Rendering refuses sensitive values, so the rendered files hold none.
        *kept.lock().expect("kept lock") = Some((a.name.clone(), crate::schema::redact::redacted(a), tree));
        Ok(None)
    };
    let out_dir = |w: &Workspace, a: &Account| w.project.root.join("build").join(&a.name);
    let accounts = [account.to_string()];
    let checked = validate_and_render(workspace, Selection::of(&accounts), version, &out_dir, &keep, None)?;
    if checked.has_errors() {
        return Err(DiffError::Invalid(checked.report()));
    }
    let (name, config, tree) =
        kept.into_inner().expect("kept lock").ok_or_else(|| DiffError::NotRendered(account.to_string()))?;
    let files = text_files(&tree);
    Ok(Side {
        label: format!("{name} ({origin})"),
        account: name,
        environment_version: checked.version.environment_version(),
        identity: identity(&config),
        config,
        files,
    })
}

fn text_files(tree: &Tree) -> BTreeMap<String, String> {
    tree.files
        .iter()
        .filter(|(path, _)| path.as_str() != crate::render::tree::MARKER)
        .map(|(path, file)| (path.clone(), String::from_utf8_lossy(&file.content).to_string()))
        .collect()
}

fn identity(config: &Value) -> BTreeMap<String, String> {
    IDENTITY
        .iter()
        .filter_map(|path| {
            let pointer = format!("/{}", path.replace('.', "/"));
            config.pointer(&pointer).and_then(Value::as_str).map(|v| ((*path).to_string(), v.to_string()))
        })
        .collect()
}

/// `a.b[0].c` -> value, for every leaf.
pub fn flatten(value: &Value) -> BTreeMap<String, Value> {
    fn walk(value: &Value, path: String, out: &mut BTreeMap<String, Value>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    let next = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    walk(child, next, out);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, format!("{path}[{i}]"), out);
                }
            }
            leaf => {
                out.insert(path, leaf.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(value, String::new(), &mut out);
    out
}

/// Replaces what is expected to differ per account with placeholders: identity values, and
/// addresses inside the account's network as offsets (`<network.cidr>+0.0.2.0/24`).
fn normalise(text: &str, side: &Side) -> String {
    let mut out = text.replace(&side.environment_version, "<environment_version>");
    let network = side.identity.get("network.cidr").and_then(|c| Ipv4Net::from_str(c).ok());
    if let Some(network) = network {
        out = replace_addresses(&out, network);
    }
    let mut identity: Vec<(&String, &String)> = side.identity.iter().filter(|(_, v)| v.len() >= 3).collect();
    // Longest values first, so `prod.acme.com` is replaced before `prod`.
    identity.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    // Values in code and in Stamp's header; a blueprint's own comments keep their words.
    let mut lines = Vec::new();
    for (n, line) in out.lines().enumerate() {
        let comment = line.trim_start().starts_with('#') || line.trim_start().starts_with("//");
        if comment && n >= 3 {
            lines.push(line.to_string());
            continue;
        }
        let mut line = line.to_string();
        for (path, value) in &identity {
            line = line.replace(value.as_str(), &format!("<{path}>"));
        }
        lines.push(line);
    }
    let mut joined = lines.join("\n");
    if out.ends_with('\n') {
        joined.push('\n');
    }
    joined
}

fn replace_addresses(text: &str, network: Ipv4Net) -> String {
    let re = regex::Regex::new(r"\b(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})(/\d{1,2})?\b").expect("valid regex");
    re.replace_all(text, |caps: &regex::Captures<'_>| {
        let whole = caps[0].to_string();
        let Ok(address) = Ipv4Addr::from_str(&caps[1]) else { return whole };
        if !network.contains(&address) {
            return whole;
        }
        let offset = Ipv4Addr::from(u32::from(address) - u32::from(network.network()));
        format!("<network.cidr>+{offset}{}", caps.get(2).map_or("", |m| m.as_str()))
    })
    .to_string()
}

/// Compares two sides.
pub fn compare(a: &Side, b: &Side, ignore_account_values: bool) -> Diff {
    let version = (a.environment_version != b.environment_version)
        .then(|| (a.environment_version.clone(), b.environment_version.clone()));
    let (ca, cb) = (flatten(&a.config), flatten(&b.config));
    let mut config = Vec::new();
    let paths: std::collections::BTreeSet<&String> = ca.keys().chain(cb.keys()).collect();
    for path in paths {
        if ignore_account_values && IDENTITY.contains(&path.as_str()) {
            continue;
        }
        let (va, vb) = (ca.get(path), cb.get(path));
        if va != vb {
            config.push(ConfigChange { path: path.clone(), a: va.cloned(), b: vb.cloned() });
        }
    }
    let mut files = Vec::new();
    let names: std::collections::BTreeSet<&String> = a.files.keys().chain(b.files.keys()).collect();
    for name in names {
        let prepare = |side: &Side| {
            side.files.get(name).map(|text| {
                let text = text.replace(&side.environment_version, "<environment_version>");
                if ignore_account_values { normalise(&text, side) } else { text }
            })
        };
        let (ta, tb) = (prepare(a), prepare(b));
        let status = match (&ta, &tb) {
            (Some(x), Some(y)) if x == y => continue,
            (Some(_), Some(_)) => FileStatus::Changed,
            (Some(_), None) => FileStatus::Removed,
            (None, Some(_)) => FileStatus::Added,
            (None, None) => continue,
        };
        let (ta, tb) = (ta.unwrap_or_default(), tb.unwrap_or_default());
        let unified = similar::TextDiff::from_lines(&ta, &tb)
            .unified_diff()
            .context_radius(3)
            // The name on one line: a line break in it would forge the diff's next line.
            .header(&format!("a/{}", crate::text::one_line(name)), &format!("b/{}", crate::text::one_line(name)))
            .to_string();
        files.push(FileDiff { path: name.clone(), status, unified });
    }
    Diff {
        a: a.label.clone(),
        b: b.label.clone(),
        version,
        config,
        files,
        ignored_account_values: ignore_account_values,
    }
}
