//! Parses YAML into a `serde_json::Value` plus the source position of every key and value,
//! addressed by JSON pointer, so schema errors can point at the exact line and column.

use std::collections::HashMap;

use saphyr::{Scalar, ScalarStyle};
use saphyr_parser::Event;
use serde_json::{Map, Number, Value};

use crate::diagnostics::{Diagnostic, Location};

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
    /// Column just past the node when it ends on the same line.
    pub end_column: Option<usize>,
    /// The line the node ends on.
    pub end_line: usize,
}

/// Where each value (and each mapping key) of a YAML document is, by JSON pointer
/// (`/network/cidr`, `/databases/0/name`).
#[derive(Debug, Clone, Default)]
pub struct Positions {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl Positions {
    /// Every line on which the value at `pointer`, or anything inside it, is written.
    pub fn lines_of(&self, pointer: &str) -> std::collections::BTreeSet<usize> {
        let inside = |p: &str| p == pointer || p.strip_prefix(pointer).is_some_and(|rest| rest.starts_with('/'));
        let everywhere = pointer.is_empty();
        self.values
            .iter()
            .chain(&self.keys)
            .filter(|(p, _)| everywhere || inside(p))
            .flat_map(|(_, pos)| pos.line..=pos.end_line)
            .collect()
    }

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

/// The largest YAML file Stamp reads: account configs are a few KiB; the limit only has to stop
/// a file that would take the memory or the time of every command.
pub const MAX_BYTES: usize = 1 << 20;

/// The deepest nesting of maps and lists Stamp reads (real configs nest a handful of levels).
pub const MAX_DEPTH: usize = 64;

/// Parses one YAML document. `file` is the display name used in diagnostics.
///
/// Built from the parser's events, not from a loaded tree, so that hostile input is refused
/// before it can cost anything: aliases (which a loader expands, a billion laughs), nesting
/// deeper than [`MAX_DEPTH`], files larger than [`MAX_BYTES`], keys that collide once read
/// (`1:` and `"1":`), integers that do not fit 64 bits and numbers that are not finite are
/// errors at their place; nothing here recurses.
pub fn parse(file: &str, text: &str) -> Result<Document, Box<Diagnostic>> {
    if text.len() > MAX_BYTES {
        return Err(Box::new(
            Diagnostic::error(
                "yaml.too-large",
                format!(
                    "`{file}` is {} KiB: Stamp reads YAML files of at most {} KiB",
                    text.len() / 1024,
                    MAX_BYTES / 1024
                ),
            )
            .at(Location::file_only(file)),
        ));
    }
    Loader { file, positions: Positions::default(), stack: Vec::new(), root: None, documents: 0 }.run(text)
}

/// A map or list being read, with the pointer of its node.
enum Frame {
    /// `key`: the key whose value comes next, where it is and its value's pointer.
    Map {
        map: Map<String, Value>,
        pointer: String,
        pos: Pos,
        key: Option<(String, Pos, String)>,
    },
    List {
        items: Vec<Value>,
        pointer: String,
        pos: Pos,
    },
}

struct Loader<'f> {
    file: &'f str,
    positions: Positions,
    stack: Vec<Frame>,
    root: Option<Value>,
    documents: usize,
}

impl Loader<'_> {
    fn run(mut self, text: &str) -> Result<Document, Box<Diagnostic>> {
        let mut parser = saphyr_parser::Parser::new_from_str(text);
        while let Some(event) = parser.next_event() {
            let (event, span) = event.map_err(|e| {
                let marker = e.marker();
                let (line, column) = (marker.line(), marker.col() + 1);
                if e.info().contains("recursion limit") {
                    // The scanner's own limit on flow nesting (`[[[...`), below ours or not.
                    return self.boxed("yaml.too-deep", too_deep(), line, column);
                }
                self.boxed("yaml.syntax", format!("invalid YAML: {}", e.info()), line, column)
            })?;
            let pos = pos_of(span);
            match event {
                Event::DocumentStart(_) => {
                    self.documents += 1;
                    if self.documents > 1 {
                        return Err(Box::new(
                            self.error_at(
                                "yaml.multiple-documents",
                                "expected one YAML document, found several",
                                pos.line,
                                1,
                            )
                            .hint("remove the `---` separator: each account has its own file"),
                        ));
                    }
                }
                Event::Alias(_) => {
                    return Err(self.boxed(
                        "yaml.alias",
                        "YAML aliases (`*name`) are not supported: write the value out",
                        pos.line,
                        pos.column,
                    ));
                }
                Event::Scalar(value, style, _, tag) => {
                    let scalar = self.scalar(&value, style, tag.as_ref(), pos)?;
                    self.value(scalar, pos)?;
                }
                Event::SequenceStart(..) => {
                    let pointer = self.child_pointer(pos)?;
                    self.open(Frame::List { items: Vec::new(), pointer, pos }, pos)?;
                }
                Event::MappingStart(..) => {
                    let pointer = self.child_pointer(pos)?;
                    self.open(Frame::Map { map: Map::new(), pointer, pos, key: None }, pos)?;
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let (value, pointer, pos) = match self.stack.pop() {
                        Some(Frame::List { items, pointer, pos }) => (Value::Array(items), pointer, pos),
                        Some(Frame::Map { map, pointer, pos, .. }) => (Value::Object(map), pointer, pos),
                        None => continue,
                    };
                    self.positions.values.insert(pointer, pos);
                    self.attach(value, pos)?;
                }
                Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            }
        }
        Ok(Document { value: self.root.unwrap_or(Value::Null), positions: self.positions })
    }

