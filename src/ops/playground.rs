//! Ephemeral playgrounds: `stamp playground new` writes a short-lived copy of an account's
//! config (its own network from the pool in `stamp.yaml`, its own zone, an owner and a ttl)
//! and applies it; `stamp reap` destroys ephemeral accounts past their expiry, and with
//! `--all-ephemeral --confirm kill-switch` every ephemeral account. Protected and
//! non-ephemeral accounts are never reaped.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use super::Workspace;
use super::deploy::{self, ApplyOptions, Approver, DeployError, DeployOptions, DeployReport};
use crate::config::Account;
use crate::diagnostics::Report;
use crate::ephemeral::{Lifetime, format_time};
use crate::ops::plan_report::PlanReport;
use crate::pipeline::account::Progress;

/// The first line of a playground's file: `reap` deletes only files that start with it.
pub const HEADER: &str = "# Playground written by `stamp playground new`: reaped once expired.";

/// A playground file's second line: the SHA-256 of everything below it as written, so a reap
/// removes the file only if nobody changed it (an edited one is kept).
const WRITTEN_AS: &str = "# SHA-256 of what follows, as written (a reap keeps it if edited): ";

/// Where a reap keeps a destroyed playground's file that was edited after it was written.
pub const KEPT_DIR: &str = ".stamp/reaped";

/// What `--confirm` must say for the kill switch.
pub const KILL_SWITCH: &str = "kill-switch";

#[derive(Debug, Clone, Default)]
pub struct PlaygroundOptions {
    pub name: String,
    pub from: String,
    pub owner: String,
    pub ttl: String,
    /// Only write the file.
    pub no_apply: bool,
    pub terraform: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Playground {
    pub name: String,
    pub file: String,
    pub cidr: String,
    pub zone: String,
    pub expires_at: String,
    pub deploy: Option<DeployReport>,
}

/// Why `playground new` or `reap` did not run.
#[derive(Debug, thiserror::Error)]
pub enum PlaygroundError {
    /// The source account is not there or does not validate (its diagnostics, whole).
    #[error(transparent)]
    Invalid(Report),
    /// Another run holds the allocation (on this machine or, with a shared store, any).
    #[error("{0}")]
    Locked(String),
    #[error(
        "`stamp.yaml` has no `playgrounds:` settings: add `playgrounds: {{cidr_pool: 10.200.0.0/16, zone_suffix: play.example.internal}}`"
    )]
    NoSettings,
    #[error(
        "invalid playground name `{0}`: use letters, digits, `-`, `_` and `.` (at most 63), starting with a letter or digit, not ending in `-green`"
    )]
    InvalidName(String),
    #[error("an account named `{0}` exists already")]
    AccountExists(String),
    #[error("`--owner` must say who the playground belongs to, on one line")]
    NoOwner,
    #[error("`--ttl {ttl}`{problem}")]
    Ttl { ttl: String, problem: String },
    #[error("`{0}` exists already")]
    FileExists(String),
    #[error("`{0}` has no `network.cidr` to size a playground by")]
    NoNetwork(String),
    /// No free network in the pool, or the zone is taken.
    #[error("{0}")]
    Allocation(String),
    #[error("{0}")]
    File(String),
    #[error("cannot write `{}`: {}", path.display(), crate::diagnostics::io_reason(source))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(
        "`--all-ephemeral` destroys every ephemeral account, expired or not: confirm with `--confirm {KILL_SWITCH}`"
    )]
    KillSwitchUnconfirmed,
    #[error("{0}")]
    Clock(String),
    #[error("`STAMP_NOW` is set: only `stamp reap --dry-run` judges expiry by another time than now")]
    NowWithoutDryRun,
    #[error(transparent)]
    Deploy(#[from] DeployError),
}

impl From<Report> for PlaygroundError {
    fn from(report: Report) -> Self {
        Self::Invalid(report)
    }
}

