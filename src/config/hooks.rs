//! What an archetype (or an account) declares to run around deployments: hooks, smoke tests
//! and data hooks. Running them is `pipeline::hooks` and `pipeline::data`.

use std::time::Duration;

use serde::Deserialize;

/// `hooks:` in `archetype.yaml` (or in an account file, replacing the archetype's lists).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    pub pre_deploy: Option<Vec<Hook>>,
    pub post_deploy: Option<Vec<Hook>>,
    pub smoke_tests: Option<Vec<SmokeTest>>,
}

impl Hooks {
    /// The account's lists where it has them, the archetype's otherwise.
    #[must_use]
    pub fn overridden_by(&self, account: Option<&Hooks>) -> Hooks {
        let pick =
            |own: Option<&Option<Vec<Hook>>>, base: &Option<Vec<Hook>>| own.cloned().flatten().or_else(|| base.clone());
        Hooks {
            pre_deploy: pick(account.map(|a| &a.pre_deploy), &self.pre_deploy),
            post_deploy: pick(account.map(|a| &a.post_deploy), &self.post_deploy),
            smoke_tests: account.and_then(|a| a.smoke_tests.clone()).or_else(|| self.smoke_tests.clone()),
        }
    }
}

/// A command: an argument list (run directly) or a string (run by `sh -c`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Run {
    Argv(Vec<String>),
    Shell(String),
}

/// A pre- or post-deploy hook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    pub name: String,
    pub run: Run,
    /// Default 5m.
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
}

/// A smoke test: retried until it passes or its deadline passes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeTest {
    pub name: String,
    pub run: Run,
    /// For one attempt. Default 30s.
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    /// Between attempts. Default 5s.
    #[serde(default, deserialize_with = "duration")]
    pub interval: Option<Duration>,
    /// Give up after this long. Default 2m.
    #[serde(default, deserialize_with = "duration")]
    pub deadline: Option<Duration>,
}

pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| parse_duration(&t).map_err(serde::de::Error::custom)).transpose()
}

/// `data:` in `archetype.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataHooks {
    /// Takes a consistent snapshot; prints its id as the last line of stdout.
    pub snapshot: Option<DataCommand>,
    /// Replaces the account's data with snapshot `STAMP_SNAPSHOT_ID`.
    pub restore: Option<DataCommand>,
    /// Cleans a restored copy: rotates credentials, masks personal data.
    pub scrub: Option<DataCommand>,
    /// Prints `{"data": {"<entity>": {"count": N}, ...}}`.
    pub stats: Option<DataCommand>,
    /// Takes the environment out of (`STAMP_AVAILABILITY=standby`) and back into (`active`)
    /// service.
    pub availability: Option<DataCommand>,
}

/// One data command.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataCommand {
    pub run: Run,
    /// Default 30m.
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
}

/// The data hooks by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Snapshot,
    Restore,
    Scrub,
    Stats,
    Availability,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Restore => "restore",
            Self::Scrub => "scrub",
            Self::Stats => "stats",
            Self::Availability => "availability",
        }
    }
}

impl DataHooks {
    pub fn get(&self, step: Step) -> Option<&DataCommand> {
        match step {
            Step::Snapshot => self.snapshot.as_ref(),
            Step::Restore => self.restore.as_ref(),
            Step::Scrub => self.scrub.as_ref(),
            Step::Stats => self.stats.as_ref(),
            Step::Availability => self.availability.as_ref(),
        }
    }

    /// `Err` names the hooks of `needed` the archetype lacks.
    pub fn require(&self, archetype: &str, needed: &[Step]) -> Result<(), String> {
        let missing: Vec<&str> = needed.iter().filter(|s| self.get(**s).is_none()).map(|s| s.name()).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "archetype `{archetype}` has no `data:` hooks for {}: declare them in its archetype.yaml (see docs/authoring.md, \"Data hooks\")",
                missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
            ))
        }
    }
}

/// Parses durations like `30s`, `5m`, `1h30m` in config files.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration like `30s` or `5m`: {e}"))
}
