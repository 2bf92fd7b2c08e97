//! `stamp render`: write each account's rendered root module to `build/<account>/`.

use std::path::{Path, PathBuf};

use std::sync::Mutex;

use super::Workspace;
use super::check::{self, Checked};
use crate::config::Account;
use crate::config::catalog::Entry;
use crate::diagnostics::{self, Diagnostic, Location, Sources};
use crate::render::Tree;
use crate::render::tree::Batch;

#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    pub accounts: Vec<String>,
    /// Render every account.
    pub all: bool,
    /// Output folder: with one account, the root module itself; with several, the parent of
    /// one folder per account. Default: `build/` in the project.
    pub out: Option<PathBuf>,
    pub version: Option<String>,
}

/// One written root module.
#[derive(Debug, Clone)]
pub struct Written {
    pub account: String,
    pub dir: PathBuf,
    pub files: usize,
    /// It was already there, byte for byte, so it was not written again.
    pub unchanged: bool,
}

pub struct RenderReport {
    pub written: Vec<Written>,
    /// Trees of accounts that no longer exist, removed by `--all`.
    pub removed: Vec<PathBuf>,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
}

pub fn render(workspace: &Workspace, options: &RenderOptions) -> RenderReport {
    if options.accounts.is_empty() && !options.all {
        return RenderReport {
            written: Vec::new(),
            removed: Vec::new(),
            diagnostics: Vec::new(),
            sources: Sources::default(),
        };
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let out = options.out.as_ref().map(|o| cwd.join(o));
    // Stamp's own folder holds the work folders plan and apply run Terraform in (each under
    // its account's lock, with what hooks left there), state, ledger and cache: a render
    // there would replace them. Checked where the trees go, the default `build/` too (a link
    // committed in its place); a link in place of one account's folder is refused when its
    // tree is written.
    let base = out.clone().unwrap_or_else(|| workspace.project.root.join("build"));
    let named = options
        .out
        .as_deref()
        .map_or(super::Named::Default("output folder", "build"), |out| super::Named::Given("--out", out));
    if let Err(problem) = super::outside_own_folder(&workspace.project, &base, named, super::Written::Into) {
        let d = Diagnostic::error("render.out", problem)
            .hint("render to a folder of your own: `stamp plan` and `stamp apply` render into `.stamp/work/` themselves, under the account's lock");
        return RenderReport {
            written: Vec::new(),
            removed: Vec::new(),
            diagnostics: vec![d],
            sources: Sources::default(),
        };
    }
    let single = options.accounts.len() == 1 && !options.all;
    let out_dir_named = |workspace: &Workspace, name: &str| match &out {
        Some(out) if single => out.clone(),
        Some(out) => out.join(name),
        None => workspace.project.root.join("build").join(name),
    };
    let out_dir_of = |workspace: &Workspace, account: &Account| out_dir_named(workspace, &account.name);
    let accounts = if options.all { Vec::new() } else { options.accounts.clone() };
    let written = Mutex::new(Vec::new());
    let done = |account: &str, dir: &Path, files: usize, unchanged: bool| {
        let dir = dir.to_path_buf();
        written.lock().expect("written lock").push(Written { account: account.to_string(), dir, files, unchanged });
    };
    // A tree already on disk as it would be written is left alone, so its files keep their
    // times (and tools watching them see no change).
    let memo = &workspace.project.memo;
    let shared = shared_folder(&workspace.project.root, &base);
    let marker_of = |account: &str| marker(&workspace.project.root, account, shared);
    let on_disk = |account: &str, dir: &Path, digest: &str| {
        let marker = marker_of(account);
        // The tree and its marker's text, as the cache remembers them.
        let remembered = crate::cache::Key::new("tree").field(digest).field(&marker).finish();
        let stats = Tree::stats_on_disk(dir)?;
        let files = stats.len().saturating_sub(1);
        if memo.tree_known(dir, &remembered, &stats) {
            return Some(files);
        }
        Tree::digest_on_disk(dir, &marker).filter(|(found, _)| found == digest)?;
        memo.tree_seen(dir, &remembered, &stats);
        Some(files)
    };
    let accept = |entry: &Entry, dir: &Path, digest: &str| match on_disk(entry.name(), dir, digest) {
        Some(files) => {
            done(entry.name(), dir, files, true);
            true
        }
        None => false,
    };
    // Each tree is staged on disk as soon as it is rendered, so memory stays flat however many
    // accounts; all are made durable and moved into place at the end.
    let batch = Batch::default();
    let write = |account: &Account, dir: &Path, tree: Tree| {
        let digest = tree.disk_digest();
        if let Some(files) = on_disk(&account.name, dir, &digest) {
            done(&account.name, dir, files, true);
            return Ok(None);
        }
        let marker = marker_of(&account.name);
        let tag =
            Staged { account: account.name.clone(), display: account.display.clone(), digest, files: tree.files.len() };
        tree.stage(dir, &marker, &batch, tag).map_err(|e| write_error(&account.name, &account.display, dir, &e))?;
        Ok(None)
    };
    let reuse = check::Reuse { out_dir: &out_dir_named, accept: &accept };
    let Checked { mut diagnostics, .. } = match check::validate_and_render(
        workspace,
        check::Selection::of(&accounts),
        check::VersionSpec::Release(options.version.as_deref()),
        &out_dir_of,
        &write,
        Some(&reuse),
    ) {
        Ok(checked) => checked,
        Err(report) => {
            return RenderReport {
                written: Vec::new(),
                removed: Vec::new(),
                diagnostics: report.diagnostics,
                sources: report.sources,
            };
        }
    };
    // The staged trees, made durable together and moved into place.
    let committed = batch.commit();
    for kept in committed.kept {
        diagnostics.push(Diagnostic::warning("render.keep", kept));
    }
    for (staged, dir, result) in committed.trees {
        match result {
            Ok(stats) => {
                if let Some(stats) = stats {
                    let remembered =
                        crate::cache::Key::new("tree").field(&staged.digest).field(marker_of(&staged.account)).finish();
                    memo.tree_seen(&dir, &remembered, &stats);
                }
                done(&staged.account, &dir, staged.files, false);
            }
            Err(crate::render::tree::WriteError::Foreign(_, foreign)) => {
                diagnostics.push(foreign_error(&staged.account, &staged.display, &dir, &foreign));
            }
            Err(e) => diagnostics.push(write_error(&staged.account, &staged.display, &dir, &e)),
        }
    }
    let project = &workspace.project;
    let mut written = written.into_inner().expect("written lock");
    // What a killed run left beside the trees (written now or already there).
    let folders: std::collections::BTreeSet<&Path> = written.iter().filter_map(|w| w.dir.parent()).collect();
    for folder in folders {
        let kept = crate::render::tree::sweep_staging(folder);
        diagnostics.extend(kept.into_iter().map(|kept| Diagnostic::warning("render.keep", kept)));
    }
    written.sort_by(|a, b| a.account.cmp(&b.account));
    let parent = out.unwrap_or_else(|| project.root.join("build"));
    let removed = if options.all { remove_gone(workspace, &parent, shared, &mut diagnostics) } else { Vec::new() };
    diagnostics::sort(&mut diagnostics);
    RenderReport { written, removed, diagnostics, sources: project.sources.clone() }
}

/// A tree staged for writing, as [`render`] tags it.
struct Staged {
    account: String,
    display: String,
    digest: String,
    files: usize,
}

fn write_error(account: &str, display: &str, dir: &Path, e: &crate::render::tree::WriteError) -> Diagnostic {
    Diagnostic::error("render.write", format!("cannot write `{}`: {e}", dir.display()))
        .at(Location::file_only(display))
        .for_account(account)
}

/// A tree folder holding files Stamp did not write, which writing the tree would remove.
fn foreign_error(account: &str, display: &str, dir: &Path, foreign: &[String]) -> Diagnostic {
    const SHOWN: usize = 5;
    let mut listed: Vec<String> =
        foreign.iter().take(SHOWN).map(|f| format!("`{}`", crate::text::one_line(f))).collect();
    if foreign.len() > SHOWN {
        listed.push(format!("and {} more", foreign.len() - SHOWN));
    }
    Diagnostic::error(
        "render.foreign",
        format!(
            "`{}` holds what Stamp did not write, which rendering would remove: {}",
            dir.display(),
            listed.join(", ")
        ),
    )
    .at(Location::file_only(display))
    .hint("move those files elsewhere (or remove the folder), then render again; Terraform's `.terraform` is kept")
    .for_account(account)
}

/// The text of the marker in a tree `stamp render` wrote for `account` of the project in
/// `root`. It names the account, so `--all` removes only trees written for an account that is
/// gone; in a folder outside the project (`shared`), which other projects may render into
/// too, it names the project as well (a digest of its folder's path), so `--all` removes only
/// this project's. Inside the project (`build/`) it does not: the folder is the project's, and
/// its trees are the same in every checkout of one commit.
fn marker(root: &Path, account: &str, shared: bool) -> String {
    let mut text = format!("rendered by stamp {}\naccount: {account}\n", env!("CARGO_PKG_VERSION"));
    if shared {
        let project = crate::cache::content_digest(root.as_os_str().as_encoded_bytes());
        text.push_str(&format!("project: {}\n", &project[..16]));
    }
    text
}

/// Whether the trees under `base` lie outside the project in `root` (where other projects may
/// render too), by where `base` leads on disk.
fn shared_folder(root: &Path, base: &Path) -> bool {
    !crate::fsio::resolved(base).starts_with(crate::fsio::resolved(root))
}

/// Removes the trees in `parent` that Stamp wrote for accounts that no longer exist: a
/// folder whose marker says it was written for the account of its name, when no account has
/// that name and no account file (not even one that does not load) is named like it. Nothing
/// is removed when an account file did not load (it may be the one), and a tree holding
/// anything Stamp did not write (Terraform's `.terraform`, a file its marker does not list or
/// that changed after the render) is kept, with a warning. Outside the project (`shared`),
/// only trees whose marker names this project are removed.
fn remove_gone(workspace: &Workspace, parent: &Path, shared: bool, diagnostics: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let project = &workspace.project;
    if workspace.diagnostics.iter().any(|d| d.severity == diagnostics::Severity::Error) {
        return Vec::new();
    }
    let mut known: std::collections::BTreeSet<String> = project.catalog.iter().map(|e| e.name().to_string()).collect();
    let accounts_dir = project.root.join(&project.file.accounts);
    known.extend(
        walkdir::WalkDir::new(&accounts_dir)
            .into_iter()
            .filter_map(Result::ok)
            .filter_map(|e| e.path().file_stem().and_then(|s| s.to_str()).map(str::to_string)),
    );
    let Ok(entries) = fs_err::read_dir(parent) else { return Vec::new() };
    let mut gone: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path())))
        .filter(|(name, _)| !name.starts_with('.') && !known.contains(name))
        .collect();
    gone.sort();
    let mut removed = Vec::new();
    for (name, dir) in gone {
        // Written for the account of its name, by a Stamp of any version: the lines after the
        // first.
        let Some(text) = crate::render::tree::marker_text(&dir).filter(|t| t.starts_with("rendered by stamp ")) else {
            continue;
        };
        // This project's line, as a tree rendered outside it carries.
        let expected = marker(&project.root, &name, true);
        let (mut found, mut wanted) = (text.lines().skip(1), expected.lines().skip(1));
        if found.next() != wanted.next() {
            continue;
        }
        let (project_line, ours) = (found.next().filter(|line| line.starts_with("project: ")), wanted.next());
        // A tree naming another project is that project's, wherever it lies (one rendered
        // into this project's folder from outside it too). One naming none is this project's
        // in its own folder; outside it, an older Stamp's, maybe another project's.
        if project_line.is_some_and(|line| Some(line) != ours) {
            continue;
        }
        if shared && project_line.is_none() {
            diagnostics.push(Diagnostic::warning(
                "render.keep",
                format!(
                    "kept `{}`: its account no longer exists, but an older Stamp rendered it without naming its project, which may be another (remove it by hand)",
                    dir.display()
                ),
            ));
            continue;
        }
        // Judged as a render judges a tree it replaces (by the files its marker lists), with
        // no new tree to take anything's place; Terraform's `.terraform` is kept too.
        let foreign = dir.join(".terraform").symlink_metadata().is_ok()
            || !crate::render::tree::foreign_in(&dir, &std::collections::BTreeSet::new()).is_empty();
        if foreign {
            diagnostics.push(Diagnostic::warning(
                "render.keep",
                format!(
                    "kept `{}`: its account no longer exists, but it holds files Stamp did not write (remove it by hand)",
                    dir.display()
                ),
            ));
            continue;
        }
        match fs_err::remove_dir_all(&dir) {
            Ok(()) => removed.push(dir),
            Err(e) => diagnostics.push(Diagnostic::warning(
                "render.remove",
                format!("cannot remove `{}` (its account no longer exists): {e}", dir.display()),
            )),
        }
    }
    removed
}