impl super::error::OpError for PlaygroundError {
    fn own_code(&self) -> &'static str {
        match self {
            Self::Locked(_) => "playground.locked",
            Self::Store(_) => "store",
            Self::KillSwitchUnconfirmed | Self::Clock(_) | Self::NowWithoutDryRun => "reap",
            _ => "playground",
        }
    }

    fn wraps(&self) -> Option<&dyn super::error::OpError> {
        match self {
            Self::Invalid(report) => Some(report),
            Self::Deploy(e) => Some(e),
            _ => None,
        }
    }
}

/// `stamp playground new NAME --from ACCOUNT --owner X --ttl 8h`.
pub fn new(
    workspace: &mut Workspace,
    options: &PlaygroundOptions,
    approver: &dyn Approver,
    progress: &dyn Progress,
) -> Result<Playground, PlaygroundError> {
    // One allocation at a time (the project is loaded under the lock): two playgrounds never
    // get the same network or name.
    let locks = workspace.project.root.join(".stamp/locks");
    let lock = crate::pipeline::lock::AccountLock::acquire(&locks.join("playgrounds.lock"), "playground allocation")
        .map_err(PlaygroundError::Locked)?;
    // Every machine sharing the store allocates from the same pool.
    let shared = crate::store::lock(workspace.store.as_ref(), "playgrounds").map_err(PlaygroundError::Locked)?;
    let Some(settings) = workspace.project.file.playgrounds.clone() else {
        return Err(PlaygroundError::NoSettings);
    };
    // Playgrounds written since the project was loaded (by another run) take their networks.
    let dir = workspace.project.root.join(&workspace.project.file.accounts).join(&settings.dir);
    workspace.add_new_files(&dir);
    let project = &workspace.project;
    let source = workspace.account(&options.from)?;
    if !crate::config::project::valid_account_name(&options.name) {
        return Err(PlaygroundError::InvalidName(options.name.clone()));
    }
    if project.entry(&options.name).is_some() {
        return Err(PlaygroundError::AccountExists(options.name.clone()));
    }

    if options.owner.trim().is_empty() || options.owner.chars().any(char::is_control) {
        return Err(PlaygroundError::NoOwner);
    }
    let bad_ttl = |problem: String| PlaygroundError::Ttl { ttl: options.ttl.clone(), problem };
    let ttl = humantime::parse_duration(&options.ttl)
        .map_err(|e| bad_ttl(format!(" is not a duration like `8h` or `3d`: {e}")))?;
    let created = crate::ephemeral::run_started();
    let expires = crate::ephemeral::expiry(created, ttl).map_err(|p| bad_ttl(format!(": {p}")))?;
    let dir = project.root.join(&project.file.accounts).join(&settings.dir);
    let path = dir.join(format!("{}.yaml", options.name));
    if path.exists() {
        return Err(PlaygroundError::FileExists(project.display(&path)));
    }
    let prefix = match settings.prefix_length {
        Some(p) => p,
        None => source
            .str_at("/network/cidr")
            .and_then(|c| c.parse::<ipnet::Ipv4Net>().ok())
            .map(|n| n.prefix_len())
            .ok_or_else(|| PlaygroundError::NoNetwork(source.name.clone()))?,
    };
    // Networks and zones in use, from the catalog; an account whose network or zone is
    // sensitive (not among its summary's facts) is read whole.
    let withheld = project
        .catalog
        .iter()
        .filter(|e| e.summary.withheld.iter().any(|p| p == "/network/cidr" || p == "/dns/zone"))
        .map(|e| workspace.whole(e))
        .collect::<Result<Vec<_>, _>>()?;
    let used = |pointer: &'static str| {
        let known = project.catalog.iter().filter_map(move |e| e.fact(pointer)).map(|f| f.value.as_str());
        known.chain(withheld.iter().filter_map(move |a| a.str_at(pointer)))
    };
    let cidr = allocate(settings.cidr_pool, prefix, used("/network/cidr")).map_err(PlaygroundError::Allocation)?;
    let zone = format!("{}.{}", options.name, settings.zone_suffix.trim_matches('.')).to_ascii_lowercase();
    let same = |other: &str| other.trim_end_matches('.').eq_ignore_ascii_case(&zone);
    if used("/dns/zone").any(same) {
        return Err(PlaygroundError::Allocation(format!("zone `{zone}` is used by another account already")));
    }
    let config = playground_config(source, options, &cidr.to_string(), &zone, &format_time(created));
    let comment = format!(
        "A copy of `{}` for {} until {} (ttl {}).",
        source.name,
        options.owner,
        format_time(expires),
        options.ttl
    );
    let text = playground_file(&comment, &config).map_err(PlaygroundError::File)?;
    // Written beside its final name and linked into place: never a half-written account file,
    // and never over one that appeared since it was looked for.
    crate::fsio::create_atomic(&path, text.as_bytes(), crate::fsio::Mode::Shared).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            PlaygroundError::FileExists(project.display(&path))
        } else {
            PlaygroundError::Write { path: path.clone(), source }
        }
    })?;
    drop((lock, shared));
    let shown = project.display(&path);
    workspace.add_files(&[path.display().to_string()]);
    let mut playground = Playground {
        name: options.name.clone(),
        file: shown,
        cidr: cidr.to_string(),
        zone,
        expires_at: format_time(expires),
        deploy: None,
    };
    if !options.no_apply {
        let apply = ApplyOptions {
            deploy: DeployOptions {
                accounts: vec![options.name.clone()],
                terraform: options.terraform.clone(),
                jobs: 1,
                ..DeployOptions::default()
            },
            ..ApplyOptions::default()
        };
        playground.deploy = Some(deploy::apply(workspace, &apply, approver, progress)?);
    }
    Ok(playground)
}

