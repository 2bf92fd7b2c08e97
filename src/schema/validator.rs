//! Compiles each archetype's schema once and turns schema violations into diagnostics that
//! point at the offending line and column of the account file, in plain words.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Draft, ValidationError, Validator};
use serde_json::Value;

use super::formats;
use crate::config::{Account, Project};
use crate::diagnostics::{Diagnostic, Location, did_you_mean, quoted_list};

/// One compiled validator per archetype.
pub struct Validators {
    compiled: BTreeMap<String, Validator>,
}

impl Validators {
    /// Compiles the schema of every archetype in `only` (all when `None`); a schema that does
    /// not compile is a diagnostic.
    pub fn compile(project: &Project, only: Option<&BTreeSet<&str>>) -> (Self, Vec<Diagnostic>) {
        let mut compiled = BTreeMap::new();
        let mut diagnostics = Vec::new();
        for (name, archetype) in &project.archetypes {
            if only.is_some_and(|o| !o.contains(name.as_str())) {
                continue;
            }
            let mut options = jsonschema::options().with_draft(Draft::Draft202012).should_validate_formats(true);
            for (format, check, _) in formats::FORMATS {
                options = options.with_format(*format, *check);
            }
            match options.build(&archetype.schema) {
                Ok(validator) => {
                    compiled.insert(name.clone(), validator);
                }
                Err(e) => diagnostics.push(
                    Diagnostic::error("archetype.schema", format!("invalid JSON Schema: {e}"))
                        .at(Location::file_only(&archetype.schema_file))
                        .hint(format!("at schema path `{}`", e.schema_path())),
                ),
            }
        }
        (Self { compiled }, diagnostics)
    }

    /// Every schema violation of the account's effective config.
    /// An account whose archetype's schema did not compile is not valid either: nothing is
    /// rendered from a config no schema checked.
    pub fn validate(&self, project: &Project, account: &Account) -> Vec<Diagnostic> {
        let Some(validator) = self.compiled.get(&account.archetype) else {
            return vec![
                Diagnostic::error(
                    "schema.unchecked",
                    format!("not checked: the schema of archetype `{}` does not compile", account.archetype),
                )
                .at(Location::file_only(&account.display))
                .for_account(&account.name),
            ];
        };
        let archetype = &project.archetypes[&account.archetype];
        // The lines shown without their text: an error on one is pointed at by line only (its
        // column would tell where a secret ends).
        let hidden_lines = account.hidden_lines();
        validator
            .iter_errors(&account.effective)
            .map(|error| {
                let hidden = account.hidden_root(error.instance_path().as_str()).is_some();
                let mut d = if hidden {
                    describe_sensitive(&error, account)
                } else {
                    describe(&error, &archetype.schema, account)
                };
                // A value under a key the schema does not know may be a sensitive one under a
                // misspelt or misplaced key: where the schema marks any value sensitive, it
                // is pointed at by line only, so no snippet shows it; and so is any error on a
                // line shown without its text.
                if let Some(location) = &mut d.location
                    && ((d.code == "schema.unknown-key" && archetype.sensitive.is_some())
                        || hidden_lines.contains(&location.line))
                {
                    *location = Location::file_only(&location.file).on_line(location.line);
                }
                d.for_account(&account.name)
            })
            .collect()
    }
}

/// `/databases/0/name` as `databases[0].name`.
pub fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            let _ = write!(out, "[{segment}]");
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    if out.is_empty() { "the config".to_string() } else { out }
}

