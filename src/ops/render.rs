//! `stamp render`: write each account's rendered root module to `build/<account>/`.

use std::path::{Path, PathBuf};

use std::sync::Mutex;

use super::Workspace;
use super::check::{self, Checked};
use crate::config::Account;
use crate::diagnostics::{self, Diagnostic, Location, Sources};
use crate::render::Tree;

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
}

pub struct RenderReport {
    pub written: Vec<Written>,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
}

pub fn render(workspace: &Workspace, options: &RenderOptions) -> RenderReport {
    if options.accounts.is_empty() && !options.all {
        return RenderReport { written: Vec::new(), diagnostics: Vec::new(), sources: Sources::default() };
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let out = options.out.as_ref().map(|o| cwd.join(o));
    let single = options.accounts.len() == 1 && !options.all;
    let out_dir_of = |workspace: &Workspace, account: &Account| match &out {
        Some(out) if single => out.clone(),
        Some(out) => out.join(&account.name),
        None => check::default_out_dir(workspace, account),
    };
    let accounts = if options.all { Vec::new() } else { options.accounts.clone() };
    let marker = format!("rendered by stamp {}\n", env!("CARGO_PKG_VERSION"));
    let written = Mutex::new(Vec::new());
    // Each tree is written as soon as it is rendered, so memory stays flat however many accounts.
    let write = |account: &Account, dir: &Path, tree: Tree| {
        tree.write_atomically(dir, &marker).map_err(|e| {
            Diagnostic::error("render.write", format!("cannot write `{}`: {e}", dir.display()))
                .at(Location::file_only(&account.display))
                .for_account(&account.name)
        })?;
        let files = tree.files.len();
        written.lock().expect("written lock").push(Written {
            account: account.name.clone(),
            dir: dir.to_path_buf(),
            files,
        });
        Ok(None)
    };
    let Checked { mut diagnostics, .. } = match check::validate_and_render(
        workspace,
        check::Selection::of(&accounts),
        check::VersionSpec::Release(options.version.as_deref()),
        &out_dir_of,
        &write,
    ) {
        Ok(checked) => checked,
        Err(report) => {
            return RenderReport { written: Vec::new(), diagnostics: report.diagnostics, sources: report.sources };
        }
    };
    let project = &workspace.project;
    let mut written = written.into_inner().expect("written lock");
    written.sort_by(|a, b| a.account.cmp(&b.account));
    diagnostics::sort(&mut diagnostics);
    RenderReport { written, diagnostics, sources: project.sources.clone() }
}
