//! The command line: parses arguments, loads the project once, calls an operation with it,
//! prints its report. Reports go to stdout; diagnostics and status to stderr. Exit codes: see
//! [`exit`].

mod artifact;
mod check;
mod compare;
mod data;
mod deploy;
pub mod exit;
mod init;
mod list;
mod output;
mod progress;
mod render;
mod schema;
mod store;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use self::exit::ExitStatus;
use crate::ops::Workspace;
use crate::ops::error::OpError;
pub use output::Output;

const ABOUT: &str = "Stamp: many production-like environments from one set of templated Terraform.\n\n\
Stamp validates each account's YAML config against its archetype's JSON Schema and renders the\n\
account's plain Terraform root module from its blueprint.";

const EXAMPLES: &str = "Examples:\n  stamp init shop\n  stamp list\n  stamp check\n  stamp check fixtures/invalid/bad-cidr.yaml\n  stamp render production --out /tmp/production\n  stamp render --all\n  stamp plan local-staging\n  stamp apply local-staging --auto-approve\n  stamp destroy local-staging --auto-approve\n  stamp build production --version 1.4.0\n  stamp diff staging production --ignore-account-values\n  stamp affected --since origin/main\n  stamp drift --format html --out drift.html\n  stamp clone local-prod local-qa --data\n  stamp migrate local-prod --to-version 1.5.0\n  stamp playground new ana-try --from local-staging --owner ana --ttl 8h\n  stamp reap --dry-run\n  stamp history local-prod\n  stamp store import\n  stamp schema service-platform > schema.json\n\nExit codes: 0 success, 1 failure, 2 usage error; `plan`: 0 no changes, 2 changes, 1 any error;\n`diff`: 0 identical, 1 different, 2 any error.";

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
    /// Do not read or write the build cache in `.stamp/cache/` (also: `STAMP_NO_CACHE=1`). The
    /// output is the same either way; only the time differs. The cache is bound to a secret key:
    /// `STAMP_CACHE_KEY` if set (share it to share a cache), else `.stamp/cache-key`.
    #[arg(long, global = true)]
    pub no_cache: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(init::Args),
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
    History(store::HistoryArgs),
    Store(store::StoreArgs),
    Doctor(deploy::DoctorArgs),
}

