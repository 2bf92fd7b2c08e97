//! Data hooks: the archetype's commands that snapshot, restore, scrub, count and take offline
//! an account's data (`data:` in `archetype.yaml`). Like hooks, they run in the rendered root
//! and get their facts as environment variables, never on a command line.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::hooks::{HookEnv, Place, invocation};
pub use crate::config::hooks::{DataCommand, DataHooks, Step};
pub use crate::ledger::journal::StatDifference;

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
