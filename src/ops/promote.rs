//! `stamp promote VERSION --to ENV`: build once, promote unchanged. The version is applied to
//! the target stage's accounts only if the ledger shows it applied and smoke-tested
//! successfully in every earlier stage of the promotion chain declared in `stamp.yaml`.

use super::build::{BuildError, BuildOptions, build};
use super::deploy::{self, ApplyOptions, Approver, DeployError, DeployOptions, DeployReport};
use crate::pipeline::account::Progress;

#[derive(Debug, Clone, Default)]
pub struct PromoteOptions {
    pub version: String,
    /// The environment to promote to.
    pub to: String,
    pub terraform: Option<std::path::PathBuf>,
}

/// Why `promote` did not apply the version.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("`{to}` is not in the promotion chain of `stamp.yaml` ({chain})")]
    NotInChain { to: String, chain: String },
    #[error("the working tree has uncommitted changes: promote from the commit the earlier stages ran")]
    Dirty,
    #[error("stage `{stage}` has no accounts, so version {version} cannot have passed it")]
    EarlierStageEmpty { stage: String, version: String },
    /// A damaged ledger record could be the one that says the version passed (or failed).
    #[error("{0}")]
    Ledger(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(
        "version {version} (commit {commit}) has not been applied and smoke-tested successfully in stage `{stage}` (accounts: {accounts}); promote it there first"
    )]
    NotPassed { version: String, commit: String, stage: String, accounts: String },
    #[error("stage `{0}` has no accounts")]
    TargetEmpty(String),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// An account of a stage that does not load.
    #[error(transparent)]
    Invalid(#[from] crate::diagnostics::Report),
}

impl super::error::OpError for PromoteError {
    fn own_code(&self) -> &'static str {
        match self {
            Self::Ledger(_) => "ledger.damaged",
            Self::Store(_) => "store",
            _ => "promote",
        }
    }

    fn wraps(&self) -> Option<&dyn super::error::OpError> {
        match self {
            Self::Build(e) => Some(e),
            Self::Deploy(e) => Some(e),
            Self::Invalid(report) => Some(report),
            _ => None,
        }
    }
}

/// Checks the earlier stages, then builds and applies the target stage's artifacts.
pub fn promote(
    workspace: &super::Workspace,
    options: &PromoteOptions,
    approver: &dyn Approver,
    progress: &dyn Progress,
) -> Result<Vec<DeployReport>, PromoteError> {
    let project = &workspace.project;
    let chain = &project.file.promotion;
    let Some(stage) = chain.iter().position(|e| *e == options.to) else {
        return Err(PromoteError::NotInChain {
            to: options.to.clone(),
            chain: if chain.is_empty() {
                "none is declared: add `promotion: [ci, staging, production]`".to_string()
            } else {
                chain.join(" -> ")
            },
        });
    };
    let store = workspace.store.as_ref();
    // Build once, promote unchanged: what earlier stages ran must be exactly this checkout.
    let here = crate::version::BuildVersion::resolve(Some(&options.version), &project.root);
    if here.dirty {
        return Err(PromoteError::Dirty);
    }
    for earlier in &chain[..stage] {
        // Read whole from the catalog: only the stages' accounts, not the whole fleet.
        let accounts = project
            .catalog
            .iter()
            .filter(|e| e.summary.environment == *earlier)
            .map(|e| workspace.whole(e))
            .collect::<Result<Vec<_>, _>>()?;
        if accounts.is_empty() {
            return Err(PromoteError::EarlierStageEmpty { stage: earlier.clone(), version: options.version.clone() });
        }
        // A damaged record could be the one that says the version passed (or failed).
        if let Some(problem) = accounts.iter().find_map(|a| super::ledger_problem(store, a)) {
            return Err(PromoteError::Ledger(problem));
        }
        let mut passed = false;
        for account in &accounts {
            // The hooks in force: the account's own lists over its archetype's, as runs use them.
            let hooks = project.archetypes[&account.archetype].file.hooks.overridden_by(account.hooks.as_ref());
            let has_smoke = hooks.smoke_tests.as_ref().is_some_and(|s| !s.is_empty());
            let history = store.history(&account.name)?;
            passed |= crate::ledger::passed(&history.records, &options.version, &here.commit, has_smoke);
        }
        if !passed {
            let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
            return Err(PromoteError::NotPassed {
                version: options.version.clone(),
                commit: here.commit.clone(),
                stage: earlier.clone(),
                accounts: names.join(", "),
            });
        }
    }
    let targets: Vec<String> =
        project.catalog.iter().filter(|e| e.summary.environment == options.to).map(|e| e.name().to_string()).collect();
    if targets.is_empty() {
        return Err(PromoteError::TargetEmpty(options.to.clone()));
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
