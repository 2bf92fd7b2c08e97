//! `stamp schema`: an archetype's JSON Schema, for editors (yaml-language-server).

use super::Workspace;
use crate::diagnostics::{Diagnostic, Report, did_you_mean, quoted_list};

pub fn schema(workspace: &Workspace, archetype: &str) -> Result<serde_json::Value, Report> {
    let project = &workspace.project;
    if let Some(found) = project.archetypes.get(archetype) {
        Ok(found.schema.clone())
    } else {
        let known: Vec<String> = project.archetypes.keys().cloned().collect();
        let mut d = Diagnostic::error("archetype.unknown", format!("unknown archetype `{archetype}`"));
        if let Some(near) = did_you_mean(archetype, known.iter().map(String::as_str)) {
            d = d.hint(format!("did you mean `{near}`?"));
        }
        Err(Report::new(vec![d.hint(format!("known archetypes: {}", quoted_list(&known)))], project.sources.clone()))
    }
}
