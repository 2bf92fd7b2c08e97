//! `stamp list`.

use super::exit::ExitStatus;
use super::{Format, Output};
use crate::ops::Workspace;
use crate::ops::list::list;
use crate::report::list::accounts_table;

/// List the project's accounts with their archetype, environment and region.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  stamp list\n  stamp list --format json")]
pub struct Args {
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run(workspace: &Workspace, args: &Args, out: &Output) -> ExitStatus {
    let (accounts, diagnostics) = list(workspace);
    for warning in crate::ops::warning_lines(&diagnostics) {
        out.warning(&warning);
    }
    let errors = diagnostics.iter().filter(|d| d.severity == crate::diagnostics::Severity::Error).count();
    if errors > 0 {
        out.status(&format!("{errors} account file(s) could not be read; run `stamp check` for details"));
    }
    match args.format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&accounts).expect("summaries serialise");
            text.push('\n');
            out.report(&text);
        }
        Format::Text => out.report(&accounts_table(&accounts)),
    }
    ExitStatus::Success
}
