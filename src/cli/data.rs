//! `stamp clone`, `sync`, `migrate`, `playground new` and `reap`: production-like copies with
//! their data, safe migrations, and short-lived playgrounds.

use std::io::IsTerminal;

use super::deploy::{Prompt, finish};
use super::exit::ExitStatus;
use super::progress::Shown;
use super::{Format, Output};
use crate::ops::Workspace;
use crate::ops::data::{CopyOptions, CopyReport};
use crate::ops::migrate::{MigrateOptions, MigrateReport, Mode};
use crate::ops::playground::{PlaygroundOptions, ReapOptions, ReapReport};
use crate::report::data::{copy_text, migrate_text, playground_text, reap_text};

/// Create or update TARGET from the blueprint version SOURCE runs, optionally with its data.
///
/// TARGET keeps its own config (CIDRs, zones, sizes); the archetypes and blueprints are those
/// of the commit SOURCE's last successful apply was built from (the ledger says which). With
/// `--data`, SOURCE is snapshotted, TARGET's own data is kept as a snapshot, the copy is
/// restored into TARGET (in standby meanwhile) and scrubbed, and the statistics of both must
/// be equal. The report ends with TARGET's config differences from SOURCE that its archetype
/// does not allow (parity).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp clone local-prod local-qa --auto-approve\n  stamp clone local-prod local-qa --data --auto-approve\n  stamp clone production loadtest --data --format json"
)]
pub struct CloneArgs {
    /// The account to copy.
    source: String,
    /// The account to create or update (it needs its own config file).
    target: String,
    /// Copy SOURCE's data too (snapshot, restore, scrub, compare statistics).
    #[arg(long)]
    data: bool,
    /// Apply without asking.
    #[arg(long)]
    auto_approve: bool,
    /// Needed when TARGET is protected: its name.
    #[arg(long, value_name = "ACCOUNT")]
    confirm: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    terraform: super::TerraformArg,
}

impl CloneArgs {
    /// SOURCE and TARGET: the accounts loaded whole.
    pub(super) fn accounts(&self) -> Vec<String> {
        vec![self.source.clone(), self.target.clone()]
    }
}

pub fn clone(workspace: &Workspace, args: &CloneArgs, out: &Output) -> ExitStatus {
    let options = CopyOptions {
        source: args.source.clone(),
        target: args.target.clone(),
        data: args.data,
        confirm: args.confirm.clone(),
        terraform: args.terraform.path(),
    };
    let progress = Shown::new(out.quiet);
    let approver = Prompt::new(args.auto_approve, out, &progress).plans_to_stderr(args.format == Format::Json);
    let result = crate::ops::data::clone(workspace, &options, &approver, &progress);
    progress.finish();
    super::print_report(out, args.format, result, CopyReport::succeeded, |report| {
        // A failed apply shows its plan and errors, and nothing was copied.
        if let Some(deploy) = report.deploy.clone()
            && finish(Ok(deploy), out, &approver) != ExitStatus::Success
        {
            return;
        }
        out.report(&copy_text(report));
    })
}

/// Refresh TARGET's data from SOURCE, at will.
///
/// TARGET's own data is snapshotted first (never lost), then SOURCE is snapshotted, TARGET put
/// in standby, the snapshot restored and scrubbed, TARGET brought back (also after an error),
/// and the statistics compared: a difference exits non-zero. A protected TARGET needs
/// `--confirm TARGET`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  stamp sync local-prod local-staging\n  stamp sync production qa --format json")]
pub struct SyncArgs {
    /// The account whose data is copied.
    source: String,
    /// The account whose data is replaced.
    target: String,
    /// Needed when TARGET is protected: its name.
    #[arg(long, value_name = "ACCOUNT")]
    confirm: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    terraform: super::TerraformArg,
}

impl SyncArgs {
    /// SOURCE and TARGET: the accounts loaded whole.
    pub(super) fn accounts(&self) -> Vec<String> {
        vec![self.source.clone(), self.target.clone()]
    }
}

