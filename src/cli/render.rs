//! `stamp render`.

use std::path::PathBuf;

use super::Output;
use super::exit::ExitStatus;
use crate::ops::Workspace;
use crate::ops::render::{RenderOptions, render};

/// Render accounts' Terraform root modules to disk.
///
/// Each account is validated, rendered and HCL-checked, then written to `build/<account>/`
/// (or `--out`) through a temporary folder, so a failed render never leaves a half-written
/// tree. The output is plain, `terraform fmt`-clean Terraform that runs without Stamp.
///
/// A tree already on disk byte for byte as it would be written is left untouched (its files
/// keep their times), and with `--all` the trees this project wrote for accounts that no longer
/// exist are removed (folders without Stamp's `.stamp-rendered` marker never are, nor, in an
/// `--out` outside the project, trees another project wrote). A tree's folder
/// keeps Terraform's `.terraform/`; one holding files you added is not replaced (they are
/// named). With the build cache (`.stamp/cache/`), unchanged accounts are not
/// rendered again.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp render production\n  stamp render production --out /tmp/production\n  stamp render --all\n  stamp render --all --out dist/rendered --version 1.4.0"
)]
pub struct Args {
    /// Accounts to render (names or YAML files).
    #[arg(value_name = "ACCOUNT")]
    pub(super) accounts: Vec<String>,
    /// Render every account (in parallel).
    #[arg(long, conflicts_with = "accounts")]
    all: bool,
    /// Where to write: the root module for one account, else one folder per account in it
    /// (never inside Stamp's own folders: `.stamp/`, the ledger, state and snapshots).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Release version to stamp (default: the development version 0.0.YYDDD.SSSSS).
    #[arg(long = "version", value_name = "VERSION", env = "STAMP_VERSION")]
    release: Option<String>,
}

pub fn run(workspace: &Workspace, args: &Args, out: &Output) -> ExitStatus {
    if args.accounts.is_empty() && !args.all {
        out.error("name the accounts to render, or pass `--all`\n\nUsage: stamp render [OPTIONS] <ACCOUNT>...\n       stamp render [OPTIONS] --all");
        return ExitStatus::Usage;
    }
    let options = RenderOptions {
        accounts: args.accounts.clone(),
        all: args.all,
        out: args.out.clone(),
        version: args.release.clone(),
    };
    let report = render(workspace, &options);
    out.diagnostics(&report.diagnostics, &report.sources);
    for written in &report.written {
        let note = if written.unchanged { ", unchanged" } else { "" };
        out.detail(&format!(
            "rendered {} ({} files{note}) -> {}",
            written.account,
            written.files,
            written.dir.display()
        ));
    }
    for removed in &report.removed {
        out.status(&format!("removed `{}`: its account no longer exists", removed.display()));
    }
    let n = report.written.len();
    if n > 0 {
        let place = if n == 1 {
            format!("`{}`", report.written[0].dir.display())
        } else {
            let parent = report.written[0].dir.parent().map(|p| p.display().to_string()).unwrap_or_default();
            format!("`{parent}/`")
        };
        out.status(&format!("rendered {n} account{} to {place}", if n == 1 { "" } else { "s" }));
    }
    let failed = report.diagnostics.iter().any(|d| d.severity == crate::diagnostics::Severity::Error);
    ExitStatus::failed_if(failed)
}