    fn error_at(&self, code: &'static str, message: impl Into<String>, line: usize, column: usize) -> Diagnostic {
        Diagnostic::error(code, message).at(Location::new(self.file, line, column))
    }

    fn boxed(&self, code: &'static str, message: impl Into<String>, line: usize, column: usize) -> Box<Diagnostic> {
        Box::new(self.error_at(code, message, line, column))
    }

    /// The pointer a new node gets: its key's in a map (whose key must be a scalar), its index
    /// in a list.
    fn child_pointer(&self, pos: Pos) -> Result<String, Box<Diagnostic>> {
        match self.stack.last() {
            None => Ok(String::new()),
            Some(Frame::List { items, pointer, .. }) => Ok(format!("{pointer}/{}", items.len())),
            Some(Frame::Map { key: Some((_, _, child)), .. }) => Ok(child.clone()),
            Some(Frame::Map { key: None, .. }) => {
                Err(self.boxed("yaml.key", "mapping keys must be strings, not maps or lists", pos.line, pos.column))
            }
        }
    }

    fn open(&mut self, frame: Frame, pos: Pos) -> Result<(), Box<Diagnostic>> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.boxed("yaml.too-deep", too_deep(), pos.line, pos.column));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// A scalar: a map's key, or a value.
    fn value(&mut self, value: Value, pos: Pos) -> Result<(), Box<Diagnostic>> {
        let Some(Frame::Map { key: None, map, pointer, .. }) = self.stack.last() else {
            let pointer = self.child_pointer(pos)?;
            self.positions.values.insert(pointer, pos);
            return self.attach(value, pos);
        };
        let name = match value {
            Value::String(s) => s,
            Value::Null => {
                return Err(self.boxed("yaml.key", "mapping keys must be strings, not null", pos.line, pos.column));
            }
            other => other.to_string(),
        };
        let child = format!("{pointer}/{}", escape_pointer(&name));
        if map.contains_key(&name) {
            let first = self.positions.keys.get(&child).map_or(0, |p| p.line);
            return Err(Box::new(
                // The key is not quoted: a key can be a secret (a map of API keys), and which
                // are is known only from the schema, after the file is read.
                self.error_at(
                    "yaml.duplicate-key",
                    format!("this key is set on line {first} already"),
                    pos.line,
                    pos.column,
                )
                .hint("a key is set once per map (`1` and `\"1\"` are the same key)"),
            ));
        }
        if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
            *key = Some((name, pos, child));
        }
        Ok(())
    }

    /// Adds a finished node to its parent (or makes it the document).
    fn attach(&mut self, value: Value, pos: Pos) -> Result<(), Box<Diagnostic>> {
        let keyless = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
        if keyless {
            return Err(self.boxed(
                "yaml.key",
                "mapping keys must be strings, not maps or lists",
                pos.line,
                pos.column,
            ));
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::List { items, .. }) => items.push(value),
            Some(Frame::Map { map, key, .. }) => {
                if let Some((name, key_pos, child)) = key.take() {
                    self.positions.keys.insert(child, key_pos);
                    map.insert(name, value);
                }
            }
        }
        Ok(())
    }

    /// Resolves a scalar with YAML's core schema, refusing what would be read wrongly.
    fn scalar(
        &self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&std::borrow::Cow<'_, saphyr::Tag>>,
        pos: Pos,
    ) -> Result<Value, Box<Diagnostic>> {
        // Said without the value and shown without its line: it may be a secret, and which values
        // are secret is known only once the file is read.
        let error = |message: String| {
            Box::new(Diagnostic::error("yaml.value", message).at(Location::file_only(self.file).on_line(pos.line)))
        };
        let resolved = Scalar::parse_from_cow_and_metadata(text.into(), style, tag)
            .ok_or_else(|| error("this value cannot be read as its tag says".into()))?;
        let is_integer_text = style == ScalarStyle::Plain && looks_like_integer(text);
        match resolved {
            Scalar::Integer(i) => Ok(Value::Number(i.into())),
            _ if is_integer_text => {
                Err(error("this integer does not fit in 64 bits: quote it if it is an identifier, not a number".into()))
            }
            Scalar::Null => Ok(Value::Null),
            Scalar::Boolean(b) => Ok(Value::Bool(b)),
            Scalar::FloatingPoint(f) => Number::from_f64(f.into_inner())
                .map(Value::Number)
                .ok_or_else(|| error("numbers that are not finite (`.nan`, `.inf`, `1e999`) are not supported".into())),
            Scalar::String(s) => Ok(Value::String(s.into_owned())),
        }
    }
}

