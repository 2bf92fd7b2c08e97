//! Sensitive values: config values that a schema marks `writeOnly: true`. They are replaced in
//! everything Stamp writes or shows (artifacts, diffs, reports, digests), never enter the
//! template context, and may not be rendered into Terraform at all.
//!
//! Which values are sensitive is decided by walking the schema along the config, through every
//! keyword that applies a subschema to a value: `$ref` (with its siblings), `$dynamicRef`,
//! `allOf`/`anyOf`/`oneOf`, `if`/`then`/`else` and `dependentSchemas` (every branch, whether it
//! applies or not), `properties`, `patternProperties`, `additionalProperties`,
//! `unevaluatedProperties`, `prefixItems`, `items`, `additionalItems`, `contains` and
//! `unevaluatedItems`. Where a branch's applicability depends on the value, it is taken to
//! apply: a value that may be sensitive is treated as sensitive. A `writeOnly` schema makes its
//! whole value sensitive, maps and lists included.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::config::yaml::escape_pointer;
use crate::config::{Account, Project};

/// The text placed where a sensitive value was.
pub const REDACTED: &str = "<redacted>";

/// How many subschemas are applied to one value at most (`$ref` cycles stop here).
const MAX_APPLIED: usize = 256;

/// The JSON pointers of the account's sensitive values (a pointer covers everything below it).
pub fn sensitive_pointers(project: &Project, account: &Account) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(archetype) = project.archetypes.get(&account.archetype).filter(|a| a.has_sensitive) {
        Walker { root: &archetype.schema, out: &mut out }.walk(&archetype.schema, &account.effective, "");
    }
    out
}

/// The account's effective config with sensitive values replaced.
pub fn redacted(project: &Project, account: &Account) -> Value {
    redact_at(&account.effective, &sensitive_pointers(project, account))
}

/// `config` with the values at `pointers` replaced.
pub fn redact_at(config: &Value, pointers: &BTreeSet<String>) -> Value {
    let mut config = config.clone();
    for pointer in pointers {
        if let Some(value) = config.pointer_mut(pointer) {
            *value = Value::String(REDACTED.into());
        }
    }
    config
}

