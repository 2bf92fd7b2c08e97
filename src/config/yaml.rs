//! Parses YAML into a `serde_json::Value` plus the source position of every key and value,
//! addressed by JSON pointer, so schema errors can point at the exact line and column.

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

use crate::diagnostics::{Diagnostic, Location};

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
    /// Column just past the node when it ends on the same line.
    pub end_column: Option<usize>,
}

/// Where each value (and each mapping key) of a YAML document is, by JSON pointer
/// (`/network/cidr`, `/databases/0/name`).
#[derive(Debug, Clone, Default)]
pub struct Positions {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl Positions {
    /// The value at `pointer`, or its closest ancestor that has a position.
    pub fn value(&self, pointer: &str) -> Option<Pos> {
        ancestors(pointer).find_map(|p| self.values.get(p).copied())
    }

    /// The key of the entry at `pointer` (falls back to the value, then ancestors).
    pub fn key(&self, pointer: &str) -> Option<Pos> {
        self.keys.get(pointer).copied().or_else(|| self.value(pointer))
    }
}

fn ancestors(pointer: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(pointer);
    std::iter::from_fn(move || {
        let current = next?;
        next = current.rfind('/').map(|i| &current[..i]);
        Some(current)
    })
}

/// A parsed YAML document with positions.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub positions: Positions,
}

/// Parses one YAML document. `file` is the display name used in diagnostics.
pub fn parse(file: &str, text: &str) -> Result<Document, Box<Diagnostic>> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        let marker = e.marker();
        Box::new(Diagnostic::error("yaml.syntax", format!("invalid YAML: {}", e.info())).at(Location::new(
            file,
            marker.line(),
            marker.col() + 1,
        )))
    })?;
    let mut docs = docs.into_iter();
    let Some(doc) = docs.next() else {
        return Ok(Document { value: Value::Null, positions: Positions::default() });
    };
    if let Some(extra) = docs.next() {
        return Err(Box::new(
            Diagnostic::error("yaml.multiple-documents", "expected one YAML document, found several")
                .at(Location::new(file, extra.span.start.line(), 1))
                .hint("remove the `---` separator: each account has its own file"),
        ));
    }
    let mut positions = Positions::default();
    let value = convert(file, &doc, String::new(), &mut positions)?;
    Ok(Document { value, positions })
}

fn pos_of(node: &MarkedYaml<'_>) -> Pos {
    let (start, end) = (node.span.start, node.span.end);
    Pos {
        line: start.line(),
        column: start.col() + 1,
        end_column: (end.line() == start.line() && end.col() > start.col()).then(|| end.col() + 1),
    }
}

fn convert(
    file: &str,
    node: &MarkedYaml<'_>,
    pointer: String,
    positions: &mut Positions,
) -> Result<Value, Box<Diagnostic>> {
    let pos = pos_of(node);
    let error = |message: String| {
        Box::new(Diagnostic::error("yaml.value", message).at(Location::new(file, pos.line, pos.column)))
    };
    let value = match &node.data {
        YamlData::Value(scalar) => scalar_to_json(scalar)
            .ok_or_else(|| error("numbers that are not finite (`.nan`, `.inf`) are not supported".into()))?,
        YamlData::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(convert(file, item, format!("{pointer}/{i}"), positions)?);
            }
            Value::Array(out)
        }
        YamlData::Mapping(entries) => {
            let mut out = Map::new();
            for (key, item) in entries {
                let name = match &key.data {
                    YamlData::Value(Scalar::String(s)) => s.to_string(),
                    YamlData::Value(other) => match scalar_to_json(other) {
                        Some(Value::Null) | None => {
                            return Err(error("mapping keys must be strings".into()));
                        }
                        Some(v) => v.to_string(),
                    },
                    _ => return Err(error("mapping keys must be strings".into())),
                };
                let child = format!("{pointer}/{}", escape_pointer(&name));
                positions.keys.insert(child.clone(), pos_of(key));
                let converted = convert(file, item, child, positions)?;
                out.insert(name, converted);
            }
            Value::Object(out)
        }
        YamlData::Tagged(_, inner) => return convert(file, inner, pointer, positions),
        YamlData::Alias(_) => return Err(error("YAML aliases (`*name`) are not supported".into())),
        YamlData::BadValue | YamlData::Representation(..) => {
            return Err(error("value cannot be read (a tag that does not fit its value?)".into()));
        }
    };
    positions.values.insert(pointer, pos);
    Ok(value)
}

fn scalar_to_json(scalar: &Scalar<'_>) -> Option<Value> {
    Some(match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => Value::Number(Number::from_f64(f.into_inner())?),
        Scalar::String(s) => Value::String(s.to_string()),
    })
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// `value` as a YAML document (saphyr's emitter; keys in the value's order).
pub fn to_text(value: &Value) -> String {
    fn convert(value: &Value) -> saphyr::Yaml<'_> {
        use saphyr::{Scalar, Yaml};
        match value {
            Value::Null => Yaml::Value(Scalar::Null),
            Value::Bool(b) => Yaml::Value(Scalar::Boolean(*b)),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Yaml::Value(Scalar::Integer(i)),
                None => Yaml::Value(Scalar::FloatingPoint(n.as_f64().unwrap_or_default().into())),
            },
            Value::String(s) => Yaml::Value(Scalar::String(s.as_str().into())),
            Value::Array(items) => Yaml::Sequence(items.iter().map(convert).collect()),
            Value::Object(map) => Yaml::Mapping(
                map.iter().map(|(k, v)| (Yaml::Value(Scalar::String(k.as_str().into())), convert(v))).collect(),
            ),
        }
    }
    let mut out = String::new();
    saphyr::YamlEmitter::new(&mut out).dump(&convert(value)).expect("writing to a String cannot fail");
    let body = out.strip_prefix("---\n").unwrap_or(&out);
    format!("{body}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_point_at_keys_and_values() {
        let doc = parse("a.yaml", "name: x\nnetwork:\n  cidr: 10.0.0.0/16\nlist:\n  - 1\n  - two\n").unwrap();
        assert_eq!(doc.value["network"]["cidr"], "10.0.0.0/16");
        let cidr = doc.positions.value("/network/cidr").unwrap();
        assert_eq!((cidr.line, cidr.column, cidr.end_column), (3, 9, Some(20)));
        let key = doc.positions.key("/network/cidr").unwrap();
        assert_eq!((key.line, key.column), (3, 3));
        assert_eq!(doc.positions.value("/list/1").unwrap().line, 6);
        // Missing children fall back to the closest ancestor.
        assert_eq!(doc.positions.value("/network/missing").unwrap().line, 3);
    }

    #[test]
    fn yaml_core_schema_types() {
        let doc = parse("a.yaml", "a: 012\nb: '012'\nc: true\nd: ~\ne: 1.5\n").unwrap();
        assert_eq!(doc.value["a"], 12);
        assert_eq!(doc.value["b"], "012");
        assert_eq!(doc.value["c"], true);
        assert_eq!(doc.value["d"], Value::Null);
        assert_eq!(doc.value["e"], 1.5);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("bad.yaml", "a: [1, 2\nb: c\n").unwrap_err();
        assert_eq!(err.code, "yaml.syntax");
        assert!(err.location.unwrap().line >= 1);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        assert!(parse("d.yaml", "a: 1\na: 2\n").is_err());
    }
}