fn too_deep() -> String {
    format!("maps and lists nest deeper than {MAX_DEPTH} levels here")
}

/// A plain scalar written as an integer (decimal, `0x` hex or `0o` octal), whatever its size.
fn looks_like_integer(text: &str) -> bool {
    if let Some(hex) = text.strip_prefix("0x") {
        return !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    if let Some(octal) = text.strip_prefix("0o") {
        return !octal.is_empty() && octal.bytes().all(|b| (b'0'..=b'7').contains(&b));
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn pos_of(span: saphyr_parser::Span) -> Pos {
    let (start, end) = (span.start, span.end);
    Pos {
        line: start.line(),
        column: start.col() + 1,
        end_column: (end.line() == start.line() && end.col() > start.col()).then(|| end.col() + 1),
        end_line: end.line().max(start.line()),
    }
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape_pointer(segment: &str) -> std::borrow::Cow<'_, str> {
    if segment.contains(['~', '/']) {
        std::borrow::Cow::Owned(segment.replace('~', "~0").replace('/', "~1"))
    } else {
        std::borrow::Cow::Borrowed(segment)
    }
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
        // Different YAML keys that read as the same text.
        let err = parse("d.yaml", "tags:\n  1: a\n  \"1\": b\n").unwrap_err();
        assert_eq!((err.code, err.location.as_ref().unwrap().line), ("yaml.duplicate-key", 3));
        assert_eq!(err.message, "this key is set on line 2 already");
    }

    #[test]
    fn integers_beyond_64_bits_and_infinite_numbers_are_errors() {
        for text in ["a: 18446744073709551615\n", "a: -9223372036854775809\n", "a: 0xffffffffffffffffff\n"] {
            let err = parse("n.yaml", text).unwrap_err();
            assert!(err.message.contains("does not fit in 64 bits"), "{text}: {}", err.message);
        }
        for text in ["a: .nan\n", "a: .inf\n", "a: 1e999\n"] {
            assert!(parse("n.yaml", text).unwrap_err().message.contains("not finite"), "{text}");
        }
        assert_eq!(
            parse("n.yaml", "a: 9223372036854775807\nb: '18446744073709551615'\n").unwrap().value["b"],
            "18446744073709551615"
        );
    }

    #[test]
    fn aliases_are_refused_before_they_expand() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..40 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse("laughs.yaml", &text).unwrap_err();
        assert_eq!((err.code, err.location.as_ref().unwrap().line), ("yaml.alias", 2));
    }

    #[test]
    fn deep_nesting_and_huge_files_are_refused() {
        for depth in [65, 3_000, 200_000] {
            let err = parse("deep.yaml", &format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth))).unwrap_err();
            assert_eq!(err.code, "yaml.too-deep", "{depth}: {}", err.message);
            assert_eq!(err.location.as_ref().unwrap().line, 1, "{depth}");
        }
        let block = (0..70).fold(String::new(), |text, i| text + &"  ".repeat(i) + "k:\n");
        assert_eq!(parse("deep.yaml", &block).unwrap_err().code, "yaml.too-deep");
        let ok = format!("a: {}1{}\n", "[".repeat(63), "]".repeat(63));
        assert!(parse("ok.yaml", &ok).is_ok());
        let huge = format!("a: \"{}\"\n", "x".repeat(MAX_BYTES));
        assert_eq!(parse("huge.yaml", &huge).unwrap_err().code, "yaml.too-large");
    }
}
