//! Sensitive values: config values that a schema marks `writeOnly: true`. They are replaced in
//! everything Stamp writes or shows (artifacts, diffs, reports, digests), never enter the
//! template context, and may not be rendered into Terraform at all.
//!
//! Which values are sensitive is decided by walking the schema along the config, through every
//! keyword that applies a subschema to a value: `$ref` (with its siblings), `$dynamicRef`,
//! `$recursiveRef`, `allOf`/`anyOf`/`oneOf`, `if`/`then`/`else`, `dependentSchemas` and
//! `dependencies` (every branch, whether it applies or not), `properties`,
//! `patternProperties`, `additionalProperties`, `unevaluatedProperties`, `prefixItems`,
//! `items`, `additionalItems`, `contains` and `unevaluatedItems`. References are resolved by
//! `referencing`, the resolver of the JSON Schema validator itself (base URIs, `$id`,
//! anchors), and patterns by its regular-expression dialect. Where the walk cannot tell (a
//! branch whose applicability depends on the value, a reference it cannot resolve, a schema
//! that applies too many subschemas), the value is taken to be sensitive. A `writeOnly` schema
//! makes its whole value sensitive, maps and lists included.

use std::collections::{BTreeMap, BTreeSet};

use referencing::{Draft, Registry, Resolver};
use serde_json::Value;

use super::Account;
use super::yaml::escape_pointer;

/// The text placed where a sensitive value was.
pub const REDACTED: &str = "<redacted>";

/// How many subschemas are applied to one value at most (`$ref` cycles stop earlier); past
/// it, the value is taken to be sensitive.
const MAX_APPLIED: usize = 256;

/// The base URI of a schema without an `$id`.
const BASE: &str = "urn:stamp:archetype-schema";

/// An archetype's schema, indexed once for finding sensitive values.
#[derive(Debug)]
pub struct SensitiveIndex {
    registry: Registry<'static>,
    base: String,
    /// Every `patternProperties` pattern, compiled as the validator reads it (`None`: this
    /// engine cannot read it, so it is taken to match).
    patterns: BTreeMap<String, Option<regex::Regex>>,
}

impl SensitiveIndex {
    /// Indexes `schema` when it marks any value `writeOnly` (`None` when none is).
    pub fn new(schema: &Value) -> Result<Option<Self>, String> {
        if !marks_write_only(schema) {
            return Ok(None);
        }
        let base = schema.get("$id").and_then(Value::as_str).unwrap_or(BASE).trim_end_matches('#').to_string();
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(&base, Draft::Draft202012.create_resource(schema.clone()))
            .and_then(referencing::RegistryBuilder::prepare)
            .map_err(|e| format!("cannot resolve the schema's references: {e}"))?;
        let mut patterns = BTreeMap::new();
        each_object(schema, &mut |map| {
            if let Some(Value::Object(found)) = map.get("patternProperties") {
                for pattern in found.keys() {
                    patterns.entry(pattern.clone()).or_insert_with(|| {
                        jsonschema_regex::to_rust_regex(pattern).ok().and_then(|p| regex::Regex::new(&p).ok())
                    });
                }
            }
        });
        Ok(Some(Self { registry, base, patterns }))
    }
}

/// Whether any object of the schema says `"writeOnly": true` (read from the parsed schema, so
/// no spelling of the key in the file's text can hide it).
fn marks_write_only(schema: &Value) -> bool {
    let mut found = false;
    each_object(schema, &mut |map| found |= map.get("writeOnly") == Some(&Value::Bool(true)));
    found
}

/// Calls `visit` on every object in `value`, without recursion.
fn each_object(value: &Value, visit: &mut impl FnMut(&serde_json::Map<String, Value>)) {
    let mut todo = vec![value];
    while let Some(node) = todo.pop() {
        match node {
            Value::Object(map) => {
                visit(map);
                todo.extend(map.values());
            }
            Value::Array(items) => todo.extend(items),
            _ => {}
        }
    }
}

/// The account's effective config with sensitive values replaced.
pub fn redacted(account: &Account) -> Value {
    if account.misshapen.is_empty() {
        return redact_at(&account.effective, &account.sensitive);
    }
    // A value of another shape where secrets belong may be one: not written out either.
    redact_at(&account.effective, &account.sensitive.union(&account.misshapen).cloned().collect())
}

