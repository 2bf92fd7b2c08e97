//! `stamp list`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use super::{Format, Output};
use crate::ops::list::{AccountSummary, list};

/// List the project's accounts with their archetype, environment and region.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  stamp list\n  stamp list --format json")]
pub struct Args {
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run(root: &Path, args: &Args, out: &Output) -> ExitCode {
    let (accounts, diagnostics) = match list(root) {
        Ok(found) => found,
        Err(report) => {
            out.diagnostics(&report.diagnostics, &report.sources);
            return ExitCode::from(1);
        }
    };
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
        Format::Text => out.report(&table(&accounts)),
    }
    ExitCode::SUCCESS
}

fn table(accounts: &[AccountSummary]) -> String {
    let rows: Vec<[String; 5]> = accounts
        .iter()
        .map(|a| {
            [
                a.name.clone(),
                a.archetype.clone(),
                a.environment.clone(),
                a.region.clone().unwrap_or_else(|| "-".into()),
                if a.protected { "protected".into() } else { String::new() },
            ]
        })
        .collect();
    let header = ["ACCOUNT", "ARCHETYPE", "ENVIRONMENT", "REGION", ""].map(str::to_string);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