fn describe(error: &ValidationError<'_>, schema: &Value, account: &Account) -> Diagnostic {
    let pointer = error.instance_path().as_str().to_string();
    let path = dotted(&pointer);
    let instance = error.instance();
    let at_value = |pointer: &str| {
        account
            .positions
            .value(pointer)
            .map(|p| Location::new(&account.display, p.line, p.column).with_end_column(p.end_column.unwrap_or(0)))
    };
    let at_key =
        |pointer: &str| account.positions.key(pointer).map(|p| Location::new(&account.display, p.line, p.column));
    // The schema object that holds the failing keyword.
    let schema_parent = {
        let schema_path = error.schema_path().as_str();
        let parent = schema_path.rsplit_once('/').map_or("", |(p, _)| p);
        schema.pointer(parent)
    };
    let location = at_value(&pointer).or_else(|| Some(Location::file_only(&account.display)));
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let key = unexpected.first().cloned().unwrap_or_default();
            let child = format!("{pointer}/{}", crate::config::yaml::escape_pointer(&key));
            let known: Vec<String> = schema_parent
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            let where_ = if pointer.is_empty() { String::new() } else { format!(" in `{path}`") };
            let mut d = Diagnostic::error("schema.unknown-key", format!("unknown key `{key}`{where_}"))
                .at_opt(at_key(&child).or(location));
            if let Some(near) = did_you_mean(&key, known.iter().map(String::as_str)) {
                d = d.hint(format!("did you mean `{near}`?"));
            } else if !known.is_empty() {
                d = d.hint(format!("allowed keys: {}", quoted_list(&known)));
            }
            if unexpected.len() > 1 {
                d = d.hint(format!("also unknown: {}", quoted_list(&unexpected[1..])));
            }
            d
        }
        ValidationErrorKind::Required { property } => {
            let property = property.as_str().unwrap_or_default().to_string();
            let where_ = if pointer.is_empty() { String::new() } else { format!(" in `{path}`") };
            let mut d = Diagnostic::error("schema.required", format!("missing required key `{property}`{where_}"))
                .at_opt(at_key(&pointer).or(location));
            if let Some(text) = schema_parent
                .and_then(|s| s.pointer(&format!("/properties/{}", crate::config::yaml::escape_pointer(&property))))
                .and_then(|p| p.get("description"))
                .and_then(Value::as_str)
            {
                d = d.hint(format!("`{property}`: {text}"));
            }
            if !pointer.is_empty() && account.own.pointer(&pointer).is_none() {
                d = d.hint(format!(
                    "`{path}` is not in this file: its other keys come from defaults in `stamp.yaml` or the archetype"
                ));
            }
            d
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => article(&t.to_string()),
                TypeKind::Multiple(set) => set.iter().map(|t| article(&t.to_string())).collect::<Vec<_>>().join(" or "),
            };
            let found = article(json_type(instance));
            let mut d = Diagnostic::error(
                "schema.type",
                format!("`{path}` must be {expected}, found {found} `{}`", short(instance)),
            )
            .at_opt(location);
            if expected.contains("string") && instance.is_number() {
                d = d.hint(format!("quote the value (`\"{}\"`) so YAML reads it as a string", short(instance)));
            }
            d
        }
        ValidationErrorKind::Format { format } => {
            let mut d =
                Diagnostic::error("schema.format", format!("`{}` is not a valid {format} (`{path}`)", short(instance)))
                    .at_opt(location);
            if let Some(text) = formats::describe(format) {
                d = d.hint(format!("expected {text}"));
            }
            d
        }
        ValidationErrorKind::Enum { options } => {
            let choices: Vec<String> = options.as_array().map(|a| a.iter().map(short).collect()).unwrap_or_default();
            let mut d = Diagnostic::error(
                "schema.enum",
                format!("`{path}` must be one of {}, found `{}`", quoted_list(&choices), short(instance)),
            )
            .at_opt(location);
            if let Some(near) = instance.as_str().and_then(|v| did_you_mean(v, choices.iter().map(String::as_str))) {
                d = d.hint(format!("did you mean `{near}`?"));
            }
            d
        }
        ValidationErrorKind::Pattern { pattern } => {
            let mut d = Diagnostic::error(
                "schema.pattern",
                format!("`{}` does not match the pattern `{pattern}` (`{path}`)", short(instance)),
            )
            .at_opt(location);
            // A pattern in a conditional branch (e.g. per engine) explains itself there.
            if let Some(text) = schema_parent.and_then(|s| s.get("x-hint")).and_then(Value::as_str) {
                d = d.hint(text);
            }
            d
        }
        ValidationErrorKind::Minimum { limit } => bound("at least", limit, &path, instance).at_opt(location),
        ValidationErrorKind::Maximum { limit } => bound("at most", limit, &path, instance).at_opt(location),
        ValidationErrorKind::ExclusiveMinimum { limit } => bound("more than", limit, &path, instance).at_opt(location),
        ValidationErrorKind::ExclusiveMaximum { limit } => bound("less than", limit, &path, instance).at_opt(location),
        ValidationErrorKind::MinItems { limit } => {
            Diagnostic::error("schema.min-items", format!("`{path}` needs at least {limit} item(s)")).at_opt(location)
        }
        ValidationErrorKind::MaxItems { limit } => {
            Diagnostic::error("schema.max-items", format!("`{path}` allows at most {limit} item(s)")).at_opt(location)
        }
        ValidationErrorKind::MinLength { limit } => {
            Diagnostic::error("schema.min-length", format!("`{path}` must be at least {limit} character(s) long"))
                .at_opt(location)
        }
        ValidationErrorKind::MaxLength { limit } => {
            Diagnostic::error("schema.max-length", format!("`{path}` must be at most {limit} character(s) long"))
                .at_opt(location)
        }
        ValidationErrorKind::Constant { expected_value } => Diagnostic::error(
            "schema.const",
            format!("`{path}` must be `{}`, found `{}`", short(expected_value), short(instance)),
        )
        .at_opt(location),
        ValidationErrorKind::UniqueItems => {
            Diagnostic::error("schema.unique-items", format!("`{path}` has duplicate items")).at_opt(location)
        }
        _ => Diagnostic::error("schema.invalid", format!("`{path}`: {}", error.masked())).at_opt(location),
    }
}

