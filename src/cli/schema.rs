//! `stamp schema`.

use super::Output;
use super::exit::ExitStatus;
use crate::ops::Workspace;
use crate::ops::schema::schema;

/// Print an archetype's JSON Schema (draft 2020-12) for editors such as yaml-language-server.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp schema service-platform\n  stamp schema local-platform > .schemas/local-platform.json\n\nIn an account file, point yaml-language-server at it with a first line like\n  # yaml-language-server: $schema=../../.schemas/local-platform.json"
)]
pub struct Args {
    /// The archetype (a folder in `archetypes/`).
    archetype: String,
}

pub fn run(workspace: &Workspace, args: &Args, out: &Output) -> ExitStatus {
    match schema(workspace, &args.archetype) {
        Ok(schema) => {
            let mut text = serde_json::to_string_pretty(&schema).expect("schemas serialise");
            text.push('\n');
            out.report(&text);
            ExitStatus::Success
        }
        Err(error) => super::show_error(out, &error),
    }
}