/// The text of a playground's file: the header, a comment, and `config` written by the YAML
/// emitter. Read back before it is written: anything but exactly `config` (a value that became
/// YAML syntax) is refused.
fn playground_file(comment: &str, config: &Value) -> Result<String, String> {
    let below = format!("# {}\n{}", crate::text::one_line(comment), crate::config::yaml::to_text(config));
    let digest = crate::cache::content_digest(below.as_bytes());
    let text = format!("{HEADER}\n{WRITTEN_AS}{digest}\n{below}");
    match crate::config::yaml::parse("playground", &text) {
        Ok(document) if &document.value == config && text.starts_with(&format!("{HEADER}\n")) => Ok(text),
        _ => Err("the playground's file would not read back as written: refusing to write it".into()),
    }
}

/// The source's own config, made a playground: ephemeral, unprotected, its own network and
/// zone, no DNS records of the source's.
fn playground_config(source: &Account, options: &PlaygroundOptions, cidr: &str, zone: &str, created: &str) -> Value {
    let mut config = source.own.clone();
    // Stamp writes no secret into a file: a sensitive value of the source is left out, and so
    // is one of another shape where secrets belong, which may be one (a schema that requires
    // it says so when the playground is checked).
    for pointer in source.sensitive.iter().chain(&source.misshapen) {
        remove_pointer(&mut config, pointer);
    }
    let Some(map) = config.as_object_mut() else { return config };
    // The source's own hooks, policies and policy waivers (not part of `own`) come along, as
    // written: a copy meets the same findings for the same reasons.
    let document = crate::fsio::plain_text(&source.path, crate::config::yaml::MAX_BYTES as u64)
        .and_then(|text| crate::config::yaml::parse(&source.display, &text).ok());
    for key in ["hooks", crate::config::policies::POLICIES_KEY, crate::config::policies::WAIVERS_KEY] {
        if let Some(value) = document.as_ref().and_then(|d| d.value.get(key)) {
            map.insert(key.into(), value.clone());
        }
    }
    map.remove("name");
    map.insert("environment".into(), json!("playground"));
    map.insert("protected".into(), json!(false));
    map.insert("ephemeral".into(), json!(true));
    map.insert("owner".into(), json!(options.owner));
    map.insert("ttl".into(), json!(options.ttl));
    map.insert("created_at".into(), json!(created));
    for (section, key, value) in [("network", "cidr", cidr), ("dns", "zone", zone)] {
        let entry = map.entry(section).or_insert_with(|| json!({}));
        if let Some(section) = entry.as_object_mut() {
            section.insert(key.into(), json!(value));
            if key == "zone" {
                section.remove("records");
            }
        }
    }
    config
}