impl Command {
    /// The subcommand's name, as typed.
    fn name(&self) -> &'static str {
        match self {
            Self::Init(_) => "init",
            Self::Check(_) => "check",
            Self::Render(_) => "render",
            Self::Plan(_) => "plan",
            Self::Apply(_) => "apply",
            Self::Destroy(_) => "destroy",
            Self::Output(_) => "output",
            Self::Promote(_) => "promote",
            Self::Drift(_) => "drift",
            Self::Clone(_) => "clone",
            Self::Sync(_) => "sync",
            Self::Migrate(_) => "migrate",
            Self::Playground(_) => "playground",
            Self::Reap(_) => "reap",
            Self::Build(_) => "build",
            Self::Verify(_) => "verify",
            Self::Diff(_) => "diff",
            Self::Affected(_) => "affected",
            Self::List(_) => "list",
            Self::Schema(_) => "schema",
            Self::History(_) => "history",
            Self::Store(_) => "store",
            Self::Doctor(_) => "doctor",
        }
    }

    /// Whether the command renders the working tree as soon as the project is loaded, and so
    /// stamps in the version git gives then (`check` only with `--policies`: else only when a
    /// template reads the version). Commands that render later (a migration, a clone, after
    /// their data steps) ask git when they do.
    fn stamps_version(&self) -> bool {
        if let Self::Check(args) = self {
            return args.policies();
        }
        matches!(
            self,
            Self::Render(_)
                | Self::Plan(_)
                | Self::Apply(_)
                | Self::Destroy(_)
                | Self::Drift(_)
                | Self::Build(_)
                | Self::Promote(_)
                | Self::Diff(_)
        )
    }

    /// The accounts to load whole, for the commands that load only those they work on (the
    /// others are known from the catalog, mostly from the cache); `None`: every account.
    fn loads_only(&self) -> Option<Vec<String>> {
        match self {
            Self::Check(args) => Some(args.accounts.clone()),
            Self::Render(args) => Some(args.accounts.clone()),
            Self::Affected(_) | Self::List(_) | Self::Schema(_) | Self::History(_) | Self::Store(_) => Some(Vec::new()),
            Self::Diff(args) => Some(args.accounts()),
            // With `--all`, each account is read from the catalog as its turn comes (an
            // artifact's account when the artifact is opened).
            Self::Plan(_) | Self::Apply(_) | Self::Destroy(_) | Self::Output(_) => Some(self.account_args().to_vec()),
            Self::Build(args) => Some(args.loads_only().to_vec()),
            Self::Drift(args) => Some(args.loads_only()),
            // The accounts of the promotion's stages, and the ephemeral ones, are read whole
            // from the catalog when needed.
            Self::Promote(_) | Self::Reap(_) => Some(Vec::new()),
            Self::Clone(args) => Some(args.accounts()),
            Self::Sync(args) => Some(args.accounts()),
            Self::Migrate(args) => Some(vec![args.account().to_string()]),
            Self::Playground(args) => Some(args.loads_only()),
            Self::Init(_) | Self::Doctor(_) | Self::Verify(_) => None,
        }
    }

    /// The ACCOUNT arguments, which may name account files outside the accounts folder.
    fn account_args(&self) -> &[String] {
        match self {
            Self::Check(args) => &args.accounts,
            Self::Render(args) => &args.accounts,
            Self::Plan(args) => args.target.accounts(),
            Self::Apply(args) => args.target.accounts(),
            Self::Destroy(args) => args.target.accounts(),
            Self::Output(args) => args.target.accounts(),
            Self::Build(args) => &args.accounts,
            Self::Drift(args) => &args.accounts,
            _ => &[],
        }
    }
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
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                // `--help`, `--version`.
                return ExitCode::SUCCESS;
            }
            let convention = exit::subcommand_in(&args).map_or(exit::Convention::Standard, |n| exit::convention_of(&n));
            return ExitCode::from(ExitStatus::Usage.code(convention));
        }
    };
    let out = Output::new(&cli);
    let status = dispatch(&cli, &out);
    ExitCode::from(status.code(exit::convention_of(cli.command.name())))
}

/// Loads the project once and runs the command on it.
fn dispatch(cli: &Cli, out: &Output) -> ExitStatus {
    match &cli.command {
        // A new project: there is none to load yet.
        Command::Init(args) => return init::run(args, out),
        Command::Doctor(args) => return deploy::doctor(args, out),
        Command::Verify(args) => return artifact::verify_command(args, out),
        _ => {}
    }
    let root = match project_root(cli.project.as_deref()) {
        Ok(root) => root,
        Err(message) => {
            out.error(&message);
            return ExitStatus::Usage;
        }
    };
    if cli.command.stamps_version() {
        crate::version::prefetch(&root);
    }
    let cache = crate::cache::Cache::open(&root, !cli.no_cache);
    let (key, warning) = crate::cache::FileKey::of(&root, &cache);
    if let Some(warning) = warning {
        out.warning(&warning);
    }
    let memo = std::sync::Arc::new(crate::config::catalog::Memo::with_key(cache, key));
    let only = cli.command.loads_only();
    let prerender = match &cli.command {
        Command::Check(args) => args.prerender(),
        _ => None,
    };
    let options = crate::config::project::LoadOptions {
        scope: only.as_deref().map_or(crate::config::project::Scope::All, crate::config::project::Scope::Only),
        memo: std::sync::Arc::clone(&memo),
        files: None,
        prepare: prerender.as_ref().map(|p| p as &dyn crate::config::project::Prepare),
    };
    let status = run_command(cli, out, &root, options);
    // The project (which shares the cache) is gone: the cache is this run's alone to save.
    match std::sync::Arc::try_unwrap(memo).map(crate::config::catalog::Memo::save) {
        Ok(Ok(())) => {}
        Ok(Err(problem)) => out.detail(&problem),
        Err(_) => out.detail("the build cache is still in use: not saved"),
    }
    status
}