impl SensitiveIndex {
    /// The JSON pointers of `config`'s sensitive values (a pointer covers everything below it).
    pub fn pointers(&self, config: &Value) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.walk(config, &mut out);
        out
    }

    /// The pointers of `config`'s sensitive values, and of its values of another shape than
    /// the schema's place for secrets where they stand (a string where a map of secrets, or a
    /// list of objects holding one, belongs). Those are not sensitive (the schema marks them
    /// nothing: `auth: none` may be the other choice to `auth: {password: ...}`), but they may
    /// be a secret written one level too high, so no diagnostic shows them.
    pub fn scan(&self, config: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
        let (mut out, mut misshapen) = (BTreeSet::new(), BTreeSet::new());
        self.walk_all(config, &mut out, &mut misshapen);
        (out, misshapen)
    }

    /// Adds the pointers of `config`'s sensitive values to `out`.
    fn walk(&self, config: &Value, out: &mut BTreeSet<String>) {
        self.walk_all(config, out, &mut BTreeSet::new());
    }

    /// Adds the pointers of `config`'s sensitive values to `out`, of its misshapen ones to
    /// `misshapen` (see [`SensitiveIndex::scan`]).
    fn walk_all(&self, config: &Value, out: &mut BTreeSet<String>, misshapen: &mut BTreeSet<String>) {
        let root =
            referencing::uri::from_str(&self.base).ok().and_then(|uri| self.registry.resolver(uri).lookup("#").ok());
        match root {
            Some(root) => {
                let (schema, resolver, _) = root.into_inner();
                let holds = std::collections::HashMap::new();
                Walker { index: self, out, misshapen, holds }.walk(schema, &resolver, config, "");
            }
            // The schema the registry was built from cannot be found in it: all of the config
            // is taken to be sensitive.
            None => {
                out.insert(String::new());
            }
        }
    }
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

struct Walker<'r, 'o> {
    index: &'r SensitiveIndex,
    out: &'o mut BTreeSet<String>,
    /// See [`SensitiveIndex::scan`].
    misshapen: &'o mut BTreeSet<String>,
    /// Whether a schema (by address) applies `writeOnly` below the value: to a map's entries
    /// (`false`) or a list's items (`true`). See [`Walker::holds_secrets`].
    holds: std::collections::HashMap<(usize, bool), bool>,
}

/// The keywords that apply a subschema to a map's entries.
const ENTRY_KEYWORDS: &[&str] = &["properties", "patternProperties", "additionalProperties", "unevaluatedProperties"];
/// The keywords that apply a subschema to a list's items.
const ITEM_KEYWORDS: &[&str] = &["prefixItems", "items", "additionalItems", "contains", "unevaluatedItems"];
/// The keywords that apply a subschema to the value itself (references apart).
const IN_PLACE_KEYWORDS: &[&str] =
    &["allOf", "anyOf", "oneOf", "if", "then", "else", "dependentSchemas", "dependencies"];
/// How many subschemas [`reaches_write_only`] looks at, at most; past it, it takes one to.
const MAX_REACHED: usize = 4096;

/// The subschemas a keyword's value holds: itself, or those it lists or names.
fn subschemas<'r>(keyword: &str, value: &'r Value) -> Vec<&'r Value> {
    let all: Vec<&Value> = match (keyword, value) {
        ("properties" | "patternProperties" | "dependentSchemas" | "dependencies", Value::Object(map)) => {
            map.values().collect()
        }
        (_, Value::Array(parts)) => parts.iter().collect(),
        (_, schema) => vec![schema],
    };
    // `dependencies` also lists required properties (arrays), and `true`/`false` apply nothing.
    all.into_iter().filter(|s| s.is_object()).collect()
}

/// The schemas `keywords` refers to (`$ref`, `$dynamicRef`, `$recursiveRef`), each with the
/// resolver of its place; `Err` when one cannot be followed (it may lead to `writeOnly`).
fn referenced<'r>(
    keywords: &'r serde_json::Map<String, Value>,
    resolver: &Resolver<'r>,
) -> Result<Vec<(&'r Value, Resolver<'r>)>, ()> {
    let mut found = Vec::new();
    for reference in ["$ref", "$dynamicRef", "$recursiveRef"] {
        let resolved = match keywords.get(reference) {
            None => continue,
            Some(_) if reference == "$recursiveRef" => resolver.lookup_recursive_ref(),
            Some(Value::String(target)) => resolver.lookup(target),
            Some(_) => continue,
        };
        let (contents, resolver, _) = resolved.map_err(|_| ())?.into_inner();
        found.push((contents, resolver));
    }
    Ok(found)
}

