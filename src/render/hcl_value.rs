//! How config values become HCL text: escaped for use inside a quoted string, or serialised
//! as a complete HCL literal. Either way a value can never become HCL syntax.

use std::fmt::Write as _;
use std::sync::Arc;

use minijinja::value::{Object, ObjectRepr, Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// Marks the start and end of a string value printed into a template (must land inside a
/// quoted string) and of a literal (must land in expression position). The output guard
/// checks and removes them. Private-use characters, escaped if a value contains them.
pub const STRING_OPEN: char = '\u{E000}';
pub const STRING_CLOSE: char = '\u{E001}';
pub const LITERAL_OPEN: char = '\u{E002}';
pub const LITERAL_CLOSE: char = '\u{E003}';
/// Around a number or a boolean: at home in a string and in code alike.
pub const SCALAR_OPEN: char = '\u{E005}';
pub const SCALAR_CLOSE: char = '\u{E006}';

pub fn is_marker(c: char) -> bool {
    matches!(c, STRING_OPEN | STRING_CLOSE | LITERAL_OPEN | LITERAL_CLOSE | SENSITIVE | SCALAR_OPEN | SCALAR_CLOSE)
}

/// What a sensitive value turns into when a template makes text of it: any value holding it
/// is refused when printed.
const SENSITIVE: char = '\u{E004}';

/// The result of `| hcl`: an HCL literal. An object rather than a "safe" string, so that no
/// string filter can take it apart and print a piece of it unescaped.
#[derive(Debug)]
pub struct HclLiteral(pub String);

impl Object for HclLiteral {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    /// Made into text (by `~` or a string filter), it is an ordinary string again, printed
    /// escaped like any other.
    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sensitive (`writeOnly`) config value as templates see it: not its value, which never
/// enters the template context, but a stand-in that refuses to be printed in any form.
#[derive(Debug)]
pub struct Sensitive {
    /// `config.db.password`.
    pub path: String,
}

impl Object for Sensitive {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    /// Anything inside a sensitive value is sensitive too.
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let path = match key.as_usize() {
            Some(index) if key.as_str().is_none() => format!("{}[{index}]", self.path),
            _ => format!("{}.{key}", self.path),
        };
        Some(Value::from_object(Self { path }))
    }

    /// As text: the stand-in, with the path in hex (so `upper` and friends keep it readable).
    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        f.write_char(SENSITIVE)?;
        for byte in self.path.bytes() {
            write!(f, "{byte:02x}")?;
        }
        f.write_char(SENSITIVE)
    }
}

/// The error for printing a sensitive value (or text made from one).
pub fn sensitive_error(text: &str) -> Error {
    let hex = text.split(SENSITIVE).nth(1).unwrap_or_default().to_ascii_lowercase();
    let bytes: Option<Vec<u8>> =
        (0..hex.len()).step_by(2).map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect();
    let path = bytes.and_then(|b| String::from_utf8(b).ok()).filter(|p| p.starts_with("config"));
    let what = path.map_or_else(|| "a sensitive config value".to_string(), |p| format!("`{p}`"));
    Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "{what} is sensitive (`writeOnly` in the schema) and cannot be rendered: pass it as a Terraform variable (TF_VAR_...) or read it from a secret store"
        ),
    )
}

/// Refuses text that holds a sensitive value's stand-in.
fn refuse_sensitive(text: &str) -> Result<(), Error> {
    if text.contains(SENSITIVE) { Err(sensitive_error(text)) } else { Ok(()) }
}

/// A number as HCL, refusing what HCL cannot write (`inf`, `NaN`).
fn number(value: &Value) -> Result<String, Error> {
    let text = value.to_string();
    match f64::try_from(value.clone()) {
        Ok(f) if !f.is_finite() => {
            Err(Error::new(ErrorKind::InvalidOperation, format!("`{text}` is not a number HCL can write")))
        }
        _ => Ok(text),
    }
}

/// Escapes `s` for the inside of an HCL quoted string: quotes, backslashes, template
/// sequences (`${`, `%{`), newlines and other control characters, line separators and
/// text-direction overrides.
pub fn escape_into(out: &mut String, s: &str) {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            // A control character, and a line separator or text-direction override too: a
            // reader of the file must see what the value holds (no "Trojan Source" text).
            c if crate::text::needs_escape(c) || is_marker(c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    escape_into(&mut out, s);
    out
}

/// A quoted HCL string literal.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    escape_into(&mut out, s);
    out.push('"');
    out
}

/// Serialises any template value as an HCL literal. Maps and lists of maps span several
/// lines (the formatter indents them); lists of scalars stay on one line.
pub fn literal(value: &Value) -> Result<String, Error> {
    let mut out = String::new();
    write_literal(&mut out, value, 0)?;
    Ok(out)
}

/// How deeply lists and maps may nest in a literal (config values nest far less; a value that
/// contains itself, such as a namespace assigned into itself, nests without end).
const MAX_LITERAL_DEPTH: usize = 64;

