//! `stamp diff` and `stamp affected`: comparing rendered accounts across accounts, revisions
//! and artifacts.

use super::Output;
use super::exit::ExitStatus;
use crate::ops::Workspace;
use crate::ops::affected::affected;
use crate::ops::diff::{DiffOptions, diff};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Text,
    Markdown,
    Json,
}

/// Compare two rendered accounts: version, effective config (by key path) and the rendered
/// Terraform, with sensitive values redacted.
///
/// Each side is an account (rendered from the working tree), `ACCOUNT@REV` (rendered from a git
/// revision of the project) or an artifact file (`.tar.gz`). Exit code 0 when identical, 1 when
/// different, 2 on error.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp diff staging production --ignore-account-values\n  stamp diff production@main production\n  stamp diff dist/production-1.2.0.tar.gz production\n  stamp diff qa production --format markdown"
)]
pub struct DiffArgs {
    /// The first side: ACCOUNT, ACCOUNT@REV or an artifact.
    a: String,
    /// The second side.
    b: String,
    /// Normalise values expected to differ per account (name, account id, environment, network
    /// and addresses in it, DNS zone, owner) so the real differences stand out.
    #[arg(long)]
    ignore_account_values: bool,
    #[arg(long, value_enum, default_value = "text")]
    format: DiffFormat,
    /// Release version to stamp on working-tree sides.
    #[arg(long = "version", value_name = "VERSION", env = "STAMP_VERSION")]
    release: Option<String>,
}

impl DiffArgs {
    /// The accounts the sides name (`ACCOUNT` and `ACCOUNT@REV`; an artifact names none here).
    pub(super) fn accounts(&self) -> Vec<String> {
        [&self.a, &self.b]
            .into_iter()
            .map(|side| side.split_once('@').map_or(side.as_str(), |(a, _)| a).to_string())
            .collect()
    }
}

pub fn diff_command(workspace: &Workspace, args: &DiffArgs, out: &Output) -> ExitStatus {
    let options = DiffOptions {
        a: args.a.clone(),
        b: args.b.clone(),
        ignore_account_values: args.ignore_account_values,
        version: args.release.clone(),
    };
    match diff(workspace, &options) {
        Ok(found) => {
            out.report(&match args.format {
                DiffFormat::Text => crate::report::diff::text(&found),
                DiffFormat::Markdown => crate::report::diff::markdown(&found),
                DiffFormat::Json => crate::report::diff::json(&found),
            });
            if found.identical() { ExitStatus::Success } else { ExitStatus::Found }
        }
        Err(error) => super::show_error(out, &error),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AffectedFormat {
    Text,
    Json,
    GithubMatrix,
}

/// List the accounts whose rendered output differs between a git revision and the working
/// tree (a change to a blueprint, an archetype, `stamp.yaml` or an account file), so CI plans
/// only those.
///
/// The revision is read from git's objects, not checked out: only the files that differ from
/// the working tree are extracted, accounts whose inputs are equal on both sides are not
/// rendered, and the others' digests come from the build cache when it has them, so a
/// repeated run in CI (with `.stamp/cache/` kept between runs) renders nothing.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp affected --since origin/main\n  stamp affected --since HEAD~1 --format github-matrix\n  stamp plan --affected-since origin/main --format markdown"
)]
pub struct AffectedArgs {
    /// The git revision to compare with.
    #[arg(long, value_name = "REV")]
    since: String,
    #[arg(long, value_enum, default_value = "text")]
    format: AffectedFormat,
}

pub fn affected_command(workspace: &Workspace, args: &AffectedArgs, out: &Output) -> ExitStatus {
    match affected(workspace, &args.since) {
        Ok(found) => {
            out.report(&match args.format {
                AffectedFormat::Text => found.text(),
                AffectedFormat::Json => found.json(),
                AffectedFormat::GithubMatrix => found.github_matrix(),
            });
            if found.accounts.is_empty() {
                out.status(&format!("no account is affected since `{}`", args.since));
            }
            ExitStatus::Success
        }
        Err(error) => super::show_error(out, &error),
    }
}