/// Removes the value at a JSON pointer from its map (or empties it in its list), if it is there.
fn remove_pointer(value: &mut Value, pointer: &str) {
    let Some((parent, key)) = pointer.rsplit_once('/') else { return };
    let key = key.replace("~1", "/").replace("~0", "~");
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(&key);
        }
        // In a list, the item's place is kept (other pointers count on it), empty.
        Some(Value::Array(items)) => {
            if let Some(item) = key.parse::<usize>().ok().and_then(|index| items.get_mut(index)) {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}

/// The first network of `prefix` bits in `pool` that overlaps no account's `network.cidr`.
fn allocate<'a>(
    pool: ipnet::Ipv4Net,
    prefix: u8,
    taken: impl Iterator<Item = &'a str>,
) -> Result<ipnet::Ipv4Net, String> {
    let taken: Vec<ipnet::Ipv4Net> = taken.filter_map(|cidr| cidr.parse().ok()).collect();
    let overlaps = |a: &ipnet::Ipv4Net, b: &ipnet::Ipv4Net| a.contains(&b.network()) || b.contains(&a.network());
    pool.subnets(prefix)
        .map_err(|_| format!("a /{prefix} network does not fit in the pool {pool}"))?
        .find(|candidate| !taken.iter().any(|t| overlaps(candidate, t)))
        .ok_or_else(|| {
            format!("the playground pool {pool} has no free /{prefix} network left: reap or delete playgrounds")
        })
}

#[derive(Debug, Clone, Default)]
pub struct ReapOptions {
    pub dry_run: bool,
    /// The kill switch: every ephemeral account, expired or not.
    pub all_ephemeral: bool,
    pub confirm: Option<String>,
    pub terraform: Option<PathBuf>,
}

/// What `reap` decided for one ephemeral account.
#[derive(Debug, Clone, Serialize)]
pub struct Reaped {
    pub account: String,
    pub owner: String,
    pub expires_at: Option<String>,
    pub action: ReapAction,
    pub reason: String,
}

/// What `reap` did (or, in a dry run, would do) with an ephemeral account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReapAction {
    Kept,
    /// Chosen to be destroyed (a dry run stops here).
    WouldDestroy,
    Destroyed,
    Failed,
    /// Its `owner`, `ttl` or `created_at` is missing or malformed.
    Invalid,
}

impl std::fmt::Display for ReapAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Kept => "kept",
            Self::WouldDestroy => "would destroy",
            Self::Destroyed => "destroyed",
            Self::Failed => "failed",
            Self::Invalid => "invalid",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReapReport {
    pub accounts: Vec<Reaped>,
    /// Accounts that are not ephemeral: never reaped.
    pub not_ephemeral: usize,
    pub destroys: Vec<DeployReport>,
    pub removed_files: Vec<String>,
    /// Destroyed playgrounds' files that were edited after they were written: moved out of the
    /// accounts folder (so no longer accounts), never removed.
    pub kept_files: Vec<KeptFile>,
    /// Problems found while loading (a damaged ledger record, ...), one line each.
    pub warnings: Vec<String>,
}