fn write_literal(out: &mut String, value: &Value, depth: usize) -> Result<(), Error> {
    if depth > MAX_LITERAL_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("a value nests deeper than {MAX_LITERAL_DEPTH} levels (does it contain itself?)"),
        ));
    }
    if let Some(literal) = value.downcast_object_ref::<HclLiteral>() {
        out.push_str(&literal.0);
        return Ok(());
    }
    if value.downcast_object_ref::<Sensitive>().is_some() {
        return Err(sensitive_error(&value.to_string()));
    }
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&number(value)?),
        ValueKind::String | ValueKind::Bytes => {
            let text = value.as_str().map_or_else(|| value.to_string(), str::to_string);
            refuse_sensitive(&text)?;
            out.push_str(&quoted(&text));
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            let multiline = items.iter().any(|v| matches!(v.kind(), ValueKind::Map | ValueKind::Seq));
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if multiline {
                    out.push('\n');
                } else if i > 0 {
                    out.push_str(", ");
                }
                write_literal(out, item, depth + 1)?;
                if multiline {
                    out.push(',');
                }
            }
            if multiline {
                out.push('\n');
            }
            out.push(']');
        }
        ValueKind::Map => {
            let keys: Vec<Value> = value.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push_str("{\n");
            for key in keys {
                let item = value.get_item(&key)?;
                let key = key.to_string();
                refuse_sensitive(&key)?;
                out.push_str(&quoted(&key));
                out.push_str(" = ");
                write_literal(out, &item, depth + 1)?;
                out.push('\n');
            }
            out.push('}');
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("a {} cannot be written as an HCL value", value.kind()),
            ));
        }
    }
    Ok(())
}

/// The template formatter: how `{{ value }}` prints in a blueprint template. Strings are
/// escaped and marked, literals marked, so the output guard can prove where each landed;
/// nothing made from a config value prints as it is.
pub fn format_value(out: &mut minijinja::Output, _state: &mut minijinja::State, value: &Value) -> Result<(), Error> {
    let write = |out: &mut minijinja::Output, s: &str| {
        out.write_str(s).map_err(|e| Error::new(ErrorKind::WriteFailure, "cannot write output").with_source(e))
    };
    if let Some(literal) = value.downcast_object_ref::<HclLiteral>() {
        return write(out, &format!("{LITERAL_OPEN}{}{LITERAL_CLOSE}", literal.0));
    }
    if value.downcast_object_ref::<Sensitive>().is_some() {
        return Err(sensitive_error(&value.to_string()));
    }
    if value.is_safe() {
        // The output of a macro, `caller()` or a `{% set %}` block: template text whose values
        // were printed (escaped and marked) already. The guard checks their markers.
        let text = value.as_str().unwrap_or_default();
        refuse_sensitive(text)?;
        return write(out, text);
    }
    match value.kind() {
        ValueKind::None => Err(Error::new(
            ErrorKind::InvalidOperation,
            "cannot print a null value: give it a value in the config or use `| default(...)`",
        )),
        // minijinja prints booleans the Python way (`True`); HCL needs `true`.
        ValueKind::Bool => {
            write(out, &format!("{SCALAR_OPEN}{}{SCALAR_CLOSE}", if value.is_true() { "true" } else { "false" }))
        }
        ValueKind::Number => write(out, &format!("{SCALAR_OPEN}{}{SCALAR_CLOSE}", number(value)?)),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => {
            let text = format!("{LITERAL_OPEN}{}{LITERAL_CLOSE}", literal(value)?);
            write(out, &text)
        }
        // Strings, and anything else as the string it prints as.
        _ => {
            let owned;
            let text = match value.as_str() {
                Some(text) => text,
                None => {
                    owned = value.to_string();
                    &owned
                }
            };
            refuse_sensitive(text)?;
            let mut marked = String::with_capacity(text.len() + 8);
            marked.push(STRING_OPEN);
            escape_into(&mut marked, text);
            marked.push(STRING_CLOSE);
            write(out, &marked)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_strings_stay_inside_the_string() {
        let hostile = "x\" \n resource \"null\" \"pwn\" { } ${file(\"/etc/passwd\")} %{ if true }\\";
        let escaped = escape(hostile);
        assert_eq!(
            escaped,
            "x\\\" \\n resource \\\"null\\\" \\\"pwn\\\" { } $${file(\\\"/etc/passwd\\\")} %%{ if true }\\\\"
        );
        // hcl-rs reads it back as exactly the original string.
        let body: hcl::Body = hcl::from_str(&format!("a = \"{escaped}\"\n")).unwrap();
        let attr = body.attributes().next().unwrap();
        assert_eq!(attr.expr, hcl::Expression::String(hostile.to_string()));
    }

    #[test]
    fn booleans_and_numbers_print_as_hcl() {
        let env = minijinja::Environment::new();
        let mut env = env;
        env.set_formatter(format_value);
        let out = env.render_str(
            "{{ a }} {{ b }} {{ n }} {{ f }}",
            minijinja::context! { a => true, b => false, n => 3, f => 1.5 },
        );
        assert_eq!(out.unwrap().replace(is_marker, ""), "true false 3 1.5");
    }

    #[test]
    fn control_and_marker_characters_are_escaped() {
        assert_eq!(escape("a\u{7}b\u{E000}"), "a\\u0007b\\uE000");
        assert_eq!(escape("x\u{202e}y\u{2028}\u{feff}\u{85}é"), "x\\u202Ey\\u2028\\uFEFF\\u0085é");
        assert_eq!(escape("$$ 100% {x}"), "$$ 100% {x}");
    }

    #[test]
    fn literals_round_trip_through_hcl_rs() {
        let value = Value::from(minijinja::value::Serde(serde_json::json!({
            "name": "a\"b",
            "count": 3,
            "on": true,
            "nothing": null,
            "list": ["x", "${y}"],
            "nested": [{"k": 1.5}]
        })));
        let text = format!("v = {}\n", literal(&value).unwrap());
        let body: hcl::Body = hcl::from_str(&text).unwrap();
        let parsed: serde_json::Value = hcl::from_body(body).unwrap();
        assert_eq!(parsed["v"]["name"], "a\"b");
        assert_eq!(parsed["v"]["list"][1], "${y}");
        assert_eq!(parsed["v"]["nested"][0]["k"], 1.5);
        assert_eq!(parsed["v"]["nothing"], serde_json::Value::Null);
    }
}
