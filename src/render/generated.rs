//! The files Stamp adds to every rendered root: backend, provider and version metadata.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::hcl_value::quoted;
use crate::config::{Account, Archetype, Backend, Project, Provider};
use crate::version::BuildVersion;

/// Everything the generated files depend on.
pub struct Facts<'a> {
    pub project: &'a Project,
    pub account: &'a Account,
    pub archetype: &'a Archetype,
    /// Owner and lifetime of an ephemeral account.
    pub lifetime: Option<&'a crate::ephemeral::Lifetime>,
    pub version: &'a BuildVersion,
    /// Path of the local state file, relative to the rendered root.
    pub local_state_path: &'a str,
    pub blueprint_digest: &'a str,
    pub config_digest: &'a str,
}

/// The tags every resource carries: Stamp's own plus the account's `tags`.
pub fn tags(facts: &Facts<'_>) -> BTreeMap<String, String> {
    let mut tags: BTreeMap<String, String> = facts
        .account
        .effective
        .get("tags")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect())
        .unwrap_or_default();
    tags.insert("EnvironmentVersion".into(), facts.version.environment_version());
    tags.insert("StampAccount".into(), facts.account.name.clone());
    tags.insert("StampArchetype".into(), facts.archetype.name.clone());
    tags.insert("StampBlueprint".into(), facts.archetype.file.blueprint.clone());
    tags.insert("StampCommit".into(), facts.version.commit.clone());
    if let Some(lifetime) = facts.lifetime {
        // Not created yet: this apply creates it now (afterwards the ledger's first apply
        // gives the time, so later renders are the same).
        let now = crate::ephemeral::run_started();
        tags.insert("StampOwner".into(), lifetime.owner.clone());
        tags.insert("StampCreatedAt".into(), crate::ephemeral::format_time(lifetime.created_or(now)));
        tags.insert("StampExpiresAt".into(), crate::ephemeral::format_time(lifetime.expires_at(now)));
    }
    tags
}

/// `(file name, unformatted HCL)` of each generated file.
pub fn files(facts: &Facts<'_>) -> Vec<(&'static str, String)> {
    let mut out = vec![("stamp_backend.tf", backend(facts))];
    if let Some(providers) = providers(facts) {
        out.push(("stamp_providers.tf", providers));
    }
    out.push(("stamp_metadata.tf", metadata(facts)));
    out
}

fn backend(facts: &Facts<'_>) -> String {
    let account = &facts.account.instance();
    let backend = facts.archetype.backend();
    // S3-native locking (`use_lockfile`) needs Terraform 1.11.
    let required = if backend == Backend::S3 { ">= 1.11.0" } else { ">= 1.5.0" };
    let mut out = format!("terraform {{\nrequired_version = {}\n\n", quoted(required));
    match backend {
        Backend::S3 => {
            let state = facts.project.file.state.s3.as_ref();
            let (bucket, region, table, prefix) = state.map_or(("", "", None, None), |s| {
                (s.bucket.as_str(), s.region.as_str(), s.lock_table.as_deref(), s.key_prefix.as_deref())
            });
            let key = match prefix {
                Some(prefix) => format!("{}/{account}/terraform.tfstate", prefix.trim_end_matches('/')),
                None => format!("{account}/terraform.tfstate"),
            };
            let _ = write!(
                out,
                "backend \"s3\" {{\nbucket = {}\nkey = {}\nregion = {}\nencrypt = true\nuse_lockfile = true\n",
                quoted(bucket),
                quoted(&key),
                quoted(region),
            );
            if let Some(table) = table {
                let _ = write!(
                    out,
                    "\n# Deprecated: `state.s3.lock_table` in stamp.yaml. Locks are taken in both\n\
                     # places until it is removed.\ndynamodb_table = {}\n",
                    quoted(table)
                );
            }
            out.push_str("}\n");
        }
        Backend::Local => {
            let _ = write!(out, "backend \"local\" {{\npath = {}\n}}\n", quoted(facts.local_state_path));
        }
        Backend::Pg => {
            let schema = format!("stamp_{}", account.replace('-', "_"));
            let _ = write!(
                out,
                "# The connection string comes from the PG_CONN_STR environment variable.\nbackend \"pg\" {{\nschema_name = {}\n}}\n",
                quoted(&schema)
            );
        }
    }
    out.push_str("}\n");
    out
}

fn providers(facts: &Facts<'_>) -> Option<String> {
    match facts.archetype.file.provider {
        Provider::None => None,
        Provider::Aws => {
            let config = &facts.account.effective;
            let text = |key: &str| config.get(key).and_then(Value::as_str).unwrap_or_default();
            let account_id = text("account_id");
            let role = config.get("deploy_role").and_then(Value::as_str).unwrap_or("StampDeploy");
            let version = facts.archetype.file.provider_version.as_deref().unwrap_or(">= 5.0");
            Some(format!(
                "terraform {{\nrequired_providers {{\naws = {{\nsource = \"hashicorp/aws\"\nversion = {version}\n}}\n}}\n}}\n\n\
                 provider \"aws\" {{\nregion = {region}\nallowed_account_ids = [{account_id}]\n\n\
                 assume_role {{\nrole_arn = {role_arn}\nsession_name = {session}\n}}\n\n\
                 default_tags {{\ntags = local.stamp_tags\n}}\n}}\n",
                version = quoted(version),
                region = quoted(text("region")),
                account_id = quoted(account_id),
                role_arn = quoted(&format!("arn:aws:iam::{account_id}:role/{role}")),
                session = quoted(&format!("stamp-{}", facts.account.name)),
            ))
        }
    }
}

fn metadata(facts: &Facts<'_>) -> String {
    let mut out = String::from(
        "locals {\n# Tags on every resource: trace a running environment back to its source.\nstamp_tags = {\n",
    );
    for (key, value) in tags(facts) {
        let _ = writeln!(out, "{} = {}", quoted(&key), quoted(&value));
    }
    out.push_str("}\n\nstamp = {\n");
    let version = facts.version;
    let entries = [
        ("environment_version", version.environment_version()),
        ("version", version.version.clone()),
        ("commit", version.commit.clone()),
        ("account", facts.account.name.clone()),
        ("environment", facts.account.environment().to_string()),
        ("archetype", facts.archetype.name.clone()),
        ("blueprint", facts.archetype.file.blueprint.clone()),
        ("blueprint_digest", facts.blueprint_digest.to_string()),
        ("config_digest", facts.config_digest.to_string()),
        ("stamp_version", env!("CARGO_PKG_VERSION").to_string()),
    ];
    for (key, value) in entries {
        let _ = writeln!(out, "{key} = {}", quoted(&value));
    }
    out.push_str("}\n}\n\n");
    out.push_str(
        "output \"stamp\" {\ndescription = \"Which version of which blueprint and config built this environment (Stamp metadata).\"\nvalue = local.stamp\n}\n",
    );
    out
}