/// A destroyed playground's file kept because it was edited: where it was, where it is, why.
#[derive(Debug, Clone, Serialize)]
pub struct KeptFile {
    pub file: String,
    pub at: String,
    pub why: String,
}

impl ReapReport {
    pub fn succeeded(&self) -> bool {
        self.accounts.iter().all(|a| !matches!(a.action, ReapAction::Failed | ReapAction::Invalid))
    }
}

/// Approves the destruction of the accounts `reap` chose (it runs unattended).
struct Chosen;

impl Approver for Chosen {
    fn approve(&self, _: &PlanReport) -> Result<(), String> {
        Ok(())
    }
}

/// `stamp reap`.
pub fn reap(
    workspace: &Workspace,
    options: &ReapOptions,
    progress: &dyn Progress,
) -> Result<ReapReport, PlaygroundError> {
    if options.all_ephemeral && options.confirm.as_deref() != Some(KILL_SWITCH) {
        return Err(PlaygroundError::KillSwitchUnconfirmed);
    }
    let project = &workspace.project;
    let now = crate::ephemeral::judged_at().map_err(PlaygroundError::Clock)?;
    if std::env::var_os("STAMP_NOW").is_some() && !options.dry_run {
        return Err(PlaygroundError::NowWithoutDryRun);
    }
    let mut report = ReapReport {
        accounts: Vec::new(),
        not_ephemeral: 0,
        destroys: Vec::new(),
        removed_files: Vec::new(),
        kept_files: Vec::new(),
        warnings: workspace.warning_lines(),
    };
    for entry in &project.catalog {
        if !entry.summary.ephemeral {
            report.not_ephemeral += 1;
            continue;
        }
        // Only ephemeral accounts are read whole.
        let account = match workspace.whole(entry) {
            Ok(account) => account,
            Err(problem) => {
                report.accounts.push(Reaped {
                    account: entry.name().to_string(),
                    owner: String::new(),
                    expires_at: None,
                    action: ReapAction::Invalid,
                    reason: format!("{} (in `{}`)", crate::text::one_line(&problem.messages()), entry.display),
                });
                continue;
            }
        };
        let account = account.as_ref();
        let lifetime = match Lifetime::of(account) {
            Ok(Some(lifetime)) => lifetime,
            Ok(None) => {
                report.not_ephemeral += 1;
                continue;
            }
            Err(problem) => {
                report.accounts.push(Reaped {
                    account: account.name.clone(),
                    owner: String::new(),
                    expires_at: None,
                    action: ReapAction::Invalid,
                    reason: format!("{problem} (in `{}`)", account.display),
                });
                continue;
            }
        };
        let history = workspace.store.history(&account.name)?;
        let deployed = crate::ledger::created_at(&history.records, account.slot).is_some();
        // The ledger knows nothing of the slot (not even a destroy): an apply may have been
        // stopped before its record. Once destroyed, it knows.
        let unknown = !deployed && !history.records.iter().any(|r| r.slot() == account.slot);
        let expired = lifetime.expired(now);
        let unsafe_history = super::history_problem(workspace.store.as_ref(), account);
        let (action, reason) = if account.is_protected() {
            (ReapAction::Kept, "protected: never reaped".to_string())
        } else if let Some(problem) = &unsafe_history {
            (ReapAction::Kept, problem.clone())
        } else if !deployed && !(unknown && (options.all_ephemeral || expired)) {
            (ReapAction::Kept, "not deployed".to_string())
        } else if options.all_ephemeral || expired {
            let why = if options.all_ephemeral { "kill switch" } else { "expired" };
            // One the ledger does not know deployed may be all the same: a run stopped between
            // Terraform's apply and its ledger record. Destroying nothing is harmless.
            let reason = if deployed {
                why.to_string()
            } else {
                format!("{why} (not in the ledger: destroyed in case an apply was stopped before it was recorded)")
            };
            (ReapAction::WouldDestroy, reason)
        } else {
            (ReapAction::Kept, "not expired yet".to_string())
        };
        report.accounts.push(Reaped {
            account: account.name.clone(),
            owner: lifetime.owner.clone(),
            expires_at: lifetime.created_at.map(|_| format_time(lifetime.expires_at(now))),
            action,
            reason,
        });
    }
    if options.dry_run {
        return Ok(report);
    }
    let doomed: Vec<String> =
        report.accounts.iter().filter(|a| a.action == ReapAction::WouldDestroy).map(|a| a.account.clone()).collect();
    // One at a time: an account that cannot be destroyed does not keep the others alive.
    for name in &doomed {
        let destroy = ApplyOptions {
            deploy: DeployOptions {
                accounts: vec![name.clone()],
                terraform: options.terraform.clone(),
                jobs: 1,
                ..DeployOptions::default()
            },
            ..ApplyOptions::default()
        };
        let failure = match deploy::destroy(workspace, &destroy, &Chosen, progress) {
            Err(problem) => Some(problem.to_string()),
            Ok(result) => {
                let failure = destroy_failure(&result, name);
                report.destroys.push(result);
                failure
            }
        };
        let entry = report.accounts.iter_mut().find(|a| &a.account == name).expect("reported above");
        match failure {
            Some(error) => {
                entry.action = ReapAction::Failed;
                entry.reason = format!("{}: {error}", entry.reason);
            }
            None => {
                entry.action = ReapAction::Destroyed;
                let entry = project.catalog.iter().find(|e| e.name() == name).expect("chosen above");
                if is_playground_file(&entry.path) {
                    match put_away(&project.root, &entry.path) {
                        Ok(PutAway::Removed) => report.removed_files.push(entry.display.clone()),
                        Ok(PutAway::Kept { at, why }) => {
                            report.kept_files.push(KeptFile {
                                file: entry.display.clone(),
                                at: project.display(&at),
                                why,
                            });
                        }
                        Err((at, e)) => report.warnings.push(format!(
                            "`{}` was destroyed, but its file `{}` cannot be removed: {e} (remove it by hand)",
                            entry.display,
                            project.display(&at)
                        )),
                    }
                }
            }
        }
    }
    Ok(report)
}