/// Whether any of `todo`'s schemas, or a schema one of them applies to anything (in place or
/// below), is `writeOnly`; a reference that cannot be followed, or more than
/// [`MAX_REACHED`] schemas, count as one.
fn reaches_write_only<'r>(mut todo: Vec<(&'r Value, Resolver<'r>)>) -> bool {
    let mut seen: std::collections::HashSet<usize> = std::collections::HashSet::new();
    while let Some((schema, resolver)) = todo.pop() {
        if !seen.insert(std::ptr::from_ref(schema) as usize) {
            continue;
        }
        let Value::Object(keywords) = schema else { continue };
        if seen.len() > MAX_REACHED || keywords.get("writeOnly") == Some(&Value::Bool(true)) {
            return true;
        }
        let Ok(resolver) = resolver.in_subresource(Draft::Draft202012.create_resource_ref(schema)) else {
            return true;
        };
        let Ok(referenced) = referenced(keywords, &resolver) else { return true };
        todo.extend(referenced);
        for keyword in IN_PLACE_KEYWORDS.iter().chain(ENTRY_KEYWORDS).chain(ITEM_KEYWORDS) {
            if let Some(value) = keywords.get(*keyword) {
                todo.extend(subschemas(keyword, value).into_iter().map(|s| (s, resolver.clone())));
            }
        }
    }
    false
}

