//! `stamp build` and `stamp verify`.

use std::path::PathBuf;

use super::Output;
use super::exit::ExitStatus;
use crate::ops::build::{BuildOptions, build, verify};
use crate::ops::{Named, Workspace, Written};
use crate::report::artifact::{built_text, verified_text};

/// Build versioned, reproducible artifacts: `dist/<account>-<version>.tar.gz` with the rendered
/// root module, the effective config (sensitive values redacted) and a manifest of digests.
///
/// The version comes from `--version`, else the project's `VERSION` file, else the development
/// version. Building the same inputs twice gives byte-identical archives. Every selected
/// account is checked first; the artifacts appear in the output folder only once all of them
/// built, and with `--tag` a tag that exists already is refused before anything is built.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp build production --version 1.4.0\n  stamp build --all --out dist/\n  stamp build production --version 1.4.0 --tag   # also tags the commit production/1.4.0"
)]
pub struct BuildArgs {
    /// Accounts to build (names or YAML files).
    #[arg(value_name = "ACCOUNT")]
    pub(super) accounts: Vec<String>,
    /// Build every account.
    #[arg(long, conflicts_with = "accounts")]
    all: bool,
    /// Release version (default: the `VERSION` file, else the development version).
    #[arg(long = "version", value_name = "VERSION", env = "STAMP_VERSION")]
    release: Option<String>,
    /// Output folder (default: `dist/` in the project).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Create a git tag `<account>/<version>` for each artifact.
    #[arg(long)]
    tag: bool,
    /// Plan each account and add the saved plan and its JSON (`plan/`) to the artifact.
    #[arg(long)]
    plan: bool,
    /// The Terraform (or `OpenTofu`) binary for `--plan`. Default: `terraform`, then `tofu`, on PATH.
    #[arg(long, value_name = "PATH", env = "STAMP_TERRAFORM")]
    terraform: Option<PathBuf>,
}

impl BuildArgs {
    /// The accounts to load whole: the named ones (with `--all`, each account is read from
    /// the catalog as its turn comes).
    pub(super) fn loads_only(&self) -> &[String] {
        if self.all { &[] } else { &self.accounts }
    }
}

pub fn build_command(workspace: &Workspace, args: &BuildArgs, out: &Output) -> ExitStatus {
    // Artifacts are staged and written into the folder, the default `dist/` too.
    let dist = args.out.clone().unwrap_or_else(|| workspace.project.root.join("dist"));
    let named = args.out.as_deref().map_or(Named::Default("output folder", "dist"), |out| Named::Given("--out", out));
    if let Err(problem) = crate::ops::outside_own_folder(&workspace.project, &dist, named, Written::Into) {
        out.error(&format!("{problem}: write the artifacts elsewhere"));
        return ExitStatus::Failure;
    }
    if args.accounts.is_empty() && !args.all {
        out.error("name the accounts to build, or pass `--all`");
        return ExitStatus::Usage;
    }
    let options = BuildOptions {
        accounts: args.accounts.clone(),
        all: args.all,
        version: args.release.clone(),
        out: args.out.clone(),
        tag: args.tag,
        plan: args.plan,
        terraform: args.terraform.clone(),
    };
    match build(workspace, &options) {
        Ok(built) => {
            for tag in built.iter().filter_map(|b| b.tag.as_ref()) {
                out.status(&format!("tagged `{tag}`"));
            }
            out.report(&built_text(&built));
            ExitStatus::Success
        }
        Err(error) => super::show_error(out, &error),
    }
}

/// Check an artifact: every file's digest, the overall digest, and that no entry is unsafe
/// (absolute paths, `..`, links).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  stamp verify dist/production-1.4.0.tar.gz")]
pub struct VerifyArgs {
    artifact: PathBuf,
}

pub fn verify_command(args: &VerifyArgs, out: &Output) -> ExitStatus {
    match verify(&args.artifact) {
        Ok(manifest) => {
            out.report(&verified_text(&args.artifact, &manifest));
            ExitStatus::Success
        }
        Err(error) => super::show_error(out, &error),
    }
}
