//! `stamp init`.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::ValueEnum;

use super::Output;
use super::exit::ExitStatus;
use crate::ops::init::{InitOptions, InitReport, init};
use crate::starter::Example;

/// Start a new project from one of the example archetypes.
///
/// Writes `stamp.yaml`, the archetype with its blueprint, one account and a `.gitignore` into
/// DIR (created when missing), and prints the three commands to run next. It never overwrites
/// a file: when any of the files it would write exists, or any folder below DIR it would write
/// into is a symbolic link, it writes nothing and names them. When a write fails part-way, it
/// removes the files and folders it created.
///
/// `local-platform` runs on this machine with no cloud account (state and environments under
/// `.stamp/`): `stamp plan` and `stamp apply` work at once. The AWS archetypes need a state
/// bucket (the CHANGE-ME values in `stamp.yaml`), your account ids and AWS credentials.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp init shop\n  stamp init platform --archetype service-platform\n  stamp init . --archetype data-engineering"
)]
pub struct Args {
    /// The project folder.
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// The example archetype to start from.
    #[arg(long, value_enum, default_value = "local-platform")]
    archetype: ArchetypeArg,
}

/// The example archetypes built into Stamp.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ArchetypeArg {
    /// Offline stand-in for a service platform: Terraform's built-in resources on the local disk
    LocalPlatform,
    /// AWS: VPC, private DNS zone, ECS or EKS cluster, RDS databases
    ServicePlatform,
    /// AWS: S3 data lake with KMS, Glue catalog, Athena or Redshift Serverless
    DataEngineering,
}

impl From<ArchetypeArg> for Example {
    fn from(arg: ArchetypeArg) -> Self {
        match arg {
            ArchetypeArg::LocalPlatform => Self::LocalPlatform,
            ArchetypeArg::ServicePlatform => Self::ServicePlatform,
            ArchetypeArg::DataEngineering => Self::DataEngineering,
        }
    }
}

pub fn run(args: &Args, out: &Output) -> ExitStatus {
    let options = InitOptions { dir: args.dir.clone(), example: args.archetype.into() };
    super::report_or_diagnostics(out, init(&options), |report| {
        for warning in &report.warnings {
            out.warning(warning);
        }
        out.report(&text(&report));
        ExitStatus::Success
    })
}

/// What was written, by folder, and what to run next.
fn text(report: &InitReport) -> String {
    let here = report.dir.components().all(|c| c == std::path::Component::CurDir);
    let place = if here {
        "the current folder".to_string()
    } else {
        format!("`{}`", crate::text::one_line(&report.dir.to_string_lossy()))
    };
    let mut out =
        format!("created a project in {place}: archetype `{}`, account `{}`\n", report.archetype, report.account);
    let mut folders: Vec<(String, usize)> = Vec::new();
    for file in &report.files {
        let folder = ["archetypes/", "blueprints/"]
            .into_iter()
            .find(|top| file.starts_with(top))
            .and_then(|top| file[top.len()..].split_once('/').map(|(name, _)| format!("{top}{name}/")));
        match (folder, folders.last_mut()) {
            (Some(folder), Some((last, count))) if *last == folder => *count += 1,
            (Some(folder), _) => folders.push((folder, 1)),
            (None, _) => folders.push((file.clone(), 0)),
        }
    }
    for (path, count) in folders {
        match count {
            0 => {
                let _ = writeln!(out, "  {path}");
            }
            1 => {
                let _ = writeln!(out, "  {path} (1 file)");
            }
            _ => {
                let _ = writeln!(out, "  {path} ({count} files)");
            }
        }
    }
    out.push_str("\nnext:\n");
    for command in &report.next {
        let _ = writeln!(out, "  {command}");
    }
    for note in &report.notes {
        out.push('\n');
        out.push_str(&wrapped(&format!("note: {note}"), "      "));
    }
    out
}

/// `text` in lines of at most 96 columns (a longer word stays whole), the later ones indented.
fn wrapped(text: &str, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.trim().is_empty() && line.len() + 1 + word.len() > 96 {
            out.push_str(line.trim_end());
            out.push('\n');
            line = indent.to_string();
        } else if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}