/// The sensitive values of a config as they appear in it: every non-empty string and number
/// inside the values at `pointers`.
pub fn secrets_at(config: &Value, pointers: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for pointer in pointers {
        if let Some(value) = config.pointer(pointer) {
            leaves(value, &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

fn leaves(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if !s.is_empty() => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
        Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
        _ => {}
    }
}

struct Walker<'s, 'o> {
    root: &'s Value,
    out: &'o mut BTreeSet<String>,
}

impl<'s> Walker<'s, '_> {
    /// Applies `schema` (and everything it applies in place) to the value at `pointer`.
    fn walk(&mut self, schema: &'s Value, value: &Value, pointer: &str) {
        // Every subschema that applies to this value, found without recursion.
        let mut applied: Vec<&'s Value> = Vec::new();
        let mut todo = vec![schema];
        while let Some(schema) = todo.pop() {
            if applied.len() >= MAX_APPLIED || applied.iter().any(|s| std::ptr::eq(*s, schema)) {
                continue;
            }
            let Value::Object(keywords) = schema else { continue };
            applied.push(schema);
            if keywords.get("writeOnly") == Some(&Value::Bool(true)) {
                self.out.insert(pointer.to_string());
                return;
            }
            for reference in ["$ref", "$dynamicRef"] {
                if let Some(target) = keywords.get(reference).and_then(Value::as_str).and_then(|r| self.resolve(r)) {
                    todo.push(target);
                }
            }
            for combinator in ["allOf", "anyOf", "oneOf"] {
                if let Some(Value::Array(parts)) = keywords.get(combinator) {
                    todo.extend(parts);
                }
            }
            for branch in ["if", "then", "else"] {
                todo.extend(keywords.get(branch));
            }
            if let Some(Value::Object(dependent)) = keywords.get("dependentSchemas") {
                todo.extend(dependent.values());
            }
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let child_pointer = format!("{pointer}/{}", escape_pointer(key));
                    for schema in &applied {
                        for sub in property_schemas(schema, key) {
                            self.walk(sub, child, &child_pointer);
                        }
                    }
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let item_pointer = format!("{pointer}/{index}");
                    for schema in &applied {
                        for sub in item_schemas(schema, index) {
                            self.walk(sub, item, &item_pointer);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn resolve(&self, reference: &str) -> Option<&'s Value> {
        resolve(self.root, reference)
    }
}

/// A reference inside the schema: `#/json/pointer`, `#anchor` (`$anchor`, `$dynamicAnchor`)
/// or the `$id` of one of its subschemas. Others (another file) cannot be followed.
fn resolve<'s>(root: &'s Value, reference: &str) -> Option<&'s Value> {
    let (base, fragment) = reference.split_once('#').unwrap_or((reference, ""));
    let document = if base.is_empty() {
        root
    } else {
        find(root, |node| {
            node.get("$id").and_then(Value::as_str).is_some_and(|id| id == base || id.ends_with(&format!("/{base}")))
        })?
    };
    if fragment.is_empty() {
        return Some(document);
    }
    if fragment.starts_with('/') {
        let decoded = fragment.replace("%25", "%").replace("%22", "\"");
        return document.pointer(&decoded);
    }
    find(document, |node| {
        ["$anchor", "$dynamicAnchor"].iter().any(|k| node.get(*k).and_then(Value::as_str) == Some(fragment))
    })
}

/// The references of a schema that [`resolve`] cannot follow: with them, Stamp could not tell
/// which values are sensitive.
pub fn unresolvable_refs(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![schema];
    while let Some(node) = todo.pop() {
        match node {
            Value::Object(map) => {
                for key in ["$ref", "$dynamicRef"] {
                    if let Some(reference) = map.get(key).and_then(Value::as_str)
                        && resolve(schema, reference).is_none()
                    {
                        out.push(reference.to_string());
                    }
                }
                todo.extend(map.values());
            }
            Value::Array(items) => todo.extend(items),
            _ => {}
        }
    }
    out
}

/// The subschemas that apply to a map's entry `key`.
fn property_schemas<'s>(schema: &'s Value, key: &str) -> Vec<&'s Value> {
    let mut out = Vec::new();
    let named = schema.get("properties").and_then(|p| p.get(key));
    out.extend(named);
    let mut matched = false;
    if let Some(Value::Object(patterns)) = schema.get("patternProperties") {
        for (pattern, sub) in patterns {
            // A pattern this engine cannot read is taken to match.
            if regex::Regex::new(pattern).map_or(true, |re| re.is_match(key)) {
                matched = true;
                out.push(sub);
            }
        }
    }
    if named.is_none() && !matched {
        out.extend(schema.get("additionalProperties"));
    }
    if named.is_none() {
        out.extend(schema.get("unevaluatedProperties"));
    }
    out
}

/// The subschemas that apply to a list's item `index`.
fn item_schemas(schema: &Value, index: usize) -> Vec<&Value> {
    let mut out = Vec::new();
    let prefix = schema.get("prefixItems").and_then(Value::as_array);
    match (prefix.and_then(|p| p.get(index)), schema.get("items")) {
        (Some(sub), _) => out.push(sub),
        // Before 2020-12, an array of `items` is a tuple, followed by `additionalItems`.
        (None, Some(Value::Array(tuple))) => match tuple.get(index) {
            Some(sub) => out.push(sub),
            None => out.extend(schema.get("additionalItems")),
        },
        (None, Some(items)) => out.push(items),
        (None, None) => {}
    }
    out.extend(schema.get("contains"));
    if prefix.is_none_or(|p| index >= p.len()) {
        out.extend(schema.get("unevaluatedItems"));
    }
    out
}

/// The first subschema (depth first) for which `wanted` holds.
fn find(schema: &Value, wanted: impl Fn(&Value) -> bool) -> Option<&Value> {
    let mut todo = vec![schema];
    while let Some(node) = todo.pop() {
        match node {
            Value::Object(map) => {
                if wanted(node) {
                    return Some(node);
                }
                todo.extend(map.values());
            }
            Value::Array(items) => todo.extend(items),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sensitive(schema: &Value, config: &Value) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        Walker { root: schema, out: &mut out }.walk(schema, config, "");
        out
    }

    /// Every value jsonschema annotates with `writeOnly` (for a valid config) is found.
    fn agrees_with_jsonschema(schema: &Value, config: &Value) -> BTreeSet<String> {
        let found = sensitive(schema, config);
        let validator = jsonschema::options().with_draft(jsonschema::Draft::Draft202012).build(schema).unwrap();
        let evaluation = validator.evaluate(config);
        assert!(evaluation.flag().valid, "the test config must be valid");
        for entry in evaluation.iter_annotations() {
            if entry.annotations.value().get("writeOnly") == Some(&Value::Bool(true)) {
                let at = entry.instance_location.as_str();
                assert!(
                    found.iter().any(|p| at == p || at.starts_with(&format!("{p}/"))),
                    "jsonschema marks `{at}` writeOnly, the walker found {found:?}"
                );
            }
        }
        found
    }

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
        let config =
            json!({"api_key": "sk-1", "db": {"password": "p", "host": "h"}, "list": [{"token": "t"}], "plain": "x"});
        let found = agrees_with_jsonschema(&schema, &config);
        assert_eq!(found, ["/api_key", "/db/password", "/list/0/token"].map(String::from).into());
    }

    #[test]
    fn every_shape_that_applies_a_schema_is_followed() {
        let schema = json!({
            "type": "object",
            "$defs": {
                "conn": {"type": "object", "properties": {"dsn": {"type": "string"}}},
                "key": {"$anchor": "key", "writeOnly": true}
            },
            "properties": {
                "whole": {"type": "object", "writeOnly": true},
                "sibling": {"$ref": "#/$defs/conn", "writeOnly": true},
                "byname": {"type": "object", "patternProperties": {"^secret_": {"writeOnly": true}}},
                "tuple": {"type": "array", "prefixItems": [{"type": "string"}, {"writeOnly": true}]},
                "kind": {"type": "string"},
                "anchored": {"$ref": "#key"},
                "rest": {"type": "object", "additionalProperties": {"writeOnly": true}, "properties": {"open": {}}}
            },
            "if": {"properties": {"kind": {"const": "vault"}}},
            "then": {"properties": {"token": {"writeOnly": true}}},
            "dependentSchemas": {"kind": {"properties": {"pin": {"writeOnly": true}}}}
        });
        let config = json!({
            "whole": {"a": "s1-secret", "b": ["s2-secret"]},
            "sibling": {"dsn": "s3-secret"},
            "byname": {"secret_x": "s4-secret", "plain": "p"},
            "tuple": ["t", "s5-secret"],
            "kind": "vault",
            "token": "s6-secret",
            "pin": 123_456,
            "anchored": "s7-secret",
            "rest": {"open": "o", "other": "s8-secret"}
        });
        let found = agrees_with_jsonschema(&schema, &config);
        let expected =
            ["/anchored", "/byname/secret_x", "/pin", "/rest/other", "/sibling", "/token", "/tuple/1", "/whole"];
        assert_eq!(found, expected.map(String::from).into());
    }

    #[test]
    fn branches_that_may_apply_are_taken_to_apply() {
        let schema = json!({
            "if": {"properties": {"kind": {"const": "vault"}}},
            "then": {"properties": {"token": {"writeOnly": true}}},
            "anyOf": [{"properties": {"a": {"writeOnly": true}}}, {"required": ["b"]}]
        });
        let found = sensitive(&schema, &json!({"kind": "plain", "token": "x", "a": "y", "b": 1}));
        assert_eq!(found, ["/a", "/token"].map(String::from).into());
    }

    #[test]
    fn references_by_id_resolve_and_others_are_named() {
        let schema = json!({"$defs": {"c": {"$id": "https://acme.example/conn.json", "writeOnly": true}},
            "properties": {"a": {"$ref": "conn.json"}, "b": {"$ref": "other.json#/x"}}});
        assert_eq!(sensitive(&schema, &json!({"a": "s"})), ["/a".to_string()].into());
        assert_eq!(unresolvable_refs(&schema), ["other.json#/x"]);
    }

    #[test]
    fn reference_cycles_end() {
        let schema = json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"});
        assert!(sensitive(&schema, &json!({"x": 1})).is_empty());
        let tree = json!({"$defs": {"node": {"properties": {"kids": {"items": {"$ref": "#/$defs/node"}}, "key": {"writeOnly": true}}}}, "$ref": "#/$defs/node"});
        let config = json!({"kids": [{"kids": [{"key": "deep"}]}]});
        assert_eq!(sensitive(&tree, &config), ["/kids/0/kids/0/key".to_string()].into());
    }
}
