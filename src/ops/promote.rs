//! `stamp promote VERSION --to ENV`: build once, promote unchanged. The version is applied to
//! the target stage's accounts only if the ledger shows it applied and smoke-tested
//! successfully in every earlier stage of the promotion chain declared in `stamp.yaml`.

use super::build::{BuildOptions, build};
use super::deploy::{self, ApplyOptions, Approver, DeployOptions, DeployReport};
use crate::diagnostics::{Diagnostic, Report, Sources};
use crate::pipeline::account::Progress;

#[derive(Debug, Clone, Default)]
pub struct PromoteOptions {
    pub version: String,
    /// The environment to promote to.
    pub to: String,
    pub terraform: Option<std::path::PathBuf>,
}

fn refuse(message: String) -> Report {
    Report::new(vec![Diagnostic::error("promote", message)], Sources::default())
}

/// Checks the earlier stages, then builds and applies the target stage's artifacts.
pub fn promote(
    workspace: &super::Workspace,
    options: &PromoteOptions,
    approver: &dyn Approver,
    progress: &dyn Progress,
) -> Result<Vec<DeployReport>, Report> {
    let project = &workspace.project;
    let chain = &project.file.promotion;
    let Some(stage) = chain.iter().position(|e| *e == options.to) else {
        return Err(refuse(format!(
            "`{}` is not in the promotion chain of `stamp.yaml` ({})",
            options.to,
            if chain.is_empty() {
                "none is declared: add `promotion: [ci, staging, production]`".to_string()
            } else {
                chain.join(" -> ")
            }
        )));
    };
    let store = workspace.store.as_ref();
    // Build once, promote unchanged: what earlier stages ran must be exactly this checkout.
    let here = crate::version::BuildVersion::resolve(Some(&options.version), &project.root);
    if here.dirty {
        return Err(refuse(
            "the working tree has uncommitted changes: promote from the commit the earlier stages ran".into(),
        ));
    }
    for earlier in &chain[..stage] {
        let accounts: Vec<_> = project.accounts.iter().filter(|a| a.environment() == earlier).collect();
        if accounts.is_empty() {
            return Err(refuse(format!(
                "stage `{earlier}` has no accounts, so version {} cannot have passed it",
                options.version
            )));
        }
        // A damaged record could be the one that says the version passed (or failed).
        if let Some(problem) = accounts.iter().find_map(|a| super::ledger_problem(store, a)) {
            return Err(refuse(problem));
        }
        let mut passed = false;
        for account in &accounts {
            // The hooks in force: the account's own lists over its archetype's, as runs use them.
            let hooks = project.archetypes[&account.archetype].file.hooks.overridden_by(account.hooks.as_ref());
            let has_smoke = hooks.smoke_tests.as_ref().is_some_and(|s| !s.is_empty());
            let history = store.history(&account.name).map_err(|e| refuse(e.to_string()))?;
            passed |= crate::ledger::passed(&history.records, &options.version, &here.commit, has_smoke);
        }
        if !passed {
            let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
            return Err(refuse(format!(
                "version {} (commit {}) has not been applied and smoke-tested successfully in stage `{earlier}` (accounts: {}); promote it there first",
                options.version,
                here.commit,
                names.join(", ")
            )));
        }
    }
    let targets: Vec<String> =
        project.accounts.iter().filter(|a| a.environment() == options.to).map(|a| a.name.clone()).collect();
    if targets.is_empty() {
        return Err(refuse(format!("stage `{}` has no accounts", options.to)));
    }
    let built = build(
        workspace,
        &BuildOptions { accounts: targets, version: Some(options.version.clone()), ..BuildOptions::default() },
    )?;
    let mut reports = Vec::new();
    for artifact in built {
        let apply = ApplyOptions {
            deploy: DeployOptions {
                artifact: Some(artifact.path.clone()),
                terraform: options.terraform.clone(),
                jobs: 1,
                ..DeployOptions::default()
            },
            ..ApplyOptions::default()
        };
        reports.push(deploy::apply(workspace, &apply, approver, progress)?);
    }
    Ok(reports)
}