/// A violation by a sensitive value: said without the value, and pointed at by line only, so
/// neither the message nor the source snippet shows it.
fn describe_sensitive(error: &ValidationError<'_>, account: &Account) -> Diagnostic {
    let pointer = error.instance_path().as_str();
    let line = account.positions.value(pointer).map_or(0, |p| p.line);
    // Named by the sensitive value it is in: the keys of a sensitive map are its value too.
    if let Some(named) = account.sensitive_root(pointer) {
        return Diagnostic::error(
            "schema.sensitive",
            format!("`{}` (sensitive) is not valid: {}", dotted(named), rule(error)),
        )
        .at(Location::file_only(&account.display).on_line(line))
        .hint("the value is not shown because the schema marks it `writeOnly`");
    }
    let named = account.hidden_root(pointer).unwrap_or(pointer);
    Diagnostic::error("schema.sensitive", format!("`{}` (may be sensitive) is not valid: {}", dotted(named), rule(error)))
        .at(Location::file_only(&account.display).on_line(line))
        .hint("the value is not shown: it stands where the schema keeps `writeOnly` values, in another shape (a secret written one level too high?)")
}

/// What a schema keyword requires, without the value that broke it.
fn rule(error: &ValidationError<'_>) -> String {
    match error.kind() {
        ValidationErrorKind::Type { kind } => match kind {
            TypeKind::Single(t) => format!("it must be {}", article(&t.to_string())),
            TypeKind::Multiple(set) => {
                format!("it must be {}", set.iter().map(|t| article(&t.to_string())).collect::<Vec<_>>().join(" or "))
            }
        },
        ValidationErrorKind::MinLength { limit } => format!("it must be at least {limit} character(s) long"),
        ValidationErrorKind::MaxLength { limit } => format!("it must be at most {limit} character(s) long"),
        ValidationErrorKind::Pattern { pattern } => format!("it must match the pattern `{pattern}`"),
        ValidationErrorKind::Format { format } => format!("it must be a valid {format}"),
        ValidationErrorKind::Required { property } => {
            format!("missing required key `{}`", property.as_str().unwrap_or_default())
        }
        _ => format!("it breaks the schema's `{}` rule", error.schema_path().as_str().rsplit('/').next().unwrap_or("")),
    }
}

fn bound(relation: &str, limit: &Value, path: &str, instance: &Value) -> Diagnostic {
    Diagnostic::error("schema.range", format!("`{path}` must be {relation} {limit}, found {}", short(instance)))
}

fn article(noun: &str) -> String {
    let an = matches!(noun.chars().next(), Some('a' | 'e' | 'i' | 'o' | 'u'));
    format!("{} {noun}", if an { "an" } else { "a" })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// A value as text for a message, shortened when long.
fn short(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Array(_) => "[...]".to_string(),
        Value::Object(_) => "{...}".to_string(),
        other => other.to_string(),
    };
    if text.chars().count() > 60 { format!("{}...", text.chars().take(57).collect::<String>()) } else { text }
}

#[cfg(test)]
mod tests {
    use super::dotted;

    #[test]
    fn dotted_paths() {
        assert_eq!(dotted(""), "the config");
        assert_eq!(dotted("/network/cidr"), "network.cidr");
        assert_eq!(dotted("/databases/0/name"), "databases[0].name");
        assert_eq!(dotted("/tags/a~1b"), "tags.a/b");
    }
}
