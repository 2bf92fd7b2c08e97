//! The command line: parses arguments, calls an operation, prints its report. Reports go to
//! stdout; diagnostics and status to stderr.
//!
//! Exit codes: 0 success, 1 the command found problems (invalid config, failed render),
//! 2 usage error.

mod artifact;
mod check;
mod compare;
mod data;
mod deploy;
mod list;
mod output;
mod progress;
mod render;
mod schema;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use output::Output;

const ABOUT: &str = "Stamp: many production-like environments from one set of templated Terraform.\n\n\
Stamp validates each account's YAML config against its archetype's JSON Schema and renders the\n\
account's plain Terraform root module from its blueprint.";

const EXAMPLES: &str = "Examples:\n  stamp list\n  stamp check\n  stamp check fixtures/invalid/bad-cidr.yaml\n  stamp render production --out /tmp/production\n  stamp render --all\n  stamp plan local-staging\n  stamp apply local-staging --auto-approve\n  stamp destroy local-staging --auto-approve\n  stamp build production --version 1.4.0\n  stamp diff staging production --ignore-account-values\n  stamp affected --since origin/main\n  stamp drift --format html --out drift.html\n  stamp clone local-prod local-qa --data\n  stamp migrate local-prod --to-version 1.5.0\n  stamp playground new ana-try --from local-staging --owner ana --ttl 8h\n  stamp reap --dry-run\n  stamp schema service-platform > schema.json";

#[derive(Debug, Parser)]
#[command(name = "stamp", version, about = ABOUT, after_help = EXAMPLES, max_term_width = 100)]
pub struct Cli {
    /// Project folder (holding `stamp.yaml`). Default: the nearest `stamp.yaml` upwards.
    #[arg(long, global = true, value_name = "DIR", env = "STAMP_PROJECT")]
    pub project: Option<PathBuf>,
    /// Never colour output (also: the `NO_COLOR` environment variable).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Print only errors and the command's report.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more about what is being done.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Check(check::Args),
    Render(render::Args),
    Plan(deploy::PlanArgs),
    Apply(deploy::ApplyArgs),
    Destroy(deploy::DestroyArgs),
    Output(deploy::OutputArgs),
    Promote(deploy::PromoteArgs),
    Drift(deploy::DriftArgs),
    Clone(data::CloneArgs),
    Sync(data::SyncArgs),
    Migrate(data::MigrateArgs),
    Playground(data::PlaygroundArgs),
    Reap(data::ReapArgs),
    Build(artifact::BuildArgs),
    Verify(artifact::VerifyArgs),
    Diff(compare::DiffArgs),
    Affected(compare::AffectedArgs),
    List(list::Args),
    Schema(schema::Args),
    Doctor(deploy::DoctorArgs),
}

/// `--terraform PATH` (or `STAMP_TERRAFORM`): which Terraform every command that runs it uses.
#[derive(Debug, clap::Args)]
pub struct TerraformArg {
    /// The Terraform (or `OpenTofu`) binary. Default: `terraform`, then `tofu`, on PATH.
    #[arg(id = "terraform", long = "terraform", value_name = "PATH", env = "STAMP_TERRAFORM")]
    path: Option<PathBuf>,
}

impl TerraformArg {
    pub fn path(&self) -> Option<PathBuf> {
        self.path.clone()
    }
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Runs Stamp with these arguments (the first is the program name).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let out = Output::new(&cli);
    match &cli.command {
        Command::Doctor(args) => return deploy::doctor(args, &out),
        Command::Verify(args) => return artifact::verify_command(args, &out),
        _ => {}
    }
    let root = match project_root(cli.project.as_deref()) {
        Ok(root) => root,
        Err(message) => {
            out.error(&message);
            return ExitCode::from(2);
        }
    };
    match &cli.command {
        Command::Check(args) => check::run(&root, args, &out),
        Command::Render(args) => render::run(&root, args, &out),
        Command::List(args) => list::run(&root, args, &out),
        Command::Schema(args) => schema::run(&root, args, &out),
        Command::Plan(args) => deploy::plan(&root, args, &out),
        Command::Apply(args) => deploy::apply(&root, args, &out),
        Command::Destroy(args) => deploy::destroy(&root, args, &out),
        Command::Output(args) => deploy::output(&root, args, &out),
        Command::Promote(args) => deploy::promote(&root, args, &out),
        Command::Drift(args) => deploy::drift(&root, args, &out),
        Command::Clone(args) => data::clone(&root, args, &out),
        Command::Sync(args) => data::sync(&root, args, &out),
        Command::Migrate(args) => data::migrate(&root, args, &out),
        Command::Playground(args) => data::playground(&root, args, &out),
        Command::Reap(args) => data::reap(&root, args, &out),
        Command::Diff(args) => compare::diff_command(&root, args, &out),
        Command::Affected(args) => compare::affected_command(&root, args, &out),
        Command::Build(args) => artifact::build_command(&root, args, &out),
        Command::Doctor(_) | Command::Verify(_) => unreachable!("handled above"),
    }
}

fn project_root(explicit: Option<&std::path::Path>) -> Result<PathBuf, String> {
    if let Some(dir) = explicit {
        return if dir.join(crate::config::project::PROJECT_FILE).is_file() {
            Ok(dir.to_path_buf())
        } else {
            Err(format!("no `stamp.yaml` in `{}`", dir.display()))
        };
    }
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read the current folder: {e}"))?;
    crate::config::Project::discover(&cwd).ok_or_else(|| {
        format!(
            "no `stamp.yaml` found in `{}` or any folder above it\n  = hint: run Stamp inside a project, or pass `--project DIR`",
            cwd.display()
        )
    })
}