pub fn sync(workspace: &Workspace, args: &SyncArgs, out: &Output) -> ExitStatus {
    let options = CopyOptions {
        source: args.source.clone(),
        target: args.target.clone(),
        data: true,
        confirm: args.confirm.clone(),
        terraform: args.terraform.path(),
    };
    let progress = Shown::new(out.quiet);
    let result = crate::ops::data::sync(workspace, &options, &progress);
    progress.finish();
    super::print_report(out, args.format, result, CopyReport::succeeded, |report| out.report(&copy_text(report)))
}

/// Migrate an account to a new version without ever losing its data.
///
/// The new version is built alongside the old one (in the account's other slot): the old
/// environment goes to standby, is snapshotted, the new one is built, the snapshot restored
/// into it and the statistics of both compared; only when they are equal does the account
/// switch to the new environment and retire the old one. A mismatch or an error stops the
/// migration with both environments and the snapshot kept, and the old environment back in
/// service. Every step is journalled in `.stamp/ledger/migrations/ACCOUNT.json`: `--resume` goes on
/// where an interrupted migration stopped, `--rollback` destroys the new environment.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp migrate local-prod --to-version 1.5.0\n  stamp migrate local-prod --resume --auto-approve\n  stamp migrate local-prod --rollback --auto-approve"
)]
#[allow(clippy::struct_excessive_bools)]
pub struct MigrateArgs {
    /// The account to migrate.
    account: String,
    /// The version to build the new environment at.
    #[arg(long, value_name = "VERSION", required_unless_present_any = ["resume", "rollback"], conflicts_with_all = ["resume", "rollback"])]
    to_version: Option<String>,
    /// Go on with the migration under way.
    #[arg(long, conflicts_with = "rollback")]
    resume: bool,
    /// Undo the migration under way (before its switch): destroy the new environment.
    #[arg(long)]
    rollback: bool,
    /// Apply and destroy without asking.
    #[arg(long)]
    auto_approve: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    terraform: super::TerraformArg,
}

impl MigrateArgs {
    /// The account migrated: the only one loaded whole.
    pub(super) fn account(&self) -> &str {
        &self.account
    }
}

pub fn migrate(workspace: &Workspace, args: &MigrateArgs, out: &Output) -> ExitStatus {
    // Asked only when the new environment is built: refuse before the old one goes to standby.
    if !args.auto_approve && !std::io::stdin().is_terminal() {
        out.error("refusing to migrate without a terminal to ask on: pass `--auto-approve` to migrate without asking");
        return ExitStatus::Usage;
    }
    let mode = match (&args.to_version, args.resume, args.rollback) {
        (Some(version), ..) => Mode::Start { to_version: version.clone() },
        (None, _, true) => Mode::Rollback,
        _ => Mode::Resume,
    };
    let options = MigrateOptions { account: args.account.clone(), mode, terraform: args.terraform.path() };
    let progress = Shown::new(out.quiet);
    let approver = Prompt::new(args.auto_approve, out, &progress).plans_to_stderr(args.format == Format::Json);
    let result = crate::ops::migrate::migrate(workspace, &options, &approver, &progress);
    progress.finish();
    super::print_report(out, args.format, result, MigrateReport::succeeded, |report| {
        for deploy in report.deploys.iter().filter(|d| !d.succeeded()) {
            // Failed builds and retirements show their plan and errors.
            let _ = finish(Ok(deploy.clone()), out, &approver);
        }
        out.report(&migrate_text(report));
    })
}