impl<'r> Walker<'r, '_> {
    /// Applies `schema` (and everything it applies in place) to the value at `pointer`.
    fn walk(&mut self, schema: &'r Value, resolver: &Resolver<'r>, value: &Value, pointer: &str) {
        // Every subschema that applies to this value, with the resolver of its place.
        let mut applied: Vec<(&'r Value, Resolver<'r>)> = Vec::new();
        let mut todo = vec![(schema, resolver.clone())];
        while let Some((schema, resolver)) = todo.pop() {
            if applied.iter().any(|(s, _)| std::ptr::eq(*s, schema)) {
                continue;
            }
            let Value::Object(keywords) = schema else { continue };
            if applied.len() >= MAX_APPLIED || keywords.get("writeOnly") == Some(&Value::Bool(true)) {
                self.out.insert(pointer.to_string());
                return;
            }
            // Inside a subschema with its own `$id`, references resolve against it.
            let Ok(resolver) = resolver.in_subresource(Draft::Draft202012.create_resource_ref(schema)) else {
                self.out.insert(pointer.to_string());
                return;
            };
            applied.push((schema, resolver.clone()));
            let Ok(referenced) = referenced(keywords, &resolver) else {
                // A reference that cannot be followed may lead to `writeOnly`.
                self.out.insert(pointer.to_string());
                return;
            };
            todo.extend(referenced);
            for keyword in IN_PLACE_KEYWORDS {
                if let Some(value) = keywords.get(*keyword) {
                    todo.extend(subschemas(keyword, value).into_iter().map(|s| (s, resolver.clone())));
                }
            }
        }
        // A value of another shape than the schema's place for secrets (a secret written as a
        // string where a map of secrets, or a list of objects holding one, is expected) is not
        // reached by the walk below: it may be the secret itself.
        let misshapen = applied.iter().any(|(schema, resolver)| match value {
            Value::Object(_) => self.holds_secrets(schema, resolver, true),
            Value::Array(_) => self.holds_secrets(schema, resolver, false),
            _ => self.holds_secrets(schema, resolver, false) || self.holds_secrets(schema, resolver, true),
        });
        if misshapen {
            self.misshapen.insert(pointer.to_string());
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let child_pointer = format!("{pointer}/{}", escape_pointer(key));
                    for (schema, resolver) in &applied {
                        for sub in self.property_schemas(schema, key) {
                            self.walk(sub, resolver, child, &child_pointer);
                        }
                    }
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let item_pointer = format!("{pointer}/{index}");
                    for (schema, resolver) in &applied {
                        for sub in item_schemas(schema, index) {
                            self.walk(sub, resolver, item, &item_pointer);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether `schema` applies a `writeOnly` schema below its value: to a list's items
    /// (`items`) or a map's entries.
    fn holds_secrets(&mut self, schema: &'r Value, resolver: &Resolver<'r>, items: bool) -> bool {
        let key = (std::ptr::from_ref(schema) as usize, items);
        if let Some(&known) = self.holds.get(&key) {
            return known;
        }
        let keywords = if items { ITEM_KEYWORDS } else { ENTRY_KEYWORDS };
        let starts = keywords
            .iter()
            .filter_map(|k| schema.get(*k).map(|v| subschemas(k, v)))
            .flatten()
            .map(|s| (s, resolver.clone()))
            .collect();
        let holds = reaches_write_only(starts);
        self.holds.insert(key, holds);
        holds
    }

    /// The subschemas that apply to a map's entry `key`.
    fn property_schemas(&self, schema: &'r Value, key: &str) -> Vec<&'r Value> {
        let mut out = Vec::new();
        let named = schema.get("properties").and_then(|p| p.get(key));
        out.extend(named);
        let mut matched = false;
        if let Some(Value::Object(patterns)) = schema.get("patternProperties") {
            for (pattern, sub) in patterns {
                // A pattern this engine cannot read is taken to match.
                let matches =
                    self.index.patterns.get(pattern).and_then(Option::as_ref).is_none_or(|re| re.is_match(key));
                if matches {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sensitive(schema: &Value, config: &Value) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if let Some(index) = SensitiveIndex::new(schema).unwrap() {
            index.walk(config, &mut out);
        }
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
    fn references_resolve_against_their_base_uri() {
        // `secret.json` from inside `db/db.json` is `db/secret.json`, not the decoy at the root.
        let schema = json!({
            "$id": "https://acme.example/root.json",
            "$defs": {
                "decoy": {"$id": "https://acme.example/secret.json", "type": "string"},
                "real": {"$id": "https://acme.example/db/secret.json", "type": "string", "writeOnly": true},
                "db": {"$id": "https://acme.example/db/db.json", "properties": {"password": {"$ref": "secret.json"}}}
            },
            "properties": {"db": {"$ref": "db/db.json"}}
        });
        let found = agrees_with_jsonschema(&schema, &json!({"db": {"password": "p"}}));
        assert_eq!(found, ["/db/password".to_string()].into());
        // A reference to another file cannot be followed: the schema is refused (as the
        // validator refuses it), never half-read.
        let remote =
            json!({"properties": {"a": {"writeOnly": true}, "b": {"$ref": "https://elsewhere.example/x.json"}}});
        assert!(SensitiveIndex::new(&remote).is_err());
    }

    #[test]
    fn draft_7_dependencies_and_too_many_subschemas_count() {
        let schema = json!({"dependencies": {"vault": {"properties": {"token": {"writeOnly": true}}}, "x": ["y"]}});
        assert_eq!(sensitive(&schema, &json!({"vault": true, "token": "t"})), ["/token".to_string()].into());
        let many: Vec<Value> = (0..300).map(|_| json!({"type": "string"})).collect();
        let schema = json!({"properties": {"password": {"allOf": many}}, "writeOnly": false, "$comment": "writeOnly"});
        let schema = json!({"allOf": [schema, {"properties": {"other": {"writeOnly": true}}}]});
        assert!(sensitive(&schema, &json!({"password": "p"})).contains("/password"));
    }

    /// A secret written in another shape than its schema's (a string where a map of secrets or
    /// a list of objects holding one is expected) is the value of no `writeOnly` schema, but
    /// may well be the secret itself: it is found as misshapen.
    #[test]
    fn a_value_misshapen_where_secrets_belong_is_sensitive() {
        let schema = json!({
            "$defs": {"cred": {"type": "object", "properties": {"user": {}, "password": {"writeOnly": true}}}},
            "properties": {
                "vault": {"type": "object", "additionalProperties": {"type": "string", "writeOnly": true}},
                "creds": {"type": "array", "items": {"$ref": "#/$defs/cred"}},
                "extra": {"type": "object", "patternProperties": {"^secret_": {"writeOnly": true}}},
                "choice": {"oneOf": [{"properties": {"pw": {"writeOnly": true}}}, {"enum": ["none"]}]},
                "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                "hosts": {"type": "array", "items": {"type": "object", "properties": {"name": {}}}}
            }
        });
        let config = json!({
            "vault": "s1", "creds": ["s2"], "extra": ["s3"], "choice": "s4",
            "tags": "t", "hosts": [{"name": "h"}, "h2"]
        });
        let index = SensitiveIndex::new(&schema).unwrap().unwrap();
        let expected = ["/choice", "/creds/0", "/extra", "/vault"];
        assert_eq!(index.scan(&config), (BTreeSet::new(), expected.map(String::from).into()));
        // A map where a list of objects holding a secret belongs; the other choice than a
        // secret (not sensitive: templates may read it).
        let config = json!({"creds": {"user": "u", "password": "s5"}, "choice": "none"});
        assert_eq!(index.scan(&config), (BTreeSet::new(), ["/choice", "/creds"].map(String::from).into()));
        // Well shaped, only the secrets are.
        let config = json!({"vault": {"a": "s6"}, "creds": [{"user": "u", "password": "s7"}], "choice": {"pw": "s8"}});
        let expected = ["/choice/pw", "/creds/0/password", "/vault/a"];
        assert_eq!(agrees_with_jsonschema(&schema, &config), expected.map(String::from).into());
    }

    #[test]
    fn write_only_is_found_however_the_file_spells_it() {
        let schema: Value = serde_json::from_str(r#"{"properties": {"t": {"write\u004Fnly": true}}}"#).unwrap();
        assert_eq!(sensitive(&schema, &json!({"t": "secret"})), ["/t".to_string()].into());
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