/// Why `account` was not destroyed, if it was not.
fn destroy_failure(result: &DeployReport, account: &str) -> Option<String> {
    result.refused.clone().or_else(|| {
        let outcome = result.results.iter().find(|r| r.account == account);
        let planned = result.plan.accounts.iter().find(|a| a.account == account);
        match (outcome, planned) {
            (Some(r), _) => r.error.clone(),
            (None, Some(p)) => match &p.outcome {
                crate::ops::plan_report::PlanOutcome::Failed { message, .. } => Some(message.clone()),
                crate::ops::plan_report::PlanOutcome::Planned { .. } => None,
            },
            (None, None) => Some("not destroyed".into()),
        }
    })
}

/// What became of a destroyed playground's file.
enum PutAway {
    Removed,
    /// Kept `at` (in [`KEPT_DIR`], or where it was when it could not be moved), for `why`.
    Kept {
        at: PathBuf,
        why: String,
    },
}

/// A destroyed playground's file: moved out of the accounts folder into [`KEPT_DIR`] first (so
/// what is written to its old name from then on is a new file), then removed only if it is as
/// `playground new` wrote it. Where it cannot be moved (`.stamp/reaped` is a link, or on
/// another file system), it is judged where it is. An error says where the file is.
fn put_away(root: &Path, path: &Path) -> Result<PutAway, (PathBuf, std::io::Error)> {
    let kept_dir = root.join(KEPT_DIR);
    let moved = crate::fsio::private_dir(&kept_dir).and_then(|()| crate::fsio::move_into(path, &kept_dir));
    let (at, left) = match moved {
        Ok(at) => (at, None),
        Err(e) => (path.to_path_buf(), Some(e)),
    };
    let text = read_playground(&at);
    if text.as_deref().is_some_and(as_written) {
        fs_err::remove_file(&at).map_err(|e| (at.clone(), e))?;
        crate::fsio::sync_dir(&crate::fsio::parent(&at)).map_err(|e| (at.clone(), e))?;
        return Ok(PutAway::Removed);
    }
    let mut why = match text.as_deref() {
        None => format!(
            "it is no longer a plain text file (a link or a device stands in its place, or it grew past {} MiB)",
            MAX_FILE >> 20
        ),
        Some(text) if has_digest(text) => "it was changed after `stamp playground new` wrote it".to_string(),
        Some(_) => {
            "it carries no digest of what `stamp playground new` wrote (an older Stamp's, or changed)".to_string()
        }
    };
    if let Some(e) = left {
        why.push_str(&format!("; left in place, as it cannot be moved into `{KEPT_DIR}`: {e}"));
    }
    Ok(PutAway::Kept { at, why })
}

