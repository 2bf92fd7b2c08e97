//! `stamp history` and `stamp store`: Stamp's own state, as people want to read it, and moving
//! it into PostgreSQL.

use std::path::PathBuf;

use super::exit::ExitStatus;
use super::{Format, Output, print_report, report_or_diagnostics};
use crate::ops::Workspace;
use crate::ops::store::HistoryOptions;
use crate::report::store::{history_text, import_text, status_text};

/// Show the deployment ledger, newest first: when, who, which version and commit, the outcome
/// and the smoke tests of every apply, destroy and switch.
///
/// Reads the store `stamp.yaml` names (the ledger folder, or PostgreSQL with `store: {pg: ...}`
/// or `STAMP_STORE_PG`), so every machine sharing it sees the same history. A damaged record
/// is reported as a warning with its place; the others still show.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp history\n  stamp history local-prod\n  stamp history local-prod local-qa --limit 20\n  stamp history --format json | jq '.records[0].environment_version'"
)]
pub struct HistoryArgs {
    /// Accounts (default: every account with records, also ones no longer in the project).
    #[arg(value_name = "ACCOUNT")]
    accounts: Vec<String>,
    /// Show at most this many records (the newest).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn history(workspace: &Workspace, args: &HistoryArgs, out: &Output) -> ExitStatus {
    let options = HistoryOptions { accounts: args.accounts.clone(), limit: args.limit };
    let result = crate::ops::store::history(workspace, &options);
    print_report(out, args.format, result, |_| true, |report| out.report(&history_text(report)))
}

/// Where Stamp keeps its own state (ledger, migration journals, run locks).
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    command: StoreCommand,
}

#[derive(Debug, clap::Subcommand)]
enum StoreCommand {
    Status(StatusArgs),
    Import(ImportArgs),
}

/// Show where Stamp's state is and what it holds: records, migrations under way, and (in
/// PostgreSQL) which runs hold which accounts right now.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp store status\n  STAMP_STORE_PG=postgres://stamp@db/stamp stamp store status"
)]
struct StatusArgs {
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Copy a ledger folder (records, migration journals) into the PostgreSQL store.
///
/// Run it once when moving a project's state from its ledger folder to PostgreSQL, then point
/// `stamp.yaml` (`store: {pg: ...}`) or `STAMP_STORE_PG` at the database. It is idempotent:
/// records and journals already copied are skipped, so it can run again (after more deploys
/// from the folder, before anyone deploys through PostgreSQL) and adds only what is new.
/// Before saying done it reads the copy back and compares counts and a digest of every record
/// and finished journal with the folder. A folder with a damaged record is refused (repair it
/// first), and so are new records of an account already used through PostgreSQL.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  STAMP_STORE_PG=postgres://stamp@db.internal/stamp stamp store import\n  stamp store import --from /mnt/shared/stamp-ledger"
)]
struct ImportArgs {
    /// The ledger folder to copy (default: `ledger:` of `stamp.yaml`, `.stamp/ledger`).
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn store(workspace: &Workspace, args: &StoreArgs, out: &Output) -> ExitStatus {
    match &args.command {
        StoreCommand::Status(args) => report_or_diagnostics(out, crate::ops::store::status(workspace), |status| {
            match args.format {
                Format::Json => out.report(&(serde_json::to_string_pretty(&status).expect("reports serialise") + "\n")),
                Format::Text => out.report(&status_text(&status)),
            }
            ExitStatus::Success
        }),
        StoreCommand::Import(args) => {
            let cwd = std::env::current_dir().unwrap_or_default();
            let from = args.from.as_ref().map(|f| cwd.join(f));
            report_or_diagnostics(out, crate::ops::store::import(workspace, from.as_deref()), |imported| {
                match args.format {
                    Format::Json => {
                        out.report(&(serde_json::to_string_pretty(&imported).expect("reports serialise") + "\n"));
                    }
                    Format::Text => out.report(&import_text(&imported)),
                }
                ExitStatus::Success
            })
        }
    }
}
