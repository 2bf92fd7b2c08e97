//! An archetype: a kind of account, with its JSON Schema, blueprint and defaults.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

/// Which Terraform provider configuration Stamp generates for an archetype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// The AWS provider, assuming a role in the account, with default tags.
    Aws,
    /// No provider: only Terraform's built-in resources (`terraform_data`).
    None,
}

/// Where an archetype's accounts keep their Terraform state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    S3,
    Local,
    Pg,
}

/// `archetypes/<name>/archetype.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchetypeFile {
    #[serde(default)]
    pub description: String,
    pub blueprint: String,
    pub provider: Provider,
    #[serde(default)]
    pub provider_version: Option<String>,
    /// Defaults to `s3` for AWS archetypes and `local` otherwise.
    #[serde(default)]
    pub backend: Option<Backend>,
    #[serde(default)]
    pub defaults: Value,
    #[serde(default)]
    pub allowed_differences: Vec<String>,
    /// Pre- and post-deploy hooks and smoke tests.
    #[serde(default)]
    pub hooks: super::hooks::Hooks,
    /// Resources (by type, or by address) that hold data, besides Stamp's built-in list of
    /// types: plans that destroy them are highlighted, and refused for protected accounts.
    #[serde(default)]
    pub stateful_resources: Vec<String>,
    /// Extra transient-error patterns and retry limits.
    #[serde(default)]
    pub retry: RetrySettings,
    /// Commands that snapshot, restore, scrub, count and take offline the account's data.
    #[serde(default)]
    pub data: super::hooks::DataHooks,
    /// Policy checks run on the rendered tree and on the plan (checkov, conftest, scripts).
    #[serde(default)]
    pub policies: Vec<super::policies::Policy>,
}

/// A loaded archetype.
#[derive(Debug)]
pub struct Archetype {
    pub name: String,
    pub dir: PathBuf,
    pub file: ArchetypeFile,
    /// Display name of `archetype.yaml`, and where its values are.
    pub display: String,
    pub positions: super::yaml::Positions,
    /// Display name of `schema.json`.
    pub schema_file: String,
    pub schema: Value,
    /// The schema indexed for finding sensitive (`writeOnly`) values, when it marks any.
    pub sensitive: Option<std::sync::Arc<crate::config::redact::SensitiveIndex>>,
    /// The text of `archetype.yaml` and `schema.json` (for cache keys).
    pub text: String,
    pub schema_text: String,
}

impl Archetype {
    /// Whether a resource holds data that a destroy would lose.
    pub fn is_stateful(&self, resource_type: &str, address: &str) -> bool {
        STATEFUL_TYPES.contains(&resource_type)
            || self
                .file
                .stateful_resources
                .iter()
                .any(|s| s == resource_type || s == address || address.starts_with(&format!("{s}[")))
    }

    pub fn backend(&self) -> Backend {
        self.file.backend.unwrap_or(match self.file.provider {
            Provider::Aws => Backend::S3,
            Provider::None => Backend::Local,
        })
    }
}

/// The keys `archetype.yaml` accepts, for typo suggestions.
pub const KEYS: &[&str] = &[
    "description",
    "blueprint",
    "provider",
    "provider_version",
    "backend",
    "defaults",
    "allowed_differences",
    "hooks",
    "stateful_resources",
    "retry",
    "data",
    "policies",
];

/// Resource types that hold data, across the providers Stamp's archetypes use. Archetypes add
/// their own (by type or address) with `stateful_resources`.
pub const STATEFUL_TYPES: &[&str] = &[
    "aws_db_instance",
    "aws_rds_cluster",
    "aws_rds_cluster_instance",
    "aws_s3_bucket",
    "aws_route53_zone",
    "aws_dynamodb_table",
    "aws_efs_file_system",
    "aws_elasticache_cluster",
    "aws_elasticache_replication_group",
    "aws_redshift_cluster",
    "aws_redshiftserverless_namespace",
    "aws_glue_catalog_database",
    "aws_kms_key",
    "aws_ebs_volume",
    "aws_opensearch_domain",
    "aws_elasticsearch_domain",
    "aws_msk_cluster",
    "aws_rds_global_cluster",
    "aws_docdb_cluster",
    "aws_docdb_elastic_cluster",
    "aws_neptune_cluster",
    "aws_memorydb_cluster",
    "aws_keyspaces_table",
    "aws_timestreamwrite_table",
    "aws_qldb_ledger",
    "aws_fsx_lustre_file_system",
    "aws_fsx_ontap_file_system",
    "aws_fsx_openzfs_file_system",
    "aws_fsx_windows_file_system",
    "aws_glacier_vault",
    "aws_backup_vault",
    "aws_ecr_repository",
    "aws_sqs_queue",
    "aws_kinesis_stream",
    "aws_mq_broker",
    "aws_cloudwatch_log_group",
    "aws_secretsmanager_secret",
    "aws_cognito_user_pool",
];

/// `retry:` in `archetype.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts in all (first run included). Default 4.
    pub max_attempts: Option<u32>,
    /// Delay before the first retry, doubled each time (`2s`, `500ms`). Default 2s.
    #[serde(default, with = "humantime_serde_opt")]
    pub initial_delay: Option<std::time::Duration>,
    /// Extra patterns by category, added to the defaults.
    #[serde(default)]
    pub patterns: std::collections::BTreeMap<String, Vec<String>>,
}

impl RetrySettings {
    /// Compiles the archetype's own patterns: a bad one is the archetype's error.
    pub fn check(&self) -> Result<(), regex::Error> {
        self.patterns.values().flatten().try_for_each(|p| retry_pattern(p).map(drop))
    }
}

/// A transient-error pattern, case-insensitive.
pub fn retry_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("(?i){pattern}"))
}

mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom)).transpose()
    }
}