/// A playground file larger than this was not written by `playground new`.
const MAX_FILE: u64 = 16 << 20;

/// Whether `text` is a playground file as `playground new` wrote it: its header, then the
/// digest of everything after the digest's line.
fn as_written(text: &str) -> bool {
    let Some((digest, below)) = digest_line(text) else { return false };
    digest == crate::cache::content_digest(below.as_bytes())
}

/// Whether `text` has a playground header and a digest line under it, whatever else.
fn has_digest(text: &str) -> bool {
    digest_line(text).is_some()
}

/// The digest a playground file's second line gives, and the text below that line.
fn digest_line(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(HEADER)?.strip_prefix('\n')?;
    let (line, below) = rest.split_once('\n')?;
    Some((line.strip_prefix(WRITTEN_AS)?, below))
}

fn is_playground_file(path: &Path) -> bool {
    read_playground(path).is_some_and(|text| text.starts_with(HEADER))
}

/// The text of a playground's file: `None` unless it is a plain file (not a link, a FIFO or a
/// device) of at most [`MAX_FILE`] bytes of text.
fn read_playground(path: &Path) -> Option<String> {
    crate::fsio::plain_text(path, MAX_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playground_files_read_back_as_written() {
        let config =
            json!({"archetype": "x", "owner": "ana\nhooks: {post_deploy: [{name: pwn, run: id}]}\n#", "ttl": "8h"});
        let text = playground_file("for ana\nhooks: {}\n# until", &config).unwrap();
        let read = crate::config::yaml::parse("p.yaml", &text).unwrap().value;
        assert_eq!(read, config);
        assert!(read.get("hooks").is_none(), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with('#')).count(), 3, "{text}");
        assert!(as_written(&text), "{text}");
    }

    /// Only a file exactly as `playground new` wrote it is as written: any edit, below the
    /// digest or of it, and a file without one (an older Stamp's), is not.
    #[test]
    fn a_playground_file_is_as_written_only_unchanged() {
        let text = playground_file("for ana", &json!({"archetype": "x", "owner": "ana"})).unwrap();
        assert!(as_written(&text));
        for edited in [
            format!("{text}# a note\n"),
            text.replace("owner: ana", "owner: bob"),
            text.replacen(WRITTEN_AS, "# ", 1),
            edited_header(&text),
            format!("{HEADER}\n# for ana\narchetype: x\nowner: ana\n"),
            String::new(),
        ] {
            assert!(!as_written(&edited), "{edited}");
        }
        assert!(has_digest(&format!("{text}# a note\n")) && !has_digest(&edited_header(&text)));
        // The comment line is covered too.
        assert!(!as_written(&text.replacen("# for ana", "# for ana (note)", 1)));
    }

    #[test]
    fn a_destroyed_playgrounds_file_goes_only_into_a_folder_of_its_own() {
        let root = tempfile::tempdir().unwrap();
        let (root, accounts) = (root.path(), root.path().join("accounts"));
        fs_err::create_dir_all(&accounts).unwrap();
        fs_err::create_dir_all(root.join(".stamp")).unwrap();
        let text = playground_file("for ana", &json!({"archetype": "x", "owner": "ana"})).unwrap();
        let file = |name: &str, content: &str| {
            let path = accounts.join(name);
            fs_err::write(&path, content).unwrap();
            path
        };
        let files_in = |dir: &Path| fs_err::read_dir(dir).unwrap().count();
        // `.stamp/reaped` is a link elsewhere: nothing goes there, each file is judged in place.
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.join(KEPT_DIR)).unwrap();
        let unchanged = file("a.yaml", &text);
        assert!(matches!(put_away(root, &unchanged), Ok(PutAway::Removed)));
        assert!(!unchanged.exists());
        let edited = file("b.yaml", &format!("{text}# a note\n"));
        match put_away(root, &edited) {
            Ok(PutAway::Kept { at, why }) => assert!(at == edited && why.contains("left in place"), "{why}"),
            _ => panic!("an edited file is kept"),
        }
        assert!(edited.exists());
        assert_eq!(files_in(elsewhere.path()), 0);
        // A folder of its own: each file is moved in, then removed if as written, else kept there.
        fs_err::remove_file(root.join(KEPT_DIR)).unwrap();
        let unchanged = file("c.yaml", &text);
        assert!(matches!(put_away(root, &unchanged), Ok(PutAway::Removed)));
        assert!(!unchanged.exists());
        let older = file("d.yaml", &format!("{HEADER}\n# for ana\narchetype: x\n"));
        match put_away(root, &older) {
            Ok(PutAway::Kept { at, why }) => {
                assert_eq!(at, root.join(KEPT_DIR).join("d.yaml"));
                assert!(why.contains("no digest"), "{why}");
            }
            _ => panic!("a file without a digest is kept"),
        }
        assert!(!older.exists());
        assert_eq!(files_in(&root.join(KEPT_DIR)), 1);
        // Only a plain file is a playground's: a FIFO in its place (reading it would wait), or a
        // link, is not read, so never put away.
        let fifo = accounts.join("e.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(!is_playground_file(&fifo));
        let link = accounts.join("f.yaml");
        std::os::unix::fs::symlink(file("g.yaml", &text), &link).unwrap();
        assert!(!is_playground_file(&link) && is_playground_file(&accounts.join("g.yaml")));
        // A link put in the file's place once the playground was found is moved aside, never
        // followed: kept, saying why, and what it leads to is left as it is.
        match put_away(root, &link) {
            Ok(PutAway::Kept { at, why }) => {
                assert_eq!(at, root.join(KEPT_DIR).join("f.yaml"));
                assert!(why.contains("no longer a plain text file"), "{why}");
            }
            _ => panic!("a link is kept"),
        }
        assert_eq!(fs_err::read_to_string(accounts.join("g.yaml")).unwrap(), text);
    }

    fn edited_header(text: &str) -> String {
        text.replacen(HEADER, "# x", 1)
    }

    #[test]
    fn allocation_skips_networks_in_use() {
        let pool: ipnet::Ipv4Net = "10.200.0.0/22".parse().unwrap();
        assert_eq!(allocate(pool, 24, std::iter::empty()).unwrap().to_string(), "10.200.0.0/24");
        // A wider network in use covers several candidates; an unparsable value takes none.
        let used = ["10.200.0.0/23", "not a network", "10.200.3.0/24"];
        assert_eq!(allocate(pool, 24, used.into_iter()).unwrap().to_string(), "10.200.2.0/24");
        let full = ["10.200.0.0/22"];
        let err = allocate(pool, 24, full.into_iter()).unwrap_err();
        assert!(err.contains("no free /24"), "{err}");
        let err = allocate(pool, 16, std::iter::empty()).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
    }
}