/// Loads the project as `options` say and runs the command on it.
fn run_command(
    cli: &Cli,
    out: &Output,
    root: &std::path::Path,
    options: crate::config::project::LoadOptions<'_>,
) -> ExitStatus {
    let mut workspace = match Workspace::load_with(root, options) {
        Ok(workspace) => workspace,
        Err(report) => {
            if let Command::Check(args) = &cli.command {
                return check::not_loaded(args, &report, out);
            }
            out.diagnostics(&report.diagnostics, &report.sources);
            return ExitStatus::Failure;
        }
    };
    workspace.add_files(cli.command.account_args());
    if let Command::Playground(args) = &cli.command {
        return data::playground(&mut workspace, args, out);
    }
    let status = run_loaded(cli, out, &workspace);
    // The catalog is plain data, freed by the process's exit (see `dispatch`).
    std::mem::forget(std::mem::take(&mut workspace.project.catalog));
    status
}

/// Runs the command on the loaded project.
fn run_loaded(cli: &Cli, out: &Output, workspace: &Workspace) -> ExitStatus {
    match &cli.command {
        Command::Check(args) => check::run(workspace, args, out),
        Command::Render(args) => render::run(workspace, args, out),
        Command::List(args) => list::run(workspace, args, out),
        Command::Schema(args) => schema::run(workspace, args, out),
        Command::Plan(args) => deploy::plan(workspace, args, out),
        Command::Apply(args) => deploy::apply(workspace, args, out),
        Command::Destroy(args) => deploy::destroy(workspace, args, out),
        Command::Output(args) => deploy::output(workspace, args, out),
        Command::Promote(args) => deploy::promote(workspace, args, out),
        Command::Drift(args) => deploy::drift(workspace, args, out),
        Command::Clone(args) => data::clone(workspace, args, out),
        Command::Sync(args) => data::sync(workspace, args, out),
        Command::Migrate(args) => data::migrate(workspace, args, out),
        Command::Reap(args) => data::reap(workspace, args, out),
        Command::Diff(args) => compare::diff_command(workspace, args, out),
        Command::Affected(args) => compare::affected_command(workspace, args, out),
        Command::Build(args) => artifact::build_command(workspace, args, out),
        Command::History(args) => store::history(workspace, args, out),
        Command::Store(args) => store::store(workspace, args, out),
        Command::Init(_) | Command::Playground(_) | Command::Doctor(_) | Command::Verify(_) => {
            unreachable!("handled above")
        }
    }
}

/// Prints an operation's failure (its diagnostics), or its report with `print`.
fn report_or_diagnostics<T, E: OpError>(
    out: &Output,
    result: Result<T, E>,
    print: impl FnOnce(T) -> ExitStatus,
) -> ExitStatus {
    match result {
        Ok(report) => print(report),
        Err(error) => show_error(out, &error),
    }
}

/// Prints what an operation did: its diagnostics (exit 1), or its report as JSON or as `text`
/// prints it (exit 1 when it did not succeed).
pub(crate) fn print_report<T: serde::Serialize + crate::ops::Warnings, E: crate::ops::error::OpError>(
    out: &Output,
    format: Format,
    result: Result<T, E>,
    succeeded: impl Fn(&T) -> bool,
    text: impl FnOnce(&T),
) -> ExitStatus {
    report_or_diagnostics(out, result, |report| {
        for warning in report.warnings() {
            out.warning(warning);
        }
        if format == Format::Json {
            out.report(&(serde_json::to_string_pretty(&report).expect("reports serialise") + "\n"));
        } else {
            text(&report);
            // What stopped it, with its places and hints (a render of the new version that failed).
            for details in report.details() {
                out.diagnostics(&details.diagnostics, &details.sources);
            }
        }
        ExitStatus::failed_if(!succeeded(&report))
    })
}

/// Prints an operation's error (its diagnostics, with places and hints, nested reports whole);
/// the exit status it means.
fn show_error(out: &Output, error: &dyn OpError) -> ExitStatus {
    let report = error.to_report();
    out.diagnostics(&report.diagnostics, &report.sources);
    if error.is_usage() { ExitStatus::Usage } else { ExitStatus::Failure }
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
