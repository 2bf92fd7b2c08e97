//! Sensitive values: config values whose schema says `writeOnly: true` (following local
//! `$ref`s and `allOf`/`anyOf`/`oneOf`). They are replaced in everything Stamp writes or shows
//! (artifacts, diffs, reports), and may not be rendered into Terraform at all.

use serde_json::Value;

use crate::config::{Account, Project};

/// The text placed where a sensitive value was.
pub const REDACTED: &str = "<redacted>";

/// How deep `$ref`s are followed (cycles stop here).
const MAX_DEPTH: usize = 32;

/// The account's effective config with sensitive values replaced.
pub fn redacted(project: &Project, account: &Account) -> Value {
    let mut config = account.effective.clone();
    if let Some(archetype) = project.archetypes.get(&account.archetype) {
        redact(&mut config, &archetype.schema, &archetype.schema, 0);
    }
    config
}

/// The sensitive values of an account, as they appear in config (non-empty strings, numbers).
pub fn secrets(project: &Project, account: &Account) -> Vec<String> {
    let mut out = Vec::new();
    if !project.archetypes.get(&account.archetype).is_some_and(|a| a.has_sensitive) {
        return out;
    }
    collect(&account.effective, &redacted(project, account), &mut out);
    out.sort();
    out.dedup();
    out
}

fn collect(original: &Value, redacted: &Value, out: &mut Vec<String>) {
    match (original, redacted) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                if let Some(other) = b.get(key) {
                    collect(value, other, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => a.iter().zip(b).for_each(|(x, y)| collect(x, y, out)),
        (value, Value::String(marker)) if marker == REDACTED && value.as_str() != Some(REDACTED) => match value {
            Value::String(s) if !s.is_empty() => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            _ => {}
        },
        _ => {}
    }
}

/// Follows a local `$ref` (`#/$defs/x`).
fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => root.pointer(pointer).unwrap_or(schema),
        None => schema,
    }
}

fn redact(value: &mut Value, schema: &Value, root: &Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let schema = resolve(schema, root);
    if schema.get("writeOnly").and_then(Value::as_bool) == Some(true) {
        *value = Value::String(REDACTED.into());
        return;
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(parts) = schema.get(combinator).and_then(Value::as_array) {
            for part in parts {
                redact(value, part, root, depth + 1);
            }
        }
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if let Some(sub) = schema.get("properties").and_then(|p| p.get(key)) {
                    redact(child, sub, root, depth + 1);
                } else if let Some(sub) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                    redact(child, sub, root, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for item in items {
                    redact(item, sub, root, depth + 1);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn follows_refs_and_combinators() {
        let schema = json!({
            "$defs": {"secret": {"type": "string", "writeOnly": true}},
            "properties": {
                "api_key": {"$ref": "#/$defs/secret"},
                "db": {"allOf": [{"properties": {"password": {"writeOnly": true}}}]},
                "list": {"items": {"properties": {"token": {"$ref": "#/$defs/secret"}}}},
                "plain": {"type": "string"}
            }
        });
        let mut config =
            json!({"api_key": "sk-1", "db": {"password": "p", "host": "h"}, "list": [{"token": "t"}], "plain": "x"});
        let original = config.clone();
        redact(&mut config, &schema, &schema, 0);
        assert_eq!(config["api_key"], REDACTED);
        assert_eq!(config["db"]["password"], REDACTED);
        assert_eq!(config["db"]["host"], "h");
        assert_eq!(config["list"][0]["token"], REDACTED);
        assert_eq!(config["plain"], "x");
        let mut out = Vec::new();
        collect(&original, &config, &mut out);
        out.sort();
        assert_eq!(out, vec!["p", "sk-1", "t"]);
    }
}
