//! Data hooks: the archetype's commands that snapshot, restore, scrub, count and take offline
//! an account's data (`data:` in `archetype.yaml`). Like hooks, they run in the rendered root
//! and get their facts as environment variables, never on a command line.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::hooks::{HookEnv, Place, Run, duration, invocation};

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

/// Runs a data hook in `cwd`; its stdout, or why it failed.
pub fn run(
    step: Step,
    command: &DataCommand,
    place: Place<'_>,
    env: &HookEnv,
    extra: &[(&str, &str)],
) -> Result<String, String> {
    let mut env = HookEnv { vars: env.vars.clone() };
    env.vars.extend(extra.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())));
    place.log.line(&format!("# data hook `{}`", step.name()));
    let timeout = command.timeout.unwrap_or(Duration::from_secs(30 * 60));
    let finished = invocation(&command.run, place, &env, timeout).run(place.log);
    match finished {
        Ok(f) if f.success() && !f.interrupted => Ok(f.stdout),
        other => {
            let (_, output) = super::hooks::outcome(other);
            Err(format!("the `{}` data hook failed: {}", step.name(), output.trim_end()))
        }
    }
}

/// The snapshot id: the last non-empty line the snapshot hook printed.
pub fn snapshot_id(stdout: &str) -> Result<String, String> {
    let id = stdout.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or_default();
    let valid = !id.is_empty()
        && id.len() <= 255
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if valid {
        Ok(id.to_string())
    } else {
        Err(format!(
            "the `snapshot` data hook must print the snapshot id (letters, digits, `.`, `_`, `:`, `-`) as its last line; it printed `{id}`"
        ))
    }
}

/// The `data` object of what the stats hook printed.
pub fn parse_stats(stdout: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("the `stats` data hook must print one JSON object like {{\"data\": {{...}}}}: {e}"))?;
    match value.get("data") {
        Some(data @ Value::Object(_)) => Ok(data.clone()),
        _ => Err("the `stats` data hook printed JSON without a `data` object".to_string()),
    }
}

/// A statistic that differs between two environments.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct StatDifference {
    /// Like `customers.count`.
    pub path: String,
    pub expected: Option<Value>,
    pub found: Option<Value>,
}

impl std::fmt::Display for StatDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map_or_else(|| "missing".to_string(), Value::to_string);
        write!(f, "{}: {} expected, {} found", self.path, show(&self.expected), show(&self.found))
    }
}

/// Every statistic that differs between `expected` (the source) and `found` (the copy).
pub fn compare_stats(expected: &Value, found: &Value) -> Vec<StatDifference> {
    let (a, b) = (flatten(expected), flatten(found));
    let paths: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    paths
        .into_iter()
        .filter(|p| a.get(*p) != b.get(*p))
        .map(|p| StatDifference { path: p.clone(), expected: a.get(p).cloned(), found: b.get(p).cloned() })
        .collect()
}

fn flatten(value: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(String::new(), value)];
    while let Some((path, value)) = stack.pop() {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    stack.push((path, child));
                }
            }
            other => {
                out.insert(path, other.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn snapshot_ids_are_the_last_line_and_plain() {
        assert_eq!(
            snapshot_id("taking snapshot\nqa-20261122T080000Z-a1b2c3\n\n").unwrap(),
            "qa-20261122T080000Z-a1b2c3"
        );
        assert!(snapshot_id("").is_err());
        assert!(snapshot_id("id; rm -rf /").is_err());
    }

    #[test]
    fn stats_differences_name_each_count() {
        let source = parse_stats(r#"{"data": {"customers": {"count": 57}, "orders": {"count": 171}}}"#).unwrap();
        let copy = json!({"customers": {"count": 57}, "orders": {"count": 170}, "extra": {"count": 1}});
        let differences = compare_stats(&source, &copy);
        let text: Vec<String> = differences.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["extra.count: missing expected, 1 found", "orders.count: 171 expected, 170 found"]);
        assert!(compare_stats(&source, &source).is_empty());
        assert!(parse_stats(r#"{"customers": 1}"#).is_err());
    }
}