/// Short-lived playgrounds.
#[derive(Debug, clap::Args)]
pub struct PlaygroundArgs {
    #[command(subcommand)]
    command: PlaygroundCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PlaygroundCommand {
    New(PlaygroundNewArgs),
}

/// Write and apply a short-lived copy of an account: a playground.
///
/// The new account file (`<accounts>/playgrounds/NAME.yaml`) copies ACCOUNT's config with
/// `ephemeral: true`, the owner, ttl and creation time, a network allocated from
/// `playgrounds.cidr_pool` in `stamp.yaml` that no account uses, and the zone
/// `NAME.<playgrounds.zone_suffix>`. Its resources are tagged `StampOwner`, `StampCreatedAt`
/// and `StampExpiresAt`; `stamp reap` destroys it once expired.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp playground new ana-try --from local-staging --owner ana@acme.example --ttl 8h\n  stamp playground new load-3 --from local-prod --owner perf-team --ttl 3d --no-apply"
)]
struct PlaygroundNewArgs {
    /// The playground's account name.
    name: String,
    /// The account to copy.
    #[arg(long, value_name = "ACCOUNT")]
    from: String,
    /// Who it belongs to (an e-mail address or team).
    #[arg(long)]
    owner: String,
    /// How long it may live, e.g. `8h` or `3d`.
    #[arg(long, default_value = "8h")]
    ttl: String,
    /// Only write the account file.
    #[arg(long)]
    no_apply: bool,
    /// Apply without asking.
    #[arg(long)]
    auto_approve: bool,
    #[command(flatten)]
    terraform: super::TerraformArg,
}

impl PlaygroundArgs {
    /// The account copied: the only one loaded whole.
    pub(super) fn loads_only(&self) -> Vec<String> {
        let PlaygroundCommand::New(args) = &self.command;
        vec![args.from.clone()]
    }
}

pub fn playground(workspace: &mut Workspace, args: &PlaygroundArgs, out: &Output) -> ExitStatus {
    let PlaygroundCommand::New(args) = &args.command;
    let options = PlaygroundOptions {
        name: args.name.clone(),
        from: args.from.clone(),
        owner: args.owner.clone(),
        ttl: args.ttl.clone(),
        no_apply: args.no_apply,
        terraform: args.terraform.path(),
    };
    let progress = Shown::new(out.quiet);
    let approver = Prompt::new(args.auto_approve, out, &progress);
    let result = crate::ops::playground::new(workspace, &options, &approver, &progress);
    progress.finish();
    let playground = match result {
        Ok(playground) => playground,
        Err(error) => return super::show_error(out, &error),
    };
    out.report(&playground_text(&playground));
    match playground.deploy {
        Some(deploy) => finish(Ok(deploy), out, &approver),
        None => ExitStatus::Success,
    }
}

/// Destroy ephemeral accounts past their expiry.
///
/// An account is reaped when it is `ephemeral: true`, deployed, not protected, and its
/// creation time (`created_at`, else its first apply in the ledger) plus its `ttl` has passed.
/// One of which the ledger holds no record at all may be deployed all the same (a run stopped
/// between Terraform's apply and its record): it is destroyed too, once, in case.
/// Protected and non-ephemeral accounts are never reaped. A reaped playground's file (written
/// by `stamp playground new`) is deleted too, unless it was edited since: then it is moved to
/// `.stamp/reaped/`, and the reap says where. Runs unattended (e.g. hourly from CI);
/// `--dry-run` only reports. The kill switch `--all-ephemeral --confirm kill-switch` reaps every
/// ephemeral account, expired or not. With `--dry-run`, `STAMP_NOW` (RFC 3339) sets the time to
/// judge by (a real reap refuses it).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp reap --dry-run\n  stamp reap\n  stamp reap --all-ephemeral --confirm kill-switch\n  STAMP_NOW=2026-12-01T00:00:00Z stamp reap --dry-run   # what would go by then"
)]
pub struct ReapArgs {
    /// Report what would be destroyed; destroy nothing.
    #[arg(long)]
    dry_run: bool,
    /// The kill switch: every ephemeral account, expired or not (needs `--confirm kill-switch`).
    #[arg(long)]
    all_ephemeral: bool,
    /// `kill-switch`, with `--all-ephemeral`.
    #[arg(long, value_name = "WORD")]
    confirm: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    terraform: super::TerraformArg,
}

pub fn reap(workspace: &Workspace, args: &ReapArgs, out: &Output) -> ExitStatus {
    let options = ReapOptions {
        dry_run: args.dry_run,
        all_ephemeral: args.all_ephemeral,
        confirm: args.confirm.clone(),
        terraform: args.terraform.path(),
    };
    let progress = Shown::new(out.quiet);
    let result = crate::ops::playground::reap(workspace, &options, &progress);
    progress.finish();
    super::print_report(out, args.format, result, ReapReport::succeeded, |report| out.report(&reap_text(report)))
}
